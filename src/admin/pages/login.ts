/**
 * The login page: the only HTML served without a session. It works without JavaScript (a plain
 * form POST) and on a phone. Without an admin password there is nothing to type: the page points
 * at the login link the daemon wrote to its log at start-up (admin/login-link.ts).
 */
import { type Html, html } from '../html.js';

/** How one logs in now: with the admin password, or (none configured) through the login link. */
export type LoginMode = 'password' | 'link';

/** The whole login page; `error` is shown above the form, `next` is where to go after login. */
export function loginPage(opts: { error?: string; next?: string; mode: LoginMode }): Html {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ccload — log in</title>
<link rel="stylesheet" href="/public/style.css">
</head>
<body class="login">
<main class="login-box">
  <h1>ccload</h1>
  ${opts.error ? html`<p class="banner banner-error" role="alert">${opts.error}</p>` : ''}
  ${
    opts.mode === 'password'
      ? html`<form method="post" action="/login">
    <input type="hidden" name="next" value="${opts.next ?? '/'}">
    <label for="password">Password</label>
    <input id="password" name="password" type="password" autocomplete="current-password" required autofocus>
    <button type="submit">Log in</button>
  </form>`
      : html`<p class="banner banner-warn" role="status"><strong>No admin password is set.</strong>
    Use the login link printed in the log at start-up (<code>/login?token=…</code>; it changes at every
    start), or set <code>CCLOAD_PASS</code> (or <code>admin.password</code> in ccload.yaml, as a
    <code>\${REFERENCE}</code>) and reload.</p>
  <p class="muted small">Under systemd: <code>journalctl -u ccload | grep token=</code>.</p>`
  }
</main>
</body>
</html>`;
}
