import { createHash } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { Client } from 'undici';
import {
  claudeCodeRequest,
  encodeSse,
  encodeSseEvent,
  errorBody,
  messageResponse,
  messageStreamEvents,
  type SseEvent,
} from '../../src/dev/anthropic-shapes.js';
import {
  DEFAULT_USAGE,
  type EchoBody,
  type FakeRequest,
  type FakeUpstream,
  type FakeUpstreamOptions,
  ok,
  okStream,
  startFakeUpstream,
} from '../../src/dev/fake-upstream.js';
import { tmpDir } from '../helpers/tmp.js';
import { deadline, onceWithin, waitFor } from '../helpers/wait.js';

type T = Test;

const MODEL = 'claude-sonnet-5-5';

async function fakeFor(t: T, opts?: FakeUpstreamOptions): Promise<FakeUpstream> {
  const fake = await startFakeUpstream(opts);
  t.teardown(() => fake.close());
  return fake;
}

function clientFor(
  t: T,
  fake: FakeUpstream,
  timeouts: { headersTimeout?: number; bodyTimeout?: number } = {},
) {
  const client = new Client(fake.url, { headersTimeout: 5000, bodyTimeout: 5000, ...timeouts });
  t.teardown(() => client.destroy());
  return client;
}

/** A node:http exchange whose body chunks are timestamped as they arrive. */
interface Exchange {
  req: http.ClientRequest;
  response: Promise<http.IncomingMessage>;
  chunks: { at: number; data: Buffer }[];
  headersAt: () => number;
  /** Resolves when the response ends or errors (with the error, if any). */
  done: Promise<Error | undefined>;
}

function exchange(fake: FakeUpstream, path: string, body = '{}'): Exchange {
  const chunks: { at: number; data: Buffer }[] = [];
  let headersAt = 0;
  const req = http.request(`${fake.url}${path}`, {
    method: 'POST',
    agent: false,
    headers: { 'content-type': 'application/json' },
  });
  let settle!: (e: Error | undefined) => void;
  const done = new Promise<Error | undefined>((resolve) => {
    settle = resolve;
  });
  const response = new Promise<http.IncomingMessage>((resolve, reject) => {
    req.on('response', (res) => {
      headersAt = performance.now();
      res.on('data', (data: Buffer) => chunks.push({ at: performance.now(), data }));
      res.on('end', () => settle(undefined));
      res.on('error', (e) => settle(e));
      res.on('aborted', () => settle(new Error('aborted')));
      resolve(res);
    });
    req.on('error', (e) => {
      settle(e);
      reject(e);
    });
  });
  response.catch(() => {});
  req.end(body);
  return { req, response, chunks, headersAt: () => headersAt, done };
}

const events = messageStreamEvents({
  model: MODEL,
  chunks: ['Hel', 'lo ', 'wor', 'ld'],
  usage: { input_tokens: 10, output_tokens: 4, cache_read_input_tokens: 7 },
});

t.test('json: status, headers and body as given; an object body is JSON-encoded', async (t) => {
  const fake = await fakeFor(t);
  const body = messageResponse({ model: MODEL, text: 'hi', usage: { input_tokens: 3, output_tokens: 1 } });
  fake.enqueue({
    kind: 'json',
    status: 201,
    body,
    headers: { 'x-extra': 'yes', 'Content-Type': 'application/x-test' },
  });
  const res = await clientFor(t, fake).request({ method: 'POST', path: '/v1/messages', body: '{}' });
  t.equal(res.statusCode, 201);
  t.equal(res.headers['x-extra'], 'yes');
  t.equal(res.headers['content-type'], 'application/x-test', 'behaviour headers override the defaults');
  t.match(res.headers['request-id'], /^req_fake_\d+$/);
  const got = (await res.body.json()) as Record<string, unknown>;
  t.same(got, body);
  t.match(got, {
    type: 'message',
    role: 'assistant',
    stop_reason: 'end_turn',
    stop_sequence: null,
    usage: { input_tokens: 3, output_tokens: 1, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
  });
});

t.test(
  'status: Anthropic error bodies by default, retry-after and custom bodies passed through',
  async (t) => {
    const fake = await fakeFor(t);
    const ctx = errorBody('invalid_request_error', 'prompt is too long: 210000 tokens > 200000 maximum');
    fake.enqueue(
      { kind: 'status', status: 429, headers: { 'retry-after': '7' } },
      { kind: 'status', status: 529 },
      { kind: 'status', status: 400, body: ctx },
    );
    const client = clientFor(t, fake);
    const table: [number, string, string | undefined][] = [
      [429, 'rate_limit_error', '7'],
      [529, 'overloaded_error', undefined],
      [400, 'invalid_request_error', undefined],
    ];
    for (const [status, type, retryAfter] of table) {
      const res = await client.request({ method: 'POST', path: '/v1/messages', body: '{}' });
      t.equal(res.statusCode, status);
      t.equal(res.headers['retry-after'], retryAfter);
      t.equal(res.headers['content-type'], 'application/json');
      t.match(await res.body.json(), { type: 'error', error: { type } }, `${status} → ${type}`);
    }
    t.equal(fake.requests.length, 3);
    t.same(
      fake.requests.map((r) => r.answeredWith),
      ['status', 'status', 'status'],
    );
  },
);

t.test('stream: each event is its own chunk, after firstDelayMs and delayMs', async (t) => {
  const fake = await fakeFor(t);
  fake.enqueue({ kind: 'stream', events, firstDelayMs: 150, delayMs: 50 });
  const sentAt = performance.now();
  const ex = exchange(fake, '/v1/messages?beta=true');
  const res = await deadline(ex.response, 2000, 'response headers');
  t.equal(res.statusCode, 200);
  t.equal(res.headers['content-type'], 'text/event-stream; charset=utf-8');
  t.equal(await deadline(ex.done, 3000, 'stream end'), undefined);
  t.equal(ex.chunks.length, events.length, 'one chunk per event');
  ex.chunks.forEach((c, i) => {
    t.same(c.data, encodeSseEvent(events[i]!), `chunk ${i} is event ${events[i]!.event}`);
  });
  // Lower bounds from the request's start: a busy client may read a chunk late, but never before the
  // server's timers let it go (timers fire at most ~1 ms early, from ms rounding).
  t.ok(ex.chunks[0]!.at - ex.headersAt() >= 60, 'headers came well before the first event');
  ex.chunks.forEach((c, i) => {
    const due = 150 + i * 50 - 2 * (i + 1);
    t.ok(c.at - sentAt >= due, `chunk ${i} at ${(c.at - sentAt).toFixed(0)} ms ≥ ${due} ms`);
  });
  const rec = await fake.nextRequest(1000);
  t.equal(rec.sentEvents, events.length);
  t.equal(rec.aborted, false);
});

t.test('stream: omitStop drops message_stop; byte and random chunking keep the bytes exact', async (t) => {
  const fake = await fakeFor(t);
  const client = clientFor(t, fake);
  fake.enqueue({ kind: 'stream', events, omitStop: true });
  let text = await (await client.request({ method: 'POST', path: '/v1/messages', body: '{}' })).body.text();
  t.notMatch(text, 'message_stop');
  t.match(text, 'event: message_delta');

  for (const chunking of [7, 1, 'random', 'whole'] as const) {
    fake.enqueue({ kind: 'stream', events, chunking, seed: 42 });
    text = await (await client.request({ method: 'POST', path: '/v1/messages', body: '{}' })).body.text();
    t.equal(text, encodeSse(events).toString(), `chunking ${chunking}`);
  }
  await waitFor(() => fake.requests.length === 5, { message: 'five requests recorded' });
  t.same(
    fake.requests.map((r) => r.sentEvents),
    [events.length - 1, events.length, events.length, events.length, events.length],
  );
});

t.test(
  'stream: random chunking splits across event boundaries (node:http sees many small chunks)',
  async (t) => {
    const fake = await fakeFor(t);
    fake.enqueue({ kind: 'stream', events, chunking: 'random', delayMs: 2 });
    const ex = exchange(fake, '/v1/messages');
    t.equal(await deadline(ex.done, 3000, 'stream end'), undefined);
    t.ok(ex.chunks.length > events.length, `${ex.chunks.length} chunks for ${events.length} events`);
    t.ok(
      ex.chunks.some((c) => !c.data.toString().endsWith('\n\n')),
      'some chunk ends in the middle of an event',
    );
    t.equal(Buffer.concat(ex.chunks.map((c) => c.data)).toString(), encodeSse(events).toString());
  },
);

t.test('stream: cutAfter ends the response with an error at the client after n events', async (t) => {
  const fake = await fakeFor(t);
  fake.enqueue({ kind: 'stream', events, cutAfter: 3 });
  const res = await clientFor(t, fake).request({ method: 'POST', path: '/v1/messages', body: '{}' });
  t.equal(res.statusCode, 200, 'headers were sent');
  let received = '';
  const err = await res.body
    .on('data', (c: Buffer) => {
      received += c.toString();
    })
    .text()
    .then(
      () => undefined,
      (e: Error) => e,
    );
  t.ok(err, 'reading the body fails');
  t.equal(received, encodeSse(events.slice(0, 3)).toString(), 'exactly the first three events arrived');
  const rec = await fake.nextRequest(1000);
  t.equal(rec.sentEvents, 3);
  t.equal(rec.aborted, false, 'a cut by the upstream is not a client abort');
  await waitFor(() => fake.openSockets === 0, { message: 'cut socket closed' });
});

t.test('stream: cutAfter 0 sends headers only, then drops the connection', async (t) => {
  const fake = await fakeFor(t);
  fake.enqueue({ kind: 'stream', events, cutAfter: 0 });
  const ex = exchange(fake, '/v1/messages');
  const res = await deadline(ex.response, 2000, 'headers');
  t.equal(res.statusCode, 200);
  t.ok(await deadline(ex.done, 2000, 'stream end'), 'the response ends with an error');
  t.equal(ex.chunks.length, 0);
});

t.test(
  'stream: stallAfter keeps the socket open until the client times out, then counts as aborted',
  async (t) => {
    const fake = await fakeFor(t);
    fake.enqueue({ kind: 'stream', events, stallAfter: 2 });
    const ex = exchange(fake, '/v1/messages');
    await deadline(ex.response, 2000, 'headers');
    await waitFor(() => ex.chunks.length === 2, { message: 'two events arrived' });
    const timedOut = onceWithin(ex.req, 'timeout', 2000);
    ex.req.setTimeout(150);
    await timedOut;
    t.equal(fake.openSockets, 1, 'the stalled socket is still open when the client gives up');
    t.equal(Buffer.concat(ex.chunks.map((c) => c.data)).toString(), encodeSse(events.slice(0, 2)).toString());
    const aborted = onceWithin(fake, 'aborted', 1000);
    ex.req.destroy();
    const [rec] = (await aborted) as [FakeRequest];
    t.equal(rec.aborted, true);
    t.equal(rec.sentEvents, 2);
    await waitFor(() => fake.openSockets === 0, { message: 'sockets back to 0' });
  },
);

t.test('reset: the client sees ECONNRESET (node:http) or a socket error (undici)', async (t) => {
  const fake = await fakeFor(t);
  fake.enqueue({ kind: 'reset' }, { kind: 'reset' });
  const ex = exchange(fake, '/v1/messages');
  const err = (await deadline(ex.done, 2000, 'reset')) as NodeJS.ErrnoException | undefined;
  t.ok(err, 'node:http request failed');
  t.ok(err?.code === 'ECONNRESET' || /socket hang up/.test(String(err?.message)), `node:http: ${err?.code}`);

  const uerr = await clientFor(t, fake)
    .request({ method: 'POST', path: '/v1/messages', body: '{}' })
    .then(
      () => undefined,
      (e: Error & { code?: string }) => e,
    );
  t.ok(uerr, 'undici request failed');
  t.match(uerr?.code, /^(ECONNRESET|UND_ERR_SOCKET)$/, `undici: ${uerr?.code}`);
  await waitFor(() => fake.requests.length === 2, { message: 'both requests recorded' });
  t.same(
    fake.requests.map((r) => [r.answeredWith, r.aborted]),
    [
      ['reset', false],
      ['reset', false],
    ],
  );
});

t.test('never: the request is read and recorded, no response comes, the give-up is an abort', async (t) => {
  const fake = await fakeFor(t);
  fake.setDefault({ kind: 'never' });
  const client = clientFor(t, fake, { headersTimeout: 200 });
  const started = performance.now();
  const pending = client.request({ method: 'POST', path: '/v1/messages', body: '{"model":"x"}' });
  const rec = await fake.nextRequest(1000);
  t.equal(rec.body.toString(), '{"model":"x"}');
  t.equal(rec.model, 'x');
  const aborted = onceWithin(fake, 'aborted', 2000);
  const err = await pending.then(
    () => undefined,
    (e: Error & { code?: string }) => e,
  );
  t.equal(err?.code, 'UND_ERR_HEADERS_TIMEOUT');
  t.ok(performance.now() - started >= 190, 'nothing came before the client timeout');
  await aborted;
  t.equal(rec.aborted, true);
  await waitFor(() => fake.openSockets === 0, { message: 'sockets back to 0' });
});

t.test('headers-then-stall: SSE headers arrive, then the body times out', async (t) => {
  const fake = await fakeFor(t);
  fake.enqueue({ kind: 'headers-then-stall' });
  const res = await clientFor(t, fake, { bodyTimeout: 150 }).request({
    method: 'POST',
    path: '/v1/messages',
    body: '{}',
  });
  t.equal(res.statusCode, 200);
  t.equal(res.headers['content-type'], 'text/event-stream; charset=utf-8');
  const err = await res.body.text().then(
    () => undefined,
    (e: Error & { code?: string }) => e,
  );
  t.equal(err?.code, 'UND_ERR_BODY_TIMEOUT');
});

t.test('empty: 200 with an empty body', async (t) => {
  const fake = await fakeFor(t);
  fake.enqueue({ kind: 'empty', status: 200 });
  const res = await clientFor(t, fake).request({ method: 'POST', path: '/v1/messages', body: '{}' });
  t.equal(res.statusCode, 200);
  t.equal(res.headers['content-length'], '0');
  t.equal(await res.body.text(), '');
});

t.test('echo: reflects method, url, headers (raw case too) and the body hash', async (t) => {
  const fake = await fakeFor(t);
  fake.setDefault({ kind: 'echo' });
  const cc = claudeCodeRequest({ model: MODEL, stream: true, bodyBytes: 43_000 });
  const res = await clientFor(t, fake).request({
    method: 'POST',
    path: '/v1/messages?beta=true',
    headers: { ...cc.headers, 'X-Mixed-Case': 'Kept' },
    body: cc.body,
  });
  const echo = (await res.body.json()) as EchoBody;
  t.equal(echo.method, 'POST');
  t.equal(echo.url, '/v1/messages?beta=true');
  for (const [k, v] of Object.entries(cc.headers)) t.equal(echo.headers[k], v, `header ${k}`);
  t.ok(echo.rawHeaders.includes('X-Mixed-Case'), 'raw header names keep their case');
  t.same(echo.body, { length: cc.body.length, sha256: createHash('sha256').update(cc.body).digest('hex') });
});

t.test('client abort is noticed at once (not at the next write) and sockets go back to 0', async (t) => {
  const fake = await fakeFor(t);
  // 2 s between writes: a hang-up noticed only by a failed write would show up about 2 s late.
  const DELAY_MS = 2000;
  fake.enqueue({ kind: 'stream', events, delayMs: DELAY_MS });
  const ex = exchange(fake, '/v1/messages');
  await waitFor(() => ex.chunks.length >= 1, { message: 'first event' });
  t.equal(fake.openSockets, 1);
  const aborted = onceWithin(fake, 'aborted', 1000);
  const destroyedAt = performance.now();
  ex.req.destroy();
  const [rec] = (await aborted) as [FakeRequest];
  t.equal(rec.aborted, true);
  // Half the pause between writes: generous for a loaded machine, yet only the close event can be this early.
  const noticed = rec.abortedAt! - destroyedAt;
  t.ok(noticed < DELAY_MS / 2, `noticed after ${noticed.toFixed(1)} ms`);
  t.ok(rec.sentEvents < events.length, 'the stream stopped early');
  await waitFor(() => fake.openSockets === 0, { message: 'sockets back to 0' });
  const sent = rec.sentEvents;
  await new Promise((r) => setTimeout(r, DELAY_MS + 250));
  t.equal(rec.sentEvents, sent, 'no writes after the abort (the delay timer was cleared)');
});

t.test('a completed response is not an abort; keep-alive sockets close with the client', async (t) => {
  const fake = await fakeFor(t);
  let aborts = 0;
  fake.on('aborted', () => aborts++);
  fake.setDefault(okStream(MODEL));
  const client = clientFor(t, fake);
  for (let i = 0; i < 3; i++) {
    const res = await client.request({ method: 'POST', path: '/v1/messages', body: '{}' });
    t.match(await res.body.text(), /event: message_stop/);
  }
  t.equal(fake.openSockets, 1, 'three sequential requests reused one connection');
  await client.close();
  await waitFor(() => fake.openSockets === 0, { message: 'sockets back to 0' });
  t.equal(aborts, 0);
  t.same(
    fake.requests.map((r) => r.aborted),
    [false, false, false],
  );
});

t.test(
  'queue before chooser before count_tokens before default; reset clears queue and records',
  async (t) => {
    const fake = await fakeFor(t, { default: ok('default-model') });
    const client = clientFor(t, fake);
    const post = async (path: string, body: unknown) => {
      const res = await client.request({ method: 'POST', path, body: JSON.stringify(body) });
      return { status: res.statusCode, json: (await res.body.json()) as Record<string, unknown> };
    };
    fake.handle((req) => (req.model === 'chosen' ? { kind: 'status', status: 503 } : undefined));
    fake.enqueue({ kind: 'status', status: 401 });
    t.equal(fake.queued, 1);
    t.equal((await post('/v1/messages', { model: 'chosen' })).status, 401, 'queue first');
    t.equal((await post('/v1/messages', { model: 'chosen' })).status, 503, 'then the chooser');
    t.match(await post('/v1/messages', { model: 'other' }), {
      status: 200,
      json: { model: 'default-model' },
    });
    const count = await post('/v1/messages/count_tokens?beta=true', { model: 'other', messages: [] });
    t.same(count.json, {
      input_tokens: Math.ceil(JSON.stringify({ model: 'other', messages: [] }).length / 4),
    });

    t.equal((await fake.nextRequest(100)).model, 'chosen');
    fake.enqueue({ kind: 'never' });
    fake.reset();
    t.equal(fake.queued, 0);
    t.equal(fake.requests.length, 0);
    fake.handle(undefined);
    t.match(await post('/v1/messages', {}), { status: 200 }, 'the default survives reset');
    t.equal((await fake.nextRequest(100)).path, '/v1/messages', 'the cursor restarted');
    await t.rejects(fake.nextRequest(50), /no request arrived within 50 ms/);
  },
);

t.test(
  'default answers like Anthropic: stream or JSON by the request, with its model and usage',
  async (t) => {
    const fake = await fakeFor(t, { countTokens: 321 });
    const client = clientFor(t, fake);
    const json = await client.request({
      method: 'POST',
      path: '/v1/messages',
      body: JSON.stringify({ model: 'm-json', stream: false }),
    });
    t.match(await json.body.json(), { model: 'm-json', usage: DEFAULT_USAGE });
    const stream = await client.request({
      method: 'POST',
      path: '/v1/messages',
      body: claudeCodeRequest({ model: 'm-sse', stream: true, bodyBytes: 30_000 }).body,
    });
    t.equal(stream.headers['content-type'], 'text/event-stream; charset=utf-8');
    const text = await stream.body.text();
    t.match(text, /^event: message_start\ndata: \{"type":"message_start","message":\{"id":"msg_01/);
    t.match(text, '"model":"m-sse"');
    t.match(text, /event: message_stop\ndata: \{"type":"message_stop"\}\n\n$/);
    const count = await client.request({ method: 'POST', path: '/v1/messages/count_tokens', body: '{}' });
    t.same(await count.body.json(), { input_tokens: 321 });
  },
);

t.test('headersDelayMs delays the status line', async (t) => {
  const fake = await fakeFor(t);
  fake.enqueue({ kind: 'json', body: { a: 1 }, headersDelayMs: 150 });
  const started = performance.now();
  const res = await clientFor(t, fake).request({ method: 'POST', path: '/v1/messages', body: '{}' });
  t.ok(performance.now() - started >= 140);
  t.same(await res.body.json(), { a: 1 });
});

t.test('record:false keeps no requests but still emits them and serves nextRequest', async (t) => {
  const fake = await fakeFor(t, { record: false, default: ok(MODEL) });
  const next = fake.nextRequest(1000);
  const res = await clientFor(t, fake).request({ method: 'POST', path: '/v1/messages', body: '{"x":1}' });
  t.equal(res.statusCode, 200);
  await res.body.dump();
  t.equal((await next).body.toString(), '{"x":1}');
  t.equal(fake.requests.length, 0);
});

t.test('close destroys open sockets and rejects pending nextRequest', async (t) => {
  const fake = await startFakeUpstream({ default: { kind: 'never' } });
  const ex = exchange(fake, '/v1/messages');
  await fake.nextRequest(1000);
  const waiting = t.rejects(fake.nextRequest(5000), /fake upstream closed/);
  await deadline(fake.close(), 1000, 'close');
  t.ok(await deadline(ex.done, 1000, 'client error'), 'the client saw its connection go');
  await waiting;
  t.equal(fake.openSockets, 0);
  t.equal(fake.requests[0]!.aborted, false, 'closing the server is not a client abort');
});

t.test('messageStreamEvents: the standard sequence, with thinking and tool use', async (t) => {
  t.same(
    events.map((e) => e.event),
    [
      'message_start',
      'content_block_start',
      'ping',
      'content_block_delta',
      'content_block_delta',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ],
  );
  t.match(events[0]!.data, {
    message: {
      model: MODEL,
      usage: {
        input_tokens: 10,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 7,
        output_tokens: 1,
      },
    },
  });
  t.match(events[8]!.data, { delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 4 } });

  const rich = messageStreamEvents({
    model: MODEL,
    text: 'Let me check that file for you now.',
    thinking: 'The user wants the file read.',
    toolUse: { name: 'Read', input: { path: '/tmp/a "b".ts' } },
    usage: { input_tokens: 1, output_tokens: 2 },
  });
  const starts = rich.filter((e) => e.event === 'content_block_start').map((e) => e.data);
  t.match(starts, [
    { index: 0, content_block: { type: 'thinking' } },
    { index: 1, content_block: { type: 'text' } },
    { index: 2, content_block: { type: 'tool_use', name: 'Read', input: {} } },
  ]);
  const deltas = rich.filter((e) => e.event === 'content_block_delta').map((e) => e.data as { delta: never });
  const json = deltas
    .map((d: { delta: { type: string; partial_json?: string } }) => d.delta)
    .filter((d) => d.type === 'input_json_delta')
    .map((d) => d.partial_json)
    .join('');
  t.same(JSON.parse(json), { path: '/tmp/a "b".ts' }, 'partial_json pieces join to the input');
  t.ok(
    deltas.some((d: { delta: { type: string } }) => d.delta.type === 'signature_delta'),
    'thinking is signed',
  );
  t.match(rich.at(-2)!.data, { delta: { stop_reason: 'tool_use' } });
  t.equal(rich.filter((e) => e.event === 'ping').length, 1);

  const raw: SseEvent = { event: 'error', data: '{"type":"error"' };
  t.equal(
    encodeSseEvent(raw).toString(),
    'event: error\ndata: {"type":"error"\n\n',
    'string data is verbatim',
  );
});

t.test('claudeCodeRequest: valid JSON of the requested size, model first, stream last', async (t) => {
  for (const bodyBytes of [111, 43_000, 200_000]) {
    const { headers, body } = claudeCodeRequest({ model: 'claude-opus-5-5', stream: true, bodyBytes });
    t.ok(Math.abs(body.length - bodyBytes) <= bodyBytes * 0.02, `${body.length} ≈ ${bodyBytes}`);
    const parsed = JSON.parse(body.toString()) as Record<string, unknown>;
    const keys = Object.keys(parsed);
    t.equal(keys[0], 'model');
    t.equal(keys.at(-1), 'stream');
    t.equal(parsed['stream'], true);
    t.equal(headers['user-agent']?.startsWith('claude-cli/'), true);
    t.equal(headers['anthropic-version'], '2023-06-01');
  }
  const { headers, body } = claudeCodeRequest({ model: MODEL, stream: false, bodyBytes: 43_000 });
  const text = body.toString();
  const parsed = JSON.parse(text) as {
    system: { cache_control?: unknown }[];
    tools: { defer_loading?: boolean }[];
    metadata: { user_id: string };
    messages: { role: string }[];
    max_tokens: number;
    thinking: unknown;
  };
  t.same(Object.keys(parsed), [
    'model',
    'messages',
    'system',
    'tools',
    'metadata',
    'max_tokens',
    'thinking',
    'context_management',
    'output_config',
    'stream',
  ]);
  t.equal(parsed.system.length, 3);
  t.equal(parsed.system.filter((b) => b.cache_control).length, 2);
  t.equal(parsed.tools.length, 12);
  t.equal(parsed.tools.filter((x) => x.defer_loading === true).length, 1);
  t.equal(typeof parsed.metadata.user_id, 'string');
  t.match(JSON.parse(parsed.metadata.user_id), { session_id: headers['x-claude-code-session-id'] });
  t.equal(parsed.max_tokens, 32_000);
  t.same(parsed.thinking, { type: 'enabled', budget_tokens: 31_999 });
  t.equal(parsed.messages.at(-1)!.role, 'user');
  t.match(text, '\\n', 'escaped newlines');
  t.match(text, '\\"', 'escaped quotes');
  t.match(text, '\\u001b', 'escaped control characters');
  t.match(text, '日本語', 'unicode');
  t.match(headers, {
    'anthropic-beta': /claude-code-20250219/,
    'x-app': 'cli',
    'x-stainless-retry-count': '0',
    'content-type': 'application/json',
  });
  t.same(errorBody('overloaded_error', 'Overloaded'), {
    type: 'error',
    error: { type: 'overloaded_error', message: 'Overloaded' },
  });
});

t.test(
  'helpers: waitFor, onceWithin and deadline fail with what they awaited; tmpDir is removed',
  async (t) => {
    await t.rejects(
      waitFor(() => false, { timeoutMs: 30, message: 'pigs fly' }),
      /pigs fly not met within 30 ms/,
    );
    let n = 0;
    await waitFor(() => ++n === 3);
    t.equal(n, 3);
    await t.rejects(
      onceWithin(new (await import('node:events')).EventEmitter(), 'x', 20),
      /no 'x' event within 20 ms/,
    );
    await t.rejects(deadline(new Promise(() => {}), 20, 'the moon'), /the moon did not settle within 20 ms/);
    t.equal(await deadline(Promise.resolve(5), 20, 'five'), 5);

    let dir = '';
    await t.test('inner', async (t) => {
      dir = tmpDir(t);
      writeFileSync(join(dir, 'f'), 'x');
      t.ok(existsSync(join(dir, 'f')));
    });
    t.equal(existsSync(dir), false, 'removed at teardown');
  },
);
