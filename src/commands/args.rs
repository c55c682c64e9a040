//! The option groups several commands share (how order, catalog and
//! delivery files are read; the options of a run), and the parsers of
//! option values. Each command's own options live in its module.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::model::local_time::Zone;
use crate::model::order::Field;
use crate::model::run::RunStatus;
use crate::model::{CatalogFormat, ErrorCode, InputFormat, ReportFormat};
use crate::read::{ColumnMap, ReadOptions, Rename, TextEncoding};
use crate::run::RunOptions;

/// How order files are read (`process`).
#[derive(Debug, Clone, Args)]
pub struct InputArgs {
    /// Format of every order file: csv, tsv (tab-separated), jsonl (one order a line), xlsx (the first worksheet); default: from each file name; required for '-'
    #[arg(long, value_enum)]
    pub format: Option<InputFormat>,
    /// Field delimiter of CSV input (one character; 'tab' or '\t' for tab; default ',', or tab for .tsv)
    #[arg(long, value_parser = parse_delimiter)]
    pub delimiter: Option<u8>,
    /// Encoding of text input: utf-8 (default; a file whose header or first 1,000 rows are not is refused, naming its likely encoding), windows-1252, latin1, utf-16, ..., or auto (detected, and said in the summary); a byte-order mark is recognised by itself
    #[arg(long, value_name = "NAME|auto", value_parser = parse_encoding)]
    pub encoding: Option<TextEncoding>,
    /// Skip N lines (worksheet rows) before the header: the title lines of an export
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub skip_rows: u64,
    /// Read the file's column SOURCE as the field FIELD (repeatable), e.g. --map "E-Mail=customer_email"
    #[arg(long = "map", value_name = "SOURCE=FIELD")]
    pub map: Vec<String>,
    /// The most bytes one CSV record, JSONL line or worksheet row may hold; a longer one is MALFORMED_RECORD
    #[arg(long, value_name = "N", default_value_t = crate::read::DEFAULT_MAX_RECORD_BYTES as u64,
          value_parser = clap::value_parser!(u64).range(1024..=1 << 30))]
    pub max_record_bytes: u64,
}

/// How a catalog or delivery file is read (`inventory load|receive`).
#[derive(Debug, Clone, Args)]
pub struct TableArgs {
    /// File format (default: from the file name; required for '-')
    #[arg(long, value_enum)]
    pub format: Option<CatalogFormat>,
    /// CSV field delimiter (one character; 'tab' or '\t' for tab)
    #[arg(long, value_parser = parse_delimiter)]
    pub delimiter: Option<u8>,
    /// Encoding of the file: utf-8 (default; refused up front when it is not), windows-1252, latin1, utf-16, ..., or auto (detected)
    #[arg(long, value_name = "NAME|auto", value_parser = parse_encoding)]
    pub encoding: Option<TextEncoding>,
    /// Skip N lines before the header: the title lines of an export
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub skip_rows: u64,
    /// Read the file's column SOURCE as the column FIELD (repeatable), e.g. --map "Artikelnummer=sku"
    #[arg(long = "map", value_name = "SOURCE=FIELD")]
    pub map: Vec<String>,
}

/// Options of a run, whether its orders come from files or from the database.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Load this catalog (as `inventory load`) in the same run, before the orders
    #[arg(long, value_name = "FILE")]
    pub catalog: Option<String>,
    /// Directory for the reports (DIR/run-ID/...)
    #[arg(long, default_value = "reports", value_name = "DIR")]
    pub out: PathBuf,
    /// Format of the accepted and failed reports (xlsx: every cell text)
    #[arg(long, value_enum, default_value = "csv")]
    pub report_format: ReportFormat,
    /// Check everything (stock included) and write the reports, but commit nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Abort and commit nothing when more than N orders fail
    #[arg(long, value_name = "N")]
    pub max_errors: Option<u64>,
    /// Validation threads, 1 to 256 (default: the number of CPUs)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: Option<u16>,
    /// Write Prometheus metrics of the run to PATH (written aside, then renamed)
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
    /// Print the run summary as JSON on standard output (and nothing else)
    #[arg(long)]
    pub json: bool,
    /// Start CSV reports with a UTF-8 byte-order mark, so that Excel reads them as UTF-8
    #[arg(long)]
    pub report_bom: bool,
    /// Read placed_at values without an offset (2026-11-25 08:02:11), and xlsx date cells, as local time in ZONE (an IANA name, e.g. Europe/Berlin)
    #[arg(long, value_name = "ZONE", value_parser = parse_timezone)]
    pub timezone: Option<Zone>,
}

pub fn parse_delimiter(s: &str) -> Result<u8, String> {
    match s {
        "tab" | "\\t" | "\t" => Ok(b'\t'),
        _ if s.len() == 1 && s.is_ascii() && !matches!(s, "\"" | "\n" | "\r") => {
            Ok(s.as_bytes()[0])
        }
        _ => Err("the delimiter must be one ASCII character (or 'tab')".into()),
    }
}

pub fn parse_encoding(s: &str) -> Result<TextEncoding, String> {
    if s.trim().eq_ignore_ascii_case("auto") {
        return Ok(TextEncoding::Auto);
    }
    encoding_rs::Encoding::for_label(s.trim().as_bytes())
        .map(TextEncoding::Named)
        .ok_or_else(|| {
            "not an encoding this program knows: try utf-8, windows-1252, latin1, iso-8859-15, utf-16, utf-16be, or auto"
                .into()
        })
}

pub fn parse_timezone(s: &str) -> Result<Zone, String> {
    Zone::parse(s).map_err(|e| e.to_string())
}

/// The `--map` arguments as a map onto `columns`, or what is wrong with them.
fn column_map(maps: &[String], columns: &[&'static str]) -> Result<ColumnMap, String> {
    let renames = maps
        .iter()
        .map(|m| Rename::parse(m, columns).map_err(|e| format!("--map {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    ColumnMap::new(renames)
}

pub fn parse_code(s: &str) -> Result<ErrorCode, String> {
    ErrorCode::parse(&s.trim().to_ascii_uppercase().replace('-', "_")).ok_or_else(|| {
        let all: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        format!("not an error code: one of {}", all.join(", "))
    })
}

pub fn parse_status(s: &str) -> Result<RunStatus, String> {
    // `dry-run` as the flag is spelled, `dry_run` as the history shows it.
    RunStatus::parse(&s.trim().to_ascii_lowercase().replace('-', "_")).ok_or_else(|| {
        let all: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
        format!("not a run status: one of {}", all.join(", "))
    })
}

/// A lease: long enough for its heartbeat to renew it (a tenth of a second at least).
pub fn parse_lease(s: &str) -> Result<Duration, String> {
    match parse_seconds(s)? {
        d if d >= Duration::from_millis(100) => Ok(d),
        _ => Err("must be a number of seconds, 0.1 or more".into()),
    }
}

pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0 && *v < 1e9)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| "must be a number of seconds, 0 or more".into())
}

impl InputArgs {
    /// The options of a run from files: these and the run's.
    pub fn into_options(self, files: Vec<String>, run: RunArgs) -> Result<RunOptions, String> {
        let fields = Field::ALL.map(Field::name);
        Ok(RunOptions {
            format: self.format,
            delimiter: self.delimiter,
            encoding: self.encoding.unwrap_or_default(),
            skip_rows: self.skip_rows,
            map: column_map(&self.map, &fields)?,
            max_record_bytes: usize::try_from(self.max_record_bytes).unwrap_or(usize::MAX),
            ..run.into_options(files)
        })
    }
}

impl TableArgs {
    /// How a catalog (`columns` its columns) or delivery file is read
    /// (its format aside: `format`).
    pub fn into_read(self, columns: &[&'static str]) -> Result<ReadOptions, String> {
        Ok(ReadOptions {
            delimiter: self.delimiter,
            encoding: self.encoding.unwrap_or_default(),
            skip_rows: self.skip_rows,
            map: column_map(&self.map, columns)?,
            ..ReadOptions::default()
        })
    }
}

impl RunArgs {
    /// The options of a run, with those of input files at their defaults.
    pub fn into_options(self, files: Vec<String>) -> RunOptions {
        RunOptions {
            files,
            catalog: self.catalog,
            format: None,
            out: self.out,
            report_format: self.report_format,
            dry_run: self.dry_run,
            max_errors: self.max_errors,
            jobs: self.jobs.map(usize::from).unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
            }),
            delimiter: None,
            metrics_file: self.metrics_file,
            json: self.json,
            encoding: TextEncoding::default(),
            skip_rows: 0,
            map: ColumnMap::default(),
            timezone: self.timezone,
            report_bom: self.report_bom,
            max_record_bytes: crate::read::DEFAULT_MAX_RECORD_BYTES,
            fence: None,
            catalog_cache: None,
        }
    }
}
