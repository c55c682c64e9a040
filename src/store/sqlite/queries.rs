//! Reads and row mappings shared by the store and its transactions (both
//! work on a `Connection`; a transaction is one with BEGIN issued).

use rusqlite::{params, Connection, Params, Row};

use super::super::rows::{RawRun, StoredRow};
use super::super::{
    ClosedBy, FailureFilter, Fault, Queries, Resolutions, Result, RunFilter, StoredFailure,
};
use super::store_err;
use crate::model::failure::{FailureKey, FailureState};
use crate::model::order::{AcceptedRow, Product, Status};
use crate::model::run::{RunInput, RunRecord};

/// Every row of a query, each turned into a `T`.
pub(super) fn all<T, P: Params>(
    c: &Connection,
    db: &str,
    sql: &str,
    params: P,
    row: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let run = || -> rusqlite::Result<Vec<T>> {
        let mut st = c.prepare_cached(sql)?;
        let rows = st.query_map(params, row)?;
        rows.collect()
    };
    run().map_err(|e| store_err(db, e))
}

/// The reads of a connection (a store's, or one inside a transaction), for
/// [`ReadThrough`].
pub(crate) struct Reads<'a> {
    pub conn: &'a Connection,
    pub db: &'a str,
}

impl Queries for Reads<'_> {
    fn products(&mut self) -> Result<Vec<Product>> {
        products(self.conn, self.db)
    }

    fn failed_of_run(
        &mut self,
        run_id: i64,
        each: &mut dyn FnMut(StoredFailure) -> Result<()>,
    ) -> Result<()> {
        failed_of_run(self.conn, self.db, run_id, each)
    }

    fn accepted_of_run(
        &mut self,
        run_id: i64,
        each: &mut dyn FnMut(AcceptedRow) -> Result<()>,
    ) -> Result<()> {
        accepted_of_run(self.conn, self.db, run_id, each)
    }

    fn open_failures(
        &mut self,
        filter: &FailureFilter,
        after: Option<FailureKey>,
        limit: usize,
    ) -> Result<Vec<StoredFailure>> {
        open_failures(self.conn, self.db, filter, after, limit)
    }

    fn failures_by_key(&mut self, keys: &[FailureKey]) -> Result<Vec<StoredFailure>> {
        failures_by_key(self.conn, self.db, keys)
    }

    fn catalog_version(&mut self) -> Result<i64> {
        catalog_version(self.conn, self.db)
    }
}

pub(super) fn products(c: &Connection, db: &str) -> Result<Vec<Product>> {
    all(
        c,
        db,
        "SELECT sku, name, unit_price, currency, on_hand FROM products ORDER BY sku",
        [],
        |r| {
            Ok(Product {
                sku: r.get(0)?,
                name: r.get(1)?,
                unit_price: r.get(2)?,
                currency: r.get(3)?,
                on_hand: r.get(4)?,
            })
        },
    )
}

pub(super) fn catalog_version(c: &Connection, db: &str) -> Result<i64> {
    c.query_row(
        "SELECT coalesce(max(version), 0) FROM catalog_version",
        [],
        |r| r.get(0),
    )
    .map_err(|e| store_err(db, e))
}

pub(super) const FAILURE_COLUMNS: &str =
    "id, run_id, state, order_id, error_code, error_detail, source_file, source_line, body, run_seq";

/// A failure row in [`FAILURE_COLUMNS`] order.
pub(super) fn failure_from_row(db: &str, r: &Row<'_>) -> Result<StoredFailure> {
    let f = (|| -> rusqlite::Result<StoredRow> {
        Ok(StoredRow {
            id: r.get(0)?,
            run_id: r.get(1)?,
            state: r.get(2)?,
            order_id: r.get(3)?,
            code: r.get(4)?,
            detail: r.get(5)?,
            source_file: r.get(6)?,
            source_line: r.get(7)?,
            body: r.get(8)?,
            seq: r.get(9)?,
        })
    })()
    .map_err(|e| store_err(db, e))?;
    f.into_failure(db)
}

fn each_failure<P: Params>(
    c: &Connection,
    db: &str,
    sql: &str,
    params: P,
    each: &mut dyn FnMut(StoredFailure) -> Result<()>,
) -> Result<()> {
    let mut st = c.prepare(sql).map_err(|e| store_err(db, e))?;
    let mut rows = st.query(params).map_err(|e| store_err(db, e))?;
    while let Some(r) = rows.next().map_err(|e| store_err(db, e))? {
        each(failure_from_row(db, r)?)?;
    }
    Ok(())
}

pub(super) fn failed_of_run(
    c: &Connection,
    db: &str,
    run_id: i64,
    each: &mut dyn FnMut(StoredFailure) -> Result<()>,
) -> Result<()> {
    let sql =
        format!("SELECT {FAILURE_COLUMNS} FROM failed_orders WHERE run_id = ?1 ORDER BY run_seq");
    each_failure(c, db, &sql, [run_id], each)
}

pub(super) fn open_failures(
    c: &Connection,
    db: &str,
    filter: &FailureFilter,
    after: Option<FailureKey>,
    limit: usize,
) -> Result<Vec<StoredFailure>> {
    let sql = format!(
        "SELECT {FAILURE_COLUMNS} FROM failed_orders
         WHERE state = ?1 AND (run_id, run_seq) > (?2, ?3) AND (?4 IS NULL OR run_id = ?4)
           AND (?6 IS NULL OR error_code IN (SELECT value FROM json_each(?6)))
         ORDER BY run_id, run_seq LIMIT ?5"
    );
    let mut out = Vec::new();
    let open = FailureState::Open.as_str();
    let (run, seq) = after.map_or((i64::MIN, i64::MIN), |k| (k.run, k.seq as i64));
    let codes = filter
        .code_names()
        .map(|c| serde_json::to_string(&c).unwrap_or_else(|_| "[]".into()));
    each_failure(
        c,
        db,
        &sql,
        params![open, run, seq, filter.run, limit as i64, codes],
        &mut |f| {
            out.push(f);
            Ok(())
        },
    )?;
    Ok(out)
}

pub(super) fn failures_by_key(
    c: &Connection,
    db: &str,
    keys: &[FailureKey],
) -> Result<Vec<StoredFailure>> {
    // A write transaction holds the whole database: nothing to lock row by row.
    let sql =
        format!("SELECT {FAILURE_COLUMNS} FROM failed_orders WHERE run_id = ?1 AND run_seq = ?2");
    let mut out = Vec::new();
    for k in keys {
        each_failure(c, db, &sql, params![k.run, k.seq as i64], &mut |f| {
            out.push(f);
            Ok(())
        })?;
    }
    out.sort_by_key(|f| f.key());
    out.dedup_by_key(|f| f.key());
    Ok(out)
}

/// The open failures of the filter's run and codes and of these order ids
/// (any when empty), in key order. (A write transaction holds the whole
/// database: nothing to lock row by row.)
pub(super) fn open_of(
    c: &Connection,
    db: &str,
    filter: &FailureFilter,
    order_ids: &[String],
) -> Result<Vec<StoredFailure>> {
    let sql = format!(
        "SELECT {FAILURE_COLUMNS} FROM failed_orders
         WHERE state = ?1 AND (?2 IS NULL OR run_id = ?2)
           AND (?3 IS NULL OR error_code IN (SELECT value FROM json_each(?3)))
           AND (?4 IS NULL OR order_id IN (SELECT value FROM json_each(?4)))
         ORDER BY run_id, run_seq"
    );
    let json = |v: Vec<&str>| serde_json::to_string(&v).unwrap_or_else(|_| "[]".into());
    let codes = filter.code_names().map(json);
    let orders =
        (!order_ids.is_empty()).then(|| json(order_ids.iter().map(String::as_str).collect()));
    let mut out = Vec::new();
    let open = FailureState::Open.as_str();
    each_failure(
        c,
        db,
        &sql,
        params![open, filter.run, codes, orders],
        &mut |f| {
            out.push(f);
            Ok(())
        },
    )?;
    Ok(out)
}

/// The newest failure record of each order id that is not final.
pub(super) fn newest_failures(
    c: &Connection,
    db: &str,
    order_ids: &[String],
) -> Result<Vec<StoredFailure>> {
    let sql = format!(
        "SELECT {FAILURE_COLUMNS} FROM (
             SELECT *, row_number() OVER (PARTITION BY order_id ORDER BY run_id DESC, run_seq DESC) AS n
             FROM failed_orders
             WHERE order_id IN (SELECT value FROM json_each(?1)) AND state <> ?2)
         WHERE n = 1 ORDER BY run_id, run_seq"
    );
    let ids = serde_json::to_string(order_ids).unwrap_or_else(|_| "[]".into());
    let mut out = Vec::new();
    each_failure(
        c,
        db,
        &sql,
        params![ids, FailureState::Final.as_str()],
        &mut |f| {
            out.push(f);
            Ok(())
        },
    )?;
    Ok(out)
}

pub(super) fn accepted_of_run(
    c: &Connection,
    db: &str,
    run_id: i64,
    each: &mut dyn FnMut(AcceptedRow) -> Result<()>,
) -> Result<()> {
    let sql = "SELECT run_seq, order_id, 0, source_file, source_line, placed_at, customer_email, currency, lines, units, total, payment_method
               FROM orders WHERE run_id = ?1 AND items <> ''
               UNION ALL
               SELECT run_seq, order_id, 1, source_file, source_line, placed_at, customer_email, currency, lines, units, total, payment_method
               FROM run_skips WHERE run_id = ?1
               ORDER BY 1";
    let mut st = c.prepare(sql).map_err(|e| store_err(db, e))?;
    let mut rows = st.query([run_id]).map_err(|e| store_err(db, e))?;
    while let Some(r) = rows.next().map_err(|e| store_err(db, e))? {
        let row = (|| -> rusqlite::Result<AcceptedRow> {
            Ok(AcceptedRow {
                order_id: r.get(1)?,
                status: if r.get::<_, i64>(2)? == 0 {
                    Status::Accepted
                } else {
                    Status::Skipped
                },
                source_file: r.get(3)?,
                source_line: r.get::<_, i64>(4)? as u64,
                placed_at: r.get(5)?,
                customer_email: r.get(6)?,
                currency: r.get(7)?,
                lines: r.get::<_, i64>(8)? as u64,
                units: r.get(9)?,
                total: r.get(10)?,
                payment_method: r.get(11)?,
            })
        })()
        .map_err(|e| store_err(db, e))?;
        each(row)?;
    }
    Ok(())
}

const RUN_COLUMNS: &str = "id, command, status, started_at, finished_at, duration_ms, orders, accepted, \
     skipped, failed, lines, units, errors_by_code, retried_runs, report_format, message, host, pid";

/// Runs, newest first (one when `id` is given; else of the stored statuses
/// and up to the limit the filter gives), each with its pid.
pub(super) fn runs(
    c: &Connection,
    db: &str,
    id: Option<i64>,
    filter: &RunFilter,
) -> Result<Vec<(RunRecord, Option<i64>)>> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM runs
         WHERE (?1 IS NULL OR id = ?1) AND (?2 IS NULL OR status IN (SELECT value FROM json_each(?2)))
         ORDER BY id DESC LIMIT ?3"
    );
    let statuses = filter
        .stored()
        .map(|s| serde_json::to_string(&s).unwrap_or_else(|_| "[]".into()));
    let limit = filter.query_limit().unwrap_or(-1);
    let raw = all(c, db, &sql, params![id, statuses, limit], |r| {
        Ok((
            RawRun {
                id: r.get(0)?,
                command: r.get(1)?,
                status: r.get(2)?,
                started_at: r.get(3)?,
                finished_at: r.get(4)?,
                duration_ms: r.get(5)?,
                counts: [
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                    r.get(10)?,
                    r.get(11)?,
                ],
                errors_by_code: r.get(12)?,
                retried_runs: r.get(13)?,
                report_format: r.get(14)?,
                message: r.get(15)?,
                host: r.get(16)?,
            },
            r.get::<_, Option<i64>>(17)?,
        ))
    })?;
    let mut out = Vec::with_capacity(raw.len());
    for (r, pid) in raw {
        let inputs = inputs_of(c, db, r.id)?;
        out.push((r.into_record(db, inputs)?, pid));
    }
    Ok(out)
}

fn inputs_of(c: &Connection, db: &str, run_id: i64) -> Result<Vec<RunInput>> {
    all(
        c,
        db,
        "SELECT path, format, sha256 FROM run_inputs WHERE run_id = ?1 ORDER BY seq",
        [run_id],
        |r| {
            Ok(RunInput {
                path: r.get(0)?,
                format: r.get(1)?,
                sha256: r.get(2)?,
                encoding: None,
            })
        },
    )
}

/// The history row's final state, and the run's inputs.
pub(super) fn finish_run(c: &Connection, run: &RunRecord) -> rusqlite::Result<()> {
    let s = &run.summary;
    let k = &s.counts;
    let by_code: serde_json::Map<String, serde_json::Value> = k
        .by_code()
        .map(|(code, n)| (code.as_str().to_string(), n.into()))
        .collect();
    c.execute(
        "UPDATE runs SET status = ?2, finished_at = ?3, duration_ms = ?4, orders = ?5, accepted = ?6,
         skipped = ?7, failed = ?8, lines = ?9, units = ?10, errors_by_code = ?11, retried_runs = ?12,
         summary = ?13, message = ?14 WHERE id = ?1",
        params![
            s.run_id,
            s.status.as_str(),
            s.finished_at,
            s.duration_ms as i64,
            k.orders as i64,
            k.accepted as i64,
            k.skipped as i64,
            k.failed as i64,
            k.lines as i64,
            k.units,
            serde_json::Value::Object(by_code).to_string(),
            serde_json::to_string(&run.retried_runs).unwrap_or_else(|_| "[]".into()),
            s.to_json(),
            run.message,
        ],
    )?;
    let mut st = c.prepare_cached(
        "INSERT OR REPLACE INTO run_inputs (run_id, seq, path, format, sha256) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (i, inp) in s.inputs.iter().enumerate() {
        st.execute(params![
            s.run_id, i as i64, inp.path, inp.format, inp.sha256
        ])?;
    }
    Ok(())
}

pub(super) fn resolutions(c: &Connection, db: &str, run_id: i64) -> Result<Resolutions> {
    let pairs = |sql: &str, state: FailureState| {
        all(c, db, sql, params![run_id, state.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
    };
    let open: i64 = c
        .query_row(
            "SELECT count(*) FROM failed_orders WHERE run_id = ?1 AND state = ?2",
            params![run_id, FailureState::Open.as_str()],
            |r| r.get(0),
        )
        .map_err(|e| store_err(db, e))?;
    Ok(Resolutions {
        open,
        resolved_by: pairs(
            "SELECT resolved_by, count(*) FROM failed_orders WHERE run_id = ?1 AND state = ?2
             GROUP BY resolved_by ORDER BY resolved_by",
            FailureState::Resolved,
        )?,
        superseded_by: pairs(
            "SELECT superseded_by, count(*) FROM failed_orders WHERE run_id = ?1 AND state = ?2
             GROUP BY superseded_by ORDER BY superseded_by",
            FailureState::Superseded,
        )?,
        resolved_here: pairs(
            "SELECT run_id, count(*) FROM failed_orders WHERE resolved_by = ?1 AND state = ?2
             GROUP BY run_id ORDER BY run_id",
            FailureState::Resolved,
        )?,
        closed: all(
            c,
            db,
            "SELECT closed_by, closed_reason, count(*) FROM failed_orders WHERE run_id = ?1 AND state = ?2
             GROUP BY closed_by, closed_reason ORDER BY min(closed_at), closed_by, closed_reason",
            params![run_id, FailureState::Closed.as_str()],
            |r| {
                Ok(ClosedBy {
                    by: r.get(0)?,
                    reason: r.get(1)?,
                    orders: r.get(2)?,
                })
            },
        )?,
    })
}

pub(super) fn ledger_faults(c: &Connection, db: &str) -> Result<Vec<Fault>> {
    let sql = "SELECT sku, max(on_hand), sum(delta) FROM (
                   SELECT sku, on_hand, 0 AS delta FROM products
                   UNION ALL
                   SELECT sku, NULL, delta FROM stock_ledger)
               GROUP BY sku
               HAVING max(on_hand) IS NULL OR max(on_hand) < 0 OR max(on_hand) != sum(delta)
               ORDER BY sku";
    all(c, db, sql, [], |r| {
        Ok(Fault::Ledger {
            sku: r.get(0)?,
            on_hand: r.get(1)?,
            ledger_sum: r.get(2)?,
        })
    })
}
