/**
 * The HTTP server's client-side limits (`server.headers_timeout`, `request_timeout`,
 * `keep_alive_timeout`, `max_connections`) against a real daemon and raw sockets: a client that
 * never finishes its headers is cut off, connections beyond the cap are closed as they arrive, and
 * a stream that lasts longer than the request timeout still completes.
 */
import { writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import t from 'tap';
import { loadConfigFile } from '../../src/config/load.js';
import { okStream } from '../../src/dev/fake-upstream.js';
import { testConfig } from '../helpers/config.js';
import { startTestDaemon } from '../helpers/daemon.js';
import { MODEL } from '../helpers/messages.js';
import { tmpDir } from '../helpers/tmp.js';
import {
  claudeCode,
  proxyConfig,
  send,
  sseEvents,
  startProxy,
  startUpstreams,
} from '../proxy/e2e-helpers.js';
import { captureLog } from '../store/helpers.js';

/** A config whose `server` section has these extra lines. */
const withServer = (lines: string, text = testConfig()) =>
  text.replace('  database: file:state/ccload.db\n', `  database: file:state/ccload.db\n${lines}`);

/** Opens a socket and resolves once it is connected. */
function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

/** Resolves with what the server sent and when the socket closed (ms after `since`). */
function closed(s: Socket, since: number): Promise<{ ms: number; data: string }> {
  let data = '';
  s.on('data', (c: Buffer) => {
    data += c.toString('latin1');
  });
  s.on('error', () => {});
  return new Promise((resolve) => s.once('close', () => resolve({ ms: performance.now() - since, data })));
}

t.test(
  'regression: a socket sending half a header line is closed within server.headers_timeout',
  async (t) => {
    const { daemon } = await startTestDaemon(
      t,
      withServer('  headers_timeout: 300ms\n  request_timeout: 1s\n'),
    );
    const port = Number(new URL(daemon.url).port);

    const half = await open(port);
    const start = performance.now();
    half.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaa');
    const silent = await open(port);
    const [a, b] = await Promise.all([closed(half, start), closed(silent, start)]);
    t.ok(a.ms >= 250 && a.ms < 3000, `half a header line: closed after ${a.ms.toFixed(0)} ms`);
    t.match(a.data, /^HTTP\/1\.1 408 /, 'with a 408');
    t.ok(b.ms < 3000, `a connection that sends nothing: closed after ${b.ms.toFixed(0)} ms`);

    // A body that never completes is cut at request_timeout.
    const body = await open(port);
    const bodyStart = performance.now();
    body.write(
      'POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"pa',
    );
    const c = await closed(body, bodyStart);
    t.ok(c.ms >= 900 && c.ms < 4000, `an unfinished body: closed after ${c.ms.toFixed(0)} ms`);
    t.equal(daemon.server.headersTimeout, 300);
    t.equal(daemon.server.requestTimeout, 1000);
  },
);

t.test('regression: connections beyond server.max_connections are refused, counted and logged', async (t) => {
  const cap = captureLog();
  const { daemon } = await startTestDaemon(
    t,
    withServer('  max_connections: 3\n  keep_alive_timeout: 30s\n'),
    { log: cap.log },
  );
  const port = Number(new URL(daemon.url).port);
  const held = await Promise.all([open(port), open(port), open(port)]);
  t.teardown(() => {
    for (const s of held) s.destroy();
  });
  const extra = connect(port, '127.0.0.1');
  const start = performance.now();
  const r = await closed(extra, start);
  t.equal(r.data, '', 'the fourth connection got no answer');
  t.ok(r.ms < 3000, `and was closed at once (${r.ms.toFixed(0)} ms)`);
  // Node emits 'drop' before it closes the socket, so the line is there once the client saw the close.
  const warning = cap.lines.find((l) => String(l.msg).includes('server.max_connections (3) are open'));
  t.match(warning, { event: 'connections_dropped', dropped: 1, max_connections: 3 }, 'said in the log');
  // A second refusal within the minute is counted but not logged again.
  const again = connect(port, '127.0.0.1');
  await closed(again, start);

  // The held ones still work.
  const first = held[0]!;
  const answer = closed(first, start);
  first.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
  t.match((await answer).data, /^HTTP\/1\.1 200 /, 'a connection inside the cap is served');
  t.equal(daemon.server.maxConnections, 3);
  t.equal(daemon.server.keepAliveTimeout, 30_000);
  t.equal(cap.count('warn', 'server.max_connections'), 1, 'one warning a minute at most');
  const second = held[1]!;
  const scraped = closed(second, start);
  second.write('GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
  t.match((await scraped).data, /^ccload_connections_dropped_total 2$/m, 'both counted');
});

t.test('a stream longer than server.request_timeout still completes', async (t) => {
  const [up] = await startUpstreams(t, 1);
  const text = withServer(
    '  headers_timeout: 200ms\n  request_timeout: 400ms\n',
    proxyConfig({ channels: [{ name: 'a', url: up!.url }] }),
  );
  const { url, daemon } = await startProxy(t, text);
  t.equal(daemon.server.requestTimeout, 400);
  up!.enqueue(okStream(MODEL, { text: 'one two three four five six seven eight nine ten', delayMs: 150 }));
  const req = claudeCode(MODEL, true);
  const res = await send(url, { headers: req.headers, body: req.body });
  t.equal(res.status, 200);
  t.notOk(res.broken, 'not cut');
  const lasted = res.endedAt - res.sentAt;
  t.ok(lasted > 3 * 400, `the stream lasted ${lasted.toFixed(0)} ms, over 3× the request timeout`);
  t.equal(sseEvents(res.body).at(-1)?.event, 'message_stop', 'complete');
});

t.test('the limits apply on reload', async (t) => {
  const { daemon, file } = await startTestDaemon(t);
  t.same(
    [daemon.server.headersTimeout, daemon.server.requestTimeout, daemon.server.keepAliveTimeout],
    [30_000, 300_000, 65_000],
    'the documented defaults',
  );
  t.equal(daemon.server.maxConnections, 1024);
  writeFileSync(
    file,
    withServer(
      '  headers_timeout: 2s\n  request_timeout: 20s\n  keep_alive_timeout: 5s\n  max_connections: 7\n',
    ),
  );
  await daemon.app.reloader.request('api');
  t.equal(daemon.app.reloader.current.generation, 2);
  t.same(
    [daemon.server.headersTimeout, daemon.server.requestTimeout, daemon.server.keepAliveTimeout],
    [2000, 20_000, 5000],
  );
  t.equal(daemon.server.maxConnections, 7);
});

t.test('the limits are validated: headers_timeout ≤ request_timeout, no zero', async (t) => {
  const dir = tmpDir(t);
  for (const [lines, message] of [
    [
      '  headers_timeout: 10s\n  request_timeout: 5s\n',
      /headers_timeout: must not be longer than server\.request_timeout/,
    ],
    ['  request_timeout: 0\n', /request_timeout: must be more than 0/],
    ['  max_connections: 0\n', /max_connections: /],
    ['  allowed_hosts: ["https://x.example/"]\n', /allowed_hosts\[0\]: expected a host name/],
  ] as const) {
    const file = join(dir, 'ccload.yaml');
    writeFileSync(file, withServer(lines));
    const r = await loadConfigFile({
      path: file,
      env: { TEST_KEY: 'k', TEST_PASS: 'p' },
      generation: 1,
      source: 'startup',
      now: 0,
    });
    t.notOk(r.ok, lines.trim());
    if (!r.ok) t.match(r.errors.map((e) => `${e.path}: ${e.message}`).join('\n'), message);
  }
});
