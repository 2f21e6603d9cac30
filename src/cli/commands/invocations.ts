/** `continuum invocations [NAME]`: invocation records, newest first, a page at a time (or all with --all). */
import { assertName } from '../../core/names.ts';
import type { InvocationRecord } from '../../core/types.ts';
import type { InvocationFilters } from '../client.ts';
import type { Context } from '../context.ts';
import { parseSince } from '../duration.ts';
import { userError } from '../errors.ts';
import { formatAge, table } from '../output.ts';
import type { InvocationsOptions } from '../program.ts';

const ms = (n: number | undefined) => (n === undefined ? '-' : n < 10 ? n.toFixed(2) : n.toFixed(1));

/** `cold 12.3 (sandbox 1.0 + runtime 4.1 + module 7.2)` or `warm`, for the phase column. */
function coldText(r: InvocationRecord): string {
  if (!r.coldStart) return 'warm';
  const p = r.phases;
  return `cold ${ms(p.initMs)} (sandbox ${ms(p.sandboxMs)} + runtime ${ms(p.runtimeInitMs)} + module ${ms(p.moduleLoadMs)})`;
}

export function invocationsTable(items: InvocationRecord[], now = Date.now()): string {
  return table(
    ['ID', 'FUNCTION', 'STARTED', 'OUTCOME', 'TIER', 'TOTAL MS', 'QUEUE', 'EXEC', 'START'],
    items.map((r) => [
      r.id,
      r.functionName,
      formatAge(r.startedAt, now),
      r.outcome === 'ok' ? `ok ${r.status ?? ''}`.trim() : (r.errorCode ?? 'error'),
      r.tier,
      ms(r.phases.totalMs),
      ms(r.phases.queueMs),
      ms(r.phases.execMs),
      coldText(r),
    ]),
  );
}

export async function invocations(ctx: Context, name: string | undefined, opts: InvocationsOptions): Promise<number> {
  if (name !== undefined) assertName(name, 'function name');
  if (opts.cold && opts.warm) throw userError('--cold and --warm cannot be combined');
  if (opts.all && opts.cursor !== undefined) throw userError('--all starts from the newest record; drop --cursor');
  const filters: InvocationFilters = {
    ...(name !== undefined ? { function: name } : {}),
    ...(opts.outcome ? { outcome: opts.outcome } : {}),
    ...(opts.errorCode ? { errorCode: opts.errorCode } : {}),
    ...(opts.cold ? { coldStart: 'true' as const } : opts.warm ? { coldStart: 'false' as const } : {}),
    ...(opts.tier ? { tier: opts.tier } : {}),
    ...(opts.since !== undefined ? { since: parseSince(opts.since) } : {}),
    ...(opts.until !== undefined ? { until: parseSince(opts.until) } : {}),
    limit: opts.limit ?? (opts.all ? 1000 : 20),
  };
  const client = await ctx.client();
  if (name !== undefined) await client.getFunction(name);
  const items: InvocationRecord[] = [];
  let cursor = opts.cursor ?? null;
  do {
    const page = await client.listInvocations({ ...filters, ...(cursor ? { cursor } : {}) });
    items.push(...page.items);
    cursor = page.nextCursor;
  } while (opts.all && cursor);
  ctx.out.result({ items, nextCursor: cursor }, () => {
    if (items.length === 0) return 'no invocation records match';
    const next = cursor ? `\n\nmore: repeat with --cursor ${cursor}` : '';
    return invocationsTable(items) + next;
  });
  return 0;
}
