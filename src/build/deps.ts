import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { Metafile } from 'esbuild';
import type { Dependency } from '../core/types.ts';

/** The package directory (…/node_modules/name or …/node_modules/@scope/name) holding an input file. */
export function packageDirOf(file: string): string | null {
  const norm = file.split(path.sep).join('/');
  const at = norm.lastIndexOf('node_modules/');
  if (at < 0 || (at > 0 && norm[at - 1] !== '/')) return null;
  const rest = norm.slice(at + 'node_modules/'.length).split('/');
  const take = rest[0]?.startsWith('@') ? 2 : 1;
  if (rest.length <= take) return null;
  return norm.slice(0, at) + 'node_modules/' + rest.slice(0, take).join('/');
}

function licenseOf(pkg: Record<string, unknown>): string {
  const l = pkg.license;
  if (typeof l === 'string' && l.length > 0) return l;
  if (l && typeof l === 'object' && typeof (l as { type?: unknown }).type === 'string') return (l as { type: string }).type;
  const ls = pkg.licenses;
  if (Array.isArray(ls)) {
    const types = ls.map((x: unknown) => (typeof x === 'string' ? x : (x as { type?: unknown })?.type)).filter((t): t is string => typeof t === 'string');
    if (types.length > 0) return types.length === 1 ? types[0]! : `(${types.join(' OR ')})`;
  }
  return 'UNKNOWN';
}

/** Read one package.json into a Dependency (null when missing or without a name). */
export async function readDependency(pkgDir: string): Promise<Dependency | null> {
  try {
    const text = await fsp.readFile(path.join(pkgDir, 'package.json'), 'utf8');
    const pkg = JSON.parse(text) as Record<string, unknown>;
    if (typeof pkg.name !== 'string' || pkg.name.length === 0) return null;
    return { name: pkg.name, version: typeof pkg.version === 'string' ? pkg.version : '0.0.0', license: licenseOf(pkg) };
  } catch {
    return null;
  }
}

/** Deduplicate (name@version) and sort by name then version. */
export function normaliseDependencies(deps: Iterable<Dependency>): Dependency[] {
  const seen = new Map<string, Dependency>();
  for (const d of deps) seen.set(`${d.name}@${d.version}`, d);
  return [...seen.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.version < b.version ? -1 : a.version > b.version ? 1 : 0));
}

/** Every package with a file among the metafile's inputs (paths relative to `workDir`). */
export async function dependenciesFromMetafile(metafile: Metafile, workDir: string): Promise<Dependency[]> {
  const dirs = new Set<string>();
  // Inputs that contribute bytes to the output (tree-shaken modules are not dependencies).
  const used = Object.values(metafile.outputs).flatMap((o) => Object.entries(o.inputs).filter(([, v]) => v.bytesInOutput > 0).map(([k]) => k));
  for (const input of used) {
    if (/^[a-z-]+:/.test(input)) continue; // virtual namespaces
    const dir = packageDirOf(input);
    if (dir) dirs.add(path.resolve(workDir, dir));
  }
  const deps = await Promise.all([...dirs].map(readDependency));
  return normaliseDependencies(deps.filter((d): d is Dependency => d !== null));
}
