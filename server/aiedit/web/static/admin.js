// Keeps the admin page's live part (#live: queue, workers, users) fresh without reloading the
// page. A static file because the page's CSP allows no inline script.
"use strict";
(function () {
  const live = document.getElementById("live");
  if (!live) return;
  const every = Number(live.dataset.refreshMs) || 2000;

  async function refresh() {
    try {
      const resp = await fetch(window.location.pathname, {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
        cache: "no-store",
      });
      if (resp.ok) {
        const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
        const fresh = doc.getElementById("live");
        if (fresh) {
          live.replaceChildren(...Array.from(fresh.childNodes, (n) => document.importNode(n, true)));
        } else {
          window.location.reload(); // signed out meanwhile: show the sign-in form
          return;
        }
      }
    } catch (err) {
      // the server is restarting or unreachable: try again at the next tick
    }
    window.setTimeout(refresh, every);
  }

  window.setTimeout(refresh, every);
})();
