//! The store's boundary: what the rest of the program may ask of a database
//! ([`Store`]) and of a transaction ([`Tx`]), each split into capabilities
//! named after what the callers do with them (the history, pruning, inbox
//! claims, stock, order claims, failure records...). `Box<dyn Store>` and
//! `Box<dyn Tx>` carry every one of them, and their methods need no import;
//! [`Failures`] (for any store) and a concrete store or transaction want
//! their traits in scope: `use crate::store::prelude::*` brings them all.
//! Logic that is the same on every backend lives here, as default methods.
//! Times come in as [`Timestamp`]s and are stored as their text.

use std::time::Duration;

use super::{
    closing, Applied, Claim, ClaimEnd, ClaimResult, ClaimToken, Claimant, CloseSelection, Closing,
    Committed, Concurrency, FailureFilter, Fault, InboxFile, LedgerReason, NewOrder, OldRun,
    PruneBatch, Pruned, Reclaimed, Release, Resolutions, Result, RunFilter, StoredFailure, Writes,
};
use crate::model::clock::Timestamp;
use crate::model::failure::FailureKey;
use crate::model::order::{AcceptedRow, Product};
use crate::model::run::{RunKind, RunRecord};
use crate::model::ReportFormat;

/// Reads, inside a transaction or outside any.
pub trait Queries {
    fn products(&mut self) -> Result<Vec<Product>>;
    /// A run's failed orders in input order.
    fn failed_of_run(
        &mut self,
        run_id: i64,
        each: &mut dyn FnMut(StoredFailure) -> Result<()>,
    ) -> Result<()>;
    /// A run's accepted and skipped orders in input order.
    fn accepted_of_run(
        &mut self,
        run_id: i64,
        each: &mut dyn FnMut(AcceptedRow) -> Result<()>,
    ) -> Result<()>;
    /// Up to `limit` open failures after the key `after`, as `filter`
    /// selects them, in key order: oldest run first, each run's in input
    /// order (a page; call again from the last key).
    fn open_failures(
        &mut self,
        filter: &FailureFilter,
        after: Option<FailureKey>,
        limit: usize,
    ) -> Result<Vec<StoredFailure>>;
    /// The stored failures with these keys (those that exist), by key.
    fn failures_by_key(&mut self, keys: &[FailureKey]) -> Result<Vec<StoredFailure>>;
    /// The catalog's version: it changes with every catalog load, and with
    /// nothing else (stock is not part of it).
    fn catalog_version(&mut self) -> Result<i64>;
}

/// A store or transaction whose [`Queries`] are those of a reader it hands
/// out (a backend's connection and name, borrowed): each backend writes its
/// reads once, for its store and its transactions alike.
pub(crate) trait ReadThrough {
    type Reader<'a>: Queries
    where
        Self: 'a;
    fn reader(&mut self) -> Self::Reader<'_>;
}

impl<T: ReadThrough> Queries for T {
    fn products(&mut self) -> Result<Vec<Product>> {
        self.reader().products()
    }

    fn failed_of_run(
        &mut self,
        run_id: i64,
        each: &mut dyn FnMut(StoredFailure) -> Result<()>,
    ) -> Result<()> {
        self.reader().failed_of_run(run_id, each)
    }

    fn accepted_of_run(
        &mut self,
        run_id: i64,
        each: &mut dyn FnMut(AcceptedRow) -> Result<()>,
    ) -> Result<()> {
        self.reader().accepted_of_run(run_id, each)
    }

    fn open_failures(
        &mut self,
        filter: &FailureFilter,
        after: Option<FailureKey>,
        limit: usize,
    ) -> Result<Vec<StoredFailure>> {
        self.reader().open_failures(filter, after, limit)
    }

    fn failures_by_key(&mut self, keys: &[FailureKey]) -> Result<Vec<StoredFailure>> {
        self.reader().failures_by_key(keys)
    }

    fn catalog_version(&mut self) -> Result<i64> {
        self.reader().catalog_version()
    }
}

/// A database: the capabilities below, and transactions.
pub trait Store: Queries + History + Pruning + InboxClaims + Integrity + Locking + Send {
    /// The database as messages name it (a URL without its password).
    fn name(&self) -> &str;
    fn concurrency(&self) -> Concurrency;
    /// Start the one transaction a run (or a load) writes in; it waits for
    /// other writers up to the lock timeout. Dropped without `commit`, it
    /// rolls back.
    fn begin(&mut self) -> Result<Box<dyn Tx + '_>>;
}

/// The history of runs.
pub trait History {
    /// Record a run as started, in a transaction of its own (so that a run
    /// killed later still shows in the history), and mark it alive for as
    /// long as this store is open.
    fn start_run(
        &mut self,
        kind: RunKind,
        started_at: Timestamp,
        report_format: ReportFormat,
    ) -> Result<i64>;
    /// Record the outcome of a run that committed nothing (dry run, aborted,
    /// failed).
    fn end_run(&mut self, record: &RunRecord) -> Result<()>;
    /// Mark the runs left running by a process that is gone as interrupted;
    /// returns their ids.
    fn reap_interrupted(&mut self) -> Result<Vec<i64>>;
    /// Runs as stored, newest first (the one run `id`, or those of the
    /// statuses and up to the limit `filter` lets the query apply), a
    /// running run whose process is gone read as interrupted.
    fn read_runs(&mut self, id: Option<i64>, filter: &RunFilter) -> Result<Vec<RunRecord>>;
    /// The history, newest first, as `filter` selects it; a running run
    /// whose process is gone shows as interrupted.
    fn runs(&mut self, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        Ok(filter.keep(self.read_runs(None, filter)?))
    }
    fn run(&mut self, id: i64) -> Result<Option<RunRecord>> {
        Ok(self.read_runs(Some(id), &RunFilter::default())?.pop())
    }
    /// When a run last completed and committed (its finished_at), if ever.
    fn last_success(&mut self) -> Result<Option<String>>;
    /// What became of a run's failed orders, and which earlier ones it resolved.
    fn resolutions(&mut self, run_id: i64) -> Result<Resolutions>;
}

/// Forgetting old runs (`runs prune`).
pub trait Pruning {
    /// The runs `runs prune --before` may forget (see [`OldRun`]), oldest
    /// first; never one still running.
    fn old_runs(&mut self, before: Timestamp) -> Result<Vec<OldRun>>;
    /// Forget what `runs prune` forgets of a batch of runs, in one short
    /// transaction (see [`PruneBatch`], [`Pruned`]): their skip records and
    /// settled failure records go, their ledger entries become one
    /// carried-forward entry per sku, their applied orders keep only what a
    /// re-run needs (id, fingerprint, run), and they are marked pruned.
    /// Their open failures stay. Dry, it only counts.
    fn prune(&mut self, batch: &PruneBatch<'_>) -> Result<Pruned>;
    /// When run `id` was pruned, if it was.
    fn pruned_at(&mut self, id: i64) -> Result<Option<String>>;
    /// Give the space pruning freed back to the file system, where the
    /// backend must be asked to (SQLite); `None` where the server does it
    /// by itself (PostgreSQL's autovacuum).
    fn reclaim(&mut self) -> Result<Option<Reclaimed>>;
}

/// The inbox's claims on files (see `claims`), each in a short transaction
/// of its own.
pub trait InboxClaims {
    /// Ask for the claim on an inbox file's content: granted (a new random
    /// token, the lease from now), or refused while another worker's lease
    /// lasts or an earlier attempt's delay has not passed.
    fn claim_file(&mut self, file: InboxFile<'_>, who: Claimant<'_>) -> Result<ClaimResult>;
    /// Extend a claim by `lease` from now; false when this worker no longer
    /// holds it (taken over; on PostgreSQL also: its lease has ended).
    fn renew_claim(&mut self, claim: &ClaimToken, lease: Duration) -> Result<bool>;
    /// End a claim with its file left in the inbox; false when this worker
    /// no longer held it.
    fn release_claim(&mut self, claim: &ClaimToken, release: Release<'_>) -> Result<bool>;
    /// The first completed run that processed a file of this content (by
    /// its inputs' digests, or an inbox attempt's run), if any.
    fn processed_by(&mut self, sha256: &str) -> Result<Option<i64>>;
}

/// `verify`.
pub trait Integrity {
    /// The database's own integrity check and the stock ledger.
    fn check(&mut self) -> Result<Vec<Fault>>;
}

/// Locks that outlast a transaction.
pub trait Locking {
    /// Hold the catalog (prices, currencies, products) steady for a run that
    /// validates before it locks (shared), or take it alone to change it
    /// (exclusive); released when the store is dropped. No-op where a run
    /// holds the whole database anyway.
    fn hold_catalog(&mut self, exclusive: bool) -> Result<()>;
}

/// Closing failures by hand: decided here for every backend (see
/// `closing`), over a transaction of the store's.
pub trait Failures: Store {
    /// Close open failures by hand (by key, by code, by order id), all or
    /// nothing (see [`super::CloseResult::plan`]), in one transaction that
    /// holds them: a run holding one ([`FailureRecords::hold_failures`]) is
    /// waited for, and what it settled is seen.
    fn close_failures(
        &mut self,
        sel: &CloseSelection,
        reason: &str,
        by: &str,
        at: Timestamp,
    ) -> Result<Closing> {
        closing::close_in(self.begin()?, sel, reason, by, at)
    }
}

impl<S: Store + ?Sized> Failures for S {}

/// A transaction. Dropping it without [`Tx::commit`] rolls it back.
pub trait Tx: Queries + Stock + OrderClaims + FailureRecords + InboxFence {
    /// Complete the run's history row, inside its transaction.
    fn finish_run(&mut self, record: &RunRecord) -> Result<()>;
    /// Declare that this transaction will be rolled back (a dry run): the
    /// orders it claims need not be stored, only remembered so that
    /// `seen_in_run` still finds them; every decision stays the one a run
    /// would make. Committing it afterwards is refused.
    fn rehearse(&mut self) -> Result<()>;
    /// Statements this transaction has sent the server so far (where it
    /// counts them; 0 elsewhere): the locked section of a run shows that its
    /// work does not grow with the number of orders.
    fn statements(&self) -> u64 {
        0
    }
    /// Commit; `committed` is called as soon as the database answers that
    /// it committed, before anything else (a checkpoint) that follows.
    fn commit_then(self: Box<Self>, committed: &dyn Fn()) -> Result<Committed>;
    fn commit(self: Box<Self>) -> Result<Committed> {
        self.commit_then(&|| {})
    }
}

/// Stock on hand and its ledger.
pub trait Stock {
    /// Stock on hand of these skus (all products when `None`), locked against
    /// other writers until the end of the transaction.
    fn stock(&mut self, skus: Option<&[String]>) -> Result<Vec<(String, i64)>>;
    /// Stock on hand of these skus as committed now, locking nothing (where
    /// a transaction holds the whole database, as `stock`).
    fn peek_stock(&mut self, skus: &[String]) -> Result<Vec<(String, i64)>> {
        self.stock(Some(skus))
    }
    /// Upsert products and set their stock; each change of stock gets a ledger entry.
    fn load_products(
        &mut self,
        products: &[Product],
        run_id: Option<i64>,
        source: &str,
        at: Timestamp,
    ) -> Result<()>;
    /// Add delivered units to the stock on hand as it is at commit, one
    /// ledger entry per line; returns each sku's new level. Unknown skus are
    /// an error naming them (nothing is changed).
    fn receive(
        &mut self,
        lines: &[(String, i64)],
        source: &str,
        at: Timestamp,
    ) -> Result<Vec<(String, i64)>>;
    /// Add each delta to its sku's stock, with one ledger entry per sku.
    fn move_stock(
        &mut self,
        deltas: &[(String, i64)],
        run_id: i64,
        reason: LedgerReason,
        at: Timestamp,
    ) -> Result<()>;
}

/// Order ids claimed for a run: the applied orders.
pub trait OrderClaims {
    /// Store these orders as applied where their id is new; for the others,
    /// what was applied before. Waits for a concurrent run that holds an id.
    fn claim(&mut self, run_id: i64, orders: &[NewOrder<'_>]) -> Result<Vec<Claim>>;
    /// Remove orders this transaction claimed but did not keep (short of stock).
    fn unclaim(&mut self, order_ids: &[&str]) -> Result<()>;
    /// What was applied under these ids, if anything.
    fn applied(&mut self, order_ids: &[&str]) -> Result<Vec<Option<Applied>>>;
    /// Which of these ids this run already reported (accepted, skipped or failed).
    fn seen_in_run(&mut self, run_id: i64, order_ids: &[&str]) -> Result<Vec<bool>>;
}

/// A run's skips and failures, and the older failures they settle.
pub trait FailureRecords: Queries {
    /// Skips, failures and the failures they resolve or supersede.
    fn record(&mut self, run_id: i64, writes: &Writes<'_>) -> Result<()>;
    /// Failures of these order ids that this run resolved go back to being
    /// superseded by it (the order failed for stock after all).
    fn unresolve(&mut self, order_ids: &[&str], run_id: i64) -> Result<()>;
    /// Mark failure records a reprocess retried (and did not resolve) as
    /// superseded by it.
    fn supersede_retried(&mut self, failure_ids: &[i64], run_id: i64) -> Result<()>;
    /// The stored failures with these keys (those that exist), held until the
    /// end of the transaction: a concurrent `failures close` waits for it,
    /// and a close that committed first is seen here. Where a transaction
    /// holds the whole database, a plain read.
    fn hold_failures(&mut self, keys: &[FailureKey]) -> Result<Vec<StoredFailure>> {
        self.failures_by_key(keys)
    }
    /// The open failures of the filter's run and codes, and of these order
    /// ids (any when empty), held as [`FailureRecords::hold_failures`] holds
    /// them, in key order.
    fn hold_open(
        &mut self,
        filter: &FailureFilter,
        order_ids: &[String],
    ) -> Result<Vec<StoredFailure>>;
    /// The newest failure of each of these order ids (a later run's record
    /// of an order is the one that superseded the earlier), final records
    /// (duplicates) left out.
    fn newest_failures(&mut self, order_ids: &[String]) -> Result<Vec<StoredFailure>>;
    /// Mark these failure records closed by hand, with who and why.
    fn close(&mut self, failure_ids: &[i64], reason: &str, by: &str, at: Timestamp) -> Result<()>;
}

/// An inbox claim, held by the transaction that commits its file's run.
pub trait InboxFence {
    /// Whether this worker still holds the claim (its token, and on
    /// PostgreSQL its lease); when it does, the claim is held to the end of
    /// this transaction, so that no worker takes it over before this one
    /// commits, and `run_id` (if any) is recorded on its attempt, with the
    /// run. A run's commit and the move of an inbox file are fenced by it.
    fn fence(&mut self, claim: &ClaimToken, run_id: Option<i64>) -> Result<bool>;
    /// End a claim held by [`InboxFence::fence`], its file moved out of the inbox.
    fn end_claim(&mut self, claim: &ClaimToken, end: ClaimEnd<'_>) -> Result<()>;
}
