/**
 * Schema migrations: numbered SQL files in `schema/migrations/` (`001_init.sql`, `002_...sql`),
 * applied in order, each in one write batch together with its `schema_migrations` row, so a
 * migration is either fully applied and recorded or not at all. A landed file is never edited.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Client } from '@libsql/client';
import type { StoreLog } from './db.js';

/** One migration file. */
export interface Migration {
  readonly version: number;
  /** File name without the number and extension: `001_init.sql` → `init`. */
  readonly name: string;
  readonly file: string;
  /** The file's statements, in order. */
  readonly statements: readonly string[];
}

/** Options of `migrate`. */
export interface MigrateOptions {
  readonly log?: StoreLog;
  /** The migrations to apply; default: the package's `schema/migrations/`. */
  readonly migrations?: readonly Migration[];
  /** Recorded as `applied_at`. */
  readonly now?: number;
}

const FILE_RE = /^(\d+)_([\w-]+)\.sql$/;

/**
 * The package's `schema/migrations` folder, found by walking up from this module, so it works from
 * `src/store/` (tsx) and from `dist/src/store/` (compiled) alike.
 */
export function migrationsDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    const candidate = path.join(dir, 'schema', 'migrations');
    if (existsSync(candidate)) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new Error(`schema/migrations not found above ${fileURLToPath(import.meta.url)}`);
}

/**
 * Reads the migration files of `dir`, sorted by version. Throws when versions are not exactly
 * 1, 2, 3, … (a gap or a duplicate means a bad merge, and applying around it would be wrong).
 */
export function loadMigrations(dir: string = migrationsDir()): Migration[] {
  const out: Migration[] = [];
  for (const file of readdirSync(dir)) {
    if (!file.endsWith('.sql')) continue;
    const m = FILE_RE.exec(file);
    if (!m) throw new Error(`migration file name must look like 001_name.sql: ${file}`);
    const statements = splitSql(readFileSync(path.join(dir, file), 'utf8'));
    out.push({ version: Number(m[1]), name: m[2]!, file, statements });
  }
  out.sort((a, b) => a.version - b.version);
  out.forEach((mig, i) => {
    if (mig.version !== i + 1) {
      throw new Error(
        `migrations must be numbered 1..n without gaps or duplicates; found ${mig.file} at #${i + 1}`,
      );
    }
  });
  return out;
}

/**
 * Splits an SQL script into statements at `;`, ignoring semicolons inside quotes, comments and the
 * `BEGIN … END` body of a `CREATE TRIGGER` (where `CASE … END` may nest). Comment-only and empty
 * pieces are dropped.
 */
export function splitSql(sql: string): string[] {
  const out: string[] = [];
  let start = 0;
  // Trigger state: 'none', 'head' (CREATE TRIGGER seen, body not begun), 'body' (inside BEGIN…END).
  let trigger: 'none' | 'head' | 'body' = 'none';
  let depth = 0;
  let i = 0;
  const flush = (end: number) => {
    const text = sql.slice(start, end).trim();
    if (stripComments(text).trim() !== '') out.push(text);
    start = end + 1;
    trigger = 'none';
    depth = 0;
  };
  while (i < sql.length) {
    const c = sql[i]!;
    if (c === '-' && sql[i + 1] === '-') {
      const nl = sql.indexOf('\n', i);
      i = nl < 0 ? sql.length : nl + 1;
    } else if (c === '/' && sql[i + 1] === '*') {
      const endc = sql.indexOf('*/', i + 2);
      i = endc < 0 ? sql.length : endc + 2;
    } else if (c === "'" || c === '"' || c === '`' || c === '[') {
      const close = c === '[' ? ']' : c;
      let j = i + 1;
      // A doubled quote inside a quoted string is an escaped quote, not its end.
      while (j < sql.length && !(sql[j] === close && sql[j + 1] !== close)) j += sql[j] === close ? 2 : 1;
      i = j + 1;
    } else if (/[A-Za-z_]/.test(c)) {
      let j = i;
      while (j < sql.length && /\w/.test(sql[j]!)) j++;
      const word = sql.slice(i, j).toUpperCase();
      if (trigger === 'none' && word === 'TRIGGER') {
        if (/^\s*CREATE\s+(TEMP\s+|TEMPORARY\s+)?$/i.test(stripComments(sql.slice(start, i))))
          trigger = 'head';
      } else if (trigger === 'head' && word === 'BEGIN') {
        trigger = 'body';
        depth = 1;
      } else if (trigger === 'body' && word === 'CASE') {
        depth++;
      } else if (trigger === 'body' && word === 'END') {
        depth--;
      }
      i = j;
    } else if (c === ';') {
      if (trigger === 'none' || (trigger === 'body' && depth <= 0)) flush(i);
      i++;
    } else {
      i++;
    }
  }
  flush(sql.length);
  return out;
}

function stripComments(sql: string): string {
  return sql.replace(/--[^\n]*/g, '').replace(/\/\*[\s\S]*?\*\//g, '');
}

/**
 * Applies every migration the database has not recorded yet, in order, one write batch each, and
 * returns the versions applied. Safe against a second process migrating at the same time: a batch
 * that fails because the other one got there first is recognised and skipped.
 */
export async function migrate(client: Client, opts: MigrateOptions = {}): Promise<number[]> {
  const log = opts.log;
  const migrations = opts.migrations ?? loadMigrations();
  await client.execute(
    'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT, applied_at INTEGER)',
  );
  const done = await appliedVersions(client);
  const known = migrations.length;
  const newest = Math.max(0, ...done);
  if (newest > known) {
    log?.warn({ databaseVersion: newest, known }, 'database schema is newer than this build; continuing');
  }
  const applied: number[] = [];
  for (const mig of migrations) {
    if (done.has(mig.version)) continue;
    const record = {
      sql: 'INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)',
      args: [mig.version, mig.name, opts.now ?? Date.now()],
    };
    try {
      await client.batch([...mig.statements, record], 'write');
    } catch (err) {
      // Another process may have applied it between our read and our write lock.
      if ((await appliedVersions(client)).has(mig.version)) continue;
      throw new Error(`migration ${mig.file} failed: ${(err as Error).message}`, { cause: err });
    }
    applied.push(mig.version);
    log?.info({ version: mig.version, name: mig.name }, 'database migration applied');
  }
  return applied;
}

/** The versions recorded in `schema_migrations`. */
export async function appliedVersions(client: Client): Promise<Set<number>> {
  const rs = await client.execute('SELECT version FROM schema_migrations ORDER BY version');
  return new Set(rs.rows.map((r) => Number(r[0])));
}
