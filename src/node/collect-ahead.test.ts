import assert from 'node:assert/strict';
import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CollectAhead, minorCollector, needsRoom, type NewSpace } from './collect-ahead.ts';

test('needsRoom: a young generation fuller than it is empty is scavenged before a burst', () => {
  const table: Array<[NewSpace, boolean]> = [
    [{ used: 0, available: 16 << 20 }, false],
    [{ used: 4 << 20, available: 12 << 20 }, false],
    [{ used: 8 << 20, available: 8 << 20 }, false],
    [{ used: 9 << 20, available: 7 << 20 }, true],
    [{ used: 48 << 20, available: 19 << 20 }, true],
  ];
  for (const [space, expected] of table) assert.equal(needsRoom(space), expected, JSON.stringify(space));
});

test('CollectAhead looks once per burst time, aheadMs before it, and collects only when room is needed', async () => {
  const looks: number[] = [];
  let collects = 0;
  let space: NewSpace = { used: 10, available: 1 };
  const ahead = new CollectAhead({ aheadMs: 50, collect: () => collects++, newSpace: () => (looks.push(Date.now()), space) });
  const at = Date.now() + 120;
  ahead.expect(at);
  ahead.expect(at); // a second consumer held for the same second
  ahead.expect(Date.now() + 30); // too near to look ahead of it
  await sleep(200);
  assert.equal(looks.length, 1, 'one look for two holds of one burst, none for the near one');
  assert.ok(looks[0]! >= at - 50 - 2, `looked ${at - looks[0]!} ms before the burst, not sooner than aheadMs`);
  assert.equal(collects, 1);
  space = { used: 1, available: 10 };
  ahead.expect(Date.now() + 60);
  await sleep(100);
  assert.equal(looks.length, 2);
  assert.equal(collects, 1, 'no collection with room to spare');
  ahead.expect(Date.now() + 80);
  ahead.stop();
  await sleep(100);
  assert.equal(looks.length, 2, 'stop cancels the planned looks');
});

test('minorCollector runs a real young-generation collection, and leaves the global scope alone', async () => {
  const collect = minorCollector();
  assert.ok(collect, 'V8 offers a collector');
  const entries: PerformanceEntry[] = [];
  const obs = new PerformanceObserver((list) => entries.push(...list.getEntries()));
  obs.observe({ entryTypes: ['gc'] });
  try {
    collect();
    await sleep(50);
  } finally {
    obs.disconnect();
  }
  const kinds = entries.map((e) => (e as PerformanceEntry & { detail: { kind: number } }).detail.kind);
  assert.ok(kinds.includes(constants.NODE_PERFORMANCE_GC_MINOR), `a minor collection ran (kinds ${kinds.join(',')})`);
  assert.ok(!kinds.includes(constants.NODE_PERFORMANCE_GC_MAJOR), 'and no full one');
  if (!process.execArgv.some((a) => a.startsWith('--expose-gc'))) assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined');
});
