import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, describe, test } from 'node:test';
import { resolveFunctionConfig } from '../../core/config.ts';
import { ContinuumError } from '../../core/errors.ts';
import type { InvocationRecord, LogLine } from '../../core/types.ts';
import { runArtifactStoreContract, runRecordStoreContract, runStateStoreContract } from '../contract-suite.ts';
import { migrate } from './db.ts';
import {
  FileArtifactStore,
  openSqliteStores,
  RECORDS_MIGRATIONS,
  SqliteQueueStore,
  SqliteRecordStore,
  SqliteStateStore,
  STATE_MIGRATIONS,
  type CorruptArtifact,
} from './index.ts';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'continuum-store-'));
  dirs.push(d);
  return d;
}
after(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function openAll() {
  const dir = await tempDir();
  const stores = await openSqliteStores(join(dir, 'data'));
  return {
    ...stores,
    dir: join(dir, 'data'),
    close: async () => {
      await stores.state.close();
      await stores.records.close();
      await stores.artifacts.close();
      await stores.queues.close();
    },
  };
}

runStateStoreContract('sqlite', openAll);
runRecordStoreContract('sqlite', openAll);
runArtifactStoreContract('files', openAll);

describe('sqlite backend specifics', () => {
  test('only error invocations pay for an outcome index, and error listings use it', async () => {
    const h = await openAll();
    try {
      const db = (h.records as SqliteRecordStore).database;
      const indexes = db.prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'invocations' AND sql IS NOT NULL").all() as Array<{ name: string; sql: string }>;
      for (const ix of indexes.filter((i) => /outcome/.test(i.sql))) assert.match(ix.sql, /WHERE outcome = 'error'$/, ix.name);
      const plan = (sql: string) => (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all() as Array<{ detail: string }>).map((r) => r.detail).join(' | ');
      assert.match(plan("SELECT rid FROM invocations WHERE outcome = 'error' ORDER BY started_ms DESC, rid DESC LIMIT 5"), /USING COVERING INDEX invocations_errors\b/);
      assert.match(plan("SELECT rid FROM invocations WHERE function_name = 'f' AND outcome = 'error' ORDER BY started_ms DESC, rid DESC LIMIT 5"), /USING COVERING INDEX invocations_errors_by_function/);
    } finally {
      await h.close();
    }
  });

  test('data dir is 0700, databases are WAL with the right synchronous level', async () => {
    const h = await openAll();
    try {
      assert.equal((await stat(h.dir)).mode & 0o777, 0o700);
      assert.equal((await stat(join(h.dir, 'state.db'))).mode & 0o777, 0o600);
      const state = (h.state as SqliteStateStore).database;
      const records = (h.records as SqliteRecordStore).database;
      assert.deepEqual({ ...state.prepare('PRAGMA journal_mode').get() }, { journal_mode: 'wal' });
      assert.deepEqual({ ...state.prepare('PRAGMA synchronous').get() }, { synchronous: 2 }); // FULL
      assert.deepEqual({ ...state.prepare('PRAGMA foreign_keys').get() }, { foreign_keys: 1 });
      assert.deepEqual({ ...records.prepare('PRAGMA journal_mode').get() }, { journal_mode: 'wal' });
      assert.deepEqual({ ...records.prepare('PRAGMA synchronous').get() }, { synchronous: 1 }); // NORMAL
      assert.deepEqual({ ...state.prepare('PRAGMA user_version').get() }, { user_version: STATE_MIGRATIONS.length });
      assert.deepEqual({ ...records.prepare('PRAGMA user_version').get() }, { user_version: RECORDS_MIGRATIONS.length });
    } finally {
      await h.close();
    }
  });

  test('version rows are immutable in the database itself', async () => {
    const h = await openAll();
    try {
      const now = new Date().toISOString();
      await h.state.createFunction({ name: 'f', config: resolveFunctionConfig({}), activeVersion: null, createdAt: now, updatedAt: now });
      await h.state.putVersion({
        id: 'v_1', functionName: 'f', bundleDigest: 'a'.repeat(64), bundleBytes: 1, format: 'fetch', exportName: 'default',
        config: resolveFunctionConfig({}), dependencies: [], createdAt: now,
      });
      const db = (h.state as SqliteStateStore).database;
      assert.throws(() => db.prepare("UPDATE versions SET bundle_bytes = 2 WHERE id = 'v_1'").run(), /immutable/);
    } finally {
      await h.close();
    }
  });

  test('a write blocked past the busy timeout fails as unavailable and leaves nothing behind', async () => {
    const dir = join(await tempDir(), 'data');
    await mkdir(dir, { recursive: true });
    const store = SqliteStateStore.open(join(dir, 'state.db'), { busyTimeoutMs: 50 });
    const other = new DatabaseSync(join(dir, 'state.db'));
    try {
      other.exec('BEGIN IMMEDIATE');
      const now = new Date().toISOString();
      await assert.rejects(
        store.createFunction({ name: 'blocked', config: resolveFunctionConfig({}), activeVersion: null, createdAt: now, updatedAt: now }),
        (e: unknown) => e instanceof ContinuumError && e.code === 'unavailable' && e.retryable,
      );
      other.exec('ROLLBACK');
      assert.equal(await store.getFunction('blocked'), null);
      await store.createFunction({ name: 'blocked', config: resolveFunctionConfig({}), activeVersion: null, createdAt: now, updatedAt: now });
      assert.ok(await store.getFunction('blocked'));
    } finally {
      other.close();
      await store.close();
    }
  });

  test('hot statements are compiled once: a LIMIT, OFFSET or LIKE parameter is written `+?` (lint rule)', async () => {
    const SQLITE_PRAGMA = 19; // a synchronous-level switch is an exec, compiled each time by design
    // Compiles during the second of two runs. Setting an authorizer expires every statement, so the first
    // run compiles them all again; SQLite calls the authorizer only while it compiles.
    const compiles = async (db: DatabaseSync, run: (i: number) => Promise<unknown> | unknown) => {
      let n = 0;
      db.setAuthorizer((action) => {
        if (action !== SQLITE_PRAGMA) n++;
        return 0; // SQLITE_OK
      });
      try {
        await run(0);
        n = 0;
        await run(1);
        return n;
      } finally {
        db.setAuthorizer(null);
      }
    };
    // The premise of the lint rule: SQLite plans with a bare LIMIT or LIKE parameter's value, so binding one
    // expires the statement.
    const mem = new DatabaseSync(':memory:');
    mem.exec('CREATE TABLE t (a INTEGER, b TEXT)');
    for (const [bare, wrapped, value] of [
      /* eslint-disable no-restricted-syntax -- the bare forms, on purpose */
      ['SELECT a FROM t ORDER BY a LIMIT ?', 'SELECT a FROM t ORDER BY a LIMIT +?', (i: number) => i + 1],
      ['SELECT a FROM t WHERE b LIKE ?', 'SELECT a FROM t WHERE b LIKE +?', (i: number) => `%${i}%`],
      /* eslint-enable no-restricted-syntax */
    ] as const) {
      const [plain, plus] = [mem.prepare(bare), mem.prepare(wrapped)];
      assert.ok((await compiles(mem, (i) => plain.all(value(i)))) > 0, `${bare} no longer compiles again on every run: the lint rule can go`);
      assert.equal(await compiles(mem, (i) => plus.all(value(i))), 0, wrapped);
    }
    mem.close();

    const h = await openAll();
    try {
      const queues = h.queues as SqliteQueueStore;
      await queues.createQueue('q');
      const queueRound = async (i: number) => {
        await queues.send('q', [{ body: new Uint8Array([i]) }, { body: new Uint8Array([i]), delayMs: 60_000 }]);
        const batch = await queues.receive('q', 10 + i, 30_000, 1000);
        await queues.extend('q', batch[0]!.id, batch[0]!.leaseToken, 30_000);
        await queues.settle('q', batch.map((m) => ({ id: m.id, leaseToken: m.leaseToken, action: 'dead' as const, reason: 'test' })));
        await queues.nextVisibleInMs('q');
        await queues.listDeadLetters('q', { limit: 5 + i });
      };
      assert.equal(await compiles(queues.database, queueRound), 0, 'queue store');

      const records = h.records as SqliteRecordStore;
      const recordsRound = async (i: number) => {
        await records.putInvocations([], [{ invocationId: `i${i}`, functionName: 'f', ts: Date.now(), level: 'info', message: `line ${i}` }]);
        await records.queryLogs({ functionName: 'f', text: 'line', afterSeq: i, limit: 10 + i });
        await records.queryLogs({ functionName: 'f', limit: 10 + i });
        await records.listInvocations({ functionName: 'f', limit: 10 + i });
      };
      assert.equal(await compiles(records.database, recordsRound), 0, 'record store');
    } finally {
      await h.close();
    }
  });

  test('data survives close and reopen', async () => {
    const dir = join(await tempDir(), 'data');
    const now = new Date().toISOString();
    let s = await openSqliteStores(dir);
    await s.state.createFunction({ name: 'keep', config: resolveFunctionConfig({}), activeVersion: null, createdAt: now, updatedAt: now });
    await s.state.setMeta('node.id', 'n-1');
    const digest = await s.artifacts.put(new TextEncoder().encode('bundle'));
    await Promise.all([s.state.close(), s.records.close(), s.artifacts.close()]);
    s = await openSqliteStores(dir);
    assert.equal((await s.state.getFunction('keep'))?.name, 'keep');
    assert.equal(await s.state.getMeta('node.id'), 'n-1');
    assert.equal(new TextDecoder().decode((await s.artifacts.get(digest)) ?? new Uint8Array()), 'bundle');
    await Promise.all([s.state.close(), s.records.close(), s.artifacts.close()]);
  });
});

describe('migrations', () => {
  test('a database at v1 is upgraded to the latest with its data kept', async () => {
    const dir = join(await tempDir(), 'data');
    await mkdir(dir, { recursive: true });
    const now = new Date().toISOString();

    // Build v1 databases the way the first release left them.
    const s1 = new DatabaseSync(join(dir, 'state.db'));
    s1.exec('PRAGMA journal_mode = WAL');
    assert.equal(migrate(s1, 'state.db', STATE_MIGRATIONS.slice(0, 1)), 1);
    s1.prepare('INSERT INTO functions VALUES (?, ?, NULL, ?, ?)').run('old', JSON.stringify(resolveFunctionConfig({})), now, now);
    s1.prepare('INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)').run(
      'old', 'v_old', 'b'.repeat(64), 10, 'lambda', 'handler', JSON.stringify(resolveFunctionConfig({})), '[]', now,
    );
    assert.equal(s1.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE name = 'meta'").get()?.n, 0);
    s1.close();
    const r1 = new DatabaseSync(join(dir, 'records.db'));
    migrate(r1, 'records.db', RECORDS_MIGRATIONS.slice(0, 1));
    r1.prepare("INSERT INTO logs (invocation_id, function_name, ts, level, message) VALUES ('i', 'old', 1, 'info', 'from v1')").run();
    r1.close();

    const s = await openSqliteStores(dir);
    try {
      assert.equal((await s.state.getVersion('old', 'v_old'))?.format, 'lambda');
      await s.state.setMeta('k', 'v'); // the v2 table exists now
      assert.equal(await s.state.getMeta('k'), 'v');
      assert.deepEqual((await s.records.queryLogs({ functionName: 'old', limit: 5 })).map((l) => l.message), ['from v1']);
      const db = (s.state as SqliteStateStore).database;
      const applied = db.prepare('SELECT version, name FROM schema_migrations ORDER BY version').all().map((r) => r.version);
      assert.deepEqual(applied, STATE_MIGRATIONS.map((m) => m.version));
      const rdb = (s.records as SqliteRecordStore).database;
      const idx = rdb.prepare("SELECT name FROM sqlite_schema WHERE type = 'index' AND name = 'invocations_by_function'").get();
      assert.ok(idx, 'v2 indexes were created');
    } finally {
      await Promise.all([s.state.close(), s.records.close()]);
    }
  });

  test('reopening applies nothing twice', async () => {
    const dir = join(await tempDir(), 'data');
    for (let i = 0; i < 3; i++) {
      const s = await openSqliteStores(dir);
      const n = (s.state as SqliteStateStore).database.prepare('SELECT count(*) AS n FROM schema_migrations').get()?.n;
      assert.equal(n, STATE_MIGRATIONS.length);
      await Promise.all([s.state.close(), s.records.close()]);
    }
  });

  test('a database newer than the code is refused with a clear error', async () => {
    const dir = join(await tempDir(), 'data');
    const s = await openSqliteStores(dir);
    await Promise.all([s.state.close(), s.records.close()]);
    const db = new DatabaseSync(join(dir, 'state.db'));
    db.prepare('INSERT INTO schema_migrations VALUES (?, ?, ?)').run(STATE_MIGRATIONS.length + 1, 'from the future', new Date().toISOString());
    db.close();
    await assert.rejects(openSqliteStores(dir), (err: unknown) => {
      assert.ok(err instanceof ContinuumError);
      assert.equal(err.code, 'unavailable');
      assert.match(err.message, new RegExp(`state\\.db has schema version ${STATE_MIGRATIONS.length + 1} but this Continuum knows only up to ${STATE_MIGRATIONS.length}`));
      return true;
    });
  });

  test('a file that is not a database is refused with a clear error', async () => {
    const dir = join(await tempDir(), 'data');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'state.db'), 'this is not sqlite '.repeat(100));
    await assert.rejects(openSqliteStores(dir), (err: unknown) => err instanceof ContinuumError && /cannot open state\.db/.test(err.message));
  });
});

describe('file artifacts specifics', () => {
  test('a corrupt blob is reported, moved aside and treated as missing; put repairs it', async () => {
    const dir = await tempDir();
    const reports: CorruptArtifact[] = [];
    const s = await FileArtifactStore.open(join(dir, 'artifacts'), { onCorrupt: (c) => reports.push(c) });
    const bytes = new TextEncoder().encode('original bundle');
    const digest = await s.put(bytes);
    await writeFile(s.pathOf(digest), 'tampered bundle');
    assert.equal(await s.get(digest), null);
    assert.equal(reports.length, 1);
    assert.equal(reports[0]?.digest, digest);
    assert.equal(await readFile(reports[0]?.quarantinedTo ?? '', 'utf8'), 'tampered bundle');
    assert.equal(await s.has(digest), false);
    assert.equal(await s.put(bytes), digest);
    assert.deepEqual(await s.get(digest), bytes);
  });

  test('a bad digest never reaches the file system', async () => {
    const dir = await tempDir();
    const s = await FileArtifactStore.open(join(dir, 'artifacts'));
    // Plant files where a naive path join of a bad digest would land.
    const upper = 'A'.repeat(64);
    await mkdir(join(dir, 'artifacts', 'sha256', 'AA'), { recursive: true });
    await writeFile(join(dir, 'artifacts', 'sha256', 'AA', upper), 'planted');
    await writeFile(join(dir, 'secret'), 'planted');
    for (const d of [upper, '../../secret', '../../../secret'.padEnd(64, 'a')]) {
      await assert.rejects(s.get(d), (e: unknown) => e instanceof ContinuumError && e.code === 'bad_request');
      await assert.rejects(s.delete(d), (e: unknown) => e instanceof ContinuumError && e.code === 'bad_request');
    }
    assert.equal(await readFile(join(dir, 'secret'), 'utf8'), 'planted');
    assert.deepEqual(await s.list(), []);
  });

  test('stale temp files of a crashed writer are removed at open; fresh ones are left alone', async () => {
    const dir = await tempDir();
    const root = join(dir, 'artifacts');
    await FileArtifactStore.open(root);
    await mkdir(join(root, 'sha256', 'ab'), { recursive: true });
    const stale = join(root, 'sha256', 'ab', '.tmp-stale');
    const fresh = join(root, 'sha256', 'ab', '.tmp-fresh');
    await writeFile(stale, 'partial');
    await writeFile(fresh, 'partial');
    const old = new Date(Date.now() - 3600_000);
    await utimes(stale, old, old);
    const s = await FileArtifactStore.open(root);
    await assert.rejects(stat(stale), /ENOENT/);
    assert.ok((await stat(fresh)).isFile());
    assert.deepEqual(await s.list(), []);
  });
});

describe('measurements', () => {
  test('state write latency (synchronous=FULL) and records batch throughput', async (t) => {
    const h = await openAll();
    try {
      const now = new Date().toISOString();
      const n = 100;
      const lat: number[] = [];
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        await h.state.createFunction({ name: `fn-${i}`, config: resolveFunctionConfig({}), activeVersion: null, createdAt: now, updatedAt: now });
        lat.push(performance.now() - t0);
      }
      lat.sort((a, b) => a - b);
      const p50 = lat[Math.floor(n * 0.5)] ?? NaN;
      const p99 = lat[Math.floor(n * 0.99)] ?? NaN;
      t.diagnostic(`state write latency (FULL): p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms`);
      assert.ok(p50 > 0 && p50 < 1000);

      const batch = 500;
      const batches = 20;
      const t0 = performance.now();
      for (let b = 0; b < batches; b++) {
        const recs: InvocationRecord[] = [];
        const logs: LogLine[] = [];
        for (let i = 0; i < batch; i++) {
          const id = `b${b}-${i}`;
          recs.push({
            id, functionName: 'hot', versionId: 'v_1', tier: 'isolate', trigger: 'http', startedAt: new Date(Date.now() + i).toISOString(),
            coldStart: false, phases: { queueMs: 0, initMs: 0, sandboxMs: 0, runtimeInitMs: 0, moduleLoadMs: 0, execMs: 1, overheadMs: 0, totalMs: 1 }, outcome: 'ok', status: 200, errorCode: null, errorMessage: null,
            cpuMs: 1, peakMemoryBytes: 1, instanceId: 'i', node: 'n', logBytes: 10, logsTruncated: false,
          });
          logs.push({ invocationId: id, functionName: 'hot', ts: Date.now(), level: 'info', message: `handled request ${i}` });
        }
        await h.records.putInvocations(recs, logs);
      }
      const secs = (performance.now() - t0) / 1000;
      const rows = batch * batches * 2;
      t.diagnostic(`records batch throughput: ${Math.round(rows / secs)} rows/s (${batch} invocations + ${batch} log lines per batch)`);
      assert.equal((await h.records.listInvocations({ functionName: 'hot', limit: 1000 })).items.length, 1000);
    } finally {
      await h.close();
    }
  });
});
