// The top bar: the site picker, the period picker (with custom dates and steps back and
// forward), and the account's controls: share links, the user and logging out.

import * as api from "./api.js";
import { copyButton, h, internalLink } from "./dom.js";
import { PERIODS, addDays, formatRange, localToday, periodName, range, shift } from "./period.js";
import { viewUrl } from "./route.js";

/** The bar for `view`; `setToday(date)` completes it once the site's date is known. Listeners
 * outside the bar end with `signal`. */
export function topbar(app, view, signal) {
  const onSite = view.route === "site" || view.route === "share";
  const brand = h("span", { class: "brand-mark", "aria-hidden": "true" });
  const picker = onSite ? periodPicker(app, view) : null;
  const element = h(
    "header",
    { class: "topbar" },
    h(
      "div",
      { class: "topbar-inner" },
      view.route === "share"
        ? h("span", { class: "brand" }, brand, "footfall")
        : internalLink("/", { class: "brand" }, brand, "footfall"),
      onSite && sitePicker(app, view),
      picker?.element,
      h("span", { class: "spacer" }),
      account(app, view, signal),
    ),
  );
  return { element, setToday: (today) => picker?.setToday(today) };
}

function sitePicker(app, view) {
  const domains = (app.sites ?? []).map((s) => s.domain);
  if (!domains.includes(view.domain)) domains.unshift(view.domain);
  const select = h(
    "select",
    { class: "select site-picker", "aria-label": "Site", dataset: { testid: "site-picker" } },
    domains.map((d) => h("option", { value: d }, d)),
  );
  select.value = view.domain;
  // A share link opens one site only.
  if (view.route === "share") select.disabled = true;
  select.addEventListener("change", () =>
    app.navigate({ ...view, domain: select.value, filters: [] }),
  );
  return select;
}

function periodPicker(app, view) {
  const guess = localToday();
  const select = h(
    "select",
    { class: "select", "aria-label": "Period", dataset: { testid: "period-picker" } },
    // Named after the browser's date until the site's is known (setToday).
    PERIODS.map((p) => h("option", { value: p }, periodName(p, view.date ?? guess, guess))),
  );
  select.value = view.period;
  const dateInput = (label, value) =>
    h("input", { type: "date", class: "input", required: true, value, "aria-label": label });
  const from = dateInput("First day", view.from ?? "");
  const to = dateInput("Last day", view.to ?? "");
  const custom = h(
    "form",
    { class: "custom-range", hidden: view.period !== "custom" },
    from,
    h("span", { "aria-hidden": "true" }, "–"),
    to,
    h("button", { type: "submit", class: "button small" }, "Apply"),
  );
  const step = (label, symbol) =>
    h(
      "button",
      { type: "button", class: "button ghost step", "aria-label": label, disabled: true },
      symbol,
    );
  const back = step("Previous period", "‹");
  const forward = step("Next period", "›");
  const label = h("span", { class: "range-label muted" });

  select.addEventListener("change", () => {
    if (select.value === "custom") {
      custom.hidden = false;
      from.focus();
    } else app.navigate({ ...view, period: select.value, date: null });
  });
  custom.addEventListener("submit", (e) => {
    e.preventDefault();
    const [a, b] = [from.value, to.value].sort();
    app.navigate({ ...view, period: "custom", from: a, to: b, date: null });
  });

  return {
    element: h("div", { class: "period" }, back, select, forward, custom, label),
    setToday(today) {
      const anchored = { ...view, date: view.date ?? today };
      for (const option of select.options)
        option.textContent = periodName(option.value, anchored.date, today);
      const r = range(anchored);
      label.textContent = formatRange(r.from, r.to);
      for (const input of [from, to]) input.max = today;
      if (!from.value) [from.value, to.value] = [addDays(today, -6), today];
      // The date leaves the URL when it is today again, so that the view keeps following today.
      const go = (n) => {
        const next = shift(anchored, n);
        if (next.date === today) next.date = null;
        app.navigate(next);
      };
      back.disabled = false;
      forward.disabled = range(shift(anchored, 1)).from > today;
      back.addEventListener("click", () => go(-1));
      forward.addEventListener("click", () => go(1));
    },
  };
}

/** Who is looking, and what they may do: share links and logging out, or logging in. */
function account(app, view, signal) {
  if (view.route === "share") return h("span", { class: "badge" }, "Shared view · read-only");
  const { user, users, available } = app.auth;
  if (user) {
    const logout = h(
      "button",
      { type: "button", class: "button ghost", dataset: { testid: "logout" } },
      "Log out",
    );
    logout.addEventListener("click", async () => {
      logout.disabled = true;
      try {
        await api.logout();
      } catch (e) {
        // A session that is already gone is logged out all the same.
        if (e.status !== 401) {
          logout.disabled = false;
          logout.title = e.message;
          return;
        }
      }
      api.useCsrfToken(null);
      await app.reloadAccount();
      app.navigate("/login");
    });
    return h(
      "div",
      { class: "account" },
      view.route === "site" && shareMenu(view.domain, signal),
      h("span", { class: "user muted", title: "Logged in" }, user),
      logout,
    );
  }
  if (available && users && view.route !== "login") {
    return internalLink(
      viewUrl({ route: "login", next: location.pathname + location.search }),
      { class: "button ghost" },
      "Log in",
    );
  }
  return null;
}

/** The "Share" menu: the site's share links, to copy, create and revoke. */
function shareMenu(domain, signal) {
  const button = h(
    "button",
    { type: "button", class: "button", "aria-expanded": "false" },
    "Share",
  );
  const list = h("ul", { class: "share-list" });
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const name = h("input", {
    class: "input",
    placeholder: "Name (optional)",
    "aria-label": "Link name",
  });
  const create = h(
    "form",
    { class: "inline" },
    name,
    h("button", { type: "submit", class: "button small primary" }, "Create link"),
  );
  const popover = h(
    "div",
    {
      class: "popover card",
      role: "dialog",
      "aria-label": `Share links of ${domain}`,
      hidden: true,
    },
    h("h2", {}, "Share links"),
    h(
      "p",
      { class: "muted" },
      "Anyone with a link can read this dashboard, without logging in, until you revoke it.",
    ),
    list,
    error,
    create,
  );
  const fail = (e) => {
    error.textContent = e.status === 404 ? "This server has no share links yet." : e.message;
    error.hidden = false;
  };
  async function refresh() {
    error.hidden = true;
    try {
      const { shares } = await api.shares(domain);
      list.replaceChildren(
        ...(shares.length
          ? shares.map((s) => shareItem(domain, s, refresh, fail))
          : [h("li", { class: "muted" }, "No link yet.")]),
      );
    } catch (e) {
      fail(e);
    }
  }
  create.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api.createShare(domain, name.value.trim());
      name.value = "";
      await refresh();
    } catch (err) {
      fail(err);
    }
  });
  const toggle = (open) => {
    popover.hidden = !open;
    button.setAttribute("aria-expanded", String(open));
    if (open) refresh();
  };
  button.addEventListener("click", () => toggle(popover.hidden));
  // Closed by Escape or a click elsewhere, as menus are.
  const wrapper = h("div", { class: "share" }, button, popover);
  const outside = (e) => {
    if (!popover.hidden && !wrapper.contains(e.target)) toggle(false);
  };
  document.addEventListener("click", outside, { signal });
  wrapper.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !popover.hidden) {
      toggle(false);
      button.focus();
    }
  });
  return wrapper;
}

const created = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });

function shareItem(domain, share, refresh, fail) {
  // The API gives a path; only a path on this server becomes the link to copy.
  const url = new URL(share.url, location.origin);
  const href = url.origin === location.origin ? url.href : "";
  const text = h("code", { class: "share-url" }, href);
  const revoke = h("button", { type: "button", class: "button small danger" }, "Revoke");
  let armed = false;
  revoke.addEventListener("click", async () => {
    // Revoking breaks the link for everyone at once: ask once more.
    if (!armed) {
      armed = true;
      revoke.textContent = "Really revoke?";
      return;
    }
    try {
      await api.revokeShare(domain, share.id);
      await refresh();
    } catch (e) {
      fail(e);
    }
  });
  return h(
    "li",
    { class: "share-item" },
    h(
      "div",
      {},
      h("strong", {}, share.name || "Unnamed link"),
      " ",
      h("span", { class: "muted" }, `created ${created.format(new Date(share.created))}`),
    ),
    text,
    h(
      "div",
      { class: "share-actions" },
      copyButton(() => href, text),
      revoke,
    ),
  );
}
