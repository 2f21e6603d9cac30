/**
 * The node's HTTP front: function traffic goes straight to the ingress (no framework on the hot path);
 * everything else is the control API on Fastify, whose route schemas validate requests and generate the
 * OpenAPI 3.1 document at /v1/openapi.json.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import swagger from '@fastify/swagger';
import { ContinuumError, ERROR_CODES, errorBody, type ErrorCode } from '../core/errors.ts';
import { validate, FunctionConfigInputSchema, type FunctionConfigInput } from '../core/config.ts';
import { Type } from '@sinclair/typebox';
import { BUILD_DEFAULTS, EVENT_DEFAULTS, NODE_DEFAULTS } from '../core/defaults.ts';
import type { LogLine, VersionRecord } from '../core/types.ts';
import type { DriverStatus } from '../core/driver.ts';
import type { SeriesView } from '../telemetry/series.ts';
import type { FunctionService, FunctionView } from './service.ts';
import type { EventsService } from '../events/service.ts';
import { asyncStatusView, registerEventRoutes, submitAsyncInvoke } from './events-routes.ts';
import * as S from './schemas.ts';
import { parseJsonBounded } from './json.ts';
import { registerConsole } from './console.ts';

export interface AppOptions {
  service: FunctionService;
  events: EventsService;
  adminToken: string;
  /** Function traffic; returns false when the request is not for a function. */
  ingress: (req: http.IncomingMessage, res: http.ServerResponse) => boolean;
  /** Sync invoke through the API: streams the request into the function and its response back. */
  invoke: (req: http.IncomingMessage, res: http.ServerResponse, fn: FunctionView) => Promise<void>;
  /** Live log lines for `follow`. */
  followLogs: (listener: (line: LogLine) => void) => () => void;
  /** Prometheus exposition of the node (GET /metrics). */
  metrics: () => Promise<{ contentType: string; body: string }>;
  /** Each tier's driver status: available or why not, and how it runs (e.g. the gVisor platform). */
  tiers: () => DriverStatus[];
  /** A version as an OCI image layout tarball (`continuum image build`). */
  exportImage: (version: VersionRecord) => Promise<Buffer>;
  /** The console's time series of one function, or of all (null). */
  series: (functionName: string | null) => Promise<SeriesView>;
  /** SSE comment interval on live log streams (default NODE_DEFAULTS.logs.heartbeatMs). */
  logHeartbeatMs?: number;
  http?: { [K in keyof (typeof NODE_DEFAULTS)['http']]?: number };
  maxApiBodyBytes?: number;
  maxUploadBytes?: number;
  version: string;
  /** The built web console (console/dist); without it `/` is not served. */
  consoleDir?: string;
}

const UPLOAD_TYPES = [
  'application/javascript',
  'text/javascript',
  'application/typescript',
  'application/x-typescript',
  'text/typescript',
  'application/zip',
  'application/gzip',
  'application/x-gzip',
  'application/octet-stream',
];
/** An OCI image layout or `docker save` tarball: a deploy to the container or gvisor tier. */
const IMAGE_TYPES = ['application/vnd.oci.image.layout.v1+tar', 'application/x-tar'];
const isImageType = (contentType: string | undefined): boolean => IMAGE_TYPES.includes((contentType ?? '').toLowerCase().split(';')[0]!.trim());

export async function buildApp(opts: AppOptions): Promise<FastifyInstance> {
  const httpLimits = { ...NODE_DEFAULTS.http, ...opts.http };
  const app = Fastify({
    logger: false,
    bodyLimit: opts.maxApiBodyBytes ?? NODE_DEFAULTS.maxApiBodyBytes,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false } },
    serverFactory: (handler) => {
      const server = http.createServer(
        {
          headersTimeout: httpLimits.headersTimeoutMs,
          requestTimeout: httpLimits.requestTimeoutMs,
          keepAliveTimeout: httpLimits.keepAliveTimeoutMs,
          maxHeaderSize: httpLimits.maxHeaderBytes,
          insecureHTTPParser: false,
          requireHostHeader: true,
          // How often header/request timeouts are checked; Node's default (30 s) would let a slowloris
          // connection live far past headersTimeout.
          connectionsCheckingInterval: Math.min(1000, httpLimits.headersTimeoutMs),
        },
        (req, res) => {
          if (!opts.ingress(req, res)) handler(req, res);
        },
      );
      server.maxConnections = httpLimits.maxConnections;
      limitConnectionsPerAddress(server, httpLimits.maxConnectionsPerIp);
      return server;
    },
  });

  const expectedToken = sha256(opts.adminToken);
  // /metrics needs the token too (Prometheus: `authorization: { credentials_file: <data dir>/admin-token }`).
  app.addHook('onRequest', async (req) => {
    const guarded = (req.url.startsWith('/v1/') && req.url !== '/v1/openapi.json') || req.url === '/metrics' || req.url.startsWith('/metrics?');
    if (!guarded) return;
    const header = req.headers.authorization;
    const presented = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7) : '';
    if (!presented || !timingSafeEqual(sha256(presented), expectedToken)) {
      throw new ContinuumError('unauthorized', 'missing or invalid admin token (Authorization: Bearer <token>)');
    }
  });

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, parseJsonBounded(body as string, NODE_DEFAULTS.maxJsonDepth));
    } catch (err) {
      done(err as Error, undefined);
    }
  });

  app.setErrorHandler((err: FastifyError | ContinuumError, _req, reply) => sendApiError(reply, toApiError(err)));
  app.setNotFoundHandler((req, reply) => sendApiError(reply, new ContinuumError('not_found', `no route ${req.method} ${req.url.split('?')[0]}`)));

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Continuum control API', version: opts.version, description: 'Deploy, configure and invoke functions. Errors: docs/errors.md.' },
      components: { securitySchemes: { admin: { type: 'http', scheme: 'bearer' } } },
      security: [{ admin: [] }],
    },
  });

  const errors = Object.fromEntries([400, 401, 403, 404, 409, 413, 415, 500, 503].map((s) => [s, S.ErrorView]));
  const { service } = opts;

  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { hide: true } }, async () => ({ status: 'ready' }));
  app.get(
    '/v1/status',
    {
      schema: {
        summary: "The node: version and each tier's driver (available, or the reason; how it runs)",
        response: {
          200: {
            type: 'object',
            properties: {
              version: { type: 'string' },
              tiers: { type: 'array', items: { type: 'object', properties: { tier: { type: 'string' }, available: { type: 'boolean' }, reason: { type: 'string' }, instances: { type: 'integer' } } } },
            },
          },
          ...errors,
        },
      },
    },
    async () => ({ version: opts.version, tiers: opts.tiers() }),
  );
  app.get('/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  app.get('/metrics', { schema: { hide: true } }, async (_req, reply) => {
    const { contentType, body } = await opts.metrics();
    return reply.type(contentType).header('cache-control', 'no-store').send(body);
  });

  app.get<{ Querystring: { function?: string } }>(
    '/v1/metrics/series',
    { schema: { summary: 'Requests, errors, p50/p99 latency, cold starts and instances per 10 s bucket over the last hour (docs/observability.md)', querystring: S.SeriesQuery, response: { 200: S.SeriesView, ...errors } } },
    async (req) => {
      if (req.query.function) await service.get(req.query.function);
      return opts.series(req.query.function ?? null);
    },
  );

  app.get<{ Querystring: { since?: string; until?: string } }>(
    '/v1/usage',
    { schema: { summary: 'Usage per function (invocations, CPU seconds, GB-seconds) over retained records', querystring: S.UsageQuery, response: { 200: S.UsageView, ...errors } } },
    async (req) => {
      const since = req.query.since !== undefined ? parseTime(req.query.since, 'since') : 0;
      const until = req.query.until !== undefined ? parseTime(req.query.until, 'until') : Date.now();
      return { since: new Date(since).toISOString(), until: new Date(until).toISOString(), items: await service.usage(since, until) };
    },
  );

  app.get('/v1/functions', { schema: { summary: 'List functions', response: { 200: S.Items(S.FunctionView), ...errors } } }, async () => ({
    items: await service.list(),
  }));

  app.post<{ Body: { name: string; config?: FunctionConfigInput } }>(
    '/v1/functions',
    { schema: { summary: 'Create a function (no code yet)', body: S.CreateFunctionBody, response: { 201: S.FunctionView, ...errors } } },
    async (req, reply) => reply.code(201).send(await service.create(req.body.name, req.body.config)),
  );

  app.get<{ Params: { name: string } }>(
    '/v1/functions/:name',
    { schema: { summary: 'Get a function', params: S.NameParams, response: { 200: S.FunctionView, ...errors } } },
    async (req) => service.get(req.params.name),
  );

  app.get<{ Params: { name: string } }>(
    '/v1/functions/:name/image',
    {
      schema: {
        summary: "The active version as an OCI image layout tarball (any OCI runtime runs it; it serves HTTP on $PORT)",
        params: S.NameParams,
        response: { 200: { type: 'string', format: 'binary' }, ...errors },
      },
    },
    async (req, reply) => {
      const fn = await service.get(req.params.name);
      if (!fn.activeVersion) throw new ContinuumError('not_found', `function ${fn.name} has no deployed version`);
      const image = await opts.exportImage(await service.version(fn.name, fn.activeVersion));
      return reply.type('application/x-tar').header('content-disposition', `attachment; filename="${fn.name}.oci.tar"`).send(image);
    },
  );

  app.patch<{ Params: { name: string }; Body: { config: FunctionConfigInput } }>(
    '/v1/functions/:name',
    { schema: { summary: 'Update configuration (a deployed function gets a new version)', params: S.NameParams, body: S.UpdateFunctionBody, response: { 200: S.FunctionView, ...errors } } },
    async (req) => service.updateConfig(req.params.name, req.body.config),
  );

  app.delete<{ Params: { name: string } }>(
    '/v1/functions/:name',
    { schema: { summary: 'Delete a function and its versions', params: S.NameParams, response: { 204: { type: 'null' }, ...errors } } },
    async (req, reply) => {
      await service.delete(req.params.name);
      return reply.code(204).send();
    },
  );

  await app.register(async (scope) => {
    scope.addContentTypeParser(UPLOAD_TYPES, { parseAs: 'buffer', bodyLimit: opts.maxUploadBytes ?? BUILD_DEFAULTS.maxUploadBytes }, (_req, body, done) => done(null, body));
    // Images stream into the image store, which applies its own caps (IMAGE_DEFAULTS), instead of the buffer.
    scope.addContentTypeParser(IMAGE_TYPES, (_req, payload, done) => done(null, payload));
    scope.post<{ Params: { name: string }; Querystring: { filename?: string }; Body: Buffer }>(
      '/v1/functions/:name/deploy',
      {
        schema: {
          summary: 'Deploy code (a .js/.ts file, a .zip or .tgz of a directory with package.json) or, to the container tiers, an OCI image',
          description: 'Body is the raw upload. An OCI image layout or `docker save` tarball is sent as application/vnd.oci.image.layout.v1+tar or application/x-tar to a function on tier container or gvisor. Optional header Continuum-Config carries a FunctionConfigInput as JSON. Creates the function if missing.',
          params: S.NameParams,
          querystring: S.DeployQuery,
          response: { 201: { type: 'object', properties: { function: S.FunctionView, version: S.VersionView } }, ...errors },
        },
      },
      async (req, reply) => {
        const header = req.headers['continuum-config'];
        let config: FunctionConfigInput | undefined;
        if (header !== undefined) {
          if (typeof header !== 'string') throw new ContinuumError('bad_request', 'Continuum-Config must be given once');
          config = validate(FunctionConfigInputSchema, parseJsonBounded(header, NODE_DEFAULTS.maxJsonDepth), 'Continuum-Config');
        }
        if (isImageType(req.headers['content-type'])) {
          return reply.code(201).send(await service.deployImage(req.params.name, req.body as unknown as AsyncIterable<Uint8Array>, config));
        }
        if (!Buffer.isBuffer(req.body) || req.body.length === 0) throw new ContinuumError('bad_bundle', 'the upload is empty');
        const result = await service.deploy(
          req.params.name,
          { bytes: req.body, ...(req.query.filename ? { filename: req.query.filename } : {}), ...(req.headers['content-type'] ? { contentType: req.headers['content-type'] } : {}) },
          config,
        );
        return reply.code(201).send(result);
      },
    );
  });

  app.get<{ Params: { name: string } }>(
    '/v1/functions/:name/versions',
    { schema: { summary: 'List versions, newest first', params: S.NameParams, response: { 200: S.Items(S.VersionView), ...errors } } },
    async (req) => ({ items: await service.versions(req.params.name) }),
  );

  app.get<{ Params: { name: string; id: string } }>(
    '/v1/functions/:name/versions/:id',
    { schema: { summary: 'Get a version', params: S.VersionParams, response: { 200: S.VersionView, ...errors } } },
    async (req) => service.version(req.params.name, req.params.id),
  );

  app.delete<{ Params: { name: string } }>(
    '/v1/functions/:name/instances',
    { schema: { summary: 'Scale to zero now (compiled code stays cached)', params: S.NameParams, response: { 200: { type: 'object', properties: { evicted: { type: 'integer' } } }, ...errors } } },
    async (req) => ({ evicted: await service.evict(req.params.name) }),
  );

  await app.register(async (scope) => {
    // The body is the function's, streamed unparsed.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined));
    scope.post<{ Params: { name: string } }>(
      '/v1/functions/:name/invoke',
      {
        schema: {
          summary: 'Invoke synchronously, or asynchronously (202 with an invocation id once durable)',
          description:
            'Sync: the request body is the payload (Lambda and OpenWhisk handlers get it as their event, fetch handlers as a POST to /); the response is the function response. ' +
            'Async: header `X-Amz-Invocation-Type: Event` or `Continuum-Invocation-Type: async` (or `?mode=async`); optional `Idempotency-Key` (a repeat within 24 h returns the first id; another payload with the same key is a conflict). ' +
            'Status and result: GET /v1/invocations/{id}.',
          params: S.NameParams,
          querystring: S.InvokeQuery,
        },
      },
      async (req, reply) => {
        // Loaded before hijacking, so an unknown function is still answered as a normal API error.
        const fn = await service.get(req.params.name);
        if (isAsyncInvoke(req.headers, (req.query as { mode?: string }).mode)) {
          const body = await readBounded(req.raw, EVENT_DEFAULTS.queue.maxMessageBytes);
          const accepted = await submitAsyncInvoke(opts.events, fn.name, req.headers, body);
          return reply
            .code(202)
            .header('x-continuum-invocation-id', accepted.invocationId)
            .header('location', `/v1/invocations/${accepted.invocationId}`)
            .send(accepted);
        }
        reply.hijack();
        await opts.invoke(req.raw, reply.raw, fn);
      },
    );
  });

  app.get<{ Querystring: S.InvocationsQueryType }>(
    '/v1/invocations',
    { schema: { summary: 'List invocation records, newest first (started time, then arrival), a page at a time', querystring: S.InvocationsQuery, response: { 200: { type: 'object', properties: { items: { type: 'array', items: S.InvocationView }, nextCursor: { type: ['string', 'null'] } } }, ...errors } } },
    async (req) => {
      const q = req.query;
      return service.invocations({
        limit: Number(q.limit ?? 50),
        ...(q.function ? { functionName: q.function } : {}),
        ...(q.outcome ? { outcome: q.outcome } : {}),
        ...(q.errorCode ? { errorCode: q.errorCode } : {}),
        ...(q.coldStart ? { coldStart: q.coldStart === 'true' } : {}),
        ...(q.tier ? { tier: q.tier } : {}),
        ...(q.since !== undefined ? { sinceMs: parseTime(q.since, 'since') } : {}),
        ...(q.until !== undefined ? { untilMs: parseTime(q.until, 'until') } : {}),
        ...(q.cursor ? { cursor: q.cursor } : {}),
      });
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/invocations/:id',
    {
      schema: {
        summary: 'Get an invocation: an execution record, or the state and result of an async invocation',
        params: S.InvocationParams,
        response: { 200: Type.Union([S.InvocationView, S.AsyncStatusView]), ...errors },
      },
    },
    async (req) => {
      const status = await opts.events.status(req.params.id);
      if (status) return asyncStatusView(status);
      return service.invocation(req.params.id);
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/invocations/:id/logs',
    { schema: { summary: 'Log lines of one invocation', params: S.InvocationParams, response: { 200: S.Items(S.LogLineView), ...errors } } },
    async (req) => ({ items: await service.logs({ invocationId: req.params.id, limit: 10_000 }) }),
  );

  // Live log streams end with a last event when the node shuts down, so a client can tell it from a network
  // failure (and the server's close does not wait on them).
  const streams = new Set<http.ServerResponse>();
  app.addHook('preClose', async () => {
    for (const res of streams) res.end('event: end\ndata: {}\n\n');
  });

  app.get<{ Querystring: S.LogsQueryType }>(
    '/v1/logs',
    {
      schema: {
        summary: 'Log lines as NDJSON; follow=1 streams them as server-sent events (backlog, then live lines)',
        description:
          'Filters: function, invocation, q (literal text, ASCII case-insensitive), since/until (epoch ms or RFC 3339). ' +
          'With follow=1 the response is text/event-stream: each line is an event `log` whose data is the JSON line; comments (`: keep-alive`) are sent while idle.',
        querystring: S.LogsQuery,
        produces: ['application/x-ndjson', 'text/event-stream'],
      },
    },
    async (req, reply) => {
      const q = req.query;
      const follow = q.follow === '1' || q.follow === 'true';
      const since = q.since !== undefined ? parseTime(q.since, 'since') : undefined;
      const until = q.until !== undefined ? parseTime(q.until, 'until') : undefined;
      const needle = q.q?.toLowerCase();
      const matches = (line: LogLine) =>
        (!q.function || line.functionName === q.function) &&
        (!q.invocation || line.invocationId === q.invocation) &&
        (!needle || asciiLower(line.message).includes(needle)) &&
        (since === undefined || line.ts >= since) &&
        (until === undefined || line.ts < until);
      // Subscribe before reading the backlog so no line falls between the two.
      const live: LogLine[] = [];
      let push: ((line: LogLine) => void) | null = null;
      const unsubscribe = follow ? opts.followLogs((line) => matches(line) && (push ? push(line) : live.push(line))) : () => {};
      let backlog;
      try {
        backlog = await service.logs({
          limit: Number(q.limit ?? (follow ? 100 : 1000)),
          ...(q.function ? { functionName: q.function } : {}),
          ...(q.invocation ? { invocationId: q.invocation } : {}),
          ...(q.q ? { text: q.q } : {}),
          ...(since !== undefined ? { sinceTs: since } : {}),
          ...(until !== undefined ? { untilTs: until } : {}),
          ...(q.after ? { afterSeq: Number(q.after) } : {}),
        });
      } catch (err) {
        unsubscribe();
        throw err;
      }
      reply.hijack();
      const res = reply.raw;
      if (!follow) {
        res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
        for (const line of backlog) res.write(JSON.stringify(line) + '\n');
        res.end();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
      // One JSON line per event (JSON has no raw newlines, so one `data:` field suffices); stored lines carry their seq as the id.
      // A client that reads slower than lines arrive is cut off rather than buffered without bound.
      const send = (line: LogLine & { seq?: number }) => {
        if (res.writableLength > NODE_DEFAULTS.logs.maxBufferedBytes) {
          res.destroy();
          return;
        }
        res.write(`${line.seq !== undefined ? `id: ${line.seq}\n` : ''}event: log\ndata: ${JSON.stringify(line)}\n\n`);
      };
      res.write(': stream open\n\n');
      for (const line of backlog) send(line);
      const seen = new Set(backlog.map((l) => `${l.invocationId}:${l.ts}:${l.message}`));
      push = send;
      for (const line of live) if (!seen.has(`${line.invocationId}:${line.ts}:${line.message}`)) push(line);
      const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), opts.logHeartbeatMs ?? NODE_DEFAULTS.logs.heartbeatMs);
      const stop = () => {
        clearInterval(heartbeat);
        unsubscribe();
      };
      streams.add(res);
      res.on('close', () => {
        streams.delete(res);
        stop();
      });
    },
  );

  await registerEventRoutes(app, opts.events, service, errors);
  if (opts.consoleDir) await registerConsole(app, opts.consoleDir);

  return app;
}

/** Epoch milliseconds or an RFC 3339 time (the schema has checked the form) → epoch ms. */
function parseTime(value: string, name: string): number {
  const ms = /^[0-9]+$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isFinite(ms)) throw new ContinuumError('bad_request', `${name} must be epoch milliseconds or an RFC 3339 time`, { pointer: `/querystring/${name}` });
  return ms;
}

/** Lower-cases ASCII only, as the store's LIKE does, so live and stored lines match the same way. */
function asciiLower(text: string): string {
  return text.replace(/[A-Z]+/g, (c) => c.toLowerCase());
}

function isAsyncInvoke(headers: http.IncomingHttpHeaders, mode: string | undefined): boolean {
  const amz = headers['x-amz-invocation-type'];
  const ours = headers['continuum-invocation-type'];
  if (typeof amz === 'string' && amz !== 'Event' && amz !== 'RequestResponse') {
    throw new ContinuumError('bad_request', 'X-Amz-Invocation-Type must be Event or RequestResponse');
  }
  if (typeof ours === 'string' && ours !== 'async' && ours !== 'sync') throw new ContinuumError('bad_request', 'Continuum-Invocation-Type must be async or sync');
  return amz === 'Event' || ours === 'async' || mode === 'async';
}

/** Read a whole request body, refusing it past `max` bytes. */
async function readBounded(req: http.IncomingMessage, max: number): Promise<Uint8Array> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > max) throw new ContinuumError('payload_too_large', `async payloads are limited to ${max} bytes`, { limit: max });
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > max) throw new ContinuumError('payload_too_large', `async payloads are limited to ${max} bytes`, { limit: max });
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Close connections beyond the per-address cap at once, before they can hold a parser slot. */
function limitConnectionsPerAddress(server: http.Server, max: number): void {
  const open = new Map<string, number>();
  server.on('connection', (socket) => {
    const address = socket.remoteAddress ?? '';
    const count = (open.get(address) ?? 0) + 1;
    if (count > max) {
      socket.destroy();
      return;
    }
    open.set(address, count);
    socket.once('close', () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left === 0) open.delete(address);
      else open.set(address, left);
    });
  });
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function toApiError(err: FastifyError | ContinuumError): ContinuumError {
  if (err instanceof ContinuumError) return err;
  const fe = err as FastifyError;
  if (fe.validation && fe.validation.length > 0) {
    const first = fe.validation[0]!;
    const extra = (first.params as { additionalProperty?: string } | undefined)?.additionalProperty;
    const pointer = `/${fe.validationContext ?? 'body'}${first.instancePath ?? ''}${extra ? `/${extra}` : ''}`;
    const isName = (fe.validationContext === 'params' || fe.validationContext === 'body') && /^\/name$/.test(first.instancePath ?? '') && first.keyword === 'pattern';
    const message = extra ? 'is not a known field' : (first.message ?? 'is invalid');
    return new ContinuumError(isName ? 'bad_name' : 'bad_request', `${pointer} ${message}`, { pointer });
  }
  switch (fe.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ContinuumError('payload_too_large', 'request body exceeds the size limit');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ContinuumError('unsupported_media_type', `unsupported content type; use ${['application/json', ...UPLOAD_TYPES].join(', ')}`);
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new ContinuumError('bad_request', fe.message);
  }
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    const code: ErrorCode = fe.statusCode === 404 ? 'not_found' : fe.statusCode === 405 ? 'method_not_allowed' : fe.statusCode === 413 ? 'payload_too_large' : fe.statusCode === 415 ? 'unsupported_media_type' : 'bad_request';
    return new ContinuumError(code, fe.message);
  }
  return new ContinuumError('internal', 'internal error', undefined, { cause: err });
}

function sendApiError(reply: FastifyReply, err: ContinuumError): FastifyReply {
  return reply.code(ERROR_CODES[err.code].status).type('application/json').send(errorBody(err.code, err.message, err.details));
}

