/**
 * Bounded waiting for tests: poll a condition, await one event, or put a deadline on a promise — each
 * failing with a message that says what was awaited, instead of hanging until tap's global timeout.
 */
import { type EventEmitter, once } from 'node:events';

/** Options of {@link waitFor}. */
export interface WaitForOptions {
  /** Give up after this long (default 2000 ms). */
  timeoutMs?: number;
  /** What was awaited, for the failure message. */
  message?: string;
}

/**
 * Resolves once `predicate` returns true, checking right away, then on the next few event-loop turns
 * (setImmediate) and then every 5 ms; rejects after `timeoutMs`.
 */
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  { timeoutMs = 2000, message = 'condition' }: WaitForOptions = {},
): Promise<void> {
  const start = performance.now();
  for (let turn = 0; ; turn++) {
    if (await predicate()) return;
    if (performance.now() - start >= timeoutMs) {
      throw new Error(`waitFor: ${message} not met within ${timeoutMs} ms`);
    }
    // setImmediate first: most conditions become true within an I/O turn or two; then a short timer so
    // the loop does not spin a core while waiting for a timer-driven event.
    await new Promise<void>((resolve) => (turn < 20 ? setImmediate(resolve) : setTimeout(resolve, 5)));
  }
}

/** Resolves with the arguments of the next `event` on `emitter`; rejects on 'error' or after `timeoutMs`. */
export async function onceWithin(
  emitter: EventEmitter,
  event: string,
  timeoutMs: number,
): Promise<unknown[]> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  try {
    return await once(emitter, event, { signal: ac.signal });
  } catch (err) {
    if (ac.signal.aborted) throw new Error(`onceWithin: no '${event}' event within ${timeoutMs} ms`);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** Settles like `promise`, or rejects with "<what> did not settle within <ms> ms" if it takes longer. */
export async function deadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}
