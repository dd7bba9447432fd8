/**
 * deploy/ccload.service: `systemd-analyze verify` finds nothing to say about it, its hardening
 * scores as `systemd-analyze security` "OK", it keeps the promises the daemon relies on (notify,
 * reload verdict, exit 78, drain time, writable config folder, state and runtime directories), and
 * its own ExecStart/ExecReload lines — run here with the install paths pointed at this checkout —
 * start a daemon, reload it, and fail a rejected reload.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import t from 'tap';
import { ConfigSchema } from '../../src/config/schema.js';
import { parseDuration } from '../../src/config/values.js';
import { DAEMON_NODE_FLAGS } from '../../src/operations/node-flags.js';
import { tmpDir } from '../helpers/tmp.js';
import { deadline, waitFor } from '../helpers/wait.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const UNIT_PATH = join(ROOT, 'deploy/ccload.service');
const UNIT = readFileSync(UNIT_PATH, 'utf8');
const INSTALL_DIR = '/opt/ccload';
const NODE = '/usr/bin/node';

/** `[Section]` → directive → every value it is given, in order (comments and blank lines skipped). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[(.+)\]$/.exec(line);
    if (section) {
      current = new Map();
      sections.set(section[1]!, current);
      continue;
    }
    const eq = line.indexOf('=');
    if (!current || eq < 0) continue;
    const key = line.slice(0, eq).trim();
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return sections;
}

const unit = parseUnit(UNIT);
const service = unit.get('Service') ?? new Map<string, string[]>();
const one = (key: string) => service.get(key)?.at(-1);
const env = new Map(
  (service.get('Environment') ?? []).map((e) => {
    const i = e.indexOf('=');
    return [e.slice(0, i), e.slice(i + 1)] as const;
  }),
);

/** The unit as it would be on a machine where this checkout is /opt/ccload and node is this node. */
function localUnit(): string {
  return UNIT.replaceAll(NODE, process.execPath).replaceAll(INSTALL_DIR, ROOT);
}

t.test('npm start starts the daemon with the same node flags as the unit', async (t) => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } };
  t.match(pkg.scripts.start, `node ${DAEMON_NODE_FLAGS.join(' ')} dist/src/main.js serve`);
});

t.test('the unit keeps the promises the daemon relies on', async (t) => {
  t.equal(one('Type'), 'notify', 'Type=notify: READY=1 comes from the daemon');
  t.equal(one('NotifyAccess'), 'all', 'systemd-notify is a child process, so NotifyAccess=all');
  t.match(
    one('ExecStart'),
    new RegExp(`^${NODE} ${DAEMON_NODE_FLAGS.join(' ')} ${INSTALL_DIR}/dist/src/main\\.js serve$`),
    'the daemon starts with the node flags of src/operations/node-flags.ts',
  );
  t.match(one('ExecReload'), new RegExp(`^${NODE} ${INSTALL_DIR}/dist/src/main\\.js reload$`));
  t.equal(one('RestartPreventExitStatus'), '78', 'an invalid config is not restarted in a loop');
  t.equal(one('Restart'), 'on-failure');
  t.equal(one('KillSignal'), 'SIGTERM');

  const drain = ConfigSchema.parse({ version: 1 }).server.drain_timeout;
  const stop = parseDuration(one('TimeoutStopSec') ?? '');
  t.ok(
    stop !== undefined && stop > drain,
    `TimeoutStopSec (${stop} ms) exceeds the drain timeout (${drain} ms)`,
  );

  const config = env.get('CCLOAD_CONFIG');
  t.equal(config, '/etc/ccload/ccload.yaml');
  t.ok(
    (service.get('ReadWritePaths') ?? []).some((p) => p.split(/\s+/).includes(dirname(config ?? '/'))),
    'the config folder is writable (write-back renames a temp file into it)',
  );
  t.equal(one('StateDirectory'), 'ccload');
  t.equal(env.get('SQLITE_PATH'), '%S/ccload/ccload.db', 'the database lives in the state directory');
  t.equal(one('RuntimeDirectory'), 'ccload', '$RUNTIME_DIRECTORY holds the control file');
  for (const [key, value] of [
    ['NoNewPrivileges', 'yes'],
    ['ProtectSystem', 'strict'],
    ['ProtectHome', 'yes'],
    ['PrivateTmp', 'yes'],
    ['PrivateDevices', 'yes'],
    ['RestrictAddressFamilies', 'AF_UNIX AF_INET AF_INET6'],
    ['CapabilityBoundingSet', ''],
  ] as const) {
    t.equal(one(key), value, `${key}=${value}`);
  }
  t.ok(service.get('SystemCallFilter')?.includes('@system-service'), 'SystemCallFilter=@system-service');
  t.equal(one('MemoryDenyWriteExecute'), undefined, 'no MemoryDenyWriteExecute: V8 needs W+X pages');
  t.match(UNIT, /^#LoadCredential=/m, 'LoadCredential= is shown');
  t.match(
    UNIT,
    /\$\{file:\/run\/credentials\/ccload\.service\//,
    'with the ${file:...} reference that reads it',
  );
  t.match(one('EnvironmentFile'), /^-\/etc\/ccload\/ccload\.env$/);
});

const hasAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;
const noAnalyze = hasAnalyze ? false : 'systemd-analyze is not installed (apt-get install systemd)';

t.test('systemd-analyze verify has nothing to say about the unit', { skip: noAnalyze }, async (t) => {
  const dir = tmpDir(t);
  const file = join(dir, 'ccload.service');
  writeFileSync(file, localUnit());
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', file], { encoding: 'utf8', timeout: 60_000 });
  const about = `${r.stdout}\n${r.stderr}`
    .split('\n')
    .filter((l) => l.includes('ccload.service') || l.includes(dir));
  t.same(about, [], 'no warning or error mentions the unit');
  t.equal(r.status, 0, r.stderr);

  // The check bites: an unknown directive is reported (so silence above means something).
  writeFileSync(file, localUnit().replace('[Service]\n', '[Service]\nNoSuchDirective=1\n'));
  const bad = spawnSync('systemd-analyze', ['verify', '--man=no', file], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  t.match(bad.stderr, /Unknown key 'NoSuchDirective'/);
});

t.test('systemd-analyze security rates the hardening OK', { skip: noAnalyze }, async (t) => {
  const dir = tmpDir(t);
  const file = join(dir, 'ccload.service');
  writeFileSync(file, localUnit());
  const r = spawnSync('systemd-analyze', ['security', '--offline=yes', '--no-pager', file], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (/unrecognized option|unknown option/i.test(r.stderr)) {
    t.comment('skipped: this systemd-analyze has no --offline (systemd < 250)');
    t.pass('nothing to rate offline');
    return;
  }
  const m = /Overall exposure level for ccload\.service: ([\d.]+) (\S+)/.exec(r.stdout);
  t.ok(m, `an exposure level is printed\n${r.stderr}`);
  const level = Number(m?.[1]);
  t.comment(`exposure level ${level} ${m?.[2]}`);
  t.ok(level <= 2, `exposure ${level} <= 2 (systemd calls up to 3.9 "OK")`);
});

/** Runs a unit Exec line (specifiers expanded) as a child with the unit's environment. */
function execLine(
  line: string,
  vars: Record<string, string>,
  extraEnv: Record<string, string>,
): ChildProcess {
  const expand = (s: string) => s.replace(/%([SdtC])/g, (_, k: string) => vars[k] ?? `%${k}`);
  const argv = expand(
    localUnit()
      .split('\n')
      .find((l) => l.startsWith(line))!
      .slice(line.length),
  ).split(' ');
  const unitEnv = Object.fromEntries([...env].map(([k, v]) => [k, expand(v)]));
  return spawn(argv[0]!, argv.slice(1), {
    cwd: vars['S'],
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...unitEnv, ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

function finished(child: ChildProcess, what: string): Promise<{ code: number | null; out: string }> {
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (out += s));
  return deadline(
    new Promise((resolve) => child.once('close', (code) => resolve({ code, out }))),
    20_000,
    what,
  );
}

t.test("the unit's ExecStart and ExecReload work as systemd would run them", async (t) => {
  const dir = tmpDir(t);
  const vars = { S: join(dir, 'state'), t: join(dir, 'run'), d: join(dir, 'credentials') };
  mkdirSync(vars.S);
  mkdirSync(vars.t);
  const configDir = join(dir, 'etc');
  mkdirSync(configDir);
  const config = join(configDir, 'ccload.yaml');
  const good = `version: 1
server: { listen: "127.0.0.1:0" }
admin: { password: "\${CCLOAD_PASS}" }
channels:
  - { name: main, url: "http://127.0.0.1:9", api_key: "\${KEY}" }
`;
  writeFileSync(config, good);
  // What systemd adds: RUNTIME_DIRECTORY from RuntimeDirectory=, the EnvironmentFile's variables.
  const extra = { CCLOAD_CONFIG: config, RUNTIME_DIRECTORY: vars.t, CCLOAD_PASS: 'pw', KEY: 'sk-ant-0001' };

  const daemon = execLine('ExecStart=', vars, extra);
  t.teardown(() => daemon.kill('SIGKILL'));
  const exited = finished(daemon, 'ExecStart');
  let listening = false;
  let output = '';
  createInterface({ input: daemon.stdout! }).on('line', (l) => {
    output += `${l}\n`;
    if (l.includes('"event":"listening"')) listening = true;
  });
  daemon.stderr?.on('data', (s: string) => (output += s));
  await waitFor(() => listening || daemon.exitCode !== null, {
    timeoutMs: 30_000,
    message: 'the daemon start',
  }).catch(() => {});
  if (!listening) {
    t.fail(`the daemon did not start (exit code ${daemon.exitCode}):\n${output}`);
    return;
  }

  const applied = await finished(execLine('ExecReload=', vars, extra), 'ExecReload');
  t.equal(applied.code, 0, `an unchanged config reloads: ${applied.out}`);
  t.match(applied.out, /^unchanged generation 1 /);

  writeFileSync(config, good.replace('api_key', 'api_kee'));
  const rejected = await finished(execLine('ExecReload=', vars, extra), 'ExecReload');
  t.equal(rejected.code, 1, 'a rejected config fails the reload (so `systemctl reload` fails)');
  t.match(rejected.out, /rejected: the previous config keeps serving/);

  daemon.kill('SIGTERM');
  t.equal((await exited).code, 0, 'SIGTERM ends the daemon with 0');

  const invalid = await finished(execLine('ExecStart=', vars, extra), 'ExecStart (invalid config)');
  t.equal(invalid.code, Number(one('RestartPreventExitStatus')), 'an invalid config exits 78');
});
