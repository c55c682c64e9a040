//! `reprocess [--run ID] [--code CODE]...`: the still-open failed orders
//! retried as a new run (the run itself is `run/`).

use anyhow::Result;

use crate::config::Config;
use crate::exit::Exit;
use crate::model::ErrorCode;
use crate::store::FailureFilter;

use super::args::{parse_code, RunArgs};

/// Retry the still-unresolved failed orders (of one run, or of all; of some codes, or of all) as a new run
///
/// The orders come from the database, so the options of input files
/// (--format, --delimiter, --encoding, --skip-rows, --map) do not apply.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only the failed orders of this run
    #[arg(long, value_name = "ID")]
    run: Option<i64>,
    /// Only the failed orders of this error code (repeatable): after a restock, INSUFFICIENT_STOCK
    #[arg(long = "code", value_name = "CODE", value_parser = parse_code)]
    codes: Vec<ErrorCode>,
    #[command(flatten)]
    args: RunArgs,
}

pub fn run(cfg: &Config, args: Args) -> Result<Exit> {
    let retry = FailureFilter {
        run: args.run,
        codes: args.codes,
    };
    crate::run::reprocess(cfg, &args.args.into_options(Vec::new()), retry)
}
