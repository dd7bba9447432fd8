/**
 * The Go ccLoad's `/web/*.html` addresses: the mapping as a table, then over real HTTP (302 with a
 * local Location, the security headers, the Host check, 404 for anything else under `/web/`).
 */
import t from 'tap';
import { SEED_PAGES, seedRedirect } from '../../src/admin/seed-redirects.js';
import { startTestDaemon } from '../helpers/daemon.js';
import { call } from '../helpers/http.js';

/** [path, query, expected Location or undefined for "not a seed page"]. */
const TABLE: [string, string, string | undefined][] = [
  ['/web', '', '/'],
  ['/web/', '', '/'],
  ['/web/index.html', '', '/'],
  ['/web/index.html', '?range=this_week', '/'],
  ['/web/trend.html', '?range=today', '/'],
  ['/web/channels.html', '?id=12', '/channels'],
  ['/web/groups.html', '', '/channels'],
  ['/web/model-test.html', '', '/channels'],
  ['/web/logs.html', '', '/logs'],
  [
    '/web/logs.html',
    '?range=today&channel_name=relay-eu&model=claude-sonnet-4-5&status_code=429&log_source=proxy',
    '/logs?channel=relay-eu&model=claude-sonnet-4-5&status=429',
  ],
  ['/web/logs.html', '?channel_name=a%20b%26c%3Dd', '/logs?channel=a+b%26c%3Dd'],
  ['/web/logs.html', '?model=', '/logs'],
  ['/web/errors.html', '', '/logs?status=error'],
  ['/web/stats.html', '?range=last_month', '/stats'],
  ['/web/tokens.html', '', '/stats'],
  ['/web/settings.html', '', '/config'],
  ['/web/login.html', '', '/login'],
  ['/web/login.html', '?redirect=%2Fweb%2Fchannels.html', '/login?next=%2Fweb%2Fchannels.html'],
  ['/web/login.html', '?error=Session%20expired', '/login'],
  // Never off-site: a login redirect that would leave is dropped (localRedirect's rules).
  ['/web/login.html', '?redirect=https%3A%2F%2Fevil.example%2F', '/login'],
  ['/web/login.html', '?redirect=%2F%2Fevil.example', '/login'],
  ['/web/login.html', '?redirect=%2F%5Cevil.example', '/login'],
  // Not seed pages.
  ['/web/unknown.html', '', undefined],
  ['/web/assets/js/logs.js', '', undefined],
  ['/web/index.htm', '', undefined],
  ['/web/INDEX.HTML', '', undefined],
  ['/web/constructor', '', undefined],
  ['/web/__proto__', '', undefined],
  ['/web/hasOwnProperty', '', undefined],
  ['/webx/index.html', '', undefined],
  ['/index.html', '', undefined],
];

t.test('every Go ccLoad page maps to ours; filters with the same meaning are kept', async (t) => {
  for (const [path, query, want] of TABLE) t.equal(seedRedirect(path, query), want, `${path}${query}`);
  for (const name of Object.keys(SEED_PAGES)) {
    const to = seedRedirect(`/web/${name}`, '')!;
    t.match(to, /^\/[a-z]*(\?|$)/, `${name} → a local page (${to})`);
  }
});

t.test('over HTTP: 302 to the page, 404 for the rest, Host check and headers as for pages', async (t) => {
  const { daemon } = await startTestDaemon(t);
  for (const [path, query, want] of TABLE) {
    if (!path.startsWith('/web/') && path !== '/web') continue;
    const a = await call(daemon.url, 'GET', `${path}${query}`);
    if (want === undefined) {
      t.equal(a.status, 404, `${path}: 404`);
      continue;
    }
    t.equal(a.status, 302, `${path}${query}: 302`);
    t.equal(a.headers['location'], want, `${path}${query} → ${want}`);
    t.equal(a.headers['x-frame-options'], 'DENY', 'security headers');
  }
  // The redirect leads on to the login like the page itself would.
  const chain = await call(daemon.url, 'GET', '/channels');
  t.equal(chain.status, 303);
  t.equal(chain.headers['location'], '/login?next=%2Fchannels');
  const foreign = await call(daemon.url, 'GET', '/web/index.html', {
    headers: { host: 'rebind.attacker.example' },
  });
  t.equal(foreign.status, 403, 'the Host check applies');
  t.equal((await call(daemon.url, 'POST', '/web/index.html', { body: {} })).status, 405);
});
