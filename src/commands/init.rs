//! `init`: create or migrate the database.

use anyhow::Result;

use crate::config::Config;
use crate::Exit;

pub fn run(cfg: &Config) -> Result<Exit> {
    let store = super::open(cfg)?;
    if !cfg.quiet {
        eprintln!("database {} is ready", store.name());
    }
    Ok(Exit::Ok)
}
