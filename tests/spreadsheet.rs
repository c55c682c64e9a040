//! Failed reports through spreadsheets: no round trip can make one order take
//! stock twice, and an xlsx report goes back in exactly. The LibreOffice
//! tests use a real `soffice --headless` (Debian: libreoffice-calc-nogui);
//! without it they fail and say so, unless ORDERBATCH_SKIP_LIBREOFFICE=1.

mod common;

use common::*;

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
