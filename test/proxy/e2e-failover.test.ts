/**
 * End to end, the outcome table (docs/proxy.md#outcomes-and-cooldowns): for each upstream
 * failure, what is cooled, whether the request fails over, what the client gets, and what the
 * `attempts` table records. Several fake upstreams are several channels of one real daemon.
 */
import t from 'tap';
import { errorBody } from '../../src/dev/anthropic-shapes.js';
import { type Behaviour, type FakeRequest, okStream } from '../../src/dev/fake-upstream.js';
import { ErrorCode } from '../../src/errors.js';
import { MODEL, messagesBody } from '../helpers/messages.js';
import { waitFor } from '../helpers/wait.js';
import {
  anthropicErrorOf,
  attempts,
  channelKey,
  claudeCode,
  closedPortUrl,
  coolingScopes,
  coolingUntils,
  send,
  sseEvents,
  startProxy,
  startUpstreams,
  twoChannels,
} from './e2e-helpers.js';

/** Paces a polling loop of client requests (the loop is what is being observed, not a wait for an event). */
const pace = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

t.test('429 with retry-after: 2 → that key is not retried before 2 s; the request fails over', async (t) => {
  const { a, b, url, daemon } = await twoChannels(t, {
    routing: { max: '10s' },
  });
  a.enqueue({ kind: 'status', status: 429, headers: { 'retry-after': '2' } });
  const req = claudeCode(MODEL, true);

  const first = await send(url, { headers: req.headers, body: req.body });
  t.equal(first.status, 200, 'the client gets the fallback’s answer');
  const rows = await attempts(daemon, { requestId: first.requestId, atLeast: 2 });
  t.same(
    rows.map((r) => [r.channel, r.status, r.errorClass, r.final]),
    [
      ['a', 429, ErrorCode.UPSTREAM_STATUS, false],
      ['b', 200, null, true],
    ],
  );
  t.same(coolingScopes(daemon), ['key+model:a#0|claude-sonnet-5-5'], 'key + model cooled');

  // Another model on the same key is not cooled by a model-scoped 429.
  const other = await send(url, { body: messagesBody({ model: 'claude-haiku-5-5' }) });
  t.equal(other.status, 200);
  t.equal(a.requests.at(-1)?.model, 'claude-haiku-5-5', 'channel a still serves other models');

  // Keep asking; channel a must see the model again only once its 2 s have passed.
  const limited = a.requests[0]!;
  const again = () => a.requests.find((r) => r !== limited && r.model === MODEL);
  const started = performance.now();
  let served = 0;
  while (!again() && performance.now() - started < 5000) {
    const res = await send(url, { headers: req.headers, body: req.body });
    t.equal(res.status, 200);
    served++;
    await pace(100);
  }
  const retry = again();
  t.ok(retry, `channel a was tried again (after ${served} requests served meanwhile)`);
  const gap = retry!.receivedAt - limited.receivedAt;
  t.ok(gap >= 1990, `not before retry-after: ${gap.toFixed(0)} ms later`);
  // Soon after: the key is asked again by the next requests, not after the backoff's max (10 s). The
  // bound leaves 2.5 s for the paced client loop on a loaded machine.
  t.ok(gap < 4500, `but soon after it: ${gap.toFixed(0)} ms`);
  t.ok(b.requests.length >= 3, `meanwhile channel b answered (${b.requests.length})`);
});

t.test(
  'persistent 429 without retry-after: a handful of attempts per request, backoff, bounded time',
  async (t) => {
    const { a, b, url, daemon } = await twoChannels(t, {
      a: { keys: [channelKey('a', 0), channelKey('a', 1)] },
      routing: { base: '200ms', max: '5s', cooling_wait: '1s', max_attempts: 5 },
    });
    a.setDefault({ kind: 'status', status: 429 });
    b.setDefault({ kind: 'status', status: 429, body: errorBody('rate_limit_error', 'b is rate limited') });
    const started = performance.now();

    const first = await send(url, { body: messagesBody() });
    t.equal(first.status, 429, 'the last upstream status');
    t.same(anthropicErrorOf(first.body), { type: 'rate_limit_error', message: 'b is rate limited' });
    t.equal(a.requests.length + b.requests.length, 3, 'one attempt per key, then the last answer');
    // At once: three attempts, no wait for a cooldown (the count above shows no retry after one);
    // 2 s is generous for a loaded machine.
    t.ok(performance.now() - started < 2000, 'at once');

    // The next requests wait for the soonest cooldown (within cooling_wait) and try the keys whose
    // cooldown ended; the backoff doubles (200, 400, 800 ms, ...) until the wait is longer than
    // cooling_wait: then the client gets 503 at once, without an attempt.
    const statuses: number[] = [];
    let last = first;
    for (let i = 0; i < 10 && last.status !== 503; i++) {
      last = await send(url, { body: messagesBody() });
      statuses.push(last.status);
    }
    t.same(
      statuses.slice(0, -1),
      statuses.slice(0, -1).map(() => 429),
      `statuses ${statuses.join(', ')}`,
    );
    t.equal(last.status, 503, 'once the wait is longer than cooling_wait: 503');
    t.equal(anthropicErrorOf(last.body)?.type, 'overloaded_error');
    t.ok(Number(last.headers['retry-after']) >= 1, `with retry-after: ${last.headers['retry-after']}`);
    const total = a.requests.length + b.requests.length;
    const rows = await attempts(daemon, { atLeast: total });
    const perRequest = new Map<string, number>();
    for (const r of rows) perRequest.set(r.requestId, (perRequest.get(r.requestId) ?? 0) + 1);
    t.ok(
      [...perRequest.values()].every((n) => n <= 3),
      `at most one attempt per key and request: ${[...perRequest.values()].join(', ')}`,
    );
    t.ok(
      total <= 3 * statuses.length,
      `${total} upstream attempts for ${statuses.length + 1} client requests`,
    );
    // The backoff alone takes 200 + 400 + 800 ms; 6 s is generous for a loaded machine and still
    // below ten requests each waiting out cooling_wait (10 s).
    t.ok(performance.now() - started < 6000, `bounded: ${(performance.now() - started).toFixed(0)} ms`);

    // Never hammered: on one key, each attempt waits for the cooldown, and the cooldown doubles.
    const k0 = a.requests
      .filter((r) => r.headers['x-api-key'] === channelKey('a', 0))
      .map((r) => r.receivedAt);
    t.ok(k0.length >= 3, `${k0.length} attempts on key 0`);
    for (let i = 1; i < k0.length; i++) {
      const gap = k0[i]! - k0[i - 1]!;
      t.ok(gap >= 200 * 2 ** (i - 1) - 10, `key 0 attempt ${i + 1}: ${gap.toFixed(0)} ms after the previous`);
    }
    t.ok(
      rows.every((r) => r.inputTokens === null && r.outputTokens === null),
      'failed attempts carry no usage',
    );
  },
);

t.test('500 once, then healthy: fails over, cools, returns after the cooldown', async (t) => {
  const { a, b, url, daemon } = await twoChannels(t, {
    // Long enough that the second request surely falls inside it, even on a loaded machine.
    routing: { base: '1s' },
  });
  a.enqueue({ kind: 'status', status: 500 });
  const req = claudeCode(MODEL, false);
  const first = await send(url, { headers: req.headers, body: req.body });
  t.equal(first.status, 200);
  const rows = await attempts(daemon, { requestId: first.requestId, atLeast: 2 });
  t.same(
    rows.map((r) => [r.channel, r.status, r.attempt, r.inputTokens]),
    [
      ['a', 500, 1, null],
      ['b', 200, 2, 12],
    ],
  );
  t.same(coolingScopes(daemon), ['channel+model:a|claude-sonnet-5-5']);

  const during = await send(url, { headers: req.headers, body: req.body });
  t.equal(during.status, 200);
  t.equal(a.requests.length, 1, 'a is not used while cooling');
  t.equal(b.requests.length, 2);

  await waitFor(() => coolingScopes(daemon).length === 0, { timeoutMs: 3000, message: 'cooldown over' });
  const after = await send(url, { headers: req.headers, body: req.body });
  t.equal(after.status, 200);
  t.equal(a.requests.length, 2, 'a is used again after its cooldown');
  t.equal(daemon.app.proxyState.cooldowns.entries.size, 0, 'success forgets the failure count too');
});

t.test(
  '503/529 persistent: fails over, then the last upstream status and body reach the client',
  async (t) => {
    const { a, b, url, daemon } = await twoChannels(t);
    a.setDefault({ kind: 'status', status: 503, body: errorBody('api_error', 'a is down') });
    const overloaded = Buffer.from(
      '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
    );
    b.setDefault({ kind: 'status', status: 529, body: overloaded, headers: { 'x-should-pass': 'yes' } });
    const req = claudeCode(MODEL, true);
    const res = await send(url, { headers: req.headers, body: req.body });
    t.equal(res.status, 529);
    t.same(res.body, overloaded, 'the last body, byte for byte');
    t.equal(res.headers['x-should-pass'], 'yes', 'with its headers');
    t.equal(res.headers['content-length'], String(overloaded.length));
    const rows = await attempts(daemon, { requestId: res.requestId, atLeast: 2 });
    t.same(
      rows.map((r) => [r.channel, r.status, r.errorClass, r.inputTokens]),
      [
        ['a', 503, ErrorCode.UPSTREAM_STATUS, null],
        ['b', 529, ErrorCode.UPSTREAM_STATUS, null],
      ],
    );
    t.same(coolingScopes(daemon), ['channel+model:a|claude-sonnet-5-5', 'channel+model:b|claude-sonnet-5-5']);
  },
);

t.test('no upstream answered at all: 502 naming what failed', async (t) => {
  const { a, b, url } = await twoChannels(t);
  a.setDefault({ kind: 'reset' });
  b.setDefault({ kind: 'reset' });
  const res = await send(url, { body: messagesBody() });
  t.equal(res.status, 502);
  const err = anthropicErrorOf(res.body);
  t.equal(err?.type, 'api_error');
  t.match(err?.message, /2 attempts/);
  t.match(err?.message, /connection reset/);
});

t.test('a connection reset before headers fails over to the next channel', async (t) => {
  const { a, url, daemon } = await twoChannels(t);
  a.enqueue({ kind: 'reset' }, { kind: 'reset' });
  for (const stream of [true, false]) {
    const req = claudeCode(MODEL, stream);
    const res = await send(url, { headers: req.headers, body: req.body });
    t.equal(res.status, 200, `stream=${stream}: 200 from the next channel`);
    const rows = await attempts(daemon, { requestId: res.requestId, atLeast: 2 });
    t.same(
      rows.map((r) => [r.channel, r.status, r.errorClass]),
      [
        ['a', 0, ErrorCode.UPSTREAM_RESET],
        ['b', 200, null],
      ],
    );
    await waitFor(() => coolingScopes(daemon).length === 0, { timeoutMs: 2000, message: 'cooldown over' });
  }
});

t.test('400 (context too long) is returned at once: one attempt, no cooldown, no failover', async (t) => {
  const { a, b, url, daemon } = await twoChannels(t);
  const body = Buffer.from(
    JSON.stringify(errorBody('invalid_request_error', 'prompt is too long: 212345 tokens > 200000 maximum')),
  );
  a.setDefault({ kind: 'status', status: 400, body });
  const req = claudeCode(MODEL, true);
  const res = await send(url, { headers: req.headers, body: req.body });
  t.equal(res.status, 400);
  t.same(res.body, body, 'the upstream’s body as is');
  t.equal(b.requests.length, 0, 'no failover');
  t.equal(daemon.app.proxyState.cooldowns.entries.size, 0, 'nothing cooled');
  const rows = await attempts(daemon, { requestId: res.requestId, atLeast: 1 });
  t.equal(rows.length, 1);
  t.same([rows[0]?.status, rows[0]?.final], [400, true]);
  // And again: the channel was not cooled, so it is asked again.
  await send(url, { headers: req.headers, body: req.body });
  t.equal(a.requests.length, 2);
});

t.test('401 cools the key; the next key of the same channel is used', async (t) => {
  const keys = [channelKey('a', 0), channelKey('a', 1)];
  const { a, b, url, daemon } = await twoChannels(t, {
    a: { keys },
    routing: { base: '300ms', max: '8s' },
  });
  a.handle((r: FakeRequest) =>
    r.headers['x-api-key'] === keys[0] ? { kind: 'status', status: 401 } : undefined,
  );
  const req = claudeCode(MODEL, true);
  for (let i = 0; i < 4; i++) {
    const res = await send(url, { headers: req.headers, body: req.body });
    t.equal(res.status, 200, `request ${i + 1}: 200`);
  }
  const used = a.requests.map((r) => r.headers['x-api-key']);
  t.same(used, [keys[0], keys[1], keys[1], keys[1], keys[1]], 'key 0 once, then key 1 only');
  t.equal(b.requests.length, 0, 'the channel’s next key comes before the next channel');
  const entry = [...daemon.app.proxyState.cooldowns.entries.values()].find((e) => e.scope === 'key');
  t.equal(entry?.keyIndex, 0);
  // A rejected key starts long (a quarter of max), not at base.
  t.ok(entry && entry.until - Date.now() > 1000, 'a 401 cools the key long');
  const rows = await attempts(daemon, { atLeast: 5 });
  t.equal(rows[0]?.keyFp, `…${keys[0]!.slice(-4)}`, 'the key fingerprint is recorded');
  t.equal(rows[0]?.status, 401);
});

t.test(
  '404 naming the model cools channel + model; another 404 (wrong base URL) cools the channel',
  async (t) => {
    const [w, a, b] = await startUpstreams(t, 3);
    const { url, daemon } = await startProxy(t, {
      channels: [
        { name: 'w', url: `${w!.url}/wrong-prefix`, priority: 30 },
        { name: 'a', url: a!.url, priority: 20 },
        { name: 'b', url: b!.url, priority: 10 },
      ],
    });
    w!.setDefault({
      kind: 'status',
      status: 404,
      body: '<html><body>Not Found</body></html>',
      headers: { 'content-type': 'text/html' },
    });
    a!.handle((r) =>
      r.model === 'claude-gone-1'
        ? { kind: 'status', status: 404, body: errorBody('not_found_error', 'model: claude-gone-1') }
        : undefined,
    );
    const gone = await send(url, { body: messagesBody({ model: 'claude-gone-1' }) });
    t.equal(gone.status, 200, 'failed over to b');
    const rows = await attempts(daemon, { requestId: gone.requestId, atLeast: 3 });
    t.same(
      rows.map((r) => [r.channel, r.status]),
      [
        ['w', 404],
        ['a', 404],
        ['b', 200],
      ],
    );
    t.same(coolingScopes(daemon), ['channel+model:a|claude-gone-1', 'channel:w']);

    const fine = await send(url, { body: messagesBody() });
    t.equal(fine.status, 200);
    t.equal(a!.requests.at(-1)?.model, MODEL, 'a still serves the other model');
    t.equal(w!.requests.length, 1, 'w is cooled for every model');
  },
);

t.test('connect refused (a closed port) fails over to the next channel', async (t) => {
  const [b] = await startUpstreams(t, 1);
  const { url, daemon } = await startProxy(t, {
    channels: [
      { name: 'dead', url: await closedPortUrl(), priority: 20 },
      { name: 'b', url: b!.url, priority: 10 },
    ],
    // A connect timeout far above the bound below: only a refused connection can fail over that soon.
    routing: { connect: '10s' },
  });
  const req = claudeCode(MODEL, true);
  const started = performance.now();
  const res = await send(url, { headers: req.headers, body: req.body });
  t.equal(res.status, 200);
  t.ok(performance.now() - started < 5000, 'without waiting for a timeout');
  const rows = await attempts(daemon, { requestId: res.requestId, atLeast: 2 });
  t.same(
    rows.map((r) => [r.channel, r.status, r.errorClass]),
    [
      ['dead', 0, ErrorCode.UPSTREAM_CONNECT],
      ['b', 200, null],
    ],
  );
  t.same(coolingScopes(daemon), ['channel:dead'], 'the whole channel is cooled');
});

t.test('a primary that fails for a while then recovers gets traffic back within one cooldown', async (t) => {
  const { a, url, daemon } = await twoChannels(t, {
    routing: { base: '150ms', max: '600ms' },
  });
  a.setDefault({ kind: 'status', status: 503 });
  const body = messagesBody({ stream: true });
  const statuses = new Set<number>();
  let started = performance.now();
  let clientRequests = 0;
  while (performance.now() - started < 1500) {
    statuses.add((await send(url, { body })).status);
    clientRequests++;
    await pace(30);
  }
  const probes = a.requests.length;
  t.ok(probes >= 2 && probes <= 6, `failing primary probed ${probes} times for ${clientRequests} requests`);

  a.setDefault({ kind: 'answer' });
  // When the primary recovers, its current cooldown (at most `max`) is all that keeps traffic away.
  const left = Math.max(0, ...coolingUntils(daemon, 'a')) - Date.now();
  t.ok(left <= 600, `the primary's remaining cooldown is ${left} ms, at most one max (600 ms)`);
  const coolEnd = performance.now() + left;
  const sent: { at: number; toA: boolean }[] = [];
  started = performance.now();
  while (!sent.some((s) => s.toA) && performance.now() - started < 3000) {
    const before = a.requests.length;
    const at = performance.now();
    statuses.add((await send(url, { body })).status);
    sent.push({ at, toA: a.requests.length > before });
    await pace(30);
  }
  const served = a.requests.find((r) => r.answeredWith === 'answer');
  t.ok(served, 'traffic returned to the primary');
  t.ok(served && served.receivedAt >= coolEnd - 2, 'not before its cooldown ended');
  t.same(
    sent.filter((s) => s.at > coolEnd + 2 && !s.toA).map((s) => (s.at - coolEnd).toFixed(0)),
    [],
    'no request sent after that cooldown went elsewhere',
  );
  const n = a.requests.length;
  for (let i = 0; i < 3; i++) statuses.add((await send(url, { body })).status);
  t.equal(a.requests.length, n + 3, 'and stays there');
  t.same([...statuses], [200], 'the client never saw a failure');
});

t.test(
  'after a failover the client sees the fallback’s model and usage; failed attempts carry none',
  async (t) => {
    const { a, b, url, daemon } = await twoChannels(t, {
      a: { modelMap: { [MODEL]: 'claude-a-model' } },
      b: { modelMap: { [MODEL]: 'claude-b-model' } },
      routing: { base: '50ms' },
    });
    const usage = {
      input_tokens: 321,
      output_tokens: 77,
      cache_creation_input_tokens: 5,
      cache_read_input_tokens: 4000,
    };
    b.setDefault({ kind: 'answer', usage });

    // Non-streaming: a 529.
    a.enqueue({ kind: 'status', status: 529 });
    const json = await send(url, { body: claudeCode(MODEL, false).body, headers: claudeCode().headers });
    t.equal(json.status, 200);
    const answer = json.json() as { model: string; usage: unknown };
    t.equal(answer.model, 'claude-b-model');
    t.same(answer.usage, usage);

    // Streaming: a reports usage in message_start, then an error event before any content.
    await waitFor(() => coolingScopes(daemon).length === 0, { timeoutMs: 2000, message: 'cooldown over' });
    a.enqueue({
      kind: 'stream',
      events: [
        {
          event: 'message_start',
          data: {
            type: 'message_start',
            message: { id: 'msg_a', model: 'claude-a-model', usage: { input_tokens: 999, output_tokens: 1 } },
          },
        },
        { event: 'error', data: errorBody('overloaded_error', 'Overloaded') },
      ],
    });
    const req = claudeCode(MODEL, true);
    const sse = await send(url, { headers: req.headers, body: req.body });
    t.equal(sse.status, 200);
    const events = sseEvents(sse.body);
    t.equal(events[0]?.event, 'message_start');
    t.match(events[0]?.data, /"model":"claude-b-model"/, 'message_start names the fallback’s model');
    t.notOk(sse.text().includes('claude-a-model'), 'nothing of the failed attempt reached the client');
    t.notOk(
      events.some((e) => e.event === 'error'),
      'no error event',
    );
    t.equal(events.at(-1)?.event, 'message_stop');

    for (const res of [json, sse]) {
      const rows = await attempts(daemon, { requestId: res.requestId, atLeast: 2 });
      const [failed, okRow] = rows;
      t.same(
        [
          failed?.channel,
          failed?.modelSent,
          failed?.inputTokens,
          failed?.outputTokens,
          failed?.cacheReadTokens,
        ],
        ['a', 'claude-a-model', null, null, null],
        'the failed attempt has no usage',
      );
      t.same(
        [okRow?.channel, okRow?.modelSent, okRow?.inputTokens, okRow?.outputTokens],
        ['b', 'claude-b-model', 321, 77],
      );
      t.same([okRow?.cacheCreationTokens, okRow?.cacheReadTokens], [5, 4000]);
    }
    const rows = await attempts(daemon, { atLeast: 4 });
    t.equal(rows[2]?.errorClass, ErrorCode.UPSTREAM_SSE_ERROR);
  },
);

t.test('the official SDK shape (Bearer, no beta) fails over like Claude Code does', async (t) => {
  const { a, b, url } = await twoChannels(t);
  a.enqueue(okStream(MODEL, { cutAfter: 2 }));
  const req = claudeCode(MODEL, true);
  const { 'x-api-key': token, 'anthropic-beta': _, ...rest } = req.headers;
  const res = await send(url, {
    headers: { ...rest, 'anthropic-version': '2026-10-21', authorization: `Bearer ${token}` },
    rawHeadersOnly: true,
    body: req.body,
  });
  t.equal(res.status, 200);
  t.equal(sseEvents(res.body).at(-1)?.event, 'message_stop', 'a cut before the first content fails over');
  t.equal(b.requests[0]?.headers['anthropic-version'], '2026-10-21');
  t.equal(b.requests[0]?.headers['anthropic-beta'], undefined);
});

t.test('regression: the failed attempt whose answer reaches the client is recorded final', async (t) => {
  const { a, b, url, daemon } = await twoChannels(t, {
    routing: { base: '50ms' },
  });
  // Every attempt failed with a status: the client gets the last one, so that attempt is final.
  a.setDefault({ kind: 'status', status: 503 });
  b.setDefault({ kind: 'status', status: 529 });
  const surfaced = await send(url, { body: messagesBody() });
  t.equal(surfaced.status, 529);
  let rows = await attempts(daemon, { requestId: surfaced.requestId, atLeast: 2 });
  t.same(
    rows.map((r) => [r.channel, r.final]),
    [
      ['a', false],
      ['b', true],
    ],
  );
  // Nothing answered (resets): ccload answers itself, and no attempt is final.
  await waitFor(() => coolingScopes(daemon).length === 0, { timeoutMs: 2000, message: 'cooldown over' });
  a.setDefault({ kind: 'reset' });
  b.setDefault({ kind: 'reset' });
  const own = await send(url, { body: messagesBody() });
  t.equal(own.status, 502);
  rows = await attempts(daemon, { requestId: own.requestId, atLeast: 2 });
  t.same(
    rows.map((r) => [r.channel, r.final]),
    [
      ['a', false],
      ['b', false],
    ],
  );
  // A failover that ends in a success: only the success is final.
  await waitFor(() => coolingScopes(daemon).length === 0, { timeoutMs: 2000, message: 'cooldown over' });
  b.setDefault({ kind: 'answer' });
  const ok = await send(url, { body: messagesBody() });
  t.equal(ok.status, 200);
  rows = await attempts(daemon, { requestId: ok.requestId, atLeast: 2 });
  t.same(
    rows.map((r) => [r.channel, r.status, r.final]),
    [
      ['a', 0, false],
      ['b', 200, true],
    ],
  );
});

t.test(
  'regression: a request that waited for the soonest cooldown is served, though its timer fired early',
  async (t) => {
    // A timer measures monotonic time; cooldowns are in wall-clock time, which may run a little slow
    // (NTP slewing; ms truncation makes a timer fire up to 1 ms early even without it). Here the
    // daemon's clock runs at 95 %, so waking after `until - now` real ms is always a bit early.
    const origin = Date.now();
    const now = () => Math.floor(origin + (Date.now() - origin) * 0.95);
    const [a] = await startUpstreams(t, 1);
    const { url, daemon } = await startProxy(
      t,
      {
        channels: [{ name: 'a', url: a!.url }],
        routing: { base: '300ms', cooling_wait: '1s', when_all_cooling: 'soonest' },
      },
      { now },
    );
    a!.enqueue({ kind: 'status', status: 500 });
    const first = await send(url, { body: messagesBody() });
    t.equal(first.status, 500, 'the only channel failed and is cooling');
    const until = [...daemon.app.proxyState.cooldowns.entries.values()][0]!.until;

    const second = await send(url, { body: messagesBody() });
    t.equal(second.status, 200, 'served once the cooldown ended, not refused as all-cooling');
    t.equal(a!.requests.length, 2, 'the channel was tried again');
    const rows = await attempts(daemon, { requestId: second.requestId, atLeast: 1 });
    t.ok(rows[0]!.ts >= until, 'and not before its cooldown ended (by the daemon’s clock)');
  },
);

t.test('an empty 200, or a stream without any event, fails over', async (t) => {
  const { a, url, daemon } = await twoChannels(t, {
    routing: { base: '50ms' },
  });
  const cases: [string, boolean, Behaviour][] = [
    ['empty JSON 200', false, { kind: 'empty' }],
    ['stream without events', true, { kind: 'stream', events: [] }],
  ];
  for (const [name, stream, behaviour] of cases) {
    await waitFor(() => coolingScopes(daemon).length === 0, { timeoutMs: 2000, message: 'cooldown over' });
    a.enqueue(behaviour);
    const res = await send(url, { body: messagesBody({ stream }) });
    t.equal(res.status, 200, `${name}: answered by the next channel`);
    t.ok(res.body.length > 100, `${name}: a real answer`);
    const rows = await attempts(daemon, { requestId: res.requestId, atLeast: 2 });
    t.same(
      rows.map((r) => [r.channel, r.errorClass]),
      [
        ['a', ErrorCode.UPSTREAM_EMPTY],
        ['b', null],
      ],
      name,
    );
  }
});

t.test('429 with anthropic-ratelimit-*-reset (no retry-after) cools the key until that reset', async (t) => {
  const { a, url, daemon } = await twoChannels(t, {
    routing: { base: '200ms', max: '1m' },
  });
  const reset = new Date(Date.now() + 20_000);
  a.enqueue({
    kind: 'status',
    status: 429,
    headers: {
      'anthropic-ratelimit-requests-remaining': '0',
      'anthropic-ratelimit-requests-reset': reset.toISOString(),
      'anthropic-ratelimit-tokens-reset': new Date(Date.now() + 5_000).toISOString(),
    },
  });
  const res = await send(url, { body: messagesBody() });
  t.equal(res.status, 200, 'failed over');
  const until = coolingUntils(daemon, 'a');
  t.equal(until.length, 1);
  t.ok(Math.abs(until[0]! - reset.getTime()) < 1000, 'cooled until the latest reset, not the 200 ms backoff');
  await send(url, { body: messagesBody() });
  t.equal(a.requests.length, 1, 'not retried meanwhile');
});
