import t from 'tap';
import { adminErrorBody, anthropicError, clientError, ErrorCode, sseErrorFrame } from '../src/errors.js';

t.test('client-facing errors', async (t) => {
  const rows: [ErrorCode, number, string][] = [
    [ErrorCode.UPSTREAM_CONNECT, 502, 'api_error'],
    [ErrorCode.CONNECT_TIMEOUT, 504, 'timeout_error'],
    [ErrorCode.UPSTREAM_RESET, 502, 'api_error'],
    [ErrorCode.FIRST_TOKEN_TIMEOUT, 504, 'timeout_error'],
    [ErrorCode.IDLE_TIMEOUT, 504, 'timeout_error'],
    [ErrorCode.TOTAL_TIMEOUT, 504, 'timeout_error'],
    [ErrorCode.UPSTREAM_EMPTY, 502, 'api_error'],
    [ErrorCode.UPSTREAM_SSE_ERROR, 502, 'api_error'],
    [ErrorCode.STREAM_BROKEN, 502, 'api_error'],
    [ErrorCode.STREAM_UNREADABLE, 502, 'api_error'],
    [ErrorCode.UPSTREAM_STATUS, 502, 'api_error'],
    [ErrorCode.CLIENT_GONE, 499, 'api_error'],
    [ErrorCode.NO_CHANNEL, 404, 'not_found_error'],
    [ErrorCode.ALL_COOLING, 503, 'overloaded_error'],
    [ErrorCode.BAD_REQUEST, 400, 'invalid_request_error'],
    [ErrorCode.BODY_TOO_LARGE, 413, 'request_too_large'],
    [ErrorCode.UNAUTHORIZED, 401, 'authentication_error'],
    [ErrorCode.SHUTDOWN, 503, 'overloaded_error'],
    [ErrorCode.NOT_FOUND, 404, 'not_found_error'],
    [ErrorCode.METHOD_NOT_ALLOWED, 405, 'invalid_request_error'],
    [ErrorCode.INTERNAL, 500, 'api_error'],
    [ErrorCode.PROXY_CONNECT, 502, 'api_error'],
    [ErrorCode.CHANNELS_BUSY, 503, 'overloaded_error'],
    [ErrorCode.TOKEN_MODEL, 403, 'permission_error'],
    [ErrorCode.TOKEN_CHANNELS, 403, 'permission_error'],
    [ErrorCode.TOKEN_CONCURRENCY, 429, 'rate_limit_error'],
    [ErrorCode.TOKEN_BUDGET, 402, 'billing_error'],
  ];
  t.equal(rows.length, Object.keys(ErrorCode).length, 'every code is mapped');
  for (const [code, s, type] of rows) t.match(clientError(code), { status: s, type }, code);

  t.equal(
    clientError(ErrorCode.NO_CHANNEL, 'claude-nope').message,
    'no enabled channel serves model: claude-nope',
  );

  const body = anthropicError('rate_limit_error', 'slow down "now"');
  t.same(JSON.parse(body), {
    type: 'error',
    error: { type: 'rate_limit_error', message: 'slow down "now"' },
  });
  t.equal(body, '{"type":"error","error":{"type":"rate_limit_error","message":"slow down \\"now\\""}}');

  const frame = sseErrorFrame(ErrorCode.STREAM_BROKEN, 'stream broke').toString();
  t.match(frame, /^event: error\ndata: \{.*\}\n\n$/);
  t.same(JSON.parse(frame.split('\n')[1]!.slice('data: '.length)), {
    type: 'error',
    error: { type: 'api_error', message: 'stream broke' },
  });
  t.same(
    JSON.parse(sseErrorFrame(ErrorCode.IDLE_TIMEOUT).toString().split('\n')[1]!.slice('data: '.length)),
    {
      type: 'error',
      error: { type: 'timeout_error', message: 'the upstream stopped sending' },
    },
    'the catalogue text when no message is given',
  );
});

t.test('admin errors: one body shape, the error field as each route family always answered', async (t) => {
  t.same(adminErrorBody('conflict', 'the file changed', { hash: 'sha256:ab' }), {
    error: 'conflict',
    code: 'conflict',
    message: 'the file changed',
    hash: 'sha256:ab',
  });
  t.same(adminErrorBody('login_required', 'login required'), {
    error: 'login required',
    code: 'login_required',
    message: 'login required',
  });
  // Each write-back refusal kind's status: test/admin/channel-routes.test.ts.
});
