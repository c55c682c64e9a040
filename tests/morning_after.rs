//! The morning after a night with failures, as ops work through it: the
//! open failures listed by code, retried by code after a restock, closed by
//! code or order id; the summary line that says why; the run history by
//! host, status and count; reports of runs that stored none; and read-only
//! commands that never create a database a typo named.

mod common;

use common::*;

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

/// A night's file on a catalog of SKU-0..SKU-2 with 2 units each: four good
/// orders (one unit of SKU-0 or SKU-1 each), three INSUFFICIENT_STOCK
/// (SKU-2, 5 units), two UNKNOWN_SKU and one INVALID_FIELD.
fn night(env: &Env) {
    env.write("catalog.csv", catalog(3, 2));
    env.ok(&["inventory", "load", "catalog.csv"], 0);
    let mut orders: Vec<String> = (0..4)
        .map(|i| order_rows(&format!("OK-{i}"), &[(i % 2, 1)]))
        .collect();
    orders.extend((0..3).map(|i| order_rows(&format!("STOCK-{i}"), &[(2, 5)])));
    orders.extend(
        (0..2).map(|i| order_rows(&format!("SKU-{i}"), &[(0, 1)]).replace("SKU-0", "GONE-1")),
    );
    orders.push(order_rows("BAD-1", &[(1, 1)]).replace("buyer@example.com", "not an email"));
    env.write("night.csv", csv_file(&orders));
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
fn a_report_of_a_dry_run_says_it_stores_none_and_where_its_file_is() {
    for b in backends() {
        let env = env_for(b);
        night(&env);
        env.ok(&["process", "night.csv", "--dry-run"], 3);
        env.ok(
            &[
                "process",
                "night.csv",
                "--dry-run",
                "--report-format",
                "jsonl",
            ],
            3,
        );
        env.ok(&["process", "night.csv", "--max-errors", "1"], 4);
        for (args, words, file) in [
            (
                ["report", "failed", "--run", "1"],
                "run 1 was a dry run: a dry run stores no failures; its report is the file it wrote, reports/run-1/failed.csv",
                Some("reports/run-1/failed.csv"),
            ),
            (
                ["report", "accepted", "--run", "1"],
                "run 1 was a dry run: a dry run stores no orders; its report is the file it wrote, reports/run-1/accepted.csv",
                Some("reports/run-1/accepted.csv"),
            ),
            (
                ["report", "failed", "--run", "2"],
                "reports/run-2/failed.jsonl (under the --out directory the run was given; reports by default)",
                Some("reports/run-2/failed.jsonl"),
            ),
            (
                ["report", "failed", "--run", "3"],
                "run 3 was aborted by --max-errors: nothing of it was stored and it wrote no reports",
                None,
            ),
        ] {
            let out = env.run(&args);
            assert_eq!(out.status.code(), Some(2), "{b:?} {args:?}: {out:?}");
            assert!(out.stdout.is_empty(), "{b:?} {args:?}: no empty report");
            assert_one_error_line(&out, &[words]);
            if let Some(file) = file {
                assert!(env.exists(file), "{b:?}: {file} is where it says");
            }
        }
        // A run that committed gives its report, as before.
        env.ok(&["process", "night.csv"], 3);
        let failed = env.ok(&["report", "failed", "--run", "4"], 0);
        assert_eq!(failed, env.read("reports/run-4/failed.csv"), "{b:?}");
    }
}
