/**
 * Retention: old attempts and rollups are deleted in small batches and everything younger is left
 * exactly as it was; the minute rollups go sooner; the timer reads the retention at every run.
 */
import t, { type Test } from 'tap';
import type { Database } from '../../src/store/db.js';
import { LogWriter } from '../../src/store/log-writer.js';
import { queryUsage } from '../../src/store/queries.js';
import {
  MINUTE_ROLLUP_KEEP_MS,
  pruneOnce,
  RetentionTimer,
  retentionCutoffs,
} from '../../src/store/retention.js';
import { TIERS } from '../../src/store/rollup.js';
import { captureLog, openTestDb, sampleAttempt } from './helpers.js';

const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
/** 2026-06-15 12:00:30 UTC. */
const NOW = Date.UTC(2026, 5, 15, 12, 0, 30);
const RETENTION = 30 * DAY;

/** Ages of the fixture's attempts (ms before NOW), each written twice (two tokens). */
const AGES = [
  40 * DAY,
  31 * DAY,
  30 * DAY + MIN,
  30 * DAY - HOUR,
  10 * DAY,
  7 * DAY + 2 * HOUR,
  6 * DAY,
  HOUR,
  MIN,
];

async function fixture(t: Test): Promise<Database> {
  const db = await openTestDb(t);
  const w = new LogWriter(db, { rollups: true });
  let i = 0;
  for (const age of AGES) {
    for (const token of ['alice', 'bob'])
      w.enqueue(sampleAttempt(i++, { ts: NOW - age, token, inputTokens: 1000 }));
  }
  await w.close();
  // A row without a time (never written by the LogWriter, but possible in an old file).
  await db.client.execute("INSERT INTO attempts (request_id, status) VALUES ('no-time', 200)");
  return db;
}

const count = async (db: Database, sql: string, args: number[] = []) =>
  Number((await db.client.execute({ sql, args })).rows[0]?.[0]);

t.test('cut-offs (pure)', async (t) => {
  const c = retentionCutoffs(NOW, RETENTION);
  t.same(c, {
    attempts: NOW - RETENTION,
    minute: NOW - MINUTE_ROLLUP_KEEP_MS - MIN,
    hour: NOW - RETENTION - HOUR,
    day: NOW - RETENTION - DAY,
  });
  t.equal(
    retentionCutoffs(NOW, 2 * DAY).minute,
    NOW - 2 * DAY - MIN,
    'minute rollups never outlive the retention',
  );
  t.equal(MINUTE_ROLLUP_KEEP_MS, 7 * DAY);
});

t.test('pruning deletes old raw rows and rollups and leaves the rest', async (t) => {
  const db = await fixture(t);
  const cut = retentionCutoffs(NOW, RETENTION);
  const kept = {
    attempts: await count(db, 'SELECT count(*) FROM attempts WHERE ts >= ?', [cut.attempts]),
    ...Object.fromEntries(
      await Promise.all(
        TIERS.flatMap((tier) =>
          ['rollup', 'latency'].map(async (kind) => [
            `${kind}_${tier}`,
            await count(db, `SELECT count(*) FROM ${kind}_${tier} WHERE bucket > ?`, [cut[tier]]),
          ]),
        ),
      ),
    ),
  };
  const usageBefore = await queryUsage(db, { hours: 6 * 24 + 1 }, NOW);
  t.equal(await count(db, 'SELECT count(*) FROM attempts'), 19);

  const result = await pruneOnce(db, { now: NOW, retentionMs: RETENTION, batchRows: 3 });
  t.equal(result.attempts, 7, 'three ages past 30 d, two rows each, and the row without a time');
  t.ok(result.complete);
  t.equal(await count(db, 'SELECT count(*) FROM attempts'), 12);
  t.equal(await count(db, 'SELECT count(*) FROM attempts WHERE ts < ? OR ts IS NULL', [cut.attempts]), 0);
  t.equal(
    await count(db, 'SELECT count(*) FROM attempts WHERE ts >= ?', [cut.attempts]),
    kept.attempts,
    'younger rows untouched',
  );
  for (const tier of TIERS) {
    for (const kind of ['rollup', 'latency']) {
      const table = `${kind}_${tier}`;
      t.equal(
        await count(db, `SELECT count(*) FROM ${table} WHERE bucket <= ?`, [cut[tier]]),
        0,
        `${table}: old rows gone`,
      );
      const left = await count(db, `SELECT count(*) FROM ${table}`);
      t.equal(left, kept[table], `${table}: the others kept (${left})`);
    }
  }
  t.ok(result.rollups > 0, `${result.rollups} rollup rows deleted`);
  // Minute rollups: only the last 7 days (6 d, 1 h, 1 min ago).
  t.equal(await count(db, 'SELECT count(DISTINCT bucket) FROM rollup_minute'), 3);
  // The day that straddles the cut-off keeps counting the attempt pruned from it (documented).
  t.equal(
    await count(db, 'SELECT total(attempts) FROM rollup_day WHERE bucket = ?', [Date.UTC(2026, 4, 16)]),
    4,
    'May 16: 30 d + 1 min (pruned) and 30 d − 1 h (kept), two tokens each',
  );
  t.same(
    await queryUsage(db, { hours: 6 * 24 + 1 }, NOW),
    usageBefore,
    'windows inside the retention read the same',
  );

  const again = await pruneOnce(db, { now: NOW, retentionMs: RETENTION });
  t.same(again, { attempts: 0, rollups: 0, complete: true }, 'idempotent');
});

t.test('a run stops after maxBatches or an abort and the next one finishes', async (t) => {
  const db = await fixture(t);
  const first = await pruneOnce(db, { now: NOW, retentionMs: RETENTION, batchRows: 1, maxBatches: 2 });
  t.same(first, { attempts: 2, rollups: 0, complete: false });
  const stop = new AbortController();
  stop.abort();
  t.same(await pruneOnce(db, { now: NOW, retentionMs: RETENTION, signal: stop.signal }), {
    attempts: 0,
    rollups: 0,
    complete: false,
  });
  const rest = await pruneOnce(db, { now: NOW, retentionMs: RETENTION, batchRows: 1 });
  t.equal(rest.attempts, 5);
  t.ok(rest.complete);
});

t.test('the timer prunes with the retention of the moment, logs, and closes', async (t) => {
  const db = await fixture(t);
  const log = captureLog();
  let retention = 60 * DAY;
  const timer = new RetentionTimer(db, {
    retentionMs: () => retention,
    now: () => NOW,
    log: log.log,
    firstRunMs: 0,
  });
  // 60 d: only the row without a time and the 7-day cut of the minute rollups bite: 6 ages × 2 rows
  // (the two tokens went through different channels) × (counts + latency).
  t.same(await timer.runNow(), { attempts: 1, rollups: 24, complete: true }, 'minute rollups only');
  retention = RETENTION;
  const line = log.next('pruned');
  timer.start();
  const logged = await line;
  t.match(
    logged,
    { event: 'retention', attempts: 6, complete: true },
    'the scheduled run used the new retention',
  );
  await timer.close();
  await timer.close();
  t.equal(await count(db, 'SELECT count(*) FROM attempts'), 12);

  // A failing run is logged and the timer carries on (here: the database is gone).
  const broken = new RetentionTimer(db, { retentionMs: () => RETENTION, now: () => NOW, log: log.log });
  db.close();
  t.equal(await broken.runNow(), undefined);
  t.equal(log.count('warn', 'pruning old attempts failed'), 1);
  await broken.close();
});
