/**
 * Rules every QueueStore backend applies the same way: queue names, send-batch bounds, and the body
 * digest that tells a repeated idempotent send from a conflicting one.
 */
import { createHash } from 'node:crypto';
import { EVENT_DEFAULTS } from '../core/defaults.ts';
import { ContinuumError } from '../core/errors.ts';
import { assertName } from '../core/names.ts';
import { INTERNAL_QUEUE_PATTERN, type NewMessage } from './contract.ts';

const INTERNAL_RE = new RegExp(INTERNAL_QUEUE_PATTERN);
const KEY_MAX = 256;
const ATTRIBUTES_MAX = 64;
const ATTRIBUTE_BYTES_MAX = 8 * 1024;

/** A user queue name ([a-z][a-z0-9-]{0,62}) or an internal one (`_async-<function>`). */
export function assertQueueName(name: unknown): string {
  if (typeof name === 'string' && INTERNAL_RE.test(name)) return name;
  return assertName(name, 'queue name');
}

/** The internal queue holding a function's async invocations (and its cron fires and CloudEvents). */
export function asyncQueueName(functionName: string): string {
  return `_async-${assertName(functionName, 'function name')}`;
}

/** Arguments of QueueStore.receive; `bad_request` naming the one that is wrong. */
export function checkReceive(max: number, leaseMs: number, aheadMs: number): void {
  if (!Number.isInteger(max) || max < 1) throw new ContinuumError('bad_request', 'receive: max must be a positive integer');
  if (!Number.isInteger(leaseMs) || leaseMs < 1) throw new ContinuumError('bad_request', 'receive: leaseMs must be a positive integer');
  if (!Number.isInteger(aheadMs) || aheadMs < 0 || aheadMs > EVENT_DEFAULTS.queue.maxReceiveAheadMs) {
    throw new ContinuumError('bad_request', `receive: aheadMs must be an integer from 0 to ${EVENT_DEFAULTS.queue.maxReceiveAheadMs}`);
  }
}

/** Throws before anything is stored: the batch is refused whole. */
export function checkSendBatch(messages: readonly NewMessage[]): void {
  const q = EVENT_DEFAULTS.queue;
  if (!Array.isArray(messages) || messages.length === 0) throw new ContinuumError('bad_request', 'send: at least one message is required');
  if (messages.length > q.maxSendBatch) throw new ContinuumError('bad_request', `send: at most ${q.maxSendBatch} messages per batch`);
  messages.forEach((m, i) => {
    if (!(m.body instanceof Uint8Array)) throw new ContinuumError('bad_request', `send: message ${i} has no byte body`);
    if (m.body.byteLength > q.maxMessageBytes) {
      throw new ContinuumError('payload_too_large', `send: message ${i} is ${m.body.byteLength} bytes; the limit is ${q.maxMessageBytes}`);
    }
    if (m.delayMs !== undefined && !(Number.isInteger(m.delayMs) && m.delayMs >= 0 && m.delayMs <= q.maxDelayMs)) {
      throw new ContinuumError('bad_request', `send: message ${i} delay must be 0..${q.maxDelayMs} ms`);
    }
    if (m.idempotencyKey !== undefined && (typeof m.idempotencyKey !== 'string' || m.idempotencyKey.length === 0 || m.idempotencyKey.length > KEY_MAX || /[\0-\x1f]/.test(m.idempotencyKey))) {
      throw new ContinuumError('bad_request', `send: message ${i} idempotency key must be 1..${KEY_MAX} printable characters`);
    }
    if (m.contentType !== undefined && (typeof m.contentType !== 'string' || m.contentType.length > 256 || /[\0-\x1f]/.test(m.contentType))) {
      throw new ContinuumError('bad_request', `send: message ${i} content type is invalid`);
    }
    if (m.attributes !== undefined) {
      const entries = Object.entries(m.attributes);
      let bytes = 0;
      for (const [k, v] of entries) {
        if (typeof v !== 'string') throw new ContinuumError('bad_request', `send: message ${i} attribute ${k.slice(0, 40)} must be a string`);
        bytes += k.length + v.length;
      }
      if (entries.length > ATTRIBUTES_MAX || bytes > ATTRIBUTE_BYTES_MAX) {
        throw new ContinuumError('bad_request', `send: message ${i} has too many attributes (at most ${ATTRIBUTES_MAX}, ${ATTRIBUTE_BYTES_MAX} bytes)`);
      }
    }
  });
}

/** Trace context differs on every retry of the same request, so it is not part of a message's identity. */
const NOT_CONTENT = new Set(['traceparent', 'tracestate']);

/** Identity of a message's content for idempotency: body, content type and attributes (but trace context). */
export function contentDigest(m: NewMessage): string {
  const h = createHash('sha256');
  h.update(m.contentType ?? '');
  h.update('\0');
  const attributes = m.attributes ? Object.entries(m.attributes).filter(([k]) => !NOT_CONTENT.has(k)) : [];
  h.update(JSON.stringify(attributes.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))));
  h.update('\0');
  h.update(m.body);
  return h.digest('hex');
}

/** Keep the newest `EVENT_DEFAULTS.queue.maxErrorsKept` error texts, each bounded. */
export function appendError(errors: readonly string[], error: string): string[] {
  const next = [...errors, error.slice(0, 2000)];
  return next.slice(-EVENT_DEFAULTS.queue.maxErrorsKept);
}

const CURSOR_KEY_RE = /^[A-Za-z0-9._:/-]{1,256}$/;
const CURSOR_VALUE_MAX = 4096;

/** Cursor keys and values (QueueStore.getCursor/setCursor) are bounded the same on every backend. */
export function assertCursorKey(key: unknown): string {
  if (typeof key !== 'string' || !CURSOR_KEY_RE.test(key)) throw new ContinuumError('bad_request', 'cursor key must be 1-256 characters [A-Za-z0-9._:/-]');
  return key;
}

export function assertCursorValue(value: unknown): string {
  if (typeof value !== 'string' || value.length > CURSOR_VALUE_MAX) throw new ContinuumError('bad_request', `cursor value must be a string of at most ${CURSOR_VALUE_MAX} characters`);
  return value;
}

/**
 * The listeners of QueueStore.watch. Told synchronously, after the store has the messages; a listener only
 * wakes what waits (it must not throw, and must not make the store's write look failed).
 */
export class QueueWatchers {
  readonly #listeners = new Set<(queue: string) => void>();

  add(listener: (queue: string) => void): () => void {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }

  tell(queue: string): void {
    for (const listener of this.#listeners) listener(queue);
  }
}
