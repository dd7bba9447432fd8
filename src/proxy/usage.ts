/**
 * Token usage of one answer, read from the Messages API's own reports: the `usage` object of a
 * non-streaming JSON response, or the `message_start` / `message_delta` events of a stream.
 *
 * Besides the four classic counts it reads what changes the price of an answer (README, "Pricing"):
 * cache writes split by TTL (`usage.cache_creation.ephemeral_5m_input_tokens` /
 * `ephemeral_1h_input_tokens`), compaction passes (`usage.iterations[]` entries of type
 * `compaction`: billed there and not in the top-level counts), server tool requests
 * (`usage.server_tool_use.web_search_requests`) and the speed the answer ran at (`usage.speed`).
 */
import { objectMembers, skipWs } from './body-sniff.js';

/** Token counts of one answer, as the upstream reported them. */
export interface Usage {
  /** Top-level counts (the answer's own sampling pass). */
  input: number;
  output: number;
  /** Cache writes of every TTL (`cache_creation_input_tokens`). */
  cacheCreation: number;
  cacheRead: number;
  /** The 1-hour part of `cacheCreation` (`cache_creation.ephemeral_1h_input_tokens`); the rest is 5-minute. */
  cacheCreation1h: number;
  /** Sums over the `compaction` entries of `usage.iterations` (the summarisation pass). */
  compactionInput: number;
  compactionOutput: number;
  compactionCacheCreation: number;
  compactionCacheCreation1h: number;
  compactionCacheRead: number;
  /** `server_tool_use.web_search_requests`. */
  webSearchRequests: number;
  /** `usage.speed` when the upstream reported one (`fast` is priced at a multiple). */
  speed: string | undefined;
}

/** A Usage with every count at zero, for an answer whose reports have not arrived yet. */
export function emptyUsage(): Usage {
  return {
    input: 0,
    output: 0,
    cacheCreation: 0,
    cacheRead: 0,
    cacheCreation1h: 0,
    compactionInput: 0,
    compactionOutput: 0,
    compactionCacheCreation: 0,
    compactionCacheCreation1h: 0,
    compactionCacheRead: 0,
    webSearchRequests: 0,
    speed: undefined,
  };
}

/** The billed totals of an answer: top-level counts plus the compaction passes. */
export interface BilledTokens {
  input: number;
  output: number;
  /** Cache writes at the 5-minute and the 1-hour TTL. */
  cacheWrite5m: number;
  cacheWrite1h: number;
  cacheRead: number;
}

/** What an answer is billed for, in tokens (compaction passes included). */
export function billedTokens(u: Usage): BilledTokens {
  const write = u.cacheCreation + u.compactionCacheCreation;
  const write1h = Math.min(write, u.cacheCreation1h + u.compactionCacheCreation1h);
  return {
    input: u.input + u.compactionInput,
    output: u.output + u.compactionOutput,
    cacheWrite5m: write - write1h,
    cacheWrite1h: write1h,
    cacheRead: u.cacheRead + u.compactionCacheRead,
  };
}

/** A token count as the API sends it; `null` and anything else that is not a count is "not reported". */
function count(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : undefined;
}

function record(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
    ? (v as Record<string, unknown>)
    : undefined;
}

/**
 * Merge rule for usage reports: every field the raw `usage` object carries as a count overwrites the
 * one in `into`; absent or `null` fields leave it alone. A stream reports in two places —
 * `message_start.message.usage` (input and cache counts, output usually 1) and
 * `message_delta.usage` (the final, cumulative output; newer API versions repeat the input and cache
 * counts there, sometimes as `null`) — so "later non-null wins" gives the final numbers. A reported
 * `iterations` array replaces the compaction sums as a whole.
 * Returns whether `raw` was an object with at least one known count.
 */
export function mergeUsage(into: Usage, raw: unknown): boolean {
  const u = record(raw);
  if (u === undefined) return false;
  let seen = false;
  const input = count(u['input_tokens']);
  if (input !== undefined) {
    into.input = input;
    seen = true;
  }
  const output = count(u['output_tokens']);
  if (output !== undefined) {
    into.output = output;
    seen = true;
  }
  const cacheCreation = count(u['cache_creation_input_tokens']);
  if (cacheCreation !== undefined) {
    into.cacheCreation = cacheCreation;
    seen = true;
  }
  const cacheRead = count(u['cache_read_input_tokens']);
  if (cacheRead !== undefined) {
    into.cacheRead = cacheRead;
    seen = true;
  }
  const split = record(u['cache_creation']);
  if (split !== undefined) {
    const h1 = count(split['ephemeral_1h_input_tokens']);
    if (h1 !== undefined) into.cacheCreation1h = h1;
  }
  const tools = record(u['server_tool_use']);
  if (tools !== undefined) {
    const searches = count(tools['web_search_requests']);
    if (searches !== undefined) into.webSearchRequests = searches;
  }
  // Stored and shown: reduced to a short identifier, like the cache miss reason.
  if (typeof u['speed'] === 'string') into.speed = u['speed'].replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 32);
  const iterations = u['iterations'];
  if (Array.isArray(iterations)) {
    into.compactionInput = 0;
    into.compactionOutput = 0;
    into.compactionCacheCreation = 0;
    into.compactionCacheCreation1h = 0;
    into.compactionCacheRead = 0;
    for (const it of iterations) {
      const i = record(it);
      // The `message` iterations are the top-level counts again; only compaction is billed on top.
      if (i === undefined || i['type'] !== 'compaction') continue;
      into.compactionInput += count(i['input_tokens']) ?? 0;
      into.compactionOutput += count(i['output_tokens']) ?? 0;
      into.compactionCacheCreation += count(i['cache_creation_input_tokens']) ?? 0;
      into.compactionCacheRead += count(i['cache_read_input_tokens']) ?? 0;
      into.compactionCacheCreation1h +=
        count(record(i['cache_creation'])?.['ephemeral_1h_input_tokens']) ?? 0;
    }
  }
  return seen;
}

/**
 * `diagnostics.cache_miss_reason` of a response or event object (the `cache-diagnosis-2026-04-07`
 * beta): its `type` (or the value itself when it is a string), reduced to a short identifier so an
 * upstream cannot put arbitrary text into the log. Undefined when absent.
 */
export function cacheMissReason(holder: Record<string, unknown> | undefined): string | undefined {
  const diagnostics = record(holder?.['diagnostics']);
  if (diagnostics === undefined) return undefined;
  const raw = diagnostics['cache_miss_reason'];
  const reason = typeof raw === 'string' ? raw : record(raw)?.['type'];
  if (typeof reason !== 'string' || reason === '') return undefined;
  return reason.replace(/[^A-Za-z0-9_.:-]/g, '_').slice(0, 64);
}

/** The top-level members of a response body `usageFromJsonBody` reads. */
const RESPONSE_MEMBERS = ['usage', 'model', 'diagnostics'] as const;

/**
 * Usage and model of a non-streaming Messages API response body. Only the top-level `usage`,
 * `model` and `diagnostics` values are parsed: the object's members are located without building
 * the rest (body-sniff.ts), so a long answer's `content` — text, tool inputs, thinking — is
 * skipped by memchr instead of being turned into objects. Garbage, an error body or a body without
 * `usage` gives `usage: undefined`; never throws.
 */
export function usageFromJsonBody(buf: Buffer): { usage?: Usage; model?: string; cacheMissReason?: string } {
  const found = objectMembers(buf, skipWs(buf, 0), buf.length, RESPONSE_MEMBERS);
  if (found === undefined) return {};
  const body: Record<string, unknown> = {};
  try {
    for (let i = 0; i < RESPONSE_MEMBERS.length; i++) {
      const range = found[i];
      if (range) body[RESPONSE_MEMBERS[i]!] = JSON.parse(buf.toString('utf8', range[0], range[1]));
    }
  } catch {
    return {};
  }
  const out: { usage?: Usage; model?: string; cacheMissReason?: string } = {};
  const usage = emptyUsage();
  if (mergeUsage(usage, body['usage'])) out.usage = usage;
  if (typeof body['model'] === 'string') out.model = body['model'];
  const reason = cacheMissReason(body);
  if (reason !== undefined) out.cacheMissReason = reason;
  return out;
}
