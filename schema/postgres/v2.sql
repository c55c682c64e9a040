-- orderbatch PostgreSQL schema, version 2 (the same logical schema as SQLite's
-- version 2; PostgreSQL support began there, so a new database starts at it).
-- Money is integer minor units of the row's currency; times are RFC 3339 text,
-- as in SQLite, so that reports read back byte for byte the same.

CREATE TABLE IF NOT EXISTS schema_version (
    version integer NOT NULL
);

-- Catalog and stock on hand. Stock only changes together with a ledger entry.
CREATE TABLE IF NOT EXISTS products (
    sku        text PRIMARY KEY,
    name       text NOT NULL,
    unit_price bigint NOT NULL CHECK (unit_price >= 0),
    currency   text NOT NULL,
    on_hand    bigint NOT NULL CHECK (on_hand >= 0)
);

-- Every change of stock: for each sku, on_hand = sum(delta).
CREATE TABLE IF NOT EXISTS stock_ledger (
    id      bigserial PRIMARY KEY,
    sku     text NOT NULL,
    run_id  bigint,                  -- NULL outside a run (`inventory load`, `inventory receive`)
    reason  text NOT NULL CHECK (reason IN ('load', 'receive', 'order', 'reprocess')),
    delta   bigint NOT NULL,
    at      text NOT NULL,
    source  text                     -- the file of a load or a receive
);
CREATE INDEX IF NOT EXISTS stock_ledger_sku ON stock_ledger (sku);

-- Run history. A run takes its id from the sequence, holds a session
-- advisory lock on it while it lives (any host can see whether it still
-- does), writes its row as 'running', and completes the row inside its own
-- transaction.
CREATE TABLE IF NOT EXISTS runs (
    id             bigint PRIMARY KEY,
    command        text NOT NULL,
    status         text NOT NULL,
    pid            bigint,
    host           text,
    started_at     text NOT NULL,
    finished_at    text,
    duration_ms    bigint,
    orders         bigint NOT NULL DEFAULT 0,
    accepted       bigint NOT NULL DEFAULT 0,
    skipped        bigint NOT NULL DEFAULT 0,
    failed         bigint NOT NULL DEFAULT 0,
    lines          bigint NOT NULL DEFAULT 0,
    units          bigint NOT NULL DEFAULT 0,
    errors_by_code text NOT NULL DEFAULT '{}',
    retried_runs   text NOT NULL DEFAULT '[]',
    report_format  text NOT NULL DEFAULT 'csv',
    summary        text,
    message        text
);
CREATE SEQUENCE IF NOT EXISTS runs_id_seq OWNED BY runs.id;

CREATE TABLE IF NOT EXISTS run_inputs (
    run_id bigint NOT NULL,
    seq    bigint NOT NULL,
    path   text NOT NULL,
    format text NOT NULL,
    sha256 text NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- Applied orders. Lines are kept compactly in `items` as a JSON array of
-- [sku, quantity, unit_price]; content_hash decides skipped vs conflict.
CREATE TABLE IF NOT EXISTS orders (
    order_id       text PRIMARY KEY,
    content_hash   bytea NOT NULL,
    run_id         bigint NOT NULL,
    run_seq        bigint NOT NULL,
    source_file    text NOT NULL,
    source_line    bigint NOT NULL,
    placed_at      text NOT NULL,
    customer_email text NOT NULL,
    currency       text NOT NULL,
    payment_method text NOT NULL,
    payment_ref    text NOT NULL,
    payment_amount bigint NOT NULL,
    total          bigint NOT NULL,
    lines          bigint NOT NULL,
    units          bigint NOT NULL,
    items          text NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_run ON orders (run_id, run_seq);

-- Orders a run reported as skipped (applied before with the same content).
CREATE TABLE IF NOT EXISTS run_skips (
    run_id         bigint NOT NULL,
    run_seq        bigint NOT NULL,
    order_id       text NOT NULL,
    source_file    text NOT NULL,
    source_line    bigint NOT NULL,
    placed_at      text NOT NULL,
    customer_email text NOT NULL,
    currency       text NOT NULL,
    lines          bigint NOT NULL,
    units          bigint NOT NULL,
    total          bigint NOT NULL,
    payment_method text NOT NULL,
    PRIMARY KEY (run_id, run_seq)
);
CREATE INDEX IF NOT EXISTS run_skips_order ON run_skips (order_id, run_id);

-- Failed orders, with their input rows (card numbers masked), so that the
-- failed report can be rebuilt and the order reprocessed. `state` is decided
-- by orderbatch (src/model/failure.rs).
CREATE TABLE IF NOT EXISTS failed_orders (
    id            bigserial PRIMARY KEY,
    run_id        bigint NOT NULL,
    run_seq       bigint NOT NULL,
    order_id      text,
    error_code    text NOT NULL,
    error_detail  text NOT NULL,
    source_file   text NOT NULL,
    source_line   bigint NOT NULL,
    body          text NOT NULL,
    state         text NOT NULL DEFAULT 'open'
                  CHECK (state IN ('open', 'resolved', 'superseded', 'closed', 'final')),
    resolved_by   bigint,
    superseded_by bigint,
    closed_by     text,
    closed_reason text,
    closed_at     text
);
CREATE INDEX IF NOT EXISTS failed_orders_run ON failed_orders (run_id, run_seq);
CREATE INDEX IF NOT EXISTS failed_orders_order ON failed_orders (order_id, run_id);
CREATE INDEX IF NOT EXISTS failed_orders_open ON failed_orders (id) WHERE state = 'open';
-- Whether runs other than this one left open failures, in two probes: when
-- none did, a run settles nothing and pays nothing per order.
CREATE INDEX IF NOT EXISTS failed_orders_open_run ON failed_orders (run_id) WHERE state = 'open';
