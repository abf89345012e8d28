// Building the page without ever parsing a string as HTML.
//
// Page paths, referrers, event names, prop values and site names come from whoever sends events
// to footfall, so they are attacker-controlled. Everything here creates elements and text nodes;
// nothing assigns markup, so nothing sent to footfall can run in this page. URLs are the other way
// in (`javascript:`), so `h` refuses `href`/`src` and only the two link helpers below set them.

/**
 * `<tag>` with `props` and `children`. Props: `class`, `text`, `dataset`, `on` (event
 * listeners), `hidden`, anything else as an attribute (`true` as an empty one, `false`/null
 * skipped). Children are nodes or strings (strings become text nodes).
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value == null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "on") {
      for (const [type, listener] of Object.entries(value)) el.addEventListener(type, listener);
    } else if (key === "href" || key === "src" || key.startsWith("on")) {
      throw new Error(`h: set ${key} with a link helper or \`on\`, not as an attribute`);
    } else el.setAttribute(key, value === true ? "" : String(value));
  }
  el.append(...nodes(children));
  return el;
}

/** Replaces `el`'s children. */
export function clear(el, ...children) {
  el.replaceChildren(...nodes(children));
  return el;
}

/** Children as `append` takes them: nested arrays flattened, null/false dropped. */
function nodes(children) {
  return children.flat(Infinity).filter((c) => c != null && c !== false);
}

/** A link inside the dashboard. `path` is one the dashboard built itself (see route.js). */
export function internalLink(path, props, ...children) {
  if (!path.startsWith("/") || path.startsWith("//")) {
    throw new Error(`internalLink: ${path} is not a path on this server`);
  }
  const a = h("a", props, ...children);
  a.href = path;
  return a;
}

/**
 * A link that opens `value` (resolved against `base`) in a new tab, or null when it is not an
 * http(s) URL or, with `sameHost`, leads off `base`'s host. No referrer leaves with it: a
 * dashboard opened through a share link has its token in the address.
 */
export function externalLink(value, base, { sameHost = false, label } = {}) {
  let url;
  try {
    url = new URL(value, base);
  } catch {
    return null;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return null;
  if (sameHost && url.host !== new URL(base).host) return null;
  const a = h("a", {
    class: "external",
    target: "_blank",
    rel: "noopener noreferrer",
    "aria-label": label ?? `Open ${url.href} in a new tab`,
    title: url.href,
  });
  a.href = url.href;
  a.append(h("span", { "aria-hidden": "true", text: "↗" }));
  return a;
}

/** A button that copies `text()`; where the clipboard is unavailable (plain http), it selects
 * `source` so that the person can copy it by hand. */
export function copyButton(text, source, label = "Copy") {
  const button = h("button", { type: "button", class: "button small" }, label);
  let timer;
  const say = (message) => {
    button.textContent = message;
    clearTimeout(timer);
    timer = setTimeout(() => (button.textContent = label), 1600);
  };
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text());
      say("Copied");
    } catch {
      if (source) window.getSelection()?.selectAllChildren(source);
      say("Press Ctrl+C");
    }
  });
  return button;
}

/** Code to paste somewhere (a command, the script tag), as text, with a copy button that copies
 * what the block shows at the time. */
export function codeBlock(text) {
  const code = h("code", {}, text);
  return h(
    "div",
    { class: "code-block" },
    h("pre", {}, code),
    copyButton(() => code.textContent, code),
  );
}

/** An error message from the API, with what to do, and optionally a retry button. */
export function errorBox(message, retry) {
  return h(
    "div",
    { class: "error-box", role: "alert" },
    h("p", {}, message),
    retry && h("button", { type: "button", class: "button small", on: { click: retry } }, "Retry"),
  );
}
