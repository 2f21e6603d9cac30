import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ERROR_CODES, ContinuumError, errorBody, fromErrorBody, toContinuumError } from './errors.ts';

test('every registered code has a fitting HTTP status', () => {
  for (const [code, spec] of Object.entries(ERROR_CODES)) {
    assert.ok(spec.status >= 400 && spec.status < 600, code);
    assert.ok(spec.summary.length > 10, code);
  }
});

test('docs/errors.md documents exactly the registered codes', () => {
  const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  const documented = new Set([...doc.matchAll(/^\| `([a-z_]+)` \|/gm)].map((m) => m[1]));
  assert.deepEqual([...documented].sort(), Object.keys(ERROR_CODES).sort());
});

test('errors round-trip as plain data', () => {
  const e = new ContinuumError('cpu_limit', 'used 51 ms of 50', { limit: 50 });
  const copy = fromErrorBody(JSON.parse(JSON.stringify(e.toBody())));
  assert.equal(copy.code, 'cpu_limit');
  assert.equal(copy.message, 'used 51 ms of 50');
  assert.deepEqual(copy.details, { limit: 50 });
  assert.equal(fromErrorBody({ error: { code: 'nope', message: 'x' } }).code, 'internal');
});

test('unknown failures become internal without leaking their text', () => {
  const e = toContinuumError(new Error('/secret/path exploded'));
  assert.equal(e.code, 'internal');
  assert.doesNotMatch(JSON.stringify(e.toBody()), /secret/);
  assert.deepEqual(errorBody('not_found', 'x').error.retryable, false);
});
