/**
 * One upstream attempt: dispatches the request through the runtime's Pool and watches the answer
 * up to the commit point. Before commit nothing reaches the client, so any failure can still fail
 * over; at commit the held status, headers and opening events are written and the rest streams
 * through as it arrives (backpressure both ways: a slow client pauses the upstream). After commit
 * a failure ends the client's stream with an `event: error` frame — never a silent truncation.
 *
 * Commit points: an SSE answer commits at its first content event (SseTap); a non-streaming 2xx
 * is held whole and commits complete (so an empty or broken body still fails over); a failure
 * status never commits here — the caller decides whether it is returned to the client.
 *
 * One timer per attempt, re-armed lazily: chunks only record `lastActivity`, and the timer checks
 * which limit (first token, idle, deadline) is really due when it fires.
 *
 * Upstream error text is scrubbed of the snapshot's secrets (scrub.ts) before it goes anywhere: a
 * failure status's body and headers, the detail of a failure (which reaches the client's error
 * message, the log and the cooldown table), and after commit the bytes of an `event: error`, which
 * are held until the event is complete so that a key split across chunks is still found.
 */
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';
import type { Dispatcher } from 'undici';
import { anthropicError, ErrorCode, PROXY_ERRORS, sseErrorFrame } from '../errors.js';
import { downstreamHeaders, flatHeaders } from './headers.js';
import type { AttemptResult } from './outcome.js';
import type { Scrubber } from './scrub.js';
import { DEFAULT_MAX_EVENT_BYTES, SseTap } from './sse-tap.js';
import { type Usage, usageFromJsonBody } from './usage.js';

/** Everything one attempt needs. Times are `performance.now()` milliseconds. */
export interface AttemptInput {
  /** A Pool of the upstream's origin, or a ProxyAgent (which needs `origin`). */
  readonly dispatcher: Dispatcher;
  /** `scheme://host:port` of the upstream. */
  readonly origin: string;
  /** The connection goes to an outbound proxy: a failure to connect is the proxy's. */
  readonly viaProxy: boolean;
  readonly path: string;
  readonly headers: string[];
  readonly body: Buffer;
  readonly res: ServerResponse;
  /** `routing.timeouts.first_token` and `idle`, ms. */
  readonly firstTokenMs: number;
  readonly idleMs: number;
  /** Absolute deadline of the whole client request (Infinity for none). */
  readonly deadline: number;
  /** Extra response headers for the client (e.g. the ccload request id). */
  readonly extraHeaders: readonly string[];
  /** Called once when the answer starts reaching the client; `streamed` for SSE. */
  readonly onCommit?: (streamed: boolean) => void;
  /** Removes the snapshot's secrets from upstream error text. */
  readonly scrub: Scrubber;
  /** Reads a non-Anthropic answer back into Anthropic form (protocol.ts); absent: bytes pass as they are. */
  readonly translate?: ResponseTranslation | undefined;
}

/**
 * Translation of an upstream answer in another protocol into the Messages API's form. Everything
 * downstream of it — the SSE tap, the commit point, scrubbing, usage, outcome classification — sees
 * only the translated bytes, so it works the same for every protocol.
 */
export interface ResponseTranslation {
  /** The next chunk of an SSE answer → the Anthropic SSE bytes it completes (maybe empty). */
  sse(chunk: Buffer): Buffer;
  /** The SSE answer's body ended: any bytes still due. */
  sseEnd(): Buffer;
  /**
   * A whole 2xx non-SSE body → an Anthropic answer: a message body, or (`sse`) the whole event
   * stream of that message when the client asked for a stream; undefined when it is not an answer.
   */
  json(body: Buffer): { body: Buffer; sse: boolean } | undefined;
  /** A failure answer (already decoded and scrubbed) → the status and Anthropic error body the client would get. */
  error(status: number, body: Buffer): { status: number; body: Buffer };
}

/** A reply held before commit, for the caller to send when it ends up being the answer. */
export interface HeldReply {
  readonly status: number;
  readonly headers: string[];
  readonly body: Buffer;
}

/** How an attempt ended. */
export interface AttemptEnd {
  readonly result: AttemptResult;
  /** Whether anything was written to the client. */
  readonly committed: boolean;
  /** Upstream status (0 when none arrived; 499 when the client left). */
  readonly status: number;
  readonly ttfbMs: number | null;
  readonly durationMs: number;
  readonly streamed: boolean;
  readonly usage: Usage | undefined;
  /** The answering model as the upstream reported it. */
  readonly model: string | undefined;
  /** A failure status's response, held (not sent). */
  readonly reply: HeldReply | undefined;
  /** SSE events left out of the client's stream, by reason (`incomplete`: cut off by the stream's end). */
  readonly dropped: Readonly<Record<string, number>> | undefined;
  /** The stream ended after a `message_delta` with a `stop_reason` and ccload wrote the `message_stop`. */
  readonly stopSynthesised: boolean;
  /** `diagnostics.cache_miss_reason` of the answer. */
  readonly cacheMissReason: string | undefined;
}

/** Largest failure body kept for classification and the client; the rest is discarded. */
const MAX_ERROR_BODY = 1024 * 1024;
/** Largest non-streaming 2xx body held before commit; beyond it the answer is streamed as it comes. */
const MAX_HELD_BODY = 64 * 1024 * 1024;
/** Largest SSE preamble held before the first content event; beyond it the stream commits early. */
const MAX_HELD_PREAMBLE = 1024 * 1024;

/**
 * A failure status's body, decoded when the upstream compressed it although ccload asked for
 * `identity` (it must be readable to be scrubbed); undefined when it cannot be (an unknown
 * encoding, a broken or oversized stream). Bounded: at most MAX_ERROR_BODY bytes come out.
 */
function decodeErrorBody(body: Buffer, encoding: string): Buffer | undefined {
  const opts = { maxOutputLength: MAX_ERROR_BODY };
  try {
    switch (encoding.trim().toLowerCase()) {
      case 'gzip':
      case 'x-gzip':
        return gunzipSync(body, opts);
      case 'deflate':
        return inflateSync(body, opts);
      case 'br':
        return brotliDecompressSync(body, opts);
      default:
        return undefined;
    }
  } catch {
    return undefined;
  }
}
/**
 * After commit, bytes of an event still being received are held until it is complete and judged;
 * an event larger than this ends the stream (the tap's own bound on the data it parses is the same).
 */
const MAX_HELD_EVENT = DEFAULT_MAX_EVENT_BYTES + 64 * 1024;
/** What a stream completed by ccload ends with (README "How a request is served"). */
const MESSAGE_STOP_FRAME = Buffer.from('event: message_stop\ndata: {"type":"message_stop"}\n\n');

/** Network-level connect failures: through a proxy they are the proxy's (TLS errors are the upstream's). */
const PROXY_CONNECT = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ENETDOWN',
]);

/** Connect failures after which the upstream certainly saw nothing: the network ones and TLS. */
const NO_RESPONSE_CONNECT = new Set([
  ...PROXY_CONNECT,
  'CERT_HAS_EXPIRED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'EPROTO',
]);

/**
 * The message of the `event: error` a committed stream ends with, for the failures that say more
 * than "the stream broke off" (`CCL_STREAM_BROKEN`, every other failure).
 */
const COMMITTED_FAILURE: Partial<Record<ErrorCode, string>> = {
  [ErrorCode.IDLE_TIMEOUT]: 'the upstream stopped sending (idle timeout)',
  [ErrorCode.TOTAL_TIMEOUT]: 'the request deadline passed',
  [ErrorCode.SHUTDOWN]: 'ccload is shutting down; the answer was cut short',
  [ErrorCode.STREAM_UNREADABLE]: 'the upstream sent an unreadable event; the answer was cut short',
};

/** An abort reason that carries our own error code. */
class AttemptAbort extends Error {
  constructor(readonly ccl: ErrorCode) {
    super(ccl);
  }
}

type Mode = 'pending' | 'error' | 'json' | 'sse';

const EMPTY = Buffer.alloc(0);

/** Usage and model of a whole SSE answer held in memory. */
function usageFromSse(body: Buffer): { usage?: Usage; model?: string; cacheMissReason?: string } {
  const tap = new SseTap();
  tap.push(body);
  return {
    ...(tap.usage ? { usage: tap.usage } : {}),
    ...(tap.model ? { model: tap.model } : {}),
    ...(tap.cacheMissReason ? { cacheMissReason: tap.cacheMissReason } : {}),
  };
}

/** A flat `[name, value, ...]` header list (lower-case names) with `name` set to `value` alone. */
function replaceHeader(headers: string[], name: string, value: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) if (headers[i] !== name) out.push(headers[i]!, headers[i + 1]!);
  out.push(name, value);
  return out;
}

/** Runs one attempt; resolves when it has ended (never rejects). */
export function runAttempt(input: AttemptInput): {
  done: Promise<AttemptEnd>;
  clientGone(): void;
  abort(code: ErrorCode): void;
} {
  const attempt = new Attempt(input);
  return {
    done: attempt.done,
    clientGone: () => attempt.abort(ErrorCode.CLIENT_GONE),
    abort: (code) => attempt.abort(code),
  };
}

class Attempt implements Dispatcher.DispatchHandler {
  readonly done: Promise<AttemptEnd>;
  #resolve!: (end: AttemptEnd) => void;
  readonly #in: AttemptInput;
  readonly #start = performance.now();
  #controller: Dispatcher.DispatchController | undefined;
  #pendingAbort: AttemptAbort | undefined;
  #settled = false;
  #mode: Mode = 'pending';
  #status = 0;
  #headers: IncomingHttpHeaders = {};
  #ttfb: number | null = null;
  #lastActivity = 0;
  #timer: NodeJS.Timeout | undefined;
  /** When the timer is set to fire (Infinity when unset). */
  #armedAt = Number.POSITIVE_INFINITY;
  #committed = false;
  #chunks: Buffer[] = [];
  #size = 0;
  #tap: SseTap | undefined;
  /** SSE: stream offset up to which bytes were written or dropped, and the bytes received past it. */
  #sentAt = 0;
  #received = 0;
  #stopSynthesised = false;
  #incomplete = 0;
  #waitingDrain = false;
  /** `tap.errorEvents` already scrubbed for: an error event completed since is scrubbed when written. */
  #errorsSeen = 0;
  /** A failure body went past MAX_ERROR_BODY: the rest was discarded. */
  #truncated = false;
  #cacheMissReason: string | undefined;

  constructor(input: AttemptInput) {
    this.#in = input;
    this.done = new Promise((resolve) => {
      this.#resolve = resolve;
    });
    this.#armAt(Math.min(this.#start + input.firstTokenMs, input.deadline));
    input.dispatcher.dispatch(
      {
        origin: input.origin,
        path: input.path,
        method: 'POST',
        headers: input.headers,
        body: input.body,
        idempotent: false,
        blocking: true,
      },
      this,
    );
  }

  /** Ends the attempt with `code` and aborts the upstream request. */
  abort(code: ErrorCode, detail?: string): void {
    if (this.#settled) return;
    const reason = new AttemptAbort(code);
    this.#fail(code, detail, code === ErrorCode.CLIENT_GONE ? 499 : this.#status);
    if (this.#controller) this.#controller.abort(reason);
    else this.#pendingAbort = reason;
  }

  // --- undici handler -------------------------------------------------------------------------

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#pendingAbort) controller.abort(this.#pendingAbort);
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
  ): void {
    if (this.#settled || statusCode < 200) return;
    // 407 always comes from the proxy in between (its credentials are wrong or missing).
    if (statusCode === 407 && this.#in.viaProxy) {
      this.abort(ErrorCode.PROXY_CONNECT, 'proxy answered 407 (proxy authentication required)');
      return;
    }
    const now = performance.now();
    this.#ttfb = now - this.#start;
    this.#lastActivity = now;
    this.#status = statusCode;
    this.#headers = headers;
    if (statusCode >= 300) this.#mode = 'error';
    else if (String(headers['content-type'] ?? '').startsWith('text/event-stream')) {
      this.#mode = 'sse';
      this.#tap = new SseTap();
    } else this.#mode = 'json';
    this.#rearm();
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#settled) return;
    this.#lastActivity = performance.now();
    switch (this.#mode) {
      case 'sse': {
        const tr = this.#in.translate;
        if (tr === undefined) return this.#sseData(controller, chunk);
        const out = tr.sse(chunk);
        if (out.length > 0) this.#sseData(controller, out);
        return;
      }
      case 'json':
        if (this.#committed) return this.#write(controller, chunk);
        this.#hold(chunk);
        if (this.#size > MAX_HELD_BODY) {
          // A translated body must be whole to be translated.
          if (this.#in.translate) this.abort(ErrorCode.UPSTREAM_RESET, 'answer too large to translate');
          else this.#commit();
        }
        return;
      case 'error':
        if (this.#size < MAX_ERROR_BODY) this.#hold(chunk);
        else this.#truncated = true;
        return;
      default:
        return;
    }
  }

  onResponseEnd(): void {
    if (this.#settled) return;
    const { res } = this.#in;
    switch (this.#mode) {
      case 'error': {
        let { body, headers } = this.#errorReply();
        let status = this.#status;
        if (this.#in.translate) {
          ({ status, body } = this.#in.translate.error(status, body));
          headers = replaceHeader(headers, 'content-type', 'application/json');
        }
        const bodyText = body.toString('utf8');
        return this.#settle({
          result: { kind: 'status', status, headers: flatHeaders(this.#headers), bodyText },
          status,
          reply: { status, headers, body },
        });
      }
      case 'json': {
        if (this.#committed) {
          res.end();
          return this.#settle({ result: { kind: 'success' } });
        }
        let body = this.#body();
        let sse = false;
        if (body.length > 0 && this.#in.translate) {
          const out = this.#in.translate.json(body);
          body = out?.body ?? EMPTY;
          sse = out?.sse ?? false;
        }
        if (body.length === 0) {
          return this.#settle({
            result: {
              kind: 'status',
              status: this.#status,
              headers: flatHeaders(this.#headers),
              bodyText: '',
            },
          });
        }
        let headers = downstreamHeaders(this.#headers, false);
        if (this.#in.translate)
          headers = replaceHeader(
            headers,
            'content-type',
            sse ? 'text/event-stream; charset=utf-8' : 'application/json',
          );
        headers.push('content-length', String(body.length), ...this.#in.extraHeaders);
        this.#committed = true;
        this.#in.onCommit?.(false);
        res.writeHead(this.#status, headers);
        res.end(body);
        // Read after the answer is on its way: the client does not wait for the bookkeeping.
        const parsed = sse ? usageFromSse(body) : usageFromJsonBody(body);
        this.#cacheMissReason = parsed.cacheMissReason;
        return this.#settle({ result: { kind: 'success' }, usage: parsed.usage, model: parsed.model });
      }
      case 'sse':
        return this.#sseEnd();
      default:
        return this.#fail(ErrorCode.UPSTREAM_RESET, 'ended without a response');
    }
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.#settled) return;
    if (err instanceof AttemptAbort) return this.#fail(err.ccl);
    const code = (err as { code?: string }).code ?? '';
    const cause = (err as { cause?: { code?: string } }).cause?.code;
    const detail = cause ?? code ?? err.message;
    if (code === 'UND_ERR_CONNECT_TIMEOUT') return this.#fail(ErrorCode.CONNECT_TIMEOUT, detail);
    // Through a proxy every connection is to the proxy: refused, unreachable, or a CONNECT it did
    // not answer with 200 (undici aborts the tunnel) is the proxy failing this channel.
    if (
      this.#in.viaProxy &&
      this.#mode === 'pending' &&
      (PROXY_CONNECT.has(code) ||
        PROXY_CONNECT.has(cause ?? '') ||
        /^Proxy response \(\d+\)/.test(err.message) ||
        code === 'UND_ERR_PRX_TLS')
    ) {
      const m = /^Proxy response \((\d+)\)/.exec(err.message);
      return this.#fail(ErrorCode.PROXY_CONNECT, m ? `proxy answered ${m[1]} to CONNECT` : detail);
    }
    if (this.#mode === 'pending' && (NO_RESPONSE_CONNECT.has(code) || NO_RESPONSE_CONNECT.has(cause ?? ''))) {
      return this.#fail(ErrorCode.UPSTREAM_CONNECT, detail);
    }
    if (code === 'UND_ERR_HEADERS_TIMEOUT') return this.#fail(ErrorCode.FIRST_TOKEN_TIMEOUT, detail);
    if (code === 'UND_ERR_BODY_TIMEOUT') return this.#fail(ErrorCode.IDLE_TIMEOUT, detail);
    return this.#fail(ErrorCode.UPSTREAM_RESET, detail || err.message);
  }

  // --- SSE ------------------------------------------------------------------------------------

  #sseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    const tap = this.#tap!;
    const crossed = tap.push(chunk) >= 0;
    this.#received += chunk.length;
    if (this.#committed) {
      // The usual case: the chunk ends on an event boundary and nothing was dropped.
      if (
        this.#size === 0 &&
        tap.safeAt === this.#received &&
        tap.drops.length === 0 &&
        !tap.fatal &&
        tap.errorEvents === this.#errorsSeen
      ) {
        this.#sentAt = this.#received;
        return this.#write(controller, chunk);
      }
      this.#hold(chunk);
      if (tap.fatal) return this.#unreadable();
      this.#flush(tap.safeAt);
      if (this.#size > MAX_HELD_EVENT) {
        this.abort(ErrorCode.STREAM_UNREADABLE, `an event over ${MAX_HELD_EVENT} bytes`);
      }
      return;
    }
    this.#hold(chunk);
    if (tap.fatal) return this.#unreadable();
    if (tap.error && !tap.committed) {
      this.abort(ErrorCode.UPSTREAM_SSE_ERROR, `${tap.error.type}: ${tap.error.message}`);
      return;
    }
    if (crossed || this.#size > MAX_HELD_PREAMBLE) this.#commit();
  }

  /** An unreadable event the client needs: before commit fail over, after it end the stream there. */
  #unreadable(): void {
    const fatal = this.#tap!.fatal!;
    if (this.#committed) this.#flush(fatal.at);
    this.abort(ErrorCode.STREAM_UNREADABLE, `${fatal.reason} ${fatal.event} event`);
  }

  #sseEnd(): void {
    const tap = this.#tap!;
    const { res } = this.#in;
    const tail = this.#in.translate?.sseEnd();
    if (tail !== undefined && tail.length > 0 && this.#controller) {
      this.#sseData(this.#controller, tail);
      if (this.#settled) return;
    }
    if (this.#committed) {
      this.#flush(tap.safeAt);
      if (tap.stopped) {
        res.end();
        return this.#settle({ result: { kind: 'success' } });
      }
      if (!tap.error && tap.stopReason !== undefined) {
        // The answer is complete (message_delta said why it stopped); only the closing event is
        // missing. Clients (the SDK, Claude Code) would otherwise report a broken turn.
        this.#stopSynthesised = true;
        res.end(MESSAGE_STOP_FRAME);
        return this.#settle({ result: { kind: 'success' } });
      }
      // The upstream's own `event: error` already reached the client; otherwise say what happened.
      if (tap.error) res.end();
      else res.end(sseErrorFrame(ErrorCode.STREAM_BROKEN, 'the upstream stream ended before message_stop'));
      return this.#settle({
        result: {
          kind: 'failure',
          code: ErrorCode.STREAM_BROKEN,
          committed: true,
          detail: tap.error ? `${tap.error.type}: ${tap.error.message}` : 'ended before message_stop',
        },
      });
    }
    if (tap.error) return this.#fail(ErrorCode.UPSTREAM_SSE_ERROR, `${tap.error.type}: ${tap.error.message}`);
    return this.#fail(
      ErrorCode.UPSTREAM_EMPTY,
      tap.eventCount === 0 ? 'stream without events' : 'stream ended before content',
    );
  }

  /**
   * Writes the held SSE bytes up to stream offset `end`, leaving out the events the tap dropped,
   * and keeps the bytes past `end` (an event not yet complete) held.
   */
  #flush(end: number): void {
    const tap = this.#tap!;
    const drops = tap.drops;
    const from = this.#sentAt;
    if (end <= from && drops.length === 0) return;
    const held = this.#body();
    const out: Buffer[] = [];
    let at = from;
    for (let i = 0; i < drops.length; i += 2) {
      const s = drops[i]!;
      const e = drops[i + 1]!;
      if (s >= end) break;
      if (s > at) out.push(held.subarray(at - from, s - from));
      at = e;
    }
    if (end > at) out.push(held.subarray(at - from, end - from));
    drops.length = 0;
    this.#sentAt = Math.max(end, at);
    const rest = held.subarray(this.#sentAt - from);
    this.#chunks = rest.length > 0 ? [rest] : [];
    this.#size = rest.length;
    if (out.length === 0) return;
    // An error event completed among these bytes may quote a secret: it is whole here (events are
    // written only once complete), so a key split across chunks is still found.
    if (tap.errorEvents !== this.#errorsSeen) {
      this.#errorsSeen = tap.errorEvents;
      const all = out.length === 1 ? out[0]! : Buffer.concat(out);
      out.length = 0;
      out.push(this.#in.scrub.bytes(all));
    }
    this.#writeAll(out);
  }

  /** Writes buffers to the client in one corked batch, pausing the upstream on backpressure. */
  #writeAll(bufs: readonly Buffer[]): void {
    const { res } = this.#in;
    let ok = true;
    if (bufs.length === 1) ok = res.write(bufs[0]!);
    else {
      res.cork();
      for (const b of bufs) ok = res.write(b);
      process.nextTick(() => res.uncork());
    }
    if (!ok) this.#backpressure();
  }

  // --- commit and writing ---------------------------------------------------------------------

  #hold(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#size += chunk.length;
  }

  #body(): Buffer {
    return this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#size);
  }

  /** Sends the held status, headers and bytes; from now on bytes flow straight through. */
  #commit(): void {
    const { res } = this.#in;
    this.#committed = true;
    this.#in.onCommit?.(this.#mode === 'sse');
    const headers = downstreamHeaders(this.#headers, false);
    if (this.#in.extraHeaders.length > 0) headers.push(...this.#in.extraHeaders);
    res.writeHead(this.#status, headers);
    if (this.#mode === 'sse') {
      this.#flush(this.#tap!.safeAt);
      this.#rearm();
      return;
    }
    const held = this.#chunks;
    this.#chunks = [];
    this.#size = 0;
    this.#writeAll(held);
    this.#rearm();
  }

  /**
   * A failure status's answer for the client, scrubbed: the body (decoded first when the upstream
   * compressed it; replaced by a ccload error when it cannot be read) and the header values.
   */
  #errorReply(): { body: Buffer; headers: string[] } {
    const scrub = this.#in.scrub;
    let body = this.#body();
    let headers = downstreamHeaders(this.#headers, false);
    const encoding = this.#headers['content-encoding'];
    if (encoding !== undefined && String(encoding).trim().toLowerCase() !== 'identity' && body.length > 0) {
      const decoded = decodeErrorBody(body, String(encoding));
      const dropped = new Set(['content-encoding', ...(decoded ? [] : ['content-type'])]);
      headers = headers.filter((_, i, all) =>
        i % 2 === 0 ? !dropped.has(all[i]!) : !dropped.has(all[i - 1]!),
      );
      if (decoded) body = decoded;
      else {
        body = Buffer.from(
          anthropicError(
            PROXY_ERRORS[ErrorCode.UPSTREAM_STATUS].type,
            `the upstream answered ${this.#status} with a body ccload cannot read (${encoding})`,
          ),
        );
        headers.push('content-type', 'application/json');
      }
    }
    if (scrub.empty) return { body, headers };
    for (let i = 1; i < headers.length; i += 2) headers[i] = scrub.header(headers[i]!);
    return { body: this.#truncated ? scrub.truncatedBytes(body) : scrub.bytes(body), headers };
  }

  #write(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.#in.res.write(chunk) && !controller.paused) this.#backpressure();
  }

  /** The client reads slower than the upstream sends: pause the upstream until the client drains. */
  #backpressure(): void {
    if (this.#waitingDrain) return;
    this.#waitingDrain = true;
    this.#controller?.pause();
    this.#in.res.once('drain', () => {
      this.#waitingDrain = false;
      this.#lastActivity = performance.now();
      if (this.#settled) return;
      this.#controller?.resume();
      // A timer that fired during the wait found no idle limit to run (a paused upstream is not
      // silent) and was not re-armed: without this, a stall after the client caught up would only
      // end at undici's backstop, seconds past `idle`.
      this.#rearm();
    });
  }

  // --- timers ---------------------------------------------------------------------------------

  #armAt(at: number): void {
    clearTimeout(this.#timer);
    this.#armedAt = at;
    if (at === Number.POSITIVE_INFINITY) return;
    this.#timer = setTimeout(() => this.#onTimer(), Math.max(0, at - performance.now()));
  }

  /** The earliest limit that applies now. */
  #nextDue(): { at: number; code: ErrorCode } {
    const { firstTokenMs, idleMs, deadline } = this.#in;
    let due = { at: deadline, code: ErrorCode.TOTAL_TIMEOUT as ErrorCode };
    const consider = (at: number, code: ErrorCode) => {
      if (at < due.at) due = { at, code };
    };
    // Before headers, or before the first content event of a stream, the first-token limit runs.
    if (this.#mode === 'pending' || (this.#mode === 'sse' && !this.#committed)) {
      consider(this.#start + firstTokenMs, ErrorCode.FIRST_TOKEN_TIMEOUT);
    }
    // Once bytes flow, silence longer than `idle` ends the attempt; a paused upstream is not silent.
    if (this.#mode !== 'pending' && !this.#waitingDrain)
      consider(this.#lastActivity + idleMs, ErrorCode.IDLE_TIMEOUT);
    return due;
  }

  /**
   * Moves the timer earlier when a limit now due sooner applies; a later one is left to the timer
   * itself, which re-arms when it fires early (so a quick answer costs one setTimeout, not three).
   */
  #rearm(): void {
    if (this.#settled) return;
    const at = this.#nextDue().at;
    if (at < this.#armedAt) this.#armAt(at);
  }

  #onTimer(): void {
    if (this.#settled) return;
    const due = this.#nextDue();
    if (due.at > performance.now() + 1) {
      this.#armAt(due.at);
      return;
    }
    // On a saturated event loop the timer can run before I/O that already arrived (the answer's
    // headers or first event) has been read: let pending I/O callbacks run once, then judge again.
    this.#armedAt = Number.POSITIVE_INFINITY;
    setImmediate(() => {
      if (this.#settled) return;
      const again = this.#nextDue();
      if (again.at <= performance.now() + 1) this.abort(again.code);
      else this.#armAt(again.at);
    });
  }

  // --- ending ---------------------------------------------------------------------------------

  #fail(code: ErrorCode, detail?: string, status = this.#status): void {
    if (this.#settled) return;
    const { res } = this.#in;
    const committed = this.#committed;
    if (committed && code !== ErrorCode.CLIENT_GONE && !res.writableEnded) {
      const message = COMMITTED_FAILURE[code];
      if (this.#mode === 'sse')
        res.end(message ? sseErrorFrame(code, message) : sseErrorFrame(ErrorCode.STREAM_BROKEN));
      else res.destroy();
    }
    this.#settle({ result: { kind: 'failure', code, committed, detail }, status });
  }

  #settle(end: {
    result: AttemptResult;
    status?: number;
    usage?: Usage | undefined;
    model?: string | undefined;
    reply?: HeldReply;
  }): void {
    if (this.#settled) return;
    this.#settled = true;
    clearTimeout(this.#timer);
    const tap = this.#tap;
    const r = end.result;
    // A failure's detail may quote the upstream (an error event's message): it reaches the
    // client's error message, the log and the cooldown table.
    const result = r.kind === 'failure' && r.detail ? { ...r, detail: this.#in.scrub.text(r.detail) } : r;
    let dropped: Record<string, number> | undefined;
    // Bytes after the last complete event never reach the client: an event cut off by the end.
    if (tap && this.#committed && !tap.fatal && this.#size > 0 && tap.midEvent) this.#incomplete = 1;
    if (tap) {
      const d = tap.dropped;
      if (d.invalid_json + d.oversize + this.#incomplete > 0)
        dropped = { invalid_json: d.invalid_json, oversize: d.oversize, incomplete: this.#incomplete };
    }
    this.#resolve({
      dropped,
      stopSynthesised: this.#stopSynthesised,
      cacheMissReason: this.#cacheMissReason ?? tap?.cacheMissReason,
      result,
      committed: this.#committed,
      status: end.status ?? this.#status,
      ttfbMs: this.#ttfb === null ? null : Math.round(this.#ttfb),
      durationMs: Math.round(performance.now() - this.#start),
      streamed: this.#mode === 'sse',
      usage: end.usage ?? tap?.usage,
      model: end.model ?? tap?.model,
      reply: end.reply,
    });
  }
}
