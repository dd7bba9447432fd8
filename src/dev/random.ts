/**
 * A seeded pseudo-random generator for the demo, the benchmarks and the tests that generate their
 * cases: the same seed gives the same sequence on every run, so a bench measures the same bytes and
 * a failing test can be replayed by its seed. Not for anything secret.
 */

/** mulberry32: a small 32-bit PRNG; returns a function yielding numbers in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}
