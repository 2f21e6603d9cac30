/**
 * The QueueStore contract as tests (ARCHITECTURE §2, §6): every backend runs these against a fresh, empty
 * store. A backend test file calls, for example:
 *
 *   runQueueStoreContract('sqlite', async () => { const q = await openIt(); return { queues: q, close: () => q.close() }; });
 *
 * Choices the contract leaves open, fixed here so that backends agree:
 * - every queue-scoped read or write on a missing queue (send, receive, stats, purge, nextVisibleInMs,
 *   listDeadLetters, redrive, purgeDeadLetters) throws `not_found`; receive does not answer [].
 * - the suite checks that a token is stale after a redelivery or a settlement; whether it is still current
 *   between its lease running out and the next receive is the backend's choice.
 * - nextVisibleInMs is checked only while no message is in flight (whether lease ends count is open).
 * - leases are real time: short leases (LEASE_MS) and real waits, so a backend needs no fake clock for them.
 *   `clock` (optional) moves the backend's notion of now forward, for windows too long to wait out.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { EVENT_DEFAULTS } from '../core/defaults.ts';
import { ContinuumError, type ErrorCode } from '../core/errors.ts';
import type { LeasedMessage, MessageOutcome, NewMessage, QueueStore, Settlement } from './contract.ts';

export interface QueueStoreHandle {
  queues: QueueStore;
  close(): Promise<void>;
  /** Close the store and open it again on the same backing data; `close` then closes the new one. */
  reopen?: () => Promise<QueueStore>;
  /** Move the store's clock forward (dedupe window, outcome retention); tests that need it skip without. */
  clock?: { advance(ms: number): void };
}

export type QueueStoreOpener = () => Promise<QueueStoreHandle>;

/** Short enough to wait out, long enough that a loaded machine finishes the next call within it. */
const LEASE_MS = 300;
const PAST_LEASE_MS = LEASE_MS + 300;
const LONG_LEASE_MS = 30_000;
const Q = EVENT_DEFAULTS.queue;

const enc = new TextEncoder();
const dec = new TextDecoder();
const bytes = (s: string) => enc.encode(s);
const text = (b: Uint8Array) => dec.decode(b);

async function rejectsWith(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ContinuumError, `expected a ContinuumError, got ${String(err)}`);
    assert.equal(err.code, code);
    return true;
  });
}

const ack = (m: LeasedMessage, outcome?: MessageOutcome): Settlement => ({ id: m.id, leaseToken: m.leaseToken, action: 'ack', ...(outcome ? { outcome } : {}) });
const retry = (m: LeasedMessage, delayMs: number, error: string): Settlement => ({ id: m.id, leaseToken: m.leaseToken, action: 'retry', delayMs, error });
const dead = (m: LeasedMessage, reason: string, error?: string, outcome?: MessageOutcome): Settlement => ({
  id: m.id,
  leaseToken: m.leaseToken,
  action: 'dead',
  reason,
  ...(error !== undefined ? { error } : {}),
  ...(outcome ? { outcome } : {}),
});

async function sendTexts(s: QueueStore, queue: string, texts: string[], over: Partial<NewMessage> = {}): Promise<string[]> {
  const sent = await s.send(queue, texts.map((t) => ({ body: bytes(t), ...over })));
  return sent.map((m) => m.id);
}

/** Receive until the queue answers nothing (receive may legitimately return fewer than `max`). */
async function drain(s: QueueStore, queue: string, leaseMs = LONG_LEASE_MS): Promise<LeasedMessage[]> {
  const out: LeasedMessage[] = [];
  for (;;) {
    const got = await s.receive(queue, 10, leaseMs);
    if (got.length === 0) return out;
    out.push(...got);
  }
}

export function runQueueStoreContract(name: string, open: QueueStoreOpener): void {
  describe(`QueueStore contract: ${name}`, () => {
    async function withStore(fn: (s: QueueStore, h: QueueStoreHandle) => Promise<void>): Promise<void> {
      const h = await open();
      try {
        await fn(h.queues, h);
      } finally {
        await h.close();
      }
    }

    test('create, get, list and delete queues', () =>
      withStore(async (s) => {
        assert.deepEqual(await s.listQueues(), []);
        assert.equal(await s.getQueue('orders'), null);
        const before = Date.now();
        const created = await s.createQueue('orders');
        assert.equal(created.name, 'orders');
        assert.ok(Date.parse(created.createdAt) >= before - 1000, 'createdAt is an ISO time of creation');
        await s.createQueue('audit');
        assert.deepEqual(await s.getQueue('orders'), created);
        assert.deepEqual((await s.listQueues()).map((q) => q.name).sort(), ['audit', 'orders']);
        assert.equal(await s.deleteQueue('orders'), true);
        assert.equal(await s.deleteQueue('orders'), false);
        assert.equal(await s.getQueue('orders'), null);
        assert.deepEqual((await s.listQueues()).map((q) => q.name), ['audit']);
      }));

    test('duplicate create is a conflict; bad names are refused; internal names are accepted', () =>
      withStore(async (s) => {
        await s.createQueue('dup');
        await rejectsWith(s.createQueue('dup'), 'conflict');
        for (const bad of ['Bad', '1x', '', '-x', 'a'.repeat(64), 'a.b', 'a/b', '_', '_Async', '__x']) await rejectsWith(s.createQueue(bad), 'bad_name');
        const internal = await s.createQueue('_async-foo');
        assert.equal(internal.name, '_async-foo');
        assert.equal((await s.getQueue('_async-foo'))?.name, '_async-foo');
        await s.send('_async-foo', [{ body: bytes('x') }]);
        assert.equal((await s.receive('_async-foo', 1, LONG_LEASE_MS)).length, 1);
        assert.deepEqual((await s.listQueues()).map((q) => q.name).sort(), ['_async-foo', 'dup']);
      }));

    test('operations on a missing queue are not_found (receive throws rather than answering [])', () =>
      withStore(async (s) => {
        await rejectsWith(s.send('ghost', [{ body: bytes('x') }]), 'not_found');
        await rejectsWith(s.receive('ghost', 1, LEASE_MS), 'not_found');
        await rejectsWith(s.stats('ghost'), 'not_found');
        await rejectsWith(s.purge('ghost'), 'not_found');
        await rejectsWith(s.nextVisibleInMs('ghost'), 'not_found');
        await rejectsWith(s.listDeadLetters('ghost', { limit: 10 }), 'not_found');
        await rejectsWith(s.redrive('ghost'), 'not_found');
        await rejectsWith(s.purgeDeadLetters('ghost'), 'not_found');
        assert.deepEqual(await s.listQueues(), [], 'nothing was created on the way');
      }));

    test('send then receive: oldest first, with every field, at most max, without blocking', () =>
      withStore(async (s) => {
        await s.createQueue('q');
        const before = Date.now();
        const sent = await s.send('q', [
          { body: bytes('first'), contentType: 'application/json', attributes: { type: 'com.example.a', source: '/x' }, idempotencyKey: 'k-1' },
          { body: bytes('second') },
          { body: new Uint8Array([0, 255, 1, 254]) },
        ]);
        assert.equal(sent.length, 3);
        assert.ok(sent.every((m) => typeof m.id === 'string' && m.id.length > 0 && m.duplicate === false));
        assert.equal(new Set(sent.map((m) => m.id)).size, 3, 'ids are unique');
        await s.send('q', [{ body: bytes('fourth') }]);

        const t0 = performance.now();
        const two = await s.receive('q', 2, LONG_LEASE_MS);
        assert.deepEqual(two.map((m) => text(m.body)), ['first', 'second'], 'oldest first, at most max');
        const [first] = two;
        assert.ok(first);
        assert.equal(first.id, sent[0]?.id);
        assert.equal(first.queue, 'q');
        assert.equal(first.contentType, 'application/json');
        assert.deepEqual(first.attributes, { type: 'com.example.a', source: '/x' });
        assert.equal(first.idempotencyKey, 'k-1');
        assert.ok(first.enqueuedAt >= before - 1000 && first.enqueuedAt <= Date.now() + 1000, 'enqueuedAt is epoch ms of the send');
        assert.equal(first.attempt, 1);
        assert.deepEqual(first.errors, []);
        assert.equal(typeof first.leaseToken, 'string');
        assert.ok(first.leaseToken.length > 0);
        assert.ok(first.leaseUntil >= Date.now() + LONG_LEASE_MS - 5000 && first.leaseUntil <= Date.now() + LONG_LEASE_MS + 1000);
        const second = two[1];
        assert.equal(second?.contentType, null);
        assert.deepEqual(second?.attributes, {});
        assert.equal(second?.idempotencyKey, null);

        const rest = await s.receive('q', 10, LONG_LEASE_MS);
        assert.deepEqual(rest.map((m) => m.id), [sent[2]?.id, rest[1]?.id]);
        assert.deepEqual(rest[0]?.body, new Uint8Array([0, 255, 1, 254]), 'bodies are bytes, unchanged');
        assert.equal(text(rest[1]?.body ?? new Uint8Array()), 'fourth');

        assert.deepEqual(await s.receive('q', 10, LONG_LEASE_MS), [], 'everything is leased');
        assert.ok(performance.now() - t0 < 2000, 'receive on an empty queue answers at once');
      }));

    test('a leased message is invisible until the lease runs out, then returns with attempt 2 and a new token', () =>
      withStore(async (s) => {
        await s.createQueue('lease');
        const [id] = await sendTexts(s, 'lease', ['m']);
        const [m1] = await s.receive('lease', 10, LEASE_MS);
        assert.equal(m1?.id, id);
        assert.equal(m1?.attempt, 1);
        assert.deepEqual(await s.receive('lease', 10, LEASE_MS), [], 'a second receive while leased gets nothing');
        await sleep(PAST_LEASE_MS);
        const [m2] = await s.receive('lease', 10, LONG_LEASE_MS);
        assert.equal(m2?.id, id);
        assert.equal(m2?.attempt, 2);
        assert.notEqual(m2?.leaseToken, m1?.leaseToken);
        assert.equal(text(m2?.body ?? new Uint8Array()), 'm');
        assert.deepEqual(await s.receive('lease', 10, LEASE_MS), []);
      }));

    test('extend pushes the lease out; a finished message cannot be extended', () =>
      withStore(async (s) => {
        await s.createQueue('ext');
        await sendTexts(s, 'ext', ['m']);
        const [m] = await s.receive('ext', 1, LEASE_MS);
        assert.ok(m);
        assert.equal(await s.extend('ext', m.id, m.leaseToken, 5_000), true);
        await sleep(PAST_LEASE_MS);
        assert.deepEqual(await s.receive('ext', 1, LEASE_MS), [], 'the extended lease still holds');
        assert.equal(await s.extend('ext', m.id, 'not-a-token', 5_000), false);
        assert.deepEqual(await s.settle('ext', [ack(m)]), [true]);
        assert.equal(await s.extend('ext', m.id, m.leaseToken, 5_000), false, 'acked: gone');
        assert.equal((await s.stats('ext')).depth, 0);
      }));

    test('fencing: after a redelivery the old token cannot ack, retry, dead-letter or extend; the current one can', () =>
      withStore(async (s) => {
        await s.createQueue('fence');
        const [id, otherId] = await sendTexts(s, 'fence', ['m', 'other']);
        const [old] = await s.receive('fence', 1, LEASE_MS);
        assert.equal(old?.id, id);
        await sleep(PAST_LEASE_MS);
        const [cur] = await s.receive('fence', 1, LONG_LEASE_MS);
        assert.ok(old && cur);
        assert.equal(cur.id, id);
        assert.equal(cur.attempt, 2);

        assert.deepEqual(await s.settle('fence', [ack(old), retry(old, 0, 'stale'), dead(old, 'stale')]), [false, false, false]);
        assert.equal(await s.extend('fence', old.id, old.leaseToken, LONG_LEASE_MS), false);
        assert.deepEqual(await s.settle('fence', [{ ...ack(cur), id: otherId ?? '' }]), [false], 'a token is bound to its message');
        assert.deepEqual(await s.settle('fence', [{ ...ack(cur), id: 'no-such-id' }]), [false]);
        const st = await s.stats('fence');
        assert.deepEqual([st.depth, st.inFlight, st.ready, st.deadLetters], [2, 1, 1, 0], 'stale settlements changed nothing');
        assert.deepEqual(await s.receive('fence', 10, LONG_LEASE_MS).then((ms) => ms.map((m) => m.id)), [otherId], 'still leased to the current holder');

        assert.equal(await s.extend('fence', cur.id, cur.leaseToken, LONG_LEASE_MS), true);
        assert.deepEqual(await s.settle('fence', [ack(old), ack(cur)]), [false, true], 'one boolean per settlement, in order');
        assert.deepEqual(await s.settle('fence', [ack(cur)]), [false], 'a token settles once');
        assert.equal((await s.stats('fence')).depth, 1);
      }));

    test('retry with a delay: invisible until then, then redelivered with attempt + 1 and the error', () =>
      withStore(async (s) => {
        await s.createQueue('retry');
        assert.equal(await s.nextVisibleInMs('retry'), null);
        const [id] = await sendTexts(s, 'retry', ['m']);
        const [m1] = await s.receive('retry', 1, LONG_LEASE_MS);
        assert.ok(m1);
        assert.deepEqual(await s.settle('retry', [retry(m1, 400, 'boom: first')]), [true]);
        assert.deepEqual(await s.receive('retry', 1, LONG_LEASE_MS), [], 'invisible during the delay');
        const st = await s.stats('retry');
        assert.deepEqual([st.depth, st.ready, st.delayed, st.inFlight], [1, 0, 1, 0]);
        const wait = await s.nextVisibleInMs('retry');
        assert.ok(wait !== null && wait > 0 && wait <= 400, `nextVisibleInMs reports the wait (${wait})`);
        await sleep(wait + 150);
        const [m2] = await s.receive('retry', 1, LONG_LEASE_MS);
        assert.equal(m2?.id, id);
        assert.equal(m2?.attempt, 2);
        assert.deepEqual(m2?.errors, ['boom: first']);
        assert.notEqual(m2?.leaseToken, m1.leaseToken);
        assert.deepEqual(await s.settle('retry', [retry(m1, 0, 'stale')]), [false], 'the token of the retried attempt is spent');

        assert.ok(m2);
        assert.deepEqual(await s.settle('retry', [retry(m2, 0, 'boom: second')]), [true]);
        const [m3] = await s.receive('retry', 1, LONG_LEASE_MS);
        assert.equal(m3?.attempt, 3, 'a zero delay makes it visible at once');
        assert.deepEqual(m3?.errors, ['boom: first', 'boom: second'], 'oldest first');
      }));

    test(`errors are bounded to ${Q.maxErrorsKept}, newest kept`, () =>
      withStore(async (s) => {
        await s.createQueue('errs');
        await sendTexts(s, 'errs', ['m']);
        const total = Q.maxErrorsKept + 3;
        let m: LeasedMessage | undefined;
        for (let i = 1; i <= total; i++) {
          [m] = await s.receive('errs', 1, LONG_LEASE_MS);
          assert.ok(m);
          assert.equal(m.attempt, i);
          assert.deepEqual(await s.settle('errs', [retry(m, 0, `e${i}`)]), [true]);
        }
        [m] = await s.receive('errs', 1, LONG_LEASE_MS);
        assert.equal(m?.attempt, total + 1);
        const expected = Array.from({ length: Q.maxErrorsKept }, (_, i) => `e${total - Q.maxErrorsKept + 1 + i}`);
        assert.deepEqual(m?.errors, expected);
      }));

    test('a settled batch is gone when settle resolves: stats right after count none of it', () =>
      withStore(async (s) => {
        await s.createQueue('gone');
        await sendTexts(s, 'gone', Array.from({ length: 60 }, (_, i) => `m${i}`));
        const got = await s.receive('gone', 60, LONG_LEASE_MS);
        assert.equal(got.length, 60);
        assert.ok((await s.settle('gone', got.map((m) => ack(m)))).every(Boolean));
        assert.deepEqual(await s.stats('gone'), { depth: 0, ready: 0, delayed: 0, inFlight: 0, oldestAgeMs: 0, deadLetters: 0 });
      }));

    test('delayed send, and stats at each stage', () =>
      withStore(async (s) => {
        await s.createQueue('st');
        assert.deepEqual(await s.stats('st'), { depth: 0, ready: 0, delayed: 0, inFlight: 0, oldestAgeMs: 0, deadLetters: 0 });
        await sendTexts(s, 'st', ['r1', 'r2']);
        const [lateId] = await sendTexts(s, 'st', ['late'], { delayMs: 60_000 });
        await sleep(30);
        let st = await s.stats('st');
        assert.deepEqual([st.depth, st.ready, st.delayed, st.inFlight, st.deadLetters], [3, 2, 1, 0, 0]);
        assert.ok(st.oldestAgeMs >= 20 && st.oldestAgeMs < 60_000, `oldestAgeMs ${st.oldestAgeMs}`);
        const wait = await s.nextVisibleInMs('st');
        assert.ok(wait !== null && wait > 50_000 && wait <= 60_000, `nextVisibleInMs ${wait}`);

        const got = await drain(s, 'st');
        assert.deepEqual(got.map((m) => text(m.body)), ['r1', 'r2'], 'the delayed message is not handed out early');
        st = await s.stats('st');
        assert.deepEqual([st.depth, st.ready, st.delayed, st.inFlight], [3, 0, 1, 2]);

        const [r1, r2] = got;
        assert.ok(r1 && r2);
        assert.deepEqual(await s.settle('st', [ack(r1), dead(r2, 'poison')]), [true, true]);
        st = await s.stats('st');
        assert.deepEqual([st.depth, st.ready, st.delayed, st.inFlight, st.deadLetters], [1, 0, 1, 0, 1]);
        assert.ok(st.oldestAgeMs >= 20, 'the delayed message is still unfinished and counts for age');
        assert.equal(await s.purge('st'), 1);
        st = await s.stats('st');
        assert.deepEqual(st, { depth: 0, ready: 0, delayed: 0, inFlight: 0, oldestAgeMs: 0, deadLetters: 1 });
        assert.equal(await s.getMessage(lateId ?? ''), null, 'untracked');
      }));

    test('a short send delay becomes visible when it passes', () =>
      withStore(async (s) => {
        await s.createQueue('soon');
        const [id] = await sendTexts(s, 'soon', ['soon'], { delayMs: 300 });
        assert.deepEqual(await s.receive('soon', 1, LONG_LEASE_MS), []);
        await sleep(450);
        const [m] = await s.receive('soon', 1, LONG_LEASE_MS);
        assert.equal(m?.id, id);
        assert.equal(m?.attempt, 1, 'waiting out a delay is not an attempt');
        assert.deepEqual(m?.errors, []);
      }));

    test('receive ahead: a message due within aheadMs is leased early with its due time; the lease runs from then', () =>
      withStore(async (s) => {
        await s.createQueue('ahead');
        const sentAt = Date.now();
        const [soonId] = await sendTexts(s, 'ahead', ['soon'], { delayMs: 400 });
        await sendTexts(s, 'ahead', ['later'], { delayMs: 60_000 });
        const got = await s.receive('ahead', 5, LEASE_MS, 1000);
        const after = Date.now();
        assert.deepEqual(got.map((m) => text(m.body)), ['soon'], 'only what is due within aheadMs');
        const [m] = got;
        assert.equal(m?.id, soonId);
        assert.equal(m?.attempt, 1);
        assert.ok(m && m.dueAt >= sentAt + 400 - 5 && m.dueAt <= after + 400 + 5, `due at its delay (dueAt ${m?.dueAt}, sent ${sentAt})`);
        assert.ok(m && m.leaseUntil >= m.dueAt + LEASE_MS - 5, 'the lease counts from the due time');
        // Past where a lease from the receive would have ended, still leased: nobody else gets it.
        await sleep(LEASE_MS + 150);
        assert.deepEqual(await s.receive('ahead', 5, LEASE_MS, 1000), [], 'held by the early lease');
        assert.deepEqual(await s.settle('ahead', [ack(m!)]), [true]);
        await sendTexts(s, 'ahead', ['soon2'], { delayMs: 400 });
        assert.deepEqual(await s.receive('ahead', 5, LEASE_MS), [], 'not without aheadMs');
        await assert.rejects(s.receive('ahead', 1, LEASE_MS, -1), { code: 'bad_request' });
        await assert.rejects(s.receive('ahead', 1, LEASE_MS, Q.maxReceiveAheadMs + 1), { code: 'bad_request' });
        const [due] = await sendTexts(s, 'ahead', ['now']);
        const [n] = await s.receive('ahead', 1, LEASE_MS);
        assert.equal(n?.id, due);
        assert.ok(n && n.dueAt <= Date.now(), 'a message already due is due at once');
      }));

    test('idempotency keys: a repeat returns the first id and stores nothing; another body conflicts; keys are per queue', () =>
      withStore(async (s) => {
        await s.createQueue('idem');
        await s.createQueue('idem2');
        const msg = { body: bytes('pay 10'), idempotencyKey: 'order-1', attributes: { a: '1' } };
        const [first] = await s.send('idem', [msg]);
        assert.equal(first?.duplicate, false);
        const [again] = await s.send('idem', [{ ...msg, body: bytes('pay 10') }]);
        assert.deepEqual(again, { id: first?.id, duplicate: true });
        assert.equal((await s.stats('idem')).depth, 1, 'nothing new stored');
        await rejectsWith(s.send('idem', [{ ...msg, body: bytes('pay 20') }]), 'conflict');
        assert.equal((await s.stats('idem')).depth, 1);

        const [elsewhere] = await s.send('idem2', [msg]);
        assert.equal(elsewhere?.duplicate, false, 'keys are per queue');
        assert.notEqual(elsewhere?.id, first?.id);

        // Still a duplicate after the first one finished (within the dedupe window).
        const [m] = await s.receive('idem', 1, LONG_LEASE_MS);
        assert.ok(m);
        assert.deepEqual(await s.settle('idem', [ack(m)]), [true]);
        const [late] = await s.send('idem', [msg]);
        assert.deepEqual(late, { id: first?.id, duplicate: true });
        assert.equal((await s.stats('idem')).depth, 0);
        assert.deepEqual(await s.receive('idem', 1, LONG_LEASE_MS), []);

        // A mixed batch: the repeat is reported as such, the new message is stored.
        const mixed = await s.send('idem', [msg, { body: bytes('new'), idempotencyKey: 'order-2' }]);
        assert.deepEqual(mixed.map((x) => x.duplicate), [true, false]);
        assert.equal(mixed[0]?.id, first?.id);
        assert.equal((await s.stats('idem')).depth, 1);
      }));

    test('concurrent sends with one idempotency key store one message', () =>
      withStore(async (s) => {
        await s.createQueue('race');
        const msg = { body: bytes('once'), idempotencyKey: 'same' };
        const results = (await Promise.all(Array.from({ length: 8 }, () => s.send('race', [msg])))).flat();
        assert.equal(new Set(results.map((r) => r.id)).size, 1, 'one id for all');
        assert.equal(results.filter((r) => !r.duplicate).length, 1, 'exactly one send stored it');
        assert.equal((await s.stats('race')).depth, 1);
      }));

    test('the dedupe window ends (needs a clock)', async (t) => {
      const h = await open();
      try {
        if (!h.clock) return t.skip('the opener provides no clock');
        const s = h.queues;
        await s.createQueue('win');
        const [a] = await s.send('win', [{ body: bytes('x'), idempotencyKey: 'k' }]);
        h.clock.advance(Q.dedupeWindowMs + 60_000);
        const [b] = await s.send('win', [{ body: bytes('y'), idempotencyKey: 'k' }]);
        assert.equal(b?.duplicate, false);
        assert.notEqual(b?.id, a?.id);
      } finally {
        await h.close();
      }
    });

    test('a send batch is all or nothing', () =>
      withStore(async (s) => {
        await s.createQueue('batch');
        await rejectsWith(s.send('batch', [{ body: bytes('ok') }, { body: new Uint8Array(Q.maxMessageBytes + 1) }]), 'payload_too_large');
        const tooMany = Array.from({ length: Q.maxSendBatch + 1 }, (_, i) => ({ body: bytes(`m${i}`) }));
        await rejectsWith(s.send('batch', tooMany), 'bad_request');
        await s.send('batch', [{ body: bytes('keyed'), idempotencyKey: 'k' }]);
        await rejectsWith(s.send('batch', [{ body: bytes('fresh') }, { body: bytes('other body'), idempotencyKey: 'k' }]), 'conflict');
        assert.equal((await s.stats('batch')).depth, 1, 'no refused batch stored anything');
        assert.deepEqual((await drain(s, 'batch')).map((m) => text(m.body)), ['keyed']);
        // A refused batch withdraws the keys it reserved: they are free again.
        await s.createQueue('batch-keys');
        await s.send('batch-keys', [{ body: bytes('keyed'), idempotencyKey: 'k' }]);
        await rejectsWith(s.send('batch-keys', [{ body: bytes('new'), idempotencyKey: 'k2' }, { body: bytes('other body'), idempotencyKey: 'k' }]), 'conflict');
        const [again] = await s.send('batch-keys', [{ body: bytes('new'), idempotencyKey: 'k2' }]);
        assert.equal(again?.duplicate, false);
        assert.deepEqual((await drain(s, 'batch-keys')).map((m) => text(m.body)), ['keyed', 'new']);

        const full = await s.send('batch', tooMany.slice(1));
        assert.equal(full.length, Q.maxSendBatch);
        const [big] = await s.send('batch', [{ body: new Uint8Array(Q.maxMessageBytes).fill(7) }]);
        assert.equal((await s.stats('batch')).depth, Q.maxSendBatch + 2);
        const all = await drain(s, 'batch');
        assert.equal(all.length, Q.maxSendBatch + 1);
        const bigMsg = all.find((m) => m.id === big?.id);
        assert.equal(bigMsg?.body.byteLength, Q.maxMessageBytes, 'a message of exactly the limit is accepted whole');
        assert.ok(bigMsg?.body.every((b) => b === 7));
      }));

    test('dead letters: reason and errors, paged oldest first, redrive, purge', () =>
      withStore(async (s) => {
        await s.createQueue('dlq');
        const ids = await sendTexts(s, 'dlq', ['d0', 'd1', 'd2'], { contentType: 'text/plain', attributes: { k: 'v' } });
        let got = await drain(s, 'dlq');
        assert.equal(got.length, 3);
        assert.deepEqual(await s.settle('dlq', [retry(got[0]!, 0, 'e1')]), [true]);
        const [again] = await s.receive('dlq', 1, LONG_LEASE_MS);
        assert.equal(again?.id, ids[0]);
        const before = Date.now();
        assert.deepEqual(await s.settle('dlq', [dead(again!, 'max_retries: 1', 'e2')]), [true]);
        assert.deepEqual(await s.settle('dlq', [dead(got[1]!, 'expired')]), [true]);
        assert.deepEqual(await s.settle('dlq', [dead(got[2]!, 'poison', 'bad json')]), [true]);
        assert.deepEqual(await s.receive('dlq', 10, LONG_LEASE_MS), [], 'dead letters are not delivered');
        const st = await s.stats('dlq');
        assert.deepEqual([st.depth, st.deadLetters], [0, 3]);

        const page1 = await s.listDeadLetters('dlq', { limit: 2 });
        assert.deepEqual(page1.map((d) => d.id), [ids[0], ids[1]]);
        const [d0, d1] = page1;
        assert.ok(d0 && d1);
        assert.equal(text(d0.body), 'd0');
        assert.equal(d0.contentType, 'text/plain');
        assert.deepEqual(d0.attributes, { k: 'v' });
        assert.equal(d0.idempotencyKey, null);
        assert.equal(d0.attempts, 2);
        assert.equal(d0.reason, 'max_retries: 1');
        assert.deepEqual(d0.errors, ['e1', 'e2'], 'earlier errors, then the dead-letter error');
        assert.ok(d0.deadAt >= before - 1000 && d0.deadAt >= d0.enqueuedAt);
        assert.equal(d1.attempts, 1);
        assert.equal(d1.reason, 'expired');
        assert.deepEqual(d1.errors, []);
        const page2 = await s.listDeadLetters('dlq', { limit: 2, after: d1.id });
        assert.deepEqual(page2.map((d) => [d.id, d.reason, d.errors]), [[ids[2], 'poison', ['bad json']]]);
        assert.deepEqual(await s.listDeadLetters('dlq', { limit: 2, after: ids[2] }), []);

        assert.equal(await s.redrive('dlq', [ids[1]!, 'no-such-id']), 1);
        assert.deepEqual([(await s.stats('dlq')).deadLetters, (await s.stats('dlq')).ready], [2, 1]);
        const [back] = await s.receive('dlq', 10, LONG_LEASE_MS);
        assert.equal(text(back?.body ?? new Uint8Array()), 'd1');
        assert.equal(back?.attempt, 1, 'a redriven message starts over');
        assert.equal(back?.contentType, 'text/plain');
        assert.deepEqual(back?.attributes, { k: 'v' });

        assert.equal(await s.redrive('dlq'), 2);
        assert.deepEqual(await s.listDeadLetters('dlq', { limit: 10 }), []);
        got = await drain(s, 'dlq');
        assert.deepEqual(got.map((m) => [text(m.body), m.attempt]).sort(), [['d0', 1], ['d2', 1]]);

        assert.deepEqual(await s.settle('dlq', got.map((m) => dead(m, 'again'))), [true, true]);
        assert.deepEqual(await s.settle('dlq', [dead(back!, 'again')]), [true]);
        assert.equal(await s.purgeDeadLetters('dlq', [ids[2]!, 'no-such-id']), 1);
        assert.equal((await s.listDeadLetters('dlq', { limit: 10 })).length, 2);
        assert.equal(await s.purgeDeadLetters('dlq'), 2);
        assert.deepEqual(await s.listDeadLetters('dlq', { limit: 10 }), []);
        assert.equal((await s.stats('dlq')).deadLetters, 0);
        assert.equal(await s.redrive('dlq'), 0);
      }));

    test('tracked messages: state through the lifecycle; the first terminal outcome wins', () =>
      withStore(async (s) => {
        await s.createQueue('_async-fn');
        const [{ id } = { id: '' }] = await s.send('_async-fn', [{ body: bytes('{"x":1}'), track: true, idempotencyKey: 'req-1', attributes: { requestId: 'r1' } }]);
        let st = await s.getMessage(id);
        assert.ok(st);
        assert.deepEqual([st.id, st.queue, st.state, st.attempt, st.idempotencyKey, st.outcome], [id, '_async-fn', 'ready', 0, 'req-1', null]);
        assert.deepEqual(st.attributes, { requestId: 'r1' });
        assert.ok(st.enqueuedAt > 0);

        const [m] = await s.receive('_async-fn', 1, LONG_LEASE_MS);
        assert.ok(m);
        st = await s.getMessage(id);
        assert.deepEqual([st?.state, st?.attempt], ['in_flight', 1]);

        assert.deepEqual(await s.settle('_async-fn', [retry(m, 60_000, 'timeout')]), [true]);
        assert.equal((await s.getMessage(id))?.state, 'delayed', 'waiting out a retry backoff');
        await s.purge('_async-fn');

        const [{ id: id2 } = { id: '' }] = await s.send('_async-fn', [{ body: bytes('{"x":2}'), track: true }]);
        const [m2] = await s.receive('_async-fn', 1, LONG_LEASE_MS);
        assert.ok(m2);
        const outcome: MessageOutcome = {
          state: 'succeeded',
          attempt: 1,
          finishedAt: Date.now(),
          result: { status: 202, contentType: 'application/json', body: bytes('{"ok":true}') },
        };
        assert.deepEqual(await s.settle('_async-fn', [ack(m2, outcome)]), [true]);
        const failed: MessageOutcome = { state: 'failed', attempt: 1, finishedAt: Date.now(), error: { code: 'function_error', message: 'late' } };
        assert.deepEqual(await s.settle('_async-fn', [ack(m2, failed)]), [false], 'the token was spent');
        st = await s.getMessage(id2);
        assert.ok(st);
        assert.equal(st.state, 'succeeded');
        assert.equal(st.attempt, 1);
        assert.deepEqual(st.outcome, outcome, 'the outcome is kept as sent, result bytes included');
        assert.equal((await s.stats('_async-fn')).depth, 0, 'the finished message left the queue');
      }));

    test('tracked dead letters report dead; untracked messages are unknown once finished', () =>
      withStore(async (s) => {
        await s.createQueue('tr');
        const [tracked, plain] = await s.send('tr', [{ body: bytes('t'), track: true }, { body: bytes('p') }]);
        assert.ok(tracked && plain);
        const [mt, mp] = await s.receive('tr', 2, LONG_LEASE_MS);
        assert.ok(mt && mp);
        const outcome: MessageOutcome = { state: 'dead', attempt: 1, finishedAt: Date.now(), error: { code: 'function_error', message: 'gave up' } };
        assert.deepEqual(await s.settle('tr', [dead(mt, 'max_retries: 0', undefined, outcome), ack(mp)]), [true, true]);
        const st = await s.getMessage(tracked.id);
        assert.equal(st?.state, 'dead');
        assert.deepEqual(st?.outcome, outcome);
        assert.equal(await s.getMessage(plain.id), null);
        assert.equal(await s.getMessage('no-such-id'), null);
      }));

    test('outcomes expire after their retention (needs a clock)', async (t) => {
      const h = await open();
      try {
        if (!h.clock) return t.skip('the opener provides no clock');
        const s = h.queues;
        await s.createQueue('ret');
        const [sent] = await s.send('ret', [{ body: bytes('x'), track: true }]);
        const [m] = await s.receive('ret', 1, LONG_LEASE_MS);
        assert.ok(m && sent);
        await s.settle('ret', [ack(m, { state: 'succeeded', attempt: 1, finishedAt: Date.now() })]);
        assert.equal((await s.getMessage(sent.id))?.state, 'succeeded');
        h.clock.advance(Q.outcomeRetentionMs + 60_000);
        // Retention may be enforced lazily, on a later write.
        await s.send('ret', [{ body: bytes('y') }]);
        assert.equal(await s.getMessage(sent.id), null);
      } finally {
        await h.close();
      }
    });

    test('purge removes ready and delayed messages, not those in flight, not dead letters', () =>
      withStore(async (s) => {
        await s.createQueue('pg');
        await sendTexts(s, 'pg', ['x', 'y']);
        const [x, y] = await s.receive('pg', 2, LONG_LEASE_MS);
        assert.ok(x && y);
        assert.deepEqual(await s.settle('pg', [dead(x, 'poison')]), [true]);
        await sendTexts(s, 'pg', ['r1', 'r2']);
        await sendTexts(s, 'pg', ['d1'], { delayMs: 60_000 });
        assert.equal(await s.purge('pg'), 3);
        const st = await s.stats('pg');
        assert.deepEqual([st.depth, st.ready, st.delayed, st.inFlight, st.deadLetters], [1, 0, 0, 1, 1]);
        assert.deepEqual(await s.settle('pg', [ack(y)]), [true], 'the in-flight message survived');
        assert.equal(await s.purge('pg'), 0);
      }));

    test('deleteQueue removes everything; a recreated queue starts empty and old tokens stay stale', () =>
      withStore(async (s) => {
        await s.createQueue('del');
        await sendTexts(s, 'del', ['a', 'b', 'c']);
        await s.send('del', [{ body: bytes('keyed'), idempotencyKey: 'k' }]);
        await s.send('del', [{ body: bytes('later'), delayMs: 60_000 }]);
        const [a, b] = await s.receive('del', 2, LONG_LEASE_MS);
        assert.ok(a && b);
        await s.settle('del', [dead(a, 'poison')]);
        assert.equal(await s.deleteQueue('del'), true);
        await rejectsWith(s.stats('del'), 'not_found');
        await rejectsWith(s.receive('del', 1, LEASE_MS), 'not_found');

        await s.createQueue('del');
        assert.deepEqual(await s.stats('del'), { depth: 0, ready: 0, delayed: 0, inFlight: 0, oldestAgeMs: 0, deadLetters: 0 });
        assert.deepEqual(await s.listDeadLetters('del', { limit: 10 }), []);
        assert.equal(await s.nextVisibleInMs('del'), null);
        assert.deepEqual(await s.receive('del', 10, LONG_LEASE_MS), []);
        const [fresh] = await s.send('del', [{ body: bytes('keyed again'), idempotencyKey: 'k' }]);
        assert.equal(fresh?.duplicate, false, 'idempotency keys went with the queue');
        const [n] = await s.receive('del', 1, LONG_LEASE_MS);
        assert.ok(n);
        assert.deepEqual(await s.settle('del', [ack(b), retry(b, 0, 'x')]), [false, false], 'a token from before the delete is stale');
        assert.equal(await s.extend('del', b.id, b.leaseToken, LONG_LEASE_MS), false);
        assert.deepEqual(await s.settle('del', [ack(n)]), [true]);
      }));

    test("a queue's messages never appear in another queue", () =>
      withStore(async (s) => {
        await s.createQueue('qa');
        await s.createQueue('qb');
        await sendTexts(s, 'qa', ['a1', 'a2']);
        assert.deepEqual(await s.receive('qb', 10, LONG_LEASE_MS), []);
        await sendTexts(s, 'qb', ['b1']);
        const a = await s.receive('qa', 10, LONG_LEASE_MS);
        assert.deepEqual(a.map((m) => [m.queue, text(m.body)]), [['qa', 'a1'], ['qa', 'a2']]);
        const b = await s.receive('qb', 10, LONG_LEASE_MS);
        assert.deepEqual(b.map((m) => [m.queue, text(m.body)]), [['qb', 'b1']]);
        assert.deepEqual(await s.settle('qb', [ack(a[0]!)]), [false], 'settling through another queue does nothing');
        assert.equal((await s.stats('qa')).inFlight, 2);
        assert.equal(await s.purge('qb'), 0);
        assert.equal((await s.stats('qa')).depth, 2);
      }));

    test('cursors: get, set, compare-and-set', () =>
      withStore(async (s) => {
        assert.equal(await s.getCursor('cron:fn-a:0'), null);
        assert.equal(await s.setCursor('cron:fn-a:0', '2025-01-01T00:00:00.000Z'), true);
        assert.equal(await s.getCursor('cron:fn-a:0'), '2025-01-01T00:00:00.000Z');
        assert.equal(await s.setCursor('cron:fn-a:0', 'b', 'wrong'), false);
        assert.equal(await s.setCursor('cron:fn-a:0', 'b', null), false, 'null expects absence');
        assert.equal(await s.getCursor('cron:fn-a:0'), '2025-01-01T00:00:00.000Z');
        assert.equal(await s.setCursor('cron:fn-a:0', 'b', '2025-01-01T00:00:00.000Z'), true);
        assert.equal(await s.getCursor('cron:fn-a:0'), 'b');
        assert.equal(await s.setCursor('cron/fn-b.1', 'x', null), true);
        assert.equal(await s.setCursor('cron/fn-b.1', 'y', null), false);
        assert.equal(await s.setCursor('cron/fn-b.1', ''), true, 'without expected: unconditional');
        assert.equal(await s.getCursor('cron/fn-b.1'), '');
        assert.equal(await s.setCursor('cron/fn-b.1', 'z', ''), true, 'an empty value is a value, not absence');
        assert.equal(await s.getCursor('cron:fn-a:0'), 'b', 'keys are independent');
      }));

    test('20 concurrent receives over 50 messages hand out each message exactly once', () =>
      withStore(async (s) => {
        await s.createQueue('conc');
        const ids = await sendTexts(s, 'conc', Array.from({ length: 50 }, (_, i) => `m${i}`));
        const batches = await Promise.all(Array.from({ length: 20 }, () => s.receive('conc', 5, LONG_LEASE_MS)));
        const got = batches.flat();
        assert.ok(batches.every((b) => b.length <= 5));
        assert.equal(new Set(got.map((m) => m.id)).size, got.length, 'no message handed out twice');
        assert.deepEqual(got.map((m) => m.id).sort(), [...ids].sort(), 'every message handed out');
        assert.ok(got.every((m) => m.attempt === 1));
        const results = await s.settle('conc', got.map((m) => ack(m)));
        assert.ok(results.every((r) => r === true));
        assert.equal((await s.stats('conc')).depth, 0);
      }));

    test('watch: every store of messages tells the queue name by the time it resolves; nothing else does', () =>
      withStore(async (s) => {
        await s.createQueue('w');
        await s.createQueue('other');
        const told: string[] = [];
        const unwatch = s.watch((queue) => told.push(queue));
        await s.send('w', [{ body: bytes('a'), idempotencyKey: 'k' }]);
        assert.deepEqual(told, ['w'], 'a send');
        await s.send('w', [{ body: bytes('a'), idempotencyKey: 'k' }]);
        assert.deepEqual(told, ['w'], 'a duplicate stores nothing');
        await s.send('other', [{ body: bytes('later'), delayMs: 60_000 }]);
        assert.deepEqual(told, ['w', 'other'], 'a delayed send');
        const [m] = await s.receive('w', 1, LONG_LEASE_MS);
        assert.deepEqual(await s.settle('w', [retry(m!, 0, 'again')]), [true]);
        assert.deepEqual(told, ['w', 'other', 'w'], 'a retry stores a copy; the receive told nothing');
        const [m2] = await s.receive('w', 1, LONG_LEASE_MS);
        assert.deepEqual(await s.settle('w', [dead(m2!, 'poison')]), [true]);
        assert.equal(told.length, 3, 'dead-lettering does not');
        assert.equal(await s.redrive('w'), 1);
        assert.deepEqual(told, ['w', 'other', 'w', 'w'], 'a redrive');
        const [m3] = await s.receive('w', 1, LONG_LEASE_MS);
        assert.deepEqual(await s.settle('w', [ack(m3!)]), [true]);
        unwatch();
        await s.send('w', [{ body: bytes('b') }]);
        assert.equal(told.length, 4, 'an ack does not, and nothing is told after unwatch');
      }));

    test('reopen: queues, messages, leases, dead letters, tracked state and cursors survive', async (t) => {
      const h = await open();
      try {
        if (!h.reopen) return t.skip('the opener provides no reopen');
        let s = h.queues;
        await s.createQueue('dur');
        const [trackedId, deadId, leasedId] = await sendTexts(s, 'dur', ['tracked', 'dead', 'leased'], { track: true });
        await sendTexts(s, 'dur', ['ready-1', 'ready-2']);
        await sendTexts(s, 'dur', ['later'], { delayMs: 60_000 });
        const [mt, md, ml] = await s.receive('dur', 3, LONG_LEASE_MS);
        assert.deepEqual([mt?.id, md?.id, ml?.id], [trackedId, deadId, leasedId]);
        const outcome: MessageOutcome = { state: 'succeeded', attempt: 1, finishedAt: Date.now(), result: { status: 200, contentType: null, body: bytes('r') } };
        assert.deepEqual(await s.settle('dur', [ack(mt!, outcome), dead(md!, 'poison', 'boom')]), [true, true]);
        assert.equal(await s.setCursor('cron:dur', 'c1'), true);
        const before = await s.stats('dur');

        s = await h.reopen();
        assert.equal((await s.getQueue('dur'))?.name, 'dur');
        const after = await s.stats('dur');
        assert.deepEqual({ ...after, oldestAgeMs: 0 }, { ...before, oldestAgeMs: 0 });
        assert.deepEqual([after.depth, after.ready, after.delayed, after.inFlight, after.deadLetters], [4, 2, 1, 1, 1]);
        assert.equal(await s.getCursor('cron:dur'), 'c1');
        assert.deepEqual((await s.getMessage(trackedId ?? ''))?.outcome, outcome);
        const dl = await s.listDeadLetters('dur', { limit: 10 });
        assert.deepEqual(dl.map((d) => [d.id, d.reason, d.errors]), [[deadId, 'poison', ['boom']]]);
        const ready = await s.receive('dur', 10, LONG_LEASE_MS);
        assert.deepEqual(ready.map((m) => [text(m.body), m.attempt]), [['ready-1', 1], ['ready-2', 1]]);
        assert.deepEqual(await s.settle('dur', [ack(ml!)]), [true], 'a lease taken before the reopen is still current');
        assert.deepEqual(await s.settle('dur', ready.map((m) => ack(m))), [true, true]);
        assert.equal((await s.stats('dur')).depth, 1);
      } finally {
        await h.close();
      }
    });
  });
}
