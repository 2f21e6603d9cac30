/**
 * The control plane end to end on a real node: deploy → invoke → records, and refusal of bad input with
 * stable codes and nothing stored (catalogue 11, 28, 29, 30, 39, 40).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startTestNode, type TestNode } from './helpers/node.ts';

let node: TestNode;
before(async () => {
  node = await startTestNode();
});
after(async () => {
  await node?.stop();
});

const hello = `export default { fetch(req) { const u = new URL(req.url); return new Response('hi ' + (u.searchParams.get('n') ?? 'there') + ' at ' + u.pathname); } }`;

describe('deploy and invoke', () => {
  test('a fetch-style TypeScript file answers at /fn/<name>/ right after deploy', async () => {
    const ts = `export default { async fetch(request: Request): Promise<Response> { return Response.json({ ok: true, method: request.method }); } };`;
    const res = await node.deploy('typed', ts, 'typed.ts');
    assert.equal(res.status, 201, JSON.stringify(res.json));
    assert.match(res.json.version.id, /^v_[0-9a-f]{24}$/);
    assert.equal(res.json.version.format, 'fetch');
    const r = await node.fn('/fn/typed/');
    assert.deepEqual(await r.json(), { ok: true, method: 'GET' });
    assert.match(r.headers.get('x-continuum-invocation-id') ?? '', /^[0-9a-f-]{36}$/);
  });

  test('on a running node, deploying a new .ts file makes it answer within a second', async () => {
    const ts = `export default { fetch(request: Request): Response { return new Response('fresh ' + new URL(request.url).pathname); } };`;
    const t0 = performance.now();
    const res = await node.deploy('fresh-ts', ts, 'fresh.ts');
    assert.equal(res.status, 201, JSON.stringify(res.json));
    assert.equal(await (await node.fn('/fn/fresh-ts/now')).text(), 'fresh /now');
    const elapsed = performance.now() - t0;
    assert.ok(elapsed < 1000, `deploy-to-first-response took ${elapsed} ms`);
  });

  test('the bundled examples deploy and answer (fetch, Lambda, OpenWhisk)', async () => {
    for (const file of ['hello.ts', 'lambda-echo.js', 'ow-sum.js']) {
      const source = await readFile(new URL(`../examples/${file}`, import.meta.url), 'utf8');
      const res = await node.deploy(file.replace(/\.(ts|js)$/, ''), source, file);
      assert.equal(res.status, 201, `${file}: ${JSON.stringify(res.json)}`);
    }
    assert.deepEqual(await (await node.fn('/fn/hello/x?name=you')).json(), { message: 'Hello, you!', path: '/x' });
    const echo = await (await node.fn('/fn/lambda-echo/p?q=1', { method: 'POST', body: 'data' })).json();
    assert.equal(echo.method, 'POST');
    assert.equal(echo.path, '/p');
    assert.deepEqual(echo.query, { q: '1' });
    assert.equal(echo.body, 'data');
    assert.deepEqual(await (await node.fn('/fn/ow-sum/?a=2&b=40')).json(), { sum: 42 });
  });

  test('versions are immutable and content-addressed; redeploying the same code is the same version', async () => {
    const a = await node.deploy('same', hello);
    const b = await node.deploy('same', hello);
    assert.equal(a.json.version.id, b.json.version.id);
    const c = await node.deploy('same', hello, 'index.js', { limits: { timeoutMs: 5000 } });
    assert.notEqual(c.json.version.id, a.json.version.id, 'config is part of the version');
    const list = await node.api('GET', '/v1/functions/same/versions');
    assert.equal(list.json.items.length, 2);
  });

  test('two functions with the same code and config share a version id but never an instance', async () => {
    const a = await node.deploy('twin-a', hello);
    const b = await node.deploy('twin-b', hello);
    assert.equal(a.json.version.id, b.json.version.id, 'content-addressed: same code + config, same id');
    for (const name of ['twin-a', 'twin-b']) {
      const r = await node.fn(`/fn/${name}/`);
      const record = await node.api('GET', `/v1/invocations/${r.headers.get('x-continuum-invocation-id')}`);
      assert.equal(record.json.functionName, name);
      assert.equal((await node.api('GET', `/v1/functions/${name}`)).json.instances, 1);
    }
    await node.api('DELETE', '/v1/functions/twin-a');
    assert.equal((await node.fn('/fn/twin-b/')).status, 200, 'deleting one twin leaves the other running');
  });

  test('a delete collects the artifacts no remaining version names; a shared bundle stays while a version uses it', async () => {
    const blobs = async () => {
      const root = join(node.dataDir, 'artifacts', 'sha256');
      const out = new Set<string>();
      for (const prefix of await readdir(root).catch(() => [] as string[])) for (const name of await readdir(join(root, prefix))) if (/^[0-9a-f]{64}$/.test(name)) out.add(name);
      return out;
    };
    const shared = `export default { fetch() { return new Response('shared') } }`;
    const own = `export default { fetch() { return new Response('own') } }`;
    const [x, y, z] = [await node.deploy('gc-x', shared), await node.deploy('gc-y', shared), await node.deploy('gc-z', own)];
    const sharedDigest = x.json.version.bundleDigest as string;
    assert.equal(y.json.version.bundleDigest, sharedDigest);
    // A second version of gc-z: the first one's bundle stays as long as the function (it can be rolled back to).
    const z2 = await node.deploy('gc-z', own.replace("'own'", "'own 2'"));
    const [zDigest, z2Digest] = [z.json.version.bundleDigest as string, z2.json.version.bundleDigest as string];
    for (const d of [sharedDigest, zDigest, z2Digest]) assert.ok((await blobs()).has(d), d);
    assert.equal((await node.api('DELETE', '/v1/functions/gc-x')).status, 204);
    assert.ok((await blobs()).has(sharedDigest), 'gc-y still uses the shared bundle');
    assert.equal(await (await node.fn('/fn/gc-y/')).text(), 'shared');
    assert.equal((await node.api('DELETE', '/v1/functions/gc-y')).status, 204);
    assert.equal((await node.api('DELETE', '/v1/functions/gc-z')).status, 204);
    const left = await blobs();
    for (const d of [sharedDigest, zDigest, z2Digest]) assert.ok(!left.has(d), `${d} left`);
  });

  test('sync invoke through the API and the invocation record with phases and logs', async () => {
    await node.deploy('logger', `export default { fetch(req) { console.log('hello from', req.method); return new Response('ok'); } }`);
    const res = await fetch(`${node.url}/v1/functions/logger/invoke`, { method: 'POST', headers: { authorization: `Bearer ${node.token}` }, body: '{}' });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'ok');
    const id = res.headers.get('x-continuum-invocation-id')!;
    const record = await node.api('GET', `/v1/invocations/${id}`);
    assert.equal(record.status, 200);
    assert.equal(record.json.functionName, 'logger');
    assert.equal(record.json.outcome, 'ok');
    assert.equal(record.json.trigger, 'api');
    for (const phase of ['queueMs', 'initMs', 'execMs']) assert.equal(typeof record.json.phases[phase], 'number');
    const logs = await node.api('GET', `/v1/invocations/${id}/logs`);
    assert.equal(logs.json.items[0].message, 'hello from POST');
  });

  test('scale to zero, then the next request is a recorded cold start', async () => {
    await node.deploy('cold', hello);
    await node.fn('/fn/cold/');
    const evicted = await node.api('DELETE', '/v1/functions/cold/instances');
    assert.equal(evicted.json.evicted, 1);
    const r = await node.fn('/fn/cold/');
    assert.equal(r.status, 200);
    const id = r.headers.get('x-continuum-invocation-id')!;
    const record = await node.api('GET', `/v1/invocations/${id}`);
    assert.equal(record.json.coldStart, true);
    assert.ok(record.json.phases.initMs > 0);
  });

  test('custom routes with methods and hosts', async () => {
    const res = await node.deploy('routed', hello, 'index.js', { routes: [{ path: '/api/items', methods: ['GET'] }] });
    assert.equal(res.status, 201, JSON.stringify(res.json));
    assert.equal(await (await node.fn('/api/items/7')).text(), 'hi there at /api/items/7');
    const wrong = await node.fn('/api/items', { method: 'DELETE' });
    assert.equal(wrong.status, 405);
    assert.equal((await wrong.json()).error.code, 'method_not_allowed');
    assert.equal((await node.fn('/api/itemsx')).status, 404);
  });

  test('1,000 concurrent requests to one function all succeed', async () => {
    await node.deploy('many', hello, 'index.js', { scale: { concurrency: 200, maxInstances: 4 } });
    const results = await Promise.all(
      Array.from({ length: 1000 }, (_, i) =>
        node.fn(`/fn/many/?n=${i}`).then(
          async (r) => [r.status, await r.text()] as const,
          (err: Error) => [0, `${err.message}: ${(err.cause as Error | undefined)?.message ?? ''}`] as const,
        ),
      ),
    );
    const failed = results.filter(([s]) => s !== 200);
    assert.equal(failed.length, 0, `${failed.length} failed, e.g. ${JSON.stringify(failed.slice(0, 3))}`);
    assert.equal(results[999]![1], 'hi 999 at /');
  });

  test('no capacity within the wait bound → 503 overloaded with Retry-After', async () => {
    const slow = `export default { async fetch() { await new Promise((r) => setTimeout(r, 400)); return new Response('slow'); } }`;
    await node.deploy('slow', slow, 'index.js', { scale: { concurrency: 1, maxInstances: 1, queueTimeoutMs: 50 } });
    const [first, second] = await Promise.all([node.fn('/fn/slow/'), new Promise<Response>((r) => setTimeout(() => r(node.fn('/fn/slow/')), 50))]);
    assert.equal(first.status, 200);
    assert.equal(second.status, 503);
    assert.equal(((await second.json()) as any).error.code, 'overloaded');
    assert.ok(Number(second.headers.get('retry-after')) >= 1);
  });

  test('synchronous bodies above the limit get 413', async () => {
    await node.deploy('small-body', `export default { async fetch(req) { return new Response(String((await req.arrayBuffer()).byteLength)); } }`, 'index.js', { limits: { requestBodyBytes: 1000 } });
    assert.equal(await (await node.fn('/fn/small-body/', { method: 'POST', body: 'x'.repeat(1000) })).text(), '1000');
    const big = await node.fn('/fn/small-body/', { method: 'POST', body: 'x'.repeat(1001) });
    assert.equal(big.status, 413);
    assert.equal((await big.json()).error.code, 'payload_too_large');
  });
});

describe('refusals store nothing', () => {
  async function functionNames(): Promise<string[]> {
    return (await node.api('GET', '/v1/functions')).json.items.map((f: { name: string }) => f.name).sort();
  }

  test('every /v1 route requires the admin token', async () => {
    const res = await fetch(`${node.url}/v1/functions`);
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as any).error.code, 'unauthorized');
    const wrong = await fetch(`${node.url}/v1/functions`, { headers: { authorization: 'Bearer ctm_wrong' } });
    assert.equal(wrong.status, 401);
    const openapi = await fetch(`${node.url}/v1/openapi.json`);
    assert.equal(openapi.status, 200);
  });

  test('malformed JSON, unknown fields, bad names, oversized bodies, deep nesting (catalogue 11, 28, 29)', async () => {
    const before = await functionNames();
    const cases: Array<[string, string, unknown, number, string]> = [
      ['POST', '/v1/functions', '{"name":', 400, 'bad_request'],
      ['POST', '/v1/functions', { name: 'ok-name', tenantId: 'other' }, 400, 'bad_request'],
      ['POST', '/v1/functions', { name: 'ok-name', config: { privileged: true } }, 400, 'bad_request'],
      ['POST', '/v1/functions', { name: 'ok-name', config: { tier: 'host' } }, 400, 'bad_request'],
      ['POST', '/v1/functions', { name: 'ok-name', config: { limits: { timeoutMs: -1 } } }, 400, 'bad_request'],
      ['POST', '/v1/functions', { name: 'ok-name', config: { limits: { timeoutMs: 0 } } }, 400, 'bad_request'],
      ['POST', '/v1/functions', { name: 'ok-name', config: { limits: { memoryMb: 1e12 } } }, 400, 'bad_request'],
      ['POST', '/v1/functions', { name: 'ok-name', config: { scale: { concurrency: 1e9 } } }, 400, 'bad_request'],
      ['POST', '/v1/functions', { name: 'ok-name', config: { env: { 'A=B': 'x' } } }, 400, 'bad_request'],
      ['POST', '/v1/functions', { name: 'ok-name', config: { env: Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`V${i}`, 'x'])) } }, 400, 'bad_request'],
      ['POST', '/v1/functions', '{"name":"ok-name","__proto__":{"x":1}}', 400, 'bad_request'],
      ['POST', '/v1/functions', '{"name":"ok-name","config":{"limits":{"timeoutMs":1e309}}}', 400, 'bad_request'],
      ['POST', '/v1/functions', '{"name":"ok-name","name":"other-name"}', 400, 'bad_request'],
      ['POST', '/v1/functions', '{"name":"ok-name","config":' + '['.repeat(100_000) + ']'.repeat(100_000) + '}', 400, 'bad_request'],
      ['POST', '/v1/functions', { name: '../../etc' }, 400, 'bad_name'],
      ['POST', '/v1/functions', { name: 'A'.repeat(65) }, 400, 'bad_name'],
      ['POST', '/v1/functions', { name: 'x'.repeat(2_000_000) }, 413, 'payload_too_large'],
      ['GET', '/v1/functions/Bad_Name', undefined, 400, 'bad_name'],
      ['GET', '/v1/functions/a%00b', undefined, 400, 'bad_name'],
      ['GET', '/v1/functions/nope', undefined, 404, 'not_found'],
      ['PATCH', '/v1/functions/typed', { config: { routes: [{ path: 'no-slash' }] } }, 400, 'bad_request'],
      ['GET', '/v1/invocations?limit=0', undefined, 400, 'bad_request'],
      ['GET', '/v1/nothing-here', undefined, 404, 'not_found'],
    ];
    for (const [method, path, body, status, code] of cases) {
      const res = await node.api(method, path, body);
      assert.equal(res.status, status, `${method} ${path} ${JSON.stringify(body)?.slice(0, 80)}: ${JSON.stringify(res.json)}`);
      assert.equal(res.json.error.code, code, `${method} ${path}`);
      assert.equal(typeof res.json.error.message, 'string');
      assert.doesNotMatch(JSON.stringify(res.json), /\/work\/|node_modules|at .*\.ts:\d+/, 'no stack traces or host paths');
    }
    const unknown = await node.api('POST', '/v1/functions', { name: 'ok-name', config: { limits: { timeoutMs: 5, bogus: 1 } } });
    assert.equal(unknown.json.error.details.pointer, '/body/config/limits/bogus');
    assert.deepEqual(await functionNames(), before);
    assert.equal(({} as Record<string, unknown>).x, undefined, 'Object.prototype unchanged');
  });

  test('randomly mangled configurations get 400 or 201, never a 5xx, and never pollute prototypes (catalogue 28)', async () => {
    // A seeded generator so a failure can be replayed.
    let seed = 0x2f6b1d;
    const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const values: unknown[] = [null, true, 0, -1, 1e308, 1.5, 2 ** 53, '', 'x', '1e9', [], {}, [1], { a: 1 }, '__proto__', 'a\u0000b'];
    const fields = ['tier', 'handler', 'limits', 'scale', 'routes', 'env', '__proto__', 'constructor', 'timeoutMs', 'memoryMb', 'concurrency', 'path', 'methods', 'host', 'format', 'export'];
    const mangle = (depth: number): unknown => {
      if (depth > 3 || rand() < 0.3) return pick(values);
      const out: Record<string, unknown> = {};
      for (let i = 0, n = Math.floor(rand() * 4); i < n; i++) out[pick(fields)] = mangle(depth + 1);
      return rand() < 0.2 ? [out] : out;
    };
    for (let i = 0; i < 150; i++) {
      const config = mangle(0);
      const res = await node.api('POST', '/v1/functions', `{"name":"fuzz-${i}","config":${JSON.stringify(config)}}`);
      assert.ok(res.status === 201 || res.status === 400, `config ${JSON.stringify(config)} gave ${res.status} ${JSON.stringify(res.json)}`);
      if (res.status === 201) await node.api('DELETE', `/v1/functions/fuzz-${i}`);
    }
    assert.deepEqual(Object.keys(Object.prototype), []);
  });

  test('bad code is refused with a clear location and nothing is stored', async () => {
    const before = await functionNames();
    const syntax = await node.deploy('broken', 'export default {\n  fetch() { return new Response("x" }\n};\n');
    assert.equal(syntax.status, 400);
    assert.equal(syntax.json.error.code, 'bad_bundle');
    assert.match(syntax.json.error.message, /index\.js:2/);
    const noHandler = await node.deploy('broken', 'export const notAHandler = 1;');
    assert.equal(noHandler.json.error.code, 'bad_bundle');
    const throwsAtLoad = await node.deploy('broken', 'throw new Error("boom at load"); export default { fetch() {} }');
    assert.equal(throwsAtLoad.json.error.code, 'bad_bundle');
    assert.match(throwsAtLoad.json.error.message, /boom at load/);
    const nodeOnly = await node.deploy('broken', 'import fs from "fs"; export default { fetch() { return new Response(fs.readFileSync("/etc/passwd")); } }');
    assert.equal(nodeOnly.json.error.code, 'bad_bundle');
    assert.match(nodeOnly.json.error.message, /process/);
    const badConfig = await fetch(`${node.url}/v1/functions/broken/deploy`, {
      method: 'POST',
      headers: { authorization: `Bearer ${node.token}`, 'content-type': 'application/javascript', 'continuum-config': '{"limits":{"nope":1}}' },
      body: hello,
    });
    assert.equal(badConfig.status, 400);
    assert.deepEqual(await functionNames(), before);
  });
});

describe('HTTP hygiene (catalogue 39, 40)', () => {
  // A node of its own, with short header timeouts and a small per-address connection cap.
  let edge: TestNode;
  before(async () => {
    edge = await startTestNode({ http: { headersTimeoutMs: 1000, maxConnectionsPerIp: 64 } });
    assert.equal((await edge.deploy('victim', hello)).status, 201);
  });
  after(async () => {
    await edge?.stop();
  });

  function raw(payload: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const url = new URL(edge.url);
      const socket = net.connect(Number(url.port), url.hostname, () => socket.write(payload));
      let data = '';
      socket.on('data', (d) => (data += d));
      socket.on('close', () => resolve(data));
      // The server may reset a connection it refused while we were still writing; what it answered counts.
      socket.on('error', (err) => (data ? resolve(data) : reject(err)));
      socket.setTimeout(5000, () => socket.destroy(new Error('timeout')));
    });
  }

  test('ambiguous framing is refused and the victim request is never answered with attacker content', async () => {
    const smuggles = [
      'POST /fn/victim/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /fn/victim/?n=SMUGGLED HTTP/1.1\r\nHost: x\r\n\r\n',
      'POST /fn/victim/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n',
      'POST /fn/victim/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n',
      'POST /fn/victim/ HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab',
      'GET /fn/victim/ HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n',
      'GET /fn/victim/ HTTP/1.1\r\nHost: x\rX: y\r\n\r\n',
    ];
    for (const payload of smuggles) {
      const answer = await raw(payload);
      assert.match(answer, /^HTTP\/1\.1 400/, JSON.stringify(payload));
      assert.doesNotMatch(answer, /SMUGGLED/);
    }
  });

  test('a client that sends headers too slowly gets 408 and is disconnected', async () => {
    const url = new URL(edge.url);
    const socket = net.connect(Number(url.port), url.hostname);
    socket.write('GET /fn/victim/ HTTP/1.1\r\nHost: x\r\n');
    const drip = setInterval(() => socket.write('X-Slow: 1\r\n'), 200);
    const t0 = performance.now();
    const answer = await new Promise<string>((resolve) => {
      let data = '';
      socket.on('data', (d) => (data += d));
      // A drip written after the server closed draws a reset (the 408 before it is still read): the
      // disconnect this test expects, not a failure (CI saw it once under load).
      socket.on('error', () => {});
      socket.on('close', () => resolve(data));
    });
    clearInterval(drip);
    assert.match(answer, /^HTTP\/1\.1 408/);
    assert.ok(performance.now() - t0 < 3500, 'closed soon after headersTimeout');
  });

  test('connections beyond the per-address cap are closed while others keep working', async () => {
    const url = new URL(edge.url);
    const sockets = await Promise.all(
      Array.from({ length: 80 }, () => new Promise<net.Socket>((resolve) => {
        const s = net.connect(Number(url.port), url.hostname, () => resolve(s));
        s.on('error', () => {});
      })),
    );
    await new Promise((r) => setTimeout(r, 200));
    const closed = sockets.filter((s) => s.destroyed || s.readableEnded).length;
    assert.ok(closed >= 16, `expected the 16 connections over the cap of 64 to be closed, saw ${closed}`);
    for (const s of sockets) s.destroy();
    await new Promise((r) => setTimeout(r, 100));
    assert.equal((await edge.fn('/fn/victim/')).status, 200);
  });

  test('oversized header sets get 431', async () => {
    const answer = await raw(`GET /fn/victim/ HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20 * 1024)}\r\n\r\n`);
    assert.match(answer, /^HTTP\/1\.1 431/);
  });
});

describe('shutdown', () => {
  test('closing a node with a request in flight finishes within the grace period', async () => {
    const n = await startTestNode();
    const deployed = await n.deploy('forever', 'export default { fetch() { return new Promise(() => {}); } }', 'index.js', { limits: { timeoutMs: 120_000 } });
    assert.equal(deployed.status, 201);
    const pending = n.fn('/fn/forever/').then((r) => r.status, () => 'connection closed');
    await new Promise((r) => setTimeout(r, 200));
    const t0 = performance.now();
    await n.stop();
    const elapsed = performance.now() - t0;
    assert.ok(elapsed < 8000, `stop took ${elapsed} ms`);
    assert.notEqual(await pending, 200);
  });
});
