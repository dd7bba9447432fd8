/**
 * The observability part of the admin JSON API (docs/interfaces.md#observability): the attempt log
 * (`/admin/logs`, alias `/admin/errors`), stats per channel × model, the request trend
 * (`/admin/metrics`), usage per client token, and the public summary. Query parameters are
 * validated; a bad one is a 400 naming it.
 *
 * `/admin/logs` and `/admin/metrics` answer bare JSON arrays, as the Go seed did, so its clients keep
 * working; the log's total count is in the `x-total-count` header. The counting rules (attempts vs
 * client requests) are in store/queries.ts.
 */
import type { ServerResponse } from 'node:http';
import type { App } from '../app.js';
import {
  MAX_TREND_BUCKETS,
  parseStatusFilter,
  queryCacheShare,
  queryLogs,
  queryStats,
  querySummary,
  queryTrend,
  queryUsage,
  type StatusFilter,
} from '../store/queries.js';
import { sendAdminError, sendJson } from './respond.js';
import type { Route } from './router.js';

/** Largest `hours`: 400 days. */
export const MAX_HOURS = 24 * 400;
/** Largest `offset` of the log (deep pages cost a scan of every skipped row). */
export const MAX_OFFSET = 1_000_000;

/** A query parameter was invalid; the message names it and the accepted values. */
class BadParam extends Error {}

/** An integer parameter in [min, max]; `def` when absent or empty. */
function intParam(url: URL, name: string, def: number, min: number, max: number): number {
  const raw = url.searchParams.get(name);
  if (raw === null || raw.trim() === '') return def;
  const v = raw.trim();
  if (!/^[+-]?\d+$/.test(v) || Number(v) < min || Number(v) > max) {
    throw new BadParam(`${name} must be an integer from ${min} to ${max}, got "${raw.slice(0, 40)}"`);
  }
  return Number(v);
}

/** A text filter; undefined when absent or empty ("all"). */
function textParam(url: URL, name: string): string | undefined {
  const v = url.searchParams.get(name);
  if (v === null || v === '') return undefined;
  if (v.length > 200) throw new BadParam(`${name} is longer than 200 characters`);
  return v;
}

function statusParam(url: URL): StatusFilter | undefined {
  const raw = url.searchParams.get('status');
  if (raw === null || raw.trim() === '') return undefined;
  const f = parseStatusFilter(raw);
  if (!f) {
    throw new BadParam(
      `status must be an HTTP code (e.g. 429), a class (2xx, 4xx, 5xx) or "error", got "${raw.slice(0, 40)}"`,
    );
  }
  return f;
}

const hoursParam = (url: URL) => intParam(url, 'hours', 24, 1, MAX_HOURS);

/** Runs `fn`; a `BadParam` becomes a 400 JSON answer. */
async function answer(res: ServerResponse, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof BadParam) return sendAdminError(res, 'bad_parameter', err.message);
    throw err;
  }
}

/** The routes of this module. */
export function statsRoutes(app: App): Route[] {
  const logs: Route['handle'] = (_req, res, ctx) =>
    answer(res, async () => {
      const u = ctx.url;
      const q = {
        hours: hoursParam(u),
        limit: intParam(u, 'limit', 100, 1, 1000),
        offset: intParam(u, 'offset', 0, 0, MAX_OFFSET),
        channel: textParam(u, 'channel'),
        model: textParam(u, 'model'),
        token: textParam(u, 'token'),
        status: statusParam(u),
      };
      const page = await queryLogs(app.db, q, app.now());
      sendJson(res, 200, page.entries, {
        'x-total-count': page.total,
        'access-control-expose-headers': 'x-total-count',
      });
    });
  return [
    { method: 'GET', path: '/admin/logs', access: 'session', handle: logs },
    { method: 'GET', path: '/admin/errors', access: 'session', handle: logs },
    {
      method: 'GET',
      path: '/admin/stats',
      access: 'session',
      handle: (_req, res, ctx) =>
        answer(res, async () => {
          const u = ctx.url;
          const q = { hours: hoursParam(u), channel: textParam(u, 'channel'), model: textParam(u, 'model') };
          const now = app.now();
          const [stats, cache] = await Promise.all([
            queryStats(app.db, q, now),
            queryCacheShare(app.db, q, now),
          ]);
          sendJson(res, 200, { stats, cache_read_share: cache });
        }),
    },
    {
      method: 'GET',
      path: '/admin/metrics',
      access: 'session',
      handle: (_req, res, ctx) =>
        answer(res, async () => {
          const hours = hoursParam(ctx.url);
          const bucketMin = intParam(ctx.url, 'bucket_min', 5, 1, 1440);
          const buckets = Math.ceil((hours * 60) / bucketMin);
          if (buckets > MAX_TREND_BUCKETS) {
            throw new BadParam(
              `hours=${hours} with bucket_min=${bucketMin} makes ${buckets} buckets; at most ${MAX_TREND_BUCKETS}: raise bucket_min or lower hours`,
            );
          }
          sendJson(res, 200, await queryTrend(app.db, { hours, bucketMin }, app.now()));
        }),
    },
    {
      method: 'GET',
      path: '/admin/usage',
      access: 'session',
      handle: (_req, res, ctx) =>
        answer(res, async () => {
          const hours = hoursParam(ctx.url);
          sendJson(res, 200, { usage: await queryUsage(app.db, { hours }, app.now()), hours });
        }),
    },
    {
      method: 'GET',
      path: '/public/summary',
      access: 'public',
      anyHost: true,
      handle: (_req, res, ctx) =>
        answer(res, async () => {
          sendJson(res, 200, await querySummary(app.db, { hours: hoursParam(ctx.url) }, app.now()));
        }),
    },
  ];
}
