/**
 * Token usage of one answer, read from the Messages API's own reports: the `usage` object of a
 * non-streaming JSON response, or the `message_start` / `message_delta` events of a stream.
 */

/** Token counts of one answer, as the upstream reported them. */
export interface Usage {
  input: number;
  output: number;
  cacheCreation: number;
  cacheRead: number;
}

/** A Usage with every count at zero, for an answer whose reports have not arrived yet. */
export function emptyUsage(): Usage {
  return { input: 0, output: 0, cacheCreation: 0, cacheRead: 0 };
}

/** A token count as the API sends it; `null` and anything else that is not a count is "not reported". */
function count(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : undefined;
}

/**
 * Merge rule for usage reports: every field the raw `usage` object carries as a count overwrites the
 * one in `into`; absent or `null` fields leave it alone. A stream reports in two places —
 * `message_start.message.usage` (input and cache counts, output usually 1) and
 * `message_delta.usage` (the final, cumulative output; newer API versions repeat the input and cache
 * counts there, sometimes as `null`) — so "later non-null wins" gives the final numbers.
 * Returns whether `raw` was an object with at least one known count.
 */
export function mergeUsage(into: Usage, raw: unknown): boolean {
  if (typeof raw !== 'object' || raw === null) return false;
  const u = raw as Record<string, unknown>;
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
  return seen;
}

/**
 * Usage and model of a non-streaming Messages API response body. Such bodies are small next to
 * requests, so a plain JSON.parse is fine here. Garbage, an error body or a body without `usage`
 * gives `usage: undefined`; never throws.
 */
export function usageFromJsonBody(buf: Buffer): { usage?: Usage; model?: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(buf.toString('utf8'));
  } catch {
    return {};
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return {};
  const body = parsed as Record<string, unknown>;
  const out: { usage?: Usage; model?: string } = {};
  const usage = emptyUsage();
  if (mergeUsage(usage, body['usage'])) out.usage = usage;
  if (typeof body['model'] === 'string') out.model = body['model'];
  return out;
}
