/**
 * The runtime-state database: one libSQL client opened from a `server.database` URL, tuned for a
 * single writer process (WAL, busy timeout) and migrated on open.
 *
 * The local `file:` client runs SQLite synchronously behind its async API (docs/stack-notes.md), so
 * every statement blocks the event loop for as long as it runs, and a busy wait blocks it for up to
 * `busyTimeoutMs`. Callers on the request path must go through the batched `LogWriter`.
 */
import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { type Client, createClient } from '@libsql/client';
import { maskUrl } from '../config/url-mask.js';
import { migrate } from './migrate.js';

/** The logging surface the store needs; a pino logger fits it. */
export interface StoreLog {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** A logger that discards everything, for callers that pass none. */
export const silentLog: StoreLog = { debug() {}, info() {}, warn() {}, error() {} };

/** Where the data lives: a local SQLite file, a libSQL server (sqld/Turso), or process memory. */
export type DatabaseKind = 'file' | 'remote' | 'memory';

/** Options of `openDatabase`. */
export interface OpenOptions {
  /** Token for `libsql://`/`https://` servers; ignored for local files. */
  readonly authToken?: string;
  /**
   * SQLite busy timeout of every pooled connection: how long a statement waits for another
   * process's lock before failing with SQLITE_BUSY. The wait is synchronous (it stalls the event
   * loop), so keep it short; the log writer retries on its own schedule.
   */
  readonly busyTimeoutMs?: number;
  readonly log?: StoreLog;
  /** Apply pending migrations (default true). */
  readonly migrate?: boolean;
}

/** An open runtime-state database. */
export interface Database {
  readonly client: Client;
  /** The URL as given, with an `authToken` query parameter redacted: safe to log and show. */
  readonly url: string;
  readonly kind: DatabaseKind;
  readonly log: StoreLog;
  /** Migration versions applied by this open (empty when the schema was current). */
  readonly appliedMigrations: readonly number[];
  /**
   * Runs one statement (a per-connection PRAGMA) on every pooled connection of a local client.
   * `execute()` alone reaches only whichever connection the pool hands out.
   */
  onEveryConnection(sql: string): Promise<void>;
  /**
   * Replaces every connection of a local file client (then re-applies the per-connection
   * PRAGMAs); see `isBusyError` for why. Returns false, doing nothing, for memory and remote
   * databases and when the file was removed or replaced since open. Breaks any open
   * `client.transaction()`, which is one more reason the store never holds one.
   */
  resetConnections(): Promise<boolean>;
  /** Runs `op`; when it fails busy, replaces the connections before rethrowing. */
  guard<T>(op: () => Promise<T>): Promise<T>;
  /** True when a trivial query succeeds within `timeoutMs`. Never throws. */
  ping(timeoutMs?: number): Promise<boolean>;
  /** Closes the client; idempotent. Queued writers must be closed first. */
  close(): void;
}

/** Default busy timeout: long enough for another process's short write, short enough not to freeze the proxy. */
export const DEFAULT_BUSY_TIMEOUT_MS = 1000;

/**
 * Connections in a local client's pool. The client borrows one per call and SQLite work is
 * synchronous, so more than one is only ever used across an `await` gap; we pre-open all of them
 * so that per-connection PRAGMAs reach each one (the pool only opens new ones below this limit).
 */
const FILE_POOL_SIZE = 4;

/** Per-connection settings for local files (journal_mode is stored in the file, these are not). */
export const CONNECTION_PRAGMAS: readonly string[] = ['PRAGMA synchronous=NORMAL', 'PRAGMA foreign_keys=ON'];

/** The kind of database a libSQL URL points at. */
export function databaseKind(url: string): DatabaseKind {
  const u = url.trim();
  if (u === ':memory:' || /^file::memory:/i.test(u)) return 'memory';
  if (/^file:/i.test(u)) return 'file';
  return 'remote';
}

/**
 * The filesystem path of a `file:` URL, as libSQL resolves it: `file:rel/x.db` (relative to the
 * working directory), `file:/abs/x.db` or `file:///abs/x.db`, percent-decoded.
 */
export function filePathOf(url: string): string {
  const m = /^file:(?:\/\/[^/?#]*)?([^?#]*)/i.exec(url.trim());
  if (!m?.[1]) throw new Error(`not a file: URL with a path: ${url}`);
  return decodeURIComponent(m[1]);
}

/**
 * True for the errors after which a local connection must be replaced: SQLITE_BUSY / SQLITE_LOCKED
 * (including "cannot commit transaction - SQL statements in progress").
 *
 * Why: the native libsql binding does not reset a statement whose step failed busy, so the failed
 * statement stays "in progress" until the garbage collector finalizes it, and until then every
 * COMMIT on that connection fails with SQLITE_BUSY although the lock is free
 * (tursodatabase/libsql-client-ts#352, fix pending in tursodatabase/libsql-js#237). Measured here:
 * ≈0.5 s of failing commits after the other process released its lock.
 */
export function isBusyError(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : '';
  return (
    /^SQLITE_(BUSY|LOCKED)/.test(code) || (typeof e?.message === 'string' && /SQLITE_BUSY/.test(e.message))
  );
}

/**
 * Opens (creating if needed) and migrates the database at `url`. For `file:` URLs the parent folder
 * is created and the file is switched to WAL with `synchronous=NORMAL`.
 */
export async function openDatabase(url: string, opts: OpenOptions = {}): Promise<Database> {
  const log = opts.log ?? silentLog;
  const kind = databaseKind(url);
  const busyTimeoutMs = opts.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
  // The client gets an absolute path: `resetConnections` reopens it later, and a relative path
  // would then follow a changed working directory to another file.
  const file = kind === 'file' ? path.resolve(filePathOf(url)) : undefined;
  if (file) mkdirSync(path.dirname(file), { recursive: true });

  const client =
    kind === 'remote'
      ? createClient({ url, ...(opts.authToken !== undefined ? { authToken: opts.authToken } : {}) })
      : // `timeout` becomes sqlite3_busy_timeout on every connection the pool opens.
        createClient({
          url: file ? pathToFileURL(file).href : url,
          timeout: busyTimeoutMs,
          concurrency: FILE_POOL_SIZE,
        });
  const identity = file ? fileIdentity(file) : undefined;

  let closed = false;
  let resetting: Promise<boolean> | undefined;
  let refusedReset = false;
  const onEveryConnection = async (sql: string) => {
    if (kind === 'remote') {
      await client.execute(sql);
      return;
    }
    // Started in one tick, these calls borrow distinct connections (the pool hands one out
    // synchronously per call), opening new ones up to the pool size.
    const n = kind === 'memory' ? 1 : FILE_POOL_SIZE;
    await Promise.all(Array.from({ length: n }, () => client.execute(sql)));
  };
  const reset = async (): Promise<boolean> => {
    if (closed || !file) return false;
    // Reopening a path whose file was removed or replaced would silently switch databases.
    if (fileIdentity(file) !== identity) {
      if (!refusedReset) {
        refusedReset = true;
        log.error({ file }, 'database file was removed or replaced; not reconnecting to it');
      }
      return false;
    }
    await client.reconnect();
    for (const pragma of CONNECTION_PRAGMAS) await onEveryConnection(pragma);
    return true;
  };
  const db: Database = {
    client,
    url: redactUrl(url),
    kind,
    log,
    appliedMigrations: [],
    onEveryConnection,
    resetConnections() {
      resetting ??= reset().finally(() => {
        resetting = undefined;
      });
      return resetting;
    },
    async guard(op) {
      try {
        return await op();
      } catch (err) {
        if (isBusyError(err)) await db.resetConnections().catch(() => false);
        throw err;
      }
    },
    async ping(timeoutMs = 2000) {
      if (closed) return false;
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
        timer.unref();
      });
      try {
        return await Promise.race([client.execute('SELECT 1').then(() => true), deadline]);
      } catch {
        return false;
      } finally {
        clearTimeout(timer);
      }
    },
    close() {
      if (closed) return;
      closed = true;
      client.close();
    },
  };

  try {
    if (kind === 'file') {
      const mode = await client.execute('PRAGMA journal_mode=WAL');
      const journal = String(mode.rows[0]?.[0] ?? '');
      if (journal.toLowerCase() !== 'wal')
        log.warn({ url: redactUrl(url), journal }, 'database did not switch to WAL mode');
      for (const pragma of CONNECTION_PRAGMAS) await onEveryConnection(pragma);
    } else if (kind === 'memory') {
      await client.execute('PRAGMA foreign_keys=ON');
    }
    const applied = opts.migrate === false ? [] : await migrate(client, { log });
    return Object.assign(db, { appliedMigrations: applied });
  } catch (err) {
    db.close();
    throw err;
  }
}

/** What the rare-write stores (state, sessions) need of a `Database`. */
export type StoreDb = Pick<Database, 'client'> & Partial<Pick<Database, 'guard'>>;

/** Runs `op` through `db.guard` when the database has one (see `Database.guard`). */
export function guarded<T>(db: StoreDb, op: () => Promise<T>): Promise<T> {
  return db.guard ? db.guard(op) : op();
}

/** `url` as logs may show it: userinfo and every query value (`authToken=…`) masked. */
export function redactUrl(url: string): string {
  return maskUrl(url);
}

/**
 * `dev:ino` of a file, or undefined when it does not exist: a connection is only reopened on the
 * file it was opened on, never on one that replaced it.
 */
export function fileIdentity(file: string): string | undefined {
  try {
    const st = statSync(file);
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}
