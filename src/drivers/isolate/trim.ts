/**
 * When an idle sandbox gives its unused heap pages back. A request leaves young-generation pages
 * touched (and so resident) long after its objects died; V8's memory-reducing collection returns them,
 * but costs a few ms of the isolate's thread, so it runs once an instance has gone quiet after serving,
 * and not again for a while however often the instance wakes. Pure: the engine keeps the state and the clock.
 */

export interface TrimState {
  /** Invocations or host calls in flight. */
  busy: boolean;
  /** It served since its last trim (or since it was made). */
  usedSinceTrim: boolean;
  /** performance.now() when it last became idle. */
  idleSinceMs: number;
  /** performance.now() of its last trim; null before the first. */
  lastTrimMs: number | null;
}

export interface TrimPolicy {
  /** Idle this long before a trim; 0 turns trimming off. */
  afterIdleMs: number;
  /** At most one trim per this long per sandbox. */
  minIntervalMs: number;
}

export function trimDue(state: TrimState, nowMs: number, policy: TrimPolicy): boolean {
  if (policy.afterIdleMs <= 0 || state.busy || !state.usedSinceTrim) return false;
  if (nowMs - state.idleSinceMs < policy.afterIdleMs) return false;
  return state.lastTrimMs === null || nowMs - state.lastTrimMs >= policy.minIntervalMs;
}
