import type { App } from '../app.js';
import type { ChannelHeaders } from '../config/schema.js';
import { fingerprint, redactSecretText } from '../config/secrets.js';
import type { Channel, Snapshot } from '../config/snapshot.js';
import type { ChannelKeySources } from '../config/write-back/key-sources.js';
import { activeEntries } from '../proxy/cooldown.js';
import { configWritable } from './core-routes.js';

const iso = (ms: number) => new Date(ms).toISOString();

/** One channel of `GET /admin/channels`. */
export function channelJson(
  c: Channel,
  snapshot: Snapshot,
  app: Pick<App, 'proxyState'> & Partial<Pick<App, 'limits'>>,
  now: number,
  sources?: ChannelKeySources,
) {
  const active = activeEntries(app.proxyState.cooldowns, now, snapshot.channels).filter(
    (e) => e.channel === c.name,
  );
  const cooling = (scope: string, keyIndex?: number) =>
    active
      .filter((e) => e.scope === scope && (keyIndex === undefined || e.keyIndex === keyIndex))
      .reduce((max, e) => Math.max(max, e.until), 0);
  const channelUntil = cooling('channel');
  return {
    name: c.name,
    index: c.index,
    url: c.keys.reduce((u, k) => (k.value ? u.split(k.value).join(k.fingerprint) : u), c.shownUrl),
    priority: c.priority,
    models: c.models ?? null,
    model_map: c.modelMap,
    enabled: c.enabled,
    auth: c.auth,
    protocol: c.protocol,
    headers: headerRulesView(snapshot.config.channels[c.index]?.headers),
    problems: c.problems,
    /** Sessions pinned to this channel now (session affinity). */
    pinned_sessions: app.proxyState.pins.sessionsOn(c.name),
    // Caps and the outbound proxy (its userinfo masked), with this instance's current load.
    max_concurrency: c.maxConcurrency ?? null,
    rpm: c.rpm ?? null,
    proxy: c.proxy ? { url: c.proxy.shown, source: c.proxy.source } : null,
    ...(app.limits
      ? {
          inflight: app.limits.channelInflight(c.name),
          started_last_minute: app.limits.recentStarts(c.name, now),
        }
      : {}),
    ...(channelUntil > now ? { cooling_until: iso(channelUntil), remaining_ms: channelUntil - now } : {}),
    keys: c.keys.map((k) => {
      const until = cooling('key', k.index);
      return {
        index: k.index,
        fingerprint: k.fingerprint,
        pinned_sessions: app.proxyState.pins.sessionsOn(c.name, k.index),
        ...(until > now ? { cooling_until: iso(until), remaining_ms: until - now } : {}),
      };
    }),
    // How the file writes the keys (references only; null for a literal). Positions are those of
    // the file, which `{ keep: i }` in an edit refers to; absent when the file changed since the load.
    ...(sources
      ? {
          key_field: sources.field ?? null,
          key_refs: sources.refs.map((r) => (r === null ? null : redactSecretText(r))),
        }
      : {}),
    cooldowns: active.map((e) => ({
      scope: e.scope,
      ...(e.model !== undefined ? { model: e.model } : {}),
      ...(e.keyIndex !== undefined ? { key_index: e.keyIndex } : {}),
      until: iso(e.until),
      remaining_ms: e.until - now,
      reason: e.reason,
      failures: e.failures,
    })),
  };
}

/**
 * A channel's header rules as the admin API and the dashboard show them: the values a rule sets
 * may be credentials, so they appear as fingerprints only.
 */
function headerRulesView(h: ChannelHeaders | undefined) {
  if (!h) return null;
  return {
    beta: h.beta ?? null,
    set: Object.fromEntries(Object.entries(h.set ?? {}).map(([name, value]) => [name, fingerprint(value)])),
    remove: h.remove ?? [],
  };
}

/** The `GET /admin/channels` body: every channel of the serving snapshot with its runtime state. */
export async function channelList(app: App) {
  const snapshot = app.reloader.current;
  const now = app.now();
  const file = await app.writeBack.keySources();
  const sources = file?.hash === snapshot.hash ? file.channels : undefined;
  return {
    hash: snapshot.hash,
    generation: snapshot.generation,
    writable: await configWritable(app),
    channels: snapshot.channels.map((c) => channelJson(c, snapshot, app, now, sources?.get(c.name))),
  };
}

/** One channel as the views show it. */
export type ChannelView = ReturnType<typeof channelJson>;
