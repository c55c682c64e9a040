-- The schema of orderbatch's default backend (SQLite), version 5: what
-- `orderbatch init` leaves in a new database once every migration has run.
--
-- orderbatch does not read this file: it is generated from the migrations,
-- what schema/sqlite/v1.sql to v5.sql, run in order (src/store/sqlite/mod.rs,
-- MIGRATIONS), leave in sqlite_master, laid out to be read in one place. The
-- test `init_creates_exactly_the_schema_of_schema_sql` (tests/operations.rs)
-- checks it against them: it runs `orderbatch init` on a fresh database and
-- compares every CREATE statement here with sqlite_master (whitespace,
-- comments and identifier quotes aside), the version, and the rows `init`
-- stores. To change the schema, add a migration, then bring this file up to
-- date with it.
--
-- schema/ holds the versioned migrations of both backends: schema/sqlite/
-- (v1 to v5) and schema/postgres/ (v2 to v5, PostgreSQL support began at
-- version 2). A database at version N runs the files above N.
--
-- Money is integer minor units of the row's currency. Times are RFC 3339
-- text, but in the inbox's tables, where they are Unix milliseconds.

-- Catalog and stock on hand. Stock only changes together with a ledger entry.
CREATE TABLE products (
    sku        TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    unit_price INTEGER NOT NULL CHECK (unit_price >= 0),
    currency   TEXT NOT NULL,
    on_hand    INTEGER NOT NULL CHECK (on_hand >= 0)
) WITHOUT ROWID;

-- Every change of stock: for each sku, on_hand = sum(delta). A pruned run's
-- entries are carried forward into one entry per sku (reason 'carried').
CREATE TABLE stock_ledger (
    id      INTEGER PRIMARY KEY,
    sku     TEXT NOT NULL,
    run_id  INTEGER,                 -- NULL outside a run (`inventory load`, `inventory receive`, carried entries)
    reason  TEXT NOT NULL CHECK (reason IN ('load', 'receive', 'order', 'reprocess', 'carried')),
    delta   INTEGER NOT NULL,
    at      TEXT NOT NULL,
    source  TEXT                     -- the file of a load or a receive; what a carried entry sums
);
CREATE INDEX stock_ledger_sku ON stock_ledger (sku);

-- Run history. A row is written when a run starts (status 'running') and
-- completed inside the run's own transaction; a row left 'running' whose
-- process is gone is marked 'interrupted' by the next run. A pruned run
-- keeps its row (and inputs), marked with when it was pruned.
CREATE TABLE runs (
    id             INTEGER PRIMARY KEY,
    command        TEXT NOT NULL,    -- process | reprocess
    status         TEXT NOT NULL,    -- running | completed | dry_run | aborted | failed | interrupted
    pid            INTEGER,          -- the process of a run, to tell a running one from an interrupted one
    host           TEXT,
    started_at     TEXT NOT NULL,
    finished_at    TEXT,
    duration_ms    INTEGER,
    orders         INTEGER NOT NULL DEFAULT 0,
    accepted       INTEGER NOT NULL DEFAULT 0,
    skipped        INTEGER NOT NULL DEFAULT 0,
    failed         INTEGER NOT NULL DEFAULT 0,
    lines          INTEGER NOT NULL DEFAULT 0,
    units          INTEGER NOT NULL DEFAULT 0,
    errors_by_code TEXT NOT NULL DEFAULT '{}',   -- JSON object CODE -> count
    retried_runs   TEXT NOT NULL DEFAULT '[]',   -- JSON array: runs whose failed orders a reprocess retried
    report_format  TEXT NOT NULL DEFAULT 'csv',
    summary        TEXT,                         -- summary.json as written
    message        TEXT,                         -- why a failed run stopped
    pruned_at      TEXT                          -- when `runs prune` pruned the run
);

-- The input files of a run.
CREATE TABLE run_inputs (
    run_id INTEGER NOT NULL,
    seq    INTEGER NOT NULL,
    path   TEXT NOT NULL,
    format TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
-- Whether a completed run already processed a content.
CREATE INDEX run_inputs_sha256 ON run_inputs (sha256);

-- Applied orders. Lines are kept compactly in `items` as a JSON array of
-- [sku, quantity, unit_price]; content_hash decides skipped vs conflict. Of
-- a pruned run's orders only the id, the content fingerprint and the run
-- stay (the other columns are emptied, so that an old file fed again is
-- still skipped).
CREATE TABLE orders (
    order_id       TEXT PRIMARY KEY,
    content_hash   BLOB NOT NULL,
    run_id         INTEGER NOT NULL,
    run_seq        INTEGER NOT NULL,
    source_file    TEXT NOT NULL,
    source_line    INTEGER NOT NULL,
    placed_at      TEXT NOT NULL,
    customer_email TEXT NOT NULL,
    currency       TEXT NOT NULL,
    payment_method TEXT NOT NULL,
    payment_ref    TEXT NOT NULL,
    payment_amount INTEGER NOT NULL,
    total          INTEGER NOT NULL,
    lines          INTEGER NOT NULL,
    units          INTEGER NOT NULL,
    items          TEXT NOT NULL
) WITHOUT ROWID;
-- The applied orders of each run not pruned yet, by run (a pruned order,
-- its items emptied, leaves the index).
CREATE INDEX orders_unpruned ON orders (run_id, run_seq) WHERE items <> '';

-- Orders a run reported as skipped (applied before with the same content).
CREATE TABLE run_skips (
    run_id         INTEGER NOT NULL,
    run_seq        INTEGER NOT NULL,
    order_id       TEXT NOT NULL,
    source_file    TEXT NOT NULL,
    source_line    INTEGER NOT NULL,
    placed_at      TEXT NOT NULL,
    customer_email TEXT NOT NULL,
    currency       TEXT NOT NULL,
    lines          INTEGER NOT NULL,
    units          INTEGER NOT NULL,
    total          INTEGER NOT NULL,
    payment_method TEXT NOT NULL,
    PRIMARY KEY (run_id, run_seq)
) WITHOUT ROWID;
CREATE INDEX run_skips_order ON run_skips (order_id, run_id);

-- Failed orders, with their input rows (card numbers masked) so that the
-- failed report can be rebuilt and the order reprocessed. orderbatch decides
-- the state (src/model/failure.rs); a failure can be closed by hand.
CREATE TABLE failed_orders (
    id            INTEGER PRIMARY KEY,
    run_id        INTEGER NOT NULL,
    run_seq       INTEGER NOT NULL,
    order_id      TEXT,               -- NULL for a record that could not be parsed
    error_code    TEXT NOT NULL,
    error_detail  TEXT NOT NULL,
    source_file   TEXT NOT NULL,
    source_line   INTEGER NOT NULL,
    body          TEXT NOT NULL,      -- JSON: the rows as read, masked
    resolved_by   INTEGER,            -- the run that accepted (or skipped) the order later
    superseded_by INTEGER,            -- a later run that failed the same order again (its record is the open one)
    state         TEXT NOT NULL DEFAULT 'open'
        CHECK (state IN ('open', 'resolved', 'superseded', 'closed', 'final')),
    closed_by     TEXT,
    closed_reason TEXT,
    closed_at     TEXT
);
CREATE INDEX failed_orders_run ON failed_orders (run_id, run_seq);
CREATE INDEX failed_orders_order ON failed_orders (order_id, run_id);
-- Open failures in key order (their run, then their place in it).
CREATE INDEX failed_orders_open_key ON failed_orders (run_id, run_seq) WHERE state = 'open';

-- The inbox (`orderbatch inbox`). A claim is on a file's content (its
-- sha256) and names the file: files of the same content share it, so they
-- are never run at once. A worker holds a claim while `lease_until` is ahead
-- and its `token` is the one in the row; another worker takes it over once
-- the lease has ended. `attempts` counts the tries that ended for a
-- temporary problem or lapsed; no claim is granted before `next_try_at`.
CREATE TABLE inbox_claims (
    sha256      TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('claimed', 'waiting', 'done', 'failed')),
    token       TEXT,                 -- the holder's random token, while claimed
    host        TEXT,                 -- the last holder
    pid         INTEGER,
    lease_until INTEGER,
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_try_at INTEGER NOT NULL DEFAULT 0,
    message     TEXT,                 -- the last attempt's problem
    moved_to    TEXT,                 -- where the file went (done, failed)
    updated_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- Every attempt at a claimed file, by its claim's token: who, when, how it
-- ended (NULL while it goes on), the run it committed, and the next try.
CREATE TABLE inbox_attempts (
    token       TEXT PRIMARY KEY,
    sha256      TEXT NOT NULL,
    name        TEXT NOT NULL,
    attempt     INTEGER NOT NULL,     -- 1 for the first try of the file
    host        TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    outcome     TEXT CHECK (outcome IN ('done', 'duplicate', 'failed', 'retry', 'stopped', 'lapsed', 'vanished')),
    run_id      INTEGER,              -- recorded inside the run's own transaction
    next_try_at INTEGER,
    message     TEXT
) WITHOUT ROWID;
CREATE INDEX inbox_attempts_sha256 ON inbox_attempts (sha256, started_at);

-- Bumped by every catalog load (`inventory load`, `--catalog`): a worker
-- that keeps the catalog in memory between files reloads it when it changed.
CREATE TABLE catalog_version (version INTEGER NOT NULL);
INSERT INTO catalog_version (version) VALUES (1);

-- The schema version (src/store/sqlite/mod.rs, SCHEMA_VERSION): a database
-- at this version runs no migration.
PRAGMA user_version = 5;
