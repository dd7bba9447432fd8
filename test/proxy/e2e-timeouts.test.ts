/**
 * End to end, timeouts before the commit point: `first_token` ends an attempt that does not start
 * answering (no headers, or headers and no content) and the request fails over; the client's
 * timeout hints (`x-timeout-ms`, `timeout_ms`) cap the whole request. The suite's config has
 * first_token = idle = 600 ms.
 */
import t, { type Test } from 'tap';
import type { Behaviour, FakeRequest } from '../../src/dev/fake-upstream.js';
import { okStream } from '../../src/dev/fake-upstream.js';
import { ErrorCode } from '../../src/errors.js';
import { MODEL, messagesBody } from '../helpers/messages.js';
import { onceWithin } from '../helpers/wait.js';
import {
  anthropicErrorOf,
  attempts,
  claudeCode,
  send,
  sseEvents,
  startProxy,
  startUpstreams,
  twoChannels,
} from './e2e-helpers.js';

const FIRST_TOKEN = 600;

/**
 * Asserts the request took about one first_token: at least it, and less than the 3 s the slow
 * upstreams below take to answer (waiting for them would be the bug). That leaves 2.4 s of room
 * for a loaded 2-core machine; which timer ended the attempt is checked from the attempt rows.
 */
function aboutFirstToken(t: Test, ms: number, what: string): void {
  t.ok(ms >= FIRST_TOKEN - 20 && ms < 3000, `${what}: ${ms.toFixed(0)} ms (first_token ${FIRST_TOKEN})`);
}

const slowStarts: [string, Behaviour][] = [
  ['never answers', { kind: 'never' }],
  ['headers at once, then nothing', { kind: 'headers-then-stall' }],
  ['headers at once, first event after 3 s', okStream(MODEL, { firstDelayMs: 3000 })],
  // message_start and ping arrive, but no content: still before the commit point.
  ['message_start and ping, then silence', okStream(MODEL, { stallAfter: 3 })],
];

for (const [name, behaviour] of slowStarts) {
  t.test(`${name}: the attempt ends at first_token and the request fails over`, async (t) => {
    const { a, b, url, daemon } = await twoChannels(t);
    a.enqueue(behaviour);
    const aborted = onceWithin(a, 'aborted', 3000);
    const req = claudeCode(MODEL, true);
    const res = await send(url, { headers: req.headers, body: req.body });
    t.equal(res.status, 200, 'answered by the next channel');
    aboutFirstToken(t, res.headersAt - res.sentAt, 'headers reached the client after');
    const events = sseEvents(res.body);
    t.equal(
      events.filter((e) => e.event === 'message_start').length,
      1,
      'nothing of the slow attempt leaked',
    );
    t.equal(events.at(-1)?.event, 'message_stop');
    t.equal(b.requests.length, 1);
    const [rec] = (await aborted) as [FakeRequest];
    t.ok(rec.aborted, 'the slow upstream request was aborted');
    const rows = await attempts(daemon, { requestId: res.requestId, atLeast: 2 });
    t.same(
      rows.map((r) => [r.channel, r.errorClass, r.inputTokens]),
      [
        ['a', ErrorCode.FIRST_TOKEN_TIMEOUT, null],
        ['b', null, 12],
      ],
    );
  });
}

t.test('non-streaming: a response whose headers do not come in first_token fails over', async (t) => {
  const { a, b, url } = await twoChannels(t);
  a.enqueue({ kind: 'json', body: { late: true }, headersDelayMs: 3000 });
  const res = await send(url, { body: messagesBody() });
  t.equal(res.status, 200);
  aboutFirstToken(t, res.endedAt - res.sentAt, 'answered after');
  t.equal((res.json() as { type: string }).type, 'message');
  t.equal(b.requests.length, 1);
});

t.test('a single channel that never answers: 504 timeout_error after first_token', async (t) => {
  const [a] = await startUpstreams(t, 1);
  const { url } = await startProxy(t, { channels: [{ name: 'a', url: a!.url }] });
  a!.setDefault({ kind: 'never' });
  const res = await send(url, { body: messagesBody({ stream: true }) });
  t.equal(res.status, 504);
  const err = anthropicErrorOf(res.body);
  t.equal(err?.type, 'timeout_error');
  t.match(err?.message, /did not start answering in time/);
  t.match(err?.message, /channel "a"/);
  aboutFirstToken(t, res.endedAt - res.sentAt, 'ended after');
});

t.test('timeout hints cap the request and are not forwarded', async (t) => {
  const { a, b, url, daemon } = await twoChannels(t, {
    // first_token well above the short hints, so "ended at the hint" cannot be mistaken for it.
    routing: { first_token: '1s' },
  });
  a.setDefault({ kind: 'never' });
  b.setDefault({ kind: 'never' });
  const hints: [string, { path?: string; headers?: Record<string, string> }][] = [
    ['x-timeout-ms: 250', { headers: { 'x-timeout-ms': '250' } }],
    ['x-timeout-s: 0.25', { headers: { 'x-timeout-s': '0.25' } }],
    ['?timeout_ms=250', { path: '/v1/messages?beta=true&timeout_ms=250' }],
  ];
  for (const [name, o] of hints) {
    const res = await send(url, { ...o, body: messagesBody({ stream: true }) });
    const took = res.endedAt - res.sentAt;
    t.equal(res.status, 504, `${name}: 504`);
    t.equal(anthropicErrorOf(res.body)?.type, 'timeout_error');
    // That the hint, not first_token, ended the attempt shows in the record (a total timeout) and in
    // the absence of a failover below; the upper bound is generous for a loaded machine.
    t.ok(took >= 230 && took < 2500, `${name}: ended after ${took.toFixed(0)} ms`);
    const [row] = await attempts(daemon, { requestId: res.requestId, atLeast: 1 });
    t.equal(row?.errorClass, ErrorCode.TOTAL_TIMEOUT, `${name}: ended by the client's deadline`);
    const got = a.requests.at(-1)!;
    t.equal(got.headers['x-timeout-ms'], undefined, `${name}: no x-timeout-ms upstream`);
    t.equal(got.headers['x-timeout-s'], undefined, `${name}: no x-timeout-s upstream`);
    t.notMatch(got.url, /timeout/, `${name}: no timeout parameter upstream (${got.url})`);
  }
  t.equal(b.requests.length, 0, 'the deadline passed during the first attempt: no failover');
  t.same(
    [...daemon.app.proxyState.cooldowns.entries.values()].map((e) => e.channel),
    [],
    'the client’s own deadline cools nothing',
  );

  // A hint longer than first_token: the first attempt ends at first_token, the next at the deadline.
  const res = await send(url, { headers: { 'x-timeout-ms': '1500' }, body: messagesBody({ stream: true }) });
  const took = res.endedAt - res.sentAt;
  t.equal(res.status, 504);
  // The rows below show which timer ended each attempt; the upper bound is generous for a loaded machine.
  t.ok(took >= 1480 && took < 3500, `two attempts within the 1500 ms deadline: ${took.toFixed(0)} ms`);
  t.equal(b.requests.length, 1, 'the second channel was tried');
  const rows = (await attempts(daemon, { atLeast: 5 })).slice(-2);
  t.same(
    rows.map((r) => [r.channel, r.errorClass]),
    [
      ['a', ErrorCode.FIRST_TOKEN_TIMEOUT],
      ['b', ErrorCode.TOTAL_TIMEOUT],
    ],
  );
});

t.test('regression: ccload’s own error after upstream attempts carries x-ccload-request-id', async (t) => {
  const { a, b, url, daemon } = await twoChannels(t);
  // 504 from the request's own deadline (the attempt that ends the request without an answer).
  a.setDefault({ kind: 'never' });
  const late = await send(url, { headers: { 'x-timeout-ms': '200' }, body: messagesBody() });
  // 502 after every attempt failed without an upstream answer.
  a.setDefault({ kind: 'reset' });
  b.setDefault({ kind: 'reset' });
  const reset = await send(url, { body: messagesBody() });
  for (const [res, status, n] of [
    [late, 504, 1],
    [reset, 502, 2],
  ] as const) {
    t.equal(res.status, status);
    t.match(res.requestId, /^ccl_/, `${status}: the request id is sent`);
    const rows = await attempts(daemon, { requestId: res.requestId, atLeast: n });
    t.equal(rows.length, n, `${status}: it names the request’s attempts`);
  }
});
