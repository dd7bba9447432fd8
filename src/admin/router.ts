/**
 * The admin side's router: security headers on every answer → Host check (DNS rebinding) →
 * Origin check on every state-changing request → access check (public, session, or
 * session/control token) → handler. Handler errors become a 500 whose internal cause is logged,
 * not echoed.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { App } from '../app.js';
import { getSession, type SessionInfo } from '../store/sessions.js';
import { hostAllowed, parseCookies, SESSION_COOKIE, sameOrigin, secretEquals } from './auth.js';
import { sendAdminError } from './respond.js';
import { SECURITY_HEADERS } from './ui.js';

/**
 * Who may call a route: anyone, a logged-in session, or a session or the control token. The
 * control token (the per-start secret of the control file, for `ccload reload`) opens exactly two
 * routes: `POST /admin/reload` and `GET /admin/config/status`; nothing else may use `control`.
 */
export type Access = 'public' | 'session' | 'control';

/** What a handler receives besides req/res. */
export interface RouteContext {
  readonly url: URL;
  /** Capture groups of a RegExp path, URL-decoded. */
  readonly params: readonly string[];
  readonly session: SessionInfo | null;
  /** The raw session id of the request (for logout); never logged. */
  readonly sessionId: string | undefined;
}

/**
 * One route. `page: true` marks HTML pages: an anonymous visitor is redirected to /login.
 * `anyHost: true` skips the Host check, for what monitors read (/health, /metrics, the public
 * summary); every other route answers only to the names `hostAllowed` accepts.
 */
export interface Route {
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  readonly path: string | RegExp;
  readonly access: Access;
  readonly page?: boolean;
  readonly anyHost?: boolean;
  handle(req: IncomingMessage, res: ServerResponse, ctx: RouteContext): Promise<void> | void;
}

/** Dispatches admin/public requests; `handle` resolves false when no route matched the path. */
export class AdminRouter {
  readonly #app: App;
  readonly #routes: readonly Route[];

  constructor(app: App, routes: readonly Route[]) {
    this.#app = app;
    this.#routes = routes;
  }

  /** The route table, in matching order. */
  get routes(): readonly Route[] {
    return this.#routes;
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);
    const url = new URL(req.url ?? '/', 'http://ccload.invalid');
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    let pathMatched = false;
    for (const route of this.#routes) {
      const params = match(route.path, url.pathname);
      if (!params) continue;
      pathMatched = true;
      if (route.method !== method) continue;
      try {
        await this.#run(route, req, res, url, params);
      } catch (err) {
        this.#app.log.error({ err, path: url.pathname }, 'admin handler failed');
        if (!res.headersSent) sendAdminError(res, 'internal', 'internal error; see the daemon log');
        else res.destroy();
      }
      return true;
    }
    if (pathMatched) {
      sendAdminError(res, 'method_not_allowed', `method ${req.method} not allowed on ${url.pathname}`);
      return true;
    }
    return false;
  }

  async #run(
    route: Route,
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    params: string[],
  ): Promise<void> {
    if (
      route.anyHost !== true &&
      !hostAllowed(
        req.headers.host,
        this.#app.listenHost,
        this.#app.reloader.current.config.server.allowed_hosts,
      )
    ) {
      sendAdminError(
        res,
        'unknown_host',
        'unknown Host: ccload answers to its listen address; add other names to server.allowed_hosts',
      );
      return;
    }
    if (route.method !== 'GET' && !sameOrigin(req)) {
      sendAdminError(res, 'cross_origin', 'cross-origin request refused (Origin does not match this host)');
      return;
    }
    const sessionId = parseCookies(req.headers.cookie).get(SESSION_COOKIE);
    let session: SessionInfo | null = null;
    if (route.access !== 'public') {
      if (sessionId) {
        session = await getSession(this.#app.db, sessionId, this.#app.now(), this.#app.sessionKey());
      }
      const control = route.access === 'control' && this.#controlToken(req);
      if (!session && !control) {
        if (route.page) {
          res.writeHead(303, { location: `/login?next=${encodeURIComponent(url.pathname + url.search)}` });
          res.end();
        } else {
          sendAdminError(res, 'login_required', 'login required');
        }
        return;
      }
    }
    await route.handle(req, res, { url, params, session, sessionId });
  }

  #controlToken(req: IncomingMessage): boolean {
    const auth = req.headers.authorization;
    return auth?.startsWith('Bearer ') === true && secretEquals(auth.slice(7), this.#app.controlToken);
  }
}

function match(path: string | RegExp, pathname: string): string[] | undefined {
  if (typeof path === 'string') return path === pathname ? [] : undefined;
  const m = path.exec(pathname);
  if (!m) return undefined;
  try {
    return m.slice(1).map((s) => decodeURIComponent(s ?? ''));
  } catch {
    return undefined;
  }
}
