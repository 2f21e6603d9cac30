import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CommanderError } from 'commander';
import { allCommands, createProgram, parseDelay, parsePort, parseSize, type Handlers } from './program.ts';

type Call = { verb: string; args: unknown[] };

/** Parse argv with handlers that only record what they were given. */
async function parse(argv: string[]): Promise<Call> {
  const calls: Call[] = [];
  const record = (verb: string) => async (...args: unknown[]) => {
    calls.push({ verb, args });
    return 0;
  };
  const handlers: Handlers = {
    up: record('up'),
    deploy: record('deploy'),
    ls: record('ls'),
    status: record('status'),
    versions: record('versions'),
    rm: record('rm'),
    invoke: record('invoke'),
    logs: record('logs'),
    invocation: record('invocation'),
    invocations: record('invocations'),
    queue: {
      create: record('queue create'),
      ls: record('queue ls'),
      show: record('queue show'),
      rm: record('queue rm'),
      purge: record('queue purge'),
      send: record('queue send'),
      dlq: record('queue dlq'),
      redrive: record('queue redrive'),
    },
    image: { build: record('image build') },
  };
  let exit = -1;
  const program = createProgram(handlers, '9.9.9', (code) => {
    exit = code;
  });
  program.exitOverride();
  program.configureOutput({ writeErr: () => {}, writeOut: () => {}, outputError: () => {} });
  for (const c of allCommands(program)) {
    c.exitOverride();
    c.configureOutput({ writeErr: () => {}, writeOut: () => {}, outputError: () => {} });
  }
  await program.parseAsync(argv, { from: 'user' });
  assert.equal(calls.length, 1);
  assert.equal(exit, 0);
  return calls[0] as Call;
}

async function rejects(argv: string[], code: string): Promise<void> {
  await assert.rejects(parse(argv), (err: unknown) => err instanceof CommanderError && err.code === code && err.exitCode === 1);
}

test('up: port, host, data dir, examples and nats flags', async () => {
  const c = await parse(['up', '--port', '0', '--host', '0.0.0.0', '--data-dir', '/tmp/d', '--examples', '--nats', 'nats://127.0.0.1:4222', '--json']);
  assert.equal(c.verb, 'up');
  assert.deepEqual(c.args[0], { port: 0, host: '0.0.0.0', dataDir: '/tmp/d', examples: true, nats: 'nats://127.0.0.1:4222', json: true });
  const bare = await parse(['up']);
  assert.deepEqual(bare.args[0], {});
  await rejects(['up', '--port', '70000'], 'commander.invalidArgument');
  await rejects(['up', '--port', 'http'], 'commander.invalidArgument');
  const kept = await parse(['up', '--records-max-age', '2d', '--records-max-size', '500MB']);
  assert.deepEqual(kept.args[0], { recordsMaxAge: 2 * 86_400_000, recordsMaxSize: 500_000_000 });
  await rejects(['up', '--records-max-size', 'lots'], 'commander.invalidArgument');
});

test('parseSize: bytes with decimal or binary units', () => {
  assert.equal(parseSize('1048576'), 1_048_576);
  assert.equal(parseSize('2GiB'), 2 * 2 ** 30);
  assert.equal(parseSize('1.5 kb'), 1500);
  for (const bad of ['', 'MB', '-1MB', '1 TB', '0']) assert.throws(() => parseSize(bad), bad);
});

test('deploy: path, name and tier choices', async () => {
  const c = await parse(['deploy', './hello.ts', '--name', 'hello', '--tier', 'isolate', '-v']);
  assert.deepEqual(c.args.slice(0, 2), ['./hello.ts', { name: 'hello', tier: 'isolate', verbose: true }]);
  await rejects(['deploy', './x.ts', '--tier', 'quantum'], 'commander.invalidArgument');
  await rejects(['deploy'], 'commander.missingArgument');
});

test('invoke: repeatable headers, method upper-cased, path must be absolute', async () => {
  const c = await parse(['invoke', 'hello', '-d', '{"a":1}', '-H', 'x-a: 1', '--header', 'x-b:2', '-X', 'put', '--path', '/items/1', '--json']);
  assert.deepEqual(c.args.slice(0, 2), ['hello', { data: '{"a":1}', header: ['x-a: 1', 'x-b:2'], method: 'PUT', path: '/items/1', json: true }]);
  const bare = await parse(['invoke', 'hello']);
  assert.deepEqual(bare.args[1], { header: [] });
  await rejects(['invoke', 'hello', '--path', 'items'], 'commander.invalidArgument');
  await rejects(['invoke', 'hello', '-X', 'GE T'], 'commander.invalidArgument');
});

test('invoke --async with an idempotency key; the key is bounded', async () => {
  const c = await parse(['invoke', 'hello', '--async', '--idempotency-key', 'order-7', '-d', '{}']);
  assert.deepEqual(c.args[1], { header: [], async: true, idempotencyKey: 'order-7', data: '{}' });
  await rejects(['invoke', 'hello', '--async', '--idempotency-key', 'k'.repeat(257)], 'commander.invalidArgument');
});

test('invocation: --wait, and --timeout (a duration) implies it', async () => {
  const c = await parse(['invocation', '01a209a5-d5f0-72b3-8121-92108a074038', '--wait', '--json']);
  assert.deepEqual(c.args, ['01a209a5-d5f0-72b3-8121-92108a074038', { wait: true, json: true }]);
  const t = await parse(['invocation', 'x', '--timeout', '90s']);
  assert.deepEqual(t.args[1], { timeout: 90_000, wait: true });
  await rejects(['invocation', 'x', '--timeout', '0s'], 'commander.invalidArgument');
  await rejects(['invocation', 'x', '--timeout', 'soon'], 'commander.invalidArgument');
  await rejects(['invocation'], 'commander.missingArgument');
});

test('queue verbs: names, aliases and their flags', async () => {
  assert.deepEqual((await parse(['queue', 'create', 'jobs', '--json'])).args.slice(0, 2), ['jobs', { json: true }]);
  assert.equal((await parse(['queue', 'ls'])).verb, 'queue ls');
  assert.equal((await parse(['queue', 'list', '--json'])).verb, 'queue ls');
  assert.equal((await parse(['queue', 'show', 'jobs'])).verb, 'queue show');
  assert.equal((await parse(['queue', 'remove', 'jobs'])).verb, 'queue rm');
  assert.equal((await parse(['queue', 'purge', 'jobs'])).verb, 'queue purge');
  const dlq = await parse(['queue', 'dlq', 'jobs', '--limit', '5']);
  assert.deepEqual(dlq.args.slice(0, 2), ['jobs', { limit: 5 }]);
  const redrive = await parse(['queue', 'redrive', 'jobs', '--id', 'a', '--id', 'b']);
  assert.deepEqual(redrive.args.slice(0, 2), ['jobs', { id: ['a', 'b'] }]);
  assert.deepEqual((await parse(['queue', 'redrive', 'jobs'])).args[1], { id: [] });
  await rejects(['queue', 'dlq', 'jobs', '--limit', '0'], 'commander.invalidArgument');
  await rejects(['queue', 'dlq', 'jobs', '--limit', '1001'], 'commander.invalidArgument');
  await rejects(['queue', 'create'], 'commander.missingArgument');
  await rejects(['queue', 'drain', 'jobs'], 'commander.unknownCommand');
  await rejects(['queue', 'ls', '--colour'], 'commander.unknownOption');
});

test('queue send: repeated --data is a batch, keys pair with it, --delay is whole seconds', async () => {
  const c = await parse(['queue', 'send', 'jobs', '-d', 'a', '--data', '@b.json', '--delay', '1m30s', '--idempotency-key', 'k1', '--idempotency-key', 'k2', '--base64']);
  assert.deepEqual(c.args.slice(0, 2), ['jobs', { data: ['a', '@b.json'], delay: 90, idempotencyKey: ['k1', 'k2'], base64: true }]);
  assert.deepEqual((await parse(['queue', 'send', 'jobs'])).args[1], { data: [], idempotencyKey: [] });
  await rejects(['queue', 'send', 'jobs', '--delay', '13h'], 'commander.invalidArgument');
  await rejects(['queue', 'send', 'jobs', '--delay', '500ms'], 'commander.invalidArgument');
  await rejects(['queue', 'send', 'jobs', '--idempotency-key', ''], 'commander.invalidArgument');
});

test('parseDelay: whole seconds from 0 to 12h', () => {
  assert.equal(parseDelay('0s'), 0);
  assert.equal(parseDelay('2m'), 120);
  assert.equal(parseDelay('12h'), 43_200);
  for (const bad of ['12h1s', '1.5s', '10', 'later']) assert.throws(() => parseDelay(bad), bad);
});

test('invocations: optional name, filters, paging', async () => {
  const c = await parse(['invocations', 'hello', '--outcome', 'error', '--error-code', 'timeout', '--cold', '--tier', 'isolate', '--since', '1h', '--until', '5m', '--limit', '50', '--cursor', 'abc']);
  assert.deepEqual(c.args.slice(0, 2), ['hello', { outcome: 'error', errorCode: 'timeout', cold: true, tier: 'isolate', since: '1h', until: '5m', limit: 50, cursor: 'abc' }]);
  const all = await parse(['invocations', '--all', '--warm', '--json']);
  assert.deepEqual(all.args.slice(0, 2), [undefined, { all: true, warm: true, json: true }]);
  await rejects(['invocations', '--outcome', 'maybe'], 'commander.invalidArgument');
  await rejects(['invocations', '--limit', '0'], 'commander.invalidArgument');
});

test('logs: follow, invocation, since and search', async () => {
  const c = await parse(['logs', 'hello', '-f', '--since', '10m', '--search', 'boom', '--json']);
  assert.deepEqual(c.args.slice(0, 2), ['hello', { follow: true, since: '10m', search: 'boom', json: true }]);
  const inv = await parse(['logs', 'hello', '--invocation', 'inv_1']);
  assert.deepEqual(inv.args[1], { invocation: 'inv_1' });
});

test('ls, versions and rm (with aliases); unknown verbs, options and extra arguments are usage errors', async () => {
  assert.equal((await parse(['ls', '--json'])).verb, 'ls');
  assert.equal((await parse(['list'])).verb, 'ls');
  assert.deepEqual((await parse(['versions', 'hello'])).args[0], 'hello');
  assert.deepEqual((await parse(['remove', 'hello'])).args[0], 'hello');
  await rejects(['deplyo', 'x'], 'commander.unknownCommand');
  await rejects(['ls', '--colour'], 'commander.unknownOption');
  await rejects(['rm', 'a', 'b'], 'commander.excessArguments');
});

test('parsePort accepts 0-65535 only', () => {
  assert.equal(parsePort('8080'), 8080);
  assert.equal(parsePort('0'), 0);
  for (const bad of ['-1', '65536', '80.5', '', 'abc']) assert.throws(() => parsePort(bad), bad);
});
