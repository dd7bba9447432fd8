/**
 * The proxy's runtime state that outlives snapshots: the cooldown table and the round-robin
 * pointers. Decisions stay in the pure modules (cooldown.ts, select.ts); this class applies their
 * results, writes cooldown changes through to SQLite (rare: failures and recoveries), flushes
 * round-robin pointers on a timer (they move on every request), and restores both at start.
 */
import type { Channel } from '../config/snapshot.js';
import type { Logger } from '../log.js';
import type { StateStore } from '../store/state-store.js';
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

/** Observer of cooldown changes (metrics). */
export interface CooldownObserver {
  entered(entry: CooldownEntry): void;
  cleared(entries: readonly CooldownEntry[]): void;
}

/** Cooldowns and round-robin pointers, in memory with write-through persistence. */
export class ProxyState {
  readonly cooldowns: CooldownState = createCooldownState();
  readonly rr: RoundRobin = createRoundRobin();
  readonly #store: StateStore;
  readonly #log: Logger;
  readonly #observer: CooldownObserver | undefined;
  #rrDirty = false;
  #timer: NodeJS.Timeout | undefined;
  #writes: Promise<unknown> = Promise.resolve();

  constructor(store: StateStore, log: Logger, observer?: CooldownObserver) {
    this.#store = store;
    this.#log = log;
    this.#observer = observer;
  }

  /** Loads persisted cooldowns and pointers, then starts the pointer flush timer. */
  async start(flushMs = 2000): Promise<void> {
    for (const [k, e] of restoreCooldowns(await this.#store.loadCooldowns()).entries)
      this.cooldowns.entries.set(k, e);
    for (const [k, v] of restoreRoundRobin(await this.#store.loadRr())) this.rr.set(k, v);
    this.#timer = setInterval(() => void this.flushRr(), flushMs);
    this.#timer.unref();
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
    this.#observer?.entered(entry);
    this.#persist(() => this.#store.saveCooldown(cooldownRow(entry, now)));
    return entry;
  }

  /** Applies a successful attempt: clears the scopes it used. */
  success(ctx: AttemptContext, now: number): void {
    if (this.cooldowns.entries.size === 0) return;
    const cleared = recordSuccess(this.cooldowns, ctx, now);
    if (cleared.length === 0) return;
    this.#observer?.cleared(cleared);
    this.#persist(() => this.#store.deleteCooldowns(cleared.map(scopeKey)));
  }

  /** Clears every cooldown of a channel (admin action); returns how many. */
  clearChannel(name: string): number {
    const cleared = clearChannel(this.cooldowns, name);
    if (cleared.length > 0) this.#observer?.cleared(cleared);
    this.#persist(() => this.#store.deleteChannelCooldowns(name));
    return cleared.length;
  }

  /** Forgets expired and stale entries (after a reload, and periodically). */
  prune(now: number, policy: CooldownPolicy, channels: readonly Channel[]): void {
    const dropped = prune(this.cooldowns, now, policy, channels);
    if (dropped.length > 0) this.#persist(() => this.#store.deleteCooldowns(dropped.map(scopeKey)));
  }

  /** Writes the round-robin pointers if they moved. */
  async flushRr(): Promise<void> {
    if (!this.#rrDirty) return;
    this.#rrDirty = false;
    await this.#persist(() => this.#store.saveRr(this.rr.entries()));
  }

  /** Persists pointers and waits for pending writes; stops the timer. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.flushRr();
    await this.#writes;
  }

  /** Serialises state writes; a failed write is logged, memory stays authoritative. */
  #persist(write: () => Promise<unknown>): Promise<unknown> {
    this.#writes = this.#writes.then(write).catch((err: unknown) => {
      this.#log.warn({ err, event: 'state_write_failed' }, 'could not persist cooldown/round-robin state');
    });
    return this.#writes;
  }
}
