import { test } from 'node:test';
import assert from 'node:assert/strict';
import { uuidv7 } from './ids.ts';

test('uuidv7 is a well-formed RFC 9562 version 7 UUID', () => {
  for (let i = 0; i < 10_000; i++) {
    assert.match(uuidv7(), /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  }
});

test('uuidv7 carries the millisecond timestamp and sorts by time', () => {
  const t = Date.UTC(2026, 10, 23, 12, 0, 0, 123);
  assert.equal(parseInt(uuidv7(t).replace(/-/g, '').slice(0, 12), 16), t);
  const earlier = uuidv7(t);
  const later = uuidv7(t + 1);
  assert.ok(earlier < later);
  assert.equal(new Set(Array.from({ length: 100_000 }, () => uuidv7(t))).size, 100_000, 'no collisions within one millisecond');
});
