/**
 * HTTP ingress for function traffic. Hot path: no store reads, no body parsing; the request body streams
 * into the instance (capped) and the response body streams back with backpressure.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ContinuumError, ERROR_CODES, errorBody, type ErrorCode } from '../core/errors.ts';
import { uuidv7 } from '../core/ids.ts';
import type { EventHead, InvokeRequest } from '../core/driver.ts';
import type { Trigger } from '../core/types.ts';
import type { Scheduler } from '../scheduler/scheduler.ts';
import type { RoutingTable } from './router.ts';

/** Headers that describe one hop's connection and must not be forwarded. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer']);

export interface IngressOptions {
  scheduler: Scheduler;
  routes: () => RoutingTable;
}

export type Ingress = (req: IncomingMessage, res: ServerResponse) => boolean;

/** Returns a handler that serves function routes and returns false for anything else. */
export function createIngress(opts: IngressOptions): Ingress {
  return (req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const pathname = q === -1 ? url : url.slice(0, q);
    const match = opts.routes().match(req.method ?? 'GET', req.headers.host ?? '', pathname);
    if (!match) return false;
    if (match.kind === 'method_not_allowed') {
      res.setHeader('allow', match.allowed.join(', '));
      sendError(res, 'method_not_allowed', `this route accepts ${match.allowed.join(', ')}`);
      return true;
    }
    const query = q === -1 ? '' : url.slice(q);
    void invokeHttp(opts.scheduler, req, res, match.target.functionName, match.path + query, match.target.requestBodyBytes, 'http');
    return true;
  };
}

/** Invoke a function with an incoming HTTP request and write its response; used by ingress and the API. */
export async function invokeHttp(
  scheduler: Scheduler,
  req: IncomingMessage,
  res: ServerResponse,
  functionName: string,
  pathAndQuery: string,
  maxBodyBytes: number,
  trigger: Trigger,
  method = req.method ?? 'GET',
  event?: EventHead,
): Promise<void> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > maxBodyBytes) {
    sendError(res, 'payload_too_large', `request body of ${declared} bytes exceeds the limit of ${maxBodyBytes} bytes`, maxBodyBytes);
    req.resume();
    return;
  }
  const hasBody = declared !== undefined ? Number(declared) > 0 : req.headers['transfer-encoding'] !== undefined;
  const invocationId = uuidv7();
  const headers: Array<[string, string]> = [];
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) headers.push([raw[i]!, raw[i + 1]!]);
  const traceparent = req.headers.traceparent;
  const request: InvokeRequest = {
    kind: 'http',
    invocationId,
    request: { method, url: `http://${req.headers.host ?? 'localhost'}${pathAndQuery}`, headers, ...(event ? { event } : {}) },
    body: hasBody ? cappedBody(req, maxBodyBytes) : null,
    ...(typeof traceparent === 'string' ? { traceparent } : {}),
  };
  const { result, retryAfterSeconds } = await scheduler.invoke(functionName, request, trigger);
  if (result.kind === 'error') {
    const err = result.completion.error ?? { code: 'internal' as const, message: 'internal error' };
    if (retryAfterSeconds !== undefined) res.setHeader('retry-after', String(retryAfterSeconds));
    res.setHeader('x-continuum-invocation-id', invocationId);
    sendError(res, err.code, err.message);
    if (!req.complete) req.resume();
    return;
  }
  const out: string[] = ['x-continuum-invocation-id', invocationId];
  // A body that arrived in full goes out with its true Content-Length (whatever the function claimed);
  // otherwise it streams, chunked.
  const whole = result.takeWholeBody?.();
  const sized = whole !== undefined && whole !== null && method !== 'HEAD' && bodyAllowed(result.status);
  for (const [name, value] of result.headers) {
    const lower = name.toLowerCase();
    if (!HOP_BY_HOP.has(lower) && !(sized && lower === 'content-length')) out.push(name, value);
  }
  if (whole) {
    const body = whole.length === 1 ? whole[0]! : Buffer.concat(whole);
    if (sized) out.push('content-length', String(body.length));
    res.writeHead(result.status, out).end(body);
    return;
  }
  // A streamed body must match a Content-Length the function declared; a mismatch cuts the connection.
  res.strictContentLength = true;
  try {
    res.writeHead(result.status, out);
    for await (const chunk of result.body) {
      if (!res.write(chunk)) await waitForDrain(res);
    }
    res.end();
  } catch {
    // The function's body failed mid-stream (limit hit, instance died) or the client left: the status
    // line is already sent, so the only honest signal left is to cut the connection.
    res.destroy();
  }
}

/** Statuses that carry no body, so no Content-Length either (RFC 9110 §8.6). */
function bodyAllowed(status: number): boolean {
  return status >= 200 && status !== 204 && status !== 304;
}

function sendError(res: ServerResponse, code: ErrorCode, message: string, limit?: number): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(errorBody(code, message, limit === undefined ? undefined : { limit }));
  res.writeHead(ERROR_CODES[code].status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

async function* cappedBody(req: IncomingMessage, maxBytes: number): AsyncIterable<Uint8Array> {
  let total = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > maxBytes) {
      throw new ContinuumError('payload_too_large', `request body exceeds the limit of ${maxBytes} bytes`, { limit: maxBytes });
    }
    yield chunk;
  }
}

/** Resolves when `res` can take more, rejects when its client is gone (already, or while waiting). */
function waitForDrain(res: ServerResponse): Promise<void> {
  // A write to a response whose connection has closed returns false, and 'close' will not come again.
  if (res.destroyed) return Promise.reject(new Error('client closed'));
  return new Promise((resolve, reject) => {
    const onDrain = () => {
      res.off('close', onClose);
      resolve();
    };
    const onClose = () => {
      res.off('drain', onDrain);
      reject(new Error('client closed'));
    };
    res.once('drain', onDrain);
    res.once('close', onClose);
  });
}
