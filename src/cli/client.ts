/**
 * A small typed client for the control API (Node's fetch). Every failure becomes a CliError with the right
 * exit code: API error bodies keep their registry code; network failures are `unavailable` (exit 2) with one
 * line saying which URL could not be reached and why.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { isErrorCode, type ErrorCode, type ErrorDetails } from '../core/errors.ts';
import type { FunctionConfigInput } from '../core/config.ts';
import type { InvocationRecord, LogLine, Tier, VersionRecord } from '../core/types.ts';
import { CliError, EXIT_PLATFORM, EXIT_USER, exitCodeFor, firstLine } from './errors.ts';

/** GET /v1/status. */
export interface NodeStatus {
  version: string;
  tiers: Array<{ tier: string; available: boolean; reason?: string; instances: number }>;
}

export interface FunctionView {
  name: string;
  tier: Tier;
  activeVersion: string | null;
  config: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
  instances: unknown;
}

/** A version as the API returns it (the CLI does not need its config). */
export type VersionView = Omit<VersionRecord, 'config'>;

export interface DeployResult {
  function: FunctionView;
  version: VersionView;
}

/** A queue as GET /v1/queues answers it. */
export interface QueueView {
  name: string;
  createdAt: string;
  stats: { depth: number; ready: number; delayed: number; inFlight: number; oldestAgeMs: number; deadLetters: number };
  /** Functions that consume the queue. */
  consumers: string[];
}

/** One message to send: its body as text, or as base64 for bytes. */
export interface OutgoingMessage {
  body: string;
  encoding?: 'utf8' | 'base64';
  contentType?: string;
  delaySeconds?: number;
  idempotencyKey?: string;
}

export interface SentItem {
  id: string;
  duplicate: boolean;
}

export interface DeadLetterView {
  id: string;
  body: string;
  encoding: 'utf8' | 'base64';
  contentType: string | null;
  attributes: Record<string, string>;
  idempotencyKey: string | null;
  /** Epoch ms. */
  enqueuedAt: number;
  deadAt: number;
  attempts: number;
  reason: string;
  /** Errors of the attempts, oldest first. */
  errors: string[];
}

export interface AsyncAccepted {
  invocationId: string;
  duplicate: boolean;
}

/** An async invocation's state and, once finished, its outcome (GET /v1/invocations/{id}). */
export interface AsyncStatus {
  kind: 'async';
  id: string;
  functionName: string | null;
  queue: string;
  state: 'ready' | 'delayed' | 'in_flight' | 'succeeded' | 'failed' | 'dead' | 'expired';
  attempt: number;
  /** Epoch ms. */
  enqueuedAt: number;
  idempotencyKey: string | null;
  outcome: {
    state: 'succeeded' | 'failed' | 'dead' | 'expired';
    attempt: number;
    finishedAt: number;
    result?: { status: number | null; contentType: string | null; body: string; encoding: 'utf8' | 'base64' };
    error?: { code: string; message: string };
  } | null;
}

/** What GET /v1/invocations/{id} answers: an execution record, or an async invocation's status. */
export type InvocationView = InvocationRecord | AsyncStatus;

export interface LogItem extends LogLine {
  seq?: number;
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** Where the CLI talks to, and how it found out. */
export interface Target {
  url: string;
  token: string | null;
  /** `env` (CONTINUUM_URL) or `local` (<data dir>/node.json). */
  source: 'env' | 'local';
  /** Set when found through the data dir, for hints. */
  dataDir?: string;
  pid?: number;
}

export interface DiscoverOptions {
  dataDir: string;
  env: Record<string, string | undefined>;
}

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

async function readLocalNode(dataDir: string): Promise<{ url: string; pid?: number } | undefined> {
  let text: string;
  try {
    text = await readFile(path.join(dataDir, 'node.json'), 'utf8');
  } catch {
    return undefined;
  }
  try {
    const parsed = JSON.parse(text) as { url?: unknown; pid?: unknown };
    if (typeof parsed.url !== 'string') return undefined;
    return { url: parsed.url, pid: typeof parsed.pid === 'number' ? parsed.pid : undefined };
  } catch {
    return undefined;
  }
}

async function readToken(dataDir: string): Promise<string | null> {
  try {
    const t = (await readFile(path.join(dataDir, 'admin-token'), 'utf8')).trim();
    return t || null;
  } catch {
    return null;
  }
}

function parseUrl(raw: string, what: string): URL {
  try {
    const u = new URL(raw);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http');
    return u;
  } catch {
    throw new CliError('bad_request', `${what} ${JSON.stringify(raw)} is not an http(s) URL`, { exitCode: EXIT_USER });
  }
}

/**
 * CONTINUUM_URL / CONTINUUM_TOKEN win. Without a URL, the local node's <data dir>/node.json is used, with the
 * admin token beside it. The local admin token is only ever sent to that local node (or a loopback URL).
 */
export async function discoverTarget(opts: DiscoverOptions): Promise<Target> {
  const envUrl = opts.env.CONTINUUM_URL?.trim();
  const envToken = opts.env.CONTINUUM_TOKEN?.trim() || null;
  const local = await readLocalNode(opts.dataDir);
  if (envUrl) {
    const u = parseUrl(envUrl, 'CONTINUUM_URL');
    let token = envToken;
    if (!token) {
      const sameNode = local !== undefined && safeOrigin(local.url) === u.origin;
      if (sameNode || LOOPBACK_HOSTS.has(u.hostname)) token = await readToken(opts.dataDir);
    }
    return { url: stripSlash(u.href), token, source: 'env' };
  }
  if (!local) {
    throw new CliError('unavailable', `no Continuum node found: ${path.join(opts.dataDir, 'node.json')} does not exist — run 'continuum up' or set CONTINUUM_URL`, { exitCode: EXIT_PLATFORM });
  }
  const u = parseUrl(local.url, `${path.join(opts.dataDir, 'node.json')} url`);
  return { url: stripSlash(u.href), token: envToken ?? (await readToken(opts.dataDir)), source: 'local', dataDir: opts.dataDir, pid: local.pid };
}

function safeOrigin(raw: string): string | undefined {
  try {
    return new URL(raw).origin;
  } catch {
    return undefined;
  }
}

function stripSlash(s: string): string {
  return s.replace(/\/+$/, '');
}

const NET_REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'DNS lookup failed',
  ETIMEDOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EPIPE: 'connection closed while sending',
  UND_ERR_SOCKET: 'connection closed by the server',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  UND_ERR_HEADERS_TIMEOUT: 'no response headers in time',
  UND_ERR_BODY_TIMEOUT: 'response body stalled',
  CERT_HAS_EXPIRED: 'TLS certificate expired',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'self-signed TLS certificate',
};

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface ClientOptions {
  /** Called with one line per HTTP exchange (--verbose); never sees the token. */
  trace?: (line: string) => void;
  /** Default per-request timeout; deploy and invoke pass their own. */
  timeoutMs?: number;
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  headers?: Record<string, string>;
  body?: Buffer | string | ReadableStream<Uint8Array>;
  /** Send the bearer token (all /v1 calls); false for /fn/ so the admin token never reaches function code. */
  auth?: boolean;
  /** null = no timeout (streams, invocations bounded by the function's own timeout). */
  timeoutMs?: number | null;
  signal?: AbortSignal;
}

export class ContinuumClient {
  readonly target: Target;
  readonly #trace: ((line: string) => void) | undefined;
  readonly #timeoutMs: number;

  constructor(target: Target, opts: ClientOptions = {}) {
    this.target = target;
    this.#trace = opts.trace;
    this.#timeoutMs = opts.timeoutMs ?? 60_000;
  }

  url(pathname: string, query?: RequestOptions['query']): string {
    const u = new URL(this.target.url + pathname);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) u.searchParams.set(k, String(v));
    return u.href;
  }

  /** One HTTP exchange; resolves with the Response whatever its status, rejects only on network failure. */
  async send(method: string, pathname: string, opts: RequestOptions = {}): Promise<Response> {
    const url = this.url(pathname, opts.query);
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.auth !== false && this.target.token) headers.authorization = `Bearer ${this.target.token}`;
    const timeoutMs = opts.timeoutMs === undefined ? this.#timeoutMs : opts.timeoutMs;
    const signals = [opts.signal, timeoutMs === null ? undefined : AbortSignal.timeout(timeoutMs)].filter((s): s is AbortSignal => s !== undefined);
    const init: RequestInit & { duplex?: 'half' } = { method, headers, signal: signals.length ? AbortSignal.any(signals) : undefined };
    if (opts.body !== undefined) {
      init.body = opts.body as RequestInit['body'];
      if (opts.body instanceof ReadableStream) init.duplex = 'half';
    }
    const started = performance.now();
    this.#trace?.(`> ${method} ${url}`);
    let res: Response;
    try {
      res = await fetch(url, init);
    } catch (err) {
      throw this.networkError(err, timeoutMs);
    }
    this.#trace?.(`< ${res.status} ${method} ${url} (${Math.round(performance.now() - started)} ms)`);
    return res;
  }

  networkError(err: unknown, timeoutMs?: number | null): CliError {
    const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string; name?: string } };
    if (e?.name === 'TimeoutError') {
      return new CliError('timeout', `no answer from Continuum at ${this.target.url} within ${Math.round((timeoutMs ?? 0) / 1000)}s`, { exitCode: EXIT_PLATFORM, retryable: true });
    }
    if (e?.name === 'AbortError') return new CliError('unavailable', 'request aborted', { exitCode: EXIT_PLATFORM });
    const code = e?.cause?.code;
    const reason = (code && NET_REASONS[code]) ?? firstLine(e?.cause?.message ?? e?.message ?? 'network error', 120);
    let hint: string;
    if (this.target.source === 'local') {
      hint = this.target.pid !== undefined && !pidAlive(this.target.pid)
        ? ` — the node recorded in ${path.join(this.target.dataDir ?? '.', 'node.json')} (pid ${this.target.pid}) is not running; start it with 'continuum up'`
        : " — is 'continuum up' running?";
    } else hint = ' — check CONTINUUM_URL';
    return new CliError('unavailable', `cannot reach Continuum at ${this.target.url} (${reason})${hint}`, { exitCode: EXIT_PLATFORM, retryable: true });
  }

  /** Turn a non-2xx response into a CliError, keeping the server's code and message. */
  async apiError(res: Response): Promise<CliError> {
    let text = '';
    try {
      text = await res.text();
    } catch {
      // body lost; the status still says enough
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    const raw = (parsed as { error?: { code?: unknown; message?: unknown; retryable?: unknown } } | undefined)?.error;
    if (raw && typeof raw.code === 'string' && typeof raw.message === 'string') {
      const known = isErrorCode(raw.code);
      const code: ErrorCode = known ? (raw.code as ErrorCode) : res.status < 500 ? 'bad_request' : 'internal';
      const err = new CliError(code, known ? raw.message : `${raw.code}: ${raw.message}`, {
        exitCode: exitCodeFor(raw.code, res.status),
        retryable: typeof raw.retryable === 'boolean' ? raw.retryable : undefined,
        details: (raw as { details?: ErrorDetails }).details,
        status: res.status,
      });
      if (code === 'unauthorized') return withHint(err, this.target.source === 'local' ? ` (token from ${path.join(this.target.dataDir ?? '.', 'admin-token')}; set CONTINUUM_TOKEN to override)` : ' (set CONTINUUM_TOKEN)');
      return err;
    }
    const fallback = res.status === 401 ? 'unauthorized' : res.status === 403 ? 'forbidden' : res.status === 404 ? 'not_found' : res.status === 413 ? 'payload_too_large' : res.status < 500 ? 'bad_request' : 'internal';
    const snippet = text ? `: ${firstLine(text, 200)}` : '';
    return new CliError(fallback, `HTTP ${res.status} ${res.statusText}${snippet}`, { exitCode: exitCodeFor(undefined, res.status), status: res.status });
  }

  async json<T>(method: string, pathname: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.send(method, pathname, { ...opts, headers: { accept: 'application/json', ...opts.headers } });
    if (!res.ok) throw await this.apiError(res);
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new CliError('internal', `the server sent a response that is not JSON (HTTP ${res.status})`, { exitCode: EXIT_PLATFORM });
    }
  }

  listFunctions(): Promise<{ items: FunctionView[] }> {
    return this.json('GET', '/v1/functions');
  }

  getFunction(name: string): Promise<FunctionView> {
    return this.json('GET', `/v1/functions/${encodeURIComponent(name)}`);
  }

  async deleteFunction(name: string): Promise<void> {
    await this.json('DELETE', `/v1/functions/${encodeURIComponent(name)}`);
  }

  /** The node's version and each tier's driver status. */
  status(): Promise<NodeStatus> {
    return this.json('GET', '/v1/status');
  }

  /** The function's active version as an OCI image layout tarball. */
  async exportImage(name: string): Promise<Buffer> {
    const res = await this.send('GET', `/v1/functions/${encodeURIComponent(name)}/image`, { timeoutMs: null });
    if (!res.ok) throw await this.apiError(res);
    return Buffer.from(await res.arrayBuffer());
  }

  listVersions(name: string): Promise<{ items: VersionView[] }> {
    return this.json('GET', `/v1/functions/${encodeURIComponent(name)}/versions`);
  }

  deploy(name: string, upload: { body: Buffer; contentType: string; filename: string; config?: FunctionConfigInput }, onProgress?: (sent: number, total: number) => void): Promise<DeployResult> {
    const headers: Record<string, string> = { 'content-type': upload.contentType, 'content-length': String(upload.body.length) };
    if (upload.config && Object.keys(upload.config).length > 0) headers['continuum-config'] = headerJson(upload.config);
    return this.json('POST', `/v1/functions/${encodeURIComponent(name)}/deploy`, {
      query: { filename: upload.filename },
      headers,
      body: onProgress ? progressStream(upload.body, onProgress) : upload.body,
      timeoutMs: 10 * 60_000,
    });
  }

  /** POST /v1/functions/{name}/invoke, or with a method/path of choice through /fn/{name}/…; any status resolves. */
  async invoke(name: string, req: { method?: string; path?: string; headers: Record<string, string>; body?: Buffer }): Promise<RawResponse> {
    const viaGateway = (req.method !== undefined && req.method !== 'POST') || (req.path !== undefined && req.path !== '/');
    const res = viaGateway
      ? await this.send(req.method ?? 'POST', `/fn/${encodeURIComponent(name)}${req.path ?? '/'}`, { headers: req.headers, body: req.body, auth: false, timeoutMs: null })
      : await this.send('POST', `/v1/functions/${encodeURIComponent(name)}/invoke`, { headers: req.headers, body: req.body ?? Buffer.alloc(0), timeoutMs: null });
    const headers: Record<string, string> = {};
    res.headers.forEach((v, k) => {
      headers[k] = v;
    });
    let body: Buffer;
    try {
      body = Buffer.from(await res.arrayBuffer());
    } catch (err) {
      throw this.networkError(err);
    }
    return { status: res.status, headers, body };
  }

  /** POST /v1/functions/{name}/invoke in async mode: answered once the invocation is durable. */
  invokeAsync(name: string, req: { headers: Record<string, string>; body?: Buffer; idempotencyKey?: string }): Promise<AsyncAccepted> {
    const headers: Record<string, string> = { ...req.headers, 'continuum-invocation-type': 'async' };
    if (req.idempotencyKey !== undefined) headers['idempotency-key'] = req.idempotencyKey;
    return this.json('POST', `/v1/functions/${encodeURIComponent(name)}/invoke`, { headers, body: req.body ?? Buffer.alloc(0) });
  }

  getInvocation(id: string): Promise<InvocationView> {
    return this.json('GET', `/v1/invocations/${encodeURIComponent(id)}`);
  }

  listQueues(): Promise<{ items: QueueView[] }> {
    return this.json('GET', '/v1/queues');
  }

  createQueue(name: string): Promise<QueueView> {
    return this.json('POST', '/v1/queues', jsonBody({ name }));
  }

  getQueue(name: string): Promise<QueueView> {
    return this.json('GET', `/v1/queues/${encodeURIComponent(name)}`);
  }

  async deleteQueue(name: string): Promise<void> {
    await this.json('DELETE', `/v1/queues/${encodeURIComponent(name)}`);
  }

  sendMessages(queue: string, messages: OutgoingMessage[]): Promise<{ items: SentItem[] }> {
    return this.json('POST', `/v1/queues/${encodeURIComponent(queue)}/messages`, jsonBody({ messages }));
  }

  purgeQueue(queue: string): Promise<{ purged: number }> {
    return this.json('DELETE', `/v1/queues/${encodeURIComponent(queue)}/messages`);
  }

  deadLetters(queue: string, limit: number): Promise<{ items: DeadLetterView[] }> {
    return this.json('GET', `/v1/queues/${encodeURIComponent(queue)}/dead-letters`, { query: { limit } });
  }

  /** Move dead letters back onto the queue: the given ids, or all of them. */
  redrive(queue: string, ids?: string[]): Promise<{ redriven: number }> {
    return this.json('POST', `/v1/queues/${encodeURIComponent(queue)}/redrive`, jsonBody(ids && ids.length > 0 ? { ids } : {}));
  }

  /** One page of invocation records, newest first; pass the previous page's nextCursor for the next. */
  listInvocations(filters: InvocationFilters): Promise<{ items: InvocationRecord[]; nextCursor: string | null }> {
    return this.json('GET', '/v1/invocations', { query: { ...filters } });
  }

  invocationLogs(id: string): Promise<{ items: LogItem[] }> {
    return this.json('GET', `/v1/invocations/${encodeURIComponent(id)}/logs`);
  }

  /**
   * GET /v1/logs: stored lines as NDJSON, or with follow a server-sent event stream (backlog, then live
   * lines) that ends only when aborted or when the node shuts down.
   */
  async *logs(params: { function: string; follow?: boolean; since?: number; until?: number; q?: string }, signal?: AbortSignal): AsyncGenerator<LogItem> {
    let res: Response;
    try {
      res = await this.send('GET', '/v1/logs', {
        query: { function: params.function, follow: params.follow ? 1 : undefined, since: params.since, until: params.until, q: params.q },
        headers: { accept: params.follow ? 'text/event-stream' : 'application/x-ndjson' },
        timeoutMs: params.follow ? null : 5 * 60_000,
        signal,
      });
    } catch (err) {
      if (signal?.aborted) return;
      throw err;
    }
    if (!res.ok) throw await this.apiError(res);
    if (!res.body) return;
    const sse = (res.headers.get('content-type') ?? '').startsWith('text/event-stream');
    // NDJSON records end at a newline; SSE events at a blank line.
    const separator = sse ? /\r?\n\r?\n/ : /\r?\n/;
    const decoder = new TextDecoder();
    let buffered = '';
    try {
      for await (const chunk of res.body) {
        buffered += decoder.decode(chunk, { stream: true });
        const parts = buffered.split(separator);
        buffered = parts.pop() ?? '';
        for (const part of parts) {
          if (!sse) {
            if (part.trim()) yield parseLogLine(part.trim());
            continue;
          }
          const event = parseSseEvent(part);
          if (event.type === 'end') return;
          if (event.type === 'log' && event.data !== null) yield parseLogLine(event.data);
        }
      }
    } catch (err) {
      if (signal?.aborted) return;
      if (err instanceof CliError) throw err;
      throw this.networkError(err);
    }
    buffered += decoder.decode();
    if (!sse && buffered.trim()) yield parseLogLine(buffered.trim());
  }
}

export interface InvocationFilters {
  function?: string;
  outcome?: 'ok' | 'error';
  errorCode?: string;
  coldStart?: 'true' | 'false';
  tier?: string;
  since?: number;
  until?: number;
  cursor?: string;
  limit?: number;
}

/** One SSE event block: its `event:` type (default `message`) and its `data:` lines joined; comments are skipped. */
export function parseSseEvent(block: string): { type: string; data: string | null } {
  let type = 'message';
  const data: string[] = [];
  for (const line of block.split(/\r?\n/)) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') type = value;
    else if (field === 'data') data.push(value);
  }
  return { type, data: data.length ? data.join('\n') : null };
}

function parseLogLine(line: string): LogItem {
  try {
    return JSON.parse(line) as LogItem;
  } catch {
    throw new CliError('internal', `the server sent a log line that is not JSON: ${firstLine(line, 120)}`, { exitCode: EXIT_PLATFORM });
  }
}

function jsonBody(value: unknown): Pick<RequestOptions, 'headers' | 'body'> {
  return { headers: { 'content-type': 'application/json' }, body: JSON.stringify(value) };
}

function withHint(err: CliError, hint: string): CliError {
  return new CliError(err.code, err.message + hint, { exitCode: err.exitCode, retryable: err.retryable, details: err.details, status: err.status });
}

/** JSON safe for an HTTP header value: non-ASCII escaped as \uXXXX so the value stays Latin-1 clean. */
export function headerJson(value: unknown): string {
  return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A request body that reports how much of it has been handed to the socket. */
function progressStream(buf: Buffer, onProgress: (sent: number, total: number) => void): ReadableStream<Uint8Array> {
  const chunk = 64 * 1024;
  let offset = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= buf.length) {
        controller.close();
        return;
      }
      const end = Math.min(offset + chunk, buf.length);
      controller.enqueue(buf.subarray(offset, end));
      offset = end;
      onProgress(offset, buf.length);
    },
  });
}
