/**
 * Security hardening of the admin side, one class per test, against a real daemon over real HTTP:
 * the login throttle under concurrency, the post-login redirect, malformed cookies, security
 * headers on every answer, the Host check (DNS rebinding), the control token's reach, and sessions
 * ending when the admin password changes. Route lists come from the daemon's own route table, so a
 * new route is covered without editing this file.
 */
import { writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import t from 'tap';
import { hostAllowed, localRedirect, throttleKey } from '../../src/admin/auth.js';
import type { Route } from '../../src/admin/router.js';
import type { Daemon } from '../../src/daemon.js';
import { controlFilePath, readControlFile } from '../../src/operations/control.js';
import { testConfig, testEnv } from '../helpers/config.js';
import { startTestDaemon } from '../helpers/daemon.js';
import { type Answer, call, cookiePair, login as loginAt, setCookie } from '../helpers/http.js';

const PASS = testEnv.TEST_PASS;

/** `name=value` of an answer's Set-Cookie, ready to send back. */
const cookieOf = (a: Answer) => cookiePair(setCookie(a));

const login = (d: Daemon, password = PASS) => loginAt(d.url, password);

/**
 * Concrete paths for a route: a string path as is; a RegExp's groups filled in (`([^/]+)` → the
 * channel `main`, an alternation → each alternative). Each sample is checked against the route.
 */
function samplePaths(route: Route): string[] {
  if (typeof route.path === 'string') return [route.path];
  let paths = [
    route.path.source
      .replace(/^\^/, '')
      .replace(/\$$/, '')
      .replace(/\(\[\^\/\]\+\)/g, 'main'),
  ];
  for (;;) {
    const alt = paths.find((p) => /\(([\w|]+)\)/.test(p));
    if (!alt) break;
    const m = /\(([\w|]+)\)/.exec(alt)!;
    paths = paths.flatMap((p) => (p === alt ? m[1]!.split('|').map((a) => p.replace(m[0], a)) : [p]));
  }
  paths = paths.map((p) => p.replace(/\\\//g, '/'));
  for (const p of paths) {
    if (!route.path.test(p) || /[\\()[\]^$|+*?]/.test(p))
      throw new Error(`cannot sample ${route.path}: ${p}`);
  }
  return paths;
}

/** Every method × path the daemon's admin router serves. */
function everyRoute(d: Daemon): { method: Route['method']; path: string; route: Route }[] {
  return d.routes.flatMap((route) =>
    samplePaths(route).map((path) => ({ method: route.method, path, route })),
  );
}

/** A raw HTTP/1.1 request on its own socket; resolves with the status (0 = closed unanswered). */
function rawRequest(port: number, head: string, body?: string): { socket: Socket; status: Promise<number> } {
  const socket = connect(port, '127.0.0.1');
  socket.write(head);
  if (body !== undefined) socket.write(body);
  let data = '';
  socket.on('data', (c: Buffer) => {
    data += c.toString('latin1');
  });
  const status = new Promise<number>((resolve) => {
    const done = () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0));
    socket.on('close', done);
    socket.on('error', () => {});
  });
  return { socket, status };
}

t.test('regression: parallel wrong passwords cannot out-race the login throttle', async (t) => {
  const { daemon } = await startTestDaemon(t);
  const port = Number(new URL(daemon.url).port);
  // Requests that reached the handler: by the time a 'request' listener registered after the
  // daemon's own runs, the login has passed (or failed) its throttle check.
  let seen = 0;
  const waiters: { n: number; resolve: () => void }[] = [];
  daemon.server.on('request', (req) => {
    if (req.url !== '/login') return;
    seen++;
    for (const w of waiters.filter((w) => seen >= w.n)) w.resolve();
  });
  const reached = (n: number) =>
    seen >= n ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ n, resolve }));

  const body = (password: string) => JSON.stringify({ password });
  const head = (b: string) =>
    `POST /login HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${Buffer.byteLength(b)}\r\nConnection: close\r\n\r\n`;

  // 200 wrong guesses whose bodies are held back, so none has been evaluated yet...
  const wrong = Array.from({ length: 200 }, (_, i) => body(`wrong-${i}`));
  const guesses = wrong.map((b) => rawRequest(port, head(b)));
  await reached(200);
  // ...and then the right password, once the limit has been crossed.
  const right = body(PASS);
  const rightReq = rawRequest(port, head(right));
  await reached(201);
  for (const [i, g] of guesses.entries()) g.socket.write(wrong[i]!);
  rightReq.socket.write(right);

  const statuses = await Promise.all(guesses.map((g) => g.status));
  const rightStatus = await rightReq.status;
  t.equal(rightStatus, 429, 'the right password in the burst gets no session');
  const evaluated = statuses.filter((s) => s === 401).length;
  t.ok(evaluated <= 2, `at most 2 guesses (the in-flight cap) were evaluated, not ${evaluated}`);
  t.equal(statuses.filter((s) => s === 429).length, 200 - evaluated, 'every other guess was refused unread');
  const rows = await daemon.app.db.client.execute('SELECT count(*) AS n FROM sessions');
  t.equal(Number(rows.rows[0]?.['n']), 0, 'no session was created');

  t.test('the in-flight cap: a third concurrent login is refused at once, a later one runs', async (t) => {
    const { daemon } = await startTestDaemon(t);
    const port = Number(new URL(daemon.url).port);
    const b = body(PASS);
    const slow = [rawRequest(port, head(b)), rawRequest(port, head(b))];
    const third = await call(daemon.url, 'POST', '/login', { body: { password: PASS } });
    t.equal(third.status, 429, 'a third login while two are in flight');
    t.match(third.json, { error: /in progress/ });
    t.equal(third.headers['retry-after'], '1');
    for (const s of slow) s.socket.write(b);
    t.same(await Promise.all(slow.map((s) => s.status)), [200, 200], 'the two in flight complete');
    t.equal((await call(daemon.url, 'POST', '/login', { body: { password: PASS } })).status, 200);
  });
});

t.test('the throttle counts per IPv4 address and per IPv6 /64', async (t) => {
  const table: [string, string][] = [
    ['127.0.0.1', '127.0.0.1'],
    ['::ffff:10.1.2.3', '10.1.2.3'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:db8:1:2:ffff::9', '2001:db8:1:2::/64'],
    ['2001:0db8:0000:0001::abcd', '2001:db8:0:1::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
  ];
  for (const [address, key] of table) t.equal(throttleKey(address), key, address);
});

t.test(
  'regression: the post-login redirect stays on this origin (next=/<TAB>/evil.example and kin)',
  async (t) => {
    const table: [string, string][] = [
      ['/logs?hours=1', '/logs?hours=1'],
      ['/channels#x', '/channels#x'],
      ['/\t/evil.example', '/'],
      ['/\n/evil.example', '/'],
      ['\t//evil.example', '/'],
      ['//evil.example', '/'],
      ['///evil.example', '/'],
      ['/\\evil.example', '/'],
      ['\\/evil.example', '/'],
      ['\\\\evil.example', '/'],
      ['/.//evil.example', '/'],
      ['/..//evil.example', '/'],
      ['https:evil.example', '/'],
      ['https://evil.example/', '/'],
      ['HTTPS://evil.example', '/'],
      ['javascript:alert(1)', '/'],
      ['data:text/html,x', '/'],
      ['//user@evil.example', '/'],
      [' //evil.example', '/'],
      ['/%09/evil.example', '/%09/evil.example'],
      ['/%2F%2Fevil.example', '/%2F%2Fevil.example'],
      ['/x\r\nset-cookie: a=b', '/xset-cookie:%20a=b'],
      ['http:evil.example', '/evil.example'],
      ['evil', '/evil'],
      ['', '/'],
    ];
    for (const [next, want] of table)
      t.equal(localRedirect(next), want, `localRedirect(${JSON.stringify(next)})`);

    const { daemon } = await startTestDaemon(t);
    for (const [next, want] of table) {
      const a = await call(daemon.url, 'POST', '/login', {
        body: new URLSearchParams({ password: PASS, next }).toString(),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      t.equal(a.status, 303);
      t.equal(a.headers['location'], want, `form login with next=${JSON.stringify(next)}`);
      const page = await call(daemon.url, 'GET', `/login?next=${encodeURIComponent(next)}`);
      t.ok(
        page.text.includes(`name="next" value="${want.replace(/&/g, '&amp;')}"`),
        `login page keeps ${want}`,
      );
    }
  },
);

t.test('regression: a malformed cookie (x=%E0%A4%A) breaks no route', async (t) => {
  const { daemon } = await startTestDaemon(t);
  const bad = 'x=%E0%A4%A; ccload_session=%E0%A4%A';
  const routes = everyRoute(daemon);
  t.ok(routes.length > 20, `${routes.length} routes from the router`);
  for (const { method, path, route } of routes) {
    const a = await call(daemon.url, method, path, { cookie: bad });
    t.not(a.status, 500, `${method} ${path} with a malformed cookie`);
    if (route.access === 'public' && method === 'GET')
      // The Go ccLoad's /web/*.html addresses answer with their redirect.
      t.equal(a.status, path.startsWith('/web') ? 302 : 200, `${method} ${path} still answers`);
  }
  for (const path of ['/v1/models', '/v1/models/%E0%A4%A', '/v1/messages']) {
    const post = path === '/v1/messages';
    const a = await call(daemon.url, post ? 'POST' : 'GET', path, {
      cookie: bad,
      ...(post ? { body: '{}' } : {}),
    });
    t.not(a.status, 500, `${path} with a malformed cookie`);
  }
  // The session cookie is still found next to a malformed one.
  const cookie = await login(daemon);
  t.equal(
    (await call(daemon.url, 'GET', '/admin/config/status', { cookie: `x=%E0%A4%A; ${cookie}` })).status,
    200,
  );
});

t.test(
  'every answer of the admin side carries the security headers, login and errors included',
  async (t) => {
    const { daemon } = await startTestDaemon(t);
    const check = (a: Answer, what: string) => {
      t.match(a.headers['content-security-policy'], /frame-ancestors 'none'/, `${what}: CSP`);
      t.match(a.headers['content-security-policy'], /script-src 'self'/, `${what}: CSP scripts`);
      t.equal(a.headers['x-frame-options'], 'DENY', `${what}: X-Frame-Options`);
      t.equal(a.headers['x-content-type-options'], 'nosniff', `${what}: nosniff`);
    };
    let cookie = await login(daemon);
    const origin = daemon.url;
    let htmlAnswers = 0;
    for (const { method, path } of everyRoute(daemon)) {
      for (const who of ['anonymous', 'session'] as const) {
        const a = await call(daemon.url, method, path, {
          ...(who === 'session' ? { cookie } : {}),
          headers: { origin, 'if-match': '"sha256:0"', 'content-type': 'application/x-www-form-urlencoded' },
          ...(method === 'GET' ? {} : { body: 'hash=sha256%3A0&password=wrong' }),
        });
        check(a, `${who} ${method} ${path} (${a.status})`);
        if (String(a.headers['content-type']).startsWith('text/html')) htmlAnswers++;
        if (path === '/logout' && who === 'session') cookie = await login(daemon);
      }
    }
    t.ok(htmlAnswers >= 15, `${htmlAnswers} HTML answers among them`);
    const loginPage = await call(daemon.url, 'GET', '/login');
    t.match(loginPage.headers['content-type'], /^text\/html/);
    check(loginPage, 'the login page');
    check(await call(daemon.url, 'GET', '/no-such-page'), '404');
    check(await call(daemon.url, 'DELETE', '/login'), '405');
  },
);

t.test(
  'regression: DNS rebinding — a foreign Host is refused on the dashboard, admin API and login',
  async (t) => {
    const { daemon } = await startTestDaemon(t);
    const cookie = await login(daemon);
    const evil = { host: 'rebind.attacker.example', origin: 'http://rebind.attacker.example' };
    const loginA = await call(daemon.url, 'POST', '/login', { body: { password: PASS }, headers: evil });
    t.equal(loginA.status, 403, 'POST /login with a rebound Host and matching Origin');
    t.equal(loginA.headers['set-cookie'], undefined, 'no session');
    t.match(loginA.json, { error: /allowed_hosts/ });
    for (const { method, path, route } of everyRoute(daemon)) {
      const a = await call(daemon.url, method, path, { cookie, headers: evil });
      if (route.anyHost) t.not(a.status, 403, `${method} ${path} answers any Host (monitors)`);
      else t.equal(a.status, 403, `${method} ${path} refuses the rebound Host`);
    }
    t.same(
      daemon.routes.filter((r) => r.anyHost).map((r) => r.path),
      ['/health', '/metrics', '/public/summary'],
      'only what monitors read is exempt',
    );
    const models = await call(daemon.url, 'GET', '/v1/models', { headers: evil });
    t.not(models.status, 403, 'the proxy (token-gated) does not check Host');
    for (const host of [
      '127.0.0.1',
      `127.0.0.1:${new URL(daemon.url).port}`,
      'localhost:1234',
      'LOCALHOST',
    ]) {
      const a = await call(daemon.url, 'GET', '/admin/config/status', { cookie, headers: { host } });
      t.equal(a.status, 200, `Host: ${host} is this daemon`);
    }

    t.test('server.allowed_hosts adds the names a reverse proxy forwards', async (t) => {
      const extra = testConfig().replace('server:\n', 'server:\n  allowed_hosts: [ccload.example.org]\n');
      const { daemon } = await startTestDaemon(t, extra);
      const headers = { host: 'ccload.example.org', origin: 'https://ccload.example.org' };
      const a = await call(daemon.url, 'POST', '/login', { body: { password: PASS }, headers });
      t.equal(a.status, 200);
      t.equal((await call(daemon.url, 'GET', '/', { cookie: cookieOf(a), headers })).status, 200);
      t.equal((await call(daemon.url, 'GET', '/', { headers: evil })).status, 403, 'others still refused');
    });

    t.test('which names pass, by listen address', async (t) => {
      const table: [string, string, boolean][] = [
        ['127.0.0.1', '127.0.0.1:8080', true],
        ['127.0.0.1', 'localhost:8080', true],
        ['127.0.0.1', '[::1]:8080', true],
        ['127.0.0.1', 'rebind.attacker.example', false],
        ['127.0.0.1', 'localhost.attacker.example', false],
        ['127.0.0.1', '10.0.0.5:8080', false],
        ['127.0.0.1', '', false],
        ['::1', '[::1]:8080', true],
        ['::1', 'localhost', true],
        ['::1', 'attacker.example', false],
        ['localhost', '127.0.0.1:8080', true],
        ['0.0.0.0', '192.168.1.20:8080', true],
        ['0.0.0.0', '[fe80::1]:8080', true],
        ['0.0.0.0', 'localhost', true],
        ['0.0.0.0', 'rebind.attacker.example:8080', false],
        ['::', '10.1.2.3', true],
        ['::', 'rebind.attacker.example', false],
        ['10.0.0.5', '10.0.0.5:8080', true],
        ['10.0.0.5', '10.0.0.6:8080', false],
        ['10.0.0.5', 'localhost', false],
        ['ccload.lan', 'ccload.lan:8080', true],
        ['ccload.lan', 'other.lan', false],
      ];
      for (const [listen, host, ok] of table)
        t.equal(hostAllowed(host, listen, []), ok, `listen ${listen}, Host ${host}`);
      t.equal(
        hostAllowed('Proxy.Example:443', '127.0.0.1', ['proxy.example']),
        true,
        'allowed_hosts, any case',
      );
      t.equal(hostAllowed(undefined, '127.0.0.1', []), true, 'no Host at all (HTTP/1.0): no browser');
    });
  },
);

t.test('the control token opens exactly /admin/reload and /admin/config/status', async (t) => {
  const { daemon, dir, file } = await startTestDaemon(t);
  const token = readControlFile(controlFilePath(file, { RUNTIME_DIRECTORY: dir }))!.token;
  const opened: string[] = [];
  for (const { method, path, route } of everyRoute(daemon)) {
    if (route.access === 'public') continue;
    const a = await call(daemon.url, method, path, { headers: { authorization: `Bearer ${token}` } });
    if (a.status !== 401 && a.status !== 303) opened.push(`${method} ${path}`);
  }
  t.same(opened.sort(), ['GET /admin/config/status', 'POST /admin/reload']);
  t.same(
    daemon.routes
      .filter((r) => r.access === 'control')
      .map((r) => `${r.method} ${r.path}`)
      .sort(),
    ['GET /admin/config/status', 'POST /admin/reload'],
  );
});

t.test(
  'regression: a changed admin password ends every session, on reload and across a restart',
  async (t) => {
    const { daemon, dir, file } = await startTestDaemon(t);
    const status = (d: Daemon, cookie: string) => call(d.url, 'GET', '/admin/config/status', { cookie });
    const before = await login(daemon);
    t.equal((await status(daemon, before)).status, 200);

    writeFileSync(file, testConfig({ adminPassword: '${NEW_PASS:-a new password}' }));
    await daemon.app.reloader.request('api');
    t.equal(
      daemon.app.reloader.current.generation,
      2,
      'the new password applied (by this reload or the watcher)',
    );
    t.equal(
      (await status(daemon, before)).status,
      401,
      'the session of the old password ended at the reload',
    );
    const after = await login(daemon, 'a new password');
    t.equal((await status(daemon, after)).status, 200, 'a login with the new password works');
    const unchanged = await daemon.app.reloader.request('signal');
    t.equal(unchanged.result, 'unchanged');
    t.equal((await status(daemon, after)).status, 200, 'a reload that keeps the password keeps sessions');
    await daemon.close();

    // Changed while the daemon was down (e.g. CCLOAD_PASS rotated, then a restart).
    const second = await startTestDaemon(t, '', { dir, file, env: { NEW_PASS: 'rotated while down' } });
    t.equal((await status(second.daemon, after)).status, 401, 'the old session is refused after the restart');
    t.equal((await status(second.daemon, await login(second.daemon, 'rotated while down'))).status, 200);
  },
);
