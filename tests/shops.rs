//! Files as shops export them: tab-separated by name, another delimiter
//! named in the error, legacy encodings and UTF-16, workbooks, and CSV
//! reports with a byte-order mark for Excel.

mod common;

use common::*;

fn setup(env: &Env) {
    env.write("catalog.csv", catalog(3, 10));
    env.ok(&["inventory", "load", "catalog.csv"], 0);
}

#[test]
fn a_tsv_file_is_tab_separated_by_its_name() {
    let env = Env::new();
    setup(&env);
    let text = csv_file(&[order_rows("T-1", &[(0, 1)]), order_rows("T-2", &[(1, 2)])]);
    env.write("export.tsv", text.replace(',', "\t"));
    env.ok(&["process", "export.tsv"], 0);
    let s: serde_json::Value =
        serde_json::from_str(&env.read("reports/run-1/summary.json")).unwrap();
    assert_eq!(
        (s["accepted"].as_u64(), s["inputs"][0]["format"].as_str()),
        (Some(2), Some("tsv"))
    );
    // A tsv catalog too.
    env.write(
        "more.tsv",
        "sku\tname\tunit_price\tcurrency\ton_hand\nSKU-9\tNine\t1.00\tEUR\t4\n",
    );
    env.ok(&["inventory", "load", "more.tsv"], 0);
    assert_eq!(env.stock()["SKU-9"], 4);
}

#[test]
fn a_header_that_does_not_split_names_the_delimiter_to_pass() {
    let env = Env::new();
    setup(&env);
    for (sep, name, arg) in [
        (";", "';'", "';'"),
        ("|", "'|'", "'|'"),
        ("\t", "tabs", "tab"),
    ] {
        let text = csv_file(&[order_rows("D-1", &[(0, 1)])]).replace(',', sep);
        env.write("orders.csv", &text);
        let out = env.run(&["process", "orders.csv"]);
        assert_eq!(out.status.code(), Some(2));
        assert_one_error_line(
            &out,
            &[
                "orders.csv",
                &format!("does not split into columns but holds {name}"),
                &format!("--delimiter {arg}"),
            ],
        );
        let delim = if sep == "\t" { "tab" } else { sep };
        env.ok(
            &["process", "orders.csv", "--delimiter", delim, "--dry-run"],
            0,
        );
    }
}

#[test]
fn windows_1252_and_utf16_files_read_as_their_text() {
    let env = Env::new();
    setup(&env);
    let text = csv_file(&[order_rows("E-1", &[(0, 1)])]).replace("buyer@", "jos\u{e9}@");
    // windows-1252: é is one byte, 0xE9.
    let cp1252: Vec<u8> = text.chars().map(|c| c as u32 as u8).collect();
    env.write("legacy.csv", &cp1252);
    let out = env.run(&["process", "legacy.csv", "--dry-run"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "refused before any order is read"
    );
    assert_one_error_line(&out, &["legacy.csv", "line 2", "--encoding windows-1252"]);
    // Named as UTF-8, the row is read, and malformed.
    let out = env.run(&["process", "legacy.csv", "--dry-run", "--encoding", "utf-8"]);
    assert_eq!(out.status.code(), Some(3));
    let failed = env.read("reports/run-1/failed.csv");
    assert!(failed.contains("try --encoding windows-1252"), "{failed}");
    env.ok(&["process", "legacy.csv", "--encoding", "windows-1252"], 0);
    let accepted = parse_csv(env.read("reports/run-2/accepted.csv").as_bytes());
    assert_eq!(accepted[0]["customer_email"], "jos\u{e9}@example.com");
    // UTF-16 with its byte-order mark, as Excel's "Unicode text" saves: no flag needed.
    let text = csv_file(&[order_rows("E-2", &[(0, 1)])]).replace("buyer@", "z\u{fc}rich@");
    let mut utf16 = vec![0xFF, 0xFE];
    for u in text.encode_utf16() {
        utf16.extend(u.to_le_bytes());
    }
    env.write("unicode.csv", &utf16);
    env.ok(&["process", "unicode.csv"], 0);
    let accepted = parse_csv(env.read("reports/run-3/accepted.csv").as_bytes());
    assert_eq!(accepted[0]["customer_email"], "z\u{fc}rich@example.com");
    // An unknown encoding is a usage error naming some that work.
    let out = env.run(&["process", "unicode.csv", "--encoding", "klingon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("windows-1252"));
    // A header that is not UTF-8 says which encoding to try.
    env.write("bad-header.csv", b"order_id,placed_\xe9t\n");
    let out = env.run(&["process", "bad-header.csv"]);
    assert_one_error_line(&out, &["bad-header.csv", "--encoding windows-1252"]);
}

#[test]
fn csv_reports_can_start_with_a_byte_order_mark_for_excel() {
    let env = Env::new();
    setup(&env);
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

#[test]
fn an_xlsx_workbook_of_orders_is_read_from_its_first_sheet() {
    use rust_xlsxwriter::Workbook;
    let env = Env::new();
    setup(&env);
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    let header: Vec<&str> = HEADER.split(',').collect();
    for (i, h) in header.iter().enumerate() {
        ws.write_string(0, i as u16, *h).unwrap();
    }
    // As a user types them: numbers stored as numbers, one order of two rows.
    let rows: [[&str; 10]; 2] = [
        [
            "X-1",
            "2026-11-25T22:14:03Z",
            "a@b.co",
            "SKU-0",
            "2",
            "10",
            "EUR",
            "card",
            "r",
            "31",
        ],
        [
            "X-1",
            "2026-11-25T22:14:03Z",
            "a@b.co",
            "SKU-1",
            "1",
            "11",
            "EUR",
            "card",
            "r",
            "31",
        ],
    ];
    for (r, row) in rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            match v.parse::<f64>() {
                Ok(n) => ws.write_number(r as u32 + 1, c as u16, n).unwrap(),
                Err(_) => ws.write_string(r as u32 + 1, c as u16, *v).unwrap(),
            };
        }
    }
    wb.add_worksheet().write_string(0, 0, "ignored").unwrap();
    wb.save(env.path("orders.xlsx")).unwrap();
    env.ok(&["process", "orders.xlsx"], 0);
    let accepted = parse_csv(env.read("reports/run-1/accepted.csv").as_bytes());
    assert_eq!(accepted.len(), 1);
    assert_eq!(
        (accepted[0]["lines"].as_str(), accepted[0]["units"].as_str()),
        ("2", "3")
    );
    assert_eq!(accepted[0]["total"], "31.00");
    assert_eq!(env.stock()["SKU-0"], 8);
    // Not a workbook: exit 2, naming the file.
    env.write("fake.xlsx", "order_id\n");
    let out = env.run(&["process", "fake.xlsx"]);
    assert_eq!(out.status.code(), Some(2));
    assert_one_error_line(&out, &["fake.xlsx", "xlsx"]);
}

/// A workbook of the header and these rows, each cell written by `cell`.
fn workbook(
    rows: &[[&str; 10]],
    cell: impl Fn(&mut rust_xlsxwriter::Worksheet, u32, u16, &str),
) -> Vec<u8> {
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    for (i, h) in HEADER.split(',').enumerate() {
        ws.write_string(0, i as u16, h).unwrap();
    }
    for (r, row) in rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            cell(ws, r as u32 + 1, c as u16, v);
        }
    }
    wb.save_to_buffer().unwrap()
}

/// One order of SKU-0 (10.00 EUR).
fn xlsx_order(id: &'static str, payment_ref: &'static str) -> [&'static str; 10] {
    [
        id,
        "2026-11-25T22:14:03Z",
        "a@b.co",
        "SKU-0",
        "1",
        "10",
        "EUR",
        "card",
        payment_ref,
        "10",
    ]
}

#[test]
fn a_workbook_cell_that_is_not_its_text_fails_naming_the_cell() {
    use rust_xlsxwriter::Formula;
    let env = Env::new();
    setup(&env);
    let rows = [
        xlsx_order("1234567890123456789", "r"),
        xlsx_order("D-1", "=1/0"),
        xlsx_order("D-2", "r2"),
    ];
    // As a user types them: what looks like a number is one, a formula a formula.
    let book = workbook(&rows, |ws, r, c, v| {
        if let Some(f) = v.strip_prefix('=') {
            let f = Formula::new(f).set_result("#DIV/0!");
            ws.write_formula(r, c, f).unwrap();
        } else if let Ok(n) = v.parse::<f64>() {
            ws.write_number(r, c, n).unwrap();
        } else {
            ws.write_string(r, c, v).unwrap();
        }
    });
    env.write("orders.xlsx", book);
    env.ok(&["process", "orders.xlsx"], 3);
    let failed = parse_csv(env.read("reports/run-1/failed.csv").as_bytes());
    assert_eq!(failed.len(), 2, "{failed:?}");
    // Never 1234567890123456800: the spreadsheet lost the last digits.
    assert_eq!(failed[0]["order_id"], "1.23456789012346E+18");
    assert_eq!(failed[0]["error_code"], "INVALID_FIELD");
    let detail = &failed[0]["error_detail"];
    assert!(
        detail.contains("order_id in row 2 (cell A2) is the number \"1.23456789012346E+18\"")
            && detail.contains("more than 15 digits")
            && detail.contains("format the column as Text in the spreadsheet"),
        "{detail}"
    );
    assert_eq!(failed[1]["payment_ref"], "#DIV/0!");
    assert_eq!(failed[1]["error_code"], "INVALID_FIELD");
    assert!(
        failed[1]["error_detail"]
            .contains("payment_ref in row 3 (cell I3) holds the spreadsheet error \"#DIV/0!\""),
        "{}",
        failed[1]["error_detail"]
    );
    let accepted = parse_csv(env.read("reports/run-1/accepted.csv").as_bytes());
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0]["order_id"], "D-2");
    assert_eq!(env.stock()["SKU-0"], 9);
}

#[test]
fn encoding_names_a_text_file_s_encoding_not_a_workbook_s() {
    let env = Env::new();
    setup(&env);
    // A value past ASCII: windows-1252 transcoding of the archive would change bytes.
    let rows = [xlsx_order("W-1", "r\u{e9}f")];
    let book = workbook(&rows, |ws, r, c, v| {
        ws.write_string(r, c, v).unwrap();
    });
    env.write("orders.xlsx", book);
    for (run, encoding) in [(1, "windows-1252"), (2, "utf-16")] {
        env.ok(
            &[
                "process",
                "orders.xlsx",
                "--dry-run",
                "--encoding",
                encoding,
            ],
            0,
        );
        let accepted = parse_csv(
            env.read(&format!("reports/run-{run}/accepted.csv"))
                .as_bytes(),
        );
        assert_eq!(accepted[0]["order_id"], "W-1", "{encoding}");
    }
    env.ok(&["process", "orders.xlsx", "--encoding", "windows-1252"], 0);
    assert_eq!(env.stock()["SKU-0"], 9);
}
