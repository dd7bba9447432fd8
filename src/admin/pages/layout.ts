/**
 * The page shell every dashboard page shares: top bar with navigation and logout, the config
 * banner, and the page body. Pages are composed from the same fragment functions that answer
 * htmx swaps.
 */
import { type Html, html } from '../html.js';

/** The dashboard's pages, in navigation order. */
export const NAV = [
  ['overview', '/', 'Overview'],
  ['channels', '/channels', 'Channels'],
  ['tokens', '/tokens', 'Tokens'],
  ['logs', '/logs', 'Logs'],
  ['stats', '/stats', 'Stats'],
  ['config', '/config', 'Config'],
] as const;

/** One of the pages. */
export type PageName = (typeof NAV)[number][0];

/** A whole page. */
export function layout(opts: { title: string; active: PageName; banner: Html; body: Html }): Html {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="htmx-config" content='{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false}'>
<title>${opts.title} · ccload</title>
<link rel="icon" href="/public/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/public/style.css">
<script src="/public/vendor/htmx.min.js" defer></script>
<script src="/public/app.js" defer></script>
</head>
<body>
<header class="top">
  <a class="brand" href="/">ccload</a>
  <nav>
    ${NAV.map(([name, href, label]) => html`<a href="${href}" class="${name === opts.active ? 'active' : ''}">${label}</a>`)}
  </nav>
  <form method="post" action="/logout"><button type="submit" title="Log out">Log out</button></form>
</header>
<main>
${opts.banner}
${opts.body}
</main>
</body>
</html>`;
}
