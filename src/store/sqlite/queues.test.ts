/** The SQLite QueueStore against the backend-neutral contract suite. */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runQueueStoreContract } from '../queue-contract-suite.ts';
import { SqliteQueueStore } from './queues.ts';

runQueueStoreContract('sqlite', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'continuum-queues-'));
  const path = join(dir, 'queues.db');
  let offset = 0;
  const now = () => Date.now() + offset;
  let store = SqliteQueueStore.open(path, { now });
  return {
    clock: { advance: (ms: number) => void (offset += ms) },
    get queues() {
      return store;
    },
    reopen: async () => {
      await store.close();
      store = SqliteQueueStore.open(path, { now });
      return store;
    },
    close: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

test('durability: acknowledged sends survive a power loss (powerloss.test.ts checks the sync before each acknowledgement)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'continuum-queues-'));
  const store = SqliteQueueStore.open(join(dir, 'queues.db'));
  try {
    const d = store.durability();
    assert.equal(d.powerLoss, true);
    assert.match(d.detail, /synchronous=FULL/);
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
});
