//! File formats of inputs and reports, and how a file name implies one.

use std::path::Path;

/// A file format: of order and catalog inputs, and of reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Csv,
    /// CSV separated by tabs.
    Tsv,
    Jsonl,
    /// A workbook: its first sheet, as CSV with a header row.
    Xlsx,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Tsv => "tsv",
            Format::Jsonl => "jsonl",
            Format::Xlsx => "xlsx",
        }
    }

    pub fn parse(s: &str) -> Option<Format> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "tsv" | "tab" => Some(Format::Tsv),
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            "xlsx" => Some(Format::Xlsx),
            _ => None,
        }
    }

    /// The format a file name implies: `.csv`, `.tsv`, `.jsonl`, `.ndjson`
    /// (each optionally `.gz`), `.xlsx`.
    pub fn from_path(path: &str) -> Option<Format> {
        let name = path.strip_suffix(".gz").unwrap_or(path);
        let ext = Path::new(name).extension()?.to_str()?;
        Format::parse(ext).filter(|f| *f != Format::Xlsx || name.len() == path.len())
    }

    /// The field separator a delimited format uses unless told otherwise.
    pub fn default_delimiter(self) -> u8 {
        match self {
            Format::Tsv => b'\t',
            _ => b',',
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_comes_from_the_name() {
        assert_eq!(Format::from_path("a/orders.csv"), Some(Format::Csv));
        assert_eq!(Format::from_path("orders.CSV.gz"), Some(Format::Csv));
        assert_eq!(Format::from_path("x.jsonl.gz"), Some(Format::Jsonl));
        assert_eq!(Format::from_path("x.ndjson"), Some(Format::Jsonl));
        assert_eq!(Format::from_path("export.tsv"), Some(Format::Tsv));
        assert_eq!(Format::from_path("failed.xlsx"), Some(Format::Xlsx));
        assert_eq!(
            Format::from_path("failed.xlsx.gz"),
            None,
            "a workbook is zipped already"
        );
        assert_eq!(Format::from_path("x.txt"), None);
        assert_eq!(Format::parse("JSONL"), Some(Format::Jsonl));
        assert_eq!(Format::Tsv.default_delimiter(), b'\t');
        assert_eq!(Format::Csv.default_delimiter(), b',');
    }
}
