/**
 * The isolate tier through a real node: real-world handler shapes, limits with their codes while a
 * canary keeps answering (catalogue 6, 13, 14), and a data-plane worker killed mid-flight.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request as httpRequest } from 'node:http';
import { packDirectory } from '../src/cli/pack.ts';
import { startTestNode, type TestNode } from './helpers/node.ts';

let node: TestNode;
before(async () => {
  node = await startTestNode({ isolateWorkers: 2 });
});
after(async () => {
  await node?.stop();
});

const ROOT_MODULES = fileURLToPath(new URL('../node_modules/', import.meta.url));

/**
 * A fixture as a user would upload it: its files plus a node_modules holding the dependency closure of
 * its package.json, copied from the repository's installed packages.
 */
function stageProject(dir: string): string {
  const staged = mkdtempSync(join(tmpdir(), `continuum-${dir}-`));
  cpSync(fileURLToPath(new URL(`./fixtures/build/${dir}/`, import.meta.url)), staged, { recursive: true });
  const pending = Object.keys(JSON.parse(readFileSync(join(staged, 'package.json'), 'utf8')).dependencies ?? {});
  const copied = new Set<string>();
  while (pending.length > 0) {
    const name = pending.pop()!;
    if (copied.has(name)) continue;
    copied.add(name);
    const from = join(ROOT_MODULES, name);
    if (!existsSync(from)) continue; // an optional dependency that is not installed
    cpSync(from, join(staged, 'node_modules', name), { recursive: true });
    pending.push(...Object.keys(JSON.parse(readFileSync(join(from, 'package.json'), 'utf8')).dependencies ?? {}));
  }
  return staged;
}

async function deployDir(name: string, dir: string): Promise<void> {
  const staged = stageProject(dir);
  const upload = await packDirectory(staged);
  rmSync(staged, { recursive: true, force: true });
  const res = await fetch(`${node.url}/v1/functions/${name}/deploy?filename=${upload.filename}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${node.token}`, 'content-type': upload.contentType },
    body: upload.body,
  });
  assert.equal(res.status, 201, `${dir}: ${await res.text()}`);
}

/** PIDs of this process's children: the node under test runs in-process, so its workers are ours. */
function childPids(): number[] {
  const pids: number[] = [];
  for (const task of readdirSync('/proc/self/task')) {
    const text = readFileSync(`/proc/self/task/${task}/children`, 'utf8').trim();
    if (text) pids.push(...text.split(/\s+/).map(Number));
  }
  return pids;
}

describe('real-world handler shapes', () => {
  test('a Hono app (fetch style) from a directory with node_modules', async () => {
    await deployDir('hono-app', 'hono');
    assert.equal(await (await node.fn('/fn/hono-app/')).text(), 'hello from hono');
    assert.deepEqual(await (await node.fn('/fn/hono-app/json/ada')).json(), { hello: 'ada' });
  });

  test('an Express app wrapped by serverless-http (Lambda style)', async () => {
    await deployDir('express-app', 'express');
    const res = await node.fn('/fn/express-app/');
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'hello from express');
    const echo = await node.fn('/fn/express-app/echo', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ a: 1 }) });
    assert.deepEqual(await echo.json(), { got: { a: 1 }, path: '/echo' });
  });

  test('a Lambda handler with the REST API (payload 1.0) event and response shapes', async () => {
    const source = `export const handler = async (event, context) => ({
      statusCode: 201,
      headers: { 'content-type': 'application/json' },
      multiValueHeaders: { 'x-multi': ['a', 'b'] },
      body: JSON.stringify({ method: event.httpMethod, path: event.path, q: event.multiValueQueryStringParameters, body: event.body, fn: context.functionName, v2: 'rawPath' in event }),
      isBase64Encoded: false,
    });`;
    const res = await node.deploy('rest-v1', source, 'index.js', { handler: { lambdaPayload: '1.0' } });
    assert.equal(res.status, 201, JSON.stringify(res.json));
    assert.equal(res.json.version.format, 'lambda');
    const r = await node.fn('/fn/rest-v1/items?a=1&a=2', { method: 'PUT', body: 'payload' });
    assert.equal(r.status, 201);
    assert.equal(r.headers.get('x-multi'), 'a, b');
    assert.deepEqual(await r.json(), { method: 'PUT', path: '/items', q: { a: ['1', '2'] }, body: 'payload', fn: 'rest-v1', v2: false });
  });

  test('a plain OpenWhisk main(params) action gets query and JSON body as params', async () => {
    const res = await node.deploy('ow', 'function main(params) { return { greeting: "hi " + params.name, n: params.n, method: params.__ow_method }; }\nmodule.exports.main = main;');
    assert.equal(res.status, 201, JSON.stringify(res.json));
    assert.equal(res.json.version.format, 'openwhisk');
    const r = await node.fn('/fn/ow/?name=ada', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"n":3}' });
    assert.deepEqual(await r.json(), { greeting: 'hi ada', n: 3, method: 'post' });
  });

  test('structuredClone follows the spec where functions rely on it', async () => {
    const source = `export default { fetch() {
      const a = { n: 1, m: new Map([[1, { d: new Date(5) }]]), s: new Set(['x']), b: new Uint8Array([1, 2]), e: new RangeError('r'), re: /a+/g };
      a.self = a;
      const c = structuredClone(a);
      let fnError = null;
      try { structuredClone({ f() {} }); } catch (err) { fnError = [err instanceof DOMException, err.name]; }
      return Response.json({
        distinct: c !== a, cycle: c.self === c, map: c.m.get(1).d.getTime(), set: c.s.has('x'), bytes: [...c.b],
        error: [c.e instanceof RangeError, c.e.message], re: [c.re.source, c.re.flags], fnError,
      });
    } }`;
    assert.equal((await node.deploy('clone', source)).status, 201);
    assert.deepEqual(await (await node.fn('/fn/clone/')).json(), {
      distinct: true, cycle: true, map: 5, set: true, bytes: [1, 2], error: [true, 'r'], re: ['a+', 'g'], fnError: [true, 'DataCloneError'],
    });
  });

  test('bodies stream both ways', async () => {
    const source = `export default { async fetch(req) {
      let n = 0; const reader = req.body.getReader();
      for (;;) { const { done, value } = await reader.read(); if (done) break; n += value.byteLength; }
      let i = 0;
      return new Response(new ReadableStream({ pull(c) { if (i++ < 64) c.enqueue(new TextEncoder().encode('x'.repeat(16384))); else { c.enqueue(new TextEncoder().encode(' ' + n)); c.close(); } } }));
    } }`;
    assert.equal((await node.deploy('stream', source)).status, 201);
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 100; i++) c.enqueue(new Uint8Array(10_000));
        c.close();
      },
    });
    const res = await node.fn('/fn/stream/', { method: 'POST', body, duplex: 'half' } as RequestInit);
    const text = await res.text();
    assert.equal(text.length, 64 * 16384 + ' 1000000'.length);
    assert.ok(text.endsWith(' 1000000'));
  });
});

describe('responses on the wire', () => {
  /** One request over a raw HTTP/1.1 connection: the status line and headers exactly as sent, and the body bytes. */
  function raw(method: string, path: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(`${node.url}${path}`, { method }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      });
      req.on('error', reject);
      req.end();
    });
  }

  test('a whole body goes out with its true Content-Length, byte for byte; 204 and HEAD carry none', async () => {
    const source = `export default { fetch(req) {
      const p = new URL(req.url).pathname;
      if (p.endsWith('/none')) return new Response(null, { status: 204 });
      const bytes = new Uint8Array(256); for (let i = 0; i < 256; i++) bytes[i] = i;
      return new Response(bytes, { headers: { 'content-length': '3', 'x-kind': 'bytes' } });
    } }`;
    assert.equal((await node.deploy('wire', source)).status, 201);
    const res = await raw('GET', '/fn/wire/');
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-length'], '256', 'the real length, not the one the function claimed');
    assert.equal(res.headers['transfer-encoding'], undefined);
    assert.equal(res.headers['x-kind'], 'bytes');
    assert.deepEqual([...res.body], Array.from({ length: 256 }, (_, i) => i), 'every byte value survives');
    const empty = await raw('GET', '/fn/wire/none');
    assert.equal(empty.status, 204);
    assert.equal(empty.headers['content-length'], undefined);
    assert.equal(empty.body.length, 0);
    const head = await raw('HEAD', '/fn/wire/');
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
  });

  test('a streamed body is chunked, and one that contradicts its declared Content-Length is cut off', async () => {
    const source = `export default { fetch(req) {
      const claim = new URL(req.url).pathname.endsWith('/lying');
      let i = 0;
      const body = new ReadableStream({ pull(c) { if (i++ < 8) c.enqueue(new Uint8Array(20000).fill(i)); else c.close(); } });
      return new Response(body, { headers: claim ? { 'content-length': '3' } : {} });
    } }`;
    assert.equal((await node.deploy('wire-stream', source)).status, 201);
    const res = await raw('GET', '/fn/wire-stream/');
    assert.equal(res.headers['transfer-encoding'], 'chunked');
    assert.equal(res.body.length, 160000);
    await assert.rejects(raw('GET', '/fn/wire-stream/lying'), 'the client sees a broken response, never 160000 bytes under a length of 3');
  });

  test('a client that leaves mid-stream ends the invocation then (no error), not at its timeout', async () => {
    const source = `export default { fetch() {
      const tick = new TextEncoder().encode('x'.repeat(16384));
      return new Response(new ReadableStream({ async pull(c) { await new Promise((r) => setTimeout(r, 5)); c.enqueue(tick); } }));
    } }`;
    assert.equal((await node.deploy('wire-forever', source, 'index.js', { limits: { timeoutMs: 120_000 } })).status, 201);
    const id = await new Promise<string>((resolve, reject) => {
      const req = httpRequest(`${node.url}/fn/wire-forever/`, (res) => {
        res.once('data', () => {
          // Gone after the first bytes, while the function keeps writing.
          req.destroy();
          resolve(String(res.headers['x-continuum-invocation-id']));
        });
      });
      req.on('error', () => {});
      req.on('close', () => reject(new Error('closed before any body')));
      req.end();
    });
    // Records are written in batches: poll for this one, well inside its 120 s timeout.
    let record: { status: number; json: any } = { status: 404, json: null };
    for (let i = 0; i < 300 && record.status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 100));
      record = await node.api('GET', `/v1/invocations/${id}`);
    }
    assert.equal(record.status, 200, 'no record 30 s after the client left: the invocation was still running');
    assert.equal(record.json.errorCode, null, JSON.stringify(record.json));
  });
});

describe('limits end with their own codes while a canary keeps answering', () => {
  async function canaryDuring<T>(work: Promise<T>): Promise<{ result: T; canaryErrors: number; canaryMaxMs: number }> {
    let done = false;
    let canaryErrors = 0;
    let canaryMaxMs = 0;
    const canary = (async () => {
      while (!done) {
        const t0 = performance.now();
        const r = await node.fn('/fn/canary/');
        await r.text();
        if (r.status !== 200) canaryErrors++;
        canaryMaxMs = Math.max(canaryMaxMs, performance.now() - t0);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();
    const result = await work;
    done = true;
    await canary;
    return { result, canaryErrors, canaryMaxMs };
  }

  before(async () => {
    assert.equal((await node.deploy('canary', `export default { fetch() { return new Response('alive'); } }`)).status, 201);
  });

  const cases: Array<[string, string, Record<string, number>, string]> = [
    // A one-second budget: the +10 % bound then absorbs the tens of milliseconds a busy test machine may
    // delay the watchdog thread.
    ['for(;;){}', `export default { fetch() { for (;;) {} } }`, { cpuMs: 1000 }, 'cpu_limit'],
    // queueMicrotask keeps memory flat, so the CPU limit is what ends it (a promise chain would also grow
    // the heap and may meet the memory limit first — the engine tests cover that variant).
    ['a self-rescheduling microtask loop', `export default { fetch() { const spin = () => queueMicrotask(spin); spin(); return new Promise(() => {}); } }`, { cpuMs: 1000 }, 'cpu_limit'],
    ['an async loop awaiting resolved promises', `export default { async fetch() { for (;;) await null; } }`, { cpuMs: 1000 }, 'cpu_limit'],
    ['a promise that never settles', `export default { fetch() { return new Promise(() => {}); } }`, { timeoutMs: 300 }, 'timeout'],
    ['a heap bomb', `export default { fetch() { const a = []; for (;;) a.push({ x: new Array(1000).fill(Math.random()) }); } }`, { memoryMb: 32, cpuMs: 20000 }, 'memory_limit'],
  ];
  for (const [what, source, limits, code] of cases) {
    test(`${what} → ${code}, and the next invocation works`, async () => {
      const name = `abuse-${code.replace('_', '-')}-${Math.random().toString(36).slice(2, 6)}`;
      const deployed = await node.deploy(name, source, 'index.js', { limits, scale: { maxInstances: 1 } });
      assert.equal(deployed.status, 201, JSON.stringify(deployed.json));
      const t0 = performance.now();
      const { result, canaryErrors } = await canaryDuring(node.fn(`/fn/${name}/`).then(async (r) => ({ status: r.status, body: await r.json(), id: r.headers.get('x-continuum-invocation-id') })));
      const elapsed = performance.now() - t0;
      assert.equal(result.body.error.code, code, JSON.stringify(result.body));
      assert.equal(canaryErrors, 0, 'the canary never failed');
      const record = (await node.api('GET', `/v1/invocations/${result.id}`)).json;
      assert.equal(record.errorCode, code);
      if (limits.cpuMs && code === 'cpu_limit') {
        assert.ok(record.cpuMs <= limits.cpuMs * 1.1, `CPU ${record.cpuMs} ms within the limit +10 %`);
        assert.ok(elapsed < limits.cpuMs * 1.1 + 1000, `ended after ${elapsed} ms`);
      }
      if (limits.timeoutMs) assert.ok(elapsed <= limits.timeoutMs * 1.1 + 100, `timed out after ${elapsed} ms`);
      // The instance whose state may be corrupt was discarded; the function still works with new code paths.
      const again = await node.fn(`/fn/${name}/`);
      assert.equal((await again.json()).error.code, code, 'a fresh instance runs (and hits the same limit again)');
      assert.equal((await node.fn('/fn/canary/')).status, 200);
    });
  }
});

describe('a data-plane worker dies', () => {
  test('kill -9 fails in-flight requests with instance_crashed promptly, and the next requests succeed', async () => {
    const source = `export default { async fetch() { await new Promise((r) => setTimeout(r, 5000)); return new Response('late'); } }`;
    assert.equal((await node.deploy('victim', source, 'index.js', { scale: { maxInstances: 2, concurrency: 50 } })).status, 201);
    const inflight = Array.from({ length: 20 }, () => node.fn('/fn/victim/').then(async (r) => ({ status: r.status, body: await r.json() })));
    await new Promise((r) => setTimeout(r, 300));
    const workers = childPids();
    assert.ok(workers.length >= 2, `expected two isolate workers, found ${workers.join(',')}`);
    const t0 = performance.now();
    for (const pid of workers) process.kill(pid, 'SIGKILL');
    const results = await Promise.all(inflight);
    const elapsed = performance.now() - t0;
    for (const r of results) {
      assert.equal(r.status, 502);
      assert.equal(r.body.error.code, 'instance_crashed');
    }
    assert.ok(elapsed < 2000, `in-flight requests failed within ${elapsed} ms`);
    // Replacement workers start; new requests get new instances.
    let ok = 0;
    const deadline = Date.now() + 15_000;
    while (ok === 0 && Date.now() < deadline) {
      const r = await node.fn('/fn/canary/');
      if (r.status === 200) ok++;
      else await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(ok, 1, 'the canary answers again after the workers were replaced');
    assert.equal(await (await node.fn('/fn/canary/')).text(), 'alive');
  });
});
