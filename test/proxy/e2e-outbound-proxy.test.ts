/**
 * End to end, outbound proxies through a REAL proxy server on loopback (tinyproxy, run in the
 * foreground from a config written to a temp dir): HTTP_PROXY for every channel, NO_PROXY
 * exceptions, a per-channel `proxy:` with credentials from a reference (masked in every view), a
 * refusing CONNECT and a dead proxy failing over to a direct channel with their own error class,
 * the channel test through the proxy. Skipped, saying why, when tinyproxy is not installed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import type { Daemon } from '../../src/daemon.js';
import type { FakeUpstream } from '../../src/dev/fake-upstream.js';
import { testEnv } from '../helpers/config.js';
import { startTestDaemon } from '../helpers/daemon.js';
import { call } from '../helpers/http.js';
import { MODEL, messagesBody } from '../helpers/messages.js';
import { type Teardownable, tmpDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import {
  anthropicErrorOf,
  attempts,
  CLIENT_TOKEN,
  channelKey,
  closedPortUrl,
  coolingScopes,
  send,
  startUpstreams,
} from './e2e-helpers.js';

const TINYPROXY = '/usr/bin/tinyproxy';

/** A free loopback port (bound and released). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A running tinyproxy; `via` counts the requests it logged as forwarded. */
interface Tinyproxy {
  url: string;
  port: number;
  log: () => string;
}

/** Starts tinyproxy on a free port (stopped in teardown). `basicAuth`: [user, password]. */
async function startTinyproxy(
  t: Teardownable,
  o: { basicAuth?: [string, string]; connectPorts?: number[] } = {},
): Promise<Tinyproxy> {
  const dir = tmpDir(t, 'ccload-tinyproxy-');
  const port = await freePort();
  const conf = join(dir, 'tinyproxy.conf');
  writeFileSync(
    conf,
    [
      `Port ${port}`,
      'Listen 127.0.0.1',
      'Timeout 30',
      'MaxClients 50',
      'Allow 127.0.0.1',
      'LogLevel Connect',
      'DisableViaHeader Yes',
      ...(o.basicAuth ? [`BasicAuth ${o.basicAuth[0]} ${o.basicAuth[1]}`] : []),
      // Without ConnectPort lines tinyproxy allows CONNECT to any port; with them, only those.
      ...(o.connectPorts ?? []).map((p) => `ConnectPort ${p}`),
      '',
    ].join('\n'),
  );
  let out = '';
  const child: ChildProcess = spawn(TINYPROXY, ['-d', '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  );
  await waitFor(
    () =>
      new Promise<boolean>((resolve) => {
        const s = net.connect(port, '127.0.0.1');
        s.once('connect', () => {
          s.destroy();
          resolve(true);
        });
        s.once('error', () => resolve(false));
      }),
    { timeoutMs: 5000, message: `tinyproxy listening on ${port} (log: ${out})` },
  );
  return { url: `http://127.0.0.1:${port}`, port, log: () => out };
}

/** Requests the upstream saw that came through tinyproxy (it connects from its own socket). */
function viaProxy(up: FakeUpstream): number {
  return up.requests.length;
}

function config(
  channels: string[],
  extra = '',
  timeouts = '{ connect: 2s, first_token: 5s, idle: 5s }',
): string {
  return `version: 1
server:
  listen: 127.0.0.1:0
  database: file:state/ccload.db
admin:
  password: \${TEST_PASS}
auth:
  tokens:
    - { name: e2e, token: ${CLIENT_TOKEN} }
routing:
  cooldown: { base: 300ms, max: 2s }
  timeouts: ${timeouts}
channels:
${channels.join('\n')}
${extra}`;
}

const channel = (name: string, url: string, priority: number, extra: string[] = []) =>
  [
    `  - name: ${name}`,
    `    url: ${url}`,
    `    api_key: ${channelKey(name)}`,
    `    priority: ${priority}`,
    ...extra.map((l) => `    ${l}`),
  ].join('\n');

/** An admin call with a fresh login. */
async function adminCall(d: Daemon, method: 'GET' | 'POST', path: string, body?: unknown) {
  const login = await call(d.url, 'POST', '/login', { body: { password: testEnv.TEST_PASS } });
  const sc = login.headers['set-cookie'];
  const cookie = String(Array.isArray(sc) ? sc[0] : sc).split(';')[0]!;
  return call(d.url, method, path, { cookie, ...(body !== undefined ? { body } : {}) });
}

if (!existsSync(TINYPROXY)) {
  t.test(
    'outbound proxies through a real proxy',
    { skip: `tinyproxy is not installed at ${TINYPROXY} (apt-get install tinyproxy)` },
    async () => {},
  );
} else {
  t.test('HTTP_PROXY carries every channel through the proxy, NO_PROXY exempts one', async (t) => {
    const proxy = await startTinyproxy(t);
    const [a, b] = await startUpstreams(t, 2);
    // NO_PROXY names b by host:port; a goes through the proxy.
    const bPort = new URL(b!.url).port;
    const { daemon } = await startTestDaemon(t, config([channel('a', a!.url, 10), channel('b', b!.url, 5)]), {
      env: { HTTP_PROXY: proxy.url, NO_PROXY: `localhost,127.0.0.1:${bPort}` },
    });
    const res = await send(daemon.url, { body: messagesBody() });
    t.equal(res.status, 200, 'answered through the proxy');
    t.equal(viaProxy(a!), 1);
    t.match(proxy.log(), new RegExp(`127\\.0\\.0\\.1:${new URL(a!.url).port}`), 'tinyproxy carried it');
    const req = a!.requests[0]!;
    t.equal(req.headers['x-api-key'], channelKey('a'), 'the channel key arrived through the proxy');
    t.notOk(req.headers['proxy-authorization'], 'nothing proxy-ish leaked upstream');

    const [ch] = daemon.app.reloader.current.channels;
    t.match(ch!.proxy, { source: 'HTTP_PROXY', shown: proxy.url });
    t.equal(daemon.app.reloader.current.channels[1]!.proxy, undefined, 'b: exempt by NO_PROXY');

    // b directly: stop the proxy-carrying channel, and b still answers while the proxy log stays put.
    a!.setDefault({ kind: 'status', status: 529 });
    const logBefore = proxy.log().length;
    const direct = await send(daemon.url, { body: messagesBody() });
    t.equal(direct.status, 200);
    t.equal(b!.requests.length, 1, 'b answered');
    await waitFor(() => proxy.log().length >= logBefore, { message: 'proxy log' });
    t.notMatch(proxy.log().slice(logBefore), new RegExp(`:${bPort}`), 'b never went through the proxy');

    // Streaming through the proxy.
    a!.setDefault({ kind: 'answer' });
    const stream = await send(daemon.url, { body: messagesBody({ stream: true }) });
    t.equal(stream.status, 200);
    t.match(stream.text(), /event: message_stop/, 'a whole SSE stream through tinyproxy');
  });

  t.test(
    'per-channel proxy with credentials from a reference: used, authenticated, masked everywhere',
    async (t) => {
      const proxy = await startTinyproxy(t, { basicAuth: ['office', 'pr0xy-s3cret-pass'] });
      const [a] = await startUpstreams(t, 1);
      const proxyUrl = `http://office:\${PROXY_PASS}@127.0.0.1:${proxy.port}`;
      const { daemon } = await startTestDaemon(
        t,
        config([channel('a', a!.url, 10, [`proxy: ${proxyUrl}`])]),
        {
          env: { PROXY_PASS: 'pr0xy-s3cret-pass' },
        },
      );
      const res = await send(daemon.url, { body: messagesBody() });
      t.equal(res.status, 200, 'through the authenticating proxy');
      t.equal(a!.requests.length, 1);
      const ch = daemon.app.reloader.current.channels[0]!;
      t.equal(ch.proxy?.source, 'channel');
      t.equal(
        ch.proxy?.shown,
        `http://…:\${PROXY_PASS}@127.0.0.1:${proxy.port}`,
        'shown as written: the literal user masked, the password as its reference',
      );

      // Nowhere an operator or a client looks holds the password.
      const channels = await adminCall(daemon, 'GET', '/admin/channels');
      t.notMatch(JSON.stringify(channels.json), /pr0xy-s3cret-pass/, 'channels API');
      t.match(
        JSON.stringify(channels.json),
        /…:\$\{PROXY_PASS\}@127\.0\.0\.1/,
        'the API shows the masked proxy',
      );
      const page = await adminCall(daemon, 'GET', '/channels');
      t.notMatch(page.text, /pr0xy-s3cret-pass/, 'channels page');
      const metrics = await adminCall(daemon, 'GET', '/metrics');
      t.notMatch(metrics.text, /pr0xy-s3cret-pass/, 'metrics');

      // Wrong credentials: tinyproxy answers the plain-HTTP request itself with a 401 page, which
      // ccload cannot tell from an upstream's 401: a key failure of that channel, never a crash.
      const wrong = await startTestDaemon(t, config([channel('a', a!.url, 10, [`proxy: ${proxyUrl}`])]), {
        env: { PROXY_PASS: 'wrong-password' },
      });
      const denied = await send(wrong.daemon.url, { body: messagesBody() });
      t.equal(denied.status, 401, "the proxy's own answer is the last answer");
      t.match(denied.text(), /tinyproxy/);
      t.equal(a!.requests.length, 1, 'nothing reached the upstream');
    },
  );

  t.test('a failing proxy fails over to a direct channel with its own error class', async (t) => {
    const [a, direct] = await startUpstreams(t, 2);
    const dead = await closedPortUrl();
    const proxy = await startTinyproxy(t, { connectPorts: [1] });
    const { daemon } = await startTestDaemon(
      t,
      config([
        channel('via-dead-proxy', a!.url, 20, [`proxy: ${dead}`]),
        // An https upstream through a proxy is a CONNECT tunnel; this proxy refuses the port.
        channel('via-refusing-proxy', 'https://127.0.0.1:8443', 10, [`proxy: ${proxy.url}`]),
        channel('direct', direct!.url, 5),
      ]),
    );
    const res = await send(daemon.url, { body: messagesBody() });
    t.equal(res.status, 200, 'the direct channel answered');
    t.equal(direct!.requests.length, 1);
    t.equal(a!.requests.length, 0);
    const rows = await attempts(daemon, { requestId: res.requestId, atLeast: 3 });
    t.same(
      rows.map((r) => [r.channel, r.errorClass]),
      [
        ['via-dead-proxy', 'CCL_PROXY_CONNECT'],
        ['via-refusing-proxy', 'CCL_PROXY_CONNECT'],
        ['direct', null],
      ],
      'each proxy failure is CCL_PROXY_CONNECT',
    );
    t.same(
      coolingScopes(daemon),
      ['channel:via-dead-proxy', 'channel:via-refusing-proxy'],
      'and cools its channel',
    );

    // Only proxied channels left: the client gets an error naming the proxy.
    const only = await startTestDaemon(
      t,
      config([channel('via-dead-proxy', a!.url, 20, [`proxy: ${dead}`])]),
    );
    const failed = await send(only.daemon.url, { body: messagesBody() });
    t.equal(failed.status, 502);
    t.match(anthropicErrorOf(failed.body), {
      type: 'api_error',
      message: /outbound proxy.*via-dead-proxy/,
    });
  });

  t.test('timeouts and cooldowns work through the proxy', async (t) => {
    const proxy = await startTinyproxy(t);
    const [slow, direct] = await startUpstreams(t, 2);
    slow!.setDefault({ kind: 'never' });
    const { daemon } = await startTestDaemon(
      t,
      config(
        [channel('slow', slow!.url, 20, [`proxy: ${proxy.url}`]), channel('direct', direct!.url, 10)],
        '',
        '{ connect: 2s, first_token: 400ms, idle: 2s }',
      ),
    );
    const res = await send(daemon.url, { body: messagesBody() });
    t.equal(res.status, 200, 'failed over after the first-token timeout');
    const rows = await attempts(daemon, { requestId: res.requestId, atLeast: 2 });
    t.same(
      rows.map((r) => [r.channel, r.errorClass]),
      [
        ['slow', 'CCL_FIRST_TOKEN_TIMEOUT'],
        ['direct', null],
      ],
    );
    t.same(coolingScopes(daemon), [`channel+model:slow|${MODEL}`], 'the proxied channel cooled');
    t.equal(slow!.requests.length, 1, 'the request reached the upstream through the proxy');
  });

  t.test('the channel test goes through the proxy', async (t) => {
    const proxy = await startTinyproxy(t);
    const [a] = await startUpstreams(t, 1);
    const { daemon } = await startTestDaemon(t, config([channel('a', a!.url, 10, [`proxy: ${proxy.url}`])]));
    const r = await adminCall(daemon, 'POST', '/admin/channels/a/test', { model: MODEL });
    t.equal(r.status, 200, JSON.stringify(r.json));
    t.ok(a!.requests.length >= 1, 'the upstream got the test request');
    t.match(proxy.log(), new RegExp(`127\\.0\\.0\\.1:${new URL(a!.url).port}`), 'through tinyproxy');
  });
}
