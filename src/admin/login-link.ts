/**
 * The login link of a daemon without an admin password (as Jupyter does it): a random token made
 * at start, written to the log exactly once, and accepted by `GET /login?token=…` for as long as
 * this process runs and no admin password is configured. Sessions opened through it are bound to a
 * second per-start secret (`sessionSecret`), so they end with the process, and — because a
 * configured password changes the key sessions are looked up with — as soon as a reload sets one.
 *
 * Where the token appears: the one log line `announce` writes, and the browser's address bar and
 * history when the link is opened. Nothing else prints it: it is compared in constant time and
 * never echoed by pages, API answers, `/metrics` or other log lines (request URLs are not logged).
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from '../observability/log.js';
import { secretEquals } from './auth.js';

/** Random bytes of the token and of the session secret (256 bits, like a session id). */
const TOKEN_BYTES = 32;

/** The per-process login link; see the module comment. */
export class LoginLink {
  readonly #token = randomBytes(TOKEN_BYTES).toString('base64url');
  /** What link sessions are keyed with (store/sessions.ts); never leaves the process. */
  readonly sessionSecret = randomBytes(TOKEN_BYTES).toString('base64url');
  #announced = false;

  /**
   * Whether the link has been written to the log. It is announced the first time the daemon runs
   * without an admin password — at start, or on the reload that removes the password — and only
   * then may it log in.
   */
  get announced(): boolean {
    return this.#announced;
  }

  /** Whether `given` is this process's token (constant time; false before the announcement). */
  matches(given: string): boolean {
    return this.#announced && secretEquals(given, this.#token);
  }

  /**
   * Writes the link to the log, once per process: a later call does nothing. `baseUrl` is where
   * the daemon listens (`http://127.0.0.1:8080`); a wildcard address is shown as loopback, which
   * the Host check always accepts for a wildcard listen.
   */
  announce(log: Logger, baseUrl: string): void {
    if (this.#announced) return;
    this.#announced = true;
    const link = `${loopbackForWildcard(baseUrl)}/login?token=${this.#token}`;
    // The token is in the message only (no field repeats it), so this line is its one appearance.
    log.warn(
      { event: 'login_link' },
      `no admin password is set: open ${link} to log in (the link works until ccload stops or a password is set; set CCLOAD_PASS for a permanent login)`,
    );
  }
}

/** `http://0.0.0.0:8080` → `http://127.0.0.1:8080`, `http://[::]:8080` → `http://[::1]:8080`. */
export function loopbackForWildcard(baseUrl: string): string {
  return baseUrl.replace(/^(https?:\/\/)(?:0\.0\.0\.0|\[::\])(?=[:/]|$)/, (_m, scheme: string) =>
    baseUrl.includes('[::]') ? `${scheme}[::1]` : `${scheme}127.0.0.1`,
  );
}
