/**
 * The proxy's runtime state that outlives snapshots: the cooldown table, the round-robin pointers
 * and the session pins. Decisions stay in the pure modules (cooldown.ts, select.ts, affinity.ts);
 * this class applies their results, writes cooldown changes through to SQLite (rare: failures and
 * recoveries), flushes round-robin pointers and pins on a timer (they move on every request), and
 * restores all three at start.
 */
import type { Channel } from '../config/snapshot.js';
import { eventLog, type Logger } from '../observability/log.js';
import type { StateStore } from '../store/state-store.js';
import type { AffinityPolicy } from './affinity.js';
import { SessionPins } from './affinity-state.js';
import {
  type AttemptContext,
  type CooldownEntry,
  type CooldownPolicy,
  type CooldownState,
  clearChannel,
  cooldownRow,
  createCooldownState,
  type FailureInfo,
  prune,
  recordFailure,
  recordSuccess,
  restoreCooldowns,
  scopeKey,
} from './cooldown.js';
import {
  applyRrAdvance,
  createRoundRobin,
  type RoundRobin,
  type RrAdvance,
  restoreRoundRobin,
} from './select.js';

/** Cooldowns and round-robin pointers, in memory with write-through persistence. */
export class ProxyState {
  readonly cooldowns: CooldownState = createCooldownState();
  readonly rr: RoundRobin = createRoundRobin();
  readonly pins: SessionPins;
  readonly #store: StateStore;
  readonly #log: Logger;
  #rrDirty = false;
  /** When this instance last cleared each scope, so a shared-state sync does not undo it. */
  readonly #clearedAt = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  #affinity: () => Pick<AffinityPolicy, 'idle'> = () => ({ idle: 65 * 60_000 });
  #writes: Promise<unknown> = Promise.resolve();

  constructor(store: StateStore, log: Logger) {
    this.#store = store;
    this.#log = log;
    this.pins = new SessionPins(store);
  }

  /**
   * Loads persisted cooldowns and pointers, then starts the timer that persists pointers and
   * picks up cooldowns other ccload instances sharing the database have written.
   */
  async start(
    opts: { flushMs?: number; now?: () => number; affinity?: () => Pick<AffinityPolicy, 'idle'> } = {},
  ): Promise<void> {
    for (const [k, e] of restoreCooldowns(await this.#store.loadCooldowns()).entries)
      this.cooldowns.entries.set(k, e);
    for (const [k, v] of restoreRoundRobin(await this.#store.loadRr())) this.rr.set(k, v);
    const now = opts.now ?? Date.now;
    await this.pins.load(now());
    this.#affinity = opts.affinity ?? (() => ({ idle: 65 * 60_000 }));
    this.#timer = setInterval(() => {
      void this.flushRr();
      void this.flushPins(now());
      void this.syncShared(now()).catch(() => {});
      void this.pins.syncShared(now()).catch(() => {});
    }, opts.flushMs ?? 2000);
    this.#timer.unref();
  }

  /**
   * Adopts cooldowns written by other instances sharing the database (multi-instance deployments):
   * a stored entry that ends later than ours wins. A clear by another instance is not propagated —
   * the entry here runs out on its own — so instances converge within one cooldown, never hammer.
   * Returns how many entries were adopted.
   */
  async syncShared(now: number): Promise<number> {
    const rows = await this.#store.loadCooldowns();
    const written = new Map(rows.map((r) => [r.scopeKey, r.updatedAt]));
    const stored = restoreCooldowns(rows);
    for (const [k, at] of this.#clearedAt) if (now - at > 3_600_000) this.#clearedAt.delete(k);
    let adopted = 0;
    for (const [k, e] of stored.entries) {
      if (e.until <= now) continue;
      // A row this instance cleared (and whose delete may still be on its way) is not adopted
      // back, unless another instance cooled the scope again after the clear.
      const cleared = this.#clearedAt.get(k);
      if (cleared !== undefined && (written.get(k) ?? 0) <= cleared) continue;
      const mine = this.cooldowns.entries.get(k);
      if (mine && mine.until >= e.until) continue;
      this.cooldowns.entries.set(k, e);
      adopted++;
    }
    return adopted;
  }

  /** Moves round-robin pointers (in memory; persisted by the timer). */
  advance(moves: readonly RrAdvance[]): void {
    if (moves.length === 0) return;
    applyRrAdvance(this.rr, moves);
    this.#rrDirty = true;
  }

  /** Applies a failed attempt's cooldown; returns the entry it created or extended. */
  failure(
    failure: FailureInfo,
    ctx: AttemptContext,
    policy: CooldownPolicy,
    now: number,
  ): CooldownEntry | undefined {
    const entry = recordFailure(this.cooldowns, failure, ctx, policy, now);
    if (!entry) return undefined;
    this.#persist(() => this.#store.saveCooldown(cooldownRow(entry, now)));
    return entry;
  }

  /** Applies a successful attempt: clears the scopes it used. */
  success(ctx: AttemptContext, now: number): void {
    if (this.cooldowns.entries.size === 0) return;
    const cleared = recordSuccess(this.cooldowns, ctx, now);
    if (cleared.length === 0) return;
    for (const e of cleared) this.#clearedAt.set(scopeKey(e), now);
    this.#persist(() => this.#store.deleteCooldowns(cleared.map(scopeKey)));
  }

  /** Clears every cooldown of a channel (admin action); returns how many. */
  clearChannel(name: string, now = Date.now()): number {
    const cleared = clearChannel(this.cooldowns, name);
    for (const e of cleared) this.#clearedAt.set(scopeKey(e), now);
    this.#persist(() => this.#store.deleteChannelCooldowns(name));
    return cleared.length;
  }

  /** Forgets expired and stale entries (after a reload, and periodically). */
  prune(now: number, policy: CooldownPolicy, channels: readonly Channel[]): void {
    const dropped = prune(this.cooldowns, now, policy, channels);
    if (dropped.length > 0) this.#persist(() => this.#store.deleteCooldowns(dropped.map(scopeKey)));
    this.pins.prune(channels);
  }

  /** Writes the round-robin pointers if they moved. */
  async flushRr(): Promise<void> {
    if (!this.#rrDirty) return;
    this.#rrDirty = false;
    await this.#persist(() => this.#store.saveRr(this.rr.entries()));
  }

  /** Writes the session pins that changed (and forgets idle ones). */
  async flushPins(now: number): Promise<void> {
    await this.#persist(() => this.pins.flush(now, this.#affinity().idle));
  }

  /** Persists pointers and pins and waits for pending writes; stops the timer. */
  async close(now = Date.now()): Promise<void> {
    clearInterval(this.#timer);
    await this.flushRr();
    await this.flushPins(now);
    await this.#writes;
  }

  /** Serialises state writes; a failed write is logged, memory stays authoritative. */
  #persist(write: () => Promise<unknown>): Promise<unknown> {
    this.#writes = this.#writes.then(write).catch((err: unknown) => {
      eventLog(this.#log, 'state_write_failed').warn(
        { err },
        'could not persist cooldown/round-robin/pin state',
      );
    });
    return this.#writes;
  }
}
