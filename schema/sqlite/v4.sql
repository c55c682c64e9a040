-- orderbatch SQLite schema, version 4: runs can be pruned (`runs prune`).
-- A pruned run keeps its history row (and inputs), marked with when it was
-- pruned; its ledger entries are carried forward into one entry per sku
-- (reason 'carried'); of its applied orders only the id, the content
-- fingerprint and the run stay (the other columns are emptied, so that an
-- old file fed again is still skipped).

ALTER TABLE runs ADD COLUMN pruned_at TEXT;

-- The ledger gains the reason 'carried' (a CHECK constraint cannot be altered in place).
CREATE TABLE stock_ledger_v3 (
    id      INTEGER PRIMARY KEY,
    sku     TEXT NOT NULL,
    run_id  INTEGER,                 -- NULL outside a run (`inventory load`, `inventory receive`, carried entries)
    reason  TEXT NOT NULL CHECK (reason IN ('load', 'receive', 'order', 'reprocess', 'carried')),
    delta   INTEGER NOT NULL,
    at      TEXT NOT NULL,
    source  TEXT                     -- the file of a load or a receive; what a carried entry sums
);
INSERT INTO stock_ledger_v3 (id, sku, run_id, reason, delta, at, source)
    SELECT id, sku, run_id, reason, delta, at, source FROM stock_ledger;
DROP TABLE stock_ledger;
ALTER TABLE stock_ledger_v3 RENAME TO stock_ledger;
CREATE INDEX stock_ledger_sku ON stock_ledger (sku);

-- The applied orders of each run not pruned yet, by run: `runs prune` and
-- `report accepted` find a run's orders without reading every order ever
-- applied (the table is keyed by order_id). Partial: a pruned order (its
-- items emptied) leaves the index, which so stays the size of the runs kept.
-- Appended in run_seq order as a run inserts its orders.
CREATE INDEX orders_unpruned ON orders (run_id, run_seq) WHERE items <> '';
