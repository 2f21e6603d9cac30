import { test } from 'node:test';
import assert from 'node:assert/strict';
import { trimDue, type TrimState } from './trim.ts';

const policy = { afterIdleMs: 5000, minIntervalMs: 60_000 };
const idle: TrimState = { busy: false, usedSinceTrim: true, idleSinceMs: 0, lastTrimMs: null };

test('trimDue: once quiet after serving, and not again within the interval', () => {
  const rows: Array<[string, TrimState, number, boolean]> = [
    ['idle long enough, never trimmed', idle, 5000, true],
    ['idle, not long enough', idle, 4999, false],
    ['busy', { ...idle, busy: true }, 100_000, false],
    ['nothing served since the last trim', { ...idle, usedSinceTrim: false }, 100_000, false],
    ['trimmed within the interval', { ...idle, idleSinceMs: 50_000, lastTrimMs: 10_000 }, 60_000, false],
    ['trimmed longer ago than the interval', { ...idle, idleSinceMs: 60_000, lastTrimMs: 10_000 }, 70_000, true],
  ];
  for (const [name, state, now, want] of rows) assert.equal(trimDue(state, now, policy), want, name);
  assert.equal(trimDue(idle, 1e9, { afterIdleMs: 0, minIntervalMs: 0 }), false, 'afterIdleMs 0 turns it off');
});
