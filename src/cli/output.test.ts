import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { CliError } from './errors.ts';
import { functionsTable, instanceCount } from './commands/functions.ts';
import { formatLogLine } from './commands/logs.ts';
import { Output, fields, formatAge, formatSpan, isCI, table } from './output.ts';

function capture(tty: boolean): { stdout: PassThrough & { isTTY?: boolean }; stderr: PassThrough & { isTTY?: boolean }; text: () => { out: string; err: string } } {
  const stdout: PassThrough & { isTTY?: boolean } = new PassThrough();
  const stderr: PassThrough & { isTTY?: boolean } = new PassThrough();
  stderr.isTTY = tty;
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => (out += c.toString()));
  stderr.on('data', (c: Buffer) => (err += c.toString()));
  return { stdout, stderr, text: () => ({ out, err }) };
}

test('--json: stdout holds only the document; errors are the registry body on stdout', () => {
  const io = capture(true);
  const out = new Output(io, { json: true, verbose: false, env: {} });
  assert.equal(out.progress, false);
  out.step('packing');
  out.text('human text');
  out.result({ items: [] }, () => 'ignored');
  out.error(new CliError('not_found', 'nope'));
  const { out: stdout, err } = io.text();
  assert.equal(stdout, `${JSON.stringify({ items: [] }, null, 2)}\n{"error":{"code":"not_found","message":"nope","retryable":false}}\n`);
  assert.equal(err, '');
});

test('progress only on an interactive stderr outside CI; errors are one line on stderr', () => {
  const tty = capture(true);
  const out = new Output(tty, { json: false, verbose: false, env: {} });
  assert.equal(out.progress, true);
  out.step('packed 3 files');
  out.error(new CliError('bad_request', 'bad\nsecond line'));
  assert.equal(tty.text().err, 'packed 3 files\nerror: bad_request: bad\n');

  assert.equal(new Output(capture(true), { json: false, verbose: false, env: { CI: 'true' } }).progress, false);
  assert.equal(new Output(capture(false), { json: false, verbose: false, env: {} }).progress, false);
  assert.equal(isCI({ CI: '1' }), true);
  assert.equal(isCI({ CI: 'false' }), false);
  assert.equal(isCI({}), false);
});

test('tables, ages and log lines', () => {
  assert.equal(table(['A', 'BB'], [['xyz', '1'], ['q', '22']]), 'A    BB\nxyz  1\nq    22');
  const now = Date.UTC(2026, 0, 1, 12);
  assert.equal(formatAge(new Date(now - 5000).toISOString(), now), '5s ago');
  assert.equal(formatAge(new Date(now - 3 * 3600_000).toISOString(), now), '3h ago');
  assert.equal(formatAge(null, now), '-');
  assert.equal(formatAge(now - 90_000, now), '1m ago', 'epoch ms too');
  assert.equal(formatAge(now + 5000, now), '0s ago', 'clock skew is not negative');
  assert.deepEqual([850, 12_400, 95_000, 3 * 3600_000, 50 * 3600_000].map(formatSpan), ['850ms', '12s', '1m', '3h', '2d']);
  assert.equal(fields([['queue', 'jobs'], ['dead letters', '0'], ['consumers', '']]), 'queue         jobs\ndead letters  0\nconsumers');
  assert.equal(instanceCount(2), '2');
  assert.equal(instanceCount([{}, {}, {}]), '3');
  assert.equal(instanceCount({ idle: 1, busy: 2 }), '3');
  assert.equal(instanceCount(undefined), '-');
  const t = functionsTable([{ name: 'hello', tier: 'isolate', activeVersion: 'v_1', config: {}, createdAt: '', updatedAt: new Date(now - 60_000).toISOString(), instances: 1 }], now);
  assert.equal(t, 'NAME   TIER     ACTIVE VERSION  INSTANCES  UPDATED\nhello  isolate  v_1             1          1m ago');
  assert.match(functionsTable([]), /no functions yet/);
  assert.equal(formatLogLine({ ts: Date.UTC(2026, 0, 1), level: 'info', message: 'hi', invocationId: 'inv_1', functionName: 'hello' }), '2026-01-01T00:00:00.000Z info  [inv_1] hi');
});
