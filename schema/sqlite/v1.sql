-- orderbatch SQLite schema, version 1 (the first). A new database runs every
-- version file in order; an older one runs those above its version. Money is
-- integer minor units of the row's currency.

-- Catalog and stock on hand. Stock only changes together with a ledger entry.
CREATE TABLE IF NOT EXISTS products (
    sku        TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    unit_price INTEGER NOT NULL CHECK (unit_price >= 0),
    currency   TEXT NOT NULL,
    on_hand    INTEGER NOT NULL CHECK (on_hand >= 0)
) WITHOUT ROWID;

-- Every change of stock: for each sku, on_hand = sum(delta).
CREATE TABLE IF NOT EXISTS stock_ledger (
    id      INTEGER PRIMARY KEY,
    sku     TEXT NOT NULL,
    run_id  INTEGER,                 -- NULL for a standalone `inventory load`
    reason  TEXT NOT NULL CHECK (reason IN ('load', 'order', 'reprocess')),
    delta   INTEGER NOT NULL,
    at      TEXT NOT NULL,
    source  TEXT                     -- the catalog file of a load
);
CREATE INDEX IF NOT EXISTS stock_ledger_sku ON stock_ledger (sku);

-- Run history. A row is written when a run starts (status 'running') and
-- completed inside the run's own transaction; a row left 'running' whose
-- process is gone is marked 'interrupted' by the next run.
CREATE TABLE IF NOT EXISTS runs (
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
    summary        TEXT                          -- summary.json as written
);

CREATE TABLE IF NOT EXISTS run_inputs (
    run_id INTEGER NOT NULL,
    seq    INTEGER NOT NULL,
    path   TEXT NOT NULL,
    format TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;

-- Applied orders. Lines are kept compactly in `items` as a JSON array of
-- [sku, quantity, unit_price]; content_hash decides skipped vs conflict.
CREATE TABLE IF NOT EXISTS orders (
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

-- Orders a run reported as skipped (applied before with the same content).
CREATE TABLE IF NOT EXISTS run_skips (
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
CREATE INDEX IF NOT EXISTS run_skips_order ON run_skips (order_id, run_id);

-- Failed orders, with their input rows (card numbers masked) so that the
-- failed report can be rebuilt and the order reprocessed.
CREATE TABLE IF NOT EXISTS failed_orders (
    id           INTEGER PRIMARY KEY,
    run_id       INTEGER NOT NULL,
    run_seq      INTEGER NOT NULL,
    order_id     TEXT,               -- NULL for a record that could not be parsed
    error_code   TEXT NOT NULL,
    error_detail TEXT NOT NULL,
    source_file  TEXT NOT NULL,
    source_line  INTEGER NOT NULL,
    body         TEXT NOT NULL,      -- JSON: the rows as read, masked
    resolved_by  INTEGER,            -- the run that accepted (or skipped) the order later
    superseded_by INTEGER            -- a later run that failed the same order again (its record is the open one)
);
CREATE INDEX IF NOT EXISTS failed_orders_run ON failed_orders (run_id, run_seq);
CREATE INDEX IF NOT EXISTS failed_orders_open ON failed_orders (order_id)
    WHERE resolved_by IS NULL AND superseded_by IS NULL;
