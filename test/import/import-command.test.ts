/**
 * `ccload import-ccload` end to end on databases created here with each ccLoad schema generation:
 * the YAML (with `version: 1` on top) loads with ccload's own loader given the env file's
 * variables, the channels match, no key string reaches the YAML, stdout or the summary, the env
 * file is mode 0600, and the old database is left byte-for-byte untouched.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseEnv } from 'node:util';
import t, { type Test } from 'tap';
import { loadConfigText } from '../../src/config/load.js';
import type { Snapshot } from '../../src/config/snapshot.js';
import { importCcloadCommand } from '../../src/import/import-command.js';
import { tmpDir } from '../helpers/tmp.js';
import { deadline } from '../helpers/wait.js';
import { KEYS, laterDb, latestDb, seedDb } from './helpers.js';

const MAIN = fileURLToPath(new URL('../../src/main.js', import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(args: string[], cwd: string): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await importCcloadCommand(args, {
    cwd,
    stdout: (s) => {
      stdout += s;
    },
    stderr: (s) => {
      stderr += s;
    },
  });
  return { code, stdout, stderr };
}

const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

/** Loads `yaml` as ccload.yaml (with `version: 1` on top) with the env file's variables. */
async function load(yaml: string, envText: string, dir: string): Promise<Snapshot> {
  const env = parseEnv(envText);
  const r = await loadConfigText(`version: 1\n${yaml}`, {
    path: join(dir, 'ccload.yaml'),
    env,
    generation: 1,
    source: 'startup',
    now: 0,
  });
  if (!r.ok) throw new Error(r.errors.map((e) => `${e.line}:${e.col} ${e.path}: ${e.message}`).join('\n'));
  return r.snapshot;
}

function assertNoKeys(t: Test, text: string, what: string): void {
  for (const [name, value] of Object.entries(KEYS)) {
    t.notOk(text.includes(value), `${what} does not contain the key ${name}`);
  }
  t.notOk(text.includes('oauth-SECRET'), `${what} does not contain the oauth credential`);
  t.notOk(text.includes('user:secret'), `${what} does not contain the proxy credentials`);
}

const summarise = (s: Snapshot) =>
  s.channels.map((c) => ({
    name: c.name,
    url: c.url,
    priority: c.priority,
    enabled: c.enabled,
    models: c.models,
    modelMap: c.modelMap,
    auth: c.auth,
    keys: c.keys.map((k) => k.value),
  }));

t.test('seed schema: channels, keys in a 0600 env file, the old database untouched', async (t) => {
  const db = await seedDb(t);
  const before = sha(db);
  const filesBefore = readdirSync(dirname(db)).sort();
  const dir = tmpDir(t);
  const r = await run([db, '--out', 'channels.yaml', '--env-file', 'keys.env'], dir);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, '', 'nothing on stdout when --out is given');
  const yaml = readFileSync(join(dir, 'channels.yaml'), 'utf8');
  const envText = readFileSync(join(dir, 'keys.env'), 'utf8');
  t.equal(statSync(join(dir, 'keys.env')).mode & 0o777, 0o600, 'env file is mode 0600');

  const snap = await load(yaml, envText, dir);
  t.same(summarise(snap), [
    {
      name: 'anthropic-main',
      url: 'https://api.anthropic.com',
      priority: 10,
      enabled: true,
      models: ['claude-sonnet-4-5', 'claude-opus-4-1'],
      modelMap: {},
      auth: 'x-api-key',
      keys: [KEYS.main],
    },
    {
      name: 'relay',
      url: 'https://relay.example.com/api',
      priority: 5,
      enabled: false,
      models: ['claude-sonnet-4-5'],
      modelMap: {},
      auth: 'both',
      keys: [KEYS.relayA],
    },
    {
      name: 'backup',
      url: 'https://backup.example.com',
      priority: 0,
      enabled: true,
      models: ['claude-sonnet-4-5', 'claude-haiku-4-5'],
      modelMap: {},
      auth: 'both',
      keys: [KEYS.backup],
    },
  ]);
  t.same(
    snap.warnings.filter((w) => /literal secret/.test(w.message)),
    [],
    'every key is a reference (no literal-secret warning)',
  );
  t.match(yaml, /api_key: \$\{CCLOAD_KEY_ANTHROPIC_MAIN\}/);
  t.match(envText, /^CCLOAD_KEY_ANTHROPIC_MAIN='sk-ant-api03-MAINKEY-0001-zzzz'$/m);
  assertNoKeys(t, yaml, 'the YAML');
  assertNoKeys(t, r.stderr, 'the summary');
  t.match(r.stderr, /3 channel\(s\) imported \(1 disabled\), 3 key\(s\), 0 skipped/);

  t.equal(sha(db), before, 'the database bytes are unchanged');
  t.same(readdirSync(dirname(db)).sort(), filesBefore, 'no journal or WAL file was created beside it');
});

t.test('later schema: api_keys table, comma keys, redirects, types, collisions', async (t) => {
  const db = await laterDb(t);
  const dir = tmpDir(t);
  const r = await run([db, '--out', 'later.yaml'], dir);
  t.equal(r.code, 0, r.stderr);
  const envPath = join(dir, 'later.env');
  t.equal(statSync(envPath).mode & 0o777, 0o600, 'the default env file sits beside --out, mode 0600');
  const yaml = readFileSync(join(dir, 'later.yaml'), 'utf8');
  const envText = readFileSync(envPath, 'utf8');
  const snap = await load(yaml, envText, dir);
  t.same(summarise(snap), [
    {
      name: 'relay',
      url: 'https://relay.example.com',
      priority: 10,
      enabled: true,
      models: ['claude-sonnet-4-5', 'claude-3-5-haiku-latest'],
      modelMap: { 'claude-3-5-haiku-latest': 'claude-haiku-4-5' },
      auth: 'both',
      keys: [KEYS.relayA, KEYS.relayB],
    },
    {
      name: 'pooled',
      url: 'https://pool.example.com',
      priority: 5,
      enabled: true,
      models: ['claude-sonnet-4-5', 'claude-opus-4-1'],
      modelMap: {},
      auth: 'both',
      keys: [KEYS.pooledA, KEYS.pooledB, KEYS.pooledC],
    },
    {
      name: 'Pooled',
      url: 'https://pool-b.example.com',
      priority: 5,
      enabled: false,
      models: ['claude-sonnet-4-5'],
      modelMap: {},
      auth: 'both',
      keys: [KEYS.hash],
    },
    {
      name: 'pooled-5',
      url: 'https://pool-c.example.com',
      priority: 1,
      enabled: false,
      models: undefined,
      modelMap: {},
      auth: 'both',
      keys: [],
    },
  ]);
  t.match(yaml, /keys: \["\$\{CCLOAD_KEY_RELAY\}", "\$\{CCLOAD_KEY_RELAY_2\}"\]/);
  t.match(yaml, /\$\{CCLOAD_KEY_POOLED_3\}/, 'three pooled keys');
  t.match(yaml, /api_key: \$\{CCLOAD_KEY_POOLED_ID4\}/, '"Pooled" gets its own env name');
  t.match(yaml, /# ccLoad also listed: https:\/\/relay-2\.example\.com/);
  assertNoKeys(t, yaml, 'the YAML');
  assertNoKeys(t, r.stderr, 'the summary');
  assertNoKeys(t, r.stdout, 'stdout');
  const expected = [
    /skipped "gemini-cheap" \(#3\): channel_type "gemini"/,
    /channel "relay" \(#1\): 2 URLs; only the first/,
    /channel "relay" \(#1\): redirect "claude-opus-4-1" → "claude-sonnet-4-5" is dropped/,
    /channel "relay" \(#1\): rpm_limit=60, which ccload has no equivalent for/,
    /channel "relay" \(#1\): proxy_url is set, which ccload has no equivalent for/,
    /channels columns not imported \(unknown to this importer\): shiny_new_setting/,
    /channel "pooled" \(#2\): 1 disabled key\(s\) not imported/,
    /channel "pooled" \(#2\): key #4 \(…0005\) is listed twice/,
    /channel "pooled" \(#2\): key_strategy sequential: ccload rotates/,
    /channel "pooled!" \(#5\): imported as "pooled-5"/,
    /channel "pooled!" \(#5\): lists no models/,
    /channel "pooled!" \(#5\): no key in the database/,
    /1 client token\(s\) in auth_tokens are not imported/,
  ];
  for (const re of expected) t.match(r.stderr, re);
  t.notMatch(r.stderr, /channel "relay" \(#1\): key_strategy/, 'round_robin needs no warning');
});

t.test('latest schema: channel_models, oauth channels skipped, per-key model limits', async (t) => {
  const db = await latestDb(t);
  const dir = tmpDir(t);
  const r = await run([db], dir);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^# Channels imported from the Go ccLoad database/, 'the YAML goes to stdout');
  const envText = readFileSync(join(dir, 'ccload-keys.env'), 'utf8');
  t.equal(statSync(join(dir, 'ccload-keys.env')).mode & 0o777, 0o600);
  const snap = await load(r.stdout, envText, dir);
  t.same(summarise(snap), [
    {
      name: 'official',
      url: 'https://api.anthropic.com',
      priority: 20,
      enabled: true,
      models: ['claude-3-5-haiku-latest', 'claude-sonnet-4-5'],
      modelMap: { 'claude-3-5-haiku-latest': 'claude-haiku-4-5' },
      auth: 'x-api-key',
      keys: [KEYS.main, KEYS.backup],
    },
  ]);
  assertNoKeys(t, r.stdout, 'stdout');
  assertNoKeys(t, r.stderr, 'the summary');
  t.match(r.stderr, /skipped "max-plan" \(#8\): auth_type "oauth"/);
  t.match(r.stderr, /channel "official" \(#7\): key #1 is limited to some models/);
  t.match(r.stderr, /channel "official" \(#7\): 1 disabled model\(s\) not imported/);
});

t.test('refuses to overwrite without --force; --force keeps the env file 0600', async (t) => {
  const db = await seedDb(t);
  const dir = tmpDir(t);
  writeFileSync(join(dir, 'keys.env'), 'OLD=1\n', { mode: 0o644 });
  const r = await run([db, '--out', 'c.yaml', '--env-file', 'keys.env'], dir);
  t.equal(r.code, 1);
  t.match(r.stderr, /keys\.env exist\(s\); use --force/);
  t.equal(readFileSync(join(dir, 'keys.env'), 'utf8'), 'OLD=1\n', 'the existing file is untouched');
  t.same(readdirSync(dir).sort(), ['keys.env'], 'nothing else was written');

  const forced = await run([db, '--out', 'c.yaml', '--env-file', 'keys.env', '--force'], dir);
  t.equal(forced.code, 0, forced.stderr);
  t.equal(statSync(join(dir, 'keys.env')).mode & 0o777, 0o600, 'overwritten with mode 0600');
  t.match(readFileSync(join(dir, 'keys.env'), 'utf8'), /CCLOAD_KEY_BACKUP=/);
  t.same(readdirSync(dir).sort(), ['c.yaml', 'keys.env'], 'no temp file left behind');
});

t.test('unreadable inputs and usage errors', async (t) => {
  const dir = tmpDir(t);
  writeFileSync(join(dir, 'notes.txt'), 'this is not a database, just a long enough text file '.repeat(4));
  const noChannels = join(dir, 'other.db');
  const { createClient } = await import('@libsql/client');
  const c = createClient({ url: `file:${noChannels}` });
  await c.execute('CREATE TABLE things (id INTEGER PRIMARY KEY)');
  c.close();

  const cases: [string[], number, RegExp][] = [
    [[join(dir, 'missing.db')], 1, /missing\.db: no such file/],
    [[join(dir, 'notes.txt')], 1, /notes\.txt is not an SQLite database/],
    [[noChannels], 1, /has no "channels" table: not a ccLoad database/],
    [[], 64, /the path of the Go ccLoad database is missing/],
    [['a.db', 'b.db'], 64, /unexpected argument "b\.db"/],
    [['a.db', '--bogus'], 64, /unknown option "--bogus"/],
    [['a.db', '--out'], 64, /--out needs a FILE/],
  ];
  for (const [args, code, message] of cases) {
    const r = await run(args, dir);
    t.equal(r.code, code, `${args.join(' ')} exits ${code}`);
    t.match(r.stderr, message);
  }
  const help = await run(['--help'], dir);
  t.equal(help.code, 0);
  t.match(help.stdout, /usage: ccload import-ccload PATH_TO_OLD_DB/);
});

t.test('the ccload CLI runs the import (child process)', async (t) => {
  const db = await seedDb(t);
  const dir = tmpDir(t);
  const child = spawn(process.execPath, [MAIN, 'import-ccload', db, '--out', 'x.yaml'], {
    cwd: dir,
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' },
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
  });
  const code = await deadline(
    new Promise<number | null>((resolve) => child.once('close', resolve)),
    20_000,
    'ccload import-ccload',
  );
  t.equal(code, 0, stderr);
  t.match(stderr, /3 channel\(s\) imported/);
  t.equal(statSync(join(dir, 'x.env')).mode & 0o777, 0o600);
  const snap = await load(
    readFileSync(join(dir, 'x.yaml'), 'utf8'),
    readFileSync(join(dir, 'x.env'), 'utf8'),
    dir,
  );
  t.equal(snap.channels.length, 3);
});
