/**
 * The channels admin JSON API (docs/interfaces.md#channels): the channel list with runtime state,
 * write-back of channel edits to ccload.yaml (through `App.writeBack`), clearing a channel's
 * cooldowns, and a channel test that costs nothing upstream (`count_tokens`).
 *
 * Key values never appear in an answer: a key is shown as its fingerprint (`…abcd`) and, when the
 * file writes it as a `${...}` reference, as that reference. Upstream error text in a test result
 * is scrubbed of the snapshot's secrets (every channel key among them) before it is returned.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Client, type Dispatcher, ProxyAgent } from 'undici';
import { z } from 'zod';
import type { App } from '../app.js';
import { isGlob } from '../config/glob.js';
import {
  ChannelAuthSchema,
  type ChannelHeaders,
  ChannelHeadersSchema,
  ChannelProtocolSchema,
} from '../config/schema.js';
import { fingerprint, redactSecretText } from '../config/secrets.js';
import type { Channel, Snapshot } from '../config/snapshot.js';
import type { WriteBackError, WriteBackResult } from '../config/write-back/apply-edit.js';
import {
  type ChannelChanges,
  type ChannelEdit,
  type ChannelField,
  isReference,
  type NewChannel,
} from '../config/write-back/channel-edit.js';
import type { ChannelKeySources } from '../config/write-back/key-sources.js';
import { ADMIN_ERRORS } from '../errors.js';
import { activeEntries } from '../proxy/cooldown.js';
import { applyHeaderRules, compileHeaderRules } from '../proxy/header-rules.js';
import { upstreamHeaders } from '../proxy/headers.js';
import { scrubberFor } from '../proxy/scrub.js';
import { configWritable, issueJson } from './core-routes.js';
import { BodyTooLarge, readBody, sendAdminError, sendJson } from './respond.js';
import type { Route } from './router.js';

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

// --- Request bodies -----------------------------------------------------------------------------

/**
 * The JSON type of each channel field in a request body. Only types are checked here: the values
 * (a valid URL, a unique name, ...) are judged by the loader, whose errors carry the file's
 * line:col. Tied to the schema's fields: a field added there must be added here (a type error).
 */
/**
 * A channel's header rules in a request body: the schema's own checks, and values a rule sets must
 * be `${...}` references — they may be credentials, and write-back never puts a secret in the file.
 */
const HeadersBody = ChannelHeadersSchema.refine(
  (h) => Object.values(h.set ?? {}).every((v) => isReference(v)),
  { message: 'headers.set values must be ${...} references (write-back never puts a secret in the file)' },
);

const FIELD_TYPES = {
  name: z.string(),
  protocol: ChannelProtocolSchema,
  url: z.string(),
  api_key: z.string(),
  keys: z.array(z.string()),
  auth: ChannelAuthSchema,
  priority: z.number(),
  models: z.array(z.string()),
  model_map: z.record(z.string(), z.string()),
  enabled: z.boolean(),
  headers: HeadersBody,
  max_concurrency: z.number(),
  rpm: z.number(),
  proxy: z.string(),
} satisfies { readonly [K in ChannelField]-?: z.ZodType<Exclude<NewChannel[K], undefined>> };

const KeyInput = z.union([z.string(), z.strictObject({ keep: z.number().int().nonnegative() })]);

// `name` and `url` stay required as they are (`.required()` would reword their error as "expected
// nonoptional").
const NewChannelBody = z.strictObject(FIELD_TYPES).partial({
  protocol: true,
  api_key: true,
  keys: true,
  auth: true,
  priority: true,
  models: true,
  model_map: true,
  enabled: true,
  headers: true,
  max_concurrency: true,
  rpm: true,
  proxy: true,
}) satisfies z.ZodType<NewChannel>;

/** A field an update may remove: `null` in the body. */
const removable = <T extends z.ZodType>(type: T) => type.nullable().optional();

const ChangesBody = z.strictObject({
  name: FIELD_TYPES.name.optional(),
  protocol: removable(FIELD_TYPES.protocol),
  url: FIELD_TYPES.url.optional(),
  api_key: removable(KeyInput),
  keys: removable(z.array(KeyInput)),
  auth: removable(FIELD_TYPES.auth),
  priority: removable(FIELD_TYPES.priority),
  models: removable(FIELD_TYPES.models),
  model_map: removable(FIELD_TYPES.model_map),
  enabled: removable(FIELD_TYPES.enabled),
  headers: removable(FIELD_TYPES.headers),
  max_concurrency: removable(FIELD_TYPES.max_concurrency),
  rpm: removable(FIELD_TYPES.rpm),
  proxy: removable(FIELD_TYPES.proxy),
} satisfies { readonly [K in ChannelField]-?: z.ZodType }) satisfies z.ZodType<ChannelChanges>;

const TestBody = z.strictObject({
  key_index: z.number().int().nonnegative().optional(),
  model: z.string().min(1).optional(),
});

/** The edit a `POST /admin/channels` body asks for, or a message saying what is wrong with it. */
export function addEditFromBody(body: unknown): ChannelEdit | string {
  const r = NewChannelBody.safeParse(body);
  if (!r.success) return bodyError(r.error);
  return { action: 'add', channel: r.data };
}

/**
 * The edit a `PUT /admin/channels/{name}` body asks for. A body that only sets `enabled` or only
 * `priority` becomes the enable/disable/set-priority action (its commit message says so).
 */
export function updateEditFromBody(name: string, body: unknown): ChannelEdit | string {
  const r = ChangesBody.safeParse(body);
  if (!r.success) return bodyError(r.error);
  const changes = Object.fromEntries(
    Object.entries(r.data).filter(([, v]) => v !== undefined),
  ) as ChannelChanges;
  const fields = Object.keys(changes);
  if (fields.length === 0) return 'the body names no field to change';
  if (fields.length === 1 && typeof changes.enabled === 'boolean') {
    return { action: changes.enabled ? 'enable' : 'disable', name };
  }
  if (fields.length === 1 && typeof changes.priority === 'number') {
    return { action: 'set-priority', name, priority: changes.priority };
  }
  return { action: 'update', name, changes };
}

function bodyError(error: z.ZodError): string {
  return error.issues
    .map((i) => {
      const path = i.path.map(String).join('.');
      const keys = i.code === 'unrecognized_keys' ? `: ${i.keys.join(', ')}` : '';
      return `${path ? `${path}: ` : ''}${i.message}${keys}`;
    })
    .join('; ');
}

async function readJson(req: IncomingMessage, res: ServerResponse): Promise<unknown | typeof NO_BODY> {
  let raw: Buffer;
  try {
    raw = await readBody(req, 1024 * 1024);
  } catch (err) {
    if (err instanceof BodyTooLarge) {
      sendAdminError(res, 'too_large', 'request body larger than 1 MiB');
      return NO_BODY;
    }
    throw err;
  }
  const text = raw.toString('utf8').trim();
  if (text === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    sendAdminError(res, 'bad_request', 'the body is not valid JSON');
    return NO_BODY;
  }
}

const NO_BODY = Symbol('no body');

/** The hash of an `If-Match` header (`sha256:…`, quoted or not; `*` and absence mean any). */
export function ifMatchHash(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const v = header.trim().replace(/^W\//, '');
  if (v === '' || v === '*') return undefined;
  return v.replace(/^"(.*)"$/, '$1');
}

/**
 * The HTTP status of a write-back refusal (the JSON API and the dashboard answer alike): each
 * refusal kind is an admin code of the catalogue (src/errors.ts).
 */
export function writeBackStatus(r: Pick<WriteBackError, 'error'>): number {
  return ADMIN_ERRORS[r.error].status;
}

/** Answers a write-back verdict: 412/403/422/404/400/500, or `success` with the new hash. */
function answerWrite(
  res: ServerResponse,
  r: WriteBackResult,
  success: 200 | 201 | 204,
  extra: Record<string, string> = {},
) {
  if (!r.ok) {
    const extra =
      r.error === 'conflict'
        ? { hash: r.hash }
        : r.error === 'invalid'
          ? { errors: r.errors.map(issueJson) }
          : {};
    sendAdminError(res, r.error, r.message, extra);
    return;
  }
  if (r.reload === 'rejected') {
    // Validated, written, then rejected by the reload: only if the environment or a ${file:}
    // changed in between. The file holds the edit; the previous config keeps serving.
    sendAdminError(
      res,
      'reload_rejected',
      'the edit was written but the reload rejected the file; the previous config keeps serving',
      { hash: r.hash, generation: r.generation, errors: r.reloadErrors.map(issueJson) },
    );
    return;
  }
  const headers: Record<string, string> = {
    etag: `"${r.hash}"`,
    'x-ccload-generation': String(r.generation),
    ...(r.commit ? { 'x-ccload-commit': r.commit } : {}),
    ...extra,
  };
  if (success === 204) {
    res.writeHead(204, { ...headers, 'cache-control': 'no-store' });
    res.end();
    return;
  }
  sendJson(
    res,
    success,
    {
      hash: r.hash,
      generation: r.generation,
      changed: r.changed,
      reload: r.reload,
      ...(r.commit ? { commit: r.commit } : {}),
      ...(r.commitError ? { commit_error: r.commitError } : {}),
      ...(r.normalised ? { normalised: true } : {}),
      warnings: r.warnings.map(issueJson),
    },
    headers,
  );
}

// --- Channel test -------------------------------------------------------------------------------

/** The verdict of testing one key of a channel. */
export interface KeyTestResult {
  readonly key_index: number;
  readonly fingerprint: string;
  readonly ok: boolean;
  /** Upstream HTTP status; 0 when none arrived. */
  readonly status: number;
  readonly duration_ms: number;
  readonly input_tokens?: number;
  readonly error?: string;
}

/** Whether any cooldown entry (of this or an earlier config) names the channel. */
function hasCooldowns(app: App, name: string): boolean {
  for (const e of app.proxyState.cooldowns.entries.values()) if (e.channel === name) return true;
  return false;
}

/** Clears a channel's runtime cooldowns (no file change), logs it, and returns how many. */
export function clearCooldowns(app: App, name: string): number {
  const cleared = app.proxyState.clearChannel(name, app.now());
  app.log.info(
    { event: 'cooldown_cleared', channel: name, cleared },
    `cooldowns of channel "${name}" cleared`,
  );
  return cleared;
}

/** The answer of a channel test: per-key results, or why the test could not run. */
export type ChannelTestResult =
  | {
      readonly channel: string;
      readonly model: string;
      /** What was asked of the upstream: `count_tokens` (Anthropic) or `models` (`GET {url}/models`, OpenAI). */
      readonly probe: 'count_tokens' | 'models';
      readonly ok: boolean;
      readonly status: number;
      readonly duration_ms: number;
      readonly input_tokens?: number;
      readonly error?: string;
      readonly keys: readonly KeyTestResult[];
    }
  | { readonly error: 'not_found' | 'bad_request'; readonly message: string };

/**
 * Tests a channel with one free count_tokens call per key (or only `keyIndex`), model = `model`
 * or the channel's first exact model. Cooldowns and the proxy's pools are not touched.
 */
export async function testChannel(
  app: App,
  name: string,
  opts: { keyIndex?: number | undefined; model?: string | undefined } = {},
): Promise<ChannelTestResult> {
  const snapshot = app.reloader.current;
  const c = snapshot.channels.find((x) => x.name === name);
  if (!c) return { error: 'not_found', message: `no channel named ${JSON.stringify(name)}` };
  if (c.keys.length === 0) return { error: 'bad_request', message: `channel "${name}" has no usable key` };
  if (opts.keyIndex !== undefined && !c.keys.some((k) => k.index === opts.keyIndex)) {
    return {
      error: 'bad_request',
      message: `channel "${name}" has ${c.keys.length} key(s); key_index ${opts.keyIndex} does not exist`,
    };
  }
  const model = opts.model?.trim() || testModel(c);
  if (!model) {
    return {
      error: 'bad_request',
      message: `channel "${name}" names no exact model (only globs or every model): give one as {"model": "..."}`,
    };
  }
  const keys = opts.keyIndex !== undefined ? [opts.keyIndex] : c.keys.map((k) => k.index);
  const results: KeyTestResult[] = [];
  for (const k of keys) results.push(await testKey(snapshot, c, k, model));
  const failed = results.find((r) => !r.ok);
  const first = failed ?? results[0]!;
  app.log.info(
    {
      event: 'channel_test',
      channel: name,
      model,
      ok: !failed,
      results: results.map((r) => [r.key_index, r.status]),
    },
    `channel "${name}" tested: ${failed ? 'failed' : 'ok'}`,
  );
  return {
    channel: name,
    model,
    probe: c.protocol === 'openai' ? 'models' : 'count_tokens',
    ok: !failed,
    status: first.status,
    duration_ms: results.reduce((sum, r) => sum + r.duration_ms, 0),
    ...(results[0]?.input_tokens !== undefined ? { input_tokens: results[0].input_tokens } : {}),
    ...(failed?.error ? { error: failed.error } : {}),
    keys: results,
  };
}

/** The largest upstream answer a test reads. */
const MAX_TEST_BODY = 64 * 1024;

/** The first model a channel names exactly (no glob), else its first model_map alias. */
export function testModel(c: Channel): string | undefined {
  return c.models?.find((m) => !isGlob(m)) ?? Object.keys(c.modelMap).find((m) => !isGlob(m));
}

/**
 * Tests one key: `POST <channel>/v1/messages/count_tokens` with a one-word message, sent the way
 * the proxy sends (same key header style, header rules and `model_map` applied), through a client of
 * its own so the proxy's pools and cooldowns are untouched. count_tokens is free upstream. An
 * OpenAI-compatible channel has no count_tokens: it gets `GET <url>/models` with the key as Bearer
 * (also free), and passes when the answer is a model list naming the model the proxy would send.
 */
export async function testKey(
  snapshot: Snapshot,
  c: Channel,
  keyIndex: number,
  model: string,
): Promise<KeyTestResult> {
  const key = c.keys.find((k) => k.index === keyIndex)!;
  const t = snapshot.config.routing.timeouts;
  const body = Buffer.from(
    JSON.stringify({ model: c.mapModel(model), messages: [{ role: 'user', content: 'ping' }] }),
  );
  const raw = [
    'content-type',
    'application/json',
    'anthropic-version',
    '2023-06-01',
    'user-agent',
    'ccload-channel-test',
  ];
  // Through the channel's outbound proxy when it has one, as the proxy's own attempts go.
  const client: Dispatcher = c.proxy
    ? new ProxyAgent({
        uri: c.proxy.url,
        proxyTunnel: false,
        proxyTls: { timeout: t.connect },
        requestTls: { timeout: t.connect },
        headersTimeout: t.first_token,
        bodyTimeout: t.idle,
      })
    : new Client(c.origin, {
        connect: { timeout: t.connect },
        headersTimeout: t.first_token,
        bodyTimeout: t.idle,
      });
  // The channel's own header rules apply (a `set` header a gateway requires, for one).
  const rules = compileHeaderRules(snapshot.config.channels[c.index]?.headers);
  const withRules = (h: string[]) => (rules ? applyHeaderRules(h, rules) : h);
  const started = performance.now();
  const base = { key_index: key.index, fingerprint: key.fingerprint };
  const elapsed = () => Math.round(performance.now() - started);
  const scrub = (s: string) => scrubberFor(snapshot).text(s).slice(0, 500);
  const openai = c.protocol === 'openai';
  try {
    const signal = AbortSignal.timeout(t.connect + t.first_token + t.idle);
    const res = await client.request(
      openai
        ? {
            origin: c.origin,
            path: `${c.basePath}/models`,
            method: 'GET',
            headers: withRules(['authorization', `Bearer ${key.value}`, 'user-agent', 'ccload-channel-test']),
            signal,
          }
        : {
            origin: c.origin,
            path: `${c.basePath}/v1/messages/count_tokens`,
            method: 'POST',
            headers: withRules(upstreamHeaders(raw, key.value, c.auth, body.length)),
            body,
            signal,
          },
    );
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length;
      if (size > MAX_TEST_BODY) break;
      chunks.push(chunk as Buffer);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (openai && res.statusCode === 200) return openaiVerdict(base, json, c.mapModel(model), elapsed());
    const tokens = (json as { input_tokens?: unknown } | undefined)?.input_tokens;
    if (res.statusCode === 200 && typeof tokens === 'number') {
      return { ...base, ok: true, status: 200, duration_ms: elapsed(), input_tokens: tokens };
    }
    const message = (json as { error?: { message?: unknown } } | undefined)?.error?.message;
    const error =
      typeof message === 'string'
        ? `HTTP ${res.statusCode}: ${message}`
        : res.statusCode === 200
          ? 'HTTP 200 without input_tokens (not an Anthropic count_tokens answer)'
          : `HTTP ${res.statusCode}${text ? `: ${scrub(text).replace(/\s+/g, ' ').slice(0, 200)}` : ''}`;
    return { ...base, ok: false, status: res.statusCode, duration_ms: elapsed(), error: scrub(error) };
  } catch (err) {
    const e = err as { code?: string; cause?: { code?: string }; message?: string; name?: string };
    const code = e.cause?.code ?? e.code ?? e.name ?? 'error';
    return {
      ...base,
      ok: false,
      status: 0,
      duration_ms: elapsed(),
      error: scrub(`${code}: ${e.message ?? ''}`.trim()),
    };
  } finally {
    await client.destroy().catch(() => {});
  }
}

/** A channel test's verdict on an OpenAI-compatible `GET /models` 200 answer. */
function openaiVerdict(
  base: { key_index: number; fingerprint: string },
  json: unknown,
  sent: string,
  ms: number,
): KeyTestResult {
  const data = (json as { data?: unknown } | undefined)?.data;
  if (!Array.isArray(data)) {
    return {
      ...base,
      ok: false,
      status: 200,
      duration_ms: ms,
      error: 'HTTP 200 without a model list (not an OpenAI-compatible /models answer)',
    };
  }
  const ids = data.map((m) => (m as { id?: unknown } | null)?.id).filter((id) => typeof id === 'string');
  if (!ids.includes(sent)) {
    return {
      ...base,
      ok: false,
      status: 200,
      duration_ms: ms,
      error: `the key works, but the upstream's ${ids.length} models do not include ${JSON.stringify(sent).slice(0, 200)}`,
    };
  }
  return { ...base, ok: true, status: 200, duration_ms: ms };
}

// --- Routes -------------------------------------------------------------------------------------

const ONE = /^\/admin\/channels\/([^/]+)$/;
const CLEAR = /^\/admin\/channels\/([^/]+)\/cooldown\/clear$/;
const TEST = /^\/admin\/channels\/([^/]+)\/test$/;

/** The channels route table. */
export function channelRoutes(app: App): Route[] {
  const find = (name: string) => app.reloader.current.channels.find((c) => c.name === name);
  return [
    {
      method: 'GET',
      path: '/admin/channels',
      access: 'session',
      async handle(_req, res) {
        sendJson(res, 200, await channelList(app));
      },
    },
    {
      method: 'POST',
      path: '/admin/channels',
      access: 'session',
      async handle(req, res) {
        const body = await readJson(req, res);
        if (body === NO_BODY) return;
        const edit = addEditFromBody(body);
        if (typeof edit === 'string') return sendAdminError(res, 'bad_request', edit);
        const r = await app.writeBack.apply(edit, ifMatchHash(req.headers['if-match']));
        const name = edit.action === 'add' ? edit.channel.name : '';
        answerWrite(res, r, 201, { location: `/admin/channels/${encodeURIComponent(name)}` });
      },
    },
    {
      method: 'GET',
      path: ONE,
      access: 'session',
      async handle(_req, res, ctx) {
        const list = await channelList(app);
        const c = list.channels.find((x) => x.name === ctx.params[0]);
        if (!c) return sendAdminError(res, 'not_found', `no channel named ${JSON.stringify(ctx.params[0])}`);
        sendJson(res, 200, {
          hash: list.hash,
          generation: list.generation,
          writable: list.writable,
          channel: c,
        });
      },
    },
    {
      method: 'PUT',
      path: ONE,
      access: 'session',
      async handle(req, res, ctx) {
        const body = await readJson(req, res);
        if (body === NO_BODY) return;
        const edit = updateEditFromBody(ctx.params[0]!, body);
        if (typeof edit === 'string') return sendAdminError(res, 'bad_request', edit);
        answerWrite(res, await app.writeBack.apply(edit, ifMatchHash(req.headers['if-match'])), 200);
      },
    },
    {
      method: 'DELETE',
      path: ONE,
      access: 'session',
      async handle(req, res, ctx) {
        const edit: ChannelEdit = { action: 'delete', name: ctx.params[0]! };
        answerWrite(res, await app.writeBack.apply(edit, ifMatchHash(req.headers['if-match'])), 204);
      },
    },
    {
      method: 'POST',
      path: CLEAR,
      access: 'session',
      handle(_req, res, ctx) {
        const name = ctx.params[0]!;
        if (!find(name) && !hasCooldowns(app, name)) {
          return sendAdminError(res, 'not_found', `no channel named ${JSON.stringify(name)}`);
        }
        const cleared = clearCooldowns(app, name);
        sendJson(res, 200, { channel: name, cleared });
      },
    },
    {
      method: 'POST',
      path: TEST,
      access: 'session',
      async handle(req, res, ctx) {
        const name = ctx.params[0]!;
        const body = await readJson(req, res);
        if (body === NO_BODY) return;
        const parsed = TestBody.safeParse(body);
        if (!parsed.success) return sendAdminError(res, 'bad_request', bodyError(parsed.error));
        const r = await testChannel(app, name, { keyIndex: parsed.data.key_index, model: parsed.data.model });
        if ('message' in r) return sendAdminError(res, r.error, r.message);
        sendJson(res, 200, r);
      },
    },
  ];
}
