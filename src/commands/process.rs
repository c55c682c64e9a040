//! `process FILE...`: one run over order files (the run itself is `run/`).

use anyhow::Result;

use crate::config::Config;
use crate::exit::{Exit, UsageError};
use crate::run::RunOptions;

use super::args::{InputArgs, RunArgs};

/// Ingest, validate and apply order files, and write reports (one run)
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Order files, each by its name: .csv, .tsv (tab-separated), .jsonl or .ndjson (one order a line), each also as .gz, or .xlsx (the first worksheet); '-' reads standard input (with --format)
    #[arg(required = true, value_name = "FILE")]
    files: Vec<String>,
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    run: RunArgs,
}

impl Args {
    /// The run's options, or what is wrong with them (`--map`).
    pub fn options(self) -> Result<RunOptions, String> {
        self.input.into_options(self.files, self.run)
    }

    pub fn check(&self) -> Result<(), String> {
        self.input
            .clone()
            .into_options(Vec::new(), self.run.clone())
            .map(drop)
    }
}

pub fn run(cfg: &Config, args: Args) -> Result<Exit> {
    crate::run::process(cfg, &args.options().map_err(UsageError)?)
}
