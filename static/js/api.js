/* The attendance API from the pages: the launch token as a Bearer credential (it works where the
 * browser blocks third-party cookies), else the session cookie with the CSRF token; errors in the
 * contract's shape {success: false, error: {code, message, fields}} become ApiError. */

function meta(name) {
  const tag = document.querySelector(`meta[name="${name}"]`);
  return tag ? tag.getAttribute("content") || "" : "";
}

const auth = { token: meta("launch-token"), csrf: meta("csrf-token") };

/** The launch token API calls carry (the projector gets its own from the URL fragment). */
export function launchToken() {
  return auth.token;
}

export function setLaunchToken(token) {
  auth.token = token;
}

export class ApiError extends Error {
  constructor(status, code, message, fields) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.fields = fields || null;
  }
}

let clockSkew = 0; // server time minus this browser's time, in ms (from the Date header)

function noteServerDate(response) {
  const server = Date.parse(response.headers.get("Date") || "");
  if (Number.isNaN(server)) return;
  const skew = server - Date.now();
  clockSkew = Math.abs(skew) > 2000 ? skew : 0;
}

/** Now by the server's clock, as milliseconds since the epoch. */
export function serverNow() {
  return Date.now() + clockSkew;
}

function query(params) {
  const clean = Object.entries(params || {}).filter(([, value]) => value !== undefined && value !== null && value !== "");
  const text = new URLSearchParams(clean).toString();
  return text ? `?${text}` : "";
}

function request(method, body, token, raw) {
  const headers = { Accept: raw ? "*/*" : "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  else if (auth.csrf && method !== "GET") headers["X-CSRFToken"] = auth.csrf;
  const init = { method, headers, credentials: token ? "omit" : "same-origin", cache: "no-store" };
  if (method !== "GET" && body instanceof FormData) {
    init.body = body;
  } else if (method !== "GET" && body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  return init;
}

function errorOf(response, data) {
  const error = (data && data.error) || {};
  const message = response.status === 401
    ? "Your session has expired. Open Attendance again from your course."
    : error.message || `The server answered with an error (HTTP ${response.status}).`;
  return new ApiError(response.status, error.code || `http_${response.status}`, message, error.fields);
}

/**
 * Call the API. body: an object (JSON), a FormData (multipart), or for GET the query parameters.
 * Resolves with the JSON body, or with the Response when options.raw; rejects with an ApiError
 * carrying the contract's error code and message. options.token overrides the page's launch token.
 */
export async function api(method, path, body, options = {}) {
  const token = options.token !== undefined ? options.token : auth.token;
  const url = method === "GET" ? path + query(body) : path;
  let response;
  try {
    response = await fetch(url, request(method, body, token, options.raw));
  } catch {
    throw new ApiError(0, "network_error", "Cannot reach the attendance server. Check your connection and try again.");
  }
  noteServerDate(response);
  if (options.raw && response.ok) return response;
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok || !data || data.success === false) throw errorOf(response, data);
  return data;
}
