/**
 * The dashboard's routes: whole pages (session required; anonymous visitors are sent to /login)
 * and the htmx fragments they swap. A page is composed from the same fragment functions. Actions
 * post forms and get the refreshed fragment back, with a notice saying what happened.
 */
import type { IncomingMessage } from 'node:http';
import type { App } from '../app.js';
import type { ChannelEdit } from '../config/write-back/channel-edit.js';
import { clearCooldowns, writeBackStatus } from './channel-routes.js';
import { testChannel } from './channel-test.js';
import { configWritable } from './core-routes.js';
import { type Html, html } from './html.js';
import { banner } from './pages/banner.js';
import { channelForm, editFromForm, findChannel } from './pages/channel-form.js';
import { channelsPanel, type Notice, testResultHtml, writeBackNotice } from './pages/channels-page.js';
import { configBody } from './pages/config-page.js';
import { layout, type PageName } from './pages/layout.js';
import { logFilterForm, logFilters, logsPanel } from './pages/logs-page.js';
import { overviewBody } from './pages/overview-page.js';
import { statsHours, statsPanel } from './pages/stats-page.js';
import { tokensPanel } from './pages/tokens-page.js';
import { readBody } from './respond.js';
import type { Route } from './router.js';
import { sendHtml } from './ui.js';

const ACTION = /^\/ui\/channels\/([^/]+)\/(enable|disable|delete|clear|priority|test|edit)$/;

async function form(req: IncomingMessage): Promise<URLSearchParams> {
  return new URLSearchParams((await readBody(req, 256 * 1024)).toString('utf8'));
}

/** The page and fragment routes. */
export function pageRoutes(app: App): Route[] {
  const page = (title: string, active: PageName, body: Html) =>
    layout({ title, active, banner: banner(app), body });

  /** Runs a write-back edit and answers with the refreshed channels panel. */
  const edit = async (e: ChannelEdit, hash: string | null, what: string) => {
    const r = await app.writeBack.apply(e, hash ?? undefined);
    return {
      status: r.ok ? 200 : writeBackStatus(r),
      panel: await channelsPanel(app, { notice: writeBackNotice(r, what) }),
    };
  };

  /**
   * A page and the fragment htmx swaps into it: the page is the fragment (plus `head`, e.g. a
   * filter form) inside the layout, so both always render the same data.
   */
  const view = (
    path: string,
    fragmentPath: string,
    title: string,
    active: PageName,
    fragment: (url: URL) => Promise<Html>,
    head: (url: URL) => Html = () => html``,
  ): Route[] => [
    {
      method: 'GET',
      path,
      access: 'session',
      page: true,
      async handle(_req, res, ctx) {
        const body = html`<h1>${title}</h1>${head(ctx.url)}${await fragment(ctx.url)}`;
        sendHtml(res, 200, page(title, active, body));
      },
    },
    {
      method: 'GET',
      path: fragmentPath,
      access: 'session',
      async handle(_req, res, ctx) {
        sendHtml(res, 200, await fragment(ctx.url));
      },
    },
  ];

  return [
    ...view('/', '/ui/overview', 'Overview', 'overview', () => overviewBody(app)),
    ...view(
      '/logs',
      '/ui/logs',
      'Logs',
      'logs',
      (url) => logsPanel(app, logFilters(url)),
      (url) => logFilterForm(app, logFilters(url)),
    ),
    ...view('/stats', '/ui/stats', 'Stats', 'stats', (url) => statsPanel(app, statsHours(url))),
    ...view('/channels', '/ui/channels', 'Channels', 'channels', () => channelsPanel(app)),
    ...view('/tokens', '/ui/tokens', 'Tokens', 'tokens', () => tokensPanel(app)),
    {
      method: 'GET',
      path: '/channels/new',
      access: 'session',
      page: true,
      async handle(_req, res) {
        const writable = await configWritable(app);
        const body = writable
          ? channelForm({ hash: app.reloader.current.hash })
          : html`<p class="notice notice-info">Edits are off: see the Config page for why.</p>`;
        sendHtml(res, 200, page('Add channel', 'channels', html`<h1>Channels</h1>${body}`));
      },
    },
    {
      method: 'GET',
      path: '/channels/edit',
      access: 'session',
      page: true,
      async handle(_req, res, ctx) {
        const name = ctx.url.searchParams.get('name') ?? '';
        const { hash, channel } = await findChannel(app, name);
        const body = channel
          ? channelForm({ hash, channel })
          : html`<p class="notice notice-error">No channel named <code>${name}</code>. <a href="/channels">Back</a></p>`;
        sendHtml(res, channel ? 200 : 404, page('Edit channel', 'channels', html`<h1>Channels</h1>${body}`));
      },
    },
    {
      method: 'POST',
      path: '/ui/channels/new',
      access: 'session',
      async handle(req, res) {
        const f = await form(req);
        const e = editFromForm(f, undefined);
        if (typeof e === 'string') {
          const error = html`<p class="notice notice-error">${e}</p>`;
          return sendHtml(res, 400, channelForm({ hash: f.get('hash') ?? '', error }));
        }
        const r = await app.writeBack.apply(e, f.get('hash') ?? undefined);
        if (!r.ok) {
          const n = writeBackNotice(r, `Add ${e.action === 'add' ? e.channel.name : ''}`);
          return sendHtml(
            res,
            writeBackStatus(r),
            channelForm({
              hash: f.get('hash') ?? '',
              error: html`<div class="notice notice-error">${n.body}</div>`,
            }),
          );
        }
        const n = writeBackNotice(r, `Added channel ${e.action === 'add' ? e.channel.name : ''}`);
        sendHtml(
          res,
          200,
          html`<section class="panel" id="form-panel"><div class="notice notice-${n.kind}">${n.body}</div><a class="button" href="/channels">Back to channels</a></section>`,
        );
      },
    },
    {
      method: 'POST',
      path: ACTION,
      access: 'session',
      async handle(req, res, ctx) {
        const [name, action] = ctx.params as [string, string];
        const f = await form(req);
        const hash = f.get('hash');
        if (action === 'edit') {
          const { channel } = await findChannel(app, name);
          if (!channel)
            return sendHtml(
              res,
              404,
              html`<p class="notice notice-error">No channel named <code>${name}</code>.</p>`,
            );
          const e = editFromForm(f, channel);
          if (typeof e === 'string') {
            return sendHtml(
              res,
              400,
              channelForm({
                hash: hash ?? '',
                channel,
                error: html`<p class="notice notice-error">${e}</p>`,
              }),
            );
          }
          const r = await app.writeBack.apply(e, hash ?? undefined);
          const n = writeBackNotice(r, `Saved channel ${name}`);
          if (!r.ok) {
            return sendHtml(
              res,
              writeBackStatus(r),
              channelForm({
                hash: hash ?? '',
                channel,
                error: html`<div class="notice notice-error">${n.body}</div>`,
              }),
            );
          }
          return sendHtml(
            res,
            200,
            html`<section class="panel" id="form-panel"><div class="notice notice-${n.kind}">${n.body}</div><a class="button" href="/channels">Back to channels</a></section>`,
          );
        }
        if (action === 'test') {
          const r = await testChannel(app, name, { model: f.get('model') ?? undefined });
          return sendHtml(res, 200, testResultHtml(name, r));
        }
        if (action === 'clear') {
          const n = clearCooldowns(app, name);
          const notice: Notice = {
            kind: 'ok',
            body: html`Cleared ${n} cooldown${n === 1 ? '' : 's'} of <strong>${name}</strong> (runtime state only; the file is unchanged).`,
          };
          return sendHtml(res, 200, await channelsPanel(app, { notice }));
        }
        let e: ChannelEdit;
        let what: string;
        if (action === 'priority') {
          const priority = Number(f.get('priority'));
          if (!Number.isInteger(priority)) {
            const notice: Notice = { kind: 'error', body: html`Priority must be a whole number.` };
            return sendHtml(res, 400, await channelsPanel(app, { notice }));
          }
          e = { action: 'set-priority', name, priority };
          what = `Priority of ${name} set to ${priority}`;
        } else {
          e = { action: action as 'enable' | 'disable' | 'delete', name };
          what = `${action === 'enable' ? 'Enabled' : action === 'disable' ? 'Disabled' : 'Deleted'} ${name}`;
        }
        const r = await edit(e, hash, what);
        sendHtml(res, r.status, r.panel);
      },
    },
    {
      method: 'GET',
      path: '/config',
      access: 'session',
      page: true,
      async handle(_req, res) {
        sendHtml(res, 200, page('Config', 'config', await configBody(app, await configWritable(app))));
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
