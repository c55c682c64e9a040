//! `failures list` and `failures close`: the open failed orders, and closing
//! those that will never be fixed (kept, with who closed them and why).

use anyhow::Result;
use serde_json::{json, Value};

use crate::config::Config;
use crate::model::failure::{failure_label, parse_failure_label};
use crate::model::text::for_terminal;
use crate::store::{CloseResult, StoredFailure};
use crate::{Exit, UsageError};

const PAGE: usize = 1000;

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

pub fn list(cfg: &Config, of_run: Option<i64>, json_out: bool) -> Result<Exit> {
    let mut store = super::open(cfg)?;
    if let Some(id) = of_run {
        if store.run(id)?.is_none() {
            return Err(UsageError(format!("there is no run {id} in {}", store.name())).into());
        }
    }
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = store.open_failures(of_run, after, PAGE)?;
        let done = page.len() < PAGE;
        after = page.last().map(StoredFailure::key).or(after);
        all.extend(page);
        if done {
            break;
        }
    }
    if json_out {
        super::print_json(&Value::Array(all.iter().map(failure_json).collect()))?;
        return Ok(Exit::Ok);
    }
    let mut text = String::new();
    for f in &all {
        let o = &f.order;
        text.push_str(&format!(
            "{}  run {}  {}  {}  {}:{}\n",
            failure_label(f.key()),
            f.run_id,
            for_terminal(o.order_id.as_deref().unwrap_or("-")),
            o.code.as_str(),
            for_terminal(&o.source_file),
            o.source_line
        ));
    }
    super::print(&text)?;
    if !cfg.quiet {
        crate::log::info(
            "failures_listed",
            &format!("{} open failed orders", all.len()),
        );
    }
    Ok(Exit::Ok)
}

/// The user closing failures, as the history records it.
fn who() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| format!("uid {}", rustix::process::getuid().as_raw()));
    format!("{user}@{}", crate::store::host_name())
}

pub fn close(cfg: &Config, ids: &[String], reason: &str) -> Result<Exit> {
    if reason.trim().is_empty() {
        return Err(UsageError("--reason must say why these failures are closed".into()).into());
    }
    let mut numbers = Vec::with_capacity(ids.len());
    for id in ids {
        let n = parse_failure_label(id.trim()).ok_or_else(|| {
            UsageError(format!(
                "{} is not a failure id: failure ids look like F12-345 (see `orderbatch failures list`)",
                for_terminal(id)
            ))
        })?;
        numbers.push(n);
    }
    numbers.sort_unstable();
    numbers.dedup();
    let mut store = super::open(cfg)?;
    // All or nothing, decided by the store while it holds the failures: a
    // run that settled one while this command waited for it wins.
    let results = store.close_failures(&numbers, reason.trim(), &who(), &crate::now_rfc3339())?;
    let problems: Vec<String> = results
        .iter()
        .filter_map(|(key, r)| {
            let label = failure_label(*key);
            match r {
                CloseResult::Closed => None,
                CloseResult::NotOpen(state) => Some(format!("{label} is {}", state.as_str())),
                CloseResult::Missing => Some(format!("{label} does not exist")),
            }
        })
        .collect();
    if !problems.is_empty() {
        return Err(UsageError(format!(
            "nothing was closed: {} (only open failures can be closed; see `orderbatch failures list`)",
            problems.join(", ")
        ))
        .into());
    }
    let closed = results.len();
    if !cfg.quiet {
        crate::log::info("failures_closed", &format!("closed {closed} failed orders"));
    }
    Ok(Exit::Ok)
}
