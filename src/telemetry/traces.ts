/**
 * Traces: OpenTelemetry spans of every invocation, exported over OTLP/HTTP (JSON) when the node has an
 * endpoint. The hot path only draws ids and reads the clock (`start`); spans are built from the finished
 * invocation record later, in batches, on a timer (`end` only queues). Without an endpoint the scheduler
 * has no tracer at all and nothing here runs.
 *
 * One invocation becomes this tree, under the incoming context (request header, calling function, queue
 * message) when there is one:
 *
 *   <root>           SERVER (CONSUMER for queue batches): the invocation as its trigger saw it; faas.*, http.*
 *   ├─ schedule      until the instance has the request: queue wait, cold start, node overhead
 *   │  └─ cold start the instance started for this request: sandbox create → runtime init → module load
 *   └─ execute <fn>  the function running; its context is the traceparent the function sees
 */
import { randomFillSync } from 'node:crypto';
import type { Attributes, HrTime, Link, SpanContext } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { TRACE_DEFAULTS } from '../core/defaults.ts';
import { ContinuumError } from '../core/errors.ts';
import type { InvokeRequest } from '../core/driver.ts';
import { formatTraceparent, parseTraceparent } from '../core/tracecontext.ts';
import type { InvocationRecord, Trigger } from '../core/types.ts';

export interface TraceExportOptions {
  /** OTLP/HTTP base URL (`…/v1/traces` is appended unless the URL already ends with it). */
  endpoint: string;
  /** Extra request headers (e.g. an API key for the collector). */
  headers?: Record<string, string>;
  nodeName: string;
  /** Called when an export fails; tracing carries on. */
  onError?: (message: string) => void;
  exportIntervalMs?: number;
}

/** Throws `bad_request` unless the node's `otlp` option is an http(s) URL with string headers. */
export function checkOtlp(o: { endpoint: unknown; headers?: unknown }): { endpoint: string; headers: Record<string, string> } {
  let url: URL | null = null;
  try {
    url = typeof o.endpoint === 'string' ? new URL(o.endpoint) : null;
  } catch {
    url = null;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) throw new ContinuumError('bad_request', 'otlp.endpoint must be an http(s) URL');
  const headers = o.headers ?? {};
  if (headers === null || typeof headers !== 'object' || Object.values(headers).some((v) => typeof v !== 'string')) {
    throw new ContinuumError('bad_request', 'otlp.headers must map header names to strings');
  }
  return { endpoint: o.endpoint as string, headers: { ...(headers as Record<string, string>) } };
}

/** What `start` hands the scheduler and `end` gets back: ids and the start time. */
export interface SpanIds {
  readonly traceId: string;
  readonly parentSpanId: string | null;
  readonly rootSpanId: string;
  readonly execSpanId: string;
  readonly sampled: boolean;
  /** Epoch ms (fractional) when the scheduler took the invocation. */
  readonly startMs: number;
}

interface Finished {
  ids: SpanIds;
  endMs: number;
  record: InvocationRecord;
  request: InvokeRequest;
}

// SpanKind and SpanStatusCode values of @opentelemetry/api (numbers, so no runtime import is needed).
const KIND = { internal: 0, server: 1, consumer: 4 } as const;
const STATUS = { unset: 0, error: 2 } as const;

const FAAS_TRIGGER: Record<Trigger, string> = { http: 'http', api: 'http', binding: 'http', queue: 'pubsub', cron: 'timer', event: 'other' };
const SCOPE = { name: 'continuum', version: '0.1.0' };

export class Tracer {
  readonly #exporter: OTLPTraceExporter;
  readonly #nodeName: string;
  readonly #onError: (message: string) => void;
  readonly #resources = new Map<string, Resource>();
  readonly #timer: NodeJS.Timeout;
  #pending: Finished[] = [];
  #flushing: Promise<void> | null = null;
  #flushSoon = false;
  /** Invocations dropped because the export fell behind. */
  dropped = 0;
  /** Spans handed to the exporter so far, and how many of them it failed to deliver. */
  exported = 0;
  failed = 0;

  constructor(opts: TraceExportOptions) {
    const url = /\/v1\/traces\/?$/.test(opts.endpoint) ? opts.endpoint : `${opts.endpoint.replace(/\/+$/, '')}/v1/traces`;
    this.#exporter = new OTLPTraceExporter({ url, headers: opts.headers ?? {}, timeoutMillis: TRACE_DEFAULTS.exportTimeoutMs });
    this.#nodeName = opts.nodeName;
    this.#onError = opts.onError ?? (() => {});
    this.#timer = setInterval(() => void this.flush(), opts.exportIntervalMs ?? TRACE_DEFAULTS.exportIntervalMs);
    this.#timer.unref();
  }

  /**
   * Hot path: continue the incoming context (or start a trace), draw the root and execution span ids and
   * give the request the execution span's traceparent — as `request.traceparent` (what binding calls and
   * queue sends carry on) and as its `traceparent` header (what the function sees).
   */
  start(request: InvokeRequest): SpanIds {
    const parent = parseTraceparent(request.traceparent);
    const traceId = parent ? parent.traceId : randomHex(16);
    const ids: SpanIds = {
      traceId,
      parentSpanId: parent ? parent.spanId : null,
      rootSpanId: randomHex(8),
      execSpanId: randomHex(8),
      // Parent-based sampling: a caller that chose not to sample is followed; everything else is kept.
      sampled: parent ? parent.sampled : true,
      startMs: performance.timeOrigin + performance.now(),
    };
    const traceparent = formatTraceparent(traceId, ids.execSpanId, ids.sampled);
    request.traceparent = traceparent;
    const headers = request.request.headers;
    const at = headers.findIndex(([name]) => name.length === 11 && name.toLowerCase() === 'traceparent');
    if (at === -1) headers.push(['traceparent', traceparent]);
    else headers[at] = ['traceparent', traceparent];
    return ids;
  }

  /** The invocation finished: queue it for span building (nothing else on this path). */
  end(ids: SpanIds, record: InvocationRecord, request: InvokeRequest): void {
    if (!ids.sampled) return;
    if (this.#pending.length >= TRACE_DEFAULTS.maxQueued) {
      this.#pending.shift();
      this.dropped++;
    }
    this.#pending.push({ ids, endMs: performance.timeOrigin + performance.now(), record, request });
    // A full batch is built on a later turn: never inside the invocation's own completion.
    if (this.#pending.length >= TRACE_DEFAULTS.maxBatch && !this.#flushSoon) {
      this.#flushSoon = true;
      setImmediate(() => {
        this.#flushSoon = false;
        void this.flush();
      });
    }
  }

  /** Build and export everything queued so far, one batch at a time; resolves when the exporter has answered. */
  flush(): Promise<void> {
    this.#flushing ??= this.#drain().finally(() => {
      this.#flushing = null;
    });
    return this.#flushing;
  }

  async #drain(): Promise<void> {
    while (this.#pending.length > 0) {
      const batch = this.#pending.splice(0, TRACE_DEFAULTS.maxBatch);
      const spans = batch.flatMap((f) => this.#spans(f));
      await new Promise<void>((resolve) => {
        this.#exporter.export(spans, (result) => {
          this.exported += spans.length;
          if (result.code !== 0) {
            this.failed += spans.length;
            this.#onError(`trace export failed: ${result.error?.message ?? 'unknown error'}`);
          }
          resolve();
        });
      });
    }
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.flush();
    await this.#exporter.shutdown();
  }

  #spans(f: Finished): ReadableSpan[] {
    const { ids, record, request } = f;
    const resource = this.#resource(record.functionName);
    const make = (name: string, kind: number, spanId: string, parentId: string | null, startMs: number, endMs: number, attributes: Attributes, error: string | null, links: Link[] = []): ReadableSpan => {
      const context: SpanContext = { traceId: ids.traceId, spanId, traceFlags: 1 };
      const startTime = hr(startMs);
      const endTime = hr(Math.max(startMs, endMs));
      return {
        name,
        kind,
        spanContext: () => context,
        ...(parentId ? { parentSpanContext: { traceId: ids.traceId, spanId: parentId, traceFlags: 1, isRemote: parentId === ids.parentSpanId } } : {}),
        startTime,
        endTime,
        duration: hr(Math.max(0, endMs - startMs)),
        status: error === null ? { code: STATUS.unset } : { code: STATUS.error, message: error },
        attributes,
        links,
        events: [],
        ended: true,
        resource,
        instrumentationScope: SCOPE,
        droppedAttributesCount: 0,
        droppedEventsCount: 0,
        droppedLinksCount: 0,
      };
    };
    const error = record.outcome === 'error' ? `${record.errorCode}: ${record.errorMessage ?? ''}`.slice(0, 500) : null;
    // The record's phases add up to its total: wait, cold start and overhead before execution, then execution.
    const p = record.phases;
    const execStartMs = Math.max(ids.startMs, f.endMs - p.execMs);
    const faas: Attributes = {
      'faas.trigger': FAAS_TRIGGER[record.trigger] ?? 'other',
      'faas.invocation.id': record.id,
      'faas.name': record.functionName,
      'faas.version': record.versionId,
      'faas.coldstart': record.coldStart,
      'continuum.trigger': record.trigger,
      'continuum.tier': record.tier,
      'continuum.node': record.node,
    };
    if (record.instanceId) faas['faas.instance'] = record.instanceId;
    if (record.errorCode) faas['error.type'] = record.errorCode;
    if (record.callerFunction) faas['continuum.caller.function'] = record.callerFunction;
    if (record.parentInvocationId) faas['continuum.caller.invocation_id'] = record.parentInvocationId;
    const head = request.request;
    let rootName: string;
    let kind: number = KIND.server;
    if (head.event?.kind === 'queue') {
      kind = KIND.consumer;
      rootName = `process ${head.event.queue}`;
      Object.assign(faas, {
        'messaging.system': 'continuum',
        'messaging.operation.type': 'process',
        'messaging.operation.name': 'process',
        'messaging.destination.name': head.event.queue,
      });
      if (record.event) faas['messaging.message.id'] = record.event.id;
    } else if (head.event?.kind === 'scheduled') {
      rootName = `${record.functionName} scheduled`;
      faas['faas.cron'] = head.event.cron;
    } else if (head.event?.kind === 'invoke') {
      rootName = `invoke ${record.functionName}`;
    } else {
      rootName = `${head.method} ${record.functionName}`;
      Object.assign(faas, httpAttributes(head.method, head.url, record.status));
    }
    const httpError = record.status !== null && record.status >= 500 && head.event === undefined ? `HTTP ${record.status}` : null;
    const links: Link[] = [];
    for (const t of request.traceLinks ?? []) {
      const p = parseTraceparent(t);
      if (p) links.push({ context: { traceId: p.traceId, spanId: p.spanId, traceFlags: p.sampled ? 1 : 0, isRemote: true } });
    }
    const spans = [make(rootName, kind, ids.rootSpanId, ids.parentSpanId, ids.startMs, f.endMs, faas, error ?? httpError, links)];
    const scheduleId = spanId();
    spans.push(make('schedule', KIND.internal, scheduleId, ids.rootSpanId, ids.startMs, execStartMs, { 'continuum.queue_ms': p.queueMs, 'continuum.overhead_ms': p.overheadMs }, null));
    if (record.coldStart && p.initMs > 0) {
      const coldId = spanId();
      let at = ids.startMs + p.queueMs;
      spans.push(make('cold start', KIND.internal, coldId, scheduleId, at, at + p.initMs, { 'faas.coldstart': true, 'continuum.tier': record.tier }, null));
      for (const [name, ms] of [['sandbox create', p.sandboxMs], ['runtime init', p.runtimeInitMs], ['module load', p.moduleLoadMs]] as const) {
        spans.push(make(name, KIND.internal, spanId(), coldId, at, at + ms, {}, null));
        at += ms;
      }
    }
    if (record.instanceId !== null) {
      spans.push(make(`execute ${record.functionName}`, KIND.internal, ids.execSpanId, ids.rootSpanId, execStartMs, f.endMs, { 'faas.invocation.id': record.id, 'continuum.cpu_ms': record.cpuMs }, error));
    }
    return spans;
  }

  #resource(functionName: string): Resource {
    let r = this.#resources.get(functionName);
    if (!r) {
      // Each function is a service: trace views and service maps then show functions, not one platform blob.
      r = resourceFromAttributes({ 'service.name': functionName, 'service.namespace': 'continuum', 'faas.name': functionName, 'host.name': this.#nodeName });
      this.#resources.set(functionName, r);
    }
    return r;
  }
}

function httpAttributes(method: string, url: string, status: number | null): Attributes {
  const out: Attributes = { 'http.request.method': method };
  try {
    const u = new URL(url);
    out['url.scheme'] = u.protocol.replace(/:$/, '');
    out['url.path'] = u.pathname;
    if (u.search) out['url.query'] = u.search.slice(1);
    out['server.address'] = u.hostname;
    if (u.port) out['server.port'] = Number(u.port);
  } catch {
    // a malformed URL only loses its parts
  }
  if (status !== null) out['http.response.status_code'] = status;
  return out;
}

/** Random ids come from a pool refilled in bulk: one CSPRNG call per 512 span ids, not one per id. */
const pool = Buffer.alloc(4096);
let poolAt = pool.length;

function randomHex(bytes: number): string {
  if (poolAt + bytes > pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  poolAt += bytes;
  return pool.toString('hex', poolAt - bytes, poolAt);
}

function spanId(): string {
  return randomHex(8);
}

function hr(ms: number): HrTime {
  const seconds = Math.floor(ms / 1000);
  return [seconds, Math.min(999_999_999, Math.round((ms - seconds * 1000) * 1e6))];
}
