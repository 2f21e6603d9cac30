/**
 * The driver conformance suite: what every tier's SandboxDriver must do, whatever runs the code. A tier
 * runs it from its own test file: `runDriverConformance('isolate', async () => ({ driver, killSandbox }))`.
 *
 * - the same function in each handler format (fetch, Lambda v2, OpenWhisk) gives the same response;
 * - a streamed response body arrives in pieces, before the function has finished writing it;
 * - a consumer that stops reading a body ends its invocation (no error) at once; the instance serves on;
 * - 50 concurrent invocations on one instance;
 * - limits with their codes: timeout, cpu_limit or timeout for a busy loop, memory_limit, output_too_large;
 * - lifecycle: create, warm reuse, drain (waits for in-flight work, refuses new), stop (onExit once);
 * - the sandbox's process killed: in-flight invocations end with instance_crashed at once, a new instance works;
 * - usage (cpuMs, peakMemoryBytes) on every completion.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FUNCTION_DEFAULTS } from '../core/defaults.ts';
import type { HandlerFormat } from '../core/types.ts';
import type { Completion, Instance, InstanceSpec, InvokeRequest, InvokeResult, SandboxDriver } from '../core/driver.ts';

export interface ConformanceTarget {
  driver: SandboxDriver;
  /** SIGKILL the OS process that runs this instance's code. */
  killSandbox(instance: Instance): void;
  /** Memory limit for the memory bomb: small, but above what the tier's runtime needs at rest. */
  bombMemoryMb: number;
  /** Called after the suite, once the driver has stopped. */
  cleanup?: () => Promise<void>;
}

let seq = 0;

function spec(code: string, format: HandlerFormat, limits: Partial<InstanceSpec['limits']> = {}, functionName = 'conf-fn'): InstanceSpec {
  const exportName = format === 'fetch' ? 'default' : format === 'lambda' ? 'handler' : 'main';
  return {
    instanceId: `conf-${++seq}`,
    functionName,
    versionId: 'v_conformance',
    code,
    format,
    exportName,
    lambdaPayload: '2.0',
    limits: { ...FUNCTION_DEFAULTS.limits, ...limits },
    concurrency: 64,
    env: { GREETING: 'hi' },
    bindings: {},
  };
}

function request(path: string, body: string | null = null, headers: Array<[string, string]> = []): InvokeRequest {
  const bytes = body === null ? null : new TextEncoder().encode(body);
  return {
    kind: 'http',
    invocationId: `conf-inv-${++seq}`,
    request: { method: body === null ? 'GET' : 'POST', url: `http://fn.test${path}`, headers },
    body: bytes === null ? null : (async function* () { yield bytes; })(),
  };
}

async function text(r: InvokeResult): Promise<string> {
  assert.equal(r.kind, 'response', r.kind === 'error' ? JSON.stringify(r.completion.error) : '');
  if (r.kind !== 'response') return '';
  const parts: Uint8Array[] = [];
  for await (const c of r.body) parts.push(c);
  return Buffer.concat(parts).toString();
}

async function completion(r: InvokeResult): Promise<Completion> {
  return r.kind === 'error' ? r.completion : r.completion;
}

/** The error code an invocation ended with (also when its body failed mid-stream), or null. */
async function outcome(r: InvokeResult): Promise<string | null> {
  if (r.kind === 'error') return r.completion.error?.code ?? null;
  try {
    for await (const _ of r.body) void _;
  } catch {
    // the completion says why
  }
  return (await r.completion).error?.code ?? null;
}

const fetchModule = (body: string) => `module.exports = { default: { async fetch(request, env, ctx) { ${body} } } };`;

/** One function, three handler formats: answers 201 with `x-fn: yes` and `<greeting> <method> <path> n=<n> body=<body>`. */
const ECHO: Record<HandlerFormat, string> = {
  fetch: fetchModule(`
    const url = new URL(request.url);
    const body = await request.text();
    return new Response(env.GREETING + ' ' + request.method + ' ' + url.pathname + ' n=' + url.searchParams.get('n') + ' body=' + body,
      { status: 201, headers: { 'x-fn': 'yes', 'content-type': 'text/plain' } });`),
  lambda: `exports.handler = async (event) => ({
    statusCode: 201,
    headers: { 'x-fn': 'yes', 'content-type': 'text/plain' },
    body: process.env.GREETING + ' ' + event.requestContext.http.method + ' ' + event.rawPath + ' n=' + event.queryStringParameters.n + ' body=' + (event.isBase64Encoded ? atob(event.body) : event.body),
  });`,
  openwhisk: `exports.main = (params) => ({
    statusCode: 201,
    headers: { 'x-fn': 'yes', 'content-type': 'text/plain' },
    body: process.env.GREETING + ' ' + params.__ow_method.toUpperCase() + ' ' + params.__ow_path + ' n=' + params.n + ' body=' + params.__ow_body,
  });`,
};

const HELLO = fetchModule(`return new Response(env.GREETING + ' ' + new URL(request.url).pathname);`);

export function runDriverConformance(name: string, makeTarget: () => Promise<ConformanceTarget>): void {
  describe(`driver conformance: ${name}`, () => {
    let target: ConformanceTarget;
    let driver: SandboxDriver;
    before(async () => {
      target = await makeTarget();
      driver = target.driver;
    });
    after(async () => {
      await driver?.stop();
      await target?.cleanup?.();
    });

    test('the same function in each handler format gives the same response', async () => {
      const answers: Array<{ status: number; fn: string | undefined; body: string }> = [];
      for (const format of ['fetch', 'lambda', 'openwhisk'] as const) {
        const inst = await driver.createInstance(spec(ECHO[format], format));
        const r = await inst.invoke(request('/echo?n=7', 'payload', [['content-type', 'text/plain']]));
        assert.equal(r.kind, 'response', `${format}: ${r.kind === 'error' ? JSON.stringify(r.completion.error) : ''}`);
        if (r.kind !== 'response') continue;
        answers.push({ status: r.status, fn: r.headers.find(([k]) => k.toLowerCase() === 'x-fn')?.[1], body: await text(r) });
        assert.equal((await r.completion).error, null);
        await inst.stop();
      }
      assert.deepEqual(answers[0], { status: 201, fn: 'yes', body: 'hi POST /echo n=7 body=payload' });
      assert.deepEqual(answers[1], answers[0]);
      assert.deepEqual(answers[2], answers[0]);
    });

    test('a bundle without a handler is refused with bad_bundle', async () => {
      await assert.rejects(driver.createInstance(spec(`module.exports = { nothing: 1 };`, 'fetch')), { code: 'bad_bundle' });
      await assert.rejects(driver.createInstance(spec(`throw new Error('boom at load')`, 'fetch')), { code: 'bad_bundle' });
    });

    test('a streamed response body arrives before the function has finished writing it', async () => {
      const inst = await driver.createInstance(
        spec(fetchModule(`
          const enc = new TextEncoder();
          let i = 0;
          return new Response(new ReadableStream({
            async pull(c) {
              if (i === 3) { c.close(); return; }
              if (i > 0) await new Promise((r) => setTimeout(r, 150));
              c.enqueue(enc.encode('part' + i++ + ';'));
            },
          }));`), 'fetch'),
      );
      const t0 = performance.now();
      const r = await inst.invoke(request('/stream'));
      assert.equal(r.kind, 'response');
      if (r.kind !== 'response') return;
      const arrivals: Array<[string, number]> = [];
      for await (const c of r.body) arrivals.push([Buffer.from(c).toString(), performance.now() - t0]);
      assert.equal(arrivals.map(([s]) => s).join(''), 'part0;part1;part2;');
      assert.ok(arrivals.length >= 2, `body came in ${arrivals.length} piece(s)`);
      assert.ok(arrivals[0]![1] < arrivals.at(-1)![1] - 200, JSON.stringify(arrivals));
      await inst.stop();
    });

    test('a consumer that stops reading the body ends the invocation then, not at its timeout; the instance serves on', async () => {
      // A body that never ends: only the consumer going away (a client that left) can end the invocation.
      const inst = await driver.createInstance(
        spec(fetchModule(`
          if (new URL(request.url).pathname === '/after') return new Response('still here');
          const enc = new TextEncoder();
          return new Response(new ReadableStream({
            async pull(c) {
              await new Promise((r) => setTimeout(r, 20));
              c.enqueue(enc.encode('tick;'));
            },
          }));`), 'fetch', { timeoutMs: 120_000 }),
      );
      const exits: Array<string | null> = [];
      inst.onExit((x) => exits.push(x.code));
      const r = await inst.invoke(request('/forever'));
      assert.equal(r.kind, 'response');
      if (r.kind !== 'response') return;
      const it = r.body[Symbol.asyncIterator]();
      assert.equal(Buffer.from((await it.next()).value as Uint8Array).toString().slice(0, 5), 'tick;');
      await it.return?.();
      // Before its 120 s timeout, and without an error: the function answered; its client left.
      const ended = await Promise.race([r.completion, new Promise<'pending'>((res) => setTimeout(() => res('pending'), 30_000).unref())]);
      assert.notEqual(ended, 'pending', 'the invocation was still in flight 30 s after its consumer left');
      assert.equal((ended as Completion).error, null);
      assert.equal(await text(await inst.invoke(request('/after'))), 'still here');
      assert.deepEqual(exits, []);
      await inst.stop();
    });

    test('50 concurrent invocations on one instance', async () => {
      const inst = await driver.createInstance(spec(fetchModule(`await new Promise((r) => setTimeout(r, 50)); return new Response(new URL(request.url).searchParams.get('n'));`), 'fetch'));
      const results = await Promise.all(Array.from({ length: 50 }, (_, n) => inst.invoke(request(`/c?n=${n}`))));
      assert.deepEqual(await Promise.all(results.map(text)), Array.from({ length: 50 }, (_, n) => String(n)));
      await inst.stop();
    });

    test('a handler that never answers → timeout at the limit', async () => {
      const inst = await driver.createInstance(spec(fetchModule(`await new Promise(() => {});`), 'fetch', { timeoutMs: 400 }));
      const t0 = performance.now();
      assert.equal(await outcome(await inst.invoke(request('/hang'))), 'timeout');
      const ms = performance.now() - t0;
      assert.ok(ms >= 390 && ms < 600, `${ms} ms`);
    });

    test('a busy loop → cpu_limit or timeout, the instance is discarded, a new one works', async () => {
      const inst = await driver.createInstance(spec(fetchModule(`for (;;) {}`), 'fetch', { timeoutMs: 800 }, 'conf-spin'));
      const t0 = performance.now();
      const code = await outcome(await inst.invoke(request('/spin')));
      const ms = performance.now() - t0;
      assert.ok(code === 'cpu_limit' || code === 'timeout', String(code));
      assert.ok(ms < 800 * 1.1 + 100, `${ms} ms`);
      for (let i = 0; i < 40 && inst.state !== 'stopped'; i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal(inst.state, 'stopped');
      const next = await driver.createInstance(spec(HELLO, 'fetch', {}, 'conf-spin'));
      assert.equal(await text(await next.invoke(request('/after'))), 'hi /after');
      await next.stop();
    });

    test('a memory bomb → memory_limit, and the next instance works', async () => {
      const mb = target.bombMemoryMb;
      const inst = await driver.createInstance(spec(fetchModule(`const a = []; for (;;) a.push({ x: Math.random(), y: 'z'.repeat(64) + a.length });`), 'fetch', { memoryMb: mb, timeoutMs: 20_000 }, 'conf-heap'));
      const exits: Array<string | null> = [];
      inst.onExit((x) => exits.push(x.code));
      assert.equal(await outcome(await inst.invoke(request('/bomb'))), 'memory_limit');
      for (let i = 0; i < 40 && inst.state !== 'stopped'; i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal(inst.state, 'stopped');
      assert.deepEqual(exits, ['memory_limit']);
      const next = await driver.createInstance(spec(HELLO, 'fetch', { memoryMb: mb }, 'conf-heap'));
      assert.equal(await text(await next.invoke(request('/after'))), 'hi /after');
      await next.stop();
    });

    test('a response over the limit → output_too_large', async () => {
      const inst = await driver.createInstance(spec(fetchModule(`return new Response('z'.repeat(3 * 1024 * 1024));`), 'fetch', { responseBytes: 1024 * 1024 }));
      assert.equal(await outcome(await inst.invoke(request('/big'))), 'output_too_large');
      await inst.stop();
    });

    test('lifecycle: create, warm reuse, drain, stop', async () => {
      const inst = await driver.createInstance(spec(`let n = 0; ${fetchModule(`n++; if (new URL(request.url).pathname === '/slow') await new Promise((r) => setTimeout(r, 300)); return new Response(String(n));`)}`, 'fetch'));
      assert.equal(inst.state, 'ready');
      assert.equal(driver.status().available, true);
      assert.ok(driver.status().instances >= 1);
      // Module state survives between invocations: the same sandbox served both.
      assert.equal(await text(await inst.invoke(request('/a'))), '1');
      assert.equal(await text(await inst.invoke(request('/b'))), '2');
      const slow = inst.invoke(request('/slow'));
      await new Promise((r) => setTimeout(r, 50));
      let drained = false;
      const draining = inst.drain().then(() => (drained = true));
      assert.equal(inst.state, 'draining');
      const refused = await inst.invoke(request('/c'));
      assert.equal(refused.kind, 'error');
      assert.equal(drained, false);
      assert.equal(await text(await slow), '3');
      await draining;
      const exits: Array<string | null> = [];
      inst.onExit((x) => exits.push(x.code));
      await inst.stop();
      assert.equal(inst.state, 'stopped');
      await inst.stop();
      assert.deepEqual(exits, [null]);
    });

    test('the sandbox process killed: in-flight invocations end with instance_crashed at once; a new instance works', async () => {
      const inst = await driver.createInstance(spec(fetchModule(`await new Promise((r) => setTimeout(r, 5000)); return new Response('late');`), 'fetch', {}, 'conf-kill'));
      const exits: Array<string | null> = [];
      inst.onExit((x) => exits.push(x.code));
      const pending = Array.from({ length: 10 }, () => inst.invoke(request('/slow')));
      await new Promise((r) => setTimeout(r, 100));
      const t0 = performance.now();
      target.killSandbox(inst);
      const codes = await Promise.all(pending.map(async (p) => outcome(await p)));
      const ms = performance.now() - t0;
      assert.deepEqual(new Set(codes), new Set(['instance_crashed']));
      assert.ok(ms < 1000, `${ms} ms`);
      assert.equal(inst.state, 'stopped');
      assert.deepEqual(exits, ['instance_crashed']);
      const next = await driver.createInstance(spec(HELLO, 'fetch', {}, 'conf-kill'));
      assert.equal(await text(await next.invoke(request('/after-kill'))), 'hi /after-kill');
      await next.stop();
    });

    test('usage: CPU time and peak memory on each completion', async () => {
      // A fixed amount of work, not a wall-clock span: on a loaded host a span gets only a share of a core.
      const inst = await driver.createInstance(spec(fetchModule(`let x = 0; for (let i = 0; i < 1e8; i++) x = (x + i) | 0; return new Response(String(x !== 0));`), 'fetch'));
      const r = await inst.invoke(request('/burn'));
      assert.equal(await text(r), 'true');
      const c = await completion(r);
      assert.equal(c.error, null);
      assert.ok(c.cpuMs >= 20 && c.cpuMs < 5000, `cpuMs ${c.cpuMs}`);
      assert.ok(c.peakMemoryBytes > 0, `peakMemoryBytes ${c.peakMemoryBytes}`);
      await inst.stop();
    });
  });
}
