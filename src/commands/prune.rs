//! `runs prune --before DATE [--out DIR] [--dry-run]`: forget the runs that
//! finished before DATE. The store prunes them a batch at a time, each batch
//! one short transaction (runs go on beside it); then their report
//! directories under `--out` go, and SQLite gives the space back. It says
//! what went (with `--dry-run`, what would).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::config::Config;
use crate::exit::{Exit, UsageError};
use crate::model::clock::Timestamp;
use crate::report::dir::{remove_pruned, PrunedDir};
use crate::store::{OldRun, PruneBatch, Pruned, Reclaimed, Store};

/// A batch: at most this many runs, and about this many of their orders, so
/// that each transaction stays short whatever the size of the nights.
const BATCH_RUNS: usize = 32;
const BATCH_ORDERS: u64 = 50_000;

/// Forget the runs that finished before DATE: their reports, skip records and settled failures; ledger compacted, orders reduced to what a re-run needs
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Runs that finished before this: a date (2026-01-01, midnight UTC) or an RFC 3339 time with its offset
    #[arg(long, value_name = "DATE")]
    before: String,
    /// The reports directory the runs wrote into (DIR/run-ID/...)
    #[arg(long, default_value = "reports", value_name = "DIR")]
    out: PathBuf,
    /// Say what would be removed; change nothing
    #[arg(long)]
    dry_run: bool,
}

/// What the operator asked.
struct Request<'a> {
    before: &'a str,
    out: &'a Path,
    dry_run: bool,
}

pub fn run(cfg: &Config, args: Args) -> Result<Exit> {
    prune(
        cfg,
        &Request {
            before: &args.before,
            out: &args.out,
            dry_run: args.dry_run,
        },
    )
}

fn prune(cfg: &Config, req: &Request<'_>) -> Result<Exit> {
    let before = parse_before(req.before)?;
    // A dry run writes nothing, so it creates no database either.
    let mut store = if req.dry_run {
        super::open_existing(cfg)?
    } else {
        super::open(cfg)?
    };
    if !req.dry_run {
        // A run whose process is gone is interrupted, and may be pruned.
        store.reap_interrupted()?;
    }
    let old = store.old_runs(before)?;
    let todo: Vec<&OldRun> = old.iter().filter(|r| !r.pruned).collect();
    let at = Timestamp::now();
    let mut total = Pruned::default();
    let mut sweep = true;
    for runs in batches(&todo) {
        let batch = PruneBatch {
            runs: &runs,
            before,
            at,
            sweep,
            dry: req.dry_run,
        };
        total.add(&store.prune(&batch)?);
        sweep = false;
    }
    if sweep {
        // No run left to prune: what earlier prunes left is still swept.
        let batch = PruneBatch {
            runs: &[],
            before,
            at,
            sweep,
            dry: req.dry_run,
        };
        total.add(&store.prune(&batch)?);
    }
    // The reports of every pruned run, also of one an earlier prune
    // pruned and was stopped before it removed them.
    let dirs = remove_dirs(&old, req)?;
    let reclaimed = if req.dry_run {
        None
    } else {
        reclaim(&mut *store)
    };
    if !cfg.quiet {
        say(&Said {
            before: &before.to_string(),
            req,
            old: &old,
            total: &total,
            dirs: &dirs,
            reclaimed: reclaimed.as_ref(),
        });
    }
    Ok(Exit::Ok)
}

/// `--before`: a date (`2026-01-01`, midnight UTC) or an RFC 3339 date-time
/// with its offset, as the history writes times (UTC, milliseconds), so
/// that they compare as text. A time to come is refused: it would prune
/// the runs of today too.
fn parse_before(s: &str) -> Result<Timestamp> {
    use chrono::{DateTime, NaiveDate, Utc};
    let s = s.trim();
    let t = match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        Ok(d) => d.and_time(chrono::NaiveTime::MIN).and_utc(),
        Err(_) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                UsageError(format!(
                    "--before {}: not a date: give one as 2026-01-01 (midnight UTC) or 2026-01-01T00:00:00+01:00",
                    crate::model::text::for_terminal(s)
                ))
            })?,
    };
    if t > Utc::now() {
        return Err(UsageError(format!(
            "--before {s} is still to come: it would prune the runs of today too; give a date in the past"
        ))
        .into());
    }
    Ok(Timestamp::from(t))
}

/// The runs to prune in batches of [`BATCH_RUNS`] runs or [`BATCH_ORDERS`]
/// orders, oldest first.
fn batches(todo: &[&OldRun]) -> Vec<Vec<i64>> {
    let mut out: Vec<Vec<i64>> = Vec::new();
    let mut orders = 0;
    for r in todo {
        let full = out
            .last()
            .is_none_or(|b| b.len() >= BATCH_RUNS || orders + r.orders > BATCH_ORDERS);
        if full {
            out.push(Vec::new());
            orders = 0;
        }
        orders += r.orders;
        out.last_mut().expect("pushed above").push(r.id);
    }
    out
}

/// Report directories removed, and what was left there and why.
#[derive(Debug, Default)]
struct Dirs {
    removed: u64,
    kept: Vec<String>,
}

fn remove_dirs(old: &[OldRun], req: &Request<'_>) -> Result<Dirs> {
    let mut dirs = Dirs::default();
    for r in old {
        let what = remove_pruned(req.out, r.id, &r.started_at, req.dry_run).with_context(|| {
            format!(
                "cannot remove the reports of pruned run {} under {} (the run is pruned): check the directory's permissions, then run runs prune again",
                r.id,
                req.out.display()
            )
        })?;
        match what {
            PrunedDir::Removed => dirs.removed += 1,
            PrunedDir::Absent => {}
            PrunedDir::Kept(why) => dirs.kept.push(why),
        }
    }
    Ok(dirs)
}

/// The space back (SQLite); the prune stands when that fails, and says so.
fn reclaim(store: &mut dyn Store) -> Option<Reclaimed> {
    match store.reclaim() {
        Ok(r) => r,
        Err(e) => {
            crate::log::warn(&format!(
                "the runs are pruned, but the space was not given back to the file system: {e}; \
                 run runs prune again later (it does that again)"
            ));
            None
        }
    }
}

/// Everything the summary says.
struct Said<'a> {
    before: &'a str,
    req: &'a Request<'a>,
    old: &'a [OldRun],
    total: &'a Pruned,
    dirs: &'a Dirs,
    reclaimed: Option<&'a Reclaimed>,
}

/// What was removed, a line each (with `--dry-run`: what would be).
fn say(s: &Said<'_>) {
    let t = s.total;
    let (pruned, removed) = if s.req.dry_run {
        ("would prune", "would be removed")
    } else {
        ("pruned", "removed")
    };
    let mut lines = vec![format!(
        "runs prune --before {}: {pruned} {} runs{}",
        s.before,
        t.runs,
        span(s.old)
    )];
    lines.push(format!(
        "  report directories {removed} under {}: {}",
        s.req.out.display(),
        s.dirs.removed
    ));
    lines.extend(s.dirs.kept.iter().map(|why| format!("  {why}")));
    lines.push(format!("  skip records {removed}: {}", t.skips));
    lines.push(format!(
        "  settled failure records {removed}: {} (open failures kept: {}; `orderbatch failures list` shows them)",
        t.failures, t.open_kept
    ));
    lines.push(format!(
        "  ledger entries compacted: {}, of {} skus, into one carried-forward entry each (none where they sum to zero)",
        t.ledger_entries,
        t.ledger_skus.len()
    ));
    lines.push(format!(
        "  applied orders reduced to their id and fingerprint: {}",
        t.orders
    ));
    if let Some(r) = s.reclaimed {
        lines.push(format!(
            "  database file: {} -> {} ({}, {:.1} s)",
            mb(r.before),
            mb(r.after),
            r.how,
            r.secs
        ));
    }
    for line in &lines {
        crate::log::info("runs_pruned", line);
    }
}

/// `(runs 3 to 95)`, the ids the prune covers, pruned before or now.
fn span(old: &[OldRun]) -> String {
    match (old.first(), old.last()) {
        (Some(a), Some(b)) if a.id != b.id => format!(" (of runs {} to {})", a.id, b.id),
        (Some(a), _) => format!(" (of run {})", a.id),
        _ => String::new(),
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_is_midnight_utc_and_a_time_keeps_its_offset() {
        assert_eq!(
            parse_before("2026-01-05").unwrap(),
            "2026-01-05T00:00:00.000Z"
        );
        assert_eq!(
            parse_before("2026-01-05T01:30:00+02:00").unwrap(),
            "2026-01-04T23:30:00.000Z"
        );
        assert!(parse_before("05/01/2026").is_err());
        assert!(parse_before("2999-01-01").is_err(), "to come");
    }

    #[test]
    fn batches_stay_under_their_runs_and_orders() {
        let runs: Vec<OldRun> = (1..=70)
            .map(|id| OldRun {
                id,
                started_at: String::new(),
                pruned: false,
                orders: if id == 40 { 80_000 } else { 1_000 },
            })
            .collect();
        let refs: Vec<&OldRun> = runs.iter().collect();
        let b = batches(&refs);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), [32, 7, 1, 30]);
        assert_eq!(
            b.concat(),
            (1..=70).collect::<Vec<_>>(),
            "each once, in order"
        );
    }
}
