/**
 * The read side against a hand-computed fixture: 31 attempts at chosen times, channels, models,
 * tokens, statuses and usage, written through the LogWriter (so the rollups are built the way the
 * daemon builds them), then the log page, stats, trend, usage and summary checked number by number
 * with a manual clock; plus the pure window arithmetic.
 */
import t, { type Test } from 'tap';
import type { AttemptRecord } from '../../src/store/attempt.js';
import type { Database } from '../../src/store/db.js';
import { LogWriter } from '../../src/store/log-writer.js';
import {
  coverWindow,
  hoursWindow,
  parseStatusFilter,
  queryLogs,
  queryStats,
  querySummary,
  queryTrend,
  queryUsage,
  type Segment,
  trendBuckets,
} from '../../src/store/queries.js';
import { MINUTE_ROLLUP_KEEP_MS } from '../../src/store/retention.js';
import { prng } from '../helpers/random.js';
import { openTestDb, sampleAttempt } from './helpers.js';

const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
/** 2026-03-10 12:30:15 UTC. */
const NOW = Date.UTC(2026, 2, 10, 12, 30, 15);
const at = (iso: string) => Date.parse(iso);

const A = 'chan-a';
const B = 'chan-b';
/** Named so that M1 sorts before M2, as the stats are ordered. */
const M1 = 'claude-haiku-4';
const M2 = 'claude-sonnet-4';

/** An attempt `minutesAgo` before NOW, with no usage unless given. */
function rec(name: string, minutesAgo: number, over: Partial<AttemptRecord>): AttemptRecord {
  return sampleAttempt(0, {
    ts: NOW - minutesAgo * MIN,
    requestId: name,
    token: null,
    modelRequested: M1,
    modelSent: M1,
    channel: A,
    status: 200,
    errorClass: null,
    attempt: 1,
    final: true,
    ttfbMs: null,
    durationMs: null,
    inputTokens: null,
    outputTokens: null,
    cacheCreationTokens: null,
    cacheReadTokens: null,
    costUsd: null,
    ...over,
  });
}

const usage = (input: number, output: number, cost: number, cacheCreation = 0, cacheRead = 0) => ({
  inputTokens: input,
  outputTokens: output,
  cacheCreationTokens: cacheCreation,
  cacheReadTokens: cacheRead,
  costUsd: cost,
});

/**
 * The fixture. Times relative to NOW = 12:30:15:
 * a1 12:25:15 A/M1 alice 200 final, usage 100/50/10/20 $0.01, 1000 ms, ttfb 200
 * a2 12:20:15 A/M1 bob 529 not final (attempt 1 of a failover), 300 ms
 * a2#2 12:20:16 B/M1 bob 200 final (its attempt 2), usage 200/100 $0.02, 2000 ms, ttfb 400
 * a4 12:10:15 B/M2 alice 429 final (no failover left), 50 ms
 * a5 11:25:15 A/M2 no token 200 final, usage 1000/500 $0.1, 800 ms, ttfb 100
 * a6 09:30:15 A/M1 alice status 0 (connect error) not final, 10 s
 * a6#2 09:30:16 A/M1 alice 200 final (its attempt 2), usage 10/10 $0.001, 500 ms, ttfb 50
 * a8 yesterday 11:30:15 B/M1 bob 200 final, usage 5000/5000 $1
 * a9 12:28:15 A/M2 alice 499 not final (the client went away)
 * a10 12:29:15 B/M1 alice 200 final count_tokens, 30 ms, no usage
 * c0..c19 at 12:00:15 − i h: B/M2 carol 200 final, usage i/2i $0.001·i, (i+1)·100 ms, ttfb (i+1)·10
 */
function fixture(): AttemptRecord[] {
  const rows = [
    rec('a1', 5, {
      token: 'alice',
      ...usage(100, 50, 0.01, 10, 20),
      durationMs: 1000,
      ttfbMs: 200,
    }),
    rec('a2', 10, {
      token: 'bob',
      status: 529,
      errorClass: 'overloaded',
      final: false,
      durationMs: 300,
      ttfbMs: 300,
    }),
    rec('a2', 10 - 1 / 60, {
      channel: B,
      token: 'bob',
      attempt: 2,
      ...usage(200, 100, 0.02),
      durationMs: 2000,
      ttfbMs: 400,
    }),
    rec('a4', 20, {
      channel: B,
      modelRequested: M2,
      token: 'alice',
      status: 429,
      errorClass: 'rate_limit',
      durationMs: 50,
    }),
    rec('a5', 65, { modelRequested: M2, ...usage(1000, 500, 0.1), durationMs: 800, ttfbMs: 100 }),
    rec('a6', 180, {
      token: 'alice',
      status: 0,
      errorClass: 'CCL_UPSTREAM_CONNECT',
      final: false,
      durationMs: 10_000,
    }),
    rec('a6', 180 - 1 / 60, {
      token: 'alice',
      attempt: 2,
      ...usage(10, 10, 0.001),
      durationMs: 500,
      ttfbMs: 50,
    }),
    rec('a8', 25 * 60, { channel: B, token: 'bob', ...usage(5000, 5000, 1), durationMs: 700, ttfbMs: 70 }),
    rec('a9', 2, {
      modelRequested: M2,
      token: 'alice',
      status: 499,
      errorClass: 'CCL_CLIENT_GONE',
      final: false,
      durationMs: 100,
    }),
    rec('a10', 1, {
      channel: B,
      token: 'alice',
      endpoint: 'count_tokens',
      durationMs: 30,
      ttfbMs: 30,
      streamed: false,
    }),
  ];
  for (let i = 0; i < 20; i++) {
    rows.push(
      rec(`c${i}`, 30 + i * 60, {
        channel: B,
        modelRequested: M2,
        token: 'carol',
        ...usage(i, 2 * i, 0.001 * i),
        durationMs: (i + 1) * 100,
        ttfbMs: (i + 1) * 10,
      }),
    );
  }
  return rows;
}

/** A database holding the fixture, written in a few uneven LogWriter flushes. */
async function fixtureDb(t: Test): Promise<Database> {
  const db = await openTestDb(t);
  const w = new LogWriter(db, { rollups: true, batchRows: 7, rowsPerStatement: 3 });
  for (const r of fixture()) w.enqueue(r);
  await w.flush();
  t.equal(w.stats().written, 30, 'all fixture rows written');
  await w.close();
  return db;
}

const close = (a: number, b: number) => Math.abs(a - b) < 1e-9;

t.test('pure: hoursWindow, trendBuckets, parseStatusFilter', async (t) => {
  t.same(hoursWindow(1, NOW), { from: at('2026-03-10T11:31:00Z'), to: at('2026-03-10T12:31:00Z') });
  t.same(hoursWindow(24, NOW).from, at('2026-03-09T12:31:00Z'));
  t.same(trendBuckets(1, 5, NOW), {
    start: at('2026-03-10T11:35:00Z'),
    end: at('2026-03-10T12:35:00Z'),
    size: 5 * MIN,
    count: 12,
  });
  t.same(trendBuckets(48, 1440, NOW), {
    start: at('2026-03-09T00:00:00Z'),
    end: at('2026-03-11T00:00:00Z'),
    size: DAY,
    count: 2,
  });
  t.equal(trendBuckets(1, 7, NOW).count, 9, '⌈60 / 7⌉ buckets');
  t.same(parseStatusFilter('429'), { kind: 'code', code: 429 });
  t.same(parseStatusFilter('0'), { kind: 'code', code: 0 });
  t.same(parseStatusFilter('5XX'), { kind: 'class', class: 5 });
  t.same(parseStatusFilter(' error '), { kind: 'error' });
  for (const bad of ['', 'abc', '6xx', '2000', '-1', '4x', 'errors'])
    t.equal(parseStatusFilter(bad), undefined, bad);
});

t.test('pure: coverWindow cuts a window into days, hours and edge minutes', async (t) => {
  const check = (from: number, to: number, now: number, expected: [string, string, string][]) => {
    const segs = coverWindow(from, to, now);
    t.same(
      segs.map((s) => [s.tier, new Date(s.from).toISOString(), new Date(s.to).toISOString()]),
      expected.map(([tier, a, b]) => [tier, `${a}.000Z`, `${b}.000Z`]),
    );
    return segs;
  };
  const w1 = hoursWindow(1, NOW);
  check(w1.from, w1.to, NOW, [['minute', '2026-03-10T11:31:00', '2026-03-10T12:31:00']]);
  const w24 = hoursWindow(24, NOW);
  check(w24.from, w24.to, NOW, [
    ['minute', '2026-03-09T12:31:00', '2026-03-09T13:00:00'],
    ['hour', '2026-03-09T13:00:00', '2026-03-10T12:00:00'],
    ['minute', '2026-03-10T12:00:00', '2026-03-10T12:31:00'],
  ]);
  // Within one hour, not crossing a boundary.
  check(at('2026-03-10T12:10:00Z'), at('2026-03-10T12:31:00Z'), NOW, [
    ['minute', '2026-03-10T12:10:00', '2026-03-10T12:31:00'],
  ]);
  // 30 days: the old edge is older than the minute rollups, so its hour is read whole.
  const w30 = hoursWindow(30 * 24, NOW);
  check(w30.from, w30.to, NOW, [
    ['hour', '2026-02-08T12:00:00', '2026-02-08T13:00:00'],
    ['hour', '2026-02-08T13:00:00', '2026-02-09T00:00:00'],
    ['day', '2026-02-09T00:00:00', '2026-03-10T00:00:00'],
    ['hour', '2026-03-10T00:00:00', '2026-03-10T12:00:00'],
    ['minute', '2026-03-10T12:00:00', '2026-03-10T12:31:00'],
  ]);

  // Property: for windows younger than the minute rollups' retention, the segments tile [from, to)
  // exactly, each aligned to its tier.
  const rnd = prng(7);
  const size = { minute: MIN, hour: HOUR, day: DAY } as const;
  for (let i = 0; i < 500; i++) {
    const to = NOW - (NOW % MIN) - Math.floor((rnd() * 3 * DAY) / MIN) * MIN;
    const from = to - (1 + Math.floor((rnd() * 4 * DAY) / MIN)) * MIN;
    const segs: Segment[] = coverWindow(from, to, NOW);
    const sorted = [...segs].sort((x, y) => x.from - y.from);
    let cursor = from;
    let ok = true;
    for (const s of sorted) {
      ok &&= s.from === cursor && s.to > s.from && s.from % size[s.tier] === 0 && s.to % size[s.tier] === 0;
      cursor = s.to;
    }
    if (!(ok && cursor === to)) {
      t.fail(`window ${from}..${to} covered as ${JSON.stringify(segs)}`);
      return;
    }
  }
  t.pass('500 random windows tiled exactly');
  // Older than the minute horizon: whole hours, never short of the window.
  const old = NOW - MINUTE_ROLLUP_KEEP_MS - 5 * DAY;
  const segs = coverWindow(old + 17 * MIN, NOW - (NOW % MIN) + MIN, NOW);
  t.notOk(
    segs.some((s) => s.tier === 'minute' && s.from < NOW - MINUTE_ROLLUP_KEEP_MS),
    'no minute segment past the retention of minute rollups',
  );
  t.ok(Math.min(...segs.map((s) => s.from)) <= old + 17 * MIN, 'covers the old edge');
});

t.test('log page: newest first, seed fields, filters, windows, limit/offset/total', async (t) => {
  const db = await fixtureDb(t);
  const ids = async (q: Parameters<typeof queryLogs>[1]) => {
    const page = await queryLogs(db, q, NOW);
    return { names: page.entries.map((e) => `${e.request_id}#${e.attempt}`), total: page.total };
  };
  const base = { hours: 24, limit: 100, offset: 0 };
  t.same(await ids({ ...base, hours: 1 }), {
    names: ['a10#1', 'a9#1', 'a1#1', 'a2#2', 'a2#1', 'a4#1', 'c0#1'],
    total: 7,
  });
  t.equal((await ids(base)).total, 29, '24 h: everything but a8');
  t.equal((await ids({ ...base, hours: 48 })).total, 30);
  t.same((await ids({ ...base, channel: A })).names, ['a9#1', 'a1#1', 'a2#1', 'a5#1', 'a6#2', 'a6#1']);
  t.equal((await ids({ ...base, model: M2 })).total, 23);
  t.same((await ids({ ...base, hours: 48, token: 'bob' })).names, ['a2#2', 'a2#1', 'a8#1']);
  t.equal((await ids({ ...base, status: { kind: 'class', class: 2 } })).total, 25);
  t.same((await ids({ ...base, status: { kind: 'error' } })).names, ['a9#1', 'a2#1', 'a4#1', 'a6#1']);
  t.same((await ids({ ...base, status: { kind: 'code', code: 429 } })).names, ['a4#1']);
  t.same((await ids({ ...base, status: { kind: 'class', class: 5 } })).names, ['a2#1']);
  t.same((await ids({ ...base, status: { kind: 'class', class: 4 } })).names, ['a9#1', 'a4#1']);
  t.same((await ids({ ...base, status: { kind: 'code', code: 0 } })).names, ['a6#1']);
  t.same(await ids({ ...base, channel: A, model: M2, token: 'alice', status: { kind: 'error' } }), {
    names: ['a9#1'],
    total: 1,
  });
  t.same(await ids({ ...base, channel: 'nope' }), { names: [], total: 0 });

  const first = await ids({ ...base, limit: 5 });
  t.same(
    first,
    { names: ['a10#1', 'a9#1', 'a1#1', 'a2#2', 'a2#1'], total: 29 },
    'a full page still counts all',
  );
  t.same(await ids({ ...base, limit: 5, offset: 25 }), {
    names: ['c16#1', 'c17#1', 'c18#1', 'c19#1'],
    total: 29,
  });
  t.same(await ids({ ...base, limit: 5, offset: 40 }), { names: [], total: 29 }, 'past the end');

  const [a1] = (await queryLogs(db, { ...base, hours: 1, limit: 3 }, NOW)).entries.slice(2);
  t.same(a1, {
    id: a1!.id,
    time: '2026-03-10T12:25:15.000Z',
    model: M1,
    channel_name: A,
    status_code: 200,
    message: '',
    duration: 1,
    is_streaming: true,
    first_byte_time: 0.2,
    request_id: 'a1',
    token: 'alice',
    endpoint: 'messages',
    model_sent: M1,
    key_fp: '…abcd',
    error_class: null,
    attempt: 1,
    final: true,
    input_tokens: 100,
    output_tokens: 50,
    cache_creation_tokens: 10,
    cache_read_tokens: 20,
    cost_usd: 0.01,
    session_fp: null,
    affinity: null,
    cache_creation_1h_tokens: null,
    compaction_input_tokens: null,
    compaction_output_tokens: null,
    web_search_requests: null,
    speed: null,
    events_dropped: null,
    stop_synthesised: false,
    cache_miss_reason: null,
  });
  const [a2] = (await queryLogs(db, { ...base, status: { kind: 'code', code: 529 } }, NOW)).entries;
  t.match(a2, {
    message: 'overloaded',
    error_class: 'overloaded',
    final: false,
    input_tokens: null,
    cost_usd: null,
  });
});

t.test('stats per channel × model: attempts, tokens on the answering attempt only, latency', async (t) => {
  const db = await fixtureDb(t);
  const stats = async (q: Parameters<typeof queryStats>[1]) => await queryStats(db, q, NOW);

  t.same(await stats({ hours: 1 }), [
    {
      channel_name: A,
      model: M1,
      success: 1,
      error: 1,
      total: 2,
      requests: 1,
      success_rate: 0.5,
      input_tokens: 100,
      output_tokens: 50,
      cache_creation_tokens: 10,
      cache_read_tokens: 20,
      cost_usd: 0.01,
      // 1000 ms falls in [862, 1024): reported as √(862·1023) ≈ 939; 200 ms in [182, 216) → 198.
      cache_creation_1h_tokens: 0,
      compaction_input_tokens: 0,
      compaction_output_tokens: 0,
      web_search_requests: 0,
      events_dropped: 0,
      latency_p50_ms: 939,
      latency_p95_ms: 939,
      latency_avg_ms: 1000,
      ttfb_p50_ms: 198,
      ttfb_avg_ms: 200,
    },
    {
      channel_name: A,
      model: M2,
      success: 0,
      error: 1,
      total: 1,
      requests: 0,
      success_rate: 0,
      input_tokens: 0,
      output_tokens: 0,
      cache_creation_tokens: 0,
      cache_read_tokens: 0,
      cost_usd: 0,
      cache_creation_1h_tokens: 0,
      compaction_input_tokens: 0,
      compaction_output_tokens: 0,
      web_search_requests: 0,
      events_dropped: 0,
      latency_p50_ms: null,
      latency_p95_ms: null,
      latency_avg_ms: null,
      ttfb_p50_ms: null,
      ttfb_avg_ms: null,
    },
    {
      channel_name: B,
      model: M1,
      success: 2,
      error: 0,
      total: 2,
      requests: 2,
      success_rate: 1,
      input_tokens: 200,
      output_tokens: 100,
      cache_creation_tokens: 0,
      cache_read_tokens: 0,
      cost_usd: 0.02,
      // Only a2#2: a10 is count_tokens, left out of latency.
      cache_creation_1h_tokens: 0,
      compaction_input_tokens: 0,
      compaction_output_tokens: 0,
      web_search_requests: 0,
      events_dropped: 0,
      latency_p50_ms: 1878,
      latency_p95_ms: 1878,
      latency_avg_ms: 2000,
      ttfb_p50_ms: 395,
      ttfb_avg_ms: 400,
    },
    {
      channel_name: B,
      model: M2,
      success: 1,
      error: 1,
      total: 2,
      requests: 2,
      success_rate: 0.5,
      input_tokens: 0,
      output_tokens: 0,
      cache_creation_tokens: 0,
      cache_read_tokens: 0,
      cost_usd: 0,
      cache_creation_1h_tokens: 0,
      compaction_input_tokens: 0,
      compaction_output_tokens: 0,
      web_search_requests: 0,
      events_dropped: 0,
      latency_p50_ms: 99,
      latency_p95_ms: 99,
      latency_avg_ms: 100,
      ttfb_p50_ms: 10,
      ttfb_avg_ms: 10,
    },
  ]);

  const day = await stats({ hours: 24, channel: B });
  t.same(
    day.map((s) => [s.model, s.success, s.error, s.requests, s.input_tokens, s.output_tokens, s.cost_usd]),
    [
      [M1, 2, 0, 2, 200, 100, 0.02],
      [M2, 20, 1, 21, 190, 380, 0.19],
    ],
    'channel filter; a8 is outside 24 h',
  );
  // B/M2 successes: 100, 200, …, 2000 ms. Nearest rank: p50 = 1000 → 939, p95 = 1900 → 1878.
  t.match(day[1], {
    cache_creation_1h_tokens: 0,
    compaction_input_tokens: 0,
    compaction_output_tokens: 0,
    web_search_requests: 0,
    events_dropped: 0,
    latency_p50_ms: 939,
    latency_p95_ms: 1878,
    latency_avg_ms: 1050,
    ttfb_p50_ms: 99,
    ttfb_avg_ms: 105,
  });

  const m1 = await stats({ hours: 24, model: M1 });
  t.same(
    m1.map((s) => [
      s.channel_name,
      s.success,
      s.error,
      s.requests,
      s.input_tokens,
      s.output_tokens,
      s.cache_creation_tokens,
      s.cache_read_tokens,
    ]),
    [
      [A, 2, 2, 2, 110, 60, 10, 20],
      [B, 2, 0, 2, 200, 100, 0, 0],
    ],
    'model filter',
  );
  t.ok(close(m1[0]!.cost_usd, 0.011));
  t.same(
    (await stats({ hours: 48, channel: B, model: M1 })).map((s) => [
      s.success,
      s.requests,
      s.input_tokens,
      s.cost_usd,
    ]),
    [[3, 3, 5200, 1.02]],
    'both filters, 48 h takes a8 in',
  );
  t.same(await stats({ hours: 24, channel: 'nope' }), []);
});

t.test('trend: client requests per bucket, zero-filled, oldest first', async (t) => {
  const db = await fixtureDb(t);
  const zero = {
    success: 0,
    error: 0,
    input_tokens: 0,
    output_tokens: 0,
    cache_creation_tokens: 0,
    cache_read_tokens: 0,
    cost_usd: 0,
  };
  const trend = await queryTrend(db, { hours: 1, bucketMin: 5 }, NOW);
  const expected = [];
  for (let i = 0; i < 12; i++) {
    const ts = new Date(at('2026-03-10T11:35:00Z') + i * 5 * MIN).toISOString();
    expected.push({ ts, ...zero });
  }
  expected[5] = { ...expected[5]!, success: 1 }; // 12:00 c0
  expected[7] = { ...expected[7]!, error: 1 }; // 12:10 a4
  // 12:20: a2#2 answered the failover; a2#1 was not final and counts nothing.
  expected[9] = { ...expected[9]!, success: 1, input_tokens: 200, output_tokens: 100, cost_usd: 0.02 };
  // 12:25: a1 and a10; a9 (client gone) is not a request.
  expected[10] = {
    ...expected[10]!,
    success: 2,
    input_tokens: 100,
    output_tokens: 50,
    cache_creation_tokens: 10,
    cache_read_tokens: 20,
    cost_usd: 0.01,
  };
  t.same(trend, expected);

  const hourly = await queryTrend(db, { hours: 24, bucketMin: 60 }, NOW);
  t.equal(hourly.length, 24);
  t.equal(hourly[0]!.ts, '2026-03-09T13:00:00.000Z');
  t.equal(hourly[23]!.ts, '2026-03-10T12:00:00.000Z');
  const by = new Map(hourly.map((p) => [p.ts.slice(0, 16), p]));
  t.match(by.get('2026-03-10T12:00'), { success: 4, error: 1, input_tokens: 300, output_tokens: 150 });
  t.ok(close(by.get('2026-03-10T12:00')!.cost_usd, 0.03));
  t.match(by.get('2026-03-10T11:00'), { success: 2, error: 0, input_tokens: 1001, output_tokens: 502 });
  t.match(by.get('2026-03-10T09:00'), { success: 2, error: 0, input_tokens: 13, output_tokens: 16 });
  t.ok(close(by.get('2026-03-10T09:00')!.cost_usd, 0.004));
  for (const h of ['13', '14', '15', '16'])
    t.same(by.get(`2026-03-09T${h}:00`), { ts: `2026-03-09T${h}:00:00.000Z`, ...zero });
  t.equal(
    hourly.reduce((s, p) => s + p.success, 0),
    25,
  );
  t.equal(
    hourly.reduce((s, p) => s + p.error, 0),
    1,
  );

  const daily = await queryTrend(db, { hours: 48, bucketMin: 1440 }, NOW);
  t.same(
    daily.map((p) => [p.ts, p.success, p.error, p.input_tokens]),
    [
      ['2026-03-09T00:00:00.000Z', 8, 0, 5112],
      ['2026-03-10T00:00:00.000Z', 18, 1, 1388],
    ],
  );
  // A bucket size that is not a divisor of an hour: minute rollups, epoch-aligned buckets.
  const odd = await queryTrend(db, { hours: 1, bucketMin: 7 }, NOW);
  t.equal(odd.length, 9);
  t.equal(
    odd.reduce((s, p) => s + p.success + p.error, 0),
    5,
    'a1, a2#2, a4, a10, c0',
  );
});

t.test('usage per token and the public summary', async (t) => {
  const db = await fixtureDb(t);
  const usage = await queryUsage(db, { hours: 24 }, NOW);
  t.same(
    usage.map((u) => [
      u.token,
      u.requests,
      u.success,
      u.error,
      u.attempts,
      u.input_tokens,
      u.output_tokens,
      u.cache_creation_tokens,
      u.cache_read_tokens,
    ]),
    [
      [null, 1, 1, 0, 1, 1000, 500, 0, 0],
      ['alice', 4, 3, 1, 6, 110, 60, 10, 20],
      ['bob', 1, 1, 0, 2, 200, 100, 0, 0],
      ['carol', 20, 20, 0, 20, 190, 380, 0, 0],
    ],
  );
  t.same(
    usage.map((u) => u.cost_usd),
    [0.1, 0.011, 0.02, 0.19],
  );
  t.same(await querySummary(db, { hours: 24 }, NOW), {
    total_requests: 26,
    success_requests: 25,
    error_requests: 1,
    active_channels: 2,
    active_models: 2,
    hours: 24,
  });
  t.same(await querySummary(db, { hours: 1 }, NOW), {
    total_requests: 5,
    success_requests: 4,
    error_requests: 1,
    active_channels: 2,
    active_models: 2,
    hours: 1,
  });
  t.match(await querySummary(db, { hours: 48 }, NOW), { total_requests: 27, success_requests: 26 });
  // An hour later, the 1 h window has moved past everything but a9's and a10's minutes? No: past all.
  t.match(await querySummary(db, { hours: 1 }, NOW + HOUR), { total_requests: 0, active_channels: 0 });
});

t.test(
  'usage is recorded on the answering attempt only: a failover chain through the LogWriter',
  async (t) => {
    const db = await openTestDb(t);
    const w = new LogWriter(db, { rollups: true });
    const ts = NOW - 3 * MIN;
    // As the proxy reports a request that failed over twice: only the answer carries usage.
    w.enqueue(
      rec('r', 3, { ts, channel: A, status: 529, errorClass: 'overloaded', final: false, attempt: 1 }),
    );
    w.enqueue(
      rec('r', 3, {
        ts: ts + 10,
        channel: A,
        status: 0,
        errorClass: 'CCL_UPSTREAM_CONNECT',
        final: false,
        attempt: 2,
      }),
    );
    w.enqueue(rec('r', 3, { ts: ts + 20, channel: B, attempt: 3, ...usage(40, 30, 0.5, 20, 10) }));
    await w.close();
    const stats = await queryStats(db, { hours: 1 }, NOW);
    t.same(
      stats.map((s) => [
        s.channel_name,
        s.success,
        s.error,
        s.requests,
        s.input_tokens,
        s.output_tokens,
        s.cost_usd,
      ]),
      [
        [A, 0, 2, 0, 0, 0, 0],
        [B, 1, 0, 1, 40, 30, 0.5],
      ],
    );
    t.same(
      (await queryTrend(db, { hours: 1, bucketMin: 60 }, NOW)).map((p) => [
        p.success,
        p.error,
        p.input_tokens,
        p.cache_creation_tokens,
        p.cache_read_tokens,
      ]),
      [[1, 0, 40, 20, 10]],
      'one client request, counted once, with the answer’s usage',
    );
    t.match(await queryUsage(db, { hours: 1 }, NOW), [
      { token: null, requests: 1, attempts: 3, input_tokens: 40 },
    ]);
    t.match(await querySummary(db, { hours: 1 }, NOW), {
      total_requests: 1,
      success_requests: 1,
      error_requests: 0,
    });
  },
);

t.test('totals from the rollups equal the sums over raw attempts, for every window', async (t) => {
  const db = await fixtureDb(t);
  for (const hours of [1, 2, 3, 24, 48, 24 * 30]) {
    const w = hoursWindow(hours, NOW);
    const raw = (
      await db.client.execute({
        sql:
          'SELECT count(*) AS attempts, total(final) AS requests, total(input_tokens) AS i, total(output_tokens) AS o, ' +
          'total(cache_creation_tokens) AS cc, total(cache_read_tokens) AS cr, total(cost_usd) AS cost ' +
          'FROM attempts WHERE ts >= ? AND ts < ?',
        args: [w.from, w.to],
      })
    ).rows[0]!;
    const usage = await queryUsage(db, { hours }, NOW);
    const sum = (
      k:
        | 'attempts'
        | 'requests'
        | 'input_tokens'
        | 'output_tokens'
        | 'cache_creation_tokens'
        | 'cache_read_tokens'
        | 'cost_usd',
    ) => usage.reduce((s, u) => s + u[k], 0);
    t.same(
      [
        sum('attempts'),
        sum('requests'),
        sum('input_tokens'),
        sum('output_tokens'),
        sum('cache_creation_tokens'),
        sum('cache_read_tokens'),
      ],
      [raw['attempts'], raw['requests'], raw['i'], raw['o'], raw['cc'], raw['cr']].map(Number),
      `${hours} h: counts and tokens`,
    );
    t.ok(close(sum('cost_usd'), Number(raw['cost'])), `${hours} h: cost ${sum('cost_usd')} = ${raw['cost']}`);
    const stats = await queryStats(db, { hours }, NOW);
    t.equal(
      stats.reduce((s, r) => s + r.total, 0),
      Number(raw['attempts']),
      `${hours} h: stats attempts`,
    );
    const trend = await queryTrend(db, { hours, bucketMin: 60 }, NOW);
    // The trend's window starts at an hour boundary, so compare over its own span.
    const tw = trendBuckets(hours, 60, NOW);
    const rawTrend = (
      await db.client.execute({
        sql: 'SELECT total(final) AS requests, total(input_tokens) AS i FROM attempts WHERE ts >= ? AND ts < ?',
        args: [tw.start, tw.end],
      })
    ).rows[0]!;
    t.same(
      [trend.reduce((s, p) => s + p.success + p.error, 0), trend.reduce((s, p) => s + p.input_tokens, 0)],
      [Number(rawTrend['requests']), Number(rawTrend['i'])],
      `${hours} h: trend`,
    );
  }
});
