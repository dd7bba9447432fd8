/**
 * Admin sessions: random ids handed out as the `ccload_session` cookie, stored only as an
 * HMAC-SHA256 of the id keyed with the admin password, so a leaked database (or a backup of it)
 * cannot be replayed as a login, and a changed password — by a hot reload or across a restart —
 * ends every session: the old rows no longer match any cookie. Without a password, sessions opened
 * through the login link (admin/login-link.ts) are keyed with that process's own secret instead,
 * so they end with the process and as soon as a password is configured.
 */
import { createHmac, randomBytes } from 'node:crypto';
import type { InStatement, ResultSet } from '@libsql/client';
import { guarded, type StoreDb } from './db.js';

/** What `getSession` knows about a live session. */
export interface SessionInfo {
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly lastSeen: number;
  /** Who logged in (e.g. remote address and user agent), for the dashboard. */
  readonly client: string | null;
}

/** A new session: `id` goes into the cookie and is not stored anywhere. */
export interface NewSession {
  readonly id: string;
  readonly expiresAt: number;
}

/** `last_seen` is refreshed at most this often, so a polling dashboard does not write on every request. */
export const LAST_SEEN_GRANULARITY_MS = 60_000;

/** Longest id accepted for lookup; a real one is 43 characters. */
const MAX_ID_LENGTH = 128;

function run(db: StoreDb, stmt: InStatement): Promise<ResultSet> {
  return guarded(db, () => db.client.execute(stmt));
}

/**
 * What a session is bound to: the admin password, or — with none configured — the per-start secret
 * of the login link. The two are keyed apart, so no password can match a link session's row.
 */
export type SessionKey = string | { readonly linkSecret: string };

/**
 * The stored form of a session id: hex HMAC-SHA256 of the id, keyed with the admin password or the
 * login link's secret (undefined = neither), so rows made under another key match no cookie.
 */
export function hashSessionId(id: string, key: SessionKey | undefined): string {
  const hmacKey =
    typeof key === 'object' ? `ccload-link-session\0${key.linkSecret}` : `ccload-session\0${key ?? ''}`;
  return createHmac('sha256', hmacKey).update(id, 'utf8').digest('hex');
}

/** Creates a session lasting `ttlMs` from `now`; the id is 32 random bytes, base64url. */
export async function createSession(
  db: StoreDb,
  opts: {
    readonly ttlMs: number;
    readonly client?: string | null;
    readonly now: number;
    /** The admin password (or the login link's secret) the session is bound to. */
    readonly password: SessionKey;
  },
): Promise<NewSession> {
  const id = randomBytes(32).toString('base64url');
  const expiresAt = opts.now + opts.ttlMs;
  await run(db, {
    sql: 'INSERT INTO sessions (id_hash, created_at, expires_at, last_seen, client) VALUES (?, ?, ?, ?, ?)',
    args: [hashSessionId(id, opts.password), opts.now, expiresAt, opts.now, opts.client ?? null],
  });
  return { id, expiresAt };
}

/**
 * The session for `id` if it was made under `password` (the session key), exists and has not
 * expired at `now`; an expired one is deleted. Without a key (no password, no login link) there is
 * no session.
 */
export async function getSession(
  db: StoreDb,
  id: string,
  now: number,
  password: SessionKey | undefined,
): Promise<SessionInfo | null> {
  if (password === undefined || id === '' || id.length > MAX_ID_LENGTH) return null;
  const idHash = hashSessionId(id, password);
  const rs = await run(db, {
    sql: 'SELECT created_at, expires_at, last_seen, client FROM sessions WHERE id_hash = ?',
    args: [idHash],
  });
  const row = rs.rows[0];
  if (!row) return null;
  const expiresAt = Number(row['expires_at']);
  if (expiresAt <= now) {
    await run(db, { sql: 'DELETE FROM sessions WHERE id_hash = ?', args: [idHash] });
    return null;
  }
  let lastSeen = Number(row['last_seen']);
  if (now - lastSeen >= LAST_SEEN_GRANULARITY_MS) {
    await run(db, {
      sql: 'UPDATE sessions SET last_seen = ? WHERE id_hash = ?',
      args: [now, idHash],
    });
    lastSeen = now;
  }
  const client = row['client'];
  return {
    createdAt: Number(row['created_at']),
    expiresAt,
    lastSeen,
    client: client === null || client === undefined ? null : String(client),
  };
}

/** Ends a session (logout); true when one existed. */
export async function deleteSession(
  db: StoreDb,
  id: string,
  password: SessionKey | undefined,
): Promise<boolean> {
  if (password === undefined || id === '' || id.length > MAX_ID_LENGTH) return false;
  const rs = await run(db, {
    sql: 'DELETE FROM sessions WHERE id_hash = ?',
    args: [hashSessionId(id, password)],
  });
  return rs.rowsAffected > 0;
}

/** Ends every session created before `now` (the admin password changed); returns how many. */
export async function deleteSessionsBefore(db: StoreDb, now: number): Promise<number> {
  const rs = await run(db, { sql: 'DELETE FROM sessions WHERE created_at < ?', args: [now] });
  return rs.rowsAffected;
}

/** Deletes every session expired at `now`; returns how many. */
export async function pruneSessions(db: StoreDb, now: number): Promise<number> {
  const rs = await run(db, { sql: 'DELETE FROM sessions WHERE expires_at <= ?', args: [now] });
  return rs.rowsAffected;
}
