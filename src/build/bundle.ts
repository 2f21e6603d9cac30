/**
 * esbuild over a safe source tree → one CommonJS script.
 *
 * Choices: bundle everything (isolate: platform neutral, mainFields module/main, conditions
 * workerd/worker/import/default; process: platform node, built-ins external); target es2023; whitespace and
 * syntax minified but identifiers kept, so stack traces show real function names; no source map (the bundle
 * stays small and its digest depends on code only); legal comments dropped (licences are listed in the version's
 * dependencies). The graph is built as ESM first — esbuild's metafile then lists the entry's exports — and
 * converted to CommonJS; a CommonJS entry is built as CommonJS directly so module.exports stays what it assigns.
 * Only files inside the project (and, for local directories, ancestor node_modules) are ever loaded.
 *
 * Native addons (not on the isolate tier): a `.node` file required by a literal path is carried beside the
 * bundle, content-addressed (`addons/<sha256>.node`), and the require is rewritten to it. Packages that
 * find their addon by a computed path at run time (`bindings`, `node-gyp-build`) cannot be followed by a
 * bundler, so they are refused with the reason.
 */
import { createHash } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import * as esbuild from 'esbuild';
import { ContinuumError } from '../core/errors.ts';
import type { Dependency, Tier } from '../core/types.ts';
import { builtinName, isShimmed, SHIM_NAMESPACE, SHIMS_DIR, shims, UNAVAILABLE, unavailableStub, type Shim } from './builtins.ts';
import { dependenciesFromMetafile, normaliseDependencies, packageDirOf } from './deps.ts';
import { cjsExports, type EntryExports } from './detect.ts';

export interface BundleRequest {
  root: string;
  /** Entry file relative to root (posix separators). */
  entry: string;
  tier: Tier;
  /** Local directories may resolve packages from node_modules of ancestor directories. */
  allowAncestorNodeModules: boolean;
  maxBundleBytes: number;
}

/** A file the bundle needs beside it: a native addon, at `addons/<sha256>.node` next to the bundle. */
export interface BundleFile {
  path: string;
  bytes: Uint8Array;
  /** Where it came from, as users see it (messages). */
  source: string;
}

export interface BundleResult {
  code: string;
  /** Native addons (process tier and beyond), required by the code as `./addons/<sha256>.node`. */
  files: BundleFile[];
  exports: EntryExports;
  dependencies: Dependency[];
  warnings: string[];
}

const OUTFILE = 'bundle.js';
/** Where native addons sit beside the bundle. */
export const ADDON_DIR = 'addons';
const TARGET = 'es2023';
/** Free `Buffer`, `process`, `global`, `setImmediate` in isolate code bind to these (only where used). */
const INJECT = ['inject-buffer.js', 'inject-process.js', 'inject-global.js', 'inject-immediate.js'].map((f) => path.join(SHIMS_DIR, f));

export async function bundle(req: BundleRequest): Promise<BundleResult> {
  const root = path.resolve(req.root);
  const isolate = req.tier === 'isolate';
  const shimCode = isolate ? await shims() : new Map<string, Shim>();
  const usedShims = new Set<string>();
  const lazy = new Map<string, Set<string>>();
  const addons = new Map<string, BundleFile>();
  const tsconfigRaw = await readTsconfig(root);

  const inside = (p: string, dir: string): boolean => p === dir || p.startsWith(dir + path.sep);
  const allowedFile = (p: string): boolean => {
    if (inside(p, root) || INJECT.includes(p)) return true;
    if (!req.allowAncestorNodeModules) return false;
    const at = p.indexOf(`${path.sep}node_modules${path.sep}`);
    return at >= 0 && inside(root, p.slice(0, at) || path.sep);
  };
  const show = (p: string): string => displayPath(p, root);

  const policy: esbuild.Plugin = {
    name: 'continuum-policy',
    setup(b) {
      b.onResolve({ filter: /\.node$/ }, async (args) => {
        if (isolate) return { errors: [{ text: `native addon ${JSON.stringify(args.path)} imported by ${show(args.importer)}: native addons cannot be bundled and the isolate tier runs JavaScript only — use tier: process` }] };
        let file: string;
        try {
          file = /^\.{0,2}\//.test(args.path) ? path.resolve(args.resolveDir, args.path) : createRequire(args.importer).resolve(args.path);
        } catch {
          return { errors: [{ text: `native addon ${JSON.stringify(args.path)} imported by ${show(args.importer)} cannot be resolved` }] };
        }
        if (!allowedFile(file)) return { errors: [{ text: `${JSON.stringify(show(file))} is outside the uploaded project and cannot be bundled` }] };
        const bytes = await fsp.readFile(file).catch(() => null);
        if (bytes === null) return { errors: [{ text: `native addon ${JSON.stringify(show(file))} imported by ${show(args.importer)} does not exist` }] };
        const name = `${ADDON_DIR}/${createHash('sha256').update(bytes).digest('hex')}.node`;
        addons.set(name, { path: name, bytes, source: file });
        return { path: `./${name}`, external: true };
      });
      if (!isolate) return;
      b.onResolve({ filter: /^continuum:unavailable$/ }, (args) =>
        args.namespace === SHIM_NAMESPACE ? { path: UNAVAILABLE, namespace: SHIM_NAMESPACE } : { errors: [{ text: `cannot resolve ${args.path}` }] },
      );
      b.onResolve({ filter: /^(node:)?[a-z][a-z0-9_/]*$/ }, (args) => {
        const name = builtinName(args.path);
        if (name === null) return undefined;
        if (isShimmed(name)) {
          usedShims.add(name);
          return { path: name, namespace: SHIM_NAMESPACE, sideEffects: false };
        }
        const fromPackage = args.namespace === SHIM_NAMESPACE || /[\\/]node_modules[\\/]/.test(args.importer);
        if (fromPackage && args.kind !== 'import-statement') {
          const importer = args.namespace === SHIM_NAMESPACE ? `(shim ${args.importer})` : show(args.importer);
          let set = lazy.get(name);
          if (!set) lazy.set(name, (set = new Set()));
          set.add(importer);
          usedShims.add(UNAVAILABLE);
          return { path: `unavailable:${name}`, namespace: SHIM_NAMESPACE };
        }
        return {
          errors: [{ text: `Node built-in '${args.path}' (imported by ${show(args.importer)}) is not available on the isolate tier; deploy with tier: process` }],
        };
      });
      b.onLoad({ filter: /.*/, namespace: SHIM_NAMESPACE }, (args) => {
        if (args.path.startsWith('unavailable:')) return { contents: unavailableStub(args.path.slice('unavailable:'.length)), loader: 'js' };
        const shim = shimCode.get(args.path);
        if (!shim) return { errors: [{ text: `no shim for ${args.path}` }] };
        return { contents: shim.code, loader: 'js' };
      });
    },
  };
  const guard: esbuild.Plugin = {
    name: 'continuum-guard',
    setup(b) {
      b.onLoad({ filter: /.*/ }, (args) => {
        if (args.namespace !== 'file' || allowedFile(args.path)) return undefined;
        return { errors: [{ text: `${JSON.stringify(show(args.path))} is outside the uploaded project and cannot be bundled` }] };
      });
    },
  };

  const options: esbuild.BuildOptions = {
    entryPoints: [path.join(root, req.entry)],
    absWorkingDir: root,
    outfile: OUTFILE,
    bundle: true,
    write: false,
    metafile: true,
    logLevel: 'silent',
    target: TARGET,
    charset: 'utf8',
    legalComments: 'none',
    minifyWhitespace: true,
    minifySyntax: true,
    minifyIdentifiers: false,
    sourcemap: false,
    tsconfigRaw,
    define: { 'process.env.NODE_ENV': '"production"' },
    plugins: [policy, guard],
    ...(isolate
      ? { platform: 'neutral', mainFields: ['module', 'main'], conditions: ['workerd', 'worker'], inject: INJECT }
      : { platform: 'node', mainFields: ['module', 'main'], conditions: [] }),
  };

  let result: esbuild.BuildResult<{ write: false; metafile: true }>;
  try {
    result = (await esbuild.build({ ...options, format: 'esm' })) as typeof result;
  } catch (err) {
    throw toBadBundle(err, root);
  }
  const entryKey = Object.keys(result.metafile.inputs).find((k) => path.resolve(root, k) === path.join(root, req.entry));
  const entryFormat = entryKey ? result.metafile.inputs[entryKey]!.format : undefined;
  let code: string;
  let exports: EntryExports;
  if (entryFormat === 'esm') {
    const out = Object.values(result.metafile.outputs)[0]!;
    exports = { names: new Set(out.exports), opaque: false, cjs: false };
    try {
      code = (await esbuild.transform(result.outputFiles[0]!.text, { format: 'cjs', target: TARGET, minifyWhitespace: true, minifySyntax: true, charset: 'utf8', logLevel: 'silent' })).code;
    } catch (err) {
      throw toBadBundle(err, root);
    }
  } else {
    lazy.clear();
    usedShims.clear();
    try {
      result = (await esbuild.build({ ...options, format: 'cjs' })) as typeof result;
    } catch (err) {
      throw toBadBundle(err, root);
    }
    code = result.outputFiles[0]!.text;
    const source = await fsp.readFile(path.join(root, req.entry), 'utf8');
    const seen = cjsExports(source);
    exports = { names: seen.names, opaque: seen.opaque, cjs: true };
  }

  // esbuild names lazily initialised modules by their path relative to the project; for the injected
  // shims that path climbs out of the staging dir and would show the host's layout to the function.
  if (isolate) code = code.split(path.relative(root, SHIMS_DIR)).join('continuum:shims');

  const bytes = Buffer.byteLength(code) + [...addons.values()].reduce((n, f) => n + f.bytes.byteLength, 0);
  if (bytes > req.maxBundleBytes) {
    throw new ContinuumError('bad_bundle', `bundle${addons.size > 0 ? ' and its native addons' : ''} is ${bytes} bytes, more than the ${req.maxBundleBytes}-byte limit`, { limit: req.maxBundleBytes });
  }

  await refuseNativePackages(result.metafile, root, isolate ? null : [...addons.values()].map((f) => f.source));
  const deps = await dependenciesFromMetafile(result.metafile, root);
  const inOutput = new Set(Object.values(result.metafile.outputs).flatMap((o) => Object.entries(o.inputs).filter(([, v]) => v.bytesInOutput > 0).map(([k]) => k)));
  for (const name of usedShims) if (inOutput.has(`${SHIM_NAMESPACE}:${name}`)) deps.push(...(shimCode.get(name)?.dependencies ?? []));

  const warnings: string[] = [];
  for (const [name, importers] of [...lazy].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const list = [...importers].sort();
    warnings.push(
      `Node built-in '${name}' is required by ${list.slice(0, 3).join(', ')}${list.length > 3 ? ` and ${list.length - 3} more` : ''}; it is not available on the isolate tier, so any use throws at run time (deploy with tier: process if the function needs it)`,
    );
  }
  for (const w of result.warnings.slice(0, 10)) warnings.push(formatMessage(w, root));
  const files = [...addons.values()].map((f) => ({ ...f, source: show(f.source) }));
  return { code, files, exports, dependencies: normaliseDependencies(deps), warnings };
}

/**
 * A package with a binding.gyp is a native addon: refused on the isolate tier (`carried` null); on the
 * others, refused unless one of the carried addon files comes from it (it loads its addon by a computed
 * path the bundle cannot follow).
 */
async function refuseNativePackages(metafile: esbuild.Metafile, root: string, carried: string[] | null): Promise<void> {
  const dirs = new Set<string>();
  for (const input of Object.keys(metafile.inputs)) {
    if (/^[a-z-]+:/.test(input)) continue;
    const dir = packageDirOf(input);
    if (dir) dirs.add(dir);
  }
  for (const dir of dirs) {
    const exists = await fsp.stat(path.join(root, dir, 'binding.gyp')).then(() => true, () => false);
    if (!exists) continue;
    const pkg = path.resolve(root, dir);
    const file = displayPath(pkg, root);
    if (carried === null) {
      throw new ContinuumError('bad_bundle', `package ${file} is a native addon (binding.gyp); the isolate tier runs JavaScript only — use tier: process`, { file });
    }
    if (!carried.some((f) => f.startsWith(pkg + path.sep))) {
      throw new ContinuumError('bad_bundle', `package ${file} is a native addon (binding.gyp) that finds its .node file by a computed path (bindings, node-gyp-build), which a bundle cannot follow; require the .node file by its literal path`, { file });
    }
  }
}

async function readTsconfig(root: string): Promise<string> {
  try {
    return await fsp.readFile(path.join(root, 'tsconfig.json'), 'utf8');
  } catch {
    return '{}';
  }
}

/** A path as users may see it: relative to the project, or from node_modules/ on; never a host path. */
export function displayPath(p: string, root: string): string {
  if (!p) return '<unknown>';
  if (p.startsWith(`${SHIM_NAMESPACE}:`)) return `(${p})`;
  const abs = path.isAbsolute(p) ? p : path.resolve(root, p);
  const rel = path.relative(root, abs);
  if (!rel.startsWith('..') && !path.isAbsolute(rel)) return rel.split(path.sep).join('/');
  const norm = abs.split(path.sep).join('/');
  const at = norm.lastIndexOf('/node_modules/');
  if (at >= 0) return norm.slice(at + 1);
  return path.basename(abs);
}

function scrub(text: string, root: string): string {
  return text.split(root + path.sep).join('').split(root).join('.').split(path.dirname(SHIMS_DIR)).join('<builder>');
}

function formatMessage(m: esbuild.Message, root: string): string {
  const loc = m.location;
  const text = scrub(m.text, root);
  return loc ? `${displayPath(loc.file, root)}:${loc.line}:${loc.column + 1}: ${text}` : text;
}

/** esbuild failure → bad_bundle with the first error's location (1-based line and column). */
export function toBadBundle(err: unknown, root: string): ContinuumError {
  if (err instanceof ContinuumError) return err;
  const errors = (err as { errors?: esbuild.Message[] }).errors;
  const first = errors?.[0];
  if (!first) return new ContinuumError('bad_bundle', 'the bundler failed', undefined, { cause: err });
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more error${errors.length > 2 ? 's' : ''})` : '';
  const loc = first.location;
  const details = loc ? { file: displayPath(loc.file, root), line: loc.line, column: loc.column + 1 } : undefined;
  return new ContinuumError('bad_bundle', `${formatMessage(first, root)}${more}`, details);
}
