//! File formats of inputs and reports, and how a file name implies one.

use std::path::Path;

/// A file format: of order and catalog inputs, and of reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
        assert_eq!(Format::from_path("x.txt"), None);
        assert_eq!(Format::parse("JSONL"), Some(Format::Jsonl));
    }
}
