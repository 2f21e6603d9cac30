/**
 * Traces end to end against a real OTLP/HTTP receiver (an HTTP server in this test that decodes the JSON
 * the node's exporter posts): HTTP → fn A → env.B.fetch → fn B → env.Q.send → queue → fn C is one trace
 * with every span, parented as docs/observability.md describes; an incoming traceparent is continued,
 * and the functions see the context they run in.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { startTestNode } from './helpers/node.ts';

interface Span {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: Record<string, unknown>;
  links: Array<{ traceId: string; spanId: string }>;
  status: { code?: number; message?: string };
  service: string;
}

/** OTLP JSON AnyValue → plain value. */
function value(v: Record<string, unknown>): unknown {
  if ('stringValue' in v) return v.stringValue;
  if ('boolValue' in v) return v.boolValue;
  if ('intValue' in v) return Number(v.intValue);
  if ('doubleValue' in v) return v.doubleValue;
  return v;
}

function attrs(list: Array<{ key: string; value: Record<string, unknown> }> | undefined): Record<string, unknown> {
  return Object.fromEntries((list ?? []).map((a) => [a.key, value(a.value)]));
}

/** The receiver: every span that arrives, flattened, with its resource's service.name. */
async function otlpReceiver() {
  const spans: Span[] = [];
  const paths: string[] = [];
  const contentTypes: string[] = [];
  const apiKeys: string[] = [];
  const server = createServer(async (req: IncomingMessage, res) => {
    apiKeys.push(String(req.headers['x-api-key']));
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    paths.push(req.url ?? '');
    contentTypes.push(String(req.headers['content-type']));
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    for (const rs of body.resourceSpans ?? []) {
      const service = String(attrs(rs.resource?.attributes)['service.name']);
      for (const ss of rs.scopeSpans ?? []) {
        for (const s of ss.spans ?? []) {
          spans.push({ ...s, attributes: attrs(s.attributes), links: s.links ?? [], status: s.status ?? {}, service });
        }
      }
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, spans, paths, contentTypes, apiKeys, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

async function until<T>(what: string, fn: () => T | undefined | false, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const A = `export default { async fetch(request, env) {
  const seen = request.headers.get('traceparent');
  const res = await env.B.fetch('http://b/work?x=1', { method: 'POST', body: 'from-a' });
  return Response.json({ a: seen, b: await res.json(), status: res.status });
} };`;

const B = `export default { async fetch(request, env) {
  const body = await request.text();
  await env.Q.send({ from: 'b', body });
  return Response.json({ seen: request.headers.get('traceparent'), body });
} };`;

const C = `export default { async queue(batch, env) {
  for (const m of batch.messages) console.log('c got', JSON.stringify(m.body));
} };`;

test('one HTTP request through A → B (service binding) → queue → C is one trace with all their spans', { timeout: 120_000 }, async () => {
  const receiver = await otlpReceiver();
  const node = await startTestNode({ config: { otlp: { endpoint: receiver.url, headers: { 'x-api-key': 'k' } } } });
  try {
    assert.equal((await node.api('POST', '/v1/queues', { name: 'chain' })).status, 201);
    assert.equal((await node.deploy('fn-c', C, 'index.js', { triggers: [{ type: 'queue', queue: 'chain', batchSize: 1 }] })).status, 201);
    assert.equal((await node.deploy('fn-b', B, 'index.js', { bindings: { Q: { queue: 'chain' } } })).status, 201);
    assert.equal((await node.deploy('fn-a', A, 'index.js', { bindings: { B: { function: 'fn-b' } } })).status, 201);

    // Scale all three to zero so that this request starts each of them (the deploy's prewarmed instance
    // would serve it warm).
    for (const fn of ['fn-a', 'fn-b', 'fn-c']) assert.equal((await node.api('DELETE', `/v1/functions/${fn}/instances`)).status, 200);
    const incomingTrace = '4bf92f3577b34da6a3ce929d0e0e4736';
    const incomingSpan = '00f067aa0ba902b7';
    const res = await node.fn('/fn/fn-a/', { headers: { traceparent: `00-${incomingTrace}-${incomingSpan}-01`, tracestate: 'vendor=1' } });
    assert.equal(res.status, 200);
    const out = await res.json();
    assert.equal(out.status, 200);
    assert.equal(out.b.body, 'from-a');

    // The functions see the context of their own execution span, in the incoming trace.
    const seenA = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(out.a);
    const seenB = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(out.b.seen);
    assert.ok(seenA && seenB, `traceparents seen: ${out.a} / ${out.b.seen}`);
    assert.equal(seenA[1], incomingTrace);
    assert.equal(seenB[1], incomingTrace);

    const inTrace = () => receiver.spans.filter((s) => s.traceId === incomingTrace);
    const spans = await until('the consumer of the queue to be traced', () => {
      const list = inTrace();
      return list.some((s) => s.name === 'execute fn-c') && list.some((s) => s.name === 'execute fn-a') ? list : undefined;
    });
    assert.ok(receiver.paths.every((p) => p === '/v1/traces'), `export paths: ${receiver.paths}`);
    assert.ok(receiver.contentTypes.every((c) => c.startsWith('application/json')));
    assert.ok(receiver.apiKeys.every((k) => k === 'k'), 'the configured headers go with every export');

    const byId = new Map(spans.map((s) => [s.spanId, s]));
    const one = (name: string) => {
      const found = spans.filter((s) => s.name === name);
      assert.equal(found.length, 1, `exactly one span named ${name}: ${spans.map((s) => s.name).join(', ')}`);
      return found[0]!;
    };
    const rootA = one('GET fn-a');
    const execA = one('execute fn-a');
    const rootB = one('POST fn-b');
    const execB = one('execute fn-b');
    const rootC = one('process chain');
    const execC = one('execute fn-c');

    // Structure: incoming → A's root → A's execution → B's root → B's execution → C's process span → C's execution.
    assert.equal(rootA.parentSpanId, incomingSpan);
    assert.equal(execA.parentSpanId, rootA.spanId);
    assert.equal(execA.spanId, seenA[2], 'A sees its execution span as parent');
    assert.equal(rootB.parentSpanId, execA.spanId);
    assert.equal(execB.parentSpanId, rootB.spanId);
    assert.equal(execB.spanId, seenB[2]);
    assert.equal(rootC.parentSpanId, execB.spanId);
    assert.equal(execC.parentSpanId, rootC.spanId);
    assert.deepEqual(rootC.links.map((l) => l.spanId), [execB.spanId], 'the batch links to its message context');
    for (const s of spans) {
      if (s.spanId !== rootA.spanId) assert.ok(byId.has(s.parentSpanId!), `${s.name} has its parent in the trace`);
    }
    for (const [name, fn] of [['schedule', 3], ['cold start', 3], ['sandbox create', 3], ['runtime init', 3], ['module load', 3]] as const) {
      assert.equal(spans.filter((s) => s.name === name).length, fn, `one ${name} per invocation (all three were cold)`);
    }

    // FaaS attributes.
    assert.equal(rootA.kind, 2, 'SERVER'); // OTLP JSON kinds are 1 + the API's enum
    assert.equal(rootC.kind, 5, 'CONSUMER');
    assert.equal(rootA.attributes['faas.trigger'], 'http');
    assert.equal(rootB.attributes['faas.trigger'], 'http');
    assert.equal(rootC.attributes['faas.trigger'], 'pubsub');
    for (const [root, name] of [[rootA, 'fn-a'], [rootB, 'fn-b'], [rootC, 'fn-c']] as const) {
      assert.equal(root.attributes['faas.name'], name);
      assert.equal(root.service, name);
      assert.match(String(root.attributes['faas.version']), /^v_/);
      assert.equal(root.attributes['faas.coldstart'], true);
      assert.match(String(root.attributes['faas.invocation.id']), /^[0-9a-f-]{36}$/);
    }
    assert.equal(rootA.attributes['http.request.method'], 'GET');
    assert.equal(rootA.attributes['url.path'], '/', 'the path as the function sees it (below its route)');
    assert.equal(rootA.attributes['http.response.status_code'], 200);
    assert.equal(rootB.attributes['continuum.caller.function'], 'fn-a');
    assert.equal(rootC.attributes['messaging.destination.name'], 'chain');
    assert.equal(rootC.attributes['messaging.operation.type'], 'process');

    // Records carry the caller (the console's service map) and the trace id.
    const recB = await node.api('GET', `/v1/invocations/${rootB.attributes['faas.invocation.id']}`);
    assert.equal(recB.status, 200, JSON.stringify(recB.json));
    assert.equal(recB.json.callerFunction, 'fn-a');
    assert.equal(recB.json.parentInvocationId, rootA.attributes['faas.invocation.id']);
    assert.equal(recB.json.trigger, 'binding');
    assert.equal(recB.json.traceId, incomingTrace);

    // A second, warm request without a traceparent starts its own trace: no cold start spans.
    const before = new Set(receiver.spans.map((s) => s.traceId));
    assert.equal((await node.fn('/fn/fn-a/')).status, 200);
    const fresh = await until('a new trace', () => {
      const ids = [...new Set(receiver.spans.map((s) => s.traceId))].filter((t) => !before.has(t));
      const spansOf = receiver.spans.filter((s) => ids.includes(s.traceId));
      return ids.length === 1 && spansOf.some((s) => s.name === 'execute fn-c') ? spansOf : undefined;
    });
    const freshRoot = fresh.find((s) => s.name === 'GET fn-a')!;
    assert.equal(freshRoot.parentSpanId ?? '', '');
    assert.equal(fresh.filter((s) => s.name === 'cold start').length, 0);
    assert.equal(freshRoot.attributes['faas.coldstart'], false);
  } finally {
    await node.stop();
    await receiver.close();
  }
});

test('async invocations carry the submitter\'s traceparent into the execution', { timeout: 60_000 }, async () => {
  const receiver = await otlpReceiver();
  const node = await startTestNode({ config: { otlp: { endpoint: `${receiver.url}/v1/traces` } } });
  try {
    const fn = `export const handler = async (event, context) => ({ ok: true, headers: event });`;
    assert.equal((await node.deploy('later', fn)).status, 201);
    const trace = 'aaaabbbbccccddddeeeeffff00001111';
    const r = await node.api('POST', '/v1/functions/later/invoke', { x: 1 }, { 'x-amz-invocation-type': 'Event', traceparent: `00-${trace}-1111222233334444-01` });
    assert.equal(r.status, 202, JSON.stringify(r.json));
    const root = await until('the async execution span', () => receiver.spans.find((s) => s.traceId === trace && s.name === 'invoke later'));
    assert.equal(root.parentSpanId, '1111222233334444');
    assert.equal(root.attributes['faas.trigger'], 'http');
  } finally {
    await node.stop();
    await receiver.close();
  }
});

test('without an endpoint nothing is traced, but an incoming traceparent still reaches the function and its callees', { timeout: 60_000 }, async () => {
  const node = await startTestNode();
  try {
    assert.equal((await node.deploy('echo', `export default { fetch: (r) => new Response(r.headers.get('traceparent')) };`)).status, 201);
    assert.equal((await node.deploy('front', `export default { async fetch(r, env) { return env.E.fetch('http://e/'); } };`, 'index.js', { bindings: { E: { function: 'echo' } } })).status, 201);
    const tp = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const res = await node.fn('/fn/front/', { headers: { traceparent: tp } });
    assert.equal(await res.text(), tp);
    // A malformed header is the client's business: it reaches the function as sent but never a queue message.
    assert.equal((await node.api('POST', '/v1/queues', { name: 'untraced' })).status, 201);
    const sender = `export default { async fetch(r, env) { await env.Q.send('x'); return new Response(r.headers.get('traceparent')); } };`;
    assert.equal((await node.deploy('sender', sender, 'index.js', { bindings: { Q: { queue: 'untraced' } } })).status, 201);
    const junk = 'x'.repeat(4000);
    assert.equal(await (await node.fn('/fn/sender/', { headers: { traceparent: junk } })).text(), junk);
    const pulled = await node.api('POST', '/v1/queues/untraced/receive', { max: 1 });
    assert.equal(pulled.status, 200, JSON.stringify(pulled.json));
    assert.deepEqual(pulled.json.items[0].attributes, {});
    assert.equal((await node.fn('/fn/sender/', { headers: { traceparent: tp } })).status, 200);
    const traced = await node.api('POST', '/v1/queues/untraced/receive', { max: 1 });
    assert.equal(traced.json.items[0].attributes.traceparent, tp);
    const list = await node.api('GET', '/v1/invocations?function=echo');
    assert.equal(list.json.items[0].traceId, undefined);
  } finally {
    await node.stop();
  }
});
