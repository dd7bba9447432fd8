/**
 * One client request's life on the data path (docs/proxy.md): selection → attempts with failover
 * until one answers, the request's deadline passes or `max_attempts` is spent → the answer the
 * client gets → attempt records to the log queue and the request's log line. `ProxyHandler`
 * (handler.ts) creates one per request after auth and body reading.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Channel } from '../config/snapshot.js';
import { clientError, ErrorCode, PROXY_ERRORS } from '../errors.js';
import type { LogEvent } from '../observability/log.js';
import type { AttemptRecord } from '../store/attempt.js';
import { type AffinityResult, type Choice, choose, sessionIdOf, sessionKey } from './affinity.js';
import type { Body } from './body-reader.js';
import { metadataUserId } from './body-sniff.js';
import { type AttemptEnd, type HeldReply, runAttempt } from './forward.js';
import type { ProxyDeps } from './handler.js';
import { applyHeaderRules } from './header-rules.js';
import { stripHintQuery, timeoutHint } from './headers.js';
import { classifyOutcome, type Endpoint, type Outcome } from './outcome.js';
import { adapterFor, type ClientCall } from './protocol.js';
import type { Runtime } from './runtime.js';
import { type Candidate, coolingDecision, select, type TriedAttempt } from './select.js';
import { sendError } from './send-error.js';
import { bodyWritten } from './sent-body.js';
import { billedTokens } from './usage.js';

const PREFIX = randomBytes(4).toString('hex');
let counter = 0;

/** A request id unique across restarts: a per-process prefix and a counter. */
export function newRequestId(): string {
  counter = (counter + 1) % Number.MAX_SAFE_INTEGER;
  return `ccl_${PREFIX}${counter.toString(36).padStart(6, '0')}`;
}

/** One client request through selection and attempts. */
export class ProxyRequest {
  readonly #d: ProxyDeps;
  readonly #rt: Runtime;
  readonly #res: ServerResponse;
  readonly #endpoint: Endpoint;
  readonly #token: string | null;
  readonly #body: Buffer;
  /** Gives the body's pooled buffer back (idempotent; the handler calls it again at the end). */
  readonly #release: () => void;
  /** The channels the client token may use (all of the snapshot's when it has no allow-list). */
  readonly #channels: readonly Channel[];
  readonly #model: string;
  /** The model as metrics label it (`other` unless the configuration names it). */
  readonly #metricModel: string;
  /** The session key (`sessionKey`) when the request names a session; also its fingerprint in records. */
  readonly #session: string | null;
  /** Route by the session's pin (a messages request with a session, affinity enabled). */
  readonly #pinned: boolean;
  /** What affinity did for this request, for the metric. */
  #affinity: AffinityResult = 'none';
  #settled = false;
  /** The request as every attempt's protocol adapter sees it. */
  readonly #call: ClientCall;
  /** Why a channel's protocol could not take the request, when it could not (docs/openai.md). */
  #refused: string | undefined;
  readonly #deadline: number;
  readonly #started = performance.now();
  readonly #id = newRequestId();
  #gone = false;
  #stopping = false;
  #current: ReturnType<typeof runAttempt> | undefined;
  #wake: (() => void) | undefined;
  /** For the request's log line: attempts made, and the channel and attempt that ended it. */
  #attempts = 0;
  #channel: string | null = null;
  #last: AttemptEnd | undefined;
  #streaming = false;

  constructor(
    d: ProxyDeps,
    rt: Runtime,
    req: IncomingMessage,
    res: ServerResponse,
    endpoint: Endpoint,
    token: string | null,
    channels: readonly Channel[],
    body: Body,
    sniff: {
      model: string;
      modelStart: number;
      modelEnd: number;
      metadataStart: number;
      metadataEnd: number;
    },
  ) {
    this.#d = d;
    this.#rt = rt;
    this.#res = res;
    this.#endpoint = endpoint;
    this.#token = token;
    this.#body = body.bytes;
    this.#release = body.release;
    this.#channels = channels;
    this.#model = sniff.model;
    this.#metricModel = rt.metricModel(sniff.model);
    // The header first (Claude Code sends it on every request, so the body is rarely looked at).
    const header = req.headers['x-claude-code-session-id'];
    const sessionId = sessionIdOf(
      header,
      header === undefined ? metadataUserId(body.bytes, sniff.metadataStart, sniff.metadataEnd) : undefined,
    );
    this.#session = sessionId === undefined ? null : sessionKey(token, sessionId);
    this.#pinned =
      this.#session !== null && endpoint === 'messages' && rt.snapshot.config.routing.affinity.enabled;
    const { target, hints } = stripHintQuery(req.url ?? '/');
    this.#call = {
      endpoint,
      rawHeaders: req.rawHeaders,
      target,
      body: body.bytes,
      model: sniff.model,
      modelStart: sniff.modelStart,
      modelEnd: sniff.modelEnd,
      forwardClientAddress: rt.snapshot.config.server.forward_client_address,
    };
    const total = rt.snapshot.config.routing.timeouts.total;
    const hint = timeoutHint(req.headers, hints);
    const budget = Math.min(total > 0 ? total : Number.POSITIVE_INFINITY, hint ?? Number.POSITIVE_INFINITY);
    this.#deadline = this.#started + budget;
    res.once('close', () => {
      if (res.writableFinished) return;
      this.#gone = true;
      this.#current?.clientGone();
      this.#wake?.();
    });
  }

  /** Ends the request now (shutdown after the drain timeout). */
  shutdown(): void {
    this.#stopping = true;
    this.#current?.abort(ErrorCode.SHUTDOWN);
    this.#wake?.();
  }

  async run(): Promise<void> {
    try {
      await this.#run();
    } finally {
      if (this.#pinned && !this.#settled) this.#d.state.pins.abandon(this.#session!);
      this.#d.metrics.child(this.#d.metrics.affinity, this.#affinity).inc();
    }
  }

  async #run(): Promise<void> {
    const { state, now, limits } = this.#d;
    const routing = this.#rt.snapshot.config.routing;
    const channels = this.#channels;
    const capped = (c: Channel, at: number) => limits.cappedUntil(c, at);
    let busySince: number | undefined;
    const tried: TriedAttempt[] = [];
    let attempts = 0;
    let last: { end: AttemptEnd; outcome: Outcome; channel: Channel } | undefined;
    let waited = false;
    let end: AttemptEnd | undefined;
    // A failed-over attempt is recorded once it is known whether its answer is the one the client
    // gets (every later attempt failed without an answer of its own): that makes it `final`.
    let unrecorded: ((final: boolean) => void) | undefined;

    while (attempts < routing.max_attempts && !this.#gone && !this.#stopping) {
      const t = now();
      const sel = select({
        channels,
        model: this.#model,
        cooldowns: state.cooldowns,
        rr: state.rr,
        now: t,
        policy: routing,
        tried,
        capped,
      });
      let candidate: Candidate;
      let choice: Choice | undefined;
      if (sel.kind === 'none') {
        return this.#finishError(ErrorCode.NO_CHANNEL, this.#model, []);
      } else if (sel.kind === 'exhausted') {
        break;
      } else if (sel.kind === 'go') {
        if (attempts === 0 && tried.length === 0) state.advance(sel.rrAdvance);
        if (this.#pinned) {
          const session = this.#session!;
          const affinity = routing.affinity;
          choice = choose({
            table: state.pins.table,
            candidates: sel.candidates,
            session,
            pin: state.pins.find(session, t, affinity.idle),
            channels,
            model: this.#model,
            cooldowns: state.cooldowns,
            now: t,
            policy: affinity,
          });
          candidate = sel.candidates[choice.index]!;
          if (choice.decision === 'new') state.pins.assign(session, candidate, t);
          this.#affinity = choice.decision;
        } else {
          candidate = sel.candidates[0]!;
        }
      } else if (sel.kind === 'busy') {
        // Only channels at their caps are left: wait for a slot within the cooling wait and the
        // deadline (several short waits may be needed: another request can take a freed slot).
        busySince ??= performance.now();
        const left = Math.min(
          busySince + routing.cooling_wait - performance.now(),
          this.#deadline - performance.now(),
        );
        if (left <= 0) {
          if (last) break;
          const retryAfter = String(
            Math.max(1, Math.ceil(Number.isFinite(sel.until) ? (sel.until - t) / 1000 : 1)),
          );
          return this.#finishError(ErrorCode.CHANNELS_BUSY, `retry in ${retryAfter} s`, [
            'retry-after',
            retryAfter,
          ]);
        }
        const slot = limits.waitForSlot(Math.max(1, Math.min(left, sel.until - t)));
        this.#wake = slot.cancel;
        await slot.done;
        continue;
      } else {
        const d = coolingDecision(sel, {
          now: t,
          remainingMs: this.#deadline - performance.now(),
          coolingWait: routing.cooling_wait,
          waited,
        });
        if (d.kind === 'answer') {
          if (last) break;
          const retryAfter = String(d.retryAfterS);
          return this.#finishError(ErrorCode.ALL_COOLING, `retry in ${retryAfter} s`, [
            'retry-after',
            retryAfter,
          ]);
        }
        const { until, ms: waitMs } = d;
        waited = true;
        await this.#sleep(waitMs);
        // The timer measures monotonic time and `now()` is the wall clock: the timer can fire a
        // little before `now()` reaches `until` (ms truncation, NTP slewing), and the next
        // selection would see the candidate still cooling and give up on it. Sleep out such a
        // remainder (bounded; a clock that did not move, a manual test clock, is left alone).
        for (let i = 0; i < 3 && !this.#gone && !this.#stopping; i++) {
          const rest = until - now();
          if (rest <= 0 || rest >= waitMs) break;
          await this.#sleep(rest + 1);
        }
        if (this.#gone || this.#stopping) break;
        continue;
      }

      const { channel, keyIndex } = candidate;
      const sent = channel.mapModel(this.#model);
      const key = channel.keys.find((k) => k.index === keyIndex)!;
      const call = adapterFor(channel).prepare(this.#call, channel, key.value, sent);
      if (call.kind === 'refuse') {
        // This channel's protocol cannot carry the request; another channel may. No upstream attempt.
        this.#refused = `channel "${channel.name}" (protocol ${channel.protocol}): ${call.message}`;
        tried.push({ channel: channel.name, keyIndex });
        continue;
      }
      attempts++;
      const n = attempts;
      unrecorded?.(false);
      unrecorded = undefined;
      const ts = now();
      const rules = this.#rt.headerRules.get(channel.name);
      if (call.kind === 'local')
        return this.#answerLocally(ts, attempts, channel, key.fingerprint, sent, call);
      limits.startAttempt(channel, ts);
      const attempt = runAttempt({
        dispatcher: this.#rt.dispatcher(channel),
        origin: channel.origin,
        viaProxy: channel.proxy !== undefined,
        path: call.path,
        headers: rules ? applyHeaderRules(call.headers, rules) : call.headers,
        body: call.body,
        translate: call.translate,
        res: this.#res,
        firstTokenMs: routing.timeouts.first_token,
        idleMs: routing.timeouts.idle,
        deadline: this.#deadline,
        extraHeaders: ['x-ccload-request-id', this.#id],
        scrub: this.#rt.scrubber,
        onCommit: (streamed) => {
          if (!streamed) return;
          this.#streaming = true;
          this.#d.metrics.inflightStreams.inc();
          // Committed: no later attempt needs the client's body. On a first attempt it goes back to
          // the pool now rather than when the stream ends, once undici holds no pending write of it
          // (sent-body.ts) — it sent a copy (model_map, another protocol), or every byte has left.
          // After a failover an earlier attempt's write may still hold it, so it waits for the end.
          if (n === 1 && (call.body !== this.#body || bodyWritten(call.body))) this.#release();
        },
      });
      this.#current = attempt;
      if (this.#gone) attempt.clientGone();
      else if (this.#stopping) attempt.abort(ErrorCode.SHUTDOWN);
      end = await attempt.done;
      limits.endAttempt(channel);
      this.#current = undefined;
      this.#attempts = attempts;
      this.#channel = channel.name;
      this.#last = end;

      const outcome = classifyOutcome(end.result, {
        endpoint: this.#endpoint,
        now: now(),
        requestedModel: this.#model,
        sentModel: sent,
      });
      const ctx = { channel, keyIndex, model: this.#model };
      let affinity: AffinityResult = choice?.decision ?? 'none';
      if (outcome.ok && choice) {
        affinity = state.pins.settle(this.#session!, candidate, choice.decision, now(), routing.affinity);
        this.#affinity = affinity;
        this.#settled = true;
      }
      if (outcome.ok) state.success(ctx, now());
      else if (outcome.scope !== 'none') {
        const entry = state.failure(outcome, ctx, routing.cooldown, now());
        if (entry) this.#d.metrics.child(this.#d.metrics.cooldownsEntered, entry.scope, outcome.label).inc();
      }
      const final = outcome.ok || !outcome.failover || end.committed;
      if (final) {
        this.#record(ts, attempts, channel, key.fingerprint, sent, end, outcome, !this.#gone, affinity);
        return this.#finishAttempt(channel, end, outcome);
      }
      const ended = end;
      unrecorded = (f) => this.#record(ts, n, channel, key.fingerprint, sent, ended, outcome, f, affinity);
      tried.push({ channel: channel.name, keyIndex });
      last = { end, outcome, channel };
      this.#d.metrics.pair(channel.name, this.#metricModel).failovers.inc();
    }

    unrecorded?.(!this.#gone && last?.end.reply !== undefined);
    if (this.#gone) return this.#done(ErrorCode.CLIENT_GONE, 499);
    if (this.#stopping && !last)
      return this.#finishError(ErrorCode.SHUTDOWN, 'retry shortly', ['retry-after', '5']);
    if (!last && this.#refused !== undefined) {
      sendError(this.#res, ErrorCode.BAD_REQUEST, this.#refused, ['x-ccload-request-id', this.#id]);
      return this.#done(ErrorCode.BAD_REQUEST, PROXY_ERRORS[ErrorCode.BAD_REQUEST].status);
    }
    if (!last) return this.#finishError(ErrorCode.NO_CHANNEL, this.#model, []);
    // Every attempt failed: the client gets the last upstream answer, or an error naming what failed.
    const { end: lastEnd, outcome, channel } = last;
    if (lastEnd.reply) return this.#sendReply(lastEnd.reply, outcome);
    const code = outcome.errorClass ?? ErrorCode.UPSTREAM_STATUS;
    sendError(
      this.#res,
      code,
      `${PROXY_ERRORS[code].message} (${attempts} attempt${attempts === 1 ? '' : 's'}; last: channel "${channel.name}": ${outcome.reason})`,
      ['x-ccload-request-id', this.#id],
    );
    this.#done(code, PROXY_ERRORS[code].status);
  }

  /** An answer the channel's protocol gives without an upstream request (count_tokens on OpenAI channels). */
  #answerLocally(
    ts: number,
    n: number,
    channel: Channel,
    keyFp: string,
    sent: string,
    call: { status: number; body: Buffer },
  ): void {
    const durationMs = Math.round(performance.now() - this.#started);
    const end: AttemptEnd = {
      result: { kind: 'success' },
      committed: true,
      status: call.status,
      ttfbMs: durationMs,
      durationMs,
      streamed: false,
      usage: undefined,
      model: undefined,
      reply: undefined,
      dropped: undefined,
      stopSynthesised: false,
      cacheMissReason: undefined,
    };
    this.#attempts = n;
    this.#channel = channel.name;
    this.#last = end;
    const outcome = classifyOutcome(end.result, { endpoint: this.#endpoint, now: this.#d.now() });
    this.#res.writeHead(call.status, [
      'content-type',
      'application/json',
      'content-length',
      String(call.body.length),
      'x-ccload-request-id',
      this.#id,
    ]);
    this.#res.end(call.body);
    this.#record(ts, n, channel, keyFp, sent, end, outcome, true, 'none');
    this.#done('ok', call.status);
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
  }

  /** The attempt that ends the request: success, a committed failure, or a non-failover status. */
  #finishAttempt(channel: Channel, end: AttemptEnd, outcome: Outcome): void {
    if (outcome.ok || end.committed)
      return this.#done(
        outcome.ok ? 'ok' : (outcome.errorClass ?? ErrorCode.STREAM_BROKEN),
        end.status,
        end.streamed,
      );
    if (end.reply) return this.#sendReply(end.reply, outcome);
    const code = outcome.errorClass ?? ErrorCode.UPSTREAM_STATUS;
    sendError(
      this.#res,
      code,
      `${PROXY_ERRORS[code].message} (channel "${channel.name}": ${outcome.reason})`,
      ['x-ccload-request-id', this.#id],
    );
    this.#done(code, PROXY_ERRORS[code].status);
  }

  #sendReply(reply: HeldReply, outcome: Outcome): void {
    const res = this.#res;
    if (!res.headersSent && !this.#gone) {
      res.writeHead(reply.status, [
        ...reply.headers,
        'content-length',
        String(reply.body.length),
        'x-ccload-request-id',
        this.#id,
      ]);
      res.end(reply.body);
    }
    this.#done(outcome.errorClass ?? ErrorCode.UPSTREAM_STATUS, reply.status);
  }

  #finishError(code: ErrorCode, detail: string | undefined, headers: string[]): void {
    const e = clientError(code, detail);
    sendError(this.#res, code, e.message, [...headers, 'x-ccload-request-id', this.#id]);
    this.#done(code, e.status);
  }

  /** Counts the request and writes its one log line (docs/proxy.md#what-is-recorded). */
  #done(result: string, status: number, streamed = false): void {
    const m = this.#d.metrics;
    const ms = performance.now() - this.#started;
    m.child(m.requests, this.#endpoint, result).inc();
    m.child(m.duration, this.#endpoint, streamed ? 'true' : 'false').observe(ms / 1000);
    if (this.#streaming) m.inflightStreams.dec();
    // At `warn` a success writes no line: do not build one.
    if (result === 'ok' && !this.#d.log.isLevelEnabled('info')) return;
    const end = this.#last;
    const u = end?.usage;
    const line = {
      event: 'request' satisfies LogEvent,
      request_id: this.#id,
      token: this.#token,
      endpoint: this.#endpoint,
      model: this.#model,
      channel: this.#channel,
      status,
      result,
      attempts: this.#attempts,
      ttfb_ms: end?.ttfbMs ?? null,
      duration_ms: Math.round(ms),
      streamed,
      input_tokens: u?.input,
      output_tokens: u?.output,
      cache_read_tokens: u?.cacheRead,
      cache_creation_tokens: u?.cacheCreation,
    };
    const msg = `${this.#endpoint} ${this.#model} -> ${this.#channel ?? '-'} ${status} in ${Math.round(ms)} ms`;
    if (result === 'ok') this.#d.log.info(line, msg);
    else this.#d.log.warn(line, msg);
  }

  #record(
    ts: number,
    n: number,
    channel: Channel,
    keyFp: string,
    sent: string,
    end: AttemptEnd,
    outcome: Outcome,
    final: boolean,
    affinity: AffinityResult,
  ): void {
    const usage = outcome.ok || end.committed ? end.usage : undefined;
    const cost = usage ? this.#rt.prices.cost(sent, usage) : null;
    const billed = usage ? billedTokens(usage) : undefined;
    const dropped = end.dropped;
    const droppedTotal = dropped ? Object.values(dropped).reduce((a, b) => a + b, 0) : 0;
    if (cost && this.#token !== null) this.#d.limits.record(this.#token, cost, ts, this.#d.now());
    const gone = end.result.kind === 'failure' && end.result.code === ErrorCode.CLIENT_GONE;
    const record: AttemptRecord = {
      ts,
      requestId: this.#id,
      token: this.#token,
      endpoint: this.#endpoint,
      modelRequested: this.#model,
      modelSent: sent,
      channel: channel.name,
      keyFp,
      status: gone ? 499 : end.status,
      errorClass: outcome.errorClass ?? null,
      attempt: n,
      final,
      ttfbMs: end.ttfbMs,
      durationMs: end.durationMs,
      streamed: end.streamed,
      inputTokens: billed?.input ?? null,
      outputTokens: billed?.output ?? null,
      cacheCreationTokens: billed ? billed.cacheWrite5m + billed.cacheWrite1h : null,
      cacheReadTokens: billed?.cacheRead ?? null,
      costUsd: cost,
      sessionFp: this.#session,
      affinity,
      cacheCreation1hTokens: billed?.cacheWrite1h ?? null,
      compactionInputTokens: usage?.compactionInput ?? null,
      compactionOutputTokens: usage?.compactionOutput ?? null,
      webSearchRequests: usage?.webSearchRequests ?? null,
      speed: usage?.speed ?? null,
      eventsDropped: end.streamed ? droppedTotal : null,
      stopSynthesised: end.stopSynthesised,
      cacheMissReason: end.cacheMissReason ?? null,
    };
    this.#d.logWriter.enqueue(record);
    const m = this.#d.metrics;
    const pm = m.pair(channel.name, this.#metricModel);
    pm.attempt(outcome.errorClass ?? 'ok').inc();
    if (end.ttfbMs !== null) pm.ttfb.observe(end.ttfbMs / 1000);
    if (usage && billed) {
      if (billed.input) pm.input.inc(billed.input);
      if (billed.output) pm.output.inc(billed.output);
      if (billed.cacheWrite5m + billed.cacheWrite1h)
        pm.cacheCreation.inc(billed.cacheWrite5m + billed.cacheWrite1h);
      if (billed.cacheWrite1h) pm.cacheCreation1h.inc(billed.cacheWrite1h);
      if (billed.cacheRead) pm.cacheRead.inc(billed.cacheRead);
      if (usage.compactionInput) pm.compactionInput.inc(usage.compactionInput);
      if (usage.compactionOutput) pm.compactionOutput.inc(usage.compactionOutput);
      if (usage.webSearchRequests) pm.webSearch.inc(usage.webSearchRequests);
      if (cost) pm.cost.inc(cost);
    }
    if (dropped) {
      for (const [reason, n] of Object.entries(dropped)) {
        if (n > 0) m.child(m.streamEventsDropped, channel.name, reason).inc(n);
      }
    }
  }
}
