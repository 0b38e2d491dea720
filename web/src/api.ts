// The control plane's REST API (/api/v1) for a browser session: the
// session cookie authenticates, and every mutation sends the session's
// CSRF token (from login or GET /me) as X-CSRF-Token.
import { problemText } from './logic';

export class ApiError extends Error {
  constructor(public status: number, public body: unknown) {
    super(problemText(status, body));
  }
}

let csrf = '';

export interface Me {
  kind: string;
  user?: { email: string };
  csrf_token?: string;
}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['X-CSRF-Token'] = csrf;
  const resp = await fetch('/api/v1' + path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  let data: unknown = undefined;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    data = { detail: text };
  }
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data as T;
}

export const api = {
  get: <T>(path: string) => call<T>('GET', path),
  post: <T>(path: string, body?: unknown) => call<T>('POST', path, body ?? {}),
  patch: <T>(path: string, body: unknown) => call<T>('PATCH', path, body),
  del: (path: string) => call<void>('DELETE', path),
  async me(): Promise<Me | null> {
    try {
      const me = await call<Me>('GET', '/me');
      csrf = me.csrf_token ?? '';
      return me;
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return null;
      throw e;
    }
  },
  async login(email: string, password: string): Promise<Me> {
    const me = await call<Me>('POST', '/auth/login', { email, password });
    csrf = me.csrf_token ?? '';
    if (!csrf) await api.me();
    return me;
  },
  async logout(): Promise<void> {
    await call('POST', '/auth/logout', {});
    csrf = '';
  },
};

export interface List<T> {
  items: T[];
  next_cursor?: string;
}
