//! Storage: the only part that knows SQL. `Store` is the interface the
//! pipeline uses; `sqlite` implements it (a PostgreSQL backend can follow).

mod sqlite;

use std::time::Duration;

use crate::model::order::{AcceptedRow, FailedOrder, Product, ValidOrder};

pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database {path} stayed locked by another run for {secs} s (--lock-timeout); nothing was done: try again later")]
    Locked { path: String, secs: f64 },
    #[error("cannot write the database {path}: {what}; nothing of this run was committed: make room and run the same command again")]
    Disk {
        path: String,
        what: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database {path}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database {path} has schema version {found}, newer than this orderbatch understands ({known}): use a newer orderbatch")]
    TooNew {
        path: String,
        found: i64,
        known: i64,
    },
    #[error("database {path}: stored record is damaged: {what}")]
    Damaged { path: String, what: String },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Final state of a run, as the run history records it.
#[derive(Debug, Clone, Default)]
pub struct RunRecord {
    pub id: i64,
    pub command: String,
    pub status: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub duration_ms: Option<i64>,
    pub orders: i64,
    pub accepted: i64,
    pub skipped: i64,
    pub failed: i64,
    pub lines: i64,
    pub units: i64,
    /// JSON object CODE -> count.
    pub errors_by_code: String,
    /// JSON array of run ids.
    pub retried_runs: String,
    pub report_format: String,
    pub summary: Option<String>,
    pub inputs: Vec<RunInput>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInput {
    pub path: String,
    pub format: String,
    pub sha256: String,
}

/// A run still marked running: its id, and the process and host it ran on.
pub type RunningRun = (i64, Option<i64>, Option<String>);

/// A failed order still waiting to be resolved, as `reprocess` retries it.
#[derive(Debug, Clone)]
pub struct OpenFailure {
    /// The failure record's own id.
    pub id: i64,
    pub run_id: i64,
    pub order: FailedOrder,
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
}

/// A stock ledger fault found by `verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerFault {
    pub sku: String,
    pub on_hand: Option<i64>,
    pub ledger_sum: i64,
}

/// What the pipeline needs from a database.
///
/// Writes happen between `begin` and `commit`/`rollback`, all in one
/// transaction; `begin` waits for other writers up to the lock timeout.
pub trait Store {
    fn begin(&mut self) -> Result<()>;
    fn commit(&mut self) -> Result<()>;
    fn rollback(&mut self) -> Result<()>;

    /// Record a run as started, in a transaction of its own, so that an
    /// interrupted run still shows in the history.
    fn start_run(
        &mut self,
        command: &str,
        started_at: &str,
        report_format: &str,
        pid: u32,
        host: &str,
    ) -> Result<i64>;
    /// Runs still marked running: (id, pid, host).
    fn running_runs(&mut self) -> Result<Vec<RunningRun>>;
    /// Mark runs whose process is gone as interrupted (in a transaction of its own).
    fn mark_interrupted(&mut self, ids: &[i64]) -> Result<()>;
    /// Complete a run's history row (inside the run's transaction).
    fn finish_run(&mut self, run: &RunRecord) -> Result<()>;
    /// Mark a run's outcome outside any transaction (dry run, aborted, failed).
    fn mark_run(&mut self, run: &RunRecord) -> Result<()>;

    fn products(&mut self) -> Result<Vec<Product>>;
    /// Upsert products and set their stock; each change of stock gets a ledger entry.
    fn load_products(
        &mut self,
        products: &[Product],
        run_id: Option<i64>,
        source: &str,
        at: &str,
    ) -> Result<()>;
    /// Add `delta` to each sku's stock, with one ledger entry per sku.
    fn move_stock(
        &mut self,
        deltas: &[(String, i64)],
        run_id: i64,
        reason: &str,
        at: &str,
    ) -> Result<()>;

    /// The content fingerprint of an applied order with this id, and the run that applied it.
    fn applied(&mut self, order_id: &str) -> Result<Option<([u8; 16], i64)>>;
    /// Store an applied order; false (and nothing written) when its id is already applied.
    fn insert_order(
        &mut self,
        run_id: i64,
        seq: u64,
        order: &ValidOrder,
        source_file: &str,
        source_line: u64,
    ) -> Result<bool>;
    /// Whether this run already reported `order_id` as skipped.
    fn skipped_in_run(&mut self, run_id: i64, order_id: &str) -> Result<bool>;
    fn insert_skip(&mut self, run_id: i64, seq: u64, row: &AcceptedRow<&str>) -> Result<()>;
    fn insert_failed(&mut self, run_id: i64, seq: u64, order: &FailedOrder) -> Result<()>;
    /// Order ids with an unresolved failure (the set is small: failures are rare).
    fn open_failure_ids(&mut self) -> Result<std::collections::HashSet<String>>;
    /// Mark the open failures of `order_id` as resolved by `run_id`.
    fn resolve_failures(&mut self, order_id: &str, run_id: i64) -> Result<()>;
    /// Mark open failure records as superseded by `run_id`: by order id (the
    /// order failed again) or by record id (a reprocess retried them).
    fn supersede_failures(
        &mut self,
        order_id: Option<&str>,
        ids: &[i64],
        run_id: i64,
    ) -> Result<()>;
    /// Unresolved failures, of one run or of all, oldest first.
    fn open_failures(&mut self, of_run: Option<i64>) -> Result<Vec<OpenFailure>>;

    /// A run's failed orders in input order.
    fn failed_of_run(
        &mut self,
        run_id: i64,
        each: &mut dyn FnMut(FailedOrder) -> Result<()>,
    ) -> Result<()>;
    /// A run's accepted and skipped orders in input order.
    fn accepted_of_run(
        &mut self,
        run_id: i64,
        each: &mut dyn FnMut(AcceptedRow) -> Result<()>,
    ) -> Result<()>;

    fn runs(&mut self) -> Result<Vec<RunRecord>>;
    /// What became of a run's failed orders, and which earlier failures it resolved.
    fn resolutions(&mut self, run_id: i64) -> Result<Resolutions>;
    fn run(&mut self, id: i64) -> Result<Option<RunRecord>>;

    /// Skus whose stock is negative or differs from the sum of their ledger.
    fn ledger_faults(&mut self) -> Result<Vec<LedgerFault>>;
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

#[cfg(test)]
mod tests {
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
}
