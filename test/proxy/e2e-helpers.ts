/**
 * Helpers of the proxy's end-to-end tests: fake upstreams as channels, a real daemon on a config
 * built from a few options, a raw node:http client that timestamps every body chunk, and readers
 * of the `attempts` table and of SSE bodies.
 */
import http, { type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Daemon } from '../../src/daemon.js';
import { claudeCodeRequest } from '../../src/dev/anthropic-shapes.js';
import {
  type FakeUpstream,
  type FakeUpstreamOptions,
  startFakeUpstream,
} from '../../src/dev/fake-upstream.js';
import { rowToAttempt, type StoredAttempt } from '../../src/store/attempt.js';
import { type ChannelSpec, type RoutingSpec, testConfig } from '../helpers/config.js';
import { startTestDaemon } from '../helpers/daemon.js';
import { MODEL } from '../helpers/messages.js';
import type { Teardownable } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

/** The client token of `proxyConfig` unless `tokens` say otherwise. */
export const CLIENT_TOKEN = 'ccl-e2e-client-token-7f3a9c';

/** A recognisable channel key: `sk-ant-e2e-<channel>-<i>-…`, long enough that a leak cannot be a coincidence. */
export function channelKey(channel: string, i = 0): string {
  return `sk-ant-e2e-${channel}-${i}-SECRETc0ffee${i}d00d`;
}

/** Options of `proxyConfig`. */
export interface ProxyConfigOptions {
  /** Each channel's keys default to one literal key, `channelKey(name)`. */
  channels: ChannelSpec[];
  /** Client tokens; default one token `CLIENT_TOKEN` named `e2e`; `[]` = an open proxy. */
  tokens?: { name: string; token: string }[];
  /** Merged over `ROUTING`. */
  routing?: RoutingSpec;
  /** `server.max_body`. */
  maxBody?: string;
}

/** The short timeouts of the e2e suite: first token and idle 600 ms, cooldown 300 ms doubling to 2 s. */
export const ROUTING: Required<RoutingSpec> = {
  connect: '1s',
  first_token: '600ms',
  idle: '600ms',
  total: '0',
  base: '300ms',
  max: '2s',
  max_attempts: 5,
  when_all_cooling: 'soonest',
  cooling_wait: '1s',
};

/**
 * A ccload.yaml for the e2e tests (`testConfig` with this suite's defaults). Keys and tokens are
 * literal (the daemon warns, into a silent logger): the test reads them back from the same helpers
 * to search responses for leaks.
 */
export function proxyConfig(o: ProxyConfigOptions): string {
  return testConfig({
    ...(o.maxBody ? { server: { max_body: o.maxBody } } : {}),
    tokens: o.tokens ?? [{ name: 'e2e', token: CLIENT_TOKEN }],
    routing: { ...ROUTING, ...o.routing },
    channels: o.channels.map((c) => (c.keys || c.apiKey ? c : { ...c, keys: [channelKey(c.name)] })),
  });
}

/** Starts `n` fake upstreams (closed in teardown). */
export async function startUpstreams(
  t: Teardownable,
  n: number,
  opts?: FakeUpstreamOptions,
): Promise<FakeUpstream[]> {
  const fakes = await Promise.all(Array.from({ length: n }, () => startFakeUpstream(opts)));
  for (const f of fakes) t.teardown(() => f.close());
  return fakes;
}

/** A loopback URL where nothing listens: a port bound and released again. */
export async function closedPortUrl(): Promise<string> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

/** A running daemon for a test. */
export interface TestProxy {
  daemon: Daemon;
  url: string;
  dir: string;
  file: string;
}

/**
 * Starts a daemon on `proxyConfig(o)` (or on config text) in a temp dir; closed in teardown. With
 * `at.dir` and `at.file` it starts on an existing folder and file (a restart); `at.now` replaces
 * the daemon's wall clock.
 */
export async function startProxy(
  t: Teardownable,
  o: ProxyConfigOptions | string,
  at: { dir?: string; file?: string; now?: () => number } = {},
): Promise<TestProxy> {
  const text = typeof o === 'string' ? o : proxyConfig(o);
  const started = await startTestDaemon(t, text, {
    ...(at.dir ? { dir: at.dir } : {}),
    ...(at.file ? { file: at.file } : {}),
    ...(at.now ? { now: at.now } : {}),
  });
  return { daemon: started.daemon, url: started.daemon.url, dir: started.dir, file: started.file };
}

/** Options of `twoChannels`. */
export interface TwoChannelsOptions {
  /** More settings of channel `a` (say `keys`, `modelMap`). */
  a?: Partial<ChannelSpec>;
  /** More settings of channel `b`. */
  b?: Partial<ChannelSpec>;
  /** Merged over `ROUTING`. */
  routing?: RoutingSpec;
}

/**
 * The failover fixture: two fresh fake upstreams as channels `a` (priority 20, tried first) and `b`
 * (priority 10, the fallback) of one daemon.
 */
export async function twoChannels(
  t: Teardownable,
  o: TwoChannelsOptions = {},
): Promise<TestProxy & { a: FakeUpstream; b: FakeUpstream }> {
  const [a, b] = await startUpstreams(t, 2);
  const proxy = await startProxy(t, {
    channels: [
      { name: 'a', url: a!.url, priority: 20, ...o.a },
      { name: 'b', url: b!.url, priority: 10, ...o.b },
    ],
    ...(o.routing ? { routing: o.routing } : {}),
  });
  return { a: a!, b: b!, ...proxy };
}

/** One body chunk as the client received it. */
export interface Chunk {
  /** `performance.now()` at arrival. */
  at: number;
  data: Buffer;
}

/** What the client got. Times are `performance.now()` ms. */
export interface ClientResponse {
  status: number;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
  chunks: Chunk[];
  sentAt: number;
  headersAt: number;
  endedAt: number;
  /** The response did not end cleanly (socket error or our own abort). */
  broken: boolean;
  /** `x-ccload-request-id`, when present. */
  requestId: string | undefined;
  text(): string;
  json(): unknown;
  /** Every byte of the head (status line values and headers) and body, for leak searches. */
  allBytes(): Buffer;
}

/** Options of `send`. */
export interface SendOptions {
  method?: string;
  path?: string;
  /** Request headers; default `content-type: application/json` and the client token as x-api-key. */
  headers?: Record<string, string | string[]>;
  /** Replace the default headers entirely instead of merging into them. */
  rawHeadersOnly?: boolean;
  body?: Buffer | string | object;
  /** Give up (destroy the request and reject) after this long; default 8000 ms. */
  timeoutMs?: number;
  /** Destroy the request once this returns true for the chunks so far (client disconnect). */
  abortWhen?: (chunks: readonly Chunk[]) => boolean;
  /**
   * Destroy the request when this settles (a client disconnect at a moment of the test's choosing);
   * `send` then rejects with "aborted by the test" unless the response had already ended.
   */
  abortOn?: Promise<unknown>;
  /** A slow reader: stop reading for this long after the first body chunk, then read on. */
  pauseAfterFirstChunkMs?: number;
}

/** Default client headers: JSON and the e2e client token. */
export function clientHeaders(
  extra: Record<string, string | string[]> = {},
): Record<string, string | string[]> {
  return { 'content-type': 'application/json', 'x-api-key': CLIENT_TOKEN, ...extra };
}

/**
 * One request with node:http on a fresh connection, recording the raw response: every body chunk
 * timestamped on arrival. Resolves when the response ends, breaks, or `abortWhen` aborted it.
 */
export function send(baseUrl: string, o: SendOptions = {}): Promise<ClientResponse> {
  const body =
    o.body === undefined
      ? undefined
      : Buffer.isBuffer(o.body)
        ? o.body
        : Buffer.from(typeof o.body === 'string' ? o.body : JSON.stringify(o.body));
  const headers = o.rawHeadersOnly ? { ...o.headers } : clientHeaders(o.headers);
  const method = o.method ?? (body ? 'POST' : 'GET');
  const url = new URL(o.path ?? '/v1/messages', baseUrl);
  const timeoutMs = o.timeoutMs ?? 8000;
  return new Promise((resolve, reject) => {
    const sentAt = performance.now();
    const chunks: Chunk[] = [];
    let settled = false;
    const req = http.request(url, { method, headers, agent: false });
    const timer = setTimeout(() => {
      req.destroy();
      fail(new Error(`${method} ${url.pathname}: no complete response within ${timeoutMs} ms`));
    }, timeoutMs);
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(err);
    };
    req.on('error', (err) => fail(err));
    void o.abortOn?.finally(() => {
      req.destroy();
      fail(new Error('aborted by the test'));
    });
    req.on('response', (res) => {
      const headersAt = performance.now();
      let broken = false;
      const finish = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        const all = Buffer.concat(chunks.map((c) => c.data));
        const rid = res.headers['x-ccload-request-id'];
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          rawHeaders: res.rawHeaders,
          body: all,
          chunks,
          sentAt,
          headersAt,
          endedAt: performance.now(),
          broken,
          requestId: typeof rid === 'string' ? rid : undefined,
          text: () => all.toString('utf8'),
          json: () => JSON.parse(all.toString('utf8')) as unknown,
          allBytes: () =>
            Buffer.concat([
              Buffer.from(`${res.statusCode} ${res.statusMessage}\n`),
              Buffer.from(res.rawHeaders.join('\n')),
              all,
            ]),
        });
      };
      res.on('data', (data: Buffer) => {
        chunks.push({ at: performance.now(), data });
        if (chunks.length === 1 && o.pauseAfterFirstChunkMs) {
          res.pause();
          setTimeout(() => res.resume(), o.pauseAfterFirstChunkMs);
        }
        if (o.abortWhen?.(chunks)) {
          broken = true;
          req.destroy();
          finish();
        }
      });
      res.on('end', finish);
      res.on('error', () => {
        broken = true;
        finish();
      });
      res.on('close', () => {
        if (!res.complete) broken = true;
        finish();
      });
    });
    if (body) req.end(body);
    else req.end();
  });
}

/** A Claude Code–shaped request (≈43 KB body, its headers plus the e2e client token). */
export function claudeCode(
  model = MODEL,
  stream = true,
  bodyBytes = 43_000,
): { headers: Record<string, string>; body: Buffer } {
  const r = claudeCodeRequest({ model, stream, bodyBytes });
  return { headers: { ...r.headers, 'x-api-key': CLIENT_TOKEN }, body: r.body };
}

/**
 * The rows of `attempts` (oldest first), after flushing the log writer; only one client request's
 * when `requestId` is given. With `atLeast`, waits (bounded) until that many rows are there: a
 * record is queued once its attempt has ended, which can be just after the client saw the end.
 */
export async function attempts(
  daemon: Daemon,
  o: { requestId?: string | undefined; atLeast?: number } = {},
): Promise<StoredAttempt[]> {
  let rows: StoredAttempt[] = [];
  const read = async () => {
    await daemon.app.logWriter.flush();
    const rs =
      o.requestId === undefined
        ? await daemon.app.db.client.execute('SELECT * FROM attempts ORDER BY id')
        : await daemon.app.db.client.execute({
            sql: 'SELECT * FROM attempts WHERE request_id = ? ORDER BY id',
            args: [o.requestId],
          });
    rows = rs.rows.map(rowToAttempt);
    return rows.length >= (o.atLeast ?? 0);
  };
  await waitFor(read, { timeoutMs: 3000, message: `${o.atLeast ?? 0} attempt rows` });
  return rows;
}

/** The cooldown entries of the daemon now, as `scope:channel[#key][|model]` strings, sorted. */
export function coolingScopes(daemon: Daemon, now = Date.now()): string[] {
  const out: string[] = [];
  for (const e of daemon.app.proxyState.cooldowns.entries.values()) {
    if (e.until <= now) continue;
    const key = e.keyIndex === undefined ? '' : `#${e.keyIndex}`;
    const model = e.model === undefined ? '' : `|${e.model}`;
    out.push(`${e.scope}:${e.channel}${key}${model}`);
  }
  return out.sort();
}

/** The ends (ms since the epoch) of the channel's active cooldowns, any scope. */
export function coolingUntils(daemon: Daemon, channel: string, now = Date.now()): number[] {
  return [...daemon.app.proxyState.cooldowns.entries.values()]
    .filter((e) => e.channel === channel && e.until > now)
    .map((e) => e.until);
}

/** One parsed SSE event: its name and raw data. */
export interface ParsedEvent {
  event: string;
  data: string;
}

/** The events of an SSE body (LF line ends, as the fake and ccload write them). */
export function sseEvents(body: Buffer | string): ParsedEvent[] {
  const text = typeof body === 'string' ? body : body.toString('utf8');
  const out: ParsedEvent[] = [];
  for (const block of text.split('\n\n')) {
    if (block.trim() === '') continue;
    let event = 'message';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('event:')) event = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
    }
    out.push({ event, data: data.join('\n') });
  }
  return out;
}

/** The Anthropic error shape `{"type":"error","error":{"type","message"}}`, or undefined when the body is not one. */
export function anthropicErrorOf(body: Buffer | string): { type: string; message: string } | undefined {
  try {
    const j = JSON.parse(typeof body === 'string' ? body : body.toString('utf8')) as {
      type?: unknown;
      error?: { type?: unknown; message?: unknown };
    };
    if (j.type !== 'error' || typeof j.error?.type !== 'string' || typeof j.error.message !== 'string')
      return undefined;
    return { type: j.error.type, message: j.error.message };
  } catch {
    return undefined;
  }
}
