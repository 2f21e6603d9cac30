/**
 * The node's end of a container's channel back to it (`src/runtime/container/host-channel.ts` has the
 * protocol): an HTTP server on a unix socket of the instance's own, owned by the container's uid (mode
 * 0600), taking queue sends and service calls and handing them to the instance, which resolves the
 * binding through its spec. Requests are bounded, checked as untrusted input, and refused with a registry
 * code; a malformed one never reaches a queue or a function.
 */
import { chmodSync, chownSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { EVENT_DEFAULTS } from '../../core/defaults.ts';
import type { BindingMessage, ServiceRequest, ServiceResponse } from '../../core/driver.ts';
import { ContinuumError, toContinuumError } from '../../core/errors.ts';
import {
  INVOCATION_HEADER,
  type WireChannelError,
  type WireQueueSent,
  type WireServiceAnswer,
} from '../../runtime/container/host-channel.ts';
import { checkQueueSend } from '../isolate/bindings.ts';

export interface HostChannelHandlers {
  sendToQueue(invocationId: string | null, binding: string, messages: BindingMessage[]): Promise<string[]>;
  callService(invocationId: string | null, binding: string, request: ServiceRequest): Promise<ServiceResponse>;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const METHOD = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,32}$/;
const BINDING = /^[A-Z][A-Z0-9_]{0,63}$/;
/** Room for the JSON around the base64 bodies. */
const ENVELOPE_BYTES = 64 * 1024;
const QUEUE_SEND_BYTES = Math.ceil((EVENT_DEFAULTS.queue.maxSendBatch * EVENT_DEFAULTS.queue.maxMessageBytes * 4) / 3) + ENVELOPE_BYTES;

const bad = (message: string) => new ContinuumError('bad_request', message);

function base64(value: unknown, what: string): Uint8Array {
  if (typeof value !== 'string' || value.length % 4 !== 0 || !BASE64.test(value)) throw bad(`${what} must be base64`);
  return new Uint8Array(Buffer.from(value, 'base64'));
}

function record(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad(`${what} must be an object`);
  return value as Record<string, unknown>;
}

export function parseQueueSend(json: unknown): BindingMessage[] {
  const messages = record(json, 'the body').messages;
  if (!Array.isArray(messages)) throw bad('messages must be an array');
  const out = messages.map((raw, i): BindingMessage => {
    const m = record(raw, `message ${i}`);
    if (typeof m.contentType !== 'string') throw bad(`message ${i}: contentType must be a string`);
    const message: BindingMessage = { body: base64(m.body, `message ${i}: body`), contentType: m.contentType };
    if (m.delayMs !== undefined) {
      if (typeof m.delayMs !== 'number') throw bad(`message ${i}: delayMs must be a number`);
      message.delayMs = m.delayMs;
    }
    return message;
  });
  checkQueueSend(out);
  return out;
}

/** `maxBodyBytes`: the calling function's request body limit (a call's body is a request it makes). */
export function parseServiceCall(json: unknown, maxBodyBytes: number): ServiceRequest {
  const c = record(json, 'the body');
  if (typeof c.method !== 'string' || !METHOD.test(c.method)) throw bad('method must be an HTTP method');
  if (typeof c.url !== 'string' || !URL.canParse(c.url)) throw bad('url must be an absolute URL');
  if (!Array.isArray(c.headers) || !c.headers.every((h) => Array.isArray(h) && h.length === 2 && typeof h[0] === 'string' && typeof h[1] === 'string')) {
    throw bad('headers must be a list of [name, value] strings');
  }
  const body = c.body === null || c.body === undefined ? null : base64(c.body, 'body');
  if (body && body.byteLength > maxBodyBytes) throw new ContinuumError('payload_too_large', `the call's body exceeds ${maxBodyBytes} bytes`, { limit: maxBodyBytes });
  return { method: c.method, url: c.url, headers: c.headers as Array<[string, string]>, body };
}

/** The body as JSON, refused past `cap` bytes (payload_too_large) or when it does not parse (bad_request). */
async function readJson(req: IncomingMessage, cap: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > cap) throw new ContinuumError('payload_too_large', `the request exceeds ${cap} bytes`, { limit: cap });
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw bad('the body is not JSON');
  }
}

export class HostChannel {
  readonly #server: Server;

  private constructor(server: Server) {
    this.#server = server;
  }

  /** Listens on `socketPath`, which only `uid` may connect to. `serviceBodyBytes`: the largest service-call body. */
  static async open(socketPath: string, uid: number, handlers: HostChannelHandlers, serviceBodyBytes: number): Promise<HostChannel> {
    const server = createServer({ requestTimeout: 60_000 }, (req, res) => void HostChannel.#handle(req, res, handlers, serviceBodyBytes));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve());
    });
    chownSync(socketPath, uid, uid);
    chmodSync(socketPath, 0o600);
    return new HostChannel(server);
  }

  static async #handle(req: IncomingMessage, res: ServerResponse, handlers: HostChannelHandlers, serviceBodyBytes: number): Promise<void> {
    const answer = (status: number, body: WireQueueSent | WireServiceAnswer | WireChannelError) => {
      const bytes = Buffer.from(JSON.stringify(body));
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': bytes.length });
      res.end(bytes);
    };
    try {
      const invocation = req.headers[INVOCATION_HEADER];
      const invocationId = typeof invocation === 'string' && invocation !== '' ? invocation : null;
      const [, v1, kind, binding, ...rest] = (req.url ?? '').split('/');
      if (v1 !== 'v1' || rest.length > 0 || binding === undefined || !BINDING.test(binding) || (kind !== 'queues' && kind !== 'services')) {
        throw new ContinuumError('not_found', `no such route: ${String(req.url).slice(0, 100)}`);
      }
      if (req.method !== 'POST') throw new ContinuumError('method_not_allowed', 'the channel takes POST');
      if (kind === 'queues') {
        const ids = await handlers.sendToQueue(invocationId, binding, parseQueueSend(await readJson(req, QUEUE_SEND_BYTES)));
        answer(200, { ids });
        return;
      }
      const call = parseServiceCall(await readJson(req, Math.ceil((serviceBodyBytes * 4) / 3) + ENVELOPE_BYTES), serviceBodyBytes);
      const r = await handlers.callService(invocationId, binding, call);
      answer(200, { status: r.status, headers: r.headers, body: Buffer.from(r.body.buffer, r.body.byteOffset, r.body.byteLength).toString('base64') });
    } catch (err) {
      const e = toContinuumError(err);
      if (!res.headersSent) answer(e.status, { error: { code: e.code, message: e.message } });
      // A body not read to its end (over its cap) leaves the connection unusable: it goes.
      if (!req.complete) res.once('finish', () => req.socket.destroy());
    }
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
