/**
 * The entry of the attempt-log write thread (`write-thread.ts` starts it): owns one raw `libsql`
 * connection on the database file (raw-writer.ts) and runs the batches posted to it, so neither
 * building the statements, nor running them, nor a busy wait on another process's lock ever costs
 * the daemon's event loop anything.
 *
 * An `attempts` request carries only the flush's column values (attempt-batch.ts); the statements
 * (INSERT chunks, rollup upserts) are built here and run with prepared statements cached across
 * batches. A `batch` request carries ready statements (tests, odd writes); both run in one
 * transaction. The main thread migrated the file already; this thread only writes.
 *
 * Protocol (structured-clone messages, one reply per request, in order):
 *   in:  `{ id, op: 'attempts', batch }` | `{ id, op: 'batch', stmts }` |
 *        `{ id, op: 'everyConnection', sql }` | `{ id, op: 'close' }`
 *   out: `{ id, ok: true }` | `{ id, ok: false, error: { code?, message } }`,
 *        `{ kind: 'ready' }` | `{ kind: 'failed', error }` once at start, `{ kind: 'log', level, obj, msg }`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { InStatement } from '@libsql/client';
import { type AttemptBatch, attemptStatements } from './attempt-batch.js';
import { filePathOf, type StoreLog } from './db.js';
import { RawWriter } from './raw-writer.js';

/** What the starting side passes as `workerData`. */
export interface WriteThreadData {
  readonly url: string;
  readonly busyTimeoutMs: number;
  /** Per-connection statements given to an earlier thread (`everyConnection`), in order. */
  readonly perConnection: readonly string[];
}

/** A request to the write thread. */
export type WriteThreadRequest =
  | { readonly id: number; readonly op: 'attempts'; readonly batch: AttemptBatch }
  | { readonly id: number; readonly op: 'batch'; readonly stmts: InStatement[] }
  | { readonly id: number; readonly op: 'everyConnection'; readonly sql: string }
  | { readonly id: number; readonly op: 'close' };

/** An error as it crosses the thread boundary: the code is what `isBusyError` and the stats read. */
export interface WireError {
  readonly code?: string;
  readonly message: string;
}

/** A message from the write thread. */
export type WriteThreadMessage =
  | { readonly id: number; readonly ok: true }
  | { readonly id: number; readonly ok: false; readonly error: WireError }
  | { readonly kind: 'ready' }
  | { readonly kind: 'failed'; readonly error: WireError }
  | { readonly kind: 'log'; readonly level: keyof StoreLog; readonly obj: object; readonly msg?: string };

/** `err` reduced to what crosses the boundary. */
function toWire(err: unknown): WireError {
  const e = err as { code?: unknown; message?: unknown } | null;
  return {
    ...(typeof e?.code === 'string' ? { code: e.code } : {}),
    message: typeof e?.message === 'string' ? e.message : String(err),
  };
}

const port = parentPort;
if (port) {
  const post = (m: WriteThreadMessage) => port.postMessage(m);
  // Store code logs rarely (a file that did not switch to WAL, a replaced file); the daemon's
  // logger lives on the main thread, so lines travel there. Objects are reduced to plain data.
  const forward =
    (level: keyof StoreLog) =>
    (obj: object, msg?: string): void =>
      post({ kind: 'log', level, obj: JSON.parse(JSON.stringify(obj)) as object, msg });
  const log: StoreLog = {
    debug: forward('debug'),
    info: forward('info'),
    warn: forward('warn'),
    error: forward('error'),
  };
  const data = workerData as WriteThreadData;
  let raw: RawWriter | undefined;
  let rollupFailed = false;
  const onRollupError = (err: unknown) => {
    if (rollupFailed) return;
    rollupFailed = true;
    log.error({ err: toWire(err) }, 'attempt log rollups threw; rows written without them (logged once)');
  };
  const handle = (req: WriteThreadRequest): void => {
    try {
      if (!raw) throw new Error('the write thread has no open database');
      if (req.op === 'attempts') raw.run(attemptStatements(req.batch, { onRollupError }));
      else if (req.op === 'batch') raw.run(req.stmts);
      else if (req.op === 'everyConnection') raw.everyConnection(req.sql);
      else {
        raw.close();
        raw = undefined;
      }
      post({ id: req.id, ok: true });
    } catch (err) {
      post({ id: req.id, ok: false, error: toWire(err) });
    }
  };
  // Synchronous, one message at a time: replies stay in order.
  port.on('message', handle);
  try {
    raw = new RawWriter(filePathOf(data.url), { busyTimeoutMs: data.busyTimeoutMs, log });
    for (const sql of data.perConnection) raw.everyConnection(sql);
    raw.open();
    post({ kind: 'ready' });
  } catch (err) {
    post({ kind: 'failed', error: toWire(err) });
  }
}
