/**
 * End to end, what an attacker could get out of the proxy path (issue 10): the client's cookies and
 * address headers reaching an upstream, channel keys echoed back by an upstream's error text, and
 * metric series a client can create at will.
 */
import { gzipSync } from 'node:zlib';
import t, { type Test } from 'tap';
import { encodeSse, messageStreamEvents } from '../../src/dev/anthropic-shapes.js';
import type { FakeRequest, StreamBehaviour } from '../../src/dev/fake-upstream.js';
import { startTestDaemon } from '../helpers/daemon.js';
import { call, login } from '../helpers/http.js';
import { MODEL, messagesBody } from '../helpers/messages.js';
import { prng } from '../helpers/random.js';
import { waitFor } from '../helpers/wait.js';
import { captureLog } from '../store/helpers.js';
import {
  anthropicErrorOf,
  attempts,
  channelKey,
  closedPortUrl,
  proxyConfig,
  send,
  sseEvents,
  startProxy,
  startUpstreams,
} from './e2e-helpers.js';

const ADDRESS_HEADERS: Record<string, string> = {
  'x-forwarded-for': '203.0.113.7, 10.0.0.2',
  'x-forwarded-host': 'ccload.internal.example',
  'x-forwarded-proto': 'https',
  'x-forwarded-port': '443',
  forwarded: 'for=203.0.113.7;proto=https;host=ccload.internal.example',
  'x-real-ip': '203.0.113.7',
  'true-client-ip': '203.0.113.7',
  'cf-connecting-ip': '203.0.113.7',
};
const COOKIE = 'ccload_session=0123456789abcdef0123456789abcdef; theme=dark';

t.test(
  'regression: client cookies and address headers do not reach the upstream (issue 10, finding 13)',
  async (t) => {
    const [up] = await startUpstreams(t, 1);
    const { url } = await startProxy(t, { channels: [{ name: 'a', url: up!.url }] });
    const res = await send(url, {
      headers: { ...ADDRESS_HEADERS, cookie: COOKIE, 'x-custom-thing': 'kept' },
      body: messagesBody(),
    });
    t.equal(res.status, 200);
    const got = up!.requests.at(-1)!;
    t.equal(got.headers.cookie, undefined, 'cookie is dropped');
    for (const name of Object.keys(ADDRESS_HEADERS))
      t.equal(got.headers[name], undefined, `${name} is dropped`);
    t.equal(got.headers['x-custom-thing'], 'kept', 'other headers still pass');
    t.notOk(got.rawHeaders.join('\n').includes('203.0.113.7'), 'the client address appears nowhere');
    t.notOk(got.rawHeaders.join('\n').includes('0123456789abcdef'), 'the session id appears nowhere');
  },
);

t.test('server.forward_client_address: true passes the address headers, never the cookie', async (t) => {
  const [up] = await startUpstreams(t, 1);
  const text = proxyConfig({ channels: [{ name: 'a', url: up!.url }] }).replace(
    'server:\n',
    'server:\n  forward_client_address: true\n',
  );
  const { url } = await startProxy(t, text);
  const res = await send(url, { headers: { ...ADDRESS_HEADERS, cookie: COOKIE }, body: messagesBody() });
  t.equal(res.status, 200);
  const got = up!.requests.at(-1)!;
  for (const [name, value] of Object.entries(ADDRESS_HEADERS))
    t.equal(got.headers[name], value, `${name} forwarded unchanged`);
  t.equal(got.headers.cookie, undefined, 'cookie is still dropped');
});

/** The distinct values of `label` on the series of `metric` in a Prometheus text. */
function labelValues(text: string, metric: string, label: string): Set<string> {
  const out = new Set<string>();
  const re = new RegExp(`^${metric}\\{([^}]*)\\}`, 'gm');
  for (const m of text.matchAll(re)) {
    const v = new RegExp(`(?:^|,)${label}="((?:[^"\\\\]|\\\\.)*)"`).exec(m[1]!);
    if (v) out.add(v[1]!);
  }
  return out;
}

t.test('regression: models a client invents do not become metric series (issue 10, finding 9)', async (t) => {
  const [up] = await startUpstreams(t, 1);
  const { url } = await startProxy(t, {
    channels: [{ name: 'a', url: up!.url, models: [MODEL, 'claude-*'], modelMap: { 'claude-alias': MODEL } }],
  });
  // Models starting `claude-err-` get an `event: error` naming the model before any content: a
  // failure whose reason would carry upstream text into the cooldown metric's label.
  up!.handle((req) =>
    req.model?.startsWith('claude-err-')
      ? {
          kind: 'stream',
          events: [
            {
              event: 'error',
              data: { type: 'error', error: { type: 'overloaded_error', message: `busy: ${req.model}` } },
            },
          ],
        }
      : undefined,
  );
  const rnd = prng(9);
  const invented = Array.from(
    { length: 100 },
    (_, i) => `claude-${i % 4 === 0 ? 'err-' : ''}${rnd().toString(36).slice(2, 12)}`,
  );
  const models = [...invented, MODEL, 'claude-alias'];
  for (let i = 0; i < models.length; i += 10) {
    const batch = await Promise.all(
      models.slice(i, i + 10).map((m) => send(url, { body: messagesBody({ model: m }) })),
    );
    for (const [j, r] of batch.entries()) {
      const m = models[i + j]!;
      t.equal(r.status, m.startsWith('claude-err-') ? 502 : 200, `${m}: answered`);
    }
  }
  const metrics = await send(url, { method: 'GET', path: '/metrics' });
  t.equal(metrics.status, 200);
  const text = metrics.text();
  for (const metric of [
    'ccload_attempts_total',
    'ccload_tokens_total',
    'ccload_failovers_total',
    'ccload_cost_usd_total',
  ]) {
    const seen = labelValues(text, metric, 'model');
    t.ok(seen.size <= 3, `${metric}: ${seen.size} model label values (${[...seen].slice(0, 5).join(', ')})`);
    for (const v of seen)
      t.ok(['other', MODEL, 'claude-alias'].includes(v), `${metric}: ${v} is a configured name or other`);
  }
  t.same(
    [...labelValues(text, 'ccload_attempts_total', 'model')].sort(),
    [MODEL, 'claude-alias', 'other'].sort(),
    'configured names keep their own series; the rest are other',
  );
  const reasons = labelValues(text, 'ccload_cooldowns_entered_total', 'reason');
  t.same([...reasons], ['error event before commit'], 'the cooldown reason label carries no upstream text');
  t.notOk(text.includes('busy: '), 'no upstream error message in /metrics');
});

// --- Finding 7: upstream error text that echoes keys ---------------------------------------------

const K0 = channelKey('a', 0);
const K1 = channelKey('a', 1);
/** The fingerprints ccload shows instead of the keys. */
const FP0 = `…${K0.slice(-4)}`;
const FP1 = `…${K1.slice(-4)}`;

/** The key a request carried upstream. */
function usedKey(req: FakeRequest): string {
  return String(req.headers['x-api-key']);
}

/** An Anthropic error body whose message echoes the key used and, like some relays, every key of the account. */
function echoingError(req: FakeRequest): Record<string, unknown> {
  return {
    type: 'error',
    error: {
      type: 'authentication_error',
      message: `invalid x-api-key: ${usedKey(req)} (account keys: ${K0}, ${K1})`,
    },
  };
}

/** Fails the test when any byte sequence of a key is in `bytes`. */
function noKeys(t: Test, what: string, bytes: Buffer | string): void {
  const text = typeof bytes === 'string' ? bytes : bytes.toString('utf8');
  for (const k of [K0, K1]) t.notOk(text.includes(k), `${what}: no ${k.slice(0, 14)}… in it`);
  // Nor a long piece of one (a key cut in two halves by chunking, then half scrubbed).
  for (const k of [K0, K1]) t.notOk(text.includes(k.slice(-16)), `${what}: not even its tail`);
}

t.test(
  'regression: a failure status that echoes the channel keys reaches the client scrubbed (issue 10, finding 7)',
  async (t) => {
    const [up] = await startUpstreams(t, 1);
    const { url } = await startProxy(t, { channels: [{ name: 'a', url: up!.url, keys: [K0, K1] }] });
    // 401 on every key: both attempts fail over, the client gets the last upstream answer.
    up!.handle((req) => ({
      kind: 'status',
      status: 401,
      body: echoingError(req),
      headers: { 'x-upstream-debug': `rejected key=${usedKey(req)}` },
    }));
    const r401 = await send(url, { body: messagesBody() });
    t.equal(r401.status, 401, `the upstream status passes (${r401.text()})`);
    noKeys(t, '401 answer', r401.allBytes());
    const e = anthropicErrorOf(r401.body);
    t.equal(e?.type, 'authentication_error', 'still the upstream error shape');
    t.match(
      e?.message,
      `invalid x-api-key: ${FP1} (account keys: ${FP0}, ${FP1})`,
      'keys shown as fingerprints',
    );
    t.equal(
      r401.headers['x-upstream-debug'],
      `rejected key=...${K1.slice(-4)}`,
      'header values scrubbed too (in ASCII)',
    );
    t.equal(r401.headers['content-length'], String(r401.body.length), 'content-length of the scrubbed body');

    // 400 is returned as is (no failover): same scrubbing.
    up!.handle((req) => ({ kind: 'status', status: 400, body: echoingError(req) }));
    const r400 = await send(url, { body: messagesBody() });
    t.equal(r400.status, 400);
    noKeys(t, '400 answer', r400.allBytes());

    // A relay that compresses its error body although ccload asked for identity.
    up!.handle((req) => ({
      kind: 'status',
      status: 400,
      body: gzipSync(Buffer.from(JSON.stringify(echoingError(req)))),
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
    }));
    const gz = await send(url, { body: messagesBody() });
    t.equal(gz.status, 400);
    t.equal(gz.headers['content-encoding'], undefined, 'sent decoded');
    noKeys(t, 'gzip answer', gz.allBytes());
    t.match(anthropicErrorOf(gz.body)?.message, FP0, 'readable, with fingerprints');

    // An encoding ccload cannot read is not passed on unread.
    up!.handle(() => ({
      kind: 'status',
      status: 400,
      body: Buffer.from('opaque'),
      headers: { 'content-type': 'application/json', 'content-encoding': 'zstd' },
    }));
    const zs = await send(url, { body: messagesBody() });
    t.equal(zs.status, 400);
    t.equal(zs.headers['content-encoding'], undefined);
    t.match(anthropicErrorOf(zs.body)?.message, 'cannot read (zstd)');
  },
);

t.test(
  'regression: an error event that echoes keys is scrubbed before and after the commit point (issue 10, finding 7)',
  async (t) => {
    const [up] = await startUpstreams(t, 1);
    const { url, daemon } = await startProxy(t, { channels: [{ name: 'a', url: up!.url, keys: [K0, K1] }] });

    // Before commit: the error event fails the attempt over; its message ends up in the client's
    // error, the cooldown reason (dashboard, admin API, database).
    up!.handle((req) => ({
      kind: 'stream',
      events: [{ event: 'error', data: echoingError(req) }],
    }));
    const before = await send(url, { body: messagesBody({ stream: true }) });
    t.equal(before.status, 502);
    noKeys(t, 'error before commit', before.allBytes());
    t.match(anthropicErrorOf(before.body)?.message, FP0, 'the reason names the fingerprint');
    const reasons = [...daemon.app.proxyState.cooldowns.entries.values()].map((e) => e.reason);
    t.ok(reasons.length > 0, 'the channel cooled');
    noKeys(t, 'cooldown reasons in memory', reasons.join('\n'));
    await waitFor(
      async () => {
        const rows = await daemon.app.db.client.execute('SELECT * FROM cooldowns');
        return rows.rows.length > 0;
      },
      { timeoutMs: 3000, message: 'cooldowns written' },
    );
    const stored = await daemon.app.db.client.execute('SELECT * FROM cooldowns');
    noKeys(t, 'cooldowns table', JSON.stringify(stored.rows));
    noKeys(t, 'attempts table', JSON.stringify(await attempts(daemon, { atLeast: 1 })));
    daemon.app.proxyState.clearChannel('a');

    // After commit, split into 7-byte writes: the key is cut across chunks, and the error event
    // must still reach the client whole and scrubbed, with everything around it unchanged.
    const events = messageStreamEvents({
      model: MODEL,
      text: 'Partial answer',
      usage: { input_tokens: 1, output_tokens: 1 },
    });
    const deltaAt = events.findIndex((e) => e.event === 'content_block_delta');
    for (const chunking of [7, 'random', 'event'] as const) {
      up!.handle((req) => {
        const b: StreamBehaviour = {
          kind: 'stream',
          chunking,
          seed: 7,
          delayMs: 1,
          events: [...events.slice(0, deltaAt + 1), { event: 'error', data: echoingError(req) }],
        };
        return b;
      });
      const after = await send(url, { body: messagesBody({ stream: true }) });
      t.equal(after.status, 200, `${chunking}: committed`);
      noKeys(t, `${chunking}: error after commit`, after.allBytes());
      const got = sseEvents(after.body);
      const error = got.find((e) => e.event === 'error');
      t.match(error?.data, `invalid x-api-key: ${FP0}`, `${chunking}: the error event arrived, scrubbed`);
      const expected = encodeSse([
        ...events.slice(0, deltaAt + 1),
        {
          event: 'error',
          data: JSON.parse(
            JSON.stringify(echoingError(up!.requests.at(-1)!))
              .replaceAll(K0, FP0)
              .replaceAll(K1, FP1),
          ),
        },
      ]);
      t.equal(
        after.body.toString('utf8'),
        expected.toString('utf8'),
        `${chunking}: every other byte unchanged`,
      );
      daemon.app.proxyState.clearChannel('a');
    }
  },
);

t.test(
  'regression: what a channel url hides (its references) stays out of failure texts everywhere (issue 10, finding 7 follow-up)',
  async (t) => {
    const [up] = await startUpstreams(t, 1);
    const dead = new URL(await closedPortUrl());
    const env = {
      RELAY_PORT: new URL(up!.url).port,
      RELAY_PATH: 'tenant-4f2a9c-private-prefix',
      DEAD_HOST: dead.hostname, // 127.0.0.1: stands for a host name that must not be shown
    };
    const text = proxyConfig({
      channels: [
        { name: 'relay', url: 'http://127.0.0.1:${RELAY_PORT}/${RELAY_PATH}', priority: 20 },
        { name: 'down', url: `http://\${DEAD_HOST}:${dead.port}/`, priority: 10 },
      ],
    });
    const cap = captureLog();
    const { daemon } = await startTestDaemon(t, text, { env, log: cap.log });
    // A relay whose error quotes the path it was asked for (which holds the referenced prefix).
    const quoting = (status: number) => (req: FakeRequest) => ({
      kind: 'status' as const,
      status,
      body: { type: 'error', error: { type: 'api_error', message: `no backend for ${req.path}` } },
    });
    const hidden = [env.RELAY_PATH, `${dead.hostname}:${dead.port}`];
    const clean = (what: string, s: string) => {
      for (const h of hidden) t.notOk(s.includes(h), `${what}: no ${h}`);
    };

    // 400 is passed to the client as is (scrubbed).
    up!.handle(quoting(400));
    const r400 = await send(daemon.url, { body: messagesBody() });
    t.equal(r400.status, 400);
    clean('client answer', r400.body.toString('utf8'));
    t.match(anthropicErrorOf(r400.body)?.message, 'no backend for /${RELAY_PATH}/v1/messages');
    // 502 fails over to the dead channel: cooldowns, attempt rows, the final error.
    up!.handle(quoting(502));
    const r = await send(daemon.url, { body: messagesBody() });
    t.ok(r.status >= 500, `failed (${r.status})`);
    clean('client answer after failover', r.body.toString('utf8'));
    const rows = await attempts(daemon, { atLeast: 2 });
    clean('attempts table', JSON.stringify(rows));
    t.ok(
      rows.some((row) => row.channel === 'relay' && row.status === 502),
      'the relay was tried',
    );
    const reasons = [...daemon.app.proxyState.cooldowns.entries.values()].map((e) => e.reason);
    clean('cooldown reasons', reasons.join('\n'));
    await waitFor(
      async () => (await daemon.app.db.client.execute('SELECT * FROM cooldowns')).rows.length > 0,
      { timeoutMs: 3000, message: 'cooldowns written' },
    );
    clean(
      'cooldowns table',
      JSON.stringify((await daemon.app.db.client.execute('SELECT * FROM cooldowns')).rows),
    );
    const cookie = await login(daemon.url);
    const channels = await call(daemon.url, 'GET', '/admin/channels', { cookie });
    clean('GET /admin/channels', channels.text);
    const page = await call(daemon.url, 'GET', '/channels', { cookie });
    clean('channels page', page.text);

    const test = await call(daemon.url, 'POST', '/admin/channels/relay/test', {
      cookie,
      body: { model: MODEL },
    });
    clean('channel test (upstream error)', test.text);
    t.match(test.json.error, '${RELAY_PATH}');
    const down = await call(daemon.url, 'POST', '/admin/channels/down/test', {
      cookie,
      body: { model: MODEL },
    });
    clean('channel test (connect failure)', down.text);
    t.match(down.json.error, `ECONNREFUSED \${DEAD_HOST}:${dead.port}`, 'the host shown as its reference');
    clean('log', cap.lines.map((l) => JSON.stringify(l)).join('\n'));
  },
);
