import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { InvocationRecord } from '../core/types.ts';
import { TimeSeries } from './series.ts';

function rec(functionName: string, at: number, totalMs: number, over: Partial<InvocationRecord> = {}): InvocationRecord {
  return {
    id: `${functionName}-${at}-${totalMs}`, functionName, versionId: 'v_1', tier: 'isolate', trigger: 'http', startedAt: new Date(at).toISOString(), coldStart: false,
    phases: { queueMs: 0, initMs: 0, sandboxMs: 0, runtimeInitMs: 0, moduleLoadMs: 0, execMs: totalMs, overheadMs: 0, totalMs },
    outcome: 'ok', status: 200, errorCode: null, errorMessage: null, cpuMs: 0, peakMemoryBytes: 0, instanceId: 'i', node: 'n', logBytes: 0, logsTruncated: false,
    ...over,
  };
}

test('buckets count requests, errors, cold starts; p50/p99 within one bin (10%); dense, oldest first', () => {
  let now = 1_000_000_000_000;
  const s = new TimeSeries({ bucketMs: 10_000, buckets: 6, now: () => now });
  const t0 = now - 25_000; // three buckets back
  for (let i = 1; i <= 100; i++) s.observe([rec('f', t0, i)]); // 1..100 ms
  s.observe([rec('f', now, 5, { outcome: 'error', errorCode: 'function_error' })]);
  s.observe([rec('f', now, 5, { coldStart: true })]);
  s.observe([rec('g', now, 50)]);
  s.sampleInstances(new Map([['f', 2], ['g', 0]]));
  const v = s.view('f');
  assert.equal(v.points.length, 6);
  assert.deepEqual(v.points.map((p) => p.t), [0, 1, 2, 3, 4, 5].map((i) => Math.floor(now / 10_000) * 10_000 - (5 - i) * 10_000));
  const old = v.points.find((p) => p.requests === 100)!;
  assert.ok(old.p50Ms! >= 50 && old.p50Ms! <= 55, `p50 ${old.p50Ms}`);
  assert.ok(old.p99Ms! >= 99 && old.p99Ms! <= 109, `p99 ${old.p99Ms}`);
  const last = v.points.at(-1)!;
  assert.deepEqual({ ...last, p50Ms: null, p99Ms: null }, { t: last.t, requests: 2, errors: 1, coldStarts: 1, p50Ms: null, p99Ms: null, instances: 2 });
  assert.equal(v.points.filter((p) => p.requests === 0).every((p) => p.p50Ms === null), true);
  const all = s.view(null);
  assert.equal(all.points.at(-1)!.requests, 3, 'all functions summed');
  assert.equal(s.view('nope').points.every((p) => p.requests === 0), true);

  // The window slides: an hour later (here: 6 buckets) the old points are gone, and stale records are ignored.
  now += 60_000;
  s.observe([rec('f', now - 120_000, 1)]);
  assert.equal(s.view('f').points.reduce((a, p) => a + p.requests, 0), 0);
});

test('functions beyond maxFunctions drop the least recently active', () => {
  const now = 1_000_000_000_000;
  const s = new TimeSeries({ bucketMs: 10_000, buckets: 3, maxFunctions: 2, now: () => now });
  s.observe([rec('a', now, 1)]);
  s.observe([rec('b', now, 1)]);
  s.observe([rec('a', now, 1)]);
  s.observe([rec('c', now, 1)]);
  const total = (fn: string) => s.view(fn).points.reduce((x, p) => x + p.requests, 0);
  assert.deepEqual([total('a'), total('b'), total('c')], [2, 0, 1]);
  // Repeats of the latest function keep the order; a dropped function starts over as the newest.
  s.drop('c');
  s.observe([rec('c', now, 1), rec('b', now, 1), rec('b', now, 1)]);
  s.observe([rec('d', now, 1)]);
  assert.deepEqual([total('a'), total('b'), total('c'), total('d')], [0, 2, 0, 1]);
});
