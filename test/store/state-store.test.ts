import t from 'tap';
import type { CooldownRow } from '../../src/proxy/cooldown.js';
import { RELOADS_KEPT, StateStore } from '../../src/store/state-store.js';
import { holdWriteLock, openTestDb } from './helpers.js';

const NOW = 1_760_000_000_000;

function cooldown(scopeKey: string, over: Partial<CooldownRow> = {}): CooldownRow {
  return {
    scopeKey,
    scope: 'channel',
    channel: 'main',
    keyIndex: null,
    model: null,
    until: NOW + 30_000,
    failures: 1,
    reason: '503 upstream',
    identity: 'id-1',
    updatedAt: NOW,
    ...over,
  };
}

t.test('cooldowns: save, upsert, load, delete', async (t) => {
  const db = await openTestDb(t);
  const store = new StateStore(db);
  t.same(await store.loadCooldowns(), []);
  await store.saveCooldown(cooldown('channel:main'));
  await store.saveCooldown(
    cooldown('key-model:main#1/claude-x', {
      scope: 'key-model',
      keyIndex: 1,
      model: 'claude-x',
      reason: null,
    }),
  );
  await store.saveCooldown(cooldown('channel:backup', { channel: 'backup', identity: null }));
  // Upsert: a second failure of the same scope replaces the row.
  await store.saveCooldown(
    cooldown('channel:main', { failures: 2, until: NOW + 60_000, updatedAt: NOW + 1 }),
  );

  const rows = await store.loadCooldowns();
  t.equal(rows.length, 3);
  t.same(
    rows.find((r) => r.scopeKey === 'channel:main'),
    cooldown('channel:main', { failures: 2, until: NOW + 60_000, updatedAt: NOW + 1 }),
  );
  t.same(
    rows.find((r) => r.scope === 'key-model'),
    cooldown('key-model:main#1/claude-x', {
      scope: 'key-model',
      keyIndex: 1,
      model: 'claude-x',
      reason: null,
    }),
  );

  t.equal(await store.deleteCooldowns([]), 0);
  t.equal(await store.deleteCooldowns(['channel:main', 'no-such-scope']), 1);
  t.equal(await store.deleteChannelCooldowns('main'), 1, 'the key-model row of main');
  t.same(
    (await store.loadCooldowns()).map((r) => r.scopeKey),
    ['channel:backup'],
  );
});

t.test('cooldowns: deleting many keys spans several statements', async (t) => {
  const db = await openTestDb(t);
  const store = new StateStore(db);
  const keys = Array.from({ length: 450 }, (_, i) => `k${i}`);
  for (const k of keys) await store.saveCooldown(cooldown(k));
  t.equal(await store.deleteCooldowns(keys), 450);
  t.same(await store.loadCooldowns(), []);
});

t.test('round-robin pointers', async (t) => {
  const db = await openTestDb(t);
  const store = new StateStore(db);
  t.same([...(await store.loadRr())], []);
  await store.saveRr([
    ['claude-x/10', 3],
    ['claude-y/5', 0],
  ]);
  await store.saveRr(new Map([['claude-x/10', 4]]));
  await store.saveRr([]);
  t.same(Object.fromEntries(await store.loadRr()), { 'claude-x/10': 4, 'claude-y/5': 0 });
});

t.test('reload history: newest first, errors round-trip, pruned', async (t) => {
  const db = await openTestDb(t);
  const store = new StateStore(db);
  const id1 = await store.recordReload({
    at: NOW,
    source: 'startup',
    result: 'applied',
    generation: 1,
    hash: 'sha256:aa',
    durationMs: 3.25,
    errors: [],
  });
  const issue = { file: 'ccload.yaml', line: 18, col: 10, path: 'channels[1].url', message: 'Invalid URL' };
  const id2 = await store.recordReload({
    at: NOW + 1000,
    source: 'file',
    result: 'rejected',
    generation: 1,
    hash: 'sha256:bb',
    durationMs: 1.5,
    errors: [issue],
  });
  t.ok(id2 > id1);
  const recent = await store.recentReloads(10);
  t.same(
    recent.map((r) => r.id),
    [id2, id1],
  );
  t.same(recent[0], {
    id: id2,
    at: NOW + 1000,
    source: 'file',
    result: 'rejected',
    generation: 1,
    hash: 'sha256:bb',
    durationMs: 1.5,
    errors: [issue],
  });
  t.same(recent[1]?.errors, []);
  t.equal((await store.recentReloads(1)).length, 1);

  for (let i = 0; i < RELOADS_KEPT + 5; i++) {
    await store.recordReload({
      at: NOW + i,
      source: 'signal',
      result: 'unchanged',
      generation: 1,
      hash: null,
      durationMs: null,
      errors: [],
    });
  }
  const count = await db.client.execute('SELECT count(*) FROM reloads');
  t.equal(Number(count.rows[0]?.[0]), RELOADS_KEPT, `history capped at ${RELOADS_KEPT}`);
});

t.test('a busy failure is reported, and the next write works at once', async (t) => {
  const db = await openTestDb(t, { busyTimeoutMs: 10 });
  const store = new StateStore(db);
  const lock = await holdWriteLock(t, db.file);
  await t.rejects(store.saveCooldown(cooldown('channel:main')), { code: 'SQLITE_BUSY' });
  await lock.release();
  await store.saveCooldown(cooldown('channel:main'));
  t.equal((await store.loadCooldowns()).length, 1);
});
