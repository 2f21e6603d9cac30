/**
 * Observability on a real node: invocation records whose cold-start phases add up to what the client saw,
 * record filters and paging, logs with levels, search and a live SSE tail, Prometheus metrics checked by
 * `promtool check metrics` and against the invocations made, the console's time series, and usage.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { execFileSync, spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestNode, type TestNode } from './helpers/node.ts';
import { ProcessNode, freePort } from './helpers/process-node.ts';

let node: TestNode;
before(async () => {
  node = await startTestNode({ config: { logHeartbeatMs: 200 } });
});
after(async () => {
  await node?.stop();
});

const okFn = `export default { fetch(req) { return new Response('ok ' + new URL(req.url).pathname); } }`;
const failFn = `export default { fetch() { throw new Error('boom'); } }`;
const loudFn = `export default { fetch(req) {
  const tag = new URL(req.url).searchParams.get('tag') ?? '-';
  console.debug('dbg', tag); console.info('inf', tag); console.warn('wrn', tag); console.error('err', tag); console.log('plain', tag);
  return new Response('logged');
} }`;

/** One GET over a connection that is already open, timed from the write to the last byte. */
function timedGet(agent: http.Agent, url: string): Promise<{ ms: number; status: number; id: string; body: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = http.get(url, { agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ ms: performance.now() - t0, status: res.statusCode ?? 0, id: String(res.headers['x-continuum-invocation-id']), body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
  });
}

describe('invocation records', () => {
  test('cold-start phases add up to totalMs, and with HTTP transport that is the cold start the client observed, within 1 ms', async (t) => {
    // The node runs in its own process: an in-process node would share the client's event loop, and the
    // client would time the node's other work too.
    const dataDir = await mkdtemp(join(tmpdir(), 'continuum-cold-'));
    const pnode = new ProcessNode(dataDir, await freePort());
    await pnode.start();
    t.after(async () => {
      await pnode.stop();
      await rm(dataDir, { recursive: true, force: true });
    });
    assert.equal((await pnode.deploy('cold-sum', okFn)).status, 201);
    // Keep one connection open so the client's time holds no TCP handshake the node never sees.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      await timedGet(agent, `${pnode.url}/healthz`);
      // The client's time also holds HTTP on both sides (its write and the node's parse before the node
      // takes the request; the response's way back after it). That transport cost is measured the same way
      // on warm requests right after each cold one: client time − record totalMs (the median of three).
      // Two cores shared with other work put random delays into single timings; a sample whose three warm
      // transports differ by more than 1 ms was taken at a noisy moment and is measured again.
      const residuals: number[] = [];
      let attempts = 0;
      for (let i = 0; residuals.length < 9 && attempts < 30; i++) {
        attempts++;
        assert.equal((await pnode.api('DELETE', '/v1/functions/cold-sum/instances')).json.evicted, 1, 'scaled to zero');
        // Scale to zero happens long before the next request in real use: let the node finish stopping the
        // instance (and making a spare) so that work is not timed as part of the request.
        await sleep(150);
        const cold = await timedGet(agent, `${pnode.url}/fn/cold-sum/x`);
        // The cold start took the isolate worker's spare; the worker makes the next one once it has been idle
        // for a few ms. Let it, so the warm requests that measure the transport do not time that work instead.
        await sleep(60);
        const warms = [await timedGet(agent, `${pnode.url}/fn/cold-sum/y`), await timedGet(agent, `${pnode.url}/fn/cold-sum/y`), await timedGet(agent, `${pnode.url}/fn/cold-sum/y`)];
        assert.equal(cold.status, 200);
        assert.equal(cold.body, 'ok /x');
        const r = (await pnode.api('GET', `/v1/invocations/${cold.id}`)).json;
        const ws = await Promise.all(warms.map(async (w) => ({ client: w.ms, rec: (await pnode.api('GET', `/v1/invocations/${w.id}`)).json })));
        const p = r.phases;
        assert.equal(r.coldStart, true);
        assert.ok(ws.every((w) => w.rec.coldStart === false));
        assert.equal(r.tier, 'isolate');
        assert.equal(typeof r.node, 'string');
        assert.ok(Math.abs(p.initMs - (p.sandboxMs + p.runtimeInitMs + p.moduleLoadMs)) < 1e-9, 'initMs is the sum of its parts');
        assert.ok(p.moduleLoadMs > 0);
        const sum = p.queueMs + p.initMs + p.execMs + p.overheadMs;
        assert.ok(Math.abs(sum - p.totalMs) < 1e-6, `phases sum to ${sum}, totalMs ${p.totalMs}`);
        const byTransport = ws.map((w) => ({ ...w, transport: w.client - w.rec.phases.totalMs })).sort((x, y) => x.transport - y.transport);
        const w = byTransport[1]!;
        const transport = w.transport;
        const residual = cold.ms - (p.totalMs + transport);
        const noisy = byTransport[2]!.transport - byTransport[0]!.transport > 1;
        if (!noisy) residuals.push(residual);
        t.diagnostic(
          `${noisy ? '(noisy, not counted) ' : ''}` +
          `cold start ${i + 1}: client ${cold.ms.toFixed(3)} ms = record ${p.totalMs.toFixed(3)} ` +
            `(queue ${p.queueMs.toFixed(3)} + sandbox ${p.sandboxMs.toFixed(3)} + runtime ${p.runtimeInitMs.toFixed(3)} + module ${p.moduleLoadMs.toFixed(3)} + exec ${p.execMs.toFixed(3)} + overhead ${p.overheadMs.toFixed(3)}) ` +
            `+ HTTP ${transport.toFixed(3)} (warm: client ${w.client.toFixed(3)} − record ${w.rec.phases.totalMs.toFixed(3)}) ${residual >= 0 ? '+' : '−'} ${Math.abs(residual).toFixed(3)}`,
        );
      }
      assert.ok(residuals.length >= 5, `only ${residuals.length} of ${attempts} samples were taken at a quiet moment: the machine is too loaded to time 1 ms`);
      // A clean sample can still catch a delay of its own, and a loaded machine's delays only ever add time
      // (the median of one CI run on a busy host was 1.3 ms with samples from −0.1 to 2.9). Time the record
      // failed to account for, or counted twice, would move every sample: the lower quartile must be within 1 ms.
      const lowerQuartile = [...residuals].sort((x, y) => x - y)[Math.floor(residuals.length / 4)]!;
      assert.ok(Math.abs(lowerQuartile) <= 1, `client − (record + HTTP): ${residuals.map((d) => d.toFixed(3)).join(', ')} ms`);
    } finally {
      agent.destroy();
    }
  });

  test('a warm request has no init phases; list filters and cursor paging; bad filters are 400 with a code', async () => {
    assert.equal((await node.deploy('rec-ok', okFn)).status, 201);
    assert.equal((await node.deploy('rec-err', failFn)).status, 201);
    const since = Date.now();
    for (let i = 0; i < 7; i++) assert.equal((await node.fn(`/fn/rec-ok/${i}`)).status, 200);
    for (let i = 0; i < 3; i++) assert.equal((await node.fn('/fn/rec-err/')).status, 500);
    const warm = (await node.api('GET', '/v1/invocations?function=rec-ok&limit=1')).json.items[0];
    assert.equal(warm.coldStart, false);
    assert.equal(warm.phases.initMs, 0);
    assert.equal(warm.phases.sandboxMs + warm.phases.runtimeInitMs + warm.phases.moduleLoadMs, 0);

    const ids: string[] = [];
    let cursor: string | null = null;
    do {
      const page: any = (await node.api('GET', `/v1/invocations?function=rec-ok&since=${since}&limit=3${cursor ? `&cursor=${cursor}` : ''}`)).json;
      ids.push(...page.items.map((r: { id: string }) => r.id));
      cursor = page.nextCursor;
    } while (cursor);
    assert.equal(ids.length, 7);
    assert.equal(new Set(ids).size, 7);

    const errs = (await node.api('GET', `/v1/invocations?errorCode=function_error&since=${new Date(since).toISOString()}`)).json.items;
    assert.equal(errs.length, 3);
    assert.ok(errs.every((r: any) => r.functionName === 'rec-err' && r.outcome === 'error'));
    assert.equal((await node.api('GET', `/v1/invocations?function=rec-ok&tier=process`)).json.items.length, 0);
    assert.equal((await node.api('GET', `/v1/invocations?function=rec-ok&coldStart=false&since=${since}`)).json.items.length, 7);
    assert.equal((await node.api('GET', `/v1/invocations?function=rec-ok&until=${since}`)).json.items.length, 0);

    for (const bad of ['tier=vm', 'coldStart=yes', 'errorCode=nope', 'since=yesterday', 'until=2025-13-45T00:00:00Z', 'outcome=maybe', 'colour=red']) {
      const res = await node.api('GET', `/v1/invocations?${bad}`);
      assert.equal(res.status, 400, bad);
      assert.equal(res.json.error.code, 'bad_request', bad);
    }
  });
});

describe('logs', () => {
  test('every console level arrives with the invocation id; search by text and time range', async () => {
    assert.equal((await node.deploy('loud', loudFn)).status, 201);
    const before = Date.now();
    const res = await node.fn('/fn/loud/?tag=Alpha');
    const id = res.headers.get('x-continuum-invocation-id')!;
    await node.fn('/fn/loud/?tag=beta');
    const lines = (await node.api('GET', `/v1/invocations/${id}/logs`)).json.items;
    assert.deepEqual(lines.map((l: any) => [l.level, l.message]), [['debug', 'dbg Alpha'], ['info', 'inf Alpha'], ['warn', 'wrn Alpha'], ['error', 'err Alpha'], ['log', 'plain Alpha']]);
    assert.ok(lines.every((l: any) => l.invocationId === id && l.functionName === 'loud'));

    const ndjson = async (query: string) => {
      const r = await fetch(`${node.url}/v1/logs?${query}`, { headers: { authorization: `Bearer ${node.token}` } });
      assert.equal(r.status, 200, query);
      assert.match(r.headers.get('content-type') ?? '', /application\/x-ndjson/);
      return (await r.text()).split('\n').filter(Boolean).map((l) => JSON.parse(l));
    };
    assert.deepEqual((await ndjson('function=loud&q=alpha')).map((l) => l.message), ['dbg Alpha', 'inf Alpha', 'wrn Alpha', 'err Alpha', 'plain Alpha'], 'q is case-insensitive');
    assert.equal((await ndjson(`function=loud&since=${before}`)).length, 10);
    assert.equal((await ndjson(`function=loud&until=${before}`)).length, 0);
    assert.equal((await ndjson(`function=loud&q=beta&since=${new Date(before).toISOString()}`)).length, 5);
    const bad = await node.api('GET', '/v1/logs?since=soon');
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.code, 'bad_request');
  });

  test('a log flood stops at the cap with the truncation marked in the record and the last line', async () => {
    const flood = `export default { fetch() { for (let i = 0; i < 500; i++) console.log('line ' + i + ' ' + 'z'.repeat(100)); return new Response('done'); } }`;
    assert.equal((await node.deploy('flood', flood, 'index.js', { limits: { logBytes: 4096 } })).status, 201);
    const res = await node.fn('/fn/flood/');
    assert.equal(await res.text(), 'done');
    const id = res.headers.get('x-continuum-invocation-id')!;
    const r = (await node.api('GET', `/v1/invocations/${id}`)).json;
    assert.equal(r.logsTruncated, true);
    assert.ok(r.logBytes <= 4096 + 200, String(r.logBytes));
    const lines = (await node.api('GET', `/v1/invocations/${id}/logs`)).json.items;
    assert.ok(lines.length < 500);
    assert.match(lines.at(-1).message, /truncated/);
  });

  test('follow=1 is a server-sent event stream: backlog, live lines of that function only, keep-alive comments, a clean end', async () => {
    assert.equal((await node.deploy('tail-a', loudFn)).status, 201);
    assert.equal((await node.deploy('tail-b', loudFn)).status, 201);
    await node.fn('/fn/tail-a/?tag=old');
    const abort = new AbortController();
    const res = await fetch(`${node.url}/v1/logs?function=tail-a&follow=1&q=inf`, { headers: { authorization: `Bearer ${node.token}` }, signal: abort.signal });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    const until = async (pred: () => boolean, what: string) => {
      const deadline = Date.now() + 10_000;
      while (!pred()) {
        assert.ok(Date.now() < deadline, `timed out waiting for ${what}; got ${JSON.stringify(text)}`);
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
      }
    };
    await until(() => text.includes('inf old'), 'the backlog line');
    await node.fn('/fn/tail-b/?tag=other');
    await node.fn('/fn/tail-a/?tag=new');
    await until(() => text.includes('inf new'), 'the live line');
    await until(() => text.includes(': keep-alive'), 'a keep-alive comment');
    // Framing: every event is `[id: seq]\nevent: log\ndata: <one JSON line>` ended by a blank line.
    const events = text.split('\n\n').filter((b) => b && !b.startsWith(':'));
    for (const block of events) assert.match(block, /^(id: \d+\n)?event: log\ndata: \{.*\}$/);
    const data = events.map((b) => JSON.parse(b.slice(b.indexOf('data: ') + 6)));
    assert.deepEqual(data.map((l) => l.message), ['inf old', 'inf new']);
    assert.ok(data.every((l) => l.functionName === 'tail-a' && l.level === 'info'));
    assert.ok(!text.includes('other'), 'lines of another function are not sent');
    abort.abort();
    await reader.cancel().catch(() => {});
  });
});

test('a live log stream ends with an `end` event when the node shuts down, without holding the shutdown', async () => {
  const other = await startTestNode();
  const res = await fetch(`${other.url}/v1/logs?follow=1`, { headers: { authorization: `Bearer ${other.token}` } });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  const first = new TextDecoder().decode((await reader.read()).value);
  assert.match(first, /^: stream open/);
  const t0 = performance.now();
  const stopping = other.stop();
  let text = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  await stopping;
  assert.match(text, /event: end\ndata: \{\}\n\n$/);
  assert.ok(performance.now() - t0 < 4000, `shutdown took ${performance.now() - t0} ms`);
});

describe('metrics', () => {
  const scrape = async (token: string | null = node.token) => {
    const res = await fetch(`${node.url}/metrics`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
  };
  /** The value of one sample, by name and exact label set. */
  const sample = (body: string, name: string, labels: Record<string, string>): number | null => {
    const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
    for (const line of body.split('\n')) {
      if (!line.startsWith(`${name}{`)) continue;
      const inner = line.slice(name.length + 1, line.lastIndexOf('}'));
      const have = inner.split(',');
      if (have.length === want.length && want.every((w) => have.includes(w))) return Number(line.slice(line.lastIndexOf(' ') + 1));
    }
    return null;
  };

  test('/metrics needs the admin token, is Prometheus text 0.0.4, and its numbers match the invocations made', async () => {
    assert.equal((await scrape(null)).status, 401);
    assert.equal((await scrape('wrong')).status, 401);
    assert.equal((await node.deploy('met-ok', okFn)).status, 201);
    assert.equal((await node.deploy('met-err', failFn)).status, 201);
    await node.api('DELETE', '/v1/functions/met-ok/instances');
    for (let i = 0; i < 9; i++) assert.equal((await node.fn('/fn/met-ok/')).status, 200);
    for (let i = 0; i < 4; i++) assert.equal((await node.fn('/fn/met-err/')).status, 500);
    const api = await fetch(`${node.url}/v1/functions/met-ok/invoke`, { method: 'POST', headers: { authorization: `Bearer ${node.token}` } });
    assert.equal(api.status, 200);

    const m = await scrape();
    assert.equal(m.status, 200);
    assert.equal(m.type, 'text/plain; version=0.0.4; charset=utf-8');
    const b = m.body;
    assert.equal(sample(b, 'continuum_invocations_total', { function: 'met-ok', tier: 'isolate', trigger: 'http', outcome: 'ok' }), 9);
    assert.equal(sample(b, 'continuum_invocations_total', { function: 'met-ok', tier: 'isolate', trigger: 'api', outcome: 'ok' }), 1);
    assert.equal(sample(b, 'continuum_invocations_total', { function: 'met-err', tier: 'isolate', trigger: 'http', outcome: 'error' }), 4);
    assert.equal(sample(b, 'continuum_invocation_errors_total', { function: 'met-err', code: 'function_error' }), 4);
    assert.equal(sample(b, 'continuum_invocation_duration_seconds_count', { function: 'met-ok', tier: 'isolate', trigger: 'http' }), 9);
    assert.equal(sample(b, 'continuum_invocation_duration_seconds_bucket', { function: 'met-ok', tier: 'isolate', trigger: 'http', le: '+Inf' }), 9);
    for (const le of ['0.005', '0.075', '7.5', '10']) {
      assert.notEqual(sample(b, 'continuum_invocation_duration_seconds_bucket', { function: 'met-ok', tier: 'isolate', trigger: 'http', le }), null, `bucket ${le}`);
    }
    assert.equal(sample(b, 'continuum_cold_starts_total', { function: 'met-ok', tier: 'isolate' }), 1, 'scaled to zero, then one cold start');
    assert.equal(sample(b, 'continuum_cold_start_duration_seconds_count', { function: 'met-ok', tier: 'isolate' }), 1);
    assert.equal(sample(b, 'continuum_instances', { function: 'met-ok', tier: 'isolate', state: 'idle' }), 1);
    assert.equal(sample(b, 'continuum_instances', { function: 'met-ok', tier: 'isolate', state: 'busy' }), 0);
    assert.equal(sample(b, 'continuum_activator_buffered_requests', { function: 'met-ok', tier: 'isolate' }), 0);
    assert.ok((sample(b, 'continuum_cpu_seconds_total', { tenant: 'default', function: 'met-ok' }) ?? 0) > 0);
    assert.ok((sample(b, 'continuum_memory_byte_seconds_total', { tenant: 'default', function: 'met-ok' }) ?? 0) > 0);
    assert.equal(sample(b, 'continuum_records_dropped_total', {}), null, 'unlabelled: matched below');
    assert.match(b, /^continuum_records_dropped_total 0$/m);
  });

  test('queue depth, oldest age and dead letters come from the queue store', async () => {
    assert.equal((await node.api('POST', '/v1/queues', { name: 'met-q' })).status, 201);
    const sent = await node.api('POST', '/v1/queues/met-q/messages', { messages: [{ body: 'a' }, { body: 'b' }] });
    assert.equal(sent.status, 202, JSON.stringify(sent.json));
    await new Promise((r) => setTimeout(r, 20));
    const b = (await scrape()).body;
    assert.equal(sample(b, 'continuum_queue_depth', { queue: 'met-q' }), 2);
    assert.ok((sample(b, 'continuum_queue_oldest_age_seconds', { queue: 'met-q' }) ?? 0) > 0);
    assert.equal(sample(b, 'continuum_queue_dead_letters', { queue: 'met-q' }), 0);
  });

  const promtool = spawnSync('promtool', ['--version'], { encoding: 'utf8' }).status === 0;
  test('promtool check metrics accepts a live scrape after real traffic', { skip: promtool ? false : 'promtool not installed (Debian package prometheus; scripts/setup-host.sh installs it as root)' }, async () => {
    for (let i = 0; i < 3; i++) await node.fn('/fn/met-err/');
    const { body } = await scrape();
    assert.match(body, /continuum_invocations_total/);
    // promtool exits non-zero on format errors and on lint problems (names, units, _total, help).
    const out = execFileSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
    assert.equal(out.trim(), '');
  });
});

describe('series and usage', () => {
  test('GET /v1/metrics/series counts requests, errors, cold starts and latency per 10 s bucket', async () => {
    assert.equal((await node.deploy('ser', okFn)).status, 201);
    await node.api('DELETE', '/v1/functions/ser/instances');
    for (let i = 0; i < 6; i++) await node.fn('/fn/ser/');
    const s = (await node.api('GET', '/v1/metrics/series?function=ser')).json;
    assert.equal(s.function, 'ser');
    assert.equal(s.bucketMs, 10_000);
    assert.equal(s.points.length, 360);
    const sum = (k: 'requests' | 'errors' | 'coldStarts') => s.points.reduce((a: number, p: any) => a + p[k], 0);
    assert.equal(sum('requests'), 6);
    assert.equal(sum('errors'), 0);
    assert.equal(sum('coldStarts'), 1);
    const busy = s.points.filter((p: any) => p.requests > 0);
    assert.ok(busy.every((p: any) => p.p50Ms > 0 && p.p99Ms >= p.p50Ms));
    assert.ok(s.points.every((p: any, i: number) => i === 0 || p.t - s.points[i - 1].t === 10_000));
    const all = (await node.api('GET', '/v1/metrics/series')).json;
    assert.equal(all.function, null);
    assert.ok(all.points.reduce((a: number, p: any) => a + p.requests, 0) >= 6);
    assert.equal((await node.api('GET', '/v1/metrics/series?function=nope')).status, 404);
  });

  test('GET /v1/usage sums invocations, CPU seconds and GB-seconds per function', async () => {
    assert.equal((await node.deploy('use', okFn)).status, 201);
    const since = Date.now();
    for (let i = 0; i < 4; i++) await node.fn('/fn/use/');
    const u = (await node.api('GET', `/v1/usage?since=${since}`)).json;
    const mine = u.items.find((i: any) => i.functionName === 'use');
    assert.equal(mine.invocations, 4);
    assert.ok(mine.cpuSeconds > 0 && mine.gbSeconds > 0, JSON.stringify(mine));
    assert.equal((await node.api('GET', '/v1/usage?since=later')).status, 400);
  });
});
