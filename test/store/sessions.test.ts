import t from 'tap';
import {
  createSession,
  deleteSession,
  getSession,
  hashSessionId,
  LAST_SEEN_GRANULARITY_MS,
  pruneSessions,
} from '../../src/store/sessions.js';
import { openTestDb } from './helpers.js';

const NOW = 1_760_000_000_000;
const HOUR = 3_600_000;

t.test('create, get, expire, delete', async (t) => {
  const db = await openTestDb(t);
  const s = await createSession(db, { ttlMs: HOUR, client: '127.0.0.1 curl/8', now: NOW });
  t.match(s.id, /^[A-Za-z0-9_-]{43}$/, '32 random bytes, base64url');
  t.equal(s.expiresAt, NOW + HOUR);
  const other = await createSession(db, { ttlMs: HOUR, now: NOW });
  t.not(other.id, s.id);

  t.same(await getSession(db, s.id, NOW + 1000), {
    createdAt: NOW,
    expiresAt: NOW + HOUR,
    lastSeen: NOW,
    client: '127.0.0.1 curl/8',
  });
  const later = NOW + LAST_SEEN_GRANULARITY_MS + 5;
  t.equal((await getSession(db, s.id, later))?.lastSeen, later, 'last_seen refreshed after a while');
  t.equal((await getSession(db, other.id, NOW))?.client, null);
  t.equal(await getSession(db, 'not-a-session', NOW), null);
  t.equal(await getSession(db, '', NOW), null);
  t.equal(await getSession(db, 'x'.repeat(10_000), NOW), null);

  t.equal(await getSession(db, s.id, NOW + HOUR), null, 'expired at expires_at');
  const left = await db.client.execute('SELECT count(*) FROM sessions');
  t.equal(Number(left.rows[0]?.[0]), 1, 'the expired session was deleted on lookup');

  t.equal(await deleteSession(db, other.id), true);
  t.equal(await deleteSession(db, other.id), false);
  t.equal(await getSession(db, other.id, NOW), null);
});

t.test('the id is never stored in clear', async (t) => {
  const db = await openTestDb(t);
  const s = await createSession(db, { ttlMs: HOUR, client: 'browser', now: NOW });
  const rs = await db.client.execute('SELECT * FROM sessions');
  t.equal(rs.rows.length, 1);
  const stored = JSON.stringify(rs.rows[0]);
  t.notMatch(stored, s.id, 'no column holds the id');
  t.equal(rs.rows[0]?.['id_hash'], hashSessionId(s.id));
  t.match(hashSessionId(s.id), /^[0-9a-f]{64}$/);
});

t.test('pruneSessions removes only expired ones', async (t) => {
  const db = await openTestDb(t);
  const short = await createSession(db, { ttlMs: 1000, now: NOW });
  const long = await createSession(db, { ttlMs: HOUR, now: NOW });
  t.equal(await pruneSessions(db, NOW + 999), 0);
  t.equal(await pruneSessions(db, NOW + 1000), 1);
  t.equal(await getSession(db, short.id, NOW), null);
  t.not(await getSession(db, long.id, NOW + 2000), null);
});
