//! `report accepted|failed --run ID`: a run's report, rebuilt from the
//! database. A run that stored no orders (a dry run, or one that committed
//! nothing) has no report there: that is said, with where its report file
//! is if it wrote one, instead of printing an empty report; so is a run
//! whose reports `runs prune` removed.

use std::io::{self, Write};

use anyhow::Result;

use crate::config::Config;
use crate::exit::{Exit, UsageError};
use crate::model::order::AcceptedRow;
use crate::model::run::{RunRecord, RunStatus};
use crate::model::ReportFormat;
use crate::report::AcceptedWriter;
use crate::store::Store;

/// Write a run's report to standard output, from the database
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which report: the accepted (and skipped) orders, or the failed ones
    #[arg(value_enum)]
    kind: ReportKind,
    /// The run whose report to write (see `runs list`)
    #[arg(long, value_name = "ID")]
    run: i64,
    /// Report format (default: the format the run wrote)
    #[arg(long, value_enum)]
    format: Option<ReportFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportKind {
    Accepted,
    Failed,
}

pub fn run(cfg: &Config, args: Args) -> Result<Exit> {
    let (kind, id, format) = (args.kind, args.run, args.format);
    let mut store = super::open_existing(cfg)?;
    let run = store
        .run(id)?
        .ok_or_else(|| UsageError(format!("there is no run {id} in {}", store.name())))?;
    if let Some(why) = not_stored(&run, kind) {
        return Err(UsageError(why).into());
    }
    if let Some(when) = store.pruned_at(id)? {
        return Err(UsageError(pruned(&mut *store, id, &when, kind)?).into());
    }
    let format = format.unwrap_or(run.report_format);
    let out = io::BufWriter::new(io::stdout().lock());
    match kind {
        ReportKind::Accepted => {
            let mut w = AcceptedWriter::new(out, format)?;
            let mut io_err = None;
            store.accepted_of_run(id, &mut |row: AcceptedRow| {
                if io_err.is_none() {
                    io_err = w.write(&row).err();
                }
                Ok(())
            })?;
            if let Some(e) = io_err {
                return Err(e.into());
            }
            w.finish()?.flush()?;
        }
        ReportKind::Failed => {
            let style = crate::report::FailedStyle {
                bom: false,
                ids: true,
            };
            crate::report::render_failed(&mut *store, id, format, style, out)?.flush()?;
        }
    }
    Ok(Exit::Ok)
}

/// A pruned run's reports are gone (`runs prune`); its open failures are
/// not, and where they are is said.
fn pruned(store: &mut dyn Store, id: i64, when: &str, kind: ReportKind) -> Result<String> {
    let day = when.get(..10).unwrap_or(when);
    let mut why = format!("run {id} was pruned on {day}: its reports are gone");
    if kind == ReportKind::Failed {
        let open = store.resolutions(id)?.open;
        if open > 0 {
            why.push_str(&format!(
                " (its {open} open failures are still listed by `orderbatch failures list --run {id}`)"
            ));
        }
    }
    Ok(why)
}

/// Why the database holds no report of this run, when it holds none: exit
/// 2, as for a run that is not there (an empty report would read as a run
/// that had no such orders).
fn not_stored(run: &RunRecord, kind: ReportKind) -> Option<String> {
    let id = run.summary.run_id;
    let what = match kind {
        ReportKind::Accepted => "orders",
        ReportKind::Failed => "failures",
    };
    Some(match run.summary.status {
        RunStatus::Completed => return None,
        RunStatus::DryRun => {
            let name = match kind {
                ReportKind::Accepted => "accepted",
                ReportKind::Failed => "failed",
            };
            let file = crate::report::file_name(name, run.report_format);
            format!(
                "run {id} was a dry run: a dry run stores no {what}; its report is the file it wrote, \
                 reports/run-{id}/{file} (under the --out directory the run was given; reports by default)"
            )
        }
        RunStatus::Aborted => format!(
            "run {id} was aborted by --max-errors: nothing of it was stored and it wrote no reports"
        ),
        RunStatus::Failed => format!(
            "run {id} failed: nothing of it was stored and it wrote no reports (`orderbatch runs show {id}` says why)"
        ),
        RunStatus::Interrupted => format!(
            "run {id} was interrupted: nothing of it was committed and it wrote no reports"
        ),
        RunStatus::Running => format!(
            "run {id} is still running: its {what} are stored when it commits"
        ),
    })
}
