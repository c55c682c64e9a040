//! What a run decides for each order: good orders take their stock and a
//! re-run skips them, the same id with other content is a conflict, a
//! duplicate never replaces the order it repeats, a retried order keeps its
//! lines, `placed_at` follows RFC 3339, a dry run and `--max-errors` commit
//! nothing, and every `--jobs` count decides the same. Each test that stores
//! orders runs on every backend.

mod common;

use common::*;

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
fn placed_at_follows_the_rfc_3339_grammar_itself() {
    let env = Env::new();
    load_catalog(&env, 100);
    let base = order_rows("R-1", &[(0, 1)]);
    let forms = [
        ("2026-11-25T22:14:03Z", true),
        ("2026-11-25t22:14:03.123z", true),
        ("2026-11-25T23:14:03+01:00", true),
        ("2026-11-25 22:14:03Z", false),
        ("2026-11-25T22:14:03+0100", false),
        ("2026-11-25T22:14Z", false),
        ("2026-11-25T24:00:00Z", false),
        ("2026-02-29T10:00:00Z", false),
        ("+2026-11-25T22:14:03Z", false),
    ];
    let orders: Vec<String> = forms
        .iter()
        .enumerate()
        .map(|(i, (f, _))| {
            base.replace("R-1", &format!("R-{i}"))
                .replace("2026-11-25T22:14:03Z", f)
        })
        .collect();
    env.write("orders.csv", csv_file(&orders));
    env.ok(&["process", "orders.csv"], 3);
    let failed = parse_csv(env.read("reports/run-1/failed.csv").as_bytes());
    for (i, (f, ok)) in forms.iter().enumerate() {
        let id = format!("R-{i}");
        let row = failed.iter().find(|r| r["order_id"] == id);
        assert_eq!(row.is_none(), *ok, "{f}");
        if let Some(r) = row {
            assert_eq!(r["error_code"], "INVALID_FIELD", "{f}");
            assert!(r["error_detail"].contains("RFC 3339"), "{f}");
        }
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
