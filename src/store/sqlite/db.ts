/**
 * Shared plumbing of the embedded backend: opening a database with the right pragmas, versioned
 * migrations, and transactions. Every database has a `schema_migrations` table (one row per applied step)
 * and mirrors the latest step in `PRAGMA user_version`.
 */
import { chmodSync } from 'node:fs';
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
import { ContinuumError } from '../../core/errors.ts';

export interface Migration {
  /** 1, 2, 3, … with no gaps. Never edit a released step; add a new one. */
  readonly version: number;
  readonly name: string;
  readonly up: string | ((db: DatabaseSync) => void);
}

export interface OpenOptions {
  /** Label used in error messages (`state.db`). */
  label: string;
  /** FULL: a committed transaction survives power loss. NORMAL: the last commits may roll back. */
  synchronous: 'FULL' | 'NORMAL';
  migrations: readonly Migration[];
  busyTimeoutMs?: number;
  /** Set on a new database so that prune can return space to the file system. */
  incrementalVacuum?: boolean;
}

export function checkMigrations(label: string, migrations: readonly Migration[]): void {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`${label}: migration #${i} has version ${m.version}, expected ${i + 1}`);
  });
}

export function openDatabase(path: string, opts: OpenOptions): DatabaseSync {
  checkMigrations(opts.label, opts.migrations);
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(path, { enableForeignKeyConstraints: true, timeout: opts.busyTimeoutMs ?? 5000 });
  } catch (err) {
    throw new ContinuumError('unavailable', `cannot open ${opts.label}: ${(err as Error).message}`, undefined, { cause: err });
  }
  try {
    chmodSync(path, 0o600);
    if (opts.incrementalVacuum) db.exec('PRAGMA auto_vacuum = INCREMENTAL'); // only takes effect on a new file
    const mode = db.prepare('PRAGMA journal_mode = WAL').get() as { journal_mode?: string } | undefined;
    if (mode?.journal_mode !== 'wal') throw new Error(`journal_mode is ${String(mode?.journal_mode)}, expected wal`);
    db.exec(`PRAGMA synchronous = ${opts.synchronous}`);
    db.exec('PRAGMA foreign_keys = ON');
    db.exec('PRAGMA trusted_schema = OFF');
    migrate(db, opts.label, opts.migrations);
    return db;
  } catch (err) {
    db.close();
    if (err instanceof ContinuumError) throw err;
    throw new ContinuumError('unavailable', `cannot open ${opts.label}: ${(err as Error).message}`, undefined, { cause: err });
  }
}

/** The highest applied migration step (0 for a new database). */
export function schemaVersion(db: DatabaseSync): number {
  const row = db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'").get();
  if (!row) return 0;
  const v = db.prepare('SELECT coalesce(max(version), 0) AS v FROM schema_migrations').get() as { v: number };
  return Number(v.v);
}

/** Apply every step above the database's version, all in one IMMEDIATE transaction (so concurrent openers serialise). */
export function migrate(db: DatabaseSync, label: string, migrations: readonly Migration[]): number {
  checkMigrations(label, migrations);
  const latest = migrations.length;
  return transaction(db, () => {
    db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL) STRICT');
    const current = schemaVersion(db);
    if (current > latest) {
      throw new ContinuumError(
        'unavailable',
        `${label} has schema version ${current} but this Continuum knows only up to ${latest}: it was written by a newer release; upgrade Continuum or restore a backup`,
      );
    }
    const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
    for (const m of migrations) {
      if (m.version <= current) continue;
      if (typeof m.up === 'string') db.exec(m.up);
      else m.up(db);
      record.run(m.version, m.name, new Date().toISOString());
    }
    db.exec(`PRAGMA user_version = ${latest}`);
    return latest;
  });
}

const SQLITE_BUSY = 5;
const SQLITE_LOCKED = 6;
const SQLITE_IOERR = 10;
const SQLITE_FULL = 13;

/** SQLite failures that callers can act on become registry errors; anything else passes through (→ internal). */
export function mapSqliteError(err: unknown): unknown {
  const e = err as { code?: string; errcode?: number; message?: string } | null;
  if (e?.code !== 'ERR_SQLITE_ERROR' || typeof e.errcode !== 'number') return err;
  const primary = e.errcode & 0xff;
  if (primary === SQLITE_BUSY || primary === SQLITE_LOCKED) return new ContinuumError('unavailable', 'the store is busy; retry', undefined, { cause: err });
  if (primary === SQLITE_FULL) return new ContinuumError('unavailable', 'the store is out of disk space', undefined, { cause: err });
  if (primary === SQLITE_IOERR) return new ContinuumError('unavailable', 'the store had an I/O error', undefined, { cause: err });
  return err;
}

/** The transaction-control statements of a database, prepared once: `exec` parses its SQL on every call. */
export interface TransactionControl {
  begin: StatementSync;
  commit: StatementSync;
  rollback: StatementSync;
  savepoint: StatementSync;
  release: StatementSync;
  rollbackToSavepoint: StatementSync;
}

const controls = new WeakMap<DatabaseSync, TransactionControl>();

export function transactionControl(db: DatabaseSync): TransactionControl {
  let c = controls.get(db);
  if (!c) {
    c = {
      begin: db.prepare('BEGIN IMMEDIATE'),
      commit: db.prepare('COMMIT'),
      rollback: db.prepare('ROLLBACK'),
      savepoint: db.prepare('SAVEPOINT w'),
      release: db.prepare('RELEASE w'),
      rollbackToSavepoint: db.prepare('ROLLBACK TO w'),
    };
    controls.set(db, c);
  }
  return c;
}

/** Run `fn` in a write transaction taken up front (no upgrade deadlocks between readers turned writers). */
export function transaction<T>(db: DatabaseSync, fn: () => T): T {
  const c = transactionControl(db);
  try {
    c.begin.run();
  } catch (err) {
    throw mapSqliteError(err);
  }
  try {
    const result = fn();
    c.commit.run();
    return result;
  } catch (err) {
    if (db.isTransaction) c.rollback.run();
    throw mapSqliteError(err);
  }
}

/** A statement cache keyed by SQL text, for queries assembled from optional filters. */
export class StatementCache {
  readonly #db: DatabaseSync;
  readonly #cache = new Map<string, ReturnType<DatabaseSync['prepare']>>();

  constructor(db: DatabaseSync) {
    this.#db = db;
  }

  get(sql: string): ReturnType<DatabaseSync['prepare']> {
    let stmt = this.#cache.get(sql);
    if (!stmt) {
      stmt = this.#db.prepare(sql);
      this.#cache.set(sql, stmt);
    }
    return stmt;
  }
}

export type Params = SQLInputValue[];
