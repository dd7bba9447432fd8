/**
 * End to end, what ccload answers itself: client-token auth (x-api-key, Bearer, both), the open
 * proxy, body limits and malformed requests, `GET /v1/models`, and count_tokens routing — every
 * error Anthropic-shaped, none of them reaching an upstream.
 */
import t from 'tap';
import { errorBody } from '../../src/dev/anthropic-shapes.js';
import { MODEL, messagesBody } from '../helpers/messages.js';
import {
  anthropicErrorOf,
  attempts,
  claudeCode,
  coolingScopes,
  send,
  startProxy,
  startUpstreams,
  twoChannels,
} from './e2e-helpers.js';

const ALICE = 'ccl-alice-token-3b9d0e';
const BOB = 'ccl-bob-token-51c2aa';

t.test('client tokens: x-api-key and Bearer both work; with both headers either may match', async (t) => {
  const [a] = await startUpstreams(t, 1);
  const { url, daemon } = await startProxy(t, {
    channels: [{ name: 'a', url: a!.url }],
    tokens: [
      { name: 'alice', token: ALICE },
      { name: 'bob', token: BOB },
    ],
  });
  const body = messagesBody();
  const accepted: [string, Record<string, string>, string][] = [
    ['x-api-key', { 'x-api-key': ALICE }, 'alice'],
    ['Bearer', { authorization: `Bearer ${BOB}` }, 'bob'],
    [
      'wrong x-api-key, right Bearer',
      { 'x-api-key': 'sk-ant-unrelated', authorization: `Bearer ${ALICE}` },
      'alice',
    ],
    ['right x-api-key, wrong Bearer', { 'x-api-key': BOB, authorization: 'Bearer nope' }, 'bob'],
  ];
  for (const [name, headers, who] of accepted) {
    const res = await send(url, {
      headers: { 'content-type': 'application/json', ...headers },
      rawHeadersOnly: true,
      body,
    });
    t.equal(res.status, 200, `${name}: accepted`);
    const rows = await attempts(daemon, { requestId: res.requestId, atLeast: 1 });
    t.equal(rows[0]?.token, who, `${name}: logged as ${who}`);
  }
  const rejected: [string, Record<string, string>, RegExp][] = [
    ['wrong x-api-key', { 'x-api-key': 'ccl-guess' }, /invalid/],
    ['wrong Bearer', { authorization: 'Bearer ccl-guess' }, /invalid/],
    ['both wrong', { 'x-api-key': 'x', authorization: 'Bearer y' }, /invalid/],
    ['a token in the wrong scheme', { authorization: `Basic ${ALICE}` }, /missing/],
    ['missing', {}, /missing/],
  ];
  const before = a!.requests.length;
  for (const [name, headers, message] of rejected) {
    const res = await send(url, {
      headers: { 'content-type': 'application/json', ...headers },
      rawHeadersOnly: true,
      body,
    });
    t.equal(res.status, 401, `${name}: 401`);
    t.equal(res.headers['content-type'], 'application/json');
    const err = anthropicErrorOf(res.body);
    t.equal(err?.type, 'authentication_error', `${name}: Anthropic-shaped`);
    t.match(err?.message, message);
    t.notOk(res.text().includes(ALICE) || res.text().includes(BOB), 'no token echoed');
  }
  t.equal(a!.requests.length, before, 'nothing rejected reached the upstream');
  const models = await send(url, { path: '/v1/models', rawHeadersOnly: true, headers: {} });
  t.equal(models.status, 401, '/v1/models needs a token too');
});

t.test('no tokens configured: an open proxy', async (t) => {
  const [a] = await startUpstreams(t, 1);
  const { url, daemon } = await startProxy(t, { channels: [{ name: 'a', url: a!.url }], tokens: [] });
  const res = await send(url, {
    headers: { 'content-type': 'application/json' },
    rawHeadersOnly: true,
    body: messagesBody(),
  });
  t.equal(res.status, 200);
  const rows = await attempts(daemon, { requestId: res.requestId, atLeast: 1 });
  t.equal(rows[0]?.token, null, 'no token name');
  // Regression: the open proxy's "no token needed" answer was read as a refusal, so /v1/models hung.
  const models = await send(url, { path: '/v1/models', rawHeadersOnly: true, headers: {} });
  t.equal(models.status, 200, '/v1/models answers on an open proxy');
});

t.test('a body over server.max_body gets 413 request_too_large', async (t) => {
  const [a] = await startUpstreams(t, 1);
  const { url } = await startProxy(t, { channels: [{ name: 'a', url: a!.url }], maxBody: '64KiB' });
  const big = claudeCode(MODEL, true, 100_000);
  const declared = await send(url, { headers: big.headers, body: big.body });
  t.equal(declared.status, 413, 'declared content-length over the limit');
  t.equal(anthropicErrorOf(declared.body)?.type, 'request_too_large');
  const chunked = await send(url, {
    headers: { ...big.headers, 'transfer-encoding': 'chunked' },
    body: big.body,
  });
  t.equal(chunked.status, 413, 'chunked, counted while reading');
  t.equal(anthropicErrorOf(chunked.body)?.type, 'request_too_large');
  t.equal(a!.requests.length, 0, 'nothing forwarded');
  const fits = claudeCode(MODEL, true, 60_000);
  t.equal((await send(url, { headers: fits.headers, body: fits.body })).status, 200, 'just under: served');
});

t.test('malformed requests get 400 invalid_request_error', async (t) => {
  const [a] = await startUpstreams(t, 1);
  const { url } = await startProxy(t, { channels: [{ name: 'a', url: a!.url }] });
  const bad: [string, string][] = [
    ['not JSON', '{"model": "claude-sonnet-5-5", "messages": ['],
    ['no model', '{"messages":[],"max_tokens":1}'],
    ['model not a string', '{"model":42,"messages":[]}'],
    ['an array', '[{"model":"claude-sonnet-5-5"}]'],
    ['empty', ''],
  ];
  for (const [name, body] of bad) {
    const res = await send(url, { method: 'POST', body: Buffer.from(body) });
    t.equal(res.status, 400, `${name}: 400`);
    t.equal(anthropicErrorOf(res.body)?.type, 'invalid_request_error', `${name}: invalid_request_error`);
  }
  t.equal(a!.requests.length, 0, 'nothing forwarded');
  const wrongMethod = await send(url, { method: 'GET', path: '/v1/messages' });
  t.equal(wrongMethod.status, 405);
  t.equal(anthropicErrorOf(wrongMethod.body)?.type, 'invalid_request_error');
  const unknown = await send(url, { method: 'POST', path: '/v1/complete', body: messagesBody() });
  t.equal(unknown.status, 404);
  t.equal(anthropicErrorOf(unknown.body)?.type, 'not_found_error');
});

t.test('GET /v1/models lists the exact models and model_map aliases of enabled channels', async (t) => {
  const [a, b] = await startUpstreams(t, 2);
  const { url } = await startProxy(t, {
    channels: [
      {
        name: 'a',
        url: a!.url,
        models: ['claude-opus-5-5', 'claude-*', 'sonnet'],
        modelMap: { sonnet: 'claude-sonnet-5-5' },
      },
      { name: 'b', url: b!.url, models: ['claude-opus-5-5', 'claude-only-b'] },
      // Every model (nothing to list) plus an alias (listed).
      { name: 'c', url: b!.url, modelMap: { haiku: 'claude-haiku-5-5' } },
      { name: 'off', url: b!.url, models: ['claude-disabled'], enabled: false },
    ],
  });
  const res = await send(url, { path: '/v1/models?limit=1000' });
  t.equal(res.status, 200);
  const list = res.json() as { data: { type: string; id: string }[]; has_more: boolean; first_id: string };
  t.same(
    list.data.map((m) => m.id),
    ['claude-opus-5-5', 'sonnet', 'claude-only-b', 'haiku'],
    'exact names and aliases, once each, no globs, nothing disabled',
  );
  t.ok(list.data.every((m) => m.type === 'model'));
  t.equal(list.has_more, false);
  t.equal(list.first_id, 'claude-opus-5-5');
  const one = await send(url, { path: '/v1/models/haiku' });
  t.equal(one.status, 200);
  t.equal((one.json() as { id: string }).id, 'haiku');
  const none = await send(url, { path: '/v1/models/claude-disabled' });
  t.equal(none.status, 404);
  t.equal(anthropicErrorOf(none.body)?.type, 'not_found_error');
  t.equal(a!.requests.length + b!.requests.length, 0, 'answered locally');
});

t.test('count_tokens is routed like messages; its 4xx fail over but never cool', async (t) => {
  const { a, b, url, daemon } = await twoChannels(t);
  const req = claudeCode(MODEL, false);
  const counted = await send(url, {
    path: '/v1/messages/count_tokens?beta=true',
    headers: req.headers,
    body: req.body,
  });
  t.equal(counted.status, 200);
  t.ok((counted.json() as { input_tokens: number }).input_tokens > 1000, 'the upstream’s count');
  t.equal(a.requests[0]?.url, '/v1/messages/count_tokens?beta=true');
  t.same(a.requests[0]?.body, req.body, 'body unchanged');

  // A relay without the route (404), then a rate limit (429): b answers, a is not cooled.
  a.handle((r) =>
    r.path.endsWith('/count_tokens')
      ? { kind: 'status', status: 404, body: errorBody('not_found_error', 'Not Found') }
      : undefined,
  );
  const relayed = await send(url, {
    path: '/v1/messages/count_tokens',
    headers: req.headers,
    body: req.body,
  });
  t.equal(relayed.status, 200, 'the next channel counted');
  t.equal(b.requests.length, 1);
  a.handle((r) => (r.path.endsWith('/count_tokens') ? { kind: 'status', status: 429 } : undefined));
  await send(url, { path: '/v1/messages/count_tokens', headers: req.headers, body: req.body });
  t.same(coolingScopes(daemon), [], 'no cooldown from count_tokens 4xx');
  const rows = await attempts(daemon, { atLeast: 5 });
  t.same(
    rows.map((r) => [r.endpoint, r.channel, r.status]),
    [
      ['count_tokens', 'a', 200],
      ['count_tokens', 'a', 404],
      ['count_tokens', 'b', 200],
      ['count_tokens', 'a', 429],
      ['count_tokens', 'b', 200],
    ],
  );
  const msg = await send(url, { headers: req.headers, body: req.body });
  t.equal(msg.status, 200);
  t.equal(a.requests.at(-1)?.path, '/v1/messages', 'messages still go to a');
});
