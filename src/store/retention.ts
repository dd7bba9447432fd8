/**
 * Retention of the attempt log and its rollups: rows older than `store.retention` (default 30 d)
 * are deleted in small batches on a timer, yielding to the event loop between batches so that
 * the synchronous SQLite work never stalls the proxy for long (docs/stack-notes.md).
 *
 * What is kept:
 * - raw attempts: `ts >= now - retention` (rows without a time are deleted too);
 * - hour and day rollups: every period that ends after `now - retention`, so a period straddling
 *   the cut-off keeps counting the attempts just pruned from it (at most one period's worth);
 * - minute rollups: the same, but for at most `MINUTE_ROLLUP_KEEP_MS` (7 d). Queries read older
 *   sub-hour stretches from the hour rollups instead (see queries.ts `coverWindow`).
 */
import { guarded, type StoreDb, type StoreLog, silentLog } from './db.js';
import { ROLLUP_COLUMNS, TIER_MS, TIERS } from './rollup.js';

/** How long minute rollups are kept at most (they serve sub-hour trend buckets and window edges). */
export const MINUTE_ROLLUP_KEEP_MS = 7 * 86_400_000;

/** Rows per DELETE statement. */
const PRUNE_BATCH_ROWS = 2000;

/** Default period of the retention timer. */
const RETENTION_INTERVAL_MS = 10 * 60_000;

/** The newest row each table loses at `now`: attempts with `ts < attempts`, rollups with `bucket <= tier`. */
export interface RetentionCutoffs {
  readonly attempts: number;
  readonly minute: number;
  readonly hour: number;
  readonly day: number;
}

/** Where pruning cuts at `now` for a retention of `retentionMs` (pure). */
export function retentionCutoffs(now: number, retentionMs: number): RetentionCutoffs {
  const cut = now - retentionMs;
  const minuteCut = now - Math.min(retentionMs, MINUTE_ROLLUP_KEEP_MS);
  // A rollup row goes once its whole period lies before the cut: bucket + size <= cut.
  return {
    attempts: cut,
    minute: minuteCut - TIER_MS.minute,
    hour: cut - TIER_MS.hour,
    day: cut - TIER_MS.day,
  };
}

/** Rows deleted by one `pruneOnce`. */
export interface PruneResult {
  readonly attempts: number;
  readonly rollups: number;
  /** False when `maxBatches` or an abort stopped it before everything old was gone. */
  readonly complete: boolean;
}

/** Options of `pruneOnce`. */
export interface PruneOptions {
  readonly now: number;
  readonly retentionMs: number;
  readonly batchRows?: number;
  /** Most DELETE statements in this run (default 1000); the rest waits for the next run. */
  readonly maxBatches?: number;
  readonly signal?: AbortSignal;
}

const ROLLUP_KEY = ROLLUP_COLUMNS.slice(0, 5).join(', ');

/** A batched DELETE: `sql` removes up to `?2` rows of one table past the cut-off `?1` chosen by `cutoff`. */
interface PruneStatement {
  readonly sql: string;
  readonly cutoff: (c: RetentionCutoffs) => number;
  /** Whether it deletes attempts (else rollup rows), for the counts. */
  readonly raw: boolean;
}

function deleteStatements(): PruneStatement[] {
  const out: PruneStatement[] = [
    {
      sql: 'DELETE FROM attempts WHERE id IN (SELECT id FROM attempts WHERE ts < ?1 LIMIT ?2)',
      cutoff: (c) => c.attempts,
      raw: true,
    },
    {
      // Rows without a time are never written by the LogWriter and no window shows them; they
      // would otherwise stay forever. `?1 = ?1` only keeps the two parameters of every statement.
      sql: 'DELETE FROM attempts WHERE id IN (SELECT id FROM attempts WHERE ts IS NULL AND ?1 = ?1 LIMIT ?2)',
      cutoff: (c) => c.attempts,
      raw: true,
    },
  ];
  for (const tier of TIERS) {
    const cutoff = (c: RetentionCutoffs) => c[tier];
    out.push(
      {
        // WITHOUT ROWID: rows are addressed by their primary key.
        sql: `DELETE FROM rollup_${tier} WHERE (${ROLLUP_KEY}) IN (SELECT ${ROLLUP_KEY} FROM rollup_${tier} WHERE bucket <= ?1 LIMIT ?2)`,
        cutoff,
        raw: false,
      },
      {
        sql: `DELETE FROM latency_${tier} WHERE rowid IN (SELECT rowid FROM latency_${tier} WHERE bucket <= ?1 LIMIT ?2)`,
        cutoff,
        raw: false,
      },
    );
  }
  return out;
}

const DELETES = deleteStatements();

/**
 * Deletes what retention no longer keeps at `now`, `batchRows` rows per statement with a turn of
 * the event loop between statements.
 */
export async function pruneOnce(db: StoreDb, opts: PruneOptions): Promise<PruneResult> {
  const batch = Math.max(1, opts.batchRows ?? PRUNE_BATCH_ROWS);
  let budget = Math.max(1, opts.maxBatches ?? 1000);
  const cut = retentionCutoffs(opts.now, opts.retentionMs);
  let attempts = 0;
  let rollups = 0;
  for (const d of DELETES) {
    for (;;) {
      if (budget <= 0 || opts.signal?.aborted) return { attempts, rollups, complete: false };
      budget--;
      const rs = await guarded(db, () => db.client.execute({ sql: d.sql, args: [d.cutoff(cut), batch] }));
      if (d.raw) attempts += rs.rowsAffected;
      else rollups += rs.rowsAffected;
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (rs.rowsAffected < batch) break;
    }
  }
  return { attempts, rollups, complete: true };
}

/** Options of `RetentionTimer`. */
export interface RetentionTimerOptions {
  /** Current retention in ms (read at every run, so a reload takes effect). */
  readonly retentionMs: () => number;
  readonly now: () => number;
  /** Period between runs (default 10 min). */
  readonly intervalMs?: number;
  /** Delay of the first run after `start` (default 5 s, out of the start-up path). */
  readonly firstRunMs?: number;
  readonly batchRows?: number;
  readonly log?: StoreLog;
}

/** Runs `pruneOnce` periodically; one run at a time. */
export class RetentionTimer {
  readonly #db: StoreDb;
  readonly #opts: RetentionTimerOptions;
  readonly #log: StoreLog;
  readonly #abort = new AbortController();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<PruneResult | undefined> | undefined;
  #closed = false;

  constructor(db: StoreDb, opts: RetentionTimerOptions) {
    this.#db = db;
    this.#opts = opts;
    this.#log = opts.log ?? silentLog;
  }

  /** Schedules the first run; later runs follow every `intervalMs` (sooner when a run was cut short). */
  start(): void {
    if (this.#closed || this.#timer) return;
    this.#schedule(this.#opts.firstRunMs ?? 5000);
  }

  /** Runs now (or joins the run in progress). Never rejects: a failure is logged and yields undefined. */
  runNow(): Promise<PruneResult | undefined> {
    this.#running ??= this.#run().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  /** Stops the timer and waits for a run in progress to stop at its next batch. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#abort.abort();
    await this.#running;
  }

  #schedule(ms: number): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      void this.runNow().then((r) =>
        this.#schedule(r && !r.complete ? 1000 : (this.#opts.intervalMs ?? RETENTION_INTERVAL_MS)),
      );
    }, ms);
    this.#timer.unref();
  }

  async #run(): Promise<PruneResult | undefined> {
    const started = performance.now();
    try {
      const result = await pruneOnce(this.#db, {
        now: this.#opts.now(),
        retentionMs: this.#opts.retentionMs(),
        batchRows: this.#opts.batchRows,
        signal: this.#abort.signal,
      });
      if (result.attempts + result.rollups > 0) {
        this.#log.info(
          { event: 'retention', ...result, ms: Math.round(performance.now() - started) },
          `pruned ${result.attempts} attempts and ${result.rollups} rollup rows past retention`,
        );
      }
      return result;
    } catch (err) {
      this.#log.warn({ err, event: 'retention' }, 'pruning old attempts failed; will retry');
      return undefined;
    }
  }
}
