/**
 * The HTTP server inside a Continuum function image (`continuum image build`): the process tier's Node
 * engine (src/runtime/process/agent.ts) behind plain HTTP on `$PORT`, the Knative / Cloud Run contract, so
 * the image runs on the container and gvisor tiers and under any OCI runtime.
 *
 * - `/fn/index.js` is the bundle, `/fn/continuum.json` its load options (format, export, limits);
 * - the function's variables are the environment variables named in `CONTINUUM_ENV_KEYS` (comma-separated);
 *   under a bare runtime, set them with the runtime's own environment;
 * - started without `/fn/continuum.json` (a node's spare container), it waits for its function: the node
 *   writes the bundle and POSTs the settings (load.ts);
 * - a request is an invocation; Continuum's extras travel in headers: `x-continuum-url` (the URL the
 *   function sees), `x-continuum-event` (JSON event head for queue/cron/async invocations);
 * - answers carry the function's response; Continuum-aware callers read, from the trailers (or headers
 *   when the function failed before answering), `x-continuum-error` (code) and `x-continuum-logs`
 *   (base64 JSON of the invocation's console output, capped at logBytes). A failure before the response
 *   head is a 500 with `x-continuum-error`.
 * - bindings (`env.ORDERS.send`, `env.USERS.fetch`) go to the node through its host channel
 *   (host-channel.ts), when the node gave the container one.
 * Imports nothing from the host side.
 */
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import type { WireEventHead, WireLoadOptions, WireRequestHead } from '../isolate/protocol.ts';
import { createAgentEngine, BUNDLE_DIR } from '../process/agent.ts';
import {
  HOST_ENV,
  INVOCATION_HEADER,
  queueSendPath,
  serviceCallPath,
  type WireChannelError,
  type WireQueueSend,
  type WireQueueSent,
  type WireServiceAnswer,
  type WireServiceCall,
} from './host-channel.ts';
import { LOAD_PATH, parseContainerLoad, settingsEnvironment, settingsFromEnvironment, type WireContainerLoad } from './load.ts';

interface ImageLoad extends WireLoadOptions {
  logBytes: number;
}

interface Pending {
  res: ServerResponse;
  logs: Array<{ ts: number; level: string; message: string }>;
  logBytes: number;
  truncated: boolean;
  headSent: boolean;
  /** The node's id of this invocation (the channel names the caller by it). */
  invocationId: string | null;
}

/** A POST of `body` to the node's host channel; resolves with the answer's JSON, rejects with `{ code }` errors. */
function callHost<T>(socketPath: string | undefined, path: string, invocationId: string | null, body: object): Promise<T> {
  if (!socketPath) return Promise.reject(Object.assign(new Error('bindings need the node: this container has no host channel'), { code: 'unavailable' }));
  return new Promise<T>((resolve, reject) => {
    const bytes = Buffer.from(JSON.stringify(body));
    const req = httpRequest(
      { socketPath, method: 'POST', path, headers: { 'content-type': 'application/json', 'content-length': bytes.length, ...(invocationId ? { [INVOCATION_HEADER]: invocationId } : {}) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          let json: unknown;
          try {
            json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            reject(Object.assign(new Error('the host channel answered something that is not JSON'), { code: 'internal' }));
            return;
          }
          if (res.statusCode === 200) resolve(json as T);
          else {
            const e = (json as Partial<WireChannelError>).error;
            reject(Object.assign(new Error(String(e?.message ?? `host channel status ${res.statusCode}`)), { code: String(e?.code ?? 'internal') }));
          }
        });
      },
    );
    req.on('error', (err) => reject(Object.assign(new Error(`the host channel failed: ${err.message}`), { code: 'unavailable' })));
    req.end(bytes);
  });
}

const TRAILERS = 'x-continuum-error, x-continuum-logs';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
type AgentEngine = ReturnType<typeof createAgentEngine>;

/**
 * Loads the bundle at /fn with the function's settings (throws when it does not load) and returns the
 * request handler. `hostSocket`: the node's host channel, when it made one.
 */
function functionHandler(engine: AgentEngine, settings: WireContainerLoad, hostSocket: string | undefined): Handler {
  const load = JSON.parse(readFileSync(`${BUNDLE_DIR}/continuum.json`, 'utf8')) as ImageLoad;
  const pending = new Map<string, Pending>();
  let seq = 0;

  const logsValue = (p: Pending) => Buffer.from(JSON.stringify({ logs: p.logs, truncated: p.truncated })).toString('base64');

  const sandbox = engine.createSandbox({
    code: '',
    load: { ...load, env: settings.env, bindings: settings.queues, services: settings.services },
    callbacks: {
      onRespond(id, head) {
        const p = pending.get(id);
        if (!p) return;
        p.headSent = true;
        // The body is re-framed (chunked, with trailers): the function's own length does not apply.
        const headers = head.headers.filter(([k]) => !['content-length', 'transfer-encoding', 'trailer', 'connection'].includes(k.toLowerCase()));
        p.res.writeHead(head.status, [...headers.flat(), 'trailer', TRAILERS]);
        p.res.flushHeaders();
      },
      onChunk(id, bytes) {
        pending.get(id)?.res.write(bytes);
      },
      onFinish(id, error) {
        const p = pending.get(id);
        if (!p) return;
        pending.delete(id);
        if (!p.headSent) {
          const body = JSON.stringify({ error: error ?? { code: 'function_error', message: 'no response' } });
          p.res.writeHead(500, { 'content-type': 'application/json', 'x-continuum-error': error?.code ?? 'function_error', 'x-continuum-logs': logsValue(p) });
          p.res.end(body);
          return;
        }
        const trailers: Record<string, string> = { 'x-continuum-logs': logsValue(p) };
        if (error) trailers['x-continuum-error'] = error.code;
        p.res.addTrailers(trailers);
        p.res.end();
      },
      onLog(id, level, message) {
        const p = pending.get(id);
        if (!p) return;
        const size = Buffer.byteLength(message);
        if (p.logBytes + size > load.logBytes) {
          p.truncated = true;
          return;
        }
        p.logBytes += size;
        p.logs.push({ ts: Date.now(), level, message });
      },
      async onQueueSend(id, binding, messages) {
        const body: WireQueueSend = {
          messages: messages.map((m) => ({ body: Buffer.from(m.body).toString('base64'), contentType: m.contentType, ...(m.delayMs !== undefined ? { delayMs: m.delayMs } : {}) })),
        };
        return (await callHost<WireQueueSent>(hostSocket, queueSendPath(binding), pending.get(id)?.invocationId ?? null, body)).ids;
      },
      async onServiceFetch(id, binding, request) {
        const body: WireServiceCall = { method: request.method, url: request.url, headers: request.headers, body: request.body === null ? null : Buffer.from(request.body).toString('base64') };
        const answer = await callHost<WireServiceAnswer>(hostSocket, serviceCallPath(binding), pending.get(id)?.invocationId ?? null, body);
        return { status: answer.status, headers: answer.headers, body: new Uint8Array(Buffer.from(answer.body, 'base64')) };
      },
    },
  });

  return (req, res) => {
    const id = `i${++seq}`;
    const headers: Array<[string, string]> = [];
    let url = `http://${req.headers.host ?? 'localhost'}${req.url ?? '/'}`;
    let event: WireEventHead | undefined;
    let invocationId: string | null = null;
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const name = req.rawHeaders[i]!;
      const value = req.rawHeaders[i + 1]!;
      const lower = name.toLowerCase();
      if (lower === 'x-continuum-url') url = value;
      else if (lower === 'x-continuum-event') event = JSON.parse(value) as WireEventHead;
      else if (lower === INVOCATION_HEADER) invocationId = value;
      else headers.push([name, value]);
    }
    const head: WireRequestHead = { method: req.method ?? 'GET', url, headers, clientIp: req.socket.remoteAddress };
    if (event) head.event = event;
    const hasBody = req.headers['content-length'] !== undefined ? req.headers['content-length'] !== '0' : req.headers['transfer-encoding'] !== undefined;
    pending.set(id, { res, logs: [], logBytes: 0, truncated: false, headSent: false, invocationId });
    res.on('close', () => {
      if (pending.delete(id)) sandbox.abort(id, 'the caller went away');
    });
    sandbox.dispatch(id, head, hasBody);
    if (hasBody) {
      req.on('data', (chunk: Buffer) => sandbox.push(id, chunk));
      req.on('end', () => sandbox.push(id, null));
    }
  };
}

/** A spare's one request before its function: the load (load.ts). A bundle that does not load ends the container. */
function loadRequest(engine: AgentEngine, req: IncomingMessage, res: ServerResponse, loaded: (handler: Handler) => void): void {
  const answer = (status: number, body: object) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  if (req.method !== 'POST' || req.url !== LOAD_PATH) return void answer(503, { error: { code: 'unavailable', message: 'no function is loaded here yet' } });
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      body = null;
    }
    const settings = parseContainerLoad(body);
    if (typeof settings === 'string') return void answer(400, { error: { code: 'bad_request', message: settings } });
    // The environment a container started with its function has: images may speak to the host channel themselves.
    // eslint-disable-next-line no-restricted-properties -- the function's own environment, as a cold start would have it
    const env = Object.assign(process.env, settingsEnvironment(settings));
    try {
      loaded(functionHandler(engine, settings, env[HOST_ENV.socket]));
    } catch (err) {
      // The agent holds one instance, loaded or not: this container is spent.
      answer(500, { error: { code: 'bad_bundle', message: String((err as Error)?.message ?? err).slice(0, 2000) } });
      res.on('finish', () => process.exit(1));
      return;
    }
    answer(200, { loaded: true });
  });
}

function main(): void {
  // eslint-disable-next-line no-restricted-properties -- the image's entry point: $PORT and the function's variables come from the runtime
  const env = process.env;
  const port = Number(env.PORT ?? '8080');
  // Made first: a spare warms the engine (Node's fetch) while it waits for its function.
  const engine = createAgentEngine();
  let handler: Handler | null = existsSync(`${BUNDLE_DIR}/continuum.json`) ? functionHandler(engine, settingsFromEnvironment(env), env[HOST_ENV.socket]) : null;
  const server = createServer({ keepAliveTimeout: 60_000, requestTimeout: 0, headersTimeout: 60_000 }, (req, res) => {
    if (handler) handler(req, res);
    else loadRequest(engine, req, res, (h) => (handler = h));
  });
  server.listen(port, '0.0.0.0');
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}

main();
