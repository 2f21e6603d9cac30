/**
 * IsolateDriver end to end: real worker processes, real isolates (engine.ts), real limits.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Instance, InvokeRequest, InvokeResult } from '../../core/driver.ts';
import { IsolateDriver } from './driver.ts';
import { F } from './frames.ts';
import { testSpec } from './testing.ts';

let driver: IsolateDriver;
const diagnostics: string[] = [];

before(async () => {
  driver = new IsolateDriver({ workers: 2, onDiagnostic: (m) => diagnostics.push(m) });
  await driver.start();
});
after(async () => {
  await driver.stop();
});

let seq = 0;
const spec = testSpec;
function req(path = '/hello', body: AsyncIterable<Uint8Array> | null = null, method = body ? 'POST' : 'GET'): InvokeRequest {
  return { kind: 'http', invocationId: `inv-${++seq}`, request: { method, url: `http://fn.test${path}`, headers: [['x-a', '1']] }, body };
}
async function read(r: InvokeResult): Promise<string> {
  assert.equal(r.kind, 'response', r.kind === 'error' ? JSON.stringify(r.completion.error) : '');
  if (r.kind !== 'response') return '';
  const parts: Uint8Array[] = [];
  for await (const c of r.body) parts.push(c);
  return Buffer.concat(parts).toString();
}
const fetchModule = (body: string) => `module.exports = { default: { async fetch(request, env, ctx) { ${body} } } };`;
const pidOf = (i: Instance) => (i as unknown as { workerPid: number }).workerPid;
const errorCode = (r: InvokeResult) => (r.kind === 'error' ? r.completion.error?.code : 'response');

const HELLO = fetchModule(`return new Response(env.GREETING + ' ' + new URL(request.url).pathname, { headers: { 'x-fn': 'yes' } });`);

test('fetch hello: response, headers, init timing, usage', async () => {
  const inst = await driver.createInstance(spec(HELLO));
  assert.equal(inst.tier, 'isolate');
  assert.equal(inst.state, 'ready');
  // A sandbox made from a spare isolate reports sandboxMs 0 (paid before the request, see prepaidMs).
  const timing = inst.initTiming as typeof inst.initTiming & { spare?: boolean; prepaidMs?: number };
  assert.ok((timing.spare ? timing.prepaidMs! > 0 : timing.sandboxMs > 0) && timing.moduleMs > 0, JSON.stringify(timing));
  const r = await inst.invoke(req('/hello'));
  assert.equal(r.kind === 'response' && r.status, 200);
  assert.ok(r.kind === 'response' && r.headers.some(([k, v]) => k === 'x-fn' && v === 'yes'));
  assert.equal(await read(r), 'hi /hello');
  const c = r.kind === 'response' ? await r.completion : null;
  assert.equal(c?.error, null);
  assert.ok(c!.cpuMs >= 0);
  assert.ok(c!.peakMemoryBytes > 0);
  await inst.stop();
});

test('a bad module → bad_bundle with the reason', async () => {
  await assert.rejects(driver.createInstance(spec(`module.exports = {`)), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'bad_bundle');
    assert.match(e.message, /compile|Unexpected|SyntaxError/i);
    return true;
  });
  await assert.rejects(driver.createInstance(spec(`throw new Error('boom at load')`)), /boom at load/);
  await assert.rejects(driver.createInstance(spec(`module.exports = { nothing: 1 };`)), { code: 'bad_bundle' });
});

test('200 concurrent invocations on one instance', async () => {
  const inst = await driver.createInstance(
    spec(fetchModule(`await new Promise((r) => setTimeout(r, 50)); return new Response(new URL(request.url).searchParams.get('n'));`)),
  );
  const results = await Promise.all(Array.from({ length: 200 }, (_, n) => inst.invoke(req(`/x?n=${n}`))));
  const texts = await Promise.all(results.map(read));
  assert.deepEqual(texts, Array.from({ length: 200 }, (_, n) => String(n)));
  await inst.stop();
});

test('streams request and response bodies', async () => {
  const inst = await driver.createInstance(
    spec(fetchModule(`
      const reader = request.body.getReader();
      let n = 0;
      const { readable, writable } = new TransformStream();
      const w = writable.getWriter();
      (async () => {
        for (;;) { const { done, value } = await reader.read(); if (done) break; n += value.length; await w.write(value); }
        await w.write(new TextEncoder().encode(':' + n));
        await w.close();
      })();
      return new Response(readable);`)),
  );
  async function* body() {
    for (let i = 0; i < 40; i++) yield new Uint8Array(25_000).fill(97 + (i % 26));
  }
  const out = await read(await inst.invoke(req('/echo', body())));
  assert.equal(out.length, 1_000_000 + ':1000000'.length);
  assert.ok(out.endsWith(':1000000'));
  assert.equal(out[25_000], 'b');
  await inst.stop();
});

test('request body over the limit → payload_too_large', async () => {
  const inst = await driver.createInstance(spec(fetchModule(`return new Response(String((await request.arrayBuffer()).byteLength));`), { requestBodyBytes: 64_000 }));
  async function* body() {
    for (;;) yield new Uint8Array(16_000);
  }
  const r = await inst.invoke(req('/big', body()));
  assert.equal(errorCode(r), 'payload_too_large');
  await inst.stop();
});

test('for(;;){} ends with cpu_limit/timeout within +10 % while another function keeps answering', async () => {
  const spin = await driver.createInstance(spec(fetchModule(`for (;;) {}`), { timeoutMs: 1000 }, 'fn-spin'));
  const other = await driver.createInstance(spec(HELLO, {}, 'fn-other'));
  // The engine runs tenant code synchronously on the worker's thread: the canary must sit on another worker.
  assert.notEqual(pidOf(spin), pidOf(other));
  const t0 = performance.now();
  const spinning = spin.invoke(req('/spin'));
  let answered = 0;
  while (performance.now() - t0 < 900) {
    assert.equal(await read(await other.invoke(req('/canary'))), 'hi /canary');
    answered++;
  }
  const r = await spinning;
  const ms = performance.now() - t0;
  assert.ok(['cpu_limit', 'timeout'].includes(errorCode(r)!), String(errorCode(r)));
  assert.ok(ms < 1100, `${ms} ms`);
  assert.ok(answered > 10, `canary answered ${answered}`);
  // The isolate that ran away is discarded; a new instance of the same function works.
  for (let i = 0; i < 20 && spin.state !== 'stopped'; i++) await new Promise((res) => setTimeout(res, 50));
  assert.equal(spin.state, 'stopped');
  const again = await driver.createInstance(spec(HELLO, {}, 'fn-spin'));
  assert.equal(await read(await again.invoke(req('/again'))), 'hi /again');
  await Promise.all([other.stop(), again.stop()]);
});

test('a handler awaiting a never-resolving promise → timeout', async () => {
  // The bar is relative (± 10 %); a one-second limit leaves a loaded machine's timer lateness room.
  const inst = await driver.createInstance(spec(fetchModule(`await new Promise(() => {});`), { timeoutMs: 1000 }));
  const t0 = performance.now();
  const r = await inst.invoke(req());
  const ms = performance.now() - t0;
  assert.equal(errorCode(r), 'timeout');
  assert.ok(ms >= 995 && ms < 1100, `${ms} ms`);
});

test('heap bomb → memory_limit, and the next instance works', async () => {
  const inst = await driver.createInstance(spec(fetchModule(`const a = []; for (;;) a.push({ x: Math.random(), y: 'z'.repeat(64) });`), { memoryMb: 32 }, 'fn-heap'));
  const exits: Array<string | null> = [];
  inst.onExit((x) => exits.push(x.code));
  const r = await inst.invoke(req('/bomb'));
  assert.equal(errorCode(r), 'memory_limit');
  for (let i = 0; i < 20 && inst.state !== 'stopped'; i++) await new Promise((res) => setTimeout(res, 50));
  assert.equal(inst.state, 'stopped');
  assert.deepEqual(exits, ['memory_limit']);
  const next = await driver.createInstance(spec(HELLO, { memoryMb: 32 }, 'fn-heap'));
  assert.equal(await read(await next.invoke(req('/after'))), 'hi /after');
  await next.stop();
});

test('log flood is truncated at the cap with an explicit marker', async () => {
  const inst = await driver.createInstance(
    spec(fetchModule(`const line = 'y'.repeat(999); for (let i = 0; i < 100000; i++) console.log(line); console.error('x'.repeat(1e6)); return new Response('done');`), { logBytes: 20_000 }),
  );
  const r = await inst.invoke(req());
  assert.equal(await read(r), 'done');
  const c = r.kind === 'response' ? await r.completion : null;
  assert.ok(c);
  assert.equal(c.logsTruncated, true);
  assert.ok(c.logBytes <= 20_000, String(c.logBytes));
  assert.ok(c.logs.length <= 22);
  assert.match(c.logs.at(-1)!.message, /truncated/);
  await inst.stop();
});

test('response over the limit → output_too_large', async () => {
  const inst = await driver.createInstance(spec(fetchModule(`return new Response('z'.repeat(3 * 1024 * 1024));`), { responseBytes: 1024 * 1024 }));
  const r = await inst.invoke(req());
  if (r.kind === 'response') {
    await assert.rejects(read(r), { code: 'output_too_large' });
    assert.equal((await r.completion).error?.code, 'output_too_large');
  } else {
    assert.equal(errorCode(r), 'output_too_large');
  }
  await inst.stop();
});

test('a response completed inside dispatch crosses as one frame; the node checks its head', async () => {
  // A synchronous handler: its response is complete when the dispatch call returns.
  const inst = await driver.createInstance(
    spec(`module.exports = { default: { fetch(request) {
      const p = new URL(request.url).pathname;
      if (p === '/empty') return new Response(null, { status: 204, headers: { 'x-e': '1' } });
      if (p === '/bogus') { class Odd extends Response { get status() { return 42; } } return new Odd('x'); }
      return new Response('héllo ✓', { headers: { 'content-type': 'text/plain; charset=utf-8' } });
    } } };`),
  );
  const seen: number[] = [];
  const sink = inst as unknown as { frame(type: number, b: number, payload: Buffer): void };
  const frame = sink.frame.bind(sink);
  sink.frame = (type, b, payload) => {
    seen.push(type);
    frame(type, b, payload);
  };
  const ok = await inst.invoke(req('/text'));
  assert.deepEqual(seen, [F.whole], 'one frame: head, body and usage');
  assert.equal(ok.kind === 'response' && ok.status, 200);
  assert.equal(await read(ok), 'héllo ✓');
  const c = ok.kind === 'response' ? await ok.completion : null;
  assert.equal(c?.error, null);
  assert.ok(c!.peakMemoryBytes > 0);
  const empty = await inst.invoke(req('/empty'));
  assert.equal(empty.kind === 'response' && empty.status, 204);
  assert.ok(empty.kind === 'response' && empty.headers.some(([k, v]) => k === 'x-e' && v === '1'));
  assert.equal(await read(empty), '');
  const bogus = await inst.invoke(req('/bogus'));
  assert.equal(errorCode(bogus), 'function_error');
  assert.match(bogus.kind === 'error' ? bogus.completion.error!.message : '', /invalid response head/);
  await inst.stop();
});

test('kill -9 of a worker during in-flight requests: all get instance_crashed promptly, new instances work', async () => {
  const slow = fetchModule(`await new Promise((r) => setTimeout(r, 5000)); return new Response('late');`);
  const a = await driver.createInstance(spec(slow, {}, 'fn-kill'));
  const exits: Array<{ code: string | null; message: string }> = [];
  a.onExit((x) => exits.push(x));
  const pending = Array.from({ length: 50 }, () => a.invoke(req('/slow')));
  await new Promise((r) => setTimeout(r, 100));
  const pid = pidOf(a);
  const t0 = performance.now();
  process.kill(pid, 'SIGKILL');
  const results = await Promise.all(pending);
  const ms = performance.now() - t0;
  assert.ok(results.every((r) => errorCode(r) === 'instance_crashed'));
  assert.ok(ms < 1000, `${ms} ms`);
  assert.equal(a.state, 'stopped');
  assert.equal(exits.length, 1);
  assert.equal(exits[0]!.code, 'instance_crashed');
  const b = await driver.createInstance(spec(HELLO, {}, 'fn-kill'));
  assert.equal(await read(await b.invoke(req('/after-kill'))), 'hi /after-kill');
  await b.stop();
  for (let i = 0; i < 100 && driver.workerPids().length < 2; i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(driver.workerPids().length, 2);
  assert.ok(!driver.workerPids().includes(pid));
});

test('status reports tier, availability and instance count', async () => {
  const inst = await driver.createInstance(spec(HELLO));
  const s = driver.status();
  assert.equal(s.tier, 'isolate');
  assert.equal(s.available, true);
  assert.equal(s.instances, 1);
  await inst.drain();
  await inst.stop();
  assert.equal(driver.status().instances, 0);
});
