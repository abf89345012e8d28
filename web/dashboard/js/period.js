// Periods as the query API defines them, in the site's local dates (`YYYY-MM-DD` strings):
// their ranges, the range before (for the cards' change), the chart's interval and their names.
// Dates are calendar dates, not instants, so all arithmetic is done on UTC midnights.

const DAY_MS = 86_400_000;

export const PERIODS = ["day", "7d", "30d", "month", "6mo", "12mo", "custom"];

const days = (iso) => Date.UTC(+iso.slice(0, 4), +iso.slice(5, 7) - 1, +iso.slice(8, 10)) / DAY_MS;
const fromDays = (n) => new Date(n * DAY_MS).toISOString().slice(0, 10);

export const addDays = (iso, n) => fromDays(days(iso) + n);
export const daysBetween = (from, to) => days(to) - days(from) + 1;

/** The browser's own date. */
export const localToday = () => {
  const d = new Date();
  return fromDays(Date.UTC(d.getFullYear(), d.getMonth(), d.getDate()) / DAY_MS);
};

/** Whether `s` is a real calendar date written `YYYY-MM-DD`. */
export const isDate = (s) =>
  typeof s === "string" && /^\d{4}-\d{2}-\d{2}$/.test(s) && fromDays(days(s)) === s;

// Date.UTC carries month overflow into the year both ways, and day 0 is the previous month's last.
const monthStart = (iso, back = 0) =>
  fromDays(Date.UTC(+iso.slice(0, 4), +iso.slice(5, 7) - 1 - back, 1) / DAY_MS);
const monthEnd = (iso, back = 0) =>
  fromDays(Date.UTC(+iso.slice(0, 4), +iso.slice(5, 7) - back, 0) / DAY_MS);

/** The first and last date of `period` anchored at `date` (the server's rules). */
export function range({ period, date, from, to }) {
  switch (period) {
    case "day":
      return { from: date, to: date };
    case "7d":
      return { from: addDays(date, -6), to: date };
    case "30d":
      return { from: addDays(date, -29), to: date };
    case "month":
      return { from: monthStart(date), to: monthEnd(date) };
    case "6mo":
      return { from: monthStart(date, 5), to: monthEnd(date) };
    case "12mo":
      return { from: monthStart(date, 11), to: monthEnd(date) };
    default:
      return { from, to };
  }
}

/** The range the cards compare with: the calendar months before for month periods, else as
 * many days just before. */
export function previousRange(view) {
  const { period, date } = view;
  if (period === "month") return { from: monthStart(date, 1), to: monthEnd(date, 1) };
  if (period === "6mo") return { from: monthStart(date, 11), to: monthEnd(date, 6) };
  if (period === "12mo") return { from: monthStart(date, 23), to: monthEnd(date, 12) };
  const r = range(view);
  const n = daysBetween(r.from, r.to);
  return { from: addDays(r.from, -n), to: addDays(r.from, -1) };
}

/** The view moved one period back (`step` -1) or forward (+1). */
export function shift(view, step) {
  const { period, date } = view;
  switch (period) {
    case "custom": {
      const n = daysBetween(view.from, view.to) * step;
      return { ...view, from: addDays(view.from, n), to: addDays(view.to, n) };
    }
    case "month":
      return { ...view, date: monthStart(date, -step) };
    case "6mo":
    case "12mo":
      return { ...view, date: monthStart(date, (period === "6mo" ? -6 : -12) * step) };
    default:
      return { ...view, date: addDays(date, { day: 1, "7d": 7, "30d": 30 }[period] * step) };
  }
}

/** The chart's natural interval: hours for a day, months for half a year and more. */
export function interval(view) {
  if (view.period === "day") return "hour";
  if (view.period === "6mo" || view.period === "12mo") return "month";
  if (view.period === "custom") {
    const n = daysBetween(view.from, view.to);
    return n === 1 ? "hour" : n <= 93 ? "date" : "month";
  }
  return "date";
}

/** The API's `period` and `date` for the view (a custom range is `date=FROM,TO`). */
export function apiPeriod(view) {
  return view.period === "custom"
    ? { period: "custom", date: `${view.from},${view.to}` }
    : { period: view.period, date: view.date };
}

/** The API's parameters for an arbitrary range. */
export const customPeriod = ({ from, to }) => ({ period: "custom", date: `${from},${to}` });

// Dates are formatted in UTC because they already are the site's local dates.
const fmt = (options) => new Intl.DateTimeFormat(undefined, { timeZone: "UTC", ...options });
const dayFormat = fmt({ weekday: "short", day: "numeric", month: "short", year: "numeric" });
const shortDay = fmt({ day: "numeric", month: "short", year: "numeric" });
const monthFormat = fmt({ month: "long", year: "numeric" });
const at = (iso) => new Date(days(iso) * DAY_MS);

export const formatDay = (iso) => dayFormat.format(at(iso));
export const formatRange = (from, to) =>
  from === to ? shortDay.format(at(from)) : shortDay.formatRange(at(from), at(to));

/** What the period picker calls `period` anchored at `date`, given the site's `today`. */
export function periodName(period, date, today) {
  const current = date === today;
  switch (period) {
    case "day":
      return current ? "Today" : date === addDays(today, -1) ? "Yesterday" : formatDay(date);
    case "7d":
      return current ? "Last 7 days" : `7 days to ${shortDay.format(at(date))}`;
    case "30d":
      return current ? "Last 30 days" : `30 days to ${shortDay.format(at(date))}`;
    case "month":
      return monthStart(date) === monthStart(today) ? "This month" : monthFormat.format(at(date));
    case "6mo":
    case "12mo": {
      const n = period === "6mo" ? 6 : 12;
      return monthStart(date) === monthStart(today)
        ? `Last ${n} months`
        : `${n} months to ${monthFormat.format(at(date))}`;
    }
    default:
      return "Custom range";
  }
}
