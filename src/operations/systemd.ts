/**
 * The systemd service-manager protocol (sd_notify(3)) for `Type=notify` units: READY=1 once the
 * config is loaded and the port listens, STATUS= lines after reloads, RELOADING=1/READY=1 around a
 * SIGHUP reload, STOPPING=1 at shutdown. Node has no datagram unix sockets, so each message is sent
 * by running `systemd-notify` (the unit needs `NotifyAccess=all`, since the sender is a child).
 * systemd-notify ≥ 246 waits for the manager to have read the message (a BARRIER=1 round trip)
 * before it exits, so the child's short life does not lose the message. Without `NOTIFY_SOCKET`
 * (not started by systemd) nothing is sent and nothing is spawned.
 */
import { spawn } from 'node:child_process';
import type { App } from '../app.js';
import type { ReloadOutcome } from '../config/reloader.js';
import type { Snapshot } from '../config/snapshot.js';
import { eventLog } from '../observability/log.js';

/** Sends sd_notify messages; every method resolves (never rejects) once the message was handed over. */
export interface SystemdNotifier {
  /** `READY=1` with a status line. */
  ready(status: string): Promise<void>;
  /** `RELOADING=1` with `MONOTONIC_USEC` (what `Type=notify-reload` requires; plain notify accepts it). */
  reloading(status?: string): Promise<void>;
  /** A `STATUS=` line, shown by `systemctl status`. */
  status(text: string): Promise<void>;
  /** `STOPPING=1` with a status line. */
  stopping(status?: string): Promise<void>;
}

/** Options of {@link systemdNotifier}. */
export interface NotifierOptions {
  /** The program to run (default `systemd-notify`, found on PATH). */
  readonly command?: string;
  /** Where problems go (a missing binary is reported once, then notifying stops). */
  readonly warn?: (message: string) => void;
  /** Longest wait for one `systemd-notify` run (default 5000 ms; its own barrier timeout is 5 s). */
  readonly timeoutMs?: number;
}

/** One STATUS= value: a single line, bounded (systemctl shows one line). */
function statusValue(text: string): string {
  return text.replace(/[\r\n]+/g, ' ').slice(0, 400);
}

/**
 * A notifier for the service manager named by `env.NOTIFY_SOCKET`, or undefined when there is
 * none. Messages are sent one at a time, in call order.
 */
export function systemdNotifier(
  env: Readonly<Record<string, string | undefined>>,
  opts: NotifierOptions = {},
): SystemdNotifier | undefined {
  const socket = env['NOTIFY_SOCKET'];
  if (!socket) return undefined;
  const command = opts.command ?? 'systemd-notify';
  const timeoutMs = opts.timeoutMs ?? 5000;
  const warn = opts.warn ?? (() => {});
  let broken = false;
  let chain: Promise<void> = Promise.resolve();

  const run = (assignments: string[]): Promise<void> =>
    new Promise<void>((resolve) => {
      if (broken) return resolve();
      const child = spawn(command, assignments, {
        env: { ...process.env, NOTIFY_SOCKET: socket },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (s: string) => {
        if (stderr.length < 1000) stderr += s;
      });
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        warn(`${command} did not finish within ${timeoutMs} ms (${assignments[0]})`);
      }, timeoutMs);
      child.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        broken = true;
        warn(
          err.code === 'ENOENT'
            ? `NOTIFY_SOCKET is set but ${command} is not installed: systemd is not told when ccload is ready`
            : `cannot run ${command}: ${err.message}`,
        );
        resolve();
      });
      child.once('close', (code) => {
        clearTimeout(timer);
        if (code !== 0 && code !== null) {
          warn(`${command} ${assignments[0]} exited ${code}: ${stderr.trim().split('\n')[0] ?? ''}`);
        }
        resolve();
      });
    });

  const send = (assignments: string[]): Promise<void> => {
    chain = chain.then(() => run(assignments));
    return chain;
  };
  const withStatus = (first: string[], status: string | undefined) =>
    send(status === undefined ? first : [...first, `STATUS=${statusValue(status)}`]);

  return {
    ready: (status) => withStatus(['READY=1'], status),
    // CLOCK_MONOTONIC in µs: process.hrtime reads the same clock on Linux (libuv uv_hrtime).
    reloading: (status) =>
      withStatus(['RELOADING=1', `MONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`], status),
    status: (text) => send([`STATUS=${statusValue(text)}`]),
    stopping: (status) => withStatus(['STOPPING=1'], status),
  };
}

/** Resolves when `p` does or after `ms`, whichever comes first. */
function within(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  return Promise.race([p, expired]).finally(() => clearTimeout(timer));
}

/** The status line of a serving snapshot: generation, hash prefix, channels, address. */
function servingStatus(snapshot: Snapshot, url: string): string {
  const enabled = snapshot.channels.filter((c) => c.enabled).length;
  const hash = snapshot.hash.replace(/^sha256:/, '').slice(0, 12);
  return `serving config generation ${snapshot.generation} (${hash}), ${enabled}/${snapshot.channels.length} channels enabled, on ${url}`;
}

/** The status line after a reload: what happened, and what serves now. */
function outcomeStatus(outcome: ReloadOutcome, snapshot: Snapshot, url: string): string {
  if (outcome.result === 'rejected') {
    const first = outcome.errors[0];
    const where = first ? `: ${first.path || first.file} ${first.message}` : '';
    return `reload rejected (${outcome.errors.length} error(s)${where}); generation ${snapshot.generation} keeps serving`;
  }
  return servingStatus(snapshot, url);
}

/** What `main` calls around signals once the daemon runs under systemd. */
export interface SystemdHooks {
  /** Before a SIGHUP reload. */
  reloading(): Promise<void>;
  /** After a SIGHUP reload finished (applied, unchanged or rejected: the daemon serves either way). */
  reloaded(): Promise<void>;
  /** At the start of shutdown; resolves once sent, or after 1 s (exit need not wait longer). */
  stopping(): Promise<void>;
}

/**
 * Tells systemd that `daemon` is ready (its config is loaded and its port listens — `startDaemon`
 * resolved) and keeps the status line current after every reload. Undefined when not under
 * systemd (no NOTIFY_SOCKET).
 */
export function attachSystemd(
  daemon: { readonly url: string; readonly app: Pick<App, 'log' | 'reloader'> },
  env: Readonly<Record<string, string | undefined>>,
  opts: Omit<NotifierOptions, 'warn'> = {},
): SystemdHooks | undefined {
  const notifier = systemdNotifier(env, {
    ...opts,
    warn: (message) => eventLog(daemon.app.log, 'systemd_notify').warn(message),
  });
  if (!notifier) return undefined;
  const reloader = daemon.app.reloader;
  let latest = servingStatus(reloader.current, daemon.url);
  void notifier.ready(latest);
  reloader.events.on('outcome', (outcome) => {
    latest = outcomeStatus(outcome, reloader.current, daemon.url);
    void notifier.status(latest);
  });
  return {
    reloading: () => notifier.reloading('reloading the configuration (SIGHUP)'),
    // The outcome event fires before the reload's promise resolves, so `latest` describes this reload.
    reloaded: () => notifier.ready(latest),
    stopping: () => within(notifier.stopping('draining in-flight requests'), 1000),
  };
}
