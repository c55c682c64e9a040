//! Reading order files: CSV, TSV, JSONL and xlsx, gzip and standard input,
//! byte-order marks and line ends, encodings (legacy ones refused up front,
//! read when named or detected), files as shops export them (workbooks saved
//! by LibreOffice, columns of other names with --map, local times), catalogs
//! and deliveries with every bad line named, and any order written as CSV or
//! JSONL reading back the same. Hostile input is data: every case ends in a
//! failed record (exit 3) or one clear error naming the file (exit 2), never
//! a panic or a hang, in bounded memory, and the stock ledger holds
//! afterwards.

mod common;

use std::collections::BTreeMap;
use std::io::{Cursor, Write};
use std::process::Output;
use std::sync::Arc;

use orderbatch::model::escape::escape_cell;
use orderbatch::model::money::{currency_exponent, format_amount};
use orderbatch::model::order::{Field, Product, ValidOrder};
use orderbatch::model::pan::contains_pan;
use orderbatch::model::InputFormat;
use orderbatch::read::{open_orders, InputMeter, ReadOptions, Source};
use orderbatch::validate::{validate, Catalog, Verdict};
use proptest::prelude::*;

use common::*;

// ---------------------------------------------------------------- CSV and JSONL as they come

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

#[derive(Debug, Clone)]
struct Order {
    id: String,
    placed_at: String,
    email: String,
    currency: &'static str,
    method: &'static str,
    payment_ref: String,
    lines: Vec<(String, i64, i64)>,
}

fn order() -> impl Strategy<Value = Order> {
    (
        "[A-Za-z0-9][A-Za-z0-9._:-]{0,20}",
        (
            2000u32..2100,
            1u32..13,
            1u32..29,
            0u32..24,
            0u32..60,
            prop::sample::select(vec!["Z", "+01:00", "-05:30"]),
        ),
        "[a-z0-9.+]{1,10}@[a-z]{1,8}\\.[a-z]{2,3}",
        prop::sample::select(vec!["EUR", "JPY", "KWD"]),
        prop::sample::select(vec![
            "card",
            "paypal",
            "bank_transfer",
            "gift_card",
            "cash_on_delivery",
        ]),
        // Free text with quotes, commas, semicolons and formula characters, never blank at the edges.
        "[=+@\\-A-Za-z0-9][ -~]{0,30}[A-Za-z0-9\"',;=]",
        prop::collection::vec(("[A-Za-z0-9._-]{1,12}", 1i64..1000, 0i64..10_000_000), 1..4),
    )
        .prop_filter("no card number in free text", |(_, _, _, _, _, r, _)| {
            !contains_pan(r)
        })
        .prop_map(
            |(id, (y, mo, d, h, mi, off), email, currency, method, payment_ref, lines)| {
                // One price per sku, as the catalog has it.
                let mut seen: Vec<(String, i64)> = Vec::new();
                let lines = lines
                    .into_iter()
                    .map(|(sku, q, p)| {
                        let p = match seen.iter().find(|(s, _)| *s == sku) {
                            Some((_, p)) => *p,
                            None => {
                                seen.push((sku.clone(), p));
                                p
                            }
                        };
                        (sku, q, p)
                    })
                    .collect();
                Order {
                    id,
                    placed_at: format!("{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:07{off}"),
                    email,
                    currency,
                    method,
                    payment_ref,
                    lines,
                }
            },
        )
}

impl Order {
    fn exp(&self) -> u32 {
        currency_exponent(self.currency)
    }
    fn total(&self) -> i64 {
        self.lines.iter().map(|(_, q, p)| q * p).sum()
    }
    fn catalog(&self) -> Catalog {
        Catalog::new(self.lines.iter().map(|(sku, _, p)| Product {
            sku: sku.clone(),
            name: "x".into(),
            unit_price: *p,
            currency: self.currency.into(),
            on_hand: 0,
        }))
    }
    fn csv(&self) -> Vec<u8> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(Field::ALL.map(|f| f.name())).unwrap();
        let amount = format_amount(self.total(), self.exp());
        for (sku, q, p) in &self.lines {
            let price = format_amount(*p, self.exp());
            let q = q.to_string();
            let cells = [
                &self.id,
                &self.placed_at,
                &self.email,
                sku,
                &q,
                &price,
                self.currency,
                self.method,
                &self.payment_ref,
                &amount,
            ];
            w.write_record(cells.iter().map(|c| escape_cell(c).into_owned()))
                .unwrap();
        }
        w.into_inner().unwrap()
    }
    fn jsonl(&self, numbers: bool) -> Vec<u8> {
        let e = self.exp();
        let amount = |v: i64| -> serde_json::Value {
            let text = format_amount(v, e);
            if numbers {
                serde_json::from_str(&text).unwrap()
            } else {
                text.into()
            }
        };
        let items: Vec<_> = self
            .lines
            .iter()
            .map(|(sku, q, p)| serde_json::json!({"sku": sku, "quantity": if numbers { serde_json::json!(q) } else { serde_json::json!(q.to_string()) }, "unit_price": amount(*p)}))
            .collect();
        let v = serde_json::json!({
            "order_id": self.id, "placed_at": self.placed_at, "customer_email": self.email,
            "currency": self.currency, "payment_method": self.method, "payment_ref": self.payment_ref,
            "payment_amount": amount(self.total()), "items": items,
        });
        format!("{v}\n").into_bytes()
    }
}

fn read_back(bytes: Vec<u8>, format: InputFormat, catalog: &Catalog) -> ValidOrder {
    let src = Source {
        path: "t".into(),
        reader: Box::new(Cursor::new(bytes)),
        meter: Arc::new(InputMeter::default()),
    };
    let orders: Vec<_> = open_orders(src, format, &ReadOptions::default())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(orders.len(), 1);
    match validate(&orders[0], catalog) {
        Verdict::Valid(o) => o,
        other => panic!("{other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn an_order_written_as_csv_or_jsonl_reads_back_the_same(o in order(), numbers in any::<bool>()) {
        let catalog = o.catalog();
        let from_csv = read_back(o.csv(), InputFormat::Csv, &catalog);
        let from_jsonl = read_back(o.jsonl(numbers), InputFormat::Jsonl, &catalog);
        prop_assert_eq!(&from_csv, &from_jsonl);
        prop_assert_eq!(&from_csv.order_id, &o.id);
        prop_assert_eq!(&from_csv.placed_at, &o.placed_at);
        prop_assert_eq!(&from_csv.customer_email, &o.email);
        prop_assert_eq!(&from_csv.payment_ref, &o.payment_ref);
        prop_assert_eq!(from_csv.currency.as_str(), o.currency);
        prop_assert_eq!(from_csv.payment_method.as_str(), o.method);
        prop_assert_eq!(from_csv.total, o.total());
        prop_assert_eq!(from_csv.payment_amount, o.total());
        let lines: Vec<_> = from_csv.lines.iter().map(|l| (l.sku.clone(), l.quantity, l.unit_price)).collect();
        prop_assert_eq!(lines, o.lines.clone());
    }
}

// ---------------- files as shops export them: delimiters, encodings, workbooks, --map, local times
// Each case of the README's section "Files from shops and marketplaces", on
// real files, with the exact outcome it promises.

#[test]
fn a_tsv_file_is_tab_separated_by_its_name() {
    let env = Env::new();
    load_catalog_of(&env, 3, 10);
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
    load_catalog_of(&env, 3, 10);
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

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn windows_1252_and_utf16_files_read_as_their_text() {
    let env = Env::new();
    load_catalog_of(&env, 3, 10);
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

/// UTF-16 without a byte-order mark is named (exit 2, the option to pass);
/// a UTF-8 byte-order mark wins over a wrong --encoding.
#[test]
fn encodings_are_named_and_a_utf8_bom_wins() {
    let env = Env::new();
    load_catalog(&env, 1_000_000);
    let text = numbered_orders(3);
    let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
    env.write("le.csv", le);
    env.write("be.csv", be);
    for (file, option) in [("le.csv", "utf-16le"), ("be.csv", "utf-16be")] {
        let out = env.run(&["process", file]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert_one_error_line(
            &out,
            &[
                file,
                "UTF-16 without a byte-order mark",
                &format!("--encoding {option}"),
            ],
        );
        env.ok(&["process", file, "--encoding", option, "--dry-run"], 0);
    }
    env.write("bom.csv", format!("\u{feff}{text}"));
    env.ok(&["process", "bom.csv", "--encoding", "windows-1252"], 0);
    assert_eq!(env.count("SELECT count(*) FROM orders"), 3);
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

#[test]
fn an_xlsx_workbook_of_orders_is_read_from_its_first_sheet() {
    use rust_xlsxwriter::Workbook;
    let env = Env::new();
    load_catalog_of(&env, 3, 10);
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
    load_catalog_of(&env, 3, 10);
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
    load_catalog_of(&env, 3, 10);
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

/// A catalog for the shop-export cases: two EUR products, 10,000 of each.
fn shop_setup(env: &Env) {
    env.write(
        "catalog.csv",
        "sku,name,unit_price,currency,on_hand\nSKU-0,Tea,10.00,EUR,10000\nSKU-1,Cup,12.50,EUR,10000\n",
    );
    env.ok(&["inventory", "load", "catalog.csv"], 0);
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

// ---------------------------------------------------------------- catalogs and deliveries

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

#[test]
fn a_catalog_from_standard_input_is_refused_with_a_clear_message() {
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 10);
        env.write("orders.csv", csv_file(&[order_rows("A-1", &[(0, 1)])]));
        let out = env.run(&["process", "orders.csv", "--catalog", "-"]);
        assert_eq!(out.status.code(), Some(2), "{b:?}: {out:?}");
        assert_one_error_line(&out, &["--catalog needs a file"]);
        // inventory load takes standard input with --format.
        let out = env
            .cmd()
            .args(["inventory", "load", "-", "--format", "csv"])
            .write_stdin(catalog(2, 7))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{b:?}: {out:?}");
        assert_eq!(env.stock()["SKU-1"], 7, "{b:?}");
    }
}

// ---------------------------------------------------------------- hostile JSONL

const STOCK: i64 = 100;

fn setup() -> Env {
    let env = Env::new();
    env.write("catalog.csv", catalog(5, STOCK));
    env.ok(&["inventory", "load", "catalog.csv"], 0);
    env
}

/// Run, insist on the exit code and on no panic; returns the output.
fn run(env: &Env, args: &[&str], code: i32) -> Output {
    let out = env.run(args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "orderbatch {args:?}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_panic(&out);
    out
}

fn failed_report(env: &Env, run: u32) -> Vec<BTreeMap<String, String>> {
    parse_csv(&file_bytes(
        &env.path(&format!("reports/run-{run}/failed.csv")),
    ))
}

/// source_line -> (order_id, error_code, error_detail) of the failed report.
fn failures(env: &Env, run: u32) -> BTreeMap<u64, (String, String, String)> {
    failed_report(env, run)
        .into_iter()
        .map(|r| {
            (
                r["source_line"].parse().unwrap(),
                (
                    r["order_id"].clone(),
                    r["error_code"].clone(),
                    r["error_detail"].clone(),
                ),
            )
        })
        .collect()
}

/// One JSONL order of one item of SKU-0 (10.00 EUR); the arguments are raw JSON text.
fn jline(id: &str, payment_amount: &str, quantity: &str, unit_price: &str) -> String {
    format!(
        r#"{{"order_id":{id},"placed_at":"2026-11-25T22:14:03Z","customer_email":"a@b.co","currency":"EUR","payment_method":"card","payment_ref":"r","payment_amount":{payment_amount},"items":[{{"sku":"SKU-0","quantity":{quantity},"unit_price":{unit_price}}}]}}"#
    )
}

fn good_jline(id: &str) -> String {
    jline(&format!("\"{id}\""), "10.00", "1", "\"10.00\"")
}

/// Part of a zip entry's content: text, or one byte repeated (whole MiBs).
enum Seg {
    Text(String),
    Repeat(u8, u64),
}

fn text(s: impl Into<String>) -> Seg {
    Seg::Text(s.into())
}

#[test]
fn jsonl_nested_100000_deep_is_data_not_a_crash() {
    let env = setup();
    let n = 100_000;
    let deep_array = format!("{}{}", "[".repeat(n), "]".repeat(n));
    let deep_object = format!("{}1{}", r#"{"a":"#.repeat(n), "}".repeat(n));
    let with_extra = good_jline("OK-2").replacen('{', &format!(r#"{{"note":{deep_object},"#), 1);
    let lines = [
        deep_array.clone(),
        jline(&deep_array, "10.00", "1", "\"10.00\""),
        deep_object.clone(),
        with_extra,
        good_jline("OK-1"),
    ];
    env.write("deep.jsonl", lines.join("\n") + "\n");
    run(&env, &["process", "deep.jsonl"], 3);
    let f = failures(&env, 1);
    assert_eq!(f.keys().copied().collect::<Vec<_>>(), [1, 2, 3]);
    // Not an object at all: unparseable as an order.
    assert_eq!(f[&1].1, "MALFORMED_RECORD");
    // A deep value where a string belongs: that field is invalid.
    assert_eq!(f[&2].1, "INVALID_FIELD");
    // An object whose only key holds a deep value: no order fields at all.
    assert_eq!(f[&3].1, "MISSING_FIELD");
    // A deep value in an extra key is kept as data; the order itself is good.
    assert_eq!(accepted_report(&env, 1)["OK-2"], "accepted");
    assert_eq!(accepted_report(&env, 1)["OK-1"], "accepted");
    assert_eq!(env.stock()["SKU-0"], STOCK - 2);
    env.verify_ok();
}

#[test]
fn jsonl_odd_numbers_are_invalid_fields_as_numbers_and_as_strings() {
    let env = setup();
    let big = "99999999999999999999999";
    // (id, payment_amount, quantity, unit_price, the field at fault)
    let cases = [
        ("N-1", "1e400", "1", "\"10.00\"", "payment_amount"),
        ("N-2", "\"1e400\"", "1", "\"10.00\"", "payment_amount"),
        ("N-3", "\"10.00\"", "-0", "\"10.00\"", "quantity"),
        ("N-4", "\"10.00\"", "\"-0\"", "\"10.00\"", "quantity"),
        ("N-5", "\"1500.00\"", "1", "1.5e3", "unit_price"),
        ("N-6", "\"1500.00\"", "1", "\"1.5e3\"", "unit_price"),
        ("N-7", "\"10.00\"", big, "\"10.00\"", "quantity"),
        (
            "N-8",
            "\"10.00\"",
            &format!("\"{big}\""),
            "\"10.00\"",
            "quantity",
        ),
        ("N-9", "-0", "1", "\"10.00\"", "payment_amount"),
        ("N-10", "\"0.00\"", "1", "-0", "unit_price"),
        (
            "N-11",
            &format!("{big}.00"),
            "1",
            &format!("{big}.00"),
            "unit_price",
        ),
        ("N-12", "1.5e3", "1", "\"10.00\"", "payment_amount"),
    ];
    let mut lines: Vec<String> = cases
        .iter()
        .map(|(id, pa, q, up, _)| jline(&format!("\"{id}\""), pa, q, up))
        .collect();
    // Exact numbers are fine as JSON numbers.
    lines.push(jline("\"OK-1\"", "20.00", "2", "10.00"));
    lines.push(jline("\"OK-2\"", "10", "1", "\"10.00\""));
    env.write("nums.jsonl", lines.join("\n") + "\n");
    run(&env, &["process", "nums.jsonl"], 3);
    let by_id: BTreeMap<String, (String, String)> = failures(&env, 1)
        .into_values()
        .map(|(id, code, detail)| (id, (code, detail)))
        .collect();
    for (id, _, _, _, field) in &cases {
        let (code, detail) = by_id
            .get(*id)
            .unwrap_or_else(|| panic!("{id} must fail: {by_id:?}"));
        assert_eq!(code, "INVALID_FIELD", "{id}: {detail}");
        assert!(detail.contains(field), "{id}: {detail}");
    }
    assert_eq!(by_id.len(), cases.len(), "{by_id:?}");
    let acc = accepted_report(&env, 1);
    assert_eq!(acc.len(), 2, "{acc:?}");
    assert_eq!(env.stock()["SKU-0"], STOCK - 3);
    env.verify_ok();
}

#[test]
fn jsonl_nul_bytes_escaped_and_raw_are_data() {
    let env = setup();
    let mut text = Vec::new();
    // 1: an escaped NUL in a free-text field.
    text.extend(good_jline("U-1").replace(r#""r""#, r#""r\u0000x""#).bytes());
    text.push(b'\n');
    // 2: an escaped NUL in the order_id breaks the order_id rule.
    text.extend(jline(r#""U-2\u0000""#, "10.00", "1", "\"10.00\"").bytes());
    text.push(b'\n');
    // 3: a raw NUL inside a string is invalid JSON.
    text.extend(good_jline("U-3").replace(r#""r""#, "\"r\0x\"").bytes());
    text.push(b'\n');
    // 4: a raw NUL after the object.
    text.extend(good_jline("U-4").bytes());
    text.extend(b"\0\n");
    // 5: nothing but NULs.
    text.extend(b"\0\0\0\n");
    // 6: an escaped NUL in an extra key.
    text.extend(
        good_jline("U-6")
            .replace(r#""items""#, r#""note":"a\u0000b","items""#)
            .bytes(),
    );
    text.push(b'\n');
    env.write("nul.jsonl", &text);
    run(&env, &["process", "nul.jsonl"], 3);
    let f = failures(&env, 1);
    assert_eq!(f[&2].0, "U-2\0");
    assert_eq!(f[&2].1, "INVALID_FIELD");
    for line in [3, 4, 5] {
        assert_eq!(f[&line].1, "MALFORMED_RECORD", "line {line}: {f:?}");
    }
    // A NUL (a control character) in a value, free text included, is INVALID_FIELD.
    for line in [1, 6] {
        assert_eq!(f[&line].1, "INVALID_FIELD", "line {line}: {f:?}");
        assert!(f[&line].2.contains("control character"), "{f:?}");
    }
    // The database gives the same report back, NUL bytes included.
    assert_eq!(
        env.ok(&["report", "failed", "--run", "1"], 0),
        env.read("reports/run-1/failed.csv")
    );
    env.verify_ok();
}

#[test]
fn jsonl_duplicate_keys_get_one_clear_outcome() {
    let env = setup();
    let lines = [
        good_jline("D-1").replace(
            r#""order_id":"D-1","#,
            r#""order_id":"D-1","order_id":"D-2","#,
        ),
        good_jline("D-3").replace(r#""quantity":1,"#, r#""quantity":1,"quantity":2,"#),
        good_jline("D-4").replace(
            r#""items":["#,
            r#""items":[{"sku":"SKU-1","quantity":1,"unit_price":"11.00"}],"items":["#,
        ),
    ];
    env.write("dup.jsonl", lines.join("\n") + "\n");
    run(&env, &["process", "dup.jsonl"], 3);
    // Each line is one failed record: a key given twice is ambiguous, at the
    // top level and inside an item alike.
    let f = failures(&env, 1);
    assert_eq!(f.len(), 3, "{f:?}");
    for (line, (_, code, detail)) in &f {
        assert_eq!(code, "MALFORMED_RECORD", "line {line}: {detail}");
        assert!(detail.contains("duplicate key"), "line {line}: {detail}");
    }
    assert!(accepted_report(&env, 1).is_empty());
    assert_eq!(summary(&env, 1)["orders"], 3);
    env.verify_ok();
}

#[test]
fn jsonl_duplicate_keys_are_not_accepted() {
    let env = setup();
    // Last-key-wins reads quantity 1 and a consistent payment; first-key-wins reads 5.
    let line = good_jline("D-1").replace(r#""quantity":1,"#, r#""quantity":5,"quantity":1,"#);
    env.write("dup.jsonl", format!("{line}\n"));
    run(&env, &["process", "dup.jsonl"], 3);
    let f = failures(&env, 1);
    assert_eq!(f[&1].1, "MALFORMED_RECORD", "{f:?}");
    assert_eq!(env.stock()["SKU-0"], STOCK);
}

// ---------------------------------------------------------------- hostile CSV

#[test]
fn csv_100_mb_line_without_newline_is_one_failed_record() {
    let env = setup();
    let p = env.path("long.csv");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&p).unwrap());
        writeln!(f, "{HEADER}").unwrap();
        let block = vec![b'A'; 1 << 20];
        for _ in 0..100 {
            f.write_all(&block).unwrap();
        }
        f.flush().unwrap();
    }
    run(&env, &["process", "long.csv"], 3);
    let s = summary(&env, 1);
    assert_eq!(
        (s["orders"].as_u64(), s["failed"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(s["errors_by_code"]["MALFORMED_RECORD"], 1);
    let f = failures(&env, 1);
    assert_eq!(f.len(), 1);
    assert_eq!(f[&2].1, "MALFORMED_RECORD");
    assert!(f[&2].2.contains("AAAA"), "raw text kept (maybe shortened)");
    assert_eq!(env.count("SELECT count(*) FROM orders"), 0);
    env.verify_ok();
}

#[test]
fn csv_10_mb_field_is_accepted_under_a_raised_limit_and_a_failed_one_is_reported_as_valid_csv() {
    let env = setup();
    let big_ok = "n".repeat(10 << 20);
    let big_bad = "m".repeat(10 << 20);
    let text = format!(
        "{HEADER},note\n{}{}",
        order_rows("B-1", &[(0, 1)]).replace('\n', &format!(",{big_ok}\n")),
        order_rows("B-2", &[(9, 1)]).replace('\n', &format!(",\"{big_bad}\"\n")),
    );
    env.write("bignote.csv", text);
    // Under the default limit (1 MiB a record) both are MALFORMED_RECORD.
    run(&env, &["process", "bignote.csv", "--dry-run"], 3);
    let s = summary(&env, 1);
    assert_eq!(s["errors_by_code"]["MALFORMED_RECORD"], 2, "{s}");
    run(
        &env,
        &["process", "bignote.csv", "--max-record-bytes", "33554432"],
        3,
    );
    assert_eq!(accepted_report(&env, 2)["B-1"], "accepted");
    let failed = failed_report(&env, 2);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["order_id"], "B-2");
    assert_eq!(failed[0]["error_code"], "UNKNOWN_SKU");
    assert_eq!(
        failed[0]["note"], big_bad,
        "the 10 MB cell comes back whole"
    );
    assert_eq!(env.stock()["SKU-0"], STOCK - 1);
    env.verify_ok();
}

#[test]
fn csv_nul_bytes_inside_fields_are_data() {
    let env = setup();
    let row = |id: &str| order_rows(id, &[(0, 1)]).replace('\n', ",x\n");
    let mut text = format!("{HEADER},note\n");
    text += &row("C-1")
        .replace("ref-C-1", "ref\0C-1")
        .replace(",x\n", ",a\0b\n");
    text += &row("C-2").replacen("C-2", "C-2\0", 1);
    text += &row("C-3").replace(",1,10.00,", ",1\0,10.00,");
    text += "\0\0\0\n";
    text += &row("C-5").replace(",x\n", ",\"q\0\"\n");
    env.write("nul.csv", text);
    run(&env, &["process", "nul.csv"], 3);
    let f = failures(&env, 1);
    assert_eq!(
        f[&3],
        ("C-2\0".into(), "INVALID_FIELD".into(), f[&3].2.clone())
    );
    assert_eq!(f[&4].1, "INVALID_FIELD");
    assert!(f[&4].2.contains("quantity"), "{}", f[&4].2);
    assert_eq!(f[&5].1, "MALFORMED_RECORD");
    for line in [2, 6] {
        assert_eq!(f[&line].1, "INVALID_FIELD", "line {line}: {f:?}");
        assert!(f[&line].2.contains("control character"), "{f:?}");
    }
    assert_eq!(
        env.ok(&["report", "failed", "--run", "1"], 0),
        env.read("reports/run-1/failed.csv")
    );
    // The failed report goes back in, NUL bytes and all.
    std::fs::copy(env.path("reports/run-1/failed.csv"), env.path("again.csv")).unwrap();
    run(&env, &["process", "again.csv"], 3);
    assert_eq!(
        failures(&env, 2)
            .values()
            .filter(|(id, code, _)| id == "C-2\0" && code == "INVALID_FIELD")
            .count(),
        1
    );
    env.verify_ok();
}

#[test]
fn csv_header_only_is_zero_orders_and_exit_0() {
    let env = setup();
    env.write("ho.csv", format!("{HEADER}\n"));
    run(&env, &["process", "ho.csv"], 0);
    assert_eq!(summary(&env, 1)["orders"], 0);
    env.verify_ok();
}

/// Nothing of any run reached the database, and the stock is as loaded.
fn assert_nothing_applied(env: &Env) {
    assert_eq!(env.count("SELECT count(*) FROM orders"), 0);
    assert_eq!(env.count("SELECT count(*) FROM failed_orders"), 0);
    assert!(
        env.stock().values().all(|n| *n == STOCK),
        "{:?}",
        env.stock()
    );
    assert!(env.entries("reports", "run-").is_empty());
}

#[test]
fn csv_empty_file_is_exit_2_no_header() {
    let env = setup();
    env.write("empty.csv", "");
    let out = run(&env, &["process", "empty.csv"], 2);
    assert_one_error_line(&out, &["empty.csv", "no header"]);
    assert_nothing_applied(&env);
    env.verify_ok();
}

#[test]
fn csv_duplicate_header_names_are_exit_2_naming_the_column() {
    let env = setup();
    env.write(
        "dup.csv",
        format!("{HEADER}, SKU \n") + &order_rows("A-1", &[(0, 1)]).replace('\n', ",x\n"),
    );
    let out = run(&env, &["process", "dup.csv"], 2);
    assert_one_error_line(&out, &["dup.csv", "'sku'"]);
    assert_nothing_applied(&env);
    env.verify_ok();
}

#[test]
fn csv_invalid_utf8_in_the_header_is_exit_2() {
    let env = setup();
    let mut text = format!("{HEADER},n").into_bytes();
    text.extend(b"\xff\xfeote\n");
    text.extend(order_rows("A-1", &[(0, 1)]).replace('\n', ",x\n").bytes());
    env.write("badhead.csv", text);
    let out = run(&env, &["process", "badhead.csv"], 2);
    assert_one_error_line(&out, &["badhead.csv", "UTF-8"]);
    assert_nothing_applied(&env);
    env.verify_ok();
}

// -------------------------------------------------------------- what is not a plain file of orders

#[test]
fn a_directory_is_exit_2() {
    let env = setup();
    std::fs::create_dir(env.path("dir.csv")).unwrap();
    let out = run(&env, &["process", "dir.csv"], 2);
    assert_one_error_line(&out, &["dir.csv", "directory"]);
    assert_nothing_applied(&env);
    env.verify_ok();
}

#[test]
fn a_fifo_is_read_like_a_file() {
    let env = setup();
    let fifo = env.path("fifo.csv");
    let st = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(st.success());
    let text = csv_file(&[order_rows("F-1", &[(0, 2)]), order_rows("F-2", &[(1, 1)])]);
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            // Blocks until orderbatch opens the FIFO for reading.
            let mut f = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
            // A reader that stops early shows in the exit code, not here.
            let _ = f.write_all(text.as_bytes());
        })
    };
    let out = env.run(&["process", "fifo.csv"]);
    // Should orderbatch never open the FIFO, this open (read and write, which
    // never blocks on Linux) lets the writer through instead of hanging.
    let unblock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    writer.join().unwrap();
    drop(unblock);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_panic(&out);
    let acc = accepted_report(&env, 1);
    assert_eq!(acc.len(), 2);
    assert_eq!(env.stock()["SKU-0"], STOCK - 2);
    assert_eq!(
        summary(&env, 1)["inputs"][0]["sha256"]
            .as_str()
            .map(str::len),
        Some(64)
    );
    env.verify_ok();
}

#[test]
fn a_missing_file_is_exit_2() {
    let env = setup();
    let out = run(&env, &["process", "missing.csv"], 2);
    assert_one_error_line(&out, &["missing.csv"]);
    assert_nothing_applied(&env);
    assert_eq!(env.count("SELECT count(*) FROM runs"), 0);
    env.verify_ok();
}

#[test]
fn a_gzip_file_truncated_in_the_middle_is_exit_2_with_nothing_committed() {
    let env = setup();
    let orders: Vec<String> = (0..20_000)
        .map(|i| order_rows(&format!("G-{i}-{}", i * 7919 % 10007), &[(i % 5, 1)]))
        .collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(csv_file(&orders).as_bytes()).unwrap();
    let bytes = gz.finish().unwrap();
    env.write("cut.csv.gz", &bytes[..bytes.len() / 2]);
    let out = run(&env, &["process", "cut.csv.gz"], 2);
    assert_one_error_line(&out, &["cut.csv.gz"]);
    assert_nothing_applied(&env);
    assert_eq!(
        env.count(
            "SELECT count(*) FROM runs WHERE status IN ('completed', 'dry_run') OR orders > 0"
        ),
        0
    );
    env.verify_ok();
}

#[test]
fn a_gz_name_that_is_not_gzip_is_exit_2() {
    let env = setup();
    env.write("plain.csv.gz", csv_file(&[order_rows("A-1", &[(0, 1)])]));
    let out = run(&env, &["process", "plain.csv.gz"], 2);
    assert_one_error_line(&out, &["plain.csv.gz"]);
    assert_nothing_applied(&env);
    // Too short for a gzip header at all.
    env.write("tiny.csv.gz", "x\n");
    let out = run(&env, &["process", "tiny.csv.gz"], 2);
    assert_one_error_line(&out, &["tiny.csv.gz"]);
    assert_nothing_applied(&env);
    env.verify_ok();
}

#[test]
fn a_second_input_missing_a_column_stops_everything_before_a_run() {
    let env = setup();
    env.write("good.csv", csv_file(&[order_rows("A-1", &[(0, 1)])]));
    env.write(
        "bad.csv",
        csv_file(&[order_rows("B-1", &[(0, 1)])]).replace(",currency,", ",curr,"),
    );
    let out = run(&env, &["process", "good.csv", "bad.csv"], 2);
    assert_one_error_line(&out, &["bad.csv", "'currency'"]);
    assert_nothing_applied(&env);
    assert_eq!(
        env.count("SELECT count(*) FROM runs"),
        0,
        "no run rows at all"
    );
    env.verify_ok();
}

// ---------------------------------------------------------------- bounded memory

/// Memory is bounded whatever the input: one unclosed quote before 40,000
/// good rows (it once took memory quadratic in the rows after it), a line
/// of 20 MB without a line feed, endless input; each far under 100 MB.
#[test]
fn one_stray_quote_a_huge_line_and_endless_input_stay_in_bounded_memory() {
    let env = setup();
    let mut text = format!("{HEADER}\nBROKEN,\"4111111111111111,x\n");
    for i in 0..40_000 {
        text += &order_rows(&format!("Q-{i}"), &[(i % 5, 1)]);
    }
    env.write("quote.csv", &text);
    let (out, rss) = env.run_with_peak(&["process", "quote.csv", "--dry-run"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let s = summary(&env, 1);
    assert_eq!(s["orders"], 40_001, "{s}");
    assert_eq!(s["errors_by_code"]["MALFORMED_RECORD"], 1, "{s}");
    let f = failed_report(&env, 1);
    assert!(
        f[0]["error_detail"].starts_with("MALFORMED_RECORD: broken quoting"),
        "{f:?}"
    );
    assert!(!f[0]["error_detail"].contains("4111111111111111"));
    assert!(rss < 100 << 20, "stray quote: peak {rss} bytes");

    // A 20 MB line of JSONL, then a good one: the long one fails alone.
    let mut jsonl = vec![b'x'; 20 << 20];
    jsonl.push(b'\n');
    jsonl.extend(good_jline("J-1").bytes());
    jsonl.push(b'\n');
    env.write("long.jsonl", &jsonl);
    let (out, rss) = env.run_with_peak(&["process", "long.jsonl", "--dry-run"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let s = summary(&env, 2);
    assert_eq!(
        (s["accepted"].as_u64(), s["failed"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(rss < 100 << 20, "long JSONL line: peak {rss} bytes");

    // Endless input: refused (exit 2) once a line runs far past any record.
    for args in [
        &["process", "/dev/zero", "--format", "csv"][..],
        // A small limit: a line is skipped up to 1,024 times the limit.
        &[
            "process",
            "/dev/zero",
            "--format",
            "jsonl",
            "--max-record-bytes",
            "1024",
        ],
        &["inventory", "load", "/dev/zero", "--format", "csv"],
        &["inventory", "receive", "/dev/zero", "--format", "jsonl"],
    ] {
        let (out, rss) = env.run_with_peak(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert_one_error_line(&out, &["/dev/zero", "line 1 is longer than"]);
        assert!(rss < 100 << 20, "{args:?}: peak {rss} bytes");
    }
    // A workbook is read from its end: endless input is no workbook.
    let (out, rss) = env.run_with_peak(&["process", "/dev/zero", "--format", "xlsx"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_one_error_line(&out, &["/dev/zero", "not a regular file"]);
    assert!(rss < 100 << 20, "xlsx /dev/zero: peak {rss} bytes");
    env.verify_ok();
}

/// A NUL byte (or another control character) in a value is INVALID_FIELD on
/// every backend, never a stopped run; in the raw text of a record that
/// could not be parsed it is kept as U+FFFD; in a catalog it is exit 2
/// naming the line. Both backends give the same reports.
#[test]
fn nul_bytes_are_invalid_fields_on_every_backend() {
    let mut reports = Vec::new();
    for b in backends() {
        let env = env_for(b);
        env.write("catalog.csv", catalog(5, STOCK));
        env.ok(&["inventory", "load", "catalog.csv"], 0);
        let row = |id: &str| order_rows(id, &[(0, 1)]).replace('\n', ",x\n");
        let mut text = format!("{HEADER},note\n");
        text += &row("N-1").replace("ref-N-1", "ref\0N-1");
        text += &row("N-2").replace(",x\n", ",a\0b\n");
        text += &row("N-3").replace("buyer@", "bu\u{7}yer@");
        text += "N-4,\"broken\0\n";
        text += &row("N-5");
        env.write("nul.csv", &text);
        let out = env.run(&["process", "nul.csv"]);
        assert_eq!(out.status.code(), Some(3), "{b:?}: {out:?}");
        let failed = env.read("reports/run-1/failed.csv");
        let rows = parse_csv(failed.as_bytes());
        let codes: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r["source_line"].as_str(), &r["error_code"][..]))
            .collect();
        assert_eq!(
            codes,
            [
                ("2", "INVALID_FIELD"),
                ("3", "INVALID_FIELD"),
                ("4", "INVALID_FIELD"),
                ("5", "MALFORMED_RECORD")
            ],
            "{b:?}"
        );
        assert!(rows[3]["error_detail"].contains("broken\u{fffd}"), "{b:?}");
        assert_eq!(
            env.ok(&["report", "failed", "--run", "1"], 0),
            failed,
            "{b:?}"
        );
        reports.push(failed);

        env.write(
            "badcat.csv",
            "sku,name,unit_price,currency,on_hand\nSKU-9,Mu\0g,1.00,EUR,1\n",
        );
        let out = env.run(&["inventory", "load", "badcat.csv"]);
        assert_eq!(out.status.code(), Some(2), "{b:?}: {out:?}");
        assert_one_error_line(&out, &["badcat.csv", "line 2: name", "control character"]);
        env.verify_ok();
    }
    assert!(reports.windows(2).all(|w| w[0] == w[1]));
}

// ---------------------------------------------------------------- hostile xlsx

/// Raw deflate of the segments end to end, with the CRC and the length they
/// expand to. A repeated byte is one compressed MiB written again and again
/// (each sync-flushed piece decodes on its own), so a gigabyte of it costs a
/// megabyte and no time.
fn deflate(segments: &[Seg]) -> (Vec<u8>, u32, u64) {
    fn piece(data: &[u8]) -> Vec<u8> {
        let mut c = flate2::Compress::new(flate2::Compression::best(), false);
        let mut out = Vec::with_capacity(data.len() + data.len() / 8 + 1024);
        c.compress_vec(data, &mut out, flate2::FlushCompress::Sync)
            .unwrap();
        assert_eq!(c.total_in(), data.len() as u64);
        out
    }
    let (mut out, mut crc, mut len) = (Vec::new(), flate2::Crc::new(), 0u64);
    for s in segments {
        match s {
            Seg::Text(t) => {
                out.extend(piece(t.as_bytes()));
                crc.update(t.as_bytes());
                len += t.len() as u64;
            }
            Seg::Repeat(b, n) => {
                let block = vec![*b; 1 << 20];
                let packed = piece(&block);
                let mut one = flate2::Crc::new();
                one.update(&block);
                for _ in 0..n >> 20 {
                    out.extend_from_slice(&packed);
                    crc.combine(&one);
                }
                len += n >> 20 << 20;
            }
        }
    }
    // The final block: empty, fixed Huffman codes.
    out.extend([0x03, 0x00]);
    (out, crc.sum(), len)
}

/// A zip archive of the entries, deflated; `declared` replaces an entry's
/// uncompressed size in the archive's directories (a lie, for a hostile file).
fn zip_of(entries: &[(&str, Vec<Seg>, Option<u32>)]) -> Vec<u8> {
    let (mut out, mut central) = (Vec::new(), Vec::new());
    for (name, segments, declared) in entries {
        let (data, crc, len) = deflate(segments);
        let size = declared.unwrap_or(u32::try_from(len).unwrap());
        let offset = u32::try_from(out.len()).unwrap();
        let mut common = Vec::new();
        for v in [20u16, 0, 8, 0, 0x21] {
            common.extend(v.to_le_bytes());
        }
        for v in [crc, u32::try_from(data.len()).unwrap(), size] {
            common.extend(v.to_le_bytes());
        }
        common.extend((name.len() as u16).to_le_bytes());
        common.extend(0u16.to_le_bytes());
        out.extend(0x04034b50u32.to_le_bytes());
        out.extend(&common);
        out.extend(name.as_bytes());
        out.extend(&data);
        central.extend(0x02014b50u32.to_le_bytes());
        central.extend(20u16.to_le_bytes());
        central.extend(&common);
        // Comment length, disk, internal and external attributes.
        central.extend([0u8; 10]);
        central.extend(offset.to_le_bytes());
        central.extend(name.as_bytes());
    }
    let (at, n) = (out.len() as u32, entries.len() as u16);
    out.extend(&central);
    out.extend(0x06054b50u32.to_le_bytes());
    out.extend([0u8; 4]);
    out.extend(n.to_le_bytes());
    out.extend(n.to_le_bytes());
    out.extend((central.len() as u32).to_le_bytes());
    out.extend(at.to_le_bytes());
    out.extend([0u8; 2]);
    out
}

/// A workbook of one sheet (its XML, in segments) and, if given, shared strings.
fn workbook_of(sheet: Vec<Seg>, strings: Option<(Vec<Seg>, Option<u32>)>) -> Vec<u8> {
    const NS: &str = "http://schemas.openxmlformats.org";
    let rel = |id: &str, kind: &str, target: &str| {
        format!(
            r#"<Relationship Id="{id}" Type="{NS}/officeDocument/2006/relationships/{kind}" Target="{target}"/>"#
        )
    };
    let rels = |r: String| {
        text(format!(
            r#"<Relationships xmlns="{NS}/package/2006/relationships">{r}</Relationships>"#
        ))
    };
    let mut book_rels = rel("rId1", "worksheet", "worksheets/sheet1.xml");
    if strings.is_some() {
        book_rels += &rel("rId2", "sharedStrings", "sharedStrings.xml");
    }
    let mut entries = vec![
        (
            "_rels/.rels",
            vec![rels(rel("rId1", "officeDocument", "xl/workbook.xml"))],
            None,
        ),
        ("xl/_rels/workbook.xml.rels", vec![rels(book_rels)], None),
        (
            "xl/workbook.xml",
            vec![text(format!(
                r#"<workbook xmlns:r="{NS}/officeDocument/2006/relationships"><sheets><sheet name="S" sheetId="1" r:id="rId1"/></sheets></workbook>"#
            ))],
            None,
        ),
        ("xl/worksheets/sheet1.xml", sheet, None),
    ];
    if let Some((segments, declared)) = strings {
        entries.push(("xl/sharedStrings.xml", segments, declared));
    }
    zip_of(&entries)
}

/// The start of a sheet: its root, a dimension as absurd as a hostile file
/// may declare, and the header row.
fn sheet_start() -> String {
    let header: String = HEADER
        .split(',')
        .enumerate()
        .map(|(i, h)| {
            format!(
                r#"<c r="{}1" t="inlineStr"><is><t>{h}</t></is></c>"#,
                (b'A' + i as u8) as char
            )
        })
        .collect();
    format!(
        r#"<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><dimension ref="A1:XFD1048576"/><sheetData><row r="1">{header}</row>"#
    )
}

/// Row `r`: a good order of one SKU-0 (10.00 EUR), amounts as number cells.
fn good_row(r: u32, id: &str) -> String {
    let values = [
        id,
        "2026-11-25T22:14:03Z",
        "a@b.co",
        "SKU-0",
        "1",
        "10",
        "EUR",
        "card",
        "r",
        "10",
    ];
    let cells: String = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let at = format!("{}{r}", (b'A' + i as u8) as char);
            match v.parse::<u32>() {
                Ok(n) => format!(r#"<c r="{at}"><v>{n}</v></c>"#),
                Err(_) => format!(r#"<c r="{at}" t="inlineStr"><is><t>{v}</t></is></c>"#),
            }
        })
        .collect();
    format!(r#"<row r="{r}">{cells}</row>"#)
}

const SHEET_END: &str = "</sheetData></worksheet>";

/// Run orderbatch to its end: its exit code, its stderr, and its peak
/// resident memory in bytes (see `Env::run_with_peak`).
fn run_peak(env: &Env, args: &[&str]) -> (Option<i32>, String, u64) {
    let (out, peak) = env.run_with_peak(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (out.status.code(), stderr, peak)
}

const MAX_RSS: u64 = 100 << 20;

#[test]
fn xlsx_a_cell_at_xfd1048576_costs_its_own_row() {
    let env = setup();
    let far = r#"<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>far</t></is></c></row>"#;
    let sheet = format!("{}{}{far}{}", sheet_start(), good_row(2, "X-1"), SHEET_END);
    env.write("far.xlsx", workbook_of(vec![text(sheet)], None));
    let (code, stderr, peak) = run_peak(&env, &["process", "far.xlsx"]);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(peak < MAX_RSS, "peak RSS {peak}");
    let f = failures(&env, 1);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[&1_048_576].1, "MALFORMED_RECORD");
    assert!(
        f[&1_048_576].2.contains("16384 where the header has 10"),
        "{:?}",
        f[&1_048_576]
    );
    assert_eq!(accepted_report(&env, 1)["X-1"], "accepted");
    // A sheet whose only cell is that one: no header to read, one clear error.
    let only = format!(r#"<worksheet><dimension ref="XFD1048576"/><sheetData>{far}{SHEET_END}"#);
    env.write("only.xlsx", workbook_of(vec![text(only)], None));
    let (code, stderr, peak) = run_peak(&env, &["process", "only.xlsx"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(peak < MAX_RSS, "peak RSS {peak}");
    assert!(
        stderr.contains("only.xlsx") && stderr.contains("'order_id'"),
        "{stderr}"
    );
    assert!(stderr.len() < 2000, "{stderr}");
    env.verify_ok();
}

#[test]
fn xlsx_a_1_gb_cell_in_a_1_mb_file_is_one_failed_row_in_bounded_memory() {
    let env = setup();
    let sheet = vec![
        text(sheet_start() + r#"<row r="2"><c r="A2" t="inlineStr"><is><t>"#),
        Seg::Repeat(b'A', 1 << 30),
        text(format!(
            "</t></is></c></row>{}{SHEET_END}",
            good_row(3, "B-1")
        )),
    ];
    let book = workbook_of(sheet, None);
    assert!(book.len() < 2 << 20, "{} bytes", book.len());
    env.write("bomb.xlsx", book);
    let (code, stderr, peak) = run_peak(&env, &["process", "bomb.xlsx"]);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(peak < MAX_RSS, "peak RSS {peak}");
    let f = failures(&env, 1);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[&2].1, "MALFORMED_RECORD");
    assert!(
        f[&2]
            .2
            .contains("longer than 1048576 bytes (--max-record-bytes)")
            && f[&2].2.contains("AAAA"),
        "{}",
        &f[&2].2[..200]
    );
    assert_eq!(accepted_report(&env, 1)["B-1"], "accepted");
    env.verify_ok();
}

#[test]
fn xlsx_shared_strings_past_the_bound_stop_the_file_in_bounded_memory() {
    let env = setup();
    let sheet = format!(
        r#"{}<row r="2"><c r="A2" t="s"><v>0</v></c></row>{SHEET_END}"#,
        sheet_start()
    );
    let strings = || {
        vec![
            text("<sst><si><t>"),
            Seg::Repeat(b'A', 1 << 30),
            text("</t></si></sst>"),
        ]
    };
    // As declared (refused before reading), and declared small (refused on the way).
    for (name, declared) in [("bomb.xlsx", None), ("liar.xlsx", Some(1000))] {
        env.write(
            name,
            workbook_of(vec![text(sheet.clone())], Some((strings(), declared))),
        );
        let (code, stderr, peak) = run_peak(&env, &["process", name]);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(peak < MAX_RSS, "{name}: peak RSS {peak}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        for needle in [
            name,
            "xl/sharedStrings.xml",
            "512 MiB",
            "save the sheet as CSV",
        ] {
            assert!(lines[0].contains(needle), "{needle:?} in {stderr}");
        }
    }
    assert_nothing_applied(&env);
    env.verify_ok();
}
