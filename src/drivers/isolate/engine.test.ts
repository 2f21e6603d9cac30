// Engine tests drive real isolates in-process. isolated-vm needs `node --no-node-snapshot`; under a plain
// `node --test` (npm test) this file re-runs itself in a child process with the flag and reports its
// result as one test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createHash, createHmac } from 'node:crypto';
import type { ErrorCode } from '../../core/errors.ts';
import type { LogLevel } from '../../core/types.ts';
import { GC_GLOBAL, type WireLoadOptions, type WireRequestHead } from '../../runtime/isolate/protocol.ts';

if (!process.execArgv.includes('--no-node-snapshot')) {
  test('isolate engine suite (re-run with --no-node-snapshot and the collector flag, as a worker runs)', () => {
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    const r = spawnSync(process.execPath, ['--no-node-snapshot', `--expose-gc-as=${GC_GLOBAL}`, '--test', '--test-reporter=spec', fileURLToPath(import.meta.url)], { env, encoding: 'utf8', timeout: 280_000 });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  });
} else {
  await suite();
}

interface Result {
  status: number | null;
  headers: Array<[string, string]>;
  chunks: Uint8Array[];
  body: string;
  error: { code: ErrorCode; message: string } | null;
  logs: Array<[LogLevel, string]>;
  ms: number;
  /** Isolate CPU time when the invocation finished (includes the sandbox's load work). */
  cpuMs: number;
}

async function suite(): Promise<void> {
  const { IsolateEngine } = await import('./engine.ts');
  type Engine = Awaited<ReturnType<typeof IsolateEngine.create>>;
  const engine = await IsolateEngine.create();

  const baseLoad: WireLoadOptions = { functionName: 'fn', versionId: 'v_test', format: 'auto', exportName: null, env: { GREETING: 'hello' }, memoryLimitMb: 32, timeoutMs: 10_000, subrequests: 3 };

  function makeSandbox(code: string, load: Partial<WireLoadOptions> = {}, on: Engine = engine) {
    const pending = new Map<string, { result: Result; resolve: (r: Result) => void; t0: number }>();
    const get = (id: string) => pending.get(id);
    const sandbox = on.createSandbox({
      code,
      load: { ...baseLoad, ...load },
      callbacks: {
        onRespond(id, head) {
          const p = get(id)!;
          p.result.status = head.status;
          p.result.headers = head.headers;
        },
        onChunk(id, bytes) {
          get(id)!.result.chunks.push(bytes);
        },
        onFinish(id, error) {
          const p = get(id)!;
          p.result.error = error;
          p.result.body = Buffer.concat(p.result.chunks).toString('utf8');
          p.result.ms = performance.now() - p.t0;
          p.result.cpuMs = sandbox.cpuTimeMs();
          pending.delete(id);
          p.resolve(p.result);
        },
        onLog(id, level, message) {
          get(id)?.result.logs.push([level, message]);
        },
      },
    });
    let n = 0;
    function invoke(head: Partial<WireRequestHead> = {}, body?: Array<string | Uint8Array>): Promise<Result> {
      const id = `inv-${++n}`;
      const promise = new Promise<Result>((resolve) => {
        pending.set(id, { result: { status: null, headers: [], chunks: [], body: '', error: null, logs: [], ms: 0, cpuMs: 0 }, resolve, t0: performance.now() });
      });
      sandbox.dispatch(id, { method: 'GET', url: 'http://fn.local/path?q=1', headers: [], ...head }, body !== undefined, null);
      if (body !== undefined) {
        for (const c of body) sandbox.push(id, typeof c === 'string' ? new TextEncoder().encode(c) : c);
        sandbox.push(id, null);
      }
      return promise;
    }
    return { sandbox, invoke };
  }

  const fetchModule = (body: string) => `module.exports.default = { async fetch(request, env, ctx) { ${body} } };`;

  test('fetch handler: hello, env, console formatting, timing', async (t) => {
    const { sandbox, invoke } = makeSandbox(fetchModule(`console.log('hi %s %d', 'there', 42, { a: [1, 'x'] }); console.error(new Error('boom').message); return new Response(env.GREETING + ' ' + new URL(request.url).pathname, { headers: { 'x-a': '1' } });`));
    assert.equal(sandbox.format, 'fetch');
    assert.equal(sandbox.exportName, 'default');
    const r = await invoke();
    assert.equal(r.error, null);
    assert.equal(r.status, 200);
    assert.equal(r.body, 'hello /path');
    assert.ok(r.headers.some(([k, v]) => k === 'x-a' && v === '1'));
    assert.deepEqual(r.logs, [['log', "hi there 42 { a: [ 1, 'x' ] }"], ['error', 'boom']]);
    t.diagnostic(`timing ${JSON.stringify(sandbox.timing)} heap ${sandbox.heapUsedBytes()} prelude ${engine.preludeBytes} snapshot ${engine.snapshotBytes}`);
    sandbox.dispose();
    assert.equal(sandbox.disposed, true);
  });

  test('Hono-style app object (fetch on the prototype) and process.env copy', async () => {
    const { invoke } = makeSandbox(`class App { fetch(req, env) { return new Response(JSON.stringify([env.GREETING, process.env.GREETING, Object.isFrozen(process.env), typeof require])) } } module.exports.default = new App();`);
    const r = await invoke();
    assert.deepEqual(JSON.parse(r.body), ['hello', 'hello', true, 'function']);
  });

  test('streaming both ways: pushed request chunks, timer-fed response stream', async () => {
    const { invoke } = makeSandbox(fetchModule(`
      const reader = request.body.getReader(); const seen = [];
      for (;;) { const { done, value } = await reader.read(); if (done) break; seen.push(new TextDecoder().decode(value)); }
      let i = 0;
      const stream = new ReadableStream({ async pull(c) { await new Promise((r) => setTimeout(r, 5)); if (i < 3) c.enqueue(new TextEncoder().encode(seen.join('|') + '#' + (i++) + ';')); else c.close(); } });
      return new Response(stream);`));
    const r = await invoke({ method: 'POST' }, ['a', 'b', 'c']);
    assert.equal(r.error, null);
    assert.equal(r.chunks.length, 3);
    assert.equal(r.body, 'a|b|c#0;a|b|c#1;a|b|c#2;');
  });

  test('ctx.waitUntil runs after the response; passThroughOnException exists', async () => {
    const { invoke } = makeSandbox(fetchModule(`ctx.passThroughOnException(); ctx.waitUntil(new Promise((r) => setTimeout(() => { console.log('later'); r(); }, 5))); return new Response('now');`));
    const r = await invoke();
    assert.equal(r.body, 'now');
    assert.equal(r.error, null);
  });

  test('incoming Request (host fast path) matches new Request(url, {method, headers}); lazy Response bodies', async () => {
    const { invoke } = makeSandbox(fetchModule(`
      const ref = new Request(request.url, { method: request.method, headers: [...request.headers] });
      const props = ['method', 'url', 'destination', 'referrer', 'referrerPolicy', 'mode', 'credentials', 'cache', 'redirect', 'integrity', 'keepalive', 'isReloadNavigation', 'isHistoryNavigation', 'duplex', 'bodyUsed'];
      const diff = props.filter((p) => ref[p] !== request[p]).map((p) => p + ':' + String(request[p]) + '!=' + String(ref[p]));
      const same = JSON.stringify([...ref.headers]) === JSON.stringify([...request.headers]);
      request.headers.set('x-added', '1');
      const clone = request.clone();
      const fromReq = new Request(request.clone());
      const body = request.body === null ? null : await request.text();
      const r1 = new Response('abc'); const s1 = r1.bodyUsed; const t1 = await r1.text();
      const r2 = new Response('xyz'); const rd = r2.body.getReader(); const c2 = await rd.read();
      const r3 = new Response(new Uint8Array([65, 66])).clone();
      return Response.json({ diff, same, hdrs: [...request.headers], signal: request.signal instanceof AbortSignal && !request.signal.aborted, clone: clone.url + ' ' + clone.headers.get('x-added'), fromReq: fromReq.method + ' ' + fromReq.url, body, s1, t1, c2: new TextDecoder().decode(c2.value), used2: r2.bodyUsed, r3: await r3.text() });`));
    const cases: Array<Partial<WireRequestHead>> = [
      { method: 'GET', url: 'http://fn.local/a?b=1', headers: [['Host', 'fn.local'], ['accept', '*/*'], ['cookie', 'a=1'], ['cookie', 'b=2'], ['x-dup', '1'], ['x-dup', '2']] },
      { method: 'GET', url: 'http://fn.local/a?b=1', headers: [['x-pad', ' padded '], ['x-tab', 'a\tb']] },
      { method: 'PROPFIND', url: 'http://fn.local/%7Euser', headers: [] },
      { method: 'POST', url: 'http://fn.local/p', headers: [['content-type', 'text/plain']] },
    ];
    for (const head of cases) {
      const r = await invoke(head, head.method === 'POST' ? ['hel', 'lo'] : undefined);
      assert.equal(r.error, null, JSON.stringify(r.error));
      const out = JSON.parse(r.body);
      assert.deepEqual(out.diff, [], head.method);
      assert.equal(out.same, true);
      assert.equal(out.signal, true);
      assert.equal(out.clone.endsWith(' 1'), true);
      assert.equal(out.body, head.method === 'POST' ? 'hello' : null);
      assert.deepEqual([out.s1, out.t1, out.c2, out.used2, out.r3], [false, 'abc', 'xyz', true, 'AB']);
    }
    const dup = JSON.parse((await invoke(cases[0])).body);
    assert.deepEqual(dup.hdrs.filter(([k]: [string]) => k === 'cookie' || k === 'x-dup'), [['cookie', 'a=1; b=2'], ['x-dup', '1, 2']]);
    // A head the constructor rejects still fails the same way (function_error, not a crash).
    const bad = await invoke({ headers: [['bad name', 'x']] });
    assert.equal(bad.error?.code, 'function_error');
    // A handler that streams a response it built from a string after touching the stream.
    const { invoke: inv2 } = makeSandbox(fetchModule(`const r = new Response('streamed'); r.body; return r;`));
    assert.equal((await inv2()).body, 'streamed');
  });

  const STATUS_CASES = "[200, 204.0, '201', 299.9, 65736, 2 ** 32 + 404, -0, 199, 600, NaN, Infinity].map((status) => illegal(() => new Response(null, { status })) === 'no error' ? new Response(null, { status }).status : illegal(() => new Response(null, { status })))";

  test('Web APIs inside the isolate match Node', async () => {
    const { invoke } = makeSandbox(fetchModule(`
      const out = {};
      out.url = new URL('http://Ⅷ.com/a b?x=1#h').href;
      out.idn = new URL('http://münchen.de/').host;
      out.search = new URLSearchParams('a=1&b=2&a=3').getAll('a');
      out.te = [...new TextEncoder().encode('é')];
      out.td = new TextDecoder().decode(new Uint8Array([0xe2, 0x82, 0xac]));
      out.b64 = [btoa('hi'), atob('aGk=')];
      const cloned = structuredClone({ m: new Map([[1, 2]]), d: new Date(0) }); out.clone = [cloned.m.get(1), cloned.d.getTime()];
      const ac = new AbortController(); let heard = 0; ac.signal.onabort = () => heard++; ac.signal.addEventListener('abort', () => heard++); ac.abort(); ac.abort('again');
      out.abort = [ac.signal.aborted, ac.signal.reason.name, heard, ac.signal instanceof EventTarget, String(ac), String(ac.signal)];
      const illegal = (f) => { try { f(); return 'no error'; } catch (e) { return e.constructor.name; } };
      out.abortBrand = [illegal(() => new AbortSignal()), illegal(() => Object.getOwnPropertyDescriptor(AbortSignal.prototype, 'aborted').get.call({})), illegal(() => Object.getOwnPropertyDescriptor(AbortController.prototype, 'signal').get.call(new EventTarget()))];
      const any = AbortSignal.any([new AbortController().signal, ac.signal]); const pending = new AbortController(); const later = AbortSignal.any([pending.signal]); pending.abort('why');
      out.abortMore = [AbortSignal.abort('r').reason, any.aborted, later.reason, await new Promise((r) => { const t = AbortSignal.timeout(1); t.onabort = () => r(t.reason.name); }), illegal(() => AbortSignal.abort(7).throwIfAborted())];
      const fd = new FormData(); fd.append('k', 'v'); fd.append('f', new File(['xyz'], 'a.txt'));
      const parsed = await new Response(fd).formData(); out.form = [parsed.get('k'), await parsed.get('f').text()];
      out.blob = await new Blob(['ab', 'cd']).slice(1, 3).text();
      const ts = new ReadableStream({ start(c) { c.enqueue('ab'); c.close(); } }).pipeThrough(new TransformStream({ transform(ch, c) { c.enqueue(ch.toUpperCase()); } }));
      out.stream = await new Response(ts.pipeThrough(new TextEncoderStream())).text();
      const h = new Headers([['Set-Cookie', 'a=1'], ['set-cookie', 'b=2'], ['X', '1']]); out.cookies = h.getSetCookie();
      out.json = await Response.json({ a: 1 }).json();
      const ev = new EventTarget(); let fired = 0; ev.addEventListener('x', () => fired++); ev.dispatchEvent(new Event('x')); out.event = fired;
      class Sub extends EventTarget {} const sub = new Sub(); sub.addEventListener('y', () => fired++); sub.dispatchEvent(new Event('y'));
      out.eventBrand = [fired, illegal(() => EventTarget.prototype.addEventListener.call({}, 'x', () => {})), illegal(() => EventTarget.prototype.dispatchEvent.call(Object.create(EventTarget.prototype), new Event('x')))];
      out.status = ${STATUS_CASES};
      out.uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(crypto.randomUUID());
      out.rand = crypto.getRandomValues(new Uint8Array(8)).length;
      out.timer = await new Promise((r) => { const id = setInterval(() => { clearInterval(id); r('tick'); }, 1); });
      out.perf = Number.isInteger(performance.now());
      out.microtask = await new Promise((r) => queueMicrotask(() => r('mt')));
      out.sab = [typeof SharedArrayBuffer, typeof Atomics];
      const enc = new TextEncoder();
      out.sha = [...new Uint8Array(await crypto.subtle.digest('SHA-256', enc.encode('abc')))].map((b) => b.toString(16).padStart(2, '0')).join('');
      const hk = await crypto.subtle.importKey('raw', enc.encode('key'), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
      const mac = await crypto.subtle.sign('HMAC', hk, enc.encode('msg'));
      out.hmac = [...new Uint8Array(mac)].map((b) => b.toString(16).padStart(2, '0')).join('');
      out.hmacOk = await crypto.subtle.verify('HMAC', hk, mac, enc.encode('msg'));
      out.keyInfo = [hk.type, hk.algorithm.name, hk.algorithm.hash.name, hk.usages.join(','), hk instanceof CryptoKey];
      const ak = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, true, ['encrypt', 'decrypt']);
      const iv = crypto.getRandomValues(new Uint8Array(12));
      const ct = await crypto.subtle.encrypt({ name: 'AES-GCM', iv }, ak, enc.encode('secret'));
      out.aes = new TextDecoder().decode(await crypto.subtle.decrypt({ name: 'AES-GCM', iv }, ak, ct));
      out.aesRaw = (await crypto.subtle.exportKey('raw', ak)).byteLength;
      const ec = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
      const sig = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, ec.privateKey, enc.encode('m'));
      out.ecdsa = [await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, ec.publicKey, sig, enc.encode('m')), (await crypto.subtle.exportKey('jwk', ec.publicKey)).crv];
      const ed = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
      const esig = await crypto.subtle.sign('Ed25519', ed.privateKey, enc.encode('m'));
      out.ed = [await crypto.subtle.verify('Ed25519', ed.publicKey, esig, enc.encode('m')), await crypto.subtle.verify('Ed25519', ed.publicKey, esig, enc.encode('x'))];
      try { await crypto.subtle.importKey('raw', enc.encode('k'), { name: 'NOPE' }, false, ['sign']); out.bad = 'no error'; } catch (e) { out.bad = e.name; }
      return Response.json(out);`));
    const r = await invoke();
    assert.equal(r.error, null, r.error?.message);
    const out = JSON.parse(r.body);
    assert.equal(out.url, new URL('http://Ⅷ.com/a b?x=1#h').href);
    assert.equal(out.idn, new URL('http://münchen.de/').host);
    assert.deepEqual(out.search, ['1', '3']);
    assert.deepEqual(out.te, [195, 169]);
    assert.equal(out.td, '€');
    assert.deepEqual(out.b64, ['aGk=', 'hi']);
    assert.deepEqual(out.clone, [2, 0]);
    assert.deepEqual(out.abort, [true, 'AbortError', 2, true, '[object AbortController]', '[object AbortSignal]']);
    assert.deepEqual(out.abortBrand, ['TypeError', 'TypeError', 'TypeError']);
    assert.deepEqual(out.abortMore, ['r', true, 'why', 'TimeoutError', 'Number']);
    assert.deepEqual(out.form, ['v', 'xyz']);
    assert.equal(out.blob, 'bc');
    assert.equal(out.stream, 'AB');
    assert.deepEqual(out.cookies, ['a=1', 'b=2']);
    assert.deepEqual(out.json, { a: 1 });
    assert.equal(out.event, 1);
    assert.deepEqual(out.eventBrand, [2, 'TypeError', 'TypeError']);
    // WebIDL's integer conversion of ResponseInit.status, fast path and the rest, as Node's undici does it.
    assert.deepEqual(out.status, new Function('illegal', `return ${STATUS_CASES}`)((f: () => unknown) => { try { f(); return 'no error'; } catch (e) { return (e as Error).constructor.name; } }));
    assert.equal(out.uuid, true);
    assert.equal(out.rand, 8);
    assert.equal(out.timer, 'tick');
    assert.equal(out.perf, true);
    assert.equal(out.microtask, 'mt');
    assert.deepEqual(out.sab, ['undefined', 'undefined']);
    assert.equal(out.sha, createHash('sha256').update('abc').digest('hex'));
    assert.equal(out.hmac, createHmac('sha256', 'key').update('msg').digest('hex'));
    assert.equal(out.hmacOk, true);
    assert.deepEqual(out.keyInfo, ['secret', 'HMAC', 'SHA-256', 'sign,verify', true]);
    assert.equal(out.aes, 'secret');
    assert.equal(out.aesRaw, 32);
    assert.deepEqual(out.ecdsa, [true, 'P-256']);
    assert.deepEqual(out.ed, [true, false]);
    assert.equal(out.bad, 'NotSupportedError');
  });

  test('TextDecoder on inputs of 1 KB and more (decoded by the host) matches Node: multi-byte, BOM, fatal and loose, views, streaming, bodies', async () => {
    const cases = `
      const big = new TextEncoder().encode('é€😀a'.repeat(400));
      const bom = new Uint8Array([0xef, 0xbb, 0xbf, ...big]);
      const bad = new Uint8Array(2048).fill(0x61); bad[1000] = 0xff; bad[1500] = 0xc3;
      const out = [new TextDecoder().decode(big), new TextDecoder().decode(bom), new TextDecoder('utf-8', { ignoreBOM: true }).decode(bom), new TextDecoder().decode(bad)];
      try { new TextDecoder('utf-8', { fatal: true }).decode(bad); out.push('no error'); } catch (e) { out.push(e.constructor.name); }
      out.push(new TextDecoder().decode(big.subarray(3, 2003)), new TextDecoder().decode(new DataView(big.buffer, 5, 1500)));
      const s = new TextDecoder(); out.push(s.decode(big.subarray(0, 1501), { stream: true }) + s.decode(big.subarray(1501), { stream: true }) + s.decode());
      out.push(await new Response(bom).text(), JSON.stringify(await new Response(new TextEncoder().encode(JSON.stringify({ k: 'ü'.repeat(2000) }))).json()));
      return out;`;
    const { invoke } = makeSandbox(fetchModule(`${cases.replace(/return out;$/, 'return Response.json(out);')}`));
    const r = await invoke();
    assert.equal(r.error, null, r.error?.message);
    const expected = await (new Function(`return (async () => { ${cases} })();`)() as Promise<string[]>);
    const actual = JSON.parse(r.body) as string[];
    assert.equal(actual.length, expected.length);
    expected.forEach((e, i) => assert.ok(actual[i] === e, `case ${i}: ${JSON.stringify(actual[i]?.slice(0, 12))}…(${actual[i]?.length}) ≠ ${JSON.stringify(e.slice(0, 12))}…(${e.length})`));
  });

  test('streamed body chunks that are views of a larger buffer send just their bytes (also when slice() returns a view, as a Buffer does)', async () => {
    const { invoke } = makeSandbox(fetchModule(`
      class ViewSlicing extends Uint8Array { slice(a, b) { return this.subarray(a, b); } }
      const all = new ViewSlicing(new TextEncoder().encode('--hello, world--').buffer);
      return new Response(new ReadableStream({ start(c) { c.enqueue(all.subarray(2, 8)); c.enqueue(all.subarray(8, 14)); c.close(); } }));`));
    const r = await invoke();
    assert.equal(r.error, null, r.error?.message);
    assert.equal(Buffer.concat(r.chunks).toString(), 'hello, world');
  });

  test('response headers leave as the Headers iterator yields them: lower-case, sorted, values combined, each set-cookie apart', async () => {
    const init = "[['X-B', '2'], ['x-a', '1'], ['Set-Cookie', 'c=1'], ['X-A', '3'], ['set-cookie', 'd=2'], ['Content-Type', 'text/x']]";
    const { invoke } = makeSandbox(fetchModule(`return new Response('x', { headers: ${init} });`));
    const r = await invoke();
    assert.equal(r.error, null, r.error?.message);
    assert.deepEqual(r.headers, [...new Headers(new Function(`return ${init}`)())]);
  });

  test('a used spare is replaced once the engine is idle, not while the sandbox that took it waits for its first request', async () => {
    const until = async (cond: () => boolean, ms: number) => {
      const end = Date.now() + ms;
      while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
      return cond();
    };
    const patient = await IsolateEngine.create({ spares: 1, spareRefillMaxWaitMs: 60_000 });
    try {
      assert.ok(await until(() => patient.spares === 1, 10_000), 'the first spare is made at start');
      const noop = { onRespond() {}, onChunk() {}, onLog() {} };
      let finished!: () => void;
      const done = new Promise<void>((r) => (finished = r));
      const sandbox = patient.createSandbox({ code: fetchModule(`return new Response('ok');`), load: baseLoad, callbacks: { ...noop, onFinish: () => finished() } });
      assert.equal(patient.spares, 0, 'the sandbox took the spare');
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(patient.spares, 0, 'no refill while the new sandbox waits for its first request');
      sandbox.dispatch('first', { method: 'GET', url: 'http://fn.local/', headers: [] }, false, null);
      await done;
      assert.ok(await until(() => patient.spares === 1, 10_000), 'refilled once idle, long before the 60 s bound');
      sandbox.dispose();
    } finally {
      patient.close();
    }
    const bounded = await IsolateEngine.create({ spares: 1, spareRefillMaxWaitMs: 100 });
    try {
      assert.ok(await until(() => bounded.spares === 1, 10_000));
      const unused = bounded.createSandbox({ code: fetchModule(`return new Response('ok');`), load: baseLoad, callbacks: { onRespond() {}, onChunk() {}, onLog() {}, onFinish() {} } });
      assert.ok(await until(() => bounded.spares === 1, 10_000), 'a sandbox that never gets a request holds the refill back only for the bound');
      unused.dispose();
    } finally {
      bounded.close();
    }
  });

  test('an instance that served and went quiet gives its heap pages back, once per interval, and serves as before', async (t) => {
    const trimming = await IsolateEngine.create({ spares: 0, trimAfterIdleMs: 200, trimMinIntervalMs: 60_000 });
    try {
      const { sandbox, invoke } = makeSandbox(fetchModule(`
        let a = [];
        for (let i = 0; i < 30000; i++) { a.push({ i, s: 'x' + i }); if (a.length > 100) a = []; }
        return new Response(typeof ${GC_GLOBAL} + ' ' + typeof gc);`), {}, trimming);
      for (let i = 0; i < 3; i++) assert.equal((await invoke()).body, 'undefined undefined', 'V8\'s collector never reaches tenant code');
      const before = sandbox.heapResidentBytes();
      assert.equal(sandbox.trimState().lastTrimMs, null, 'not while it was busy or only just idle');
      const end = Date.now() + 15_000;
      while (sandbox.trimState().lastTrimMs === null && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      assert.notEqual(sandbox.trimState().lastTrimMs, null, 'trimmed once idle');
      await new Promise((r) => setTimeout(r, 200)); // the collection runs on the isolate's thread
      const after = sandbox.heapResidentBytes();
      t.diagnostic(`heap resident ${(before / 1048576).toFixed(2)} → ${(after / 1048576).toFixed(2)} MB`);
      assert.ok(after < before * 0.8, `resident heap ${before} → ${after}`);
      const first = sandbox.trimState().lastTrimMs;
      assert.equal((await invoke()).body, 'undefined undefined');
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(sandbox.trimState().lastTrimMs, first, 'not again within the interval');
      sandbox.dispose();
    } finally {
      trimming.close();
    }
  });

  test('outbound fetch is denied with egress_denied; unhandled → invocation code egress_denied', async () => {
    const caught = makeSandbox(fetchModule(`try { await fetch('https://example.com/'); return new Response('no'); } catch (e) { return new Response(e.constructor.name + ':' + e.message); }`));
    const r1 = await caught.invoke();
    assert.match(r1.body, /^TypeError:.*egress_denied/);
    const unhandled = makeSandbox(fetchModule(`await fetch('https://example.com/'); return new Response('no');`));
    const r2 = await unhandled.invoke();
    assert.equal(r2.error?.code, 'egress_denied');
    assert.equal(r2.status, null);
  });

  test('subrequest cap → subrequest_limit', async () => {
    const { invoke } = makeSandbox(fetchModule(`for (let i = 0; i < 10; i++) { try { await fetch('https://example.com/'); } catch (e) { if (!/egress_denied/.test(e.message)) throw e; } } return new Response('no');`));
    const r = await invoke();
    assert.equal(r.error?.code, 'subrequest_limit');
  });

  test('response size cap → output_too_large, streamed not buffered', async () => {
    const { invoke } = makeSandbox(fetchModule(`const chunk = new Uint8Array(64 * 1024); let n = 0; return new Response(new ReadableStream({ pull(c) { if (n++ > 1000) c.close(); else c.enqueue(chunk); } }));`), { responseBytes: 256 * 1024 });
    const r = await invoke();
    assert.equal(r.error?.code, 'output_too_large');
    assert.equal(r.status, 200);
    assert.ok(Buffer.concat(r.chunks).length <= 256 * 1024);
  });

  test('Lambda v2: event shape, context, response inference, cookies, base64 both ways', async () => {
    const { sandbox, invoke } = makeSandbox(`exports.handler = async (event, context) => {
      if (event.rawPath === '/plain') return { hello: 'world' };
      if (event.rawPath === '/bin') return { statusCode: 201, headers: { 'content-type': 'application/octet-stream' }, body: Buffer64, isBase64Encoded: true, cookies: ['a=1', 'b=2'] };
      return { statusCode: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ event, ctx: { ...context, remaining: context.getRemainingTimeInMillis() } }) };
    }; const Buffer64 = btoa('\\x00\\x01\\x02');`);
    assert.equal(sandbox.format, 'lambda');
    assert.equal(sandbox.exportName, 'handler');
    const r = await invoke({ method: 'POST', url: 'http://fn.local/items/7?a=1&a=2&b=x', headers: [['content-type', 'text/plain'], ['Cookie', 'c1=v1; c2=v2'], ['x-multi', 'p'], ['x-multi', 'q'], ['user-agent', 'ua']], clientIp: '10.0.0.9' }, ['he', 'llo']);
    assert.equal(r.error, null, r.error?.message);
    const { event, ctx } = JSON.parse(r.body);
    assert.equal(event.version, '2.0');
    assert.equal(event.routeKey, '$default');
    assert.equal(event.rawPath, '/items/7');
    assert.equal(event.rawQueryString, 'a=1&a=2&b=x');
    assert.deepEqual(event.cookies, ['c1=v1', 'c2=v2']);
    assert.equal(event.headers['x-multi'], 'p,q');
    assert.equal(event.headers.cookie, undefined);
    assert.deepEqual(event.queryStringParameters, { a: '1,2', b: 'x' });
    assert.equal(event.requestContext.http.method, 'POST');
    assert.equal(event.requestContext.http.path, '/items/7');
    assert.equal(event.requestContext.http.sourceIp, '10.0.0.9');
    assert.equal(event.requestContext.http.userAgent, 'ua');
    assert.equal(typeof event.requestContext.timeEpoch, 'number');
    assert.match(event.requestContext.time, /^\d\d\/[A-Z][a-z]{2}\/\d{4}:\d\d:\d\d:\d\d \+0000$/);
    assert.equal(event.body, 'hello');
    assert.equal(event.isBase64Encoded, false);
    assert.equal(ctx.functionName, 'fn');
    assert.equal(ctx.functionVersion, 'v_test');
    assert.equal(ctx.memoryLimitInMB, '32');
    assert.equal(ctx.awsRequestId, 'inv-1');
    assert.equal(ctx.callbackWaitsForEmptyEventLoop, true);
    assert.ok(ctx.invokedFunctionArn.endsWith(':function:fn'));
    assert.ok(ctx.remaining > 0 && ctx.remaining <= 10_000);
    assert.equal(typeof ctx.logGroupName, 'string');

    const bin = await invoke({ method: 'POST', url: 'http://fn.local/b', headers: [['content-type', 'application/octet-stream']] }, [new Uint8Array([0xff, 0x00, 0xfe])]);
    assert.equal(JSON.parse(bin.body).event.isBase64Encoded, true);
    assert.equal(JSON.parse(bin.body).event.body, Buffer.from([0xff, 0x00, 0xfe]).toString('base64'));

    const plain = await invoke({ url: 'http://fn.local/plain' });
    assert.equal(plain.status, 200);
    assert.deepEqual(plain.headers, [['content-type', 'application/json']]);
    assert.deepEqual(JSON.parse(plain.body), { hello: 'world' });

    const b = await invoke({ url: 'http://fn.local/bin' });
    assert.equal(b.status, 201);
    assert.deepEqual([...Buffer.concat(b.chunks)], [0, 1, 2]);
    assert.deepEqual(b.headers.filter(([k]) => k === 'set-cookie').map(([, v]) => v), ['a=1', 'b=2']);
  });

  test('Lambda v1 (REST) payload and strict response; callback-style and thrown errors', async () => {
    const { invoke } = makeSandbox(`exports.handler = (event, context, callback) => {
      if (event.path === '/err') return callback(new Error('nope'));
      if (event.path === '/bad') return callback(null, { body: 'x' });
      callback(null, { statusCode: 202, multiValueHeaders: { 'x-m': ['1', '2'] }, body: JSON.stringify({ httpMethod: event.httpMethod, path: event.path, q: event.queryStringParameters, mq: event.multiValueQueryStringParameters, h: event.headers.host, mh: event.multiValueHeaders['x-a'], rc: event.requestContext.resourcePath, body: event.body, b64: event.isBase64Encoded }) });
    };`, { payload: '1.0' });
    const r = await invoke({ url: 'http://fn.local/p?a=1&a=2', headers: [['host', 'fn.local'], ['x-a', '1'], ['x-a', '2']] });
    assert.equal(r.status, 202);
    assert.deepEqual(r.headers, [['x-m', '1'], ['x-m', '2']]);
    assert.deepEqual(JSON.parse(r.body), { httpMethod: 'GET', path: '/p', q: { a: '2' }, mq: { a: ['1', '2'] }, h: 'fn.local', mh: ['1', '2'], rc: '/{proxy+}', body: null, b64: false });
    const e = await invoke({ url: 'http://fn.local/err' });
    assert.equal(e.error?.code, 'function_error');
    assert.match(e.error!.message, /nope/);
    const bad = await invoke({ url: 'http://fn.local/bad' });
    assert.equal(bad.error?.code, 'function_error');
  });

  test('OpenWhisk main(params): query + JSON/form merged, __ow_* fields, web-action result', async () => {
    const { sandbox, invoke } = makeSandbox(`exports.main = async (params) => params.web ? { statusCode: 201, headers: { 'x-w': '1' }, body: { got: params.name } } : params;`);
    assert.equal(sandbox.format, 'openwhisk');
    const r = await invoke({ method: 'POST', url: 'http://fn.local/a/b?name=q&x=1', headers: [['content-type', 'application/json']] }, ['{"name":"json","n":2}']);
    const p = JSON.parse(r.body);
    assert.equal(r.status, 200);
    assert.equal(p.name, 'json');
    assert.equal(p.x, '1');
    assert.equal(p.n, 2);
    assert.equal(p.__ow_method, 'post');
    assert.equal(p.__ow_path, '/a/b');
    assert.equal(p.__ow_headers['content-type'], 'application/json');
    const form = JSON.parse((await invoke({ method: 'POST', headers: [['content-type', 'application/x-www-form-urlencoded']] }, ['a=1&b=2'])).body);
    assert.deepEqual([form.a, form.b], ['1', '2']);
    const text = JSON.parse((await invoke({ method: 'POST', headers: [['content-type', 'text/plain']] }, ['raw'])).body);
    assert.equal(text.__ow_body, 'raw');
    const web = await invoke({ url: 'http://fn.local/?web=1&name=w' });
    assert.equal(web.status, 201);
    assert.deepEqual(JSON.parse(web.body), { got: 'w' });
    assert.ok(web.headers.some(([k, v]) => k === 'x-w' && v === '1'));
  });

  test('bundle errors: no handler, syntax error, throwing module, require', async () => {
    const bad = (code: string, re: RegExp, codeName = 'bad_bundle') =>
      assert.throws(() => makeSandbox(code), (e: Error & { code?: string }) => e.code === codeName && re.test(e.message));
    bad('module.exports = { nothing: 1 }', /No handler found/);
    bad('this is not js', /does not compile/);
    bad('throw new Error("top-level boom")', /top-level boom/);
    bad(`require('fs')`, /unavailable in the isolate tier.*process/);
    bad('exports.handler = 1', /No handler found/);
    assert.throws(() => makeSandbox('exports.main = () => 1', { format: 'lambda' }), /No handler found/);
  });

  for (const [name, body] of [
    ['for(;;){}', 'for(;;){}'],
    ['microtask bomb', 'function f() { Promise.resolve().then(f); } f(); await new Promise(() => {});'],
    ['Promise.resolve().then(spin)', 'await Promise.resolve().then(() => { for (;;); });'],
    ['async loop over resolved promises', 'for (;;) { await null; }'],
    ['spin inside a timer callback', 'await new Promise(() => setTimeout(() => { for(;;){} }, 1));'],
  ] as const) {
    test(`CPU limit: ${name} → cpu_limit within limit + 10 %, sandbox disposed, next sandbox works`, async (t) => {
      const cpuMs = 300;
      const { sandbox, invoke } = makeSandbox(fetchModule(body), { cpuMs });
      const r = await invoke();
      assert.equal(r.error?.code, 'cpu_limit');
      // CPU charged stays within the limit + 10 % (+ the few ms of module load); wall time depends on
      // how busy the machine is, so it only gets a loose bound.
      assert.ok(r.cpuMs <= cpuMs * 1.1 + 15, `used ${r.cpuMs} ms CPU`);
      assert.ok(r.ms <= cpuMs * 5, `ended after ${r.ms} ms`);
      assert.equal(sandbox.disposed, true);
      t.diagnostic(`${name}: ended after ${r.ms.toFixed(1)} ms wall, ${r.cpuMs.toFixed(1)} ms CPU (limit ${cpuMs})`);
      const next = makeSandbox(fetchModule('return new Response("ok")'));
      assert.equal((await next.invoke()).body, 'ok');
    });
  }

  test('microtask bomb left running after the response: sandbox disposed within the limit', async () => {
    const { sandbox, invoke } = makeSandbox(fetchModule('function f() { Promise.resolve().then(f); } f(); return new Response("x");'), { cpuMs: 300 });
    const t0 = performance.now();
    const r = await invoke();
    assert.ok(r.error === null || r.error.code === 'cpu_limit');
    assert.equal(sandbox.disposed, true);
    assert.ok(performance.now() - t0 <= 1500);
    assert.ok(r.cpuMs <= 330 + 15);
  });

  test('CPU budget is per invocation across calls (timer slices add up)', async () => {
    const { invoke } = makeSandbox(fetchModule(`for (let i = 0; i < 100; i++) { await new Promise((r) => setTimeout(r, 0)); const end = Date.now() + 20; while (Date.now() < end); } return new Response('done');`), { cpuMs: 200 });
    const r = await invoke();
    assert.equal(r.error?.code, 'cpu_limit');
  });

  test('wall-clock timeout → timeout; the sandbox stays usable', async () => {
    const { sandbox, invoke } = makeSandbox(fetchModule(`if (new URL(request.url).pathname === '/slow') await new Promise(() => {}); return new Response('fast');`), { timeoutMs: 100 });
    const r = await invoke({ url: 'http://fn.local/slow' });
    assert.equal(r.error?.code, 'timeout');
    assert.equal(sandbox.disposed, false);
    assert.equal((await invoke()).body, 'fast');
  });

  for (const [name, body] of [
    ['push objects forever', 'const a = []; for (;;) a.push({ x: a.length, y: [a.length] });'],
    ['string doubling', 'let s = "x"; const keep = []; for (;;) { s = s + s + "y"; keep.push(s.slice(1)); }'],
    ['JSON.parse abuse', 'const big = JSON.stringify(Array.from({ length: 100000 }, (_, i) => ({ i, s: "abcdefgh" + i }))); const keep = []; for (;;) keep.push(JSON.parse(big));'],
    ['typed arrays', 'const keep = []; for (;;) keep.push(new Uint8Array(8 * 1024 * 1024).fill(1));'],
    ['spread of a huge string', 'const keep = []; for (;;) keep.push([...".".repeat(5e6)]);'],
  ] as const) {
    test(`heap bomb: ${name} → memory_limit, process survives, next sandbox works`, async () => {
      const { sandbox, invoke } = makeSandbox(fetchModule(body), { memoryLimitMb: 32, cpuMs: 20_000 });
      const r = await invoke();
      assert.ok(r.error?.code === 'memory_limit' || (r.error?.code === 'function_error' && /Array buffer allocation failed|Invalid (string|array) length/.test(r.error.message)), JSON.stringify(r.error));
      if (r.error?.code === 'memory_limit') assert.equal(sandbox.disposed, true);
      sandbox.dispose();
      const next = makeSandbox(fetchModule('return new Response("ok")'));
      assert.equal((await next.invoke()).body, 'ok');
    });
  }

  test('deep recursion → function_error (RangeError), sandbox reusable', async () => {
    const { invoke } = makeSandbox(fetchModule(`if (request.url.endsWith('/r')) { const f = (n) => f(n + 1) + 1; f(0); } return new Response('ok');`));
    const r = await invoke({ url: 'http://fn.local/r' });
    assert.equal(r.error?.code, 'function_error');
    assert.match(r.error!.message, /RangeError/);
    assert.equal((await invoke()).body, 'ok');
  });

  test('catalogue 1: realm-escape corpus reaches no host object', async () => {
    const { sandbox, invoke } = makeSandbox(fetchModule(`
      const out = {};
      const probe = (name, fn) => { try { const v = fn(); out[name] = v === undefined ? 'undefined' : typeof v === 'object' || typeof v === 'function' ? (v && (v.process || v.require || v.mainModule) ? 'LEAK' : 'isolate-object') : String(v); } catch (e) { out[name] = 'threw:' + (e && e.name); } };
      probe('ctorProcess', () => this.constructor.constructor('return typeof process === "object" && process.versions && process.versions.node')());
      probe('objCtor', () => ({}).constructor.constructor('return typeof require')());
      probe('fnThis', () => { const g = Function('return this')(); return typeof g.require + typeof g.module + String(g.process && g.process.versions && g.process.versions.node); });
      probe('global', () => typeof global);
      probe('prepareStackTrace', () => { Error.prepareStackTrace = (e, frames) => frames.map((f) => { try { return typeof f.getThis() + typeof f.getFunction(); } catch (err) { return 'x'; } }).join(); return new Error('x').stack; });
      Error.prepareStackTrace = undefined;
      probe('importDyn', () => { import('fs').then(() => { out.importResolved = true; }, () => {}); return 'scheduled'; });
      probe('wasm', () => typeof WebAssembly.Module);
      probe('ctorOfConsole', () => console.log.constructor('return typeof process.binding')());
      probe('hostCallbackCtor', () => Object.getPrototypeOf(crypto.getRandomValues).constructor('return typeof process.binding')());
      await null;
      const custom = { [Symbol.for('nodejs.util.inspect.custom')]() { return globalThis.LEAKED = 'called'; } };
      console.log(custom);
      return Response.json(out);`));
    const r = await invoke();
    assert.equal(r.error, null, r.error?.message);
    const out = JSON.parse(r.body);
    assert.ok(!JSON.stringify(out).includes('LEAK'), r.body);
    assert.notEqual(out.ctorProcess, 'true');
    assert.match(out.ctorProcess, /undefined|threw|false/);
    assert.equal(out.objCtor, 'undefined');
    assert.match(out.fnThis, /^undefinedundefinedundefined$/);
    assert.equal(out.global, 'undefined');
    assert.equal(out.importResolved, undefined);
    // thrown non-Error values and inspect.custom objects end the invocation normally
    const thrower = makeSandbox(fetchModule(`throw { [Symbol.for('nodejs.util.inspect.custom')]() { return 'x'; }, toString() { throw new Error('no'); } };`));
    const t = await thrower.invoke();
    assert.equal(t.error?.code, 'function_error');
    const sym = makeSandbox(fetchModule(`throw Symbol('s');`));
    assert.equal((await sym.invoke()).error?.code, 'function_error');
    const p = makeSandbox(fetchModule(`throw new Proxy({}, { get() { throw new Error('trap'); }, getPrototypeOf() { throw new Error('trap'); } });`));
    assert.equal((await p.invoke()).error?.code, 'function_error');
    assert.equal(sandbox.disposed, false);
  });

  test('catalogue 3: the global graph holds only the allowlisted surface and no ivm handles', async () => {
    const { invoke } = makeSandbox(fetchModule(`
      const seen = new Set(); const bad = []; const queue = [[globalThis, 'globalThis']];
      while (queue.length && seen.size < 20000) {
        const [o, path] = queue.shift();
        if (o === null || (typeof o !== 'object' && typeof o !== 'function') || seen.has(o)) continue;
        seen.add(o);
        const tag = Object.prototype.toString.call(o);
        const ctor = (() => { try { const d = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(o) || {}, 'constructor'); return d && d.value && d.value.name; } catch { return ''; } })();
        if (/Reference|ExternalCopy|Callback|Context|Isolate|Dereference/.test(String(ctor)) || /Reference|ExternalCopy/.test(tag)) bad.push(path + ':' + ctor);
        let keys = []; try { keys = Reflect.ownKeys(o); } catch {}
        for (const k of keys) {
          let d; try { d = Object.getOwnPropertyDescriptor(o, k); } catch { continue; }
          if (d && 'value' in d) queue.push([d.value, path + '.' + String(k)]);
          if (d && d.get) { queue.push([d.get, path + '.get ' + String(k)]); try { queue.push([d.get.call(o), path + '.' + String(k) + '()']); } catch {} }
        }
        try { queue.push([Object.getPrototypeOf(o), path + '.__proto__']); } catch {}
      }
      const names = Object.getOwnPropertyNames(globalThis).filter((n) => n.startsWith('__continuum') || ['require', 'module', 'exports', 'global', 'Buffer', 'SharedArrayBuffer', 'Atomics', 'process', 'gc'].includes(n));
      const collector = Object.getOwnPropertyDescriptor(globalThis, '${GC_GLOBAL}');
      return Response.json({ bad, names, visited: seen.size, keys: Object.getOwnPropertyNames(globalThis).sort(), collector: collector && { value: typeof collector.value, writable: collector.writable } });`));
    const r = await invoke();
    assert.equal(r.error, null, r.error?.message);
    const out = JSON.parse(r.body);
    assert.deepEqual(out.bad, []);
    // V8's collector global cannot be deleted: it is left frozen to undefined (the runtime keeps the function).
    assert.deepEqual(out.collector, { value: 'undefined', writable: false });
    assert.deepEqual(out.names, [GC_GLOBAL, 'process']);
    assert.ok(out.visited > 500);
    const webApis = ['fetch', 'Request', 'Response', 'Headers', 'FormData', 'Blob', 'File', 'URL', 'URLSearchParams', 'TextEncoder', 'TextDecoder', 'TextEncoderStream', 'TextDecoderStream', 'ReadableStream', 'WritableStream', 'TransformStream', 'AbortController', 'AbortSignal', 'Event', 'EventTarget', 'crypto', 'atob', 'btoa', 'structuredClone', 'setTimeout', 'setInterval', 'clearTimeout', 'clearInterval', 'queueMicrotask', 'console', 'performance', 'DOMException'];
    for (const name of webApis) assert.ok(out.keys.includes(name), name);
  });

  test('catalogue 4: hostile arguments to every bridge → clean errors, host unaffected', async () => {
    const { sandbox, invoke } = makeSandbox(fetchModule(`
      const out = {};
      const hostile = new Proxy({}, { get() { throw new Error('trap get'); }, ownKeys() { throw new Error('trap keys'); }, getOwnPropertyDescriptor() { throw new Error('trap desc'); }, getPrototypeOf() { throw new Error('trap proto'); } });
      const cyclic = {}; cyclic.self = cyclic; cyclic.__proto__polluter = JSON.parse('{"__proto__": {"polluted": 1}, "constructor": {"prototype": {"polluted": 1}}}');
      const getter = { get a() { throw new Error('getter'); } };
      const sparse = []; sparse.length = 2 ** 32 - 1;
      const tryIt = async (name, fn) => { try { await fn(); out[name] = 'ok'; } catch (e) { out[name] = (e && e.name) || typeof e; } };
      console.log(hostile, cyclic, getter, sparse, Symbol('s'), 10n, 'x'.repeat(200000));
      console.log('%s %d %j', hostile, hostile, cyclic);
      await tryIt('digestProxy', () => crypto.subtle.digest(hostile, new Uint8Array(1)));
      await tryIt('digestCyclic', () => crypto.subtle.digest(cyclic, new Uint8Array(1)));
      await tryIt('digestGetter', () => crypto.subtle.digest(getter, new Uint8Array(1)));
      await tryIt('digestSymbol', () => crypto.subtle.digest(Symbol('x'), new Uint8Array(1)));
      await tryIt('importPolluter', () => crypto.subtle.importKey('raw', new Uint8Array(16), cyclic.__proto__polluter, false, ['sign']));
      await tryIt('importSparse', () => crypto.subtle.importKey('raw', new Uint8Array(16), 'AES-GCM', false, sparse));
      await tryIt('randHuge', () => crypto.getRandomValues(new Uint8Array(1e6)));
      await tryIt('randProxy', () => crypto.getRandomValues(hostile));
      await tryIt('fetchProxy', () => fetch(hostile));
      await tryIt('fetchInit', () => fetch('https://x/', hostile));
      await tryIt('fetchHuge', () => fetch('https://x/' + 'a'.repeat(1e6)));
      await tryIt('timerProxy', () => setTimeout(hostile, hostile));
      await tryIt('timerString', () => setTimeout('1+1', 1));
      await tryIt('clearProxy', () => clearTimeout(hostile));
      await tryIt('urlProxy', () => new URL(hostile));
      return Response.json(out);`));
    const r = await invoke();
    assert.equal(r.error, null, r.error?.message);
    const out = JSON.parse(r.body);
    for (const k of ['digestProxy', 'digestGetter', 'digestSymbol', 'randHuge', 'randProxy', 'fetchProxy', 'fetchInit', 'timerProxy', 'timerString', 'urlProxy']) assert.notEqual(out[k], 'ok', k);
    assert.equal(out.randHuge, 'QuotaExceededError');
    assert.equal(r.logs.length, 2);
    assert.ok(r.logs[0]![1].length <= 70_000);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal((Object.prototype as Record<string, unknown>).polluted, undefined);
    assert.equal(sandbox.disposed, false);
    assert.equal((await invoke()).error, null);
  });

  test('catalogue 23: unhandled rejections and throws from callbacks are attributed, host survives', async () => {
    const { sandbox, invoke } = makeSandbox(fetchModule(`
      const mode = new URL(request.url).pathname;
      if (mode === '/floating') { Promise.reject(new Error('floating')); (async function* () { throw new Error('gen'); })().next(); return new Response('ok'); }
      if (mode === '/timer-throw') { setTimeout(() => { throw 'non-error from timer'; }, 1); await new Promise((r) => setTimeout(r, 10)); return new Response('ok'); }
      if (mode === '/microtask-throw') { queueMicrotask(() => { throw new TypeError('mt'); }); await null; await null; return new Response('ok'); }
      if (mode === '/reject-non-error') return Promise.reject(42);
      if (mode === '/await-using') { await (async () => { await using x = { async [Symbol.asyncDispose]() { throw new Error('dispose'); } }; })(); }
      return new Response('ok');`));
    assert.equal((await invoke({ url: 'http://fn.local/floating' })).body, 'ok');
    const timer = await invoke({ url: 'http://fn.local/timer-throw' });
    assert.equal(timer.body, 'ok');
    assert.ok(timer.logs.some(([level, m]) => level === 'error' && m.includes('non-error from timer')), JSON.stringify(timer.logs));
    const mt = await invoke({ url: 'http://fn.local/microtask-throw' });
    assert.ok(mt.logs.some(([level, m]) => level === 'error' && m.includes('TypeError: mt')));
    const ne = await invoke({ url: 'http://fn.local/reject-non-error' });
    assert.deepEqual(ne.error, { code: 'function_error', message: 'Uncaught 42' });
    const au = await invoke({ url: 'http://fn.local/await-using' });
    assert.equal(au.error?.code, 'function_error');
    assert.match(au.error!.message, /dispose/);
    assert.equal(sandbox.disposed, false);
  });

  test('abort(): body stream errors in the handler, no further callbacks, sandbox reusable', async () => {
    const seen: string[] = [];
    const sandbox = engine.createSandbox({
      code: fetchModule(`if (request.method === 'POST') { try { await request.text(); } catch (e) { console.log('aborted:' + e.name); } await new Promise((r) => setTimeout(r, 5)); } return new Response('ok');`),
      load: baseLoad,
      callbacks: { onRespond: (id) => seen.push(`respond ${id}`), onChunk: (id) => seen.push(`chunk ${id}`), onFinish: (id) => seen.push(`finish ${id}`), onLog: (id, _l, m) => seen.push(`log ${id} ${m}`) },
    });
    sandbox.dispatch('a', { method: 'POST', url: 'http://x/', headers: [] }, true, null);
    sandbox.push('a', new TextEncoder().encode('part'));
    sandbox.abort('a', 'client went away');
    await new Promise((r) => setTimeout(r, 30));
    assert.deepEqual(seen, ['log a aborted:AbortError']);
    sandbox.dispatch('b', { method: 'GET', url: 'http://x/', headers: [] }, false, null);
    assert.deepEqual(seen.slice(1), ['respond b', 'chunk b', 'finish b']);
    assert.equal(sandbox.active, 0);
  });

  test('callbacks that throw do not break the engine', async () => {
    const errors: unknown[] = [];
    const sandbox = engine.createSandbox({
      code: fetchModule('console.log("x"); return new Response("y");'),
      load: baseLoad,
      callbacks: { onRespond() { throw new Error('caller bug'); }, onChunk() {}, onFinish() {}, onLog() { throw new Error('log bug'); }, onCallbackError: (e) => errors.push(e) },
    });
    sandbox.dispatch('a', { method: 'GET', url: 'http://x/', headers: [] }, false, null);
    await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(errors.map((e) => (e as Error).message), ['log bug', 'caller bug']);
    assert.equal(sandbox.active, 0);
  });

  test('the runtime is warmed before tenant code loads: a first request sees no trace of the warm-up', async (t) => {
    const firsts: number[] = [];
    for (let i = 0; i < 5; i++) {
      const { sandbox, invoke } = makeSandbox(fetchModule('return Response.json({ url: request.url, keys: Object.keys(env), p: typeof process })'));
      const before = sandbox.cpuTimeMs();
      const r = await invoke({ headers: [['accept', '*/*']] });
      firsts.push(r.cpuMs - before);
      assert.equal(r.error, null);
      assert.deepEqual(JSON.parse(r.body), { url: 'http://fn.local/path?q=1', keys: ['GREETING'], p: 'object' });
      sandbox.dispose();
    }
    const median = [...firsts].sort((a, b) => a - b)[2]!;
    // What the warm-up saves (unwarmed ≈ 2.5 ms of isolate CPU, warmed ≈ 0.4–1.6 by machine) is a cost, measured
    // by the cold_start benchmark; printed here, not asserted.
    t.diagnostic(`first request isolate CPU median ${median.toFixed(2)} ms`);
  });

  test('numbers: sandbox creation, idle heap, warm dispatch round trip', async (t) => {
    const created: number[] = [];
    const heaps: number[] = [];
    const boxes = [];
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      const b = makeSandbox(fetchModule('return new Response("hello")'));
      created.push(performance.now() - t0);
      heaps.push(b.sandbox.heapUsedBytes());
      boxes.push(b);
    }
    const { sandbox } = boxes[0]!;
    let done = 0;
    const hot = engine.createSandbox({ code: fetchModule('return new Response("hello")'), load: baseLoad, callbacks: { onRespond() {}, onChunk() {}, onFinish() { done++; }, onLog() {} } });
    const head = { method: 'GET', url: 'http://fn.local/hello', headers: [['accept', '*/*']] as Array<[string, string]> };
    for (let i = 0; i < 2000; i++) hot.dispatch(`w${i}`, head, false, null);
    const N = 5000;
    const t0 = performance.now();
    for (let i = 0; i < N; i++) hot.dispatch(`h${i}`, head, false, null);
    const perCallUs = ((performance.now() - t0) / N) * 1000;
    assert.equal(done, 2000 + N);
    const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
    t.diagnostic(`create sandbox median ${median(created).toFixed(2)} ms; idle heap median ${(median(heaps) / 1024).toFixed(0)} KiB; warm fetch round trip ${perCallUs.toFixed(1)} µs; prelude ${engine.preludeBytes} B; snapshot ${engine.snapshotBytes} B`);
    assert.ok(median(heaps) < 4 * 1024 * 1024);
    assert.ok(sandbox.cpuTimeMs() >= 0);
    for (const b of boxes) b.sandbox.dispose();
    hot.dispose();
  });
}
