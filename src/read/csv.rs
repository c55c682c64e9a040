//! CSV orders: RFC 4180 rows grouped into orders by consecutive order_id.

use std::collections::{HashSet, VecDeque};
use std::io::{self, BufRead, Read};
use std::sync::Arc;

use csv::{ByteRecord, StringRecord};

use super::{Columns, InputError, RawBody, RawOrder, RawRow, Source};
use crate::model::order::{Field, REPORT_COLUMNS};

pub(super) struct CsvOrders {
    path: String,
    rdr: csv::Reader<Tee>,
    columns: Arc<Columns>,
    width: usize,
    group: Vec<RawRow>,
    out: VecDeque<RawOrder>,
    done: bool,
}

impl CsvOrders {
    pub(super) fn new(source: Source, delimiter: u8) -> Result<Self, InputError> {
        let path = source.path.clone();
        let mut reader = source.reader;
        skip_bom(&mut reader).map_err(|e| read_err(&path, 1, e))?;
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter)
            .buffer_capacity(256 * 1024)
            .from_reader(Tee {
                inner: reader,
                buf: Vec::new(),
                base: 0,
            });
        let mut header = ByteRecord::new();
        loop {
            match rdr.read_byte_record(&mut header) {
                Ok(true) if is_blank(&header) => continue,
                Ok(true) => break,
                Ok(false) => return Err(InputError::NoHeader { path }),
                Err(e) => return Err(read_err(&path, 1, csv_io(e))),
            }
        }
        let header = StringRecord::from_byte_record(header)
            .map_err(|_| InputError::HeaderEncoding { path: path.clone() })?;
        let columns = map_header(&path, &header)?;
        let end = rdr.position().byte();
        rdr.get_mut().discard_to(end);
        Ok(CsvOrders {
            path,
            width: header.len(),
            rdr,
            columns: Arc::new(columns),
            group: Vec::new(),
            out: VecDeque::new(),
            done: false,
        })
    }

    /// Close the order being gathered, if any.
    fn flush(&mut self) {
        if self.group.is_empty() {
            return;
        }
        let rows = std::mem::take(&mut self.group);
        self.out.push_back(RawOrder {
            file: 0,
            line: rows[0].line,
            body: RawBody::Rows {
                columns: Arc::clone(&self.columns),
                rows,
                no_items: false,
            },
            duplicate: false,
            notes: Vec::new(),
        });
    }

    /// Read one record and queue what it completes. False at end of input.
    fn step(&mut self) -> Result<bool, InputError> {
        let mut rec = ByteRecord::with_capacity(256, self.width);
        let more = self
            .rdr
            .read_byte_record(&mut rec)
            .map_err(|e| read_err(&self.path, self.rdr.position().line(), csv_io(e)))?;
        if !more {
            self.flush();
            return Ok(false);
        }
        let (start, line) = rec
            .position()
            .map(|p| (p.byte(), p.line()))
            .unwrap_or((0, 0));
        let end = self.rdr.position().byte();
        if is_blank(&rec) {
            self.rdr.get_mut().discard_to(end);
            return Ok(true);
        }
        if rec.len() != self.width {
            let reason = format!(
                "wrong number of fields: {} where the header has {}",
                rec.len(),
                self.width
            );
            let bad = RawOrder::malformed(line, self.rdr.get_ref().slice(start, end), reason);
            self.flush();
            self.out.push_back(bad);
        } else {
            match StringRecord::from_byte_record(rec) {
                Ok(record) => {
                    let row = RawRow { line, record };
                    let id = row.get(&self.columns, Field::OrderId);
                    let same = !id.is_empty()
                        && self
                            .group
                            .first()
                            .is_some_and(|first| first.get(&self.columns, Field::OrderId) == id);
                    if !same {
                        self.flush();
                    }
                    self.group.push(row);
                }
                Err(_) => {
                    let raw = self.rdr.get_ref().slice(start, end);
                    let bad = RawOrder::malformed(line, raw, "not valid UTF-8");
                    self.flush();
                    self.out.push_back(bad);
                }
            }
        }
        self.rdr.get_mut().discard_to(end);
        Ok(true)
    }
}

impl Iterator for CsvOrders {
    type Item = Result<RawOrder, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(o) = self.out.pop_front() {
                return Some(Ok(o));
            }
            if self.done {
                return None;
            }
            match self.step() {
                Ok(true) => {}
                Ok(false) => self.done = true,
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

/// Map header names (trimmed, case-insensitive) to the ten fields and the extras.
fn map_header(path: &str, header: &StringRecord) -> Result<Columns, InputError> {
    let mut index: [Option<usize>; 10] = [None; 10];
    let mut extras = Vec::new();
    let mut seen = HashSet::new();
    for (pos, name) in header.iter().enumerate() {
        let name = name.trim().to_ascii_lowercase();
        let name = if name.is_empty() {
            format!("column_{}", pos + 1)
        } else {
            name
        };
        if !seen.insert(name.clone()) {
            return Err(InputError::DuplicateColumn {
                path: path.to_string(),
                column: name,
            });
        }
        if let Some(f) = Field::from_name(&name) {
            index[f.index()] = Some(pos);
        } else if !REPORT_COLUMNS.contains(&name.as_str()) {
            extras.push((pos, name));
        }
    }
    let mut out = [0usize; 10];
    for f in Field::ALL {
        match index[f.index()] {
            Some(i) => out[f.index()] = i,
            None => {
                return Err(InputError::MissingColumn {
                    path: path.to_string(),
                    column: f.name().to_string(),
                    found: header.iter().map(str::trim).collect::<Vec<_>>().join(","),
                })
            }
        }
    }
    Ok(Columns {
        index: out,
        extras,
        unescape: true,
    })
}

fn is_blank(rec: &ByteRecord) -> bool {
    rec.len() == 1 && rec[0].iter().all(u8::is_ascii_whitespace)
}

fn skip_bom(r: &mut Box<dyn BufRead + Send>) -> io::Result<()> {
    let buf = r.fill_buf()?;
    if buf.starts_with(b"\xEF\xBB\xBF") {
        r.consume(3);
    }
    Ok(())
}

fn csv_io(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

fn read_err(path: &str, line: u64, source: io::Error) -> InputError {
    InputError::Read {
        path: path.to_string(),
        line,
        source,
    }
}

/// Keeps a copy of the bytes the CSV parser reads, so a record that cannot be
/// parsed can be reported with its raw text.
struct Tee {
    inner: Box<dyn BufRead + Send>,
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    base: u64,
}

impl Tee {
    fn slice(&self, start: u64, end: u64) -> &[u8] {
        let s = start.saturating_sub(self.base) as usize;
        let e = (end.saturating_sub(self.base) as usize).min(self.buf.len());
        &self.buf[s.min(e)..e]
    }

    /// Forget bytes before `pos`; done in large steps to keep the copying cheap.
    fn discard_to(&mut self, pos: u64) {
        let k = pos.saturating_sub(self.base) as usize;
        if k >= 64 * 1024 || k == self.buf.len() {
            let k = k.min(self.buf.len());
            self.buf.drain(..k);
            self.base += k as u64;
        }
    }
}

impl Read for Tee {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        self.buf.extend_from_slice(&out[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::InputMeter;

    const HEADER: &str = "order_id,placed_at,customer_email,sku,quantity,unit_price,currency,payment_method,payment_ref,payment_amount";

    fn source(text: &[u8]) -> Source {
        Source {
            path: "t.csv".into(),
            reader: Box::new(io::Cursor::new(text.to_vec())),
            meter: Arc::new(InputMeter::default()),
        }
    }

    fn read_all(text: &[u8]) -> Vec<RawOrder> {
        CsvOrders::new(source(text), b',')
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }

    fn row(id: &str) -> String {
        format!("{id},2026-11-25T22:14:03Z,a@b.co,SKU-1,1,1.00,EUR,card,r1,1.00")
    }

    #[test]
    fn groups_consecutive_rows_and_counts_physical_lines() {
        let text = format!(
            "{HEADER}\n{}\n{}\n\n{}\n{}\n",
            row("A"),
            row("A"),
            row("B"),
            row("A")
        );
        let orders = read_all(text.as_bytes());
        assert_eq!(orders.len(), 3);
        assert_eq!(orders[0].order_id(), Some("A"));
        assert_eq!(orders[0].line, 2);
        assert_eq!(orders[1].order_id(), Some("B"));
        assert_eq!(orders[1].line, 5, "blank line 4 is skipped but counted");
        assert_eq!(orders[2].line, 6);
        match &orders[0].body {
            RawBody::Rows { rows, .. } => assert_eq!(rows.len(), 2),
            _ => panic!("expected rows"),
        }
    }

    #[test]
    fn bom_crlf_case_and_spaces_in_the_header_are_accepted() {
        let header = HEADER
            .replace("sku", " SKU ")
            .replace("order_id", "Order_ID");
        let text = format!("\u{feff}{header},Note\r\n{},hello\r\n", row("A"));
        let orders = read_all(text.as_bytes());
        assert_eq!(orders.len(), 1);
        let RawBody::Rows { columns, rows, .. } = &orders[0].body else {
            panic!()
        };
        assert_eq!(rows[0].get(columns, Field::OrderId), "A");
        assert_eq!(rows[0].get(columns, Field::PaymentAmount), "1.00");
        assert_eq!(columns.extras, vec![(10, "note".to_string())]);
    }

    #[test]
    fn ragged_rows_and_bad_utf8_are_malformed_records_with_raw_text() {
        let mut text = format!("{HEADER}\n{}\nX,1,2\n", row("A")).into_bytes();
        text.extend_from_slice(row("B").replace("a@b", "a\u{e9}@b").as_bytes());
        let pos = text.len() - 30;
        text[pos] = 0xff;
        text.extend_from_slice(format!("\n{}\n", row("C")).as_bytes());
        let orders = read_all(&text);
        assert_eq!(orders.len(), 4);
        match &orders[1].body {
            RawBody::Malformed { raw, reason } => {
                assert_eq!(raw, "X,1,2");
                assert!(reason.contains("3 where the header has 10"), "{reason}");
            }
            _ => panic!("expected malformed"),
        }
        assert_eq!(orders[1].line, 3);
        assert!(matches!(
            &orders[2].body,
            RawBody::Malformed { reason, .. } if reason.contains("UTF-8")
        ));
        assert_eq!(orders[3].order_id(), Some("C"));
        assert_eq!(orders[3].line, 5);
    }

    #[test]
    fn quoted_newlines_keep_line_numbers_physical() {
        let text = format!(
            "{HEADER},note\n{},\"two\nlines\"\n{},x\n",
            row("A"),
            row("B")
        );
        let orders = read_all(text.as_bytes());
        assert_eq!(orders[0].line, 2);
        assert_eq!(orders[1].line, 4);
    }

    #[test]
    fn formula_escape_quote_is_dropped_on_input() {
        let text = format!("{HEADER},note\n{},'=SUM(A1)\n", row("A"));
        let orders = read_all(text.as_bytes());
        let RawBody::Rows { columns, rows, .. } = &orders[0].body else {
            panic!()
        };
        assert_eq!(rows[0].cell(columns, columns.extras[0].0), "=SUM(A1)");
    }

    #[test]
    fn header_problems_are_input_errors() {
        let missing = HEADER.replace(",sku", "");
        let err = CsvOrders::new(source(format!("{missing}\n").as_bytes()), b',')
            .err()
            .unwrap();
        assert!(err.to_string().contains("'sku'"), "{err}");
        let dup = format!("{HEADER},sku\n");
        let err = CsvOrders::new(source(dup.as_bytes()), b',').err().unwrap();
        assert!(matches!(err, InputError::DuplicateColumn { .. }));
        let err = CsvOrders::new(source(b""), b',').err().unwrap();
        assert!(matches!(err, InputError::NoHeader { .. }));
    }

    #[test]
    fn our_report_columns_are_not_extras() {
        let text = format!(
            "{HEADER},error_code,error_detail,source_file,source_line\n{},X,Y,Z,1\n",
            row("A")
        );
        let orders = read_all(text.as_bytes());
        let RawBody::Rows { columns, .. } = &orders[0].body else {
            panic!()
        };
        assert!(columns.extras.is_empty());
    }
}
