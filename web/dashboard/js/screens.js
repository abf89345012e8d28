// The screens around the dashboard: logging in, the site list, and the states that tell a person
// what to do next (no user yet, no site yet, a site that has no data yet).

import * as api from "./api.js";
import { codeBlock, errorBox, h, internalLink } from "./dom.js";
import { formatInteger } from "./format.js";
import { viewUrl } from "./route.js";

/** The tag that each page of a site needs, for `domain`, served by this very server. */
export const snippet = (domain) =>
  `<script defer data-site="${domain || "example.com"}" src="${location.origin}/js/footfall.js"></script>`;

/** How to start counting `domain`: the tag to paste, and what happens then. */
export function installHelp(domain) {
  return h(
    "div",
    { class: "install" },
    h(
      "p",
      {},
      "Paste this tag into the ",
      h("code", {}, "<head>"),
      " of every page of ",
      h("strong", {}, domain),
      ":",
    ),
    codeBlock(snippet(domain)),
    h(
      "p",
      { class: "muted" },
      "Visits show up here within seconds. Single-page apps are followed too.",
    ),
  );
}

/** No user exists yet: only the server's command line can make the first one. */
export function noUsers() {
  return h(
    "div",
    { class: "notice" },
    h("h2", {}, "Create an admin first"),
    h("p", {}, "This server has no user yet. On the server, create one, then reload this page:"),
    codeBlock("footfall user add NAME"),
  );
}

/**
 * The login form. `done(result)` runs after a successful login; `message` explains why it is
 * shown (a private site, for example).
 */
export function loginForm(app, { message, done } = {}) {
  if (app.auth.users === false) return noUsers();
  const field = (label, input) => h("label", { class: "field" }, h("span", {}, label), input);
  const username = h("input", {
    class: "input",
    name: "username",
    autocomplete: "username",
    required: true,
    dataset: { testid: "login-username" },
  });
  const password = h("input", {
    class: "input",
    type: "password",
    name: "password",
    autocomplete: "current-password",
    required: true,
    dataset: { testid: "login-password" },
  });
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const submit = h(
    "button",
    { type: "submit", class: "button primary", dataset: { testid: "login-submit" } },
    "Log in",
  );
  const form = h(
    "form",
    { class: "card auth-form" },
    h("h1", {}, "Log in to footfall"),
    message && h("p", { class: "muted" }, message),
    field("Username", username),
    field("Password", password),
    error,
    submit,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    submit.disabled = true;
    error.hidden = true;
    try {
      const result = await api.login(username.value, password.value);
      api.useCsrfToken(result.csrf);
      await done(result);
    } catch (err) {
      error.textContent =
        err.status === 404
          ? "This server does not offer logins yet: read stats with an API key."
          : err.message;
      error.hidden = false;
      password.select();
    } finally {
      submit.disabled = false;
    }
  });
  queueMicrotask(() => username.focus());
  return form;
}

/** The `/login` page: after logging in, on to `next` or the site list. */
export function loginScreen(app, view) {
  return h(
    "main",
    { class: "narrow" },
    loginForm(app, {
      done: async () => {
        await app.reloadAccount();
        app.navigate(view.next ?? "/");
      },
    }),
  );
}

/**
 * The form that adds a site (POST /api/sites), with the tag to paste previewed as the domain is
 * typed; on success it opens the new site.
 */
export function addSiteForm(app, { domain = "" } = {}) {
  const domainInput = h("input", {
    class: "input",
    name: "domain",
    required: true,
    placeholder: "example.com",
    autocomplete: "off",
    spellcheck: "false",
    value: domain,
    dataset: { testid: "site-domain" },
  });
  const zones =
    typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  const timezone = h("input", {
    class: "input",
    name: "timezone",
    list: "timezones",
    required: true,
    value: Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC",
  });
  const isPublic = h("input", { type: "checkbox", name: "public" });
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const submit = h("button", { type: "submit", class: "button primary" }, "Add site");
  const tag = codeBlock(snippet(domain));
  const preview = tag.querySelector("code");
  domainInput.addEventListener(
    "input",
    () => (preview.textContent = snippet(domainInput.value.trim())),
  );
  const form = h(
    "form",
    { class: "add-site" },
    h("label", { class: "field" }, h("span", {}, "Domain"), domainInput),
    h("label", { class: "field" }, h("span", {}, "Timezone (defines the site's days)"), timezone),
    h(
      "datalist",
      { id: "timezones" },
      zones.map((z) => h("option", { value: z })),
    ),
    h(
      "label",
      { class: "check" },
      isPublic,
      h("span", {}, "Public: anyone can read its stats without logging in"),
    ),
    error,
    submit,
    h("p", { class: "muted" }, "Then paste into every page:"),
    tag,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    submit.disabled = true;
    error.hidden = true;
    try {
      const site = await api.addSite({
        domain: domainInput.value.trim(),
        timezone: timezone.value.trim(),
        public: isPublic.checked,
      });
      await app.reloadAccount();
      app.navigate({ route: "site", domain: site.domain, period: "day", filters: [] });
    } catch (err) {
      error.textContent =
        err.status === 404
          ? `This server cannot add sites from the dashboard yet: run \`footfall site add ${domainInput.value.trim() || "example.com"}\` on it.`
          : err.message;
      error.hidden = false;
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

/** How to add a site from the command line, for those who cannot do it here. */
const addSiteCommand = (domain = "example.com") =>
  h("div", {}, h("p", {}, "Add a site on the server:"), codeBlock(`footfall site add ${domain}`));

/** `/`: the sites, each with today's visitors, or what to do when there are none. */
export function homeScreen(app, scope) {
  const main = h("main", { class: "narrow" });
  const { sites, auth } = app;
  if (sites == null) {
    // No site list from this server: a site can still be opened by name.
    main.append(app.sitesError ? errorBox(app.sitesError) : openSiteForm(app));
    return main;
  }
  if (!sites.length) {
    if (auth.user) {
      main.append(
        h(
          "section",
          { class: "card onboarding" },
          h("h1", {}, "Add your first site"),
          h(
            "p",
            {},
            "Name the site footfall should count. You can also run ",
            h("code", {}, "footfall site add example.com"),
            " on the server.",
          ),
          addSiteForm(app),
        ),
      );
    } else if (auth.users === false) {
      main.append(noUsers(), h("div", { class: "notice" }, addSiteCommand()));
    } else if (auth.available) {
      main.append(loginForm(app, { done: () => app.reloadAccount().then(() => app.render()) }));
    } else {
      main.append(
        h(
          "section",
          { class: "card onboarding" },
          h("h1", {}, "No site yet"),
          addSiteCommand(),
          installHelp("example.com"),
        ),
      );
    }
    return main;
  }
  const list = h(
    "ul",
    { class: "site-list" },
    sites.map((site) => {
      const count = h("span", { class: "site-visitors skeleton" }, "\u00a0");
      scope.track(
        api
          .stats(
            "aggregate",
            { site_id: site.domain, period: "day", metrics: "visitors" },
            scope.signal,
          )
          .then(
            (r) => {
              count.classList.remove("skeleton");
              count.textContent = `${formatInteger(r.results.visitors.value)} visitors today`;
            },
            (e) => {
              count.classList.remove("skeleton");
              count.textContent = e.status === 401 && !auth.user ? "log in to see its stats" : "";
              count.title = e.message;
            },
          ),
      );
      return h(
        "li",
        {},
        internalLink(
          viewUrl({ route: "site", domain: site.domain, period: "day", filters: [] }),
          { class: "card site-card", dataset: { testid: "site-link" } },
          h("span", { class: "site-domain" }, site.domain),
          site.public && h("span", { class: "badge" }, "public"),
          count,
        ),
      );
    }),
  );
  main.append(h("h1", { class: "page-title" }, "Sites"), list);
  if (auth.user) {
    main.append(
      h(
        "details",
        { class: "card add-site-box" },
        h("summary", {}, "Add a site"),
        addSiteForm(app),
      ),
    );
  } else if (auth.available && auth.users) {
    main.append(
      h(
        "p",
        { class: "muted" },
        "Only public sites are listed. ",
        internalLink("/login", {}, "Log in"),
        " to see all.",
      ),
    );
  }
  return main;
}

/** Opens `/{domain}` by name, where the server has no site list to offer. */
function openSiteForm(app) {
  const input = h("input", {
    class: "input",
    required: true,
    placeholder: "example.com",
    "aria-label": "Site domain",
  });
  const form = h(
    "form",
    { class: "card onboarding" },
    h("h1", {}, "Open a site"),
    h("p", {}, "Type the domain of a site on this server."),
    h(
      "div",
      { class: "inline" },
      input,
      h("button", { type: "submit", class: "button primary" }, "Open"),
    ),
    addSiteCommand(),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    app.navigate({ route: "site", domain: input.value.trim(), period: "day", filters: [] });
  });
  return form;
}

/** Why a site's dashboard cannot be shown, from the first request's error, and what to do. */
export function accessProblem(app, view, error, retry) {
  if (error.status === 401 && view.route === "share") {
    return h(
      "div",
      { class: "notice" },
      h("h2", {}, "This share link does not work"),
      h("p", {}, "It may have been revoked. Ask whoever shared it for a new one."),
      h("p", { class: "muted" }, error.message),
    );
  }
  if (error.status === 401 && app.auth.available && !app.auth.user) {
    return loginForm(app, {
      message: `Log in to see ${view.domain}.`,
      done: () => app.reloadAccount().then(() => app.render()),
    });
  }
  if (error.status === 404) {
    return h(
      "div",
      { class: "notice" },
      h("h2", {}, `No site ${view.domain} here`),
      h("p", { class: "muted" }, error.message),
      app.auth.user ? addSiteForm(app, { domain: view.domain }) : addSiteCommand(view.domain),
    );
  }
  return errorBox(error.message, retry);
}

/** Any path that is no page of the dashboard. */
export function missingScreen() {
  return h(
    "main",
    { class: "narrow" },
    h(
      "div",
      { class: "notice" },
      h("h1", {}, "No page here"),
      h("p", {}, internalLink("/", {}, "See the sites")),
    ),
  );
}
