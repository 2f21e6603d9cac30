/**
 * The control API from the browser: every call carries the admin token kept in sessionStorage (gone when
 * the tab closes). Errors keep the API's code and message so the pages can show both.
 */
const TOKEN_KEY = 'continuum.token';

export function getToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(token: string | null): void {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: Record<string, string | number> | undefined;
  constructor(status: number, code: string, message: string, details?: Record<string, string | number>) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
  /** The route is not on this node (an older node, or a feature that has not landed). */
  get notAvailable(): boolean {
    return this.status === 404 && this.code === 'not_found' && this.message.startsWith('no route');
  }
}

/** Listeners told when the token is refused, so the app can return to sign-in. */
const unauthorizedListeners = new Set<() => void>();
export function onUnauthorized(listener: () => void): () => void {
  unauthorizedListeners.add(listener);
  return () => unauthorizedListeners.delete(listener);
}

export async function toApiError(res: Response): Promise<ApiError> {
  const text = await res.text();
  try {
    const body = JSON.parse(text) as { error?: { code?: string; message?: string; details?: Record<string, string | number> } };
    if (body.error?.code) return new ApiError(res.status, body.error.code, body.error.message ?? '', body.error.details);
  } catch {
    // not an API error body; fall through
  }
  return new ApiError(res.status, `http_${res.status}`, text.slice(0, 300) || res.statusText);
}

export interface RequestOptions {
  body?: unknown;
  raw?: BodyInit;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  token?: string;
}

/** A raw fetch of an API path with the token; the response is returned as is (for invoke and streams). */
export async function apiFetch(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { authorization: `Bearer ${opts.token ?? getToken() ?? ''}`, ...opts.headers };
  let body: BodyInit | undefined = opts.raw;
  if (opts.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  const res = await fetch(path, { method, headers, ...(body !== undefined ? { body } : {}), ...(opts.signal ? { signal: opts.signal } : {}) });
  if (res.status === 401 && !opts.token) for (const l of unauthorizedListeners) l();
  return res;
}

/** A JSON API call: the parsed body, or an ApiError. */
export async function api<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
  const res = await apiFetch(method, path, opts);
  if (!res.ok) throw await toApiError(res);
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

/** NDJSON lines of a streaming response, one parsed object at a time, until the stream ends or is aborted. */
export async function* ndjson<T>(res: Response): AsyncGenerator<T> {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += value;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) !== -1) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (line) yield JSON.parse(line) as T;
    }
  }
}

/**
 * Server-sent events read from a fetch response (EventSource cannot send the Authorization header): the
 * parsed `data` of each event of the given type; comments (keep-alives) are skipped.
 */
export async function* sse<T>(res: Response, type: string): AsyncGenerator<T> {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += value.replace(/\r\n?/g, '\n');
    let end: number;
    while ((end = buffered.indexOf('\n\n')) !== -1) {
      const block = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon === -1 ? line : line.slice(0, colon);
        const val = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') event = val;
        else if (field === 'data') data.push(val);
      }
      if (event === type && data.length) yield JSON.parse(data.join('\n')) as T;
    }
  }
}

/** Log lines of a /v1/logs response: server-sent events when following, NDJSON otherwise. */
export function logLines(res: Response): AsyncGenerator<LogLine> {
  return res.headers.get('content-type')?.startsWith('text/event-stream') ? sse<LogLine>(res, 'log') : ndjson<LogLine>(res);
}

// ------------------------------------------------------------------ views (shapes of /v1 responses)

export interface Route {
  path: string;
  methods?: string[];
  host?: string;
}

export interface FunctionConfig {
  tier: string;
  handler: { format: string; export: string | null };
  limits: Record<string, number>;
  scale: Record<string, number>;
  routes: Route[];
  env: Record<string, string>;
  triggers: Array<{ type: string; [key: string]: unknown }>;
  bindings: Record<string, Record<string, unknown>>;
  async: Record<string, unknown>;
  [key: string]: unknown;
}

export interface FunctionView {
  name: string;
  tier: string;
  activeVersion: string | null;
  config: FunctionConfig;
  createdAt: string;
  updatedAt: string;
  instances: number;
  state?: string;
}

export interface VersionView {
  id: string;
  functionName: string;
  bundleDigest: string;
  bundleBytes: number;
  format: string;
  exportName: string;
  createdAt: string;
  dependencies: Array<{ name: string; version: string; license: string }>;
}

export interface InvocationView {
  id: string;
  functionName: string;
  versionId: string;
  tier: string;
  trigger: string;
  startedAt: string;
  coldStart: boolean;
  phases: { queueMs: number; initMs: number; execMs: number; sandboxMs?: number; runtimeInitMs?: number; moduleLoadMs?: number; overheadMs?: number; totalMs?: number };
  outcome: 'ok' | 'error';
  status: number | null;
  errorCode: string | null;
  errorMessage: string | null;
  cpuMs: number;
  peakMemoryBytes: number;
  node: string;
  callerFunction?: string | null;
  parentInvocationId?: string | null;
  [key: string]: unknown;
}

export interface LogLine {
  seq?: number;
  invocationId: string;
  functionName: string;
  ts: number;
  level: string;
  message: string;
}

export interface QueueView {
  name: string;
  createdAt: string;
  stats: { depth: number; ready: number; delayed: number; inFlight: number; oldestAgeMs: number; deadLetters: number };
  consumers: string[];
}

export interface DeadLetterView {
  id: string;
  body: string;
  encoding: string;
  deadAt: number;
  attempts: number;
  reason: string;
  errors: string[];
}

export interface Page<T> {
  items: T[];
  nextCursor?: string | null;
}
