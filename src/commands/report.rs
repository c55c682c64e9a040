//! `report accepted|failed --run ID`: a run's report, rebuilt from the database.

use std::io::{self, Write};

use anyhow::Result;

use crate::config::{Config, ReportKind};
use crate::model::order::AcceptedRow;
use crate::model::Format;
use crate::report::AcceptedWriter;
use crate::{Exit, UsageError};

pub fn run(cfg: &Config, kind: ReportKind, id: i64, format: Option<Format>) -> Result<Exit> {
    let mut store = super::open_existing(cfg)?;
    let run = store
        .run(id)?
        .ok_or_else(|| UsageError(format!("there is no run {id} in {}", store.name())))?;
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
