/**
 * One-at-a-time execution per key: write-backs of the same file (the key is its resolved path)
 * never interleave, whichever surface (admin API, dashboard) started them.
 */
const locks = new Map<string, Promise<unknown>>();

/** Runs `fn` after every earlier `fn` of the same key has finished (fulfilled or not). */
export function serialised<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const prev = locks.get(key) ?? Promise.resolve();
  const run = prev.then(fn, fn);
  const tail = run.catch(() => undefined);
  locks.set(key, tail);
  void tail.then(() => {
    if (locks.get(key) === tail) locks.delete(key);
  });
  return run;
}
