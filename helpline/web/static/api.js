// A small REST client for the Helpline API (docs/protocol.md): bearer credentials in a header, JSON in and
// out, and RFC 9457 problems turned into ApiError with the server's `detail` for people to read.

export class ApiError extends Error {
  constructor(status, problem, retryAfter) {
    super(problem?.detail || problem?.title || `request failed with status ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = problem?.code || 'http_error';
    this.detail = this.message;
    this.problem = problem;
    this.retryAfter = retryAfter;
  }
}

/** The request never got an answer (offline, DNS, connection reset, timeout). */
export class NetworkError extends Error {
  constructor(cause) {
    super('the server could not be reached', { cause });
    this.name = 'NetworkError';
  }
}

/** Worth sending again with the same client id: no answer, overload, rate limit, or a server hiccup. */
export function isRetryable(error) {
  if (error instanceof NetworkError) return true;
  return error instanceof ApiError && (error.status === 429 || error.status >= 500);
}

export const sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason);
    });
  });

/** Exponential backoff with full jitter, capped: 1 s, 2 s, 4 s ... up to `capMs`. */
export function backoff(attempt, baseMs = 1000, capMs = 30000) {
  const ceiling = Math.min(capMs, baseMs * 2 ** attempt);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

/**
 * `server` is the API origin ('' for same-origin); `getToken` returns the current bearer token or null.
 * Tokens travel only in the Authorization header, never in a URL (docs/protocol.md "Credentials").
 */
export function createApi({ server = '', getToken = () => null } = {}) {
  const base = server.replace(/\/+$/, '');

  async function request(method, path, { body, query, timeoutMs = 15000, signal } = {}) {
    const url = new URL(base + path, window.location.href);
    for (const [name, value] of Object.entries(query || {})) {
      if (value !== undefined && value !== null && value !== '') url.searchParams.set(name, String(value));
    }
    const headers = { Accept: 'application/json' };
    const token = getToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new DOMException('timed out', 'TimeoutError')), timeoutMs);
    const onAbort = () => controller.abort(signal.reason);
    signal?.addEventListener('abort', onAbort);
    let response;
    try {
      response = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'omit',
        cache: 'no-store',
        signal: controller.signal,
      });
    } catch (error) {
      if (signal?.aborted) throw error;
      throw new NetworkError(error);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
    if (response.status === 204) return null;
    let payload = null;
    try {
      payload = await response.json();
    } catch {
      payload = null;
    }
    if (!response.ok) {
      const retryAfter = Number(response.headers.get('Retry-After')) || undefined;
      throw new ApiError(response.status, payload, retryAfter);
    }
    return payload;
  }

  return {
    server: base,
    request,
    get: (path, options) => request('GET', path, options),
    post: (path, body, options) => request('POST', path, { ...options, body }),
    put: (path, body, options) => request('PUT', path, { ...options, body }),
  };
}

/** Run `attempt` until it succeeds or fails for good; retryable failures wait with backoff. */
export async function withRetry(attempt, { tries = 6, onRetry = () => {}, signal } = {}) {
  for (let n = 0; ; n += 1) {
    try {
      return await attempt();
    } catch (error) {
      if (!isRetryable(error) || n + 1 >= tries) throw error;
      onRetry(error, n);
      const wait = error.retryAfter ? error.retryAfter * 1000 : backoff(n, 500, 8000);
      await sleep(wait, signal);
    }
  }
}

/** A conversation's entries, newest page first: `{entries, next_cursor}` where next_cursor pages back. */
export function latestEntries(api, conversationId, { before, limit = 100 } = {}) {
  return api.get(`/api/v1/conversations/${encodeURIComponent(conversationId)}/entries`, {
    // The largest id the API accepts: "everything before the end", i.e. the newest `limit` entries.
    query: { before: before ?? '9223372036854775807', limit },
  });
}
