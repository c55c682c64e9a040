//! Storage: the only part that knows SQL, rusqlite or postgres. The rest of
//! the program sees the [`Store`] and [`Tx`] traits, each made of
//! capabilities (`traits`; [`prelude`] names them all): batch calls (one
//! round trip serves a chunk of orders, never one order), a transaction as a
//! value, and backend-neutral errors. [`open`] picks the backend from `--db`: a
//! PostgreSQL URL is parsed into its parts (the connection is made from them,
//! and its shown name, without the password, derived from them), and a `--db`
//! that is neither such a URL nor a plain path is refused ([`check`] does the
//! same up front, before a command reads or creates anything).

mod claims;
mod closing;
#[cfg(test)]
pub(crate) mod memory;
mod postgres;
mod prune;
mod rows;
mod sqlite;
mod traits;

use std::time::Duration;

use crate::model::failure::{FailureKey, FailureState};
use crate::model::order::{AcceptedRow, FailedOrder, ValidOrder};
use crate::model::run::{RunRecord, RunStatus};
use crate::model::ErrorCode;

pub use claims::{
    AttemptOutcome, ClaimEnd, ClaimResult, ClaimState, ClaimToken, Claimant, Claimed, InboxFile,
    Lapsed, Release,
};
pub use closing::{CloseResult, CloseSelection, Closing};
pub use postgres::UrlError;
pub use prune::{carried_sums, Carried, Compacted, OldRun, PruneBatch, Pruned, Reclaimed};
pub(crate) use traits::ReadThrough;
pub use traits::{
    FailureRecords, Failures, History, InboxClaims, InboxFence, Integrity, Locking, OrderClaims,
    Pruning, Queries, Stock, Store, Tx,
};

/// Every capability of a store and a transaction, for a caller's one
/// `use crate::store::prelude::*`: `Failures::close_failures`, and the
/// methods of a concrete store or transaction (a test's), can be called
/// only where their trait is in scope.
pub mod prelude {
    pub use super::traits::{
        FailureRecords, Failures, History, InboxClaims, InboxFence, Integrity, Locking,
        OrderClaims, Pruning, Queries, Stock, Store, Tx,
    };
}

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

impl StoreError {
    /// Stock received for skus that no product has (nothing was changed).
    fn unknown_skus<S: AsRef<str>>(db: &str, skus: &[S]) -> StoreError {
        let skus: Vec<&str> = skus.iter().map(AsRef::as_ref).collect();
        StoreError::Other {
            db: db.to_string(),
            what: format!("unknown sku(s) {}: load them first", skus.join(", ")),
        }
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

/// Why stock changed, as the ledger records it (`stock_ledger.reason`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::EnumString, strum::VariantArray,
)]
#[strum(serialize_all = "snake_case")]
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
        self.into()
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
    /// This run's failures closed by hand, by who and why, in the order
    /// they were first closed.
    pub closed: Vec<ClosedBy>,
}

/// Failures of a run closed by hand by one person for one reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedBy {
    /// Who closed them (`user@host`).
    pub by: String,
    pub reason: String,
    /// How many.
    pub orders: i64,
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
/// A delay here is a value, not only a sleep: the inbox writes the time of a
/// file's next try into its claim row, for whichever worker takes it next.
/// `backon` retries a closure with its own sleeps and has no way to hand out
/// the delay itself, so these few lines stay.
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

#[cfg(test)]
mod ledger_tests {
    use super::LedgerReason;
    use strum::VariantArray;

    /// The names the schema's CHECK constraint allows, each read back.
    #[test]
    fn ledger_reasons_keep_their_stored_names() {
        let names: Vec<&str> = LedgerReason::VARIANTS.iter().map(|r| r.as_str()).collect();
        assert_eq!(names, ["load", "receive", "order", "reprocess", "carried"]);
        for r in LedgerReason::VARIANTS {
            assert_eq!(r.as_str().parse::<LedgerReason>(), Ok(*r));
        }
        assert!("Load".parse::<LedgerReason>().is_err());
    }
}
