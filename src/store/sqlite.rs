//! SQLite storage: WAL, one write transaction per run (BEGIN IMMEDIATE),
//! busy waits with backoff and jitter, the schema from `schema.sql`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension};

use super::{
    Backoff, LedgerFault, OpenFailure, Resolutions, Result, RunInput, RunRecord, RunningRun, Store,
    StoreError,
};
use crate::model::order::{AcceptedRow, FailedBody, FailedOrder, Product, Status, ValidOrder};
use crate::model::ErrorCode;

const SCHEMA: &str = include_str!("../../schema.sql");
const SCHEMA_VERSION: i64 = 1;

/// A failure record still open: not resolved, not superseded by a newer
/// failure of the order, about an order with an id (a record that could not be
/// parsed cannot be retried: fix the file), and not a duplicate (the earlier
/// appearance is the order).
const OPEN: &str = "resolved_by IS NULL AND superseded_by IS NULL AND order_id IS NOT NULL \
                    AND error_code != 'DUPLICATE_IN_INPUT'";

pub struct SqliteStore {
    conn: Connection,
    path: String,
    backoff: Backoff,
    seed: u64,
    in_tx: bool,
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

impl SqliteStore {
    /// Open (creating when missing) and migrate the database at `path`.
    pub fn open(path: &str, lock_timeout: Duration) -> Result<SqliteStore> {
        let conn = Connection::open(path).map_err(|source| StoreError::Sqlite {
            path: path.to_string(),
            source,
        })?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            ^ (u64::from(std::process::id()) << 32)
            | 1;
        let mut s = SqliteStore {
            conn,
            path: path.to_string(),
            backoff: Backoff::new(lock_timeout),
            seed,
            in_tx: false,
        };
        // Busy waits are ours (backoff with jitter), not SQLite's.
        s.conn.busy_timeout(Duration::ZERO).map_err(|e| s.err(e))?;
        // Larger pages for a new database: fewer pages to write and index per order.
        // (No effect on an existing database.)
        s.conn
            .execute_batch("PRAGMA page_size=16384")
            .map_err(|e| s.err(e))?;
        s.retry(|c| {
            c.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))
                .map(|_| ())
        })?;
        // FULL: a committed run survives power loss, and costs one fsync per run.
        s.conn
            .execute_batch(
                "PRAGMA synchronous=FULL; PRAGMA cache_size=-24576; PRAGMA temp_store=MEMORY;",
            )
            .map_err(|e| s.err(e))?;
        s.migrate()?;
        Ok(s)
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        let path = self.path.clone();
        let what = match source.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => "the disk is full",
            Some(rusqlite::ErrorCode::SystemIoFailure) => {
                "a disk write failed (disk full, file too large, or a failing disk)"
            }
            _ => return StoreError::Sqlite { path, source },
        };
        StoreError::Disk { path, what, source }
    }

    /// A short write of its own: `f` in a transaction that commits when it
    /// succeeds and rolls back when it fails.
    fn in_transaction<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.begin()?;
        match f(self) {
            Ok(v) => {
                self.commit()?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.rollback();
                Err(e)
            }
        }
    }

    /// Every row of a query, each turned into a `T`.
    fn query_all<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let run = || -> rusqlite::Result<Vec<T>> {
            let mut st = self.conn.prepare_cached(sql)?;
            let rows = st.query_map(params, row)?;
            rows.collect()
        };
        run().map_err(|e| self.err(e))
    }

    /// Run `f`, retrying while the database is busy, up to the lock timeout.
    fn retry<T>(&mut self, mut f: impl FnMut(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let start = Instant::now();
        let mut attempt = 0;
        loop {
            match f(&self.conn) {
                Ok(v) => return Ok(v),
                Err(e) if is_busy(&e) => {
                    let left = self.backoff.timeout.saturating_sub(start.elapsed());
                    if left.is_zero() {
                        return Err(StoreError::Locked {
                            path: self.path.clone(),
                            secs: self.backoff.timeout.as_secs_f64(),
                        });
                    }
                    std::thread::sleep(self.backoff.delay(attempt, &mut self.seed).min(left));
                    attempt += 1;
                }
                Err(e) => return Err(self.err(e)),
            }
        }
    }

    fn migrate(&mut self) -> Result<()> {
        let version =
            |c: &Connection| c.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0));
        let v = self.retry(version)?;
        if v == SCHEMA_VERSION {
            return Ok(());
        }
        if v > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found: v,
                known: SCHEMA_VERSION,
            });
        }
        self.in_transaction(|s| {
            let run = || -> rusqlite::Result<()> {
                // Another process may have migrated while we waited for the lock.
                if version(&s.conn)? < SCHEMA_VERSION {
                    s.conn.execute_batch(SCHEMA)?;
                    s.conn
                        .execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
                }
                Ok(())
            };
            run().map_err(|e| s.err(e))
        })
    }

    fn row_to_run(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
        Ok(RunRecord {
            id: r.get(0)?,
            command: r.get(1)?,
            status: r.get(2)?,
            started_at: r.get(3)?,
            finished_at: r.get(4)?,
            duration_ms: r.get(5)?,
            orders: r.get(6)?,
            accepted: r.get(7)?,
            skipped: r.get(8)?,
            failed: r.get(9)?,
            lines: r.get(10)?,
            units: r.get(11)?,
            errors_by_code: r.get(12)?,
            retried_runs: r.get(13)?,
            report_format: r.get(14)?,
            summary: r.get(15)?,
            inputs: Vec::new(),
        })
    }

    fn inputs_of(&self, run_id: i64) -> Result<Vec<RunInput>> {
        self.query_all(
            "SELECT path, format, sha256 FROM run_inputs WHERE run_id = ?1 ORDER BY seq",
            [run_id],
            |r| {
                Ok(RunInput {
                    path: r.get(0)?,
                    format: r.get(1)?,
                    sha256: r.get(2)?,
                })
            },
        )
    }

    fn failed_from_row(&self, r: &rusqlite::Row<'_>) -> Result<FailedOrder> {
        let get = |e| self.err(e);
        let code: String = r.get(1).map_err(get)?;
        let body: String = r.get(5).map_err(get)?;
        Ok(FailedOrder {
            order_id: r.get(0).map_err(get)?,
            code: ErrorCode::parse(&code).ok_or_else(|| StoreError::Damaged {
                path: self.path.clone(),
                what: format!("unknown error code {code:?}"),
            })?,
            detail: r.get(2).map_err(get)?,
            source_file: r.get(3).map_err(get)?,
            source_line: r.get::<_, i64>(4).map_err(get)? as u64,
            body: serde_json::from_str::<FailedBody>(&body).map_err(|e| StoreError::Damaged {
                path: self.path.clone(),
                what: format!("failed order body: {e}"),
            })?,
        })
    }

    /// Store a run's inputs (their digests are known once they were read).
    pub fn record_inputs(&mut self, run_id: i64, inputs: &[RunInput]) -> Result<()> {
        let mut st = self
            .conn
            .prepare_cached("INSERT OR REPLACE INTO run_inputs (run_id, seq, path, format, sha256) VALUES (?1, ?2, ?3, ?4, ?5)")
            .map_err(|e| self.err(e))?;
        for (i, inp) in inputs.iter().enumerate() {
            st.execute(params![run_id, i as i64, inp.path, inp.format, inp.sha256])
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }
}

const RUN_COLUMNS: &str = "id, command, status, started_at, finished_at, duration_ms, orders, accepted, skipped, failed, lines, units, errors_by_code, retried_runs, report_format, summary";

impl Store for SqliteStore {
    fn begin(&mut self) -> Result<()> {
        self.retry(|c| c.execute_batch("BEGIN IMMEDIATE"))?;
        self.in_tx = true;
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        self.conn.execute_batch("COMMIT").map_err(|e| self.err(e))?;
        self.in_tx = false;
        Ok(())
    }

    fn rollback(&mut self) -> Result<()> {
        if self.in_tx {
            self.in_tx = false;
            self.conn
                .execute_batch("ROLLBACK")
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    fn start_run(
        &mut self,
        command: &str,
        started_at: &str,
        report_format: &str,
        pid: u32,
        host: &str,
    ) -> Result<i64> {
        self.in_transaction(|s| {
            s.conn
                .execute(
                    "INSERT INTO runs (command, status, started_at, report_format, pid, host) VALUES (?1, 'running', ?2, ?3, ?4, ?5)",
                    params![command, started_at, report_format, pid, host],
                )
                .map_err(|e| s.err(e))?;
            Ok(s.conn.last_insert_rowid())
        })
    }

    fn running_runs(&mut self) -> Result<Vec<RunningRun>> {
        self.query_all(
            "SELECT id, pid, host FROM runs WHERE status = 'running' ORDER BY id",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    }

    fn mark_interrupted(&mut self, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.in_transaction(|s| {
            let run = || -> rusqlite::Result<()> {
                let mut st = s.conn.prepare(
                    "UPDATE runs SET status = 'interrupted' WHERE id = ?1 AND status = 'running'",
                )?;
                for id in ids {
                    st.execute([id])?;
                }
                Ok(())
            };
            run().map_err(|e| s.err(e))
        })
    }

    fn finish_run(&mut self, run: &RunRecord) -> Result<()> {
        self.conn
            .execute(
                "UPDATE runs SET status = ?2, finished_at = ?3, duration_ms = ?4, orders = ?5, accepted = ?6,
                 skipped = ?7, failed = ?8, lines = ?9, units = ?10, errors_by_code = ?11, retried_runs = ?12,
                 summary = ?13 WHERE id = ?1",
                params![
                    run.id,
                    run.status,
                    run.finished_at,
                    run.duration_ms,
                    run.orders,
                    run.accepted,
                    run.skipped,
                    run.failed,
                    run.lines,
                    run.units,
                    run.errors_by_code,
                    run.retried_runs,
                    run.summary
                ],
            )
            .map_err(|e| self.err(e))?;
        self.record_inputs(run.id, &run.inputs)
    }

    fn mark_run(&mut self, run: &RunRecord) -> Result<()> {
        self.in_transaction(|s| s.finish_run(run))
    }

    fn products(&mut self) -> Result<Vec<Product>> {
        self.query_all(
            "SELECT sku, name, unit_price, currency, on_hand FROM products ORDER BY sku",
            [],
            |r| {
                Ok(Product {
                    sku: r.get(0)?,
                    name: r.get(1)?,
                    unit_price: r.get(2)?,
                    currency: r.get(3)?,
                    on_hand: r.get(4)?,
                })
            },
        )
    }

    fn load_products(
        &mut self,
        products: &[Product],
        run_id: Option<i64>,
        source: &str,
        at: &str,
    ) -> Result<()> {
        let c = &self.conn;
        let run = (|| -> rusqlite::Result<()> {
            let mut old = c.prepare_cached("SELECT on_hand FROM products WHERE sku = ?1")?;
            let mut up = c.prepare_cached(
                "INSERT INTO products (sku, name, unit_price, currency, on_hand) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (sku) DO UPDATE SET name = excluded.name, unit_price = excluded.unit_price,
                 currency = excluded.currency, on_hand = excluded.on_hand",
            )?;
            let mut ledger = c.prepare_cached(
                "INSERT INTO stock_ledger (sku, run_id, reason, delta, at, source) VALUES (?1, ?2, 'load', ?3, ?4, ?5)",
            )?;
            for p in products {
                let before: i64 = old
                    .query_row([&p.sku], |r| r.get(0))
                    .optional()?
                    .unwrap_or(0);
                up.execute(params![p.sku, p.name, p.unit_price, p.currency, p.on_hand])?;
                if p.on_hand != before {
                    ledger.execute(params![p.sku, run_id, p.on_hand - before, at, source])?;
                }
            }
            Ok(())
        })();
        run.map_err(|e| self.err(e))
    }

    fn move_stock(
        &mut self,
        deltas: &[(String, i64)],
        run_id: i64,
        reason: &str,
        at: &str,
    ) -> Result<()> {
        let c = &self.conn;
        let run = (|| -> rusqlite::Result<()> {
            let mut up =
                c.prepare_cached("UPDATE products SET on_hand = on_hand + ?2 WHERE sku = ?1")?;
            let mut ledger = c.prepare_cached(
                "INSERT INTO stock_ledger (sku, run_id, reason, delta, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (sku, delta) in deltas {
                if *delta != 0 {
                    up.execute(params![sku, delta])?;
                    ledger.execute(params![sku, run_id, reason, delta, at])?;
                }
            }
            Ok(())
        })();
        run.map_err(|e| self.err(e))
    }

    fn applied(&mut self, order_id: &str) -> Result<Option<([u8; 16], i64)>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT content_hash, run_id FROM orders WHERE order_id = ?1")
            .map_err(|e| self.err(e))?;
        let found: Option<(Vec<u8>, i64)> = st
            .query_row([order_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(found.map(|(b, run)| {
            let mut h = [0u8; 16];
            let n = b.len().min(16);
            h[..n].copy_from_slice(&b[..n]);
            (h, run)
        }))
    }

    fn insert_order(
        &mut self,
        run_id: i64,
        seq: u64,
        o: &ValidOrder,
        source_file: &str,
        source_line: u64,
    ) -> Result<bool> {
        // [["sku",quantity,unit_price],...]; skus need no JSON escaping (A-Z a-z 0-9 . _ -).
        let mut items = String::with_capacity(2 + o.lines.len() * 32);
        items.push('[');
        for (i, l) in o.lines.iter().enumerate() {
            if i > 0 {
                items.push(',');
            }
            let mut q = itoa::Buffer::new();
            let mut p = itoa::Buffer::new();
            items.push_str("[\"");
            items.push_str(&l.sku);
            items.push_str("\",");
            items.push_str(q.format(l.quantity));
            items.push(',');
            items.push_str(p.format(l.unit_price));
            items.push(']');
        }
        items.push(']');
        let mut st = self
            .conn
            .prepare_cached(
                "INSERT INTO orders (order_id, content_hash, run_id, run_seq, source_file, source_line, placed_at,
                 customer_email, currency, payment_method, payment_ref, payment_amount, total, lines, units, items)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
                 ON CONFLICT (order_id) DO NOTHING",
            )
            .map_err(|e| self.err(e))?;
        let n = st
            .execute(params![
                o.order_id,
                &o.content_hash[..],
                run_id,
                seq as i64,
                source_file,
                source_line as i64,
                o.placed_at,
                o.customer_email,
                o.currency,
                o.payment_method,
                o.payment_ref,
                o.payment_amount,
                o.total,
                o.lines.len() as i64,
                o.units,
                items
            ])
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    fn skipped_in_run(&mut self, run_id: i64, order_id: &str) -> Result<bool> {
        let mut st = self
            .conn
            .prepare_cached("SELECT 1 FROM run_skips WHERE order_id = ?1 AND run_id = ?2")
            .map_err(|e| self.err(e))?;
        st.exists(params![order_id, run_id])
            .map_err(|e| self.err(e))
    }

    fn insert_skip(&mut self, run_id: i64, seq: u64, r: &AcceptedRow<&str>) -> Result<()> {
        let mut st = self
            .conn
            .prepare_cached(
                "INSERT INTO run_skips (run_id, run_seq, order_id, source_file, source_line, placed_at, customer_email,
                 currency, lines, units, total, payment_method) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )
            .map_err(|e| self.err(e))?;
        st.execute(params![
            run_id,
            seq as i64,
            r.order_id,
            r.source_file,
            r.source_line as i64,
            r.placed_at,
            r.customer_email,
            r.currency,
            r.lines as i64,
            r.units,
            r.total,
            r.payment_method
        ])
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn insert_failed(&mut self, run_id: i64, seq: u64, f: &FailedOrder) -> Result<()> {
        let body = serde_json::to_string(&f.body).unwrap_or_default();
        let mut st = self
            .conn
            .prepare_cached(
                "INSERT INTO failed_orders (run_id, run_seq, order_id, error_code, error_detail, source_file, source_line, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .map_err(|e| self.err(e))?;
        st.execute(params![
            run_id,
            seq as i64,
            f.order_id,
            f.code.as_str(),
            f.detail,
            f.source_file,
            f.source_line as i64,
            body
        ])
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn open_failure_ids(&mut self) -> Result<HashSet<String>> {
        let sql = format!("SELECT DISTINCT order_id FROM failed_orders WHERE {OPEN}");
        let ids = self.query_all(&sql, [], |r| r.get(0))?;
        Ok(ids.into_iter().collect())
    }

    fn resolve_failures(&mut self, order_id: &str, run_id: i64) -> Result<()> {
        let sql =
            format!("UPDATE failed_orders SET resolved_by = ?2 WHERE order_id = ?1 AND run_id != ?2 AND {OPEN}");
        let mut st = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        st.execute(params![order_id, run_id])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn supersede_failures(
        &mut self,
        order_id: Option<&str>,
        ids: &[i64],
        run_id: i64,
    ) -> Result<()> {
        let c = &self.conn;
        let run = (|| -> rusqlite::Result<()> {
            // A run never supersedes its own records: the order's first
            // appearance in a run is the one that stands.
            if let Some(id) = order_id {
                c.prepare_cached(&format!(
                    "UPDATE failed_orders SET superseded_by = ?2 WHERE order_id = ?1 AND run_id != ?2 AND {OPEN}"
                ))?
                .execute(params![id, run_id])?;
            }
            let mut st = c.prepare_cached(&format!(
                "UPDATE failed_orders SET superseded_by = ?2 WHERE id = ?1 AND run_id != ?2 AND {OPEN}"
            ))?;
            for id in ids {
                st.execute(params![id, run_id])?;
            }
            Ok(())
        })();
        run.map_err(|e| self.err(e))
    }

    fn open_failures(&mut self, of_run: Option<i64>) -> Result<Vec<OpenFailure>> {
        let sql = format!(
            "SELECT order_id, error_code, error_detail, source_file, source_line, body, run_id, id FROM failed_orders
             WHERE {OPEN} AND (?1 IS NULL OR run_id = ?1) ORDER BY id"
        );
        let mut st = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let mut rows = st.query([of_run]).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            out.push(OpenFailure {
                id: r.get(7).map_err(|e| self.err(e))?,
                run_id: r.get(6).map_err(|e| self.err(e))?,
                order: self.failed_from_row(r)?,
            });
        }
        Ok(out)
    }

    fn failed_of_run(
        &mut self,
        run_id: i64,
        each: &mut dyn FnMut(FailedOrder) -> Result<()>,
    ) -> Result<()> {
        let mut st = self
            .conn
            .prepare(
                "SELECT order_id, error_code, error_detail, source_file, source_line, body FROM failed_orders
                 WHERE run_id = ?1 ORDER BY run_seq",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = st.query([run_id]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            each(self.failed_from_row(r)?)?;
        }
        Ok(())
    }

    fn accepted_of_run(
        &mut self,
        run_id: i64,
        each: &mut dyn FnMut(AcceptedRow) -> Result<()>,
    ) -> Result<()> {
        let sql = "SELECT run_seq, order_id, 0, source_file, source_line, placed_at, customer_email, currency, lines, units, total, payment_method
                   FROM orders WHERE run_id = ?1
                   UNION ALL
                   SELECT run_seq, order_id, 1, source_file, source_line, placed_at, customer_email, currency, lines, units, total, payment_method
                   FROM run_skips WHERE run_id = ?1
                   ORDER BY 1";
        let mut st = self.conn.prepare(sql).map_err(|e| self.err(e))?;
        let mut rows = st.query([run_id]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let row = (|| -> rusqlite::Result<AcceptedRow> {
                Ok(AcceptedRow {
                    order_id: r.get(1)?,
                    status: if r.get::<_, i64>(2)? == 0 {
                        Status::Accepted
                    } else {
                        Status::Skipped
                    },
                    source_file: r.get(3)?,
                    source_line: r.get::<_, i64>(4)? as u64,
                    placed_at: r.get(5)?,
                    customer_email: r.get(6)?,
                    currency: r.get(7)?,
                    lines: r.get::<_, i64>(8)? as u64,
                    units: r.get(9)?,
                    total: r.get(10)?,
                    payment_method: r.get(11)?,
                })
            })()
            .map_err(|e| self.err(e))?;
            each(row)?;
        }
        Ok(())
    }

    fn runs(&mut self) -> Result<Vec<RunRecord>> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY id DESC");
        let runs = self.query_all(&sql, [], Self::row_to_run)?;
        runs.into_iter()
            .map(|mut r| {
                r.inputs = self.inputs_of(r.id)?;
                Ok(r)
            })
            .collect()
    }

    fn resolutions(&mut self, run_id: i64) -> Result<Resolutions> {
        let pairs = |sql: &str| self.query_all(sql, [run_id], |r| Ok((r.get(0)?, r.get(1)?)));
        Ok(Resolutions {
            open: self
                .conn
                .query_row(
                    &format!("SELECT count(*) FROM failed_orders WHERE run_id = ?1 AND {OPEN}"),
                    [run_id],
                    |r| r.get(0),
                )
                .map_err(|e| self.err(e))?,
            resolved_by: pairs(
                "SELECT resolved_by, count(*) FROM failed_orders WHERE run_id = ?1 AND resolved_by IS NOT NULL
                 GROUP BY resolved_by ORDER BY resolved_by",
            )?,
            superseded_by: pairs(
                "SELECT superseded_by, count(*) FROM failed_orders WHERE run_id = ?1 AND superseded_by IS NOT NULL
                 AND resolved_by IS NULL GROUP BY superseded_by ORDER BY superseded_by",
            )?,
            resolved_here: pairs(
                "SELECT run_id, count(*) FROM failed_orders WHERE resolved_by = ?1 GROUP BY run_id ORDER BY run_id",
            )?,
        })
    }

    fn run(&mut self, id: i64) -> Result<Option<RunRecord>> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1");
        let run = self
            .conn
            .query_row(&sql, [id], Self::row_to_run)
            .optional()
            .map_err(|e| self.err(e))?;
        match run {
            Some(mut r) => {
                r.inputs = self.inputs_of(id)?;
                Ok(Some(r))
            }
            None => Ok(None),
        }
    }

    fn ledger_faults(&mut self) -> Result<Vec<LedgerFault>> {
        let sql = "SELECT sku, max(on_hand), sum(delta) FROM (
                       SELECT sku, on_hand, 0 AS delta FROM products
                       UNION ALL
                       SELECT sku, NULL, delta FROM stock_ledger)
                   GROUP BY sku
                   HAVING max(on_hand) IS NULL OR max(on_hand) < 0 OR max(on_hand) != sum(delta)
                   ORDER BY sku";
        self.query_all(sql, [], |r| {
            Ok(LedgerFault {
                sku: r.get(0)?,
                on_hand: r.get(1)?,
                ledger_sum: r.get(2)?,
            })
        })
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        let _ = self.rollback();
    }
}
