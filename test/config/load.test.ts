import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import t from 'tap';
import { loadConfigFile, loadConfigText } from '../../src/config/load.js';
import { formatIssue } from '../../src/config/snapshot.js';

const dir = resolve(import.meta.dirname, '../../../test/fixtures/config');
/** The environment every fixture is loaded with. */
export const fixtureEnv = {
  TEST_KEY: 'sk-ant-test-key-0001',
  TEST_TOKEN_A: 'client-token-aaaa',
  TEST_PASS: 'correct horse',
};
const load = (name: string, env: Record<string, string | undefined> = fixtureEnv) =>
  loadConfigFile({ path: join(dir, name), display: name, env, generation: 1, source: 'startup', now: 0 });

/** `# expect: L:C path: fragment` lines at the top of a fixture. */
function expectations(name: string, tag: string): string[] {
  return readFileSync(join(dir, name), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith(`# ${tag}: `))
    .map((l) => l.slice(tag.length + 4));
}

const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));

t.test('good fixtures load', async (t) => {
  for (const name of files.filter((f) => f.endsWith('.good.yaml'))) {
    const r = await load(name);
    t.ok(r.ok, `${name} loads${r.ok ? '' : `: ${r.errors.map(formatIssue).join('; ')}`}`);
    if (!r.ok) continue;
    const warnings = r.snapshot.warnings.map(formatIssue);
    for (const want of expectations(name, 'expect-warning')) {
      t.ok(
        warnings.some((w) => w.startsWith(`${name}:${want}`)),
        `${name} warns ${want}\n  got: ${warnings.join('\n  ')}`,
      );
    }
  }
});

t.test('bad fixtures report every expected error with line:col', async (t) => {
  for (const name of files.filter((f) => f.endsWith('.bad.yaml'))) {
    const r = await load(name);
    t.notOk(r.ok, `${name} is rejected`);
    if (r.ok) continue;
    const got = r.errors.map(formatIssue);
    const wants = expectations(name, 'expect');
    t.ok(wants.length > 0, `${name} states what it expects`);
    for (const want of wants) {
      t.ok(
        got.some((g) => g.startsWith(`${name}:${want}`)),
        `${name}: ${want}\n  got: ${got.join('\n  ')}`,
      );
    }
    t.equal(got.length, wants.length, `${name}: no unexpected errors\n  got: ${got.join('\n  ')}`);
  }
});

t.test('the full fixture becomes the expected snapshot', async (t) => {
  const r = await load('full.good.yaml', { ...fixtureEnv, PORT: undefined });
  if (!r.ok) return t.fail(r.errors.map(formatIssue).join('\n'));
  const s = r.snapshot;
  t.match(s.hash, /^sha256:[0-9a-f]{64}$/);
  t.same(s.listen, { host: '::1', port: 9000 });
  t.equal(s.database, `file:${join(dir, 'state/x.db')}`);
  t.equal(s.adminPassword, 'correct horse');
  t.same(
    s.tokens.map((x) => [x.name, x.value]),
    [
      ['alice', 'client-token-aaaa'],
      ['bob', 'tok-b-value-123'],
    ],
  );
  const [main, relay] = s.channels;
  t.equal(main?.url, 'https://api.anthropic.com');
  t.equal(main?.origin, 'https://api.anthropic.com');
  t.same(
    main?.keys.map((k) => k.fingerprint),
    ['…0001', '…0000'],
  );
  t.ok(main?.serves('claude-opus-4-5'));
  t.ok(main?.serves('exact-model'));
  t.notOk(main?.serves('gpt-4'));
  t.equal(main?.mapModel('claude-3-5-haiku-latest'), 'claude-haiku-4-5');
  t.equal(main?.mapModel('claude-opus-4-5'), 'claude-opus-4-5');
  t.equal(relay?.origin, 'http://127.0.0.1:8787');
  t.equal(relay?.basePath, '/prefix');
  t.equal(relay?.enabled, false);
  t.equal(s.config.routing.cooldown.base, 500);
  t.equal(s.config.routing.timeouts.total, 600_000);
  t.equal(s.config.server.max_body, 1_048_576);
  t.equal(s.config.store.retention, 7 * 86_400_000);
  t.ok(Object.isFrozen(s) && Object.isFrozen(s.config.routing) && Object.isFrozen(s.channels[0]));
});

t.test('defaults come from the schema', async (t) => {
  const r = await load('minimal.good.yaml');
  if (!r.ok) return t.fail('minimal must load');
  const c = r.snapshot.config;
  t.equal(c.server.listen, '127.0.0.1:8080');
  t.equal(c.server.max_body, 32 * 1024 * 1024);
  t.same(c.routing.cooldown, { base: 1000, max: 1_800_000 });
  t.same(c.routing.timeouts, { connect: 10_000, first_token: 60_000, idle: 120_000, total: 0 });
  t.equal(c.routing.max_attempts, 5);
  t.equal(c.routing.when_all_cooling, 'soonest');
  t.equal(c.admin.write_back, true);
  t.equal(c.admin.git_commit, false);
  t.equal(c.channels[0]?.priority, 0);
  t.equal(c.channels[0]?.enabled, true);
  t.equal(r.snapshot.channels[0]?.serves('anything-at-all'), true, 'no models = every model');
});

t.test('compat environment variables', async (t) => {
  const env = {
    ...fixtureEnv,
    PORT: '9123',
    SQLITE_PATH: 'elsewhere/db.sqlite',
    CCLOAD_PASS: 'from-env',
    CCLOAD_AUTH: 'tok-one-1234, tok-two-5678,',
  };
  const r = await loadConfigFile({
    path: join(dir, 'minimal.good.yaml'),
    env,
    cwd: '/srv/ccload',
    generation: 3,
    source: 'signal',
    now: 42,
  });
  if (!r.ok) return t.fail(r.errors.map(formatIssue).join('\n'));
  t.equal(r.snapshot.listen.port, 9123);
  t.equal(r.snapshot.database, 'file:/srv/ccload/elsewhere/db.sqlite');
  t.equal(r.snapshot.adminPassword, 'from-env');
  t.same(
    r.snapshot.tokens.map((x) => [x.name, x.source]),
    [
      ['env-1', 'env'],
      ['env-2', 'env'],
    ],
  );
  t.equal(r.snapshot.generation, 3);
  t.equal(r.snapshot.source, 'signal');

  const bad = await load('minimal.good.yaml', { ...fixtureEnv, PORT: 'eighty' });
  t.notOk(bad.ok, 'a non-numeric PORT is an error');
  if (!bad.ok) t.match(bad.errors[0]?.message, /PORT="eighty" is not a port number/);
});

t.test('the password in the file wins over CCLOAD_PASS', async (t) => {
  const r = await load('full.good.yaml', { ...fixtureEnv, CCLOAD_PASS: 'env-pass' });
  t.equal(r.ok && r.snapshot.adminPassword, 'correct horse');
});

t.test('an unreadable file is an error at 1:1', async (t) => {
  const r = await load('does-not-exist.yaml');
  t.notOk(r.ok);
  if (!r.ok) t.equal(formatIssue(r.errors[0]!), 'does-not-exist.yaml:1:1 file not found');
});

t.test('the bundled ccload.yaml loads with no environment at all', async (t) => {
  const root = resolve(import.meta.dirname, '../../..');
  const r = await loadConfigFile({
    path: join(root, 'ccload.yaml'),
    display: 'ccload.yaml',
    env: {},
    generation: 1,
    source: 'startup',
    now: 0,
  });
  if (!r.ok) return t.fail(r.errors.map(formatIssue).join('\n'));
  const warnings = r.snapshot.warnings.map((w) => w.message).join('\n');
  t.match(warnings, /no admin password/, 'says the admin password is missing');
  t.match(warnings, /channel "anthropic" has no key/, 'says the channel has no key');
  t.match(warnings, /no client token has a value/, 'says no client token is usable');
  t.same(r.snapshot.tokens, []);
  t.equal(r.snapshot.adminPassword, undefined);
});

t.test('same text, same hash; a byte changed, another hash', async (t) => {
  const text = readFileSync(join(dir, 'minimal.good.yaml'), 'utf8');
  const input = {
    path: join(dir, 'minimal.good.yaml'),
    env: fixtureEnv,
    generation: 1,
    source: 'api',
    now: 0,
  } as const;
  const a = await loadConfigText(text, input);
  const b = await loadConfigText(text, input);
  const c = await loadConfigText(`${text}\n`, input);
  t.equal(a.hash, b.hash);
  t.not(a.hash, c.hash);
});
