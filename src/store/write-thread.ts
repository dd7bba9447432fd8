/**
 * The attempt log's write thread: a `worker_thread` owning its own connection on a local database
 * file, through which the `LogWriter` writes its flushes: `writeAttempts` posts a flush's column
 * values (attempt-batch.ts) and resolves when the thread has built the INSERTs and rollup upserts
 * and committed them; `client.batch` posts ready statements.
 *
 * Why: the local `file:` client runs SQLite synchronously under its async API (db.ts). On the
 * main thread every flush blocks the event loop for as long as it runs (the rollup upserts cost
 * ≈28 ms p99 at 5 000 rows/s), and a flush against a database another process has locked blocks
 * it for the whole busy timeout, once per retry — measured: p99 request latency 1 s while the
 * database was locked for 10 s. In the thread, both only cost that thread time, and so does
 * building the statements: the main thread only computes the values and clones them once.
 *
 * The thread runs batches on a raw `libsql` connection with cached prepared statements rather than
 * through `@libsql/client`, which prepares every statement of every batch again (raw-writer.ts,
 * docs/stack-notes.md).
 *
 * A thread that dies is replaced at the next batch, with the per-connection statements given so
 * far; the batches it held fail and are retried by the writer like any failed write.
 */
import { Worker } from 'node:worker_threads';
import type { InStatement } from '@libsql/client';
import { codedError } from '../errors.js';
import type { AttemptBatch } from './attempt-batch.js';
import { DEFAULT_BUSY_TIMEOUT_MS, type StoreLog, silentLog } from './db.js';
import { rememberPerConnection } from './raw-writer.js';
import type {
  WireError,
  WriteThreadData,
  WriteThreadMessage,
  WriteThreadRequest,
} from './write-thread-worker.js';

/** Options of `startWriteThread`. */
export interface WriteThreadOptions {
  /**
   * Busy timeout of the thread's connections. Waiting there stalls no request, so it can be as
   * long as another process's write may take (default `DEFAULT_BUSY_TIMEOUT_MS`).
   */
  readonly busyTimeoutMs?: number;
  readonly log?: StoreLog;
  /** Longest wait for the thread to open the database (default 10 s). */
  readonly startTimeoutMs?: number;
}

/** A running write thread; what `LogWriter` needs of a database, plus per-connection statements. */
export interface WriteThread {
  /** Runs one write batch in the thread; rejects with the SQLite error (its `code` kept). */
  readonly client: { batch(stmts: InStatement[], mode: 'write'): Promise<void> };
  /** Builds and runs one flush of the attempt log in the thread (see `WriterDb.writeAttempts`). */
  writeAttempts(batch: AttemptBatch): Promise<void>;
  readonly log: StoreLog;
  /**
   * Runs one statement (a per-connection PRAGMA) on the thread's connection, and again on every
   * connection it opens later (a later `PRAGMA x=…` replaces an earlier one).
   */
  onEveryConnection(sql: string): Promise<void>;
  /** Closes the thread's database and stops the thread. Idempotent. */
  close(): Promise<void>;
}

const WORKER_URL = new URL('./write-thread-worker.js', import.meta.url);

/** Distributes the requests without an id over the union (TypeScript's Omit does not). */
type Request = WriteThreadRequest extends infer R ? (R extends unknown ? Omit<R, 'id'> : never) : never;

/** An Error carrying the wire error's code, so `isBusyError` and the writer's stats see it. */
function fromWire(e: WireError): Error {
  return Object.assign(new Error(e.message), e.code !== undefined ? { code: e.code } : {});
}

/** Starts a write thread on the local database at `url` (already migrated) and waits until it has opened it. */
export async function startWriteThread(url: string, opts: WriteThreadOptions = {}): Promise<WriteThread> {
  const thread = new ThreadHandle(url, opts);
  await thread.ready();
  return thread;
}

interface Pending {
  resolve(): void;
  reject(err: Error): void;
}

class ThreadHandle implements WriteThread {
  readonly log: StoreLog;
  readonly client = { batch: (stmts: InStatement[], _mode: 'write') => this.#send({ op: 'batch', stmts }) };
  readonly writeAttempts = (batch: AttemptBatch): Promise<void> => this.#send({ op: 'attempts', batch });
  readonly #url: string;
  readonly #busyTimeoutMs: number;
  /** What `onEveryConnection` was given, for a replacement thread. */
  readonly #perConnection: string[] = [];
  readonly #startTimeoutMs: number;
  readonly #pending = new Map<number, Pending>();
  #worker: Promise<Worker> | undefined;
  #seq = 0;
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(url: string, opts: WriteThreadOptions) {
    this.log = opts.log ?? silentLog;
    this.#url = url;
    this.#busyTimeoutMs = opts.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
    this.#startTimeoutMs = opts.startTimeoutMs ?? 10_000;
  }

  async ready(): Promise<void> {
    await this.#spawned();
  }

  async onEveryConnection(sql: string): Promise<void> {
    await this.#send({ op: 'everyConnection', sql });
    rememberPerConnection(this.#perConnection, sql);
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      const started = this.#worker;
      if (!started) return;
      const worker = await started.catch(() => undefined);
      if (!worker) return;
      await this.#post(worker, { op: 'close' }).catch(() => {});
      await worker.terminate();
    })();
    return this.#closing;
  }

  /** The thread, started (or restarted after it died) on first use. */
  #spawned(): Promise<Worker> {
    this.#worker ??= this.#spawn().catch((err: unknown) => {
      this.#worker = undefined;
      throw err;
    });
    return this.#worker;
  }

  #spawn(): Promise<Worker> {
    return new Promise<Worker>((resolve, reject) => {
      // Ref'd while it starts and while a reply is due (`#post`): an awaited start or flush must
      // keep the process alive. Idle, it must not.
      const data: WriteThreadData = {
        url: this.#url,
        busyTimeoutMs: this.#busyTimeoutMs,
        perConnection: this.#perConnection,
      };
      const worker = new Worker(WORKER_URL, { workerData: data });
      let opened = false;
      const timer = setTimeout(() => {
        reject(
          new Error(
            `the attempt-log write thread did not open the database within ${this.#startTimeoutMs} ms`,
          ),
        );
        void worker.terminate();
      }, this.#startTimeoutMs);
      worker.on('message', (m: WriteThreadMessage) => {
        if ('id' in m) {
          const p = this.#pending.get(m.id);
          if (!p) return;
          this.#pending.delete(m.id);
          if (this.#pending.size === 0) worker.unref();
          if (m.ok) p.resolve();
          else p.reject(fromWire(m.error));
        } else if (m.kind === 'ready') {
          opened = true;
          clearTimeout(timer);
          if (this.#pending.size === 0) worker.unref();
          resolve(worker);
        } else if (m.kind === 'failed') {
          clearTimeout(timer);
          reject(fromWire(m.error));
          void worker.terminate();
        } else {
          this.log[m.level](m.obj, m.msg);
        }
      });
      worker.on('error', (err) => {
        this.log.error({ err }, 'the attempt-log write thread failed; it is restarted at the next write');
      });
      worker.once('exit', (code) => {
        clearTimeout(timer);
        if (!opened) reject(new Error(`the attempt-log write thread exited (${code}) while starting`));
        // Whatever it still held fails; the writer keeps those rows queued and retries.
        const gone = codedError('CCL_WRITE_THREAD_EXITED', `the attempt-log write thread exited (${code})`);
        for (const p of this.#pending.values()) p.reject(gone);
        this.#pending.clear();
        if (opened) this.#worker = undefined;
      });
    });
  }

  async #send(req: Request): Promise<void> {
    if (this.#closed) throw codedError('CCL_CLOSED', 'the attempt-log write thread is closed');
    await this.#post(await this.#spawned(), req);
  }

  #post(worker: Worker, req: Request): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      // A thread that stopped running drops messages; its exit handler already failed the rest.
      if (worker.threadId === -1) {
        reject(codedError('CCL_WRITE_THREAD_EXITED', 'the attempt-log write thread exited'));
        return;
      }
      const id = ++this.#seq;
      this.#pending.set(id, { resolve, reject });
      // A reply is due: keep the process alive for it (a flush at shutdown waits on it).
      if (this.#pending.size === 1) worker.ref();
      worker.postMessage({ ...req, id } as WriteThreadRequest);
    });
  }
}
