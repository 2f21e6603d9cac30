/**
 * Pure decisions of the activator, tested by tables (decide.test.ts). The pool (pool.ts) feeds them a
 * snapshot of its state and carries out the answer; an autoscaler can later drive the same pool through
 * `desiredStarts` without touching the lease path.
 */

export interface InstanceLoad {
  id: string;
  inFlight: number;
  draining: boolean;
}

export interface PoolSnapshot {
  instances: readonly InstanceLoad[];
  /** Instances being created right now. */
  starting: number;
  /** Requests already waiting for capacity (FIFO). */
  waiting: number;
  concurrency: number;
  maxInstances: number;
  maxQueued: number;
}

export type LeaseDecision =
  | { kind: 'use'; instanceId: string }
  | { kind: 'start' }
  | { kind: 'wait' }
  | { kind: 'reject' };

/**
 * Where a new request goes: the busiest instance that still has a free slot (packs load so idle
 * instances can be evicted), else a new instance if the cap allows, else a bounded wait, else refuse.
 * Requests already queued go first, so a newcomer never overtakes them.
 */
export function decideLease(pool: PoolSnapshot): LeaseDecision {
  if (pool.waiting === 0) {
    let best: InstanceLoad | undefined;
    for (const instance of pool.instances) {
      if (instance.draining || instance.inFlight >= pool.concurrency) continue;
      if (!best || instance.inFlight > best.inFlight) best = instance;
    }
    if (best) return { kind: 'use', instanceId: best.id };
  }
  if (desiredStarts({ ...pool, waiting: pool.waiting + 1 }) > 0) return { kind: 'start' };
  if (pool.waiting < pool.maxQueued) return { kind: 'wait' };
  return { kind: 'reject' };
}

/** How many more instances to start so the waiting requests will have slots, within maxInstances. */
export function desiredStarts(pool: PoolSnapshot): number {
  const live = pool.instances.filter((i) => !i.draining);
  const freeSlots = live.reduce((sum, i) => sum + Math.max(0, pool.concurrency - i.inFlight), 0);
  const incomingSlots = pool.starting * pool.concurrency;
  const uncovered = pool.waiting - freeSlots - incomingSlots;
  if (uncovered <= 0) return 0;
  const room = pool.maxInstances - live.length - pool.starting;
  return Math.max(0, Math.min(room, Math.ceil(uncovered / pool.concurrency)));
}

/** Instances to evict now: idle past the timeout, oldest-idle first, keeping minInstances. */
export function idleEvictions(
  instances: ReadonlyArray<{ id: string; inFlight: number; idleSince: number | null }>,
  now: number,
  idleTimeoutMs: number,
  minInstances: number,
): string[] {
  const idle = instances
    .filter((i) => i.inFlight === 0 && i.idleSince !== null && now - i.idleSince >= idleTimeoutMs)
    .sort((a, b) => (a.idleSince ?? 0) - (b.idleSince ?? 0));
  const removable = Math.max(0, instances.length - minInstances);
  return idle.slice(0, removable).map((i) => i.id);
}

/** Seconds a refused caller should wait before retrying. */
export function retryAfterSeconds(queueTimeoutMs: number): number {
  return Math.max(1, Math.min(30, Math.ceil(queueTimeoutMs / 1000)));
}
