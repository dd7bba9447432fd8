/**
 * Summaries of latency samples for the benchmark: nearest-rank percentiles, so a p99 is a value that
 * was actually observed (no interpolation between two requests).
 */

/** Count, p50, p90, p99, max and mean of a sample, in the sample's unit; zeros for an empty one. */
export interface Summary {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** The nearest-rank percentile `q` (0..1) of an ascending-sorted sample. */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** The {@link Summary} of `sample` (not modified). */
export function summarize(sample: readonly number[]): Summary {
  const s = Float64Array.from(sample).sort();
  const a = Array.from(s);
  let sum = 0;
  for (const v of a) sum += v;
  return {
    n: a.length,
    p50: percentile(a, 0.5),
    p90: percentile(a, 0.9),
    p99: percentile(a, 0.99),
    max: a.length ? a[a.length - 1]! : 0,
    mean: a.length ? sum / a.length : 0,
  };
}
