/**
 * Rollups of the attempt log: per minute, hour and day (UTC) × channel × model × client token ×
 * status class, counts, tokens and cost; and per tier × channel × model, fixed log-scale histograms
 * of duration and time to first byte. They let stats, trends and summaries over a day or a month
 * read a few thousand pre-aggregated rows instead of every attempt (schema/migrations/002_rollups.sql).
 *
 * `rollupStatements` turns one batch of attempt records into upserts that the `LogWriter` appends to
 * the SAME write batch as the attempt INSERTs, so rollups and raw rows commit together and can never
 * disagree. Attempts written before the rollup tables existed are folded in once by `backfillRollups`.
 *
 * Latency bins (`LATENCY_EDGES`): bin 0 is [0, 1) ms, then one bin per integer millisecond up to 8 ms,
 * then bins whose bounds are ⌈2^(k/4)⌉ ms — a quarter octave, ≈19 % wide — up to 2^22 ms (70 min);
 * the last bin is open. A percentile is reported as the geometric middle of the integer milliseconds
 * its bin can hold, so it is within `PERCENTILE_MAX_ERROR` (≈9.1 %) of the true nearest-rank
 * percentile, exact below 8 ms, and a lower bound (4 194 304 ms) in the open last bin.
 */
import type { InStatement, InValue, Row } from '@libsql/client';
import { ATTEMPT_COLUMNS, ATTEMPT_WIDTH, attemptValues, rowToAttempt } from './attempt.js';
import { guarded, type StoreDb, type StoreLog, silentLog } from './db.js';

/** A rollup granularity. */
export type Tier = 'minute' | 'hour' | 'day';

/** The tiers, finest first. */
export const TIERS: readonly Tier[] = ['minute', 'hour', 'day'];

/** Length of each tier's period in ms; periods start at multiples of it since the epoch (UTC). */
export const TIER_MS: Readonly<Record<Tier, number>> = {
  minute: 60_000,
  hour: 3_600_000,
  day: 86_400_000,
};

/**
 * Lower bounds (ms) of the latency bins: 0, then the distinct values of ⌈2^(k/4)⌉ for k = 0..88.
 * Frozen by migration 002 (one column per bin): never change these, add a migration instead.
 */
export const LATENCY_EDGES: readonly number[] = (() => {
  const edges = [0];
  for (let k = 0; k <= 88; k++) {
    const v = Math.ceil(2 ** (k / 4));
    if (v > edges[edges.length - 1]!) edges.push(v);
  }
  return Object.freeze(edges);
})();

/** Number of latency bins (columns `d0..` and `t0..` of the latency tables). */
export const BIN_COUNT = LATENCY_EDGES.length;

/** The largest relative error of `percentile` outside the open last bin (≈0.0905). */
export const PERCENTILE_MAX_ERROR: number = (() => {
  let max = 0;
  for (let i = 0; i + 1 < BIN_COUNT; i++) {
    const lo = LATENCY_EDGES[i]!;
    const top = LATENCY_EDGES[i + 1]! - 1;
    if (lo > 0) max = Math.max(max, Math.sqrt(top / lo) - 1);
  }
  return max;
})();

/** Duration histogram columns `d0..d84`. */
export const DURATION_BINS: readonly string[] = Array.from({ length: BIN_COUNT }, (_, i) => `d${i}`);
/** Time-to-first-byte histogram columns `t0..t84`. */
export const TTFB_BINS: readonly string[] = Array.from({ length: BIN_COUNT }, (_, i) => `t${i}`);

/** The bin of a latency in ms (negative values count as 0, anything past the last edge in the last bin). */
export function binOf(ms: number): number {
  if (!(ms >= 1)) return 0;
  let lo = 0;
  let hi = BIN_COUNT - 1;
  // Largest i with LATENCY_EDGES[i] <= ms.
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (LATENCY_EDGES[mid]! <= ms) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** The value reported for samples in `bin`: the geometric middle of the integer ms it can hold. */
export function binValue(bin: number): number {
  const lo = LATENCY_EDGES[bin]!;
  const next = LATENCY_EDGES[bin + 1];
  if (next === undefined) return lo;
  const top = next - 1;
  return lo === 0 || top === lo ? lo : Math.sqrt(lo * top);
}

/**
 * Approximate nearest-rank percentile (`p` in (0, 1]) of a histogram over `LATENCY_EDGES`; null
 * when it is empty. See the module comment for the error bound.
 */
export function percentile(counts: ArrayLike<number>, p: number): number | null {
  let n = 0;
  for (let i = 0; i < counts.length; i++) n += counts[i] ?? 0;
  if (n <= 0) return null;
  const rank = Math.max(1, Math.ceil(p * n));
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i] ?? 0;
    if (seen >= rank) return binValue(i);
  }
  return binValue(counts.length - 1);
}

/** The status class stored in rollups: ⌊status / 100⌋, 0 for no response or an unknown status. */
export function statusClass(status: number | null | undefined): number {
  return typeof status === 'number' && status >= 100 && status < 1000 ? Math.floor(status / 100) : 0;
}

/** Start of the `tier` period containing `ts`. */
export function tierStart(ts: number, tier: Tier): number {
  const size = TIER_MS[tier];
  return ts - (((ts % size) + size) % size);
}

/** Columns of a `rollup_<tier>` row, in the order `rollupStatements` writes them. */
export const ROLLUP_COLUMNS = [
  'bucket',
  'channel',
  'model',
  'token',
  'status_class',
  'attempts',
  'requests',
  'input_tokens',
  'output_tokens',
  'cache_creation_tokens',
  'cache_read_tokens',
  'cost_usd',
  'cache_creation_1h_tokens',
  'compaction_input_tokens',
  'compaction_output_tokens',
  'web_search_requests',
  'events_dropped',
] as const;

/** Columns of a `latency_<tier>` row, in write order. */
export const LATENCY_COLUMNS: readonly string[] = [
  'bucket',
  'channel',
  'model',
  'dur_n',
  'dur_sum',
  'ttfb_n',
  'ttfb_sum',
  ...DURATION_BINS,
  ...TTFB_BINS,
];

const ROLLUP_KEY = ROLLUP_COLUMNS.slice(0, 5);
const LATENCY_KEY = LATENCY_COLUMNS.slice(0, 3);

/** Rows per multi-row upsert: keeps every statement under SQLite's 32 766 bound parameters. */
const ROLLUP_ROWS_PER_STATEMENT = 400;
const LATENCY_ROWS_PER_STATEMENT = 90;

const COL = Object.fromEntries(ATTEMPT_COLUMNS.map((c, i) => [c, i])) as Record<
  (typeof ATTEMPT_COLUMNS)[number],
  number
>;

function upsertSql(table: string, columns: readonly string[], key: readonly string[], rows: number): string {
  const values = `(${columns.map(() => '?').join(', ')})`;
  const updates = columns
    .filter((c) => !key.includes(c))
    .map((c) => `${c} = ${c} + excluded.${c}`)
    .join(', ');
  return (
    `INSERT INTO ${table} (${columns.join(', ')}) VALUES ${Array.from({ length: rows }, () => values).join(', ')}` +
    ` ON CONFLICT (${key.join(', ')}) DO UPDATE SET ${updates}`
  );
}

const sqlCache = new Map<string, string>();
function rollupUpsert(table: string, rows: number): string {
  const k = `${table}:${rows}`;
  let sql = sqlCache.get(k);
  if (sql === undefined) {
    sql = upsertSql(table, ROLLUP_COLUMNS, ROLLUP_KEY, rows);
    sqlCache.set(k, sql);
  }
  return sql;
}

/**
 * The latency upserts of one tier. Each statement names only the bins some of its rows touch: a
 * flush fills a handful of the 170 bin columns, and SQLite's cost to prepare and run an upsert
 * grows with the columns it lists (all of them made the latency upserts most of a flush's cost).
 */
function latencyStatements(table: string, rows: readonly LatAcc[]): InStatement[] {
  const out: InStatement[] = [];
  for (let s = 0; s < rows.length; s += LATENCY_ROWS_PER_STATEMENT) {
    const chunk = rows.slice(s, s + LATENCY_ROWS_PER_STATEMENT);
    const dBins: number[] = [];
    const tBins: number[] = [];
    for (let b = 0; b < BIN_COUNT; b++) {
      if (chunk.some((l) => l.d[b] !== 0)) dBins.push(b);
      if (chunk.some((l) => l.t[b] !== 0)) tBins.push(b);
    }
    const columns = [
      ...LATENCY_COLUMNS.slice(0, 7),
      ...dBins.map((b) => DURATION_BINS[b]!),
      ...tBins.map((b) => TTFB_BINS[b]!),
    ];
    const args: InValue[] = [];
    for (const l of chunk) {
      args.push(...l.key, l.durN, l.durSum, l.ttfbN, l.ttfbSum);
      for (const b of dBins) args.push(l.d[b]!);
      for (const b of tBins) args.push(l.t[b]!);
    }
    out.push({ sql: upsertSql(table, columns, LATENCY_KEY, chunk.length), args });
  }
  return out;
}

/** Counters of one rollup row being built. */
interface Acc {
  readonly key: readonly [number, string, string, string, number];
  attempts: number;
  requests: number;
  input: number;
  output: number;
  cacheCreation: number;
  cacheRead: number;
  cost: number;
  cacheCreation1h: number;
  compactionInput: number;
  compactionOutput: number;
  webSearch: number;
  dropped: number;
}

/** One latency row being built. */
interface LatAcc {
  readonly key: readonly [number, string, string];
  durN: number;
  durSum: number;
  ttfbN: number;
  ttfbSum: number;
  readonly d: number[];
  readonly t: number[];
}

const asInt = (v: InValue | undefined): number => (typeof v === 'number' ? v : 0);
const asText = (v: InValue | undefined): string => (typeof v === 'string' ? v : '');

/**
 * The upserts that fold attempt rows into every rollup tier, given their values as one flat array
 * (`attemptValues`: `ATTEMPT_WIDTH` values per row, in `ATTEMPT_COLUMNS` order): a pure function
 * of the very values the INSERTs store, so the rollups equal aggregates over the written rows. Rows
 * without a valid `ts` are left out (they are invisible to every time-windowed query anyway).
 */
export function rollupStatements(values: readonly InValue[]): InStatement[] {
  const counts = TIERS.map(() => new Map<string, Acc>());
  const latency = TIERS.map(() => new Map<string, LatAcc>());
  for (let base = 0; base + ATTEMPT_WIDTH <= values.length; base += ATTEMPT_WIDTH) {
    const ts = values[base + COL.ts];
    if (typeof ts !== 'number') continue;
    const channel = asText(values[base + COL.channel]);
    const model = asText(values[base + COL.model_requested]);
    const token = asText(values[base + COL.token]);
    const status = values[base + COL.status];
    const cls = statusClass(typeof status === 'number' ? status : null);
    const final = values[base + COL.final] === 1 ? 1 : 0;
    const dur = values[base + COL.duration_ms];
    const ttfb = values[base + COL.ttfb_ms];
    const cost = values[base + COL.cost_usd];
    // Latency of successful /v1/messages answers only: errors (fast 4xx, slow timeouts) and
    // count_tokens calls would blur what the percentiles are read for.
    const timed =
      cls === 2 &&
      values[base + COL.endpoint] === 'messages' &&
      (typeof dur === 'number' || typeof ttfb === 'number');
    for (let i = 0; i < TIERS.length; i++) {
      const bucket = tierStart(ts, TIERS[i]!);
      const k = `${bucket}\u0000${channel}\u0000${model}\u0000${token}\u0000${cls}`;
      let a = counts[i]!.get(k);
      if (!a) {
        a = {
          key: [bucket, channel, model, token, cls],
          attempts: 0,
          requests: 0,
          input: 0,
          output: 0,
          cacheCreation: 0,
          cacheRead: 0,
          cost: 0,
          cacheCreation1h: 0,
          compactionInput: 0,
          compactionOutput: 0,
          webSearch: 0,
          dropped: 0,
        };
        counts[i]!.set(k, a);
      }
      a.attempts++;
      a.requests += final;
      a.input += asInt(values[base + COL.input_tokens]);
      a.output += asInt(values[base + COL.output_tokens]);
      a.cacheCreation += asInt(values[base + COL.cache_creation_tokens]);
      a.cacheRead += asInt(values[base + COL.cache_read_tokens]);
      a.cost += typeof cost === 'number' ? cost : 0;
      a.cacheCreation1h += asInt(values[base + COL.cache_creation_1h_tokens]);
      a.compactionInput += asInt(values[base + COL.compaction_input_tokens]);
      a.compactionOutput += asInt(values[base + COL.compaction_output_tokens]);
      a.webSearch += asInt(values[base + COL.web_search_requests]);
      a.dropped += asInt(values[base + COL.events_dropped]);
      if (!timed) continue;
      const lk = `${bucket}\u0000${channel}\u0000${model}`;
      let l = latency[i]!.get(lk);
      if (!l) {
        l = {
          key: [bucket, channel, model],
          durN: 0,
          durSum: 0,
          ttfbN: 0,
          ttfbSum: 0,
          d: new Array<number>(BIN_COUNT).fill(0),
          t: new Array<number>(BIN_COUNT).fill(0),
        };
        latency[i]!.set(lk, l);
      }
      if (typeof dur === 'number') {
        l.durN++;
        l.durSum += dur;
        l.d[binOf(dur)]!++;
      }
      if (typeof ttfb === 'number') {
        l.ttfbN++;
        l.ttfbSum += ttfb;
        l.t[binOf(ttfb)]!++;
      }
    }
  }

  const out: InStatement[] = [];
  for (let i = 0; i < TIERS.length; i++) {
    const tier = TIERS[i]!;
    const accs = [...counts[i]!.values()];
    for (let s = 0; s < accs.length; s += ROLLUP_ROWS_PER_STATEMENT) {
      const chunk = accs.slice(s, s + ROLLUP_ROWS_PER_STATEMENT);
      const args: InValue[] = [];
      for (const a of chunk) {
        args.push(
          ...a.key,
          a.attempts,
          a.requests,
          a.input,
          a.output,
          a.cacheCreation,
          a.cacheRead,
          a.cost,
          a.cacheCreation1h,
          a.compactionInput,
          a.compactionOutput,
          a.webSearch,
          a.dropped,
        );
      }
      out.push({ sql: rollupUpsert(`rollup_${tier}`, chunk.length), args });
    }
    out.push(...latencyStatements(`latency_${tier}`, [...latency[i]!.values()]));
  }
  return out;
}

/** Options of `backfillRollups`. */
export interface BackfillOptions {
  /** Attempt rows folded in per write batch (default 2000). */
  readonly chunkRows?: number;
  readonly log?: StoreLog;
  /** Stops between chunks when aborted (shutdown); the next start resumes where it stopped. */
  readonly signal?: AbortSignal;
}

/**
 * Folds attempts written before migration 002 into the rollups, `chunkRows` at a time, each chunk in
 * one write batch together with the progress marker (so a crash never counts a row twice), yielding
 * to the event loop between chunks. Attempts written later are rolled up by the `LogWriter`, so the
 * two never overlap. Resolves with the number of attempts folded in (0 once done).
 */
export async function backfillRollups(db: StoreDb, opts: BackfillOptions = {}): Promise<number> {
  const chunk = Math.max(1, opts.chunkRows ?? 2000);
  const log = opts.log ?? silentLog;
  let total = 0;
  const state = await guarded(db, () => db.client.execute('SELECT next_id, end_id FROM rollup_backfill'));
  let next = Number(state.rows[0]?.['next_id'] ?? 0);
  const end = Number(state.rows[0]?.['end_id'] ?? 0);
  if (next >= end) return 0;
  log.info({ event: 'rollup_backfill', from_id: next, end_id: end }, 'folding earlier attempts into rollups');
  while (next < end && !opts.signal?.aborted) {
    const rs = await guarded(db, () =>
      db.client.execute({
        sql: 'SELECT * FROM attempts WHERE id >= ? AND id < ? ORDER BY id LIMIT ?',
        args: [next, end, chunk],
      }),
    );
    const last = rs.rows[rs.rows.length - 1];
    const upTo = last ? Number(last['id']) + 1 : end;
    const records = rs.rows.filter((r: Row) => r['ts'] !== null && r['ts'] !== undefined).map(rowToAttempt);
    const stmts = rollupStatements(attemptValues(records));
    stmts.push({ sql: 'UPDATE rollup_backfill SET next_id = ? WHERE id = 1', args: [upTo] });
    await guarded(db, () => db.client.batch(stmts, 'write'));
    total += rs.rows.length;
    next = upTo;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  if (next >= end) log.info({ event: 'rollup_backfill', attempts: total }, 'rollup backfill done');
  return total;
}
