//! The commands other than a run, one small file each: init, inventory, run
//! history, reports from the database, failures, verification.

pub mod failures;
pub mod init;
pub mod inventory;
pub mod report;
pub mod runs;
pub mod verify;

use std::io::{self, Write};

use anyhow::Result;

use crate::config::Config;
use crate::store::{self, Store};

/// The database of the command line, for a command that writes (created
/// when missing).
fn open(cfg: &Config) -> Result<Box<dyn Store>> {
    Ok(store::open(&cfg.db, cfg.lock_timeout)?)
}

/// The database of the command line, for a command that only reads: a
/// SQLite file that does not exist is an error, and is not created.
fn open_existing(cfg: &Config) -> Result<Box<dyn Store>> {
    Ok(store::open_existing(&cfg.db, cfg.lock_timeout)?)
}

/// Text on standard output, all at once.
fn print(text: &str) -> Result<()> {
    let mut o = io::stdout().lock();
    o.write_all(text.as_bytes())?;
    o.flush()?;
    Ok(())
}

/// JSON on standard output, pretty, one document.
fn print_json(v: &serde_json::Value) -> Result<()> {
    print(&format!("{}\n", serde_json::to_string_pretty(v)?))
}
