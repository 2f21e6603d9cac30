/**
 * The driver's handle on one data-plane worker process: spawn with an empty environment, frame channel
 * on fd 3, watchdog pings, and the crash path (every instance on it stops with `instance_crashed`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { ContinuumError, type ErrorCode } from '../../core/errors.ts';
import { GC_GLOBAL } from '../../runtime/isolate/protocol.ts';
import { F, FrameReader, FrameWriter, INSTANCE_FRAMES } from './frames.ts';

export interface WorkerSpawnOptions {
  /** The pinned node binary the workers run on. */
  nodePath: string;
  /** Worker entry point (tests may point at another script that calls runWorker). */
  workerScript: string;
  /** Extra node flags (after --no-node-snapshot). */
  nodeFlags: readonly string[];
  /** Arguments after the worker script. */
  workerArgs: readonly string[];
  /** Watchdog ping period. */
  pingIntervalMs: number;
  /** A worker whose event loop does not answer a ping for this long is killed and replaced. */
  stuckMs: number;
  /** Module load may block the worker's loop this long before the watchdog counts it as stuck. */
  createTimeoutMs: number;
  /** Longest a worker may take to start. */
  startTimeoutMs: number;
  /** JSON handed to the worker's engine factory in the `init` frame (e.g. the prelude source). */
  initJson: string;
  /** Diagnostics from the worker (stderr lines, uncaught errors); bounded per line. */
  onDiagnostic: (workerIndex: number, message: string) => void;
  /**
   * Run this instead of `nodePath … workerScript` (the process tier starts its sandbox launcher here);
   * the frame channel is still fd 3.
   */
  command?: { file: string; args: readonly string[] };
  /** What errors call the process ('isolate worker' by default). */
  label?: string;
}

/** What the worker process routes to instances; implemented by IsolateInstance. */
export interface FrameSink {
  /** Longest the engine may legitimately block the worker's loop for this instance (its CPU budget). */
  readonly budgetMs: number;
  frame(type: number, b: number, payload: Buffer): void;
  crash(code: ErrorCode, message: string): void;
  /** Take no new work; stop once idle. */
  retire(code: ErrorCode, message: string): void;
}

interface PendingCreate {
  resolve(payload: Buffer): void;
  reject(err: ContinuumError): void;
}

const STDERR_LINE_BYTES = 4096;

export class WorkerProcess {
  readonly index: number;
  readonly child: ChildProcess;
  readonly out: FrameWriter;
  readonly ready: Promise<void>;
  readonly instances = new Map<number, FrameSink>();
  /** Instances per function name on this worker (placement spreads one function's instances). */
  readonly perFunction = new Map<string, number>();
  #pendingCreates = new Map<number, PendingCreate>();
  #exitListeners: Array<(message: string) => void> = [];
  #alive = true;
  /** Stop taking new instances (catastrophic error reported, or being replaced). */
  retiring = false;
  #lastPong = Date.now();
  /**
   * The worker said it is ready. Before that its loop is busy starting (Node, modules, the prelude
   * snapshot: seconds on a loaded host), which `startTimeoutMs` bounds; the watchdog starts counting then.
   */
  #ready = false;
  #pingSeq = 0;
  #watchdog: NodeJS.Timeout;
  #exitReason: string | null = null;
  readonly #opts: WorkerSpawnOptions;
  #nextInstance = 0;
  readonly #label: string;

  constructor(index: number, opts: WorkerSpawnOptions) {
    this.index = index;
    this.#opts = opts;
    const label = (this.#label = opts.label ?? 'isolate worker');
    const file = opts.command?.file ?? opts.nodePath;
    // The collector, for idle trims (engine.ts): the runtime takes it off every context's global.
    const args = opts.command?.args ?? ['--no-node-snapshot', `--expose-gc-as=${GC_GLOBAL}`, ...opts.nodeFlags, opts.workerScript, ...opts.workerArgs];
    this.child = spawn(file, args, {
      // No admin token, no store, no secrets of other functions: the worker gets nothing from our env.
      env: {},
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
      windowsHide: true,
    });
    const channel = this.child.stdio[3] as Socket;
    this.out = new FrameWriter(channel);
    let readyResolve!: () => void;
    let readyReject!: (err: Error) => void;
    this.ready = new Promise<void>((resolve, reject) => {
      readyResolve = resolve;
      readyReject = reject;
    });
    this.ready.catch(() => {});
    const startTimer = setTimeout(() => {
      readyReject(new ContinuumError('unavailable', `${label} did not start within ${opts.startTimeoutMs} ms`));
      this.kill('start timeout');
    }, opts.startTimeoutMs);
    startTimer.unref();

    const reader = new FrameReader((type, a, b, payload) => {
      if (INSTANCE_FRAMES.has(type)) {
        this.instances.get(a)?.frame(type, b, payload);
        return;
      }
      switch (type) {
        case F.pong:
          this.#lastPong = Date.now();
          return;
        case F.created:
        case F.createFailed: {
          const p = this.#pendingCreates.get(a);
          if (!p) return;
          this.#pendingCreates.delete(a);
          if (type === F.created) {
            p.resolve(payload);
          } else {
            const e = JSON.parse(payload.toString('utf8')) as { code: string; message: string };
            p.reject(new ContinuumError('bad_bundle', `module failed to load (${e.code}): ${e.message}`));
          }
          return;
        }
        case F.exited: {
          const sink = this.instances.get(a);
          if (!sink) return;
          const e = JSON.parse(payload.toString('utf8')) as { code: string; message: string };
          sink.crash((e.code as ErrorCode) || 'instance_crashed', e.message);
          return;
        }
        case F.ready: {
          clearTimeout(startTimer);
          this.#lastPong = Date.now();
          const r = JSON.parse(payload.toString('utf8')) as { error?: string };
          if (r.error) {
            readyReject(new ContinuumError('unavailable', `isolate engine failed to start: ${r.error}`));
            this.kill(`engine failed to start: ${r.error}`);
          } else {
            this.#ready = true;
            readyResolve();
          }
          return;
        }
        case F.fatal: {
          this.retiring = true;
          const message = payload.toString('utf8');
          opts.onDiagnostic(index, `catastrophic isolate error: ${message}`);
          for (const sink of this.instances.values()) sink.retire('instance_crashed', `isolate worker is being replaced after a catastrophic error: ${message}`);
          return;
        }
        case F.workerError:
          opts.onDiagnostic(index, payload.toString('utf8'));
          return;
      }
    });
    channel.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk);
      } catch (err) {
        // A worker that breaks the protocol is not trusted with more work.
        this.kill(`protocol error: ${(err as Error).message}`);
      }
    });
    channel.on('error', () => this.kill('channel error'));
    this.#drainLines(this.child.stdout!, 'stdout');
    this.#drainLines(this.child.stderr!, 'stderr');

    this.child.on('error', (err) => {
      clearTimeout(startTimer);
      readyReject(new ContinuumError('unavailable', `${label} failed to spawn: ${err.message}`));
      this.#onExit(`spawn failed: ${err.message}`);
    });
    this.child.on('exit', (code, signal) => {
      clearTimeout(startTimer);
      readyReject(new ContinuumError('unavailable', `${label} exited during start (${signal ?? code})`));
      this.#onExit(this.#exitReason ?? `worker process exited (${signal ?? `code ${code}`})`);
    });

    this.out.text(F.init, 0, 0, opts.initJson);
    this.#watchdog = setInterval(() => this.#tick(), opts.pingIntervalMs);
    this.#watchdog.unref();
  }

  get alive(): boolean {
    return this.#alive;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Instances plus in-flight creations: the load used for placement. */
  get load(): number {
    return this.instances.size + this.#pendingCreates.size;
  }

  #tick(): void {
    if (!this.#alive || !this.#ready) return;
    // The engine runs tenant code synchronously with the invocation's CPU budget as its timeout, so a
    // loop may legitimately block the worker that long; past budget + stuckMs the engine failed to stop it.
    let budget = this.#pendingCreates.size > 0 ? this.#opts.createTimeoutMs : 0;
    for (const sink of this.instances.values()) if (sink.budgetMs > budget) budget = sink.budgetMs;
    const limit = budget + this.#opts.stuckMs;
    const silent = Date.now() - this.#lastPong;
    if (silent > limit) {
      this.kill(`worker event loop stuck for ${silent} ms`);
      return;
    }
    this.out.bytes(F.ping, ++this.#pingSeq >>> 0, 0);
  }

  #drainLines(stream: NodeJS.ReadableStream, name: string): void {
    let buf = '';
    stream.setEncoding('utf8');
    stream.on('data', (s: string) => {
      buf += s;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        this.#opts.onDiagnostic(this.index, `${name}: ${buf.slice(0, Math.min(nl, STDERR_LINE_BYTES))}`);
        buf = buf.slice(nl + 1);
      }
      if (buf.length > STDERR_LINE_BYTES) {
        this.#opts.onDiagnostic(this.index, `${name}: ${buf.slice(0, STDERR_LINE_BYTES)}`);
        buf = '';
      }
    });
  }

  /** Load a module into a new sandbox; resolves with the `created` payload. */
  create(payloadJson: string): { num: number; created: Promise<Buffer> } {
    const num = ++this.#nextInstance;
    const created = new Promise<Buffer>((resolve, reject) => {
      if (!this.#alive) {
        reject(new ContinuumError('instance_crashed', `${this.#label} is not running`));
        return;
      }
      this.#pendingCreates.set(num, { resolve, reject });
      this.out.text(F.create, num, 0, payloadJson);
    });
    return { num, created };
  }

  abandonCreate(num: number): void {
    this.#pendingCreates.delete(num);
    this.out.bytes(F.dispose, num, 0);
  }

  onExit(listener: (message: string) => void): void {
    if (!this.#alive) listener(this.#exitReason ?? 'worker exited');
    else this.#exitListeners.push(listener);
  }

  kill(reason: string): void {
    if (!this.#alive) return;
    this.#exitReason ??= reason;
    this.child.kill('SIGKILL');
  }

  #onExit(reason: string): void {
    if (!this.#alive) return;
    this.#alive = false;
    this.#exitReason ??= reason;
    clearInterval(this.#watchdog);
    this.out.close();
    const creates = [...this.#pendingCreates.values()];
    this.#pendingCreates.clear();
    for (const p of creates) p.reject(new ContinuumError('instance_crashed', `${this.#label} died: ${reason}`));
    const sinks = [...this.instances.values()];
    this.instances.clear();
    for (const s of sinks) s.crash('instance_crashed', `${this.#label} died: ${reason}`);
    const listeners = this.#exitListeners;
    this.#exitListeners = [];
    for (const l of listeners) l(reason);
  }
}
