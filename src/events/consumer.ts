/**
 * A queue consumer: pulls batches from one queue and hands them to a function, at most `maxConcurrency`
 * batches at a time, heartbeating leases while they run, and settling each message by the function's answer
 * (ack, retry with backoff, or dead-letter once its retries or its age run out). One consumer per
 * (function, queue): a backlog or a poison message in one queue never holds up another's consumer.
 */
import { toContinuumError } from '../core/errors.ts';
import type { LeasedMessage, MessageOutcome, QueueStore, Settlement } from '../store/contract.ts';
import { decideFailure, isExpired } from './retry.ts';

export interface ConsumerSettings {
  queue: string;
  batchSize: number;
  maxBatchWaitMs: number;
  maxConcurrency: number;
  /** How long a delivery is leased; heartbeats extend it while the batch runs. */
  leaseMs: number;
  maxRetries: number;
  retryBaseDelayMs: number;
  retryMaxDelayMs: number;
  maxAgeMs: number;
  /**
   * Receive messages this long before they are due, and hold each batch until its time: the store writes
   * of a receive happen ahead, so a burst of scheduled deliveries (cron fires) starts on time. 0: only due
   * messages.
   */
  aheadMs: number;
}

/** What the function made of one message. */
export type MessageVerdict =
  | { action: 'ack'; outcome?: MessageOutcome }
  /** `delayMs` null: the trigger's backoff decides. */
  | { action: 'retry'; delayMs: number | null; error: string; outcome?: MessageOutcome };

export type BatchRunner = (messages: LeasedMessage[]) => Promise<Map<string, MessageVerdict>>;

export interface ConsumerOptions {
  store: QueueStore;
  settings: ConsumerSettings;
  run: BatchRunner;
  /** Messages that went to the dead letters (for metrics and destinations). */
  onDead?: (message: LeasedMessage, reason: string, error: string | null) => void;
  log?: (line: string) => void;
  /** Idle poll interval (default POLL_MS); the store's watch wakes the consumer when messages are stored. */
  pollMs?: number;
  now?: () => number;
  random?: () => number;
  /** Fault injection: called with `after-invoke` once a batch ran, before its settlements are stored. */
  failpoint?: (name: string) => void;
  /** Told when a batch taken ahead of its time is held until `dueAt` (epoch ms): work known to start then. */
  onHold?: (dueAt: number) => void;
}

/**
 * The idle poll: only a safety net, for messages whose lease ran out and for wake-ups a shared store lost
 * with its connection (stores tell of every message stored, see QueueStore.watch). Each poll is a receive,
 * and those of a hundred cron consumers would land among the fires.
 */
const POLL_MS = 5000;
const ERROR_PAUSE_MS = 1000;

/**
 * How long an idle consumer sleeps before it asks again (local sends wake it sooner): until the store's next
 * delayed message is due (less the time it may take messages ahead), else a poll interval spread over
 * ±25 % by `random` (0..1). Without the spread, consumers that took messages in the same instant (cron
 * fires, stored together and taken ahead together) all poll again in the same instant, which with cron
 * is when their fires run: 100 empty receives on the core that runs the handlers.
 */
export function idleWaitMs(pollMs: number, nextVisibleInMs: number | null, aheadMs: number, random: number): number {
  const poll = Math.round(pollMs * (0.75 + 0.5 * Math.min(1, Math.max(0, random))));
  return nextVisibleInMs === null ? poll : Math.min(poll, Math.max(1, nextVisibleInMs + 1 - aheadMs));
}

export class QueueConsumer {
  readonly #o: ConsumerOptions;
  readonly #s: ConsumerSettings;
  readonly #pollMs: number;
  #running = false;
  #inFlight = 0;
  readonly #batches = new Set<Promise<void>>();
  #wake: (() => void) | null = null;
  /** A notify came while the loop was not waiting (during a receive that may have missed the news). */
  #notified = false;
  #loop: Promise<void> | null = null;
  #unwatch: (() => void) | null = null;

  constructor(options: ConsumerOptions) {
    this.#o = options;
    this.#s = options.settings;
    this.#pollMs = options.pollMs ?? POLL_MS;
  }

  get settings(): ConsumerSettings {
    return this.#s;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    // Stores of the queue's messages from anywhere (API, bindings, destinations, cron, other nodes) wake it.
    this.#unwatch = this.#o.store.watch((queue) => {
      if (queue === this.#s.queue) this.notify();
    });
    this.#loop = this.#run();
  }

  /** New messages may be visible: stop waiting, or do not wait next time if the loop is not waiting now. */
  notify(): void {
    const w = this.#wake;
    this.#wake = null;
    if (w) w();
    else this.#notified = true;
  }

  /**
   * Stop pulling; batches in flight get `graceMs` to finish and settle. Those that do not keep their leases,
   * which run out, so their messages are delivered again (at least once).
   */
  async stop(graceMs = Infinity): Promise<void> {
    this.#running = false;
    this.#unwatch?.();
    this.#unwatch = null;
    this.notify();
    await this.#loop;
    const all = Promise.allSettled([...this.#batches]);
    if (graceMs === Infinity) await all;
    else {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([all, new Promise((r) => (timer = setTimeout(r, graceMs)))]);
      clearTimeout(timer);
    }
  }

  async #run(): Promise<void> {
    const s = this.#s;
    while (this.#running) {
      if (this.#inFlight >= s.maxConcurrency) {
        await this.#sleep(Infinity);
        continue;
      }
      let batch: LeasedMessage[];
      this.#notified = false; // this receive sees whatever was stored before it
      try {
        batch = await this.#o.store.receive(s.queue, s.batchSize, this.#firstLeaseMs(), s.aheadMs);
        if (batch.length > 0 && batch.length < s.batchSize && s.maxBatchWaitMs > 0 && this.#running) {
          await this.#sleep(s.maxBatchWaitMs);
          if (this.#running) batch = batch.concat(await this.#o.store.receive(s.queue, s.batchSize - batch.length, s.leaseMs, s.aheadMs));
        }
      } catch (err) {
        this.#o.log?.(`queue ${s.queue}: receive failed: ${toContinuumError(err).message}`);
        await this.#sleep(ERROR_PAUSE_MS);
        continue;
      }
      if (batch.length === 0) {
        await this.#idle();
        continue;
      }
      this.#inFlight++;
      const p = this.#process(batch)
        .catch(() => true)
        .then((retried) => {
          // Only a loop that waits for this slot, or for a retried message's time, asks again now. An idle
          // loop keeps its schedule: waking every idle consumer as its batch ends made each cron fire an
          // empty receive on the core that runs the other fires.
          const waited = this.#inFlight >= s.maxConcurrency;
          this.#inFlight--;
          this.#batches.delete(p);
          if (waited || retried) this.notify();
        });
      this.#batches.add(p);
      // A batch short of its size took all there was: asking again at once would find nothing (a cron
      // fire's consumer did that once per fire). Stores since the receive notify, so the wait ends at once.
      if (batch.length < s.batchSize) await this.#idle();
    }
  }

  /** Wait while nothing is visible: until told, until the next delayed message is due, or a safety-net poll. */
  async #idle(): Promise<void> {
    const s = this.#s;
    let next: number | null = null;
    try {
      next = await this.#o.store.nextVisibleInMs(s.queue);
    } catch {
      // fall back to the poll interval
    }
    await this.#sleep(idleWaitMs(this.#pollMs, next, s.aheadMs, (this.#o.random ?? Math.random)()));
  }

  /**
   * The lease of a batch's first messages must last until the batch's first heartbeat, a third of a lease
   * after the batch wait. A plain lease covers waits up to a third of it with a third to spare; asking for
   * another length costs the NATS store a NAK per message, so only longer waits get a longer first lease.
   */
  #firstLeaseMs(): number {
    const s = this.#s;
    return s.maxBatchWaitMs <= s.leaseMs / 3 ? s.leaseMs : s.leaseMs + s.maxBatchWaitMs;
  }

  #sleep(ms: number): Promise<void> {
    if (this.#notified) {
      this.#notified = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = ms === Infinity ? undefined : setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
  }

  /** Run one batch and settle it; true when some of it was retried (its messages come again). */
  async #process(batch: LeasedMessage[]): Promise<boolean> {
    const s = this.#s;
    const due = batch.reduce((t, m) => Math.max(t, m.dueAt), 0);
    if (due > (this.#o.now ?? Date.now)()) this.#o.onHold?.(due);
    // Held, not slept through #sleep: a notify() must not start it early. Its lease runs from `due`. A loop:
    // a timer can fire a little before the wall clock reaches its time.
    for (let early = due - (this.#o.now ?? Date.now)(); early > 0; early = due - (this.#o.now ?? Date.now)()) {
      await new Promise((resolve) => setTimeout(resolve, early));
    }
    const now = (this.#o.now ?? Date.now)();
    const settlements: Settlement[] = [];
    const dead: Array<[LeasedMessage, string, string | null]> = [];
    const live: LeasedMessage[] = [];
    for (const m of batch) {
      if (isExpired(m.enqueuedAt, now, s.maxAgeMs)) {
        settlements.push({ id: m.id, leaseToken: m.leaseToken, action: 'dead', reason: 'expired' });
        dead.push([m, 'expired', null]);
      } else live.push(m);
    }
    if (live.length > 0) {
      const heartbeat = setInterval(() => {
        for (const m of live) void this.#o.store.extend(s.queue, m.id, m.leaseToken, s.leaseMs).catch(() => {});
      }, Math.max(50, Math.floor(s.leaseMs / 3)));
      let verdicts: Map<string, MessageVerdict>;
      try {
        verdicts = await this.#o.run(live);
      } catch (err) {
        const message = toContinuumError(err).message;
        verdicts = new Map(live.map((m) => [m.id, { action: 'retry', delayMs: null, error: message }]));
      } finally {
        clearInterval(heartbeat);
      }
      this.#o.failpoint?.('after-invoke');
      const at = (this.#o.now ?? Date.now)();
      for (const m of live) {
        const v = verdicts.get(m.id) ?? { action: 'retry', delayMs: null, error: 'no verdict for this message' };
        if (v.action === 'ack') {
          settlements.push({ id: m.id, leaseToken: m.leaseToken, action: 'ack', ...(v.outcome ? { outcome: v.outcome } : {}) });
          continue;
        }
        const decision = decideFailure({
          attempt: m.attempt,
          maxRetries: s.maxRetries,
          enqueuedAt: m.enqueuedAt,
          now: at,
          maxAgeMs: s.maxAgeMs,
          baseDelayMs: s.retryBaseDelayMs,
          maxDelayMs: s.retryMaxDelayMs,
          ...(this.#o.random ? { random: this.#o.random } : {}),
        });
        if (decision.action === 'dead') {
          settlements.push({ id: m.id, leaseToken: m.leaseToken, action: 'dead', reason: decision.reason, error: v.error, ...(v.outcome ? { outcome: v.outcome } : {}) });
          dead.push([m, decision.reason, v.error]);
        } else {
          settlements.push({ id: m.id, leaseToken: m.leaseToken, action: 'retry', delayMs: v.delayMs ?? decision.delayMs, error: v.error });
        }
      }
    }
    let applied: boolean[];
    try {
      applied = await this.#o.store.settle(s.queue, settlements);
    } catch (err) {
      // Nothing settled: the leases run out and the messages come again (at least once).
      this.#o.log?.(`queue ${s.queue}: settle failed: ${toContinuumError(err).message}`);
      return true;
    }
    for (const [m, reason, error] of dead) {
      const i = settlements.findIndex((x) => x.id === m.id);
      if (applied[i]) this.#o.onDead?.(m, reason, error);
    }
    return settlements.some((x) => x.action === 'retry');
  }
}
