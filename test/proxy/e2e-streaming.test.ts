/**
 * End to end, streams after the commit point: a cut or stalled stream ends with `event: error`
 * (never a clean-looking end), unparseable events are dropped (e2e-stream-integrity.test.ts has the
 * rest of that story), and a client that hangs up gets its upstream request aborted at once and
 * logged as 499.
 */

import t from 'tap';
import { encodeSse, messageStreamEvents, type SseEvent } from '../../src/dev/anthropic-shapes.js';
import type { FakeRequest } from '../../src/dev/fake-upstream.js';
import { DEFAULT_USAGE, okStream } from '../../src/dev/fake-upstream.js';
import { ErrorCode } from '../../src/errors.js';
import { MODEL } from '../helpers/messages.js';
import { deadline, onceWithin } from '../helpers/wait.js';
import {
  anthropicErrorOf,
  attempts,
  channelKey,
  claudeCode,
  coolingScopes,
  send,
  sseEvents,
  twoChannels,
} from './e2e-helpers.js';

const TEXT = 'alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma';

t.test('a stream cut after some deltas ends with event: error, no message_stop, no failover', async (t) => {
  const { a, b, url, daemon } = await twoChannels(t);
  a.enqueue(okStream(MODEL, { text: TEXT, cutAfter: 6 }));
  const req = claudeCode(MODEL, true);
  const res = await send(url, { headers: req.headers, body: req.body });
  t.equal(res.status, 200, 'the stream had committed');
  const events = sseEvents(res.body);
  t.same(
    events.map((e) => e.event),
    [
      'message_start',
      'content_block_start',
      'ping',
      'content_block_delta',
      'content_block_delta',
      'content_block_delta',
      'error',
    ],
    'the deltas, then an error frame',
  );
  t.equal(anthropicErrorOf(events.at(-1)!.data)?.type, 'api_error');
  t.notOk(res.text().includes('message_stop'), 'never a clean end');
  t.equal(b.requests.length, 0, 'no failover after the commit point');
  const rows = await attempts(daemon, { requestId: res.requestId, atLeast: 1 });
  t.same(
    rows.map((r) => [r.channel, r.status, r.errorClass, r.final, r.streamed]),
    [['a', 200, ErrorCode.STREAM_BROKEN, true, true]],
  );
  t.same(coolingScopes(daemon), ['channel+model:a|claude-sonnet-5-5'], 'the channel is cooled for the model');
});

t.test(
  'a stream that stalls after commit ends at idle with event: error, and the upstream is aborted',
  async (t) => {
    const { a, b, url, daemon } = await twoChannels(t);
    a.enqueue(okStream(MODEL, { text: TEXT, stallAfter: 5 }));
    const aborted = onceWithin(a, 'aborted', 3000);
    const req = claudeCode(MODEL, true);
    const res = await send(url, { headers: req.headers, body: req.body });
    t.equal(res.status, 200);
    const events = sseEvents(res.body);
    t.same(
      events.map((e) => e.event),
      ['message_start', 'content_block_start', 'ping', 'content_block_delta', 'content_block_delta', 'error'],
    );
    const err = anthropicErrorOf(events.at(-1)!.data);
    t.equal(err?.type, 'timeout_error');
    t.match(err?.message, /idle/);
    // The error frame arrives one `idle` (600 ms) after the last bytes, not earlier. The upper bound
    // only has to tell the idle timer from no timer (the stalled upstream never ends; `send` gives
    // up at 8 s), so it is generous: a loaded 2-core machine can delay timers by a second.
    const lastDelta = res.chunks.at(-2)!.at;
    const silence = res.chunks.at(-1)!.at - lastDelta;
    t.ok(silence >= 550 && silence < 3000, `error frame ${silence.toFixed(0)} ms after the last delta`);
    const [rec] = (await aborted) as [FakeRequest];
    t.ok(rec.aborted, 'the stalled upstream request was aborted');
    t.equal(b.requests.length, 0);
    const rows = await attempts(daemon, { requestId: res.requestId, atLeast: 1 });
    t.same(
      rows.map((r) => [r.status, r.errorClass]),
      [[200, ErrorCode.IDLE_TIMEOUT]],
    );
  },
);

t.test(
  'unparseable SSE events are dropped, the rest arrives unchanged, the daemon stays healthy',
  async (t) => {
    const { a, url, daemon } = await twoChannels(t);
    const good = messageStreamEvents({ model: MODEL, text: TEXT, usage: DEFAULT_USAGE });
    const bad: SseEvent[] = [
      {
        event: 'content_block_delta',
        data: '{"type":"content_block_delta","index":0,"delta":{"type":"text_del',
      },
      { event: 'content_block_delta', data: '%%% not json at all %%%' },
      { event: 'mystery_event', data: '{"type":"mystery_event","payload":[1,2,' },
      { event: 'message_delta', data: '{"type":"message_delta","usage":{"output_tokens":"lots"}}' },
    ];
    // The bad events go right after the first text delta, so they cross the commit point too.
    const events = [...good.slice(0, 4), ...bad, ...good.slice(4)];
    const behaviour = { kind: 'stream' as const, events, chunking: 'random' as const, seed: 7 };
    a.setDefault(behaviour);
    const req = claudeCode(MODEL, true);
    const via = await send(url, { headers: req.headers, body: req.body });
    const direct = await send(a.url, {
      headers: { ...req.headers, 'x-api-key': channelKey('a') },
      rawHeadersOnly: true,
      body: req.body,
    });
    t.equal(via.status, 200);
    t.notOk(via.broken);
    t.equal(direct.body.length, encodeSse(events).length, 'the upstream sent the bad events');
    // The message_delta whose output_tokens is a string is valid JSON: it passes (its usage is ignored).
    const readable = events.filter((e) => !bad.slice(0, 3).includes(e));
    t.same(
      via.body,
      encodeSse(readable),
      'byte-identical to the upstream’s stream minus the unparseable events',
    );
    t.equal(sseEvents(via.body).at(-1)?.event, 'message_stop');
    const rows = await attempts(daemon, { requestId: via.requestId, atLeast: 1 });
    t.same(
      [rows[0]?.status, rows[0]?.errorClass, rows[0]?.eventsDropped],
      [200, null, 3],
      'a success, 3 dropped',
    );

    // A stream of garbage before any content event fails over rather than being committed.
    a.enqueue({
      kind: 'stream',
      events: [
        { event: 'message_start', data: '{{{{' },
        { event: 'x', data: 'y' },
      ],
    });
    const after = await send(url, { headers: req.headers, body: req.body });
    t.equal(after.status, 200);
    t.equal(sseEvents(after.body).at(-1)?.event, 'message_stop', 'answered by the next channel');
    const health = await send(url, { path: '/health' });
    t.equal(health.status, 200, 'health is fine');
    t.equal((health.json() as { status: string }).status, 'ok');
  },
);

t.test('client disconnect mid-stream aborts the upstream request at once, logged as 499', async (t) => {
  const { a, b, url, daemon } = await twoChannels(t);
  // About 60 events 60 ms apart: the stream would run for more than 3 s if it were not aborted.
  const stream = okStream(MODEL, { text: Array(9).fill(TEXT).join(' '), delayMs: 60 });
  a.enqueue(stream);
  const aborted = onceWithin(a, 'aborted', 3000);
  const req = claudeCode(MODEL, true);
  let hungUpAt = 0;
  const res = await send(url, {
    headers: req.headers,
    body: req.body,
    abortWhen: (chunks) => {
      const seen = Buffer.concat(chunks.map((c) => c.data)).toString('utf8');
      if ((seen.match(/event: content_block_delta/g) ?? []).length < 2) return false;
      hungUpAt = performance.now();
      return true;
    },
  });
  t.ok(res.broken, 'the client hung up mid-stream');
  const [rec] = (await aborted) as [FakeRequest];
  // Typically a few ms; 1 s is generous for a loaded machine and still under a third of the stream.
  const lag = rec.abortedAt! - hungUpAt;
  t.ok(lag < 1000, `upstream aborted ${lag.toFixed(1)} ms after the client left`);
  t.ok(
    rec.sentEvents < stream.events.length / 2,
    `the upstream stopped early (${rec.sentEvents} of ${stream.events.length} events sent)`,
  );
  const rows = await attempts(daemon, { requestId: res.requestId, atLeast: 1 });
  t.same(
    rows.map((r) => [r.channel, r.status, r.errorClass]),
    [['a', 499, ErrorCode.CLIENT_GONE]],
  );
  t.same(coolingScopes(daemon), [], 'nothing cooled: the upstream was not at fault');
  t.equal(b.requests.length, 0, 'and nothing retried');
});

t.test('client disconnect before the commit point aborts the upstream too, without failover', async (t) => {
  // first_token far away, so the only thing that can end the attempt within the bound is the hang-up.
  const { a, b, url, daemon } = await twoChannels(t, { routing: { first_token: '10s' } });
  a.enqueue({ kind: 'never' });
  const aborted = onceWithin(a, 'aborted', 3000);
  const arrived = a.nextRequest(3000);
  let hungUpAt = 0;
  const req = claudeCode(MODEL, true);
  const sent = send(url, {
    headers: req.headers,
    body: req.body,
    abortOn: arrived.then(() => {
      hungUpAt = performance.now();
    }),
  });
  await t.rejects(sent, /aborted by the test/);
  const [rec] = (await aborted) as [FakeRequest];
  // Typically a few ms; 2 s is generous for a loaded machine and far below first_token (10 s).
  t.ok(rec.abortedAt! - hungUpAt < 2000, `aborted ${(rec.abortedAt! - hungUpAt).toFixed(1)} ms after`);
  const rows = await deadline(attempts(daemon, { atLeast: 1 }), 3000, 'the attempt row');
  t.same(
    rows.map((r) => [r.channel, r.status, r.errorClass, r.final]),
    [['a', 499, ErrorCode.CLIENT_GONE, false]],
  );
  t.equal(b.requests.length, 0, 'no failover for a client that left');
  t.same(coolingScopes(daemon), []);
});

t.test('an upstream error event after commit reaches the client as sent, and ends the answer', async (t) => {
  const { a, b, url, daemon } = await twoChannels(t);
  const events = messageStreamEvents({ model: MODEL, text: TEXT, usage: DEFAULT_USAGE });
  const error: SseEvent = {
    event: 'error',
    data: { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } },
  };
  a.enqueue({ kind: 'stream', events: [...events.slice(0, 5), error] });
  const req = claudeCode(MODEL, true);
  const res = await send(url, { headers: req.headers, body: req.body });
  t.equal(res.status, 200);
  const got = sseEvents(res.body);
  t.same(
    got.map((e) => e.event),
    ['message_start', 'content_block_start', 'ping', 'content_block_delta', 'content_block_delta', 'error'],
    'the upstream’s own error frame, and no second one',
  );
  t.same(anthropicErrorOf(got.at(-1)!.data), { type: 'overloaded_error', message: 'Overloaded' });
  t.equal(b.requests.length, 0);
  const rows = await attempts(daemon, { requestId: res.requestId, atLeast: 1 });
  t.same(
    rows.map((r) => [r.status, r.errorClass]),
    [[200, ErrorCode.STREAM_BROKEN]],
  );
});

t.test(
  'a stream that ends without message_stop nor stop_reason is not presented as complete (README)',
  async (t) => {
    const { a, url, daemon } = await twoChannels(t);
    // Everything up to the last content_block_stop: no message_delta, so no stop_reason either.
    const events = messageStreamEvents({ model: MODEL, text: TEXT, usage: DEFAULT_USAGE });
    a.enqueue({ kind: 'stream', events: events.slice(0, -2) });
    const res = await send(url, { body: { model: MODEL, max_tokens: 8, messages: [], stream: true } });
    t.equal(res.status, 200);
    const got = sseEvents(res.body);
    t.equal(got.at(-2)?.event, 'content_block_stop', 'everything the upstream sent');
    t.equal(got.at(-1)?.event, 'error', 'then an error frame');
    const rows = await attempts(daemon, { requestId: res.requestId, atLeast: 1 });
    t.equal(rows[0]?.errorClass, ErrorCode.STREAM_BROKEN);
  },
);

t.test('regression: a stream that stalls after the client caught up still ends at idle', async (t) => {
  const { a, url, daemon } = await twoChannels(t);
  // 16 MB of text deltas: more than the socket buffers hold, so a paused client pauses the upstream.
  const chunks = Array.from({ length: 800 }, (_, i) => `${i} `.padEnd(20_000, 'x'));
  const events = messageStreamEvents({ model: MODEL, chunks, usage: DEFAULT_USAGE });
  // Everything up to the last delta, in one write, then silence (no message_delta, no stop).
  a.enqueue({ kind: 'stream', events, stallAfter: events.length - 3, chunking: 'whole' });
  const res = await send(url, {
    body: { model: MODEL, max_tokens: 8, messages: [], stream: true },
    pauseAfterFirstChunkMs: 1200,
    timeoutMs: 10_000,
  });
  t.equal(res.status, 200);
  t.ok(res.body.length > 16_000_000, `${(res.body.length / 1e6).toFixed(1)} MB received`);
  const got = sseEvents(res.body);
  t.equal(got.at(-2)?.event, 'content_block_delta', 'every delta arrived');
  t.equal(got.at(-1)?.event, 'error', 'then the idle timeout’s error frame');
  t.equal(anthropicErrorOf(got.at(-1)!.data)?.type, 'timeout_error');
  // At least one idle (600 ms); the generous upper bound only tells the idle timer from none.
  const silence = res.chunks.at(-1)!.at - res.chunks.at(-2)!.at;
  t.ok(silence >= 550 && silence < 3000, `${silence.toFixed(0)} ms of silence before it`);
  const rows = await attempts(daemon, { requestId: res.requestId, atLeast: 1 });
  t.equal(rows[0]?.errorClass, ErrorCode.IDLE_TIMEOUT);
});
