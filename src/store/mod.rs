//! Storage: the only part that knows SQL, rusqlite or postgres. The rest of
//! the program sees the [`Store`] and [`Tx`] traits: batch calls (one round
//! trip serves a chunk of orders, never one order), a transaction as a value,
//! and backend-neutral errors. [`open`] picks the backend from `--db`: a
//! PostgreSQL URL is parsed into its parts (the connection is made from them,
//! and its shown name, without the password, derived from them), and a `--db`
//! that is neither such a URL nor a plain path is refused ([`check`] does the
//! same up front, before a command reads or creates anything).

mod claims;
mod closing;
mod postgres;
mod prune;
mod rows;
mod sqlite;

use std::time::Duration;

use crate::model::failure::{FailureKey, FailureState};
use crate::model::order::{AcceptedRow, FailedOrder, Product, ValidOrder};
use crate::model::run::{RunKind, RunRecord, RunStatus};
use crate::model::{ErrorCode, Format};

pub use claims::{
    AttemptOutcome, ClaimEnd, ClaimResult, ClaimState, ClaimToken, Claimant, Claimed, InboxFile,
    Lapsed, Release,
};
pub use closing::{CloseResult, CloseSelection, Closing};
pub use postgres::UrlError;
pub use prune::{carried_sums, Compacted, OldRun, PruneBatch, Pruned, Reclaimed};

/// A database error, whatever the backend. Every message names the database
/// and says what to do (but one: a `--db` that cannot be read cannot be
/// named either, it may hold a password).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `--db` cannot be used as written; nothing was opened or created.
    /// (Its reason is part of the message, not a source of its own: a
    /// chain of causes would print it twice.)
    #[error("cannot use the database that --db (or ORDERBATCH_DB) gives: {0}")]
    BadUrl(UrlError),
    #[error("the database {db} stayed locked by another run for {secs} s (--lock-timeout); nothing was done: try again later")]
    Locked { db: String, secs: f64 },
    /// A deadlock or serialization failure between concurrent runs: the
    /// transaction was rolled back and may be tried again.
    #[error("the database {db} rolled the run back because of a conflict with another run ({what}); nothing was committed: run the same command again")]
    Contention { db: String, what: String },
    #[error("cannot write the database {db}: {what}; nothing of this run was committed: make room and run the same command again")]
    Disk { db: String, what: String },
    #[error("the database {db} is damaged: {what}; restore it from a backup (`orderbatch verify` lists what is wrong)")]
    Damaged { db: String, what: String },
    #[error("the database {db} has schema version {found}, newer than this orderbatch understands ({known}): use a newer orderbatch")]
    TooNew { db: String, found: i64, known: i64 },
    #[error("cannot open the database {db}: {what}")]
    Unavailable { db: String, what: String },
    /// A command that only reads was given a SQLite path where no file is:
    /// a typo, most likely; nothing was created.
    #[error("no database at {db}: check --db (commands that write create it)")]
    Missing { db: String },
    /// The connection broke while a command used it (the server stopped or
    /// restarted, the network failed): its open transaction was rolled back.
    #[error("the connection to the database {db} was lost ({what}): check that the server runs, then run the same command again (it finishes the work exactly once)")]
    Lost { db: String, what: String },
    #[error("database {db}: {what}")]
    Other { db: String, what: String },
}

pub type Result<T> = std::result::Result<T, StoreError>;

impl crate::exit::ExitStatus for StoreError {
    /// A `--db` that cannot be used is a usage error; a lock held past the
    /// timeout or a conflict is "try again later"; the rest is no opinion.
    fn exit_code(&self) -> Option<u8> {
        match self {
            StoreError::BadUrl(_) => Some(crate::exit::USAGE),
            StoreError::Locked { .. } | StoreError::Contention { .. } => Some(crate::exit::BUSY),
            _ => None,
        }
    }
}

impl From<UrlError> for StoreError {
    fn from(e: UrlError) -> Self {
        StoreError::BadUrl(e)
    }
}

/// The refusal to commit a rehearsal (a dry run's transaction): a bug, never
/// an operator's doing.
fn rehearsal_committed(db: &str) -> StoreError {
    StoreError::Other {
        db: db.to_string(),
        what: "internal error: a dry run's transaction was about to be committed; nothing was"
            .into(),
    }
}

/// How runs share a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// One writer at a time: a run holds the database from its start to its
    /// commit, and reads, checks and applies its orders as they stream in.
    Serial,
    /// Many writers: a run validates all of its input without holding a
    /// lock, then locks only the stock rows it needs while it applies.
    Shared,
}

/// Why stock changed, as the ledger records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerReason {
    Load,
    Receive,
    Order,
    Reprocess,
    /// The sum of entries `runs prune` compacted, one per sku.
    Carried,
}

impl LedgerReason {
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerReason::Load => "load",
            LedgerReason::Receive => "receive",
            LedgerReason::Order => "order",
            LedgerReason::Reprocess => "reprocess",
            LedgerReason::Carried => "carried",
        }
    }
}

/// What the history holds about an applied order's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Fingerprint of the applied content.
    pub content_hash: [u8; 16],
    /// The run that applied it.
    pub run_id: i64,
}

/// The result of claiming an order id: stored now, or applied before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    New,
    Taken(Applied),
}

/// An order to store as applied.
#[derive(Debug, Clone, Copy)]
pub struct NewOrder<'a> {
    pub order: &'a ValidOrder,
    /// Position in the run's input (1-based): reports keep input order.
    pub seq: u64,
    pub source_file: &'a str,
    pub source_line: u64,
}

/// A chunk's records besides its applied orders, written in one batch.
#[derive(Debug, Default)]
pub struct Writes<'a> {
    /// Orders reported as skipped, with their position in the run.
    pub skips: Vec<(u64, AcceptedRow<&'a str>)>,
    /// Failed orders, with their position in the run and the state they start in.
    pub failures: Vec<(u64, &'a FailedOrder, FailureState)>,
    /// Order ids accepted or skipped: their open failures are resolved.
    pub resolved: Vec<&'a str>,
    /// Failure records resolved by id (a fed-back row that named one).
    pub resolved_failures: Vec<i64>,
    /// Order ids that failed again: their older open failures are superseded.
    pub superseded: Vec<&'a str>,
}

impl Writes<'_> {
    pub fn is_empty(&self) -> bool {
        self.skips.is_empty()
            && self.failures.is_empty()
            && self.resolved.is_empty()
            && self.resolved_failures.is_empty()
            && self.superseded.is_empty()
    }
}

/// The order ids that had open failures of other runs when a transaction
/// first settled failures, as sorted hashes (8 bytes each): settling asks
/// the database only about ids that may have one, so a run whose orders
/// have no open failure elsewhere (a re-run, most nights) pays nothing per
/// order for it. A hash shared by two ids only costs a lookup.
#[derive(Debug, Default)]
pub(crate) struct OpenIds(Vec<u64>);

impl OpenIds {
    fn hash(id: &str) -> u64 {
        use std::hash::Hasher;
        let mut h = rustc_hash::FxHasher::default();
        h.write(id.as_bytes());
        h.finish()
    }

    pub(crate) fn push(&mut self, id: &str) {
        self.0.push(OpenIds::hash(id));
    }

    /// Done adding: sorted for lookups.
    pub(crate) fn sealed(mut self) -> Self {
        self.0.sort_unstable();
        self.0.dedup();
        self
    }

    /// These ids, but those that certainly have no open failure.
    pub(crate) fn filter<'a>(&self, ids: &[&'a str]) -> Vec<&'a str> {
        if self.0.is_empty() {
            return Vec::new();
        }
        ids.iter()
            .copied()
            .filter(|id| self.0.binary_search(&OpenIds::hash(id)).is_ok())
            .collect()
    }
}

/// A stored failed order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFailure {
    /// The record's own id in this database.
    pub id: i64,
    pub run_id: i64,
    /// The order's position in its run (with the run, the key reports show).
    pub seq: u64,
    pub state: FailureState,
    pub order: FailedOrder,
}

impl StoredFailure {
    pub fn key(&self) -> FailureKey {
        FailureKey {
            run: self.run_id,
            seq: self.seq,
        }
    }
}

/// Which open failures to read: of one run or of all, of these error codes
/// or of any (`reprocess --code`, `failures list --code`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailureFilter {
    pub run: Option<i64>,
    pub codes: Vec<ErrorCode>,
}

impl FailureFilter {
    /// The codes as stored, `None` for any.
    pub fn code_names(&self) -> Option<Vec<&'static str>> {
        (!self.codes.is_empty()).then(|| self.codes.iter().map(|c| c.as_str()).collect())
    }
}

/// The fate of failed orders, seen from one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolutions {
    /// This run's failures that are still open.
    pub open: i64,
    /// This run's failures resolved later: (resolving run, count).
    pub resolved_by: Vec<(i64, i64)>,
    /// This run's failures that failed again in a later run: (run, count).
    pub superseded_by: Vec<(i64, i64)>,
    /// Failures of earlier runs that this run resolved: (failed run, count).
    pub resolved_here: Vec<(i64, i64)>,
    /// This run's failures closed by hand: (who, why, count).
    pub closed: Vec<(String, String, i64)>,
}

/// Which runs of the history to read: of one status (as the history shows
/// it: a running run whose process is gone reads as interrupted), the
/// newest `limit` of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunFilter {
    pub status: Option<RunStatus>,
    pub limit: Option<usize>,
}

impl RunFilter {
    /// The stored statuses a run must have to be shown with `status`
    /// (`None`: any). A stored 'running' may read as interrupted, so both
    /// are read for either.
    pub fn stored(&self) -> Option<Vec<&'static str>> {
        self.status.map(|s| match s {
            RunStatus::Running | RunStatus::Interrupted => {
                vec![RunStatus::Running.as_str(), RunStatus::Interrupted.as_str()]
            }
            other => vec![other.as_str()],
        })
    }

    /// The limit the query itself may apply: none where liveness decides
    /// which rows are shown (they are cut after it, by [`RunFilter::keep`]).
    pub fn query_limit(&self) -> Option<i64> {
        match self.status {
            Some(RunStatus::Running | RunStatus::Interrupted) => None,
            _ => self.limit.map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
        }
    }

    /// The runs read, their liveness applied, as the filter shows them.
    pub fn keep(&self, mut runs: Vec<RunRecord>) -> Vec<RunRecord> {
        if let Some(s) = self.status {
            runs.retain(|r| r.summary.status == s);
        }
        if let Some(n) = self.limit {
            runs.truncate(n);
        }
        runs
    }
}

/// Something `verify` found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// A sku whose stock is negative or differs from the sum of its ledger
    /// (`on_hand` is `None` for ledger entries of a product that does not exist).
    Ledger {
        sku: String,
        on_hand: Option<i64>,
        ledger_sum: i64,
    },
    /// The database's own integrity check failed.
    Integrity(String),
}

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

/// `impl Queries for $ty`, each read handed to the backend's `queries`
/// module (as named where the macro is used) with the same leading
/// arguments: `delegate_queries!(Type, |this| (&this.conn, &this.path))`.
macro_rules! delegate_queries {
    ($ty:ty, |$this:ident| ($($lead:expr),+)) => {
        impl $crate::store::Queries for $ty {
            fn products(&mut self) -> $crate::store::Result<Vec<$crate::model::order::Product>> {
                let $this = self;
                queries::products($($lead),+)
            }

            fn failed_of_run(
                &mut self,
                run_id: i64,
                each: &mut dyn FnMut($crate::store::StoredFailure) -> $crate::store::Result<()>,
            ) -> $crate::store::Result<()> {
                let $this = self;
                queries::failed_of_run($($lead),+, run_id, each)
            }

            fn accepted_of_run(
                &mut self,
                run_id: i64,
                each: &mut dyn FnMut($crate::model::order::AcceptedRow) -> $crate::store::Result<()>,
            ) -> $crate::store::Result<()> {
                let $this = self;
                queries::accepted_of_run($($lead),+, run_id, each)
            }

            fn open_failures(
                &mut self,
                filter: &$crate::store::FailureFilter,
                after: Option<$crate::model::failure::FailureKey>,
                limit: usize,
            ) -> $crate::store::Result<Vec<$crate::store::StoredFailure>> {
                let $this = self;
                queries::open_failures($($lead),+, filter, after, limit)
            }

            fn failures_by_key(
                &mut self,
                keys: &[$crate::model::failure::FailureKey],
            ) -> $crate::store::Result<Vec<$crate::store::StoredFailure>> {
                let $this = self;
                queries::failures_by_key($($lead),+, keys, false)
            }

            fn catalog_version(&mut self) -> $crate::store::Result<i64> {
                let $this = self;
                queries::catalog_version($($lead),+)
            }
        }
    };
}
use delegate_queries;

/// A database.
pub trait Store: Queries + Send {
    /// The database as messages name it (a URL without its password).
    fn name(&self) -> &str;
    fn concurrency(&self) -> Concurrency;
    /// Start the one transaction a run (or a load) writes in; it waits for
    /// other writers up to the lock timeout. Dropped without `commit`, it
    /// rolls back.
    fn begin(&mut self) -> Result<Box<dyn Tx + '_>>;

    /// Record a run as started, in a transaction of its own (so that a run
    /// killed later still shows in the history), and mark it alive for as
    /// long as this store is open.
    fn start_run(&mut self, kind: RunKind, started_at: &str, report_format: Format) -> Result<i64>;
    /// Record the outcome of a run that committed nothing (dry run, aborted,
    /// failed).
    fn end_run(&mut self, record: &RunRecord) -> Result<()>;
    /// Mark the runs left running by a process that is gone as interrupted;
    /// returns their ids.
    fn reap_interrupted(&mut self) -> Result<Vec<i64>>;
    /// The history, newest first, as `filter` selects it; a running run
    /// whose process is gone shows as interrupted.
    fn runs(&mut self, filter: &RunFilter) -> Result<Vec<RunRecord>>;
    fn run(&mut self, id: i64) -> Result<Option<RunRecord>>;
    /// When a run last completed and committed (its finished_at), if ever.
    fn last_success(&mut self) -> Result<Option<String>>;
    /// What became of a run's failed orders, and which earlier ones it resolved.
    fn resolutions(&mut self, run_id: i64) -> Result<Resolutions>;
    /// Close open failures by hand (by key, by code, by order id), all or
    /// nothing (see [`CloseResult::plan`]), in one transaction that holds
    /// them: a run holding one (`Tx::hold_failures`) is waited for, and
    /// what it settled is seen.
    fn close_failures(
        &mut self,
        sel: &CloseSelection,
        reason: &str,
        by: &str,
        at: &str,
    ) -> Result<Closing> {
        closing::close_in(self.begin()?, sel, reason, by, at)
    }
    /// Hold the catalog (prices, currencies, products) steady for a run that
    /// validates before it locks (shared), or take it alone to change it
    /// (exclusive); released when the store is dropped. No-op where a run
    /// holds the whole database anyway.
    fn hold_catalog(&mut self, exclusive: bool) -> Result<()>;
    /// The database's own integrity check and the stock ledger.
    fn check(&mut self) -> Result<Vec<Fault>>;

    /// The runs `runs prune --before` may forget (see [`OldRun`]), oldest
    /// first; never one still running.
    fn old_runs(&mut self, before: &str) -> Result<Vec<OldRun>>;
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
    // The inbox's claims (see `claims`), each in a short transaction of its own.

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

/// A transaction. Dropping it without [`Tx::commit`] rolls it back.
pub trait Tx: Queries {
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
        at: &str,
    ) -> Result<()>;
    /// Add delivered units to the stock on hand as it is at commit, one
    /// ledger entry per line; returns each sku's new level. Unknown skus are
    /// an error naming them (nothing is changed).
    fn receive(
        &mut self,
        lines: &[(String, i64)],
        source: &str,
        at: &str,
    ) -> Result<Vec<(String, i64)>>;
    /// The stored failures with these keys (those that exist), held until the
    /// end of the transaction: a concurrent `failures close` waits for it,
    /// and a close that committed first is seen here. Where a transaction
    /// holds the whole database, a plain read.
    fn hold_failures(&mut self, keys: &[FailureKey]) -> Result<Vec<StoredFailure>> {
        self.failures_by_key(keys)
    }
    /// The open failures of the filter's run and codes, and of these order
    /// ids (any when empty), held as [`Tx::hold_failures`] holds them, in
    /// key order.
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
    fn close(&mut self, failure_ids: &[i64], reason: &str, by: &str, at: &str) -> Result<()>;
    /// Store these orders as applied where their id is new; for the others,
    /// what was applied before. Waits for a concurrent run that holds an id.
    fn claim(&mut self, run_id: i64, orders: &[NewOrder<'_>]) -> Result<Vec<Claim>>;
    /// Remove orders this transaction claimed but did not keep (short of stock).
    fn unclaim(&mut self, order_ids: &[&str]) -> Result<()>;
    /// Failures of these order ids that this run resolved go back to being
    /// superseded by it (the order failed for stock after all).
    fn unresolve(&mut self, order_ids: &[&str], run_id: i64) -> Result<()>;
    /// What was applied under these ids, if anything.
    fn applied(&mut self, order_ids: &[&str]) -> Result<Vec<Option<Applied>>>;
    /// Which of these ids this run already reported (accepted, skipped or failed).
    fn seen_in_run(&mut self, run_id: i64, order_ids: &[&str]) -> Result<Vec<bool>>;
    /// Skips, failures and the failures they resolve or supersede.
    fn record(&mut self, run_id: i64, writes: &Writes<'_>) -> Result<()>;
    /// Add each delta to its sku's stock, with one ledger entry per sku.
    fn move_stock(
        &mut self,
        deltas: &[(String, i64)],
        run_id: i64,
        reason: LedgerReason,
        at: &str,
    ) -> Result<()>;
    /// Mark failure records a reprocess retried (and did not resolve) as
    /// superseded by it.
    fn supersede_retried(&mut self, failure_ids: &[i64], run_id: i64) -> Result<()>;
    /// Complete the run's history row, inside its transaction.
    fn finish_run(&mut self, record: &RunRecord) -> Result<()>;
    /// Declare that this transaction will be rolled back (a dry run): the
    /// orders it claims need not be stored, only remembered so that
    /// `seen_in_run` still finds them; every decision stays the one a run
    /// would make. Committing it afterwards is refused.
    fn rehearse(&mut self) -> Result<()>;
    /// Whether this worker still holds the claim (its token, and on
    /// PostgreSQL its lease); when it does, the claim is held to the end of
    /// this transaction, so that no worker takes it over before this one
    /// commits, and `run_id` (if any) is recorded on its attempt, with the
    /// run. A run's commit and the move of an inbox file are fenced by it.
    fn fence(&mut self, claim: &ClaimToken, run_id: Option<i64>) -> Result<bool>;
    /// End a claim held by [`Tx::fence`], its file moved out of the inbox.
    fn end_claim(&mut self, claim: &ClaimToken, end: ClaimEnd<'_>) -> Result<()>;
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

/// A commit that succeeded, with what the operator should still know.
#[derive(Debug, Default)]
pub struct Committed {
    /// Something that went wrong after the commit (it stands regardless).
    pub warning: Option<String>,
}

/// What `--db` names, read.
enum Location {
    Sqlite(String),
    Postgres(postgres::PgUrl),
}

impl Location {
    fn of(db: &str) -> Result<Location> {
        if postgres::is_url(db) {
            return Ok(Location::Postgres(postgres::PgUrl::parse(db)?));
        }
        postgres::refuse_lookalikes(db)?;
        Ok(Location::Sqlite(db.to_string()))
    }
}

/// Whether `db` can be opened as written (a PostgreSQL URL that reads one
/// way only, or a path); checked before a command does anything else.
pub fn check(db: &str) -> Result<()> {
    Location::of(db).map(drop)
}

/// Open the database `db` names: a PostgreSQL URL (`postgres://`,
/// `postgresql://`) or a SQLite file path; created and migrated when new.
pub fn open(db: &str, lock_timeout: Duration) -> Result<Box<dyn Store>> {
    match Location::of(db)? {
        Location::Postgres(url) => postgres::open(&url, lock_timeout),
        Location::Sqlite(path) => Ok(Box::new(sqlite::SqliteStore::open(
            &path,
            lock_timeout,
            true,
        )?)),
    }
}

/// Open the database `db` names for a command that only reads: as
/// [`open`] (an older schema is migrated), but a SQLite file that does not
/// exist is [`StoreError::Missing`] and is not created — an empty history
/// from a mistyped `--db` would read as "nothing happened". (A PostgreSQL
/// database is never created by orderbatch.)
pub fn open_existing(db: &str, lock_timeout: Duration) -> Result<Box<dyn Store>> {
    match Location::of(db)? {
        Location::Postgres(url) => postgres::open(&url, lock_timeout),
        Location::Sqlite(path) => Ok(Box::new(sqlite::SqliteStore::open(
            &path,
            lock_timeout,
            false,
        )?)),
    }
}

/// The database as messages may show it: a URL without its password; for
/// a `--db` that cannot be read, a word that says so and shows nothing of it.
pub fn display_name(db: &str) -> String {
    match Location::of(db) {
        Ok(Location::Sqlite(path)) => path,
        Ok(Location::Postgres(url)) => url.shown(),
        Err(_) => "(--db, not shown: it cannot be read)".into(),
    }
}

/// Retry policy for a busy database: exponential backoff with full jitter.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub timeout: Duration,
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    pub fn new(timeout: Duration) -> Self {
        Backoff {
            timeout,
            base: Duration::from_millis(10),
            cap: Duration::from_secs(2),
        }
    }

    /// Sleep before attempt `n` (0-based): uniform in [0, min(cap, base * 2^n)].
    pub fn delay(&self, n: u32, rand: &mut u64) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32.checked_shl(n.min(20)).unwrap_or(u32::MAX))
            .min(self.cap);
        // xorshift64*: jitter needs no cryptographic randomness.
        *rand ^= *rand >> 12;
        *rand ^= *rand << 25;
        *rand ^= *rand >> 27;
        let r = rand.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let nanos = ceiling.as_nanos() as u64;
        Duration::from_nanos(if nanos == 0 { 0 } else { r % (nanos + 1) })
    }
}

/// A jitter seed that differs between processes started at the same moment.
pub fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        ^ (u64::from(std::process::id()) << 32)
        | 1
}

// The machine's name, as the history records where a run ran.
pub use crate::identity::host_name;

#[cfg(test)]
mod backoff_tests {
    use super::*;

    #[test]
    fn backoff_delays_stay_within_the_growing_ceiling() {
        let b = Backoff::new(Duration::from_secs(60));
        let mut seed = 0x1234_5678_9abc_def1;
        for n in 0..30 {
            let ceiling = (b.base * 2u32.pow(n.min(20))).min(b.cap);
            for _ in 0..50 {
                assert!(b.delay(n, &mut seed) <= ceiling);
            }
        }
        let spread: std::collections::HashSet<_> = (0..20).map(|_| b.delay(5, &mut seed)).collect();
        assert!(spread.len() > 10, "jitter gives different delays");
    }

    #[test]
    fn a_url_loses_its_password_in_messages() {
        assert_eq!(
            display_name("postgres://shop:s3cret@db.example:5432/orders?sslmode=require"),
            "postgres://shop@db.example:5432/orders?sslmode=require"
        );
        assert_eq!(display_name("orders.db"), "orders.db");
        let unreadable = display_name("postgresql://shop:pa/ss@db/orders");
        assert!(!unreadable.contains("pa/ss"), "{unreadable}");
        assert!(matches!(
            check("host=/tmp password=s3cret dbname=orders"),
            Err(StoreError::BadUrl(UrlError::KeywordValue))
        ));
        assert!(check("./host=x.db").is_ok());
    }
}
