/**
 * Session affinity: which candidate serves a Claude Code session, so that its turns stay on the
 * account that holds its prompt cache, while the sessions (not the requests) spread over the
 * equal-priority channels and keys. See docs/affinity.md for the reasoning behind each rule.
 *
 * Pure decisions over a pin table (a Map, mutated in place): no clock, no I/O, no randomness. Every
 * function that decides takes `now`, so tests drive a manual clock. The owner (affinity-state.ts)
 * writes the changed pins through to SQLite and restores them at start.
 */
import { createHash } from 'node:crypto';
import type { Config } from '../config/schema.js';
import type { Channel } from '../config/snapshot.js';
import { type CooldownState, coolingUntil } from './cooldown.js';
import type { Candidate } from './select.js';

/** `routing.affinity` from the config, durations in ms. */
export type AffinityPolicy = Config['routing']['affinity'];

/**
 * What affinity did for one attempt or request: `pinned` the session's pin served it; `new` the
 * session had no pin and got one; `moved` its pin moved (the pinned scope stayed unavailable, or a
 * higher priority recovered); `kept` its pin was unavailable for a short while, another candidate
 * served and the pin stayed; `none` no session id (or affinity off, or not a messages request).
 */
export type AffinityResult = 'pinned' | 'new' | 'moved' | 'kept' | 'none';

/** Every `AffinityResult`, in the order metrics and docs list them. */
export const AFFINITY_RESULTS: readonly AffinityResult[] = ['pinned', 'new', 'moved', 'kept', 'none'];

/** One session's pin. Mutable: owned by a `PinTable`. */
export interface Pin {
  /** The session key (`sessionKey`): a hash, never the client's raw session id. */
  readonly session: string;
  channel: string;
  keyIndex: number;
  /** `channel.identity` when pinned: a pin from before a url/key change is dropped. */
  identity: string;
  /** Last time a request of the session was routed (ms); the pin expires `idle` after it. */
  lastUsed: number;
  /**
   * False while the pin is only a tentative assignment (no successful answer yet): it counts
   * towards the load so concurrent new sessions spread, but it is neither persisted nor kept when
   * the request fails.
   */
  confirmed: boolean;
  /**
   * Since when the pinned scope has kept this session away without a break (0: it has not). A gap
   * of `move_after` between two requests of the session ends the stretch: trouble long ago does
   * not add up with a brief cooldown now.
   */
  troubleSince: number;
}

/** The pin table: pins by session key, least recently used first, and the sessions per key. */
export interface PinTable {
  readonly pins: Map<string, Pin>;
  /** Sessions pinned (tentatively included) per `pairKey(channel, keyIndex)`: `JSON.stringify([channel, keyIndex])`. */
  readonly pairLoad: Map<string, number>;
  /** Sessions pinned per channel name. */
  readonly channelLoad: Map<string, number>;
}

/**
 * Most pins held; beyond it the least recently used pin is dropped. A pin costs about 200 bytes, so
 * this bounds the table near 20 MB whatever session ids clients invent.
 */
export const MAX_PINS = 100_000;

/** Longest session id accepted (Claude Code's are 36-character UUIDs). */
const MAX_SESSION_ID = 128;
const SESSION_ID = /^[\x21-\x7e]+$/;
/** The older `metadata.user_id` form: `user_<hash>_account_<uuid>_session_<uuid>`. */
const LEGACY_SESSION = /_session_([\x21-\x7e]+)$/;

/** An empty pin table. */
export function createPinTable(): PinTable {
  return { pins: new Map(), pairLoad: new Map(), channelLoad: new Map() };
}

function validId(v: unknown): string | undefined {
  return typeof v === 'string' && v.length <= MAX_SESSION_ID && SESSION_ID.test(v) ? v : undefined;
}

/**
 * The session id inside a `metadata.user_id` value: the `session_id` of its JSON form
 * (`{"device_id","account_uuid","session_id"}`, Claude Code since 2.1), or the part after
 * `_session_` of the older `user_<hash>_account_<uuid>_session_<uuid>`. Undefined for anything else
 * (an SDK user's own user_id, malformed JSON, an id that is too long or not printable ASCII).
 */
export function sessionFromUserId(userId: string | undefined): string | undefined {
  if (userId === undefined || userId.length > 4096) return undefined;
  if (userId.trimStart().startsWith('{')) {
    try {
      const parsed: unknown = JSON.parse(userId);
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined;
      return validId((parsed as Record<string, unknown>)['session_id']);
    } catch {
      return undefined;
    }
  }
  return validId(LEGACY_SESSION.exec(userId)?.[1]);
}

/**
 * The session id of a request: the `x-claude-code-session-id` header when it holds a valid one,
 * else the session inside the body's top-level `metadata.user_id`, else undefined.
 */
export function sessionIdOf(
  header: string | string[] | undefined,
  userId: string | undefined,
): string | undefined {
  const h = validId(typeof header === 'string' ? header.trim() : undefined);
  return h ?? sessionFromUserId(userId);
}

/**
 * The key of a session in the pin table, in records and in the database: the first 16 hex digits
 * of SHA-256 over the client token's name and the session id. Namespaced by the token, so two
 * clients sending the same session id get independent pins and neither can steer the other's; a
 * hash, so the raw id is never stored or shown.
 */
export function sessionKey(token: string | null, sessionId: string): string {
  const input = `${token ?? ''}\u0000${sessionId}`;
  let key = sessionKeys.get(input);
  if (key === undefined) {
    key = createHash('sha256').update(input).digest('hex').slice(0, 16);
    // A session sends every turn with the same id: remember recent keys instead of hashing each
    // request (bounded; the ids are the client's).
    if (sessionKeys.size >= SESSION_KEY_MEMO) sessionKeys.clear();
    sessionKeys.set(input, key);
  }
  return key;
}

/** Session keys remembered by `sessionKey`. */
const SESSION_KEY_MEMO = 4096;
const sessionKeys = new Map<string, string>();

// JSON keeps any character in a channel name from colliding with the separator.
function pairKey(channel: string, keyIndex: number): string {
  return JSON.stringify([channel, keyIndex]);
}

function addLoad(table: PinTable, channel: string, keyIndex: number, delta: number): void {
  const pk = pairKey(channel, keyIndex);
  const p = (table.pairLoad.get(pk) ?? 0) + delta;
  if (p > 0) table.pairLoad.set(pk, p);
  else table.pairLoad.delete(pk);
  const c = (table.channelLoad.get(channel) ?? 0) + delta;
  if (c > 0) table.channelLoad.set(channel, c);
  else table.channelLoad.delete(channel);
}

/** Removes a session's pin; returns it (undefined when there was none). */
export function removePin(table: PinTable, session: string): Pin | undefined {
  const pin = table.pins.get(session);
  if (!pin) return undefined;
  table.pins.delete(session);
  addLoad(table, pin.channel, pin.keyIndex, -1);
  return pin;
}

/**
 * Sets a session's pin (replacing any), as the most recently used. Returns the pins evicted to stay
 * within `max` (least recently used first), so the owner can delete their rows.
 */
export function setPin(
  table: PinTable,
  pin: Omit<Pin, 'troubleSince'> & { troubleSince?: number },
  max = MAX_PINS,
): Pin[] {
  removePin(table, pin.session);
  const p: Pin = { troubleSince: 0, ...pin };
  table.pins.set(p.session, p);
  addLoad(table, p.channel, p.keyIndex, 1);
  const evicted: Pin[] = [];
  for (const oldest of table.pins.values()) {
    if (table.pins.size <= max) break;
    removePin(table, oldest.session);
    evicted.push(oldest);
  }
  return evicted;
}

/** Marks a pin used at `now` (moves it to the most recently used end). */
function touch(table: PinTable, pin: Pin, now: number): void {
  pin.lastUsed = Math.max(pin.lastUsed, now);
  table.pins.delete(pin.session);
  table.pins.set(pin.session, pin);
}

/** The session's pin if it has one that has not been idle for `idle` or longer. */
export function findPin(table: PinTable, session: string, now: number, idle: number): Pin | undefined {
  const pin = table.pins.get(session);
  return pin && now - pin.lastUsed < idle ? pin : undefined;
}

/** Sessions pinned to a channel (tentative assignments included). */
export function channelSessions(table: PinTable, channel: string): number {
  return table.channelLoad.get(channel) ?? 0;
}

/**
 * Whether the pinned scope can still serve the session, given the current channels and cooldowns:
 * `ok` (usable, perhaps just tried), `cooling` (a short cooldown: the pin stays), or `gone` (the
 * channel is removed, disabled, keyless, changed its url or keys, lost the key, no longer serves
 * the model, or its cooldown lasts — or the session has been kept away — `move_after` or longer).
 */
export function pinStatus(
  pin: Pin,
  channels: readonly Channel[],
  model: string,
  cooldowns: CooldownState,
  now: number,
  policy: Pick<AffinityPolicy, 'move_after'>,
): 'ok' | 'cooling' | 'gone' {
  const channel = channels.find((c) => c.name === pin.channel);
  if (
    !channel?.enabled ||
    channel.problems.length > 0 ||
    channel.identity !== pin.identity ||
    !channel.keys.some((k) => k.index === pin.keyIndex) ||
    !channel.serves(model)
  ) {
    return 'gone';
  }
  if (
    pin.troubleSince > 0 &&
    now - pin.lastUsed < policy.move_after &&
    now - pin.troubleSince >= policy.move_after
  ) {
    return 'gone';
  }
  const until = coolingUntil(cooldowns, channel, pin.keyIndex, model, now);
  if (until <= now) return 'ok';
  return until - now >= policy.move_after ? 'gone' : 'cooling';
}

/** What `choose` decided: the candidate to attempt (index into the candidates) and why. */
export interface Choice {
  readonly index: number;
  /** `pinned`: the pin; `new`: an assignment for a session without a pin; `moved`: an assignment
   *  replacing an unavailable pin; `kept`: a stand-in while the pin is briefly unavailable. */
  readonly decision: Exclude<AffinityResult, 'none'>;
}

/** Input of `choose`. */
export interface ChooseInput {
  /** Ready candidates in selection order (priority descending, round-robin inside a group). */
  readonly candidates: readonly Candidate[];
  readonly table: PinTable;
  readonly session: string;
  /** The session's live pin (`findPin`), if any. */
  readonly pin: Pin | undefined;
  readonly channels: readonly Channel[];
  readonly model: string;
  readonly cooldowns: CooldownState;
  readonly now: number;
  readonly policy: Pick<AffinityPolicy, 'move_after' | 'return_to_priority'>;
}

/**
 * Which candidate a session's attempt goes to.
 *
 * - The pin, whenever it is a candidate (enabled, serves the model, not cooling, not yet tried) —
 *   unless `return_to_priority` and a higher-priority candidate is ready: then the pin moves up.
 * - No pin (or a tentative one that is not a candidate): the least-loaded candidate of the highest
 *   ready priority — the channel with the fewest sessions per key, then its key with the fewest
 *   sessions; ties go to the earlier candidate, so the round-robin order breaks them.
 * - A pin that is `gone` (see `pinStatus`): the same least-loaded choice, as a move.
 * - A pin that is briefly unavailable (cooling, or just failed in this request): a stand-in chosen
 *   by rendezvous hashing of the session over the highest ready priority — the same stand-in on
 *   every turn while the trouble lasts, so the stand-in's cache is written once and then read — and
 *   the pin stays.
 */
export function choose(input: ChooseInput): Choice {
  const { candidates, pin } = input;
  const first = candidates[0];
  if (!first) throw new Error('choose needs at least one candidate');
  const topPriority = first.channel.priority;
  // Nothing is allocated for a session on its pin (every turn after the first).
  if (!pin) return { index: leastLoaded(input.table, candidates, topPriority), decision: 'new' };
  let at = -1;
  for (let i = 0; i < candidates.length && at < 0; i++) {
    const c = candidates[i]!;
    if (c.channel.name === pin.channel && c.keyIndex === pin.keyIndex && c.channel.identity === pin.identity)
      at = i;
  }
  if (!pin.confirmed) {
    return { index: at >= 0 ? at : leastLoaded(input.table, candidates, topPriority), decision: 'new' };
  }
  if (at >= 0) {
    const below = candidates[at]!.channel.priority < topPriority;
    if (!(below && input.policy.return_to_priority)) return { index: at, decision: 'pinned' };
    return { index: leastLoaded(input.table, candidates, topPriority), decision: 'moved' };
  }
  const status = pinStatus(pin, input.channels, input.model, input.cooldowns, input.now, input.policy);
  if (status === 'gone')
    return { index: leastLoaded(input.table, candidates, topPriority), decision: 'moved' };
  return { index: rendezvous(input.session, candidates, topPriority), decision: 'kept' };
}

/**
 * The least-loaded candidate at `priority` (sessions per key of its channel, then of the key
 * itself); ties go to the earlier candidate.
 */
function leastLoaded(table: PinTable, candidates: readonly Candidate[], priority: number): number {
  let best: Candidate | undefined;
  let bestChannel = Number.POSITIVE_INFINITY;
  let bestKey = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    if (c.channel.priority !== priority) continue;
    const perKey = channelSessions(table, c.channel.name) / Math.max(1, c.channel.keys.length);
    const onKey = table.pairLoad.get(pairKey(c.channel.name, c.keyIndex)) ?? 0;
    if (perKey < bestChannel || (perKey === bestChannel && onKey < bestKey)) {
      best = c;
      bestChannel = perKey;
      bestKey = onKey;
    }
  }
  return candidates.indexOf(best!);
}

/** FNV-1a, 32 bits: a cheap, stable hash for rendezvous scores (not for security). */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The index of the candidate at `priority` with the highest rendezvous score for the session. */
function rendezvous(session: string, candidates: readonly Candidate[], priority: number): number {
  let best = -1;
  let bestScore = -1;
  for (let i = 0; i < candidates.length; i++) {
    const c = candidates[i]!;
    if (c.channel.priority !== priority) continue;
    const score = fnv1a(`${session}\u0000${c.channel.name}\u0000${c.keyIndex}`);
    if (score > bestScore) {
      best = i;
      bestScore = score;
    }
  }
  return best;
}

/**
 * Records a tentative assignment (decision `new` for a session without a pin), so concurrent new
 * sessions see it in the load. Returns the evicted pins.
 */
export function assignTentative(table: PinTable, session: string, c: Candidate, now: number): Pin[] {
  return setPin(table, {
    session,
    channel: c.channel.name,
    keyIndex: c.keyIndex,
    identity: c.channel.identity,
    lastUsed: now,
    confirmed: false,
  });
}

/** Drops the session's pin if it is still tentative (its request got no successful answer). */
export function abandonTentative(table: PinTable, session: string): void {
  if (table.pins.get(session)?.confirmed === false) removePin(table, session);
}

/**
 * Applies a successful answer of the session from `served`, chosen as `decision`; returns the
 * result to record and the pins evicted. `new` and `moved` (re)pin the session to `served`;
 * `pinned` refreshes the pin and ends any trouble; `kept` refreshes the pin where it is and notes
 * since when the session has been kept away (see `Pin.troubleSince`).
 */
export function settle(
  table: PinTable,
  session: string,
  served: Candidate,
  decision: Choice['decision'],
  now: number,
  policy: Pick<AffinityPolicy, 'move_after'>,
): { result: Exclude<AffinityResult, 'none'>; evicted: Pin[] } {
  const pin = table.pins.get(session);
  if (decision === 'kept' && pin?.confirmed) {
    // A new stretch of trouble starts unless the session was kept away just before.
    if (pin.troubleSince === 0 || now - pin.lastUsed >= policy.move_after) pin.troubleSince = now;
    touch(table, pin, now);
    return { result: 'kept', evicted: [] };
  }
  if (
    decision === 'pinned' &&
    pin?.confirmed &&
    pin.channel === served.channel.name &&
    pin.keyIndex === served.keyIndex
  ) {
    touch(table, pin, now);
    pin.troubleSince = 0;
    return { result: 'pinned', evicted: [] };
  }
  // A move replaces a confirmed pin; anything else (a tentative pin, or a pin that expired or was
  // dropped while the request ran) starts a new one.
  const result = decision === 'moved' && pin?.confirmed ? 'moved' : 'new';
  const evicted = setPin(table, {
    session,
    channel: served.channel.name,
    keyIndex: served.keyIndex,
    identity: served.channel.identity,
    lastUsed: now,
    confirmed: true,
  });
  return { result, evicted };
}

/** Drops pins idle for `idle` or longer; returns them (least recently used first). */
export function expirePins(table: PinTable, now: number, idle: number): Pin[] {
  const dropped: Pin[] = [];
  for (const pin of table.pins.values()) {
    if (now - pin.lastUsed < idle) break;
    removePin(table, pin.session);
    dropped.push(pin);
  }
  return dropped;
}

/**
 * Drops pins whose channel is gone, changed its url or keys (its identity), or lost the pinned key;
 * returns them. A disabled channel keeps its pins: `choose` moves each session when it next comes.
 */
export function prunePins(
  table: PinTable,
  channels: readonly Pick<Channel, 'name' | 'identity' | 'keys'>[],
): Pin[] {
  const byName = new Map(channels.map((c) => [c.name, c]));
  const dropped: Pin[] = [];
  for (const pin of [...table.pins.values()]) {
    const c = byName.get(pin.channel);
    if (c && c.identity === pin.identity && c.keys.some((k) => k.index === pin.keyIndex)) continue;
    removePin(table, pin.session);
    dropped.push(pin);
  }
  return dropped;
}

/** One pin as stored (the store's row shape). */
export interface PinRow {
  readonly session: string;
  readonly channel: string;
  readonly keyIndex: number;
  readonly identity: string;
  readonly lastUsed: number;
}

/** The row of a (confirmed) pin. */
export function pinRow(pin: Pin): PinRow {
  return {
    session: pin.session,
    channel: pin.channel,
    keyIndex: pin.keyIndex,
    identity: pin.identity,
    lastUsed: pin.lastUsed,
  };
}

/**
 * Adds stored rows to the table: rows that are malformed are skipped, and a row replaces the
 * table's pin of the same session only when it was used later (rows of another instance sharing
 * the database win when they are newer). Rows are applied oldest first so the table stays in
 * least-recently-used order. Returns the pins adopted.
 */
export function adoptPinRows(table: PinTable, rows: Iterable<PinRow>, max = MAX_PINS): Pin[] {
  const valid = [...rows].filter(
    (r) =>
      typeof r.session === 'string' &&
      r.session !== '' &&
      typeof r.channel === 'string' &&
      Number.isInteger(r.keyIndex) &&
      r.keyIndex >= 0 &&
      Number.isFinite(r.lastUsed),
  );
  valid.sort((a, b) => a.lastUsed - b.lastUsed);
  const adopted: Pin[] = [];
  for (const r of valid) {
    const mine = table.pins.get(r.session);
    if (mine && mine.lastUsed >= r.lastUsed) continue;
    // Keep the local trouble clock when the row only refreshes the same pin.
    const troubleSince =
      mine && mine.channel === r.channel && mine.keyIndex === r.keyIndex ? mine.troubleSince : 0;
    setPin(
      table,
      {
        session: r.session,
        channel: r.channel,
        keyIndex: r.keyIndex,
        identity: r.identity ?? '',
        lastUsed: r.lastUsed,
        confirmed: true,
        troubleSince,
      },
      max,
    );
    adopted.push(table.pins.get(r.session)!);
  }
  // Adopted rows went to the most recent end; put the table back in lastUsed order.
  if (adopted.length > 0) {
    const ordered = [...table.pins.values()].sort((a, b) => a.lastUsed - b.lastUsed);
    table.pins.clear();
    for (const p of ordered) table.pins.set(p.session, p);
  }
  return adopted;
}
