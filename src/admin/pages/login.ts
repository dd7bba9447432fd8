/**
 * The login page: the only HTML served without a session. It works without JavaScript (a plain
 * form POST) and on a phone.
 */
import { type Html, html } from '../html.js';

/** The whole login page; `error` is shown above the form, `next` is where to go after login. */
export function loginPage(opts: { error?: string; next?: string; passwordConfigured: boolean }): Html {
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
  ${
    opts.passwordConfigured
      ? ''
      : html`<p class="banner banner-error" role="alert">No admin password is configured, so every login is refused.
    Set <code>admin.password</code> in ccload.yaml (as a <code>\${REFERENCE}</code>) or the <code>CCLOAD_PASS</code>
    environment variable, then reload.</p>`
  }
  ${opts.error ? html`<p class="banner banner-error" role="alert">${opts.error}</p>` : ''}
  <form method="post" action="/login">
    <input type="hidden" name="next" value="${opts.next ?? '/'}">
    <label for="password">Password</label>
    <input id="password" name="password" type="password" autocomplete="current-password" required autofocus>
    <button type="submit">Log in</button>
  </form>
</main>
</body>
</html>`;
}
