//! `runs list` and `runs show ID`: the run history, with the host each run
//! ran on (several hosts may share one PostgreSQL history), filtered by
//! status and cut to the newest N. Text from the input (file names,
//! messages) has its control characters escaped before it reaches the
//! terminal; columns are as wide as their widest value.

use anyhow::Result;
use serde_json::{json, Value};

use crate::config::Config;
use crate::exit::{Exit, UsageError};
use crate::model::run::{RunRecord, RunStatus};
use crate::model::text::for_terminal;
use crate::store::{Resolutions, RunFilter};

use super::args::parse_status;

/// Run history
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// The runs, newest first, with the host each ran on
    List {
        /// Only the newest N runs (of the status asked)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        limit: Option<u64>,
        /// Only runs of this status: running, completed, dry_run, aborted, failed, interrupted
        #[arg(long, value_name = "S", value_parser = parse_status)]
        status: Option<RunStatus>,
        /// Print the runs as a JSON array
        #[arg(long)]
        json: bool,
    },
    Prune(super::prune::Args),
    /// One run in detail, with what became of its failed orders
    Show {
        /// The run (see `runs list`)
        id: i64,
        /// Print the run as JSON
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cfg: &Config, cmd: Command) -> Result<Exit> {
    match cmd {
        Command::List {
            limit,
            status,
            json,
        } => {
            let limit = limit.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
            list(cfg, &RunFilter { status, limit }, json)
        }
        Command::Prune(args) => super::prune::run(cfg, args),
        Command::Show { id, json } => show(cfg, id, json),
    }
}

fn run_json(r: &RunRecord, detail: bool) -> Value {
    let s = &r.summary;
    let c = &s.counts;
    let mut v = json!({
        "id": s.run_id,
        "command": r.kind.as_str(),
        "status": s.status,
        "host": r.host,
        "started_at": s.started_at,
        "finished_at": (!s.finished_at.is_empty()).then_some(&s.finished_at),
        "duration_ms": (!s.finished_at.is_empty()).then_some(s.duration_ms),
        "inputs": s.inputs,
        "orders": c.orders,
        "accepted": c.accepted,
        "skipped": c.skipped,
        "failed": c.failed,
    });
    if detail {
        v["lines"] = c.lines.into();
        v["units"] = c.units.into();
        v["errors_by_code"] = c
            .by_code()
            .map(|(code, n)| (code.as_str().to_string(), Value::from(n)))
            .collect::<serde_json::Map<_, _>>()
            .into();
        v["retried_runs"] = json!(r.retried_runs);
        v["report_format"] = r.report_format.as_str().into();
        v["message"] = json!(r.message);
    }
    v
}

fn duration(r: &RunRecord) -> String {
    if r.summary.finished_at.is_empty() {
        "-".into()
    } else {
        format!("{:.1} s", r.summary.duration_ms as f64 / 1000.0)
    }
}

fn list(cfg: &Config, filter: &RunFilter, json_out: bool) -> Result<Exit> {
    let runs = super::open_existing(cfg)?.runs(filter)?;
    if json_out {
        let v: Vec<Value> = runs.iter().map(|r| run_json(r, false)).collect();
        super::print_json(&Value::Array(v))?;
        return Ok(Exit::Ok);
    }
    let header = [
        "id", "command", "status", "host", "started", "duration", "orders", "accepted", "skipped",
        "failed", "inputs",
    ];
    let mut rows = vec![header.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
    for r in &runs {
        let s = &r.summary;
        let c = &s.counts;
        let inputs: Vec<String> = s
            .inputs
            .iter()
            .map(|i| for_terminal(&i.path).into_owned())
            .collect();
        rows.push(vec![
            s.run_id.to_string(),
            r.kind.as_str().into(),
            s.status.as_str().into(),
            for_terminal(if r.host.is_empty() { "-" } else { &r.host }).into_owned(),
            s.started_at.get(..19).unwrap_or(&s.started_at).into(),
            duration(r),
            c.orders.to_string(),
            c.accepted.to_string(),
            c.skipped.to_string(),
            c.failed.to_string(),
            inputs.join(" "),
        ]);
    }
    let right = [
        true, false, false, false, false, true, true, true, true, true, false,
    ];
    super::print(&super::table(&rows, &right))?;
    Ok(Exit::Ok)
}

fn pairs_json(p: &[(i64, i64)]) -> Value {
    p.iter()
        .map(|(run, n)| json!({"run": run, "orders": n}))
        .collect()
}

fn pairs_text(p: &[(i64, i64)]) -> String {
    if p.is_empty() {
        return "-".into();
    }
    p.iter()
        .map(|(r, n)| format!("run {r}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn closed_json(res: &Resolutions) -> Value {
    res.closed
        .iter()
        .map(|c| json!({"by": c.by, "reason": c.reason, "orders": c.orders}))
        .collect()
}

fn show(cfg: &Config, id: i64, json_out: bool) -> Result<Exit> {
    let mut store = super::open_existing(cfg)?;
    let run = store
        .run(id)?
        .ok_or_else(|| UsageError(format!("there is no run {id} in {}", store.name())))?;
    let res = store.resolutions(id)?;
    let mut v = run_json(&run, true);
    v["pruned_at"] = store.pruned_at(id)?.into();
    v["failed_still_open"] = res.open.into();
    v["failed_resolved_by"] = pairs_json(&res.resolved_by);
    v["failed_again_in"] = pairs_json(&res.superseded_by);
    v["resolved_failures_of"] = pairs_json(&res.resolved_here);
    v["failed_closed"] = closed_json(&res);
    if json_out {
        super::print_json(&v)?;
        return Ok(Exit::Ok);
    }
    super::print(&show_text(&run, &v, &res))?;
    Ok(Exit::Ok)
}

fn show_text(run: &RunRecord, v: &Value, res: &Resolutions) -> String {
    let mut text = String::new();
    for key in [
        "id",
        "command",
        "status",
        "host",
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
        "message",
        "pruned_at",
    ] {
        let val = match &v[key] {
            Value::String(s) => for_terminal(s).into_owned(),
            Value::Null => "-".into(),
            other => other.to_string(),
        };
        text.push_str(&format!("{key:<14} {val}\n"));
    }
    text.push_str("inputs\n");
    for i in &run.summary.inputs {
        text.push_str(&format!(
            "  {} ({}) sha256 {}\n",
            for_terminal(&i.path),
            i.format,
            i.sha256
        ));
    }
    text.push_str("errors_by_code\n");
    for (code, n) in run.summary.counts.by_code().filter(|(_, n)| *n != 0) {
        text.push_str(&format!("  {:<20} {n}\n", code.as_str()));
    }
    text.push_str(&format!("retried_runs   {}\n", v["retried_runs"]));
    text.push_str(&format!("failed orders still open          {}\n", res.open));
    text.push_str(&format!(
        "failed orders resolved by         {}\n",
        pairs_text(&res.resolved_by)
    ));
    text.push_str(&format!(
        "failed orders failed again in     {}\n",
        pairs_text(&res.superseded_by)
    ));
    text.push_str(&format!(
        "resolved failed orders of         {}\n",
        pairs_text(&res.resolved_here)
    ));
    if res.closed.is_empty() {
        text.push_str("failed orders closed              -\n");
    }
    for c in &res.closed {
        text.push_str(&format!(
            "failed orders closed              {} by {}: {}\n",
            c.orders,
            for_terminal(&c.by),
            for_terminal(&c.reason)
        ));
    }
    text
}
