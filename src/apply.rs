//! Apply: the sequential decisions, in input order, inside the run's
//! transaction: duplicates within the run, skipped or conflicting order ids,
//! stock, and the records the database keeps of every order.

use std::collections::{HashMap, HashSet};

use rustc_hash::FxHashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use crate::model::order::{AcceptedRow, FailedOrder, Problem, Status, ValidOrder};
use crate::model::ErrorCode;
use crate::read::RawOrder;
use crate::report::summary::Counts;
use crate::store::{self, Store};
use crate::validate::{failed_order, show, summarize, Checked, Verdict};

/// What became of one order.
#[derive(Debug)]
pub enum Outcome {
    Accepted(ValidOrder),
    Skipped(ValidOrder),
    Failed(FailedOrder),
}

/// Stock of one sku: on hand now (as this run changed it) and taken by this run.
#[derive(Debug, Clone, Copy, Default)]
struct Level {
    on_hand: i64,
    taken: i64,
}

pub struct Applier<'s> {
    store: &'s mut dyn Store,
    run_id: i64,
    stock: FxHashMap<String, Level>,
    /// Unresolved failures of earlier runs (and of this one), by order id.
    open_failures: HashSet<String>,
    /// Fingerprints of the order ids that failed in this run. Accepted and
    /// skipped ones are found in the database, so memory grows with failures,
    /// not with the input.
    failed_here: HashSet<u128>,
    pub counts: Counts,
    seq: u64,
}

enum Earlier {
    /// The id was applied by an earlier run with the same content.
    Same,
    /// The id was applied by this earlier run with other content.
    Conflict(i64),
    /// It already appeared in this run's input.
    Duplicate,
    New,
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
            stock: stock
                .into_iter()
                .map(|(sku, on_hand)| (sku, Level { on_hand, taken: 0 }))
                .collect(),
            open_failures,
            failed_here: HashSet::new(),
            counts: Counts::default(),
            seq: 0,
        })
    }

    /// Decide one order. The raw order comes back with the outcome, so the
    /// caller can free both away from this (busiest) thread.
    pub fn apply(
        &mut self,
        checked: Checked,
        source_file: &str,
    ) -> store::Result<(Outcome, RawOrder)> {
        self.seq += 1;
        self.counts.orders += 1;
        let Checked { raw, verdict } = checked;
        let outcome = self.decide(&raw, verdict, source_file)?;
        Ok((outcome, raw))
    }

    fn decide(
        &mut self,
        raw: &RawOrder,
        verdict: Verdict,
        source_file: &str,
    ) -> store::Result<Outcome> {
        match verdict {
            Verdict::Invalid {
                mut problems,
                parsed,
                ..
            } => {
                if let Some(order) = parsed {
                    // Only catalog checks failed: an order applied before with the
                    // same content is skipped, whatever the catalog says now.
                    match self.earlier(&order)? {
                        Earlier::Same => return self.skip(*order, source_file, raw.line),
                        Earlier::Duplicate => problems.push(duplicate(&order.order_id)),
                        Earlier::Conflict(_) | Earlier::New => {}
                    }
                } else if let Some(id) = raw.order_id() {
                    if self.seen_in_run(id)? {
                        problems.push(duplicate(id));
                    }
                }
                self.fail(raw, problems, source_file)
            }
            Verdict::Valid(order) => self.apply_valid(raw, order, source_file),
        }
    }

    fn apply_valid(
        &mut self,
        raw: &RawOrder,
        order: ValidOrder,
        source_file: &str,
    ) -> store::Result<Outcome> {
        if self.failed_here.contains(&fingerprint(&order.order_id)) {
            return self.fail(raw, vec![duplicate(&order.order_id)], source_file);
        }
        let short = self.short_stock(&order);
        // The common case, a new order with stock: one insert, no lookup first.
        if short.is_none()
            && self
                .store
                .insert_order(self.run_id, self.seq, &order, source_file, raw.line)?
        {
            return self.accept(order);
        }
        // Not new, or short of stock: what came before decides first.
        match self.earlier(&order)? {
            Earlier::Same => self.skip(order, source_file, raw.line),
            Earlier::Duplicate => self.fail(raw, vec![duplicate(&order.order_id)], source_file),
            Earlier::Conflict(run) => {
                let m = format!(
                    "order_id {} was applied by run {run} with different content",
                    show(&order.order_id, false)
                );
                self.fail(
                    raw,
                    vec![Problem::new(ErrorCode::OrderIdConflict, m)],
                    source_file,
                )
            }
            Earlier::New => {
                let m = short.unwrap_or_else(|| "the order could not be stored".into());
                self.fail(
                    raw,
                    vec![Problem::new(ErrorCode::InsufficientStock, m)],
                    source_file,
                )
            }
        }
    }

    /// What the order's id met before: an applied order (earlier run or this
    /// one), a skip in this run, or nothing.
    fn earlier(&mut self, order: &ValidOrder) -> store::Result<Earlier> {
        let id = &order.order_id;
        if self.failed_here.contains(&fingerprint(id)) {
            return Ok(Earlier::Duplicate);
        }
        Ok(match self.store.applied(id)? {
            Some((_, run)) if run == self.run_id => Earlier::Duplicate,
            Some(_) if self.store.skipped_in_run(self.run_id, id)? => Earlier::Duplicate,
            Some((hash, _)) if hash == order.content_hash => Earlier::Same,
            Some((_, run)) => Earlier::Conflict(run),
            None => Earlier::New,
        })
    }

    /// Whether an order id already appeared in this run (for orders that did not parse).
    fn seen_in_run(&mut self, id: &str) -> store::Result<bool> {
        if self.failed_here.contains(&fingerprint(id)) {
            return Ok(true);
        }
        Ok(match self.store.applied(id)? {
            Some((_, run)) if run == self.run_id => true,
            Some(_) => self.store.skipped_in_run(self.run_id, id)?,
            None => false,
        })
    }

    fn accept(&mut self, order: ValidOrder) -> store::Result<Outcome> {
        for l in &order.lines {
            if let Some(level) = self.stock.get_mut(l.sku.as_str()) {
                level.on_hand -= l.quantity;
                level.taken += l.quantity;
            }
        }
        self.resolve(&order.order_id)?;
        self.counts.accepted += 1;
        self.counts.lines += order.lines.len() as u64;
        self.counts.units += order.units;
        Ok(Outcome::Accepted(order))
    }

    fn skip(&mut self, order: ValidOrder, source_file: &str, line: u64) -> store::Result<Outcome> {
        let row = AcceptedRow::new(&order, Status::Skipped, source_file, line);
        self.store.insert_skip(self.run_id, self.seq, &row)?;
        self.resolve(&order.order_id)?;
        self.counts.skipped += 1;
        Ok(Outcome::Skipped(order))
    }

    /// Marks the open failures of an order resolved by this run.
    fn resolve(&mut self, order_id: &str) -> store::Result<()> {
        if self.open_failures.remove(order_id) {
            self.store.resolve_failures(order_id, self.run_id)?;
        }
        Ok(())
    }

    /// INSUFFICIENT_STOCK: the order's units of a sku, all lines together, against the stock now.
    fn short_stock(&self, order: &ValidOrder) -> Option<String> {
        let mut need: Vec<(&str, i64)> = Vec::with_capacity(order.lines.len());
        for l in &order.lines {
            match need.iter_mut().find(|(s, _)| *s == l.sku) {
                Some((_, n)) => *n += l.quantity,
                None => need.push((&l.sku, l.quantity)),
            }
        }
        let short: Vec<String> = need
            .iter()
            .filter_map(|(sku, n)| {
                let have = self.stock.get(*sku).map(|l| l.on_hand).unwrap_or(0);
                (*n > have).then(|| format!("sku {} needs {n}, {have} on hand", show(sku, false)))
            })
            .collect();
        (!short.is_empty()).then(|| short.join(", "))
    }

    fn fail(
        &mut self,
        raw: &RawOrder,
        mut problems: Vec<Problem>,
        source_file: &str,
    ) -> store::Result<Outcome> {
        let (code, detail) = summarize(&mut problems);
        let f = failed_order(raw, code, detail, source_file);
        if let Some(id) = f.order_id.as_deref() {
            self.failed_here.insert(fingerprint(id));
            // The newest failure of an order is the open one; a duplicate is
            // never open (its earlier appearance is the order).
            if f.code != ErrorCode::DuplicateInInput {
                if self.open_failures.contains(id) {
                    self.store.supersede_failures(Some(id), &[], self.run_id)?;
                }
                self.open_failures.insert(id.to_string());
            }
        }
        self.store.insert_failed(self.run_id, self.seq, &f)?;
        self.counts.failed += 1;
        self.counts.by_code[f.code as usize] += 1;
        Ok(Outcome::Failed(f))
    }

    /// Write the stock the run took: one update and one ledger entry per sku.
    pub fn finish(self, reason: &str, at: &str) -> store::Result<()> {
        let mut deltas: Vec<(String, i64)> = self
            .stock
            .iter()
            .filter(|(_, l)| l.taken != 0)
            .map(|(s, l)| (s.clone(), -l.taken))
            .collect();
        deltas.sort();
        self.store.move_stock(&deltas, self.run_id, reason, at)
    }
}

fn duplicate(id: &str) -> Problem {
    Problem::new(
        ErrorCode::DuplicateInInput,
        format!(
            "order_id {} already appeared earlier in this run's input",
            show(id, false)
        ),
    )
}

/// 128-bit fingerprint of an order id: a false match needs a 128-bit collision.
fn fingerprint(id: &str) -> u128 {
    let mut a = DefaultHasher::new();
    (0u8, id).hash(&mut a);
    let mut b = DefaultHasher::new();
    (1u8, id).hash(&mut b);
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}
