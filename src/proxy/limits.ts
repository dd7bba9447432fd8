/**
 * The state behind operator policy (docs/proxy.md#client-token-policy): requests in flight per
 * client token, attempts in flight and recent attempt starts per channel, and each token's spend in
 * the current day and month. Decisions stay in the pure `policy.ts`; this class keeps the counters,
 * keyed by name so they outlive reloads.
 *
 * Spend is memory on the request path (an O(1) read) and the database in the background: at start
 * and every `syncMs` the log writer is flushed and the rollups' cost per token for the current
 * windows is read back; the spend is then the database's figure plus what this instance recorded
 * since the flush began. That restores the spend after a restart and adopts what other instances
 * on the same database spent. The read is two small rollup queries, off the request path.
 */
import type { Channel } from '../config/snapshot.js';
import type { Logger } from '../observability/log.js';
import type { StoreDb } from '../store/db.js';
import { querySpendByToken } from '../store/queries.js';
import { type BudgetWindows, cappedUntil, currentWindows, type Spend } from './policy.js';

/** What `Limits` needs. */
export interface LimitsDeps {
  readonly db: StoreDb;
  /**
   * Writes the attempt records queued so far; resolves true when they reached the database (false:
   * the write failed and they are still queued — the spend is then not re-read this time).
   */
  readonly flush: () => Promise<boolean>;
  readonly log: Logger;
  readonly now: () => number;
  /** The budget windows' time zone of the serving configuration. */
  readonly timeZone: () => string;
}

interface MutableSpend {
  day: number;
  month: number;
}

const ZERO: Spend = Object.freeze({ day: 0, month: 0 });

/** Counters of tokens and channels, and spend per token. */
export class Limits {
  readonly #d: LimitsDeps;
  readonly #tokenInflight = new Map<string, number>();
  readonly #channelInflight = new Map<string, number>();
  /** Start times of recent attempts per channel (at most its `rpm`), oldest first. */
  readonly #starts = new Map<string, number[]>();
  readonly #waiters = new Set<() => void>();
  #windows: BudgetWindows | undefined;
  #spend = new Map<string, MutableSpend>();
  /** Costs recorded since the last sync began, per token: added to the database's figure. */
  #unsynced = new Map<string, MutableSpend>();
  #syncing: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #lastSync: number | undefined;

  constructor(deps: LimitsDeps) {
    this.#d = deps;
  }

  /** Restores the spend from the database, then re-reads it every `syncMs` (default 5 s). */
  async start(opts: { syncMs?: number } = {}): Promise<void> {
    await this.sync();
    this.#timer = setInterval(() => void this.sync(), opts.syncMs ?? 5000);
    this.#timer.unref();
  }

  /** Stops the periodic re-read and waits for one in progress; wakes requests waiting for a slot. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    for (const w of [...this.#waiters]) w();
    await this.#syncing;
  }

  // --- tokens ----------------------------------------------------------------------------------

  tokenInflight(name: string): number {
    return this.#tokenInflight.get(name) ?? 0;
  }

  enterToken(name: string): void {
    this.#tokenInflight.set(name, this.tokenInflight(name) + 1);
  }

  leaveToken(name: string): void {
    const n = this.tokenInflight(name) - 1;
    if (n > 0) this.#tokenInflight.set(name, n);
    else this.#tokenInflight.delete(name);
  }

  /** The budget windows at `now` (recomputed only when the day or the time zone changes). */
  windows(now: number): BudgetWindows {
    const tz = this.#d.timeZone();
    const w = currentWindows(this.#windows, now, tz);
    if (w !== this.#windows) {
      const prev = this.#windows;
      this.#windows = w;
      if (prev && prev.timeZone === tz) {
        // A new day (and maybe month) began: its spend starts at zero — also in the costs not yet
        // synced, which belong to the previous day and must not be added to the new one's figure.
        const newMonth = w.monthStart !== prev.monthStart;
        for (const map of [this.#spend, this.#unsynced]) {
          for (const s of map.values()) {
            s.day = 0;
            if (newMonth) s.month = 0;
          }
        }
      } else if (prev) {
        // Another time zone: other windows; read them from the database at once.
        this.#spend = new Map();
        void this.sync();
      }
    }
    return w;
  }

  /** A token's spend in the current windows, USD. */
  spend(name: string, now: number): Spend {
    this.windows(now);
    return this.#spend.get(name) ?? ZERO;
  }

  /** Counts the recorded cost of an attempt that started at `ts` (its row's time). */
  record(name: string, costUsd: number, ts: number, now: number): void {
    if (!(costUsd > 0)) return;
    const w = this.windows(now);
    if (ts < w.monthStart) return;
    const inDay = ts >= w.dayStart ? costUsd : 0;
    for (const map of [this.#spend, this.#unsynced]) {
      const s = map.get(name);
      if (s) {
        s.day += inDay;
        s.month += costUsd;
      } else map.set(name, { day: inDay, month: costUsd });
    }
  }

  /** When the last successful read of the spend from the database was (ms), if any. */
  get lastSync(): number | undefined {
    return this.#lastSync;
  }

  /** Re-reads the spend of the current windows from the database (coalesced). */
  sync(): Promise<void> {
    this.#syncing ??= this.#sync().finally(() => {
      this.#syncing = undefined;
    });
    return this.#syncing;
  }

  async #sync(): Promise<void> {
    const now = this.#d.now();
    const w = this.windows(now);
    const carried = this.#unsynced;
    this.#unsynced = new Map();
    try {
      if (!(await this.#d.flush())) {
        this.#mergeBack(carried);
        return;
      }
      const [day, month] = await Promise.all([
        querySpendByToken(this.#d.db, w.dayStart, w.dayEnd, now),
        querySpendByToken(this.#d.db, w.monthStart, w.monthEnd, now),
      ]);
      // The day turned or the time zone changed meanwhile: the next sync reads the new windows.
      if (this.#windows !== w) return;
      const next = new Map<string, MutableSpend>();
      for (const name of new Set([...day.keys(), ...month.keys(), ...this.#unsynced.keys()])) {
        const u = this.#unsynced.get(name);
        next.set(name, {
          day: (day.get(name) ?? 0) + (u?.day ?? 0),
          month: (month.get(name) ?? 0) + (u?.month ?? 0),
        });
      }
      this.#spend = next;
      this.#lastSync = now;
    } catch (err) {
      this.#mergeBack(carried);
      this.#d.log.warn({ err, event: 'budget_sync_failed' }, 'could not read token spend from the database');
    }
  }

  #mergeBack(carried: Map<string, MutableSpend>): void {
    for (const [name, c] of carried) {
      const s = this.#unsynced.get(name);
      if (s) {
        s.day += c.day;
        s.month += c.month;
      } else this.#unsynced.set(name, c);
    }
  }

  // --- channels --------------------------------------------------------------------------------

  channelInflight(name: string): number {
    return this.#channelInflight.get(name) ?? 0;
  }

  /** Attempts started on the channel within the last minute (for the dashboard). */
  recentStarts(name: string, now: number): number {
    return (this.#starts.get(name) ?? []).filter((s) => s > now - 60_000).length;
  }

  /** When the channel is at a cap: see `cappedUntil`; undefined when free (or uncapped). */
  cappedUntil(channel: Channel, now: number): number | undefined {
    if (channel.maxConcurrency === undefined && channel.rpm === undefined) return undefined;
    return cappedUntil(
      channel,
      this.channelInflight(channel.name),
      this.#starts.get(channel.name) ?? [],
      now,
    );
  }

  /** An attempt starts on the channel. */
  startAttempt(channel: Channel, now: number): void {
    this.#channelInflight.set(channel.name, this.channelInflight(channel.name) + 1);
    if (channel.rpm === undefined) return;
    let list = this.#starts.get(channel.name);
    if (!list) {
      list = [];
      this.#starts.set(channel.name, list);
    }
    list.push(now);
    // Only the newest `rpm` starts can decide the cap.
    if (list.length > channel.rpm) list.splice(0, list.length - channel.rpm);
  }

  /** An attempt on the channel ended: its slot is free; requests waiting for one look again. */
  endAttempt(channel: Channel): void {
    const n = this.channelInflight(channel.name) - 1;
    if (n > 0) this.#channelInflight.set(channel.name, n);
    else this.#channelInflight.delete(channel.name);
    if (this.#waiters.size > 0) for (const w of [...this.#waiters]) w();
  }

  /**
   * Resolves when some channel's attempt ends (a slot may be free) or after `ms`; `cancel` resolves
   * it at once (the client left, shutdown).
   */
  waitForSlot(ms: number): { done: Promise<void>; cancel: () => void } {
    let cancel!: () => void;
    const done = new Promise<void>((resolve) => {
      const timer = setTimeout(finish, ms);
      const waiters = this.#waiters;
      function finish() {
        clearTimeout(timer);
        waiters.delete(finish);
        resolve();
      }
      waiters.add(finish);
      cancel = finish;
    });
    return { done, cancel };
  }
}
