// The HTTP client: bearer token, JSON bodies, RFC 9457 problems turned into `ApiProblem`.
// Response types come from `schema.d.ts`, generated from the server's `/api/openapi.json`
// (`npm run gen:api`), never written by hand.
import type { components } from './schema';

export type Schemas = components['schemas'];
export type AppView = Schemas['App'];
export type Me = Schemas['Me'];
export type LoginResponse = Schemas['LoginResponse'];
export type MigrationReport = Schemas['MigrationReportView'];
export type FieldError = Schemas['FieldError'];
export type Problem = Schemas['Problem'];

const TOKEN_KEY = 'trellis.token';

export function getToken(): string | null {
  return localStorage.getItem(TOKEN_KEY);
}

export function setToken(token: string | null): void {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

/** A problem+json answer from the server, with one entry per field error. */
export class ApiProblem extends Error {
  readonly status: number;
  readonly title: string;
  readonly detail: string;
  readonly errors: FieldError[];
  constructor(status: number, body: Partial<Problem> | null) {
    super(body?.detail || body?.title || `HTTP ${status}`);
    this.status = status;
    this.title = body?.title ?? `HTTP ${status}`;
    this.detail = body?.detail ?? '';
    this.errors = (body?.errors as FieldError[] | undefined) ?? [];
  }
  /** Field errors keyed by their top-level field name (`/email` → `email`). */
  fieldErrors(prefix = ''): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const e of this.errors) {
      const pointer = e.pointer ?? '';
      if (!pointer.startsWith(prefix)) continue;
      const rest = pointer.slice(prefix.length).split('/').filter(Boolean);
      const key = rest[0] ?? '';
      (out[key] ??= []).push(e.message);
    }
    return out;
  }
}

let onUnauthorized: () => void = () => {};
export function setUnauthorizedHandler(handler: () => void): void {
  onUnauthorized = handler;
}

export interface RequestOptions {
  body?: unknown;
  rawBody?: BodyInit;
  contentType?: string;
  ifMatch?: string;
  query?: Record<string, string | number | boolean | undefined | null>;
  lang?: string;
}

export interface Answer<T> {
  data: T;
  etag: string | null;
}

export async function request<T>(method: string, path: string, options: RequestOptions = {}): Promise<Answer<T>> {
  const headers: Record<string, string> = { accept: 'application/json' };
  const token = getToken();
  if (token) headers.authorization = `Bearer ${token}`;
  if (options.ifMatch) headers['if-match'] = options.ifMatch;
  if (options.lang) headers['accept-language'] = options.lang;
  let body: BodyInit | undefined;
  if (options.rawBody !== undefined) {
    body = options.rawBody;
    if (options.contentType) headers['content-type'] = options.contentType;
  } else if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers['content-type'] = 'application/json';
  }
  let url = path;
  if (options.query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(options.query)) {
      if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
    }
    const qs = params.toString();
    if (qs) url += (url.includes('?') ? '&' : '?') + qs;
  }
  const response = await fetch(url, { method, headers, body });
  const text = await response.text();
  let parsed: unknown = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
  }
  if (!response.ok) {
    if (response.status === 401 && !path.endsWith('/auth/login')) onUnauthorized();
    throw new ApiProblem(response.status, (parsed && typeof parsed === 'object' ? parsed : null) as Partial<Problem> | null);
  }
  return { data: parsed as T, etag: response.headers.get('etag') };
}

export const api = {
  get: async <T>(path: string, options?: RequestOptions) => (await request<T>('GET', path, options)).data,
  post: async <T>(path: string, body?: unknown, options?: RequestOptions) =>
    (await request<T>('POST', path, { ...options, body })).data,
  put: async <T>(path: string, body?: unknown, options?: RequestOptions) =>
    (await request<T>('PUT', path, { ...options, body })).data,
  patch: async <T>(path: string, body?: unknown, options?: RequestOptions) =>
    (await request<T>('PATCH', path, { ...options, body })).data,
  del: async <T>(path: string, options?: RequestOptions) => (await request<T>('DELETE', path, options)).data,
};

/** Path of an app's entity records, escaped. */
export function recordsPath(app: string, entity: string, id?: string): string {
  const base = `/api/apps/${encodeURIComponent(app)}/entities/${encodeURIComponent(entity)}/records`;
  return id ? `${base}/${encodeURIComponent(id)}` : base;
}

export interface RecordView {
  id: string;
  version: number;
  created_at: string;
  updated_at: string;
  data: Record<string, unknown>;
}

export interface RecordPage {
  items: RecordView[];
  next_cursor: string | null;
}

export async function login(username: string, password: string): Promise<string> {
  const answer = await api.post<LoginResponse>('/api/auth/login', { username, password });
  setToken(answer.token);
  return answer.token;
}
