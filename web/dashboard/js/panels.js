// The breakdown panels: each a set of tabs, one breakdown per tab, its top rows with a bar and
// a "Details" view of up to 100. Clicking a row filters the whole dashboard to it; in Goals it
// opens the event's custom props instead.

import * as api from "./api.js";
import { clear, errorBox, externalLink, h } from "./dom.js";
import { countryName, flag, formatInteger } from "./format.js";
import { filterOf, joinFilters } from "./route.js";

const TOP = 9;
const DETAILS = 100;

/**
 * The panels. A tab: its label, the API `property`, the column's name, and optionally `link`
 * (`page`: a path on the site; `url`: an address), `kind` (`country`) and `metrics`.
 */
export const PANELS = [
  {
    id: "pages",
    title: "Pages",
    tabs: [
      { label: "Top pages", property: "event:page", column: "Page", link: "page" },
      { label: "Entry pages", property: "visit:entry_page", column: "Entry page", link: "page" },
      { label: "Exit pages", property: "visit:exit_page", column: "Exit page", link: "page" },
    ],
  },
  {
    id: "sources",
    title: "Sources",
    tabs: [
      { label: "Sources", property: "visit:source", column: "Source" },
      { label: "Channels", property: "visit:channel", column: "Channel" },
      { label: "Referrers", property: "visit:referrer", column: "Referrer", link: "url" },
      { label: "UTM source", property: "visit:utm_source", column: "UTM source" },
      { label: "UTM medium", property: "visit:utm_medium", column: "UTM medium" },
      { label: "UTM campaign", property: "visit:utm_campaign", column: "UTM campaign" },
    ],
  },
  {
    id: "devices",
    title: "Devices",
    tabs: [
      { label: "Devices", property: "visit:device", column: "Device" },
      { label: "Browsers", property: "visit:browser", column: "Browser" },
      { label: "Operating systems", property: "visit:os", column: "Operating system" },
    ],
  },
  {
    id: "locations",
    title: "Locations",
    tabs: [
      { label: "Countries", property: "visit:country", column: "Country", kind: "country" },
      { label: "Regions", property: "visit:region", column: "Region" },
      { label: "Cities", property: "visit:city", column: "City" },
    ],
  },
  {
    id: "goals",
    title: "Goals",
    tabs: [
      {
        label: "Custom events",
        property: "event:name",
        column: "Event",
        metrics: "visitors,events",
      },
    ],
  },
];

// Events that are not goals: pageviews have their own panel, engagement is time on page.
const NOT_GOALS = new Set(["pageview", "engagement"]);

/** The key a breakdown row holds its value under: the property's last segment, or the whole
 * prop name for `event:props:NAME` (which may itself contain a colon). */
const resultKey = (property) =>
  property.startsWith("event:props:")
    ? property.slice("event:props:".length)
    : property.split(":")[1];

/**
 * Builds the panels for one view. `ctx`: `{view, params (site_id, period, date), signal,
 * track(promise), filter(key, value), domain}`. Returns the grid element; the panels start
 * loading at once.
 */
export function panelGrid(ctx) {
  return h(
    "div",
    { class: "panels" },
    PANELS.map((def) => panel(def, ctx)),
  );
}

/** A child of `parent` (an AbortSignal): aborted with it, or alone. */
function childController(parent) {
  const controller = new AbortController();
  parent.addEventListener("abort", () => controller.abort(), { once: true });
  return controller;
}

async function fetchRows(tab, ctx, limit, signal, extraFilters = []) {
  const goals = tab.property === "event:name";
  const params = {
    ...ctx.params,
    property: tab.property,
    metrics: tab.metrics ?? "visitors",
    // Room for the events that are dropped below, so that a full list stays full.
    limit: goals ? limit + NOT_GOALS.size : limit,
    filters: joinFilters([...ctx.view.filters, ...extraFilters]),
  };
  const data = await api.stats("breakdown", params, signal);
  const key = resultKey(tab.property);
  const rows = data.results.map((r) => ({
    value: String(r[key] ?? ""),
    visitors: r.visitors,
    events: r.events,
  }));
  return goals ? rows.filter((r) => !NOT_GOALS.has(r.value)).slice(0, limit) : rows;
}

/** Remembers the chosen tab of each panel across visits. */
const savedTab = {
  get: (id, count) => {
    try {
      const i = Number(localStorage.getItem(`footfall.tab.${id}`));
      return Number.isInteger(i) && i >= 0 && i < count ? i : 0;
    } catch {
      return 0;
    }
  },
  set: (id, i) => {
    try {
      localStorage.setItem(`footfall.tab.${id}`, String(i));
    } catch {
      // Storage refused (private mode): the tab is simply not remembered.
    }
  },
};

function panel(def, ctx) {
  let index = savedTab.get(def.id, def.tabs.length);
  let controller = null;
  const body = h("div", { class: "panel-body", role: "tabpanel", id: `${def.id}-body` });
  const details = h(
    "button",
    { type: "button", class: "button small ghost", on: { click: openDetails } },
    "Details",
  );
  const tabs =
    def.tabs.length > 1
      ? tabList(
          def.id,
          body.id,
          def.tabs.map((t) => t.label),
          index,
          (i) => {
            index = i;
            savedTab.set(def.id, i);
            load();
          },
        )
      : null;
  const element = h(
    "section",
    {
      class: "panel card",
      dataset: { testid: `panel-${def.id}` },
      "aria-labelledby": `${def.id}-title`,
    },
    h(
      "header",
      { class: "panel-header" },
      h("h2", { id: `${def.id}-title` }, def.title),
      tabs?.element,
    ),
    body,
    h("footer", { class: "panel-footer" }, details),
  );

  const pick = (tab) => (row) =>
    tab.property === "event:name" ? showProps(row.value) : ctx.filter(tab.property, row.value);

  function load() {
    const tab = def.tabs[index];
    if (tabs) body.setAttribute("aria-labelledby", tabs.id(index));
    details.hidden = false;
    show(tab, fetchRows.bind(null, tab), pick(tab));
  }

  /** Shows the rows `fetch(tab, ctx, limit, signal)` gets, with a skeleton meanwhile. */
  function show(tab, fetch, onPick, before = []) {
    controller?.abort();
    controller = childController(ctx.signal);
    const { signal } = controller;
    clear(body, before, skeleton(TOP));
    const loaded = fetch(ctx, TOP, signal).then(
      (rows) => {
        if (!signal.aborted)
          clear(body, before, rows.length ? rowList(rows, tab, ctx, onPick) : empty(tab, ctx));
      },
      (e) => {
        if (!signal.aborted)
          clear(
            body,
            before,
            errorBox(e.message, () => show(tab, fetch, onPick, before)),
          );
      },
    );
    ctx.track(loaded);
    return loaded;
  }

  function openDetails() {
    const tab = def.tabs[index];
    detailsDialog(
      `${def.title}: ${tab.label}`,
      tab,
      ctx,
      (limit, signal) => fetchRows(tab, ctx, limit, signal),
      pick(tab),
    );
  }

  /** Goals: the custom props of event `name`, one tab per prop. */
  function showProps(name) {
    controller?.abort();
    controller = childController(ctx.signal);
    const { signal } = controller;
    details.hidden = true;
    const eventFilter = filterOf("event:name", name);
    const back = h(
      "button",
      { type: "button", class: "button small ghost", on: { click: load } },
      "← All events",
    );
    const only = h(
      "button",
      {
        type: "button",
        class: "button small",
        on: { click: () => ctx.filter("event:name", name) },
      },
      "Filter by this event",
    );
    const heading = h(
      "div",
      { class: "props-heading" },
      back,
      h("strong", { class: "props-name" }, name),
      only,
    );
    clear(body, heading, skeleton(3));
    const loaded = api
      .stats(
        "props",
        { ...ctx.params, filters: joinFilters([...ctx.view.filters, eventFilter]) },
        signal,
      )
      .then(
        (data) => {
          if (signal.aborted) return;
          const props = data.results.map((r) => r.prop);
          if (!props.length) {
            clear(
              body,
              heading,
              h("p", { class: "empty" }, `${name} was sent without props in this period.`),
            );
            return;
          }
          const propTab = (prop) => ({
            label: prop,
            property: `event:props:${prop}`,
            column: prop,
            metrics: "visitors,events",
          });
          const showProp = (i) => {
            const tab = propTab(props[i]);
            return show(
              tab,
              (c, limit, s) => fetchRows(tab, c, limit, s, [eventFilter]),
              (row) => ctx.filter(tab.property, row.value),
              [heading, propTabs.element],
            );
          };
          const propTabs = tabList(`${def.id}-props`, body.id, props, 0, showProp);
          return showProp(0);
        },
        (e) => {
          if (!signal.aborted)
            clear(
              body,
              heading,
              errorBox(e.message, () => showProps(name)),
            );
        },
      );
    ctx.track(loaded);
  }

  load();
  return element;
}

/** Tabs that the arrow keys, Home and End move through, as the ARIA tabs pattern has it. */
function tabList(prefix, controls, labels, selected, onChange) {
  const id = (i) => `${prefix}-tab-${i}`;
  const buttons = labels.map((label, i) =>
    h(
      "button",
      {
        type: "button",
        role: "tab",
        id: id(i),
        "aria-controls": controls,
        on: { click: () => choose(i) },
      },
      label,
    ),
  );
  const mark = (current) =>
    buttons.forEach((b, i) => {
      b.setAttribute("aria-selected", String(i === current));
      b.tabIndex = i === current ? 0 : -1;
    });
  const choose = (i) => {
    mark(i);
    onChange(i);
  };
  mark(selected);
  const element = h("div", { class: "tabs", role: "tablist" }, buttons);
  element.addEventListener("keydown", (e) => {
    const i = buttons.indexOf(document.activeElement);
    const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: buttons.length - 1 }[e.key];
    if (i < 0 || next === undefined) return;
    e.preventDefault();
    const j = (next + buttons.length) % buttons.length;
    buttons[j].focus();
    choose(j);
  });
  return { element, id };
}

const skeleton = (n) =>
  h(
    "ol",
    { class: "rows loading", "aria-busy": "true", "aria-label": "Loading" },
    Array.from({ length: n }, () =>
      h("li", { class: "row skeleton-row" }, h("span", { class: "skeleton" })),
    ),
  );

function empty(tab, ctx) {
  if (ctx.view.filters.length)
    return h("p", { class: "empty" }, "Nothing matches the filters in this period.");
  if (tab.property === "event:name") {
    return h(
      "div",
      { class: "empty" },
      h("p", {}, "No custom events in this period. Send one from your pages with"),
      h("code", {}, 'footfall("Signup", {props: {plan: "pro"}})'),
    );
  }
  return h("p", { class: "empty" }, "No data in this period.");
}

/** The text a row shows for `value`. */
function rowLabel(tab, value) {
  if (value === "") return h("span", { class: "muted" }, "(none)");
  if (tab.kind === "country") {
    return h(
      "span",
      { title: value },
      flag(value) && h("span", { class: "flag", "aria-hidden": "true" }, flag(value)),
      countryName(value),
    );
  }
  return value;
}

/** Where a row's value can be opened: the page on the site, or the referring address. */
function rowLink(tab, value, ctx) {
  if (tab.link === "page") {
    return externalLink(value, `https://${ctx.domain}`, {
      sameHost: true,
      label: `Open ${value} on ${ctx.domain}`,
    });
  }
  if (tab.link === "url" && value !== "" && value !== "Direct / None") {
    return externalLink(/^[a-z][a-z0-9+.-]*:/i.test(value) ? value : `https://${value}`);
  }
  return null;
}

/** Rows with bars proportional to visitors; `onPick(row)` when one is clicked. */
function rowList(rows, tab, ctx, onPick) {
  const max = Math.max(1, ...rows.map((r) => r.visitors ?? 0));
  const withEvents = (tab.metrics ?? "").includes("events");
  const head = h(
    "li",
    { class: "rows-head", "aria-hidden": "true" },
    h("span", {}, tab.column),
    h("span", { class: "num" }, "Visitors"),
    withEvents && h("span", { class: "num" }, "Events"),
  );
  const count = (testid, n) =>
    h("span", { class: "num", dataset: { testid, value: String(n ?? 0) } }, formatInteger(n ?? 0));
  return h(
    "ol",
    { class: withEvents ? "rows with-events" : "rows" },
    head,
    rows.map((row) => {
      const bar = h("span", { class: "bar", "aria-hidden": "true" });
      bar.style.width = `${((row.visitors ?? 0) / max) * 100}%`;
      const hint =
        tab.property === "event:name"
          ? `Show the props of ${row.value}`
          : `Filter by ${tab.column}: ${row.value}`;
      return h(
        "li",
        { class: "row", dataset: { testid: "row", value: row.value } },
        h(
          "span",
          { class: "row-label" },
          bar,
          h(
            "button",
            { type: "button", class: "row-pick", title: hint, on: { click: () => onPick(row) } },
            rowLabel(tab, row.value),
          ),
          rowLink(tab, row.value, ctx),
        ),
        count("row-count", row.visitors),
        withEvents && count("row-events", row.events),
      );
    }),
  );
}

/** The modal "Details" view: up to 100 rows, narrowed by a search box as you type. */
function detailsDialog(title, tab, ctx, fetch, onPick) {
  const controller = childController(ctx.signal);
  const list = h("div", { class: "details-body" }, skeleton(TOP));
  const search = h("input", {
    type: "search",
    class: "input",
    placeholder: "Search",
    "aria-label": `Search ${tab.column}`,
  });
  const close = h(
    "button",
    { type: "button", class: "button small ghost", "aria-label": "Close" },
    "✕",
  );
  // The content fills the dialog's box, so that a click on the dialog itself is on the backdrop.
  const dialog = h(
    "dialog",
    { class: "details card", "aria-labelledby": "details-title" },
    h(
      "div",
      { class: "details-inner" },
      h("header", { class: "details-header" }, h("h2", { id: "details-title" }, title), close),
      search,
      list,
    ),
  );
  close.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => {
    controller.abort();
    dialog.remove();
  });
  // A click on the backdrop closes it, as Escape does.
  dialog.addEventListener("click", (e) => e.target === dialog && dialog.close());
  document.body.append(dialog);
  dialog.showModal();

  let rows = [];
  const render = () => {
    const q = search.value.trim().toLowerCase();
    const shown = q ? rows.filter((r) => r.value.toLowerCase().includes(q)) : rows;
    const pick = (row) => {
      dialog.close();
      onPick(row);
    };
    clear(
      list,
      shown.length
        ? rowList(shown, tab, ctx, pick)
        : h("p", { class: "empty" }, q ? "No row matches." : "No data in this period."),
    );
  };
  search.addEventListener("input", render);
  ctx.track(
    fetch(DETAILS, controller.signal).then(
      (r) => {
        rows = r;
        render();
      },
      (e) => {
        if (!controller.signal.aborted) clear(list, errorBox(e.message));
      },
    ),
  );
}
