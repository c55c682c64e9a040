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
    /// How many fields an order row has.
    pub const COUNT: usize = 10;

    pub const ALL: [Field; Field::COUNT] = [
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

/// A problem found in an order: its code, what it says, and the row it is
/// about. The message never holds the row's place in the file: that is added
/// once, where the whole detail is rendered (see [`FailedOrder::detail`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub code: crate::model::ErrorCode,
    pub message: Message,
    /// The row (0-based, of a multi-row order) the problem is about; `None`
    /// for the order as a whole. The failed report puts each problem on its row.
    pub row: Option<u32>,
}

/// What a problem says: a message naming the field, the value (masked where
/// it is a card number) and the rule; or, for the checks that every line of
/// a bad night may fail (the catalog's), only the fact its row does not hold
/// already: the text is rendered from it and the row's values when shown, so
/// a failure record keeps each value once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    #[serde(rename = "t")]
    Text(String),
    /// UNKNOWN_SKU: the row's sku is not in the catalog.
    #[serde(rename = "u")]
    UnknownSku,
    /// CURRENCY_MISMATCH: the order's currency is not this one, the catalog
    /// currency of the row's sku.
    #[serde(rename = "c")]
    CatalogCurrency(String),
    /// PRICE_MISMATCH: the row's unit_price is not this one, the catalog
    /// price of its sku (formatted).
    #[serde(rename = "p")]
    CatalogPrice(String),
    /// MALFORMED_RECORD: why the record could not be parsed; its raw text
    /// (kept in the failure's body) follows it.
    #[serde(rename = "m")]
    Unparsed(String),
    /// INVALID_FIELD: a JSONL order's `items` is there but is not an array
    /// (which also stands for its missing items: one problem, not two).
    #[serde(rename = "i")]
    ItemsNotArray,
}

impl From<String> for Message {
    fn from(s: String) -> Self {
        Message::Text(s)
    }
}

impl From<&str> for Message {
    fn from(s: &str) -> Self {
        Message::Text(s.to_string())
    }
}

impl Problem {
    pub fn new(code: crate::model::ErrorCode, message: impl Into<Message>) -> Self {
        Problem {
            code,
            message: message.into(),
            row: None,
        }
    }

    pub fn on_row(code: crate::model::ErrorCode, row: usize, message: impl Into<Message>) -> Self {
        Problem {
            row: Some(u32::try_from(row).unwrap_or(u32::MAX)),
            ..Problem::new(code, message)
        }
    }

    /// The message as text, `body` giving the values a fact refers to.
    pub fn text<'a>(&'a self, body: &FailedBody) -> std::borrow::Cow<'a, str> {
        use crate::model::text::show;
        let value = |row: usize, f: Field| {
            body.rows
                .get(row)
                .and_then(|r| r.values.get(f.index()))
                .map_or("", String::as_str)
        };
        let r = self.row.map_or(0, |r| r as usize);
        match &self.message {
            Message::Text(t) => t.into(),
            Message::UnknownSku => format!(
                "sku {} is not in the catalog",
                show(value(r, Field::Sku), false)
            )
            .into(),
            Message::CatalogCurrency(cur) => format!(
                "currency {} is not the catalog currency {cur} of sku {}",
                value(0, Field::Currency),
                show(value(r, Field::Sku), false)
            )
            .into(),
            Message::CatalogPrice(price) => format!(
                "unit_price {} of sku {} is not the catalog price {price}",
                show(value(r, Field::UnitPrice), false),
                show(value(r, Field::Sku), false)
            )
            .into(),
            Message::Unparsed(reason) => match &body.raw {
                Some(raw) => format!("{reason}: {raw}").into(),
                None => reason.into(),
            },
            Message::ItemsNotArray => "items is not an array".into(),
        }
    }

    /// `CODE: message`, appended to `out`.
    fn render(&self, body: &FailedBody, out: &mut String) {
        out.push_str(self.code.as_str());
        out.push_str(": ");
        out.push_str(&self.text(body));
    }

    /// `CODE: message` for the failed report's row it is about, appended to
    /// `out`: a fact leaves out the values the row shows in its own cells.
    fn render_on_row(&self, body: &FailedBody, out: &mut String) {
        let short = match (&self.message, self.row) {
            (Message::UnknownSku, Some(_)) => "sku is not in the catalog".to_string(),
            (Message::CatalogCurrency(cur), Some(_)) => {
                format!("currency is not the catalog currency {cur} of the sku")
            }
            (Message::CatalogPrice(price), Some(_)) => {
                format!("unit_price is not the catalog price {price}")
            }
            _ => return self.render(body, out),
        };
        out.push_str(self.code.as_str());
        out.push_str(": ");
        out.push_str(&short);
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

/// How an order was paid: the methods an order may name, as written
/// (`bank_transfer`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum PaymentMethod {
    Card,
    Paypal,
    BankTransfer,
    GiftCard,
    CashOnDelivery,
}

impl PaymentMethod {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

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
    pub payment_method: PaymentMethod,
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
            payment_method: o.payment_method.as_str(),
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
    /// The row's problems as text, in a record an older version stored (it
    /// kept them so); empty otherwise: they are rendered from the body's
    /// problems (see [`FailedOrder::row_detail`]).
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

/// What is kept of a failed order's input: enough to write it back as input,
/// and its problems, each once.
///
/// Stored as compact JSON: each row as `{"l": line, "v": values, "x":
/// extras}`, where a row after the first leaves out its line when it follows
/// the previous one, and its order-level values where they equal the first
/// row's (`null`; only its three item values when all of them do), so that
/// an order's values are kept once while rows that differ on purpose
/// (INCONSISTENT_ORDER) keep what differs; each problem as `[CODE, row,
/// message]`. A body an older version stored (`"rows"` of full objects,
/// the detail as text beside it) reads as it was.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FailedBody {
    pub rows: Vec<FailedRow>,
    /// JSONL order without items: the rows carry the order-level fields only.
    pub no_items: bool,
    /// Raw text of a record that could not be parsed (masked).
    pub raw: Option<String>,
    /// The file's own layout, when the failed report is to keep it.
    pub layout: Option<SourceLayout>,
    /// Every problem found, in order of precedence; empty in a record an
    /// older version stored (its detail is text, kept beside the body).
    pub problems: Vec<Problem>,
}

/// The item fields' places in [`Field::ALL`].
const ITEM_INDEXES: [usize; 3] = [3, 4, 5];

#[derive(Serialize)]
struct BodyOut<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    r: Vec<RowOut<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    no_items: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    layout: &'a Option<SourceLayout>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    p: Vec<(&'static str, Option<u32>, &'a Message)>,
}

#[derive(Serialize)]
struct RowOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    l: Option<u64>,
    v: Vec<Option<&'a str>>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    x: &'a [(String, String)],
}

#[derive(Deserialize)]
struct BodyIn {
    /// An older version's rows.
    #[serde(default)]
    rows: Vec<FailedRow>,
    #[serde(default)]
    r: Vec<RowIn>,
    #[serde(default)]
    no_items: bool,
    #[serde(default)]
    raw: Option<String>,
    #[serde(default)]
    layout: Option<SourceLayout>,
    #[serde(default)]
    p: Vec<(String, Option<u32>, Message)>,
}

#[derive(Deserialize)]
struct RowIn {
    #[serde(default)]
    l: Option<u64>,
    v: Vec<Option<String>>,
    #[serde(default)]
    x: Vec<(String, String)>,
}

impl Serialize for FailedBody {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let first = self.rows.first();
        let mut rows = Vec::with_capacity(self.rows.len());
        let mut prev: Option<u64> = None;
        for (i, row) in self.rows.iter().enumerate() {
            let l = match prev {
                None => (row.line != 0).then_some(row.line),
                Some(p) => (row.line != p.wrapping_add(1)).then_some(row.line),
            };
            prev = Some(row.line);
            let v = match first.filter(|_| i > 0) {
                None => row.values.iter().map(|v| Some(v.as_str())).collect(),
                Some(first) => {
                    let same = |k: usize| {
                        !ITEM_INDEXES.contains(&k) && first.values.get(k) == row.values.get(k)
                    };
                    if row.values.len() == Field::COUNT
                        && (0..Field::COUNT).all(|k| ITEM_INDEXES.contains(&k) || same(k))
                    {
                        ITEM_INDEXES
                            .iter()
                            .map(|k| Some(row.values[*k].as_str()))
                            .collect()
                    } else {
                        row.values
                            .iter()
                            .enumerate()
                            .map(|(k, v)| (!same(k)).then_some(v.as_str()))
                            .collect()
                    }
                }
            };
            rows.push(RowOut {
                l,
                v,
                x: &row.extra,
            });
        }
        BodyOut {
            r: rows,
            no_items: self.no_items,
            raw: &self.raw,
            layout: &self.layout,
            p: self
                .problems
                .iter()
                .map(|p| (p.code.as_str(), p.row, &p.message))
                .collect(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for FailedBody {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let b = BodyIn::deserialize(d)?;
        let mut rows = b.rows;
        rows.reserve(b.r.len());
        let mut prev: Option<u64> = None;
        for (i, row) in b.r.into_iter().enumerate() {
            let line = row
                .l
                .unwrap_or_else(|| prev.map_or(0, |p| p.wrapping_add(1)));
            prev = Some(line);
            let values = match rows.first().filter(|_| i > 0) {
                None => row.v.into_iter().map(Option::unwrap_or_default).collect(),
                Some(first) if row.v.len() == ITEM_INDEXES.len() => {
                    let mut values = first.values.clone();
                    for (k, v) in ITEM_INDEXES.iter().zip(row.v) {
                        if let Some(slot) = values.get_mut(*k) {
                            *slot = v.unwrap_or_default();
                        }
                    }
                    values
                }
                Some(first) => row
                    .v
                    .into_iter()
                    .enumerate()
                    .map(|(k, v)| {
                        v.unwrap_or_else(|| first.values.get(k).cloned().unwrap_or_default())
                    })
                    .collect(),
            };
            rows.push(FailedRow {
                values,
                line,
                extra: row.x,
                detail: String::new(),
            });
        }
        let problems =
            b.p.into_iter()
                .map(|(code, row, message)| {
                    let code = crate::model::ErrorCode::parse(&code).ok_or_else(|| {
                        serde::de::Error::custom(format!("unknown error code {code:?}"))
                    })?;
                    Ok(Problem { code, message, row })
                })
                .collect::<Result<_, D::Error>>()?;
        Ok(FailedBody {
            rows,
            no_items: b.no_items,
            raw: b.raw,
            layout: b.layout,
            problems,
        })
    }
}

/// A failed order, as the failed report and the database hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedOrder {
    /// The order_id as read, when there was one.
    pub order_id: Option<String>,
    pub code: crate::model::ErrorCode,
    /// The whole detail as text, where an older version stored it so (its
    /// body has no problems); empty otherwise: see [`FailedOrder::detail`].
    pub stored_detail: String,
    pub source_file: String,
    pub source_line: u64,
    pub body: FailedBody,
}

impl FailedOrder {
    /// Where problem `p` stands, for the whole detail: " (line N)" when the
    /// order has several rows, " (item N)" for the items of a JSONL order,
    /// which share a line; nothing for an order of one row.
    fn place(&self, p: &Problem, out: &mut String) {
        let rows = &self.body.rows;
        let (Some(r), n) = (p.row, rows.len()) else {
            return;
        };
        if n < 2 {
            return;
        }
        let r = (r as usize).min(n - 1);
        if rows[0].line == rows[n - 1].line {
            out.push_str(&format!(" (item {})", r + 1));
        } else {
            out.push_str(&format!(" (line {})", rows[r].line));
        }
    }

    /// `error_detail`: every problem as `CODE: message (line N)`, joined by
    /// `; `, in order of precedence.
    pub fn detail(&self) -> std::borrow::Cow<'_, str> {
        if self.body.problems.is_empty() {
            return self.stored_detail.as_str().into();
        }
        let mut out = String::new();
        for (i, p) in self.body.problems.iter().enumerate() {
            if i > 0 {
                out.push_str("; ");
            }
            p.render(&self.body, &mut out);
            self.place(p, &mut out);
        }
        out.into()
    }

    /// The `error_detail` of the failed report's row `i`: that row's own
    /// problems (the first row also those of the order as a whole), without
    /// what the row itself shows (its place, and the values a fact is
    /// about), so that a report stays proportional to its input.
    pub fn row_detail(&self, i: usize) -> std::borrow::Cow<'_, str> {
        let rows = &self.body.rows;
        if self.body.problems.is_empty() {
            // As an older version stored it.
            return if rows.iter().any(|r| !r.detail.is_empty()) {
                rows.get(i).map_or("", |r| r.detail.as_str()).into()
            } else if i == 0 {
                self.stored_detail.as_str().into()
            } else {
                "".into()
            };
        }
        let last = rows.len().saturating_sub(1);
        let mut out = String::new();
        for p in &self.body.problems {
            if p.row.map_or(0, |r| (r as usize).min(last)) == i {
                if !out.is_empty() {
                    out.push_str("; ");
                }
                p.render_on_row(&self.body, &mut out);
            }
        }
        out.into()
    }
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

    fn frow(values: [&str; 10], line: u64) -> FailedRow {
        FailedRow {
            values: values.iter().map(|v| v.to_string()).collect(),
            line,
            extra: Vec::new(),
            detail: String::new(),
        }
    }

    const ROW: [&str; 10] = [
        "A-1",
        "2026-11-25T08:00:00Z",
        "a@b.co",
        "SKU-1",
        "2",
        "5.00",
        "EUR",
        "card",
        "r",
        "12.50",
    ];

    fn with(mut values: [&'static str; 10], f: Field, v: &'static str) -> [&'static str; 10] {
        values[f.index()] = v;
        values
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
            ..FailedBody::default()
        };
        let text = serde_json::to_string(&body).unwrap();
        assert!(!text.contains("no_items"));
        assert_eq!(serde_json::from_str::<FailedBody>(&text).unwrap(), body);
    }

    #[test]
    fn a_body_keeps_order_values_once_and_what_rows_differ_in() {
        use crate::model::ErrorCode;
        let second = with(with(ROW, Field::Sku, "SKU-2"), Field::UnitPrice, "2.50");
        // Rows that differ on purpose: another email, an empty currency.
        let third = with(
            with(second, Field::CustomerEmail, "c@d.co"),
            Field::Currency,
            "",
        );
        let body = FailedBody {
            rows: vec![frow(ROW, 2), frow(second, 3), frow(third, 7)],
            problems: vec![
                Problem::on_row(
                    ErrorCode::PriceMismatch,
                    1,
                    Message::CatalogPrice("2.40".into()),
                ),
                Problem::new(ErrorCode::InconsistentOrder, "customer_email differs"),
            ],
            ..FailedBody::default()
        };
        let text = serde_json::to_string(&body).unwrap();
        assert_eq!(text.matches("a@b.co").count(), 1, "{text}");
        assert_eq!(text.matches("2026-11-25").count(), 1, "{text}");
        assert!(text.contains(r#"{"v":["SKU-2","2","2.50"]}"#), "{text}");
        assert!(text.contains(r#""l":7"#), "{text}");
        assert!(
            text.contains(r#"["PRICE_MISMATCH",1,{"p":"2.40"}]"#),
            "{text}"
        );
        let back: FailedBody = serde_json::from_str(&text).unwrap();
        assert_eq!(back, body);
        assert_eq!(back.rows[2].values[Field::CustomerEmail.index()], "c@d.co");
        assert_eq!(back.rows[2].values[Field::Currency.index()], "");
        assert_eq!(back.rows[2].values[Field::PlacedAt.index()], ROW[1]);
    }

    #[test]
    fn a_body_an_older_version_stored_reads_as_it_was() {
        use crate::model::ErrorCode;
        let old = r#"{"rows":[{"values":["A-1","2026-11-25T08:00:00Z","a@b.co","SKU-1","2","5.01","EUR","card","r","12.52"],"line":2,"detail":"PRICE_MISMATCH: unit_price \"5.01\" of sku \"SKU-1\" (line 2) is not the catalog price 5.00"},{"values":["A-1","2026-11-25T08:00:00Z","a@b.co","SKU-2","1","2.50","EUR","card","r","12.52"],"line":3}]}"#;
        let body: FailedBody = serde_json::from_str(old).unwrap();
        assert_eq!(body.rows.len(), 2);
        assert_eq!(body.rows[1].values[Field::Sku.index()], "SKU-2");
        assert_eq!(body.rows[1].line, 3);
        assert!(body.problems.is_empty());
        let f = FailedOrder {
            order_id: Some("A-1".into()),
            code: ErrorCode::PriceMismatch,
            stored_detail: "PRICE_MISMATCH: unit_price \"5.01\" of sku \"SKU-1\" (line 2) is not the catalog price 5.00".into(),
            source_file: "o.csv".into(),
            source_line: 2,
            body,
        };
        // The detail and each row's part of it, as stored.
        assert_eq!(f.detail(), f.stored_detail);
        assert!(f.row_detail(0).starts_with("PRICE_MISMATCH: unit_price"));
        assert_eq!(f.row_detail(1), "");
        // An older body without per-row details: the first row has the whole detail.
        let mut g = f.clone();
        g.body.rows[0].detail.clear();
        assert_eq!(g.row_detail(0), g.stored_detail);
        assert_eq!(g.row_detail(1), "");
    }

    #[test]
    fn the_detail_names_each_row_once_and_a_row_its_own_problems() {
        use crate::model::ErrorCode;
        let second = with(with(ROW, Field::Sku, "SKU-2"), Field::UnitPrice, "2.51");
        let f = FailedOrder {
            order_id: Some("A-1".into()),
            code: ErrorCode::UnknownSku,
            stored_detail: String::new(),
            source_file: "o.csv".into(),
            source_line: 2,
            body: FailedBody {
                rows: vec![frow(ROW, 2), frow(second, 4)],
                problems: vec![
                    Problem::on_row(ErrorCode::UnknownSku, 0, Message::UnknownSku),
                    Problem::on_row(
                        ErrorCode::PriceMismatch,
                        1,
                        Message::CatalogPrice("2.50".into()),
                    ),
                    Problem::new(
                        ErrorCode::PaymentMismatch,
                        "payment_amount 12.50 is not the order total",
                    ),
                ],
                ..FailedBody::default()
            },
        };
        assert_eq!(
            f.detail(),
            "UNKNOWN_SKU: sku \"SKU-1\" is not in the catalog (line 2); \
             PRICE_MISMATCH: unit_price \"2.51\" of sku \"SKU-2\" is not the catalog price 2.50 (line 4); \
             PAYMENT_MISMATCH: payment_amount 12.50 is not the order total"
        );
        // A row's detail leaves out what the row shows: its line, and the
        // values a fact is about.
        assert_eq!(
            f.row_detail(0),
            "UNKNOWN_SKU: sku is not in the catalog; \
             PAYMENT_MISMATCH: payment_amount 12.50 is not the order total"
        );
        assert_eq!(
            f.row_detail(1),
            "PRICE_MISMATCH: unit_price is not the catalog price 2.50"
        );
        // The items of a JSONL order share a line: they are named by number.
        let mut g = f.clone();
        g.body.rows[1].line = 2;
        assert!(
            g.detail().contains("catalog (item 1); PRICE"),
            "{}",
            g.detail()
        );
        assert!(
            g.detail().contains("2.50 (item 2); PAYMENT"),
            "{}",
            g.detail()
        );
        // An order of one row: no place at all.
        let mut h = f.clone();
        h.body.rows.truncate(1);
        h.body.problems.remove(1);
        assert_eq!(
            h.detail(),
            "UNKNOWN_SKU: sku \"SKU-1\" is not in the catalog; \
             PAYMENT_MISMATCH: payment_amount 12.50 is not the order total"
        );
        assert_eq!(
            h.row_detail(0),
            "UNKNOWN_SKU: sku is not in the catalog; \
             PAYMENT_MISMATCH: payment_amount 12.50 is not the order total"
        );
    }

    #[test]
    fn an_unparsed_record_says_why_then_its_raw_text() {
        use crate::model::ErrorCode;
        let body = FailedBody {
            raw: Some("X,\"1\",2".into()),
            problems: vec![Problem::new(
                ErrorCode::MalformedRecord,
                Message::Unparsed("wrong number of fields".into()),
            )],
            ..FailedBody::default()
        };
        let text = serde_json::to_string(&body).unwrap();
        assert_eq!(text.matches("X,").count(), 1, "the raw text once: {text}");
        let f = FailedOrder {
            order_id: None,
            code: ErrorCode::MalformedRecord,
            stored_detail: String::new(),
            source_file: "o.csv".into(),
            source_line: 5,
            body: serde_json::from_str(&text).unwrap(),
        };
        assert_eq!(
            f.detail(),
            "MALFORMED_RECORD: wrong number of fields: X,\"1\",2"
        );
    }
}
