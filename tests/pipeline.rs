//! End-to-end runs of `orderbatch process` on real SQLite files.

mod common;

use std::io::Write;

use common::*;

fn setup(env: &Env, stock: i64) {
    env.write("catalog.csv", catalog(5, stock));
    env.ok(&["inventory", "load", "catalog.csv"], 0);
}

fn summary(env: &Env, run: u32) -> serde_json::Value {
    serde_json::from_str(&env.read(&format!("reports/run-{run}/summary.json"))).unwrap()
}

#[test]
fn a_run_accepts_good_orders_takes_stock_and_a_rerun_skips_everything() {
    let env = Env::new();
    setup(&env, 10);
    env.write(
        "orders.csv",
        csv_file(&[
            order_rows("A-1", &[(0, 2), (1, 1)]),
            order_rows("A-2", &[(0, 3)]),
        ]),
    );
    env.ok(&["process", "orders.csv"], 0);
    let stock = env.stock();
    assert_eq!(stock["SKU-0"], 5);
    assert_eq!(stock["SKU-1"], 9);
    let s = summary(&env, 1);
    assert_eq!(
        (s["orders"].as_u64(), s["accepted"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(
        (s["lines"].as_u64(), s["units"].as_u64()),
        (Some(3), Some(6))
    );
    let accepted = env.read("reports/run-1/accepted.csv");
    assert!(
        accepted.contains(
            "A-1,accepted,orders.csv,2,2026-11-25T22:14:03Z,buyer@example.com,EUR,2,3,31.00,card"
        ),
        "{accepted}"
    );

    env.ok(&["process", "orders.csv"], 0);
    assert_eq!(env.stock(), stock, "a re-run changes no stock");
    let s = summary(&env, 2);
    assert_eq!(
        (s["accepted"].as_u64(), s["skipped"].as_u64()),
        (Some(0), Some(2))
    );
    assert!(env
        .read("reports/run-2/accepted.csv")
        .contains("A-2,skipped,"));
    env.ok(&["verify"], 0);
}

#[test]
fn same_id_with_other_content_is_an_order_id_conflict() {
    let env = Env::new();
    setup(&env, 10);
    env.write("a.csv", csv_file(&[order_rows("A-1", &[(0, 1)])]));
    env.write("b.csv", csv_file(&[order_rows("A-1", &[(0, 2)])]));
    env.ok(&["process", "a.csv"], 0);
    env.ok(&["process", "b.csv"], 3);
    let failed = env.read("reports/run-2/failed.csv");
    assert!(failed.contains("ORDER_ID_CONFLICT"), "{failed}");
    assert_eq!(env.stock()["SKU-0"], 9);
}

#[test]
fn dry_run_checks_stock_writes_reports_and_commits_nothing() {
    let env = Env::new();
    setup(&env, 3);
    env.write(
        "orders.csv",
        csv_file(&[order_rows("A-1", &[(0, 2)]), order_rows("A-2", &[(0, 2)])]),
    );
    env.ok(&["process", "orders.csv", "--dry-run"], 3);
    assert_eq!(env.stock()["SKU-0"], 3);
    assert_eq!(env.count("SELECT count(*) FROM orders"), 0);
    assert_eq!(env.count("SELECT count(*) FROM failed_orders"), 0);
    assert_eq!(summary(&env, 1)["status"], "dry_run");
    assert!(
        env.read("reports/run-1/failed.csv").contains("A-2,"),
        "stock is checked in a dry run"
    );
    assert_eq!(
        env.db()
            .query_row("SELECT status FROM runs WHERE id = 1", [], |r| r
                .get::<_, String>(0))
            .unwrap(),
        "dry_run"
    );
    // The same file for real afterwards behaves as if the dry run never happened.
    env.ok(&["process", "orders.csv"], 3);
    assert_eq!(env.stock()["SKU-0"], 1);
}

#[test]
fn max_errors_aborts_with_4_commits_nothing_and_writes_no_reports() {
    let env = Env::new();
    setup(&env, 10);
    let mut orders = vec![order_rows("A-1", &[(0, 1)])];
    for i in 0..3 {
        orders.push(order_rows(&format!("BAD-{i}"), &[(9, 1)]));
    }
    env.write("orders.csv", csv_file(&orders));
    env.ok(&["process", "orders.csv", "--max-errors", "2"], 4);
    assert_eq!(env.stock()["SKU-0"], 10);
    assert_eq!(env.count("SELECT count(*) FROM orders"), 0);
    assert!(!env.exists("reports/run-1"));
    // Exactly at the limit is not more than N: the run completes.
    env.ok(&["process", "orders.csv", "--max-errors", "3"], 3);
    assert_eq!(env.stock()["SKU-0"], 9);
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
    let mut results = Vec::new();
    for jobs in ["1", "4"] {
        let env = Env::new();
        setup(&env, 40);
        env.write("orders.csv", &text);
        env.ok(&["process", "orders.csv", "--jobs", jobs], 3);
        results.push((
            env.read("reports/run-1/accepted.csv"),
            env.read("reports/run-1/failed.csv"),
            env.stock(),
        ));
    }
    assert!(results[0].1.contains("INSUFFICIENT_STOCK"));
    assert!(results[0].1.contains("DUPLICATE_IN_INPUT"));
    assert!(results[0].1.contains("UNKNOWN_SKU"));
    assert_eq!(results[0], results[1]);
}

#[test]
fn a_failed_report_fed_back_after_a_restock_is_accepted() {
    let env = Env::new();
    setup(&env, 1);
    env.write(
        "orders.csv",
        csv_file(&[
            order_rows("A-1", &[(0, 1)]),
            order_rows("A-2", &[(0, 2), (1, 1)]),
        ]),
    );
    env.ok(&["process", "orders.csv"], 3);
    assert!(env
        .read("reports/run-1/failed.csv")
        .contains("INSUFFICIENT_STOCK"));
    std::fs::copy(env.path("reports/run-1/failed.csv"), env.path("retry.csv")).unwrap();
    env.write("catalog.csv", catalog(5, 50));
    env.ok(&["inventory", "load", "catalog.csv"], 0);
    env.ok(&["process", "retry.csv"], 0);
    assert!(env
        .read("reports/run-2/accepted.csv")
        .contains("A-2,accepted,retry.csv,2,"));
    assert_eq!(env.stock()["SKU-0"], 48);
    // The failure is resolved by run 2: nothing is left to reprocess.
    assert_eq!(
        env.count("SELECT count(*) FROM failed_orders WHERE resolved_by = 2"),
        1
    );
    env.ok(&["reprocess"], 0);
    assert_eq!(summary(&env, 3)["orders"], 0);
    env.ok(&["verify"], 0);
}

#[test]
fn a_missing_column_exits_2_naming_it_and_changes_nothing() {
    let env = Env::new();
    setup(&env, 10);
    let text = csv_file(&[order_rows("A-1", &[(0, 1)])]).replace("payment_ref,", "");
    env.write("orders.csv", text);
    let out = env.run(&["process", "orders.csv"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("payment_ref"), "{err}");
    assert_eq!(
        env.count("SELECT count(*) FROM runs"),
        0,
        "nothing was started"
    );
    assert!(!env.exists("reports"));
}

#[test]
fn ragged_rows_and_invalid_utf8_are_malformed_records_and_the_run_goes_on() {
    let env = Env::new();
    setup(&env, 10);
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
    env.write("orders.csv", bytes);
    env.ok(&["process", "orders.csv"], 3);
    let s = summary(&env, 1);
    assert_eq!(s["errors_by_code"]["MALFORMED_RECORD"], 2);
    assert_eq!(s["accepted"], 2);
    let failed = env.read("reports/run-1/failed.csv");
    assert!(failed.contains("B-1,too,few"), "raw text kept: {failed}");
    let rows = parse_csv(failed.as_bytes());
    assert_eq!(rows[0]["source_line"], "3", "{failed}");
    assert_eq!(rows[0]["failure_id"], "F1", "{failed}");
}

#[test]
fn bom_and_crlf_files_work() {
    let env = Env::new();
    setup(&env, 10);
    let text = format!(
        "\u{feff}{}",
        csv_file(&[order_rows("A-1", &[(0, 1)]), order_rows("A-2", &[(1, 2)])])
    )
    .replace('\n', "\r\n");
    env.write("orders.csv", text);
    env.ok(&["process", "orders.csv"], 0);
    assert_eq!(summary(&env, 1)["accepted"], 2);
}

#[test]
fn gzip_and_stdin_inputs_work() {
    let env = Env::new();
    setup(&env, 10);
    let text = csv_file(&[order_rows("G-1", &[(0, 1)])]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    env.write("orders.csv.gz", gz.finish().unwrap());
    env.ok(&["process", "orders.csv.gz"], 0);
    assert!(env
        .read("reports/run-1/accepted.csv")
        .contains("G-1,accepted,orders.csv.gz,2"));

    let jsonl = r#"{"order_id":"S-1","placed_at":"2026-11-25T22:14:03Z","customer_email":"a@b.co","currency":"EUR","payment_method":"paypal","payment_ref":"r","payment_amount":20.00,"items":[{"sku":"SKU-0","quantity":2,"unit_price":"10.00"}]}"#;
    let out = env
        .cmd()
        .args(["process", "-", "--format", "jsonl", "--json"])
        .write_stdin(format!("{jsonl}\n"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout holds only the summary");
    assert_eq!(s["accepted"], 1);
    assert_eq!(s["inputs"][0]["path"], "-");
    assert_eq!(s["inputs"][0]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(env.stock()["SKU-0"], 7);
    // Standard input needs --format.
    let out = env
        .cmd()
        .args(["process", "-"])
        .write_stdin("x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn jsonl_reports_are_valid_jsonl_input() {
    let env = Env::new();
    setup(&env, 1);
    env.write("orders.csv", csv_file(&[order_rows("A-1", &[(0, 2)])]));
    env.ok(&["process", "orders.csv", "--report-format", "jsonl"], 3);
    let failed = env.read("reports/run-1/failed.jsonl");
    let v: serde_json::Value = serde_json::from_str(failed.lines().next().unwrap()).unwrap();
    assert_eq!(v["error_code"], "INSUFFICIENT_STOCK");
    assert_eq!(v["items"][0]["quantity"], "2");
    env.write("catalog.csv", catalog(5, 10));
    env.ok(&["inventory", "load", "catalog.csv"], 0);
    std::fs::copy(
        env.path("reports/run-1/failed.jsonl"),
        env.path("retry.jsonl"),
    )
    .unwrap();
    env.ok(&["process", "retry.jsonl"], 0);
    assert_eq!(env.stock()["SKU-0"], 8);
}

#[test]
fn card_numbers_never_reach_the_reports_or_the_database_in_clear() {
    let env = Env::new();
    setup(&env, 10);
    let text = csv_file(&[order_rows("P-1", &[(0, 1)]).replace("ref-P-1", "4111 1111 1111 1111")]);
    env.write("orders.csv", text);
    let out = env.run(&["process", "orders.csv"]);
    assert_eq!(out.status.code(), Some(3));
    let failed = env.read("reports/run-1/failed.csv");
    assert!(failed.contains("************1111"), "{failed}");
    assert!(failed.contains("PAN_DETECTED"));
    drop(env.db());
    let mut all = std::fs::read(env.path("orderbatch.db")).unwrap();
    if let Ok(wal) = std::fs::read(env.path("orderbatch.db-wal")) {
        all.extend(wal);
    }
    all.extend(out.stderr);
    all.extend(failed.into_bytes());
    let hay = String::from_utf8_lossy(&all);
    assert!(!hay.contains("4111 1111 1111 1111"));
    assert!(!hay.contains("4111111111111111"));
}

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
    let env = Env::new();
    setup(&env, 10);
    env.write("orders.csv", csv_file(&[order_rows("A-1", &[(0, 1)])]));
    let out = env.run(&["process", "orders.csv", "-q"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{:?}", out);
    env.write("bad.csv", csv_file(&[order_rows("B-1", &[(9, 1)])]));
    let out = env.run(&["-q", "process", "bad.csv"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 failed"));
}

#[test]
fn inventory_export_loads_back_as_is() {
    let env = Env::new();
    env.write(
        "catalog.csv",
        "sku,name,unit_price,currency,on_hand\nA,\"Mug, large\",12.50,EUR,3\nB,=cmd,500,JPY,0\nC,Oud,1.250,KWD,7\n",
    );
    env.ok(&["inventory", "load", "catalog.csv"], 0);
    let first = env.ok(&["inventory", "export"], 0);
    assert!(first.contains("B,'=cmd,500,JPY,0"), "{first}");
    assert!(first.contains("C,Oud,1.250,KWD,7"));
    env.write("export.csv", &first);
    env.ok(&["--db", "other.db", "inventory", "load", "export.csv"], 0);
    let second = env.ok(&["--db", "other.db", "inventory", "export"], 0);
    assert_eq!(first, second);
}

#[test]
fn a_bad_catalog_changes_nothing_and_names_the_line() {
    let env = Env::new();
    setup(&env, 10);
    env.write(
        "bad.csv",
        "sku,name,unit_price,currency,on_hand\nSKU-0,x,10.00,EUR,99\nSKU-1,y,1.5.0,EUR,1\n",
    );
    let out = env.run(&["inventory", "load", "bad.csv"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 3"));
    assert_eq!(env.stock()["SKU-0"], 10);
    // The same through --catalog: exit 2 before any order.
    env.write("orders.csv", csv_file(&[order_rows("A-1", &[(0, 1)])]));
    assert_eq!(
        env.run(&["process", "orders.csv", "--catalog", "bad.csv"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(env.count("SELECT count(*) FROM orders"), 0);
}

#[test]
fn a_held_lock_makes_a_run_exit_75_having_changed_nothing() {
    let env = Env::new();
    setup(&env, 10);
    env.write("orders.csv", csv_file(&[order_rows("A-1", &[(0, 1)])]));
    let holder = env.db();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let out = env.run(&["process", "orders.csv", "--lock-timeout", "1"]);
    assert_eq!(
        out.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("locked"));
    holder.execute_batch("ROLLBACK").unwrap();
    assert_eq!(env.stock()["SKU-0"], 10);
    assert_eq!(env.count("SELECT count(*) FROM orders"), 0);
}

#[test]
fn report_command_reproduces_the_run_files() {
    let env = Env::new();
    setup(&env, 1);
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
        env.read("reports/run-1/failed.csv")
    );
    assert_eq!(
        env.ok(&["report", "accepted", "--run", "1"], 0),
        env.read("reports/run-1/accepted.csv")
    );
    assert!(env
        .read("reports/run-1/failed.csv")
        .contains(",hi,INSUFFICIENT_STOCK,"));
}

#[test]
fn duplicates_are_found_whatever_became_of_the_first_appearance() {
    let env = Env::new();
    setup(&env, 2);
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
    env.write("orders.csv", text);
    env.ok(&["process", "orders.csv"], 3);
    let failed = env.read("reports/run-1/failed.csv");
    let rows = parse_csv(failed.as_bytes());
    let row_of = |line: u32| {
        rows.iter()
            .find(|r| r["source_line"] == line.to_string())
            .unwrap_or_else(|| panic!("line {line} not failed: {failed}"))
    };
    let code_of = |line: u32| row_of(line)["error_code"].clone();
    assert_eq!(code_of(3), "INSUFFICIENT_STOCK");
    assert_eq!(code_of(4), "DUPLICATE_IN_INPUT");
    assert_eq!(code_of(5), "DUPLICATE_IN_INPUT");
    assert_eq!(code_of(6), "UNKNOWN_SKU");
    assert_eq!(code_of(8), "DUPLICATE_IN_INPUT");
    assert_eq!(code_of(9), "INVALID_FIELD");
    let line8 = &row_of(8)["error_detail"];
    assert!(
        line8.contains("UNKNOWN_SKU:"),
        "detail lists the catalog failure too: {line8}"
    );
    let line9 = &row_of(9)["error_detail"];
    assert!(line9.contains("DUPLICATE_IN_INPUT:"), "{line9}");
    assert_eq!(env.stock()["SKU-0"], 1);
    assert_eq!(env.stock()["SKU-1"], 2);

    // A re-run: the first A-1 is skipped, its repeats are still duplicates.
    env.ok(&["process", "orders.csv"], 3);
    let accepted = env.read("reports/run-2/accepted.csv");
    assert_eq!(accepted.lines().count(), 3, "{accepted}");
    assert!(accepted.contains("A-1,skipped,orders.csv,2,"));
    let failed2 = env.read("reports/run-2/failed.csv");
    assert!(
        failed2.contains("DUPLICATE_IN_INPUT,\"DUPLICATE_IN_INPUT: order_id \"\"A-1\"\""),
        "{failed2}"
    );
    assert_eq!(env.stock()["SKU-0"], 1);
    env.ok(&["verify"], 0);
}
