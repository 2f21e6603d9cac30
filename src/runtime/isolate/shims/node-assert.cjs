// CommonJS (.cjs) on purpose: undici does `const assert = require('node:assert')` and calls it.
function assert(value, message) {
  if (!value) throw new Error(typeof message === 'string' ? message : 'assertion failed');
}
assert.ok = assert;
assert.strictEqual = (a, b, message) => assert(Object.is(a, b), message);
assert.notStrictEqual = (a, b, message) => assert(!Object.is(a, b), message);
assert.equal = (a, b, message) => assert(a == b, message);
assert.fail = (message) => assert(false, message);
module.exports = assert;
