//! An in-memory database for unit tests: a test double, not a backend.
//! [`Memory`] keeps what a database keeps of runs (products and stock, the
//! stock ledger, applied orders, skips, failure records, finished runs) in
//! plain collections, and [`MemoryTx`] is a transaction over a copy of it,
//! written back on commit and dropped on rollback. It implements every
//! [`Tx`] capability as the conformance tests (`tests/store.rs`) say a
//! backend behaves, with the serial backend's (SQLite's) answers where the
//! backends may differ, so that the applier (`apply`) and what the run
//! stages ask of a transaction can be tested fast and without a database.
//!
//! It is compiled for the crate's unit tests only: nothing else may take
//! it for a backend, and `--db` can never name it. It has no [`Store`]
//! (history, pruning, inbox claims, liveness are about processes and
//! files; the conformance tests cover them on the real backends).
//!
//! [`Store`]: super::Store

use std::collections::{BTreeMap, BTreeSet};

use super::{
    rehearsal_committed, Applied, Claim, ClaimEnd, ClaimToken, Committed, FailureFilter,
    FailureRecords, InboxFence, LedgerReason, NewOrder, OrderClaims, Queries, ReadThrough, Result,
    Stock, StoreError, StoredFailure, Tx, Writes,
};
use crate::model::clock::Timestamp;
use crate::model::failure::{FailureKey, FailureState};
use crate::model::order::{AcceptedRow, FailedOrder, Product, Status};
use crate::model::run::RunRecord;

/// The name errors give the database.
const NAME: &str = "memory";

/// One stock ledger entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub sku: String,
    pub run_id: Option<i64>,
    pub reason: LedgerReason,
    pub delta: i64,
    /// As stored: [`Timestamp::to_rfc3339`].
    pub at: String,
    pub source: Option<String>,
}

/// An applied order: what a re-run looks up, and its accepted-report row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedOrder {
    pub applied: Applied,
    pub seq: u64,
    pub row: AcceptedRow,
}

/// A failure record, with what settled it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureRow {
    pub stored: StoredFailure,
    pub resolved_by: Option<i64>,
    pub superseded_by: Option<i64>,
    /// Closed by hand: who, why, when.
    pub closed: Option<(String, String, String)>,
}

/// An inbox claim as the fence sees it: the token that holds it, and the
/// run recorded on its attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboxClaim {
    pub token: String,
    pub run_id: Option<i64>,
    /// Where its file was moved when the claim ended.
    pub ended: Option<String>,
}

/// The database: every collection public, for tests to set up and look at.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    pub products: BTreeMap<String, Product>,
    pub ledger: Vec<LedgerEntry>,
    /// By order id.
    pub orders: BTreeMap<String, AppliedOrder>,
    /// (run, seq, row), as recorded.
    pub skips: Vec<(i64, u64, AcceptedRow)>,
    /// In the order recorded: ids ascend.
    pub failures: Vec<FailureRow>,
    pub catalog_version: i64,
    /// Runs whose history row a transaction completed, by id.
    pub runs: BTreeMap<i64, RunRecord>,
    /// Inbox claims by content (sha256).
    pub claims: BTreeMap<String, InboxClaim>,
}

impl Memory {
    /// A database whose products have these skus and levels.
    pub fn with_stock(stock: &[(&str, i64)]) -> Memory {
        let mut m = Memory::default();
        for (sku, on_hand) in stock {
            let p = Product {
                sku: sku.to_string(),
                name: format!("{sku} name"),
                unit_price: 100,
                currency: "EUR".into(),
                on_hand: *on_hand,
            };
            m.products.insert(p.sku.clone(), p);
        }
        m
    }

    /// A transaction over a copy: committed, the copy replaces the database.
    pub fn begin(&mut self) -> MemoryTx<'_> {
        let work = self.clone();
        MemoryTx {
            db: self,
            work,
            rehearsed: None,
        }
    }

    /// A sku's stock on hand (0 for none).
    pub fn on_hand(&self, sku: &str) -> i64 {
        self.products.get(sku).map_or(0, |p| p.on_hand)
    }

    /// The sum of a sku's ledger entries (what `verify` compares with the stock).
    pub fn ledger_sum(&self, sku: &str) -> i64 {
        self.ledger
            .iter()
            .filter(|e| e.sku == sku)
            .map(|e| e.delta)
            .sum()
    }

    /// A run's failure records, in input order.
    pub fn failures_of(&self, run_id: i64) -> Vec<&FailureRow> {
        let mut rows: Vec<&FailureRow> = self
            .failures
            .iter()
            .filter(|f| f.stored.run_id == run_id)
            .collect();
        rows.sort_by_key(|f| f.stored.seq);
        rows
    }

    fn failures_where(&self, keep: impl Fn(&FailureRow) -> bool) -> Vec<StoredFailure> {
        let mut out: Vec<StoredFailure> = self
            .failures
            .iter()
            .filter(|f| keep(f))
            .map(|f| f.stored.clone())
            .collect();
        out.sort_by_key(StoredFailure::key);
        out
    }

    /// Move the open failures of other runs that `pick` picks to `to`,
    /// naming `run_id` (as resolver or superseder).
    fn settle(&mut self, run_id: i64, to: FailureState, pick: impl Fn(&StoredFailure) -> bool) {
        for f in &mut self.failures {
            let s = &mut f.stored;
            if s.run_id != run_id && s.state == FailureState::Open && pick(s) {
                s.state = to;
                match to {
                    FailureState::Resolved => f.resolved_by = Some(run_id),
                    _ => f.superseded_by = Some(run_id),
                }
            }
        }
    }

    fn add_failure(&mut self, run_id: i64, seq: u64, order: &FailedOrder, state: FailureState) {
        let id = self.failures.last().map_or(1, |f| f.stored.id + 1);
        self.failures.push(FailureRow {
            stored: StoredFailure {
                id,
                run_id,
                seq,
                state,
                order: order.clone(),
            },
            resolved_by: None,
            superseded_by: None,
            closed: None,
        });
    }

    fn add_stock(&mut self, sku: &str, delta: i64, entry: LedgerEntry) {
        if let Some(p) = self.products.get_mut(sku) {
            p.on_hand += delta;
        }
        self.ledger.push(entry);
    }

    fn has_order_of_run(&self, run_id: i64, id: &str) -> bool {
        self.orders
            .get(id)
            .is_some_and(|o| o.applied.run_id == run_id)
    }
}

/// A transaction: the database's copy it works on, written back by commit.
pub struct MemoryTx<'m> {
    db: &'m mut Memory,
    work: Memory,
    /// A rehearsal's claimed ids (see `Tx::rehearse`): kept apart from the
    /// orders, as SQLite keeps them.
    rehearsed: Option<BTreeSet<String>>,
}

impl MemoryTx<'_> {
    fn claim_one(&mut self, run_id: i64, n: &NewOrder<'_>) -> Claim {
        let id = &n.order.order_id;
        if let Some(o) = self.work.orders.get(id) {
            return Claim::Taken(o.applied);
        }
        // An id this run took already counts as applied by this run.
        let taken_here = Claim::Taken(Applied {
            content_hash: n.order.content_hash,
            run_id,
        });
        if let Some(rehearsed) = &mut self.rehearsed {
            return if rehearsed.insert(id.clone()) {
                Claim::New
            } else {
                taken_here
            };
        }
        let row = AcceptedRow::new(n.order, Status::Accepted, n.source_file, n.source_line);
        let applied = Applied {
            content_hash: n.order.content_hash,
            run_id,
        };
        self.work.orders.insert(
            id.clone(),
            AppliedOrder {
                applied,
                seq: n.seq,
                row: owned(&row),
            },
        );
        Claim::New
    }
}

fn owned(r: &AcceptedRow<&str>) -> AcceptedRow {
    AcceptedRow {
        order_id: r.order_id.to_string(),
        status: r.status,
        source_file: r.source_file.to_string(),
        source_line: r.source_line,
        placed_at: r.placed_at.to_string(),
        customer_email: r.customer_email.to_string(),
        currency: r.currency.to_string(),
        lines: r.lines,
        units: r.units,
        total: r.total,
        payment_method: r.payment_method.to_string(),
    }
}

/// The reads, of the database or of a transaction's copy.
pub struct Reads<'a>(&'a Memory);

impl ReadThrough for Memory {
    type Reader<'a> = Reads<'a>;

    fn reader(&mut self) -> Reads<'_> {
        Reads(self)
    }
}

impl ReadThrough for MemoryTx<'_> {
    type Reader<'a>
        = Reads<'a>
    where
        Self: 'a;

    fn reader(&mut self) -> Reads<'_> {
        Reads(&self.work)
    }
}

impl Queries for Reads<'_> {
    fn products(&mut self) -> Result<Vec<Product>> {
        Ok(self.0.products.values().cloned().collect())
    }

    fn failed_of_run(
        &mut self,
        run_id: i64,
        each: &mut dyn FnMut(StoredFailure) -> Result<()>,
    ) -> Result<()> {
        for f in self.0.failures_of(run_id) {
            each(f.stored.clone())?;
        }
        Ok(())
    }

    fn accepted_of_run(
        &mut self,
        run_id: i64,
        each: &mut dyn FnMut(AcceptedRow) -> Result<()>,
    ) -> Result<()> {
        let applied = self
            .0
            .orders
            .values()
            .filter(|o| o.applied.run_id == run_id);
        let mut rows: Vec<(u64, AcceptedRow)> = applied.map(|o| (o.seq, o.row.clone())).collect();
        let skips = self.0.skips.iter().filter(|(run, ..)| *run == run_id);
        rows.extend(skips.map(|(_, seq, row)| (*seq, row.clone())));
        rows.sort_by_key(|(seq, _)| *seq);
        rows.into_iter().try_for_each(|(_, row)| each(row))
    }

    fn open_failures(
        &mut self,
        filter: &FailureFilter,
        after: Option<FailureKey>,
        limit: usize,
    ) -> Result<Vec<StoredFailure>> {
        let mut open = self.0.failures_where(|f| {
            f.stored.state == FailureState::Open
                && selected(filter, &f.stored)
                && after.is_none_or(|k| f.stored.key() > k)
        });
        open.truncate(limit);
        Ok(open)
    }

    fn failures_by_key(&mut self, keys: &[FailureKey]) -> Result<Vec<StoredFailure>> {
        Ok(self.0.failures_where(|f| keys.contains(&f.stored.key())))
    }

    fn catalog_version(&mut self) -> Result<i64> {
        Ok(self.0.catalog_version)
    }
}

/// Whether a failure is of the filter's run and codes.
fn selected(filter: &FailureFilter, f: &StoredFailure) -> bool {
    filter.run.is_none_or(|r| f.run_id == r)
        && (filter.codes.is_empty() || filter.codes.contains(&f.order.code))
}

impl Stock for MemoryTx<'_> {
    fn stock(&mut self, skus: Option<&[String]>) -> Result<Vec<(String, i64)>> {
        let products = self.work.products.values();
        Ok(products
            .filter(|p| skus.is_none_or(|s| s.contains(&p.sku)))
            .map(|p| (p.sku.clone(), p.on_hand))
            .collect())
    }

    fn load_products(
        &mut self,
        products: &[Product],
        run_id: Option<i64>,
        source: &str,
        at: Timestamp,
    ) -> Result<()> {
        for p in products {
            let before = self.work.on_hand(&p.sku);
            self.work.products.insert(p.sku.clone(), p.clone());
            if p.on_hand != before {
                self.work.ledger.push(LedgerEntry {
                    sku: p.sku.clone(),
                    run_id,
                    reason: LedgerReason::Load,
                    delta: p.on_hand - before,
                    at: at.to_rfc3339(),
                    source: Some(source.to_string()),
                });
            }
        }
        self.work.catalog_version += 1;
        Ok(())
    }

    fn receive(
        &mut self,
        lines: &[(String, i64)],
        source: &str,
        at: Timestamp,
    ) -> Result<Vec<(String, i64)>> {
        let unknown: BTreeSet<&str> = lines
            .iter()
            .map(|(sku, _)| sku.as_str())
            .filter(|sku| !self.work.products.contains_key(*sku))
            .collect();
        if !unknown.is_empty() {
            let unknown: Vec<&str> = unknown.into_iter().collect();
            return Err(StoreError::unknown_skus(NAME, &unknown));
        }
        let mut levels = BTreeMap::new();
        for (sku, n) in lines {
            let entry = LedgerEntry {
                sku: sku.clone(),
                run_id: None,
                reason: LedgerReason::Receive,
                delta: *n,
                at: at.to_rfc3339(),
                source: Some(source.to_string()),
            };
            self.work.add_stock(sku, *n, entry);
            levels.insert(sku.clone(), self.work.on_hand(sku));
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
        for (sku, delta) in deltas.iter().filter(|(_, d)| *d != 0) {
            let entry = LedgerEntry {
                sku: sku.clone(),
                run_id: Some(run_id),
                reason,
                delta: *delta,
                at: at.to_rfc3339(),
                source: None,
            };
            self.work.add_stock(sku, *delta, entry);
        }
        Ok(())
    }
}

impl OrderClaims for MemoryTx<'_> {
    fn claim(&mut self, run_id: i64, orders: &[NewOrder<'_>]) -> Result<Vec<Claim>> {
        Ok(orders.iter().map(|n| self.claim_one(run_id, n)).collect())
    }

    fn unclaim(&mut self, order_ids: &[&str]) -> Result<()> {
        for id in order_ids {
            match &mut self.rehearsed {
                Some(rehearsed) => rehearsed.remove(*id),
                None => self.work.orders.remove(*id).is_some(),
            };
        }
        Ok(())
    }

    fn applied(&mut self, order_ids: &[&str]) -> Result<Vec<Option<Applied>>> {
        let applied = |id: &&str| self.work.orders.get(*id).map(|o| o.applied);
        Ok(order_ids.iter().map(applied).collect())
    }

    fn seen_in_run(&mut self, run_id: i64, order_ids: &[&str]) -> Result<Vec<bool>> {
        let w = &self.work;
        let seen = |id: &&str| {
            let accepted = match &self.rehearsed {
                Some(rehearsed) => rehearsed.contains(*id),
                None => w.has_order_of_run(run_id, id),
            };
            accepted
                || w.skips
                    .iter()
                    .any(|(run, _, row)| *run == run_id && row.order_id == *id)
                || w.failures.iter().any(|f| {
                    f.stored.run_id == run_id && f.stored.order.order_id.as_deref() == Some(*id)
                })
        };
        Ok(order_ids.iter().map(seen).collect())
    }
}

impl FailureRecords for MemoryTx<'_> {
    /// In the order both backends write: skips, failures, the failures the
    /// accepted orders resolve (by order id, then by record), then those
    /// failed again supersede.
    fn record(&mut self, run_id: i64, w: &Writes<'_>) -> Result<()> {
        for (seq, row) in &w.skips {
            self.work.skips.push((run_id, *seq, owned(row)));
        }
        for (seq, f, state) in &w.failures {
            self.work.add_failure(run_id, *seq, f, *state);
        }
        let of = |ids: &[&str], f: &StoredFailure| {
            f.order
                .order_id
                .as_deref()
                .is_some_and(|id| ids.contains(&id))
        };
        self.work
            .settle(run_id, FailureState::Resolved, |f| of(&w.resolved, f));
        let by_id = &w.resolved_failures;
        self.work
            .settle(run_id, FailureState::Resolved, |f| by_id.contains(&f.id));
        self.work
            .settle(run_id, FailureState::Superseded, |f| of(&w.superseded, f));
        Ok(())
    }

    fn unresolve(&mut self, order_ids: &[&str], run_id: i64) -> Result<()> {
        for f in &mut self.work.failures {
            let id = f.stored.order.order_id.as_deref();
            if f.stored.state == FailureState::Resolved
                && f.resolved_by == Some(run_id)
                && id.is_some_and(|id| order_ids.contains(&id))
            {
                f.stored.state = FailureState::Superseded;
                f.superseded_by = Some(run_id);
                f.resolved_by = None;
            }
        }
        Ok(())
    }

    fn supersede_retried(&mut self, failure_ids: &[i64], run_id: i64) -> Result<()> {
        self.work.settle(run_id, FailureState::Superseded, |f| {
            failure_ids.contains(&f.id)
        });
        Ok(())
    }

    fn hold_open(
        &mut self,
        filter: &FailureFilter,
        order_ids: &[String],
    ) -> Result<Vec<StoredFailure>> {
        Ok(self.work.failures_where(|f| {
            let id = f.stored.order.order_id.as_ref();
            f.stored.state == FailureState::Open
                && selected(filter, &f.stored)
                && (order_ids.is_empty() || id.is_some_and(|id| order_ids.contains(id)))
        }))
    }

    fn newest_failures(&mut self, order_ids: &[String]) -> Result<Vec<StoredFailure>> {
        let mut newest: BTreeMap<&str, &StoredFailure> = BTreeMap::new();
        for f in &self.work.failures {
            let s = &f.stored;
            let Some(id) = s.order.order_id.as_deref() else {
                continue;
            };
            if s.state == FailureState::Final || !order_ids.iter().any(|o| o == id) {
                continue;
            }
            let slot = newest.entry(id).or_insert(s);
            if s.key() > slot.key() {
                *slot = s;
            }
        }
        let mut out: Vec<StoredFailure> = newest.into_values().cloned().collect();
        out.sort_by_key(StoredFailure::key);
        Ok(out)
    }

    fn close(&mut self, failure_ids: &[i64], reason: &str, by: &str, at: Timestamp) -> Result<()> {
        for f in &mut self.work.failures {
            if failure_ids.contains(&f.stored.id) {
                f.stored.state = FailureState::Closed;
                f.closed = Some((by.to_string(), reason.to_string(), at.to_rfc3339()));
            }
        }
        Ok(())
    }
}

impl InboxFence for MemoryTx<'_> {
    fn fence(&mut self, claim: &ClaimToken, run_id: Option<i64>) -> Result<bool> {
        let Some(held) = self.work.claims.get_mut(&claim.sha256) else {
            return Ok(false);
        };
        let holds = held.token == claim.token && held.ended.is_none();
        if holds && run_id.is_some() {
            held.run_id = run_id;
        }
        Ok(holds)
    }

    fn end_claim(&mut self, claim: &ClaimToken, end: ClaimEnd<'_>) -> Result<()> {
        if let Some(held) = self.work.claims.get_mut(&claim.sha256) {
            if held.token == claim.token {
                held.ended = Some(end.moved_to.to_string());
                held.run_id = end.run_id.or(held.run_id);
            }
        }
        Ok(())
    }
}

impl Tx for MemoryTx<'_> {
    fn finish_run(&mut self, record: &RunRecord) -> Result<()> {
        self.work.runs.insert(record.summary.run_id, record.clone());
        Ok(())
    }

    fn rehearse(&mut self) -> Result<()> {
        self.rehearsed = Some(BTreeSet::new());
        Ok(())
    }

    fn commit_then(self: Box<Self>, committed: &dyn Fn()) -> Result<Committed> {
        if self.rehearsed.is_some() {
            return Err(rehearsal_committed(NAME));
        }
        let MemoryTx { db, work, .. } = *self;
        *db = work;
        committed();
        Ok(Committed::default())
    }
}

/// The conformance cases of `tests/store.rs` that the applier relies on,
/// run on the double: it answers as the backends do.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::order::{FailedBody, Line, ValidOrder};
    use crate::model::ErrorCode;

    fn order(id: &str, sku: &str, quantity: i64, hash: u8) -> ValidOrder {
        ValidOrder {
            order_id: id.into(),
            placed_at: "2026-11-25T22:14:03Z".into(),
            customer_email: "a@b.co".into(),
            currency: "EUR".into(),
            payment_method: crate::model::order::PaymentMethod::Card,
            payment_ref: "ref".into(),
            payment_amount: 100 * quantity,
            lines: vec![Line {
                sku: sku.into(),
                quantity,
                unit_price: 100,
            }],
            total: 100 * quantity,
            units: quantity,
            content_hash: [hash; 16],
        }
    }

    fn new(o: &ValidOrder, seq: u64) -> NewOrder<'_> {
        NewOrder {
            order: o,
            seq,
            source_file: "in.csv",
            source_line: seq + 1,
        }
    }

    fn failure(id: Option<&str>, code: ErrorCode) -> FailedOrder {
        FailedOrder {
            order_id: id.map(str::to_string),
            code,
            stored_detail: String::new(),
            source_file: "in.csv".into(),
            source_line: 7,
            body: FailedBody::default(),
        }
    }

    fn applied(hash: u8, run_id: i64) -> Claim {
        Claim::Taken(Applied {
            content_hash: [hash; 16],
            run_id,
        })
    }

    #[test]
    fn claims_store_new_orders_and_report_what_was_applied_before() {
        let mut m = Memory::default();
        let (o1, o2) = (order("O-1", "A", 1, 1), order("O-2", "A", 2, 2));
        let mut tx = Box::new(m.begin());
        let claims = tx.claim(5, &[new(&o1, 1), new(&o2, 2)]).unwrap();
        assert_eq!(claims, [Claim::New, Claim::New]);
        tx.unclaim(&["O-2"]).unwrap();
        tx.commit().unwrap();
        let mut tx = Box::new(m.begin());
        let again = tx.claim(6, &[new(&o1, 1), new(&o2, 2)]).unwrap();
        assert_eq!(again, [applied(1, 5), Claim::New]);
        assert_eq!(tx.applied(&["O-9"]).unwrap(), [None]);
        tx.commit().unwrap();
        let mut rows = Vec::new();
        m.accepted_of_run(6, &mut |r| {
            rows.push((r.order_id, r.source_line, r.units));
            Ok(())
        })
        .unwrap();
        assert_eq!(rows, [("O-2".to_string(), 3, 2)]);
    }

    #[test]
    fn a_rehearsal_claims_like_a_run_leaves_nothing_and_cannot_commit() {
        let mut m = Memory::default();
        let (o1, o2, o3) = (
            order("O-1", "A", 1, 1),
            order("O-2", "A", 2, 2),
            order("O-3", "A", 3, 3),
        );
        let mut tx = Box::new(m.begin());
        tx.claim(5, &[new(&o1, 1)]).unwrap();
        tx.commit().unwrap();
        let mut tx = Box::new(m.begin());
        tx.rehearse().unwrap();
        let first = tx
            .claim(6, &[new(&o1, 1), new(&o2, 2), new(&o3, 3)])
            .unwrap();
        assert_eq!(first, [applied(1, 5), Claim::New, Claim::New]);
        assert_eq!(tx.claim(6, &[new(&o2, 4)]).unwrap(), [applied(2, 6)]);
        let seen = tx.seen_in_run(6, &["O-1", "O-2", "O-3", "O-9"]).unwrap();
        assert_eq!(seen, [false, true, true, false]);
        tx.unclaim(&["O-3"]).unwrap();
        assert_eq!(tx.seen_in_run(6, &["O-3"]).unwrap(), [false]);
        let refused = tx.commit().unwrap_err().to_string();
        assert!(refused.contains("a dry run's transaction"), "{refused}");
        assert_eq!(m.orders.len(), 1, "nothing of it stays");
    }

    #[test]
    fn records_keep_skips_and_failures_and_settle_older_failures() {
        let mut m = Memory::default();
        let f_open = failure(Some("O-1"), ErrorCode::InsufficientStock);
        let f_dup = failure(Some("O-1"), ErrorCode::DuplicateInInput);
        let f_other = failure(Some("O-3"), ErrorCode::UnknownSku);
        let mut tx = Box::new(m.begin());
        let w = Writes {
            failures: vec![
                (1, &f_open, FailureState::Open),
                (2, &f_dup, FailureState::Final),
                (3, &f_other, FailureState::Open),
            ],
            ..Writes::default()
        };
        tx.record(1, &w).unwrap();
        tx.commit().unwrap();
        let o1 = order("O-1", "A", 1, 1);
        let f_again = failure(Some("O-3"), ErrorCode::UnknownSku);
        let mut tx = Box::new(m.begin());
        let w = Writes {
            skips: vec![(1, AcceptedRow::new(&o1, Status::Skipped, "b.csv", 2))],
            failures: vec![(2, &f_again, FailureState::Open)],
            resolved: vec!["O-1"],
            superseded: vec!["O-3"],
            ..Writes::default()
        };
        tx.record(2, &w).unwrap();
        let seen = tx.seen_in_run(2, &["O-1", "O-3", "O-2"]).unwrap();
        assert_eq!(seen, [true, true, false]);
        tx.commit().unwrap();
        let states: Vec<(FailureState, Option<i64>, Option<i64>)> = m
            .failures_of(1)
            .iter()
            .map(|f| (f.stored.state, f.resolved_by, f.superseded_by))
            .collect();
        use FailureState::*;
        assert_eq!(
            states,
            [
                (Resolved, Some(2), None),
                (Final, None, None),
                (Superseded, None, Some(2))
            ]
        );
        let open = m
            .open_failures(&FailureFilter::default(), None, 10)
            .unwrap();
        assert_eq!(
            open.iter().map(|f| f.key()).collect::<Vec<_>>(),
            [FailureKey { run: 2, seq: 2 }]
        );
    }

    #[test]
    fn loads_set_stock_receives_add_the_ledger_follows_and_a_rollback_leaves_nothing() {
        let mut m = Memory::with_stock(&[("A", 5), ("B", 0)]);
        let at = Timestamp::parse("2026-11-25T22:00:00Z").unwrap();
        let mut tx = Box::new(m.begin());
        let mut a = tx.products().unwrap().remove(0);
        a.on_hand = 7;
        tx.load_products(&[a], None, "c2", at).unwrap();
        let levels = tx
            .receive(
                &[("B".into(), 3), ("A".into(), 1), ("B".into(), 2)],
                "d",
                at,
            )
            .unwrap();
        assert_eq!(levels, [("A".to_string(), 8), ("B".to_string(), 5)]);
        tx.move_stock(
            &[("A".into(), -2), ("B".into(), 0)],
            1,
            LedgerReason::Order,
            at,
        )
        .unwrap();
        assert!(tx.receive(&[("Z".into(), 1)], "d", at).is_err());
        tx.commit().unwrap();
        assert_eq!((m.on_hand("A"), m.on_hand("B")), (6, 5));
        assert_eq!(
            m.ledger.len(),
            5,
            "the load's change, three receipts, one move"
        );
        assert_eq!(m.ledger[0].at, "2026-11-25T22:00:00.000Z");
        assert_eq!(m.ledger_sum("A"), 6 - 5, "what moved since it was set up");
        assert_eq!(m.catalog_version, 1);
        drop(
            m.begin()
                .move_stock(&[("A".into(), -6)], 2, LedgerReason::Order, at),
        );
        assert_eq!(m.on_hand("A"), 6, "dropped without commit: rolled back");
    }
}
