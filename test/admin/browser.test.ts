/**
 * The dashboard in headless Chromium (Debian's chromium, driven by playwright-core): log in,
 * disable a channel and see ccload.yaml change by exactly that line with every comment intact,
 * run into a conflicting edit made on disk (412, clear message), break the file on disk and see
 * the red banner with line:col, log out.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { type Browser, chromium, type Page } from 'playwright-core';
import t from 'tap';
import { testEnv } from '../helpers/config.js';
import { startTestDaemon } from '../helpers/daemon.js';
import { deadline } from '../helpers/wait.js';

const CHROMIUM = '/usr/bin/chromium';
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const CONFIG = `# ccload config under test — every comment must survive a dashboard edit
version: 1
server:
  listen: 127.0.0.1:0
  database: file:state/ccload.db   # runtime state only

admin:
  password: \${TEST_PASS}

# Upstreams, most preferred first.
channels:
  - name: primary   # the main account
    url: http://127.0.0.1:9
    api_key: \${TEST_KEY}
    priority: 10
    enabled: true   # toggled by the test

  - name: backup
    url: http://127.0.0.1:9
    api_key: \${TEST_KEY}
    priority: 5
`;

/** Lines that differ between two texts (same line count expected). */
function changedLines(a: string, b: string): [string, string][] {
  const x = a.split('\n');
  const y = b.split('\n');
  const out: [string, string][] = [];
  for (let i = 0; i < Math.max(x.length, y.length); i++)
    if (x[i] !== y[i]) out.push([x[i] ?? '', y[i] ?? '']);
  return out;
}

t.test(
  'the dashboard in a real browser',
  { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (.ci/run installs it)` },
  async (t) => {
    const { daemon, file } = await startTestDaemon(t, CONFIG);
    const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
    t.teardown(() => browser.close());
    const page: Page = await browser.newPage();
    page.setDefaultTimeout(10_000);

    // Log in.
    await page.goto(`${daemon.url}/channels`);
    t.match(page.url(), /\/login\?next=%2Fchannels$/, 'anonymous visitors are sent to the login page');
    await page.fill('#password', 'wrong');
    await page.click('button[type=submit]');
    t.match(await page.textContent('.banner-error'), 'wrong password');
    await page.fill('#password', testEnv.TEST_PASS);
    await Promise.all([page.waitForURL(`${daemon.url}/channels`), page.click('button[type=submit]')]);
    t.match(await page.textContent('h1'), 'Channels');
    const cookies = await page.context().cookies();
    const session = cookies.find((c) => c.name === 'ccload_session');
    t.ok(
      session?.httpOnly && session.sameSite === 'Strict',
      'the session cookie is HttpOnly and SameSite=Strict',
    );

    // Disable a channel: exactly one line of the file changes, every comment stays.
    const before = readFileSync(file, 'utf8');
    const row = page.locator('tr', { hasText: 'primary' });
    await row.getByRole('button', { name: 'Disable' }).click();
    await page.locator('.notice-ok', { hasText: 'Disabled primary' }).waitFor();
    const after = readFileSync(file, 'utf8');
    t.same(changedLines(before, after), [
      ['    enabled: true   # toggled by the test', '    enabled: false  # toggled by the test'],
    ]);
    for (const comment of before.split('\n').filter((l) => l.includes('#'))) {
      t.ok(after.includes(comment.split('#')[1]!), `comment kept: ${comment.trim()}`);
    }
    t.equal(daemon.app.reloader.current.channels[0]?.enabled, false, 'the daemon serves the edit');
    await page.locator('tr', { hasText: 'primary' }).getByText('disabled').waitFor();

    // A conflicting change on disk: the page still carries the old hash → 412 with a clear message.
    writeFileSync(file, after.replace('priority: 5', 'priority: 6'));
    await deadline(
      new Promise<void>((resolve) => {
        const on = () => {
          if (daemon.app.reloader.current.channels[1]?.priority === 6) {
            daemon.app.reloader.events.off('outcome', on);
            resolve();
          }
        };
        daemon.app.reloader.events.on('outcome', on);
      }),
      5000,
      'the daemon to pick up the change on disk',
    );
    const onDisk = readFileSync(file, 'utf8');
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/enable')),
      page.locator('tr', { hasText: 'primary' }).getByRole('button', { name: 'Enable' }).click(),
    ]);
    t.equal(response.status(), 412, 'the stale edit is refused with 412');
    const conflict = page.locator('.notice-error', { hasText: 'Conflict' });
    await conflict.waitFor();
    t.match(await conflict.textContent(), /changed since this page was loaded/);
    t.equal(readFileSync(file, 'utf8'), onDisk, "nothing was written over the other person's change");

    // Break the file on disk: the red banner names line:col, the old config keeps serving.
    const rejected = deadline(
      new Promise<void>((resolve) =>
        daemon.app.reloader.events.on('outcome', (o) => {
          if (o.result === 'rejected') resolve();
        }),
      ),
      5000,
      'the broken file to be rejected',
    );
    writeFileSync(file, onDisk.replace('    priority: 6', '    priority: six'));
    await rejected;
    await page.goto(`${daemon.url}/config`);
    const red = page.locator('#config-banner.banner-error');
    await red.waitFor();
    t.match(await red.textContent(), /ccload\.yaml:\d+:\d+/);
    t.match(await red.textContent(), /channels\[1\]\.priority/);
    t.equal(daemon.app.reloader.current.channels[1]?.priority, 6, 'the last good config keeps serving');
    t.ok(await page.locator('pre.yaml .err-line').count(), 'the broken line is highlighted in the listing');

    // Log out.
    await Promise.all([page.waitForURL(/\/login/), page.getByRole('button', { name: 'Log out' }).click()]);
    await page.goto(`${daemon.url}/channels`);
    t.match(page.url(), /\/login/, 'after logout the dashboard asks for the password again');
  },
);
