/**
 * Cost of an attempt from its token usage and the `pricing` section (USD per million tokens per
 * model pattern; the first matching pattern in file order wins). Cache prices not given are derived
 * from the input price with the Messages API's ratios: 5-minute writes 1.25×, 1-hour writes 2×,
 * reads 0.1×. A `fast` answer multiplies every token price by `fast_multiplier` (fast mode stacks
 * with the cache multipliers); web search requests are priced per request.
 */
import { compileGlob } from '../config/glob.js';
import type { Config, Price } from '../config/schema.js';
import { billedTokens, type Usage } from './usage.js';

/** The prices of one model pattern with every default resolved, USD per million tokens. */
export interface ResolvedPrice {
  readonly input: number;
  readonly output: number;
  readonly cacheWrite5m: number;
  readonly cacheWrite1h: number;
  readonly cacheRead: number;
  readonly fastMultiplier: number;
  /** USD per web search request. */
  readonly webSearch: number;
}

/** A configured price with the derived defaults filled in. */
export function resolvePrice(p: Price): ResolvedPrice {
  return {
    input: p.input,
    output: p.output,
    cacheWrite5m: p.cache_write ?? p.input * 1.25,
    cacheWrite1h: p.cache_write_1h ?? p.input * 2,
    cacheRead: p.cache_read ?? p.input * 0.1,
    fastMultiplier: p.fast_multiplier,
    webSearch: p.web_search,
  };
}

/** Finds the price of a model; results are cached per pricing table (one per snapshot). */
export class PriceBook {
  readonly #rules: { match: (m: string) => boolean; price: ResolvedPrice }[];
  readonly #cache = new Map<string, ResolvedPrice | undefined>();

  constructor(pricing: Config['pricing']) {
    this.#rules = Object.entries(pricing).map(([pattern, price]) => ({
      match: compileGlob(pattern),
      price: resolvePrice(price),
    }));
  }

  /** The price of `model`, or undefined when no pattern matches. */
  price(model: string): ResolvedPrice | undefined {
    if (this.#cache.has(model)) return this.#cache.get(model);
    const price = this.#rules.find((r) => r.match(model))?.price;
    if (this.#cache.size < 10_000) this.#cache.set(model, price);
    return price;
  }

  /** USD for `usage` on `model`, or null when the model has no price. */
  cost(model: string, usage: Usage): number | null {
    const p = this.price(model);
    if (!p) return null;
    const b = billedTokens(usage);
    const tokens =
      b.input * p.input +
      b.output * p.output +
      b.cacheWrite5m * p.cacheWrite5m +
      b.cacheWrite1h * p.cacheWrite1h +
      b.cacheRead * p.cacheRead;
    const multiplier = usage.speed === 'fast' ? p.fastMultiplier : 1;
    return (tokens * multiplier) / 1_000_000 + usage.webSearchRequests * p.webSearch;
  }
}
