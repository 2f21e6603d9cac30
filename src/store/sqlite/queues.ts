/**
 * QueueStore on SQLite: `<dataDir>/queues.db`, WAL. Writes that acknowledge something to a caller (send,
 * dead-lettering, redrive, an ack that stores an outcome, cursors) commit with synchronous=FULL; lease
 * bookkeeping (receive, extend, plain ack, retry) commits with NORMAL, because losing it on power loss only
 * makes a message visible again — at least once still holds — and the next FULL commit syncs it anyway.
 *
 * A message is one row: `visible_at` is when it may next be received (send time + delay, lease end, or
 * retry time); `lease_token` is set by receive and cleared by retry, so a row with a token and a future
 * `visible_at` is in flight, one without a token and a future `visible_at` is delayed.
 */
import { randomBytes } from 'node:crypto';
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { EVENT_DEFAULTS } from '../../core/defaults.ts';
import { ContinuumError } from '../../core/errors.ts';
import { uuidv7 } from '../../core/ids.ts';
import type {
  DeadLetter,
  LeasedMessage,
  MessageOutcome,
  MessageState,
  MessageStatus,
  NewMessage,
  QueueDurability,
  QueueRecord,
  QueueStats,
  QueueStore,
  SentMessage,
  Settlement,
} from '../contract.ts';
import { appendError, assertCursorKey, assertCursorValue, assertQueueName, checkReceive, checkSendBatch, contentDigest, QueueWatchers } from '../queue-rules.ts';
import { mapSqliteError, openDatabase, transaction, transactionControl } from './db.ts';
import { QUEUE_MIGRATIONS } from './migrations.ts';

export interface SqliteQueueStoreOptions {
  dedupeWindowMs?: number;
  outcomeRetentionMs?: number;
  /** Clock, for tests of windows and retention. */
  now?: () => number;
}

interface MessageRow {
  seq: number;
  id: string;
  queue: string;
  body: Uint8Array;
  content_type: string | null;
  attributes: string | null;
  idem_key: string | null;
  tracked: number;
  enqueued_at: number;
  visible_at: number;
  attempt: number;
  lease_token: string | null;
  errors: string | null;
}

interface DeadRow {
  seq: number;
  id: string;
  queue: string;
  body: Uint8Array;
  content_type: string | null;
  attributes: string | null;
  idem_key: string | null;
  tracked: number;
  enqueued_at: number;
  dead_at: number;
  attempts: number;
  reason: string;
  errors: string | null;
}

interface OutcomeRow {
  id: string;
  queue: string;
  state: string;
  attempt: number;
  finished_at: number;
  result_status: number | null;
  result_type: string | null;
  result_body: Uint8Array | null;
  has_result: number;
  error_code: string | null;
  error_message: string | null;
  attributes: string | null;
  idem_key: string | null;
  enqueued_at: number;
}

const PRUNE_EVERY_MS = 60_000;

const parseJson = <T>(text: string | null, fallback: T): T => (text === null ? fallback : (JSON.parse(text) as T));

export class SqliteQueueStore implements QueueStore {
  readonly #db: DatabaseSync;
  /** Only this process writes the database, so it tells of every stored message itself. */
  readonly #watchers = new QueueWatchers();
  readonly #now: () => number;
  readonly #dedupeWindowMs: number;
  readonly #outcomeRetentionMs: number;
  #synchronous: 'FULL' | 'NORMAL' = 'FULL';
  /** Writes waiting for this turn's group commit (#write). */
  #group: Array<{ sync: 'FULL' | 'NORMAL'; fn: () => unknown; resolve: (value: unknown) => void; reject: (error: unknown) => void }> = [];
  #lastPrune = 0;
  readonly #s: Record<string, StatementSync>;

  static open(path: string, options: SqliteQueueStoreOptions = {}): SqliteQueueStore {
    return new SqliteQueueStore(openDatabase(path, { label: 'queues.db', synchronous: 'FULL', migrations: QUEUE_MIGRATIONS }), options);
  }

  private constructor(db: DatabaseSync, options: SqliteQueueStoreOptions) {
    this.#db = db;
    this.#now = options.now ?? Date.now;
    this.#dedupeWindowMs = options.dedupeWindowMs ?? EVENT_DEFAULTS.queue.dedupeWindowMs;
    this.#outcomeRetentionMs = options.outcomeRetentionMs ?? EVENT_DEFAULTS.queue.outcomeRetentionMs;
    const p = (sql: string) => db.prepare(sql);
    this.#s = {
      queueGet: p('SELECT name, created_at FROM queues WHERE name = ?'),
      queueList: p('SELECT name, created_at FROM queues ORDER BY name'),
      queueInsert: p('INSERT INTO queues (name, created_at) VALUES (?, ?)'),
      queueDelete: p('DELETE FROM queues WHERE name = ?'),
      idemGet: p('SELECT id, digest, created_at FROM idempotency WHERE queue = ? AND key = ?'),
      idemPut: p('INSERT OR REPLACE INTO idempotency (queue, key, id, digest, created_at) VALUES (?, ?, ?, ?, ?)'),
      insert: p(`INSERT INTO messages (id, queue, body, content_type, attributes, idem_key, tracked, enqueued_at, visible_at, attempt, lease_token, errors)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)`),
      // FIFO through messages_fifo: left to itself the planner may pick messages_visible and sort every
      // visible row of the queue for each receive.
      // Taken ahead of its time (?5 > now), a delayed message keeps its due time and the lease runs from
      // then; a leased one is only taken once its lease has run out.
      lease: p(`UPDATE messages SET attempt = attempt + 1, lease_token = ?1, visible_at = max(visible_at, ?2) + ?3
                WHERE seq IN (SELECT seq FROM messages INDEXED BY messages_fifo
                              WHERE queue = ?4 AND (visible_at <= ?2 OR (visible_at <= ?5 AND lease_token IS NULL)) ORDER BY seq LIMIT +?6)
                RETURNING seq, id, queue, body, content_type, attributes, idem_key, tracked, enqueued_at, visible_at, attempt, lease_token, errors`),
      extend: p('UPDATE messages SET visible_at = ? WHERE queue = ? AND id = ? AND lease_token = ?'),
      current: p('SELECT * FROM messages WHERE queue = ? AND id = ? AND lease_token = ?'),
      remove: p('DELETE FROM messages WHERE seq = ?'),
      ackCurrent: p('DELETE FROM messages WHERE queue = ? AND id = ? AND lease_token = ? AND visible_at > ?'),
      retry: p('UPDATE messages SET lease_token = NULL, visible_at = ?, errors = ? WHERE seq = ?'),
      deadInsert: p(`INSERT INTO dead_letters (id, queue, body, content_type, attributes, idem_key, tracked, enqueued_at, dead_at, attempts, reason, errors)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      outcomeInsert: p(`INSERT OR IGNORE INTO outcomes (id, queue, state, attempt, finished_at, result_status, result_type, result_body, has_result, error_code, error_message, attributes, idem_key, enqueued_at)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      outcomeGet: p('SELECT * FROM outcomes WHERE id = ?'),
      messageById: p('SELECT * FROM messages WHERE id = ?'),
      deadById: p('SELECT * FROM dead_letters WHERE id = ?'),
      nextVisible: p('SELECT min(visible_at) AS t FROM messages WHERE queue = ? AND visible_at > ?'),
      stats: p(`SELECT count(*) AS depth,
                       coalesce(sum(visible_at <= ?1), 0) AS ready,
                       coalesce(sum(visible_at > ?1 AND lease_token IS NULL), 0) AS delayed,
                       coalesce(sum(visible_at > ?1 AND lease_token IS NOT NULL), 0) AS in_flight,
                       min(enqueued_at) AS oldest
                FROM messages WHERE queue = ?2`),
      deadCount: p('SELECT count(*) AS n FROM dead_letters WHERE queue = ?'),
      purge: p('DELETE FROM messages WHERE queue = ? AND NOT (lease_token IS NOT NULL AND visible_at > ?)'),
      deadPage: p('SELECT * FROM dead_letters WHERE queue = ? AND seq > ? ORDER BY seq LIMIT +?'),
      deadSeqOf: p('SELECT seq FROM dead_letters WHERE queue = ? AND id = ?'),
      deadAll: p('SELECT * FROM dead_letters WHERE queue = ? ORDER BY seq'),
      deadOne: p('SELECT * FROM dead_letters WHERE queue = ? AND id = ?'),
      deadDelete: p('DELETE FROM dead_letters WHERE seq = ?'),
      outcomeDelete: p('DELETE FROM outcomes WHERE id = ?'),
      deadDeleteAll: p('DELETE FROM dead_letters WHERE queue = ?'),
      cursorGet: p('SELECT value FROM cursors WHERE key = ?'),
      cursorPut: p('INSERT OR REPLACE INTO cursors (key, value) VALUES (?, ?)'),
      pruneIdem: p('DELETE FROM idempotency WHERE created_at < ?'),
      pruneOutcomes: p('DELETE FROM outcomes WHERE finished_at < ?'),
    };
  }

  /**
   * Run `fn` in a write transaction with at least the given durability; resolves once it is committed.
   * Group commit: the writes asked for in one turn of the event loop share one transaction, each in a
   * savepoint of its own (a write that throws is undone alone), so a burst of sends, acks or cron fires
   * costs one sync instead of one each. Nothing resolves before the commit.
   */
  #write<T>(sync: 'FULL' | 'NORMAL', fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#group.push({ sync, fn, resolve: resolve as (v: unknown) => void, reject });
      if (this.#group.length === 1) setImmediate(() => this.#commitGroup());
    });
  }

  #commitGroup(): void {
    const group = this.#group;
    this.#group = [];
    if (group.length === 0) return;
    const sync = group.some((w) => w.sync === 'FULL') ? 'FULL' : 'NORMAL';
    const outcomes: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }> = [];
    try {
      if (this.#synchronous !== sync) {
        // exec, not a prepared statement: SQLite applies this pragma when it compiles it, not when it runs.
        this.#db.exec(`PRAGMA synchronous = ${sync}`);
        this.#synchronous = sync;
      }
      const c = transactionControl(this.#db);
      transaction(this.#db, () => {
        // A write alone needs no savepoint: if it throws, the transaction's rollback undoes it.
        if (group.length === 1) {
          outcomes.push({ ok: true, value: group[0]!.fn() });
          return;
        }
        for (const w of group) {
          c.savepoint.run();
          try {
            outcomes.push({ ok: true, value: w.fn() });
          } catch (error) {
            c.rollbackToSavepoint.run();
            outcomes.push({ ok: false, error: mapSqliteError(error) });
          }
          c.release.run();
        }
      });
    } catch (error) {
      // The transaction as a whole failed (busy, disk full, I/O): nothing of the group is stored.
      for (const w of group) w.reject(error);
      return;
    }
    group.forEach((w, i) => {
      const o = outcomes[i]!;
      if (o.ok) w.resolve(o.value);
      else w.reject(o.error);
    });
  }

  #requireQueue(name: string): void {
    if (!this.#s.queueGet!.get(name)) throw new ContinuumError('not_found', `queue ${name} does not exist`);
  }

  async createQueue(name: string): Promise<QueueRecord> {
    assertQueueName(name);
    const record = { name, createdAt: new Date(this.#now()).toISOString() };
    await this.#write('FULL', () => {
      if (this.#s.queueGet!.get(name)) throw new ContinuumError('conflict', `queue ${name} already exists`);
      this.#s.queueInsert!.run(name, record.createdAt);
    });
    return record;
  }

  async getQueue(name: string): Promise<QueueRecord | null> {
    assertQueueName(name);
    const row = this.#s.queueGet!.get(name) as { name: string; created_at: string } | undefined;
    return row ? { name: row.name, createdAt: row.created_at } : null;
  }

  async listQueues(): Promise<QueueRecord[]> {
    return (this.#s.queueList!.all() as Array<{ name: string; created_at: string }>).map((r) => ({ name: r.name, createdAt: r.created_at }));
  }

  async deleteQueue(name: string): Promise<boolean> {
    assertQueueName(name);
    // Messages, dead letters and idempotency keys go with the queue (ON DELETE CASCADE).
    return this.#write('FULL', () => Number(this.#s.queueDelete!.run(name).changes) > 0);
  }

  async stats(name: string): Promise<QueueStats> {
    assertQueueName(name);
    this.#requireQueue(name);
    const now = this.#now();
    const r = this.#s.stats!.get(now, name) as { depth: number; ready: number; delayed: number; in_flight: number; oldest: number | null };
    const dead = this.#s.deadCount!.get(name) as { n: number };
    return {
      depth: Number(r.depth),
      ready: Number(r.ready),
      delayed: Number(r.delayed),
      inFlight: Number(r.in_flight),
      oldestAgeMs: r.oldest === null ? 0 : Math.max(1, now - Number(r.oldest)),
      deadLetters: Number(dead.n),
    };
  }

  async send(queue: string, messages: NewMessage[]): Promise<SentMessage[]> {
    assertQueueName(queue);
    checkSendBatch(messages);
    const now = this.#now();
    this.#maybePrune(now);
    const sent = await this.#write('FULL', () => {
      this.#requireQueue(queue);
      const out: SentMessage[] = [];
      const seenInBatch = new Map<string, { id: string; digest: string }>();
      for (const m of messages) {
        let digest: string | null = null;
        if (m.idempotencyKey !== undefined) {
          digest = contentDigest(m);
          const earlier =
            seenInBatch.get(m.idempotencyKey) ??
            (this.#s.idemGet!.get(queue, m.idempotencyKey) as { id: string; digest: string; created_at: number } | undefined);
          if (earlier && (!('created_at' in earlier) || Number(earlier.created_at) >= now - this.#dedupeWindowMs)) {
            if (earlier.digest !== digest) {
              throw new ContinuumError('conflict', `idempotency key reused with a different message (first id ${earlier.id})`);
            }
            out.push({ id: earlier.id, duplicate: true });
            continue;
          }
        }
        const id = uuidv7(now);
        this.#s.insert!.run(
          id, queue, m.body, m.contentType ?? null,
          m.attributes && Object.keys(m.attributes).length > 0 ? JSON.stringify(m.attributes) : null,
          m.idempotencyKey ?? null, m.track ? 1 : 0, now, now + (m.delayMs ?? 0), 0, null,
        );
        if (m.idempotencyKey !== undefined && digest !== null) {
          this.#s.idemPut!.run(queue, m.idempotencyKey, id, digest, now);
          seenInBatch.set(m.idempotencyKey, { id, digest });
        }
        out.push({ id, duplicate: false });
      }
      return out;
    });
    if (sent.some((m) => !m.duplicate)) this.#watchers.tell(queue);
    return sent;
  }

  watch(listener: (queue: string) => void): () => void {
    return this.#watchers.add(listener);
  }

  async receive(queue: string, max: number, leaseMs: number, aheadMs = 0): Promise<LeasedMessage[]> {
    assertQueueName(queue);
    checkReceive(max, leaseMs, aheadMs);
    const now = this.#now();
    return this.#write('NORMAL', () => {
      this.#requireQueue(queue);
      const token = randomBytes(12).toString('base64url');
      const rows = this.#s.lease!.all(token, now, leaseMs, queue, now + aheadMs, max) as unknown as MessageRow[];
      rows.sort((a, b) => a.seq - b.seq);
      return rows.map((r) => ({
        id: r.id,
        queue: r.queue,
        body: new Uint8Array(r.body),
        contentType: r.content_type,
        attributes: parseJson(r.attributes, {}),
        idempotencyKey: r.idem_key,
        enqueuedAt: Number(r.enqueued_at),
        attempt: Number(r.attempt),
        errors: parseJson(r.errors, []),
        leaseToken: token,
        leaseUntil: Number(r.visible_at),
        dueAt: Number(r.visible_at) - leaseMs,
      }));
    });
  }

  async extend(queue: string, id: string, leaseToken: string, leaseMs: number): Promise<boolean> {
    assertQueueName(queue);
    const until = this.#now() + leaseMs;
    return this.#write('NORMAL', () => Number(this.#s.extend!.run(until, queue, id, leaseToken).changes) === 1);
  }

  async settle(queue: string, settlements: Settlement[]): Promise<boolean[]> {
    assertQueueName(queue);
    const now = this.#now();
    const durable = settlements.some((s) => s.action === 'dead' || (s.action === 'ack' && s.outcome !== undefined));
    const settled = await this.#write(durable ? 'FULL' : 'NORMAL', () =>
      settlements.map((s) => {
        // The common case, a plain ack, is one statement that neither reads the row nor its body.
        if (s.action === 'ack' && s.outcome === undefined) return Number(this.#s.ackCurrent!.run(queue, s.id, s.leaseToken, now).changes) === 1;
        const row = this.#s.current!.get(queue, s.id, s.leaseToken) as MessageRow | undefined;
        // A lease that ran out is no longer current, even if nobody has received the message again yet.
        if (!row || Number(row.visible_at) <= now) return false;
        if (s.action === 'ack') {
          if (s.outcome && row.tracked) this.#recordOutcome(row, s.outcome);
          this.#s.remove!.run(row.seq);
        } else if (s.action === 'retry') {
          const errors = appendError(parseJson<string[]>(row.errors, []), s.error);
          this.#s.retry!.run(now + Math.max(0, Math.floor(s.delayMs)), JSON.stringify(errors), row.seq);
        } else {
          const errors = s.error === undefined ? parseJson<string[]>(row.errors, []) : appendError(parseJson<string[]>(row.errors, []), s.error);
          this.#s.deadInsert!.run(row.id, queue, row.body, row.content_type, row.attributes, row.idem_key, row.tracked, row.enqueued_at, now, row.attempt, s.reason.slice(0, 500), JSON.stringify(errors));
          if (row.tracked) {
            this.#recordOutcome(row, s.outcome ?? { state: s.reason === 'expired' ? 'expired' : 'dead', attempt: Number(row.attempt), finishedAt: now, error: { code: 'dead_letter', message: s.reason } });
          }
          this.#s.remove!.run(row.seq);
        }
        return true;
      }),
    );
    if (settlements.some((s, i) => settled[i] && s.action === 'retry')) this.#watchers.tell(queue);
    return settled;
  }

  #recordOutcome(row: { id: string; queue: string; attributes: string | null; idem_key: string | null; enqueued_at: number }, o: MessageOutcome): void {
    this.#s.outcomeInsert!.run(
      row.id, row.queue, o.state, o.attempt, o.finishedAt,
      o.result?.status ?? null, o.result?.contentType ?? null, o.result?.body ?? null, o.result ? 1 : 0,
      o.error?.code ?? null, o.error?.message ?? null, row.attributes, row.idem_key, row.enqueued_at,
    );
  }

  async nextVisibleInMs(queue: string): Promise<number | null> {
    assertQueueName(queue);
    this.#requireQueue(queue);
    const now = this.#now();
    const r = this.#s.nextVisible!.get(queue, now) as { t: number | null };
    return r.t === null ? null : Math.max(0, Number(r.t) - now);
  }

  async getMessage(id: string): Promise<MessageStatus | null> {
    if (typeof id !== 'string' || id.length > 64) return null;
    const now = this.#now();
    const outcome = this.#s.outcomeGet!.get(id) as OutcomeRow | undefined;
    const live = this.#s.messageById!.get(id) as MessageRow | undefined;
    if (live && live.tracked) {
      const state: MessageState = Number(live.visible_at) <= now ? 'ready' : live.lease_token !== null ? 'in_flight' : 'delayed';
      return {
        id, queue: live.queue, state: outcome ? (outcome.state as MessageState) : state, attempt: Number(live.attempt),
        enqueuedAt: Number(live.enqueued_at), idempotencyKey: live.idem_key, attributes: parseJson(live.attributes, {}),
        outcome: outcome ? toOutcome(outcome) : null,
      };
    }
    if (outcome) {
      return {
        id, queue: outcome.queue, state: outcome.state as MessageState, attempt: Number(outcome.attempt),
        enqueuedAt: Number(outcome.enqueued_at), idempotencyKey: outcome.idem_key, attributes: parseJson(outcome.attributes, {}),
        outcome: toOutcome(outcome),
      };
    }
    const dead = this.#s.deadById!.get(id) as DeadRow | undefined;
    if (dead && dead.tracked) {
      return {
        id, queue: dead.queue, state: dead.reason === 'expired' ? 'expired' : 'dead', attempt: Number(dead.attempts),
        enqueuedAt: Number(dead.enqueued_at), idempotencyKey: dead.idem_key, attributes: parseJson(dead.attributes, {}), outcome: null,
      };
    }
    return null;
  }

  async purge(queue: string): Promise<number> {
    assertQueueName(queue);
    const now = this.#now();
    return this.#write('FULL', () => {
      this.#requireQueue(queue);
      return Number(this.#s.purge!.run(queue, now).changes);
    });
  }

  async listDeadLetters(queue: string, opts: { limit: number; after?: string }): Promise<DeadLetter[]> {
    assertQueueName(queue);
    this.#requireQueue(queue);
    let afterSeq = 0;
    if (opts.after !== undefined) {
      const r = this.#s.deadSeqOf!.get(queue, opts.after) as { seq: number } | undefined;
      if (!r) throw new ContinuumError('bad_request', 'listDeadLetters: unknown cursor');
      afterSeq = Number(r.seq);
    }
    const limit = Math.max(1, Math.min(1000, Math.floor(opts.limit)));
    return (this.#s.deadPage!.all(queue, afterSeq, limit) as unknown as DeadRow[]).map(toDeadLetter);
  }

  async redrive(queue: string, ids?: string[]): Promise<number> {
    assertQueueName(queue);
    const now = this.#now();
    const redriven = await this.#write('FULL', () => {
      this.#requireQueue(queue);
      const rows = this.#deadRows(queue, ids);
      for (const r of rows) {
        // A fresh message: same id (the ledger follows it), attempt count and errors start over.
        this.#s.deadDelete!.run(r.seq);
        this.#s.outcomeDelete!.run(r.id);
        this.#s.insert!.run(r.id, queue, r.body, r.content_type, r.attributes, r.idem_key, r.tracked, r.enqueued_at, now, 0, null);
      }
      return rows.length;
    });
    if (redriven > 0) this.#watchers.tell(queue);
    return redriven;
  }

  async purgeDeadLetters(queue: string, ids?: string[]): Promise<number> {
    assertQueueName(queue);
    return this.#write('FULL', () => {
      this.#requireQueue(queue);
      if (ids === undefined) return Number(this.#s.deadDeleteAll!.run(queue).changes);
      const rows = this.#deadRows(queue, ids);
      for (const r of rows) this.#s.deadDelete!.run(r.seq);
      return rows.length;
    });
  }

  #deadRows(queue: string, ids: string[] | undefined): DeadRow[] {
    if (ids === undefined) return this.#s.deadAll!.all(queue) as unknown as DeadRow[];
    const rows: DeadRow[] = [];
    for (const id of new Set(ids)) {
      const r = this.#s.deadOne!.get(queue, id) as DeadRow | undefined;
      if (r) rows.push(r);
    }
    return rows;
  }

  async getCursor(key: string): Promise<string | null> {
    assertCursorKey(key);
    const r = this.#s.cursorGet!.get(key) as { value: string } | undefined;
    return r ? r.value : null;
  }

  async setCursor(key: string, value: string, expected?: string | null): Promise<boolean> {
    assertCursorKey(key);
    assertCursorValue(value);
    return this.#write('FULL', () => {
      if (expected !== undefined) {
        const r = this.#s.cursorGet!.get(key) as { value: string } | undefined;
        if ((r?.value ?? null) !== expected) return false;
      }
      this.#s.cursorPut!.run(key, value);
      return true;
    });
  }

  #maybePrune(now: number): void {
    if (now - this.#lastPrune < PRUNE_EVERY_MS) return;
    this.#lastPrune = now;
    void this.#write('NORMAL', () => {
      this.#s.pruneIdem!.run(now - this.#dedupeWindowMs);
      this.#s.pruneOutcomes!.run(now - this.#outcomeRetentionMs);
    }).catch(() => {}); // pruning is retried at the next interval
  }

  durability(): QueueDurability {
    return { powerLoss: true, detail: 'SQLite syncs every acknowledged send to disk before the acknowledgement (synchronous=FULL)' };
  }

  /** The underlying handle, for diagnostics. */
  get database(): DatabaseSync {
    return this.#db;
  }

  async close(): Promise<void> {
    if (!this.#db.isOpen) return;
    this.#commitGroup(); // writes already asked for are stored (or rejected), not dropped
    this.#db.close();
  }
}

function toOutcome(r: OutcomeRow): MessageOutcome {
  const o: MessageOutcome = { state: r.state as MessageOutcome['state'], attempt: Number(r.attempt), finishedAt: Number(r.finished_at) };
  if (r.has_result) o.result = { status: r.result_status === null ? null : Number(r.result_status), contentType: r.result_type, body: new Uint8Array(r.result_body ?? new Uint8Array(0)) };
  if (r.error_code !== null) o.error = { code: r.error_code, message: r.error_message ?? '' };
  return o;
}

function toDeadLetter(r: DeadRow): DeadLetter {
  return {
    id: r.id,
    body: new Uint8Array(r.body),
    contentType: r.content_type,
    attributes: parseJson(r.attributes, {}),
    idempotencyKey: r.idem_key,
    enqueuedAt: Number(r.enqueued_at),
    deadAt: Number(r.dead_at),
    attempts: Number(r.attempts),
    reason: r.reason,
    errors: parseJson(r.errors, []),
  };
}
