//! Shared body of the fuzz targets: read an orders file from bytes, validate
//! every record against a small fixed catalog, render the accepted and failed
//! reports (CSV and JSONL) in memory, and check the reports' invariants.

use std::io::Cursor;

use orderbatch::model::escape::is_live_formula;
use orderbatch::model::failure::FailureState;
use orderbatch::model::order::{AcceptedRow, FailedOrder, Product, Status, ValidOrder};
use orderbatch::model::{InputFormat, ReportFormat};
use orderbatch::read::{open_orders, RawOrder, Source, ReadOptions};
use orderbatch::report::{AcceptedWriter, ExtraColumns, FailedWriter};
use orderbatch::store::StoredFailure;
use orderbatch::validate::{failed_order_of, validate, Catalog, Verdict};

pub const SOURCE_FILE: &str = "fuzz.csv";

fn product(sku: &str, unit_price: i64, currency: &str) -> Product {
    Product {
        sku: sku.into(),
        name: format!("{sku} (fuzz)"),
        unit_price,
        currency: currency.into(),
        on_hand: 100,
    }
}

/// A few products of samples/catalog.csv: EUR (2 decimals), JPY (0), KWD (3).
pub fn catalog() -> Catalog {
    Catalog::new(vec![
        product("MUG-STONE-350", 1250, "EUR"),
        product("TEA-SENCHA-100", 890, "EUR"),
        product("KETTLE-GOOSE-1L", 6400, "EUR"),
        product("MATCHA-CER-30", 2800, "JPY"),
        product("DATES-MEDJ-1KG", 4750, "KWD"),
    ])
}

/// The whole check for one input. Panics (which libFuzzer reports) when an
/// invariant breaks.
pub fn check_input(data: &[u8], format: InputFormat) {
    let source = Source {
        path: SOURCE_FILE.into(),
        reader: Box::new(Cursor::new(data.to_vec())),
        meter: Default::default(),
    };
    // Header problems (missing or duplicate column, no header) are input errors: fine.
    let Ok(reader) = open_orders(source, format, &ReadOptions::default()) else {
        return;
    };
    let catalog = catalog();
    let (mut records, mut valid, mut invalid) = (0usize, 0usize, 0usize);
    // Valid orders with their source line (AcceptedRow borrows from them).
    let mut accepted: Vec<(ValidOrder, u64)> = Vec::new();
    let mut failed: Vec<FailedOrder> = Vec::new();
    for item in reader {
        let raw: RawOrder = match item {
            Ok(raw) => raw,
            // The input is in memory: reading it cannot fail.
            Err(e) => panic!("reading an in-memory input failed: {e} ({e:?})"),
        };
        records += 1;
        // (Duplicate order ids are decided in apply, against the database: not here.)
        match validate(&raw, &catalog) {
            Verdict::Valid(order) => {
                valid += 1;
                accepted.push((order, raw.line));
            }
            Verdict::Invalid { problems, .. } => {
                invalid += 1;
                failed.push(failed_order_of(&raw, problems, SOURCE_FILE));
            }
        }
    }
    assert_eq!(records, valid + invalid, "every record is Valid or Invalid");

    // Accepted report.
    let csv_out = render_accepted(&accepted, ReportFormat::Csv);
    let rows = check_csv_report(&csv_out, "accepted.csv");
    assert_eq!(rows, valid, "accepted.csv: one row per accepted order");
    let jsonl_out = render_accepted(&accepted, ReportFormat::Jsonl);
    let lines = check_jsonl_report(&jsonl_out, "accepted.jsonl");
    assert_eq!(lines, valid, "accepted.jsonl: one line per accepted order");

    // Failed report (two passes, as report::render_failed: the CSV header
    // needs every extra column).
    let mut extras = ExtraColumns::default();
    for f in &failed {
        extras.add(f);
    }
    let csv_out = render_failed(&failed, ReportFormat::Csv, extras);
    let rows = check_csv_report(&csv_out, "failed.csv");
    let expected: usize = failed.iter().map(|f| f.body.rows.len().max(1)).sum();
    assert_eq!(rows, expected, "failed.csv: one row per input row of a failed order");
    let jsonl_out = render_failed(&failed, ReportFormat::Jsonl, ExtraColumns::default());
    let lines = check_jsonl_report(&jsonl_out, "failed.jsonl");
    assert_eq!(lines, invalid, "failed.jsonl: one line per failed order");
}

fn render_accepted(orders: &[(ValidOrder, u64)], format: ReportFormat) -> Vec<u8> {
    let mut w = AcceptedWriter::new(Vec::new(), format).expect("writing to a Vec");
    for (order, line) in orders {
        let row = AcceptedRow::new(order, Status::Accepted, SOURCE_FILE, *line);
        w.write(&row).expect("writing to a Vec");
    }
    w.finish().expect("writing to a Vec")
}

fn render_failed(failed: &[FailedOrder], format: ReportFormat, extras: ExtraColumns) -> Vec<u8> {
    let mut w = FailedWriter::new(Vec::new(), format, extras).expect("writing to a Vec");
    for (i, f) in failed.iter().enumerate() {
        let stored = StoredFailure {
            id: i as i64 + 1,
            run_id: 1,
            seq: i as u64 + 1,
            state: FailureState::Open,
            order: f.clone(),
        };
        w.write(&stored).expect("writing to a Vec");
    }
    w.finish().expect("writing to a Vec")
}

/// A CSV report reads back as CSV with one width, and no cell is a live
/// spreadsheet formula. Returns the number of data rows (header excluded).
fn check_csv_report(out: &[u8], name: &str) -> usize {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(false)
        .from_reader(out);
    let mut n = 0usize;
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.unwrap_or_else(|e| {
            panic!(
                "{name}: record {i} does not read back: {e}\nreport:\n{}",
                String::from_utf8_lossy(out)
            )
        });
        for (j, cell) in rec.iter().enumerate() {
            assert!(
                !is_live_formula(cell),
                "{name}: record {i} cell {j} is a live formula: {cell:?}"
            );
        }
        n += 1;
    }
    assert!(n >= 1, "{name}: no header row");
    n - 1
}

/// Every line of a JSONL report is a JSON object. Returns the number of lines.
fn check_jsonl_report(out: &[u8], name: &str) -> usize {
    let text = std::str::from_utf8(out).unwrap_or_else(|e| panic!("{name}: not UTF-8: {e}"));
    let mut n = 0usize;
    for (i, line) in text.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{name}: line {} is not JSON: {e}: {line:?}", i + 1));
        assert!(v.is_object(), "{name}: line {} is not an object", i + 1);
        n += 1;
    }
    assert!(
        out.is_empty() || out.ends_with(b"\n"),
        "{name}: last line not terminated"
    );
    n
}
