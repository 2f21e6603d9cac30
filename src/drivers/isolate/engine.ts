/**
 * The single-isolate engine: runs inside a data-plane worker process (which holds no credentials).
 * One IsolateEngine per process builds the runtime prelude (cached on disk, see prelude-build.ts) and a
 * V8 snapshot of it; each Sandbox is one isolated-vm isolate restored from that snapshot, running one
 * function version, serving any number of concurrent invocations.
 *
 * Every run of tenant code happens inside a synchronous host call (`applySync`) that carries a
 * timeout equal to the calling invocation's remaining CPU budget: dispatch, body push, timer fire, and
 * completions of host operations (crypto.subtle, fetch, queue sends) all enter through entry points — no promise
 * crosses the boundary, so nothing runs in the isolate without a limit. ivm's timeout also covers
 * microtasks drained at the end of the call (microtask bombs and endless `await` loops end at the
 * limit, measured in engine.test.ts). A timed-out or over-heap isolate is disposed; the caller creates
 * a new Sandbox.
 *
 * Callback contract: for each dispatched invocation the engine calls onRespond at most once, onChunk
 * zero or more times after it, then onFinish exactly once — unless the caller ends it with abort(),
 * after which only onLog lines (the handler's reaction to the abort) may still arrive for that id. Callbacks may run synchronously inside
 * dispatch()/push() (handlers that need no I/O complete before dispatch returns).
 */
import { randomFillSync, webcrypto, type webcrypto as WebCrypto } from 'node:crypto';
import { domainToASCII } from 'node:url';
import ivm from 'isolated-vm';
import { ContinuumError, isErrorCode, type ErrorCode } from '../../core/errors.ts';
import { FUNCTION_DEFAULTS } from '../../core/defaults.ts';
import type { BindingMessage, ServiceRequest, ServiceResponse } from '../../core/driver.ts';
import type { HandlerFormat, LogLevel } from '../../core/types.ts';
import { dispatchLine, ownBuffer, type HostBridges, type WireLoadOptions, type WireRequestHead } from '../../runtime/isolate/protocol.ts';
import { loadPrelude } from './prelude-build.ts';
import { checkQueueSend, INVALID_HEAD, parseResponseHead, serviceRequest } from './bindings.ts';
import { Deadlines } from './deadlines.ts';
import { trimDue, type TrimPolicy, type TrimState } from './trim.ts';

export interface SandboxCallbacks {
  /** `headJson`: the head as the runtime serialised it (checked), for callers that pass it on as JSON. */
  onRespond(invocationId: string, head: { status: number; headers: Array<[string, string]> }, headJson?: string): void;
  onChunk(invocationId: string, bytes: Uint8Array): void;
  onFinish(invocationId: string, error: { code: ErrorCode; message: string } | null): void;
  onLog(invocationId: string, level: LogLevel, message: string): void;
  /**
   * Optional: a response that completed inside the dispatch call, as the runtime returned it — head JSON
   * (unchecked: the receiver validates it) and, when there is a body, a NUL and the body text. The
   * invocation is over: no onRespond, onChunk or onFinish follows. Absent: those three are called.
   */
  onWhole?(invocationId: string, whole: string): void;
  /**
   * Tenant code sent through the queue binding `binding` (a name of load.bindings, checked): resolves
   * with message ids or rejects with a ContinuumError. Absent: sends fail with `unavailable`.
   */
  onQueueSend?(invocationId: string, binding: string, messages: BindingMessage[]): Promise<string[]>;
  /**
   * Tenant code called the service binding `binding` (a name of load.services, checked): resolves with
   * the callee's whole response or rejects with a ContinuumError. Absent: calls fail with `unavailable`.
   */
  onServiceFetch?(invocationId: string, binding: string, request: ServiceRequest): Promise<ServiceResponse>;
  /** A callback above threw; the engine carries on. Default: rethrown on a later microtask. */
  onCallbackError?(error: unknown): void;
}

export interface EngineOptions {
  /** Prebuilt prelude source; when absent it is loaded from the file cache or built. */
  prelude?: string;
  /** Prelude cache directory (see prelude-build.ts); null disables the cache. */
  cacheDir?: string | null;
  /** ivm's "v8 lost control" signal: the worker should stop taking work and exit (catalogue test 14). */
  onCatastrophicError?: (message: string) => void;
  /**
   * Spare isolates kept ready (restored from the snapshot, bridges installed, no tenant code) so that
   * createSandbox only compiles and loads the module. Each costs one idle isolate's memory. Default 1.
   */
  spares?: number;
  /**
   * A used spare is replaced once the engine is idle: its snapshot restore blocks the event loop for a
   * few ms, which would land on the request that took it. This bounds the wait for idleness. Default 50.
   */
  spareRefillMaxWaitMs?: number;
  /**
   * A sandbox that served and has then been idle this long gives its unused heap pages back (trim.ts),
   * at most once per `trimMinIntervalMs`. 0 turns it off. Defaults 5,000 and 60,000.
   */
  trimAfterIdleMs?: number;
  trimMinIntervalMs?: number;
}

const LOG_LEVELS = new Set<LogLevel>(['debug', 'info', 'warn', 'error', 'log']);
const SUBTLE_OPS = new Set(['encrypt', 'decrypt', 'sign', 'verify', 'digest', 'generateKey', 'deriveKey', 'deriveBits', 'importKey', 'exportKey', 'wrapKey', 'unwrapKey']);
const MAX_TIMERS = 10_000;
const UTF8_FATAL = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const UTF8_LOOSE = new TextDecoder('utf-8', { ignoreBOM: true });
const MAX_PENDING_CALLS = 1_000;
const MAX_KEYS = 10_000;
const MAX_MESSAGE = 64 * 1024;
/** How often a pending spare refill checks whether the engine has become idle, ms. */
const REFILL_POLL_MS = 1;
/** How long the engine must have been idle before a refill starts: the last response is out of the node by then. */
const REFILL_QUIET_MS = 5;
/** How often the engine looks for a sandbox to trim (one at a time), at most; ms. */
const TRIM_POLL_MS = 1000;
/** A trim runs V8's collector only: this bounds a pathological heap, ms. */
const TRIM_TIMEOUT_MS = 5000;

/**
 * Run once while the snapshot is made, in a throw-away context: it drives one request through the
 * runtime so that the functions every request uses are compiled when the snapshot is taken (V8 keeps
 * their bytecode), instead of lazily on each new isolate's first request. Nothing it creates survives:
 * the snapshot is taken from a fresh context.
 */
const WARMUP = `(function () {
  const install = __continuum_install, load = __continuum_load, dispatch = __continuum_dispatch, push = __continuum_push;
  install({ log() {}, timerSet() {}, timerClear() {}, random(n) { return new ArrayBuffer(n); }, domainToASCII(d) { return d; }, utf8() { return null; }, subtle() {}, fetch() {}, queueSend() {}, serviceFetch() {}, respond() { return true; }, chunk() { return true; }, finish() {} });
  load(function (module) {
    module.exports = { default: { async fetch(request, env, ctx) {
      const url = new URL(request.url);
      if (request.method === 'POST') await request.text();
      return new Response(url.pathname + request.headers.get('accept'), { headers: { 'content-type': 'text/plain' } });
    } } };
  }, JSON.stringify({ format: 'auto', exportName: null, env: {} }));
  const head = (method) => JSON.stringify({ method, url: 'http://warm.up/a?b=1', headers: [['host', 'warm.up'], ['accept', '*/*'], ['user-agent', 'w']] });
  for (let i = 0; i < 4; i++) dispatch('w' + i + '\\n0\\n\\n' + head('GET'));
  dispatch('p\\n1\\n\\n' + head('POST'));
  push('p', new TextEncoder().encode('x').buffer);
  push('p', null);
})();`;

export class IsolateEngine {
  readonly preludeBytes: number;
  readonly snapshotBytes: number;
  /** Time to create the snapshot at start-up, ms. */
  readonly snapshotMs: number;
  readonly preludeCached: boolean;
  readonly #snapshot: ivm.ExternalCopy<ArrayBuffer>;
  readonly #onCatastrophicError: ((message: string) => void) | undefined;
  readonly #spareCount: number;
  readonly #refillMaxWaitMs: number;
  readonly #spares: Shell[] = [];
  /** Sandboxes this engine made, with when (disposed ones are pruned when seen). */
  readonly #live = new Map<Sandbox, number>();
  /** Memory limit the spares are made with: the one most recently asked for. */
  #spareLimitMb = Math.max(8, FUNCTION_DEFAULTS.limits.memoryMb);
  #refill: NodeJS.Timeout | null = null;
  /** A spare is being made (off the event loop, see Shell.createAsync). */
  #refilling = false;
  readonly #trimPolicy: TrimPolicy;
  #trimPoll: NodeJS.Timeout | null = null;
  #trimming = false;
  #closed = false;

  private constructor(snapshot: ivm.ExternalCopy<ArrayBuffer>, preludeBytes: number, snapshotMs: number, cached: boolean, options: EngineOptions) {
    this.#snapshot = snapshot;
    this.preludeBytes = preludeBytes;
    this.snapshotBytes = snapshot.copy().byteLength;
    this.snapshotMs = snapshotMs;
    this.preludeCached = cached;
    this.#onCatastrophicError = options.onCatastrophicError;
    this.#spareCount = Math.max(0, Math.floor(options.spares ?? 1));
    this.#refillMaxWaitMs = Math.max(0, options.spareRefillMaxWaitMs ?? 50);
    this.#trimPolicy = { afterIdleMs: Math.max(0, options.trimAfterIdleMs ?? 5000), minIntervalMs: Math.max(0, options.trimMinIntervalMs ?? 60_000) };
    if (this.#trimPolicy.afterIdleMs > 0) {
      this.#trimPoll = setInterval(() => this.#trimOne(), Math.min(TRIM_POLL_MS, this.#trimPolicy.afterIdleMs));
      this.#trimPoll.unref();
    }
    this.#scheduleRefill();
  }

  static async create(options: EngineOptions = {}): Promise<IsolateEngine> {
    let source = options.prelude;
    let cached = false;
    if (source === undefined) {
      const built = await loadPrelude({ cacheDir: options.cacheDir });
      source = built.source;
      cached = built.cached;
    }
    const t0 = performance.now();
    const snapshot = ivm.Isolate.createSnapshot([{ code: source, filename: 'continuum:prelude' }], WARMUP);
    return new IsolateEngine(snapshot, source.length, performance.now() - t0, cached, options);
  }

  /** Spare isolates ready now. */
  get spares(): number {
    return this.#spares.length;
  }

  createSandbox(opts: { code: string; load: WireLoadOptions; callbacks: SandboxCallbacks }): Sandbox {
    const limitMb = Math.max(8, opts.load.memoryLimitMb);
    let shell: Shell | undefined;
    const at = this.#spares.findIndex((s) => s.memoryLimitMb === limitMb);
    if (at >= 0) shell = this.#spares.splice(at, 1)[0];
    if (this.#spareLimitMb !== limitMb) {
      // Spares follow the limit in use; ones made for another limit are dropped.
      this.#spareLimitMb = limitMb;
      for (const s of this.#spares.splice(0)) s.dispose();
    }
    if (this.#spareCount > 0) this.#scheduleRefill();
    const sandbox = new Sandbox(shell ?? Shell.create(this.#snapshot, limitMb, this.#onCatastrophicError), opts, shell !== undefined);
    this.#live.set(sandbox, performance.now());
    return sandbox;
  }

  /**
   * No invocation is running, and no sandbox made in the last max-wait is still waiting for its first one
   * (it is on its way: the driver dispatches it once the sandbox is reported ready).
   */
  #idle(): boolean {
    const now = performance.now();
    for (const [s, createdAt] of this.#live) {
      if (s.disposed) this.#live.delete(s);
      else if (s.active > 0 || (!s.served && now - createdAt < this.#refillMaxWaitMs)) return false;
    }
    return true;
  }

  /** Drop the spares and stop refilling (the engine can still create sandboxes). */
  close(): void {
    this.#closed = true;
    if (this.#trimPoll) clearInterval(this.#trimPoll);
    this.#trimPoll = null;
    if (this.#refill) clearTimeout(this.#refill);
    this.#refill = null;
    for (const s of this.#spares.splice(0)) s.dispose();
  }

  /**
   * Trim the first sandbox that is due (trim.ts), then the next: one at a time, so a wave of instances
   * going idle together costs one core's slice at a time, not a burst on every core.
   */
  #trimOne(): void {
    if (this.#trimming || this.#closed) return;
    const now = performance.now();
    for (const s of this.#live.keys()) {
      if (s.disposed) this.#live.delete(s);
      else if (trimDue(s.trimState(), now, this.#trimPolicy)) {
        this.#trimming = true;
        void s.trim().finally(() => {
          this.#trimming = false;
          this.#trimOne();
        });
        return;
      }
    }
  }

  #scheduleRefill(since = performance.now(), quietSince = since): void {
    if (this.#refill || this.#refilling || this.#closed || this.#spares.length >= this.#spareCount) return;
    this.#refill = setTimeout(() => {
      this.#refill = null;
      if (this.#closed || this.#spares.length >= this.#spareCount) return;
      const now = performance.now();
      const quiet = this.#idle() ? quietSince : now;
      if (now - quiet < REFILL_QUIET_MS && now - since < this.#refillMaxWaitMs) {
        this.#scheduleRefill(since, quiet);
        return;
      }
      // A request that comes while a spare is made waits only for the snapshot restore, not for the runtime
      // install and the warm-up request, which run on the isolate's own thread.
      this.#refilling = true;
      const limitMb = this.#spareLimitMb;
      Shell.createAsync(this.#snapshot, limitMb, this.#onCatastrophicError).then(
        (shell) => {
          this.#refilling = false;
          if (this.#closed || limitMb !== this.#spareLimitMb) shell.dispose();
          else this.#spares.push(shell);
          // One at a time.
          this.#scheduleRefill();
        },
        () => {
          this.#refilling = false; // out of memory or similar: createSandbox makes isolates on demand
        },
      );
    }, REFILL_POLL_MS);
    this.#refill.unref();
  }
}

type BridgeImpl = { [K in keyof HostBridges]: (...args: never[]) => unknown };

/** A shell's isolate restored from the snapshot; `shell` is set once the shell exists (catastrophe reports). */
interface Restored {
  isolate: ivm.Isolate;
  t0: number;
  shell: Shell | null;
}

/** A shell's context with its bridges made and the runtime's entry points looked up. */
interface Wiring {
  context: ivm.Context;
  t1: number;
  refs: Shell['refs'];
  holder: { shell: Shell | null };
  bridges: Record<keyof HostBridges, ivm.Callback>;
  install: Ref;
  warm: Ref;
}

/**
 * An isolate restored from the snapshot with the runtime's bridges installed, its request path warmed
 * (`__continuum_warm`: the first request of a fresh context otherwise costs ≈ 2.5 ms of inline caches and
 * lazily made objects that the snapshot does not keep), and no tenant code yet.
 * The bridges forward to whichever Sandbox adopts the shell (none while it is a spare).
 */
class Shell {
  readonly isolate: ivm.Isolate;
  readonly context: ivm.Context;
  readonly refs: { dispatch: Ref; push: Ref; fire: Ref; settle: Ref; abort: Ref; load: Ref; trim: Ref };
  readonly memoryLimitMb: number;
  /** What making it cost, ms: restore (isolate + context) and runtime install. */
  readonly sandboxMs: number;
  readonly runtimeMs: number;
  impl: BridgeImpl | null = null;
  onCatastrophic: ((message: string) => void) | null = null;

  private constructor(isolate: ivm.Isolate, context: ivm.Context, refs: Shell['refs'], memoryLimitMb: number, sandboxMs: number, runtimeMs: number) {
    this.isolate = isolate;
    this.context = context;
    this.refs = refs;
    this.memoryLimitMb = memoryLimitMb;
    this.sandboxMs = sandboxMs;
    this.runtimeMs = runtimeMs;
  }

  /** Made on demand: everything on the calling thread. */
  static create(snapshot: ivm.ExternalCopy<ArrayBuffer>, memoryLimitMb: number, onEngineCatastrophe: ((message: string) => void) | undefined): Shell {
    const parts = Shell.#restore(snapshot, memoryLimitMb, onEngineCatastrophe);
    try {
      const wiring = Shell.#wire(parts.isolate.createContextSync());
      wiring.install.applySync(undefined, [wiring.bridges], { arguments: { copy: true }, timeout: 1000 });
      wiring.warm.applySync(undefined, [], { timeout: 1000 });
      return Shell.#finish(parts, wiring, memoryLimitMb);
    } catch (err) {
      Shell.#abandon(parts.isolate);
      throw err;
    }
  }

  /** Made ahead (a spare): the context, the runtime install and the warm-up run on the isolate's thread. */
  static async createAsync(snapshot: ivm.ExternalCopy<ArrayBuffer>, memoryLimitMb: number, onEngineCatastrophe: ((message: string) => void) | undefined): Promise<Shell> {
    const parts = Shell.#restore(snapshot, memoryLimitMb, onEngineCatastrophe);
    try {
      const wiring = Shell.#wire(await parts.isolate.createContext());
      await wiring.install.apply(undefined, [wiring.bridges], { arguments: { copy: true }, timeout: 1000 });
      await wiring.warm.apply(undefined, [], { timeout: 1000 });
      return Shell.#finish(parts, wiring, memoryLimitMb);
    } catch (err) {
      Shell.#abandon(parts.isolate);
      throw err;
    }
  }

  static #restore(snapshot: ivm.ExternalCopy<ArrayBuffer>, memoryLimitMb: number, onEngineCatastrophe: ((message: string) => void) | undefined): Restored {
    const parts: Restored = { isolate: null as unknown as ivm.Isolate, t0: performance.now(), shell: null };
    parts.isolate = new ivm.Isolate({
      memoryLimit: memoryLimitMb,
      snapshot,
      onCatastrophicError: (message: string) => {
        parts.shell?.onCatastrophic?.(message);
        onEngineCatastrophe?.(message);
      },
    });
    return parts;
  }

  static #wire(context: ivm.Context): Wiring {
    const t1 = performance.now();
    const global = context.global;
    const get = (name: string) => global.getSync(name, { reference: true }) as Ref;
    const refs = { dispatch: get('__continuum_dispatch'), push: get('__continuum_push'), fire: get('__continuum_fire'), settle: get('__continuum_settle'), abort: get('__continuum_abort'), load: get('__continuum_load'), trim: get('__continuum_trim') };
    const holder: { shell: Shell | null } = { shell: null };
    const bridges = {} as Record<keyof HostBridges, ivm.Callback>;
    for (const name of BRIDGE_NAMES) {
      bridges[name] = new ivm.Callback((...args: unknown[]) => {
        const impl = holder.shell?.impl;
        return impl ? Reflect.apply(impl[name], undefined, args) : undefined;
      });
    }
    return { context, t1, refs, holder, bridges, install: get('__continuum_install'), warm: get('__continuum_warm') };
  }

  static #finish(parts: Restored, wiring: Wiring, memoryLimitMb: number): Shell {
    wiring.install.release();
    wiring.warm.release();
    const shell = new Shell(parts.isolate, wiring.context, wiring.refs, memoryLimitMb, wiring.t1 - parts.t0, performance.now() - wiring.t1);
    parts.shell = shell;
    wiring.holder.shell = shell;
    return shell;
  }

  static #abandon(isolate: ivm.Isolate): void {
    try {
      isolate.dispose();
    } catch {
      // already gone
    }
  }

  dispose(): void {
    this.impl = null;
    try {
      if (!this.isolate.isDisposed) this.isolate.dispose();
    } catch {
      // already gone
    }
  }
}

const BRIDGE_NAMES: ReadonlyArray<keyof HostBridges> = ['log', 'timerSet', 'timerClear', 'random', 'domainToASCII', 'utf8', 'subtle', 'fetch', 'queueSend', 'serviceFetch', 'respond', 'chunk', 'finish'];

interface HostInvocation {
  cpuMs: number;
  responseBytes: number;
  subrequests: number;
  responded: boolean;
  /** Wall-clock deadline (performance.now() time); Infinity without a timeout. */
  deadline: number;
}

type Ref = ivm.Reference<(...args: unknown[]) => unknown>;


function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A failed host call as the runtime receives it: `{name, message, code}` (see #startCall). */
function wireError(code: ErrorCode, message: string): Error {
  return Object.assign(new Error(message), { wireCode: code });
}

export class Sandbox {
  readonly timing: { sandboxMs: number; runtimeMs: number; moduleMs: number; spare: boolean; prepaidMs: number };
  readonly format: HandlerFormat;
  readonly exportName: string;

  readonly #isolate: ivm.Isolate;
  readonly #context: ivm.Context;
  readonly #refs: { dispatch: Ref; push: Ref; fire: Ref; settle: Ref; abort: Ref; trim: Ref };
  readonly #callbacks: SandboxCallbacks;
  readonly #cpuMs: number;
  readonly #responseBytes: number;
  readonly #subrequests: number;
  readonly #timeoutMs: number;
  readonly #bindings: ReadonlySet<string>;
  readonly #services: ReadonlySet<string>;
  readonly #invocations = new Map<string, HostInvocation>();
  readonly #deadlines = new Deadlines(this.#invocations, (id) => this.#timeout(id));
  readonly #timers = new Map<number, { handle: NodeJS.Timeout; owner: string }>();
  readonly #keys = new Map<number, WebCrypto.CryptoKey>();
  #nextKey = 1;
  #pendingCalls = 0;
  readonly #owners: string[] = [];
  #disposed = false;
  #finalCpuMs = 0;
  #served = false;
  #idleSinceMs = performance.now();
  #usedSinceTrim = false;
  #lastTrimMs: number | null = null;

  constructor(shell: Shell, opts: { code: string; load: WireLoadOptions; callbacks: SandboxCallbacks }, spare: boolean) {
    const { load } = opts;
    this.#callbacks = opts.callbacks;
    this.#cpuMs = load.cpuMs ?? FUNCTION_DEFAULTS.limits.cpuMs;
    this.#responseBytes = load.responseBytes ?? FUNCTION_DEFAULTS.limits.responseBytes;
    this.#subrequests = load.subrequests;
    this.#bindings = new Set(load.bindings ?? []);
    this.#services = new Set(load.services ?? []);
    this.#timeoutMs = load.timeoutMs;
    this.#isolate = shell.isolate;
    this.#context = shell.context;
    this.#refs = shell.refs;
    shell.onCatastrophic = (message: string) => this.#kill('memory_limit', `isolate failed: ${message}`, 'instance_crashed', '');
    shell.impl = this.#bridges();
    const t2 = performance.now();
    try {
      let resolved: { format: HandlerFormat; exportName: string };
      let factory: ivm.Reference<unknown>;
      try {
        const script = this.#isolate.compileScriptSync(`(function (module, exports, require) {${opts.code}\n})`, { filename: `fn:///${load.functionName || 'function'}.js` });
        factory = script.runSync(this.#context, { reference: true, timeout: this.#cpuMs }) as ivm.Reference<unknown>;
        script.release();
      } catch (err) {
        throw this.#loadError(err, 'the bundle does not compile');
      }
      try {
        this.#owners.push('');
        const out = shell.refs.load.applySync(undefined, [factory.derefInto({ release: true }), JSON.stringify(load)], { timeout: this.#cpuMs });
        resolved = JSON.parse(String(out));
      } catch (err) {
        throw this.#loadError(err, 'the module threw while loading');
      } finally {
        this.#owners.pop();
        shell.refs.load.release();
      }
      this.format = resolved.format;
      this.exportName = resolved.exportName;
      // A spare's restore and install were paid before this sandbox was asked for: they show as 0 here
      // and as `prepaidMs` (what they cost when the spare was made).
      this.timing = spare
        ? { sandboxMs: 0, runtimeMs: 0, moduleMs: performance.now() - t2, spare: true, prepaidMs: shell.sandboxMs + shell.runtimeMs }
        : { sandboxMs: shell.sandboxMs, runtimeMs: shell.runtimeMs, moduleMs: performance.now() - t2, spare: false, prepaidMs: 0 };
    } catch (err) {
      this.#disposeIsolate();
      throw err;
    }
  }

  get disposed(): boolean {
    return this.#disposed || this.#isolate.isDisposed;
  }

  /** Isolate CPU time so far, ms. */
  cpuTimeMs(): number {
    return this.#isolate.isDisposed ? this.#finalCpuMs : Number(this.#isolate.cpuTime) / 1e6;
  }

  /** V8 heap in use plus external (ArrayBuffer) memory charged to the isolate, bytes. */
  heapUsedBytes(): number {
    if (this.#isolate.isDisposed) return 0;
    const s = this.#isolate.getHeapStatisticsSync();
    return s.used_heap_size + s.externally_allocated_size;
  }

  /** Pages the isolate's heap holds (V8's committed physical size), bytes. */
  heapResidentBytes(): number {
    return this.#isolate.isDisposed ? 0 : this.#isolate.getHeapStatisticsSync().total_physical_size;
  }

  /** At least one invocation has ended here. */
  get served(): boolean {
    return this.#served;
  }

  /** Invocations in flight. */
  get active(): number {
    return this.#invocations.size;
  }

  trimState(): TrimState {
    return { busy: this.#invocations.size > 0 || this.#pendingCalls > 0, usedSinceTrim: this.#usedSinceTrim, idleSinceMs: this.#idleSinceMs, lastTrimMs: this.#lastTrimMs };
  }

  /**
   * Give the heap's unused pages back (V8's memory-reducing collection, on the isolate's thread: the
   * worker's event loop stays free, and a dispatch that comes meanwhile waits for the isolate). False
   * when the sandbox is gone or the collector is not there.
   */
  async trim(): Promise<boolean> {
    if (this.disposed) return false;
    this.#usedSinceTrim = false;
    this.#lastTrimMs = performance.now();
    try {
      return (await this.#refs.trim.apply(undefined, [], { timeout: TRIM_TIMEOUT_MS })) === true;
    } catch {
      return false; // disposed meanwhile
    }
  }

  /** Start an invocation. Throws ContinuumError('instance_crashed') when the sandbox is gone. */
  dispatch(invocationId: string, head: WireRequestHead, hasBody: boolean, traceparent: string | null): void {
    this.dispatchLine(invocationId, dispatchLine(invocationId, hasBody, traceparent, JSON.stringify(head)));
  }

  /** dispatch() with the invocation already as a dispatch line (the worker passes the driver's frame on untouched). */
  dispatchLine(invocationId: string, line: string): void {
    if (this.disposed) throw new ContinuumError('instance_crashed', 'the sandbox was disposed');
    if (this.#invocations.has(invocationId)) throw new ContinuumError('internal', `invocation ${invocationId} is already running`);
    const inv: HostInvocation = { cpuMs: 0, responseBytes: 0, subrequests: 0, responded: false, deadline: this.#timeoutMs > 0 ? Deadlines.after(this.#timeoutMs) : Infinity };
    this.#invocations.set(invocationId, inv);
    if (this.#timeoutMs > 0) this.#deadlines.added();
    this.#enter(invocationId, (timeout) => {
      const whole = this.#refs.dispatch.applySync(undefined, [line], { timeout });
      if (typeof whole === 'string') this.#whole(invocationId, whole);
    });
  }

  /** A response that completed inside dispatch: `headJson` or `headJson + "\0" + body` (see protocol.ts). */
  #whole(id: string, whole: string): void {
    const onWhole = this.#callbacks.onWhole;
    if (onWhole) {
      const inv = this.#invocations.get(id);
      if (!inv || inv.responded) return;
      inv.responded = true;
      this.#forget(id);
      this.#safe(() => onWhole(id, whole));
      return;
    }
    const cut = whole.indexOf('\0');
    if (!this.#respond(id, cut < 0 ? whole : whole.slice(0, cut))) return;
    if (cut >= 0 && cut + 1 < whole.length && !this.#chunk(id, Buffer.from(whole.slice(cut + 1), 'utf8'))) return;
    this.#finish(id, null);
  }

  /** One request-body chunk for an invocation; null ends the body. */
  push(invocationId: string, chunk: Uint8Array | null): void {
    if (this.disposed || !this.#invocations.has(invocationId)) return;
    const arg = chunk === null ? null : new ivm.ExternalCopy(ownBuffer(chunk)).copyInto({ release: true });
    this.#enter(invocationId, (timeout) => this.#refs.push.applySync(undefined, [invocationId, arg], { timeout }));
  }

  /** End an invocation early (client gone, caller's limit): its request body errors with AbortError, its timers are cleared; no onRespond/onChunk/onFinish follows (onLog may). */
  abort(invocationId: string, reason: string): void {
    const inv = this.#invocations.get(invocationId);
    if (!inv) return;
    this.#forget(invocationId);
    if (this.disposed) return;
    this.#enter(invocationId, (timeout) => this.#refs.abort.applySync(undefined, [invocationId, String(reason).slice(0, 500)], { timeout }));
  }

  dispose(): void {
    this.#kill('instance_crashed', 'the sandbox was disposed', 'instance_crashed', '');
  }

  // ---------------------------------------------------------------- internals

  #loadError(err: unknown, what: string): ContinuumError {
    if (this.#isolate.isDisposed || /memory limit/i.test(errorMessage(err))) return new ContinuumError('memory_limit', 'the module exceeded the memory limit while loading');
    if (/timed out/i.test(errorMessage(err))) return new ContinuumError('cpu_limit', 'the module exceeded the CPU-time limit while loading', { limit: this.#cpuMs });
    const message = errorMessage(err).slice(0, 500);
    return new ContinuumError('bad_bundle', message.startsWith('No handler found') ? message : `${what}: ${message}`);
  }

  /** Run one host→isolate call on behalf of `owner` with its remaining CPU budget as the timeout. */
  #enter(owner: string, call: (timeout: number) => unknown): void {
    if (this.disposed) return;
    const inv = this.#invocations.get(owner);
    const remaining = inv ? this.#cpuMs - inv.cpuMs : this.#cpuMs;
    const timeout = Math.max(1, Math.ceil(remaining));
    const outer = this.#owners.length === 0;
    const before = outer ? this.#isolate.cpuTime : 0n;
    this.#owners.push(owner);
    try {
      call(timeout);
    } catch (err) {
      this.#callFailed(owner, err);
    } finally {
      this.#owners.pop();
      if (outer && !this.disposed) {
        const still = this.#invocations.get(owner);
        if (still) still.cpuMs += Number(this.#isolate.cpuTime - before) / 1e6;
      }
    }
  }

  #callFailed(owner: string, err: unknown): void {
    const message = errorMessage(err);
    if (this.#isolate.isDisposed || /memory limit/i.test(message)) {
      this.#kill('memory_limit', 'the function exceeded its memory limit', 'memory_limit', owner);
    } else if (/timed out/i.test(message)) {
      this.#kill('cpu_limit', `the invocation exceeded its CPU-time limit of ${this.#cpuMs} ms`, 'instance_crashed', owner);
    } else if (this.#invocations.has(owner)) {
      this.#finish(owner, { code: 'function_error', message: message.slice(0, 1000) });
    }
  }

  /** Dispose the isolate; `owner` ends with `code`, every other in-flight invocation with `othersCode`. */
  #kill(code: ErrorCode, message: string, othersCode: ErrorCode, owner: string): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const { handle } of this.#timers.values()) clearTimeout(handle);
    this.#timers.clear();
    this.#keys.clear();
    const ids = [...this.#invocations.keys()];
    for (const id of ids) {
      this.#finish(id, id === owner ? { code, message } : { code: othersCode, message: othersCode === code ? message : 'the sandbox serving this invocation was disposed' });
    }
    if (this.#owners.length > 0) setImmediate(() => this.#disposeIsolate());
    else this.#disposeIsolate();
  }

  #disposeIsolate(): void {
    this.#disposed = true;
    try {
      if (!this.#isolate.isDisposed) {
        this.#finalCpuMs = Number(this.#isolate.cpuTime) / 1e6;
        this.#isolate.dispose();
      }
    } catch {
      // already gone
    }
  }

  #timeout(id: string): void {
    const inv = this.#invocations.get(id);
    if (!inv) return;
    this.#finish(id, { code: 'timeout', message: `the invocation exceeded its timeout of ${this.#timeoutMs} ms` });
    if (!this.disposed) this.#enter(id, (timeout) => this.#refs.abort.applySync(undefined, [id, 'timeout'], { timeout }));
  }

  #forget(id: string): HostInvocation | undefined {
    const inv = this.#invocations.get(id);
    if (!inv) return undefined;
    this.#served = true;
    this.#invocations.delete(id);
    if (this.#invocations.size === 0) {
      this.#idleSinceMs = performance.now();
      this.#usedSinceTrim = true;
    }
    this.#deadlines.removed();
    return inv;
  }

  #finish(id: string, error: { code: ErrorCode; message: string } | null): void {
    if (!this.#forget(id)) return;
    this.#safe(() => this.#callbacks.onFinish(id, error));
  }

  /** Caller callbacks must not break the engine's bookkeeping. */
  #safe(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      const report = this.#callbacks.onCallbackError;
      if (report) report(err);
      else
        queueMicrotask(() => {
          throw err;
        });
    }
  }

  #currentOwner(): string {
    return this.#owners[this.#owners.length - 1] ?? '';
  }

  #settle(callId: number, owner: string, ok: boolean, json: string, buffers: ArrayBuffer[]): void {
    this.#pendingCalls--;
    if (this.disposed) return;
    this.#enter(owner, (timeout) =>
      this.#refs.settle.applySync(undefined, [callId, ok, json, buffers], { timeout, arguments: { copy: true } }),
    );
  }

  #bridges(): BridgeImpl {
    const bridges: BridgeImpl = {
      log: (id: unknown, level: unknown, message: unknown) => {
        if (typeof id !== 'string' || typeof message !== 'string') return;
        const lvl = LOG_LEVELS.has(level as LogLevel) ? (level as LogLevel) : 'log';
        this.#safe(() => this.#callbacks.onLog(id, lvl, message.length > MAX_MESSAGE ? message.slice(0, MAX_MESSAGE) : message));
      },
      timerSet: (id: unknown, ms: unknown) => {
        if (!Number.isSafeInteger(id) || typeof ms !== 'number' || this.disposed) return;
        const timerId = id as number;
        const prev = this.#timers.get(timerId);
        if (prev) clearTimeout(prev.handle);
        else if (this.#timers.size >= MAX_TIMERS) return;
        const owner = this.#currentOwner();
        const handle = setTimeout(() => {
          const t = this.#timers.get(timerId);
          if (!t || t.handle !== handle) return;
          this.#timers.delete(timerId);
          this.#enter(owner, (timeout) => this.#refs.fire.applySync(undefined, [timerId], { timeout }));
        }, Math.min(Math.max(0, ms), 2 ** 31 - 1));
        this.#timers.set(timerId, { handle, owner });
      },
      timerClear: (id: unknown) => {
        const t = this.#timers.get(id as number);
        if (!t) return;
        clearTimeout(t.handle);
        this.#timers.delete(id as number);
      },
      random: (n: unknown) => {
        if (!Number.isSafeInteger(n) || (n as number) < 0 || (n as number) > 65536) throw new RangeError('invalid entropy request');
        return new ivm.ExternalCopy(randomFillSync(new Uint8Array(n as number)).buffer).copyInto({ release: true });
      },
      domainToASCII: (domain: unknown) => (typeof domain === 'string' && domain.length <= 1024 ? domainToASCII(domain) : ''),
      utf8: (bytes: unknown, fatal: unknown) => {
        if (!(bytes instanceof ArrayBuffer)) throw new TypeError('utf8: bytes must be an ArrayBuffer');
        try {
          return (fatal === true ? UTF8_FATAL : UTF8_LOOSE).decode(new Uint8Array(bytes));
        } catch {
          return null;
        }
      },
      subtle: (callId: unknown, argsJson: unknown, buffers: unknown) => {
        const owner = this.#currentOwner();
        this.#startCall(callId, owner, () => this.#subtle(argsJson, buffers));
      },
      fetch: (callId: unknown, invocationId: unknown, _headJson: unknown, _body: unknown) => {
        const owner = typeof invocationId === 'string' ? invocationId : this.#currentOwner();
        const inv = this.#invocations.get(owner);
        let code = 'egress_denied';
        let message = 'fetch failed: egress_denied: outbound network access is not granted to this function';
        if (inv && ++inv.subrequests > this.#subrequests) {
          code = 'subrequest_limit';
          message = `fetch failed: subrequest_limit: more than ${this.#subrequests} subrequests in one invocation`;
        }
        this.#startCall(callId, owner, async () => {
          throw Object.assign(new TypeError(message), { wireCode: code });
        });
      },
      queueSend: (callId: unknown, invocationId: unknown, binding: unknown, metaJson: unknown, buffers: unknown) => {
        const owner = typeof invocationId === 'string' ? invocationId : this.#currentOwner();
        const inv = this.#invocations.get(owner);
        const over = inv !== undefined && ++inv.subrequests > this.#subrequests;
        this.#startCall(callId, owner, async () => {
          if (over) throw wireError('subrequest_limit', `queue send failed: subrequest_limit: more than ${this.#subrequests} subrequests in one invocation`);
          let ids: string[];
          try {
            const messages = this.#queueMessages(binding, metaJson, buffers);
            const send = this.#callbacks.onQueueSend;
            if (!send) throw new ContinuumError('unavailable', 'queue bindings are not available here');
            ids = await send(owner, binding as string, messages);
          } catch (err) {
            const e = err instanceof ContinuumError ? err : new ContinuumError('internal', 'the queue send failed');
            throw wireError(e.code, `queue send failed: ${e.code}: ${e.message}`);
          }
          return [JSON.stringify({ ids }), []];
        });
      },
      serviceFetch: (callId: unknown, invocationId: unknown, binding: unknown, headJson: unknown, body: unknown) => {
        const owner = typeof invocationId === 'string' ? invocationId : this.#currentOwner();
        const inv = this.#invocations.get(owner);
        const over = inv !== undefined && ++inv.subrequests > this.#subrequests;
        this.#startCall(callId, owner, async () => {
          if (over) throw wireError('subrequest_limit', `fetch failed: subrequest_limit: more than ${this.#subrequests} subrequests in one invocation`);
          let res: ServiceResponse;
          try {
            const call = this.#callbacks.onServiceFetch;
            if (typeof binding !== 'string' || !this.#services.has(binding)) {
              throw new ContinuumError('forbidden', `binding ${JSON.stringify(String(binding).slice(0, 64))} is not granted to this function`);
            }
            if (!call) throw new ContinuumError('unavailable', 'service bindings are not available here');
            res = await call(owner, binding, serviceRequest(headJson, body));
          } catch (err) {
            const e = err instanceof ContinuumError ? err : new ContinuumError('internal', 'the call failed');
            throw wireError(e.code, `fetch failed: ${e.code}: ${e.message}`);
          }
          const bytes = res.body;
          return [JSON.stringify({ status: res.status, headers: res.headers }), [ownBuffer(bytes)]];
        });
      },
      respond: (id: unknown, headJson: unknown, wholeBody?: unknown, complete?: unknown) => {
        if (typeof id !== 'string' || typeof headJson !== 'string') return false;
        if (complete !== true) return this.#respond(id, headJson);
        if (wholeBody !== null && !(wholeBody instanceof ArrayBuffer)) return false;
        if (!this.#respond(id, headJson)) return false;
        if (wholeBody !== null && wholeBody.byteLength > 0 && !this.#chunk(id, new Uint8Array(wholeBody))) return false;
        this.#finish(id, null);
        return true;
      },
      chunk: (id: unknown, bytes: unknown) => {
        if (typeof id !== 'string' || !(bytes instanceof ArrayBuffer)) return false;
        return this.#chunk(id, new Uint8Array(bytes));
      },
      finish: (id: unknown, errorJson: unknown) => {
        if (typeof id !== 'string' || !this.#invocations.has(id)) return;
        if (errorJson === null) return this.#finish(id, null);
        let e: { code?: unknown; message?: unknown } = {};
        try {
          e = JSON.parse(String(errorJson));
        } catch {
          e = {};
        }
        const code: ErrorCode = isErrorCode(e.code) && ['function_error', 'egress_denied', 'subrequest_limit', 'call_depth_exceeded', 'unsupported_api', 'bad_argument'].includes(e.code) ? e.code : 'function_error';
        this.#finish(id, { code, message: typeof e.message === 'string' ? e.message.slice(0, 2000) : 'the function failed' });
      },
    };
    return bridges;
  }

  #respond(id: string, headJson: string): boolean {
    const inv = this.#invocations.get(id);
    if (!inv || inv.responded) return false;
    const head = parseResponseHead(headJson);
    if (!head) {
      this.#finish(id, INVALID_HEAD);
      return false;
    }
    inv.responded = true;
    this.#safe(() => this.#callbacks.onRespond(id, head, headJson));
    return this.#invocations.has(id);
  }

  #chunk(id: string, bytes: Uint8Array): boolean {
    const inv = this.#invocations.get(id);
    if (!inv || !inv.responded) return false;
    inv.responseBytes += bytes.byteLength;
    if (inv.responseBytes > this.#responseBytes) {
      this.#finish(id, { code: 'output_too_large', message: `the response body exceeds the limit of ${this.#responseBytes} bytes` });
      return false;
    }
    this.#safe(() => this.#callbacks.onChunk(id, bytes));
    return this.#invocations.has(id);
  }

  #startCall(callId: unknown, owner: string, run: () => Promise<[string, ArrayBuffer[]]>): void {
    if (!Number.isSafeInteger(callId)) return;
    this.#pendingCalls++;
    const id = callId as number;
    if (this.#pendingCalls > MAX_PENDING_CALLS) {
      queueMicrotask(() => this.#settle(id, owner, false, JSON.stringify({ name: 'QuotaExceededError', message: 'too many pending host operations' }), []));
      return;
    }
    // Settle on a later turn: never re-enter the isolate from inside the bridge call.
    Promise.resolve()
      .then(run)
      .then(
        ([json, buffers]) => this.#settle(id, owner, true, json, buffers),
        (err: unknown) => {
          const e = err as { name?: unknown; message?: unknown; wireCode?: unknown };
          const name = typeof e?.name === 'string' ? e.name : 'OperationError';
          const message = typeof e?.message === 'string' ? e.message.slice(0, 500) : 'operation failed';
          this.#settle(id, owner, false, JSON.stringify({ name, message, code: typeof e?.wireCode === 'string' ? e.wireCode : undefined }), []);
        },
      );
  }

  /** A queue send's arguments as they crossed the boundary → messages within the ceilings. */
  #queueMessages(binding: unknown, metaJson: unknown, buffers: unknown): BindingMessage[] {
    if (typeof binding !== 'string' || !this.#bindings.has(binding)) {
      throw new ContinuumError('forbidden', `binding ${JSON.stringify(String(binding).slice(0, 64))} is not granted to this function`);
    }
    const bad = new ContinuumError('bad_argument', 'invalid queue send arguments');
    if (typeof metaJson !== 'string' || metaJson.length > 1_000_000 || !Array.isArray(buffers) || !buffers.every((b) => b instanceof ArrayBuffer)) throw bad;
    let meta: unknown;
    try {
      meta = JSON.parse(metaJson);
    } catch {
      throw bad;
    }
    if (!Array.isArray(meta) || meta.length !== buffers.length) throw bad;
    const messages = meta.map((m: { contentType?: unknown; delaySeconds?: unknown }, i): BindingMessage => {
      if (m === null || typeof m !== 'object' || typeof m.contentType !== 'string') throw bad;
      const body = new Uint8Array(buffers[i] as ArrayBuffer);
      if (m.delaySeconds === undefined || m.delaySeconds === null) return { body, contentType: m.contentType };
      if (typeof m.delaySeconds !== 'number' || !Number.isFinite(m.delaySeconds)) throw bad;
      return { body, contentType: m.contentType, delayMs: Math.round(m.delaySeconds * 1000) };
    });
    checkQueueSend(messages);
    return messages;
  }

  async #subtle(argsJson: unknown, buffers: unknown): Promise<[string, ArrayBuffer[]]> {
    if (typeof argsJson !== 'string' || argsJson.length > 1_000_000 || !Array.isArray(buffers) || !buffers.every((b) => b instanceof ArrayBuffer)) {
      throw new TypeError('invalid crypto.subtle arguments');
    }
    const parsed = JSON.parse(argsJson) as { op?: unknown; args?: unknown };
    if (typeof parsed.op !== 'string' || !SUBTLE_OPS.has(parsed.op) || !Array.isArray(parsed.args)) throw new TypeError('unsupported crypto.subtle operation');
    const args = parsed.args.map((a) => this.#decodeArg(a, buffers as ArrayBuffer[], 0));
    const subtle = webcrypto.subtle as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
    const result = await Reflect.apply(subtle[parsed.op]!, webcrypto.subtle, args);
    const out: ArrayBuffer[] = [];
    return [JSON.stringify(this.#encodeResult(result, out, 0)) ?? 'null', out];
  }

  #decodeArg(v: unknown, buffers: ArrayBuffer[], depth: number): unknown {
    if (depth > 8) throw new TypeError('crypto argument nested too deeply');
    if (v === null || typeof v !== 'object') return v;
    if (Array.isArray(v)) return v.map((x) => this.#decodeArg(x, buffers, depth + 1));
    const o = v as Record<string, unknown>;
    if (typeof o.$buf === 'number') {
      const b = buffers[o.$buf];
      if (!b) throw new TypeError('invalid buffer reference');
      return new Uint8Array(b);
    }
    if (typeof o.$key === 'number') {
      const key = this.#keys.get(o.$key);
      if (!key) throw new DOMException('unknown CryptoKey', 'InvalidAccessError');
      return key;
    }
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(o)) {
      if (k === '__proto__' || k === 'constructor' || k === 'prototype') continue;
      out[k] = this.#decodeArg(o[k], buffers, depth + 1);
    }
    return out;
  }

  #encodeResult(v: unknown, out: ArrayBuffer[], depth: number): unknown {
    if (depth > 8) return null;
    if (v === null || typeof v !== 'object') return v;
    if (v instanceof ArrayBuffer) {
      out.push(v);
      return { $buf: out.length - 1 };
    }
    if (ArrayBuffer.isView(v)) {
      out.push(new Uint8Array(v.buffer, v.byteOffset, v.byteLength).slice().buffer);
      return { $u8: out.length - 1 };
    }
    if (v instanceof globalThis.CryptoKey) {
      const key = v as WebCrypto.CryptoKey;
      if (this.#keys.size >= MAX_KEYS) throw new DOMException('too many CryptoKeys in this sandbox', 'QuotaExceededError');
      const handle = this.#nextKey++;
      this.#keys.set(handle, key);
      return { $key: handle, type: key.type, extractable: key.extractable, algorithm: this.#encodeResult(key.algorithm, out, depth + 1), usages: [...key.usages] };
    }
    if (Array.isArray(v)) return v.map((x) => this.#encodeResult(x, out, depth + 1));
    const o: Record<string, unknown> = {};
    for (const k of Object.keys(v)) o[k] = this.#encodeResult((v as Record<string, unknown>)[k], out, depth + 1);
    if ('publicKey' in v && 'privateKey' in v) {
      o.publicKey = this.#encodeResult((v as WebCrypto.CryptoKeyPair).publicKey, out, depth + 1);
      o.privateKey = this.#encodeResult((v as WebCrypto.CryptoKeyPair).privateKey, out, depth + 1);
    }
    return o;
  }
}
