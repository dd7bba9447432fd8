/**
 * Cooldowns: which scopes (channel, key, model on a channel, key + model) rest after a failure,
 * until when, and how the backoff grows (docs/proxy.md#outcomes-and-cooldowns).
 *
 * Pure state transitions over a Map: no clock, no I/O. Every function that decides takes `now`, so
 * tests drive a manual clock. The owner writes entries through to SQLite with `cooldownRow` and
 * restores them at start with `restoreCooldowns`.
 *
 * Models in the two model scopes are stored as sent upstream (the channel's `model_map` applied to
 * the requested model), so aliases that map to the same upstream model share one cooldown. Callers
 * always pass the requested model.
 */
import type { Channel } from '../config/snapshot.js';

/** A cooled scope: what one failure is blamed on. */
export type CooldownScope = 'channel' | 'key' | 'channel+model' | 'key+model';

/** The parts of a channel that cooldowns need (a snapshot `Channel` satisfies it). */
export type CooledChannel = Pick<Channel, 'name' | 'identity' | 'mapModel'>;

/** The address of one scope: which channel, and the key index / upstream model when the scope has them. */
export interface ScopeTarget {
  readonly scope: CooldownScope;
  readonly channel: string;
  readonly keyIndex?: number | undefined;
  readonly model?: string | undefined;
}

/** One cooled scope. Replaced (never mutated) on each change. */
export interface CooldownEntry extends ScopeTarget {
  /** Absolute ms until which the scope is cooling; it is active while `now < until`. */
  readonly until: number;
  /** Consecutive failures of this scope; the backoff doubles with each. */
  readonly failures: number;
  /** Short human reason of the last failure, e.g. `429 rate limited`. */
  readonly reason: string;
  /** `channel.identity` when cooled: an entry from before a url/key change is ignored. */
  readonly identity: string;
}

/** The in-memory cooldown table, keyed by `scopeKey`. Mutable; owned by the runtime. */
export interface CooldownState {
  readonly entries: Map<string, CooldownEntry>;
}

/** Backoff policy: `routing.cooldown` from the config, in ms. */
export interface CooldownPolicy {
  readonly base: number;
  readonly max: number;
}

/** What a failure says about cooling (an `Outcome` from outcome.ts satisfies it). */
export interface FailureInfo {
  readonly scope: CooldownScope | 'none';
  readonly reason: string;
  /** Absolute ms the upstream named for retrying (retry-after, rate-limit reset). */
  readonly resetAt?: number | undefined;
  /** Start the backoff long: the failure rarely heals by itself (401/403). */
  readonly longStart?: boolean | undefined;
}

/** The attempt a failure or success belongs to; `model` is the requested model. */
export interface AttemptContext {
  readonly channel: CooledChannel;
  readonly keyIndex: number;
  readonly model: string;
}

/** An empty cooldown table, or one holding the given entries. */
export function createCooldownState(entries: Iterable<CooldownEntry> = []): CooldownState {
  const state: CooldownState = { entries: new Map() };
  for (const e of entries) state.entries.set(scopeKey(e), e);
  return state;
}

/**
 * The map/database key of a scope: `c:<channel>`, `k:<channel>#<idx>`, `m:<channel>|<model>`,
 * `km:<channel>#<idx>|<model>`. Names and models are percent-encoded (`#`, `|`, `:` and `%` become
 * escapes), so any character in a name still gives one unambiguous key.
 */
export function scopeKey(target: ScopeTarget): string {
  const ch = encodeURIComponent(target.channel);
  const needKey = target.scope === 'key' || target.scope === 'key+model';
  const needModel = target.scope === 'channel+model' || target.scope === 'key+model';
  if (needKey && (target.keyIndex === undefined || !Number.isInteger(target.keyIndex))) {
    throw new Error(`scope ${target.scope} needs a key index`);
  }
  if (needModel && target.model === undefined) throw new Error(`scope ${target.scope} needs a model`);
  switch (target.scope) {
    case 'channel':
      return `c:${ch}`;
    case 'key':
      return `k:${ch}#${target.keyIndex}`;
    case 'channel+model':
      return `m:${ch}|${encodeURIComponent(target.model!)}`;
    case 'key+model':
      return `km:${ch}#${target.keyIndex}|${encodeURIComponent(target.model!)}`;
  }
}

/** The effective ceiling: a `max` below `base` would make the backoff shrink, so `base` wins then. */
function ceiling(policy: CooldownPolicy): number {
  return Math.max(policy.base, policy.max);
}

/**
 * The backoff for the n-th consecutive failure (n ≥ 1): `base · 2^(n-1)`, capped at `max`.
 * With `longStart` the first step is `max / 4` (7.5 min at the default 30 min), never less than
 * `base`: a rejected key (401/403) rarely heals by itself, so probing it every second only produces
 * noise and gets accounts flagged; a quarter of `max` scales with the operator's own policy (a test
 * config with `max: 1m` rests 15 s) where a fixed 5 min would not. `base: 0` disables backoff
 * cooling (an upstream reset time still applies).
 */
export function backoffMs(failures: number, policy: CooldownPolicy, longStart = false): number {
  const cap = ceiling(policy);
  const start = longStart ? Math.max(policy.base, cap / 4) : policy.base;
  const n = Math.max(1, Math.floor(failures));
  // 2^(n-1) overflows to Infinity for absurd n, which min() caps anyway.
  return Math.min(cap, start * 2 ** (n - 1));
}

/** The scope target a failure of `scope` during this attempt cools. */
function targetOf(scope: CooldownScope, ctx: AttemptContext): ScopeTarget {
  const channel = ctx.channel.name;
  const model = ctx.channel.mapModel(ctx.model);
  switch (scope) {
    case 'channel':
      return { scope, channel };
    case 'key':
      return { scope, channel, keyIndex: ctx.keyIndex };
    case 'channel+model':
      return { scope, channel, model };
    case 'key+model':
      return { scope, channel, keyIndex: ctx.keyIndex, model };
  }
}

/**
 * How long a scope's failure count outlives its cooldown: one `max` after `until`. A failure
 * within that window continues the doubling (a flapping upstream climbs to `max` instead of being
 * probed every `base`); after it, the scope starts again at `base`.
 */
function remembered(entry: CooldownEntry, policy: CooldownPolicy, now: number): boolean {
  return now < entry.until + ceiling(policy);
}

/**
 * The latest `until` of any active scope covering the candidate (channel; key when `keyIndex` is
 * given; channel+model when `model` is given; key+model when both are), or 0 when none is active.
 * Entries cooled under another channel identity (its url or keys changed since) are ignored.
 */
export function coolingUntil(
  state: CooldownState,
  channel: CooledChannel,
  keyIndex: number | undefined,
  model: string | undefined,
  now: number,
): number {
  const name = channel.name;
  const sent = model === undefined ? undefined : channel.mapModel(model);
  const targets: ScopeTarget[] = [{ scope: 'channel', channel: name }];
  if (keyIndex !== undefined) targets.push({ scope: 'key', channel: name, keyIndex });
  if (sent !== undefined) targets.push({ scope: 'channel+model', channel: name, model: sent });
  if (keyIndex !== undefined && sent !== undefined) {
    targets.push({ scope: 'key+model', channel: name, keyIndex, model: sent });
  }
  let latest = 0;
  for (const target of targets) {
    const e = state.entries.get(scopeKey(target));
    if (e && e.identity === channel.identity && e.until > now && e.until > latest) latest = e.until;
  }
  return latest;
}

/**
 * Records one failed attempt and returns the new entry (undefined for scope `none`).
 *
 * - First failure of a scope: `base`; each further one doubles, up to `max` (`backoffMs`).
 * - An exact reset time from the upstream (`resetAt` in the future) replaces the backoff, longer
 *   or shorter, but is capped at `now + max` so a bogus or daily-quota header cannot park a key
 *   for days; the failure still counts towards the doubling.
 * - A failure while the scope is still active came from an attempt already in flight when the
 *   scope was cooled (selection never starts one on a cooling scope). It does not escalate: ten
 *   concurrent requests to a dead channel are one failure, not ten doublings. It can only extend
 *   `until` to a later upstream reset time.
 * - An entry of another channel identity is discarded: the channel changed, clean start.
 *
 * `until` is always in the future when the backoff is positive — the Go ccLoad stored the expiry as
 * "now", so nothing ever cooled (regression-tested).
 */
export function recordFailure(
  state: CooldownState,
  failure: FailureInfo,
  ctx: AttemptContext,
  policy: CooldownPolicy,
  now: number,
): CooldownEntry | undefined {
  if (failure.scope === 'none') return undefined;
  const target = targetOf(failure.scope, ctx);
  const key = scopeKey(target);
  const prev = state.entries.get(key);
  const known =
    prev && prev.identity === ctx.channel.identity && remembered(prev, policy, now) ? prev : undefined;
  const reset =
    failure.resetAt !== undefined && Number.isFinite(failure.resetAt) && failure.resetAt > now
      ? Math.min(failure.resetAt, now + ceiling(policy))
      : undefined;

  let failures: number;
  let until: number;
  if (known && known.until > now) {
    failures = known.failures;
    until = Math.max(known.until, reset ?? 0);
  } else {
    failures = (known?.failures ?? 0) + 1;
    until = reset ?? now + backoffMs(failures, policy, failure.longStart === true);
  }
  const entry: CooldownEntry = {
    ...target,
    until,
    failures,
    reason: failure.reason,
    identity: ctx.channel.identity,
  };
  state.entries.set(key, entry);
  return entry;
}

/**
 * Records a complete success: clears the channel, key, channel+model and key+model scopes the
 * attempt used (failure counts included) and returns the removed entries, so the owner can delete
 * their rows. A success is evidence regardless of time, so `now` does not matter; it is accepted
 * for symmetry with `recordFailure`.
 */
export function recordSuccess(state: CooldownState, ctx: AttemptContext, _now?: number): CooldownEntry[] {
  const cleared: CooldownEntry[] = [];
  for (const scope of ['channel', 'key', 'channel+model', 'key+model'] as const) {
    const key = scopeKey(targetOf(scope, ctx));
    const e = state.entries.get(key);
    if (e) {
      state.entries.delete(key);
      cleared.push(e);
    }
  }
  return cleared;
}

/** Removes every entry of the named channel (admin "clear cooldown"); returns the removed entries. */
export function clearChannel(state: CooldownState, name: string): CooldownEntry[] {
  const cleared: CooldownEntry[] = [];
  for (const [key, e] of state.entries) {
    if (e.channel === name) {
      state.entries.delete(key);
      cleared.push(e);
    }
  }
  return cleared;
}

/**
 * The entries cooling at `now`, soonest end first. Given the current channels, entries of unknown
 * channels or of an outdated identity are left out (they no longer cool anything).
 */
export function activeEntries(
  state: CooldownState,
  now: number,
  channels?: readonly Pick<Channel, 'name' | 'identity'>[],
): CooldownEntry[] {
  const identities = channels ? new Map(channels.map((c) => [c.name, c.identity])) : undefined;
  const active: CooldownEntry[] = [];
  for (const e of state.entries.values()) {
    if (e.until <= now) continue;
    if (identities && identities.get(e.channel) !== e.identity) continue;
    active.push(e);
  }
  return active.sort((a, b) => a.until - b.until || a.channel.localeCompare(b.channel));
}

/**
 * Drops entries that no longer matter and returns them: expired ones once their failure count is
 * forgotten (one `max` after `until`, see `recordFailure`), and — when the current channels are
 * given — entries of removed channels or of an outdated identity.
 */
export function prune(
  state: CooldownState,
  now: number,
  policy: CooldownPolicy,
  channels?: readonly Pick<Channel, 'name' | 'identity'>[],
): CooldownEntry[] {
  const identities = channels ? new Map(channels.map((c) => [c.name, c.identity])) : undefined;
  const dropped: CooldownEntry[] = [];
  for (const [key, e] of state.entries) {
    const stale = identities !== undefined && identities.get(e.channel) !== e.identity;
    if (stale || !remembered(e, policy, now)) {
      state.entries.delete(key);
      dropped.push(e);
    }
  }
  return dropped;
}

/**
 * One cooldown as a plain database row (`null` for an absent key index / model): the proxy owns the
 * shape, the store (src/store/state-store.ts) persists it.
 */
export interface CooldownRow {
  /** Identifies the scope: `scopeKey` below (`c:main`, `k:main#0`, `m:main|claude-x`, …). */
  readonly scopeKey: string;
  /** `channel` | `key` | `channel+model` | `key+model`; owned by the cooldown module. */
  readonly scope: string;
  readonly channel: string;
  readonly keyIndex: number | null;
  readonly model: string | null;
  /** End of the cooldown, ms since the epoch. */
  readonly until: number;
  /** Consecutive failures of this scope (drives the backoff). */
  readonly failures: number;
  readonly reason: string | null;
  /** The channel's url+keys identity when the row was written. */
  readonly identity: string | null;
  /** When the row was written (ms); multi-instance sync compares it with local clears. */
  readonly updatedAt: number;
}

/** The row of one entry, for writing through to SQLite at `now`. */
export function cooldownRow(entry: CooldownEntry, now: number): CooldownRow {
  return {
    scopeKey: scopeKey(entry),
    scope: entry.scope,
    channel: entry.channel,
    keyIndex: entry.keyIndex ?? null,
    model: entry.model ?? null,
    until: entry.until,
    failures: entry.failures,
    reason: entry.reason,
    identity: entry.identity,
    updatedAt: now,
  };
}

/** Every entry as a row. */
export function cooldownRows(state: CooldownState, now: number): CooldownRow[] {
  return [...state.entries.values()].map((e) => cooldownRow(e, now));
}

const SCOPES: ReadonlySet<string> = new Set(['channel', 'key', 'channel+model', 'key+model']);

/**
 * A cooldown table rebuilt from stored rows. Rows that do not describe a valid scope (unknown scope
 * name, missing key index or model, non-finite numbers) are skipped: a damaged row must not keep a
 * channel cooling. The stored `scopeKey` is recomputed rather than trusted. A row without identity
 * matches no channel, so it cools nothing (and `prune` with the channels drops it).
 */
export function restoreCooldowns(
  rows: Iterable<
    Omit<CooldownRow, 'scopeKey' | 'updatedAt'> & Partial<Pick<CooldownRow, 'scopeKey' | 'updatedAt'>>
  >,
): CooldownState {
  const state = createCooldownState();
  for (const row of rows) {
    if (!SCOPES.has(row.scope) || typeof row.channel !== 'string') continue;
    if (!Number.isFinite(row.until) || !Number.isInteger(row.failures) || row.failures < 1) continue;
    const scope = row.scope as CooldownScope;
    const hasKey = scope === 'key' || scope === 'key+model';
    const hasModel = scope === 'channel+model' || scope === 'key+model';
    if (hasKey !== (row.keyIndex !== null && Number.isInteger(row.keyIndex))) continue;
    if (hasModel !== (typeof row.model === 'string')) continue;
    const entry: CooldownEntry = {
      scope,
      channel: row.channel,
      ...(hasKey ? { keyIndex: row.keyIndex as number } : {}),
      ...(hasModel ? { model: row.model as string } : {}),
      until: row.until,
      failures: row.failures,
      reason: row.reason ?? '',
      identity: row.identity ?? '',
    };
    state.entries.set(scopeKey(entry), entry);
  }
  return state;
}
