//! The end of a run: the history of what did not commit, the reports moved
//! into place, the summary on standard output and stderr, and the metrics
//! file. Once the run has committed nothing here can undo it: a problem
//! only warns.

use std::io::Write;
use std::path::Path;

use anyhow::Result;

use super::inputs::{self, InputMeta};
use super::{Decided, Ending, RetriedRuns, Run, Started};
use crate::exit::Exit;
use crate::model::failure::{failure_label, FailureKey, FailureState};
use crate::model::run::{Counts, RunRecord, RunStatus, RunSummary, Timings};
use crate::report::{metrics, ReportDir};
use crate::store::Store;

impl Run<'_> {
    pub(super) fn record(
        &self,
        run_id: i64,
        inputs: &[InputMeta],
        status: RunStatus,
        counts: Counts,
        retried: &RetriedRuns,
    ) -> RunRecord {
        RunRecord {
            summary: RunSummary {
                run_id,
                status,
                started_at: self.started_at.to_rfc3339(),
                finished_at: crate::model::clock::now_rfc3339(),
                duration_ms: self.clock.elapsed().as_millis() as u64,
                inputs: inputs::summaries(inputs),
                counts,
            },
            kind: self.kind,
            report_format: self.opts.report_format,
            retried_runs: retried
                .lock()
                .map(|r| r.iter().copied().collect())
                .unwrap_or_default(),
            message: None,
            host: crate::store::host_name(),
        }
    }

    /// The history record of a run whose orders were all decided: aborted
    /// by `--max-errors`, a dry run, or completed.
    pub(super) fn decided_record(
        &self,
        run: &Started,
        aborted: bool,
        counts: Counts,
        retried: &RetriedRuns,
    ) -> RunRecord {
        let status = match (aborted, self.opts.dry_run) {
            (true, _) => RunStatus::Aborted,
            (false, true) => RunStatus::DryRun,
            (false, false) => RunStatus::Completed,
        };
        self.record(run.run_id, &run.inputs, status, counts, retried)
    }

    /// Stage 4: the history of what did not commit, the reports in place
    /// (or gone), the summary out.
    pub(super) fn publish(
        &self,
        store: &mut dyn Store,
        run: Started,
        d: Decided,
    ) -> Result<(Exit, Option<Decided>)> {
        let run_id = run.run_id;
        if d.ending != Ending::Committed {
            store.end_run(&d.record)?;
        }
        let exit = match (d.ending, d.record.summary.counts.failed) {
            (Ending::Aborted, _) => Exit::Aborted,
            (_, 0) => Exit::Ok,
            _ => Exit::SomeFailed,
        };
        if let Some(w) = &d.warning {
            warn(&format!("run {run_id}: {w}"));
        }
        if !d.withdrawn.is_empty() {
            warn(&withdrawn_message(run_id, &d.withdrawn));
        }
        self.progress.set_stage("writing reports");
        let dir = match (d.ending, d.reports_ready) {
            (Ending::Aborted, _) => {
                run.reports.discard();
                None
            }
            // Left for the next run to write and move into place.
            (_, false) => None,
            _ => match run.reports.publish() {
                Ok(dir) => Some(dir.display().to_string()),
                Err(e) => {
                    warn(&format!(
                        "run {run_id} is done, but its reports could not be moved into place under {}: {e}; \
                         `orderbatch report accepted|failed --run {run_id}` prints them from the database",
                        self.opts.out.display()
                    ));
                    None
                }
            },
        };
        if self.opts.json {
            print_summary(run_id, &d.record.summary);
        }
        self.finish_message(exit, &d, dir.as_deref());
        Ok((exit, Some(d)))
    }

    /// The one-line summary on stderr (and the stage timings with -v); in
    /// JSON, one event with the summary's fields, whatever --quiet says.
    fn finish_message(&self, exit: Exit, d: &Decided, reports: Option<&str>) {
        let (summary, t) = (&d.record.summary, &d.timings);
        self.progress.finish();
        let secs = |d: std::time::Duration| (d.as_secs_f64() * 1000.0).round() / 1000.0;
        let mut fields = serde_json::to_value(summary).unwrap_or_default();
        fields["exit_code"] = exit.code().into();
        fields["reports"] = reports.into();
        fields["stage_seconds"] = t
            .stages()
            .iter()
            .map(|(name, d)| (name.to_string(), serde_json::Value::from(secs(*d))))
            .collect::<serde_json::Map<_, _>>()
            .into();
        if let Some(n) = d.locked_statements {
            fields["locked_statements"] = n.into();
        }
        if crate::log::format() == crate::log::LogFormat::Json {
            crate::log::event("run_finished", &summary.one_line(reports), fields);
            return;
        }
        if self.cfg.quiet && exit == Exit::Ok {
            return;
        }
        if self.cfg.verbose {
            let stages: Vec<String> = t
                .stages()
                .iter()
                .map(|(name, d)| format!("{} {:.3} s", name.replace('_', " "), d.as_secs_f64()))
                .collect();
            let held = d
                .locked_statements
                .map(|n| format!(" ({n} statements while the stock was held)"))
                .unwrap_or_default();
            crate::log::info(
                "timings",
                &format!(
                    "timings: {}{held}, total {:.3} s",
                    stages.join(", "),
                    summary.duration_ms as f64 / 1000.0
                ),
            );
        }
        crate::log::info("run_finished", &summary.one_line(reports));
    }

    /// The metrics file, whatever the outcome; the last success comes from
    /// the database's history (looked up again, as the run may have failed early).
    pub(super) fn emit_metrics(
        &self,
        res: &Result<(Exit, Option<Decided>)>,
        started: Option<&(i64, Vec<InputMeta>)>,
    ) {
        let Some(path) = &self.opts.metrics_file else {
            return;
        };
        if metrics::check_dir(path).is_err() {
            return; // the run's error says so already
        }
        let (run_id, inputs) = started.map_or((0, &[][..]), |(id, i)| (*id, i.as_slice()));
        let failed = || {
            let none = RetriedRuns::default();
            self.record(run_id, inputs, RunStatus::Failed, Counts::default(), &none)
                .summary
        };
        let (exit_code, summary, timings) = match res {
            Ok((exit, Some(d))) => (exit.code(), d.record.summary.clone(), d.timings),
            Ok((exit, None)) => (exit.code(), failed(), Timings::default()),
            Err(e) => (super::exit_code_of(e), failed(), Timings::default()),
        };
        let last_success = crate::store::open(&self.cfg.db, std::time::Duration::from_secs(1))
            .ok()
            .and_then(|mut s| s.last_success().ok().flatten());
        let m = metrics::RunMetrics {
            summary: &summary,
            exit_code,
            last_success: last_success.as_deref(),
            timings,
            input_bytes: super::bytes_read(inputs),
        };
        if let Err(e) = metrics::write(path, &m) {
            warn(&format!("{e:#}"));
        }
    }
}

fn print_summary(run_id: i64, summary: &RunSummary) {
    let mut out = std::io::stdout().lock();
    let res = out
        .write_all(summary.to_json().as_bytes())
        .and_then(|()| out.flush());
    if let Err(e) = res {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            warn(&format!(
                "run {run_id} is done, but the summary could not be printed: {e}"
            ));
        }
    }
}

/// The reports a committed run left aside (it was stopped between its
/// commit and the rename) moved into place: as they are when complete
/// (summary.json, written last, is there), else made again from the
/// database first. A dry run's are moved only when complete (nothing of it
/// is in the database to make them from).
pub(super) fn publish_leftover(store: &mut dyn Store, out: &Path, run: &RunRecord) -> Result<()> {
    let id = run.summary.run_id;
    let complete = out
        .join(format!(".run-{id}.partial"))
        .join("summary.json")
        .exists();
    if !complete {
        if run.summary.status != RunStatus::Completed {
            ReportDir::remove_partial(out, id);
            return Ok(());
        }
        let dir = ReportDir::reopen(out, id)?;
        dir.reset()?;
        let format = run.report_format;
        let accepted = crate::report::file_name("accepted", format);
        crate::report::render_accepted(store, id, format, false, dir.file(&accepted)?)?
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()?;
        let failed = crate::report::file_name("failed", format);
        let style = crate::report::FailedStyle {
            bom: false,
            ids: true,
        };
        crate::report::render_failed(store, id, format, style, dir.file(&failed)?)?
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()?;
        let mut f = dir.file("summary.json")?;
        f.write_all(run.summary.to_json().as_bytes())?;
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    crate::report::dir::publish_leftover(out, id)?;
    Ok(())
}

/// The retried failures a reprocess left alone because another command
/// settled them first: how many, why, and the first few ids.
fn withdrawn_message(run_id: i64, withdrawn: &[(FailureKey, FailureState)]) -> String {
    const SHOWN: usize = 10;
    let mut ids: Vec<String> = withdrawn
        .iter()
        .take(SHOWN)
        .map(|(k, _)| failure_label(*k))
        .collect();
    if withdrawn.len() > SHOWN {
        ids.push(format!("and {} more", withdrawn.len() - SHOWN));
    }
    let closed = withdrawn
        .iter()
        .filter(|(_, s)| *s == FailureState::Closed)
        .count();
    format!(
        "run {run_id}: {} failed orders were not retried: {closed} closed by `failures close` and {} settled by another run \
         after this run read them ({}); `orderbatch failures list` shows what is still open",
        withdrawn.len(),
        withdrawn.len() - closed,
        ids.join(", ")
    )
}

fn warn(text: &str) {
    crate::log::warn(text);
}
