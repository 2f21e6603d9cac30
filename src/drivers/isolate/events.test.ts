/**
 * Event invocations (queue batches, cron fires, async invokes) and queue bindings, end to end through
 * IsolateDriver: real worker processes, real isolates, and a recording InstanceServices as the seam to
 * the events service.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { BindingMessage, EventHead, Instance, InstanceServices, InstanceSpec, InvokeRequest, InvokeResult, WireQueueMessage } from '../../core/driver.ts';
import { ContinuumError } from '../../core/errors.ts';
import type { HandlerFormat } from '../../core/types.ts';
import { IsolateDriver } from './driver.ts';
import { testSpec } from './testing.ts';

let driver: IsolateDriver;
before(async () => {
  driver = new IsolateDriver({ workers: 1 });
  await driver.start();
});
after(async () => {
  await driver.stop();
});

let seq = 0;

function specOf(code: string, format: HandlerFormat = 'fetch'): InstanceSpec {
  const exportName = format === 'fetch' ? 'default' : format === 'lambda' ? 'handler' : 'main';
  return { ...testSpec(code), format, exportName };
}

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}

function request(event: EventHead | undefined, body: string | Uint8Array | null, headers: Array<[string, string]> = []): InvokeRequest {
  const bytes = typeof body === 'string' ? new TextEncoder().encode(body) : body;
  return {
    kind: 'http',
    invocationId: `ev-${++seq}`,
    request: { method: 'POST', url: 'http://fn.continuum.internal/', headers, ...(event ? { event } : {}) },
    body: bytes === null ? null : once(bytes),
  };
}

function message(id: string, body: string, contentType: string | null, more: Partial<WireQueueMessage> = {}): WireQueueMessage {
  return { id, body, encoding: 'utf8', contentType, attempt: 1, timestamp: Date.UTC(2026, 0, 2, 3, 4, 5, 6), attributes: {}, idempotencyKey: null, ...more };
}

const queueEvent = (queue = 'orders'): EventHead => ({ kind: 'queue', queue });
const batch = (messages: WireQueueMessage[]) => JSON.stringify({ messages });

interface Answer {
  status: number;
  headers: Array<[string, string]>;
  text: string;
  logs: string[];
}

async function answer(r: InvokeResult): Promise<Answer> {
  assert.equal(r.kind, 'response', r.kind === 'error' ? JSON.stringify(r.completion.error) : '');
  if (r.kind !== 'response') throw new Error('unreachable');
  const parts: Uint8Array[] = [];
  for await (const c of r.body) parts.push(c);
  const completion = await r.completion;
  assert.equal(completion.error, null);
  return { status: r.status, headers: r.headers, text: Buffer.concat(parts).toString(), logs: completion.logs.map((l) => l.message) };
}

function failure(r: InvokeResult): { code: string; message: string } {
  assert.equal(r.kind, 'error');
  return r.kind === 'error' ? r.completion.error! : { code: '', message: '' };
}

/** The one JSON line a handler logged with `console.log(JSON.stringify(...))`. */
function logged(a: Answer): unknown {
  const line = a.logs.find((l) => l.startsWith('{') || l.startsWith('['));
  assert.ok(line, `no JSON log line in ${JSON.stringify(a.logs)}`);
  return JSON.parse(line);
}

async function withInstance<T>(spec: InstanceSpec, fn: (inst: Instance) => Promise<T>, services?: InstanceServices): Promise<T> {
  const inst = await driver.createInstance(spec, services);
  try {
    return await fn(inst);
  } finally {
    await inst.stop();
  }
}

describe('queue batches', () => {
  const THREE = batch([
    message('m1', '{"n":1}', 'application/json'),
    message('m2', 'plain text', 'text/plain; charset=utf-8', { attempt: 3 }),
    message('m3', Buffer.from([0, 1, 2, 255]).toString('base64'), 'application/octet-stream', { encoding: 'base64' }),
  ]);

  test('Workers: MessageBatch shape, per-message ack/retry, first call wins, message calls beat ackAll', async () => {
    const code = `module.exports.default = { async queue(batch, env, ctx) {
      const [a, b, c] = batch.messages;
      console.log(JSON.stringify({
        queue: batch.queue, n: batch.messages.length,
        ids: batch.messages.map((m) => m.id),
        a: { body: a.body, ts: a.timestamp instanceof Date && a.timestamp.toISOString(), attempts: a.attempts, ct: a.contentType },
        b: { body: b.body, attempts: b.attempts },
        c: { bytes: c.body instanceof Uint8Array && [...c.body], ct: c.contentType },
        env: env.GREETING, waitUntil: typeof ctx.waitUntil,
      }));
      a.ack();
      b.retry({ delaySeconds: 30 });
      b.ack();
      batch.ackAll();
      batch.retryAll();
    } };`;
    await withInstance(specOf(code), async (inst) => {
      const a = await answer(await inst.invoke(request(queueEvent(), THREE, [['content-type', 'application/json']])));
      assert.equal(a.status, 200);
      assert.ok(a.headers.some(([k, v]) => k === 'content-type' && v === 'application/json'));
      assert.deepEqual(JSON.parse(a.text), { acked: ['m1', 'm3'], retried: [{ id: 'm2', delaySeconds: 30 }], error: null });
      assert.deepEqual(logged(a), {
        queue: 'orders', n: 3, ids: ['m1', 'm2', 'm3'],
        a: { body: { n: 1 }, ts: '2026-01-02T03:04:05.006Z', attempts: 1, ct: 'application/json' },
        b: { body: 'plain text', attempts: 3 },
        c: { bytes: [0, 1, 2, 255], ct: 'application/octet-stream' },
        env: 'hi', waitUntil: 'function',
      });
    });
  });

  test('Workers: retryAll with a delay, a message acked after it keeps its ack; no calls → nothing listed', async () => {
    const code = `module.exports.default = { async queue(batch) {
      if (batch.messages.length === 1) return;
      batch.retryAll({ delaySeconds: 5 });
      batch.messages[1].ack();
    } };`;
    await withInstance(specOf(code), async (inst) => {
      const a = await answer(await inst.invoke(request(queueEvent(), THREE)));
      assert.equal(a.status, 200);
      assert.deepEqual(JSON.parse(a.text), { acked: ['m2'], retried: [{ id: 'm1', delaySeconds: 5 }, { id: 'm3', delaySeconds: 5 }], error: null });
      const none = await answer(await inst.invoke(request(queueEvent(), batch([message('x', 'y', null)]))));
      assert.deepEqual([none.status, JSON.parse(none.text)], [200, { acked: [], retried: [], error: null }]);
    });
  });

  test('Workers: a throwing handler answers 500; explicit acks stand, the error is reported and logged', async () => {
    const code = `module.exports.default = { async queue(batch) {
      batch.messages[0].ack();
      batch.messages[1].retry({ delaySeconds: 2 });
      await null;
      throw new RangeError('boom');
    } };`;
    await withInstance(specOf(code), async (inst) => {
      const a = await answer(await inst.invoke(request(queueEvent(), THREE)));
      assert.equal(a.status, 500);
      assert.deepEqual(JSON.parse(a.text), { acked: ['m1'], retried: [{ id: 'm2', delaySeconds: 2 }], error: 'RangeError: boom' });
      assert.ok(a.logs.some((l) => /queue batch from 'orders' failed: RangeError: boom/.test(l)), JSON.stringify(a.logs));
    });
  });

  test('Workers: a bad retry delay throws in the handler like Cloudflare does', async () => {
    const code = `module.exports.default = { queue(batch) { batch.messages[0].retry({ delaySeconds: -1 }); } };`;
    await withInstance(specOf(code), async (inst) => {
      const a = await answer(await inst.invoke(request(queueEvent(), THREE)));
      assert.equal(a.status, 500);
      assert.match(JSON.parse(a.text).error, /RangeError: retry: delaySeconds/);
    });
  });

  test('a fetch-only module gets a function_error for a batch; a queue-only module loads and refuses requests', async () => {
    await withInstance(specOf(`module.exports.default = { fetch() { return new Response('x'); } };`), async (inst) => {
      const e = failure(await inst.invoke(request(queueEvent(), THREE)));
      assert.equal(e.code, 'function_error');
      assert.match(e.message, /No queue handler: add queue\(batch, env, ctx\)/);
    });
    // A default export with only queue() (or only scheduled()) is a Workers module.
    await withInstance(specOf(`module.exports.default = { queue() {} };`), async (inst) => {
      const a = await answer(await inst.invoke(request(queueEvent(), THREE)));
      assert.equal(a.status, 200);
      const e = failure(await inst.invoke(request(undefined, null)));
      assert.equal(e.code, 'function_error');
      assert.match(e.message, /No fetch handler/);
    });
    await withInstance(specOf(`module.exports.default = { scheduled() {} };`), async (inst) => {
      assert.equal((await answer(await inst.invoke(request({ kind: 'scheduled', cron: '* * * * *', scheduledTime: 0 }, null)))).status, 200);
    });
  });

  test('Lambda: the SQS event with exact field names; batchItemFailures retries those items', async () => {
    const code = `exports.handler = async (event, context) => {
      console.log(JSON.stringify({ records: event.Records, fn: context.functionName }));
      return { batchItemFailures: [{ itemIdentifier: 'm2' }] };
    };`;
    const attrs = batch([
      message('m1', '{"n":1}', 'application/json', { attributes: { source: 'test' } }),
      message('m2', 'hello', 'text/plain', { attempt: 2 }),
    ]);
    await withInstance(specOf(code, 'lambda'), async (inst) => {
      const a = await answer(await inst.invoke(request(queueEvent('jobs'), attrs)));
      assert.equal(a.status, 200);
      assert.deepEqual(JSON.parse(a.text), { acked: ['m1'], retried: [{ id: 'm2' }], error: null });
      const { records, fn } = logged(a) as { records: Array<Record<string, unknown>>; fn: string };
      assert.equal(fn, 'fn-a');
      assert.equal(records.length, 2);
      const [r1, r2] = records as [Record<string, any>, Record<string, any>];
      assert.deepEqual(Object.keys(r1), ['messageId', 'receiptHandle', 'body', 'attributes', 'messageAttributes', 'md5OfBody', 'eventSource', 'eventSourceARN', 'awsRegion']);
      assert.equal(r1.messageId, 'm1');
      assert.equal(r1.body, '{"n":1}');
      assert.equal(r1.md5OfBody, createHash('md5').update('{"n":1}').digest('hex'));
      assert.equal(r1.eventSource, 'aws:sqs');
      assert.equal(r1.eventSourceARN, 'arn:aws:sqs:local:000000000000:jobs');
      assert.equal(r1.awsRegion, 'local');
      assert.deepEqual(Object.keys(r1.attributes), ['ApproximateReceiveCount', 'SentTimestamp', 'SenderId', 'ApproximateFirstReceiveTimestamp']);
      assert.equal(r1.attributes.SentTimestamp, String(Date.UTC(2026, 0, 2, 3, 4, 5, 6)));
      assert.equal(r2.attributes.ApproximateReceiveCount, '2');
      assert.deepEqual(r1.messageAttributes, { source: { stringValue: 'test', stringListValues: [], binaryListValues: [], dataType: 'String' } });
      assert.equal(typeof r1.receiptHandle, 'string');
    });
  });

  test('Lambda: an unknown itemIdentifier fails the whole batch; a throw retries everything', async () => {
    const code = `exports.handler = async (event) => {
      if (event.Records.length === 1) throw new Error('nope');
      return { batchItemFailures: [{ itemIdentifier: 'not-in-batch' }] };
    };`;
    await withInstance(specOf(code, 'lambda'), async (inst) => {
      const bad = await answer(await inst.invoke(request(queueEvent(), THREE)));
      assert.equal(bad.status, 500);
      const out = JSON.parse(bad.text);
      assert.deepEqual([out.acked, out.retried], [[], []]);
      assert.match(out.error, /invalid batchItemFailures: itemIdentifier "not-in-batch" is not in the batch/);
      const thrown = await answer(await inst.invoke(request(queueEvent(), batch([message('a', 'b', null)]))));
      assert.deepEqual([thrown.status, JSON.parse(thrown.text)], [500, { acked: [], retried: [], error: 'Error: nope' }]);
    });
  });

  test('OpenWhisk: main({ queue, messages }); a return acks all, a throw retries all', async () => {
    const code = `exports.main = (params) => {
      console.log(JSON.stringify(params));
      if (params.messages.length === 1) throw new Error('ow failed');
      return { done: true };
    };`;
    await withInstance(specOf(code, 'openwhisk'), async (inst) => {
      const a = await answer(await inst.invoke(request(queueEvent(), THREE)));
      assert.equal(a.status, 200);
      assert.deepEqual(JSON.parse(a.text), { acked: ['m1', 'm2', 'm3'], retried: [], error: null });
      const p = logged(a) as { queue: string; messages: Array<Record<string, unknown>> };
      assert.equal(p.queue, 'orders');
      assert.deepEqual(p.messages[0], { id: 'm1', body: { n: 1 }, contentType: 'application/json', attempts: 1, timestamp: Date.UTC(2026, 0, 2, 3, 4, 5, 6), attributes: {} });
      assert.equal(p.messages[1]!.body, 'plain text');
      assert.equal(p.messages[2]!.body, Buffer.from([0, 1, 2, 255]).toString('base64'));
      const thrown = await answer(await inst.invoke(request(queueEvent(), batch([message('a', 'b', null)]))));
      assert.deepEqual([thrown.status, JSON.parse(thrown.text)], [500, { acked: [], retried: [], error: 'Error: ow failed' }]);
    });
  });
});

describe('cron fires', () => {
  const at = Date.UTC(2026, 4, 6, 7, 8, 9, 123);
  const fire: EventHead = { kind: 'scheduled', cron: '*/5 * * * *', scheduledTime: at };

  test('Workers: scheduled(controller, env, ctx); success answers 200 with no body, a throw is a function_error', async () => {
    const code = `module.exports.default = { async scheduled(controller, env, ctx) {
      console.log(JSON.stringify({ t: controller.scheduledTime, cron: controller.cron, noRetry: typeof controller.noRetry, env: env.GREETING, ctx: typeof ctx.waitUntil }));
      if (controller.cron === 'fail') throw new Error('cron broke');
    } };`;
    await withInstance(specOf(code), async (inst) => {
      const a = await answer(await inst.invoke(request(fire, null)));
      assert.equal(a.status, 200);
      assert.equal(a.text, '');
      assert.deepEqual(logged(a), { t: at, cron: '*/5 * * * *', noRetry: 'function', env: 'hi', ctx: 'function' });
      const e = failure(await inst.invoke(request({ ...fire, cron: 'fail' }, null)));
      assert.deepEqual(e, { code: 'function_error', message: 'Error: cron broke' });
    });
    await withInstance(specOf(`module.exports.default = { fetch() { return new Response(''); } };`), async (inst) => {
      assert.match(failure(await inst.invoke(request(fire, null))).message, /No scheduled handler/);
    });
  });

  test('Lambda: the EventBridge scheduled event; its id and awsRequestId are the delivery id when the head names one', async () => {
    const code = `exports.handler = async (event, context) => { console.log(JSON.stringify({ ...event, requestId: context.awsRequestId })); return 'ignored'; };`;
    await withInstance(specOf(code, 'lambda'), async (inst) => {
      const r = request(fire, null);
      const a = await answer(await inst.invoke(r));
      assert.equal(a.status, 200);
      assert.equal(a.text, '');
      assert.deepEqual(logged(a), {
        requestId: r.invocationId,
        version: '0',
        id: r.invocationId,
        'detail-type': 'Scheduled Event',
        source: 'aws.events',
        account: '000000000000',
        time: '2026-05-06T07:08:09Z',
        region: 'local',
        resources: ['arn:aws:events:local:000000000000:rule/fn-a'],
        detail: {},
      });
      const again = logged(await answer(await inst.invoke(request({ ...fire, invocationId: 'fire-1' }, null)))) as { id: string; requestId: string };
      assert.deepEqual([again.id, again.requestId], ['fire-1', 'fire-1']);
    });
  });

  test('OpenWhisk: main({ cron, scheduledTime }); a throw is a function_error', async () => {
    const code = `exports.main = (params) => { console.log(JSON.stringify(params)); if (params.cron === 'x') throw new Error('bad'); };`;
    await withInstance(specOf(code, 'openwhisk'), async (inst) => {
      const a = await answer(await inst.invoke(request(fire, null)));
      assert.equal(a.status, 200);
      assert.deepEqual(logged(a), { cron: '*/5 * * * *', scheduledTime: at });
      assert.equal(failure(await inst.invoke(request({ ...fire, cron: 'x' }, null))).code, 'function_error');
    });
  });
});

describe('async invokes', () => {
  const invoke: EventHead = { kind: 'invoke', attempt: 2, idempotencyKey: 'key-1' };

  test('fetch handlers get the POST as it is, headers and body included', async () => {
    const code = `module.exports.default = { async fetch(req) {
      return Response.json({ method: req.method, attempt: req.headers.get('continuum-attempt'), body: await req.json() });
    } };`;
    await withInstance(specOf(code), async (inst) => {
      const a = await answer(await inst.invoke(request(invoke, '{"x":1}', [['continuum-attempt', '2'], ['content-type', 'application/json']])));
      assert.deepEqual(JSON.parse(a.text), { method: 'POST', attempt: '2', body: { x: 1 } });
    });
  });

  test('Lambda: the payload is the event (JSON, raw text or {}), the result a JSON body; context has attempt and idempotencyKey', async () => {
    const code = `exports.handler = async (event, context) => {
      if (event === 'undefined please') return undefined;
      return { event, attempt: context.attempt, key: context.idempotencyKey, requestId: context.awsRequestId };
    };`;
    await withInstance(specOf(code, 'lambda'), async (inst) => {
      const r = request(invoke, '{"order":7}');
      const json = await answer(await inst.invoke(r));
      assert.equal(json.status, 200);
      assert.ok(json.headers.some(([k, v]) => k === 'content-type' && v === 'application/json'));
      assert.deepEqual(JSON.parse(json.text), { event: { order: 7 }, attempt: 2, key: 'key-1', requestId: r.invocationId });
      const raw = await answer(await inst.invoke(request({ ...invoke, idempotencyKey: null }, 'not json')));
      assert.deepEqual({ ...JSON.parse(raw.text), requestId: 0 }, { event: 'not json', attempt: 2, key: null, requestId: 0 });
      const empty = await answer(await inst.invoke(request(invoke, null)));
      assert.deepEqual(JSON.parse(empty.text).event, {});
      const delivery = await answer(await inst.invoke(request({ ...invoke, invocationId: 'delivery-7' }, '{}')));
      assert.equal(JSON.parse(delivery.text).requestId, 'delivery-7');
      const undef = await answer(await inst.invoke(request(invoke, '"undefined please"')));
      assert.equal(undef.text, 'null');
    });
  });

  test('OpenWhisk: the JSON object is the params, the result a JSON body; a throw is a function_error', async () => {
    const code = `exports.main = (params) => { if (params.fail) throw new Error('asked to'); return { got: params }; };`;
    await withInstance(specOf(code, 'openwhisk'), async (inst) => {
      const a = await answer(await inst.invoke(request(invoke, '{"a":1,"b":[2]}')));
      assert.equal(a.status, 200);
      assert.deepEqual(JSON.parse(a.text), { got: { a: 1, b: [2] } });
      const text = await answer(await inst.invoke(request(invoke, 'just text')));
      assert.deepEqual(JSON.parse(text.text), { got: { __ow_body: 'just text' } });
      assert.equal(failure(await inst.invoke(request(invoke, '{"fail":true}'))).code, 'function_error');
    });
  });
});

describe('queue bindings', () => {
  class Recorder implements InstanceServices {
    readonly calls: Array<{ functionName: string; queue: string; messages: BindingMessage[] }> = [];
    failWith: ContinuumError | null = null;
    async sendToQueue(functionName: string, queue: string, messages: BindingMessage[]): Promise<string[]> {
      this.calls.push({ functionName, queue, messages });
      if (this.failWith) throw this.failWith;
      return messages.map((_, i) => `${queue}-${this.calls.length}-${i}`);
    }
  }
  const bound = (code: string, limits: Partial<InstanceSpec['limits']> = {}) =>
    ({ ...testSpec(code, limits), bindings: { ORDERS: { queue: 'orders' }, AUDIT: { queue: 'audit-log' } } });
  const fetchModule = (body: string) => `module.exports.default = { async fetch(request, env, ctx) { ${body} } };`;
  const text = (b: Uint8Array) => Buffer.from(b).toString();

  test('send and sendBatch reach the services with content types, delays and ids', async () => {
    const services = new Recorder();
    const code = fetchModule(`
      const a = await env.ORDERS.send({ order: 1 });
      const b = await env.ORDERS.send('hello', { delaySeconds: 1.5 });
      const c = await env.AUDIT.send(new Uint8Array([1, 2, 3]));
      const d = await env.AUDIT.sendBatch([
        { body: 'x', contentType: 'json' },
        { body: new Uint8Array([9]).buffer },
        { body: 'text', contentType: 'text', delaySeconds: 7 },
      ], { delaySeconds: 3 });
      return Response.json({ a, b, c, d });`);
    await withInstance(bound(code), async (inst) => {
      const a = await answer(await inst.invoke(request(undefined, null)));
      assert.deepEqual(JSON.parse(a.text), { a: { ids: ['orders-1-0'] }, b: { ids: ['orders-2-0'] }, c: { ids: ['audit-log-3-0'] }, d: { ids: ['audit-log-4-0', 'audit-log-4-1', 'audit-log-4-2'] } });
    }, services);
    assert.deepEqual(services.calls.map((c) => [c.functionName, c.queue, c.messages.length]), [['fn-a', 'orders', 1], ['fn-a', 'orders', 1], ['fn-a', 'audit-log', 1], ['fn-a', 'audit-log', 3]]);
    const [m1, m2, m3] = services.calls.map((c) => c.messages[0]!);
    assert.deepEqual([text(m1!.body), m1!.contentType, m1!.delayMs], ['{"order":1}', 'application/json', undefined]);
    assert.deepEqual([text(m2!.body), m2!.contentType, m2!.delayMs], ['hello', 'text/plain', 1500]);
    assert.deepEqual([[...m3!.body], m3!.contentType], [[1, 2, 3], 'application/octet-stream']);
    const batchSent = services.calls[3]!.messages;
    assert.deepEqual(batchSent.map((m) => [text(m.body), m.contentType, m.delayMs]), [
      ['"x"', 'application/json', 3000],
      ['\u0009', 'application/octet-stream', 3000],
      ['text', 'text/plain', 7000],
    ]);
  });

  test('errors come back as rejected promises carrying the code; without services → unavailable', async () => {
    const services = new Recorder();
    services.failWith = new ContinuumError('not_found', "queue 'orders' does not exist");
    const code = fetchModule(`
      const out = {};
      for (const [k, send] of Object.entries({
        service: () => env.ORDERS.send('x'),
        tooBig: () => env.ORDERS.send('z'.repeat(300 * 1024)),
        tooMany: () => env.ORDERS.sendBatch(Array.from({ length: 101 }, () => ({ body: 'm' }))),
        empty: () => env.ORDERS.sendBatch([]),
        badType: () => env.ORDERS.send({ a: 1 }, { contentType: 'v8' }),
        badDelay: () => env.ORDERS.send('x', { delaySeconds: -1 }),
        tooLate: () => env.ORDERS.send('x', { delaySeconds: 13 * 3600 }),
      })) {
        try { await send(); out[k] = 'resolved'; } catch (e) { out[k] = [e.name, e.code ?? null, e.message]; }
      }
      return Response.json(out);`);
    await withInstance(bound(code), async (inst) => {
      const out = JSON.parse((await answer(await inst.invoke(request(undefined, null)))).text);
      assert.deepEqual(out.service, ['Error', 'not_found', "queue send failed: not_found: queue 'orders' does not exist"]);
      assert.deepEqual(out.tooBig.slice(0, 2), ['Error', 'payload_too_large']);
      assert.deepEqual(out.tooMany.slice(0, 2), ['Error', 'bad_request']);
      assert.deepEqual(out.empty.slice(0, 2), ['TypeError', null]);
      assert.match(out.badType[2], /unsupported contentType "v8"/);
      assert.deepEqual(out.badDelay.slice(0, 2), ['RangeError', null]);
      assert.deepEqual(out.tooLate.slice(0, 2), ['Error', 'bad_request']);
    }, services);
    // Only the send that passed every check reached the service.
    assert.equal(services.calls.length, 1);
    await withInstance(bound(fetchModule(`try { await env.ORDERS.send('x'); return new Response('sent'); } catch (e) { return new Response(e.code); }`)), async (inst) => {
      assert.equal((await answer(await inst.invoke(request(undefined, null)))).text, 'unavailable');
    });
  });

  test('binding calls count as subrequests; an unhandled limit error ends the invocation with its code', async () => {
    const services = new Recorder();
    const code = fetchModule(`
      await env.ORDERS.send(1);
      await env.ORDERS.sendBatch([{ body: 2 }, { body: 3 }]);
      await env.ORDERS.send(4);`);
    await withInstance(bound(code, { subrequests: 2 }), async (inst) => {
      const e = failure(await inst.invoke(request(undefined, null)));
      assert.equal(e.code, 'subrequest_limit');
      assert.match(e.message, /queue send failed: subrequest_limit: more than 2 subrequests/);
    }, services);
    assert.equal(services.calls.length, 2);
  });

  test('env holds plain in-isolate objects for granted bindings only; process.env keeps only the variables', async () => {
    const code = fetchModule(`
      const q = env.ORDERS;
      const fns = [q.send, q.sendBatch];
      return Response.json({
        keys: Object.keys(env).sort(),
        other: typeof env.OTHER,
        processEnv: Object.keys(process.env).sort(),
        greeting: env.GREETING,
        proto: Object.getPrototypeOf(q) === Object.prototype,
        own: Object.getOwnPropertyNames(q).sort(),
        frozen: Object.isFrozen(q) && Object.isFrozen(env),
        plainFns: fns.every((f) => typeof f === 'function' && f instanceof Function && Object.getPrototypeOf(f).constructor.name === 'AsyncFunction'),
        hostish: ['derefInto', 'applySync', 'copy', 'deref', 'release'].filter((k) => k in q || fns.some((f) => k in f)),
        tampered: (() => { try { q.send = null; } catch { } return typeof env.ORDERS.send; })(),
      });`);
    await withInstance(bound(code), async (inst) => {
      assert.deepEqual(JSON.parse((await answer(await inst.invoke(request(undefined, null)))).text), {
        keys: ['AUDIT', 'GREETING', 'ORDERS'],
        other: 'undefined',
        processEnv: ['GREETING'],
        greeting: 'hi',
        proto: true,
        own: ['send', 'sendBatch'],
        frozen: true,
        plainFns: true,
        hostish: [],
        tampered: 'function',
      });
    }, new Recorder());
  });

  test('a send from ctx.waitUntil after the response still reaches the queue', async () => {
    const services = new Recorder();
    const code = fetchModule(`ctx.waitUntil(new Promise((r) => setTimeout(r, 20)).then(() => env.ORDERS.send('later'))); return new Response('now');`);
    await withInstance(bound(code), async (inst) => {
      assert.equal((await answer(await inst.invoke(request(undefined, null)))).text, 'now');
      for (let i = 0; i < 100 && services.calls.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    }, services);
    assert.equal(services.calls.length, 1);
    assert.equal(text(services.calls[0]!.messages[0]!.body), 'later');
  });
});
