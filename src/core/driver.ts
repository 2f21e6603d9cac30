/**
 * The SandboxDriver interface: one per tier of the isolation continuum. The scheduler drives instances
 * only through this interface; every driver will pass one conformance suite (src/drivers/conformance.ts, with the second tier).
 * Everything here is plain data or async iterables of bytes, so implementations may run the function in
 * another thread, process, container or VM.
 */
import type { ErrorCode } from './errors.ts';
import type { Binding, FunctionConfig } from './config.ts';
import type { HandlerFormat, LogLevel, Tier } from './types.ts';

export interface DriverStatus {
  tier: Tier;
  available: boolean;
  /** Why the tier is unavailable, or notes on how it runs (e.g. gVisor platform). */
  reason?: string;
  instances: number;
}

/** Everything an instance needs; built by the scheduler from a version record and its bundle. */
export interface InstanceSpec {
  instanceId: string;
  functionName: string;
  versionId: string;
  /** The bundled module, as a CommonJS script (see src/build). */
  code: string;
  /** Files beside the bundle (native addons at `addons/<sha256>.node`); only tiers that run them get any. */
  files?: Array<{ path: string; bytes: Uint8Array }>;
  format: HandlerFormat;
  exportName: string;
  /** API Gateway event shape for Lambda handlers. */
  lambdaPayload: '1.0' | '2.0';
  limits: FunctionConfig['limits'];
  /** Concurrent invocations this instance must accept. */
  concurrency: number;
  env: Record<string, string>;
  /** Bindings visible as `env.<NAME>`: the resources this function was granted (queues, other functions). */
  bindings: Record<string, BindingTarget>;
  /** Container tiers: a stored image (`sha256:<hex>`) that serves HTTP on `$PORT`, run instead of `code`. */
  image?: string;
}

export type BindingTarget = Binding;

/** One message a function sends through a queue binding (`env.ORDERS.send(body, { delaySeconds })`). */
export interface BindingMessage {
  body: Uint8Array;
  contentType: string;
  delayMs?: number;
}

/**
 * What the host offers instances beyond running code: the driver calls these when tenant code uses a
 * binding. The driver resolves binding names through the instance's own spec, so a sandbox can only reach
 * what its function was granted.
 */
export interface InstanceServices {
  /**
   * Durably enqueue; resolves with message ids. Rejects with a ContinuumError (e.g. not_found,
   * payload_too_large). `traceparent` is the sending invocation's trace context, when it has one: it
   * travels in each message's attributes.
   */
  sendToQueue(functionName: string, queue: string, messages: BindingMessage[], traceparent?: string): Promise<string[]>;
  /**
   * A service-binding call: invoke `target`'s current version with a buffered request and resolve with
   * its whole response (capped by the target's own response limit). Rejects with a ContinuumError when
   * the call cannot be made or the target fails (not_found, call_depth_exceeded, the target's error code).
   */
  callFunction?(caller: CallerContext, target: string, request: ServiceRequest): Promise<ServiceResponse>;
}

/** Who makes a service-binding call: the records of the callee name it (the service map). */
export interface CallerContext {
  functionName: string;
  /** The calling invocation; null when it had ended (a call from `ctx.waitUntil` after the answer). */
  invocationId: string | null;
  /** The caller's own depth (0 for a request from outside). */
  depth: number;
  traceparent?: string;
}

export interface ServiceRequest {
  method: string;
  url: string;
  headers: Array<[string, string]>;
  body: Uint8Array | null;
}

export interface ServiceResponse {
  status: number;
  headers: Array<[string, string]>;
  body: Uint8Array;
}

/**
 * An event invocation: the head carries `event`, the body the payload.
 * - `queue`: body is JSON `{ "messages": [WireQueueMessage…] }`; the runtime answers 200 (handler resolved)
 *   or 500 (it threw) with JSON `{ "acked": [id…], "retried": [{ "id", "delaySeconds" }], "error": string|null }`;
 *   messages in neither list are acked on 200 and retried on 500.
 * - `scheduled`: no body; success or a function error, as for HTTP.
 * - `invoke` (async invocation, CloudEvent to a function): the head is a POST with the payload as body;
 *   fetch handlers see that request, Lambda handlers get the JSON-parsed payload as the event, OpenWhisk
 *   `main` gets it as params; Lambda and OpenWhisk results come back as a 200 JSON body.
 * `invocationId` is the delivery's id, the same on every attempt (the message id); the function sees it
 * (e.g. Lambda `context.awsRequestId`), while InvokeRequest.invocationId stays unique per execution.
 */
export type EventHead =
  | { kind: 'queue'; queue: string }
  | { kind: 'scheduled'; cron: string; scheduledTime: number; invocationId?: string }
  | { kind: 'invoke'; attempt: number; idempotencyKey: string | null; invocationId?: string };

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

/** Phases of a cold start, in milliseconds, as measured by the driver. */
export interface InitTiming {
  sandboxMs: number;
  runtimeMs: number;
  moduleMs: number;
}

export interface HttpRequestHead {
  method: string;
  /** Absolute URL as the function should see it. */
  url: string;
  /** Raw header pairs in arrival order (repeated names allowed). */
  headers: Array<[string, string]>;
  /** Present for event invocations (queue batch, cron fire, async invoke). */
  event?: EventHead;
}

export interface InvokeRequest {
  kind: 'http';
  invocationId: string;
  request: HttpRequestHead;
  /** Request body, streamed; null for no body. The driver stops reading at limits.requestBodyBytes. */
  body: AsyncIterable<Uint8Array> | null;
  /**
   * W3C trace context: the parent of this invocation's spans as it arrives (incoming header, calling
   * function, queue message). With tracing on, the scheduler replaces it with the execution span's
   * context, which is what the function sees and what its own calls and sends carry on.
   */
  traceparent?: string;
  tracestate?: string;
  /** Further contexts this invocation serves (the other messages of a queue batch): span links. */
  traceLinks?: string[];
  /** Set for service-binding calls: who called (kept in the callee's record) and how deep the chain is. */
  caller?: { functionName: string; invocationId: string | null; depth: number };
}

export interface CapturedLog {
  ts: number;
  level: LogLevel;
  message: string;
}

/** How an invocation ended, with its usage; available once the response body has finished. */
export interface Completion {
  error: { code: ErrorCode; message: string } | null;
  cpuMs: number;
  peakMemoryBytes: number;
  logs: CapturedLog[];
  logBytes: number;
  logsTruncated: boolean;
}

export type InvokeResult =
  | {
      kind: 'response';
      status: number;
      headers: Array<[string, string]>;
      /** Response body, streamed. It ends early (with an error) if a limit is hit mid-stream. */
      body: AsyncIterable<Uint8Array>;
      /**
       * The whole body if it has already arrived in full, which consumes it (the gateway then answers
       * with one write and a Content-Length); null while it is still streaming. Optional for drivers.
       */
      takeWholeBody?: () => Uint8Array[] | null;
      completion: Promise<Completion>;
    }
  | { kind: 'error'; completion: Completion };

export type InstanceState = 'ready' | 'draining' | 'stopped';

export interface Instance {
  readonly id: string;
  readonly tier: Tier;
  readonly initTiming: InitTiming;
  readonly state: InstanceState;
  /** Never rejects for function failures: those come back as `kind: 'error'` with a code. */
  invoke(request: InvokeRequest): Promise<InvokeResult>;
  /** Stop taking new invocations; resolves when in-flight ones have finished. */
  drain(): Promise<void>;
  /** Stop now; in-flight invocations end with `instance_crashed`. */
  stop(): Promise<void>;
  /** Called once when the instance stops for any reason (crash, limit, stop). */
  onExit(listener: (reason: { code: ErrorCode | null; message: string }) => void): void;
}

export interface SandboxDriver {
  readonly tier: Tier;
  start(): Promise<void>;
  stop(): Promise<void>;
  status(): DriverStatus;
  /** Create and load an instance; rejects with `bad_bundle` if the module cannot load or lacks its handler. */
  createInstance(spec: InstanceSpec, services?: InstanceServices): Promise<Instance>;
}
