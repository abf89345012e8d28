// The view is its URL, shaped as the contract's page routes say: `/`, `/login`, `/{domain}` and
// `/share/{domain}?auth=TOKEN`, with `period`, `date` (or `from`/`to` for custom ranges) and
// `filters`. Everything the dashboard shows follows from it, so a bookmark restores a view and
// back/forward walk through filters and periods.

import { PERIODS, isDate } from "./period.js";

/**
 * The view in `loc`: `{route, domain, auth, next, period, date, from, to, filters}` where route
 * is home, login, site, share or missing, `date` is null for "today", and `filters` holds the
 * filters as written in the API's syntax (values still escaped), one string each.
 */
export function parseLocation(loc = location) {
  const params = new URLSearchParams(loc.search);
  const path = loc.pathname;
  const view = { route: "missing", domain: null, auth: null, next: null, filters: [] };
  const share = path.match(/^\/share\/([^/]+)$/);
  const site = path.match(/^\/([^/]+)$/);
  if (path === "/") view.route = "home";
  else if (path === "/login") {
    view.route = "login";
    view.next = safeNext(params.get("next"));
  } else if (share)
    Object.assign(view, { route: "share", domain: decode(share[1]), auth: params.get("auth") });
  else if (site) Object.assign(view, { route: "site", domain: decode(site[1]) });
  if (view.domain == null && (view.route === "site" || view.route === "share"))
    view.route = "missing";

  const period = params.get("period");
  const [from, to] = [params.get("from"), params.get("to")];
  view.period = PERIODS.includes(period) ? period : "day";
  view.date = isDate(params.get("date")) ? params.get("date") : null;
  if (view.period === "custom") {
    // A custom range needs both ends in order; without them the view falls back to today.
    if (isDate(from) && isDate(to) && from <= to) Object.assign(view, { from, to, date: null });
    else view.period = "day";
  }
  view.filters = splitFilters(params.get("filters") ?? "");
  return view;
}

function decode(segment) {
  try {
    return decodeURIComponent(segment);
  } catch {
    return null;
  }
}

/** A `next=` target only if it is a path on this server (no open redirect). */
function safeNext(next) {
  return next && next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\")
    ? next
    : null;
}

/** The address of `view`: its path and query string. */
export function viewUrl(view) {
  const domain = view.domain == null ? "" : encodeURIComponent(view.domain);
  const params = [];
  const add = (key, value) => value && params.push(`${key}=${encodeParam(value)}`);
  let path = "/";
  if (view.route === "login") {
    path = "/login";
    add("next", view.next);
  } else if (view.route === "site" || view.route === "share") {
    path = view.route === "share" ? `/share/${domain}` : `/${domain}`;
    if (view.route === "share") add("auth", view.auth);
    if (view.period !== "day") add("period", view.period);
    if (view.period === "custom") {
      add("from", view.from);
      add("to", view.to);
    } else add("date", view.date);
    add("filters", joinFilters(view.filters));
  }
  return params.length ? `${path}?${params.join("&")}` : path;
}

/** Percent-encodes a query value but leaves the characters filters are made of readable, so
 * that `?filters=event:page==/pricing` can be read and typed by hand. */
function encodeParam(value) {
  return encodeURIComponent(value).replace(/%(2F|3A|3D|2C|40|3B|7C)/g, (_, hex) =>
    String.fromCharCode(parseInt(hex, 16)),
  );
}

// Filters, in the API's syntax: `key==value`, `!=`, `~` (contains), `!~`; `|` separates
// alternatives and `;` joins filters; a backslash escapes `;`, `|` and `\` in values.

/** `value` escaped for a filter. */
export const escapeValue = (value) => value.replace(/[\\;|]/g, (c) => `\\${c}`);

/** `key==value`, escaped. */
export const filterOf = (key, value) => `${key}==${escapeValue(value)}`;

/** `s` split at each `sep` that is not escaped; escapes are kept. */
function splitUnescaped(s, sep) {
  const parts = [];
  let part = "";
  for (let i = 0; i < s.length; i++) {
    if (s[i] === "\\" && i + 1 < s.length) part += s[i] + s[++i];
    else if (s[i] === sep) {
      parts.push(part);
      part = "";
    } else part += s[i];
  }
  parts.push(part);
  return parts;
}

export const splitFilters = (s) => (s ? splitUnescaped(s, ";").filter(Boolean) : []);
export const joinFilters = (filters) => filters.join(";");

const OPERATORS = ["==", "!=", "!~", "~"];

/** A filter's parts: `{key, op, values}` with values unescaped; null if it has no operator. */
export function parseFilter(filter) {
  for (let i = 0; i < filter.length; i++) {
    const op = OPERATORS.find((o) => filter.startsWith(o, i));
    if (op) {
      const values = splitUnescaped(filter.slice(i + op.length), "|").map((v) =>
        v.replace(/\\(.)/g, "$1"),
      );
      return { key: filter.slice(0, i), op, values };
    }
  }
  return null;
}

/** `view` with the filter `key==value`, which replaces any other filter on `key`. */
export function withFilter(view, key, value) {
  const others = view.filters.filter((f) => parseFilter(f)?.key !== key);
  return { ...view, filters: [...others, filterOf(key, value)] };
}

/** `view` without its `index`th filter. */
export const withoutFilter = (view, index) => ({
  ...view,
  filters: view.filters.filter((_, i) => i !== index),
});
