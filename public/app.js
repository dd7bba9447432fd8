// ccload dashboard behaviours. Kept out of the pages so the Content-Security-Policy can forbid
// inline scripts.
(() => {
  'use strict';

  /** "42s", "2m 05s", "1h 10m" for a number of milliseconds. */
  function left(ms) {
    const s = Math.max(0, Math.ceil(ms / 1000));
    if (s < 60) return `${s}s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
    const h = Math.floor(m / 60);
    return `${h}h ${String(m % 60).padStart(2, '0')}m`;
  }

  // Live countdowns: <span data-until="EPOCH_MS">…</span>. When one runs out, the panel that
  // holds it (an element with hx-get) is asked to refresh.
  function tick() {
    const now = Date.now();
    for (const el of document.querySelectorAll('[data-until]')) {
      const until = Number(el.getAttribute('data-until'));
      const ms = until - now;
      if (ms > 0) {
        el.textContent = left(ms);
      } else if (!el.hasAttribute('data-expired')) {
        el.setAttribute('data-expired', '');
        el.textContent = 'ended';
        const panel = el.closest('[hx-get]');
        if (panel && window.htmx) window.htmx.trigger(panel, 'refresh');
      }
    }
  }
  setInterval(tick, 1000);
  document.addEventListener('DOMContentLoaded', tick);

  // Edits answer 403/409/412/422 with an explanatory fragment: show it instead of ignoring it.
  document.addEventListener('htmx:beforeSwap', (evt) => {
    const status = evt.detail.xhr.status;
    if ([400, 403, 404, 409, 412, 422, 502].includes(status)) {
      evt.detail.shouldSwap = true;
      evt.detail.isError = false;
    }
  });

  // A session that expired while the page was open: go to the login page.
  document.addEventListener('htmx:responseError', (evt) => {
    if (evt.detail.xhr.status === 401) window.location.href = `/login?next=${encodeURIComponent(location.pathname + location.search)}`;
  });

  // Fragments swapped in may carry countdowns too.
  document.addEventListener('htmx:afterSwap', tick);
})();

// Times are rendered in UTC on the server; show them in the viewer's own time zone.
(() => {
  function localise(root) {
    for (const el of (root || document).querySelectorAll('time[datetime]:not([data-local])')) {
      const d = new Date(el.getAttribute('datetime'));
      if (Number.isNaN(d.getTime())) continue;
      el.setAttribute('data-local', '');
      el.title = el.textContent;
      el.textContent = el.getAttribute('data-style') === 'time' ? d.toLocaleTimeString() : d.toLocaleString();
    }
  }
  document.addEventListener('DOMContentLoaded', () => localise());
  document.addEventListener('htmx:afterSwap', (evt) => localise(evt.target));
})();
