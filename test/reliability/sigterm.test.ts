/**
 * SIGTERM while ccload (its own process) serves a heavy mix — 60 long streams and a stream of
 * non-streaming requests, thousands of attempt rows behind it: every stream completes or ends
 * with an `event: error` frame, nothing is cut silently, ccload exits 0, and no log row is lost:
 * the database holds exactly one row per request the upstream received.
 * (test/daemon/shutdown.test.ts covers the drain semantics with 50 streams alone.)
 */
import { join } from 'node:path';
import { createClient } from '@libsql/client';
import t from 'tap';
import { messageStreamEvents } from '../../src/dev/anthropic-shapes.js';
import { DEFAULT_USAGE, type StreamBehaviour, startFakeUpstream } from '../../src/dev/fake-upstream.js';
import { MODEL, messagesBody } from '../helpers/messages.js';
import { deadline, waitFor } from '../helpers/wait.js';
import { type Planned, reliabilityConfig, startChildDaemon, startLoad } from './helpers.js';

/** 30 deltas 100 ms apart: about 3 s, longer than the 2 s drain timeout of the config. */
const LONG: StreamBehaviour = {
  kind: 'stream',
  events: messageStreamEvents({
    model: MODEL,
    usage: DEFAULT_USAGE,
    chunks: Array.from({ length: 30 }, (_, i) => `w${i} `),
  }),
  delayMs: 100,
};

/** A stream ends complete or with ccload's error frame; a request arriving while it stops gets 503. */
const streamEnd = (status: number, text: string) =>
  (status === 200 &&
    (text.includes('event: message_stop') || /event: error\ndata: .*shutting down/.test(text))) ||
  status === 503;
const jsonEnd = (status: number) => status === 200 || status === 503;

t.test('SIGTERM under load: streams end properly, exit 0, no log row lost', async (t) => {
  const upstream = await startFakeUpstream({ record: true });
  t.teardown(() => upstream.close());
  upstream.handle((rec) => (rec.stream ? LONG : undefined));
  const d = await startChildDaemon(t, reliabilityConfig({ channels: [{ name: 'up', url: upstream.url }] }));

  const streams = startLoad({
    url: d.url,
    concurrency: 60,
    plan: (): Planned => ({
      tag: 'stream',
      body: messagesBody({ stream: true, bytes: 600 }),
      accept: streamEnd,
    }),
  });
  const json = startLoad({
    url: d.url,
    concurrency: 16,
    plan: (): Planned => ({ tag: 'json', body: messagesBody({ bytes: 600 }), accept: jsonEnd }),
    paceMs: 5,
  });
  t.teardown(() => Promise.all([streams.stop(), json.stop()]));
  // The first 60 streams end after 3 s (thousands of JSON requests meanwhile) and the workers
  // start the next ones at once: once all of those reached the upstream, the signal comes; they
  // are still running when the drain timeout (2 s) ends.
  await streams.after(60, 15_000);
  await waitFor(() => upstream.requests.filter((r) => r.stream).length >= 120, {
    timeoutMs: 10_000,
    message: 'the second 60 streams to reach the upstream',
  });
  const signalled = performance.now();
  d.child.kill('SIGTERM');
  // No new requests from here on; those running end as ccload decides.
  const stopped = Promise.all([streams.stop(), json.stop()]);
  const code = await deadline(d.exited, 15_000, 'ccload to exit');
  const took = performance.now() - signalled;
  const samples = (await deadline(stopped, 15_000, 'the clients to finish')).flat();

  t.equal(code, 0, 'exit code 0');
  t.ok(took < 6000, `stopped within the drain timeout plus cleanup (${Math.round(took)} ms)`);
  // Every stream sent before the signal was running at it: each ends complete or with an error
  // frame, never cut silently.
  const running = samples.filter((s) => s.tag === 'stream' && s.at < signalled);
  const badStreams = running.filter((s) => !s.ok);
  t.same(
    badStreams.slice(0, 5).map((s) => `${s.status} ${s.error}`),
    [],
    `each of the ${running.length} streams running at SIGTERM ended complete or with event: error`,
  );
  // A request that got no answer at all never reached ccload: sent on a keep-alive connection
  // ccload was closing as idle (the usual HTTP/1.1 race), or after it stopped listening.
  const unanswered = samples.filter((s) => !s.ok && s.tag === 'json');
  t.same(
    unanswered.filter((s) => s.status !== 0).map((s) => `${s.status} ${s.error}`),
    [],
    'every JSON request answered 200 or 503, or never reached ccload',
  );
  t.comment(
    `${samples.length} requests (${unanswered.length} JSON ones refused or reset at the close); ` +
      `${upstream.requests.length} reached the upstream; exit ${Math.round(took)} ms after SIGTERM`,
  );

  const db = createClient({ url: `file:${join(d.dir, 'state', 'ccload.db')}` });
  t.teardown(() => db.close());
  const rs = await db.execute(
    "SELECT count(*) AS n, sum(error_class = 'CCL_SHUTDOWN') AS cut, sum(status = 200 AND error_class IS NULL) AS ok FROM attempts",
  );
  const row = rs.rows[0];
  const rows = Number(row?.['n']);
  t.comment(`rows: ${rows} (${Number(row?.['ok'])} ok, ${Number(row?.['cut'])} cut at shutdown)`);
  t.equal(rows, upstream.requests.length, 'one row per request the upstream received: no log row lost');
  t.ok(
    Number(row?.['cut']) > 0,
    'streams longer than the drain timeout were cut and recorded as CCL_SHUTDOWN',
  );
});
