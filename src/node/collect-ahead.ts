/**
 * Young-generation collections moved out of known bursts. Cron fires are taken ahead of their time and held
 * (see QueueConsumer), so the node knows when a burst of invocations starts: every function due that second
 * at once. A scavenge is a pause of the whole main thread (15–65 ms measured with a hundred cron functions on
 * one core), and it comes when the young generation fills, which is most likely in a burst, where the node
 * allocates most. Landing a few milliseconds into the second, it started all of that second's fires late.
 * So a little before a held burst starts, the node scavenges if the young generation is past half full:
 * the burst then starts with room to spare and the pause falls into the quiet time before it.
 */
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export interface NewSpace {
  /** Bytes in use in the young generation. */
  used: number;
  /** Bytes it can still take before a scavenge. */
  available: number;
}

/** Scavenge before a burst when the young generation is fuller than it is empty: the burst might fill it. */
export function needsRoom(space: NewSpace): boolean {
  return space.used > space.available;
}

export interface CollectAheadOptions {
  /** Runs a young-generation collection (see minorCollector). */
  collect: () => void;
  /** The young generation now (default: V8's heap space statistics). */
  newSpace?: () => NewSpace;
  /** How long before a burst to look; enough for a scavenge to end before the burst starts. */
  aheadMs: number;
  now?: () => number;
}

export class CollectAhead {
  readonly #o: CollectAheadOptions;
  /** One look per burst time, however many batches are held for it. */
  readonly #planned = new Map<number, NodeJS.Timeout>();

  constructor(options: CollectAheadOptions) {
    this.#o = options;
  }

  /** A burst of work starts at `at` (epoch ms); too near to look ahead of it, nothing happens. */
  expect(at: number): void {
    const wait = at - this.#o.aheadMs - (this.#o.now ?? Date.now)();
    if (wait < 0 || this.#planned.has(at)) return;
    const timer = setTimeout(() => {
      this.#planned.delete(at);
      if (needsRoom((this.#o.newSpace ?? newSpace)())) this.#o.collect();
    }, wait);
    timer.unref();
    this.#planned.set(at, timer);
  }

  stop(): void {
    for (const timer of this.#planned.values()) clearTimeout(timer);
    this.#planned.clear();
  }
}

function newSpace(): NewSpace {
  const s = getHeapSpaceStatistics().find((space) => space.space_name === 'new_space');
  return s ? { used: s.space_used_size, available: s.space_available_size } : { used: 0, available: 0 };
}

/**
 * A function that runs a young-generation collection now, or null where V8 does not offer one. V8 gives
 * `gc` only to contexts created while --expose-gc is set; the node's own context is older, so its global
 * scope stays as it was and only this new context's `gc` is taken.
 */
export function minorCollector(): (() => void) | null {
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('typeof gc === "function" ? gc : null');
    if (typeof gc !== 'function') return null;
    return () => gc({ type: 'minor' });
  } catch {
    return null;
  }
}
