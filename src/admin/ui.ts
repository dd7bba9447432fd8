/**
 * Serving the dashboard: HTML responses with the security headers every page carries, and the
 * static files of `public/` (stylesheet, behaviours, vendored htmx) from memory.
 */
import { readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import type { Html } from './html.js';
import type { Route } from './router.js';

/**
 * Carried by every answer of the admin side (pages, fragments, login, JSON, redirects, errors,
 * static files): no inline script or style, nothing from elsewhere, never framed, no sniffing.
 * htmx's indicator styles are disabled by the page's htmx-config meta so it does not need inline
 * styles either. The proxy (/v1/*) passes the upstream's headers instead.
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'same-origin',
};

/** Sends an HTML page or fragment. */
export function sendHtml(
  res: ServerResponse,
  status: number,
  html: Html,
  headers: Record<string, string> = {},
): void {
  const body = html.value;
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    ...SECURITY_HEADERS,
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(body);
}

const TYPES: Record<string, string> = {
  css: 'text/css; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  svg: 'image/svg+xml',
  png: 'image/png',
  ico: 'image/x-icon',
};

/** The files of public/ served under /public/, read once. */
const STATIC = ['style.css', 'app.js', 'vendor/htmx.min.js', 'favicon.svg'];

function publicDir(): string {
  const here = fileURLToPath(import.meta.url);
  const root = here.includes('/dist/src/') ? here.split('/dist/src/')[0]! : here.split('/src/')[0]!;
  return `${root}/public`;
}

/** Routes for the static files (public, cacheable for an hour). */
export function staticRoutes(): Route[] {
  const dir = publicDir();
  return STATIC.map((name) => {
    const body = readFileSync(`${dir}/${name}`);
    const type = TYPES[name.split('.').pop()!] ?? 'application/octet-stream';
    return {
      method: 'GET',
      path: `/public/${name}`,
      access: 'public',
      handle(_req, res) {
        res.writeHead(200, {
          'content-type': type,
          'content-length': body.length,
          'cache-control': 'public, max-age=3600',
          'x-content-type-options': 'nosniff',
        });
        res.end(body);
      },
    } satisfies Route;
  });
}
