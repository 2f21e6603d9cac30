/** `continuum invocation ID`: an execution record, or an async invocation's state and outcome; --wait polls to the end. */
import { setTimeout as sleep } from 'node:timers/promises';
import type { AsyncStatus, ContinuumClient, InvocationView } from '../client.ts';
import type { Context } from '../context.ts';
import { CliError, EXIT_USER, userError } from '../errors.ts';
import { fields, formatAge, formatBytes, formatSpan } from '../output.ts';
import { WAIT_TIMEOUT_MS, type InvocationOptions } from '../program.ts';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const TERMINAL: ReadonlySet<string> = new Set(['succeeded', 'failed', 'dead', 'expired']);
/** Polling starts quick (most async invocations finish in milliseconds) and backs off to this. */
const MAX_POLL_MS = 1000;

function isAsync(v: InvocationView): v is AsyncStatus {
  return (v as AsyncStatus).kind === 'async';
}

/** `function_error: boom` for a finished invocation that did not succeed; null otherwise. */
export function failure(v: InvocationView): string | null {
  if (isAsync(v)) {
    if (!TERMINAL.has(v.state) || v.state === 'succeeded') return null;
    const e = v.outcome?.error;
    return e ? `${e.code}: ${e.message}` : v.state;
  }
  if (v.outcome !== 'error') return null;
  return `${v.errorCode ?? 'error'}: ${v.errorMessage ?? (v.status !== null ? `HTTP ${v.status}` : 'failed')}`;
}

const num = (n: number) => String(Math.round(n * 1000) / 1000);

/** `queue 0 ms, init 20 ms (sandbox 2 + runtime 8 + module 10), exec 3 ms, overhead 0.2 ms, total 23.2 ms (cold start)`. */
function phasesText(p: Extract<InvocationView, { phases: unknown }>['phases'], cold: boolean): string {
  // Records from before the cold-start split have only queue, init and exec.
  const split = p.sandboxMs !== undefined && cold ? ` (sandbox ${num(p.sandboxMs)} + runtime ${num(p.runtimeInitMs ?? 0)} + module ${num(p.moduleLoadMs ?? 0)})` : '';
  const tail = p.totalMs !== undefined ? `, overhead ${num(p.overheadMs ?? 0)} ms, total ${num(p.totalMs)} ms` : '';
  return `queue ${num(p.queueMs)} ms, init ${num(p.initMs)} ms${split}, exec ${num(p.execMs)} ms${tail}${cold ? ' (cold start)' : ''}`;
}

export function invocationText(v: InvocationView, now = Date.now()): string {
  if (!isAsync(v)) {
    const rows: [string, string][] = [
      ['invocation', v.id],
      ['function', `${v.functionName} (${v.versionId}, ${v.tier})`],
      ['trigger', v.trigger],
      ['started', `${v.startedAt} (${formatAge(v.startedAt, now)})`],
      ['outcome', `${v.outcome}${v.status !== null ? `, HTTP ${v.status}` : ''}`],
    ];
    const err = failure(v);
    if (err) rows.push(['error', err]);
    rows.push(
      ['phases', phasesText(v.phases, v.coldStart)],
      ['usage', `cpu ${v.cpuMs} ms, peak memory ${formatBytes(v.peakMemoryBytes)}`],
    );
    if (v.event) rows.push(['event', `message ${v.event.id} on ${v.event.queue}, attempt ${v.event.attempt}`]);
    return fields(rows);
  }
  const o = v.outcome;
  const rows: [string, string][] = [
    ['invocation', v.id],
    ['function', v.functionName ?? v.queue],
    ['state', `${v.state} (attempt ${v.attempt})`],
    ['enqueued', `${new Date(v.enqueuedAt).toISOString()} (${formatAge(v.enqueuedAt, now)})`],
  ];
  if (v.idempotencyKey !== null) rows.push(['idempotency', v.idempotencyKey]);
  if (o) rows.push(['finished', `${new Date(o.finishedAt).toISOString()} (after ${formatSpan(o.finishedAt - v.enqueuedAt)})`]);
  if (o?.error) rows.push(['error', `${o.error.code}: ${o.error.message}`]);
  const r = o?.result;
  if (!r) return fields(rows);
  const size = r.encoding === 'base64' ? Buffer.from(r.body, 'base64').length : Buffer.byteLength(r.body);
  rows.push(['result', [r.status !== null ? `HTTP ${r.status}` : null, r.contentType, formatBytes(size)].filter(Boolean).join(', ')]);
  // The body last, as sent: it is what a script (or a person) came for.
  const body = r.encoding === 'base64' ? '(binary; --json shows it in base64)' : r.body;
  return body === '' ? fields(rows) : `${fields(rows)}\n\n${body}`;
}

/**
 * Poll until the invocation is finished (an execution record always is; an async invocation once its state
 * is terminal), or fail with `timeout` after `timeoutMs`.
 */
export async function waitFor(client: Pick<ContinuumClient, 'getInvocation'>, id: string, timeoutMs: number, onPoll: (v: AsyncStatus) => void = () => {}): Promise<InvocationView> {
  const deadline = Date.now() + timeoutMs;
  let interval = 50;
  for (;;) {
    const v = await client.getInvocation(id);
    if (!isAsync(v) || TERMINAL.has(v.state)) return v;
    onPoll(v);
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new CliError('timeout', `invocation ${id} is still ${v.state} (attempt ${v.attempt}) after ${formatSpan(timeoutMs)}; check again with 'continuum invocation ${id}'`, { exitCode: EXIT_USER });
    }
    await sleep(Math.min(interval, left));
    interval = Math.min(interval * 2, MAX_POLL_MS);
  }
}

export async function invocation(ctx: Context, id: string, opts: InvocationOptions): Promise<number> {
  if (!UUID_RE.test(id)) throw userError(`invocation id ${JSON.stringify(id.slice(0, 80))} is not a UUID (as printed by 'continuum invoke --async')`);
  const client = await ctx.client();
  const view = opts.wait
    ? await waitFor(client, id, opts.timeout ?? WAIT_TIMEOUT_MS, (v) => ctx.out.live(`waiting: ${v.state}, attempt ${v.attempt}…`))
    : await client.getInvocation(id);
  ctx.out.result(view, () => invocationText(view));
  const failed = failure(view);
  // With --wait the exit code is the outcome, so `invoke --async` + `invocation --wait` can gate a script.
  if (opts.wait && failed !== null) {
    if (!ctx.out.json) ctx.out.note(`error: invocation ${view.id} did not succeed: ${failed}`);
    return EXIT_USER;
  }
  return 0;
}
