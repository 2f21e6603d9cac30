/**
 * The contract between the isolate host (src/drivers/isolate, Node side) and the in-isolate runtime
 * (this folder, bundled into the prelude). Only plain data crosses: strings, numbers, booleans, null and
 * ArrayBuffers (copied). No host object, Reference or function is ever reachable from tenant code: the
 * host hands bridges to `__continuum_install`, which captures them in closures and deletes every
 * `__continuum_*` global before tenant code runs.
 *
 * JSON-typed parameters below are strings holding JSON (cheapest way across, see
 * shared/reference/isolate-prelude.md §4.2).
 *
 * This file is type-only; both sides import it with `import type`.
 */

/** Request head as it crosses into the isolate (JSON). */
export interface WireRequestHead {
  method: string;
  url: string;
  headers: Array<[string, string]>;
  /** Client address for Lambda `sourceIp` (optional). */
  clientIp?: string;
  /** Present for event invocations; mirrors EventHead in src/core/driver.ts, whose doc is the contract. */
  event?: WireEventHead;
}

export type WireEventHead =
  | { kind: 'queue'; queue: string }
  | { kind: 'scheduled'; cron: string; scheduledTime: number; invocationId?: string }
  | { kind: 'invoke'; attempt: number; idempotencyKey: string | null; invocationId?: string };

/** One message of a queue batch (the body of a `queue` event is `{ "messages": [...] }`); mirrors core's WireQueueMessage. */
export interface WireQueueMessage {
  id: string;
  /** UTF-8 text, or base64 when `encoding` is base64. */
  body: string;
  encoding: 'utf8' | 'base64';
  contentType: string | null;
  attempt: number;
  /** Epoch ms of the first enqueue. */
  timestamp: number;
  attributes: Record<string, string>;
  idempotencyKey: string | null;
}

/**
 * The answer to a `queue` event (JSON body; status 200 when the handler resolved, 500 when it threw).
 * Messages in neither list are acked on 200 and retried on 500. `delaySeconds` is absent when the
 * function named none (the trigger's backoff applies).
 */
export interface WireBatchOutcome {
  acked: string[];
  retried: Array<{ id: string; delaySeconds?: number }>;
  error: string | null;
}

/** Response head as it crosses out of the isolate (JSON). */
export interface WireResponseHead {
  status: number;
  headers: Array<[string, string]>;
}

/** A failure reported by the runtime (JSON); code is one of src/core/errors.ts, e.g. function_error. */
export interface WireError {
  code: string;
  message: string;
}

/** Per-instance facts the runtime needs at load (JSON). */
export interface WireLoadOptions {
  functionName: string;
  versionId: string;
  /** 'auto' is resolved by the runtime from the module's exports. */
  format: 'auto' | 'fetch' | 'lambda' | 'openwhisk';
  exportName: string | null;
  env: Record<string, string>;
  memoryLimitMb: number;
  timeoutMs: number;
  /** Outbound fetches allowed per invocation; the runtime counts, the host enforces too. */
  subrequests: number;
  /** Lambda API Gateway payload format: '2.0' (HTTP API, default) or '1.0' (REST API). */
  payload?: '1.0' | '2.0';
  /** CPU-time budget per invocation in ms (host-enforced; default FUNCTION_DEFAULTS.limits.cpuMs). */
  cpuMs?: number;
  /** Response body cap in bytes (host-enforced; default FUNCTION_DEFAULTS.limits.responseBytes). */
  responseBytes?: number;
  /** Names of the queue bindings, visible as `env.<NAME>`; the host resolves them to queues. */
  bindings?: string[];
  /** Names of the service bindings (other functions), visible as `env.<NAME>` with `fetch`. */
  services?: string[];
}

/** Bridges the host installs after the isolate is restored from the snapshot (each an ivm.Callback). */
export interface HostBridges {
  /** Captured console output, attributed to an invocation ('' when none is current). */
  log(invocationId: string, level: string, message: string): void;
  /** Timers: the host schedules and later calls `__continuum_fire(id)`. */
  timerSet(id: number, ms: number): void;
  timerClear(id: number): void;
  /** n random bytes from the host CSPRNG. */
  random(n: number): ArrayBuffer;
  /** WHATWG domain-to-ASCII of a non-ASCII host name ('' on failure); replaces tr46's tables. */
  domainToASCII(domain: string): string;
  /** UTF-8 bytes decoded natively (a leading BOM kept); null when `fatal` and they are not well-formed. */
  utf8(bytes: ArrayBuffer, fatal: boolean): string | null;
  /**
   * Start a crypto.subtle operation on the host's WebCrypto. argsJson is `{"op", "args"}` where binary
   * arguments are `{"$buf": i}` (index into buffers) and keys `{"$key": handle}`. Returns at once; the
   * host later calls `__continuum_settle(callId, ok, json, buffers)` (on failure json is a
   * DOMException-shaped `{name, message}`).
   *
   * Async results come back through an entry point, not a promise, so that every run of tenant code
   * happens inside a host call that carries the CPU-time limit.
   */
  subtle(callId: number, argsJson: string, buffers: ArrayBuffer[]): void;
  /**
   * Start an outbound fetch; settles like subtle with head JSON `{status, headers}` and `[body]`, or
   * rejects with `{name: 'TypeError', message, code}` (code e.g. egress_denied, subrequest_limit).
   */
  fetch(callId: number, invocationId: string, headJson: string, body: ArrayBuffer | null): void;
  /**
   * Send through the queue binding `binding` (a NAME, never a queue): metaJson is
   * `[{ "contentType", "delaySeconds"? }…]` with one buffer per message. Counts as a subrequest. Settles
   * like fetch with `{ "ids": [...] }`, or rejects with `{ name, message, code }` (a code of src/core/errors.ts).
   */
  queueSend(callId: number, invocationId: string, binding: string, metaJson: string, buffers: ArrayBuffer[]): void;
  /**
   * Call the function behind the service binding `binding` (a NAME) with a request: headJson is
   * `{ method, url, headers }`, body the whole request body or null. Counts as a subrequest. Settles like
   * fetch with `{ status, headers }` and `[body]`, or rejects with `{ name, message, code }`.
   */
  serviceFetch(callId: number, invocationId: string, binding: string, headJson: string, body: ArrayBuffer | null): void;
  /**
   * Response head for an invocation. Returns false when the host no longer wants the response.
   * With `complete` true, `wholeBody` is the whole body (null for none) and the invocation is done:
   * the host records head, body and a successful finish in one call.
   */
  respond(invocationId: string, headJson: string, wholeBody?: ArrayBuffer | null, complete?: boolean): boolean;
  /** One chunk of the response body. Returns false to stop (e.g. output_too_large): the runtime cancels the body. */
  chunk(invocationId: string, bytes: ArrayBuffer): boolean;
  /** The invocation ended: errorJson is null on success, else a WireError. */
  finish(invocationId: string, errorJson: string | null): void;
}

/**
 * Globals the prelude defines. The host takes a Reference to each right after restore and the runtime
 * deletes them from globalThis inside `__continuum_install`.
 */
export interface RuntimeEntryPoints {
  __continuum_install(bridges: HostBridges): void;
  /**
   * Load the tenant bundle. `factory` is the compiled CommonJS wrapper
   * `(function (module, exports, require) { … })`. Returns the resolved format as JSON
   * `{ "format": "fetch" | "lambda" | "openwhisk", "exportName": string }` or throws a WireError-shaped
   * error (code bad_bundle) when no handler is found.
   */
  __continuum_load(factory: unknown, optionsJson: string): string;
  /**
   * Start an invocation, given as one dispatch line (see dispatchLine). When hasBody, the host follows
   * with `__continuum_push` calls. When the handler answered with a fixed string body (or none) before
   * this returns, the return value is the whole, successful response: `headJson` or
   * `headJson + "\0" + body` (JSON never holds a raw NUL); no respond/chunk/finish call is made for it.
   * Otherwise undefined.
   */
  __continuum_dispatch(line: string): string | undefined;
  /** Run synthetic requests through the fetch path before any module is loaded (prepays the first request). */
  __continuum_warm(): void;
  /**
   * Give the heap's unused pages back (V8's last-resort collection: the memory-reducing full GC that
   * shrinks the young generation). False when the process was started without
   * `--expose-gc-as=${GC_GLOBAL}` (the worker is; install takes the collector off the global).
   */
  __continuum_trim(): boolean;
  /** Push one request-body chunk; null ends the body. */
  __continuum_push(invocationId: string, chunk: ArrayBuffer | null): void;
  /** A timer the runtime set has fired. */
  __continuum_fire(timerId: number): void;
  /** A host call started through `subtle`, `fetch` or `queueSend` has completed. */
  __continuum_settle(callId: number, ok: boolean, json: string, buffers: ArrayBuffer[]): void;
  /** The client went away or a host limit hit: abort the invocation's signal. */
  __continuum_abort(invocationId: string, reason: string): void;
}

/**
 * The global name under which the worker process has V8 expose its collector (`node
 * --expose-gc-as=<name>`, which must be given at start). V8 makes it a non-configurable global in every
 * context, so install keeps the function and leaves the name frozen to undefined.
 */
export const GC_GLOBAL = '__continuum_gc';

/**
 * A dispatch as one string: `invocationId \n hasBody (0|1) \n traceparent (may be empty) \n headJson`.
 * The driver frames it so, the worker hands the frame's text on untouched, and it crosses into the
 * isolate as a single argument (each argument of an isolate call is copied separately).
 */
export function dispatchLine(invocationId: string, hasBody: boolean, traceparent: string | null, headJson: string): string {
  return `${invocationId}\n${hasBody ? 1 : 0}\n${traceparent ?? ''}\n${headJson}`;
}

/** The parts of a dispatch line. */
export function parseDispatchLine(line: string): { invocationId: string; hasBody: boolean; traceparent: string; headJson: string } {
  const i1 = line.indexOf('\n');
  const i2 = line.indexOf('\n', i1 + 1);
  const i3 = line.indexOf('\n', i2 + 1);
  return { invocationId: line.slice(0, i1), hasBody: line.charCodeAt(i1 + 1) === 49, traceparent: line.slice(i2 + 1, i3), headJson: line.slice(i3 + 1) };
}

/**
 * The view's bytes as a whole ArrayBuffer (what crosses the isolate boundary): its own buffer when it spans
 * it, else a copy of just the view — never `slice()`, which on a Buffer is a view of the whole backing buffer.
 */
export function ownBuffer(v: Uint8Array): ArrayBuffer {
  return v.byteOffset === 0 && v.byteLength === v.buffer.byteLength && v.buffer instanceof ArrayBuffer ? v.buffer : new Uint8Array(v).buffer;
}
