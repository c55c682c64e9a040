//! Input: bytes to raw order records with their file and line; CSV and JSONL,
//! gzip, standard input. Nothing here judges an order, it only parses.

pub mod catalog;
mod csv;
pub mod jsonl;
mod source;

use std::path::Path;
use std::sync::Arc;

use crate::model::order::{Field, Problem};
use crate::report::escape::unescape_cell;

pub use self::source::{open_source, InputMeter, Source};

/// Input file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    }

    pub fn parse(s: &str) -> Option<Format> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            _ => None,
        }
    }

    /// The format a file name implies: `.csv`, `.jsonl`, `.ndjson`, each optionally `.gz`.
    pub fn from_path(path: &str) -> Option<Format> {
        let name = path.strip_suffix(".gz").unwrap_or(path);
        let ext = Path::new(name).extension()?.to_str()?;
        Format::parse(ext)
    }

    /// The explicit format, else the one the file name implies.
    pub fn resolve(path: &str, explicit: Option<Format>) -> Result<Format, InputError> {
        if let Some(f) = explicit {
            return Ok(f);
        }
        if path == "-" {
            return Err(InputError::StdinNeedsFormat);
        }
        Format::from_path(path).ok_or_else(|| InputError::UnknownFormat {
            path: path.to_string(),
        })
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
    #[error("{path}: missing required column '{column}' in the header (found: {found})")]
    MissingColumn {
        path: String,
        column: String,
        found: String,
    },
    #[error("{path}: column '{column}' appears more than once in the header")]
    DuplicateColumn { path: String, column: String },
    #[error("{path}: the file has no header row")]
    NoHeader { path: String },
    #[error("{path}: the header row is not valid UTF-8")]
    HeaderEncoding { path: String },
    #[error("cannot tell the format of {path} from its name: pass --format csv or --format jsonl")]
    UnknownFormat { path: String },
    #[error("reading standard input ('-') needs --format csv or --format jsonl")]
    StdinNeedsFormat,
    #[error("standard input ('-') can be given only once")]
    StdinTwice,
}

/// Where each of the ten fields and each extra column sits in a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    pub index: [usize; 10],
    /// Extra columns: record position and name.
    pub extras: Vec<(usize, String)>,
    /// CSV input drops the formula-escape quote our reports add.
    pub unescape: bool,
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
        }
    }
}

/// One input row (CSV) or one item of an order (JSONL).
#[derive(Debug, Clone)]
pub struct RawRow {
    pub line: u64,
    pub record: ::csv::StringRecord,
}

impl RawRow {
    /// A field's value: trimmed, and for CSV without our formula-escape quote.
    pub fn get<'a>(&'a self, cols: &Columns, field: Field) -> &'a str {
        self.cell(cols, cols.index[field.index()])
    }

    pub fn cell<'a>(&'a self, cols: &Columns, pos: usize) -> &'a str {
        let v = self.record.get(pos).unwrap_or("").trim();
        if cols.unescape {
            unescape_cell(v)
        } else {
            v
        }
    }
}

#[derive(Debug, Clone)]
pub enum RawBody {
    Rows {
        columns: Arc<Columns>,
        rows: Vec<RawRow>,
        /// A JSONL order whose items are missing or empty: the one row holds the order fields only.
        no_items: bool,
    },
    /// A record that could not be parsed.
    Malformed { raw: String, reason: String },
}

/// One order as read, before any judgement.
#[derive(Debug, Clone)]
pub struct RawOrder {
    /// Index of the input file in the run's inputs.
    pub file: u32,
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
            file: 0,
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
            RawBody::Malformed { .. } => None,
        }
    }
}

/// A reader of one input file, yielding its orders in file order.
pub type OrderReader = Box<dyn Iterator<Item = Result<RawOrder, InputError>> + Send>;

/// Open one input and check its header, so that every file's problems are found
/// before any order is processed.
pub fn open_orders(
    source: Source,
    format: Format,
    delimiter: u8,
) -> Result<OrderReader, InputError> {
    match format {
        Format::Csv => Ok(Box::new(csv::CsvOrders::new(source, delimiter)?)),
        Format::Jsonl => Ok(Box::new(jsonl::JsonlOrders::new(source))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_comes_from_the_name_or_the_flag() {
        assert_eq!(Format::from_path("a/orders.csv"), Some(Format::Csv));
        assert_eq!(Format::from_path("orders.CSV.gz"), Some(Format::Csv));
        assert_eq!(Format::from_path("x.jsonl.gz"), Some(Format::Jsonl));
        assert_eq!(Format::from_path("x.ndjson"), Some(Format::Jsonl));
        assert_eq!(Format::from_path("x.txt"), None);
        assert!(matches!(
            Format::resolve("-", None),
            Err(InputError::StdinNeedsFormat)
        ));
        assert_eq!(
            Format::resolve("x.txt", Some(Format::Csv)).unwrap(),
            Format::Csv
        );
    }
}
