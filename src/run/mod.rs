//! One run of `process` or `reprocess`: read → validate → apply → report.
//!
//! Where one writer holds the database at a time (SQLite), the run begins its
//! transaction first and applies the orders as they stream in from the
//! reading and checking threads. Where many writers share it (PostgreSQL),
//! the run reads and checks all of its input first, holding no lock, spools
//! the checked orders, and only then begins its transaction, locks the stock
//! rows it needs, and applies the spool (again, if a conflict with another
//! run rolled it back). Either way the same applier decides every order, the
//! reports are written aside and moved into place after the commit.

mod finish;
mod inputs;
mod pass;
mod spool;
mod stages;

use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::config::{Config, RunOptions};
use crate::model::order::Product;
use crate::model::run::{RunKind, RunRecord, RunStatus};
use crate::read::catalog::read_catalog;
use crate::report::ReportDir;
use crate::store::{self, Concurrency, Store};
use crate::{Exit, UsageError};
use inputs::Opened;

/// Where a run's orders come from.
enum Plan {
    Files(Vec<String>),
    Retry(store::FailureFilter),
}

pub fn process(cfg: &Config, opts: &RunOptions) -> Result<Exit> {
    Ctx::new(cfg, opts, RunKind::Process).run(Plan::Files(opts.files.clone()))
}

pub fn reprocess(cfg: &Config, opts: &RunOptions, retry: store::FailureFilter) -> Result<Exit> {
    Ctx::new(cfg, opts, RunKind::Reprocess).run(Plan::Retry(retry))
}

/// Busy time of each stage.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    pub read: Duration,
    pub validate: Duration,
    pub apply: Duration,
    pub report: Duration,
    pub commit: Duration,
}

/// Everything checked before the database is touched.
struct Prepared {
    inputs: Vec<Opened>,
    catalog: Option<(String, Vec<Product>)>,
}

/// How the run's transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Committed,
    DryRun,
    Aborted,
}

/// A run that ran to its end (committed or not).
struct Flow {
    ending: Ending,
    record: RunRecord,
    /// Something that went wrong after the commit, which stands regardless.
    warning: Option<String>,
    /// Retried failures that were no longer open when the run held them.
    withdrawn: Vec<(
        crate::model::failure::FailureKey,
        crate::model::failure::FailureState,
    )>,
}

/// One run: its options, clock and what it learnt so far.
struct Ctx<'a> {
    cfg: &'a Config,
    opts: &'a RunOptions,
    kind: RunKind,
    started_at: String,
    clock: Instant,
    timings: Timings,
    run_id: Option<i64>,
    /// The inputs, for the summary's digests.
    inputs: Vec<(
        String,
        crate::model::Format,
        std::sync::Arc<crate::read::InputMeter>,
    )>,
    /// Runs whose failures a reprocess retried.
    retried_runs: std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<i64>>>,
    /// The progress line; on screen until the summary line replaces it.
    progress: crate::progress::Progress,
}

impl<'a> Ctx<'a> {
    fn new(cfg: &'a Config, opts: &'a RunOptions, kind: RunKind) -> Self {
        Ctx {
            cfg,
            opts,
            kind,
            started_at: crate::now_rfc3339(),
            clock: Instant::now(),
            timings: Timings::default(),
            run_id: None,
            inputs: Vec::new(),
            retried_runs: Default::default(),
            progress: crate::progress::Progress::new(false, None, ""),
        }
    }

    /// The run from start to end; the metrics file is written whatever the outcome.
    fn run(mut self, plan: Plan) -> Result<Exit> {
        let res = self.run_inner(plan);
        self.progress.finish();
        self.emit_metrics(&res);
        // A signal that came after the commit ends the process now.
        crate::interrupt::finish();
        res.map(|(exit, _)| exit)
    }

    fn run_inner(&mut self, plan: Plan) -> Result<(Exit, Option<RunRecord>)> {
        let prepared = self.prepare(&plan)?;
        self.start_progress();
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
        crate::interrupt::starting();
        let run_id = store.start_run(self.kind, &self.started_at, self.opts.report_format)?;
        self.run_id = Some(run_id);
        crate::interrupt::running(run_id);
        crate::log::structured(
            "run_started",
            serde_json::json!({
                "run_id": run_id,
                "command": self.kind.as_str(),
                "db": store.name(),
                "inputs": self.inputs.iter().map(|(p, _, _)| p.as_str()).collect::<Vec<_>>(),
            }),
        );
        let marker = marker(store.name(), run_id, &self.started_at);
        let reports = ReportDir::create(&self.opts.out, run_id, &marker).with_context(|| {
            format!(
                "cannot write reports under {}: check the --out directory",
                self.opts.out.display()
            )
        });
        let res = reports.and_then(|reports| {
            let flow = match store.concurrency() {
                Concurrency::Serial => self.streamed(&mut *store, &reports, prepared, &plan),
                Concurrency::Shared => self.spooled(&mut *store, &reports, prepared, &plan),
            };
            self.settle(&mut *store, reports, flow)
        });
        match res {
            Ok(done) => Ok(done),
            Err(e) => {
                let shared = store.concurrency() == Concurrency::Shared;
                self.record_failure(&mut *store, &e, shared);
                Err(e)
            }
        }
    }

    /// Everything about the inputs is checked before the database is touched.
    fn prepare(&mut self, plan: &Plan) -> Result<Prepared> {
        if let Some(path) = &self.opts.metrics_file {
            crate::report::metrics::check_dir(path)?;
        }
        let inputs = match plan {
            Plan::Files(files) => inputs::open_files(files, self.opts)?,
            Plan::Retry(_) => Vec::new(),
        };
        self.inputs = inputs
            .iter()
            .map(|o| (o.path.clone(), o.format, std::sync::Arc::clone(&o.meter)))
            .collect();
        let catalog = match &self.opts.catalog {
            Some(path) if path == "-" => {
                return Err(UsageError(
                    "--catalog needs a file: standard input is for the orders \
                     (`orderbatch inventory load - --format csv` loads a catalog from standard input)"
                        .into(),
                )
                .into())
            }
            // The catalog is its own file, comma-separated like `inventory export` writes it.
            Some(path) => Some((path.clone(), read_catalog(path, None, None)?)),
            None => None,
        };
        Ok(Prepared { inputs, catalog })
    }

    /// Runs left running by a process that is gone are marked interrupted,
    /// and their partial reports removed; a run stopped between its commit
    /// and the rename of its reports gets them moved into place now.
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
                    if let Err(e) = crate::report::dir::publish_leftover(&self.opts.out, id) {
                        crate::log::warn(&format!(
                            "the reports of run {id} are complete in {} but could not be moved into place: {e}",
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

    /// The orders of the run, as sources for the reading thread.
    fn orders(&mut self, prepared: Prepared, plan: &Plan) -> Result<Vec<stages::Orders>> {
        Ok(match plan {
            Plan::Files(_) => prepared.inputs.into_iter().map(|o| o.orders).collect(),
            Plan::Retry(retry) => {
                // A store of its own: the run's transaction holds the other.
                let store = store::open(&self.cfg.db, self.cfg.lock_timeout)?;
                let retries = inputs::Retries::new(store, retry.clone());
                self.retried_runs = std::sync::Arc::clone(&retries.runs);
                vec![Box::new(retries)]
            }
        })
    }

    /// One writer at a time: the transaction first, then the orders as they stream in.
    fn streamed(
        &mut self,
        store: &mut dyn Store,
        reports: &ReportDir,
        mut prepared: Prepared,
        plan: &Plan,
    ) -> Result<Flow> {
        let catalog_file = prepared.catalog.take();
        let orders = self.orders(prepared, plan)?;
        let mut tx = store.begin()?;
        self.load_catalog(&mut *tx, catalog_file.as_ref())?;
        let catalog = crate::validate::Catalog::new(tx.products()?);
        let stock = tx.stock(None)?;
        std::thread::scope(|s| {
            let checking = stages::check(s, orders, &catalog, self.opts.jobs)?;
            let flow = self.pass(tx, checking.rx.iter(), stock, reports);
            let times = checking.join();
            let flow = flow?;
            let times = times?;
            self.timings.read = times.read;
            self.timings.validate = times.validate;
            Ok(flow)
        })
    }

    /// Many writers: check everything into a spool holding no lock, then
    /// apply it in a transaction that locks only the stock it needs, again
    /// when a conflict with another run rolls it back.
    fn spooled(
        &mut self,
        store: &mut dyn Store,
        reports: &ReportDir,
        mut prepared: Prepared,
        plan: &Plan,
    ) -> Result<Flow> {
        let catalog_file = prepared.catalog.take();
        let catalog = inputs::catalog(
            store.products()?,
            catalog_file.as_ref().map(|(_, p)| p.as_slice()),
        );
        let orders = self.orders(prepared, plan)?;
        let mut spool = self.fill_spool(orders, &catalog)?;
        let backoff = store::Backoff::new(self.cfg.lock_timeout);
        let deadline = Instant::now() + self.cfg.lock_timeout;
        let mut seed = store::seed();
        for attempt in 0.. {
            let res = (|| {
                let mut tx = store.begin()?;
                self.load_catalog(&mut *tx, catalog_file.as_ref())?;
                let stock = tx.stock(Some(&spool.skus()))?;
                self.pass(tx, spool.chunks()?.ahead()?, stock, reports)
            })();
            match res {
                Err(e) if is_contention(&e) => {
                    if Instant::now() >= deadline {
                        return Err(store::StoreError::Locked {
                            db: store.name().to_string(),
                            secs: self.cfg.lock_timeout.as_secs_f64(),
                        }
                        .into());
                    }
                    reports.reset()?;
                    let left = deadline.saturating_duration_since(Instant::now());
                    std::thread::sleep(backoff.delay(attempt, &mut seed).min(left));
                }
                other => return other,
            }
        }
        unreachable!("the attempts above return")
    }

    fn fill_spool(
        &mut self,
        orders: Vec<stages::Orders>,
        catalog: &crate::validate::Catalog,
    ) -> Result<spool::Spool> {
        self.progress.set_stage("checking");
        let res = std::thread::scope(|s| {
            let checking = stages::check(s, orders, catalog, self.opts.jobs)?;
            let mut w = spool::SpoolWriter::new()?;
            let mut n = 0u64;
            let filled = (|| -> Result<()> {
                for chunk in checking.rx.iter() {
                    let chunk = chunk?;
                    n += chunk.len() as u64;
                    w.push(&chunk)?;
                    self.progress.update(
                        self.bytes_read(),
                        crate::progress::Tally {
                            orders: n,
                            ..Default::default()
                        },
                    );
                }
                Ok(())
            })();
            let times = checking.join();
            filled?;
            let times = times?;
            self.timings.read = times.read;
            self.timings.validate = times.validate;
            w.finish()
        });
        res
    }

    fn load_catalog(
        &self,
        tx: &mut dyn store::Tx,
        catalog: Option<&(String, Vec<Product>)>,
    ) -> Result<()> {
        if let (Some((path, products)), Some(run_id)) = (catalog, self.run_id) {
            tx.load_products(products, Some(run_id), path, &crate::now_rfc3339())?;
        }
        Ok(())
    }

    fn bytes_read(&self) -> u64 {
        self.inputs.iter().map(|(_, _, m)| m.bytes_read()).sum()
    }

    /// The progress line of the run, over the input's bytes when their size is known.
    fn start_progress(&mut self) {
        let total: Option<u64> = self.inputs.iter().map(|(_, _, m)| m.size).sum();
        let total = total.filter(|_| !self.inputs.is_empty());
        self.progress = crate::progress::Progress::new(self.cfg.progress, total, "reading");
    }

    /// A run stopped by an error committed nothing; the history says how it ended.
    fn record_failure(&self, store: &mut dyn Store, e: &anyhow::Error, shared: bool) {
        let Some(run_id) = self.run_id else { return };
        // Where one writer holds the whole database, the history row cannot be
        // written after a lock timeout either: waiting a second time would
        // only double the wait (the row reads as interrupted later). Where
        // runs share it, the row is free to write.
        if crate::exit_code_of(e) == 75 && !shared {
            return;
        }
        let mut record = self.record(run_id, RunStatus::Failed, Default::default());
        record.message = Some(crate::model::text::for_terminal(&format!("{e:#}")).into_owned());
        let _ = store.end_run(&record);
    }
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
