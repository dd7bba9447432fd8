/**
 * The Tokens page: every client token with its limits — allowed models and channels, requests in
 * flight against its max_concurrency, today's and this month's spend against its budgets (a bar
 * each) and when the windows reset. Token values never appear: names only.
 */
import type { App } from '../../app.js';
import type { ClientToken } from '../../config/snapshot.js';
import { type Html, html } from '../html.js';
import { time, usd } from './format.js';

function patterns(list: readonly string[] | undefined, all: string): Html {
  return list ? html`${list.map((p) => html`<code>${p}</code> `)}` : html`<span class="muted">${all}</span>`;
}

/** Spend against a budget: amount, limit and a bar (a native meter: no inline styles). */
function budget(spent: number, limit: number | undefined): Html {
  if (limit === undefined) return html`${usd(spent)} <span class="muted small">no budget</span>`;
  const left = Math.max(0, limit - spent);
  return html`<div class="nowrap">${usd(spent)} <span class="muted">of ${usd(limit)}</span></div>
    <meter class="budget" min="0" max="${limit}" low="${limit * 0.75}" high="${limit * 0.9}" optimum="0" value="${Math.min(spent, limit)}" title="${usd(left)} left">${Math.round((spent / limit) * 100)}%</meter>`;
}

function stateBadge(t: ClientToken, inflight: number, spend: { day: number; month: number }): Html {
  const p = t.policy;
  if (
    (p.daily !== undefined && spend.day >= p.daily) ||
    (p.monthly !== undefined && spend.month >= p.monthly)
  )
    return html`<span class="badge badge-bad" title="new requests get 402 until the window resets">budget spent</span>`;
  if (p.maxConcurrency !== undefined && inflight >= p.maxConcurrency)
    return html`<span class="badge badge-warn" title="new requests get 429 until one ends">at limit</span>`;
  return html`<span class="badge badge-ok">ok</span>`;
}

/** The tokens panel (refreshed every 5 s). */
export async function tokensPanel(app: App): Promise<Html> {
  const snapshot = app.reloader.current;
  const now = app.now();
  const w = app.limits.windows(now);
  const tz = snapshot.config.auth.budget_time_zone;
  const tokens = snapshot.tokens;
  const lastSync = app.limits.lastSync;
  return html`<section class="panel" id="tokens-panel" hx-get="/ui/tokens" hx-trigger="every 5s" hx-swap="outerHTML">
  <h2>${tokens.length} client token${tokens.length === 1 ? '' : 's'} <span class="muted small">budget windows in <code>${tz}</code>: today from ${time(w.dayStart)}, resets ${time(w.dayEnd)}; month resets ${time(w.monthEnd)}</span></h2>
  <div class="table-wrap"><table class="stack">
  <thead><tr><th>state</th><th>token</th><th>models</th><th>channels</th><th class="num">in flight</th><th>today</th><th>this month</th></tr></thead>
  <tbody>${tokens.map((t) => {
    const inflight = app.limits.tokenInflight(t.name);
    const spend = app.limits.spend(t.name, now);
    const p = t.policy;
    return html`<tr>
    <td>${stateBadge(t, inflight, spend)}</td>
    <td><strong>${t.name}</strong>${t.source === 'env' ? html`<div class="small muted">from CCLOAD_AUTH</div>` : ''}</td>
    <td class="small" data-label="models">${patterns(p.models, 'every model')}</td>
    <td class="small" data-label="channels">${patterns(p.channels, 'every channel')}</td>
    <td class="num" data-label="in flight">${inflight}${p.maxConcurrency !== undefined ? html` <span class="muted">/ ${p.maxConcurrency}</span>` : ''}</td>
    <td data-label="today">${budget(spend.day, p.daily)}</td>
    <td data-label="this month">${budget(spend.month, p.monthly)}</td>
  </tr>`;
  })}</tbody></table></div>
  ${tokens.length === 0 ? html`<p class="muted">No client tokens: the proxy is open to anyone who can reach it.</p>` : ''}
  <p class="muted small">Spend is the recorded cost of answering attempts (pricing), read back from the database every few seconds${
    lastSync !== undefined ? html` (last ${time(lastSync, 'time')})` : ''
  }, so other instances on the same database count too. A token over a budget gets 402 until the window resets; one at its max_concurrency gets 429 with retry-after; requests in flight always finish. In-flight counts are this instance's.</p>
</section>`;
}
