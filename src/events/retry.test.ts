import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EVENT_DEFAULTS } from '../core/defaults.ts';
import { ContinuumError } from '../core/errors.ts';
import { backoffDelayMs, decideFailure, isExpired, type FailureDecision } from './retry.ts';

const top = () => 1 - Number.EPSILON; // the largest value Math.random can return
const bottom = () => 0;

test('backoffDelayMs table: full jitter between 0 and the capped exponential', () => {
  const rows: Array<[string, number, number, number, () => number, number]> = [
    ['first retry, top of the range', 1, 1000, 300_000, top, 1000],
    ['first retry, bottom of the range', 1, 1000, 300_000, bottom, 0],
    ['second retry doubles', 2, 1000, 300_000, top, 2000],
    ['fifth retry', 5, 1000, 300_000, top, 16_000],
    ['capped at the maximum', 10, 1000, 300_000, top, 300_000],
    ['the middle of the range', 3, 1000, 300_000, () => 0.5, 2000],
    ['a huge attempt count stays at the cap', 5000, 1000, 300_000, top, 300_000],
    ['zero base means no delay, even at a huge attempt count', 5000, 0, 300_000, top, 0],
    ['maximum below base caps the first retry too', 1, 1000, 10, top, 10],
  ];
  for (const [name, attempt, base, max, random, expected] of rows) assert.equal(backoffDelayMs(attempt, base, max, random), expected, name);
});

test('backoffDelayMs with Math.random stays in range and is a whole number of ms', () => {
  const q = EVENT_DEFAULTS.queueTrigger;
  const seen = new Set<number>();
  for (let i = 0; i < 1000; i++) {
    const d = backoffDelayMs(3, q.retryBaseDelayMs, q.retryMaxDelayMs);
    assert.ok(Number.isInteger(d) && d >= 0 && d <= 4 * q.retryBaseDelayMs, `delay ${d}`);
    seen.add(d);
  }
  assert.ok(seen.size > 100, 'jitter spreads the delays');
});

test('backoffDelayMs refuses an attempt that is not a positive integer', () => {
  for (const attempt of [0, -1, 1.5, Number.NaN]) {
    assert.throws(() => backoffDelayMs(attempt, 1000, 10_000), (e: unknown) => e instanceof ContinuumError && e.code === 'internal', String(attempt));
  }
});

test('isExpired table: older than the maximum age', () => {
  const rows: Array<[string, number, number, number, boolean]> = [
    ['fresh', 1000, 1500, 1000, false],
    ['exactly the maximum age is not yet expired', 1000, 2000, 1000, false],
    ['one ms past the maximum age', 1000, 2001, 1000, true],
    ['clock behind the enqueue time', 1000, 500, 1000, false],
  ];
  for (const [name, enqueuedAt, now, maxAgeMs, expected] of rows) assert.equal(isExpired(enqueuedAt, now, maxAgeMs), expected, name);
});

test('decideFailure table', () => {
  const hour = 3600_000;
  const base = { enqueuedAt: 0, now: 10_000, maxAgeMs: 6 * hour, baseDelayMs: 1000, maxDelayMs: 300_000, random: top };
  const rows: Array<[string, Partial<typeof base> & { attempt: number; maxRetries: number }, FailureDecision]> = [
    ['first failure with retries left', { attempt: 1, maxRetries: 2 }, { action: 'retry', delayMs: 1000 }],
    ['last retry left', { attempt: 2, maxRetries: 2 }, { action: 'retry', delayMs: 2000 }],
    ['retries used up', { attempt: 3, maxRetries: 2 }, { action: 'dead', reason: 'max_retries' }],
    ['no retries at all', { attempt: 1, maxRetries: 0 }, { action: 'dead', reason: 'max_retries' }],
    ['already too old', { attempt: 1, maxRetries: 2, now: 6 * hour + 1 }, { action: 'dead', reason: 'expired' }],
    ['out of retries wins over expiry', { attempt: 3, maxRetries: 2, now: 7 * hour }, { action: 'dead', reason: 'max_retries' }],
    ['the retry would come due after expiry', { attempt: 1, maxRetries: 2, now: 6 * hour - 500 }, { action: 'dead', reason: 'expired' }],
    ['with no jitter the same retry is still due in time', { attempt: 1, maxRetries: 2, now: 6 * hour - 500, random: bottom }, { action: 'retry', delayMs: 0 }],
    ['a retry due exactly at the maximum age is kept', { attempt: 1, maxRetries: 2, now: 6 * hour - 1000 }, { action: 'retry', delayMs: 1000 }],
    ['the delay follows the attempt number', { attempt: 4, maxRetries: 10 }, { action: 'retry', delayMs: 8000 }],
    ['the delay is capped', { attempt: 10, maxRetries: 10 }, { action: 'retry', delayMs: 300_000 }],
  ];
  for (const [name, patch, expected] of rows) assert.deepEqual(decideFailure({ ...base, ...patch }), expected, name);
});
