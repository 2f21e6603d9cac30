import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatTraceparent, parseTraceparent } from './tracecontext.ts';

test('traceparent: version 00 parsed, sampled flag read, invalid values refused', () => {
  const id = '4bf92f3577b34da6a3ce929d0e0e4736';
  assert.deepEqual(parseTraceparent(`00-${id}-00f067aa0ba902b7-01`), { traceId: id, spanId: '00f067aa0ba902b7', sampled: true });
  assert.equal(parseTraceparent(`00-${id}-00f067aa0ba902b7-00`)?.sampled, false);
  // A future version may add fields after the fourth; version 00 may not.
  assert.equal(parseTraceparent(`01-${id}-00f067aa0ba902b7-01-extra`)?.traceId, id);
  for (const bad of [
    undefined,
    '',
    `00-${id}-00f067aa0ba902b7-01-extra`,
    `ff-${id}-00f067aa0ba902b7-01`,
    `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`,
    `00-${id}-${'0'.repeat(16)}-01`,
    `00-${id.toUpperCase()}-00f067aa0ba902b7-01`,
    `00-${id}-00f067aa0ba902b7`,
  ]) {
    assert.equal(parseTraceparent(bad), null, String(bad));
  }
  assert.equal(formatTraceparent(id, '00f067aa0ba902b7', false), `00-${id}-00f067aa0ba902b7-00`);
});
