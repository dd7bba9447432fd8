import { monitorEventLoopDelay } from 'node:perf_hooks';
import t from 'tap';
import { type AttemptRecord, rowToAttempt } from '../../src/store/attempt.js';
import type { Database } from '../../src/store/db.js';
import { LogWriter } from '../../src/store/log-writer.js';
import { waitFor } from '../helpers/wait.js';
import { captureLog, holdWriteLock, openTestDb, runNode, sampleAttempt, tempDbUrl } from './helpers.js';

async function countRows(db: Database): Promise<number> {
  return Number((await db.client.execute('SELECT count(*) FROM attempts')).rows[0]?.[0]);
}

t.test('10 000 rows are all written, in batches of at most batchRows', async (t) => {
  const db = await openTestDb(t);
  const batches: number[] = [];
  const w = new LogWriter(db, { batchRows: 500, onBatch: (rows) => batches.push(rows.length) });
  w.start();
  for (let i = 0; i < 10_000; i++) w.enqueue(sampleAttempt(i));
  await w.flush();
  t.equal(await countRows(db), 10_000, 'every row is in the table');
  t.ok(batches.length >= 20, `${batches.length} batches`);
  t.ok(
    batches.every((n) => n > 0 && n <= 500),
    'no batch above batchRows',
  );
  t.equal(
    batches.reduce((a, b) => a + b, 0),
    10_000,
  );
  t.match(w.stats(), {
    depth: 0,
    written: 10_000,
    dropped: 0,
    failedWrites: 0,
    degraded: false,
    failing: false,
  });
  t.type(w.stats().lastWriteAt, 'number');
  await w.close();
});

t.test('one flush of 500 rows costs a few ms of event loop', async (t) => {
  const db = await openTestDb(t);
  const w = new LogWriter(db, { batchRows: 500 });
  const times: number[] = [];
  for (let round = 0; round < 10; round++) {
    for (let i = 0; i < 500; i++) w.enqueue(sampleAttempt(round * 500 + i));
    const t0 = performance.now();
    await w.flush();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  t.comment(`500-row flush: median ${times[5]?.toFixed(1)} ms, max ${times[9]?.toFixed(1)} ms (10 runs)`);
  t.equal(await countRows(db), 5000);
  t.ok((times[5] ?? 0) < 500, 'median far below half a second (generous)');
  await w.close();
});

t.test('regression: a busy failure does not poison the next commit (libsql-client-ts#352)', async (t) => {
  // Without replacing the connection, the BEGIN that failed busy stays "in progress" until GC and
  // the next COMMIT fails with "SQL statements in progress" although the lock is free.
  const db = await openTestDb(t, { busyTimeoutMs: 10 });
  const w = new LogWriter(db, { retryMinMs: 60_000 });
  const lock = await holdWriteLock(t, db.file);
  for (let i = 0; i < 10; i++) w.enqueue(sampleAttempt(i));
  await w.flush();
  t.match(w.stats(), { failing: true, written: 0 });
  await lock.release();
  await w.flush();
  t.match(w.stats(), { failing: false, written: 10, depth: 0 }, 'the first write after release succeeds');
  t.equal(w.stats().failedWrites, 1);
  await w.close();
});

t.test('a record round-trips through the table, nulls and odd numbers included', async (t) => {
  const db = await openTestDb(t);
  const w = new LogWriter(db);
  const full = sampleAttempt(7, {
    endpoint: 'count_tokens',
    streamed: false,
    final: false,
    status: 529,
    sessionFp: '0123456789abcdef',
    affinity: 'kept',
    cacheCreation1hTokens: 3,
    compactionInputTokens: 4,
    compactionOutputTokens: 5,
    webSearchRequests: 1,
    speed: 'fast',
    eventsDropped: 2,
    stopSynthesised: true,
    cacheMissReason: 'tools_changed',
  });
  const sparse: AttemptRecord = sampleAttempt(8, {
    token: null,
    modelSent: null,
    keyFp: null,
    status: 0,
    errorClass: 'CCL_UPSTREAM_CONNECT',
    ttfbMs: null,
    durationMs: 12.7,
    inputTokens: null,
    outputTokens: Number.NaN,
    cacheCreationTokens: null,
    cacheReadTokens: null,
    costUsd: null,
    cacheCreation1hTokens: null,
    compactionInputTokens: null,
    compactionOutputTokens: null,
    webSearchRequests: null,
    speed: null,
    eventsDropped: null,
    stopSynthesised: false,
    cacheMissReason: null,
  });
  w.enqueue(full);
  w.enqueue(sparse);
  await w.close();
  const rs = await db.client.execute('SELECT * FROM attempts ORDER BY id');
  const [a, b] = rs.rows.map(rowToAttempt);
  t.same({ ...a, id: undefined }, { ...full, id: undefined });
  t.same(
    { ...b, id: undefined },
    { ...sparse, id: undefined, durationMs: 13, outputTokens: null, sessionFp: null, affinity: null },
    'fractional ms rounded, NaN stored as null',
  );
});

t.test('close() flushes a queue the timer never got to', async (t) => {
  const db = await openTestDb(t);
  const w = new LogWriter(db, { intervalMs: 60_000 });
  w.start();
  for (let i = 0; i < 123; i++) w.enqueue(sampleAttempt(i));
  t.equal(w.stats().depth, 123);
  await w.close();
  t.equal(await countRows(db), 123);
  t.equal(w.stats().depth, 0);
  w.enqueue(sampleAttempt(999));
  t.equal(w.stats().dropped, 1, 'a record after close is counted as dropped, not thrown');
  await w.close();
});

t.test('event-loop lag while writing 5 000 rows/s for 2 s', async (t) => {
  const db = await openTestDb(t);
  const w = new LogWriter(db, { batchRows: 500, intervalMs: 250 });
  w.start();
  const lag = monitorEventLoopDelay({ resolution: 1 });
  lag.enable();
  let i = 0;
  const t0 = performance.now();
  // Load generator: 50 rows every 10 ms, 200 times = 10 000 rows over ≈2 s.
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      for (let k = 0; k < 50; k++) w.enqueue(sampleAttempt(i++));
      if (i >= 10_000) {
        clearInterval(timer);
        resolve();
      }
    }, 10);
  });
  await w.close();
  lag.disable();
  // The histogram records whole sampling intervals: subtract the 1 ms resolution for the delay.
  const ms = (ns: number) => Math.max(0, ns / 1e6 - 1).toFixed(1);
  t.comment(
    `enqueued 10000 rows in ${(performance.now() - t0).toFixed(0)} ms; event-loop delay beyond the ` +
      `1 ms sampling: mean ${ms(lag.mean)} ms, p99 ${ms(lag.percentile(99))} ms, max ${ms(lag.max)} ms`,
  );
  t.equal(await countRows(db), 10_000);
  t.equal(w.stats().dropped, 0);
  t.ok(lag.max / 1e6 < 1000, 'no stall near a second (generous: the machine is shared)');
});

t.test('a locked database: rows stay queued, nothing throws, all written after release', async (t) => {
  // busyTimeoutMs small: each failed attempt stalls the loop only that long.
  const db = await openTestDb(t, { busyTimeoutMs: 20 });
  const cap = captureLog();
  const w = new LogWriter(db, { log: cap.log, retryMinMs: 20, retryMaxMs: 100, intervalMs: 20 });
  w.start();
  const lock = await holdWriteLock(t, db.file);
  for (let i = 0; i < 300; i++) w.enqueue(sampleAttempt(i));
  await w.flush();
  t.match(w.stats(), { depth: 300, written: 0, dropped: 0, failing: true, degraded: false });
  t.ok(w.stats().failedWrites >= 1);
  t.match(w.stats().lastError, /SQLITE_BUSY/);
  await waitFor(() => w.stats().failedWrites >= 3, { message: 'retries while locked' });
  t.equal(cap.count('warn'), 0, 'no warning while nothing is lost');
  t.equal(cap.count('info', 'write failed'), 1, 'the failure is logged once, not per retry');

  const recovered = cap.next('recovered');
  await lock.release();
  t.match(await recovered, { dropped: 0 });
  await w.flush();
  t.equal(await countRows(db), 300);
  t.match(w.stats(), { depth: 0, written: 300, dropped: 0, failing: false, degraded: false });
  await w.close();
});

t.test('overflow while locked: oldest rows dropped and counted, one warning, recovery logged', async (t) => {
  const db = await openTestDb(t, { busyTimeoutMs: 20 });
  const cap = captureLog();
  const w = new LogWriter(db, {
    log: cap.log,
    maxQueue: 50,
    retryMinMs: 20,
    retryMaxMs: 100,
    intervalMs: 20,
  });
  w.start();
  const lock = await holdWriteLock(t, db.file);
  for (let i = 0; i < 10; i++) w.enqueue(sampleAttempt(i));
  await w.flush();
  t.match(w.stats(), { failing: true, degraded: false, dropped: 0 });
  for (let i = 10; i < 200; i++) w.enqueue(sampleAttempt(i));
  await waitFor(() => w.stats().failedWrites >= 3, { message: 'retries while locked' });
  t.match(w.stats(), { depth: 50, dropped: 150, degraded: true, written: 0 });
  t.equal(cap.count('warn'), 1, 'the incident is logged once, not per dropped row');
  const warn = cap.lines.find((l) => l.level === 40);
  t.match(warn, { cause: /SQLITE_BUSY/ }, 'with its cause');

  const recovered = cap.next('recovered');
  await lock.release();
  t.match(await recovered, { dropped: 150 }, 'recovery says how many rows the incident cost');
  await w.flush();
  const ids = (await db.client.execute('SELECT request_id FROM attempts ORDER BY id')).rows.map((r) => r[0]);
  t.equal(ids.length, 50);
  t.equal(ids[0], 'req-150', 'the oldest rows were the ones dropped');
  t.equal(ids[49], 'req-199');
  const s = w.stats();
  t.match(s, { degraded: false, failing: false, depth: 0 });
  t.equal(s.written + s.dropped, 200, 'every row written or counted as dropped');
  t.equal(cap.count('warn'), 1, 'still one warning');
  await w.close();
});

t.test('a read-only database behaves the same', async (t) => {
  // chmod 0444 on the file and its -wal/-shm does not stop root (CAP_DAC_OVERRIDE), and these tests
  // run as root, so it would inject nothing. `PRAGMA query_only` makes SQLite refuse every write on
  // the writer's own connections with the very error a read-only file gives (SQLITE_READONLY).
  const db = await openTestDb(t);
  const cap = captureLog();
  const w = new LogWriter(db, {
    log: cap.log,
    maxQueue: 40,
    retryMinMs: 20,
    retryMaxMs: 100,
    intervalMs: 20,
  });
  w.start();
  await db.onEveryConnection('PRAGMA query_only=1');
  for (let i = 0; i < 5; i++) w.enqueue(sampleAttempt(i));
  await w.flush();
  t.match(w.stats().lastError, /SQLITE_READONLY/);
  for (let i = 5; i < 100; i++) w.enqueue(sampleAttempt(i));
  await waitFor(() => w.stats().failedWrites >= 2, { message: 'retries while read-only' });
  t.match(w.stats(), { depth: 40, dropped: 60, degraded: true, written: 0 });
  t.equal(cap.count('warn'), 1);
  t.match(
    cap.lines.find((l) => l.level === 40),
    { cause: /SQLITE_READONLY/ },
  );

  const recovered = cap.next('recovered');
  await db.onEveryConnection('PRAGMA query_only=0');
  t.match(await recovered, { dropped: 60 });
  await w.flush();
  t.equal(await countRows(db), 40);
  t.match(w.stats(), { written: 40, dropped: 60, degraded: false, failing: false });
  await w.close();
});

t.test('close() while the database stays locked: bounded, and the rest is counted as dropped', async (t) => {
  const db = await openTestDb(t, { busyTimeoutMs: 10 });
  const cap = captureLog();
  const w = new LogWriter(db, { log: cap.log, retryMinMs: 20, retryMaxMs: 50 });
  await holdWriteLock(t, db.file);
  for (let i = 0; i < 25; i++) w.enqueue(sampleAttempt(i));
  const t0 = performance.now();
  await w.close(300);
  const took = performance.now() - t0;
  t.ok(took >= 250 && took < 3000, `close gave up after ${took.toFixed(0)} ms`);
  t.match(w.stats(), { depth: 0, written: 0, dropped: 25 });
  t.equal(cap.count('warn', 'closed with unwritten rows'), 1);
});

t.test('an onBatch hook that throws does not stop writing', async (t) => {
  const db: Database = await openTestDb(t);
  const cap = captureLog();
  const w = new LogWriter(db, {
    log: cap.log,
    batchRows: 10,
    onBatch: () => {
      throw new Error('rollup bug');
    },
  });
  for (let i = 0; i < 35; i++) w.enqueue(sampleAttempt(i));
  await w.close();
  t.equal(await countRows(db), 35);
  t.equal(cap.count('error', 'onBatch'), 1, 'logged once');
});

t.test('regression: close() keeps the process alive while it waits to retry', async (t) => {
  // At shutdown nothing else may hold the event loop open. If close() waited on an unref'd timer,
  // the process would exit mid-close and the queued rows would vanish uncounted.
  const { file } = tempDbUrl(t);
  const script = `
    import { createRequire } from 'node:module';
    const [dbMod, writerMod, clientPath, file] = process.argv.slice(1);
    const { openDatabase } = await import(dbMod);
    const { LogWriter } = await import(writerMod);
    const db = await openDatabase('file:' + file, { busyTimeoutMs: 10 });
    const Database = createRequire(clientPath)('libsql');
    const locker = new Database(file);
    locker.exec('BEGIN EXCLUSIVE');
    setTimeout(() => locker.exec('COMMIT'), 150).unref();
    const w = new LogWriter(db, { retryMinMs: 40, retryMaxMs: 40 });
    for (let i = 0; i < 5; i++) w.enqueue({ ts: i, requestId: 'r' + i, endpoint: 'messages', status: 200, attempt: 1 });
    await w.close(5000);
    process.stdout.write(JSON.stringify(w.stats()));
  `;
  const { code, out, err } = await runNode(t, [
    '--input-type=module',
    '-e',
    script,
    new URL('../../src/store/db.js', import.meta.url).href,
    new URL('../../src/store/log-writer.js', import.meta.url).href,
    new URL(import.meta.resolve('@libsql/client')).pathname,
    file,
  ]);
  t.equal(code, 0, err);
  t.match(JSON.parse(out || '{}'), { written: 5, dropped: 0, depth: 0 }, 'close finished and wrote the rows');
});
