/**
 * The store contract as tests (ARCHITECTURE §2): every backend runs these against a fresh, empty store.
 * Nothing here knows how a backend stores data. A backend test file calls, for example:
 *
 *   runStateStoreContract('sqlite', async () => { const s = await openIt(); return { state: s, close: () => s.close() }; });
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { resolveFunctionConfig } from '../core/config.ts';
import { ContinuumError, type ErrorCode } from '../core/errors.ts';
import type { FunctionRecord, InvocationRecord, LogLine, VersionRecord } from '../core/types.ts';
import type { ArtifactStore, RecordStore, StateStore } from './contract.ts';

type Opener<K extends string, S> = () => Promise<{ close(): Promise<void> } & { [P in K]: S }>;

async function rejectsWith(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ContinuumError, `expected a ContinuumError, got ${String(err)}`);
    assert.equal(err.code, code);
    return true;
  });
}

function fnRecord(name: string, over: Partial<FunctionRecord> = {}): FunctionRecord {
  const now = '2025-01-01T00:00:00.000Z';
  return { name, config: resolveFunctionConfig({}), activeVersion: null, createdAt: now, updatedAt: now, ...over };
}

function versionRecord(functionName: string, n: number, over: Partial<VersionRecord> = {}): VersionRecord {
  const digest = createHash('sha256').update(`bundle-${n}`).digest('hex');
  return {
    id: `v_${digest.slice(0, 24)}`,
    functionName,
    bundleDigest: digest,
    bundleBytes: 100 + n,
    format: 'fetch',
    exportName: 'default',
    config: resolveFunctionConfig({ limits: { timeoutMs: 1000 + n } }),
    dependencies: [{ name: 'dep', version: `1.0.${n}`, license: 'MIT' }],
    createdAt: new Date(Date.UTC(2025, 0, 1, 0, 0, n)).toISOString(),
    ...over,
  };
}

export function runStateStoreContract(name: string, open: Opener<'state', StateStore>): void {
  describe(`StateStore contract: ${name}`, () => {
    async function withStore(fn: (s: StateStore) => Promise<void>): Promise<void> {
      const h = await open();
      try {
        await fn(h.state);
      } finally {
        await h.close();
      }
    }

    test('create, get, list functions', () =>
      withStore(async (s) => {
        assert.equal(await s.getFunction('alpha'), null);
        assert.deepEqual(await s.listFunctions(), []);
        const beta = fnRecord('beta', { config: resolveFunctionConfig({ tier: 'process', env: { A: '1' } }) });
        await s.createFunction(beta);
        await s.createFunction(fnRecord('alpha'));
        assert.deepEqual(await s.getFunction('beta'), beta);
        assert.deepEqual((await s.listFunctions()).map((f) => f.name), ['alpha', 'beta']);
      }));

    test('duplicate create is a conflict and keeps the first record', () =>
      withStore(async (s) => {
        await s.createFunction(fnRecord('dup'));
        await rejectsWith(s.createFunction(fnRecord('dup', { config: resolveFunctionConfig({ tier: 'process' }) })), 'conflict');
        assert.equal((await s.getFunction('dup'))?.config.tier, 'isolate');
      }));

    test('names are validated at the store', () =>
      withStore(async (s) => {
        for (const bad of ['', 'Upper', '../etc', 'a/b', '1abc', 'a'.repeat(64), 'a\u0000b']) {
          await rejectsWith(s.createFunction(fnRecord(bad)), 'bad_name');
          await rejectsWith(s.getFunction(bad), 'bad_name');
        }
        assert.deepEqual(await s.listFunctions(), []);
      }));

    test('update config and active version; not_found for a missing function or version', () =>
      withStore(async (s) => {
        await rejectsWith(s.updateFunction('ghost', { activeVersion: null }), 'not_found');
        await s.createFunction(fnRecord('upd'));
        const cfg = resolveFunctionConfig({ scale: { concurrency: 7 } });
        const u1 = await s.updateFunction('upd', { config: cfg });
        assert.equal(u1.config.scale.concurrency, 7);
        assert.equal(u1.activeVersion, null);
        assert.ok(Date.parse(u1.updatedAt) >= Date.parse(u1.createdAt));

        await rejectsWith(s.updateFunction('upd', { activeVersion: 'v_nosuchversion' }), 'not_found');
        const v = versionRecord('upd', 1);
        await s.putVersion(v);
        const u2 = await s.updateFunction('upd', { activeVersion: v.id });
        assert.equal(u2.activeVersion, v.id);
        assert.equal(u2.config.scale.concurrency, 7, 'a patch without config keeps the config');
        assert.deepEqual(await s.getFunction('upd'), u2);

        const u3 = await s.updateFunction('upd', { activeVersion: null });
        assert.equal(u3.activeVersion, null);
      }));

    test('delete removes the function and cascades its versions', () =>
      withStore(async (s) => {
        assert.equal(await s.deleteFunction('gone'), false);
        await s.createFunction(fnRecord('gone'));
        await s.createFunction(fnRecord('stays'));
        await s.putVersion(versionRecord('gone', 1));
        await s.putVersion(versionRecord('stays', 1));
        assert.equal(await s.deleteFunction('gone'), true);
        assert.equal(await s.getFunction('gone'), null);
        assert.deepEqual(await s.listVersions('gone'), []);
        assert.equal(await s.getVersion('gone', versionRecord('gone', 1).id), null);
        assert.equal((await s.listVersions('stays')).length, 1);
        // A recreated function starts without the old versions.
        await s.createFunction(fnRecord('gone'));
        assert.deepEqual(await s.listVersions('gone'), []);
      }));

    test('versions keep the files beside their bundle and the image they run; malformed ones are refused', () =>
      withStore(async (s) => {
        await s.createFunction(fnRecord('extras'));
        const addon = createHash('sha256').update('addon').digest('hex');
        const withFiles = versionRecord('extras', 1, { files: [{ path: `addons/${addon}.node`, digest: addon, bytes: 4096 }] });
        const image = versionRecord('extras', 2, { image: `sha256:${createHash('sha256').update('image').digest('hex')}` });
        await s.putVersion(withFiles);
        await s.putVersion(image);
        assert.deepEqual(await s.getVersion('extras', withFiles.id), withFiles);
        assert.deepEqual(await s.getVersion('extras', image.id), image);
        assert.deepEqual(await s.listVersions('extras'), [image, withFiles]);
        await rejectsWith(s.putVersion(versionRecord('extras', 3, { image: 'latest' })), 'bad_request');
        await rejectsWith(s.putVersion(versionRecord('extras', 4, { files: [{ path: 'x.node', digest: 'nope', bytes: 1 }] })), 'bad_request');
        assert.equal((await s.listVersions('extras')).length, 2, 'nothing of a refused version is stored');
      }));

    test('versions: idempotent put, newest first, scoped by function', () =>
      withStore(async (s) => {
        await s.createFunction(fnRecord('ver'));
        await s.createFunction(fnRecord('other'));
        const v1 = versionRecord('ver', 1);
        const v2 = versionRecord('ver', 2);
        const v3 = versionRecord('ver', 3);
        await s.putVersion(v2);
        await s.putVersion(v1);
        await s.putVersion(v3);
        await s.putVersion(v2);
        await s.putVersion({ ...v2, createdAt: new Date(Date.UTC(2030, 0, 1)).toISOString() }); // same id: no-op
        assert.deepEqual(await s.getVersion('ver', v2.id), v2);
        assert.deepEqual((await s.listVersions('ver')).map((v) => v.id), [v3.id, v2.id, v1.id]);
        assert.deepEqual(await s.listVersions('ver'), [v3, v2, v1]);
        // The same content under another function is a separate record.
        await s.putVersion({ ...v1, functionName: 'other' });
        assert.equal((await s.getVersion('other', v1.id))?.functionName, 'other');
        assert.equal(await s.getVersion('other', v2.id), null);
        assert.equal((await s.listVersions('ver')).length, 3);
      }));

    test('versions: same id with other content is a conflict; missing function is not_found', () =>
      withStore(async (s) => {
        await s.createFunction(fnRecord('imm'));
        const v1 = versionRecord('imm', 1);
        await s.putVersion(v1);
        await rejectsWith(s.putVersion({ ...v1, bundleDigest: 'f'.repeat(64) }), 'conflict');
        assert.deepEqual(await s.getVersion('imm', v1.id), v1);
        await rejectsWith(s.putVersion(versionRecord('nofn', 1)), 'not_found');
        await rejectsWith(s.putVersion({ ...v1, bundleDigest: '../x' }), 'bad_request');
        await rejectsWith(s.putVersion({ ...v1, id: 'v/../1' }), 'bad_request');
      }));

    test('meta: get, set, overwrite', () =>
      withStore(async (s) => {
        assert.equal(await s.getMeta('node.id'), null);
        await s.setMeta('node.id', 'n1');
        await s.setMeta('other', '');
        assert.equal(await s.getMeta('node.id'), 'n1');
        await s.setMeta('node.id', 'n2');
        assert.equal(await s.getMeta('node.id'), 'n2');
        assert.equal(await s.getMeta('other'), '');
      }));
  });
}

let invCounter = 0;
function invocation(over: Partial<InvocationRecord> & { functionName: string; startedAt: string }): InvocationRecord {
  invCounter += 1;
  return {
    id: `inv-${invCounter}-${Math.random().toString(36).slice(2, 8)}`,
    versionId: 'v_000000000000000000000000',
    tier: 'isolate',
    trigger: 'http',
    coldStart: false,
    phases: { queueMs: 0.1, initMs: 0, sandboxMs: 0, runtimeInitMs: 0, moduleLoadMs: 0, execMs: 1.5, overheadMs: 0.05, totalMs: 1.65 },
    outcome: 'ok',
    status: 200,
    errorCode: null,
    errorMessage: null,
    cpuMs: 1.25,
    peakMemoryBytes: 1024,
    instanceId: 'i1',
    node: 'n1',
    logBytes: 0,
    logsTruncated: false,
    ...over,
  };
}

const T0 = Date.UTC(2025, 0, 1);
const iso = (ms: number) => new Date(ms).toISOString();

export function runRecordStoreContract(name: string, open: Opener<'records', RecordStore>): void {
  describe(`RecordStore contract: ${name}`, () => {
    async function withStore(fn: (s: RecordStore) => Promise<void>): Promise<void> {
      const h = await open();
      try {
        await fn(h.records);
      } finally {
        await h.close();
      }
    }

    test('put and get an invocation record unchanged', () =>
      withStore(async (s) => {
        const rec = invocation({
          functionName: 'f',
          startedAt: iso(T0),
          outcome: 'error',
          status: 500,
          errorCode: 'function_error',
          errorMessage: 'boom',
          coldStart: true,
          phases: { queueMs: 0.5, initMs: 3.25, sandboxMs: 1, runtimeInitMs: 1.25, moduleLoadMs: 1, execMs: 9.125, overheadMs: 0.125, totalMs: 13 },
        });
        await s.putInvocations([rec], []);
        assert.deepEqual(await s.getInvocation(rec.id), rec);
        assert.equal(await s.getInvocation('nope'), null);
        // Putting the same id again replaces it and does not duplicate it.
        await s.putInvocations([{ ...rec, logBytes: 5 }], []);
        assert.equal((await s.getInvocation(rec.id))?.logBytes, 5);
        assert.equal((await s.listInvocations({ limit: 10 })).items.length, 1);
      }));

    test('list newest first with cursor paging, function and outcome filters', () =>
      withStore(async (s) => {
        const recs: InvocationRecord[] = [];
        for (let i = 0; i < 25; i++) {
          // Several share a start time: the order among them must still be total and stable across pages.
          recs.push(invocation({ functionName: i % 2 ? 'odd' : 'even', startedAt: iso(T0 + Math.floor(i / 3) * 1000), outcome: i % 5 === 0 ? 'error' : 'ok' }));
        }
        await s.putInvocations(recs.slice(0, 10), []);
        await s.putInvocations(recs.slice(10), []);

        const seen: string[] = [];
        let cursor: string | undefined;
        let pages = 0;
        for (;;) {
          const page = await s.listInvocations({ limit: 7, ...(cursor ? { cursor } : {}) });
          pages += 1;
          assert.ok(page.items.length <= 7);
          seen.push(...page.items.map((r) => r.id));
          if (!page.nextCursor) break;
          assert.equal(typeof page.nextCursor, 'string');
          cursor = page.nextCursor;
        }
        assert.equal(pages, 4);
        assert.equal(seen.length, 25);
        assert.equal(new Set(seen).size, 25, 'no record repeats across pages');
        const startedOf = new Map(recs.map((r) => [r.id, Date.parse(r.startedAt)]));
        const times = seen.map((id) => startedOf.get(id) ?? NaN);
        assert.deepEqual(times, [...times].sort((a, b) => b - a), 'newest first');

        const odd = await s.listInvocations({ functionName: 'odd', limit: 100 });
        assert.equal(odd.items.length, 12);
        assert.ok(odd.items.every((r) => r.functionName === 'odd'));
        assert.equal(odd.nextCursor, null);

        const errors = await s.listInvocations({ outcome: 'error', limit: 100 });
        assert.deepEqual(errors.items.map((r) => r.id).sort(), recs.filter((r) => r.outcome === 'error').map((r) => r.id).sort());
        const evenErrors = await s.listInvocations({ functionName: 'even', outcome: 'error', limit: 2 });
        assert.equal(evenErrors.items.length, 2);
        assert.ok(evenErrors.items.every((r) => r.functionName === 'even' && r.outcome === 'error'));
        assert.ok(evenErrors.nextCursor);
        const rest = await s.listInvocations({ functionName: 'even', outcome: 'error', limit: 100, cursor: evenErrors.nextCursor });
        assert.equal(rest.items.length, recs.filter((r) => r.functionName === 'even' && r.outcome === 'error').length - 2);

        assert.deepEqual(await s.listInvocations({ functionName: 'none', limit: 5 }), { items: [], nextCursor: null });
      }));

    test('a malformed cursor is a bad_request', () =>
      withStore(async (s) => {
        await rejectsWith(s.listInvocations({ limit: 5, cursor: '%%%not-a-cursor' }), 'bad_request');
      }));

    test('logs by invocation, tail and follow by seq', () =>
      withStore(async (s) => {
        const a = invocation({ functionName: 'f', startedAt: iso(T0) });
        const b = invocation({ functionName: 'g', startedAt: iso(T0 + 1) });
        const logs: LogLine[] = [];
        for (let i = 0; i < 10; i++) logs.push({ invocationId: i % 2 ? b.id : a.id, functionName: i % 2 ? 'g' : 'f', ts: T0 + i, level: 'log', message: `line ${i}` });
        await s.putInvocations([a, b], logs);

        const ofA = await s.queryLogs({ invocationId: a.id, limit: 100 });
        assert.deepEqual(ofA.map((l) => l.message), ['line 0', 'line 2', 'line 4', 'line 6', 'line 8']);
        assert.ok(ofA.every((l) => l.invocationId === a.id && l.functionName === 'f' && l.level === 'log'));
        const seqs = ofA.map((l) => l.seq);
        assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y), 'ascending seq');

        const tail = await s.queryLogs({ limit: 3 });
        assert.deepEqual(tail.map((l) => l.message), ['line 7', 'line 8', 'line 9'], 'without afterSeq: the latest lines, in order');

        const first = await s.queryLogs({ functionName: 'g', afterSeq: 0, limit: 2 });
        assert.deepEqual(first.map((l) => l.message), ['line 1', 'line 3']);
        const next = await s.queryLogs({ functionName: 'g', afterSeq: first.at(-1)?.seq ?? 0, limit: 100 });
        assert.deepEqual(next.map((l) => l.message), ['line 5', 'line 7', 'line 9']);
        const lastSeq = next.at(-1)?.seq ?? 0;
        assert.deepEqual(await s.queryLogs({ functionName: 'g', afterSeq: lastSeq, limit: 100 }), []);

        await s.putInvocations([], [{ invocationId: b.id, functionName: 'g', ts: T0 + 20, level: 'error', message: 'late' }]);
        const followed = await s.queryLogs({ functionName: 'g', afterSeq: lastSeq, limit: 100 });
        assert.deepEqual(followed.map((l) => [l.message, l.level]), [['late', 'error']]);
        assert.ok((followed[0]?.seq ?? 0) > lastSeq);

        const since = await s.queryLogs({ sinceTs: T0 + 8, limit: 100 });
        assert.deepEqual(since.map((l) => l.message), ['line 8', 'line 9', 'late']);
      }));

    test('text search is a literal substring match (% and _ are not wildcards)', () =>
      withStore(async (s) => {
        const msgs = ['100% done', '100 done', 'snake_case here', 'snakeXcase here', 'back\\slash', 'plain text', 'Mixed CASE Error'];
        await s.putInvocations([], msgs.map((message, i) => ({ invocationId: 'i', functionName: 'f', ts: T0 + i, level: 'info' as const, message })));
        const find = async (text: string) => (await s.queryLogs({ text, limit: 100 })).map((l) => l.message);
        assert.deepEqual(await find('0%'), ['100% done']);
        assert.deepEqual(await find('e_c'), ['snake_case here']);
        assert.deepEqual(await find('k\\s'), ['back\\slash']);
        assert.deepEqual(await find('done'), ['100% done', '100 done']);
        assert.deepEqual(await find('case error'), ['Mixed CASE Error'], 'ASCII case-insensitive');
        assert.deepEqual(await find('nothing like this'), []);
        assert.deepEqual((await s.queryLogs({ text: 'here', functionName: 'f', afterSeq: 0, limit: 1 })).map((l) => l.message), ['snake_case here']);
      }));

    test('prune by age and by row cap', () =>
      withStore(async (s) => {
        const recs = Array.from({ length: 10 }, (_, i) => invocation({ functionName: 'p', startedAt: iso(T0 + i * 1000) }));
        const logs = recs.map((r, i): LogLine => ({ invocationId: r.id, functionName: 'p', ts: T0 + i * 1000, level: 'info', message: `m${i}` }));
        await s.putInvocations(recs, logs);

        const byAge = await s.prune(T0 + 3000, 1000); // removes records 0..2 and their lines
        assert.equal(byAge, 6);
        assert.equal(await s.getInvocation(recs[2]?.id ?? ''), null);
        assert.ok(await s.getInvocation(recs[3]?.id ?? ''));

        const byCap = await s.prune(0, 4); // keeps the 4 newest records and lines
        assert.equal(byCap, 6);
        const left = await s.listInvocations({ limit: 100 });
        assert.deepEqual(left.items.map((r) => r.id), recs.slice(6).reverse().map((r) => r.id));
        assert.deepEqual((await s.queryLogs({ limit: 100 })).map((l) => l.message), ['m6', 'm7', 'm8', 'm9']);
        assert.equal(await s.prune(0, 4), 0);
        assert.equal(await s.prune(0, 0), 8);
        assert.deepEqual((await s.listInvocations({ limit: 10 })).items, []);
      }));

    test('prune by size keeps the newest records and logs under the byte cap', () =>
      withStore(async (s) => {
        const big = 'x'.repeat(2000);
        const recs = Array.from({ length: 600 }, (_, i) => invocation({ functionName: 'b', startedAt: iso(T0 + i * 1000) }));
        const logs = recs.map((r, i): LogLine => ({ invocationId: r.id, functionName: 'b', ts: T0 + i * 1000, level: 'info', message: `${i} ${big}` }));
        await s.putInvocations(recs, logs);
        const before = await s.storedBytes();
        assert.ok(before > 1_000_000, `600 records with 2 KB lines take ${before} bytes`);
        assert.equal(await s.prune(0, 1_000_000, Infinity), 0, 'no cap, nothing removed');
        const cap = Math.floor(before / 3);
        const removed = await s.prune(0, 1_000_000, cap);
        const after = await s.storedBytes();
        assert.ok(after <= cap, `${after} bytes left, cap ${cap}`);
        assert.ok(removed > 0);
        const left = (await s.listInvocations({ limit: 1000 })).items;
        assert.ok(left.length > 100 && left.length < 600, `${left.length} records left`);
        assert.deepEqual(left.map((r) => r.id), recs.slice(600 - left.length).reverse().map((r) => r.id), 'the newest are kept, in order');
        const lines = await s.queryLogs({ limit: 10_000 });
        assert.equal(lines.at(-1)?.message.split(' ')[0], '599', 'the newest log line is kept');
      }));

    test('filters by error code, cold start, tier and time range page consistently', () =>
      withStore(async (s) => {
        const recs = Array.from({ length: 40 }, (_, i) =>
          invocation({
            functionName: 'flt',
            startedAt: iso(T0 + Math.floor(i / 4) * 1000),
            coldStart: i % 4 === 0,
            tier: i % 2 ? 'process' : 'isolate',
            ...(i % 5 === 0 ? { outcome: 'error' as const, errorCode: i % 10 === 0 ? ('timeout' as const) : ('function_error' as const), status: null } : {}),
          }),
        );
        await s.putInvocations(recs, []);
        const all = async (q: Omit<Parameters<RecordStore['listInvocations']>[0], 'limit' | 'cursor'>) => {
          const ids: string[] = [];
          let cursor: string | null = null;
          do {
            const page: { items: InvocationRecord[]; nextCursor: string | null } = await s.listInvocations({ ...q, limit: 3, ...(cursor ? { cursor } : {}) });
            ids.push(...page.items.map((r) => r.id));
            cursor = page.nextCursor;
          } while (cursor);
          return ids.sort();
        };
        const expect = (pred: (r: InvocationRecord) => boolean) => recs.filter(pred).map((r) => r.id).sort();
        assert.deepEqual(await all({ errorCode: 'timeout' }), expect((r) => r.errorCode === 'timeout'));
        assert.deepEqual(await all({ coldStart: true }), expect((r) => r.coldStart));
        assert.deepEqual(await all({ coldStart: false, tier: 'process' }), expect((r) => !r.coldStart && r.tier === 'process'));
        assert.deepEqual(await all({ sinceMs: T0 + 2000, untilMs: T0 + 5000 }), expect((r) => Date.parse(r.startedAt) >= T0 + 2000 && Date.parse(r.startedAt) < T0 + 5000));
        assert.deepEqual(await all({ outcome: 'error', tier: 'isolate', sinceMs: T0 + 3000 }), expect((r) => r.outcome === 'error' && r.tier === 'isolate' && Date.parse(r.startedAt) >= T0 + 3000));
        assert.equal((await all({ functionName: 'flt' })).length, 40);
      }));

    test('usage sums invocations, errors, cold starts, CPU and GB-seconds per function over a time range', () =>
      withStore(async (s) => {
        await s.putInvocations(
          [
            invocation({ functionName: 'u1', startedAt: iso(T0), cpuMs: 500, peakMemoryBytes: 2e9, coldStart: true, phases: { queueMs: 0, initMs: 0, sandboxMs: 0, runtimeInitMs: 0, moduleLoadMs: 0, execMs: 1500, overheadMs: 0, totalMs: 1500 } }),
            invocation({ functionName: 'u1', startedAt: iso(T0 + 1000), cpuMs: 250, peakMemoryBytes: 1e9, outcome: 'error', errorCode: 'timeout', phases: { queueMs: 0, initMs: 0, sandboxMs: 0, runtimeInitMs: 0, moduleLoadMs: 0, execMs: 1000, overheadMs: 0, totalMs: 1000 } }),
            invocation({ functionName: 'u2', startedAt: iso(T0 + 1000), cpuMs: 1000 }),
            invocation({ functionName: 'u2', startedAt: iso(T0 + 9000), cpuMs: 1000 }),
          ],
          [],
        );
        const usage = await s.usage(T0, T0 + 5000);
        assert.deepEqual(usage.map((u) => u.functionName), ['u1', 'u2']);
        const [u1, u2] = usage;
        assert.equal(u1?.invocations, 2);
        assert.equal(u1?.errors, 1);
        assert.equal(u1?.coldStarts, 1);
        assert.ok(Math.abs((u1?.cpuSeconds ?? 0) - 0.75) < 1e-9);
        assert.ok(Math.abs((u1?.gbSeconds ?? 0) - (2 * 1.5 + 1 * 1)) < 1e-9);
        assert.equal(u2?.invocations, 1, 'the record after the range is not counted');
        assert.deepEqual(await s.usage(T0 + 20_000, T0 + 30_000), []);
      }));
  });
}

export function runArtifactStoreContract(name: string, open: Opener<'artifacts', ArtifactStore>): void {
  describe(`ArtifactStore contract: ${name}`, () => {
    async function withStore(fn: (s: ArtifactStore) => Promise<void>): Promise<void> {
      const h = await open();
      try {
        await fn(h.artifacts);
      } finally {
        await h.close();
      }
    }
    const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

    test('put returns the sha256 hex; get, has, list, delete', () =>
      withStore(async (s) => {
        assert.deepEqual(await s.list(), []);
        const a = new TextEncoder().encode('export default { fetch() { return new Response("hi") } }');
        const b = new Uint8Array(300_000).map((_, i) => (i * 31) & 0xff);
        const da = await s.put(a);
        const db = await s.put(b);
        assert.equal(da, sha(a));
        assert.equal(db, sha(b));
        assert.match(da, /^[0-9a-f]{64}$/);
        assert.deepEqual(await s.get(da), a);
        assert.deepEqual(await s.get(db), b);
        assert.equal(await s.has(da), true);
        assert.deepEqual(await s.list(), [da, db].sort());

        assert.equal(await s.delete(da), true);
        assert.equal(await s.delete(da), false);
        assert.equal(await s.has(da), false);
        assert.equal(await s.get(da), null);
        assert.deepEqual(await s.list(), [db]);
      }));

    test('same bytes give the same digest and one entry; empty blobs work', () =>
      withStore(async (s) => {
        const bytes = new TextEncoder().encode('same');
        const d1 = await s.put(bytes);
        const d2 = await s.put(new TextEncoder().encode('same'));
        assert.equal(d1, d2);
        assert.deepEqual(await s.list(), [d1]);
        const empty = await s.put(new Uint8Array(0));
        assert.equal(empty, sha(new Uint8Array(0)));
        assert.deepEqual(await s.get(empty), new Uint8Array(0));
      }));

    test('an unknown but well-formed digest is missing', () =>
      withStore(async (s) => {
        const d = 'a'.repeat(64);
        assert.equal(await s.get(d), null);
        assert.equal(await s.has(d), false);
        assert.equal(await s.delete(d), false);
      }));

    test('malformed digests are refused with bad_request by every method', () =>
      withStore(async (s) => {
        const good = await s.put(new TextEncoder().encode('x'));
        const bad = ['', '../../etc/passwd', good.toUpperCase(), good.slice(1), `${good}0`, `${good.slice(0, 62)}/.`, `${good.slice(0, 63)}\u0000`, 'g'.repeat(64), ` ${good.slice(1)}`];
        for (const d of bad) {
          await rejectsWith(s.get(d), 'bad_request');
          await rejectsWith(s.has(d), 'bad_request');
          await rejectsWith(s.delete(d), 'bad_request');
        }
        await rejectsWith(s.get(42 as unknown as string), 'bad_request');
        assert.deepEqual(await s.list(), [good]);
      }));
  });
}
