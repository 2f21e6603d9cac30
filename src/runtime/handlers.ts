/**
 * Handler detection and the per-format call, shared by the isolate runtime (bundled into the isolate
 * prelude) and the process tier's agent. Pure: no host bridges, no Node built-ins, no globals beyond
 * the ECMAScript ones, so the same code runs in both.
 */
import type { WireBatchOutcome, WireEventHead, WireQueueMessage, WireRequestHead } from './isolate/protocol.ts';
import { lambdaEventV1, lambdaEventV2, lambdaResult, openwhiskParams, openwhiskResult, type PlainResponse } from './isolate/adapters.ts';
import {
  AWS_ACCOUNT,
  AWS_REGION,
  decodeBatch,
  invokeParams,
  invokePayload,
  openwhiskQueueParams,
  QueueDecisions,
  scheduledEvent,
  sqsEvent,
  sqsOutcome,
  workersBatch,
} from './isolate/events.ts';

export type Fn = (...args: unknown[]) => unknown;

export interface Handler {
  format: 'fetch' | 'lambda' | 'openwhisk';
  exportName: string;
  /** The Workers default export (`this` of its methods); undefined for Lambda and OpenWhisk. */
  target: unknown;
  /** Lambda handler, OpenWhisk main, or the Workers fetch method (null when the module has only queue/scheduled). */
  handler: Fn | null;
}

/** A loaded module with what its handler is called with. */
export interface LoadedModule extends Handler {
  /** `process.env`: the plain string variables. */
  vars: Record<string, string>;
  /** The Workers `env`: the variables plus binding objects. */
  env: Record<string, unknown>;
  functionName: string;
  versionId: string;
  memoryLimitMb: number;
  timeoutMs: number;
  payload: '1.0' | '2.0';
}

/** What an engine provides for one buffered invocation. */
export interface HandlerIo {
  /** The Workers `ctx` (ExecutionContext) of this invocation. */
  executionContext(): Record<string, unknown>;
  sendPlain(res: PlainResponse): void;
  fail(err: unknown): void;
  log(level: 'error', args: unknown[]): void;
  describe(err: unknown): string;
}

export interface HandlerInvocation {
  id: string;
  head: WireRequestHead;
  started: number;
}

/**
 * An export of the loaded module. Exports may be getters (esbuild's ESM→CJS interop defines them so);
 * they run in the tenant's own sandbox, so reading them is safe. As in Node's import of CommonJS,
 * `default` falls back to module.exports itself.
 */
function pick(exportsValue: unknown, name: string): unknown {
  if (exportsValue === null || (typeof exportsValue !== 'object' && typeof exportsValue !== 'function')) return undefined;
  if (Object.prototype.hasOwnProperty.call(exportsValue, name)) return (exportsValue as Record<string, unknown>)[name];
  return name === 'default' ? exportsValue : undefined;
}

/** Finds the handler: format 'auto' tries Workers fetch, Lambda, then OpenWhisk. Throws (code bad_bundle) when none fits. */
export function detect(exp: unknown, format: string, exportName: string | null): Handler {
  // A Workers module may export only event handlers (queue, scheduled); requests then fail at invocation.
  const fetchFrom = (name: string): Handler | null => {
    const obj = name === '' ? exp : pick(exp, name);
    if (obj === null || (typeof obj !== 'object' && typeof obj !== 'function')) return null;
    const o = obj as { fetch?: unknown; queue?: unknown; scheduled?: unknown };
    const fn = o.fetch;
    if (typeof fn !== 'function' && typeof o.queue !== 'function' && typeof o.scheduled !== 'function') return null;
    return { format: 'fetch', exportName: name || 'module.exports', target: obj, handler: typeof fn === 'function' ? (fn as Fn) : null };
  };
  const fnFrom = (f: 'lambda' | 'openwhisk', name: string): Handler | null => {
    const fn = pick(exp, name);
    return typeof fn === 'function' ? { format: f, exportName: name, target: undefined, handler: fn as Fn } : null;
  };
  const tries: Array<() => Handler | null> = [];
  if (format === 'fetch' || format === 'auto') tries.push(() => fetchFrom(exportName ?? 'default'));
  if (format === 'fetch' && exportName === null) tries.push(() => fetchFrom(''));
  if (format === 'lambda' || format === 'auto') tries.push(() => fnFrom('lambda', exportName ?? 'handler'));
  if (format === 'openwhisk' || format === 'auto') tries.push(() => fnFrom('openwhisk', exportName ?? 'main'));
  if (format === 'auto' && exportName === null) tries.push(() => fetchFrom(''));
  for (const t of tries) {
    const found = t();
    if (found) return found;
  }
  const want = format === 'auto' ? 'a default export with a fetch, queue or scheduled method, a handler export or a main export' : `a ${format} handler${exportName ? ` in export '${exportName}'` : ''}`;
  throw Object.assign(new Error(`No handler found: expected ${want}`), { code: 'bad_bundle' });
}

function lambdaContext(l: LoadedModule, inv: HandlerInvocation, extra: Record<string, unknown> | undefined): Record<string, unknown> {
  const deadline = inv.started + l.timeoutMs;
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: l.functionName,
    functionVersion: l.versionId,
    invokedFunctionArn: `arn:aws:lambda:${AWS_REGION}:${AWS_ACCOUNT}:function:${l.functionName}`,
    memoryLimitInMB: String(l.memoryLimitMb),
    awsRequestId: inv.id,
    logGroupName: `/aws/lambda/${l.functionName}`,
    logStreamName: `${new Date(inv.started).toISOString().slice(0, 10).replace(/-/g, '/')}/[${l.versionId}]continuum`,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    ...extra,
  };
}

/** How each format receives one invocation; built lazily, only the loaded format's shape is made. */
interface Shapes {
  /** A Workers default-export method and its first argument (fetch-format modules). */
  workers?: () => ['queue' | 'scheduled', unknown];
  lambda: () => unknown;
  openwhisk: () => Record<string, unknown>;
}

/**
 * Calls the module's handler with the shape of its format; the promise settles with its result. Throws
 * at once when a Workers module lacks the method (a function_error, not a handler failure).
 */
function callHandler(l: LoadedModule, inv: HandlerInvocation, io: HandlerIo, shapes: Shapes, lambdaExtra?: Record<string, unknown>): Promise<unknown> {
  if (l.format === 'fetch') {
    const [method, arg] = shapes.workers!();
    const fn = (l.target as Record<string, unknown>)[method];
    if (typeof fn !== 'function') {
      const signature = method === 'queue' ? 'queue(batch, env, ctx)' : 'scheduled(controller, env, ctx)';
      throw new TypeError(`No ${method} handler: add ${signature} to the module's default export to receive ${method === 'queue' ? 'queue messages' : 'cron triggers'}`);
    }
    return new Promise((resolve) => resolve(Reflect.apply(fn, l.target, [arg, l.env, io.executionContext()])));
  }
  const handler = l.handler!;
  if (l.format === 'openwhisk') return new Promise((resolve) => resolve(Reflect.apply(handler, undefined, [shapes.openwhisk()])));
  const event = shapes.lambda();
  const context = lambdaContext(l, inv, lambdaExtra);
  return new Promise((resolve, reject) => {
    const callback = (err: unknown, value: unknown) => (err ? reject(err) : resolve(value));
    Object.assign(context, { done: callback, succeed: (v: unknown) => resolve(v), fail: (e: unknown) => reject(e) });
    const r = Reflect.apply(handler, undefined, handler.length >= 3 ? [event, context, callback] : [event, context]);
    if (handler.length < 3 || (r !== null && typeof r === 'object' && typeof (r as Promise<unknown>).then === 'function')) resolve(r);
  });
}

const encoder = new TextEncoder();

function jsonResponse(status: number, value: unknown): PlainResponse {
  return { status, headers: [['content-type', 'application/json']], body: encoder.encode(JSON.stringify(value) ?? 'null') };
}

const EMPTY_OK: PlainResponse = { status: 200, headers: [], body: new Uint8Array(0) };

/** The id a function sees for an event: the delivery's, the same on every attempt, when the head names one. */
function deliveryId(inv: HandlerInvocation, ev: { invocationId?: string }): string {
  return typeof ev.invocationId === 'string' && ev.invocationId !== '' ? ev.invocationId : inv.id;
}

/**
 * A queue batch. The answer (WireBatchOutcome) says which messages were acked and which retried: the
 * Workers handler's own ack/retry calls, the Lambda partial batch response, or all-or-nothing for
 * OpenWhisk; a handler that throws answers 500.
 */
function runQueue(l: LoadedModule, inv: HandlerInvocation, io: HandlerIo, queue: string, messages: WireQueueMessage[]): void {
  const ids = messages.map((m) => m.id);
  const decisions = new QueueDecisions();
  const answer = (status: number, outcome: WireBatchOutcome) => {
    if (outcome.error !== null) io.log('error', [`queue batch from '${queue}' failed: ${outcome.error}`]);
    io.sendPlain(jsonResponse(status, outcome));
  };
  callHandler(l, inv, io, {
    workers: () => ['queue', workersBatch(queue, messages, decisions)],
    lambda: () => sqsEvent(queue, messages, inv.started),
    openwhisk: () => openwhiskQueueParams(queue, messages),
  })
    .then(
      (result) => {
        if (l.format === 'lambda') {
          const { ok, outcome } = sqsOutcome(result, ids);
          answer(ok ? 200 : 500, outcome);
        } else {
          answer(200, l.format === 'fetch' ? decisions.outcome(ids, null) : { acked: ids, retried: [], error: null });
        }
      },
      (err) => {
        const error = io.describe(err);
        // Workers: explicit acks stand even when the handler throws (Cloudflare); the rest are retried.
        answer(500, l.format === 'fetch' ? decisions.outcome(ids, error) : { acked: [], retried: [], error });
      },
    )
    .catch((err) => io.fail(err));
}

/**
 * Invocations that need the whole body first: Lambda and OpenWhisk HTTP requests (API Gateway events /
 * web-action params), queue batches, cron fires, and async invokes of Lambda/OpenWhisk handlers (fetch
 * handlers get those as the request itself).
 */
export function runBuffered(l: LoadedModule, inv: HandlerInvocation, body: Uint8Array | null, io: HandlerIo): void {
  const ev: WireEventHead | undefined = inv.head.event;
  const plain = (promise: Promise<unknown>, toResponse: (value: unknown) => PlainResponse) =>
    promise.then((value) => io.sendPlain(toResponse(value))).catch((err) => io.fail(err));
  try {
    if (ev === undefined) {
      const facts = { invocationId: inv.id, functionName: l.functionName, versionId: l.versionId, clientIp: inv.head.clientIp ?? '', now: inv.started };
      plain(
        callHandler(l, inv, io, {
          lambda: () => (l.payload === '1.0' ? lambdaEventV1(inv.head, body, facts) : lambdaEventV2(inv.head, body, facts)),
          openwhisk: () => openwhiskParams(inv.head, body, l.vars),
        }),
        (value) => (l.format === 'lambda' ? lambdaResult(value, l.payload) : openwhiskResult(value)),
      );
    } else if (ev.kind === 'queue') {
      runQueue(l, inv, io, String(ev.queue), decodeBatch(body));
    } else if (ev.kind === 'scheduled') {
      const id = deliveryId(inv, ev);
      plain(
        callHandler(l, inv, io, {
          // noRetry() has nothing to turn off: cron fires are not retried.
          workers: () => ['scheduled', Object.freeze({ scheduledTime: ev.scheduledTime, cron: ev.cron, noRetry() {} })],
          lambda: () => scheduledEvent(id, l.functionName, ev.scheduledTime),
          openwhisk: () => ({ cron: ev.cron, scheduledTime: ev.scheduledTime }),
        }, { awsRequestId: id }),
        () => EMPTY_OK,
      );
    } else if (ev.kind === 'invoke') {
      // attempt and idempotencyKey on the Lambda context are Continuum extensions (Workers see them as request headers).
      const extra = { awsRequestId: deliveryId(inv, ev), attempt: ev.attempt, idempotencyKey: ev.idempotencyKey };
      plain(
        callHandler(l, inv, io, { lambda: () => invokePayload(body), openwhisk: () => invokeParams(body) }, extra),
        (value) => jsonResponse(200, l.format === 'openwhisk' && value === undefined ? {} : value),
      );
    } else {
      throw new TypeError(`unsupported event kind ${JSON.stringify(String((ev as { kind: unknown }).kind)).slice(0, 40)}`);
    }
  } catch (err) {
    io.fail(err);
  }
}

/** Requests and async invokes of a fetch-format module go to its fetch method as a Request. */
export function servesAsRequest(l: Handler, head: WireRequestHead): boolean {
  return l.format === 'fetch' && (head.event === undefined || head.event.kind === 'invoke');
}
