import t from 'tap';
import { anthropicError, ErrorCode } from '../../src/errors.js';
import {
  type AttemptResult,
  classifyOutcome,
  type Outcome,
  type OutcomeContext,
  parseRetryAfter,
  resetTimeFromHeaders,
} from '../../src/proxy/outcome.js';

const NOW = Date.UTC(2026, 10, 26, 12, 0, 0);
const ctx: OutcomeContext = {
  endpoint: 'messages',
  now: NOW,
  requestedModel: 'claude-sonnet-5-5',
  sentModel: 'relay-sonnet',
};
const status = (s: number, bodyText?: string, headers: Record<string, string> = {}): AttemptResult => ({
  kind: 'status',
  status: s,
  headers,
  bodyText,
});
const failure = (code: ErrorCode, committed = false): AttemptResult => ({ kind: 'failure', code, committed });

type Want = Pick<Outcome, 'scope' | 'failover'> & Partial<Outcome>;

t.test('status rows of the outcome table', async (t) => {
  const anthropic404Model = anthropicError('not_found_error', 'model: claude-nope');
  const rows: [string, AttemptResult, Partial<OutcomeContext>, Want][] = [
    ['200 complete', status(200, '{"id":"msg_1"}'), {}, { ok: true, scope: 'none', failover: false }],
    ['200 body unread', status(200), {}, { ok: true, scope: 'none', failover: false }],
    [
      'empty 200',
      status(200, ''),
      {},
      { ok: false, errorClass: ErrorCode.UPSTREAM_EMPTY, scope: 'channel+model', failover: true },
    ],
    ['429', status(429), {}, { scope: 'key+model', failover: true, reason: '429 rate limited' }],
    ['401', status(401), {}, { scope: 'key', failover: true, longStart: true, reason: '401 unauthorized' }],
    ['403', status(403), {}, { scope: 'key', failover: true, longStart: true }],
    ['402 spent balance', status(402), {}, { scope: 'key', failover: true, longStart: true }],
    [
      '404 naming the requested model',
      status(404, 'unknown model claude-sonnet-5-5'),
      {},
      { scope: 'channel+model', failover: true },
    ],
    [
      '404 naming the sent model',
      status(404, '{"error":"relay-sonnet is not available"}'),
      {},
      { scope: 'channel+model', failover: true },
    ],
    [
      '404 anthropic not_found_error about a model',
      status(404, anthropic404Model),
      { requestedModel: 'x', sentModel: 'y' },
      { scope: 'channel+model', failover: true },
    ],
    [
      '404 anthropic not_found_error, no model (wrong base URL)',
      status(404, anthropicError('not_found_error', 'Not Found')),
      {},
      { scope: 'channel', failover: true, reason: '404 not found' },
    ],
    ['404 html page', status(404, '<html>404 Not Found</html>'), {}, { scope: 'channel', failover: true }],
    ['404 no body', status(404), {}, { scope: 'channel', failover: true }],
    ['500', status(500), {}, { scope: 'channel+model', failover: true }],
    ['502', status(502), {}, { scope: 'channel+model', failover: true }],
    ['503', status(503), {}, { scope: 'channel+model', failover: true }],
    ['504', status(504), {}, { scope: 'channel+model', failover: true }],
    ['529 overloaded', status(529), {}, { scope: 'channel+model', failover: true, reason: '529 overloaded' }],
    [
      '400 context length: the request is at fault',
      status(
        400,
        anthropicError('invalid_request_error', 'prompt is too long: 210000 tokens > 200000 maximum'),
      ),
      {},
      { ok: false, errorClass: ErrorCode.UPSTREAM_STATUS, scope: 'none', failover: false },
    ],
    ['413', status(413), {}, { scope: 'none', failover: false }],
    ['422', status(422), {}, { scope: 'none', failover: false }],
    ['409 other request-shaped 4xx', status(409), {}, { scope: 'none', failover: false }],
    ['408 upstream timeout', status(408), {}, { scope: 'channel+model', failover: true }],
    ['302 redirecting base URL', status(302), {}, { scope: 'channel', failover: true }],
    // count_tokens: never cools on a 4xx, still fails over where messages would.
    [
      'count_tokens 404',
      status(404, anthropic404Model),
      { endpoint: 'count_tokens' },
      { scope: 'none', failover: true },
    ],
    ['count_tokens 429', status(429), { endpoint: 'count_tokens' }, { scope: 'none', failover: true }],
    ['count_tokens 401', status(401), { endpoint: 'count_tokens' }, { scope: 'none', failover: true }],
    ['count_tokens 400', status(400), { endpoint: 'count_tokens' }, { scope: 'none', failover: false }],
    [
      'count_tokens 529 still cools',
      status(529),
      { endpoint: 'count_tokens' },
      { scope: 'channel+model', failover: true },
    ],
    [
      'count_tokens 200',
      status(200, '{"input_tokens":12}'),
      { endpoint: 'count_tokens' },
      { ok: true, scope: 'none', failover: false },
    ],
  ];
  for (const [name, result, extra, want] of rows) {
    const got = classifyOutcome(result, { ...ctx, ...extra });
    t.match(got, want, name);
    if (!got.ok) t.ok(got.errorClass, `${name}: has an error class`);
    t.ok(got.reason.length > 0, `${name}: has a reason`);
  }
});

t.test('failure rows: before and after commit', async (t) => {
  const rows: [string, AttemptResult, Want][] = [
    [
      'complete success',
      { kind: 'success' },
      { ok: true, errorClass: undefined, scope: 'none', failover: false },
    ],
    [
      'connect refused',
      failure(ErrorCode.UPSTREAM_CONNECT),
      { errorClass: 'CCL_UPSTREAM_CONNECT', scope: 'channel', failover: true },
    ],
    [
      'the outbound proxy refused or failed',
      failure(ErrorCode.PROXY_CONNECT),
      { errorClass: 'CCL_PROXY_CONNECT', scope: 'channel', failover: true },
    ],
    [
      'connect timeout',
      failure(ErrorCode.CONNECT_TIMEOUT),
      { errorClass: 'CCL_CONNECT_TIMEOUT', scope: 'channel', failover: true },
    ],
    [
      'reset before commit',
      failure(ErrorCode.UPSTREAM_RESET),
      { errorClass: 'CCL_UPSTREAM_RESET', scope: 'channel+model', failover: true },
    ],
    [
      'first-token timeout',
      failure(ErrorCode.FIRST_TOKEN_TIMEOUT),
      { errorClass: 'CCL_FIRST_TOKEN_TIMEOUT', scope: 'channel+model', failover: true },
    ],
    [
      'idle before commit',
      failure(ErrorCode.IDLE_TIMEOUT),
      { errorClass: 'CCL_IDLE_TIMEOUT', scope: 'channel+model', failover: true },
    ],
    [
      'stream without events',
      failure(ErrorCode.UPSTREAM_EMPTY),
      { errorClass: 'CCL_UPSTREAM_EMPTY', scope: 'channel+model', failover: true },
    ],
    [
      'event: error before commit',
      failure(ErrorCode.UPSTREAM_SSE_ERROR),
      { errorClass: 'CCL_UPSTREAM_SSE_ERROR', scope: 'channel+model', failover: true },
    ],
    [
      'total deadline',
      failure(ErrorCode.TOTAL_TIMEOUT),
      { errorClass: 'CCL_TOTAL_TIMEOUT', scope: 'none', failover: false },
    ],
    [
      'client gone',
      failure(ErrorCode.CLIENT_GONE),
      { errorClass: 'CCL_CLIENT_GONE', scope: 'none', failover: false },
    ],
    [
      'client gone after commit',
      failure(ErrorCode.CLIENT_GONE, true),
      { errorClass: 'CCL_CLIENT_GONE', scope: 'none', failover: false },
    ],
    [
      'reset after commit',
      failure(ErrorCode.UPSTREAM_RESET, true),
      { errorClass: 'CCL_STREAM_BROKEN', scope: 'channel+model', failover: false },
    ],
    [
      'event: error after commit',
      failure(ErrorCode.UPSTREAM_SSE_ERROR, true),
      { errorClass: 'CCL_STREAM_BROKEN', scope: 'channel+model', failover: false },
    ],
    [
      'ended without message_stop',
      failure(ErrorCode.STREAM_BROKEN, true),
      { errorClass: 'CCL_STREAM_BROKEN', scope: 'channel+model', failover: false },
    ],
    [
      'unreadable event the client needs, before commit',
      failure(ErrorCode.STREAM_UNREADABLE),
      { errorClass: 'CCL_STREAM_UNREADABLE', scope: 'channel+model', failover: true },
    ],
    [
      'unreadable event the client needs, after commit',
      failure(ErrorCode.STREAM_UNREADABLE, true),
      { errorClass: 'CCL_STREAM_UNREADABLE', scope: 'channel+model', failover: false },
    ],
    [
      'silent past idle after commit',
      failure(ErrorCode.IDLE_TIMEOUT, true),
      { errorClass: 'CCL_IDLE_TIMEOUT', scope: 'channel+model', failover: false },
    ],
  ];
  for (const [name, result, want] of rows) t.match(classifyOutcome(result, ctx), want, name);

  const detailed = classifyOutcome(
    { kind: 'failure', code: ErrorCode.UPSTREAM_CONNECT, committed: false, detail: 'ECONNREFUSED' },
    ctx,
  );
  t.equal(detailed.reason, 'connect failed (ECONNREFUSED)');
  t.match(classifyOutcome(failure(ErrorCode.UPSTREAM_RESET, true), ctx).reason, /after commit/);
});

t.test('retry-after and rate-limit reset times', async (t) => {
  t.equal(parseRetryAfter('30', NOW), NOW + 30_000, 'delay-seconds');
  t.equal(parseRetryAfter(' 0.5 ', NOW), NOW + 500, 'fractional seconds');
  t.equal(parseRetryAfter('Thu, 26 Nov 2026 12:02:00 GMT', NOW), NOW + 120_000, 'HTTP-date');
  t.equal(parseRetryAfter('soon', NOW), undefined);
  t.equal(parseRetryAfter('12abc', NOW), undefined);
  t.equal(parseRetryAfter('', NOW), undefined);
  t.equal(parseRetryAfter(undefined, NOW), undefined);

  const rl = (h: Record<string, string>) => classifyOutcome(status(429, undefined, h), ctx).resetAt;
  t.equal(rl({ 'retry-after': '20' }), NOW + 20_000, '429 retry-after seconds');
  t.equal(rl({ 'retry-after': 'Thu, 26 Nov 2026 12:01:00 GMT' }), NOW + 60_000, '429 retry-after HTTP-date');
  t.equal(
    rl({ 'anthropic-ratelimit-tokens-reset': '2026-11-26T12:00:45Z' }),
    NOW + 45_000,
    'anthropic-ratelimit-*-reset (RFC 3339)',
  );
  t.equal(
    rl({
      'retry-after': '10',
      'anthropic-ratelimit-requests-reset': '2026-11-26T12:00:05Z',
      'anthropic-ratelimit-input-tokens-reset': '2026-11-26T12:01:30+00:00',
      'anthropic-ratelimit-output-tokens-reset': '2026-11-26T12:00:20Z',
    }),
    NOW + 90_000,
    'the latest reset among those given wins',
  );
  t.equal(
    rl({ 'anthropic-ratelimit-tokens-reset': '2026-11-26T11:59:00Z' }),
    undefined,
    'a past reset is ignored',
  );
  t.equal(
    rl({ 'anthropic-ratelimit-tokens-reset': 'garbage' }),
    undefined,
    'an unparseable reset is ignored',
  );
  t.equal(rl({}), undefined, 'no headers: no reset time (backoff applies)');

  t.equal(
    classifyOutcome(status(503, undefined, { 'retry-after': '7' }), ctx).resetAt,
    NOW + 7000,
    '503 retry-after is honoured',
  );
  t.equal(
    classifyOutcome(
      status(529, undefined, { 'anthropic-ratelimit-tokens-reset': '2026-11-26T12:00:45Z' }),
      ctx,
    ).resetAt,
    undefined,
    'rate-limit reset headers on a non-429 describe an unexhausted bucket, not this failure',
  );
  t.equal(
    resetTimeFromHeaders({ 'anthropic-ratelimit-tokens-reset': '2026-11-26T12:00:45Z' }, NOW, false),
    undefined,
  );
});
