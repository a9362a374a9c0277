import createClient from 'openapi-fetch';
import type { paths } from './types';
import { ApiError, toApiError } from './errors';
import type { AuthManager } from '../auth/manager';
import { auth } from '../auth/session';

/**
 * fetch with the bearer token: refreshes a due token first, and on a 401 refreshes once and
 * retries; when that fails too the session is over and the user is sent to log in.
 */
export function authFetch(manager: AuthManager, send: (r: Request) => Promise<Response>) {
  return async (request: Request): Promise<Response> => {
    const path = new URL(request.url).pathname;
    if (path.startsWith('/api/v1/auth/')) return send(request);
    const token = await manager.accessToken();
    const retry = token ? request.clone() : null;
    if (token) request.headers.set('Authorization', `Bearer ${token}`);
    const res = await send(request);
    if (res.status !== 401) return res;
    if (!token || !retry) {
      manager.end('expired');
      return res;
    }
    let fresh = null;
    try {
      fresh = await manager.refresh(token);
    } catch {
      return res;
    }
    if (!fresh) return res;
    retry.headers.set('Authorization', `Bearer ${fresh.access_token}`);
    const again = await send(retry);
    if (again.status === 401) manager.end('expired');
    return again;
  };
}

export const api = createClient<paths>({
  baseUrl: window.location.origin,
  fetch: authFetch(auth, (r) => globalThis.fetch(r)),
});

interface Result<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** The data of a successful call, or an ApiError with the server's envelope. */
export async function unwrap<T>(call: Promise<Result<T>>): Promise<T> {
  let r: Result<T>;
  try {
    r = await call;
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') throw e;
    throw toApiError(0, undefined);
  }
  if (r.response.ok) return r.data as T;
  throw toApiError(r.response.status, r.error);
}

/** For calls answering 204 No Content. */
export async function unwrapVoid(call: Promise<Result<unknown>>): Promise<void> {
  await unwrap(call);
}

export { ApiError };
