/**
 * The command line as operators and systemd use it: `node dist/src/main.js` run as a child process
 * (check, serve, reload, signals, exit codes, .env). Daemon children are awaited through their
 * `"event":"listening"` log line, never by sleeping, and killed in teardown.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { controlFilePath, readControlFile, writeControlFile } from '../src/operations/control.js';
import { DEAD_URL, testConfig } from './helpers/config.js';
import { type Teardownable, tmpDir } from './helpers/tmp.js';
import { deadline } from './helpers/wait.js';

/** The built entry point (this file runs from dist/test). */
const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));
const sha = (text: string) => `sha256:${createHash('sha256').update(text).digest('hex')}`;

/**
 * A clean environment for children: nothing of ours leaks in (CCLOAD_CONFIG, PORT, SQLITE_PATH…),
 * only PATH and tap's coverage bookkeeping, plus what a test adds.
 */
function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = { PATH: process.env['PATH'] ?? '/usr/bin:/bin' };
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('_TAPJS_PROCESSINFO_') && v !== undefined) env[k] = v;
  }
  return { ...env, ...extra };
}

/** What a finished `ccload` run left behind. */
interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `ccload ...args` to completion (bounded). */
function ccload(
  args: string[],
  opts: { cwd: string; env?: Record<string, string>; timeoutMs?: number },
): Promise<Run> {
  const child = spawn(process.execPath, [MAIN, ...args], { cwd: opts.cwd, env: childEnv(opts.env) });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const done = new Promise<Run>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return deadline(done, opts.timeoutMs ?? 20_000, `ccload ${args.join(' ')}`).catch((err: unknown) => {
    child.kill('SIGKILL');
    throw err;
  });
}

/** One parsed pino line of a daemon child. */
type LogLine = Record<string, unknown>;

/** A `ccload serve` child, ready (it logged `"event":"listening"`). */
interface DaemonChild {
  readonly proc: ChildProcess;
  readonly url: string;
  readonly lines: LogLine[];
  /** Resolves with the first log line (past or future) that satisfies `pred`. */
  waitLog(pred: (l: LogLine) => boolean, what: string, ms?: number): Promise<LogLine>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
}

/** Starts `ccload serve` as a child and waits for its listening line; killed in teardown. */
async function serveChild(
  t: Teardownable,
  args: string[],
  opts: { cwd: string; env: Record<string, string> },
): Promise<DaemonChild> {
  const proc = spawn(process.execPath, [MAIN, 'serve', ...args], { cwd: opts.cwd, env: childEnv(opts.env) });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  );
  t.teardown(async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill('SIGCONT');
    proc.kill('SIGKILL');
    await exited;
  });
  const lines: LogLine[] = [];
  const events = new EventEmitter<{ line: [LogLine] }>();
  createInterface({ input: proc.stdout! }).on('line', (text) => {
    let line: LogLine;
    try {
      line = JSON.parse(text) as LogLine;
    } catch {
      line = { raw: text };
    }
    lines.push(line);
    events.emit('line', line);
  });
  let stderr = '';
  proc.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const waitLog = (pred: (l: LogLine) => boolean, what: string, ms = 10_000) => {
    const seen = lines.find(pred);
    if (seen) return Promise.resolve(seen);
    let on: ((l: LogLine) => void) | undefined;
    const found = new Promise<LogLine>((resolve, reject) => {
      on = (l) => {
        if (pred(l)) resolve(l);
      };
      events.on('line', on);
      void exited.then(({ code, signal }) =>
        reject(new Error(`daemon exited (${code ?? signal}) before ${what}; stderr: ${stderr}`)),
      );
    });
    return deadline(found, ms, what).finally(() => events.off('line', on!));
  };
  const listening = await waitLog((l) => l['event'] === 'listening', 'the listening log line');
  return { proc, url: String(listening['url']), lines, waitLog, exited, stderr: () => stderr };
}

/** The daemon's config: one channel whose key is read from `secret.txt` (so SIGHUP has something to pick up). */
const daemonConfig = (priority: number, extra = '') =>
  testConfig({ channels: [{ name: 'main', url: DEAD_URL, apiKey: '${file:secret.txt}', priority }], extra });

t.test('--help, --version and usage errors', async (t) => {
  const cwd = tmpDir(t);
  const help = await ccload(['--help'], { cwd });
  t.equal(help.code, 0);
  t.match(help.stdout, /^usage:\n/);
  t.match(help.stdout, /ccload check \[FILE\]/);
  t.match(help.stdout, /ccload reload \[--config FILE\]/);
  t.equal(help.stderr, '');

  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  const version = await ccload(['--version'], { cwd });
  t.equal(version.code, 0);
  t.equal(version.stdout, `ccload ${pkg.version}\n`);

  const unknown = await ccload(['frobnicate'], { cwd });
  t.equal(unknown.code, 64, 'EX_USAGE');
  t.match(unknown.stderr, /unknown command "frobnicate"/);
  t.match(unknown.stderr, /usage:/);
  t.equal(unknown.stdout, '');

  const badFlag = await ccload(['check', '--bogus'], { cwd });
  t.equal(badFlag.code, 64);
  t.match(badFlag.stderr, /unexpected argument "--bogus"/);
  const noFile = await ccload(['serve', '--config'], { cwd });
  t.equal(noFile.code, 64);
  t.match(noFile.stderr, /--config needs a FILE/);
});

t.test('check: ok <hash> on a good file, warnings on stderr', async (t) => {
  const cwd = tmpDir(t);
  const text = `version: 1
server:
  listen: 127.0.0.1:0
channels:
  - name: main
    url: http://127.0.0.1:9
    api_key: sk-ant-literal-key-1234
`;
  writeFileSync(join(cwd, 'good.yaml'), text);
  const r = await ccload(['check', 'good.yaml'], { cwd });
  t.equal(r.code, 0);
  t.match(r.stdout, /^ok sha256:[0-9a-f]{64}\n$/);
  t.equal(r.stdout, `ok ${sha(text)}\n`, 'the hash is the sha256 of the file bytes');
  t.match(
    r.stderr,
    /^warning: good\.yaml:7:14 channels\[0\]\.api_key: a literal secret in the file/m,
    'the literal key is a warning, with its place',
  );
  t.match(r.stderr, /^warning: good\.yaml:\d+:\d+ admin: no admin password/m);
  t.notMatch(r.stderr, /sk-ant-literal-key-1234/, 'the secret is not echoed');

  writeFileSync(join(cwd, 'ccload.yaml'), text);
  const byDefault = await ccload(['check'], { cwd });
  t.equal(byDefault.stdout, `ok ${sha(text)}\n`, 'without FILE: ./ccload.yaml');
  const byEnv = await ccload(['check'], { cwd, env: { CCLOAD_CONFIG: 'good.yaml' } });
  t.equal(byEnv.code, 0);
  t.match(byEnv.stderr, /warning: good\.yaml:/, 'CCLOAD_CONFIG names the file');
});

t.test('check: every error as FILE:LINE:COL path: message, exit 1', async (t) => {
  const cwd = tmpDir(t);
  writeFileSync(
    join(cwd, 'bad.yaml'),
    `version: 1
server:
  listen: 127.0.0.1:0
admin:
  password: \${TEST_PASS}
channels:
  - name: main
    url: not a url
    api_key: \${UNSET_VARIABLE_X}
    priority: 10
    bogus_key: 1
`,
  );
  const r = await ccload(['check', 'bad.yaml'], { cwd, env: { TEST_PASS: 'pw' } });
  t.equal(r.code, 1);
  const lines = r.stdout.trimEnd().split('\n');
  t.equal(lines.length, 3, 'one line per error');
  for (const l of lines) t.match(l, /^bad\.yaml:\d+:\d+ \S+: .+$/, 'FILE:LINE:COL path: message');
  t.match(lines[0], /^bad\.yaml:8:10 channels\[0\]\.url: /);
  t.match(
    lines[1],
    /^bad\.yaml:9:14 channels\[0\]\.api_key: environment variable UNSET_VARIABLE_X is not set/,
  );
  t.match(lines[2], /^bad\.yaml:11:5 channels\[0\]\.bogus_key: unknown key "bogus_key"/);
  t.notMatch(r.stdout, /^ok /m);

  writeFileSync(join(cwd, 'syntax.yaml'), 'version: 1\nchannels: [\n');
  const syntax = await ccload(['check', 'syntax.yaml'], { cwd });
  t.equal(syntax.code, 1);
  t.match(syntax.stdout, /^syntax\.yaml:\d+:\d+ YAML /m);

  const missing = await ccload(['check', 'missing.yaml'], { cwd });
  t.equal(missing.code, 1);
  t.equal(missing.stdout, 'missing.yaml:1:1 file not found\n');
});

t.test('serve: an invalid or missing config exits 78 with the errors on stderr', async (t) => {
  const cwd = tmpDir(t);
  writeFileSync(join(cwd, 'bad.yaml'), `${daemonConfig(1)}    bogus_key: 1\n`);
  writeFileSync(join(cwd, 'secret.txt'), 'sk-ant-secret-0001\n');
  const bad = await ccload(['serve', '--config', 'bad.yaml'], { cwd, env: { TEST_PASS: 'pw' } });
  t.equal(bad.code, 78, 'EX_CONFIG');
  t.match(bad.stderr, /cannot start, the configuration is invalid/);
  t.match(bad.stderr, /^bad\.yaml:12:5 channels\[0\]\.bogus_key: unknown key "bogus_key"/m);
  t.notMatch(bad.stdout, /"event":"listening"/);

  const missing = await ccload(['--config', 'nothere.yaml'], { cwd });
  t.equal(missing.code, 78, 'serve is the default command');
  t.match(missing.stderr, /^nothere\.yaml:1:1 file not found$/m);
});

t.test(
  'check and serve: a ${file:} FIFO or /dev/zero is an error naming the reason, not a hang (issue 10 finding 2)',
  async (t) => {
    const cwd = tmpDir(t);
    execFileSync('mkfifo', [join(cwd, 'key.fifo')]);
    for (const [ref, reason] of [
      ['key.fifo', 'not a regular file (a FIFO)'],
      ['/dev/zero', 'not a regular file (a character device)'],
    ] as const) {
      writeFileSync(join(cwd, 'c.yaml'), daemonConfig(1).replace(/api_key: .*/, `api_key: \${file:${ref}}`));
      const check = await ccload(['check', 'c.yaml'], { cwd, env: { TEST_PASS: 'pw' }, timeoutMs: 15_000 });
      t.equal(check.code, 1, `check ${ref}: exit 1`);
      t.match(
        check.stdout,
        new RegExp(
          `^c\\.yaml:\\d+:\\d+ channels\\[0\\]\\.api_key: cannot read .*: ${reason.replace(/[()]/g, '\\$&')}$`,
          'm',
        ),
      );
      const serve = await ccload(['serve', '--config', 'c.yaml'], {
        cwd,
        env: { TEST_PASS: 'pw' },
        timeoutMs: 15_000,
      });
      t.equal(serve.code, 78, `serve ${ref}: EX_CONFIG`);
      t.match(serve.stderr, reason);
    }
  },
);

t.test('reload, SIGHUP and SIGTERM against a daemon child', async (t) => {
  const dir = tmpDir(t);
  const runDir = tmpDir(t);
  const file = join(dir, 'ccload.yaml');
  writeFileSync(file, daemonConfig(1));
  writeFileSync(join(dir, 'secret.txt'), 'sk-ant-secret-0001\n');
  const env = { TEST_PASS: 'pw', RUNTIME_DIRECTORY: runDir };
  const daemon = await serveChild(t, ['--config', 'ccload.yaml'], { cwd: dir, env });
  t.match(daemon.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  t.not(daemon.url, 'http://127.0.0.1:0', 'the real port, not the configured 0');

  const controlPath = controlFilePath(file, { RUNTIME_DIRECTORY: runDir });
  const control = readControlFile(controlPath);
  t.same(control && { pid: control.pid, url: control.url }, { pid: daemon.proc.pid, url: daemon.url });
  const status = async () => {
    const res = await fetch(`${daemon.url}/admin/config/status`, {
      headers: { authorization: `Bearer ${control?.token}` },
    });
    t.equal(res.status, 200);
    return (await res.json()) as { generation: number; hash: string; source: string; last_attempt: object };
  };
  const reload = () => ccload(['reload', '--config', 'ccload.yaml'], { cwd: dir, env });

  let r = await reload();
  t.equal(r.code, 0, 'nothing changed: exit 0');
  t.equal(r.stdout, `unchanged generation 1 ${sha(daemonConfig(1))}\n`);

  // Written right before the reload: the daemon's own watcher (100 ms debounce) usually applies it
  // before `ccload reload` has even started, so the verdict may be "unchanged" — but it must be
  // about the new file, and only one generation may come of it.
  writeFileSync(file, daemonConfig(2));
  r = await reload();
  t.equal(r.code, 0);
  t.match(r.stdout, new RegExp(`^(applied|unchanged) generation 2 ${sha(daemonConfig(2))}\n$`));
  t.equal((await status()).generation, 2);

  // The daemon is stopped while the file changes and resumed only once the request has reached it,
  // so the watcher cannot have run: the verdict must come from reading the file itself.
  const relay = await holdingRelay(t, daemon.url, () => daemon.proc.kill('SIGCONT'));
  const relayRun = tmpDir(t);
  writeControlFile(controlFilePath(file, { RUNTIME_DIRECTORY: relayRun }), { ...control!, url: relay.url });
  daemon.proc.kill('SIGSTOP');
  writeFileSync(file, daemonConfig(3));
  r = await ccload(['reload', '--config', 'ccload.yaml'], {
    cwd: dir,
    env: { ...env, RUNTIME_DIRECTORY: relayRun },
  });
  t.equal(relay.requests(), 1, 'the request went through the relay');
  t.equal(r.code, 0);
  // The request is in the daemon's socket before it resumes, so it is normally served long before
  // the watcher's 100 ms debounce ends. On a starved CI core the watcher can still win: then the
  // generation says so (loaded from 'file'), and the reload's verdict must be about that file.
  const third = await status();
  t.equal(third.generation, 3, 'one generation came of it');
  if (third.source === 'file') {
    t.comment('the watcher applied generation 3 before the reload request was served');
    t.equal(r.stdout, `unchanged generation 3 ${sha(daemonConfig(3))}\n`, 'the reload read the new file');
  } else {
    t.equal(third.source, 'api');
    t.equal(r.stdout, `applied generation 3 ${sha(daemonConfig(3))}\n`, 'applied by the reload itself');
  }

  writeFileSync(file, daemonConfig(4, '    bogus_key: 1\n  - name: main\n    url: ftp://x\n'));
  r = await reload();
  t.equal(r.code, 1, 'rejected: exit 1');
  const out = r.stdout.trimEnd().split('\n');
  t.equal(out[0], 'rejected: the previous config keeps serving');
  t.ok(out.length >= 3, `several error lines:\n${r.stdout}`);
  for (const l of out.slice(1)) t.match(l, /^ccload\.yaml:\d+:\d+ \S+: .+$/);
  t.match(r.stdout, /^ccload\.yaml:12:5 channels\[0\]\.bogus_key: unknown key/m);
  t.match(r.stdout, /^ccload\.yaml:\d+:\d+ channels\[1\]\.url: /m);
  const afterReject = await status();
  t.equal(afterReject.generation, 3, 'the last good config keeps serving');
  t.match(afterReject.last_attempt, { ok: false });

  writeFileSync(file, daemonConfig(5));
  r = await reload();
  t.equal(r.code, 0);
  t.match(r.stdout, / generation 4 /);

  // A rotated ${file:...} secret: same file bytes, new value. Only SIGHUP (or an API reload) sees it.
  writeFileSync(join(dir, 'secret.txt'), 'sk-ant-secret-0002\n');
  daemon.proc.kill('SIGHUP');
  const hup = await daemon.waitLog(
    (l) => l['event'] === 'config_reload' && l['cause'] === 'signal',
    'the SIGHUP reload log line',
  );
  t.equal(hup['verdict'], 'applied');
  t.equal(hup['generation'], 5);
  const afterHup = await status();
  t.equal(afterHup.generation, 5, 'SIGHUP applied a new generation');
  t.equal(afterHup.source, 'signal');
  t.equal(afterHup.hash, sha(daemonConfig(5)), 'same file, same hash');
  t.notMatch(JSON.stringify(daemon.lines), /sk-ant-secret-000/, 'the key value is never logged');

  daemon.proc.kill('SIGTERM');
  const exit = await deadline(daemon.exited, 10_000, 'the daemon exit after SIGTERM');
  t.same(exit, { code: 0, signal: null }, 'SIGTERM → exit 0');
  t.notOk(existsSync(controlPath), 'the control file is removed');
  t.equal(daemon.stderr(), '', 'nothing on stderr');

  r = await reload();
  t.equal(r.code, 1, 'no daemon: exit 1');
  t.match(r.stderr, /no running daemon found for .*ccload\.yaml/);
  t.equal(r.stdout, '');
});

t.test('reload: a stale control file (daemon gone) fails clearly', async (t) => {
  const dir = tmpDir(t);
  const file = join(dir, 'ccload.yaml');
  writeFileSync(file, daemonConfig(1));
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const { port } = closed.address() as { port: number };
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  writeControlFile(controlFilePath(file, { RUNTIME_DIRECTORY: dir }), {
    pid: 999_999,
    url: `http://127.0.0.1:${port}`,
    token: 'stale',
  });
  const r = await ccload(['reload', '--config', 'ccload.yaml'], {
    cwd: dir,
    env: { RUNTIME_DIRECTORY: dir },
  });
  t.equal(r.code, 1);
  t.match(r.stderr, new RegExp(`the daemon at http://127\\.0\\.0\\.1:${port} did not answer`));
});

t.test('.env in the working directory is loaded; variables already set win', async (t) => {
  const cwd = tmpDir(t);
  writeFileSync(
    join(cwd, 'ccload.yaml'),
    `version: 1
channels:
  - name: main
    url: \${UPSTREAM}
    api_key: \${DOTENV_KEY}
`,
  );
  writeFileSync(join(cwd, '.env'), 'DOTENV_KEY=sk-ant-from-dotenv-0001\nUPSTREAM=http://127.0.0.1:9\n');
  const loaded = await ccload(['check'], { cwd });
  t.equal(loaded.code, 0, `variables come from .env: ${loaded.stdout}`);

  writeFileSync(join(cwd, '.env'), 'DOTENV_KEY=sk-ant-from-dotenv-0001\nUPSTREAM=not-a-url\n');
  const fromDotenv = await ccload(['check'], { cwd });
  t.equal(fromDotenv.code, 1, 'the .env value is used when the variable is unset');
  t.match(fromDotenv.stdout, /^ccload\.yaml:4:10 channels\[0\]\.url: /m);
  const envWins = await ccload(['check'], { cwd, env: { UPSTREAM: 'http://127.0.0.1:8' } });
  t.equal(envWins.code, 0, `the environment wins over .env: ${envWins.stdout}`);

  writeFileSync(join(cwd, 'other.yaml'), 'version: 1\nchannels: []\n');
  writeFileSync(join(cwd, '.env'), 'CCLOAD_CONFIG=other.yaml\n');
  const configFromDotenv = await ccload(['check'], { cwd });
  t.equal(configFromDotenv.code, 1);
  t.match(configFromDotenv.stdout, /^other\.yaml:/m, '.env can name the config file too');
});

/**
 * A loopback TCP relay to `target` that calls `onRequest` once the first complete request head has
 * been handed to the kernel for the target — the moment a stopped daemon may be resumed.
 */
async function holdingRelay(
  t: Teardownable,
  target: string,
  onRequest: () => void,
): Promise<{ url: string; requests(): number }> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  let requests = 0;
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(Number(port), hostname);
    sockets.add(client).add(upstream);
    let head = '';
    client.on('data', (chunk: Buffer) => {
      upstream.write(chunk, () => {
        if (head.includes('\r\n\r\n')) return;
        head += chunk.toString('latin1');
        if (head.includes('\r\n\r\n')) {
          requests++;
          onRequest();
        }
      });
    });
    upstream.pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  const addr = server.address() as { port: number };
  return { url: `http://127.0.0.1:${addr.port}`, requests: () => requests };
}
