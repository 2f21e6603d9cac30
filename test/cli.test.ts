/**
 * End to end: a real node started with `continuum up`, driven by the real `continuum` command as child
 * processes. Asserts on stdout JSON and exit codes only — what scripts and CI rely on.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../bin/continuum.mjs', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

let work: string;
let dataDir: string;
let node: ChildProcess | undefined;
let nodeInfo: { url: string; apiUrl: string; tokenPath: string; ready: boolean };

function baseEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, CONTINUUM_DATA: dataDir, CI: 'true', ...extra };
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

before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'continuum-cli-e2e-'));
  dataDir = path.join(work, 'data');
  await writeFile(path.join(work, 'echo.ts'), ECHO_TS);
  node = spawn(process.execPath, [BIN, 'up', '--port', '0', '--data-dir', dataDir, '--json'], { cwd: work, env: baseEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  node.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const lines = createInterface({ input: node.stdout! });
  const first = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`continuum up did not become ready in 60s; stderr: ${stderr}`)), 60_000);
    lines.once('line', (line) => {
      clearTimeout(timer);
      resolve(line);
    });
    node!.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`continuum up exited with ${code}; stderr: ${stderr}`));
    });
  });
  nodeInfo = JSON.parse(first);
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

  it('logs --follow streams new lines as NDJSON', async () => {
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
