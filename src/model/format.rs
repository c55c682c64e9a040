//! File formats of inputs and reports, and how a file name implies one.

use std::path::Path;

/// The format of an order file (`--format`): CSV; TSV, CSV separated by
/// tabs; JSONL, one order a line; xlsx, a workbook's first sheet read as
/// CSV with a header row. Its names are those of `--format` and of the run
/// history; a file name may also say `.tab` or `.ndjson`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    clap::ValueEnum,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[strum(serialize_all = "lowercase", ascii_case_insensitive)]
pub enum InputFormat {
    Csv,
    #[strum(to_string = "tsv", serialize = "tab")]
    Tsv,
    #[strum(to_string = "jsonl", serialize = "ndjson")]
    Jsonl,
    Xlsx,
}

impl InputFormat {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// A name of the format, in any case: `tab` and `ndjson` too.
    pub fn parse(s: &str) -> Option<InputFormat> {
        s.parse().ok()
    }

    /// The format a file name implies: `.csv`, `.tsv`, `.jsonl`, `.ndjson`
    /// (each optionally `.gz`), `.xlsx`.
    pub fn from_path(path: &str) -> Option<InputFormat> {
        let name = path.strip_suffix(".gz").unwrap_or(path);
        let ext = Path::new(name).extension()?.to_str()?;
        InputFormat::parse(ext).filter(|f| *f != InputFormat::Xlsx || name.len() == path.len())
    }

    /// The field separator a delimited format uses unless told otherwise.
    pub fn default_delimiter(self) -> u8 {
        match self {
            InputFormat::Tsv => b'\t',
            _ => b',',
        }
    }
}

/// The format of a report (`--report-format`, `report --format`): CSV;
/// JSONL, an order a line in the input layout; xlsx, every cell text. Its
/// names are those of the command line, of the run history and of the
/// reports' file names.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    clap::ValueEnum,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[strum(serialize_all = "lowercase", ascii_case_insensitive)]
pub enum ReportFormat {
    Csv,
    Jsonl,
    Xlsx,
}

impl ReportFormat {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// A name of the format, in any case.
    pub fn parse(s: &str) -> Option<ReportFormat> {
        s.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;
    use strum::VariantArray;

    #[test]
    fn format_comes_from_the_name() {
        assert_eq!(
            InputFormat::from_path("a/orders.csv"),
            Some(InputFormat::Csv)
        );
        assert_eq!(
            InputFormat::from_path("orders.CSV.gz"),
            Some(InputFormat::Csv)
        );
        assert_eq!(
            InputFormat::from_path("x.jsonl.gz"),
            Some(InputFormat::Jsonl)
        );
        assert_eq!(InputFormat::from_path("x.ndjson"), Some(InputFormat::Jsonl));
        assert_eq!(InputFormat::from_path("export.tsv"), Some(InputFormat::Tsv));
        assert_eq!(InputFormat::from_path("export.tab"), Some(InputFormat::Tsv));
        assert_eq!(
            InputFormat::from_path("failed.xlsx"),
            Some(InputFormat::Xlsx)
        );
        assert_eq!(
            InputFormat::from_path("failed.xlsx.gz"),
            None,
            "a workbook is zipped already"
        );
        assert_eq!(InputFormat::from_path("x.txt"), None);
        assert_eq!(InputFormat::parse("JSONL"), Some(InputFormat::Jsonl));
        assert_eq!(InputFormat::Tsv.default_delimiter(), b'\t');
        assert_eq!(InputFormat::Csv.default_delimiter(), b',');
    }

    /// Each name reads back as its format, and is the one the command line
    /// takes.
    #[test]
    fn names_round_trip_and_are_the_command_lines() {
        let names: Vec<&str> = InputFormat::VARIANTS.iter().map(|f| f.as_str()).collect();
        assert_eq!(names, ["csv", "tsv", "jsonl", "xlsx"]);
        for f in InputFormat::VARIANTS {
            assert_eq!(InputFormat::parse(f.as_str()), Some(*f));
            let value = f.to_possible_value().unwrap();
            assert_eq!(value.get_name(), f.as_str());
        }
    }

    #[test]
    fn report_names_round_trip_and_are_the_command_lines() {
        let names: Vec<&str> = ReportFormat::VARIANTS.iter().map(|f| f.as_str()).collect();
        assert_eq!(names, ["csv", "jsonl", "xlsx"]);
        for f in ReportFormat::VARIANTS {
            assert_eq!(ReportFormat::parse(f.as_str()), Some(*f));
            assert_eq!(ReportFormat::parse(&f.as_str().to_uppercase()), Some(*f));
            let value = f.to_possible_value().unwrap();
            assert_eq!(value.get_name(), f.as_str());
        }
        assert_eq!(ReportFormat::parse("tsv"), None);
    }
}
