// The event shapes are pure functions: tested here in Node; events.test.ts in src/drivers/isolate runs them in isolates.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  checkDelay,
  decodeBatch,
  encodeQueueBody,
  invokeParams,
  invokePayload,
  messageBody,
  QueueDecisions,
  scheduledEvent,
  sqsEvent,
  sqsOutcome,
  workersBatch,
} from './events.ts';
import type { WireQueueMessage } from './protocol.ts';

const enc = (s: string) => new TextEncoder().encode(s);
const b64 = (bytes: number[]) => Buffer.from(bytes).toString('base64');

function msg(body: string, contentType: string | null, encoding: 'utf8' | 'base64' = 'utf8', id = 'm'): WireQueueMessage {
  return { id, body, encoding, contentType, attempt: 1, timestamp: 1000, attributes: {}, idempotencyKey: null };
}

test('decodeBatch takes {messages: [...]} and refuses anything malformed', () => {
  const good = msg('x', null);
  assert.deepEqual(decodeBatch(enc(JSON.stringify({ messages: [good] }))), [good]);
  for (const bad of [null, enc('{}'), enc('{"messages": {}}'), enc(JSON.stringify({ messages: [{ ...good, attempt: '1' }] })), enc(JSON.stringify({ messages: [{ ...good, encoding: 'hex' }] })), enc(JSON.stringify({ messages: [null] }))]) {
    assert.throws(() => decodeBatch(bad), TypeError);
  }
});

test('messageBody: JSON parsed, text as strings, everything else as bytes', () => {
  const cases: Array<[WireQueueMessage, unknown]> = [
    [msg('{"a":[1]}', 'application/json'), { a: [1] }],
    [msg('{"a":1}', 'Application/JSON; charset=utf-8'), { a: 1 }],
    [msg('{"a":1}', 'application/cloudevents+json'), { a: 1 }],
    [msg('{not json', 'application/json'), '{not json'],
    [msg('hi', 'text/plain'), 'hi'],
    [msg(b64([0x68, 0xc3, 0xa9]), 'text/plain', 'base64'), 'hé'],
    [msg(b64([0xff, 0xfe]), 'text/plain', 'base64'), new Uint8Array([0xff, 0xfe])],
    [msg('untyped text', null), 'untyped text'],
    [msg(b64([1, 2]), null, 'base64'), new Uint8Array([1, 2])],
    [msg('abc', 'application/octet-stream'), enc('abc')],
    [msg(b64([0, 255]), 'image/png', 'base64'), new Uint8Array([0, 255])],
  ];
  for (const [m, want] of cases) assert.deepEqual(messageBody(m), want, `${m.contentType} ${m.encoding} ${m.body}`);
});

test('QueueDecisions: the first call on a message wins; message calls beat batch calls; first batch call wins', () => {
  const d = new QueueDecisions();
  d.decide('a', { retry: true, delaySeconds: 10 });
  d.decide('a', { retry: false });
  d.decideAll({ retry: true, delaySeconds: undefined });
  d.decideAll({ retry: false });
  d.decide('b', { retry: false });
  assert.deepEqual(d.outcome(['a', 'b', 'c'], null), { acked: ['b'], retried: [{ id: 'a', delaySeconds: 10 }, { id: 'c' }], error: null });
  assert.deepEqual(new QueueDecisions().outcome(['x'], 'Error: e'), { acked: [], retried: [], error: 'Error: e' });
});

test('workersBatch: Cloudflare MessageBatch shape, read-only messages', () => {
  const d = new QueueDecisions();
  const b = workersBatch('q', [msg('{"n":1}', 'application/json', 'utf8', 'm1'), msg('t', 'text/plain', 'utf8', 'm2')], d) as {
    queue: string;
    messages: Array<{ id: string; timestamp: Date; body: unknown; attempts: number; ack(): void; retry(o?: object): void }>;
    ackAll(): void;
  };
  assert.equal(b.queue, 'q');
  assert.deepEqual(b.messages.map((m) => [m.id, m.timestamp.getTime(), m.body, m.attempts]), [['m1', 1000, { n: 1 }, 1], ['m2', 1000, 't', 1]]);
  assert.ok(Object.isFrozen(b.messages) && Object.isFrozen(b.messages[0]));
  assert.throws(() => b.messages[0]!.retry({ delaySeconds: Number.NaN }), RangeError);
  b.messages[0]!.retry({ delaySeconds: 0 });
  b.ackAll();
  assert.deepEqual(d.outcome(['m1', 'm2'], null), { acked: ['m2'], retried: [{ id: 'm1', delaySeconds: 0 }], error: null });
});

test('sqsEvent: one record per message with SQS field names, md5 of the body, binary bodies as base64', () => {
  const { Records } = sqsEvent('jobs', [{ ...msg('héllo', 'text/plain'), attempt: 4, attributes: { k: 'v' } }, msg(b64([0xff, 0]), null, 'base64', 'bin')], 5000);
  const [r, bin] = Records as [Record<string, any>, Record<string, any>];
  assert.deepEqual(r, {
    messageId: 'm',
    receiptHandle: 'm#4',
    body: 'héllo',
    attributes: { ApproximateReceiveCount: '4', SentTimestamp: '1000', SenderId: '000000000000', ApproximateFirstReceiveTimestamp: '5000' },
    messageAttributes: { k: { stringValue: 'v', stringListValues: [], binaryListValues: [], dataType: 'String' } },
    md5OfBody: createHash('md5').update('héllo').digest('hex'),
    eventSource: 'aws:sqs',
    eventSourceARN: 'arn:aws:sqs:local:000000000000:jobs',
    awsRegion: 'local',
  });
  assert.equal(bin.body, b64([0xff, 0]));
  assert.equal(bin.md5OfBody, createHash('md5').update(b64([0xff, 0])).digest('hex'));
});

test('sqsOutcome follows Lambda partial batch response rules', () => {
  const ids = ['a', 'b', 'c'];
  const all = { ok: true, outcome: { acked: ids, retried: [], error: null } };
  for (const success of [undefined, null, 'done', {}, { batchItemFailures: null }, { batchItemFailures: [] }]) {
    assert.deepEqual(sqsOutcome(success, ids), all, JSON.stringify(success));
  }
  assert.deepEqual(sqsOutcome({ batchItemFailures: [{ itemIdentifier: 'b' }, { itemIdentifier: 'b' }] }, ids), {
    ok: true,
    outcome: { acked: ['a', 'c'], retried: [{ id: 'b' }], error: null },
  });
  for (const invalid of [{ batchItemFailures: {} }, { batchItemFailures: [{ itemIdentifier: '' }] }, { batchItemFailures: [{ itemIdentifier: null }] }, { batchItemFailures: [{ id: 'a' }] }, { batchItemFailures: [{ itemIdentifier: 'z' }] }, { batchItemFailures: ['a'] }]) {
    const r = sqsOutcome(invalid, ids);
    assert.equal(r.ok, false, JSON.stringify(invalid));
    assert.deepEqual([r.outcome.acked, r.outcome.retried], [[], []]);
    assert.match(r.outcome.error!, /invalid batchItemFailures/);
  }
});

test('scheduledEvent: EventBridge shape, time at second precision', () => {
  assert.deepEqual(scheduledEvent('id-1', 'fn', Date.UTC(2026, 0, 1, 0, 0, 0, 999)), {
    version: '0',
    id: 'id-1',
    'detail-type': 'Scheduled Event',
    source: 'aws.events',
    account: '000000000000',
    time: '2026-01-01T00:00:00Z',
    region: 'local',
    resources: ['arn:aws:events:local:000000000000:rule/fn'],
    detail: {},
  });
});

test('invoke payloads: Lambda event and OpenWhisk params', () => {
  assert.deepEqual(invokePayload(null), {});
  assert.deepEqual(invokePayload(new Uint8Array(0)), {});
  assert.deepEqual(invokePayload(enc('[1,2]')), [1, 2]);
  assert.equal(invokePayload(enc('plain')), 'plain');
  assert.deepEqual(invokeParams(enc('{"a":1}')), { a: 1 });
  assert.deepEqual(invokeParams(enc('[1]')), { __ow_body: '[1]' });
  assert.deepEqual(invokeParams(null), {});
});

test('encodeQueueBody: Cloudflare content types, inferred or forced', () => {
  const view = new Uint8Array([9, 8, 7, 6]).subarray(1, 3);
  const cases: Array<[unknown, unknown, string, number[] | string]> = [
    ['hi', undefined, 'text/plain', 'hi'],
    [{ a: 1 }, undefined, 'application/json', '{"a":1}'],
    [null, undefined, 'application/json', 'null'],
    [3, undefined, 'application/json', '3'],
    [view, undefined, 'application/octet-stream', [8, 7]],
    [new Uint8Array([1]).buffer, undefined, 'application/octet-stream', [1]],
    [new DataView(new Uint8Array([4, 5]).buffer, 1), 'bytes', 'application/octet-stream', [5]],
    ['hi', 'json', 'application/json', '"hi"'],
    ['hi', 'text', 'text/plain', 'hi'],
  ];
  for (const [body, type, contentType, want] of cases) {
    const out = encodeQueueBody(body, type);
    assert.equal(out.contentType, contentType);
    assert.deepEqual(typeof want === 'string' ? new TextDecoder().decode(out.bytes) : [...out.bytes], want);
  }
  const copy = new Uint8Array([1, 2]);
  const sent = encodeQueueBody(copy, undefined);
  copy[0] = 99;
  assert.equal(sent.bytes[0], 1, 'bytes are copied at send time');
  for (const [body, type] of [[1, 'text'], ['x', 'bytes'], [undefined, undefined], [() => 1, 'json'], [{}, 'v8'], ['x', 'yaml']] as Array<[unknown, unknown]>) {
    assert.throws(() => encodeQueueBody(body, type), TypeError, `${String(body)} ${String(type)}`);
  }
});

test('checkDelay accepts a finite number ≥ 0 or nothing', () => {
  assert.equal(checkDelay(undefined, 'x'), undefined);
  assert.equal(checkDelay({}, 'x'), undefined);
  assert.equal(checkDelay({ delaySeconds: 2.5 }, 'x'), 2.5);
  for (const bad of [{ delaySeconds: -1 }, { delaySeconds: Infinity }, { delaySeconds: '5' }]) assert.throws(() => checkDelay(bad, 'x'), RangeError);
  assert.throws(() => checkDelay(5, 'x'), TypeError);
});
