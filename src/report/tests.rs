//! Report writers (README: "Reports"): accepted and failed reports, formula escaping,
//! failed reports read back as input, atomic writes.

use super::*;

use std::sync::Arc;

use proptest::prelude::*;

use crate::model::escape::is_live_formula;
use crate::model::order::{FailedBody, FailedRow, Status};
use crate::model::{ErrorCode, InputFormat};
use crate::read::{open_orders, InputMeter, RawBody, RawOrder, Source};

/// The ten input columns, in order (their names are checked in `model::order`).
fn ten() -> [&'static str; 10] {
    Field::ALL.map(|f| f.name())
}

const TRIGGER_VALUES: [&str; 7] = ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "\nx"];

fn accepted(order_id: &str, currency: &str, total: i64) -> AcceptedRow {
    AcceptedRow {
        order_id: order_id.into(),
        status: Status::Accepted,
        source_file: "in/orders.csv".into(),
        source_line: 2,
        placed_at: "2026-11-25T22:14:03Z".into(),
        customer_email: "a@b.co".into(),
        currency: currency.into(),
        lines: 1,
        units: 3,
        total,
        payment_method: "card".into(),
    }
}

/// Cells of a CSV text exactly as written (no trimming, no unescaping).
fn cells(bytes: &[u8]) -> Vec<Vec<String>> {
    ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes)
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect()
}

fn accepted_report(format: ReportFormat, rows: &[AcceptedRow]) -> Vec<u8> {
    let mut w = AcceptedWriter::new(Vec::new(), format).unwrap();
    for r in rows {
        w.write(r).unwrap();
    }
    w.finish().unwrap()
}

fn jsonl_values(bytes: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A failed row: the ten values and the extras.
fn frow(values: &[&str], extra: &[(&str, &str)]) -> FailedRow {
    FailedRow {
        values: values.iter().map(|s| s.to_string()).collect(),
        line: 0,
        extra: extra
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        detail: String::new(),
    }
}

fn failed(rows: Vec<FailedRow>, code: ErrorCode, detail: &str) -> FailedOrder {
    FailedOrder {
        order_id: rows.first().map(|r| r.values[0].clone()),
        code,
        // The detail as text, as an older version stored it: the writer
        // shows whatever text it is given.
        stored_detail: detail.into(),
        source_file: "in/orders.csv".into(),
        source_line: 2,
        body: FailedBody {
            rows,
            no_items: false,
            raw: None,
            layout: None,
            problems: Vec::new(),
        },
    }
}

/// A failed order as the database holds it.
fn stored(id: i64, f: &FailedOrder) -> crate::store::StoredFailure {
    crate::store::StoredFailure {
        id,
        run_id: 1,
        seq: id as u64,
        state: crate::model::failure::FailureState::Open,
        order: f.clone(),
    }
}

fn failed_report(format: ReportFormat, orders: &[FailedOrder]) -> Vec<u8> {
    let mut extras = ExtraColumns::default();
    for f in orders {
        extras.add(f);
    }
    let mut w = FailedWriter::new(Vec::new(), format, extras).unwrap();
    for (i, f) in orders.iter().enumerate() {
        w.write(&stored(i as i64 + 1, f)).unwrap();
    }
    w.finish().unwrap()
}

fn read_back(format: InputFormat, bytes: Vec<u8>) -> Vec<RawOrder> {
    let src = Source {
        path: format!("failed.{}", format.as_str()),
        reader: Box::new(std::io::Cursor::new(bytes)),
        meter: Arc::new(InputMeter::default()),
    };
    open_orders(src, format, &crate::read::ReadOptions::default())
        .expect("a failed report is valid input")
        .map(|r| r.expect("no read error"))
        .collect()
}

/// Each row read back: the ten values and the extras (name, value), as the reader sees them.
type ReadRow = (Vec<String>, Vec<(String, String)>);

fn rows_read_back(orders: &[RawOrder]) -> Vec<ReadRow> {
    let mut out = Vec::new();
    for o in orders {
        let RawBody::Rows { columns, rows, .. } = &o.body else {
            panic!("a report row came back malformed: {o:?}");
        };
        for r in rows {
            let values = Field::ALL
                .iter()
                .map(|f| r.get(columns, *f).to_string())
                .collect();
            let extra = columns
                .extras
                .iter()
                .map(|(pos, n)| (n.clone(), r.cell(columns, *pos).to_string()))
                .collect();
            out.push((values, extra));
        }
    }
    out
}

/// A good one-line order (the validation tests' base order).
const GOOD: [&str; 10] = crate::validate::tests::BASE;

// ---------------------------------------------------------------- accepted

#[test]
fn accepted_csv_header_is_the_eleven_spec_columns() {
    let out = accepted_report(ReportFormat::Csv, &[]);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "order_id,status,source_file,source_line,placed_at,customer_email,currency,lines,units,total,payment_method\n"
    );
    assert_eq!(ACCEPTED_COLUMNS.len(), 11);
}

#[test]
fn accepted_csv_rows_and_totals_use_the_currency_exponent() {
    let mut skipped = accepted("B-2", "JPY", 4500);
    skipped.status = Status::Skipped;
    let out = accepted_report(
        ReportFormat::Csv,
        &[
            accepted("A-1", "EUR", 1050),
            skipped,
            accepted("C-3", "KWD", 2468),
            accepted("D-4", "EUR", 5),
            accepted("E-5", "BHD", 7),
        ],
    );
    let c = cells(&out);
    assert_eq!(c.len(), 6);
    assert_eq!(
        c[1],
        [
            "A-1",
            "accepted",
            "in/orders.csv",
            "2",
            "2026-11-25T22:14:03Z",
            "a@b.co",
            "EUR",
            "1",
            "3",
            "10.50",
            "card"
        ]
    );
    assert_eq!(c[2][1], "skipped");
    let totals: Vec<&str> = c[1..].iter().map(|r| r[9].as_str()).collect();
    assert_eq!(totals, ["10.50", "4500", "2.468", "0.05", "0.007"]);
}

#[test]
fn accepted_jsonl_has_the_same_keys_and_totals() {
    let out = accepted_report(
        ReportFormat::Jsonl,
        &[accepted("A-1", "JPY", 4500), accepted("B-2", "KWD", 2468)],
    );
    let v = jsonl_values(&out);
    assert_eq!(v.len(), 2);
    let keys: Vec<&str> = v[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ACCEPTED_COLUMNS);
    assert_eq!(v[0]["total"], "4500");
    assert_eq!(v[1]["total"], "2.468");
    assert_eq!(v[0]["status"], "accepted");
    assert_eq!(v[0]["source_line"], 2);
    assert_eq!(v[0]["units"], 3);
}

// ---------------------------------------------------------------- formula escaping

#[test]
fn csv_reports_escape_formula_cells_jsonl_reports_do_not() {
    for t in TRIGGER_VALUES {
        let mut r = accepted(t, "EUR", 100);
        r.customer_email = t.into();
        r.payment_method = t.into();
        r.source_file = t.into();
        r.placed_at = t.into();
        let c = cells(&accepted_report(ReportFormat::Csv, &[r.clone()]));
        for i in [0, 2, 4, 5, 10] {
            assert_eq!(
                c[1][i],
                format!("'{t}"),
                "column {} of {t:?}",
                ACCEPTED_COLUMNS[i]
            );
            assert!(!is_live_formula(&c[1][i]));
        }
        // Cells that do not start with a trigger are left alone.
        assert_eq!(c[1][6], "EUR");
        assert_eq!(c[1][9], "1.00");

        let v = jsonl_values(&accepted_report(ReportFormat::Jsonl, &[r]));
        for k in [
            "order_id",
            "source_file",
            "placed_at",
            "customer_email",
            "payment_method",
        ] {
            assert_eq!(v[0][k], t, "{k}");
        }
    }
    // Not a trigger: a space, a digit. A quote before a trigger gets one more.
    let mut r = accepted("'=x", "EUR", 100);
    r.customer_email = " =x".into();
    let c = cells(&accepted_report(ReportFormat::Csv, &[r]));
    assert_eq!(c[1][0], "''=x");
    assert_eq!(c[1][5], " =x");
}

#[test]
fn failed_reports_escape_in_csv_only() {
    for t in TRIGGER_VALUES {
        let mut values = GOOD;
        values[2] = t;
        values[8] = t;
        let mut f = failed(
            vec![frow(&values, &[("note", t)])],
            ErrorCode::InvalidField,
            t,
        );
        f.source_file = t.into();
        let c = cells(&failed_report(ReportFormat::Csv, std::slice::from_ref(&f)));
        let row = &c[1];
        let want = format!("'{t}");
        // customer_email, payment_ref, note, error_detail, source_file
        for i in [2, 8, 10, 12, 13] {
            assert_eq!(row[i], want, "cell {i} of {t:?}");
        }
        assert_eq!(row[0], "A-1");

        let v = jsonl_values(&failed_report(ReportFormat::Jsonl, &[f]));
        for k in [
            "customer_email",
            "payment_ref",
            "note",
            "error_detail",
            "source_file",
        ] {
            assert_eq!(v[0][k], t, "{k}");
        }
    }
}

// ---------------------------------------------------------------- failed CSV layout

#[test]
fn failed_csv_header_is_ten_columns_extras_then_report_columns() {
    let out = failed_report(ReportFormat::Csv, &[]);
    let want = format!(
        "{},error_code,error_detail,source_file,source_line,failure_id\n",
        ten().join(",")
    );
    assert_eq!(String::from_utf8(out).unwrap(), want);

    let a = failed(
        vec![frow(&GOOD, &[("note", "n1"), ("gift", "g1")])],
        ErrorCode::UnknownSku,
        "d1",
    );
    let mut b_values = GOOD;
    b_values[0] = "B-2";
    let b = failed(
        vec![
            frow(&b_values, &[("gift", "g2"), ("channel", "web")]),
            frow(&b_values, &[("gift", "g3"), ("channel", "app")]),
        ],
        ErrorCode::PriceMismatch,
        "d2",
    );
    let c = cells(&failed_report(ReportFormat::Csv, &[a, b]));
    let mut header: Vec<&str> = ten().to_vec();
    header.extend(["note", "gift", "channel"]);
    header.extend(crate::model::order::REPORT_COLUMNS);
    assert_eq!(c[0], header);
    // One row per input row.
    assert_eq!(c.len(), 4);
    assert_eq!(
        &c[1][10..],
        [
            "n1",
            "g1",
            "",
            "UNKNOWN_SKU",
            "d1",
            "in/orders.csv",
            "2",
            "F1-1"
        ]
    );
    assert_eq!(
        &c[2][10..],
        [
            "",
            "g2",
            "web",
            "PRICE_MISMATCH",
            "d2",
            "in/orders.csv",
            "2",
            "F1-2"
        ]
    );
    // The order's detail is not repeated on its later rows.
    assert_eq!(
        &c[3][10..],
        [
            "",
            "g3",
            "app",
            "PRICE_MISMATCH",
            "",
            "in/orders.csv",
            "2",
            "F1-2"
        ]
    );
    assert_eq!(&c[2][..10], b_values);
    assert!(c.iter().all(|r| r.len() == 18));
}

#[test]
fn a_malformed_record_keeps_its_raw_text_in_error_detail() {
    // The way the pipeline makes it: read, validate, failed_order.
    let text = format!("{}\nX,\"1\",2\n", ten().join(","));
    let orders = read_back(InputFormat::Csv, text.into_bytes());
    let raw = &orders[0];
    let crate::validate::Verdict::Invalid { problems, .. } =
        crate::validate::validate(raw, &crate::validate::Catalog::default())
    else {
        panic!("a malformed record is invalid");
    };
    let f = crate::validate::failed_order_of(raw, problems, "in.csv");
    let mut g = failed(
        vec![frow(&GOOD, &[("note", "n")])],
        ErrorCode::UnknownSku,
        "d",
    );
    g.source_line = 9;
    let c = cells(&failed_report(ReportFormat::Csv, &[f.clone(), g]));
    assert_eq!(c.len(), 3);
    let row = &c[1];
    assert_eq!(row.len(), 16);
    assert!(row[..11].iter().all(String::is_empty), "{row:?}");
    assert_eq!(row[15], "F1-1");
    assert_eq!(row[11], "MALFORMED_RECORD");
    assert!(row[12].contains("X,\"1\",2"), "{}", row[12]);
    assert_eq!(row[13], "in.csv");
    assert_eq!(row[14], "2");

    // JSONL: the four report keys, the raw text in error_detail.
    let v = jsonl_values(&failed_report(ReportFormat::Jsonl, &[f]));
    let obj = v[0].as_object().unwrap();
    assert_eq!(
        obj.keys().map(String::as_str).collect::<Vec<_>>(),
        crate::model::order::REPORT_COLUMNS
    );
    assert!(obj["error_detail"].as_str().unwrap().contains("X,\"1\",2"));
}

#[test]
fn failed_jsonl_is_the_input_layout_plus_report_keys() {
    let mut second = GOOD;
    second[3] = "SKU-2";
    second[4] = "1";
    second[5] = "12.50";
    let f = failed(
        vec![
            frow(&GOOD, &[("note", "n")]),
            frow(&second, &[("note", "n")]),
        ],
        ErrorCode::PriceMismatch,
        "d",
    );
    let v = jsonl_values(&failed_report(ReportFormat::Jsonl, &[f]));
    assert_eq!(v.len(), 1);
    let want = serde_json::json!({
        "order_id": "A-1",
        "placed_at": "2026-11-25T22:14:03Z",
        "customer_email": "a@b.co",
        "currency": "EUR",
        "payment_method": "card",
        "payment_ref": "ref-1",
        "payment_amount": "10.00",
        "items": [
            {"sku": "SKU-1", "quantity": "2", "unit_price": "5.00"},
            {"sku": "SKU-2", "quantity": "1", "unit_price": "12.50"},
        ],
        "note": "n",
        "error_code": "PRICE_MISMATCH",
        "error_detail": "d",
        "source_file": "in/orders.csv",
        "source_line": 2,
        "failure_id": "F1-1",
    });
    assert_eq!(v[0], want);

    // An order without items goes back without items.
    let mut f = failed(
        vec![frow(&GOOD, &[])],
        ErrorCode::MissingField,
        "items is missing",
    );
    f.body.no_items = true;
    let bytes = failed_report(ReportFormat::Jsonl, &[f]);
    let orders = read_back(InputFormat::Jsonl, bytes);
    assert!(matches!(
        orders[0].body,
        RawBody::Rows { no_items: true, .. }
    ));
}

// ---------------------------------------------------------------- round trips

#[test]
fn failed_csv_reads_back_with_the_same_values() {
    let mut odd = GOOD;
    odd[2] = "=HYPERLINK(\"x\")";
    odd[8] = "-12";
    let f = failed(
        vec![
            frow(&odd, &[("note", "+cmd"), ("memo", "a,b \"c\"\nd")]),
            frow(&GOOD, &[("note", "@x"), ("memo", "")]),
        ],
        ErrorCode::InconsistentOrder,
        "=detail",
    );
    let orders = read_back(InputFormat::Csv, failed_report(ReportFormat::Csv, &[f]));
    let rows = rows_read_back(&orders);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].0, odd);
    assert_eq!(rows[1].0, GOOD);
    let extras = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        rows[0].1,
        extras(&[("note", "+cmd"), ("memo", "a,b \"c\"\nd")])
    );
    assert_eq!(rows[1].1, extras(&[("note", "@x"), ("memo", "")]));
    // The report columns are not extra columns on input.
    let RawBody::Rows { columns, .. } = &orders[0].body else {
        panic!()
    };
    let names: Vec<&str> = columns.extras.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names, ["note", "memo"]);
    assert_eq!(orders[0].line, 2);
}

#[test]
fn a_leading_quote_before_a_formula_character_survives_a_csv_report() {
    let mut values = GOOD;
    values[8] = "'=not a formula";
    let f = failed(
        vec![frow(&values, &[("note", "'-5")])],
        ErrorCode::UnknownSku,
        "d",
    );
    let rows = rows_read_back(&read_back(
        InputFormat::Csv,
        failed_report(ReportFormat::Csv, &[f]),
    ));
    assert_eq!(rows[0].0[8], "'=not a formula");
    assert_eq!(rows[0].1[0].1, "'-5");
}

#[test]
fn extra_names_that_collide_case_insensitively_still_read_back() {
    let a = failed(
        vec![frow(
            &GOOD,
            &[("Note", "1"), ("SKU", "x"), ("Error_Code", "y")],
        )],
        ErrorCode::UnknownSku,
        "d",
    );
    let b = failed(
        vec![frow(&GOOD, &[("note", "2")])],
        ErrorCode::UnknownSku,
        "d",
    );
    let bytes = failed_report(ReportFormat::Csv, &[a, b]);
    let src = Source {
        path: "failed.csv".into(),
        reader: Box::new(std::io::Cursor::new(bytes)),
        meter: Arc::new(InputMeter::default()),
    };
    let res = open_orders(src, InputFormat::Csv, &crate::read::ReadOptions::default());
    assert!(res.is_ok(), "{}", res.err().unwrap());
}

#[test]
fn an_extra_column_named_items_does_not_replace_the_items() {
    let f = failed(
        vec![frow(&GOOD, &[("items", "3 boxes")])],
        ErrorCode::UnknownSku,
        "d",
    );
    let v = jsonl_values(&failed_report(
        ReportFormat::Jsonl,
        std::slice::from_ref(&f),
    ));
    assert!(v[0]["items"].is_array(), "{}", v[0]);
    let rows = rows_read_back(&read_back(
        InputFormat::Jsonl,
        failed_report(ReportFormat::Jsonl, &[f]),
    ));
    assert_eq!(rows[0].0, GOOD);
}

/// A value as input leaves it: trimmed.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<String>(),
        2 => "[=+@-][ -~é✓]{0,10}",
        2 => "[=+@\\-'\t\r\n ,\"a-z0-9]{0,12}",
        1 => Just(String::new()),
    ]
    .prop_map(|s| s.trim().to_string())
}

/// The one case CSV input cannot tell apart: a literal quote before a formula character
/// (see the ignored test above).
fn csv_ambiguous(v: &str) -> bool {
    v.strip_prefix('\'').is_some_and(is_live_formula)
}

const EXTRA_NAMES: [&str; 4] = ["note", "gift_msg", "channel", "x_1"];

fn extra_names() -> impl Strategy<Value = Vec<&'static str>> {
    proptest::sample::subsequence(EXTRA_NAMES.to_vec(), 0..=EXTRA_NAMES.len())
}

proptest! {
    #[test]
    fn failed_csv_report_round_trips(
        names in extra_names(),
        rows in proptest::collection::vec(
            (
                proptest::collection::vec(value(), 10),
                proptest::collection::vec(value(), EXTRA_NAMES.len()),
            ),
            1..4,
        ),
        detail in any::<String>(),
        code in proptest::sample::select(ErrorCode::ALL.to_vec()),
    ) {
        let rows: Vec<FailedRow> = rows
            .into_iter()
            .map(|(values, extra)| FailedRow {
                values,
                line: 0,
                extra: names
                    .iter()
                    .zip(extra)
                    .map(|(n, v)| (n.to_string(), v))
                    .collect(),
                detail: String::new(),
            })
            .collect();
        prop_assume!(rows.iter().all(|r| {
            !r.values.iter().any(|v| csv_ambiguous(v))
                && !r.extra.iter().any(|(_, v)| csv_ambiguous(v))
        }));
        let f = FailedOrder {
            order_id: Some(rows[0].values[0].clone()),
            code,
            stored_detail: detail,
            source_file: "in.csv".into(),
            source_line: 7,
            body: FailedBody { rows: rows.clone(), ..FailedBody::default() },
        };
        let bytes = failed_report(ReportFormat::Csv, &[f]);
        // Nothing in the report is a live formula.
        for row in cells(&bytes) {
            for cell in row {
                prop_assert!(!is_live_formula(&cell), "{:?}", cell);
            }
        }
        let orders = read_back(InputFormat::Csv, bytes);
        let back = rows_read_back(&orders);
        prop_assert_eq!(back.len(), rows.len());
        for (got, want) in back.iter().zip(&rows) {
            prop_assert_eq!(&got.0, &want.values);
            prop_assert_eq!(&got.1, &want.extra);
        }
        for o in &orders {
            if let RawBody::Rows { columns, .. } = &o.body {
                let got: Vec<&str> = columns.extras.iter().map(|(_, n)| n.as_str()).collect();
                prop_assert_eq!(&got, &names);
            }
        }
    }

    #[test]
    fn failed_jsonl_report_round_trips(
        names in extra_names(),
        order in proptest::collection::vec(value(), 10),
        items in proptest::collection::vec(proptest::collection::vec(value(), 3), 1..4),
        extra in proptest::collection::vec(value(), EXTRA_NAMES.len()),
        detail in any::<String>(),
    ) {
        let extra: Vec<(String, String)> =
            names.iter().zip(extra).map(|(n, v)| (n.to_string(), v)).collect();
        let rows: Vec<FailedRow> = items
            .iter()
            .map(|item| {
                let mut values = order.clone();
                values[Field::Sku.index()] = item[0].clone();
                values[Field::Quantity.index()] = item[1].clone();
                values[Field::UnitPrice.index()] = item[2].clone();
                FailedRow {
                    values,
                    line: 0,
                    extra: extra.clone(),
                    detail: String::new(),
                }
            })
            .collect();
        let f = FailedOrder {
            order_id: Some(order[0].clone()),
            code: ErrorCode::UnknownSku,
            stored_detail: detail,
            source_file: "in.jsonl".into(),
            source_line: 3,
            body: FailedBody { rows: rows.clone(), ..FailedBody::default() },
        };
        let orders = read_back(InputFormat::Jsonl, failed_report(ReportFormat::Jsonl, &[f]));
        prop_assert_eq!(orders.len(), 1);
        prop_assert!(orders[0].notes.is_empty(), "{:?}", orders[0].notes);
        let back = rows_read_back(&orders);
        prop_assert_eq!(back.len(), rows.len());
        for (got, want) in back.iter().zip(&rows) {
            prop_assert_eq!(&got.0, &want.values);
            prop_assert_eq!(&got.1, &want.extra);
        }
    }
}

// ---------------------------------------------------------------- files

#[test]
fn write_atomic_replaces_the_target_and_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("metrics.prom");
    write_atomic(&target, b"first\n").unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"first\n");
    write_atomic(&target, b"second\n").unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"second\n");
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["metrics.prom"]);
}

#[test]
fn write_atomic_failure_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    // The target is a non-empty directory: the rename fails.
    let target = dir.path().join("busy");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep"), b"x").unwrap();
    assert!(write_atomic(&target, b"data").is_err());
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["busy"]);
    assert!(target.join("keep").exists());
}

#[test]
fn report_dir_publishes_in_one_rename_or_discards() {
    let dir = tempfile::tempdir().unwrap();
    let rd = ReportDir::create(dir.path(), 7, "m").unwrap();
    assert_eq!(rd.target(), dir.path().join("run-7"));
    let mut w = rd.file(&file_name("accepted", ReportFormat::Csv)).unwrap();
    w.write_all(b"x\n").unwrap();
    drop(w);
    assert!(
        !dir.path().join("run-7").exists(),
        "not visible before publish"
    );
    let target = rd.publish().unwrap();
    assert_eq!(std::fs::read(target.join("accepted.csv")).unwrap(), b"x\n");
    assert!(!dir.path().join(".run-7.partial").exists());

    let rd = ReportDir::create(dir.path(), 8, "m").unwrap();
    rd.file("failed.jsonl").unwrap();
    rd.discard();
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["run-7"]);
}

#[test]
fn report_dir_keeps_an_older_directory_of_the_same_name_aside() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("run-1")).unwrap();
    std::fs::write(dir.path().join("run-1").join("old.csv"), b"old").unwrap();
    let rd = ReportDir::create(dir.path(), 1, "m").unwrap();
    std::fs::write(dir.path().join(".run-1.partial").join("new.csv"), b"new").unwrap();
    let target = rd.publish().unwrap();
    assert!(target.join("new.csv").exists());
    assert!(!target.join("old.csv").exists());
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("run-1.replaced-"))
        .collect();
    assert_eq!(aside.len(), 1);
    assert!(dir.path().join(&aside[0]).join("old.csv").exists());
}

#[test]
fn a_csv_extra_column_named_items_is_kept_in_the_csv_failed_report() {
    let f = failed(
        vec![frow(&GOOD, &[("items", "3 boxes")])],
        ErrorCode::UnknownSku,
        "d",
    );
    let c = cells(&failed_report(ReportFormat::Csv, &[f]));
    let at = c[0]
        .iter()
        .position(|h| h == "items")
        .expect("items column");
    assert_eq!(c[1][at], "3 boxes");
}
