/**
 * Small renderers shared by the pages: times (localised in the browser by app.js), durations,
 * numbers, money, status badges.
 */
import { formatDuration } from '../../config/values.js';
import { type Html, html } from '../html.js';

/** `<time>` showing UTC on the server; app.js rewrites it to the viewer's local time. */
export function time(ms: number, style: 'time' | 'datetime' = 'datetime'): Html {
  const iso = new Date(ms).toISOString();
  const text = style === 'time' ? `${iso.slice(11, 19)} UTC` : `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`;
  return html`<time datetime="${iso}" data-style="${style}">${text}</time>`;
}

/** "3 min ago", "in 20 s". */
export function ago(ms: number, now: number): string {
  const d = now - ms;
  return d >= 0 ? `${formatDuration(d)} ago` : `in ${formatDuration(-d)}`;
}

/** 12345 → "12,345"; 1234567 → "1.23M". */
export function count(n: number | null | undefined): string {
  if (n === null || n === undefined) return '–';
  if (Math.abs(n) >= 10_000_000) return `${(n / 1_000_000).toFixed(1)}M`;
  if (Math.abs(n) >= 1_000_000) return `${(n / 1_000_000).toFixed(2)}M`;
  return n.toLocaleString('en-US');
}

/** USD with precision that suits the amount. */
export function usd(n: number | null | undefined): string {
  if (n === null || n === undefined) return '–';
  if (n === 0) return '$0';
  if (n < 0.01) return `$${n.toFixed(4)}`;
  if (n < 100) return `$${n.toFixed(2)}`;
  return `$${Math.round(n).toLocaleString('en-US')}`;
}

/** 0.9734 → "97.3%". */
export function percent(x: number | null | undefined): string {
  if (x === null || x === undefined || Number.isNaN(x)) return '–';
  return `${(x * 100).toFixed(x >= 0.999 || x === 0 ? 0 : 1)}%`;
}

/** Milliseconds for people. */
export function ms(n: number | null | undefined): string {
  if (n === null || n === undefined) return '–';
  return n < 1000 ? `${Math.round(n)} ms` : `${(n / 1000).toFixed(n < 10_000 ? 2 : 1)} s`;
}

/** A badge for an HTTP status. */
export function statusBadge(status: number): Html {
  const cls =
    status >= 200 && status < 300
      ? 'ok'
      : status === 499 || status === 0
        ? 'off'
        : status >= 500 || status === 429
          ? 'bad'
          : 'warn';
  return html`<span class="badge badge-${cls}">${status === 0 ? 'none' : status}</span>`;
}

/** A shortened hash: `sha256:0123abcd`. */
export function shortHash(hash: string): string {
  return hash.replace(/^(sha256:)?([0-9a-f]{10})[0-9a-f]+$/, '$1$2');
}
