import t from 'tap';
import { claudeCodeRequest } from '../../src/dev/anthropic-shapes.js';
import { sessionFromUserId, sessionIdOf, sessionKey } from '../../src/proxy/affinity.js';
import { metadataUserId, sniffRequest } from '../../src/proxy/body-sniff.js';

const SID = '3f2c9a4e-8b1d-4c6f-9e0a-1b2c3d4e5f60';

/** The session a request names, as the proxy reads it: header first, then the body's metadata. */
function sessionOf(body: string | Buffer, header?: string): string | undefined {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  const r = sniffRequest(b);
  if (!r.ok) throw new Error(r.message);
  return sessionIdOf(header, metadataUserId(b, r.metadataStart, r.metadataEnd));
}

const jsonUserId = (sid: string) =>
  JSON.stringify({ device_id: 'd'.repeat(64), account_uuid: 'acc', session_id: sid });

t.test('session identity: header, both user_id forms, none, malformed, nested', async (t) => {
  const table: [string, string, string | undefined, string | undefined][] = [
    ['header only', '{"model":"m"}', SID, SID],
    [
      'header wins over the body',
      JSON.stringify({ model: 'm', metadata: { user_id: jsonUserId('body-session') } }),
      SID,
      SID,
    ],
    ['JSON user_id', JSON.stringify({ model: 'm', metadata: { user_id: jsonUserId(SID) } }), undefined, SID],
    [
      'legacy user_id',
      JSON.stringify({
        model: 'm',
        metadata: { user_id: `user_${'a'.repeat(64)}_account_1234-5678_session_${SID}` },
      }),
      undefined,
      SID,
    ],
    ['no metadata', '{"model":"m","messages":[]}', undefined, undefined],
    ['metadata without user_id', '{"model":"m","metadata":{"other":"x"}}', undefined, undefined],
    [
      'user_id of an SDK user (no session)',
      '{"model":"m","metadata":{"user_id":"alice"}}',
      undefined,
      undefined,
    ],
    [
      'malformed JSON user_id',
      JSON.stringify({ model: 'm', metadata: { user_id: '{"session_id": "abc"' } }),
      undefined,
      undefined,
    ],
    [
      'JSON user_id with a non-string session_id',
      JSON.stringify({ model: 'm', metadata: { user_id: '{"session_id": 42}' } }),
      undefined,
      undefined,
    ],
    ['user_id not a string', '{"model":"m","metadata":{"user_id":{"session_id":"x"}}}', undefined, undefined],
    ['metadata not an object', '{"model":"m","metadata":"user_id"}', undefined, undefined],
    [
      'a session id deeper in the body is not picked up',
      JSON.stringify({
        model: 'm',
        messages: [
          { role: 'user', content: `{"metadata":{"user_id":${JSON.stringify(jsonUserId('deep'))}}}` },
          { role: 'user', content: [{ type: 'text', metadata: { user_id: jsonUserId('deeper') } }] },
        ],
        system: `user_x_account_y_session_${SID}`,
        tools: [{ name: 'x', input_schema: { metadata: { user_id: jsonUserId('tool') } } }],
      }),
      undefined,
      undefined,
    ],
    [
      'nested user_id inside metadata is not taken',
      JSON.stringify({ model: 'm', metadata: { inner: { user_id: jsonUserId('nested') } } }),
      undefined,
      undefined,
    ],
    [
      'duplicate user_id: the last wins',
      `{"model":"m","metadata":{"user_id":${JSON.stringify(jsonUserId('first'))},"user_id":${JSON.stringify(jsonUserId('second'))}}}`,
      undefined,
      'second',
    ],
    [
      'escaped key spellings',
      `{"model":"m","met\\u0061data":{"user\\u005fid":${JSON.stringify(jsonUserId(SID))}}}`,
      undefined,
      SID,
    ],
    [
      'invalid header falls back to the body',
      JSON.stringify({ model: 'm', metadata: { user_id: jsonUserId(SID) } }),
      'has space',
      SID,
    ],
    [
      'overlong session id',
      JSON.stringify({ model: 'm', metadata: { user_id: jsonUserId('x'.repeat(129)) } }),
      undefined,
      undefined,
    ],
    ['control characters in the header', '{"model":"m"}', 'a\u0001b', undefined],
  ];
  for (const [label, body, header, want] of table) t.equal(sessionOf(body, header), want, label);
});

t.test('a Claude Code shaped request yields its session from the body and the header', async (t) => {
  const req = claudeCodeRequest({
    model: 'claude-opus-5-5',
    stream: true,
    sessionId: SID,
    bodyBytes: 60_000,
  });
  t.equal(sessionOf(req.body), SID, 'body');
  t.equal(sessionOf(req.body, req.headers['x-claude-code-session-id']), SID, 'header');
});

t.test('sessionFromUserId on its own', async (t) => {
  t.equal(sessionFromUserId(undefined), undefined);
  t.equal(sessionFromUserId(jsonUserId(SID)), SID);
  t.equal(sessionFromUserId('[1,2]'), undefined, 'a JSON array');
  t.equal(sessionFromUserId('null'), undefined);
  t.equal(sessionFromUserId(`user_h_account_a_session_${SID}`), SID);
  t.equal(sessionFromUserId('user_h_account_a_session_'), undefined, 'empty legacy session');
});

t.test('sessionKey: namespaced by client token, a short hash, never the raw id', async (t) => {
  const a = sessionKey('alice', SID);
  const b = sessionKey('bob', SID);
  t.not(a, b, 'two client tokens with the same session id get different keys');
  t.equal(a, sessionKey('alice', SID), 'stable');
  t.match(a, /^[0-9a-f]{16}$/);
  t.notOk(a.includes(SID.slice(0, 8)), 'not the raw id');
  t.not(sessionKey(null, SID), sessionKey('', `\u0000${SID}`), 'open proxy key differs from a crafted one');
});
