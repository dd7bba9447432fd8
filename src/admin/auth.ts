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

/** Why a login attempt may not start now, and for how long. */
export interface LoginRefusal {
  readonly reason: 'failures' | 'in-flight';
  /** Milliseconds until the client may try again (at least 1 s for `in-flight`). */
  readonly retryAfterMs: number;
}

/** A reserved login attempt: settle it exactly once with `fail`, `succeed` or `release`. */
export interface LoginTicket {
  /** The password was wrong: the reservation becomes a counted failure. */
  fail(now: number): void;
  /** The password was right: earlier failures of this client are forgotten. */
  succeed(): void;
  /** No password was evaluated (malformed or oversized request): the reservation is dropped. */
  release(): void;
}

interface ClientRecord {
  failures: number[];
  inFlight: number;
}

/**
 * Failed-login throttle per client address. An attempt is reserved synchronously, before its body
 * is read: a reservation counts against the limit like a failure until it is settled, so a burst
 * of parallel guesses cannot all be evaluated before the first failure is counted. After
 * `maxFailures` failures (and reservations) inside `windowMs` the address is refused until the
 * oldest failure leaves the window; at most `maxInFlight` logins per address run at once. Memory
 * is bounded by `maxClients`.
 */
export class LoginThrottle {
  readonly #clients = new Map<string, ClientRecord>();
  readonly #max: number;
  readonly #window: number;
  readonly #maxInFlight: number;
  readonly #maxClients: number;

  constructor(
    opts: { maxFailures?: number; windowMs?: number; maxInFlight?: number; maxClients?: number } = {},
  ) {
    this.#max = opts.maxFailures ?? 5;
    this.#window = opts.windowMs ?? 15 * 60_000;
    this.#maxInFlight = opts.maxInFlight ?? 2;
    this.#maxClients = opts.maxClients ?? 10_000;
  }

  /**
   * Reserves one login attempt for `client` at `now`, or says why it may not start. Synchronous:
   * call it before the first await of the login.
   */
  begin(client: string, now: number): LoginTicket | LoginRefusal {
    const rec = this.#record(client, now);
    const used = rec.failures.length + rec.inFlight;
    if (used >= this.#max) {
      // Only failures age out; with reservations in flight, the soonest a slot frees is unknown.
      const oldest = rec.failures[Math.max(0, rec.failures.length - (this.#max - rec.inFlight))];
      const wait = oldest === undefined ? 1000 : Math.max(1000, oldest + this.#window - now);
      return { reason: 'failures', retryAfterMs: wait };
    }
    if (rec.inFlight >= this.#maxInFlight) return { reason: 'in-flight', retryAfterMs: 1000 };
    rec.inFlight++;
    let settled = false;
    const settle = () => {
      if (settled) return undefined;
      settled = true;
      const r = this.#clients.get(client);
      if (r) r.inFlight = Math.max(0, r.inFlight - 1);
      return r;
    };
    return {
      fail: (at) => {
        const r = settle();
        if (!r) return;
        r.failures.push(at);
        if (r.failures.length > this.#max) r.failures.splice(0, r.failures.length - this.#max);
      },
      succeed: () => {
        const r = settle();
        if (r) r.failures = [];
      },
      release: () => void settle(),
    };
  }

  #record(client: string, now: number): ClientRecord {
    let rec = this.#clients.get(client);
    if (!rec) {
      rec = { failures: [], inFlight: 0 };
      this.#clients.set(client, rec);
      if (this.#clients.size > this.#maxClients) this.#evictOne();
    }
    rec.failures = rec.failures.filter((t) => now - t < this.#window);
    return rec;
  }

  /** Drops the oldest record that has nothing in flight (a reservation must stay counted). */
  #evictOne(): void {
    for (const [key, rec] of this.#clients) {
      if (rec.inFlight === 0) {
        this.#clients.delete(key);
        return;
      }
    }
  }
}

/** Whether `begin` refused the attempt. */
export function isRefusal(r: LoginTicket | LoginRefusal): r is LoginRefusal {
  return 'reason' in r;
}

/**
 * Cookie header → name/value map (first occurrence wins). Any site on the same host can set
 * cookies for it, so nothing here may throw: a value that is not valid percent-encoding is kept
 * as it arrived (it then matches no session) instead of failing the request.
 */
export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!header) return out;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    if (!out.has(name)) out.set(name, decodeCookieValue(part.slice(eq + 1).trim()));
  }
  return out;
}

function decodeCookieValue(value: string): string {
  if (!value.includes('%')) return value;
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
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

/** The client's address (for the log and the session's `client`). */
export function clientAddress(req: IncomingMessage): string {
  return req.socket.remoteAddress ?? 'unknown';
}

/**
 * What the login throttle counts per: an IPv4 address (also when it arrives IPv4-mapped), or the
 * /64 prefix of an IPv6 address — one host usually holds a whole /64, so counting per address
 * would give it 2^64 fresh budgets.
 */
export function throttleKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (!address.includes(':')) return address;
  const [head = '', tail] = address.toLowerCase().split('::', 2) as [string, string | undefined];
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups =
    tail === undefined
      ? left
      : [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}

/** The stand-in origin `next` is resolved against: only what stays on it is a local path. */
const SELF = 'http://ccload.invalid';

/**
 * Where to go after login: `next` resolved by the URL parser against the daemon's own origin,
 * accepted only when it stays there, and returned as the parser serialised it (path, query,
 * fragment). So every spelling a browser would take off-site — `//host`, `/\host`, a tab or
 * newline inside `//`, `https:host`, `/.//host` after dot-segment removal — lands on `/` instead.
 */
export function localRedirect(next: unknown): string {
  if (typeof next !== 'string' || next === '' || next.length > 2048) return '/';
  let url: URL;
  try {
    url = new URL(next, `${SELF}/`);
  } catch {
    return '/';
  }
  if (url.origin !== SELF || url.username !== '' || url.password !== '') return '/';
  // A path that serialises with a leading `//` would be read as a host by the browser.
  if (!url.pathname.startsWith('/') || url.pathname.startsWith('//')) return '/';
  return url.pathname + url.search + url.hash;
}

/** The host part of a Host header (`name`, `1.2.3.4`, `[::1]`), lower-cased, without port. */
function hostName(host: string): string {
  const h = host.trim().toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end < 0 ? h : h.slice(0, end + 1);
  }
  const colon = h.lastIndexOf(':');
  return (colon < 0 ? h : h.slice(0, colon)).replace(/\.$/, '');
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const isIpLiteral = (name: string) => IPV4.test(name) || /^\[[0-9a-f:.]+\]$/.test(name);
const isLoopbackIp = (name: string) =>
  /^127\./.test(name) || name === '[::1]' || name === '::1' || /^\[::ffff:127\./.test(name);
const isWildcard = (name: string) =>
  name === '' || name === '0.0.0.0' || name === '::' || name === '[::]' || name === '[::0]';

/**
 * DNS-rebinding defence: whether a request's `Host` names this daemon. A rebinding page always
 * reaches the daemon under the attacker's own DNS name, so only names ccload is known to answer
 * to pass: the listen address itself; with a loopback listen, any loopback address and
 * `localhost`; with a wildcard listen (0.0.0.0, ::), any IP literal and `localhost` (an IP
 * literal cannot be rebound); and every name in `server.allowed_hosts` (reverse proxies, DNS
 * names). The port is not compared (port forwards change it; it does not help against
 * rebinding). A request without Host (HTTP/1.0) passes: browsers always send one.
 */
export function hostAllowed(
  host: string | undefined,
  listenHost: string,
  allowedHosts: readonly string[],
): boolean {
  if (host === undefined) return true;
  const name = hostName(host);
  if (name === '') return false;
  const listen = hostName(
    listenHost.includes(':') && !listenHost.startsWith('[') ? `[${listenHost}]` : listenHost,
  );
  if (allowedHosts.some((a) => hostName(a) === name)) return true;
  if (name === listen) return true;
  const loopbackName = name === 'localhost' || isLoopbackIp(name);
  if (isWildcard(listen)) return isIpLiteral(name) || name === 'localhost';
  if (listen === 'localhost' || isLoopbackIp(listen)) return loopbackName;
  return false;
}
