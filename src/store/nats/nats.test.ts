import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { EVENT_DEFAULTS } from '../../core/defaults.ts';
import type { LeasedMessage, QueueStore } from '../contract.ts';
import { runQueueStoreContract } from '../queue-contract-suite.ts';
import { jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { contentDigest } from '../queue-rules.ts';
import { flushOncePerTurn } from './flush.ts';
import { natsDurability, openNatsQueueStore } from './queues.ts';
import { natsSkipReason, NatsTestServer } from './testing.ts';

/** Counts the client's socket writes (every flush ends in `transport.send`). */
function countWrites(nc: NatsConnection): { readonly n: number } {
  const transport = (nc as unknown as { protocol: { transport: { send(frame: Uint8Array): void } } }).protocol.transport;
  const send = transport.send.bind(transport);
  const counter = { n: 0 };
  transport.send = (frame) => {
    counter.n++;
    send(frame);
  };
  return counter;
}

/** Resolves once the process is in the stopped state (SIGSTOP takes effect when it is next scheduled). */
async function stoppedState(pid: number): Promise<void> {
  // The state is the field after the parenthesised command name in /proc/<pid>/stat.
  while (!/\) T /.test(await readFile(`/proc/${pid}/stat`, 'utf8'))) await sleep(1);
}

/** Five publishes, each in its own microtask of one turn; resolves at the start of the next turn. */
async function publishAcrossMicrotasks(nc: NatsConnection, subject: string): Promise<void> {
  for (let i = 0; i < 5; i++) {
    nc.publish(subject, `m${i}`);
    await Promise.resolve();
  }
  await nextTurn();
}

const ACK_WAIT_MS = EVENT_DEFAULTS.queue.leaseMs;

test('durability by server version: before 2.10 no power-loss safety; from 2.10 it depends on configuration a client cannot read', () => {
  const table: Array<[string | undefined, boolean | null]> = [
    ['2.9.10', false],
    ['v2.9.25', false],
    ['1.4.1', false],
    ['2.10.0', null],
    ['2.12.1', null],
    ['3.0.0', null],
    [undefined, null],
    ['nightly', null],
  ];
  for (const [version, powerLoss] of table) {
    const d = natsDurability(version);
    assert.equal(d.powerLoss, powerLoss, String(version));
    assert.match(d.detail, /sync_interval: always/, String(version));
    if (version !== undefined) assert.ok(d.detail.includes(version), `${version}: the detail names the version`);
  }
});

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

  /** `count` stores opened at once on one prefix, like nodes starting together; none is left open if one fails. */
  async function openTogether(prefix: string, count: number): Promise<QueueStore[]> {
    const opened = await Promise.allSettled(Array.from({ length: count }, () => openNatsQueueStore({ servers: server.url, prefix })));
    const stores = opened.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
    const failed = opened.find((o) => o.status === 'rejected');
    if (failed) {
      await Promise.all(stores.map((st) => st.close()));
      throw failed.reason;
    }
    return stores;
  }

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
    test('durability is judged by the version of the server the store is connected to', async () => {
      const version = /v(\d+\.\d+\.\d+)/.exec(execFileSync(server.binary, ['--version'], { encoding: 'utf8' }))?.[1];
      assert.ok(version, 'nats-server --version names a version');
      const store = await openNatsQueueStore({ servers: server.url, prefix: freshPrefix() });
      try {
        assert.deepEqual(store.durability(), natsDurability(version));
      } finally {
        await store.close();
      }
    });

    test("watch: a store is told of another process's sends (visible and delayed), and finds them at once", async () => {
      const [store, peer] = (await openTogether(freshPrefix(), 2)) as [QueueStore, QueueStore];
      try {
        await store.createQueue('shared');
        assert.deepEqual(await peer.receive('shared', 10, ACK_WAIT_MS), [], 'the peer has looked once, at the delayed copies too');
        const told: string[] = [];
        let heard: () => void = () => {};
        peer.watch((queue) => {
          told.push(queue);
          heard();
        });
        const next = () => Promise.race([new Promise<void>((resolve) => (heard = resolve)), sleep(2000)]);
        let telling = next();
        await store.send('shared', [{ body: new TextEncoder().encode('now') }]);
        await telling;
        assert.deepEqual(told, ['shared']);
        assert.deepEqual((await peer.receive('shared', 10, ACK_WAIT_MS)).map((m) => new TextDecoder().decode(m.body)), ['now']);
        telling = next();
        await store.send('shared', [{ body: new TextEncoder().encode('soon'), delayMs: 300 }]);
        await telling;
        assert.deepEqual(told, ['shared', 'shared'], 'a delayed send too');
        await sleep(400);
        const due = await peer.receive('shared', 10, ACK_WAIT_MS);
        assert.deepEqual(due.map((m) => new TextDecoder().decode(m.body)), ['soon'], 'due, and seen although the peer had found no delayed copy just before');
      } finally {
        await Promise.all([store.close(), peer.close()]);
      }
    });

    test('stores opened at once on a fresh prefix (nodes starting together) all open: only one can create the buckets', async () => {
      for (let round = 0; round < 20; round++) {
        const stores = await openTogether(freshPrefix(), 8);
        try {
          await stores[0]!.createQueue('q');
          await stores[1]!.send('q', [{ body: new TextEncoder().encode('x') }]);
          assert.equal((await stores[3]!.stats('q')).depth, 1);
        } finally {
          await Promise.all(stores.map((st) => st.close()));
        }
      }
    });

    test("a lease equal to the consumer's ack wait needs no NAK; extend still moves it", async () => {
      const store = await openNatsQueueStore({ servers: server.url, prefix: freshPrefix() });
      try {
        await store.createQueue('aw');
        const [sent] = await store.send('aw', [{ body: new TextEncoder().encode('x') }]);
        const [m] = await store.receive('aw', 1, EVENT_DEFAULTS.queue.leaseMs);
        assert.equal(m?.id, sent?.id);
        assert.deepEqual(await store.receive('aw', 1, 300), []);
        assert.equal(await store.extend('aw', m!.id, m!.leaseToken, 300), true);
        await sleep(600);
        const [again] = await store.receive('aw', 1, EVENT_DEFAULTS.queue.leaseMs);
        assert.deepEqual([again?.id, again?.attempt], [sent?.id, 2]);
      } finally {
        await store.close();
      }
    });


    test('only copies the store may publish again carry a Nats-Msg-Id: keyed sends and retries, not fresh unkeyed sends', async () => {
      const prefix = freshPrefix();
      const store = await openNatsQueueStore({ servers: server.url, prefix });
      const nc = await connect({ servers: server.url });
      try {
        await store.createQueue('ids');
        const text = new TextEncoder();
        const [plain] = await store.send('ids', [{ body: text.encode('plain') }]);
        const [keyed] = await store.send('ids', [{ body: text.encode('keyed'), idempotencyKey: 'K1' }]);
        const jsm = await jetstream(nc).jetstreamManager();
        const msgIdAt = async (seq: number) => {
          const stored = await jsm.streams.getMessage(`${prefix}_q_ids`, { seq });
          assert.ok(stored, `copy ${seq} is in the stream`);
          return stored.header?.get('Nats-Msg-Id') ?? '';
        };
        assert.equal(await msgIdAt(1), '', 'a fresh unkeyed send');
        assert.equal(await msgIdAt(2), `k.ids.${createHash('sha256').update('K1').digest('hex')}`, 'a keyed send');
        const got = await store.receive('ids', 10, 30_000);
        const first = got.find((m) => m.id === plain!.id)!;
        assert.deepEqual(await store.settle('ids', [{ id: first.id, leaseToken: first.leaseToken, action: 'retry', delayMs: 0, error: 'again' }]), [true]);
        assert.equal(await msgIdAt(3), `${plain!.id}.1`, "a retry's copy: the id and the sequence of the copy it replaces");
        assert.equal(keyed?.duplicate, false);
      } finally {
        await nc.close();
        await store.close();
      }
    });

    test('messages that reach a pull after it gave up are handed back at once, not after their ack wait', async () => {
      const own = await NatsTestServer.start();
      const store = await openNatsQueueStore({ servers: own.url, prefix: 'late' });
      let stopped = false;
      try {
        await store.createQueue('late');
        const sent = await store.send('late', ['a', 'b', 'c'].map((b) => ({ body: new TextEncoder().encode(b) })));
        await sleep(1100); // past the "stored lately" window, so the receive makes one pull per consumer
        // A stopped server reads the pulls only after the store's guard gave up on them; what they hand out
        // then reaches an inbox with no pull waiting on it.
        process.kill(own.pid!, 'SIGSTOP');
        stopped = true;
        await stoppedState(own.pid!); // a busy host can let the server answer one more request before it stops
        assert.deepEqual(await store.receive('late', 10, ACK_WAIT_MS), []);
        process.kill(own.pid!, 'SIGCONT');
        stopped = false;
        await sleep(300); // the server answers the abandoned pulls now, while no pull is waiting
        const t0 = Date.now();
        const got = new Set<string>();
        while (got.size < sent.length && Date.now() - t0 < ACK_WAIT_MS / 2) {
          const batch = await store.receive('late', 10, ACK_WAIT_MS);
          for (const m of batch) got.add(m.id);
          assert.ok((await store.settle('late', batch.map((m) => ({ id: m.id, leaseToken: m.leaseToken, action: 'ack' as const })))).every(Boolean));
          if (batch.length === 0) await sleep(20);
        }
        assert.deepEqual([...got].sort(), sent.map((m) => m.id).sort(), `received again within ${Date.now() - t0} ms (ack wait ${ACK_WAIT_MS} ms)`);
      } finally {
        if (stopped) process.kill(own.pid!, 'SIGCONT');
        await store.close();
        await own.close();
      }
    });

    test('a delayed message another process stores is moved when due, though this process just found none due', async () => {
      const prefix = freshPrefix();
      const here = await openNatsQueueStore({ servers: server.url, prefix });
      const there = await openNatsQueueStore({ servers: server.url, prefix });
      try {
        await here.createQueue('dq');
        assert.deepEqual(await here.receive('dq', 1, ACK_WAIT_MS), []); // nothing due: the delayed subjects are quiet for a while
        const [sent] = await there.send('dq', [{ body: new TextEncoder().encode('x'), delayMs: 30 }]);
        const dueAt = Date.now() + 30;
        let got: LeasedMessage | undefined;
        while (!got && Date.now() - dueAt < 5_000) {
          [got] = await here.receive('dq', 1, ACK_WAIT_MS);
          if (!got) await sleep(5);
        }
        assert.equal(got?.id, sent?.id);
        // The recheck bounds the lateness (20 ms) beyond the message's own; a loaded host adds its own delays.
        assert.ok(Date.now() - dueAt < 2_000, `moved ${Date.now() - dueAt} ms after it was due`);
      } finally {
        await here.close();
        await there.close();
      }
    });

    test('after a crash, copies acked before it do not come back as stored messages', async () => {
      const own = await NatsTestServer.start();
      let store: QueueStore | undefined;
      try {
        store = await openNatsQueueStore({ servers: own.url, prefix: 'left' });
        await store.createQueue('jobs');
        await store.send('jobs', [{ body: new TextEncoder().encode('old-1') }, { body: new TextEncoder().encode('old-2') }]);
        await sleep(1500);
        const youngAt = Date.now();
        const young = await store.send('jobs', [{ body: new TextEncoder().encode('young') }]);
        const old = await store.receive('jobs', 2, 30_000);
        assert.deepEqual(await store.settle('jobs', old.map((m) => ({ id: m.id, leaseToken: m.leaseToken, action: 'ack' as const }))), [true, true]);
        // Long enough for the consumer's acks to be written down (the server writes its consumer state
        // asynchronously; 400 ms was not always enough on a loaded host); nats-server 2.9 still has not
        // written the stream deletions, so the killed server comes back with both old copies in the stream.
        await sleep(1500);
        await store.close();
        await own.restart();

        store = await openNatsQueueStore({ servers: own.url, prefix: 'left' });
        const st = await store.stats('jobs');
        assert.deepEqual([st.depth, st.ready, st.inFlight], [1, 1, 0]);
        // The old copies are 1.5 s older than the young one.
        assert.ok(st.oldestAgeMs < Date.now() - youngAt + 750, `oldest age ${st.oldestAgeMs} ms is the young message's, not an acked one's`);
        const [m] = await store.receive('jobs', 10, 30_000);
        assert.equal(m?.id, young[0]?.id);
      } finally {
        await store?.close();
        await own.close();
      }
    });

    test('copies acked just before a server crash are not handed out again, though the crash lost their acks', async () => {
      const own = await NatsTestServer.start();
      let store: QueueStore | undefined;
      try {
        store = await openNatsQueueStore({ servers: own.url, prefix: 'lostacks' });
        await store.createQueue('jobs');
        await store.createQueue('other');
        for (let i = 0; i < 3000; i += 100) await store.send('jobs', Array.from({ length: 100 }, (_, j) => ({ body: new TextEncoder().encode(`m${i + j}`) })));
        await store.send('other', [{ body: new TextEncoder().encode('o') }]);
        // Consumers at work (receive 10, ack them); the server is killed in the middle, while its latest acks
        // are only in memory. An ack whose settle resolved is done: that message must never come again.
        const acked = new Set<string>();
        // Received but not acked when the server went: leased, so they come again only when their ack wait ends.
        const inFlight = new Set<string>();
        let crashed = false;
        const loops = Array.from({ length: 4 }, async () => {
          while (!crashed) {
            const s = store!;
            const batch = await s.receive('jobs', 10, ACK_WAIT_MS).catch(() => []);
            if (batch.length === 0) continue;
            const ok = await s.settle('jobs', batch.map((m) => ({ id: m.id, leaseToken: m.leaseToken, action: 'ack' as const }))).catch(() => []);
            batch.forEach((m, i) => (ok[i] ? acked : inFlight).add(m.id));
          }
        });
        while (acked.size < 1000) await sleep(1);
        crashed = true;
        await own.crash();
        await Promise.all(loops);
        await store.close();
        await own.start();

        store = await openNatsQueueStore({ servers: own.url, prefix: 'lostacks' });
        const again: LeasedMessage[] = [];
        for (let batch = await store.receive('jobs', 100, ACK_WAIT_MS); batch.length > 0; batch = await store.receive('jobs', 100, ACK_WAIT_MS)) again.push(...batch);
        const twice = again.filter((m) => acked.has(m.id));
        assert.deepEqual(twice.map((m) => `${new TextDecoder().decode(m.body)} (attempt ${m.attempt})`), [], `${twice.length} of ${acked.size} acked messages came again`);
        assert.ok(again.length + acked.size + inFlight.size >= 3000, `every message neither acked nor in flight comes (${again.length} + ${acked.size} acked + ${inFlight.size} in flight)`);
        assert.equal((await store.receive('other', 10, ACK_WAIT_MS)).length, 1, "another queue's messages are untouched");
      } finally {
        await store?.close();
        await own.close();
      }
    });

    test('a keyed send that crashed before its key was final is stored once by its retry: consumed copy, restarted server, or never stored', async () => {
      const own = await NatsTestServer.start();
      const body = (t: string) => new TextEncoder().encode(t);
      // What a sender killed between its reservation and making it final leaves behind.
      const leavePending = async (key: string, id: string, text: string) => {
        const nc = await connect({ servers: own.url });
        try {
          const idem = await new Kvm(jetstream(nc)).open('crashk-idem');
          await idem.put(`jobs.${createHash('sha256').update(key).digest('hex')}`, JSON.stringify({ id, digest: contentDigest({ body: body(text) }), p: 1 }));
        } finally {
          await nc.close();
        }
      };
      const open = () => openNatsQueueStore({ servers: own.url, prefix: 'crashk' });
      let store: QueueStore | undefined;
      try {
        store = await open();
        await store.createQueue('jobs');
        const [first] = await store.send('jobs', [{ body: body('a'), idempotencyKey: 'K' }]);
        assert.equal(first?.duplicate, false);
        await store.close();
        await leavePending('K', first!.id, 'a');

        // Another process consumes the copy: it must make the key final before the copy leaves the stream.
        store = await open();
        const [m] = await store.receive('jobs', 1, 30_000);
        assert.equal(m?.id, first!.id);
        assert.deepEqual(await store.settle('jobs', [{ id: m!.id, leaseToken: m!.leaseToken, action: 'ack' }]), [true]);
        await store.close();
        // The restarted server rebuilds its dedupe window from stored copies only: it no longer knows "k.K".
        await sleep(1500);
        await own.restart();

        store = await open();
        assert.deepEqual(await store.send('jobs', [{ body: body('a'), idempotencyKey: 'K' }]), [{ id: first!.id, duplicate: true }]);
        assert.equal((await store.stats('jobs')).depth, 0, 'the retry stored no second copy');

        // Reserved, never stored: the retry stores it, under the reserved id.
        const reservedId = '01890a5d-ac96-774b-bcce-b302099a8057';
        await leavePending('L', reservedId, 'b');
        assert.deepEqual(await store.send('jobs', [{ body: body('b'), idempotencyKey: 'L' }]), [{ id: reservedId, duplicate: false }]);
        assert.deepEqual(await store.send('jobs', [{ body: body('b'), idempotencyKey: 'L' }]), [{ id: reservedId, duplicate: true }]);
        const got = await store.receive('jobs', 10, 30_000);
        assert.deepEqual(got.map((g) => [g.id, new TextDecoder().decode(g.body)]), [[reservedId, 'b']]);

        // A batch refused for a clash withdraws the reservations it made: that key is free afterwards.
        await assert.rejects(store.send('jobs', [{ body: body('c'), idempotencyKey: 'M' }, { body: body('other'), idempotencyKey: 'L' }]), { code: 'conflict' });
        const [m2] = await store.send('jobs', [{ body: body('c2'), idempotencyKey: 'M' }]);
        assert.equal(m2?.duplicate, false);
      } finally {
        await store?.close();
        await own.close();
      }
    });

    test('messages, dead letters and leases survive a kill -9 of nats-server', async () => {
      const own = await NatsTestServer.start();
      const body = (t: string) => new TextEncoder().encode(t);
      let store: QueueStore | undefined;
      try {
        store = await openNatsQueueStore({ servers: own.url, prefix: 'crash' });
        await store.createQueue('jobs');
        const sent = await store.send('jobs', Array.from({ length: 20 }, (_, i) => ({ body: body(`job ${i}`) })));
        const [poison] = await store.receive('jobs', 1, 30_000);
        assert.ok(poison);
        assert.deepEqual(await store.settle('jobs', [{ id: poison.id, leaseToken: poison.leaseToken, action: 'dead', reason: 'poison' }]), [true]);
        const [held] = await store.receive('jobs', 1, 30_000);
        assert.ok(held);
        // nats-server 2.9 writes consumer state (deliveries, acks) within ~100 ms; deliveries and acks younger
        // than that at a crash are forgotten and the messages come again (at least once). Past that window:
        await sleep(300);
        // Sends are written to the file before the server acknowledges them: these survive at once.
        const late = await store.send('jobs', Array.from({ length: 5 }, (_, i) => ({ body: body(`late ${i}`) })));

        await own.restart();

        // The same store, reconnected: the lease taken before the crash still settles. (A request written to
        // the dead socket before the client noticed would wait out its timeout; give the reconnect a moment.)
        await sleep(1000);
        const deadline = Date.now() + 10_000;
        for (;;) {
          try {
            assert.deepEqual(await store.settle('jobs', [{ id: held.id, leaseToken: held.leaseToken, action: 'retry', delayMs: 0, error: 'crash' }]), [true]);
            break;
          } catch (err) {
            if (Date.now() > deadline) throw err;
            await sleep(100);
          }
        }
        await store.close();
        store = await openNatsQueueStore({ servers: own.url, prefix: 'crash' });
        const st = await store.stats('jobs');
        assert.deepEqual([st.depth, st.ready, st.inFlight, st.deadLetters], [24, 24, 0, 1]);
        const got: LeasedMessage[] = [];
        for (;;) {
          const batch = await store.receive('jobs', 10, 30_000);
          if (batch.length === 0) break;
          got.push(...batch);
          assert.ok((await store.settle('jobs', batch.map((m) => ({ id: m.id, leaseToken: m.leaseToken, action: 'ack' as const })))).every(Boolean));
        }
        // Every acknowledged send, once; the retried one went to the back with its attempt and error.
        assert.deepEqual(got.map((m) => m.id), [...sent.slice(2), ...late, held].map((m) => m.id));
        assert.deepEqual([got.at(-1)?.attempt, got.at(-1)?.errors], [2, ['crash']]);
        assert.ok(got.slice(0, -1).every((m) => m.attempt === 1));
        assert.deepEqual((await store.listDeadLetters('jobs', { limit: 10 })).map((d) => d.id), [poison.id]);
      } finally {
        await store?.close();
        await own.close();
      }
    });
  });

  describe('the connection (flush.ts)', () => {
    test('what one turn queues leaves in one write (the client alone writes once per microtask); requests and close still work', async () => {
      const plain = await connect({ servers: server.url });
      const patched = await connect({ servers: server.url });
      try {
        assert.equal(flushOncePerTurn(patched), true);
        const received: Record<string, string[]> = { 'f.plain': [], 'f.patched': [] };
        const sub = plain.subscribe('f.>', { callback: (_e, m) => { received[m.subject]?.push(m.string()); } });
        await plain.flush();

        const plainWrites = countWrites(plain);
        await publishAcrossMicrotasks(plain, 'f.plain');
        assert.equal(plainWrites.n, 5, 'the client writes once per microtask (if it no longer does, this module may be unnecessary)');

        const patchedWrites = countWrites(patched);
        await publishAcrossMicrotasks(patched, 'f.patched');
        assert.equal(patchedWrites.n, 1);

        await patched.flush();
        await plain.flush();
        // In order per connection (the server may interleave two connections' messages).
        const all = ['m0', 'm1', 'm2', 'm3', 'm4'];
        assert.deepEqual(received, { 'f.plain': all, 'f.patched': all });

        plain.subscribe('echo', { callback: (_e, m) => { m.respond(`re:${m.string()}`); } });
        await plain.flush();
        assert.equal((await patched.request('echo', 'x', { timeout: 2000 })).string(), 're:x');
        sub.unsubscribe();
      } finally {
        await patched.close();
        await plain.close();
      }
    });
  });
}
