/**
 * The Channels page: every channel with its priority, models, keys (fingerprints only) and state —
 * healthy, cooling (scope, reason, time left as a live countdown), disabled or unusable — and the
 * actions: enable/disable, set priority, edit, add, delete, clear cooldowns, test. Edits are
 * written back into ccload.yaml; each form carries the hash the page was rendered from, so an edit
 * based on a stale view is refused (412) instead of overwriting someone's commit.
 */
import type { App } from '../../app.js';
import { isGlob } from '../../config/glob.js';
import type { WriteBackResult } from '../../config/write-back/apply-edit.js';
import type { ChannelTestResult } from '../channel-test.js';
import { type ChannelView, channelList } from '../channel-view.js';
import { type Html, html } from '../html.js';
import { shortHash } from './format.js';

const SCOPE: Record<string, string> = {
  channel: 'channel',
  key: 'key',
  'channel+model': 'model',
  'key+model': 'key + model',
};

/** A notice shown atop the panel after an action. */
export interface Notice {
  readonly kind: 'ok' | 'error' | 'info';
  readonly body: Html;
}

/** The notice for a write-back verdict. */
export function writeBackNotice(r: WriteBackResult, what: string): Notice {
  if (r.ok) {
    if (!r.changed) return { kind: 'info', body: html`${what}: nothing to change.` };
    const commit = r.commit ? html` · committed <code>${r.commit.slice(0, 10)}</code>` : '';
    const commitErr = r.commitError ? html` · <strong>git commit failed</strong>: ${r.commitError}` : '';
    return {
      kind: r.commitError ? 'error' : 'ok',
      body: html`${what}: written to the file, generation ${r.generation} serving${commit}${commitErr}.`,
    };
  }
  if (r.error === 'conflict') {
    return {
      kind: 'error',
      body: html`<strong>Conflict:</strong> ccload.yaml changed since this page was loaded (someone edited or committed it).
        Nothing was written. <a href="" class="button">Reload the page</a> to see the current file, then try again.`,
    };
  }
  if (r.error === 'invalid') {
    return {
      kind: 'error',
      body: html`<strong>Refused:</strong> the edited file would be invalid, so nothing was written.
        <ul>${r.errors.map((e) => html`<li><span class="mono">${e.line}:${e.col}</span> ${e.path ? html`<code>${e.path}</code>: ` : ''}${e.message}</li>`)}</ul>`,
    };
  }
  return { kind: 'error', body: html`<strong>Refused:</strong> ${r.message}` };
}

function notice(n: Notice | undefined): Html {
  return n ? html`<div class="notice notice-${n.kind}" role="status">${n.body}</div>` : html``;
}

function state(c: ChannelView): Html {
  if (!c.enabled) return html`<span class="badge badge-off">disabled</span>`;
  if (c.problems.length > 0)
    return html`<span class="badge badge-bad" title="${c.problems.join('; ')}">no key</span>`;
  const active = c.cooldowns.filter((x) => x.remaining_ms > 0);
  if (active.length === 0) return html`<span class="badge badge-ok">healthy</span>`;
  const whole = active.find((x) => x.scope === 'channel');
  return whole
    ? html`<span class="badge badge-bad">cooling</span>`
    : html`<span class="badge badge-warn" title="some keys or models are cooling">partly cooling</span>`;
}

function cooldownList(c: ChannelView, now: number): Html {
  if (c.cooldowns.length === 0) return html`<span class="muted">–</span>`;
  return html`${c.cooldowns.map(
    (x) =>
      html`<div class="small"><strong>${SCOPE[x.scope] ?? x.scope}</strong>${x.model ? html` <code>${x.model}</code>` : ''}${
        x.key_index !== undefined ? html` key #${x.key_index + 1}` : ''
      }: ${x.reason} · <span data-until="${now + x.remaining_ms}">${Math.ceil(x.remaining_ms / 1000)}s</span> left${
        x.failures > 1 ? html` · ${x.failures}× in a row` : ''
      }</div>`,
  )}`;
}

/** The channel's header rules, one short line each (values a rule sets show as fingerprints). */
function headerRules(c: ChannelView): Html {
  const h = c.headers;
  if (!h) return html``;
  const beta = h.beta
    ? 'drop' in h.beta
      ? html`<div>beta: drop ${h.beta.drop.map((b) => html`<code>${b}</code> `)}</div>`
      : html`<div>beta: allow only ${h.beta.allow.map((b) => html`<code>${b}</code> `)}</div>`
    : '';
  const set = Object.entries(h.set);
  return html`<div class="small muted header-rules" title="request header rules (channels[].headers)">${beta}${
    set.length
      ? html`<div>set ${set.map(([n, v]) => html`<code>${n}</code> <span class="mono">${v}</span> `)}</div>`
      : ''
  }${h.remove.length ? html`<div>remove ${h.remove.map((n) => html`<code>${n}</code> `)}</div>` : ''}</div>`;
}

function keys(c: ChannelView, now: number): Html {
  if (c.keys.length === 0) return html`<span class="muted">none</span>`;
  return html`${c.keys.map((k) => {
    const ref = c.key_refs?.[k.index];
    return html`<div class="small nowrap"><code title="${ref ?? 'literal in the file'}">${k.fingerprint}</code>${
      k.remaining_ms
        ? html` <span class="badge badge-warn">cooling <span data-until="${now + k.remaining_ms}">${Math.ceil(k.remaining_ms / 1000)}s</span></span>`
        : ''
    }${c.keys.length > 1 ? html` <span class="muted" title="sessions pinned to this key">· ${k.pinned_sessions} sessions</span>` : ''}</div>`;
  })}`;
}

/** Caps with the current load, and the outbound proxy (userinfo masked), when the channel has any. */
function limitsLine(c: ChannelView): Html {
  const parts: Html[] = [];
  if (c.max_concurrency !== null)
    parts.push(
      html`<span title="attempts in flight now / max_concurrency">${c.inflight ?? 0} / ${c.max_concurrency} in flight</span>`,
    );
  else if (c.inflight) parts.push(html`<span>${c.inflight} in flight</span>`);
  if (c.rpm !== null)
    parts.push(
      html`<span title="attempts started in the last minute / rpm">${c.started_last_minute ?? 0} / ${c.rpm} per min</span>`,
    );
  if (c.proxy)
    parts.push(
      html`<span title="${c.proxy.source === 'channel' ? 'proxy: of this channel' : `from ${c.proxy.source}`}">via <code>${c.proxy.url}</code>${c.proxy.source === 'channel' ? '' : html` (${c.proxy.source})`}</span>`,
    );
  if (parts.length === 0) return html``;
  return html`<div class="small muted limits">${parts.map((p, i) => html`${i ? ' · ' : ''}${p}`)}</div>`;
}

function actions(c: ChannelView, hash: string, editable: boolean): Html {
  const name = encodeURIComponent(c.name);
  const base = `/ui/channels/${name}`;
  const post = (path: string, label: string, extra: Html = html``, cls = '') =>
    html`<form hx-post="${base}/${path}" hx-target="#channels-panel" hx-swap="outerHTML"${extra}><input type="hidden" name="hash" value="${hash}"><button type="submit" class="${cls}">${label}</button></form>`;
  const cooling = c.cooldowns.length > 0;
  const testModelInput = c.models?.some((m) => !isGlob(m)) || Object.keys(c.model_map).length > 0;
  return html`${editable ? post(c.enabled ? 'disable' : 'enable', c.enabled ? 'Disable' : 'Enable') : ''}
    ${cooling ? post('clear', 'Clear cooldown') : ''}
    <form hx-post="${base}/test" hx-target="#channel-test-result" hx-swap="innerHTML">
      ${testModelInput ? '' : html`<input name="model" value="claude-haiku-4-5" class="small test-model" title="model to test with (this channel names only globs)" aria-label="model to test ${c.name} with">`}
      <button type="submit"><span class="when-idle">Test</span><span class="when-busy">Testing…</span></button></form>
    ${editable ? html`<a class="button" href="/channels/edit?name=${name}">Edit</a>` : ''}
    ${editable ? post('delete', 'Delete', html` hx-confirm="Delete channel ${c.name} from ccload.yaml?"`, 'danger') : ''}`;
}

function priority(c: ChannelView, hash: string, editable: boolean): Html {
  if (!editable) return html`${c.priority}`;
  return html`<form class="nowrap" hx-post="/ui/channels/${encodeURIComponent(c.name)}/priority" hx-target="#channels-panel" hx-swap="outerHTML">
    <input type="hidden" name="hash" value="${hash}"><input type="number" name="priority" value="${c.priority}" class="inline-input" aria-label="priority of ${c.name}" required>
    <button type="submit" title="set the priority">Set</button></form>`;
}

/** The channels panel (swapped in place after every action). */
export async function channelsPanel(app: App, opts: { notice?: Notice } = {}): Promise<Html> {
  const list = await channelList(app);
  const now = app.now();
  const editable = list.writable;
  const rows = [...list.channels].sort((a, b) => b.priority - a.priority || a.index - b.index);
  return html`<section class="panel" id="channels-panel" hx-get="/ui/channels" hx-trigger="refresh" hx-swap="outerHTML">
  <h2>${list.channels.length} channel${list.channels.length === 1 ? '' : 's'} <span class="muted small">generation ${list.generation} · <code>${shortHash(list.hash)}</code></span><span class="spacer"></span>
    <button hx-get="/ui/channels" hx-target="#channels-panel" hx-swap="outerHTML">Refresh</button>
    ${editable ? html`<a class="button primary" href="/channels/new">Add channel</a>` : ''}</h2>
  ${notice(opts.notice)}
  <div id="channel-test-result"></div>
  <div class="table-wrap"><table class="stack">
  <thead><tr><th>state</th><th>channel</th><th class="num">priority</th><th>models</th><th>keys</th><th>cooldowns</th><th></th></tr></thead>
  <tbody>${rows.map(
    (c) => html`<tr>
    <td>${state(c)}</td>
    <td><strong>${c.name}</strong>${c.protocol === 'openai' ? html` <span class="badge" title="OpenAI-compatible: requests and answers are translated">OpenAI</span>` : ''}<div class="small muted">${c.url}</div>${headerRules(c)}${limitsLine(c)}${
      c.problems.length
        ? html`<div class="small">${c.problems.map((p) => html`<div class="notice-error">${p}</div>`)}</div>`
        : ''
    }</td>
    <td class="num" data-label="priority">${priority(c, list.hash, editable)}</td>
    <td class="small" data-label="models">${c.models ? c.models.map((m) => html`<code>${m}</code> `) : html`<span class="muted">every model</span>`}${
      Object.keys(c.model_map).length
        ? html`<div class="muted">${Object.entries(c.model_map).map(([f, t]) => html`<div><code>${f}</code> → <code>${t}</code></div>`)}</div>`
        : ''
    }</td>
    <td data-label="keys">${keys(c, now)}<div class="small muted" title="Claude Code sessions pinned to the channel (session affinity)"><span data-label="pinned sessions">${c.pinned_sessions}</span> pinned sessions</div></td>
    <td data-label="cooldowns">${cooldownList(c, now)}</td>
    <td><div class="actions">${actions(c, list.hash, editable)}</div></td>
  </tr>`,
  )}</tbody></table></div>
  ${list.channels.length === 0 ? html`<p class="muted">No channels in the file.</p>` : ''}
</section>`;
}

/** Renders a channel test result. */
export function testResultHtml(name: string, r: ChannelTestResult): Html {
  if ('message' in r)
    return html`<div class="notice notice-error">Test of <strong>${name}</strong>: ${r.message}</div>`;
  return html`<div class="notice notice-${r.ok ? 'ok' : 'error'}">Test of <strong>${name}</strong> (${r.probe === 'models' ? 'GET /models' : 'count_tokens'}, model <code>${r.model}</code>):
    ${r.keys.map(
      (k) =>
        html`<div>key <code>${k.fingerprint}</code>: ${k.ok ? 'ok' : 'failed'} · status ${k.status || 'none'} · ${k.duration_ms} ms${
          k.input_tokens !== undefined ? html` · ${k.input_tokens} input tokens` : ''
        }${k.error ? html` · ${k.error}` : ''}</div>`,
    )}</div>`;
}
