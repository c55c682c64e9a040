//! A SQLite write transaction: BEGIN IMMEDIATE was issued on the
//! connection; COMMIT or (when dropped) ROLLBACK ends it.

use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use super::super::{
    Applied, Claim, ClaimEnd, ClaimToken, Committed, FailureFilter, FailureRecords, InboxFence,
    LedgerReason, NewOrder, OrderClaims, Result, Stock, StoreError, StoredFailure, Tx, Writes,
};
use super::{queries, store_err};
use crate::model::clock::Timestamp;
use crate::model::failure::FailureState;
use crate::model::order::{AcceptedRow, FailedOrder, Product};
use crate::model::run::RunRecord;

pub(super) struct SqliteTx<'c> {
    conn: &'c Connection,
    path: String,
    #[allow(dead_code)]
    timeout: Duration,
    done: bool,
    /// The order ids of other runs' open failures (see `others_open`).
    others_open: Option<super::super::OpenIds>,
    /// A dry run's transaction (see `rehearse`): claimed ids go to a table
    /// of its own instead of the orders, and it is never committed.
    rehearsal: bool,
    /// Most of the last chunk's orders were applied before (a file fed
    /// again): the next chunk's ids are looked up before any is inserted.
    mostly_taken: bool,
}

impl<'c> SqliteTx<'c> {
    pub(super) fn new(conn: &'c Connection, path: String, timeout: Duration) -> Self {
        SqliteTx {
            conn,
            path,
            timeout,
            done: false,
            others_open: None,
            rehearsal: false,
            mostly_taken: false,
        }
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        store_err(&self.path, e)
    }

    fn run<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        f(self.conn).map_err(|e| self.err(e))
    }

    /// Whether other runs left open failures that this run may settle. The
    /// transaction holds the whole database, so what it finds first stays
    /// true for it (only this run adds failures): asked once.
    /// These order ids, but those with certainly no open failure of
    /// another run (read once, the first time it is asked).
    fn others_open<'a>(&mut self, run_id: i64, ids: &[&'a str]) -> Result<Vec<&'a str>> {
        if self.others_open.is_none() {
            let open = self.run(|c| {
                let mut st = c.prepare(
                    "SELECT order_id FROM failed_orders WHERE state = ?1 AND run_id != ?2 AND order_id IS NOT NULL",
                )?;
                let mut rows = st.query(params![FailureState::Open.as_str(), run_id])?;
                let mut open = super::super::OpenIds::default();
                while let Some(r) = rows.next()? {
                    open.push(r.get_ref(0)?.as_str().unwrap_or_default());
                }
                Ok(open.sealed())
            })?;
            self.others_open = Some(open);
        }
        Ok(self
            .others_open
            .as_ref()
            .map(|o| o.filter(ids))
            .unwrap_or_default())
    }
}

impl Drop for SqliteTx<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

fn applied_of(c: &Connection, id: &str) -> rusqlite::Result<Option<Applied>> {
    let mut st = c.prepare_cached("SELECT content_hash, run_id FROM orders WHERE order_id = ?1")?;
    let found: Option<(Vec<u8>, i64)> = st
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(found.map(|(b, run_id)| {
        let mut content_hash = [0u8; 16];
        let n = b.len().min(16);
        content_hash[..n].copy_from_slice(&b[..n]);
        Applied {
            content_hash,
            run_id,
        }
    }))
}

fn insert_skip(
    c: &Connection,
    run_id: i64,
    seq: u64,
    r: &AcceptedRow<&str>,
) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO run_skips (run_id, run_seq, order_id, source_file, source_line, placed_at, customer_email,
         currency, lines, units, total, payment_method) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
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
    ])?;
    Ok(())
}

fn insert_failure(
    c: &Connection,
    run_id: i64,
    seq: u64,
    f: &FailedOrder,
    state: FailureState,
) -> rusqlite::Result<()> {
    let body = serde_json::to_string(&f.body).unwrap_or_default();
    c.prepare_cached(
        "INSERT INTO failed_orders (run_id, run_seq, order_id, error_code, error_detail, source_file, source_line, body, state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        run_id,
        seq as i64,
        f.order_id,
        f.code.as_str(),
        // Empty where the body holds the problems: the text is rendered on read.
        f.stored_detail,
        f.source_file,
        f.source_line as i64,
        body,
        state.as_str()
    ])?;
    Ok(())
}

/// A rehearsal's claim: what the orders table holds under each id, else the
/// id taken in the rehearsal's table (an id this run took already counts as
/// applied by this run, as in a real claim).
fn rehearse_claim(
    c: &Connection,
    run_id: i64,
    orders: &[NewOrder<'_>],
) -> rusqlite::Result<Vec<Claim>> {
    let mut take =
        c.prepare_cached("INSERT INTO rehearsed (order_id) VALUES (?1) ON CONFLICT DO NOTHING")?;
    let mut out = Vec::with_capacity(orders.len());
    for n in orders {
        let id = &n.order.order_id;
        out.push(match applied_of(c, id)? {
            Some(a) => Claim::Taken(a),
            None if take.execute([id])? == 1 => Claim::New,
            None => Claim::Taken(Applied {
                content_hash: n.order.content_hash,
                run_id,
            }),
        });
    }
    Ok(out)
}

/// Open failures of these order ids from other runs move to `to`, naming
/// this run: one statement for the batch (the ids as a JSON array).
fn settle(
    c: &Connection,
    order_ids: &[&str],
    run_id: i64,
    to: FailureState,
) -> rusqlite::Result<()> {
    if order_ids.is_empty() {
        return Ok(());
    }
    let column = match to {
        FailureState::Resolved => "resolved_by",
        _ => "superseded_by",
    };
    let ids = serde_json::to_string(order_ids).unwrap_or_else(|_| "[]".into());
    c.prepare_cached(&format!(
        "UPDATE failed_orders SET state = ?3, {column} = ?2
         WHERE order_id IN (SELECT value FROM json_each(?1)) AND run_id != ?2 AND state = ?4"
    ))?
    .execute(params![
        ids,
        run_id,
        to.as_str(),
        FailureState::Open.as_str()
    ])?;
    Ok(())
}

impl super::super::ReadThrough for SqliteTx<'_> {
    type Reader<'a>
        = queries::Reads<'a>
    where
        Self: 'a;

    fn reader(&mut self) -> queries::Reads<'_> {
        queries::Reads {
            conn: self.conn,
            db: &self.path,
        }
    }
}

impl Stock for SqliteTx<'_> {
    fn stock(&mut self, skus: Option<&[String]>) -> Result<Vec<(String, i64)>> {
        // The whole database is locked already (BEGIN IMMEDIATE).
        let all = queries::all(
            self.conn,
            &self.path,
            "SELECT sku, on_hand FROM products",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(match skus {
            None => all,
            Some(wanted) => {
                let wanted: std::collections::HashSet<&str> =
                    wanted.iter().map(String::as_str).collect();
                all.into_iter()
                    .filter(|(s, _)| wanted.contains(s.as_str()))
                    .collect()
            }
        })
    }

    fn load_products(
        &mut self,
        products: &[Product],
        run_id: Option<i64>,
        source: &str,
        at: Timestamp,
    ) -> Result<()> {
        let at = at.to_rfc3339();
        self.run(|c| {
            let mut old = c.prepare_cached("SELECT on_hand FROM products WHERE sku = ?1")?;
            let mut up = c.prepare_cached(
                "INSERT INTO products (sku, name, unit_price, currency, on_hand) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (sku) DO UPDATE SET name = excluded.name, unit_price = excluded.unit_price,
                 currency = excluded.currency, on_hand = excluded.on_hand",
            )?;
            let mut ledger = c.prepare_cached(
                "INSERT INTO stock_ledger (sku, run_id, reason, delta, at, source) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for p in products {
                let before: i64 = old.query_row([&p.sku], |r| r.get(0)).optional()?.unwrap_or(0);
                up.execute(params![p.sku, p.name, p.unit_price, p.currency, p.on_hand])?;
                if p.on_hand != before {
                    let reason = LedgerReason::Load.as_str();
                    ledger.execute(params![p.sku, run_id, reason, p.on_hand - before, at, source])?;
                }
            }
            // Workers that keep the catalog in memory see that it changed.
            c.execute("UPDATE catalog_version SET version = version + 1", [])?;
            Ok(())
        })
    }

    fn receive(
        &mut self,
        lines: &[(String, i64)],
        source: &str,
        at: Timestamp,
    ) -> Result<Vec<(String, i64)>> {
        let at = at.to_rfc3339();
        let mut levels = std::collections::BTreeMap::new();
        let mut unknown = Vec::new();
        self.run(|c| {
            let mut up = c.prepare_cached(
                "UPDATE products SET on_hand = on_hand + ?2 WHERE sku = ?1 RETURNING on_hand",
            )?;
            let mut ledger = c.prepare_cached(
                "INSERT INTO stock_ledger (sku, run_id, reason, delta, at, source) VALUES (?1, NULL, ?2, ?3, ?4, ?5)",
            )?;
            for (sku, n) in lines {
                match up.query_row(params![sku, n], |r| r.get::<_, i64>(0)).optional()? {
                    Some(level) => {
                        ledger.execute(params![sku, LedgerReason::Receive.as_str(), n, at, source])?;
                        levels.insert(sku.clone(), level);
                    }
                    None => unknown.push(sku.clone()),
                }
            }
            Ok(())
        })?;
        if !unknown.is_empty() {
            return Err(StoreError::unknown_skus(&self.path, &unknown));
        }
        Ok(levels.into_iter().collect())
    }

    fn move_stock(
        &mut self,
        deltas: &[(String, i64)],
        run_id: i64,
        reason: LedgerReason,
        at: Timestamp,
    ) -> Result<()> {
        let at = at.to_rfc3339();
        self.run(|c| {
            let mut up = c.prepare_cached("UPDATE products SET on_hand = on_hand + ?2 WHERE sku = ?1")?;
            let mut ledger = c.prepare_cached(
                "INSERT INTO stock_ledger (sku, run_id, reason, delta, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (sku, delta) in deltas.iter().filter(|(_, d)| *d != 0) {
                up.execute(params![sku, delta])?;
                ledger.execute(params![sku, run_id, reason.as_str(), delta, at])?;
            }
            Ok(())
        })
    }
}

impl OrderClaims for SqliteTx<'_> {
    fn claim(&mut self, run_id: i64, orders: &[NewOrder<'_>]) -> Result<Vec<Claim>> {
        if self.rehearsal {
            return self.run(|c| rehearse_claim(c, run_id, orders));
        }
        // Where most orders were applied before (a file fed again), an
        // insert would bind its 16 values to have the row refused: the ids
        // are looked up first, and only those not found are inserted.
        let look_first = self.mostly_taken;
        let claims = self.run(|c| {
            let mut st = c.prepare_cached(
                "INSERT INTO orders (order_id, content_hash, run_id, run_seq, source_file, source_line, placed_at,
                 customer_email, currency, payment_method, payment_ref, payment_amount, total, lines, units, items)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
                 ON CONFLICT (order_id) DO NOTHING",
            )?;
            let mut out = Vec::with_capacity(orders.len());
            for n in orders {
                let o = n.order;
                if look_first {
                    if let Some(a) = applied_of(c, &o.order_id)? {
                        out.push(Claim::Taken(a));
                        continue;
                    }
                }
                let inserted = st.execute(params![
                    o.order_id,
                    &o.content_hash[..],
                    run_id,
                    n.seq as i64,
                    n.source_file,
                    n.source_line as i64,
                    o.placed_at,
                    o.customer_email,
                    o.currency,
                    o.payment_method.as_str(),
                    o.payment_ref,
                    o.payment_amount,
                    o.total,
                    o.lines.len() as i64,
                    o.units,
                    super::super::rows::items_json(o)
                ])? == 1;
                out.push(if inserted {
                    Claim::New
                } else {
                    // Present: what was applied (never missing inside this transaction).
                    applied_of(c, &o.order_id)?.map_or(Claim::New, Claim::Taken)
                });
            }
            Ok(out)
        })?;
        let new = claims.iter().filter(|c| **c == Claim::New).count();
        self.mostly_taken = new * 2 < claims.len();
        Ok(claims)
    }

    fn unclaim(&mut self, order_ids: &[&str]) -> Result<()> {
        let table = if self.rehearsal {
            "rehearsed"
        } else {
            "orders"
        };
        self.run(|c| {
            let mut st = c.prepare_cached(&format!("DELETE FROM {table} WHERE order_id = ?1"))?;
            for id in order_ids {
                st.execute([id])?;
            }
            Ok(())
        })
    }

    fn applied(&mut self, order_ids: &[&str]) -> Result<Vec<Option<Applied>>> {
        self.run(|c| order_ids.iter().map(|id| applied_of(c, id)).collect())
    }

    fn seen_in_run(&mut self, run_id: i64, order_ids: &[&str]) -> Result<Vec<bool>> {
        // A rehearsal's accepted orders are in its own table.
        let accepted = if self.rehearsal {
            "rehearsed WHERE order_id = ?1"
        } else {
            "orders WHERE order_id = ?1 AND run_id = ?2"
        };
        self.run(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT EXISTS (SELECT 1 FROM {accepted})
                     OR EXISTS (SELECT 1 FROM run_skips WHERE order_id = ?1 AND run_id = ?2)
                     OR EXISTS (SELECT 1 FROM failed_orders WHERE order_id = ?1 AND run_id = ?2)"
            ))?;
            order_ids
                .iter()
                .map(|id| st.query_row(params![id, run_id], |r| r.get::<_, bool>(0)))
                .collect()
        })
    }
}

impl FailureRecords for SqliteTx<'_> {
    fn record(&mut self, run_id: i64, w: &Writes<'_>) -> Result<()> {
        let resolved = self.others_open(run_id, &w.resolved)?;
        let superseded = self.others_open(run_id, &w.superseded)?;
        self.run(|c| {
            for (seq, row) in &w.skips {
                insert_skip(c, run_id, *seq, row)?;
            }
            for (seq, f, state) in &w.failures {
                insert_failure(c, run_id, *seq, f, *state)?;
            }
            settle(c, &resolved, run_id, FailureState::Resolved)?;
            let mut by_id = c.prepare_cached(
                "UPDATE failed_orders SET state = ?3, resolved_by = ?2 WHERE id = ?1 AND run_id != ?2 AND state = ?4",
            )?;
            for id in &w.resolved_failures {
                by_id.execute(params![
                    id,
                    run_id,
                    FailureState::Resolved.as_str(),
                    FailureState::Open.as_str()
                ])?;
            }
            settle(c, &superseded, run_id, FailureState::Superseded)?;
            Ok(())
        })
    }

    fn unresolve(&mut self, order_ids: &[&str], run_id: i64) -> Result<()> {
        self.run(|c| {
            let mut st = c.prepare_cached(
                "UPDATE failed_orders SET state = ?3, superseded_by = ?2, resolved_by = NULL
                 WHERE order_id = ?1 AND resolved_by = ?2 AND state = ?4",
            )?;
            for id in order_ids {
                st.execute(params![
                    id,
                    run_id,
                    FailureState::Superseded.as_str(),
                    FailureState::Resolved.as_str()
                ])?;
            }
            Ok(())
        })
    }

    fn supersede_retried(&mut self, failure_ids: &[i64], run_id: i64) -> Result<()> {
        self.run(|c| {
            let mut st = c.prepare_cached(
                "UPDATE failed_orders SET state = ?3, superseded_by = ?2 WHERE id = ?1 AND run_id != ?2 AND state = ?4",
            )?;
            for id in failure_ids {
                st.execute(params![
                    id,
                    run_id,
                    FailureState::Superseded.as_str(),
                    FailureState::Open.as_str()
                ])?;
            }
            Ok(())
        })
    }

    fn hold_open(
        &mut self,
        filter: &FailureFilter,
        order_ids: &[String],
    ) -> Result<Vec<StoredFailure>> {
        queries::open_of(self.conn, &self.path, filter, order_ids)
    }

    fn newest_failures(&mut self, order_ids: &[String]) -> Result<Vec<StoredFailure>> {
        queries::newest_failures(self.conn, &self.path, order_ids)
    }

    fn close(&mut self, failure_ids: &[i64], reason: &str, by: &str, at: Timestamp) -> Result<()> {
        let at = at.to_rfc3339();
        self.run(|c| {
            let mut st = c.prepare_cached(
                "UPDATE failed_orders SET state = ?2, closed_by = ?3, closed_reason = ?4, closed_at = ?5
                 WHERE id = ?1",
            )?;
            for id in failure_ids {
                st.execute(params![id, FailureState::Closed.as_str(), by, reason, at])?;
            }
            Ok(())
        })
    }
}

impl InboxFence for SqliteTx<'_> {
    /// The transaction holds the whole database: no worker can take the
    /// claim over before it ends, whatever its lease says (see `claims`).
    fn fence(&mut self, claim: &ClaimToken, run_id: Option<i64>) -> Result<bool> {
        self.run(|c| super::claims::fence(c, claim, run_id))
    }

    fn end_claim(&mut self, claim: &ClaimToken, end: ClaimEnd<'_>) -> Result<()> {
        self.run(|c| super::claims::end(c, claim, end))
    }
}

impl Tx for SqliteTx<'_> {
    fn finish_run(&mut self, record: &RunRecord) -> Result<()> {
        self.run(|c| queries::finish_run(c, record))
    }

    /// The claimed ids go to a table of their own instead, created inside
    /// this transaction and so gone with its rollback: the orders table and
    /// its index are left alone, only the ids are written, and the claims
    /// decide as they would.
    fn rehearse(&mut self) -> Result<()> {
        self.run(|c| {
            c.execute_batch("CREATE TABLE rehearsed (order_id TEXT PRIMARY KEY) WITHOUT ROWID")
        })?;
        self.rehearsal = true;
        Ok(())
    }

    fn commit_then(mut self: Box<Self>, committed: &dyn Fn()) -> Result<Committed> {
        if self.rehearsal {
            return Err(super::super::rehearsal_committed(&self.path));
        }
        self.conn.execute_batch("COMMIT").map_err(|e| self.err(e))?;
        committed();
        self.done = true;
        Ok(Committed {
            warning: super::checkpoint(self.conn, &self.path),
        })
    }
}
