//! `runs prune` on PostgreSQL, safe beside running runs from any host. A
//! batch of runs is forgotten in one short transaction that takes, in this
//! order: the prune lock (one prune at a time: the carried-forward entries
//! of a sku stay one), the batch's history rows (finished runs nobody else
//! writes), their skip records (nobody else's), their settled failure
//! records in key order (the order runs and `failures close` hold failures
//! in; open ones are never touched), their ledger entries and the earlier
//! carried entries (only prunes write those), their applied orders. It never
//! locks stock, the catalog or an open failure, so a run applying orders
//! never waits for it, but for a claim of an old order id the batch is
//! reducing (a moment), and it waits for a run only where that run holds a
//! settled failure it names (a fed-back row): never both ways. The space is
//! left to autovacuum.

use postgres::types::ToSql;
use postgres::{Client, GenericClient, Transaction};

use super::super::{carried_sums, Compacted, OldRun, PruneBatch, Pruned, Result};
use super::Db;
use crate::model::clock::Timestamp;
use crate::model::failure::FailureState;

/// One prune at a time (a transaction-level advisory lock).
const PRUNE_LOCK: i64 = 0x6f62_6361_7400_0003;

/// The ledger entries a batch compacts: its runs' ($1), and with the sweep
/// ($2) those made outside any run before the date ($3).
const COMPACTED: &str =
    "run_id = ANY($1) OR ($2 AND run_id IS NULL AND reason IN ('load', 'receive') AND at < $3)";

/// Every entry a batch replaces by carried-forward entries: those, and the
/// earlier carried entries of the same skus.
fn ledger() -> String {
    format!(
        "({COMPACTED}) OR (reason = 'carried' AND sku IN (SELECT sku FROM stock_ledger WHERE {COMPACTED}))"
    )
}

/// An applied order reduced to what a re-run needs: its id, content
/// fingerprint and run.
const REDUCE_ORDERS: &str = "UPDATE orders SET source_file = '', source_line = 0, placed_at = '',
     customer_email = '', currency = '', payment_method = '', payment_ref = '', payment_amount = 0,
     total = 0, lines = 0, units = 0, items = ''
     WHERE run_id = ANY($1) AND items <> ''";

/// Settled failure records of runs pruned earlier (they were open then).
const SETTLED_OF_PRUNED: &str =
    "state <> 'open' AND run_id IN (SELECT id FROM runs WHERE pruned_at IS NOT NULL)";

pub(super) fn old_runs(c: &mut Client, db: &Db, before: Timestamp) -> Result<Vec<OldRun>> {
    let before = before.to_rfc3339();
    let rows = c
        .query(
            "SELECT id, started_at, pruned_at IS NOT NULL, orders FROM runs
             WHERE status <> 'running' AND coalesce(finished_at, started_at) < $1 ORDER BY id",
            &[&before],
        )
        .map_err(|e| db.err(e))?;
    Ok(rows
        .iter()
        .map(|r| OldRun {
            id: r.get(0),
            started_at: r.get(1),
            pruned: r.get(2),
            orders: r.get::<_, i64>(3).max(0) as u64,
        })
        .collect())
}

/// One batch in a transaction of its own: committed, or (dry) counted in a
/// read-only snapshot and left.
pub(super) fn batch(c: &mut Client, db: &Db, b: &PruneBatch<'_>) -> Result<Pruned> {
    let mut tx = c.transaction().map_err(|e| db.err(e))?;
    if b.dry {
        tx.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .map_err(|e| db.err(e))?;
        return preview(&mut tx, db, b);
    }
    let p = apply(&mut tx, db, b)?;
    tx.commit().map_err(|e| db.err(e))?;
    Ok(p)
}

/// A compacted entry's columns, as [`Compacted`] holds them.
const ENTRY: &str = "sku, delta, at, reason = 'carried'";

/// The ledger entries a statement over [`ledger`] gives.
fn entries(
    tx: &mut Transaction<'_>,
    db: &Db,
    sql: &str,
    ids: &[i64],
    b: &PruneBatch<'_>,
) -> Result<Vec<Compacted>> {
    let rows = tx
        .query(sql, &[&ids, &b.sweep, &b.before.to_rfc3339()])
        .map_err(|e| db.err(e))?;
    Ok(rows
        .iter()
        .map(|r| Compacted {
            sku: r.get(0),
            delta: r.get(1),
            at: r.get(2),
            carried: r.get(3),
        })
        .collect())
}

fn count(tx: &mut Transaction<'_>, db: &Db, sql: &str, p: &[&(dyn ToSql + Sync)]) -> Result<u64> {
    let n: i64 = tx.query_one(sql, p).map_err(|e| db.err(e))?.get(0);
    Ok(n.max(0) as u64)
}

fn execute(tx: &mut Transaction<'_>, db: &Db, sql: &str, p: &[&(dyn ToSql + Sync)]) -> Result<u64> {
    tx.execute(sql, p).map_err(|e| db.err(e))
}

/// The batch's runs still to prune, asked again (and, writing, locked).
fn still_to_prune(tx: &mut Transaction<'_>, db: &Db, b: &PruneBatch<'_>) -> Result<Vec<i64>> {
    let lock = if b.dry { "" } else { " FOR UPDATE" };
    let sql = format!(
        "SELECT id FROM runs WHERE id = ANY($1) AND pruned_at IS NULL AND status <> 'running' ORDER BY id{lock}"
    );
    let rows = tx.query(&sql, &[&b.runs]).map_err(|e| db.err(e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

fn apply(tx: &mut Transaction<'_>, db: &Db, b: &PruneBatch<'_>) -> Result<Pruned> {
    execute(tx, db, "SELECT pg_advisory_xact_lock($1)", &[&PRUNE_LOCK])?;
    let ids = still_to_prune(tx, db, b)?;
    let open = FailureState::Open.as_str();
    let mut p = Pruned {
        runs: ids.len() as u64,
        skips: execute(
            tx,
            db,
            "DELETE FROM run_skips WHERE run_id = ANY($1)",
            &[&ids],
        )?,
        failures: execute(
            tx,
            db,
            "DELETE FROM failed_orders WHERE id IN (
                 SELECT id FROM failed_orders WHERE run_id = ANY($1) AND state <> $2
                 ORDER BY run_id, run_seq FOR UPDATE)",
            &[&ids, &open],
        )?,
        ..Pruned::default()
    };
    if b.sweep {
        let sql = format!(
            "DELETE FROM failed_orders WHERE id IN (
                 SELECT id FROM failed_orders WHERE {SETTLED_OF_PRUNED} ORDER BY run_id, run_seq FOR UPDATE)"
        );
        p.failures += execute(tx, db, &sql, &[])?;
    }
    p.open_kept = count(
        tx,
        db,
        "SELECT count(*) FROM failed_orders WHERE run_id = ANY($1) AND state = $2",
        &[&ids, &open],
    )?;
    let sql = format!(
        "DELETE FROM stock_ledger WHERE {} RETURNING {ENTRY}",
        ledger()
    );
    let gone = entries(tx, db, &sql, &ids, b)?;
    p.count_ledger(&gone);
    let sums = carried_sums(&gone);
    let skus: Vec<&str> = sums.iter().map(|c| c.sku.as_str()).collect();
    let deltas: Vec<i64> = sums.iter().map(|c| c.sum).collect();
    let ats: Vec<&str> = sums.iter().map(|c| c.at.as_str()).collect();
    let source = format!("runs prune --before {}", b.before);
    execute(
        tx,
        db,
        "INSERT INTO stock_ledger (sku, run_id, reason, delta, at, source)
         SELECT s, NULL, 'carried', d, a, $4 FROM unnest($1::text[], $2::bigint[], $3::text[]) AS u(s, d, a)",
        &[&skus, &deltas, &ats, &source],
    )?;
    p.orders = execute(tx, db, REDUCE_ORDERS, &[&ids])?;
    execute(
        tx,
        db,
        "UPDATE runs SET pruned_at = $2 WHERE id = ANY($1)",
        &[&ids, &b.at.to_rfc3339()],
    )?;
    Ok(p)
}

/// What [`apply`] would do, counted.
fn preview(tx: &mut Transaction<'_>, db: &Db, b: &PruneBatch<'_>) -> Result<Pruned> {
    let ids = still_to_prune(tx, db, b)?;
    let open = FailureState::Open.as_str();
    let by_state = "SELECT count(*) FROM failed_orders WHERE run_id = ANY($1) AND state ";
    let mut p = Pruned {
        runs: ids.len() as u64,
        skips: count(
            tx,
            db,
            "SELECT count(*) FROM run_skips WHERE run_id = ANY($1)",
            &[&ids],
        )?,
        failures: count(tx, db, &format!("{by_state}<> $2"), &[&ids, &open])?,
        open_kept: count(tx, db, &format!("{by_state}= $2"), &[&ids, &open])?,
        orders: count(
            tx,
            db,
            "SELECT count(*) FROM orders WHERE run_id = ANY($1) AND items <> ''",
            &[&ids],
        )?,
        ..Pruned::default()
    };
    if b.sweep {
        let sql = format!("SELECT count(*) FROM failed_orders WHERE {SETTLED_OF_PRUNED}");
        p.failures += count(tx, db, &sql, &[])?;
    }
    let sql = format!("SELECT {ENTRY} FROM stock_ledger WHERE {}", ledger());
    p.count_ledger(&entries(tx, db, &sql, &ids, b)?);
    Ok(p)
}

pub(super) fn pruned_at(c: &mut impl GenericClient, db: &Db, id: i64) -> Result<Option<String>> {
    let row = c
        .query_opt("SELECT pruned_at FROM runs WHERE id = $1", &[&id])
        .map_err(|e| db.err(e))?;
    Ok(row.and_then(|r| r.get(0)))
}
