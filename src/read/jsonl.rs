//! JSONL orders: one JSON object per line, items in an array. Numbers are kept
//! as their exact text (serde_json's arbitrary precision), never as floats.

use std::sync::Arc;

use csv::StringRecord;
use std::borrow::Cow;

use serde_json::value::RawValue;

use super::{BoundedLine, Columns, InputError, RawBody, RawOrder, RawRow, ReadOptions, Source};
use crate::model::order::{Field, Message, Problem, REPORT_COLUMNS};
use crate::model::pan::mask_pans;
use crate::model::ErrorCode;

pub(super) struct JsonlOrders {
    source: Source,
    line: u64,
    buf: Vec<u8>,
    plain: Arc<Columns>,
    done: bool,
    /// The longest line read as an order (`--max-record-bytes`).
    limit: usize,
    /// Lines are only split off, parsed later (`RawOrder::parse_deferred`).
    defer: bool,
}

impl JsonlOrders {
    /// JSONL has no header: of `opts`, the time zone and the record bound
    /// apply (title lines and column names are for files with a header).
    pub(super) fn new(source: Source, opts: &ReadOptions, defer: bool) -> Self {
        JsonlOrders {
            source,
            line: 0,
            buf: Vec::new(),
            plain: Arc::new(Columns {
                zone: opts.timezone,
                ..Columns::positional(Vec::new(), false)
            }),
            done: false,
            limit: opts.max_record_bytes,
            defer,
        }
    }
}

impl Iterator for JsonlOrders {
    type Item = Result<RawOrder, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            match super::read_line_bounded(&mut self.source.reader, &mut self.buf, self.limit) {
                Ok(BoundedLine::End) => self.done = true,
                Ok(BoundedLine::Overlong) => {
                    self.line += 1;
                    let reason = format!(
                        "the line is longer than {} bytes (--max-record-bytes)",
                        self.limit
                    );
                    return Some(Ok(RawOrder::malformed(self.line, &self.buf, reason)));
                }
                Ok(BoundedLine::Endless) => {
                    self.done = true;
                    return Some(Err(InputError::Overlong {
                        path: self.source.path.clone(),
                        line: self.line + 1,
                        limit: (self.limit as u64).saturating_mul(super::SKIP_FACTOR),
                    }));
                }
                Ok(BoundedLine::Line) => {
                    self.line += 1;
                    let mut text: &[u8] = &self.buf;
                    if self.line == 1 {
                        text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
                    }
                    if text.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    if self.defer {
                        return Some(Ok(RawOrder {
                            source: Arc::from(""),
                            failure: None,
                            line: self.line,
                            body: RawBody::JsonLine {
                                text: text.to_vec(),
                                columns: Arc::clone(&self.plain),
                            },
                            notes: Vec::new(),
                        }));
                    }
                    return Some(Ok(parse_line(text, self.line, &self.plain)));
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(InputError::Read {
                        path: self.source.path.clone(),
                        line: self.line + 1,
                        source: e,
                    }));
                }
            }
        }
        None
    }
}

const ORDER_FIELDS: [Field; 7] = [
    Field::OrderId,
    Field::PlacedAt,
    Field::CustomerEmail,
    Field::Currency,
    Field::PaymentMethod,
    Field::PaymentRef,
    Field::PaymentAmount,
];
const ITEM_FIELDS: [Field; 3] = [Field::Sku, Field::Quantity, Field::UnitPrice];

/// Turn one JSON line into an order with one row per item, in the same shape
/// as CSV rows, so one validation serves both formats.
///
/// Values are taken as their raw JSON text (numbers exactly as written) and
/// borrowed from the line where they can be: no JSON tree is built.
pub(super) fn parse_line(text: &[u8], line: u64, plain: &Arc<Columns>) -> RawOrder {
    let object = match parse_object(text) {
        Ok(o) => o,
        Err(why) => return RawOrder::malformed(line, text, why),
    };
    let mut notes = Vec::new();
    let mut order: [Cow<str>; Field::COUNT] = Default::default();
    for f in ORDER_FIELDS {
        order[f.index()] = scalar(object.get(f.name()), &|| f.name().to_string(), &mut notes);
    }
    let (extras, extra_values) = extra_members(&object);
    let (items, no_items) = match items_of(&object, &mut notes) {
        Ok(found) => found,
        Err(why) => return RawOrder::malformed(line, text, why),
    };
    let columns = if extras.is_empty() {
        Arc::clone(plain)
    } else {
        Arc::new(Columns {
            zone: plain.zone,
            ..Columns::positional(extras, false)
        })
    };
    let rows = items
        .into_iter()
        .map(|item| RawRow {
            line,
            record: record_of(&order, &item, &extra_values),
        })
        .collect();
    // A fed-back failed report names the stored failure of each order.
    let failure = object.get("failure_id").and_then(|v| match Json::of(v) {
        Json::Str(s) => crate::model::failure::parse_failure_label(s.trim()),
        _ => None,
    });
    RawOrder {
        source: Arc::from(""),
        failure,
        line,
        body: RawBody::Rows {
            columns,
            rows,
            no_items,
        },
        notes,
    }
}

/// The line as a JSON object, or why it is a malformed record.
fn parse_object(text: &[u8]) -> Result<Object<'_>, String> {
    let text = std::str::from_utf8(text).map_err(|_| "invalid JSON: not valid UTF-8")?;
    serde_json::from_str::<Object>(text).map_err(|e| {
        // Valid JSON that is not an object says so; anything else is the parser's word.
        let value_start = [
            '[', '"', 't', 'f', 'n', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9',
        ];
        if e.is_data() && text.trim_start().starts_with(value_start) {
            "not a JSON object".to_string()
        } else {
            format!("invalid JSON: {e}")
        }
    })
}

/// The members that are not ours, named as the CSV reader names extra
/// columns (trimmed, lower case, unique, never one of ours, which would
/// clash in a report), with their values.
fn extra_members<'a>(object: &Object<'a>) -> (Vec<String>, Vec<Cow<'a, str>>) {
    let mut extras: Vec<String> = Vec::new();
    let mut values: Vec<Cow<str>> = Vec::new();
    for (k, v) in &object.0 {
        // Our own members are most of them: told apart without building a name.
        if is_reserved(k) {
            continue;
        }
        let name = mask_pans(&k.trim().to_ascii_lowercase()).into_owned();
        let reserved = name == "items"
            || Field::from_name(&name).is_some()
            || REPORT_COLUMNS.contains(&name.as_str());
        if !reserved && !extras.contains(&name) {
            extras.push(name);
            values.push(match Json::of(v) {
                Json::Str(s) => s,
                Json::Null => Cow::Borrowed(""),
                _ => Cow::Borrowed(v.get()),
            });
        }
    }
    (extras, values)
}

/// The item values of each row (one empty row when the order has none:
/// validation reports it), and whether it had none; or why the line is
/// malformed.
type Items<'a> = (Vec<[Cow<'a, str>; 3]>, bool);

fn items_of<'a>(object: &Object<'a>, notes: &mut Vec<Problem>) -> Result<Items<'a>, String> {
    let mut items: Vec<[Cow<str>; 3]> = Vec::new();
    match object.get("items").map(Json::of) {
        None | Some(Json::Null) => {}
        Some(Json::Array(raw)) => {
            let list = serde_json::from_str::<Vec<&RawValue>>(raw)
                .map_err(|e| format!("invalid JSON: {e}"))?;
            for (i, item) in list.into_iter().enumerate() {
                items.push(item_of(item, i, notes)?);
            }
        }
        Some(_) => notes.push(Problem::new(
            ErrorCode::InvalidField,
            Message::ItemsNotArray,
        )),
    }
    let no_items = items.is_empty();
    if no_items {
        items.push(Default::default());
    }
    Ok((items, no_items))
}

/// One element of `items`: its values, or empty values and a note when it
/// is not an object.
fn item_of<'a>(
    item: &'a RawValue,
    i: usize,
    notes: &mut Vec<Problem>,
) -> Result<[Cow<'a, str>; 3], String> {
    match Json::of(item) {
        Json::Object(raw) => serde_json::from_str::<Object>(raw)
            .map(|obj| item_values(&obj, i, notes))
            .map_err(|e| format!("invalid JSON: {e}")),
        _ => {
            notes.push(Problem::new(
                ErrorCode::InvalidField,
                format!("items[{i}] is not an object"),
            ));
            Ok(Default::default())
        }
    }
}

/// One row as CSV would give it: the order's fields, the item's, the extras.
fn record_of(
    order: &[Cow<str>; Field::COUNT],
    item: &[Cow<str>; 3],
    extras: &[Cow<str>],
) -> StringRecord {
    let mut record = StringRecord::with_capacity(128, Field::COUNT + extras.len());
    for f in Field::ALL {
        match ITEM_FIELDS.iter().position(|x| *x == f) {
            Some(i) => record.push_field(&item[i]),
            None => record.push_field(&order[f.index()]),
        }
    }
    for v in extras {
        record.push_field(v);
    }
    record
}

/// A JSON object's members in order, values as raw JSON text. A key given
/// twice is an error: it is ambiguous (another reader may take the other value).
struct Object<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> Object<'a> {
    /// A member by name, matched as CSV headers are: trimmed, any case.
    fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0
            .iter()
            .find(|(k, _)| same_key(k, key))
            .map(|(_, v)| *v)
    }
}

fn same_key(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

impl<'de> serde::Deserialize<'de> for Object<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Object<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Object<'de>, A::Error> {
                let mut members: Vec<(Cow<'de, str>, &'de RawValue)> = Vec::new();
                while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
                    if members.iter().any(|(m, _)| same_key(m, &k)) {
                        return Err(serde::de::Error::custom(format!("duplicate key {k:?}")));
                    }
                    members.push((k, map.next_value()?));
                }
                Ok(Object(members))
            }
        }
        d.deserialize_map(V)
    }
}

/// An object key, borrowed from the line unless it holds escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// A raw JSON value by kind.
enum Json<'a> {
    Null,
    Str(Cow<'a, str>),
    Number(&'a str),
    Bool,
    Array(&'a str),
    Object(&'a str),
}

impl<'a> Json<'a> {
    fn of(v: &'a RawValue) -> Json<'a> {
        let raw = v.get();
        match raw.as_bytes().first() {
            Some(b'"') => {
                let inner = &raw[1..raw.len() - 1];
                if inner.contains('\\') {
                    // Escapes: let serde_json decode them (the text is already valid JSON).
                    Json::Str(Cow::Owned(
                        serde_json::from_str::<String>(raw).unwrap_or_default(),
                    ))
                } else {
                    Json::Str(Cow::Borrowed(inner))
                }
            }
            Some(b'n') => Json::Null,
            Some(b't' | b'f') => Json::Bool,
            Some(b'[') => Json::Array(raw),
            Some(b'{') => Json::Object(raw),
            _ => Json::Number(raw),
        }
    }
}

/// A member name that is one of ours (a field, `items`, a report column),
/// as the extras' names are compared: trimmed, any ASCII case.
fn is_reserved(key: &str) -> bool {
    let key = key.trim();
    key.eq_ignore_ascii_case("items")
        || Field::ALL
            .iter()
            .any(|f| key.eq_ignore_ascii_case(f.name()))
        || REPORT_COLUMNS.iter().any(|c| key.eq_ignore_ascii_case(c))
}

fn item_values<'a>(obj: &Object<'a>, i: usize, notes: &mut Vec<Problem>) -> [Cow<'a, str>; 3] {
    ITEM_FIELDS.map(|f| {
        scalar(
            obj.get(f.name()),
            &|| format!("items[{i}].{}", f.name()),
            notes,
        )
    })
}

/// A JSON value as field text: strings as they are, numbers as their exact
/// text, absent or null as empty (a missing field); anything else is invalid.
/// `name` names the value in the note of an invalid one (built only then).
fn scalar<'a>(
    v: Option<&'a RawValue>,
    name: &dyn Fn() -> String,
    notes: &mut Vec<Problem>,
) -> Cow<'a, str> {
    let Some(v) = v else {
        return Cow::Borrowed("");
    };
    let kind = match Json::of(v) {
        Json::Null => return Cow::Borrowed(""),
        Json::Str(s) => return s,
        Json::Number(n) => return Cow::Borrowed(n),
        Json::Bool => "a boolean",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    };
    notes.push(Problem::new(
        ErrorCode::InvalidField,
        format!("{} must be a string or a number, not {kind}", name()),
    ));
    Cow::Borrowed(v.get())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::InputMeter;

    fn read_all(text: &str) -> Vec<RawOrder> {
        read_as(text, false)
    }

    fn read_as(text: &str, defer: bool) -> Vec<RawOrder> {
        let src = Source {
            path: "t.jsonl".into(),
            reader: Box::new(std::io::Cursor::new(text.as_bytes().to_vec())),
            meter: Arc::new(InputMeter::default()),
        };
        JsonlOrders::new(src, &ReadOptions::default(), defer)
            .map(|r| r.unwrap())
            .collect()
    }

    #[test]
    fn a_line_parsed_later_is_the_order_parsed_at_once() {
        let text = "\u{feff}{\"order_id\":\"A\",\"note\":\"hi\",\"failure_id\":\"F3-9\",\"items\":[{\"sku\":\"S1\",\"quantity\":2,\"unit_price\":\"5.05\"}]}\n\n  \n[1]\n{bad\n{\"order_id\":true,\"items\":7}\n";
        let now = read_as(text, false);
        let later = read_as(text, true);
        assert_eq!(later.len(), now.len());
        for (mut l, n) in later.into_iter().zip(&now) {
            assert!(matches!(l.body, RawBody::JsonLine { .. }));
            assert_eq!(l.order_id(), None, "nothing is known before the parse");
            l.parse_deferred();
            assert_eq!(format!("{l:?}"), format!("{n:?}"));
        }
    }

    #[test]
    fn an_object_becomes_one_row_per_item_with_exact_number_text() {
        let orders = read_all(
            "{\"order_id\":\"A\",\"payment_amount\":10.10,\"note\":\"hi\",\"items\":[{\"sku\":\"S1\",\"quantity\":2,\"unit_price\":\"5.05\"},{\"sku\":\"S2\",\"quantity\":1,\"unit_price\":0.00}]}\n\n[1]\n{bad\n",
        );
        assert_eq!(orders.len(), 3);
        let RawBody::Rows {
            columns,
            rows,
            no_items,
        } = &orders[0].body
        else {
            panic!()
        };
        assert!(!no_items);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].get(columns, Field::PaymentAmount), "10.10");
        assert_eq!(rows[1].get(columns, Field::UnitPrice), "0.00");
        assert_eq!(rows[1].get(columns, Field::Quantity), "1");
        assert_eq!(rows[1].get(columns, Field::OrderId), "A");
        assert_eq!(columns.extras, vec![(10, "note".to_string())]);
        assert_eq!(orders[1].line, 3);
        assert!(
            matches!(&orders[1].body, RawBody::Malformed { reason, .. } if reason.contains("object"))
        );
        assert!(matches!(&orders[2].body, RawBody::Malformed { raw, .. } if raw == "{bad"));
    }

    #[test]
    fn missing_items_and_odd_types_become_notes() {
        let orders =
            read_all("{\"order_id\":\"A\",\"currency\":true}\n{\"order_id\":\"B\",\"items\":[]}\n");
        // Missing items are reported by validation; here only the odd type is a note.
        let codes: Vec<_> = orders[0].notes.iter().map(|p| p.code).collect();
        assert_eq!(codes, [ErrorCode::InvalidField]);
        assert!(matches!(
            &orders[0].body,
            RawBody::Rows { no_items: true, .. }
        ));
        assert!(matches!(
            &orders[1].body,
            RawBody::Rows { no_items: true, .. }
        ));
    }

    #[test]
    fn deep_nesting_is_a_malformed_record_not_a_crash() {
        let deep = format!("{}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let orders = read_all(&deep);
        assert!(matches!(&orders[0].body, RawBody::Malformed { .. }));
    }

    #[test]
    fn keys_match_as_csv_headers_do_and_twice_is_malformed() {
        let orders = read_all(
            "{\"Order_ID\":\"K1\",\" SKU \":\"x\",\"items\":[{\"SKU\":\"S1\",\"Quantity\":2}]}\n{\"order_id\":\"A\",\"ORDER_ID\":\"B\"}\n",
        );
        let RawBody::Rows { columns, rows, .. } = &orders[0].body else {
            panic!()
        };
        assert_eq!(rows[0].get(columns, Field::OrderId), "K1");
        assert_eq!(rows[0].get(columns, Field::Sku), "S1");
        assert_eq!(rows[0].get(columns, Field::Quantity), "2");
        assert!(
            matches!(&orders[1].body, RawBody::Malformed { reason, .. } if reason.contains("duplicate key")),
            "{:?}",
            orders[1].body
        );
    }
}
