//! Faults from outside: a full disk, an unusable report directory, a missing
//! metrics directory, SIGKILL at any moment. A run commits whole or not at all.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Output;
use std::time::{Duration, Instant};

use common::*;

fn setup(env: &Env, stock: i64) {
    env.write("catalog.csv", catalog(5, stock));
    env.ok(&["inventory", "load", "catalog.csv"], 0);
}

fn file_len(env: &Env, name: &str) -> u64 {
    std::fs::metadata(env.path(name))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// The unit of `ulimit -f` in `sh` on this machine, in bytes (512 in dash, 1024 in bash).
fn ulimit_block(env: &Env) -> u64 {
    let st = std::process::Command::new("sh")
        .current_dir(env.dir.path())
        .args([
            "-c",
            "ulimit -f 1; trap '' XFSZ; head -c 65536 /dev/zero > ulimit.probe 2>/dev/null",
        ])
        .status()
        .unwrap();
    assert!(!st.success(), "writing past the limit must fail");
    let n = file_len(env, "ulimit.probe");
    assert!(n == 512 || n == 1024, "ulimit -f unit: {n} bytes");
    std::fs::remove_file(env.path("ulimit.probe")).unwrap();
    n
}

/// Run the binary with a file-size limit of `blocks` (writes past it fail
/// with EFBIG instead of killing the process).
fn run_limited(env: &Env, blocks: u64, args: &[&str]) -> Output {
    std::process::Command::new("sh")
        .current_dir(env.dir.path())
        .env_remove("ORDERBATCH_DB")
        .arg("-c")
        .arg(format!(
            "ulimit -f {blocks}; trap '' XFSZ; exec \"$0\" \"$@\""
        ))
        .arg(bin_path())
        .args(args)
        .output()
        .unwrap()
}

/// order_id -> status of a run's accepted report.
fn accepted_ids(env: &Env, run: i64) -> BTreeMap<String, String> {
    parse_csv(&file_bytes(
        &env.path(&format!("reports/run-{run}/accepted.csv")),
    ))
    .into_iter()
    .map(|r| (r["order_id"].clone(), r["status"].clone()))
    .collect()
}

fn summary(env: &Env, run: i64) -> serde_json::Value {
    serde_json::from_str(&env.read(&format!("reports/run-{run}/summary.json"))).unwrap()
}

/// Every `reports/run-N` directory belongs to a completed run.
fn assert_reports_only_for_completed_runs(env: &Env) {
    let status = env.run_statuses();
    for name in env.entries("reports", "run-") {
        let id: i64 = name["run-".len()..]
            .parse()
            .unwrap_or_else(|_| panic!("unexpected report directory {name}"));
        assert_eq!(
            status.get(&id).map(String::as_str),
            Some("completed"),
            "reports/{name} exists for a run that did not complete: {status:?}"
        );
    }
}

/// A Prometheus text file: every sample line is `name{labels} number`.
fn assert_metrics_parse(text: &str) {
    let mut samples = 0;
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line:?}"));
        assert!(value.parse::<f64>().is_ok(), "value of {line:?}");
        let name = match series.split_once('{') {
            Some((name, labels)) => {
                assert!(labels.ends_with('}') && !labels[..labels.len() - 1].contains('}'));
                name
            }
            None => series,
        };
        assert!(
            !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "metric name in {line:?}"
        );
        samples += 1;
    }
    assert!(samples > 0, "no samples in {text:?}");
}

// ---------------------------------------------------------------- disk full

#[test]
fn a_full_disk_under_the_database_changes_nothing_and_exits_1() {
    let env = Env::new();
    setup(&env, 100_000);
    assert!(!env.exists("orderbatch.db-wal"), "checkpointed at close");
    let block = ulimit_block(&env);
    // Room for the database, its WAL index (32 KiB) and the run's start, not for its orders.
    let limit = file_len(&env, "orderbatch.db").max(32 * 1024) + 128 * 1024;
    let blocks = limit.div_ceil(block);
    let limit = blocks * block;
    // Orders that weigh much more in the database (10 lines, a long
    // payment_ref) than in the accepted report (one short row each).
    let lines: Vec<(usize, u32)> = (0..10).map(|i| (i % 5, 1)).collect();
    let orders: Vec<String> = (0..1000)
        .map(|i| {
            let id = format!("F-{i}");
            order_rows(&id, &lines).replace(
                &format!("ref-{id},"),
                &format!("{}-{i:06},", "r".repeat(120)),
            )
        })
        .collect();
    env.write("orders.csv", csv_file(&orders));
    let stock = env.stock();
    let count = |t: &str| env.count(&format!("SELECT count(*) FROM {t}"));
    let before = (
        count("orders"),
        count("failed_orders"),
        count("stock_ledger"),
    );

    let out = run_limited(&env, blocks, &["process", "orders.csv"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_one_error_line(&out, &["orderbatch.db"]);
    assert_eq!(env.stock(), stock);
    assert_eq!(
        (
            count("orders"),
            count("failed_orders"),
            count("stock_ledger")
        ),
        before
    );
    assert_eq!(env.integrity(), "ok");
    env.verify_ok();
    assert!(env.entries("reports", "run-").is_empty());
    assert!(
        env.entries("reports", ".run-").is_empty(),
        "partial reports removed"
    );
    assert_eq!(
        env.run_statuses().get(&1).map(String::as_str),
        Some("failed")
    );

    // With room again, the same command does the work once; and it did need
    // more than the limit in the database, while its reports fit.
    env.ok(&["process", "orders.csv"], 0);
    assert_eq!(count("orders"), 1000);
    assert!(stock.iter().all(|(sku, n)| env.stock()[sku] == n - 2000));
    assert!(file_len(&env, "orderbatch.db") > limit);
    for f in ["accepted.csv", "failed.csv", "summary.json"] {
        assert!(file_len(&env, &format!("reports/run-2/{f}")) < limit);
    }
    env.verify_ok();
}

// ---------------------------------------------------------------- report directory

#[test]
fn an_out_path_that_is_a_regular_file_exits_1_and_changes_nothing() {
    let env = Env::new();
    setup(&env, 10);
    env.write("orders.csv", csv_file(&[order_rows("A-1", &[(0, 1)])]));
    env.write("afile", "I am a file\n");
    let stock = env.stock();
    for out_dir in ["afile", "afile/sub"] {
        let out = env.run(&["process", "orders.csv", "--out", out_dir]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert_one_error_line(&out, &[out_dir, "--out"]);
        assert_eq!(env.stock(), stock);
        assert_eq!(env.count("SELECT count(*) FROM orders"), 0);
        assert_eq!(
            env.count("SELECT count(*) FROM stock_ledger WHERE run_id IS NOT NULL"),
            0
        );
    }
    assert_eq!(env.read("afile"), "I am a file\n");
    assert!(env
        .run_statuses()
        .values()
        .all(|s| s != "completed" && s != "running"));
    env.verify_ok();
    // The same file with a usable --out: the work is done once.
    env.ok(&["process", "orders.csv"], 0);
    assert_eq!(env.stock()["SKU-0"], 9);
}

// ---------------------------------------------------------------- metrics file

fn metrics_in_a_missing_directory(env: &Env) -> (Output, BTreeMap<String, i64>) {
    setup(env, 10);
    env.write("orders.csv", csv_file(&[order_rows("A-1", &[(0, 1)])]));
    let out = env.run(&["process", "orders.csv", "--metrics-file", "nodir/m.prom"]);
    assert_no_panic(&out);
    (out, catalog_stock(10))
}

fn catalog_stock(n: i64) -> BTreeMap<String, i64> {
    (0..5).map(|i| (format!("SKU-{i}"), n)).collect()
}

/// What holds whichever way the program treats the missing directory (today:
/// exit 1 after the commit, see the ignored test below): one line naming the
/// metrics file, a sound ledger, stock and orders that agree, and a re-run
/// that does the work exactly once.
#[test]
fn a_metrics_file_in_a_missing_directory_is_named_and_a_rerun_is_exact() {
    let env = Env::new();
    let (out, start) = metrics_in_a_missing_directory(&env);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.lines()
            .filter(|l| l.contains("nodir/m.prom") && l.contains("metrics"))
            .count(),
        1,
        "one line names the metrics file: {err}"
    );
    env.verify_ok();
    let orders = env.count("SELECT count(*) FROM orders");
    let stock = env.stock();
    if orders == 0 {
        assert_eq!(stock, start);
    } else {
        assert_eq!(orders, 1);
        assert_eq!(stock["SKU-0"], 9);
    }
    assert_reports_only_for_completed_runs(&env);
    assert!(!env.exists("nodir"));

    env.ok(&["process", "orders.csv", "--metrics-file", "m.prom"], 0);
    assert_eq!(env.stock()["SKU-0"], 9, "applied exactly once");
    assert_metrics_parse(&env.read("m.prom"));
    env.verify_ok();
}

/// The metrics are written after the commit (pipeline.rs, `emit` after
/// `store.commit()`): the failure then discards the reports, marks the
/// committed run `failed` and exits 1, although the run's orders and stock
/// changes are committed. Exit 1 promises "nothing of the run committed".
#[test]
fn a_metrics_file_in_a_missing_directory_does_not_contradict_the_database() {
    let env = Env::new();
    let (out, start) = metrics_in_a_missing_directory(&env);
    let orders = env.count("SELECT count(*) FROM orders");
    let status = env.run_statuses().get(&1).cloned();
    match out.status.code() {
        // Refused up front, or stopped before the commit: nothing of the run.
        Some(1 | 2) => {
            assert_eq!(
                orders, 0,
                "exit 1/2 means nothing committed; status {status:?}"
            );
            assert_eq!(env.stock(), start);
        }
        // Committed, with the metrics problem a warning.
        Some(0) => {
            assert_eq!(orders, 1);
            assert_eq!(status.as_deref(), Some("completed"));
            assert!(env.exists("reports/run-1/accepted.csv"));
        }
        other => panic!("exit {other:?}: {out:?}"),
    }
}

// ---------------------------------------------------------------- SIGKILL

/// The state after a finished run, to compare the killed runs with.
struct Baseline {
    duration: Duration,
    code: Option<i32>,
    stock: BTreeMap<String, i64>,
    orders: i64,
    reported: BTreeSet<String>,
}

const KILL_ARGS: [&str; 4] = ["process", "orders.csv", "--metrics-file", "m.prom"];

fn kill_env(text: &str) -> Env {
    let env = Env::new();
    setup(&env, 5000);
    env.write("orders.csv", text);
    env
}

/// The order ids (accepted and skipped) of the last run's accepted report.
fn last_run_ids(env: &Env) -> BTreeSet<String> {
    let last = *env.run_statuses().keys().max().unwrap();
    accepted_ids(env, last).into_keys().collect()
}

/// A setting of the kill test from the environment, for bigger runs than CI's:
/// `ORDERBATCH_KILL_ORDERS=200000 ORDERBATCH_KILL_POINTS=20 cargo test --release --test faults sigkill`.
fn kill_setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn sigkill_at_any_moment_leaves_the_database_as_before_or_as_after() {
    let n = kill_setting("ORDERBATCH_KILL_ORDERS", 20_000);
    let orders: Vec<String> = (0..n)
        .map(|i| order_rows(&format!("K-{i}"), &[(i % 5, (i % 3 + 1) as u32)]))
        .collect();
    let text = csv_file(&orders);

    let base = {
        let env = kill_env(&text);
        let t = Instant::now();
        let out = env.run(&KILL_ARGS);
        let duration = t.elapsed();
        assert_no_panic(&out);
        let b = Baseline {
            duration,
            code: out.status.code(),
            stock: env.stock(),
            orders: env.count("SELECT count(*) FROM orders"),
            reported: last_run_ids(&env),
        };
        assert_eq!(b.code, Some(3), "stock is tight on purpose");
        assert!(b.orders > 0 && b.orders < n as i64);
        assert_metrics_parse(&env.read("m.prom"));
        b
    };
    let start = catalog_stock(5000);
    assert_ne!(base.stock, start);

    let points = kill_setting("ORDERBATCH_KILL_POINTS", 12).max(2) as u32;
    let mut seen = Vec::new();
    for k in 0..points {
        let delay = base.duration * k / (points - 1);
        let env = kill_env(&text);
        let mut child = env.spawnable().args(KILL_ARGS).spawn().unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().unwrap();

        assert_eq!(env.integrity(), "ok", "kill after {delay:?}");
        env.verify_ok();
        let stock = env.stock();
        let applied = env.count("SELECT count(*) FROM orders");
        let committed = if stock == start {
            assert_eq!(
                applied, 0,
                "kill after {delay:?}: stock as before, orders too"
            );
            false
        } else {
            assert_eq!(stock, base.stock, "kill after {delay:?}: all or nothing");
            assert_eq!(applied, base.orders);
            true
        };
        assert_reports_only_for_completed_runs(&env);
        if env.exists("m.prom") {
            assert_metrics_parse(&env.read("m.prom"));
        }
        seen.push((delay.as_millis(), status.code(), committed));

        // The same command again finishes the work exactly once.
        let out = env.run(&KILL_ARGS);
        assert_no_panic(&out);
        assert_eq!(
            out.status.code(),
            base.code,
            "re-run after kill at {delay:?}"
        );
        assert_eq!(env.stock(), base.stock, "re-run after kill at {delay:?}");
        assert_eq!(env.count("SELECT count(*) FROM orders"), base.orders);
        assert_eq!(last_run_ids(&env), base.reported);
        assert_reports_only_for_completed_runs(&env);
        assert_eq!(env.integrity(), "ok");
        env.verify_ok();
    }
    // (delay ms, exit code or None when killed, committed before the kill)
    eprintln!(
        "uninterrupted run: {:?}; kill points: {seen:?}",
        base.duration
    );
}

// ---------------------------------------------------------------- commit, then no rename

#[test]
fn reports_lost_after_the_commit_come_back_from_the_database_and_a_rerun_skips_all() {
    let env = Env::new();
    setup(&env, 50);
    let orders: Vec<String> = (0..40usize)
        .map(|i| order_rows(&format!("R-{i}"), &[(i % 5, 1), ((i + 1) % 5, 2)]))
        .collect();
    env.write("orders.csv", csv_file(&orders));
    env.ok(&["process", "orders.csv"], 0);
    let accepted = env.read("reports/run-1/accepted.csv");
    let failed = env.read("reports/run-1/failed.csv");
    let stock = env.stock();
    // The state a kill between the commit and the rename leaves behind.
    std::fs::remove_dir_all(env.path("reports/run-1")).unwrap();

    assert_eq!(env.ok(&["report", "accepted", "--run", "1"], 0), accepted);
    assert_eq!(env.ok(&["report", "failed", "--run", "1"], 0), failed);

    env.ok(&["process", "orders.csv"], 0);
    let s = summary(&env, 2);
    assert_eq!(
        (
            s["orders"].as_u64(),
            s["skipped"].as_u64(),
            s["accepted"].as_u64()
        ),
        (Some(40), Some(40), Some(0))
    );
    let ids = accepted_ids(&env, 2);
    assert_eq!(ids.len(), 40);
    assert!(ids.values().all(|s| s == "skipped"));
    assert_eq!(env.stock(), stock);
    assert!(!env.exists("reports/run-1"));
    env.verify_ok();
}
