/** `continuum queue …`: create, list, inspect, send to, purge and delete queues; list and redrive dead letters. */
import { readFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { EVENT_DEFAULTS } from '../../core/defaults.ts';
import { assertName } from '../../core/names.ts';
import type { DeadLetterView, OutgoingMessage, QueueView } from '../client.ts';
import type { Context } from '../context.ts';
import { userError } from '../errors.ts';
import { fields, formatAge, formatSpan, table } from '../output.ts';
import { DLQ_LIMIT, type QueueDlqOptions, type QueueRedriveOptions, type QueueSendOptions } from '../program.ts';
import { readAll, readData } from './invoke.ts';

const utf8 = new TextDecoder('utf-8', { fatal: true });
const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

function queueName(name: string): string {
  return assertName(name, 'queue name');
}

function consumers(q: QueueView): string {
  return q.consumers.length > 0 ? q.consumers.join(', ') : '-';
}

function age(q: QueueView): string {
  return q.stats.depth > 0 ? formatSpan(q.stats.oldestAgeMs) : '-';
}

export function queuesTable(items: QueueView[]): string {
  if (items.length === 0) return "no queues yet — create one with 'continuum queue create NAME'";
  return table(
    ['NAME', 'DEPTH', 'READY', 'DELAYED', 'IN FLIGHT', 'OLDEST', 'DEAD LETTERS', 'CONSUMERS'],
    items.map((q) => [q.name, String(q.stats.depth), String(q.stats.ready), String(q.stats.delayed), String(q.stats.inFlight), age(q), String(q.stats.deadLetters), consumers(q)]),
  );
}

export function queueFields(q: QueueView, now = Date.now()): string {
  return fields([
    ['queue', q.name],
    ['created', `${q.createdAt} (${formatAge(q.createdAt, now)})`],
    ['depth', `${q.stats.depth} (ready ${q.stats.ready}, delayed ${q.stats.delayed}, in flight ${q.stats.inFlight})`],
    ['oldest', age(q)],
    ['dead letters', String(q.stats.deadLetters)],
    ['consumers', consumers(q)],
  ]);
}

export function deadLettersTable(items: DeadLetterView[], now = Date.now()): string {
  return table(
    ['ID', 'ATTEMPTS', 'REASON', 'LAST ERROR', 'DEAD'],
    items.map((d) => [d.id, String(d.attempts), d.reason, oneLine(d.errors.at(-1) ?? '-', 80), formatAge(d.deadAt, now)]),
  );
}

function oneLine(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/**
 * The messages `queue send` sends: one per --data (one empty message without any). Bytes that are not UTF-8
 * travel as base64; --base64 takes the values as base64 already.
 */
export async function buildMessages(opts: Pick<QueueSendOptions, 'data' | 'delay' | 'idempotencyKey' | 'base64'>, stdin: Readable): Promise<OutgoingMessage[]> {
  const data = opts.data.length > 0 ? opts.data : [''];
  const max = EVENT_DEFAULTS.queue.maxSendBatch;
  if (data.length > max) throw userError(`at most ${max} messages per send (got ${data.length} --data)`);
  if (data.filter((d) => d === '-').length > 1) throw userError('--data - (stdin) can be given only once');
  const keys = opts.idempotencyKey;
  if (keys.length > 0 && keys.length !== data.length) {
    throw userError(`give one --idempotency-key per message: ${data.length} message${data.length === 1 ? '' : 's'}, ${keys.length} key${keys.length === 1 ? '' : 's'}`);
  }
  const out: OutgoingMessage[] = [];
  for (const [i, d] of data.entries()) {
    const extra = {
      ...(opts.delay ? { delaySeconds: opts.delay } : {}),
      ...(keys[i] !== undefined ? { idempotencyKey: keys[i] } : {}),
    };
    if (opts.base64) {
      const text = (await readText(d, stdin)).replace(/\s+/g, '');
      if (!BASE64_RE.test(text) || text.length % 4 !== 0) throw userError(`--data${data.length > 1 ? ` #${i + 1}` : ''} is not valid base64`);
      out.push({ body: text, encoding: 'base64', ...extra });
      continue;
    }
    const { body, contentType } = await readData(d, stdin);
    let text: string | undefined;
    try {
      text = utf8.decode(body);
    } catch {
      text = undefined;
    }
    if (text === undefined) out.push({ body: body.toString('base64'), encoding: 'base64', contentType, ...extra });
    // Consumers decode by content type: text read from a file or stdin is text, not opaque bytes.
    else out.push({ body: text, contentType: contentType === 'application/octet-stream' ? 'text/plain; charset=utf-8' : contentType, ...extra });
  }
  return out;
}

async function readText(d: string, stdin: Readable): Promise<string> {
  if (d === '-') return (await readAll(stdin)).toString('utf8');
  if (d.startsWith('@')) {
    if (d.length === 1) throw userError('--data @ needs a file name, e.g. --data @message.b64');
    return readFile(d.slice(1), 'utf8');
  }
  return d;
}

export async function create(ctx: Context, name: string): Promise<number> {
  const client = await ctx.client();
  const q = await client.createQueue(queueName(name));
  ctx.out.result(q, () => `created queue ${q.name}`);
  return 0;
}

export async function ls(ctx: Context): Promise<number> {
  const client = await ctx.client();
  const res = await client.listQueues();
  ctx.out.result(res, () => queuesTable(res.items));
  return 0;
}

export async function show(ctx: Context, name: string): Promise<number> {
  const client = await ctx.client();
  const q = await client.getQueue(queueName(name));
  ctx.out.result(q, () => queueFields(q));
  return 0;
}

export async function rm(ctx: Context, name: string): Promise<number> {
  const client = await ctx.client();
  await client.deleteQueue(queueName(name));
  ctx.out.result({ name, removed: true }, () => `removed queue ${name}`);
  return 0;
}

export async function purge(ctx: Context, name: string): Promise<number> {
  const client = await ctx.client();
  const res = await client.purgeQueue(queueName(name));
  ctx.out.result({ name, ...res }, () => `purged ${res.purged} message${res.purged === 1 ? '' : 's'} from ${name}`);
  return 0;
}

export async function send(ctx: Context, name: string, opts: QueueSendOptions): Promise<number> {
  queueName(name);
  const messages = await buildMessages(opts, ctx.stdin);
  const client = await ctx.client();
  const res = await client.sendMessages(name, messages);
  ctx.out.result(res, () => res.items.map((m) => (m.duplicate ? `${m.id} (duplicate: sent before with this idempotency key)` : m.id)).join('\n'));
  return 0;
}

export async function dlq(ctx: Context, name: string, opts: QueueDlqOptions): Promise<number> {
  const client = await ctx.client();
  const res = await client.deadLetters(queueName(name), opts.limit ?? DLQ_LIMIT);
  ctx.out.result(res, () => (res.items.length === 0 ? `no dead letters in ${name}` : deadLettersTable(res.items)));
  return 0;
}

export async function redrive(ctx: Context, name: string, opts: QueueRedriveOptions): Promise<number> {
  const ids = [...new Set(opts.id)];
  const client = await ctx.client();
  const res = await client.redrive(queueName(name), ids);
  ctx.out.result({ name, ...res }, () => `moved ${res.redriven} dead letter${res.redriven === 1 ? '' : 's'} back to ${name}`);
  const missing = ids.length - res.redriven;
  if (missing > 0) ctx.out.note(`note: ${missing} of the ${ids.length} given id${ids.length === 1 ? '' : 's'} ${missing === 1 ? 'is' : 'are'} not a dead letter of ${name}`);
  return 0;
}
