//! `init`: create or migrate the database.

use anyhow::Result;

use crate::config::Config;
use crate::exit::Exit;
use crate::store::{Fault, StoreError};

/// Create or migrate the database (idempotent)
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Create or migrate the database, and check that it is sound.
pub fn run(cfg: &Config, _args: Args) -> Result<Exit> {
    let mut store = super::open(cfg)?;
    let damaged: Vec<String> = store
        .check()?
        .into_iter()
        .filter_map(|f| match f {
            Fault::Integrity(what) => Some(what),
            Fault::Ledger { .. } => None,
        })
        .collect();
    if !damaged.is_empty() {
        for what in &damaged {
            crate::log::fault(&format!("integrity check: {what}"));
        }
        return Err(StoreError::Damaged {
            db: store.name().to_string(),
            what: format!("its integrity check found {} problem(s)", damaged.len()),
        }
        .into());
    }
    if !cfg.quiet {
        crate::log::info("ready", &format!("database {} is ready", store.name()));
    }
    Ok(Exit::Ok)
}
