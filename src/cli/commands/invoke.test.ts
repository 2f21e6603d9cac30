import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { CliError } from '../errors.ts';
import { checkInvokeFlags, parseHeader, platformError, readData, responseJson } from './invoke.ts';

test('--header accepts name:value and name=value, lower-cases names, rejects junk', () => {
  assert.deepEqual(parseHeader('X-Trace: abc'), ['x-trace', 'abc']);
  assert.deepEqual(parseHeader('x-url:http://a/b'), ['x-url', 'http://a/b']);
  assert.deepEqual(parseHeader('x-a=1'), ['x-a', '1']);
  for (const bad of ['novalue', ':v', 'bad name: v']) assert.throws(() => parseHeader(bad), (e: unknown) => e instanceof CliError && e.exitCode === 1, bad);
});

test('--data: JSON text, plain text, @file and stdin', async () => {
  assert.deepEqual(await readData('{"a":1}', Readable.from([])), { body: Buffer.from('{"a":1}'), contentType: 'application/json' });
  assert.equal((await readData('hello', Readable.from([]))).contentType, 'text/plain; charset=utf-8');
  const stdin = await readData('-', Readable.from([Buffer.from('[1,'), Buffer.from('2]')]));
  assert.equal(stdin.body.toString(), '[1,2]');
  assert.equal(stdin.contentType, 'application/json');
  const dir = await mkdtemp(path.join(tmpdir(), 'continuum-invoke-'));
  try {
    await writeFile(path.join(dir, 'event.json'), '{"k":"v"}');
    await writeFile(path.join(dir, 'blob.bin'), Buffer.from([0, 1, 2]));
    assert.equal((await readData(`@${path.join(dir, 'event.json')}`, Readable.from([]))).contentType, 'application/json');
    assert.equal((await readData(`@${path.join(dir, 'blob.bin')}`, Readable.from([]))).contentType, 'application/octet-stream');
    await assert.rejects(readData('@', Readable.from([])), (e: unknown) => e instanceof CliError && e.exitCode === 1);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a registry error body in a failed response is a platform error with the mapped exit code', () => {
  const res = (status: number, body: unknown, ct = 'application/json') => ({ status, headers: { 'content-type': ct }, body: Buffer.from(JSON.stringify(body)) });
  const notFound = platformError(res(404, { error: { code: 'not_found', message: 'no function x', retryable: false } }));
  assert.equal(notFound?.exitCode, 1);
  const overloaded = platformError(res(503, { error: { code: 'overloaded', message: 'busy', retryable: true } }));
  assert.equal(overloaded?.exitCode, 2);
  assert.equal(platformError(res(500, { message: 'my own error shape' })), undefined);
  assert.equal(platformError(res(200, { error: { code: 'not_found', message: 'x' } })), undefined);
});

test('--json response view: JSON parsed, text kept, binary base64', () => {
  const json = responseJson({ status: 200, headers: { 'content-type': 'application/json' }, body: Buffer.from('{"ok":true}') });
  assert.deepEqual(json.body, { ok: true });
  const text = responseJson({ status: 201, headers: { 'content-type': 'text/plain' }, body: Buffer.from('hi') });
  assert.equal(text.body, 'hi');
  const bin = responseJson({ status: 200, headers: { 'content-type': 'image/png' }, body: Buffer.from([0x89, 0x50, 0xff]) });
  assert.equal(bin.bodyEncoding, 'base64');
  assert.equal(bin.body, Buffer.from([0x89, 0x50, 0xff]).toString('base64'));
});

test('--async takes only a body and its content type; --idempotency-key needs --async', () => {
  const ok = { header: [], async: true, idempotencyKey: 'k' };
  assert.doesNotThrow(() => checkInvokeFlags(ok, { 'content-type': 'application/json' }));
  assert.doesNotThrow(() => checkInvokeFlags({ header: [] }, { 'x-trace': '1' }));
  const refused = (opts: Parameters<typeof checkInvokeFlags>[0], headers: Record<string, string>, why: RegExp) =>
    assert.throws(() => checkInvokeFlags(opts, headers), (e: unknown) => e instanceof CliError && e.exitCode === 1 && why.test(e.message));
  refused({ header: [], idempotencyKey: 'k' }, {}, /--idempotency-key needs --async/);
  refused({ header: [], async: true, method: 'GET' }, {}, /--method and --path/);
  refused({ header: [], async: true, path: '/x' }, {}, /--method and --path/);
  refused({ header: [], async: true }, { 'x-trace': '1' }, /--header x-trace cannot be sent/);
});
