/**
 * The observability routes over real HTTP against a real daemon: who may call them, parameter
 * validation, and — end to end — a request that fails over between two fake upstreams, read back
 * from the log page, stats, trend, usage and the public summary.
 */
import t from 'tap';
import { request } from 'undici';
import { startFakeUpstream } from '../../src/dev/fake-upstream.js';
import { testConfig } from '../helpers/config.js';
import { startTestDaemon } from '../helpers/daemon.js';
import { type Answer, call, login } from '../helpers/http.js';
import { messagesBody } from '../helpers/messages.js';
import { waitFor } from '../helpers/wait.js';

const ADMIN = ['/admin/logs', '/admin/errors', '/admin/stats', '/admin/metrics', '/admin/usage'];

t.test('admin routes need a session (not the control token); the summary is public', async (t) => {
  const { daemon } = await startTestDaemon(t);
  const base = daemon.url;
  for (const path of ADMIN) {
    const anon = await call(base, 'GET', path);
    t.equal(anon.status, 401, `${path} without a session`);
    t.same(anon.json, { error: 'login required', code: 'login_required', message: 'login required' });
    t.equal(
      (await call(base, 'GET', path, { cookie: 'ccload_session=forged' })).status,
      401,
      `${path} with a forged cookie`,
    );
  }
  const cookie = await login(base);
  for (const path of ADMIN) {
    const res = await call(base, 'GET', path, { cookie });
    t.equal(res.status, 200, `${path} with a session`);
    t.match(res.headers['content-type'], /application\/json/);
  }
  const stats = await call(base, 'GET', '/admin/stats', { cookie });
  t.same(
    [stats.status, stats.json],
    [200, { stats: [], cache_read_share: { channels: [], tokens: [] } }],
    'an empty stats answer',
  );
  for (const path of ADMIN) {
    const control = await call(base, 'GET', path, {
      headers: { authorization: `Bearer ${daemon.app.controlToken}` },
    });
    t.equal(control.status, 401, `${path}: the control token only reloads and reads the config status`);
  }

  const summary = await call(base, 'GET', '/public/summary');
  t.equal(summary.status, 200, 'public summary without login');
  t.same(summary.json, {
    total_requests: 0,
    success_requests: 0,
    error_requests: 0,
    active_channels: 0,
    active_models: 0,
    hours: 24,
  });
  t.same((await call(base, 'GET', '/public/summary?hours=48')).json.hours, 48);
  t.same((await call(base, 'GET', '/admin/logs', { cookie })).json, [], 'an empty log is a bare empty array');
  t.equal((await call(base, 'GET', '/admin/logs', { cookie })).headers['x-total-count'], '0');
  t.same(
    (await call(base, 'GET', '/admin/metrics?hours=1&bucket_min=30', { cookie })).json.length,
    2,
    'zero-filled buckets',
  );
});

t.test('bad parameters are a 400 naming the parameter', async (t) => {
  const { daemon } = await startTestDaemon(t);
  const base = daemon.url;
  const cookie = await login(base);
  const cases: [string, RegExp][] = [
    ['/admin/logs?hours=0', /^hours must be an integer from 1 to 9600/],
    ['/admin/logs?hours=9601', /^hours must be/],
    ['/admin/logs?hours=abc', /^hours must be .*got "abc"/],
    ['/admin/logs?hours=1.5', /^hours must be/],
    ['/admin/logs?limit=0', /^limit must be an integer from 1 to 1000/],
    ['/admin/logs?limit=1001', /^limit must be/],
    ['/admin/errors?offset=-1', /^offset must be an integer from 0/],
    ['/admin/logs?status=abc', /^status must be an HTTP code/],
    ['/admin/logs?status=6xx', /^status must be/],
    ['/admin/stats?hours=-2', /^hours must be/],
    ['/admin/metrics?bucket_min=0', /^bucket_min must be an integer from 1 to 1440/],
    ['/admin/metrics?bucket_min=1441', /^bucket_min must be/],
    ['/admin/metrics?hours=9600&bucket_min=1', /makes 576000 buckets; at most 10000/],
    ['/admin/usage?hours=x', /^hours must be/],
    ['/public/summary?hours=0', /^hours must be/],
    [`/admin/logs?channel=${'x'.repeat(201)}`, /^channel is longer than 200 characters/],
  ];
  for (const [path, message] of cases) {
    const res = await call(base, 'GET', path, { cookie });
    t.equal(res.status, 400, path.slice(0, 60));
    t.match(res.json, { error: message, code: 'bad_parameter', message });
  }
  // Empty values mean "default" / "no filter", as the seed's forms send them.
  const empty = await call(base, 'GET', '/admin/logs?hours=&limit=&channel=&model=&token=&status=', {
    cookie,
  });
  t.equal(empty.status, 200);
  t.equal(
    (await call(base, 'GET', '/admin/logs?status=5XX&hours=9600&limit=1000&offset=0', { cookie })).status,
    200,
  );
});

t.test('end to end: a failover is two attempts, one client request, usage once', async (t) => {
  const main = await startFakeUpstream();
  const backup = await startFakeUpstream();
  t.teardown(() => main.close());
  t.teardown(() => backup.close());
  main.enqueue({ kind: 'status', status: 529 });
  const text = testConfig({
    tokens: [{ name: 'laptop', token: 'ccl-stats-test-token-0001' }],
    channels: [
      { name: 'main', url: main.url, priority: 10 },
      { name: 'backup', url: backup.url, priority: 5 },
    ],
    extra: 'pricing:\n  "claude-*": { input: 3, output: 15, cache_write: 3.75, cache_read: 0.3 }\n',
  });
  const { daemon } = await startTestDaemon(t, text);
  const base = daemon.url;
  const res = await request(`${base}/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': 'ccl-stats-test-token-0001' },
    body: messagesBody({ model: 'claude-sonnet-4-5' }),
  });
  await res.body.text();
  t.equal(res.statusCode, 200, 'the client got the backup’s answer');
  const cookie = await login(base);

  // The attempt log is written in the background: wait (bounded) until both attempts are in.
  let logs: Answer | undefined;
  await waitFor(
    async () => {
      logs = await call(base, 'GET', '/admin/logs', { cookie });
      return logs.json?.length === 2;
    },
    { timeoutMs: 5000, message: 'both attempts in /admin/logs' },
  );
  t.equal(logs!.headers['x-total-count'], '2');
  const [answer, failed] = logs!.json;
  t.match(failed, {
    channel_name: 'main',
    status_code: 529,
    final: false,
    attempt: 1,
    token: 'laptop',
    model: 'claude-sonnet-4-5',
    input_tokens: null,
    cost_usd: null,
  });
  t.match(answer, {
    channel_name: 'backup',
    status_code: 200,
    final: true,
    attempt: 2,
    message: '',
    input_tokens: 12,
    output_tokens: 9,
    cache_creation_tokens: 100,
    cache_read_tokens: 2000,
    request_id: failed.request_id,
  });
  for (const k of [
    'id',
    'time',
    'duration',
    'is_streaming',
    'first_byte_time',
    'endpoint',
    'model_sent',
    'key_fp',
  ]) {
    t.ok(k in answer, `log entry has ${k}`);
  }
  // (12·3 + 9·15 + 100·3.75 + 2000·0.3) / 1e6
  t.ok(Math.abs(answer.cost_usd - 0.001146) < 1e-12, `cost ${answer.cost_usd}`);
  t.same(
    (await call(base, 'GET', '/admin/errors', { cookie })).json,
    logs!.json,
    '/admin/errors is the same list',
  );
  t.same(
    (await call(base, 'GET', '/admin/logs?status=error', { cookie })).json.map(
      (e: { attempt: number }) => e.attempt,
    ),
    [1],
  );
  t.same((await call(base, 'GET', '/admin/logs?channel=backup&limit=1', { cookie })).json.length, 1);

  const stats = (await call(base, 'GET', '/admin/stats', { cookie })).json.stats;
  t.match(stats, [
    {
      channel_name: 'backup',
      model: 'claude-sonnet-4-5',
      success: 1,
      error: 0,
      total: 1,
      requests: 1,
      input_tokens: 12,
    },
    {
      channel_name: 'main',
      model: 'claude-sonnet-4-5',
      success: 0,
      error: 1,
      total: 1,
      requests: 0,
      input_tokens: 0,
    },
  ]);
  t.type(stats[0].latency_p50_ms, 'number', 'latency of the successful attempt');
  t.equal(stats[1].latency_p50_ms, null, 'no latency for a channel without successes');
  t.same((await call(base, 'GET', '/admin/stats?channel=main', { cookie })).json.stats.length, 1);

  const trend = (await call(base, 'GET', '/admin/metrics?hours=1&bucket_min=5', { cookie })).json;
  t.equal(trend.length, 12);
  t.same(
    [
      trend.reduce((s: number, p: { success: number }) => s + p.success, 0),
      trend.reduce((s: number, p: { error: number }) => s + p.error, 0),
    ],
    [1, 0],
    'the trend counts one successful client request',
  );
  t.ok(
    trend.every(
      (p: { ts: string }, i: number) => i === 0 || Date.parse(p.ts) - Date.parse(trend[i - 1].ts) === 300_000,
    ),
    'oldest first, every bucket present',
  );

  const usage = (await call(base, 'GET', '/admin/usage', { cookie })).json;
  t.match(usage, {
    hours: 24,
    usage: [{ token: 'laptop', requests: 1, success: 1, error: 0, attempts: 2, input_tokens: 12 }],
  });
  t.same((await call(base, 'GET', '/public/summary')).json, {
    total_requests: 1,
    success_requests: 1,
    error_requests: 0,
    active_channels: 2,
    active_models: 1,
    hours: 24,
  });
});
