/**
 * Watches the config file through its folder. Watching the file itself goes deaf after a
 * `git checkout` (the new file gets the same inode; paulmillr/chokidar#972) and misses Kubernetes
 * `..data` symlink swaps; chokidar on the folder (depth 0), filtered by name, sees them all.
 * chokidar drops a change within 50 ms of the previous one, so every event (re)arms a debounce and
 * the reloader re-reads and hashes the file when the burst is over.
 *
 * A Kubernetes ConfigMap swap renames a new `..data` symlink into place; chokidar reports only the
 * new `..<timestamp>` folder (measured), not the file, so events on `..*` names count too, and a
 * cheap stat of the file's real path every `pollMs` catches whatever the events miss.
 */
import { realpathSync, statSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { type FSWatcher, watch } from 'chokidar';
import { eventLog, type Logger } from '../observability/log.js';

/** A running folder watch; `close()` stops it. */
export interface ConfigWatcher {
  /** Resolves once the initial scan is done and changes are being observed. */
  readonly ready: Promise<void>;
  close(): Promise<void>;
}

/** Starts watching `path`'s folder; `onChange` runs `debounceMs` after the last relevant event. */
export function watchConfig(
  path: string,
  onChange: () => void,
  opts: { log: Logger; debounceMs?: number; pollMs?: number },
): ConfigWatcher {
  const full = resolve(path);
  const name = basename(full);
  const debounceMs = opts.debounceMs ?? 100;
  let timer: NodeJS.Timeout | undefined;
  const fire = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      onChange();
    }, debounceMs);
  };
  const watcher: FSWatcher = watch(dirname(full), { depth: 0, ignoreInitial: true, atomic: true });
  watcher.on('all', (event, p) => {
    const base = basename(p);
    if (base === name && event === 'unlink') {
      eventLog(opts.log, 'config_file_removed').warn(
        { file: full },
        'config file removed; the current config keeps serving',
      );
    }
    if (base === name || base.startsWith('..')) fire();
  });
  let seen = fileState(full);
  const poll = setInterval(() => {
    const now = fileState(full);
    if (now !== seen) {
      seen = now;
      fire();
    }
  }, opts.pollMs ?? 1000);
  poll.unref();
  watcher.on('error', (err) =>
    eventLog(opts.log, 'config_watch_error').error({ err }, 'config watcher error'),
  );
  const ready = new Promise<void>((r) => watcher.once('ready', () => r()));
  return {
    ready,
    async close() {
      clearTimeout(timer);
      clearInterval(poll);
      await watcher.close();
    },
  };
}

/** Identity of the file behind `path` (symlinks followed): changes whenever its content may have. */
function fileState(path: string): string {
  try {
    const real = realpathSync(path);
    const st = statSync(real);
    return `${real}:${st.ino}:${st.size}:${st.mtimeMs}`;
  } catch {
    return 'missing';
  }
}
