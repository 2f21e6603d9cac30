/**
 * Store contracts (ARCHITECTURE §2). The embedded SQLite backend and the NATS JetStream backend both
 * implement these and both pass src/store/contract-suite.ts. All methods are async so that a networked
 * backend fits; a method that resolves has made its write durable.
 */
import type { FunctionConfig } from '../core/config.ts';
import type { FunctionRecord, InvocationOutcome, InvocationRecord, LogLine, VersionRecord } from '../core/types.ts';

export interface InvocationQuery {
  functionName?: string;
  outcome?: InvocationOutcome;
  /** Page backwards from this cursor (exclusive), as returned in `nextCursor`. */
  cursor?: string;
  limit: number;
}

export interface LogQuery {
  functionName?: string;
  invocationId?: string;
  /** Literal substring match on the message (`%`, `_` are not wildcards), ASCII case-insensitive. */
  text?: string;
  /** Only lines with a sequence number above this (for follow). */
  afterSeq?: number;
  sinceTs?: number;
  limit: number;
}

export interface StoredLogLine extends LogLine {
  seq: number;
}

export interface StateStore {
  /** Throws `conflict` if the name exists, `bad_name` for an invalid name; `activeVersion` must be null. */
  createFunction(record: FunctionRecord): Promise<void>;
  getFunction(name: string): Promise<FunctionRecord | null>;
  listFunctions(): Promise<FunctionRecord[]>;
  /** Throws `not_found` for a missing function or a missing `activeVersion`. Returns the updated record. */
  updateFunction(name: string, patch: { config?: FunctionConfig; activeVersion?: string | null }): Promise<FunctionRecord>;
  /** Deletes the function and its version records; returns false if it did not exist. */
  deleteFunction(name: string): Promise<boolean>;

  /**
   * Idempotent: storing the same version id twice is a no-op (`conflict` if the bundle digest differs).
   * Throws `not_found` if the function does not exist.
   */
  putVersion(version: VersionRecord): Promise<void>;
  getVersion(functionName: string, versionId: string): Promise<VersionRecord | null>;
  /** Newest first. */
  listVersions(functionName: string): Promise<VersionRecord[]>;

  /** Key/value metadata of the node (schema version, node id, …). */
  getMeta(key: string): Promise<string | null>;
  setMeta(key: string, value: string): Promise<void>;

  close(): Promise<void>;
}

/** Telemetry may lose its last writes on power loss (it is not acknowledged to anyone); state may not. */
export interface RecordStore {
  putInvocations(records: InvocationRecord[], logs: LogLine[]): Promise<void>;
  getInvocation(id: string): Promise<InvocationRecord | null>;
  /** Newest first. */
  listInvocations(query: InvocationQuery): Promise<{ items: InvocationRecord[]; nextCursor: string | null }>;
  /**
   * Ascending `seq`. With `afterSeq`: the first `limit` lines after it (follow). Without: the latest
   * `limit` matching lines (tail).
   */
  queryLogs(query: LogQuery): Promise<StoredLogLine[]>;
  /**
   * Remove invocations and log lines older than `olderThanMs` (epoch ms), then all but the newest `maxRows`
   * invocations and the newest `maxRows` log lines; returns rows removed (both kinds).
   */
  prune(olderThanMs: number, maxRows: number): Promise<number>;
  close(): Promise<void>;
}

/** Content-addressed blobs (bundles, later image layers), keyed by sha256 hex. */
export interface ArtifactStore {
  /**
   * Stores the bytes durably and returns their sha256 hex digest. Every method that takes a digest throws
   * `bad_request` unless it is 64 lowercase hex; `get` verifies content and treats a corrupt blob as missing.
   */
  put(bytes: Uint8Array): Promise<string>;
  get(digest: string): Promise<Uint8Array | null>;
  has(digest: string): Promise<boolean>;
  delete(digest: string): Promise<boolean>;
  list(): Promise<string[]>;
  close(): Promise<void>;
}
