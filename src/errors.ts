/**
 * The error catalogue: every error code ccload gives out, with the HTTP status, the Anthropic error
 * type and what it means. Three families:
 *
 * - **proxy** codes (`CCL_*`) are the attempt's error class in the log, a metrics label, and decide
 *   the client's Anthropic-shaped answer on `/v1/*` (`proxy/send-error.ts` `sendError`, the SSE frame
 *   of `sseErrorFrame`);
 * - **admin** codes (snake_case) are the `code` of every admin JSON error (`admin/respond.ts`
 *   `sendAdminError`);
 * - **internal** codes (`CCL_*`) are the `code` of errors that end a command or the daemon and never
 *   reach an HTTP client.
 *
 * README's error table is generated from this file (`npm run schema`); docs/errors.md says how a
 * code travels to the client, the dashboard and the log. No I/O here.
 */

/** Proxy error codes: the attempt's error class (log, metrics) and the client's answer; each code's meaning is in `PROXY_ERRORS`. */
export const ErrorCode = {
  UPSTREAM_CONNECT: 'CCL_UPSTREAM_CONNECT',
  CONNECT_TIMEOUT: 'CCL_CONNECT_TIMEOUT',
  UPSTREAM_RESET: 'CCL_UPSTREAM_RESET',
  FIRST_TOKEN_TIMEOUT: 'CCL_FIRST_TOKEN_TIMEOUT',
  IDLE_TIMEOUT: 'CCL_IDLE_TIMEOUT',
  TOTAL_TIMEOUT: 'CCL_TOTAL_TIMEOUT',
  UPSTREAM_EMPTY: 'CCL_UPSTREAM_EMPTY',
  UPSTREAM_SSE_ERROR: 'CCL_UPSTREAM_SSE_ERROR',
  STREAM_BROKEN: 'CCL_STREAM_BROKEN',
  STREAM_UNREADABLE: 'CCL_STREAM_UNREADABLE',
  UPSTREAM_STATUS: 'CCL_UPSTREAM_STATUS',
  CLIENT_GONE: 'CCL_CLIENT_GONE',
  NO_CHANNEL: 'CCL_NO_CHANNEL',
  ALL_COOLING: 'CCL_ALL_COOLING',
  BAD_REQUEST: 'CCL_BAD_REQUEST',
  BODY_TOO_LARGE: 'CCL_BODY_TOO_LARGE',
  UNAUTHORIZED: 'CCL_UNAUTHORIZED',
  SHUTDOWN: 'CCL_SHUTDOWN',
  NOT_FOUND: 'CCL_NOT_FOUND',
  METHOD_NOT_ALLOWED: 'CCL_METHOD_NOT_ALLOWED',
  INTERNAL: 'CCL_INTERNAL',
  PROXY_CONNECT: 'CCL_PROXY_CONNECT',
  CHANNELS_BUSY: 'CCL_CHANNELS_BUSY',
  TOKEN_MODEL: 'CCL_TOKEN_MODEL',
  TOKEN_CHANNELS: 'CCL_TOKEN_CHANNELS',
  TOKEN_CONCURRENCY: 'CCL_TOKEN_CONCURRENCY',
  TOKEN_BUDGET: 'CCL_TOKEN_BUDGET',
} as const;

/** One of the proxy error codes. */
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** The error types Anthropic's API uses in `{"type":"error","error":{"type":...}}`. */
export type AnthropicErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'billing_error'
  | 'permission_error'
  | 'not_found_error'
  | 'request_too_large'
  | 'rate_limit_error'
  | 'api_error'
  | 'overloaded_error'
  | 'timeout_error';

/**
 * The error type the Messages API answers an HTTP status with (its errors page): the shared table of
 * the fake upstream and of the OpenAI translation, which adds the statuses OpenAI uses besides.
 */
export function errorTypeForStatus(status: number): AnthropicErrorType {
  switch (status) {
    case 400:
      return 'invalid_request_error';
    case 401:
      return 'authentication_error';
    case 402:
      return 'billing_error';
    case 403:
      return 'permission_error';
    case 404:
      return 'not_found_error';
    case 413:
      return 'request_too_large';
    case 429:
      return 'rate_limit_error';
    case 504:
      return 'timeout_error';
    case 529:
      return 'overloaded_error';
    default:
      return 'api_error';
  }
}

/** A client-facing error: HTTP status, Anthropic error type and message. */
export interface ClientError {
  readonly status: number;
  readonly type: AnthropicErrorType;
  readonly message: string;
}

/** A proxy code's catalogue entry: the client's answer and what the code means. */
export interface ProxyErrorEntry extends ClientError {
  readonly meaning: string;
}

/** The client's answer per proxy code; `message` is the default text (call sites may be more precise). */
export const PROXY_ERRORS: Readonly<Record<ErrorCode, ProxyErrorEntry>> = {
  CCL_UPSTREAM_CONNECT: {
    status: 502,
    type: 'api_error',
    message: 'could not connect to an upstream',
    meaning: 'TCP connect refused, DNS or TLS failure',
  },
  CCL_CONNECT_TIMEOUT: {
    status: 504,
    type: 'timeout_error',
    message: 'connecting to the upstream timed out',
    meaning: 'TCP + TLS did not complete within `timeouts.connect`',
  },
  CCL_UPSTREAM_RESET: {
    status: 502,
    type: 'api_error',
    message: 'the upstream closed the connection',
    meaning: 'the upstream connection was reset or closed before the commit point',
  },
  CCL_FIRST_TOKEN_TIMEOUT: {
    status: 504,
    type: 'timeout_error',
    message: 'the upstream did not start answering in time',
    meaning:
      'no first content event (streams) or complete headers (non-streaming) within `timeouts.first_token`',
  },
  CCL_IDLE_TIMEOUT: {
    status: 504,
    type: 'timeout_error',
    message: 'the upstream stopped sending',
    meaning: 'silence inside a stream or body longer than `timeouts.idle`',
  },
  CCL_TOTAL_TIMEOUT: {
    status: 504,
    type: 'timeout_error',
    message: 'the request deadline passed',
    meaning: "the request's deadline (`timeouts.total` or a client timeout hint) passed",
  },
  CCL_UPSTREAM_EMPTY: {
    status: 502,
    type: 'api_error',
    message: 'the upstream sent an empty response',
    meaning: 'a 2xx with an empty body, or a stream that ended without any event',
  },
  CCL_UPSTREAM_SSE_ERROR: {
    status: 502,
    type: 'api_error',
    message: 'the upstream reported an error',
    meaning: 'an SSE `event: error` before the commit point',
  },
  CCL_STREAM_BROKEN: {
    status: 502,
    type: 'api_error',
    message: 'the upstream stream broke off',
    meaning: 'after the commit point: reset, end without `message_stop`, or `event: error`',
  },
  CCL_STREAM_UNREADABLE: {
    status: 502,
    type: 'api_error',
    message: 'the upstream sent an unreadable event',
    meaning:
      'an SSE event the client cannot stay consistent without was not valid JSON, or an event exceeded the size bound',
  },
  CCL_UPSTREAM_STATUS: {
    status: 502,
    type: 'api_error',
    message: 'the upstream answered with an error',
    meaning: 'the upstream answered with a failure status (the client gets that answer when it has one)',
  },
  // Nobody reads it (the client is gone); 499 is nginx's "client closed request", used in logs.
  CCL_CLIENT_GONE: {
    status: 499,
    type: 'api_error',
    message: 'client closed the request',
    meaning: 'the client disconnected; the upstream request is aborted (logged, never sent)',
  },
  CCL_NO_CHANNEL: {
    status: 404,
    type: 'not_found_error',
    message: 'no enabled channel serves model',
    meaning: 'no enabled channel serves the requested model',
  },
  // 503 rather than 529: 529 means Anthropic itself is overloaded; here ccload's channels rest.
  CCL_ALL_COOLING: {
    status: 503,
    type: 'overloaded_error',
    message: 'every channel for this model is cooling down',
    meaning:
      'every candidate is cooling and `when_all_cooling` is `reject` (or the wait would pass the deadline)',
  },
  CCL_BAD_REQUEST: {
    status: 400,
    type: 'invalid_request_error',
    message: 'invalid request',
    meaning: 'the request is malformed (not JSON, no model, …)',
  },
  CCL_BODY_TOO_LARGE: {
    status: 413,
    type: 'request_too_large',
    message: 'request body too large',
    meaning: 'the request body exceeds `server.max_body`',
  },
  CCL_UNAUTHORIZED: {
    status: 401,
    type: 'authentication_error',
    message: 'invalid or missing ccload token',
    meaning: 'missing or unknown client token',
  },
  CCL_SHUTDOWN: {
    status: 503,
    type: 'overloaded_error',
    message: 'ccload is shutting down; retry shortly',
    meaning: 'ccload is draining: the request arrived while shutting down, or the drain timeout passed',
  },
  CCL_NOT_FOUND: {
    status: 404,
    type: 'not_found_error',
    message: 'ccload does not serve this path',
    meaning: 'a path under `/v1/` ccload does not serve',
  },
  CCL_METHOD_NOT_ALLOWED: {
    status: 405,
    type: 'invalid_request_error',
    message: 'method not allowed',
    meaning: 'a `/v1/*` route called with the wrong method',
  },
  CCL_INTERNAL: {
    status: 500,
    type: 'api_error',
    message: 'internal error in ccload; see its log',
    meaning: 'a bug in ccload; the cause is logged, never sent',
  },
  CCL_PROXY_CONNECT: {
    status: 502,
    type: 'api_error',
    message: "could not reach the upstream through the channel's outbound proxy",
    meaning:
      "the channel's outbound proxy refused or failed: connect refused or unreachable, a CONNECT not answered with 200, a 407",
  },
  CCL_CHANNELS_BUSY: {
    status: 503,
    type: 'overloaded_error',
    message: 'every channel for this model is at its concurrency or requests-per-minute cap',
    meaning:
      'only channels at their `max_concurrency` / `rpm` cap are left and no slot freed within `routing.cooling_wait` (with `retry-after`)',
  },
  // The token refusals: their messages name the rule and are built by proxy/policy.ts.
  CCL_TOKEN_MODEL: {
    status: 403,
    type: 'permission_error',
    message: 'model not allowed for this token',
    meaning: "the model is not in the client token's `models` allow-list",
  },
  CCL_TOKEN_CHANNELS: {
    status: 403,
    type: 'permission_error',
    message: 'no channel this token may use serves the model',
    meaning: "no channel in the client token's `channels` allow-list serves the model",
  },
  CCL_TOKEN_CONCURRENCY: {
    status: 429,
    type: 'rate_limit_error',
    message: 'too many requests of this token in flight',
    meaning: 'the client token already has `max_concurrency` requests in flight (`retry-after: 2`)',
  },
  CCL_TOKEN_BUDGET: {
    status: 402,
    type: 'billing_error',
    message: "this token's budget is spent",
    meaning:
      "the client token's daily or monthly `budget` is spent (`x-should-retry: false`; the message says when it resets)",
  },
};

/**
 * The client-facing Anthropic error for a proxy code. `detail` is appended to the message
 * (`no enabled channel serves model: claude-x`); pass only what the client may see — the model,
 * a limit — never an internal cause or a key.
 */
export function clientError(code: ErrorCode, detail?: string): ClientError {
  const { status, type, message } = PROXY_ERRORS[code];
  return { status, type, message: detail ? `${message}: ${detail}` : message };
}

/** The JSON body of an Anthropic error: `{"type":"error","error":{"type":...,"message":...}}`. */
export function anthropicError(type: AnthropicErrorType, message: string): string {
  return JSON.stringify({ type: 'error', error: { type, message } });
}

/**
 * The SSE frame that ends a committed stream with a proxy code: `event: error` with the Anthropic
 * error shape as its data, the way the Messages API itself reports a failure mid-stream. `message`
 * defaults to the code's catalogue text.
 */
export function sseErrorFrame(code: ErrorCode, message = PROXY_ERRORS[code].message): Buffer {
  return Buffer.from(`event: error\ndata: ${anthropicError(PROXY_ERRORS[code].type, message)}\n\n`, 'utf8');
}

/**
 * Admin error codes: the `code` of every admin JSON error. `error` says what the body's `error`
 * field carries — the code (the channel API has always answered `{"error": code}`) or the message
 * (the router and the query routes have always answered `{"error": message}`); scripts rely on
 * both (docs/interfaces.md), so each keeps its own while `code` and `message` are always present.
 */
export const ADMIN_ERRORS = {
  bad_request: { status: 400, error: 'code', meaning: 'malformed body or edit (channel API)' },
  bad_parameter: { status: 400, error: 'message', meaning: 'a query parameter is invalid (query routes)' },
  login_required: { status: 401, error: 'message', meaning: 'no session (or control token) for the route' },
  forbidden: { status: 403, error: 'code', meaning: 'write-back is off (`config.write_back: false`)' },
  cross_origin: { status: 403, error: 'message', meaning: 'a state-changing request from another origin' },
  unknown_host: {
    status: 403,
    error: 'message',
    meaning: 'the `Host` is neither the listen address nor in `server.allowed_hosts`',
  },
  not_found: { status: 404, error: 'code', meaning: 'no channel by that name' },
  no_route: { status: 404, error: 'message', meaning: 'no route for the path' },
  method_not_allowed: { status: 405, error: 'message', meaning: 'a known path with another method' },
  conflict: { status: 412, error: 'code', meaning: '`If-Match` names an older file (body has `hash`)' },
  too_large: { status: 413, error: 'code', meaning: 'request body over 1 MiB' },
  invalid: { status: 422, error: 'code', meaning: 'the edited file would not load (body has `errors`)' },
  secret: { status: 422, error: 'code', meaning: 'a literal key where a `${…}` reference belongs' },
  io: { status: 500, error: 'code', meaning: 'the config file could not be read or written' },
  reload_rejected: {
    status: 500,
    error: 'code',
    meaning: 'the edit was written but the reload rejected it (the environment changed in between)',
  },
  internal: { status: 500, error: 'message', meaning: 'a handler failed; the cause is logged' },
  login_malformed: { status: 400, error: 'message', meaning: '`POST /login` without `{"password": "..."}`' },
  login_failed: {
    status: 401,
    error: 'message',
    meaning: 'a wrong password, or no admin password is configured (then only the login link works)',
  },
  login_too_large: { status: 413, error: 'message', meaning: 'a `POST /login` body over 64 KiB' },
  login_throttled: {
    status: 429,
    error: 'message',
    meaning: 'too many failed logins from the address, or one already in flight (`retry-after` says when)',
  },
} as const satisfies Record<string, { status: number; error: 'code' | 'message'; meaning: string }>;

/** One of the admin error codes. */
export type AdminErrorCode = keyof typeof ADMIN_ERRORS;

/** The one JSON body of an admin error: `{error, code, message, …extra}` (see `ADMIN_ERRORS`). */
export function adminErrorBody(
  code: AdminErrorCode,
  message: string,
  extra: Readonly<Record<string, unknown>> = {},
): Record<string, unknown> {
  return { error: ADMIN_ERRORS[code].error === 'code' ? code : message, code, message, ...extra };
}

/** Internal codes: the `code` property of errors that never reach an HTTP client. */
export const INTERNAL_ERRORS = {
  CCL_CONFIG_INVALID: 'the config is invalid at start-up; `ccload serve` exits 78',
  CCL_IMPORT_DB: '`ccload import-ccload` cannot read the file as a Go ccLoad database',
  CCL_WRITE_THREAD_EXITED: 'the attempt-log write thread exited; the log writer retries and reports it',
  CCL_CLOSED: 'a write was sent to the attempt-log write thread after it was closed',
  CCL_DB_REPLACED:
    'the database file was removed or replaced while ccload ran; the attempt-log write thread does not reopen it',
} as const;

/** One of the internal codes. */
export type InternalErrorCode = keyof typeof INTERNAL_ERRORS;

/** An Error carrying an internal code as its `code` property (as Node's own errors do). */
export function codedError(code: InternalErrorCode, message: string): Error & { code: InternalErrorCode } {
  return Object.assign(new Error(message), { code });
}
