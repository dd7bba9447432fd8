/**
 * Reading the Go ccLoad's SQLite database, read-only and tolerant of its schema versions: which
 * tables and columns exist is asked with `PRAGMA table_info`, and rows come back as plain records
 * for the pure conversion in `ccload-convert.ts` to judge. Nothing here interprets a value.
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { type Client, createClient } from '@libsql/client';
import type { InternalErrorCode } from '../errors.js';

/** One row as the database holds it: column name → value (null for SQL NULL). */
export type RawRow = Readonly<Record<string, unknown>>;

/** Everything the import needs from a ccLoad database. */
export interface CcloadDbRows {
  /** Absolute path of the database file. */
  readonly path: string;
  /** Every table and its columns, in declaration order. */
  readonly tables: Readonly<Record<string, readonly string[]>>;
  /** `channels` rows, ordered by id. */
  readonly channels: readonly RawRow[];
  /** `api_keys` rows (later versions), ordered by channel and key index; empty when absent. */
  readonly apiKeys: readonly RawRow[];
  /** `channel_models` rows (latest versions), ordered by channel; empty when absent. */
  readonly channelModels: readonly RawRow[];
  /** Row counts of the other tables that hold something the import leaves behind. */
  readonly counts: Readonly<Record<string, number>>;
}

/** The database cannot be read as a ccLoad database; the message says why. */
export class CcloadDbError extends Error {
  readonly code: InternalErrorCode = 'CCL_IMPORT_DB';
}

const SQLITE_MAGIC = 'SQLite format 3\0';
/** Tables whose rows are counted for the summary (runtime state and client tokens). */
const COUNTED = ['logs', 'cooldowns', 'key_cooldowns', 'rr', 'auth_tokens', 'channel_model_cooldowns'];

/**
 * The @libsql/client URL that opens `path` read-only. The client accepts no `?mode=ro` of its own,
 * but hands a percent-decoded path to SQLite, which honours a `file:` URI there: so the SQLite URI
 * `file:/x.db?mode=ro` goes in percent-encoded once more. Writes then fail with SQLITE_READONLY.
 */
export function readOnlyUrl(path: string): string {
  const abs = resolve(path);
  // SQLite URI: every byte outside the unreserved set percent-encoded (RFC 3986 via encodeURIComponent).
  const sqliteUri = `file:${abs.split('/').map(encodeURIComponent).join('/')}?mode=ro`;
  return `file:${sqliteUri.replace(/%/g, '%25').replace(/\?/g, '%3F')}`;
}

function checkFile(path: string): void {
  let size: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new CcloadDbError(`${path} is not a file`);
    size = st.size;
  } catch (err) {
    if (err instanceof CcloadDbError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new CcloadDbError(
      code === 'ENOENT' ? `${path}: no such file` : `${path}: cannot read (${code ?? String(err)})`,
    );
  }
  // Checked before opening: SQLite would happily treat an empty or foreign file as a new database.
  const head = Buffer.alloc(16);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, head, 0, 16, 0);
  } finally {
    closeSync(fd);
  }
  if (size < 100 || head.toString('latin1') !== SQLITE_MAGIC) {
    throw new CcloadDbError(`${path} is not an SQLite database`);
  }
}

async function columnsOf(client: Client, table: string): Promise<string[]> {
  const rs = await client.execute(`PRAGMA table_info(${quoteIdent(table)})`);
  return rs.rows.map((r) => String(r['name']));
}

/** `"name"` with embedded quotes doubled, for table names read from sqlite_master. */
function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function plain(rows: readonly Record<string, unknown>[], columns: readonly string[]): RawRow[] {
  return rows.map((r) => {
    const out: Record<string, unknown> = {};
    for (const c of columns) {
      const v = r[c];
      out[c] = v instanceof ArrayBuffer ? null : (v ?? null);
    }
    return out;
  });
}

/** Reads a Go ccLoad database read-only. Throws {@link CcloadDbError} when it cannot. */
export async function readCcloadDb(path: string): Promise<CcloadDbRows> {
  const abs = resolve(path);
  checkFile(abs);
  let client: Client;
  try {
    client = createClient({ url: readOnlyUrl(abs), concurrency: 1, timeout: 5000 });
  } catch (err) {
    throw new CcloadDbError(`${abs}: cannot open read-only: ${(err as Error).message}`);
  }
  try {
    const master = await client.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
    const tables: Record<string, string[]> = {};
    for (const r of master.rows) {
      const name = String(r['name']);
      if (name.startsWith('sqlite_')) continue;
      tables[name] = await columnsOf(client, name);
    }
    const channelCols = tables['channels'];
    if (!channelCols) throw new CcloadDbError(`${abs} has no "channels" table: not a ccLoad database`);
    const order = channelCols.includes('id') ? ' ORDER BY id' : '';
    const channels = plain((await client.execute(`SELECT * FROM channels${order}`)).rows, channelCols);

    let apiKeys: RawRow[] = [];
    const keyCols = tables['api_keys'];
    if (keyCols?.includes('channel_id') && keyCols.includes('api_key')) {
      const by = keyCols.includes('key_index') ? 'channel_id, key_index' : 'channel_id';
      apiKeys = plain((await client.execute(`SELECT * FROM api_keys ORDER BY ${by}`)).rows, keyCols);
    }
    let channelModels: RawRow[] = [];
    const modelCols = tables['channel_models'];
    if (modelCols?.includes('channel_id') && modelCols.includes('model')) {
      const rs = await client.execute('SELECT * FROM channel_models ORDER BY channel_id');
      channelModels = plain(rs.rows, modelCols);
    }
    const counts: Record<string, number> = {};
    for (const t of COUNTED) {
      if (!tables[t]) continue;
      const rs = await client.execute(`SELECT count(*) AS n FROM ${quoteIdent(t)}`);
      counts[t] = Number(rs.rows[0]?.['n'] ?? 0);
    }
    return { path: abs, tables, channels, apiKeys, channelModels, counts };
  } catch (err) {
    if (err instanceof CcloadDbError) throw err;
    throw new CcloadDbError(`${abs}: cannot read: ${(err as Error).message}`);
  } finally {
    client.close();
  }
}
