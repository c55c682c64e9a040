//! The commands other than a run: init, inventory, run history, reports from
//! the database, ledger verification.

use std::io::{self, Write};
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::config::{Config, ReportKind};
use crate::model::money::{currency_exponent, format_amount};
use crate::model::order::AcceptedRow;
use crate::pipeline::render_failed;
use crate::read::catalog::{read_catalog, CATALOG_COLUMNS};
use crate::read::Format;
use crate::report::escape::escape_cell;
use crate::report::AcceptedWriter;
use crate::store::{RunRecord, SqliteStore, Store};
use crate::{now_rfc3339, Exit, UsageError};

fn open(cfg: &Config) -> Result<SqliteStore> {
    Ok(SqliteStore::open(&cfg.db, cfg.lock_timeout)?)
}

pub fn init(cfg: &Config) -> Result<Exit> {
    open(cfg)?;
    if !cfg.quiet {
        eprintln!("database {} is ready", cfg.db);
    }
    Ok(Exit::Ok)
}

pub fn inventory_load(
    cfg: &Config,
    file: &str,
    format: Option<Format>,
    delimiter: u8,
) -> Result<Exit> {
    let products = read_catalog(file, format, delimiter)?;
    let mut store = open(cfg)?;
    store.begin()?;
    store.load_products(&products, None, file, &now_rfc3339())?;
    store.commit()?;
    if !cfg.quiet {
        eprintln!(
            "loaded {} products from {file} into {}",
            products.len(),
            cfg.db
        );
    }
    Ok(Exit::Ok)
}

pub fn inventory_export(cfg: &Config, out: Option<&Path>) -> Result<Exit> {
    let products = open(cfg)?.products()?;
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    w.write_record(CATALOG_COLUMNS)?;
    for p in &products {
        let price = format_amount(p.unit_price, currency_exponent(&p.currency));
        let stock = p.on_hand.to_string();
        let cells = [p.sku.as_str(), &p.name, &price, &p.currency, &stock];
        w.write_record(cells.iter().map(|c| escape_cell(c).into_owned()))?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    match out {
        Some(path) => crate::report::write_atomic(path, &bytes)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => {
            let mut o = io::stdout().lock();
            o.write_all(&bytes)?;
            o.flush()?;
        }
    }
    Ok(Exit::Ok)
}

fn run_json(r: &RunRecord, detail: bool) -> Value {
    let mut v = json!({
        "id": r.id,
        "command": r.command,
        "status": status_text(&r.status),
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "duration_ms": r.duration_ms,
        "inputs": r.inputs.iter().map(|i| json!({"path": i.path, "format": i.format, "sha256": i.sha256})).collect::<Vec<_>>(),
        "orders": r.orders,
        "accepted": r.accepted,
        "skipped": r.skipped,
        "failed": r.failed,
    });
    if detail {
        v["lines"] = r.lines.into();
        v["units"] = r.units.into();
        v["errors_by_code"] = serde_json::from_str(&r.errors_by_code).unwrap_or(Value::Null);
        v["retried_runs"] = serde_json::from_str(&r.retried_runs).unwrap_or(Value::Null);
        v["report_format"] = r.report_format.clone().into();
    }
    v
}

/// A run row left 'running' is either still running or was interrupted.
fn status_text(s: &str) -> &str {
    if s == "running" {
        "unfinished"
    } else {
        s
    }
}

fn print(text: &str) -> Result<()> {
    let mut o = io::stdout().lock();
    o.write_all(text.as_bytes())?;
    o.flush()?;
    Ok(())
}

pub fn runs_list(cfg: &Config, json_out: bool) -> Result<Exit> {
    let runs = open(cfg)?.runs()?;
    if json_out {
        let v: Vec<Value> = runs.iter().map(|r| run_json(r, false)).collect();
        print(&format!("{}\n", serde_json::to_string_pretty(&v)?))?;
        return Ok(Exit::Ok);
    }
    let mut text = format!(
        "{:>5}  {:<10}  {:<10}  {:<20}  {:>9}  {:>8}  {:>8}  {:>8}  {:>8}  inputs\n",
        "id", "command", "status", "started", "duration", "orders", "accepted", "skipped", "failed"
    );
    for r in &runs {
        let inputs: Vec<&str> = r.inputs.iter().map(|i| i.path.as_str()).collect();
        text.push_str(&format!(
            "{:>5}  {:<10}  {:<10}  {:<20}  {:>9}  {:>8}  {:>8}  {:>8}  {:>8}  {}\n",
            r.id,
            r.command,
            status_text(&r.status),
            r.started_at.get(..19).unwrap_or(&r.started_at),
            r.duration_ms
                .map(|d| format!("{:.1} s", d as f64 / 1000.0))
                .unwrap_or_else(|| "-".into()),
            r.orders,
            r.accepted,
            r.skipped,
            r.failed,
            inputs.join(" ")
        ));
    }
    print(&text)?;
    Ok(Exit::Ok)
}

fn pairs_json(p: &[(i64, i64)]) -> Value {
    p.iter()
        .map(|(run, n)| json!({"run": run, "orders": n}))
        .collect()
}

pub fn runs_show(cfg: &Config, id: i64, json_out: bool) -> Result<Exit> {
    let mut store = open(cfg)?;
    let run = store
        .run(id)?
        .ok_or_else(|| UsageError(format!("there is no run {id} in {}", cfg.db)))?;
    let res = store.resolutions(id)?;
    let mut v = run_json(&run, true);
    v["failed_still_open"] = res.open.into();
    v["failed_resolved_by"] = pairs_json(&res.resolved_by);
    v["failed_again_in"] = pairs_json(&res.superseded_by);
    v["resolved_failures_of"] = pairs_json(&res.resolved_here);
    if json_out {
        print(&format!("{}\n", serde_json::to_string_pretty(&v)?))?;
        return Ok(Exit::Ok);
    }
    let mut text = String::new();
    for key in [
        "id",
        "command",
        "status",
        "started_at",
        "finished_at",
        "duration_ms",
        "orders",
        "accepted",
        "skipped",
        "failed",
        "lines",
        "units",
        "report_format",
    ] {
        let val = match &v[key] {
            Value::String(s) => s.clone(),
            Value::Null => "-".into(),
            other => other.to_string(),
        };
        text.push_str(&format!("{key:<14} {val}\n"));
    }
    text.push_str("inputs\n");
    for i in &run.inputs {
        text.push_str(&format!(
            "  {} ({}) sha256 {}\n",
            i.path, i.format, i.sha256
        ));
    }
    text.push_str("errors_by_code\n");
    if let Some(m) = v["errors_by_code"].as_object() {
        for (code, n) in m.iter().filter(|(_, n)| n.as_u64() != Some(0)) {
            text.push_str(&format!("  {code:<20} {n}\n"));
        }
    }
    text.push_str(&format!("retried_runs   {}\n", v["retried_runs"]));
    let list = |p: &[(i64, i64)]| {
        if p.is_empty() {
            "-".to_string()
        } else {
            p.iter()
                .map(|(r, n)| format!("run {r}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    text.push_str(&format!("failed orders still open          {}\n", res.open));
    text.push_str(&format!(
        "failed orders resolved by         {}\n",
        list(&res.resolved_by)
    ));
    text.push_str(&format!(
        "failed orders failed again in     {}\n",
        list(&res.superseded_by)
    ));
    text.push_str(&format!(
        "resolved failed orders of         {}\n",
        list(&res.resolved_here)
    ));
    print(&text)?;
    Ok(Exit::Ok)
}

pub fn report(cfg: &Config, kind: ReportKind, id: i64, format: Option<Format>) -> Result<Exit> {
    let mut store = open(cfg)?;
    let run = store
        .run(id)?
        .ok_or_else(|| UsageError(format!("there is no run {id} in {}", cfg.db)))?;
    let format = format.unwrap_or(if run.report_format == "jsonl" {
        Format::Jsonl
    } else {
        Format::Csv
    });
    let out = io::BufWriter::new(io::stdout().lock());
    match kind {
        ReportKind::Accepted => {
            let mut w = AcceptedWriter::new(out, format)?;
            let mut io_err = None;
            store.accepted_of_run(id, &mut |row: AcceptedRow| {
                if io_err.is_none() {
                    io_err = w.write(&row).err();
                }
                Ok(())
            })?;
            if let Some(e) = io_err {
                return Err(e.into());
            }
            w.finish()?.flush()?;
        }
        ReportKind::Failed => {
            render_failed(&mut store, id, format, out)?.flush()?;
        }
    }
    Ok(Exit::Ok)
}

pub fn verify(cfg: &Config, json_out: bool) -> Result<Exit> {
    let faults = open(cfg)?.ledger_faults()?;
    if json_out {
        let v: Vec<Value> = faults
            .iter()
            .map(|f| json!({"sku": f.sku, "on_hand": f.on_hand, "ledger_sum": f.ledger_sum}))
            .collect();
        print(&format!(
            "{}\n",
            json!({"ok": faults.is_empty(), "faults": v})
        ))?;
    } else {
        for f in &faults {
            match f.on_hand {
                Some(n) if n < 0 => eprintln!("sku {}: stock on hand is negative ({n})", f.sku),
                Some(n) => eprintln!(
                    "sku {}: stock on hand is {n} but its ledger sums to {}",
                    f.sku, f.ledger_sum
                ),
                None => eprintln!(
                    "sku {}: ledger entries (sum {}) for a product that does not exist",
                    f.sku, f.ledger_sum
                ),
            }
        }
        if faults.is_empty() && !cfg.quiet {
            eprintln!(
                "ledger holds: every sku's stock equals the sum of its ledger, none negative"
            );
        }
    }
    Ok(if faults.is_empty() {
        Exit::Ok
    } else {
        Exit::Faults
    })
}
