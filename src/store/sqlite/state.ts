/**
 * StateStore on SQLite: `<dataDir>/state.db`, WAL with synchronous=FULL, so that a write that resolved is on
 * disk (reliability claim 7). Calls are synchronous underneath; each write costs one fsync of the WAL.
 */
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { FunctionConfig } from '../../core/config.ts';
import { ContinuumError } from '../../core/errors.ts';
import { assertName } from '../../core/names.ts';
import type { FunctionRecord, VersionFile, VersionRecord } from '../../core/types.ts';
import type { StateStore } from '../contract.ts';
import { openDatabase, transaction } from './db.ts';
import { STATE_MIGRATIONS } from './migrations.ts';

const VERSION_ID_RE = /^[A-Za-z0-9_-]{1,128}$/;
const DIGEST_RE = /^[0-9a-f]{64}$/;
const META_KEY_RE = /^[A-Za-z0-9._:/-]{1,200}$/;

interface FunctionRow {
  name: string;
  config: string;
  active_version: string | null;
  created_at: string;
  updated_at: string;
}

interface VersionRow {
  function_name: string;
  id: string;
  bundle_digest: string;
  bundle_bytes: number;
  format: string;
  export_name: string;
  config: string;
  dependencies: string;
  created_at: string;
  /** JSON array of VersionFile, or null when the version has none. */
  files: string | null;
  image: string | null;
}

function toFunction(row: FunctionRow): FunctionRecord {
  return {
    name: row.name,
    config: JSON.parse(row.config) as FunctionConfig,
    activeVersion: row.active_version,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function toVersion(row: VersionRow): VersionRecord {
  return {
    id: row.id,
    functionName: row.function_name,
    bundleDigest: row.bundle_digest,
    bundleBytes: row.bundle_bytes,
    format: row.format as VersionRecord['format'],
    exportName: row.export_name,
    config: JSON.parse(row.config) as FunctionConfig,
    dependencies: JSON.parse(row.dependencies) as VersionRecord['dependencies'],
    ...(row.files ? { files: JSON.parse(row.files) as VersionFile[] } : {}),
    ...(row.image ? { image: row.image } : {}),
    createdAt: row.created_at,
  };
}

const IMAGE_RE = /^sha256:[0-9a-f]{64}$/;

function assertVersionFile(f: VersionFile): VersionFile {
  if (typeof f?.path !== 'string' || f.path === '' || typeof f.digest !== 'string' || !DIGEST_RE.test(f.digest) || !Number.isSafeInteger(f.bytes) || f.bytes < 0) {
    throw new ContinuumError('bad_request', 'a version file needs a path, a sha256 digest and a size');
  }
  return { path: f.path, digest: f.digest, bytes: f.bytes };
}

function assertVersionId(id: unknown): string {
  if (typeof id !== 'string' || !VERSION_ID_RE.test(id)) throw new ContinuumError('bad_request', 'version id is invalid');
  return id;
}

function assertConfig(config: unknown): FunctionConfig {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new ContinuumError('bad_request', 'function config must be an object');
  }
  return config as FunctionConfig;
}

function assertTimestamp(value: unknown, what: string): string {
  if (typeof value !== 'string' || Number.isNaN(Date.parse(value))) throw new ContinuumError('bad_request', `${what} must be an ISO timestamp`);
  return value;
}

export class SqliteStateStore implements StateStore {
  readonly #db: DatabaseSync;
  readonly #s: Record<
    | 'insertFunction' | 'getFunction' | 'listFunctions' | 'updateFunction' | 'deleteFunction'
    | 'insertVersion' | 'getVersion' | 'listVersions' | 'getMeta' | 'setMeta',
    StatementSync
  >;
  #closed = false;

  /** Open (creating and migrating as needed) the state database at `path`. */
  static open(path: string, options: { busyTimeoutMs?: number } = {}): SqliteStateStore {
    return new SqliteStateStore(
      openDatabase(path, { label: 'state.db', synchronous: 'FULL', migrations: STATE_MIGRATIONS, busyTimeoutMs: options.busyTimeoutMs }),
    );
  }

  constructor(db: DatabaseSync) {
    this.#db = db;
    this.#s = {
      insertFunction: db.prepare(
        'INSERT INTO functions (name, config, active_version, created_at, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO NOTHING',
      ),
      getFunction: db.prepare('SELECT * FROM functions WHERE name = ?'),
      listFunctions: db.prepare('SELECT * FROM functions ORDER BY name'),
      updateFunction: db.prepare('UPDATE functions SET config = ?, active_version = ?, updated_at = ? WHERE name = ?'),
      deleteFunction: db.prepare('DELETE FROM functions WHERE name = ?'),
      insertVersion: db.prepare(
        `INSERT INTO versions (function_name, id, bundle_digest, bundle_bytes, format, export_name, config, dependencies, created_at, files, image)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(function_name, id) DO NOTHING`,
      ),
      getVersion: db.prepare('SELECT * FROM versions WHERE function_name = ? AND id = ?'),
      listVersions: db.prepare('SELECT * FROM versions WHERE function_name = ? ORDER BY created_at DESC, rowid DESC'),
      getMeta: db.prepare('SELECT value FROM meta WHERE key = ?'),
      setMeta: db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value'),
    };
  }

  /** The underlying handle, for diagnostics (integrity checks, backups). */
  get database(): DatabaseSync {
    return this.#db;
  }

  async createFunction(record: FunctionRecord): Promise<void> {
    const name = assertName(record.name, 'function name');
    const config = assertConfig(record.config);
    if (record.activeVersion !== null) throw new ContinuumError('bad_request', 'a new function has no active version yet');
    const createdAt = assertTimestamp(record.createdAt, 'createdAt');
    const updatedAt = assertTimestamp(record.updatedAt, 'updatedAt');
    const res = transaction(this.#db, () => this.#s.insertFunction.run(name, JSON.stringify(config), null, createdAt, updatedAt));
    if (res.changes === 0) throw new ContinuumError('conflict', `function ${name} already exists`);
  }

  async getFunction(name: string): Promise<FunctionRecord | null> {
    const row = this.#s.getFunction.get(assertName(name, 'function name')) as FunctionRow | undefined;
    return row ? toFunction(row) : null;
  }

  async listFunctions(): Promise<FunctionRecord[]> {
    return (this.#s.listFunctions.all() as unknown as FunctionRow[]).map(toFunction);
  }

  async updateFunction(name: string, patch: { config?: FunctionConfig; activeVersion?: string | null }): Promise<FunctionRecord> {
    assertName(name, 'function name');
    const config = patch.config === undefined ? undefined : assertConfig(patch.config);
    const active = patch.activeVersion === undefined || patch.activeVersion === null ? patch.activeVersion : assertVersionId(patch.activeVersion);
    return transaction(this.#db, () => {
      const row = this.#s.getFunction.get(name) as FunctionRow | undefined;
      if (!row) throw new ContinuumError('not_found', `function ${name} not found`);
      if (typeof active === 'string' && !this.#s.getVersion.get(name, active)) {
        throw new ContinuumError('not_found', `version ${active} of function ${name} not found`);
      }
      const next: FunctionRow = {
        ...row,
        config: config === undefined ? row.config : JSON.stringify(config),
        active_version: active === undefined ? row.active_version : active,
        updated_at: new Date().toISOString(),
      };
      this.#s.updateFunction.run(next.config, next.active_version, next.updated_at, name);
      return toFunction(next);
    });
  }

  async deleteFunction(name: string): Promise<boolean> {
    // Version rows go with it (ON DELETE CASCADE).
    assertName(name, 'function name');
    return transaction(this.#db, () => this.#s.deleteFunction.run(name).changes > 0);
  }

  async putVersion(v: VersionRecord): Promise<void> {
    const functionName = assertName(v.functionName, 'function name');
    const id = assertVersionId(v.id);
    if (typeof v.bundleDigest !== 'string' || !DIGEST_RE.test(v.bundleDigest)) throw new ContinuumError('bad_request', 'bundleDigest must be 64 lowercase hex');
    if (!Number.isSafeInteger(v.bundleBytes) || v.bundleBytes < 0) throw new ContinuumError('bad_request', 'bundleBytes must be a non-negative integer');
    const config = assertConfig(v.config);
    const createdAt = assertTimestamp(v.createdAt, 'createdAt');
    const files = v.files === undefined || v.files.length === 0 ? null : JSON.stringify(v.files.map(assertVersionFile));
    if (v.image !== undefined && (typeof v.image !== 'string' || !IMAGE_RE.test(v.image))) throw new ContinuumError('bad_request', 'image must be sha256:<64 lowercase hex>');
    transaction(this.#db, () => {
      if (!this.#s.getFunction.get(functionName)) throw new ContinuumError('not_found', `function ${functionName} not found`);
      const res = this.#s.insertVersion.run(
        functionName, id, v.bundleDigest, v.bundleBytes, String(v.format), String(v.exportName),
        JSON.stringify(config), JSON.stringify(v.dependencies ?? []), createdAt, files, v.image ?? null,
      );
      if (res.changes > 0) return;
      // Same id again: a no-op, unless it names different content (ids are content hashes, so that is a bug upstream).
      const existing = this.#s.getVersion.get(functionName, id) as VersionRow | undefined;
      if (existing && existing.bundle_digest !== v.bundleDigest) {
        throw new ContinuumError('conflict', `version ${id} of function ${functionName} already exists with other content`);
      }
    });
  }

  async getVersion(functionName: string, versionId: string): Promise<VersionRecord | null> {
    const row = this.#s.getVersion.get(assertName(functionName, 'function name'), assertVersionId(versionId)) as VersionRow | undefined;
    return row ? toVersion(row) : null;
  }

  async listVersions(functionName: string): Promise<VersionRecord[]> {
    return (this.#s.listVersions.all(assertName(functionName, 'function name')) as unknown as VersionRow[]).map(toVersion);
  }

  async getMeta(key: string): Promise<string | null> {
    const row = this.#s.getMeta.get(assertMetaKey(key)) as { value: string } | undefined;
    return row ? row.value : null;
  }

  async setMeta(key: string, value: string): Promise<void> {
    if (typeof value !== 'string') throw new ContinuumError('bad_request', 'meta value must be a string');
    assertMetaKey(key);
    transaction(this.#db, () => this.#s.setMeta.run(key, value));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }
}

function assertMetaKey(key: unknown): string {
  if (typeof key !== 'string' || !META_KEY_RE.test(key)) throw new ContinuumError('bad_request', 'meta key must be 1-200 characters [A-Za-z0-9._:/-]');
  return key;
}
