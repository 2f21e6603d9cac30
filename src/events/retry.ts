/**
 * Retry policy for messages and async invocations (ARCHITECTURE §6): bounded retries, exponential
 * backoff with full jitter, and an age limit after which a message goes to the dead letters unexecuted.
 */
import { ContinuumError } from '../core/errors.ts';

/**
 * Delay before retry number `attempt` (1 = the retry after the first failed delivery): uniform in
 * [0, min(maxMs, baseMs · 2^(attempt-1))], whole milliseconds. Full jitter spreads the retries of a
 * burst that failed together instead of bunching them at each step.
 */
export function backoffDelayMs(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  if (!Number.isInteger(attempt) || attempt < 1) throw new ContinuumError('internal', `backoff: attempt must be a positive integer, got ${attempt}`);
  // The exponent is capped so a huge attempt count yields maxMs rather than Infinity (or NaN when baseMs is 0).
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt - 1, 1023));
  return Math.floor(random() * (ceiling + 1));
}

/** A message older than `maxAgeMs` (from its first enqueue) is not executed again. */
export function isExpired(enqueuedAt: number, now: number, maxAgeMs: number): boolean {
  return now - enqueuedAt > maxAgeMs;
}

export type FailureDecision = { action: 'retry'; delayMs: number } | { action: 'dead'; reason: 'max_retries' | 'expired' };

/**
 * What to do after delivery number `attempt` (1-based) failed. Out of retries wins over expiry when both
 * hold. A retry that would only become due after the message expired is dead (`expired`) at once rather
 * than leased once more just to be dropped.
 */
export function decideFailure(input: {
  attempt: number;
  maxRetries: number;
  enqueuedAt: number;
  now: number;
  maxAgeMs: number;
  baseDelayMs: number;
  maxDelayMs: number;
  random?: () => number;
}): FailureDecision {
  const { attempt, maxRetries, enqueuedAt, now, maxAgeMs } = input;
  if (attempt > maxRetries) return { action: 'dead', reason: 'max_retries' };
  const delayMs = backoffDelayMs(attempt, input.baseDelayMs, input.maxDelayMs, input.random);
  if (isExpired(enqueuedAt, now + delayMs, maxAgeMs)) return { action: 'dead', reason: 'expired' };
  return { action: 'retry', delayMs };
}
