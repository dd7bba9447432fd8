/**
 * The Logs page: attempts newest first, filtered by time window, channel, model, status and client
 * token, paginated, with a live tail that polls while it is on.
 */
import type { App } from '../../app.js';
import { parseStatusFilter, queryLogs } from '../../store/queries.js';
import { type Html, html } from '../html.js';
import { count, ms, statusBadge, time, usd } from './format.js';

const PAGE = 50;
const WINDOWS = [1, 6, 24, 72, 168, 720] as const;
const STATUSES = [
  ['', 'any status'],
  ['error', 'failed (non-2xx)'],
  ['2xx', '2xx'],
  ['4xx', '4xx'],
  ['5xx', '5xx'],
  ['429', '429'],
  ['499', '499 (client gone)'],
] as const;

/** The filters of the logs page, from its query string. */
export interface LogFilters {
  readonly hours: number;
  readonly channel: string;
  readonly model: string;
  readonly status: string;
  readonly token: string;
  readonly offset: number;
  readonly live: boolean;
}

/** Reads the filters from a URL, clamping what is out of range. */
export function logFilters(url: URL): LogFilters {
  const q = url.searchParams;
  const hours = Number(q.get('hours'));
  const offset = Number(q.get('offset'));
  return {
    hours: WINDOWS.includes(hours as (typeof WINDOWS)[number]) ? hours : 24,
    channel: q.get('channel') ?? '',
    model: q.get('model') ?? '',
    status: STATUSES.some(([v]) => v === q.get('status')) ? (q.get('status') ?? '') : '',
    token: q.get('token') ?? '',
    offset: Number.isInteger(offset) && offset > 0 ? Math.min(offset, 1_000_000) : 0,
    live: q.get('live') === '1',
  };
}

function query(f: LogFilters, change: Partial<LogFilters>): string {
  const g = { ...f, ...change };
  const p = new URLSearchParams();
  if (g.hours !== 24) p.set('hours', String(g.hours));
  if (g.channel) p.set('channel', g.channel);
  if (g.model) p.set('model', g.model);
  if (g.status) p.set('status', g.status);
  if (g.token) p.set('token', g.token);
  if (g.offset) p.set('offset', String(g.offset));
  if (g.live) p.set('live', '1');
  const s = p.toString();
  return s ? `?${s}` : '';
}

/** The filter form. */
export function logFilterForm(app: App, f: LogFilters): Html {
  const s = app.reloader.current;
  const tokens = s.tokens.map((t) => t.name);
  const opt = (value: string, label: string, current: string) =>
    html`<option value="${value}"${value === current ? html` selected` : ''}>${label}</option>`;
  return html`<form class="filters" hx-get="/ui/logs" hx-target="#logs-panel" hx-swap="outerHTML" hx-push-url="true" hx-trigger="change, submit">
  <label>window<select name="hours">${WINDOWS.map((h) => opt(String(h), h < 48 ? `last ${h} h` : `last ${h / 24} days`, String(f.hours)))}</select></label>
  <label>channel<select name="channel">${opt('', 'any channel', f.channel)}${s.channels.map((c) => opt(c.name, c.name, f.channel))}</select></label>
  <label>model<input name="model" value="${f.model}" placeholder="any model" size="18"></label>
  <label>status<select name="status">${STATUSES.map(([v, l]) => opt(v, l, f.status))}</select></label>
  <label>client token<select name="token">${opt('', 'any token', f.token)}${tokens.map((t) => opt(t, t, f.token))}</select></label>
  <label>live tail<select name="live">${opt('', 'off', f.live ? '1' : '')}${opt('1', 'on (every 3 s)', f.live ? '1' : '')}</select></label>
  <button type="submit">Filter</button>
</form>`;
}

/** The table panel (swapped on filter changes, pagination, and every 3 s while live). */
export async function logsPanel(app: App, f: LogFilters): Promise<Html> {
  const status = f.status ? parseStatusFilter(f.status) : undefined;
  const { entries, total } = await queryLogs(
    app.db,
    {
      hours: f.hours,
      limit: PAGE,
      offset: f.offset,
      ...(f.channel ? { channel: f.channel } : {}),
      ...(f.model ? { model: f.model } : {}),
      ...(f.token ? { token: f.token } : {}),
      ...(status ? { status } : {}),
    },
    app.now(),
  );
  const live = f.live && f.offset === 0;
  const poll = live ? html` hx-get="/ui/logs${query(f, {})}" hx-trigger="every 3s" hx-swap="outerHTML"` : '';
  const pager = (label: string, offset: number, enabled: boolean) =>
    enabled
      ? html`<button hx-get="/ui/logs${query(f, { offset, live: false })}" hx-target="#logs-panel" hx-swap="outerHTML" hx-push-url="true">${label}</button>`
      : html`<button disabled>${label}</button>`;
  return html`<section class="panel" id="logs-panel"${poll}>
  <h2>${count(total)} attempt${total === 1 ? '' : 's'} <span class="muted small">${f.offset + 1}–${Math.min(total, f.offset + PAGE)} shown${live ? ' · live' : ''}</span>
    <span class="spacer"></span>${pager('← newer', Math.max(0, f.offset - PAGE), f.offset > 0)} ${pager('older →', f.offset + PAGE, f.offset + PAGE < total)}</h2>
  <div class="table-wrap"><table class="stack">
  <thead><tr><th>time</th><th>status</th><th>channel</th><th>model</th><th class="hide-sm">token</th><th class="num">try</th><th class="num">ttfb</th><th class="num">duration</th><th class="num">tokens in/out</th><th class="num hide-sm">cost</th><th class="hide-sm">request</th></tr></thead>
  <tbody>${entries.map(
    (e) => html`<tr>
    <td class="nowrap">${time(Date.parse(e.time))}</td>
    <td>${statusBadge(e.status_code)}${e.error_class ? html`<div class="small muted">${e.error_class.replace(/^CCL_/, '')}</div>` : ''}</td>
    <td>${e.channel_name ?? '–'}${e.key_fp ? html` <code class="small">${e.key_fp}</code>` : ''}${
      e.session_fp && e.affinity && e.affinity !== 'none'
        ? html`<div class="small muted" title="session ${e.session_fp}: what session affinity did">session ${e.affinity}</div>`
        : ''
    }</td>
    <td class="small"><code>${e.model ?? '–'}</code>${e.model_sent && e.model_sent !== e.model ? html` → <code>${e.model_sent}</code>` : ''}${e.is_streaming ? html` <span class="badge badge-off">stream</span>` : ''}${e.endpoint === 'count_tokens' ? html` <span class="badge badge-off">count</span>` : ''}</td>
    <td class="hide-sm">${e.token ?? html`<span class="muted">–</span>`}</td>
    <td class="num" data-label="attempt">${e.attempt}${e.final ? '' : html`<span class="muted" title="failed over to the next attempt">↷</span>`}</td>
    <td class="num" data-label="ttfb">${ms(e.first_byte_time === null ? null : e.first_byte_time * 1000)}</td>
    <td class="num" data-label="duration">${ms(e.duration === null ? null : e.duration * 1000)}</td>
    <td class="num" data-label="tokens in/out">${e.input_tokens === null ? '–' : html`${count(e.input_tokens)} / ${count(e.output_tokens)}`}</td>
    <td class="num hide-sm">${e.cost_usd === null ? '–' : usd(e.cost_usd)}</td>
    <td class="hide-sm"><code class="small">${e.request_id}</code></td>
  </tr>`,
  )}</tbody></table></div>
  ${entries.length === 0 ? html`<p class="muted">No attempts match these filters.</p>` : ''}
</section>`;
}
