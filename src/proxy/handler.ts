import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ClientToken } from '../config/snapshot.js';
import { ErrorCode, PROXY_ERRORS } from '../errors.js';
import { eventLog, type LogEvent, type Logger } from '../observability/log.js';
import type { Metrics } from '../observability/metrics.js';
import type { LogWriter } from '../store/log-writer.js';
import { readRequestBody } from './body-reader.js';
import { sniffRequest } from './body-sniff.js';
import type { Limits } from './limits.js';
import type { Endpoint } from './outcome.js';
import { admitModel, admitToken, type Refusal } from './policy.js';
import { newRequestId, ProxyRequest } from './proxy-request.js';
import type { Runtime } from './runtime.js';
import { sendError } from './send-error.js';
import { watchSentBodies } from './sent-body.js';
import type { ProxyState } from './state.js';

/** What the proxy needs from the daemon. */
export interface ProxyDeps {
  /** The runtime of the current snapshot; read once per request. */
  readonly runtime: () => Runtime;
  readonly state: ProxyState;
  /** Token and channel counters and spend (operator policy). */
  readonly limits: Limits;
  readonly logWriter: LogWriter;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Wall clock for records and cooldowns (ms since the epoch). */
  readonly now: () => number;
}

/** The HTTP entry of the data path. */
export class ProxyHandler {
  readonly #d: ProxyDeps;
  /** Client requests past auth and body reading, being routed now. */
  readonly #active = new Set<ProxyRequest>();
  #draining = false;
  #idle: (() => void) | undefined;

  constructor(deps: ProxyDeps) {
    this.#d = deps;
    watchSentBodies();
  }

  /** Requests being routed now. */
  get active(): number {
    return this.#active.size;
  }

  /**
   * Graceful shutdown: new requests get 503 at once; requests in flight may finish for up to
   * `timeoutMs`; then the rest are ended (a committed stream with an `event: error` frame, an
   * uncommitted request with a 503) and recorded. Resolves when every request has ended.
   */
  async drain(timeoutMs: number): Promise<void> {
    this.#draining = true;
    if (this.#active.size > 0) {
      const idle = new Promise<void>((resolve) => {
        this.#idle = resolve;
      });
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), timeoutMs);
      });
      const r = await Promise.race([idle, timeout]);
      clearTimeout(timer);
      if (r === 'timeout') {
        eventLog(this.#d.log, 'drain_timeout').warn(
          { active: this.#active.size },
          `drain timeout: ending ${this.#active.size} request(s) still running`,
        );
        for (const p of this.#active) p.shutdown();
        await idle;
      }
    }
  }

  /** Serves one `/v1/*` request; never throws. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    const runtime = this.#d.runtime();
    runtime.enter();
    this.#d.metrics.inflight.inc();
    let left = false;
    const leave = () => {
      if (left) return;
      left = true;
      runtime.leave();
      this.#d.metrics.inflight.dec();
    };
    res.once('close', leave);
    this.#route(runtime, req, res).catch((err: unknown) => {
      eventLog(this.#d.log, 'proxy_error').error({ err }, 'proxy request failed');
      sendError(res, ErrorCode.INTERNAL);
    });
  }

  async #route(runtime: Runtime, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    let endpoint: Endpoint;
    if (path === '/v1/messages') endpoint = 'messages';
    else if (path === '/v1/messages/count_tokens') endpoint = 'count_tokens';
    else if (path === '/v1/models' || path.startsWith('/v1/models/')) {
      if (req.method !== 'GET')
        return sendError(res, ErrorCode.METHOD_NOT_ALLOWED, `method ${req.method} not allowed`);
      if (this.#authenticate(runtime, req, res) === false) return;
      return this.#models(runtime, path, res);
    } else return sendError(res, ErrorCode.NOT_FOUND, `ccload does not serve ${req.method} ${path}`);
    if (req.method !== 'POST')
      return sendError(res, ErrorCode.METHOD_NOT_ALLOWED, `method ${req.method} not allowed on ${path}`);
    if (this.#draining) {
      return sendError(res, ErrorCode.SHUTDOWN, undefined, ['retry-after', '5', 'connection', 'close']);
    }
    const token = this.#authenticate(runtime, req, res);
    if (token === false) return;
    if (token) {
      // Concurrency and budgets are judged before the body is read: a refused client costs nothing.
      const { limits, now } = this.#d;
      const t = now();
      const refusal = admitToken(
        token.name,
        token.policy,
        limits.tokenInflight(token.name),
        limits.spend(token.name, t),
        limits.windows(t),
      );
      if (refusal) return this.#refuse(res, endpoint, token, null, refusal, t);
      limits.enterToken(token.name);
      res.once('close', () => limits.leaveToken(token.name));
    }
    const limit = runtime.snapshot.config.server.max_body;
    const body = await readRequestBody(req, limit);
    if (body === 'too-large') {
      this.#d.metrics.child(this.#d.metrics.requests, endpoint, ErrorCode.BODY_TOO_LARGE).inc();
      return sendError(
        res,
        ErrorCode.BODY_TOO_LARGE,
        `request body is larger than server.max_body (${limit} bytes)`,
        ['connection', 'close'],
      );
    }
    if (body === 'aborted') return;
    const sniff = sniffRequest(body.bytes);
    if (!sniff.ok) {
      body.release();
      this.#d.metrics.child(this.#d.metrics.requests, endpoint, ErrorCode.BAD_REQUEST).inc();
      return sendError(res, ErrorCode.BAD_REQUEST, sniff.message);
    }
    let channels = runtime.snapshot.channels;
    if (token) {
      channels = runtime.channelsFor(token);
      const refusal = admitModel(
        token.name,
        token.policy,
        sniff.model,
        channels,
        token.policy.channels !== undefined && runtime.servesModel(sniff.model),
      );
      if (refusal) {
        body.release();
        return this.#refuse(res, endpoint, token, sniff.model, refusal, this.#d.now());
      }
    }
    const p = new ProxyRequest(
      this.#d,
      runtime,
      req,
      res,
      endpoint,
      token?.name ?? null,
      channels,
      body,
      sniff,
    );
    this.#active.add(p);
    try {
      await p.run();
    } finally {
      // Every attempt has ended (undici is done with the bytes): the buffer goes back to the pool.
      body.release();
      this.#active.delete(p);
      if (this.#active.size === 0) this.#idle?.();
    }
  }

  /**
   * A request refused by the token's policy before routing: answered, counted, logged with the
   * rule, and recorded as a row without a channel (attempt 0) so the dashboard's log shows it.
   */
  #refuse(
    res: ServerResponse,
    endpoint: Endpoint,
    token: ClientToken,
    model: string | null,
    refusal: Refusal,
    ts: number,
  ): void {
    const requestId = newRequestId();
    sendError(res, refusal.code, refusal.message, [...refusal.headers, 'x-ccload-request-id', requestId]);
    const status = PROXY_ERRORS[refusal.code].status;
    const m = this.#d.metrics;
    m.child(m.requests, endpoint, refusal.code).inc();
    this.#d.log.warn(
      {
        event: 'request' satisfies LogEvent,
        request_id: requestId,
        token: token.name,
        endpoint,
        model,
        channel: null,
        status,
        result: refusal.code,
        reason: refusal.message,
      },
      `${endpoint} ${model ?? '-'} refused for token ${token.name}: ${refusal.code}`,
    );
    this.#d.logWriter.enqueue({
      ts,
      requestId,
      token: token.name,
      endpoint,
      modelRequested: model,
      modelSent: null,
      channel: null,
      keyFp: null,
      status,
      errorClass: refusal.code,
      attempt: 0,
      final: true,
      ttfbMs: null,
      durationMs: 0,
      streamed: false,
      inputTokens: null,
      outputTokens: null,
      cacheCreationTokens: null,
      cacheReadTokens: null,
      costUsd: null,
    });
  }

  /**
   * Checks the client token (`x-api-key` or `Authorization: Bearer`; with both, either may match).
   * Returns the token, undefined on an open proxy, or false after answering 401.
   */
  #authenticate(
    runtime: Runtime,
    req: IncomingMessage,
    res: ServerResponse,
  ): ClientToken | undefined | false {
    if (runtime.open) return undefined;
    const key = req.headers['x-api-key'];
    const auth = req.headers.authorization;
    const bearer = auth?.startsWith('Bearer ') ? auth.slice(7).trim() : undefined;
    const found =
      runtime.authenticate(typeof key === 'string' ? key : undefined) ?? runtime.authenticate(bearer);
    if (found) return found;
    this.#d.metrics.child(this.#d.metrics.requests, 'auth', ErrorCode.UNAUTHORIZED).inc();
    const message =
      runtime.snapshot.tokens.length === 0
        ? 'ccload has no usable client token: the variables referenced in auth.tokens are empty (see the ccload log)'
        : key === undefined && bearer === undefined
          ? 'missing ccload client token: send it as x-api-key or Authorization: Bearer'
          : 'invalid ccload client token';
    sendError(res, ErrorCode.UNAUTHORIZED, message);
    return false;
  }

  #models(runtime: Runtime, path: string, res: ServerResponse): void {
    if (path === '/v1/models') {
      res.writeHead(200, [
        'content-type',
        'application/json',
        'content-length',
        String(runtime.modelsBody.length),
      ]);
      res.end(runtime.modelsBody);
      return;
    }
    let id: string;
    try {
      id = decodeURIComponent(path.slice('/v1/models/'.length));
    } catch {
      return sendError(res, ErrorCode.NOT_FOUND, 'model id is not valid percent-encoding');
    }
    const list = JSON.parse(runtime.modelsBody.toString('utf8')) as { data: { id: string }[] };
    const found = list.data.find((m) => m.id === id);
    if (!found)
      return sendError(res, ErrorCode.NO_CHANNEL, `model ${id} is not served by any enabled channel`);
    const body = JSON.stringify(found);
    res.writeHead(200, [
      'content-type',
      'application/json',
      'content-length',
      String(Buffer.byteLength(body)),
    ]);
    res.end(body);
  }
}
