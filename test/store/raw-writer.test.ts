/**
 * The write thread's raw connection (raw-writer.ts), driven directly: the prepared-statement cache
 * stays bounded; a failed batch is rolled back whole, keeps its SQLite code and the next batch
 * reconnects; remembered per-connection PRAGMAs replace each other by name; a file replaced since
 * start is never reopened (logged once).
 */
import { copyFileSync, renameSync } from 'node:fs';
import t from 'tap';
import { attemptValues } from '../../src/store/attempt.js';
import { attemptStatements } from '../../src/store/attempt-batch.js';
import { RawWriter } from '../../src/store/raw-writer.js';
import { captureLog, openTestDb, sampleAttempt } from './helpers.js';

const count = async (db: Awaited<ReturnType<typeof openTestDb>>) =>
  Number((await db.client.execute('SELECT count(*) FROM attempts')).rows[0]?.[0]);

/** The statements of `rows` attempts starting at `from`, `per` rows per INSERT. */
const batch = (from: number, rows: number, per: number, rollups = false) =>
  attemptStatements({
    values: attemptValues(Array.from({ length: rows }, (_, i) => sampleAttempt(from + i))),
    rowsPerStatement: per,
    rollups,
  });

t.test('the prepared-statement cache stays bounded', async (t) => {
  const db = await openTestDb(t);
  const raw = new RawWriter(db.file, { busyTimeoutMs: 1000, maxStatements: 8 });
  t.teardown(() => raw.close());
  let written = 0;
  const sizes: number[] = [];
  // Each row count is another INSERT text: 30 distinct statements through a cache of 8.
  for (let rows = 1; rows <= 30; rows++) {
    raw.run(batch(written, rows, rows));
    written += rows;
    sizes.push(raw.cachedStatements);
  }
  t.ok(Math.max(...sizes) <= 8, `cache sizes ${sizes.join(',')}`);
  t.equal(await count(db), written, 'every batch was written');
  const before = raw.cachedStatements;
  raw.run(batch(written, 30, 30));
  raw.run(batch(written + 30, 30, 30));
  t.equal(raw.cachedStatements, before, 'a repeated statement is reused, not added');
  t.equal(raw.opens, 1, 'one connection throughout');
});

t.test('a failed batch is rolled back whole, keeps its code, and the next batch reconnects', async (t) => {
  const db = await openTestDb(t);
  const raw = new RawWriter(db.file, { busyTimeoutMs: 1000 });
  t.teardown(() => raw.close());
  raw.run(batch(0, 10, 5, true));
  t.equal(raw.opens, 1);
  // 5 valid rows, then a duplicate of a row that exists: the whole batch must vanish.
  const dup = [...batch(100, 5, 5), ...batch(0, 1, 1)];
  await db.client.execute('CREATE UNIQUE INDEX test_unique_request ON attempts (request_id)');
  t.throws(() => raw.run(dup), { code: /^SQLITE_CONSTRAINT/ });
  t.equal(raw.cachedStatements, 0, 'the statements went with the connection');
  t.equal(await count(db), 10, 'nothing of the failed batch was committed');
  raw.run(batch(200, 10, 5, true));
  t.equal(raw.opens, 2, 'reconnected for the next batch');
  t.equal(await count(db), 20);
  const sum = await db.client.execute('SELECT sum(attempts) FROM rollup_hour');
  t.equal(Number(sum.rows[0]?.[0]), 20, 'rollups of the committed batches only');
});

t.test(
  'per-connection PRAGMAs are re-applied on reconnect; a later one replaces an earlier one',
  async (t) => {
    const db = await openTestDb(t);
    const raw = new RawWriter(db.file, { busyTimeoutMs: 1000 });
    t.teardown(() => raw.close());
    raw.everyConnection('PRAGMA query_only=1');
    t.throws(() => raw.run(batch(0, 3, 3)), { code: /^SQLITE_READONLY/ });
    // Reconnected: still read-only.
    t.throws(() => raw.run(batch(0, 3, 3)), { code: /^SQLITE_READONLY/ });
    t.equal(raw.opens, 2);
    // Given while no connection is open: only remembered, and it replaces query_only=1.
    raw.everyConnection('PRAGMA  QUERY_ONLY = 0');
    raw.run(batch(0, 3, 3));
    t.equal(await count(db), 3);
    t.equal(raw.opens, 3);
  },
);

t.test('a database file replaced since start is not reopened (logged once)', async (t) => {
  const db = await openTestDb(t);
  const log = captureLog();
  const raw = new RawWriter(db.file, { busyTimeoutMs: 1000, log: log.log });
  t.teardown(() => raw.close());
  raw.run(batch(0, 3, 3));
  // Another file at the same path (a restore, say).
  copyFileSync(db.file, `${db.file}.copy`);
  renameSync(`${db.file}.copy`, db.file);
  // The open connection keeps the file it opened; a failure drops it, and no reconnect follows.
  t.throws(() => raw.run([{ sql: 'INSERT INTO no_such_table VALUES (1)', args: [] }]), {
    code: 'SQLITE_ERROR',
  });
  t.throws(() => raw.run(batch(3, 3, 3)), { code: 'CCL_DB_REPLACED' });
  t.throws(() => raw.run(batch(3, 3, 3)), { code: 'CCL_DB_REPLACED' });
  t.equal(raw.opens, 1);
  t.equal(log.count('error', 'removed or replaced'), 1, 'logged once');
});

t.test('after close, batches are refused', async (t) => {
  const db = await openTestDb(t);
  const raw = new RawWriter(db.file, { busyTimeoutMs: 1000 });
  raw.close();
  raw.close();
  t.throws(() => raw.run(batch(0, 1, 1)), { code: 'CCL_CLOSED' });
});
