-- orderbatch PostgreSQL schema, version 4 (as SQLite's version 4): runs can
-- be pruned (`runs prune`). A pruned run keeps its history row, marked with
-- when it was pruned; its ledger entries are carried forward into one entry
-- per sku (reason 'carried'); of its applied orders only the id, the content
-- fingerprint and the run stay. (orders_run already finds a run's orders.)

ALTER TABLE runs ADD COLUMN IF NOT EXISTS pruned_at text;

ALTER TABLE stock_ledger DROP CONSTRAINT IF EXISTS stock_ledger_reason_check;
ALTER TABLE stock_ledger ADD CONSTRAINT stock_ledger_reason_check
    CHECK (reason IN ('load', 'receive', 'order', 'reprocess', 'carried'));
