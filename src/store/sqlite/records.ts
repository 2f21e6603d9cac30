/**
 * RecordStore on SQLite: `<dataDir>/records.db`, WAL with synchronous=NORMAL. Telemetry is acknowledged to
 * no one, so a power loss may roll back its last commits; the state database is separate so that telemetry
 * volume never costs state an fsync or a lock.
 */
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { ContinuumError } from '../../core/errors.ts';
import type { InvocationRecord, LogLine } from '../../core/types.ts';
import type { FunctionUsage, InvocationQuery, LogQuery, RecordStore, StoredLogLine } from '../contract.ts';
import { openDatabase, StatementCache, transaction, type Params } from './db.ts';
import { RECORDS_MIGRATIONS } from './migrations.ts';

export const MAX_INVOCATION_PAGE = 1000;
export const MAX_LOG_PAGE = 10_000;

interface LogRow {
  seq: number;
  invocation_id: string;
  function_name: string;
  ts: number;
  level: string;
  message: string;
}

function clampLimit(limit: unknown, max: number): number {
  if (typeof limit !== 'number' || !Number.isFinite(limit) || limit < 1) throw new ContinuumError('bad_request', 'limit must be a positive number');
  return Math.min(Math.floor(limit), max);
}

function encodeCursor(startedMs: number, rid: number): string {
  return Buffer.from(`${startedMs}.${rid}`).toString('base64url');
}

function decodeCursor(cursor: string): [number, number] {
  const m = /^(-?\d{1,16})\.(\d{1,16})$/.exec(Buffer.from(cursor, 'base64url').toString('latin1'));
  if (!m) throw new ContinuumError('bad_request', 'cursor is invalid');
  return [Number(m[1]), Number(m[2])];
}

/** A LIKE pattern that matches `text` literally anywhere (escape char `\`). */
export function likeContains(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

export class SqliteRecordStore implements RecordStore {
  readonly #db: DatabaseSync;
  readonly #q: StatementCache;
  readonly #insertInvocation: StatementSync;
  readonly #insertLog: StatementSync;
  readonly #getInvocation: StatementSync;
  #closed = false;

  static open(path: string): SqliteRecordStore {
    return new SqliteRecordStore(
      openDatabase(path, { label: 'records.db', synchronous: 'NORMAL', migrations: RECORDS_MIGRATIONS, incrementalVacuum: true }),
    );
  }

  constructor(db: DatabaseSync) {
    this.#db = db;
    this.#q = new StatementCache(db);
    this.#insertInvocation = db.prepare(
      `INSERT INTO invocations (id, function_name, started_ms, outcome, tier, error_code, cold_start, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(id) DO UPDATE SET function_name = excluded.function_name, started_ms = excluded.started_ms,
         outcome = excluded.outcome, tier = excluded.tier, error_code = excluded.error_code, cold_start = excluded.cold_start,
         body = excluded.body`,
    );
    this.#insertLog = db.prepare('INSERT INTO logs (invocation_id, function_name, ts, level, message) VALUES (?, ?, ?, ?, ?)');
    this.#getInvocation = db.prepare('SELECT body FROM invocations WHERE id = ?');
  }

  get database(): DatabaseSync {
    return this.#db;
  }

  async putInvocations(records: InvocationRecord[], logs: LogLine[]): Promise<void> {
    // Validate everything first: a bad row refuses the whole batch and nothing is half-stored.
    const inv = records.map((r) => {
      if (typeof r.id !== 'string' || r.id === '') throw new ContinuumError('bad_request', 'invocation id must be a non-empty string');
      const startedMs = Date.parse(r.startedAt);
      if (Number.isNaN(startedMs)) throw new ContinuumError('bad_request', `invocation ${r.id}: startedAt must be an ISO timestamp`);
      return [r.id, String(r.functionName), startedMs, String(r.outcome), String(r.tier), r.errorCode ?? null, r.coldStart ? 1 : 0, JSON.stringify(r)] as Params;
    });
    const lines = logs.map((l) => {
      if (typeof l.ts !== 'number' || !Number.isFinite(l.ts)) throw new ContinuumError('bad_request', 'log ts must be a finite number');
      return [String(l.invocationId), String(l.functionName), l.ts, String(l.level), String(l.message)] as Params;
    });
    if (inv.length === 0 && lines.length === 0) return;
    transaction(this.#db, () => {
      for (const p of inv) this.#insertInvocation.run(...p);
      for (const p of lines) this.#insertLog.run(...p);
    });
  }

  async getInvocation(id: string): Promise<InvocationRecord | null> {
    const row = this.#getInvocation.get(String(id)) as { body: string } | undefined;
    return row ? (JSON.parse(row.body) as InvocationRecord) : null;
  }

  async listInvocations(query: InvocationQuery): Promise<{ items: InvocationRecord[]; nextCursor: string | null }> {
    const limit = clampLimit(query.limit, MAX_INVOCATION_PAGE);
    const where: string[] = [];
    const params: Params = [];
    if (query.functionName !== undefined) {
      where.push('function_name = ?');
      params.push(query.functionName);
    }
    if (query.outcome === 'error') {
      // A literal, not a parameter: only then can the planner use the partial (error-only) indexes.
      where.push("outcome = 'error'");
    } else if (query.outcome !== undefined) {
      where.push('outcome = ?');
      params.push(query.outcome);
    }
    if (query.errorCode !== undefined) {
      where.push('error_code = ?');
      params.push(query.errorCode);
    }
    if (query.coldStart !== undefined) {
      where.push('cold_start = ?');
      params.push(query.coldStart ? 1 : 0);
    }
    if (query.tier !== undefined) {
      where.push('tier = ?');
      params.push(query.tier);
    }
    if (query.sinceMs !== undefined) {
      where.push('started_ms >= ?');
      params.push(Math.floor(query.sinceMs));
    }
    if (query.untilMs !== undefined) {
      where.push('started_ms < ?');
      params.push(Math.ceil(query.untilMs));
    }
    if (query.cursor !== undefined && query.cursor !== null) {
      const [ms, rid] = decodeCursor(query.cursor);
      where.push('(started_ms, rid) < (?, ?)');
      params.push(ms, rid);
    }
    const sql = `SELECT rid, started_ms, body FROM invocations ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY started_ms DESC, rid DESC LIMIT +?`;
    const rows = this.#q.get(sql).all(...params, limit + 1) as unknown as { rid: number; started_ms: number; body: string }[];
    const more = rows.length > limit;
    const page = more ? rows.slice(0, limit) : rows;
    const last = page.at(-1);
    return {
      items: page.map((r) => JSON.parse(r.body) as InvocationRecord),
      nextCursor: more && last ? encodeCursor(last.started_ms, last.rid) : null,
    };
  }

  /**
   * Lines in ascending `seq` order. With `afterSeq`: the first `limit` lines after it (follow). Without:
   * the latest `limit` matching lines (tail). `text` is a literal substring, ASCII case-insensitive.
   */
  async queryLogs(query: LogQuery): Promise<StoredLogLine[]> {
    const limit = clampLimit(query.limit, MAX_LOG_PAGE);
    const where: string[] = [];
    const params: Params = [];
    if (query.functionName !== undefined) {
      where.push('function_name = ?');
      params.push(query.functionName);
    }
    if (query.invocationId !== undefined) {
      where.push('invocation_id = ?');
      params.push(query.invocationId);
    }
    if (query.text !== undefined && query.text !== '') {
      where.push("message LIKE +? ESCAPE '\\'");
      params.push(likeContains(query.text));
    }
    if (query.afterSeq !== undefined) {
      where.push('seq > ?');
      params.push(query.afterSeq);
    }
    if (query.sinceTs !== undefined) {
      where.push('ts >= ?');
      params.push(query.sinceTs);
    }
    if (query.untilTs !== undefined) {
      where.push('ts < ?');
      params.push(query.untilTs);
    }
    const follow = query.afterSeq !== undefined;
    const sql = `SELECT * FROM logs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq ${follow ? 'ASC' : 'DESC'} LIMIT +?`;
    const rows = this.#q.get(sql).all(...params, limit) as unknown as LogRow[];
    if (!follow) rows.reverse();
    return rows.map((r) => ({
      seq: r.seq,
      invocationId: r.invocation_id,
      functionName: r.function_name,
      ts: r.ts,
      level: r.level as LogLine['level'],
      message: r.message,
    }));
  }

  async usage(sinceMs: number, untilMs: number): Promise<FunctionUsage[]> {
    const rows = this.#q
      .get(
        `SELECT function_name, count(*) AS invocations, sum(outcome = 'error') AS errors, sum(cold_start) AS cold_starts,
           sum(json_extract(body, '$.cpuMs')) / 1e3 AS cpu_seconds,
           sum(json_extract(body, '$.peakMemoryBytes') / 1e9 * json_extract(body, '$.phases.execMs') / 1e3) AS gb_seconds
         FROM invocations WHERE started_ms >= ? AND started_ms < ? GROUP BY function_name ORDER BY function_name`,
      )
      .all(Math.floor(sinceMs), Math.ceil(untilMs)) as unknown as { function_name: string; invocations: number; errors: number; cold_starts: number | null; cpu_seconds: number | null; gb_seconds: number | null }[];
    return rows.map((r) => ({
      functionName: r.function_name,
      invocations: Number(r.invocations),
      errors: Number(r.errors),
      coldStarts: Number(r.cold_starts ?? 0),
      cpuSeconds: Number(r.cpu_seconds ?? 0),
      gbSeconds: Number(r.gb_seconds ?? 0),
    }));
  }

  /**
   * Removes invocations started before `olderThanMs` and log lines stamped before it, then keeps at most
   * `maxRows` newest invocations and at most `maxRows` newest log lines, then removes the oldest of both
   * until the data takes at most `maxBytes`. Returns the rows removed (both tables).
   */
  async prune(olderThanMs: number, maxRows: number, maxBytes = Infinity): Promise<number> {
    if (!Number.isFinite(olderThanMs)) throw new ContinuumError('bad_request', 'olderThanMs must be a finite number');
    if (!Number.isSafeInteger(maxRows) || maxRows < 0) throw new ContinuumError('bad_request', 'maxRows must be a non-negative integer');
    if (!(maxBytes >= 0)) throw new ContinuumError('bad_request', 'maxBytes must be a non-negative number');
    let removed = transaction(this.#db, () => {
      let n = 0;
      n += Number(this.#q.get('DELETE FROM invocations WHERE started_ms < ?').run(Math.floor(olderThanMs)).changes);
      n += this.#keepNewest(maxRows);
      n += Number(this.#q.get('DELETE FROM logs WHERE ts < ?').run(olderThanMs).changes);
      return n;
    });
    // Deleted rows free pages inside the file; the share of rows to drop is estimated from the bytes in use
    // and refined until under the cap (a few rounds at most: pages free roughly in proportion to rows).
    for (let round = 0; round < 20; round++) {
      const used = await this.storedBytes();
      if (used <= maxBytes) break;
      const counts = this.#q.get('SELECT (SELECT count(*) FROM invocations) AS inv, (SELECT count(*) FROM logs) AS logs').get() as { inv: number; logs: number };
      const rows = Math.max(Number(counts.inv), Number(counts.logs));
      if (rows === 0) break;
      const keep = Math.min(rows - 1, Math.floor(rows * (maxBytes / used) * 0.95));
      removed += transaction(this.#db, () => this.#keepNewest(Math.max(0, keep)));
    }
    if (removed > 0) this.#db.exec('PRAGMA incremental_vacuum');
    return removed;
  }

  /** Keep the newest `n` invocations and the newest `n` log lines. */
  #keepNewest(n: number): number {
    let removed = Number(
      this.#q.get('DELETE FROM invocations WHERE rid IN (SELECT rid FROM invocations ORDER BY started_ms DESC, rid DESC LIMIT -1 OFFSET +?)').run(n).changes,
    );
    removed += Number(this.#q.get('DELETE FROM logs WHERE seq <= (SELECT seq FROM logs ORDER BY seq DESC LIMIT 1 OFFSET +?)').run(n).changes);
    return removed;
  }

  /** Pages in use (not on the free list) times the page size. */
  async storedBytes(): Promise<number> {
    const row = this.#q.get('SELECT (SELECT page_count FROM pragma_page_count) - (SELECT freelist_count FROM pragma_freelist_count) AS pages, (SELECT page_size FROM pragma_page_size) AS size').get() as { pages: number; size: number };
    return Number(row.pages) * Number(row.size);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }
}
