import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Leases } from './leases.ts';

test('a key stays held while any holder holds it; a release counts once', () => {
  const leases = new Leases();
  const a = leases.hold(['x', 'y']);
  const b = leases.hold(['x']);
  a();
  a();
  assert.deepEqual([leases.has('x'), leases.has('y')], [true, false]);
  b();
  assert.equal(leases.has('x'), false);
});
