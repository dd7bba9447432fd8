/**
 * Issue 10 findings 1, 2 and 6 against a running daemon: an environment value referenced from a
 * field that is not meant for it never reaches `GET /admin/channels`, the Channels page or
 * `GET /v1/models` (neither through write-back nor through a file edit and reload); a `${file:}`
 * FIFO fails a reload promptly instead of hanging it; URL userinfo and query values and secrets of
 * a file that does not parse are masked on every page that shows them.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { Daemon } from '../../src/daemon.js';
import { DEAD_URL, testConfig } from '../helpers/config.js';
import { startTestDaemon } from '../helpers/daemon.js';
import { call, login } from '../helpers/http.js';
import { deadline } from '../helpers/wait.js';

const SECRET = 'sk-ant-api03-DAEMON-ENV-SECRET-4c1d';
const CLIENT = 'client-token-exposure-0001';
const ENV = { ANTHROPIC_API_KEY: SECRET, CLIENT };
/** With a client token, so `/v1/models` is answered for a token holder. */
const config = (o: { url?: string } = {}) =>
  testConfig({
    tokens: [{ name: 'c', token: '${CLIENT}' }],
    channels: [{ name: 'main', url: o.url ?? DEAD_URL }],
  });

/** Everything an admin or a client token holder can read about channels. */
async function views(d: Daemon, cookie: string): Promise<string> {
  const out: string[] = [];
  for (const path of [
    '/admin/channels',
    '/channels',
    '/ui/channels',
    '/v1/models',
    '/config',
    '/admin/config/status',
  ]) {
    const p = await deadline(
      call(d.url, 'GET', path, { cookie, headers: { 'x-api-key': CLIENT } }),
      10_000,
      `GET ${path}`,
    );
    if (p.status !== 200) throw new Error(`${path} answered ${p.status}: ${p.text.slice(0, 200)}`);
    out.push(p.text);
  }
  return out.join('\n');
}

t.test('a reference outside the secret fields leaks nowhere (finding 1)', async (t) => {
  const { daemon, file } = await startTestDaemon(t, config(), { env: ENV });
  const cookie = await login(daemon.url);
  const attempts = [
    { models: ['${ANTHROPIC_API_KEY}'] },
    { models: ['claude-*'], model_map: { 'claude-x': '${ANTHROPIC_API_KEY}' } },
    { models: ['${file:/proc/self/environ}'] },
    { name: 'n-${ANTHROPIC_API_KEY}' },
  ];
  for (const extra of attempts) {
    const body = { name: 'probe', url: 'http://127.0.0.1:9', api_key: '${TEST_KEY}', ...extra };
    const r = await call(daemon.url, 'POST', '/admin/channels', { cookie, body });
    t.equal(r.status, 422, `write-back of ${JSON.stringify(extra)} is refused`);
    t.match(r.text, 'references are expanded only in');
    t.notMatch(r.text, SECRET);
  }
  // The same through the file: the reload fails, the last good snapshot keeps serving.
  for (const fields of [
    '    models: ["${ANTHROPIC_API_KEY}"]',
    '    models: ["${file:/proc/self/environ}"]',
  ]) {
    writeFileSync(file, `${config()}${fields}\n`);
    const outcome = await daemon.app.reloader.request('api');
    t.equal(outcome.result, 'rejected', fields);
  }
  const seen = await views(daemon, cookie);
  t.notMatch(seen, SECRET, 'no view holds the value');
  t.notMatch(seen, 'ANTHROPIC_API_KEY=', 'nor the environment');
});

t.test('a ${file:} FIFO fails a reload promptly and says why (finding 2)', async (t) => {
  const { daemon, dir, file } = await startTestDaemon(t);
  execFileSync('mkfifo', [join(dir, 'fifo')]);
  writeFileSync(file, testConfig().replace('${TEST_KEY}', '${file:fifo}'));
  const outcome = await deadline(daemon.app.reloader.request('api'), 10_000, 'reload with a FIFO');
  t.equal(outcome.result, 'rejected');
  t.match(JSON.stringify(outcome.errors), 'not a regular file (a FIFO)');
  writeFileSync(file, testConfig().replace('${TEST_KEY}', '${file:/dev/zero}'));
  const zero = await deadline(daemon.app.reloader.request('api'), 10_000, 'reload with /dev/zero');
  t.match(JSON.stringify(zero.errors), 'not a regular file (a character device)');
  t.equal((await call(daemon.url, 'GET', '/health')).status, 200, 'the daemon still answers');
});

t.test('URL userinfo and query values are masked on every view (finding 6)', async (t) => {
  const url = 'http://relay-user:relay-PASS-SECRET@127.0.0.1:9/v1?key=query-SECRET-value';
  const { daemon, file } = await startTestDaemon(t, config({ url }), { env: ENV });
  const cookie = await login(daemon.url);
  const list = await call(daemon.url, 'GET', '/admin/channels', { cookie });
  t.equal(list.json.channels[0].url, 'http://…:…@127.0.0.1:9/v1?key=…');
  t.notMatch(await views(daemon, cookie), 'SECRET');
  const edit = await call(daemon.url, 'GET', '/channels/edit?name=main', { cookie });
  t.notMatch(edit.text, 'SECRET', 'the edit form');
  // A masked URL sent back with a change is refused, not written over the real one.
  const r = await call(daemon.url, 'PUT', '/admin/channels/main', {
    cookie,
    body: { url: 'http://…:…@127.0.0.1:10/v1?key=…' },
  });
  t.equal(r.status, 400);
  t.match(r.text, 'still holds a masked part');

  // Literal text after a reference is a literal secret: warned and redacted on the Config page.
  const mixed = '${UNSET_VARIABLE:-}sk-ant-api03-MIXED-SECRET-beef';
  writeFileSync(file, config({ url }).replace('${TEST_KEY}', mixed));
  const applied = await daemon.app.reloader.request('api');
  t.equal(applied.result, 'applied');
  t.match(
    daemon.app.reloader.current.warnings.map((w) => w.message).join('\n'),
    'literal text beside a reference',
  );
  const shown = await call(daemon.url, 'GET', '/config', { cookie });
  t.notMatch(shown.text, 'MIXED-SECRET');
  t.match(shown.text, '${UNSET_VARIABLE:-}…beef (redacted literal)');

  // A file that does not parse: the Config page shows it line by line, secrets and URLs masked.
  writeFileSync(
    file,
    `${testConfig({ channels: [{ name: 'main', url }] })}auth:\n  tokens:\n    - name: t\n      token: |\n        BLOCK-SECRET-token\n  broken: [\n`,
  );
  const outcome = await daemon.app.reloader.request('api');
  t.equal(outcome.result, 'rejected');
  const page = await call(daemon.url, 'GET', '/config', { cookie });
  t.equal(page.status, 200);
  t.notMatch(page.text, 'SECRET', 'the broken-file view');
  t.match(page.text, 'token: … (redacted literal)');
});
