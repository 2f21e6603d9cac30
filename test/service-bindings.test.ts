/**
 * Service bindings on a real node (isolate tier): `env.USERS.fetch(…)` invokes another function through
 * the scheduler; the callee's record names its caller; what cannot be called fails with a clear code.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SERVICE_DEFAULTS } from '../src/core/defaults.ts';
import { ProcessDriver } from '../src/drivers/process/driver.ts';
import { startTestNode, type TestNode } from './helpers/node.ts';

const probe = new ProcessDriver();
await probe.start();
const processUnavailable = probe.status().available ? null : probe.status().reason;
await probe.stop();

/** A function's records once `ready` holds for them (records reach the store in batches). */
async function records(node: TestNode, fn: string, ready: (items: any[]) => boolean = (items) => items.length > 0): Promise<any[]> {
  let items: any[] = [];
  for (let i = 0; i < 100; i++) {
    items = (await node.api('GET', `/v1/invocations?function=${fn}&limit=100`)).json.items;
    if (ready(items)) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return items;
}

test('service bindings: calls, errors as data, the depth limit, the subrequest budget', { timeout: 120_000 }, async (t) => {
  const node = await startTestNode();
  t.after(() => node.stop());

  const users = `export default { async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === '/boom') throw new Error('users exploded');
    if (url.pathname === '/empty') return new Response(null, { status: 204 });
    return new Response(JSON.stringify({ method: request.method, path: url.pathname, q: url.searchParams.get('q'), body: await request.text(), hdr: request.headers.get('x-from') }),
      { status: 201, headers: { 'content-type': 'application/json', 'x-users': 'yes' } });
  } };`;
  assert.equal((await node.deploy('users', users, 'index.js', { limits: { requestBodyBytes: 1024 } })).status, 201);

  const front = `export default { async fetch(request, env) {
    const what = new URL(request.url).pathname;
    try {
      if (what === '/call') {
        const r = await env.USERS.fetch(new Request('https://users.internal/list?q=1', { method: 'PUT', body: 'hello', headers: { 'x-from': 'front' } }));
        return Response.json({ status: r.status, header: r.headers.get('x-users'), id: r.headers.get('x-continuum-invocation-id'), json: await r.json() });
      }
      if (what === '/boom' || what === '/empty') {
        const r = await env.USERS.fetch('http://users' + what);
        return Response.json({ status: r.status, text: await r.text() });
      }
      if (what === '/big') {
        const r = await env.USERS.fetch('http://users/', { method: 'POST', body: 'x'.repeat(4096) });
        return Response.json({ status: r.status, json: await r.json() });
      }
      if (what === '/missing') await env.GHOST.fetch('http://ghost/');
      if (what === '/budget') { await env.USERS.fetch('http://users/'); await env.USERS.fetch('http://users/'); }
      return new Response('no');
    } catch (err) {
      return Response.json({ caught: err.code ?? null, message: String(err.message) });
    }
  } };`;
  const cfg = { bindings: { USERS: { function: 'users' }, GHOST: { function: 'ghost' } }, limits: { subrequests: 1 } };
  assert.equal((await node.deploy('front', front, 'index.js', cfg)).status, 201, 'a binding to a function that does not exist yet deploys');
  assert.deepEqual((await node.api('GET', '/v1/functions/front')).json.config.bindings, { USERS: { function: 'users' }, GHOST: { function: 'ghost' } });

  await t.test('a call reaches the callee with method, URL, headers and body, and its response comes back', async () => {
    const out = await (await node.fn('/fn/front/call')).json();
    assert.equal(out.status, 201);
    assert.equal(out.header, 'yes');
    assert.deepEqual(out.json, { method: 'PUT', path: '/list', q: '1', body: 'hello', hdr: 'front' });
    const callee = (await records(node, 'users', (items) => items.some((r) => r.id === out.id))).find((r: any) => r.id === out.id);
    assert.ok(callee, 'the callee has a record under the id the caller saw');
    assert.equal(callee.trigger, 'binding');
    assert.equal(callee.callerFunction, 'front');
    const caller = (await records(node, 'front'))[0];
    assert.equal(callee.parentInvocationId, caller.id);
  });

  await t.test("the callee's failure comes back as the error response HTTP would give", async () => {
    const out = await (await node.fn('/fn/front/boom')).json();
    assert.equal(out.status, 500);
    assert.equal(JSON.parse(out.text).error.code, 'function_error');
    assert.deepEqual(await (await node.fn('/fn/front/empty')).json(), { status: 204, text: '' });
  });

  await t.test("the callee's request-body limit applies", async () => {
    const out = await (await node.fn('/fn/front/big')).json();
    assert.equal(out.status, 413);
    assert.equal(out.json.error.code, 'payload_too_large');
  });

  await t.test('a missing target is not_found; a call beyond the subrequest budget is subrequest_limit', async () => {
    const missing = await (await node.fn('/fn/front/missing')).json();
    assert.equal(missing.caught, 'not_found');
    assert.match(missing.message, /ghost is not deployed/);
    assert.equal((await (await node.fn('/fn/front/budget')).json()).caught, 'subrequest_limit');
  });

  await t.test('a binding loop ends at the call-depth limit with call_depth_exceeded', async () => {
    const loop = `export default { async fetch(request, env) {
      try {
        const r = await env.SELF.fetch(request.url);
        return new Response(await r.text(), { status: r.status });
      } catch (err) {
        return Response.json({ code: err.code }, { status: 508 });
      }
    } };`;
    assert.equal((await node.deploy('loop', loop, 'index.js', { bindings: { SELF: { function: 'loop' } } })).status, 201);
    const res = await node.fn('/fn/loop/');
    assert.equal(res.status, 508);
    assert.deepEqual(await res.json(), { code: 'call_depth_exceeded' });
    const calls = await records(node, 'loop', (items) => items.length >= SERVICE_DEFAULTS.maxCallDepth + 1);
    assert.equal(calls.length, SERVICE_DEFAULTS.maxCallDepth + 1, 'the request plus maxCallDepth nested calls');
    assert.equal(calls.filter((r) => r.callerFunction === 'loop').length, SERVICE_DEFAULTS.maxCallDepth);
  });

  await t.test('binding config is validated', async () => {
    const bad = async (bindings: unknown) => (await node.deploy('bad', 'export default { fetch: () => new Response("x") }', 'index.js', { bindings })).json;
    assert.equal((await bad({ X: { function: 'Not A Name' } })).error.code, 'bad_request');
    assert.equal((await bad({ X: { function: 'users', queue: 'q' } })).error.code, 'bad_request');
    assert.equal((await bad({ X: {} })).error.code, 'bad_request');
  });
});

test('service bindings work from and to the process tier', { timeout: 120_000, skip: processUnavailable ? `process tier unavailable: ${processUnavailable}` : false }, async (t) => {
  const node = await startTestNode();
  t.after(() => node.stop());
  const echo = `export default { async fetch(request) { return Response.json({ tier: TIER, body: await request.text(), tp: request.headers.get('traceparent') }, { status: 202 }); } };`;
  assert.equal((await node.deploy('echo-iso', echo.replace('TIER', "'isolate'"))).status, 201);
  assert.equal((await node.deploy('echo-proc', echo.replace('TIER', "'process'"), 'index.js', { tier: 'process' })).status, 201);
  const caller = `export default { async fetch(request, env) {
    const r = await env.PEER.fetch('http://peer/', { method: 'POST', body: 'hi' });
    let missing = null;
    try { await env.GONE.fetch('http://gone/'); } catch (err) { missing = err.code; }
    return Response.json({ status: r.status, json: await r.json(), missing });
  } };`;
  const tp = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
  for (const [from, to] of [['process', 'echo-iso'], ['isolate', 'echo-proc'], ['process', 'echo-proc']] as const) {
    const name = `from-${from}-to-${to}`;
    const config = { tier: from, bindings: { PEER: { function: to }, GONE: { function: 'gone' } } };
    assert.equal((await node.deploy(name, caller, 'index.js', config)).status, 201);
    const res = await node.fn(`/fn/${name}/`, { headers: { traceparent: tp } });
    const out = await res.json();
    assert.equal(res.status, 200, JSON.stringify(out));
    assert.deepEqual(out, { status: 202, json: { tier: to === 'echo-iso' ? 'isolate' : 'process', body: 'hi', tp }, missing: 'not_found' }, name);
    const callee = (await records(node, to, (items) => items.some((r) => r.callerFunction === name))).find((r: any) => r.callerFunction === name);
    assert.ok(callee, `${to} has a record naming ${name} as its caller`);
  }
});
