/**
 * Schema history of the embedded databases. Steps are applied in order at open, in one transaction.
 * Released steps are never edited: a change of schema is a new step at the end of its list.
 */
import type { Migration } from './db.ts';

export const STATE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'functions and versions',
    up: `
      CREATE TABLE functions (
        name TEXT PRIMARY KEY,
        config TEXT NOT NULL CHECK (json_valid(config)),
        active_version TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      ) STRICT;
      CREATE TABLE versions (
        function_name TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
        id TEXT NOT NULL,
        bundle_digest TEXT NOT NULL,
        bundle_bytes INTEGER NOT NULL,
        format TEXT NOT NULL,
        export_name TEXT NOT NULL,
        config TEXT NOT NULL CHECK (json_valid(config)),
        dependencies TEXT NOT NULL CHECK (json_valid(dependencies)),
        created_at TEXT NOT NULL,
        PRIMARY KEY (function_name, id)
      ) STRICT;
      CREATE TRIGGER versions_immutable BEFORE UPDATE ON versions
      BEGIN SELECT RAISE(ABORT, 'version records are immutable'); END;
    `,
  },
  {
    version: 2,
    name: 'node metadata and version listing index',
    up: `
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
      CREATE INDEX versions_by_function_time ON versions(function_name, created_at);
    `,
  },
];

export const RECORDS_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'invocations and logs',
    up: `
      CREATE TABLE invocations (
        rid INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        function_name TEXT NOT NULL,
        started_ms INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        body TEXT NOT NULL
      ) STRICT;
      CREATE TABLE logs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        invocation_id TEXT NOT NULL,
        function_name TEXT NOT NULL,
        ts REAL NOT NULL,
        level TEXT NOT NULL,
        message TEXT NOT NULL
      ) STRICT;
      CREATE INDEX logs_by_invocation ON logs(invocation_id, seq);
    `,
  },
  {
    version: 2,
    name: 'listing indexes',
    up: `
      CREATE INDEX invocations_by_time ON invocations(started_ms, rid);
      CREATE INDEX invocations_by_function ON invocations(function_name, started_ms, rid);
      CREATE INDEX invocations_by_outcome ON invocations(outcome, started_ms, rid);
      CREATE INDEX invocations_by_function_outcome ON invocations(function_name, outcome, started_ms, rid);
      CREATE INDEX logs_by_function ON logs(function_name, seq);
      CREATE INDEX logs_by_ts ON logs(ts);
    `,
  },
];
