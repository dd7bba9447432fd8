/**
 * The channel test (docs/interfaces.md#channels): one request per key that costs nothing upstream
 * — `count_tokens` on an Anthropic channel, `GET {url}/models` on an OpenAI-compatible one — sent
 * the way the proxy sends: built by the channel's protocol adapter and through the serving
 * runtime's dispatcher for the channel (its pool or outbound proxy; its timeouts). Cooldowns are not
 * touched. Upstream error text in a result is scrubbed of the snapshot's secrets (every channel key
 * among them) before it is returned.
 */
import type { App } from '../app.js';
import { isGlob } from '../config/glob.js';
import type { Channel } from '../config/snapshot.js';
import { sniffRequest } from '../proxy/body-sniff.js';
import { applyHeaderRules } from '../proxy/header-rules.js';
import { anthropicAdapter } from '../proxy/protocol.js';
import type { Runtime } from '../proxy/runtime.js';

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
 * or the channel's first exact model (`GET /models` on an OpenAI-compatible channel). Cooldowns
 * are not touched; the requests go through the serving runtime's dispatcher, as the proxy's do.
 */
export async function testChannel(
  app: App,
  name: string,
  opts: { keyIndex?: number | undefined; model?: string | undefined } = {},
): Promise<ChannelTestResult> {
  // The serving runtime: the channel, its pool and the scrubber of one snapshot. Entered like a
  // proxy request, so a reload during the test does not close the pool under it.
  const rt = app.runtime();
  rt.enter();
  try {
    return await testWith(app, rt, name, opts);
  } finally {
    rt.leave();
  }
}

async function testWith(
  app: App,
  rt: Runtime,
  name: string,
  opts: { keyIndex?: number | undefined; model?: string | undefined },
): Promise<ChannelTestResult> {
  const c = rt.snapshot.channels.find((x) => x.name === name);
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
  for (const k of keys) results.push(await testKey(rt, c, k, model));
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
 * What a client would send to count_tokens. The proxy forwards the client's headers (and its
 * `anthropic-version`); the test is its own client, so it names the version a client names.
 */
const PROBE_CLIENT_HEADERS = [
  'content-type',
  'application/json',
  'anthropic-version',
  '2023-06-01',
  'user-agent',
  'ccload-channel-test',
] as const;

/**
 * The request that tests one key. An Anthropic channel gets `POST <channel>/v1/messages/count_tokens`
 * with a one-word message, built by the proxy's adapter (key header style, `model_map` applied in
 * the body, headers per proxy/headers.ts); count_tokens is free upstream. The channel's header
 * rules apply to both, as to the proxy's attempts (a `set` header a gateway requires, for one). An OpenAI-compatible
 * channel has no count_tokens: it gets `GET <url>/models` with the key as Bearer (also free).
 */
function probeRequest(
  c: Channel,
  key: string,
  model: string,
): { method: 'GET' | 'POST'; path: string; headers: string[]; body?: Buffer } {
  if (c.protocol === 'openai') {
    return {
      method: 'GET',
      path: `${c.basePath}/models`,
      headers: ['authorization', `Bearer ${key}`, 'user-agent', 'ccload-channel-test'],
    };
  }
  const body = Buffer.from(JSON.stringify({ model, messages: [{ role: 'user', content: 'ping' }] }));
  const sniff = sniffRequest(body);
  if (!sniff.ok) throw new Error(`channel test body: ${sniff.message}`);
  const call = anthropicAdapter.prepare(
    {
      endpoint: 'count_tokens',
      rawHeaders: PROBE_CLIENT_HEADERS,
      target: '/v1/messages/count_tokens',
      body,
      model,
      modelStart: sniff.modelStart,
      modelEnd: sniff.modelEnd,
      forwardClientAddress: false,
    },
    c,
    key,
    c.mapModel(model),
  );
  if (call.kind !== 'upstream') throw new Error(`channel test: the anthropic adapter answered ${call.kind}`);
  return { method: 'POST', path: call.path, headers: call.headers, body: call.body };
}

/**
 * Tests one key through the runtime's dispatcher for the channel (the proxy's connect, header
 * and body timeouts; the whole test bounded by their sum). A count_tokens answer passes when it
 * names `input_tokens`; a `/models` answer when it lists the model the proxy would send.
 */
export async function testKey(
  rt: Runtime,
  c: Channel,
  keyIndex: number,
  model: string,
): Promise<KeyTestResult> {
  const key = c.keys.find((k) => k.index === keyIndex)!;
  const t = rt.snapshot.config.routing.timeouts;
  const started = performance.now();
  const base = { key_index: key.index, fingerprint: key.fingerprint };
  const elapsed = () => Math.round(performance.now() - started);
  const scrub = (s: string) => rt.scrubber.text(s).slice(0, 500);
  const openai = c.protocol === 'openai';
  try {
    const signal = AbortSignal.timeout(t.connect + t.first_token + t.idle);
    const probe = probeRequest(c, key.value, model);
    const rules = rt.headerRules.get(c.name);
    if (rules) probe.headers = applyHeaderRules(probe.headers, rules);
    // The channel's dispatcher: its pool, or its outbound proxy when it has one.
    const res = await rt.dispatcher(c).request({ origin: c.origin, ...probe, signal });
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
