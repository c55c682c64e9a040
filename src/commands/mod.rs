//! The commands, one module each owning its options, its help and its
//! `run`; `Command` lists them for the command line and sends each to its
//! module. Adding a command is its module plus a variant and an arm here.

pub mod args;
pub mod failures;
pub mod inbox;
pub mod init;
pub mod inventory;
pub mod manual;
pub mod process;
pub mod prune;
pub mod report;
pub mod reprocess;
pub mod runs;
pub mod verify;

use std::io::{self, Write};

use anyhow::Result;
use clap::Subcommand;

use crate::config::Config;
use crate::exit::Exit;
use crate::store::{self, Store};

#[derive(Debug, Subcommand)]
pub enum Command {
    Init(init::Args),
    #[command(subcommand)]
    Inventory(inventory::Command),
    Process(process::Args),
    Reprocess(reprocess::Args),
    #[command(mut_arg("catalog", |a| a.hide(true)))]
    Inbox(inbox::Args),
    #[command(subcommand)]
    Runs(runs::Command),
    #[command(subcommand)]
    Failures(failures::Command),
    Report(report::Args),
    Verify(verify::Args),
    Completions(manual::CompletionsArgs),
    Man(manual::ManArgs),
}

impl Command {
    /// What is wrong with options that clap checks one by one but that must
    /// also agree with each other or with the command (`--map`): found while
    /// the command line is parsed, so it is a usage error like any other.
    pub fn check(&self) -> std::result::Result<(), String> {
        match self {
            Command::Process(a) => a.check(),
            Command::Inbox(a) => a.check(),
            Command::Inventory(c) => c.check(),
            _ => Ok(()),
        }
    }

    /// Run the command. `definition` is the whole command line, for the
    /// commands that print it (completions, the manual).
    pub fn run(self, cfg: &Config, definition: fn() -> clap::Command) -> Result<Exit> {
        // A --db that cannot be used is refused before any file is read or created.
        if !matches!(self, Command::Completions(_) | Command::Man(_)) {
            store::check(&cfg.db)?;
        }
        match self {
            Command::Init(a) => init::run(cfg, a),
            Command::Inventory(c) => inventory::run(cfg, c),
            Command::Process(a) => process::run(cfg, a),
            Command::Reprocess(a) => reprocess::run(cfg, a),
            Command::Inbox(a) => inbox::run(cfg, a),
            Command::Runs(c) => runs::run(cfg, c),
            Command::Failures(c) => failures::run(cfg, c),
            Command::Report(a) => report::run(cfg, a),
            Command::Verify(a) => verify::run(cfg, a),
            Command::Completions(a) => manual::completions(a, definition),
            Command::Man(a) => manual::man(cfg, a, definition),
        }
    }
}

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
    print_bytes(text.as_bytes())
}

/// Bytes on standard output, all at once.
fn print_bytes(bytes: &[u8]) -> Result<()> {
    let mut o = io::stdout().lock();
    o.write_all(bytes)?;
    o.flush()?;
    Ok(())
}

/// JSON on standard output, pretty, one document.
fn print_json(v: &serde_json::Value) -> Result<()> {
    print(&format!("{}\n", serde_json::to_string_pretty(v)?))
}

/// Rows of cells as a table: each column as wide as its widest cell, numbers
/// right-aligned, the last column left as it is.
pub(crate) fn table(rows: &[Vec<String>], right: &[bool]) -> String {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = widths[i] - cell.chars().count();
            match (i + 1 == cols, right.get(i).copied().unwrap_or(false)) {
                (true, _) => line.push_str(cell),
                (false, true) => line.push_str(&format!("{}{cell}", " ".repeat(pad))),
                (false, false) => line.push_str(&format!("{cell}{}", " ".repeat(pad))),
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_aligns_every_column_to_its_widest_cell() {
        let rows = vec![
            vec!["id".into(), "status".into(), "x".into()],
            vec!["1".into(), "interrupted".into(), "a b".into()],
            vec!["12".into(), "ok".into(), "c".into()],
        ];
        let t = table(&rows, &[true, false, false]);
        assert_eq!(
            t,
            "id  status       x\n 1  interrupted  a b\n12  ok           c\n"
        );
    }
}
