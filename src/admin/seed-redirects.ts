/**
 * The Go ccLoad's page addresses (`/web/*.html`, served from its `web/` folder) redirect to the
 * matching ccload page, so bookmarks and scripts of users who switched keep working. Every target
 * is a fixed local path from the table below; only filters that mean the same thing here are
 * carried over (renamed to ours), everything else of the query is dropped, so no redirect can lead
 * off-site or carry arbitrary text into a page. 302, not 301: a browser caches a 301 for good, and
 * a user who goes back to the Go ccLoad on the same address would then loop between its `/` →
 * `/web/index.html` and our `/web/index.html` → `/`.
 */
import { localRedirect } from './auth.js';
import type { Route } from './router.js';

/** One Go ccLoad page: where it goes here and which of its query parameters map to ours. */
interface SeedPage {
  readonly to: string;
  /** Seed parameter → ours (same meaning); a fixed `extra` query may be added. */
  readonly params?: Readonly<Record<string, string>>;
  readonly extra?: Readonly<Record<string, string>>;
}

/**
 * Every `web/*.html` the Go ccLoad has shipped. Its time ranges (`range=today|this_week|…`) are
 * calendar periods with no equal among our rolling windows, so they are dropped (the page's
 * default, 24 h, applies); its channel ids (`channels.html?id=`) are database ids with no meaning
 * here (channels are named in ccload.yaml).
 */
export const SEED_PAGES: Readonly<Record<string, SeedPage>> = {
  'index.html': { to: '/' },
  'trend.html': { to: '/' }, // the request trend is on the overview
  'channels.html': { to: '/channels' },
  'groups.html': { to: '/channels' }, // model groups: channels and their model lists
  'model-test.html': { to: '/channels' }, // each channel's Test button
  'logs.html': {
    to: '/logs',
    params: { channel_name: 'channel', model: 'model', status_code: 'status' },
  },
  'errors.html': { to: '/logs', extra: { status: 'error' } }, // the early releases' failed-request log
  'stats.html': { to: '/stats' },
  'tokens.html': { to: '/stats' }, // usage per client token; the tokens themselves are in ccload.yaml
  'settings.html': { to: '/config' },
  'login.html': { to: '/login', params: { redirect: 'next' } },
};

/**
 * Where a Go ccLoad page address goes: a local path with the query rebuilt from the mapped
 * parameters, or undefined for an address that is not one of its pages. `/web` and `/web/` are
 * its index, as in the Go ccLoad.
 */
export function seedRedirect(pathname: string, search: string): string | undefined {
  const m = /^\/web(?:\/([^/]*))?$/.exec(pathname);
  if (!m) return undefined;
  const name = m[1] === undefined || m[1] === '' ? 'index.html' : m[1];
  if (!Object.hasOwn(SEED_PAGES, name)) return undefined;
  const page = SEED_PAGES[name]!;
  const given = new URLSearchParams(search);
  const out = new URLSearchParams(page.extra);
  for (const [from, to] of Object.entries(page.params ?? {})) {
    const value = given.get(from);
    if (value === null || value === '') continue;
    if (to === 'next') {
      // The seed's login redirect: kept only as a local path (it is checked again at login).
      const next = localRedirect(value);
      if (next !== '/') out.set(to, next);
    } else out.set(to, value.slice(0, 200));
  }
  const query = out.toString();
  return query ? `${page.to}?${query}` : page.to;
}

/**
 * `GET /web`, `/web/` and `/web/<page>.html` of every seed page: 302 to ours. Any other address
 * under `/web/` matches no route and gets the router's 404.
 */
export function seedRoutes(): Route[] {
  const paths = ['/web', '/web/', ...Object.keys(SEED_PAGES).map((name) => `/web/${name}`)];
  return paths.map(
    (path): Route => ({
      method: 'GET',
      path,
      access: 'public',
      handle(_req, res, ctx) {
        res.writeHead(302, { location: seedRedirect(ctx.url.pathname, ctx.url.search) ?? '/' });
        res.end();
      },
    }),
  );
}
