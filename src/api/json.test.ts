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
