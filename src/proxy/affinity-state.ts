/**
 * The session pins of a running daemon: the pin table of affinity.ts in memory, written through to
 * SQLite in batches (a timer flushes the pins that changed), restored at start, and followed across
 * instances sharing the database. Decisions stay in affinity.ts; this class applies them and keeps
 * track of what to persist.
 */
import type { Channel } from '../config/snapshot.js';
import type { StateStore } from '../store/state-store.js';
import {
  type AffinityPolicy,
  abandonTentative,
  adoptPinRows,
  assignTentative,
  type Choice,
  createPinTable,
  expirePins,
  findPin,
  type Pin,
  type PinTable,
  pinRow,
  prunePins,
  settle,
} from './affinity.js';
import type { Candidate } from './select.js';

/**
 * How far back (ms) a shared-state look re-reads rows written before the previous look: covers a
 * batch another instance stamped just before our look but committed after it.
 */
const SYNC_OVERLAP_MS = 10_000;

/** How often idle pins are deleted from the database (ms); memory is swept at every flush. */
const IDLE_SWEEP_MS = 60_000;

/** Session pins with batched write-through persistence. */
export class SessionPins {
  readonly table: PinTable = createPinTable();
  readonly #store: StateStore;
  /** Sessions whose confirmed pin changed since the last flush. */
  readonly #dirty = new Set<string>();
  /** Sessions whose pin was dropped (pruned, evicted, abandoned after a flush) since the last flush. */
  readonly #deleted = new Set<string>();
  #lastSync = 0;
  #lastIdleSweep = 0;

  constructor(store: StateStore) {
    this.#store = store;
  }

  /** Loads every stored pin (pins of changed or removed channels go at the first `prune`). */
  async load(now: number): Promise<void> {
    adoptPinRows(this.table, await this.#store.loadPins(0));
    this.#lastSync = now;
  }

  /** The session's live pin. */
  find(session: string, now: number, idle: number): Pin | undefined {
    return findPin(this.table, session, now, idle);
  }

  /** Records a tentative assignment for a session without a pin. */
  assign(session: string, c: Candidate, now: number): void {
    this.#dropped(assignTentative(this.table, session, c, now));
  }

  /** A successful answer of the session: returns what affinity did. */
  settle(
    session: string,
    served: Candidate,
    decision: Choice['decision'],
    now: number,
    policy: Pick<AffinityPolicy, 'move_after'>,
  ) {
    const { result, evicted } = settle(this.table, session, served, decision, now, policy);
    this.#dropped(evicted);
    this.#dirty.add(session);
    this.#deleted.delete(session);
    return result;
  }

  /** The session's request got no successful answer: a tentative assignment is dropped. */
  abandon(session: string): void {
    abandonTentative(this.table, session);
  }

  /** Drops pins of removed channels, of changed url/keys, or of a key that is gone (after a reload). */
  prune(channels: readonly Pick<Channel, 'name' | 'identity' | 'keys'>[]): number {
    const dropped = prunePins(this.table, channels);
    this.#dropped(dropped);
    return dropped.length;
  }

  /** Sessions pinned per channel now (tentative assignments included). */
  perChannel(): ReadonlyMap<string, number> {
    return this.table.channelLoad;
  }

  /** Sessions pinned to a channel, or to one of its keys. */
  sessionsOn(channel: string, keyIndex?: number): number {
    return keyIndex === undefined
      ? (this.table.channelLoad.get(channel) ?? 0)
      : (this.table.pairLoad.get(JSON.stringify([channel, keyIndex])) ?? 0);
  }

  #dropped(pins: readonly Pin[]): void {
    for (const p of pins) {
      if (!p.confirmed) continue;
      this.#dirty.delete(p.session);
      this.#deleted.add(p.session);
    }
  }

  /**
   * Writes the pins that changed and deletes the dropped ones, in one batch; then forgets pins idle
   * for `idle` (here and, for every instance, in the database).
   */
  async flush(now: number, idle: number): Promise<void> {
    expirePins(this.table, now, idle);
    const upserts = [];
    for (const s of this.#dirty) {
      const pin = this.table.pins.get(s);
      if (pin?.confirmed) upserts.push(pinRow(pin));
    }
    const deletes = [...this.#deleted];
    this.#dirty.clear();
    this.#deleted.clear();
    if (upserts.length > 0 || deletes.length > 0) await this.#store.savePins(upserts, deletes, now);
    if (now - this.#lastIdleSweep >= IDLE_SWEEP_MS) {
      this.#lastIdleSweep = now;
      await this.#store.deleteIdlePins(now - idle);
    }
  }

  /**
   * Adopts pins other instances sharing the database wrote since the last look: a row wins when its
   * session was used later than here. Returns how many were adopted.
   */
  async syncShared(now: number): Promise<number> {
    const rows = await this.#store.loadPins(this.#lastSync - SYNC_OVERLAP_MS);
    this.#lastSync = now;
    return adoptPinRows(
      this.table,
      rows.filter((r) => !this.#deleted.has(r.session)),
    ).length;
  }
}
