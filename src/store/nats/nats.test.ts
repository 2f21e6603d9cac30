import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { QueueStore } from '../contract.ts';
import { runQueueStoreContract } from '../queue-contract-suite.ts';
import { openNatsQueueStore } from './queues.ts';
import { natsSkipReason, NatsTestServer } from './testing.ts';

const skip = natsSkipReason();
if (skip) {
  test('NATS QueueStore', { skip }, () => {});
} else {
  let server: NatsTestServer;
  before(async () => {
    server = await NatsTestServer.start();
  });
  after(async () => {
    await server?.close();
  });

  // One server for the file; every store gets its own prefix, so each test starts empty.
  let n = 0;
  const freshPrefix = () => `t${process.pid}x${++n}`;

  runQueueStoreContract('nats', async () => {
    const prefix = freshPrefix();
    let queues = await openNatsQueueStore({ servers: server.url, prefix });
    return {
      get queues() {
        return queues;
      },
      close: () => queues.close(),
      reopen: async () => {
        await queues.close();
        queues = await openNatsQueueStore({ servers: server.url, prefix });
        return queues;
      },
    };
  });

  describe('NATS QueueStore specifics', () => {
    test('messages, dead letters and leases survive a kill -9 of nats-server', async () => {
      const own = await NatsTestServer.start();
      let store: QueueStore | undefined;
      try {
        store = await openNatsQueueStore({ servers: own.url, prefix: 'crash' });
        await store.createQueue('jobs');
        const sent = await store.send('jobs', Array.from({ length: 20 }, (_, i) => ({ body: new TextEncoder().encode(`job ${i}`) })));
        const [poison] = await store.receive('jobs', 1, 30_000);
        assert.ok(poison);
        assert.deepEqual(await store.settle('jobs', [{ id: poison.id, leaseToken: poison.leaseToken, action: 'dead', reason: 'poison' }]), [true]);
        await store.close();

        await own.restart();

        store = await openNatsQueueStore({ servers: own.url, prefix: 'crash' });
        const st = await store.stats('jobs');
        assert.deepEqual([st.ready, st.deadLetters], [19, 1]);
        // nats-server 2.9 writes consumer acks down within ~100 ms: an ack that close to the crash is lost and
        // the message comes again when its lease ends (at least once), so it may still count as in flight.
        assert.ok(st.inFlight <= 1 && st.depth === 19 + st.inFlight, JSON.stringify(st));
        const got: string[] = [];
        for (;;) {
          const batch = await store.receive('jobs', 10, 30_000);
          if (batch.length === 0) break;
          assert.ok(batch.every((m) => m.attempt === 1));
          got.push(...batch.map((m) => m.id));
          assert.ok((await store.settle('jobs', batch.map((m) => ({ id: m.id, leaseToken: m.leaseToken, action: 'ack' as const })))).every(Boolean));
        }
        assert.deepEqual(got, sent.slice(1).map((m) => m.id), 'every acknowledged send is delivered after the crash, in order');
        assert.deepEqual((await store.listDeadLetters('jobs', { limit: 10 })).map((d) => d.id), [poison.id]);
      } finally {
        await store?.close();
        await own.close();
      }
    });
  });
}
