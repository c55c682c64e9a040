//! SQLite storage: WAL, one write transaction per run (BEGIN IMMEDIATE, so a
//! run holds the database from its start to its commit), busy waits with
//! backoff and jitter, the schema from `schema/sqlite/`.
//!
//! Migrations are the pairs in `MIGRATIONS`, applied above `user_version`
//! inside the same write lock and `--lock-timeout` wait as any write (two
//! commands that start at once migrate one after the other, and a database
//! held too long is exit 75). `rusqlite_migration` takes its own transaction
//! without that wait, and `refinery` adds a history table of its own to the
//! schema (`schema.sql` pins it), so neither replaces these lines.

mod claims;
mod open;
mod prune;
mod queries;
mod tx;

use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension};

use super::{
    Backoff, ClaimResult, ClaimToken, Claimant, Concurrency, Fault, History, InboxClaims,
    InboxFile, Integrity, Locking, OldRun, PruneBatch, Pruned, Pruning, Reclaimed, Release,
    Resolutions, Result, RunFilter, Store, StoreError, Tx,
};
use crate::model::clock::Timestamp;
use crate::model::run::{RunKind, RunRecord, RunStatus};
use crate::model::ReportFormat;

/// Version files by version, in order: a database at version N runs those
/// above N.
const MIGRATIONS: [(i64, &str); 5] = [
    (1, include_str!("../../../schema/sqlite/v1.sql")),
    (2, include_str!("../../../schema/sqlite/v2.sql")),
    (3, include_str!("../../../schema/sqlite/v3.sql")),
    (4, include_str!("../../../schema/sqlite/v4.sql")),
    (5, include_str!("../../../schema/sqlite/v5.sql")),
];
const SCHEMA_VERSION: i64 = 5;

/// `PRAGMA auto_vacuum` of a database whose freed pages are given back on
/// request (`PRAGMA incremental_vacuum`).
const INCREMENTAL: i64 = 2;

/// The runs this process started, by database: alive while it lives.
static STARTED: std::sync::Mutex<Vec<(String, i64)>> = std::sync::Mutex::new(Vec::new());

/// A run still marked running: its id, and the process and host it ran on.
type Running = (i64, Option<i64>, Option<String>);

pub struct SqliteStore {
    conn: Connection,
    path: String,
    backoff: Backoff,
    seed: u64,
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// A backend-neutral error from a SQLite one.
pub(super) fn store_err(db: &str, e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode as C;
    let db = db.to_string();
    match e.sqlite_error_code() {
        Some(C::DiskFull) => StoreError::Disk {
            db,
            what: "the disk is full".into(),
        },
        Some(C::SystemIoFailure) => StoreError::Disk {
            db,
            what: "a disk write failed (disk full, file too large, or a failing disk)".into(),
        },
        Some(C::DatabaseCorrupt | C::NotADatabase) => StoreError::Damaged {
            db,
            what: e.to_string(),
        },
        Some(C::ReadOnly) => StoreError::Unavailable {
            db,
            what: "it is read-only: give orderbatch write access to the file and its directory"
                .into(),
        },
        Some(C::CannotOpen) => StoreError::Unavailable {
            db,
            what: format!("{e}: check the path and its permissions"),
        },
        _ => StoreError::Other {
            db,
            what: e.to_string(),
        },
    }
}

impl SqliteStore {
    /// Open and migrate the database at `path`; a missing file is created
    /// when `create` says so, else it is [`StoreError::Missing`].
    pub fn open(path: &str, lock_timeout: Duration, create: bool) -> Result<SqliteStore> {
        let conn = open::connect(path, create)?;
        let mut s = SqliteStore {
            conn,
            path: path.to_string(),
            backoff: Backoff::new(lock_timeout),
            seed: super::seed(),
        };
        s.configure()?;
        s.migrate()?;
        Ok(s)
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        store_err(&self.path, e)
    }

    fn configure(&mut self) -> Result<()> {
        // Busy waits are ours (backoff with jitter), not SQLite's.
        self.conn
            .busy_timeout(Duration::ZERO)
            .map_err(|e| self.err(e))?;
        // Larger pages for a new database: fewer pages to write and index per
        // order (no effect on an existing database).
        self.conn
            .execute_batch("PRAGMA page_size=16384")
            .map_err(|e| self.err(e))?;
        self.retry(|c| {
            c.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))
                .map(|_| ())
        })?;
        // FULL: a committed run survives power loss, and costs one fsync per
        // run. Checkpoints are run after each commit, where a failure can be
        // reported (an automatic one fails silently).
        self.conn
            .execute_batch(
                "PRAGMA synchronous=FULL; PRAGMA cache_size=-16384; PRAGMA temp_store=MEMORY;
                 PRAGMA wal_autocheckpoint=0;",
            )
            .map_err(|e| self.err(e))
    }

    /// Run `f`, retrying while the database is busy, up to the lock timeout.
    fn retry<T>(&mut self, mut f: impl FnMut(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let start = Instant::now();
        let mut attempt = 0;
        loop {
            match f(&self.conn) {
                Ok(v) => return Ok(v),
                Err(e) if is_busy(&e) => {
                    let left = self.backoff.timeout.saturating_sub(start.elapsed());
                    if left.is_zero() {
                        return Err(StoreError::Locked {
                            db: self.path.clone(),
                            secs: self.backoff.timeout.as_secs_f64(),
                        });
                    }
                    std::thread::sleep(self.backoff.delay(attempt, &mut self.seed).min(left));
                    attempt += 1;
                }
                Err(e) => return Err(self.err(e)),
            }
        }
    }

    fn migrate(&mut self) -> Result<()> {
        let version =
            |c: &Connection| c.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0));
        let v = self.retry(version)?;
        if v == SCHEMA_VERSION {
            return Ok(());
        }
        if v > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                db: self.path.clone(),
                found: v,
                known: SCHEMA_VERSION,
            });
        }
        self.write(|c| {
            // Another process may have migrated while we waited for the lock.
            let now = version(c)?;
            for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > now) {
                c.execute_batch(sql)?;
                c.execute_batch(&format!("PRAGMA user_version = {version}"))?;
            }
            Ok(())
        })
    }

    /// Copy the WAL into the database file and empty it (waiting for
    /// writers up to the lock timeout).
    fn checkpoint_truncate(&mut self) -> Result<()> {
        self.retry(|c| {
            c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            })
        })
        .map(drop)
    }

    /// BEGIN IMMEDIATE, waiting for another writer up to the lock timeout.
    fn begin_immediate(&mut self) -> Result<()> {
        self.retry(|c| c.execute_batch("BEGIN IMMEDIATE"))
    }

    /// A short write of its own, committed when `f` succeeds.
    fn write<T>(&mut self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        self.begin_immediate()?;
        let tx = tx::SqliteTx::new(&self.conn, self.path.clone(), self.backoff.timeout);
        let v = f(&self.conn).map_err(|e| self.err(e))?;
        Box::new(tx).commit()?;
        Ok(v)
    }

    /// Whether a run left 'running' is still going: its process must be an
    /// orderbatch on this host. A run from another host cannot be told, and
    /// is taken for alive; so is everything where /proc is missing.
    fn alive(&self, id: i64, pid: Option<i64>, host: Option<&str>) -> bool {
        let here = super::host_name();
        if host != Some(here.as_str()) || !std::path::Path::new("/proc/self").exists() {
            return true;
        }
        let Some(pid) = pid else { return false };
        if pid == i64::from(std::process::id()) {
            // Ours if this process started it; else a reused pid: that run is gone.
            return STARTED
                .lock()
                .is_ok_and(|s| s.contains(&(self.path.clone(), id)));
        }
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|comm| comm.trim() == "orderbatch")
            .unwrap_or(false)
    }

    fn running(&self) -> Result<Vec<Running>> {
        queries::all(
            &self.conn,
            &self.path,
            "SELECT id, pid, host FROM runs WHERE status = 'running' ORDER BY id",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    }

    /// A running run whose process is gone reads as interrupted.
    fn with_liveness(&self, mut runs: Vec<(RunRecord, Option<i64>)>) -> Vec<RunRecord> {
        for (r, pid) in &mut runs {
            let id = r.summary.run_id;
            if r.summary.status == RunStatus::Running && !self.alive(id, *pid, Some(&r.host)) {
                r.summary.status = RunStatus::Interrupted;
            }
        }
        runs.into_iter().map(|(r, _)| r).collect()
    }
}

impl super::ReadThrough for SqliteStore {
    type Reader<'a> = queries::Reads<'a>;

    fn reader(&mut self) -> queries::Reads<'_> {
        queries::Reads {
            conn: &self.conn,
            db: &self.path,
        }
    }
}

impl Store for SqliteStore {
    fn name(&self) -> &str {
        &self.path
    }

    fn concurrency(&self) -> Concurrency {
        Concurrency::Serial
    }

    fn begin(&mut self) -> Result<Box<dyn Tx + '_>> {
        self.begin_immediate()?;
        Ok(Box::new(tx::SqliteTx::new(
            &self.conn,
            self.path.clone(),
            self.backoff.timeout,
        )))
    }
}

impl History for SqliteStore {
    fn start_run(
        &mut self,
        kind: RunKind,
        started_at: Timestamp,
        report_format: ReportFormat,
    ) -> Result<i64> {
        let started_at = started_at.to_rfc3339();
        let host = super::host_name();
        let id = self.write(|c| {
            c.execute(
                "INSERT INTO runs (command, status, started_at, report_format, pid, host) VALUES (?1, 'running', ?2, ?3, ?4, ?5)",
                params![kind.as_str(), started_at, report_format.as_str(), std::process::id(), host],
            )?;
            Ok(c.last_insert_rowid())
        })?;
        if let Ok(mut s) = STARTED.lock() {
            s.push((self.path.clone(), id));
        }
        Ok(id)
    }

    fn end_run(&mut self, record: &RunRecord) -> Result<()> {
        self.write(|c| queries::finish_run(c, record))
    }

    fn reap_interrupted(&mut self) -> Result<Vec<i64>> {
        let dead: Vec<i64> = self
            .running()?
            .into_iter()
            .filter(|(id, pid, host)| !self.alive(*id, *pid, host.as_deref()))
            .map(|(id, _, _)| id)
            .collect();
        if dead.is_empty() {
            return Ok(dead);
        }
        self.write(|c| {
            let mut st = c.prepare(
                "UPDATE runs SET status = 'interrupted' WHERE id = ?1 AND status = 'running'",
            )?;
            for id in &dead {
                st.execute([id])?;
            }
            Ok(())
        })?;
        Ok(dead)
    }

    fn read_runs(&mut self, id: Option<i64>, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        let runs = queries::runs(&self.conn, &self.path, id, filter)?;
        Ok(self.with_liveness(runs))
    }

    fn last_success(&mut self) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT max(finished_at) FROM runs WHERE status = 'completed'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map(Option::flatten)
            .map_err(|e| self.err(e))
    }

    fn resolutions(&mut self, run_id: i64) -> Result<Resolutions> {
        queries::resolutions(&self.conn, &self.path, run_id)
    }
}

impl Locking for SqliteStore {
    fn hold_catalog(&mut self, _exclusive: bool) -> Result<()> {
        // A run holds the whole database for its duration.
        Ok(())
    }
}

impl Integrity for SqliteStore {
    fn check(&mut self) -> Result<Vec<Fault>> {
        let lines = queries::all(&self.conn, &self.path, "PRAGMA integrity_check", [], |r| {
            r.get::<_, String>(0)
        });
        let mut faults: Vec<Fault> = match lines {
            Ok(lines) => lines
                .into_iter()
                .filter(|line| line != "ok")
                .map(Fault::Integrity)
                .collect(),
            // So damaged that the check itself cannot finish: that is its finding.
            Err(StoreError::Damaged { what, .. }) => vec![Fault::Integrity(what)],
            Err(e) => return Err(e),
        };
        if faults.is_empty() {
            faults.extend(queries::ledger_faults(&self.conn, &self.path)?);
        }
        Ok(faults)
    }
}

impl Pruning for SqliteStore {
    fn old_runs(&mut self, before: Timestamp) -> Result<Vec<OldRun>> {
        prune::old_runs(&self.conn, &self.path, before)
    }

    fn prune(&mut self, batch: &PruneBatch<'_>) -> Result<Pruned> {
        if !batch.dry {
            return self.write(|c| prune::apply(c, batch));
        }
        // One read transaction: the counts agree with each other.
        self.retry(|c| {
            c.execute_batch("BEGIN")?;
            let counted = prune::preview(c, batch);
            c.execute_batch("COMMIT")?;
            counted
        })
    }

    fn pruned_at(&mut self, id: i64) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT pruned_at FROM runs WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map(Option::flatten)
            .map_err(|e| self.err(e))
    }

    /// VACUUM, measured against `PRAGMA incremental_vacuum` on a year of
    /// nights (bench/prune.sh: 365 nights of 2,000 orders, all but the last
    /// 90 pruned; README, "Pruning"): VACUUM gave the file back down to
    /// 257 MB of 720 MB, where incremental_vacuum (on a database made with
    /// auto_vacuum=INCREMENTAL) left 407 MB — it only cuts whole free pages
    /// off the file, and pruning mostly thins pages (reduced orders, fewer
    /// failures per page) — and took 7.4 s and 30.7 s (two measurements,
    /// the machine shared) against VACUUM's 1.1 s both times. VACUUM
    /// holds the database for its whole length and needs room for a copy of
    /// what remains (its temporary copy on disk, not in memory, so that
    /// memory stays flat: 94 MB peak, 289 MB with the copy in memory; then
    /// the WAL); a nightly prune then VACUUMs a file
    /// of the size it keeps. A database made with auto_vacuum=INCREMENTAL
    /// by hand keeps its way: in short steps, runs getting in between.
    fn reclaim(&mut self) -> Result<Option<Reclaimed>> {
        // The pruned pages are free in the file once the WAL is copied into it.
        self.checkpoint_truncate()?;
        let before = prune::file_size(&self.path);
        let mode: i64 = self.retry(|c| c.query_row("PRAGMA auto_vacuum", [], |r| r.get(0)))?;
        let start = Instant::now();
        let how = if mode == INCREMENTAL {
            // In steps, each a short write of its own: runs that wait for
            // the database get in between.
            while self
                .retry(|c| c.query_row("PRAGMA freelist_count", [], |r| r.get::<_, i64>(0)))?
                > 0
            {
                self.retry(|c| c.execute_batch("PRAGMA incremental_vacuum(2048)"))?;
            }
            "incremental_vacuum"
        } else {
            // Its temporary copy of the database on disk (TMPDIR), not in
            // the memory temp_store=MEMORY gives other temporary tables.
            let vacuumed = self
                .retry(|c| c.execute_batch("PRAGMA temp_store=FILE"))
                .and_then(|()| self.retry(|c| c.execute_batch("VACUUM")));
            self.retry(|c| c.execute_batch("PRAGMA temp_store=MEMORY"))?;
            vacuumed?;
            "VACUUM"
        };
        self.checkpoint_truncate()?;
        Ok(Some(Reclaimed {
            before,
            after: prune::file_size(&self.path),
            how,
            secs: start.elapsed().as_secs_f64(),
        }))
    }
}

impl InboxClaims for SqliteStore {
    fn claim_file(&mut self, file: InboxFile<'_>, who: Claimant<'_>) -> Result<ClaimResult> {
        self.write(|c| claims::claim(c, file, who))
    }

    fn renew_claim(&mut self, claim: &ClaimToken, lease: Duration) -> Result<bool> {
        self.write(|c| claims::renew(c, claim, lease))
    }

    fn release_claim(&mut self, claim: &ClaimToken, release: Release<'_>) -> Result<bool> {
        self.write(|c| claims::release(c, claim, release))
    }

    fn processed_by(&mut self, sha256: &str) -> Result<Option<i64>> {
        claims::processed_by(&self.conn, sha256).map_err(|e| self.err(e))
    }
}

/// A WAL checkpoint after a commit (automatic ones are off: they fail
/// silently). A failure is only a warning: the run is safe in the WAL, but
/// later runs cannot proceed until there is room again.
fn checkpoint(conn: &Connection, path: &str) -> Option<String> {
    match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(0)) {
        Ok(_) => None,
        Err(e) => Some(format!(
            "the run is committed (it is safe in {path}-wal), but copying it into {path} failed ({}); \
             make room on the disk before the next run",
            store_err(path, e)
        )),
    }
}
