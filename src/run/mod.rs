//! One run of `process` or `reprocess`, as typed stages passing values:
//! `Prepared` (inputs opened and checked, nothing touched) → `Started` (a
//! history row and a partial report directory) → `Decided` (every order
//! decided, and the transaction committed, rehearsed or aborted) →
//! published (reports in place, the summary out, the metrics file).
//!
//! Where one writer holds the database at a time (SQLite, `serial`), the
//! run begins its transaction first and applies the orders as they stream in
//! from the reading and checking threads. Where many writers share it
//! (PostgreSQL, `shared`), the run reads and checks all of its input first,
//! holding nothing, spools the checked orders, then claims, records and
//! reports them in its transaction, and only at the end locks the stock rows
//! it needs, settles stock and commits: its stock locks are held for work in
//! proportion to its skus, not its orders. Either way the same applier
//! decides every order.

mod decide;
mod fence;
mod finish;
mod inputs;
mod options;
mod serial;
mod shared;
mod spool;
mod stages;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};

use crate::config::Config;
use crate::exit::{Exit, UsageError};
use crate::model::failure::{FailureKey, FailureState};
use crate::model::order::Product;
use crate::model::run::{RunKind, RunRecord, RunStatus, Timings};
use crate::read::catalog::read_catalog;
use crate::report::ReportDir;
use crate::store::{self, Concurrency, Store};
use inputs::{InputMeta, Opened};

pub use fence::{CatalogCache, Fence, Stopped};
pub use options::RunOptions;

/// The exit code of a fatal error of a run or a command: each error type
/// says its own (`exit::ExitStatus`), in the order of the chain; a report too
/// large for xlsx travels inside an I/O error, so it is looked for there.
pub fn exit_code_of(e: &anyhow::Error) -> u8 {
    use crate::exit::{code_of, says, USAGE};
    if crate::report::TooLarge::in_chain(e).is_some() {
        return USAGE;
    }
    code_of(
        e,
        &[
            says::<UsageError>,
            says::<store::StoreError>,
            says::<crate::read::InputError>,
            says::<crate::read::catalog::CatalogError>,
        ],
    )
}

/// Where a run's orders come from.
enum Plan {
    Files(Vec<String>),
    Retry(store::FailureFilter),
}

pub fn process(cfg: &Config, opts: &RunOptions) -> Result<Exit> {
    Run::new(cfg, opts, RunKind::Process).execute(Plan::Files(opts.files.clone()))
}

pub fn reprocess(cfg: &Config, opts: &RunOptions, retry: store::FailureFilter) -> Result<Exit> {
    Run::new(cfg, opts, RunKind::Reprocess).execute(Plan::Retry(retry))
}

/// What a run is asked to do, for its whole life (nothing here changes).
struct Run<'a> {
    cfg: &'a Config,
    opts: &'a RunOptions,
    kind: RunKind,
    started_at: crate::model::clock::Timestamp,
    clock: Instant,
    /// The progress line; on screen until the summary line replaces it.
    progress: crate::progress::Progress,
}

/// Stage 1: everything about the inputs checked before the database is touched.
struct Prepared {
    inputs: Vec<Opened>,
    catalog: Option<(String, Vec<Product>)>,
}

/// Stage 2: the run is in the history and has its partial report directory.
struct Started {
    run_id: i64,
    reports: ReportDir,
    /// The inputs, for the summary's digests and the progress line.
    inputs: Vec<InputMeta>,
}

/// The runs whose failures a reprocess retried, as its reading thread finds them.
type RetriedRuns = Arc<Mutex<BTreeSet<i64>>>;

/// How the run's transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Committed,
    DryRun,
    Aborted,
}

/// Stage 3: a run that ran to its end (committed or not).
struct Decided {
    ending: Ending,
    record: RunRecord,
    timings: Timings,
    /// Something that went wrong after the commit, which stands regardless.
    warning: Option<String>,
    /// Retried failures that were no longer open when the run held them.
    withdrawn: Vec<(FailureKey, FailureState)>,
    /// The reports are complete in the partial directory (a committed run
    /// whose reports could not be written leaves them to the next run).
    reports_ready: bool,
    /// Where the run locked its stock late: the statements it sent while it
    /// held the stock, its commit included.
    locked_statements: Option<u64>,
}

impl Decided {
    /// A run stopped by --max-errors: nothing committed, no reports.
    fn aborted(record: RunRecord, timings: Timings) -> Decided {
        Decided {
            ending: Ending::Aborted,
            record,
            timings,
            warning: None,
            withdrawn: Vec::new(),
            reports_ready: false,
            locked_statements: None,
        }
    }
}

impl<'a> Run<'a> {
    /// The ledger's word for the stock this run's orders take.
    fn ledger_reason(&self) -> crate::store::LedgerReason {
        match self.kind {
            RunKind::Process => crate::store::LedgerReason::Order,
            RunKind::Reprocess => crate::store::LedgerReason::Reprocess,
        }
    }

    /// Commit, telling the signal handling when the commit starts and ends
    /// (a signal in between is answered after the reports are in place).
    fn commit(tx: Box<dyn crate::store::Tx + '_>) -> Result<crate::store::Committed> {
        crate::interrupt::committing();
        Ok(tx
            .commit_then(&crate::interrupt::committed)
            .inspect_err(|_| crate::interrupt::commit_failed())?)
    }

    fn new(cfg: &'a Config, opts: &'a RunOptions, kind: RunKind) -> Self {
        Run {
            cfg,
            opts,
            kind,
            started_at: crate::model::clock::Timestamp::now(),
            clock: Instant::now(),
            progress: crate::progress::Progress::new(false, None, ""),
        }
    }

    /// The run from start to end; the metrics file is written whatever the outcome.
    fn execute(mut self, plan: Plan) -> Result<Exit> {
        let mut started: Option<(i64, Vec<InputMeta>)> = None;
        let res = self.stages(plan, &mut started);
        self.progress.finish();
        self.emit_metrics(&res, started.as_ref());
        // A signal that came after the commit ends the process now.
        crate::interrupt::finish();
        res.map(|(exit, _)| exit)
    }

    /// Prepared → Started → Decided → published. `started` keeps the run's
    /// id and inputs for the metrics file, whatever stage failed.
    fn stages(
        &mut self,
        plan: Plan,
        started: &mut Option<(i64, Vec<InputMeta>)>,
    ) -> Result<(Exit, Option<Decided>)> {
        let prepared = self.prepare(&plan)?;
        let metas: Vec<InputMeta> = prepared.inputs.iter().map(Opened::meta).collect();
        *started = Some((0, metas.clone()));
        self.progress = self.progress_line(&metas);
        let mut store = store::open(&self.cfg.db, self.cfg.lock_timeout)?;
        if let Plan::Retry(store::FailureFilter { run: Some(id), .. }) = plan {
            if store.run(id)?.is_none() {
                let db = store.name().to_string();
                return Err(UsageError(format!("there is no run {id} in {db}")).into());
            }
        }
        self.reap(&mut *store)?;
        if store.concurrency() == Concurrency::Shared {
            store.hold_catalog(prepared.catalog.is_some())?;
        }
        let run = self.start(&mut *store, metas)?;
        *started = Some((run.run_id, run.inputs.clone()));
        let decided = match store.concurrency() {
            Concurrency::Serial => self.serial(&mut *store, &run, prepared, &plan),
            Concurrency::Shared => self.shared(&mut *store, &run, prepared, &plan),
        };
        match decided {
            Ok(d) => self.publish(&mut *store, run, d),
            Err(e) => {
                run.reports.discard();
                let shared = store.concurrency() == Concurrency::Shared;
                self.record_failure(&mut *store, run.run_id, &run.inputs, &e, shared);
                Err(e)
            }
        }
    }

    /// Everything about the inputs is checked before the database is touched.
    fn prepare(&self, plan: &Plan) -> Result<Prepared> {
        if let Some(path) = &self.opts.metrics_file {
            crate::report::metrics::check_dir(path)?;
        }
        let inputs = match plan {
            Plan::Files(files) => inputs::open_files(files, self.opts)?,
            Plan::Retry(_) => Vec::new(),
        };
        let catalog = match &self.opts.catalog {
            Some(path) if path == "-" => {
                return Err(UsageError(
                    "--catalog needs a file: standard input is for the orders \
                     (`orderbatch inventory load - --format csv` loads a catalog from standard input)"
                        .into(),
                )
                .into())
            }
            // The catalog is its own file, comma-separated like `inventory
            // export` writes it, in UTF-8 or the encoding it looks like.
            Some(path) => {
                let read = crate::read::ReadOptions {
                    encoding: crate::read::TextEncoding::Auto,
                    ..Default::default()
                };
                Some((path.clone(), read_catalog(path, None, &read)?))
            }
            None => None,
        };
        Ok(Prepared { inputs, catalog })
    }

    /// The history row and the partial report directory.
    fn start(&self, store: &mut dyn Store, inputs: Vec<InputMeta>) -> Result<Started> {
        crate::interrupt::starting();
        let run_id = store.start_run(self.kind, self.started_at, self.opts.report_format)?;
        crate::interrupt::running(run_id);
        self.fence_started(run_id);
        crate::log::structured(
            "run_started",
            serde_json::json!({
                "run_id": run_id,
                "command": self.kind.as_str(),
                "db": store.name(),
                "inputs": inputs.iter().map(|m| m.path.as_str()).collect::<Vec<_>>(),
            }),
        );
        let marker = marker(store.name(), run_id, &self.started_at.to_rfc3339());
        let reports = ReportDir::create(&self.opts.out, run_id, &marker).with_context(|| {
            format!(
                "cannot write reports under {}: check the --out directory",
                self.opts.out.display()
            )
        });
        match reports {
            Ok(reports) => Ok(Started {
                run_id,
                reports,
                inputs,
            }),
            Err(e) => {
                let shared = store.concurrency() == Concurrency::Shared;
                self.record_failure(store, run_id, &inputs, &e, shared);
                Err(e)
            }
        }
    }

    /// Runs left running by a process that is gone are marked interrupted,
    /// and their partial reports removed; a run stopped between its commit
    /// and the rename of its reports gets them moved into place now (made
    /// again from the database when they were not complete).
    fn reap(&self, store: &mut dyn Store) -> Result<()> {
        store.reap_interrupted()?;
        let db = store.name().to_string();
        for left in crate::report::dir::leftovers(&self.opts.out) {
            let id = left.run_id;
            let run = store.run(id)?;
            let status = run.as_ref().map(|r| r.summary.status);
            if left.unfinished {
                // Killed while making it: it holds no report. Left alone only
                // while a run of that number is alive.
                if status != Some(RunStatus::Running) {
                    crate::report::dir::remove_unfinished(&self.opts.out, id);
                }
                continue;
            }
            let Some(run) = run else { continue };
            if left.marker.as_deref() != Some(&marker(&db, id, &run.summary.started_at)) {
                continue; // another database's run of the same number
            }
            match run.summary.status {
                RunStatus::Completed | RunStatus::DryRun => {
                    if let Err(e) = finish::publish_leftover(store, &self.opts.out, &run) {
                        crate::log::warn(&format!(
                            "the reports of run {id} could not be moved into place from {}: {e:#}; \
                             `orderbatch report accepted|failed --run {id}` prints them",
                            self.opts.out.join(format!(".run-{id}.partial")).display()
                        ));
                    }
                }
                RunStatus::Running => {}
                _ => ReportDir::remove_partial(&self.opts.out, id),
            }
        }
        Ok(())
    }

    /// The orders of the run, as sources for the reading thread, and the
    /// runs whose failures it retries (filled as they are read).
    fn orders(
        &self,
        inputs: Vec<Opened>,
        plan: &Plan,
    ) -> Result<(Vec<stages::Orders>, RetriedRuns)> {
        Ok(match plan {
            Plan::Files(_) => (
                inputs.into_iter().map(|o| o.orders).collect(),
                RetriedRuns::default(),
            ),
            Plan::Retry(retry) => {
                // A store of its own: the run's transaction holds the other.
                let store = store::open(&self.cfg.db, self.cfg.lock_timeout)?;
                let retries = inputs::Retries::new(store, retry.clone(), self.opts.timezone);
                let runs = Arc::clone(&retries.runs);
                (vec![Box::new(retries)], runs)
            }
        })
    }

    fn load_catalog(
        &self,
        tx: &mut dyn store::Tx,
        catalog: Option<&(String, Vec<Product>)>,
        run_id: i64,
    ) -> Result<()> {
        if let Some((path, products)) = catalog {
            tx.load_products(
                products,
                Some(run_id),
                path,
                crate::model::clock::Timestamp::now(),
            )?;
        }
        Ok(())
    }

    /// The progress line of the run, over the input's bytes when their size is known.
    fn progress_line(&self, inputs: &[InputMeta]) -> crate::progress::Progress {
        let total: Option<u64> = inputs.iter().map(|m| m.meter.size).sum();
        let total = total.filter(|_| !inputs.is_empty());
        crate::progress::Progress::new(self.cfg.progress, total, "reading")
    }

    /// A run stopped by an error committed nothing; the history says how it ended.
    fn record_failure(
        &self,
        store: &mut dyn Store,
        run_id: i64,
        inputs: &[InputMeta],
        e: &anyhow::Error,
        shared: bool,
    ) {
        // Where one writer holds the whole database, the history row cannot be
        // written after a lock timeout either: waiting a second time would
        // only double the wait (the row reads as interrupted later). Where
        // runs share it, the row is free to write.
        if exit_code_of(e) == 75 && !shared {
            return;
        }
        // A fenced run stopped before its commit (its claim lost, or a
        // signal) was interrupted, like a run whose process died.
        let status = match Stopped::of(e) {
            Some(_) => RunStatus::Interrupted,
            None => RunStatus::Failed,
        };
        let mut record = self.record(
            run_id,
            inputs,
            status,
            Default::default(),
            &RetriedRuns::default(),
        );
        record.message = Some(crate::model::text::for_terminal(&format!("{e:#}")).into_owned());
        let _ = store.end_run(&record);
    }
}

/// Bytes read so far of the inputs.
fn bytes_read(inputs: &[InputMeta]) -> u64 {
    inputs.iter().map(|m| m.meter.bytes_read()).sum()
}

/// What a partial report directory says of itself: the database and run it belongs to.
fn marker(db: &str, run_id: i64, started_at: &str) -> String {
    format!("orderbatch run {run_id} of {db} started at {started_at}\n")
}

/// A deadlock or serialization failure between concurrent runs: worth another try.
fn is_contention(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<store::StoreError>(),
            Some(store::StoreError::Contention { .. })
        )
    })
}
