//! Input: bytes to raw order records with their file and line; CSV, TSV,
//! JSONL and xlsx, gzip, standard input, text encodings, and the options
//! that say how a file is read (`ReadOptions`: title lines, column names,
//! time zone). Nothing here judges an order, it only parses.

pub mod catalog;
mod csv;
mod header;
pub mod jsonl;
pub mod options;
mod source;
mod xlsx;

use std::sync::Arc;

use crate::model::escape::unescape_cell;
use crate::model::local_time::Zone;
use crate::model::order::{Field, Problem, SourceLayout};
use crate::model::{FileFormat, InputFormat};

pub use self::header::{HeaderAt, Missing};
pub use self::options::{ColumnMap, ReadOptions, Rename, TextEncoding};
pub use self::source::{open_source, open_source_raw, open_text, InputMeter, Source};

/// The most bytes one record (a CSV row, a JSONL line, a worksheet row) may
/// hold unless `--max-record-bytes` says otherwise: past it the record is
/// `MALFORMED_RECORD`, and memory stays bounded whatever the input.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1 << 20;

/// How far past the limit a line too long to be a record is skipped, looking
/// for its end, before the file is taken for something that is no text file
/// of orders (`/dev/zero`, a disk image) and refused: 1 GiB by default, so
/// that even a 100 MB line is one failed record and the rest of the file
/// is read.
pub const SKIP_FACTOR: u64 = 1024;

/// Skip the rest of the line: every byte up to and including the next line
/// feed, reading at most `max` bytes. Returns how many bytes were skipped,
/// or `None` when no line feed came within `max` (end of input counts as
/// the end of the line).
pub fn skip_line(r: &mut dyn std::io::BufRead, max: u64) -> std::io::Result<Option<u64>> {
    let mut skipped = 0u64;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(Some(skipped));
        }
        let (n, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        r.consume(n);
        skipped += n as u64;
        if done {
            return Ok(Some(skipped));
        }
        if skipped > max {
            return Ok(None);
        }
    }
}

/// What [`read_line_bounded`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoundedLine {
    /// The end of input: nothing read.
    End,
    /// A whole line (with its line feed, when it had one).
    Line,
    /// A line longer than the limit: its first `limit` bytes were kept, and
    /// the rest of it was skipped.
    Overlong,
    /// A line that did not end within `SKIP_FACTOR` times the limit.
    Endless,
}

/// Read one line into `buf` (cleared first), keeping at most `limit` bytes;
/// the rest of a longer line is skipped (see [`skip_line`]) up to
/// `SKIP_FACTOR` times the limit.
pub fn read_line_bounded(
    r: &mut dyn std::io::BufRead,
    buf: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<BoundedLine> {
    buf.clear();
    loop {
        let chunk = r.fill_buf()?;
        if chunk.is_empty() {
            return Ok(if buf.is_empty() {
                BoundedLine::End
            } else {
                BoundedLine::Line
            });
        }
        let (n, done) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        if buf.len() + n > limit {
            let keep = limit - buf.len();
            buf.extend_from_slice(&chunk[..keep]);
            r.consume(keep);
            let max = (limit as u64).saturating_mul(SKIP_FACTOR);
            return Ok(match skip_line(r, max)? {
                Some(_) => BoundedLine::Overlong,
                None => BoundedLine::Endless,
            });
        }
        buf.extend_from_slice(&chunk[..n]);
        r.consume(n);
        if done {
            return Ok(BoundedLine::Line);
        }
    }
}

/// A reader that fails (InvalidData, naming the line) when a line runs past
/// `limit` bytes: for files read whole (catalogs, deliveries), where a line
/// that long means the file is not what its name says.
pub struct LineGuard<R> {
    inner: R,
    limit: usize,
    /// Bytes since the last line feed handed out.
    run: usize,
    line: u64,
}

impl<R: std::io::BufRead> LineGuard<R> {
    pub fn new(inner: R, limit: usize) -> Self {
        LineGuard {
            inner,
            limit,
            run: 0,
            line: 1,
        }
    }
}

impl<R: std::io::BufRead> std::io::Read for LineGuard<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = {
            let buf = std::io::BufRead::fill_buf(self)?;
            let n = buf.len().min(out.len());
            out[..n].copy_from_slice(&buf[..n]);
            n
        };
        std::io::BufRead::consume(self, n);
        Ok(n)
    }
}

impl<R: std::io::BufRead> std::io::BufRead for LineGuard<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        let (limit, run, line) = (self.limit, self.run, self.line);
        let buf = self.inner.fill_buf()?;
        let upto = buf.iter().position(|b| *b == b'\n').unwrap_or(buf.len());
        if run + upto > limit {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "line {line} is longer than {limit} bytes, so this is no text file of rows"
                ),
            ));
        }
        Ok(buf)
    }

    fn consume(&mut self, n: usize) {
        if let Ok(buf) = self.inner.fill_buf() {
            for b in &buf[..n.min(buf.len())] {
                if *b == b'\n' {
                    self.run = 0;
                    self.line += 1;
                } else {
                    self.run += 1;
                }
            }
        }
        self.inner.consume(n);
    }
}

/// The explicit format, else the one the file name implies: of an order
/// file, or of a catalog or delivery file.
pub fn resolve_format<F: FileFormat>(path: &str, explicit: Option<F>) -> Result<F, InputError> {
    if let Some(f) = explicit {
        return Ok(f);
    }
    if path == "-" {
        return Err(InputError::StdinNeedsFormat);
    }
    F::from_path(path).ok_or_else(|| InputError::UnknownFormat {
        path: path.to_string(),
        endings: F::ENDINGS,
    })
}

impl crate::exit::ExitStatus for InputError {
    /// A file that cannot be read as orders is the caller's to fix.
    fn exit_code(&self) -> Option<u8> {
        Some(crate::exit::USAGE)
    }
}

/// Problems with an input file itself (as opposed to one of its records).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot open {path}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: reading failed near line {line}, so nothing of this run was committed")]
    Read {
        path: String,
        line: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {}", header::missing_message(.missing, *.header_at, .found))]
    MissingColumns {
        path: String,
        /// Every required column the header lacks.
        missing: Vec<Missing>,
        /// Where the header seems to be, when the line read as one is not.
        header_at: Option<HeaderAt>,
        found: String,
    },
    #[error("{path}: column '{column}' appears more than once in the header (a --map may read another column as it): keep one, or drop the --map")]
    DuplicateColumn { path: String, column: String },
    #[error("{path}: line {line} is longer than {limit} bytes, so this is no file of orders as named; check the file (or raise --max-record-bytes)")]
    Overlong { path: String, line: u64, limit: u64 },
    #[error("{path}: the file is UTF-16 without a byte-order mark (every other byte is NUL): pass --encoding utf-16{endian}")]
    Utf16 { path: String, endian: &'static str },
    #[error("{path}: the file has no header row")]
    NoHeader { path: String },
    #[error("{path}: the header row is not valid UTF-8: the file is in another encoding: pass --encoding windows-1252 (Excel, older systems) or --encoding utf-16")]
    HeaderEncoding { path: String },
    #[error("{path}: line {line} is not UTF-8 (byte 0x{byte:02X} at position {column} of the line), so nothing was read: the file looks like {likely}: pass --encoding {likely} (or --encoding auto)")]
    NotUtf8 {
        path: String,
        line: u64,
        /// The bad byte's place in its line, from 1.
        column: usize,
        byte: u8,
        /// The encoding the file most likely is, as `--encoding` takes it.
        likely: String,
    },
    #[error("{path}: no header row follows the {skip} lines --skip-rows skips: check --skip-rows")]
    AllSkipped { path: String, skip: u64 },
    #[error("cannot tell the format of {path} from its name: name it {endings}, or pass --format")]
    UnknownFormat {
        path: String,
        /// The name endings that imply a format of this kind of file.
        endings: &'static str,
    },
    #[error("{path}: the header does not split into columns but holds {}: pass --delimiter {} (or name a tab-separated file .tsv)", found_name(*.found), found_arg(*.found))]
    WrongDelimiter { path: String, found: char },
    #[error("{path}: an xlsx workbook cannot be read: {what}")]
    Workbook { path: String, what: String },
    #[error("reading standard input ('-') needs --format csv, tsv or jsonl")]
    StdinNeedsFormat,
    #[error("standard input ('-') can be given only once")]
    StdinTwice,
}

fn found_name(c: char) -> &'static str {
    match c {
        ';' => "';'",
        '\t' => "tabs",
        '|' => "'|'",
        _ => "','",
    }
}

fn found_arg(c: char) -> &'static str {
    match c {
        ';' => "';'",
        '\t' => "tab",
        '|' => "'|'",
        _ => "','",
    }
}

/// Where each of the ten fields and each extra column sits in a record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Columns {
    pub index: [usize; Field::COUNT],
    /// Extra columns: record position and name.
    pub extras: Vec<(usize, String)>,
    /// CSV input drops the formula-escape quote our reports add.
    pub unescape: bool,
    /// The `failure_id` column of a fed-back failed report, when there is one.
    #[serde(default)]
    pub failure: Option<usize>,
    /// The zone of date-times written without an offset (`--timezone`).
    #[serde(default)]
    pub zone: Option<Zone>,
    /// The file's own layout, kept for the failed report (`--skip-rows`, `--map`).
    #[serde(default)]
    pub layout: Option<Arc<SourceLayout>>,
}

impl Columns {
    /// The layout the JSONL reader builds: the ten fields first, then the extras.
    pub fn positional(extras: Vec<String>, unescape: bool) -> Columns {
        Columns {
            index: std::array::from_fn(|i| i),
            extras: extras
                .into_iter()
                .enumerate()
                .map(|(i, n)| (10 + i, n))
                .collect(),
            unescape,
            failure: None,
            zone: None,
            layout: None,
        }
    }
}

/// One input row (CSV) or one item of an order (JSONL).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RawRow {
    pub line: u64,
    #[serde(with = "record_fields")]
    pub record: ::csv::StringRecord,
}

/// A record for the spool of checked orders: its fields' bytes end to end
/// and each field's length. One string to decode instead of one per field,
/// and the record rebuilt at its final size.
mod record_fields {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(r: &::csv::StringRecord, s: S) -> Result<S::Ok, S::Error> {
        let whole = r.as_byte_record().as_slice();
        // Each field is UTF-8, so are they end to end.
        let whole = std::str::from_utf8(whole).map_err(serde::ser::Error::custom)?;
        let lens: Vec<u32> = r.iter().map(|f| f.len() as u32).collect();
        (whole, lens).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<::csv::StringRecord, D::Error> {
        let (whole, lens) = <(std::borrow::Cow<'de, str>, Vec<u32>)>::deserialize(d)?;
        let mut r = ::csv::StringRecord::with_capacity(whole.len(), lens.len());
        let mut at = 0usize;
        for len in lens {
            let end = at + len as usize;
            let field = whole
                .get(at..end)
                .ok_or_else(|| serde::de::Error::custom("a spooled record is damaged"))?;
            r.push_field(field);
            at = end;
        }
        Ok(r)
    }
}

impl RawRow {
    /// A field's value: trimmed, and for CSV without our formula-escape quote.
    pub fn get<'a>(&'a self, cols: &Columns, field: Field) -> &'a str {
        self.cell(cols, cols.index[field.index()])
    }

    pub fn cell<'a>(&'a self, cols: &Columns, pos: usize) -> &'a str {
        let v = trim(self.record.get(pos).unwrap_or(""));
        if cols.unescape {
            unescape_cell(v)
        } else {
            v
        }
    }
}

/// `str::trim`, with the common case (nothing to trim: the value starts and
/// ends with a visible ASCII character) decided on two bytes.
fn trim(v: &str) -> &str {
    match v.as_bytes() {
        [first, .., last] if first.is_ascii_graphic() && last.is_ascii_graphic() => v,
        [only] if only.is_ascii_graphic() => v,
        _ => v.trim(),
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum RawBody {
    Rows {
        columns: Arc<Columns>,
        rows: Vec<RawRow>,
        /// A JSONL order whose items are missing or empty: the one row holds the order fields only.
        no_items: bool,
    },
    /// A record that could not be parsed.
    Malformed { raw: String, reason: String },
    /// A JSONL line read but not parsed yet: a run parses it on the
    /// validation threads ([`RawOrder::parse_deferred`]), so that the one
    /// reading thread only splits lines.
    JsonLine {
        text: Vec<u8>,
        columns: Arc<Columns>,
    },
}

/// One order as read, before any judgement.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RawOrder {
    /// The input it came from, as given on the command line (for a retried
    /// failure: the input it first came from).
    pub source: Arc<str>,
    /// The stored failure this order is a retry or a fixed copy of.
    pub failure: Option<crate::model::failure::FailureKey>,
    /// Physical line of the order's first row (1-based; the CSV header is line 1).
    pub line: u64,
    pub body: RawBody,
    /// Problems found while reading (JSON value types, missing items).
    pub notes: Vec<Problem>,
}

impl RawOrder {
    pub fn malformed(line: u64, raw: &[u8], reason: impl Into<String>) -> RawOrder {
        let raw = String::from_utf8_lossy(raw);
        let raw = raw.trim_end_matches(['\n', '\r']);
        RawOrder {
            source: Arc::from(""),
            failure: None,
            line,
            body: RawBody::Malformed {
                raw: raw.to_string(),
                reason: reason.into(),
            },
            notes: Vec::new(),
        }
    }

    /// The order_id as read (trimmed), if the record has one.
    pub fn order_id(&self) -> Option<&str> {
        match &self.body {
            RawBody::Rows { columns, rows, .. } => rows
                .first()
                .map(|r| r.get(columns, Field::OrderId))
                .filter(|id| !id.is_empty()),
            RawBody::Malformed { .. } | RawBody::JsonLine { .. } => None,
        }
    }

    /// A JSONL line read but not parsed yet, parsed (on the thread that
    /// calls it); any other order is left as it is.
    pub fn parse_deferred(&mut self) {
        if let RawBody::JsonLine { text, columns } = &self.body {
            let parsed = jsonl::parse_line(text, self.line, columns);
            self.failure = parsed.failure;
            self.notes = parsed.notes;
            self.body = parsed.body;
        }
    }

    /// This order, parsed where it was read but not parsed yet.
    pub fn parsed(&self) -> std::borrow::Cow<'_, RawOrder> {
        match self.body {
            RawBody::JsonLine { .. } => {
                let mut o = self.clone();
                o.parse_deferred();
                std::borrow::Cow::Owned(o)
            }
            _ => std::borrow::Cow::Borrowed(self),
        }
    }
}

/// A reader of one input file, yielding its orders in file order.
pub type OrderReader = Box<dyn Iterator<Item = Result<RawOrder, InputError>> + Send>;

/// Open one input and check its header, so that every file's problems are
/// found before any order is processed; `opts` say how it is read.
pub fn open_orders(
    source: Source,
    format: InputFormat,
    opts: &ReadOptions,
) -> Result<OrderReader, InputError> {
    open(source, format, opts, false)
}

/// As [`open_orders`], for a run: a JSONL line is only split off, and
/// parsed on the validation threads (`RawOrder::parse_deferred`).
pub fn open_orders_deferred(
    source: Source,
    format: InputFormat,
    opts: &ReadOptions,
) -> Result<OrderReader, InputError> {
    open(source, format, opts, true)
}

fn open(
    source: Source,
    format: InputFormat,
    opts: &ReadOptions,
    defer: bool,
) -> Result<OrderReader, InputError> {
    let name: Arc<str> = Arc::from(source.path.as_str());
    let orders: OrderReader = match format {
        InputFormat::Csv | InputFormat::Tsv => Box::new(csv::CsvOrders::new(source, format, opts)?),
        InputFormat::Jsonl => Box::new(jsonl::JsonlOrders::new(source, opts, defer)),
        InputFormat::Xlsx => Box::new(xlsx::XlsxOrders::new(source, opts)?),
    };
    Ok(Box::new(orders.map(move |r| {
        r.map(|mut o| {
            o.source = Arc::clone(&name);
            o
        })
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CatalogFormat;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn trim_is_str_trim(v in "[ \\t\\u{a0}\\u{3000}a-z=é]{0,6}") {
            prop_assert_eq!(trim(&v), v.trim());
        }
    }

    #[test]
    fn format_comes_from_the_flag_or_the_name() {
        assert!(matches!(
            resolve_format::<InputFormat>("-", None),
            Err(InputError::StdinNeedsFormat)
        ));
        assert_eq!(
            resolve_format("x.txt", Some(InputFormat::Csv)).unwrap(),
            InputFormat::Csv
        );
        assert_eq!(
            resolve_format::<InputFormat>("x.jsonl", None).unwrap(),
            InputFormat::Jsonl
        );
        let unknown = resolve_format::<InputFormat>("x.txt", None).unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "cannot tell the format of x.txt from its name: name it .csv, .tsv, .jsonl or .xlsx, or pass --format"
        );
        assert_eq!(
            resolve_format::<CatalogFormat>("x.tsv", None).unwrap(),
            CatalogFormat::Tsv
        );
        let workbook = resolve_format::<CatalogFormat>("stock.xlsx", None).unwrap_err();
        assert_eq!(
            workbook.to_string(),
            "cannot tell the format of stock.xlsx from its name: name it .csv, .tsv or .jsonl, or pass --format"
        );
    }
}
