//! xlsx orders: the first worksheet, read as CSV with a header row (a cell's
//! text is its value; numbers a spreadsheet stored as numbers are written as
//! their shortest text). Rows are grouped into orders by consecutive order_id,
//! as CSV rows are; `source_line` is the row number in the sheet. A workbook is
//! read whole (spreadsheets are small); the bytes go through the input's meter
//! for the digest and the progress.

use std::collections::VecDeque;
use std::io::{Cursor, Read};
use std::sync::Arc;

use calamine::{Data, Reader};
use csv::StringRecord;

use super::{Columns, InputError, RawBody, RawOrder, RawRow, Source};
use crate::model::failure::parse_failure_label;
use crate::model::order::Field;

fn cell_text(d: &Data) -> String {
    match d {
        // The shortest text that reads back as the same number.
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        other => other.to_string(),
    }
}

/// The orders of the workbook's first sheet.
pub(super) fn orders(
    mut source: Source,
) -> Result<impl Iterator<Item = Result<RawOrder, InputError>>, InputError> {
    let path = source.path.clone();
    let bad = |what: String| InputError::Workbook {
        path: path.clone(),
        what,
    };
    if path == "-" {
        return Err(bad(
            "a workbook cannot come from standard input: give its file name".into(),
        ));
    }
    let mut bytes = Vec::new();
    source
        .reader
        .read_to_end(&mut bytes)
        .map_err(|e| InputError::Read {
            path: path.clone(),
            line: 1,
            source: e,
        })?;
    let mut wb = calamine::open_workbook_auto_from_rs(Cursor::new(bytes))
        .map_err(|e| bad(format!("{e} (is it an xlsx file?)")))?;
    let range = wb
        .worksheet_range_at(0)
        .ok_or_else(|| bad("it has no worksheet".into()))?
        .map_err(|e| bad(e.to_string()))?;
    let first_row = range.start().map_or(0, |(r, _)| u64::from(r));
    let mut rows = range
        .rows()
        .enumerate()
        .map(|(i, r)| {
            (
                first_row + i as u64 + 1,
                r.iter().map(cell_text).collect::<Vec<_>>(),
            )
        })
        .filter(|(_, cells)| cells.iter().any(|c| !c.trim().is_empty()));
    let Some((_, header)) = rows.next() else {
        return Err(InputError::NoHeader { path });
    };
    let columns = super::csv::map_header(&path, &StringRecord::from(header.clone()), b',')?;
    // Cells are text in a workbook: there is no formula escape to drop.
    let columns = Arc::new(Columns {
        unescape: false,
        ..columns
    });
    let width = header.len();
    let mut out: VecDeque<RawOrder> = VecDeque::new();
    let mut group: Vec<RawRow> = Vec::new();
    for (line, mut cells) in rows {
        cells.resize(width, String::new());
        let row = RawRow {
            line,
            record: StringRecord::from(cells),
        };
        let id = row.get(&columns, Field::OrderId);
        let same = !id.is_empty()
            && group
                .first()
                .is_some_and(|first| first.get(&columns, Field::OrderId) == id);
        if !same && !group.is_empty() {
            out.push_back(order_of(std::mem::take(&mut group), &columns));
        }
        group.push(row);
    }
    if !group.is_empty() {
        out.push_back(order_of(group, &columns));
    }
    Ok(out.into_iter().map(Ok))
}

fn order_of(rows: Vec<RawRow>, columns: &Arc<Columns>) -> RawOrder {
    let failure = columns
        .failure
        .and_then(|pos| parse_failure_label(rows[0].cell(columns, pos)));
    RawOrder {
        source: Arc::from(""),
        failure,
        line: rows[0].line,
        body: RawBody::Rows {
            columns: Arc::clone(columns),
            rows,
            no_items: false,
        },
        notes: Vec::new(),
    }
}
