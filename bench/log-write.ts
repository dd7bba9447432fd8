/**
 * Micro-benchmark of the attempt-log write path (run after a build: `node dist/bench/log-write.js
 * [rows] [runs]`; about 20 s): a `LogWriter` with rollups writes `rows` (default 20 000) synthetic
 * attempts in 500-row flushes through a write thread, two ways:
 *   - `client.batch` (the path before issue 16): the main thread builds the INSERTs and rollup
 *     upserts and posts them; the thread runs them with `@libsql/client` (`openDatabase`), which
 *     prepares every statement of every batch;
 *   - `raw` (the daemon's path now, `startWriteThread`): the main thread posts only the column
 *     values; the thread builds the statements and runs them on a raw `libsql` connection with
 *     cached prepared statements.
 * The attempts span 10 minutes (2 000 a minute) over 3 channels × 2 models × 3 tokens, mostly 200s.
 * Printed per path (median of `runs`, default 3, alternating, each on a fresh database and a fresh
 * thread warmed up with 2 000 rows first): CPU time of the write thread and of the main thread per
 * row, from `/proc/self/task/<tid>/schedstat` (ns, Linux only), and the wall time. Prints numbers; asserts nothing. Run it when the machine is quiet.
 */
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import type { InStatement } from '@libsql/client';
import { prng } from '../src/dev/random.js';
import type { AttemptRecord } from '../src/store/attempt.js';
import { openDatabase } from '../src/store/db.js';
import { LogWriter, type WriterDb } from '../src/store/log-writer.js';
import { startWriteThread } from '../src/store/write-thread.js';

/** CPU time of one thread of this process so far, in ns. */
function threadCpuNs(tid: number): number {
  return Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
}

const tasks = (): Set<number> => new Set(readdirSync('/proc/self/task').map(Number));

/** Starts a thread with `start` and returns it with the ids of the OS threads it added. */
async function withTids<T>(start: () => Promise<T>): Promise<{ value: T; tids: number[] }> {
  const before = tasks();
  const value = await start();
  return { value, tids: [...tasks()].filter((tid) => !before.has(tid)) };
}

/** The old write thread: `client.batch` of posted statements on an `@libsql/client` client. */
function oldWorker(): void {
  const port = parentPort!;
  const { url } = workerData as { url: string };
  void openDatabase(url, { migrate: false }).then((db) => {
    port.on('message', (m: { id: number; stmts: InStatement[] }) => {
      db.client.batch(m.stmts, 'write').then(
        () => port.postMessage({ id: m.id, ok: true }),
        (err: unknown) => port.postMessage({ id: m.id, ok: false, message: String(err) }),
      );
    });
    port.postMessage({ ready: true });
  });
}

/** A `WriterDb` posting ready statements to `oldWorker` (what the daemon had before issue 16). */
async function startOldThread(url: string): Promise<WriterDb & { close(): Promise<void> }> {
  const worker = new Worker(new URL(import.meta.url), { workerData: { url } });
  const pending = new Map<number, (err?: Error) => void>();
  let seq = 0;
  await new Promise<void>((resolve, reject) => {
    worker.once('error', reject);
    worker.on('message', (m: { ready?: true; id: number; ok: boolean; message?: string }) => {
      if (m.ready) resolve();
      else pending.get(m.id)?.(m.ok ? undefined : new Error(m.message));
    });
  });
  return {
    client: {
      batch: (stmts) =>
        new Promise<void>((resolve, reject) => {
          const id = ++seq;
          pending.set(id, (err) => {
            pending.delete(id);
            if (err) reject(err);
            else resolve();
          });
          worker.postMessage({ id, stmts });
        }),
    },
    close: async () => {
      await worker.terminate();
    },
  };
}

/** Attempts over 10 minutes: 3 channels × 2 models × 3 tokens, 90 % answered 200. */
function records(n: number): AttemptRecord[] {
  const rnd = prng(1);
  const now = Date.now();
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)]!;
  return Array.from({ length: n }, (_, i) => {
    const ok = rnd() < 0.9;
    return {
      ts: now - 600_000 + Math.floor((i / n) * 600_000),
      requestId: `req_${i.toString(36)}_${Math.floor(rnd() * 1e9).toString(36)}`,
      token: pick(['alice', 'bob', 'carol']),
      endpoint: 'messages',
      modelRequested: pick(['claude-opus-4-5', 'claude-sonnet-4-5']),
      modelSent: 'claude-sonnet-4-5',
      channel: `channel-${Math.floor(rnd() * 3)}`,
      keyFp: '…abcd',
      status: ok ? 200 : pick([429, 529, 0]),
      errorClass: null,
      attempt: 1,
      final: true,
      ttfbMs: Math.round(300 + 3000 * rnd() ** 3),
      durationMs: Math.round(800 + 30_000 * rnd() ** 3),
      streamed: true,
      inputTokens: Math.floor(rnd() * 50_000),
      outputTokens: Math.floor(rnd() * 4000),
      cacheCreationTokens: Math.floor(rnd() * 2000),
      cacheReadTokens: Math.floor(rnd() * 100_000),
      costUsd: rnd() * 0.2,
    };
  });
}

interface Result {
  threadUs: number;
  mainUs: number;
  wallMs: number;
}

async function runOnce(
  mode: 'client.batch' | 'raw',
  warm: readonly AttemptRecord[],
  rows: readonly AttemptRecord[],
): Promise<Result> {
  const dir = path.join(tmpdir(), `ccload-log-write-${process.pid}-${mode.replace('.', '')}`);
  rmSync(dir, { recursive: true, force: true });
  const url = `file:${path.join(dir, 'ccload.db')}`;
  const db = await openDatabase(url);
  const { value: thread, tids } = await withTids(async () =>
    mode === 'raw' ? await startWriteThread(url) : await startOldThread(url),
  );
  try {
    const writer = new LogWriter(thread, { rollups: true, batchRows: 500, maxQueue: rows.length + 1 });
    // JIT and page cache: a daemon's thread runs for days.
    for (const r of warm) writer.enqueue(r);
    await writer.flush();
    const t0 = performance.now();
    const main0 = threadCpuNs(process.pid);
    const thread0 = tids.reduce((s, tid) => s + threadCpuNs(tid), 0);
    for (const r of rows) writer.enqueue(r);
    await writer.flush();
    const main1 = threadCpuNs(process.pid);
    const thread1 = tids.reduce((s, tid) => s + threadCpuNs(tid), 0);
    const wallMs = performance.now() - t0;
    const stats = writer.stats();
    if (stats.written !== warm.length + rows.length)
      throw new Error(`${mode}: wrote ${stats.written} of ${rows.length}`);
    await writer.close();
    return {
      threadUs: (thread1 - thread0) / 1000 / rows.length,
      mainUs: (main1 - main0) / 1000 / rows.length,
      wallMs,
    };
  } finally {
    await thread.close();
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 20_000);
  const runs = Number(process.argv[3] ?? 3);
  const all = records(n + 2000);
  const [warm, rows] = [all.slice(0, 2000), all.slice(2000)];
  console.log(`attempt-log write: ${n} rows in 500-row flushes with rollups, median of ${runs} runs`);
  console.log(
    `load average at start: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  const modes = ['client.batch', 'raw'] as const;
  const results = new Map<string, Result[]>(modes.map((m) => [m, []]));
  for (let r = 0; r < runs; r++)
    for (const mode of modes) results.get(mode)!.push(await runOnce(mode, warm, rows));
  console.log('| path | write thread CPU µs/row | main thread CPU µs/row | wall ms |');
  console.log('|---|---|---|---|');
  for (const mode of modes) {
    const rs = results.get(mode)!;
    const row = [median(rs.map((x) => x.threadUs)), median(rs.map((x) => x.mainUs))].map((v) => v.toFixed(1));
    console.log(`| ${mode} | ${row[0]} | ${row[1]} | ${median(rs.map((x) => x.wallMs)).toFixed(0)} |`);
  }
  console.log(
    `load average at end: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
}

if (isMainThread) await main();
else oldWorker();
