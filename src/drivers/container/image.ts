/**
 * Container images: import of an uploaded OCI image layout tarball or a `docker save` tarball into a
 * content-addressed store, and the safe unpacking of its layers into one read-only rootfs per image.
 *
 * Store layout under `dir` (one per node data dir):
 *   blobs/sha256/<hex>   layers, manifests and configs, each verified against its digest
 *   rootfs/<hex>/        the image's layers applied in order (hex = the config digest); shared read-only
 *   images/<hex>.json    what running needs (entrypoint, env, user…), written last: an image exists once it is there
 *
 * Policy, each violation refusing the whole upload with `bad_bundle` (size caps: `payload_too_large`):
 * - the outer tarball holds regular files, directories and symlinks between its own files only;
 * - every blob's sha256 must match its digest (OCI), every layer's decompressed sha256 its `diff_id`;
 * - layer entries: no absolute or `..` names; parents are resolved inside the rootfs (a symlinked parent is
 *   followed as if the rootfs were `/`, so it can never lead out); symlinks whose target leaves the rootfs
 *   and hardlinks to anything but a regular file already in it are refused; devices, FIFOs and sockets are
 *   refused; setuid/setgid/sticky bits are dropped and everything is owned by root (the image's user reads
 *   files through the owner's read/execute bits, copied to group and others);
 * - whiteouts: `.wh.<name>` removes a lower layer's entry, `.wh..wh..opq` empties a directory of lower layers' entries;
 * - caps (IMAGE_DEFAULTS): upload bytes and entries, layers, decompressed bytes (gzip bombs) and entries;
 * - configs that need privileges: a port below 1024, a non-linux/amd64 platform, a user name the image's
 *   /etc/passwd does not define; a WorkingDir that is not canonical or lies in /proc, /sys or /dev. User 0 is accepted: the runtime maps it to an unprivileged host uid.
 * Nothing is half stored: everything is staged in a private directory and moved into place at the end.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsc, createReadStream } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { IMAGE_DEFAULTS } from '../../core/defaults.ts';
import { ContinuumError } from '../../core/errors.ts';
import { Leases } from '../../core/leases.ts';

export interface ImageRunConfig {
  /** Entrypoint followed by Cmd, as the image declares them. */
  args: string[];
  /** `KEY=value` pairs from the image. */
  env: string[];
  workingDir: string;
  uid: number;
  gid: number;
}

export interface StoredImage {
  /** `sha256:<hex>` of the image config: the image's identity. */
  id: string;
  rootfs: string;
  config: ImageRunConfig;
  layers: string[];
  /** Ports the image declares (informative: the contract is `$PORT`). */
  exposedPorts: number[];
}

export type ImageLimits = { [K in keyof typeof IMAGE_DEFAULTS]: number };

const HEX64 = /^[a-f0-9]{64}$/;

function refuse(message: string): never {
  throw new ContinuumError('bad_bundle', `image refused: ${message}`);
}

function tooLarge(message: string): never {
  throw new ContinuumError('payload_too_large', `image refused: ${message}`);
}

/** A tar member name as a clean relative path ('' for the root itself); refuses absolute and `..` names. */
export function cleanName(name: string): string {
  if (name.includes('\0')) refuse('an entry name contains NUL');
  if (name.startsWith('/')) refuse(`absolute entry name ${JSON.stringify(name.slice(0, 200))}`);
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) refuse(`entry name leaves the root: ${JSON.stringify(name.slice(0, 200))}`);
  return parts.join('/');
}

/** sha256 of a file, as `sha256:<hex>`. */
async function digestOf(file: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(file), h);
  return `sha256:${h.digest('hex')}`;
}

function hexOf(digest: unknown, what: string): string {
  if (typeof digest !== 'string' || !digest.startsWith('sha256:') || !HEX64.test(digest.slice(7))) refuse(`${what} has no sha256 digest`);
  return digest.slice(7);
}

/**
 * Copies owner read/execute to group and others and drops setuid, setgid, sticky and foreign write bits;
 * a world-writable sticky directory (/tmp) stays one: runtimes give a tmpfs mounted on it its mode.
 */
function safeMode(mode: number, directory = false): number {
  if (directory && (mode & 0o1777) === 0o1777) return 0o1777;
  const m = mode & 0o755;
  return m | ((m & 0o500) >> 3) | ((m & 0o500) >> 6);
}

/**
 * Resolves a relative path inside `root`, following symlinks as if `root` were `/` (targets and `..`
 * clamp at the root, as in a chroot), so the result is always inside it. Missing directories are created
 * when `create` is set; otherwise null is returned for a missing path.
 */
async function resolveInside(root: string, rel: string, create: boolean): Promise<string | null> {
  const pending = rel.split('/').filter((p) => p !== '' && p !== '.');
  const done: string[] = [];
  let hops = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '..') {
      done.pop();
      continue;
    }
    const here = path.join(root, ...done, part);
    let st;
    try {
      st = await fsp.lstat(here);
    } catch {
      if (!create) return null;
      await fsp.mkdir(here, { mode: 0o755 });
      done.push(part);
      continue;
    }
    if (st.isSymbolicLink()) {
      if (++hops > 40) refuse(`too many symlinks resolving ${JSON.stringify(rel.slice(0, 200))}`);
      const target = await fsp.readlink(here);
      if (target.startsWith('/')) done.length = 0;
      pending.unshift(...target.split('/').filter((p) => p !== '' && p !== '.'));
      continue;
    }
    if (!st.isDirectory() && pending.length > 0) refuse(`${JSON.stringify(rel.slice(0, 200))} goes through a non-directory`);
    done.push(part);
  }
  return path.join(root, ...done);
}

interface Budget {
  bytes: number;
  entries: number;
}

/** Applies one layer (a tar stream, already decompressed) onto `root`. */
async function applyLayer(root: string, input: Readable, budget: Budget, limits: ImageLimits): Promise<void> {
  const created = new Set<string>();
  const extract = tar.extract();
  const done = pipeline(input, extract);
  // A refusal below destroys the stream: the pipeline's own rejection then says nothing new.
  done.catch(() => {});
  for await (const entry of extract) {
    const h = entry.header;
    if (++budget.entries > limits.unpackedEntries) tooLarge(`more than ${limits.unpackedEntries} entries in its layers`);
    const rel = cleanName(h.name);
    const base = path.posix.basename(rel);
    if (rel === '') {
      entry.resume();
      continue;
    }
    const parent = (await resolveInside(root, path.posix.dirname(rel), true))!;
    const target = path.join(parent, base);
    if (base === '.wh..wh..opq') {
      const dirRel = path.posix.dirname(rel);
      for (const child of await fsp.readdir(parent)) {
        const childRel = dirRel === '.' ? child : `${dirRel}/${child}`;
        if (!created.has(childRel)) await fsp.rm(path.join(parent, child), { recursive: true, force: true });
      }
      entry.resume();
      continue;
    }
    if (base.startsWith('.wh.')) {
      const victim = base.slice(4);
      if (victim === '' || victim === '.' || victim === '..') refuse(`bad whiteout ${JSON.stringify(rel.slice(0, 200))}`);
      await fsp.rm(path.join(parent, victim), { recursive: true, force: true });
      entry.resume();
      continue;
    }
    const existing = await fsp.lstat(target).catch(() => null);
    switch (h.type) {
      case 'directory':
        if (existing?.isDirectory()) await fsp.chmod(target, safeMode(h.mode ?? 0o755, true));
        else {
          if (existing) await fsp.rm(target, { recursive: true, force: true });
          await fsp.mkdir(target, { mode: 0o700 });
          await fsp.chmod(target, safeMode(h.mode ?? 0o755, true));
        }
        entry.resume();
        break;
      case 'file':
      case 'contiguous-file': {
        if (existing) await fsp.rm(target, { recursive: true, force: true });
        const fh = await fsp.open(target, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
        try {
          for await (const chunk of entry as AsyncIterable<Buffer>) {
            budget.bytes += chunk.length;
            if (budget.bytes > limits.unpackedBytes) tooLarge(`its layers unpack to more than ${limits.unpackedBytes} bytes`);
            await fh.write(chunk);
          }
          await fh.chmod(safeMode(h.mode ?? 0o644));
        } finally {
          await fh.close();
        }
        break;
      }
      case 'symlink': {
        const link = h.linkname ?? '';
        // Lexically, from the link's directory (absolute targets from the rootfs's /), it must stay inside.
        const from = link.startsWith('/') ? [] : path.posix.dirname(rel).split('/').filter((p) => p !== '.');
        for (const part of link.split('/')) {
          if (part === '' || part === '.') continue;
          if (part === '..') {
            if (from.length === 0) refuse(`symlink ${JSON.stringify(rel.slice(0, 200))} points outside the image`);
            from.pop();
          } else from.push(part);
        }
        if (existing) await fsp.rm(target, { recursive: true, force: true });
        await fsp.symlink(link, target);
        entry.resume();
        break;
      }
      case 'link': {
        const linkRel = cleanName(h.linkname ?? '');
        const linkParent = await resolveInside(root, path.posix.dirname(linkRel), false);
        const source = linkParent === null ? null : path.join(linkParent, path.posix.basename(linkRel));
        const st = source === null ? null : await fsp.lstat(source).catch(() => null);
        if (!st?.isFile()) refuse(`hardlink ${JSON.stringify(rel.slice(0, 200))} does not point to a file of the image`);
        if (existing) await fsp.rm(target, { recursive: true, force: true });
        await fsp.link(source!, target);
        entry.resume();
        break;
      }
      default:
        refuse(`${h.type} entry ${JSON.stringify(rel.slice(0, 200))} (devices, FIFOs and sockets are not allowed)`);
    }
    created.add(rel);
  }
  await done;
}

/** Counts and hashes what flows through. */
function meter(onBytes: (n: number) => void, hash: ReturnType<typeof createHash>): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      try {
        onBytes(chunk.length);
        hash.update(chunk);
        cb(null, chunk);
      } catch (err) {
        cb(err as Error);
      }
    },
  });
}

async function readHead(file: string): Promise<Buffer> {
  const fh = await fsp.open(file, 'r');
  try {
    const buf = Buffer.alloc(4);
    const { bytesRead } = await fh.read(buf, 0, 4, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

interface Parsed {
  configFile: string;
  configDigest: string;
  /** Layer files in order, with the digest the manifest names (OCI) or null (docker save: hashed here). */
  layers: Array<{ file: string; digest: string | null }>;
}

export class ImageStore {
  readonly dir: string;
  readonly limits: ImageLimits;
  /** Imports and prunes run one at a time: a prune never sees an import's blobs without its record. */
  #serial: Promise<unknown> = Promise.resolve();
  /** Images a caller holds between import and storing what refers to them (a deploy): never pruned. */
  readonly #leases = new Leases();

  constructor(dir: string, limits: Partial<ImageLimits> = {}) {
    this.dir = dir;
    this.limits = { ...IMAGE_DEFAULTS, ...limits };
  }

  async #ensureDirs(): Promise<void> {
    for (const d of ['blobs/sha256', 'rootfs', 'images', 'tmp']) await fsp.mkdir(path.join(this.dir, d), { recursive: true, mode: 0o711 });
  }

  /** A stored image by id (`sha256:<hex>` or `<hex>`), or null. */
  async get(id: string): Promise<StoredImage | null> {
    const hex = id.startsWith('sha256:') ? id.slice(7) : id;
    if (!HEX64.test(hex)) return null;
    try {
      return JSON.parse(await fsp.readFile(path.join(this.dir, 'images', `${hex}.json`), 'utf8')) as StoredImage;
    } catch {
      return null;
    }
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#serial.then(fn, fn);
    this.#serial = run.catch(() => {});
    return run;
  }

  /**
   * Imports an uploaded tarball; resolves with the stored image (the same one if it was already stored)
   * and a lease on it: `prune` keeps it until `release` is called (a deploy releases once its version is
   * stored, or refused).
   */
  async importLeased(upload: AsyncIterable<Uint8Array> | Readable): Promise<{ image: StoredImage; release: () => void }> {
    return this.#exclusive(async () => {
      const image = await this.#import(upload);
      return { image, release: this.#leases.hold([image.id]) };
    });
  }

  /** Imports an uploaded tarball without a lease (images the caller keeps by naming them to `prune`). */
  import(upload: AsyncIterable<Uint8Array> | Readable): Promise<StoredImage> {
    return this.#exclusive(() => this.#import(upload));
  }

  async #import(upload: AsyncIterable<Uint8Array> | Readable): Promise<StoredImage> {
    await this.#ensureDirs();
    const staging = await fsp.mkdtemp(path.join(this.dir, 'tmp', 'import-'));
    try {
      await this.#stage(Readable.from(upload), staging);
      const parsed = await this.#parse(staging);
      const hex = parsed.configDigest.slice(7);
      const known = await this.get(hex);
      if (known) return known;
      const config = await this.#readJson(parsed.configFile, 'config');
      const rootfsTmp = path.join(staging, '.rootfs');
      await fsp.mkdir(rootfsTmp, { mode: 0o755 });
      const layerDigests = await this.#unpack(parsed, config, rootfsTmp);
      const image: StoredImage = {
        id: parsed.configDigest,
        rootfs: path.join(this.dir, 'rootfs', hex),
        config: await runConfig(config, rootfsTmp),
        layers: layerDigests,
        exposedPorts: exposedPorts(config),
      };
      // Blobs first (each complete and verified), then the rootfs, then the record that makes it exist.
      const blobs = [...parsed.layers.map((l, i) => ({ file: l.file, hex: layerDigests[i]!.slice(7) })), { file: parsed.configFile, hex }];
      for (const b of blobs) {
        const dest = path.join(this.dir, 'blobs/sha256', b.hex);
        if (!(await fsp.stat(dest).catch(() => null))) await fsp.rename(b.file, dest).catch(() => fsp.copyFile(b.file, dest));
      }
      await fsp.rm(image.rootfs, { recursive: true, force: true });
      await fsp.rename(rootfsTmp, image.rootfs);
      const record = path.join(staging, '.record');
      await fsp.writeFile(record, JSON.stringify(image) + '\n', { mode: 0o644 });
      await fsp.rename(record, path.join(this.dir, 'images', `${hex}.json`));
      return image;
    } finally {
      await fsp.rm(staging, { recursive: true, force: true });
    }
  }

  /** Writes the outer tarball's files into `staging` (symlinks between its own files are recorded as such). */
  async #stage(input: Readable, staging: string): Promise<void> {
    let bytes = 0;
    let entries = 0;
    const limits = this.limits;
    const counter = new Transform({
      transform(chunk: Buffer, _e, cb) {
        bytes += chunk.length;
        if (bytes > limits.uploadBytes) cb(new ContinuumError('payload_too_large', `image refused: the upload exceeds ${limits.uploadBytes} bytes`));
        else cb(null, chunk);
      },
    });
    const extract = tar.extract();
    const done = pipeline(input, counter, extract);
    // Keep the pipeline's rejection observed while entries are processed.
    done.catch(() => {});
    try {
      for await (const entry of extract) {
        const h = entry.header;
        if (++entries > limits.uploadEntries) tooLarge(`more than ${limits.uploadEntries} files in the upload`);
        const rel = cleanName(h.name);
        const target = path.join(staging, 'o', rel);
        if (h.type === 'directory' || rel === '') {
          await fsp.mkdir(target, { recursive: true });
          entry.resume();
        } else if (h.type === 'file' || h.type === 'contiguous-file') {
          await fsp.mkdir(path.dirname(target), { recursive: true });
          const fh = await fsp.open(target, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
          try {
            for await (const chunk of entry as AsyncIterable<Buffer>) await fh.write(chunk);
          } finally {
            await fh.close();
          }
        } else if (h.type === 'symlink' || h.type === 'link') {
          // docker save links repeated layers to one file: keep the link if it stays among the upload's files.
          const link = h.linkname ?? '';
          const resolved = h.type === 'link' ? cleanName(link) : cleanName(path.posix.join(path.posix.dirname(rel), link));
          if (link.startsWith('/')) refuse(`the upload links ${JSON.stringify(rel.slice(0, 200))} outside itself`);
          await fsp.mkdir(path.dirname(target), { recursive: true });
          await fsp.symlink(path.join(staging, 'o', resolved), target);
          entry.resume();
        } else refuse(`${h.type} entry ${JSON.stringify(rel.slice(0, 200))} in the upload`);
      }
    } catch (err) {
      extract.destroy();
      throw err;
    }
    await done;
  }

  async #readJson(file: string, what: string): Promise<Record<string, unknown>> {
    const st = await fsp.stat(file).catch(() => null);
    if (!st?.isFile()) refuse(`the ${what} is missing`);
    if (st.size > this.limits.documentBytes) tooLarge(`the ${what} exceeds ${this.limits.documentBytes} bytes`);
    try {
      const value = JSON.parse(await fsp.readFile(file, 'utf8')) as unknown;
      if (value === null || typeof value !== 'object') throw new Error('not an object');
      return value as Record<string, unknown>;
    } catch {
      refuse(`the ${what} is not valid JSON`);
    }
  }

  /** A file of the upload, which must stay inside it after symlinks. */
  async #member(staging: string, rel: string): Promise<string> {
    const base = path.join(staging, 'o');
    const file = path.join(base, cleanName(rel));
    const real = await fsp.realpath(file).catch(() => refuse(`${JSON.stringify(rel.slice(0, 200))} is missing from the upload`));
    if (!real.startsWith(`${await fsp.realpath(base)}/`)) refuse(`${JSON.stringify(rel.slice(0, 200))} points outside the upload`);
    return real;
  }

  async #blob(staging: string, digest: unknown, what: string): Promise<string> {
    const hex = hexOf(digest, what);
    const file = await this.#member(staging, `blobs/sha256/${hex}`);
    if ((await digestOf(file)) !== `sha256:${hex}`) refuse(`the ${what}'s content does not match its digest`);
    return file;
  }

  async #parse(staging: string): Promise<Parsed> {
    const has = async (name: string) => (await fsp.lstat(path.join(staging, 'o', name)).catch(() => null)) !== null;
    if (await has('index.json')) {
      let doc = await this.#readJson(await this.#member(staging, 'index.json'), 'index');
      // An index may point at a nested index (multi-platform): pick linux/amd64, or the only manifest.
      for (let depth = 0; depth < 3 && Array.isArray(doc.manifests); depth++) {
        const list = doc.manifests as Array<{ digest?: string; platform?: { os?: string; architecture?: string } }>;
        const pick = list.length === 1 ? list[0] : list.find((m) => m.platform?.os === 'linux' && m.platform?.architecture === 'amd64');
        if (!pick) refuse('the index has no linux/amd64 manifest');
        doc = await this.#readJson(await this.#blob(staging, pick.digest, 'manifest'), 'manifest');
      }
      const config = doc.config as { digest?: string } | undefined;
      const layers = doc.layers as Array<{ digest?: string; mediaType?: string }> | undefined;
      if (!config || !Array.isArray(layers)) refuse('the manifest has no config or layers');
      if (layers.length > this.limits.layers) tooLarge(`more than ${this.limits.layers} layers`);
      return {
        configFile: await this.#blob(staging, config.digest, 'config'),
        configDigest: `sha256:${hexOf(config.digest, 'config')}`,
        layers: await Promise.all(layers.map(async (l) => ({ file: await this.#blob(staging, l.digest, 'layer'), digest: l.digest! }))),
      };
    }
    if (await has('manifest.json')) {
      const list = (await this.#readJson(await this.#member(staging, 'manifest.json'), 'manifest')) as unknown as Array<{ Config?: string; Layers?: string[] }>;
      if (!Array.isArray(list) || list.length !== 1) refuse('manifest.json must describe exactly one image');
      const m = list[0]!;
      if (typeof m.Config !== 'string' || !Array.isArray(m.Layers)) refuse('manifest.json has no Config or Layers');
      if (m.Layers.length > this.limits.layers) tooLarge(`more than ${this.limits.layers} layers`);
      const configFile = await this.#member(staging, m.Config);
      return {
        configFile,
        configDigest: await digestOf(configFile),
        layers: await Promise.all(m.Layers.map(async (l) => ({ file: await this.#member(staging, String(l)), digest: null }))),
      };
    }
    refuse('neither an OCI image layout (index.json) nor a docker save tarball (manifest.json)');
  }

  /** Applies the layers in order onto `root`; returns each layer's blob digest. */
  async #unpack(parsed: Parsed, config: Record<string, unknown>, root: string): Promise<string[]> {
    const diffIds = (config.rootfs as { diff_ids?: unknown } | undefined)?.diff_ids;
    if (!Array.isArray(diffIds) || diffIds.length !== parsed.layers.length) refuse('the config\'s rootfs.diff_ids do not match the layers');
    const budget: Budget = { bytes: 0, entries: 0 };
    const digests: string[] = [];
    for (const [i, layer] of parsed.layers.entries()) {
      const head = await readHead(layer.file);
      const gzip = head[0] === 0x1f && head[1] === 0x8b;
      if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) refuse('zstd-compressed layers are not supported (use gzip or plain tar)');
      const diff = createHash('sha256');
      // The decompressed stream is counted too, so a bomb of tar padding stops at the cap as well.
      let raw = 0;
      const limit = this.limits.unpackedBytes;
      const metered = meter((n) => {
        raw += n;
        if (raw > limit * 2) tooLarge(`a layer decompresses to more than ${limit * 2} bytes`);
      }, diff);
      const source = createReadStream(layer.file);
      const stream = gzip ? source.pipe(createGunzip()).on('error', (e) => metered.destroy(e)) : source;
      source.on('error', (e) => metered.destroy(e));
      try {
        await applyLayer(root, stream.pipe(metered), budget, this.limits);
      } catch (err) {
        if (err instanceof ContinuumError) throw err;
        refuse(`layer ${i + 1} is not a valid tar${gzip ? '.gz' : ''} stream`);
      }
      if (`sha256:${diff.digest('hex')}` !== diffIds[i]) refuse(`layer ${i + 1} does not match its diff_id`);
      digests.push(layer.digest ?? (await digestOf(layer.file)));
    }
    await fsp.chmod(root, 0o755);
    return digests;
  }

  /**
   * Garbage collection: removes every image that is neither in `keep` nor leased — its record first (so it
   * stops existing), then its rootfs — and then every blob no remaining image names. Resolves with the ids
   * removed. The caller's `keep` must hold every image a stored version or a running instance uses.
   */
  prune(keep: Set<string>): Promise<string[]> {
    return this.#exclusive(async () => {
      const removed: string[] = [];
      const kept: StoredImage[] = [];
      for (const name of await fsp.readdir(path.join(this.dir, 'images')).catch(() => [] as string[])) {
        const hex = name.replace(/\.json$/, '');
        const id = `sha256:${hex}`;
        if (keep.has(id) || this.#leases.has(id)) {
          const image = await this.get(hex);
          if (image) kept.push(image);
          continue;
        }
        await fsp.rm(path.join(this.dir, 'images', name), { force: true });
        await fsp.rm(path.join(this.dir, 'rootfs', hex), { recursive: true, force: true });
        removed.push(id);
      }
      // What a crash left: a rootfs without its record, an import's staging directory.
      const keptHex = new Set(kept.map((i) => i.id.slice(7)));
      for (const hex of await fsp.readdir(path.join(this.dir, 'rootfs')).catch(() => [] as string[])) {
        if (!keptHex.has(hex)) await fsp.rm(path.join(this.dir, 'rootfs', hex), { recursive: true, force: true });
      }
      for (const name of await fsp.readdir(path.join(this.dir, 'tmp')).catch(() => [] as string[])) {
        if (name.startsWith('import-')) await fsp.rm(path.join(this.dir, 'tmp', name), { recursive: true, force: true });
      }
      const named = new Set(kept.flatMap((i) => [i.id, ...i.layers]).map((d) => d.replace(/^sha256:/, '')));
      for (const hex of await fsp.readdir(path.join(this.dir, 'blobs/sha256')).catch(() => [] as string[])) {
        if (!named.has(hex)) await fsp.rm(path.join(this.dir, 'blobs/sha256', hex), { force: true });
      }
      return removed;
    });
  }

  /** A fresh private directory under the store (on the same filesystem), for callers building rootfs trees. */
  async scratch(): Promise<string> {
    await this.#ensureDirs();
    return fsp.mkdtemp(path.join(this.dir, 'tmp', `s-${randomBytes(3).toString('hex')}-`));
  }
}

function exposedPorts(config: Record<string, unknown>): number[] {
  const ports = (config.config as { ExposedPorts?: Record<string, unknown> } | undefined)?.ExposedPorts ?? {};
  return Object.keys(ports).map((k) => Number.parseInt(k, 10)).filter((n) => Number.isInteger(n));
}

async function lookupId(root: string, file: 'passwd' | 'group', name: string): Promise<{ id: number; gid: number } | null> {
  const resolved = await resolveInside(root, `etc/${file}`, false);
  const st = resolved === null ? null : await fsp.lstat(resolved).catch(() => null);
  if (!st?.isFile() || st.size > 1024 * 1024) return null;
  for (const line of (await fsp.readFile(resolved!, 'utf8')).split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f.length >= 3) return { id: Number(f[2]), gid: Number(f[3] ?? f[2]) };
  }
  return null;
}

/** What running the image needs, refusing what would need privileges. */
async function runConfig(config: Record<string, unknown>, root: string): Promise<ImageRunConfig> {
  if (config.os !== undefined && config.os !== 'linux') refuse(`the image is for ${String(config.os)}, not linux`);
  if (config.architecture !== undefined && config.architecture !== 'amd64') refuse(`the image is for ${String(config.architecture)}, not amd64`);
  const c = (config.config ?? {}) as { Entrypoint?: string[] | null; Cmd?: string[] | null; Env?: string[] | null; WorkingDir?: string; User?: string };
  const args = [...(c.Entrypoint ?? []), ...(c.Cmd ?? [])];
  if (args.length === 0 || !args.every((a) => typeof a === 'string')) refuse('the image has no Entrypoint or Cmd');
  const low = exposedPorts(config).filter((p) => p < 1024);
  if (low.length > 0) refuse(`the image exposes port ${low[0]}, below 1024 (binding it needs a capability containers do not get; serve on $PORT)`);
  const env = (c.Env ?? []).filter((e) => typeof e === 'string' && e.includes('='));
  const [userPart = '', groupPart] = (c.User ?? '').split(':');
  let uid = 0;
  let gid = 0;
  if (/^\d+$/.test(userPart)) {
    uid = Number(userPart);
    gid = uid;
  } else if (userPart !== '') {
    const found = await lookupId(root, 'passwd', userPart);
    if (!found) refuse(`the image's user ${JSON.stringify(userPart.slice(0, 100))} is not in its /etc/passwd`);
    uid = found.id;
    gid = found.gid;
  }
  if (groupPart !== undefined && groupPart !== '') {
    if (/^\d+$/.test(groupPart)) gid = Number(groupPart);
    else {
      const found = await lookupId(root, 'group', groupPart);
      if (!found) refuse(`the image's group ${JSON.stringify(groupPart.slice(0, 100))} is not in its /etc/group`);
      gid = found.id;
    }
  }
  if (!Number.isInteger(uid) || !Number.isInteger(gid) || uid > 65535 || gid > 65535) refuse('the image\'s user or group id is out of range');
  const workingDir = c.WorkingDir || '/';
  // Catalogue 10 (CVE-2024-21626): a cwd through /proc/self/fd/<n> could land on a host directory.
  if (typeof workingDir !== 'string' || !workingDir.startsWith('/') || path.posix.normalize(workingDir) !== workingDir.replace(/(.)\/$/, '$1') || /^\/(proc|sys|dev)(\/|$)/.test(workingDir)) {
    refuse(`the image's WorkingDir ${JSON.stringify(String(workingDir).slice(0, 100))} is not a canonical path in its own filesystem`);
  }
  return { args, env, workingDir, uid, gid };
}
