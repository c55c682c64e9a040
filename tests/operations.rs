//! The commands ops use besides a run, on every backend: which database a
//! command works on (a read never creates one), `runs list` and `runs show`,
//! `failures list` and `failures close`, `reprocess` (by run and by code),
//! `inventory receive` and `export`, `verify`, the manual pages and sane
//! limits, `runs prune` on a year of nights (what it forgets, what it keeps,
//! and on PostgreSQL a prune beside a run losing nothing of either), and the
//! schema `init` creates, checked against schema.sql.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{Duration, SecondsFormat, Utc};

use common::procs::{poll, spawn, waiting, PgSession, HANG};
use common::*;

// ---------------------------------------------------------------- the database a command works on

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

/// A read-only command given a SQLite path where no file is says so, exits
/// 1 and creates nothing; a command that writes still creates the database.
/// On PostgreSQL a database that does not exist is named the same way by
/// reads and writes (orderbatch never creates one there).
#[test]
fn read_only_commands_on_a_missing_database_create_nothing() {
    let env = Env::new();
    let reads: [&[&str]; 8] = [
        &["runs", "list"],
        &["runs", "show", "1"],
        &["failures", "list"],
        &["report", "accepted", "--run", "1"],
        &["report", "failed", "--run", "1"],
        &["verify"],
        &["inventory", "export"],
        &["inventory", "export", "-o", "stock.csv"],
    ];
    for args in reads {
        let out = env
            .cmd()
            .args(["--db", "typo.db"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert_one_error_line(
            &out,
            &["no database at typo.db: check --db (commands that write create it)"],
        );
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
        assert_eq!(
            env.entries(".", ""),
            Vec::<String>::new(),
            "{args:?}: nothing created"
        );
    }
    // The variable names it the same way.
    let out = env
        .cmd()
        .env("ORDERBATCH_DB", "typo.db")
        .args(["runs", "list"])
        .output()
        .unwrap();
    assert_one_error_line(&out, &["no database at typo.db"]);
    assert!(!env.exists("typo.db"));
    // A command that writes creates it; then the reads work.
    env.ok(&["--db", "typo.db", "init"], 0);
    assert!(env.exists("typo.db"));
    assert_eq!(
        env.ok(&["--db", "typo.db", "runs", "list"], 0)
            .lines()
            .count(),
        1,
        "the header only"
    );
    env.ok(&["--db", "typo.db", "verify"], 0);

    if backends().contains(&Backend::Postgres) {
        let url = pg::cluster().url("no_such_database");
        for args in [&["runs", "list"][..], &["init"]] {
            let out = env.cmd().args(["--db", &url]).args(args).output().unwrap();
            assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
            assert_one_error_line(&out, &["no_such_database", "does not exist"]);
        }
    }
}

// ---------------------------------------------------------------- runs list and show

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
fn runs_list_shows_the_host_and_takes_a_limit_and_a_status() {
    for b in backends() {
        let env = env_for(b);
        night(&env);
        let out = env.run(&["process", "night.csv"]);
        assert_eq!(out.status.code(), Some(3), "{b:?}: {out:?}");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            said.contains(
                "10 orders: 4 accepted, 0 skipped, 6 failed (INSUFFICIENT_STOCK 3, UNKNOWN_SKU 2, INVALID_FIELD 1); "
            ),
            "{b:?}: the summary line says why: {said}"
        );
        env.ok(&["process", "night.csv", "--dry-run"], 3);
        env.ok(&["process", "night.csv", "--max-errors", "1"], 4);
        // Run 1 came from another host sharing the history.
        env.sql("UPDATE runs SET host = 'ingest-2' WHERE id = 1");
        let text = env.ok(&["runs", "list"], 0);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{b:?}: {text}");
        let header: Vec<&str> = lines[0].split_whitespace().collect();
        assert_eq!(
            header,
            [
                "id", "command", "status", "host", "started", "duration", "orders", "accepted",
                "skipped", "failed", "inputs"
            ],
            "{b:?}"
        );
        let host_at = lines[0].find("host").unwrap();
        assert!(
            lines[3][host_at..].starts_with("ingest-2 "),
            "{b:?}: {text}"
        );
        let limited = env.ok(&["runs", "list", "--limit", "2"], 0);
        let ids: Vec<&str> = limited
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(ids, ["3", "2"], "{b:?}: {limited}");
        for (status, id) in [
            ("completed", 1),
            ("dry-run", 2),
            ("dry_run", 2),
            ("aborted", 3),
        ] {
            let list = json(&env.ok(&["runs", "list", "--status", status, "--json"], 0));
            assert_eq!(list.as_array().unwrap().len(), 1, "{b:?} {status}: {list}");
            assert_eq!(list[0]["id"], id, "{b:?} {status}: {list}");
        }
        let list = json(&env.ok(
            &[
                "runs",
                "list",
                "--json",
                "--limit",
                "1",
                "--status",
                "completed",
            ],
            0,
        ));
        assert_eq!(list[0]["host"], "ingest-2", "{b:?}: {list}");
        assert_eq!(
            env.ok(&["runs", "list", "--status", "running"], 0)
                .lines()
                .count(),
            1,
            "{b:?}: the header only"
        );
        for bad in [&["--status", "done"][..], &["--limit", "0"]] {
            let out = env.run(&[&["runs", "list"][..], bad].concat());
            assert_eq!(out.status.code(), Some(2), "{b:?} {bad:?}: {out:?}");
        }
        let out = env.run(&["runs", "list", "--status", "done"]);
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains("running, completed, dry_run, aborted, failed, interrupted"),
            "{out:?}"
        );
    }
}

// ---------------------------------------------------------------- failures and reprocess

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

/// `failures list` rows as (failure_id, order_id, error_code), header left out.
fn listed(env: &Env, args: &[&str]) -> Vec<(String, String, String)> {
    let text = env.ok(&[&["failures", "list"][..], args].concat(), 0);
    text.lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            (c[0].to_string(), c[2].to_string(), c[3].to_string())
        })
        .collect()
}

#[test]
fn failures_list_has_a_header_aligned_columns_and_filters_by_code_and_run() {
    for b in backends() {
        let env = env_for(b);
        night(&env);
        env.ok(&["process", "night.csv"], 3);
        let out = env.run(&["failures", "list"]);
        assert_eq!(out.status.code(), Some(0), "{b:?}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).trim(),
            "6 open failed orders (INSUFFICIENT_STOCK 3, UNKNOWN_SKU 2, INVALID_FIELD 1)",
            "{b:?}"
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            [
                "failure_id",
                "run",
                "order_id",
                "error_code",
                "error_detail"
            ],
            "{b:?}: {text}"
        );
        assert_eq!(lines.len(), 7, "{b:?}: {text}");
        // Aligned: every row's code and detail start under their header.
        let code_at = lines[0].find("error_code").unwrap();
        let detail_at = lines[0].find("error_detail").unwrap();
        for l in &lines[1..] {
            assert!(
                l[code_at..].starts_with(char::is_uppercase),
                "{b:?}: {text}"
            );
            assert_eq!(&l[detail_at - 2..detail_at], "  ", "{b:?}: {text}");
            assert!(!l[detail_at..].starts_with(' '), "{b:?}: {text}");
        }
        assert!(lines[1].starts_with("F1-5 "), "{b:?}: {text}");
        assert!(
            text.contains("GONE-1"),
            "{b:?}: the detail says which sku: {text}"
        );

        let codes = |args: &[&str]| -> Vec<String> {
            listed(&env, args).into_iter().map(|(_, _, c)| c).collect()
        };
        assert_eq!(
            codes(&["--code", "UNKNOWN_SKU", "--code", "invalid_field"]),
            ["UNKNOWN_SKU", "UNKNOWN_SKU", "INVALID_FIELD"],
            "{b:?}"
        );
        assert_eq!(
            codes(&["--run", "1", "--code", "INSUFFICIENT_STOCK"]).len(),
            3,
            "{b:?}"
        );
        assert!(codes(&["--code", "PRICE_MISMATCH"]).is_empty(), "{b:?}");
        let out = env.run(&["failures", "list", "--code", "NO_SUCH_CODE"]);
        assert_eq!(out.status.code(), Some(2), "{b:?}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("INSUFFICIENT_STOCK"));
    }
}

/// The whole detail in `--json` and `--csv` (a valid CSV of the table's
/// columns); the table cuts it to the width of a terminal or `$COLUMNS`,
/// and leaves it whole without either (a pipe).
#[test]
fn failures_list_gives_the_whole_detail_in_csv_and_json_and_cuts_it_to_the_width() {
    for b in backends() {
        let env = env_for(b);
        night(&env);
        env.ok(&["process", "night.csv"], 3);
        let text = env.ok(&["failures", "list"], 0);
        let all = json(&env.ok(&["failures", "list", "--json"], 0));
        let csv = parse_csv(env.ok(&["failures", "list", "--csv"], 0).as_bytes());
        assert_eq!(csv.len(), 6, "{b:?}");
        for (row, j) in csv.iter().zip(all.as_array().unwrap()) {
            assert_eq!(
                row.keys().collect::<Vec<_>>(),
                [
                    "error_code",
                    "error_detail",
                    "failure_id",
                    "order_id",
                    "run"
                ],
                "{b:?}"
            );
            assert_eq!(row["failure_id"], j["failure_id"].as_str().unwrap());
            assert_eq!(row["error_detail"], j["error_detail"].as_str().unwrap());
            assert_eq!(row["run"], "1");
        }
        // On a narrow terminal (or with $COLUMNS) the detail is cut to fit.
        let longest = all
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["error_detail"].as_str().unwrap().chars().count())
            .max()
            .unwrap();
        let out = env
            .cmd()
            .env("COLUMNS", "70")
            .args(["failures", "list"])
            .output()
            .unwrap();
        let narrow = String::from_utf8(out.stdout).unwrap();
        assert!(longest > 40, "{b:?}: details long enough to cut");
        assert!(
            narrow.lines().all(|l| l.chars().count() <= 70),
            "{b:?}: {narrow}"
        );
        assert!(narrow.contains('…'), "{b:?}: {narrow}");
        assert!(
            text.lines().any(|l| l.chars().count() > 70),
            "{b:?}: without a width (a pipe) the detail is whole: {text}"
        );
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
fn reprocess_by_code_retries_only_those_and_leaves_the_others_untouched() {
    for b in backends() {
        let env = env_for(b);
        night(&env);
        env.ok(&["process", "night.csv"], 3);
        let before = env.sql(
            "SELECT run_id, run_seq, state, resolved_by, superseded_by FROM failed_orders
             WHERE error_code <> 'INSUFFICIENT_STOCK' ORDER BY run_seq",
        );
        env.write("delivery.csv", "sku,quantity\nSKU-2,15\n");
        env.ok(&["inventory", "receive", "delivery.csv"], 0);
        let summary = json(&env.ok(&["reprocess", "--code", "INSUFFICIENT_STOCK", "--json"], 0));
        assert_eq!(
            (summary["orders"].as_u64(), summary["accepted"].as_u64()),
            (Some(3), Some(3)),
            "{b:?}: only the three retried: {summary}"
        );
        assert_eq!(env.stock()["SKU-2"], 2, "{b:?}: 2 + 15 - 3 x 5");
        let after = env.sql(
            "SELECT run_id, run_seq, state, resolved_by, superseded_by FROM failed_orders
             WHERE error_code <> 'INSUFFICIENT_STOCK' ORDER BY run_seq",
        );
        assert_eq!(before, after, "{b:?}: the other codes untouched");
        let left = listed(&env, &[]);
        assert_eq!(
            left.iter()
                .map(|(id, _, _)| id.as_str())
                .collect::<Vec<_>>(),
            ["F1-8", "F1-9", "F1-10"],
            "{b:?}: still open under their ids"
        );
        // Of one run and one code: nothing of that code left open.
        let summary = json(&env.ok(
            &[
                "reprocess",
                "--run",
                "1",
                "--code",
                "INSUFFICIENT_STOCK",
                "--json",
            ],
            0,
        ));
        assert_eq!(summary["orders"], 0, "{b:?}: {summary}");
        env.verify_ok();
    }
}

/// What `failures close` refuses or finds nothing to do for, once the
/// night's UNKNOWN_SKU failures are closed: none of a code open is no error
/// (exit 0), a run that is not there is (exit 2), and so are selections
/// that cannot go together.
fn close_refusals(env: &Env, b: Backend) {
    // Nothing of a code open is no error; a run that is not there is.
    let out = env.run(&[
        "failures",
        "close",
        "--code",
        "UNKNOWN_SKU",
        "--reason",
        "x",
    ]);
    assert_eq!(out.status.code(), Some(0), "{b:?}: {out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no failure of UNKNOWN_SKU is open"),
        "{out:?}"
    );
    let out = env.run(&[
        "failures",
        "close",
        "--code",
        "INSUFFICIENT_STOCK",
        "--run",
        "9",
        "--reason",
        "x",
    ]);
    assert_eq!(out.status.code(), Some(2), "{b:?}: {out:?}");
    assert_one_error_line(&out, &["there is no run 9"]);
    for bad in [
        &["failures", "close", "--run", "1", "--reason", "x"][..],
        &[
            "failures",
            "close",
            "F1-6",
            "--code",
            "UNKNOWN_SKU",
            "--reason",
            "x",
        ],
        &[
            "failures",
            "close",
            "--order",
            "A",
            "--code",
            "UNKNOWN_SKU",
            "--reason",
            "x",
        ],
        &["failures", "close", "--reason", "x"],
    ] {
        assert_eq!(env.run(bad).status.code(), Some(2), "{b:?}: {bad:?}");
    }
}

#[test]
fn failures_close_by_code_by_order_and_a_superseded_id_names_its_replacement() {
    for b in backends() {
        let env = env_for(b);
        night(&env);
        env.ok(&["process", "night.csv"], 3);
        let out = env.run(&[
            "failures",
            "close",
            "--code",
            "UNKNOWN_SKU",
            "--reason",
            "discontinued",
        ]);
        assert_eq!(out.status.code(), Some(0), "{b:?}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).trim(),
            "closed 2 failed orders: F1-8, F1-9",
            "{b:?}"
        );
        assert_eq!(listed(&env, &[]).len(), 4, "{b:?}");
        // A retry that fails again supersedes F1-10 with F2-1.
        env.ok(&["reprocess", "--code", "INVALID_FIELD"], 3);
        let out = env.run(&["failures", "close", "F1-10", "--reason", "x"]);
        assert_eq!(out.status.code(), Some(2), "{b:?}: {out:?}");
        assert_one_error_line(
            &out,
            &["nothing was closed: F1-10 is superseded by F2-1, which is open: close that one"],
        );
        // By order id, whichever run holds it now; all or nothing.
        let out = env.run(&[
            "failures", "close", "--order", "BAD-1", "--order", "NOPE-1", "--reason", "x",
        ]);
        assert_eq!(out.status.code(), Some(2), "{b:?}: {out:?}");
        assert_one_error_line(&out, &["nothing was closed: order NOPE-1 has no failure"]);
        assert_eq!(listed(&env, &[]).len(), 4, "{b:?}: nothing closed");
        let out = env.run(&[
            "failures", "close", "--order", "BAD-1", "--order", "STOCK-0", "--reason", "refunded",
        ]);
        assert_eq!(out.status.code(), Some(0), "{b:?}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).trim(),
            "closed 2 failed orders: F1-5, F2-1",
            "{b:?}"
        );
        let out = env.run(&["failures", "close", "--order", "BAD-1", "--reason", "x"]);
        assert_one_error_line(
            &out,
            &["order BAD-1 has no open failure (its newest, F2-1, is closed)"],
        );
        let out = env.run(&["failures", "close", "F1-10", "--reason", "x"]);
        assert_one_error_line(&out, &["F1-10 is superseded by F2-1, which is closed"]);
        close_refusals(&env, b);
        let left: Vec<String> = listed(&env, &[]).into_iter().map(|(id, _, _)| id).collect();
        assert_eq!(left, ["F1-6", "F1-7"], "{b:?}");
        let show = json(&env.ok(&["runs", "show", "1", "--json"], 0));
        assert_eq!(show["failed_still_open"], 2, "{b:?}: {show}");
        env.verify_ok();
    }
}

// ---------------------------------------------------------------- inventory and verify

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

// ---------------------------------------------------------------- the manual and limits

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

// ---------------------------------------------------------------- runs prune on a year of nights

/// Nights of the generated year; with the reprocess, close, dry and aborted
/// runs between them, about 45 runs spread over 365 days.
const NIGHTS: usize = 30;

/// A catalog of SKU-0..SKU-5, 1,000 units each but SKU-5's 40 (the one
/// that runs out).
fn catalog_of_the_year() -> String {
    catalog(6, 1000).replace(
        "SKU-5,Product 5,15.00,EUR,1000",
        "SKU-5,Product 5,15.00,EUR,40",
    )
}

/// Night `n`'s file: six good orders (one unit each of SKU-0..SKU-3), the
/// first good order of the night before again (skipped), one order too big
/// for SKU-5 (INSUFFICIENT_STOCK), one of a sku gone (UNKNOWN_SKU), one
/// with a bad e-mail (INVALID_FIELD), a row that does not parse
/// (MALFORMED_RECORD) and a repeat of an order of the night
/// (DUPLICATE_IN_INPUT); some nights one at an old price (PRICE_MISMATCH,
/// left open). Every row carries a long note, as shop exports do.
fn night_file(n: usize) -> String {
    let note = format!(",{}", "gift wrap and leave at the door; ".repeat(20));
    let mut rows: Vec<String> = (0..6)
        .map(|k| order_rows(&format!("N{n}-OK-{k}"), &[(k % 4, 1)]))
        .collect();
    if n > 0 {
        rows.push(order_rows(&format!("N{}-OK-0", n - 1), &[(0, 1)]));
    }
    rows.push(order_rows(&format!("N{n}-BIG"), &[(5, 300)]));
    rows.push(order_rows(&format!("N{n}-GONE"), &[(0, 1)]).replace("SKU-0", "GONE-7"));
    rows.push(
        order_rows(&format!("N{n}-BAD"), &[(1, 1)])
            .replace("buyer@example.com", "buyer at example"),
    );
    rows.push("N-broken,2026-11-25T22:14:03Z,only,four fields\n".into());
    if n % 10 == 2 {
        // An old price: never retried nor closed, open for good.
        rows.push(order_rows(&format!("N{n}-PRICE"), &[(0, 1)]).replace(",10.00,EUR", ",9.00,EUR"));
    }
    rows.push(order_rows(&format!("N{n}-OK-1"), &[(1, 1)]));
    let body: String = rows
        .concat()
        .lines()
        .map(|l| {
            if l.starts_with("N-broken") {
                format!("{l}\n")
            } else {
                format!("{l}{note}\n")
            }
        })
        .collect();
    format!("{HEADER},note\n{body}")
}

/// A year of nights on a fresh database, and the times of its runs spread
/// over the last 365 days (the ledger's entries outside runs, and each
/// run's summary.json, moved with them).
fn a_year(b: Backend) -> Env {
    let env = env_for(b);
    fill_a_year(&env);
    env
}

fn fill_a_year(env: &Env) {
    env.write("catalog.csv", catalog_of_the_year());
    env.ok(&["inventory", "load", "catalog.csv"], 0);
    env.write("restock.csv", "sku,quantity\nSKU-5,300\n");
    for n in 0..NIGHTS {
        let name = format!("night-{n}.csv");
        env.write(&name, night_file(n));
        match n {
            7 => env.ok(&["process", &name, "--dry-run"], 3),
            11 => env.ok(&["process", &name, "--max-errors", "1"], 4),
            _ => env.ok(&["process", &name], 3),
        };
        if n % 4 == 3 {
            env.ok(&["inventory", "receive", "restock.csv"], 0);
            env.ok(&["reprocess", "--code", "INSUFFICIENT_STOCK"], 3);
        }
        if n % 6 == 5 {
            env.ok(&["reprocess", "--code", "INVALID_FIELD"], 3);
        }
        if n % 8 == 7 {
            env.ok(
                &[
                    "failures",
                    "close",
                    "--code",
                    "UNKNOWN_SKU",
                    "--reason",
                    "gone",
                ],
                0,
            );
        }
    }
    spread_over_a_year(env);
}

fn spread_over_a_year(env: &Env) {
    let ids: Vec<i64> = env
        .sql("SELECT id FROM runs ORDER BY id")
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let start = Utc::now() - Duration::days(365);
    let step = Duration::days(365) / ids.len() as i32;
    for (i, id) in ids.iter().enumerate() {
        let fin = start + step * (i as i32 + 1);
        let t = |d: chrono::DateTime<Utc>| d.to_rfc3339_opts(SecondsFormat::Millis, true);
        let (started, finished) = (t(fin - Duration::seconds(2)), t(fin));
        env.sql(&format!(
            "UPDATE runs SET started_at = '{started}', finished_at = '{finished}' WHERE id = {id}"
        ));
        let summary = format!("reports/run-{id}/summary.json");
        if env.exists(&summary) {
            let mut s = json(&env.read(&summary));
            s["started_at"] = started.into();
            s["finished_at"] = finished.into();
            env.write(&summary, s.to_string());
        }
    }
    // A load or receive happened after the last run that moved stock before it.
    env.sql(
        "UPDATE stock_ledger SET at = coalesce((SELECT max(r.finished_at) FROM runs r
             WHERE r.id <= (SELECT max(l.run_id) FROM stock_ledger l WHERE l.id < stock_ledger.id)),
             '2000-01-01T00:00:00.000Z')
         WHERE run_id IS NULL",
    );
}

/// Every row of the runs that finished on or after `before`, table by table.
fn rows_kept(env: &Env, before: &str) -> Vec<String> {
    let kept =
        format!("(SELECT id FROM runs WHERE coalesce(finished_at, started_at) >= '{before}')");
    let mut out = Vec::new();
    for (table, key, order) in [
        ("runs", "id", "id"),
        ("run_inputs", "run_id", "run_id, seq"),
        ("orders", "run_id", "order_id"),
        ("run_skips", "run_id", "run_id, run_seq"),
        ("failed_orders", "run_id", "run_id, run_seq"),
        ("stock_ledger", "run_id", "id"),
    ] {
        let rows = env.sql(&format!(
            "SELECT * FROM {table} WHERE {key} IN {kept} ORDER BY {order}"
        ));
        assert!(
            !rows.is_empty() || table == "run_skips",
            "{table}: some rows to compare"
        );
        out.extend(rows.into_iter().map(|r| format!("{table}: {r}")));
    }
    out
}

/// The SQLite file itself, after its WAL is copied into it.
fn sqlite_file_size(env: &Env) -> u64 {
    env.db()
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    std::fs::metadata(env.path("orderbatch.db")).unwrap().len()
}

/// The lines a prune said, `--dry-run`'s wording made the real one's, and
/// the file's size (only the real one knows it) left out.
fn said(out: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.contains("database file:"))
        .map(|l| {
            l.replace("would prune", "pruned")
                .replace("would be removed", "removed")
        })
        .collect()
}

/// After the prune: a pruned run's report says so, the history lists every
/// run (`runs` of the year and the night fed again) and shows when one was
/// pruned, and the same prune again prunes nothing.
fn the_history_still_holds(env: &Env, b: Backend, before: &str, runs: usize) {
    // A pruned run says so; the history still lists it.
    let out = env.run(&["report", "accepted", "--run", "1"]);
    assert_eq!(out.status.code(), Some(2), "{b:?}");
    assert_one_error_line(&out, &["run 1 was pruned on ", ": its reports are gone"]);
    let list = json(&env.ok(&["runs", "list", "--json"], 0));
    assert_eq!(list.as_array().unwrap().len(), runs + 1, "{b:?}");
    let show = json(&env.ok(&["runs", "show", "1", "--json"], 0));
    assert!(show["pruned_at"].is_string(), "{b:?}: {show}");
    // Again: nothing more to prune, nothing changes.
    let again = env.dump();
    let out = env.run(&["runs", "prune", "--before", before]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(": pruned 0 runs"),
        "{b:?}: {out:?}"
    );
    if b == Backend::Postgres {
        assert_eq!(env.dump(), again, "{b:?}");
    }
}

/// What the prune forgot of the pruned runs, and what it kept of them.
fn forgotten(env: &Env, pruned: &[i64], b: Backend) {
    let list = pruned
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let count = |sql: &str| env.count(&sql.replace("PRUNED", &list));
    assert_eq!(
        count("SELECT count(*) FROM run_skips WHERE run_id IN (PRUNED)"),
        0,
        "{b:?}"
    );
    assert_eq!(
        count("SELECT count(*) FROM failed_orders WHERE run_id IN (PRUNED) AND state <> 'open'"),
        0,
        "{b:?}"
    );
    assert!(
        count("SELECT count(*) FROM failed_orders WHERE run_id IN (PRUNED)") > 0,
        "{b:?}: open kept"
    );
    assert_eq!(
        count("SELECT count(*) FROM stock_ledger WHERE run_id IN (PRUNED)"),
        0,
        "{b:?}"
    );
    assert_eq!(
        count("SELECT count(*) FROM (SELECT sku FROM stock_ledger WHERE reason = 'carried' GROUP BY sku HAVING count(*) > 1) t"),
        0,
        "{b:?}: one carried-forward entry per sku"
    );
    assert!(
        count("SELECT count(*) FROM stock_ledger WHERE reason = 'carried'") > 0,
        "{b:?}"
    );
    assert_eq!(
        count("SELECT count(*) FROM orders WHERE run_id IN (PRUNED) AND (items <> '' OR customer_email <> '')"),
        0,
        "{b:?}: applied orders reduced"
    );
    assert!(
        count("SELECT count(*) FROM orders WHERE run_id IN (PRUNED)") > 0,
        "{b:?}: and kept"
    );
    assert_eq!(
        count("SELECT count(*) FROM runs WHERE id IN (PRUNED) AND pruned_at IS NULL"),
        0,
        "{b:?}"
    );
    for id in pruned {
        assert!(
            !env.exists(&format!("reports/run-{id}")),
            "{b:?}: reports of run {id} removed"
        );
    }
    let last = pruned.last().unwrap();
    assert!(
        env.exists(&format!("reports/run-{}", last + 1))
            || env.exists(&format!("reports/run-{}", last + 2))
    );
}

#[test]
fn runs_prune_on_a_year_of_nights_forgets_the_old_and_keeps_what_matters() {
    for b in backends() {
        let env = a_year(b);
        let ids: Vec<String> = env.sql("SELECT finished_at FROM runs ORDER BY id");
        let before = ids[ids.len() * 2 / 3].clone();
        let pruned: Vec<i64> = env
            .sql(&format!(
                "SELECT id FROM runs WHERE finished_at < '{before}' ORDER BY id"
            ))
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        env.verify_ok();
        let open_before = env.ok(&["failures", "list", "--json"], 0);
        let night_0 = env.count("SELECT count(*) FROM orders WHERE order_id LIKE 'N0-%'");
        let stock = env.stock();
        let kept = rows_kept(&env, &before);
        let everything = env.dump();
        let size = (b == Backend::Sqlite).then(|| sqlite_file_size(&env));

        let dry = env.run(&["runs", "prune", "--before", &before, "--dry-run"]);
        assert_eq!(dry.status.code(), Some(0), "{b:?}: {dry:?}");
        assert_eq!(env.dump(), everything, "{b:?}: a dry run changes nothing");
        assert!(env.exists("reports/run-1"), "{b:?}");
        let out = env.run(&["runs", "prune", "--before", &before]);
        assert_eq!(out.status.code(), Some(0), "{b:?}: {out:?}");
        assert_eq!(
            said(&out),
            said(&dry),
            "{b:?}: the dry run said what the prune did"
        );
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        eprintln!("{text}");
        assert!(
            text.starts_with(&format!(
                "runs prune --before {before}: pruned {} runs",
                pruned.len()
            )),
            "{b:?}: {text}"
        );

        env.verify_ok();
        assert_eq!(
            rows_kept(&env, &before),
            kept,
            "{b:?}: the runs after the date untouched"
        );
        assert_eq!(
            env.ok(&["failures", "list", "--json"], 0),
            open_before,
            "{b:?}: open failures kept"
        );
        assert_eq!(env.stock(), stock, "{b:?}");
        forgotten(&env, &pruned, b);
        if let Some(size) = size {
            let after = sqlite_file_size(&env);
            assert!(
                after < size,
                "{b:?}: the file gave its space back: {size} -> {after}"
            );
            assert!(
                text.contains("(VACUUM,") || text.contains("(incremental_vacuum,"),
                "{text}"
            );
        }
        // An old file fed again is still skipped: nothing applied twice.
        let s = json(&env.ok(&["process", "night-0.csv", "--json"], 3));
        assert_eq!(s["accepted"], 0, "{b:?}: {s}");
        assert_eq!(s["skipped"].as_i64(), Some(night_0), "{b:?}: {s}");
        assert_eq!(env.stock(), stock, "{b:?}");
        the_history_still_holds(&env, b, &before, ids.len());
        env.verify_ok();
    }
}

/// A SQLite database made with auto_vacuum=INCREMENTAL (by hand) is given
/// its space back that way, in steps; every other one by VACUUM.
#[test]
fn a_database_made_for_incremental_vacuum_is_given_its_space_back_in_steps() {
    let env = env_for(Backend::Sqlite);
    env.db()
        .execute_batch("PRAGMA page_size=16384; PRAGMA auto_vacuum=INCREMENTAL; CREATE TABLE x(a); DROP TABLE x;")
        .unwrap();
    fill_a_year(&env);
    let finished = env.sql("SELECT finished_at FROM runs ORDER BY id");
    let size = sqlite_file_size(&env);
    let out = env.run(&[
        "runs",
        "prune",
        "--before",
        &finished[finished.len() * 2 / 3],
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("(incremental_vacuum,"), "{text}");
    assert!(sqlite_file_size(&env) <= size, "{text}");
    assert_eq!(
        env.count("PRAGMA freelist_count"),
        0,
        "every free page given back"
    );
    env.verify_ok();
}

/// A prune and a run at once on PostgreSQL: a session holds the applied
/// orders so that both wait inside their transactions (the prune having
/// deleted its skips, failures and ledger entries, the run holding its stock
/// rows), then lets them go. Both commit; the run applied its new orders
/// and skipped the old ones whose records the prune was reducing; the prune
/// did what its dry run said; the ledger holds.
#[test]
fn a_prune_beside_a_run_on_postgres_loses_nothing_of_either() {
    if pg::skip_requested() {
        eprintln!("!!! ORDERBATCH_SKIP_PG=1: this PostgreSQL test is SKIPPED");
        return;
    }
    let env = a_year(Backend::Postgres);
    let finished = env.sql("SELECT finished_at FROM runs ORDER BY id");
    let before = finished[finished.len() / 2].clone();
    // Tonight: three new orders, and three of night 0 (pruned now) again.
    let mut rows: Vec<String> = (0..3)
        .map(|k| order_rows(&format!("TONIGHT-{k}"), &[(k, 2)]))
        .collect();
    rows.extend((0..3).map(|k| order_rows(&format!("N0-OK-{k}"), &[(k % 4, 1)])));
    let note = format!(",{}", "gift wrap and leave at the door; ".repeat(20));
    let body: String = rows
        .concat()
        .lines()
        .map(|l| format!("{l}{note}\n"))
        .collect();
    env.write("tonight.csv", format!("{HEADER},note\n{body}"));
    let dry = env.run(&["runs", "prune", "--before", &before, "--dry-run"]);
    let stock = env.stock();

    let mut gate = PgSession::open(&env.db);
    gate.exec("BEGIN; LOCK TABLE orders IN EXCLUSIVE MODE;");
    let mut probe = PgSession::open(&env.db);
    let mut run = spawn(&env, &["process", "tonight.csv", "--json"], "process");
    poll("the run to wait to claim its orders", || {
        (waiting(&mut probe) == 1).then_some(())
    });
    let mut prune = spawn(&env, &["runs", "prune", "--before", &before], "runs prune");
    poll("the prune to wait to reduce the orders", || {
        (waiting(&mut probe) == 2).then_some(())
    });
    gate.exec("ROLLBACK;");
    assert_eq!(prune.wait(HANG).code(), Some(0));
    assert_eq!(run.wait(HANG).code(), Some(0));
    let summary = json(&procs::drain(run.take_stdout()).join().unwrap());
    assert_eq!(
        (summary["accepted"].as_u64(), summary["skipped"].as_u64()),
        (Some(3), Some(3)),
        "{summary}"
    );
    let out = std::process::Output {
        status: prune.wait(HANG),
        stdout: Vec::new(),
        stderr: procs::drain(prune.take_stderr())
            .join()
            .unwrap()
            .into_bytes(),
    };
    assert_eq!(
        said(&out),
        said(&dry),
        "the prune did what it would have done alone"
    );
    let now = env.stock();
    for k in 0..3 {
        let sku = format!("SKU-{k}");
        assert_eq!(
            now[&sku],
            stock[&sku] - 2,
            "{sku}: only tonight's new orders took stock"
        );
    }
    env.verify_ok();
    let again = json(&env.ok(&["process", "tonight.csv", "--json"], 0));
    assert_eq!(
        again["skipped"], 6,
        "every order of tonight applied once: {again}"
    );
}

// ---------------------------------------------------------------- the schema

/// SQL made comparable: no comments, one space between words, none after an
/// opening or before a closing parenthesis, one after a comma and none
/// before it, no quotes around names, no `IF NOT EXISTS`, no closing `;`.
/// SQLite keeps a statement's text in sqlite_master as it was written (its
/// comments included), adds a column by splicing `, column` in before the
/// closing parenthesis, and quotes a renamed table's name.
fn normalised_sql(sql: &str) -> String {
    let mut text = String::new();
    let mut chars = sql.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if c == '\'' {
            in_string = !in_string;
        }
        if !in_string && c == '-' && chars.peek() == Some(&'-') {
            while chars.peek().is_some_and(|&n| n != '\n') {
                chars.next();
            }
            continue;
        }
        text.push(c);
    }
    let text = text
        .replace('"', "")
        .replace(',', " , ")
        .replace('(', "( ")
        .replace(')', " )");
    text.split_whitespace()
        .filter(|w| *w != ";")
        .collect::<Vec<_>>()
        .join(" ")
        .replace(" , ", ", ")
        .replace("( ", "(")
        .replace(" )", ")")
        .replace("IF NOT EXISTS ", "")
        .trim_end_matches(';')
        .to_string()
}

/// The statements of a SQL file, normalised, split at each `;` outside a
/// string and a comment.
fn sql_statements(file: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut in_string = false;
    for line in file.lines() {
        for (i, c) in line.char_indices() {
            if c == '\'' {
                in_string = !in_string;
            }
            if !in_string && line[i..].starts_with("--") {
                break;
            }
            if !in_string && c == ';' {
                statements.push(normalised_sql(&current));
                current.clear();
            } else {
                current.push(c);
            }
        }
        current.push('\n');
    }
    assert!(
        normalised_sql(&current).is_empty(),
        "a statement without its closing `;`: {current}"
    );
    statements.retain(|s| !s.is_empty());
    statements
}

/// ("table" or "index" ..., name) of a normalised CREATE statement.
fn created(statement: &str) -> (String, String) {
    let words: Vec<&str> = statement.split(' ').collect();
    let (kind, name) = match words.as_slice() {
        ["CREATE", "UNIQUE", "INDEX", name, ..] => ("index", *name),
        ["CREATE", kind, name, ..] => (*kind, *name),
        _ => panic!("not a CREATE statement: {statement}"),
    };
    let name = name.split('(').next().unwrap();
    (kind.to_lowercase(), name.to_string())
}

/// (type, name) -> normalised SQL of every object in sqlite_master that has
/// SQL (the indexes SQLite makes for a primary key have none).
fn sqlite_master(db: &rusqlite::Connection) -> BTreeMap<(String, String), String> {
    let mut st = db
        .prepare(
            "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY type, name",
        )
        .unwrap();
    st.query_map([], |r| {
        Ok((
            (r.get::<_, String>(0)?, r.get::<_, String>(1)?),
            normalised_sql(&r.get::<_, String>(2)?),
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// table -> its rows, each as the debug text of its values.
fn table_rows(db: &rusqlite::Connection) -> BTreeMap<String, Vec<String>> {
    let tables: Vec<String> = sqlite_master(db)
        .into_keys()
        .filter(|(kind, _)| kind == "table")
        .map(|(_, name)| name)
        .collect();
    tables
        .into_iter()
        .map(|t| {
            let mut st = db
                .prepare(&format!("SELECT * FROM {t} ORDER BY 1"))
                .unwrap();
            let n = st.column_count();
            let rows = st
                .query_map([], |r| {
                    Ok((0..n)
                        .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                        .collect::<Vec<_>>()
                        .join("|"))
                })
                .unwrap()
                .map(Result::unwrap)
                .collect();
            (t, rows)
        })
        .collect()
}

fn user_version(db: &rusqlite::Connection) -> i64 {
    db.query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

/// What differs between the CREATE statements of schema.sql and those of a
/// database, object by object, each with where its text first differs.
fn schema_diff(
    file: &BTreeMap<(String, String), String>,
    db: &BTreeMap<(String, String), String>,
) -> Vec<String> {
    let keys: std::collections::BTreeSet<&(String, String)> =
        file.keys().chain(db.keys()).collect();
    let mut diff = Vec::new();
    for key @ (kind, name) in keys {
        match (file.get(key), db.get(key)) {
            (Some(f), None) => diff.push(format!(
                "{kind} {name}: only in schema.sql\n  schema.sql: {f}"
            )),
            (None, Some(d)) => diff.push(format!(
                "{kind} {name}: only in the database init made\n  database:   {d}"
            )),
            (Some(f), Some(d)) if f != d => {
                let at = f.chars().zip(d.chars()).take_while(|(a, b)| a == b).count();
                let from = at.saturating_sub(30);
                let around = |s: &str| s.chars().skip(from).take(70).collect::<String>();
                diff.push(format!(
                    "{kind} {name}: differs from character {at}: schema.sql has …{}…, the database …{}…\n  schema.sql: {f}\n  database:   {d}",
                    around(f),
                    around(d)
                ));
            }
            _ => {}
        }
    }
    diff
}

/// `init` on a new SQLite database creates exactly the schema schema.sql
/// describes: the same tables and indexes, statement by statement (comments,
/// whitespace and quotes aside), the same schema version and the same rows;
/// and schema.sql itself runs on an empty database and makes the same.
#[test]
fn init_creates_exactly_the_schema_of_schema_sql() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.sql");
    let file = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let statements = sql_statements(&file);
    let mut from_file = BTreeMap::new();
    for s in statements.iter().filter(|s| s.starts_with("CREATE ")) {
        let previous = from_file.insert(created(s), s.clone());
        assert!(
            previous.is_none(),
            "schema.sql creates {:?} twice",
            created(s)
        );
    }
    let version: Vec<i64> = statements
        .iter()
        .filter_map(|s| s.strip_prefix("PRAGMA user_version = "))
        .map(|v| v.parse().unwrap())
        .collect();

    let env = Env::new();
    env.ok(&["init"], 0);
    let db = env.db();
    let from_init = sqlite_master(&db);
    let diff = schema_diff(&from_file, &from_init);
    assert!(
        diff.is_empty(),
        "schema.sql is not the schema `orderbatch init` makes from the migrations \
         (schema/sqlite/): bring schema.sql up to date with them.\n\n{}\n",
        diff.join("\n\n")
    );
    assert_eq!(
        version,
        [user_version(&db)],
        "schema.sql's `PRAGMA user_version` and the version `init` leaves"
    );

    let scratch = rusqlite::Connection::open_in_memory().unwrap();
    scratch
        .execute_batch(&file)
        .unwrap_or_else(|e| panic!("schema.sql does not run on an empty database: {e}"));
    assert_eq!(
        schema_diff(&sqlite_master(&scratch), &from_init),
        Vec::<String>::new(),
        "schema.sql, run, makes another schema than `init`"
    );
    assert_eq!(user_version(&scratch), user_version(&db));
    assert_eq!(
        table_rows(&scratch),
        table_rows(&db),
        "the rows schema.sql stores and those `init` stores"
    );
}
