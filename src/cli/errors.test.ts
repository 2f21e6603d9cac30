import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ContinuumError } from '../core/errors.ts';
import { CliError, errorLine, exitCodeFor, toCliError } from './errors.ts';

test('exit codes follow who must act: caller and function → 1, platform → 2', () => {
  assert.equal(exitCodeFor('bad_request', 400), 1);
  assert.equal(exitCodeFor('not_found', 404), 1);
  assert.equal(exitCodeFor('unauthorized', 401), 1);
  assert.equal(exitCodeFor('rate_limited', 429), 1);
  assert.equal(exitCodeFor('function_error', 500), 1);
  assert.equal(exitCodeFor('timeout', 504), 1);
  assert.equal(exitCodeFor('internal', 500), 2);
  assert.equal(exitCodeFor('overloaded', 503), 2);
  assert.equal(exitCodeFor('unavailable', 503), 2);
  assert.equal(exitCodeFor('instance_crashed', 502), 2);
});

test('unknown codes from a newer server fall back to the HTTP status', () => {
  assert.equal(exitCodeFor('brand_new_caller_code', 422), 1);
  assert.equal(exitCodeFor('brand_new_platform_code', 500), 2);
  assert.equal(exitCodeFor(undefined, 502), 2);
  assert.equal(exitCodeFor(undefined, 404), 1);
});

test('a core ContinuumError keeps its code; unknown throws become internal with exit 2 and no stack', () => {
  const bad = toCliError(new ContinuumError('bad_name', 'name "X" is invalid'));
  assert.equal(bad.code, 'bad_name');
  assert.equal(bad.exitCode, 1);
  const boom = new Error('boom\n    at secret (/home/x/file.ts:1:1)');
  const internal = toCliError(boom);
  assert.equal(internal.code, 'internal');
  assert.equal(internal.exitCode, 2);
  assert.equal(errorLine(internal), 'error: internal: unexpected failure: boom');
  assert.ok(!errorLine(internal).includes('/home/x'));
});

test('file system errors are user errors with the path', () => {
  const err = toCliError(Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT', path: 'missing.ts' }));
  assert.equal(err.exitCode, 1);
  assert.equal(err.message, 'no such file or directory: missing.ts');
});

test('the --json error body has the registry shape', () => {
  const err = new CliError('not_found', 'function "x" not found', { status: 404 });
  assert.deepEqual(err.toBody(), { error: { code: 'not_found', message: 'function "x" not found', retryable: false } });
  assert.equal(errorLine(err), 'error: not_found: function "x" not found');
});
