import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { CliError } from '../errors.ts';
import type { QueueView } from '../client.ts';
import { buildMessages, deadLettersTable, queueFields, queuesTable } from './queue.ts';

const none = () => Readable.from([]);
const opts = (o: { data?: string[]; delay?: number; idempotencyKey?: string[]; base64?: boolean }) => ({ data: [], idempotencyKey: [], ...o });
const isUserError = (e: unknown) => e instanceof CliError && e.exitCode === 1;

test('send: one message per --data with its content type; no --data is one empty message', async () => {
  assert.deepEqual(await buildMessages(opts({ data: ['hello', '{"a":1}'] }), none()), [
    { body: 'hello', contentType: 'text/plain; charset=utf-8' },
    { body: '{"a":1}', contentType: 'application/json' },
  ]);
  assert.deepEqual(await buildMessages(opts({}), none()), [{ body: '', contentType: 'text/plain; charset=utf-8' }]);
});

test('send: delay and idempotency keys go on every message, keys in order', async () => {
  const m = await buildMessages(opts({ data: ['a', 'b'], delay: 30, idempotencyKey: ['k1', 'k2'] }), none());
  assert.deepEqual(m.map((x) => [x.body, x.delaySeconds, x.idempotencyKey]), [['a', 30, 'k1'], ['b', 30, 'k2']]);
  await assert.rejects(buildMessages(opts({ data: ['a', 'b'], idempotencyKey: ['k1'] }), none()), (e: unknown) => isUserError(e) && /one --idempotency-key per message: 2 messages, 1 key/.test((e as Error).message));
});

test('send: stdin and files; text stays text, other bytes travel as base64', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'continuum-queue-'));
  try {
    await writeFile(path.join(dir, 'blob.bin'), Buffer.from([0, 0xff, 1]));
    await writeFile(path.join(dir, 'note'), 'plain words');
    const [blob, note, stdin] = await buildMessages(opts({ data: [`@${path.join(dir, 'blob.bin')}`, `@${path.join(dir, 'note')}`, '-'] }), Readable.from([Buffer.from('from stdin')]));
    assert.deepEqual(blob, { body: Buffer.from([0, 0xff, 1]).toString('base64'), encoding: 'base64', contentType: 'application/octet-stream' });
    assert.deepEqual(note, { body: 'plain words', contentType: 'text/plain; charset=utf-8' });
    assert.deepEqual(stdin, { body: 'from stdin', contentType: 'text/plain; charset=utf-8' });
    await assert.rejects(buildMessages(opts({ data: ['-', '-'] }), none()), isUserError);
    await assert.rejects(buildMessages(opts({ data: [`@${path.join(dir, 'missing')}`] }), none()), (e: unknown) => (e as { code?: string }).code === 'ENOENT');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('send --base64: values are checked and sent as base64 without a content type', async () => {
  assert.deepEqual(await buildMessages(opts({ data: ['AAEC/w=='], base64: true }), none()), [{ body: 'AAEC/w==', encoding: 'base64' }]);
  assert.deepEqual(await buildMessages(opts({ data: ['-'], base64: true }), Readable.from([Buffer.from('AAEC\n/w==\n')])), [{ body: 'AAEC/w==', encoding: 'base64' }]);
  await assert.rejects(buildMessages(opts({ data: ['ok==', 'AAE'], base64: true }), none()), (e: unknown) => isUserError(e) && /--data #2 is not valid base64/.test((e as Error).message));
});

test('send: more messages than one batch holds is refused before sending', async () => {
  await assert.rejects(buildMessages(opts({ data: Array.from({ length: 101 }, (_, i) => `m${i}`) }), none()), (e: unknown) => isUserError(e) && /at most 100 messages/.test((e as Error).message));
});

const queue = (over: Partial<QueueView['stats']> = {}, consumers: string[] = []): QueueView => ({
  name: 'jobs',
  createdAt: '2026-01-01T11:00:00.000Z',
  stats: { depth: 3, ready: 2, delayed: 1, inFlight: 0, oldestAgeMs: 95_000, deadLetters: 4, ...over },
  consumers,
});

test('queue ls table, show fields and dead letters table', () => {
  const now = Date.UTC(2026, 0, 1, 12);
  assert.equal(
    queuesTable([queue({}, ['worker', 'audit']), { ...queue({ depth: 0, ready: 0, delayed: 0, deadLetters: 0 }), name: 'idle' }]),
    [
      'NAME  DEPTH  READY  DELAYED  IN FLIGHT  OLDEST  DEAD LETTERS  CONSUMERS',
      'jobs  3      2      1        0          1m      4             worker, audit',
      'idle  0      0      0        0          -       0             -',
    ].join('\n'),
  );
  assert.match(queuesTable([]), /no queues yet/);
  assert.equal(
    queueFields(queue({}, ['worker']), now),
    [
      'queue         jobs',
      'created       2026-01-01T11:00:00.000Z (1h ago)',
      'depth         3 (ready 2, delayed 1, in flight 0)',
      'oldest        1m',
      'dead letters  4',
      'consumers     worker',
    ].join('\n'),
  );
  const dead = { id: 'm1', body: 'x', encoding: 'utf8' as const, contentType: null, attributes: {}, idempotencyKey: null, enqueuedAt: now - 60_000, deadAt: now - 5000, attempts: 3, reason: 'max_retries: 2', errors: ['first', 'function_error: boom\n  at line 2'] };
  assert.equal(deadLettersTable([dead], now), ['ID  ATTEMPTS  REASON          LAST ERROR                      DEAD', 'm1  3         max_retries: 2  function_error: boom at line 2  5s ago'].join('\n'));
});
