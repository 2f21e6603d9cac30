/**
 * Store contracts (ARCHITECTURE §2). The embedded SQLite backend and the NATS JetStream backend both
 * implement these and both pass src/store/contract-suite.ts. All methods are async so that a networked
 * backend fits; a method that resolves has made its write durable.
 */
import type { FunctionConfig } from '../core/config.ts';
import type { ErrorCode } from '../core/errors.ts';
import type { FunctionRecord, InvocationOutcome, InvocationRecord, LogLine, Tier, VersionRecord } from '../core/types.ts';

export interface InvocationQuery {
  functionName?: string;
  outcome?: InvocationOutcome;
  errorCode?: ErrorCode;
  coldStart?: boolean;
  tier?: Tier;
  /** Started at or after (epoch ms). */
  sinceMs?: number;
  /** Started before (epoch ms). */
  untilMs?: number;
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
  /** Only lines stamped before this (epoch ms). */
  untilTs?: number;
  limit: number;
}

/** Usage of one function over a time range, summed from its invocation records. */
export interface FunctionUsage {
  functionName: string;
  invocations: number;
  errors: number;
  coldStarts: number;
  cpuSeconds: number;
  /** Sum over invocations of peak memory (GB, 10^9 bytes) × execution time (s). */
  gbSeconds: number;
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
  /** Per function, over invocations started in [sinceMs, untilMs); ordered by function name. */
  usage(sinceMs: number, untilMs: number): Promise<FunctionUsage[]>;
  /**
   * Remove invocations and log lines older than `olderThanMs` (epoch ms), then all but the newest `maxRows`
   * invocations and the newest `maxRows` log lines, then the oldest of both until the stored data takes at
   * most `maxBytes`; returns rows removed (both kinds).
   */
  prune(olderThanMs: number, maxRows: number, maxBytes?: number): Promise<number>;
  /** Bytes the stored records and logs take (what maxBytes bounds). */
  storedBytes(): Promise<number>;
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

// ---------------------------------------------------------------- queues (ARCHITECTURE §2 and §6)

/**
 * Queue names: user queues follow the resource name grammar; internal queues (async invocations of a
 * function: `_async-<function>`) start with `_`. Both are safe as stream names and file names.
 */
export const INTERNAL_QUEUE_PATTERN = '^_[a-z][a-z0-9-]{0,70}$';

export interface QueueRecord {
  name: string;
  createdAt: string;
}

/**
 * What an acknowledged queue write survives on a backend (reliability catalogue 42): every backend keeps it
 * across a crash of the process; a power loss only if the write was synced to disk before the
 * acknowledgement. Operators see this when a node starts.
 */
export interface QueueDurability {
  /** Acknowledged writes survive a power loss: true, false, or null when the store cannot tell. */
  powerLoss: boolean | null;
  /** One sentence for the operator: why, and what would change it. */
  detail: string;
}

export interface QueueStats {
  /** Messages not yet finished: ready + delayed + in flight. */
  depth: number;
  ready: number;
  /** Not yet visible: sent with a delay or waiting out a retry backoff. */
  delayed: number;
  inFlight: number;
  /** Age of the oldest unfinished message in ms (0 when empty), measured from its first enqueue. */
  oldestAgeMs: number;
  deadLetters: number;
}

export interface NewMessage {
  body: Uint8Array;
  contentType?: string;
  /** Not delivered before this many ms from now. */
  delayMs?: number;
  /**
   * Dedupe key: a second send with the same key within the dedupe window returns the first message's id
   * (`duplicate: true`) and stores nothing; with a different body it fails with `conflict`.
   */
  idempotencyKey?: string;
  /** Small string attributes carried to the consumer (e.g. CloudEvents attributes, async request facts). */
  attributes?: Record<string, string>;
  /**
   * Keep the message's state and outcome queryable by id after it finishes (async invocations):
   * `getMessage` then answers until the outcome's retention expires.
   */
  track?: boolean;
}

export interface SentMessage {
  id: string;
  duplicate: boolean;
}

export type MessageState = 'ready' | 'delayed' | 'in_flight' | 'succeeded' | 'failed' | 'dead' | 'expired';

/** A delivery: one attempt at one message, fenced by `leaseToken`. */
export interface LeasedMessage {
  id: string;
  queue: string;
  body: Uint8Array;
  contentType: string | null;
  attributes: Record<string, string>;
  idempotencyKey: string | null;
  /** Epoch ms of the first enqueue. */
  enqueuedAt: number;
  /** 1 on first delivery; every receive of the message increments it. */
  attempt: number;
  /** Errors of earlier attempts, oldest first (bounded). */
  errors: string[];
  /** Only the holder of the current token can extend, ack, retry or dead-letter this delivery. */
  leaseToken: string;
  leaseUntil: number;
  /**
   * When the message is due (epoch ms): at or before the receive, unless it was received ahead of its
   * time (`aheadMs`); the holder must not start on it before then. The lease runs from this time.
   */
  dueAt: number;
}

/** What became of a finished message (tracked messages keep it). First terminal outcome wins. */
export interface MessageOutcome {
  state: 'succeeded' | 'failed' | 'dead' | 'expired';
  attempt: number;
  finishedAt: number;
  /** Result payload (e.g. the function's response), stored as sent. */
  result?: { status: number | null; contentType: string | null; body: Uint8Array };
  /** Error code and message of the last attempt, or the dead-letter reason. */
  error?: { code: string; message: string };
}

export interface MessageStatus {
  id: string;
  queue: string;
  state: MessageState;
  attempt: number;
  enqueuedAt: number;
  idempotencyKey: string | null;
  attributes: Record<string, string>;
  outcome: MessageOutcome | null;
}

export type Settlement =
  /** Done: remove the message; with `outcome`, tracked messages keep it (first terminal outcome wins). */
  | { id: string; leaseToken: string; action: 'ack'; outcome?: MessageOutcome }
  /** Try again after `delayMs`; `error` is appended to the message's error list. */
  | { id: string; leaseToken: string; action: 'retry'; delayMs: number; error: string }
  /** Move to the queue's dead letters with a reason (`expired`, `max_retries: …`, …). */
  | { id: string; leaseToken: string; action: 'dead'; reason: string; error?: string; outcome?: MessageOutcome };

export interface DeadLetter {
  id: string;
  body: Uint8Array;
  contentType: string | null;
  attributes: Record<string, string>;
  idempotencyKey: string | null;
  enqueuedAt: number;
  deadAt: number;
  attempts: number;
  reason: string;
  errors: string[];
}

/**
 * Durable queues with leases (SQS-style visibility timeouts) and fencing tokens. Semantics every backend
 * keeps (the contract suite checks them):
 * - `send` resolves only when the messages are durable (acknowledged means stored); a batch is all or nothing.
 * - `receive` hands each visible message to one caller at a time, oldest first, with a fresh lease token and
 *   attempt + 1; when the lease runs out the message becomes visible again (at least once delivery).
 * - settlements and `extend` with a token that is no longer current return false and change nothing
 *   (a stale attempt cannot complete a message).
 * - a queue's messages never block another queue's.
 */
export interface QueueStore {
  /**
   * Call `listener` with a queue's name whenever messages were stored in it (sends, redrives, retries;
   * visible or delayed), by this process or by any other process that shares the store, as promptly as the
   * backend can tell. Consumers wait on this instead of polling: a leased message whose lease runs out, and
   * a notice lost with a connection, are what their safety-net poll is for. Returns the unsubscribe.
   */
  watch(listener: (queue: string) => void): () => void;
  /** Throws `conflict` if it exists, `bad_name` for an invalid name. */
  createQueue(name: string): Promise<QueueRecord>;
  getQueue(name: string): Promise<QueueRecord | null>;
  listQueues(): Promise<QueueRecord[]>;
  /** Deletes the queue with its messages and dead letters; false if it did not exist. */
  deleteQueue(name: string): Promise<boolean>;
  /** Throws `not_found` for a missing queue. */
  stats(name: string): Promise<QueueStats>;

  /** Throws `not_found` for a missing queue, `conflict` for an idempotency key reused with another body. */
  send(queue: string, messages: NewMessage[]): Promise<SentMessage[]>;
  /**
   * Up to `max` visible messages, leased for `leaseMs`. Never blocks waiting for messages. With `aheadMs`,
   * delayed messages due within that time may be leased too (their `dueAt` says when to start; the lease runs from
   * then): a consumer can take the store writes of a burst of scheduled deliveries off their due time.
   */
  receive(queue: string, max: number, leaseMs: number, aheadMs?: number): Promise<LeasedMessage[]>;
  /** Heartbeat: push the lease out to now + leaseMs. False if the token is stale or the message is gone. */
  extend(queue: string, id: string, leaseToken: string, leaseMs: number): Promise<boolean>;
  /** Apply settlements (in one durable write where the backend allows); one boolean per settlement. */
  settle(queue: string, settlements: Settlement[]): Promise<boolean[]>;
  /** Milliseconds until the next delayed message of the queue becomes visible, or null when none. */
  nextVisibleInMs(queue: string): Promise<number | null>;

  /** State of a tracked message (any queue), or null when unknown or past retention. */
  getMessage(id: string): Promise<MessageStatus | null>;

  /** Removes ready and delayed messages (not those in flight, not dead letters); returns how many. */
  purge(queue: string): Promise<number>;
  /** Oldest first; `after` is the last id of the previous page. */
  listDeadLetters(queue: string, opts: { limit: number; after?: string }): Promise<DeadLetter[]>;
  /** Move dead letters back to the queue as fresh messages (attempt restarts at 1); all when `ids` is absent. */
  redrive(queue: string, ids?: string[]): Promise<number>;
  /** Delete dead letters; all when `ids` is absent. */
  purgeDeadLetters(queue: string, ids?: string[]): Promise<number>;

  /**
   * Small durable cursors (e.g. a cron trigger's last fire time). `expected` makes it a compare-and-set:
   * the write happens only when the stored value equals it (null = absent); returns whether it wrote.
   */
  getCursor(key: string): Promise<string | null>;
  setCursor(key: string, value: string, expected?: string | null): Promise<boolean>;

  durability(): QueueDurability;
  close(): Promise<void>;
}
