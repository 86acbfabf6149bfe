// The admin API client: same-origin fetch with the session cookie, the CSRF
// token on every write, ETag / If-Match, and errors as ApiError objects that
// carry the API's `problems` (JSON Pointer + message).

/** A failed API call: `status`, `code`, `message`, `problems`. */
export class ApiError extends Error {
  constructor(status, detail) {
    super(detail?.message ?? `request failed (${status})`);
    this.name = 'ApiError';
    this.status = status;
    this.code = detail?.code ?? 'error';
    this.problems = detail?.problems ?? [];
  }
}

/** Builds an API path with every interpolated value percent-encoded:
 * ``path`/flags/${set}/${key}` ``. */
export function path(strings, ...values) {
  return strings.reduce((out, text, i) => out + text + (i < values.length ? encodeURIComponent(values[i]) : ''), '');
}

let csrfToken = null;
let unauthorized = () => {};

/** One request to `/api/v1${url}`. Resolves `{data, etag, status}`. */
export async function request(method, url, { body, query, etag, headers = {} } = {}) {
  const target = new URL(`/api/v1${url}`, window.location.origin);
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value != null && value !== '') target.searchParams.set(name, value);
  }
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json', ...headers } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) init.headers['X-CSRF-Token'] = csrfToken;
  if (etag) init.headers['If-Match'] = etag;
  let response;
  try {
    response = await fetch(target, init);
  } catch {
    throw new ApiError(0, { code: 'network', message: 'Ensign cannot be reached; check your connection and retry.' });
  }
  const text = response.status === 204 ? '' : await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, data?.error ?? { message: response.statusText });
    if (response.status === 401 && url !== '/session') unauthorized(error);
    throw error;
  }
  return { data, etag: response.headers.get('ETag'), status: response.status };
}

/** The API as pages use it; reads resolve to the body, `fetch` to `{data, etag}`. */
export const api = {
  request,
  path,
  fetch: (url, query) => request('GET', url, { query }),
  get: async (url, query) => (await request('GET', url, { query })).data,
  post: async (url, body, options = {}) => (await request('POST', url, { ...options, body })).data,
  put: (url, body, options = {}) => request('PUT', url, { ...options, body }),
  patch: (url, body, options = {}) => request('PATCH', url, { ...options, body }),
  delete: (url, options = {}) => request('DELETE', url, options),
  /** Remembers the session's CSRF token (null on sign-out). */
  setCsrfToken(token) { csrfToken = token ?? null; },
  /** Called with the error when a request is answered 401. */
  onUnauthorized(handler) { unauthorized = handler; },
};
