//! Plain configuration the commands run on, built once from the command line.

use std::path::PathBuf;
use std::time::Duration;

use crate::model::local_time::Zone;
use crate::model::run::RunStatus;
use crate::model::{ErrorCode, Format};
use crate::read::{ColumnMap, ReadOptions, TextEncoding};

#[derive(Debug, Clone)]
pub struct Config {
    pub db: String,
    pub quiet: bool,
    pub verbose: bool,
    /// Progress bars allowed (they still appear only on a terminal).
    pub progress: bool,
    pub lock_timeout: Duration,
    /// How stderr speaks: lines for people, or JSON objects.
    pub log_format: crate::log::LogFormat,
    pub command: Command,
}

#[derive(Debug, Clone)]
pub enum Command {
    Init,
    InventoryLoad {
        file: String,
        read: ReadOptions,
    },
    InventoryReceive {
        file: String,
        read: ReadOptions,
    },
    InventoryExport {
        out: Option<PathBuf>,
    },
    Process(RunOptions),
    Reprocess {
        run: Option<i64>,
        /// Only failures of these codes (none: every code).
        codes: Vec<ErrorCode>,
        opts: RunOptions,
    },
    Inbox(InboxOptions),
    RunsList {
        json: bool,
        status: Option<RunStatus>,
        limit: Option<usize>,
    },
    RunsShow {
        id: i64,
        json: bool,
    },
    RunsPrune {
        before: String,
        out: PathBuf,
        dry_run: bool,
    },
    Report {
        kind: ReportKind,
        run: i64,
        format: Option<Format>,
    },
    Verify {
        json: bool,
    },
    FailuresList {
        run: Option<i64>,
        /// Only failures of these codes (none: every code).
        codes: Vec<ErrorCode>,
        format: ListFormat,
    },
    FailuresClose {
        target: CloseTarget,
        reason: String,
    },
    /// Text generated from the command-line definition (completions, man page).
    Print(Vec<u8>),
    /// Files generated from it (manual pages), by name, into a directory.
    WritePages {
        dir: PathBuf,
        pages: Vec<(String, Vec<u8>)>,
    },
}

impl Command {
    /// Whether the command opens the database (all but the generated texts).
    pub fn uses_db(&self) -> bool {
        !matches!(self, Command::Print(_) | Command::WritePages { .. })
    }
}

/// Which failures `failures close` closes, as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseTarget {
    /// Failure ids as the reports show them (`F12-345`).
    Ids(Vec<String>),
    /// Every open failure of these codes, of one run or of all.
    Codes {
        codes: Vec<ErrorCode>,
        run: Option<i64>,
    },
    /// The open failure of each of these order ids.
    Orders(Vec<String>),
}

/// How a list is printed: an aligned table for people, or whole values as
/// JSON or CSV for programs and spreadsheets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    Accepted,
    Failed,
}

/// Options of `inbox`.
#[derive(Debug, Clone)]
pub struct InboxOptions {
    pub dir: PathBuf,
    /// Where processed files go (default: DIR/done).
    pub done: Option<PathBuf>,
    /// Where refused files go, with their `.error` (default: DIR/failed).
    pub failed: Option<PathBuf>,
    /// Keep watching until a signal, instead of ending once the files present are taken.
    pub watch: bool,
    /// How long a file's size and modification time must stay as they are before it is taken.
    pub settle: Duration,
    /// How long a claim lasts unless its worker renews it.
    pub lease: Duration,
    /// Tries of a file for temporary problems before it goes to the failed directory.
    pub max_attempts: u32,
    /// The options of each file's run (`files` empty).
    pub run: RunOptions,
}

/// Options of `process` and `reprocess`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub files: Vec<String>,
    pub catalog: Option<String>,
    pub format: Option<Format>,
    pub out: PathBuf,
    pub report_format: Format,
    pub dry_run: bool,
    pub max_errors: Option<u64>,
    pub jobs: usize,
    pub delimiter: Option<u8>,
    pub metrics_file: Option<PathBuf>,
    pub json: bool,
    /// The encoding of text inputs (`--encoding`).
    pub encoding: TextEncoding,
    /// Title lines before the header (`--skip-rows`).
    pub skip_rows: u64,
    /// Columns of other names read as ours (`--map`).
    pub map: ColumnMap,
    /// The zone of date-times without an offset (`--timezone`); it applies
    /// to retried orders too.
    pub timezone: Option<Zone>,
    /// CSV reports start with a UTF-8 byte-order mark (for Excel).
    pub report_bom: bool,
    /// The most bytes one record may hold (`--max-record-bytes`).
    pub max_record_bytes: usize,
    /// Set by `inbox`: the claim on the run's file, which fences its commit.
    pub fence: Option<crate::run::Fence>,
    /// Set by an `inbox` worker: the checking catalog, kept between runs.
    pub catalog_cache: Option<crate::run::CatalogCache>,
}

impl RunOptions {
    /// How the run's input files are read: built here, once, from the options.
    pub fn reader(&self) -> ReadOptions {
        ReadOptions {
            format: self.format,
            delimiter: self.delimiter,
            encoding: self.encoding,
            skip_rows: self.skip_rows,
            map: self.map.clone(),
            timezone: self.timezone,
            max_record_bytes: self.max_record_bytes,
        }
    }
}
