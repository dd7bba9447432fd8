/**
 * The login link of a daemon without an admin password, against real daemons over real HTTP: it
 * is logged once and logs in on this process only; a wrong or absent token is refused and
 * throttled; a restart makes old links and their sessions worthless; the Host check applies; a
 * configured password (at start or by reload) turns the link and its sessions off.
 */
import { writeFileSync } from 'node:fs';
import t from 'tap';
import { loopbackForWildcard } from '../../src/admin/login-link.js';
import { testConfig } from '../helpers/config.js';
import { startTestDaemon } from '../helpers/daemon.js';
import { type Answer, call, cookiePair, setCookie } from '../helpers/http.js';
import type { Teardownable } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import { captureLog, type LogLine } from '../store/helpers.js';

/** A config without an admin password (the newcomer's `npm start`). */
const NO_PASSWORD = testConfig().replace(
  'admin:\n  password: ${TEST_PASS}\n',
  'admin:\n  write_back: true\n',
);

/** Starts a daemon whose log is captured; `dir` restarts on an existing folder. */
async function start(t: Teardownable, text = NO_PASSWORD, at: { dir?: string; file?: string } = {}) {
  const cap = captureLog();
  const started = await startTestDaemon(t, text, { ...at, log: cap.log });
  return { ...started, cap };
}

/** The login link of the captured log lines, and how many lines hold a token at all. */
function linkOf(lines: readonly LogLine[]): { link: string | undefined; linesWithToken: number } {
  const withToken = lines.filter((l) => JSON.stringify(l).includes('/login?token='));
  const m = /(http:\/\/\S+\/login\?token=[A-Za-z0-9_-]+)/.exec(String(withToken[0]?.msg ?? ''));
  return { link: m?.[1], linesWithToken: withToken.length };
}

/** The path and query of a link, to call on a daemon (`/login?token=…`). */
const pathOf = (link: string) => {
  const u = new URL(link);
  return u.pathname + u.search;
};

const status = (base: string, cookie: string) => call(base, 'GET', '/admin/channels', { cookie });

t.test('the link is logged once and logs in on this process; its session works like any', async (t) => {
  const { daemon, cap } = await start(t);
  const { link, linesWithToken } = linkOf(cap.lines);
  t.ok(link, 'a login link was logged');
  t.equal(linesWithToken, 1, 'exactly one log line holds the token');
  const token = new URL(link!).searchParams.get('token')!;
  t.match(token, /^[A-Za-z0-9_-]{43}$/, '256 random bits');
  t.equal(new URL(link!).origin, daemon.url, 'the link names the listen address');
  const line = cap.lines.find((l) => JSON.stringify(l).includes(token))!;
  t.equal(line.level, 40, 'logged as a warning (shown at every usual log level)');
  t.equal(JSON.stringify(line).split(token).length - 1, 1, 'the token appears once in that line');

  const page = await call(daemon.url, 'GET', '/login');
  t.equal(page.status, 200);
  t.match(page.text, /No admin password is set/);
  t.match(page.text, /login link printed in the log at start-up/);
  t.notMatch(page.text, /<input[^>]+type="password"/, 'no password field to fill in');

  const a = await call(daemon.url, 'GET', `${pathOf(link!)}&next=${encodeURIComponent('/logs?hours=6')}`);
  t.equal(a.status, 303, 'logged in');
  t.equal(a.headers['location'], '/logs?hours=6', 'to next');
  t.match(
    setCookie(a),
    /^ccload_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=86400$/,
  );
  const cookie = cookiePair(setCookie(a));
  t.equal((await status(daemon.url, cookie)).status, 200, 'the session opens the admin API');
  const dash = await call(daemon.url, 'GET', '/', { cookie });
  t.equal(dash.status, 200, 'and the dashboard');

  // A second login through the same link works while the process lives.
  const again = await call(daemon.url, 'GET', pathOf(link!));
  t.equal(again.status, 303);
  t.equal(again.headers['location'], '/');

  // Logout ends a link session like any other.
  await call(daemon.url, 'POST', '/logout', { cookie });
  t.equal((await status(daemon.url, cookie)).status, 401, 'logged out');

  // The token is in no answer: pages, API, metrics, health.
  const other = cookiePair(setCookie(again));
  const answers: Answer[] = await Promise.all([
    call(daemon.url, 'GET', '/metrics'),
    call(daemon.url, 'GET', '/health'),
    call(daemon.url, 'GET', '/', { cookie: other }),
    call(daemon.url, 'GET', '/config', { cookie: other }),
    call(daemon.url, 'GET', '/admin/config/status', { cookie: other }),
    call(daemon.url, 'GET', '/login'),
    call(daemon.url, 'GET', `/login?token=wrong&next=${encodeURIComponent(pathOf(link!))}`),
  ]);
  for (const x of answers) {
    t.notOk(x.text.includes(token), `not in ${x.status} ${x.text.slice(0, 40)}…`);
    t.notOk(JSON.stringify(x.headers).includes(token), 'nor in its headers');
  }
  t.equal(linkOf(cap.lines).linesWithToken, 1, 'logins and failures did not log it again');
});

t.test('a wrong or absent token is refused and throttled like a password', async (t) => {
  const { daemon, cap } = await start(t);
  const { link } = linkOf(cap.lines);
  const empty = await call(daemon.url, 'GET', '/login?token=');
  t.equal(empty.status, 401, 'an empty token');
  t.equal(empty.headers['set-cookie'], undefined);
  t.match(empty.text, /not valid/);
  const token = new URL(link!).searchParams.get('token')!;
  for (const bad of ['nope', `${token}x`, token.slice(0, -1)]) {
    const a = await call(daemon.url, 'GET', `/login?token=${encodeURIComponent(bad)}`);
    t.equal(a.status, 401, `${bad.slice(0, 8)}… refused`);
    t.equal(a.headers['set-cookie'], undefined);
  }
  // That was four failures; the fifth blocks the address, the right link included.
  t.equal((await call(daemon.url, 'GET', '/login?token=fifth')).status, 401);
  const blocked = await call(daemon.url, 'GET', pathOf(link!));
  t.equal(blocked.status, 429, 'throttled');
  t.ok(Number(blocked.headers['retry-after']) > 0, 'with retry-after');
  t.equal(blocked.headers['set-cookie'], undefined);
  // The password login shares the budget.
  t.equal((await call(daemon.url, 'POST', '/login', { body: { password: 'x' } })).status, 429);
  t.ok(
    cap.lines.some((l) => l.msg === "login failed: not this process's login link"),
    'failures are logged (without the token)',
  );
});

t.test('a restart invalidates the old link and the sessions it opened', async (t) => {
  const first = await start(t);
  const oldLink = linkOf(first.cap.lines).link!;
  const cookie = cookiePair(setCookie(await call(first.daemon.url, 'GET', pathOf(oldLink))));
  t.equal((await status(first.daemon.url, cookie)).status, 200);
  await first.daemon.close();

  const second = await start(t, NO_PASSWORD, { dir: first.dir, file: first.file });
  const newLink = linkOf(second.cap.lines).link!;
  t.not(newLink, oldLink, 'a new token at every start');
  t.equal((await call(second.daemon.url, 'GET', pathOf(oldLink))).status, 401, 'the old link is refused');
  t.equal((await status(second.daemon.url, cookie)).status, 401, "the old link's session ended");
  t.equal((await call(second.daemon.url, 'GET', pathOf(newLink))).status, 303, 'the new link works');
});

t.test('the Host check applies to the link', async (t) => {
  const { daemon, cap } = await start(t);
  const { link } = linkOf(cap.lines);
  const rebound = await call(daemon.url, 'GET', pathOf(link!), {
    headers: { host: 'rebind.attacker.example' },
  });
  t.equal(rebound.status, 403, 'an unknown Host is refused before the token is looked at');
  t.equal(rebound.headers['set-cookie'], undefined);
  const local = await call(daemon.url, 'GET', pathOf(link!), { headers: { host: 'localhost:1234' } });
  t.equal(local.status, 303, 'a loopback name passes for a loopback listen');
  t.equal(loopbackForWildcard('http://0.0.0.0:8080'), 'http://127.0.0.1:8080');
  t.equal(loopbackForWildcard('http://[::]:8080'), 'http://[::1]:8080');
  t.equal(loopbackForWildcard('http://10.1.2.3:8080'), 'http://10.1.2.3:8080');
});

t.test('with a password configured no link is logged and the link route refuses', async (t) => {
  const { daemon, cap } = await start(t, testConfig());
  t.equal(linkOf(cap.lines).linesWithToken, 0, 'no link in the log');
  const a = await call(daemon.url, 'GET', '/login?token=anything');
  t.equal(a.status, 403);
  t.match(a.text, /an admin password is configured/);
  t.equal(a.headers['set-cookie'], undefined);
  const page = await call(daemon.url, 'GET', '/login');
  t.match(page.text, /type="password"/, 'the password form');
  t.notMatch(page.text, /No admin password/);
});

t.test('a password set by reload ends link sessions and turns the link off', async (t) => {
  const { daemon, file, cap } = await start(t);
  const { link } = linkOf(cap.lines);
  const cookie = cookiePair(setCookie(await call(daemon.url, 'GET', pathOf(link!))));
  t.equal((await status(daemon.url, cookie)).status, 200);

  writeFileSync(file, testConfig());
  await waitFor(() => daemon.app.reloader.current.adminPassword !== undefined, {
    timeoutMs: 10_000,
    message: 'the password reload applied',
  });
  t.equal((await status(daemon.url, cookie)).status, 401, 'the link session ended');
  t.equal((await call(daemon.url, 'GET', pathOf(link!))).status, 403, 'the link is off');

  // Removing the password again: the same link works again, and is not logged a second time.
  writeFileSync(file, NO_PASSWORD);
  await waitFor(() => daemon.app.reloader.current.adminPassword === undefined, {
    timeoutMs: 10_000,
    message: 'the password removal applied',
  });
  t.equal((await status(daemon.url, cookie)).status, 401, 'the old session stays ended');
  t.equal((await call(daemon.url, 'GET', pathOf(link!))).status, 303, 'the link works again');
  t.equal(linkOf(cap.lines).linesWithToken, 1, 'still logged once');
});

t.test('a password removed by reload announces the link then', async (t) => {
  const { daemon, file, cap } = await start(t, testConfig());
  t.equal(linkOf(cap.lines).linesWithToken, 0);
  writeFileSync(file, NO_PASSWORD);
  await waitFor(() => linkOf(cap.lines).linesWithToken === 1, {
    timeoutMs: 10_000,
    message: 'the link logged on reload',
  });
  const { link } = linkOf(cap.lines);
  t.equal((await call(daemon.url, 'GET', pathOf(link!))).status, 303);
});
