//! Reads and row mappings shared by the store and its transactions (both are
//! a `GenericClient`), and the history row's final state.

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::{GenericClient, Row};

use super::super::rows::{RawRun, StoredRow};
use super::super::{
    ClosedBy, FailureFilter, Fault, Queries, Resolutions, Result, RunFilter, StoredFailure,
};
use super::Db;
use crate::model::failure::{FailureKey, FailureState};
use crate::model::order::{AcceptedRow, Product, Status};
use crate::model::run::{RunInput, RunRecord};

/// The reads of a client (a store's session, or a transaction of it), for
/// [`ReadThrough`](super::super::ReadThrough).
pub(crate) struct Reads<'a, C> {
    pub client: &'a mut C,
    pub db: &'a Db,
}

impl<C: GenericClient> Queries for Reads<'_, C> {
    fn products(&mut self) -> Result<Vec<Product>> {
        products(self.client, self.db)
    }

    fn failed_of_run(
        &mut self,
        run_id: i64,
        each: &mut dyn FnMut(StoredFailure) -> Result<()>,
    ) -> Result<()> {
        failed_of_run(self.client, self.db, run_id, each)
    }

    fn accepted_of_run(
        &mut self,
        run_id: i64,
        each: &mut dyn FnMut(AcceptedRow) -> Result<()>,
    ) -> Result<()> {
        accepted_of_run(self.client, self.db, run_id, each)
    }

    fn open_failures(
        &mut self,
        filter: &FailureFilter,
        after: Option<FailureKey>,
        limit: usize,
    ) -> Result<Vec<StoredFailure>> {
        open_failures(self.client, self.db, filter, after, limit)
    }

    fn failures_by_key(&mut self, keys: &[FailureKey]) -> Result<Vec<StoredFailure>> {
        failures_by_key(self.client, self.db, keys, false)
    }

    fn catalog_version(&mut self) -> Result<i64> {
        catalog_version(self.client, self.db)
    }
}

pub(super) fn products(c: &mut impl GenericClient, db: &Db) -> Result<Vec<Product>> {
    let rows = c
        .query(
            "SELECT sku, name, unit_price, currency, on_hand FROM products ORDER BY sku",
            &[],
        )
        .map_err(|e| db.err(e))?;
    Ok(rows
        .iter()
        .map(|r| Product {
            sku: r.get(0),
            name: r.get(1),
            unit_price: r.get(2),
            currency: r.get(3),
            on_hand: r.get(4),
        })
        .collect())
}

pub(super) fn catalog_version(c: &mut impl GenericClient, db: &Db) -> Result<i64> {
    let row = c
        .query_one(
            "SELECT coalesce(max(version), 0)::bigint FROM catalog_version",
            &[],
        )
        .map_err(|e| db.err(e))?;
    Ok(row.get(0))
}

pub(super) const FAILURE_COLUMNS: &str =
    "id, run_id, state, order_id, error_code, error_detail, source_file, source_line, body, run_seq";

fn failure_from_row(db: &Db, r: &Row) -> Result<StoredFailure> {
    StoredRow {
        id: r.get(0),
        run_id: r.get(1),
        state: r.get(2),
        order_id: r.get(3),
        code: r.get(4),
        detail: r.get(5),
        source_file: r.get(6),
        source_line: r.get(7),
        body: r.get(8),
        seq: r.get(9),
    }
    .into_failure(&db.name)
}

/// Every row of a query, streamed (a run's failures may be many).
fn each_row(
    c: &mut impl GenericClient,
    db: &Db,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    each: &mut dyn FnMut(&Row) -> Result<()>,
) -> Result<()> {
    let mut rows = c
        .query_raw(sql, params.iter().copied())
        .map_err(|e| db.err(e))?;
    while let Some(r) = rows.next().map_err(|e| db.err(e))? {
        each(&r)?;
    }
    Ok(())
}

pub(super) fn failed_of_run(
    c: &mut impl GenericClient,
    db: &Db,
    run_id: i64,
    each: &mut dyn FnMut(StoredFailure) -> Result<()>,
) -> Result<()> {
    let sql =
        format!("SELECT {FAILURE_COLUMNS} FROM failed_orders WHERE run_id = $1 ORDER BY run_seq");
    each_row(c, db, &sql, &[&run_id], &mut |r| {
        each(failure_from_row(db, r)?)
    })
}

pub(super) fn open_failures(
    c: &mut impl GenericClient,
    db: &Db,
    filter: &FailureFilter,
    after: Option<FailureKey>,
    limit: usize,
) -> Result<Vec<StoredFailure>> {
    let sql = format!(
        "SELECT {FAILURE_COLUMNS} FROM failed_orders
         WHERE state = $1 AND (run_id, run_seq) > ($2, $3) AND ($4::bigint IS NULL OR run_id = $4)
           AND ($6::text[] IS NULL OR error_code = ANY($6))
         ORDER BY run_id, run_seq LIMIT $5"
    );
    let limit = limit as i64;
    let (run, seq) = after.map_or((i64::MIN, i64::MIN), |k| (k.run, k.seq as i64));
    let codes = filter.code_names();
    let rows = c
        .query(
            &sql,
            &[
                &FailureState::Open.as_str(),
                &run,
                &seq,
                &filter.run,
                &limit,
                &codes,
            ],
        )
        .map_err(|e| db.err(e))?;
    rows.iter().map(|r| failure_from_row(db, r)).collect()
}

pub(super) fn failures_by_key(
    c: &mut impl GenericClient,
    db: &Db,
    keys: &[FailureKey],
    lock: bool,
) -> Result<Vec<StoredFailure>> {
    let runs: Vec<i64> = keys.iter().map(|k| k.run).collect();
    let seqs: Vec<i64> = keys.iter().map(|k| k.seq as i64).collect();
    let sql = format!(
        "SELECT {FAILURE_COLUMNS} FROM failed_orders
         WHERE (run_id, run_seq) IN (SELECT * FROM unnest($1::bigint[], $2::bigint[]))
         ORDER BY run_id, run_seq{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let rows = c.query(&sql, &[&runs, &seqs]).map_err(|e| db.err(e))?;
    rows.iter().map(|r| failure_from_row(db, r)).collect()
}

/// The open failures of the filter's run and codes and of these order ids
/// (any when empty), locked in key order (the order runs hold them in).
pub(super) fn hold_open(
    c: &mut impl GenericClient,
    db: &Db,
    filter: &FailureFilter,
    order_ids: &[String],
) -> Result<Vec<StoredFailure>> {
    let sql = format!(
        "SELECT {FAILURE_COLUMNS} FROM failed_orders
         WHERE state = $1 AND ($2::bigint IS NULL OR run_id = $2)
           AND ($3::text[] IS NULL OR error_code = ANY($3))
           AND ($4::text[] IS NULL OR order_id = ANY($4))
         ORDER BY run_id, run_seq FOR UPDATE"
    );
    let codes = filter.code_names();
    let orders = (!order_ids.is_empty()).then_some(order_ids);
    let rows = c
        .query(
            &sql,
            &[&FailureState::Open.as_str(), &filter.run, &codes, &orders],
        )
        .map_err(|e| db.err(e))?;
    rows.iter().map(|r| failure_from_row(db, r)).collect()
}

/// The newest failure record of each order id that is not final.
pub(super) fn newest_failures(
    c: &mut impl GenericClient,
    db: &Db,
    order_ids: &[String],
) -> Result<Vec<StoredFailure>> {
    let sql = format!(
        "SELECT * FROM (
             SELECT DISTINCT ON (order_id) {FAILURE_COLUMNS} FROM failed_orders
             WHERE order_id = ANY($1) AND state <> $2
             ORDER BY order_id, run_id DESC, run_seq DESC) t
         ORDER BY run_id, run_seq"
    );
    let rows = c
        .query(&sql, &[&order_ids, &FailureState::Final.as_str()])
        .map_err(|e| db.err(e))?;
    rows.iter().map(|r| failure_from_row(db, r)).collect()
}

pub(super) fn accepted_of_run(
    c: &mut impl GenericClient,
    db: &Db,
    run_id: i64,
    each: &mut dyn FnMut(AcceptedRow) -> Result<()>,
) -> Result<()> {
    let sql = "SELECT run_seq, order_id, 0, source_file, source_line, placed_at, customer_email, currency, lines, units, total, payment_method
               FROM orders WHERE run_id = $1 AND items <> ''
               UNION ALL
               SELECT run_seq, order_id, 1, source_file, source_line, placed_at, customer_email, currency, lines, units, total, payment_method
               FROM run_skips WHERE run_id = $1
               ORDER BY 1";
    each_row(c, db, sql, &[&run_id], &mut |r| {
        each(AcceptedRow {
            order_id: r.get(1),
            status: if r.get::<_, i32>(2) == 0 {
                Status::Accepted
            } else {
                Status::Skipped
            },
            source_file: r.get(3),
            source_line: r.get::<_, i64>(4) as u64,
            placed_at: r.get(5),
            customer_email: r.get(6),
            currency: r.get(7),
            lines: r.get::<_, i64>(8) as u64,
            units: r.get(9),
            total: r.get(10),
            payment_method: r.get(11),
        })
    })
}

const RUN_COLUMNS: &str =
    "id, command, status, started_at, finished_at, duration_ms, orders, accepted, \
     skipped, failed, lines, units, errors_by_code, retried_runs, report_format, message, host";

/// Runs, newest first (one when `id` is given; else of the stored statuses
/// and up to the limit the filter gives).
pub(super) fn runs(
    c: &mut impl GenericClient,
    db: &Db,
    id: Option<i64>,
    filter: &RunFilter,
) -> Result<Vec<RunRecord>> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM runs
         WHERE ($1::bigint IS NULL OR id = $1) AND ($2::text[] IS NULL OR status = ANY($2))
         ORDER BY id DESC LIMIT $3"
    );
    let statuses = filter.stored();
    let limit = filter.query_limit();
    let rows = c
        .query(&sql, &[&id, &statuses, &limit])
        .map_err(|e| db.err(e))?;
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    let inputs = c
        .query(
            "SELECT run_id, path, format, sha256 FROM run_inputs WHERE run_id = ANY($1) ORDER BY run_id, seq",
            &[&ids],
        )
        .map_err(|e| db.err(e))?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let run_id: i64 = r.get(0);
        let mine: Vec<RunInput> = inputs
            .iter()
            .filter(|i| i.get::<_, i64>(0) == run_id)
            .map(|i| RunInput {
                path: i.get(1),
                format: i.get(2),
                sha256: i.get(3),
                encoding: None,
            })
            .collect();
        let raw = RawRun {
            id: run_id,
            command: r.get(1),
            status: r.get(2),
            started_at: r.get(3),
            finished_at: r.get(4),
            duration_ms: r.get(5),
            counts: [r.get(6), r.get(7), r.get(8), r.get(9), r.get(10), r.get(11)],
            errors_by_code: r.get(12),
            retried_runs: r.get(13),
            report_format: r.get(14),
            message: r.get(15),
            host: r.get(16),
        };
        out.push(raw.into_record(&db.name, mine)?);
    }
    Ok(out)
}

/// The history row's final state, and the run's inputs.
pub(super) fn finish_run(c: &mut impl GenericClient, db: &Db, run: &RunRecord) -> Result<()> {
    let s = &run.summary;
    let k = &s.counts;
    let by_code: serde_json::Map<String, serde_json::Value> = k
        .by_code()
        .map(|(code, n)| (code.as_str().to_string(), n.into()))
        .collect();
    let n = |v: u64| v as i64;
    c.execute(
        "UPDATE runs SET status = $2, finished_at = $3, duration_ms = $4, orders = $5, accepted = $6,
         skipped = $7, failed = $8, lines = $9, units = $10, errors_by_code = $11, retried_runs = $12,
         summary = $13, message = $14 WHERE id = $1",
        &[
            &s.run_id,
            &s.status.as_str(),
            &s.finished_at,
            &n(s.duration_ms),
            &n(k.orders),
            &n(k.accepted),
            &n(k.skipped),
            &n(k.failed),
            &n(k.lines),
            &k.units,
            &serde_json::Value::Object(by_code).to_string(),
            &serde_json::to_string(&run.retried_runs).unwrap_or_else(|_| "[]".into()),
            &s.to_json(),
            &run.message,
        ],
    )
    .map_err(|e| db.err(e))?;
    let seqs: Vec<i64> = (0..s.inputs.len() as i64).collect();
    let paths: Vec<&str> = s.inputs.iter().map(|i| i.path.as_str()).collect();
    let formats: Vec<&str> = s.inputs.iter().map(|i| i.format.as_str()).collect();
    let digests: Vec<&str> = s.inputs.iter().map(|i| i.sha256.as_str()).collect();
    c.execute(
        "INSERT INTO run_inputs (run_id, seq, path, format, sha256)
         SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[])
         ON CONFLICT (run_id, seq) DO UPDATE SET path = excluded.path, format = excluded.format, sha256 = excluded.sha256",
        &[&s.run_id, &seqs, &paths, &formats, &digests],
    )
    .map_err(|e| db.err(e))?;
    Ok(())
}

pub(super) fn resolutions(c: &mut impl GenericClient, db: &Db, run_id: i64) -> Result<Resolutions> {
    let mut pairs = |sql: &str, state: FailureState| -> Result<Vec<(i64, i64)>> {
        let rows = c
            .query(sql, &[&run_id, &state.as_str()])
            .map_err(|e| db.err(e))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    };
    let resolved_by = pairs(
        "SELECT resolved_by, count(*) FROM failed_orders WHERE run_id = $1 AND state = $2
         GROUP BY resolved_by ORDER BY resolved_by",
        FailureState::Resolved,
    )?;
    let superseded_by = pairs(
        "SELECT superseded_by, count(*) FROM failed_orders WHERE run_id = $1 AND state = $2
         GROUP BY superseded_by ORDER BY superseded_by",
        FailureState::Superseded,
    )?;
    let resolved_here = pairs(
        "SELECT run_id, count(*) FROM failed_orders WHERE resolved_by = $1 AND state = $2
         GROUP BY run_id ORDER BY run_id",
        FailureState::Resolved,
    )?;
    let open: i64 = c
        .query_one(
            "SELECT count(*) FROM failed_orders WHERE run_id = $1 AND state = $2",
            &[&run_id, &FailureState::Open.as_str()],
        )
        .map_err(|e| db.err(e))?
        .get(0);
    let closed = c
        .query(
            "SELECT closed_by, closed_reason, count(*) FROM failed_orders WHERE run_id = $1 AND state = $2
             GROUP BY closed_by, closed_reason ORDER BY min(closed_at), closed_by, closed_reason",
            &[&run_id, &FailureState::Closed.as_str()],
        )
        .map_err(|e| db.err(e))?
        .iter()
        .map(|r| ClosedBy {
            by: r.get(0),
            reason: r.get(1),
            orders: r.get(2),
        })
        .collect();
    Ok(Resolutions {
        open,
        resolved_by,
        superseded_by,
        resolved_here,
        closed,
    })
}

/// amcheck's B-tree check of every index of orderbatch's tables, where the
/// extension is installed (`CREATE EXTENSION amcheck` as a superuser).
pub(super) fn integrity(c: &mut impl GenericClient, db: &Db) -> Result<Vec<Fault>> {
    let installed = c
        .query_opt("SELECT 1 FROM pg_extension WHERE extname = 'amcheck'", &[])
        .map_err(|e| db.err(e))?
        .is_some();
    if !installed {
        return Ok(Vec::new());
    }
    let indexes = c
        .query(
            "SELECT i.indexrelid::regclass::text FROM pg_index i
             JOIN pg_class t ON t.oid = i.indrelid
             JOIN pg_class x ON x.oid = i.indexrelid JOIN pg_am a ON a.oid = x.relam
             WHERE t.relnamespace = current_schema()::regnamespace AND a.amname = 'btree'
               AND t.relname IN ('products', 'stock_ledger', 'runs', 'run_inputs', 'orders', 'run_skips', 'failed_orders')
             ORDER BY 1",
            &[],
        )
        .map_err(|e| db.err(e))?;
    let mut faults = Vec::new();
    for r in &indexes {
        let name: String = r.get(0);
        match c.execute("SELECT bt_index_check($1::text::regclass, true)", &[&name]) {
            Ok(_) => {}
            // Not allowed to run the check (EXECUTE on bt_index_check is not
            // granted): that says nothing about the database.
            Err(e) if e.code() == Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => {
                return Ok(faults)
            }
            Err(e) => {
                let what = e
                    .as_db_error()
                    .map_or_else(|| e.to_string(), |d| d.message().to_string());
                faults.push(Fault::Integrity(format!("index {name}: {what}")));
            }
        }
    }
    Ok(faults)
}

pub(super) fn ledger_faults(c: &mut impl GenericClient, db: &Db) -> Result<Vec<Fault>> {
    let rows = c
        .query(
            "SELECT sku, max(on_hand), sum(delta)::bigint FROM (
                 SELECT sku, on_hand, 0::bigint AS delta FROM products
                 UNION ALL
                 SELECT sku, NULL, delta FROM stock_ledger) t
             GROUP BY sku
             HAVING max(on_hand) IS NULL OR max(on_hand) < 0 OR max(on_hand) != sum(delta)
             ORDER BY sku",
            &[],
        )
        .map_err(|e| db.err(e))?;
    Ok(rows
        .iter()
        .map(|r| Fault::Ledger {
            sku: r.get(0),
            on_hand: r.get(1),
            ledger_sum: r.get(2),
        })
        .collect())
}
