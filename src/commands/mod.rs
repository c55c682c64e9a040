//! The commands other than a run, one small file each: init, inventory, run
//! history and its pruning, reports from the database, failures, verification;
//! and the inbox, which runs `process` on each file as it arrives (a
//! directory of its own).

pub mod failures;
pub mod inbox;
pub mod init;
pub mod inventory;
pub mod prune;
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
