/**
 * The Stats page: channel × model over a chosen window — attempts, success rate, tokens (with the
 * 1-hour cache writes and compaction passes), web searches, cost, SSE events dropped, latency
 * p50/p95 and time to first byte — with totals, the cache-read share per channel, and usage (with
 * its cache-read share) per client token.
 */
import type { App } from '../../app.js';
import { cacheReadShare, queryCacheShare, queryStats, queryUsage } from '../../store/queries.js';
import { type Html, html } from '../html.js';
import { count, ms, percent, usd } from './format.js';

const WINDOWS = [1, 6, 24, 168, 720] as const;

/**
 * A stats row's channel. Rows without one are requests a client token's policy refused before
 * routing (attempt 0, README → Policy): named so, not a bare dash.
 */
function channelCell(name: string | null): Html | string {
  return name ?? html`<span class="muted">refused by policy</span>`;
}

/** The window of the stats page from its query string (default 24 h). */
export function statsHours(url: URL): number {
  const h = Number(url.searchParams.get('hours'));
  return WINDOWS.includes(h as (typeof WINDOWS)[number]) ? h : 24;
}

/** The stats panel. */
export async function statsPanel(app: App, hours: number): Promise<Html> {
  const now = app.now();
  const [rows, usage, cache] = await Promise.all([
    queryStats(app.db, { hours }, now),
    queryUsage(app.db, { hours }, now),
    queryCacheShare(app.db, { hours }, now),
  ]);
  const t = rows.reduce(
    (a, r) => ({
      total: a.total + r.total,
      success: a.success + r.success,
      requests: a.requests + r.requests,
      input: a.input + r.input_tokens,
      output: a.output + r.output_tokens,
      cacheRead: a.cacheRead + r.cache_read_tokens,
      cacheWrite: a.cacheWrite + r.cache_creation_tokens,
      cacheWrite1h: a.cacheWrite1h + r.cache_creation_1h_tokens,
      compactionIn: a.compactionIn + r.compaction_input_tokens,
      compactionOut: a.compactionOut + r.compaction_output_tokens,
      webSearch: a.webSearch + r.web_search_requests,
      dropped: a.dropped + r.events_dropped,
      cost: a.cost + r.cost_usd,
    }),
    {
      total: 0,
      success: 0,
      requests: 0,
      input: 0,
      output: 0,
      cacheRead: 0,
      cacheWrite: 0,
      cacheWrite1h: 0,
      compactionIn: 0,
      compactionOut: 0,
      webSearch: 0,
      dropped: 0,
      cost: 0,
    },
  );
  /** A count with the part of it that is of a kind, when there is any (`1h 200`, `compaction 5`). */
  const part = (n: number, label: string) =>
    n ? html`<div class="small muted">${label} ${count(n)}</div>` : '';
  const label = (h: number) => (h < 48 ? `${h} h` : `${h / 24} days`);
  return html`<section class="panel" id="stats-panel">
  <h2>Channel × model <span class="muted small">last ${label(hours)}</span><span class="spacer"></span>
    <span class="small">${WINDOWS.map((h) =>
      h === hours
        ? html`<strong>${label(h)}</strong> `
        : html`<a href="/stats?hours=${h}" hx-get="/ui/stats?hours=${h}" hx-target="#stats-panel" hx-swap="outerHTML" hx-push-url="/stats?hours=${h}">${label(h)}</a> `,
    )}</span></h2>
  <div class="table-wrap"><table>
  <thead><tr><th>channel</th><th>model</th><th class="num">attempts</th><th class="num">success</th><th class="num">answered</th>
    <th class="num">input</th><th class="num">output</th><th class="num hide-sm">cache read</th><th class="num hide-sm">cache write</th><th class="num">cost</th>
    <th class="num">p50</th><th class="num">p95</th><th class="num hide-sm">ttfb p50</th></tr></thead>
  <tbody>${rows.map(
    (r) => html`<tr>
    <td>${channelCell(r.channel_name)}</td><td><code class="small">${r.model ?? '–'}</code></td>
    <td class="num">${count(r.total)}</td>
    <td class="num">${percent(r.success_rate)}${r.error ? html`<div class="small muted">${count(r.error)} failed</div>` : ''}${part(r.events_dropped, 'events dropped')}</td>
    <td class="num">${count(r.requests)}</td>
    <td class="num">${count(r.input_tokens)}${part(r.compaction_input_tokens, 'compaction')}</td>
    <td class="num">${count(r.output_tokens)}${part(r.compaction_output_tokens, 'compaction')}</td>
    <td class="num hide-sm">${count(r.cache_read_tokens)}</td>
    <td class="num hide-sm">${count(r.cache_creation_tokens)}${part(r.cache_creation_1h_tokens, '1h')}</td>
    <td class="num">${usd(r.cost_usd)}${part(r.web_search_requests, 'web searches')}</td>
    <td class="num">${ms(r.latency_p50_ms)}</td><td class="num">${ms(r.latency_p95_ms)}</td><td class="num hide-sm">${ms(r.ttfb_p50_ms)}</td>
  </tr>`,
  )}</tbody>
  ${
    rows.length
      ? html`<tfoot><tr><th colspan="2">all</th><th class="num">${count(t.total)}</th><th class="num">${t.total ? percent(t.success / t.total) : '–'}</th><th class="num">${count(t.requests)}</th>
    <th class="num" title="compaction ${count(t.compactionIn)}">${count(t.input)}</th><th class="num" title="compaction ${count(t.compactionOut)}">${count(t.output)}</th>
    <th class="num hide-sm">${count(t.cacheRead)}</th><th class="num hide-sm" title="1h ${count(t.cacheWrite1h)}">${count(t.cacheWrite)}</th>
    <th class="num" title="web searches ${count(t.webSearch)} · events dropped ${count(t.dropped)}">${usd(t.cost)}</th><th colspan="3"></th></tr></tfoot>`
      : ''
  }
  </table></div>
  ${rows.length === 0 ? html`<p class="muted">No attempts in this window.</p>` : ''}
  <p class="muted small">Attempts count every upstream try, failovers included; "answered" counts the attempts whose answer reached the client.
    Tokens are billed totals: compaction passes are included (and shown under the count), and "1h" is the part of the cache writes made for an hour.
    "events dropped" counts stream events ccload left out because clients could not have parsed them.
    Latencies are over successful attempts, from log-scale histograms (within about 10%).</p>
</section>
<section class="panel">
  <h2>Prompt cache by channel <span class="muted small">last ${label(hours)}</span></h2>
  ${
    cache.channels.length === 0
      ? html`<p class="muted">No attempts in this window.</p>`
      : html`<div class="table-wrap"><table>
  <thead><tr><th>channel</th><th class="num hide-sm">input</th><th class="num hide-sm">cache read</th><th class="num hide-sm">cache write</th><th class="num">cache-read share</th><th class="num">pinned sessions now</th></tr></thead>
  <tbody>${cache.channels.map(
    (
      c,
    ) => html`<tr><td>${c.channel_name}</td><td class="num hide-sm">${count(c.input_tokens)}</td><td class="num hide-sm">${count(c.cache_read_tokens)}</td>
    <td class="num hide-sm">${count(c.cache_creation_tokens)}</td><td class="num"><strong>${percent(c.cache_read_share)}</strong></td>
    <td class="num">${count(app.proxyState.pins.sessionsOn(c.channel_name))}</td></tr>`,
  )}</tbody></table></div>`
  }
  <p class="muted small">Cache-read share = cache read ÷ (input + cache read + cache write): the part of the prompt served from the account's prompt cache (billed at 0.1× input; a write costs 1.25×).
    Session affinity keeps each Claude Code session on the account that holds its cache.</p>
</section>
<section class="panel">
  <h2>By client token <span class="muted small">last ${label(hours)}</span></h2>
  ${
    usage.length === 0
      ? html`<p class="muted">No requests in this window.</p>`
      : html`<div class="table-wrap"><table>
  <thead><tr><th>token</th><th class="num">requests</th><th class="num">failed</th><th class="num">attempts</th><th class="num">input</th><th class="num">output</th><th class="num hide-sm">cache read</th><th class="num" title="cache read ÷ (input + cache read + cache write)">cache share</th><th class="num">cost</th></tr></thead>
  <tbody>${usage.map(
    (
      u,
    ) => html`<tr><td>${u.token ?? html`<span class="muted">(open proxy)</span>`}</td><td class="num">${count(u.requests)}</td><td class="num">${count(u.error)}</td><td class="num">${count(u.attempts)}</td>
    <td class="num">${count(u.input_tokens)}</td><td class="num">${count(u.output_tokens)}</td><td class="num hide-sm">${count(u.cache_read_tokens)}</td><td class="num">${percent(cacheReadShare(u))}</td><td class="num">${usd(u.cost_usd)}</td></tr>`,
  )}</tbody></table></div>`
  }
</section>`;
}
