//! Validation of orders (README: "Input format" and "What decides an
//! order's fate"), on orders built by the real readers.

use super::*;

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{json, Value};

use crate::model::InputFormat;
use crate::read::{open_orders, InputMeter, Source};

/// The ten input columns, in order (their names are checked in `model::order`).
fn header() -> [&'static str; 10] {
    Field::ALL.map(|f| f.name())
}

/// A good one-line order: 2 x SKU-1 at 5.00 EUR, paid 10.00.
pub(crate) const BASE: [&str; 10] = [
    "A-1",
    "2026-11-25T22:14:03Z",
    "a@b.co",
    "SKU-1",
    "2",
    "5.00",
    "EUR",
    "card",
    "ref-1",
    "10.00",
];

const VISA: &str = "4111111111111111";
const VISA_MASKED: &str = "************1111";

fn catalog() -> Catalog {
    let p = |sku: &str, unit_price: i64, currency: &str| Product {
        sku: sku.into(),
        name: format!("{sku} name"),
        unit_price,
        currency: currency.into(),
        on_hand: 100,
    };
    Catalog::new(vec![
        p("SKU-1", 500, "EUR"),
        p("SKU-2", 1250, "EUR"),
        p("DIME", 10, "EUR"),
        p("JP-1", 1500, "JPY"),
        p("KW-1", 1234, "KWD"),
        p("BIG", i64::MAX, "EUR"),
    ])
}

/// The base row with some fields replaced.
fn row(over: &[(Field, &str)]) -> Vec<String> {
    let mut r: Vec<String> = BASE.iter().map(|s| s.to_string()).collect();
    for (f, v) in over {
        r[f.index()] = v.to_string();
    }
    r
}

fn source(path: &str, bytes: Vec<u8>) -> Source {
    Source {
        path: path.into(),
        reader: Box::new(std::io::Cursor::new(bytes)),
        meter: Arc::new(InputMeter::default()),
    }
}

/// Every order a reader makes of `bytes`.
fn read(format: InputFormat, bytes: Vec<u8>) -> Vec<RawOrder> {
    let path = match format {
        InputFormat::Jsonl => "t.jsonl",
        _ => "t.csv",
    };
    open_orders(
        source(path, bytes),
        format,
        &crate::read::ReadOptions::default(),
    )
    .expect("header is fine")
    .map(|r| r.expect("no input error"))
    .collect()
}

/// CSV text: the ten columns plus `extra` columns, every cell quoted.
fn csv_text(extra: &[&str], rows: &[Vec<String>]) -> Vec<u8> {
    let mut w = ::csv::WriterBuilder::new()
        .quote_style(::csv::QuoteStyle::Always)
        .from_writer(Vec::new());
    let mut header: Vec<&str> = header().to_vec();
    header.extend(extra);
    w.write_record(&header).unwrap();
    for r in rows {
        w.write_record(r).unwrap();
    }
    w.into_inner().unwrap()
}

fn csv_orders(extra: &[&str], rows: &[Vec<String>]) -> Vec<RawOrder> {
    read(InputFormat::Csv, csv_text(extra, rows))
}

/// The one order that the rows make.
fn csv_order(extra: &[&str], rows: &[Vec<String>]) -> RawOrder {
    let mut orders = csv_orders(extra, rows);
    assert_eq!(orders.len(), 1, "expected one order");
    orders.remove(0)
}

fn one(over: &[(Field, &str)]) -> RawOrder {
    csv_order(&[], &[row(over)])
}

fn jsonl_order(line: &str) -> RawOrder {
    let mut orders = read(InputFormat::Jsonl, format!("{line}\n").into_bytes());
    assert_eq!(orders.len(), 1, "expected one order from {line}");
    orders.remove(0)
}

/// The base order as a JSON object.
fn base_json() -> serde_json::Map<String, Value> {
    let v = json!({
        "order_id": "A-1",
        "placed_at": "2026-11-25T22:14:03Z",
        "customer_email": "a@b.co",
        "currency": "EUR",
        "payment_method": "card",
        "payment_ref": "ref-1",
        "payment_amount": "10.00",
        "items": [{"sku": "SKU-1", "quantity": "2", "unit_price": "5.00"}],
    });
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn check(raw: &RawOrder) -> Verdict {
    validate(raw, &catalog())
}

fn valid(raw: &RawOrder) -> ValidOrder {
    match check(raw) {
        Verdict::Valid(o) => o,
        other => panic!("expected a valid order, got {other:?}"),
    }
}

/// Code, detail (as the failure record renders it) and whether the parsed
/// order came along.
fn invalid(raw: &RawOrder) -> (ErrorCode, String, Option<Box<ValidOrder>>) {
    match check(raw) {
        Verdict::Invalid {
            code,
            problems,
            parsed,
        } => {
            let detail = failed_order_of(raw, problems, "t.csv")
                .detail()
                .into_owned();
            (code, detail, parsed)
        }
        Verdict::Valid(o) => panic!("expected an invalid order, got {o:?}"),
    }
}

/// The failure record of an invalid order.
fn failed_of(raw: &RawOrder, source_file: &str) -> FailedOrder {
    match check(raw) {
        Verdict::Invalid { problems, .. } => failed_order_of(raw, problems, source_file),
        Verdict::Valid(o) => panic!("expected an invalid order, got {o:?}"),
    }
}

/// The codes named in a detail, in order ("CODE: message; CODE: message").
fn detail_codes(detail: &str) -> Vec<ErrorCode> {
    detail
        .split("; ")
        .filter_map(|part| part.split_once(": ").and_then(|(c, _)| ErrorCode::parse(c)))
        .collect()
}

// ---------------------------------------------------------------- valid orders

#[test]
fn good_single_line_order_is_valid() {
    let o = valid(&one(&[]));
    assert_eq!(o.order_id, "A-1");
    assert_eq!(o.placed_at, "2026-11-25T22:14:03Z");
    assert_eq!(o.customer_email, "a@b.co");
    assert_eq!(o.currency, "EUR");
    assert_eq!(o.payment_method, crate::model::order::PaymentMethod::Card);
    assert_eq!(o.payment_ref, "ref-1");
    assert_eq!(o.payment_amount, 1000);
    assert_eq!(o.total, 1000);
    assert_eq!(o.units, 2);
    assert_eq!(
        o.lines,
        vec![Line {
            sku: "SKU-1".into(),
            quantity: 2,
            unit_price: 500
        }]
    );
    assert_ne!(o.content_hash, [0; 16]);
}

#[test]
fn good_multi_line_order_is_valid() {
    let rows = [
        row(&[(Field::PaymentAmount, "47.50")]),
        row(&[
            (Field::Sku, "SKU-2"),
            (Field::Quantity, "3"),
            (Field::UnitPrice, "12.50"),
            (Field::PaymentAmount, "47.50"),
        ]),
    ];
    let o = valid(&csv_order(&[], &rows));
    assert_eq!(o.total, 2 * 500 + 3 * 1250);
    assert_eq!(o.payment_amount, 4750);
    assert_eq!(o.units, 5);
    assert_eq!(o.lines.len(), 2);
    assert_eq!(o.lines[1].sku, "SKU-2");
    assert_eq!(o.lines[1].unit_price, 1250);
}

#[test]
fn money_uses_the_currency_exponent() {
    // JPY: no fraction digits; 3 x 1500 = 4500.
    let jpy = valid(&one(&[
        (Field::Sku, "JP-1"),
        (Field::Quantity, "3"),
        (Field::UnitPrice, "1500"),
        (Field::Currency, "JPY"),
        (Field::PaymentAmount, "4500"),
    ]));
    assert_eq!((jpy.total, jpy.payment_amount), (4500, 4500));
    // KWD: three fraction digits; 2 x 1.234 = 2.468 = 2468 minor units.
    let kwd = valid(&one(&[
        (Field::Sku, "KW-1"),
        (Field::UnitPrice, "1.234"),
        (Field::Currency, "KWD"),
        (Field::PaymentAmount, "2.468"),
    ]));
    assert_eq!((kwd.total, kwd.payment_amount), (2468, 2468));
    // Fewer fraction digits than the exponent are fine ("5" EUR = 500, "2.5" KWD = 2500).
    let short = valid(&one(&[
        (Field::UnitPrice, "5"),
        (Field::PaymentAmount, "10"),
    ]));
    assert_eq!(short.total, 1000);
}

#[test]
fn quantity_bounds_are_inclusive() {
    let o = valid(&one(&[
        (Field::Quantity, "1000000"),
        (Field::PaymentAmount, "5000000.00"),
    ]));
    assert_eq!(o.units, 1_000_000);
    let o = valid(&one(&[
        (Field::Quantity, "1"),
        (Field::PaymentAmount, "5.00"),
    ]));
    assert_eq!(o.units, 1);
}

#[test]
fn values_are_trimmed_and_header_names_are_case_insensitive() {
    let mut text = csv_text(
        &[],
        &[row(&[
            (Field::Sku, "  SKU-1 "),
            (Field::Currency, "\tEUR "),
        ])],
    );
    // Upper-case and padded header name.
    let s = String::from_utf8(text)
        .unwrap()
        .replacen("\"sku\"", "\" SKU \"", 1);
    text = s.into_bytes();
    let orders = read(InputFormat::Csv, text);
    let o = valid(&orders[0]);
    assert_eq!(o.lines[0].sku, "SKU-1");
    assert_eq!(o.currency, "EUR");
}

#[test]
fn csv_and_jsonl_give_the_same_order() {
    let from_csv = valid(&one(&[]));
    let from_jsonl = valid(&jsonl_order(&Value::Object(base_json()).to_string()));
    assert_eq!(from_csv, from_jsonl);
    // The same content written differently has the same fingerprint.
    let mut m = base_json();
    m["placed_at"] = json!("2026-11-25T23:14:03+01:00");
    m["payment_amount"] = json!(10);
    m["items"] = json!([{"sku": "SKU-1", "quantity": 2, "unit_price": 5}]);
    let other = valid(&jsonl_order(&Value::Object(m).to_string()));
    assert_eq!(other.content_hash, from_csv.content_hash);
    // Different content, different fingerprint.
    let changed = valid(&one(&[(Field::PaymentRef, "ref-2")]));
    assert_ne!(changed.content_hash, from_csv.content_hash);
}

// ---------------------------------------------------------------- one code each

#[test]
fn each_code_comes_from_a_minimal_order() {
    let cases: Vec<(ErrorCode, RawOrder)> = vec![
        (
            ErrorCode::MalformedRecord,
            read(
                InputFormat::Csv,
                format!("{}\nX,1,2\n", header().join(",")).into_bytes(),
            )
            .remove(0),
        ),
        (ErrorCode::MalformedRecord, jsonl_order("{\"order_id\": ")),
        (ErrorCode::MalformedRecord, jsonl_order("[1, 2]")),
        (ErrorCode::MissingField, one(&[(Field::CustomerEmail, "")])),
        (ErrorCode::InvalidField, one(&[(Field::Quantity, "x")])),
        (
            ErrorCode::InconsistentOrder,
            csv_order(&[], &[row(&[]), row(&[(Field::PaymentRef, "ref-2")])]),
        ),
        (ErrorCode::PanDetected, one(&[(Field::PaymentRef, VISA)])),
        (ErrorCode::UnknownSku, one(&[(Field::Sku, "NOPE")])),
        (
            ErrorCode::CurrencyMismatch,
            one(&[(Field::Currency, "USD")]),
        ),
        (
            ErrorCode::PriceMismatch,
            one(&[(Field::UnitPrice, "6.00"), (Field::PaymentAmount, "12.00")]),
        ),
        (
            ErrorCode::PaymentMismatch,
            one(&[(Field::PaymentAmount, "9.99")]),
        ),
    ];
    for (want, raw) in cases {
        let (code, detail, _) = invalid(&raw);
        assert_eq!(code, want, "{detail}");
        if want == ErrorCode::MalformedRecord {
            // The detail of an unparseable record is the reason and the raw text.
            assert!(!detail.is_empty());
        } else {
            assert_eq!(detail_codes(&detail), vec![want], "{detail}");
            assert!(detail.starts_with(want.as_str()), "{detail}");
        }
    }
}

#[test]
fn invalid_utf8_is_a_malformed_record() {
    let mut bytes = csv_text(&[], &[row(&[(Field::CustomerEmail, "a\u{e9}@b.co")])]);
    // Break the two-byte é into an invalid sequence, keeping the field count.
    let pos = bytes
        .windows(2)
        .position(|w| w == "\u{e9}".as_bytes())
        .unwrap();
    bytes[pos] = 0xff;
    let orders = read(InputFormat::Csv, bytes);
    assert_eq!(orders.len(), 1);
    let (code, detail, parsed) = invalid(&orders[0]);
    assert_eq!(code, ErrorCode::MalformedRecord);
    assert!(detail.contains("UTF-8"), "{detail}");
    assert!(parsed.is_none());

    let (code, _, _) =
        invalid(&read(InputFormat::Jsonl, b"{\"order_id\": \"\xff\"}\n".to_vec())[0]);
    assert_eq!(code, ErrorCode::MalformedRecord);
}

#[test]
fn malformed_detail_has_the_reason_and_the_raw_text() {
    let text = format!("{}\nX,1,2\n", header().join(","));
    let orders = read(InputFormat::Csv, text.into_bytes());
    let (_, detail, _) = invalid(&orders[0]);
    assert_eq!(
        detail,
        "MALFORMED_RECORD: wrong number of fields: 3 where the header has 10: X,1,2"
    );
    let (_, detail, _) = invalid(&jsonl_order("{bad json"));
    assert!(
        detail.starts_with("MALFORMED_RECORD: invalid JSON"),
        "{detail}"
    );
    assert!(detail.ends_with("{bad json"), "{detail}");
}

// ---------------------------------------------------------------- MISSING_FIELD

#[test]
fn missing_field_for_each_column_empty_or_whitespace() {
    for f in Field::ALL {
        for blank in ["", "   ", "\t", " \t  "] {
            let (code, detail, parsed) = invalid(&one(&[(f, blank)]));
            assert_eq!(
                code,
                ErrorCode::MissingField,
                "{} {blank:?}: {detail}",
                f.name()
            );
            assert_eq!(detail, format!("MISSING_FIELD: {} is empty", f.name()));
            assert!(parsed.is_none());
        }
    }
}

#[test]
fn missing_field_on_a_later_row_names_the_line() {
    let rows = [
        row(&[(Field::PaymentAmount, "20.00")]),
        row(&[(Field::Quantity, " "), (Field::PaymentAmount, "20.00")]),
    ];
    let (code, detail, _) = invalid(&csv_order(&[], &rows));
    assert_eq!(code, ErrorCode::MissingField);
    assert_eq!(detail, "MISSING_FIELD: quantity is empty (line 3)");
}

#[test]
fn jsonl_missing_keys_nulls_and_blank_strings() {
    let order_keys = [
        "order_id",
        "placed_at",
        "customer_email",
        "currency",
        "payment_method",
        "payment_ref",
        "payment_amount",
    ];
    for key in order_keys {
        for how in ["absent", "null", "blank"] {
            let mut m = base_json();
            match how {
                "absent" => {
                    m.remove(key);
                }
                "null" => m[key] = Value::Null,
                _ => m[key] = json!("  "),
            }
            let (code, detail, _) = invalid(&jsonl_order(&Value::Object(m).to_string()));
            assert_eq!(code, ErrorCode::MissingField, "{key} {how}: {detail}");
            assert!(detail.contains(&format!("{key} is empty")), "{detail}");
        }
    }
    for key in ["sku", "quantity", "unit_price"] {
        for how in ["absent", "null", "blank"] {
            let mut m = base_json();
            let item = m["items"][0].as_object_mut().unwrap();
            match how {
                "absent" => {
                    item.remove(key);
                }
                "null" => item[key] = Value::Null,
                _ => item[key] = json!(""),
            }
            let (code, detail, _) = invalid(&jsonl_order(&Value::Object(m).to_string()));
            assert_eq!(code, ErrorCode::MissingField, "{key} {how}: {detail}");
            assert!(detail.contains(&format!("{key} is empty")), "{detail}");
        }
    }
}

#[test]
fn jsonl_items_missing_null_or_empty() {
    for (items, says) in [
        (None, "items is missing or empty"),
        (Some(Value::Null), "items is missing or empty"),
        (Some(json!([])), "items is missing or empty"),
    ] {
        let mut m = base_json();
        match items {
            None => {
                m.remove("items");
            }
            Some(v) => m["items"] = v,
        }
        let raw = jsonl_order(&Value::Object(m).to_string());
        let (code, detail, parsed) = invalid(&raw);
        assert_eq!(code, ErrorCode::MissingField, "{detail}");
        assert_eq!(detail, format!("MISSING_FIELD: {says}"), "{says}");
        assert!(parsed.is_none());
    }
    // Items of the wrong type are invalid, not missing.
    let mut m = base_json();
    m["items"] = json!("SKU-1");
    let (code, detail, _) = invalid(&jsonl_order(&Value::Object(m).to_string()));
    assert_eq!(code, ErrorCode::InvalidField, "{detail}");
    assert!(detail.contains("items is not an array"), "{detail}");
}

// ---------------------------------------------------------------- INVALID_FIELD

/// A field, a bad value for it, other fields to change, and the rule text.
type InvalidCase<'a> = (Field, &'a str, &'a [(Field, &'a str)], &'a str);

const AMOUNT_SYNTAX: &str =
    "must be an exact decimal with at most 2 fraction digits (no sign, exponent or thousands separator)";
const JPY: [(Field, &str); 3] = [
    (Field::Sku, "JP-1"),
    (Field::Currency, "JPY"),
    (Field::PaymentAmount, "3000"),
];
const KWD: [(Field, &str); 3] = [
    (Field::Sku, "KW-1"),
    (Field::Currency, "KWD"),
    (Field::PaymentAmount, "2.468"),
];

/// Bad order-level values: (field, bad value, other fields to change, rule text).
fn order_field_cases(long_id: &str) -> Vec<InvalidCase<'_>> {
    vec![
        (Field::OrderId, "-A1", &[], fields::ORDER_ID_RULE),
        (Field::OrderId, "A 1", &[], fields::ORDER_ID_RULE),
        (Field::OrderId, "A/1", &[], fields::ORDER_ID_RULE),
        (Field::OrderId, long_id, &[], fields::ORDER_ID_RULE),
        (
            Field::PlacedAt,
            "2026-11-25T22:14:03",
            &[],
            "has no offset: pass --timezone ZONE",
        ),
        (
            Field::PlacedAt,
            "2026-11-25 22:14:03Z",
            &[],
            fields::PLACED_AT_RULE,
        ),
        (
            Field::PlacedAt,
            "2026-02-30T10:00:00Z",
            &[],
            fields::PLACED_AT_RULE,
        ),
        (Field::PlacedAt, "yesterday", &[], fields::PLACED_AT_RULE),
        (Field::CustomerEmail, "ab.co", &[], fields::EMAIL_RULE),
        (Field::CustomerEmail, "a@b", &[], fields::EMAIL_RULE),
        (Field::CustomerEmail, "a@b@c.co", &[], fields::EMAIL_RULE),
        (Field::CustomerEmail, "a b@c.co", &[], fields::EMAIL_RULE),
    ]
}

/// Bad item and payment values, as `order_field_cases`.
fn item_field_cases() -> Vec<InvalidCase<'static>> {
    let amount_syntax = AMOUNT_SYNTAX;
    vec![
        (Field::Sku, "SKU 1", &[], fields::SKU_RULE),
        (Field::Sku, "SKU:1", &[], fields::SKU_RULE),
        (Field::Quantity, "0", &[], fields::QUANTITY_RULE),
        (Field::Quantity, "-1", &[], fields::QUANTITY_RULE),
        (Field::Quantity, "1.5", &[], fields::QUANTITY_RULE),
        (Field::Quantity, "1e3", &[], fields::QUANTITY_RULE),
        (Field::Quantity, "+2", &[], fields::QUANTITY_RULE),
        (Field::Quantity, "1000001", &[], fields::QUANTITY_RULE),
        (
            Field::Quantity,
            "99999999999999999999999",
            &[],
            fields::QUANTITY_RULE,
        ),
        (
            Field::UnitPrice,
            "5.001",
            &[],
            "has more than 2 fraction digits",
        ),
        (
            Field::UnitPrice,
            "1500.5",
            &JPY,
            "must not have fraction digits",
        ),
        (
            Field::UnitPrice,
            "1.2345",
            &KWD,
            "has more than 3 fraction digits",
        ),
        (Field::UnitPrice, "+5.00", &[], amount_syntax),
        (Field::UnitPrice, "-5.00", &[], amount_syntax),
        (Field::UnitPrice, "5e0", &[], amount_syntax),
        (Field::UnitPrice, "1,000.00", &[], amount_syntax),
        (Field::UnitPrice, ".5", &[], amount_syntax),
        (Field::Currency, "eur", &[], fields::CURRENCY_RULE),
        (Field::Currency, "EURO", &[], fields::CURRENCY_RULE),
        (Field::PaymentMethod, "bitcoin", &[], fields::METHOD_RULE),
        (Field::PaymentMethod, "Card", &[], fields::METHOD_RULE),
        (
            Field::PaymentAmount,
            "10.001",
            &[],
            "has more than 2 fraction digits",
        ),
        (Field::PaymentAmount, "-10.00", &[], amount_syntax),
        (Field::PaymentAmount, "1e1", &[], amount_syntax),
    ]
}

#[test]
fn invalid_field_for_each_rule() {
    let long_id = "x".repeat(65);
    let mut cases = order_field_cases(&long_id);
    cases.extend(item_field_cases());
    for (f, bad, others, rule) in cases {
        let mut over = others.to_vec();
        over.push((f, bad));
        let (code, detail, parsed) = invalid(&one(&over));
        assert_eq!(
            code,
            ErrorCode::InvalidField,
            "{} {bad:?}: {detail}",
            f.name()
        );
        // Names the field, shows the value, states the rule.
        let named = format!("INVALID_FIELD: {} {bad:?} {rule}", f.name());
        assert!(detail.contains(&named), "{detail}\n  wanted: {named}");
        assert!(parsed.is_none());
        // Nothing later than INVALID_FIELD: a value that does not parse is not compared
        // with the catalog, and the payment is not checked.
        assert!(
            detail_codes(&detail)
                .iter()
                .all(|c| *c == ErrorCode::InvalidField),
            "{detail}"
        );
    }
}

/// The order with `placed_at` as given, its file read with `--timezone`.
fn in_zone(placed_at: &str, zone: &str) -> RawOrder {
    let mut o = one(&[(Field::PlacedAt, placed_at)]);
    if let RawBody::Rows { columns, .. } = &mut o.body {
        *columns = Arc::new(crate::read::Columns {
            zone: Some(crate::model::local_time::Zone::parse(zone).unwrap()),
            ..(**columns).clone()
        });
    }
    o
}

#[test]
fn local_times_are_read_in_the_zone_and_stored_with_their_offset() {
    let v = valid(&in_zone("2026-11-25 08:02:11", "Europe/Berlin"));
    assert_eq!(v.placed_at, "2026-11-25T08:02:11+01:00");
    // The fingerprint is the instant: the same order written in UTC is the same content.
    let utc = valid(&one(&[(Field::PlacedAt, "2026-11-25T07:02:11Z")]));
    assert_eq!(v.content_hash, utc.content_hash);
    // Another zone is another instant, so other content (a conflict if applied before).
    let lisbon = valid(&in_zone("2026-11-25 08:02:11", "Europe/Lisbon"));
    assert_ne!(lisbon.content_hash, v.content_hash);
    for (text, says) in [
        (
            "2026-03-29 02:30:00",
            "placed_at \"2026-03-29 02:30:00\" does not exist in Europe/Berlin: the clocks went forward from 02:00 to 03:00",
        ),
        (
            "2026-10-25T02:30:00",
            "placed_at \"2026-10-25T02:30:00\" happened twice in Europe/Berlin, at +02:00 and again at +01:00",
        ),
    ] {
        let (code, detail, _) = invalid(&in_zone(text, "Europe/Berlin"));
        assert_eq!(code, ErrorCode::InvalidField, "{detail}");
        assert!(detail.contains(says), "{detail}");
    }
    // Without --timezone, the option is named.
    let (code, detail, _) = invalid(&one(&[(Field::PlacedAt, "2026-11-25 08:02:11")]));
    assert_eq!(code, ErrorCode::InvalidField);
    assert!(
        detail.contains("has no offset: pass --timezone ZONE"),
        "{detail}"
    );
}

#[test]
fn invalid_payment_ref_over_128_characters() {
    let ok = "r".repeat(128);
    valid(&one(&[(Field::PaymentRef, &ok)]));
    // 128 characters, not bytes.
    let wide = "é".repeat(128);
    valid(&one(&[(Field::PaymentRef, &wide)]));
    let long = "r".repeat(129);
    let (code, detail, _) = invalid(&one(&[(Field::PaymentRef, &long)]));
    assert_eq!(code, ErrorCode::InvalidField);
    // The value is shown, cut.
    let shown = format!("payment_ref {:?}...", "r".repeat(80));
    assert!(detail.contains(&shown), "{detail}");
    assert!(detail.ends_with(fields::REF_RULE), "{detail}");
    assert!(!detail.contains(&long));
}

#[test]
fn invalid_item_field_on_a_later_row_names_the_line() {
    let rows = [
        row(&[(Field::PaymentAmount, "20.00")]),
        row(&[(Field::Quantity, "two"), (Field::PaymentAmount, "20.00")]),
    ];
    let (_, detail, _) = invalid(&csv_order(&[], &rows));
    assert_eq!(
        detail,
        format!(
            "INVALID_FIELD: quantity \"two\" {} (line 3)",
            fields::QUANTITY_RULE
        )
    );
}

#[test]
fn overflowing_total_is_invalid_not_a_panic() {
    // One line: 1,000,000 x the largest price.
    let (code, detail, parsed) = invalid(&one(&[
        (Field::Sku, "BIG"),
        (Field::Quantity, "1000000"),
        (Field::UnitPrice, "92233720368547758.07"),
        (Field::PaymentAmount, "1.00"),
    ]));
    assert_eq!(code, ErrorCode::InvalidField);
    assert!(detail.contains("too large"), "{detail}");
    assert!(parsed.is_none());
    // Two lines that fit one by one but not summed.
    let big = [
        (Field::Sku, "BIG"),
        (Field::Quantity, "1"),
        (Field::UnitPrice, "92233720368547758.07"),
        (Field::PaymentAmount, "1.00"),
    ];
    let (code, detail, _) = invalid(&csv_order(&[], &[row(&big), row(&big)]));
    assert_eq!(code, ErrorCode::InvalidField);
    assert!(detail.contains("too large"), "{detail}");
    // An amount beyond i64 is itself invalid.
    let (code, detail, _) = invalid(&one(&[(Field::PaymentAmount, "92233720368547758.08")]));
    assert_eq!(code, ErrorCode::InvalidField);
    assert!(detail.contains("payment_amount"), "{detail}");
}

#[test]
fn jsonl_numbers_are_read_exactly() {
    // 101 x 0.1 = 10.10 exactly (in floating point it is 10.100000000000001).
    let line = r#"{"order_id":"J-1","placed_at":"2026-11-25T22:14:03Z","customer_email":"a@b.co","currency":"EUR","payment_method":"card","payment_ref":"r","payment_amount":10.10,"items":[{"sku":"DIME","quantity":101,"unit_price":0.1}]}"#;
    let o = valid(&jsonl_order(line));
    assert_eq!(o.payment_amount, 1010);
    assert_eq!(o.total, 1010);
    assert_eq!(o.units, 101);
    assert_eq!(o.lines[0].unit_price, 10);

    // A number with more digits than a double holds, still exact.
    let line = line
        .replace("\"DIME\"", "\"BIG\"")
        .replace("\"quantity\":101", "\"quantity\":1")
        .replace("0.1}", "92233720368547758.07}")
        .replace("10.10", "92233720368547758.07");
    let o = valid(&jsonl_order(&line));
    assert_eq!(o.total, i64::MAX);
}

#[test]
fn jsonl_odd_numbers_are_invalid_never_a_panic() {
    let base = r#"{"order_id":"J-1","placed_at":"2026-11-25T22:14:03Z","customer_email":"a@b.co","currency":"EUR","payment_method":"card","payment_ref":"r","payment_amount":PA,"items":[{"sku":"SKU-1","quantity":Q,"unit_price":UP}]}"#;
    let make = |pa: &str, q: &str, up: &str| {
        base.replace("PA", pa)
            .replace("UP", up)
            .replace("Q,", &format!("{q},"))
    };
    assert!(matches!(
        check(&jsonl_order(&make("10.00", "2", "5.00"))),
        Verdict::Valid(_)
    ));
    for (pa, q, up, field) in [
        ("1e400", "2", "5.00", "payment_amount"),
        ("-0", "2", "5.00", "payment_amount"),
        ("10.00", "-0", "5.00", "quantity"),
        ("10.00", "2", "-0", "unit_price"),
        ("10.00", "2", "1e400", "unit_price"),
        ("10.00", "2", "5E0", "unit_price"),
        ("10.00", "2.0", "5.00", "quantity"),
        ("10.00", "1e3", "5.00", "quantity"),
        (
            "10.00",
            "123456789012345678901234567890",
            "5.00",
            "quantity",
        ),
        ("10.00", "2", "-5.00", "unit_price"),
    ] {
        let raw = jsonl_order(&make(pa, q, up));
        let (code, detail, _) = invalid(&raw);
        assert_eq!(code, ErrorCode::InvalidField, "{pa} {q} {up}: {detail}");
        assert!(
            detail.contains(&format!("INVALID_FIELD: {field} ")),
            "{detail}"
        );
    }
}

#[test]
fn jsonl_values_of_the_wrong_type_are_invalid() {
    for (key, v) in [
        ("currency", json!(true)),
        ("payment_ref", json!(["x"])),
        ("payment_method", json!({"card": 1})),
    ] {
        let mut m = base_json();
        m[key] = v;
        let (code, detail, _) = invalid(&jsonl_order(&Value::Object(m).to_string()));
        assert_eq!(code, ErrorCode::InvalidField, "{key}: {detail}");
        assert!(detail.contains(key), "{detail}");
    }
}

// ---------------------------------------------------------------- INCONSISTENT_ORDER

#[test]
fn rows_that_disagree_on_an_order_level_field_are_inconsistent() {
    for (f, other) in [
        (Field::PlacedAt, "2026-11-26T22:14:03Z"),
        (Field::CustomerEmail, "c@d.co"),
        (Field::Currency, "USD"),
        (Field::PaymentMethod, "paypal"),
        (Field::PaymentRef, "ref-2"),
        (Field::PaymentAmount, "11.00"),
    ] {
        let rows = [
            row(&[(Field::PaymentAmount, "20.00")]),
            row(&[(Field::PaymentAmount, "20.00"), (f, other)]),
        ];
        let rows = if f == Field::PaymentAmount {
            [rows[0].clone(), row(&[(f, other)])]
        } else {
            rows
        };
        let (code, detail, parsed) = invalid(&csv_order(&[], &rows));
        assert_eq!(code, ErrorCode::InconsistentOrder, "{}: {detail}", f.name());
        let first = rows[0][f.index()].as_str();
        assert!(
            detail.contains(&format!(
                "{} differs between the rows of the order: {first:?} on line 2, {other:?} on line 3",
                f.name()
            )),
            "{detail}"
        );
        assert!(parsed.is_none());
    }
    // Item fields may differ, of course.
    let rows = [
        row(&[(Field::PaymentAmount, "22.50")]),
        row(&[
            (Field::Sku, "SKU-2"),
            (Field::Quantity, "1"),
            (Field::UnitPrice, "12.50"),
            (Field::PaymentAmount, "22.50"),
        ]),
    ];
    assert_eq!(valid(&csv_order(&[], &rows)).total, 2250);
}

#[test]
fn inconsistent_card_numbers_are_masked_in_the_detail() {
    let rows = [
        row(&[(Field::PaymentRef, VISA), (Field::PaymentAmount, "20.00")]),
        row(&[
            (Field::PaymentRef, "5555555555554444"),
            (Field::PaymentAmount, "20.00"),
        ]),
    ];
    let (code, detail, _) = invalid(&csv_order(&[], &rows));
    assert_eq!(code, ErrorCode::InconsistentOrder);
    assert!(detail.contains(VISA_MASKED), "{detail}");
    assert!(detail.contains("************4444"), "{detail}");
    assert!(!detail.contains(VISA), "{detail}");
    assert!(!detail.contains("5555555555554444"), "{detail}");
}

// ---------------------------------------------------------------- DUPLICATE_IN_INPUT

// DUPLICATE_IN_INPUT is decided in input order by apply (see tests/decisions.rs).

// ---------------------------------------------------------------- PAN_DETECTED

/// Asserts PAN_DETECTED with the masked form in the detail and no clear digits.
fn assert_pan(raw: &RawOrder, clear: &str, masked: &str) -> String {
    let (code, detail, parsed) = invalid(raw);
    assert_eq!(code, ErrorCode::PanDetected, "{detail}");
    assert!(detail.contains(masked), "{detail}");
    assert!(!detail.contains(clear), "clear number in: {detail}");
    let digits: String = clear.chars().filter(char::is_ascii_digit).collect();
    assert!(!detail.contains(&digits), "clear number in: {detail}");
    assert!(parsed.is_none());
    detail
}

#[test]
fn pan_in_payment_ref() {
    let d = assert_pan(&one(&[(Field::PaymentRef, VISA)]), VISA, VISA_MASKED);
    assert_eq!(
        d,
        format!("PAN_DETECTED: payment_ref holds a card number: \"{VISA_MASKED}\"")
    );
    for (value, clear) in [
        ("4111 1111 1111 1111", "4111 1111 1111 1111"),
        ("4111-1111-1111-1111", "4111-1111-1111-1111"),
        ("card 4111 1111-1111 1111 exp 12/29", "4111 1111-1111 1111"),
    ] {
        let d = assert_pan(&one(&[(Field::PaymentRef, value)]), clear, VISA_MASKED);
        assert!(
            d.ends_with(&format!("{:?}", value.replace(clear, VISA_MASKED))),
            "{d}"
        );
    }
    // 15-digit Amex, 13-digit Visa, 19 digits.
    assert_pan(
        &one(&[(Field::PaymentRef, "378282246310005")]),
        "378282246310005",
        "***********0005",
    );
    assert_pan(
        &one(&[(Field::PaymentRef, "4222222222222")]),
        "4222222222222",
        "*********2222",
    );
}

#[test]
fn pan_in_customer_email() {
    let email = format!("{VISA}@shop.example");
    let d = assert_pan(
        &one(&[(Field::CustomerEmail, &email)]),
        VISA,
        &format!("{VISA_MASKED}@shop.example"),
    );
    assert!(d.contains("customer_email"), "{d}");
}

#[test]
fn pan_in_an_extra_column() {
    let mut r = row(&[]);
    r.push("call 4111 1111 1111 1111 asap".into());
    let raw = csv_order(&["Note"], &[r]);
    let d = assert_pan(&raw, "4111 1111 1111 1111", VISA_MASKED);
    assert_eq!(
        d,
        format!("PAN_DETECTED: column note holds a card number: \"call {VISA_MASKED} asap\"")
    );
    // JSONL: an extra key, as a string and as a number.
    for v in [json!(VISA), json!(4111111111111111u64)] {
        let mut m = base_json();
        m.insert("note".into(), v);
        let raw = jsonl_order(&Value::Object(m).to_string());
        assert_pan(&raw, VISA, VISA_MASKED);
    }
}

#[test]
fn luhn_invalid_numbers_are_not_card_numbers() {
    valid(&one(&[(Field::PaymentRef, "4111111111111112")]));
    valid(&one(&[(Field::PaymentRef, "4111 1111 1111 1112")]));
    // 12 and 20 digits are not card numbers either.
    valid(&one(&[(Field::PaymentRef, "411111111116")]));
    valid(&one(&[(Field::PaymentRef, "00004111111111111111")]));
}

#[test]
fn identifiers_are_not_scanned() {
    // Luhn-valid and 16 digits, but an order_id is an identifier.
    assert!(fields::order_id(VISA).is_ok());
    let o = valid(&one(&[(Field::OrderId, VISA)]));
    assert_eq!(o.order_id, VISA);
}

#[test]
fn an_already_masked_number_counts_again() {
    assert_pan(&one(&[(Field::PaymentRef, VISA_MASKED)]), VISA, VISA_MASKED);
    let mut r = row(&[]);
    r.push(format!("was {VISA_MASKED}"));
    assert_pan(&csv_order(&["note"], &[r]), VISA, VISA_MASKED);
}

#[test]
fn card_numbers_in_invalid_free_text_are_masked_too() {
    // Over 128 characters, starting with a card number: INVALID_FIELD and PAN_DETECTED.
    let long = format!("{VISA} {}", "x".repeat(130));
    let (code, detail, _) = invalid(&one(&[(Field::PaymentRef, &long)]));
    assert_eq!(code, ErrorCode::InvalidField);
    assert_eq!(
        detail_codes(&detail),
        vec![ErrorCode::InvalidField, ErrorCode::PanDetected]
    );
    assert!(detail.contains(VISA_MASKED), "{detail}");
    assert!(!detail.contains(VISA), "{detail}");
    // An e-mail that is a card number with spaces is invalid and a card number.
    let (code, detail, _) = invalid(&one(&[(Field::CustomerEmail, "4111 1111 1111 1111")]));
    assert_eq!(code, ErrorCode::InvalidField);
    assert!(detail.contains(VISA_MASKED), "{detail}");
    assert!(!detail.contains("4111 1111 1111 1111"), "{detail}");
}

#[test]
fn card_numbers_in_malformed_records_are_masked() {
    let text = format!("{}\nX,{VISA},2\n", header().join(","));
    let orders = read(InputFormat::Csv, text.into_bytes());
    let (code, detail, _) = invalid(&orders[0]);
    assert_eq!(code, ErrorCode::MalformedRecord);
    assert!(detail.ends_with(&format!("X,{VISA_MASKED},2")), "{detail}");
    assert!(!detail.contains(VISA));

    let (code, detail, _) = invalid(&jsonl_order(&format!("{{\"payment_ref\": \"{VISA}\", ")));
    assert_eq!(code, ErrorCode::MalformedRecord);
    assert!(detail.contains(VISA_MASKED), "{detail}");
    assert!(!detail.contains(VISA), "{detail}");
}

#[test]
fn card_number_straddling_the_raw_text_cut_is_not_shown_in_part() {
    // The cut falls after the first 12 digits of the card number.
    let mut text = "x".repeat(MAX_RAW - 12);
    text.push_str(VISA);
    text.push_str(",tail");
    let raw = RawOrder::malformed(2, text.as_bytes(), "wrong number of fields");
    let (code, detail, _) = invalid(&raw);
    assert_eq!(code, ErrorCode::MalformedRecord);
    assert!(
        !detail.contains("411111111111"),
        "12 clear digits of the card number"
    );
    let f = failed_of(&raw, "t.csv");
    assert!(!f.body.raw.unwrap().contains("411111111111"));
}

#[test]
fn long_malformed_records_are_cut() {
    let text = "y".repeat(MAX_RAW + 10);
    let raw = RawOrder::malformed(2, text.as_bytes(), "r");
    let (_, detail, _) = invalid(&raw);
    assert!(detail.len() < MAX_RAW + 100);
    assert!(
        detail.ends_with(&format!(" ... ({} bytes in all)", MAX_RAW + 10)),
        "{}",
        &detail[detail.len() - 40..]
    );
}

// ---------------------------------------------------------------- precedence and detail

#[test]
fn earliest_code_wins_and_detail_lists_all_up_to_the_catalog() {
    let raw = one(&[
        (Field::CustomerEmail, ""),
        (Field::Sku, "NOPE"),
        (Field::PaymentAmount, "99.00"),
    ]);
    let (code, detail, parsed) = invalid(&raw);
    assert_eq!(code, ErrorCode::MissingField);
    assert_eq!(
        detail,
        "MISSING_FIELD: customer_email is empty; UNKNOWN_SKU: sku \"NOPE\" is not in the catalog"
    );
    assert!(parsed.is_none());
}

#[test]
fn detail_lists_every_failure_in_precedence_order() {
    let rows = [
        // INVALID_FIELD (quantity), PAN_DETECTED (payment_ref)
        row(&[(Field::Quantity, "x"), (Field::PaymentRef, VISA)]),
        // INCONSISTENT_ORDER (placed_at), PRICE_MISMATCH
        row(&[
            (Field::PlacedAt, "2026-11-26T00:00:00Z"),
            (Field::Sku, "SKU-2"),
            (Field::UnitPrice, "13.00"),
            (Field::PaymentRef, VISA),
        ]),
        // UNKNOWN_SKU
        row(&[(Field::Sku, "NOPE"), (Field::PaymentRef, VISA)]),
        // CURRENCY_MISMATCH can not be on the same order as PRICE_MISMATCH of an EUR
        // product, so it is left out here.
    ];
    let raw = csv_order(&[], &rows);
    let (code, detail, parsed) = invalid(&raw);
    assert_eq!(code, ErrorCode::InvalidField);
    assert_eq!(
        detail_codes(&detail),
        vec![
            ErrorCode::InvalidField,
            ErrorCode::InconsistentOrder,
            ErrorCode::PanDetected,
            ErrorCode::UnknownSku,
            ErrorCode::PriceMismatch,
        ],
        "{detail}"
    );
    // The PAN repeated on every row is reported once.
    assert_eq!(detail.matches("holds a card number").count(), 1, "{detail}");
    assert!(!detail.contains(VISA));
    assert!(!detail.contains("PAYMENT_MISMATCH"));
    assert!(parsed.is_none());
}

#[test]
fn all_catalog_failures_are_listed() {
    let rows = [
        row(&[(Field::Sku, "NOPE")]),
        row(&[(Field::UnitPrice, "6.00")]),
        row(&[(Field::Sku, "JP-1"), (Field::UnitPrice, "15.00")]),
    ];
    let (code, detail, parsed) = invalid(&csv_order(&[], &rows));
    assert_eq!(code, ErrorCode::UnknownSku);
    assert_eq!(
        detail,
        "UNKNOWN_SKU: sku \"NOPE\" is not in the catalog (line 2); \
         CURRENCY_MISMATCH: currency EUR is not the catalog currency JPY of sku \"JP-1\" (line 4); \
         PRICE_MISMATCH: unit_price \"6.00\" of sku \"SKU-1\" is not the catalog price 5.00 (line 3)"
    );
    assert!(parsed.is_some());
}

#[test]
fn payment_mismatch_only_when_nothing_earlier_failed() {
    let (code, detail, parsed) = invalid(&one(&[(Field::PaymentAmount, "9.99")]));
    assert_eq!(code, ErrorCode::PaymentMismatch);
    assert_eq!(
        detail,
        "PAYMENT_MISMATCH: payment_amount 9.99 is not the order total 10.00 (sum of quantity x unit_price over 1 line(s))"
    );
    assert!(parsed.is_none());

    for over in [
        vec![(Field::Sku, "NOPE")],
        vec![(Field::UnitPrice, "6.00")],
        vec![(Field::Currency, "USD")],
        vec![(Field::PaymentRef, VISA)],
    ] {
        let mut over = over;
        over.push((Field::PaymentAmount, "1.23"));
        let (code, detail, _) = invalid(&one(&over));
        assert_ne!(code, ErrorCode::PaymentMismatch, "{detail}");
        assert!(!detail.contains("PAYMENT_MISMATCH"), "{detail}");
    }
}

#[test]
fn payment_mismatch_renders_the_currency_exponent() {
    let (_, detail, _) = invalid(&one(&[
        (Field::Sku, "KW-1"),
        (Field::UnitPrice, "1.234"),
        (Field::Currency, "KWD"),
        (Field::PaymentAmount, "2.5"),
    ]));
    assert!(
        detail.contains("payment_amount 2.500 is not the order total 2.468"),
        "{detail}"
    );
}

// ---------------------------------------------------------------- parsed

#[test]
fn parsed_comes_along_only_when_only_catalog_checks_failed() {
    for over in [
        vec![(Field::Sku, "NOPE")],
        vec![(Field::UnitPrice, "6.00"), (Field::PaymentAmount, "12.00")],
        vec![(Field::Currency, "USD")],
        // A wrong payment is not looked at once a catalog check failed.
        vec![(Field::Sku, "NOPE"), (Field::PaymentAmount, "1.00")],
    ] {
        let (code, detail, parsed) = invalid(&one(&over));
        assert!(code.is_catalog_check(), "{detail}");
        let p = parsed.unwrap_or_else(|| panic!("parsed order for {detail}"));
        assert_eq!(p.order_id, "A-1");
        assert_eq!(p.lines.len(), 1);
        assert_ne!(p.content_hash, [0; 16]);
    }
    // The parsed order equals the one a valid order gives, fingerprint included.
    let (_, _, p) = invalid(&one(&[
        (Field::UnitPrice, "6.00"),
        (Field::PaymentAmount, "12.00"),
    ]));
    let mut catalog = catalog();
    catalog.products.insert("SKU-1".into(), (600, "EUR".into()));
    let raw = one(&[(Field::UnitPrice, "6.00"), (Field::PaymentAmount, "12.00")]);
    match validate(&raw, &catalog) {
        Verdict::Valid(o) => assert_eq!(*p.unwrap(), o),
        other => panic!("{other:?}"),
    }

    let cases = vec![
        one(&[(Field::Sku, "NOPE"), (Field::PaymentRef, VISA)]),
        one(&[(Field::Sku, "NOPE"), (Field::CustomerEmail, "")]),
        one(&[(Field::Sku, "NOPE"), (Field::Quantity, "0")]),
        one(&[(Field::PaymentAmount, "1.00")]),
    ];
    for raw in cases {
        let (code, detail, parsed) = invalid(&raw);
        assert!(parsed.is_none(), "{code}: {detail}");
    }
}

// ---------------------------------------------------------------- failed_order

#[test]
fn failed_order_masks_free_text_and_extras_and_keeps_identifiers() {
    let mut r = row(&[
        (Field::OrderId, "4222222222222"),
        (Field::CustomerEmail, "4111-1111-1111-1111@x.co"),
        (Field::PaymentRef, "pay 5555 5555 5555 4444"),
        (Field::Sku, "4111111111111111"),
    ]);
    r.push(format!("note {VISA}"));
    r.push("'=SUM(A1)".into());
    let raw = csv_order(&["note", "formula"], &[r]);
    let (code, detail, _) = invalid(&raw);
    let f = failed_of(&raw, "in/orders.csv");
    assert_eq!(f.order_id.as_deref(), Some("4222222222222"));
    assert_eq!(f.code, code);
    assert_eq!(f.detail(), detail);
    assert_eq!(f.source_file, "in/orders.csv");
    assert_eq!(f.source_line, 2);
    assert!(f.body.raw.is_none());
    assert!(!f.body.no_items);
    assert_eq!(f.body.rows.len(), 1);
    let v = &f.body.rows[0].values;
    assert_eq!(v.len(), 10);
    assert_eq!(v[Field::OrderId.index()], "4222222222222");
    assert_eq!(v[Field::Sku.index()], VISA);
    assert_eq!(
        v[Field::CustomerEmail.index()],
        format!("{VISA_MASKED}@x.co")
    );
    assert_eq!(v[Field::PaymentRef.index()], "pay ************4444");
    assert_eq!(v[Field::Quantity.index()], "2");
    assert_eq!(
        f.body.rows[0].extra,
        vec![
            ("note".to_string(), format!("note {VISA_MASKED}")),
            // The formula-escape quote of CSV input is dropped.
            ("formula".to_string(), "=SUM(A1)".to_string()),
        ]
    );
}

#[test]
fn failed_order_keeps_every_row_trimmed() {
    let rows = [
        row(&[(Field::Quantity, " 3 "), (Field::PaymentAmount, "27.50")]),
        row(&[
            (Field::Sku, "SKU-2"),
            (Field::Quantity, "1"),
            (Field::UnitPrice, "12.50"),
            (Field::PaymentAmount, "27.50"),
        ]),
    ];
    let raw = csv_order(&[], &rows);
    let f = failed_order(&raw, ErrorCode::InsufficientStock, "a.csv");
    assert_eq!(f.body.rows.len(), 2);
    assert_eq!(f.body.rows[0].values[Field::Quantity.index()], "3");
    assert_eq!(f.body.rows[1].values[Field::Sku.index()], "SKU-2");
    assert!(f.body.rows.iter().all(|r| r.extra.is_empty()));
}

#[test]
fn failed_order_of_a_malformed_record_keeps_its_raw_text_masked() {
    let text = format!("{}\nX,{VISA},2\r\n", header().join(","));
    let raw = read(InputFormat::Csv, text.into_bytes()).remove(0);
    let (code, _, _) = invalid(&raw);
    assert_eq!(code, ErrorCode::MalformedRecord);
    let f = failed_of(&raw, "t.csv");
    assert_eq!(f.order_id, None);
    assert_eq!(f.source_line, 2);
    assert!(f.body.rows.is_empty());
    assert_eq!(
        f.body.raw.as_deref(),
        Some(format!("X,{VISA_MASKED},2").as_str())
    );
    assert!(f.detail().contains(&format!("X,{VISA_MASKED},2")));
}

#[test]
fn failed_order_of_a_jsonl_order_without_items() {
    let mut m = base_json();
    m.remove("items");
    m.insert("note".into(), json!(format!("x {VISA}")));
    let raw = jsonl_order(&Value::Object(m).to_string());
    let (code, _, _) = invalid(&raw);
    assert_eq!(code, ErrorCode::MissingField);
    let f = failed_of(&raw, "t.jsonl");
    assert!(f.body.no_items);
    assert_eq!(f.body.rows.len(), 1);
    assert_eq!(f.body.rows[0].values[Field::OrderId.index()], "A-1");
    assert_eq!(f.body.rows[0].values[Field::Sku.index()], "");
    assert_eq!(
        f.body.rows[0].extra,
        vec![("note".to_string(), format!("x {VISA_MASKED}"))]
    );
}

// ---------------------------------------------------------------- validate_chunk

#[test]
fn validate_chunk_keeps_input_order() {
    let rows: Vec<Vec<String>> = (0..200)
        .map(|i| {
            let id = format!("O-{i}");
            let pa = if i % 3 == 0 { "1.00" } else { "10.00" };
            row(&[(Field::OrderId, &id), (Field::PaymentAmount, pa)])
        })
        .collect();
    let orders = csv_orders(&[], &rows);
    assert_eq!(orders.len(), 200);
    let singles: Vec<Verdict> = orders.iter().map(check).collect();
    let checked = validate_chunk(orders, &catalog());
    for (i, (c, v)) in checked.iter().zip(&singles).enumerate() {
        assert_eq!(c.raw.order_id(), Some(format!("O-{i}").as_str()));
        assert_eq!(&c.verdict, v);
        assert_eq!(matches!(c.verdict, Verdict::Valid(_)), i % 3 != 0);
    }
}

// ---------------------------------------------------------------- properties

fn field_value(i: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(BASE[i].to_string()),
        2 => any::<String>(),
        2 => "[0-9 .*@eE+,:-]{0,24}",
        1 => Just(VISA.to_string()),
    ]
}

fn row_strategy() -> impl Strategy<Value = Vec<String>> {
    let fields: [_; 10] = std::array::from_fn(field_value);
    fields.prop_map(|a| a.to_vec())
}

/// Validation is total and deterministic: no panic, the same verdict twice, and a
/// verdict that only uses the codes validation may give.
fn check_properties(raw: &RawOrder) -> Result<(), TestCaseError> {
    let a = check(raw);
    let b = check(raw);
    prop_assert_eq!(&a, &b);
    if let Verdict::Invalid { code, problems, .. } = &a {
        prop_assert!(*code <= ErrorCode::PaymentMismatch);
        let detail = failed_order_of(raw, problems.clone(), "t.csv")
            .detail()
            .into_owned();
        prop_assert!(detail.starts_with(code.as_str()) || *code == ErrorCode::MalformedRecord);
    }
    Ok(())
}

proptest! {
    #[test]
    fn validate_never_panics_on_csv_rows(
        rows in proptest::collection::vec(row_strategy(), 1..4),
        extra in proptest::option::of(any::<String>()),
    ) {
        let (cols, rows): (Vec<&str>, Vec<Vec<String>>) = match &extra {
            Some(e) => (
                vec!["note"],
                rows.into_iter()
                    .map(|mut r| {
                        r.push(e.clone());
                        r
                    })
                    .collect(),
            ),
            None => (vec![], rows),
        };
        for raw in csv_orders(&cols, &rows) {
            check_properties(&raw)?;
        }
    }

    #[test]
    fn validate_never_panics_on_jsonl_objects(
        order in row_strategy(),
        items in proptest::collection::vec(row_strategy(), 0..3),
    ) {
        let mut m = serde_json::Map::new();
        for f in Field::ALL.into_iter().filter(|f| !f.is_item()) {
            m.insert(f.name().into(), json!(order[f.index()]));
        }
        let items: Vec<Value> = items
            .iter()
            .map(|r| json!({"sku": r[3], "quantity": r[4], "unit_price": r[5]}))
            .collect();
        m.insert("items".into(), Value::Array(items));
        let raw = jsonl_order(&Value::Object(m).to_string());
        check_properties(&raw)?;
    }

    #[test]
    fn validate_never_panics_on_arbitrary_lines(
        csv_body in proptest::collection::vec(any::<u8>(), 0..300),
        json_line in "[{}\\[\\]\":,0-9a-z .eE+-]{0,80}",
    ) {
        let mut bytes = format!("{}\n", header().join(",")).into_bytes();
        bytes.extend_from_slice(&csv_body);
        let reader = open_orders(source("t.csv", bytes), InputFormat::Csv, &crate::read::ReadOptions::default()).unwrap();
        for raw in reader.flatten() {
            check_properties(&raw)?;
        }
        let reader = open_orders(source("t.jsonl", json_line.into_bytes()), InputFormat::Jsonl, &crate::read::ReadOptions::default()).unwrap();
        for raw in reader.flatten() {
            check_properties(&raw)?;
        }
    }
}

#[test]
fn a_record_without_rows_is_malformed_not_a_panic() {
    let raw = RawOrder {
        source: std::sync::Arc::from("t.csv"),
        failure: None,
        line: 7,
        body: crate::read::RawBody::Rows {
            columns: std::sync::Arc::new(crate::read::Columns::positional(Vec::new(), false)),
            rows: Vec::new(),
            no_items: false,
        },
        notes: Vec::new(),
    };
    let (code, detail, _) = invalid(&raw);
    assert_eq!(code, ErrorCode::MalformedRecord);
    assert!(detail.contains("no rows"), "{detail}");
}
