/** Random helpers for tests that generate their cases (the generator itself is src/dev/random.ts). */

export { prng } from '../../src/dev/random.js';

/** One element of `xs`, chosen by `rnd`. */
export function pick<T>(rnd: () => number, xs: readonly T[]): T {
  return xs[Math.floor(rnd() * xs.length)]!;
}
