//! JSONL orders: one JSON object per line, items in an array. Numbers are kept
//! as their exact text (serde_json's arbitrary precision), never as floats.

use std::io::BufRead;
use std::sync::Arc;

use csv::StringRecord;
use serde_json::{Map, Value};

use super::{Columns, InputError, RawBody, RawOrder, RawRow, Source};
use crate::model::order::{Field, Problem, REPORT_COLUMNS};
use crate::model::ErrorCode;

/// The note for `items` that is not an array.
pub const ITEMS_NOT_ARRAY: &str = "items is not an array";

pub(super) struct JsonlOrders {
    source: Source,
    line: u64,
    buf: Vec<u8>,
    plain: Arc<Columns>,
    done: bool,
}

impl JsonlOrders {
    pub(super) fn new(source: Source) -> Self {
        JsonlOrders {
            source,
            line: 0,
            buf: Vec::new(),
            plain: Arc::new(Columns::positional(Vec::new(), false)),
            done: false,
        }
    }
}

impl Iterator for JsonlOrders {
    type Item = Result<RawOrder, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            self.buf.clear();
            match self.source.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => self.done = true,
                Ok(_) => {
                    self.line += 1;
                    let mut text: &[u8] = &self.buf;
                    if self.line == 1 {
                        text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
                    }
                    if text.iter().all(u8::is_ascii_whitespace) {
                        continue;
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
fn parse_line(text: &[u8], line: u64, plain: &Arc<Columns>) -> RawOrder {
    let map = match serde_json::from_slice::<Value>(text) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return RawOrder::malformed(line, text, "not a JSON object"),
        Err(e) => return RawOrder::malformed(line, text, format!("invalid JSON: {e}")),
    };
    // A key given twice is ambiguous (another reader may take the other value).
    if let Err(e) = no_duplicate_keys(text) {
        return RawOrder::malformed(line, text, format!("invalid JSON: {e}"));
    }
    let mut notes = Vec::new();
    let mut order = [""; 10].map(String::from);
    for f in ORDER_FIELDS {
        order[f.index()] = scalar(map.get(f.name()), f.name(), &mut notes);
    }
    let mut extras = Vec::new();
    let mut extra_values = Vec::new();
    for (k, v) in &map {
        // Extra names as the CSV reader makes them: trimmed, lower case, unique,
        // and never one of ours (which would clash in a report).
        let name = k.trim().to_ascii_lowercase();
        let reserved = name == "items"
            || Field::from_name(&name).is_some()
            || REPORT_COLUMNS.contains(&name.as_str());
        if !reserved && !extras.contains(&name) {
            extras.push(name);
            extra_values.push(match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            });
        }
    }
    let mut items: Vec<[String; 3]> = Vec::new();
    let mut no_items = false;
    match map.get("items") {
        // Validation reports an order without items (MISSING_FIELD).
        None | Some(Value::Null) => no_items = true,
        Some(Value::Array(a)) if a.is_empty() => no_items = true,
        Some(Value::Array(a)) => {
            for (i, item) in a.iter().enumerate() {
                match item {
                    Value::Object(obj) => items.push(item_values(obj, i, &mut notes)),
                    _ => {
                        notes.push(Problem::new(
                            ErrorCode::InvalidField,
                            format!("items[{i}] is not an object"),
                        ));
                        items.push(Default::default());
                    }
                }
            }
        }
        Some(_) => {
            no_items = true;
            notes.push(Problem::new(ErrorCode::InvalidField, ITEMS_NOT_ARRAY));
        }
    }
    if no_items {
        items.push(Default::default());
    }
    let columns = if extras.is_empty() {
        Arc::clone(plain)
    } else {
        Arc::new(Columns::positional(extras, false))
    };
    let rows = items
        .into_iter()
        .map(|item| {
            let mut record = StringRecord::with_capacity(128, 10 + extra_values.len());
            for f in Field::ALL {
                match ITEM_FIELDS.iter().position(|x| *x == f) {
                    Some(i) => record.push_field(&item[i]),
                    None => record.push_field(&order[f.index()]),
                }
            }
            for v in &extra_values {
                record.push_field(v);
            }
            RawRow { line, record }
        })
        .collect();
    RawOrder {
        file: 0,
        line,
        body: RawBody::Rows {
            columns,
            rows,
            no_items,
        },
        notes,
    }
}

/// Fails on an object, at any depth, that has a key twice.
fn no_duplicate_keys(text: &[u8]) -> Result<(), serde_json::Error> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_slice(text);
    NoDuplicateKeys.deserialize(&mut de)?;
    de.end()
}

#[derive(Clone, Copy)]
struct NoDuplicateKeys;

impl<'de> serde::de::DeserializeSeed<'de> for NoDuplicateKeys {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for NoDuplicateKeys {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut keys: Vec<String> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if keys.contains(&key) {
                return Err(serde::de::Error::custom(format!("duplicate key {key:?}")));
            }
            map.next_value_seed(self)?;
            keys.push(key);
        }
        Ok(())
    }
}

fn item_values(obj: &Map<String, Value>, i: usize, notes: &mut Vec<Problem>) -> [String; 3] {
    ITEM_FIELDS.map(|f| {
        scalar(
            obj.get(f.name()),
            &format!("items[{i}].{}", f.name()),
            notes,
        )
    })
}

/// A JSON value as field text: strings as they are, numbers as their exact
/// text, absent or null as empty (a missing field); anything else is invalid.
fn scalar(v: Option<&Value>, name: &str, notes: &mut Vec<Problem>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => {
            notes.push(Problem::new(
                ErrorCode::InvalidField,
                format!("{name} must be a string or a number, not {}", kind(other)),
            ));
            other.to_string()
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "a boolean",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
        _ => "this value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::InputMeter;

    fn read_all(text: &str) -> Vec<RawOrder> {
        let src = Source {
            path: "t.jsonl".into(),
            reader: Box::new(std::io::Cursor::new(text.as_bytes().to_vec())),
            meter: Arc::new(InputMeter::default()),
        };
        JsonlOrders::new(src).map(|r| r.unwrap()).collect()
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
}
