//! How input files are read: what the command line says about it (format,
//! delimiter, encoding, title lines, column names, time zone, the record
//! bound), gathered into one value that every reader is given; the format,
//! whose choices differ by the kind of file, is given beside it.

use crate::model::local_time::Zone;

/// The encoding text input is read in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TextEncoding {
    /// UTF-8 (UTF-16 by its byte-order mark). A file whose header or first
    /// rows are not UTF-8 is refused before any order is read, naming the
    /// encoding it most likely is: a file of failures committed for an
    /// encoding mistake helps nobody.
    #[default]
    Utf8,
    /// The encoding `--encoding` names (`--encoding utf-8`: UTF-8 whatever
    /// the start of the file holds; a bad row is then a malformed record).
    Named(&'static encoding_rs::Encoding),
    /// `--encoding auto`: UTF-8 when the start of the file is, else the
    /// encoding it looks like; the run summary says which.
    Auto,
}

/// One `--map SOURCE=FIELD`: the file's column SOURCE is read as FIELD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    /// The file's name for the column, as given (trimmed).
    pub source: String,
    /// One of the columns the command reads.
    pub target: &'static str,
}

impl Rename {
    /// `SOURCE=FIELD`, FIELD one of `columns` (in any case). The last `=`
    /// splits: a column name may hold one, our names never do.
    pub fn parse(arg: &str, columns: &[&'static str]) -> Result<Rename, String> {
        let Some((source, target)) = arg.rsplit_once('=') else {
            return Err(format!(
                "{arg:?} is not SOURCE=FIELD: write the file's column name, '=', and the column it is, e.g. \"E-Mail=customer_email\""
            ));
        };
        let source = source.trim();
        if source.is_empty() {
            return Err(format!("{arg:?} names no column of the file before '='"));
        }
        let wanted = target.trim().to_ascii_lowercase();
        let target = columns
            .iter()
            .copied()
            .find(|c| *c == wanted)
            .ok_or_else(|| {
                format!(
                    "{:?} is not a column read here: one of {}",
                    target.trim(),
                    columns.join(", ")
                )
            })?;
        Ok(Rename {
            source: source.to_string(),
            target,
        })
    }
}

/// Every `--map` of a command: each source and each target at most once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnMap(Vec<Rename>);

impl ColumnMap {
    pub fn new(renames: Vec<Rename>) -> Result<ColumnMap, String> {
        for (i, r) in renames.iter().enumerate() {
            for earlier in &renames[..i] {
                if earlier.target == r.target {
                    return Err(format!(
                        "--map gives '{}' twice (from '{}' and from '{}'): a column is read from one column of the file",
                        r.target, earlier.source, r.source
                    ));
                }
                if earlier.source.eq_ignore_ascii_case(&r.source) {
                    return Err(format!(
                        "--map names the column '{}' twice: it can be read as one column only",
                        r.source
                    ));
                }
            }
        }
        Ok(ColumnMap(renames))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The column a header name (trimmed) is read as, when `--map` renames it.
    pub fn target(&self, name: &str) -> Option<&'static str> {
        self.0
            .iter()
            .find(|r| r.source.eq_ignore_ascii_case(name))
            .map(|r| r.target)
    }

    /// The file's name `--map` gives for one of our columns, if any.
    pub fn source_of(&self, target: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|r| r.target == target)
            .map(|r| r.source.as_str())
    }
}

/// How the input files of a command are read, whatever their kind: their
/// format, which differs by kind (orders, catalogs), is given beside these.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// `--delimiter`: the field separator of CSV input.
    pub delimiter: Option<u8>,
    pub encoding: TextEncoding,
    /// `--skip-rows`: lines (worksheet rows) before the header, title lines
    /// of an export; files without a header (JSONL) are read as they are.
    pub skip_rows: u64,
    /// `--map`: columns of other names read as ours (files with a header).
    pub map: ColumnMap,
    /// `--timezone`: the zone of date-times written without an offset.
    pub timezone: Option<Zone>,
    /// `--max-record-bytes`: the most one record may hold.
    pub max_record_bytes: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            delimiter: None,
            encoding: TextEncoding::Utf8,
            skip_rows: 0,
            map: ColumnMap::default(),
            timezone: None,
            max_record_bytes: super::DEFAULT_MAX_RECORD_BYTES,
        }
    }
}

impl ReadOptions {
    /// Whether the failed report keeps the file's own layout (its title
    /// lines, names and order of columns), so that a fixed report goes back
    /// in with the same `--skip-rows` and `--map`.
    pub fn keeps_layout(&self) -> bool {
        self.skip_rows > 0 || !self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLUMNS: [&str; 3] = ["order_id", "customer_email", "payment_amount"];

    #[test]
    fn a_rename_is_source_equals_one_of_our_columns() {
        let r = Rename::parse(" E-Mail = Customer_Email", &COLUMNS).unwrap();
        assert_eq!((r.source.as_str(), r.target), ("E-Mail", "customer_email"));
        let r = Rename::parse("a=b=order_id", &COLUMNS).unwrap();
        assert_eq!(r.source, "a=b");
        for (bad, says) in [
            ("email", "SOURCE=FIELD"),
            ("=order_id", "names no column"),
            (
                "email=mail",
                "one of order_id, customer_email, payment_amount",
            ),
        ] {
            let e = Rename::parse(bad, &COLUMNS).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn a_map_reads_each_source_and_gives_each_column_once() {
        let r = |s: &str| Rename::parse(s, &COLUMNS).unwrap();
        let map =
            ColumnMap::new(vec![r("E-Mail=customer_email"), r("Total=payment_amount")]).unwrap();
        assert_eq!(map.target("e-mail"), Some("customer_email"));
        assert_eq!(map.target("email"), None);
        assert_eq!(map.source_of("payment_amount"), Some("Total"));
        let e = ColumnMap::new(vec![r("a=order_id"), r("b=order_id")]).unwrap_err();
        assert!(e.contains("twice"), "{e}");
        let e = ColumnMap::new(vec![r("a=order_id"), r("A=customer_email")]).unwrap_err();
        assert!(e.contains("'A' twice"), "{e}");
    }
}
