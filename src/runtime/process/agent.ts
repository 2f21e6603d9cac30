/**
 * The process tier's guest engine: runs inside the sandbox (bwrap, seccomp, cgroup leaf, Node permission
 * model) on the pinned Node binary, loads the function's bundle from BUNDLE_PATH with Node's own module
 * loader (built-ins and native addons work) and serves invocations in the handler formats of the isolate
 * tier, with Node's own fetch, Request and Response. The pure event/adapter code is shared with the
 * isolate runtime; the frame protocol around this engine is the isolate worker's (the driver's
 * sandbox-entry.ts wires the two), so both tiers speak one protocol.
 *
 * One engine hosts one sandbox: the process is the instance. Imports nothing from the host side.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createRequire } from 'node:module';
import { format as formatLog } from 'node:util';
import type { WireEventHead, WireLoadOptions, WireQueueMessage, WireRequestHead } from '../isolate/protocol.ts';
import { lambdaEventV1, lambdaEventV2, lambdaResult, openwhiskParams, openwhiskResult, type PlainResponse } from '../isolate/adapters.ts';
import {
  AWS_ACCOUNT,
  AWS_REGION,
  checkDelay,
  decodeBatch,
  encodeQueueBody,
  invokeParams,
  invokePayload,
  openwhiskQueueParams,
  QueueDecisions,
  scheduledEvent,
  sqsEvent,
  sqsOutcome,
  workersBatch,
} from '../isolate/events.ts';

/** Where the driver mounts the function's bundle (read-only) inside the sandbox. */
export const BUNDLE_DIR = '/fn';
export const BUNDLE_PATH = `${BUNDLE_DIR}/index.js`;

type Level = 'log' | 'debug' | 'info' | 'warn' | 'error';
type Fn = (...args: unknown[]) => unknown;

/** The callbacks the frame loop gives an engine (structurally the isolate worker's WorkerSandboxCallbacks). */
export interface AgentCallbacks {
  onRespond(invocationId: string, head: { status: number; headers: Array<[string, string]> }): void;
  onChunk(invocationId: string, bytes: Uint8Array): void;
  onFinish(invocationId: string, error: { code: 'function_error' | 'bad_request'; message: string } | null): void;
  onLog(invocationId: string, level: Level, message: string): void;
  onQueueSend(invocationId: string, binding: string, messages: Array<{ body: Uint8Array; contentType: string; delayMs?: number }>): Promise<string[]>;
}

interface Invocation {
  id: string;
  head: WireRequestHead;
  started: number;
  ac: AbortController;
  bodyController: ReadableStreamDefaultController<Uint8Array> | null;
  /** Buffered request body (every format but fetch), or null when streaming. */
  chunks: Uint8Array[] | null;
  onBodyEnd: ((body: Uint8Array | null) => void) | null;
  ended: boolean;
}

interface Loaded {
  format: 'fetch' | 'lambda' | 'openwhisk';
  exportName: string;
  target: unknown;
  handler: Fn | null;
  vars: Record<string, string>;
  env: Record<string, unknown>;
  load: WireLoadOptions;
  payload: '1.0' | '2.0';
}

const encoder = new TextEncoder();
const EMPTY_OK: PlainResponse = { status: 200, headers: [], body: new Uint8Array(0) };

function describe(err: unknown): string {
  try {
    if (err instanceof Error) return (err.message ? `${err.name}: ${err.message}` : err.name).slice(0, 2000);
    return `Uncaught ${formatLog(err)}`.slice(0, 2000);
  } catch {
    return 'Uncaught exception';
  }
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.byteLength;
  }
  return out;
}

/** An export as Node's import of CommonJS sees it: `default` falls back to module.exports itself. */
function pick(exp: unknown, name: string): unknown {
  if (exp === null || (typeof exp !== 'object' && typeof exp !== 'function')) return undefined;
  if (Object.prototype.hasOwnProperty.call(exp, name)) return (exp as Record<string, unknown>)[name];
  return name === 'default' ? exp : undefined;
}

/** Handler detection with the isolate runtime's rules (format 'auto' tries fetch, Lambda, OpenWhisk). */
type Found = Pick<Loaded, 'format' | 'exportName' | 'target' | 'handler'>;

function detect(exp: unknown, format: string, exportName: string | null): Found {
  const fetchFrom = (name: string): Found | null => {
    const obj = name === '' ? exp : pick(exp, name);
    if (obj === null || (typeof obj !== 'object' && typeof obj !== 'function')) return null;
    const o = obj as { fetch?: unknown; queue?: unknown; scheduled?: unknown };
    if (typeof o.fetch !== 'function' && typeof o.queue !== 'function' && typeof o.scheduled !== 'function') return null;
    return { format: 'fetch' as const, exportName: name || 'module.exports', target: obj, handler: typeof o.fetch === 'function' ? (o.fetch as Fn) : null };
  };
  const fnFrom = (f: 'lambda' | 'openwhisk', name: string): Found | null => {
    const fn = pick(exp, name);
    return typeof fn === 'function' ? { format: f, exportName: name, target: undefined, handler: fn as Fn } : null;
  };
  const tries: Array<() => Found | null> = [];
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

/**
 * The engine the frame loop drives. `createSandbox` loads the bundle once; a second call is refused
 * (one process, one instance).
 */
export function createAgentEngine(options: { bundlePath?: string } = {}) {
  const bundlePath = options.bundlePath ?? BUNDLE_PATH;
  const current = new AsyncLocalStorage<Invocation>();
  let created = false;

  return {
    createSandbox({ load, callbacks }: { code: string; load: WireLoadOptions; callbacks: AgentCallbacks }) {
      if (created) throw Object.assign(new Error('this sandbox already holds an instance'), { code: 'internal' });
      created = true;
      const invocations = new Map<string, Invocation>();
      let disposed = false;

      // Console output is attributed to the invocation whose async context wrote it; output outside any
      // invocation (module load, stray timers) goes to stderr, which the driver reads as diagnostics.
      const log = (level: Level, args: unknown[]) => {
        const inv = current.getStore();
        let message: string;
        try {
          message = formatLog(...args);
        } catch {
          message = '[unformattable log message]';
        }
        if (inv && !inv.ended) callbacks.onLog(inv.id, level, message);
        else process.stderr.write(`${message.slice(0, 4096)}\n`);
      };
      for (const [method, level] of [['log', 'log'], ['info', 'info'], ['debug', 'debug'], ['warn', 'warn'], ['error', 'error'], ['trace', 'debug']] as const) {
        console[method] = (...args: unknown[]) => log(level, args);
      }

      const vars: Record<string, string> = {};
      for (const [k, v] of Object.entries(load.env ?? {})) vars[k] = String(v);
      // The sandbox starts with an empty environment (bwrap --clearenv): it gets the function's variables only.
      // eslint-disable-next-line no-restricted-properties -- the guest sets the function's own variables; it reads nothing from them
      Object.assign(process.env, vars);
      const env: Record<string, unknown> = { ...vars };
      for (const name of load.bindings ?? []) env[name] = queueBinding(name);
      Object.freeze(env);

      function queueBinding(name: string): object {
        const send = (messages: Array<{ bytes: Uint8Array; contentType: string; delaySeconds: number | undefined }>) => {
          const inv = current.getStore();
          const wire = messages.map((m) => (m.delaySeconds === undefined ? { body: m.bytes, contentType: m.contentType } : { body: m.bytes, contentType: m.contentType, delayMs: Math.round(m.delaySeconds * 1000) }));
          return callbacks.onQueueSend(inv?.id ?? '', name, wire).then((ids) => ({ ids }));
        };
        return Object.freeze({
          async send(body: unknown, options?: { contentType?: unknown; delaySeconds?: number }) {
            return send([{ ...encodeQueueBody(body, options?.contentType), delaySeconds: checkDelay(options, 'send') }]);
          },
          async sendBatch(messages: Iterable<{ body: unknown; contentType?: unknown; delaySeconds?: number }>, options?: { delaySeconds?: number }) {
            const batchDelay = checkDelay(options, 'sendBatch');
            const list = [...messages].map((m) => ({ ...encodeQueueBody(m.body, m.contentType), delaySeconds: checkDelay(m, 'sendBatch') ?? batchDelay }));
            if (list.length === 0) throw new TypeError('sendBatch: no messages to send');
            return send(list);
          },
        });
      }

      const t0 = performance.now();
      const requireFn = createRequire(bundlePath);
      const exp: unknown = requireFn(bundlePath);
      const found = detect(exp, load.format ?? 'auto', load.exportName ?? null);
      const moduleMs = performance.now() - t0;
      const loaded: Loaded = { ...found, vars, env, load, payload: load.payload === '1.0' ? '1.0' : '2.0' };

      const finish = (inv: Invocation, error: { code: 'function_error' | 'bad_request'; message: string } | null) => {
        if (inv.ended) return;
        inv.ended = true;
        invocations.delete(inv.id);
        callbacks.onFinish(inv.id, error);
      };
      const fail = (inv: Invocation, err: unknown) => finish(inv, { code: 'function_error', message: describe(err) });
      const sendPlain = (inv: Invocation, res: PlainResponse) => {
        if (inv.ended) return;
        callbacks.onRespond(inv.id, { status: res.status, headers: res.headers });
        if (res.body.byteLength > 0) callbacks.onChunk(inv.id, res.body);
        finish(inv, null);
      };
      const ctx = () => ({
        waitUntil(promise: unknown) {
          Promise.resolve(promise).catch((err) => log('error', ['Uncaught (in waitUntil)', err]));
        },
        passThroughOnException() {},
        props: {},
      });

      async function sendResponse(inv: Invocation, res: unknown): Promise<void> {
        if (inv.ended) return;
        if (!(res instanceof Response)) throw new TypeError('The handler did not return a Response');
        callbacks.onRespond(inv.id, { status: res.status, headers: [...res.headers] });
        if (res.body !== null) {
          const reader = res.body.getReader();
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            if (inv.ended) {
              await reader.cancel().catch(() => {});
              return;
            }
            if (!(value instanceof Uint8Array)) throw new TypeError('Response body chunks must be Uint8Array');
            if (value.byteLength > 0) callbacks.onChunk(inv.id, value);
          }
        }
        finish(inv, null);
      }

      function runFetch(inv: Invocation, hasBody: boolean): void {
        if (loaded.handler === null) {
          fail(inv, new TypeError('No fetch handler: this module exports only event handlers; add fetch(request, env, ctx) to its default export to serve requests'));
          return;
        }
        let body: ReadableStream<Uint8Array> | null = null;
        if (hasBody && inv.head.method !== 'GET' && inv.head.method !== 'HEAD') {
          body = new ReadableStream<Uint8Array>({ start: (c) => void (inv.bodyController = c) });
        }
        const init: RequestInit & { duplex?: 'half' } = { method: inv.head.method, headers: inv.head.headers, signal: inv.ac.signal };
        if (body !== null) {
          init.body = body;
          init.duplex = 'half';
        }
        new Promise((resolve) => resolve(Reflect.apply(loaded.handler!, loaded.target, [new Request(inv.head.url, init), env, ctx()])))
          .then((res) => sendResponse(inv, res))
          .catch((err) => fail(inv, err));
      }

      function lambdaContext(inv: Invocation, extra?: Record<string, unknown>): Record<string, unknown> {
        const deadline = inv.started + load.timeoutMs;
        return {
          callbackWaitsForEmptyEventLoop: true,
          functionName: load.functionName,
          functionVersion: load.versionId,
          invokedFunctionArn: `arn:aws:lambda:${AWS_REGION}:${AWS_ACCOUNT}:function:${load.functionName}`,
          memoryLimitInMB: String(load.memoryLimitMb),
          awsRequestId: inv.id,
          logGroupName: `/aws/lambda/${load.functionName}`,
          logStreamName: `${new Date(inv.started).toISOString().slice(0, 10).replace(/-/g, '/')}/[${load.versionId}]continuum`,
          getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
          ...extra,
        };
      }

      /** Calls the handler with its format's shape of the invocation (as the isolate runtime's callHandler). */
      function callHandler(inv: Invocation, shapes: { workers?: () => ['queue' | 'scheduled', unknown]; lambda: () => unknown; openwhisk: () => Record<string, unknown> }, lambdaExtra?: Record<string, unknown>): Promise<unknown> {
        if (loaded.format === 'fetch') {
          const [method, arg] = shapes.workers!();
          const fn = (loaded.target as Record<string, unknown>)[method];
          if (typeof fn !== 'function') {
            const signature = method === 'queue' ? 'queue(batch, env, ctx)' : 'scheduled(controller, env, ctx)';
            throw new TypeError(`No ${method} handler: add ${signature} to the module's default export to receive ${method === 'queue' ? 'queue messages' : 'cron triggers'}`);
          }
          return new Promise((resolve) => resolve(Reflect.apply(fn, loaded.target, [arg, env, ctx()])));
        }
        const handler = loaded.handler!;
        if (loaded.format === 'openwhisk') return new Promise((resolve) => resolve(Reflect.apply(handler, undefined, [shapes.openwhisk()])));
        const event = shapes.lambda();
        const context = lambdaContext(inv, lambdaExtra);
        return new Promise((resolve, reject) => {
          const callback = (err: unknown, value: unknown) => (err ? reject(err) : resolve(value));
          Object.assign(context, { done: callback, succeed: (v: unknown) => resolve(v), fail: (e: unknown) => reject(e) });
          const r = Reflect.apply(handler, undefined, handler.length >= 3 ? [event, context, callback] : [event, context]);
          if (handler.length < 3 || (r !== null && typeof r === 'object' && typeof (r as Promise<unknown>).then === 'function')) resolve(r);
        });
      }

      const json = (status: number, value: unknown): PlainResponse => ({ status, headers: [['content-type', 'application/json']], body: encoder.encode(JSON.stringify(value) ?? 'null') });
      const deliveryId = (inv: Invocation, ev: { invocationId?: string }) => (typeof ev.invocationId === 'string' && ev.invocationId !== '' ? ev.invocationId : inv.id);

      function runBuffered(inv: Invocation, body: Uint8Array | null): void {
        const ev: WireEventHead | undefined = inv.head.event;
        const facts = { invocationId: inv.id, functionName: load.functionName, versionId: load.versionId, clientIp: inv.head.clientIp ?? '', now: inv.started };
        try {
          if (ev === undefined) {
            callHandler(inv, {
              lambda: () => (loaded.payload === '1.0' ? lambdaEventV1(inv.head, body, facts) : lambdaEventV2(inv.head, body, facts)),
              openwhisk: () => openwhiskParams(inv.head, body, vars),
            })
              .then((value) => sendPlain(inv, loaded.format === 'lambda' ? lambdaResult(value, loaded.payload) : openwhiskResult(value)))
              .catch((err) => fail(inv, err));
          } else if (ev.kind === 'queue') {
            runQueue(inv, String(ev.queue), decodeBatch(body));
          } else if (ev.kind === 'scheduled') {
            const id = deliveryId(inv, ev);
            callHandler(inv, {
              workers: () => ['scheduled', Object.freeze({ scheduledTime: ev.scheduledTime, cron: ev.cron, noRetry() {} })],
              lambda: () => scheduledEvent(id, load.functionName, ev.scheduledTime),
              openwhisk: () => ({ cron: ev.cron, scheduledTime: ev.scheduledTime }),
            }, { awsRequestId: id })
              .then(() => sendPlain(inv, EMPTY_OK))
              .catch((err) => fail(inv, err));
          } else if (ev.kind === 'invoke') {
            const extra = { awsRequestId: deliveryId(inv, ev), attempt: ev.attempt, idempotencyKey: ev.idempotencyKey };
            callHandler(inv, { lambda: () => invokePayload(body), openwhisk: () => invokeParams(body) }, extra)
              .then((value) => sendPlain(inv, json(200, loaded.format === 'openwhisk' && value === undefined ? {} : value)))
              .catch((err) => fail(inv, err));
          } else {
            throw new TypeError('unsupported event kind');
          }
        } catch (err) {
          fail(inv, err);
        }
      }

      function runQueue(inv: Invocation, queue: string, messages: WireQueueMessage[]): void {
        const ids = messages.map((m) => m.id);
        const decisions = new QueueDecisions();
        const answer = (status: number, outcome: { acked: string[]; retried: Array<{ id: string; delaySeconds?: number }>; error: string | null }) => {
          if (outcome.error !== null) log('error', [`queue batch from '${queue}' failed: ${outcome.error}`]);
          sendPlain(inv, json(status, outcome));
        };
        callHandler(inv, {
          workers: () => ['queue', workersBatch(queue, messages, decisions)],
          lambda: () => sqsEvent(queue, messages, inv.started),
          openwhisk: () => openwhiskQueueParams(queue, messages),
        })
          .then(
            (result) => {
              if (loaded.format === 'lambda') {
                const { ok, outcome } = sqsOutcome(result, ids);
                answer(ok ? 200 : 500, outcome);
              } else {
                answer(200, loaded.format === 'fetch' ? decisions.outcome(ids, null) : { acked: ids, retried: [], error: null });
              }
            },
            (err) => {
              const error = describe(err);
              answer(500, loaded.format === 'fetch' ? decisions.outcome(ids, error) : { acked: [], retried: [], error });
            },
          )
          .catch((err) => fail(inv, err));
      }

      return {
        timing: { sandboxMs: 0, runtimeMs: Math.round(t0), moduleMs },
        format: loaded.format,
        exportName: loaded.exportName,
        get disposed() {
          return disposed;
        },
        dispatch(id: string, headIn: WireRequestHead | string, hasBody: boolean) {
          const head = typeof headIn === 'string' ? (JSON.parse(headIn) as WireRequestHead) : headIn;
          const inv: Invocation = { id, head, started: Date.now(), ac: new AbortController(), bodyController: null, chunks: null, onBodyEnd: null, ended: false };
          invocations.set(id, inv);
          current.run(inv, () => {
            if (loaded.format === 'fetch' && (head.event === undefined || head.event.kind === 'invoke')) runFetch(inv, hasBody);
            else if (!hasBody) runBuffered(inv, null);
            else {
              inv.chunks = [];
              inv.onBodyEnd = (body) => runBuffered(inv, body);
            }
          });
        },
        push(id: string, chunk: Uint8Array | null) {
          const inv = invocations.get(id);
          if (!inv) return;
          current.run(inv, () => {
            if (inv.chunks !== null) {
              if (chunk !== null) inv.chunks.push(chunk.slice());
              else {
                const body = concat(inv.chunks);
                inv.chunks = null;
                inv.onBodyEnd?.(body);
              }
              return;
            }
            try {
              if (chunk === null) inv.bodyController?.close();
              else inv.bodyController?.enqueue(chunk.slice());
            } catch {
              inv.bodyController = null; // the handler cancelled the body
            }
          });
        },
        abort(id: string, reason: string) {
          const inv = invocations.get(id);
          if (!inv) return;
          inv.ended = true;
          invocations.delete(id);
          const err = new DOMException(reason, 'AbortError');
          try {
            inv.bodyController?.error(err);
          } catch {
            // already closed
          }
          inv.ac.abort(err);
        },
        cpuTimeMs() {
          const u = process.cpuUsage();
          return (u.user + u.system) / 1000;
        },
        /** Peak resident memory of the agent process (the driver reports the cgroup's peak, children included). */
        heapUsedBytes() {
          return process.resourceUsage().maxRSS * 1024;
        },
        dispose() {
          disposed = true;
          // The driver kills the sandbox too; exiting first lets it go without a signal.
          setImmediate(() => process.exit(0));
        },
      };
    },
  };
}
