/**
 * The trend chart, rendered on the server as SVG: stacked bars of successful and failed client
 * requests per bucket, with a few gridlines and time labels. No script, so it works under the
 * dashboard's Content-Security-Policy and on any phone.
 */
import { type Html, html, raw } from '../html.js';

/** One bucket of the trend. */
export interface TrendPoint {
  /** Bucket start, ms since the epoch. */
  readonly ts: number;
  readonly success: number;
  readonly error: number;
}

/** A "nice" axis maximum ≥ `n` (1, 2, 5 × 10^k). */
function niceMax(n: number): number {
  if (n <= 5) return 5;
  const p = 10 ** Math.floor(Math.log10(n));
  for (const m of [1, 2, 5, 10]) if (m * p >= n) return m * p;
  return 10 * p;
}

function hhmm(ms: number): string {
  return new Date(ms).toISOString().slice(11, 16);
}

/** The SVG trend chart of `points` (oldest first); `bucketMs` sets the bar width in time. */
export function trendChart(points: readonly TrendPoint[], bucketMs: number): Html {
  const W = 960;
  const H = 220;
  const left = 44;
  const bottom = 22;
  const top = 8;
  const plotW = W - left - 8;
  const plotH = H - top - bottom;
  const total = points.reduce((n, p) => n + p.success + p.error, 0);
  const max = niceMax(Math.max(1, ...points.map((p) => p.success + p.error)));
  const n = Math.max(1, points.length);
  const bw = plotW / n;
  const y = (v: number) => top + plotH - (v / max) * plotH;
  const parts: string[] = [];
  for (const frac of [0, 0.5, 1]) {
    const v = max * frac;
    parts.push(
      `<line x1="${left}" x2="${W - 8}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" class="grid"/>`,
      `<text x="${left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" class="axis">${Math.round(v)}</text>`,
    );
  }
  points.forEach((p, i) => {
    const x = left + i * bw + Math.min(1, bw * 0.1);
    const w = Math.max(1, bw - Math.min(2, bw * 0.2));
    const hs = (p.success / max) * plotH;
    const he = (p.error / max) * plotH;
    const title = `<title>${hhmm(p.ts)} UTC: ${p.success} ok, ${p.error} failed</title>`;
    if (p.success > 0) {
      parts.push(
        `<rect x="${x.toFixed(1)}" y="${(top + plotH - hs).toFixed(1)}" width="${w.toFixed(1)}" height="${hs.toFixed(1)}" class="ok">${title}</rect>`,
      );
    }
    if (p.error > 0) {
      parts.push(
        `<rect x="${x.toFixed(1)}" y="${(top + plotH - hs - he).toFixed(1)}" width="${w.toFixed(1)}" height="${he.toFixed(1)}" class="bad">${title}</rect>`,
      );
    }
  });
  const labels = Math.min(6, n);
  for (let k = 0; k < labels; k++) {
    const i = Math.round((k * (n - 1)) / Math.max(1, labels - 1));
    const p = points[i];
    if (!p) continue;
    const x = left + i * bw + bw / 2;
    parts.push(
      `<text x="${x.toFixed(1)}" y="${H - 6}" text-anchor="middle" class="axis">${hhmm(p.ts)}</text>`,
    );
  }
  const span = points.length
    ? `${hhmm(points[0]!.ts)}–${hhmm(points[points.length - 1]!.ts + bucketMs)} UTC`
    : '';
  return html`<figure class="chart">
  <svg viewBox="0 0 ${W} ${H}" role="img" aria-label="Client requests per ${Math.round(bucketMs / 60000)} minutes, ${span}: ${total} in all">
    ${raw(parts.join(''))}
  </svg>
  <figcaption class="legend"><span><span class="sw sw-ok"></span>answered</span><span><span class="sw sw-bad"></span>failed</span><span>per ${Math.round(bucketMs / 60000)} min · ${span}</span></figcaption>
</figure>`;
}
