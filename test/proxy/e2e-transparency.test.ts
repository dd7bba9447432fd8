/**
 * End to end, transparency: what the client gets through ccload is what the upstream sent (bytes,
 * statuses, headers), what the upstream gets is what the client sent (bytes, headers), except the
 * credentials, hop-by-hop headers, timeout hints and a model_map rewrite.
 */
import { createHash } from 'node:crypto';
import t from 'tap';
import type { EchoBody, StreamBehaviour } from '../../src/dev/fake-upstream.js';
import { okStream } from '../../src/dev/fake-upstream.js';
import { MODEL } from '../helpers/messages.js';
import { waitFor } from '../helpers/wait.js';
import {
  attempts,
  CLIENT_TOKEN,
  channelKey,
  claudeCode,
  closedPortUrl,
  coolingScopes,
  send,
  startProxy,
  startUpstreams,
} from './e2e-helpers.js';

/** The headers a direct request to the fake carries: the client's, with the channel key instead of the token. */
function direct(headers: Record<string, string>, key: string): Record<string, string> {
  const { 'x-api-key': _, ...rest } = headers;
  return { ...rest, 'x-api-key': key };
}

t.test('a non-streaming answer arrives byte-identical to a direct request', async (t) => {
  const [up] = await startUpstreams(t, 1);
  const { url } = await startProxy(t, { channels: [{ name: 'a', url: up!.url }] });
  const req = claudeCode(MODEL, false);
  t.ok(req.body.length > 40_000, `Claude Code–shaped body (${req.body.length} bytes)`);

  const via = await send(url, { path: '/v1/messages?beta=true', headers: req.headers, body: req.body });
  const straight = await send(up!.url, {
    path: '/v1/messages?beta=true',
    headers: direct(req.headers, channelKey('a')),
    rawHeadersOnly: true,
    body: req.body,
  });
  t.equal(via.status, 200);
  t.equal(straight.status, 200);
  t.ok(via.body.length > 100, 'a real answer');
  t.same(via.body, straight.body, 'body bytes identical');
  t.equal(via.headers['content-type'], straight.headers['content-type']);
  t.equal(via.headers['content-length'], String(via.body.length));
  t.match(via.headers['request-id'], /^req_fake_\d+$/, 'the upstream request-id passes through');
  t.match(via.requestId, /^ccl_/, 'ccload adds its own request id');
  // The upstream received the client's body byte for byte.
  const got = up!.requests[0]!;
  t.same(got.body, req.body, 'the request body reached the upstream unchanged');
});

t.test('a streaming answer arrives byte-identical to a direct request, however it is chunked', async (t) => {
  const [up] = await startUpstreams(t, 1);
  const { url, daemon } = await startProxy(t, { channels: [{ name: 'a', url: up!.url }] });
  const req = claudeCode(MODEL, true);
  for (const chunking of ['event', 'random', 7, 'whole'] as const) {
    // One behaviour object answers both requests: the fake encodes it once, so both get the same bytes.
    const b: StreamBehaviour = okStream(MODEL, {
      chunking,
      seed: 42,
      thinking: 'Let me think about the failing test for a moment.',
      toolUse: { name: 'Read', input: { file_path: '/home/dev/ccload/src/proxy/forward.ts' } },
    } as Parameters<typeof okStream>[1]);
    up!.setDefault(b);
    const via = await send(url, { path: '/v1/messages?beta=true', headers: req.headers, body: req.body });
    const straight = await send(up!.url, {
      path: '/v1/messages?beta=true',
      headers: direct(req.headers, channelKey('a')),
      rawHeadersOnly: true,
      body: req.body,
    });
    t.equal(via.status, 200, `${chunking}: 200`);
    t.equal(via.headers['content-type'], 'text/event-stream; charset=utf-8');
    t.equal(via.headers['cache-control'], 'no-cache');
    t.notOk(via.broken, `${chunking}: the stream ended cleanly`);
    t.ok(via.body.length > 500, `${chunking}: a real stream`);
    t.same(via.body, straight.body, `${chunking}: bytes identical to direct`);
    if (via.requestId) {
      const rows = await attempts(daemon, { requestId: via.requestId, atLeast: 1 });
      t.equal(rows[0]?.streamed, true);
      t.equal(rows[0]?.errorClass, null);
    }
  }
});

t.test('stream chunks reach the client as the upstream sends them, after the commit point', async (t) => {
  const [up] = await startUpstreams(t, 1);
  const { url } = await startProxy(t, { channels: [{ name: 'a', url: up!.url }] });
  const delay = 120;
  const text = 'one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen';
  up!.setDefault(okStream(MODEL, { text, delayMs: delay }));
  const req = claudeCode(MODEL, true);
  const res = await send(url, { headers: req.headers, body: req.body });
  t.equal(res.status, 200);
  t.notOk(res.broken);

  // The time each event became readable at the client: the arrival of the chunk completing it.
  let seen = '';
  const arrivals: { event: string; at: number }[] = [];
  for (const c of res.chunks) {
    seen += c.data.toString('utf8');
    const names = [...seen.matchAll(/^event: (\S+)$/gm)].map((m) => m[1]!);
    for (let i = arrivals.length; i < names.length; i++) arrivals.push({ event: names[i]!, at: c.at });
  }
  const deltas = arrivals.filter((a) => a.event === 'content_block_delta');
  t.ok(deltas.length >= 5, `${deltas.length} text deltas`);
  // Before commit ccload holds message_start/content_block_start/ping; from the first delta on,
  // every event leaves as it comes: consecutive deltas arrive about `delay` apart, not in a burst.
  // (One short gap is tolerated: a loaded machine may deliver two writes in one read.)
  const gaps = deltas.slice(1).map((d, i) => d.at - deltas[i]!.at);
  const spaced = gaps.filter((g) => g >= delay * 0.5).length;
  t.ok(spaced >= gaps.length - 1, `gaps between deltas: ${gaps.map((g) => g.toFixed(0)).join(', ')} ms`);
  const first = deltas[0]!.at;
  const last = arrivals[arrivals.length - 1]!.at;
  t.ok(
    last - first >= delay * (arrivals.length - 5),
    `the first delta arrived ${(last - first).toFixed(0)} ms before the end, not with it`,
  );
  const stop = arrivals.findIndex((a) => a.event === 'message_stop');
  t.equal(stop, arrivals.length - 1, 'message_stop is the last event');
});

t.test(
  'request headers: forwarded unchanged, hop-by-hop and host stripped, credentials replaced',
  async (t) => {
    const [up] = await startUpstreams(t, 1);
    const { url } = await startProxy(t, {
      channels: [
        { name: 'a', url: up!.url, models: [MODEL] },
        { name: 'b', url: up!.url, models: ['claude-bearer'], auth: 'bearer' },
        { name: 'c', url: `${up!.url}/relay/`, models: ['claude-both'], auth: 'both' },
      ],
    });
    up!.setDefault({ kind: 'echo' });
    const req = claudeCode(MODEL, true);
    const headers: Record<string, string> = {
      ...req.headers,
      authorization: `Bearer ${CLIENT_TOKEN}`,
      host: 'ccload.example:8080',
      connection: 'keep-alive, X-Drop-Me',
      'x-drop-me': 'listed in connection',
      'keep-alive': 'timeout=5',
      te: 'trailers',
      'proxy-authorization': 'Basic c2VjcmV0',
      'x-custom-thing': 'Mixed Case Value',
      'x-timeout-ms': '5000',
      'anthropic-dangerous-direct-browser-access': 'true',
    };
    const res = await send(url, { path: '/v1/messages?beta=true', headers, body: req.body });
    t.equal(res.status, 200);
    const echo = res.json() as EchoBody;
    const h = echo.headers;
    t.equal(echo.url, '/v1/messages?beta=true', 'path and query string kept');
    for (const name of [
      'anthropic-version',
      'anthropic-beta',
      'anthropic-dangerous-direct-browser-access',
      'user-agent',
      'x-app',
      'x-claude-code-session-id',
      'x-stainless-arch',
      'x-stainless-lang',
      'x-stainless-os',
      'x-stainless-package-version',
      'x-stainless-retry-count',
      'x-stainless-runtime',
      'x-stainless-runtime-version',
      'x-stainless-timeout',
      'accept',
      'content-type',
      'x-custom-thing',
    ]) {
      t.equal(h[name], headers[name], `${name} forwarded unchanged`);
    }
    t.equal(h['x-api-key'], channelKey('a'), 'x-api-key is the channel key');
    t.equal(h.authorization, undefined, 'the client authorization is not forwarded');
    t.equal(h.host, `127.0.0.1:${up!.port}`, 'host is the upstream, not the client’s');
    for (const name of ['x-drop-me', 'keep-alive', 'te', 'proxy-authorization', 'x-timeout-ms']) {
      t.equal(h[name], undefined, `${name} not forwarded`);
    }
    t.not(h.connection, 'keep-alive, X-Drop-Me', 'the client connection header is not forwarded');
    t.equal(h['content-length'], String(req.body.length));
    t.equal(echo.body.length, req.body.length);
    t.equal(echo.body.sha256, createHash('sha256').update(req.body).digest('hex'));
    // Whatever the client sent, the token appears nowhere upstream.
    t.notOk(JSON.stringify(echo).includes(CLIENT_TOKEN), 'the client token never reaches the upstream');

    const bearer = await send(url, {
      path: '/v1/messages?beta=true&timeout_ms=9000',
      headers: { ...req.headers, authorization: `Bearer ${CLIENT_TOKEN}` },
      body: req.body.toString('utf8').replace(`"model":"${MODEL}"`, '"model":"claude-bearer"'),
    });
    const eb = bearer.json() as EchoBody;
    t.equal(eb.url, '/v1/messages?beta=true', 'timeout_ms is taken out of the query, the rest kept');
    t.equal(eb.headers.authorization, `Bearer ${channelKey('b')}`, 'auth: bearer sends the key as Bearer');
    t.equal(eb.headers['x-api-key'], undefined, 'and no x-api-key');

    const both = await send(url, {
      path: '/v1/messages?timeout_s=9',
      headers: req.headers,
      body: req.body.toString('utf8').replace(`"model":"${MODEL}"`, '"model":"claude-both"'),
    });
    const e2 = both.json() as EchoBody;
    t.equal(e2.url, '/relay/v1/messages', 'the base path is prepended, timeout_s dropped with its "?"');
    t.equal(e2.headers.authorization, `Bearer ${channelKey('c')}`);
    t.equal(e2.headers['x-api-key'], channelKey('c'));
  },
);

t.test('response headers pass through; hop-by-hop ones are dropped', async (t) => {
  const [up] = await startUpstreams(t, 1);
  const { url } = await startProxy(t, { channels: [{ name: 'a', url: up!.url }] });
  const limits = {
    'anthropic-ratelimit-requests-limit': '4000',
    'anthropic-ratelimit-requests-remaining': '3999',
    'anthropic-ratelimit-requests-reset': '2026-11-26T12:00:00Z',
    'x-upstream-extra': 'kept',
  };
  up!.enqueue(
    {
      kind: 'json',
      body: { type: 'message', ok: true },
      headers: { ...limits, connection: 'X-Hop', 'x-hop': '1' },
    },
    { ...okStream(MODEL), headers: { ...limits, 'keep-alive': 'timeout=5' } },
  );
  const json = await send(url, { body: { model: MODEL, messages: [], max_tokens: 1 } });
  t.equal(json.status, 200);
  for (const [k, v] of Object.entries(limits)) t.equal(json.headers[k], v, `${k} passes through`);
  t.equal(json.headers['x-hop'], undefined, 'a header listed in the upstream Connection is dropped');
  t.not(json.headers.connection, 'X-Hop');
  const sse = await send(url, { body: { model: MODEL, messages: [], max_tokens: 1, stream: true } });
  t.equal(sse.status, 200);
  for (const [k, v] of Object.entries(limits)) t.equal(sse.headers[k], v, `stream: ${k} passes through`);
  t.not(sse.headers['keep-alive'], 'timeout=5', 'the upstream keep-alive is not passed on');
});

t.test('a model_map rewrite changes only the model bytes', async (t) => {
  const [up] = await startUpstreams(t, 1);
  const { url, daemon } = await startProxy(t, {
    channels: [{ name: 'a', url: up!.url, modelMap: { 'claude-alias': 'claude-upstream-name-9' } }],
  });
  const req = claudeCode('claude-alias', true);
  const res = await send(url, { headers: req.headers, body: req.body });
  t.equal(res.status, 200);
  const got = up!.requests[0]!;
  const expected = Buffer.from(
    req.body.toString('utf8').replace('"model":"claude-alias"', '"model":"claude-upstream-name-9"'),
  );
  t.not(expected.length, req.body.length, 'the rewrite changes the length');
  t.same(got.body, expected, 'the upstream body is the client body with only the model replaced');
  t.equal(got.headers['content-length'], String(expected.length), 'content-length follows the rewrite');
  // The answer names the upstream's model, as the upstream said it (ccload does not rewrite answers).
  t.match(res.text(), /"model":"claude-upstream-name-9"/);
  const rows = await attempts(daemon, { requestId: res.requestId, atLeast: 1 });
  t.equal(rows[0]?.modelRequested, 'claude-alias');
  t.equal(rows[0]?.modelSent, 'claude-upstream-name-9');

  // A model without a mapping goes out byte for byte.
  const plain = claudeCode(MODEL, false);
  await send(url, { headers: plain.headers, body: plain.body });
  t.same(up!.requests[1]!.body, plain.body, 'unmapped: identical');
});

t.test('the channel key never reaches the client, whatever happens', async (t) => {
  const [a, b] = await startUpstreams(t, 2);
  const closed = await closedPortUrl();
  const keys = [channelKey('a', 0), channelKey('a', 1), channelKey('b'), channelKey('dead')];
  const { url, daemon } = await startProxy(t, {
    channels: [
      { name: 'dead', url: closed, priority: 30 },
      { name: 'a', url: a!.url, keys: [keys[0]!, keys[1]!], priority: 20 },
      { name: 'b', url: b!.url, priority: 10 },
    ],
    routing: { first_token: '400ms', idle: '400ms', base: '50ms', max: '200ms' },
  });
  const req = claudeCode(MODEL, true);
  const scenarios: [string, () => void][] = [
    ['stream', () => a!.setDefault(okStream(MODEL))],
    ['json (non-streaming)', () => a!.setDefault({ kind: 'answer' })],
    ['401 then next key', () => a!.enqueue({ kind: 'status', status: 401 })],
    [
      '429 everywhere',
      () => {
        a!.setDefault({ kind: 'status', status: 429, headers: { 'retry-after': '0' } });
        b!.setDefault({ kind: 'status', status: 429 });
      },
    ],
    [
      '500 everywhere',
      () => {
        a!.setDefault({ kind: 'status', status: 500 });
        b!.setDefault({ kind: 'status', status: 500 });
      },
    ],
    [
      'cut stream',
      () => {
        a!.setDefault(okStream(MODEL, { cutAfter: 5 }));
        b!.setDefault(okStream(MODEL, { cutAfter: 5 }));
      },
    ],
    [
      'stalled',
      () => {
        a!.setDefault({ kind: 'never' });
        b!.setDefault({ kind: 'headers-then-stall' });
      },
    ],
  ];
  for (const [name, arrange] of scenarios) {
    arrange();
    const body = name.startsWith('json') ? claudeCode(MODEL, false).body : req.body;
    const res = await send(url, { headers: req.headers, body, timeoutMs: 5000 });
    const bytes = res.allBytes();
    t.ok(bytes.length > 0, `${name}: status ${res.status}, ${res.body.length} body bytes`);
    for (const k of keys) t.equal(bytes.indexOf(k), -1, `${name}: ${k.slice(0, 16)}… not in the response`);
    t.equal(bytes.indexOf('SECRETc0ffee'), -1, `${name}: no part of a key either`);
    // Let the cooldowns of this scenario pass so the next one starts from the top again.
    a!.reset();
    b!.reset();
    await waitFor(() => coolingScopes(daemon).length === 0, { timeoutMs: 3000, message: 'cooldowns over' });
  }
});

t.test('a body of several MB is forwarded byte for byte, also through a model_map rewrite', async (t) => {
  const [up] = await startUpstreams(t, 1);
  const { url } = await startProxy(t, {
    channels: [{ name: 'a', url: up!.url, modelMap: { 'claude-alias': 'claude-upstream-name-9' } }],
  });
  up!.setDefault({ kind: 'echo' });
  for (const model of [MODEL, 'claude-alias']) {
    const req = claudeCode(model, false, 6_000_000);
    const res = await send(url, { headers: req.headers, body: req.body });
    t.equal(res.status, 200, `${model}: 200`);
    const expected =
      model === MODEL
        ? req.body
        : Buffer.from(
            req.body.toString('utf8').replace('"model":"claude-alias"', '"model":"claude-upstream-name-9"'),
          );
    const echo = res.json() as EchoBody;
    t.equal(echo.body.length, expected.length, `${model}: ${(expected.length / 1e6).toFixed(1)} MB arrived`);
    t.equal(echo.body.sha256, createHash('sha256').update(expected).digest('hex'), `${model}: same bytes`);
  }
});
