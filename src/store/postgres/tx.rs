//! A PostgreSQL transaction: reads see every committed change (READ
//! COMMITTED); the stock rows a run needs are locked FOR UPDATE in sku order;
//! order ids are claimed by inserting them (a concurrent run holding one
//! makes the claim wait for its commit); bulk rows go in by binary COPY.

use std::collections::HashMap;

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use postgres::Transaction;

use super::super::{
    Applied, Claim, ClaimEnd, ClaimToken, Committed, FailureFilter, FailureRecords, InboxFence,
    LedgerReason, NewOrder, OrderClaims, Result, Stock, StoreError, StoredFailure, Tx, Writes,
};
use super::{queries, Db};
use crate::model::clock::Timestamp;
use crate::model::failure::FailureState;
use crate::model::order::{AcceptedRow, Product};
use crate::model::run::RunRecord;

pub(super) struct PgTx<'c> {
    tx: Transaction<'c>,
    db: Db,
    /// A dry run's transaction (see `rehearse`): never committed.
    rehearsal: bool,
    /// Statements sent so far (see `Tx::statements`).
    sent: u64,
    /// The order ids of other runs' open failures (see `others_open`).
    others_open: Option<super::super::OpenIds>,
    /// Most of the last chunk's orders were applied before (a file fed
    /// again): the next chunk's ids are looked up before any is inserted.
    mostly_taken: bool,
}

/// The columns of orders, in the staging table's order.
const ORDER_COLUMNS: &str = "order_id, content_hash, run_id, run_seq, source_file, source_line, placed_at, \
     customer_email, currency, payment_method, payment_ref, payment_amount, total, lines, units, items";

fn hash_of(b: &[u8]) -> [u8; 16] {
    let mut h = [0u8; 16];
    let n = b.len().min(16);
    h[..n].copy_from_slice(&b[..n]);
    h
}

impl<'c> PgTx<'c> {
    pub(super) fn new(tx: Transaction<'c>, db: Db) -> Self {
        PgTx {
            tx,
            db,
            rehearsal: false,
            sent: 0,
            others_open: None,
            mostly_taken: false,
        }
    }

    fn execute(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let db = &self.db;
        self.sent += 1;
        self.tx.execute(sql, params).map_err(|e| db.err(e))
    }

    fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<postgres::Row>> {
        let db = &self.db;
        self.sent += 1;
        self.tx.query(sql, params).map_err(|e| db.err(e))
    }

    /// Inserts the chunk's orders whose ids are free, in order_id order (two
    /// runs claiming the same ids queue for each other in one order), as one
    /// statement over column arrays; returns the ids it inserted.
    fn insert_free<'a>(
        &mut self,
        run_id: i64,
        orders: &[NewOrder<'a>],
    ) -> Result<std::collections::HashSet<String>> {
        let mut sorted: Vec<&NewOrder<'a>> = orders.iter().collect();
        sorted.sort_unstable_by(|a, b| a.order.order_id.cmp(&b.order.order_id));
        let text = |f: fn(&NewOrder<'a>) -> &'a str| -> Vec<&'a str> {
            sorted.iter().map(|n| f(n)).collect()
        };
        let int =
            |f: fn(&NewOrder<'a>) -> i64| -> Vec<i64> { sorted.iter().map(|n| f(n)).collect() };
        let ids = text(|n| &n.order.order_id);
        let hashes: Vec<&[u8]> = sorted.iter().map(|n| &n.order.content_hash[..]).collect();
        let seqs = int(|n| n.seq as i64);
        let files = text(|n| n.source_file);
        let lines = int(|n| n.source_line as i64);
        let placed = text(|n| &n.order.placed_at);
        let emails = text(|n| &n.order.customer_email);
        let currencies = text(|n| &n.order.currency);
        let methods = text(|n| n.order.payment_method.as_str());
        let refs = text(|n| &n.order.payment_ref);
        let amounts = int(|n| n.order.payment_amount);
        let totals = int(|n| n.order.total);
        let counts = int(|n| n.order.lines.len() as i64);
        let units = int(|n| n.order.units);
        let items: Vec<String> = sorted
            .iter()
            .map(|n| super::super::rows::items_json(n.order))
            .collect();
        let rows = self.query(
            &format!(
                "INSERT INTO orders ({ORDER_COLUMNS})
                 SELECT u.id, u.h, $3, u.seq, u.f, u.l, u.p, u.e, u.c, u.m, u.r, u.a, u.t, u.n, u.q, u.i
                 FROM unnest($1::text[], $2::bytea[], $4::bigint[], $5::text[], $6::bigint[], $7::text[],
                             $8::text[], $9::text[], $10::text[], $11::text[], $12::bigint[], $13::bigint[],
                             $14::bigint[], $15::bigint[], $16::text[])
                      AS u(id, h, seq, f, l, p, e, c, m, r, a, t, n, q, i)
                 ON CONFLICT (order_id) DO NOTHING RETURNING order_id"
            ),
            &[
                &ids, &hashes, &run_id, &seqs, &files, &lines, &placed, &emails, &currencies,
                &methods, &refs, &amounts, &totals, &counts, &units, &items,
            ],
        )?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn applied_map(&mut self, ids: &[&str]) -> Result<HashMap<String, Applied>> {
        let rows = self.query(
            "SELECT order_id, content_hash, run_id FROM orders WHERE order_id = ANY($1)",
            &[&ids],
        )?;
        Ok(rows
            .iter()
            .map(|r| {
                let hash: Vec<u8> = r.get(1);
                (
                    r.get::<_, String>(0),
                    Applied {
                        content_hash: hash_of(&hash),
                        run_id: r.get(2),
                    },
                )
            })
            .collect())
    }

    fn copy_skips(&mut self, run_id: i64, skips: &[(u64, AcceptedRow<&str>)]) -> Result<()> {
        let db = self.db.clone();
        self.sent += 1;
        let sink = self
            .tx
            .copy_in(
                "COPY run_skips (run_id, run_seq, order_id, source_file, source_line, placed_at, customer_email,
                 currency, lines, units, total, payment_method) FROM STDIN (FORMAT binary)",
            )
            .map_err(|e| db.err(e))?;
        let t = [
            Type::INT8,
            Type::INT8,
            Type::TEXT,
            Type::TEXT,
            Type::INT8,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::INT8,
            Type::INT8,
            Type::INT8,
            Type::TEXT,
        ];
        let mut w = BinaryCopyInWriter::new(sink, &t);
        for (seq, r) in skips {
            w.write(&[
                &run_id,
                &(*seq as i64),
                &r.order_id,
                &r.source_file,
                &(r.source_line as i64),
                &r.placed_at,
                &r.customer_email,
                &r.currency,
                &(r.lines as i64),
                &r.units,
                &r.total,
                &r.payment_method,
            ])
            .map_err(|e| db.err(e))?;
        }
        w.finish().map_err(|e| db.err(e))?;
        Ok(())
    }

    fn copy_failures(
        &mut self,
        run_id: i64,
        failures: &[(u64, &crate::model::order::FailedOrder, FailureState)],
    ) -> Result<()> {
        let db = self.db.clone();
        self.sent += 1;
        let sink = self
            .tx
            .copy_in(
                "COPY failed_orders (run_id, run_seq, order_id, error_code, error_detail, source_file,
                 source_line, body, state) FROM STDIN (FORMAT binary)",
            )
            .map_err(|e| db.err(e))?;
        let t = [
            Type::INT8,
            Type::INT8,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::INT8,
            Type::TEXT,
            Type::TEXT,
        ];
        let mut w = BinaryCopyInWriter::new(sink, &t);
        for (seq, f, state) in failures {
            let body = serde_json::to_string(&f.body).unwrap_or_default();
            w.write(&[
                &run_id,
                &(*seq as i64),
                &f.order_id,
                &f.code.as_str(),
                // Empty where the body holds the problems: rendered on read.
                &f.stored_detail,
                &f.source_file,
                &(f.source_line as i64),
                &body,
                &state.as_str(),
            ])
            .map_err(|e| db.err(e))?;
        }
        w.finish().map_err(|e| db.err(e))?;
        Ok(())
    }

    /// These order ids, but those with certainly no open failure of another
    /// run, as committed when first asked (read then, streamed).
    fn others_open<'a>(&mut self, run_id: i64, ids: &[&'a str]) -> Result<Vec<&'a str>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        if self.others_open.is_none() {
            self.sent += 1;
            let db = self.db.clone();
            let rows = self
                .tx
                .query_raw(
                    "SELECT order_id FROM failed_orders WHERE state = $1 AND run_id != $2 AND order_id IS NOT NULL",
                    [&FailureState::Open.as_str() as &(dyn ToSql + Sync), &run_id],
                )
                .map_err(|e| db.err(e))?;
            let mut open = super::super::OpenIds::default();
            let mut rows = rows;
            while let Some(r) = postgres::fallible_iterator::FallibleIterator::next(&mut rows)
                .map_err(|e| db.err(e))?
            {
                open.push(r.get::<_, &str>(0));
            }
            self.others_open = Some(open.sealed());
        }
        Ok(self
            .others_open
            .as_ref()
            .map(|o| o.filter(ids))
            .unwrap_or_default())
    }

    /// Open failures of these order ids from other runs move to `to`, naming
    /// this run; only ids that may have one are sent.
    fn settle(&mut self, ids: &[&str], run_id: i64, to: FailureState) -> Result<()> {
        let ids = self.others_open(run_id, ids)?;
        if ids.is_empty() {
            return Ok(());
        }
        let column = match to {
            FailureState::Resolved => "resolved_by",
            _ => "superseded_by",
        };
        self.execute(
            &format!(
                "UPDATE failed_orders SET state = $3, {column} = $2
                 WHERE order_id = ANY($1) AND run_id != $2 AND state = $4"
            ),
            &[&ids, &run_id, &to.as_str(), &FailureState::Open.as_str()],
        )?;
        Ok(())
    }
}

impl<'c> super::super::ReadThrough for PgTx<'c> {
    type Reader<'a>
        = queries::Reads<'a, Transaction<'c>>
    where
        Self: 'a;

    fn reader(&mut self) -> queries::Reads<'_, Transaction<'c>> {
        queries::Reads {
            client: &mut self.tx,
            db: &self.db,
        }
    }
}

impl Stock for PgTx<'_> {
    fn stock(&mut self, skus: Option<&[String]>) -> Result<Vec<(String, i64)>> {
        // Sorted locks: runs that share skus queue for each other, never deadlock on them.
        let rows = match skus {
            Some(skus) => self.query(
                "SELECT sku, on_hand FROM products WHERE sku = ANY($1) ORDER BY sku FOR UPDATE",
                &[&skus],
            )?,
            None => self.query(
                "SELECT sku, on_hand FROM products ORDER BY sku FOR UPDATE",
                &[],
            )?,
        };
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn peek_stock(&mut self, skus: &[String]) -> Result<Vec<(String, i64)>> {
        let rows = self.query(
            "SELECT sku, on_hand FROM products WHERE sku = ANY($1) ORDER BY sku",
            &[&skus],
        )?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn load_products(
        &mut self,
        products: &[Product],
        run_id: Option<i64>,
        source: &str,
        at: Timestamp,
    ) -> Result<()> {
        let at = at.to_rfc3339();
        let mut sorted: Vec<&Product> = products.iter().collect();
        sorted.sort_by(|a, b| a.sku.cmp(&b.sku));
        let skus: Vec<&str> = sorted.iter().map(|p| p.sku.as_str()).collect();
        let old: HashMap<String, i64> = self
            .query(
                "SELECT sku, on_hand FROM products WHERE sku = ANY($1) ORDER BY sku FOR UPDATE",
                &[&skus],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let names: Vec<&str> = sorted.iter().map(|p| p.name.as_str()).collect();
        let prices: Vec<i64> = sorted.iter().map(|p| p.unit_price).collect();
        let currencies: Vec<&str> = sorted.iter().map(|p| p.currency.as_str()).collect();
        let levels: Vec<i64> = sorted.iter().map(|p| p.on_hand).collect();
        self.execute(
            "INSERT INTO products (sku, name, unit_price, currency, on_hand)
             SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[])
             ON CONFLICT (sku) DO UPDATE SET name = excluded.name, unit_price = excluded.unit_price,
             currency = excluded.currency, on_hand = excluded.on_hand",
            &[&skus, &names, &prices, &currencies, &levels],
        )?;
        // One ledger entry per product whose stock changed, in file order.
        let (mut l_skus, mut deltas) = (Vec::new(), Vec::new());
        for p in products {
            let before = old.get(&p.sku).copied().unwrap_or(0);
            if p.on_hand != before {
                l_skus.push(p.sku.as_str());
                deltas.push(p.on_hand - before);
            }
        }
        self.execute(
            "INSERT INTO stock_ledger (sku, run_id, reason, delta, at, source)
             SELECT s, $3, $4, d, $5, $6 FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS u(s, d, n) ORDER BY n",
            &[&l_skus, &deltas, &run_id, &LedgerReason::Load.as_str(), &at, &source],
        )?;
        // Workers that keep the catalog in memory see that it changed.
        self.execute("UPDATE catalog_version SET version = version + 1", &[])?;
        Ok(())
    }

    fn receive(
        &mut self,
        lines: &[(String, i64)],
        source: &str,
        at: Timestamp,
    ) -> Result<Vec<(String, i64)>> {
        let at = at.to_rfc3339();
        let mut total: std::collections::BTreeMap<&str, i64> = Default::default();
        for (sku, n) in lines {
            *total.entry(sku).or_default() += n;
        }
        let skus: Vec<&str> = total.keys().copied().collect();
        let adds: Vec<i64> = total.values().copied().collect();
        let locked = self.query(
            "SELECT sku FROM products WHERE sku = ANY($1) ORDER BY sku FOR UPDATE",
            &[&skus],
        )?;
        if locked.len() != skus.len() {
            let known: std::collections::HashSet<String> =
                locked.iter().map(|r| r.get(0)).collect();
            let unknown: Vec<&str> = skus
                .iter()
                .copied()
                .filter(|s| !known.contains(*s))
                .collect();
            return Err(StoreError::unknown_skus(&self.db.name, &unknown));
        }
        let rows = self.query(
            "UPDATE products p SET on_hand = p.on_hand + u.n FROM unnest($1::text[], $2::bigint[]) AS u(sku, n)
             WHERE p.sku = u.sku RETURNING p.sku, p.on_hand",
            &[&skus, &adds],
        )?;
        let l_skus: Vec<&str> = lines.iter().map(|(s, _)| s.as_str()).collect();
        let l_n: Vec<i64> = lines.iter().map(|(_, n)| *n).collect();
        self.execute(
            "INSERT INTO stock_ledger (sku, run_id, reason, delta, at, source)
             SELECT s, NULL, $3, d, $4, $5 FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS u(s, d, n) ORDER BY n",
            &[&l_skus, &l_n, &LedgerReason::Receive.as_str(), &at, &source],
        )?;
        let mut levels: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        levels.sort();
        Ok(levels)
    }

    fn move_stock(
        &mut self,
        deltas: &[(String, i64)],
        run_id: i64,
        reason: LedgerReason,
        at: Timestamp,
    ) -> Result<()> {
        let at = at.to_rfc3339();
        let moved: Vec<&(String, i64)> = deltas.iter().filter(|(_, d)| *d != 0).collect();
        let skus: Vec<&str> = moved.iter().map(|(s, _)| s.as_str()).collect();
        let ds: Vec<i64> = moved.iter().map(|(_, d)| *d).collect();
        self.execute(
            "UPDATE products p SET on_hand = p.on_hand + u.d FROM unnest($1::text[], $2::bigint[]) AS u(sku, d)
             WHERE p.sku = u.sku",
            &[&skus, &ds],
        )?;
        self.execute(
            "INSERT INTO stock_ledger (sku, run_id, reason, delta, at)
             SELECT s, $3, $4, d, $5 FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS u(s, d, n) ORDER BY n",
            &[&skus, &ds, &run_id, &reason.as_str(), &at],
        )?;
        Ok(())
    }
}

impl OrderClaims for PgTx<'_> {
    fn claim(&mut self, run_id: i64, orders: &[NewOrder<'_>]) -> Result<Vec<Claim>> {
        // Where most orders were applied before, an insert would build and
        // send every row to have it refused: they are looked up first.
        let mut applied = if self.mostly_taken {
            let ids: Vec<&str> = orders.iter().map(|n| n.order.order_id.as_str()).collect();
            self.applied_map(&ids)?
        } else {
            HashMap::new()
        };
        let free: Vec<NewOrder<'_>> = orders
            .iter()
            .filter(|n| !applied.contains_key(&n.order.order_id))
            .copied()
            .collect();
        let new = if free.is_empty() {
            std::collections::HashSet::new()
        } else {
            self.insert_free(run_id, &free)?
        };
        // Those refused: applied before, or by a run that held them meanwhile.
        let refused: Vec<&str> = free
            .iter()
            .map(|n| n.order.order_id.as_str())
            .filter(|id| !new.contains(*id))
            .collect();
        if !refused.is_empty() {
            applied.extend(self.applied_map(&refused)?);
        }
        self.mostly_taken = new.len() * 2 < orders.len();
        Ok(orders
            .iter()
            .map(|n| match applied.get(&n.order.order_id) {
                Some(a) if !new.contains(&n.order.order_id) => Claim::Taken(*a),
                _ => Claim::New,
            })
            .collect())
    }

    fn unclaim(&mut self, order_ids: &[&str]) -> Result<()> {
        self.execute("DELETE FROM orders WHERE order_id = ANY($1)", &[&order_ids])?;
        Ok(())
    }

    fn applied(&mut self, order_ids: &[&str]) -> Result<Vec<Option<Applied>>> {
        let map = self.applied_map(order_ids)?;
        Ok(order_ids.iter().map(|id| map.get(*id).copied()).collect())
    }

    fn seen_in_run(&mut self, run_id: i64, order_ids: &[&str]) -> Result<Vec<bool>> {
        let seen: std::collections::HashSet<String> = self
            .query(
                "SELECT u.id FROM unnest($1::text[]) AS u(id)
                 WHERE EXISTS (SELECT 1 FROM orders o WHERE o.order_id = u.id AND o.run_id = $2)
                    OR EXISTS (SELECT 1 FROM run_skips s WHERE s.order_id = u.id AND s.run_id = $2)
                    OR EXISTS (SELECT 1 FROM failed_orders f WHERE f.order_id = u.id AND f.run_id = $2)",
                &[&order_ids, &run_id],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        Ok(order_ids.iter().map(|id| seen.contains(*id)).collect())
    }
}

impl FailureRecords for PgTx<'_> {
    fn record(&mut self, run_id: i64, w: &Writes<'_>) -> Result<()> {
        if !w.skips.is_empty() {
            self.copy_skips(run_id, &w.skips)?;
        }
        if !w.failures.is_empty() {
            self.copy_failures(run_id, &w.failures)?;
        }
        self.settle(&w.resolved, run_id, FailureState::Resolved)?;
        if !w.resolved_failures.is_empty() {
            self.execute(
                "UPDATE failed_orders SET state = $3, resolved_by = $2 WHERE id = ANY($1) AND run_id != $2 AND state = $4",
                &[
                    &w.resolved_failures,
                    &run_id,
                    &FailureState::Resolved.as_str(),
                    &FailureState::Open.as_str(),
                ],
            )?;
        }
        self.settle(&w.superseded, run_id, FailureState::Superseded)
    }

    fn unresolve(&mut self, order_ids: &[&str], run_id: i64) -> Result<()> {
        self.execute(
            "UPDATE failed_orders SET state = $3, superseded_by = $2, resolved_by = NULL
             WHERE order_id = ANY($1) AND resolved_by = $2 AND state = $4",
            &[
                &order_ids,
                &run_id,
                &FailureState::Superseded.as_str(),
                &FailureState::Resolved.as_str(),
            ],
        )?;
        Ok(())
    }

    fn supersede_retried(&mut self, failure_ids: &[i64], run_id: i64) -> Result<()> {
        self.execute(
            "UPDATE failed_orders SET state = $3, superseded_by = $2 WHERE id = ANY($1) AND run_id != $2 AND state = $4",
            &[
                &failure_ids,
                &run_id,
                &FailureState::Superseded.as_str(),
                &FailureState::Open.as_str(),
            ],
        )?;
        Ok(())
    }

    fn hold_failures(
        &mut self,
        keys: &[crate::model::failure::FailureKey],
    ) -> Result<Vec<crate::store::StoredFailure>> {
        // Locked in key order (the order every run and `failures close`
        // lock them in), after any close that holds them has committed.
        self.sent += 1;
        queries::failures_by_key(&mut self.tx, &self.db, keys, true)
    }

    fn hold_open(
        &mut self,
        filter: &FailureFilter,
        order_ids: &[String],
    ) -> Result<Vec<StoredFailure>> {
        queries::hold_open(&mut self.tx, &self.db, filter, order_ids)
    }

    fn newest_failures(&mut self, order_ids: &[String]) -> Result<Vec<StoredFailure>> {
        queries::newest_failures(&mut self.tx, &self.db, order_ids)
    }

    fn close(&mut self, failure_ids: &[i64], reason: &str, by: &str, at: Timestamp) -> Result<()> {
        let at = at.to_rfc3339();
        self.execute(
            "UPDATE failed_orders SET state = $2, closed_by = $3, closed_reason = $4, closed_at = $5 WHERE id = ANY($1)",
            &[&failure_ids, &FailureState::Closed.as_str(), &by, &reason, &at],
        )?;
        Ok(())
    }
}

impl InboxFence for PgTx<'_> {
    fn fence(&mut self, claim: &ClaimToken, run_id: Option<i64>) -> Result<bool> {
        self.sent += 1 + u64::from(run_id.is_some());
        super::claims::fence(&mut self.tx, claim, run_id).map_err(|e| self.db.err(e))
    }

    fn end_claim(&mut self, claim: &ClaimToken, end: ClaimEnd<'_>) -> Result<()> {
        self.sent += 2;
        super::claims::end(&mut self.tx, claim, end).map_err(|e| self.db.err(e))
    }
}

impl Tx for PgTx<'_> {
    fn finish_run(&mut self, record: &RunRecord) -> Result<()> {
        self.sent += 1;
        queries::finish_run(&mut self.tx, &self.db, record)
    }

    /// A rehearsal claims as a run does: the inserted ids make it wait for
    /// a concurrent run holding them, so it decides as the run would.
    fn rehearse(&mut self) -> Result<()> {
        self.rehearsal = true;
        Ok(())
    }

    fn statements(&self) -> u64 {
        self.sent
    }

    fn commit_then(self: Box<Self>, committed: &dyn Fn()) -> Result<Committed> {
        if self.rehearsal {
            return Err(super::super::rehearsal_committed(&self.db.name));
        }
        let db = self.db.clone();
        self.tx.commit().map_err(|e| db.err(e))?;
        committed();
        Ok(Committed::default())
    }
}
