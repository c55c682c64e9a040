//! End-to-end runs of `orderbatch process`, each on every backend (a SQLite
//! file and a fresh PostgreSQL database) unless it tests SQLite itself.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Stdio};

use common::*;

fn summary(env: &Env, run: u32) -> serde_json::Value {
    json(&env.read(&format!("reports/run-{run}/summary.json")))
}

#[test]
fn a_run_accepts_good_orders_takes_stock_and_a_rerun_skips_everything() {
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 10);
        env.write(
            "orders.csv",
            csv_file(&[
                order_rows("A-1", &[(0, 2), (1, 1)]),
                order_rows("A-2", &[(0, 3)]),
            ]),
        );
        env.ok(&["process", "orders.csv"], 0);
        let stock = env.stock();
        assert_eq!(stock["SKU-0"], 5, "{b:?}");
        assert_eq!(stock["SKU-1"], 9, "{b:?}");
        let s = summary(&env, 1);
        assert_eq!(
            (s["orders"].as_u64(), s["accepted"].as_u64()),
            (Some(2), Some(2)),
            "{b:?}: {s}"
        );
        assert_eq!(
            (s["lines"].as_u64(), s["units"].as_u64()),
            (Some(3), Some(6)),
            "{b:?}: {s}"
        );
        let accepted = env.read("reports/run-1/accepted.csv");
        assert!(
            accepted.contains(
                "A-1,accepted,orders.csv,2,2026-11-25T22:14:03Z,buyer@example.com,EUR,2,3,31.00,card"
            ),
            "{b:?}: {accepted}"
        );

        env.ok(&["process", "orders.csv"], 0);
        assert_eq!(env.stock(), stock, "{b:?}: a re-run changes no stock");
        let s = summary(&env, 2);
        assert_eq!(
            (s["accepted"].as_u64(), s["skipped"].as_u64()),
            (Some(0), Some(2)),
            "{b:?}: {s}"
        );
        let accepted = env.read("reports/run-2/accepted.csv");
        assert!(accepted.contains("A-2,skipped,"), "{b:?}: {accepted}");
        env.ok(&["verify"], 0);
    }
}

#[test]
fn same_id_with_other_content_is_an_order_id_conflict() {
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 10);
        env.write("a.csv", csv_file(&[order_rows("A-1", &[(0, 1)])]));
        env.write("b.csv", csv_file(&[order_rows("A-1", &[(0, 2)])]));
        env.ok(&["process", "a.csv"], 0);
        env.ok(&["process", "b.csv"], 3);
        let failed = env.read("reports/run-2/failed.csv");
        let rows = parse_csv(failed.as_bytes());
        assert_eq!(rows.len(), 1, "{b:?}: {failed}");
        assert_eq!(
            rows[0]["error_code"], "ORDER_ID_CONFLICT",
            "{b:?}: {failed}"
        );
        assert_eq!(env.stock()["SKU-0"], 9, "{b:?}");
    }
}

#[test]
fn dry_run_checks_stock_writes_reports_and_commits_nothing() {
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 3);
        env.write(
            "orders.csv",
            csv_file(&[order_rows("A-1", &[(0, 2)]), order_rows("A-2", &[(0, 2)])]),
        );
        env.ok(&["process", "orders.csv", "--dry-run"], 3);
        assert_eq!(env.stock()["SKU-0"], 3, "{b:?}");
        assert_eq!(env.count("SELECT count(*) FROM orders"), 0, "{b:?}");
        assert_eq!(env.count("SELECT count(*) FROM failed_orders"), 0, "{b:?}");
        assert_eq!(summary(&env, 1)["status"], "dry_run", "{b:?}");
        let failed = env.read("reports/run-1/failed.csv");
        let rows = parse_csv(failed.as_bytes());
        assert_eq!(
            (rows.len(), rows[0]["order_id"].as_str()),
            (1, "A-2"),
            "{b:?}: {failed}"
        );
        assert_eq!(
            rows[0]["error_code"], "INSUFFICIENT_STOCK",
            "{b:?}: stock is checked in a dry run: {failed}"
        );
        assert_eq!(env.run_statuses()[&1], "dry_run", "{b:?}");
        // The same file for real afterwards behaves as if the dry run never happened.
        env.ok(&["process", "orders.csv"], 3);
        assert_eq!(env.stock()["SKU-0"], 1, "{b:?}");
    }
}

#[test]
fn max_errors_aborts_with_4_commits_nothing_and_writes_no_reports() {
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 10);
        let mut orders = vec![order_rows("A-1", &[(0, 1)])];
        for i in 0..3 {
            orders.push(order_rows(&format!("BAD-{i}"), &[(9, 1)]));
        }
        env.write("orders.csv", csv_file(&orders));
        env.ok(&["process", "orders.csv", "--max-errors", "2"], 4);
        assert_eq!(env.stock()["SKU-0"], 10, "{b:?}");
        assert_eq!(env.count("SELECT count(*) FROM orders"), 0, "{b:?}");
        assert_eq!(env.count("SELECT count(*) FROM failed_orders"), 0, "{b:?}");
        assert!(!env.exists("reports/run-1"), "{b:?}");
        assert_eq!(env.run_statuses()[&1], "aborted", "{b:?}");
        // Exactly at the limit is not more than N: the run completes.
        env.ok(&["process", "orders.csv", "--max-errors", "3"], 3);
        assert_eq!(env.stock()["SKU-0"], 9, "{b:?}");
    }
}

#[test]
fn every_jobs_count_gives_the_same_reports_and_stock() {
    let mut orders = Vec::new();
    for i in 0..300usize {
        let sku = i % 7; // skus 5 and 6 are unknown
        orders.push(order_rows(
            &format!("O-{i}"),
            &[(sku, (i % 3 + 1) as u32), ((i * 3) % 5, 1)],
        ));
    }
    orders.push(order_rows("O-5", &[(0, 1)])); // duplicate in input
    let text = csv_file(&orders);
    // The outcome is the same for every --jobs, and on every backend.
    let mut results = Vec::new();
    for b in backends() {
        for jobs in ["1", "4"] {
            let env = env_for(b);
            load_catalog(&env, 40);
            env.write("orders.csv", &text);
            env.ok(&["process", "orders.csv", "--jobs", jobs], 3);
            results.push((
                (b, jobs),
                (
                    env.read("reports/run-1/accepted.csv"),
                    env.read("reports/run-1/failed.csv"),
                    env.stock(),
                ),
            ));
        }
    }
    let (first, want) = &results[0];
    let codes: std::collections::BTreeSet<String> = parse_csv(want.1.as_bytes())
        .into_iter()
        .map(|r| r["error_code"].clone())
        .collect();
    assert_eq!(
        codes,
        ["DUPLICATE_IN_INPUT", "INSUFFICIENT_STOCK", "UNKNOWN_SKU"]
            .map(String::from)
            .into(),
        "{first:?}"
    );
    for (which, got) in &results[1..] {
        assert_eq!(got, want, "{which:?} differs from {first:?}");
    }
}

#[test]
fn a_failed_report_fed_back_after_a_restock_is_accepted() {
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 1);
        env.write(
            "orders.csv",
            csv_file(&[
                order_rows("A-1", &[(0, 1)]),
                order_rows("A-2", &[(0, 2), (1, 1)]),
            ]),
        );
        env.ok(&["process", "orders.csv"], 3);
        let failed = env.read("reports/run-1/failed.csv");
        let rows = parse_csv(failed.as_bytes());
        assert_eq!(rows.len(), 2, "{b:?}: one row per input row: {failed}");
        assert!(
            rows.iter()
                .all(|r| r["order_id"] == "A-2" && r["error_code"] == "INSUFFICIENT_STOCK"),
            "{b:?}: {failed}"
        );
        std::fs::copy(env.path("reports/run-1/failed.csv"), env.path("retry.csv")).unwrap();
        load_catalog(&env, 50);
        env.ok(&["process", "retry.csv"], 0);
        let accepted = env.read("reports/run-2/accepted.csv");
        assert!(
            accepted.contains("A-2,accepted,retry.csv,2,"),
            "{b:?}: {accepted}"
        );
        assert_eq!(env.stock()["SKU-0"], 48, "{b:?}");
        // The failure is resolved by run 2: nothing is left to reprocess.
        assert_eq!(
            env.count("SELECT count(*) FROM failed_orders WHERE resolved_by = 2"),
            1,
            "{b:?}"
        );
        env.ok(&["reprocess"], 0);
        assert_eq!(summary(&env, 3)["orders"], 0, "{b:?}");
        env.ok(&["verify"], 0);
    }
}

#[test]
fn a_missing_column_exits_2_naming_it_and_changes_nothing() {
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 10);
        let text = csv_file(&[order_rows("A-1", &[(0, 1)])]).replace("payment_ref,", "");
        env.write("orders.csv", text);
        let out = env.run(&["process", "orders.csv"]);
        assert_eq!(out.status.code(), Some(2), "{b:?}: {out:?}");
        assert_one_error_line(&out, &["orders.csv", "payment_ref"]);
        assert_eq!(
            env.count("SELECT count(*) FROM runs"),
            0,
            "{b:?}: nothing was started"
        );
        assert!(!env.exists("reports"), "{b:?}");
    }
}

#[test]
fn ragged_rows_and_invalid_utf8_are_malformed_records_and_the_run_goes_on() {
    let mut bytes = csv_file(&[order_rows("A-1", &[(0, 1)])]).into_bytes();
    bytes.extend_from_slice(b"B-1,too,few\n");
    bytes.extend_from_slice(
        &order_rows("C-1", &[(0, 1)])
            .replace("buyer", "b\u{e9}")
            .into_bytes(),
    );
    let at = bytes.len() - 60;
    bytes[at] = 0xff;
    bytes.extend_from_slice(order_rows("D-1", &[(1, 1)]).as_bytes());
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 10);
        env.write("orders.csv", &bytes);
        // Named as UTF-8: every row is read, a bad one is its own failure
        // (without --encoding, a bad byte this near the top refuses the file).
        env.ok(&["process", "orders.csv", "--encoding", "utf-8"], 3);
        let s = summary(&env, 1);
        assert_eq!(s["errors_by_code"]["MALFORMED_RECORD"], 2, "{b:?}: {s}");
        assert_eq!(s["accepted"], 2, "{b:?}: {s}");
        let failed = env.read("reports/run-1/failed.csv");
        assert!(
            failed.contains("B-1,too,few"),
            "{b:?}: raw text kept: {failed}"
        );
        let rows = parse_csv(failed.as_bytes());
        assert_eq!(rows[0]["source_line"], "3", "{b:?}: {failed}");
        assert_eq!(rows[0]["failure_id"], "F1-2", "{b:?}: {failed}");
        assert_eq!(rows[1]["source_line"], "4", "{b:?}: {failed}");
        assert_eq!(rows[1]["error_code"], "MALFORMED_RECORD", "{b:?}: {failed}");
    }
}

#[test]
fn bom_and_crlf_files_work() {
    let text = format!(
        "\u{feff}{}",
        csv_file(&[order_rows("A-1", &[(0, 1)]), order_rows("A-2", &[(1, 2)])])
    )
    .replace('\n', "\r\n");
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 10);
        env.write("orders.csv", &text);
        env.ok(&["process", "orders.csv"], 0);
        assert_eq!(summary(&env, 1)["accepted"], 2, "{b:?}");
    }
}

#[test]
fn gzip_and_stdin_inputs_work() {
    let text = csv_file(&[order_rows("G-1", &[(0, 1)])]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let jsonl = r#"{"order_id":"S-1","placed_at":"2026-11-25T22:14:03Z","customer_email":"a@b.co","currency":"EUR","payment_method":"paypal","payment_ref":"r","payment_amount":20.00,"items":[{"sku":"SKU-0","quantity":2,"unit_price":"10.00"}]}"#;
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 10);
        env.write("orders.csv.gz", &gz);
        env.ok(&["process", "orders.csv.gz"], 0);
        let accepted = env.read("reports/run-1/accepted.csv");
        assert!(
            accepted.contains("G-1,accepted,orders.csv.gz,2"),
            "{b:?}: {accepted}"
        );

        let out = env
            .cmd()
            .args(["process", "-", "--format", "jsonl", "--json"])
            .write_stdin(format!("{jsonl}\n"))
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{b:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("stdout holds only the summary");
        assert_eq!(s["accepted"], 1, "{b:?}: {s}");
        assert_eq!(s["inputs"][0]["path"], "-", "{b:?}: {s}");
        assert_eq!(
            s["inputs"][0]["sha256"].as_str().unwrap().len(),
            64,
            "{b:?}: {s}"
        );
        assert_eq!(env.stock()["SKU-0"], 7, "{b:?}");
        // Standard input needs --format.
        let out = env
            .cmd()
            .args(["process", "-"])
            .write_stdin("x")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{b:?}: {out:?}");
    }
}

#[test]
fn jsonl_reports_are_valid_jsonl_input() {
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 1);
        env.write("orders.csv", csv_file(&[order_rows("A-1", &[(0, 2)])]));
        env.ok(&["process", "orders.csv", "--report-format", "jsonl"], 3);
        let failed = env.read("reports/run-1/failed.jsonl");
        let v = json(failed.lines().next().unwrap());
        assert_eq!(v["error_code"], "INSUFFICIENT_STOCK", "{b:?}: {v}");
        assert_eq!(v["items"][0]["quantity"], "2", "{b:?}: {v}");
        load_catalog(&env, 10);
        std::fs::copy(
            env.path("reports/run-1/failed.jsonl"),
            env.path("retry.jsonl"),
        )
        .unwrap();
        env.ok(&["process", "retry.jsonl"], 0);
        assert_eq!(env.stock()["SKU-0"], 8, "{b:?}");
    }
}

#[test]
fn card_numbers_never_reach_the_reports_or_the_database_in_clear() {
    let text = csv_file(&[order_rows("P-1", &[(0, 1)]).replace("ref-P-1", "4111 1111 1111 1111")]);
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 10);
        env.write("orders.csv", &text);
        let out = env.run(&["process", "orders.csv"]);
        assert_eq!(out.status.code(), Some(3), "{b:?}: {out:?}");
        let failed = env.read("reports/run-1/failed.csv");
        let rows = parse_csv(failed.as_bytes());
        assert_eq!(rows[0]["error_code"], "PAN_DETECTED", "{b:?}: {failed}");
        assert_eq!(
            rows[0]["payment_ref"], "************1111",
            "{b:?}: {failed}"
        );
        // Every table (SQLite: the database file and its WAL), stderr, the report.
        let mut all = env.dump();
        all.extend(out.stderr);
        all.extend(failed.into_bytes());
        let hay = String::from_utf8_lossy(&all);
        assert!(
            hay.contains("************1111"),
            "{b:?}: the masked form is stored"
        );
        assert!(!hay.contains("4111 1111 1111 1111"), "{b:?}");
        assert!(!hay.contains("4111111111111111"), "{b:?}");
    }
}

/// SQLite only: the default database is a file in the working directory.
#[test]
fn the_db_flag_beats_the_environment_which_beats_the_default() {
    let env = Env::new();
    env.cmd()
        .args(["init"])
        .env("ORDERBATCH_DB", "env.db")
        .assert()
        .success();
    assert!(env.exists("env.db") && !env.exists("orderbatch.db"));
    env.cmd()
        .args(["init", "--db", "flag.db"])
        .env("ORDERBATCH_DB", "env.db")
        .assert()
        .success();
    assert!(env.exists("flag.db"));
    env.ok(&["init"], 0);
    assert!(env.exists("orderbatch.db"));
}

#[test]
fn quiet_success_prints_nothing_and_failures_still_speak() {
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 10);
        env.write("orders.csv", csv_file(&[order_rows("A-1", &[(0, 1)])]));
        let out = env.run(&["process", "orders.csv", "-q"]);
        assert_eq!(out.status.code(), Some(0), "{b:?}: {out:?}");
        assert!(
            out.stdout.is_empty() && out.stderr.is_empty(),
            "{b:?}: {out:?}"
        );
        env.write("bad.csv", csv_file(&[order_rows("B-1", &[(9, 1)])]));
        let out = env.run(&["-q", "process", "bad.csv"]);
        assert_eq!(out.status.code(), Some(3), "{b:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with(
                "run 2 completed: 1 orders: 0 accepted, 0 skipped, 1 failed (UNKNOWN_SKU 1);"
            ) && err.lines().count() == 1,
            "{b:?}: {err}"
        );
    }
}

#[test]
fn inventory_export_loads_back_as_is() {
    for b in backends() {
        let env = env_for(b);
        env.write(
            "catalog.csv",
            "sku,name,unit_price,currency,on_hand\nA,\"Mug, large\",12.50,EUR,3\nB,=cmd,500,JPY,0\nC,Oud,1.250,KWD,7\n",
        );
        env.ok(&["inventory", "load", "catalog.csv"], 0);
        let first = env.ok(&["inventory", "export"], 0);
        assert_eq!(
            first,
            "sku,name,unit_price,currency,on_hand\nA,\"Mug, large\",12.50,EUR,3\nB,'=cmd,500,JPY,0\nC,Oud,1.250,KWD,7\n",
            "{b:?}"
        );
        // Into a second, empty database of the same backend.
        let other = env_for(b);
        other.write("export.csv", &first);
        other.ok(&["inventory", "load", "export.csv"], 0);
        let second = other.ok(&["inventory", "export"], 0);
        assert_eq!(first, second, "{b:?}");
    }
}

#[test]
fn a_bad_catalog_changes_nothing_and_names_the_line() {
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 10);
        env.write(
            "bad.csv",
            "sku,name,unit_price,currency,on_hand\nSKU-0,x,10.00,EUR,99\nSKU-1,y,1.5.0,EUR,1\n",
        );
        let out = env.run(&["inventory", "load", "bad.csv"]);
        assert_eq!(out.status.code(), Some(2), "{b:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("line 3"), "{b:?}: {err}");
        assert_eq!(env.stock()["SKU-0"], 10, "{b:?}");
        // The same through --catalog: exit 2 before any order.
        env.write("orders.csv", csv_file(&[order_rows("A-1", &[(0, 1)])]));
        let out = env.run(&["process", "orders.csv", "--catalog", "bad.csv"]);
        assert_eq!(out.status.code(), Some(2), "{b:?}: {out:?}");
        assert_eq!(env.count("SELECT count(*) FROM orders"), 0, "{b:?}");
        assert_eq!(env.stock()["SKU-0"], 10, "{b:?}");
    }
}

/// Another session holding what a run needs until it is released: SQLite's
/// write lock, or on PostgreSQL the stock row of SKU-0, locked FOR UPDATE as
/// a concurrent run locks the stock it takes.
enum LockHolder {
    Sqlite(rusqlite::Connection),
    Postgres(Child, ChildStdin),
}

impl LockHolder {
    /// Returns once the lock is held.
    fn take(env: &Env) -> LockHolder {
        match env.backend {
            Backend::Sqlite => {
                let c = env.db();
                c.execute_batch("BEGIN IMMEDIATE").unwrap();
                LockHolder::Sqlite(c)
            }
            Backend::Postgres => {
                let mut psql = std::process::Command::new(format!("{}/psql", pg::PG_BIN));
                for (k, _) in std::env::vars_os() {
                    if k.to_string_lossy().starts_with("PG") {
                        psql.env_remove(k);
                    }
                }
                let mut child = psql
                    .args([
                        "-X",
                        "-q",
                        "-A",
                        "-t",
                        "-v",
                        "ON_ERROR_STOP=1",
                        "-d",
                        &env.db,
                    ])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap();
                let mut stdin = child.stdin.take().unwrap();
                stdin
                    .write_all(
                        b"BEGIN;\nSELECT sku FROM products WHERE sku = 'SKU-0' FOR UPDATE;\n",
                    )
                    .unwrap();
                stdin.flush().unwrap();
                // The row comes back once it is locked.
                let mut line = String::new();
                BufReader::new(child.stdout.take().unwrap())
                    .read_line(&mut line)
                    .unwrap();
                assert_eq!(line, "SKU-0\n", "the lock holder's answer");
                LockHolder::Postgres(child, stdin)
            }
        }
    }

    fn release(self) {
        match self {
            LockHolder::Sqlite(c) => c.execute_batch("ROLLBACK").unwrap(),
            LockHolder::Postgres(mut child, mut stdin) => {
                stdin.write_all(b"ROLLBACK;\n").unwrap();
                drop(stdin);
                assert!(child.wait().unwrap().success());
            }
        }
    }
}

#[test]
fn a_held_lock_makes_a_run_exit_75_having_changed_nothing() {
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 10);
        env.write("orders.csv", csv_file(&[order_rows("A-1", &[(0, 1)])]));
        let holder = LockHolder::take(&env);
        let out = env.run(&["process", "orders.csv", "--lock-timeout", "1"]);
        holder.release();
        assert_eq!(out.status.code(), Some(75), "{b:?}: {out:?}");
        assert_one_error_line(&out, &["locked", "--lock-timeout", "try again later"]);
        assert!(!env.exists("reports/run-1"), "{b:?}");
        assert_eq!(env.stock()["SKU-0"], 10, "{b:?}");
        assert_eq!(env.count("SELECT count(*) FROM orders"), 0, "{b:?}");
        // Once the lock is free, the same command does the work.
        env.ok(&["process", "orders.csv"], 0);
        assert_eq!(env.stock()["SKU-0"], 9, "{b:?}");
    }
}

#[test]
fn report_command_reproduces_the_run_files() {
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 1);
        env.write(
            "orders.csv",
            format!(
                "{HEADER},note\n{}",
                order_rows("A-1", &[(0, 1)]).replace('\n', ",=1+1\n")
            ) + &order_rows("A-2", &[(0, 5)]).replace('\n', ",hi\n"),
        );
        env.ok(&["process", "orders.csv"], 3);
        assert_eq!(
            env.ok(&["report", "failed", "--run", "1"], 0),
            env.read("reports/run-1/failed.csv"),
            "{b:?}"
        );
        assert_eq!(
            env.ok(&["report", "accepted", "--run", "1"], 0),
            env.read("reports/run-1/accepted.csv"),
            "{b:?}"
        );
        let failed = env.read("reports/run-1/failed.csv");
        assert!(
            failed.contains(",hi,INSUFFICIENT_STOCK,"),
            "{b:?}: {failed}"
        );
    }
}

#[test]
fn duplicates_are_found_whatever_became_of_the_first_appearance() {
    let text = csv_file(&[
        order_rows("A-1", &[(0, 1)]),                            // accepted
        order_rows("B-1", &[(1, 5)]),                            // fails for stock
        order_rows("A-1", &[(0, 1)]),                            // duplicate of an accepted order
        order_rows("B-1", &[(1, 1)]), // duplicate of a failed order (would fit the stock)
        order_rows("C-1", &[(0, 1)]).replace("SKU-0", "SKU-9"), // unknown sku
        order_rows("D-1", &[(2, 1)]), // accepted (keeps the C-1 rows apart)
        order_rows("C-1", &[(0, 1)]).replace("SKU-0", "SKU-9"), // duplicate + unknown sku
        order_rows("A-1", &[(0, 1)]).replace("buyer@", "buyer"), // invalid email + duplicate
    ]);
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 2);
        env.write("orders.csv", &text);
        env.ok(&["process", "orders.csv"], 3);
        let failed = env.read("reports/run-1/failed.csv");
        let rows = parse_csv(failed.as_bytes());
        let row_of = |line: u32| {
            rows.iter()
                .find(|r| r["source_line"] == line.to_string())
                .unwrap_or_else(|| panic!("{b:?}: line {line} not failed: {failed}"))
        };
        let code_of = |line: u32| row_of(line)["error_code"].clone();
        assert_eq!(code_of(3), "INSUFFICIENT_STOCK", "{b:?}");
        assert_eq!(code_of(4), "DUPLICATE_IN_INPUT", "{b:?}");
        assert_eq!(code_of(5), "DUPLICATE_IN_INPUT", "{b:?}");
        assert_eq!(code_of(6), "UNKNOWN_SKU", "{b:?}");
        assert_eq!(code_of(8), "DUPLICATE_IN_INPUT", "{b:?}");
        assert_eq!(code_of(9), "INVALID_FIELD", "{b:?}");
        let line8 = &row_of(8)["error_detail"];
        assert!(
            line8.contains("UNKNOWN_SKU:"),
            "{b:?}: detail lists the catalog failure too: {line8}"
        );
        let line9 = &row_of(9)["error_detail"];
        assert!(line9.contains("DUPLICATE_IN_INPUT:"), "{b:?}: {line9}");
        assert_eq!(env.stock()["SKU-0"], 1, "{b:?}");
        assert_eq!(env.stock()["SKU-1"], 2, "{b:?}");

        // A re-run: the first A-1 is skipped, its repeats are still duplicates.
        env.ok(&["process", "orders.csv"], 3);
        let accepted = env.read("reports/run-2/accepted.csv");
        assert_eq!(accepted.lines().count(), 3, "{b:?}: {accepted}");
        assert!(
            accepted.contains("A-1,skipped,orders.csv,2,"),
            "{b:?}: {accepted}"
        );
        let failed2 = env.read("reports/run-2/failed.csv");
        assert!(
            failed2.contains("DUPLICATE_IN_INPUT,\"DUPLICATE_IN_INPUT: order_id \"\"A-1\"\""),
            "{b:?}: {failed2}"
        );
        assert_eq!(env.stock()["SKU-0"], 1, "{b:?}");
        env.ok(&["verify"], 0);
    }
}
