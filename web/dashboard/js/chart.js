// The main chart, drawn with the vendored uPlot (loaded by index.html as the global `uPlot`):
// one metric over time, with pageviews beside visitors by default; the legend shows the values
// under the cursor. It follows its container's width and the colour scheme.

import { h, clear } from "./dom.js";
import { formatMetric } from "./format.js";

const LABELS = {
  visitors: "Visitors",
  visits: "Visits",
  pageviews: "Pageviews",
  views_per_visit: "Views per visit",
  bounce_rate: "Bounce rate",
  visit_duration: "Visit duration",
};

// Points are labelled in the site's local time (`2026-11-22 14:00:00`); they are placed as if
// that were UTC and shown in UTC, so the chart reads in the site's time wherever it is opened.
const toSeconds = (label) =>
  Date.UTC(
    +label.slice(0, 4),
    +label.slice(5, 7) - 1,
    +label.slice(8, 10),
    +label.slice(11, 13) || 0,
  ) / 1000;

const pointFormats = {
  hour: { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" },
  date: { weekday: "short", day: "numeric", month: "short", year: "numeric" },
  month: { month: "long", year: "numeric" },
};

const WHOLE_STEPS = Array.from(
  { length: 30 },
  (_, i) => [1, 2, 5][i % 3] * 10 ** Math.floor(i / 3),
);

const POINT_NAMES = { hour: "Hour", date: "Day", month: "Month" };
const monthTick = new Intl.DateTimeFormat(undefined, { timeZone: "UTC", month: "short" });

/** The time axis: ticks on the points' own grain, never between two days or months. */
function xAxis(axis, interval, xs) {
  if (interval === "month") {
    const values = (_u, ticks) => ticks.map((ts) => monthTick.format(new Date(ts * 1000)));
    return { ...axis, splits: () => xs, values };
  }
  return interval === "date" ? { ...axis, incrs: DAY_STEPS } : axis;
}

const DAY_STEPS = [1, 2, 7, 14, 28].map((days) => days * 86_400);

const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

/**
 * Draws `results` (the timeseries rows) into `container`, showing `metric` (and pageviews with
 * visitors); points after `now` (seconds, as placed on the axis) are left out, not drawn as 0.
 * Returns a function that removes the chart and its listeners.
 */
export function drawChart(container, { results, metric, interval, now }) {
  const xs = results.map((r) => toSeconds(r.date));
  const keys = metric === "visitors" ? ["visitors", "pageviews"] : [metric];
  const column = (key) => results.map((r, i) => (now != null && xs[i] > now ? null : r[key]));
  const pointFormat = new Intl.DateTimeFormat(undefined, {
    timeZone: "UTC",
    ...pointFormats[interval],
  });
  const colours = [css("--chart-1"), css("--chart-2")];
  const grid = { stroke: css("--grid"), width: 1 };
  const axis = { stroke: css("--muted"), grid, ticks: grid, font: `12px ${css("--font")}` };

  const options = {
    width: container.clientWidth,
    height: 280,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
    cursor: { drag: { x: false, y: false }, points: { size: 8 } },
    // From zero, so that a small change does not look like a cliff.
    scales: { y: { range: (_u, _min, max) => uPlot.rangeNum(0, max > 0 ? max : 1, 0.1, true) } },
    legend: { live: true },
    series: [
      // Off the chart the legend names the lines; over it, it gives the point's values.
      {
        label: POINT_NAMES[interval],
        value: (_u, ts) => (ts == null ? "" : pointFormat.format(new Date(ts * 1000))),
      },
      ...keys.map((key, i) => ({
        label: LABELS[key],
        stroke: colours[i],
        width: i === 0 ? 2.5 : 1.5,
        fill: i === 0 ? css("--chart-fill") : undefined,
        dash: i === 0 ? undefined : [4, 4],
        value: (_u, v) => (v == null ? "" : formatMetric(key, v)),
      })),
    ],
    axes: [
      // Months get one labelled tick each; uPlot's own ticks would fall on days.
      xAxis(axis, interval, xs),
      {
        ...axis,
        size: 60,
        // Counts and seconds have whole-number ticks only; fractions of a visitor mean nothing.
        incrs: metric === "views_per_visit" ? undefined : WHOLE_STEPS,
        values: (_u, ticks) => ticks.map((v) => formatMetric(metric, v)),
      },
    ],
  };
  const plot = new uPlot(options, [xs, ...keys.map(column)], clear(container));
  const resize = new ResizeObserver(() =>
    plot.setSize({ width: container.clientWidth, height: 280 }),
  );
  resize.observe(container);
  return () => {
    resize.disconnect();
    plot.destroy();
  };
}

/** The space the chart will take, while it loads. */
export const chartPlaceholder = () => h("div", { class: "chart-placeholder skeleton" });
