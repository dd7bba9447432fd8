/**
 * The routes every daemon serves from the start: `/health`, `/metrics`, login/logout, the config
 * status and `POST /admin/reload` (docs/interfaces.md).
 */
import { access, constants } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { App } from '../app.js';
import type { ConfigIssue } from '../config/snapshot.js';
import { createSession, deleteSession } from '../store/sessions.js';
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
import { loginPage } from './pages/login.js';
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
      handle(_req, res, ctx) {
        const next = localRedirect(ctx.url.searchParams.get('next'));
        const page = loginPage({
          next,
          passwordConfigured: app.reloader.current.adminPassword !== undefined,
        });
        sendHtml(res, 200, page);
      },
    },
    {
      method: 'POST',
      path: '/login',
      access: 'public',
      async handle(req, res) {
        const form = req.headers['content-type']?.includes('application/x-www-form-urlencoded') === true;
        let body: Record<string, unknown> | undefined;
        const fail = (status: number, message: string, headers: Record<string, string> = {}) => {
          if (!form) return sendJson(res, status, { error: message }, headers);
          const page = loginPage({
            error: message,
            next: localRedirect(body?.['next']),
            passwordConfigured: app.reloader.current.adminPassword !== undefined,
          });
          sendHtml(res, status, page, headers);
        };
        // The attempt is reserved before the first await, so parallel guesses count at once.
        const client = clientAddress(req);
        const now = app.now();
        const ticket = throttle.begin(throttleKey(client), now);
        if (isRefusal(ticket)) {
          const seconds = Math.ceil(ticket.retryAfterMs / 1000);
          return fail(
            429,
            ticket.reason === 'failures'
              ? `too many failed logins; try again in ${seconds} s`
              : 'another login from this address is in progress; try again in a moment',
            { 'retry-after': String(seconds) },
          );
        }
        let password: string | undefined;
        try {
          body = parseFormOrJson(await readBody(req, 64 * 1024), req.headers['content-type']);
          password = typeof body?.['password'] === 'string' ? body['password'] : undefined;
        } catch (err) {
          ticket.release();
          if (err instanceof BodyTooLarge) return fail(413, 'login request too large');
          throw err;
        }
        if (password === undefined) {
          ticket.release();
          return fail(400, 'expected {"password": "..."}');
        }
        const expected = app.reloader.current.adminPassword;
        if (expected === undefined) {
          ticket.release();
          app.log.warn(
            { event: 'login_refused', client },
            'login refused: no admin password is configured (set admin.password or CCLOAD_PASS)',
          );
          return fail(401, 'no admin password is configured: set admin.password or CCLOAD_PASS');
        }
        if (!secretEquals(password, expected)) {
          ticket.fail(app.now());
          app.log.warn({ event: 'login_failed', client }, 'login failed: wrong password');
          return fail(401, 'wrong password');
        }
        ticket.succeed();
        const ttl = app.reloader.current.config.admin.session_ttl;
        const ua = String(req.headers['user-agent'] ?? '').slice(0, 120);
        const session = await createSession(app.db, {
          ttlMs: ttl,
          client: `${client} ${ua}`.trim(),
          now,
          password: expected,
        });
        app.log.info({ event: 'login', client }, 'admin logged in');
        const cookie = sessionCookie(req, session.id, ttl);
        if (form) {
          res.writeHead(303, { location: localRedirect(body?.['next']), 'set-cookie': cookie });
          res.end();
        } else {
          sendJson(res, 200, { ok: true, expires_at: iso(session.expiresAt) }, { 'set-cookie': cookie });
        }
      },
    },
    {
      method: 'POST',
      path: '/logout',
      access: 'public',
      async handle(req, res, ctx) {
        if (ctx.sessionId) await deleteSession(app.db, ctx.sessionId, app.reloader.current.adminPassword);
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
