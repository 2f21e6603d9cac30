import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { ContinuumError } from '../core/errors.ts';
import type { HandlerFormat } from '../core/types.ts';

/** `image`: an OCI image layout or `docker save` tarball (an uncompressed tar), for the container tiers. */
export type UploadKind = 'source' | 'zip' | 'tgz' | 'directory' | 'image';

/** Upload kind from magic bytes first, then the file name, then the content type; plain text is `source`. */
export function detectUploadKind(bytes: Uint8Array, filename?: string, contentType?: string): UploadKind {
  if (bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && (bytes[2] === 0x03 || bytes[2] === 0x05) && (bytes[3] === 0x04 || bytes[3] === 0x06)) return 'zip';
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) return 'tgz';
  // POSIX tar: "ustar" at offset 257 of the first header.
  if (bytes.length >= 512 && Buffer.from(bytes.buffer, bytes.byteOffset + 257, 5).toString('latin1') === 'ustar') return 'image';
  const name = (filename ?? '').toLowerCase();
  const type = (contentType ?? '').toLowerCase().split(';')[0]!.trim();
  const claimsArchive = /\.(zip|tgz|tar\.gz|tar|gz)$/.test(name) || /zip|gzip|x-tar|octet-stream/.test(type);
  if (claimsArchive && !/\.(m|c)?[jt]s$/.test(name)) {
    throw new ContinuumError('bad_bundle', `upload ${name ? `"${path.basename(name)}" ` : ''}claims to be an archive but its magic bytes match neither zip, gzip nor tar`);
  }
  for (let i = 0; i < Math.min(bytes.length, 8192); i++) {
    if (bytes[i] === 0) throw new ContinuumError('bad_bundle', 'upload is binary but neither a zip, a gzip nor a tar archive (wrong magic bytes)');
  }
  return 'source';
}

const SOURCE_EXT = /\.(js|mjs|cjs|ts|mts|cts)$/;

/** A safe file name for a single-source upload. */
export function sourceFileName(filename: string | undefined): string {
  const base = path.posix.basename((filename ?? 'index.js').replaceAll('\\', '/'));
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(base) || !SOURCE_EXT.test(base)) {
    throw new ContinuumError('bad_bundle', `source file name ${JSON.stringify(base.slice(0, 130))} must end in .js, .mjs, .cjs, .ts, .mts or .cts and use only letters, digits, '.', '_' and '-'`);
  }
  return base;
}

const CONDITIONS = ['workerd', 'worker', 'import', 'module', 'default', 'require', 'node'];

function pickExport(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    for (const v of value) {
      const p = pickExport(v);
      if (p) return p;
    }
    return null;
  }
  if (value && typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    if ('.' in obj) return pickExport(obj['.']);
    for (const c of CONDITIONS) if (c in obj) {
      const p = pickExport(obj[c]);
      if (p) return p;
    }
  }
  return null;
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await fsp.stat(p)).isFile();
  } catch {
    return false;
  }
}

/**
 * The entry file of a project directory: package.json `exports` (`.`; workerd/worker/import/default
 * conditions), `module`, `main`, else index.(ts|mts|js|mjs|cjs) or src/index.*. Returned relative to root.
 */
export async function findEntry(root: string): Promise<string> {
  const candidates: string[] = [];
  let pkg: Record<string, unknown> | null = null;
  try {
    pkg = JSON.parse(await fsp.readFile(path.join(root, 'package.json'), 'utf8')) as Record<string, unknown>;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new ContinuumError('bad_bundle', 'package.json is not valid JSON', { file: 'package.json' });
  }
  if (pkg) {
    const fromExports = pickExport(pkg.exports);
    if (fromExports) candidates.push(fromExports);
    for (const field of ['module', 'main']) if (typeof pkg[field] === 'string') candidates.push(pkg[field]);
  }
  for (const dir of ['', 'src/']) for (const ext of ['ts', 'mts', 'js', 'mjs', 'cjs']) candidates.push(`${dir}index.${ext}`);
  for (const c of candidates) {
    const rel = path.posix.normalize(c.replaceAll('\\', '/'));
    if (rel.startsWith('../') || rel === '..' || path.isAbsolute(rel)) {
      throw new ContinuumError('bad_bundle', `package.json entry ${JSON.stringify(c)} points outside the project`, { file: 'package.json' });
    }
    for (const tryRel of [rel, `${rel}.js`, `${rel}.ts`, `${rel}/index.js`, `${rel}/index.ts`]) {
      if (await isFile(path.join(root, tryRel))) return tryRel.replace(/^\.\//, '');
    }
  }
  throw new ContinuumError('bad_bundle', 'no entry file: set "main" (or "exports") in package.json, or add index.ts / index.js');
}

/** Export names a CommonJS module visibly assigns; `opaque` when it replaces module.exports with a value we cannot see. */
export function cjsExports(source: string): { names: Set<string>; opaque: boolean } {
  const names = new Set<string>();
  let opaque = false;
  const code = stripComments(source);
  for (const m of code.matchAll(/(?:^|[^.\w$])(?:module\.)?exports\s*(?:\.\s*([A-Za-z_$][\w$]*)|\[\s*(['"])([A-Za-z_$][\w$]*)\2\s*\])\s*=(?!=)/g)) {
    names.add(m[1] ?? m[3]!);
  }
  for (const m of code.matchAll(/Object\.defineProperty\(\s*(?:module\.)?exports\s*,\s*(['"])([A-Za-z_$][\w$]*)\1/g)) names.add(m[2]!);
  for (const m of code.matchAll(/(?:^|[^.\w$])module\.exports\s*=(?!=)\s*/g)) {
    const after = code.slice(m.index + m[0].length);
    if (after.startsWith('{')) for (const k of objectLiteralKeys(after)) names.add(k);
    else opaque = true;
  }
  return { names, opaque };
}

function stripComments(src: string): string {
  return src.replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/(^|[^:\\'"])\/\/[^\n]*/g, '$1');
}

/** Top-level keys of an object literal at the start of `text` (shorthand, `key:`, methods, async/get/set). */
function objectLiteralKeys(text: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  let i = 0;
  let expectKey = true;
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === '"' || ch === "'" || ch === '`') {
      const end = skipString(text, i);
      if (depth === 1 && expectKey) {
        const k = text.slice(i + 1, end - 1);
        if (/^[A-Za-z_$][\w$]*$/.test(k)) keys.push(k);
        expectKey = false;
      }
      i = end;
      continue;
    }
    if (ch === '{' || ch === '[' || ch === '(') depth++;
    else if (ch === '}' || ch === ']' || ch === ')') {
      depth--;
      if (depth === 0) break;
    } else if (depth === 1 && ch === ',') expectKey = true;
    else if (depth === 1 && expectKey && /[A-Za-z_$]/.test(ch)) {
      const m = /^(?:(?:async|get|set|static)\s+)?\*?\s*([A-Za-z_$][\w$]*)/.exec(text.slice(i))!;
      keys.push(m[1]!);
      expectKey = false;
      i += m[0].length;
      continue;
    } else if (depth === 1 && ch === '.' && text.startsWith('...', i)) expectKey = false;
    i++;
  }
  return keys;
}

function skipString(text: string, start: number): number {
  const q = text[start];
  let i = start + 1;
  while (i < text.length && text[i] !== q) i += text[i] === '\\' ? 2 : 1;
  return i + 1;
}

const BY_EXPORT: Record<string, HandlerFormat> = { default: 'fetch', handler: 'lambda', main: 'openwhisk' };
const EXPORT_OF: Record<HandlerFormat, string> = { fetch: 'default', lambda: 'handler', openwhisk: 'main' };
const PRIORITY: HandlerFormat[] = ['fetch', 'lambda', 'openwhisk'];

export interface EntryExports {
  /** Names the entry visibly exports; for CommonJS, `default` stands for module.exports itself. */
  names: Set<string>;
  /** True when the exports could not be fully seen (CommonJS module.exports = someValue). */
  opaque: boolean;
  /**
   * CommonJS entry: `names` are the keys of module.exports, and the export `default` means module.exports itself
   * (Node's ESM/CJS interop) — so `module.exports = { fetch }` is a fetch handler with exportName `default`.
   */
  cjs: boolean;
}

/** Resolve handler format and export name, or refuse when the handler is missing. */
export function resolveHandler(
  exp: EntryExports,
  handler: { format: 'auto' | HandlerFormat; export: string | null },
  warnings: string[],
): { format: HandlerFormat; exportName: string } {
  const has = (n: string): boolean => exp.names.has(n) || (exp.cjs && n === 'default');
  /** Whether the module visibly provides the handler of a format. */
  const provides = (f: HandlerFormat): boolean =>
    exp.cjs ? (f === 'fetch' ? exp.names.has('fetch') || exp.names.has('default') : exp.names.has(EXPORT_OF[f])) : exp.names.has(EXPORT_OF[f]);
  if (handler.export) {
    if (!has(handler.export) && !exp.opaque) {
      throw new ContinuumError('bad_bundle', `the configured handler export "${handler.export}" is not exported by the entry module`);
    }
    if (!has(handler.export)) warnings.push(`could not see export "${handler.export}" statically; the runtime checks it at load`);
    let format: HandlerFormat;
    if (handler.format !== 'auto') format = handler.format;
    else if (BY_EXPORT[handler.export]) format = BY_EXPORT[handler.export]!;
    else {
      format = 'lambda';
      warnings.push(`handler format of export "${handler.export}" is not evident; assuming lambda (set handler.format to override)`);
    }
    return { format, exportName: handler.export };
  }
  if (handler.format !== 'auto') {
    const wanted = EXPORT_OF[handler.format];
    if (!provides(handler.format) && !exp.opaque) {
      throw new ContinuumError('bad_bundle', `handler format ${handler.format} needs an export named "${wanted}", which the entry module does not export`);
    }
    return { format: handler.format, exportName: wanted };
  }
  const found = PRIORITY.filter(provides);
  if (found.length === 0) {
    if (exp.opaque) {
      warnings.push('module.exports is assigned a value the builder cannot inspect; assuming a fetch handler (default export), the runtime checks it at load');
      return { format: 'fetch', exportName: 'default' };
    }
    throw new ContinuumError('bad_bundle', 'no handler found: export default { fetch } (Workers), export const handler (Lambda) or export function main (OpenWhisk), or configure handler.export');
  }
  const format = found[0]!;
  if (found.length > 1) warnings.push(`several handler shapes exported (${found.join(', ')}); using ${format} (set handler.format to choose)`);
  return { format, exportName: EXPORT_OF[format] };
}
