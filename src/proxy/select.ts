/**
 * Selection: the ordered candidates (channel, key) for one request, from the snapshot's channels,
 * the cooldown table and the round-robin pointers (docs/proxy.md#selection). Pure: the
 * clock is a parameter, and the round-robin state is only read — the result says how to advance it.
 */
import type { Config } from '../config/schema.js';
import type { Channel } from '../config/snapshot.js';
import { type CooldownState, coolingUntil } from './cooldown.js';

/** One thing to attempt: a channel and the index (`ChannelKey.index`) of the key to use. */
export interface Candidate {
  readonly channel: Channel;
  readonly keyIndex: number;
}

/** A round-robin pointer move: set pointer `key` to `value`. */
export interface RrAdvance {
  readonly key: string;
  readonly value: number;
}

/** An attempt already made in this request: channel (or its name) and key index. */
export interface TriedAttempt {
  readonly channel: string | { readonly name: string };
  readonly keyIndex: number;
}

/** What to do with one request. */
export type Selection =
  /** No enabled, usable channel serves the model (→ 404 `not_found_error` naming it). */
  | { readonly kind: 'none' }
  /** Attempt these in order; apply `rrAdvance` once per client request (from its first selection). */
  | {
      readonly kind: 'go';
      readonly candidates: readonly Candidate[];
      readonly rrAdvance: readonly RrAdvance[];
    }
  /**
   * Every untried candidate is cooling and `when_all_cooling` is `soonest`: the one whose cooldown
   * ends first. Attempt it at `until` if the request's deadline allows — never earlier.
   */
  | { readonly kind: 'wait'; readonly until: number; readonly candidate: Candidate }
  /**
   * Nothing is ready, and some untried candidate is only held by its channel's concurrency or
   * requests-per-minute cap (never cooled for it): wait for a slot — until `until` at the latest
   * (Infinity: until an attempt ends), also when `when_all_cooling` is `reject`.
   */
  | { readonly kind: 'busy'; readonly until: number; readonly candidate: Candidate }
  /** Every untried candidate is cooling and `when_all_cooling` is `reject` (→ 503 with retry-after). */
  | { readonly kind: 'reject'; readonly retryAfterMs: number }
  /**
   * Channels serve the model, but every (channel, key) was already tried in this request: answer
   * with the last upstream result. Only possible when `tried` is given.
   */
  | { readonly kind: 'exhausted' };

/** Input of `select`. */
export interface SelectInput {
  readonly channels: readonly Channel[];
  /** The requested model (before model_map). */
  readonly model: string;
  readonly cooldowns: CooldownState;
  /** Round-robin pointers (see `RoundRobin`); read only. */
  readonly rr: ReadonlyMap<string, number>;
  readonly now: number;
  readonly policy: Pick<Config['routing'], 'when_all_cooling'>;
  readonly tried?: readonly TriedAttempt[] | undefined;
  /**
   * Whether a channel is at its concurrency / requests-per-minute cap: undefined when free, else
   * when it frees a slot (Infinity: unknown, when an attempt ends). A capped channel is skipped.
   */
  readonly capped?: ((channel: Channel, now: number) => number | undefined) | undefined;
}

/**
 * The pointer key of a priority group: `p<priority>:` + the JSON list of its channel names, sorted.
 * A group is the set of enabled, usable channels of one priority serving a model, so requests for
 * any model with the same set share (and fairly rotate) one pointer, whatever is cooling.
 */
export function groupPointerKey(priority: number, names: readonly string[]): string {
  return `p${priority}:${JSON.stringify([...names].sort(byCodeUnit))}`;
}

/** The pointer key of a channel's key rotation: `k:` + the percent-encoded channel name. */
export function keyPointerKey(channelName: string): string {
  return `k:${encodeURIComponent(channelName)}`;
}

// Code-unit order, not locale order: the pointer key must not depend on the host's locale.
function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A pointer value as an offset into a list of length n (tolerates stale or damaged values). */
function offset(value: number | undefined, n: number): number {
  if (value === undefined || !Number.isFinite(value) || n <= 0) return 0;
  const v = Math.trunc(value) % n;
  return v < 0 ? v + n : v;
}

/** Can this channel serve the model at all (cooling aside)? */
function eligible(channel: Channel, model: string): boolean {
  return channel.enabled && channel.problems.length === 0 && channel.keys.length > 0 && channel.serves(model);
}

/** The usable channels of one priority serving a model, sorted by name, with their pointer keys. */
interface Group {
  readonly channels: readonly Channel[];
  readonly groupKey: string;
  /** `keyPointerKey` of each channel, in the order of `channels`. */
  readonly keyPointerKeys: readonly string[];
}

/**
 * Models remembered per channel list: the groups depend only on the (frozen, per-snapshot) channel
 * list and the model, but the model is the client's string, so the memo is bounded.
 */
const GROUP_MEMO_MODELS = 256;
const groupMemo = new WeakMap<readonly Channel[], Map<string, readonly Group[]>>();

/**
 * The priority groups (highest first) of the channels that can serve `model`, cooling aside:
 * computed once per channel list (one per snapshot) and model, not per request.
 */
function groupsFor(channels: readonly Channel[], model: string): readonly Group[] {
  let byModel = groupMemo.get(channels);
  if (!byModel) {
    byModel = new Map();
    groupMemo.set(channels, byModel);
  }
  let groups = byModel.get(model);
  if (groups === undefined) {
    groups = buildGroups(channels, model);
    if (byModel.size >= GROUP_MEMO_MODELS) byModel.clear();
    byModel.set(model, groups);
  }
  return groups;
}

function buildGroups(channels: readonly Channel[], model: string): readonly Group[] {
  const byPriority = new Map<number, Channel[]>();
  for (const c of channels) {
    if (!eligible(c, model)) continue;
    const group = byPriority.get(c.priority);
    if (group) group.push(c);
    else byPriority.set(c.priority, [c]);
  }
  return Object.freeze(
    [...byPriority.keys()]
      .sort((a, b) => b - a)
      .map((priority): Group => {
        const group = [...byPriority.get(priority)!].sort((a, b) => byCodeUnit(a.name, b.name));
        return Object.freeze({
          channels: Object.freeze(group),
          groupKey: groupPointerKey(
            priority,
            group.map((c) => c.name),
          ),
          keyPointerKeys: Object.freeze(group.map((c) => keyPointerKey(c.name))),
        });
      }),
  );
}

/** A candidate with where it came from, to derive the pointer moves. */
interface Placed {
  readonly candidate: Candidate;
  readonly groupKey: string;
  readonly groupSize: number;
  readonly groupPos: number;
  readonly keyPos: number;
}

/**
 * The candidates for one request. Order: priority descending; inside a priority group, rotation
 * from the group's pointer (channels sorted by name); inside a channel, its keys consecutively
 * from the channel's key pointer — so a 429 on one key moves to the next key, then the next
 * channel. Cooling pairs (any active channel / key / model scope) and pairs in `tried` are left
 * out. The pointer moves (`rrAdvance`) follow the first candidate: its group continues after it,
 * its channel's keys after its key; groups and channels of one element get no move.
 * `max_attempts` is the caller's to enforce.
 */
export function select(input: SelectInput): Selection {
  const { model, cooldowns, rr, now } = input;
  const groups = groupsFor(input.channels, model);
  if (groups.length === 0) return { kind: 'none' };

  const triedList = input.tried ?? [];
  const tried =
    triedList.length === 0
      ? undefined
      : new Set(
          triedList.map((t) =>
            pairKey(typeof t.channel === 'string' ? t.channel : t.channel.name, t.keyIndex),
          ),
        );
  // Nothing cooling (the usual case): no scope lookups.
  const anyCooling = cooldowns.entries.size > 0;

  const ready: Placed[] = [];
  let soonest: { until: number; candidate: Candidate } | undefined;
  let busy: { until: number; candidate: Candidate } | undefined;
  for (const { channels: group, groupKey, keyPointerKeys } of groups) {
    const start = offset(rr.get(groupKey), group.length);
    for (let g = 0; g < group.length; g++) {
      const groupPos = (start + g) % group.length;
      const channel = group[groupPos]!;
      const keys = channel.keys;
      const keyStart = keys.length > 1 ? offset(rr.get(keyPointerKeys[groupPos]!), keys.length) : 0;
      const cap = input.capped?.(channel, now);
      for (let k = 0; k < keys.length; k++) {
        const keyPos = (keyStart + k) % keys.length;
        const keyIndex = keys[keyPos]!.index;
        if (tried?.has(pairKey(channel.name, keyIndex))) continue;
        const candidate: Candidate = { channel, keyIndex };
        const until = anyCooling ? coolingUntil(cooldowns, channel, keyIndex, model, now) : 0;
        if (until > now) {
          // Strict `<`: on a tie the earlier candidate in the order (higher priority) wins.
          if (!soonest || until < soonest.until) soonest = { until, candidate };
          continue;
        }
        if (cap !== undefined) {
          if (!busy || cap < busy.until) busy = { until: cap, candidate };
          continue;
        }
        ready.push({ candidate, groupKey, groupSize: group.length, groupPos, keyPos });
      }
    }
  }

  const first = ready[0];
  if (first) {
    const rrAdvance: RrAdvance[] = [];
    if (first.groupSize > 1)
      rrAdvance.push({ key: first.groupKey, value: (first.groupPos + 1) % first.groupSize });
    const keyCount = first.candidate.channel.keys.length;
    if (keyCount > 1) {
      rrAdvance.push({
        key: keyPointerKey(first.candidate.channel.name),
        value: (first.keyPos + 1) % keyCount,
      });
    }
    return { kind: 'go', candidates: ready.map((p) => p.candidate), rrAdvance };
  }
  if (busy) {
    const until = Math.min(busy.until, soonest?.until ?? Number.POSITIVE_INFINITY);
    return { kind: 'busy', until, candidate: busy.candidate };
  }
  if (soonest) {
    return input.policy.when_all_cooling === 'reject'
      ? { kind: 'reject', retryAfterMs: soonest.until - now }
      : { kind: 'wait', until: soonest.until, candidate: soonest.candidate };
  }
  return { kind: 'exhausted' };
}

/** What a request does when every untried candidate is cooling (`wait` or `reject` selection). */
export type CoolingDecision =
  /** Sleep until `until` (wall clock; `ms` from now), then select again. */
  | { readonly kind: 'wait'; readonly until: number; readonly ms: number }
  /**
   * Do not wait: answer 503 `CCL_ALL_COOLING` with `retry-after: retryAfterS` — or, when an
   * attempt of this request already failed, answer with that attempt's result instead.
   */
  | { readonly kind: 'answer'; readonly retryAfterS: number };

/**
 * The cooling-wait decision (docs/proxy.md#selection). A request waits for the soonest cooling
 * candidate only when the policy is `soonest`, it has not waited yet, and the wait fits both
 * `routing.cooling_wait` and what is left of its deadline — an attempt never starts on a cooling
 * scope. Pure: `now` is the wall clock of the selection, `remainingMs` the deadline left.
 */
export function coolingDecision(
  sel: Extract<Selection, { kind: 'wait' | 'reject' }>,
  input: {
    readonly now: number;
    readonly remainingMs: number;
    readonly coolingWait: number;
    readonly waited: boolean;
  },
): CoolingDecision {
  const until = sel.kind === 'wait' ? sel.until : input.now + sel.retryAfterMs;
  const ms = until - input.now;
  if (sel.kind === 'reject' || input.waited || ms > Math.min(input.remainingMs, input.coolingWait)) {
    return { kind: 'answer', retryAfterS: Math.max(1, Math.ceil(ms / 1000)) };
  }
  return { kind: 'wait', until, ms };
}

// JSON keeps any character in a channel name from colliding with the separator.
function pairKey(channel: string, keyIndex: number): string {
  return JSON.stringify([channel, keyIndex]);
}

/** The round-robin pointers: pointer key (`groupPointerKey` / `keyPointerKey`) → next start offset. */
export type RoundRobin = Map<string, number>;

/** An empty pointer table. */
export function createRoundRobin(): RoundRobin {
  return new Map();
}

/** Applies a selection's pointer moves (the caller persists the same moves). */
export function applyRrAdvance(rr: RoundRobin, advance: readonly RrAdvance[]): void {
  for (const { key, value } of advance) rr.set(key, value);
}

/** Every pointer as a `[key, value]` row (the store's `saveRr` takes these). */
export function roundRobinRows(rr: ReadonlyMap<string, number>): [string, number][] {
  return [...rr];
}

/**
 * A pointer table rebuilt from stored `[key, value]` rows (the store's `loadRr` map is one);
 * rows with a non-integer or negative value are skipped.
 */
export function restoreRoundRobin(rows: Iterable<readonly [string, number]>): RoundRobin {
  const rr = createRoundRobin();
  for (const [key, value] of rows) {
    if (typeof key === 'string' && Number.isInteger(value) && value >= 0) rr.set(key, value);
  }
  return rr;
}
