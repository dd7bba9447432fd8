/**
 * `npm run demo` as a child process for a few seconds on port 0: it prints the banner with the
 * dashboard URL and password, the password logs in and `/admin/logs` shows the traffic, a cooldown
 * appears in the database while it runs, and when `--duration` ends it exits 0 having recorded
 * requests, failovers (a request answered by a later attempt) and 529s from the flaky channel.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { type Client, createClient } from '@libsql/client';
import t from 'tap';
import { readOnlyUrl } from '../../src/import/ccload-db.js';
import { login } from '../helpers/http.js';
import { tmpDir } from '../helpers/tmp.js';
import { deadline, waitFor } from '../helpers/wait.js';

const DEMO = fileURLToPath(new URL('../../src/dev/demo.js', import.meta.url));

t.test('the demo fills the dashboard with requests, failovers and cooldowns', async (t) => {
  const dir = tmpDir(t);
  const child: ChildProcess = spawn(
    process.execPath,
    [DEMO, '--port', '0', '--duration', '8s', '--rps', '10', '--seed', '7', '--dir', dir],
    { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  t.teardown(() => child.kill('SIGKILL'));
  const lines: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => lines.push(l));
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  await waitFor(() => lines.some((l) => l.includes('password:')), {
    timeoutMs: 20_000,
    message: `the banner (stderr: ${stderr})`,
  });
  t.ok(
    lines.some((l) => /ccload DEMO/.test(l)),
    'the banner says DEMO',
  );
  const m = /dashboard\s+(http:\/\/127\.0\.0\.1:\d+)\/\s+password: (\S+)/.exec(lines.join('\n'));
  t.ok(m, 'the banner shows the dashboard URL and the password');
  const url = m![1]!;
  const password = m![2]!;
  t.equal(password, 'demo');

  // The database the demo writes, read-only from here while it runs.
  const dbFile = join(dir, 'ccload.db');
  await waitFor(() => existsSync(dbFile), { timeoutMs: 10_000, message: 'the demo database' });
  const db: Client = createClient({ url: readOnlyUrl(dbFile) });
  t.teardown(() => db.close());
  let cooldown: Record<string, unknown> | undefined;
  await waitFor(
    async () => {
      const rs = await db.execute('SELECT channel, model, scope, reason FROM cooldowns');
      cooldown = rs.rows[0] as Record<string, unknown> | undefined;
      return cooldown !== undefined;
    },
    { timeoutMs: 15_000, message: 'a cooldown row' },
  );
  t.equal(cooldown?.['channel'], 'flaky-primary', 'the flaky channel cooled');

  const cookie = await login(url, password);
  t.match(cookie, /^ccload_session=./, 'the demo password logs in');
  await waitFor(
    async () => {
      const res = await fetch(`${url}/admin/logs?hours=1&limit=500`, { headers: { cookie } });
      const rows = (await res.json()) as { channel_name: string | null }[];
      return res.status === 200 && rows.some((r) => r.channel_name === 'flaky-primary');
    },
    { timeoutMs: 10_000, message: '/admin/logs showing the traffic' },
  );

  t.equal(await deadline(exited, 30_000, 'the demo to end after --duration'), 0, `exits 0 (${stderr})`);
  t.ok(
    lines.some((l) => /^\[demo\] \d+:\d\d requests \d+/.test(l)),
    'status lines are labelled [demo]',
  );
  t.ok(lines.includes('[demo] stopped'));

  const done = createClient({ url: readOnlyUrl(dbFile) });
  t.teardown(() => done.close());
  const one = async (sql: string) => (await done.execute(sql)).rows[0] as Record<string, number>;
  const totals = await one(
    `SELECT count(*) AS attempts, count(DISTINCT request_id) AS requests,
            count(DISTINCT model_requested) AS models, count(DISTINCT token) AS tokens,
            sum(status = 529) AS overloaded, sum(streamed = 1) AS streamed, sum(streamed = 0) AS plain
       FROM attempts`,
  );
  t.ok(totals['requests']! >= 20, `requests recorded: ${totals['requests']}`);
  t.ok(totals['overloaded']! >= 1, `529s from the flaky channel: ${totals['overloaded']}`);
  t.equal(totals['models'], 3, 'three models');
  t.equal(totals['tokens'], 3, 'three client tokens');
  t.ok(totals['streamed']! > 0 && totals['plain']! > 0, 'streaming and non-streaming requests');
  const failover = await one(
    "SELECT count(*) AS n FROM attempts WHERE final = 1 AND attempt > 1 AND status = 200 AND endpoint = 'messages'",
  );
  t.ok(failover['n']! >= 1, `requests answered after a failover: ${failover['n']}`);
  const channels = await done.execute(
    'SELECT DISTINCT channel FROM attempts WHERE status = 200 ORDER BY channel',
  );
  t.same(
    channels.rows.map((r) => r['channel']),
    ['flaky-primary', 'slow-backup', 'steady-relay'],
    'every channel answered something',
  );
});
