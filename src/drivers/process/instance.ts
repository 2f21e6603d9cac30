/**
 * A process-tier instance: the isolate tier's host-side instance (frames, body streaming, timeouts,
 * response and log caps, queue bindings, drain/stop) over a sandbox process, with what only the cgroup
 * knows added to each completion: peak memory of the whole sandbox, CPU time (children included) when
 * the invocation ran alone, and the limit that ended it (an OOM kill → `memory_limit`, a fork refused at
 * pids.max → `pids_limit`) where the sandbox alone would report a crash or a function error.
 */
import { readFileSync } from 'node:fs';
import type { ErrorCode } from '../../core/errors.ts';
import type { Completion, InitTiming, Instance, InstanceState, InvokeRequest, InvokeResult } from '../../core/driver.ts';
import type { IsolateInstance } from '../isolate/instance.ts';
import type { CgroupLeaf, CgroupUsage } from './cgroup.ts';
import { SANDBOX_AGENT, SANDBOX_NODE } from './sandbox.ts';

type ExitReason = { code: ErrorCode | null; message: string };

export class ProcessInstance implements Instance {
  readonly id: string;
  readonly tier = 'process' as const;
  readonly initTiming: InitTiming;
  readonly uid: number;
  readonly #inner: IsolateInstance;
  readonly #leaf: CgroupLeaf;
  readonly #memoryMb: number;
  readonly #atStart: CgroupUsage;
  /** The leaf's last reading, kept when the sandbox is torn down. */
  #final: CgroupUsage | null = null;
  /** In-flight invocations, each with whether it has run alone so far (its cgroup CPU delta is then its own). */
  #inflight = new Set<{ solo: boolean }>();

  constructor(init: { inner: IsolateInstance; leaf: CgroupLeaf; uid: number; initTiming: InitTiming; memoryMb: number }) {
    this.#inner = init.inner;
    this.#leaf = init.leaf;
    this.id = init.inner.id;
    this.uid = init.uid;
    this.initTiming = init.initTiming;
    this.#memoryMb = init.memoryMb;
    this.#atStart = init.leaf.usage();
  }

  get state(): InstanceState {
    return this.#inner.state;
  }

  /** The processes of the sandbox (launcher/bwrap, its init, the agent, whatever the function forked). */
  pids(): number[] {
    return this.#leaf.pids();
  }

  /** The Node process that runs the function (operations and tests), or null once it is gone. */
  agentPid(): number | null {
    for (const pid of this.#leaf.pids()) {
      try {
        // argv[0] tells it from the launcher and bwrap, whose arguments name the agent too.
        const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        if (argv[0] === SANDBOX_NODE && argv.includes(SANDBOX_AGENT)) return pid;
      } catch {
        // exited meanwhile
      }
    }
    return null;
  }

  #usage(): CgroupUsage {
    return this.#final ?? this.#leaf.usage();
  }

  /** Called by the driver before it destroys the leaf. */
  recordFinalUsage(): void {
    this.#final ??= this.#leaf.usage();
  }

  #limitError(error: Completion['error'], before: CgroupUsage, now: CgroupUsage): Completion['error'] {
    if (error === null) return null;
    if (now.oomKills > before.oomKills && (error.code === 'instance_crashed' || error.code === 'function_error')) {
      return { code: 'memory_limit', message: `the instance exceeded its memory limit of ${this.#memoryMb} MB` };
    }
    if (now.pidsLimitHits > before.pidsLimitHits && (error.code === 'function_error' || error.code === 'instance_crashed')) {
      return { code: 'pids_limit', message: `the instance reached its process limit (${error.message.slice(0, 200)})` };
    }
    return error;
  }

  #complete(c: Completion, before: CgroupUsage, slot: { solo: boolean }): Completion {
    this.#inflight.delete(slot);
    const now = this.#usage();
    const cpuDelta = now.cpuMs - before.cpuMs;
    const error = this.#limitError(c.error, before, now);
    // What a fork bomb or a memory hog leaves behind stays in the sandbox: retire it (its teardown kills
    // every process of the leaf) rather than hand it the next invocation.
    if (error !== c.error && error !== null) this.#inner.retire(error.code, error.message);
    return {
      ...c,
      error,
      cpuMs: slot.solo && cpuDelta > 0 ? cpuDelta : c.cpuMs,
      peakMemoryBytes: Math.max(now.peakMemoryBytes, c.peakMemoryBytes),
    };
  }

  async invoke(request: InvokeRequest): Promise<InvokeResult> {
    const before = this.#usage();
    const slot = { solo: this.#inflight.size === 0 };
    for (const other of this.#inflight) other.solo = false;
    this.#inflight.add(slot);
    const r = await this.#inner.invoke(request);
    if (r.kind === 'error') return { kind: 'error', completion: this.#complete(r.completion, before, slot) };
    return { ...r, completion: r.completion.then((c) => this.#complete(c, before, slot)) };
  }

  drain(): Promise<void> {
    return this.#inner.drain();
  }

  stop(): Promise<void> {
    return this.#inner.stop();
  }

  onExit(listener: (reason: ExitReason) => void): void {
    this.#inner.onExit((reason) => {
      const error = reason.code === null ? null : this.#limitError({ code: reason.code, message: reason.message }, this.#atStart, this.#usage());
      listener(error ?? reason);
    });
  }
}
