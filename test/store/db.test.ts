import { existsSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createClient } from '@libsql/client';
import t from 'tap';
import { databaseKind, filePathOf, isBusyError, openDatabase, redactUrl } from '../../src/store/db.js';
import { captureLog, holdWriteLock, openTestDb, tempDbUrl } from './helpers.js';

t.test('databaseKind and filePathOf', async (t) => {
  const kinds: [string, string][] = [
    ['file:data/ccload.db', 'file'],
    ['file:/var/lib/ccload/x.db', 'file'],
    ['file:///var/lib/ccload/x.db', 'file'],
    [':memory:', 'memory'],
    ['file::memory:', 'memory'],
    ['libsql://db-org.turso.io', 'remote'],
    ['https://db.example.com', 'remote'],
    ['http://127.0.0.1:8080', 'remote'],
  ];
  for (const [url, kind] of kinds) t.equal(databaseKind(url), kind, url);
  t.equal(filePathOf('file:data/ccload.db'), 'data/ccload.db');
  t.equal(filePathOf('file:/var/lib/x.db'), '/var/lib/x.db');
  t.equal(filePathOf('file:///var/lib/x.db'), '/var/lib/x.db');
  t.equal(filePathOf('file:/tmp/a%20b.db'), '/tmp/a b.db');
  t.throws(() => filePathOf('file:'));
  t.equal(redactUrl('libsql://db.turso.io?tls=1&authToken=secret'), 'libsql://db.turso.io?tls=…&authToken=…');
  t.equal(redactUrl('https://user:pw@db.example/x'), 'https://…:…@db.example/x');
  t.equal(redactUrl('file:data/x.db'), 'file:data/x.db');
});

t.test('a file database: folder created, WAL, per-connection pragmas, ping, close', async (t) => {
  const db = await openTestDb(t, { busyTimeoutMs: 1234 });
  t.equal(db.kind, 'file');
  t.ok(existsSync(db.file), 'file created inside a folder that did not exist');
  t.same(db.appliedMigrations.length > 0, true, 'migrated on open');

  // Issued in one tick, these borrow distinct pooled connections: each must carry the settings.
  const probe = async (pragma: string) =>
    (await Promise.all(Array.from({ length: 4 }, () => db.client.execute(`PRAGMA ${pragma}`)))).map((rs) =>
      Number(rs.rows[0]?.[0]),
    );
  t.same(await probe('busy_timeout'), [1234, 1234, 1234, 1234], 'busy_timeout on every connection');
  t.same(await probe('synchronous'), [1, 1, 1, 1], 'synchronous=NORMAL on every connection');
  t.same(await probe('foreign_keys'), [1, 1, 1, 1], 'foreign_keys on every connection');

  // journal_mode=WAL is a property of the file: a separate plain client sees it too.
  const other = createClient({ url: db.url });
  t.teardown(() => other.close());
  t.equal((await other.execute('PRAGMA journal_mode')).rows[0]?.[0], 'wal');

  t.equal(await db.ping(), true);
  db.close();
  db.close();
  t.equal(await db.ping(), false, 'ping after close is false, not a throw');
});

t.test('busy_timeout: a writer waits for another process to release its lock', async (t) => {
  const { url, file } = tempDbUrl(t);
  const waiting = await openDatabase(url, { busyTimeoutMs: 10_000 });
  const impatient = await openDatabase(url, { busyTimeoutMs: 0 });
  t.teardown(() => {
    waiting.close();
    impatient.close();
  });
  const insert = { sql: 'INSERT INTO rr (key, value) VALUES (?, 1)', args: ['k'] };

  // The child commits on its own after 1.5 s: while we sit in SQLite's (synchronous) busy wait,
  // this thread cannot tell it to.
  const lock = await holdWriteLock(t, file, 1500);
  let t0 = performance.now();
  await t.rejects(impatient.client.execute(insert), { code: 'SQLITE_BUSY' }, 'busy_timeout 0 fails at once');
  // Half the lock's hold: a failure that waited for the lock at all would come later; generous for
  // a loaded machine.
  t.ok(performance.now() - t0 < 750, 'without a busy timeout the failure is immediate');

  t0 = performance.now();
  await waiting.client.execute(insert);
  const waited = performance.now() - t0;
  t.comment(`write waited ${waited.toFixed(0)} ms for the other process's lock`);
  t.ok(waited > 50, 'the write waited for the lock instead of failing');
  await lock.released;
  t.equal((await waiting.client.execute('SELECT count(*) FROM rr')).rows[0]?.[0], 1);
});

t.test('an in-memory database is migrated', async (t) => {
  const db = await openDatabase(':memory:');
  t.teardown(() => db.close());
  t.equal(db.kind, 'memory');
  const rs = await db.client.execute("SELECT count(*) FROM sqlite_master WHERE name = 'attempts'");
  t.equal(rs.rows[0]?.[0], 1);
  t.equal(await db.ping(), true);
});

t.test('a remote URL sends the auth token (loopback server stands in for sqld)', async (t) => {
  const seen: (string | undefined)[] = [];
  const server = http.createServer((req, res) => {
    seen.push(req.headers.authorization);
    req.resume();
    res.writeHead(503, { 'content-type': 'text/plain' }).end('not a libSQL server');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as AddressInfo;
  await t.rejects(openDatabase(`http://127.0.0.1:${port}`, { authToken: 'tok-123' }));
  t.ok(seen.length > 0, 'the client reached the server');
  t.equal(seen[0], 'Bearer tok-123');
});

t.test('resetConnections replaces connections, keeps the settings, refuses a replaced file', async (t) => {
  const cap = captureLog();
  const db = await openTestDb(t, { busyTimeoutMs: 777, log: cap.log });
  await db.client.execute("INSERT INTO rr (key, value) VALUES ('a', 1)");
  t.equal(await db.resetConnections(), true);
  const rows = await Promise.all(Array.from({ length: 4 }, () => db.client.execute('PRAGMA synchronous')));
  t.same(
    rows.map((rs) => Number(rs.rows[0]?.[0])),
    [1, 1, 1, 1],
    'pragmas re-applied',
  );
  t.equal((await db.client.execute('PRAGMA busy_timeout')).rows[0]?.[0], 777);
  t.equal((await db.client.execute('SELECT value FROM rr')).rows[0]?.[0], 1, 'same database');

  // The file is removed (the docs call the database "safe to delete"): reopening the path would
  // silently start a new, empty database, so the reset declines.
  for (const suffix of ['', '-wal', '-shm']) rmSync(db.file + suffix, { force: true });
  t.equal(await db.resetConnections(), false);
  t.equal(await db.resetConnections(), false);
  t.equal(cap.count('error', 'removed or replaced'), 1, 'logged once');

  const mem = await openDatabase(':memory:');
  t.teardown(() => mem.close());
  t.equal(await mem.resetConnections(), false, 'a memory database lives in its one connection');
});

t.test('isBusyError', async (t) => {
  t.ok(isBusyError({ code: 'SQLITE_BUSY', message: 'database is locked' }));
  t.ok(isBusyError({ code: 'SQLITE_LOCKED' }));
  t.ok(isBusyError(new Error('SQLITE_BUSY: cannot commit transaction - SQL statements in progress')));
  t.notOk(isBusyError({ code: 'SQLITE_READONLY' }));
  t.notOk(isBusyError(null));
  t.notOk(isBusyError('x'));
});
