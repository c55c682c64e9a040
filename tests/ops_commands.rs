//! The commands ops use by hand: receiving stock, closing failures that will
//! never be fixed, the manual pages, sane limits.

mod common;

use common::*;

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

#[test]
fn inventory_receive_adds_at_commit_time_all_or_nothing() {
    for b in backends() {
        let env = Env::with(b);
        env.write("catalog.csv", catalog(3, 5));
        env.ok(&["inventory", "load", "catalog.csv"], 0);
        env.write("orders.csv", csv_file(&[order_rows("R-1", &[(0, 2)])]));
        env.ok(&["process", "orders.csv"], 0);
        // Two pallets of SKU-0 and one of SKU-2: added to what is on hand now.
        env.write("delivery.csv", "sku,quantity\nSKU-0,10\nSKU-2,1\nSKU-0,4\n");
        env.ok(&["inventory", "receive", "delivery.csv"], 0);
        let stock = env.stock();
        assert_eq!(
            (stock["SKU-0"], stock["SKU-1"], stock["SKU-2"]),
            (17, 5, 6),
            "{b:?}"
        );
        let reasons =
            env.sql("SELECT reason, delta FROM stock_ledger WHERE reason = 'receive' ORDER BY id");
        assert_eq!(reasons, ["receive|10", "receive|1", "receive|4"], "{b:?}");
        // Any bad line changes nothing and is named; an unknown sku too.
        for (text, words) in [
            (
                "sku,quantity\nSKU-0,3\nSKU-1,-2\n",
                "line 3: quantity \"-2\"",
            ),
            (
                "sku,quantity\nSKU-0,3\nNOPE,1\n",
                "line 3: sku \"NOPE\" is not in the catalog",
            ),
            ("sku,qty\nSKU-0,3\n", "missing required column 'quantity'"),
        ] {
            env.write("bad.csv", text);
            let out = env.run(&["inventory", "receive", "bad.csv"]);
            assert_eq!(out.status.code(), Some(2), "{b:?} {text}");
            assert_one_error_line(&out, &["bad.csv", words]);
            assert_eq!(env.stock()["SKU-0"], 17, "{b:?}: nothing changed");
        }
        env.verify_ok();
    }
}

#[test]
fn failures_are_listed_closed_with_a_reason_and_never_retried() {
    for b in backends() {
        let env = Env::with(b);
        env.write("catalog.csv", catalog(2, 10));
        env.ok(&["inventory", "load", "catalog.csv"], 0);
        let orders = [
            order_rows("F-1", &[(0, 1)]).replace("SKU-0", "SKU-7"),
            order_rows("F-2", &[(1, 1)]).replace("SKU-1", "SKU-8"),
            order_rows("F-3", &[(0, 1)]),
        ];
        env.write("orders.csv", csv_file(&orders));
        env.ok(&["process", "orders.csv"], 3);
        let open = json(&env.ok(&["failures", "list", "--json"], 0));
        let ids: Vec<&str> = open
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["failure_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["F1-1", "F1-2"], "{b:?}");
        assert_eq!(open[0]["order_id"], "F-1");
        assert_eq!(open[0]["error_code"], "UNKNOWN_SKU");
        let text = env.ok(&["failures", "list", "--run", "1"], 0);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("failure_id  run  order_id"), "{text}");
        assert!(lines[1].starts_with("F1-1          1  F-1 "), "{text}");
        // Closing: all or nothing, with who and why kept.
        let out = env.run(&["failures", "close", "F1-1", "F1-99", "--reason", "x"]);
        assert_eq!(out.status.code(), Some(2));
        assert_one_error_line(&out, &["nothing was closed", "F1-99 does not exist"]);
        let out = env.run(&["failures", "close", "1", "--reason", "x"]);
        assert_one_error_line(&out, &["1 is not a failure id", "F12-345"]);
        env.ok(
            &[
                "failures",
                "close",
                "F1-1",
                "--reason",
                "discontinued product, refunded",
            ],
            0,
        );
        let out = env.run(&["failures", "close", "F1-1", "--reason", "again"]);
        assert_one_error_line(&out, &["F1-1 is closed"]);
        assert_eq!(
            json(&env.ok(&["failures", "list", "--json"], 0))
                .as_array()
                .unwrap()
                .len(),
            1
        );
        let show = json(&env.ok(&["runs", "show", "1", "--json"], 0));
        assert_eq!(show["failed_still_open"], 1, "{b:?}");
        assert_eq!(
            show["failed_closed"][0]["reason"],
            "discontinued product, refunded"
        );
        assert!(show["failed_closed"][0]["by"]
            .as_str()
            .unwrap()
            .contains('@'));
        let text = env.ok(&["runs", "show", "1"], 0);
        assert!(
            text.contains("failed orders closed              1 by ")
                && text.contains(": discontinued product, refunded"),
            "{text}"
        );
        // reprocess retries only the open one.
        env.ok(&["reprocess"], 3);
        let s = json(&env.read("reports/run-2/summary.json"));
        assert_eq!(s["orders"], 1, "{b:?}: the closed failure is not retried");
        let retried = parse_csv(env.read("reports/run-2/failed.csv").as_bytes());
        assert_eq!(retried[0]["order_id"], "F-2");
    }
}

#[test]
fn the_manual_has_a_page_per_command_with_every_option_the_variable_and_the_exit_codes() {
    let env = Env::new();
    let page = env.ok(&["man"], 0);
    for needle in [
        ".TH orderbatch",
        "ORDERBATCH_DB",
        "EXIT STATUS",
        "75",
        "inventory receive",
        "failures close",
        "\\-\\-report\\-format",
        "\\-\\-encoding",
        "\\-\\-lock\\-timeout",
        "\\-\\-delimiter",
        "postgres://",
    ] {
        assert!(page.contains(needle), "{needle} in the manual page");
    }
    let dir = env.path("man");
    env.ok(&["man", "--dir", "man"], 0);
    let mut pages: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for p in [
        "orderbatch.1",
        "orderbatch-process.1",
        "orderbatch-inventory-receive.1",
        "orderbatch-failures-close.1",
    ] {
        assert!(pages.contains(&p.to_string()), "{p} in {pages:?}");
    }
    let process = std::fs::read_to_string(dir.join("orderbatch-process.1")).unwrap();
    assert!(
        process.contains("\\-\\-max\\-errors") && process.contains("EXIT STATUS"),
        "{process}"
    );
}

#[test]
fn jobs_are_capped_and_zero_is_refused() {
    let env = Env::new();
    for (n, ok) in [
        ("0", false),
        ("257", false),
        ("65535", false),
        ("256", true),
    ] {
        let out = env.run(&["process", "x.csv", "--jobs", n, "--dry-run"]);
        if ok {
            assert_eq!(
                out.status.code(),
                Some(2),
                "x.csv is missing: past the flags"
            );
            assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open x.csv"));
        } else {
            assert_eq!(out.status.code(), Some(2));
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("--jobs"),
                "{n}"
            );
        }
    }
}
