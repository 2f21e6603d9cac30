import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CommanderError } from 'commander';
import { createProgram, parsePort, type Handlers } from './program.ts';

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
    versions: record('versions'),
    rm: record('rm'),
    invoke: record('invoke'),
    logs: record('logs'),
  };
  let exit = -1;
  const program = createProgram(handlers, '9.9.9', (code) => {
    exit = code;
  });
  program.exitOverride();
  program.configureOutput({ writeErr: () => {}, writeOut: () => {}, outputError: () => {} });
  for (const c of program.commands) {
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

test('up: port, host, data dir and examples flags', async () => {
  const c = await parse(['up', '--port', '0', '--host', '0.0.0.0', '--data-dir', '/tmp/d', '--examples', '--json']);
  assert.equal(c.verb, 'up');
  assert.deepEqual(c.args[0], { port: 0, host: '0.0.0.0', dataDir: '/tmp/d', examples: true, json: true });
  const bare = await parse(['up']);
  assert.deepEqual(bare.args[0], {});
  await rejects(['up', '--port', '70000'], 'commander.invalidArgument');
  await rejects(['up', '--port', 'http'], 'commander.invalidArgument');
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
