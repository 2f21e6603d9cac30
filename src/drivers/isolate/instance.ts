/**
 * One isolate-tier instance as the scheduler sees it: a sandbox (one isolate) on a worker process.
 * The host side of every limit lives here: wall-clock timeout, request and response size caps, the log
 * cap with its truncation marker, and the crash path.
 */
import { ContinuumError, type ErrorCode, isErrorCode } from '../../core/errors.ts';
import type {
  CapturedLog,
  Completion,
  InitTiming,
  Instance,
  InstanceServices,
  InstanceSpec,
  InstanceState,
  InvokeRequest,
  InvokeResult,
  ServiceResponse,
} from '../../core/driver.ts';
import type { LogLevel } from '../../core/types.ts';
import { bindingCaller, callThroughBinding, checkQueueSend, decodeQueueSend, decodeServiceFetch, encodeServiceResponse, INVALID_HEAD, parseResponseHead, sendThroughBinding } from './bindings.ts';
import { ByteQueue } from './body.ts';
import { Deadlines } from './deadlines.ts';
import { F, LOG_LEVELS } from './frames.ts';
import type { FrameSink, WorkerProcess } from './worker-process.ts';
import type { FinishPayload } from './worker-loop.ts';
import { dispatchLine } from '../../runtime/isolate/protocol.ts';

/** Request-body frames are split to at most this size. */
const PUSH_SPLIT = 256 * 1024;
/** Codes after which the isolate's state is not trusted: the instance retires once idle. */
const RETIRE_ON = new Set<string>(['timeout', 'cpu_limit', 'memory_limit']);

type ExitListener = (reason: { code: ErrorCode | null; message: string }) => void;

class Invocation {
  readonly num: number;
  readonly id: string;
  readonly instance: IsolateInstance;
  /** What this invocation's binding calls carry on (trace context, call depth). */
  readonly request: InvokeRequest;
  /** Wall-clock deadline (performance.now() time). */
  deadline = 0;
  headSent = false;
  done = false;
  responseBytes = 0;
  logs: CapturedLog[] = [];
  logBytes = 0;
  logsTruncated = false;
  body: ByteQueue | null = null;
  resolveResult!: (r: InvokeResult) => void;
  resolveCompletion: ((c: Completion) => void) | null = null;

  constructor(instance: IsolateInstance, num: number, request: InvokeRequest) {
    this.instance = instance;
    this.num = num;
    this.id = request.invocationId;
    this.request = request;
  }

  completionOf(error: { code: ErrorCode; message: string } | null, cpuMs: number, peakMemoryBytes: number): Completion {
    return { error, cpuMs, peakMemoryBytes, logs: this.logs, logBytes: this.logBytes, logsTruncated: this.logsTruncated };
  }

  addLog(level: LogLevel, message: string, cap: number): void {
    if (this.logsTruncated) return;
    let bytes = Buffer.byteLength(message);
    let text = message;
    if (this.logBytes + bytes > cap) {
      const room = Math.max(0, cap - this.logBytes);
      text = Buffer.from(message, 'utf8').subarray(0, room).toString('utf8');
      while (text.length > 0 && Buffer.byteLength(text) > room) text = text.slice(0, -1);
      bytes = Buffer.byteLength(text);
      if (text.length > 0) this.logs.push({ ts: Date.now(), level, message: text });
      this.logBytes += bytes;
      this.truncate(cap);
      return;
    }
    this.logs.push({ ts: Date.now(), level, message: text });
    this.logBytes += bytes;
  }

  truncate(cap: number): void {
    if (this.logsTruncated) return;
    this.logsTruncated = true;
    this.logs.push({ ts: Date.now(), level: 'warn', message: `[continuum] log output truncated: limit of ${cap} bytes per invocation reached` });
  }
}

export interface InstanceInit {
  spec: InstanceSpec;
  /** What binding calls reach; absent, they fail with `unavailable`. */
  services?: InstanceServices;
  worker: WorkerProcess;
  num: number;
  initTiming: InitTiming;
  format: string;
  exportName: string;
  onStopped: (instance: IsolateInstance) => void;
}

export class IsolateInstance implements Instance, FrameSink {
  readonly id: string;
  readonly tier = 'isolate' as const;
  readonly initTiming: InitTiming;
  readonly functionName: string;
  readonly format: string;
  readonly exportName: string;
  readonly #spec: InstanceSpec;
  readonly #services: InstanceServices | undefined;
  readonly #worker: WorkerProcess;
  readonly #num: number;
  readonly #onStopped: (instance: IsolateInstance) => void;
  #state: InstanceState = 'ready';
  #inflight = new Map<number, Invocation>();
  readonly #deadlines = new Deadlines(this.#inflight, (num) => this.#timeout(this.#inflight.get(num)!));
  #nextInv = 0;
  #exitListeners: ExitListener[] = [];
  #exitReason: { code: ErrorCode | null; message: string } | null = null;
  #drainWaiters: Array<() => void> = [];
  /** Set when a limit hit: stop once idle, with this reason. */
  #retire: { code: ErrorCode; message: string } | null = null;
  /**
   * Deepest call depth any invocation here has had: a binding call made after its invocation ended
   * (ctx.waitUntil) counts from it, so a loop through waitUntil still meets the depth limit.
   */
  #maxDepth = 0;

  constructor(init: InstanceInit) {
    this.#spec = init.spec;
    this.#services = init.services;
    this.id = init.spec.instanceId;
    this.functionName = init.spec.functionName;
    this.initTiming = init.initTiming;
    this.format = init.format;
    this.exportName = init.exportName;
    this.#worker = init.worker;
    this.#num = init.num;
    this.#onStopped = init.onStopped;
  }

  get budgetMs(): number {
    return Math.min(this.#spec.limits.cpuMs, this.#spec.limits.timeoutMs);
  }

  retire(code: ErrorCode, message: string): void {
    this.#retireWhenIdle({ code, message });
  }

  /** Ends one in-flight invocation with a limit measured outside the sandbox (the process tier's CPU time) and retires the instance. */
  limit(invocationId: string, code: ErrorCode, message: string): void {
    for (const inv of this.#inflight.values()) {
      if (inv.id !== invocationId) continue;
      this.#fail(inv, code, message);
      this.#retireWhenIdle({ code, message });
      return;
    }
  }

  get state(): InstanceState {
    return this.#state;
  }

  get inflight(): number {
    return this.#inflight.size;
  }

  /** The worker process's pid (tests and diagnostics). */
  get workerPid(): number | undefined {
    return this.#worker.pid;
  }

  invoke(request: InvokeRequest): Promise<InvokeResult> {
    if (this.#state !== 'ready') {
      const code: ErrorCode = this.#state === 'stopped' ? 'instance_crashed' : 'unavailable';
      return Promise.resolve({ kind: 'error', completion: emptyCompletion(code, `instance is ${this.#state}`) });
    }
    const num = (this.#nextInv = (this.#nextInv + 1) >>> 0 || 1);
    const inv = new Invocation(this, num, request);
    if (request.caller && request.caller.depth > this.#maxDepth) this.#maxDepth = request.caller.depth;
    inv.deadline = Deadlines.after(this.#spec.limits.timeoutMs);
    this.#inflight.set(num, inv);
    this.#deadlines.added();
    const result = new Promise<InvokeResult>((resolve) => (inv.resolveResult = resolve));
    const hasBody = request.body !== null;
    // A dispatch line: the head's JSON goes to the isolate as it is, unparsed.
    const traceparent = request.traceparent && !request.traceparent.includes('\n') ? request.traceparent : '';
    this.#worker.out.text(F.dispatch, this.#num, num, dispatchLine(request.invocationId, hasBody, traceparent, JSON.stringify(request.request)));
    if (request.body) void this.#pump(inv, request.body);
    return result;
  }

  async #pump(inv: Invocation, body: AsyncIterable<Uint8Array>): Promise<void> {
    const cap = this.#spec.limits.requestBodyBytes;
    const out = this.#worker.out;
    let total = 0;
    const iterator = body[Symbol.asyncIterator]();
    try {
      for (;;) {
        if (inv.done) break;
        if (out.blocked) await out.drained();
        const step = await iterator.next();
        if (step.done) {
          if (!inv.done) out.bytes(F.end, this.#num, inv.num);
          return;
        }
        if (inv.done) break;
        const chunk = step.value;
        total += chunk.byteLength;
        if (total > cap) {
          this.#fail(inv, 'payload_too_large', `request body exceeds the limit of ${cap} bytes`);
          break;
        }
        for (let off = 0; off < chunk.byteLength; off += PUSH_SPLIT) {
          out.bytes(F.push, this.#num, inv.num, chunk.byteLength <= PUSH_SPLIT ? chunk : chunk.subarray(off, off + PUSH_SPLIT));
        }
      }
    } catch {
      this.#fail(inv, 'bad_request', 'the request body could not be read');
    }
    // Stop reading: whoever feeds the body learns that nobody listens any more.
    try {
      await iterator.return?.();
    } catch {
      // the source may already be broken
    }
  }

  frame(type: number, b: number, payload: Buffer): void {
    if (type === F.queueSend) {
      this.#queueSend(b, payload);
      return;
    }
    if (type === F.serviceFetch) {
      this.#serviceFetch(b, payload);
      return;
    }
    const inv = this.#inflight.get(b);
    if (!inv) return;
    switch (type) {
      case F.respond: {
        if (inv.headSent) return;
        const head = parseResponseHead(payload.toString('utf8'));
        if (head) this.#respond(inv, head);
        else this.#fail(inv, INVALID_HEAD.code, INVALID_HEAD.message);
        return;
      }
      case F.chunk:
        this.#chunk(inv, payload);
        return;
      case F.whole: {
        // One frame for a response that completed inside dispatch: f64 cpu, f64 heap, head JSON [NUL body].
        if (inv.headSent || payload.length < 16) return;
        const cpuMs = payload.readDoubleLE(0);
        const memory = payload.readDoubleLE(8);
        const cut = payload.indexOf(0, 16);
        const head = parseResponseHead(payload.toString('utf8', 16, cut < 0 ? payload.length : cut));
        if (!head) {
          this.#completed(inv, INVALID_HEAD, cpuMs, memory);
          return;
        }
        this.#respond(inv, head);
        if (cut >= 0 && cut + 1 < payload.length && !this.#chunk(inv, payload.subarray(cut + 1))) return;
        this.#completed(inv, null, cpuMs, memory);
        return;
      }
      case F.log: {
        const level: LogLevel = LOG_LEVELS[payload[0] ?? 0] ?? 'log';
        inv.addLog(level, payload.toString('utf8', 1), this.#spec.limits.logBytes);
        return;
      }
      case F.logTruncated:
        inv.truncate(this.#spec.limits.logBytes);
        return;
      case F.finishOk:
        if (payload.length < 16) return;
        this.#completed(inv, null, payload.readDoubleLE(0), payload.readDoubleLE(8));
        return;
      case F.finish: {
        const f = JSON.parse(payload.toString('utf8')) as FinishPayload;
        const error = f.e ? { code: isErrorCode(f.e.code) ? f.e.code : ('internal' as ErrorCode), message: f.e.message } : null;
        this.#completed(inv, error, f.c, f.m);
        return;
      }
    }
  }

  #respond(inv: Invocation, head: { status: number; headers: Array<[string, string]> }): void {
    inv.headSent = true;
    const body = (inv.body = new ByteQueue(() => this.#fail(inv, null, 'client stopped reading the response')));
    const completion = new Promise<Completion>((resolve) => (inv.resolveCompletion = resolve));
    inv.resolveResult({ kind: 'response', status: head.status, headers: head.headers, body, completion, takeWholeBody: () => body.takeIfComplete() });
  }

  /** A piece of the response body; false when it broke the response size limit (the invocation is over). */
  #chunk(inv: Invocation, payload: Buffer): boolean {
    if (!inv.body) return false;
    inv.responseBytes += payload.length;
    const cap = this.#spec.limits.responseBytes;
    if (inv.responseBytes > cap) {
      this.#fail(inv, 'output_too_large', `response body exceeds the limit of ${cap} bytes`);
      return false;
    }
    inv.body.push(payload);
    return true;
  }

  /** The worker reports the invocation finished. */
  #completed(inv: Invocation, error: { code: ErrorCode; message: string } | null, cpuMs: number, memory: number): void {
    if (!error && !inv.headSent) {
      this.#end(inv, { code: 'function_error', message: 'the function finished without a response' }, cpuMs, memory);
    } else {
      this.#end(inv, error, cpuMs, memory);
    }
    if (error && RETIRE_ON.has(error.code)) this.#retireWhenIdle(error);
  }

  /**
   * A queue binding's send from the sandbox (call number `call`). The send may outlive the invocation
   * that made it (ctx.waitUntil), so it is not tied to one.
   */
  #queueSend(call: number, payload: Buffer): void {
    const reply = (answer: { ids: string[] } | { error: { code: ErrorCode; message: string } }) => {
      if (this.#state !== 'stopped') this.#worker.out.text(F.queueSent, this.#num, call, JSON.stringify(answer));
    };
    const refuse = (err: unknown) => {
      const e = err instanceof ContinuumError ? err : new ContinuumError('internal', 'the queue send failed');
      reply({ error: { code: e.code, message: e.message } });
    };
    let send: ReturnType<typeof decodeQueueSend>;
    try {
      send = decodeQueueSend(payload);
      checkQueueSend(send.messages);
    } catch (err) {
      refuse(err);
      return;
    }
    const traceparent = this.#inflight.get(send.inv)?.request.traceparent;
    sendThroughBinding(this.#spec, this.#services, send.binding, send.messages, traceparent).then((ids) => reply({ ids: ids.map(String) }), refuse);
  }

  /**
   * A service binding's call from the sandbox. Who calls (invocation, depth, trace context) comes from the
   * invocation the worker names, which must be in flight here — otherwise the call counts as made after
   * its invocation ended (depth from #maxDepth).
   */
  #serviceFetch(call: number, payload: Buffer): void {
    const reply = (answer: ServiceResponse | { error: { code: ErrorCode; message: string } }) => {
      if (this.#state !== 'stopped') this.#worker.out.bytes(F.serviceResponse, this.#num, call, encodeServiceResponse(answer));
    };
    const refuse = (err: unknown) => {
      const e = err instanceof ContinuumError ? err : new ContinuumError('internal', 'the call failed');
      reply({ error: { code: e.code, message: e.message } });
    };
    let fetch: ReturnType<typeof decodeServiceFetch>;
    try {
      fetch = decodeServiceFetch(payload);
    } catch (err) {
      refuse(err);
      return;
    }
    const caller = bindingCaller(this.functionName, this.#inflight.get(fetch.inv)?.request, this.#maxDepth);
    callThroughBinding(this.#spec, this.#services, caller, fetch.binding, fetch.request).then(reply, refuse);
  }

  #timeout(inv: Invocation): void {
    const ms = this.#spec.limits.timeoutMs;
    const error = { code: 'timeout' as const, message: `the invocation exceeded its wall-clock limit of ${ms} ms` };
    this.#fail(inv, error.code, error.message);
    this.#retireWhenIdle(error);
  }

  /** End an invocation from the host side and tell the worker to abort it. code null: no error (cancel). */
  #fail(inv: Invocation, code: ErrorCode | null, message: string): void {
    if (inv.done) return;
    if (this.#state !== 'stopped') this.#worker.out.text(F.abort, this.#num, inv.num, code ?? 'cancelled');
    this.#end(inv, code ? { code, message } : null, 0, 0);
  }

  #end(inv: Invocation, error: { code: ErrorCode; message: string } | null, cpuMs: number, memory: number): void {
    if (inv.done) return;
    inv.done = true;
    this.#inflight.delete(inv.num);
    this.#deadlines.removed();
    const completion = inv.completionOf(error, cpuMs, memory);
    if (!inv.headSent) {
      inv.resolveResult({ kind: 'error', completion });
    } else {
      if (error) inv.body!.fail(new ContinuumError(error.code, error.message));
      else inv.body!.end();
      inv.resolveCompletion!(completion);
    }
    if (this.#inflight.size === 0) this.#idle();
  }

  #idle(): void {
    if (this.#retire) {
      void this.#stopWith(this.#retire.code, this.#retire.message);
      return;
    }
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const w of waiters) w();
  }

  #retireWhenIdle(reason: { code: ErrorCode; message: string }): void {
    if (this.#state === 'stopped' || this.#retire) return;
    this.#retire = reason;
    if (this.#state === 'ready') this.#state = 'draining';
    if (this.#inflight.size === 0) this.#idle();
  }

  drain(): Promise<void> {
    if (this.#state === 'ready') this.#state = 'draining';
    if (this.#inflight.size === 0 || this.#state === 'stopped') return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  stop(): Promise<void> {
    return this.#stopWith(null, 'stopped');
  }

  async #stopWith(code: ErrorCode | null, message: string): Promise<void> {
    if (this.#state === 'stopped') return;
    this.#worker.out.bytes(F.dispose, this.#num, 0);
    this.crash(code, message, 'instance_crashed');
  }

  /** The sandbox is gone (worker died, limit disposed it, or stop()): everything in flight ends now. */
  crash(code: ErrorCode | null, message: string, inflightCode: ErrorCode = 'instance_crashed'): void {
    if (this.#state === 'stopped') return;
    this.#state = 'stopped';
    this.#worker.instances.delete(this.#num);
    for (const inv of [...this.#inflight.values()]) {
      this.#end(inv, { code: inflightCode, message: code === null ? 'the instance was stopped' : message }, 0, 0);
    }
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const w of waiters) w();
    this.#exitReason = { code, message };
    this.#onStopped(this);
    const listeners = this.#exitListeners;
    this.#exitListeners = [];
    for (const l of listeners) {
      try {
        l(this.#exitReason);
      } catch {
        // a listener's failure is not the instance's
      }
    }
  }

  onExit(listener: ExitListener): void {
    if (this.#exitReason) listener(this.#exitReason);
    else this.#exitListeners.push(listener);
  }
}

function emptyCompletion(code: ErrorCode, message: string): Completion {
  return { error: { code, message }, cpuMs: 0, peakMemoryBytes: 0, logs: [], logBytes: 0, logsTruncated: false };
}
