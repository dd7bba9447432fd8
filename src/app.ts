/**
 * What the HTTP handlers see of the running daemon. `daemon.ts` builds it; handlers take it as a
 * parameter, so they can be composed without importing the composition root.
 */
import type { LoginLink } from './admin/login-link.js';
import type { Reloader } from './config/reloader.js';
import type { WriteBack } from './config/write-back/apply-edit.js';
import type { Logger } from './observability/log.js';
import type { Metrics } from './observability/metrics.js';
import type { Limits } from './proxy/limits.js';
import type { Runtime } from './proxy/runtime.js';
import type { ProxyState } from './proxy/state.js';
import type { Database } from './store/db.js';
import type { LogWriter } from './store/log-writer.js';
import type { SessionKey } from './store/sessions.js';
import type { StateStore } from './store/state-store.js';

/** The daemon's services, as handlers use them. */
export interface App {
  readonly reloader: Reloader;
  readonly db: Database;
  readonly state: StateStore;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** The clock (ms since epoch); tests may replace it. */
  now(): number;
  /** The host the server listens on as configured at start (`127.0.0.1`, `::`, a name): the Host check. */
  readonly listenHost: string;
  /** The per-start token of the control file (for `ccload reload`). */
  readonly controlToken: string;
  /** The per-start login link, usable while no admin password is configured (admin/login-link.ts). */
  readonly loginLink: LoginLink;
  /**
   * What sessions are made and looked up with now: the admin password, else the login link's
   * secret once the link was announced, else undefined (no session can exist).
   */
  sessionKey(): SessionKey | undefined;
  /** True once the daemon serves and until it starts draining. */
  ready(): boolean;
  /** Latest database health as seen by the periodic ping. */
  databaseOk(): boolean;
  readonly logWriter: LogWriter;
  /** Cooldowns and round-robin pointers. */
  readonly proxyState: ProxyState;
  /** Requests in flight per token and channel, and each token's spend (operator policy). */
  readonly limits: Limits;
  /** The serving snapshot's runtime (upstream pools, scrubber); enter/leave it around its use. */
  runtime(): Runtime;
  /** Applies channel edits to ccload.yaml (write-back), one at a time. */
  readonly writeBack: WriteBack;
}
