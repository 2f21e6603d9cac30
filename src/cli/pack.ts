/**
 * What `deploy PATH` uploads. Single files go as they are; a directory is packed in memory as a gzipped tar
 * (node_modules included, because the server bundles dependencies from it; .git and the local data dir
 * skipped). The archive is deterministic (sorted entries, fixed mtime and owner), so the same tree gives the
 * same bytes and the same bundle digest.
 */
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';
import { BUILD_DEFAULTS } from '../core/defaults.ts';
import { userError } from './errors.ts';
import { formatBytes } from './output.ts';

export { formatBytes };

export type UploadContentType = 'application/javascript' | 'application/typescript' | 'application/zip' | 'application/gzip' | 'application/x-tar';

export interface Upload {
  body: Buffer;
  contentType: UploadContentType;
  /** Basename sent as ?filename=. */
  filename: string;
  /** For directories: files packed, bytes before compression, paths left out. */
  packed?: { entries: number; bytes: number; skipped: string[] };
}

const FILE_TYPES: [RegExp, UploadContentType][] = [
  [/\.(?:js|mjs|cjs)$/i, 'application/javascript'],
  [/\.(?:ts|mts|cts)$/i, 'application/typescript'],
  [/\.zip$/i, 'application/zip'],
  [/\.(?:tgz|tar\.gz)$/i, 'application/gzip'],
  // An OCI image layout or `docker save` tarball, for the container tiers.
  [/\.tar$/i, 'application/x-tar'],
];

/** Content type for a single file, by extension; undefined when it is not something deploy accepts. */
export function contentTypeFor(file: string): UploadContentType | undefined {
  return FILE_TYPES.find(([re]) => re.test(file))?.[1];
}

/** Directory names never packed: VCS metadata and Continuum's own data dir. */
const SKIP_DIRS = new Set(['.git', '.hg', '.svn', '.continuum']);
const FIXED_MTIME = new Date(Date.UTC(2000, 0, 1));

export interface PackLimits {
  maxUploadBytes: number;
  maxExtractedBytes: number;
  maxEntries: number;
}

export const DEFAULT_PACK_LIMITS: PackLimits = {
  maxUploadBytes: BUILD_DEFAULTS.maxUploadBytes,
  maxExtractedBytes: BUILD_DEFAULTS.maxExtractedBytes,
  maxEntries: BUILD_DEFAULTS.maxEntries,
};

interface FileEntry {
  name: string;
  abs: string;
  size: number;
  mode: number;
}

/** Every file under `root` in sorted order; symlinks are followed only when they stay inside `root`. */
async function collect(root: string, limits: PackLimits): Promise<{ files: FileEntry[]; bytes: number; skipped: string[] }> {
  const realRoot = await realpath(root);
  const files: FileEntry[] = [];
  const skipped: string[] = [];
  const visited = new Set<string>([realRoot]);
  let bytes = 0;

  const inside = (p: string) => p === realRoot || p.startsWith(realRoot + path.sep);

  async function walk(dirAbs: string, rel: string): Promise<void> {
    const dirents = await readdir(dirAbs, { withFileTypes: true });
    dirents.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const d of dirents) {
      const abs = path.join(dirAbs, d.name);
      const name = rel ? `${rel}/${d.name}` : d.name;
      let isDir = d.isDirectory();
      let isFile = d.isFile();
      if (d.isSymbolicLink()) {
        let target: string;
        try {
          target = await realpath(abs);
        } catch {
          skipped.push(`${name} (broken symlink)`);
          continue;
        }
        if (!inside(target)) {
          skipped.push(`${name} (symlink leaves the directory)`);
          continue;
        }
        const st = await stat(target);
        isDir = st.isDirectory();
        isFile = st.isFile();
        if (isDir && visited.has(target)) continue;
        if (isDir) visited.add(target);
      }
      if (isDir) {
        if (SKIP_DIRS.has(d.name)) continue;
        // Executable shims, not code the bundler reads; they are symlinks that point out of their package.
        if (d.name === '.bin' && path.basename(dirAbs) === 'node_modules') continue;
        await walk(abs, name);
      } else if (isFile) {
        const st = await stat(abs);
        bytes += st.size;
        files.push({ name, abs, size: st.size, mode: st.mode & 0o111 ? 0o755 : 0o644 });
        if (files.length > limits.maxEntries) {
          throw userError(`${root} has more than ${limits.maxEntries} files, over the archive entry limit; deploy a bundled file or trim node_modules (npm prune --omit=dev)`, { limit: limits.maxEntries });
        }
        if (bytes > limits.maxExtractedBytes) {
          throw userError(`${root} holds more than ${formatBytes(limits.maxExtractedBytes)} of files, over the unpacked size limit; deploy a bundled file or trim node_modules (npm prune --omit=dev)`, { limit: limits.maxExtractedBytes });
        }
      } else {
        skipped.push(`${name} (not a regular file)`);
      }
    }
  }

  await walk(realRoot, '');
  return { files, bytes, skipped };
}

/** Pack a directory as a .tgz in memory. */
export async function packDirectory(dir: string, limits: PackLimits = DEFAULT_PACK_LIMITS): Promise<Upload> {
  const { files, bytes, skipped } = await collect(dir, limits);
  if (files.length === 0) throw userError(`${dir} is empty: nothing to deploy`);
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const collected = pipeline(pack, createGzip(), async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) chunks.push(chunk);
  });
  for (const f of files) {
    const data = await readFile(f.abs);
    await new Promise<void>((resolve, reject) => {
      pack.entry({ name: f.name, size: data.length, mode: f.mode, mtime: FIXED_MTIME, uid: 0, gid: 0, uname: '', gname: '', type: 'file' }, data, (err) => (err ? reject(err) : resolve()));
    });
  }
  pack.finalize();
  await collected;
  const body = Buffer.concat(chunks);
  if (body.length > limits.maxUploadBytes) {
    throw userError(`${dir} packs to ${formatBytes(body.length)}, over the ${formatBytes(limits.maxUploadBytes)} upload limit; deploy a bundled file or trim node_modules (npm prune --omit=dev)`, { limit: limits.maxUploadBytes });
  }
  const base = path.basename(path.resolve(dir)).replace(/[^A-Za-z0-9._-]+/g, '-') || 'function';
  return { body, contentType: 'application/gzip', filename: `${base}.tgz`, packed: { entries: files.length, bytes, skipped } };
}

/** Read what `deploy PATH` uploads: a code file or archive as is, or a directory packed. */
export async function prepareUpload(target: string, limits: PackLimits = DEFAULT_PACK_LIMITS): Promise<Upload> {
  const st = await stat(target);
  if (st.isDirectory()) return packDirectory(target, limits);
  if (!st.isFile()) throw userError(`${target} is not a file or directory`);
  const contentType = contentTypeFor(target);
  if (!contentType) {
    throw userError(`cannot deploy ${path.basename(target)}: expected a .js/.mjs/.cjs/.ts/.mts file, a directory, a .zip/.tgz archive, an image .tar or a continuum.yaml`);
  }
  // An image goes to the node's image store, which applies its own caps.
  if (contentType !== 'application/x-tar' && st.size > limits.maxUploadBytes) {
    throw userError(`${target} is ${formatBytes(st.size)}, over the ${formatBytes(limits.maxUploadBytes)} upload limit`, { limit: limits.maxUploadBytes });
  }
  return { body: await readFile(target), contentType, filename: path.basename(target) };
}
