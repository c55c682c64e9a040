//! One run of `process` or `reprocess`: read -> validate -> apply -> report.
//!
//! A reader thread parses inputs into chunks of orders, a validation thread
//! checks each chunk in parallel on a rayon pool, this thread applies the
//! checked orders in input order inside the run's single transaction, and a
//! report thread writes the accepted report and frees the orders. The reports
//! are written aside and moved into place after the commit.

use std::collections::HashMap;
use std::io::Write;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::apply::{Applier, Outcome};
use crate::config::{Config, RunOptions};
use crate::model::order::{AcceptedRow, FailedOrder, Product, Status};
use crate::progress::Progress;
use crate::read::catalog::read_catalog;
use crate::read::{
    open_orders, open_source, Columns, Format, InputError, InputMeter, OrderReader, RawBody,
    RawOrder, RawRow,
};
use crate::report::summary::{InputSummary, Summary};
use crate::report::{file_name, metrics, AcceptedWriter, ExtraColumns, FailedWriter, ReportDir};
use crate::store::{OpenFailure, RunInput, RunRecord, SqliteStore, Store};
use crate::validate::{validate_chunk, Catalog, Checked};
use crate::{now_rfc3339, Exit as RunExit};

/// Orders per chunk handed from stage to stage.
const CHUNK: usize = 1024;
/// Chunks in flight between two stages: bounds memory whatever the input size.
const IN_FLIGHT: usize = 2;

/// Where a run's orders come from.
enum Plan {
    Files(Vec<String>),
    Retry(Option<i64>),
}

pub fn process(cfg: &Config, opts: &RunOptions) -> Result<RunExit> {
    with_metrics(opts, || run(cfg, opts, Plan::Files(opts.files.clone())))
}

pub fn reprocess(cfg: &Config, opts: &RunOptions, of_run: Option<i64>) -> Result<RunExit> {
    with_metrics(opts, || run(cfg, opts, Plan::Retry(of_run)))
}

/// A run that fails, however early, still updates the metrics file: its exit
/// code and time, with the last success kept.
fn with_metrics(opts: &RunOptions, run: impl FnOnce() -> Result<RunExit>) -> Result<RunExit> {
    let started_at = now_rfc3339();
    let clock = Instant::now();
    let res = run();
    if let (Err(e), Some(path)) = (&res, &opts.metrics_file) {
        let s = Summary::new(
            0,
            "failed",
            &started_at,
            &now_rfc3339(),
            clock.elapsed().as_millis() as u64,
            Vec::new(),
            &Default::default(),
        );
        let _ = write_metrics(path, &s, i32::from(crate::exit_code_of(e)), false);
    }
    res
}

/// An input file opened and its header checked.
struct Opened {
    path: String,
    format: Format,
    meter: Arc<InputMeter>,
    reader: OrderReader,
}

#[derive(Default)]
struct Timings {
    read: Duration,
    validate: Duration,
    apply: Duration,
    report: Duration,
    commit: Duration,
}

fn run(cfg: &Config, opts: &RunOptions, plan: Plan) -> Result<RunExit> {
    let clock = Instant::now();
    let started_at = now_rfc3339();
    // Everything about the input files is checked before the database is touched.
    if let Some(path) = &opts.metrics_file {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        if !dir.is_dir() {
            return Err(crate::UsageError(format!(
                "the directory of --metrics-file {} does not exist",
                path.display()
            ))
            .into());
        }
    }
    let opened = match &plan {
        Plan::Files(files) => open_inputs(files, opts)?,
        Plan::Retry(_) => Vec::new(),
    };
    let catalog_file = match &opts.catalog {
        Some(path) if path == "-" => {
            return Err(crate::UsageError(
                "--catalog needs a file: standard input is for the orders \
                 (`orderbatch inventory load - --format csv` loads a catalog from standard input)"
                    .into(),
            )
            .into())
        }
        // The catalog is its own file, comma-separated like `inventory export` writes it.
        Some(path) => Some((path.clone(), read_catalog(path, None, b',')?)),
        None => None,
    };
    let mut store = SqliteStore::open(&cfg.db, cfg.lock_timeout)?;
    if let Plan::Retry(Some(id)) = plan {
        if store.run(id)?.is_none() {
            return Err(crate::UsageError(format!("there is no run {id} in {}", cfg.db)).into());
        }
    }
    let command = match plan {
        Plan::Files(_) => "process",
        Plan::Retry(_) => "reprocess",
    };
    reap_interrupted(&mut store, &opts.out)?;
    let run_id = store.start_run(
        command,
        &started_at,
        opts.report_format.as_str(),
        std::process::id(),
        &host_name(),
    )?;
    let mut ctx = RunCtx {
        cfg,
        opts,
        run_id,
        command,
        started_at,
        clock,
        timings: Timings::default(),
        last: None,
        committed: false,
    };
    let res = ctx.execute(&mut store, opened, catalog_file, plan);
    // After a lock timeout the history row cannot be written either (the lock
    // is still held): waiting for it a second time would only double the wait.
    let locked = res.as_ref().is_err_and(|e| crate::exit_code_of(e) == 75);
    if let (Err(e), false, false) = (&res, ctx.committed, locked) {
        // Nothing of the run is committed; the history says how it ended.
        let _ = store.rollback();
        let record = RunRecord {
            id: run_id,
            status: "failed".into(),
            finished_at: Some(now_rfc3339()),
            duration_ms: Some(clock.elapsed().as_millis() as i64),
            summary: Some(format!("{e:#}")),
            errors_by_code: "{}".into(),
            retried_runs: "[]".into(),
            ..RunRecord::default()
        };
        let _ = store.mark_run(&record);
    }
    res
}

/// Runs left 'running' by a process that is gone (killed, crashed, machine
/// restarted) are marked 'interrupted', and their partial reports removed.
fn reap_interrupted(store: &mut SqliteStore, out: &std::path::Path) -> Result<()> {
    let host = host_name();
    let dead: Vec<i64> = store
        .running_runs()?
        .into_iter()
        .filter(|(_, pid, h)| {
            // Our own pid on an old row is a reused pid: that run is gone.
            h.as_deref() == Some(host.as_str())
                && pid.is_some_and(|p| p == i64::from(std::process::id()) || !process_alive(p))
        })
        .map(|(id, _, _)| id)
        .collect();
    store.mark_interrupted(&dead)?;
    for id in dead {
        let _ = std::fs::remove_dir_all(out.join(format!(".run-{id}.partial")));
    }
    Ok(())
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// Whether an orderbatch process with this pid runs here. Without /proc
/// nothing can be told, and a run is taken for alive.
fn process_alive(pid: i64) -> bool {
    if !std::path::Path::new("/proc/self").exists() {
        return true;
    }
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|comm| comm.trim() == "orderbatch")
        .unwrap_or(false)
}

fn open_inputs(files: &[String], opts: &RunOptions) -> Result<Vec<Opened>> {
    if files.iter().filter(|f| *f == "-").count() > 1 {
        return Err(InputError::StdinTwice.into());
    }
    let mut out = Vec::with_capacity(files.len());
    for (i, path) in files.iter().enumerate() {
        let format = Format::resolve(path, opts.format)?;
        let source = open_source(path)?;
        let meter = Arc::clone(&source.meter);
        let file = i as u32;
        let reader = open_orders(source, format, opts.delimiter)?;
        out.push(Opened {
            path: path.clone(),
            format,
            meter,
            reader: Box::new(reader.map(move |r| {
                r.map(|mut o| {
                    o.file = file;
                    o
                })
            })),
        });
    }
    Ok(out)
}

struct RunCtx<'a> {
    cfg: &'a Config,
    opts: &'a RunOptions,
    run_id: i64,
    command: &'static str,
    started_at: String,
    clock: Instant,
    timings: Timings,
    /// The summary of the finished run, for the closing line.
    last: Option<Summary>,
    /// The run's transaction committed: nothing after can undo or fail it.
    committed: bool,
}

impl RunCtx<'_> {
    fn elapsed_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    fn execute(
        &mut self,
        store: &mut SqliteStore,
        opened: Vec<Opened>,
        catalog_file: Option<(String, Vec<Product>)>,
        plan: Plan,
    ) -> Result<RunExit> {
        let opts = self.opts;
        let reports = ReportDir::create(&opts.out, self.run_id).with_context(|| {
            format!(
                "cannot write reports under {}: check the --out directory",
                opts.out.display()
            )
        })?;
        let res = self.execute_in(store, &reports, opened, catalog_file, plan);
        match res {
            Ok((exit, true)) => {
                // The run is decided (and committed unless a dry run): what follows
                // can only warn, it cannot change the outcome.
                let dir = match reports.publish() {
                    Ok(dir) => Some(dir.display().to_string()),
                    Err(e) => {
                        eprintln!(
                            "orderbatch: warning: run {} is done, but its reports could not be moved into place under {}: {e}; \
                             `orderbatch report accepted|failed --run {}` prints them from the database",
                            self.run_id,
                            opts.out.display(),
                            self.run_id
                        );
                        None
                    }
                };
                if let Some(s) = self.last.clone() {
                    if let Err(e) = self.emit(&s, exit, !opts.dry_run) {
                        if !crate::is_broken_pipe(&e) {
                            eprintln!(
                                "orderbatch: warning: run {} is done, but {e:#}",
                                self.run_id
                            );
                        }
                    }
                }
                self.finish_message(&exit, dir.as_deref());
                Ok(exit)
            }
            Ok((exit, false)) => {
                reports.discard();
                self.finish_message(&exit, None);
                Ok(exit)
            }
            Err(e) => {
                reports.discard();
                Err(e)
            }
        }
    }

    /// The run inside its transaction. Returns the outcome and whether the reports are to be published.
    fn execute_in(
        &mut self,
        store: &mut SqliteStore,
        reports: &ReportDir,
        opened: Vec<Opened>,
        catalog_file: Option<(String, Vec<Product>)>,
        plan: Plan,
    ) -> Result<(RunExit, bool)> {
        let opts = self.opts;
        let run_id = self.run_id;
        store.begin()?;
        let now = now_rfc3339();
        if let Some((path, products)) = &catalog_file {
            store.load_products(products, Some(run_id), path, &now)?;
        }
        let products = store.products()?;
        let stock: HashMap<String, i64> = products
            .iter()
            .map(|p| (p.sku.clone(), p.on_hand))
            .collect();
        let catalog = Arc::new(Catalog::new(products));

        // The inputs: files, or the open failures to retry.
        let mut names: Vec<String> = opened.iter().map(|o| o.path.clone()).collect();
        let meters: Vec<Arc<InputMeter>> = opened.iter().map(|o| Arc::clone(&o.meter)).collect();
        let formats: Vec<Format> = opened.iter().map(|o| o.format).collect();
        let (readers, retried): (Vec<OrderReader>, Vec<OpenFailure>) = match plan {
            Plan::Files(_) => (opened.into_iter().map(|o| o.reader).collect(), Vec::new()),
            Plan::Retry(of_run) => {
                let open = store.open_failures(of_run)?;
                let raws = retry_orders(&open, &mut names);
                let it: OrderReader = Box::new(raws.into_iter().map(Ok));
                (vec![it], open)
            }
        };
        let total_bytes: Option<u64> = meters.iter().map(|m| m.size).sum();
        let progress = Progress::new(
            self.cfg.progress,
            total_bytes.filter(|_| !meters.is_empty()),
            "orders",
        );

        let accepted = AcceptedWriter::new(
            reports.file(&file_name("accepted", opts.report_format))?,
            opts.report_format,
        )?;
        let reason = if self.command == "reprocess" {
            "reprocess"
        } else {
            "order"
        };
        let mut applier = Applier::new(store, run_id, stock)?;
        let mut aborted = false;

        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.jobs)
            .thread_name(|i| format!("validate-{i}"))
            .build()
            .context("cannot start the validation threads")?;
        let (raw_tx, raw_rx) = sync_channel::<Result<Vec<RawOrder>, InputError>>(IN_FLIGHT);
        let (chk_tx, chk_rx) = sync_channel::<Result<Vec<Checked>, InputError>>(IN_FLIGHT);
        let mut apply_time = Duration::ZERO;
        let outcome = std::thread::scope(|scope| -> Result<AcceptedWriter<_>> {
            let reader = std::thread::Builder::new()
                .name("read".into())
                .spawn_scoped(scope, move || read_stage(readers, raw_tx))
                .context("cannot start the reading thread")?;
            let validator = std::thread::Builder::new()
                .name("validate".into())
                .spawn_scoped(scope, {
                    let catalog = Arc::clone(&catalog);
                    move || validate_stage(raw_rx, chk_tx, &catalog, &pool)
                })
                .context("cannot start the validation thread")?;
            // Decided orders go to a report thread, which writes the accepted
            // report and frees them: both are real work, kept off this thread.
            let (done_tx, done_rx) = sync_channel::<Vec<(RawOrder, Outcome)>>(IN_FLIGHT);
            let names = &names;
            let reporter = std::thread::Builder::new()
                .name("report".into())
                .spawn_scoped(scope, move || report_stage(done_rx, accepted, names))
                .context("cannot start the report thread")?;
            let mut done = Vec::with_capacity(CHUNK);
            let res = (|| -> Result<()> {
                for chunk in chk_rx.iter() {
                    let chunk = chunk?;
                    let t = Instant::now();
                    for checked in chunk {
                        let file = names
                            .get(checked.raw.file as usize)
                            .map(String::as_str)
                            .unwrap_or("-");
                        let (outcome, raw) = applier.apply(checked, file)?;
                        if matches!(outcome, Outcome::Failed(_))
                            && opts.max_errors.is_some_and(|n| applier.counts.failed > n)
                        {
                            aborted = true;
                        }
                        done.push((raw, outcome));
                        if aborted {
                            break;
                        }
                    }
                    if done_tx.send(std::mem::take(&mut done)).is_err() {
                        break; // the report thread stopped on an error: it says which below
                    }
                    apply_time += t.elapsed();
                    progress.update(
                        meters.iter().map(|m| m.bytes_read()).sum(),
                        applier.counts.orders,
                    );
                    if aborted {
                        break;
                    }
                }
                Ok(())
            })();
            // Stop the other stages: with the receiver gone their sends fail and they return.
            drop(chk_rx);
            drop(done_tx);
            // A stage that panicked must not pass for one that finished: the run would be partial.
            let read = reader.join();
            let validate = validator.join();
            let report = reporter.join();
            match (read, validate, report) {
                (Ok(r), Ok(v), Ok((written, busy))) => {
                    self.timings.read = r;
                    self.timings.validate = v;
                    self.timings.report = busy;
                    res?;
                    Ok(written.context("cannot write the accepted report")?)
                }
                _ => res.and(Err(anyhow::anyhow!(
                    "internal error: a worker thread stopped unexpectedly; nothing was committed"
                ))),
            }
        });
        progress.finish();
        self.timings.apply = apply_time;
        let accepted = outcome?;

        let counts = applier.counts.clone();
        let inputs: Vec<InputSummary> = names
            .iter()
            .zip(formats.iter().chain(std::iter::repeat(&Format::Csv)))
            .zip(meters.iter().map(Some).chain(std::iter::repeat(None)))
            .take(meters.len())
            .map(|((path, format), meter)| InputSummary {
                path: path.clone(),
                format: format.as_str().into(),
                sha256: meter.and_then(|m| m.sha256()).unwrap_or_default(),
            })
            .collect();

        if aborted {
            drop(applier);
            store.rollback()?;
            let summary = self.summary("aborted", inputs, &counts);
            store.mark_run(&self.record(&summary, &[]))?;
            if let Err(e) = self.emit(&summary, RunExit::Aborted, false) {
                if !crate::is_broken_pipe(&e) {
                    eprintln!("orderbatch: warning: {e:#}");
                }
            }
            return Ok((RunExit::Aborted, false));
        }

        let t = Instant::now();
        applier.finish(reason, &now_rfc3339())?;
        if !retried.is_empty() {
            let ids: Vec<i64> = retried.iter().map(|f| f.id).collect();
            store.supersede_failures(None, &ids, run_id)?;
        }
        accepted.finish()?.flush()?;
        write_failed_report(store, run_id, reports, opts.report_format)?;
        let status = if opts.dry_run { "dry_run" } else { "completed" };
        let summary = self.summary(status, inputs, &counts);
        let mut retried_runs: Vec<i64> = retried.iter().map(|f| f.run_id).collect();
        retried_runs.sort_unstable();
        retried_runs.dedup();
        let mut f = reports.file("summary.json")?;
        f.write_all(summary.to_json().as_bytes())?;
        f.flush()?;
        self.timings.report += t.elapsed();

        let t = Instant::now();
        let record = self.record(&summary, &retried_runs);
        if opts.dry_run {
            store.rollback()?;
            store.mark_run(&record)?;
        } else {
            store.finish_run(&record)?;
            store.commit()?;
            self.committed = true;
        }
        self.timings.commit = t.elapsed();
        let exit = if counts.failed > 0 {
            RunExit::SomeFailed
        } else {
            RunExit::Ok
        };
        self.last = Some(summary);
        Ok((exit, true))
    }

    fn summary(
        &self,
        status: &str,
        inputs: Vec<InputSummary>,
        counts: &crate::report::summary::Counts,
    ) -> Summary {
        Summary::new(
            self.run_id,
            status,
            &self.started_at,
            &now_rfc3339(),
            self.elapsed_ms(),
            inputs,
            counts,
        )
    }

    fn record(&self, s: &Summary, retried_runs: &[i64]) -> RunRecord {
        RunRecord {
            id: self.run_id,
            command: self.command.into(),
            status: s.status.clone(),
            started_at: s.started_at.clone(),
            finished_at: Some(s.finished_at.clone()),
            duration_ms: Some(s.duration_ms as i64),
            orders: s.orders as i64,
            accepted: s.accepted as i64,
            skipped: s.skipped as i64,
            failed: s.failed as i64,
            lines: s.lines as i64,
            units: s.units,
            errors_by_code: serde_json::to_string(&s.errors_by_code).unwrap_or_default(),
            retried_runs: serde_json::to_string(retried_runs).unwrap_or_default(),
            report_format: self.opts.report_format.as_str().into(),
            summary: Some(s.to_json()),
            inputs: s
                .inputs
                .iter()
                .map(|i| RunInput {
                    path: i.path.clone(),
                    format: i.format.clone(),
                    sha256: i.sha256.clone(),
                })
                .collect(),
        }
    }

    /// The --json summary on stdout and the metrics file.
    fn emit(&mut self, s: &Summary, exit: RunExit, success: bool) -> Result<()> {
        self.last = Some(s.clone());
        let metrics = match &self.opts.metrics_file {
            Some(path) => write_metrics(path, s, i32::from(exit.code()), success),
            None => Ok(()),
        };
        if self.opts.json {
            let mut out = std::io::stdout().lock();
            out.write_all(s.to_json().as_bytes())?;
            out.flush()?;
        }
        metrics
    }

    /// The one-line summary on stderr (and the stage timings with -v).
    fn finish_message(&self, exit: &RunExit, reports: Option<&str>) {
        let quiet_ok = self.cfg.quiet && *exit == RunExit::Ok;
        if quiet_ok {
            return;
        }
        let t = &self.timings;
        if self.cfg.verbose {
            eprintln!(
                "timings: read {:.3} s, validate {:.3} s, apply {:.3} s, report {:.3} s, commit {:.3} s, total {:.3} s",
                t.read.as_secs_f64(),
                t.validate.as_secs_f64(),
                t.apply.as_secs_f64(),
                t.report.as_secs_f64(),
                t.commit.as_secs_f64(),
                self.clock.elapsed().as_secs_f64()
            );
        }
        if let Some(s) = &self.last {
            eprintln!("{}", s.one_line(reports));
        }
    }
}

fn write_metrics(path: &std::path::Path, s: &Summary, exit_code: i32, success: bool) -> Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let previous = metrics::previous_last_success(path);
    let text = metrics::render(s, exit_code, now, success, previous);
    crate::report::write_atomic(path, text.as_bytes())
        .with_context(|| format!("cannot write the metrics file {}", path.display()))
}

/// Render the failed report from the database: the same code path as `report failed`.
fn write_failed_report(
    store: &mut SqliteStore,
    run_id: i64,
    reports: &ReportDir,
    format: Format,
) -> Result<()> {
    let out = reports.file(&file_name("failed", format))?;
    let out = render_failed(store, run_id, format, out)?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(())
}

/// Write a run's failed orders to `out` (two passes: the CSV header needs every extra column).
pub fn render_failed<W: Write>(
    store: &mut dyn Store,
    run_id: i64,
    format: Format,
    out: W,
) -> Result<W> {
    let mut extras = ExtraColumns::default();
    if format == Format::Csv {
        store.failed_of_run(run_id, &mut |f: FailedOrder| {
            extras.add(&f);
            Ok(())
        })?;
    }
    let mut w = FailedWriter::new(out, format, extras)?;
    let mut io_err = None;
    store.failed_of_run(run_id, &mut |f: FailedOrder| {
        if io_err.is_none() {
            io_err = w.write(&f).err();
        }
        Ok(())
    })?;
    if let Some(e) = io_err {
        return Err(e.into());
    }
    Ok(w.finish()?)
}

/// Report stage: the accepted report row of each accepted or skipped order,
/// then the orders freed. Returns the writer (or the first write error) and
/// the time spent.
fn report_stage<W: Write>(
    rx: Receiver<Vec<(RawOrder, Outcome)>>,
    mut writer: AcceptedWriter<W>,
    names: &[String],
) -> (std::io::Result<AcceptedWriter<W>>, Duration) {
    let mut busy = Duration::ZERO;
    for batch in rx.iter() {
        let t = Instant::now();
        for (raw, outcome) in &batch {
            let file = names
                .get(raw.file as usize)
                .map(String::as_str)
                .unwrap_or("-");
            let row = match outcome {
                Outcome::Accepted(o) => AcceptedRow::new(o, Status::Accepted, file, raw.line),
                Outcome::Skipped(o) => AcceptedRow::new(o, Status::Skipped, file, raw.line),
                Outcome::Failed(_) => continue,
            };
            if let Err(e) = writer.write(&row) {
                // Dropping the receiver stops the apply loop at its next send.
                return (Err(e), busy + t.elapsed());
            }
        }
        drop(batch);
        busy += t.elapsed();
    }
    (Ok(writer), busy)
}

/// Reader stage: every input in order, in chunks.
/// Returns the time spent.
fn read_stage(
    readers: Vec<OrderReader>,
    tx: SyncSender<Result<Vec<RawOrder>, InputError>>,
) -> Duration {
    let start = Instant::now();
    let mut waiting = Duration::ZERO;
    let mut chunk = Vec::with_capacity(CHUNK);
    for reader in readers {
        for item in reader {
            match item {
                Ok(raw) => {
                    chunk.push(raw);
                    if chunk.len() == CHUNK {
                        let t = Instant::now();
                        let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                        if tx.send(Ok(full)).is_err() {
                            return start.elapsed().saturating_sub(waiting);
                        }
                        waiting += t.elapsed();
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return start.elapsed().saturating_sub(waiting);
                }
            }
        }
    }
    if !chunk.is_empty() {
        let _ = tx.send(Ok(chunk));
    }
    start.elapsed().saturating_sub(waiting)
}

/// Validation stage: each chunk checked in parallel, order kept. Returns the time spent.
fn validate_stage(
    rx: Receiver<Result<Vec<RawOrder>, InputError>>,
    tx: SyncSender<Result<Vec<Checked>, InputError>>,
    catalog: &Catalog,
    pool: &rayon::ThreadPool,
) -> Duration {
    let mut busy = Duration::ZERO;
    for chunk in rx.iter() {
        let out = match chunk {
            Ok(raws) => {
                let t = Instant::now();
                let checked = pool.install(|| validate_chunk(raws, catalog));
                busy += t.elapsed();
                Ok(checked)
            }
            Err(e) => Err(e),
        };
        if tx.send(out).is_err() {
            break;
        }
    }
    busy
}

/// The open failures as orders to check again, with their original file and line.
fn retry_orders(open: &[OpenFailure], names: &mut Vec<String>) -> Vec<RawOrder> {
    let mut file_index: HashMap<String, u32> = HashMap::new();
    open.iter()
        .map(|f| {
            let o = &f.order;
            let file = *file_index.entry(o.source_file.clone()).or_insert_with(|| {
                names.push(o.source_file.clone());
                (names.len() - 1) as u32
            });
            let body = match &o.body.raw {
                Some(raw) => RawBody::Malformed {
                    raw: raw.clone(),
                    reason: format!("could not be parsed (as reported by run {})", f.run_id),
                },
                None => {
                    let extra_names: Vec<String> = o
                        .body
                        .rows
                        .first()
                        .map(|r| r.extra.iter().map(|(n, _)| n.clone()).collect())
                        .unwrap_or_default();
                    let columns = Arc::new(Columns::positional(extra_names, false));
                    let rows = o
                        .body
                        .rows
                        .iter()
                        .map(|r| {
                            let mut record = csv::StringRecord::new();
                            for i in 0..10 {
                                record
                                    .push_field(r.values.get(i).map(String::as_str).unwrap_or(""));
                            }
                            for (_, v) in &r.extra {
                                record.push_field(v);
                            }
                            RawRow {
                                line: if r.line > 0 { r.line } else { o.source_line },
                                record,
                            }
                        })
                        .collect();
                    RawBody::Rows {
                        columns,
                        rows,
                        no_items: o.body.no_items,
                    }
                }
            };
            RawOrder {
                file,
                line: o.source_line,
                body,
                notes: Vec::new(),
            }
        })
        .collect()
}
