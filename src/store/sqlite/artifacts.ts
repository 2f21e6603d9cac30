/**
 * ArtifactStore on the file system: `<root>/sha256/<aa>/<digest>`. A blob appears under its digest name
 * only complete and on disk: written to a temp file in the same directory, fsynced, renamed, and the
 * directory fsynced. Reads verify the digest; a corrupt file is moved aside, reported, and treated as missing.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ContinuumError } from '../../core/errors.ts';
import type { ArtifactStore } from '../contract.ts';

const DIGEST_RE = /^[0-9a-f]{64}$/;
const TMP_PREFIX = '.tmp-';
/** Temp files older than this at open are leftovers of a crash (a live writer renames within seconds). */
const STALE_TMP_MS = 10 * 60_000;

export function isDigest(value: unknown): value is string {
  return typeof value === 'string' && DIGEST_RE.test(value);
}

/** Throws `bad_request` before the string can reach a path. */
export function assertDigest(value: unknown): string {
  if (!isDigest(value)) throw new ContinuumError('bad_request', 'artifact digest must be 64 lowercase hex characters');
  return value;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export interface CorruptArtifact {
  digest: string;
  /** Where the bad file was moved. */
  quarantinedTo: string;
  actualDigest: string;
}

export interface FileArtifactStoreOptions {
  /** Called when a stored file no longer matches its digest. Default: a process warning. */
  onCorrupt?: (info: CorruptArtifact) => void;
}

async function fsyncDir(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | null)?.code === 'ENOENT';
}

export class FileArtifactStore implements ArtifactStore {
  readonly #root: string;
  readonly #blobs: string;
  readonly #quarantine: string;
  readonly #onCorrupt: (info: CorruptArtifact) => void;

  /** Create the directories (mode 0700) and remove stale temp files of earlier crashes. */
  static async open(root: string, options: FileArtifactStoreOptions = {}): Promise<FileArtifactStore> {
    const store = new FileArtifactStore(root, options);
    await mkdir(store.#blobs, { recursive: true, mode: 0o700 });
    await mkdir(store.#quarantine, { recursive: true, mode: 0o700 });
    await store.#removeStaleTemps();
    return store;
  }

  constructor(root: string, options: FileArtifactStoreOptions = {}) {
    this.#root = root;
    this.#blobs = join(root, 'sha256');
    this.#quarantine = join(root, 'corrupt');
    this.#onCorrupt =
      options.onCorrupt ??
      ((info) => process.emitWarning(`artifact ${info.digest} is corrupt (content hashes to ${info.actualDigest}); moved to ${info.quarantinedTo}`, 'ContinuumStoreWarning'));
  }

  get root(): string {
    return this.#root;
  }

  /** The path a digest is stored at (the digest is validated first). */
  pathOf(digest: string): string {
    const d = assertDigest(digest);
    return join(this.#blobs, d.slice(0, 2), d);
  }

  async put(bytes: Uint8Array): Promise<string> {
    if (!(bytes instanceof Uint8Array)) throw new ContinuumError('bad_request', 'artifact bytes must be a Uint8Array');
    const digest = sha256Hex(bytes);
    const final = this.pathOf(digest);
    const existing = await this.#read(final);
    if (existing && Buffer.compare(existing, bytes) === 0) return digest;

    const dir = join(this.#blobs, digest.slice(0, 2));
    const created = await mkdir(dir, { recursive: true, mode: 0o700 });
    if (created !== undefined) await fsyncDir(this.#blobs); // the new <aa> entry must survive too
    const tmp = join(dir, `${TMP_PREFIX}${randomBytes(8).toString('hex')}`);
    const fh = await open(tmp, 'wx', 0o600);
    try {
      try {
        await fh.writeFile(bytes);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, final);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    await fsyncDir(dir);
    return digest;
  }

  async get(digest: string): Promise<Uint8Array | null> {
    const path = this.pathOf(digest);
    const bytes = await this.#read(path);
    if (!bytes) return null;
    const actual = sha256Hex(bytes);
    if (actual === digest) return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const quarantinedTo = join(this.#quarantine, `${digest}.${Date.now()}`);
    try {
      await rename(path, quarantinedTo);
    } catch (err) {
      if (!isNotFound(err)) throw err; // someone else moved or replaced it meanwhile
    }
    this.#onCorrupt({ digest, quarantinedTo, actualDigest: actual });
    return null;
  }

  /** Whether a file is stored under the digest (content is verified by `get`, not here). */
  async has(digest: string): Promise<boolean> {
    try {
      return (await stat(this.pathOf(digest))).isFile();
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  async delete(digest: string): Promise<boolean> {
    const path = this.pathOf(digest);
    try {
      await unlink(path);
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
    await fsyncDir(join(this.#blobs, digest.slice(0, 2)));
    return true;
  }

  async list(): Promise<string[]> {
    const out: string[] = [];
    for (const prefix of await readdir(this.#blobs)) {
      if (!/^[0-9a-f]{2}$/.test(prefix)) continue;
      let names: string[];
      try {
        names = await readdir(join(this.#blobs, prefix));
      } catch (err) {
        if (isNotFound(err)) continue;
        throw err;
      }
      for (const name of names) if (isDigest(name) && name.startsWith(prefix)) out.push(name);
    }
    return out.sort();
  }

  async close(): Promise<void> {
    // Nothing is held open between calls.
  }

  async #read(path: string): Promise<Buffer | null> {
    try {
      return await readFile(path);
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async #removeStaleTemps(): Promise<void> {
    const now = Date.now();
    for (const prefix of await readdir(this.#blobs)) {
      const dir = join(this.#blobs, prefix);
      let names: string[];
      try {
        names = await readdir(dir);
      } catch {
        continue;
      }
      for (const name of names) {
        if (!name.startsWith(TMP_PREFIX)) continue;
        const path = join(dir, name);
        try {
          if (now - (await stat(path)).mtimeMs > STALE_TMP_MS) await unlink(path);
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
      }
    }
  }
}
