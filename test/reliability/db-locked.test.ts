/**
 * The database locked (another process holds `BEGIN EXCLUSIVE`) or read-only for 10 s while the
 * proxy is under load: requests keep succeeding with bounded latency, /health says degraded and
 * the database is in error, rows beyond the (deliberately small) queue are counted as dropped in
 * /metrics, and after the release the writer recovers — every attempt is either in the database
 * or counted as dropped.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import t, { type Test } from 'tap';
import { type Daemon, startDaemon } from '../../src/daemon.js';
import { startFakeUpstream } from '../../src/dev/fake-upstream.js';
import { silentLogger } from '../../src/observability/log.js';
import { tmpDir } from '../helpers/tmp.js';
import { deadline, waitFor } from '../helpers/wait.js';
import { holdWriteLock } from '../store/helpers.js';
import {
  fmt,
  type Health,
  health,
  metricSum,
  reliabilityConfig,
  scrape,
  startLoad,
  summarise,
} from './helpers.js';

/** How long the database stays unavailable. */
const OUTAGE_MS = 10_000;
/** Rows the writer may hold: small, so a 10 s outage under load overflows it. */
const MAX_QUEUE = 500;

async function start(t: Test): Promise<{ daemon: Daemon; dbFile: string }> {
  const dir = tmpDir(t, 'ccload-rel-');
  const upstream = await startFakeUpstream({ record: false });
  t.teardown(() => upstream.close());
  const file = join(dir, 'ccload.yaml');
  // Two channels of equal priority share the traffic round-robin, so the main thread's own
  // writes (the pointers, every 2 s) meet the outage too, not only the attempt log.
  writeFileSync(
    file,
    reliabilityConfig({
      channels: [
        { name: 'up-a', url: upstream.url },
        { name: 'up-b', url: upstream.url },
      ],
    }),
  );
  const daemon = await startDaemon({
    configPath: file,
    cwd: dir,
    env: { RUNTIME_DIRECTORY: dir },
    log: silentLogger(),
    processMetrics: false,
    watch: false,
    logWriter: { maxQueue: MAX_QUEUE, retryMinMs: 100, retryMaxMs: 1000 },
  });
  t.teardown(() => daemon.close());
  return { daemon, dbFile: join(dir, 'state', 'ccload.db') };
}

async function rowCount(daemon: Daemon): Promise<number> {
  const rs = await daemon.app.db.client.execute('SELECT count(*) FROM attempts');
  return Number(rs.rows[0]?.[0]);
}

/**
 * Runs load for a second, makes the database unavailable for `OUTAGE_MS` (`outage` returns a
 * promise that settles when it is over), then checks latency, health, the loss accounting and
 * the recovery.
 */
async function outageUnderLoad(
  t: Test,
  daemon: Daemon,
  what: string,
  outage: () => Promise<void>,
): Promise<void> {
  // Paced (≈1 500 requests/s at most): plenty to overflow the queue, and CPU left for the
  // test files running beside this one.
  const load = startLoad({ url: daemon.url, concurrency: 16, paceMs: 10 });
  t.teardown(() => load.stop());
  await load.after(300);
  const written0 = daemon.app.logWriter.stats().written;
  const lag = monitorEventLoopDelay({ resolution: 5 });

  const from = performance.now();
  lag.enable();
  const over = outage();
  // /health reports the outage while it lasts.
  let during: Health | undefined;
  await waitFor(
    async () => {
      during = await health(daemon.url);
      return during.status === 'degraded' && during.database === 'error' && during.log_queue.degraded;
    },
    { timeoutMs: OUTAGE_MS - 1000, message: '/health to report the outage and the loss' },
  );
  await deadline(over, OUTAGE_MS + 10_000, `the ${what} to end`);
  const to = performance.now();
  lag.disable();

  // Recovery: rows are written again and /health is ok.
  await waitFor(
    async () => {
      const h = await health(daemon.url);
      return h.status === 'ok' && h.database === 'ok' && daemon.app.logWriter.stats().written > written0;
    },
    { timeoutMs: 10_000, message: 'writes to recover and /health to say ok' },
  );
  await load.after(200);
  const samples = await load.stop();
  await daemon.app.logWriter.flush();

  const before = summarise(samples, -Infinity, from);
  const inOutage = summarise(samples, from, to);
  const after = summarise(samples, to);
  t.comment(`${what}: before: ${fmt(before)}`);
  t.comment(`${what}: during ${Math.round(to - from)} ms: ${fmt(inOutage)}`);
  t.comment(`${what}: after: ${fmt(after)}`);
  // The histogram records whole sampling intervals: subtract the 5 ms resolution for the delay.
  const ms = (ns: number) => Math.max(0, ns / 1e6 - 5).toFixed(1);
  t.comment(
    `${what}: event-loop delay beyond the 5 ms sampling during it: mean ${ms(lag.mean)} ms, ` +
      `p99 ${ms(lag.percentile(99))} ms, max ${ms(lag.max)} ms`,
  );
  t.equal(summarise(samples).failed, 0, `no failed request (${summarise(samples).failures.join('; ')})`);
  t.ok(inOutage.n > 1000, `the proxy kept serving during the ${what} (${inOutage.n} requests)`);
  // A request that waited on the database would take up to the 10 s outage; 2 s leaves room for a
  // loaded 2-core machine.
  t.ok(inOutage.p99 < 2000, `p99 latency during the ${what} ${inOutage.p99.toFixed(1)} ms < 2000 ms`);

  const stats = daemon.app.logWriter.stats();
  const m = await scrape(daemon.url);
  const attempts = metricSum(m, 'ccload_attempts_total');
  const rows = await rowCount(daemon);
  t.comment(
    `${what}: ${attempts} attempts, ${rows} rows in the database, ${stats.dropped} dropped, ${stats.failedWrites} failed writes`,
  );
  t.ok(stats.dropped > 0, 'the small queue overflowed and rows were dropped');
  t.equal(metricSum(m, 'ccload_log_rows_dropped_total'), stats.dropped, 'the loss is counted in /metrics');
  t.ok(metricSum(m, 'ccload_log_write_failures_total') > 0, 'failed writes are counted');
  t.equal(rows + stats.dropped, attempts, 'every attempt is in the database or counted as dropped');
  t.equal(attempts, samples.length, 'one attempt per request');
  t.match(stats, { depth: 0, degraded: false, failing: false });
}

t.test('database locked by another process for 10 s under load', async (t) => {
  const { daemon, dbFile } = await start(t);
  await outageUnderLoad(t, daemon, 'lock', async () => {
    const lock = await holdWriteLock(t, dbFile, OUTAGE_MS);
    await lock.released;
  });
});

t.test('database read-only for 10 s under load', async (t) => {
  // Root ignores chmod, so read-only is simulated as in test/store/log-writer.test.ts: SQLite
  // refuses every write on connections with `query_only` set, with the error a read-only file
  // gives (SQLITE_READONLY). Set on the attempt log's connections and the main client's.
  const { daemon } = await start(t);
  const readOnly = async (on: boolean) => {
    const sql = `PRAGMA query_only=${on ? 1 : 0}`;
    await daemon.logDb.onEveryConnection(sql);
    await daemon.app.db.onEveryConnection(sql);
  };
  await outageUnderLoad(t, daemon, 'read-only', async () => {
    await readOnly(true);
    // The outage is a span of time by definition: nothing to await but its end.
    await delay(OUTAGE_MS);
    await readOnly(false);
  });
  t.match(daemon.app.logWriter.stats().lastError, /SQLITE_READONLY/, 'the writes failed read-only');
});
