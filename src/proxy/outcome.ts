/**
 * Outcome classification: what one upstream attempt's result means for cooling and failover (the
 * table in docs/proxy.md#outcomes-and-cooldowns): which error code an attempt ends with, what it
 * cools and whether to fail over. The codes and the client's answer per code are in the catalogue
 * (src/errors.ts). Pure: the clock is a parameter.
 */
import { ErrorCode } from '../errors.js';
import type { CooldownScope } from './cooldown.js';

/** Which proxy route the attempt served: count_tokens never cools on a 4xx. */
export type Endpoint = 'messages' | 'count_tokens';

/** The result of one upstream attempt, as the forwarding code observed it. */
export type AttemptResult =
  /** Complete 2xx: the answer (or stream, to `message_stop`) reached the client. */
  | { readonly kind: 'success' }
  /**
   * The upstream answered with a status before commit. `headers` have lower-case names. For a
   * 2xx, `bodyText: ''` means the body was empty (→ `CCL_UPSTREAM_EMPTY`); undefined means unread.
   */
  | {
      readonly kind: 'status';
      readonly status: number;
      readonly headers: Readonly<Record<string, string>>;
      readonly bodyText?: string | undefined;
    }
  /** A transport or stream failure; `committed`: the client had already received the answer's start. */
  | {
      readonly kind: 'failure';
      readonly code: ErrorCode;
      readonly committed: boolean;
      /** Low-level cause for the log, e.g. `ECONNREFUSED`; never sent to the client. */
      readonly detail?: string | undefined;
    };

/** What the attempt's context adds to classification. */
export interface OutcomeContext {
  readonly endpoint: Endpoint;
  /** Absolute ms; retry-after seconds are counted from it. */
  readonly now: number;
  /** The model the client asked for and the one sent upstream (after model_map): a 404 naming either is a model 404. */
  readonly requestedModel?: string | undefined;
  readonly sentModel?: string | undefined;
}

/** How to treat one attempt: what to cool, whether to try the next candidate, and why. */
export interface Outcome {
  /** True for a complete 2xx: the caller clears the scopes it used (`recordSuccess`). */
  readonly ok: boolean;
  /** The attempt's error class; undefined on success. */
  readonly errorClass: ErrorCode | undefined;
  readonly scope: CooldownScope | 'none';
  /** Try the next candidate. False after commit and when the request itself is at fault. */
  readonly failover: boolean;
  /** Absolute ms the upstream named for retrying, when it named one. */
  readonly resetAt?: number | undefined;
  /** Start the backoff long (401/403, 402): see `backoffMs`. */
  readonly longStart?: boolean | undefined;
  /** Short human reason, e.g. `429 rate limited`, `connect failed (ECONNREFUSED)`. */
  readonly reason: string;
  /**
   * The reason without the upstream's detail (`connect failed`, `429 rate limited`): one of a
   * bounded set, so it can label a metric (`ccload_cooldowns_entered_total{reason}`) without a
   * series per message an upstream invents.
   */
  readonly label: string;
}

const STATUS_TEXT: Readonly<Record<number, string>> = {
  400: 'bad request',
  401: 'unauthorized',
  402: 'payment required',
  403: 'forbidden',
  404: 'not found',
  405: 'method not allowed',
  408: 'request timeout',
  409: 'conflict',
  413: 'request too large',
  415: 'unsupported media type',
  421: 'misdirected request',
  422: 'unprocessable',
  429: 'rate limited',
  500: 'server error',
  502: 'bad gateway',
  503: 'unavailable',
  504: 'gateway timeout',
  529: 'overloaded',
};

function statusReason(status: number, extra?: string): string {
  const text = STATUS_TEXT[status] ?? (status >= 500 ? 'server error' : 'unexpected status');
  return extra ? `${status} ${text} ${extra}` : `${status} ${text}`;
}

/**
 * Absolute ms named by a `retry-after` value: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
 * Fractional seconds are accepted (some gateways send them). Undefined when unparseable.
 */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (v === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(v)) return now + Math.round(Number(v) * 1000);
  // An HTTP-date always names a weekday and GMT; requiring letters keeps "12abc" from parsing.
  if (!/[A-Za-z]/.test(v)) return undefined;
  const at = Date.parse(v);
  return Number.isFinite(at) ? at : undefined;
}

/**
 * The upstream's retry time from response headers: `retry-after`, plus — when `rateLimit` is set —
 * every `anthropic-ratelimit-*-reset` (RFC 3339). The latest wins: retrying before the last
 * exhausted limit resets would only earn another 429. Times not after `now` are ignored.
 */
export function resetTimeFromHeaders(
  headers: Readonly<Record<string, string>>,
  now: number,
  rateLimit: boolean,
): number | undefined {
  const times: number[] = [];
  const retry = parseRetryAfter(headers['retry-after'], now);
  if (retry !== undefined) times.push(retry);
  if (rateLimit) {
    for (const [name, value] of Object.entries(headers)) {
      if (!/^anthropic-ratelimit-.+-reset$/.test(name)) continue;
      const at = Date.parse(value);
      if (Number.isFinite(at)) times.push(at);
    }
  }
  const future = times.filter((t) => t > now);
  return future.length > 0 ? Math.max(...future) : undefined;
}

/**
 * Does a 404 body blame the model? True when it names the requested or sent model, or is
 * Anthropic's `not_found_error` whose message mentions "model" (`{"message":"model: claude-x"}`).
 * A 404 that does not is a wrong base URL or path: the whole channel is at fault.
 */
export function notFoundNamesModel(
  bodyText: string | undefined,
  models: readonly (string | undefined)[],
): boolean {
  if (!bodyText) return false;
  for (const m of models) if (m && bodyText.includes(m)) return true;
  try {
    const body = JSON.parse(bodyText) as { error?: { type?: unknown; message?: unknown } };
    const err = body?.error;
    return err?.type === 'not_found_error' && typeof err.message === 'string' && /model/i.test(err.message);
  } catch {
    return false;
  }
}

function classifyStatus(result: Extract<AttemptResult, { kind: 'status' }>, ctx: OutcomeContext): Outcome {
  const { status, headers } = result;
  const fail = (
    scope: CooldownScope | 'none',
    failover: boolean,
    reason: string,
    extra: { resetAt?: number | undefined; longStart?: boolean } = {},
  ): Outcome => ({
    ok: false,
    errorClass: ErrorCode.UPSTREAM_STATUS,
    scope,
    failover,
    reason,
    label: reason,
    ...extra,
  });

  if (status >= 200 && status < 300) {
    if (result.bodyText === '') {
      return {
        ok: false,
        errorClass: ErrorCode.UPSTREAM_EMPTY,
        scope: 'channel+model',
        failover: true,
        reason: `${status} with empty body`,
        label: `${status} with empty body`,
      };
    }
    return {
      ok: true,
      errorClass: undefined,
      scope: 'none',
      failover: false,
      reason: `${status} ok`,
      label: `${status} ok`,
    };
  }

  // count_tokens: a 4xx says nothing about the channel's health for messages (relays often lack
  // the route; its rate limits are separate), so it never cools. It still fails over where a
  // messages request would: another channel may answer.
  const cool = (scope: CooldownScope): CooldownScope | 'none' =>
    ctx.endpoint === 'count_tokens' && status >= 400 && status < 500 ? 'none' : scope;

  // A 5xx or 429 may say when to come back (RFC 9110 §10.2.3); only a 429's rate-limit reset
  // headers are about this failure — on other statuses they describe an unexhausted bucket.
  const resetAt = (rateLimit: boolean) => resetTimeFromHeaders(headers, ctx.now, rateLimit);

  if (status === 429) return fail(cool('key+model'), true, statusReason(429), { resetAt: resetAt(true) });
  if (status === 401 || status === 403) {
    return fail(cool('key'), true, statusReason(status), { longStart: true });
  }
  // 402: relays answer it when the key's balance is spent — a key fault that does not heal soon.
  if (status === 402) return fail(cool('key'), true, statusReason(402), { longStart: true });
  if (status === 404) {
    const models = [ctx.requestedModel, ctx.sentModel];
    return notFoundNamesModel(result.bodyText, models)
      ? fail(cool('channel+model'), true, statusReason(404, '(model)'))
      : fail(cool('channel'), true, statusReason(404));
  }
  // 408 is the upstream giving up waiting, 421 a connection to the wrong host: neither is the
  // request's fault.
  if (status === 408) return fail(cool('channel+model'), true, statusReason(408));
  if (status === 421) return fail(cool('channel'), true, statusReason(421));
  if (status >= 400 && status < 500) {
    // 400 (context too long, bad params), 413, 422 ...: the request is at fault, and every channel
    // would say the same. The client gets this answer as is.
    return fail('none', false, statusReason(status));
  }
  if (status >= 500) return fail('channel+model', true, statusReason(status), { resetAt: resetAt(false) });
  // 1xx leftovers and 3xx: a base URL that redirects is misconfigured for an API client.
  return fail('channel', true, statusReason(status));
}

const FAILURE_REASON: Readonly<Record<ErrorCode, string>> = {
  CCL_UPSTREAM_CONNECT: 'connect failed',
  CCL_CONNECT_TIMEOUT: 'connect timeout',
  CCL_UPSTREAM_RESET: 'connection reset',
  CCL_FIRST_TOKEN_TIMEOUT: 'no first token in time',
  CCL_IDLE_TIMEOUT: 'idle timeout',
  CCL_TOTAL_TIMEOUT: 'request deadline passed',
  CCL_UPSTREAM_EMPTY: 'empty response',
  CCL_UPSTREAM_SSE_ERROR: 'error event before commit',
  CCL_STREAM_BROKEN: 'stream broken',
  CCL_STREAM_UNREADABLE: 'unreadable stream event',
  CCL_UPSTREAM_STATUS: 'failure status',
  CCL_CLIENT_GONE: 'client disconnected',
  CCL_NO_CHANNEL: 'no channel serves the model',
  CCL_ALL_COOLING: 'all candidates cooling',
  CCL_BAD_REQUEST: 'bad request',
  CCL_BODY_TOO_LARGE: 'body too large',
  CCL_UNAUTHORIZED: 'unauthorized',
  CCL_SHUTDOWN: 'ccload shutting down',
  CCL_NOT_FOUND: 'no such path',
  CCL_METHOD_NOT_ALLOWED: 'method not allowed',
  CCL_INTERNAL: 'internal error',
  CCL_PROXY_CONNECT: 'outbound proxy failed',
  CCL_CHANNELS_BUSY: 'every channel at its cap',
  CCL_TOKEN_MODEL: 'model not allowed for the token',
  CCL_TOKEN_CHANNELS: 'no allowed channel serves the model',
  CCL_TOKEN_CONCURRENCY: 'token concurrency limit',
  CCL_TOKEN_BUDGET: 'token budget spent',
};

/** The scope a transport/stream failure cools; `none` where the upstream is not at fault. */
const FAILURE_SCOPE: Readonly<Record<ErrorCode, CooldownScope | 'none'>> = {
  // The host is unreachable: every model and key on it fails alike.
  CCL_UPSTREAM_CONNECT: 'channel',
  CCL_CONNECT_TIMEOUT: 'channel',
  // The host answers but this model's serving path misbehaves.
  CCL_UPSTREAM_RESET: 'channel+model',
  CCL_FIRST_TOKEN_TIMEOUT: 'channel+model',
  CCL_IDLE_TIMEOUT: 'channel+model',
  CCL_UPSTREAM_EMPTY: 'channel+model',
  CCL_UPSTREAM_SSE_ERROR: 'channel+model',
  CCL_STREAM_BROKEN: 'channel+model',
  CCL_STREAM_UNREADABLE: 'channel+model',
  CCL_UPSTREAM_STATUS: 'channel+model',
  // The request's own deadline: a long thinking stream may legitimately outlast it; and the
  // deadline is spent, so there is nothing to fail over to.
  CCL_TOTAL_TIMEOUT: 'none',
  CCL_CLIENT_GONE: 'none',
  CCL_NO_CHANNEL: 'none',
  CCL_ALL_COOLING: 'none',
  CCL_BAD_REQUEST: 'none',
  CCL_BODY_TOO_LARGE: 'none',
  CCL_UNAUTHORIZED: 'none',
  CCL_SHUTDOWN: 'none',
  CCL_NOT_FOUND: 'none',
  CCL_METHOD_NOT_ALLOWED: 'none',
  CCL_INTERNAL: 'none',
  // Through a proxy the connection goes to the proxy: when it refuses or fails, every model and
  // key of the channel fails alike (another channel, maybe direct, may do better).
  CCL_PROXY_CONNECT: 'channel',
  CCL_CHANNELS_BUSY: 'none',
  CCL_TOKEN_MODEL: 'none',
  CCL_TOKEN_CHANNELS: 'none',
  CCL_TOKEN_CONCURRENCY: 'none',
  CCL_TOKEN_BUDGET: 'none',
};

/** Codes that are a stream breaking once committed; a committed failure is reported as `CCL_STREAM_BROKEN`. */
const BREAKS_STREAM: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  ErrorCode.UPSTREAM_RESET,
  ErrorCode.UPSTREAM_EMPTY,
  ErrorCode.UPSTREAM_SSE_ERROR,
  ErrorCode.STREAM_BROKEN,
]);

function classifyFailure(result: Extract<AttemptResult, { kind: 'failure' }>): Outcome {
  const scope = FAILURE_SCOPE[result.code];
  const base = FAILURE_REASON[result.code];
  const detailed = result.detail ? `${base} (${result.detail})` : base;
  if (result.committed) {
    // After commit the client already has part of the answer: no failover, the stream ends with
    // an `event: error` frame; the upstream is still blamed and cooled.
    const errorClass = BREAKS_STREAM.has(result.code) ? ErrorCode.STREAM_BROKEN : result.code;
    const after = result.code === ErrorCode.STREAM_BROKEN ? '' : ' after commit';
    return { ok: false, errorClass, scope, failover: false, reason: detailed + after, label: base + after };
  }
  // Failover only where another candidate may do better: not when the request's deadline or the
  // client is gone, nor for the proxy's own request-level errors.
  const failover = scope !== 'none';
  return { ok: false, errorClass: result.code, scope, failover, reason: detailed, label: base };
}

/**
 * Classifies one upstream attempt: the row of docs/proxy.md#outcomes-and-cooldowns it falls in.
 * 2xx → ok (clears); connect failures → channel; resets, timeouts before the first content, empty
 * 2xx, `event: error` before commit → channel+model; 500/502/503/504/529 (any 5xx) → channel+model;
 * 429 → key+model until the upstream's reset time; 401/403 (and 402) → key, starting long;
 * 404 → channel+model when the body names the model, else channel; other 4xx → no cooldown and no
 * failover (the client gets the upstream's answer). On count_tokens a 4xx never cools.
 */
export function classifyOutcome(result: AttemptResult, ctx: OutcomeContext): Outcome {
  switch (result.kind) {
    case 'success':
      return { ok: true, errorClass: undefined, scope: 'none', failover: false, reason: 'ok', label: 'ok' };
    case 'status':
      return classifyStatus(result, ctx);
    case 'failure':
      return classifyFailure(result);
  }
}
