/**
 * Benchmark of the runtime store (run after a build: `node dist/bench/store.js`; about 1–2 minutes):
 * (1) the attempt-log writer fed 5 000 rows/s for 10 s, with and without rollups: event-loop lag
 *     p50/p99/max (perf_hooks monitorEventLoopDelay) and rows written;
 * (2) 1 000 000 synthetic attempts over 30 days (10 channels × 5 models × 5 tokens) with their
 *     rollups, then stats, trends, summary, usage and log pages timed (median of 5 runs each).
 * Prints numbers; asserts nothing. The machine is shared: run it when nothing else loads the CPU.
 * `--quick` runs 2 s of (1) and 100 000 attempts for (2). `--keep` keeps the database of (2) in the
 * temp folder and reuses it on the next `--keep` run (for iterating on queries); `--skip-writer` skips (1),
 * `--writer-only` runs only (1).
 */
import { rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { InStatement, InValue } from '@libsql/client';
import { prng } from '../src/dev/random.js';
import { ATTEMPT_COLUMNS, type AttemptRecord, attemptToRow, attemptValues } from '../src/store/attempt.js';
import { type Database, openDatabase } from '../src/store/db.js';
import { LogWriter } from '../src/store/log-writer.js';
import { queryLogs, queryStats, querySummary, queryTrend, queryUsage } from '../src/store/queries.js';
import { MINUTE_ROLLUP_KEEP_MS, pruneOnce } from '../src/store/retention.js';
import { rollupStatements } from '../src/store/rollup.js';

const QUICK = process.argv.includes('--quick');
const KEEP = process.argv.includes('--keep');
const SKIP_WRITER = process.argv.includes('--skip-writer');
const WRITER_ONLY = process.argv.includes('--writer-only');
const DAY = 86_400_000;
const CHANNELS = Array.from({ length: 10 }, (_, i) => `channel-${i}`);
const MODELS = [
  'claude-opus-4-5',
  'claude-sonnet-4-5',
  'claude-haiku-4-5',
  'claude-sonnet-4',
  'claude-opus-4',
];
const TOKENS = ['alice', 'bob', 'carol', 'dave', 'erin'];

/** One synthetic attempt at `ts`: 90 % answered 200 with usage, the rest 429/529/0, some failed over. */
function synthetic(rnd: () => number, ts: number, i: number): AttemptRecord {
  const ok = rnd() < 0.9;
  const status = ok ? 200 : [429, 529, 0][Math.floor(rnd() * 3)]!;
  const final = ok || rnd() < 0.3;
  const dur = Math.round(200 + 30_000 * rnd() ** 3);
  return {
    ts,
    requestId: `r${i}`,
    token: TOKENS[Math.floor(rnd() * TOKENS.length)]!,
    endpoint: rnd() < 0.05 ? 'count_tokens' : 'messages',
    modelRequested: MODELS[Math.floor(rnd() * MODELS.length)]!,
    modelSent: null,
    channel: CHANNELS[Math.floor(rnd() * CHANNELS.length)]!,
    keyFp: '…abcd',
    status,
    errorClass: ok ? null : 'upstream',
    attempt: 1,
    final,
    ttfbMs: status === 0 ? null : Math.round(dur * 0.2),
    durationMs: dur,
    streamed: true,
    inputTokens: ok ? Math.floor(rnd() * 5000) : null,
    outputTokens: ok ? Math.floor(rnd() * 2000) : null,
    cacheCreationTokens: ok ? Math.floor(rnd() * 1000) : null,
    cacheReadTokens: ok ? Math.floor(rnd() * 50_000) : null,
    costUsd: ok ? rnd() * 0.05 : null,
  };
}

const ms = (ns: number) => (ns / 1e6).toFixed(1);

async function freshDb(name: string, keep = false): Promise<{ db: Database; file: string }> {
  const file = path.join(
    tmpdir(),
    keep ? `ccload-bench-${name}.db` : `ccload-bench-${process.pid}-${name}.db`,
  );
  if (!keep) removeDb(file);
  return { db: await openDatabase(`file:${file}`), file };
}

function removeDb(file: string): void {
  for (const f of [file, `${file}-wal`, `${file}-shm`]) rmSync(f, { force: true });
}

/** (1) Feeds the writer `rate` rows/s for `seconds` and measures the event loop meanwhile. */
async function writerLoad(rollups: boolean, rate: number, seconds: number): Promise<string[]> {
  const { db, file } = await freshDb(rollups ? 'writer-rollups' : 'writer-plain');
  const writer = new LogWriter(db, { rollups });
  writer.start();
  const rnd = prng(1);
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const started = performance.now();
  let sent = 0;
  let i = 0;
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const elapsed = (performance.now() - started) / 1000;
      const due = Math.min(Math.floor(elapsed * rate), rate * seconds);
      for (; sent < due; sent++) writer.enqueue(synthetic(rnd, Date.now(), i++));
      if (elapsed >= seconds) {
        clearInterval(tick);
        resolve();
      }
    }, 5);
  });
  await writer.close(30_000);
  h.disable();
  const s = writer.stats();
  db.close();
  removeDb(file);
  return [
    rollups ? 'with rollups' : 'attempts only',
    `${rate}/s × ${seconds} s`,
    `${s.written}`,
    `${s.dropped}`,
    ms(h.percentile(50)),
    ms(h.percentile(99)),
    ms(h.max),
  ];
}

/** (2) Inserts `total` attempts spread over 30 days before `now`, with rollups, in big batches. */
async function fill(db: Database, total: number, now: number): Promise<number> {
  const rnd = prng(2);
  const span = 30 * DAY;
  const chunk = 5000;
  const insertHead = `INSERT INTO attempts (${ATTEMPT_COLUMNS.join(', ')}) VALUES `;
  const row = `(${ATTEMPT_COLUMNS.map(() => '?').join(', ')})`;
  const minuteHorizon = now - MINUTE_ROLLUP_KEEP_MS;
  const t0 = performance.now();
  for (let start = 0; start < total; start += chunk) {
    const records: AttemptRecord[] = [];
    for (let i = start; i < Math.min(total, start + chunk); i++) {
      records.push(synthetic(rnd, now - span + Math.floor((i / total) * span), i));
    }
    const stmts: InStatement[] = [];
    for (let i = 0; i < records.length; i += 500) {
      const part = records.slice(i, i + 500);
      const args: InValue[] = [];
      for (const r of part) args.push(...attemptToRow(r));
      stmts.push({ sql: insertHead + part.map(() => row).join(', '), args });
    }
    let rollup = rollupStatements(attemptValues(records));
    // Steady state: minute rollups older than their retention would already be pruned.
    if (records[records.length - 1]!.ts < minuteHorizon)
      rollup = rollup.filter((s) => !/_minute /.test((s as { sql: string }).sql));
    stmts.push(...rollup);
    await db.client.batch(stmts, 'write');
  }
  return performance.now() - t0;
}

/**
 * Median wall time and median CPU time (ms) of `runs` calls. The local SQLite work runs on this
 * thread, so CPU time is what a query costs even when a busy machine stretches the wall time.
 */
async function median(fn: () => Promise<unknown>, runs = 5): Promise<[number, number]> {
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < runs; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await fn();
    wall.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
  wall.sort((a, b) => a - b);
  cpu.sort((a, b) => a - b);
  return [wall[Math.floor(runs / 2)]!, cpu[Math.floor(runs / 2)]!];
}

function table(head: string[], rows: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
  console.log(line(head));
  for (const r of rows) console.log(line(r));
  console.log();
}

async function main(): Promise<void> {
  const seconds = QUICK ? 2 : 10;
  if (!SKIP_WRITER) {
    console.log(`# (1) attempt-log writer at 5000 rows/s (event-loop delay in ms)`);
    const load = [await writerLoad(false, 5000, seconds), await writerLoad(true, 5000, seconds)];
    table(['writer', 'load', 'written', 'dropped', 'lag p50', 'lag p99', 'lag max'], load);
    console.log(
      `# load average: ${loadavg()
        .map((x) => x.toFixed(1))
        .join(' ')}`,
    );
  }
  if (WRITER_ONLY) return;

  const total = QUICK ? 100_000 : 1_000_000;
  const now = Date.UTC(2026, 5, 30, 14, 37, 12);
  const { db, file } = await freshDb(`queries-${total}`, KEEP);
  const reuse =
    KEEP && Number((await db.client.execute('SELECT count(*) FROM attempts')).rows[0]?.[0]) === total;
  const fillMs = reuse ? 0 : await fill(db, total, now);
  const t0 = performance.now();
  const pruned = await pruneOnce(db, { now, retentionMs: 30 * DAY });
  const pruneMs = performance.now() - t0;
  const count = async (table: string) =>
    Number((await db.client.execute(`SELECT count(*) FROM ${table}`)).rows[0]?.[0]);
  console.log(
    `# (2) ${total} attempts over 30 days ${reuse ? 'reused' : `inserted with rollups in ${(fillMs / 1000).toFixed(1)} s`}; ` +
      `prune pass ${pruneMs.toFixed(0)} ms (${pruned.attempts} attempts, ${pruned.rollups} rollup rows)`,
  );
  console.log(
    `#     rows: ${await count('attempts')} attempts; rollup minute/hour/day ${await count('rollup_minute')}/` +
      `${await count('rollup_hour')}/${await count('rollup_day')}; latency minute/hour/day ` +
      `${await count('latency_minute')}/${await count('latency_hour')}/${await count('latency_day')}`,
  );
  const q: [string, () => Promise<unknown>][] = [
    ['stats 24 h', () => queryStats(db, { hours: 24 }, now)],
    ['stats 30 d', () => queryStats(db, { hours: 720 }, now)],
    ['stats 30 d, channel filter', () => queryStats(db, { hours: 720, channel: 'channel-3' }, now)],
    ['trend 24 h / 5 min', () => queryTrend(db, { hours: 24, bucketMin: 5 }, now)],
    ['trend 7 d / 1 h', () => queryTrend(db, { hours: 168, bucketMin: 60 }, now)],
    ['trend 30 d / 1 day', () => queryTrend(db, { hours: 720, bucketMin: 1440 }, now)],
    ['summary 24 h', () => querySummary(db, { hours: 24 }, now)],
    ['summary 30 d', () => querySummary(db, { hours: 720 }, now)],
    ['usage 24 h', () => queryUsage(db, { hours: 24 }, now)],
    ['usage 30 d', () => queryUsage(db, { hours: 720 }, now)],
    ['logs 24 h, page 1 (+ count)', () => queryLogs(db, { hours: 24, limit: 100, offset: 0 }, now)],
    [
      'logs 24 h, channel+status=error',
      () =>
        queryLogs(
          db,
          { hours: 24, limit: 100, offset: 0, channel: 'channel-3', status: { kind: 'error' } },
          now,
        ),
    ],
    [
      'logs 30 d, token, offset 500',
      () => queryLogs(db, { hours: 720, limit: 100, offset: 500, token: 'carol' }, now),
    ],
    ['logs 30 d, page 1 (+ count)', () => queryLogs(db, { hours: 720, limit: 100, offset: 0 }, now)],
  ];
  const rows: string[][] = [];
  for (const [name, fn] of q) {
    const [wall, cpu] = await median(fn);
    rows.push([name, wall.toFixed(1), cpu.toFixed(1)]);
  }
  table(['query', 'wall ms', 'cpu ms'], rows);
  console.log(
    `# median of 5 runs; load average at the end: ${loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}`,
  );
  db.close();
  if (!KEEP) removeDb(file);
}

await main();
