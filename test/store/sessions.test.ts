import t from 'tap';
import {
  createSession,
  deleteSession,
  deleteSessionsBefore,
  getSession,
  hashSessionId,
  LAST_SEEN_GRANULARITY_MS,
  pruneSessions,
} from '../../src/store/sessions.js';
import { openTestDb } from './helpers.js';

const NOW = 1_760_000_000_000;
const HOUR = 3_600_000;
const PW = 'admin password';

t.test('create, get, expire, delete', async (t) => {
  const db = await openTestDb(t);
  const s = await createSession(db, { ttlMs: HOUR, client: '127.0.0.1 curl/8', now: NOW, password: PW });
  t.match(s.id, /^[A-Za-z0-9_-]{43}$/, '32 random bytes, base64url');
  t.equal(s.expiresAt, NOW + HOUR);
  const other = await createSession(db, { ttlMs: HOUR, now: NOW, password: PW });
  t.not(other.id, s.id);

  t.same(await getSession(db, s.id, NOW + 1000, PW), {
    createdAt: NOW,
    expiresAt: NOW + HOUR,
    lastSeen: NOW,
    client: '127.0.0.1 curl/8',
  });
  const later = NOW + LAST_SEEN_GRANULARITY_MS + 5;
  t.equal((await getSession(db, s.id, later, PW))?.lastSeen, later, 'last_seen refreshed after a while');
  t.equal((await getSession(db, other.id, NOW, PW))?.client, null);
  t.equal(await getSession(db, 'not-a-session', NOW, PW), null);
  t.equal(await getSession(db, '', NOW, PW), null);
  t.equal(await getSession(db, 'x'.repeat(10_000), NOW, PW), null);

  t.equal(await getSession(db, s.id, NOW + HOUR, PW), null, 'expired at expires_at');
  const left = await db.client.execute('SELECT count(*) FROM sessions');
  t.equal(Number(left.rows[0]?.[0]), 1, 'the expired session was deleted on lookup');

  t.equal(await deleteSession(db, other.id, PW), true);
  t.equal(await deleteSession(db, other.id, PW), false);
  t.equal(await getSession(db, other.id, NOW, PW), null);
});

t.test('the id is never stored in clear', async (t) => {
  const db = await openTestDb(t);
  const s = await createSession(db, { ttlMs: HOUR, client: 'browser', now: NOW, password: PW });
  const rs = await db.client.execute('SELECT * FROM sessions');
  t.equal(rs.rows.length, 1);
  const stored = JSON.stringify(rs.rows[0]);
  t.notMatch(stored, s.id, 'no column holds the id');
  t.equal(rs.rows[0]?.['id_hash'], hashSessionId(s.id, PW));
  t.match(hashSessionId(s.id, PW), /^[0-9a-f]{64}$/);
});

t.test('pruneSessions removes only expired ones', async (t) => {
  const db = await openTestDb(t);
  const short = await createSession(db, { ttlMs: 1000, now: NOW, password: PW });
  const long = await createSession(db, { ttlMs: HOUR, now: NOW, password: PW });
  t.equal(await pruneSessions(db, NOW + 999), 0);
  t.equal(await pruneSessions(db, NOW + 1000), 1);
  t.equal(await getSession(db, short.id, NOW, PW), null);
  t.not(await getSession(db, long.id, NOW + 2000, PW), null);
});

t.test('a session is bound to the admin password it was made under', async (t) => {
  const db = await openTestDb(t);
  const s = await createSession(db, { ttlMs: HOUR, now: NOW, password: PW });
  t.not(await getSession(db, s.id, NOW, PW), null, 'valid under its password');
  t.equal(await getSession(db, s.id, NOW, 'another password'), null, 'not under another one');
  t.equal(await getSession(db, s.id, NOW, undefined), null, 'nor with no password at all');
  t.not(hashSessionId(s.id, PW), hashSessionId(s.id, 'another password'));
  t.not(await getSession(db, s.id, NOW, PW), null, 'a lookup under another password deletes nothing');
  const later = await createSession(db, { ttlMs: HOUR, now: NOW + 5, password: PW });
  t.equal(await deleteSessionsBefore(db, NOW + 5), 1, 'deleteSessionsBefore ends the older sessions');
  t.equal(await getSession(db, s.id, NOW + 5, PW), null);
  t.not(await getSession(db, later.id, NOW + 5, PW), null, 'a session from the change on is kept');
});
