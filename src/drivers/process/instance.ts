/**
 * A process-tier instance: the isolate tier's host-side instance (frames, body streaming, timeouts,
 * response and log caps, queue bindings, drain/stop) over a sandbox process, with what only the cgroup
 * knows added to each completion: peak memory of the whole sandbox, CPU time (children included) when
 * the invocation ran alone, and the limit that ended it (an OOM kill → `memory_limit`, a fork refused at
 * pids.max → `pids_limit`, a full /tmp → `disk_limit`) where the sandbox alone would report a crash or a
 * function error. The CPU budget (`cpuMs`) is enforced here too: a runaway loop never yields to the
 * agent, so the host reads the leaf's CPU time while invocations run and ends the one over budget.
 */

/** A /tmp with less room than this left counts as full (tmpfs rounds writes to pages). */
const TMP_FULL_BYTES = 64 * 1024;
import { readFileSync, statfsSync } from 'node:fs';
import type { ErrorCode } from '../../core/errors.ts';
import type { Completion, InitTiming, Instance, InstanceState, InvokeRequest, InvokeResult } from '../../core/driver.ts';
import type { IsolateInstance } from '../isolate/instance.ts';
import type { CgroupLeaf, CgroupUsage, LimitCounters } from './cgroup.ts';
import { SANDBOX_AGENT, SANDBOX_NODE } from './sandbox.ts';

type ExitReason = { code: ErrorCode | null; message: string };
type Slot = { solo: boolean; invocationId: string; cpuStart: number };

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
  /**
   * The limit counters as last read. They are read only when an invocation fails (a completion reads the
   * CPU time and the peak, one file each): a failure is a limit's doing when they moved since.
   */
  #seen: LimitCounters;
  readonly #cpuMs: number;
  readonly #cpuCheckMs: number;
  /** The sandbox's /tmp seen from the host (through the agent's root), or null once the agent is gone. */
  readonly #tmp: string | null;
  /**
   * In-flight invocations: whether each has run alone so far (its cgroup CPU delta is then its own), and
   * the leaf's CPU time when it began (its budget counts the sandbox's CPU while it runs, so concurrent
   * invocations of one instance share it).
   */
  #inflight = new Set<Slot>();
  #cpuTimer: NodeJS.Timeout | null = null;

  constructor(init: { inner: IsolateInstance; leaf: CgroupLeaf; uid: number; initTiming: InitTiming; memoryMb: number; cpuMs: number; cpuCheckMs: number }) {
    this.#inner = init.inner;
    this.#leaf = init.leaf;
    this.id = init.inner.id;
    this.uid = init.uid;
    this.initTiming = init.initTiming;
    this.#memoryMb = init.memoryMb;
    this.#cpuMs = init.cpuMs;
    this.#cpuCheckMs = init.cpuCheckMs;
    this.#atStart = init.leaf.usage();
    this.#seen = this.#atStart;
    const pid = this.agentPid();
    this.#tmp = pid === null ? null : `/proc/${pid}/root/tmp`;
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

  #cpuNow(): number {
    return this.#final?.cpuMs ?? this.#leaf.cpuMs();
  }

  /** Called by the driver before it destroys the leaf. */
  recordFinalUsage(): void {
    this.#final ??= this.#leaf.usage();
  }

  /** Whether the sandbox's /tmp is (nearly) out of space or inodes. */
  #tmpFull(): boolean {
    if (this.#tmp === null) return false;
    try {
      const fs = statfsSync(this.#tmp);
      return fs.bavail * fs.bsize < TMP_FULL_BYTES || fs.ffree === 0;
    } catch {
      return false; // the sandbox is gone
    }
  }

  #limitError(error: NonNullable<Completion['error']>, before: LimitCounters, now: LimitCounters): NonNullable<Completion['error']> {
    if (now.oomKills > before.oomKills && (error.code === 'instance_crashed' || error.code === 'function_error')) {
      return { code: 'memory_limit', message: `the instance exceeded its memory limit of ${this.#memoryMb} MB` };
    }
    if (now.pidsLimitHits > before.pidsLimitHits && (error.code === 'function_error' || error.code === 'instance_crashed')) {
      return { code: 'pids_limit', message: `the instance reached its process limit (${error.message.slice(0, 200)})` };
    }
    if ((error.code === 'function_error' || error.code === 'instance_crashed') && this.#tmpFull()) {
      return { code: 'disk_limit', message: `the instance filled its /tmp (${error.message.slice(0, 200)})` };
    }
    return error;
  }

  #complete(c: Completion, slot: Slot): Completion {
    this.#inflight.delete(slot);
    if (this.#inflight.size === 0 && this.#cpuTimer) {
      clearInterval(this.#cpuTimer);
      this.#cpuTimer = null;
    }
    const cpuDelta = this.#cpuNow() - slot.cpuStart;
    let error = c.error;
    if (error !== null) {
      const now = this.#final ?? this.#leaf.limitCounters();
      error = this.#limitError(error, this.#seen, now);
      this.#seen = now;
    }
    // What a fork bomb or a memory hog leaves behind stays in the sandbox: retire it (its teardown kills
    // every process of the leaf) rather than hand it the next invocation. A full /tmp is never handed on
    // either, even when the function coped with it.
    if (error !== c.error && error !== null) this.#inner.retire(error.code, error.message);
    else if (this.#tmpFull()) this.#inner.retire('disk_limit', 'the instance filled its /tmp');
    return {
      ...c,
      error,
      cpuMs: slot.solo && cpuDelta > 0 ? cpuDelta : c.cpuMs,
      peakMemoryBytes: Math.max(this.#final?.peakMemoryBytes ?? this.#leaf.peakMemoryBytes(), c.peakMemoryBytes),
    };
  }

  /** Ends every invocation over its CPU budget (the instance then retires: its loop may never yield). */
  #checkCpu(): void {
    const cpu = this.#leaf.cpuMs();
    for (const slot of this.#inflight) {
      if (cpu - slot.cpuStart > this.#cpuMs) this.#inner.limit(slot.invocationId, 'cpu_limit', `the invocation exceeded its CPU-time limit of ${this.#cpuMs} ms`);
    }
  }

  async invoke(request: InvokeRequest): Promise<InvokeResult> {
    const slot: Slot = { solo: this.#inflight.size === 0, invocationId: request.invocationId, cpuStart: this.#cpuNow() };
    for (const other of this.#inflight) other.solo = false;
    this.#inflight.add(slot);
    this.#cpuTimer ??= setInterval(() => this.#checkCpu(), this.#cpuCheckMs);
    const r = await this.#inner.invoke(request);
    if (r.kind === 'error') return { kind: 'error', completion: this.#complete(r.completion, slot) };
    return { ...r, completion: r.completion.then((c) => this.#complete(c, slot)) };
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
