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
  {
    version: 3,
    name: 'version files and images',
    up: `
      ALTER TABLE versions ADD COLUMN files TEXT;
      ALTER TABLE versions ADD COLUMN image TEXT;
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
  {
    version: 3,
    name: 'invocation filter columns',
    // Filters beyond function and outcome scan in time order (the listing's order) and stop at the page size.
    up: `
      ALTER TABLE invocations ADD COLUMN tier TEXT;
      ALTER TABLE invocations ADD COLUMN error_code TEXT;
      ALTER TABLE invocations ADD COLUMN cold_start INTEGER;
      UPDATE invocations SET tier = json_extract(body, '$.tier'), error_code = json_extract(body, '$.errorCode'),
        cold_start = json_extract(body, '$.coldStart');
    `,
  },
  {
    version: 4,
    name: 'error-only outcome indexes',
    // Every invocation paid for two outcome indexes (≈ 2.5 µs of the hot path's record write); errors are
    // the outcome worth finding fast, ok rows are most rows and found by walking the time order.
    up: `
      DROP INDEX invocations_by_outcome;
      DROP INDEX invocations_by_function_outcome;
      CREATE INDEX invocations_errors ON invocations(started_ms, rid) WHERE outcome = 'error';
      CREATE INDEX invocations_errors_by_function ON invocations(function_name, started_ms, rid) WHERE outcome = 'error';
    `,
  },
];

export const QUEUE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'queues, messages, dead letters, idempotency keys, outcomes, cursors',
    up: `
      CREATE TABLE queues (name TEXT PRIMARY KEY, created_at TEXT NOT NULL) STRICT;
      CREATE TABLE messages (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        queue TEXT NOT NULL REFERENCES queues(name) ON DELETE CASCADE,
        body BLOB NOT NULL,
        content_type TEXT,
        attributes TEXT CHECK (attributes IS NULL OR json_valid(attributes)),
        idem_key TEXT,
        tracked INTEGER NOT NULL,
        enqueued_at INTEGER NOT NULL,
        visible_at INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        lease_token TEXT,
        errors TEXT CHECK (errors IS NULL OR json_valid(errors))
      ) STRICT;
      -- FIFO scan of one queue, skipping rows that are not visible yet without touching the table.
      CREATE INDEX messages_fifo ON messages(queue, seq, visible_at);
      CREATE INDEX messages_visible ON messages(queue, visible_at);
      CREATE TABLE dead_letters (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        queue TEXT NOT NULL REFERENCES queues(name) ON DELETE CASCADE,
        body BLOB NOT NULL,
        content_type TEXT,
        attributes TEXT,
        idem_key TEXT,
        tracked INTEGER NOT NULL,
        enqueued_at INTEGER NOT NULL,
        dead_at INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        reason TEXT NOT NULL,
        errors TEXT
      ) STRICT;
      CREATE INDEX dead_letters_by_queue ON dead_letters(queue, seq);
      CREATE TABLE idempotency (
        queue TEXT NOT NULL REFERENCES queues(name) ON DELETE CASCADE,
        key TEXT NOT NULL,
        id TEXT NOT NULL,
        digest TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (queue, key)
      ) STRICT;
      CREATE INDEX idempotency_by_time ON idempotency(created_at);
      CREATE TABLE outcomes (
        id TEXT PRIMARY KEY,
        queue TEXT NOT NULL,
        state TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        finished_at INTEGER NOT NULL,
        result_status INTEGER,
        result_type TEXT,
        result_body BLOB,
        has_result INTEGER NOT NULL,
        error_code TEXT,
        error_message TEXT,
        attributes TEXT,
        idem_key TEXT,
        enqueued_at INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX outcomes_by_time ON outcomes(finished_at);
      CREATE TABLE cursors (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
    `,
  },
];
