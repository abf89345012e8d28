// The headline cards: current visitors, kept live, and the period's totals, each with its change
// against the period before. A card is also the chart's metric switch.

import * as api from "./api.js";
import { h } from "./dom.js";
import { change, formatInteger, formatMetric } from "./format.js";
import { formatRange } from "./period.js";

/** The aggregate metrics, in card order. `lowerIsBetter`: a fall is good news. */
export const METRICS = [
  { key: "visitors", label: "Unique visitors" },
  { key: "visits", label: "Total visits" },
  { key: "pageviews", label: "Total pageviews" },
  { key: "views_per_visit", label: "Views per visit" },
  { key: "bounce_rate", label: "Bounce rate", lowerIsBetter: true },
  { key: "visit_duration", label: "Visit duration" },
];

export const METRIC_KEYS = METRICS.map((m) => m.key).join(",");

/**
 * The cards in a row: a live card and one button per metric. `selected` is the chart's metric;
 * `onSelect(key)` is called when a card is chosen. Returns `{element, live, select(key),
 * show(current, previous, previousRange), fail()}`.
 */
export function cards({ selected, onSelect }) {
  const live = liveCard();
  const values = new Map();
  const buttons = METRICS.map((metric) => {
    const value = h(
      "span",
      { class: "card-value skeleton", dataset: { testid: `card-${metric.key}` } },
      "\u00a0",
    );
    const delta = h("span", { class: "card-change" });
    values.set(metric.key, { value, delta });
    return h(
      "button",
      {
        type: "button",
        class: "card metric",
        "aria-pressed": String(metric.key === selected),
        dataset: { metric: metric.key },
        on: { click: () => onSelect(metric.key) },
      },
      h("span", { class: "card-label" }, metric.label),
      value,
      delta,
    );
  });
  const element = h("div", { class: "cards" }, live.element, buttons);

  return {
    element,
    live,
    select(key) {
      for (const b of buttons) b.setAttribute("aria-pressed", String(b.dataset.metric === key));
    },
    show(current, previous, previousRange) {
      for (const metric of METRICS) {
        const { value, delta } = values.get(metric.key);
        const now = current[metric.key]?.value;
        const before = previous?.[metric.key]?.value;
        value.classList.remove("skeleton");
        value.dataset.value = String(now ?? "");
        value.textContent = formatMetric(metric.key, now);
        const c = change(now, before);
        delta.className = "card-change";
        if (c) {
          delta.textContent = c.text;
          const good = metric.lowerIsBetter ? c.percent < 0 : c.percent > 0;
          if (c.percent !== 0) delta.classList.add(good ? "good" : "bad");
        } else delta.textContent = "";
        if (previousRange) {
          const period = formatRange(previousRange.from, previousRange.to);
          delta.title = `${formatMetric(metric.key, before)} in ${period}`;
        }
      }
    },
    fail() {
      for (const { value } of values.values()) {
        value.classList.remove("skeleton");
        value.textContent = "–";
      }
    },
  };
}

/** The current-visitors card: `realtime/visitors` every 2 s while the tab is visible. */
function liveCard() {
  const value = h("span", { class: "card-value", dataset: { testid: "card-live" } }, "–");
  const element = h(
    "div",
    { class: "card live", role: "status", "aria-live": "off" },
    h(
      "span",
      { class: "card-label" },
      h("span", { class: "pulse", "aria-hidden": "true" }),
      "Current visitors",
    ),
    value,
    h("span", { class: "card-change" }, "last 5 minutes"),
  );
  let timer = null;
  let busy = false;
  let running = false;
  let params = null;
  let onCount = null;

  async function poll() {
    timer = null;
    busy = true;
    try {
      const count = await api.stats("realtime/visitors", params);
      if (running) {
        value.dataset.value = String(count);
        value.textContent = formatInteger(count);
        element.removeAttribute("title");
        onCount?.(count);
      }
    } catch (e) {
      if (running) {
        value.textContent = "–";
        element.title = e.message;
      }
    }
    busy = false;
    schedule();
  }
  // One request at a time, and none while nobody looks: a hidden tab waits for `visibilitychange`.
  const idle = () => running && !document.hidden && timer == null && !busy;
  const schedule = () => {
    if (idle()) timer = setTimeout(poll, 2000);
  };
  const wake = () => {
    if (idle()) poll();
  };

  return {
    element,
    /** Polls for `siteParams`; `counted(n)` hears each count. */
    start(siteParams, counted) {
      params = siteParams;
      onCount = counted;
      running = true;
      document.addEventListener("visibilitychange", wake);
      wake();
    },
    stop() {
      running = false;
      clearTimeout(timer);
      timer = null;
      document.removeEventListener("visibilitychange", wake);
    },
  };
}
