import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { InvocationRecord } from '../core/types.ts';
import { Metrics } from './metrics.ts';

function rec(fn: string, over: Partial<InvocationRecord> = {}, execMs = 2): InvocationRecord {
  return {
    id: `${fn}-${Math.random()}`,
    functionName: fn,
    versionId: 'v_1',
    tier: 'isolate',
    trigger: 'http',
    startedAt: new Date().toISOString(),
    coldStart: false,
    phases: { queueMs: 0, initMs: 0, sandboxMs: 0, runtimeInitMs: 0, moduleLoadMs: 0, execMs, overheadMs: 0, totalMs: execMs },
    outcome: 'ok',
    status: 200,
    errorCode: null,
    errorMessage: null,
    cpuMs: 1,
    peakMemoryBytes: 1000,
    instanceId: 'i_1',
    node: 'n',
    logBytes: 0,
    logsTruncated: false,
    ...over,
  };
}

/** The value of one sample line of the exposition text, by its exact name and label set. */
function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  assert.ok(line, `no sample ${series} in\n${text}`);
  return Number(line.slice(series.length + 1));
}

test('a batch is counted per label set exactly as record by record', async () => {
  const m = new Metrics({ pools: () => [], queues: async () => [], dropped: () => 0 });
  const batch = [
    rec('a'),
    rec('a', {}, 20),
    rec('a', { coldStart: true, phases: { queueMs: 0, initMs: 30, sandboxMs: 10, runtimeInitMs: 10, moduleLoadMs: 10, execMs: 4, overheadMs: 0, totalMs: 34 } }),
    rec('a', { outcome: 'error', errorCode: 'timeout', status: null }),
    rec('a', { outcome: 'error', errorCode: 'cpu_limit', status: null }),
    rec('a', { outcome: 'error', errorCode: 'timeout', status: null, trigger: 'queue' }),
    rec('b', { tier: 'process', cpuMs: 0 }),
  ];
  m.observe(batch.slice(0, 3));
  m.observe(batch.slice(3));
  const { body } = await m.render();
  assert.equal(sample(body, 'continuum_invocations_total{function="a",tier="isolate",trigger="http",outcome="ok"}'), 3);
  assert.equal(sample(body, 'continuum_invocations_total{function="a",tier="isolate",trigger="http",outcome="error"}'), 2);
  assert.equal(sample(body, 'continuum_invocations_total{function="a",tier="isolate",trigger="queue",outcome="error"}'), 1);
  assert.equal(sample(body, 'continuum_invocations_total{function="b",tier="process",trigger="http",outcome="ok"}'), 1);
  assert.equal(sample(body, 'continuum_invocation_errors_total{function="a",code="timeout"}'), 2);
  assert.equal(sample(body, 'continuum_invocation_errors_total{function="a",code="cpu_limit"}'), 1);
  // execMs 2, 20, 4, 2, 2 (http) → buckets le 0.005 hold four, le 0.025 all five; the sum is exact.
  assert.equal(sample(body, 'continuum_invocation_duration_seconds_bucket{le="0.005",function="a",tier="isolate",trigger="http"}'), 4);
  assert.equal(sample(body, 'continuum_invocation_duration_seconds_bucket{le="0.025",function="a",tier="isolate",trigger="http"}'), 5);
  assert.equal(sample(body, 'continuum_invocation_duration_seconds_count{function="a",tier="isolate",trigger="http"}'), 5);
  assert.ok(Math.abs(sample(body, 'continuum_invocation_duration_seconds_sum{function="a",tier="isolate",trigger="http"}') - 0.03) < 1e-9);
  assert.equal(sample(body, 'continuum_cold_starts_total{function="a",tier="isolate"}'), 1);
  assert.equal(sample(body, 'continuum_cold_start_duration_seconds_sum{function="a",tier="isolate"}'), 0.03);
  assert.ok(Math.abs(sample(body, 'continuum_cpu_seconds_total{tenant="default",function="a"}') - 0.006) < 1e-9);
  assert.ok(!body.includes('continuum_cpu_seconds_total{tenant="default",function="b"}'), 'zero CPU adds no series');
  // peak 1000 B × execMs / 1000 per record: (2 + 20 + 4 + 2 + 2 + 2) ms → 32 byte·s.
  assert.ok(Math.abs(sample(body, 'continuum_memory_byte_seconds_total{tenant="default",function="a"}') - 32) < 1e-9);
});
