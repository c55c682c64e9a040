-- orderbatch SQLite schema, version 2: the state of a failed order is stored
-- (orderbatch decides it; see src/model/failure.rs), failures can be closed
-- by hand, stock can be received, and a failed run keeps its message.

ALTER TABLE failed_orders ADD COLUMN state TEXT NOT NULL DEFAULT 'open'
    CHECK (state IN ('open', 'resolved', 'superseded', 'closed', 'final'));
ALTER TABLE failed_orders ADD COLUMN closed_by TEXT;
ALTER TABLE failed_orders ADD COLUMN closed_reason TEXT;
ALTER TABLE failed_orders ADD COLUMN closed_at TEXT;

-- The states of the records version 1 kept, by version 1's rule (used only here).
UPDATE failed_orders SET state = CASE
    WHEN resolved_by IS NOT NULL THEN 'resolved'
    WHEN superseded_by IS NOT NULL THEN 'superseded'
    WHEN order_id IS NULL OR error_code = 'DUPLICATE_IN_INPUT' THEN 'final'
    ELSE 'open' END;

DROP INDEX IF EXISTS failed_orders_open;
CREATE INDEX failed_orders_order ON failed_orders (order_id, run_id);
CREATE INDEX failed_orders_open ON failed_orders (id) WHERE state = 'open';

-- The ledger gains the reason 'receive' (a CHECK constraint cannot be altered in place).
CREATE TABLE stock_ledger_v2 (
    id      INTEGER PRIMARY KEY,
    sku     TEXT NOT NULL,
    run_id  INTEGER,                 -- NULL outside a run (`inventory load`, `inventory receive`)
    reason  TEXT NOT NULL CHECK (reason IN ('load', 'receive', 'order', 'reprocess')),
    delta   INTEGER NOT NULL,
    at      TEXT NOT NULL,
    source  TEXT                     -- the file of a load or a receive
);
INSERT INTO stock_ledger_v2 (id, sku, run_id, reason, delta, at, source)
    SELECT id, sku, run_id, reason, delta, at, source FROM stock_ledger;
DROP TABLE stock_ledger;
ALTER TABLE stock_ledger_v2 RENAME TO stock_ledger;
CREATE INDEX stock_ledger_sku ON stock_ledger (sku);

-- Why a failed run stopped ('summary' keeps summary.json as written).
ALTER TABLE runs ADD COLUMN message TEXT;
