/**
 * Store test helpers: a migrated database in a temp dir, a pino logger that records its lines, a
 * sample attempt record, a second process that holds the SQLite write lock on demand, and node
 * child processes for scripts.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import path from 'node:path';
import { pino } from 'pino';
import type { AttemptRecord } from '../../src/store/attempt.js';
import { type Database, type OpenOptions, openDatabase } from '../../src/store/db.js';
import { tmpDir } from '../helpers/tmp.js';
import { deadline } from '../helpers/wait.js';

/** The part of a tap test these helpers use. */
export interface TestLike {
  teardown(fn: () => unknown): void;
}

/** A `file:` URL for a database in a fresh temp dir, in a sub-folder that does not exist yet. */
export function tempDbUrl(t: TestLike): { url: string; file: string } {
  const file = path.join(tmpDir(t, 'ccload-store-'), 'data', 'ccload.db');
  return { url: `file:${file}`, file };
}

/** Opens (and migrates) a database in a temp dir; closed at teardown. */
export async function openTestDb(t: TestLike, opts: OpenOptions = {}): Promise<Database & { file: string }> {
  const { url, file } = tempDbUrl(t);
  const db = await openDatabase(url, opts);
  t.teardown(() => db.close());
  return Object.assign(db, { file });
}

/** One parsed pino line. */
export type LogLine = Record<string, unknown> & { level: number; msg?: string };

/** A real pino logger whose lines are kept in `lines`, with a way to await a message. */
export function captureLog(): {
  log: pino.Logger;
  lines: LogLine[];
  count(level: 'info' | 'warn' | 'error', msgPart?: string): number;
  next(msgPart: string, timeoutMs?: number): Promise<LogLine>;
} {
  const lines: LogLine[] = [];
  const events = new EventEmitter();
  const log = pino(
    { level: 'debug', base: null },
    {
      write(s: string) {
        const line = JSON.parse(s) as LogLine;
        lines.push(line);
        events.emit('line', line);
      },
    },
  );
  const levels = { info: 30, warn: 40, error: 50 } as const;
  const matches = (l: LogLine, part: string) => typeof l.msg === 'string' && l.msg.includes(part);
  return {
    log,
    lines,
    count: (level, part) =>
      lines.filter((l) => l.level === levels[level] && (!part || matches(l, part))).length,
    next(part, timeoutMs = 5000) {
      const seen = lines.length;
      return deadline(
        new Promise<LogLine>((resolve) => {
          const check = (l: LogLine) => {
            if (!matches(l, part)) return;
            events.off('line', check);
            resolve(l);
          };
          events.on('line', check);
          // A line logged between the call and the listener is impossible (sync), but keep it honest.
          for (const l of lines.slice(seen)) check(l);
        }),
        timeoutMs,
        `log line "${part}"`,
      );
    },
  };
}

/** A complete attempt record; `i` makes it distinguishable. */
export function sampleAttempt(i: number, over: Partial<AttemptRecord> = {}): AttemptRecord {
  return {
    ts: 1_760_000_000_000 + i,
    requestId: `req-${i}`,
    token: 'alice-laptop',
    endpoint: 'messages',
    modelRequested: 'claude-sonnet-4',
    modelSent: 'claude-sonnet-4-5',
    channel: i % 2 ? 'main' : 'backup',
    keyFp: '…abcd',
    status: 200,
    errorClass: null,
    attempt: 1,
    final: true,
    ttfbMs: 120,
    durationMs: 900,
    streamed: true,
    inputTokens: 10,
    outputTokens: 20,
    cacheCreationTokens: 0,
    cacheReadTokens: 5,
    costUsd: 0.00042,
    cacheCreation1hTokens: null,
    compactionInputTokens: null,
    compactionOutputTokens: null,
    webSearchRequests: null,
    speed: null,
    eventsDropped: null,
    stopSynthesised: false,
    cacheMissReason: null,
    ...over,
  };
}

/**
 * Script of the lock-holding process: opens the file with the native libsql driver (the one
 * @libsql/client uses), runs `BEGIN EXCLUSIVE` (waiting up to 5 s for a write in progress), says
 * `locked`, and commits when it reads a line on stdin or after `holdMs` (when > 0), then says
 * `released` and exits. It dies by itself after 30 s.
 */
const LOCKER = `
const { createRequire } = require('node:module');
const [clientPath, file, holdMs] = process.argv.slice(1);
const Database = createRequire(clientPath)('libsql');
const db = new Database(file);
// The daemon under test may be in one of its short write transactions right now: wait it out
// rather than fail to take the lock (SQLITE_BUSY).
db.exec('PRAGMA busy_timeout = 5000');
db.exec('BEGIN EXCLUSIVE');
process.stdout.write('locked\\n');
let done = false;
const release = () => {
  if (done) return;
  done = true;
  db.exec('COMMIT');
  db.close();
  process.stdout.write('released\\n');
  process.exit(0);
};
if (Number(holdMs) > 0) setTimeout(release, Number(holdMs));
process.stdin.on('data', release);
setTimeout(() => process.exit(2), 30000).unref();
`;

/** A second process holding the database's write lock. */
export interface LockHolder {
  readonly child: ChildProcessWithoutNullStreams;
  /** Resolves once the child printed `released` (it commits on its own after `holdMs`, or on `release()`). */
  readonly released: Promise<void>;
  /** Asks the child to commit and waits for it. */
  release(): Promise<void>;
}

/**
 * Starts a process that takes the write lock of `file` (an exclusive transaction) and resolves
 * once it holds it. `holdMs > 0`: the child releases by itself after that long — needed when the
 * test's own thread will be stuck in SQLite's synchronous busy wait and cannot send a message.
 */
export async function holdWriteLock(t: TestLike, file: string, holdMs = 0): Promise<LockHolder> {
  const clientPath = new URL(import.meta.resolve('@libsql/client')).pathname;
  const { child, output } = spawnNode(t, ['-e', LOCKER, clientPath, file, String(holdMs)]);
  // spawnNode's listeners come first, so `output.out` is current when the waiters below look at it.
  const out = () => output.out;
  const saw = (word: string) =>
    new Promise<void>((resolve, reject) => {
      const onData = () => {
        if (out().includes(word)) resolve();
      };
      child.stdout.on('data', onData);
      child.once('exit', (code) => {
        if (out().includes(word)) resolve();
        else reject(new Error(`lock holder exited (${code}) before "${word}": ${output.err}`));
      });
    });
  const locked = saw('locked');
  const released = saw('released');
  released.catch(() => {});
  await deadline(locked, 10_000, 'lock holder start');
  return {
    child,
    released,
    async release() {
      if (child.exitCode === null) child.stdin.write('release\n');
      await deadline(released, 10_000, 'lock holder release');
    },
  };
}

/**
 * `node <args>` as a child process, killed at teardown if still running; its stdout and stderr are
 * collected into `output` as they come.
 */
export function spawnNode(
  t: TestLike,
  args: readonly string[],
): { child: ChildProcessWithoutNullStreams; output: { out: string; err: string } } {
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  t.teardown(() => {
    if (child.exitCode === null) child.kill();
  });
  const output = { out: '', err: '' };
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    output.out += d;
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    output.err += d;
  });
  return { child, output };
}

/** Runs `node <args>` to its exit (within `timeoutMs`): the exit code and what it wrote. */
export async function runNode(
  t: TestLike,
  args: readonly string[],
  timeoutMs = 15_000,
): Promise<{ code: number | null; out: string; err: string }> {
  const { child, output } = spawnNode(t, args);
  const [code] = (await deadline(once(child, 'exit'), timeoutMs, 'the child process to exit')) as [
    number | null,
  ];
  return { code, ...output };
}
