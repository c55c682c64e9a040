//! The commands other than a run, one small file each: init, inventory, run
//! history, reports from the database, failures, verification; and the
//! inbox, which runs `process` on each file as it arrives (a directory of
//! its own).

pub mod failures;
pub mod inbox;
pub mod init;
pub mod inventory;
pub mod report;
pub mod runs;
pub mod verify;

use std::io::{self, Write};

use anyhow::Result;

use crate::config::Config;
use crate::store::{self, Store};

/// The database of the command line.
fn open(cfg: &Config) -> Result<Box<dyn Store>> {
    Ok(store::open(&cfg.db, cfg.lock_timeout)?)
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
