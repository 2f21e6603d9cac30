import { test } from 'node:test';
import assert from 'node:assert/strict';
// @ts-expect-error -- plain JS module of the prelude, without type declarations
import { Buffer as PreludeBuffer } from './inject-globals.js';

test("the prelude's Buffer.byteLength counts UTF-8 bytes exactly as Node does", () => {
  const samples = ['', 'hello', 'é', '€', '😀', 'a😀b', '\ud800', 'x\udc00y', '\ud83d', '\ud83d\ude00\ud83d', 'ascii'.repeat(5000)];
  for (let i = 0; i < 2000; i++) {
    let s = '';
    for (let j = 0; j < 20; j++) s += String.fromCharCode(Math.floor(Math.random() * 0x10000));
    samples.push(s);
  }
  for (const s of samples) assert.equal(PreludeBuffer.byteLength(s), Buffer.byteLength(s), JSON.stringify(s));
  assert.equal(PreludeBuffer.byteLength('aGk=', 'base64'), 2, 'other encodings still go to the polyfill');
});
