/**
 * Cost of an attempt from its token usage and the `pricing` section (USD per million tokens per
 * model pattern; the first matching pattern in file order wins).
 */
import { compileGlob } from '../config/glob.js';
import type { Config, Price } from '../config/schema.js';
import type { Usage } from './usage.js';

/** Finds the price of a model; results are cached per pricing table (one per snapshot). */
export class PriceBook {
  readonly #rules: { match: (m: string) => boolean; price: Price }[];
  readonly #cache = new Map<string, Price | undefined>();

  constructor(pricing: Config['pricing']) {
    this.#rules = Object.entries(pricing).map(([pattern, price]) => ({ match: compileGlob(pattern), price }));
  }

  /** The price of `model`, or undefined when no pattern matches. */
  price(model: string): Price | undefined {
    if (this.#cache.has(model)) return this.#cache.get(model);
    const price = this.#rules.find((r) => r.match(model))?.price;
    if (this.#cache.size < 10_000) this.#cache.set(model, price);
    return price;
  }

  /** USD for `usage` on `model`, or null when the model has no price. */
  cost(model: string, usage: Usage): number | null {
    const p = this.price(model);
    if (!p) return null;
    return (
      (usage.input * p.input +
        usage.output * p.output +
        usage.cacheCreation * p.cache_write +
        usage.cacheRead * p.cache_read) /
      1_000_000
    );
  }
}
