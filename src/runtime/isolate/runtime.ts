/**
 * The in-isolate runtime: host-bridged globals (console, timers, crypto, fetch, performance), the
 * handler adapters (Workers fetch/queue/scheduled, Lambda, OpenWhisk) with event dispatch, queue
 * bindings, and the entry points of protocol.ts. Evaluated once into the V8 snapshot;
 * `__continuum_install` wires the host bridges after each restore and removes every `__continuum_*`
 * global before tenant code runs.
 */
import { dispatchLine, GC_GLOBAL, ownBuffer, parseDispatchLine, type HostBridges, type WireRequestHead } from './protocol.ts';
import { format } from './format.ts';
import { createCrypto, CryptoKey } from './crypto.ts';
import { setDomainToASCII } from './shims/tr46.js';
import { setHostUtf8Decode } from './shims/host-utf8.js';
import { fromInnerRequest, getResponseState, HeadersList, makeRequest } from './prelude/60-fetch.ts';
import type { PlainResponse } from './adapters.ts';
import { checkDelay, encodeQueueBody } from './events.ts';
import { detect, runBuffered as runHandlerBuffered, servesAsRequest, type Fn, type LoadedModule } from '../handlers.ts';

interface Invocation {
  id: string;
  head: WireRequestHead;
  /** The request's signal; created with the Request, aborted by `__continuum_abort`. */
  ac: AbortController | null;
  bodyController: ReadableStreamDefaultController<Uint8Array> | null;
  chunks: Uint8Array[] | null;
  onBodyEnd: ((body: Uint8Array | null) => void) | null;
  ended: boolean;
  responded: boolean;
  subrequests: number;
  started: number;
  waitUntil: number;
  timers: Set<number>;
}

const MAX_TIMERS = 10_000;
const MAX_LOG = 64 * 1024;
const MAX_URL = 16 * 1024;
const encoder = new TextEncoder();

let bridges: HostBridges | null = null;
/** The invocation `__continuum_dispatch` is running right now, and its response if it completed synchronously. */
let syncTarget: Invocation | null = null;
let syncResult: string | undefined;
let current = '';
let timeOrigin = 0;
/** V8's collector (protocol.ts GC_GLOBAL), taken off the global at install so tenant code never reaches it. */
let collect: ((options: object) => void) | null = null;
const invocations = new Map<string, Invocation>();
const timers = new Map<number, { fn: Fn; args: unknown[]; interval: boolean; ms: number; owner: string }>();
let nextTimer = 1;
const calls = new Map<number, { resolve: (v: [string, ArrayBuffer[]]) => void; reject: (e: unknown) => void; owner: string }>();
let nextCall = 1;
/** Errors the runtime created for a platform reason (egress_denied, subrequest_limit): code wins over function_error. */
const codedErrors = new WeakMap<object, string>();

let loaded: (LoadedModule & {
  /** Outbound fetches and binding calls per invocation. */
  subrequests: number;
}) | null = null;

function host(): HostBridges {
  if (bridges === null) throw new Error('runtime not installed');
  return bridges;
}

function define(name: string, value: unknown): void {
  Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
}

// ---------------------------------------------------------------- console

function log(level: string, args: unknown[]): void {
  let message: string;
  try {
    message = format(args);
  } catch {
    message = '[unformattable log message]';
  }
  if (message.length > MAX_LOG) message = `${message.slice(0, MAX_LOG)}... [truncated]`;
  host().log(current, level, message);
}

const consoleObject: Record<string, unknown> = {};
for (const [method, level] of [
  ['log', 'log'], ['info', 'info'], ['debug', 'debug'], ['warn', 'warn'], ['error', 'error'],
  ['trace', 'debug'], ['dir', 'log'], ['table', 'log'],
] as const) {
  consoleObject[method] = function (...args: unknown[]) {
    log(level, args);
  };
}
const counts = new Map<string, number>();
const timersLabel = new Map<string, number>();
consoleObject.assert = (cond: unknown, ...args: unknown[]) => {
  if (!cond) log('error', ['Assertion failed' + (args.length ? ':' : ''), ...args]);
};
consoleObject.count = (label = 'default') => {
  const n = (counts.get(String(label)) ?? 0) + 1;
  counts.set(String(label), n);
  log('log', [`${String(label)}: ${n}`]);
};
consoleObject.countReset = (label = 'default') => counts.delete(String(label));
consoleObject.time = (label = 'default') => timersLabel.set(String(label), Date.now());
consoleObject.timeEnd = (label = 'default') => {
  const t = timersLabel.get(String(label));
  if (t !== undefined) log('log', [`${String(label)}: ${Date.now() - t}ms`]);
  timersLabel.delete(String(label));
};
consoleObject.timeLog = (label = 'default', ...args: unknown[]) => {
  const t = timersLabel.get(String(label));
  if (t !== undefined) log('log', [`${String(label)}: ${Date.now() - t}ms`, ...args]);
};
consoleObject.group = consoleObject.groupCollapsed = consoleObject.groupEnd = () => {};

function reportError(err: unknown): void {
  log('error', ['Uncaught', err]);
}

// ---------------------------------------------------------------- timers

function setTimer(fn: unknown, ms: unknown, args: unknown[], interval: boolean): number {
  if (typeof fn !== 'function') throw new TypeError('The "callback" argument must be of type function');
  if (timers.size >= MAX_TIMERS) throw new RangeError(`too many pending timers (limit ${MAX_TIMERS})`);
  let delay = Number(ms);
  if (!Number.isFinite(delay) || delay < 1) delay = interval ? 1 : 0;
  delay = Math.min(Math.floor(delay), 2 ** 31 - 1);
  const id = nextTimer++;
  timers.set(id, { fn: fn as Fn, args, interval, ms: delay, owner: current });
  invocations.get(current)?.timers.add(id);
  host().timerSet(id, delay);
  return id;
}

function clearTimer(id: unknown): void {
  const n = Number(id);
  const t = timers.get(n);
  if (!t) return;
  timers.delete(n);
  invocations.get(t.owner)?.timers.delete(n);
  host().timerClear(n);
}

// ---------------------------------------------------------------- host calls that settle later

function hostCall(start: (callId: number) => void): Promise<[string, ArrayBuffer[]]> {
  return new Promise((resolve, reject) => {
    const id = nextCall++;
    calls.set(id, { resolve, reject, owner: current });
    try {
      start(id);
    } catch (err) {
      calls.delete(id);
      reject(err);
    }
  });
}

function errorFromWire(json: string): Error {
  let e: { name?: unknown; message?: unknown; code?: unknown } = {};
  try {
    e = JSON.parse(json);
  } catch {
    e = {};
  }
  const message = typeof e.message === 'string' ? e.message : 'operation failed';
  const name = typeof e.name === 'string' ? e.name : 'Error';
  const err: Error = name === 'TypeError' ? new TypeError(message) : name === 'Error' ? new Error(message) : new DOMException(message, name);
  if (typeof e.code === 'string') codedErrors.set(err, e.code);
  return err;
}

const cryptoApi = createCrypto({
  random: (n) => {
    const out = host().random(n);
    if (!(out instanceof ArrayBuffer) || out.byteLength !== n) throw new Error('entropy unavailable');
    return out;
  },
  subtle: (op, args, buffers) => hostCall((id) => host().subtle(id, JSON.stringify({ op, args }), buffers)),
});

// ---------------------------------------------------------------- outbound fetch

/** Outbound fetches and binding calls share one budget per invocation (the host counts too). */
function countSubrequest(inv: Invocation, what: string): void {
  inv.subrequests++;
  if (loaded && inv.subrequests > loaded.subrequests) {
    const err = new TypeError(`${what}: subrequest_limit: more than ${loaded.subrequests} subrequests in one invocation`);
    codedErrors.set(err, 'subrequest_limit');
    throw err;
  }
}

async function outboundFetch(input: unknown, init?: unknown): Promise<Response> {
  const inv = invocations.get(current);
  if (typeof input === 'string' && input.length > MAX_URL) throw new TypeError(`fetch: URL longer than ${MAX_URL} characters`);
  const req = new Request(input as RequestInfo, init as RequestInit | undefined);
  if (inv) countSubrequest(inv, 'fetch failed');
  const headJson = JSON.stringify({ method: req.method, url: req.url, headers: [...req.headers] });
  const body = req.body === null ? null : await req.arrayBuffer();
  const [json, buffers] = await hostCall((id) => host().fetch(id, current, headJson, body));
  const head = JSON.parse(json) as { status: number; headers: Array<[string, string]> };
  return new Response(buffers[0] ?? null, { status: head.status, headers: head.headers });
}

// ---------------------------------------------------------------- queue bindings

interface OutgoingMessage {
  bytes: Uint8Array;
  contentType: string;
  delaySeconds: number | undefined;
}

/**
 * Sends through the binding NAME: only the name and copied bytes cross; the host resolves the name
 * through the function's own grants. Rejections carry the platform's error code as `err.code`.
 */
async function queueSend(name: string, messages: OutgoingMessage[]): Promise<{ ids: string[] }> {
  const inv = invocations.get(current);
  if (inv) countSubrequest(inv, 'queue send failed');
  const meta = JSON.stringify(messages.map(({ contentType, delaySeconds }) => ({ contentType, delaySeconds })));
  const buffers = messages.map((m) => ownBuffer(m.bytes));
  const [json] = await withCode(hostCall((id) => host().queueSend(id, current, name, meta, buffers)));
  const ids = (JSON.parse(json) as { ids?: unknown }).ids;
  return { ids: Array.isArray(ids) ? ids.map(String) : [] };
}

/** Binding calls reject with the platform's error code as `err.code` (e.g. not_found, call_depth_exceeded). */
async function withCode<T>(call: Promise<T>): Promise<T> {
  try {
    return await call;
  } catch (err) {
    const code = err !== null && typeof err === 'object' ? codedErrors.get(err) : undefined;
    if (code !== undefined) Object.defineProperty(err, 'code', { value: code, enumerable: true, configurable: true, writable: true });
    throw err;
  }
}

// ---------------------------------------------------------------- service bindings

/** Statuses whose responses cannot carry a body (`new Response(body, …)` would throw). */
const NULL_BODY_STATUS = new Set([101, 204, 205, 304]);

/**
 * `env.NAME.fetch(input, init)` for a service binding: the request (body buffered) goes to the host,
 * which invokes the bound function through the node's scheduler — no network hop. Whatever the callee
 * answers, errors included, comes back as a Response, as over HTTP; the call rejects (with `err.code`)
 * only when it cannot be made: no such function, the call-depth limit, the subrequest limit.
 */
function serviceFetch(name: string, input: unknown, init?: unknown): Promise<Response> {
  return withCode(callService(name, input, init));
}

async function callService(name: string, input: unknown, init?: unknown): Promise<Response> {
  const inv = invocations.get(current);
  if (typeof input === 'string' && input.length > MAX_URL) throw new TypeError(`fetch: URL longer than ${MAX_URL} characters`);
  const req = new Request(input as RequestInfo, init as RequestInit | undefined);
  if (inv) countSubrequest(inv, 'fetch failed');
  const headJson = JSON.stringify({ method: req.method, url: req.url, headers: [...req.headers] });
  const body = req.body === null ? null : await req.arrayBuffer();
  const [json, buffers] = await hostCall((id) => host().serviceFetch(id, current, name, headJson, body));
  const head = JSON.parse(json) as { status: number; headers: Array<[string, string]> };
  return new Response(NULL_BODY_STATUS.has(head.status) ? null : (buffers[0] ?? null), { status: head.status, headers: head.headers });
}

function serviceBinding(name: string): object {
  return Object.freeze({
    fetch: (input: unknown, init?: unknown) => serviceFetch(name, input, init),
  });
}

/** `env.NAME` for a queue binding: Cloudflare's Queue producer API, plain JS inside the isolate. */
function queueBinding(name: string): object {
  return Object.freeze({
    async send(body: unknown, options?: { contentType?: unknown; delaySeconds?: number }): Promise<{ ids: string[] }> {
      const delaySeconds = checkDelay(options, 'send');
      return queueSend(name, [{ ...encodeQueueBody(body, options?.contentType), delaySeconds }]);
    },
    async sendBatch(messages: Iterable<{ body: unknown; contentType?: unknown; delaySeconds?: number }>, options?: { delaySeconds?: number }): Promise<{ ids: string[] }> {
      const batchDelay = checkDelay(options, 'sendBatch');
      if (messages === null || typeof messages !== 'object' || typeof (messages as Iterable<unknown>)[Symbol.iterator] !== 'function') {
        throw new TypeError('sendBatch: expected an iterable of { body, contentType?, delaySeconds? }');
      }
      const list: OutgoingMessage[] = [];
      for (const m of messages) {
        if (m === null || typeof m !== 'object') throw new TypeError('sendBatch: each message must be an object { body, contentType?, delaySeconds? }');
        const delaySeconds = checkDelay(m, 'sendBatch') ?? batchDelay;
        list.push({ ...encodeQueueBody(m.body, m.contentType), delaySeconds });
      }
      if (list.length === 0) throw new TypeError('sendBatch: no messages to send');
      return queueSend(name, list);
    },
  });
}

// ---------------------------------------------------------------- invocation lifecycle

function describe(err: unknown): string {
  try {
    if (err instanceof Error) {
      const name = String(err.name);
      const message = String(err.message);
      return (message ? `${name}: ${message}` : name).slice(0, 2000);
    }
    return `Uncaught ${format([err])}`.slice(0, 2000);
  } catch {
    return 'Uncaught exception';
  }
}

function codeOf(err: unknown): string {
  return err !== null && (typeof err === 'object' || typeof err === 'function') ? (codedErrors.get(err as object) ?? 'function_error') : 'function_error';
}

function end(inv: Invocation, error: { code: string; message: string } | null): void {
  if (inv.ended) return;
  inv.ended = true;
  invocations.delete(inv.id);
  host().finish(inv.id, error === null ? null : JSON.stringify(error));
  if (inv.waitUntil === 0) clearInvocationTimers(inv);
}

function clearInvocationTimers(inv: Invocation): void {
  for (const id of inv.timers) {
    timers.delete(id);
    host().timerClear(id);
  }
  inv.timers.clear();
}

function fail(inv: Invocation, err: unknown): void {
  end(inv, { code: codeOf(err), message: describe(err) });
}

/** Ends an invocation whose whole response went to the host in one piece (no finish call follows). */
function endedWhole(inv: Invocation): void {
  inv.ended = true;
  invocations.delete(inv.id);
  if (inv.waitUntil === 0) clearInvocationTimers(inv);
}

async function sendResponse(inv: Invocation, res: unknown): Promise<void> {
  if (inv.ended) return;
  if (!(res instanceof Response)) throw new TypeError('The handler did not return a Response');
  const state = getResponseState(res);
  const headJson = JSON.stringify({ status: res.status, headers: headerPairs(state.headersList) });
  inv.responded = true;
  // Fast path: a body made from a string or bytes goes out whole, without a stream reader.
  // (A body whose stream nobody has touched yet is unused; asking `bodyUsed` would create the stream.)
  // A Response made with a null body (204, 304…) has no body state at all, not a null one.
  const body0 = state.body as ReturnType<typeof getResponseState>['body'] | undefined;
  let source: string | Uint8Array | null | undefined; // undefined: stream the body
  if (body0 === null || body0 === undefined) source = null;
  else if (body0.lazyStreamPending === true || !res.bodyUsed) {
    const s = body0.source;
    if (typeof s === 'string' || s instanceof Uint8Array) source = s;
  }
  if (source !== undefined) {
    if (syncTarget === inv && (source === null || typeof source === 'string')) {
      // Answered before dispatch returned: the response is dispatch's return value (no host call).
      syncResult = source === null ? headJson : `${headJson}\0${source}`;
      endedWhole(inv);
      return;
    }
    const bytes = source === null ? null : typeof source === 'string' ? encoder.encode(source) : new Uint8Array(source);
    host().respond(inv.id, headJson, bytes === null ? null : bytes.buffer, true);
    endedWhole(inv);
    return;
  }
  if (!host().respond(inv.id, headJson)) return;
  const body = res.body;
  if (body !== null) {
    const reader = body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (inv.ended) {
        await reader.cancel().catch(() => {});
        return;
      }
      if (!(value instanceof Uint8Array)) throw new TypeError('Response body chunks must be Uint8Array');
      if (value.byteLength === 0) continue;
      if (!host().chunk(inv.id, ownBuffer(value))) {
        inv.ended = true;
        invocations.delete(inv.id);
        clearInvocationTimers(inv);
        await reader.cancel().catch(() => {});
        return;
      }
    }
  }
  end(inv, null);
}

/**
 * The response's headers as `[...response.headers]` yields them (lower-case names in order, values
 * combined, each set-cookie apart), read from the header list without the iterator's machinery.
 */
function headerPairs(list: ReturnType<typeof getResponseState>['headersList']): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  for (const [name, entry] of list.headersMap) {
    if (name === 'set-cookie' && list.cookies !== null) for (const cookie of list.cookies) pairs.push([name, cookie]);
    else pairs.push([name, entry.value]);
  }
  if (pairs.length > 1) pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return pairs;
}

function sendPlain(inv: Invocation, res: PlainResponse): void {
  if (inv.ended) return;
  inv.responded = true;
  host().respond(inv.id, JSON.stringify({ status: res.status, headers: res.headers }), ownBuffer(res.body), true);
  endedWhole(inv);
}

function concat(chunks: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const c of chunks) n += c.byteLength;
  const out = new Uint8Array(n);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.byteLength;
  }
  return out;
}

/** Methods undici normalizes without validation; others take the full constructor. */
const FAST_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH']);
/** RFC 9110 token (what `Headers` accepts as a name). */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** What `Headers` would reject (NUL, CR, LF, not a ByteString) or normalize (surrounding whitespace). */
const HEADER_VALUE_SLOW = /[\0\r\n\u0100-\uffff]|^[\t ]|[\t ]$/;
/**
 * Parsed request URLs by string. A URL record inside a Request is never handed to tenant code
 * (`request.url` serializes it) and undici never mutates it, so identical URLs can share one record.
 */
const urlCache = new Map<string, URL>();
const URL_CACHE_MAX = 256;

function parsedUrl(url: string): URL | null {
  let u = urlCache.get(url);
  if (u !== undefined) return u;
  try {
    u = new URL(url);
  } catch {
    return null;
  }
  if (u.username !== '' || u.password !== '') return null;
  if (urlCache.size >= URL_CACHE_MAX) urlCache.clear();
  urlCache.set(url, u);
  return u;
}

/**
 * The incoming Request. Host-built heads that `new Request(url, { method, headers })` would accept
 * unchanged become undici's inner request directly (same state as the constructor produces: mode
 * 'cors', guard 'request'); anything else goes through the constructor, errors included.
 */
function incomingRequest(inv: Invocation, body: ReadableStream<Uint8Array> | null): Request {
  const head = inv.head;
  const ac = new AbortController();
  inv.ac = ac;
  fast: if (FAST_METHODS.has(head.method)) {
    const url = parsedUrl(head.url);
    if (url === null) break fast;
    const list = new HeadersList();
    const pairs = head.headers;
    for (let i = 0; i < pairs.length; i++) {
      const [name, value] = pairs[i]!;
      if (!HEADER_NAME.test(name) || HEADER_VALUE_SLOW.test(value)) break fast;
      list.append(name, value, false);
    }
    const inner = makeRequest({ method: head.method, headersList: list, urlList: [url], mode: 'cors', body: body === null ? null : { stream: body, source: null, length: null } });
    return fromInnerRequest(inner, undefined, ac.signal, 'request');
  }
  const init: RequestInit & { duplex?: string } = { method: head.method, headers: head.headers, signal: ac.signal };
  if (body !== null) {
    init.body = body;
    init.duplex = 'half';
  }
  return new Request(head.url, init);
}

function respondWith(inv: Invocation, res: unknown): void {
  sendResponse(inv, res).catch((err) => fail(inv, err));
}

/** The Workers `ctx` (ExecutionContext): waitUntil keeps the invocation's timers alive after it answered. */
function executionContext(inv: Invocation): Record<string, unknown> {
  return {
    waitUntil(promise: unknown) {
      inv.waitUntil++;
      Promise.resolve(promise)
        .catch((err) => {
          current = inv.id;
          reportError(err);
        })
        .finally(() => {
          inv.waitUntil--;
          if (inv.ended && inv.waitUntil === 0) clearInvocationTimers(inv);
        });
    },
    passThroughOnException() {},
    props: {},
  };
}

function runFetch(inv: Invocation, hasBody: boolean): void {
  const l = loaded!;
  if (l.handler === null) {
    fail(inv, new TypeError('No fetch handler: this module exports only event handlers; add fetch(request, env, ctx) to its default export to serve requests'));
    return;
  }
  let body: ReadableStream<Uint8Array> | null = null;
  if (hasBody && inv.head.method !== 'GET' && inv.head.method !== 'HEAD') {
    body = new ReadableStream<Uint8Array>({
      start(controller) {
        inv.bodyController = controller;
      },
    });
  }
  let result: unknown;
  try {
    const request = incomingRequest(inv, body);
    result = Reflect.apply(l.handler, l.target, [request, l.env, executionContext(inv)]);
  } catch (err) {
    fail(inv, err);
    return;
  }
  if (result instanceof Response) respondWith(inv, result);
  else
    Promise.resolve(result).then(
      (res) => respondWith(inv, res),
      (err) => fail(inv, err),
    );
}

/** Invocations that need the whole body first: every format but fetch, and queue/scheduled events. */
function runBuffered(inv: Invocation, body: Uint8Array | null): void {
  runHandlerBuffered(loaded!, inv, body, {
    executionContext: () => executionContext(inv),
    sendPlain: (res) => sendPlain(inv, res),
    fail: (err) => fail(inv, err),
    log,
    describe,
  });
}

// ---------------------------------------------------------------- require / module loading

function unavailableRequire(name: unknown): never {
  const err = new Error(`Cannot require '${String(name).slice(0, 200)}': modules are unavailable in the isolate tier; bundle dependencies at build time, or deploy with tier 'process' for Node.js built-ins`);
  (err as Error & { code?: string }).code = 'MODULE_NOT_FOUND';
  throw err;
}

// ---------------------------------------------------------------- entry points

/**
 * Every host call names the invocation it runs for. `current` stays set after the entry function
 * returns, because the microtasks ivm drains at the end of the same call (the handler's awaits) belong
 * to that invocation too; the next entry overwrites it.
 */
function enter<T>(id: string, fn: () => T): T {
  current = id;
  return fn();
}

const entryPoints = {
  __continuum_install(b: HostBridges): void {
    bridges = b;
    timeOrigin = Date.now();
    setDomainToASCII((d: string) => b.domainToASCII(d));
    setHostUtf8Decode((bytes: ArrayBuffer, fatal: boolean) => b.utf8(bytes, fatal));
    for (const name of Object.keys(entryPoints)) delete (globalThis as Record<string, unknown>)[name];
    const gc = (globalThis as Record<string, unknown>)[GC_GLOBAL];
    if (typeof gc === 'function') {
      collect = gc as (options: object) => void;
      Object.defineProperty(globalThis, GC_GLOBAL, { value: undefined, writable: false });
    }
    delete (globalThis as Record<string, unknown>).SharedArrayBuffer;
    delete (globalThis as Record<string, unknown>).Atomics;
  },

  __continuum_load(factory: unknown, optionsJson: string): string {
    const o = JSON.parse(optionsJson);
    if (typeof factory !== 'function') throw new Error('bundle did not compile to a module factory');
    const vars: Record<string, string> = Object.create(null);
    for (const [k, v] of Object.entries(o.env ?? {})) vars[k] = String(v);
    Object.freeze(vars);
    define('process', Object.freeze({ env: vars }));
    const env: Record<string, unknown> = Object.assign(Object.create(null), vars);
    for (const name of Array.isArray(o.bindings) ? o.bindings : []) env[String(name)] = queueBinding(String(name));
    for (const name of Array.isArray(o.services) ? o.services : []) env[String(name)] = serviceBinding(String(name));
    Object.freeze(env);
    const module = { exports: {} as unknown };
    enter('', () => Reflect.apply(factory as Fn, undefined, [module, module.exports, unavailableRequire]));
    const found = detect(module.exports, o.format ?? 'auto', o.exportName ?? null);
    loaded = {
      ...found,
      vars,
      env,
      functionName: String(o.functionName ?? ''),
      versionId: String(o.versionId ?? ''),
      memoryLimitMb: Number(o.memoryLimitMb ?? 128),
      timeoutMs: Number(o.timeoutMs ?? 30000),
      subrequests: Number(o.subrequests ?? 50),
      payload: o.payload === '1.0' ? '1.0' : '2.0',
    };
    return JSON.stringify({ format: found.format, exportName: found.exportName });
  },

  __continuum_dispatch(line: string): string | undefined {
    if (loaded === null) throw new Error('no module loaded');
    const { invocationId: id, hasBody, headJson } = parseDispatchLine(line);
    const head = JSON.parse(headJson) as WireRequestHead;
    const inv: Invocation = {
      id, head, ac: null, bodyController: null, chunks: null, onBodyEnd: null,
      ended: false, responded: false, subrequests: 0, started: Date.now(), waitUntil: 0, timers: new Set(),
    };
    invocations.set(id, inv);
    syncTarget = inv;
    syncResult = undefined;
    try {
      enter(id, () => {
        // Fetch handlers get async invokes as the request itself; queue and cron events go to their methods.
        if (servesAsRequest(loaded!, head)) runFetch(inv, hasBody);
        else if (!hasBody) runBuffered(inv, null);
        else {
          inv.chunks = [];
          inv.onBodyEnd = (body) => runBuffered(inv, body);
        }
      });
    } finally {
      syncTarget = null;
    }
    const out = syncResult;
    syncResult = undefined;
    return out;
  },

  /**
   * Prepays a fresh context's first request (inline caches, lazily made objects, regexp code: ≈ 2 ms
   * that V8's snapshot does not keep): synthetic requests through the fetch path, with a built-in
   * handler and host calls stubbed, before any module is loaded. Nothing of them stays behind.
   */
  __continuum_warm(): void {
    if (loaded !== null || bridges === null) return;
    const real = bridges;
    const none = (): undefined => undefined;
    bridges = { ...real, log: none, timerSet: none, timerClear: none, subtle: none, fetch: none, queueSend: none, respond: () => true, chunk: () => true, finish: none };
    try {
      loaded = {
        format: 'fetch', exportName: 'default', target: undefined, vars: {}, env: {}, functionName: '', versionId: '',
        memoryLimitMb: 128, timeoutMs: 30000, subrequests: 0, payload: '2.0',
        handler: () => new Response('warm', { headers: { 'content-type': 'text/plain; charset=utf-8' } }),
      };
      entryPoints.__continuum_dispatch(dispatchLine('warm', false, null, '{"method":"GET","url":"http://warm.up/","headers":[["host","warm.up"],["accept","*/*"]]}'));
    } finally {
      loaded = null;
      bridges = real;
      invocations.clear();
      urlCache.clear();
      current = '';
    }
  },

  __continuum_trim(): boolean {
    if (collect === null) return false;
    collect({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    return true;
  },

  __continuum_push(id: string, chunk: ArrayBuffer | null): void {
    const inv = invocations.get(id);
    if (!inv) return;
    enter(id, () => {
      if (inv.chunks !== null) {
        if (chunk === null) {
          const body = concat(inv.chunks);
          inv.chunks = null;
          inv.onBodyEnd?.(body);
        } else {
          inv.chunks.push(new Uint8Array(chunk));
        }
        return;
      }
      const c = inv.bodyController;
      if (c === null) return;
      try {
        if (chunk === null) {
          c.close();
          inv.bodyController = null;
        } else {
          c.enqueue(new Uint8Array(chunk));
        }
      } catch {
        inv.bodyController = null; // the handler cancelled the body
      }
    });
  },

  __continuum_fire(timerId: number): void {
    const t = timers.get(timerId);
    if (!t) return;
    if (!t.interval) {
      timers.delete(timerId);
      invocations.get(t.owner)?.timers.delete(timerId);
    }
    enter(t.owner, () => {
      try {
        Reflect.apply(t.fn, undefined, t.args);
      } catch (err) {
        reportError(err);
      }
      if (t.interval && timers.has(timerId)) host().timerSet(timerId, t.ms);
    });
  },

  __continuum_settle(callId: number, ok: boolean, json: string, buffers: ArrayBuffer[]): void {
    const c = calls.get(callId);
    if (!c) return;
    calls.delete(callId);
    enter(c.owner, () => {
      if (ok) c.resolve([json, buffers]);
      else c.reject(errorFromWire(json));
    });
  },

  __continuum_abort(id: string, reason: string): void {
    const inv = invocations.get(id);
    if (!inv) return;
    inv.ended = true;
    invocations.delete(id);
    enter(id, () => {
      const err = new DOMException(reason, 'AbortError');
      try {
        inv.bodyController?.error(err);
      } catch {
        // already closed
      }
      inv.ac?.abort(err);
      clearInvocationTimers(inv);
    });
  },
};

// ---------------------------------------------------------------- globals

define('console', consoleObject);
define('reportError', reportError);
define('setTimeout', (fn: unknown, ms?: unknown, ...args: unknown[]) => setTimer(fn, ms, args, false));
define('setInterval', (fn: unknown, ms?: unknown, ...args: unknown[]) => setTimer(fn, ms, args, true));
define('clearTimeout', clearTimer);
define('clearInterval', clearTimer);
define('crypto', cryptoApi.crypto);
define('Crypto', Object.getPrototypeOf(cryptoApi.crypto).constructor);
define('SubtleCrypto', Object.getPrototypeOf(cryptoApi.subtle).constructor);
define('CryptoKey', CryptoKey);
define('fetch', outboundFetch);
define('performance', Object.freeze({
  now: () => Date.now() - timeOrigin,
  get timeOrigin() {
    return timeOrigin;
  },
  toJSON: () => ({ timeOrigin }),
}));
for (const [name, fn] of Object.entries(entryPoints)) define(name, fn);
