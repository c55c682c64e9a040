//! A row of a fed-back failed report names its stored failure (`failure_id`).
//! Before such an order can take stock it is checked against that failure:
//! an order_id that changed (unless the stored one was itself invalid), or a
//! value a spreadsheet changed the way spreadsheets change numbers, fails the
//! order with INVALID_FIELD. No round trip through a spreadsheet can make one
//! order take stock twice.

use crate::model::failure::failure_label;
use crate::model::fields;
use crate::model::order::{Field, Problem};
use crate::model::spreadsheet::{mangling, KEEP_AS_TEXT};
use crate::model::text::show;
use crate::model::ErrorCode;
use crate::read::{RawBody, RawOrder};
use crate::store::StoredFailure;

/// The problem of a fed-back order with the failure it names, if any.
pub fn problem(raw: &RawOrder, stored: &StoredFailure) -> Option<Problem> {
    let label = failure_label(stored.key());
    let now = raw.order_id().unwrap_or("");
    if let Some(was) = stored.order.order_id.as_deref() {
        if now != was && fields::order_id(was).is_ok() {
            let why = match mangling(was, now) {
                Some(kind) => format!("{kind}: a spreadsheet changed it; {KEEP_AS_TEXT}"),
                None => "the order_id of an order cannot change (remove its failure_id to enter it as a new order)".into(),
            };
            let m = format!(
                "order_id {} is not the order_id {} of failure {label} that this row names: {why}",
                show(now, false),
                show(was, false)
            );
            return Some(Problem::new(ErrorCode::InvalidField, m));
        }
    }
    changed_values(raw, stored, &label)
}

/// A sku, payment_ref or extra column a spreadsheet changed, row by row.
fn changed_values(raw: &RawOrder, stored: &StoredFailure, label: &str) -> Option<Problem> {
    let RawBody::Rows { columns, rows, .. } = &raw.body else {
        return None;
    };
    for (i, (row, was)) in rows.iter().zip(&stored.order.body.rows).enumerate() {
        for f in [Field::Sku, Field::PaymentRef] {
            let old = was.values.get(f.index()).map_or("", String::as_str);
            let new = row.get(columns, f);
            if let Some(kind) = mangling(old, new) {
                return Some(changed(i, f.name(), new, old, kind, label));
            }
        }
        for (pos, name) in &columns.extras {
            let new = row.cell(columns, *pos);
            let old = was
                .extra
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str());
            if let Some(kind) = old.and_then(|old| mangling(old, new)) {
                return Some(changed(i, name, new, old.unwrap_or(""), kind, label));
            }
        }
    }
    None
}

fn changed(row: usize, name: &str, new: &str, old: &str, kind: &str, label: &str) -> Problem {
    Problem::on_row(
        ErrorCode::InvalidField,
        row,
        format!(
            "{name} {} is not the {} of failure {label} that this row names: {kind}: a spreadsheet changed it; {KEEP_AS_TEXT}",
            show(new, true),
            show(old, true)
        ),
    )
}
