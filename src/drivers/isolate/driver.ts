/**
 * The isolate tier's SandboxDriver. Isolates live in data-plane worker processes
 * (`node --no-node-snapshot worker.ts`, empty environment); the driver places instances on them
 * (least loaded, one function's instances spread), talks to them in binary frames over a pipe,
 * enforces the host-side limits (instance.ts), and replaces workers that die or get stuck.
 */
import { realpathSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { ContinuumError } from '../../core/errors.ts';
import type { DriverStatus, Instance, InstanceServices, InstanceSpec, SandboxDriver } from '../../core/driver.ts';
import type { WireLoadOptions } from '../../runtime/isolate/protocol.ts';
import { bindingNames } from './bindings.ts';
import { IsolateInstance } from './instance.ts';
import { loadPrelude } from './prelude-build.ts';
import { WorkerProcess, type WorkerSpawnOptions } from './worker-process.ts';
import type { CreatePayload } from './worker-loop.ts';

/** Driver options: how to spawn workers (shared with WorkerProcess) plus pool-wide settings. */
export interface IsolateDriverOptions
  extends Pick<WorkerSpawnOptions, 'nodePath' | 'workerScript' | 'nodeFlags' | 'workerArgs' | 'pingIntervalMs' | 'stuckMs' | 'createTimeoutMs' | 'startTimeoutMs'> {
  /** Worker processes; 0 means os.availableParallelism(). */
  workers: number;
  /**
   * Run workers under Node's permission model: no child processes, no worker threads, no file writes,
   * reads only of the code they run (src/, node_modules/). Defence in depth behind the isolate boundary.
   */
  sandboxWorkers: boolean;
  /**
   * The in-isolate runtime source handed to every worker at start; null builds (or loads the cached)
   * prelude once in this process, so workers never run the bundler.
   */
  prelude: string | null;
  /** Worker diagnostics (stderr lines, uncaught errors, watchdog kills). */
  onDiagnostic: (message: string) => void;
}

export const ISOLATE_DRIVER_DEFAULTS = {
  pingIntervalMs: 250,
  stuckMs: 5_000,
  createTimeoutMs: 30_000,
  startTimeoutMs: 15_000,
} as const;

/** Fill every option; nothing is read from the environment. */
export function resolveIsolateDriverOptions(input: Partial<IsolateDriverOptions> = {}): IsolateDriverOptions {
  return {
    workers: input.workers && input.workers > 0 ? input.workers : os.availableParallelism(),
    nodePath: input.nodePath ?? process.execPath,
    workerScript: input.workerScript ?? fileURLToPath(new URL('./worker.ts', import.meta.url)),
    sandboxWorkers: input.sandboxWorkers ?? true,
    nodeFlags: input.nodeFlags ?? [],
    workerArgs: input.workerArgs ?? [],
    pingIntervalMs: input.pingIntervalMs ?? ISOLATE_DRIVER_DEFAULTS.pingIntervalMs,
    stuckMs: input.stuckMs ?? ISOLATE_DRIVER_DEFAULTS.stuckMs,
    createTimeoutMs: input.createTimeoutMs ?? ISOLATE_DRIVER_DEFAULTS.createTimeoutMs,
    startTimeoutMs: input.startTimeoutMs ?? ISOLATE_DRIVER_DEFAULTS.startTimeoutMs,
    prelude: input.prelude ?? null,
    onDiagnostic: input.onDiagnostic ?? (() => {}),
  };
}

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

/** Node permission-model flags for a worker: read its own code, load the isolated-vm addon, nothing else. */
export function workerPermissionFlags(): string[] {
  return [
    '--permission',
    '--allow-addons',
    '--disable-warning=SecurityWarning',
    `--allow-fs-read=${repoRoot}src/`,
    `--allow-fs-read=${repoRoot}node_modules/`,
    // The permission model checks real paths: node_modules may be a symlink (a git worktree sharing one).
    `--allow-fs-read=${realpathSync(`${repoRoot}node_modules`)}/`,
    `--allow-fs-read=${repoRoot}package.json`,
    // node-gyp-build (isolated-vm's loader) probes this file; a denied probe throws instead of returning false.
    '--allow-fs-read=/etc/alpine-release',
  ];
}

/** Restart delays after consecutive crashes of one worker slot (a crash loop must not spin). */
const RESTART_BACKOFF_MS = [0, 100, 500, 2_000, 5_000];
/** A worker that stayed up this long resets its slot's crash count. */
const HEALTHY_AFTER_MS = 10_000;
/** How long a worker that reported a catastrophic error may finish its in-flight work. */
const RETIRE_GRACE_MS = 5_000;

interface Slot {
  worker: WorkerProcess | null;
  crashes: number;
  startedAt: number;
  restartTimer: NodeJS.Timeout | null;
}

export class IsolateDriver implements SandboxDriver {
  readonly tier = 'isolate' as const;
  readonly options: IsolateDriverOptions;
  #slots: Slot[] = [];
  #instances = new Set<IsolateInstance>();
  #running = false;
  #lastError: string | null = null;
  #readyWaiters: Array<() => void> = [];
  #initJson = '{}';

  constructor(options: Partial<IsolateDriverOptions> = {}) {
    this.options = resolveIsolateDriverOptions(options);
  }

  async start(): Promise<void> {
    if (this.#running) return;
    const prelude = this.options.prelude ?? (await loadPrelude()).source;
    this.#initJson = JSON.stringify({ prelude });
    this.#running = true;
    this.#slots = Array.from({ length: this.options.workers }, () => ({ worker: null, crashes: 0, startedAt: 0, restartTimer: null }));
    const starts = this.#slots.map((slot, i) => this.#spawn(slot, i));
    const results = await Promise.allSettled(starts);
    if (results.every((r) => r.status === 'rejected')) {
      const first = results[0] as PromiseRejectedResult;
      throw first.reason instanceof ContinuumError ? first.reason : new ContinuumError('unavailable', 'no isolate worker could start');
    }
  }

  #spawnOptions(): WorkerSpawnOptions {
    const o = this.options;
    return {
      nodePath: o.nodePath,
      workerScript: o.workerScript,
      nodeFlags: o.sandboxWorkers ? [...workerPermissionFlags(), ...o.nodeFlags] : o.nodeFlags,
      workerArgs: o.workerArgs,
      pingIntervalMs: o.pingIntervalMs,
      stuckMs: o.stuckMs,
      createTimeoutMs: o.createTimeoutMs,
      startTimeoutMs: o.startTimeoutMs,
      initJson: this.#initJson,
      onDiagnostic: (i, m) => o.onDiagnostic(`isolate worker ${i}: ${m}`),
    };
  }

  #spawn(slot: Slot, index: number): Promise<void> {
    slot.restartTimer = null;
    const worker = new WorkerProcess(index, this.#spawnOptions());
    slot.worker = worker;
    slot.startedAt = Date.now();
    worker.onExit((reason) => {
      if (slot.worker === worker) slot.worker = null;
      this.options.onDiagnostic(`isolate worker ${index} (pid ${worker.pid}) exited: ${reason}`);
      if (!this.#running) return;
      this.#lastError = reason;
      if (Date.now() - slot.startedAt > HEALTHY_AFTER_MS) slot.crashes = 0;
      const delay = RESTART_BACKOFF_MS[Math.min(slot.crashes, RESTART_BACKOFF_MS.length - 1)]!;
      slot.crashes++;
      slot.restartTimer = setTimeout(() => {
        if (this.#running && slot.worker === null) void this.#spawn(slot, index).catch(() => {});
      }, delay);
      slot.restartTimer.unref();
    });
    return worker.ready.then(() => {
      this.#lastError = null;
      const waiters = this.#readyWaiters;
      this.#readyWaiters = [];
      for (const w of waiters) w();
      // Watch for a catastrophic error report: replace the worker once its work is done.
      const check = setInterval(() => {
        if (!worker.alive) clearInterval(check);
        else if (worker.retiring) {
          clearInterval(check);
          this.#retireWorker(slot, index, worker);
        }
      }, 100);
      check.unref();
    });
  }

  /** Stop placing on a worker, start its replacement, and kill it once idle (or after a grace period). */
  #retireWorker(slot: Slot, index: number, worker: WorkerProcess): void {
    if (slot.worker === worker) slot.worker = null;
    if (this.#running) void this.#spawn(slot, index).catch(() => {});
    const deadline = Date.now() + RETIRE_GRACE_MS;
    const poll = setInterval(() => {
      let busy = false;
      for (const inst of this.#instances) if (inst.workerPid === worker.pid && inst.inflight > 0) busy = true;
      if (!busy || Date.now() > deadline || !worker.alive) {
        clearInterval(poll);
        worker.kill('retired after a catastrophic isolate error');
      }
    }, 50);
    poll.unref();
  }

  async stop(): Promise<void> {
    this.#running = false;
    for (const inst of [...this.#instances]) inst.crash(null, 'driver stopped');
    const exits: Array<Promise<void>> = [];
    for (const slot of this.#slots) {
      if (slot.restartTimer) clearTimeout(slot.restartTimer);
      const w = slot.worker;
      slot.worker = null;
      if (w && w.alive) {
        exits.push(new Promise((resolve) => w.onExit(() => resolve())));
        w.kill('driver stopped');
      }
    }
    await Promise.all(exits);
  }

  status(): DriverStatus {
    const ready = this.#slots.filter((s) => s.worker?.alive).length;
    const status: DriverStatus = { tier: 'isolate', available: this.#running && ready > 0, instances: this.#instances.size };
    if (!this.#running) status.reason = 'driver not started';
    else if (ready === 0) status.reason = `no isolate worker running${this.#lastError ? `: ${this.#lastError}` : ''}`;
    else status.reason = `${ready}/${this.#slots.length} worker processes`;
    return status;
  }

  /** Least-loaded live worker, preferring the one with the fewest instances of this function. */
  #pick(functionName: string, exclude: WorkerProcess | null): WorkerProcess | null {
    let best: WorkerProcess | null = null;
    let bestKey = [Infinity, Infinity];
    for (const slot of this.#slots) {
      const w = slot.worker;
      if (!w || !w.alive || w.retiring || w === exclude) continue;
      const key = [w.perFunction.get(functionName) ?? 0, w.load];
      if (key[0]! < bestKey[0]! || (key[0] === bestKey[0] && key[1]! < bestKey[1]!)) {
        best = w;
        bestKey = key;
      }
    }
    return best;
  }

  async #waitForWorker(functionName: string, exclude: WorkerProcess | null): Promise<WorkerProcess> {
    const deadline = Date.now() + this.options.startTimeoutMs;
    for (;;) {
      const w = this.#pick(functionName, exclude) ?? this.#pick(functionName, null);
      if (w) {
        try {
          await w.ready;
          return w;
        } catch {
          // it died while starting; look again
        }
        continue;
      }
      if (!this.#running) throw new ContinuumError('unavailable', 'the isolate driver is not running');
      const left = deadline - Date.now();
      if (left <= 0) throw new ContinuumError('unavailable', 'no isolate worker is available');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 100));
        this.#readyWaiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async createInstance(spec: InstanceSpec, services?: InstanceServices): Promise<Instance> {
    if (!this.#running) throw new ContinuumError('unavailable', 'the isolate driver is not running');
    const load: WireLoadOptions = {
      functionName: spec.functionName,
      versionId: spec.versionId,
      format: spec.format,
      exportName: spec.exportName,
      payload: spec.lambdaPayload,
      env: spec.env,
      memoryLimitMb: spec.limits.memoryMb,
      timeoutMs: spec.limits.timeoutMs,
      // An invocation cannot use more CPU than wall time; the smaller budget also bounds how long one
      // synchronous run may hold the worker's event loop.
      cpuMs: Math.min(spec.limits.cpuMs, spec.limits.timeoutMs),
      responseBytes: spec.limits.responseBytes,
      subrequests: spec.limits.subrequests,
      // Names only: the driver resolves a name to its queue or function through this spec when the isolate calls.
      ...bindingNames(spec.bindings),
    };
    const payload: CreatePayload & { limits: InstanceSpec['limits'] } = { code: spec.code, load, logBytes: spec.limits.logBytes, limits: spec.limits };
    const json = JSON.stringify(payload);
    let lastWorker: WorkerProcess | null = null;
    // One retry on another worker if the first dies under us (the crash was not this bundle's doing
    // as far as we can tell; a bundle that kills two workers in a row is refused).
    for (let attempt = 0; ; attempt++) {
      const worker = await this.#waitForWorker(spec.functionName, lastWorker);
      lastWorker = worker;
      const { num, created } = worker.create(json);
      worker.perFunction.set(spec.functionName, (worker.perFunction.get(spec.functionName) ?? 0) + 1);
      let timer: NodeJS.Timeout | undefined;
      try {
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new ContinuumError('bad_bundle', `module did not load within ${this.options.createTimeoutMs} ms`)), this.options.createTimeoutMs);
        });
        const body = await Promise.race([created, timeout]);
        const info = JSON.parse(body.toString('utf8')) as { timing: { sandboxMs: number; runtimeMs: number; moduleMs: number; spare?: boolean; prepaidMs?: number }; format: string; exportName: string };
        // sandboxMs is 0 for a sandbox made from a spare isolate; `spare`/`prepaidMs` say what was paid ahead.
        const extra = info.timing.spare === undefined ? {} : { spare: info.timing.spare, prepaidMs: info.timing.prepaidMs ?? 0 };
        const instance = new IsolateInstance({
          spec,
          services,
          worker,
          num,
          initTiming: { sandboxMs: info.timing.sandboxMs, runtimeMs: info.timing.runtimeMs, moduleMs: info.timing.moduleMs, ...extra },
          format: info.format,
          exportName: info.exportName,
          onStopped: (inst) => {
            this.#instances.delete(inst);
            const n = (worker.perFunction.get(spec.functionName) ?? 1) - 1;
            if (n > 0) worker.perFunction.set(spec.functionName, n);
            else worker.perFunction.delete(spec.functionName);
          },
        });
        if (!worker.alive) {
          instance.crash('instance_crashed', 'isolate worker died');
        } else {
          worker.instances.set(num, instance);
        }
        this.#instances.add(instance);
        return instance;
      } catch (err) {
        const n = (worker.perFunction.get(spec.functionName) ?? 1) - 1;
        if (n > 0) worker.perFunction.set(spec.functionName, n);
        else worker.perFunction.delete(spec.functionName);
        if (worker.alive) worker.abandonCreate(num);
        const e = err instanceof ContinuumError ? err : new ContinuumError('internal', 'instance creation failed', undefined, { cause: err });
        if (e.code === 'instance_crashed' && attempt === 0 && this.#running) continue;
        if (e.code === 'instance_crashed') throw new ContinuumError('bad_bundle', `module failed to load: the isolate worker died while loading it`);
        throw e;
      } finally {
        clearTimeout(timer);
      }
    }
  }

  /** Pids of the live worker processes (operations and tests). */
  workerPids(): number[] {
    return this.#slots.flatMap((s) => (s.worker?.alive && s.worker.pid ? [s.worker.pid] : []));
  }
}
