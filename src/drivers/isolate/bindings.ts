/**
 * Queue-binding sends on their way out of an isolate: the ceilings a send must meet and the frame that
 * carries it from the worker process to the driver. The worker checks before forwarding (early, clear
 * errors and bounded frames); the driver checks again, because it does not trust the worker.
 */
import { EVENT_DEFAULTS } from '../../core/defaults.ts';
import type { BindingMessage } from '../../core/driver.ts';
import { ContinuumError } from '../../core/errors.ts';

const MAX_CONTENT_TYPE = 255;
/** Printable ASCII: a content type becomes a header value downstream. */
const CONTENT_TYPE = /^[\x20-\x7e]+$/;
/** Binding names as the config allows them (`env.<NAME>`). */
const BINDING_NAME = /^[A-Z][A-Z0-9_]{0,63}$/;

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

interface FrameHead {
  binding: string;
  messages: Array<{ contentType: string; delayMs?: number; bytes: number }>;
}

/** F.queueSend payload: u32 head length | head JSON `{binding, messages: [{contentType, delayMs?, bytes}]}` | the bodies in order. */
export function encodeQueueSend(binding: string, messages: BindingMessage[]): Uint8Array {
  const head: FrameHead = { binding, messages: messages.map((m) => ({ contentType: m.contentType, delayMs: m.delayMs, bytes: m.body.byteLength })) };
  const headBytes = Buffer.from(JSON.stringify(head), 'utf8');
  let total = 4 + headBytes.length;
  for (const m of messages) total += m.body.byteLength;
  const out = Buffer.allocUnsafe(total);
  out.writeUInt32LE(headBytes.length, 0);
  headBytes.copy(out, 4);
  let at = 4 + headBytes.length;
  for (const m of messages) {
    out.set(m.body, at);
    at += m.body.byteLength;
  }
  return out;
}

/** Parse an F.queueSend payload from an untrusted worker; bodies are copied out of the frame. Throws `bad_request`. */
export function decodeQueueSend(payload: Uint8Array): { binding: string; messages: BindingMessage[] } {
  const bad = () => new ContinuumError('bad_request', 'malformed queue send');
  if (payload.byteLength < 4) throw bad();
  const view = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  const headLength = view.readUInt32LE(0);
  if (headLength > view.length - 4) throw bad();
  let head: FrameHead;
  try {
    head = JSON.parse(view.toString('utf8', 4, 4 + headLength)) as FrameHead;
  } catch {
    throw bad();
  }
  if (head === null || typeof head !== 'object' || typeof head.binding !== 'string' || !BINDING_NAME.test(head.binding) || !Array.isArray(head.messages)) throw bad();
  let at = 4 + headLength;
  const messages = head.messages.map((m): BindingMessage => {
    if (m === null || typeof m !== 'object' || typeof m.contentType !== 'string' || !Number.isSafeInteger(m.bytes) || m.bytes < 0 || m.bytes > view.length - at) throw bad();
    if (m.delayMs !== undefined && typeof m.delayMs !== 'number') throw bad();
    const body = new Uint8Array(view.subarray(at, at + m.bytes));
    at += m.bytes;
    return m.delayMs === undefined ? { body, contentType: m.contentType } : { body, contentType: m.contentType, delayMs: m.delayMs };
  });
  if (at !== view.length) throw bad();
  return { binding: head.binding, messages };
}
