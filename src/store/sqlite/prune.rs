//! `runs prune` on SQLite: a batch of runs forgotten in one write
//! transaction (BEGIN IMMEDIATE: runs wait for it, as for any writer, and
//! it is short), and the freed pages given back to the file system.

use rusqlite::{params, Connection};

use super::super::{carried_sums, Compacted, OldRun, PruneBatch, Pruned, Result};
use super::queries;
use crate::model::clock::Timestamp;
use crate::model::failure::FailureState;

/// The batch's runs, as a JSON array in ?1.
const RUNS: &str = "(SELECT value FROM json_each(?1))";

/// The ledger entries a batch compacts: its runs' (?1), and with the sweep
/// (?2) those made outside any run before the date (?3). Earlier carried
/// entries of the same skus are compacted with them (see [`ledger`]).
const COMPACTED: &str = "run_id IN (SELECT value FROM json_each(?1))
     OR (?2 AND run_id IS NULL AND reason IN ('load', 'receive') AND at < ?3)";

/// Every entry a batch replaces by carried-forward entries.
fn ledger() -> String {
    format!(
        "({COMPACTED}) OR (reason = 'carried' AND sku IN (SELECT sku FROM stock_ledger WHERE {COMPACTED}))"
    )
}

/// An applied order reduced to what a re-run needs: its id, content
/// fingerprint and run (the key and the columns a claim reads). Emptied
/// columns cost SQLite a header byte each; the customer's e-mail and the
/// payment reference are gone with them.
const REDUCE_ORDERS: &str = "UPDATE orders SET source_file = '', source_line = 0, placed_at = '',
     customer_email = '', currency = '', payment_method = '', payment_ref = '', payment_amount = 0,
     total = 0, lines = 0, units = 0, items = ''
     WHERE run_id IN (SELECT value FROM json_each(?1)) AND items <> ''";

/// Settled failure records of runs pruned earlier (they were open then).
const SETTLED_OF_PRUNED: &str =
    "state <> 'open' AND run_id IN (SELECT id FROM runs WHERE pruned_at IS NOT NULL)";

pub(super) fn old_runs(c: &Connection, db: &str, before: Timestamp) -> Result<Vec<OldRun>> {
    let before = before.to_rfc3339();
    queries::all(
        c,
        db,
        "SELECT id, started_at, pruned_at IS NOT NULL, orders FROM runs
         WHERE status <> 'running' AND coalesce(finished_at, started_at) < ?1 ORDER BY id",
        [before],
        |r| {
            Ok(OldRun {
                id: r.get(0)?,
                started_at: r.get(1)?,
                pruned: r.get(2)?,
                orders: r.get::<_, i64>(3)?.max(0) as u64,
            })
        },
    )
}

/// The batch's runs still to prune, asked again inside the transaction.
fn still_to_prune(c: &Connection, runs: &[i64]) -> rusqlite::Result<String> {
    let ids = serde_json::to_string(runs).unwrap_or_else(|_| "[]".into());
    let mut st = c.prepare(&format!(
        "SELECT id FROM runs WHERE id IN {RUNS} AND pruned_at IS NULL AND status <> 'running' ORDER BY id"
    ))?;
    let live: Vec<i64> = st
        .query_map([ids], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(serde_json::to_string(&live).unwrap_or_else(|_| "[]".into()))
}

/// A compacted entry's columns, as [`Compacted`] holds them.
const ENTRY: &str = "sku, delta, at, reason = 'carried'";

/// The ledger entries a statement over [`ledger`] gives.
fn entries(
    c: &Connection,
    sql: &str,
    ids: &str,
    b: &PruneBatch<'_>,
) -> rusqlite::Result<Vec<Compacted>> {
    let mut st = c.prepare(sql)?;
    let rows = st.query_map(params![ids, b.sweep, b.before.to_rfc3339()], |r| {
        Ok(Compacted {
            sku: r.get(0)?,
            delta: r.get(1)?,
            at: r.get(2)?,
            carried: r.get(3)?,
        })
    })?;
    rows.collect()
}

fn count(c: &Connection, sql: &str, p: impl rusqlite::Params) -> rusqlite::Result<u64> {
    Ok(c.query_row(sql, p, |r| r.get::<_, i64>(0))?.max(0) as u64)
}

/// Prune the batch inside the caller's write transaction.
pub(super) fn apply(c: &Connection, b: &PruneBatch<'_>) -> rusqlite::Result<Pruned> {
    let ids = still_to_prune(c, b.runs)?;
    let open = FailureState::Open.as_str();
    let mut p = Pruned {
        runs: count(c, "SELECT count(*) FROM json_each(?1)", [&ids])?,
        skips: c.execute(
            &format!("DELETE FROM run_skips WHERE run_id IN {RUNS}"),
            [&ids],
        )? as u64,
        failures: c.execute(
            &format!("DELETE FROM failed_orders WHERE run_id IN {RUNS} AND state <> ?2"),
            params![ids, open],
        )? as u64,
        open_kept: count(
            c,
            &format!("SELECT count(*) FROM failed_orders WHERE run_id IN {RUNS} AND state = ?2"),
            params![ids, open],
        )?,
        ..Pruned::default()
    };
    if b.sweep {
        p.failures += c.execute(
            &format!("DELETE FROM failed_orders WHERE {SETTLED_OF_PRUNED}"),
            [],
        )? as u64;
    }
    let sql = format!(
        "DELETE FROM stock_ledger WHERE {} RETURNING {ENTRY}",
        ledger()
    );
    let gone = entries(c, &sql, &ids, b)?;
    p.count_ledger(&gone);
    let sums = carried_sums(&gone);
    let mut add = c.prepare_cached(
        "INSERT INTO stock_ledger (sku, run_id, reason, delta, at, source) VALUES (?1, NULL, 'carried', ?2, ?3, ?4)",
    )?;
    let source = format!("runs prune --before {}", b.before);
    for c in &sums {
        add.execute(params![c.sku, c.sum, c.at, source])?;
    }
    p.orders = c.execute(REDUCE_ORDERS, [&ids])? as u64;
    c.execute(
        &format!("UPDATE runs SET pruned_at = ?2 WHERE id IN {RUNS}"),
        params![ids, b.at.to_rfc3339()],
    )?;
    Ok(p)
}

/// What [`apply`] would do, counted in one read transaction.
pub(super) fn preview(c: &Connection, b: &PruneBatch<'_>) -> rusqlite::Result<Pruned> {
    let ids = still_to_prune(c, b.runs)?;
    let open = FailureState::Open.as_str();
    let mut p = Pruned {
        runs: count(c, "SELECT count(*) FROM json_each(?1)", [&ids])?,
        skips: count(
            c,
            &format!("SELECT count(*) FROM run_skips WHERE run_id IN {RUNS}"),
            [&ids],
        )?,
        failures: count(
            c,
            &format!("SELECT count(*) FROM failed_orders WHERE run_id IN {RUNS} AND state <> ?2"),
            params![ids, open],
        )?,
        open_kept: count(
            c,
            &format!("SELECT count(*) FROM failed_orders WHERE run_id IN {RUNS} AND state = ?2"),
            params![ids, open],
        )?,
        orders: count(
            c,
            &format!("SELECT count(*) FROM orders WHERE run_id IN {RUNS} AND items <> ''"),
            [&ids],
        )?,
        ..Pruned::default()
    };
    if b.sweep {
        p.failures += count(
            c,
            &format!("SELECT count(*) FROM failed_orders WHERE {SETTLED_OF_PRUNED}"),
            [],
        )?;
    }
    let sql = format!("SELECT {ENTRY} FROM stock_ledger WHERE {}", ledger());
    p.count_ledger(&entries(c, &sql, &ids, b)?);
    Ok(p)
}

/// The database file and its WAL, in bytes.
pub(super) fn file_size(path: &str) -> u64 {
    [path.to_string(), format!("{path}-wal")]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}
