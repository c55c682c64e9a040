//! File formats of inputs and reports, and how a file name implies one.
//! Each kind of file has a type of its own, holding only the formats that
//! kind comes in: order files ([`InputFormat`]), catalog and delivery files
//! ([`CatalogFormat`]), reports ([`ReportFormat`]).

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

    /// The field separator a delimited format uses unless told otherwise.
    pub fn default_delimiter(self) -> u8 {
        match self {
            InputFormat::Tsv => b'\t',
            InputFormat::Csv | InputFormat::Jsonl | InputFormat::Xlsx => b',',
        }
    }
}

/// The format of a catalog or delivery file (`inventory load|receive
/// --format`, `--catalog`): CSV, TSV or JSONL, never a workbook. A file
/// name implies one as it does an order file's.
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
pub enum CatalogFormat {
    Csv,
    #[strum(to_string = "tsv", serialize = "tab")]
    Tsv,
    #[strum(to_string = "jsonl", serialize = "ndjson")]
    Jsonl,
}

impl CatalogFormat {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// A name of the format, in any case: `tab` and `ndjson` too.
    pub fn parse(s: &str) -> Option<CatalogFormat> {
        s.parse().ok()
    }

    /// The field separator a delimited format uses unless told otherwise.
    pub fn default_delimiter(self) -> u8 {
        match self {
            CatalogFormat::Tsv => b'\t',
            CatalogFormat::Csv | CatalogFormat::Jsonl => b',',
        }
    }
}

/// An order file's format as a catalog's: every one but the workbook, which
/// comes back as the error.
impl TryFrom<InputFormat> for CatalogFormat {
    type Error = InputFormat;

    fn try_from(f: InputFormat) -> Result<CatalogFormat, InputFormat> {
        match f {
            InputFormat::Csv => Ok(CatalogFormat::Csv),
            InputFormat::Tsv => Ok(CatalogFormat::Tsv),
            InputFormat::Jsonl => Ok(CatalogFormat::Jsonl),
            InputFormat::Xlsx => Err(f),
        }
    }
}

/// A format a file's name can imply: of order files, of catalog and
/// delivery files.
pub trait FileFormat: Copy {
    /// The name endings that imply one, as a message lists them.
    const ENDINGS: &'static str;

    /// The format a file name implies, if any.
    fn from_path(path: &str) -> Option<Self>;
}

impl FileFormat for InputFormat {
    const ENDINGS: &'static str = ".csv, .tsv, .jsonl or .xlsx";

    /// `.csv`, `.tsv` (`.tab`), `.jsonl` (`.ndjson`), each optionally
    /// `.gz`, and `.xlsx`.
    fn from_path(path: &str) -> Option<InputFormat> {
        let name = path.strip_suffix(".gz").unwrap_or(path);
        let ext = Path::new(name).extension()?.to_str()?;
        InputFormat::parse(ext).filter(|f| *f != InputFormat::Xlsx || name.len() == path.len())
    }
}

impl FileFormat for CatalogFormat {
    const ENDINGS: &'static str = ".csv, .tsv or .jsonl";

    /// As an order file's, `.xlsx` aside.
    fn from_path(path: &str) -> Option<CatalogFormat> {
        InputFormat::from_path(path)?.try_into().ok()
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

    #[test]
    fn a_catalog_is_named_as_an_order_file_but_never_a_workbook() {
        assert_eq!(
            CatalogFormat::from_path("stock.csv.gz"),
            Some(CatalogFormat::Csv)
        );
        assert_eq!(
            CatalogFormat::from_path("stock.tab"),
            Some(CatalogFormat::Tsv)
        );
        assert_eq!(
            CatalogFormat::from_path("stock.ndjson"),
            Some(CatalogFormat::Jsonl)
        );
        assert_eq!(CatalogFormat::from_path("stock.xlsx"), None);
        assert_eq!(CatalogFormat::from_path("stock.txt"), None);
        assert_eq!(CatalogFormat::Tsv.default_delimiter(), b'\t');
        assert_eq!(CatalogFormat::Jsonl.default_delimiter(), b',');
        let names: Vec<&str> = CatalogFormat::VARIANTS.iter().map(|f| f.as_str()).collect();
        assert_eq!(names, ["csv", "tsv", "jsonl"]);
        for f in CatalogFormat::VARIANTS {
            assert_eq!(CatalogFormat::parse(f.as_str()), Some(*f));
            assert_eq!(
                CatalogFormat::try_from(InputFormat::parse(f.as_str()).unwrap()),
                Ok(*f)
            );
            let value = f.to_possible_value().unwrap();
            assert_eq!(value.get_name(), f.as_str());
        }
        assert_eq!(CatalogFormat::parse("xlsx"), None);
        assert_eq!(
            CatalogFormat::try_from(InputFormat::Xlsx),
            Err(InputFormat::Xlsx)
        );
    }
}
