import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseJsonBounded } from './json.ts';

test('parses ordinary JSON, including brackets inside strings', () => {
  assert.deepEqual(parseJsonBounded('{"a":[1,{"b":"[[[{{\\"}}"}]}', 3), { a: [1, { b: '[[[{{"}}' }] });
});

test('refuses deep nesting before parsing, prototype keys, and malformed text', () => {
  assert.throws(() => parseJsonBounded('['.repeat(100_000) + ']'.repeat(100_000), 64), { code: 'bad_request' });
  assert.throws(() => parseJsonBounded('{"__proto__":{"polluted":1}}', 64), { code: 'bad_request' });
  assert.throws(() => parseJsonBounded('{"a":{"constructor":{"prototype":{}}}}', 64), { code: 'bad_request' });
  assert.throws(() => parseJsonBounded('{"a":', 64), { code: 'bad_request' });
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

test('refuses duplicate keys, however they are spelled, but allows the same key in sibling objects', () => {
  assert.throws(() => parseJsonBounded('{"name":"a","name":"b"}', 64), /twice/);
  assert.throws(() => parseJsonBounded('{"name":"a", "n\\u0061me" : "b"}', 64), /twice/);
  assert.throws(() => parseJsonBounded('{"a":{"x":1,"x":2}}', 64), /twice/);
  assert.deepEqual(parseJsonBounded('[{"x":1},{"x":2}]', 64), [{ x: 1 }, { x: 2 }]);
  assert.deepEqual(parseJsonBounded('{"a":{"x":1},"b":{"x":"x"}}', 64), { a: { x: 1 }, b: { x: 'x' } });
  assert.deepEqual(parseJsonBounded('{"k":"a:b","v":["k","k"]}', 64), { k: 'a:b', v: ['k', 'k'] });
});
