-- Version 3: open failures read in key order (their run, then their place in
-- it). A run that shares the database writes the failures of orders short of
-- stock at its end, after those of later orders, so record ids no longer
-- follow input order: `reprocess` and `failures list` page by key instead.
CREATE INDEX IF NOT EXISTS failed_orders_open_key ON failed_orders (run_id, run_seq) WHERE state = 'open';
DROP INDEX IF EXISTS failed_orders_open;
