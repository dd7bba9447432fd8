/**
 * Graceful shutdown of a real daemon process: SIGTERM during open streams lets them finish within
 * `server.drain_timeout`, ends the rest with an `event: error` frame, writes every attempt to the
 * database and exits 0.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createClient } from '@libsql/client';
import t from 'tap';
import { Pool } from 'undici';
import { messageStreamEvents } from '../../src/dev/anthropic-shapes.js';
import { DEFAULT_USAGE, type FakeUpstream, startFakeUpstream } from '../../src/dev/fake-upstream.js';
import { messagesBody } from '../helpers/messages.js';
import { type Teardownable, tmpDir } from '../helpers/tmp.js';
import { deadline } from '../helpers/wait.js';

const MAIN = fileURLToPath(new URL('../../src/main.js', import.meta.url));

async function startChild(t: Teardownable, dir: string, upstream: FakeUpstream, drain: string) {
  writeFileSync(
    join(dir, 'ccload.yaml'),
    `version: 1
server: { listen: 127.0.0.1:0, database: file:state.db, drain_timeout: ${drain} }
auth: { tokens: [] }
routing: { timeouts: { first_token: 5s, idle: 5s } }
channels:
  - { name: up, url: ${upstream.url}, api_key: sk-test-0000000000 }
`,
  );
  const child = spawn(process.execPath, [MAIN, 'serve', '--config', join(dir, 'ccload.yaml')], {
    cwd: dir,
    env: { PATH: process.env['PATH'] ?? '', RUNTIME_DIRECTORY: dir },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await deadline(
    new Promise<string>((resolve) => {
      createInterface({ input: child.stdout! }).on('line', (line) => {
        if (line.includes('"event":"listening"')) resolve((JSON.parse(line) as { url: string }).url);
      });
    }),
    15_000,
    'the daemon to listen',
  );
  return { child, url, exited };
}

const body = messagesBody({ model: 'claude-test', stream: true });

/** Opens `n` streams and resolves once each has received its first bytes (committed). */
async function openStreams(url: string, n: number) {
  const pool = new Pool(url, { connections: n });
  const streams = await Promise.all(
    Array.from({ length: n }, async () => {
      const res = await pool.request({
        path: '/v1/messages',
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
      const chunks: Buffer[] = [];
      const first = new Promise<void>((resolve) => res.body.once('data', () => resolve()));
      const done = (async () => {
        try {
          for await (const c of res.body) chunks.push(c as Buffer);
        } catch {
          // a cut connection shows up below as a stream without a proper end
        }
        return Buffer.concat(chunks).toString('utf8');
      })();
      await first;
      return { status: res.statusCode, done };
    }),
  );
  return { pool, streams };
}

t.test(
  'SIGTERM during 50 open streams: each completes or gets event: error; every attempt is recorded; exit 0',
  async (t) => {
    const dir = tmpDir(t);
    const upstream = await startFakeUpstream({ record: false });
    t.teardown(() => upstream.close());
    // 40 deltas 100 ms apart: about 4 s per stream, longer than the 1 s drain timeout.
    upstream.setDefault({
      kind: 'stream',
      events: messageStreamEvents({
        model: 'claude-test',
        usage: DEFAULT_USAGE,
        chunks: Array.from({ length: 40 }, (_, i) => `w${i} `),
      }),
      delayMs: 100,
    });
    const { child, url, exited } = await startChild(t, dir, upstream, '1s');
    const { pool, streams } = await openStreams(url, 50);
    t.teardown(() => pool.destroy());
    const signalled = performance.now();
    child.kill('SIGTERM');
    const bodies = await deadline(Promise.all(streams.map((s) => s.done)), 15_000, 'every stream to end');
    const code = await deadline(exited, 15_000, 'the daemon to exit');
    const took = performance.now() - signalled;
    t.equal(code, 0, 'exit code 0');
    t.ok(took < 6000, `stopped within the drain timeout plus cleanup (${Math.round(took)} ms)`);
    let complete = 0;
    let errored = 0;
    for (const b of bodies) {
      if (b.includes('event: message_stop')) complete++;
      else if (/event: error\ndata: .*shutting down/.test(b)) errored++;
    }
    t.equal(
      complete + errored,
      50,
      `each stream completed (${complete}) or ended with event: error (${errored})`,
    );
    t.ok(errored > 0, 'streams longer than the drain timeout were ended with an error frame');

    const db = createClient({ url: `file:${join(dir, 'state.db')}` });
    t.teardown(() => db.close());
    const rs = await db.execute(
      "SELECT count(*) AS n, sum(error_class = 'CCL_SHUTDOWN') AS cut FROM attempts",
    );
    t.equal(Number(rs.rows[0]?.['n']), 50, 'all 50 attempts are in the database');
    t.equal(Number(rs.rows[0]?.['cut']), errored, 'the cut streams are recorded as CCL_SHUTDOWN');
  },
);

t.test('streams shorter than the drain timeout all complete', async (t) => {
  const dir = tmpDir(t);
  const upstream = await startFakeUpstream({ record: false });
  t.teardown(() => upstream.close());
  upstream.setDefault({
    kind: 'stream',
    events: messageStreamEvents({
      model: 'claude-test',
      usage: DEFAULT_USAGE,
      chunks: Array.from({ length: 8 }, (_, i) => `w${i} `),
    }),
    delayMs: 50,
  });
  const { child, url, exited } = await startChild(t, dir, upstream, '10s');
  const { pool, streams } = await openStreams(url, 10);
  t.teardown(() => pool.destroy());
  child.kill('SIGTERM');
  const bodies = await deadline(Promise.all(streams.map((s) => s.done)), 15_000, 'every stream to end');
  t.equal(await deadline(exited, 15_000, 'exit'), 0);
  t.equal(bodies.filter((b) => b.includes('event: message_stop')).length, 10, 'every stream completed');
});
