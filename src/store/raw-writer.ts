/**
 * A raw `libsql` connection (the native package `@libsql/client` wraps) that runs write batches
 * with cached prepared statements: the write thread's path for the attempt log (write-thread-worker.ts).
 *
 * Why not `client.batch`: the client prepares every statement of every batch again (and probes it
 * with `raw(true)`, which throws for statements that return nothing). For the attempt log, whose
 * statements repeat flush after flush, that was a third of the write thread's CPU. Measured
 * (bench/log-write.ts): see docs/stack-notes.md.
 *
 * A batch runs inside `BEGIN IMMEDIATE … COMMIT`. On ANY error the transaction is rolled back and
 * the connection is closed with its cached statements: the native binding does not reset a
 * statement whose step failed, and such a statement keeps every later COMMIT on that connection
 * failing (see `isBusyError`). The next batch reopens it — unless the file was removed or replaced
 * since start (its `dev:ino` changed), which fails the batch with `CCL_DB_REPLACED` (logged once),
 * as `resetConnections` refuses to switch databases behind the daemon's back.
 *
 * Per-connection statements (`PRAGMA query_only=1` in tests) are remembered and re-applied on
 * every reopen, after the connection PRAGMAs of db.ts.
 */
import path from 'node:path';
import type { InStatement, InValue } from '@libsql/client';
import Database from 'libsql';
import { codedError } from '../errors.js';
import { CONNECTION_PRAGMAS, fileIdentity, type StoreLog, silentLog } from './db.js';

/** Options of `RawWriter`. */
export interface RawWriterOptions {
  /** SQLite busy timeout of the connection. */
  readonly busyTimeoutMs: number;
  /** Most prepared statements kept; the cache is emptied when it would grow past this (default 256). */
  readonly maxStatements?: number;
  readonly log?: StoreLog;
}

/** The `x` of `PRAGMA x=…` (lower case), else undefined. */
function pragmaName(sql: string): string | undefined {
  return /^\s*pragma\s+([\w.]+)\s*=/i.exec(sql)?.[1]?.toLowerCase();
}

/**
 * Adds `sql` to an ordered list of per-connection statements: it replaces the same text or a
 * `PRAGMA` of the same name given earlier (and moves to the end), so the list stays small.
 */
export function rememberPerConnection(list: string[], sql: string): void {
  const name = pragmaName(sql);
  const i = list.findIndex((s) => s === sql || (name !== undefined && pragmaName(s) === name));
  if (i >= 0) list.splice(i, 1);
  list.push(sql);
}

/** See the module comment. */
export class RawWriter {
  readonly #file: string;
  readonly #busyTimeoutMs: number;
  readonly #maxStatements: number;
  readonly #log: StoreLog;
  readonly #identity: string | undefined;
  readonly #cache = new Map<string, Database.Statement>();
  /** Per-connection statements, in the order given (a later `PRAGMA x=` replaces an earlier one). */
  readonly #perConnection: string[] = [];
  #conn: Database.Database | undefined;
  #refused = false;
  #closed = false;
  #opens = 0;

  /** `file` is a path (made absolute here) of a database that exists and is migrated. */
  constructor(file: string, opts: RawWriterOptions) {
    this.#file = path.resolve(file);
    this.#busyTimeoutMs = opts.busyTimeoutMs;
    this.#maxStatements = Math.max(1, opts.maxStatements ?? 256);
    this.#log = opts.log ?? silentLog;
    this.#identity = fileIdentity(this.#file);
    if (this.#identity === undefined) throw new Error(`no database file at ${this.#file}`);
  }

  /** Prepared statements cached now (bounded by `maxStatements`). */
  get cachedStatements(): number {
    return this.#cache.size;
  }

  /** Times a connection was opened (the first one included). */
  get opens(): number {
    return this.#opens;
  }

  /** Opens the connection now rather than at the first batch (fails as the first batch would). */
  open(): void {
    this.#connection();
  }

  /** Runs `stmts` in one transaction; throws the SQLite error (its `code` kept) and then wrote nothing. */
  run(stmts: readonly InStatement[]): void {
    const conn = this.#connection();
    try {
      conn.exec('BEGIN IMMEDIATE');
      for (const s of stmts) {
        const sql = typeof s === 'string' ? s : s.sql;
        const args = typeof s === 'string' ? [] : s.args;
        if (args !== undefined && !Array.isArray(args))
          throw new TypeError('the raw writer takes positional arguments only');
        this.#prepared(conn, sql).run((args ?? []) as InValue[]);
      }
      conn.exec('COMMIT');
    } catch (err) {
      try {
        conn.exec('ROLLBACK');
      } catch {
        // No transaction left to roll back (BEGIN failed, or SQLite rolled back already).
      }
      this.#drop();
      throw err;
    }
  }

  /**
   * Runs `sql` (a per-connection PRAGMA) on the connection if it is open, and remembers it for every
   * reopen. A failing statement is not remembered.
   */
  everyConnection(sql: string): void {
    if (this.#conn) this.#conn.exec(sql);
    rememberPerConnection(this.#perConnection, sql);
  }

  /** Closes the connection; later batches fail. Idempotent. */
  close(): void {
    this.#closed = true;
    this.#drop();
  }

  #connection(): Database.Database {
    if (this.#conn) return this.#conn;
    if (this.#closed) throw codedError('CCL_CLOSED', 'the attempt-log write connection is closed');
    if (fileIdentity(this.#file) !== this.#identity) {
      if (!this.#refused) {
        this.#refused = true;
        this.#log.error(
          { file: this.#file },
          'database file was removed or replaced; not reconnecting to it',
        );
      }
      throw codedError(
        'CCL_DB_REPLACED',
        'the database file was removed or replaced since start; the attempt log is not written to it',
      );
    }
    const conn = new Database(this.#file, { timeout: this.#busyTimeoutMs });
    try {
      for (const sql of CONNECTION_PRAGMAS) conn.exec(sql);
      for (const sql of this.#perConnection) conn.exec(sql);
    } catch (err) {
      conn.close();
      throw err;
    }
    this.#opens++;
    this.#conn = conn;
    return conn;
  }

  #prepared(conn: Database.Database, sql: string): Database.Statement {
    let stmt = this.#cache.get(sql);
    if (stmt === undefined) {
      stmt = conn.prepare(sql);
      // Distinct texts are few (an INSERT per row count, upserts per chunk size and latency-bin
      // set), but the bin sets vary; emptying the whole cache now and then is cheap and bounded.
      if (this.#cache.size >= this.#maxStatements) this.#cache.clear();
      this.#cache.set(sql, stmt);
    }
    return stmt;
  }

  /** Forgets the connection and its statements (closing it); the next batch reopens. */
  #drop(): void {
    this.#cache.clear();
    const conn = this.#conn;
    this.#conn = undefined;
    try {
      conn?.close();
    } catch {
      // Closing is best effort: the connection is unusable either way.
    }
  }
}
