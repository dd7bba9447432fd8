import { Client, type Dispatcher, ProxyAgent } from 'undici';
import type { App } from '../app.js';
import { isGlob } from '../config/glob.js';
import type { Channel, Snapshot } from '../config/snapshot.js';
import { applyHeaderRules, compileHeaderRules } from '../proxy/header-rules.js';
import { upstreamHeaders } from '../proxy/headers.js';
import { scrubberFor } from '../proxy/scrub.js';

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
