/**
 * Event invocations in the handler formats: queue batches (Cloudflare Queues `MessageBatch`, Amazon SQS
 * event with partial batch responses, OpenWhisk params), cron fires (Workers `ScheduledController`,
 * EventBridge scheduled event), async invokes, and the bodies a queue binding sends. Pure functions over
 * plain data; runtime.ts wires them to invocations.
 */
import { md5 } from '@noble/hashes/legacy.js';
import { base64Decode, base64Encode } from './adapters.ts';
import type { WireBatchOutcome, WireQueueMessage } from './protocol.ts';

/** What Lambda-shaped events name as account and region (the same as the Lambda context's ARN). */
export const AWS_ACCOUNT = '000000000000';
export const AWS_REGION = 'local';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// ---------------------------------------------------------------- queue batches in

/** The body of a `queue` event: `{ "messages": [WireQueueMessage…] }`, checked field by field. */
export function decodeBatch(body: Uint8Array | null): WireQueueMessage[] {
  const parsed: unknown = body === null ? null : JSON.parse(decoder.decode(body));
  const list = (parsed as { messages?: unknown } | null)?.messages;
  if (!Array.isArray(list)) throw new TypeError('invalid queue batch: expected {"messages": [...]}');
  return list.map((m: Partial<WireQueueMessage>, i) => {
    const ok =
      m !== null && typeof m === 'object' && typeof m.id === 'string' && typeof m.body === 'string' &&
      (m.encoding === 'utf8' || m.encoding === 'base64') && (m.contentType === null || typeof m.contentType === 'string') &&
      typeof m.attempt === 'number' && typeof m.timestamp === 'number' && m.attributes !== null && typeof m.attributes === 'object' &&
      (m.idempotencyKey === null || typeof m.idempotencyKey === 'string');
    if (!ok) throw new TypeError(`invalid queue batch: message ${i} is malformed`);
    return m as WireQueueMessage;
  });
}

function mediaType(contentType: string | null): string {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase();
}

function isJsonType(contentType: string | null): boolean {
  const t = mediaType(contentType);
  return t === 'application/json' || t.endsWith('+json');
}

/** The message body as bytes. */
export function messageBytes(m: WireQueueMessage): Uint8Array {
  return m.encoding === 'base64' ? base64Decode(m.body) : encoder.encode(m.body);
}

/** The message body as text, if it is text (UTF-8 on the wire, or base64 of valid UTF-8); else null. */
function messageText(m: WireQueueMessage): string | null {
  if (m.encoding === 'utf8') return m.body;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(base64Decode(m.body));
  } catch {
    return null;
  }
}

/**
 * The body a Workers consumer sees: parsed JSON for a JSON type, a string for text/* (and for untyped
 * text), bytes otherwise. JSON that does not parse arrives as its text rather than failing the batch.
 */
export function messageBody(m: WireQueueMessage): unknown {
  const type = mediaType(m.contentType);
  const textual = isJsonType(m.contentType) || type.startsWith('text/') || (type === '' && m.encoding === 'utf8');
  const text = textual ? messageText(m) : null;
  if (text === null) return messageBytes(m);
  if (isJsonType(m.contentType)) {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  return text;
}

/** `delaySeconds` as Cloudflare takes it: a finite number ≥ 0 (the host applies its own ceiling). */
export function checkDelay(options: unknown, what: string): number | undefined {
  if (options === undefined || options === null) return undefined;
  if (typeof options !== 'object') throw new TypeError(`${what}: options must be an object`);
  const d = (options as { delaySeconds?: unknown }).delaySeconds;
  if (d === undefined) return undefined;
  if (typeof d !== 'number' || !Number.isFinite(d) || d < 0) throw new RangeError(`${what}: delaySeconds must be a number of seconds ≥ 0`);
  return d;
}

type Decision = { retry: false } | { retry: true; delaySeconds: number | undefined };

/**
 * Per-message ack/retry as Cloudflare Queues defines it: the first call on a message wins, and a call on
 * a message takes precedence over ackAll/retryAll (of which, again, the first wins).
 */
export class QueueDecisions {
  readonly #each = new Map<string, Decision>();
  #all: Decision | null = null;

  decide(id: string, d: Decision): void {
    if (!this.#each.has(id)) this.#each.set(id, d);
  }

  decideAll(d: Decision): void {
    this.#all ??= d;
  }

  /** The answer for `ids`: explicit decisions only; the status says what happens to the rest. */
  outcome(ids: string[], error: string | null): WireBatchOutcome {
    const out: WireBatchOutcome = { acked: [], retried: [], error };
    for (const id of ids) {
      const d = this.#each.get(id) ?? this.#all;
      if (d === null) continue;
      if (!d.retry) out.acked.push(id);
      else out.retried.push(d.delaySeconds === undefined ? { id } : { id, delaySeconds: d.delaySeconds });
    }
    return out;
  }
}

/** Cloudflare's `MessageBatch` (with `contentType` on each message as a Continuum extension). */
export function workersBatch(queue: string, messages: WireQueueMessage[], decisions: QueueDecisions): Record<string, unknown> {
  const list = messages.map((m) =>
    Object.freeze({
      id: m.id,
      timestamp: new Date(m.timestamp),
      body: messageBody(m),
      attempts: m.attempt,
      contentType: m.contentType,
      ack(): void {
        decisions.decide(m.id, { retry: false });
      },
      retry(options?: { delaySeconds?: number }): void {
        decisions.decide(m.id, { retry: true, delaySeconds: checkDelay(options, 'retry') });
      },
    }),
  );
  return Object.freeze({
    queue,
    messages: Object.freeze(list),
    ackAll(): void {
      decisions.decideAll({ retry: false });
    },
    retryAll(options?: { delaySeconds?: number }): void {
      decisions.decideAll({ retry: true, delaySeconds: checkDelay(options, 'retryAll') });
    },
  });
}

function hex(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

/**
 * Amazon SQS event for Lambda. `body` is the message text (base64 for binary messages, which SQS bodies
 * cannot carry); message attributes are String attributes. The first receive time is not tracked, so
 * `ApproximateFirstReceiveTimestamp` is this delivery's time.
 */
export function sqsEvent(queue: string, messages: WireQueueMessage[], receivedAt: number): { Records: Array<Record<string, unknown>> } {
  return {
    Records: messages.map((m) => {
      const body = messageText(m) ?? m.body;
      const messageAttributes: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(m.attributes)) {
        messageAttributes[k] = { stringValue: String(v), stringListValues: [], binaryListValues: [], dataType: 'String' };
      }
      return {
        messageId: m.id,
        receiptHandle: `${m.id}#${m.attempt}`,
        body,
        attributes: {
          ApproximateReceiveCount: String(m.attempt),
          SentTimestamp: String(m.timestamp),
          SenderId: AWS_ACCOUNT,
          ApproximateFirstReceiveTimestamp: String(receivedAt),
        },
        messageAttributes,
        md5OfBody: hex(md5(encoder.encode(body))),
        eventSource: 'aws:sqs',
        eventSourceARN: `arn:aws:sqs:${AWS_REGION}:${AWS_ACCOUNT}:${queue}`,
        awsRegion: AWS_REGION,
      };
    }),
  };
}

/**
 * A Lambda SQS handler's result → outcome, with Lambda's partial batch response rules: no result, or no
 * or an empty `batchItemFailures`, acks the batch; listed items are retried; an item whose
 * `itemIdentifier` is missing, empty or not in the batch fails the whole batch (`ok` false).
 */
export function sqsOutcome(result: unknown, ids: string[]): { ok: boolean; outcome: WireBatchOutcome } {
  const failures = result !== null && typeof result === 'object' ? (result as { batchItemFailures?: unknown }).batchItemFailures : undefined;
  if (failures === undefined || failures === null) return { ok: true, outcome: { acked: [...ids], retried: [], error: null } };
  const known = new Set(ids);
  const failed = new Set<string>();
  const whole = (why: string) => ({ ok: false, outcome: { acked: [], retried: [], error: `invalid batchItemFailures: ${why}; the whole batch is retried` } });
  if (!Array.isArray(failures)) return whole('not an array');
  for (const f of failures) {
    const id = f !== null && typeof f === 'object' ? (f as { itemIdentifier?: unknown }).itemIdentifier : undefined;
    if (typeof id !== 'string' || id === '') return whole('an itemIdentifier is missing or empty');
    if (!known.has(id)) return whole(`itemIdentifier ${JSON.stringify(id.slice(0, 100))} is not in the batch`);
    failed.add(id);
  }
  return { ok: true, outcome: { acked: ids.filter((id) => !failed.has(id)), retried: ids.filter((id) => failed.has(id)).map((id) => ({ id })), error: null } };
}

/** OpenWhisk params for a queue batch: bodies as for Workers, with bytes as base64 text (params are JSON). */
export function openwhiskQueueParams(queue: string, messages: WireQueueMessage[]): Record<string, unknown> {
  return {
    queue,
    messages: messages.map((m) => {
      const body = messageBody(m);
      return {
        id: m.id,
        body: body instanceof Uint8Array ? base64Encode(body) : body,
        contentType: m.contentType,
        attempts: m.attempt,
        timestamp: m.timestamp,
        attributes: { ...m.attributes },
      };
    }),
  };
}

// ---------------------------------------------------------------- cron fires and async invokes

/** EventBridge "Scheduled Event" for Lambda; `time` is the scheduled time at second precision, as AWS sends it. */
export function scheduledEvent(id: string, functionName: string, scheduledTime: number): Record<string, unknown> {
  return {
    version: '0',
    id,
    'detail-type': 'Scheduled Event',
    source: 'aws.events',
    account: AWS_ACCOUNT,
    time: new Date(scheduledTime).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    region: AWS_REGION,
    resources: [`arn:aws:events:${AWS_REGION}:${AWS_ACCOUNT}:rule/${functionName}`],
    detail: {},
  };
}

/** An async invoke's payload as a Lambda event: parsed JSON, else the text, `{}` for no body. */
export function invokePayload(body: Uint8Array | null): unknown {
  if (body === null || body.byteLength === 0) return {};
  const text = decoder.decode(body);
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** An async invoke's payload as OpenWhisk params: a JSON object as is, anything else as `__ow_body` text. */
export function invokeParams(body: Uint8Array | null): Record<string, unknown> {
  const payload = invokePayload(body);
  if (payload !== null && typeof payload === 'object' && !Array.isArray(payload)) return payload as Record<string, unknown>;
  return { __ow_body: decoder.decode(body ?? new Uint8Array(0)) };
}

// ---------------------------------------------------------------- queue bindings out

export const CONTENT_TYPES = { text: 'text/plain', bytes: 'application/octet-stream', json: 'application/json' } as const;

/**
 * A body sent through a queue binding as bytes plus content type, by Cloudflare's rules: `contentType`
 * 'text' | 'bytes' | 'json' forces a format; without it a string is text, bytes are bytes and anything
 * else is JSON. ('v8', structured clone, has no meaning outside workerd and is refused.)
 */
export function encodeQueueBody(body: unknown, contentType: unknown): { bytes: Uint8Array; contentType: string } {
  const isBytes = body instanceof ArrayBuffer || ArrayBuffer.isView(body);
  const kind = contentType ?? (typeof body === 'string' ? 'text' : isBytes ? 'bytes' : 'json');
  if (kind === 'text') {
    if (typeof body !== 'string') throw new TypeError("contentType 'text' needs a string body");
    return { bytes: encoder.encode(body), contentType: CONTENT_TYPES.text };
  }
  if (kind === 'bytes') {
    if (!isBytes) throw new TypeError("contentType 'bytes' needs an ArrayBuffer or ArrayBufferView body");
    const view = body instanceof ArrayBuffer ? new Uint8Array(body) : new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
    return { bytes: view.slice(), contentType: CONTENT_TYPES.bytes };
  }
  if (kind === 'json') {
    const text = JSON.stringify(body);
    if (text === undefined) throw new TypeError('the message body cannot be serialized as JSON');
    return { bytes: encoder.encode(text), contentType: CONTENT_TYPES.json };
  }
  throw new TypeError(`unsupported contentType ${JSON.stringify(String(contentType)).slice(0, 40)}: use 'json', 'text' or 'bytes'`);
}
