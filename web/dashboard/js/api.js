// The dashboard's only way to the server: footfall's public HTTP API, called exactly as any
// other client would call it. Errors carry the API's own `error` message, which says what to do.

/** A failed request: `status` (0 when the server did not answer) and the API's message. */
export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

/** Whether `e` is a request given up because the view it was for went away. */
export const isAbort = (e) => e?.name === "AbortError";

// A share link's token goes with every request (`auth=`); a session's CSRF token with every
// request that changes something.
let shareToken = null;
let csrfToken = null;

export function useShareToken(token) {
  shareToken = token;
}

export function useCsrfToken(token) {
  csrfToken = token;
}

async function request(method, path, { params, body, signal } = {}) {
  const url = new URL(path, location.origin);
  for (const [key, value] of Object.entries(params ?? {})) {
    if (value != null && value !== "") url.searchParams.set(key, value);
  }
  if (shareToken) url.searchParams.set("auth", shareToken);
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      signal,
    });
  } catch (e) {
    if (isAbort(e)) throw e;
    throw new ApiError(0, "footfall did not answer: check that the server is running, then retry.");
  }
  if (response.status === 204) return null;
  // Error bodies are JSON by contract; anything else (a proxy's page) gets a generic message.
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const message =
      typeof data?.error === "string"
        ? data.error
        : `the server answered ${response.status} ${response.statusText} to ${method} ${url.pathname}`;
    throw new ApiError(response.status, message, data);
  }
  return data;
}

/** `GET /api/v1/stats/{kind}` (aggregate, timeseries, breakdown, realtime/visitors, props). */
export const stats = (kind, params, signal) =>
  request("GET", `/api/v1/stats/${kind}`, { params, signal });

export const me = () => request("GET", "/api/auth/me");
export const login = (username, password) =>
  request("POST", "/api/auth/login", { body: { username, password } });
export const logout = () => request("POST", "/api/auth/logout");

export const sites = () => request("GET", "/api/sites");
export const addSite = (site) => request("POST", "/api/sites", { body: site });

const sharesPath = (domain) => `/api/sites/${encodeURIComponent(domain)}/shares`;
export const shares = (domain) => request("GET", sharesPath(domain));
export const createShare = (domain, name) =>
  request("POST", sharesPath(domain), { body: name ? { name } : {} });
export const revokeShare = (domain, id) =>
  request("DELETE", `${sharesPath(domain)}/${encodeURIComponent(id)}`);
