// How numbers and names read: exact integers with the reader's thousands separators (no "1.2k":
// an analytics number should be the number), durations as `1m 05s`, country codes as names.

const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const twoDecimals = new Intl.NumberFormat(undefined, {
  minimumFractionDigits: 2,
  maximumFractionDigits: 2,
});

export const formatInteger = (n) => integer.format(n);

const pad = (n) => String(n).padStart(2, "0");

/** `45s`, `1m 05s`, `2h 03m 00s`. */
export function formatDuration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  const [hours, minutes] = [Math.floor(s / 3600), Math.floor((s % 3600) / 60)];
  return hours ? `${hours}h ${pad(minutes)}m ${pad(s % 60)}s` : `${minutes}m ${pad(s % 60)}s`;
}

/** A metric's value as the cards, chart and rows show it. */
export function formatMetric(metric, value) {
  if (value == null) return "–";
  switch (metric) {
    case "views_per_visit":
      return twoDecimals.format(value);
    case "bounce_rate":
      return `${integer.format(value)}%`;
    case "visit_duration":
      return formatDuration(value);
    default:
      return integer.format(value);
  }
}

/**
 * The change from `previous` to `current` in whole percent: `{percent, text}`, or null when
 * there is nothing to compare with (no previous value, or it was zero).
 */
export function change(current, previous) {
  if (current == null || !previous) return null;
  const percent = Math.round(((current - previous) / previous) * 100);
  const arrow = percent > 0 ? "↑ " : percent < 0 ? "↓ " : "";
  return { percent, text: `${arrow}${integer.format(Math.abs(percent))}%` };
}

const regions = (() => {
  try {
    return new Intl.DisplayNames(undefined, { type: "region" });
  } catch {
    return null;
  }
})();

const isCountryCode = (code) => /^[A-Za-z]{2}$/.test(code);

/** A country's name in the reader's language, or the code where the browser has none. */
export function countryName(code) {
  if (!isCountryCode(code)) return code;
  try {
    return regions?.of(code.toUpperCase()) ?? code;
  } catch {
    return code;
  }
}

/** The flag emoji of a two-letter country code (regional indicator symbols), or "". */
export function flag(code) {
  if (!isCountryCode(code)) return "";
  return String.fromCodePoint(...[...code.toUpperCase()].map((c) => 0x1f1a5 + c.charCodeAt(0)));
}
