//! PostgreSQL storage: many ingest hosts, one stock. A run validates without
//! locks; its transaction locks only the stock rows it needs (in sku order),
//! claims its order ids (waiting for a concurrent run that holds one), and
//! writes set-based: binary COPY and `unnest` arrays, one round trip per
//! chunk and statement, never one per order. A run is alive while its
//! session holds an advisory lock on its id: any host can tell a running run
//! from one whose process or host died (the server then rolled it back).

mod claims;
mod connect;
mod prune;
mod queries;
mod tx;
mod url;

use std::time::Duration;

use postgres::error::SqlState;
use postgres::{Client, GenericClient};

pub use url::{is_url, refuse_lookalikes, PgUrl, UrlError};

use super::{
    Backoff, ClaimResult, ClaimToken, Claimant, Concurrency, Fault, History, InboxClaims,
    InboxFile, Integrity, Locking, OldRun, PruneBatch, Pruned, Pruning, Reclaimed, Release,
    Resolutions, Result, RunFilter, Store, StoreError, Tx,
};
use crate::model::clock::Timestamp;
use crate::model::run::{RunKind, RunRecord, RunStatus};
use crate::model::ReportFormat;

/// Version files by version; a new database starts at version 2 (the
/// version SQLite databases reached when PostgreSQL support began).
const MIGRATIONS: [(i32, &str); 4] = [
    (2, include_str!("../../../schema/postgres/v2.sql")),
    (3, include_str!("../../../schema/postgres/v3.sql")),
    (4, include_str!("../../../schema/postgres/v4.sql")),
    (5, include_str!("../../../schema/postgres/v5.sql")),
];
const SCHEMA_VERSION: i32 = 5;

/// Advisory lock keys: a run's own (high half of the key, the run id in the
/// low half), the catalog's, and the migration's.
const RUN_LOCKS: i64 = 0x6f62_7275;
const CATALOG_LOCK: i64 = 0x6f62_6361_7400_0001;
const MIGRATE_LOCK: i64 = 0x6f62_6361_7400_0002;

/// What every error message needs: the database's name (no password) and the lock timeout.
#[derive(Debug, Clone)]
pub(super) struct Db {
    pub name: String,
    pub lock_timeout: Duration,
}

impl Db {
    /// A backend-neutral error from a PostgreSQL one.
    pub(super) fn err(&self, e: postgres::Error) -> StoreError {
        let db = self.name.clone();
        let Some(d) = e.as_db_error() else {
            // Not the server's answer: the connection itself failed.
            let what = match std::error::Error::source(&e) {
                Some(src) => format!("{e}: {src}"),
                None => e.to_string(),
            };
            return StoreError::Lost { db, what };
        };
        let what = format!("{} (SQLSTATE {})", d.message(), d.code().code());
        let code = d.code();
        // Class 57P (the server shuts down, an operator ended the session)
        // and class 08 (connection exceptions): the session is gone.
        if code.code().starts_with("57P") || code.code().starts_with("08") {
            return StoreError::Lost { db, what };
        }
        if *code == SqlState::T_R_DEADLOCK_DETECTED || *code == SqlState::T_R_SERIALIZATION_FAILURE
        {
            StoreError::Contention { db, what }
        } else if *code == SqlState::LOCK_NOT_AVAILABLE {
            StoreError::Locked {
                db,
                secs: self.lock_timeout.as_secs_f64(),
            }
        } else if *code == SqlState::DISK_FULL || *code == SqlState::OUT_OF_MEMORY {
            StoreError::Disk { db, what }
        } else if *code == SqlState::DATA_CORRUPTED || *code == SqlState::INDEX_CORRUPTED {
            StoreError::Damaged { db, what }
        } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
            StoreError::Other {
                db,
                what: format!(
                    "{what}: the role needs the grants the README's PostgreSQL set-up gives"
                ),
            }
        } else {
            StoreError::Other { db, what }
        }
    }
}

pub struct PgStore {
    client: Client,
    db: Db,
    /// Runs whose liveness lock this session holds.
    holding: Vec<i64>,
}

pub fn open(url: &PgUrl, lock_timeout: Duration) -> Result<Box<dyn Store>> {
    Ok(Box::new(PgStore::open(url, lock_timeout)?))
}

impl PgStore {
    pub fn open(url: &PgUrl, lock_timeout: Duration) -> Result<PgStore> {
        let db = Db {
            name: url.shown(),
            lock_timeout,
        };
        let client = connect::connect(url, &db.name)?;
        let mut s = PgStore {
            client,
            db,
            holding: Vec::new(),
        };
        let ms = lock_timeout.as_millis().max(1);
        s.client
            .batch_execute(&format!("SET lock_timeout = '{ms}ms'"))
            .map_err(|e| s.db.err(e))?;
        s.migrate()?;
        Ok(s)
    }

    fn migrate(&mut self) -> Result<()> {
        let db = self.db.clone();
        let v = schema_version(&mut self.client).map_err(|e| db.err(e))?;
        if v == SCHEMA_VERSION {
            return Ok(());
        }
        if v > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                db: db.name,
                found: i64::from(v),
                known: i64::from(SCHEMA_VERSION),
            });
        }
        let mut tx = self.client.transaction().map_err(|e| db.err(e))?;
        // Hosts that start at once migrate one after the other.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])
            .map_err(|e| db.err(e))?;
        let now = schema_version(&mut tx).map_err(|e| db.err(e))?;
        for (version, sql) in MIGRATIONS.iter().filter(|(n, _)| *n > now) {
            tx.batch_execute(sql).map_err(|e| db.err(e))?;
            tx.execute("DELETE FROM schema_version", &[])
                .map_err(|e| db.err(e))?;
            tx.execute(
                "INSERT INTO schema_version (version) VALUES ($1)",
                &[version],
            )
            .map_err(|e| db.err(e))?;
        }
        tx.commit().map_err(|e| db.err(e))
    }

    /// The ids of runs whose session still holds its liveness lock, on any host.
    fn live_runs(&mut self) -> Result<std::collections::HashSet<i64>> {
        let rows = self
            .client
            .query(
                "SELECT objid::bigint FROM pg_locks
                 WHERE locktype = 'advisory' AND granted AND objsubid = 1
                   AND classid = $1::bigint::oid
                   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                &[&RUN_LOCKS],
            )
            .map_err(|e| self.db.err(e))?;
        Ok(rows.iter().map(|r| r.get::<_, i64>(0)).collect())
    }

    fn with_liveness(&mut self, mut runs: Vec<RunRecord>) -> Result<Vec<RunRecord>> {
        if runs.iter().any(|r| r.summary.status == RunStatus::Running) {
            let live = self.live_runs()?;
            for r in &mut runs {
                if r.summary.status == RunStatus::Running && !live.contains(&r.summary.run_id) {
                    r.summary.status = RunStatus::Interrupted;
                }
            }
        }
        Ok(runs)
    }
}

impl super::ReadThrough for PgStore {
    type Reader<'a> = queries::Reads<'a, Client>;

    fn reader(&mut self) -> queries::Reads<'_, Client> {
        queries::Reads {
            client: &mut self.client,
            db: &self.db,
        }
    }
}

impl Store for PgStore {
    fn name(&self) -> &str {
        &self.db.name
    }

    fn concurrency(&self) -> Concurrency {
        Concurrency::Shared
    }

    fn begin(&mut self) -> Result<Box<dyn Tx + '_>> {
        let db = self.db.clone();
        let tx = self.client.transaction().map_err(|e| db.err(e))?;
        Ok(Box::new(tx::PgTx::new(tx, db)))
    }
}

impl History for PgStore {
    fn start_run(
        &mut self,
        kind: RunKind,
        started_at: Timestamp,
        report_format: ReportFormat,
    ) -> Result<i64> {
        let started_at = started_at.to_rfc3339();
        let db = self.db.clone();
        let id: i64 = self
            .client
            .query_one("SELECT nextval('runs_id_seq')", &[])
            .map_err(|e| db.err(e))?
            .get(0);
        // The lock first: a row without its lock reads as a dead run.
        self.client
            .execute(
                "SELECT pg_advisory_lock(($1::bigint << 32) | $2::bigint)",
                &[&RUN_LOCKS, &id],
            )
            .map_err(|e| db.err(e))?;
        self.holding.push(id);
        self.client
            .execute(
                "INSERT INTO runs (id, command, status, started_at, report_format, pid, host)
                 VALUES ($1, $2, 'running', $3, $4, $5, $6)",
                &[
                    &id,
                    &kind.as_str(),
                    &started_at,
                    &report_format.as_str(),
                    &i64::from(std::process::id()),
                    &super::host_name(),
                ],
            )
            .map_err(|e| db.err(e))?;
        Ok(id)
    }

    fn end_run(&mut self, record: &RunRecord) -> Result<()> {
        let db = self.db.clone();
        let mut tx = self.client.transaction().map_err(|e| db.err(e))?;
        queries::finish_run(&mut tx, &db, record)?;
        tx.commit().map_err(|e| db.err(e))
    }

    fn reap_interrupted(&mut self) -> Result<Vec<i64>> {
        // Row by row, in the same statement: a run's lock is taken before its
        // row is written, so a row whose lock can be had is a dead run's (a
        // separate look at pg_locks first would miss a run starting meanwhile).
        let db = self.db.clone();
        let rows = self
            .client
            .query(
                "WITH candidates AS MATERIALIZED (
                     SELECT id FROM runs WHERE status = 'running' AND NOT (id = ANY($2))),
                 dead AS MATERIALIZED (
                     SELECT id FROM candidates WHERE pg_try_advisory_lock(($1::bigint << 32) | id))
                 UPDATE runs SET status = 'interrupted' FROM dead
                 WHERE runs.id = dead.id RETURNING runs.id",
                &[&RUN_LOCKS, &self.holding],
            )
            .map_err(|e| db.err(e))?;
        let dead: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        for id in &dead {
            self.client
                .execute(
                    "SELECT pg_advisory_unlock(($1::bigint << 32) | $2::bigint)",
                    &[&RUN_LOCKS, id],
                )
                .map_err(|e| db.err(e))?;
        }
        Ok(dead)
    }

    fn read_runs(&mut self, id: Option<i64>, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        let runs = queries::runs(&mut self.client, &self.db, id, filter)?;
        self.with_liveness(runs)
    }

    fn last_success(&mut self) -> Result<Option<String>> {
        let row = self
            .client
            .query_one(
                "SELECT max(finished_at) FROM runs WHERE status = 'completed'",
                &[],
            )
            .map_err(|e| self.db.err(e))?;
        Ok(row.get(0))
    }

    fn resolutions(&mut self, run_id: i64) -> Result<Resolutions> {
        queries::resolutions(&mut self.client, &self.db, run_id)
    }
}

impl Locking for PgStore {
    fn hold_catalog(&mut self, exclusive: bool) -> Result<()> {
        let sql = if exclusive {
            "SELECT pg_advisory_lock($1)"
        } else {
            "SELECT pg_advisory_lock_shared($1)"
        };
        // Waits up to lock_timeout for runs (or a catalog load) holding it.
        self.client
            .execute(sql, &[&CATALOG_LOCK])
            .map_err(|e| self.db.err(e))?;
        Ok(())
    }
}

impl Integrity for PgStore {
    fn check(&mut self) -> Result<Vec<Fault>> {
        let mut faults = queries::integrity(&mut self.client, &self.db)?;
        faults.extend(queries::ledger_faults(&mut self.client, &self.db)?);
        Ok(faults)
    }
}

impl Pruning for PgStore {
    fn old_runs(&mut self, before: Timestamp) -> Result<Vec<OldRun>> {
        prune::old_runs(&mut self.client, &self.db, before)
    }

    fn prune(&mut self, batch: &PruneBatch<'_>) -> Result<Pruned> {
        // A deadlock with another transaction rolled the batch back: again,
        // with the runs' backoff, until the lock timeout.
        let backoff = Backoff::new(self.db.lock_timeout);
        let deadline = std::time::Instant::now() + self.db.lock_timeout;
        let mut seed = super::seed();
        let mut attempt = 0;
        loop {
            match prune::batch(&mut self.client, &self.db, batch) {
                Err(StoreError::Contention { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(backoff.delay(attempt, &mut seed));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn pruned_at(&mut self, id: i64) -> Result<Option<String>> {
        prune::pruned_at(&mut self.client, &self.db, id)
    }

    fn reclaim(&mut self) -> Result<Option<Reclaimed>> {
        // The server's autovacuum makes the space of deleted rows reusable.
        Ok(None)
    }
}

impl InboxClaims for PgStore {
    fn claim_file(&mut self, file: InboxFile<'_>, who: Claimant<'_>) -> Result<ClaimResult> {
        claims::claim(&mut self.client, file, who).map_err(|e| self.db.err(e))
    }

    fn renew_claim(&mut self, claim: &ClaimToken, lease: Duration) -> Result<bool> {
        claims::renew(&mut self.client, claim, lease).map_err(|e| self.db.err(e))
    }

    fn release_claim(&mut self, claim: &ClaimToken, release: Release<'_>) -> Result<bool> {
        claims::release(&mut self.client, claim, release).map_err(|e| self.db.err(e))
    }

    fn processed_by(&mut self, sha256: &str) -> Result<Option<i64>> {
        claims::processed_by(&mut self.client, sha256).map_err(|e| self.db.err(e))
    }
}

/// The schema version of the database (0 for a new one).
fn schema_version(c: &mut impl GenericClient) -> std::result::Result<i32, postgres::Error> {
    let exists: Option<String> = c
        .query_one("SELECT to_regclass('schema_version')::text", &[])?
        .get(0);
    if exists.is_none() {
        return Ok(0);
    }
    let v: Option<i32> = c
        .query_one("SELECT max(version) FROM schema_version", &[])?
        .get(0);
    Ok(v.unwrap_or(0))
}
