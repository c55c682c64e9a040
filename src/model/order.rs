//! Orders as the pipeline sees them: the input columns, a validated order, and
//! the accepted and failed records the reports and the database hold.

use serde::{Deserialize, Serialize};

/// The ten input columns, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    OrderId,
    PlacedAt,
    CustomerEmail,
    Sku,
    Quantity,
    UnitPrice,
    Currency,
    PaymentMethod,
    PaymentRef,
    PaymentAmount,
}

impl Field {
    pub const ALL: [Field; 10] = [
        Field::OrderId,
        Field::PlacedAt,
        Field::CustomerEmail,
        Field::Sku,
        Field::Quantity,
        Field::UnitPrice,
        Field::Currency,
        Field::PaymentMethod,
        Field::PaymentRef,
        Field::PaymentAmount,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Field::OrderId => "order_id",
            Field::PlacedAt => "placed_at",
            Field::CustomerEmail => "customer_email",
            Field::Sku => "sku",
            Field::Quantity => "quantity",
            Field::UnitPrice => "unit_price",
            Field::Currency => "currency",
            Field::PaymentMethod => "payment_method",
            Field::PaymentRef => "payment_ref",
            Field::PaymentAmount => "payment_amount",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Item fields vary per line; all others are repeated on every row of an order.
    pub fn is_item(self) -> bool {
        matches!(self, Field::Sku | Field::Quantity | Field::UnitPrice)
    }

    /// Free-text fields are scanned for card numbers (identifiers and numbers are not).
    pub fn is_free_text(self) -> bool {
        matches!(self, Field::CustomerEmail | Field::PaymentRef)
    }
}

/// A problem found in an order: its code and a message naming the field, the
/// value (masked where it is a card number) and the rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub code: crate::model::ErrorCode,
    pub message: String,
    /// The row (0-based, of a multi-row order) the problem is about; `None`
    /// for the order as a whole. The failed report puts each problem on its row.
    pub row: Option<u32>,
}

impl Problem {
    pub fn new(code: crate::model::ErrorCode, message: impl Into<String>) -> Self {
        Problem {
            code,
            message: message.into(),
            row: None,
        }
    }

    pub fn on_row(code: crate::model::ErrorCode, row: usize, message: impl Into<String>) -> Self {
        Problem {
            row: Some(u32::try_from(row).unwrap_or(u32::MAX)),
            ..Problem::new(code, message)
        }
    }
}

/// A catalog product; prices in minor units of its currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub sku: String,
    pub name: String,
    pub unit_price: i64,
    pub currency: String,
    pub on_hand: i64,
}

/// Columns our own failed report appends; on input they are not extra columns.
pub const REPORT_COLUMNS: [&str; 5] = [
    "error_code",
    "error_detail",
    "source_file",
    "source_line",
    "failure_id",
];

pub const PAYMENT_METHODS: [&str; 5] = [
    "card",
    "paypal",
    "bank_transfer",
    "gift_card",
    "cash_on_delivery",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub sku: String,
    pub quantity: i64,
    /// Minor units of the order's currency.
    pub unit_price: i64,
}

/// An order that passed every check that needs neither the database's order
/// history nor the stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidOrder {
    pub order_id: String,
    pub placed_at: String,
    pub customer_email: String,
    pub currency: String,
    pub payment_method: String,
    pub payment_ref: String,
    pub payment_amount: i64,
    pub lines: Vec<Line>,
    pub total: i64,
    pub units: i64,
    /// Fingerprint of the parsed content: equal for the same order written
    /// differently (CSV or JSONL, `Z` or `+00:00`, `5` or `5.00`).
    pub content_hash: [u8; 16],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Accepted,
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Accepted => "accepted",
            Status::Skipped => "skipped",
        }
    }
}

/// One row of the accepted report: borrowed (`&str`) on the hot path, owned
/// when read back from the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedRow<S = String> {
    pub order_id: S,
    pub status: Status,
    pub source_file: S,
    pub source_line: u64,
    pub placed_at: S,
    pub customer_email: S,
    pub currency: S,
    pub lines: u64,
    pub units: i64,
    /// Minor units; rendered with the currency's exponent.
    pub total: i64,
    pub payment_method: S,
}

impl<'a> AcceptedRow<&'a str> {
    pub fn new(o: &'a ValidOrder, status: Status, source_file: &'a str, source_line: u64) -> Self {
        AcceptedRow {
            order_id: &o.order_id,
            status,
            source_file,
            source_line,
            placed_at: &o.placed_at,
            customer_email: &o.customer_email,
            currency: &o.currency,
            lines: o.lines.len() as u64,
            units: o.units,
            total: o.total,
            payment_method: &o.payment_method,
        }
    }
}

/// One input row of a failed order, card numbers already masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedRow {
    /// The ten columns of [`Field::ALL`], as read (trimmed).
    pub values: Vec<String>,
    /// The row's physical line (0 when not known).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub line: u64,
    /// Extra input columns, name and value, in input order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<(String, String)>,
    /// The problems of this row (the first row also has the order's own), as
    /// the CSV failed report shows them: each row carries only its own.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How an input file laid its header out, kept when the run read it as a
/// shop export (`--skip-rows`, `--map`): the failed report writes the rows
/// back the same way, so that a fixed report goes back in with the same flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceLayout {
    /// Lines before the header (`--skip-rows`). Always written: the spool
    /// of checked orders is postcard, which cannot skip a field.
    #[serde(default)]
    pub skip_rows: u64,
    /// The file's columns, in its order (without the columns our failed
    /// report adds, which the report puts at the end again).
    pub columns: Vec<SourceColumn>,
}

/// One column of an input file's header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceColumn {
    /// One of the ten fields, under the file's own name for it.
    Field { field: Field, name: String },
    /// An extra column, by the name the reader gave it.
    Extra(String),
}

/// What is kept of a failed order's input: enough to write it back as input.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FailedBody {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rows: Vec<FailedRow>,
    /// JSONL order without items: the rows carry the order-level fields only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_items: bool,
    /// Raw text of a record that could not be parsed (masked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    /// The file's own layout, when the failed report is to keep it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<SourceLayout>,
}

/// A failed order, as the failed report and the database hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedOrder {
    /// The order_id as read, when there was one.
    pub order_id: Option<String>,
    pub code: crate::model::ErrorCode,
    pub detail: String,
    pub source_file: String,
    pub source_line: u64,
    pub body: FailedBody,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_in_report_order_and_named_as_the_columns() {
        let names: Vec<_> = Field::ALL.iter().map(|f| f.name()).collect();
        assert_eq!(
            names,
            [
                "order_id",
                "placed_at",
                "customer_email",
                "sku",
                "quantity",
                "unit_price",
                "currency",
                "payment_method",
                "payment_ref",
                "payment_amount"
            ]
        );
        for (i, f) in Field::ALL.iter().enumerate() {
            assert_eq!(f.index(), i);
            assert_eq!(Field::from_name(f.name()), Some(*f));
        }
    }

    #[test]
    fn failed_body_serializes_compactly_and_round_trips() {
        let body = FailedBody {
            rows: vec![FailedRow {
                values: vec!["A".into(); 10],
                line: 0,
                extra: vec![("note".into(), "x".into())],
                detail: String::new(),
            }],
            no_items: false,
            layout: None,
            raw: None,
        };
        let text = serde_json::to_string(&body).unwrap();
        assert!(!text.contains("no_items"));
        assert_eq!(serde_json::from_str::<FailedBody>(&text).unwrap(), body);
    }
}
