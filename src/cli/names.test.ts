import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isValidName } from '../core/names.ts';
import { CliError } from './errors.ts';
import { deriveName, sanitizeName } from './names.ts';

test('sanitizeName fits arbitrary text to the name grammar', () => {
  assert.equal(sanitizeName('Hello World'), 'hello-world');
  assert.equal(sanitizeName('my_func.v2'), 'my-func-v2');
  assert.equal(sanitizeName('2fast'), 'fast');
  assert.equal(sanitizeName('--api--'), 'api');
  assert.equal(sanitizeName('Crème Brûlée'), 'creme-brulee');
  assert.equal(sanitizeName('123'), '');
  const long = sanitizeName('a'.repeat(62) + '-b' + 'c'.repeat(20));
  assert.ok(isValidName(long));
  assert.equal(long.length, 62);
});

test('deriveName uses the basename without extension', () => {
  assert.equal(deriveName('./src/hello.ts'), 'hello');
  assert.equal(deriveName('/x/Lambda_Echo.mjs'), 'lambda-echo');
  assert.equal(deriveName('/x/bundle.tar.gz'), 'bundle');
  assert.equal(deriveName('/x/resize-image/'), 'resize-image');
});

test('deriveName skips generic basenames like index.ts for the enclosing directory', () => {
  assert.equal(deriveName('/srv/app/thumbnails/index.ts'), 'thumbnails');
  assert.equal(deriveName('/srv/app/thumbnails/src/index.ts'), 'thumbnails');
  assert.equal(deriveName('/srv/app/orders/handler.js'), 'orders');
});

test('deriveName fails with a hint to pass --name when nothing usable is left', () => {
  assert.throws(() => deriveName('/x/123.js'), (err: unknown) => err instanceof CliError && err.exitCode === 1 && err.message.includes('--name'));
});
