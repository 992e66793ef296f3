// The API client of the status page: same-origin fetch, the key from sessionStorage sent as
// `Authorization: Bearer` (never in a URL, never in a cookie: credentials are omitted), problem+json
// answers turned into ApiError with the HTTP status and the problem's detail.

const KEY = 'registry-db.api-key';

export const keyStore = {
  get: () => sessionStorage.getItem(KEY),
  set: (key) => sessionStorage.setItem(KEY, key),
  clear: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, problem, path) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.problem = problem;
    this.path = path;
  }
}

/** Headers every API call carries (also used by the change-feed client). */
export function authHeaders(extra = {}) {
  const headers = { ...extra };
  const key = keyStore.get();
  if (key) headers.Authorization = `Bearer ${key}`;
  return headers;
}

/** One API call; resolves to { data, headers } or throws ApiError (HTTP) / TypeError (network). */
export async function api(path, { method = 'GET', body, signal } = {}) {
  const headers = authHeaders({ Accept: 'application/json' });
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
    credentials: 'omit',
    cache: 'no-store',
  });
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) throw new ApiError(res.status, data, path);
  return { data, headers: res.headers };
}

/** Every page of a query (following `Link: <...>; rel="next"`), up to `max` entries. */
export async function queryAll(filter, { pageSize = 1000, max = 5000, signal } = {}) {
  let url = `/container_registries?limit=${pageSize}&sort=container_registry_name`;
  const entries = [];
  let revision = null;
  let more = false;
  while (url) {
    const { data, headers } = await api(url, { method: 'POST', body: filter, signal });
    if (revision === null) revision = headers.get('X-Catalog-Revision');
    entries.push(...data);
    const next = /<([^>]+)>;\s*rel="next"/.exec(headers.get('Link') || '');
    url = next ? next[1] : null;
    if (url && entries.length >= max) {
      more = true;
      url = null;
    }
  }
  return { entries, revision, more };
}
