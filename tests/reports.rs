//! The reports of a run: the files, and `report` giving them again from the
//! database (also into a closed pipe); CSV (with a byte-order mark for Excel
//! when asked), JSONL and xlsx; failed rows proportional to their input, each
//! with its own problem; what an xlsx sheet cannot hold refused before the
//! commit; a dry run's report. Failed reports fed back, also through
//! spreadsheets: no round trip can make one order take stock twice, and an
//! xlsx report goes back in exactly. The LibreOffice tests use a real
//! `soffice --headless` (Debian: libreoffice-calc-nogui); without it they
//! fail and say so, unless ORDERBATCH_SKIP_LIBREOFFICE=1.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::*;

// ----------------------------------------------------- the reports of a run and the report command

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

#[test]
fn a_failed_order_of_4000_lines_gives_a_report_proportional_to_it() {
    let env = Env::new();
    load_catalog(&env, 1);
    let lines: Vec<(usize, u32)> = (0..4000).map(|i| (i % 5, 1)).collect();
    let input = csv_file(&[order_rows("BIG-1", &lines)]);
    env.write("orders.csv", &input);
    env.ok(&["process", "orders.csv"], 3);
    let size = std::fs::metadata(env.path("reports/run-1/failed.csv"))
        .unwrap()
        .len();
    // Was 1.03 GB: every row repeated the whole order's detail.
    assert!(
        size < 2 * input.len() as u64,
        "{size} bytes for {} of input",
        input.len()
    );
    let rows = parse_csv(env.read("reports/run-1/failed.csv").as_bytes());
    assert_eq!(rows.len(), 4000);
    assert!(rows[0]["error_detail"].starts_with("INSUFFICIENT_STOCK: "));
    assert!(rows[1..]
        .iter()
        .all(|r| r["error_detail"].is_empty() && r["error_code"] == "INSUFFICIENT_STOCK"));
    let rebuilt = env.ok(&["report", "failed", "--run", "1"], 0);
    assert_eq!(
        rebuilt.len() as u64,
        size,
        "report failed rebuilds the same"
    );
    env.ok(&["reprocess"], 3);
    let again = std::fs::metadata(env.path("reports/run-2/failed.csv"))
        .unwrap()
        .len();
    assert!(again < 2 * input.len() as u64, "{again}");
}

#[test]
fn an_invalid_line_of_a_big_order_carries_its_problem_on_its_own_row() {
    let env = Env::new();
    load_catalog(&env, 100);
    let mut text = csv_file(&[order_rows("BIG-2", &[(0, 1), (1, 1), (2, 1)])]);
    text = text.replacen(",SKU-1,1,11.00,", ",SKU-1,0,11.00,", 1);
    env.write("orders.csv", &text);
    env.ok(&["process", "orders.csv"], 3);
    let rows = parse_csv(env.read("reports/run-1/failed.csv").as_bytes());
    assert_eq!(rows[0]["error_detail"], "");
    // The row's own problem, without the place the row itself shows.
    assert!(
        rows[1]["error_detail"].starts_with("INVALID_FIELD: quantity \"0\" "),
        "{}",
        rows[1]["error_detail"]
    );
    assert!(!rows[1]["error_detail"].contains("(line"));
    assert!(!rows[1]["error_detail"].contains("PAYMENT"));
    assert_eq!(rows[2]["error_detail"], "");
    // The whole detail names the line once, at the end of its problem.
    let listed: serde_json::Value =
        serde_json::from_str(&env.ok(&["failures", "list", "--json"], 0)).unwrap();
    let detail = listed[0]["error_detail"].as_str().unwrap();
    assert!(
        detail.starts_with("INVALID_FIELD: quantity \"0\" ") && detail.ends_with(" (line 3)"),
        "{detail}"
    );
}

#[test]
fn csv_reports_can_start_with_a_byte_order_mark_for_excel() {
    let env = Env::new();
    load_catalog_of(&env, 3, 10);
    env.write(
        "orders.csv",
        csv_file(&[order_rows("B-1", &[(0, 1)]), order_rows("B-2", &[(9, 1)])]),
    );
    env.ok(&["process", "orders.csv", "--report-bom"], 3);
    for f in ["accepted.csv", "failed.csv"] {
        let bytes = std::fs::read(env.path(&format!("reports/run-1/{f}"))).unwrap();
        assert!(bytes.starts_with(b"\xEF\xBB\xBForder_id,"), "{f}");
    }
    // Such a report reads back as it is (the reader skips the mark).
    env.ok(&["process", "reports/run-1/failed.csv", "--dry-run"], 3);
    env.ok(&["process", "orders.csv", "--dry-run"], 3);
    assert!(
        env.read("reports/run-3/accepted.csv")
            .starts_with("order_id,"),
        "no mark unless asked"
    );
}

/// A report an xlsx workbook cannot hold (more than 16,384 columns, a value
/// over 32,767 characters) is refused with exit 2 before the run commits,
/// saying what to use instead; `report --format xlsx` refuses it the same way.
#[test]
fn a_report_too_large_for_xlsx_is_refused_before_the_commit() {
    let env = Env::new();
    load_catalog(&env, 1_000_000);
    let extra: Vec<String> = (0..16_400).map(|i| format!("x{i}")).collect();
    let wide = format!(
        "{HEADER},{}\n{}",
        extra.join(","),
        order_rows("W-1", &[(9, 1)]).replace('\n', &format!(",{}\n", vec!["v"; 16_400].join(",")))
    );
    env.write("wide.csv", wide);
    let out = env.run(&["process", "wide.csv", "--report-format", "xlsx"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_one_error_line(
        &out,
        &[
            "16415 columns",
            "16384 an xlsx sheet holds",
            "--report-format csv or jsonl",
            "nothing of this run was committed",
        ],
    );
    assert_eq!(env.count("SELECT count(*) FROM failed_orders"), 0);

    let long = "n".repeat(40_000);
    let text = format!(
        "{HEADER},note\n{}{}",
        order_rows("L-1", &[(0, 1)]).replace('\n', ",short\n"),
        order_rows("L-2", &[(9, 1)]).replace('\n', &format!(",{long}\n"))
    );
    env.write("long.csv", &text);
    let out = env.run(&["process", "long.csv", "--report-format", "xlsx"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_one_error_line(
        &out,
        &[
            "failed.xlsx report cannot be written",
            "40000 characters",
            "32767 at most",
        ],
    );
    nothing_committed(&env);
    env.ok(&["process", "long.csv"], 3);
    let out = env.run(&["report", "failed", "--run", "3", "--format", "xlsx"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_one_error_line(&out, &["40000 characters", "--report-format csv or jsonl"]);
}

// ---------------------------------------------- failed reports fed back, also through spreadsheets

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

const CATALOG: &str = "sku,name,unit_price,currency,on_hand\nTEA,Sencha 100 g,5.00,EUR,1\n";

const ORDER_000777: &str = "000777,2026-11-25T08:02:11Z,a@b.co,TEA,2,5.00,EUR,card,r1,10.00\n";

/// The scenario's start: order 000777 fails for stock (two teas, one on hand).
fn failed_for_stock(env: &Env, extra: &[&str]) {
    env.write("catalog.csv", CATALOG);
    env.write("orders.csv", format!("{HEADER}\n{ORDER_000777}"));
    let mut args = vec!["process", "orders.csv", "--catalog", "catalog.csv"];
    args.extend(extra);
    env.ok(&args, 3);
    env.write("restock.csv", "sku,quantity\nTEA,5\n");
}

/// What a spreadsheet makes of an id column: the number, without its leading zeros.
fn as_a_spreadsheet_saves_it(report: &str) -> String {
    report.replacen("\n000777,", "\n777,", 1)
}

fn teas(env: &Env) -> i64 {
    env.stock()["TEA"]
}

#[test]
fn a_spreadsheet_round_trip_never_ships_an_order_twice() {
    for b in backends() {
        let env = Env::with(b);
        failed_for_stock(&env, &[]);
        let edited = as_a_spreadsheet_saves_it(&env.read("reports/run-1/failed.csv"));
        assert!(edited.contains("\n777,"), "{edited}");
        env.write("edited.csv", &edited);
        env.ok(&["inventory", "receive", "restock.csv"], 0);
        assert_eq!(teas(&env), 6, "{b:?}");
        // The edited report: 777 is not 000777 of failure F1-1.
        env.ok(&["process", "edited.csv"], 3);
        let rows = parse_csv(env.read("reports/run-2/failed.csv").as_bytes());
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["order_id"], "777");
        assert_eq!(rows[0]["error_code"], "INVALID_FIELD", "{b:?}");
        let detail = &rows[0]["error_detail"];
        assert!(
            detail.contains("\"777\" is not the order_id \"000777\" of failure F1-1")
                && detail.contains("leading zeros were dropped")
                && detail.contains("as text"),
            "{detail}"
        );
        assert_eq!(teas(&env), 6, "{b:?}: nothing taken");
        // reprocess retries the original failure, once.
        env.ok(&["reprocess"], 0);
        let accepted = parse_csv(env.read("reports/run-3/accepted.csv").as_bytes());
        assert_eq!(accepted.len(), 1);
        assert_eq!(accepted[0]["order_id"], "000777");
        assert_eq!(teas(&env), 4, "{b:?}: taken once");
        // Neither the edited report again nor another reprocess takes more.
        env.ok(&["process", "edited.csv"], 3);
        env.ok(&["reprocess"], 0);
        let s: serde_json::Value =
            serde_json::from_str(&env.read("reports/run-5/summary.json")).unwrap();
        assert_eq!(s["orders"], 0, "{b:?}: nothing left to retry");
        assert_eq!(teas(&env), 4, "{b:?}");
        assert_eq!(env.count("SELECT count(*) FROM orders"), 1);
        env.verify_ok();
    }
}

#[test]
fn a_fixed_invalid_order_id_is_accepted_and_resolves_exactly_its_failure() {
    let env = Env::new();
    env.write("catalog.csv", CATALOG.replace(",1\n", ",10\n"));
    env.write(
        "orders.csv",
        format!("{HEADER}\n{}", ORDER_000777.replacen("000777", "A 777", 1)),
    );
    env.ok(&["process", "orders.csv", "--catalog", "catalog.csv"], 3);
    let report = env.read("reports/run-1/failed.csv");
    assert!(report.contains("INVALID_FIELD"), "{report}");
    env.write("fixed.csv", report.replacen("\nA 777,", "\nA-777,", 1));
    env.ok(&["process", "fixed.csv"], 0);
    let open = env.ok(&["failures", "list", "--json"], 0);
    assert_eq!(open.trim(), "[]", "the named failure is resolved");
    let shown: serde_json::Value =
        serde_json::from_str(&env.ok(&["runs", "show", "1", "--json"], 0)).unwrap();
    assert_eq!(
        shown["failed_resolved_by"],
        serde_json::json!([{"run": 2, "orders": 1}])
    );
    env.ok(&["reprocess"], 0);
    assert_eq!(env.stock()["TEA"], 8);
}

#[test]
fn a_long_number_a_spreadsheet_wrote_in_scientific_notation_is_caught() {
    let env = Env::new();
    env.write("catalog.csv", CATALOG);
    // A long payment reference (not a card number: it fails the Luhn check).
    let order = ORDER_000777.replacen(",r1,", ",1234567890123456780,", 1);
    env.write("orders.csv", format!("{HEADER}\n{order}"));
    env.ok(&["process", "orders.csv", "--catalog", "catalog.csv"], 3);
    let report = env.read("reports/run-1/failed.csv");
    assert!(report.contains(",1234567890123456780,"), "{report}");
    env.write(
        "edited.csv",
        report.replacen(",1234567890123456780,", ",1.23456789012346E+018,", 1),
    );
    env.write("restock.csv", "sku,quantity\nTEA,5\n");
    env.ok(&["inventory", "receive", "restock.csv"], 0);
    env.ok(&["process", "edited.csv"], 3);
    let rows = parse_csv(env.read("reports/run-2/failed.csv").as_bytes());
    assert_eq!(rows[0]["error_code"], "INVALID_FIELD");
    assert!(
        rows[0]["error_detail"].contains("payment_ref \"1.23456789012346E+018\" is not the \"1234567890123456780\" of failure F1-1")
            && rows[0]["error_detail"].contains("scientific notation"),
        "{}",
        rows[0]["error_detail"]
    );
    assert_eq!(env.stock()["TEA"], 6);
    env.ok(&["reprocess"], 0);
    assert_eq!(env.stock()["TEA"], 4);
}

#[test]
fn an_xlsx_failed_report_holds_every_cell_as_text_and_goes_back_in() {
    use calamine::{Data, Reader};
    let env = Env::new();
    failed_for_stock(&env, &["--report-format", "xlsx"]);
    assert!(env.exists("reports/run-1/accepted.xlsx"));
    let mut wb = calamine::open_workbook_auto(env.path("reports/run-1/failed.xlsx")).unwrap();
    let range = wb.worksheet_range_at(0).unwrap().unwrap();
    let rows: Vec<Vec<Data>> = range.rows().map(|r| r.to_vec()).collect();
    assert_eq!(rows[0][0], Data::String("order_id".into()));
    assert!(
        rows[1]
            .iter()
            .all(|c| matches!(c, Data::String(_) | Data::Empty)),
        "{:?}",
        rows[1]
    );
    assert_eq!(rows[1][0], Data::String("000777".into()));
    assert_eq!(rows[1][5], Data::String("5.00".into()));
    assert_eq!(rows[1].last(), Some(&Data::String("F1-1".into())));
    // `report failed` rebuilds the same workbook content from the database.
    let out = env
        .cmd()
        .args(["report", "failed", "--run", "1"])
        .output()
        .unwrap();
    let mut again = calamine::open_workbook_auto_from_rs(std::io::Cursor::new(out.stdout)).unwrap();
    let rebuilt: Vec<Vec<Data>> = again
        .worksheet_range_at(0)
        .unwrap()
        .unwrap()
        .rows()
        .map(|r| r.to_vec())
        .collect();
    assert_eq!(rebuilt, rows);
    env.ok(&["inventory", "receive", "restock.csv"], 0);
    env.ok(&["process", "reports/run-1/failed.xlsx"], 0);
    let accepted = parse_csv(env.read("reports/run-2/accepted.csv").as_bytes());
    assert_eq!(accepted[0]["order_id"], "000777");
    assert_eq!(accepted[0]["source_line"], "2", "the row of the sheet");
    env.ok(&["reprocess"], 0);
    assert_eq!(env.stock()["TEA"], 4);
}

#[test]
fn a_csv_failed_report_saved_by_libreoffice_is_caught_and_the_order_ships_once() {
    let env = Env::new();
    failed_for_stock(&env, &[]);
    let out = env.path("lo");
    let Some(()) = libreoffice(&env.path("reports/run-1/failed.csv"), "csv", &out) else {
        return;
    };
    let saved = env.read("lo/failed.csv");
    assert!(
        saved.contains("\n777,"),
        "LibreOffice turned the id into a number: {saved}"
    );
    env.ok(&["inventory", "receive", "restock.csv"], 0);
    env.ok(&["process", "lo/failed.csv"], 3);
    let rows = parse_csv(env.read("reports/run-2/failed.csv").as_bytes());
    assert_eq!(rows[0]["error_code"], "INVALID_FIELD", "{rows:?}");
    assert_eq!(env.stock()["TEA"], 6);
    env.ok(&["reprocess"], 0);
    assert_eq!(env.stock()["TEA"], 4);
    env.ok(&["process", "lo/failed.csv"], 3);
    assert_eq!(env.stock()["TEA"], 4, "never twice");
}

#[test]
fn an_xlsx_failed_report_edited_and_saved_by_libreoffice_goes_back_in_exactly() {
    let env = Env::new();
    failed_for_stock(&env, &["--report-format", "xlsx"]);
    let out = env.path("lo");
    let Some(()) = libreoffice(&env.path("reports/run-1/failed.xlsx"), "xlsx", &out) else {
        return;
    };
    env.ok(&["inventory", "receive", "restock.csv"], 0);
    env.ok(&["process", "lo/failed.xlsx"], 0);
    let accepted = parse_csv(env.read("reports/run-2/accepted.csv").as_bytes());
    assert_eq!(accepted.len(), 1);
    assert_eq!(
        accepted[0]["order_id"], "000777",
        "the id came back as text"
    );
    assert_eq!(accepted[0]["total"], "10.00");
    env.ok(&["reprocess"], 0);
    assert_eq!(env.stock()["TEA"], 4);
    assert_eq!(env.ok(&["failures", "list", "--json"], 0).trim(), "[]");
}
