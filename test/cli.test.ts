/**
 * End to end: a real node started with `continuum up`, driven by the real `continuum` command as child
 * processes. Asserts on stdout JSON and exit codes only — what scripts and CI rely on.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { natsDurability } from '../src/store/nats/queues.ts';
import { natsSkipReason, NatsTestServer } from '../src/store/nats/testing.ts';

const BIN = fileURLToPath(new URL('../bin/continuum.mjs', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

let work: string;
let dataDir: string;
let node: ChildProcess | undefined;
let nodeInfo: UpInfo;

function baseEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, CONTINUUM_DATA: dataDir, CI: 'true', CONTINUUM_CONTAINER_TIERS: '0', ...extra };
  if (!('CONTINUUM_URL' in extra)) delete env.CONTINUUM_URL;
  if (!('CONTINUUM_TOKEN' in extra)) delete env.CONTINUUM_TOKEN;
  delete env.PORT;
  return env;
}

function cli(args: string[], opts: { env?: Record<string, string>; input?: string } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: work, env: baseEnv(opts.env), stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(opts.input ?? '');
  });
}

/** Run a --json verb and parse its stdout; fails with the captured output when the exit code differs. */
async function cliJson<T = Record<string, unknown>>(args: string[], expectCode = 0, opts: { env?: Record<string, string>; input?: string } = {}): Promise<T> {
  const r = await cli([...args, '--json'], opts);
  assert.equal(r.code, expectCode, `continuum ${args.join(' ')} → ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    assert.fail(`stdout is not one JSON document: ${JSON.stringify(r.stdout)}`);
  }
}

/** Poll `check` until it returns a value, or fail after `ms`. */
async function until<T>(what: string, check: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const v = await check();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const ECHO_TS = `
export default {
  async fetch(request: Request, env: { GREETING?: string }): Promise<Response> {
    const url = new URL(request.url);
    const body = await request.text();
    console.log('echo ' + request.method + ' ' + url.pathname + ' ' + body);
    return Response.json({ method: request.method, path: url.pathname, body, greeting: env.GREETING ?? null });
  },
};
`;

interface UpInfo {
  url: string;
  apiUrl: string;
  tokenPath: string;
  nats: string | null;
  queueDurability: { powerLoss: boolean | null; detail: string };
  ready: boolean;
}

/** `continuum up --json` with `args`: the process and its ready line. */
async function startUp(args: string[]): Promise<{ child: ChildProcess; info: UpInfo }> {
  const child = spawn(process.execPath, [BIN, 'up', '--port', '0', '--json', ...args], { cwd: work, env: baseEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const lines = createInterface({ input: child.stdout! });
  const first = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`continuum up did not become ready in 60s; stderr: ${stderr}`)), 60_000);
    lines.once('line', (line) => {
      clearTimeout(timer);
      resolve(line);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`continuum up exited with ${code}; stderr: ${stderr}`));
    });
  });
  return { child, info: JSON.parse(first) as UpInfo };
}

before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'continuum-cli-e2e-'));
  dataDir = path.join(work, 'data');
  await writeFile(path.join(work, 'echo.ts'), ECHO_TS);
  ({ child: node, info: nodeInfo } = await startUp(['--data-dir', dataDir, '--require-power-safe']));
});

after(async () => {
  if (node && node.exitCode === null && node.signalCode === null) {
    node.kill('SIGKILL');
    await new Promise((resolve) => node!.once('exit', resolve));
  }
  await rm(work, { recursive: true, force: true });
});

describe('continuum CLI against a running node', () => {
  let versionId: string;

  it('up prints the URL, the console URL, the admin token path and ready', async () => {
    assert.match(nodeInfo.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(nodeInfo.apiUrl, `${nodeInfo.url}/v1`);
    assert.equal(nodeInfo.tokenPath, path.join(dataDir, 'admin-token'));
    assert.equal(nodeInfo.ready, true);
    assert.match(await readFile(nodeInfo.tokenPath, 'utf8'), /\S/);
    assert.equal(nodeInfo.nats, null);
    assert.equal(nodeInfo.queueDurability.powerLoss, true, 'the embedded queue store syncs before it acknowledges (so --require-power-safe let it start)');
  });

  it('deploy a single file (name from the file name) returns the function and its version', async () => {
    const res = await cliJson<{ function: { name: string; activeVersion: string; tier: string }; version: { id: string; functionName: string } }>(['deploy', 'echo.ts']);
    assert.equal(res.function.name, 'echo');
    assert.equal(res.function.tier, 'isolate');
    assert.equal(res.version.functionName, 'echo');
    assert.match(res.version.id, /^v_/);
    assert.equal(res.function.activeVersion, res.version.id);
    versionId = res.version.id;
  });

  it('ls lists it with its active version', async () => {
    const res = await cliJson<{ items: { name: string; activeVersion: string }[] }>(['ls']);
    const echo = res.items.find((f) => f.name === 'echo');
    assert.equal(echo?.activeVersion, versionId);
    const human = await cli(['ls']);
    assert.equal(human.code, 0);
    assert.match(human.stdout, /^NAME\s+TIER\s+ACTIVE VERSION\s+INSTANCES\s+UPDATED\n/);
    assert.match(human.stdout, new RegExp(`echo\\s+isolate\\s+${versionId}`));
  });

  it('invoke passes the body as a POST to / and prints the response', async () => {
    const res = await cliJson<{ status: number; headers: Record<string, string>; body: { method: string; path: string; body: string } }>(['invoke', 'echo', '--data', '{"x":1}']);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { method: 'POST', path: '/', body: '{"x":1}', greeting: null });
    const human = await cli(['invoke', 'echo', '--data', '-'], { input: 'from stdin' });
    assert.equal(human.code, 0, human.stderr);
    assert.deepEqual(JSON.parse(human.stdout), { method: 'POST', path: '/', body: 'from stdin', greeting: null });
  });

  it('invoke with --method and --path reaches the function through /fn/', async () => {
    const res = await cliJson<{ status: number; body: { method: string; path: string } }>(['invoke', 'echo', '-X', 'GET', '--path', '/items/7']);
    assert.equal(res.status, 200);
    assert.equal(res.body.method, 'GET');
    assert.equal(res.body.path, '/items/7');
  });

  it('logs shows the lines the function wrote', async () => {
    let items: { message: string; functionName: string; invocationId: string }[] = [];
    // Records are written asynchronously; give them a moment.
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      items = (await cliJson<{ items: typeof items }>(['logs', 'echo'])).items;
      if (items.some((l) => l.message.includes('echo POST / {"x":1}'))) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const line = items.find((l) => l.message.includes('echo POST / {"x":1}'));
    assert.ok(line, JSON.stringify(items));
    assert.equal(line.functionName, 'echo');
    const one = await cliJson<{ items: { message: string }[] }>(['logs', 'echo', '--invocation', line.invocationId]);
    assert.deepEqual(one.items.map((l) => l.message), [line.message]);
    const searched = await cliJson<{ items: { message: string }[] }>(['logs', 'echo', '--search', 'from stdin', '--since', '10m']);
    assert.ok(searched.items.length >= 1 && searched.items.every((l) => l.message.includes('from stdin')));
    const human = await cli(['logs', 'echo', '--search', 'from stdin']);
    assert.equal(human.code, 0);
    assert.match(human.stdout, /^\d{4}-\d{2}-\d{2}T\S+Z \w+\s+\[\S+\] echo POST \/ from stdin$/m);
  });

  it('invocations lists records with filters and pages through them by cursor', async () => {
    for (let i = 0; i < 3; i++) await cli(['invoke', 'echo', '--data', `page-${i}`]);
    const first = await cliJson<{ items: { id: string; functionName: string; phases: { totalMs: number } }[]; nextCursor: string | null }>(['invocations', 'echo', '--limit', '2', '--warm']);
    assert.equal(first.items.length, 2);
    assert.ok(first.items.every((r) => r.functionName === 'echo' && r.phases.totalMs > 0));
    assert.ok(first.nextCursor);
    const next = await cliJson<{ items: { id: string }[] }>(['invocations', 'echo', '--limit', '2', '--warm', '--cursor', first.nextCursor]);
    assert.ok(next.items.length >= 1);
    assert.ok(!next.items.some((r) => first.items.some((f) => f.id === r.id)), 'pages do not overlap');
    const all = await cliJson<{ items: unknown[]; nextCursor: null }>(['invocations', 'echo', '--all']);
    assert.ok(all.items.length >= 3);
    assert.equal(all.nextCursor, null);
    const none = await cli(['invocations', 'echo', '--error-code', 'timeout']);
    assert.equal(none.code, 0);
    assert.match(none.stdout, /no invocation records match/);
    const human = await cli(['invocations', 'echo', '--limit', '1']);
    assert.match(human.stdout, /^ID\s+FUNCTION\s+STARTED\s+OUTCOME/m);
    assert.match(human.stdout, /more: repeat with --cursor \S+/);
    const bad = await cli(['invocations', 'echo', '--since', 'soon']);
    assert.equal(bad.code, 1);
  });

  it('logs --follow streams new lines (server-sent events) as NDJSON', async () => {
    const child = spawn(process.execPath, [BIN, 'logs', 'echo', '--follow', '--json', '--search', 'follow-me'], { cwd: work, env: baseEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const lines = createInterface({ input: child.stdout });
      const got = new Promise<string>((resolve) => lines.once('line', resolve));
      // The stream is open once the CLI is connected; invoke until the line arrives.
      let line: string | undefined;
      const deadline = Date.now() + 20_000;
      while (line === undefined && Date.now() < deadline) {
        await cli(['invoke', 'echo', '--data', 'follow-me']);
        line = await Promise.race([got, new Promise<undefined>((r) => setTimeout(() => r(undefined), 250))]);
      }
      assert.ok(line, 'no line arrived on the follow stream');
      const parsed = JSON.parse(line) as { message: string; functionName: string };
      assert.equal(parsed.functionName, 'echo');
      assert.match(parsed.message, /follow-me/);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  });

  it('deploy a continuum.yaml deploys each function with its config', async () => {
    await mkdir(path.join(work, 'proj'), { recursive: true });
    await writeFile(path.join(work, 'proj', 'a.ts'), ECHO_TS);
    await writeFile(path.join(work, 'proj', 'continuum.yaml'), [
      'functions:',
      '  greet-a:',
      '    path: ./a.ts',
      '    env:',
      '      GREETING: hola',
      '  greet-b:',
      '    path: ../echo.ts',
      '    limits: { timeoutMs: 5000 }',
    ].join('\n'));
    const res = await cliJson<{ items: { function: { name: string }; version: { id: string } }[] }>(['deploy', 'proj/continuum.yaml']);
    assert.deepEqual(res.items.map((r) => r.function.name), ['greet-a', 'greet-b']);
    const a = await cliJson<{ body: { greeting: string } }>(['invoke', 'greet-a']);
    assert.equal(a.body.greeting, 'hola');
  });

  it('an invalid continuum.yaml fails before any upload, naming the line', async () => {
    await writeFile(path.join(work, 'proj', 'bad.yaml'), [
      'functions:',
      '  bad-one:',
      '    path: ./a.ts',
      '  bad-two:',
      '    path: ./a.ts',
      '    limits:',
      '      timeoutMs: -5',
    ].join('\n'));
    const err = await cliJson<{ error: { code: string; message: string; details: { line: number } } }>(['deploy', 'proj/bad.yaml'], 1);
    assert.equal(err.error.code, 'bad_request');
    assert.equal(err.error.details.line, 7);
    assert.match(err.error.message, /bad\.yaml:7:\d+: functions\.bad-two\.limits\.timeoutMs must be >= 1/);
    const human = await cli(['deploy', 'proj/bad.yaml']);
    assert.equal(human.code, 1);
    assert.equal(human.stdout, '');
    assert.match(human.stderr, /^error: bad_request: proj\/bad\.yaml:7:\d+: functions\.bad-two\.limits\.timeoutMs must be >= 1\n$/);
    const names = (await cliJson<{ items: { name: string }[] }>(['ls'])).items.map((f) => f.name);
    assert.ok(!names.includes('bad-one'), 'nothing was deployed');
  });

  it('deploy a directory packs it (with node_modules) and the server bundles it', async () => {
    const dir = path.join(work, 'dir-fn');
    await mkdir(path.join(dir, 'node_modules', 'shout'), { recursive: true });
    await mkdir(path.join(dir, '.git'), { recursive: true });
    await writeFile(path.join(dir, '.git', 'HEAD'), 'ref: refs/heads/main');
    await writeFile(path.join(dir, 'package.json'), JSON.stringify({ name: 'dir-fn', version: '1.0.0', type: 'module', main: 'index.js', dependencies: { shout: '1.0.0' } }));
    await writeFile(path.join(dir, 'node_modules', 'shout', 'package.json'), JSON.stringify({ name: 'shout', version: '1.0.0', license: 'MIT', type: 'module', main: 'index.js' }));
    await writeFile(path.join(dir, 'node_modules', 'shout', 'index.js'), 'export const shout = (s) => s.toUpperCase() + "!";');
    await writeFile(path.join(dir, 'index.js'), 'import { shout } from "shout";\nexport default { async fetch(req) { return new Response(shout(await req.text())); } };\n');
    const res = await cliJson<{ function: { name: string }; version: { dependencies: { name: string }[] } }>(['deploy', 'dir-fn', '--name', 'shouter']);
    assert.equal(res.function.name, 'shouter');
    assert.ok(res.version.dependencies.some((d) => d.name === 'shout'), JSON.stringify(res.version.dependencies));
    const out = await cli(['invoke', 'shouter', '-d', 'hey']);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, 'HEY!');
  });

  it('versions lists every build with the active one', async () => {
    await writeFile(path.join(work, 'echo.ts'), ECHO_TS + '\n// v2\n');
    const second = await cliJson<{ version: { id: string } }>(['deploy', 'echo.ts']);
    const res = await cliJson<{ activeVersion: string; items: { id: string }[] }>(['versions', 'echo']);
    assert.equal(res.activeVersion, second.version.id);
    assert.deepEqual(new Set(res.items.map((v) => v.id)), new Set([versionId, second.version.id]));
  });

  it('user errors exit 1 with the registry error body', async () => {
    const missing = await cliJson<{ error: { code: string; retryable: boolean } }>(['invoke', 'no-such-fn'], 1);
    assert.deepEqual(missing.error.code, 'not_found');
    const noLogs = await cliJson<{ error: { code: string } }>(['logs', 'no-such-fn'], 1);
    assert.equal(noLogs.error.code, 'not_found');
    const badName = await cliJson<{ error: { code: string } }>(['rm', 'Bad_Name'], 1);
    assert.equal(badName.error.code, 'bad_name');
    const badFlag = await cliJson<{ error: { code: string; message: string } }>(['deploy', 'echo.ts', '--tier', 'quantum'], 1);
    assert.equal(badFlag.error.code, 'bad_request');
    const noFile = await cliJson<{ error: { code: string } }>(['deploy', 'nope.ts'], 1);
    assert.equal(noFile.error.code, 'bad_request');
    const badToken = await cliJson<{ error: { code: string } }>(['ls'], 1, { env: { CONTINUUM_TOKEN: 'ctm_wrong' } });
    assert.equal(badToken.error.code, 'unauthorized');
    const human = await cli(['invoke', 'no-such-fn']);
    assert.equal(human.code, 1);
    assert.equal(human.stdout, '');
    assert.equal(human.stderr.split('\n').filter(Boolean).length, 1, 'one line, no stack trace');
    assert.match(human.stderr, /^error: not_found: /);
  });

  it('rm removes without a prompt', async () => {
    const res = await cliJson<{ name: string; removed: boolean }>(['rm', 'greet-b']);
    assert.deepEqual(res, { name: 'greet-b', removed: true });
    await cliJson(['versions', 'greet-b'], 1);
    const names = (await cliJson<{ items: { name: string }[] }>(['ls'])).items.map((f) => f.name);
    assert.ok(!names.includes('greet-b'));
  });

});

describe('queues and async invocations through the CLI', () => {
  it('queue create, send (batch, delay, idempotency), ls, show, purge and rm', async () => {
    const created = await cliJson<{ name: string; stats: { depth: number } }>(['queue', 'create', 'jobs']);
    assert.deepEqual([created.name, created.stats.depth], ['jobs', 0]);
    assert.equal((await cliJson<{ error: { code: string } }>(['queue', 'create', 'jobs'], 1)).error.code, 'conflict');
    const batch = await cliJson<{ items: { id: string; duplicate: boolean }[] }>(['queue', 'send', 'jobs', '-d', 'one', '--data', '{"n":2}', '--delay', '1h']);
    assert.equal(batch.items.length, 2);
    const first = await cliJson<{ items: { id: string; duplicate: boolean }[] }>(['queue', 'send', 'jobs', '-d', 'x', '--idempotency-key', 'once']);
    const again = await cliJson<{ items: { id: string; duplicate: boolean }[] }>(['queue', 'send', 'jobs', '-d', 'x', '--idempotency-key', 'once']);
    assert.deepEqual(again.items, [{ id: first.items[0]!.id, duplicate: true }]);
    const human = await cli(['queue', 'send', 'jobs', '--data', '-'], { input: 'from stdin' });
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^[0-9a-f-]{36}\n$/, 'the id alone, for scripts');

    const listed = await cliJson<{ items: { name: string; stats: { depth: number; ready: number; delayed: number; inFlight: number; deadLetters: number } }[] }>(['queue', 'ls']);
    const { depth, ready, delayed, inFlight, deadLetters } = listed.items.find((q) => q.name === 'jobs')!.stats;
    assert.deepEqual({ depth, ready, delayed, inFlight, deadLetters }, { depth: 4, ready: 2, delayed: 2, inFlight: 0, deadLetters: 0 });
    const table = await cli(['queue', 'ls']);
    assert.match(table.stdout, /^NAME\s+DEPTH\s+READY\s+DELAYED\s+IN FLIGHT\s+OLDEST\s+DEAD LETTERS\s+CONSUMERS\n/);
    assert.match(table.stdout, /^jobs\s+4\s+2\s+2\s+0\s+\S+\s+0\s+-$/m);
    const shown = await cliJson<{ name: string; consumers: string[]; stats: { depth: number } }>(['queue', 'show', 'jobs']);
    assert.deepEqual([shown.name, shown.stats.depth, shown.consumers], ['jobs', 4, []]);
    assert.match((await cli(['queue', 'show', 'jobs'])).stdout, /^depth\s+4 \(ready 2, delayed 2, in flight 0\)$/m);

    assert.deepEqual(await cliJson(['queue', 'purge', 'jobs']), { name: 'jobs', purged: 4 });
    assert.deepEqual(await cliJson(['queue', 'rm', 'jobs']), { name: 'jobs', removed: true });
    assert.equal((await cliJson<{ error: { code: string } }>(['queue', 'show', 'jobs'], 1)).error.code, 'not_found');
  });

  it('a missing queue and bad flags exit 1 with one line', async () => {
    for (const args of [['queue', 'show', 'ghost'], ['queue', 'send', 'ghost', '-d', 'x'], ['queue', 'dlq', 'ghost'], ['queue', 'rm', 'ghost']]) {
      assert.equal((await cliJson<{ error: { code: string } }>(args, 1)).error.code, 'not_found', args.join(' '));
    }
    const human = await cli(['queue', 'purge', 'ghost']);
    assert.equal(human.code, 1);
    assert.equal(human.stdout, '');
    assert.match(human.stderr, /^error: not_found: queue ghost does not exist\n$/);
    for (const args of [['queue', 'send', 'q', '--delay', 'soon'], ['queue', 'send', 'q', '--delay', '13h'], ['queue', 'dlq', 'q', '--limit', '0'], ['queue', 'frobnicate'], ['queue', 'create', 'Bad_Name'], ['invocation', 'not-a-uuid'], ['invoke', 'echo', '--idempotency-key', 'k']]) {
      const r = await cli(args);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr.split('\n').filter(Boolean).length, 1, `${args.join(' ')}: one line: ${r.stderr}`);
      assert.match(r.stderr, /^error: (bad_request|bad_name): /);
    }
  });

  it('deploy continuum.yaml with triggers, bindings and async; refused while a queue it names is missing', async () => {
    await mkdir(path.join(work, 'events'), { recursive: true });
    await writeFile(path.join(work, 'events', 'worker.js'), 'export default { async queue(batch) { for (const m of batch.messages) { if (String(m.body).startsWith("poison")) m.retry(); else m.ack(); } } };\n');
    await writeFile(path.join(work, 'events', 'af.js'), 'exports.handler = async (event, context) => { if (event.fail) throw new Error("boom " + event.fail); return { got: event, attempt: context.attempt }; };\n');
    await writeFile(path.join(work, 'events', 'continuum.yaml'), [
      'functions:',
      '  af:',
      '    path: ./af.js',
      '    async: { maxRetries: 0, onFailure: { queue: failures } }',
      '  worker:',
      '    path: ./worker.js',
      '    triggers:',
      '      - { type: queue, queue: work, maxRetries: 1, retryBaseDelayMs: 10, retryMaxDelayMs: 20, maxBatchWaitMs: 0 }',
      '    bindings: { OUT: { queue: results } }',
    ].join('\n'));
    await cliJson(['queue', 'create', 'work']);
    await cliJson(['queue', 'create', 'failures']);
    const refused = await cliJson<{ error: { code: string; message: string } }>(['deploy', 'events'], 1);
    assert.match(refused.error.message, /^events\/continuum\.yaml:5: functions\.worker\.bindings\.OUT\.queue: queue results does not exist; create it first with 'continuum queue create results'$/);
    assert.ok(!(await cliJson<{ items: { name: string }[] }>(['ls'])).items.some((f) => f.name === 'af'), 'nothing was deployed');

    await cliJson(['queue', 'create', 'results']);
    await cliJson(['deploy', 'events']);
    const fns = (await cliJson<{ items: { name: string; config: { triggers: { queue: string; maxRetries: number }[]; bindings: Record<string, { queue: string }>; async: { maxRetries: number; onFailure: unknown } } }[] }>(['ls'])).items;
    const worker = fns.find((f) => f.name === 'worker')!.config;
    assert.deepEqual([worker.triggers[0]?.queue, worker.triggers[0]?.maxRetries, worker.bindings], ['work', 1, { OUT: { queue: 'results' } }]);
    const af = fns.find((f) => f.name === 'af')!.config;
    assert.deepEqual([af.async.maxRetries, af.async.onFailure], [0, { queue: 'failures' }]);
  });

  it('a poison message lands in the dead letters; queue dlq lists it; redrive sends it back', async () => {
    await cliJson(['queue', 'send', 'work', '-d', 'fine', '-d', 'poison-pill']);
    type Dead = { id: string; body: string; attempts: number; reason: string; deadAt: number };
    const dead = await until('the poison message in the dead letters', async () => {
      const items = (await cliJson<{ items: Dead[] }>(['queue', 'dlq', 'work'])).items;
      return items.length === 1 ? items[0] : undefined;
    });
    assert.deepEqual([dead.body, dead.attempts], ['poison-pill', 2]);
    assert.match(dead.reason, /max_retries/);
    const human = await cli(['queue', 'dlq', 'work', '--limit', '10']);
    assert.match(human.stdout, /^ID\s+ATTEMPTS\s+REASON\s+LAST ERROR\s+DEAD\n/);
    assert.match(human.stdout, new RegExp(`^${dead.id}\\s+2\\s+max_retries\\S*\\s+retried by the function\\s+\\d+\\w+ ago$`, 'm'));
    const shown = await cliJson<{ consumers: string[]; stats: { depth: number; deadLetters: number } }>(['queue', 'show', 'work']);
    assert.deepEqual([shown.consumers, shown.stats.depth, shown.stats.deadLetters], [['worker'], 0, 1]);
    assert.equal((await cliJson<{ error: { code: string } }>(['queue', 'rm', 'work'], 1)).error.code, 'conflict', 'in use by worker');

    const none = await cli(['queue', 'redrive', 'work', '--id', 'not-a-dead-letter']);
    assert.equal(none.code, 0);
    assert.match(none.stderr, /1 of the 1 given id is not a dead letter of work/);
    assert.deepEqual(await cliJson(['queue', 'redrive', 'work', '--id', dead.id]), { name: 'work', redriven: 1 });
    // Redriven, it runs again from attempt 1 and dead-letters again.
    await until('the redriven message back in the dead letters', async () => {
      const items = (await cliJson<{ items: Dead[] }>(['queue', 'dlq', 'work'])).items;
      return items.length === 1 && items[0]!.id === dead.id && items[0]!.deadAt > dead.deadAt ? true : undefined;
    });
  });

  it('invoke --async prints the id; invocation --wait returns the outcome with the exit code to match', async () => {
    const accepted = await cliJson<{ invocationId: string; duplicate: boolean }>(['invoke', 'af', '--async', '-d', '{"n":1}', '--idempotency-key', 'order-1']);
    assert.equal(accepted.duplicate, false);
    const repeat = await cliJson<{ invocationId: string; duplicate: boolean }>(['invoke', 'af', '--async', '-d', '{"n":1}', '--idempotency-key', 'order-1']);
    assert.deepEqual(repeat, { invocationId: accepted.invocationId, duplicate: true });
    const done = await cliJson<{ kind: string; state: string; functionName: string; outcome: { result: { status: number; body: string } } }>(['invocation', accepted.invocationId, '--wait', '--timeout', '30s']);
    assert.deepEqual([done.kind, done.state, done.functionName, done.outcome.result.status], ['async', 'succeeded', 'af', 200]);
    assert.deepEqual(JSON.parse(done.outcome.result.body), { got: { n: 1 }, attempt: 1 });

    const submitted = await cli(['invoke', 'af', '--async', '-d', '{"fail":7}']);
    assert.equal(submitted.code, 0, submitted.stderr);
    const id = submitted.stdout.trim();
    assert.match(submitted.stdout, /^[0-9a-f-]{36}\n$/);
    const failed = await cli(['invocation', id, '--wait']);
    assert.equal(failed.code, 1, failed.stderr);
    assert.match(failed.stdout, /^state\s+failed \(attempt 1\)$/m);
    assert.match(failed.stderr, new RegExp(`^error: invocation ${id} did not succeed: function_error: .*boom 7\n$`));
    // The manifest's async.onFailure took effect: the failure record went to the failures queue.
    await until('the on-failure record', async () => ((await cliJson<{ stats: { depth: number } }>(['queue', 'show', 'failures'])).stats.depth === 1 ? true : undefined));

    const missing = await cliJson<{ error: { code: string } }>(['invocation', '01a209a5-0000-7000-8000-000000000000'], 1);
    assert.equal(missing.error.code, 'not_found');
  });

  it('invocation shows the execution record of a sync invocation', async () => {
    const res = await cliJson<{ headers: Record<string, string> }>(['invoke', 'echo', '-d', 'record me']);
    const id = res.headers['x-continuum-invocation-id']!;
    const record = await cliJson<{ id: string; functionName: string; outcome: string; status: number; trigger: string }>(['invocation', id, '--wait']);
    assert.deepEqual([record.id, record.functionName, record.outcome, record.status], [id, 'echo', 'ok', 200]);
    const human = await cli(['invocation', id]);
    assert.match(human.stdout, /^function\s+echo \(v_[0-9a-f]+, isolate\)$/m);
    assert.match(human.stdout, /^outcome\s+ok, HTTP 200$/m);
  });

  it('up refuses a NATS URL it cannot use, from --nats or CONTINUUM_NATS, before starting', async () => {
    const flag = await cliJson<{ error: { code: string; message: string } }>(['up', '--port', '0', '--data-dir', path.join(work, 'nats-data'), '--nats', 'http://127.0.0.1:4222'], 1);
    assert.match(flag.error.message, /^--nats "http:\/\/127\.0\.0\.1:4222" is not a NATS server URL/);
    const env = await cliJson<{ error: { code: string; message: string } }>(['up', '--port', '0', '--data-dir', path.join(work, 'nats-data')], 1, { env: { CONTINUUM_NATS: 'nats://' } });
    assert.match(env.error.message, /^CONTINUUM_NATS "nats:\/\/" is not a NATS server URL/);
  });

  it('up with NATS says what an acknowledged message survives on that server (catalogue 42)', { skip: natsSkipReason() }, async () => {
    const server = await NatsTestServer.start();
    let up: ChildProcess | undefined;
    try {
      const started = await startUp(['--data-dir', path.join(work, 'nats-up-data'), '--nats', server.url]);
      up = started.child;
      const version = /v(\d+\.\d+\.\d+)/.exec(execFileSync(server.binary, ['--version'], { encoding: 'utf8' }))![1]!;
      assert.equal(started.info.nats, server.url);
      assert.deepEqual(started.info.queueDurability, natsDurability(version));
      // Only a store known to survive a power loss passes --require-power-safe; a NATS server never is (the
      // node started above with the embedded store passed it).
      const refused = await cliJson<{ error: { code: string; message: string } }>(['up', '--port', '0', '--data-dir', path.join(work, 'nats-strict-data'), '--nats', server.url, '--require-power-safe'], 1);
      assert.equal(refused.error.code, 'bad_request');
      assert.equal(refused.error.message, `--require-power-safe: ${natsDurability(version).detail}`);
    } finally {
      if (up && up.exitCode === null && up.signalCode === null) {
        const exited = new Promise((resolve) => up!.once('exit', resolve));
        up.kill('SIGTERM');
        await exited;
      }
      await server.close();
    }
  });
});

describe('shutdown', () => {
  it('SIGTERM stops the node cleanly; then the CLI reports it cannot reach it with exit 2', async () => {
    const exited = new Promise<number | null>((resolve) => node!.once('exit', (code) => resolve(code)));
    node!.kill('SIGTERM');
    assert.equal(await exited, 0);
    const gone = await cliJson<{ error: { code: string; message: string } }>(['ls'], 2);
    assert.equal(gone.error.code, 'unavailable');
    const refused = await cliJson<{ error: { code: string; message: string; retryable: boolean } }>(['ls'], 2, { env: { CONTINUUM_URL: nodeInfo.url } });
    assert.equal(refused.error.code, 'unavailable');
    assert.equal(refused.error.retryable, true);
    assert.match(refused.error.message, /cannot reach Continuum at http:\/\/127\.0\.0\.1:\d+ \(connection refused\)/);
  });
});
