/**
 * The HTTP server inside a Continuum function image (`continuum image build`): the process tier's Node
 * engine (src/runtime/process/agent.ts) behind plain HTTP on `$PORT`, the Knative / Cloud Run contract, so
 * the image runs on the container and gvisor tiers and under any OCI runtime.
 *
 * - `/fn/index.js` is the bundle, `/fn/continuum.json` its load options (format, export, limits);
 * - the function's variables are the environment variables named in `CONTINUUM_ENV_KEYS` (comma-separated);
 *   under a bare runtime, set them with the runtime's own environment;
 * - a request is an invocation; Continuum's extras travel in headers: `x-continuum-url` (the URL the
 *   function sees), `x-continuum-event` (JSON event head for queue/cron/async invocations);
 * - answers carry the function's response; Continuum-aware callers read, from the trailers (or headers
 *   when the function failed before answering), `x-continuum-error` (code) and `x-continuum-logs`
 *   (base64 JSON of the invocation's console output, capped at logBytes). A failure before the response
 *   head is a 500 with `x-continuum-error`.
 * Imports nothing from the host side.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import type { WireEventHead, WireLoadOptions, WireRequestHead } from '../isolate/protocol.ts';
import { createAgentEngine, BUNDLE_DIR } from '../process/agent.ts';

interface ImageLoad extends WireLoadOptions {
  logBytes: number;
}

interface Pending {
  res: ServerResponse;
  logs: Array<{ ts: number; level: string; message: string }>;
  logBytes: number;
  truncated: boolean;
  headSent: boolean;
}

const TRAILERS = 'x-continuum-error, x-continuum-logs';

function main(): void {
  // eslint-disable-next-line no-restricted-properties -- the image's entry point: $PORT and the function's variables come from the runtime
  const env = process.env;
  const port = Number(env.PORT ?? '8080');
  const load = JSON.parse(readFileSync(`${BUNDLE_DIR}/continuum.json`, 'utf8')) as ImageLoad;
  const vars: Record<string, string> = {};
  for (const key of (env.CONTINUUM_ENV_KEYS ?? '').split(',')) if (key !== '' && env[key] !== undefined) vars[key] = env[key];
  const pending = new Map<string, Pending>();
  let seq = 0;

  const logsValue = (p: Pending) => Buffer.from(JSON.stringify({ logs: p.logs, truncated: p.truncated })).toString('base64');

  const sandbox = createAgentEngine().createSandbox({
    code: '',
    load: { ...load, env: vars, bindings: [] },
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
      onQueueSend() {
        return Promise.reject(new Error('queue bindings are not available on this tier'));
      },
    },
  });

  const server = createServer({ keepAliveTimeout: 60_000, requestTimeout: 0, headersTimeout: 60_000 }, (req: IncomingMessage, res: ServerResponse) => {
    const id = `i${++seq}`;
    const headers: Array<[string, string]> = [];
    let url = `http://${req.headers.host ?? 'localhost'}${req.url ?? '/'}`;
    let event: WireEventHead | undefined;
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const name = req.rawHeaders[i]!;
      const value = req.rawHeaders[i + 1]!;
      const lower = name.toLowerCase();
      if (lower === 'x-continuum-url') url = value;
      else if (lower === 'x-continuum-event') event = JSON.parse(value) as WireEventHead;
      else headers.push([name, value]);
    }
    const head: WireRequestHead = { method: req.method ?? 'GET', url, headers, clientIp: req.socket.remoteAddress };
    if (event) head.event = event;
    const hasBody = req.headers['content-length'] !== undefined ? req.headers['content-length'] !== '0' : req.headers['transfer-encoding'] !== undefined;
    pending.set(id, { res, logs: [], logBytes: 0, truncated: false, headSent: false });
    res.on('close', () => {
      if (pending.delete(id)) sandbox.abort(id, 'the caller went away');
    });
    sandbox.dispatch(id, head, hasBody);
    if (hasBody) {
      req.on('data', (chunk: Buffer) => sandbox.push(id, chunk));
      req.on('end', () => sandbox.push(id, null));
    }
  });
  server.listen(port, '0.0.0.0');
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}

main();
