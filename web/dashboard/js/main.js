// The dashboard's entry point: finds out who is looking (session, share link) and which sites
// they may see, then shows the view the URL names, again on every navigation. Navigation stays
// in the page (history.pushState), so back and forward move between views.

import * as api from "./api.js";
import { siteScreen } from "./dashboard.js";
import { clear, h } from "./dom.js";
import { topbar } from "./header.js";
import { parseLocation, viewUrl } from "./route.js";
import { homeScreen, loginScreen, missingScreen } from "./screens.js";

const root = document.getElementById("app");

/** What every screen reads and how it moves on. */
const app = {
  /** `available`: the server has logins; `user`: who is logged in; `users`: whether any exists. */
  auth: { available: false, user: null, users: null },
  /** The sites this viewer may see; null when the server gave no list. */
  sites: null,
  sitesError: null,
  /** Whether the account was read for a share link, which has none. */
  sharing: false,

  /** Shows `target` (a view or a path on this server) as a new history entry. */
  navigate(target) {
    const url = typeof target === "string" ? target : viewUrl(target);
    if (url !== location.pathname + location.search) history.pushState(null, "", url);
    render();
  },

  render,

  /** Asks again who is logged in and which sites they see (after logging in or out, say). */
  async reloadAccount() {
    const view = parseLocation();
    app.sharing = view.route === "share";
    // A share link reads its one site and nothing else; it has no account to ask about.
    if (app.sharing) {
      api.useShareToken(view.auth);
      app.auth = { available: false, user: null, users: null };
      app.sites = null;
      return;
    }
    api.useShareToken(null);
    try {
      const me = await api.me();
      api.useCsrfToken(me.csrf);
      app.auth = { available: true, user: me.user, users: true };
    } catch (e) {
      // 401: nobody is logged in (the body says whether anyone could); 404: a server without logins.
      app.auth = { available: e.status === 401, user: null, users: e.body?.users ?? null };
    }
    try {
      app.sites = (await api.sites()).sites;
      app.sitesError = null;
    } catch (e) {
      app.sites = null;
      app.sitesError = e.status === 404 ? null : e.message;
    }
  },
};

/**
 * One view's lifetime: its requests end (`signal`) and its timers stop (`onDispose`) when the
 * next view replaces it. `track` follows its loads, for `document.body.dataset.state`: "loading"
 * while any runs, "ready" once all have settled, which is what browser tests wait for.
 */
function newScope() {
  const controller = new AbortController();
  const disposers = [];
  let pending = 0;
  const settle = () => {
    if (pending === 0 && !controller.signal.aborted) document.body.dataset.state = "ready";
  };
  document.body.dataset.state = "loading";
  return {
    signal: controller.signal,
    track(promise) {
      pending++;
      document.body.dataset.state = "loading";
      promise
        .catch(() => {})
        .finally(() => {
          pending--;
          settle();
        });
      return promise;
    },
    onDispose: (fn) => disposers.push(fn),
    settle,
    dispose() {
      controller.abort();
      disposers.forEach((fn) => fn());
    },
  };
}

let scope = null;

function render() {
  scope?.dispose();
  scope = newScope();
  const view = parseLocation();
  // Someone logged in who opens /login is sent on, as a login would have.
  if (view.route === "login" && app.auth.user) {
    history.replaceState(null, "", view.next ?? "/");
    return render();
  }
  document.title = "footfall";
  const screens = {
    home: () => [topbar(app, view, scope.signal).element, homeScreen(app, scope)],
    login: () => [topbar(app, view, scope.signal).element, loginScreen(app, view)],
    site: () => siteScreen(app, view, scope),
    share: () => siteScreen(app, view, scope),
    missing: () => [topbar(app, view, scope.signal).element, missingScreen()],
  };
  clear(root, screens[view.route]());
  scope.settle();
}

// Links inside the dashboard change the view without reloading the page; modified clicks
// (a new tab, say) are left to the browser.
document.addEventListener("click", (e) => {
  const a = e.target.closest?.("a[href]");
  if (
    !a ||
    a.target ||
    e.defaultPrevented ||
    e.button !== 0 ||
    e.metaKey ||
    e.ctrlKey ||
    e.shiftKey ||
    e.altKey
  )
    return;
  const url = new URL(a.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/api/")) return;
  e.preventDefault();
  app.navigate(url.pathname + url.search);
});

// Back or forward between a share link and the rest asks again who is looking.
window.addEventListener("popstate", () => {
  if ((parseLocation().route === "share") === app.sharing) render();
  else app.reloadAccount().then(render);
});

// Until the account is known, the page says it is loading rather than flashing a login form.
clear(root, h("p", { class: "booting muted" }, "Loading…"));
app.reloadAccount().then(render);
