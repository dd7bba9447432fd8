/**
 * End to end, operator policy on a running daemon: token allow-lists (model, channel, both, globs),
 * a token's concurrency limit under parallel requests, a daily budget crossed mid-day on a manual
 * clock, reset at the time zone's midnight and restored after a restart, shared by two instances on
 * one database; the all-cooling fallback staying inside a token's channels; channel caps skipping a
 * channel without cooling it, and waiting only when nothing else is left.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ok } from '../../src/dev/fake-upstream.js';
import { testEnv } from '../helpers/config.js';
import { call as http, login } from '../helpers/http.js';
import { MODEL, messagesBody } from '../helpers/messages.js';
import {
  anthropicErrorOf,
  attempts,
  channelKey,
  coolingScopes,
  send,
  startProxy,
  startUpstreams,
} from './e2e-helpers.js';

const ALICE = 'ccl-alice-policy-token-01';
const CI = 'ccl-ci-policy-token-00002';
const OPEN = 'ccl-open-policy-token-003';

interface Ch {
  name: string;
  url: string;
  priority?: number;
  models?: string[];
  extra?: string[];
}

const q = (s: string) => JSON.stringify(s);

/** A config with policy keys; tokens and channels as YAML lines. */
function policyConfig(o: { tokens: string[]; channels: Ch[]; routing?: string[]; extra?: string[] }): string {
  const lines = [
    'version: 1',
    'server:',
    '  listen: 127.0.0.1:0',
    '  database: file:state/ccload.db',
    'admin:',
    '  password: ${TEST_PASS}',
    'auth:',
    ...o.tokens.map((l) => `  ${l}`),
    'routing:',
    '  cooldown: { base: 300ms, max: 2s }',
    '  timeouts: { connect: 1s, first_token: 5s, idle: 5s }',
    ...(o.routing ?? ['  cooling_wait: 1s']),
    'pricing:',
    // 12 input tokens (the fake's default usage) at 250 000 USD per million, cache tokens free: $3 per answer.
    `  ${q(MODEL)}: { input: 250000, output: 0, cache_write: 0, cache_write_1h: 0, cache_read: 0 }`,
    ...(o.extra ?? []),
    'channels:',
  ];
  for (const c of o.channels) {
    lines.push(`  - name: ${q(c.name)}`, `    url: ${q(c.url)}`, `    api_key: ${q(channelKey(c.name))}`);
    lines.push(`    priority: ${c.priority ?? 10}`);
    if (c.models) lines.push(`    models: [${c.models.map(q).join(', ')}]`);
    for (const l of c.extra ?? []) lines.push(`    ${l}`);
  }
  return `${lines.join('\n')}\n`;
}

const as = (token: string) => ({ 'content-type': 'application/json', 'x-api-key': token });

t.test(
  'allow-lists: model and channel globs, both; refused before routing with the rule named',
  async (t) => {
    const [a, b, relay] = await startUpstreams(t, 3);
    const { url, daemon } = await startProxy(
      t,
      policyConfig({
        tokens: [
          'tokens:',
          `  - { name: alice, token: ${ALICE}, models: ["claude-sonnet-*"], channels: ["company-*"] }`,
          `  - { name: ci, token: ${CI}, models: [claude-haiku-5-5] }`,
          `  - { name: open, token: ${OPEN} }`,
        ],
        channels: [
          { name: 'company-a', url: a!.url, models: ['claude-sonnet-*'] },
          { name: 'company-b', url: b!.url, models: ['claude-sonnet-*'] },
          { name: 'relay', url: relay!.url, priority: 20 },
        ],
      }),
    );

    const rows: [string, string, string, number, string | undefined][] = [
      ['alice, sonnet (model glob): a company channel', ALICE, MODEL, 200, undefined],
      ['alice, opus: not in her models', ALICE, 'claude-opus-5-5', 403, 'may not use model claude-opus-5-5'],
      ['ci, haiku: exact model', CI, 'claude-haiku-5-5', 200, undefined],
      ['ci, sonnet: not his', CI, MODEL, 403, 'may not use model'],
      ['open token: anything, relay first', OPEN, 'claude-opus-5-5', 200, undefined],
    ];
    for (const [name, token, model, status, message] of rows) {
      const before = a!.requests.length + b!.requests.length + relay!.requests.length;
      const res = await send(url, {
        headers: as(token),
        rawHeadersOnly: true,
        body: messagesBody({ model: model }),
      });
      t.equal(res.status, status, name);
      if (message) {
        const err = anthropicErrorOf(res.body);
        t.equal(err?.type, 'permission_error', `${name}: permission_error`);
        t.match(err?.message, message, `${name}: names the rule`);
        t.match(err?.message, /auth\.tokens\[\]\.models/);
        t.equal(
          a!.requests.length + b!.requests.length + relay!.requests.length,
          before,
          `${name}: no upstream saw it`,
        );
        t.ok(res.requestId, 'a request id to find it in the log');
      }
    }
    t.equal(relay!.requests.filter((r) => r.headers['x-api-key'] === channelKey('relay')).length, 2);
    t.equal(
      a!.requests.length + b!.requests.length,
      1,
      "alice's request went to a company channel, not the relay",
    );

    // Refusals are in the log with their reason.
    const rows2 = await attempts(daemon, { atLeast: 5 });
    const refused = rows2.filter((r) => r.errorClass === 'CCL_TOKEN_MODEL');
    t.equal(refused.length, 2, 'both refusals recorded');
    t.match(refused[0], { channel: null, status: 403, token: 'alice', attempt: 0, final: true });
    // On the Stats page they are a row of their own, named for what they are.
    const stats = await http(url, 'GET', '/stats', { cookie: await login(url) });
    t.equal(stats.status, 200);
    t.match(stats.text, /refused by policy/, 'the channel-less row is labelled');
    // They sent no prompt: the prompt-cache share per channel leaves them out.
    const json = await http(url, 'GET', '/admin/stats?hours=1', { cookie: await login(url) });
    const shares = (JSON.parse(json.text) as { cache_read_share: { channels: { channel_name: string }[] } })
      .cache_read_share.channels;
    t.ok(shares.length > 0, 'the channels that served are listed');
    t.notOk(
      shares.some((c) => c.channel_name === null),
      'no channel-less row in the cache share',
    );

    // Alice's channels are both down: her request fails over between them and never reaches the relay.
    a!.setDefault({ kind: 'status', status: 500 });
    b!.setDefault({ kind: 'status', status: 500 });
    const relayBefore = relay!.requests.length;
    const down = await send(url, { headers: as(ALICE), rawHeadersOnly: true, body: messagesBody() });
    t.equal(down.status, 500, 'the last upstream answer of her own channels');
    t.equal(relay!.requests.length, relayBefore, 'failover stayed inside her channels');
  },
);

t.test(
  'channel allow-list: none of the allowed channels serves the model → 403 naming the channels rule',
  async (t) => {
    const [a, relay] = await startUpstreams(t, 2);
    const { url } = await startProxy(
      t,
      policyConfig({
        tokens: ['tokens:', `  - { name: alice, token: ${ALICE}, channels: [company-a] }`],
        channels: [
          { name: 'company-a', url: a!.url, models: ['claude-sonnet-*'] },
          { name: 'relay', url: relay!.url },
        ],
      }),
    );
    const res = await send(url, {
      headers: as(ALICE),
      rawHeadersOnly: true,
      body: messagesBody({ model: 'claude-opus-5-5' }),
    });
    t.equal(res.status, 403);
    t.match(anthropicErrorOf(res.body), {
      type: 'permission_error',
      message:
        /no channel client token "alice" may use serves model claude-opus-5-5 \(auth\.tokens\[\]\.channels: company-a\)/,
    });
    t.equal(relay!.requests.length, 0, 'the relay, which serves it, was not used');
    const nothing = await send(url, {
      headers: as(ALICE),
      rawHeadersOnly: true,
      body: messagesBody({ model: 'gpt-9' }),
    });
    t.equal(nothing.status, 403, 'the relay serves every model, so it is still the channel rule');
  },
);

t.test("all-cooling fallback picks only among the token's channels", async (t) => {
  for (const policy of ['soonest', 'reject'] as const) {
    const [a, relay] = await startUpstreams(t, 2);
    const { url, daemon } = await startProxy(
      t,
      policyConfig({
        tokens: ['tokens:', `  - { name: alice, token: ${ALICE}, channels: [company-a] }`],
        channels: [
          { name: 'company-a', url: a!.url, priority: 10 },
          { name: 'relay', url: relay!.url, priority: 5 },
        ],
        routing: [`  when_all_cooling: ${policy}`, '  cooling_wait: 2s'],
      }),
    );
    a!.enqueue({ kind: 'status', status: 529 });
    const first = await send(url, { headers: as(ALICE), rawHeadersOnly: true, body: messagesBody() });
    t.equal(first.status, 529, `${policy}: her only channel failed`);
    t.same(coolingScopes(daemon), [`channel+model:company-a|${MODEL}`], `${policy}: and cools`);
    const second = await send(url, { headers: as(ALICE), rawHeadersOnly: true, body: messagesBody() });
    if (policy === 'soonest') t.equal(second.status, 200, 'soonest: waited for company-a, which recovered');
    else {
      t.equal(second.status, 503, 'reject: 503');
      t.equal(anthropicErrorOf(second.body)?.type, 'overloaded_error');
    }
    t.equal(relay!.requests.length, 0, `${policy}: the relay, not cooling and not hers, was never used`);
  }
});

t.test('token max_concurrency: parallel requests beyond it get 429 with retry-after', async (t) => {
  const [a] = await startUpstreams(t, 1);
  const { url, daemon } = await startProxy(
    t,
    policyConfig({
      tokens: ['tokens:', `  - { name: ci, token: ${CI}, max_concurrency: 2 }`],
      channels: [{ name: 'a', url: a!.url }],
    }),
  );
  a!.setDefault({ ...ok(MODEL), headersDelayMs: 1500 });
  const slow = [1, 2].map(() => send(url, { headers: as(CI), rawHeadersOnly: true, body: messagesBody() }));
  await a!.nextRequest();
  await a!.nextRequest();
  t.equal(daemon.app.limits.tokenInflight('ci'), 2, 'two in flight');
  const third = await send(url, { headers: as(CI), rawHeadersOnly: true, body: messagesBody() });
  t.equal(third.status, 429);
  t.equal(third.headers['retry-after'], '2');
  t.equal(third.headers['x-should-retry'], 'true');
  t.match(anthropicErrorOf(third.body), {
    type: 'rate_limit_error',
    message: /"ci" already has 2 request\(s\) in flight/,
  });
  t.equal(a!.requests.length, 2, 'the third never reached the upstream');
  for (const r of await Promise.all(slow)) t.equal(r.status, 200, 'the two in flight finish');
  t.equal(daemon.app.limits.tokenInflight('ci'), 0, 'and leave');
  a!.setDefault(ok(MODEL));
  const fourth = await send(url, { headers: as(CI), rawHeadersOnly: true, body: messagesBody() });
  t.equal(fourth.status, 200, 'a slot is free again');
});

t.test(
  "daily budget: crossed mid-day, reset at the zone's midnight, restored after a restart, shared by instances",
  async (t) => {
    const [a] = await startUpstreams(t, 1);
    a!.setDefault(ok(MODEL));
    // 10:00 in Berlin (UTC+1) on 3 December; the Berlin day ends at 23:00 UTC.
    let clock = Date.parse('2026-12-03T09:00:00Z');
    const now = () => clock;
    const text = policyConfig({
      tokens: [
        'budget_time_zone: Europe/Berlin',
        'tokens:',
        `  - { name: alice, token: ${ALICE}, budget: { daily: 10, monthly: 100 } }`,
      ],
      channels: [{ name: 'a', url: a!.url }],
    });
    const first = await startProxy(t, text, { now });
    const call = (u: string) => send(u, { headers: as(ALICE), rawHeadersOnly: true, body: messagesBody() });

    // $3 per answer: 0, 3, 6, 9 are under $10; the fourth answer crosses it (in flight, it finishes).
    for (let i = 0; i < 4; i++) {
      clock += 60_000;
      const res = await call(first.url);
      t.equal(res.status, 200, `answer ${i + 1} admitted at $${3 * i}`);
    }
    t.same(first.daemon.app.limits.spend('alice', clock), { day: 12, month: 12 }, 'spend counted: $12');
    const refused = await call(first.url);
    t.equal(refused.status, 402, 'over the daily budget');
    t.equal(refused.headers['x-should-retry'], 'false', 'Claude Code must not retry it');
    t.equal(refused.headers['retry-after'], undefined);
    t.match(anthropicErrorOf(refused.body), {
      type: 'billing_error',
      message:
        /"alice" has spent \$12\.00 of its daily budget of \$10\.00 .*resets at 2026-12-04 00:00 Europe\/Berlin \(2026-12-03T23:00:00Z\)/,
    });
    const beforeUpstream = a!.requests.length;

    // Visible: /metrics gauges and the Tokens page (spend against the budget; never the token).
    const login = await http(first.url, 'POST', '/login', { body: { password: testEnv.TEST_PASS } });
    const sc = login.headers['set-cookie'];
    const cookie = String(Array.isArray(sc) ? sc[0] : sc).split(';')[0]!;
    const metrics = (await http(first.url, 'GET', '/metrics', { cookie })).text;
    t.match(metrics, /ccload_token_spend_usd\{token="alice",window="day"\} 12\b/);
    t.match(metrics, /ccload_token_budget_usd\{token="alice",window="day"\} 10\b/);
    t.match(metrics, /ccload_token_budget_usd\{token="alice",window="month"\} 100\b/);
    t.match(metrics, /ccload_token_inflight_requests\{token="alice"\} 0\b/);
    const page = await http(first.url, 'GET', '/tokens', { cookie });
    t.equal(page.status, 200);
    t.match(page.text, /alice/);
    t.match(page.text, /\$12\.00 <span class="muted">of \$10\.00/, 'today: spend of budget');
    t.match(page.text, /<meter class="budget"[^>]*max="10"[^>]*value="10"/, 'a full bar');
    t.match(page.text, /budget spent/);
    t.notMatch(page.text, new RegExp(ALICE), 'the token value is nowhere on the page');
    t.notMatch(metrics, new RegExp(ALICE), 'nor in the metrics');

    // A second instance on the same database adopts the spend at its start and on every sync.
    const second = join(first.dir, 'second.yaml');
    writeFileSync(second, text);
    const other = await startProxy(t, text, { dir: first.dir, file: second, now });
    t.same(
      other.daemon.app.limits.spend('alice', clock),
      { day: 12, month: 12 },
      'the other instance sees $12',
    );
    t.equal((await call(other.url)).status, 402, 'and refuses too');

    // One minute before the Berlin midnight: still refused; at it: a new day.
    clock = Date.parse('2026-12-03T22:59:00Z');
    t.equal((await call(first.url)).status, 402, '23:59 Berlin: still refused');
    clock = Date.parse('2026-12-03T23:00:00Z');
    t.equal((await call(first.url)).status, 200, '00:00 Berlin: the daily budget is fresh');
    t.same(first.daemon.app.limits.spend('alice', clock), { day: 3, month: 15 }, 'the month keeps counting');
    t.equal(a!.requests.length, beforeUpstream + 1, 'only the admitted request reached the upstream');

    // The other instance adopts it at its next sync, once the first has written its row (its
    // log writer flushes every 250 ms; here at once).
    await first.daemon.app.logWriter.flush();
    await other.daemon.app.limits.sync();
    t.same(other.daemon.app.limits.spend('alice', clock), { day: 3, month: 15 });

    // Restart the first instance at the day before (a clock step back): $12 is restored, refused at once.
    await first.daemon.close();
    clock = Date.parse('2026-12-03T20:00:00Z');
    const restarted = await startProxy(t, text, { dir: first.dir, file: first.file, now });
    t.same(
      restarted.daemon.app.limits.spend('alice', clock),
      // (The $3 answered at 23:00 lies after this clock: a window is read up to now.)
      { day: 12, month: 12 },
      'restored from the database',
    );
    t.equal((await call(restarted.url)).status, 402, 'refused right after the restart');
  },
);

t.test(
  'channel caps: a capped channel is skipped without cooling; waits only when nothing else is left',
  async (t) => {
    const [a, b] = await startUpstreams(t, 2);
    const channels: Ch[] = [
      { name: 'capped', url: a!.url, priority: 10, extra: ['max_concurrency: 1', 'rpm: 3'] },
      { name: 'spare', url: b!.url, priority: 5 },
    ];
    const { url, daemon, file } = await startProxy(
      t,
      policyConfig({ tokens: ['tokens: []'], channels, routing: ['  cooling_wait: 3s'] }),
    );
    const open = { 'content-type': 'application/json' };
    a!.setDefault({ ...ok(MODEL), headersDelayMs: 800 });
    b!.setDefault(ok(MODEL));
    const slow = send(url, { headers: open, rawHeadersOnly: true, body: messagesBody() });
    await a!.nextRequest();
    const skipped = await send(url, { headers: open, rawHeadersOnly: true, body: messagesBody() });
    t.equal(skipped.status, 200);
    t.equal(b!.requests.length, 1, 'the capped channel was skipped for the spare');
    t.same(coolingScopes(daemon), [], 'and not cooled');
    t.equal((await slow).status, 200);

    // rpm 3: three starts in the minute, the fourth goes to the spare.
    a!.setDefault(ok(MODEL));
    for (let i = 0; i < 2; i++)
      await send(url, { headers: open, rawHeadersOnly: true, body: messagesBody() });
    t.equal(a!.requests.length, 3, 'three on the capped channel');
    await send(url, { headers: open, rawHeadersOnly: true, body: messagesBody() });
    t.equal(a!.requests.length, 3, 'the fourth in the minute skipped it');
    t.equal(b!.requests.length, 2);

    // Only the capped channel left (spare disabled by a reload): a request waits for its slot.
    writeFileSync(
      file,
      policyConfig({
        tokens: ['tokens: []'],
        channels: [{ name: 'capped', url: a!.url, extra: ['max_concurrency: 1'] }],
        routing: ['  cooling_wait: 3s'],
      }),
    );
    await daemon.app.reloader.request('api');
    a!.setDefault({ ...ok(MODEL), headersDelayMs: 700 });
    const holder = send(url, { headers: open, rawHeadersOnly: true, body: messagesBody() });
    await a!.nextRequest();
    const waiter = await send(url, { headers: open, rawHeadersOnly: true, body: messagesBody() });
    const held = await holder;
    t.equal(waiter.status, 200, 'the waiting request was served when the slot freed');
    t.ok(waiter.headersAt >= held.headersAt, 'after the holder answered');
    t.same(coolingScopes(daemon), [], 'nothing cooled');

    // A short cooling wait: 503 naming the caps, with retry-after.
    writeFileSync(
      file,
      policyConfig({
        tokens: ['tokens: []'],
        channels: [{ name: 'capped', url: a!.url, extra: ['max_concurrency: 1'] }],
        routing: ['  cooling_wait: 200ms'],
      }),
    );
    await daemon.app.reloader.request('api');
    a!.setDefault({ ...ok(MODEL), headersDelayMs: 1000 });
    const holder2 = send(url, { headers: open, rawHeadersOnly: true, body: messagesBody() });
    await a!.nextRequest();
    const busy = await send(url, { headers: open, rawHeadersOnly: true, body: messagesBody() });
    t.equal(busy.status, 503);
    t.ok(busy.headers['retry-after'], 'retry-after');
    t.match(anthropicErrorOf(busy.body), {
      type: 'overloaded_error',
      message: /concurrency or requests-per-minute cap/,
    });
    t.equal((await holder2).status, 200);
  },
);

t.test('channel caps and proxy are written back through the channel API, references kept', async (t) => {
  const [a] = await startUpstreams(t, 1);
  const { url, daemon, file } = await startProxy(
    t,
    policyConfig({ tokens: ['tokens: []'], channels: [{ name: 'a', url: a!.url }] }),
  );
  const cookie = await login(url);
  const put = await http(url, 'PUT', '/admin/channels/a', {
    cookie,
    body: { max_concurrency: 3, rpm: 60, proxy: 'http://office:${OFFICE_PROXY_PASS:-}@127.0.0.1:3128' },
  });
  t.equal(put.status, 200, put.text);
  const text = readFileSync(file, 'utf8');
  t.match(text, /max_concurrency: 3/);
  t.match(text, /rpm: 60/);
  t.match(
    text,
    /proxy: http:\/\/office:\$\{OFFICE_PROXY_PASS:-\}@127\.0\.0\.1:3128/,
    'the reference as written',
  );
  const ch = daemon.app.reloader.current.channels[0]!;
  t.match(ch, { maxConcurrency: 3, rpm: 60, proxy: { source: 'channel' } });
  const listed = await http(url, 'GET', '/admin/channels', { cookie });
  t.match(listed.json.channels[0], {
    max_concurrency: 3,
    rpm: 60,
    proxy: { url: 'http://…:${OFFICE_PROXY_PASS:-}@127.0.0.1:3128', source: 'channel' },
    inflight: 0,
  });
  const masked = await http(url, 'PUT', '/admin/channels/a', {
    cookie,
    body: { proxy: 'http://…:${OFFICE_PROXY_PASS:-}@127.0.0.1:3129' },
  });
  t.equal(masked.status, 400, 'a masked proxy sent back is refused, not written as a password');
  t.match(masked.json.message, /proxy: .* still holds a masked part/);

  // The dashboard's edit form: the masked proxy comes back unchanged; caps change; the proxy goes.
  const form = await http(url, 'GET', '/channels/edit?name=a', { cookie });
  t.match(form.text, /name="proxy" [^>]*value="http:\/\/…:\$\{OFFICE_PROXY_PASS:-\}@127\.0\.0\.1:3128"/);
  const hash = /name="hash" value="([^"]+)"/.exec(form.text)![1]!;
  const post = (fields: Record<string, string>) =>
    http(url, 'POST', '/ui/channels/a/edit', {
      cookie,
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: url },
      body: new URLSearchParams({
        hash: daemon.app.reloader.current.hash,
        name: 'a',
        url: a!.url,
        priority: '10',
        models: '',
        model_map: '',
        auth: 'x-api-key',
        enabled: '1',
        keep: '0',
        max_concurrency: '3',
        rpm: '60',
        proxy: 'http://…:${OFFICE_PROXY_PASS:-}@127.0.0.1:3128',
        ...fields,
      }).toString(),
    });
  t.ok(hash);
  const saved = await post({ max_concurrency: '5', rpm: '' });
  t.equal(saved.status, 200, saved.text.slice(0, 300));
  const after = readFileSync(file, 'utf8');
  t.match(after, /max_concurrency: 5/, 'the cap changed in the file');
  t.notMatch(after, /rpm:/, 'an emptied cap is removed');
  t.match(
    after,
    /proxy: http:\/\/office:\$\{OFFICE_PROXY_PASS:-\}@127\.0\.0\.1:3128/,
    'the proxy kept as written',
  );
  const cleared = await post({ max_concurrency: '5', rpm: '', proxy: '' });
  t.equal(cleared.status, 200);
  t.notMatch(readFileSync(file, 'utf8'), /proxy:/, 'an emptied proxy is removed');

  const bad = await http(url, 'PUT', '/admin/channels/a', { cookie, body: { max_concurrency: 0 } });
  t.equal(bad.status, 422, 'a cap of 0 is refused by the loader');
  t.match(bad.json.errors, [{ path: 'channels[0].max_concurrency', message: /at least 1/ }]);
});

t.test('hot reload: new token limits apply to the next request', async (t) => {
  const [a] = await startUpstreams(t, 1);
  a!.setDefault(ok(MODEL));
  const text = (daily: number, models: string) =>
    policyConfig({
      tokens: [
        'tokens:',
        `  - { name: alice, token: ${ALICE}, models: [${models}], budget: { daily: ${daily} } }`,
      ],
      channels: [{ name: 'a', url: a!.url }],
    });
  const { url, daemon, file } = await startProxy(t, text(2, '"claude-*"'));
  const call = (model = MODEL) =>
    send(url, { headers: as(ALICE), rawHeadersOnly: true, body: messagesBody({ model }) });
  t.equal((await call()).status, 200, '$0 of $2');
  t.equal((await call()).status, 402, '$3 of $2: spent');
  writeFileSync(file, text(10, '"claude-haiku-*"'));
  await daemon.app.reloader.request('api');
  t.equal((await call()).status, 403, 'the new model allow-list applies at once');
  t.equal((await call('claude-haiku-5-5')).status, 200, 'and the raised budget ($3 of $10)');
});
