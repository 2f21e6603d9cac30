import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteRecordStore } from '../store/sqlite/index.ts';
import type { InvocationRecord, LogLine } from '../core/types.ts';
import { RecordSink } from './sink.ts';

function record(id: string, startedAt: string): InvocationRecord {
  return {
    id, functionName: 'f', versionId: 'v_1', tier: 'isolate', trigger: 'http', startedAt, coldStart: false,
    phases: { queueMs: 0, initMs: 0, sandboxMs: 0, runtimeInitMs: 0, moduleLoadMs: 0, execMs: 1, overheadMs: 0, totalMs: 1 }, outcome: 'ok', status: 200, errorCode: null, errorMessage: null,
    cpuMs: 0.1, peakMemoryBytes: 1, instanceId: 'i', node: 'n', logBytes: 5, logsTruncated: false,
  };
}
const completion = (message: string) => ({ error: null, cpuMs: 0, peakMemoryBytes: 0, logs: [{ ts: Date.now(), level: 'log' as const, message }], logBytes: message.length, logsTruncated: false });

test('records are written in batches, followers see lines at once, retention prunes old rows', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sink-'));
  const store = SqliteRecordStore.open(join(dir, 'records.db'));
  const sink = new RecordSink({ store, flushIntervalMs: 60_000, retention: { maxAgeMs: 60_000, maxRows: 1000, maxBytes: Infinity, intervalMs: 50 } });
  const seen: LogLine[] = [];
  const stop = sink.follow((line) => seen.push(line));
  sink.add(record('00000000-0000-4000-8000-000000000001', new Date().toISOString()), completion('fresh'));
  sink.add(record('00000000-0000-4000-8000-000000000002', new Date(Date.now() - 3_600_000).toISOString()), completion('old'));
  assert.deepEqual(seen.map((l) => l.message), ['fresh', 'old'], 'followers get lines before any flush');
  assert.equal((await store.listInvocations({ limit: 10 })).items.length, 0, 'nothing written before the flush');
  await sink.flush();
  assert.equal((await store.listInvocations({ limit: 10 })).items.length, 2);
  await new Promise((r) => setTimeout(r, 200));
  const left = (await store.listInvocations({ limit: 10 })).items.map((r) => r.id);
  assert.deepEqual(left, ['00000000-0000-4000-8000-000000000001'], 'the hour-old record was pruned');
  stop();
  await sink.close();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

test('observers see each record once, at flush; prune applies the byte cap', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sink-'));
  const store = SqliteRecordStore.open(join(dir, 'records.db'));
  const seen: string[] = [];
  const sink = new RecordSink({ store, flushIntervalMs: 60_000, observers: [(batch) => seen.push(...batch.map((r) => r.id))] });
  const big = 'y'.repeat(4000);
  for (let i = 0; i < 300; i++) sink.add(record(`00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, new Date(Date.now() - (300 - i) * 1000).toISOString()), completion(big));
  assert.equal(seen.length, 0, 'nothing observed on the request path');
  await sink.flush();
  assert.equal(seen.length, 300);
  await sink.flush();
  assert.equal(seen.length, 300, 'a record is observed once');
  const cap = Math.floor((await store.storedBytes()) / 2);
  assert.ok((await sink.prune({ maxAgeMs: 3_600_000, maxRows: 1_000_000, maxBytes: cap })) > 0);
  assert.ok((await store.storedBytes()) <= cap);
  await sink.close();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});
