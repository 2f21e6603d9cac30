import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decideLease, desiredStarts, idleEvictions, type PoolSnapshot } from './decide.ts';

const base: PoolSnapshot = { instances: [], starting: 0, waiting: 0, concurrency: 2, maxInstances: 2, maxQueued: 3 };
const inst = (id: string, inFlight: number, draining = false) => ({ id, inFlight, draining });

test('decideLease table', () => {
  const rows: Array<[string, Partial<PoolSnapshot>, ReturnType<typeof decideLease>]> = [
    ['empty pool starts an instance', {}, { kind: 'start' }],
    ['free slot is used', { instances: [inst('a', 1)] }, { kind: 'use', instanceId: 'a' }],
    ['busiest instance with room is preferred', { instances: [inst('a', 0), inst('b', 1)] }, { kind: 'use', instanceId: 'b' }],
    ['draining instances take no work', { instances: [inst('a', 0, true)] }, { kind: 'start' }],
    ['full instance, room for another: start', { instances: [inst('a', 2)] }, { kind: 'start' }],
    ['a start already covers the request: wait', { instances: [inst('a', 2)], starting: 1 }, { kind: 'wait' }],
    ['at max instances and full: wait', { instances: [inst('a', 2), inst('b', 2)] }, { kind: 'wait' }],
    ['queue full: reject', { instances: [inst('a', 2), inst('b', 2)], waiting: 3 }, { kind: 'reject' }],
    ['waiters are not overtaken by newcomers', { instances: [inst('a', 1)], waiting: 1, maxInstances: 1 }, { kind: 'wait' }],
    ['queue of zero means refuse at once', { instances: [inst('a', 2)], maxInstances: 1, maxQueued: 0 }, { kind: 'reject' }],
  ];
  for (const [name, patch, expected] of rows) assert.deepEqual(decideLease({ ...base, ...patch }), expected, name);
});

test('desiredStarts table', () => {
  const rows: Array<[string, Partial<PoolSnapshot>, number]> = [
    ['nothing waiting', {}, 0],
    ['one waiting, no capacity', { waiting: 1 }, 1],
    ['five waiting, concurrency 2, cap 2', { waiting: 5 }, 2],
    ['starting instance covers waiters', { waiting: 2, starting: 1 }, 0],
    ['free slots cover waiters', { waiting: 1, instances: [inst('a', 1)] }, 0],
    ['draining instance slots do not count', { waiting: 1, instances: [inst('a', 0, true)], maxInstances: 3 }, 1],
  ];
  for (const [name, patch, expected] of rows) assert.equal(desiredStarts({ ...base, ...patch }), expected, name);
});

test('idleEvictions keeps minInstances and evicts the longest idle first', () => {
  const now = 100_000;
  const instances = [
    { id: 'busy', inFlight: 1, idleSince: null },
    { id: 'old', inFlight: 0, idleSince: now - 50_000 },
    { id: 'older', inFlight: 0, idleSince: now - 90_000 },
    { id: 'fresh', inFlight: 0, idleSince: now - 10 },
  ];
  assert.deepEqual(idleEvictions(instances, now, 30_000, 0), ['older', 'old']);
  assert.deepEqual(idleEvictions(instances, now, 30_000, 3), ['older']);
  assert.deepEqual(idleEvictions(instances, now, 30_000, 4), []);
});
