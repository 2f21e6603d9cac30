/**
 * Events end to end on a real node: queues as resources, queue triggers (Workers and Lambda SQS shapes),
 * retries → dead letters → redrive, async invocation with idempotency and destinations, cron, CloudEvents,
 * queue bindings, and one queue's poison not blocking another (catalogue 46, 47, 48, 59 in small).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { startTestNode, type TestNode } from './helpers/node.ts';
import { NatsTestServer, natsSkipReason } from '../src/store/nats/testing.ts';

let node: TestNode;

/** Poll until `check` returns a value (not undefined), or fail after `ms`. */
async function until<T>(what: string, check: () => Promise<T | undefined>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

async function logLines(fn: string): Promise<string[]> {
  const res = await fetch(`${node.url}/v1/logs?function=${fn}&limit=1000`, { headers: { authorization: `Bearer ${node.token}` } });
  return (await res.text()).split('\n').filter(Boolean).map((l) => JSON.parse(l).message as string);
}

/** This process's isolate worker processes (the test node runs in the test process). */
function isolateWorkerPids(): number[] {
  const out = spawnSync('pgrep', ['-P', String(process.pid)], { encoding: 'utf8' }).stdout;
  return out
    .split('\n')
    .filter(Boolean)
    .map(Number)
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('--permission');
      } catch {
        return false;
      }
    });
}

async function send(queue: string, bodies: string[], extra: Record<string, unknown> = {}) {
  const r = await node.api('POST', `/v1/queues/${queue}/messages`, { messages: bodies.map((body) => ({ body, ...extra })) });
  assert.equal(r.status, 202, JSON.stringify(r.json));
  return r.json.items as Array<{ id: string; duplicate: boolean }>;
}

/** The same tests on both queue backends: the embedded SQLite store and NATS JetStream. */
for (const backend of ['sqlite', 'nats'] as const) {
  const skip = backend === 'nats' ? natsSkipReason() : false;
  describe(`events on ${backend}`, { skip }, () => {
    let nats: NatsTestServer | null = null;
    before(async () => {
      if (backend === 'nats') nats = await NatsTestServer.start();
      node = await startTestNode(nats ? { nats: nats.url } : {});
    });
    after(async () => {
      await node?.stop();
      await nats?.close();
    });

  describe('queues as resources', () => {
    test('create, list, inspect, send, purge, delete; bad input refused with codes and nothing stored', async () => {
      assert.equal((await node.api('POST', '/v1/queues', { name: 'res-q' })).status, 201);
      assert.equal((await node.api('POST', '/v1/queues', { name: 'res-q' })).json.error.code, 'conflict');
      assert.equal((await node.api('POST', '/v1/queues', { name: 'Bad Name' })).json.error.code, 'bad_name');
      assert.equal((await node.api('POST', '/v1/queues', { name: '_async-x' })).json.error.code, 'bad_name');
      assert.equal((await node.api('POST', '/v1/queues', { name: 'x', extra: 1 })).json.error.code, 'bad_request');
      await send('res-q', ['a', 'b']);
      await send('res-q', ['later'], { delaySeconds: 60 });
      const q = await node.api('GET', '/v1/queues/res-q');
      assert.equal(q.status, 200);
      assert.equal(q.json.stats.depth, 3);
      assert.equal(q.json.stats.ready, 2);
      assert.equal(q.json.stats.delayed, 1);
      assert.ok(q.json.stats.oldestAgeMs >= 0);
      const bad = [
        { messages: [] },
        { messages: [{ body: 'x', encoding: 'base64' }] },
        { messages: [{ body: 'x', delaySeconds: -1 }] },
        { messages: [{ body: 'x', surprise: true }] },
        { messages: [{ body: 'x'.repeat(300 * 1024) }] },
      ];
      for (const body of bad) {
        const r = await node.api('POST', '/v1/queues/res-q/messages', body);
        assert.ok(r.status === 400 || r.status === 413, `${JSON.stringify(body).slice(0, 60)} → ${r.status}`);
      }
      assert.equal((await node.api('GET', '/v1/queues/res-q')).json.stats.depth, 3, 'refused sends stored nothing');
      assert.equal((await node.api('POST', '/v1/queues/ghost/messages', { messages: [{ body: 'x' }] })).json.error.code, 'not_found');
      assert.equal((await node.api('DELETE', '/v1/queues/res-q/messages')).json.purged, 3);
      assert.ok((await node.api('GET', '/v1/queues')).json.items.some((i: { name: string }) => i.name === 'res-q'));
      assert.equal((await node.api('DELETE', '/v1/queues/res-q')).status, 204);
      assert.equal((await node.api('GET', '/v1/queues/res-q')).json.error.code, 'not_found');
    });

    test('external consumers pull with receipts; a stale receipt cannot ack; unacked messages come back', async () => {
      await node.api('POST', '/v1/queues', { name: 'pull-q' });
      await send('pull-q', ['m1', 'm2', 'm3']);
      const first = await node.api('POST', '/v1/queues/pull-q/receive', { max: 2, visibilitySeconds: 1 });
      assert.equal(first.status, 200);
      assert.deepEqual(first.json.items.map((m: { body: string }) => m.body), ['m1', 'm2']);
      assert.deepEqual((await node.api('POST', '/v1/queues/pull-q/ack', { receipts: [first.json.items[0].receipt] })).json.acked, [true]);
      await sleep(1100);
      const second = await node.api('POST', '/v1/queues/pull-q/receive', { max: 10 });
      assert.deepEqual(second.json.items.map((m: { body: string; attempt: number }) => `${m.body}/${m.attempt}`), ['m2/2', 'm3/1']);
      assert.deepEqual((await node.api('POST', '/v1/queues/pull-q/ack', { receipts: [first.json.items[1].receipt, 'junk'] })).json.acked, [false, false]);
      assert.equal((await node.api('POST', '/v1/queues/pull-q/receive', { max: 500 })).status, 400);
    });

    test('a trigger or binding on a missing queue is refused at deploy; a queue in use cannot be deleted', async () => {
      const code = `export default { async queue(batch) { batch.ackAll(); } }`;
      const r = await node.deploy('orphan', code, 'index.js', { triggers: [{ type: 'queue', queue: 'nowhere' }] });
      assert.equal(r.status, 400);
      assert.equal(r.json.error.details.pointer, '/triggers/0/queue');
      assert.equal((await node.api('GET', '/v1/functions/orphan')).status, 404, 'nothing stored');
      const b = await node.deploy('orphan', code, 'index.js', { bindings: { OUT: { queue: 'nowhere' } } });
      assert.equal(b.status, 400);
      await node.api('POST', '/v1/queues', { name: 'in-use' });
      assert.equal((await node.deploy('user', code, 'index.js', { triggers: [{ type: 'queue', queue: 'in-use' }] })).status, 201);
      assert.equal((await node.api('DELETE', '/v1/queues/in-use')).json.error.code, 'conflict');
    });
  });

  describe('queue triggers', () => {
    test('Workers queue(): batches, per-message ack/retry, attempts visible; a poison message retries with backoff then dead-letters with its errors; redrive', async () => {
      await node.api('POST', '/v1/queues', { name: 'work' });
      const code = `export default { async queue(batch, env) {
        for (const m of batch.messages) {
          console.log('saw ' + m.body + ' attempt ' + m.attempts + ' id ' + m.id);
          if (m.body === 'poison') m.retry(); else m.ack();
        }
      } }`;
      const dep = await node.deploy('worker', code, 'index.js', {
        triggers: [{ type: 'queue', queue: 'work', batchSize: 10, maxBatchWaitMs: 20, maxRetries: 2, retryBaseDelayMs: 50, retryMaxDelayMs: 200 }],
      });
      assert.equal(dep.status, 201, JSON.stringify(dep.json));
      const sent = await send('work', ['one', 'two', 'poison', 'three']);
      const dead = await until('the poison message in the dead letters', async () => {
        const r = await node.api('GET', '/v1/queues/work/dead-letters');
        return r.json.items.length === 1 ? r.json.items : undefined;
      });
      assert.equal(dead[0].id, sent[2]!.id);
      assert.equal(dead[0].body, 'poison');
      assert.equal(dead[0].attempts, 3, 'first attempt + 2 retries');
      assert.match(dead[0].reason, /max_retries/);
      assert.equal(dead[0].errors.length, 3);
      const lines = await logLines('worker');
      for (const b of ['one', 'two', 'three']) assert.equal(lines.filter((l) => l.startsWith(`saw ${b} `)).length, 1, `${b} ran once: ${lines.join(' | ')}`);
      assert.deepEqual(lines.filter((l) => l.startsWith('saw poison')).map((l) => l.split(' ')[3]), ['1', '2', '3']);
      assert.equal((await node.api('GET', '/v1/queues/work')).json.stats.depth, 0);
      // Redrive: the message comes back with attempt 1 and dead-letters again.
      assert.equal((await node.api('POST', '/v1/queues/work/redrive', {})).json.redriven, 1);
      await until('the redriven poison message to run again', async () => ((await logLines('worker')).filter((l) => l.startsWith('saw poison attempt 1')).length === 2 ? true : undefined));
    });

    test('Lambda SQS event: Records with AWS field names; batchItemFailures retries only those', async () => {
      await node.api('POST', '/v1/queues', { name: 'sqs' });
      const code = `exports.handler = async (event) => {
        const failures = [];
        for (const r of event.Records) {
          console.log(JSON.stringify({ body: r.body, source: r.eventSource, count: r.attributes.ApproximateReceiveCount, id: r.messageId }));
          if (r.body === 'flaky' && r.attributes.ApproximateReceiveCount === '1') failures.push({ itemIdentifier: r.messageId });
        }
        return { batchItemFailures: failures };
      };`;
      assert.equal((await node.deploy('sqs-consumer', code, 'index.js', { triggers: [{ type: 'queue', queue: 'sqs', retryBaseDelayMs: 10, retryMaxDelayMs: 50 }] })).status, 201);
      await send('sqs', ['fine', 'flaky']);
      const seen = await until('flaky to be retried once', async () => {
        const lines = (await logLines('sqs-consumer')).map((l) => JSON.parse(l));
        return lines.length >= 3 ? lines : undefined;
      });
      assert.equal(seen.filter((l) => l.body === 'fine').length, 1);
      assert.deepEqual(seen.filter((l) => l.body === 'flaky').map((l) => l.count), ['1', '2']);
      assert.ok(seen.every((l) => l.source === 'aws:sqs'));
    });

    test('a backlog of poison in one queue does not hold up another queue', async () => {
      await node.api('POST', '/v1/queues', { name: 'bad-q' });
      await node.api('POST', '/v1/queues', { name: 'good-q' });
      const slowFail = `export default { async queue(batch) { await new Promise((r) => setTimeout(r, 200)); throw new Error('always'); } }`;
      const ok = `export default { async queue(batch) { for (const m of batch.messages) console.log('good ' + m.body); } }`;
      await node.deploy('bad-consumer', slowFail, 'index.js', { triggers: [{ type: 'queue', queue: 'bad-q', maxConcurrency: 2, retryBaseDelayMs: 10 }] });
      await node.deploy('good-consumer', ok, 'index.js', { triggers: [{ type: 'queue', queue: 'good-q' }] });
      await send('bad-q', Array.from({ length: 100 }, (_, i) => `p${i}`));
      const t0 = Date.now();
      await send('good-q', ['g1', 'g2']);
      await until('good messages', async () => ((await logLines('good-consumer')).length === 2 ? true : undefined));
      assert.ok(Date.now() - t0 < 3000, `good messages took ${Date.now() - t0} ms behind a poisoned queue`);
    });
  });

  describe('backlog and fairness (catalogue 59, scaled down)', () => {
    test("one queue's 20,000-message backlog does not delay another's 10; in-flight stays capped; the backlog drains", async () => {
      await node.api('POST', '/v1/queues', { name: 'tenant-x' });
      await node.api('POST', '/v1/queues', { name: 'tenant-y' });
      const body = 'x'.repeat(64);
      const X = 20_000;
      for (let i = 0; i < X; i += 500) {
        await Promise.all(Array.from({ length: 5 }, (_, j) => send('tenant-x', Array.from({ length: 100 }, (_, k) => `${body}${i + j * 100 + k}`))));
      }
      await send('tenant-y', Array.from({ length: 10 }, (_, i) => `y${i}`));
      const count = `export default { async queue(batch) { console.log('n ' + batch.messages.length); } }`;
      const t0 = Date.now();
      await node.deploy('x-consumer', count, 'index.js', { triggers: [{ type: 'queue', queue: 'tenant-x', batchSize: 100, maxConcurrency: 4 }] });
      await node.deploy('y-consumer', count, 'index.js', { triggers: [{ type: 'queue', queue: 'tenant-y', batchSize: 10 }] });
      await until("Y's messages", async () => ((await node.api('GET', '/v1/queues/tenant-y')).json.stats.depth === 0 ? true : undefined));
      const yMs = Date.now() - t0;
      let maxInFlight = 0;
      await until('the backlog to drain', async () => {
        const stats = (await node.api('GET', '/v1/queues/tenant-x')).json.stats;
        maxInFlight = Math.max(maxInFlight, stats.inFlight);
        return stats.depth === 0 ? true : undefined;
      }, 120_000);
      const drainMs = Date.now() - t0;
      assert.ok(yMs < 3000, `Y's 10 messages took ${yMs} ms behind X's backlog`);
      assert.ok(maxInFlight <= 400, `in flight ${maxInFlight} > batchSize × maxConcurrency`);
      const handled = (await logLines('x-consumer')).reduce((n, l) => n + Number(l.split(' ')[1]), 0);
      assert.equal(handled, X);
      process.stderr.write(`[fairness] Y done in ${yMs} ms; X's ${X} drained in ${drainMs} ms (${Math.round(X / (drainMs / 1000))} msgs/s); max in flight ${maxInFlight}\n`);
    });
  });

  describe('async invocation', () => {
    test('202 once durable; status and result by id; Idempotency-Key returns the first id; another payload conflicts', async () => {
      const code = `exports.handler = async (event, context) => ({ got: event, attempt: context.attempt, id: context.awsRequestId });`;
      assert.equal((await node.deploy('async-fn', code)).status, 201);
      const r = await node.api('POST', '/v1/functions/async-fn/invoke', { n: 1 }, { 'x-amz-invocation-type': 'Event', 'idempotency-key': 'k-1' });
      assert.equal(r.status, 202, JSON.stringify(r.json));
      const id = r.json.invocationId as string;
      assert.equal(r.headers.get('location'), `/v1/invocations/${id}`);
      const again = await node.api('POST', '/v1/functions/async-fn/invoke', { n: 1 }, { 'continuum-invocation-type': 'async', 'idempotency-key': 'k-1' });
      assert.equal(again.status, 202);
      assert.equal(again.json.invocationId, id);
      assert.equal(again.json.duplicate, true);
      const conflict = await node.api('POST', '/v1/functions/async-fn/invoke', { n: 2 }, { 'x-amz-invocation-type': 'Event', 'idempotency-key': 'k-1' });
      assert.equal(conflict.status, 409);
      const done = await until('the async invocation to succeed', async () => {
        const s = await node.api('GET', `/v1/invocations/${id}`);
        return s.json.state === 'succeeded' ? s.json : undefined;
      });
      assert.equal(done.kind, 'async');
      assert.equal(done.functionName, 'async-fn');
      assert.deepEqual(JSON.parse(done.outcome.result.body), { got: { n: 1 }, attempt: 1, id });
      assert.equal((await node.api('POST', '/v1/functions/async-fn/invoke?mode=async', 'x'.repeat(300 * 1024), { 'content-type': 'text/plain' })).status, 413);
      assert.equal((await node.api('POST', '/v1/functions/async-fn/invoke', {}, { 'x-amz-invocation-type': 'Bogus' })).status, 400);
      assert.equal((await node.api('POST', '/v1/functions/nope/invoke', {}, { 'x-amz-invocation-type': 'Event' })).status, 404);
    });

    test('on-success destination to a function: it receives the Lambda-style record once', async () => {
      const sink = `exports.handler = async (record) => { console.log(record.requestContext.condition + ' ' + record.responsePayload.doubled); return 'ok'; };`;
      assert.equal((await node.deploy('dest-sink', sink)).status, 201);
      const source = `exports.handler = async (event) => ({ doubled: event.n * 2 });`;
      assert.equal((await node.deploy('dest-source', source, 'index.js', { async: { onSuccess: { function: 'dest-sink' } } })).status, 201);
      assert.equal((await node.api('POST', '/v1/functions/dest-source/invoke', { n: 21 }, { 'x-amz-invocation-type': 'Event' })).status, 202);
      const lines = await until('the destination function to run', async () => {
        const l = await logLines('dest-sink');
        return l.length > 0 ? l : undefined;
      });
      assert.deepEqual(lines, ['Success 42']);
    });

    test('a failing async invocation retries, then fails with its error; the on-failure destination gets a Lambda-style record', async () => {
      await node.api('POST', '/v1/queues', { name: 'failures' });
      const code = `exports.handler = async (event, context) => { console.log('attempt ' + context.attempt); throw new Error('nope ' + event.n); };`;
      const dep = await node.deploy('async-fail', code, 'index.js', { async: { maxRetries: 1, onFailure: { queue: 'failures' } } });
      assert.equal(dep.status, 201, JSON.stringify(dep.json));
      const r = await node.api('POST', '/v1/functions/async-fail/invoke', { n: 7 }, { 'x-amz-invocation-type': 'Event' });
      const id = r.json.invocationId as string;
      const failed = await until('the invocation to fail', async () => {
        const s = await node.api('GET', `/v1/invocations/${id}`);
        return s.json.state === 'failed' ? s.json : undefined;
      }, 20_000);
      assert.equal(failed.attempt, 2);
      assert.equal(failed.outcome.error.code, 'function_error');
      assert.match(failed.outcome.error.message, /nope 7/);
      const records = await until('the destination record', async () => {
        const d = await node.api('GET', '/v1/queues/failures');
        return d.json.stats.depth === 1 ? d : undefined;
      });
      assert.equal(records.json.stats.depth, 1);
      assert.deepEqual((await logLines('async-fail')).sort(), ['attempt 1', 'attempt 2']);
    });
  });

  describe('worker killed mid-invocation (catalogue 44)', () => {
    test('kill -9 of the isolate worker after a side effect: redelivered as attempt 2 with the same id and key; one final state', async () => {
      await node.api('POST', '/v1/queues', { name: 'side-effects' });
      const code = `export default { async fetch(req, env) {
        const attempt = req.headers.get('continuum-attempt');
        await env.FX.send([req.headers.get('continuum-invocation-id'), req.headers.get('idempotency-key'), attempt].join(' '));
        if (attempt === '1') await new Promise(() => {}); // hang until the worker is killed
        return new Response('done ' + attempt);
      } }`;
      assert.equal((await node.deploy('victim', code, 'index.js', { bindings: { FX: { queue: 'side-effects' } } })).status, 201);
      const r = await node.api('POST', '/v1/functions/victim/invoke', 'go', { 'content-type': 'text/plain', 'x-amz-invocation-type': 'Event', 'idempotency-key': 'fx-1' });
      const id = r.json.invocationId as string;
      await until('the side effect of attempt 1', async () => ((await node.api('GET', '/v1/queues/side-effects')).json.stats.depth === 1 ? true : undefined));
      const workers = isolateWorkerPids();
      assert.ok(workers.length > 0, 'found the isolate worker processes');
      for (const pid of workers) process.kill(pid, 'SIGKILL');
      const done = await until('attempt 2 to succeed', async () => {
        const st = await node.api('GET', `/v1/invocations/${id}`);
        return st.json.state === 'succeeded' ? st.json : undefined;
      }, 30_000);
      assert.equal(done.attempt, 2);
      assert.equal(done.outcome.result.body, 'done 2');
      const effects = await node.api('POST', '/v1/queues/side-effects/receive', { max: 10 });
      assert.deepEqual(effects.json.items.map((m: { body: string }) => m.body).sort(), [`${id} fx-1 1`, `${id} fx-1 2`]);
      const failed = await node.api('GET', '/v1/invocations?function=victim&outcome=error');
      assert.equal(failed.json.items[0]?.errorCode, 'instance_crashed', 'the killed execution is recorded as instance_crashed');
    });
  });

  describe('cron', () => {
    test('a six-field schedule fires every second with the Workers scheduled() handler; an invalid schedule or zone is refused', async () => {
      const code = `export default { async scheduled(controller) { console.log('tick ' + controller.cron + ' ' + controller.scheduledTime); } }`;
      const bad = await node.deploy('cron-bad', code, 'index.js', { triggers: [{ type: 'cron', schedule: '61 * * * *' }] });
      assert.equal(bad.status, 400);
      assert.match(bad.json.error.details.pointer, /^\/triggers\/0/);
      const badZone = await node.deploy('cron-bad', code, 'index.js', { triggers: [{ type: 'cron', schedule: '* * * * *', timezone: 'Mars/Olympus' }] });
      assert.equal(badZone.status, 400);
      assert.equal((await node.deploy('ticker', code, 'index.js', { triggers: [{ type: 'cron', schedule: '* * * * * *' }] })).status, 201);
      const ticks = await until('three ticks', async () => {
        const lines = await logLines('ticker');
        return lines.length >= 3 ? lines : undefined;
      });
      const times = ticks.map((l) => Number(l.split(' ').at(-1)));
      for (const t of times) assert.equal(t % 1000, 0, 'scheduled times are whole seconds');
      assert.equal(new Set(times).size, times.length, 'no double fires');
      assert.ok(ticks[0]!.startsWith('tick * * * * * * '));
      await node.api('PATCH', '/v1/functions/ticker', { config: { triggers: [] } });
    });
  });

  describe('CloudEvents', () => {
    test('binary and structured mode to a function; to a queue; invalid events name the attribute', async () => {
      const code = `export default { async fetch(req) { console.log(JSON.stringify({ type: req.headers.get('ce-type'), source: req.headers.get('ce-source'), body: await req.text() })); return new Response('ok'); } }`;
      assert.equal((await node.deploy('ce-fn', code)).status, 201);
      const binary = await fetch(`${node.url}/v1/functions/ce-fn/events`, {
        method: 'POST',
        headers: { authorization: `Bearer ${node.token}`, 'ce-specversion': '1.0', 'ce-id': 'e1', 'ce-source': '/orders', 'ce-type': 'order.created', 'content-type': 'application/json' },
        body: '{"order":1}',
      });
      assert.equal(binary.status, 202, await binary.clone().text());
      const structured = await fetch(`${node.url}/v1/functions/ce-fn/events`, {
        method: 'POST',
        headers: { authorization: `Bearer ${node.token}`, 'content-type': 'application/cloudevents+json' },
        body: JSON.stringify({ specversion: '1.0', id: 'e2', source: '/orders', type: 'order.paid', datacontenttype: 'text/plain', data: 'paid' }),
      });
      assert.equal(structured.status, 202);
      const lines = await until('both events', async () => {
        const l = (await logLines('ce-fn')).map((x) => JSON.parse(x));
        return l.length >= 2 ? l : undefined;
      });
      assert.deepEqual(lines.map((l) => l.type).sort(), ['order.created', 'order.paid']);
      assert.ok(lines.some((l) => l.body === '{"order":1}'));
      const missing = await fetch(`${node.url}/v1/functions/ce-fn/events`, {
        method: 'POST',
        headers: { authorization: `Bearer ${node.token}`, 'ce-specversion': '1.0', 'ce-id': 'e3', 'ce-type': 'x' },
        body: 'x',
      });
      assert.equal(missing.status, 400);
      assert.match(((await missing.json()) as { error: { message: string } }).error.message, /source/);
      await node.api('POST', '/v1/queues', { name: 'ce-q' });
      const toQueue = await fetch(`${node.url}/v1/queues/ce-q/events`, {
        method: 'POST',
        headers: { authorization: `Bearer ${node.token}`, 'ce-specversion': '1.0', 'ce-id': 'q1', 'ce-source': '/s', 'ce-type': 't' },
        body: 'hello',
      });
      assert.equal(toQueue.status, 202);
      assert.equal((await node.api('GET', '/v1/queues/ce-q')).json.stats.depth, 1);
    });
  });

  describe('queue bindings', () => {
    test('env.OUT.send and sendBatch enqueue durably into the granted queue only', async () => {
      await node.api('POST', '/v1/queues', { name: 'out-q' });
      const code = `export default { async fetch(req, env) {
        await env.OUT.send({ hello: 'world' });
        await env.OUT.sendBatch([{ body: 'a' }, { body: 'b', delaySeconds: 30 }]);
        return new Response(String(typeof env.OTHER));
      } }`;
      assert.equal((await node.deploy('producer', code, 'index.js', { bindings: { OUT: { queue: 'out-q' } } })).status, 201);
      const r = await node.fn('/fn/producer/');
      assert.equal(r.status, 200, await r.clone().text());
      assert.equal(await r.text(), 'undefined');
      const stats = (await node.api('GET', '/v1/queues/out-q')).json.stats;
      assert.equal(stats.depth, 3);
      assert.equal(stats.delayed, 1);
    });
  });
  });
}
