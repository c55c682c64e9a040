//! CSV orders: RFC 4180 rows grouped into orders by consecutive order_id.

use std::collections::VecDeque;
use std::io::{self, BufRead, Read};
use std::sync::Arc;

use csv::{ByteRecord, StringRecord};

use super::{
    header, Columns, HeaderAt, InputError, RawBody, RawOrder, RawRow, ReadOptions, Source,
};
use crate::model::failure::parse_failure_label;
use crate::model::order::Field;
use crate::model::InputFormat;

/// The reason of a row that is not UTF-8, with what to try.
pub(super) const NOT_UTF8: &str = "not valid UTF-8 (if the file comes from Excel or an older system, \
     try --encoding windows-1252; a file saved as UTF-16 needs its byte-order mark or --encoding utf-16)";

pub(super) struct CsvOrders {
    path: String,
    delimiter: u8,
    rdr: csv::Reader<Tee>,
    /// Stream offset where the current CSV parser started (it restarts after broken quoting).
    offset: u64,
    columns: Arc<Columns>,
    width: usize,
    /// The record being read, reused.
    scratch: ByteRecord,
    group: Vec<RawRow>,
    out: VecDeque<RawOrder>,
    done: bool,
    /// The most bytes one record may hold (`--max-record-bytes`).
    limit: u64,
}

fn parser(delimiter: u8, tee: Tee) -> csv::Reader<Tee> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .buffer_capacity(256 * 1024)
        .from_reader(tee)
}

impl CsvOrders {
    /// Read the title lines `opts` skip and the header, and check it.
    pub(super) fn new(
        source: Source,
        format: InputFormat,
        opts: &ReadOptions,
    ) -> Result<Self, InputError> {
        let path = source.path.clone();
        let delimiter = opts.delimiter.unwrap_or(format.default_delimiter());
        let limit = opts.max_record_bytes as u64;
        let mut reader = source.reader;
        skip_bom(&mut reader).map_err(|e| read_err(&path, 1, e))?;
        skip_title_lines(&mut reader, &path, opts.skip_rows, limit)?;
        let first = opts.skip_rows + 1;
        let mut rdr = parser(delimiter, Tee::new(reader, 0, first, limit));
        let mut header = ByteRecord::new();
        if !next_nonblank(&mut rdr, &mut header, &path, limit)? {
            return Err(match opts.skip_rows {
                0 => InputError::NoHeader { path },
                skip => InputError::AllSkipped { path, skip },
            });
        }
        let header = StringRecord::from_byte_record(header)
            .map_err(|_| InputError::HeaderEncoding { path: path.clone() })?;
        let cells: Vec<&str> = header.iter().collect();
        let columns = match header::order_columns(&path, &cells, delimiter, opts) {
            Ok(c) => c,
            Err(e) => {
                let at = header.position().map_or(0, |p| p.byte());
                let read = rdr.get_mut().physical_line(at);
                return Err(find_header(e, &mut rdr, read, opts));
            }
        };
        let end = rdr.position().byte();
        rdr.get_mut().line_at(end);
        rdr.get_mut().discard_to(end);
        rdr.get_mut().record_start = end;
        Ok(CsvOrders {
            limit,
            path,
            delimiter,
            width: header.len(),
            scratch: ByteRecord::new(),
            rdr,
            offset: 0,
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
            notes: Vec::new(),
        });
    }

    /// Start a fresh CSV parser at stream offset `at`, over the bytes already
    /// read past it and the rest of the input.
    fn restart(&mut self, at: u64) {
        let fresh = parser(self.delimiter, Tee::new(Box::new(io::empty()), 0, 1, 0));
        let mut old = std::mem::replace(&mut self.rdr, fresh).into_inner();
        let line = old.line_at(at);
        let rest = old.slice(at, u64::MAX).to_vec();
        let inner: Box<dyn BufRead + Send> = Box::new(io::Cursor::new(rest).chain(old.inner));
        self.rdr = parser(self.delimiter, Tee::new(inner, at, line, self.limit));
        self.offset = at;
    }

    /// A record longer than the limit (reading stopped there): its first
    /// physical line is a malformed record of its own. When that line ends
    /// within what was read (an unclosed quote swallowed the lines after it),
    /// reading starts again on the next line; otherwise the rest of the line
    /// is skipped unread, up to `SKIP_FACTOR` times the limit.
    fn overlong(&mut self, start: u64) -> Result<(), InputError> {
        let limit = self.limit;
        self.flush();
        let tee = self.rdr.get_mut();
        let line = tee.line_at(start);
        let read = tee.slice(start, u64::MAX);
        let nl = read.iter().position(|b| *b == b'\n');
        let first = &read[..nl.unwrap_or(read.len())];
        let reason = if nl.is_some() && memchr(b'"', first) && !well_quoted(first, self.delimiter) {
            "broken quoting (a quote is not closed on its line)".to_string()
        } else {
            format!("the record is longer than {limit} bytes (--max-record-bytes)")
        };
        let bad = RawOrder::malformed(line, first.strip_suffix(b"\r").unwrap_or(first), reason);
        let end = start + read.len() as u64;
        self.out.push_back(bad);
        if let Some(nl) = nl {
            self.restart(start + nl as u64 + 1);
            return Ok(());
        }
        let fresh = parser(self.delimiter, Tee::new(Box::new(io::empty()), 0, 1, 0));
        let mut old = std::mem::replace(&mut self.rdr, fresh).into_inner();
        let skipped = super::skip_line(&mut old.inner, limit.saturating_mul(super::SKIP_FACTOR))
            .map_err(|e| read_err(&self.path, line, e))?
            .ok_or_else(|| InputError::Overlong {
                path: self.path.clone(),
                line,
                limit: limit.saturating_mul(super::SKIP_FACTOR),
            })?;
        let at = end + skipped;
        self.rdr = parser(self.delimiter, Tee::new(old.inner, at, line + 1, limit));
        self.offset = at;
        Ok(())
    }

    /// Read one record and queue what it completes. False at end of input.
    fn step(&mut self) -> Result<bool, InputError> {
        let mut rec = std::mem::take(&mut self.scratch);
        let res = self.rdr.read_byte_record(&mut rec);
        if self.rdr.get_ref().full {
            let start = self.offset + rec.position().map(|p| p.byte()).unwrap_or(0);
            self.scratch = ByteRecord::new();
            self.overlong(start)?;
            return Ok(true);
        }
        let more = res.map_err(|e| {
            let line = self.rdr.get_ref().line;
            read_err(&self.path, line, csv_io(e))
        })?;
        if !more {
            self.flush();
            return Ok(false);
        }
        let out = self.handle(&rec);
        // A record as long as the limit leaves a buffer that large: not kept.
        if rec.as_slice().len() < 64 * 1024 {
            self.scratch = rec;
        }
        out
    }

    /// Queue what one record completes.
    fn handle(&mut self, rec: &ByteRecord) -> Result<bool, InputError> {
        let mut start = self.offset + rec.position().map(|p| p.byte()).unwrap_or(0);
        let end = self.offset + self.rdr.position().byte();
        let tee = self.rdr.get_mut();
        // The parser's record position can sit on the blank lines it skipped.
        let blank = tee
            .slice(start, end)
            .iter()
            .take_while(|b| matches!(b, b'\n' | b'\r'))
            .count();
        start += blank as u64;
        let line = tee.line_at(start);
        if is_blank(rec) {
            self.consumed(end);
            return Ok(true);
        }
        let raw = tee.slice(start, end);
        let body = raw.strip_suffix(b"\n").unwrap_or(raw);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        let outcome = if memchr(b'"', body) && !well_quoted(body, self.delimiter) {
            if let Some(nl) = body.iter().position(|b| *b == b'\n') {
                // An unclosed quote swallowed the lines after it: only its own
                // line is the bad record; parse again from the next line.
                let bad = RawOrder::malformed(
                    line,
                    &body[..nl],
                    "broken quoting (a quote is not closed on its line)",
                );
                self.reject(bad);
                self.restart(start + nl as u64 + 1);
                return Ok(true);
            }
            Err(RawOrder::malformed(line, body, "broken quoting"))
        } else if rec.len() != self.width {
            let reason = format!(
                "wrong number of fields: {} where the header has {}",
                rec.len(),
                self.width
            );
            Err(RawOrder::malformed(line, body, reason))
        } else {
            row_of(rec, line).map_err(|()| RawOrder::malformed(line, body, NOT_UTF8))
        };
        match outcome {
            Ok(row) => self.group_row(row),
            Err(bad) => self.reject(bad),
        }
        self.consumed(end);
        Ok(true)
    }

    /// A record that is no order: the group before it is complete, and it
    /// follows it.
    fn reject(&mut self, bad: RawOrder) {
        self.flush();
        self.out.push_back(bad);
    }

    /// A row joins the order before it when it has the same order id;
    /// otherwise that order is complete and the row starts the next.
    fn group_row(&mut self, row: RawRow) {
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

    /// The input up to `end` is read: its lines counted, its bytes let go.
    fn consumed(&mut self, end: u64) {
        let tee = self.rdr.get_mut();
        tee.line_at(end);
        tee.discard_to(end);
        tee.record_start = end;
    }
}

/// A record as a row of text, or `Err` when it is not UTF-8. The copy is
/// sized to the row (the scratch record keeps its capacity for the next
/// one; its clone would copy all of that capacity).
fn row_of(rec: &ByteRecord, line: u64) -> Result<RawRow, ()> {
    let mut row = ByteRecord::with_capacity(rec.as_slice().len(), rec.len());
    for field in rec.iter() {
        row.push_field(field);
    }
    StringRecord::from_byte_record(row)
        .map(|record| RawRow { line, record })
        .map_err(drop)
}

fn memchr(needle: u8, hay: &[u8]) -> bool {
    hay.contains(&needle)
}

/// RFC 4180 quoting of one record (without its line terminator): a quoted
/// field is closed, doubled quotes inside it, and followed by a delimiter or
/// the end; an unquoted field holds no quote at all.
fn well_quoted(rec: &[u8], delimiter: u8) -> bool {
    let n = rec.len();
    let mut i = 0;
    loop {
        if i < n && rec[i] == b'"' {
            i += 1;
            loop {
                match rec[i..].iter().position(|b| *b == b'"') {
                    None => return false,
                    Some(k) => {
                        i += k + 1;
                        if i < n && rec[i] == b'"' {
                            i += 1;
                        } else {
                            break;
                        }
                    }
                }
            }
            if i == n {
                return true;
            }
            if rec[i] != delimiter {
                return false;
            }
            i += 1;
        } else {
            let len = rec[i..]
                .iter()
                .position(|b| *b == delimiter)
                .unwrap_or(n - i);
            if rec[i..i + len].contains(&b'"') {
                return false;
            }
            i += len;
            if i == n {
                return true;
            }
            i += 1;
        }
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

/// The next record that is not a blank line, into `rec`; false at the end.
fn next_nonblank(
    rdr: &mut csv::Reader<Tee>,
    rec: &mut ByteRecord,
    path: &str,
    limit: u64,
) -> Result<bool, InputError> {
    loop {
        let res = rdr.read_byte_record(rec);
        if rdr.get_ref().full {
            // Nothing after a header that long can be read as orders.
            let line = rdr.get_ref().line;
            return Err(InputError::Overlong {
                path: path.to_string(),
                line,
                limit,
            });
        }
        match res {
            Ok(true) if is_blank(rec) => {
                let end = rdr.position().byte();
                rdr.get_mut().record_start = end;
            }
            Ok(more) => return Ok(more),
            Err(e) => return Err(read_err(path, 1, csv_io(e))),
        }
    }
}

/// Skip the title lines before the header (`--skip-rows`): whole physical
/// lines, each no longer than a record may be.
pub(super) fn skip_title_lines(
    reader: &mut Box<dyn BufRead + Send>,
    path: &str,
    lines: u64,
    limit: u64,
) -> Result<(), InputError> {
    for line in 1..=lines {
        match super::skip_line(reader, limit).map_err(|e| read_err(path, line, e))? {
            Some(0) => {
                return Err(InputError::AllSkipped {
                    path: path.to_string(),
                    skip: lines,
                })
            }
            Some(_) => {}
            None => {
                return Err(InputError::Overlong {
                    path: path.to_string(),
                    line,
                    limit,
                })
            }
        }
    }
    Ok(())
}

/// A header that lacks most columns may be a title line above the real one:
/// the next few records are looked at, and the error says on which line the
/// header seems to be.
fn find_header(
    e: InputError,
    rdr: &mut csv::Reader<Tee>,
    read: u64,
    opts: &ReadOptions,
) -> InputError {
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
        let mut rec = ByteRecord::new();
        for _ in 0..LOOK_AHEAD {
            if !matches!(rdr.read_byte_record(&mut rec), Ok(true)) || rdr.get_ref().full {
                break;
            }
            let cells = rec.iter().map(|c| std::str::from_utf8(c).unwrap_or(""));
            if header::looks_like_header(&required, header::covered(&required, cells, opts)) {
                let at = rec.position().map_or(0, |p| p.byte());
                let found = rdr.get_mut().physical_line(at);
                header_at = Some(HeaderAt { read, found });
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

/// Records looked at below a header that lacks most columns.
pub(super) const LOOK_AHEAD: usize = 20;

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

/// Keeps a copy of the bytes the CSV parser reads, so that a record that cannot
/// be parsed can be reported with its raw text, and counts physical lines (the
/// CSV parser does not count the blank lines it skips). It hands the parser
/// no more than `limit` bytes past the start of the record being read: a
/// longer record (an unclosed quote, a file that is no CSV) ends there, as
/// if the input ended, and `full` says so.
struct Tee {
    inner: Box<dyn BufRead + Send>,
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    base: u64,
    /// Lines are counted up to this stream offset...
    cursor: u64,
    /// ...where this physical line (1-based) starts or runs.
    line: u64,
    /// Stream offset where the record being read starts.
    record_start: u64,
    limit: u64,
    /// Reading stopped at the limit.
    full: bool,
}

impl Tee {
    fn new(inner: Box<dyn BufRead + Send>, at: u64, line: u64, limit: u64) -> Tee {
        Tee {
            inner,
            buf: Vec::new(),
            base: at,
            cursor: at,
            line,
            record_start: at,
            limit,
            full: false,
        }
    }

    fn slice(&self, start: u64, end: u64) -> &[u8] {
        let s = start.saturating_sub(self.base) as usize;
        let e = (end.saturating_sub(self.base).min(self.buf.len() as u64)) as usize;
        &self.buf[s.min(e)..e]
    }

    /// The physical line at stream offset `pos` (at or after the last one asked).
    fn line_at(&mut self, pos: u64) -> u64 {
        if pos > self.cursor {
            let newlines = self
                .slice(self.cursor, pos)
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            self.line += newlines as u64;
            self.cursor = pos;
        }
        self.line
    }

    /// The physical line of the record the parser says starts at `pos`
    /// (the parser's record position can sit on blank lines it skipped).
    fn physical_line(&mut self, pos: u64) -> u64 {
        let blank = self
            .slice(pos, u64::MAX)
            .iter()
            .take_while(|b| matches!(b, b'\n' | b'\r'))
            .filter(|b| **b == b'\n')
            .count();
        self.line_at(pos) + blank as u64
    }

    /// Forget bytes before `pos` (never past the line cursor); done in large
    /// steps to keep the copying cheap.
    fn discard_to(&mut self, pos: u64) {
        let k = pos.min(self.cursor).saturating_sub(self.base) as usize;
        if k >= 64 * 1024 || k == self.buf.len() {
            let k = k.min(self.buf.len());
            self.buf.drain(..k);
            self.base += k as u64;
        }
    }
}

impl Read for Tee {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let read_to = self.base + self.buf.len() as u64;
        let room = (self.record_start + self.limit).saturating_sub(read_to);
        if room == 0 {
            self.full = true;
            return Ok(0);
        }
        let want = out.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut out[..want])?;
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
        CsvOrders::new(source(text), InputFormat::Csv, &ReadOptions::default())
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
        let pos = text.iter().position(|b| *b == 0xc3).unwrap();
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
        let plain = ReadOptions::default();
        let err = CsvOrders::new(
            source(format!("{missing}\n").as_bytes()),
            InputFormat::Csv,
            &plain,
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("'sku'"), "{err}");
        let dup = format!("{HEADER},sku\n");
        let err = CsvOrders::new(source(dup.as_bytes()), InputFormat::Csv, &plain)
            .err()
            .unwrap();
        assert!(matches!(err, InputError::DuplicateColumn { .. }));
        let err = CsvOrders::new(source(b""), InputFormat::Csv, &plain)
            .err()
            .unwrap();
        assert!(matches!(err, InputError::NoHeader { .. }));
    }

    #[test]
    fn title_lines_are_skipped_and_lines_still_counted() {
        let text = format!("Order export 2026-11-25,,\n\n{HEADER}\n{}\n", row("A"));
        let titled = ReadOptions {
            skip_rows: 2,
            ..ReadOptions::default()
        };
        let orders: Vec<RawOrder> =
            CsvOrders::new(source(text.as_bytes()), InputFormat::Csv, &titled)
                .unwrap()
                .map(Result::unwrap)
                .collect();
        assert_eq!((orders[0].order_id(), orders[0].line), (Some("A"), 4));
        let too_many = ReadOptions {
            skip_rows: 9,
            ..ReadOptions::default()
        };
        let e = CsvOrders::new(source(text.as_bytes()), InputFormat::Csv, &too_many)
            .err()
            .unwrap();
        assert!(matches!(e, InputError::AllSkipped { skip: 9, .. }), "{e}");
    }

    #[test]
    fn a_title_line_read_as_the_header_says_where_the_header_is() {
        let text = format!("Order export 2026-11-25,,\n\n\n{HEADER}\n{}\n", row("A"));
        let e = CsvOrders::new(
            source(text.as_bytes()),
            InputFormat::Csv,
            &ReadOptions::default(),
        )
        .err()
        .unwrap();
        match &e {
            InputError::MissingColumns { header_at, .. } => {
                assert_eq!(*header_at, Some(HeaderAt { read: 1, found: 4 }))
            }
            other => panic!("{other}"),
        }
        assert!(e.to_string().contains("pass --skip-rows 3"), "{e}");
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

    #[test]
    fn an_unclosed_quote_costs_only_its_own_line() {
        let text = format!(
            "{HEADER},note\n{},\"open\n{},x\n\n{},\"two\nlines\"\n{},y\n",
            row("A"),
            row("B"),
            row("C"),
            row("D")
        );
        let orders = read_all(text.as_bytes());
        let ids: Vec<_> = orders.iter().map(|o| (o.order_id(), o.line)).collect();
        assert_eq!(
            ids,
            [(None, 2), (Some("B"), 3), (Some("C"), 5), (Some("D"), 7)],
            "{orders:#?}"
        );
        match &orders[0].body {
            RawBody::Malformed { raw, reason } => {
                assert!(raw.ends_with(",\"open"), "{raw}");
                assert!(reason.contains("quot"), "{reason}");
            }
            _ => panic!("expected malformed"),
        }
    }

    #[test]
    fn a_stray_quote_is_broken_quoting() {
        let text = format!(
            "{HEADER},note\n{},5\" screen\n{},\"ok \"\"quoted\"\"\"\n",
            row("A"),
            row("B")
        );
        let orders = read_all(text.as_bytes());
        assert_eq!(orders.len(), 2);
        assert!(
            matches!(&orders[0].body, RawBody::Malformed { reason, .. } if reason.contains("quoting"))
        );
        let RawBody::Rows { columns, rows, .. } = &orders[1].body else {
            panic!()
        };
        assert_eq!(rows[0].cell(columns, 10), "ok \"quoted\"");
    }

    #[test]
    fn well_quoted_follows_rfc_4180() {
        for ok in [
            &b"a,b"[..],
            b"\"a,b\",c",
            b"\"a\"\"b\",",
            b"\"x\ny\"",
            b",,\"\"",
        ] {
            assert!(well_quoted(ok, b','), "{}", String::from_utf8_lossy(ok));
        }
        for bad in [&b"a\"b,c"[..], b"\"open", b"\"a\"b,c", b"a,\"b"] {
            assert!(!well_quoted(bad, b','), "{}", String::from_utf8_lossy(bad));
        }
    }
}
