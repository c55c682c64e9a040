//! Validation: the pure checks of the README's "What decides an order's
//! fate" up to PAYMENT_MISMATCH, run in parallel with rayon; results keep input order. Checks that need the order
//! history or the stock belong to `apply`.

use rustc_hash::FxHashMap;

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::model::fields;
use crate::model::money::currency_exponent;
use crate::model::order::{
    FailedBody, FailedOrder, FailedRow, Field, Line, Message, PaymentMethod, Problem, Product,
    ValidOrder,
};
use crate::model::pan;
use crate::model::ErrorCode;
use crate::read::{Columns, RawBody, RawOrder, RawRow};

/// What validation needs of the catalog: price and currency per sku.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    // Fx: sku lookups are on the hot path and need no DoS resistance.
    products: FxHashMap<String, (i64, String)>,
}

impl Catalog {
    pub fn new(products: impl IntoIterator<Item = Product>) -> Self {
        Catalog {
            products: products
                .into_iter()
                .map(|p| (p.sku, (p.unit_price, p.currency)))
                .collect(),
        }
    }

    pub fn get(&self, sku: &str) -> Option<(i64, &str)> {
        self.products.get(sku).map(|(p, c)| (*p, c.as_str()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Verdict {
    Valid(ValidOrder),
    Invalid {
        code: ErrorCode,
        /// Every failure found, in order of precedence (`code` is the first's).
        /// Their text is rendered once, where a failure record is shown.
        problems: Vec<Problem>,
        /// The parsed order when only catalog checks failed: if it was applied
        /// before with the same content it is skipped, whatever the catalog says now.
        parsed: Option<Box<ValidOrder>>,
    },
}

impl Verdict {
    /// An invalid verdict from its problems (at least one).
    pub fn invalid(mut problems: Vec<Problem>, parsed: Option<Box<ValidOrder>>) -> Verdict {
        let code = summarize(&mut problems);
        Verdict::Invalid {
            code,
            problems,
            parsed,
        }
    }
}

/// The code of the first failure by precedence (sorts `problems`, stably).
pub fn summarize(problems: &mut [Problem]) -> ErrorCode {
    problems.sort_by_key(|p| p.code);
    problems
        .first()
        .map(|p| p.code)
        .unwrap_or(ErrorCode::InvalidField)
}

/// An order as read, with what validation made of it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Checked {
    pub raw: RawOrder,
    pub verdict: Verdict,
}

/// Validate a chunk in parallel; the output is in input order.
pub fn validate_chunk(chunk: Vec<RawOrder>, catalog: &Catalog) -> Vec<Checked> {
    chunk
        .into_par_iter()
        .map(|mut raw| {
            // A JSONL line is parsed here, on the pool, not on the reader.
            raw.parse_deferred();
            let verdict = validate(&raw, catalog);
            mask_card_numbers(&mut raw, matches!(verdict, Verdict::Valid(_)));
            Checked { raw, verdict }
        })
        .collect()
}

/// Card numbers in the order as read, masked: what leaves validation (into
/// the spool of checked orders, a temporary file) holds them only masked.
/// A valid order has none in its free-text fields and extra columns (it would
/// be PAN_DETECTED), so only the columns no check reads (those of a report
/// fed back in, such as error_detail) are scanned there; an invalid one has
/// every cell but the identifier and number fields scanned, and the raw text
/// of a record that could not be parsed loses every long run of digits.
pub fn mask_card_numbers(raw: &mut RawOrder, valid: bool) {
    raw.parse_deferred();
    let (columns, rows) = match &mut raw.body {
        RawBody::Malformed { raw, reason } => {
            if let std::borrow::Cow::Owned(m) = pan::mask_digit_runs(raw) {
                *raw = m;
            }
            if let std::borrow::Cow::Owned(m) = pan::mask_digit_runs(reason) {
                *reason = m;
            }
            return;
        }
        RawBody::Rows { columns, rows, .. } => (columns, rows),
        // Parsed above.
        RawBody::JsonLine { .. } => return,
    };
    // What each position holds: 0 an identifier or number, 1 free text a check read, 2 unread.
    let width = rows.iter().map(|r| r.record.len()).max().unwrap_or(0);
    let mut kind = vec![2u8; width];
    for f in Field::ALL {
        if let Some(k) = kind.get_mut(columns.index[f.index()]) {
            *k = u8::from(f.is_free_text());
        }
    }
    for (pos, _) in &columns.extras {
        if let Some(k) = kind.get_mut(*pos) {
            *k = 1;
        }
    }
    let scanned = |k: u8| if valid { k == 2 } else { k >= 1 };
    for row in rows.iter_mut() {
        let dirty = row
            .record
            .iter()
            .zip(&kind)
            .any(|(cell, k)| scanned(*k) && pan::contains_pan(cell));
        if !dirty {
            continue;
        }
        let mut masked = csv::StringRecord::with_capacity(row.record.as_slice().len(), width);
        for (pos, cell) in row.record.iter().enumerate() {
            if kind.get(pos).copied().is_some_and(scanned) {
                masked.push_field(&pan::mask_pans(cell));
            } else {
                masked.push_field(cell);
            }
        }
        row.record = masked;
    }
}

/// Longest raw text of an unparseable record that is kept; past it the text is cut.
const MAX_RAW: usize = 1 << 20;

pub fn validate(raw: &RawOrder, catalog: &Catalog) -> Verdict {
    let raw = &*raw.parsed();
    let (columns, rows, no_items) = match &raw.body {
        RawBody::Malformed { reason, .. } => {
            // Its raw text is the failure record's (masked): said once, there.
            let p = Problem::new(
                ErrorCode::MalformedRecord,
                Message::Unparsed(pan::mask_digit_runs(reason).into_owned()),
            );
            return Verdict::invalid(vec![p], None);
        }
        // Readers never make one (a JSON line is parsed above); a damaged
        // stored failure could.
        RawBody::JsonLine { .. } => {
            let p = Problem::new(ErrorCode::MalformedRecord, "the record has no rows");
            return Verdict::invalid(vec![p], None);
        }
        RawBody::Rows { rows, .. } if rows.is_empty() => {
            // Readers never make one; a damaged stored failure could.
            let p = Problem::new(ErrorCode::MalformedRecord, "the record has no rows");
            return Verdict::invalid(vec![p], None);
        }
        RawBody::Rows {
            columns,
            rows,
            no_items,
        } => (columns.as_ref(), rows.as_slice(), *no_items),
    };
    let mut c = OrderCheck {
        cols: columns,
        rows,
        values: rows
            .iter()
            .map(|r| Field::ALL.map(|f| r.get(columns, f)))
            .collect(),
        prices: Vec::with_capacity(rows.len()),
        no_items,
        problems: raw.notes.clone(),
    };
    let parsed = c.run(catalog);
    if !c.problems.is_empty() {
        let only_catalog = c.problems.iter().all(|p| p.code.is_catalog_check());
        let parsed = parsed.filter(|_| only_catalog).map(Box::new);
        return Verdict::invalid(c.problems, parsed);
    }
    match parsed {
        Some(order) if order.payment_amount != order.total => {
            let e = currency_exponent(&order.currency);
            let m = format!(
                "payment_amount {} is not the order total {} (sum of quantity x unit_price over {} line(s))",
                crate::model::money::format_amount(order.payment_amount, e),
                crate::model::money::format_amount(order.total, e),
                order.lines.len()
            );
            Verdict::invalid(vec![Problem::new(ErrorCode::PaymentMismatch, m)], None)
        }
        Some(order) => Verdict::Valid(order),
        // Unreachable in practice: no problems means every value parsed.
        None => Verdict::invalid(
            vec![Problem::new(
                ErrorCode::InvalidField,
                "the order could not be parsed",
            )],
            None,
        ),
    }
}

/// The order-level values that become more than their text.
struct OrderFields {
    placed: fields::Placed,
    method: PaymentMethod,
    amount: i64,
}

struct OrderCheck<'a> {
    cols: &'a Columns,
    rows: &'a [RawRow],
    /// Each row's ten values, trimmed and unescaped once.
    values: Vec<[&'a str; Field::COUNT]>,
    /// Each row's unit_price as parsed (None when it did not parse), for the price check.
    prices: Vec<Option<i64>>,
    no_items: bool,
    problems: Vec<Problem>,
}

impl<'a> OrderCheck<'a> {
    fn get(&self, row: usize, f: Field) -> &'a str {
        self.values[row][f.index()]
    }

    /// A problem of the order as a whole (`row` None) or of one of its rows
    /// (the row's place is added where the detail is rendered).
    fn push(&mut self, code: ErrorCode, row: Option<usize>, message: impl Into<Message>) {
        self.problems.push(match row {
            Some(r) => Problem::on_row(code, r, message),
            None => Problem::new(code, message),
        });
    }

    /// Run every check up to the catalog checks; the parsed order when all values parsed.
    fn run(&mut self, catalog: &Catalog) -> Option<ValidOrder> {
        let not_array = self
            .problems
            .iter()
            .any(|p| p.message == Message::ItemsNotArray);
        if self.no_items && !not_array {
            self.push(ErrorCode::MissingField, None, "items is missing or empty");
        }
        // MISSING_FIELD: every row, every field.
        for r in 0..self.rows.len() {
            for f in Field::ALL {
                if self.no_items && f.is_item() {
                    continue;
                }
                if self.get(r, f).is_empty() {
                    let m = format!("{} is empty", f.name());
                    self.push(ErrorCode::MissingField, Some(r), m);
                }
            }
        }
        let order = self.parse();
        self.consistency();
        self.extra_text();
        self.card_numbers();
        self.catalog(catalog);
        order
    }

    /// The parsed value of field `f` of row `r`; or, when it breaks its
    /// rule, None and an INVALID_FIELD problem (none for an empty value:
    /// MISSING_FIELD said it).
    fn field<T, E: AsRef<str>>(&mut self, r: usize, f: Field, res: Result<T, E>) -> Option<T> {
        res.map_err(|rule| {
            let v = self.get(r, f);
            if !v.is_empty() {
                let m = format!(
                    "{} {} {}",
                    f.name(),
                    show(v, f.is_free_text()),
                    rule.as_ref()
                );
                self.push(ErrorCode::InvalidField, Some(r), m);
            }
        })
        .ok()
    }

    /// INVALID_FIELD: order-level fields from the first row, item fields from every row.
    fn parse(&mut self) -> Option<ValidOrder> {
        let exp = currency_exponent(self.get(0, Field::Currency));
        // Every field is checked, so that every problem is named at once.
        let head = self.order_fields(exp);
        let (lines, lines_ok) = self.lines(exp);
        let total = lines.iter().try_fold(0i64, |acc, l| {
            l.quantity
                .checked_mul(l.unit_price)
                .and_then(|x| acc.checked_add(x))
        });
        if total.is_none() {
            self.push(
                ErrorCode::InvalidField,
                None,
                "the order total (sum of quantity x unit_price) is too large to compute",
            );
        }
        let head = head?;
        if !lines_ok || self.no_items {
            return None;
        }
        let order = ValidOrder {
            order_id: self.get(0, Field::OrderId).to_string(),
            // A local time is stored and reported with the offset it had.
            placed_at: head
                .placed
                .with_offset
                .unwrap_or_else(|| self.get(0, Field::PlacedAt).to_string()),
            customer_email: self.get(0, Field::CustomerEmail).to_string(),
            currency: self.get(0, Field::Currency).to_string(),
            payment_method: head.method,
            payment_ref: self.get(0, Field::PaymentRef).to_string(),
            payment_amount: head.amount,
            total: total?,
            units: lines.iter().map(|l| l.quantity).sum(),
            content_hash: [0; 16],
            lines,
        };
        Some(ValidOrder {
            content_hash: content_hash(&order, head.placed.instant),
            ..order
        })
    }

    /// The order-level fields of the first row, each checked; None when any
    /// breaks its rule.
    fn order_fields(&mut self, exp: u32) -> Option<OrderFields> {
        let zone = self.cols.zone;
        let id = fields::order_id(self.get(0, Field::OrderId));
        let id = self.field(0, Field::OrderId, id);
        let placed = fields::placed_at(self.get(0, Field::PlacedAt), zone.as_ref());
        let placed = self.field(0, Field::PlacedAt, placed);
        let email = fields::email(self.get(0, Field::CustomerEmail));
        let email = self.field(0, Field::CustomerEmail, email);
        let currency = fields::currency(self.get(0, Field::Currency));
        let currency = self.field(0, Field::Currency, currency);
        let method = fields::payment_method(self.get(0, Field::PaymentMethod));
        let method = self.field(0, Field::PaymentMethod, method);
        let reference = fields::payment_ref(self.get(0, Field::PaymentRef));
        let reference = self.field(0, Field::PaymentRef, reference);
        let amount = fields::amount(self.get(0, Field::PaymentAmount), exp);
        let amount = self.field(0, Field::PaymentAmount, amount);
        let ((), (), (), ()) = (id?, email?, currency?, reference?);
        Some(OrderFields {
            placed: placed?,
            method: method?,
            amount: amount?,
        })
    }

    /// The item fields of every row, each checked: the lines whose quantity
    /// and price parsed (for the total's check), and whether every row's
    /// fields did. Each row's price is kept for the catalog check.
    fn lines(&mut self, exp: u32) -> (Vec<Line>, bool) {
        let mut lines = Vec::with_capacity(self.rows.len());
        let mut ok = true;
        if self.no_items {
            return (lines, ok);
        }
        for r in 0..self.rows.len() {
            let sku = fields::sku(self.get(r, Field::Sku));
            let sku = self.field(r, Field::Sku, sku);
            let q = fields::quantity(self.get(r, Field::Quantity));
            let q = self.field(r, Field::Quantity, q);
            let p = fields::amount(self.get(r, Field::UnitPrice), exp);
            self.prices.push(p.as_ref().ok().copied());
            let p = self.field(r, Field::UnitPrice, p);
            ok &= sku.is_some() && q.is_some() && p.is_some();
            if let (Some(quantity), Some(unit_price)) = (q, p) {
                lines.push(Line {
                    sku: self.get(r, Field::Sku).to_string(),
                    quantity,
                    unit_price,
                });
            }
        }
        (lines, ok)
    }

    /// INCONSISTENT_ORDER: every row repeats the first row's order-level values.
    fn consistency(&mut self) {
        for f in Field::ALL.into_iter().filter(|f| !f.is_item()) {
            let first = self.get(0, f);
            for r in 1..self.rows.len() {
                let v = self.get(r, f);
                if !v.is_empty() && !first.is_empty() && v != first {
                    let m = format!(
                        "{} differs between the rows of the order: {} on line {}, {} on line {}",
                        f.name(),
                        show(first, f.is_free_text()),
                        self.rows[0].line,
                        show(v, f.is_free_text()),
                        self.rows[r].line
                    );
                    self.push(ErrorCode::InconsistentOrder, None, m);
                    break;
                }
            }
        }
    }

    /// INVALID_FIELD: an extra column is kept (in the failed report and the
    /// failure record) as free text, which holds no control character.
    fn extra_text(&mut self) {
        for r in 0..self.rows.len() {
            for (pos, name) in &self.cols.extras {
                let v = self.rows[r].cell(self.cols, *pos);
                if let Err(rule) = fields::text(v) {
                    let m = format!("column {name} {} {rule}", show(v, true));
                    self.problems
                        .push(Problem::on_row(ErrorCode::InvalidField, r, m));
                }
            }
        }
    }

    /// PAN_DETECTED: free-text fields and extra columns, each distinct value once.
    fn card_numbers(&mut self) {
        let mut found = Vec::new();
        for r in 0..self.rows.len() {
            for f in [Field::CustomerEmail, Field::PaymentRef] {
                let v = self.get(r, f);
                if (r == 0 || v != self.get(0, f)) && pan::contains_pan(v) {
                    found.push((
                        r,
                        format!("{} holds a card number: {}", f.name(), show(v, true)),
                    ));
                }
            }
            for (pos, name) in &self.cols.extras {
                let v = self.rows[r].cell(self.cols, *pos);
                if pan::contains_pan(v) {
                    found.push((
                        r,
                        format!("column {name} holds a card number: {}", show(v, true)),
                    ));
                }
            }
        }
        for (r, m) in found {
            self.push(ErrorCode::PanDetected, Some(r), m);
        }
    }

    /// UNKNOWN_SKU, CURRENCY_MISMATCH, PRICE_MISMATCH, line by line.
    fn catalog(&mut self, catalog: &Catalog) {
        if self.no_items {
            return;
        }
        let currency = self.get(0, Field::Currency);
        let currency_ok = fields::currency(currency).is_ok();
        let exp = currency_exponent(currency);
        for r in 0..self.rows.len() {
            let sku = self.get(r, Field::Sku);
            if fields::sku(sku).is_err() {
                continue;
            }
            // Facts only: the text is rendered from them and the row's values.
            let Some((price, cur)) = catalog.get(sku) else {
                self.push(ErrorCode::UnknownSku, Some(r), Message::UnknownSku);
                continue;
            };
            if !currency_ok {
                continue;
            }
            if cur != currency {
                let m = Message::CatalogCurrency(cur.to_string());
                self.push(ErrorCode::CurrencyMismatch, Some(r), m);
                continue;
            }
            if let Some(p) = self.prices.get(r).copied().flatten() {
                if p != price {
                    let m = Message::CatalogPrice(crate::model::money::format_amount(price, exp));
                    self.push(ErrorCode::PriceMismatch, Some(r), m);
                }
            }
        }
    }
}

use crate::model::text::show;

/// The raw text of a record that could not be parsed, as the failure keeps
/// it: card numbers masked, cut at `MAX_RAW`, NUL bytes shown as U+FFFD (no
/// database stores a NUL in text).
fn masked_raw(text: &str) -> String {
    // Mask before cutting, over a window a little past the cut, so that a card
    // number across the cut is never left half in clear.
    let window = &text[..floor_boundary(text, MAX_RAW + 64)];
    let masked = pan::mask_digit_runs(window);
    let kept = &masked[..floor_boundary(&masked, MAX_RAW)];
    let mut out = kept.replace('\0', "\u{fffd}");
    if kept.len() < masked.len() || window.len() < text.len() {
        out.push_str(&format!(" ... ({} bytes in all)", text.len()));
    }
    out
}

fn floor_boundary(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// Fingerprint of an order's parsed content, for "applied before with the same content".
fn content_hash(o: &ValidOrder, placed: (i64, u32)) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(o.order_id.as_bytes());
    h.update([0x1f]);
    // The instant, not its text: the same moment in another offset is the same content.
    h.update(placed.0.to_le_bytes());
    h.update(placed.1.to_le_bytes());
    h.update([0x1f]);
    for part in [
        o.customer_email.as_str(),
        &o.currency,
        o.payment_method.as_str(),
        &o.payment_ref,
    ] {
        h.update(part.as_bytes());
        h.update([0x1f]);
    }
    h.update(o.payment_amount.to_le_bytes());
    h.update([0x1f]);
    for l in &o.lines {
        h.update(l.sku.as_bytes());
        h.update([0x1f]);
        h.update(l.quantity.to_le_bytes());
        h.update(l.unit_price.to_le_bytes());
        h.update([0x1e]);
    }
    let full = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// The failed-order record of an order from every problem found: its code,
/// its rows and its problems, each once (their text is rendered where the
/// record is shown).
pub fn failed_order_of(
    raw: &RawOrder,
    mut problems: Vec<Problem>,
    source_file: &str,
) -> FailedOrder {
    let code = summarize(&mut problems);
    let mut f = failed_order(raw, code, source_file);
    f.body.problems = problems;
    f
}

/// The failed-order record of an order, without its problems: its rows with
/// card numbers masked, for the database and the failed report.
pub fn failed_order(raw: &RawOrder, code: ErrorCode, source_file: &str) -> FailedOrder {
    let raw = &*raw.parsed();
    let body = match &raw.body {
        RawBody::Malformed { raw: text, .. } => FailedBody {
            raw: Some(masked_raw(text)),
            ..FailedBody::default()
        },
        // Parsed above.
        RawBody::JsonLine { .. } => FailedBody::default(),
        RawBody::Rows {
            columns,
            rows,
            no_items,
        } => FailedBody {
            rows: rows
                .iter()
                .map(|row| FailedRow {
                    line: row.line,
                    values: Field::ALL
                        .iter()
                        .map(|f| {
                            let v = row.get(columns, *f);
                            if f.is_free_text() {
                                pan::mask_pans(v).into_owned()
                            } else {
                                v.to_string()
                            }
                        })
                        .collect(),
                    extra: columns
                        .extras
                        .iter()
                        .map(|(pos, name)| {
                            (
                                name.clone(),
                                pan::mask_pans(row.cell(columns, *pos)).into_owned(),
                            )
                        })
                        .collect(),
                    detail: String::new(),
                })
                .collect(),
            no_items: *no_items,
            raw: None,
            layout: columns.layout.as_deref().cloned(),
            problems: Vec::new(),
        },
    };
    FailedOrder {
        order_id: raw.order_id().map(str::to_string),
        code,
        stored_detail: String::new(),
        source_file: source_file.to_string(),
        source_line: raw.line,
        body,
    }
}

#[cfg(test)]
pub(crate) mod tests;
