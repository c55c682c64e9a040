//! Files as shops export them: tab-separated by name, another delimiter
//! named in the error, legacy encodings (refused up front, named or
//! detected) and UTF-16, workbooks (one saved by LibreOffice, with a title
//! row, date cells, numbers, a formula and an error), columns of other
//! names (--map), local times (--timezone across daylight saving), delivery
//! files and catalogs with every bad line named, and CSV reports with a
//! byte-order mark for Excel.

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

// ------------------------------------------------------------------
// Files from shops and marketplaces: each case of the README's section of
// that name, on real files, with the exact outcome it promises.

/// A catalog for the shop-export cases: two EUR products, 10,000 of each.
fn shop_setup(env: &Env) {
    env.write(
        "catalog.csv",
        "sku,name,unit_price,currency,on_hand\nSKU-0,Tea,10.00,EUR,10000\nSKU-1,Cup,12.50,EUR,10000\n",
    );
    env.ok(&["inventory", "load", "catalog.csv"], 0);
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `n` one-line orders of SKU-0 whose customer and note hold letters past ASCII.
fn german_orders(prefix: &str, n: usize, note: &str) -> String {
    let mut text = format!("{HEADER},note\n");
    for i in 0..n {
        text.push_str(&format!(
            "{prefix}-{i},2026-11-25T22:14:03Z,j\u{fc}rgen{i}@example.de,SKU-0,1,10.00,EUR,card,r{i},10.00,{note}\n"
        ));
    }
    text
}

#[test]
fn a_windows_1252_or_latin1_export_is_refused_up_front_and_read_when_named_or_detected() {
    let text = german_orders("W", 34, "Gr\u{f6}\u{df}e M \u{2013} 10 \u{20ac}");
    let cp1252 = encoding_rs::WINDOWS_1252.encode(&text).0.into_owned();
    let latin1: Vec<u8> = german_orders("L", 3, "Gr\u{f6}\u{df}e M")
        .chars()
        .map(|c| c as u32 as u8)
        .collect();
    for b in backends() {
        let env = env_for(b);
        shop_setup(&env);
        env.write("win.csv", &cp1252);
        env.write("latin1.csv", &latin1);
        // Without --encoding: nothing is processed, the line, the byte and the encoding named.
        let out = env.run(&["process", "win.csv"]);
        assert_eq!(out.status.code(), Some(2), "{b:?}");
        assert_one_error_line(
            &out,
            &["win.csv: line 2 is not UTF-8 (byte 0xFC at position 27 of the line), so nothing was read: \
               the file looks like windows-1252: pass --encoding windows-1252 (or --encoding auto)"],
        );
        assert_eq!(env.count("SELECT count(*) FROM runs"), 0, "{b:?}: no run");
        // latin1 is windows-1252 by the WHATWG labels: the same advice, and the label works.
        let out = env.run(&["process", "latin1.csv"]);
        assert_one_error_line(
            &out,
            &["latin1.csv: line 2", "pass --encoding windows-1252"],
        );
        env.ok(&["process", "latin1.csv", "--encoding", "latin1"], 0);
        let accepted = parse_csv(env.read("reports/run-1/accepted.csv").as_bytes());
        assert_eq!(accepted[2]["customer_email"], "j\u{fc}rgen2@example.de");
        // auto: detected, and said in the summary line and summary.json.
        let out = env.run(&["process", "win.csv", "--encoding", "auto"]);
        assert_eq!(out.status.code(), Some(0), "{b:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("; win.csv read as windows-1252 (--encoding auto)"),
            "{}",
            stderr(&out)
        );
        let s = json(&env.read("reports/run-2/summary.json"));
        assert_eq!(s["inputs"][0]["encoding"], "windows-1252");
        assert_eq!(s["accepted"], 34);
        let accepted = parse_csv(env.read("reports/run-2/accepted.csv").as_bytes());
        assert_eq!(accepted[33]["customer_email"], "j\u{fc}rgen33@example.de");
        assert_eq!(env.stock()["SKU-0"], 10_000 - 37, "{b:?}");
        env.verify_ok();
    }
}

#[test]
fn a_utf16_export_without_a_byte_order_mark_is_refused_naming_the_flag() {
    let env = Env::new();
    shop_setup(&env);
    let text = german_orders("U", 2, "x");
    let utf16le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    env.write("unicode.csv", &utf16le);
    let out = env.run(&["process", "unicode.csv"]);
    assert_eq!(out.status.code(), Some(2));
    assert_one_error_line(
        &out,
        &["unicode.csv: the file is UTF-16 without a byte-order mark (every other byte is NUL): pass --encoding utf-16le"],
    );
    env.ok(&["process", "unicode.csv", "--encoding", "utf-16le"], 0);
    let accepted = parse_csv(env.read("reports/run-1/accepted.csv").as_bytes());
    assert_eq!(accepted[1]["customer_email"], "j\u{fc}rgen1@example.de");
}

#[test]
fn a_utf8_file_with_one_bad_byte_at_line_5000_fails_only_that_row() {
    let mut text = german_orders("W", 5099, "ok").into_bytes();
    // Line 5,000 is order W-4998; its note's "ok" becomes "o\xFF".
    let start = text
        .split(|b| *b == b'\n')
        .take(4999)
        .map(|l| l.len() + 1)
        .sum::<usize>();
    let end = start + text[start..].iter().position(|b| *b == b'\n').unwrap();
    assert!(text[start..end].starts_with(b"W-4998,"));
    text[end - 1] = 0xFF;
    for b in backends() {
        let env = env_for(b);
        shop_setup(&env);
        env.write("big.csv", &text);
        env.ok(&["process", "big.csv"], 3);
        let s = json(&env.read("reports/run-1/summary.json"));
        assert_eq!(
            (s["accepted"].as_u64(), s["failed"].as_u64()),
            (Some(5098), Some(1)),
            "{b:?}"
        );
        let failed = parse_csv(env.read("reports/run-1/failed.csv").as_bytes());
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0]["error_code"], "MALFORMED_RECORD");
        assert_eq!(failed[0]["source_line"], "5000");
        assert!(
            failed[0]["error_detail"].starts_with("MALFORMED_RECORD: not valid UTF-8 (if the file comes from Excel or an older system, try --encoding windows-1252")
                && failed[0]["error_detail"].contains("W-4998,"),
            "{}",
            failed[0]["error_detail"]
        );
        assert_eq!(env.stock()["SKU-0"], 10_000 - 5098, "{b:?}");
    }
}

/// A spreadsheet in LibreOffice's flat XML (FODS) as a shop's back office
/// keeps it: a title row, then the header, then cells by their type.
fn shop_sheet(rows: &[Vec<String>]) -> String {
    let header: String = HEADER.split(',').map(text_cell).collect();
    let rows: String = rows
        .iter()
        .map(|cells| format!("<table:table-row>{}</table:table-row>\n", cells.concat()))
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<office:document xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" xmlns:number="urn:oasis:names:tc:opendocument:xmlns:datastyle:1.0" xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" xmlns:of="urn:oasis:names:tc:opendocument:xmlns:of:1.2" office:version="1.2" office:mimetype="application/vnd.oasis.opendocument.spreadsheet">
<office:automatic-styles>
<number:date-style style:name="N1"><number:year number:style="long"/><number:text>-</number:text><number:month number:style="long"/><number:text>-</number:text><number:day number:style="long"/><number:text> </number:text><number:hours number:style="long"/><number:text>:</number:text><number:minutes number:style="long"/><number:text>:</number:text><number:seconds number:style="long"/></number:date-style>
<style:style style:name="ce1" style:family="table-cell" style:data-style-name="N1"/>
</office:automatic-styles>
<office:body><office:spreadsheet><table:table table:name="Orders">
<table:table-row>{}</table:table-row>
<table:table-row>{header}</table:table-row>
{rows}</table:table></office:spreadsheet></office:body></office:document>
"#,
        text_cell("Order export 2026-11-25")
    )
}

fn text_cell(v: &str) -> String {
    format!(
        r#"<table:table-cell office:value-type="string"><text:p>{v}</text:p></table:table-cell>"#
    )
}

fn number_cell(v: &str) -> String {
    format!(
        r#"<table:table-cell office:value-type="float" office:value="{v}"><text:p>{v}</text:p></table:table-cell>"#
    )
}

fn date_cell(local: &str) -> String {
    format!(
        r#"<table:table-cell table:style-name="ce1" office:value-type="date" office:date-value="{local}"><text:p>{}</text:p></table:table-cell>"#,
        local.replace('T', " ")
    )
}

fn formula_cell(formula: &str) -> String {
    format!(
        r#"<table:table-cell table:formula="of:={formula}"><text:p></text:p></table:table-cell>"#
    )
}

/// One order row of the sheet: id and payment_ref cells given, the price a
/// number, payment_amount the formula quantity × price.
fn sheet_row(
    row: u32,
    id: String,
    placed: &str,
    sku: &str,
    qty: &str,
    price: &str,
    pay_ref: String,
) -> Vec<String> {
    vec![
        id,
        date_cell(placed),
        text_cell("a@b.co"),
        text_cell(sku),
        number_cell(qty),
        number_cell(price),
        text_cell("EUR"),
        text_cell("card"),
        pay_ref,
        formula_cell(&format!("[.E{row}]*[.F{row}]")),
    ]
}

#[test]
fn a_workbook_saved_by_libreoffice_with_a_title_row_date_cells_numbers_a_formula_and_an_error() {
    let rows = [
        // A 15-digit id in a number cell, 2 × 12.5 by formula: exact.
        sheet_row(
            3,
            number_cell("100000000012345"),
            "2026-11-25T08:02:11",
            "SKU-1",
            "2",
            "12.5",
            text_cell("r1"),
        ),
        // A 19-digit id in a number cell: the spreadsheet kept 15 digits of it.
        sheet_row(
            4,
            number_cell("1234567890123456789"),
            "2026-11-25T09:00:00",
            "SKU-0",
            "1",
            "10",
            text_cell("r2"),
        ),
        // An error value where the payment reference belongs.
        sheet_row(
            5,
            text_cell("X-3"),
            "2026-07-01T10:00:00",
            "SKU-0",
            "1",
            "10",
            formula_cell("1/0"),
        ),
    ];
    for b in backends() {
        let env = env_for(b);
        shop_setup(&env);
        env.write("export.fods", shop_sheet(&rows));
        let Some(()) = libreoffice(&env.path("export.fods"), "xlsx", &env.path("lo")) else {
            return;
        };
        // The title row is no header: said so, with the line of the header.
        let out = env.run(&["process", "lo/export.xlsx"]);
        assert_eq!(out.status.code(), Some(2), "{b:?}");
        assert_one_error_line(
            &out,
            &["lo/export.xlsx: line 1 is not the header (it lacks 'order_id', 'placed_at', 'customer_email' and 7 more); \
               the header seems to be on line 2: pass --skip-rows 1 (line 1 holds: Order export 2026-11-25)"],
        );
        // Date cells without --timezone: each names the cell and the option.
        env.ok(&["process", "lo/export.xlsx", "--skip-rows", "1"], 3);
        let report = env.read("reports/run-1/failed.csv");
        assert!(report.starts_with("Failed orders: correct them, then process this file with the same --skip-rows and --map\norder_id,"), "{report}");
        let failed = parse_csv(report.split_once('\n').unwrap().1.as_bytes());
        assert_eq!(failed.len(), 3, "{b:?}");
        assert_eq!(failed[0]["placed_at"], "2026-11-25 08:02:11");
        assert!(
            failed[0]["error_detail"].starts_with(
                "INVALID_FIELD: placed_at in row 3 (cell B3) shows \"2026-11-25 08:02:11\": it is a spreadsheet date cell, \
                 which has no time zone: pass --timezone ZONE"
            ),
            "{}",
            failed[0]["error_detail"]
        );
        // With the zone: RFC 3339 text with the offset of the day (winter, summer).
        env.ok(
            &[
                "process",
                "lo/export.xlsx",
                "--skip-rows",
                "1",
                "--timezone",
                "Europe/Berlin",
            ],
            3,
        );
        let accepted = parse_csv(env.read("reports/run-2/accepted.csv").as_bytes());
        assert_eq!(accepted.len(), 1, "{b:?}");
        let a = &accepted[0];
        assert_eq!(
            (
                a["order_id"].as_str(),
                a["placed_at"].as_str(),
                a["units"].as_str(),
                a["total"].as_str(),
                a["source_line"].as_str()
            ),
            (
                "100000000012345",
                "2026-11-25T08:02:11+01:00",
                "2",
                "25.00",
                "3"
            )
        );
        let report = env.read("reports/run-2/failed.csv");
        let failed = parse_csv(report.split_once('\n').unwrap().1.as_bytes());
        assert_eq!(failed.len(), 2, "{b:?}");
        assert_eq!(
            (
                failed[0]["order_id"].as_str(),
                failed[0]["error_code"].as_str()
            ),
            ("1.23456789012346E+18", "INVALID_FIELD")
        );
        assert!(
            failed[0]["error_detail"].starts_with("INVALID_FIELD: order_id in row 4 (cell A4) is the number \"1.23456789012346E+18\": it has more than 15 digits"),
            "{}",
            failed[0]["error_detail"]
        );
        assert_eq!(failed[1]["placed_at"], "2026-07-01T10:00:00+02:00");
        assert_eq!(
            failed[1]["error_detail"],
            "INVALID_FIELD: payment_ref in row 5 (cell I5) holds the spreadsheet error \"#DIV/0!\", not a value: \
             correct the cell, or format the column as Text in the spreadsheet and type the value again"
        );
        assert_eq!(env.stock()["SKU-1"], 10_000 - 2, "{b:?}");
        env.verify_ok();
    }
}

#[test]
fn columns_of_other_names_are_all_named_at_once_and_read_with_map_and_the_report_goes_back() {
    // A marketplace export: its own names, its own order, one wrong price.
    let export = "email,Order ID,placed_at,sku,quantity,unit_price,currency,payment_method,payment_ref,amount,Gift note\n\
                  a@b.co,M-1,2026-11-25T08:02:11Z,SKU-0,1,10.00,EUR,card,r1,10.00,Happy birthday\n\
                  c@d.co,M-2,2026-11-25T08:05:00Z,SKU-0,2,9.00,EUR,paypal,r2,18.00,\n";
    let maps = [
        "--map",
        "Order ID=order_id",
        "--map",
        "email=customer_email",
        "--map",
        "amount=payment_amount",
    ];
    for b in backends() {
        let env = env_for(b);
        shop_setup(&env);
        env.write("export.csv", export);
        let out = env.run(&["process", "export.csv"]);
        assert_eq!(out.status.code(), Some(2), "{b:?}");
        assert_one_error_line(
            &out,
            &["export.csv: missing required columns 'order_id' (did you mean 'Order ID'?), \
               'customer_email' (did you mean 'email'?), 'payment_amount' (did you mean 'amount'?) \
               in the header: pass --map \"Order ID=order_id\" --map \"email=customer_email\" \
               --map \"amount=payment_amount\" to read a column of another name as one \
               (found: email,Order ID,placed_at,sku,quantity,unit_price,currency,payment_method,payment_ref,amount,Gift note)"],
        );
        let mut args = vec!["process", "export.csv"];
        args.extend(maps);
        env.ok(&args, 3);
        let accepted = parse_csv(env.read("reports/run-1/accepted.csv").as_bytes());
        assert_eq!(
            (
                accepted[0]["order_id"].as_str(),
                accepted[0]["customer_email"].as_str()
            ),
            ("M-1", "a@b.co")
        );
        // The failed report keeps the file's names and order.
        let report = env.read("reports/run-1/failed.csv");
        assert!(
            report.starts_with(
                "email,Order ID,placed_at,sku,quantity,unit_price,currency,payment_method,payment_ref,amount,gift note,\
                 error_code,error_detail,source_file,source_line,failure_id\n\
                 c@d.co,M-2,2026-11-25T08:05:00Z,SKU-0,2,9.00,EUR,paypal,r2,18.00,,PRICE_MISMATCH,"
            ),
            "{report}"
        );
        // Fixed, it goes back in with the same flags.
        env.write(
            "fixed.csv",
            report.replace(",9.00,EUR,paypal,r2,18.00,", ",10.00,EUR,paypal,r2,20.00,"),
        );
        let mut args = vec!["process", "fixed.csv"];
        args.extend(maps);
        env.ok(&args, 0);
        assert_eq!(
            env.ok(&["failures", "list", "--json"], 0).trim(),
            "[]",
            "{b:?}"
        );
        assert_eq!(env.stock()["SKU-0"], 10_000 - 3, "{b:?}");
        env.verify_ok();
    }
}

/// Orders of one line each, placed at these local times.
fn local_orders(times: &[(&str, &str)]) -> String {
    let mut text = format!("{HEADER}\n");
    for (id, at) in times {
        text.push_str(&format!(
            "{id},{at},a@b.co,SKU-0,1,10.00,EUR,card,r-{id},10.00\n"
        ));
    }
    text
}

#[test]
fn local_times_are_read_in_the_timezone_across_both_daylight_saving_changes_of_2026() {
    let times = [
        ("T-1", "2026-03-29 01:30:00"),
        ("T-2", "2026-03-29 02:30:00"),
        ("T-3", "2026-03-29 03:30:00"),
        ("T-4", "2026-10-25T01:30:00"),
        ("T-5", "2026-10-25 02:30:00"),
        ("T-6", "2026-10-25 03:30:00"),
    ];
    let berlin = ["--timezone", "Europe/Berlin"];
    for b in backends() {
        let env = env_for(b);
        shop_setup(&env);
        env.write("shop.csv", local_orders(&times));
        // Without --timezone: every one names the option.
        env.ok(&["process", "shop.csv"], 3);
        let failed = parse_csv(env.read("reports/run-1/failed.csv").as_bytes());
        assert_eq!(failed.len(), 6, "{b:?}");
        assert_eq!(
            failed[0]["error_detail"],
            "INVALID_FIELD: placed_at \"2026-03-29 01:30:00\" has no offset: pass --timezone ZONE \
             (the zone the shop writes its times in, e.g. --timezone Europe/Berlin) to read it as \
             local time there, or write it with its offset, e.g. 2026-11-25T08:02:11+01:00"
        );
        // With it: the offset of the day, and the hour that never was or was twice named.
        env.ok(&["process", "shop.csv", berlin[0], berlin[1]], 3);
        let accepted = parse_csv(env.read("reports/run-2/accepted.csv").as_bytes());
        let placed: Vec<(&str, &str)> = accepted
            .iter()
            .map(|r| (r["order_id"].as_str(), r["placed_at"].as_str()))
            .collect();
        assert_eq!(
            placed,
            [
                ("T-1", "2026-03-29T01:30:00+01:00"),
                ("T-3", "2026-03-29T03:30:00+02:00"),
                ("T-4", "2026-10-25T01:30:00+02:00"),
                ("T-6", "2026-10-25T03:30:00+01:00"),
            ],
            "{b:?}"
        );
        assert_eq!(
            env.sql("SELECT placed_at FROM orders WHERE order_id = 'T-6'"),
            ["2026-10-25T03:30:00+01:00"],
            "{b:?}: stored with its offset"
        );
        let failed = parse_csv(env.read("reports/run-2/failed.csv").as_bytes());
        let details: Vec<&str> = failed.iter().map(|r| r["error_detail"].as_str()).collect();
        assert_eq!(
            details,
            [
                "INVALID_FIELD: placed_at \"2026-03-29 02:30:00\" does not exist in Europe/Berlin: the clocks \
                 went forward from 02:00 to 03:00 there (daylight saving time); write it with the offset the shop meant",
                "INVALID_FIELD: placed_at \"2026-10-25 02:30:00\" happened twice in Europe/Berlin, at +02:00 and \
                 again at +01:00 when the clocks went back (daylight saving time); write it with the offset the shop meant",
            ],
            "{b:?}"
        );
        // The same file with the same zone again: the same instants, so skipped.
        env.ok(&["process", "shop.csv", berlin[0], berlin[1]], 3);
        let s = json(&env.read("reports/run-3/summary.json"));
        assert_eq!(
            (s["skipped"].as_u64(), s["failed"].as_u64()),
            (Some(4), Some(2)),
            "{b:?}"
        );
        // Another zone is another instant: a conflict, never a second shipment.
        env.ok(
            &[
                "process",
                "shop.csv",
                "--timezone",
                "America/New_York",
                "--dry-run",
            ],
            3,
        );
        let s = json(&env.read("reports/run-4/summary.json"));
        assert_eq!(s["errors_by_code"]["ORDER_ID_CONFLICT"], 4, "{b:?}");
        // The two fixed with their offsets go back in.
        let report = env
            .read("reports/run-2/failed.csv")
            .replace("2026-03-29 02:30:00", "2026-03-29T03:30:00+02:00")
            .replace("2026-10-25 02:30:00", "2026-10-25T02:30:00+01:00");
        env.write("fixed.csv", report);
        env.ok(&["process", "fixed.csv", berlin[0], berlin[1]], 0);
        assert_eq!(env.stock()["SKU-0"], 10_000 - 6, "{b:?}");
        env.verify_ok();
    }
}

#[test]
fn inventory_files_name_every_bad_line_at_once_and_their_kind() {
    for b in backends() {
        let env = env_for(b);
        shop_setup(&env);
        // A delivery note with a title line and German column names.
        let delivery =
            "Lieferschein 2026-11-27,\nArtikel,Menge\nSKU-0,5\nSKU-1,fünf\nSKU-9,1\nSKU-1,0\n";
        env.write("delivery.csv", delivery);
        let out = env.run(&[
            "inventory",
            "receive",
            "delivery.csv",
            "--skip-rows",
            "1",
            "--map",
            "Artikel=sku",
            "--map",
            "Menge=quantity",
        ]);
        assert_eq!(out.status.code(), Some(2), "{b:?}");
        assert_one_error_line(
            &out,
            &["delivery file delivery.csv rejected, nothing was changed: \
               line 4: quantity \"fünf\" must be a whole number from 1 to 1000000000; \
               line 5: sku \"SKU-9\" is not in the catalog (load it first with inventory load); \
               line 6: quantity \"0\" must be a whole number from 1 to 1000000000; \
               correct the file and run the command again"],
        );
        assert_eq!(env.stock()["SKU-0"], 10_000, "{b:?}: nothing changed");
        // Mapped but not skipped: the title line is said to be no header.
        let out = env.run(&[
            "inventory",
            "receive",
            "delivery.csv",
            "--map",
            "Artikel=sku",
            "--map",
            "Menge=quantity",
        ]);
        assert_one_error_line(
            &out,
            &["delivery.csv: line 1 is not the header (it lacks 'sku', 'quantity'); the header seems to be on line 2: pass --skip-rows 1"],
        );
        env.write(
            "delivery.csv",
            "Lieferschein 2026-11-27,\nArtikel,Menge\nSKU-0,5\nSKU-1,4\n",
        );
        env.ok(
            &[
                "inventory",
                "receive",
                "delivery.csv",
                "--skip-rows",
                "1",
                "--map",
                "Artikel=sku",
                "--map",
                "Menge=quantity",
            ],
            0,
        );
        assert_eq!(
            (env.stock()["SKU-0"], env.stock()["SKU-1"]),
            (10_005, 10_004),
            "{b:?}"
        );
        // A catalog is called a catalog, every bad line named.
        env.write(
            "more.csv",
            "sku,name,unit_price,currency,on_hand\nSKU-2,,1.00,EUR,1\nSKU-3,Pot,1.001,EUR,1\n",
        );
        let out = env.run(&["inventory", "load", "more.csv"]);
        assert_one_error_line(
            &out,
            &["catalog more.csv rejected, nothing was changed: line 2: name is empty; line 3: unit_price \"1.001\""],
        );
        env.verify_ok();
    }
}
