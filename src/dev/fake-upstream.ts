/**
 * A scripted fake Anthropic upstream on loopback: a node:http server whose answers are plain-data
 * behaviours (JSON, SSE streams with delays/cuts/stalls, error statuses, resets, silence, echo), taken
 * from a FIFO queue, a chooser function or a default. It records every request, notices clients that
 * hang up early, and counts open sockets. Tests, `npm run demo` and the benchmarks run it, so answering
 * is cheap: bodies are encoded once per behaviour object and recording can be switched off. Treat a
 * behaviour object as immutable once it has answered: its encoding is cached by identity.
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import http, { type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import {
  countTokensResponse,
  encodeSseEvent,
  errorBody,
  errorTypeForStatus,
  messageResponse,
  messageStreamEvents,
  type SseEvent,
  type Usage,
} from './anthropic-shapes.js';
import { prng } from './random.js';

/** Extra response headers of a behaviour (they override the defaults of the same name). */
export type HeaderMap = Record<string, string | string[]>;

/** Answer with a JSON body (an object is encoded once; a string or Buffer is sent verbatim). */
export interface JsonBehaviour {
  kind: 'json';
  status?: number;
  body: unknown;
  headers?: HeaderMap;
  /** Wait this long before sending the status line (a slow upstream). */
  headersDelayMs?: number;
}

/**
 * Answer with an SSE stream. `cutAfter: n` destroys the socket after n events; `stallAfter: n` sends n
 * events and then nothing, keeping the socket open (cutAfter wins when both are set). `chunking` groups
 * the bytes into writes: one per event (default), `'whole'` (one write, for benchmarks), `'random'`
 * (1–64 bytes, seeded by `seed`) or a fixed byte count — the last two split across event boundaries.
 * `delayMs` is the pause between writes, `firstDelayMs` the pause between the headers and the first write.
 */
export interface StreamBehaviour {
  kind: 'stream';
  events: SseEvent[];
  status?: number;
  headers?: HeaderMap;
  headersDelayMs?: number;
  firstDelayMs?: number;
  delayMs?: number;
  cutAfter?: number;
  stallAfter?: number;
  /** Drop `message_stop` events (clients tolerate a missing one). */
  omitStop?: boolean;
  /** Bytes written as they are after the events (before the end, cut or stall): e.g. half an event. */
  tail?: string;
  chunking?: 'event' | 'whole' | 'random' | number;
  seed?: number;
}

/** Answer with a failure status; the body defaults to the Anthropic error body for that status. */
export interface StatusBehaviour {
  kind: 'status';
  status: number;
  body?: unknown;
  headers?: HeaderMap;
  headersDelayMs?: number;
}

/** Read the request, then reset the connection (RST) without any response. */
export interface ResetBehaviour {
  kind: 'reset';
}

/** Read the request and never answer, keeping the socket open. */
export interface NeverBehaviour {
  kind: 'never';
}

/** Send SSE response headers, then nothing. */
export interface HeadersThenStallBehaviour {
  kind: 'headers-then-stall';
  status?: number;
  headers?: HeaderMap;
}

/** Answer with a status (200 by default) and an empty body. */
export interface EmptyBehaviour {
  kind: 'empty';
  status?: number;
  headers?: HeaderMap;
}

/** Answer with JSON describing the request as received: {@link EchoBody}. */
export interface EchoBehaviour {
  kind: 'echo';
  status?: number;
  headers?: HeaderMap;
}

/** Answer like Anthropic would: a stream or JSON depending on the request's `stream`, naming its `model`. */
export interface AnswerBehaviour {
  kind: 'answer';
  text?: string;
  usage?: Usage;
}

/** What the fake upstream does with one request. */
export type Behaviour =
  | JsonBehaviour
  | StreamBehaviour
  | StatusBehaviour
  | ResetBehaviour
  | NeverBehaviour
  | HeadersThenStallBehaviour
  | EmptyBehaviour
  | EchoBehaviour
  | AnswerBehaviour;

/** Chooses a behaviour for a request; `undefined` falls through to the count_tokens answer or the default. */
export type Chooser = (req: FakeRequest) => Behaviour | undefined;

/** The body of an `echo` answer. */
export interface EchoBody {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: { length: number; sha256: string };
}

/** Options of {@link startFakeUpstream}. */
export interface FakeUpstreamOptions {
  /** Keep every request in `requests` (default true). Benchmarks turn it off. */
  record?: boolean;
  /** The behaviour when the queue is empty and no chooser answers (default `{ kind: 'answer' }`). */
  default?: Behaviour;
  /** Tokens reported by count_tokens (default: a quarter of the request body's length). */
  countTokens?: number;
  /** Idle keep-alive time of server sockets (default 5000, node's). */
  keepAliveTimeoutMs?: number;
}

/** Events of a {@link FakeUpstream}: `request` once a request's body is read, `aborted` when its client hung up early. */
export interface FakeUpstreamEvents {
  request: [FakeRequest];
  aborted: [FakeRequest];
}

/** The usage `ok`, `okStream` and `answer` report unless told otherwise. */
export const DEFAULT_USAGE: Required<
  Pick<Usage, 'input_tokens' | 'output_tokens' | 'cache_creation_input_tokens' | 'cache_read_input_tokens'>
> = {
  input_tokens: 12,
  output_tokens: 9,
  cache_creation_input_tokens: 100,
  cache_read_input_tokens: 2000,
};
/** The text `ok`, `okStream` and `answer` reply with unless told otherwise. */
export const DEFAULT_TEXT = 'Hello from the fake upstream. Nothing to fix today.';

const EMPTY = Buffer.alloc(0);
const COUNT_TOKENS_PATH = '/v1/messages/count_tokens';

/** A 200 JSON answer for `model`, with usage, like a non-streaming Messages API call. */
export function ok(
  model: string,
  o: { text?: string; usage?: Usage; diagnostics?: unknown } = {},
): JsonBehaviour {
  return {
    kind: 'json',
    status: 200,
    body: messageResponse({
      model,
      text: o.text ?? DEFAULT_TEXT,
      usage: o.usage ?? DEFAULT_USAGE,
      diagnostics: o.diagnostics,
    }),
  };
}

/** A complete SSE answer for `model`, with usage, like a streaming Messages API call. */
export function okStream(
  model: string,
  o: { text?: string; usage?: Usage; diagnostics?: unknown } & Omit<
    Partial<StreamBehaviour>,
    'kind' | 'events'
  > = {},
): StreamBehaviour {
  const { text, usage, diagnostics, ...rest } = o;
  return {
    kind: 'stream',
    ...rest,
    events: messageStreamEvents({
      model,
      text: text ?? DEFAULT_TEXT,
      usage: usage ?? DEFAULT_USAGE,
      diagnostics,
    }),
  };
}

/** One request as the fake upstream received it. `json`, `model` and `stream` parse the body on first use. */
export class FakeRequest {
  /** The body; complete once the `request` event fired (partial if the client hung up while sending). */
  body: Buffer = EMPTY;
  /** The client closed the connection before the response finished. */
  aborted = false;
  /** `performance.now()` when the hang-up was noticed. */
  abortedAt?: number;
  /** SSE events fully written to the socket so far. */
  sentEvents = 0;
  /** The kind of behaviour that answered. */
  answeredWith?: Behaviour['kind'];
  #parsed = false;
  #json: unknown;

  constructor(
    readonly method: string,
    readonly url: string,
    readonly headers: IncomingHttpHeaders,
    readonly rawHeaders: string[],
    /** `performance.now()` when the request head arrived. */
    readonly receivedAt: number,
  ) {}

  /** The URL without its query string. */
  get path(): string {
    const q = this.url.indexOf('?');
    return q < 0 ? this.url : this.url.slice(0, q);
  }

  /** The body parsed as JSON, or undefined when it is not JSON. */
  get json(): unknown {
    if (!this.#parsed) {
      this.#parsed = true;
      try {
        this.#json = JSON.parse(this.body.toString('utf8'));
      } catch {
        this.#json = undefined;
      }
    }
    return this.#json;
  }

  /** The body's `model` field, if any. */
  get model(): string | undefined {
    const j = this.json as { model?: unknown } | undefined;
    return typeof j?.model === 'string' ? j.model : undefined;
  }

  /** Whether the body asks for a stream (`"stream": true`). */
  get stream(): boolean {
    return (this.json as { stream?: unknown } | undefined)?.stream === true;
  }
}

/** Encoded once per behaviour object (WeakMap), so a default answering thousands of requests costs no JSON work. */
interface PreparedBody {
  status: number;
  head: string[];
  body: Buffer;
}
interface PreparedStream {
  status: number;
  head: string[];
  events: Buffer[];
  whole: Buffer;
}

function flatHeaders(defaults: Record<string, string>, extra: HeaderMap | undefined): string[] {
  const merged: HeaderMap = { ...defaults };
  for (const [k, v] of Object.entries(extra ?? {})) merged[k.toLowerCase()] = v;
  const out: string[] = [];
  for (const [k, v] of Object.entries(merged)) {
    for (const one of Array.isArray(v) ? v : [v]) out.push(k, one);
  }
  return out;
}

function encodeBody(body: unknown): Buffer {
  if (Buffer.isBuffer(body)) return body;
  return Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
}

const JSON_HEADERS = { 'content-type': 'application/json' };
const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' };

function prepareBody(status: number, body: unknown, headers: HeaderMap | undefined): PreparedBody {
  const buf = encodeBody(body);
  return {
    status,
    head: flatHeaders({ ...JSON_HEADERS, 'content-length': String(buf.length) }, headers),
    body: buf,
  };
}

/** Per-exchange state: the pending timer and whether the response is over or was closed on purpose. */
interface Exchange {
  rec: FakeRequest;
  res: http.ServerResponse;
  timer?: NodeJS.Timeout;
  closed: boolean;
  selfClosed: boolean;
  bodyDone: boolean;
}

interface Waiter {
  resolve: (r: FakeRequest) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/** A running fake upstream; create it with {@link startFakeUpstream} and `close()` it in teardown. */
export class FakeUpstream extends EventEmitter<FakeUpstreamEvents> {
  /** Requests received so far (empty when recording is off). */
  readonly requests: FakeRequest[] = [];
  readonly #server: http.Server;
  readonly #sockets = new Set<Socket>();
  readonly #queue: Behaviour[] = [];
  readonly #prepared = new WeakMap<object, PreparedBody | PreparedStream>();
  readonly #answers = new WeakMap<AnswerBehaviour, Map<string, Behaviour>>();
  readonly #waiters: Waiter[] = [];
  readonly #record: boolean;
  readonly #countTokens: number | undefined;
  #default: Behaviour;
  #chooser: Chooser | undefined;
  #cursor = 0;
  #seq = 0;
  #closing = false;
  /** The bound port on 127.0.0.1. */
  port = 0;
  /** `http://127.0.0.1:<port>`. */
  url = '';

  constructor(opts: FakeUpstreamOptions = {}) {
    super();
    this.#record = opts.record ?? true;
    this.#countTokens = opts.countTokens;
    this.#default = opts.default ?? { kind: 'answer' };
    this.#server = http.createServer(
      { keepAlive: true, noDelay: true, keepAliveTimeout: opts.keepAliveTimeoutMs ?? 5000 },
      (req, res) => this.#onRequest(req, res),
    );
    // A 'never' or stalled exchange must stay open as long as the test wants; node's 300 s requestTimeout
    // only covers receiving the request, which always completes here.
    this.#server.on('connection', (s: Socket) => {
      this.#sockets.add(s);
      s.once('close', () => this.#sockets.delete(s));
    });
  }

  /** Starts listening on 127.0.0.1 on an ephemeral port. */
  async listen(): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      // A deep backlog: benchmarks open 1000 connections at once.
      this.#server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    this.port = (this.#server.address() as AddressInfo).port;
    this.url = `http://127.0.0.1:${this.port}`;
    return this;
  }

  /** Sockets currently open to the server (for leak tests). */
  get openSockets(): number {
    return this.#sockets.size;
  }

  /** Behaviours still waiting in the queue. */
  get queued(): number {
    return this.#queue.length;
  }

  /** Queues behaviours for the next requests, first in first out; the queue wins over chooser and default. */
  enqueue(...behaviours: Behaviour[]): this {
    this.#queue.push(...behaviours);
    return this;
  }

  /** Sets the behaviour used when the queue is empty and no chooser answers. */
  setDefault(behaviour: Behaviour): this {
    this.#default = behaviour;
    return this;
  }

  /** Sets (or with `undefined` removes) the function that chooses a behaviour by request when the queue is empty. */
  handle(chooser: Chooser | undefined): this {
    this.#chooser = chooser;
    return this;
  }

  /**
   * The next request not yet returned by this method, in arrival order; waits up to `timeoutMs` for one.
   * With recording off it waits for the next request to arrive.
   */
  nextRequest(timeoutMs = 5000): Promise<FakeRequest> {
    const ready = this.requests[this.#cursor];
    if (ready) {
      this.#cursor++;
      return Promise.resolve(ready);
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
          reject(new Error(`fake upstream: no request arrived within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.#waiters.push(waiter);
    });
  }

  /** Clears the queue, the recorded requests and the `nextRequest` cursor (default and chooser stay). */
  reset(): void {
    this.#queue.length = 0;
    this.requests.length = 0;
    this.#cursor = 0;
  }

  /** Destroys every socket and stops the server; pending `nextRequest` calls reject. */
  async close(): Promise<void> {
    this.#closing = true;
    for (const w of this.#waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new Error('fake upstream closed'));
    }
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const s of this.#sockets) s.destroy();
    await closed;
  }

  #onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const rec = new FakeRequest(
      req.method ?? 'GET',
      req.url ?? '/',
      req.headers,
      req.rawHeaders,
      performance.now(),
    );
    const ex: Exchange = { rec, res, closed: false, selfClosed: false, bodyDone: false };
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      rec.body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      ex.bodyDone = true;
      this.#arrived(rec);
      this.#answer(ex, this.#choose(rec));
    });
    res.on('close', () => {
      ex.closed = true;
      if (ex.timer) clearTimeout(ex.timer);
      if (res.writableFinished || ex.selfClosed || this.#closing) return;
      if (!ex.bodyDone) {
        rec.body = Buffer.concat(chunks);
        this.#arrived(rec);
      }
      rec.aborted = true;
      rec.abortedAt = performance.now();
      this.emit('aborted', rec);
    });
  }

  #arrived(rec: FakeRequest): void {
    if (this.#record) this.requests.push(rec);
    const w = this.#waiters.shift();
    if (w) {
      clearTimeout(w.timer);
      if (this.#record) this.#cursor = this.requests.length;
      w.resolve(rec);
    }
    this.emit('request', rec);
  }

  #choose(rec: FakeRequest): Behaviour {
    const queued = this.#queue.shift();
    if (queued) return queued;
    const chosen = this.#chooser?.(rec);
    if (chosen) return chosen;
    if (rec.method === 'POST' && rec.path === COUNT_TOKENS_PATH) {
      const n = this.#countTokens ?? Math.ceil(rec.body.length / 4);
      return { kind: 'json', status: 200, body: countTokensResponse(n) };
    }
    return this.#default;
  }

  #requestId(): string {
    return `req_fake_${++this.#seq}`;
  }

  #answer(ex: Exchange, b: Behaviour): void {
    const { rec, res } = ex;
    rec.answeredWith = b.kind;
    const delay = 'headersDelayMs' in b ? (b.headersDelayMs ?? 0) : 0;
    if (delay > 0) {
      ex.timer = setTimeout(() => {
        ex.timer = undefined;
        if (!ex.closed) this.#respond(ex, b);
      }, delay);
      return;
    }
    if (!res.destroyed) this.#respond(ex, b);
  }

  #respond(ex: Exchange, b: Behaviour): void {
    const { res } = ex;
    switch (b.kind) {
      case 'json':
      case 'status': {
        let p = this.#prepared.get(b) as PreparedBody | undefined;
        if (!p) {
          const body =
            b.kind === 'status' && b.body === undefined
              ? errorBody(errorTypeForStatus(b.status), `fake upstream answered ${b.status}`)
              : b.body;
          p = prepareBody(b.status ?? 200, body, b.headers);
          this.#prepared.set(b, p);
        }
        res.writeHead(p.status, [...p.head, 'request-id', this.#requestId()]);
        res.end(p.body);
        return;
      }
      case 'stream':
        this.#stream(ex, b);
        return;
      case 'reset':
        ex.selfClosed = true;
        // RST rather than FIN, so the client sees ECONNRESET as with a real dropped connection.
        res.socket?.resetAndDestroy();
        return;
      case 'never':
        return;
      case 'headers-then-stall':
        res.writeHead(b.status ?? 200, flatHeaders(SSE_HEADERS, b.headers));
        res.flushHeaders();
        return;
      case 'empty':
        res.writeHead(b.status ?? 200, flatHeaders({ ...JSON_HEADERS, 'content-length': '0' }, b.headers));
        res.end();
        return;
      case 'echo': {
        const rec = ex.rec;
        const echo: EchoBody = {
          method: rec.method,
          url: rec.url,
          headers: rec.headers,
          rawHeaders: rec.rawHeaders,
          body: { length: rec.body.length, sha256: createHash('sha256').update(rec.body).digest('hex') },
        };
        const p = prepareBody(b.status ?? 200, echo, b.headers);
        res.writeHead(p.status, p.head);
        res.end(p.body);
        return;
      }
      case 'answer':
        this.#respond(ex, this.#answerFor(b, ex.rec));
        return;
    }
  }

  /** The json/stream behaviour answering `rec`, cached per behaviour object by (model, stream), at most 256. */
  #answerFor(b: AnswerBehaviour, rec: FakeRequest): Behaviour {
    const model = rec.model ?? 'claude-fake';
    const stream = rec.stream;
    let byModel = this.#answers.get(b);
    if (!byModel) {
      byModel = new Map();
      this.#answers.set(b, byModel);
    }
    const key = `${stream ? 's' : 'j'}${model}`;
    let out = byModel.get(key);
    if (!out) {
      const o = { text: b.text, usage: b.usage };
      out = stream ? okStream(model, o) : ok(model, o);
      // Bounded: a client inventing model names must not grow the cache without limit.
      if (byModel.size >= 256) byModel.clear();
      byModel.set(key, out);
    }
    return out;
  }

  #stream(ex: Exchange, b: StreamBehaviour): void {
    const { rec, res } = ex;
    let p = this.#prepared.get(b) as PreparedStream | undefined;
    if (!p) {
      const events = (b.omitStop ? b.events.filter((e) => e.event !== 'message_stop') : b.events).map(
        encodeSseEvent,
      );
      p = {
        status: b.status ?? 200,
        head: flatHeaders(SSE_HEADERS, b.headers),
        events,
        whole: Buffer.concat(events),
      };
      this.#prepared.set(b, p);
    }
    const limit = b.cutAfter ?? b.stallAfter;
    const events = limit === undefined ? p.events : p.events.slice(0, limit);
    const ends: number[] = [];
    let total = 0;
    for (const e of events) {
      total += e.length;
      ends.push(total);
    }
    const planned = this.#plan(b, p, events, total);
    // A copy: the plan of 'event' chunking is the cached list itself.
    const writes = b.tail === undefined ? planned : [...planned, Buffer.from(b.tail)];

    res.writeHead(p.status, [...p.head, 'request-id', this.#requestId()]);
    const firstDelay = b.firstDelayMs ?? 0;
    const delay = b.delayMs ?? 0;
    // Headers must reach the client on their own when nothing follows right away.
    if (firstDelay > 0 || writes.length === 0) res.flushHeaders();

    let written = 0;
    const finish = (): void => {
      if (b.cutAfter !== undefined) {
        ex.selfClosed = true;
        const s = res.socket;
        // The empty write's callback runs once everything before it reached the kernel.
        if (s) s.write(EMPTY, () => s.destroy());
      } else if (b.stallAfter === undefined) {
        res.end();
      }
    };
    const run = (i: number, waited: boolean): void => {
      for (;;) {
        if (ex.closed) return;
        if (i >= writes.length) {
          finish();
          return;
        }
        const pause = i === 0 ? firstDelay : delay;
        if (pause > 0 && !waited) {
          ex.timer = setTimeout(run, pause, i, true);
          return;
        }
        waited = false;
        const buf = writes[i++]!;
        const flushed = res.write(buf);
        written += buf.length;
        while (rec.sentEvents < ends.length && ends[rec.sentEvents]! <= written) rec.sentEvents++;
        if (!flushed) {
          res.once('drain', () => run(i, false));
          return;
        }
      }
    };
    run(0, false);
  }

  #plan(b: StreamBehaviour, p: PreparedStream, events: Buffer[], total: number): Buffer[] {
    const chunking = b.chunking ?? 'event';
    if (chunking === 'event') return events;
    if (events.length === 0) return [];
    const all = events.length === p.events.length ? p.whole : Buffer.concat(events, total);
    if (chunking === 'whole') return [all];
    const out: Buffer[] = [];
    const rand = prng(b.seed ?? 1);
    for (let at = 0; at < all.length; ) {
      const size = chunking === 'random' ? 1 + Math.floor(rand() * 64) : Math.max(1, Math.floor(chunking));
      out.push(all.subarray(at, at + size));
      at += size;
    }
    return out;
  }
}

/** Starts a fake upstream on 127.0.0.1 and an ephemeral port. */
export function startFakeUpstream(opts: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
  return new FakeUpstream(opts).listen();
}
