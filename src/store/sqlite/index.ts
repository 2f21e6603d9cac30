/**
 * The embedded backend (ARCHITECTURE §2): everything in one data directory.
 *
 *   <dataDir>/state.db        functions, versions, meta        WAL, synchronous=FULL
 *   <dataDir>/records.db      invocation records, log lines    WAL, synchronous=NORMAL
 *   <dataDir>/queues.db       queues, async invocations, cron  WAL, FULL for acknowledged writes (see queues.ts)
 *   <dataDir>/artifacts/      sha256/<aa>/<digest> blobs      temp + fsync + rename + dir fsync
 */
import { chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ArtifactStore, QueueStore, RecordStore, StateStore } from '../contract.ts';
import { FileArtifactStore, type FileArtifactStoreOptions } from './artifacts.ts';
import { SqliteQueueStore } from './queues.ts';
import { SqliteRecordStore } from './records.ts';
import { SqliteStateStore } from './state.ts';

export { FileArtifactStore, assertDigest, isDigest, sha256Hex, type CorruptArtifact, type FileArtifactStoreOptions } from './artifacts.ts';
export { SqliteRecordStore } from './records.ts';
export { SqliteQueueStore, type SqliteQueueStoreOptions } from './queues.ts';
export { SqliteStateStore } from './state.ts';
export { STATE_MIGRATIONS, RECORDS_MIGRATIONS, QUEUE_MIGRATIONS } from './migrations.ts';

export interface SqliteStores {
  state: StateStore;
  records: RecordStore;
  artifacts: ArtifactStore;
  queues: QueueStore;
}

export interface OpenSqliteStoresOptions {
  artifacts?: FileArtifactStoreOptions;
}

export async function openSqliteStores(dataDir: string, options: OpenSqliteStoresOptions = {}): Promise<SqliteStores> {
  const created = await mkdir(dataDir, { recursive: true, mode: 0o700 });
  if (created !== undefined) await chmod(dataDir, 0o700); // mode is filtered by the umask; make sure
  const state = SqliteStateStore.open(join(dataDir, 'state.db'));
  let records: SqliteRecordStore | undefined;
  let queues: SqliteQueueStore | undefined;
  try {
    records = SqliteRecordStore.open(join(dataDir, 'records.db'));
    queues = SqliteQueueStore.open(join(dataDir, 'queues.db'));
    const artifacts = await FileArtifactStore.open(join(dataDir, 'artifacts'), options.artifacts);
    return { state, records, artifacts, queues };
  } catch (err) {
    await queues?.close();
    await records?.close();
    await state.close();
    throw err;
  }
}
