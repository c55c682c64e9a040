//! Operating orderbatch: history, reprocessing, reports from the database,
//! metrics, concurrency.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::*;

fn setup(env: &Env, stock: i64) {
    env.write("catalog.csv", catalog(5, stock));
    env.ok(&["inventory", "load", "catalog.csv"], 0);
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn two_runs_at_once_never_oversell_and_the_ledger_holds() {
    let env = Env::new();
    setup(&env, 25);
    for name in ["a", "b"] {
        let orders: Vec<String> = (0..120)
            .map(|i| order_rows(&format!("{name}-{i}"), &[(i % 3, 1), ((i + 1) % 3, 1)]))
            .collect();
        env.write(&format!("{name}.csv"), csv_file(&orders));
    }
    let spawn = |name: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_orderbatch"))
            .current_dir(env.dir.path())
            .args(["process", &format!("{name}.csv"), "--json", "--out", name])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("a"), spawn("b"));
    let mut units = 0;
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(3),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s = json(&String::from_utf8_lossy(&out.stdout));
        assert!(
            s["failed"].as_u64().unwrap() > 0,
            "stock is tight on purpose"
        );
        units += s["units"].as_i64().unwrap();
    }
    let stock = env.stock();
    assert!(stock.values().all(|n| *n >= 0));
    let moved: i64 = (0..5).map(|i| 25 - stock[&format!("SKU-{i}")]).sum();
    assert_eq!(
        moved, units,
        "stock moved equals the units both runs report"
    );
    // Orders pair the skus (0,1), (1,2), (2,0): selling stops only when at
    // least two of the three are sold out, whatever the interleaving.
    let sold_out = (0..3).filter(|i| stock[&format!("SKU-{i}")] == 0).count();
    assert!(sold_out >= 2, "{stock:?}");
    env.ok(&["verify"], 0);
}

#[test]
fn reprocess_after_a_restock_accepts_exactly_the_stock_failures_once() {
    let env = Env::new();
    setup(&env, 2);
    env.write(
        "orders.csv",
        csv_file(&[
            order_rows("A-1", &[(0, 2)]),
            order_rows("A-2", &[(0, 1)]),         // stock
            order_rows("A-3", &[(1, 1), (0, 1)]), // stock
            order_rows("A-4", &[(9, 1)]),         // unknown sku
        ]),
    );
    env.ok(&["process", "orders.csv"], 3);
    env.write("catalog.csv", catalog(5, 10));
    env.ok(&["inventory", "load", "catalog.csv"], 0);
    let s = json(&env.ok(&["reprocess", "--json"], 3));
    assert_eq!(s["run_id"], 2);
    assert_eq!(s["orders"], 3);
    assert_eq!(s["accepted"], 2);
    assert_eq!(s["errors_by_code"]["UNKNOWN_SKU"], 1);
    let accepted = env.read("reports/run-2/accepted.csv");
    assert!(accepted.contains("A-2,accepted,orders.csv,3,") && accepted.contains("A-3,accepted,"));
    assert_eq!(env.stock()["SKU-0"], 8);
    let ledger =
        env.count("SELECT count(*) FROM stock_ledger WHERE reason = 'reprocess' AND run_id = 2");
    assert_eq!(ledger, 2, "one ledger entry per sku moved");

    // The unknown sku still fails; the accepted ones are never retried again.
    let s = json(&env.ok(&["reprocess", "--json"], 3));
    assert_eq!(
        (s["orders"].as_u64(), s["accepted"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(env.stock()["SKU-0"], 8);
    // The history says who resolved what.
    let show = json(&env.ok(&["runs", "show", "1", "--json"], 0));
    assert_eq!(show["failed_resolved_by"][0]["run"], 2);
    assert_eq!(show["failed_resolved_by"][0]["orders"], 2);
    let show2 = json(&env.ok(&["runs", "show", "2", "--json"], 0));
    assert_eq!(show2["retried_runs"], serde_json::json!([1]));
    // With nothing open at all, a reprocess retries nothing.
    env.ok(&["process", "orders.csv", "--catalog", "catalog.csv"], 3);
    env.write("catalog.csv", catalog(10, 10));
    env.ok(&["inventory", "load", "catalog.csv"], 0);
    env.ok(&["reprocess"], 0);
    let s = json(&env.ok(&["reprocess", "--json"], 0));
    assert_eq!(s["orders"], 0);
    env.ok(&["verify"], 0);
}

#[test]
fn reprocess_of_one_run_and_of_a_missing_run() {
    let env = Env::new();
    setup(&env, 0);
    env.write("a.csv", csv_file(&[order_rows("A-1", &[(0, 1)])]));
    env.write("b.csv", csv_file(&[order_rows("B-1", &[(0, 1)])]));
    env.ok(&["process", "a.csv"], 3);
    env.ok(&["process", "b.csv"], 3);
    env.write("catalog.csv", catalog(5, 10));
    env.ok(&["inventory", "load", "catalog.csv"], 0);
    let s = json(&env.ok(&["reprocess", "--run", "2", "--json"], 0));
    assert_eq!(
        (s["orders"].as_u64(), s["accepted"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(env
        .read("reports/run-3/accepted.csv")
        .contains("B-1,accepted,b.csv,2"));
    let out = env.run(&["reprocess", "--run", "99"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no run 99"));
}

#[test]
fn runs_list_and_show_describe_the_history() {
    let env = Env::new();
    setup(&env, 1);
    env.write(
        "orders.csv",
        csv_file(&[order_rows("A-1", &[(0, 1)]), order_rows("A-2", &[(0, 1)])]),
    );
    env.ok(&["process", "orders.csv"], 3);
    env.ok(&["process", "orders.csv", "--dry-run"], 3);
    let list = json(&env.ok(&["runs", "list", "--json"], 0));
    assert_eq!(list[0]["id"], 2, "newest first");
    assert_eq!(list[0]["status"], "dry_run");
    assert_eq!(list[1]["status"], "completed");
    assert_eq!(list[1]["accepted"], 1);
    assert_eq!(list[1]["failed"], 1);
    assert_eq!(list[1]["inputs"][0]["path"], "orders.csv");
    assert_eq!(list[1]["inputs"][0]["sha256"].as_str().unwrap().len(), 64);
    let text = env.ok(&["runs", "list"], 0);
    assert!(
        text.lines().count() == 3 && text.contains("orders.csv"),
        "{text}"
    );
    let show = json(&env.ok(&["runs", "show", "1", "--json"], 0));
    assert_eq!(show["errors_by_code"]["INSUFFICIENT_STOCK"], 1);
    assert_eq!(show["units"], 1);
    assert!(env
        .ok(&["runs", "show", "1"], 0)
        .contains("INSUFFICIENT_STOCK"));
    assert_eq!(env.run(&["runs", "show", "7"]).status.code(), Some(2));
}

#[test]
fn report_from_the_database_equals_the_files_in_both_formats() {
    let env = Env::new();
    setup(&env, 1);
    let orders = csv_file(&[
        order_rows("A-1", &[(0, 1)]),
        order_rows("A-2", &[(0, 1), (1, 1)]),
    ]);
    env.write("orders.csv", &orders);
    env.ok(&["process", "orders.csv", "--report-format", "jsonl"], 3);
    env.ok(&["process", "orders.csv"], 3); // A-1 skipped, A-2 fails again
    for (run, ext) in [(1, "jsonl"), (2, "csv")] {
        for kind in ["accepted", "failed"] {
            let from_db = env.ok(&["report", kind, "--run", &run.to_string()], 0);
            assert_eq!(
                from_db,
                env.read(&format!("reports/run-{run}/{kind}.{ext}")),
                "{kind} of run {run}"
            );
        }
    }
    assert!(env
        .read("reports/run-2/accepted.csv")
        .contains("A-1,skipped,"));
    let other = env.ok(&["report", "failed", "--run", "1", "--format", "csv"], 0);
    assert!(other.starts_with("order_id,placed_at,"));
}

#[test]
fn a_closed_pipe_on_stdout_is_not_an_error() {
    let env = Env::new();
    setup(&env, 100_000);
    let orders: Vec<String> = (0..3000)
        .map(|i| order_rows(&format!("P-{i}"), &[(i % 5, 1)]))
        .collect();
    env.write("orders.csv", csv_file(&orders));
    env.ok(&["process", "orders.csv", "-q"], 0);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_orderbatch"))
        .current_dir(env.dir.path())
        .args(["report", "accepted", "--run", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("order_id,"));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A minimal check of the Prometheus text format: comments are HELP/TYPE,
/// samples are `name{label="v",...} number`, and every sample has a TYPE.
fn parse_prometheus(text: &str) -> std::collections::BTreeMap<String, f64> {
    let mut typed = std::collections::HashSet::new();
    let mut samples = std::collections::BTreeMap::new();
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap();
            let name = parts.next().unwrap();
            assert!(name_ok(name), "{line}");
            match kind {
                "TYPE" => {
                    assert!(matches!(parts.next(), Some("gauge" | "counter")), "{line}");
                    typed.insert(name.to_string());
                }
                "HELP" => assert!(parts.next().is_some_and(|h| !h.is_empty())),
                _ => panic!("unknown comment: {line}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value in {line}"));
        let name = series.split('{').next().unwrap();
        assert!(name_ok(name) && typed.contains(name), "{line}");
        if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
            let inner = labels
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .expect(line);
            for pair in inner.split(',') {
                let (k, v) = pair.split_once('=').expect(line);
                assert!(
                    name_ok(k) && v.starts_with('"') && v.ends_with('"'),
                    "{line}"
                );
            }
        }
        samples.insert(series.to_string(), value);
    }
    samples
}

#[test]
fn metrics_parse_and_a_failed_run_keeps_the_last_success_time() {
    let env = Env::new();
    setup(&env, 10);
    env.write(
        "orders.csv",
        csv_file(&[order_rows("A-1", &[(0, 1)]), order_rows("A-2", &[(9, 1)])]),
    );
    env.ok(&["process", "orders.csv", "--metrics-file", "m.prom"], 3);
    let m = parse_prometheus(&env.read("m.prom"));
    assert_eq!(m["orderbatch_last_run_orders{status=\"accepted\"}"], 1.0);
    assert_eq!(m["orderbatch_last_run_orders{status=\"failed\"}"], 1.0);
    assert_eq!(
        m["orderbatch_last_run_order_errors{code=\"UNKNOWN_SKU\"}"],
        1.0
    );
    assert!(m["orderbatch_last_run_duration_seconds"] >= 0.0);
    assert!(m["orderbatch_last_run_input_bytes"] > 100.0);
    assert!(m["orderbatch_last_run_peak_rss_bytes"] > 1e6);
    assert!(m["orderbatch_last_run_cpu_seconds"] >= 0.0);
    assert!(m.contains_key("orderbatch_last_run_stage_seconds{stage=\"apply\"}"));
    // The last success is the run's own end, as the history records it.
    let success = m["orderbatch_last_success_timestamp_seconds"];
    let ended = m["orderbatch_last_run_timestamp_seconds"];
    assert!(success > 1.7e9 && success <= ended && ended - success < 5.0);

    std::thread::sleep(std::time::Duration::from_millis(20));
    env.write(
        "more.csv",
        csv_file(&[order_rows("B-1", &[(9, 1)]), order_rows("B-2", &[(9, 1)])]),
    );
    env.ok(
        &[
            "process",
            "more.csv",
            "--max-errors",
            "1",
            "--metrics-file",
            "m.prom",
        ],
        4,
    );
    let m2 = parse_prometheus(&env.read("m.prom"));
    assert_eq!(m2["orderbatch_last_success_timestamp_seconds"], success);
    assert!(m2["orderbatch_last_run_timestamp_seconds"] > success);
    assert_eq!(m2["orderbatch_last_run_exit_code"], 4.0);
    let leftovers: Vec<_> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temporary metrics file left behind"
    );
}

#[test]
fn verify_finds_a_tampered_ledger() {
    let env = Env::new();
    setup(&env, 10);
    env.ok(&["verify"], 0);
    env.db()
        .execute("UPDATE products SET on_hand = 11 WHERE sku = 'SKU-3'", [])
        .unwrap();
    let out = env.run(&["verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SKU-3"));
    let v = json(&env.ok(&["verify", "--json"], 1));
    assert_eq!(v["ok"], false);
    assert_eq!(v["faults"][0]["sku"], "SKU-3");
}

#[test]
fn verbose_prints_stage_timings() {
    let env = Env::new();
    setup(&env, 10);
    env.write("orders.csv", csv_file(&[order_rows("A-1", &[(0, 1)])]));
    let out = env.run(&["-v", "process", "orders.csv"]);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    for stage in ["read", "validate", "apply", "report", "commit"] {
        assert!(err.contains(stage), "{err}");
    }
}

#[test]
fn a_run_whose_process_is_gone_is_marked_interrupted_and_its_partial_reports_removed() {
    let env = Env::new();
    setup(&env, 10);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    // What a run killed mid-way leaves: a 'running' row and a partial report directory.
    env.db()
        .execute(
            "INSERT INTO runs (id, command, status, started_at, pid, host) VALUES (1, 'process', 'running', 'x', ?1, ?2)",
            rusqlite::params![i64::from(u32::MAX), host.trim()],
        )
        .unwrap();
    env.write("reports/.run-1.partial/accepted.csv", "half");
    // A run names its database and start in its partial directory.
    env.write(
        "reports/.run-1.partial/.orderbatch-run",
        "orderbatch run 1 of orderbatch.db started at x\n",
    );
    env.write("orders.csv", csv_file(&[order_rows("A-1", &[(0, 1)])]));
    env.ok(&["process", "orders.csv"], 0);
    let list = json(&env.ok(&["runs", "list", "--json"], 0));
    assert_eq!(list[1]["id"], 1);
    assert_eq!(list[1]["status"], "interrupted");
    assert_eq!(list[0]["status"], "completed");
    assert!(!env.exists("reports/.run-1.partial"));
    assert!(env.exists("reports/run-2/accepted.csv"));
}

#[test]
fn a_duplicate_never_replaces_the_order_it_repeats() {
    let env = Env::new();
    setup(&env, 2);
    // X-1 fails for stock; its later repeat (other content) is only a duplicate.
    env.write(
        "orders.csv",
        csv_file(&[
            order_rows("X-1", &[(0, 5)]),
            order_rows("Y-1", &[(1, 1)]),
            order_rows("X-1", &[(1, 1)]),
        ]),
    );
    env.ok(&["process", "orders.csv"], 3);
    let show = json(&env.ok(&["runs", "show", "1", "--json"], 0));
    assert_eq!(
        show["failed_still_open"], 1,
        "only the order itself is open: {show}"
    );
    assert_eq!(show["failed_again_in"], serde_json::json!([]));
    env.write("catalog.csv", catalog(5, 10));
    env.ok(&["inventory", "load", "catalog.csv"], 0);
    let s = json(&env.ok(&["reprocess", "--json"], 0));
    assert_eq!(
        (s["orders"].as_u64(), s["accepted"].as_u64()),
        (Some(1), Some(1))
    );
    // The order retried is the first X-1 (five of SKU-0), not its repeat.
    assert_eq!(env.stock()["SKU-0"], 5);
    assert_eq!(env.stock()["SKU-1"], 10, "the repeat's mug was never taken");
    env.ok(&["verify"], 0);
}

#[test]
fn a_retried_order_keeps_the_lines_of_its_rows() {
    let env = Env::new();
    setup(&env, 10);
    let mut text = csv_file(&[order_rows("M-1", &[(0, 1), (1, 1)])]);
    text = text.replacen(",21.00\n", ",99.00\n", 1); // payment_amount differs between the rows
    env.write("orders.csv", text);
    env.ok(&["process", "orders.csv"], 3);
    env.ok(&["reprocess"], 3);
    let failed = env.read("reports/run-2/failed.csv");
    assert!(
        failed.contains("on line 2") && failed.contains("on line 3"),
        "{failed}"
    );
}

#[test]
fn a_catalog_from_standard_input_is_refused_with_a_clear_message() {
    let env = Env::new();
    setup(&env, 10);
    env.write("orders.csv", csv_file(&[order_rows("A-1", &[(0, 1)])]));
    let out = env.run(&["process", "orders.csv", "--catalog", "-"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--catalog needs a file"));
    // inventory load takes standard input with --format.
    let out = env
        .cmd()
        .args(["inventory", "load", "-", "--format", "csv"])
        .write_stdin(catalog(2, 7))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(env.stock()["SKU-1"], 7);
}
