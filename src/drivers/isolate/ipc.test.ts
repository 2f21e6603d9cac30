/**
 * Process/IPC layer tests with a stand-in engine that lives only in this file: when the driver spawns
 * this file with `--standin-worker`, it serves frames with a plain-JS "sandbox" instead of isolates.
 * This isolates the driver's own behaviour (framing, streaming, caps, crash path, watchdog) and its IPC
 * cost from the engine's. The real-engine tests are in driver.test.ts.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import type { BindingMessage, InvokeRequest, InvokeResult } from '../../core/driver.ts';
import { IsolateDriver } from './driver.ts';
import { testSpec } from './testing.ts';
import { runWorker, type WorkerEngine, type WorkerSandbox, type WorkerSandboxCallbacks } from './worker-loop.ts';
import { parseDispatchLine } from '../../runtime/isolate/protocol.ts';

// ---------------------------------------------------------------- stand-in worker (child process only)
interface StandinIo {
  respond(status: number, headers?: Array<[string, string]>): void;
  chunk(s: string | Uint8Array): void;
  finish(error?: { code: string; message: string } | null): void;
  log(message: string): void;
  /** What a compromised worker could do: forward any queue send, skipping the engine's checks. */
  queueSend(binding: string, bodies: string[]): Promise<string[]>;
  body(): Promise<Uint8Array[]>;
}

function standinEngine(): WorkerEngine {
  return {
    createSandbox({ code, callbacks }: { code: string; callbacks: WorkerSandboxCallbacks }): WorkerSandbox {
      const mod = { exports: {} as unknown };
      new Function('module', code)(mod);
      const handler = mod.exports as (head: unknown, io: StandinIo) => void;
      if (typeof handler !== 'function') throw Object.assign(new Error('no handler exported'), { code: 'bad_bundle' });
      const bodies = new Map<string, { chunks: Uint8Array[]; done: boolean; waiters: Array<() => void> }>();
      let disposed = false;
      return {
        timing: { sandboxMs: 0.1, runtimeMs: 0.2, moduleMs: 0.3 },
        format: 'fetch',
        exportName: 'default',
        get disposed() {
          return disposed;
        },
        dispatchLine(id, line) {
          const { hasBody, headJson } = parseDispatchLine(line);
          const head = JSON.parse(headJson);
          const b = { chunks: [] as Uint8Array[], done: !hasBody, waiters: [] as Array<() => void> };
          bodies.set(id, b);
          const enc = new TextEncoder();
          const io: StandinIo = {
            respond: (status, headers = []) => callbacks.onRespond(id, { status, headers }),
            chunk: (s) => callbacks.onChunk(id, typeof s === 'string' ? enc.encode(s) : s),
            finish: (error = null) => {
              bodies.delete(id);
              callbacks.onFinish(id, (error as never) ?? null);
            },
            log: (m) => callbacks.onLog(id, 'log', m),
            queueSend: (binding, list) => callbacks.onQueueSend(id, binding, list.map((t) => ({ body: enc.encode(t), contentType: 'text/plain' }))),
            body: () => (b.done ? Promise.resolve(b.chunks) : new Promise((r) => b.waiters.push(() => r(b.chunks)))),
          };
          handler(head, io);
        },
        push(id, chunk) {
          const b = bodies.get(id);
          if (!b) return;
          if (chunk === null) {
            b.done = true;
            for (const w of b.waiters) w();
          } else {
            b.chunks.push(new Uint8Array(chunk));
          }
        },
        abort(id) {
          bodies.delete(id);
        },
        cpuTimeMs: () => 0,
        heapUsedBytes: () => 1234,
        dispose() {
          disposed = true;
        },
      };
    },
  };
}

if (process.argv.includes('--standin-worker')) {
  runWorker(() => standinEngine());
} else {
  suite();
}

// ---------------------------------------------------------------- tests (test process)
function suite(): void {
  const script = fileURLToPath(import.meta.url);
  let driver: IsolateDriver;
  const diagnostics: string[] = [];

  before(async () => {
    driver = new IsolateDriver({ workers: 2, workerScript: script, workerArgs: ['--standin-worker'], prelude: '', stuckMs: 1500, onDiagnostic: (m) => diagnostics.push(m) });
    await driver.start();
  });
  after(async () => {
    await driver.stop();
  });

  let seq = 0;
  const spec = testSpec;
  const req = (body: AsyncIterable<Uint8Array> | null = null): InvokeRequest => ({
    kind: 'http',
    invocationId: `inv-${++seq}`,
    request: { method: 'GET', url: 'http://fn.test/hello', headers: [['x-a', '1']] },
    body,
  });
  async function text(r: InvokeResult): Promise<string> {
    assert.equal(r.kind, 'response');
    if (r.kind !== 'response') return '';
    const parts: Uint8Array[] = [];
    for await (const c of r.body) parts.push(c);
    return Buffer.concat(parts).toString();
  }

  const HELLO = `module.exports = (h, io) => { io.respond(200, [['content-type','text/plain']]); io.chunk('hello ' + h.url); io.finish(); };`;

  test('hello round trip through a worker process', async () => {
    const inst = await driver.createInstance(spec(HELLO));
    assert.deepEqual(inst.initTiming, { sandboxMs: 0.1, runtimeMs: 0.2, moduleMs: 0.3 });
    const r = await inst.invoke(req());
    assert.equal(r.kind, 'response');
    assert.equal(r.kind === 'response' && r.status, 200);
    assert.equal(await text(r), 'hello http://fn.test/hello');
    const c = r.kind === 'response' ? await r.completion : null;
    assert.equal(c?.error, null);
    assert.equal(c?.peakMemoryBytes, 1234);
    await inst.stop();
    assert.equal(inst.state, 'stopped');
  });

  test('a worker can reach only the queues of its instance\'s own bindings, within the ceilings', async () => {
    const sent: Array<[string, string, string[]]> = [];
    const services = {
      async sendToQueue(fn: string, queue: string, messages: BindingMessage[]) {
        sent.push([fn, queue, messages.map((x) => new TextDecoder().decode(x.body))]);
        return messages.map((_, i) => `id-${i}`);
      },
    };
    const code = `module.exports = async (h, io) => {
      const out = [];
      for (const [name, bodies] of [['ORDERS', ['a', 'b']], ['OTHER', ['x']], ['ORDERS', Array.from({ length: 101 }, () => 'm')], ['ORDERS', ['z'.repeat(300 * 1024)]]]) {
        try { out.push(await io.queueSend(name, bodies)); } catch (e) { out.push(e.code); }
      }
      io.respond(200); io.chunk(JSON.stringify(out)); io.finish();
    };`;
    const inst = await driver.createInstance({ ...spec(code), bindings: { ORDERS: { queue: 'orders' } } }, services);
    assert.deepEqual(JSON.parse(await text(await inst.invoke(req()))), [['id-0', 'id-1'], 'forbidden', 'bad_request', 'payload_too_large']);
    assert.deepEqual(sent, [['fn-a', 'orders', ['a', 'b']]]);
    await inst.stop();
    // No services on this node: a granted binding answers unavailable.
    const bare = await driver.createInstance({ ...spec(code), bindings: { ORDERS: { queue: 'orders' } } });
    assert.equal(JSON.parse(await text(await bare.invoke(req())))[0], 'unavailable');
    await bare.stop();
  });

  test('workers run with an empty environment', async () => {
    const inst = await driver.createInstance(spec(`module.exports = (h, io) => { io.respond(200); io.chunk(JSON.stringify(Object.keys(process.env))); io.finish(); };`));
    const r = await inst.invoke(req());
    assert.deepEqual(JSON.parse(await text(r)), []);
    await inst.stop();
  });

  test('workers run under the permission model: no writes, no spawns, no reads outside their code', async () => {
    const inst = await driver.createInstance(
      spec(`module.exports = (h, io) => {
        const tryIt = (fn) => { try { fn(); return 'allowed'; } catch (e) { return e.code; } };
        const fs = process.getBuiltinModule('node:fs');
        const cp = process.getBuiltinModule('node:child_process');
        io.respond(200);
        io.chunk(JSON.stringify([
          tryIt(() => fs.writeFileSync('/tmp/continuum-worker-write-probe', 'x')),
          tryIt(() => cp.execFileSync('/bin/true')),
          tryIt(() => fs.readFileSync('/etc/passwd')),
        ]));
        io.finish();
      };`),
    );
    assert.deepEqual(JSON.parse(await text(await inst.invoke(req()))), ['ERR_ACCESS_DENIED', 'ERR_ACCESS_DENIED', 'ERR_ACCESS_DENIED']);
    await inst.stop();
  });

  test('bad module → bad_bundle with the reason', async () => {
    await assert.rejects(driver.createInstance(spec(`module.exports = 42;`)), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'bad_bundle');
      assert.match(e.message, /no handler exported/);
      return true;
    });
    await assert.rejects(driver.createInstance(spec(`this is not javascript`)), { code: 'bad_bundle' });
  });

  test('streams request and response bodies both ways', async () => {
    const inst = await driver.createInstance(
      spec(`module.exports = async (h, io) => { const chunks = await io.body(); io.respond(200); let n = 0; for (const c of chunks) { n += c.length; io.chunk(c); } io.chunk(':' + n); io.finish(); };`),
    );
    async function* body() {
      for (let i = 0; i < 50; i++) yield new Uint8Array(20_000).fill(65 + (i % 26));
    }
    const out = await text(await inst.invoke(req(body())));
    assert.equal(out.length, 1_000_000 + ':1000000'.length);
    assert.ok(out.endsWith(':1000000'));
    assert.equal(out.slice(20_000, 20_001), 'B');
    await inst.stop();
  });

  test('request body over the limit → payload_too_large, reading stops', async () => {
    const inst = await driver.createInstance(spec(`module.exports = async (h, io) => { await io.body(); io.respond(200); io.finish(); };`, { requestBodyBytes: 100_000 }));
    let pulled = 0;
    async function* body() {
      for (;;) {
        pulled++;
        yield new Uint8Array(10_000);
      }
    }
    const r = await inst.invoke(req(body()));
    assert.equal(r.kind, 'error');
    assert.equal(r.kind === 'error' && r.completion.error?.code, 'payload_too_large');
    assert.match(r.kind === 'error' ? r.completion.error!.message : '', /100000 bytes/);
    assert.ok(pulled <= 12, `pulled ${pulled} chunks`);
    await inst.stop();
  });

  test('response over the limit → output_too_large mid-stream', async () => {
    const inst = await driver.createInstance(
      spec(`module.exports = (h, io) => { io.respond(200); const c = new Uint8Array(64 * 1024); for (let i = 0; i < 64; i++) io.chunk(c); io.finish(); };`, { responseBytes: 1024 * 1024 }),
    );
    const r = await inst.invoke(req());
    assert.equal(r.kind, 'response');
    if (r.kind !== 'response') return;
    let got = 0;
    await assert.rejects(
      (async () => {
        for await (const c of r.body) got += c.length;
      })(),
      { code: 'output_too_large' },
    );
    assert.ok(got <= 1024 * 1024);
    assert.equal((await r.completion).error?.code, 'output_too_large');
    await inst.stop();
  });

  test('log flood is truncated at the cap with a marker', async () => {
    const inst = await driver.createInstance(
      spec(`module.exports = (h, io) => { const line = 'x'.repeat(1000); for (let i = 0; i < 20000; i++) io.log(line); io.respond(200); io.finish(); };`, { logBytes: 10_000 }),
    );
    const r = await inst.invoke(req());
    await text(r);
    const c = r.kind === 'response' ? await r.completion : null;
    assert.ok(c);
    assert.equal(c.logsTruncated, true);
    assert.ok(c.logBytes <= 10_000);
    assert.equal(c.logs.filter((l) => l.message.startsWith('x')).length, 10);
    assert.match(c.logs.at(-1)!.message, /truncated/);
    await inst.stop();
  });

  test('wall-clock timeout → timeout within +10 %, instance retires', async () => {
    // The bar is relative (± 10 %); a one-second limit leaves a loaded machine's timer lateness room.
    const inst = await driver.createInstance(spec(`module.exports = () => {};`, { timeoutMs: 1000 }));
    const exits: Array<string | null> = [];
    inst.onExit((r) => exits.push(r.code));
    const t0 = performance.now();
    const r = await inst.invoke(req());
    const ms = performance.now() - t0;
    assert.equal(r.kind === 'error' && r.completion.error?.code, 'timeout');
    assert.ok(ms >= 995 && ms < 1100, `${ms} ms`);
    assert.equal(inst.state, 'stopped');
    assert.deepEqual(exits, ['timeout']);
  });

  test('200 invocations in flight on one instance', async () => {
    const inst = await driver.createInstance(spec(`const held = []; module.exports = (h, io) => { held.push(io); if (held.length === 200) for (const x of held.splice(0)) { x.respond(201); x.chunk('ok'); x.finish(); } };`));
    const results = await Promise.all(Array.from({ length: 200 }, () => inst.invoke(req())));
    const texts = await Promise.all(results.map(text));
    assert.ok(texts.every((t) => t === 'ok'));
    assert.ok(results.every((r) => r.kind === 'response' && r.status === 201));
    await inst.stop();
  });

  test('kill -9 of a worker: in-flight invocations get instance_crashed promptly; new instances work', async () => {
    const hang = `module.exports = () => {};`;
    const a = await driver.createInstance(spec(hang, {}, 'fn-k'));
    const b = await driver.createInstance(spec(hang, {}, 'fn-k'));
    const pidA = (a as unknown as { workerPid: number }).workerPid;
    const pidB = (b as unknown as { workerPid: number }).workerPid;
    assert.notEqual(pidA, pidB, 'one function is spread over workers');
    const exit: string[] = [];
    a.onExit((r) => exit.push(r.message));
    const pending = Array.from({ length: 20 }, () => a.invoke(req()));
    await new Promise((r) => setTimeout(r, 50));
    const t0 = performance.now();
    process.kill(pidA, 'SIGKILL');
    const results = await Promise.all(pending);
    const ms = performance.now() - t0;
    assert.ok(results.every((r) => r.kind === 'error' && r.completion.error?.code === 'instance_crashed'));
    assert.ok(ms < 1000, `${ms} ms`);
    assert.equal(a.state, 'stopped');
    assert.equal(exit.length, 1);
    const c = await driver.createInstance(spec(HELLO));
    assert.equal(await text(await c.invoke(req())), 'hello http://fn.test/hello');
    await Promise.all([b.stop(), c.stop()]);
    // The slot is refilled.
    for (let i = 0; i < 50 && driver.workerPids().length < 2; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(driver.workerPids().length, 2);
    assert.ok(!driver.workerPids().includes(pidA));
  });

  test('watchdog kills a worker whose event loop is stuck', async () => {
    const stuck = await driver.createInstance(spec(`module.exports = (h) => { if (h.url.endsWith('/spin')) for (;;) {} };`, { cpuMs: 500 }, 'fn-s'));
    const pid = (stuck as unknown as { workerPid: number }).workerPid;
    const t0 = performance.now();
    const r = await stuck.invoke({ ...req(), request: { method: 'GET', url: 'http://fn.test/spin', headers: [] } });
    const ms = performance.now() - t0;
    assert.equal(r.kind === 'error' && r.completion.error?.code, 'instance_crashed');
    assert.ok(ms < 4000, `${ms} ms`);
    assert.ok(diagnostics.some((d) => d.includes(`pid ${pid}`) && d.includes('stuck')));
    const c = await driver.createInstance(spec(HELLO));
    assert.equal(await text(await c.invoke(req())), 'hello http://fn.test/hello');
    await c.stop();
  });

  test('IPC round trip cost (stand-in engine)', async () => {
    const inst = await driver.createInstance(spec(HELLO));
    const n = 20_000;
    const one = async () => {
      const r = await inst.invoke(req());
      if (r.kind !== 'response') throw new Error('no response');
      for await (const _ of r.body);
      await r.completion;
    };
    for (let i = 0; i < 2000; i++) await one();
    // Sequential: latency per round trip.
    let t0 = performance.now();
    for (let i = 0; i < 5000; i++) await one();
    const seqUs = ((performance.now() - t0) * 1000) / 5000;
    // Pipelined (64 in flight): throughput and driver CPU per request.
    const cpu0 = process.cpuUsage();
    t0 = performance.now();
    let next = 0;
    await Promise.all(Array.from({ length: 64 }, async () => {
      while (next++ < n) await one();
    }));
    const secs = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const driverCpuUs = (cpu.user + cpu.system) / n;
    console.log(`# ipc: sequential ${seqUs.toFixed(1)} µs/round trip; pipelined ${(n / secs).toFixed(0)} req/s; driver CPU ${driverCpuUs.toFixed(1)} µs/req`);
    assert.ok(seqUs < 2000);
    await inst.stop();
  });
}
