/**
 * End to end, what reaches a client of a stream (issue 13): an unparseable event is dropped and the
 * rest arrives; an unparseable event the client needs ends the stream with a clean `event: error`
 * (before commit: failover); a complete answer without `message_stop` is completed at once; unknown
 * event and block types pass through unchanged and in order, and an unknown event commits. The
 * official SDK parses every stream ccload emits here.
 */
import Anthropic from '@anthropic-ai/sdk';
import t, { type Test } from 'tap';
import { encodeSse, messageStreamEvents, type SseEvent } from '../../src/dev/anthropic-shapes.js';
import { DEFAULT_USAGE, type FakeUpstream } from '../../src/dev/fake-upstream.js';
import { ErrorCode } from '../../src/errors.js';
import type { RoutingSpec } from '../helpers/config.js';
import { MODEL } from '../helpers/messages.js';
import { onceWithin } from '../helpers/wait.js';
import {
  anthropicErrorOf,
  attempts,
  CLIENT_TOKEN,
  proxyConfig,
  send,
  sseEvents,
  startProxy,
  startUpstreams,
} from './e2e-helpers.js';

const TEXT = 'alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho';
const PARAMS = { model: MODEL, max_tokens: 64, messages: [{ role: 'user' as const, content: 'hello' }] };
const BODY = { ...PARAMS, stream: true };

/** Two channels, a (priority 20) and b (priority 10), on fresh fakes. */
async function twoChannels(t: Test, routing?: RoutingSpec) {
  const [a, b] = await startUpstreams(t, 2);
  const proxy = await startProxy(t, {
    channels: [
      { name: 'a', url: a!.url, priority: 20 },
      { name: 'b', url: b!.url, priority: 10 },
    ],
    ...(routing ? { routing } : {}),
  });
  return { a: a!, b: b!, ...proxy };
}

function sdk(url: string): Anthropic {
  return new Anthropic({ baseURL: url, apiKey: CLIENT_TOKEN, maxRetries: 0 });
}

/** The stream's final message as the SDK assembles it, and the text it saw streamed. */
async function sdkStream(url: string) {
  const stream = sdk(url).messages.stream(PARAMS);
  const texts: string[] = [];
  stream.on('text', (x) => texts.push(x));
  const final = await stream.finalMessage();
  return { final, text: texts.join('') };
}

async function metric(url: string, pattern: RegExp): Promise<number | undefined> {
  const m = await send(url, { path: '/metrics' });
  const line = pattern.exec(m.text());
  return line ? Number(line[1]) : undefined;
}

const good = () => messageStreamEvents({ model: MODEL, text: TEXT, usage: DEFAULT_USAGE });
/** Index of the n-th (0-based) event named `name`. */
const nth = (events: SseEvent[], name: string, n = 0) =>
  events.map((e, i) => (e.event === name ? i : -1)).filter((i) => i >= 0)[n]!;

t.test('an invalid-JSON delta mid-stream is dropped, the rest arrives, the SDK parses it all', async (t) => {
  const { a, b, url, daemon } = await twoChannels(t);
  const events = good();
  const cut: SseEvent = {
    event: 'content_block_delta',
    data: '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"LOST',
  };
  const at = nth(events, 'content_block_delta', 2);
  const bad = [...events.slice(0, at), cut, ...events.slice(at)];
  a.setDefault({ kind: 'stream', events: bad, chunking: 'random', seed: 3 });

  const res = await send(url, { body: BODY });
  t.equal(res.status, 200);
  t.same(res.body, encodeSse(events), 'exactly the upstream’s stream without the cut event');
  const rows = await attempts(daemon, { requestId: res.requestId, atLeast: 1 });
  t.same(
    rows.map((r) => [r.channel, r.status, r.errorClass, r.eventsDropped, r.stopSynthesised]),
    [['a', 200, null, 1, false]],
    'a success, with the dropped event noted',
  );
  t.equal(
    await metric(url, /^ccload_stream_events_dropped_total\{channel="a",reason="invalid_json"\} (\S+)$/m),
    1,
  );

  const { final, text } = await sdkStream(url);
  t.equal(text, TEXT, 'the SDK read every readable delta');
  t.notOk(text.includes('LOST'));
  t.equal(final.stop_reason, 'end_turn');
  t.equal(b.requests.length, 0, 'no failover for a droppable event');
});

t.test('an invalid content_block_start after commit ends the stream with a clean event: error', async (t) => {
  const { a, b, url, daemon } = await twoChannels(t);
  const events = messageStreamEvents({
    model: MODEL,
    text: TEXT,
    usage: DEFAULT_USAGE,
    toolUse: { name: 'Read', input: { file_path: '/tmp/x' } },
  });
  const second = nth(events, 'content_block_start', 1);
  const broken: SseEvent = { event: 'content_block_start', data: '{"type":"content_block_start","index":1,' };
  const bad = [...events.slice(0, second), broken, ...events.slice(second + 1)];
  // Spaced writes: the upstream is still sending when ccload gives up on it.
  a.enqueue({ kind: 'stream', events: bad, delayMs: 40 });
  a.setDefault({ kind: 'stream', events: bad });
  const aborted = onceWithin(a, 'aborted', 3000);

  const res = await send(url, { body: BODY });
  t.equal(res.status, 200);
  const got = sseEvents(res.body);
  t.same(
    got.map((e) => e.event),
    [...events.slice(0, second).map((e) => e.event), 'error'],
    'everything before it, then one error frame',
  );
  for (const e of got) t.doesNotThrow(() => JSON.parse(e.data), `${e.event} parses`);
  t.equal(anthropicErrorOf(got.at(-1)!.data)?.type, 'api_error');
  t.notOk(res.text().includes('"index":1,\n'), 'the broken event never reaches the client');
  await aborted;
  const rows = await attempts(daemon, { requestId: res.requestId, atLeast: 1 });
  t.same(
    rows.map((r) => [r.channel, r.status, r.errorClass, r.final]),
    [['a', 200, ErrorCode.STREAM_UNREADABLE, true]],
  );
  t.equal(b.requests.length, 0, 'committed: no failover');

  // The SDK reports it as an API error (the frame parses), not as a JSON parse failure. (a is
  // cooling now: b answers the same way.)
  b.setDefault({ kind: 'stream', events: bad });
  const e = await sdk(url)
    .messages.stream(PARAMS)
    .finalMessage()
    .catch((err: unknown) => err);
  t.ok(e instanceof Anthropic.APIError, `an APIError: ${String(e)}`);
  t.notOk(e instanceof SyntaxError);
});

t.test('an invalid content_block_start before commit fails over to the next channel', async (t) => {
  const { a, b, url, daemon } = await twoChannels(t);
  const events = good();
  b.setDefault({ kind: 'stream', events });
  const first = nth(events, 'content_block_start');
  a.enqueue({
    kind: 'stream',
    events: [
      ...events.slice(0, first),
      { event: 'content_block_start', data: '{"index":0' },
      ...events.slice(first + 1),
    ],
  });
  const res = await send(url, { body: BODY });
  t.equal(res.status, 200);
  t.same(res.body, encodeSse(events), 'the whole answer, from b');
  t.equal(b.requests.length, 1);
  const rows = await attempts(daemon, { requestId: res.requestId, atLeast: 2 });
  t.same(
    rows.map((r) => [r.channel, r.errorClass, r.final]),
    [
      ['a', ErrorCode.STREAM_UNREADABLE, false],
      ['b', null, true],
    ],
  );
});

t.test('a stream ending after message_delta with a stop_reason is completed at once', async (t) => {
  // idle 5 s: an answer completed only by the idle timeout would take that long.
  const { a, url, daemon } = await twoChannels(t, { idle: '5s' });
  const events = good();
  a.setDefault({ kind: 'stream', events, omitStop: true });
  const res = await send(url, { body: BODY, timeoutMs: 10_000 });
  t.equal(res.status, 200);
  t.same(res.body, encodeSse(events), 'byte-identical to a stream that had its message_stop');
  const ms = res.endedAt - res.headersAt;
  t.ok(ms < 2000, `ended ${ms.toFixed(0)} ms after the headers (idle is 5000)`);
  const rows = await attempts(daemon, { requestId: res.requestId, atLeast: 1 });
  t.same(
    rows.map((r) => [r.status, r.errorClass, r.stopSynthesised, r.outputTokens]),
    [[200, null, true, DEFAULT_USAGE.output_tokens]],
    'a success, recorded as completed by ccload',
  );
  const { final, text } = await sdkStream(url);
  t.equal(text, TEXT);
  t.equal(final.stop_reason, 'end_turn');

  // An unreadable message_stop after the stop_reason: dropped, and the answer completed the same way.
  a.setDefault({
    kind: 'stream',
    events: [...events.slice(0, -1), { event: 'message_stop', data: '{"type":"message_st' }],
  });
  const again = await send(url, { body: BODY });
  t.same(again.body, encodeSse(events));
  const [row] = await attempts(daemon, { requestId: again.requestId, atLeast: 1 });
  t.same([row?.errorClass, row?.stopSynthesised, row?.eventsDropped], [null, true, 1]);
});

t.test('an unknown event type first, then normal content: passed through, committed at it', async (t) => {
  const { a, b, url, daemon } = await twoChannels(t);
  const unknown: SseEvent = {
    event: 'message_annotation',
    data: { type: 'message_annotation', annotation: { kind: 'notice', text: 'new in this version' } },
  };
  const events = [unknown, ...good()];
  a.setDefault({ kind: 'stream', events, chunking: 'random', seed: 5 });
  const res = await send(url, { body: BODY });
  t.equal(res.status, 200);
  t.same(res.body, encodeSse(events), 'unchanged and in order');
  const { final, text } = await sdkStream(url);
  t.equal(text, TEXT, 'the SDK ignores what it does not know');
  t.equal(final.stop_reason, 'end_turn');

  // Committed at the unknown event: it reaches the client before the first token limit (600 ms),
  // and a stall after it ends at idle with an error frame — no failover, no endless hold.
  a.enqueue({ kind: 'stream', events, stallAfter: 1 });
  const stalled = await send(url, { body: BODY });
  t.equal(stalled.status, 200, 'committed');
  t.same(
    sseEvents(stalled.body).map((e) => e.event),
    ['message_annotation', 'error'],
  );
  t.ok(stalled.chunks[0]!.at - stalled.sentAt < 550, 'the unknown event arrived before first_token');
  t.equal(b.requests.length, 0, 'never failed over for it');
  const [row] = await attempts(daemon, { requestId: stalled.requestId, atLeast: 1 });
  t.equal(row?.errorClass, ErrorCode.IDLE_TIMEOUT);
});

t.test('an unknown content block type mid-stream passes through with its indices intact', async (t) => {
  const { a, url } = await twoChannels(t);
  const events = good();
  const stop = nth(events, 'content_block_stop');
  const mystery: SseEvent[] = [
    {
      event: 'content_block_start',
      data: { type: 'content_block_start', index: 1, content_block: { type: 'mystery_block', payload: {} } },
    },
    {
      event: 'content_block_delta',
      data: { type: 'content_block_delta', index: 1, delta: { type: 'mystery_delta', bits: [1, 2, 3] } },
    },
    { event: 'content_block_stop', data: { type: 'content_block_stop', index: 1 } },
  ];
  const all = [...events.slice(0, stop + 1), ...mystery, ...events.slice(stop + 1)];
  a.setDefault({ kind: 'stream', events: all, chunking: 7 });
  const res = await send(url, { body: BODY });
  t.same(res.body, encodeSse(all), 'unchanged and in order');
  const { final, text } = await sdkStream(url);
  t.equal(text, TEXT);
  t.same(
    final.content.map((c) => c.type as string),
    ['text', 'mystery_block'],
    'the SDK keeps the unknown block at its index',
  );
});

/** A config with prices for the billing tests. */
function pricedConfig(a: FakeUpstream): string {
  return `${proxyConfig({ channels: [{ name: 'a', url: a.url }] })}pricing:
  "claude-*": { input: 3, output: 15, cache_write: 3.75, cache_write_1h: 6, cache_read: 0.3, fast_multiplier: 6, web_search: 0.01 }
`;
}

t.test(
  'usage with 5m/1h cache writes, iterations, web search and fast mode, priced per the config',
  async (t) => {
    const [a] = await startUpstreams(t, 1);
    const { url, daemon } = await startProxy(t, pricedConfig(a!));
    const close = (x: number | null | undefined, y: number) =>
      typeof x === 'number' && Math.abs(x - y) < 1e-12 ? true : `${x} != ${y}`;
    const base = {
      input_tokens: 100,
      output_tokens: 50,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
    };
    const cases: {
      name: string;
      usage: Record<string, unknown>;
      want: Record<string, unknown>;
      cost: number;
    }[] = [
      {
        name: '5-minute and 1-hour cache writes',
        usage: {
          ...base,
          cache_creation_input_tokens: 3000,
          cache_read_input_tokens: 10_000,
          cache_creation: { ephemeral_5m_input_tokens: 1000, ephemeral_1h_input_tokens: 2000 },
        },
        want: { cacheCreationTokens: 3000, cacheCreation1hTokens: 2000, cacheReadTokens: 10_000 },
        cost: (100 * 3 + 50 * 15 + 1000 * 3.75 + 2000 * 6 + 10_000 * 0.3) / 1e6,
      },
      {
        name: 'a compaction pass in iterations',
        usage: {
          ...base,
          iterations: [
            { type: 'compaction', input_tokens: 180_000, output_tokens: 3500 },
            { type: 'message', input_tokens: 100, output_tokens: 50 },
          ],
        },
        want: {
          inputTokens: 180_100,
          outputTokens: 3550,
          compactionInputTokens: 180_000,
          compactionOutputTokens: 3500,
        },
        cost: (180_100 * 3 + 3550 * 15) / 1e6,
      },
      {
        name: 'web search requests',
        usage: { ...base, server_tool_use: { web_search_requests: 4 } },
        want: { webSearchRequests: 4 },
        cost: (100 * 3 + 50 * 15) / 1e6 + 0.04,
      },
      {
        name: 'a fast answer',
        usage: { ...base, speed: 'fast' },
        want: { speed: 'fast' },
        cost: ((100 * 3 + 50 * 15) / 1e6) * 6,
      },
    ];
    for (const c of cases) {
      for (const stream of [true, false]) {
        const events = messageStreamEvents({ model: MODEL, text: TEXT, usage: c.usage as never });
        if (stream) a!.enqueue({ kind: 'stream', events });
        else
          a!.enqueue({
            kind: 'json',
            body: { type: 'message', role: 'assistant', model: MODEL, content: [], usage: c.usage },
          });
        const res = await send(url, { body: { ...PARAMS, stream } });
        t.equal(res.status, 200);
        const [row] = await attempts(daemon, { requestId: res.requestId, atLeast: 1 });
        const label = `${c.name} (${stream ? 'stream' : 'json'})`;
        t.match(row, c.want, label);
        t.equal(close(row?.costUsd, c.cost), true, `${label}: cost`);
      }
    }
    t.equal(
      await metric(url, /^ccload_tokens_total\{channel="a",model="[^"]+",type="cache_creation_1h"\} (\S+)$/m),
      4000,
    );
    t.equal(
      await metric(url, /^ccload_tokens_total\{channel="a",model="[^"]+",type="compaction_input"\} (\S+)$/m),
      360_000,
    );
    t.equal(
      await metric(
        url,
        /^ccload_server_tool_requests_total\{channel="a",model="[^"]+",tool="web_search"\} (\S+)$/m,
      ),
      8,
    );
  },
);

t.test('cache diagnostics: the cache_miss_reason is recorded on the attempt', async (t) => {
  const [a] = await startUpstreams(t, 1);
  const { url, daemon } = await startProxy(t, { channels: [{ name: 'a', url: a!.url }] });
  const diagnostics = { cache_miss_reason: { type: 'tools_changed', cache_missed_input_tokens: 1234 } };
  a!.enqueue({
    kind: 'stream',
    events: messageStreamEvents({ model: MODEL, text: TEXT, usage: DEFAULT_USAGE, diagnostics }),
  });
  const s = await send(url, { body: BODY });
  const [rs] = await attempts(daemon, { requestId: s.requestId, atLeast: 1 });
  t.equal(rs?.cacheMissReason, 'tools_changed');
  a!.enqueue({
    kind: 'json',
    body: {
      type: 'message',
      model: MODEL,
      content: [],
      usage: DEFAULT_USAGE,
      diagnostics: { cache_miss_reason: { type: 'model_changed' } },
    },
  });
  const j = await send(url, { body: PARAMS });
  const [rj] = await attempts(daemon, { requestId: j.requestId, atLeast: 1 });
  t.equal(rj?.cacheMissReason, 'model_changed');
});

t.test('regression: half an event at a cut never reaches the client before the error frame', async (t) => {
  const { a, b, url, daemon } = await twoChannels(t);
  const events = good();
  const at = nth(events, 'content_block_delta', 3);
  const half =
    'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"HALF';
  a.enqueue({ kind: 'stream', events: events.slice(0, at), tail: half, cutAfter: at });
  const res = await send(url, { body: BODY });
  t.equal(res.status, 200);
  t.notOk(res.text().includes('HALF'), 'the partial event is not forwarded');
  const got = sseEvents(res.body);
  t.same(
    got.map((e) => e.event),
    [...events.slice(0, at).map((e) => e.event), 'error'],
  );
  for (const e of got) t.doesNotThrow(() => JSON.parse(e.data), `${e.event} parses`);
  const [row] = await attempts(daemon, { requestId: res.requestId, atLeast: 1 });
  t.same([row?.errorClass, row?.eventsDropped], [ErrorCode.STREAM_BROKEN, 1], 'the cut event is counted');

  // The same cut inside a message_stop after the stop_reason: the answer is completed instead.
  // (a is cooling after the broken stream, so b answers; both would answer the same.)
  const cutStop = {
    kind: 'stream' as const,
    events: events.slice(0, -1),
    tail: 'event: message_stop\ndata: {"type":"mes',
  };
  a.enqueue(cutStop);
  b.enqueue(cutStop);
  const done = await send(url, { body: BODY });
  t.same(done.body, encodeSse(events), 'completed with a whole message_stop');
  const [row2] = await attempts(daemon, { requestId: done.requestId, atLeast: 1 });
  t.same([row2?.errorClass, row2?.stopSynthesised, row2?.eventsDropped], [null, true, 1]);
});
