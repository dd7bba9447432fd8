/**
 * The attempt record: one upstream attempt as the proxy reports it and as the `attempts` table
 * stores it, with the mapping between the two.
 */
import type { InValue, Row } from '@libsql/client';
import type { Endpoint } from '../proxy/outcome.js';

/** One upstream attempt. `null` means "not known / not applicable". */
export interface AttemptRecord {
  /** Start of the attempt, ms since the epoch. */
  readonly ts: number;
  /** ccload's id of the client request; shared by all attempts of one request. */
  readonly requestId: string;
  /** Name of the client token used (never the token); null on an open proxy. */
  readonly token: string | null;
  readonly endpoint: Endpoint;
  readonly modelRequested: string | null;
  /** The model sent upstream after `model_map`. */
  readonly modelSent: string | null;
  readonly channel: string | null;
  /** Key fingerprint, `…abcd`. */
  readonly keyFp: string | null;
  /** HTTP status; 499 = the client went away; 0 = no response (connect error, timeout). */
  readonly status: number;
  /** Stable error class (e.g. `CCL_UPSTREAM_CONNECT`, `rate_limit`), null on success. */
  readonly errorClass: string | null;
  /** 1-based attempt number within the request. */
  readonly attempt: number;
  /** True when this attempt's answer went to the client. */
  readonly final: boolean;
  readonly ttfbMs: number | null;
  readonly durationMs: number | null;
  readonly streamed: boolean;
  /**
   * Usage: carried only by the attempt that answered. Billed totals: compaction passes
   * (`usage.iterations[]`) are included, and `compaction*` says how much came from them.
   */
  readonly inputTokens: number | null;
  readonly outputTokens: number | null;
  readonly cacheCreationTokens: number | null;
  readonly cacheReadTokens: number | null;
  readonly costUsd: number | null;
  /** The session's fingerprint (a hash of client token name + session id, never the id); null without a session. */
  readonly sessionFp?: string | null;
  /** What session affinity did for this attempt: pinned, new, moved, kept or none. */
  readonly affinity?: string | null;
  /** The 1-hour-TTL part of `cacheCreationTokens` (the rest was written for 5 minutes). */
  readonly cacheCreation1hTokens?: number | null;
  readonly compactionInputTokens?: number | null;
  readonly compactionOutputTokens?: number | null;
  /** Web search requests of server tool use (priced per request). */
  readonly webSearchRequests?: number | null;
  /** `usage.speed` as reported, e.g. `fast`. */
  readonly speed?: string | null;
  /** SSE events left out of the client's stream (unparseable, oversized, cut off by the end). */
  readonly eventsDropped?: number | null;
  /** The stream ended after a stop_reason without message_stop, and ccload wrote it. */
  readonly stopSynthesised?: boolean;
  /** `diagnostics.cache_miss_reason` of the answer (cache-diagnosis beta). */
  readonly cacheMissReason?: string | null;
}

/** An attempt read back from the table, with its row id. */
export interface StoredAttempt extends AttemptRecord {
  readonly id: number;
}

/** Columns of `attempts` written by `attemptToRow`, in that order (no `id`: SQLite assigns it). */
export const ATTEMPT_COLUMNS = [
  'ts',
  'request_id',
  'token',
  'endpoint',
  'model_requested',
  'model_sent',
  'channel',
  'key_fp',
  'status',
  'error_class',
  'attempt',
  'final',
  'ttfb_ms',
  'duration_ms',
  'streamed',
  'input_tokens',
  'output_tokens',
  'cache_creation_tokens',
  'cache_read_tokens',
  'cost_usd',
  'session_fp',
  'affinity',
  'cache_creation_1h_tokens',
  'compaction_input_tokens',
  'compaction_output_tokens',
  'web_search_requests',
  'speed',
  'events_dropped',
  'stop_synthesised',
  'cache_miss_reason',
] as const;

/** An integer column value: rounded, and null for anything that is not a finite number. */
function int(v: number | null | undefined): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? Math.round(v) : null;
}

function real(v: number | null | undefined): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

function text(v: string | null | undefined): string | null {
  return typeof v === 'string' ? v : null;
}

/**
 * The values of one record in `ATTEMPT_COLUMNS` order. Never throws and never yields a value SQLite
 * would refuse (NaN, undefined, fractional milliseconds become null or integers), so one bad
 * record cannot block a batch.
 */
export function attemptToRow(r: AttemptRecord): InValue[] {
  return [
    int(r.ts),
    text(r.requestId),
    text(r.token),
    text(r.endpoint),
    text(r.modelRequested),
    text(r.modelSent),
    text(r.channel),
    text(r.keyFp),
    int(r.status),
    text(r.errorClass),
    int(r.attempt),
    r.final ? 1 : 0,
    int(r.ttfbMs),
    int(r.durationMs),
    r.streamed ? 1 : 0,
    int(r.inputTokens),
    int(r.outputTokens),
    int(r.cacheCreationTokens),
    int(r.cacheReadTokens),
    real(r.costUsd),
    text(r.sessionFp),
    text(r.affinity),
    int(r.cacheCreation1hTokens),
    int(r.compactionInputTokens),
    int(r.compactionOutputTokens),
    int(r.webSearchRequests),
    text(r.speed),
    int(r.eventsDropped),
    r.stopSynthesised ? 1 : 0,
    text(r.cacheMissReason),
  ];
}

/** Values per row in a flat array of attempt values (`ATTEMPT_COLUMNS.length`). */
export const ATTEMPT_WIDTH: number = ATTEMPT_COLUMNS.length;

/**
 * `attemptToRow` of each record, concatenated into one flat array (`ATTEMPT_WIDTH` values per row):
 * the form a flush travels in (attempt-batch.ts).
 */
export function attemptValues(records: readonly AttemptRecord[]): InValue[] {
  const out: InValue[] = [];
  for (const r of records) {
    const v = attemptToRow(r);
    for (let c = 0; c < v.length; c++) out.push(v[c]!);
  }
  return out;
}

function num(v: unknown): number | null {
  if (v === null || v === undefined) return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

function str(v: unknown): string | null {
  return v === null || v === undefined ? null : String(v);
}

/** The record of an `attempts` row selected with `SELECT *` (or at least `id` + `ATTEMPT_COLUMNS`). */
export function rowToAttempt(row: Row): StoredAttempt {
  return {
    id: num(row['id']) ?? 0,
    ts: num(row['ts']) ?? 0,
    requestId: str(row['request_id']) ?? '',
    token: str(row['token']),
    endpoint: str(row['endpoint']) === 'count_tokens' ? 'count_tokens' : 'messages',
    modelRequested: str(row['model_requested']),
    modelSent: str(row['model_sent']),
    channel: str(row['channel']),
    keyFp: str(row['key_fp']),
    status: num(row['status']) ?? 0,
    errorClass: str(row['error_class']),
    attempt: num(row['attempt']) ?? 1,
    final: num(row['final']) === 1,
    ttfbMs: num(row['ttfb_ms']),
    durationMs: num(row['duration_ms']),
    streamed: num(row['streamed']) === 1,
    inputTokens: num(row['input_tokens']),
    outputTokens: num(row['output_tokens']),
    cacheCreationTokens: num(row['cache_creation_tokens']),
    cacheReadTokens: num(row['cache_read_tokens']),
    costUsd: num(row['cost_usd']),
    sessionFp: str(row['session_fp']),
    affinity: str(row['affinity']),
    cacheCreation1hTokens: num(row['cache_creation_1h_tokens']),
    compactionInputTokens: num(row['compaction_input_tokens']),
    compactionOutputTokens: num(row['compaction_output_tokens']),
    webSearchRequests: num(row['web_search_requests']),
    speed: str(row['speed']),
    eventsDropped: num(row['events_dropped']),
    stopSynthesised: num(row['stop_synthesised']) === 1,
    cacheMissReason: str(row['cache_miss_reason']),
  };
}
