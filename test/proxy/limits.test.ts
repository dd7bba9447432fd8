/**
 * Limits on a real SQLite file with a manual clock: spend recorded and read back from the rollups,
 * the day's spend reset at midnight (a cost of the day before stays in the month only, also after a
 * sync), a failed flush keeping memory authoritative, and channel slots waking a waiter.
 */
import t from 'tap';
import { silentLogger } from '../../src/observability/log.js';
import { Limits } from '../../src/proxy/limits.js';
import type { AttemptRecord } from '../../src/store/attempt.js';
import { LogWriter } from '../../src/store/log-writer.js';
import { openTestDb, type TestLike } from '../store/helpers.js';

function record(ts: number, token: string, costUsd: number): AttemptRecord {
  return {
    ts,
    requestId: `r-${ts}`,
    token,
    endpoint: 'messages',
    modelRequested: 'm',
    modelSent: 'm',
    channel: 'c',
    keyFp: '…abcd',
    status: 200,
    errorClass: null,
    attempt: 1,
    final: true,
    ttfbMs: 1,
    durationMs: 1,
    streamed: false,
    inputTokens: 1,
    outputTokens: 1,
    cacheCreationTokens: 0,
    cacheReadTokens: 0,
    costUsd,
  };
}

async function setup(t: TestLike, start: number) {
  const db = await openTestDb(t);
  const writer = new LogWriter(db, { rollups: true, log: silentLogger() });
  t.teardown(() => writer.close());
  let clock = start;
  let flushOk = true;
  const limits = new Limits({
    db,
    flush: async () => {
      if (!flushOk) return false;
      await writer.flush();
      return true;
    },
    log: silentLogger(),
    now: () => clock,
    timeZone: () => 'UTC',
  });
  const spend = (name: string, ts: number, usd: number) => {
    writer.enqueue(record(ts, name, usd));
    limits.record(name, usd, ts, clock);
  };
  return {
    limits,
    writer,
    spend,
    set: (ms: number) => {
      clock = ms;
    },
    failFlush: (v: boolean) => {
      flushOk = !v;
    },
  };
}

t.test('spend is read back from the rollups and resets at midnight', async (t) => {
  const day = Date.parse('2026-12-03T00:00:00Z');
  const s = await setup(t, day + 10 * 3_600_000);
  s.spend('alice', day + 10 * 3_600_000, 3);
  s.spend('alice', day + 10 * 3_600_000 + 1000, 2.5);
  t.same(s.limits.spend('alice', day + 11 * 3_600_000), { day: 5.5, month: 5.5 }, 'in memory');
  await s.limits.sync();
  t.same(s.limits.spend('alice', day + 11 * 3_600_000), { day: 5.5, month: 5.5 }, 'after a sync: the same');

  // A cost recorded a second before midnight, not yet synced, then the day turns.
  s.set(day + 86_400_000 - 1000);
  s.spend('alice', day + 86_400_000 - 1000, 1);
  s.set(day + 86_400_000);
  t.same(s.limits.spend('alice', day + 86_400_000), { day: 0, month: 6.5 }, 'a new day starts at zero');
  await s.limits.sync();
  t.same(
    s.limits.spend('alice', day + 86_400_000),
    { day: 0, month: 6.5 },
    "yesterday's unsynced cost is not added to today",
  );
});

t.test('a failed flush keeps the memory figure; the next good sync adopts the database', async (t) => {
  const day = Date.parse('2026-12-03T00:00:00Z');
  const s = await setup(t, day + 1000);
  s.failFlush(true);
  s.spend('bob', day + 1000, 4);
  await s.limits.sync();
  t.same(s.limits.spend('bob', day + 2000), { day: 4, month: 4 }, 'kept');
  s.failFlush(false);
  await s.limits.sync();
  t.same(s.limits.spend('bob', day + 2000), { day: 4, month: 4 }, 'written and read back once, not twice');
  t.ok(s.limits.lastSync !== undefined);
});

t.test('a freed channel slot wakes a waiting request', async (t) => {
  const s = await setup(t, 0);
  const ch = { name: 'relay', maxConcurrency: 1, rpm: undefined } as never;
  s.limits.startAttempt(ch, 0);
  t.equal(s.limits.cappedUntil(ch, 0), Number.POSITIVE_INFINITY, 'at its cap');
  const wait = s.limits.waitForSlot(10_000);
  const started = performance.now();
  setTimeout(() => s.limits.endAttempt(ch), 20);
  await wait.done;
  t.ok(performance.now() - started < 5000, 'woken by the release, not the timeout');
  t.equal(s.limits.cappedUntil(ch, 0), undefined, 'free again');
});
