import { execFileSync } from 'node:child_process';
import { mkdirSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { hashContent } from '../../src/config/load.js';
import type { ReloadOutcome } from '../../src/config/reloader.js';
import type { Daemon } from '../../src/daemon.js';
import { createLogger } from '../../src/observability/log.js';
import { DEAD_URL, testConfig } from '../helpers/config.js';
import { startTestDaemon } from '../helpers/daemon.js';
import { deadline } from '../helpers/wait.js';

/** Resolves with the first outcome that satisfies `pred`, within `ms`. */
function outcome(daemon: Daemon, pred: (o: ReloadOutcome) => boolean, ms = 5000): Promise<ReloadOutcome> {
  const events = daemon.app.reloader.events;
  return deadline(
    new Promise<ReloadOutcome>((resolve) => {
      const on = (o: ReloadOutcome) => {
        if (!pred(o)) return;
        events.off('outcome', on);
        resolve(o);
      };
      events.on('outcome', on);
    }),
    ms,
    'the expected reload outcome',
  );
}

/** Resolves when the daemon applied exactly `text`. */
function applied(daemon: Daemon, text: string, ms?: number) {
  const hash = hashContent(text);
  return outcome(daemon, (o) => o.result === 'applied' && o.hash === hash, ms);
}

const v = (priority: number) => testConfig({ channels: [{ name: 'main', url: DEAD_URL, priority }] });
const invalid = `${v(1)}    bogus_key: 1\n`;

t.test('in-place writes are applied, and the measured latency is reported', async (t) => {
  const { daemon, file } = await startTestDaemon(t, v(1));
  const latencies: number[] = [];
  for (let p = 2; p <= 6; p++) {
    const wait = applied(daemon, v(p));
    const started = performance.now();
    writeFileSync(file, v(p));
    const o = await wait;
    latencies.push(performance.now() - started);
    t.equal(o.generation, p, `generation ${p}`);
  }
  t.equal(daemon.app.reloader.current.channels[0]?.priority, 6);
  latencies.sort((a, b) => a - b);
  t.comment(
    `edit→applied latency: median ${latencies[2]?.toFixed(0)} ms, max ${latencies[4]?.toFixed(0)} ms`,
  );
});

t.test('mv rename-over is applied, twice', async (t) => {
  const { daemon, dir, file } = await startTestDaemon(t, v(1));
  for (const p of [2, 3]) {
    const wait = applied(daemon, v(p));
    writeFileSync(join(dir, 'ccload.yaml.tmp'), v(p));
    renameSync(join(dir, 'ccload.yaml.tmp'), file);
    await wait;
  }
  t.equal(daemon.app.reloader.current.generation, 3);
});

t.test('a real vim save is applied, twice', async (t) => {
  const { daemon, file } = await startTestDaemon(t, v(1));
  for (const p of [2, 3]) {
    const wait = applied(daemon, v(p));
    // vim -es: substitute the priority line and write, the way an editor session does.
    execFileSync('vim', [
      '-es',
      '-u',
      'NONE',
      '-c',
      `%s/priority: ${p - 1}/priority: ${p}/`,
      '-c',
      'wq',
      file,
    ]);
    await wait;
  }
  t.equal(daemon.app.reloader.current.channels[0]?.priority, 3);
});

t.test('git checkout of another revision is applied, every time', async (t) => {
  const { daemon, dir } = await startTestDaemon(t, v(1));
  const git = (...args: string[]) =>
    execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { cwd: dir, stdio: 'pipe' });
  git('init', '-q');
  writeFileSync(join(dir, '.gitignore'), 'state/\n*.control\n');
  git('add', '.');
  git('commit', '-qm', 'one');
  let wait = applied(daemon, v(2));
  writeFileSync(join(dir, 'ccload.yaml'), v(2));
  await wait;
  git('commit', '-qam', 'two');
  for (const [rev, p] of [
    ['HEAD~1', 1],
    ['main', 2],
    ['HEAD~1', 1],
  ] as const) {
    wait = applied(daemon, v(p));
    git('checkout', '-q', rev === 'main' ? '-' : rev);
    await wait;
  }
  t.equal(daemon.app.reloader.current.channels[0]?.priority, 1);
  t.equal(daemon.app.reloader.current.generation, 5);
});

t.test('a Kubernetes-style ..data symlink swap is applied', async (t) => {
  const dir = join(
    (await import('node:os')).tmpdir(),
    `ccload-k8s-${process.pid}-${Math.random().toString(36).slice(2)}`,
  );
  mkdirSync(join(dir, '..2026_01'), { recursive: true });
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, '..2026_01', 'ccload.yaml'), v(1));
  symlinkSync('..2026_01', join(dir, '..data'));
  symlinkSync('..data/ccload.yaml', join(dir, 'ccload.yaml'));
  const { daemon } = await startTestDaemon(t, '', { dir, file: join(dir, 'ccload.yaml') });
  for (const [n, p] of [
    ['..2026_02', 2],
    ['..2026_03', 3],
  ] as const) {
    mkdirSync(join(dir, n));
    writeFileSync(join(dir, n, 'ccload.yaml'), v(p));
    const wait = applied(daemon, v(p));
    symlinkSync(n, join(dir, '..data_tmp'));
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    await wait;
  }
  t.equal(daemon.app.reloader.current.channels[0]?.priority, 3);
});

t.test('a deleted then re-created file: rejected while missing, applied when back', async (t) => {
  const { daemon, file } = await startTestDaemon(t, v(1));
  const gone = outcome(daemon, (o) => o.result === 'rejected');
  unlinkSync(file);
  const r = await gone;
  t.match(r.errors[0]?.message, /file not found/);
  t.equal(daemon.app.reloader.current.generation, 1, 'the old snapshot keeps serving');
  const back = applied(daemon, v(2));
  writeFileSync(file, v(2));
  await back;
  t.equal(daemon.app.reloader.lastAttempt.ok, true);
});

t.test('invalid → valid → invalid: the last good snapshot keeps serving', async (t) => {
  const { daemon, file } = await startTestDaemon(t, v(1));
  let wait = outcome(daemon, (o) => o.result === 'rejected');
  writeFileSync(file, invalid);
  let r = await wait;
  t.equal(r.errors[0]?.line, 12);
  t.match(r.errors[0]?.path, 'channels[0].bogus_key');
  t.equal(daemon.app.reloader.current.generation, 1);
  t.equal(daemon.app.reloader.lastAttempt.ok, false);

  wait = applied(daemon, v(2));
  writeFileSync(file, v(2));
  await wait;
  t.equal(daemon.app.reloader.lastAttempt.ok, true);

  wait = outcome(daemon, (o) => o.result === 'rejected');
  writeFileSync(file, 'version: 1\nchannels: [\n');
  r = await wait;
  t.match(r.errors[0]?.message, /YAML/);
  t.equal(daemon.app.reloader.current.generation, 2);
  t.equal(daemon.app.reloader.current.channels[0]?.priority, 2);
});

t.test('a burst of 50 writes in 200 ms ends on the last content', async (t) => {
  const { daemon, file } = await startTestDaemon(t, v(1));
  const last = v(1000 + 49);
  const wait = applied(daemon, last);
  for (let i = 0; i < 50; i++) {
    writeFileSync(file, v(1000 + i));
    await new Promise((r) => setTimeout(r, 4));
  }
  await wait;
  t.equal(daemon.app.reloader.current.channels[0]?.priority, 1049);
  t.ok(
    daemon.app.reloader.current.generation < 20,
    `coalesced: ${daemon.app.reloader.current.generation} generations`,
  );
});

t.test('unchanged content does not bump the generation', async (t) => {
  const { daemon, file } = await startTestDaemon(t, v(1));
  const wait = outcome(daemon, (o) => o.source === 'file');
  writeFileSync(file, v(1));
  const o = await wait;
  t.equal(o.result, 'unchanged');
  t.equal(daemon.app.reloader.current.generation, 1);
  const api = await daemon.app.reloader.request('api');
  t.equal(api.result, 'unchanged');
  t.equal(daemon.app.reloader.current.generation, 1);
});

t.test('requests during a run share the next run (coalescing)', async (t) => {
  const { daemon, file } = await startTestDaemon(t, v(1));
  writeFileSync(file, v(2));
  const all = await Promise.all([1, 2, 3, 4, 5].map(() => daemon.app.reloader.request('signal')));
  t.equal(all[0]?.result, 'applied');
  t.ok(
    all.slice(1).every((o) => o.result === 'unchanged' || o.result === 'applied'),
    'later requests see the same file',
  );
  t.equal(daemon.app.reloader.current.generation, 2, 'only one generation for one change');
});

t.test('in-flight work keeps the snapshot it started with', async (t) => {
  const { daemon, file } = await startTestDaemon(t, v(1));
  const held = daemon.app.reloader.current;
  writeFileSync(file, v(2));
  await daemon.app.reloader.request('signal');
  t.equal(held.channels[0]?.priority, 1, 'the held snapshot is unchanged');
  t.ok(Object.isFrozen(held.channels));
  t.equal(daemon.app.reloader.current.channels[0]?.priority, 2);
});

t.test('one rejected save reported twice is recorded once', async (t) => {
  const { daemon, file } = await startTestDaemon(t, v(1));
  const seen: ReloadOutcome[] = [];
  daemon.app.reloader.events.on('outcome', (o) => seen.push(o));
  writeFileSync(file, invalid);
  const first = await daemon.app.reloader.request('file');
  const second = await daemon.app.reloader.request('file');
  t.equal(first.result, 'rejected');
  t.equal(second.result, 'rejected');
  t.ok(second.repeat, 'the second report is a repeat');
  t.equal(
    seen.filter((o) => o.result === 'rejected' && o.fileHash === first.fileHash).length,
    1,
    'emitted once',
  );
  const explicit = await daemon.app.reloader.request('signal');
  t.notOk(explicit.repeat, 'an explicit reload judges the file again');
});

t.test('server.log_level is applied on reload, not only at start-up', async (t) => {
  const lines: { level: number; msg: string }[] = [];
  const log = createLogger({
    level: 'info',
    format: 'pretty',
    destination: { write: (line: string) => void lines.push(JSON.parse(line)) },
  });
  const at = (level: string) => testConfig({ server: { log_level: level } });
  const { daemon, file } = await startTestDaemon(t, at('info'), { log });
  t.equal(log.level, 'info');

  let wait = applied(daemon, at('warn'));
  writeFileSync(file, at('warn'));
  await wait;
  t.equal(log.level, 'warn', 'raised to warn');
  log.info('an info line at warn');
  t.notOk(
    lines.some((l) => l.msg === 'an info line at warn'),
    'info lines are dropped at warn',
  );

  wait = applied(daemon, at('debug'));
  writeFileSync(file, at('debug'));
  await wait;
  t.equal(log.level, 'debug', 'lowered to debug');
  t.ok(
    lines.some((l) => l.msg === 'log level is now debug (server.log_level)'),
    'the change is logged',
  );
  log.debug('a debug line');
  t.ok(
    lines.some((l) => l.msg === 'a debug line'),
    'debug lines are written at debug',
  );
});
