/**
 * The add/edit channel form and the parsing of what it posts. Keys are never shown or taken as
 * values: existing keys appear as fingerprints with the `${…}` reference the file holds, and a new
 * key must be written as such a reference (the write-back refuses a literal, with an explanation).
 */
import type { App } from '../../app.js';
import {
  type ChannelAuth,
  ChannelAuthSchema,
  type ChannelProtocol,
  ChannelProtocolSchema,
} from '../../config/schema.js';
import type {
  ChannelChanges,
  ChannelEdit,
  KeyInput,
  NewChannel,
} from '../../config/write-back/channel-edit.js';
import { type ChannelView, channelList } from '../channel-view.js';
import { type Html, html } from '../html.js';

const AUTH = ChannelAuthSchema.options;

/** How the form names each way of sending the key. */
const AUTH_LABEL: Readonly<Record<ChannelAuth, string>> = {
  'x-api-key': 'x-api-key',
  bearer: 'Authorization: Bearer',
  both: 'both',
};
const PROTOCOL = ChannelProtocolSchema.options;

/** How the form names each upstream protocol. */
const PROTOCOL_LABEL: Readonly<Record<ChannelProtocol, string>> = {
  anthropic: 'Anthropic (Messages API)',
  openai: 'OpenAI-compatible (Chat Completions)',
};

/** The form for a new channel (`channel` undefined) or an existing one. */
export function channelForm(opts: { hash: string; channel?: ChannelView; error?: Html }): Html {
  const c = opts.channel;
  const action = c ? `/ui/channels/${encodeURIComponent(c.name)}/edit` : '/ui/channels/new';
  const modelMap = c
    ? Object.entries(c.model_map)
        .map(([f, t]) => `${f} -> ${t}`)
        .join('\n')
    : '';
  return html`<section class="panel" id="form-panel">
  <h2>${c ? html`Edit channel <code>${c.name}</code>` : 'Add a channel'}</h2>
  ${opts.error ?? ''}
  <form hx-post="${action}" hx-target="#form-panel" hx-swap="outerHTML" class="form-grid">
    <input type="hidden" name="hash" value="${opts.hash}">
    <label for="f-name">Name</label><input id="f-name" name="name" required value="${c?.name ?? ''}" autocomplete="off">
    <label for="f-protocol">Protocol</label><select id="f-protocol" name="protocol">${PROTOCOL.map(
      (p) =>
        html`<option value="${p}"${(c?.protocol ?? 'anthropic') === p ? html` selected` : ''}>${PROTOCOL_LABEL[p]}</option>`,
    )}</select>
    <span class="hint">OpenAI-compatible: requests and answers are translated; the base URL is the OpenAI one (e.g. <code>https://api.deepseek.com/v1</code>) and the key goes as <code>Authorization: Bearer</code>.</span>
    <label for="f-url">Base URL</label><input id="f-url" name="url" type="text" inputmode="url" required value="${c?.url ?? 'https://api.anthropic.com'}" size="48">
    <span class="hint">May hold <code>\${NAME}</code> references; a password or query value in it is shown masked (<code>…</code>): to change one, type the whole URL again.</span>
    <label for="f-priority">Priority</label><input id="f-priority" name="priority" type="number" value="${c?.priority ?? 0}" class="inline-input">
    <span class="hint">Higher first; equal priorities share traffic round-robin.</span>
    <label for="f-models">Models</label><input id="f-models" name="models" value="${c?.models?.join(', ') ?? ''}" size="48" placeholder="claude-*, claude-sonnet-4-5">
    <span class="hint">Exact names or globs, separated by commas. Empty: every model.</span>
    <label for="f-map">Model map</label><textarea id="f-map" name="model_map" rows="3" cols="48" placeholder="claude-3-5-haiku-latest -> claude-haiku-4-5">${modelMap}</textarea>
    <span class="hint">One rewrite per line: <code>requested -> sent</code>.</span>
    <label for="f-auth">Key sent as</label><select id="f-auth" name="auth">${AUTH.map(
      (a) =>
        html`<option value="${a}"${(c?.auth ?? 'x-api-key') === a ? html` selected` : ''}>${AUTH_LABEL[a]}</option>`,
    )}</select>
    <span class="hint">Anthropic channels only: an OpenAI-compatible channel always sends <code>Authorization: Bearer</code>.</span>
    <label for="f-concurrency">Max concurrency</label><input id="f-concurrency" name="max_concurrency" type="number" min="1" value="${c?.max_concurrency ?? ''}" class="inline-input">
    <span class="hint">Attempts in flight at once on this channel; at the cap it is skipped (not cooled). Empty: no cap.</span>
    <label for="f-rpm">Requests per minute</label><input id="f-rpm" name="rpm" type="number" min="1" value="${c?.rpm ?? ''}" class="inline-input">
    <span class="hint">Attempts started per rolling minute; likewise. Empty: no cap.</span>
    <label for="f-proxy">Outbound proxy</label><input id="f-proxy" name="proxy" type="text" inputmode="url" value="${c?.proxy?.source === 'channel' ? c.proxy.url : ''}" size="48" placeholder="http://user:\${PROXY_PASS}@proxy.example:3128">
    <span class="hint">http(s) proxy URL; credentials as a <code>\${NAME}</code> reference, shown masked (<code>…</code>): to change one, type the whole URL again. Empty: HTTPS_PROXY / HTTP_PROXY / NO_PROXY apply${
      c?.proxy && c.proxy.source !== 'channel'
        ? html` (now: <code>${c.proxy.url}</code> from ${c.proxy.source})`
        : ''
    }.</span>
    <label for="f-enabled">Enabled</label><span><input id="f-enabled" name="enabled" type="checkbox" value="1"${c && !c.enabled ? '' : html` checked`}></span>
    <span>Keys</span>
    <div>
      ${
        c
          ? c.keys.map(
              (
                k,
              ) => html`<div><label><input type="checkbox" name="keep" value="${k.index}" checked> keep <code>${k.fingerprint}</code>
          ${c.key_refs?.[k.index] ? html`<span class="muted">as <code>${c.key_refs[k.index]}</code></span>` : html`<span class="muted">(a literal in the file)</span>`}</label></div>`,
            )
          : ''
      }
      <div><input name="newkey" placeholder="\${ANTHROPIC_KEY_2}" size="32" autocomplete="off"> <input name="newkey" placeholder="\${file:/run/credentials/ccload/key}" size="32" autocomplete="off"></div>
    </div>
    <span class="hint">A new key is written as a reference — <code>\${NAME}</code>, <code>\${NAME:-default}</code> or <code>\${file:PATH}</code> — never as the key
      itself: set the variable in ccload's environment (or the file) and the reference in git stays secret-free.</span>
    <span></span><span><button type="submit" class="primary">${c ? 'Save' : 'Add channel'}</button> <a class="button" href="/channels">Cancel</a></span>
  </form>
</section>`;
}

function list(s: string | null): string[] {
  return (s ?? '')
    .split(/[,\n]/)
    .map((x) => x.trim())
    .filter(Boolean);
}

function modelMap(s: string | null): Record<string, string> | string {
  const out: Record<string, string> = {};
  for (const line of (s ?? '')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)) {
    const m = /^(.+?)\s*->\s*(.+)$/.exec(line);
    if (!m) return `model map line "${line}" is not "requested -> sent"`;
    out[m[1]!] = m[2]!;
  }
  return out;
}

function same(a: readonly string[] | null | undefined, b: readonly string[] | null | undefined): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

/** The edit a posted form asks for, or a message saying what is wrong. */
export function editFromForm(f: URLSearchParams, current: ChannelView | undefined): ChannelEdit | string {
  const name = (f.get('name') ?? '').trim();
  const url = (f.get('url') ?? '').trim();
  const priority = Number(f.get('priority') ?? 0);
  if (!name) return 'the channel needs a name';
  if (!url) return 'the channel needs a base URL';
  if (!Number.isInteger(priority)) return 'priority must be a whole number';
  const models = list(f.get('models'));
  const map = modelMap(f.get('model_map'));
  if (typeof map === 'string') return map;
  const auth = AUTH.find((a) => a === f.get('auth')) ?? 'x-api-key';
  const protocol = PROTOCOL.find((p) => p === f.get('protocol')) ?? 'anthropic';
  const enabled = f.get('enabled') === '1';
  const cap = (field: 'max_concurrency' | 'rpm'): number | undefined | string => {
    const v = (f.get(field) ?? '').trim();
    if (v === '') return undefined;
    const n = Number(v);
    return Number.isInteger(n) && n >= 1 ? n : `${field} must be a whole number of at least 1 (or empty)`;
  };
  const maxConcurrency = cap('max_concurrency');
  if (typeof maxConcurrency === 'string') return maxConcurrency;
  const rpm = cap('rpm');
  if (typeof rpm === 'string') return rpm;
  const proxy = (f.get('proxy') ?? '').trim();
  const fresh = f
    .getAll('newkey')
    .map((k) => k.trim())
    .filter(Boolean);

  if (!current) {
    const channel: NewChannel = {
      name,
      ...(protocol !== 'anthropic' ? { protocol } : {}),
      url,
      ...(fresh.length === 1 ? { api_key: fresh[0]! } : fresh.length > 1 ? { keys: fresh } : {}),
      ...(auth !== 'x-api-key' ? { auth } : {}),
      priority,
      ...(models.length ? { models } : {}),
      ...(Object.keys(map).length ? { model_map: map } : {}),
      ...(enabled ? {} : { enabled: false }),
      ...(maxConcurrency !== undefined ? { max_concurrency: maxConcurrency } : {}),
      ...(rpm !== undefined ? { rpm } : {}),
      ...(proxy ? { proxy } : {}),
    };
    return { action: 'add', channel };
  }

  // Only what changed goes into the edit, so the file changes by exactly those lines.
  const changes: { -readonly [K in keyof ChannelChanges]: ChannelChanges[K] } = {};
  if (name !== current.name) changes.name = name;
  if (url !== current.url) changes.url = url;
  if (priority !== current.priority) changes.priority = priority;
  if (!same(models.length ? models : null, current.models)) changes.models = models.length ? models : null;
  if (JSON.stringify(map) !== JSON.stringify(current.model_map))
    changes.model_map = Object.keys(map).length ? map : null;
  if (auth !== current.auth) changes.auth = auth;
  if (protocol !== current.protocol) changes.protocol = protocol === 'anthropic' ? null : protocol;
  if (enabled !== current.enabled) changes.enabled = enabled;
  if ((maxConcurrency ?? null) !== current.max_concurrency) changes.max_concurrency = maxConcurrency ?? null;
  if ((rpm ?? null) !== current.rpm) changes.rpm = rpm ?? null;
  // The form shows the channel's own proxy masked: the same text back means "unchanged".
  const ownProxy = current.proxy?.source === 'channel' ? current.proxy.url : '';
  if (proxy !== ownProxy) changes.proxy = proxy || null;
  const keep = f.getAll('keep').map(Number);
  const allKept = keep.length === current.keys.length && keep.every((k, i) => k === current.keys[i]?.index);
  if (!allKept || fresh.length > 0) {
    const keys: KeyInput[] = [...keep.map((i) => ({ keep: i })), ...fresh];
    if (keys.length === 0) return 'keep at least one key, or add one as a reference';
    if (keys.length === 1 && current.key_field !== 'keys') changes.api_key = keys[0]!;
    else changes.keys = keys;
  }
  if (Object.keys(changes).length === 0) return 'nothing changed';
  if (Object.keys(changes).length === 1 && changes.enabled !== undefined) {
    return { action: enabled ? 'enable' : 'disable', name: current.name };
  }
  if (Object.keys(changes).length === 1 && changes.priority !== undefined) {
    return { action: 'set-priority', name: current.name, priority };
  }
  return { action: 'update', name: current.name, changes };
}

/** The current view of one channel, for the edit form. */
export async function findChannel(app: App, name: string): Promise<{ hash: string; channel?: ChannelView }> {
  const l = await channelList(app);
  return { hash: l.hash, channel: l.channels.find((c) => c.name === name) };
}
