/**
 * Admin authentication: password check, login throttling, the session cookie and the Origin check
 * that every state-changing admin request passes. Secrets are compared in constant time.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** The session cookie's name (docs/interfaces.md#public-routes). */
export const SESSION_COOKIE = 'ccload_session';

/**
 * Constant-time equality of two secrets of any length: both are hashed first, so neither the
 * content nor the length of the expected value leaks through timing.
 */
export function secretEquals(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/**
 * Failed-login throttle per client address: after `maxFailures` failures inside `windowMs` the
 * address is refused until the oldest of them leaves the window. Memory is bounded.
 */
export class LoginThrottle {
  readonly #failures = new Map<string, number[]>();
  readonly #max: number;
  readonly #window: number;
  readonly #maxClients: number;

  constructor(opts: { maxFailures?: number; windowMs?: number; maxClients?: number } = {}) {
    this.#max = opts.maxFailures ?? 5;
    this.#window = opts.windowMs ?? 15 * 60_000;
    this.#maxClients = opts.maxClients ?? 10_000;
  }

  /** Milliseconds until `client` may try again; 0 = now. */
  retryAfter(client: string, now: number): number {
    const list = this.#recent(client, now);
    if (list.length < this.#max) return 0;
    return list[list.length - this.#max]! + this.#window - now;
  }

  /** Records a failed attempt. */
  fail(client: string, now: number): void {
    const list = this.#recent(client, now);
    list.push(now);
    this.#failures.set(client, list.slice(-this.#max));
    if (this.#failures.size > this.#maxClients) {
      const oldest = this.#failures.keys().next().value;
      if (oldest !== undefined) this.#failures.delete(oldest);
    }
  }

  /** Forgets a client's failures after a successful login. */
  succeed(client: string): void {
    this.#failures.delete(client);
  }

  #recent(client: string, now: number): number[] {
    return (this.#failures.get(client) ?? []).filter((t) => now - t < this.#window);
  }
}

/** Cookie header → name/value map (first occurrence wins). */
export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!header) return out;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    if (!out.has(name)) out.set(name, decodeURIComponent(part.slice(eq + 1).trim()));
  }
  return out;
}

/** Whether the request arrived over TLS (directly or per a reverse proxy's header). */
function isSecure(req: IncomingMessage): boolean {
  return (
    (req.socket as { encrypted?: boolean }).encrypted === true ||
    String(req.headers['x-forwarded-proto'] ?? '').startsWith('https')
  );
}

/** `Set-Cookie` value of a new session: HttpOnly, SameSite=Strict, Secure behind TLS. */
export function sessionCookie(req: IncomingMessage, id: string, ttlMs: number): string {
  const secure = isSecure(req) ? '; Secure' : '';
  return `${SESSION_COOKIE}=${id}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${Math.floor(ttlMs / 1000)}${secure}`;
}

/** `Set-Cookie` value that removes the session cookie. */
export function clearedSessionCookie(req: IncomingMessage): string {
  const secure = isSecure(req) ? '; Secure' : '';
  return `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0${secure}`;
}

/**
 * CSRF defence for state-changing requests: an `Origin` (or, without one, a `Referer`) must name
 * this very host; a browser's `Sec-Fetch-Site: cross-site` is refused outright. Requests with
 * neither header (curl, scripts) pass: they carry no ambient browser credentials to abuse.
 */
export function sameOrigin(req: IncomingMessage): boolean {
  const site = req.headers['sec-fetch-site'];
  if (site === 'cross-site' || site === 'same-site') return false;
  const origin = req.headers.origin ?? refererOrigin(req.headers.referer);
  if (origin === undefined) return true;
  if (origin === 'null') return false;
  const host = req.headers.host;
  if (!host) return false;
  try {
    return new URL(origin).host.toLowerCase() === host.toLowerCase();
  } catch {
    return false;
  }
}

function refererOrigin(referer: string | undefined): string | undefined {
  if (!referer) return undefined;
  try {
    return new URL(referer).origin;
  } catch {
    return 'null';
  }
}

/** The client address used for throttling. */
export function clientAddress(req: IncomingMessage): string {
  return req.socket.remoteAddress ?? 'unknown';
}
