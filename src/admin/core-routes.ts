/**
 * The routes every daemon serves from the start: `/health`, `/metrics`, login/logout, the config
 * status and `POST /admin/reload` (docs/interfaces.md).
 */

import { access, constants } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname } from 'node:path';
import type { App } from '../app.js';
import type { ConfigIssue } from '../config/snapshot.js';
import { ADMIN_ERRORS, type AdminErrorCode, adminErrorBody } from '../errors.js';
import { createSession, deleteSession, type SessionKey } from '../store/sessions.js';
import {
  clearedSessionCookie,
  clientAddress,
  isRefusal,
  type LoginThrottle,
  localRedirect,
  secretEquals,
  sessionCookie,
  throttleKey,
} from './auth.js';
import { type LoginMode, loginPage } from './pages/login.js';
import { BodyTooLarge, parseFormOrJson, readBody, sendJson, sendText } from './respond.js';
import type { Route } from './router.js';
import { sendHtml } from './ui.js';

const iso = (ms: number) => new Date(ms).toISOString();

/** An issue as the admin API shows it. */
export function issueJson(i: ConfigIssue) {
  return { file: i.file, line: i.line, col: i.col, path: i.path, message: i.message };
}

/** Whether write-back is possible: enabled in the config and the file and its folder are writable. */
export async function configWritable(app: App): Promise<boolean> {
  const s = app.reloader.current;
  if (!s.config.admin.write_back) return false;
  try {
    await access(s.path, constants.W_OK);
    await access(dirname(s.path), constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** `GET /admin/config/status` body. */
export async function configStatus(app: App) {
  const s = app.reloader.current;
  const last = app.reloader.lastAttempt;
  return {
    generation: s.generation,
    hash: s.hash,
    loaded_at: iso(s.loadedAt),
    source: s.source,
    file: s.file,
    writable: await configWritable(app),
    warnings: s.warnings.map(issueJson),
    last_attempt: {
      at: iso(last.at),
      ok: last.ok,
      cause: last.source,
      result: last.result,
      errors: last.errors.map(issueJson),
    },
  };
}

/** The core route table. */
export function coreRoutes(app: App, throttle: LoginThrottle): Route[] {
  /** The message and `retry-after` of a login the throttle refused (password and link alike). */
  const throttled = (ticket: { reason: string; retryAfterMs: number }) => {
    const seconds = Math.ceil(ticket.retryAfterMs / 1000);
    return {
      message:
        ticket.reason === 'failures'
          ? `too many failed logins; try again in ${seconds} s`
          : 'another login from this address is in progress; try again in a moment',
      headers: { 'retry-after': String(seconds) },
    };
  };

  /** What the login page offers: the password form, or (no password set) the login link. */
  const loginMode = (): LoginMode => (app.reloader.current.adminPassword !== undefined ? 'password' : 'link');

  /** A new session bound to `key`, and the cookie that carries it. */
  const openSession = async (req: IncomingMessage, client: string, now: number, key: SessionKey) => {
    const ttl = app.reloader.current.config.admin.session_ttl;
    const ua = String(req.headers['user-agent'] ?? '').slice(0, 120);
    const session = await createSession(app.db, {
      ttlMs: ttl,
      client: `${client} ${ua}`.trim(),
      now,
      password: key,
    });
    return { cookie: sessionCookie(req, session.id, ttl), expiresAt: session.expiresAt };
  };

  /**
   * `GET /login?token=…`: the login link (login-link.ts). Refused while an admin password is
   * configured; otherwise throttled like a password login (the same budget per address) and
   * compared in constant time. Success: a session bound to this process, then 303 to `next`.
   * Neither answer nor log line repeats the token.
   */
  const linkLogin = async (req: IncomingMessage, res: ServerResponse, token: string, next: string) => {
    const refuse = (status: number, error: string, headers: Record<string, string> = {}) =>
      sendHtml(res, status, loginPage({ error, next, mode: loginMode() }), headers);
    if (app.reloader.current.adminPassword !== undefined) {
      return refuse(403, 'the login link is off: an admin password is configured; log in with it');
    }
    const client = clientAddress(req);
    const now = app.now();
    const ticket = throttle.begin(throttleKey(client), now);
    if (isRefusal(ticket)) {
      const { message, headers } = throttled(ticket);
      return refuse(429, message, headers);
    }
    if (!app.loginLink.matches(token)) {
      ticket.fail(app.now());
      app.log.warn({ event: 'login_failed', client }, "login failed: not this process's login link");
      return refuse(401, 'this login link is not valid (it changes at every start): use the one in the log');
    }
    ticket.succeed();
    const { cookie } = await openSession(req, client, now, { linkSecret: app.loginLink.sessionSecret });
    app.log.info({ event: 'login', client, via: 'link' }, 'admin logged in through the login link');
    res.writeHead(303, { location: next, 'set-cookie': cookie });
    res.end();
  };

  return [
    {
      method: 'GET',
      path: '/health',
      access: 'public',
      anyHost: true,
      async handle(_req, res) {
        const s = app.reloader.current;
        const dbOk = app.databaseOk();
        const writer = app.logWriter.stats();
        const degraded = !dbOk || writer.degraded || writer.failing || !app.reloader.lastAttempt.ok;
        const ready = app.ready();
        sendJson(res, ready ? 200 : 503, {
          status: ready ? (degraded ? 'degraded' : 'ok') : 'unavailable',
          config: { generation: s.generation, hash: s.hash, last_reload_ok: app.reloader.lastAttempt.ok },
          database: dbOk && !writer.failing ? 'ok' : 'error',
          log_queue: { depth: writer.depth, dropped: writer.dropped, degraded: writer.degraded },
        });
      },
    },
    {
      method: 'GET',
      path: '/metrics',
      access: 'public',
      anyHost: true,
      async handle(_req, res) {
        sendText(res, 200, await app.metrics.scrape(), app.metrics.registry.contentType);
      },
    },
    {
      method: 'GET',
      path: '/login',
      access: 'public',
      async handle(req, res, ctx) {
        const next = localRedirect(ctx.url.searchParams.get('next'));
        const token = ctx.url.searchParams.get('token');
        if (token !== null) return linkLogin(req, res, token, next);
        sendHtml(res, 200, loginPage({ next, mode: loginMode() }));
      },
    },
    {
      method: 'POST',
      path: '/login',
      access: 'public',
      async handle(req, res) {
        const form = req.headers['content-type']?.includes('application/x-www-form-urlencoded') === true;
        let body: Record<string, unknown> | undefined;
        const fail = (code: AdminErrorCode, message: string, headers: Record<string, string> = {}) => {
          const status = ADMIN_ERRORS[code].status;
          if (!form) return sendJson(res, status, adminErrorBody(code, message), headers);
          const page = loginPage({ error: message, next: localRedirect(body?.['next']), mode: loginMode() });
          sendHtml(res, status, page, headers);
        };
        // The attempt is reserved before the first await, so parallel guesses count at once.
        const client = clientAddress(req);
        const now = app.now();
        const ticket = throttle.begin(throttleKey(client), now);
        if (isRefusal(ticket)) {
          const { message, headers } = throttled(ticket);
          return fail('login_throttled', message, headers);
        }
        let password: string | undefined;
        try {
          body = parseFormOrJson(await readBody(req, 64 * 1024), req.headers['content-type']);
          password = typeof body?.['password'] === 'string' ? body['password'] : undefined;
        } catch (err) {
          ticket.release();
          if (err instanceof BodyTooLarge) return fail('login_too_large', 'login request too large');
          throw err;
        }
        if (password === undefined) {
          ticket.release();
          return fail('login_malformed', 'expected {"password": "..."}');
        }
        const expected = app.reloader.current.adminPassword;
        if (expected === undefined) {
          ticket.release();
          app.log.warn(
            { event: 'login_refused', client },
            'password login refused: no admin password is configured (use the login link from the start-up log, or set admin.password or CCLOAD_PASS)',
          );
          return fail(
            'login_failed',
            'no admin password is set: use the login link printed in the log at start-up, or set admin.password or CCLOAD_PASS',
          );
        }
        if (!secretEquals(password, expected)) {
          ticket.fail(app.now());
          app.log.warn({ event: 'login_failed', client }, 'login failed: wrong password');
          return fail('login_failed', 'wrong password');
        }
        ticket.succeed();
        const { cookie, expiresAt } = await openSession(req, client, now, expected);
        app.log.info({ event: 'login', client }, 'admin logged in');
        if (form) {
          res.writeHead(303, { location: localRedirect(body?.['next']), 'set-cookie': cookie });
          res.end();
        } else {
          sendJson(res, 200, { ok: true, expires_at: iso(expiresAt) }, { 'set-cookie': cookie });
        }
      },
    },
    {
      method: 'POST',
      path: '/logout',
      access: 'public',
      async handle(req, res, ctx) {
        if (ctx.sessionId) await deleteSession(app.db, ctx.sessionId, app.sessionKey());
        const cookie = clearedSessionCookie(req);
        if (req.headers.accept?.includes('text/html')) {
          res.writeHead(303, { location: '/login', 'set-cookie': cookie });
          res.end();
        } else {
          sendJson(res, 200, { ok: true }, { 'set-cookie': cookie });
        }
      },
    },
    {
      method: 'GET',
      path: '/admin/config/status',
      access: 'control',
      async handle(_req, res) {
        sendJson(res, 200, await configStatus(app));
      },
    },
    {
      method: 'POST',
      path: '/admin/reload',
      access: 'control',
      async handle(_req, res) {
        const o = await app.reloader.request('api');
        if (o.result === 'rejected') {
          sendJson(res, 422, {
            result: 'rejected',
            generation: o.generation,
            hash: o.hash,
            errors: o.errors.map(issueJson),
          });
        } else {
          const s = app.reloader.current;
          sendJson(res, 200, {
            result: o.result,
            generation: o.generation,
            hash: o.hash,
            loaded_at: iso(s.loadedAt),
            source: s.source,
          });
        }
      },
    },
  ];
}
