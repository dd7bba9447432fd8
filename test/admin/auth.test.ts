/**
 * Admin authentication against a real daemon over real HTTP: login and its cookie, throttling,
 * the missing-password case, the Origin check, session expiry/logout/restart, how sessions are
 * stored, the control token's reach, form login redirects, and /health + /metrics around a
 * rejected reload.
 */
import { createHmac } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { AdminRouter } from '../../src/admin/router.js';
import { controlFilePath, readControlFile } from '../../src/operations/control.js';
import { DEAD_URL, testConfig, testEnv } from '../helpers/config.js';
import { startTestDaemon } from '../helpers/daemon.js';
import { call, cookiePair, login, setCookie } from '../helpers/http.js';

const PASS = testEnv.TEST_PASS;
const START = Date.UTC(2026, 0, 1, 12, 0, 0);

/** A clock the test moves by hand; the daemon reads it through `now`. */
function manualClock() {
  const clock = { t: START, now: () => clock.t };
  return clock;
}

const withAdmin = (admin: string) =>
  testConfig().replace('admin:\n  password: ${TEST_PASS}\n', `admin:\n${admin}`);

t.test('login sets a strict HttpOnly session cookie that opens the admin API', async (t) => {
  const clock = manualClock();
  const { daemon } = await startTestDaemon(t, testConfig(), { now: clock.now });

  const anon = await call(daemon.url, 'GET', '/admin/config/status');
  t.equal(anon.status, 401, 'config status needs a login');
  t.match(anon.json, { error: /login/ });

  const ok = await call(daemon.url, 'POST', '/login', { body: { password: PASS } });
  t.equal(ok.status, 200);
  t.same(ok.json, { ok: true, expires_at: new Date(START + 86_400_000).toISOString() });
  const sc = setCookie(ok);
  t.match(sc, /^ccload_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=86400$/);
  t.notMatch(sc, /Secure/, 'no Secure flag over plain HTTP');

  const status = await call(daemon.url, 'GET', '/admin/config/status', { cookie: cookiePair(sc) });
  t.equal(status.status, 200);
  t.match(status.headers['content-type'], /^application\/json/);
  const s = status.json;
  t.equal(s.generation, 1);
  t.match(s.hash, /^sha256:[0-9a-f]{64}$/);
  t.equal(s.loaded_at, new Date(START).toISOString());
  t.equal(typeof s.source, 'string');
  t.equal(typeof s.writable, 'boolean');
  t.equal(s.writable, true, 'write_back defaults to true and the temp folder is writable');
  t.same(s.last_attempt, {
    at: new Date(START).toISOString(),
    ok: true,
    cause: 'startup',
    result: 'applied',
    errors: [],
  });

  const behindTls = await call(daemon.url, 'POST', '/login', {
    body: { password: PASS },
    headers: { 'x-forwarded-proto': 'https' },
  });
  t.equal(behindTls.status, 200);
  t.match(setCookie(behindTls), /; HttpOnly; SameSite=Strict; Max-Age=86400; Secure$/, 'Secure behind TLS');

  const garbage = await call(daemon.url, 'GET', '/admin/config/status', {
    cookie: 'ccload_session=not-a-session',
  });
  t.equal(garbage.status, 401, 'an unknown session id is refused');
});

t.test('wrong passwords are throttled per address; success resets the count', async (t) => {
  t.test('five failures → 429 with retry-after, even for the right password', async (t) => {
    const clock = manualClock();
    const { daemon } = await startTestDaemon(t, testConfig(), { now: clock.now });
    for (let i = 1; i <= 5; i++) {
      const a = await call(daemon.url, 'POST', '/login', { body: { password: `wrong-${i}` } });
      t.equal(a.status, 401, `failure ${i} is a 401`);
      t.same(a.json, { error: 'wrong password', code: 'login_failed', message: 'wrong password' });
      t.equal(a.headers['set-cookie'], undefined, 'no cookie on failure');
    }
    const throttled = await call(daemon.url, 'POST', '/login', { body: { password: PASS } });
    t.equal(throttled.status, 429, 'the right password is refused while throttled');
    t.equal(throttled.headers['retry-after'], '900', 'the window is 15 min from the oldest failure');
    t.equal(throttled.headers['set-cookie'], undefined);
    t.match(throttled.json, { error: /too many failed logins/ });

    clock.t += 600_000;
    const later = await call(daemon.url, 'POST', '/login', { body: { password: PASS } });
    t.equal(later.status, 429);
    t.equal(later.headers['retry-after'], '300', 'retry-after counts down with the clock');

    clock.t += 300_000;
    t.equal((await call(daemon.url, 'POST', '/login', { body: { password: PASS } })).status, 200);
  });

  t.test('a success forgets earlier failures', async (t) => {
    const clock = manualClock();
    const { daemon } = await startTestDaemon(t, testConfig(), { now: clock.now });
    const fail = () => call(daemon.url, 'POST', '/login', { body: { password: 'nope' } });
    for (let i = 0; i < 4; i++) t.equal((await fail()).status, 401);
    clock.t += 1000;
    await login(daemon.url);
    for (let i = 0; i < 4; i++) t.equal((await fail()).status, 401, 'counted from zero again');
    const a = await call(daemon.url, 'POST', '/login', { body: { password: PASS } });
    t.equal(a.status, 200, 'only 4 failures since the success: not throttled');
  });
});

t.test('without an admin password every password login is refused, and the page says why', async (t) => {
  const { daemon } = await startTestDaemon(t, withAdmin('  write_back: true\n'));
  for (const password of [PASS, '', 'undefined']) {
    const a = await call(daemon.url, 'POST', '/login', { body: { password } });
    t.equal(a.status, 401, `password ${JSON.stringify(password)} refused`);
    t.match(a.json.error, /admin\.password/);
    t.match(a.json.error, /CCLOAD_PASS/);
    t.equal(a.headers['set-cookie'], undefined);
  }
  const form = await call(daemon.url, 'POST', '/login', {
    body: `password=${encodeURIComponent(PASS)}`,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  });
  t.equal(form.status, 401);
  t.match(form.headers['content-type'], /^text\/html/);
  t.match(form.text, /set admin\.password or CCLOAD_PASS/);
  t.notMatch(form.text, /<form/, 'no password form to fill in');

  const page = await call(daemon.url, 'GET', '/login');
  t.equal(page.status, 200);
  t.match(page.headers['content-type'], /^text\/html/);
  t.match(page.text, /No admin password is set/);
  t.match(page.text, /login link printed in the log at start-up/);
  t.match(page.text, /<code>admin\.password<\/code>/);
  t.match(page.text, /<code>CCLOAD_PASS<\/code>/);

  t.test('CCLOAD_PASS alone is enough', async (t) => {
    const { daemon } = await startTestDaemon(t, withAdmin('  write_back: true\n'), {
      env: { CCLOAD_PASS: 'from-the-environment' },
    });
    t.equal(
      (
        await call(daemon.url, 'GET', '/admin/config/status', {
          cookie: await login(daemon.url, 'from-the-environment'),
        })
      ).status,
      200,
    );
    const page = await call(daemon.url, 'GET', '/login');
    t.notMatch(page.text, /No admin password is configured/);
  });
});

t.test('state-changing requests from another origin are refused', async (t) => {
  const { daemon } = await startTestDaemon(t);
  const cookie = await login(daemon.url);
  const reload = (headers: Record<string, string>) =>
    call(daemon.url, 'POST', '/admin/reload', { cookie, headers });

  const evil = await reload({ origin: 'http://evil.example' });
  t.equal(evil.status, 403, 'foreign Origin');
  t.match(evil.json, { error: /cross-origin/ });
  t.equal((await reload({ 'sec-fetch-site': 'cross-site' })).status, 403, 'Sec-Fetch-Site: cross-site');
  t.equal((await reload({ origin: 'null' })).status, 403, 'opaque Origin: null');
  t.equal((await reload({ referer: 'http://evil.example/page' })).status, 403, 'foreign Referer, no Origin');
  const port = new URL(daemon.url).port;
  t.equal((await reload({ origin: `http://127.0.0.1:${Number(port) + 1}` })).status, 403, 'another port');

  const same = await reload({ origin: daemon.url, 'sec-fetch-site': 'same-origin' });
  t.equal(same.status, 200, 'same Origin');
  t.match(same.json, { result: 'unchanged', generation: 1, hash: daemon.app.reloader.current.hash });
  t.equal((await reload({})).status, 200, 'no Origin (curl, scripts)');

  const loginCsrf = await call(daemon.url, 'POST', '/login', {
    body: { password: PASS },
    headers: { origin: 'http://evil.example' },
  });
  t.equal(loginCsrf.status, 403, 'login CSRF: a cross-origin login is refused too');
  t.equal(loginCsrf.headers['set-cookie'], undefined);
  const sameLogin = await call(daemon.url, 'POST', '/login', {
    body: { password: PASS },
    headers: { origin: daemon.url },
  });
  t.equal(sameLogin.status, 200);
  const logoutCsrf = await call(daemon.url, 'POST', '/logout', {
    cookie,
    headers: { 'sec-fetch-site': 'cross-site' },
  });
  t.equal(logoutCsrf.status, 403, 'logout is a state change too');
  t.equal((await call(daemon.url, 'GET', '/admin/config/status', { cookie })).status, 200, 'still logged in');
});

t.test('sessions expire after admin.session_ttl; logout ends them server-side', async (t) => {
  const clock = manualClock();
  const { daemon } = await startTestDaemon(t, withAdmin('  password: ${TEST_PASS}\n  session_ttl: 1h\n'), {
    now: clock.now,
  });
  const a = await call(daemon.url, 'POST', '/login', { body: { password: PASS } });
  t.match(setCookie(a), /Max-Age=3600(;|$)/, 'the cookie lives as long as the session');
  const cookie = cookiePair(setCookie(a));
  const status = () => call(daemon.url, 'GET', '/admin/config/status', { cookie });

  clock.t = START + 3_600_000 - 1;
  t.equal((await status()).status, 200, 'valid 1 ms before the ttl');
  clock.t = START + 3_600_000;
  t.equal((await status()).status, 401, 'expired at the ttl');
  clock.t = START;
  t.equal((await status()).status, 401, 'an expired session is gone, even if the clock goes back');

  const second = await login(daemon.url);
  t.equal((await call(daemon.url, 'GET', '/admin/config/status', { cookie: second })).status, 200);
  const out = await call(daemon.url, 'POST', '/logout', { cookie: second });
  t.equal(out.status, 200);
  t.match(setCookie(out), /^ccload_session=; Path=\/; HttpOnly; SameSite=Strict; Max-Age=0$/, 'cleared');
  t.equal(
    (await call(daemon.url, 'GET', '/admin/config/status', { cookie: second })).status,
    401,
    'the old cookie no longer works after logout',
  );
  const rows = await daemon.app.db.client.execute('SELECT count(*) AS n FROM sessions');
  t.equal(Number(rows.rows[0]?.['n']), 0, 'no session row is left');

  const htmlOut = await call(daemon.url, 'POST', '/logout', { headers: { accept: 'text/html' } });
  t.equal(htmlOut.status, 303, 'the dashboard form gets a redirect');
  t.equal(htmlOut.headers['location'], '/login');
});

t.test('sessions survive a daemon restart, and are not stored in clear', async (t) => {
  const first = await startTestDaemon(t);
  const cookie = await login(first.daemon.url);
  const id = cookie.slice('ccload_session='.length);
  t.equal((await call(first.daemon.url, 'GET', '/admin/config/status', { cookie })).status, 200);

  const rows = await first.daemon.app.db.client.execute('SELECT * FROM sessions');
  t.equal(rows.rows.length, 1);
  const row = rows.rows[0]!;
  t.equal(
    row['id_hash'],
    createHmac('sha256', `ccload-session\0${PASS}`).update(id).digest('hex'),
    'stored as its HMAC keyed with the admin password',
  );
  for (const [column, value] of Object.entries(row)) {
    t.notMatch(String(value), id, `column ${column} does not hold the id`);
  }
  await first.daemon.close();

  const stateDir = join(first.dir, 'state');
  const files = readdirSync(stateDir);
  t.ok(files.includes('ccload.db'), `database files: ${files.join(', ')}`);
  for (const f of files) {
    t.notOk(readFileSync(join(stateDir, f)).includes(id), `${f} does not contain the session id`);
  }

  const second = await startTestDaemon(t, '', { dir: first.dir, file: first.file });
  t.not(second.daemon.url, first.daemon.url, 'a new daemon, a new port');
  const after = await call(second.daemon.url, 'GET', '/admin/config/status', { cookie });
  t.equal(after.status, 200, 'the cookie still works after the restart');
});

t.test('the control token opens only reload and config status', async (t) => {
  const { daemon, dir, file } = await startTestDaemon(t);
  const control = readControlFile(controlFilePath(file, { RUNTIME_DIRECTORY: dir }));
  t.ok(control, 'the daemon wrote its control file');
  t.equal(control?.url, daemon.url);
  t.equal(control?.pid, process.pid);
  const bearer = { authorization: `Bearer ${control?.token}` };

  t.equal((await call(daemon.url, 'GET', '/admin/config/status', { headers: bearer })).status, 200);
  const r = await call(daemon.url, 'POST', '/admin/reload', { headers: bearer });
  t.equal(r.status, 200);
  t.equal(r.json.result, 'unchanged');

  for (const authorization of [
    `Bearer ${control?.token}x`,
    `Bearer ${control?.token.slice(1)}`,
    'Bearer ',
    `Basic ${control?.token}`,
    `bearer${control?.token}`,
  ]) {
    for (const [method, path] of [
      ['GET', '/admin/config/status'],
      ['POST', '/admin/reload'],
    ] as const) {
      const a = await call(daemon.url, method, path, { headers: { authorization } });
      t.equal(a.status, 401, `${method} ${path} with "${authorization.slice(0, 9)}…" → 401`);
    }
  }

  // The real router with routes that need a session: the token must not open them.
  const router = new AdminRouter(daemon.app, [
    {
      method: 'GET',
      path: '/admin/session-only',
      access: 'session',
      handle: (_req, res) => void res.end('secret'),
    },
    {
      method: 'GET',
      path: '/dashboard',
      access: 'session',
      page: true,
      handle: (_req, res) => void res.end('page'),
    },
  ]);
  const server = createServer((req, res) => void router.handle(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const viaToken = await call(base, 'GET', '/admin/session-only', { headers: bearer });
  t.equal(viaToken.status, 401, 'a session-only route refuses the control token');
  const page = await call(base, 'GET', '/dashboard?tab=1', { headers: bearer });
  t.equal(page.status, 303, 'a page sends a token holder to the login');
  t.equal(page.headers['location'], '/login?next=%2Fdashboard%3Ftab%3D1');
  const viaSession = await call(base, 'GET', '/admin/session-only', { cookie: await login(daemon.url) });
  t.equal(viaSession.status, 200, 'a session opens it');
  t.equal(viaSession.text, 'secret');
});

t.test('form login redirects to local paths only', async (t) => {
  const { daemon } = await startTestDaemon(t);
  const form = (fields: Record<string, string>) =>
    call(daemon.url, 'POST', '/login', {
      body: new URLSearchParams(fields).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });

  const ok = await form({ password: PASS, next: '/admin/logs?hours=1' });
  t.equal(ok.status, 303);
  t.equal(ok.headers['location'], '/admin/logs?hours=1');
  t.match(setCookie(ok), /^ccload_session=[^;]+; Path=\/; HttpOnly; SameSite=Strict; Max-Age=86400$/);
  const cookie = cookiePair(setCookie(ok));
  t.equal((await call(daemon.url, 'GET', '/admin/config/status', { cookie })).status, 200);

  for (const next of ['//evil.example', 'https://evil.example/', '/\\evil.example', '']) {
    const a = await form({ password: PASS, next });
    t.equal(a.status, 303);
    t.equal(a.headers['location'], '/', `next=${JSON.stringify(next)} goes to /`);
  }
  const noNext = await form({ password: PASS });
  t.equal(noNext.headers['location'], '/');

  const wrong = await form({ password: 'nope', next: '/x' });
  t.equal(wrong.status, 401, 'a wrong form password re-renders the page');
  t.match(wrong.headers['content-type'], /^text\/html/);
  t.match(wrong.text, /wrong password/);

  const page = await call(daemon.url, 'GET', '/login?next=//evil.example');
  t.match(page.text, /name="next" value="\/"/, 'the login page also sanitises next');
  const kept = await call(daemon.url, 'GET', '/login?next=/admin/stats');
  t.match(kept.text, /name="next" value="\/admin\/stats"/);
});

t.test('/health and /metrics, before and after a rejected reload', async (t) => {
  const clock = manualClock();
  const { daemon, file, dir } = await startTestDaemon(t, testConfig(), { now: clock.now });
  const control = readControlFile(controlFilePath(file, { RUNTIME_DIRECTORY: dir }))!;
  const bearer = { authorization: `Bearer ${control.token}` };
  const metric = async (name: string) => {
    const m = await call(daemon.url, 'GET', '/metrics');
    const line = new RegExp(`^${name} (\\S+)$`, 'm').exec(m.text);
    return line ? Number(line[1]) : undefined;
  };

  const health = await call(daemon.url, 'GET', '/health');
  t.equal(health.status, 200);
  t.match(health.json, {
    status: 'ok',
    config: { generation: 1, hash: daemon.app.reloader.current.hash },
    database: 'ok',
  });
  const metrics = await call(daemon.url, 'GET', '/metrics');
  t.equal(metrics.status, 200);
  t.match(metrics.headers['content-type'], /^text\/plain/);
  t.match(metrics.text, /^# TYPE ccload_config_generation gauge$/m);
  t.equal(await metric('ccload_config_generation'), 1);
  t.equal(await metric('ccload_config_last_reload_successful'), 1);
  t.equal(await metric('ccload_config_last_reload_success_timestamp_seconds'), START / 1000);

  writeFileSync(file, `${testConfig()}    bogus_key: 1\n`);
  clock.t += 60_000;
  const rejected = await call(daemon.url, 'POST', '/admin/reload', { headers: bearer });
  t.equal(rejected.status, 422);
  t.equal(rejected.json.result, 'rejected');
  t.equal(rejected.json.errors.length, 1);
  t.same(Object.keys(rejected.json.errors[0]).sort(), ['col', 'file', 'line', 'message', 'path']);
  t.match(rejected.json.errors[0], {
    file: 'ccload.yaml',
    line: 12,
    col: 5,
    path: 'channels[0].bogus_key',
    message: /unknown key "bogus_key"/,
  });
  t.equal(await metric('ccload_config_last_reload_successful'), 0, 'the gauge drops to 0');
  t.equal(await metric('ccload_config_generation'), 1, 'the old generation keeps serving');
  t.equal(await metric('ccload_config_last_reload_success_timestamp_seconds'), START / 1000);
  const degraded = await call(daemon.url, 'GET', '/health');
  t.equal(degraded.status, 200);
  t.match(degraded.json, { status: 'degraded', config: { generation: 1, last_reload_ok: false } });
  const status = await call(daemon.url, 'GET', '/admin/config/status', { headers: bearer });
  t.match(status.json, {
    generation: 1,
    last_attempt: { ok: false, result: 'rejected', errors: [{ line: 12, path: 'channels[0].bogus_key' }] },
  });

  writeFileSync(file, testConfig({ channels: [{ name: 'main', url: DEAD_URL, priority: 7 }] }));
  clock.t += 60_000;
  const applied = await call(daemon.url, 'POST', '/admin/reload', { headers: bearer });
  t.equal(applied.status, 200);
  t.equal(applied.json.generation, 2, 'applied, whether the watcher or this request ran it');
  t.equal(await metric('ccload_config_last_reload_successful'), 1);
  t.equal(await metric('ccload_config_generation'), 2);
  t.equal(await metric('ccload_config_last_reload_success_timestamp_seconds'), (START + 120_000) / 1000);
  t.match((await call(daemon.url, 'GET', '/health')).json, { status: 'ok', config: { generation: 2 } });
});
