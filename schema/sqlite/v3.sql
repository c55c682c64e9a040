-- Version 3: open failures read in key order (their run, then their place in
-- it), as on PostgreSQL, where record ids no longer follow input order.
CREATE INDEX failed_orders_open_key ON failed_orders (run_id, run_seq) WHERE state = 'open';
DROP INDEX IF EXISTS failed_orders_open;
