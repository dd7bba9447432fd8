/**
 * 10 000 requests with random client disconnects — before the body is sent, while the upstream
 * has not answered yet, in the middle of a stream, right after the answer — against ccload in its
 * own process: every upstream request whose client left is aborted (the slow answers would run
 * for 5 s otherwise), the in-flight gauges return to 0, no socket is left serving a request,
 * every attempt is in the database, and the daemon still answers normally.
 */
import http from 'node:http';
import { join } from 'node:path';
import { createClient } from '@libsql/client';
import t from 'tap';
import { messageStreamEvents } from '../../src/dev/anthropic-shapes.js';
import {
  type Behaviour,
  DEFAULT_USAGE,
  type FakeRequest,
  ok,
  okStream,
  type StreamBehaviour,
  startFakeUpstream,
} from '../../src/dev/fake-upstream.js';
import { MODEL, messagesBody } from '../helpers/messages.js';
import { prng } from '../helpers/random.js';
import { deadline, waitFor } from '../helpers/wait.js';
import {
  fdCount,
  loadHeaders,
  metricSum,
  percentile,
  reliabilityConfig,
  scrape,
  startChildDaemon,
} from './helpers.js';

const REQUESTS = 10_000;
const CONCURRENCY = 64;
/** How long the answers meant to be cut short would run if nobody aborted them. */
const SLOW_MS = 5000;
const PLAN_HEADER = 'x-reliability-plan';

/** What a client does; the upstream behaviour follows from it (header `x-reliability-plan`). */
type Plan =
  | 'complete'
  | 'complete-then-close'
  | 'gone-before-body'
  | 'gone-while-waiting'
  | 'gone-mid-stream';
const PLANS: readonly Plan[] = [
  'complete',
  'complete-then-close',
  'gone-before-body',
  'gone-while-waiting',
  'gone-mid-stream',
];

const SLOW_HEAD: Behaviour = { ...ok(MODEL), headersDelayMs: SLOW_MS };
const LONG_STREAM: StreamBehaviour = {
  kind: 'stream',
  events: messageStreamEvents({
    model: MODEL,
    usage: DEFAULT_USAGE,
    chunks: Array.from({ length: 200 }, (_, i) => `w${i} `),
  }),
  delayMs: SLOW_MS / 200,
};
const QUICK_JSON = ok(MODEL);
const QUICK_STREAM = okStream(MODEL, { delayMs: 1 });

function upstreamAnswer(rec: FakeRequest): Behaviour {
  const plan = rec.headers[PLAN_HEADER];
  if (plan === 'gone-while-waiting') return SLOW_HEAD;
  if (plan === 'gone-mid-stream') return LONG_STREAM;
  return rec.stream ? QUICK_STREAM : QUICK_JSON;
}

/** How one client request ended. */
type Ending = 'complete' | 'left' | 'error';

/**
 * One request on a fresh connection, played by `plan`; `wait` (ms) is how long a client that
 * leaves early waits first. Resolves with how it ended (never rejects).
 */
function play(url: string, plan: Plan, stream: boolean, wait: number): Promise<Ending> {
  const body = messagesBody({ stream: plan === 'gone-mid-stream' || stream, bytes: 2000 });
  return new Promise<Ending>((resolve) => {
    let done = false;
    const end = (e: Ending) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(e);
    };
    // A request that neither completes nor is abandoned within 10 s is a failure of its own.
    const timer = setTimeout(() => {
      req.destroy();
      end('error');
    }, 10_000);
    const req = http.request(`${url}/v1/messages`, {
      method: 'POST',
      agent: false,
      headers: { ...loadHeaders, 'content-length': String(body.length), [PLAN_HEADER]: plan },
    });
    req.on('error', () => end(plan.startsWith('gone') ? 'left' : 'error'));
    const leave = () => {
      req.destroy();
      end('left');
    };
    if (plan === 'gone-before-body') {
      // Half the body, then hang up: ccload is still reading it.
      req.once('socket', (s) =>
        s.once('connect', () => {
          req.write(body.subarray(0, body.length >> 1));
          setTimeout(leave, wait);
        }),
      );
      return;
    }
    req.end(body);
    if (plan === 'gone-while-waiting') setTimeout(leave, wait);
    req.on('response', (res) => {
      let chunks = 0;
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        text += d;
        if (plan === 'gone-mid-stream' && ++chunks >= 1 + (wait % 3)) leave();
      });
      res.on('end', () => {
        const good = res.statusCode === 200 && (!text.startsWith('event:') || text.includes('message_stop'));
        if (plan === 'complete-then-close') req.socket?.destroy();
        end(good ? 'complete' : 'error');
      });
      res.on('error', () => end('error'));
    });
  });
}

t.test(`${REQUESTS} requests with random client disconnects`, async (t) => {
  const upstream = await startFakeUpstream({ keepAliveTimeoutMs: 1000 });
  t.teardown(() => upstream.close());
  upstream.handle(upstreamAnswer);
  const d = await startChildDaemon(
    t,
    reliabilityConfig({ channels: [{ name: 'up', url: upstream.url }], firstToken: '10s', idle: '10s' }),
  );
  const fds0 = fdCount(d.pid);

  const rand = prng(20_261_126);
  const endings: Record<Plan, Record<Ending, number>> = Object.fromEntries(
    PLANS.map((p) => [p, { complete: 0, left: 0, error: 0 }]),
  ) as Record<Plan, Record<Ending, number>>;
  let next = 0;
  let peak = 0;
  const started = performance.now();
  await deadline(
    Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < REQUESTS) {
          next++;
          const plan = PLANS[Math.floor(rand() * PLANS.length)]!;
          const ending = await play(d.url, plan, rand() < 0.5, 1 + Math.floor(rand() * 40));
          endings[plan][ending]++;
          peak = Math.max(peak, upstream.openSockets);
        }
      }),
    ),
    90_000,
    `${REQUESTS} requests`,
  );
  const took = performance.now() - started;
  const lastClient = performance.now();
  t.comment(`${REQUESTS} requests in ${(took / 1000).toFixed(1)} s (${CONCURRENCY} at a time)`);
  for (const p of PLANS) t.comment(`  ${p}: ${JSON.stringify(endings[p])}`);
  for (const p of PLANS) t.equal(endings[p].error, 0, `${p}: no request failed`);

  // Every upstream request whose client left was aborted — long before its answer would have
  // ended on its own (SLOW_MS after it arrived).
  const cutShort = () =>
    upstream.requests.filter(
      (r) => r.headers[PLAN_HEADER] === 'gone-while-waiting' || r.headers[PLAN_HEADER] === 'gone-mid-stream',
    );
  let open: FakeRequest[] = [];
  await waitFor(
    () => {
      open = cutShort().filter((r) => !r.aborted);
      return open.length === 0;
    },
    { timeoutMs: 3000, message: 'every abandoned upstream request to be aborted' },
  ).catch((err: Error) => {
    throw new Error(`${err.message}: ${open.length} still open`);
  });
  t.ok(performance.now() - lastClient < SLOW_MS, 'aborted, not ended by the upstream itself');
  const aborted = cutShort().length;
  const abortDelays = cutShort()
    .filter((r) => r.abortedAt !== undefined)
    .map((r) => r.abortedAt! - r.receivedAt);
  t.comment(
    `${upstream.requests.length} requests reached the upstream; ${aborted} abandoned ones, all aborted ` +
      `(${upstream.requests.filter((r) => r.aborted).length} aborts seen by the upstream)`,
  );
  t.ok(aborted > 2000, 'thousands of upstream requests were abandoned mid-way');
  abortDelays.sort((a, b) => a - b);
  const maxDelay = abortDelays[abortDelays.length - 1] ?? 0;
  t.comment(
    `upstream request received → aborted: p50 ${percentile(abortDelays, 50).toFixed(1)} ms, ` +
      `p99 ${percentile(abortDelays, 99).toFixed(1)} ms, max ${maxDelay.toFixed(1)} ms`,
  );
  t.ok(maxDelay < SLOW_MS, 'each within its 5 s answer');

  // The gauges return to 0 and the upstream holds no busy socket: only idle keep-alive ones
  // (and the never-used ones undici opens after an abort, nodejs/undici#5845), bounded.
  let m = await scrape(d.url);
  await waitFor(
    async () => {
      m = await scrape(d.url);
      return metricSum(m, 'ccload_inflight_requests') === 0 && metricSum(m, 'ccload_inflight_streams') === 0;
    },
    { timeoutMs: 3000, message: 'the in-flight gauges to return to 0' },
  );
  t.pass('ccload_inflight_requests and ccload_inflight_streams are 0');
  t.comment(
    `upstream sockets: peak ${peak} while loaded, ${upstream.openSockets} after; ccload fds ${fds0} → ${fdCount(d.pid)}`,
  );
  t.ok(upstream.openSockets <= 2 * CONCURRENCY, 'upstream sockets bounded by the concurrency');

  // Every attempt is in the database: as many rows as attempts counted, each upstream request
  // among them, each complete answer a final 200.
  const attempts = metricSum(m, 'ccload_attempts_total');
  const db = createClient({ url: `file:${join(d.dir, 'state', 'ccload.db')}` });
  t.teardown(() => db.close());
  let rows = { n: 0, ok: 0, gone: 0 };
  await waitFor(
    async () => {
      const rs = await db.execute(
        'SELECT count(*) AS n, sum(status = 200 AND final = 1) AS ok, sum(status = 499) AS gone FROM attempts',
      );
      const r = rs.rows[0];
      rows = { n: Number(r?.['n']), ok: Number(r?.['ok']), gone: Number(r?.['gone']) };
      return rows.n >= attempts;
    },
    { timeoutMs: 5000, message: 'every attempt to be written' },
  );
  t.comment(`${attempts} attempts; rows: ${JSON.stringify(rows)}`);
  t.equal(rows.n, attempts, 'attempts table count == attempts made');
  t.ok(rows.n >= upstream.requests.length, 'every request the upstream saw is logged');
  const completed = endings.complete.complete + endings['complete-then-close'].complete;
  t.equal(rows.ok, completed, 'one final 200 row per complete answer');
  t.ok(rows.gone >= aborted, 'each abandoned upstream request is logged as 499');
  t.equal(metricSum(m, 'ccload_log_rows_dropped_total'), 0, 'no row dropped');

  // And the daemon still answers normally.
  for (const stream of [false, true]) {
    t.equal(
      await play(d.url, 'complete', stream, 0),
      'complete',
      `a ${stream ? 'stream' : 'JSON'} request after all that`,
    );
  }
});
