//! xlsx orders: the first worksheet, read as CSV with a header row, as a
//! stream of rows. Rows are grouped into orders by consecutive order_id, as
//! CSV rows are, and each order is handed on as soon as its rows are read;
//! `source_line` is the row number in the sheet.
//!
//! A workbook is a zip of XML parts, and nothing in it is trusted with
//! memory: the sheet's declared size is not read (a cell at `XFD1048576`
//! costs its own row), no text node or tag is held past the record limit
//! (`max_record_bytes`: a row over it is `MALFORMED_RECORD`, and reading goes
//! on), and the shared strings, which cells refer to from anywhere in the
//! sheet and so are held, are refused past 512 MiB uncompressed (exit 2). A
//! zip is read from its end, so the workbook must be a regular file: it is
//! opened where it lies (a temporary copy would hold its card numbers in
//! clear), after one pass of its bytes through the input's meter for the
//! digest and the progress. Rows up to `--skip-rows` are title rows; the
//! header is the first row with text below them.
//!
//! A cell's text is its value by type (see `value`): text as is, numbers as
//! the General format shows them, `TRUE`/`FALSE`, a formula by its saved
//! value, a date cell as RFC 3339 text in the `--timezone` zone. Where that
//! text is not the value (a number past 15 digits, an error value, a date
//! cell without `--timezone`, a formula never calculated) the record holds
//! what the spreadsheet shows and the order fails `INVALID_FIELD`, naming the
//! cell and what to do. Only the ten fields are held to this: extra columns
//! are kept as the spreadsheet shows them.

mod package;
mod sheet;
mod value;
mod xml;

use std::collections::VecDeque;
use std::sync::Arc;

use csv::StringRecord;

use self::sheet::{column_name, row_text, Cell, Row, SheetRows};
use self::value::Issue;
use super::{Columns, HeaderAt, InputError, RawBody, RawOrder, RawRow, ReadOptions, Source};
use crate::model::failure::parse_failure_label;
use crate::model::order::{Field, Problem};
use crate::model::text::show;
use crate::model::ErrorCode;

/// The most columns a sheet has (`XFD`).
const MAX_COLUMNS: u32 = 16_384;

pub(super) struct XlsxOrders {
    rows: SheetRows,
    columns: Arc<Columns>,
    /// The field read from each column of the header, if any.
    fields: Vec<Option<Field>>,
    limit: usize,
    group: Vec<RawRow>,
    /// Problems of the cells of the order being gathered.
    notes: Vec<Problem>,
    out: VecDeque<RawOrder>,
    done: bool,
}

impl XlsxOrders {
    /// Open the workbook and read its header row as `opts` say (title rows,
    /// column names, time zone, the most text one row may hold).
    pub(super) fn new(mut source: Source, opts: &ReadOptions) -> Result<Self, InputError> {
        let path = source.path.clone();
        if path == "-" {
            return Err(InputError::Workbook {
                path,
                what: "a workbook cannot come from standard input: give its file name".into(),
            });
        }
        let read_err = |e| InputError::Read {
            path: path.clone(),
            line: 1,
            source: e,
        };
        // A zip is read from its end: the workbook is opened as the file it
        // is (never copied: a temporary copy would hold its card numbers in
        // clear), after one pass through the source for its digest.
        let regular = std::fs::metadata(&path).is_ok_and(|m| m.is_file());
        if !regular {
            return Err(InputError::Workbook {
                path,
                what: "it is not a regular file: a workbook is read from its end, so it must be a file on disk".into(),
            });
        }
        std::io::copy(&mut source.reader, &mut std::io::sink()).map_err(read_err)?;
        let file = std::fs::File::open(&path).map_err(read_err)?;
        XlsxOrders::from_file(file, path, opts)
    }

    /// The workbook in `file` (named `path` in messages), its header read.
    fn from_file(
        file: std::fs::File,
        path: String,
        opts: &ReadOptions,
    ) -> Result<Self, InputError> {
        let limit = opts.max_record_bytes;
        let pkg = package::Package::open(file, &path)?;
        let book = package::open_book(pkg, limit)?;
        let mut rows = SheetRows::new(book, &path, limit, opts.timezone);
        let (header, width) = header(&mut rows, &path, opts)?;
        let record = record(&header.cells, width as usize);
        let cells: Vec<&str> = record.iter().collect();
        let columns = match super::header::order_columns(&path, &cells, b',', opts) {
            Ok(c) => c,
            Err(e) => return Err(find_header(e, &mut rows, header.line, opts)),
        };
        let mut fields = vec![None; width as usize];
        for f in Field::ALL {
            if let Some(slot) = fields.get_mut(columns.index[f.index()]) {
                *slot = Some(f);
            }
        }
        Ok(XlsxOrders {
            rows,
            // Cells are text in a workbook: there is no formula escape to drop.
            columns: Arc::new(Columns {
                unescape: false,
                ..columns
            }),
            fields,
            limit,
            group: Vec::new(),
            notes: Vec::new(),
            out: VecDeque::new(),
            done: false,
        })
    }

    /// Queue what one row of the sheet completes.
    fn handle(&mut self, row: Row) {
        if let Some(prefix) = row.too_long {
            let reason = format!(
                "the row is longer than {} bytes (--max-record-bytes)",
                self.limit
            );
            self.flush();
            self.out
                .push_back(RawOrder::malformed(row.line, prefix.as_bytes(), reason));
            return;
        }
        if is_blank(&row) {
            return;
        }
        let width = self.fields.len();
        let beyond = row
            .cells
            .iter()
            .filter(|c| c.col as usize >= width && !c.text.trim().is_empty())
            .map(|c| u64::from(c.col) + 1)
            .max();
        if let Some(n) = beyond {
            // As CSV: a row with more fields than the header is not an order.
            let reason = format!("wrong number of fields: {n} where the header has {width}");
            let raw = row_text(&row.cells, self.limit);
            self.flush();
            self.out
                .push_back(RawOrder::malformed(row.line, raw.as_bytes(), reason));
            return;
        }
        let raw = RawRow {
            line: row.line,
            record: record(&row.cells, width),
        };
        let id = raw.get(&self.columns, Field::OrderId);
        let same = !id.is_empty()
            && self
                .group
                .first()
                .is_some_and(|first| first.get(&self.columns, Field::OrderId) == id);
        if !same {
            self.flush();
        }
        let at = self.group.len();
        for c in &row.cells {
            let field = self.fields.get(c.col as usize).copied().flatten();
            if let (Some(field), Some(issue)) = (field, &c.issue) {
                let m = problem(field, c, issue, row.line);
                self.notes
                    .push(Problem::on_row(ErrorCode::InvalidField, at, m));
            }
        }
        self.group.push(raw);
    }

    /// Close the order being gathered, if any.
    fn flush(&mut self) {
        if self.group.is_empty() {
            return;
        }
        let rows = std::mem::take(&mut self.group);
        // A fed-back failed report names the stored failure of each order.
        let failure = self
            .columns
            .failure
            .and_then(|pos| parse_failure_label(rows[0].cell(&self.columns, pos)));
        self.out.push_back(RawOrder {
            source: Arc::from(""),
            failure,
            line: rows[0].line,
            body: RawBody::Rows {
                columns: Arc::clone(&self.columns),
                rows,
                no_items: false,
            },
            notes: std::mem::take(&mut self.notes),
        });
    }
}

impl Iterator for XlsxOrders {
    type Item = Result<RawOrder, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(o) = self.out.pop_front() {
                return Some(Ok(o));
            }
            if self.done {
                return None;
            }
            match self.rows.next_row() {
                Ok(Some(row)) => self.handle(row),
                Ok(None) => {
                    self.flush();
                    self.done = true;
                }
                Err(e) => {
                    self.done = true;
                    self.out.clear();
                    self.group.clear();
                    return Some(Err(e));
                }
            }
        }
    }
}

fn is_blank(row: &Row) -> bool {
    row.cells
        .iter()
        .all(|c| c.issue.is_none() && c.text.trim().is_empty())
}

/// The header: the first row with text below the title rows `--skip-rows`
/// skips, and its width (up to its last cell with text).
fn header(rows: &mut SheetRows, path: &str, opts: &ReadOptions) -> Result<(Row, u32), InputError> {
    let limit = opts.max_record_bytes;
    let bad = |what: String| InputError::Workbook {
        path: path.to_string(),
        what,
    };
    let header = loop {
        match rows.next_row()? {
            None if opts.skip_rows > 0 => {
                return Err(InputError::AllSkipped {
                    path: path.to_string(),
                    skip: opts.skip_rows,
                })
            }
            None => {
                return Err(InputError::NoHeader {
                    path: path.to_string(),
                })
            }
            Some(row) if row.line <= opts.skip_rows => continue,
            Some(row) if row.too_long.is_some() => {
                return Err(bad(format!(
                    "its header row (row {}) is longer than {limit} bytes (--max-record-bytes)",
                    row.line
                )))
            }
            Some(row) if is_blank(&row) => continue,
            Some(row) => break row,
        }
    };
    let width = header
        .cells
        .iter()
        .filter(|c| !c.text.trim().is_empty())
        .map(|c| c.col.saturating_add(1))
        .max()
        .unwrap_or(0);
    if width > MAX_COLUMNS {
        let at = header.line;
        return Err(bad(format!(
            "its header row (row {at}) has a cell past column XFD"
        )));
    }
    Ok((header, width))
}

/// A header that lacks most columns may be a title row above the real one:
/// the next few rows are looked at, and the error says in which row the
/// header seems to be.
fn find_header(e: InputError, rows: &mut SheetRows, read: u64, opts: &ReadOptions) -> InputError {
    let InputError::MissingColumns {
        path,
        missing,
        header_at: None,
        found,
    } = e
    else {
        return e;
    };
    let required = Field::ALL.map(Field::name);
    let mut header_at = None;
    if missing.len() * 2 >= required.len() {
        for _ in 0..super::csv::LOOK_AHEAD {
            let Ok(Some(row)) = rows.next_row() else {
                break;
            };
            let texts = row.cells.iter().map(|c| c.text.as_str());
            if super::header::looks_like_header(
                &required,
                super::header::covered(&required, texts, opts),
            ) {
                header_at = Some(HeaderAt {
                    read,
                    found: row.line,
                });
                break;
            }
        }
    }
    InputError::MissingColumns {
        path,
        missing,
        header_at,
        found,
    }
}

/// The row's cells in their columns, `width` of them (cells past it left out).
fn record(cells: &[Cell], width: usize) -> StringRecord {
    let mut slots = vec![""; width];
    for c in cells {
        if let Some(slot) = slots.get_mut(c.col as usize) {
            *slot = &c.text;
        }
    }
    let len = slots.iter().map(|s| s.len()).sum();
    let mut record = StringRecord::with_capacity(len, width);
    for s in slots {
        record.push_field(s);
    }
    record
}

/// What is wrong with a cell where a field belongs, naming the field, the
/// cell and the value as the spreadsheet shows it (a card number masked), and
/// what to do.
fn problem(field: Field, cell: &Cell, issue: &Issue, line: u64) -> String {
    let name = field.name();
    let at = format!(
        "{name} in row {line} (cell {}{line})",
        column_name(cell.col)
    );
    let shown = show(&cell.text, field.is_free_text());
    const AS_TEXT: &str = "format the column as Text in the spreadsheet and type the value again";
    match issue {
        Issue::Inexact { stored: None } => format!(
            "{at} is the number {shown}: it has more than 15 digits, which a spreadsheet cannot \
             hold exactly (the digits past the 15th are lost); {AS_TEXT}"
        ),
        Issue::Inexact {
            stored: Some(stored),
        } => format!(
            "{at} is the number {shown} as the spreadsheet shows it, but it holds {}, more than \
             15 significant digits; {AS_TEXT}",
            show(stored, field.is_free_text())
        ),
        Issue::Error => format!(
            "{at} holds the spreadsheet error {shown}, not a value: correct the cell, or {AS_TEXT}"
        ),
        Issue::Date(why) => format!("{at} shows {shown}: it is {why}"),
        Issue::NoValue => format!(
            "{at} is a formula whose value was never saved: open the workbook in the spreadsheet \
             and save it again, or {AS_TEXT}"
        ),
        Issue::Unreadable(why) => format!("{at} {why} ({shown}); {AS_TEXT}"),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const HEADER: [&str; 10] = [
        "order_id",
        "placed_at",
        "customer_email",
        "sku",
        "quantity",
        "unit_price",
        "currency",
        "payment_method",
        "payment_ref",
        "payment_amount",
    ];

    /// A workbook of the parts given, zipped as a spreadsheet does.
    fn workbook(sheet: &str, strings: Option<&str>, styles: Option<&str>) -> Vec<u8> {
        const NS: &str = "http://schemas.openxmlformats.org";
        let rel = |id: &str, kind: &str, target: &str| {
            format!(
                r#"<Relationship Id="{id}" Type="{NS}/officeDocument/2006/relationships/{kind}" Target="{target}"/>"#
            )
        };
        let mut rels = rel("rId1", "worksheet", "worksheets/sheet1.xml");
        let mut parts = vec![("xl/worksheets/sheet1.xml", sheet.to_string())];
        if let Some(s) = strings {
            rels += &rel("rId2", "sharedStrings", "/xl/sharedStrings.xml");
            parts.push(("xl/sharedStrings.xml", s.to_string()));
        }
        if let Some(s) = styles {
            rels += &rel("rId3", "styles", "styles.xml");
            parts.push(("xl/styles.xml", s.to_string()));
        }
        let relationships = |r: String| {
            format!(
                r#"<?xml version="1.0"?><Relationships xmlns="{NS}/package/2006/relationships">{r}</Relationships>"#
            )
        };
        parts.push((
            "_rels/.rels",
            relationships(rel("rId1", "officeDocument", "xl/workbook.xml")),
        ));
        parts.push(("xl/_rels/workbook.xml.rels", relationships(rels)));
        parts.push((
            "xl/workbook.xml",
            format!(
                r#"<workbook xmlns:r="{NS}/officeDocument/2006/relationships"><sheets><sheet name="Orders" sheetId="1" r:id="rId1"/></sheets></workbook>"#
            ),
        ));
        let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, text) in parts {
            z.start_file(name, zip::write::SimpleFileOptions::default())
                .unwrap();
            z.write_all(text.as_bytes()).unwrap();
        }
        z.finish().unwrap().into_inner()
    }

    /// A sheet of the header row and the rows given (`<row>` elements).
    fn sheet(rows: &[String]) -> String {
        let header: String = HEADER
            .iter()
            .enumerate()
            .map(|(i, h)| text_cell(&format!("{}1", column_name(i as u32)), h))
            .collect();
        format!(
            r#"<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><dimension ref="A1:J2"/><sheetData><row r="1" spans="1:10">{header}</row>{}</sheetData></worksheet>"#,
            rows.concat()
        )
    }

    fn text_cell(at: &str, text: &str) -> String {
        format!(r#"<c r="{at}" t="inlineStr"><is><t>{text}</t></is></c>"#)
    }

    /// Row `r` of a good order, with `cells` in place of its cells (by column letter).
    fn order_row(r: u32, id: &str, cells: &[(&str, String)]) -> String {
        let good = [
            id,
            "2026-11-25T22:14:03Z",
            "a@b.co",
            "SKU-1",
            "1",
            "10",
            "EUR",
            "card",
            "r",
            "10",
        ];
        let mut out = format!(r#"<row r="{r}">"#);
        for (i, v) in good.iter().enumerate() {
            let col = column_name(i as u32);
            match cells.iter().find(|(c, _)| *c == col) {
                Some((_, xml)) => out += xml,
                None if v.parse::<f64>().is_ok() => {
                    out += &format!(r#"<c r="{col}{r}"><v>{v}</v></c>"#)
                }
                None => out += &text_cell(&format!("{col}{r}"), v),
            }
        }
        for (col, xml) in cells {
            if sheet::column(col).is_some_and(|c| c >= 10) {
                out += xml;
            }
        }
        out + "</row>"
    }

    fn open(bytes: Vec<u8>, limit: usize) -> Result<XlsxOrders, InputError> {
        open_with(
            bytes,
            &ReadOptions {
                max_record_bytes: limit,
                ..ReadOptions::default()
            },
        )
    }

    fn open_with(bytes: Vec<u8>, opts: &ReadOptions) -> Result<XlsxOrders, InputError> {
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, &bytes).unwrap();
        XlsxOrders::from_file(file, "t.xlsx".into(), opts)
    }

    fn read(bytes: Vec<u8>, limit: usize) -> Vec<RawOrder> {
        open(bytes, limit).unwrap().map(Result::unwrap).collect()
    }

    fn field(o: &RawOrder, f: Field) -> String {
        let RawBody::Rows { columns, rows, .. } = &o.body else {
            panic!("not rows: {o:?}")
        };
        rows[0].get(columns, f).to_string()
    }

    fn malformed(o: &RawOrder) -> (&str, &str) {
        match &o.body {
            RawBody::Malformed { raw, reason } => (raw, reason),
            other => panic!("not malformed: {other:?}"),
        }
    }

    fn messages(o: &RawOrder) -> Vec<&str> {
        o.notes
            .iter()
            .map(|p| match &p.message {
                crate::model::order::Message::Text(t) => t.as_str(),
                other => panic!("a reader's note is text: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn numbers_are_read_as_the_spreadsheet_shows_them() {
        fn num<'a>(at: &'a str, v: &str) -> (&'a str, String) {
            (&at[..1], format!(r#"<c r="{at}"><v>{v}</v></c>"#))
        }
        let rows = [
            order_row(
                2,
                "A-1",
                &[num("F2", "12.3"), num("E2", "2"), num("J2", "24.6")],
            ),
            order_row(
                3,
                "A-2",
                &[
                    num("A3", "1234567890123456789"),
                    num("I3", "4111111111111111"),
                ],
            ),
            order_row(
                4,
                "A-3",
                &[num("F4", "0.30000000000000004"), num("J4", "1.2E1")],
            ),
            order_row(5, "A-4", &[num("A5", "123456789012345")]),
        ];
        let orders = read(workbook(&sheet(&rows), None, None), 1 << 20);
        assert_eq!(orders.len(), 4);
        let o = &orders[0];
        assert_eq!(field(o, Field::UnitPrice), "12.3");
        assert_eq!(field(o, Field::Quantity), "2");
        assert_eq!(field(o, Field::PaymentAmount), "24.6");
        assert!(o.notes.is_empty(), "{:?}", o.notes);
        // A long id typed into a number cell: shown as the spreadsheet shows it, and refused.
        let o = &orders[1];
        assert_eq!(field(o, Field::OrderId), "1.23456789012346E+18");
        assert!(o.notes.iter().all(|p| p.code == ErrorCode::InvalidField));
        let m = messages(o);
        assert!(
            m[0].starts_with("order_id in row 3 (cell A3) is the number \"1.23456789012346E+18\"")
                && m[0].contains("more than 15 digits")
                && m[0].contains("format the column as Text"),
            "{m:?}"
        );
        assert!(m[1].starts_with("payment_ref in row 3 (cell I3)"), "{m:?}");
        assert!(!m.concat().contains("4111111111111111"), "{m:?}");
        // A fraction a spreadsheet holds past 15 digits: shown rounded, and refused.
        let o = &orders[2];
        assert_eq!(field(o, Field::UnitPrice), "0.3");
        assert_eq!(field(o, Field::PaymentAmount), "12");
        let m = messages(o);
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(
            m[0].contains("\"0.3\"") && m[0].contains("0.30000000000000004"),
            "{m:?}"
        );
        // Fifteen digits are exact.
        assert_eq!(field(&orders[3], Field::OrderId), "123456789012345");
        assert!(orders[3].notes.is_empty());
    }

    #[test]
    fn cells_by_type_errors_formulas_booleans_and_dates() {
        let styles = r#"<styleSheet><numFmts count="1"><numFmt numFmtId="164" formatCode="yyyy\-mm\-dd hh:mm:ss"/></numFmts><cellStyleXfs count="1"><xf numFmtId="14"/></cellStyleXfs><cellXfs count="3"><xf numFmtId="0"/><xf numFmtId="164" applyNumberFormat="1"/><xf numFmtId="2"/></cellXfs></styleSheet>"#;
        let rows = [
            order_row(
                2,
                "E-1",
                &[(
                    "I",
                    r#"<c r="I2" t="e"><f>1/0</f><v>#DIV/0!</v></c>"#.into(),
                )],
            ),
            order_row(
                3,
                "E-2",
                &[
                    (
                        "I",
                        r#"<c r="I3" t="str"><f>"r"&amp;"1"</f><v>r1</v></c>"#.into(),
                    ),
                    ("J", r#"<c r="J3" s="2"><f>F3*E3</f><v>10</v></c>"#.into()),
                    ("H", r#"<c r="H3" t="b"><v>1</v></c>"#.into()),
                ],
            ),
            order_row(
                4,
                "E-3",
                &[(
                    "B",
                    r#"<c r="B4" s="1"><v>46351.926423611111</v></c>"#.into(),
                )],
            ),
            order_row(5, "E-4", &[("J", r#"<c r="J5"><f>F5*E5</f></c>"#.into())]),
        ];
        let orders = read(workbook(&sheet(&rows), None, Some(styles)), 1 << 20);
        let m = messages(&orders[0]);
        assert_eq!(field(&orders[0], Field::PaymentRef), "#DIV/0!");
        assert!(
            m.len() == 1
                && m[0].starts_with(
                    "payment_ref in row 2 (cell I2) holds the spreadsheet error \"#DIV/0!\""
                ),
            "{m:?}"
        );
        // Formulas by their saved values; a boolean as the spreadsheet writes it.
        let o = &orders[1];
        assert!(o.notes.is_empty(), "{:?}", o.notes);
        assert_eq!(field(o, Field::PaymentRef), "r1");
        assert_eq!(field(o, Field::PaymentAmount), "10");
        assert_eq!(field(o, Field::PaymentMethod), "TRUE");
        // A date cell shows as a date, never its serial number, and says what to do.
        let o = &orders[2];
        assert_eq!(field(o, Field::PlacedAt), "2026-11-25 22:14:03");
        let m = messages(o);
        assert!(
            m.len() == 1
                && m[0].starts_with("placed_at in row 4 (cell B4) shows \"2026-11-25 22:14:03\"")
                && m[0].contains("RFC 3339")
                && m[0].contains("--timezone"),
            "{m:?}"
        );
        let m = messages(&orders[3]);
        assert!(
            m.len() == 1 && m[0].contains("formula whose value was never saved"),
            "{m:?}"
        );
    }

    #[test]
    fn a_far_cell_costs_its_own_row_and_a_wide_row_is_malformed() {
        let rows = [
            order_row(
                2,
                "W-1",
                &[
                    ("L", r#"<c r="L2" s="3"/>"#.into()),
                    ("M", text_cell("M2", " ")),
                ],
            ),
            order_row(3, "W-2", &[("L", text_cell("L3", "note"))]),
            format!(
                r#"<row r="1048576">{}</row>"#,
                text_cell("XFD1048576", "far")
            ),
            order_row(1_048_575, "W-3", &[]),
        ];
        let book = workbook(&sheet(&rows).replace("A1:J2", "A1:XFD1048576"), None, None);
        let orders = read(book, 1 << 20);
        let lines: Vec<u64> = orders.iter().map(|o| o.line).collect();
        assert_eq!(lines, [2, 3, 1_048_576, 1_048_575]);
        // Empty cells past the header are nothing.
        assert_eq!(orders[0].order_id(), Some("W-1"));
        // As CSV: more fields than the header is not an order.
        let (raw, reason) = malformed(&orders[1]);
        assert_eq!(reason, "wrong number of fields: 12 where the header has 10");
        assert!(
            raw.starts_with("W-2,2026-11-25T22:14:03Z,") && raw.ends_with(",10,,note"),
            "{raw}"
        );
        let (raw, reason) = malformed(&orders[2]);
        assert_eq!(
            reason,
            "wrong number of fields: 16384 where the header has 10"
        );
        assert_eq!(raw, format!("{}far", ",".repeat(16_383)));
        assert_eq!(orders[3].order_id(), Some("W-3"));
    }

    #[test]
    fn a_row_over_the_limit_is_malformed_and_reading_goes_on() {
        let long = "x".repeat(5000);
        let strings = format!(
            r#"<sst count="999999999" uniqueCount="2"><si><t>{long}</t></si><si><r><t>a</t></r><r><t xml:space="preserve"> b</t></r><rPh><t>ignored</t></rPh></si></sst>"#
        );
        let rows = [
            order_row(2, "L-1", &[("I", text_cell("I2", &long))]),
            order_row(3, "L-2", &[("I", r#"<c r="I3" t="s"><v>0</v></c>"#.into())]),
            order_row(4, "L-3", &[("I", r#"<c r="I4" t="s"><v>1</v></c>"#.into())]),
            order_row(5, "L-4", &[("I", text_cell("I5", &"y".repeat(450)))]),
        ];
        let orders = read(workbook(&sheet(&rows), Some(&strings), None), 500);
        assert_eq!(orders.len(), 4);
        for (o, line) in [(&orders[0], 2), (&orders[1], 3), (&orders[3], 5)] {
            let (raw, reason) = malformed(o);
            assert_eq!(o.line, line);
            assert_eq!(
                reason,
                "the row is longer than 500 bytes (--max-record-bytes)"
            );
            assert!(raw.len() <= 1024 && raw.starts_with("L-"), "{raw}");
        }
        // Rich text runs end to end, without the phonetic reading.
        assert_eq!(field(&orders[2], Field::PaymentRef), "a b");
    }

    #[test]
    fn the_header_is_the_first_row_with_text_and_must_be_there() {
        let rows = [order_row(4, "H-1", &[])];
        let text = sheet(&rows)
            .replace(r#"<row r="1" "#, r#"<row r="3" "#)
            .replace("1\" t=\"inlineStr\"", "3\" t=\"inlineStr\"");
        let text = text.replace(
            "<sheetData>",
            r#"<sheetData><row r="1"><c r="A1" s="1"/></row><row r="2"/>"#,
        );
        let orders = read(workbook(&text, None, None), 1 << 20);
        assert_eq!((orders[0].order_id(), orders[0].line), (Some("H-1"), 4));
        let missing = sheet(&[]).replace(">sku<", ">skew<");
        let err = open(workbook(&missing, None, None), 1 << 20).err().unwrap();
        assert!(err.to_string().contains("'sku'"), "{err}");
        let empty = r#"<worksheet><sheetData/></worksheet>"#;
        assert!(matches!(
            open(workbook(empty, None, None), 1 << 20).err().unwrap(),
            InputError::NoHeader { .. }
        ));
        let err = open(b"order_id\n".to_vec(), 1 << 20).err().unwrap();
        assert!(err.to_string().contains("xlsx"), "{err}");
    }

    #[test]
    fn title_rows_are_skipped_and_date_cells_read_in_the_zone() {
        let styles = r#"<styleSheet><cellXfs count="2"><xf numFmtId="0"/><xf numFmtId="22" applyNumberFormat="1"/></cellXfs></styleSheet>"#;
        let rows = [order_row(
            3,
            "T-1",
            &[("B", r#"<c r="B3" s="1"><v>46351.334849537</v></c>"#.into())],
        )];
        let text = sheet(&rows)
            .replace(r#"<row r="1" "#, r#"<row r="2" "#)
            .replace("1\" t=\"inlineStr\"", "2\" t=\"inlineStr\"")
            .replace(
                "<sheetData>",
                &format!(
                    "<sheetData><row r=\"1\">{}</row>",
                    text_cell("A1", "Order export 2026-11-25")
                ),
            );
        let book = workbook(&text, None, Some(styles));
        let e = open(book.clone(), 1 << 20).err().unwrap();
        assert!(
            matches!(
                e,
                InputError::MissingColumns {
                    header_at: Some(HeaderAt { read: 1, found: 2 }),
                    ..
                }
            ),
            "{e}"
        );
        let opts = ReadOptions {
            skip_rows: 1,
            timezone: Some(crate::model::local_time::Zone::parse("Europe/Berlin").unwrap()),
            ..ReadOptions::default()
        };
        let orders: Vec<RawOrder> = open_with(book, &opts)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(orders[0].line, 3);
        assert_eq!(
            field(&orders[0], Field::PlacedAt),
            "2026-11-25T08:02:11+01:00"
        );
        assert!(orders[0].notes.is_empty(), "{:?}", orders[0].notes);
    }
}
