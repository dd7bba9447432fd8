/**
 * Rollups: the latency bins and their percentile error, agreement of every rollup tier with the raw
 * attempt rows after many random LogWriter batches, the one-time backfill of older attempts, and a
 * throwing rollup builder not blocking the attempt log.
 */
import t, { type Test } from 'tap';
import { ATTEMPT_COLUMNS, type AttemptRecord, attemptToRow, attemptValues } from '../../src/store/attempt.js';
import { attemptStatements } from '../../src/store/attempt-batch.js';
import { type Database, openDatabase } from '../../src/store/db.js';
import { LogWriter } from '../../src/store/log-writer.js';
import { loadMigrations, migrate } from '../../src/store/migrate.js';
import {
  BIN_COUNT,
  backfillRollups,
  binOf,
  binValue,
  LATENCY_EDGES,
  PERCENTILE_MAX_ERROR,
  percentile,
  rollupStatements,
  statusClass,
  TIER_MS,
  TIERS,
  type Tier,
} from '../../src/store/rollup.js';
import { pick, prng } from '../helpers/random.js';
import { captureLog, openTestDb, sampleAttempt, tempDbUrl } from './helpers.js';

/** Columns of `attempts` as 001_init.sql created them: the first ones of ATTEMPT_COLUMNS. */
const INIT_COLUMNS = 20;

/** A random attempt within 3 days before `base`, with every kind of null and odd value mixed in. */
function randomAttempt(rnd: () => number, i: number, base: number): AttemptRecord {
  const status = pick(rnd, [200, 200, 200, 201, 429, 500, 529, 499, 0, 404]);
  const ok = status >= 200 && status < 300;
  const maybe = (v: number) => (rnd() < 0.1 ? null : v);
  return sampleAttempt(i, {
    ts: base - Math.floor(rnd() * 3 * 86_400_000),
    token: pick(rnd, ['alice', 'bob', null]),
    endpoint: rnd() < 0.1 ? 'count_tokens' : 'messages',
    modelRequested: pick(rnd, ['m-a', 'm-b', null]),
    channel: pick(rnd, ['c1', 'c2', 'c3']),
    status,
    final: rnd() < 0.7,
    durationMs: maybe(Math.floor(rnd() ** 3 * 400_000)),
    ttfbMs: maybe(Math.floor(rnd() ** 3 * 40_000) + 0.4),
    inputTokens: ok ? maybe(Math.floor(rnd() * 10_000)) : null,
    outputTokens: ok ? maybe(Math.floor(rnd() * 3000)) : null,
    cacheCreationTokens: ok ? maybe(Math.floor(rnd() * 1000)) : null,
    cacheReadTokens: ok ? maybe(Math.floor(rnd() * 100_000)) : null,
    costUsd: ok ? (rnd() < 0.05 ? Number.NaN : rnd() * 0.3) : null,
  });
}

t.test('latency bins: frozen edges, one column per bin in migration 002, exact binning', async (t) => {
  t.equal(BIN_COUNT, 85);
  t.same(LATENCY_EDGES.slice(0, 12), [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14]);
  t.equal(LATENCY_EDGES.at(-1), 4_194_304, '2^22 ms, 70 minutes');
  t.ok(
    LATENCY_EDGES.every((e, i) => i === 0 || e > LATENCY_EDGES[i - 1]!),
    'strictly increasing',
  );
  const db = await openTestDb(t);
  for (const tier of TIERS) {
    const cols = (await db.client.execute(`PRAGMA table_info(latency_${tier})`)).rows.map((r) =>
      String(r['name']),
    );
    t.same(
      cols.filter((c) => /^d\d+$/.test(c)),
      Array.from({ length: BIN_COUNT }, (_, i) => `d${i}`),
      `latency_${tier}: d0..d84`,
    );
    t.same(
      cols.filter((c) => /^t\d+$/.test(c)),
      Array.from({ length: BIN_COUNT }, (_, i) => `t${i}`),
      `latency_${tier}: t0..t84`,
    );
  }
  for (let i = 1; i < BIN_COUNT; i++) {
    if (binOf(LATENCY_EDGES[i]!) !== i || binOf(LATENCY_EDGES[i]! - 1) !== i - 1) {
      t.fail(`bin boundary at ${LATENCY_EDGES[i]}`);
    }
  }
  t.equal(binOf(0), 0);
  t.equal(binOf(0.99), 0);
  t.equal(binOf(-5), 0);
  t.equal(binOf(Number.NaN), 0);
  t.equal(binOf(1e12), BIN_COUNT - 1, 'past the last edge: the open last bin');
  t.equal(binValue(BIN_COUNT - 1), 4_194_304, 'the open bin reports its lower bound');
  t.equal(binValue(5), 5, 'one-millisecond bins are exact');
});

t.test('percentiles from the histogram stay within the documented error of the exact ones', async (t) => {
  t.ok(PERCENTILE_MAX_ERROR > 0.09 && PERCENTILE_MAX_ERROR < 0.091, `bound ${PERCENTILE_MAX_ERROR}`);
  t.equal(percentile(new Array(BIN_COUNT).fill(0), 0.5), null, 'empty histogram');
  const rnd = prng(42);
  let worst = 0;
  for (let round = 0; round < 200; round++) {
    const n = 1 + Math.floor(rnd() * 500);
    // Log-uniform 1 ms .. 1 000 s, integers, as durations are stored.
    const samples = Array.from({ length: n }, () => Math.round(10 ** (rnd() * 6)));
    const counts = new Array<number>(BIN_COUNT).fill(0);
    for (const s of samples) counts[binOf(s)]!++;
    samples.sort((a, b) => a - b);
    for (const p of [0.5, 0.95, 0.99]) {
      const exact = samples[Math.max(1, Math.ceil(p * n)) - 1]!;
      const est = percentile(counts, p)!;
      const err = Math.abs(est - exact) / exact;
      worst = Math.max(worst, err);
      if (err > PERCENTILE_MAX_ERROR + 1e-12) t.fail(`p${p * 100} of ${n}: ${est} vs exact ${exact}`);
      if (exact < 8 && est !== exact) t.fail(`below 8 ms the percentile is exact: ${est} vs ${exact}`);
    }
  }
  t.ok(worst <= PERCENTILE_MAX_ERROR, `worst relative error seen ${(worst * 100).toFixed(2)} %`);
});

t.test('status classes', async (t) => {
  t.same(
    [200, 201, 299, 429, 499, 500, 529, 0, 99, 1000, null].map(statusClass),
    [2, 2, 2, 4, 4, 5, 5, 0, 0, 0, 0],
  );
});

/** Every tier's rollup rows, and the same aggregates computed from the raw attempts, as comparable maps. */
async function compareWithRaw(t: Test, db: Database): Promise<void> {
  for (const tier of TIERS) {
    const size = TIER_MS[tier as Tier];
    const raw = await db.client.execute({
      sql:
        `SELECT ts - ts % ?1 AS bucket, coalesce(channel, '') AS channel, coalesce(model_requested, '') AS model, ` +
        `coalesce(token, '') AS token, CASE WHEN status >= 100 AND status < 1000 THEN status / 100 ELSE 0 END AS cls, ` +
        'count(*) AS attempts, total(final) AS requests, total(input_tokens) AS i, total(output_tokens) AS o, ' +
        'total(cache_creation_tokens) AS cc, total(cache_read_tokens) AS cr, total(cost_usd) AS cost ' +
        'FROM attempts WHERE ts IS NOT NULL GROUP BY 1, 2, 3, 4, 5',
      args: [size],
    });
    const roll = await db.client.execute(
      `SELECT bucket, channel, model, token, status_class AS cls, attempts, requests, input_tokens AS i, ` +
        `output_tokens AS o, cache_creation_tokens AS cc, cache_read_tokens AS cr, cost_usd AS cost FROM rollup_${tier}`,
    );
    const key = (r: Record<string, unknown>) =>
      [r['bucket'], r['channel'], r['model'], r['token'], r['cls']].join('|');
    const vals = (r: Record<string, unknown>) =>
      ['attempts', 'requests', 'i', 'o', 'cc', 'cr'].map((k) => Number(r[k])).join(',');
    const a = new Map(raw.rows.map((r) => [key(r), r]));
    const b = new Map(roll.rows.map((r) => [key(r), r]));
    t.equal(b.size, a.size, `${tier}: one rollup row per raw group (${a.size})`);
    let mismatches = 0;
    for (const [k, r] of a) {
      const s = b.get(k);
      if (!s || vals(s) !== vals(r) || Math.abs(Number(s['cost']) - Number(r['cost'])) > 1e-9) mismatches++;
    }
    t.equal(mismatches, 0, `${tier}: every group's counts, tokens and cost agree`);

    // Latency: the histograms rebuilt from the raw rows with the same binning.
    const rows = await db.client.execute(
      `SELECT ts - ts % ${size} AS bucket, coalesce(channel, '') AS channel, coalesce(model_requested, '') AS model, ` +
        "duration_ms, ttfb_ms FROM attempts WHERE ts IS NOT NULL AND status >= 200 AND status < 300 AND endpoint = 'messages'",
    );
    const expected = new Map<string, number[]>();
    for (const r of rows.rows) {
      if (r['duration_ms'] === null && r['ttfb_ms'] === null) continue;
      const k = `${r['bucket']}|${r['channel']}|${r['model']}`;
      let h = expected.get(k);
      if (!h) {
        h = new Array<number>(2 * BIN_COUNT + 2).fill(0);
        expected.set(k, h);
      }
      if (r['duration_ms'] !== null) {
        h[binOf(Number(r['duration_ms']))]!++;
        h[2 * BIN_COUNT]!++;
      }
      if (r['ttfb_ms'] !== null) {
        h[BIN_COUNT + binOf(Number(r['ttfb_ms']))]!++;
        h[2 * BIN_COUNT + 1]!++;
      }
    }
    const lat = await db.client.execute(`SELECT * FROM latency_${tier}`);
    t.equal(
      lat.rows.length,
      expected.size,
      `${tier}: one latency row per bucket × channel × model with timings`,
    );
    let latBad = 0;
    for (const r of lat.rows) {
      const h = expected.get(`${r['bucket']}|${r['channel']}|${r['model']}`);
      const got = [
        ...Array.from({ length: BIN_COUNT }, (_, i) => Number(r[`d${i}`])),
        ...Array.from({ length: BIN_COUNT }, (_, i) => Number(r[`t${i}`])),
        Number(r['dur_n']),
        Number(r['ttfb_n']),
      ];
      if (!h || got.join(',') !== h.join(',')) latBad++;
    }
    t.equal(latBad, 0, `${tier}: every histogram agrees`);
  }
}

t.test('rollups agree with the raw rows after many random batches', async (t) => {
  const db = await openTestDb(t);
  const w = new LogWriter(db, { rollups: true, batchRows: 97, rowsPerStatement: 13 });
  const rnd = prng(7);
  const base = Date.UTC(2026, 3, 1, 0, 0, 0);
  let i = 0;
  for (let round = 0; round < 40; round++) {
    const n = Math.floor(rnd() * 300);
    for (let k = 0; k < n; k++) w.enqueue(randomAttempt(rnd, i++, base));
    // Records sharing keys with earlier batches exercise the upserts' conflict path.
    if (rnd() < 0.5) await w.flush();
  }
  await w.close();
  t.equal(w.stats().written, i, `${i} attempts written`);
  t.ok(i > 4000);
  await compareWithRaw(t, db);
});

t.test('backfill folds attempts written before migration 002 in, once', async (t) => {
  const { url } = tempDbUrl(t);
  const [init] = loadMigrations();
  // A database as it was before the rollups: only 001, and attempts written without rollups.
  const old = await openDatabase(url, { migrate: false });
  await migrate(old.client, { migrations: [init!] });
  const rnd = prng(11);
  const base = Date.UTC(2026, 3, 1);
  // Written with 001's columns only (later migrations add columns to attempts).
  const cols = ATTEMPT_COLUMNS.slice(0, INIT_COLUMNS);
  const insert = `INSERT INTO attempts (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`;
  await old.client.batch(
    Array.from({ length: 1234 }, (_, i) => ({
      sql: insert,
      args: attemptToRow(randomAttempt(rnd, i, base)).slice(0, INIT_COLUMNS),
    })),
    'write',
  );
  old.close();

  const db = await openDatabase(url);
  t.teardown(() => db.close());
  t.same(
    db.appliedMigrations,
    loadMigrations()
      .slice(1)
      .map((m) => m.version),
    'the rollup migration (and every later one) ran on the existing file',
  );
  t.equal(db.appliedMigrations[0], 2);
  t.equal(
    Number((await db.client.execute('SELECT count(*) FROM rollup_hour')).rows[0]?.[0]),
    0,
    'no rollups yet',
  );
  // New attempts arrive (with rollups) before and while the backfill runs.
  const w = new LogWriter(db, { rollups: true });
  for (let i = 0; i < 300; i++) w.enqueue(randomAttempt(rnd, 10_000 + i, base));
  await w.flush();
  const aborted = new AbortController();
  aborted.abort();
  t.equal(await backfillRollups(db, { signal: aborted.signal }), 0, 'an aborted backfill does nothing');
  const log = captureLog();
  t.equal(
    await backfillRollups(db, { chunkRows: 100, log: log.log }),
    1234,
    'every earlier attempt folded in',
  );
  t.equal(log.count('info', 'rollup backfill done'), 1);
  for (let i = 0; i < 300; i++) w.enqueue(randomAttempt(rnd, 20_000 + i, base));
  await w.close();
  t.equal(await backfillRollups(db), 0, 'a second run has nothing left to do');
  const state = (await db.client.execute('SELECT next_id, end_id FROM rollup_backfill')).rows[0]!;
  t.equal(Number(state['next_id']), Number(state['end_id']), 'progress marker at the end');
  await compareWithRaw(t, db);
});

t.test('a throwing rollup builder does not block the attempt log', async (t) => {
  const db = await openTestDb(t);
  const errors: unknown[] = [];
  const batch = {
    values: attemptValues(Array.from({ length: 20 }, (_, i) => sampleAttempt(i))),
    rowsPerStatement: 8,
    rollups: true,
  };
  const stmts = attemptStatements(batch, {
    rollup: () => {
      throw new Error('boom');
    },
    onRollupError: (err) => errors.push(err),
  });
  t.equal(stmts.length, 3, 'the INSERTs only (8 + 8 + 4 rows)');
  t.match(errors, [{ message: 'boom' }], 'the failure is reported');
  await db.client.batch(stmts, 'write');
  t.equal(Number((await db.client.execute('SELECT count(*) FROM attempts')).rows[0]?.[0]), 20);
  t.equal(Number((await db.client.execute('SELECT count(*) FROM rollup_minute')).rows[0]?.[0]), 0);
});

t.test('rollupStatements: nothing for nothing, and rows without a time are left out', async (t) => {
  t.same(rollupStatements([]), []);
  t.same(rollupStatements(attemptValues([sampleAttempt(1, { ts: Number.NaN })])), []);
  const stmts = rollupStatements(attemptValues([sampleAttempt(1), sampleAttempt(2)]));
  t.equal(stmts.length, 6, 'one counts and one latency upsert per tier');
});
