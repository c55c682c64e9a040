//! Apply: the sequential decisions, in input order, inside the run's
//! transaction: skipped or conflicting order ids, stock, and the records the
//! database keeps of every order.

use std::collections::{HashMap, HashSet};

use crate::model::order::{AcceptedRow, FailedOrder, Status, ValidOrder};
use crate::model::ErrorCode;
use crate::report::summary::Counts;
use crate::store::{self, Store};
use crate::validate::{failed_order, show, Checked, Verdict};

/// What became of one order.
#[derive(Debug)]
pub enum Outcome {
    Accepted(AcceptedRow),
    Skipped(AcceptedRow),
    Failed(FailedOrder),
}

pub struct Applier<'s> {
    store: &'s mut dyn Store,
    run_id: i64,
    /// Stock on hand now, per sku, as this run has changed it.
    stock: HashMap<String, i64>,
    /// Units this run took, per sku.
    taken: HashMap<String, i64>,
    open_failures: HashSet<String>,
    pub counts: Counts,
    seq: u64,
}

impl<'s> Applier<'s> {
    pub fn new(
        store: &'s mut dyn Store,
        run_id: i64,
        stock: HashMap<String, i64>,
    ) -> store::Result<Self> {
        let open_failures = store.open_failure_ids()?;
        Ok(Applier {
            store,
            run_id,
            stock,
            taken: HashMap::new(),
            open_failures,
            counts: Counts::default(),
            seq: 0,
        })
    }

    pub fn apply(&mut self, checked: Checked, source_file: &str) -> store::Result<Outcome> {
        self.seq += 1;
        self.counts.orders += 1;
        let line = checked.raw.line;
        let order = match checked.verdict {
            Verdict::Invalid {
                code,
                detail,
                parsed,
            } => {
                // Applied before with the same content: skipped, even if the catalog changed since.
                if let Some(order) = parsed {
                    if let Some((hash, _)) = self.store.applied(&order.order_id)? {
                        if hash == order.content_hash {
                            return self.skip(&order, source_file, line);
                        }
                    }
                }
                return self.fail(failed_order(&checked.raw, code, detail, source_file));
            }
            Verdict::Valid(order) => order,
        };
        if let Some((hash, run)) = self.store.applied(&order.order_id)? {
            if hash == order.content_hash {
                return self.skip(&order, source_file, line);
            }
            let detail = format!(
                "{}: order_id {} was applied by run {run} with different content",
                ErrorCode::OrderIdConflict,
                show(&order.order_id, false)
            );
            let f = failed_order(
                &checked.raw,
                ErrorCode::OrderIdConflict,
                detail,
                source_file,
            );
            return self.fail(f);
        }
        if let Some(detail) = self.short_stock(&order) {
            let f = failed_order(
                &checked.raw,
                ErrorCode::InsufficientStock,
                detail,
                source_file,
            );
            return self.fail(f);
        }
        for l in &order.lines {
            *self.stock.entry(l.sku.clone()).or_default() -= l.quantity;
            *self.taken.entry(l.sku.clone()).or_default() += l.quantity;
        }
        self.store
            .insert_order(self.run_id, self.seq, &order, source_file, line)?;
        self.resolve(&order.order_id)?;
        self.counts.accepted += 1;
        self.counts.lines += order.lines.len() as u64;
        self.counts.units += order.units;
        Ok(Outcome::Accepted(AcceptedRow::new(
            &order,
            Status::Accepted,
            source_file,
            line,
        )))
    }

    fn skip(&mut self, order: &ValidOrder, source_file: &str, line: u64) -> store::Result<Outcome> {
        let row = AcceptedRow::new(order, Status::Skipped, source_file, line);
        self.store.insert_skip(self.run_id, self.seq, &row)?;
        self.resolve(&order.order_id)?;
        self.counts.skipped += 1;
        Ok(Outcome::Skipped(row))
    }

    /// INSUFFICIENT_STOCK: the order's units of a sku, all lines together, against the stock now.
    fn short_stock(&self, order: &ValidOrder) -> Option<String> {
        let mut need: Vec<(&str, i64)> = Vec::new();
        for l in &order.lines {
            match need.iter_mut().find(|(s, _)| *s == l.sku) {
                Some((_, n)) => *n += l.quantity,
                None => need.push((&l.sku, l.quantity)),
            }
        }
        let short: Vec<String> = need
            .iter()
            .filter_map(|(sku, n)| {
                let have = self.stock.get(*sku).copied().unwrap_or(0);
                (*n > have).then(|| format!("sku {} needs {n}, {have} on hand", show(sku, false)))
            })
            .collect();
        (!short.is_empty())
            .then(|| format!("{}: {}", ErrorCode::InsufficientStock, short.join(", ")))
    }

    fn resolve(&mut self, order_id: &str) -> store::Result<()> {
        if self.open_failures.remove(order_id) {
            self.store.resolve_failures(order_id, self.run_id)?;
        }
        Ok(())
    }

    fn fail(&mut self, f: FailedOrder) -> store::Result<Outcome> {
        if let Some(id) = f.order_id.as_deref() {
            // The newest failure of an order is the open one.
            if self.open_failures.contains(id) {
                self.store.supersede_failures(Some(id), &[], self.run_id)?;
            }
            self.open_failures.insert(id.to_string());
        }
        self.store.insert_failed(self.run_id, self.seq, &f)?;
        self.counts.failed += 1;
        self.counts.by_code[f.code as usize] += 1;
        Ok(Outcome::Failed(f))
    }

    /// Units taken per sku, as negative stock deltas, sorted by sku.
    pub fn stock_deltas(&self) -> Vec<(String, i64)> {
        let mut d: Vec<(String, i64)> = self
            .taken
            .iter()
            .filter(|(_, n)| **n != 0)
            .map(|(s, n)| (s.clone(), -n))
            .collect();
        d.sort();
        d
    }

    pub fn store(&mut self) -> &mut dyn Store {
        self.store
    }
}
