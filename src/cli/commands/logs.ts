/** `continuum logs NAME`: stored lines, or a live stream with --follow. */
import { assertName } from '../../core/names.ts';
import type { LogItem } from '../client.ts';
import type { Context } from '../context.ts';
import { parseSince } from '../duration.ts';
import { userError } from '../errors.ts';
import type { LogsOptions } from '../program.ts';

/** `time level [invocation] message`, the human form of one line. */
export function formatLogLine(l: LogItem): string {
  const time = Number.isFinite(l.ts) ? new Date(l.ts).toISOString() : String(l.ts);
  const level = String(l.level ?? 'log').padEnd(5);
  return `${time} ${level} [${l.invocationId ?? '-'}] ${l.message}`;
}

export async function logs(ctx: Context, name: string, opts: LogsOptions): Promise<number> {
  assertName(name, 'function name');
  const since = opts.since !== undefined ? parseSince(opts.since) : undefined;
  const until = opts.until !== undefined ? parseSince(opts.until) : undefined;
  if (opts.invocation !== undefined && opts.follow) throw userError('--invocation and --follow cannot be combined: an invocation\'s logs are complete when it ends');
  const client = await ctx.client();
  const out = ctx.out;

  if (opts.invocation !== undefined) {
    let { items } = await client.invocationLogs(opts.invocation);
    if (since !== undefined) items = items.filter((l) => l.ts >= since);
    if (until !== undefined) items = items.filter((l) => l.ts < until);
    if (opts.search !== undefined) items = items.filter((l) => l.message.includes(opts.search as string));
    out.result({ items }, () => items.map(formatLogLine).join('\n'));
    return 0;
  }

  const params = { function: name, follow: opts.follow, since, until, q: opts.search };
  if (!opts.follow) {
    const items: LogItem[] = [];
    for await (const l of client.logs(params)) items.push(l);
    // Nothing at all may mean a typo in the name: say so rather than print an empty list.
    const filtered = since !== undefined || until !== undefined || opts.search !== undefined;
    if (items.length === 0 && !filtered) await client.getFunction(name);
    out.result({ items }, () => items.map(formatLogLine).join('\n'));
    if (items.length === 0 && !out.json) out.note(`no log lines for ${name}${filtered ? ' matching the filters' : ''}`);
    return 0;
  }

  // Follow (server-sent events): NDJSON (--json) or formatted lines, until the server ends the stream or Ctrl-C. A wrong name
  // would otherwise wait forever in silence.
  await client.getFunction(name);
  const abort = new AbortController();
  const stop = () => abort.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    for await (const l of client.logs(params, abort.signal)) {
      if (out.json) out.jsonLine(l);
      else out.text(formatLogLine(l));
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
  return 0;
}
