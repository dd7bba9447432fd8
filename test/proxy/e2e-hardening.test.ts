/**
 * End to end, what an attacker could get out of the proxy path (issue 10): the client's cookies and
 * address headers reaching an upstream, channel keys echoed back by an upstream's error text, and
 * metric series a client can create at will.
 */
import t from 'tap';
import { MODEL, messagesBody, proxyConfig, send, startProxy, startUpstreams } from './e2e-helpers.js';

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
  const res = await send(url, { headers: { ...ADDRESS_HEADERS, cookie: COOKIE }, body: messagesBody(MODEL) });
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
  const invented = Array.from(
    { length: 100 },
    (_, i) => `claude-${i % 4 === 0 ? 'err-' : ''}${Math.random().toString(36).slice(2, 12)}`,
  );
  const models = [...invented, MODEL, 'claude-alias'];
  for (let i = 0; i < models.length; i += 10) {
    const batch = await Promise.all(models.slice(i, i + 10).map((m) => send(url, { body: messagesBody(m) })));
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
