/**
 * The channels admin API against a real daemon over real HTTP: the list (never a key value),
 * create/update/delete through write-back with and without If-Match, 412/403/422/400/404, names
 * with any character, the git commit id, clearing a cooldown made by a real failed request, and
 * the channel test against the fake upstream and against a dead port (cooldowns untouched).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { type Pool, request } from 'undici';
import { addEditFromBody, updateEditFromBody, writeBackStatus } from '../../src/admin/channel-routes.js';
import { hashContent } from '../../src/config/load.js';
import type { WriteBackErrorKind } from '../../src/config/write-back/apply-edit.js';
import { startFakeUpstream } from '../../src/dev/fake-upstream.js';
import { testEnv } from '../helpers/config.js';
import { startTestDaemon } from '../helpers/daemon.js';
import { call, login } from '../helpers/http.js';
import { messagesBody } from '../helpers/messages.js';
import { type Teardownable, tmpDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

const KEYS = {
  MAIN_KEY_1: 'sk-ant-routes-main-one-SECRET-0001',
  MAIN_KEY_2: 'sk-ant-routes-main-two-SECRET-0002',
  DEAD_KEY: 'sk-ant-routes-dead-SECRET-0003',
  EU_KEY: 'sk-ant-routes-eu-SECRET-0004',
  NEW_KEY: 'sk-ant-routes-new-SECRET-0005',
};
const LITERAL = 'sk-ant-literal-in-the-file-SECRET-0006';
const ENV = { ...testEnv, ...KEYS };

/** A port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function configText(o: { upstream: string; dead: string; admin?: string }): string {
  return `version: 1
server:
  listen: 127.0.0.1:0
  database: file:state/ccload.db
admin:
  password: \${TEST_PASS}
${o.admin ?? ''}
routing:
  timeouts: { connect: 2s, first_token: 5s }
  max_attempts: 1

channels:
  # the fake upstream, two keys
  - name: main
    url: ${o.upstream}
    keys:
      - \${MAIN_KEY_1}
      - \${MAIN_KEY_2}
    priority: 10
    models: [claude-sonnet-4-5, "claude-*"]
    model_map:
      claude-sonnet-4-5: claude-sonnet-4-5-20250929

  # nothing listens here
  - name: dead
    url: ${o.dead}
    api_key: \${DEAD_KEY}
    models: [dead-model-1]

  - name: literal
    url: ${o.upstream}/relay
    api_key: ${LITERAL}
    enabled: false

  # credentials inside the URL are shown masked
  - name: in-url
    url: https://ops:hunter2-SECRET@relay.example.com/k/\${EU_KEY}
    api_key: \${EU_KEY}
    enabled: false
`;
}

async function setup(t: Teardownable, o: { admin?: string; dir?: string } = {}) {
  const upstream = await startFakeUpstream({ countTokens: 42 });
  t.teardown(() => upstream.close());
  const dead = `http://127.0.0.1:${await closedPort()}`;
  const text = configText({ upstream: upstream.url, dead, admin: o.admin });
  let file: string | undefined;
  if (o.dir) {
    file = join(o.dir, 'ccload.yaml');
    writeFileSync(file, text);
  }
  const started = await startTestDaemon(t, text, { env: ENV, dir: o.dir, file });
  const cookie = await login(started.daemon.url);
  const api = (
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    path: string,
    opts: Parameters<typeof call>[3] = {},
  ) => call(started.daemon.url, method, path, { cookie, ...opts });
  return { ...started, upstream, dead, api, cookie };
}

const SECRETS = [...Object.values(KEYS), LITERAL, 'hunter2-SECRET'];

t.test('the list: snapshot, runtime state, fingerprints and references, never a key value', async (t) => {
  const { daemon, api, file } = await setup(t);
  const anon = await call(daemon.url, 'GET', '/admin/channels');
  t.equal(anon.status, 401, 'login required');

  const a = await api('GET', '/admin/channels');
  t.equal(a.status, 200);
  for (const s of SECRETS) t.notOk(a.text.includes(s), `no key value in the JSON (${s.slice(-4)})`);
  for (const s of SECRETS) t.notOk(a.text.includes(s.slice(0, 20)), 'not even a prefix');
  t.equal(a.json.hash, hashContent(readFileSync(file)));
  t.equal(a.json.generation, 1);
  t.equal(a.json.writable, true);
  t.same(
    a.json.channels.map((c: { name: string }) => c.name),
    ['main', 'dead', 'literal', 'in-url'],
  );
  t.equal(
    a.json.channels[3].url,
    'https://…:…@relay.example.com/k/${EU_KEY}',
    'userinfo masked, the reference shown as written (issue 10: never its value)',
  );
  const [main, , literal] = a.json.channels;
  t.match(main, {
    name: 'main',
    index: 0,
    priority: 10,
    models: ['claude-sonnet-4-5', 'claude-*'],
    model_map: { 'claude-sonnet-4-5': 'claude-sonnet-4-5-20250929' },
    enabled: true,
    auth: 'x-api-key',
    problems: [],
    keys: [
      { index: 0, fingerprint: '…0001' },
      { index: 1, fingerprint: '…0002' },
    ],
    key_field: 'keys',
    key_refs: ['${MAIN_KEY_1}', '${MAIN_KEY_2}'],
    cooldowns: [],
  });
  t.notOk('cooling_until' in main.keys[0], 'no cooling_until when not cooling');
  t.match(literal, {
    enabled: false,
    keys: [{ fingerprint: '…0006' }],
    key_field: 'api_key',
    key_refs: [null],
  });

  const one = await api('GET', `/admin/channels/${encodeURIComponent('dead')}`);
  t.match(one.json, { hash: a.json.hash, channel: { name: 'dead', key_refs: ['${DEAD_KEY}'] } });
  t.equal((await api('GET', '/admin/channels/nope')).status, 404);
});

t.test('create, update, delete: with and without If-Match, and the refusals', async (t) => {
  const { daemon, api, file } = await setup(t);
  const h0 = (await api('GET', '/admin/channels')).json.hash as string;

  // Create (no If-Match), a name with a slash and a space.
  const name = 'team proxy/eu';
  const created = await api('POST', '/admin/channels', {
    body: {
      name,
      url: 'https://eu.example.com',
      api_key: '${EU_KEY}',
      models: ['claude-opus-4-1'],
      priority: 3,
    },
  });
  t.equal(created.status, 201, created.text);
  t.equal(created.headers['location'], `/admin/channels/${encodeURIComponent(name)}`);
  t.match(created.json, { generation: 2, changed: true, reload: 'applied' });
  t.equal(created.json.hash, hashContent(readFileSync(file)), 'the answer carries the new file hash');
  t.equal(created.headers['etag'], `"${created.json.hash}"`);
  t.equal(daemon.app.reloader.current.generation, 2, 'answered after the reload applied');
  t.match(readFileSync(file, 'utf8'), /\n {2}- name: team proxy\/eu\n {4}url: https:\/\/eu\.example\.com\n/);

  // Update with the current hash as If-Match (quoted, like an ETag).
  const path = `/admin/channels/${encodeURIComponent(name)}`;
  const updated = await api('PUT', path, {
    headers: { 'if-match': created.headers['etag'] as string },
    body: { priority: 4, models: ['claude-opus-4-1', 'claude-sonnet-4-5'], enabled: false },
  });
  t.equal(updated.status, 200, updated.text);
  t.equal(updated.json.generation, 3);
  const listed = (await api('GET', '/admin/channels')).json;
  t.match(listed.channels[4], {
    name,
    priority: 4,
    enabled: false,
    models: ['claude-opus-4-1', 'claude-sonnet-4-5'],
  });

  // A stale If-Match: 412 with the current hash; the file is untouched.
  const before = readFileSync(file, 'utf8');
  const stale = await api('PUT', path, { headers: { 'if-match': h0 }, body: { priority: 9 } });
  t.equal(stale.status, 412);
  t.match(stale.json, { error: 'conflict', code: 'conflict', message: String, hash: updated.json.hash });
  t.equal(readFileSync(file, 'utf8'), before);

  // 422: the loader's errors, file untouched.
  const bad = await api('PUT', path, { body: { url: 'not a url' } });
  t.equal(bad.status, 422);
  t.match(bad.json, { error: 'invalid', errors: [{ path: 'channels[4].url', line: Number, col: Number }] });
  const dup = await api('POST', '/admin/channels', { body: { name: 'main', url: 'https://x.example' } });
  t.equal(dup.status, 422);
  t.match(dup.json.errors, [{ message: /duplicate channel name "main"/ }]);
  // 422: a literal key.
  const literal = await api('PUT', '/admin/channels/main', {
    body: { keys: [{ keep: 0 }, 'sk-ant-typed-in'] },
  });
  t.equal(literal.status, 422);
  t.match(literal.json, { error: 'secret', code: 'secret', message: /\$\{NAME\}/ });
  // 400: malformed bodies.
  t.equal(
    (await api('POST', '/admin/channels', { body: { name: 'x', url: 'https://x', colour: 'red' } })).status,
    400,
  );
  t.equal((await api('POST', '/admin/channels', { body: '{not json' })).status, 400);
  t.equal((await api('PUT', '/admin/channels/main', { body: {} })).status, 400);
  t.equal((await api('PUT', '/admin/channels/main', { body: { auth: 'basic' } })).status, 400);
  // 404.
  t.equal((await api('PUT', '/admin/channels/nope', { body: { priority: 1 } })).status, 404);
  t.equal((await api('DELETE', '/admin/channels/nope')).status, 404);
  t.equal(readFileSync(file, 'utf8'), before, 'no refusal touched the file');
  t.equal(daemon.app.reloader.current.generation, 3);

  // Keep a key by position, add a reference: the file gets one new line.
  const keys = await api('PUT', '/admin/channels/main', {
    body: { keys: [{ keep: 0 }, { keep: 1 }, '${NEW_KEY}'] },
  });
  t.equal(keys.status, 200, keys.text);
  t.match(readFileSync(file, 'utf8'), /- \$\{MAIN_KEY_2\}\n {6}- \$\{NEW_KEY\}\n/);
  const afterKeys = (await api('GET', '/admin/channels')).json;
  t.same(
    afterKeys.channels[0].keys.map((k: { fingerprint: string }) => k.fingerprint),
    ['…0001', '…0002', '…0005'],
  );
  for (const s of SECRETS) t.notOk(JSON.stringify(afterKeys).includes(s), 'still no key value');

  // Delete with If-Match: 204, the new hash in ETag.
  const hash = afterKeys.hash as string;
  const deleted = await api('DELETE', path, { headers: { 'if-match': hash } });
  t.equal(deleted.status, 204);
  t.equal(deleted.text, '');
  t.equal(deleted.headers['etag'], `"${hashContent(readFileSync(file))}"`);
  t.equal(deleted.headers['x-ccload-generation'], '5');
  t.notMatch(readFileSync(file, 'utf8'), /team proxy/);
  const staleDelete = await api('DELETE', '/admin/channels/dead', { headers: { 'if-match': hash } });
  t.equal(staleDelete.status, 412, 'the hash before the delete is stale now');

  // The router's Origin check covers these routes too.
  const foreign = await api('DELETE', '/admin/channels/dead', {
    headers: { origin: 'https://evil.example' },
  });
  t.equal(foreign.status, 403);
  t.ok(daemon.app.reloader.current.channels.some((c) => c.name === 'dead'));
});

t.test('write-back refusals: config gives the kind, admin the HTTP status', async (t) => {
  const table: readonly [WriteBackErrorKind, number][] = [
    ['bad_request', 400],
    ['forbidden', 403],
    ['not_found', 404],
    ['conflict', 412],
    ['invalid', 422],
    ['secret', 422],
    ['io', 500],
  ];
  for (const [error, status] of table) t.equal(writeBackStatus({ error }), status, error);
});

t.test('request bodies: JSON types checked, messages name the field and the expected type', async (t) => {
  t.equal(addEditFromBody({ url: 'https://x' }), 'name: Invalid input: expected string, received undefined');
  t.equal(
    addEditFromBody({ name: 'x', url: 'https://x', priority: '1' }),
    'priority: Invalid input: expected number, received string',
  );
  t.match(addEditFromBody({ name: 'x', url: 'https://x', colour: 'red' }), /colour/);
  t.same(addEditFromBody({ name: 'x', url: 'not a url' }), {
    action: 'add',
    channel: { name: 'x', url: 'not a url' },
  });
  t.match(updateEditFromBody('x', { url: null }), /^url: /, 'name and url cannot be removed');
  t.same(updateEditFromBody('x', { models: null, auth: 'bearer' }), {
    action: 'update',
    name: 'x',
    changes: { models: null, auth: 'bearer' },
  });
  t.match(updateEditFromBody('x', { keys: [{ keep: -1 }] }), /^keys\.0/);
});

t.test('admin.write_back: false → 403 on every write, writable: false', async (t) => {
  const { api, file } = await setup(t, { admin: '  write_back: false' });
  const before = readFileSync(file, 'utf8');
  t.equal((await api('GET', '/admin/channels')).json.writable, false);
  const writes = [
    await api('POST', '/admin/channels', {
      body: { name: 'n', url: 'https://n.example', api_key: '${EU_KEY}' },
    }),
    await api('PUT', '/admin/channels/main', { body: { priority: 1 } }),
    await api('DELETE', '/admin/channels/dead'),
  ];
  for (const w of writes) t.match(w, { status: 403, json: { error: 'forbidden', message: /write_back/ } });
  t.equal(readFileSync(file, 'utf8'), before);
});

t.test('git_commit: the answer names the commit', async (t) => {
  const dir = tmpDir(t);
  const git = (...args: string[]) => execFileSync('git', args, { cwd: dir, encoding: 'utf8' }).trim();
  git('init', '--quiet', '-b', 'main');
  git('config', 'user.name', 'Ops');
  git('config', 'user.email', 'ops@example.com');
  const { api } = await setup(t, { dir, admin: '  git_commit: true' });
  git('add', 'ccload.yaml');
  git('commit', '--quiet', '-m', 'initial');
  const r = await api('PUT', '/admin/channels/dead', { body: { enabled: false } });
  t.equal(r.status, 200, r.text);
  t.match(r.json.commit, /^[0-9a-f]{40}$/);
  t.equal(r.headers['x-ccload-commit'], r.json.commit);
  t.equal(git('log', '-1', '--format=%H %s'), `${r.json.commit} ccload: disable channel "dead"`);
});

t.test('cooldown clear: a cooldown made by a failed request, then cleared', async (t) => {
  const { daemon, api } = await setup(t);
  const proxied = await request(`${daemon.url}/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
    body: messagesBody({ model: 'dead-model-1' }),
  });
  await proxied.body.text();
  t.not(proxied.statusCode, 200, 'the dead channel failed');
  await waitFor(() => daemon.app.proxyState.cooldowns.entries.size > 0, { message: 'a cooldown' });

  const listed = (await api('GET', '/admin/channels')).json.channels[1];
  t.equal(listed.name, 'dead');
  t.equal(listed.cooldowns.length, 1);
  const c = listed.cooldowns[0];
  t.match(c, { scope: 'channel', reason: String, failures: 1 });
  t.ok(c.remaining_ms > 0 && c.remaining_ms <= 1000, `remaining_ms ${c.remaining_ms} within the 1 s base`);
  t.ok(Date.parse(c.until) > Date.now() - 1000, 'until is an ISO time');
  t.match(listed, { cooling_until: c.until, remaining_ms: c.remaining_ms });

  const cleared = await api('POST', '/admin/channels/dead/cooldown/clear');
  t.equal(cleared.status, 200);
  t.same(cleared.json, { channel: 'dead', cleared: 1 });
  t.same((await api('GET', '/admin/channels')).json.channels[1].cooldowns, []);
  t.equal(daemon.app.proxyState.cooldowns.entries.size, 0);
  t.equal((await api('POST', '/admin/channels/nope/cooldown/clear')).status, 404);
  const again = await api('POST', '/admin/channels/dead/cooldown/clear');
  t.same(again.json, { channel: 'dead', cleared: 0 }, 'nothing left to clear is fine');
});

t.test('channel test: count_tokens through the channel, each key or one; a dead one fails', async (t) => {
  const { daemon, api, upstream } = await setup(t);
  const all = await api('POST', '/admin/channels/main/test');
  t.equal(all.status, 200, all.text);
  t.match(all.json, {
    channel: 'main',
    model: 'claude-sonnet-4-5',
    probe: 'count_tokens',
    ok: true,
    status: 200,
    input_tokens: 42,
    duration_ms: Number,
    keys: [
      { key_index: 0, fingerprint: '…0001', ok: true, status: 200, input_tokens: 42 },
      { key_index: 1, fingerprint: '…0002', ok: true, status: 200, input_tokens: 42 },
    ],
  });
  t.equal(upstream.requests.length, 2);
  const [r0, r1] = upstream.requests;
  t.equal(r0?.path, '/v1/messages/count_tokens');
  t.equal(r0?.headers['x-api-key'], KEYS.MAIN_KEY_1, 'sent with the channel key, as the proxy sends it');
  t.equal(r1?.headers['x-api-key'], KEYS.MAIN_KEY_2);
  t.equal(r0?.model, 'claude-sonnet-4-5-20250929', 'model_map applied');
  for (const s of SECRETS) t.notOk(all.text.includes(s), 'no key value in the answer');

  const one = await api('POST', '/admin/channels/main/test', {
    body: { key_index: 1, model: 'claude-haiku-4-5' },
  });
  t.match(one.json, { ok: true, model: 'claude-haiku-4-5', keys: [{ key_index: 1 }] });
  t.equal(one.json.keys.length, 1);
  t.equal(upstream.requests[2]?.model, 'claude-haiku-4-5');

  upstream.enqueue({ kind: 'status', status: 401 });
  const rejected = await api('POST', '/admin/channels/main/test', { body: { key_index: 0 } });
  t.match(rejected.json, { ok: false, status: 401, error: /^HTTP 401/ });

  const dead = await api('POST', '/admin/channels/dead/test');
  t.equal(dead.status, 200);
  t.match(dead.json, { ok: false, status: 0, error: /ECONNREFUSED/, keys: [{ fingerprint: '…0003' }] });
  t.equal(daemon.app.proxyState.cooldowns.entries.size, 0, 'a test changes no cooldown');

  t.equal((await api('POST', '/admin/channels/main/test', { body: { key_index: 7 } })).status, 400);
  t.equal((await api('POST', '/admin/channels/nope/test')).status, 404);
  const noModel = await api('POST', '/admin/channels/literal/test');
  t.match(noModel, { status: 400, json: { message: /names no exact model/ } });
});

t.test(
  "channel test: sent through the proxy's pool for the channel, which keeps its connection",
  async (t) => {
    const { daemon, api, upstream } = await setup(t);
    const rt = daemon.app.runtime();
    const main = rt.snapshot.channels.find((c) => c.name === 'main')!;
    // A channel without an outbound proxy: its dispatcher is the origin's Pool.
    const pool = () => rt.dispatcher(main) as Pool;
    t.equal(pool().stats.connected, 0, 'no connection before the test');
    const r = await api('POST', '/admin/channels/main/test');
    t.match(r.json, { ok: true, keys: [{ ok: true }, { ok: true }] });
    t.equal(upstream.requests.length, 2);
    const held = pool().stats.connected;
    t.ok(held >= 1, `the proxy pool holds the test's keep-alive connection(s) (${held})`);
    t.equal(upstream.openSockets, held, 'and no other connection is open upstream');
  },
);

t.test("channel test: the channel's header rules apply, as to proxy attempts", async (t) => {
  const upstream = await startFakeUpstream({ countTokens: 7 });
  t.teardown(() => upstream.close());
  const { daemon } = await startTestDaemon(
    t,
    `version: 1
server: { listen: 127.0.0.1:0, database: file:state/ccload.db }
admin:
  password: \${TEST_PASS}
channels:
  - name: relay
    url: ${upstream.url}
    api_key: \${TEST_KEY}
    models: [claude-haiku-4-5]
    headers:
      set:
        x-gateway-key: \${GATEWAY_KEY}
      remove: [user-agent]
`,
    { env: { GATEWAY_KEY: 'gateway-credential-SECRET-1234' } },
  );
  const cookie = await login(daemon.url);
  const r = await call(daemon.url, 'POST', '/admin/channels/relay/test', { cookie });
  t.match(r.json, { ok: true, probe: 'count_tokens', input_tokens: 7 });
  const seen = upstream.requests[0]!;
  t.equal(seen.path, '/v1/messages/count_tokens');
  t.equal(seen.headers['x-gateway-key'], 'gateway-credential-SECRET-1234', 'set rule applied');
  t.equal(seen.headers['user-agent'], undefined, 'remove rule applied');
  t.equal(seen.headers['anthropic-version'], '2023-06-01');
  t.equal(seen.headers['accept-encoding'], 'identity', "the proxy's header building");
});

t.test(
  'GET /admin/channels and the Channels page show header rules; values a rule sets as fingerprints',
  async (t) => {
    const secret = 'gateway-credential-SECRET-7f3e';
    const { daemon } = await startTestDaemon(
      t,
      `version: 1
server: { listen: 127.0.0.1:0, database: file:state/ccload.db }
admin:
  password: \${TEST_PASS}
channels:
  - name: relay
    url: http://127.0.0.1:9
    api_key: \${TEST_KEY}
    headers:
      beta: { drop: [context-management-2025-06-27] }
      set:
        x-gateway-key: \${GATEWAY_KEY}
      remove: [x-claude-code-session-id]
`,
      { env: { GATEWAY_KEY: secret } },
    );
    const cookie = await login(daemon.url);
    const api = await call(daemon.url, 'GET', '/admin/channels', { headers: { cookie } });
    t.equal(api.status, 200);
    const relay = (api.json as { channels: { name: string; headers: unknown }[] }).channels[0]!;
    t.same(relay.headers, {
      beta: { drop: ['context-management-2025-06-27'] },
      set: { 'x-gateway-key': '…7f3e' },
      remove: ['x-claude-code-session-id'],
    });
    const page = await call(daemon.url, 'GET', '/channels', { headers: { cookie } });
    t.match(page.text, /beta: drop <code>context-management-2025-06-27<\/code>/);
    t.match(page.text, /set <code>x-gateway-key<\/code> <span class="mono">…7f3e<\/span>/);
    for (const a of [api, page]) t.notOk(a.text.includes(secret), 'the value never shows');
  },
);
