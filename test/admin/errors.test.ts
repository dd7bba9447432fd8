/**
 * Every error the daemon answers over HTTP goes through the catalogue (src/errors.ts): the admin
 * side in its one JSON shape, the proxy in Anthropic's, each with the catalogue's status.
 */
import t from 'tap';
import { ADMIN_ERRORS, PROXY_ERRORS } from '../../src/errors.js';
import { startTestDaemon } from '../helpers/daemon.js';
import { call, login } from '../helpers/http.js';

t.test('admin errors: one shape {error, code, message} with the catalogue status', async (t) => {
  const { daemon } = await startTestDaemon(t);
  const base = daemon.url;
  const cookie = await login(base);
  const cases = [
    [await call(base, 'GET', '/nowhere'), 'no_route', 'no route for GET /nowhere'],
    [
      await call(base, 'DELETE', '/admin/reload', { cookie }),
      'method_not_allowed',
      /^method DELETE not allowed/,
    ],
    [await call(base, 'GET', '/admin/channels'), 'login_required', 'login required'],
    [
      await call(base, 'POST', '/admin/reload', { cookie, headers: { origin: 'http://evil.example' } }),
      'cross_origin',
      /^cross-origin request refused/,
    ],
    [await call(base, 'GET', '/admin/logs?hours=0', { cookie }), 'bad_parameter', /^hours must be/],
    [await call(base, 'GET', '/admin/channels/nope', { cookie }), 'not_found', 'no channel named "nope"'],
    [
      await call(base, 'POST', '/admin/channels', { cookie, body: '{not json' }),
      'bad_request',
      /not valid JSON/,
    ],
  ] as const;
  for (const [answer, code, message] of cases) {
    const entry = ADMIN_ERRORS[code];
    t.equal(answer.status, entry.status, code);
    t.match(answer.json, { code, message }, code);
    t.same(Object.keys(answer.json).sort(), ['code', 'error', 'message'], `${code}: nothing else`);
    if (entry.error === 'code') t.equal(answer.json.error, code, `${code}: error is the code`);
    else t.equal(answer.json.error, answer.json.message, `${code}: error is the message`);
  }
});

t.test('proxy errors: Anthropic-shaped, with the catalogue status and type', async (t) => {
  const { daemon } = await startTestDaemon(t);
  const base = daemon.url;
  const cases = [
    [await call(base, 'GET', '/v1/nowhere'), 'CCL_NOT_FOUND'],
    [await call(base, 'GET', '/v1/messages'), 'CCL_METHOD_NOT_ALLOWED'],
    [await call(base, 'POST', '/v1/models'), 'CCL_METHOD_NOT_ALLOWED'],
    [await call(base, 'POST', '/v1/messages', { body: '{not json' }), 'CCL_BAD_REQUEST'],
  ] as const;
  for (const [answer, code] of cases) {
    t.equal(answer.status, PROXY_ERRORS[code].status, code);
    t.match(answer.json, { type: 'error', error: { type: PROXY_ERRORS[code].type, message: String } }, code);
  }
});
