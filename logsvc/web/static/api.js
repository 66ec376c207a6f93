// Calls to the logsvc JSON API, with the bearer token the user typed (kept in
// this browser's localStorage, never in the URL).

const API = new URL("../", window.location.href);
const TOKEN_KEY = "logsvc-token";

/**
 * An API answer other than 2xx: `status`; `param` when the server named the
 * parameter at fault, `position` when it named where in it (a query's syntax).
 */
export class APIError extends Error {
  constructor(status, message, body) {
    super(`${status}: ${message}`);
    this.status = status;
    this.param = (body && body.param) || null;
    this.position = body && Number.isInteger(body.position) ? body.position : null;
  }
}

export function token() {
  return localStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  localStorage.setItem(TOKEN_KEY, value.trim());
}

/** @returns request headers with the token, plus `extra`. */
export function headers(extra) {
  const h = Object.assign({}, extra || {});
  const value = token();
  if (value) h.Authorization = "Bearer " + value;
  return h;
}

/** @returns the absolute URL of an API path with `params`. */
export function apiURL(path, params) {
  const query = params ? String(params) : "";
  return new URL(path + (query ? "?" + query : ""), API);
}

/**
 * GET a JSON answer.
 *
 * @param signal an AbortSignal, or undefined.
 * @returns the decoded body.
 * @throws APIError for a non-2xx answer, with the server's message.
 */
export async function getJSON(path, params, signal) {
  const response = await fetch(apiURL(path, params), { headers: headers(), signal });
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    const message = body && body.error ? body.error : response.statusText;
    throw new APIError(response.status, message, body);
  }
  return body;
}
