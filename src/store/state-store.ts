/**
 * Persistence of the proxy's runtime state that must survive a restart: cooldown rows,
 * round-robin pointers, session pins, and the reload history shown by the dashboard. These writes
 * are rare (a cooldown change, a reload) or batched on a timer (pointers, pins), so each is a plain
 * awaited statement or batch, not part of the log batch.
 */
import type { InStatement, ResultSet, Row } from '@libsql/client';
import type { PinRow } from '../proxy/affinity.js';
import type { CooldownRow } from '../proxy/cooldown.js';
import { guarded, type StoreDb } from './db.js';

/** The outcome of one reload. */
export type ReloadResult = 'applied' | 'unchanged' | 'rejected' | 'error';

/** One problem reported by a reload; a `ConfigIssue` fits it. */
export interface ReloadIssue {
  readonly file?: string;
  readonly line?: number;
  readonly col?: number;
  readonly path?: string;
  readonly message: string;
}

/** One reload attempt as recorded for the dashboard. */
export interface ReloadRecord {
  readonly at: number;
  /** What asked for it: `startup`, `file`, `signal`, `api`, `write-back`. */
  readonly source: string;
  readonly result: ReloadResult;
  /** Generation serving after the reload. */
  readonly generation: number | null;
  /** Hash of the file the reload read. */
  readonly hash: string | null;
  readonly durationMs: number | null;
  readonly errors: readonly ReloadIssue[];
}

/** A reload record read back, with its row id. */
export interface StoredReload extends ReloadRecord {
  readonly id: number;
}

/** Reload history rows kept; older ones are pruned by `recordReload`. */
export const RELOADS_KEPT = 500;

/** Scope keys per `DELETE … IN (…)` statement. */
const DELETE_CHUNK = 200;

const RESULTS: readonly ReloadResult[] = ['applied', 'unchanged', 'rejected', 'error'];

function numOrNull(v: unknown): number | null {
  if (v === null || v === undefined) return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

function strOrNull(v: unknown): string | null {
  return v === null || v === undefined ? null : String(v);
}

function rowToCooldown(r: Row): CooldownRow {
  return {
    scopeKey: String(r['scope_key']),
    scope: String(r['scope']),
    channel: String(r['channel']),
    keyIndex: numOrNull(r['key_index']),
    model: strOrNull(r['model']),
    until: Number(r['until']),
    failures: Number(r['failures']),
    reason: strOrNull(r['reason']),
    identity: strOrNull(r['identity']),
    updatedAt: Number(r['updated_at']),
  };
}

function parseErrors(v: unknown): ReloadIssue[] {
  if (typeof v !== 'string' || v === '') return [];
  try {
    const parsed: unknown = JSON.parse(v);
    return Array.isArray(parsed) ? (parsed as ReloadIssue[]) : [];
  } catch {
    return [];
  }
}

function rowToReload(r: Row): StoredReload {
  const result = String(r['result']) as ReloadResult;
  return {
    id: Number(r['id']),
    at: Number(r['at']),
    source: String(r['source'] ?? ''),
    result: RESULTS.includes(result) ? result : 'error',
    generation: numOrNull(r['generation']),
    hash: strOrNull(r['hash']),
    durationMs: numOrNull(r['duration_ms']),
    errors: parseErrors(r['errors']),
  };
}

/** Load/save of cooldowns, round-robin pointers and reload history. */
export class StateStore {
  readonly #db: StoreDb;

  constructor(db: StoreDb) {
    this.#db = db;
  }

  #execute(stmt: InStatement): Promise<ResultSet> {
    return guarded(this.#db, () => this.#db.client.execute(stmt));
  }

  #batch(stmts: InStatement[]): Promise<ResultSet[]> {
    return guarded(this.#db, () => this.#db.client.batch(stmts, 'write'));
  }

  /** Every stored cooldown row, expired ones included (their failure counts still drive backoff). */
  async loadCooldowns(): Promise<CooldownRow[]> {
    const rs = await this.#execute('SELECT * FROM cooldowns ORDER BY scope_key');
    return rs.rows.map(rowToCooldown);
  }

  /** Inserts or replaces one cooldown row. */
  async saveCooldown(row: CooldownRow): Promise<void> {
    await this.#execute({
      sql: `INSERT INTO cooldowns (scope_key, scope, channel, key_index, model, until, failures, reason, identity, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (scope_key) DO UPDATE SET scope = excluded.scope, channel = excluded.channel,
              key_index = excluded.key_index, model = excluded.model, until = excluded.until,
              failures = excluded.failures, reason = excluded.reason, identity = excluded.identity,
              updated_at = excluded.updated_at`,
      args: [
        row.scopeKey,
        row.scope,
        row.channel,
        row.keyIndex,
        row.model,
        Math.round(row.until),
        Math.round(row.failures),
        row.reason,
        row.identity,
        Math.round(row.updatedAt),
      ],
    });
  }

  /** Deletes the given scopes (one write batch); returns how many rows went. */
  async deleteCooldowns(scopeKeys: readonly string[]): Promise<number> {
    if (scopeKeys.length === 0) return 0;
    const stmts: InStatement[] = [];
    for (let i = 0; i < scopeKeys.length; i += DELETE_CHUNK) {
      const chunk = scopeKeys.slice(i, i + DELETE_CHUNK);
      stmts.push({
        sql: `DELETE FROM cooldowns WHERE scope_key IN (${chunk.map(() => '?').join(', ')})`,
        args: chunk,
      });
    }
    const results = await this.#batch(stmts);
    return results.reduce((n, rs) => n + rs.rowsAffected, 0);
  }

  /** Deletes every cooldown row of a channel (the admin "clear cooldowns" action); returns the count. */
  async deleteChannelCooldowns(channel: string): Promise<number> {
    const rs = await this.#execute({
      sql: 'DELETE FROM cooldowns WHERE channel = ?',
      args: [channel],
    });
    return rs.rowsAffected;
  }

  /** The round-robin pointers. */
  async loadRr(): Promise<Map<string, number>> {
    const rs = await this.#execute('SELECT key, value FROM rr');
    return new Map(rs.rows.map((r) => [String(r[0]), Number(r[1])]));
  }

  /** Upserts round-robin pointers in one write batch. */
  async saveRr(entries: Iterable<readonly [string, number]>): Promise<void> {
    const stmts: InStatement[] = [];
    for (const [key, value] of entries) {
      stmts.push({
        sql: 'INSERT INTO rr (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
        args: [key, Math.round(value)],
      });
    }
    if (stmts.length > 0) await this.#batch(stmts);
  }

  /**
   * Stored session pins written at or after `since` (ms; 0: all), with the time they were written.
   * Other instances sharing the database are followed by asking for the rows written since the
   * last look (indexed on `updated_at`).
   */
  async loadPins(since = 0): Promise<(PinRow & { readonly updatedAt: number })[]> {
    const rs = await this.#execute({
      sql: 'SELECT session, channel, key_index, identity, last_used, updated_at FROM session_pins WHERE updated_at >= ?',
      args: [Math.floor(since)],
    });
    return rs.rows.map((r) => ({
      session: String(r['session']),
      channel: String(r['channel']),
      keyIndex: Number(r['key_index']),
      identity: strOrNull(r['identity']) ?? '',
      lastUsed: Number(r['last_used']),
      updatedAt: Number(r['updated_at']),
    }));
  }

  /** Upserts and deletes session pins in one write batch, stamped `updatedAt`. */
  async savePins(upserts: readonly PinRow[], deletes: readonly string[], updatedAt: number): Promise<void> {
    const stmts: InStatement[] = [];
    for (const p of upserts) {
      stmts.push({
        sql: `INSERT INTO session_pins (session, channel, key_index, identity, last_used, updated_at)
              VALUES (?, ?, ?, ?, ?, ?)
              ON CONFLICT (session) DO UPDATE SET channel = excluded.channel, key_index = excluded.key_index,
                identity = excluded.identity, last_used = excluded.last_used, updated_at = excluded.updated_at
              WHERE excluded.last_used >= session_pins.last_used`,
        args: [p.session, p.channel, p.keyIndex, p.identity, Math.round(p.lastUsed), Math.round(updatedAt)],
      });
    }
    for (let i = 0; i < deletes.length; i += DELETE_CHUNK) {
      const chunk = deletes.slice(i, i + DELETE_CHUNK);
      stmts.push({
        sql: `DELETE FROM session_pins WHERE session IN (${chunk.map(() => '?').join(', ')})`,
        args: chunk,
      });
    }
    if (stmts.length > 0) await this.#batch(stmts);
  }

  /** Deletes pins last used at or before `cutoff` (ms): the idle expiry of every instance's pins. */
  async deleteIdlePins(cutoff: number): Promise<number> {
    const rs = await this.#execute({
      sql: 'DELETE FROM session_pins WHERE last_used <= ?',
      args: [Math.floor(cutoff)],
    });
    return rs.rowsAffected;
  }

  /** Records one reload and prunes history beyond `RELOADS_KEPT`; returns the new row id. */
  async recordReload(r: ReloadRecord): Promise<number> {
    const [insert] = await this.#batch([
      {
        sql: `INSERT INTO reloads (at, source, result, generation, hash, duration_ms, errors)
                VALUES (?, ?, ?, ?, ?, ?, ?)`,
        args: [
          Math.round(r.at),
          r.source,
          r.result,
          r.generation,
          r.hash,
          r.durationMs,
          r.errors.length > 0 ? JSON.stringify(r.errors) : null,
        ],
      },
      { sql: 'DELETE FROM reloads WHERE id <= (SELECT max(id) FROM reloads) - ?', args: [RELOADS_KEPT] },
    ]);
    return Number(insert?.lastInsertRowid ?? 0);
  }

  /** The newest `limit` reloads, newest first. */
  async recentReloads(limit: number): Promise<StoredReload[]> {
    const rs = await this.#execute({
      sql: 'SELECT * FROM reloads ORDER BY id DESC LIMIT ?',
      args: [Math.max(0, Math.floor(limit))],
    });
    return rs.rows.map(rowToReload);
  }
}
