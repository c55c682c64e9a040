//! What both ways of running share: every chunk of checked orders through
//! the applier in input order while a thread writes the accepted report,
//! and the failed report and summary written into the run's directory.

use std::io::Write;
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::{stages, Run, Started};
use crate::apply::{Applier, Decided as DecidedOrder};
use crate::model::run::{RunRecord, RunStatus};
use crate::report::{file_name, AcceptedWriter, FailedStream, ReportDir};
use crate::store::Queries;
use crate::validate::Checked;

/// A report file that could not be written, said as what it is: a report
/// an xlsx workbook cannot hold is refused (exit 2); a database error while
/// the report is read from it speaks for itself; anything else is the file
/// (or the disk under it), named, with what to do.
pub(super) fn report_error(
    e: impl Into<anyhow::Error>,
    reports: &ReportDir,
    name: &str,
) -> anyhow::Error {
    let e = e.into();
    if let Some(too) = crate::report::TooLarge::in_chain(&e) {
        return crate::exit::UsageError(format!(
            "the {name} report cannot be written: {too}; nothing of this run was committed"
        ))
        .into();
    }
    if e.chain().any(|c| c.is::<crate::store::StoreError>()) {
        return e;
    }
    let shown = reports.path_of(name).display().to_string();
    e.context(format!(
        "cannot write {}; nothing of this run was committed: make room or fix --out, then run the same command again",
        crate::model::text::for_terminal(&shown)
    ))
}

/// What applying every chunk came to.
pub(super) struct Applied {
    /// `--max-errors` stopped it.
    pub aborted: bool,
    pub apply: Duration,
    pub report: Duration,
    /// The failed report was written as the orders were decided, whole.
    pub failed_written: bool,
}

impl Run<'_> {
    /// Every chunk through the applier, in input order, the accepted report
    /// written by a thread of its own as the chunks are decided (complete
    /// and synced when this returns without an error). `stream_failed`:
    /// where every failure is recorded as its order is decided, the failed
    /// report is written by that thread too, when it can be (see
    /// `FailedStream`).
    pub(super) fn apply_chunks(
        &self,
        tx: &mut dyn crate::store::Tx,
        applier: &mut Applier,
        chunks: impl Iterator<Item = Result<Vec<Checked>>>,
        run: &Started,
        stream_failed: bool,
    ) -> Result<Applied> {
        let format = self.opts.report_format;
        let name = file_name("accepted", format);
        let accepted = run
            .reports
            .file(&name)
            .and_then(|f| AcceptedWriter::with_bom(f, format, self.opts.report_bom))
            .map_err(|e| report_error(e, &run.reports, &name))?;
        let failed_name = file_name("failed", format);
        let failed = if stream_failed {
            let style = crate::report::FailedStyle {
                bom: self.opts.report_bom,
                ids: !self.opts.dry_run,
            };
            let stream = run
                .reports
                .file(&failed_name)
                .and_then(|f| FailedStream::new(f, format, style, run.run_id))
                .map_err(|e| report_error(e, &run.reports, &failed_name))?;
            Some(stream)
        } else {
            None
        };
        let (applied, (writer, failed), busy) = std::thread::scope(|s| -> Result<_> {
            let reporter = stages::report(s, accepted, failed)?;
            let res = self.each_chunk(tx, applier, chunks, &reporter.tx, run);
            let joined = reporter.join();
            let applied = res?;
            let (written, busy) = joined.map_err(|(failed, e)| {
                report_error(e, &run.reports, if failed { &failed_name } else { &name })
            })?;
            Ok((applied, written, busy))
        })?;
        let t = Instant::now();
        writer
            .finish()
            .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
            .and_then(|f| f.sync_all())
            .map_err(|e| report_error(e, &run.reports, &name))?;
        let failed_written = match failed.map(FailedStream::finish).transpose() {
            Ok(Some(Some(w))) => {
                w.into_inner()
                    .map_err(|e| e.into_error())
                    .and_then(|f| f.sync_all())
                    .map_err(|e| report_error(e, &run.reports, &failed_name))?;
                true
            }
            Ok(_) => false,
            Err(e) => return Err(report_error(e, &run.reports, &failed_name)),
        };
        Ok(Applied {
            report: busy + t.elapsed(),
            failed_written,
            ..applied
        })
    }

    /// Every chunk through the applier, decided chunks to the report thread.
    fn each_chunk(
        &self,
        tx: &mut dyn crate::store::Tx,
        applier: &mut Applier,
        chunks: impl Iterator<Item = Result<Vec<Checked>>>,
        report: &SyncSender<Vec<DecidedOrder>>,
        run: &Started,
    ) -> Result<Applied> {
        self.progress.set_stage("applying");
        let mut apply = Duration::ZERO;
        for chunk in chunks {
            let chunk = chunk?;
            self.fence_check()?;
            let t = Instant::now();
            let decided = applier
                .apply_chunk(tx, chunk)
                .map_err(crate::apply::ApplyError::into_inner)?;
            apply += t.elapsed();
            let aborted = self.too_many_failures(applier);
            if report.send(decided).is_err() {
                // The report thread stopped on an error: joining it says which.
                break;
            }
            let c = &applier.counts;
            self.progress.update(
                super::bytes_read(&run.inputs),
                crate::progress::Tally {
                    orders: c.orders,
                    accepted: c.accepted + c.skipped,
                    failed: c.failed,
                },
            );
            if aborted {
                return Ok(Applied {
                    aborted: true,
                    apply,
                    report: Duration::ZERO,
                    failed_written: false,
                });
            }
        }
        Ok(Applied {
            aborted: false,
            apply,
            report: Duration::ZERO,
            failed_written: false,
        })
    }

    /// `--max-errors` is exceeded.
    pub(super) fn too_many_failures(&self, applier: &Applier) -> bool {
        self.opts
            .max_errors
            .is_some_and(|n| applier.counts.failed > n)
    }

    /// The failed report from the database (as the transaction or the
    /// committed database sees the run), then the accepted one again when
    /// asked (its orders' fate changed after it was written), then
    /// summary.json, written last: a directory holding it is complete.
    /// `extras`: the failed report's extra columns, where the run saw its
    /// failures recorded in input order (else a first pass finds them).
    pub(super) fn write_reports(
        &self,
        store: &mut dyn Queries,
        run: &Started,
        record: &RunRecord,
        accepted_again: bool,
        extras: Option<&crate::report::ExtraColumns>,
        failed_written: bool,
    ) -> Result<Duration> {
        let t = Instant::now();
        let format = self.opts.report_format;
        let reports = &run.reports;
        if accepted_again {
            let name = file_name("accepted", format);
            reports
                .replace(&name)
                .map_err(anyhow::Error::from)
                .and_then(|f| {
                    crate::report::render_accepted(
                        store,
                        run.run_id,
                        format,
                        self.opts.report_bom,
                        f,
                    )
                })
                .and_then(|w| Ok(w.into_inner().map_err(|e| e.into_error())?.sync_all()?))
                .map_err(|e| report_error(e, reports, &name))?;
        }
        let name = file_name("failed", format);
        let style = crate::report::FailedStyle {
            bom: self.opts.report_bom,
            ids: record.summary.status != RunStatus::DryRun,
        };
        // Unless the run streamed it whole: written from the database (over
        // what a stream that gave up left).
        if !failed_written {
            reports
                .replace(&name)
                .map_err(anyhow::Error::from)
                .and_then(|f| {
                    crate::report::render_failed_with(store, run.run_id, format, style, extras, f)
                })
                .and_then(|w| Ok(w.into_inner().map_err(|e| e.into_error())?.sync_all()?))
                .map_err(|e| report_error(e, reports, &name))?;
        }
        reports
            .file("summary.json")
            .and_then(|mut f| {
                f.write_all(record.summary.to_json().as_bytes())?;
                f.into_inner().map_err(|e| e.into_error())?.sync_all()
            })
            .map_err(|e| report_error(e, reports, "summary.json"))?;
        Ok(t.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_error_is_said_as_what_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let reports = ReportDir::create(dir.path(), 7, "test\n").unwrap();
        let db = crate::store::StoreError::Lost {
            db: "postgres://u@h/db".into(),
            what: "server closed the connection".into(),
        };
        let e = report_error(db, &reports, "failed.csv");
        assert!(!format!("{e:#}").contains("make room"), "{e:#}");
        assert!(format!("{e:#}").contains("was lost"));
        let disk = std::io::Error::other("No space left on device");
        let e = report_error(disk, &reports, "accepted.csv");
        let said = format!("{e:#}");
        assert!(
            said.contains("accepted.csv") && said.contains("make room"),
            "{said}"
        );
        let too = crate::report::TooLarge("a value of 40000 characters".into());
        let e = report_error(
            std::io::Error::new(std::io::ErrorKind::InvalidInput, too),
            &reports,
            "failed.xlsx",
        );
        assert!(e.is::<crate::exit::UsageError>(), "{e:#}");
        reports.discard();
    }
}
