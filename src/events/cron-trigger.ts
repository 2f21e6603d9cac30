/**
 * One cron trigger's timer. A fire enqueues an async invocation whose idempotency key names the trigger
 * and the scheduled time, so a fire repeated after a crash (fired, then killed before the cursor moved)
 * is stored once; the durable cursor (last scheduled time fired) tells a restarted node which fires it
 * missed, and the trigger's policy says whether to skip them or run the latest once.
 *
 * Fires are enqueued LEAD_MS ahead, as messages due at their scheduled time, and the function's async
 * consumer receives them as soon as they are stored and holds them until then (`aheadMs`): the durable
 * writes (message, cursor, lease) happen before the scheduled time instead of on its critical path, so a
 * burst of triggers due at the same second starts on time. A fire enqueued before a crash runs when the node is
 * back, late, whatever the missed-fire policy (it was accepted before the outage).
 */
import type { CronTrigger as CronTriggerConfig } from '../core/config.ts';
import { EVENT_DEFAULTS } from '../core/defaults.ts';
import { toContinuumError } from '../core/errors.ts';
import type { QueueStore } from '../store/contract.ts';
import { compileCron, planFires } from './cron.ts';

export interface CronTriggerOptions {
  /** Stable identity of the trigger (function + schedule + zone); also its cursor key. */
  key: string;
  trigger: CronTriggerConfig;
  store: QueueStore;
  /** Enqueue the fire, visible after `delayMs` (its scheduled time). */
  fire: (scheduledTime: number, idempotencyKey: string, delayMs: number) => Promise<unknown>;
  log?: (line: string) => void;
  now?: () => number;
}

/** Longest single timer; longer waits re-arm (setTimeout's ceiling is about 24.8 days). */
const MAX_TIMER_MS = 3600_000;
const RETRY_FIRE_MS = 1000;
const LEAD_MS = EVENT_DEFAULTS.cron.leadMs;

export class CronTrigger {
  readonly #o: CronTriggerOptions;
  readonly #next: (after: number) => number | null;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  /** Throws bad_request naming the field for an invalid schedule or time zone. */
  static validate(trigger: CronTriggerConfig, pointer: string): void {
    compileCron(trigger.schedule, trigger.timezone, pointer);
  }

  constructor(options: CronTriggerOptions) {
    this.#o = options;
    this.#next = compileCron(options.trigger.schedule, options.trigger.timezone, '').next;
  }

  async start(): Promise<void> {
    const now = this.#now();
    const stored = await this.#o.store.getCursor(this.#o.key);
    const lastFire = stored === null ? null : Number(stored);
    const plan = planFires({ lastFire, now, missed: this.#o.trigger.missed, next: this.#next });
    for (const t of plan.fire) await this.#fire(t);
    if (stored === null) await this.#o.store.setCursor(this.#o.key, String(now));
    this.#arm(plan.nextAt);
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  #now(): number {
    return (this.#o.now ?? Date.now)();
  }

  #arm(at: number | null): void {
    if (this.#stopped || at === null) return;
    const wait = Math.max(0, Math.min(MAX_TIMER_MS, at - LEAD_MS - this.#now()));
    this.#timer = setTimeout(() => void this.#tick(at), wait);
  }

  async #tick(at: number): Promise<void> {
    if (this.#stopped) return;
    if (this.#now() < at - LEAD_MS) {
      this.#arm(at); // woke early, or a long wait in steps
      return;
    }
    try {
      await this.#fire(at);
    } catch (err) {
      this.#o.log?.(`cron ${this.#o.trigger.schedule}: fire at ${new Date(at).toISOString()} failed (${toContinuumError(err).message}); retrying`);
      this.#timer = setTimeout(() => void this.#tick(at), RETRY_FIRE_MS);
      return;
    }
    this.#arm(this.#next(at));
  }

  async #fire(scheduledTime: number): Promise<void> {
    await this.#o.fire(scheduledTime, `${this.#o.key}:${scheduledTime}`, Math.max(0, scheduledTime - this.#now()));
    await this.#o.store.setCursor(this.#o.key, String(scheduledTime));
  }
}
