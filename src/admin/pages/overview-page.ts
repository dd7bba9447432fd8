/**
 * The Overview page: the last 24 hours at a glance — requests, success rate, tokens, the cache-read
 * share and cost, the trend chart, every channel's health, and usage per client token. The body
 * refreshes itself.
 */
import type { App } from '../../app.js';
import { activeEntries } from '../../proxy/cooldown.js';
import { cacheReadShare, queryStats, queryTrend, queryUsage } from '../../store/queries.js';
import { type Html, html } from '../html.js';
import { trendChart } from './chart.js';
import { count, ms, percent, usd } from './format.js';

const HOURS = 24;
const BUCKET_MIN = 30;

function card(label: string, value: string, sub?: Html | string): Html {
  return html`<div class="card"><div class="label">${label}</div><div class="value">${value}</div>${sub ? html`<div class="sub">${sub}</div>` : ''}</div>`;
}

/** The overview body (swapped in place every 10 s). */
export async function overviewBody(app: App): Promise<Html> {
  const now = app.now();
  const db = app.db;
  const [trend, stats, usage] = await Promise.all([
    queryTrend(db, { hours: HOURS, bucketMin: BUCKET_MIN }, now),
    queryStats(db, { hours: HOURS }, now),
    queryUsage(db, { hours: HOURS }, now),
  ]);
  const ok = trend.reduce((s, p) => s + p.success, 0);
  const failed = trend.reduce((s, p) => s + p.error, 0);
  const sum = (
    k: 'input_tokens' | 'output_tokens' | 'cache_creation_tokens' | 'cache_read_tokens' | 'cost_usd',
  ) => trend.reduce((s, p) => s + p[k], 0);
  const input = sum('input_tokens');
  const output = sum('output_tokens');
  const cacheRead = sum('cache_read_tokens');
  const cacheWrite = sum('cache_creation_tokens');
  const attempts = stats.reduce((s, r) => s + r.total, 0);
  const snapshot = app.reloader.current;
  const cooling = activeEntries(app.proxyState.cooldowns, now, snapshot.channels);
  const inflight = await app.metrics.inflight.get();
  const pinned = app.proxyState.pins.table.pins.size;

  const perChannel = new Map<string, { total: number; success: number; p50: number | null }>();
  for (const r of stats) {
    const name = r.channel_name ?? '';
    const acc = perChannel.get(name) ?? { total: 0, success: 0, p50: null };
    acc.total += r.total;
    acc.success += r.success;
    acc.p50 =
      acc.p50 === null
        ? r.latency_p50_ms
        : r.latency_p50_ms === null
          ? acc.p50
          : Math.max(acc.p50, r.latency_p50_ms);
    perChannel.set(name, acc);
  }

  const health = snapshot.channels.map((c) => {
    const entries = cooling.filter((e) => e.channel === c.name);
    const whole = entries.find((e) => e.scope === 'channel');
    const s = perChannel.get(c.name);
    const [dot, label] = !c.enabled
      ? ['off', 'disabled']
      : c.problems.length
        ? ['bad', 'no key']
        : whole
          ? ['bad', `cooling: ${whole.reason}`]
          : entries.length
            ? ['warn', `${entries.length} scope${entries.length === 1 ? '' : 's'} cooling`]
            : ['ok', 'healthy'];
    const soonest = entries.length ? Math.max(...entries.map((e) => e.until)) : 0;
    return html`<tr>
  <td><span class="dot dot-${dot}"></span><strong>${c.name}</strong></td>
  <td>${label}${soonest > now ? html` · <span data-until="${soonest}">${Math.ceil((soonest - now) / 1000)}s</span> left` : ''}</td>
  <td class="num">${c.priority}</td>
  <td class="num">${s ? count(s.total) : '0'}</td>
  <td class="num">${s?.total ? percent(s.success / s.total) : '–'}</td>
  <td class="num hide-sm">${ms(s?.p50 ?? null)}</td>
</tr>`;
  });

  return html`<div id="overview" hx-get="/ui/overview" hx-trigger="every 10s, refresh" hx-swap="outerHTML">
<div class="cards">
  ${card('Requests · 24 h', count(ok + failed), html`${count(failed)} failed · ${count(attempts)} attempts`)}
  ${card('Success rate', ok + failed ? percent(ok / (ok + failed)) : '–', 'of client requests')}
  ${card('Tokens · 24 h', count(input + output + cacheRead + cacheWrite), html`${count(input)} in · ${count(output)} out · ${count(cacheRead)} cache read`)}
  ${card(
    'Cache reads · 24 h',
    percent(
      cacheReadShare({
        input_tokens: input,
        cache_read_tokens: cacheRead,
        cache_creation_tokens: cacheWrite,
      }),
    ),
    'of prompt tokens read from the prompt cache',
  )}
  ${card('Cost · 24 h', usd(sum('cost_usd')), 'at the prices in ccload.yaml')}
  ${card('Now', `${inflight.values[0]?.value ?? 0} in flight`, html`${cooling.length} scope${cooling.length === 1 ? '' : 's'} cooling · ${count(pinned)} session${pinned === 1 ? '' : 's'} pinned`)}
</div>
<section class="panel">
  <h2>Client requests, last 24 h</h2>
  ${trendChart(
    trend.map((p) => ({ ts: Date.parse(p.ts), success: p.success, error: p.error })),
    BUCKET_MIN * 60_000,
  )}
</section>
<section class="panel">
  <h2>Channels<span class="spacer"></span><a class="small" href="/channels">manage →</a></h2>
  <div class="table-wrap"><table>
  <thead><tr><th>channel</th><th>state</th><th class="num">priority</th><th class="num">attempts 24 h</th><th class="num">success</th><th class="num hide-sm">p50</th></tr></thead>
  <tbody>${health}</tbody></table></div>
  ${snapshot.channels.length === 0 ? html`<p class="muted">No channels configured.</p>` : ''}
</section>
<section class="panel">
  <h2>Usage by client token, last 24 h</h2>
  ${
    usage.length === 0
      ? html`<p class="muted">No requests in the last 24 hours.</p>`
      : html`<div class="table-wrap"><table>
  <thead><tr><th>token</th><th class="num">requests</th><th class="num">failed</th><th class="num">input</th><th class="num">output</th><th class="num hide-sm">cache read</th><th class="num">cost</th></tr></thead>
  <tbody>${usage.map(
    (
      u,
    ) => html`<tr><td>${u.token ?? html`<span class="muted">(open proxy)</span>`}</td><td class="num">${count(u.requests)}</td><td class="num">${count(u.error)}</td>
    <td class="num">${count(u.input_tokens)}</td><td class="num">${count(u.output_tokens)}</td><td class="num hide-sm">${count(u.cache_read_tokens)}</td><td class="num">${usd(u.cost_usd)}</td></tr>`,
  )}</tbody></table></div>`
  }
</section>
</div>`;
}
