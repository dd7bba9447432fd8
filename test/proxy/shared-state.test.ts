/**
 * Several ccload instances sharing one database (the multi-instance deployment): a cooldown one
 * instance enters is adopted by the others at their next sync, and a clear by this instance is not
 * undone by a sync that still sees the old row.
 */
import { join } from 'node:path';
import t from 'tap';
import { startFakeUpstream } from '../../src/dev/fake-upstream.js';
import { startTestDaemon } from '../helpers/daemon.js';
import { messagesBody } from '../helpers/messages.js';
import { tmpDir } from '../helpers/tmp.js';

t.test('a cooldown entered by one instance is honoured by another', async (t) => {
  const shared = tmpDir(t);
  const good = await startFakeUpstream();
  t.teardown(() => good.close());
  const text = (db: string) => `version: 1
server: { listen: 127.0.0.1:0, database: "file:${db}" }
routing: { cooldown: { base: 60s, max: 10m } }
channels:
  - { name: dead, url: "http://127.0.0.1:9", api_key: sk-test-dead-0000, priority: 10 }
  - { name: good, url: "${good.url}", api_key: sk-test-good-0000, priority: 5 }
`;
  const db = join(shared, 'shared.db');
  const a = await startTestDaemon(t, text(db));
  const b = await startTestDaemon(t, text(db));
  const body = messagesBody({ model: 'claude-x' });
  const send = (url: string) =>
    fetch(`${url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });

  // Instance A fails on "dead" (connection refused), cools it and fails over to "good".
  const r = await send(a.daemon.url);
  t.equal(r.status, 200);
  await r.text();
  const key = [...a.daemon.app.proxyState.cooldowns.entries.keys()];
  t.same(key, ['c:dead'], 'A cooled the dead channel');

  // B has not seen it yet; after one sync it has, and sends nothing to "dead".
  t.equal(b.daemon.app.proxyState.cooldowns.entries.size, 0);
  await a.daemon.app.proxyState.flushRr(); // runs after A's queued cooldown write
  t.equal(await b.daemon.app.proxyState.syncShared(Date.now()), 1, 'B adopts the cooldown');
  const before = good.requests.length;
  const r2 = await send(b.daemon.url);
  t.equal(r2.status, 200);
  await r2.text();
  t.equal(good.requests.length, before + 1, 'B went straight to the healthy channel');
  await b.daemon.app.logWriter.flush();
  const rows = await b.daemon.app.db.client.execute(
    'SELECT channel FROM attempts WHERE request_id IN (SELECT request_id FROM attempts ORDER BY id DESC LIMIT 1)',
  );
  t.same(
    rows.rows.map((x) => x['channel']),
    ['good'],
    'no attempt on the cooling channel',
  );

  // A clear on B is not undone by B's next sync, even while the row may still be in the database.
  b.daemon.app.proxyState.clearChannel('dead');
  t.equal(await b.daemon.app.proxyState.syncShared(Date.now()), 0, 'the cleared scope is not adopted back');
  t.equal(b.daemon.app.proxyState.cooldowns.entries.size, 0);
});
