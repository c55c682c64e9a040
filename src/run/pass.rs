//! One pass over the checked orders inside one transaction: every order
//! decided in input order, the reports written aside, then the commit (or,
//! for a dry run or an abort, the rollback).

use std::io::Write;
use std::sync::mpsc::SyncSender;
use std::time::Instant;

use anyhow::{Context, Result};

use super::{stages, Ctx, Ending, Flow};
use crate::apply::{Applier, Decided};
use crate::model::run::{RunKind, RunStatus};
use crate::report::{file_name, AcceptedWriter, ReportDir};
use crate::store::{LedgerReason, Tx};
use crate::validate::Checked;

/// A report file that could not be written, said as what it is: a report
/// an xlsx workbook cannot hold is refused (exit 2); a database error while
/// the report is read from it speaks for itself; anything else is the file
/// (or the disk under it), named, with what to do.
fn report_error(e: impl Into<anyhow::Error>, reports: &ReportDir, name: &str) -> anyhow::Error {
    let e = e.into();
    if let Some(too) = crate::report::TooLarge::in_chain(&e) {
        return crate::UsageError(format!(
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

impl Ctx<'_> {
    pub(super) fn pass(
        &mut self,
        mut tx: Box<dyn Tx + '_>,
        chunks: impl Iterator<Item = Result<Vec<Checked>>>,
        stock: Vec<(String, i64)>,
        reports: &ReportDir,
    ) -> Result<Flow> {
        let run_id = self.run_id.context("internal error: the run has no id")?;
        if self.opts.dry_run {
            tx.rehearse()?;
        }
        let mut applier = Applier::new(run_id, stock, self.kind == RunKind::Reprocess);
        let accepted_name = file_name("accepted", self.opts.report_format);
        let accepted = reports
            .file(&accepted_name)
            .and_then(|f| {
                AcceptedWriter::with_bom(f, self.opts.report_format, self.opts.report_bom)
            })
            .map_err(|e| report_error(e, reports, &accepted_name))?;
        let (aborted, writer) = std::thread::scope(|s| -> Result<_> {
            let reporter = stages::report(s, accepted)?;
            let res = self.apply_all(&mut *tx, &mut applier, chunks, &reporter.tx);
            let joined = reporter.join();
            let aborted = res?;
            let (writer, busy) = joined.map_err(|e| report_error(e, reports, &accepted_name))?;
            self.timings.report += busy;
            Ok((aborted, writer))
        })?;
        if aborted {
            drop(tx);
            let record = self.record(run_id, RunStatus::Aborted, applier.counts.clone());
            return Ok(Flow {
                ending: Ending::Aborted,
                record,
                warning: None,
                withdrawn: Vec::new(),
            });
        }
        self.progress.set_stage("committing");
        let reason = match self.kind {
            RunKind::Process => LedgerReason::Order,
            RunKind::Reprocess => LedgerReason::Reprocess,
        };
        applier.finish(&mut *tx, reason, &crate::now_rfc3339())?;
        let t = Instant::now();
        writer
            .finish()
            .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
            .and_then(|f| f.sync_all())
            .map_err(|e| report_error(e, reports, &accepted_name))?;
        let failed_name = file_name("failed", self.opts.report_format);
        let mut failed = reports
            .file(&failed_name)
            .map_err(|e| report_error(e, reports, &failed_name))?;
        let style = crate::report::FailedStyle {
            bom: self.opts.report_bom,
            ids: !self.opts.dry_run,
        };
        crate::report::render_failed(
            &mut *tx,
            run_id,
            self.opts.report_format,
            style,
            &mut failed,
        )
        .map_err(|e| report_error(e, reports, &failed_name))?;
        failed
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.sync_all())
            .map_err(|e| report_error(e, reports, &failed_name))?;
        let status = if self.opts.dry_run {
            RunStatus::DryRun
        } else {
            RunStatus::Completed
        };
        let record = self.record(run_id, status, applier.counts.clone());
        reports
            .file("summary.json")
            .and_then(|mut f| {
                f.write_all(record.summary.to_json().as_bytes())?;
                f.into_inner().map_err(|e| e.into_error())?.sync_all()
            })
            .map_err(|e| report_error(e, reports, "summary.json"))?;
        self.timings.report += t.elapsed();
        let t = Instant::now();
        let flow = if self.opts.dry_run {
            drop(tx);
            Flow {
                ending: Ending::DryRun,
                record,
                warning: None,
                withdrawn: applier.withdrawn,
            }
        } else {
            tx.finish_run(&record)?;
            crate::interrupt::committing();
            let committed = tx
                .commit_then(&crate::interrupt::committed)
                .inspect_err(|_| crate::interrupt::commit_failed())?;
            Flow {
                ending: Ending::Committed,
                record,
                warning: committed.warning,
                withdrawn: applier.withdrawn,
            }
        };
        self.timings.commit = t.elapsed();
        Ok(flow)
    }

    /// Every chunk through the applier, decided chunks to the report thread.
    /// True when `--max-errors` stopped it.
    fn apply_all(
        &mut self,
        tx: &mut dyn Tx,
        applier: &mut Applier,
        chunks: impl Iterator<Item = Result<Vec<Checked>>>,
        report: &SyncSender<Vec<Decided>>,
    ) -> Result<bool> {
        self.progress.set_stage("applying");
        for chunk in chunks {
            let chunk = chunk?;
            let t = Instant::now();
            let decided = applier.apply_chunk(tx, chunk)?;
            self.timings.apply += t.elapsed();
            let aborted = self
                .opts
                .max_errors
                .is_some_and(|n| applier.counts.failed > n);
            if report.send(decided).is_err() {
                // The report thread stopped on an error: joining it says which.
                return Ok(false);
            }
            let c = &applier.counts;
            self.progress.update(
                self.bytes_read(),
                crate::progress::Tally {
                    orders: c.orders,
                    accepted: c.accepted + c.skipped,
                    failed: c.failed,
                },
            );
            if aborted {
                return Ok(true);
            }
        }
        Ok(false)
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
        assert!(e.is::<crate::UsageError>(), "{e:#}");
        reports.discard();
    }
}
