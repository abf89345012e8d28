// One site's dashboard: the filters in force, the headline cards, the chart and the panels, all
// for the period and filters in the URL.

import * as api from "./api.js";
import { cards, METRIC_KEYS } from "./cards.js";
import { chartPlaceholder, drawChart } from "./chart.js";
import { clear, errorBox, h } from "./dom.js";
import { countryName } from "./format.js";
import { topbar } from "./header.js";
import { PANELS, panelGrid } from "./panels.js";
import { apiPeriod, customPeriod, interval, previousRange } from "./period.js";
import { joinFilters, parseFilter, withFilter, withoutFilter } from "./route.js";
import { accessProblem, installHelp } from "./screens.js";

// The chart's metric outlives a view: changing the period keeps what the chart shows.
let chartMetric = "visitors";

/** The dashboard of `view.domain` (a `site` or `share` view); returns the page's parts. */
export function siteScreen(app, view, scope) {
  const header = topbar(app, view, scope.signal);
  const site = { site_id: view.domain };
  const overviewErrors = h("div", { class: "overview-errors" });
  const chartBox = h("div", { class: "chart" }, chartPlaceholder());
  const board = cards({
    selected: chartMetric,
    onSelect: (metric) => {
      chartMetric = metric;
      board.select(metric);
      chart.redraw();
    },
  });
  const chart = chartArea(chartBox, scope);
  const notice = h("div", { class: "notice-slot" });
  const main = h(
    "main",
    { class: "dashboard" },
    filterBar(app, view),
    notice,
    h(
      "section",
      { class: "card overview", "aria-label": "Overview" },
      board.element,
      overviewErrors,
      chartBox,
    ),
  );
  scope.onDispose(() => board.live.stop());

  // Shown once per message: the cards and the chart fail together when a filter is refused.
  const shown = new Set();
  const problem = (e) => {
    if (api.isAbort(e) || shown.has(e.message)) return;
    shown.add(e.message);
    overviewErrors.append(errorBox(e.message, () => app.render()));
  };

  // The first request asks for the site's date, which every range is anchored at (today is the
  // site's today, in its timezone); it also finds out whether this viewer may read the site.
  const dated = api.stats(
    "timeseries",
    { ...site, period: "day", interval: "date", metrics: "visitors" },
    scope.signal,
  );
  scope.track(
    dated.then(
      ({ results }) => {
        const date = results.at(-1).date;
        header.setToday(date);
        load(view.period === "custom" ? view : { ...view, date: view.date ?? date }, date);
      },
      (e) => {
        if (api.isAbort(e)) return;
        board.live.stop();
        clear(
          main,
          h(
            "div",
            { class: "narrow" },
            accessProblem(app, view, e, () => app.render()),
          ),
        );
      },
    ),
  );

  function load(anchored, today) {
    const { signal, track } = scope;
    const params = { ...site, ...apiPeriod(anchored) };
    const filters = joinFilters(anchored.filters);
    const before = previousRange(anchored);
    const aggregate = (period) =>
      api.stats("aggregate", { ...site, ...period, metrics: METRIC_KEYS, filters }, signal);
    // Without the previous period the cards still show the current one, only without change.
    const previous = aggregate(customPeriod(before)).catch((e) =>
      api.isAbort(e) ? Promise.reject(e) : null,
    );
    track(
      Promise.all([aggregate(apiPeriod(anchored)), previous]).then(
        ([current, earlier]) => {
          board.show(current.results, earlier?.results, before);
          const nothing = !current.results.visitors?.value && !current.results.pageviews?.value;
          if (nothing && !anchored.filters.length) track(firstVisit(today));
        },
        (e) => {
          board.fail();
          problem(e);
        },
      ),
    );
    track(
      chart.load(
        { ...params, filters },
        interval(anchored),
        siteNow(app, view.domain, today),
        problem,
      ),
    );
    main.append(
      panelGrid({
        view: anchored,
        params,
        signal,
        track,
        domain: view.domain,
        filter: (key, value) => app.navigate(withFilter(view, key, value)),
      }),
    );
    board.live.start(site, (count) => liveCount(count));
  }

  // A site without an event in a year (a new one, as a rule) shows how to install the tracker,
  // until the first visitor arrives: then the dashboard reloads by itself.
  let waiting = false;
  const liveCount = (count) => {
    if (waiting && count > 0) app.render();
  };
  function firstVisit(today) {
    return api
      .stats("aggregate", { ...site, period: "12mo", date: today, metrics: "events" }, scope.signal)
      .then(
        (r) => {
          if (r.results.events.value) return;
          waiting = true;
          clear(
            notice,
            h(
              "section",
              { class: "notice" },
              h("h2", {}, "Waiting for the first visit"),
              installHelp(view.domain),
            ),
          );
        },
        () => {},
      );
  }

  document.title = `${view.domain} · footfall`;
  return [header.element, main];
}

/** The chart and its data: loads the timeseries and redraws when the metric changes. */
function chartArea(box, scope) {
  let results = null;
  let remove = null;
  let meta = null;
  const redraw = () => {
    if (!results) return;
    remove?.();
    remove = drawChart(box, { results, metric: chartMetric, ...meta });
  };
  // The chart follows the colour scheme it reads its colours from.
  const scheme = matchMedia("(prefers-color-scheme: dark)");
  scheme.addEventListener("change", redraw, { signal: scope.signal });
  scope.onDispose(() => remove?.());
  return {
    redraw,
    load(params, interval, now, problem) {
      meta = { interval, now };
      return api
        .stats("timeseries", { ...params, interval, metrics: METRIC_KEYS }, scope.signal)
        .then(
          (data) => {
            results = data.results;
            redraw();
          },
          (e) => {
            clear(box);
            problem(e);
          },
        );
    },
  };
}

/**
 * The site's current wall-clock time in the chart's terms (seconds, as if UTC), so that points
 * still to come are left out: from the site's timezone when the site list gave it, else the end
 * of the site's today.
 */
function siteNow(app, domain, today) {
  const timezone = app.sites?.find((s) => s.domain === domain)?.timezone;
  if (!timezone)
    return Date.UTC(+today.slice(0, 4), +today.slice(5, 7) - 1, +today.slice(8, 10), 23, 59) / 1000;
  try {
    const parts = new Intl.DateTimeFormat("en-US", {
      timeZone: timezone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
    }).formatToParts(new Date());
    const part = (type) => +parts.find((p) => p.type === type).value;
    return (
      Date.UTC(part("year"), part("month") - 1, part("day"), part("hour"), part("minute")) / 1000
    );
  } catch {
    return null;
  }
}

const KEY_NAMES = Object.fromEntries(
  PANELS.flatMap((p) => p.tabs.map((t) => [t.property, t.column])),
);
const OPERATOR_NAMES = { "==": "is", "!=": "is not", "~": "contains", "!~": "does not contain" };

/** A filter in words: `Page is /pricing`, `Country is Germany or France`. */
function describe(filter) {
  const parts = parseFilter(filter);
  if (!parts) return filter;
  const { key, op, values } = parts;
  const name =
    KEY_NAMES[key] ?? (key.startsWith("event:props:") ? key.slice("event:props:".length) : key);
  const shown = values.map((v) => (key === "visit:country" ? countryName(v) : v));
  return `${name} ${OPERATOR_NAMES[op]} ${shown.join(" or ")}`;
}

/** The filters in force, as chips that remove themselves. */
function filterBar(app, view) {
  if (!view.filters.length) return null;
  const chips = view.filters.map((filter, i) => {
    const text = describe(filter);
    return h(
      "span",
      { class: "chip", dataset: { testid: "filter-chip", filter } },
      h("span", { class: "chip-text" }, text),
      h(
        "button",
        {
          type: "button",
          class: "chip-remove",
          "aria-label": `Remove filter: ${text}`,
          on: { click: () => app.navigate(withoutFilter(view, i)) },
        },
        "✕",
      ),
    );
  });
  const clearAll =
    chips.length > 1 &&
    h(
      "button",
      {
        type: "button",
        class: "button small ghost",
        on: { click: () => app.navigate({ ...view, filters: [] }) },
      },
      "Clear all",
    );
  return h("div", { class: "filters", role: "group", "aria-label": "Filters" }, chips, clearAll);
}
