/**
 * The batched attempt-log writer: the proxy hands it one record per upstream attempt (`enqueue`,
 * O(1), never awaits, never throws) and it writes them in the background as multi-row INSERTs, one
 * write batch per flush, yielding to the event loop between flushes. With `rollups: true` each
 * batch also folds its rows into the rollup tables (rollup.ts), in the same transaction.
 *
 * Why batched: the local libSQL client runs SQLite synchronously on the calling thread, so one
 * `execute` per attempt would put a commit (and an fsync) on the request path. A 500-row flush of
 * five 100-row statements costs a few ms.
 *
 * Two write paths, one statement builder (attempt-batch.ts). Per flush the writer computes the
 * column values once (`attemptValues`, one flat array) and then:
 *   - when the database has `writeAttempts` (the daemon's write thread, write-thread.ts), posts
 *     just those values; the thread builds the INSERTs and rollups and runs them on a raw
 *     connection with cached prepared statements, so neither the building, nor the flush, nor a busy
 *     wait on a locked database costs the event loop anything;
 *   - otherwise (a `Database` given directly: tests, memory and remote databases) builds the
 *     statements here and runs them with `client.batch`.
 *
 * Failure policy: a failed write (SQLITE_BUSY, READONLY, FULL, I/O error …) leaves its rows queued
 * and is retried with exponential backoff. Only when the queue outgrows `maxQueue` are the OLDEST
 * rows dropped; that incident is logged once (warn) and `degraded` stays true until writes succeed
 * again and the queue has drained below half of `maxQueue` (then recovery is logged once). Every
 * record is either written or counted in `dropped`.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { InStatement } from '@libsql/client';
import { type AttemptRecord, attemptValues } from './attempt.js';
import { type AttemptBatch, attemptStatements } from './attempt-batch.js';
import { isBusyError, type StoreLog, silentLog } from './db.js';

/** Options of `LogWriter`. */
export interface LogWriterOptions {
  /** Most rows held in memory (queued + being written); beyond it the oldest queued rows are dropped. */
  readonly maxQueue?: number;
  /** Most rows per flush (one write batch). */
  readonly batchRows?: number;
  /** Rows per multi-row INSERT statement inside a flush. */
  readonly rowsPerStatement?: number;
  /** Period of the background flush. */
  readonly intervalMs?: number;
  /** First retry delay after a failed write; doubles per failure up to `retryMaxMs`. */
  readonly retryMinMs?: number;
  readonly retryMaxMs?: number;
  /** Default bound for `close()`. */
  readonly closeTimeoutMs?: number;
  /** Called with each batch of records after it has been written. */
  readonly onBatch?: (rows: readonly AttemptRecord[]) => void;
  /**
   * Also fold each flush's rows into the rollup tables, committed or failed together with its
   * INSERTs (default false). Should building them throw, the rows are written without them (logged once).
   */
  readonly rollups?: boolean;
  readonly log?: StoreLog;
  /** Time source for `lastWriteAt` and the close deadline. */
  readonly clock?: () => number;
}

/** Counters of a `LogWriter`, for /metrics and /health. */
export interface LogWriterStats {
  /** Rows in memory: queued plus being written. */
  readonly depth: number;
  /** Rows written since start. */
  readonly written: number;
  /** Rows dropped since start (queue overflow, or still queued when `close` gave up). */
  readonly dropped: number;
  /** Failed write attempts since start. */
  readonly failedWrites: number;
  /** True while rows are being lost: set by the first drop, cleared on recovery. */
  readonly degraded: boolean;
  /** True from a failed write until the next successful one. */
  readonly failing: boolean;
  /** The last write error, `CODE: message`. */
  readonly lastError?: string;
  /** Time of the last successful write. */
  readonly lastWriteAt?: number;
}

/**
 * What the writer needs of a database: a client that runs one write batch — a `Database` — or,
 * better, `writeAttempts`, which takes the flush as plain values — the daemon's `WriteThread`
 * (write-thread.ts), which builds and runs the statements off the event loop.
 */
export interface WriterDb {
  readonly client: { batch(stmts: InStatement[], mode: 'write'): Promise<unknown> };
  /**
   * Writes one flush given as values; when present the writer uses it instead of `client.batch`.
   * Rejects with the SQLite error (its `code` kept) and then has written nothing.
   */
  writeAttempts?(batch: AttemptBatch): Promise<void>;
  readonly log?: StoreLog;
  /** Replaces the connections after a busy failure (see `isBusyError`); a write thread does that itself. */
  resetConnections?(): Promise<boolean>;
}

/** Drop the consumed head of the queue array once it is this long and more than half of it. */
const COMPACT_AT = 4096;

/** See the module comment. */
export class LogWriter {
  readonly #db: WriterDb;
  readonly #maxQueue: number;
  readonly #batchRows: number;
  readonly #rowsPerStatement: number;
  readonly #intervalMs: number;
  readonly #retryMinMs: number;
  readonly #retryMaxMs: number;
  readonly #closeTimeoutMs: number;
  readonly #onBatch: ((rows: readonly AttemptRecord[]) => void) | undefined;
  readonly #rollups: boolean;
  readonly #log: StoreLog;
  readonly #clock: () => number;

  /** Queued rows are `#queue[#head..]`; a deque without O(n) shifts. */
  #queue: AttemptRecord[] = [];
  #head = 0;
  /** Rows taken out of the queue for the write in progress. */
  #inflight = 0;

  #written = 0;
  #dropped = 0;
  #failedWrites = 0;
  #failing = false;
  #degraded = false;
  #droppedInIncident = 0;
  #lastError: string | undefined;
  #lastWriteAt: number | undefined;
  #backoffMs = 0;
  #hookFailed = false;
  #rollupFailed = false;
  #lateLogged = false;

  #started = false;
  #closed = false;
  #closing: Promise<void> | undefined;
  #running: Promise<void> | undefined;
  #interval: NodeJS.Timeout | undefined;
  #retry: NodeJS.Timeout | undefined;
  #immediate: NodeJS.Immediate | undefined;

  constructor(db: WriterDb, opts: LogWriterOptions = {}) {
    this.#db = db;
    this.#maxQueue = Math.max(1, opts.maxQueue ?? 50_000);
    this.#batchRows = Math.max(1, opts.batchRows ?? 500);
    this.#rowsPerStatement = Math.max(1, opts.rowsPerStatement ?? 100);
    this.#intervalMs = Math.max(1, opts.intervalMs ?? 250);
    this.#retryMinMs = Math.max(1, opts.retryMinMs ?? 250);
    this.#retryMaxMs = Math.max(this.#retryMinMs, opts.retryMaxMs ?? 5000);
    this.#closeTimeoutMs = opts.closeTimeoutMs ?? 5000;
    this.#onBatch = opts.onBatch;
    this.#rollups = opts.rollups ?? false;
    this.#log = opts.log ?? db.log ?? silentLog;
    this.#clock = opts.clock ?? Date.now;
  }

  /** Queues one record. O(1); never awaits, never throws. After `close()` the record is counted as dropped. */
  enqueue(record: AttemptRecord): void {
    try {
      if (this.#closed) {
        this.#dropped++;
        if (!this.#lateLogged) {
          this.#lateLogged = true;
          this.#log.warn(
            { requestId: record.requestId },
            'attempt record arrived after the log writer closed; dropped',
          );
        }
        return;
      }
      this.#queue.push(record);
      const excess = this.#depth() - this.#maxQueue;
      if (excess > 0) this.#dropOldest(excess, 'queue overflow');
      if (this.#started && this.#queued() >= this.#batchRows) this.#soon();
    } catch {
      // Logging must never break the request that reports it.
    }
  }

  /** Starts the periodic background flush. */
  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    this.#interval = setInterval(() => this.#kick(), this.#intervalMs);
    this.#interval.unref();
    if (this.#queued() > 0) this.#soon();
  }

  /**
   * Writes everything queued now, without waiting for the backoff of an earlier failure. Resolves
   * when done or when a write failed (the rows then stay queued; see `stats()`); never rejects.
   */
  async flush(): Promise<void> {
    if (this.#running) await this.#running;
    if (this.#queued() === 0 || this.#closed) return;
    this.#cancelRetry();
    await this.#run();
  }

  /**
   * Stops the background flush and writes what is still queued, retrying failed writes until
   * `timeoutMs`; rows still unwritten then are counted as dropped and logged. Idempotent.
   */
  close(timeoutMs: number = this.#closeTimeoutMs): Promise<void> {
    this.#closing ??= this.#close(timeoutMs);
    return this.#closing;
  }

  /** Current counters. */
  stats(): LogWriterStats {
    return {
      depth: this.#depth(),
      written: this.#written,
      dropped: this.#dropped,
      failedWrites: this.#failedWrites,
      degraded: this.#degraded,
      failing: this.#failing,
      ...(this.#lastError !== undefined ? { lastError: this.#lastError } : {}),
      ...(this.#lastWriteAt !== undefined ? { lastWriteAt: this.#lastWriteAt } : {}),
    };
  }

  async #close(timeoutMs: number): Promise<void> {
    const deadline = this.#clock() + timeoutMs;
    this.#closed = true;
    clearInterval(this.#interval);
    this.#cancelRetry();
    if (this.#immediate) clearImmediate(this.#immediate);
    while (this.#queued() > 0 || this.#running) {
      if (this.#running) await this.#running;
      if (this.#queued() === 0) break;
      await this.#run();
      const left = deadline - this.#clock();
      if (this.#queued() === 0 || left <= 0) break;
      // A failed write: wait out the backoff (bounded by the deadline) and try again. This timer
      // is ref'd on purpose: at shutdown it may be all that keeps the process alive until we finish.
      if (this.#failing) await delay(Math.min(this.#backoffMs, left));
    }
    const left = this.#queued();
    if (left > 0) {
      this.#head += left;
      this.#compact(true);
      this.#dropped += left;
      this.#log.warn(
        { dropped: left, cause: this.#lastError, timeoutMs },
        'attempt log writer closed with unwritten rows; they are dropped',
      );
    }
  }

  #queued(): number {
    return this.#queue.length - this.#head;
  }

  #depth(): number {
    return this.#queued() + this.#inflight;
  }

  /** Drops up to `n` of the oldest queued rows and records the incident (logged once). */
  #dropOldest(n: number, why: string): void {
    const k = Math.min(n, this.#queued());
    if (k <= 0) return;
    this.#head += k;
    this.#compact(false);
    this.#dropped += k;
    this.#droppedInIncident += k;
    if (!this.#degraded) {
      this.#degraded = true;
      this.#log.warn(
        {
          cause: this.#failing ? this.#lastError : why,
          maxQueue: this.#maxQueue,
          failedWrites: this.#failedWrites,
        },
        'attempt log queue full: dropping the oldest rows until writes catch up',
      );
    }
  }

  #compact(force: boolean): void {
    if (force || (this.#head >= COMPACT_AT && this.#head * 2 >= this.#queue.length)) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }

  #inBackoff(): boolean {
    return this.#retry !== undefined;
  }

  #cancelRetry(): void {
    if (this.#retry) clearTimeout(this.#retry);
    this.#retry = undefined;
  }

  /** Schedules a flush on the next turn of the event loop (coalesced). */
  #soon(): void {
    if (this.#immediate || this.#closed || this.#inBackoff()) return;
    this.#immediate = setImmediate(() => {
      this.#immediate = undefined;
      this.#kick();
    });
  }

  /** Starts a background flush unless one is running, we are backing off, or closed. */
  #kick(): void {
    if (this.#closed || this.#running || this.#inBackoff() || this.#queued() === 0) return;
    void this.#run();
  }

  #run(): Promise<void> {
    this.#running ??= this.#drain(this.#queued()).finally(() => {
      this.#running = undefined;
      if (!this.#closed && this.#queued() >= this.#batchRows) this.#soon();
    });
    return this.#running;
  }

  /** Writes up to `budget` rows (those queued when it started), one batch at a time. */
  async #drain(budget: number): Promise<void> {
    while (budget > 0 && this.#queued() > 0) {
      const n = Math.min(this.#batchRows, this.#queued(), budget);
      const rows = this.#queue.slice(this.#head, this.#head + n);
      this.#head += n;
      this.#compact(false);
      this.#inflight = n;
      try {
        await this.#write(rows);
      } catch (err) {
        this.#inflight = 0;
        // Put the rows back in front, then shed the oldest if the queue grew meanwhile.
        this.#queue = rows.concat(this.#queue.slice(this.#head));
        this.#head = 0;
        this.#failed(err);
        // A busy failure leaves the connection unable to commit until GC (see isBusyError).
        if (isBusyError(err)) await this.#db.resetConnections?.().catch(() => false);
        const excess = this.#depth() - this.#maxQueue;
        if (excess > 0) this.#dropOldest(excess, 'queue overflow');
        return;
      }
      this.#inflight = 0;
      this.#succeeded(rows);
      budget -= n;
      // A local client's write ran synchronously; let timers and sockets run before the next one.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /** One flush: its values computed once, then posted as they are or run as statements. */
  #write(rows: readonly AttemptRecord[]): Promise<unknown> {
    const batch: AttemptBatch = {
      values: attemptValues(rows),
      rowsPerStatement: this.#rowsPerStatement,
      rollups: this.#rollups,
    };
    if (this.#db.writeAttempts) return this.#db.writeAttempts(batch);
    const stmts = attemptStatements(batch, {
      onRollupError: (err) => {
        if (this.#rollupFailed) return;
        this.#rollupFailed = true;
        this.#log.error({ err }, 'attempt log rollups threw; rows written without them (logged once)');
      },
    });
    return this.#db.client.batch(stmts, 'write');
  }

  #failed(err: unknown): void {
    this.#failedWrites++;
    const e = err as { code?: unknown; message?: unknown };
    const code = typeof e?.code === 'string' ? e.code : undefined;
    const message = typeof e?.message === 'string' ? e.message : String(err);
    this.#lastError = code && !message.startsWith(code) ? `${code}: ${message}` : message;
    this.#backoffMs = this.#backoffMs
      ? Math.min(this.#retryMaxMs, this.#backoffMs * 2)
      : Math.min(this.#retryMaxMs, this.#retryMinMs);
    if (!this.#failing) {
      this.#failing = true;
      // Not yet a loss: rows stay queued. The warn comes only if the queue overflows.
      this.#log.info(
        { cause: this.#lastError, depth: this.#depth() },
        'attempt log write failed; rows stay queued and are retried',
      );
    }
    if (!this.#closed) {
      this.#cancelRetry();
      this.#retry = setTimeout(() => {
        this.#retry = undefined;
        this.#kick();
      }, this.#backoffMs);
      this.#retry.unref();
    }
  }

  #succeeded(rows: readonly AttemptRecord[]): void {
    this.#written += rows.length;
    this.#lastWriteAt = this.#clock();
    this.#backoffMs = 0;
    const wasFailing = this.#failing;
    this.#failing = false;
    // Recovered when writes work and the backlog is under control; clearing `degraded` on the
    // first success under sustained overload would flap the warning at every flush.
    if (this.#degraded && this.#depth() <= this.#maxQueue / 2) {
      this.#degraded = false;
      this.#log.info(
        { dropped: this.#droppedInIncident, depth: this.#depth(), failedWrites: this.#failedWrites },
        'attempt log writes recovered',
      );
      this.#droppedInIncident = 0;
    } else if (wasFailing && !this.#degraded) {
      this.#log.info({ depth: this.#depth(), dropped: 0 }, 'attempt log writes recovered');
    }
    if (this.#onBatch) {
      try {
        this.#onBatch(rows);
      } catch (err) {
        if (!this.#hookFailed) {
          this.#hookFailed = true;
          this.#log.error({ err }, 'attempt log onBatch hook threw (logged once)');
        }
      }
    }
  }
}
