/**
 * The Config page: the file as it is on disk with secrets redacted (`${NAME}` references stay
 * visible; a literal key shows as its last 4 characters), the lines the last rejected reload
 * blamed highlighted, whether dashboard edits can be written back, "reload now", and the reload
 * history.
 */
import { readFile } from 'node:fs/promises';
import type { App } from '../../app.js';
import { redactYaml } from '../../config/secrets.js';
import type { StoredReload } from '../../store/state-store.js';
import { type Html, html } from '../html.js';
import { ms, shortHash, time } from './format.js';

/** Why edits are (not) possible, in one sentence. */
function writeBackNote(app: App, writable: boolean): Html {
  const c = app.reloader.current.config.admin;
  if (!c.write_back) {
    return html`<p class="notice notice-info">This configuration is managed in git only (<code>admin.write_back: false</code>):
      the dashboard is read-only. Change <code>${app.reloader.current.file}</code> in its repository; ccload reloads it.</p>`;
  }
  if (!writable) {
    return html`<p class="notice notice-error">Edits are enabled but <code>${app.reloader.current.path}</code> or its folder is not
      writable by ccload, so the dashboard is read-only until that is fixed.</p>`;
  }
  return html`<p class="muted">Dashboard edits are written into this file with comments intact${c.git_commit ? html` and committed to its git repository` : ''}.</p>`;
}

/** The YAML listing with line numbers; `bad` lines are highlighted. */
function listing(text: string, bad: ReadonlySet<number>): Html {
  const lines = text.replace(/\n$/, '').split('\n');
  return html`<pre class="yaml">${lines.map(
    (line, i) =>
      html`<span class="line${bad.has(i + 1) ? ' err-line' : ''}" id="L${i + 1}"><span class="ln">${i + 1}</span>${line}</span>`,
  )}</pre>`;
}

function history(rows: readonly StoredReload[]): Html {
  if (rows.length === 0) return html`<p class="muted">No reloads recorded yet.</p>`;
  const cls = (r: string) => (r === 'applied' ? 'ok' : r === 'unchanged' ? 'off' : 'bad');
  return html`<div class="table-wrap"><table>
<thead><tr><th>time</th><th>cause</th><th>result</th><th class="num">generation</th><th class="hide-sm">hash</th><th class="num">took</th><th>errors</th></tr></thead>
<tbody>${rows.map(
    (r) => html`<tr>
  <td class="nowrap">${time(r.at)}</td><td>${r.source}</td><td><span class="badge badge-${cls(r.result)}">${r.result}</span></td>
  <td class="num">${r.generation ?? '–'}</td><td class="hide-sm"><code>${r.hash ? shortHash(r.hash) : '–'}</code></td>
  <td class="num">${ms(r.durationMs)}</td>
  <td class="small">${r.errors.map((e) => html`<div><span class="mono">${e.line}:${e.col}</span> ${e.path ? html`<code>${e.path}</code>: ` : ''}${e.message}</div>`)}</td>
</tr>`,
  )}</tbody></table></div>`;
}

/** The page body. */
export async function configBody(app: App, writable: boolean): Promise<Html> {
  const s = app.reloader.current;
  const last = app.reloader.lastAttempt;
  let text: string;
  try {
    text = redactYaml(await readFile(s.path, 'utf8'));
  } catch (err) {
    text = `# cannot read ${s.path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`;
  }
  const bad = new Set(last.ok ? [] : last.errors.map((e) => e.line));
  const reloads = await app.state.recentReloads(50).catch(() => []);
  return html`<h1>Config</h1>
<section class="panel">
  <h2><code>${s.file}</code><span class="spacer"></span>
    <button class="primary" hx-post="/ui/reload" hx-target="#reload-result" hx-swap="innerHTML">
      <span class="when-idle">Reload now</span><span class="when-busy">Reloading…</span></button></h2>
  <div id="reload-result"></div>
  ${writeBackNote(app, writable)}
  <p class="muted small">As on disk now, secrets redacted: <code>\${NAME}</code> references are shown as they are, literal keys only by their last 4 characters.${
    last.ok ? '' : html` Highlighted lines are where the last reload failed.`
  }</p>
  ${listing(text, bad)}
</section>
<section class="panel">
  <h2>Reload history</h2>
  ${history(reloads)}
</section>`;
}
