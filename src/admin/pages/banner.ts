/**
 * The config banner shown atop every page: which generation serves, from which hash, and the last
 * reload attempt — red with each error's line:col while that attempt failed. It refreshes itself.
 */
import type { App } from '../../app.js';
import { formatIssue } from '../../config/snapshot.js';
import { type Html, html } from '../html.js';
import { ago, shortHash, time } from './format.js';

const SOURCE: Record<string, string> = {
  startup: 'start-up',
  file: 'file change',
  signal: 'SIGHUP',
  api: 'reload request',
  'write-back': 'dashboard edit',
};

/** The banner fragment (`GET /ui/banner` swaps it in place every few seconds). */
export function banner(app: App, opts: { oob?: boolean } = {}): Html {
  const s = app.reloader.current;
  const last = app.reloader.lastAttempt;
  const now = app.now();
  const attrs = html`id="config-banner" hx-get="/ui/banner" hx-trigger="every 5s, refresh" hx-swap="outerHTML"${
    opts.oob ? html` hx-swap-oob="true"` : ''
  }`;
  const serving = html`generation <strong>${s.generation}</strong> · <code title="${s.hash}">${shortHash(s.hash)}</code>
    · loaded ${time(s.loadedAt, 'time')} (${ago(s.loadedAt, now)}) after ${SOURCE[s.source] ?? s.source}`;
  if (!last.ok) {
    return html`<section class="banner banner-error" role="alert" ${attrs}>
  <strong>The last reload was rejected</strong> (${SOURCE[last.source] ?? last.source}, ${time(last.at, 'time')}):
  the previous config keeps serving — ${serving}.
  <ul>${last.errors.map((e) => html`<li><span class="where">${e.file}:${e.line}:${e.col}</span> ${e.path ? html`<code>${e.path}</code>: ` : ''}${e.message}</li>`)}</ul>
</section>`;
  }
  const warnings = s.warnings;
  if (warnings.length > 0) {
    return html`<section class="banner banner-warn" ${attrs}>
  Config ${serving}.
  <details><summary>${warnings.length} warning${warnings.length === 1 ? '' : 's'}: ${warnings[0]!.message}${warnings.length > 1 ? ' …' : ''}</summary>
    <ul>${warnings.map((w) => html`<li class="mono small">${formatIssue(w)}</li>`)}</ul>
  </details>
</section>`;
  }
  return html`<section class="banner banner-ok" ${attrs}>Config ${serving}.</section>`;
}
