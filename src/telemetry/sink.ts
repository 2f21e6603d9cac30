/**
 * Collects invocation records and their log lines off the hot path: appended in memory, written to the
 * record store in batches, and fanned out at once to live log followers. The buffer is bounded: when the
 * store falls behind, the oldest unwritten records are dropped and counted rather than growing memory.
 */
import type { Completion } from '../core/driver.ts';
import type { InvocationRecord, LogLine } from '../core/types.ts';
import type { RecordStore } from '../store/contract.ts';

export interface SinkOptions {
  store: RecordStore;
  flushIntervalMs?: number;
  maxBatch?: number;
  maxBuffered?: number;
  /** Called when a write fails; the sink keeps going. */
  onError?: (err: unknown) => void;
  /** Records older than maxAgeMs, beyond maxRows, and beyond maxBytes are pruned every intervalMs. */
  retention?: { maxAgeMs: number; maxRows: number; maxBytes: number; intervalMs: number };
  /** See every record, in batches at flush time (metrics, time series), not on the request path; must not throw. */
  observers?: Array<(records: readonly InvocationRecord[]) => void>;
}

type Follower = (line: LogLine) => void;

export class RecordSink {
  private readonly store: RecordStore;
  private readonly maxBatch: number;
  private readonly maxBuffered: number;
  private readonly onError: (err: unknown) => void;
  private records: InvocationRecord[] = [];
  private logs: LogLine[] = [];
  private readonly followers = new Set<Follower>();
  private readonly timer: NodeJS.Timeout;
  private readonly pruneTimer: NodeJS.Timeout | null;
  private readonly observers: Array<(records: readonly InvocationRecord[]) => void>;
  private flushing: Promise<void> | null = null;
  dropped = 0;

  constructor(opts: SinkOptions) {
    this.store = opts.store;
    this.maxBatch = opts.maxBatch ?? 1000;
    this.maxBuffered = opts.maxBuffered ?? 50_000;
    this.onError = opts.onError ?? (() => {});
    this.observers = opts.observers ?? [];
    this.timer = setInterval(() => void this.flush(), opts.flushIntervalMs ?? 100);
    this.timer.unref();
    const retention = opts.retention;
    this.pruneTimer = retention
      ? setInterval(() => void this.prune(retention), retention.intervalMs)
      : null;
    this.pruneTimer?.unref();
  }

  add(record: InvocationRecord, completion: Completion): void {
    if (this.records.length >= this.maxBuffered) {
      this.records.shift();
      this.dropped++;
    }
    this.records.push(record);
    for (const log of completion.logs) {
      const line: LogLine = { invocationId: record.id, functionName: record.functionName, ts: log.ts, level: log.level, message: log.message };
      this.logs.push(line);
      for (const follow of this.followers) follow(line);
    }
    if (this.logs.length > this.maxBuffered) {
      this.dropped += this.logs.length - this.maxBuffered;
      this.logs.splice(0, this.logs.length - this.maxBuffered);
    }
    if (this.records.length >= this.maxBatch) void this.flush();
  }

  /** Apply the retention policy now (also runs on its timer); resolves with the rows removed. */
  async prune(retention: { maxAgeMs: number; maxRows: number; maxBytes: number }): Promise<number> {
    try {
      return await this.store.prune(Date.now() - retention.maxAgeMs, retention.maxRows, retention.maxBytes);
    } catch (err) {
      this.onError(err);
      return 0;
    }
  }

  /** Receive every log line as it is recorded; returns an unsubscribe function. */
  follow(listener: Follower): () => void {
    this.followers.add(listener);
    return () => this.followers.delete(listener);
  }

  /** Write everything buffered so far. */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing.then(() => (this.records.length || this.logs.length ? this.flush() : undefined));
    if (this.records.length === 0 && this.logs.length === 0) return Promise.resolve();
    const records = this.records;
    const logs = this.logs;
    for (const observe of this.observers) observe(records);
    this.records = [];
    this.logs = [];
    this.flushing = this.store
      .putInvocations(records, logs)
      .catch((err) => this.onError(err))
      .finally(() => {
        this.flushing = null;
      });
    return this.flushing;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    await this.flush();
    this.followers.clear();
  }
}
