// api.js — the console's one door to drover-web: the documented HTTP API
// (webd/openapi.json) and nothing else. The token lives in this tab's
// sessionStorage and goes out as "Authorization: Bearer" on every request;
// the console uses no cookie, so another site cannot make the browser act
// for the user (no CSRF), and drover-web refuses a write whose Origin is
// not its own on top of that.

const TOKEN_KEY = 'drover.token';

export class ApiError extends Error {
  /** status: HTTP status (0: no answer); code: drover's error code;
   *  errors: a refused spec's [{file, line, col, message}]. */
  constructor(status, code, message, errors) {
    super(message);
    this.status = status;
    this.code = code;
    this.errors = errors || [];
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

export function setToken(t) {
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Headers for a request (the bearer; more from extra). */
export function headers(extra) {
  const hd = new Headers(extra || {});
  const t = token();
  if (t) hd.set('Authorization', 'Bearer ' + t);
  return hd;
}

/** The URL of an API path with query parameters (undefined/''/null skipped;
 *  an array value repeats the key). */
export function url(path, query) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) {
    for (const one of Array.isArray(v) ? v : [v])
      if (one !== undefined && one !== null && one !== '') q.append(k, String(one));
  }
  const qs = q.toString();
  return '/api/v1' + path + (qs ? '?' + qs : '');
}

/** Path segment escaping (a step named "a/b" or "x?y"). */
export const seg = encodeURIComponent;

async function failure(resp) {
  let body = null;
  try { body = await resp.json(); } catch (e) { /* not JSON */ }
  const msg = (body && body.error) || `${resp.status} ${resp.statusText}`;
  const err = new ApiError(resp.status, body && body.code, msg, body && body.errors);
  if (resp.status === 401) window.dispatchEvent(new CustomEvent('drover-unauthenticated'));
  return err;
}

/** Send a request; resolve to the Response when it is 2xx, else throw an
 *  ApiError. opts: {method, query, body (object → JSON; string → as is),
 *  contentType, signal}. */
export async function request(path, opts = {}) {
  const init = { method: opts.method || 'GET', headers: headers(), signal: opts.signal,
    cache: 'no-store' };
  if (opts.body !== undefined) {
    if (typeof opts.body === 'string') {
      init.body = opts.body;
      init.headers.set('Content-Type', opts.contentType || 'application/yaml');
    } else {
      init.body = JSON.stringify(opts.body);
      init.headers.set('Content-Type', 'application/json');
    }
  }
  let resp;
  try {
    resp = await fetch(url(path, opts.query), init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'unavailable', 'drover-web did not answer: ' + e.message);
  }
  if (!resp.ok) throw await failure(resp);
  return resp;
}

/** request() and the answer's JSON. */
export async function json(path, opts) {
  const resp = await request(path, opts);
  return resp.status === 204 ? null : resp.json();
}
