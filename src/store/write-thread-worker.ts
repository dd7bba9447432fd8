/**
 * The entry of the attempt-log write thread (`write-thread.ts` starts it): owns its own libSQL
 * client on the database file and runs the write batches posted to it, so neither the statements
 * nor a busy wait on another process's lock ever run on the daemon's event loop.
 *
 * Protocol (structured-clone messages, one reply per request, in order):
 *   in:  `{ id, op: 'batch', stmts }` | `{ id, op: 'everyConnection', sql }` | `{ id, op: 'close' }`
 *   out: `{ id, ok: true }` | `{ id, ok: false, error: { code?, message } }`,
 *        `{ kind: 'ready' }` | `{ kind: 'failed', error }` once at start, `{ kind: 'log', level, obj, msg }`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { InStatement } from '@libsql/client';
import { type Database, isBusyError, openDatabase, type StoreLog } from './db.js';

/** What the starting side passes as `workerData`. */
export interface WriteThreadData {
  readonly url: string;
  readonly busyTimeoutMs: number;
}

/** A request to the write thread. */
export type WriteThreadRequest =
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
  let db: Database | undefined;
  const handle = async (req: WriteThreadRequest): Promise<void> => {
    try {
      if (!db) throw new Error('the write thread has no open database');
      if (req.op === 'batch') {
        try {
          await db.client.batch(req.stmts, 'write');
        } catch (err) {
          // A busy failure leaves the connection unable to commit until GC (see isBusyError).
          if (isBusyError(err)) await db.resetConnections().catch(() => false);
          throw err;
        }
      } else if (req.op === 'everyConnection') {
        await db.onEveryConnection(req.sql);
      } else {
        db.close();
        db = undefined;
      }
      post({ id: req.id, ok: true });
    } catch (err) {
      post({ id: req.id, ok: false, error: toWire(err) });
    }
  };
  // One request at a time: the client is synchronous anyway, and replies must stay in order.
  let chain: Promise<void> = Promise.resolve();
  port.on('message', (req: WriteThreadRequest) => {
    chain = chain.then(() => handle(req));
  });
  // The main thread migrated the file already; this client only writes.
  openDatabase(data.url, { busyTimeoutMs: data.busyTimeoutMs, migrate: false, log }).then(
    (opened) => {
      db = opened;
      post({ kind: 'ready' });
    },
    (err: unknown) => post({ kind: 'failed', error: toWire(err) }),
  );
}
