//! `failures list` and `failures close`: the open failed orders, as a
//! table for people (a header row, aligned columns, the detail cut to the
//! terminal's width), or whole as JSON or CSV; and closing those that will
//! never be fixed (kept, with who closed them and why).

use anyhow::Result;
use serde_json::{json, Value};

use crate::config::Config;
use crate::exit::{Exit, UsageError};
use crate::model::escape::escape_cell;
use crate::model::failure::{failure_label, parse_failure_label, FailureKey, FailureState};
use crate::model::run::Counts;
use crate::model::text::for_terminal;
use crate::model::ErrorCode;
use crate::store::{
    CloseResult, CloseSelection, Closing, FailureFilter, Failures, Store, StoredFailure,
};

use super::args::parse_code;

/// The stored failed orders still open, and closing those that will never be fixed
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// The open failed orders (those `reprocess` retries), oldest first, a header row first
    List {
        /// Only the failures of this run
        #[arg(long, value_name = "ID")]
        run: Option<i64>,
        /// Only the failures of this error code (repeatable)
        #[arg(long = "code", value_name = "CODE", value_parser = parse_code)]
        codes: Vec<ErrorCode>,
        /// Print the failures as a JSON array (the whole detail, and the source file and line)
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// Print the failures as CSV with the table's columns (the whole detail)
        #[arg(long)]
        csv: bool,
    },
    /// Close open failures that will not be retried (kept, with the reason and who closed them): by id, by code, or by order id
    Close {
        /// Failure ids, as the failed report and `failures list` show them (F12-345)
        #[arg(
            value_name = "ID",
            required_unless_present_any = ["codes", "orders"],
            conflicts_with_all = ["codes", "orders"]
        )]
        ids: Vec<String>,
        /// Every open failure of this error code (repeatable)
        #[arg(long = "code", value_name = "CODE", value_parser = parse_code, conflicts_with = "orders")]
        codes: Vec<ErrorCode>,
        /// With --code: only the failures of this run
        #[arg(long, value_name = "ID", requires = "codes")]
        run: Option<i64>,
        /// The open failure of this order id, whichever run holds it now (repeatable)
        #[arg(long = "order", value_name = "ORDER_ID")]
        orders: Vec<String>,
        /// Why they are closed (kept in the history; `runs show` prints it)
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
}

/// Which failures `failures close` closes, as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseTarget {
    /// Failure ids as the reports show them (`F12-345`).
    Ids(Vec<String>),
    /// Every open failure of these codes, of one run or of all.
    Codes {
        codes: Vec<ErrorCode>,
        run: Option<i64>,
    },
    /// The open failure of each of these order ids.
    Orders(Vec<String>),
}

/// How a list is printed: an aligned table for people, or whole values as
/// JSON or CSV for programs and spreadsheets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    Table,
    Json,
    Csv,
}

pub fn run(cfg: &Config, cmd: Command) -> Result<Exit> {
    match cmd {
        Command::List {
            run,
            codes,
            json,
            csv,
        } => {
            let format = match (json, csv) {
                (true, _) => ListFormat::Json,
                (_, true) => ListFormat::Csv,
                _ => ListFormat::Table,
            };
            list(cfg, &FailureFilter { run, codes }, format)
        }
        Command::Close {
            ids,
            codes,
            run,
            orders,
            reason,
        } => {
            let target = match (codes.is_empty(), orders.is_empty()) {
                (false, _) => CloseTarget::Codes { codes, run },
                (_, false) => CloseTarget::Orders(orders),
                _ => CloseTarget::Ids(ids),
            };
            close(cfg, &target, &reason)
        }
    }
}

const PAGE: usize = 1000;

/// The columns of the table and of `--csv`.
const COLUMNS: [&str; 5] = [
    "failure_id",
    "run",
    "order_id",
    "error_code",
    "error_detail",
];

fn failure_json(f: &StoredFailure) -> Value {
    let o = &f.order;
    json!({
        "failure_id": failure_label(f.key()),
        "run": f.run_id,
        "order_id": o.order_id,
        "error_code": o.code.as_str(),
        "error_detail": o.detail(),
        "source_file": o.source_file,
        "source_line": o.source_line,
    })
}

/// Every open failure the filter selects, oldest first, read a page at a time.
fn read_all(store: &mut dyn Store, filter: &FailureFilter) -> Result<Vec<StoredFailure>> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = store.open_failures(filter, after, PAGE)?;
        let done = page.len() < PAGE;
        after = page.last().map(StoredFailure::key).or(after);
        all.extend(page);
        if done {
            return Ok(all);
        }
    }
}

fn list(cfg: &Config, filter: &FailureFilter, format: ListFormat) -> Result<Exit> {
    let mut store = super::open_existing(cfg)?;
    if let Some(id) = filter.run {
        if store.run(id)?.is_none() {
            return Err(UsageError(format!("there is no run {id} in {}", store.name())).into());
        }
    }
    let all = read_all(&mut *store, filter)?;
    match format {
        ListFormat::Json => {
            super::print_json(&Value::Array(all.iter().map(failure_json).collect()))?
        }
        ListFormat::Csv => super::print(&csv_text(&all)?)?,
        ListFormat::Table => super::print(&table_text(&all, table_width()))?,
    }
    if !cfg.quiet {
        crate::log::info("failures_listed", &tally(&all));
    }
    Ok(Exit::Ok)
}

/// How many are listed, and of which codes, most frequent first.
fn tally(all: &[StoredFailure]) -> String {
    let mut counts = Counts::default();
    for f in all {
        counts.count_failure(f.order.code);
    }
    let mut codes: Vec<_> = counts.by_code().filter(|(_, n)| *n > 0).collect();
    codes.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    let codes: Vec<String> = codes
        .iter()
        .map(|(c, n)| format!("{} {n}", c.as_str()))
        .collect();
    if codes.is_empty() {
        return "0 open failed orders".into();
    }
    format!("{} open failed orders ({})", all.len(), codes.join(", "))
}

/// The cells of one failure, in [`COLUMNS`] order.
fn cells(f: &StoredFailure) -> [String; 5] {
    let o = &f.order;
    [
        failure_label(f.key()),
        f.run_id.to_string(),
        o.order_id.clone().unwrap_or_default(),
        o.code.as_str().to_string(),
        o.detail().into_owned(),
    ]
}

/// A valid CSV document with the table's columns and whole values; a cell a
/// spreadsheet would take for a formula is escaped as in the reports.
fn csv_text(all: &[StoredFailure]) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(COLUMNS)?;
    for f in all {
        w.write_record(cells(f).iter().map(|c| escape_cell(c).into_owned()))?;
    }
    Ok(String::from_utf8(
        w.into_inner().map_err(|e| e.into_error())?,
    )?)
}

/// The table: a header row, aligned columns, the detail cut to fit `width`
/// (whole when there is no width to fit).
fn table_text(all: &[StoredFailure], width: Option<usize>) -> String {
    let mut rows = vec![COLUMNS.map(String::from).to_vec()];
    for f in all {
        let mut row = cells(f).map(|c| for_terminal(&c).into_owned());
        if row[2].is_empty() {
            row[2] = "-".into();
        }
        rows.push(row.to_vec());
    }
    if let Some(width) = width {
        // What the columns before the detail take, their gaps included.
        let before: usize = (0..COLUMNS.len() - 1)
            .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0) + 2)
            .sum();
        // A terminal too narrow for the rest still shows some of the detail.
        let room = width.saturating_sub(before).max(16);
        for r in &mut rows[1..] {
            r[4] = shorten(&r[4], room);
        }
    }
    super::table(&rows, &[false, true, false, false, false])
}

/// `text` in at most `max` characters, ending with '…' when it was cut.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// The width the table is fitted to: the terminal's, when standard output
/// is one; else `$COLUMNS` when set; else none (whole details, for a pipe).
fn table_width() -> Option<usize> {
    use std::io::IsTerminal;
    let out = std::io::stdout();
    if out.is_terminal() {
        if let Ok(size) = rustix::termios::tcgetwinsize(&out) {
            if size.ws_col > 0 {
                return Some(usize::from(size.ws_col));
            }
        }
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
}

/// The user closing failures, as the history records it.
fn who() -> String {
    format!(
        "{}@{}",
        crate::identity::user_name(),
        crate::identity::host_name()
    )
}

fn close(cfg: &Config, target: &CloseTarget, reason: &str) -> Result<Exit> {
    if reason.trim().is_empty() {
        return Err(UsageError("--reason must say why these failures are closed".into()).into());
    }
    let sel = selection(target)?;
    let mut store = super::open(cfg)?;
    if let CloseSelection::Codes(FailureFilter { run: Some(id), .. }) = &sel {
        if store.run(*id)?.is_none() {
            return Err(UsageError(format!("there is no run {id} in {}", store.name())).into());
        }
    }
    // All or nothing, decided by the store while it holds the failures: a
    // run that settled one while this command waited for it wins.
    let closing = store.close_failures(
        &sel,
        reason.trim(),
        &who(),
        crate::model::clock::Timestamp::now(),
    )?;
    if !closing.closed() {
        return Err(UsageError(format!(
            "nothing was closed: {} (only open failures can be closed; see `orderbatch failures list`)",
            problems(&closing).join(", ")
        ))
        .into());
    }
    if !cfg.quiet {
        crate::log::info("failures_closed", &closed_message(&closing, &sel));
    }
    Ok(Exit::Ok)
}

/// The selection the store decides on, from the command line's.
fn selection(target: &CloseTarget) -> Result<CloseSelection> {
    Ok(match target {
        CloseTarget::Ids(ids) => {
            let mut keys = Vec::with_capacity(ids.len());
            for id in ids {
                let key = parse_failure_label(id.trim()).ok_or_else(|| {
                    UsageError(format!(
                        "{} is not a failure id: failure ids look like F12-345 (see `orderbatch failures list`)",
                        for_terminal(id)
                    ))
                })?;
                keys.push(key);
            }
            keys.sort_unstable();
            keys.dedup();
            CloseSelection::Keys(keys)
        }
        CloseTarget::Codes { codes, run } => CloseSelection::Codes(FailureFilter {
            run: *run,
            codes: codes.clone(),
        }),
        CloseTarget::Orders(ids) => {
            let mut ids: Vec<String> = ids.iter().map(|i| i.trim().to_string()).collect();
            ids.sort_unstable();
            ids.dedup();
            CloseSelection::Orders(ids)
        }
    })
}

/// Why nothing was closed, one phrase per failure or order that could not be.
fn problems(closing: &Closing) -> Vec<String> {
    let mut out: Vec<String> = closing
        .results
        .iter()
        .filter_map(|(key, r)| {
            let label = failure_label(*key);
            match r {
                CloseResult::Closed => None,
                CloseResult::NotOpen(FailureState::Superseded) => Some(superseded(closing, *key)),
                CloseResult::NotOpen(state) => Some(format!("{label} is {}", state.as_str())),
                CloseResult::Missing => Some(format!("{label} does not exist")),
            }
        })
        .collect();
    for (order, newest) in &closing.without_open {
        let order = for_terminal(order);
        out.push(match newest {
            None => format!("order {order} has no failure"),
            Some((key, state)) => format!(
                "order {order} has no open failure (its newest, {}, is {})",
                failure_label(*key),
                state.as_str()
            ),
        });
    }
    out
}

/// A superseded failure named with the one that replaced it, so that the
/// operator can close that one.
fn superseded(closing: &Closing, key: FailureKey) -> String {
    let label = failure_label(key);
    match closing.replaced_by.iter().find(|(k, _, _)| *k == key) {
        Some((_, newer, FailureState::Open)) => format!(
            "{label} is superseded by {}, which is open: close that one",
            failure_label(*newer)
        ),
        Some((_, newer, state)) => format!(
            "{label} is superseded by {}, which is {}",
            failure_label(*newer),
            state.as_str()
        ),
        None => format!("{label} is superseded"),
    }
}

/// What was closed: how many, and which (the first few), or that nothing
/// of those codes was open.
fn closed_message(closing: &Closing, sel: &CloseSelection) -> String {
    const SHOWN: usize = 10;
    let n = closing.results.len();
    if let (0, CloseSelection::Codes(f)) = (n, sel) {
        let codes = f.code_names().unwrap_or_default().join(" or ");
        let run = f.run.map(|r| format!(" in run {r}")).unwrap_or_default();
        return format!("closed 0 failed orders: no failure of {codes}{run} is open");
    }
    let mut ids: Vec<String> = closing
        .results
        .iter()
        .take(SHOWN)
        .map(|(k, _)| failure_label(*k))
        .collect();
    if n > SHOWN {
        ids.push(format!("and {} more", n - SHOWN));
    }
    format!("closed {n} failed orders: {}", ids.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_detail_is_cut_to_the_room_left_and_says_so() {
        assert_eq!(shorten("abcdef", 6), "abcdef");
        assert_eq!(shorten("abcdefg", 6), "abcde…");
        assert_eq!(shorten("ééééé", 3), "éé…");
    }
}
