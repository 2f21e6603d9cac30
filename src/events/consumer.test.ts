/**
 * The queue consumer on a real SQLite queue store (catalogue 45, 46, 47 at the consumer level): heartbeats
 * keep a long invocation's lease; a consumer that stops heartbeating (a paused process) loses the message to
 * another consumer and its late completion is fenced; poison retries then dead-letters; expired messages
 * are dead-lettered unexecuted.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LeasedMessage, QueueStore } from '../store/contract.ts';
import { SqliteQueueStore } from '../store/sqlite/queues.ts';
import { idleWaitMs, QueueConsumer, type ConsumerSettings, type MessageVerdict } from './consumer.ts';

let dir: string;
let store: SqliteQueueStore;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'continuum-consumer-'));
  store = SqliteQueueStore.open(join(dir, 'queues.db'));
});
after(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

const enc = new TextEncoder();
const dec = new TextDecoder();

function settings(queue: string, over: Partial<ConsumerSettings> = {}): ConsumerSettings {
  return {
    queue,
    batchSize: 1,
    maxBatchWaitMs: 0,
    maxConcurrency: 1,
    leaseMs: 300,
    maxRetries: 2,
    retryBaseDelayMs: 10,
    retryMaxDelayMs: 20,
    maxAgeMs: 60_000,
    aheadMs: 0,
    ...over,
  };
}

const ackAll = (batch: LeasedMessage[]) => new Map<string, MessageVerdict>(batch.map((m) => [m.id, { action: 'ack', outcome: { state: 'succeeded', attempt: m.attempt, finishedAt: Date.now(), result: { status: 200, contentType: 'text/plain', body: enc.encode(`done by attempt ${m.attempt}`) } } }]));

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

test('heartbeats keep a lease three times longer than its base: no second execution meanwhile', async () => {
  await store.createQueue('long');
  const [sent] = await store.send('long', [{ body: enc.encode('slow'), track: true }]);
  const runs: number[] = [];
  const consumer = new QueueConsumer({
    store,
    settings: settings('long', { leaseMs: 300, maxConcurrency: 4 }),
    run: async (batch) => {
      runs.push(batch[0]!.attempt);
      await sleep(1000);
      return ackAll(batch);
    },
    pollMs: 20,
  });
  consumer.start();
  await until('the slow message to finish', async () => (await store.getMessage(sent!.id))?.state === 'succeeded');
  await consumer.stop();
  assert.deepEqual(runs, [1], 'one execution, never a concurrent duplicate');
});

test('aheadMs: a delayed message is leased before its time and held (onHold told when); the function starts at its due time, not before', async () => {
  await store.createQueue('ahead');
  const sentAt = Date.now();
  const [sent] = await store.send('ahead', [{ body: enc.encode('fire'), track: true, delayMs: 2000 }]);
  let startedAt = 0;
  const dueTimes: number[] = [];
  const holds: Array<{ dueAt: number; at: number }> = [];
  const consumer = new QueueConsumer({
    store,
    settings: settings('ahead', { aheadMs: 1500, leaseMs: 5000 }),
    run: async (batch) => {
      startedAt = Date.now();
      dueTimes.push(...batch.map((m) => m.dueAt));
      return ackAll(batch);
    },
    pollMs: 1000,
    onHold: (dueAt) => holds.push({ dueAt, at: Date.now() }),
  });
  consumer.start();
  // The receive (a store write) happens up to aheadMs before the message is due.
  await until('the message to be leased ahead', async () => (await store.getMessage(sent!.id))?.state === 'in_flight', 3000);
  const leasedAt = Date.now();
  assert.ok(leasedAt < sentAt + 2000, `leased before its time (${leasedAt - sentAt} ms after the send)`);
  assert.equal(startedAt, 0, 'not started while it is not due');
  await until('the message to run', async () => (await store.getMessage(sent!.id))?.state === 'succeeded');
  assert.ok(startedAt >= sentAt + 2000, `started at or after its due time (${startedAt - sentAt} ms after the send)`);
  assert.deepEqual(holds.map((h) => h.dueAt), dueTimes, 'told once, of the held batch\'s due time');
  assert.ok(holds[0]!.at < leasedAt + 100 && holds[0]!.at < holds[0]!.dueAt, 'told when the hold began, ahead of the due time');
  // A message that is due when taken is not held, and nobody is told.
  await store.send('ahead', [{ body: enc.encode('now'), track: true }]);
  await until('the visible message to run', () => dueTimes.length === 2);
  await consumer.stop();
  assert.equal(holds.length, 1, 'no hold for a message due now');
});

test('a consumer that stops heartbeating loses the message; its late completion is fenced and the current attempt’s result stands', async () => {
  await store.createQueue('fenced');
  const [sent] = await store.send('fenced', [{ body: enc.encode('job'), track: true }]);
  // Consumer A is "paused" (SIGSTOP): its heartbeats never reach the store, and it finishes late.
  const pausedStore = new Proxy<QueueStore>(store, {
    get(target, prop) {
      if (prop === 'extend') return async () => true;
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  let releaseA!: () => void;
  const aStarted = new Promise<void>((resolve) => {
    const a = new QueueConsumer({
      store: pausedStore,
      settings: settings('fenced', { leaseMs: 200 }),
      run: async (batch) => {
        resolve();
        await new Promise<void>((r) => (releaseA = r));
        return ackAll(batch);
      },
      pollMs: 20,
    });
    a.start();
    after(() => a.stop(0));
  });
  await aStarted;
  const b = new QueueConsumer({ store, settings: settings('fenced', { leaseMs: 5000 }), run: async (batch) => ackAll(batch), pollMs: 20 });
  b.start();
  await until('consumer B to complete the redelivered message', async () => (await store.getMessage(sent!.id))?.state === 'succeeded');
  await b.stop();
  releaseA();
  await sleep(200);
  const status = await store.getMessage(sent!.id);
  assert.equal(status?.outcome?.attempt, 2);
  assert.equal(dec.decode(status!.outcome!.result!.body), 'done by attempt 2', 'the stale attempt could not overwrite the result');
});

test('poison: bounded retries with backoff, then dead letters with every error; other messages flow meanwhile', async () => {
  await store.createQueue('mixed');
  await store.send('mixed', [{ body: enc.encode('bad') }, ...Array.from({ length: 20 }, (_, i) => ({ body: enc.encode(`good${i}`) }))]);
  const good = new Set<string>();
  const consumer = new QueueConsumer({
    store,
    settings: settings('mixed', { batchSize: 5, maxConcurrency: 2 }),
    run: async (batch) =>
      new Map(
        batch.map((m): [string, MessageVerdict] => {
          const body = dec.decode(m.body);
          if (body === 'bad') return [m.id, { action: 'retry', delayMs: null, error: `boom ${m.attempt}` }];
          good.add(body);
          return [m.id, { action: 'ack' }];
        }),
      ),
    pollMs: 20,
  });
  consumer.start();
  await until('the poison message to be dead-lettered', async () => (await store.stats('mixed')).deadLetters === 1);
  await consumer.stop();
  assert.equal(good.size, 20);
  const [dead] = await store.listDeadLetters('mixed', { limit: 10 });
  assert.equal(dead!.attempts, 3);
  assert.equal(dead!.reason, 'max_retries');
  assert.deepEqual(dead!.errors, ['boom 1', 'boom 2', 'boom 3']);
});

test('max age: messages older than maxAgeMs go to the dead letters as expired without running', async () => {
  await store.createQueue('old');
  await store.send('old', [{ body: enc.encode('stale') }]);
  await sleep(120);
  let ran = 0;
  const consumer = new QueueConsumer({ store, settings: settings('old', { maxAgeMs: 100 }), run: async (batch) => ((ran += batch.length), ackAll(batch)), pollMs: 20 });
  consumer.start();
  await until('the stale message to expire', async () => (await store.stats('old')).deadLetters === 1);
  await consumer.stop();
  assert.equal(ran, 0);
  assert.equal((await store.listDeadLetters('old', { limit: 1 }))[0]!.reason, 'expired');
});

test('stop waits for batches in flight; they settle, so nothing is delivered twice', async () => {
  await store.createQueue('drain');
  await store.send('drain', Array.from({ length: 10 }, (_, i) => ({ body: enc.encode(`d${i}`) })));
  const seen: string[] = [];
  const consumer = new QueueConsumer({
    store,
    settings: settings('drain', { batchSize: 5, maxConcurrency: 2, leaseMs: 10_000 }),
    run: async (batch) => {
      await sleep(200);
      for (const m of batch) seen.push(dec.decode(m.body));
      return ackAll(batch);
    },
    pollMs: 20,
  });
  consumer.start();
  await sleep(50);
  await consumer.stop(5000);
  const stats = await store.stats('drain');
  assert.equal(stats.inFlight, 0, 'nothing left leased');
  assert.equal(stats.depth + seen.length, 10, 'every message either ran once or is still queued');
  assert.equal(new Set(seen).size, seen.length);
});

test('idle wait: until the next delayed message is due (less the lead), else the poll interval spread over ±25 %', () => {
  const cases: Array<[pollMs: number, next: number | null, aheadMs: number, random: number, expected: number]> = [
    [500, null, 0, 0, 375],
    [500, null, 0, 0.5, 500],
    [500, null, 0, 1, 625],
    [500, null, 500, 0.5, 500],
    [500, 100, 0, 0.5, 101],
    [500, 100, 0, 0, 101], // due before the shortest poll
    [500, 450, 0, 0, 375], // due after the poll: poll
    [500, 300, 500, 0.5, 1], // within the lead: ask again at once
    [500, 0, 0, 0.5, 1],
    [500, null, 0, 7, 625], // random is clamped
  ];
  for (const [pollMs, next, aheadMs, random, expected] of cases) assert.equal(idleWaitMs(pollMs, next, aheadMs, random), expected, JSON.stringify({ pollMs, next, aheadMs, random }));
});

/** The test store, counting receives; each receive first waits `receiveDelayMs`, and `onReceive` runs as one starts. */
function countingStore(receiveDelayMs = 0, onReceive?: () => void): { view: QueueStore; readonly receives: number } {
  let receives = 0;
  const view = new Proxy(store, {
    get(target, key) {
      if (key === 'receive') {
        return async (...args: Parameters<QueueStore['receive']>) => {
          receives++;
          onReceive?.();
          await sleep(receiveDelayMs);
          return target.receive(...args);
        };
      }
      const value = Reflect.get(target, key, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  }) as QueueStore;
  return {
    view,
    get receives() {
      return receives;
    },
  };
}

/** Run a consumer of `queue` on `view` for `ms`, acking what it gets; `started` is given it once it runs. */
async function runFor(queue: string, view: QueueStore, ms: number, started?: (consumer: QueueConsumer) => void): Promise<void> {
  const consumer = new QueueConsumer({ store: view, settings: settings(queue), run: async (batch) => ackAll(batch) });
  consumer.start();
  started?.(consumer);
  await sleep(ms);
  await consumer.stop();
}

test('an idle consumer polls only as a safety net: after its first receive, it waits to be told', async () => {
  await store.createQueue('idle-polls');
  const counted = countingStore();
  await runFor('idle-polls', counted.view, 1500);
  assert.equal(counted.receives, 1, 'the first receive, then only a notify or the safety-net poll (3.75-6.25 s)');
});

test('a notify that comes during a receive is kept: the consumer asks again instead of sleeping', async () => {
  await store.createQueue('notify-during-receive');
  let consumer: QueueConsumer | undefined;
  // The first receive is told about a message stored while it runs (it may have missed it).
  const counted = countingStore(100, () => {
    if (counted.receives === 1) setTimeout(() => consumer!.notify(), 20);
  });
  await runFor('notify-during-receive', counted.view, 600, (c) => (consumer = c));
  assert.equal(counted.receives, 2, 'the first receive, and one more at once for the notify it may have missed');
});

test('a batch short of its size took all there was: the consumer waits to be told instead of asking again', async () => {
  await store.createQueue('partial');
  await store.send('partial', ['a', 'b', 'c'].map((t) => ({ body: new TextEncoder().encode(t) })));
  const counted = countingStore();
  let ran = 0;
  const consumer = new QueueConsumer({
    store: counted.view,
    // A lease longer than the test: a leased message's lease end would be a time to look again.
    settings: settings('partial', { batchSize: 10, maxConcurrency: 4, leaseMs: 5000 }),
    run: async (batch) => ((ran += batch.length), ackAll(batch)),
  });
  consumer.start();
  try {
    await sleep(500);
    assert.equal(ran, 3);
    assert.equal(counted.receives, 1, 'one receive for the three messages, none after it');
    await store.send('partial', [{ body: new TextEncoder().encode('d') }]); // the store tells the consumer
    await sleep(300);
    assert.equal(ran, 4, 'told, it receives again');
    assert.equal(counted.receives, 2);
  } finally {
    await consumer.stop();
  }
});
