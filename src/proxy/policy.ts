/**
 * Operator policy decisions (docs/proxy.md#client-token-policy): which requests a client token may
 * make (model and channel allow-lists, concurrency, daily and monthly budgets), the budget windows
 * in a time zone, and whether a channel is at its concurrency or requests-per-minute cap. Pure: the
 * clock, the counters and the spend are parameters; `limits.ts` keeps the state and applies them.
 *
 * Why these statuses (Claude Code and the Anthropic SDKs retry 408, 409, 429 and 5xx with backoff,
 * honour `retry-after` up to a minute, and never retry when told `x-should-retry: false`):
 * - allow-lists: 403 `permission_error` — the request can never succeed with this token;
 * - concurrency: 429 `rate_limit_error` with `retry-after` — one of the token's own requests ends
 *   soon, so a retry after a short wait is the right thing, and the client's retry budget bounds it;
 * - budget: 402 `billing_error` with `x-should-retry: false` — nothing helps before the window
 *   resets (hours away), so the client must stop; the message says which budget and when it resets.
 */
import type { Channel, TokenPolicy } from '../config/snapshot.js';
import { ErrorCode } from '../errors.js';

// --- budget windows --------------------------------------------------------------------------

/** The current day and month of a time zone, as half-open ranges of epoch ms. */
export interface BudgetWindows {
  readonly timeZone: string;
  readonly dayStart: number;
  readonly dayEnd: number;
  readonly monthStart: number;
  readonly monthEnd: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** The wall-clock date and time of `at` in `timeZone`. */
function wallClock(at: number, timeZone: string) {
  const p: Record<string, number> = {};
  for (const part of formatter(timeZone).formatToParts(at)) {
    if (part.type !== 'literal') p[part.type] = Number(part.value);
  }
  return { y: p['year']!, mo: p['month']!, d: p['day']!, h: p['hour']!, mi: p['minute']!, s: p['second']! };
}

/** Offset of `timeZone` from UTC at `at`, ms (local = UTC + offset). */
function offsetAt(at: number, timeZone: string): number {
  const w = wallClock(at, timeZone);
  return Date.UTC(w.y, w.mo - 1, w.d, w.h, w.mi, w.s) - Math.floor(at / 1000) * 1000;
}

/**
 * The first instant of the local date y-mo-d in `timeZone`: its midnight, or — where a clock change
 * skips midnight — the first local time that exists on that date. Month and day may overflow
 * (Date.UTC normalises them).
 */
export function startOfLocalDay(y: number, mo: number, d: number, timeZone: string): number {
  const guess = Date.UTC(y, mo - 1, d);
  const target = new Date(guess);
  const want = [target.getUTCFullYear(), target.getUTCMonth() + 1, target.getUTCDate()];
  const candidates = [
    ...new Set([
      guess - offsetAt(guess, timeZone),
      guess - offsetAt(guess - offsetAt(guess, timeZone), timeZone),
    ]),
  ].sort((a, b) => a - b);
  for (const c of candidates) {
    const w = wallClock(c, timeZone);
    if (w.y === want[0] && w.mo === want[1] && w.d === want[2]) {
      // On a date whose midnight repeats, step back to the earlier of the two.
      const earlier = c - 3_600_000;
      const we = wallClock(earlier, timeZone);
      return we.y === w.y && we.mo === w.mo && we.d === w.d && we.h === 0 ? earlier : c;
    }
  }
  return candidates[candidates.length - 1]!;
}

/** The day and month windows containing `now` in `timeZone`. */
export function budgetWindows(now: number, timeZone: string): BudgetWindows {
  const w = wallClock(now, timeZone);
  return {
    timeZone,
    dayStart: startOfLocalDay(w.y, w.mo, w.d, timeZone),
    dayEnd: startOfLocalDay(w.y, w.mo, w.d + 1, timeZone),
    monthStart: startOfLocalDay(w.y, w.mo, 1, timeZone),
    monthEnd: startOfLocalDay(w.y, w.mo + 1, 1, timeZone),
  };
}

/** `windows` if `now` is still inside its day, else the windows of `now` (cheap on the hot path). */
export function currentWindows(
  windows: BudgetWindows | undefined,
  now: number,
  timeZone: string,
): BudgetWindows {
  if (windows && windows.timeZone === timeZone && now >= windows.dayStart && now < windows.dayEnd)
    return windows;
  return budgetWindows(now, timeZone);
}

// --- refusals ----------------------------------------------------------------------------------

/** Why a request is refused before routing. */
export type RefusalCode =
  | typeof ErrorCode.TOKEN_MODEL
  | typeof ErrorCode.TOKEN_CHANNELS
  | typeof ErrorCode.TOKEN_CONCURRENCY
  | typeof ErrorCode.TOKEN_BUDGET;

/**
 * A refusal: the code (its status and Anthropic type are the catalogue's, src/errors.ts), a message
 * naming the rule, and extra headers.
 */
export interface Refusal {
  readonly code: RefusalCode;
  readonly message: string;
  readonly headers: readonly string[];
}

/** How long a client over its concurrency limit is told to wait before retrying, seconds. */
export const CONCURRENCY_RETRY_AFTER_S = 2;

/** Spend of one token in the current windows, USD. */
export interface Spend {
  readonly day: number;
  readonly month: number;
}

const usd = (x: number) => `$${x.toFixed(2)}`;

function resetText(at: number, timeZone: string): string {
  const iso = new Date(at).toISOString().replace(/\.000Z$/, 'Z');
  if (timeZone === 'UTC') return iso;
  const w = wallClock(at, timeZone);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${w.y}-${pad(w.mo)}-${pad(w.d)} ${pad(w.h)}:${pad(w.mi)} ${timeZone} (${iso})`;
}

/**
 * Admission of a token's request before its body is read: the concurrency limit (`inflight` counts
 * the token's requests already running, this one not included), then the budgets. Undefined: admit.
 */
export function admitToken(
  name: string,
  policy: TokenPolicy,
  inflight: number,
  spend: Spend,
  windows: BudgetWindows,
): Refusal | undefined {
  if (policy.maxConcurrency !== undefined && inflight >= policy.maxConcurrency) {
    return {
      code: ErrorCode.TOKEN_CONCURRENCY,
      message: `client token "${name}" already has ${inflight} request(s) in flight, its max_concurrency (auth.tokens[].max_concurrency: ${policy.maxConcurrency}); retry when one has finished`,
      headers: ['retry-after', String(CONCURRENCY_RETRY_AFTER_S), 'x-should-retry', 'true'],
    };
  }
  const over = (which: 'daily' | 'monthly', limit: number, spent: number, resets: number): Refusal => ({
    code: ErrorCode.TOKEN_BUDGET,
    message: `client token "${name}" has spent ${usd(spent)} of its ${which} budget of ${usd(limit)} (auth.tokens[].budget.${which}); it resets at ${resetText(resets, windows.timeZone)}`,
    headers: ['x-should-retry', 'false'],
  });
  if (policy.monthly !== undefined && spend.month >= policy.monthly)
    return over('monthly', policy.monthly, spend.month, windows.monthEnd);
  if (policy.daily !== undefined && spend.day >= policy.daily)
    return over('daily', policy.daily, spend.day, windows.dayEnd);
  return undefined;
}

/**
 * Admission by model, once it is known: the token's model allow-list, then whether any channel it
 * may use serves the model (`allowed`: the channels the token may use; `serving`: does any channel
 * at all serve it — when none does, routing answers its own 404). Undefined: admit.
 */
export function admitModel(
  name: string,
  policy: TokenPolicy,
  model: string,
  allowed: readonly Channel[],
  anyServes: boolean,
): Refusal | undefined {
  if (!policy.allowsModel(model)) {
    return {
      code: ErrorCode.TOKEN_MODEL,
      message: `client token "${name}" may not use model ${model} (auth.tokens[].models: ${policy.models!.join(', ')})`,
      headers: [],
    };
  }
  if (policy.channels !== undefined && anyServes && !allowed.some((c) => c.enabled && c.serves(model))) {
    return {
      code: ErrorCode.TOKEN_CHANNELS,
      message: `no channel client token "${name}" may use serves model ${model} (auth.tokens[].channels: ${policy.channels.join(', ')})`,
      headers: [],
    };
  }
  return undefined;
}

// --- channel caps ------------------------------------------------------------------------------

/** Length of the requests-per-minute window, ms. */
export const RPM_WINDOW_MS = 60_000;

/**
 * When a channel is at one of its caps: undefined when it is free; otherwise the time its
 * requests-per-minute window frees a slot (`starts`: start times of its recent attempts, oldest
 * first), or Infinity when only the concurrency cap holds it (a slot frees when an attempt ends).
 */
export function cappedUntil(
  channel: Pick<Channel, 'maxConcurrency' | 'rpm'>,
  inflight: number,
  starts: readonly number[],
  now: number,
): number | undefined {
  let until: number | undefined;
  if (channel.maxConcurrency !== undefined && inflight >= channel.maxConcurrency)
    until = Number.POSITIVE_INFINITY;
  if (channel.rpm !== undefined) {
    let recent = 0;
    let oldest = Number.POSITIVE_INFINITY;
    for (const s of starts) {
      if (s > now - RPM_WINDOW_MS) {
        recent++;
        if (s < oldest) oldest = s;
      }
    }
    if (recent >= channel.rpm) {
      const free = oldest + RPM_WINDOW_MS;
      // Both caps: free only when both are; the concurrency cap's time is unknown.
      until = until === undefined ? free : Number.POSITIVE_INFINITY;
    }
  }
  return until;
}
