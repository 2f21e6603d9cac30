/** `ls`, `status`, `versions NAME`, `rm NAME`. */
import { assertName } from '../../core/names.ts';
import type { FunctionView } from '../client.ts';
import type { Context } from '../context.ts';
import { formatAge, formatBytes, table } from '../output.ts';

/** FunctionView.instances as a count, whatever shape the server reports (number, list, or per-state map). */
export function instanceCount(instances: unknown): string {
  if (typeof instances === 'number') return String(instances);
  if (Array.isArray(instances)) return String(instances.length);
  if (instances && typeof instances === 'object') {
    const o = instances as Record<string, unknown>;
    if (typeof o.total === 'number') return String(o.total);
    const nums = Object.values(o).filter((v): v is number => typeof v === 'number');
    if (nums.length > 0) return String(nums.reduce((a, b) => a + b, 0));
  }
  return '-';
}

export function functionsTable(items: FunctionView[], now = Date.now()): string {
  if (items.length === 0) return "no functions yet — deploy one with 'continuum deploy PATH'";
  return table(
    ['NAME', 'TIER', 'ACTIVE VERSION', 'INSTANCES', 'UPDATED'],
    items.map((f) => [f.name, f.tier ?? '-', f.activeVersion ?? '-', instanceCount(f.instances), formatAge(f.updatedAt, now)]),
  );
}

export async function ls(ctx: Context): Promise<number> {
  const client = await ctx.client();
  const res = await client.listFunctions();
  ctx.out.result(res, () => functionsTable(res.items));
  return 0;
}

export async function status(ctx: Context): Promise<number> {
  const client = await ctx.client();
  const res = await client.status();
  ctx.out.result(res, () =>
    table(
      ['TIER', 'AVAILABLE', 'INSTANCES', 'NOTES'],
      res.tiers.map((t) => [t.tier, t.available ? 'yes' : 'no', String(t.instances), t.reason ?? '']),
    ),
  );
  return 0;
}

export async function versions(ctx: Context, name: string): Promise<number> {
  assertName(name, 'function name');
  const client = await ctx.client();
  const [fn, res] = await Promise.all([client.getFunction(name), client.listVersions(name)]);
  const active = fn.activeVersion;
  ctx.out.result({ activeVersion: active, items: res.items }, () => {
    if (res.items.length === 0) return `${name} has no versions`;
    return table(
      ['', 'VERSION', 'CREATED', 'SIZE', 'FORMAT', 'EXPORT', 'DEPENDENCIES'],
      res.items.map((v) => [v.id === active ? '*' : '', v.id, formatAge(v.createdAt), formatBytes(v.bundleBytes), v.format, v.exportName, String(v.dependencies?.length ?? 0)]),
    );
  });
  return 0;
}

export async function rm(ctx: Context, name: string): Promise<number> {
  assertName(name, 'function name');
  const client = await ctx.client();
  await client.deleteFunction(name);
  ctx.out.result({ name, removed: true }, () => `removed ${name}`);
  return 0;
}
