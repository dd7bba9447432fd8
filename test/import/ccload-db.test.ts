/**
 * Reading a ccLoad database: read-only for real (SQLite refuses writes through the URL we build,
 * also for paths with spaces, `#`, `?` and `%`), tables and columns as declared, rows as stored.
 */
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createClient } from '@libsql/client';
import t from 'tap';
import { readCcloadDb, readOnlyUrl } from '../../src/import/ccload-db.js';
import { tmpDir } from '../helpers/tmp.js';
import { KEYS, laterDb, seedDb } from './helpers.js';

t.test('the read-only URL refuses writes, whatever the path looks like', async (t) => {
  const db = await seedDb(t);
  const odd = join(tmpDir(t), 'a dir #1 ?x %41');
  mkdirSync(odd);
  const copy = join(odd, 'old ccload.db');
  copyFileSync(db, copy);
  for (const file of [db, copy]) {
    const client = createClient({ url: readOnlyUrl(file) });
    t.teardown(() => client.close());
    const rs = await client.execute('SELECT count(*) AS n FROM channels');
    t.equal(rs.rows[0]?.['n'], 3, `reads ${file}`);
    await t.rejects(
      client.execute("UPDATE channels SET name = 'x'"),
      /SQLITE_READONLY|readonly/i,
      'a write is refused',
    );
  }
});

t.test('tables, columns and rows of the seed schema', async (t) => {
  const r = await readCcloadDb(await seedDb(t));
  t.same(Object.keys(r.tables).sort(), ['channels', 'cooldowns', 'logs', 'rr']);
  t.same(r.tables['channels'], [
    'id',
    'name',
    'api_key',
    'url',
    'priority',
    'models',
    'enabled',
    'created_at',
    'updated_at',
  ]);
  t.equal(r.channels.length, 3);
  t.equal(r.channels[0]?.['api_key'], KEYS.main);
  t.same(r.apiKeys, [], 'no api_keys table: no rows');
  t.same(r.counts, { logs: 1, cooldowns: 1, rr: 1 });
});

t.test('the api_keys table of a later schema, ordered by channel and index', async (t) => {
  const r = await readCcloadDb(await laterDb(t));
  t.same(
    r.apiKeys.map((k) => [k['channel_id'], k['key_index']]),
    [
      [2, 0],
      [2, 1],
      [2, 2],
      [2, 3],
      [2, 4],
    ],
  );
  t.equal(r.counts['auth_tokens'], 1);
});
