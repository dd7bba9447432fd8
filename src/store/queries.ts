/**
 * The read side of the runtime store, for the dashboard and the admin JSON API: a page of the
 * attempt log, stats per channel × model, the request trend, usage per client token and the
 * public summary. Results are already in the API's JSON shape (docs/interfaces.md; the Go seed's field
 * names where it had them). Every function takes `now`, so tests drive them with a manual clock.
 *
 * Everything but the log page reads the rollups (rollup.ts), never raw attempts: a window is cut
 * into whole days, whole hours and the minutes at its edges (`coverWindow`), so a month costs a few
 * thousand rows. The local libSQL client runs each statement synchronously, so each one is kept to
 * a bounded amount of work.
 *
 * Counting rules, the same everywhere:
 * - success = HTTP 2xx; error = anything else (4xx, 5xx, 499 client gone, 0 no response).
 * - `/admin/stats` counts ATTEMPTS (a failover shows as an error on one channel and a success on
 *   another); `requests` there is the number of attempts of that channel × model that answered the
 *   client.
 * - The trend, usage and summary count CLIENT REQUESTS: the final attempt of each request, so a
 *   request that failed over counts once, with the status its client got. A request whose client
 *   went away before any answer has no final attempt and is not counted as a request.
 * - Tokens and cost are summed over all attempts; only the answering attempt carries usage.
 */
import type { InValue, Row } from '@libsql/client';
import { rowToAttempt } from './attempt.js';
import { guarded, type StoreDb } from './db.js';
import { MINUTE_ROLLUP_KEEP_MS } from './retention.js';
import { DURATION_BINS, percentile, TIER_MS, type Tier, TTFB_BINS, tierStart } from './rollup.js';

const MINUTE = TIER_MS.minute;
const HOUR = TIER_MS.hour;
const DAY = TIER_MS.day;

/** A half-open time range [from, to), ms since the epoch. */
export interface TimeWindow {
  readonly from: number;
  readonly to: number;
}

/**
 * "The last `hours` hours" at `now`, at minute resolution: from the start of the minute `hours`
 * before now's minute, to the end of now's minute.
 */
export function hoursWindow(hours: number, now: number): TimeWindow {
  const to = tierStart(now, 'minute') + MINUTE;
  return { from: to - hours * HOUR, to };
}

/** A stretch of a window answered from one rollup tier: rows with `from <= bucket < to`. */
export interface Segment {
  readonly tier: Tier;
  readonly from: number;
  readonly to: number;
}

const floorTo = (t: number, size: number) => t - (((t % size) + size) % size);
const ceilTo = (t: number, size: number) => floorTo(t + size - 1, size);

/**
 * Cuts the minute-aligned window [from, to) into the fewest rollup segments: whole UTC days from
 * the day tier, whole hours from the hour tier, the remaining minutes from the minute tier. Minute
 * rollups are kept for `minuteKeepMs` only, so a sub-hour stretch older than that is widened to its
 * whole hour(s) (at most one hour too much at the old end of a window over a week long).
 */
export function coverWindow(
  from: number,
  to: number,
  now: number,
  minuteKeepMs: number = MINUTE_ROLLUP_KEEP_MS,
): Segment[] {
  const out: Segment[] = [];
  // Minute rows from here on are certainly still there: retention deletes only periods that ended
  // `minuteKeepMs` before its own (earlier) now. Hour-aligned, so the widened part is whole hours.
  const horizon = ceilTo(now - minuteKeepMs, HOUR);
  const minutes = (a: number, b: number) => {
    if (a >= b) return;
    if (a < horizon)
      out.push({ tier: 'hour', from: floorTo(a, HOUR), to: Math.min(ceilTo(b, HOUR), horizon) });
    if (b > horizon) out.push({ tier: 'minute', from: Math.max(a, horizon), to: b });
  };
  const hours = (a: number, b: number) => {
    if (a >= b) return;
    const h0 = ceilTo(a, HOUR);
    const h1 = floorTo(b, HOUR);
    if (h0 < h1) {
      minutes(a, h0);
      out.push({ tier: 'hour', from: h0, to: h1 });
      minutes(h1, b);
    } else {
      minutes(a, b);
    }
  };
  const d0 = ceilTo(from, DAY);
  const d1 = floorTo(to, DAY);
  if (d0 < d1) {
    hours(from, d0);
    out.push({ tier: 'day', from: d0, to: d1 });
    hours(d1, to);
  } else {
    hours(from, to);
  }
  return out;
}

/** An SQL condition with its arguments. */
interface Cond {
  readonly sql: string;
  readonly args: InValue[];
}

/**
 * `SELECT <columns> FROM <kind>_<tier> WHERE bucket in segment AND <conds> [GROUP BY <groupBy>]`,
 * UNION ALL over the segments. Grouping inside each segment and summing the groups outside is
 * several times cheaper than grouping the whole union: each segment's sort is small, and one over
 * the union's rows would spill the full row set into a sorter.
 */
function unionOf(
  kind: 'rollup' | 'latency',
  segments: readonly Segment[],
  columns: string,
  conds: Cond[],
  groupBy?: string,
): Cond {
  const parts: string[] = [];
  const args: InValue[] = [];
  // An empty window still needs a well-formed query.
  const segs = segments.length > 0 ? segments : [{ tier: 'minute' as const, from: 0, to: 0 }];
  for (const s of segs) {
    const where = conds.map((c) => ` AND ${c.sql}`).join('');
    parts.push(
      `SELECT ${columns} FROM ${kind}_${s.tier} WHERE bucket >= ? AND bucket < ?${where}` +
        (groupBy ? ` GROUP BY ${groupBy}` : ''),
    );
    args.push(s.from, s.to);
    for (const c of conds) args.push(...c.args);
  }
  return { sql: parts.join(' UNION ALL '), args };
}

async function select(db: StoreDb, sql: string, args: InValue[]): Promise<Row[]> {
  const rs = await guarded(db, () => db.client.execute({ sql, args }));
  return rs.rows;
}

const n = (v: unknown): number => {
  const x = Number(v ?? 0);
  return Number.isFinite(x) ? x : 0;
};
/** '' (no channel/model/token) back to null. */
const dim = (v: unknown): string | null => (v === null || v === undefined || v === '' ? null : String(v));
/** Cost rounded to a billionth of a dollar: float sums otherwise print as 0.30000000000000004. */
const usd = (x: number): number => Math.round(x * 1e9) / 1e9;
const iso = (ms: number) => new Date(ms).toISOString();

// ---------------------------------------------------------------------------------------------
// The attempt log

/** The `status` filter of the log: an exact code, a class (`4xx`), or `error` (anything not 2xx). */
export type StatusFilter =
  | { readonly kind: 'code'; readonly code: number }
  | { readonly kind: 'class'; readonly class: number }
  | { readonly kind: 'error' };

/** Parses a `status` query value; undefined when it is none of the accepted forms. */
export function parseStatusFilter(s: string): StatusFilter | undefined {
  const v = s.trim().toLowerCase();
  if (/^\d{1,3}$/.test(v)) return { kind: 'code', code: Number(v) };
  const m = /^([1-5])xx$/.exec(v);
  if (m) return { kind: 'class', class: Number(m[1]) };
  if (v === 'error') return { kind: 'error' };
  return undefined;
}

/** What `queryLogs` lists. */
export interface LogQuery {
  readonly hours: number;
  readonly limit: number;
  readonly offset: number;
  readonly channel?: string;
  /** The requested model. */
  readonly model?: string;
  /** Client token name. */
  readonly token?: string;
  readonly status?: StatusFilter;
}

/** One attempt as `/admin/logs` shows it: the Go seed's fields first, then ccload's. */
export interface LogEntry {
  readonly id: number;
  readonly time: string;
  readonly model: string | null;
  readonly channel_name: string | null;
  readonly status_code: number;
  /** The error class, '' for a success. */
  readonly message: string;
  /** Seconds. */
  readonly duration: number | null;
  readonly is_streaming: boolean;
  /** Seconds to the first byte of the upstream answer. */
  readonly first_byte_time: number | null;
  readonly request_id: string;
  readonly token: string | null;
  readonly endpoint: string;
  readonly model_sent: string | null;
  readonly key_fp: string | null;
  readonly error_class: string | null;
  readonly attempt: number;
  readonly final: boolean;
  readonly input_tokens: number | null;
  readonly output_tokens: number | null;
  readonly cache_creation_tokens: number | null;
  readonly cache_read_tokens: number | null;
  readonly cost_usd: number | null;
  /** The session's fingerprint (a hash, never the client's session id); null without a session. */
  readonly session_fp: string | null;
  /** What session affinity did: pinned, new, moved, kept, none (null on rows from before it existed). */
  readonly affinity: string | null;
  readonly cache_creation_1h_tokens: number | null;
  readonly compaction_input_tokens: number | null;
  readonly compaction_output_tokens: number | null;
  readonly web_search_requests: number | null;
  readonly speed: string | null;
  readonly events_dropped: number | null;
  readonly stop_synthesised: boolean;
  readonly cache_miss_reason: string | null;
}

function statusCond(f: StatusFilter): Cond {
  switch (f.kind) {
    case 'code':
      return { sql: 'status = ?', args: [f.code] };
    case 'class':
      return { sql: 'status >= ? AND status < ?', args: [f.class * 100, f.class * 100 + 100] };
    case 'error':
      return { sql: '(status IS NULL OR status < 200 OR status >= 300)', args: [] };
  }
}

/** The log page (newest first) and the number of attempts matching the filters in the window. */
export async function queryLogs(
  db: StoreDb,
  q: LogQuery,
  now: number,
): Promise<{ entries: LogEntry[]; total: number }> {
  const w = hoursWindow(q.hours, now);
  const conds: Cond[] = [{ sql: 'ts >= ? AND ts < ?', args: [w.from, w.to] }];
  if (q.channel !== undefined) conds.push({ sql: 'channel = ?', args: [q.channel] });
  if (q.model !== undefined) conds.push({ sql: 'model_requested = ?', args: [q.model] });
  if (q.token !== undefined) conds.push({ sql: 'token = ?', args: [q.token] });
  if (q.status !== undefined) conds.push(statusCond(q.status));
  const where = conds.map((c) => c.sql).join(' AND ');
  const args = conds.flatMap((c) => c.args);
  const rows = await select(
    db,
    `SELECT * FROM attempts WHERE ${where} ORDER BY ts DESC, id DESC LIMIT ? OFFSET ?`,
    [...args, q.limit, q.offset],
  );
  // A short first page is the whole result: no count needed.
  const total =
    q.offset === 0 && rows.length < q.limit
      ? rows.length
      : n((await select(db, `SELECT count(*) AS n FROM attempts WHERE ${where}`, args))[0]?.['n']);
  return { entries: rows.map(logEntry), total };
}

function logEntry(row: Row): LogEntry {
  const a = rowToAttempt(row);
  const ok = a.status >= 200 && a.status < 300;
  return {
    id: a.id,
    time: iso(a.ts),
    model: a.modelRequested,
    channel_name: a.channel,
    status_code: a.status,
    message: a.errorClass ?? (ok ? '' : `HTTP ${a.status}`),
    duration: a.durationMs === null ? null : a.durationMs / 1000,
    is_streaming: a.streamed,
    first_byte_time: a.ttfbMs === null ? null : a.ttfbMs / 1000,
    request_id: a.requestId,
    token: a.token,
    endpoint: a.endpoint,
    model_sent: a.modelSent,
    key_fp: a.keyFp,
    error_class: a.errorClass,
    attempt: a.attempt,
    final: a.final,
    input_tokens: a.inputTokens,
    output_tokens: a.outputTokens,
    cache_creation_tokens: a.cacheCreationTokens,
    cache_read_tokens: a.cacheReadTokens,
    cost_usd: a.costUsd,
    session_fp: a.sessionFp ?? null,
    affinity: a.affinity ?? null,
    cache_creation_1h_tokens: a.cacheCreation1hTokens ?? null,
    compaction_input_tokens: a.compactionInputTokens ?? null,
    compaction_output_tokens: a.compactionOutputTokens ?? null,
    web_search_requests: a.webSearchRequests ?? null,
    speed: a.speed ?? null,
    events_dropped: a.eventsDropped ?? null,
    stop_synthesised: a.stopSynthesised ?? false,
    cache_miss_reason: a.cacheMissReason ?? null,
  };
}

// ---------------------------------------------------------------------------------------------
// Aggregates over the rollups

/**
 * The sums a query can ask of the rollups, computed inside each segment and added up across
 * segments under the same name. Errors are totals minus successes, so they cost no SUM of their own.
 */
const SUMS = {
  attempts: 'SUM(attempts)',
  ok_attempts: 'SUM(CASE WHEN status_class = 2 THEN attempts ELSE 0 END)',
  requests: 'SUM(requests)',
  ok_requests: 'SUM(CASE WHEN status_class = 2 THEN requests ELSE 0 END)',
  input_tokens: 'SUM(input_tokens)',
  output_tokens: 'SUM(output_tokens)',
  cache_creation_tokens: 'SUM(cache_creation_tokens)',
  cache_read_tokens: 'SUM(cache_read_tokens)',
  cost_usd: 'TOTAL(cost_usd)',
  cache_creation_1h_tokens: 'SUM(cache_creation_1h_tokens)',
  compaction_input_tokens: 'SUM(compaction_input_tokens)',
  compaction_output_tokens: 'SUM(compaction_output_tokens)',
  web_search_requests: 'SUM(web_search_requests)',
  events_dropped: 'SUM(events_dropped)',
} as const;
type SumName = keyof typeof SUMS;
const USAGE_SUMS: readonly SumName[] = [
  'input_tokens',
  'output_tokens',
  'cache_creation_tokens',
  'cache_read_tokens',
  'cost_usd',
];
/** The 2026 billing kinds and the stream integrity count, reported by `/admin/stats`. */
const BILLING_SUMS: readonly SumName[] = [
  'cache_creation_1h_tokens',
  'compaction_input_tokens',
  'compaction_output_tokens',
  'web_search_requests',
  'events_dropped',
];
const innerSums = (names: readonly SumName[]) => names.map((k) => `${SUMS[k]} AS ${k}`).join(', ');
const outerSums = (names: readonly SumName[]) => names.map((k) => `TOTAL(${k}) AS ${k}`).join(', ');

/** The primary key of the rollup tables: rows are stored in this order. */
const ROLLUP_PK = ['bucket', 'channel', 'model', 'token', 'status_class'] as const;

/**
 * The rollup sums over `segments` grouped by `groupBy`, ordered by it. Inside each segment the rows
 * are grouped by the shortest primary-key prefix that holds `groupBy`, which SQLite streams in
 * key order without a sort; only the much smaller result is then grouped by `groupBy`.
 */
async function rollupSums(
  db: StoreDb,
  segments: readonly Segment[],
  groupBy: readonly (typeof ROLLUP_PK)[number][],
  sums: readonly SumName[],
  conds: Cond[] = [],
): Promise<Row[]> {
  const depth = Math.max(1, ...groupBy.map((c) => ROLLUP_PK.indexOf(c) + 1));
  const inner = ROLLUP_PK.slice(0, depth).join(', ');
  const u = unionOf('rollup', segments, `${inner}, ${innerSums(sums)}`, conds, inner);
  const g = groupBy.join(', ');
  return select(db, `SELECT ${g}, ${outerSums(sums)} FROM (${u.sql}) GROUP BY ${g} ORDER BY ${g}`, u.args);
}

/** Token and cost totals, as every aggregate reports them. */
export interface UsageTotals {
  readonly input_tokens: number;
  readonly output_tokens: number;
  readonly cache_creation_tokens: number;
  readonly cache_read_tokens: number;
  readonly cost_usd: number;
}

/**
 * The cache-read share of prompt tokens: cache read ÷ (input + cache read + cache write), 0..1
 * (4 decimals); null without any prompt tokens. The share of the prompt served from the prompt
 * cache — what session affinity is for.
 */
export function cacheReadShare(
  t: Pick<UsageTotals, 'input_tokens' | 'cache_read_tokens' | 'cache_creation_tokens'>,
): number | null {
  const prompt = t.input_tokens + t.cache_read_tokens + t.cache_creation_tokens;
  return prompt > 0 ? Math.round((t.cache_read_tokens / prompt) * 10_000) / 10_000 : null;
}

function totals(r: Row): UsageTotals {
  return {
    input_tokens: n(r['input_tokens']),
    output_tokens: n(r['output_tokens']),
    cache_creation_tokens: n(r['cache_creation_tokens']),
    cache_read_tokens: n(r['cache_read_tokens']),
    cost_usd: usd(n(r['cost_usd'])),
  };
}

/** Filters of `/admin/stats`. */
export interface StatsQuery {
  readonly hours: number;
  readonly channel?: string;
  /** The requested model. */
  readonly model?: string;
}

/** What `/admin/stats` adds to the usage totals (see migration 004). */
export interface BillingTotals {
  /** The part of `cache_creation_tokens` written with the 1-hour TTL. */
  readonly cache_creation_1h_tokens: number;
  /** The part of the input and output tokens that came from compaction passes. */
  readonly compaction_input_tokens: number;
  readonly compaction_output_tokens: number;
  readonly web_search_requests: number;
  /** SSE events left out of client streams (unparseable, oversized, cut off). */
  readonly events_dropped: number;
}

/** One channel × model line of `/admin/stats`. Counts are attempts; latencies in ms (see rollup.ts for the error). */
export interface StatsRow extends UsageTotals, BillingTotals {
  readonly channel_name: string | null;
  readonly model: string | null;
  readonly success: number;
  readonly error: number;
  readonly total: number;
  /** Attempts of this channel × model that answered the client (final attempts). */
  readonly requests: number;
  /** success / total, 0..1. */
  readonly success_rate: number;
  /** Over successful /v1/messages attempts; null without any. */
  readonly latency_p50_ms: number | null;
  readonly latency_p95_ms: number | null;
  readonly latency_avg_ms: number | null;
  readonly ttfb_p50_ms: number | null;
  readonly ttfb_avg_ms: number | null;
}

/** One channel's (or client token's) prompt-token totals and its cache-read share. */
export interface CacheShareRow {
  readonly input_tokens: number;
  readonly cache_read_tokens: number;
  readonly cache_creation_tokens: number;
  /** `cacheReadShare`: cache read ÷ (input + cache read + cache write); null without prompt tokens. */
  readonly cache_read_share: number | null;
}

/**
 * The cache-read share per channel and per client token over the last `hours` (the same filters
 * as `/admin/stats`), each ordered by name. Requests a token's policy refused before routing have
 * no channel and sent no prompt: they are left out of the per-channel list (the per-token list
 * keeps them, under their token).
 */
export async function queryCacheShare(
  db: StoreDb,
  q: StatsQuery,
  now: number,
): Promise<{
  channels: (CacheShareRow & { readonly channel_name: string })[];
  tokens: (CacheShareRow & { readonly token: string | null })[];
}> {
  const w = hoursWindow(q.hours, now);
  const segments = coverWindow(w.from, w.to, now);
  const conds: Cond[] = [];
  if (q.channel !== undefined) conds.push({ sql: 'channel = ?', args: [q.channel] });
  if (q.model !== undefined) conds.push({ sql: 'model = ?', args: [q.model] });
  const sums: SumName[] = ['input_tokens', 'cache_read_tokens', 'cache_creation_tokens'];
  const [byChannel, byToken] = await Promise.all([
    rollupSums(db, segments, ['channel'], sums, conds),
    rollupSums(db, segments, ['token'], sums, conds),
  ]);
  const share = (r: Row): CacheShareRow => {
    const t = {
      input_tokens: n(r['input_tokens']),
      cache_read_tokens: n(r['cache_read_tokens']),
      cache_creation_tokens: n(r['cache_creation_tokens']),
    };
    return { ...t, cache_read_share: cacheReadShare(t) };
  };
  return {
    channels: byChannel.flatMap((r) => {
      const channel = dim(r['channel']);
      return channel === null ? [] : [{ channel_name: channel, ...share(r) }];
    }),
    tokens: byToken.map((r) => ({ token: dim(r['token']), ...share(r) })),
  };
}

/** Stats per channel × model over the last `hours`, ordered by channel then model. */
export async function queryStats(db: StoreDb, q: StatsQuery, now: number): Promise<StatsRow[]> {
  const w = hoursWindow(q.hours, now);
  const segments = coverWindow(w.from, w.to, now);
  const conds: Cond[] = [];
  if (q.channel !== undefined) conds.push({ sql: 'channel = ?', args: [q.channel] });
  if (q.model !== undefined) conds.push({ sql: 'model = ?', args: [q.model] });

  const countRows = await rollupSums(
    db,
    segments,
    ['channel', 'model'],
    ['attempts', 'ok_attempts', 'requests', ...USAGE_SUMS, ...BILLING_SUMS],
    conds,
  );
  const bins = [...DURATION_BINS, ...TTFB_BINS];
  const lat = unionOf(
    'latency',
    segments,
    `channel, model, dur_n, dur_sum, ttfb_n, ttfb_sum, ${bins.join(', ')}`,
    conds,
  );
  const latRows = await select(
    db,
    `SELECT channel, model, SUM(dur_n) AS dur_n, SUM(dur_sum) AS dur_sum, SUM(ttfb_n) AS ttfb_n, ` +
      `SUM(ttfb_sum) AS ttfb_sum, ${bins.map((b) => `SUM(${b}) AS ${b}`).join(', ')} ` +
      `FROM (${lat.sql}) GROUP BY channel, model`,
    lat.args,
  );
  const latency = new Map<string, Row>();
  for (const r of latRows) latency.set(`${r['channel']}\u0000${r['model']}`, r);

  return countRows.map((r) => {
    const success = n(r['ok_attempts']);
    const total = n(r['attempts']);
    const error = total - success;
    const l = latency.get(`${r['channel']}\u0000${r['model']}`);
    const dur = l ? DURATION_BINS.map((b) => n(l[b])) : [];
    const ttfb = l ? TTFB_BINS.map((b) => n(l[b])) : [];
    const round = (v: number | null) => (v === null ? null : Math.round(v));
    const avg = (sum: unknown, count: unknown) => (n(count) > 0 ? Math.round(n(sum) / n(count)) : null);
    return {
      channel_name: dim(r['channel']),
      model: dim(r['model']),
      success,
      error,
      total,
      requests: n(r['requests']),
      success_rate: total > 0 ? Math.round((success / total) * 10_000) / 10_000 : 0,
      ...totals(r),
      cache_creation_1h_tokens: n(r['cache_creation_1h_tokens']),
      compaction_input_tokens: n(r['compaction_input_tokens']),
      compaction_output_tokens: n(r['compaction_output_tokens']),
      web_search_requests: n(r['web_search_requests']),
      events_dropped: n(r['events_dropped']),
      latency_p50_ms: round(percentile(dur, 0.5)),
      latency_p95_ms: round(percentile(dur, 0.95)),
      latency_avg_ms: l ? avg(l['dur_sum'], l['dur_n']) : null,
      ttfb_p50_ms: round(percentile(ttfb, 0.5)),
      ttfb_avg_ms: l ? avg(l['ttfb_sum'], l['ttfb_n']) : null,
    };
  });
}

/** Most buckets one trend may have. */
export const MAX_TREND_BUCKETS = 10_000;

/** The buckets of a trend: `count` periods of `size` ms, the last one containing `now`. */
export interface TrendBuckets {
  readonly start: number;
  readonly end: number;
  readonly size: number;
  readonly count: number;
}

/**
 * The buckets of `/admin/metrics?hours&bucket_min` (pure): aligned to multiples of `bucketMin`
 * minutes since the epoch (UTC), oldest first, the last one containing `now` (so it is partial),
 * ⌈hours·60 / bucketMin⌉ of them — the window reaches back up to one bucket more than `hours`.
 */
export function trendBuckets(hours: number, bucketMin: number, now: number): TrendBuckets {
  const size = bucketMin * MINUTE;
  const count = Math.ceil((hours * 60) / bucketMin);
  const end = floorTo(now, size) + size;
  return { start: end - count * size, end, size, count };
}

/** One trend bucket: client requests (final attempts) by outcome, and their usage. */
export interface TrendPoint extends UsageTotals {
  /** Start of the bucket. */
  readonly ts: string;
  readonly success: number;
  readonly error: number;
}

/**
 * The seed's trend: every bucket of `trendBuckets` (zero-filled), counting client requests. Buckets
 * that are multiples of a day (hour) read the day (hour) rollups; others the minute rollups, except
 * that stretches older than the minute rollups' retention fall back to hour rollups, each hour
 * counted in the bucket holding its start.
 */
export async function queryTrend(
  db: StoreDb,
  q: { readonly hours: number; readonly bucketMin: number },
  now: number,
): Promise<TrendPoint[]> {
  const b = trendBuckets(q.hours, q.bucketMin, now);
  let segments: Segment[];
  if (b.size % DAY === 0) segments = [{ tier: 'day', from: b.start, to: b.end }];
  else if (b.size % HOUR === 0) segments = [{ tier: 'hour', from: b.start, to: b.end }];
  else {
    const horizon = ceilTo(now - MINUTE_ROLLUP_KEEP_MS, HOUR);
    segments =
      b.start >= horizon
        ? [{ tier: 'minute', from: b.start, to: b.end }]
        : [
            { tier: 'hour', from: floorTo(b.start, HOUR), to: horizon },
            { tier: 'minute', from: horizon, to: b.end },
          ];
  }
  // Grouped by the tier's own bucket, which follows the primary key (no sort), then folded into
  // the trend's buckets here.
  const rows = await rollupSums(db, segments, ['bucket'], ['requests', 'ok_requests', ...USAGE_SUMS]);
  const byBucket = new Map<number, Row>();
  const fold = [
    'requests',
    'ok_requests',
    'input_tokens',
    'output_tokens',
    'cache_creation_tokens',
    'cache_read_tokens',
    'cost_usd',
  ];
  for (const r of rows) {
    const start = floorTo(n(r['bucket']), b.size);
    const acc = byBucket.get(start);
    if (!acc) byBucket.set(start, { ...r });
    else for (const k of fold) (acc as Record<string, unknown>)[k] = n(acc[k]) + n(r[k]);
  }
  const out: TrendPoint[] = [];
  for (let i = 0; i < b.count; i++) {
    const start = b.start + i * b.size;
    const r = byBucket.get(start);
    out.push(
      r
        ? {
            ts: iso(start),
            success: n(r['ok_requests']),
            error: n(r['requests']) - n(r['ok_requests']),
            ...totals(r),
          }
        : {
            ts: iso(start),
            success: 0,
            error: 0,
            input_tokens: 0,
            output_tokens: 0,
            cache_creation_tokens: 0,
            cache_read_tokens: 0,
            cost_usd: 0,
          },
    );
  }
  return out;
}

/** One client token's line of `/admin/usage`. */
export interface UsageRow extends UsageTotals {
  /** Token name; null for requests without a token (open proxy). */
  readonly token: string | null;
  /** Client requests (final attempts) and their outcome. */
  readonly requests: number;
  readonly success: number;
  readonly error: number;
  /** Upstream attempts made for this token, failovers included. */
  readonly attempts: number;
}

/** Usage per client token over the last `hours`, ordered by token name. */
export async function queryUsage(
  db: StoreDb,
  q: { readonly hours: number },
  now: number,
): Promise<UsageRow[]> {
  const w = hoursWindow(q.hours, now);
  const rows = await rollupSums(
    db,
    coverWindow(w.from, w.to, now),
    ['token'],
    ['attempts', 'requests', 'ok_requests', ...USAGE_SUMS],
  );
  return rows.map((r) => ({
    token: dim(r['token']),
    requests: n(r['requests']),
    success: n(r['ok_requests']),
    error: n(r['requests']) - n(r['ok_requests']),
    attempts: n(r['attempts']),
    ...totals(r),
  }));
}

/** The seed's public summary: nothing secret, nothing per token. */
export interface Summary {
  /** Client requests (final attempts). */
  readonly total_requests: number;
  readonly success_requests: number;
  readonly error_requests: number;
  /** Channels / requested models with at least one attempt in the window. */
  readonly active_channels: number;
  readonly active_models: number;
  readonly hours: number;
}

/** The public summary over the last `hours`. */
export async function querySummary(
  db: StoreDb,
  q: { readonly hours: number },
  now: number,
): Promise<Summary> {
  const w = hoursWindow(q.hours, now);
  // Grouped by a primary-key prefix inside each segment (streamed, no sort), then counted.
  const inner = 'bucket, channel, model';
  const sums = innerSums(['requests', 'ok_requests']);
  const u = unionOf('rollup', coverWindow(w.from, w.to, now), `${inner}, ${sums}`, [], inner);
  const rows = await select(
    db,
    'SELECT TOTAL(requests) AS requests, TOTAL(ok_requests) AS ok, ' +
      `COUNT(DISTINCT NULLIF(channel, '')) AS channels, COUNT(DISTINCT NULLIF(model, '')) AS models FROM (${u.sql})`,
    u.args,
  );
  const r = rows[0];
  return {
    total_requests: n(r?.['requests']),
    success_requests: n(r?.['ok']),
    error_requests: n(r?.['requests']) - n(r?.['ok']),
    active_channels: n(r?.['channels']),
    active_models: n(r?.['models']),
    hours: q.hours,
  };
}

// ---------------------------------------------------------------------------------------------
// Budget spend

/**
 * Cost per client token name over [from, to) (`to` may lie in the future: the current window), from
 * the rollups — the same recorded costs the stats show. Tokens without spend are absent.
 */
export async function querySpendByToken(
  db: StoreDb,
  from: number,
  to: number,
  now: number,
): Promise<Map<string, number>> {
  const end = Math.min(to, tierStart(now, 'minute') + MINUTE);
  const rows = await rollupSums(db, coverWindow(from, Math.max(from, end), now), ['token'], ['cost_usd']);
  const out = new Map<string, number>();
  for (const r of rows) {
    const name = dim(r['token']);
    if (name !== null) out.set(name, n(r['cost_usd']));
  }
  return out;
}
