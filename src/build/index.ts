/**
 * Build: upload → safe source tree → esbuild bundle → immutable version facts. See src/build/README.md.
 */
import { createHash } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import type { FunctionConfig } from '../core/config.ts';
import { canonicalJson } from '../core/config.ts';
import { ContinuumError } from '../core/errors.ts';
import type { Dependency, HandlerFormat, Tier } from '../core/types.ts';
import { checkNativeMagic, checkNativeName, extractTgz, extractZip } from './archive.ts';
import { bundle } from './bundle.ts';
import { detectUploadKind, findEntry, resolveHandler, sourceFileName, type UploadKind } from './detect.ts';
import { resolveLimits, type BuildLimits } from './limits.ts';

export type { UploadKind } from './detect.ts';
export { detectUploadKind } from './detect.ts';

export interface BuildInput {
  /** Raw upload bytes (source file, zip or tgz), or a local directory path for kind 'directory'. */
  bytes?: Uint8Array;
  directory?: string;
  kind: UploadKind;
  /** For 'source': the file name, e.g. hello.ts or handler.js (decides the loader). */
  filename?: string;
  /** 'isolate' refuses native addons and Node-only built-ins. */
  tier: Tier;
  handler: { format: 'auto' | HandlerFormat; export: string | null };
  /** Overrides of BUILD_DEFAULTS (typed as numbers, not the defaults' literal types). */
  limits?: Partial<BuildLimits>;
  onProgress?: (step: 'unpack' | 'bundle' | 'analyze', detail: string) => void;
}

export interface BuildOutput {
  /** CommonJS script: the isolate runtime wraps it as (function (module, exports, require) {…}). */
  code: string;
  /** Files the code needs beside it (native addons: `addons/<sha256>.node`); empty on the isolate tier. */
  files: Array<{ path: string; bytes: Uint8Array }>;
  /** sha256 hex of the UTF-8 code. */
  bundleDigest: string;
  bundleBytes: number;
  /** Resolved (auto → detected). */
  format: HandlerFormat;
  /** 'default' | 'handler' | 'main' | configured. For a CommonJS entry, 'default' means module.exports itself. */
  exportName: string;
  /** name, version, license of every package in the bundle; deduplicated, sorted. */
  dependencies: Dependency[];
  warnings: string[];
}

/** 'v_' + 24 hex of sha256(bundle digest + canonical config). */
export function versionId(bundleDigest: string, config: FunctionConfig): string {
  return `v_${createHash('sha256').update(bundleDigest).update(canonicalJson(config)).digest('hex').slice(0, 24)}`;
}

function bad(message: string, details?: ConstructorParameters<typeof ContinuumError>[2]): ContinuumError {
  return new ContinuumError('bad_bundle', message, details);
}

/**
 * Prepare what every isolate build needs (the Node built-in shims, esbuild's service) so the first
 * deploy after start-up is as fast as the rest. Safe to call more than once.
 */
export async function warmUpBuilder(): Promise<void> {
  await removeStaleStaging();
  await build({ bytes: new TextEncoder().encode('export default { fetch() { return new Response("") } }'), kind: 'source', filename: 'warm-up.js', tier: 'isolate', handler: { format: 'auto', export: null } });
}

/** Staging dirs are named after the builder's process, so that a later start can tell a dead builder's. */
const STAGING_PREFIX = 'continuum-build-';

/**
 * Remove the staging dirs of builders whose process is gone (a node killed in the middle of a build leaves
 * its dir behind); those of live processes, this one included, stay.
 */
export async function removeStaleStaging(tmpDir = os.tmpdir()): Promise<number> {
  let removed = 0;
  for (const name of await fsp.readdir(tmpDir).catch(() => [])) {
    const pid = name.startsWith(STAGING_PREFIX) ? Number(/^(\d+)-/.exec(name.slice(STAGING_PREFIX.length))?.[1] ?? NaN) : NaN;
    if (!Number.isInteger(pid) || pid === process.pid || processAlive(pid)) continue;
    await fsp.rm(path.join(tmpDir, name), { recursive: true, force: true, maxRetries: 3 }).catch(() => {});
    removed++;
  }
  return removed;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // alive, someone else's
  }
}

export async function build(input: BuildInput): Promise<BuildOutput> {
  const limits = resolveLimits(input.limits);
  const progress = input.onProgress ?? (() => {});
  let staging: string | null = null;
  try {
    let root: string;
    let entry: string;
    const nativeAllowed = input.tier !== 'isolate';
    if (input.kind === 'image') throw bad('an OCI image is not built: deploy it to a function on the container or gvisor tier');
    if (input.kind === 'directory') {
      if (!input.directory) throw bad('a directory build needs a directory path');
      root = await fsp.realpath(input.directory).catch(() => {
        throw bad('the directory to build does not exist');
      });
      if (!(await fsp.stat(root)).isDirectory()) throw bad('the path to build is not a directory');
      progress('unpack', 'scanning directory');
      await scanDirectory(root, limits, nativeAllowed);
      entry = await findEntry(root);
    } else {
      const bytes = input.bytes;
      if (!bytes) throw bad(`a ${input.kind} build needs the upload bytes`);
      if (bytes.byteLength > limits.maxUploadBytes) {
        throw new ContinuumError('payload_too_large', `upload is ${bytes.byteLength} bytes, more than the ${limits.maxUploadBytes}-byte limit`, { limit: limits.maxUploadBytes });
      }
      staging = await fsp.mkdtemp(path.join(os.tmpdir(), `${STAGING_PREFIX}${process.pid}-`));
      const tree = path.join(staging, 'tree');
      await fsp.mkdir(tree, { mode: 0o700 });
      const magicKind = detectUploadKind(bytes, input.kind === 'source' ? input.filename : undefined);
      if (magicKind !== input.kind) {
        throw bad(`upload was declared as ${input.kind} but its content is ${magicKind === 'source' ? 'not a zip or gzip archive (wrong magic bytes)' : `a ${magicKind} archive`}`);
      }
      progress('unpack', `${input.kind}, ${bytes.byteLength} bytes`);
      if (input.kind === 'source') {
        const name = sourceFileName(input.filename);
        checkNativeMagic(name, bytes.subarray(0, 64), nativeAllowed);
        await fsp.writeFile(path.join(tree, name), bytes, { mode: 0o644, flag: 'wx' });
        root = tree;
        entry = name;
      } else {
        if (input.kind === 'zip') await extractZip(bytes, tree, limits, nativeAllowed);
        else await extractTgz(bytes, tree, limits, nativeAllowed);
        root = await projectRoot(tree);
        entry = await findEntry(root);
      }
    }
    progress('bundle', entry);
    const out = await bundle({ root, entry, tier: input.tier, allowAncestorNodeModules: input.kind === 'directory', maxBundleBytes: limits.maxBundleBytes });
    progress('analyze', `${out.dependencies.length} dependencies`);
    const warnings = [...out.warnings];
    const { format, exportName } = resolveHandler(out.exports, input.handler, warnings);
    const buf = Buffer.from(out.code, 'utf8');
    return {
      code: out.code,
      files: out.files.map((f) => ({ path: f.path, bytes: f.bytes })),
      bundleDigest: createHash('sha256').update(buf).digest('hex'),
      bundleBytes: buf.byteLength,
      format,
      exportName,
      dependencies: out.dependencies,
      warnings,
    };
  } finally {
    if (staging) await fsp.rm(staging, { recursive: true, force: true, maxRetries: 3 });
  }
}

/** An archive with a single top-level folder (plus macOS `__MACOSX` litter) is built from that folder. */
async function projectRoot(tree: string): Promise<string> {
  const entries = (await fsp.readdir(tree, { withFileTypes: true })).filter((e) => e.name !== '__MACOSX');
  if (entries.length === 1 && entries[0]!.isDirectory()) return path.join(tree, entries[0]!.name);
  return tree;
}

/**
 * A local directory (a developer's own project, e.g. from `continuum deploy .`): refuse native code and code
 * caches outside node_modules; node_modules packages are judged when bundled (binding.gyp → native addon).
 * Symlinks are not followed.
 */
async function scanDirectory(root: string, limits: BuildLimits, nativeAllowed: boolean): Promise<void> {
  let count = 0;
  const walk = async (dir: string, rel: string, depth: number): Promise<void> => {
    if (depth > limits.maxPathDepth) throw bad(`directory nesting under ${rel || '.'} exceeds ${limits.maxPathDepth} levels`, { limit: limits.maxPathDepth });
    for (const ent of await fsp.readdir(dir, { withFileTypes: true })) {
      if (ent.name === 'node_modules' || ent.name === '.git') continue;
      if (++count > limits.maxEntries) throw bad(`directory has more than ${limits.maxEntries} entries`, { limit: limits.maxEntries });
      const r = rel ? `${rel}/${ent.name}` : ent.name;
      const abs = path.join(dir, ent.name);
      if (ent.isDirectory()) await walk(abs, r, depth + 1);
      else if (ent.isFile()) {
        if (!nativeAllowed) checkNativeName(r);
        const fh = await fsp.open(abs, 'r');
        try {
          const head = Buffer.alloc(64);
          const { bytesRead } = await fh.read(head, 0, 64, 0);
          checkNativeMagic(r, head.subarray(0, bytesRead), nativeAllowed);
        } finally {
          await fh.close();
        }
      }
    }
  };
  await walk(root, '', 0);
}
