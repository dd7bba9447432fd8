import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { openDatabase } from '../../src/store/db.js';
import {
  appliedVersions,
  loadMigrations,
  migrate,
  migrationsDir,
  splitSql,
} from '../../src/store/migrate.js';
import { tmpDir } from '../helpers/tmp.js';
import { tempDbUrl } from './helpers.js';

/**
 * SHA-256 of every landed migration. A landed file is never edited (databases that already ran it
 * would silently differ from new ones): add the next numbered file instead, and its hash here.
 */
const LANDED: Record<string, string> = {
  '001_init.sql': '908b025832286ea29092f7dbb4698eda348d9114b1c2d73956fb6e9ddc130fe2',
  '002_rollups.sql': 'eb7236c00b0f6a21f13f80a609732c50586791f099f6ed1ebb35eec0e4e3fabd',
  '003_affinity.sql': '7fe074f1c3d47b70f718486e77b11f84a9f3d757da777c6822b4e3ab79faa4d4',
  '004_billing_2026.sql': '6b3f20567ff4a32dc97b716fc24d486c611e62b8446f4734dd3d05e3c9aac190',
};

t.test('the migrations folder is found from the compiled code and is numbered 1..n', async (t) => {
  const dir = migrationsDir();
  t.match(dir, /schema[/\\]migrations$/);
  const migs = loadMigrations(dir);
  t.ok(migs.length >= 1);
  t.same(
    migs.map((m) => m.version),
    migs.map((_, i) => i + 1),
    'contiguous versions',
  );
  t.equal(migs[0]?.name, 'init');
  for (const m of migs) {
    const hash = createHash('sha256')
      .update(readFileSync(path.join(dir, m.file)))
      .digest('hex');
    t.equal(hash, LANDED[m.file], `${m.file} is pinned and unchanged`);
  }
});

t.test('fresh database gets every migration; re-open applies none', async (t) => {
  const { url } = tempDbUrl(t);
  const known = loadMigrations().map((m) => m.version);
  const first = await openDatabase(url);
  t.same(first.appliedMigrations, known, 'all applied on a fresh file');
  const rs = await first.client.execute(
    'SELECT version, name, applied_at FROM schema_migrations ORDER BY version',
  );
  t.same(
    rs.rows.map((r) => Number(r[0])),
    known,
  );
  t.ok(
    rs.rows.every((r) => Number(r[2]) > 0),
    'applied_at recorded',
  );
  const tables = await first.client.execute(
    "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
  );
  const names = tables.rows.map((r) => String(r[0]));
  for (const name of ['attempts', 'cooldowns', 'reloads', 'rr', 'schema_migrations', 'sessions']) {
    t.ok(names.includes(name), `table ${name}`);
  }
  const plan = await first.client.execute(
    'EXPLAIN QUERY PLAN SELECT * FROM attempts WHERE channel = ? AND ts >= ? ORDER BY ts DESC LIMIT 50',
    ['main', 0],
  );
  t.match(JSON.stringify(plan.rows), /attempts_channel_ts/, 'channel filter uses its index');
  first.close();

  const again = await openDatabase(url);
  t.teardown(() => again.close());
  t.same(again.appliedMigrations, [], 'nothing applied on re-open');
  t.same([...(await appliedVersions(again.client))], known);
});

t.test('a failing migration leaves nothing behind and is not recorded', async (t) => {
  const dir = tmpDir(t);
  writeFileSync(path.join(dir, '001_one.sql'), 'CREATE TABLE one (x);');
  writeFileSync(path.join(dir, '002_two.sql'), 'CREATE TABLE two (x);\nINSERT INTO nowhere VALUES (1);');
  const { url } = tempDbUrl(t);
  const db = await openDatabase(url, { migrate: false });
  t.teardown(() => db.close());
  await t.rejects(migrate(db.client, { migrations: loadMigrations(dir) }), /002_two\.sql failed: .*nowhere/);
  t.same([...(await appliedVersions(db.client))], [1], 'only 001 recorded');
  const two = await db.client.execute("SELECT count(*) FROM sqlite_master WHERE name = 'two'");
  t.equal(two.rows[0]?.[0], 0, "002's first statement was rolled back with the batch");
});

t.test('two clients migrating at once: one applies, the other skips', async (t) => {
  const { url } = tempDbUrl(t);
  const a = await openDatabase(url, { migrate: false });
  const b = await openDatabase(url, { migrate: false });
  t.teardown(() => {
    a.close();
    b.close();
  });
  const [ra, rb] = await Promise.all([migrate(a.client), migrate(b.client)]);
  const all = loadMigrations().map((m) => m.version);
  t.same([...ra, ...rb].sort(), all, 'each migration applied exactly once');
  t.same([...(await appliedVersions(a.client))], all);
});

t.test('migration files: bad names and gaps are refused', async (t) => {
  const gap = tmpDir(t);
  writeFileSync(path.join(gap, '001_a.sql'), 'SELECT 1;');
  writeFileSync(path.join(gap, '003_c.sql'), 'SELECT 1;');
  t.throws(() => loadMigrations(gap), /without gaps/);
  const dup = tmpDir(t);
  writeFileSync(path.join(dup, '001_a.sql'), 'SELECT 1;');
  writeFileSync(path.join(dup, '1_b.sql'), 'SELECT 1;');
  t.throws(() => loadMigrations(dup), /without gaps or duplicates/);
  const bad = tmpDir(t);
  writeFileSync(path.join(bad, 'init.sql'), 'SELECT 1;');
  t.throws(() => loadMigrations(bad), /001_name\.sql/);
});

t.test('splitSql', async (t) => {
  const table: [string, string[]][] = [
    ['CREATE TABLE a (x); CREATE TABLE b (y);', ['CREATE TABLE a (x)', 'CREATE TABLE b (y)']],
    ["INSERT INTO a VALUES ('x;y'); SELECT 1", ["INSERT INTO a VALUES ('x;y')", 'SELECT 1']],
    ["INSERT INTO a VALUES ('it''s; fine');", ["INSERT INTO a VALUES ('it''s; fine')"]],
    [
      '-- a comment; with a semicolon\nSELECT 1;\n/* block; */ SELECT 2;',
      ['-- a comment; with a semicolon\nSELECT 1', '/* block; */ SELECT 2'],
    ],
    ['-- only a comment;\n', []],
    ['SELECT "a;b" FROM t;', ['SELECT "a;b" FROM t']],
    [
      'CREATE TRIGGER tr AFTER INSERT ON a BEGIN UPDATE b SET y = 1; DELETE FROM c; END; SELECT 1;',
      ['CREATE TRIGGER tr AFTER INSERT ON a BEGIN UPDATE b SET y = 1; DELETE FROM c; END', 'SELECT 1'],
    ],
    [
      'CREATE TEMP TRIGGER tr AFTER INSERT ON a BEGIN SELECT CASE WHEN 1 THEN 2 END; END;',
      ['CREATE TEMP TRIGGER tr AFTER INSERT ON a BEGIN SELECT CASE WHEN 1 THEN 2 END; END'],
    ],
  ];
  for (const [sql, want] of table) t.same(splitSql(sql), want, sql);
});
