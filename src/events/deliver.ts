/**
 * How events become invocations and how invocation results become settlements. Pure functions over plain
 * data (the consumer and the service do the I/O): build the InvokeRequest for a queue batch, an async
 * invocation, a cron fire or a CloudEvent, and read a queue batch's answer (driver.ts, EventHead).
 */
import type { EventHead, InvokeRequest, WireQueueMessage } from '../core/driver.ts';
import type { HandlerFormat } from '../core/types.ts';
import type { LeasedMessage } from '../store/contract.ts';
import { toBinaryHeaders, toStructuredJson, type ParsedCloudEvent } from './cloudevents.ts';

/** Message attribute naming what an entry of a function's async queue is. */
export const KIND_ATTRIBUTE = 'continuum-kind';
export type AsyncKind = 'async' | 'cron' | 'cloudevent';
/** CloudEvents attributes travel as message attributes with this prefix. */
export const CE_PREFIX = 'ce-';
/** The sender's W3C trace context, as message attributes (names as the HTTP headers). */
export const TRACEPARENT_ATTRIBUTE = 'traceparent';
export const TRACESTATE_ATTRIBUTE = 'tracestate';

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function wireMessage(m: LeasedMessage): WireQueueMessage {
  let body: string;
  let encoding: WireQueueMessage['encoding'] = 'utf8';
  try {
    body = utf8.decode(m.body);
  } catch {
    body = Buffer.from(m.body).toString('base64');
    encoding = 'base64';
  }
  return { id: m.id, body, encoding, contentType: m.contentType, attempt: m.attempt, timestamp: m.enqueuedAt, attributes: m.attributes, idempotencyKey: m.idempotencyKey };
}

function host(functionName: string): string {
  return `${functionName}.continuum.internal`;
}

/**
 * A batch's execution continues the trace of its first message that carries one (so a message sent by
 * a traced function and consumed alone lands in the sender's trace) and links to every message's context
 * (OpenTelemetry's batch-processing convention; see docs/decisions.md).
 */
export function queueBatchRequest(functionName: string, executionId: string, queue: string, messages: LeasedMessage[]): InvokeRequest {
  const body = new TextEncoder().encode(JSON.stringify({ messages: messages.map(wireMessage) }));
  const contexts = messages.map((m) => m.attributes[TRACEPARENT_ATTRIBUTE]).filter((t): t is string => t !== undefined);
  const first = messages.find((m) => m.attributes[TRACEPARENT_ATTRIBUTE] !== undefined);
  return {
    kind: 'http',
    invocationId: executionId,
    request: { method: 'POST', url: `http://${host(functionName)}/`, headers: [['content-type', 'application/json']], event: { kind: 'queue', queue } },
    body: once(body),
    ...(first ? traceOf(first) : {}),
    ...(contexts.length > 0 ? { traceLinks: contexts } : {}),
  };
}

function traceOf(m: LeasedMessage): Pick<InvokeRequest, 'traceparent' | 'tracestate'> {
  const traceparent = m.attributes[TRACEPARENT_ATTRIBUTE];
  const tracestate = m.attributes[TRACESTATE_ATTRIBUTE];
  return { ...(traceparent !== undefined ? { traceparent } : {}), ...(tracestate !== undefined ? { tracestate } : {}) };
}

/**
 * An entry of a function's async queue (async invoke, cron fire, CloudEvent) as an invocation. Fetch
 * handlers get a POST carrying the delivery facts as headers (CloudEvents in binary mode); Lambda and
 * OpenWhisk handlers get the payload as their event (CloudEvents in structured mode, as JSON).
 */
export function asyncRequest(functionName: string, format: HandlerFormat, executionId: string, m: LeasedMessage): InvokeRequest {
  const kind = (m.attributes[KIND_ATTRIBUTE] ?? 'async') as AsyncKind;
  const headers: Array<[string, string]> = [
    ['continuum-invocation-id', m.id],
    ['continuum-attempt', String(m.attempt)],
  ];
  if (m.idempotencyKey !== null) headers.push(['idempotency-key', m.idempotencyKey]);
  // The submitter's trace context: the function sees it as headers (Lambda: the event's headers).
  const trace = traceOf(m);
  if (trace.traceparent !== undefined) headers.push(['traceparent', trace.traceparent]);
  if (trace.tracestate !== undefined) headers.push(['tracestate', trace.tracestate]);
  const url = `http://${host(functionName)}/`;
  if (kind === 'cron') {
    const event: EventHead = { kind: 'scheduled', cron: m.attributes.cron ?? '', scheduledTime: Number(m.attributes['scheduled-time'] ?? m.enqueuedAt), invocationId: m.id };
    return { kind: 'http', invocationId: executionId, request: { method: 'POST', url, headers, event }, body: null, ...trace };
  }
  const event: EventHead = { kind: 'invoke', attempt: m.attempt, idempotencyKey: m.idempotencyKey, invocationId: m.id };
  let body: Uint8Array = m.body;
  if (kind === 'cloudevent') {
    const attributes: Record<string, string> = {};
    for (const [k, v] of Object.entries(m.attributes)) if (k.startsWith(CE_PREFIX)) attributes[k.slice(CE_PREFIX.length)] = v;
    const event: ParsedCloudEvent = { attributes, data: m.body.byteLength > 0 ? m.body : null, dataContentType: m.contentType };
    if (format === 'fetch') headers.push(...toBinaryHeaders(event));
    else {
      body = new TextEncoder().encode(toStructuredJson(event));
      headers.push(['content-type', 'application/cloudevents+json']);
    }
  } else if (m.contentType !== null) {
    headers.push(['content-type', m.contentType]);
  }
  return { kind: 'http', invocationId: executionId, request: { method: 'POST', url, headers, event }, body: body.byteLength > 0 ? once(body) : null, ...trace };
}

export interface QueueBatchAnswer {
  /** True when the handler resolved (unlisted messages are acked), false when it threw (they are retried). */
  handled: boolean;
  acked: Set<string>;
  /** Explicit retries, with the delay the function asked for (null: use the trigger's backoff). */
  retried: Map<string, number | null>;
  error: string | null;
}

/** Read the runtime's answer to a queue batch; anything unexpected counts as a failure of the whole batch. */
export function parseQueueBatchAnswer(status: number, body: Uint8Array): QueueBatchAnswer {
  const failed = (error: string): QueueBatchAnswer => ({ handled: false, acked: new Set(), retried: new Map(), error });
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(body));
  } catch {
    return failed(`the function answered the batch with status ${status} and no batch result`);
  }
  if (parsed === null || typeof parsed !== 'object') return failed('malformed batch result');
  const p = parsed as { acked?: unknown; retried?: unknown; error?: unknown };
  const acked = new Set<string>();
  const retried = new Map<string, number | null>();
  if (Array.isArray(p.acked)) for (const id of p.acked) if (typeof id === 'string') acked.add(id);
  if (Array.isArray(p.retried)) {
    for (const r of p.retried) {
      if (r === null || typeof r !== 'object' || typeof (r as { id?: unknown }).id !== 'string') continue;
      const d = (r as { delaySeconds?: unknown }).delaySeconds;
      retried.set((r as { id: string }).id, typeof d === 'number' && Number.isFinite(d) && d >= 0 ? d : null);
    }
  }
  const error = typeof p.error === 'string' ? p.error : null;
  return { handled: status === 200, acked, retried, error: status === 200 ? error : (error ?? `the batch failed with status ${status}`) };
}

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}
