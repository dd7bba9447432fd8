import t from 'tap';
import { SessionPins } from '../../src/proxy/affinity-state.js';
import { StateStore } from '../../src/store/state-store.js';
import { openTestDb } from './helpers.js';

const NOW = 1_760_000_000_000;
const pin = (session: string, channel: string, lastUsed: number) => ({
  session,
  channel,
  keyIndex: 0,
  identity: `id-${channel}`,
  lastUsed,
});

t.test('session pins: upsert keeps the more recently used row, load since, delete, idle sweep', async (t) => {
  const db = await openTestDb(t);
  const store = new StateStore(db);
  t.same(await store.loadPins(), []);
  await store.savePins([pin('s1', 'a', NOW), pin('s2', 'a', NOW)], [], NOW);
  // Another instance wrote s1 more recently; an older write of s1 does not overwrite it.
  await store.savePins([pin('s1', 'b', NOW + 5000)], [], NOW + 5000);
  await store.savePins([pin('s1', 'c', NOW + 1000)], [], NOW + 6000);
  const rows = await store.loadPins();
  t.same(
    rows.map((r) => [r.session, r.channel, r.lastUsed]).sort(),
    [
      ['s1', 'b', NOW + 5000],
      ['s2', 'a', NOW],
    ],
    'the newer use wins',
  );
  t.same(
    (await store.loadPins(NOW + 1)).map((r) => r.session),
    ['s1'],
    'rows written since a time',
  );
  await store.savePins([], ['s2'], NOW + 7000);
  t.same(
    (await store.loadPins()).map((r) => r.session),
    ['s1'],
    'deleted',
  );
  t.equal(await store.deleteIdlePins(NOW + 4999), 0, 'used after the cut-off: kept');
  t.equal(await store.deleteIdlePins(NOW + 5000), 1, 'used at the cut-off: deleted');
});

t.test(
  'SessionPins: a flush writes only confirmed pins; another table adopts them; idle ones go',
  async (t) => {
    const db = await openTestDb(t);
    const store = new StateStore(db);
    const one = new SessionPins(store);
    const two = new SessionPins(store);
    await one.load(NOW);
    await two.load(NOW);
    const channel = {
      name: 'a',
      identity: 'id-a',
      priority: 0,
      keys: [{ index: 0, value: 'k', fingerprint: '…k' }],
    } as unknown as Parameters<SessionPins['assign']>[1]['channel'];
    one.assign('tentative', { channel, keyIndex: 0 }, NOW);
    one.assign('s', { channel, keyIndex: 0 }, NOW);
    t.equal(one.settle('s', { channel, keyIndex: 0 }, 'new', NOW + 10, { move_after: 60_000 }), 'new');
    await one.flush(NOW + 20, 65 * 60_000);
    t.same(
      (await store.loadPins()).map((r) => r.session),
      ['s'],
      'a tentative pin is not persisted',
    );
    t.equal(await two.syncShared(NOW + 30), 1, 'the other instance adopts the pin');
    t.equal(two.sessionsOn('a'), 1);
    t.equal(await two.syncShared(NOW + 40), 0, 'nothing new the second time');
    // Idle past `idle`: dropped in memory and in the database.
    await one.flush(NOW + 10 + 65 * 60_000, 65 * 60_000);
    t.equal(one.table.pins.has('s'), false);
    t.same(await store.loadPins(), [], 'the idle row is deleted');
  },
);
