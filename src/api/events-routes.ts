/**
 * Control API routes of the events service: queues (create, list, inspect, delete, send, purge, dead
 * letters, redrive), async invocation (`POST /v1/functions/:name/invoke` in async mode is routed here by
 * app.ts), CloudEvents ingress to a queue or a function, and async invocation status.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { EVENT_DEFAULTS } from '../core/defaults.ts';
import { ContinuumError } from '../core/errors.ts';
import type { DeadLetter, MessageStatus, NewMessage } from '../store/contract.ts';
import type { EventsService } from '../events/service.ts';
import { CE_PREFIX, TRACEPARENT_ATTRIBUTE, TRACESTATE_ATTRIBUTE } from '../events/deliver.ts';
import { parseTraceparent } from '../core/tracecontext.ts';
import { parseCloudEvents } from '../events/cloudevents.ts';
import type { FunctionService } from './service.ts';
import * as S from './schemas.ts';

type Errors = Record<number, unknown>;

/** Raw bodies of event ingress and async invoke: bounded by the largest message. */
const RAW_LIMIT = EVENT_DEFAULTS.queue.maxMessageBytes;

export async function registerEventRoutes(app: FastifyInstance, events: EventsService, functions: FunctionService, errors: Errors): Promise<void> {
  app.get('/v1/queues', { schema: { summary: 'List queues with depth, age and dead letters', response: { 200: S.Items(S.QueueView), ...errors } } }, async () => ({
    items: await events.listQueues(),
  }));

  app.post<{ Body: { name: string } }>(
    '/v1/queues',
    { schema: { summary: 'Create a queue', body: S.CreateQueueBody, response: { 201: S.QueueView, ...errors } } },
    async (req, reply) => reply.code(201).send(await events.createQueue(req.body.name)),
  );

  app.get<{ Params: { name: string } }>(
    '/v1/queues/:name',
    { schema: { summary: 'Inspect a queue', params: S.QueueParams, response: { 200: S.QueueView, ...errors } } },
    async (req) => events.getQueue(req.params.name),
  );

  app.delete<{ Params: { name: string } }>(
    '/v1/queues/:name',
    { schema: { summary: 'Delete a queue with its messages (refused while a function uses it)', params: S.QueueParams, response: { 204: { type: 'null' }, ...errors } } },
    async (req, reply) => {
      await events.deleteQueue(req.params.name);
      return reply.code(204).send();
    },
  );

  app.post<{ Params: { name: string }; Body: { messages: Array<{ body: string; encoding?: 'utf8' | 'base64'; contentType?: string; delaySeconds?: number; idempotencyKey?: string }> } }>(
    '/v1/queues/:name/messages',
    { schema: { summary: 'Send messages (durable when answered)', params: S.QueueParams, body: S.SendMessagesBody, response: { 202: S.SentView, ...errors } } },
    async (req, reply) => {
      const messages: NewMessage[] = req.body.messages.map((m, i) => ({
        body: decodeBody(m.body, m.encoding ?? 'utf8', `/body/messages/${i}/body`),
        contentType: m.contentType ?? (m.encoding === 'base64' ? 'application/octet-stream' : 'text/plain; charset=utf-8'),
        ...(m.delaySeconds ? { delayMs: m.delaySeconds * 1000 } : {}),
        ...(m.idempotencyKey !== undefined ? { idempotencyKey: m.idempotencyKey } : {}),
      }));
      return reply.code(202).send({ items: await events.send(req.params.name, messages) });
    },
  );

  app.post<{ Params: { name: string }; Body: { max?: number; visibilitySeconds?: number } }>(
    '/v1/queues/:name/receive',
    {
      schema: {
        summary: 'Pull messages for an external consumer; acknowledge them by receipt before the visibility timeout',
        params: S.QueueParams,
        body: S.ReceiveBody,
        response: { 200: S.ReceivedView, ...errors },
      },
    },
    async (req) => {
      const got = await events.receive(req.params.name, req.body.max ?? 10, (req.body.visibilitySeconds ?? 30) * 1000);
      return {
        items: got.map((m) => ({
          id: m.id,
          receipt: m.receipt,
          ...encodeBody(m.body),
          contentType: m.contentType,
          attributes: m.attributes,
          idempotencyKey: m.idempotencyKey,
          enqueuedAt: m.enqueuedAt,
          attempt: m.attempt,
        })),
      };
    },
  );

  app.post<{ Params: { name: string }; Body: { receipts: string[] } }>(
    '/v1/queues/:name/ack',
    {
      schema: {
        summary: 'Acknowledge pulled messages (deletes them); false for a receipt that is no longer current',
        params: S.QueueParams,
        body: S.AckBody,
        response: { 200: { type: 'object', properties: { acked: { type: 'array', items: { type: 'boolean' } } } }, ...errors },
      },
    },
    async (req) => ({ acked: await events.ack(req.params.name, req.body.receipts) }),
  );

  app.delete<{ Params: { name: string } }>(
    '/v1/queues/:name/messages',
    { schema: { summary: 'Purge ready and delayed messages', params: S.QueueParams, response: { 200: { type: 'object', properties: { purged: { type: 'integer' } } }, ...errors } } },
    async (req) => ({ purged: await events.purge(req.params.name) }),
  );

  app.get<{ Params: { name: string }; Querystring: { limit?: string; after?: string } }>(
    '/v1/queues/:name/dead-letters',
    { schema: { summary: 'Dead letters, oldest first, with reason and errors', params: S.QueueParams, querystring: S.DeadLettersQuery, response: { 200: S.Items(S.DeadLetterView), ...errors } } },
    async (req) => ({
      items: (await events.deadLetters(req.params.name, { limit: Number(req.query.limit ?? 100), ...(req.query.after ? { after: req.query.after } : {}) })).map(deadLetterView),
    }),
  );

  app.post<{ Params: { name: string }; Body: { ids?: string[] } }>(
    '/v1/queues/:name/redrive',
    { schema: { summary: 'Move dead letters back to the queue (all, or the given ids)', params: S.QueueParams, body: S.IdsBody, response: { 200: { type: 'object', properties: { redriven: { type: 'integer' } } }, ...errors } } },
    async (req) => ({ redriven: await events.redrive(req.params.name, req.body.ids) }),
  );

  app.post<{ Params: { name: string }; Body: { ids?: string[] } }>(
    '/v1/queues/:name/dead-letters/purge',
    { schema: { summary: 'Delete dead letters (all, or the given ids)', params: S.QueueParams, body: S.IdsBody, response: { 200: { type: 'object', properties: { purged: { type: 'integer' } } }, ...errors } } },
    async (req) => ({ purged: await events.purgeDeadLetters(req.params.name, req.body.ids) }),
  );

  await app.register(async (scope) => {
    // CloudEvents and async payloads arrive raw; their content type is the event's, not ours.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: RAW_LIMIT * 2 }, (_req, body, done) => done(null, body));

    scope.post<{ Params: { name: string } }>(
      '/v1/queues/:name/events',
      { schema: { summary: 'CloudEvents 1.0 ingress to a queue (binary, structured or batch mode)', params: S.QueueParams, response: { 202: S.SentView, ...errors } } },
      async (req, reply) => {
        const parsed = parseCloudEvents(headerPairs(req), rawBody(req));
        const sent = await events.send(
          req.params.name,
          parsed.map((e) => ({
            body: e.data ?? new Uint8Array(0),
            ...(e.dataContentType !== null ? { contentType: e.dataContentType } : {}),
            attributes: prefixed(e.attributes),
            // The CloudEvents identity: a re-sent event (same source and id) is stored once.
            idempotencyKey: `ce:${e.attributes.source}:${e.attributes.id}`.slice(0, 256),
          })),
        );
        return reply.code(202).send({ items: sent });
      },
    );

    scope.post<{ Params: { name: string } }>(
      '/v1/functions/:name/events',
      { schema: { summary: 'CloudEvents 1.0 ingress to a function (runs asynchronously)', params: S.NameParams, response: { 202: S.SentView, ...errors } } },
      async (req, reply) => {
        await functions.get(req.params.name);
        const parsed = parseCloudEvents(headerPairs(req), rawBody(req));
        const items = [];
        for (const e of parsed) {
          items.push(
            await events.submitAsync(req.params.name, {
              body: e.data ?? new Uint8Array(0),
              ...(e.dataContentType !== null ? { contentType: e.dataContentType } : {}),
              kind: 'cloudevent',
              attributes: prefixed(e.attributes),
              idempotencyKey: `ce:${e.attributes.source}:${e.attributes.id}`.slice(0, 256),
            }),
          );
        }
        return reply.code(202).send({ items });
      },
    );
  });
}

/** Async invoke: durable before the 202; `Idempotency-Key` makes retries return the first id. */
export async function submitAsyncInvoke(events: EventsService, functionName: string, headers: Record<string, string | string[] | undefined>, body: Uint8Array) {
  if (body.byteLength > RAW_LIMIT) throw new ContinuumError('payload_too_large', `async payloads are limited to ${RAW_LIMIT} bytes`, { limit: RAW_LIMIT });
  const key = headers['idempotency-key'];
  if (Array.isArray(key)) throw new ContinuumError('bad_request', 'Idempotency-Key must be given once');
  const contentType = headers['content-type'];
  // The caller's trace context goes with the invocation (message attributes) and is continued when it runs.
  const traceparent = headers.traceparent;
  const tracestate = headers.tracestate;
  const trace: Record<string, string> = {};
  if (typeof traceparent === 'string' && parseTraceparent(traceparent)) {
    trace[TRACEPARENT_ATTRIBUTE] = traceparent;
    if (typeof tracestate === 'string' && tracestate.length <= 512) trace[TRACESTATE_ATTRIBUTE] = tracestate;
  }
  const sent = await events.submitAsync(functionName, {
    body,
    attributes: trace,
    ...(typeof contentType === 'string' ? { contentType } : {}),
    ...(typeof key === 'string' ? { idempotencyKey: key } : {}),
  });
  return { invocationId: sent.id, duplicate: sent.duplicate };
}

export function asyncStatusView(status: MessageStatus) {
  const o = status.outcome;
  return {
    kind: 'async' as const,
    id: status.id,
    functionName: status.queue.startsWith('_async-') ? status.queue.slice('_async-'.length) : null,
    queue: status.queue,
    state: status.state,
    attempt: status.attempt,
    enqueuedAt: status.enqueuedAt,
    idempotencyKey: status.idempotencyKey,
    outcome: o
      ? {
          state: o.state,
          attempt: o.attempt,
          finishedAt: o.finishedAt,
          ...(o.result ? { result: { status: o.result.status, contentType: o.result.contentType, ...encodeBody(o.result.body) } } : {}),
          ...(o.error ? { error: o.error } : {}),
        }
      : null,
  };
}

function deadLetterView(d: DeadLetter) {
  return { ...d, ...encodeBody(d.body) };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function encodeBody(bytes: Uint8Array): { body: string; encoding: 'utf8' | 'base64' } {
  try {
    return { body: utf8.decode(bytes), encoding: 'utf8' };
  } catch {
    return { body: Buffer.from(bytes).toString('base64'), encoding: 'base64' };
  }
}

function decodeBody(text: string, encoding: 'utf8' | 'base64', pointer: string): Uint8Array {
  if (encoding === 'utf8') return new TextEncoder().encode(text);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) throw new ContinuumError('bad_request', `${pointer} is not valid base64`, { pointer });
  return Buffer.from(text, 'base64');
}

function prefixed(attributes: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(attributes)) out[`${CE_PREFIX}${k}`] = v;
  return out;
}

function headerPairs(req: FastifyRequest): Array<[string, string]> {
  const raw = req.raw.rawHeaders;
  const out: Array<[string, string]> = [];
  for (let i = 0; i < raw.length; i += 2) out.push([raw[i]!, raw[i + 1]!]);
  return out;
}

function rawBody(req: FastifyRequest): Uint8Array {
  return Buffer.isBuffer(req.body) ? req.body : new Uint8Array(0);
}
