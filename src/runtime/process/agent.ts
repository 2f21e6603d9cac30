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
import { parseDispatchLine, type WireLoadOptions, type WireRequestHead } from '../isolate/protocol.ts';
import type { PlainResponse } from '../isolate/adapters.ts';
import { checkDelay, encodeQueueBody } from '../isolate/events.ts';
import { detect, runBuffered, servesAsRequest, type LoadedModule } from '../handlers.ts';

/** Where the driver mounts the function's bundle (read-only) inside the sandbox. */
export const BUNDLE_DIR = '/fn';
export const BUNDLE_PATH = `${BUNDLE_DIR}/index.js`;

type Level = 'log' | 'debug' | 'info' | 'warn' | 'error';

/** The callbacks the frame loop gives an engine (structurally the isolate worker's WorkerSandboxCallbacks). */
export interface AgentCallbacks {
  onRespond(invocationId: string, head: { status: number; headers: Array<[string, string]> }): void;
  onChunk(invocationId: string, bytes: Uint8Array): void;
  onFinish(invocationId: string, error: { code: 'function_error' | 'bad_request'; message: string } | null): void;
  onLog(invocationId: string, level: Level, message: string): void;
  onQueueSend(invocationId: string, binding: string, messages: Array<{ body: Uint8Array; contentType: string; delayMs?: number }>): Promise<string[]>;
  onServiceFetch(invocationId: string, binding: string, request: ServiceRequest): Promise<{ status: number; headers: Array<[string, string]>; body: Uint8Array }>;
}

interface ServiceRequest {
  method: string;
  url: string;
  headers: Array<[string, string]>;
  body: Uint8Array | null;
}

/** Statuses whose responses cannot carry a body. */
const NULL_BODY_STATUS = new Set([101, 204, 205, 304]);

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

/**
 * The engine the frame loop drives. `createSandbox` loads the bundle once; a second call is refused
 * (one process, one instance).
 */
export function createAgentEngine(options: { bundlePath?: string } = {}) {
  const bundlePath = options.bundlePath ?? BUNDLE_PATH;
  const current = new AsyncLocalStorage<Invocation>();
  let created = false;
  // Node loads fetch, Request and Response (undici) on first use: do it while the sandbox waits in the
  // pool, not in the first invocation.
  void new Response(new Request('http://sandbox/', { method: 'POST', body: 'x' }).body).text();

  return {
    createSandbox({ load, callbacks }: { code: string; load: WireLoadOptions; callbacks: AgentCallbacks }) {
      if (created) throw Object.assign(new Error('this sandbox already holds an instance'), { code: 'internal' });
      created = true;
      const invocations = new Map<string, Invocation>();
      let disposed = false;

      // Console output is attributed to the invocation whose async context wrote it; output outside any
      // invocation (module load, stray timers) goes to stderr, which the driver reads as diagnostics.
      const strayWrite = process.stderr.write.bind(process.stderr);
      const log = (level: Level, args: unknown[]) => {
        const inv = current.getStore();
        let message: string;
        try {
          message = formatLog(...args);
        } catch {
          message = '[unformattable log message]';
        }
        if (inv && !inv.ended) callbacks.onLog(inv.id, level, message);
        else strayWrite(`${message.slice(0, 4096)}\n`);
      };
      // Raw writes to stdout/stderr are the invocation's log too (capped per invocation by the frame loop);
      // outside any invocation they stay diagnostics, which the driver bounds per sandbox.
      const decoder = new TextDecoder();
      for (const [stream, level] of [[process.stdout, 'log'], [process.stderr, 'error']] as const) {
        const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
        stream.write = ((chunk: unknown, ...rest: unknown[]) => {
          const inv = current.getStore();
          if (!inv || inv.ended) return write(chunk, ...rest);
          callbacks.onLog(inv.id, level, typeof chunk === 'string' ? chunk : chunk instanceof Uint8Array ? decoder.decode(chunk) : String(chunk));
          const done = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
          if (done) queueMicrotask(done);
          return true;
        }) as typeof stream.write;
      }
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
      for (const name of load.services ?? []) env[name] = serviceBinding(name);
      Object.freeze(env);

      /** `env.NAME.fetch(…)`: the call goes to the driver as on the isolate tier (see src/runtime/isolate/runtime.ts). */
      function serviceBinding(name: string): object {
        return Object.freeze({
          async fetch(input: unknown, init?: unknown): Promise<Response> {
            const inv = current.getStore();
            const req = new Request(input as ConstructorParameters<typeof Request>[0], init as RequestInit | undefined);
            const body = req.body === null ? null : new Uint8Array(await req.arrayBuffer());
            let res: Awaited<ReturnType<AgentCallbacks['onServiceFetch']>>;
            try {
              res = await callbacks.onServiceFetch(inv?.id ?? '', name, { method: req.method, url: req.url, headers: [...req.headers], body });
            } catch (err) {
              const code = String((err as { code?: unknown }).code ?? 'internal');
              throw Object.assign(new TypeError(`fetch failed: ${code}: ${String((err as Error).message)}`), { code });
            }
            return new Response(NULL_BODY_STATUS.has(res.status) ? null : res.body, { status: res.status, headers: res.headers });
          },
        });
      }

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
      const loaded: LoadedModule = {
        ...found,
        vars,
        env,
        functionName: load.functionName,
        versionId: load.versionId,
        memoryLimitMb: load.memoryLimitMb,
        timeoutMs: load.timeoutMs,
        payload: load.payload === '1.0' ? '1.0' : '2.0',
      };

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

      function buffered(inv: Invocation, body: Uint8Array | null): void {
        runBuffered(loaded, inv, body, { executionContext: ctx, sendPlain: (res) => sendPlain(inv, res), fail: (err) => fail(inv, err), log, describe });
      }

      return {
        timing: { sandboxMs: 0, runtimeMs: Math.round(t0), moduleMs },
        format: loaded.format,
        exportName: loaded.exportName,
        get disposed() {
          return disposed;
        },
        dispatchLine(id: string, line: string) {
          const d = parseDispatchLine(line);
          this.dispatch(id, JSON.parse(d.headJson) as WireRequestHead, d.hasBody);
        },
        dispatch(id: string, head: WireRequestHead, hasBody: boolean) {
          const inv: Invocation = { id, head, started: Date.now(), ac: new AbortController(), bodyController: null, chunks: null, onBodyEnd: null, ended: false };
          invocations.set(id, inv);
          current.run(inv, () => {
            if (servesAsRequest(loaded, head)) runFetch(inv, hasBody);
            else if (!hasBody) buffered(inv, null);
            else {
              inv.chunks = [];
              inv.onBodyEnd = (body) => buffered(inv, body);
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
