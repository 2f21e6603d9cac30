import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EVENT_DEFAULTS } from '../../core/defaults.ts';
import type { BindingMessage } from '../../core/driver.ts';
import { checkQueueSend, decodeQueueSend, encodeQueueSend } from './bindings.ts';

const m = (body: string | Uint8Array, contentType = 'text/plain', delayMs?: number): BindingMessage => {
  const bytes = typeof body === 'string' ? new TextEncoder().encode(body) : body;
  return delayMs === undefined ? { body: bytes, contentType } : { body: bytes, contentType, delayMs };
};

test('queue send frames round-trip and copy bodies out of the frame', () => {
  const messages = [m('one'), m(new Uint8Array([0, 255]), 'application/octet-stream', 1500), m('')];
  const frame = encodeQueueSend('ORDERS', 3, messages);
  const decoded = decodeQueueSend(frame);
  assert.deepEqual(decoded, { binding: 'ORDERS', inv: 3, messages });
  frame.fill(0);
  assert.equal(new TextDecoder().decode(decoded.messages[0]!.body), 'one');
});

test('malformed frames from a worker are refused with bad_request', () => {
  const good = encodeQueueSend('ORDERS', 0, [m('abc')]);
  const head = (json: string, tail: Uint8Array = new Uint8Array(0)) => {
    const h = Buffer.from(json);
    const out = Buffer.alloc(4 + h.length + tail.length);
    out.writeUInt32LE(h.length, 0);
    h.copy(out, 4);
    out.set(tail, 4 + h.length);
    return out;
  };
  const cases: Uint8Array[] = [
    new Uint8Array(2),
    good.subarray(0, good.length - 1), // a body cut short
    Buffer.concat([good, Buffer.from('x')]), // trailing bytes
    head('not json'),
    head('{"binding":"orders","messages":[]}'), // not a binding name
    head('{"binding":"ORDERS","messages":[{"contentType":"t","bytes":-1}]}'),
    head('{"binding":"ORDERS","messages":[{"contentType":"t","bytes":1e9}]}', new Uint8Array(1)),
    head('{"binding":"ORDERS","messages":[{"contentType":5,"bytes":0}]}'),
    head('{"binding":"ORDERS","messages":[{"contentType":"t","bytes":0,"delayMs":"1"}]}'),
  ];
  for (const frame of cases) assert.throws(() => decodeQueueSend(frame), { code: 'bad_request' });
});

test('checkQueueSend enforces EVENT_DEFAULTS.queue', () => {
  const q = EVENT_DEFAULTS.queue;
  checkQueueSend([m('x', 'text/plain', q.maxDelayMs), m(new Uint8Array(q.maxMessageBytes))]);
  assert.throws(() => checkQueueSend([]), { code: 'bad_request' });
  assert.throws(() => checkQueueSend(Array.from({ length: q.maxSendBatch + 1 }, () => m('x'))), { code: 'bad_request' });
  assert.throws(() => checkQueueSend([m(new Uint8Array(q.maxMessageBytes + 1))]), { code: 'payload_too_large' });
  assert.throws(() => checkQueueSend([m('x', 'text/plain', q.maxDelayMs + 1)]), { code: 'bad_request' });
  assert.throws(() => checkQueueSend([m('x', 'text/plain', -1)]), { code: 'bad_request' });
  assert.throws(() => checkQueueSend([m('x', 'text/plain\r\nx-evil: 1')]), { code: 'bad_request' });
  assert.throws(() => checkQueueSend([m('x', '')]), { code: 'bad_request' });
});
