/**
 * Unpacking uploads (zip, tar.gz) into a private staging directory, refusing anything unsafe.
 *
 * Policy (catalogue tests 5, 24–27), each violation refuses the WHOLE upload with `bad_bundle` naming the entry:
 * - names: valid UTF-8 only; no NUL/C0/C1 control characters; no backslash; no absolute path (`/x`, `C:x`);
 *   no `.`/`..`/empty segments (a leading `./` is tolerated); no URL-encoded `%2e` `%2f` `%5c`; segment, path and
 *   depth limits from BUILD_DEFAULTS.
 * - entry types: regular files and directories only. Every symlink and hardlink is refused, whether it escapes or
 *   not (the simplest policy that cannot be wrong); device nodes, FIFOs, sockets and unknown types are refused.
 * - collisions: duplicate names, names equal after NFC normalisation and case folding, and a name that is both a
 *   file and a directory.
 * - size: the bytes ACTUALLY written are counted (declared sizes are never trusted) against the per-entry cap, the
 *   total cap and the ratio cap (expanded / upload size, once past `ratioFloorBytes`); for tar.gz the raw gunzip
 *   output is counted too, so zero-filled or header-lying streams abort early with bounded memory.
 * - time: the whole unpack has a budget (`extractTimeoutMs`).
 * - zip structure: the central directory must agree with each local header (name, method) and entries must not
 *   overlap (Fifield-style bombs); encrypted entries and unknown methods are refused; truncated/corrupt archives
 *   fail in yauzl / zlib / tar-stream and are refused.
 * - native code (catalogue 5): `.node`, `.so`, `.dylib`, `.dll` files, ELF / Mach-O / PE executables and V8
 *   cachedData / snapshot blobs are refused (use the process tier for native addons).
 * Nested archives are written as plain files, never extracted. Files are created with O_EXCL | O_NOFOLLOW under a
 * directory this module created, with fixed modes (0644 / 0755); nothing ever follows a link.
 */
import { constants as fsc } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { PassThrough, pipeline as pipelineCallback, Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import * as tar from 'tar-stream';
import * as yauzl from 'yauzl';
import { ContinuumError } from '../core/errors.ts';
import type { BuildLimits } from './limits.ts';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Quote an entry name for an error message: control characters escaped, length bounded. */
export function showName(name: string): string {
  const shown = JSON.stringify(name.length > 160 ? `${name.slice(0, 160)}…` : name);
  return shown;
}

function refuse(message: string, extra?: { limit?: number; file?: string }): never {
  throw new ContinuumError('bad_bundle', message, extra);
}

/**
 * Validate one entry name and return it as a clean relative path (segments joined by `/`, no trailing slash).
 * `raw` is the name as bytes when the archive format gives bytes, else a string already decoded.
 */
export function checkEntryName(raw: Uint8Array | string, limits: BuildLimits): string {
  let name: string;
  if (typeof raw === 'string') {
    name = raw;
    if (name.includes('\uFFFD')) refuse(`archive entry ${showName(name)} has an invalid UTF-8 name`);
  } else {
    try {
      name = utf8.decode(raw);
    } catch {
      refuse(`archive entry ${showName(Buffer.from(raw).toString('latin1'))} has an invalid UTF-8 name`);
    }
  }
  const shown = showName(name);
  if (name.length === 0) refuse('archive entry with an empty name');
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) refuse(`archive entry ${shown} has a control character in its name`);
  if (name.includes('\\')) refuse(`archive entry ${shown} contains a backslash`);
  if (name.startsWith('/')) refuse(`archive entry ${shown} is an absolute path`);
  if (/^[A-Za-z]:/.test(name)) refuse(`archive entry ${shown} is an absolute (drive-letter) path`);
  if (/%(2e|2f|5c)/i.test(name)) refuse(`archive entry ${shown} contains a URL-encoded dot, slash or backslash`);
  if (Buffer.byteLength(name) > limits.maxPathBytes) {
    refuse(`archive entry ${shown} has a path longer than ${limits.maxPathBytes} bytes`, { limit: limits.maxPathBytes });
  }
  let rest = name;
  while (rest.startsWith('./')) rest = rest.slice(2);
  if (rest.endsWith('/')) rest = rest.slice(0, -1);
  if (rest.length === 0) refuse(`archive entry ${shown} names the archive root`);
  const segments = rest.split('/');
  if (segments.length > limits.maxPathDepth) {
    refuse(`archive entry ${shown} is nested deeper than ${limits.maxPathDepth} levels`, { limit: limits.maxPathDepth });
  }
  for (const seg of segments) {
    if (seg === '..') refuse(`archive entry ${shown} contains a '..' segment`);
    if (seg === '' || seg === '.') refuse(`archive entry ${shown} contains an empty or '.' segment`);
    if (Buffer.byteLength(seg) > limits.maxNameBytes) {
      refuse(`archive entry ${shown} has a name segment longer than ${limits.maxNameBytes} bytes`, { limit: limits.maxNameBytes });
    }
  }
  return segments.join('/');
}

/** Collision key: NFC + full case folding (so `A` = `a`, `é` (NFC) = `é` (NFD), `ß` = `ss`). */
function foldKey(rel: string): string {
  return rel.normalize('NFC').toUpperCase().toLowerCase().normalize('NFC');
}

const NATIVE_NAME = /(\.node|\.so(\.\d+)*|\.dylib|\.dll|\.exe)$|(^|\/)snapshot_blob\.bin$/i;

/** Refuse names of native code / compiled-artefact files (catalogue 5). Exported for the directory walker. */
export function checkNativeName(rel: string): void {
  if (NATIVE_NAME.test(rel)) {
    refuse(`upload contains native or compiled code (${showName(rel)}); the isolate tier runs JavaScript only — use tier: process for native addons`, { file: rel });
  }
}

/** Refuse file contents that are executables or V8 code caches/snapshots, judged by their first bytes. */
export function checkNativeMagic(rel: string, head: Uint8Array, nativeAllowed = false): void {
  if (head.length < 4) return;
  const b0 = head[0]!, b1 = head[1]!, b2 = head[2]!, b3 = head[3]!;
  const be = ((b0 << 24) | (b1 << 16) | (b2 << 8) | b3) >>> 0;
  const le = ((b3 << 24) | (b2 << 16) | (b1 << 8) | b0) >>> 0;
  const elf = be === 0x7f454c46;
  const macho = [0xfeedface, 0xfeedfacf, 0xcafebabe, 0xcefaedfe, 0xcffaedfe].includes(be);
  const pe = b0 === 0x4d && b1 === 0x5a && head.length >= 64; // 'MZ'
  // V8 code cache (cachedData) and snapshot blobs start with a little-endian magic 0xC0DE____.
  const v8cache = (le & 0xffff0000) >>> 0 === 0xc0de0000;
  if (v8cache || (!nativeAllowed && (elf || macho || (pe && !isProbablyText(head))))) {
    refuse(`upload contains native code or a V8 code cache/snapshot (${showName(rel)}); only JavaScript source is accepted — use tier: process for native addons`, { file: rel });
  }
}

function isProbablyText(head: Uint8Array): boolean {
  for (const b of head.subarray(0, 64)) if (b === 0) return false;
  return true;
}

/** Tracks every name in the archive and refuses collisions. */
class Tree {
  readonly #nodes = new Map<string, { kind: 'file' | 'dir'; explicit: boolean; rel: string }>();

  add(rel: string, kind: 'file' | 'dir'): void {
    const segments = rel.split('/');
    let prefix = '';
    for (let i = 0; i < segments.length - 1; i++) {
      prefix = prefix ? `${prefix}/${segments[i]}` : segments[i]!;
      const key = foldKey(prefix);
      const node = this.#nodes.get(key);
      if (!node) this.#nodes.set(key, { kind: 'dir', explicit: false, rel: prefix });
      else if (node.kind === 'file') refuse(`archive entry ${showName(rel)} puts a file inside ${showName(node.rel)}, which is also a file`);
      else if (node.rel !== prefix) refuse(`archive entries ${showName(node.rel)} and ${showName(prefix)} collide after Unicode normalisation or case folding`);
    }
    const key = foldKey(rel);
    const node = this.#nodes.get(key);
    if (!node) {
      this.#nodes.set(key, { kind, explicit: true, rel });
      return;
    }
    if (node.rel !== rel) refuse(`archive entries ${showName(node.rel)} and ${showName(rel)} collide after Unicode normalisation or case folding`);
    if (node.kind !== kind) refuse(`archive entry ${showName(rel)} is both a file and a directory`);
    if (kind === 'file' || node.explicit) refuse(`archive entry ${showName(rel)} appears twice`);
    node.explicit = true;
  }
}

/** Counts real output bytes against the caps and the time budget. */
class Budget {
  total = 0;
  readonly #deadline: number;
  readonly #limits: BuildLimits;
  readonly #uploadBytes: number;

  constructor(limits: BuildLimits, uploadBytes: number) {
    this.#limits = limits;
    this.#uploadBytes = Math.max(1, uploadBytes);
    this.#deadline = performance.now() + limits.extractTimeoutMs;
  }

  checkTime(): void {
    if (performance.now() > this.#deadline) {
      refuse(`archive took longer than ${this.#limits.extractTimeoutMs} ms to unpack`, { limit: this.#limits.extractTimeoutMs });
    }
  }

  /** Check a running total of expanded bytes (`what` names the stream for the message). */
  checkExpanded(bytes: number, what: string): void {
    const l = this.#limits;
    if (bytes > l.maxExtractedBytes) {
      refuse(`${what} expands past the ${l.maxExtractedBytes}-byte limit (decompression bomb?)`, { limit: l.maxExtractedBytes });
    }
    if (bytes > l.ratioFloorBytes && bytes / this.#uploadBytes > l.maxCompressionRatio) {
      refuse(`${what} expands more than ${l.maxCompressionRatio}× its compressed size (decompression bomb?)`, { limit: l.maxCompressionRatio });
    }
    this.checkTime();
  }

  addFileBytes(rel: string, entryBytes: number, chunk: number): void {
    this.total += chunk;
    if (entryBytes > this.#limits.maxEntryBytes) {
      refuse(`archive entry ${showName(rel)} expands past the ${this.#limits.maxEntryBytes}-byte per-file limit`, { limit: this.#limits.maxEntryBytes });
    }
    this.checkExpanded(this.total, `archive (at entry ${showName(rel)})`);
  }
}

/** Writes validated entries below `root`, never through a link, never outside. */
class Writer {
  readonly #root: string;
  readonly #madeDirs = new Set<string>();
  readonly #nativeAllowed: boolean;

  constructor(root: string, nativeAllowed: boolean) {
    this.#root = path.resolve(root);
    this.#nativeAllowed = nativeAllowed;
  }

  #resolve(rel: string): string {
    const abs = path.resolve(this.#root, ...rel.split('/'));
    if (!abs.startsWith(this.#root + path.sep)) refuse(`archive entry ${showName(rel)} resolves outside the archive`);
    return abs;
  }

  async dir(rel: string): Promise<void> {
    const abs = this.#resolve(rel);
    if (this.#madeDirs.has(abs)) return;
    await fsp.mkdir(abs, { recursive: true, mode: 0o755 });
    this.#madeDirs.add(abs);
  }

  async file(rel: string, source: AsyncIterable<Uint8Array>, budget: Budget): Promise<void> {
    if (!this.#nativeAllowed) checkNativeName(rel);
    const abs = this.#resolve(rel);
    const parent = path.dirname(abs);
    if (parent !== this.#root && !this.#madeDirs.has(parent)) {
      await fsp.mkdir(parent, { recursive: true, mode: 0o755 });
      this.#madeDirs.add(parent);
    }
    const fh = await fsp.open(abs, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o644);
    try {
      let written = 0;
      let head = new Uint8Array(0);
      for await (const chunk of source) {
        written += chunk.length;
        budget.addFileBytes(rel, written, chunk.length);
        if (head.length < 64) {
          head = Buffer.concat([head, chunk.subarray(0, 64 - head.length)]);
          if (head.length >= 64) checkNativeMagic(rel, head, this.#nativeAllowed);
        }
        await fh.write(chunk);
      }
      checkNativeMagic(rel, head, this.#nativeAllowed);
    } finally {
      await fh.close();
    }
  }
}

/** Unpack a zip held in memory into `root` (an empty directory). */
export async function extractZip(bytes: Uint8Array, root: string, limits: BuildLimits, nativeAllowed = false): Promise<void> {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const budget = new Budget(limits, buf.length);
  let zip: yauzl.ZipFile;
  try {
    zip = await yauzl.fromBufferPromise(buf, { lazyEntries: true, decodeStrings: false, validateEntrySizes: true, strictFileNames: true, autoClose: false });
  } catch (err) {
    refuse(`zip archive is corrupt or truncated: ${(err as Error).message}`);
  }
  try {
    if (zip.entryCount > limits.maxEntries) refuse(`zip archive has ${zip.entryCount} entries, more than ${limits.maxEntries}`, { limit: limits.maxEntries });
    const entries: yauzl.Entry[] = [];
    try {
      for await (const entry of zip.eachEntry()) {
        entries.push(entry);
        if (entries.length % 1024 === 0) budget.checkTime();
      }
    } catch (err) {
      if (err instanceof ContinuumError) throw err;
      refuse(`zip archive is corrupt or truncated: ${(err as Error).message}`);
    }
    // Pass 1: names, types, collisions, layout, local headers — before a single byte is written.
    const tree = new Tree();
    const plan: Array<{ entry: yauzl.Entry; rel: string; dir: boolean }> = [];
    for (const entry of entries) {
      const rawName = entry.fileNameRaw;
      const rel = checkEntryName(rawName, limits);
      const shown = showName(rel);
      const isDirName = rawName.length > 0 && rawName[rawName.length - 1] === 0x2f;
      const hostOs = entry.versionMadeBy >>> 8;
      const mode = (entry.externalFileAttributes >>> 16) & 0xffff;
      const type = mode & 0o170000;
      if (hostOs === 3 && type !== 0) {
        if (type === 0o120000) refuse(`zip entry ${shown} is a symbolic link; links are not accepted`);
        if (type !== 0o100000 && type !== 0o040000) refuse(`zip entry ${shown} is a device, FIFO or socket; only regular files and directories are accepted`);
        if ((type === 0o040000) !== isDirName) refuse(`zip entry ${shown} has a type that disagrees with its name`);
      }
      if (entry.isEncrypted()) refuse(`zip entry ${shown} is encrypted`);
      if (!isDirName && !entry.canDecodeFileData()) refuse(`zip entry ${shown} uses an unsupported compression method ${entry.compressionMethod}`);
      tree.add(rel, isDirName ? 'dir' : 'file');
      plan.push({ entry, rel, dir: isDirName });
    }
    await checkZipLayout(zip, plan, buf.length, budget);
    // Pass 2: write.
    const writer = new Writer(root, nativeAllowed);
    for (const { entry, rel, dir } of plan) {
      budget.checkTime();
      if (dir) {
        await writer.dir(rel);
        continue;
      }
      let stream: Readable;
      try {
        stream = await zip.openReadStreamPromise(entry);
      } catch (err) {
        refuse(`zip entry ${showName(rel)} cannot be read: ${(err as Error).message}`);
      }
      // A corrupt deflate stream can error before the writer starts reading (it awaits mkdir/open first).
      // pipeline() listens at once and destroys `source` with the error, which the writer's iteration
      // then throws; yauzl's own stream only emits the error, so reading it directly could hang.
      const source = new PassThrough();
      pipelineCallback(stream, source, () => {});
      try {
        await writer.file(rel, source, budget);
      } catch (err) {
        stream.destroy();
        if (err instanceof ContinuumError) throw err;
        refuse(`zip entry ${showName(rel)} is corrupt: ${(err as Error).message}`);
      }
    }
  } finally {
    zip.close();
  }
}

/** Central directory vs local headers, and no two entries sharing or overlapping bytes. */
async function checkZipLayout(
  zip: yauzl.ZipFile,
  plan: Array<{ entry: yauzl.Entry; rel: string }>,
  fileSize: number,
  budget: Budget,
): Promise<void> {
  const ranges: Array<{ start: number; end: number; rel: string }> = [];
  for (const { entry, rel } of plan) {
    let local: yauzl.LocalFileHeader;
    try {
      local = await zip.readLocalFileHeaderPromise(entry);
    } catch (err) {
      refuse(`zip entry ${showName(rel)} has a broken local header: ${(err as Error).message}`);
    }
    if (!Buffer.from(local.fileName).equals(entry.fileNameRaw)) {
      refuse(`zip entry ${showName(rel)}: the central directory and the local header disagree on the name`);
    }
    if (local.compressionMethod !== entry.compressionMethod) {
      refuse(`zip entry ${showName(rel)}: the central directory and the local header disagree on the compression method`);
    }
    if ((local.generalPurposeBitFlag & 0x8) === 0 && local.compressedSize !== entry.compressedSize && local.compressedSize !== 0xffffffff) {
      refuse(`zip entry ${showName(rel)}: the central directory and the local header disagree on the size`);
    }
    const end = local.fileDataStart + entry.compressedSize;
    if (end > fileSize) refuse(`zip entry ${showName(rel)} extends past the end of the archive (truncated?)`);
    ranges.push({ start: entry.relativeOffsetOfLocalHeader, end, rel });
    if (ranges.length % 1024 === 0) budget.checkTime();
  }
  ranges.sort((a, b) => a.start - b.start);
  for (let i = 1; i < ranges.length; i++) {
    if (ranges[i]!.start < ranges[i - 1]!.end) {
      refuse(`zip entries ${showName(ranges[i - 1]!.rel)} and ${showName(ranges[i]!.rel)} overlap (overlapping-entry zip bomb?)`);
    }
  }
}

const TAR_FILE_TYPES = new Set(['file', 'contiguous-file']);

/**
 * Unpack a gzip-compressed tar held in memory into `root` (an empty directory). Two passes over the bytes: the
 * first only reads headers and counts bytes (names, types, collisions, entry count, bombs), so a hostile archive
 * is refused before a single file is written; the second writes.
 */
export async function extractTgz(bytes: Uint8Array, root: string, limits: BuildLimits, nativeAllowed = false): Promise<void> {
  const tree = new Tree();
  await walkTgz(bytes, limits, async (rel, kind, entry, budget) => {
    tree.add(rel, kind);
    if (kind === 'file') {
      if (!nativeAllowed) checkNativeName(rel);
      let n = 0;
      for await (const chunk of entry) {
        n += (chunk as Uint8Array).length;
        budget.addFileBytes(rel, n, (chunk as Uint8Array).length);
      }
    } else entry.resume();
  });
  const writer = new Writer(root, nativeAllowed);
  await walkTgz(bytes, limits, async (rel, kind, entry, budget) => {
    if (kind === 'dir') {
      await writer.dir(rel);
      entry.resume();
    } else await writer.file(rel, entry as AsyncIterable<Uint8Array>, budget);
  });
}

type TarEntryStream = Readable & AsyncIterable<unknown>;

async function walkTgz(
  bytes: Uint8Array,
  limits: BuildLimits,
  onEntry: (rel: string, kind: 'file' | 'dir', entry: TarEntryStream, budget: Budget) => Promise<void>,
): Promise<void> {
  const budget = new Budget(limits, bytes.byteLength);
  let rawBytes = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      rawBytes += chunk.length;
      try {
        budget.checkExpanded(rawBytes, 'tar stream');
      } catch (err) {
        done(err as Error);
        return;
      }
      done(null, chunk);
    },
  });
  // latin1 keeps ustar / GNU long names as raw bytes so they can be checked as strict UTF-8 below.
  const extract = tar.extract({ filenameEncoding: 'latin1' } as Parameters<typeof tar.extract>[0]);
  let entries = 0;
  let failure: unknown = null;
  // Keep the most telling failure: a refusal of ours beats the stream errors it causes downstream.
  const fail = (err: unknown): void => {
    if (failure === null || (err instanceof ContinuumError && !(failure instanceof ContinuumError))) failure = err;
  };
  const consume = (async () => {
    for await (const entry of extract) {
      const h = entry.header;
      entries++;
      if (entries > limits.maxEntries) refuse(`tar archive has more than ${limits.maxEntries} entries`, { limit: limits.maxEntries });
      if (entries % 256 === 0) budget.checkTime();
      const fromPax = typeof (h.pax as Record<string, string> | undefined)?.path === 'string';
      const rel = checkEntryName(fromPax ? h.name : Buffer.from(h.name, 'latin1'), limits);
      const shown = showName(rel);
      const type = h.type ?? 'file';
      if (type === 'symlink' || type === 'link') refuse(`tar entry ${shown} is a ${type === 'link' ? 'hard link' : 'symbolic link'}; links are not accepted`);
      if (type !== 'directory' && !TAR_FILE_TYPES.has(type)) refuse(`tar entry ${shown} has type ${type}; only regular files and directories are accepted`);
      await onEntry(rel, type === 'directory' ? 'dir' : 'file', entry as unknown as TarEntryStream, budget);
    }
  })().catch((err: unknown) => {
    fail(err);
    extract.destroy();
  });
  try {
    await pipeline(
      Readable.from([Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)]),
      zlib.createGunzip({ chunkSize: 64 * 1024 }),
      counter,
      extract as unknown as Writable,
    );
  } catch (err) {
    fail(err);
  }
  await consume;
  if (failure instanceof ContinuumError) throw failure;
  if (failure) refuse(`tar.gz archive is corrupt or truncated: ${(failure as Error).message}`);
}
