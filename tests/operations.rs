//! Operating orderbatch: history, reprocessing, reports from the database,
//! metrics, concurrency. Each test runs on every backend (a SQLite file and a
//! fresh PostgreSQL database).

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{SystemTime, UNIX_EPOCH};

use common::*;

#[test]
fn two_runs_at_once_never_oversell_and_the_ledger_holds() {
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 25);
        for name in ["a", "b"] {
            let orders: Vec<String> = (0..120)
                .map(|i| order_rows(&format!("{name}-{i}"), &[(i % 3, 1), ((i + 1) % 3, 1)]))
                .collect();
            env.write(&format!("{name}.csv"), csv_file(&orders));
        }
        let spawn = |name: &str| {
            env.spawnable()
                .args(["process", &format!("{name}.csv"), "--json", "--out", name])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (first, second) = (spawn("a"), spawn("b"));
        let mut units = 0;
        for child in [first, second] {
            let out = child.wait_with_output().unwrap();
            assert_eq!(
                out.status.code(),
                Some(3),
                "{b:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let s = json(&String::from_utf8_lossy(&out.stdout));
            assert!(
                s["failed"].as_u64().unwrap() > 0,
                "{b:?}: stock is tight on purpose: {s}"
            );
            units += s["units"].as_i64().unwrap();
        }
        let stock = env.stock();
        assert!(stock.values().all(|n| *n >= 0), "{b:?}: {stock:?}");
        let moved: i64 = (0..5).map(|i| 25 - stock[&format!("SKU-{i}")]).sum();
        assert_eq!(
            moved, units,
            "{b:?}: stock moved equals the units both runs report"
        );
        // Orders pair the skus (0,1), (1,2), (2,0): selling stops only when at
        // least two of the three are sold out, whatever the interleaving.
        let sold_out = (0..3).filter(|i| stock[&format!("SKU-{i}")] == 0).count();
        assert!(sold_out >= 2, "{b:?}: {stock:?}");
        env.ok(&["verify"], 0);
    }
}

#[test]
fn reprocess_after_a_restock_accepts_exactly_the_stock_failures_once() {
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 2);
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
        load_catalog(&env, 10);
        let s = json(&env.ok(&["reprocess", "--json"], 3));
        assert_eq!(s["run_id"], 2, "{b:?}: {s}");
        assert_eq!(s["orders"], 3, "{b:?}: {s}");
        assert_eq!(s["accepted"], 2, "{b:?}: {s}");
        assert_eq!(s["errors_by_code"]["UNKNOWN_SKU"], 1, "{b:?}: {s}");
        let accepted = env.read("reports/run-2/accepted.csv");
        assert!(
            accepted.contains("A-2,accepted,orders.csv,3,") && accepted.contains("A-3,accepted,"),
            "{b:?}: {accepted}"
        );
        assert_eq!(env.stock()["SKU-0"], 8, "{b:?}");
        let ledger = env
            .count("SELECT count(*) FROM stock_ledger WHERE reason = 'reprocess' AND run_id = 2");
        assert_eq!(ledger, 2, "{b:?}: one ledger entry per sku moved");

        // The unknown sku still fails; the accepted ones are never retried again.
        let s = json(&env.ok(&["reprocess", "--json"], 3));
        assert_eq!(
            (s["orders"].as_u64(), s["accepted"].as_u64()),
            (Some(1), Some(0)),
            "{b:?}: {s}"
        );
        assert_eq!(env.stock()["SKU-0"], 8, "{b:?}");
        // The history says who resolved what.
        let show = json(&env.ok(&["runs", "show", "1", "--json"], 0));
        assert_eq!(show["failed_resolved_by"][0]["run"], 2, "{b:?}: {show}");
        assert_eq!(show["failed_resolved_by"][0]["orders"], 2, "{b:?}: {show}");
        let show2 = json(&env.ok(&["runs", "show", "2", "--json"], 0));
        assert_eq!(
            show2["retried_runs"],
            serde_json::json!([1]),
            "{b:?}: {show2}"
        );
        // With nothing open at all, a reprocess retries nothing.
        env.ok(&["process", "orders.csv", "--catalog", "catalog.csv"], 3);
        env.write("catalog.csv", catalog(10, 10));
        env.ok(&["inventory", "load", "catalog.csv"], 0);
        env.ok(&["reprocess"], 0);
        let s = json(&env.ok(&["reprocess", "--json"], 0));
        assert_eq!(s["orders"], 0, "{b:?}: {s}");
        env.ok(&["verify"], 0);
    }
}

#[test]
fn reprocess_of_one_run_and_of_a_missing_run() {
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 0);
        env.write("a.csv", csv_file(&[order_rows("A-1", &[(0, 1)])]));
        env.write("b.csv", csv_file(&[order_rows("B-1", &[(0, 1)])]));
        env.ok(&["process", "a.csv"], 3);
        env.ok(&["process", "b.csv"], 3);
        load_catalog(&env, 10);
        let s = json(&env.ok(&["reprocess", "--run", "2", "--json"], 0));
        assert_eq!(
            (s["orders"].as_u64(), s["accepted"].as_u64()),
            (Some(1), Some(1)),
            "{b:?}: {s}"
        );
        let accepted = env.read("reports/run-3/accepted.csv");
        assert!(
            accepted.contains("B-1,accepted,b.csv,2"),
            "{b:?}: {accepted}"
        );
        let out = env.run(&["reprocess", "--run", "99"]);
        assert_eq!(out.status.code(), Some(2), "{b:?}: {out:?}");
        assert_one_error_line(&out, &["no run 99"]);
    }
}

#[test]
fn runs_list_and_show_describe_the_history() {
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 1);
        env.write(
            "orders.csv",
            csv_file(&[order_rows("A-1", &[(0, 1)]), order_rows("A-2", &[(0, 1)])]),
        );
        env.ok(&["process", "orders.csv"], 3);
        env.ok(&["process", "orders.csv", "--dry-run"], 3);
        let list = json(&env.ok(&["runs", "list", "--json"], 0));
        assert_eq!(list[0]["id"], 2, "{b:?}: newest first: {list}");
        assert_eq!(list[0]["status"], "dry_run", "{b:?}: {list}");
        assert_eq!(list[1]["status"], "completed", "{b:?}: {list}");
        assert_eq!(list[1]["accepted"], 1, "{b:?}: {list}");
        assert_eq!(list[1]["failed"], 1, "{b:?}: {list}");
        assert_eq!(list[1]["inputs"][0]["path"], "orders.csv", "{b:?}: {list}");
        assert_eq!(
            list[1]["inputs"][0]["sha256"].as_str().unwrap().len(),
            64,
            "{b:?}: {list}"
        );
        let text = env.ok(&["runs", "list"], 0);
        assert_eq!(text.lines().count(), 3, "{b:?}: {text}");
        assert!(text.contains("orders.csv"), "{b:?}: {text}");
        let show = json(&env.ok(&["runs", "show", "1", "--json"], 0));
        assert_eq!(
            show["errors_by_code"]["INSUFFICIENT_STOCK"], 1,
            "{b:?}: {show}"
        );
        assert_eq!(show["units"], 1, "{b:?}: {show}");
        let text = env.ok(&["runs", "show", "1"], 0);
        assert!(text.contains("INSUFFICIENT_STOCK"), "{b:?}: {text}");
        let out = env.run(&["runs", "show", "7"]);
        assert_eq!(out.status.code(), Some(2), "{b:?}: {out:?}");
    }
}

#[test]
fn report_from_the_database_equals_the_files_in_both_formats() {
    let orders = csv_file(&[
        order_rows("A-1", &[(0, 1)]),
        order_rows("A-2", &[(0, 1), (1, 1)]),
    ]);
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 1);
        env.write("orders.csv", &orders);
        env.ok(&["process", "orders.csv", "--report-format", "jsonl"], 3);
        env.ok(&["process", "orders.csv"], 3); // A-1 skipped, A-2 fails again
        for (run, ext) in [(1, "jsonl"), (2, "csv")] {
            for kind in ["accepted", "failed"] {
                let from_db = env.ok(&["report", kind, "--run", &run.to_string()], 0);
                assert_eq!(
                    from_db,
                    env.read(&format!("reports/run-{run}/{kind}.{ext}")),
                    "{b:?}: {kind} of run {run}"
                );
            }
        }
        let accepted = env.read("reports/run-2/accepted.csv");
        assert!(accepted.contains("A-1,skipped,"), "{b:?}: {accepted}");
        let other = env.ok(&["report", "failed", "--run", "1", "--format", "csv"], 0);
        assert!(other.starts_with("order_id,placed_at,"), "{b:?}: {other}");
    }
}

#[test]
fn a_closed_pipe_on_stdout_is_not_an_error() {
    let orders: Vec<String> = (0..3000)
        .map(|i| order_rows(&format!("P-{i}"), &[(i % 5, 1)]))
        .collect();
    let orders = csv_file(&orders);
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 100_000);
        env.write("orders.csv", &orders);
        env.ok(&["process", "orders.csv", "-q"], 0);
        let mut child = env
            .spawnable()
            .args(["report", "accepted", "--run", "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(first.starts_with("order_id,"), "{b:?}: {first}");
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{b:?}: {out:?}");
        assert!(
            out.stderr.is_empty(),
            "{b:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
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

/// Unix time now, in seconds.
fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// An RFC 3339 time of the history in Unix milliseconds.
fn unix_ms(rfc3339: &serde_json::Value) -> i64 {
    let text = rfc3339
        .as_str()
        .unwrap_or_else(|| panic!("a time: {rfc3339}"));
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{e}: {text}"))
        .timestamp_millis()
}

#[test]
fn metrics_parse_and_a_failed_run_keeps_the_last_success_time() {
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 10);
        env.write(
            "orders.csv",
            csv_file(&[order_rows("A-1", &[(0, 1)]), order_rows("A-2", &[(9, 1)])]),
        );
        let before = unix_now();
        env.ok(&["process", "orders.csv", "--metrics-file", "m.prom"], 3);
        let after = unix_now();
        let m = parse_prometheus(&env.read("m.prom"));
        assert_eq!(
            m["orderbatch_last_run_orders{status=\"accepted\"}"], 1.0,
            "{b:?}"
        );
        assert_eq!(
            m["orderbatch_last_run_orders{status=\"skipped\"}"], 0.0,
            "{b:?}"
        );
        assert_eq!(
            m["orderbatch_last_run_orders{status=\"failed\"}"], 1.0,
            "{b:?}"
        );
        assert_eq!(
            m["orderbatch_last_run_order_errors{code=\"UNKNOWN_SKU\"}"], 1.0,
            "{b:?}"
        );
        assert_eq!(m["orderbatch_last_run_exit_code"], 3.0, "{b:?}");
        assert_eq!(
            m["orderbatch_last_run_input_bytes"],
            std::fs::metadata(env.path("orders.csv")).unwrap().len() as f64,
            "{b:?}: the bytes of the input file"
        );
        assert!(m["orderbatch_last_run_peak_rss_bytes"] > 1e6, "{b:?}");
        assert!(m["orderbatch_last_run_cpu_seconds"] >= 0.0, "{b:?}");
        for stage in ["read", "validate", "apply", "report", "commit"] {
            let key = format!("orderbatch_last_run_stage_seconds{{stage=\"{stage}\"}}");
            assert!(m.contains_key(&key), "{b:?}: {key}");
        }
        // The run's duration and the last success are the history's, to the
        // millisecond; the run's own timestamp is when it ended.
        let list = json(&env.ok(&["runs", "list", "--json"], 0));
        assert_eq!(list[0]["id"], 1, "{b:?}: {list}");
        let ms = |v: f64| (v * 1000.0).round() as i64;
        assert_eq!(
            Some(ms(m["orderbatch_last_run_duration_seconds"])),
            list[0]["duration_ms"].as_i64(),
            "{b:?}: {list}"
        );
        let success = m["orderbatch_last_success_timestamp_seconds"];
        assert_eq!(
            ms(success),
            unix_ms(&list[0]["finished_at"]),
            "{b:?}: {list}"
        );
        let ended = m["orderbatch_last_run_timestamp_seconds"];
        assert!(
            before - 0.001 <= ended && ended <= after + 0.001,
            "{b:?}: {before} <= {ended} <= {after}"
        );

        env.write(
            "more.csv",
            csv_file(&[order_rows("B-1", &[(9, 1)]), order_rows("B-2", &[(9, 1)])]),
        );
        let before = unix_now();
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
        let after = unix_now();
        let m2 = parse_prometheus(&env.read("m.prom"));
        assert_eq!(
            m2["orderbatch_last_success_timestamp_seconds"], success,
            "{b:?}"
        );
        let ended = m2["orderbatch_last_run_timestamp_seconds"];
        assert!(
            before - 0.001 <= ended && ended <= after + 0.001,
            "{b:?}: {before} <= {ended} <= {after}"
        );
        assert_eq!(m2["orderbatch_last_run_exit_code"], 4.0, "{b:?}");
        let leftovers: Vec<_> = std::fs::read_dir(env.dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
            .collect();
        assert!(
            leftovers.is_empty(),
            "{b:?}: no temporary metrics file left behind: {leftovers:?}"
        );
    }
}

#[test]
fn verify_finds_a_tampered_ledger() {
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 10);
        env.ok(&["verify"], 0);
        env.sql("UPDATE products SET on_hand = 11 WHERE sku = 'SKU-3'");
        let out = env.run(&["verify"]);
        assert_eq!(out.status.code(), Some(1), "{b:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{b:?}: one line per fault: {err}");
        assert!(err.contains("SKU-3"), "{b:?}: {err}");
        let v = json(&env.ok(&["verify", "--json"], 1));
        assert_eq!(v["ok"], false, "{b:?}: {v}");
        assert_eq!(v["faults"].as_array().map(Vec::len), Some(1), "{b:?}: {v}");
        let f = &v["faults"][0];
        assert_eq!(
            (&f["sku"], &f["on_hand"], &f["ledger_sum"]),
            (&"SKU-3".into(), &11.into(), &10.into()),
            "{b:?}: {v}"
        );
    }
}

#[test]
fn verbose_prints_stage_timings() {
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 10);
        env.write("orders.csv", csv_file(&[order_rows("A-1", &[(0, 1)])]));
        let out = env.run(&["-v", "process", "orders.csv"]);
        assert_eq!(out.status.code(), Some(0), "{b:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(
            lines.len(),
            2,
            "{b:?}: the timings, then the summary: {err}"
        );
        assert!(
            lines[1].starts_with("run 1 completed: 1 orders: 1 accepted,"),
            "{b:?}: {err}"
        );
        for stage in ["read", "validate", "apply", "report", "commit"] {
            let secs = lines[0]
                .split_once(&format!(" {stage} "))
                .and_then(|(_, rest)| rest.split(' ').next())
                .and_then(|n| n.parse::<f64>().ok());
            assert!(
                secs.is_some_and(|s| s >= 0.0),
                "{b:?}: seconds of {stage}: {err}"
            );
        }
    }
}

#[test]
fn a_run_whose_process_is_gone_is_marked_interrupted_and_its_partial_reports_removed() {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 10);
        // What a run killed mid-way leaves: a 'running' row (of a process
        // that is gone, on this host) and a partial report directory.
        env.sql(&format!(
            "INSERT INTO runs (id, command, status, started_at, pid, host) VALUES (1, 'process', 'running', 'x', {}, '{}')",
            u32::MAX,
            host.trim()
        ));
        if b == Backend::Postgres {
            // On PostgreSQL the run took its id from the sequence.
            env.sql("SELECT setval('runs_id_seq', 1)");
        }
        env.write("reports/.run-1.partial/accepted.csv", "half");
        // A run names its database and start in its partial directory.
        env.write(
            "reports/.run-1.partial/.orderbatch-run",
            format!("orderbatch run 1 of {} started at x\n", env.db),
        );
        env.write("orders.csv", csv_file(&[order_rows("A-1", &[(0, 1)])]));
        env.ok(&["process", "orders.csv"], 0);
        let list = json(&env.ok(&["runs", "list", "--json"], 0));
        assert_eq!(list[1]["id"], 1, "{b:?}: {list}");
        assert_eq!(list[1]["status"], "interrupted", "{b:?}: {list}");
        assert_eq!(list[0]["id"], 2, "{b:?}: {list}");
        assert_eq!(list[0]["status"], "completed", "{b:?}: {list}");
        assert!(!env.exists("reports/.run-1.partial"), "{b:?}");
        assert!(env.exists("reports/run-2/accepted.csv"), "{b:?}");
    }
}

#[test]
fn a_duplicate_never_replaces_the_order_it_repeats() {
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 2);
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
            "{b:?}: only the order itself is open: {show}"
        );
        assert_eq!(
            show["failed_again_in"],
            serde_json::json!([]),
            "{b:?}: {show}"
        );
        load_catalog(&env, 10);
        let s = json(&env.ok(&["reprocess", "--json"], 0));
        assert_eq!(
            (s["orders"].as_u64(), s["accepted"].as_u64()),
            (Some(1), Some(1)),
            "{b:?}: {s}"
        );
        // The order retried is the first X-1 (five of SKU-0), not its repeat.
        assert_eq!(env.stock()["SKU-0"], 5, "{b:?}");
        assert_eq!(
            env.stock()["SKU-1"],
            10,
            "{b:?}: the repeat's mug was never taken"
        );
        env.ok(&["verify"], 0);
    }
}

#[test]
fn a_retried_order_keeps_the_lines_of_its_rows() {
    let mut text = csv_file(&[order_rows("M-1", &[(0, 1), (1, 1)])]);
    text = text.replacen(",21.00\n", ",99.00\n", 1); // payment_amount differs between the rows
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 10);
        env.write("orders.csv", &text);
        env.ok(&["process", "orders.csv"], 3);
        env.ok(&["reprocess"], 3);
        let failed = env.read("reports/run-2/failed.csv");
        assert!(
            failed.contains("on line 2") && failed.contains("on line 3"),
            "{b:?}: {failed}"
        );
    }
}

#[test]
fn a_catalog_from_standard_input_is_refused_with_a_clear_message() {
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 10);
        env.write("orders.csv", csv_file(&[order_rows("A-1", &[(0, 1)])]));
        let out = env.run(&["process", "orders.csv", "--catalog", "-"]);
        assert_eq!(out.status.code(), Some(2), "{b:?}: {out:?}");
        assert_one_error_line(&out, &["--catalog needs a file"]);
        // inventory load takes standard input with --format.
        let out = env
            .cmd()
            .args(["inventory", "load", "-", "--format", "csv"])
            .write_stdin(catalog(2, 7))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{b:?}: {out:?}");
        assert_eq!(env.stock()["SKU-1"], 7, "{b:?}");
    }
}
