/** `continuum invoke NAME`: one request, the function's body on stdout; with --async, the invocation id. */
import { readFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { isErrorCode } from '../../core/errors.ts';
import { assertName } from '../../core/names.ts';
import type { RawResponse } from '../client.ts';
import type { Context } from '../context.ts';
import { CliError, EXIT_USER, exitCodeFor, userError } from '../errors.ts';
import type { InvokeOptions } from '../program.ts';

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** `k:v` (or `k=v`) → [name, value]; names are checked, values trimmed. */
export function parseHeader(raw: string): [string, string] {
  const colon = raw.indexOf(':');
  const eq = raw.indexOf('=');
  const at = colon > 0 ? colon : eq;
  if (at <= 0) throw userError(`invalid --header ${JSON.stringify(raw)}: use name:value`);
  const name = raw.slice(0, at).trim();
  const value = raw.slice(at + 1).trim();
  if (!HEADER_NAME.test(name)) throw userError(`invalid --header name ${JSON.stringify(name)}`);
  if (/[\r\n]/.test(value)) throw userError(`invalid --header value for ${name}: no line breaks`);
  return [name.toLowerCase(), value];
}

const EXT_TYPES: Record<string, string> = {
  json: 'application/json',
  txt: 'text/plain; charset=utf-8',
  html: 'text/html; charset=utf-8',
  xml: 'application/xml',
  csv: 'text/csv',
  yaml: 'application/yaml',
  yml: 'application/yaml',
};

function looksLikeJson(buf: Buffer): boolean {
  try {
    JSON.parse(buf.toString('utf8'));
    return true;
  } catch {
    return false;
  }
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks);
}

/** --data: JSON text, @file or - (stdin) → body and the content type it implies. */
export async function readData(data: string, stdin: Readable): Promise<{ body: Buffer; contentType: string }> {
  if (data === '-') {
    const body = await readAll(stdin);
    return { body, contentType: looksLikeJson(body) ? 'application/json' : 'application/octet-stream' };
  }
  if (data.startsWith('@')) {
    const file = data.slice(1);
    if (!file) throw userError('--data @ needs a file name, e.g. --data @event.json');
    const body = await readFile(file);
    const ext = file.split('.').pop()?.toLowerCase() ?? '';
    return { body, contentType: EXT_TYPES[ext] ?? (looksLikeJson(body) ? 'application/json' : 'application/octet-stream') };
  }
  const body = Buffer.from(data, 'utf8');
  return { body, contentType: looksLikeJson(body) ? 'application/json' : 'text/plain; charset=utf-8' };
}

/** A platform error body (the registry shape) in a response, if that is what it is. */
export function platformError(res: RawResponse): CliError | undefined {
  if (res.status < 400 || !(res.headers['content-type'] ?? '').includes('json')) return undefined;
  try {
    const e = (JSON.parse(res.body.toString('utf8')) as { error?: { code?: unknown; message?: unknown; retryable?: unknown } }).error;
    if (e && isErrorCode(e.code) && typeof e.message === 'string') {
      return new CliError(e.code, e.message, { exitCode: exitCodeFor(e.code, res.status), status: res.status, retryable: typeof e.retryable === 'boolean' ? e.retryable : undefined });
    }
  } catch {
    // not JSON: the function's own body
  }
  return undefined;
}

function isTextual(contentType: string): boolean {
  return /^text\/|json|xml|javascript|yaml|x-www-form-urlencoded/i.test(contentType);
}

/** The --json view of a response: JSON bodies parsed, text as a string, anything else base64. */
export function responseJson(res: RawResponse): { status: number; headers: Record<string, string>; body: unknown; bodyEncoding?: 'base64' } {
  const ct = res.headers['content-type'] ?? '';
  const text = res.body.toString('utf8');
  if (/json/i.test(ct)) {
    try {
      return { status: res.status, headers: res.headers, body: JSON.parse(text) };
    } catch {
      // fall through to text
    }
  }
  if (isTextual(ct) || (ct === '' && Buffer.from(text, 'utf8').equals(res.body))) return { status: res.status, headers: res.headers, body: text };
  return { status: res.status, headers: res.headers, body: res.body.toString('base64'), bodyEncoding: 'base64' };
}

/** Flags that make no sense together, refused before anything is read or sent. */
export function checkInvokeFlags(opts: InvokeOptions, headers: Record<string, string>): void {
  if (opts.idempotencyKey !== undefined && !opts.async) throw userError('--idempotency-key needs --async (a sync invocation runs once per call)');
  if (!opts.async) return;
  if (opts.method !== undefined || opts.path !== undefined) throw userError('--async invokes through the control API: --method and --path cannot be combined with it');
  // The async queue keeps the body and its content type only; other headers would be dropped silently.
  const dropped = Object.keys(headers).find((k) => k !== 'content-type');
  if (dropped !== undefined) throw userError(`--async keeps only the body and its content type: --header ${dropped} cannot be sent`);
}

export async function invoke(ctx: Context, name: string, opts: InvokeOptions): Promise<number> {
  assertName(name, 'function name');
  const headers: Record<string, string> = {};
  for (const h of opts.header) {
    const [k, v] = parseHeader(h);
    headers[k] = v;
  }
  checkInvokeFlags(opts, headers);
  let body: Buffer | undefined;
  if (opts.data !== undefined) {
    const data = await readData(opts.data, ctx.stdin);
    body = data.body;
    headers['content-type'] ??= data.contentType;
  }
  if (body !== undefined && (opts.method === 'GET' || opts.method === 'HEAD')) throw userError(`--data cannot be sent with ${opts.method}`);
  const client = await ctx.client();
  if (opts.async) {
    const accepted = await client.invokeAsync(name, { headers, body, idempotencyKey: opts.idempotencyKey });
    ctx.out.result(accepted, () => accepted.invocationId);
    if (accepted.duplicate && !ctx.out.json) ctx.out.note('note: this idempotency key was used before; that invocation\'s id is printed and nothing new runs');
    ctx.out.step(`follow it with: continuum invocation ${accepted.invocationId} --wait`);
    return 0;
  }
  const res = await client.invoke(name, { method: opts.method, path: opts.path, headers, body });
  const platform = platformError(res);
  if (platform) throw platform;
  if (ctx.out.json) ctx.out.result(responseJson(res), () => undefined);
  else {
    ctx.out.raw(res.body);
    if (ctx.out.stdoutIsTTY && res.body.length > 0 && res.body[res.body.length - 1] !== 0x0a) ctx.out.raw('\n');
  }
  if (res.status >= 400) {
    if (!ctx.out.json) ctx.out.note(`error: ${name} responded with HTTP ${res.status}`);
    return EXIT_USER;
  }
  return 0;
}
