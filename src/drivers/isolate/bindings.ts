/**
 * Binding calls on their way out of an isolate: queue sends (the ceilings a send must meet and the frame
 * that carries it from the worker process to the driver) and service-binding calls (their request and
 * response frames). The worker checks before forwarding (early, clear errors and bounded frames); the
 * driver checks again, because it does not trust the worker.
 */
import { EVENT_DEFAULTS } from '../../core/defaults.ts';
import type { BindingMessage, CallerContext, InstanceServices, InstanceSpec, InvokeRequest, ServiceRequest, ServiceResponse } from '../../core/driver.ts';
import { ContinuumError } from '../../core/errors.ts';

const MAX_CONTENT_TYPE = 255;
/** Printable ASCII: a content type becomes a header value downstream. */
const CONTENT_TYPE = /^[\x20-\x7e]+$/;
/** Binding names as the config allows them (`env.<NAME>`). */
const BINDING_NAME = /^[A-Z][A-Z0-9_]{0,63}$/;

/** The binding names a sandbox gets, by kind: `bindings` are queue producers, `services` other functions. */
export function bindingNames(bindings: InstanceSpec['bindings'] | undefined): { bindings: string[]; services: string[] } {
  const out = { bindings: [] as string[], services: [] as string[] };
  for (const [name, target] of Object.entries(bindings ?? {})) ('queue' in target ? out.bindings : out.services).push(name);
  return out;
}

/** Throws `bad_request` or `payload_too_large` unless the batch meets EVENT_DEFAULTS.queue. */
export function checkQueueSend(messages: BindingMessage[]): void {
  const { maxSendBatch, maxMessageBytes, maxDelayMs } = EVENT_DEFAULTS.queue;
  if (messages.length === 0 || messages.length > maxSendBatch) {
    throw new ContinuumError('bad_request', `a send holds 1 to ${maxSendBatch} messages, not ${messages.length}`, { limit: maxSendBatch });
  }
  messages.forEach((m, i) => {
    if (m.body.byteLength > maxMessageBytes) {
      throw new ContinuumError('payload_too_large', `message ${i} is ${m.body.byteLength} bytes; the limit is ${maxMessageBytes}`, { limit: maxMessageBytes });
    }
    if (m.contentType.length > MAX_CONTENT_TYPE || !CONTENT_TYPE.test(m.contentType)) {
      throw new ContinuumError('bad_request', `message ${i} has an invalid content type`);
    }
    if (m.delayMs !== undefined && (!Number.isSafeInteger(m.delayMs) || m.delayMs < 0 || m.delayMs > maxDelayMs)) {
      throw new ContinuumError('bad_request', `message ${i}: delaySeconds must be between 0 and ${maxDelayMs / 1000}`, { limit: maxDelayMs / 1000 });
    }
  });
}

/**
 * A queue binding's send from a sandbox, after its messages were checked: the binding name is resolved
 * through the instance's own spec, so a sandbox cannot reach a queue its function was not granted.
 * Rejects with a ContinuumError (forbidden, unavailable, or the store's). Every tier's instance uses this.
 */
export function sendThroughBinding(
  spec: Pick<InstanceSpec, 'functionName' | 'bindings'>,
  services: InstanceServices | undefined,
  binding: string,
  messages: BindingMessage[],
  traceparent: string | undefined,
): Promise<string[]> {
  const target = Object.hasOwn(spec.bindings, binding) ? spec.bindings[binding] : undefined;
  if (target === undefined || !('queue' in target)) return Promise.reject(new ContinuumError('forbidden', `binding ${binding} is not granted to this function`));
  if (!services) return Promise.reject(new ContinuumError('unavailable', 'queue bindings are not available on this node'));
  return Promise.resolve().then(() => services.sendToQueue(spec.functionName, target.queue, messages, traceparent));
}

/**
 * Who makes a service call: the calling invocation's request when it is still in flight on the instance;
 * otherwise the call counts as made after its invocation ended, at the deepest depth the instance has seen.
 */
export function bindingCaller(functionName: string, request: InvokeRequest | undefined, maxDepth: number): CallerContext {
  return request
    ? { functionName, invocationId: request.invocationId, depth: request.caller?.depth ?? 0, ...(request.traceparent ? { traceparent: request.traceparent } : {}) }
    : { functionName, invocationId: null, depth: maxDepth };
}

/** A service binding's call from a sandbox, resolved through the instance's own spec (see sendThroughBinding). */
export function callThroughBinding(
  spec: Pick<InstanceSpec, 'bindings'>,
  services: InstanceServices | undefined,
  caller: CallerContext,
  binding: string,
  request: ServiceRequest,
): Promise<ServiceResponse> {
  const target = Object.hasOwn(spec.bindings, binding) ? spec.bindings[binding] : undefined;
  if (target === undefined || !('function' in target)) return Promise.reject(new ContinuumError('forbidden', `binding ${binding} is not granted to this function`));
  if (!services?.callFunction) return Promise.reject(new ContinuumError('unavailable', 'service bindings are not available on this node'));
  return Promise.resolve().then(() => services.callFunction!(caller, target.function, request));
}

interface FrameHead {
  binding: string;
  /** The sending invocation's number on this instance (0: none is running). */
  inv: number;
  messages: Array<{ contentType: string; delayMs?: number; bytes: number }>;
}

/** `u32 head length | head JSON | the bodies in order`: the shape of every binding frame. */
function encodeFrame(head: object, bodies: Uint8Array[]): Uint8Array {
  const headBytes = Buffer.from(JSON.stringify(head), 'utf8');
  let total = 4 + headBytes.length;
  for (const b of bodies) total += b.byteLength;
  const out = Buffer.allocUnsafe(total);
  out.writeUInt32LE(headBytes.length, 0);
  headBytes.copy(out, 4);
  let at = 4 + headBytes.length;
  for (const b of bodies) {
    out.set(b, at);
    at += b.byteLength;
  }
  return out;
}

/** The head (parsed JSON, unchecked) and the bytes after it; throws `bad` when the frame is malformed. */
function decodeFrame(payload: Uint8Array, bad: () => Error): { head: unknown; view: Buffer; at: number } {
  if (payload.byteLength < 4) throw bad();
  const view = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  const headLength = view.readUInt32LE(0);
  if (headLength > view.length - 4) throw bad();
  try {
    return { head: JSON.parse(view.toString('utf8', 4, 4 + headLength)), view, at: 4 + headLength };
  } catch {
    throw bad();
  }
}

/** F.queueSend payload: head `{binding, inv, messages: [{contentType, delayMs?, bytes}]}` and the bodies in order. */
export function encodeQueueSend(binding: string, inv: number, messages: BindingMessage[]): Uint8Array {
  const head: FrameHead = { binding, inv, messages: messages.map((m) => ({ contentType: m.contentType, delayMs: m.delayMs, bytes: m.body.byteLength })) };
  return encodeFrame(head, messages.map((m) => m.body));
}

/** Parse an F.queueSend payload from an untrusted worker; bodies are copied out of the frame. Throws `bad_request`. */
export function decodeQueueSend(payload: Uint8Array): { binding: string; inv: number; messages: BindingMessage[] } {
  const bad = () => new ContinuumError('bad_request', 'malformed queue send');
  const { head: parsed, view, at: start } = decodeFrame(payload, bad);
  const head = parsed as FrameHead;
  if (head === null || typeof head !== 'object' || typeof head.binding !== 'string' || !BINDING_NAME.test(head.binding) || !Array.isArray(head.messages)) throw bad();
  let at = start;
  const messages = head.messages.map((m): BindingMessage => {
    if (m === null || typeof m !== 'object' || typeof m.contentType !== 'string' || !Number.isSafeInteger(m.bytes) || m.bytes < 0 || m.bytes > view.length - at) throw bad();
    if (m.delayMs !== undefined && typeof m.delayMs !== 'number') throw bad();
    const body = new Uint8Array(view.subarray(at, at + m.bytes));
    at += m.bytes;
    return m.delayMs === undefined ? { body, contentType: m.contentType } : { body, contentType: m.contentType, delayMs: m.delayMs };
  });
  if (at !== view.length) throw bad();
  return { binding: head.binding, inv: invNumber(head.inv), messages };
}

function invNumber(n: unknown): number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n > 0 ? n : 0;
}

const MAX_URL = 16 * 1024;

function isStringPairs(v: unknown): v is Array<[string, string]> {
  return Array.isArray(v) && v.every((p) => Array.isArray(p) && p.length === 2 && typeof p[0] === 'string' && typeof p[1] === 'string');
}

export const INVALID_HEAD = { code: 'function_error', message: 'the function returned an invalid response head' } as const;

/** A response head as it crossed out of the isolate (untrusted JSON): null unless well-formed. */
export function parseResponseHead(json: string): { status: number; headers: Array<[string, string]> } | null {
  let head: { status?: unknown; headers?: unknown };
  try {
    head = JSON.parse(json);
  } catch {
    return null;
  }
  const { status, headers } = head ?? {};
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 100 || status > 599 || !isStringPairs(headers)) return null;
  return { status, headers };
}

/** A service call's request as it crossed out of the isolate (untrusted): throws `bad_argument` unless well-formed. */
export function serviceRequest(headJson: unknown, body: unknown): ServiceRequest {
  const bad = new ContinuumError('bad_argument', 'invalid service binding request');
  if (typeof headJson !== 'string' || headJson.length > 1_000_000 || (body !== null && !(body instanceof ArrayBuffer) && !(body instanceof Uint8Array))) throw bad;
  let head: { method?: unknown; url?: unknown; headers?: unknown };
  try {
    head = JSON.parse(headJson);
  } catch {
    throw bad;
  }
  if (head === null || typeof head !== 'object' || typeof head.method !== 'string' || head.method.length > 64) throw bad;
  if (typeof head.url !== 'string' || head.url.length > MAX_URL || !isStringPairs(head.headers)) throw bad;
  return { method: head.method, url: head.url, headers: head.headers, body: body === null ? null : body instanceof Uint8Array ? body : new Uint8Array(body) };
}

/** F.serviceFetch payload (worker → driver): head `{binding, inv, method, url, headers, hasBody}` and the body. */
export function encodeServiceFetch(binding: string, inv: number, request: ServiceRequest): Uint8Array {
  const { method, url, headers, body } = request;
  return encodeFrame({ binding, inv, method, url, headers, hasBody: body !== null }, body === null ? [] : [body]);
}

/** Parse an F.serviceFetch payload from an untrusted worker. Throws `bad_request`. */
export function decodeServiceFetch(payload: Uint8Array): { binding: string; inv: number; request: ServiceRequest } {
  const bad = () => new ContinuumError('bad_request', 'malformed service call');
  const { head, view, at } = decodeFrame(payload, bad);
  const h = head as { binding?: unknown; inv?: unknown; method?: unknown; url?: unknown; headers?: unknown; hasBody?: unknown } | null;
  if (h === null || typeof h !== 'object' || typeof h.binding !== 'string' || !BINDING_NAME.test(h.binding)) throw bad();
  const body = h.hasBody === true ? new Uint8Array(view.subarray(at)) : null;
  if (body === null && at !== view.length) throw bad();
  try {
    return { binding: h.binding, inv: invNumber(h.inv), request: serviceRequest(JSON.stringify({ method: h.method, url: h.url, headers: h.headers }), body) };
  } catch {
    throw bad();
  }
}

type ServiceAnswer = ServiceResponse | { error: { code: string; message: string } };

/** F.serviceResponse payload (driver → worker): head `{status, headers}` and the body, or head `{error}`. */
export function encodeServiceResponse(answer: ServiceAnswer): Uint8Array {
  if ('error' in answer) return encodeFrame({ error: answer.error }, []);
  return encodeFrame({ status: answer.status, headers: answer.headers }, [answer.body]);
}

/** The driver's answer as the worker reads it (the driver is trusted; malformed still fails cleanly). */
export function decodeServiceResponse(payload: Uint8Array): ServiceAnswer {
  const { head, view, at } = decodeFrame(payload, () => new ContinuumError('internal', 'malformed service response'));
  const h = head as { status?: number; headers?: Array<[string, string]>; error?: { code: string; message: string } };
  if (h.error) return { error: h.error };
  return { status: Number(h.status), headers: h.headers ?? [], body: new Uint8Array(view.subarray(at)) };
}
