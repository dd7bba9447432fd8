/**
 * The dashboard's routes: whole pages (session required; anonymous visitors are sent to /login)
 * and the htmx fragments they swap. A page is composed from the same fragment functions.
 */
import type { App } from '../app.js';
import { configWritable } from './core-routes.js';
import { html } from './html.js';
import { banner } from './pages/banner.js';
import { configBody } from './pages/config-page.js';
import { layout } from './pages/layout.js';
import type { Route } from './router.js';
import { sendHtml } from './ui.js';

/** The page and fragment routes. */
export function pageRoutes(app: App): Route[] {
  return [
    {
      method: 'GET',
      path: '/config',
      access: 'session',
      page: true,
      async handle(_req, res) {
        const body = await configBody(app, await configWritable(app));
        sendHtml(res, 200, layout({ title: 'Config', active: 'config', banner: banner(app), body }));
      },
    },
    {
      method: 'GET',
      path: '/ui/banner',
      access: 'session',
      handle(_req, res) {
        sendHtml(res, 200, banner(app));
      },
    },
    {
      method: 'POST',
      path: '/ui/reload',
      access: 'session',
      async handle(_req, res) {
        const o = await app.reloader.request('api');
        const notice =
          o.result === 'rejected'
            ? html`<p class="notice notice-error">Rejected: ${o.errors.length} error${o.errors.length === 1 ? '' : 's'} (see the banner). Generation ${o.generation} keeps serving.</p>`
            : o.result === 'applied'
              ? html`<p class="notice notice-ok">Applied: generation ${o.generation} is serving.</p>`
              : html`<p class="notice notice-info">Unchanged: the file on disk is what is serving (generation ${o.generation}).</p>`;
        sendHtml(res, 200, html`${notice}${banner(app, { oob: true })}`);
      },
    },
  ];
}
