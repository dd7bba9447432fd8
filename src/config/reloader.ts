/**
 * The reloader: the one serialised, coalescing pipeline through which every configuration change
 * passes — the file watcher, SIGHUP, `POST /admin/reload` and write-back only *ask* it to run.
 * A run reads the file, compares its content hash with the applied snapshot, builds and validates
 * a complete new snapshot, and only then swaps it in; anything invalid leaves the running snapshot
 * untouched and is recorded as the last attempt.
 */
import { EventEmitter } from 'node:events';
import { eventLog, type Logger } from '../observability/log.js';
import { type LoadInput, loadConfigFile } from './load.js';
import type { ConfigIssue, ReloadSource, Snapshot } from './snapshot.js';
import { formatIssue } from './snapshot.js';

/** The verdict of one reload run. */
export interface ReloadOutcome {
  readonly result: 'applied' | 'unchanged' | 'rejected';
  readonly source: ReloadSource;
  /** The generation and hash now serving (after an apply: the new one). */
  readonly generation: number;
  readonly hash: string;
  /** Hash of the file that was read, when it could be read. */
  readonly fileHash: string | undefined;
  readonly errors: readonly ConfigIssue[];
  readonly warnings: readonly ConfigIssue[];
  readonly at: number;
  readonly durationMs: number;
  /** A repeated report of bytes already rejected: not logged, recorded or emitted again. */
  readonly repeat?: boolean;
}

/** The last reload attempt, as `/admin/config/status` reports it. */
export interface LastAttempt {
  readonly at: number;
  readonly ok: boolean;
  readonly source: ReloadSource;
  readonly result: ReloadOutcome['result'];
  readonly errors: readonly ConfigIssue[];
}

/** How the reloader reaches the rest of the daemon. */
export interface ReloaderOptions {
  /** Everything the loader needs except generation, source and clock. */
  readonly input: Omit<LoadInput, 'generation' | 'source' | 'now'>;
  readonly initial: Snapshot;
  readonly log: Logger;
  readonly now?: () => number;
  /** Called with the new snapshot before it becomes current; throwing rejects the reload. */
  readonly apply: (next: Snapshot, prev: Snapshot) => void;
  /** Called after every run (reload history, metrics). Must not throw. */
  readonly onOutcome?: (outcome: ReloadOutcome) => void;
}

type Waiter = (outcome: ReloadOutcome) => void;

/** Serialised, coalescing reload pipeline holding the current snapshot. */
export class Reloader {
  #current: Snapshot;
  #last: LastAttempt;
  #running = false;
  #pending: { source: ReloadSource; waiters: Waiter[] } | undefined;
  /** Hash of the file bytes the last run rejected. */
  #rejectedHash: string | undefined;
  readonly #opts: ReloaderOptions;
  readonly #now: () => number;
  /** Emits `outcome` (a ReloadOutcome) after every run. */
  readonly events = new EventEmitter<{ outcome: [ReloadOutcome] }>();

  constructor(opts: ReloaderOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#current = opts.initial;
    this.#last = { at: opts.initial.loadedAt, ok: true, source: 'startup', result: 'applied', errors: [] };
  }

  /** The snapshot serving now. A request reads it once and keeps it. */
  get current(): Snapshot {
    return this.#current;
  }

  /** The last attempt (successful or not). */
  get lastAttempt(): LastAttempt {
    return this.#last;
  }

  /** True while a run is in progress or queued. */
  get busy(): boolean {
    return this.#running || this.#pending !== undefined;
  }

  /**
   * Asks for a reload and resolves with the verdict of a run that started after this call.
   * Requests arriving while a run is in progress share the next run.
   */
  request(source: ReloadSource): Promise<ReloadOutcome> {
    return new Promise((resolve) => {
      if (this.#pending) {
        this.#pending.source = source;
        this.#pending.waiters.push(resolve);
      } else {
        this.#pending = { source, waiters: [resolve] };
      }
      void this.#pump();
    });
  }

  async #pump(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    try {
      while (this.#pending) {
        const batch = this.#pending;
        this.#pending = undefined;
        const outcome = await this.#runOnce(batch.source);
        for (const w of batch.waiters) w(outcome);
      }
    } finally {
      this.#running = false;
    }
  }

  async #runOnce(source: ReloadSource): Promise<ReloadOutcome> {
    const started = performance.now();
    const at = this.#now();
    const prev = this.#current;
    let outcome: Omit<ReloadOutcome, 'durationMs'>;
    try {
      const r = await loadConfigFile({
        ...this.#opts.input,
        generation: prev.generation + 1,
        source,
        now: at,
      });
      const base = { source, at, fileHash: r.hash };
      // The watcher can report one save twice (an editor's rename plus the stat poll): a file
      // already rejected with these very bytes is not judged, logged and recorded again.
      if (!r.ok && source === 'file' && r.hash !== undefined && r.hash === this.#rejectedHash) {
        return {
          ...base,
          result: 'rejected',
          generation: prev.generation,
          hash: prev.hash,
          errors: r.errors,
          warnings: r.warnings,
          durationMs: 0,
          repeat: true,
        };
      }
      this.#rejectedHash = r.ok ? undefined : r.hash;
      if (r.ok && r.hash === prev.hash && sameValues(r.snapshot, prev)) {
        outcome = {
          ...base,
          result: 'unchanged',
          generation: prev.generation,
          hash: prev.hash,
          errors: [],
          warnings: [],
        };
      } else if (r.ok) {
        this.#opts.apply(r.snapshot, prev);
        this.#current = r.snapshot;
        outcome = {
          ...base,
          result: 'applied',
          generation: r.snapshot.generation,
          hash: r.snapshot.hash,
          errors: [],
          warnings: r.snapshot.warnings,
        };
      } else {
        outcome = {
          ...base,
          result: 'rejected',
          generation: prev.generation,
          hash: prev.hash,
          errors: r.errors,
          warnings: r.warnings,
        };
      }
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      const file = this.#opts.input.display ?? this.#opts.input.path;
      outcome = {
        source,
        at,
        fileHash: undefined,
        result: 'rejected',
        generation: prev.generation,
        hash: prev.hash,
        errors: [
          { file, line: 1, col: 1, path: '', message: `could not apply: ${message}`, severity: 'error' },
        ],
        warnings: [],
      };
    }
    const durationMs = Math.round((performance.now() - started) * 100) / 100;
    return this.#finish({ ...outcome, durationMs });
  }

  #finish(outcome: ReloadOutcome): ReloadOutcome {
    const { source, at, durationMs } = outcome;
    const log = eventLog(this.#opts.log, 'config_reload');
    this.#last = {
      at,
      ok: outcome.result !== 'rejected',
      source,
      result: outcome.result,
      errors: outcome.errors,
    };
    const fields = {
      cause: source,
      verdict: outcome.result,
      generation: outcome.generation,
      hash: outcome.hash,
      file_hash: outcome.fileHash,
      duration_ms: durationMs,
    };
    if (outcome.result === 'rejected') {
      log.error(
        { ...fields, errors: outcome.errors.map(formatIssue) },
        'config rejected; the previous config keeps serving',
      );
    } else if (outcome.result === 'applied') {
      log.info(fields, `config applied (generation ${outcome.generation})`);
      const warnings = eventLog(this.#opts.log, 'config_warning');
      for (const w of outcome.warnings) warnings.warn(formatIssue(w));
    } else {
      log.debug(fields, 'config unchanged');
    }
    try {
      this.#opts.onOutcome?.(outcome);
      this.events.emit('outcome', outcome);
    } catch (err) {
      log.error({ err }, 'reload outcome hook failed');
    }
    return outcome;
  }
}

/**
 * Same file bytes can still mean new values: a `${file:...}` secret rotated or an environment
 * variable changed before a SIGHUP. Compare what the snapshot resolved, not just the bytes.
 */
function sameValues(a: Snapshot, b: Snapshot): boolean {
  return (
    JSON.stringify([a.config, a.tokens, a.adminPassword, a.listen, a.database]) ===
    JSON.stringify([b.config, b.tokens, b.adminPassword, b.listen, b.database])
  );
}
