/**
 * The composition root: the only place that constructs and wires the concerns (config, store,
 * proxy, admin) and releases them in reverse order on shutdown.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { LoginThrottle } from './admin/auth.js';
import { channelRoutes } from './admin/channel-routes.js';
import { coreRoutes } from './admin/core-routes.js';
import { LoginLink } from './admin/login-link.js';
import { pageRoutes } from './admin/page-routes.js';
import { sendAdminError } from './admin/respond.js';
import { AdminRouter, type Route } from './admin/router.js';
import { seedRoutes } from './admin/seed-redirects.js';
import { statsRoutes } from './admin/stats-routes.js';
import { staticRoutes } from './admin/ui.js';
import type { App } from './app.js';
import { loadConfigFile } from './config/load.js';
import { Reloader } from './config/reloader.js';
import { type ConfigIssue, formatIssue, type Snapshot } from './config/snapshot.js';
import { type ConfigWatcher, watchConfig } from './config/watcher.js';
import { WriteBack } from './config/write-back/apply-edit.js';
import type { InternalErrorCode } from './errors.js';
import { createLogger, eventLog, type Logger } from './observability/log.js';
import { Metrics } from './observability/metrics.js';
import {
  controlFilePath,
  newControlToken,
  removeControlFile,
  writeControlFile,
} from './operations/control.js';
import { activeEntries } from './proxy/cooldown.js';
import { ProxyHandler } from './proxy/handler.js';
import { Limits } from './proxy/limits.js';
import { Runtime } from './proxy/runtime.js';
import { ProxyState } from './proxy/state.js';
import { type Database, openDatabase } from './store/db.js';
import { LogWriter, type LogWriterOptions, type WriterDb } from './store/log-writer.js';
import { RetentionTimer } from './store/retention.js';
import { backfillRollups } from './store/rollup.js';
import { deleteSessionsBefore, pruneSessions } from './store/sessions.js';
import { StateStore } from './store/state-store.js';
import { startWriteThread } from './store/write-thread.js';

/** How to start a daemon. */
export interface DaemonOptions {
  /** Config path (absolute or relative to `cwd`). */
  readonly configPath: string;
  /** How the file is named in messages (default: `configPath`). */
  readonly display?: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd?: string;
  /** A logger to use instead of pino on stdout at the configured level. */
  readonly log?: Logger;
  readonly now?: () => number;
  /** Watch the config folder (default true). */
  readonly watch?: boolean;
  /** Debounce of the file watcher (default 100 ms). */
  readonly debounceMs?: number;
  /** Collect Node process metrics (default true; off in tests that start many daemons). */
  readonly processMetrics?: boolean;
  /** Tuning of the attempt-log writer (tests and benchmarks shrink the queue); defaults otherwise. */
  readonly logWriter?: Pick<
    LogWriterOptions,
    'maxQueue' | 'batchRows' | 'intervalMs' | 'retryMinMs' | 'retryMaxMs'
  >;
}

/** The config at start-up is invalid: `main` exits 78 (EX_CONFIG) with these errors. */
export class ConfigInvalidError extends Error {
  readonly code: InternalErrorCode = 'CCL_CONFIG_INVALID';
  constructor(readonly errors: readonly ConfigIssue[]) {
    super(`invalid configuration:\n${errors.map(formatIssue).join('\n')}`);
  }
}

/** A running daemon. */
export interface Daemon {
  readonly app: App;
  /** `http://host:port` the daemon listens on. */
  readonly url: string;
  readonly server: Server;
  /** The admin side's route table (everything but the proxy's /v1/*). */
  readonly routes: readonly Route[];
  /**
   * Where the attempt log is written: the write thread's own connections for a local database
   * file, else `app.db`. Tests reach its connections through it (e.g. a `PRAGMA query_only`).
   */
  readonly logDb: WriterDb & Pick<Database, 'onEveryConnection'>;
  /** Releases everything in reverse order of construction. Idempotent. */
  close(): Promise<void>;
}

/**
 * Busy timeout of the main thread's database client. Its writes are rare (sessions, cooldowns,
 * round-robin pointers, reload history), but a busy wait there is synchronous and stalls every
 * request, so it is short: a write that meets another process's lock fails (logged, memory stays
 * authoritative) instead of freezing the proxy. The attempt log waits in its own thread.
 */
const MAIN_BUSY_TIMEOUT_MS = 50;

/** At most one warning a minute about connections closed over server.max_connections. */
const DROP_WARNING_INTERVAL_MS = 60_000;

/** Pending connections the listening socket queues (see the listen call). */
const LISTEN_BACKLOG = 4096;

/**
 * The client-side limits of `server.*` on the HTTP server (also applied on reload): how long a
 * client may take to send its headers and its whole request — not the answer, so streams run as
 * long as they need — how long an idle keep-alive connection stays, and how many connections may
 * be open at once (further ones are closed as they arrive).
 */
function applyServerLimits(server: Server, limits: Snapshot['config']['server']): void {
  server.headersTimeout = limits.headers_timeout;
  server.requestTimeout = limits.request_timeout;
  server.keepAliveTimeout = limits.keep_alive_timeout;
  server.maxConnections = limits.max_connections;
}

/** Starts a daemon: config → store → metrics → reloader → HTTP → watcher → control file. */
export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  const now = opts.now ?? Date.now;
  const input = { path: opts.configPath, display: opts.display, env: opts.env, cwd: opts.cwd };
  const first = await loadConfigFile({ ...input, generation: 1, source: 'startup', now: now() });
  if (!first.ok) throw new ConfigInvalidError(first.errors);
  const initial: Snapshot = first.snapshot;
  const log = opts.log ?? createLogger({ level: initial.config.server.log_level });
  const warnings = eventLog(log, 'config_warning');
  for (const w of initial.warnings) warnings.warn(formatIssue(w));

  const closers: (() => Promise<void> | void)[] = [];
  const close = async () => {
    while (closers.length > 0) {
      const fn = closers.pop()!;
      try {
        await fn();
      } catch (err) {
        log.error({ err }, 'error while shutting down');
      }
    }
  };

  try {
    const db: Database = await openDatabase(initial.database, {
      authToken: initial.config.server.database_token,
      busyTimeoutMs: MAIN_BUSY_TIMEOUT_MS,
      log,
    });
    closers.push(() => db.close());
    const state = new StateStore(db);
    await state
      .recordReload({
        at: initial.loadedAt,
        source: 'startup',
        result: 'applied',
        generation: initial.generation,
        hash: initial.hash,
        durationMs: null,
        errors: [],
      })
      .catch((err: unknown) => log.warn({ err }, 'could not record the start-up load in the database'));
    const metrics = new Metrics({ processMetrics: opts.processMetrics });
    metrics.startup(initial);

    // A local file's attempt log is written by a thread of its own, off the event loop (a remote
    // client is asynchronous already). Closed after the writer, before the database.
    let logDb: Daemon['logDb'] = db;
    if (db.kind === 'file') {
      const thread = await startWriteThread(initial.database, { log });
      closers.push(() => thread.close());
      logDb = thread;
    }
    // Rollups are upserted in the same write batch as the attempts they count.
    const logWriter = new LogWriter(logDb, { ...opts.logWriter, log, rollups: true });
    logWriter.start();
    closers.push(() => logWriter.close());
    // Attempts written before the rollup tables existed are folded in once, in the background.
    const backfillStop = new AbortController();
    const backfill = backfillRollups(db, { log, signal: backfillStop.signal }).catch((err: unknown) =>
      log.warn({ err }, 'rollup backfill failed; it resumes at the next start'),
    );
    closers.push(async () => {
      backfillStop.abort();
      await backfill;
    });
    const proxyState = new ProxyState(state, log);
    await proxyState.start({ now, affinity: () => reloader.current.config.routing.affinity });
    // Pins of channels whose url or keys changed, or that were removed, while ccload was stopped.
    proxyState.pins.prune(initial.channels);
    closers.push(() => proxyState.close(now()));
    metrics.observe({
      logWriter: () => logWriter.stats(),
      cooldowns: () => activeEntries(proxyState.cooldowns, now(), reloader.current.channels),
      // Every configured channel has a series, 0 when nothing is pinned to it.
      pins: () =>
        new Map([
          ...reloader.current.channels.map((c): [string, number] => [c.name, 0]),
          ...proxyState.pins.perChannel(),
        ]),
    });
    let runtime = new Runtime(initial);
    closers.push(() => runtime.destroy());
    const policyLimits = new Limits({
      db,
      flush: async () => {
        await logWriter.flush();
        return !logWriter.stats().failing;
      },
      log,
      now,
      timeZone: () => reloader.current.config.auth.budget_time_zone,
    });

    let dbOk = true;
    let ready = false;
    // Set once the server listens; the login link names it.
    let url = '';
    const loginLink = new LoginLink();
    const reloader: Reloader = new Reloader({
      input,
      initial,
      log,
      now,
      apply(next, prev) {
        const old = runtime;
        runtime = new Runtime(next);
        void old.retire();
        proxyState.prune(now(), next.config.routing.cooldown, next.channels);
        applyServerLimits(server, next.config.server);
        // Sessions are bound to the password (sessions.ts), so the old ones stopped working with
        // this swap; their rows are deleted too.
        if (next.adminPassword !== prev.adminPassword) {
          eventLog(log, 'sessions_ended').info('the admin password changed: every session ended');
          void deleteSessionsBefore(db, now()).catch((err: unknown) =>
            log.warn({ err }, 'could not delete the sessions of the old admin password'),
          );
          // The password was removed: the dashboard opens through the login link from now on.
          if (next.adminPassword === undefined && url !== '') loginLink.announce(log, url);
        }
        const level = next.config.server.log_level;
        if (level !== prev.config.server.log_level) {
          log.level = level;
          eventLog(log, 'log_level').info({ level }, `log level is now ${level} (server.log_level)`);
        }
        const restart = (key: string) =>
          eventLog(log, 'restart_needed').warn(`${key} changed: it takes effect at the next restart`);
        if (next.listen.host !== prev.listen.host || next.listen.port !== prev.listen.port)
          restart('server.listen');
        if (next.database !== prev.database) restart('server.database');
      },
      onOutcome(outcome) {
        metrics.reload(outcome, reloader.current);
        if (outcome.result === 'unchanged' && outcome.source === 'file') return;
        state
          .recordReload({
            at: outcome.at,
            source: outcome.source,
            result: outcome.result,
            generation: outcome.generation,
            hash: outcome.hash,
            durationMs: outcome.durationMs,
            errors: outcome.errors.map((e) => ({
              line: e.line,
              col: e.col,
              path: e.path,
              message: e.message,
            })),
          })
          .catch((err: unknown) => log.warn({ err }, 'could not record the reload in the database'));
      },
    });

    await policyLimits.start();
    closers.push(() => policyLimits.close());
    metrics.observePolicy(() => ({ snapshot: reloader.current, limits: policyLimits, now: now() }));

    const controlToken = newControlToken();
    const app: App = {
      reloader,
      db,
      state,
      metrics,
      log,
      now,
      listenHost: initial.listen.host,
      controlToken,
      loginLink,
      sessionKey() {
        const password = reloader.current.adminPassword;
        if (password !== undefined) return password;
        return loginLink.announced ? { linkSecret: loginLink.sessionSecret } : undefined;
      },
      ready: () => ready,
      databaseOk: () => dbOk,
      logWriter,
      proxyState,
      limits: policyLimits,
      runtime: () => runtime,
      writeBack: new WriteBack({ input, reloader, log, now }),
    };
    const proxy = new ProxyHandler({
      runtime: () => runtime,
      state: proxyState,
      limits: policyLimits,
      logWriter,
      metrics,
      log,
      now,
    });

    const throttle = new LoginThrottle();
    const admin = new AdminRouter(app, [
      ...coreRoutes(app, throttle),
      ...staticRoutes(),
      ...pageRoutes(app),
      ...statsRoutes(app),
      ...channelRoutes(app),
      ...seedRoutes(),
    ]);
    const limits = initial.config.server;
    const server = createServer(
      {
        headersTimeout: limits.headers_timeout,
        requestTimeout: limits.request_timeout,
        keepAliveTimeout: limits.keep_alive_timeout,
        // How often Node looks for requests past their header/request timeout.
        connectionsCheckingInterval: Math.min(
          1000,
          Math.max(25, Math.floor(Math.min(limits.headers_timeout, limits.request_timeout) / 4)),
        ),
      },
      (req, res) => {
        void dispatch(req, res);
      },
    );
    applyServerLimits(server, limits);
    // A connection over server.max_connections is closed by Node before any byte is read; the
    // client only sees a reset. Count every one and say so in the log, at most once a minute.
    let lastDropWarning = Number.NEGATIVE_INFINITY;
    let droppedSinceWarning = 0;
    server.on('drop', () => {
      metrics.connectionsDropped.inc();
      droppedSinceWarning++;
      const t = now();
      if (t - lastDropWarning < DROP_WARNING_INTERVAL_MS) return;
      eventLog(log, 'connections_dropped').warn(
        { dropped: droppedSinceWarning, max_connections: reloader.current.config.server.max_connections },
        `closed ${droppedSinceWarning} client connection(s): server.max_connections (${reloader.current.config.server.max_connections}) are open`,
      );
      lastDropWarning = t;
      droppedSinceWarning = 0;
    });
    const dispatch = async (req: IncomingMessage, res: ServerResponse) => {
      if (req.url?.startsWith('/v1/')) return proxy.handle(req, res);
      if (await admin.handle(req, res)) return;
      sendAdminError(res, 'no_route', `no route for ${req.method} ${req.url?.split('?')[0]}`);
    };
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // A backlog of 4096 (the kernel caps it at net.core.somaxconn) instead of Node's 511: a burst
      // of new connections while the event loop is busy (thousands of Claude Code sessions
      // reconnecting) would otherwise overflow it, and the kernel drops or resets the extra ones.
      server.listen({ port: initial.listen.port, host: initial.listen.host, backlog: LISTEN_BACKLOG }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    // Shutdown: stop accepting, let requests and streams in flight finish within
    // server.drain_timeout, end the rest (an `event: error` frame for a committed stream), then
    // drop the connections that are left (idle keep-alives, admin long-polls).
    closers.push(async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await proxy.drain(reloader.current.config.server.drain_timeout);
      server.closeAllConnections();
      await closed;
    });
    const addr = server.address() as AddressInfo;
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    url = `http://${host}:${addr.port}`;

    const ping = setInterval(() => {
      void db.ping().then((ok) => {
        if (ok !== dbOk)
          eventLog(log, 'database_health')[ok ? 'info' : 'error'](
            { ok },
            `database ${ok ? 'recovered' : 'unreachable'}`,
          );
        dbOk = ok;
      });
      void pruneSessions(db, now()).catch(() => {});
    }, 30_000);
    ping.unref();
    closers.push(() => clearInterval(ping));
    const retention = new RetentionTimer(db, {
      retentionMs: () => reloader.current.config.store.retention,
      now,
      log,
    });
    retention.start();
    closers.push(() => retention.close());

    let watcher: ConfigWatcher | undefined;
    if (opts.watch !== false) {
      watcher = watchConfig(initial.path, () => void reloader.request('file'), {
        log,
        debounceMs: opts.debounceMs,
      });
      closers.push(() => watcher?.close());
      await watcher.ready;
    }

    const controlPath = controlFilePath(initial.path, opts.env);
    try {
      writeControlFile(controlPath, { pid: process.pid, url, token: controlToken });
      closers.push(() => removeControlFile(controlPath, controlToken));
    } catch (err) {
      log.warn(
        { err, path: controlPath },
        'could not write the control file: `ccload reload` will not reach this daemon',
      );
    }

    ready = true;
    closers.push(() => {
      ready = false;
    });
    eventLog(log, 'listening').info(
      { url, generation: initial.generation, hash: initial.hash, database: db.kind },
      `ccload listening on ${url}`,
    );
    if (reloader.current.adminPassword === undefined) loginLink.announce(log, url);
    return { app, url, server, logDb, routes: admin.routes, close };
  } catch (err) {
    await close();
    throw err;
  }
}
