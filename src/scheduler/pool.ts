/**
 * The instance pool of one function version: leases instances to requests, starts instances on demand,
 * makes requests wait (bounded) for capacity, and evicts idle instances. Decisions come from decide.ts;
 * this class only carries them out. It is the seam an autoscaler drives (`ensureInstances`).
 */
import { ContinuumError } from '../core/errors.ts';
import type { InitTiming, Instance, InstanceServices, InstanceSpec, SandboxDriver } from '../core/driver.ts';
import { decideLease, desiredStarts, idleEvictions, retryAfterSeconds } from './decide.ts';

export interface PoolSettings {
  concurrency: number;
  maxInstances: number;
  minInstances: number;
  idleTimeoutMs: number;
  queueTimeoutMs: number;
  maxQueued: number;
}

export interface Lease {
  instance: Instance;
  /** Milliseconds this request waited for capacity. */
  queueMs: number;
  /** Set when this request is the first one served by a freshly started instance. */
  coldStart: ColdStart | null;
  release(): void;
}

/** The driver's cold-start phases, and the wall time the whole start took as the pool saw it (code load, IPC). */
export interface ColdStart extends InitTiming {
  wallMs: number;
}

interface Slot {
  instance: Instance;
  inFlight: number;
  idleSince: number | null;
  /** Init timing not yet reported by a lease. */
  unreportedInit: ColdStart | null;
}

interface Waiter {
  enqueuedAt: number;
  resolve(lease: Lease): void;
  reject(err: ContinuumError): void;
  timer: NodeJS.Timeout;
}

export class OverloadedError extends ContinuumError {
  readonly retryAfterSeconds: number;
  constructor(message: string, retryAfter: number) {
    super('overloaded', message);
    this.retryAfterSeconds = retryAfter;
  }
}

let instanceCounter = 0;

export class InstancePool {
  readonly functionName: string;
  readonly versionId: string;
  private readonly driver: SandboxDriver;
  private readonly services: InstanceServices | undefined;
  private readonly spec: () => Promise<Omit<InstanceSpec, 'instanceId'>>;
  private settings: PoolSettings;
  private readonly slots = new Map<string, Slot>();
  private readonly waiters: Waiter[] = [];
  private starting = 0;
  private closed = false;

  constructor(opts: {
    functionName: string;
    versionId: string;
    driver: SandboxDriver;
    services?: InstanceServices;
    settings: PoolSettings;
    /** Loads what an instance needs (bundle code etc.); called per start, may be cached by the caller. */
    spec: () => Promise<Omit<InstanceSpec, 'instanceId'>>;
  }) {
    this.functionName = opts.functionName;
    this.versionId = opts.versionId;
    this.driver = opts.driver;
    this.services = opts.services;
    this.settings = opts.settings;
    this.spec = opts.spec;
  }

  get instanceCount(): number {
    return this.slots.size;
  }

  get inFlight(): number {
    let n = 0;
    for (const s of this.slots.values()) n += s.inFlight;
    return n;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  /** Instances by state and the requests waiting for capacity (read at metrics scrape time). */
  stats(): { starting: number; idle: number; busy: number; draining: number; waiting: number } {
    const out = { starting: this.starting, idle: 0, busy: 0, draining: 0, waiting: this.waiters.length };
    for (const s of this.slots.values()) {
      if (s.instance.state !== 'ready') out.draining++;
      else if (s.inFlight > 0) out.busy++;
      else out.idle++;
    }
    return out;
  }

  /** Lease an instance slot; waits at most queueTimeoutMs, then throws `overloaded`. */
  acquire(): Promise<Lease> {
    if (this.closed) return Promise.reject(new ContinuumError('unavailable', `function ${this.functionName} is being replaced; retry`));
    const decision = decideLease(this.snapshot());
    if (decision.kind === 'use') return Promise.resolve(this.lease(this.slots.get(decision.instanceId)!, 0, false));
    if (decision.kind === 'reject') return Promise.reject(this.overloaded());
    if (decision.kind === 'start') this.startInBackground();
    return this.enqueue();
  }

  /** Start instances up to `count` in total (autoscaler / minInstances / prewarm); rejects if a start fails. */
  async ensureInstances(count: number): Promise<void> {
    const target = Math.min(count, this.settings.maxInstances);
    const starts: Promise<void>[] = [];
    while (this.slots.size + this.starting < target) starts.push(this.startInstance());
    await Promise.all(starts);
  }

  /** Evict idle instances past their timeout; returns how many were stopped. */
  sweep(now = Date.now()): number {
    const slots = [...this.slots.values()].map((s) => ({ id: s.instance.id, inFlight: s.inFlight, idleSince: s.idleSince }));
    const evict = idleEvictions(slots, now, this.settings.idleTimeoutMs, this.settings.minInstances);
    for (const id of evict) this.retire(id);
    return evict.length;
  }

  /** Stop every idle instance now and drain busy ones (scale to zero on request). */
  async evictAll(): Promise<number> {
    const ids = [...this.slots.keys()];
    await Promise.all(ids.map((id) => this.retire(id)));
    return ids.length;
  }

  updateSettings(settings: PoolSettings): void {
    this.settings = settings;
    this.pump();
  }

  /**
   * Refuse new work, fail waiters, drain and stop all instances. In-flight invocations get `graceMs` to
   * finish; after that their instances are stopped (they end with `instance_crashed`).
   */
  async close(graceMs = Infinity): Promise<void> {
    this.closed = true;
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new ContinuumError('unavailable', `function ${this.functionName} is being replaced; retry`));
    }
    await Promise.all([...this.slots.keys()].map((id) => this.retire(id, graceMs)));
  }

  private snapshot() {
    return {
      instances: [...this.slots.values()].map((s) => ({ id: s.instance.id, inFlight: s.inFlight, draining: s.instance.state !== 'ready' })),
      starting: this.starting,
      waiting: this.waiters.length,
      concurrency: this.settings.concurrency,
      maxInstances: this.settings.maxInstances,
      maxQueued: this.settings.maxQueued,
    };
  }

  private overloaded(): OverloadedError {
    const s = this.settings;
    return new OverloadedError(
      `function ${this.functionName} is at capacity (${s.maxInstances} instances × ${s.concurrency} concurrent, ${this.waiters.length} waiting)`,
      retryAfterSeconds(s.queueTimeoutMs),
    );
  }

  private enqueue(): Promise<Lease> {
    return new Promise<Lease>((resolve, reject) => {
      const waiter: Waiter = {
        enqueuedAt: performance.now(),
        resolve,
        reject,
        timer: setTimeout(() => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(this.overloaded());
        }, this.settings.queueTimeoutMs),
      };
      this.waiters.push(waiter);
    });
  }

  /**
   * `waited`: the request queued for capacity, so an instance start it got may be its cold start. An instance
   * that was already up when the request came (prewarmed, minInstances) is warm for it.
   */
  private lease(slot: Slot, queueMs: number, waited: boolean): Lease {
    slot.inFlight++;
    slot.idleSince = null;
    const coldStart = waited ? slot.unreportedInit : null;
    slot.unreportedInit = null;
    let released = false;
    return {
      instance: slot.instance,
      queueMs,
      coldStart,
      release: () => {
        if (released) return;
        released = true;
        slot.inFlight--;
        if (slot.inFlight === 0) slot.idleSince = Date.now();
        this.pump();
      },
    };
  }

  /** Hand free slots to waiters in FIFO order, and start instances the backlog needs. */
  private pump(): void {
    while (this.waiters.length > 0) {
      const decision = decideLease({ ...this.snapshot(), waiting: 0 });
      if (decision.kind !== 'use') break;
      const waiter = this.waiters.shift()!;
      clearTimeout(waiter.timer);
      waiter.resolve(this.lease(this.slots.get(decision.instanceId)!, performance.now() - waiter.enqueuedAt, true));
    }
    const starts = desiredStarts(this.snapshot());
    for (let i = 0; i < starts; i++) this.startInBackground();
  }

  /** A start nobody awaits: its failure reaches the waiters through failWaitersIfHopeless. */
  private startInBackground(): void {
    this.startInstance().catch(() => {});
  }

  private async startInstance(): Promise<void> {
    this.starting++;
    const t0 = performance.now();
    let instance: Instance;
    try {
      const spec = await this.spec();
      instance = await this.driver.createInstance({ ...spec, instanceId: `${this.functionName}-${(++instanceCounter).toString(36)}` }, this.services);
    } catch (err) {
      this.starting--;
      this.failWaitersIfHopeless(err);
      this.pump();
      throw err;
    }
    this.starting--;
    if (this.closed) {
      void instance.stop();
      return;
    }
    const slot: Slot = { instance, inFlight: 0, idleSince: Date.now(), unreportedInit: { ...instance.initTiming, wallMs: performance.now() - t0 } };
    this.slots.set(instance.id, slot);
    instance.onExit(() => {
      this.slots.delete(instance.id);
      this.pump();
    });
    this.pump();
  }

  /** A start failed: waiters that no instance can serve get that failure instead of a timeout. */
  private failWaitersIfHopeless(err: unknown): void {
    const live = [...this.slots.values()].filter((s) => s.instance.state === 'ready').length;
    if (live > 0 || this.starting > 0) return;
    const cause = err instanceof ContinuumError ? err : new ContinuumError('internal', 'instance start failed', undefined, { cause: err });
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(cause);
    }
  }

  private async retire(id: string, graceMs = Infinity): Promise<void> {
    const slot = this.slots.get(id);
    if (!slot) return;
    this.slots.delete(id);
    if (graceMs === Infinity) await slot.instance.drain();
    else {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([slot.instance.drain(), new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
      clearTimeout(timer);
    }
    await slot.instance.stop();
  }
}
