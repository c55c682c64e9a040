//! The end of a run: the history, the reports moved into place, the summary
//! on standard output and stderr, and the metrics file. Once the run has
//! committed nothing here can undo it: a problem only warns.

use std::io::Write;

use anyhow::Result;

use super::{inputs, Ctx, Ending, Flow};
use crate::model::run::{Counts, RunRecord, RunStatus, RunSummary};
use crate::report::{metrics, ReportDir};
use crate::store::Store;
use crate::Exit;

impl Ctx<'_> {
    pub(super) fn record(&self, run_id: i64, status: RunStatus, counts: Counts) -> RunRecord {
        RunRecord {
            summary: RunSummary {
                run_id,
                status,
                started_at: self.started_at.clone(),
                finished_at: crate::now_rfc3339(),
                duration_ms: self.clock.elapsed().as_millis() as u64,
                inputs: inputs::summaries(&self.inputs),
                counts,
            },
            kind: self.kind,
            report_format: self.opts.report_format,
            retried_runs: self
                .retried_runs
                .lock()
                .map(|r| r.iter().copied().collect())
                .unwrap_or_default(),
            message: None,
            host: crate::store::host_name(),
        }
    }

    /// A run that ran to its end: the history of what did not commit, the
    /// reports in place (or gone), the summary out.
    pub(super) fn settle(
        &mut self,
        store: &mut dyn Store,
        reports: ReportDir,
        flow: Result<Flow>,
    ) -> Result<(Exit, Option<RunRecord>)> {
        let flow = match flow {
            Ok(f) => f,
            Err(e) => {
                reports.discard();
                return Err(e);
            }
        };
        let run_id = flow.record.summary.run_id;
        if flow.ending != Ending::Committed {
            store.end_run(&flow.record)?;
        }
        let exit = match (flow.ending, flow.record.summary.counts.failed) {
            (Ending::Aborted, _) => Exit::Aborted,
            (_, 0) => Exit::Ok,
            _ => Exit::SomeFailed,
        };
        if let Some(w) = &flow.warning {
            warn(&format!("run {run_id}: {w}"));
        }
        if !flow.withdrawn.is_empty() {
            warn(&withdrawn_message(run_id, &flow.withdrawn));
        }
        self.progress.set_stage("writing reports");
        let dir = match flow.ending {
            Ending::Aborted => {
                reports.discard();
                None
            }
            _ => match reports.publish() {
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
            let mut out = std::io::stdout().lock();
            let res = out
                .write_all(flow.record.summary.to_json().as_bytes())
                .and_then(|()| out.flush());
            if let Err(e) = res {
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    warn(&format!(
                        "run {run_id} is done, but the summary could not be printed: {e}"
                    ));
                }
            }
        }
        self.finish_message(exit, &flow.record.summary, dir.as_deref());
        Ok((exit, Some(flow.record)))
    }

    /// The one-line summary on stderr (and the stage timings with -v); in
    /// JSON, one event with the summary's fields, whatever --quiet says.
    fn finish_message(&self, exit: Exit, summary: &RunSummary, reports: Option<&str>) {
        self.progress.finish();
        let t = &self.timings;
        let secs = |d: std::time::Duration| (d.as_secs_f64() * 1000.0).round() / 1000.0;
        let mut fields = serde_json::to_value(summary).unwrap_or_default();
        fields["exit_code"] = exit.code().into();
        fields["reports"] = reports.into();
        fields["stage_seconds"] = serde_json::json!({
            "read": secs(t.read), "validate": secs(t.validate), "apply": secs(t.apply),
            "report": secs(t.report), "commit": secs(t.commit),
        });
        if crate::log::format() == crate::log::LogFormat::Json {
            crate::log::event("run_finished", &summary.one_line(reports), fields);
            return;
        }
        if self.cfg.quiet && exit == Exit::Ok {
            return;
        }
        if self.cfg.verbose {
            crate::log::info(
                "timings",
                &format!(
                    "timings: read {:.3} s, validate {:.3} s, apply {:.3} s, report {:.3} s, commit {:.3} s, total {:.3} s",
                    t.read.as_secs_f64(),
                    t.validate.as_secs_f64(),
                    t.apply.as_secs_f64(),
                    t.report.as_secs_f64(),
                    t.commit.as_secs_f64(),
                    summary.duration_ms as f64 / 1000.0
                ),
            );
        }
        crate::log::info("run_finished", &summary.one_line(reports));
    }

    /// The metrics file, whatever the outcome; the last success comes from
    /// the database's history (looked up again, as the run may have failed early).
    pub(super) fn emit_metrics(&self, res: &Result<(Exit, Option<RunRecord>)>) {
        let Some(path) = &self.opts.metrics_file else {
            return;
        };
        if metrics::check_dir(path).is_err() {
            return; // the run's error says so already
        }
        let (exit_code, summary) = match res {
            Ok((exit, Some(r))) => (exit.code(), r.summary.clone()),
            Ok((exit, None)) => (
                exit.code(),
                self.record(0, RunStatus::Failed, Counts::default()).summary,
            ),
            Err(e) => (
                crate::exit_code_of(e),
                self.record(
                    self.run_id.unwrap_or(0),
                    RunStatus::Failed,
                    Counts::default(),
                )
                .summary,
            ),
        };
        let last_success = crate::store::open(&self.cfg.db, std::time::Duration::from_secs(1))
            .ok()
            .and_then(|mut s| s.last_success().ok().flatten());
        let m = metrics::RunMetrics {
            summary: &summary,
            exit_code,
            last_success: last_success.as_deref(),
            timings: self.timings,
            input_bytes: self.bytes_read(),
        };
        if let Err(e) = metrics::write(path, &m) {
            warn(&format!("{e:#}"));
        }
    }
}

/// The retried failures a reprocess left alone because another command
/// settled them first: how many, why, and the first few ids.
fn withdrawn_message(
    run_id: i64,
    withdrawn: &[(
        crate::model::failure::FailureKey,
        crate::model::failure::FailureState,
    )],
) -> String {
    use crate::model::failure::{failure_label, FailureState};
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
