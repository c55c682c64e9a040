//! The command line: the only part that knows clap. Parsed once into `Config`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::config::{
    CloseTarget, Command, Config, InboxOptions, ListFormat, ReportKind, RunOptions,
};
use crate::model::local_time::Zone;
use crate::model::order::Field;
use crate::model::run::RunStatus;
use crate::model::{ErrorCode, Format};
use crate::read::catalog::{CATALOG_COLUMNS, DELIVERY_COLUMNS};
use crate::read::{ColumnMap, ReadOptions, Rename, TextEncoding};

#[derive(Debug, Parser)]
#[command(
    name = "orderbatch",
    version,
    about = "Validate order files in parallel and apply their stock changes in one transaction per run (SQLite or PostgreSQL)",
    after_help = "Exit codes: 0 all orders accepted or skipped; 3 some orders failed (see the failed report); \
4 aborted by --max-errors; 2 usage or input-file error; 75 database locked past --lock-timeout; 1 other error."
)]
pub struct Cli {
    /// The database: a SQLite file (created when missing by the commands that
    /// write; the others say so and create nothing) or a PostgreSQL URL
    /// (postgres://user@host/db); migrated as needed
    #[arg(
        long,
        global = true,
        env = "ORDERBATCH_DB",
        default_value = "orderbatch.db",
        value_name = "PATH|URL",
        hide_env_values = true
    )]
    db: String,
    /// Print nothing on success; only problems
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Also print per-stage timings to stderr
    #[arg(short, long, global = true)]
    verbose: bool,
    /// Never show progress bars
    #[arg(long, global = true)]
    no_progress: bool,
    /// How long to wait for another run's lock before exiting with 75
    #[arg(long, global = true, default_value = "60", value_name = "SECONDS", value_parser = parse_seconds)]
    lock_timeout: Duration,
    /// How messages on stderr look: lines for people, or one JSON object per event (for journald, Loki)
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "human",
        value_name = "FORMAT"
    )]
    log_format: LogArg,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogArg {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Create or migrate the database (idempotent)
    Init,
    /// Load, receive or export the catalog and stock levels
    #[command(subcommand)]
    Inventory(InventoryCmd),
    /// Ingest, validate and apply order files, and write reports (one run)
    Process {
        /// Order files, each by its name: .csv, .tsv (tab-separated), .jsonl or .ndjson (one order a line), each also as .gz, or .xlsx (the first worksheet); '-' reads standard input (with --format)
        #[arg(required = true, value_name = "FILE")]
        files: Vec<String>,
        #[command(flatten)]
        input: InputArgs,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Retry the still-unresolved failed orders (of one run, or of all; of some codes, or of all) as a new run
    ///
    /// The orders come from the database, so the options of input files
    /// (--format, --delimiter, --encoding, --skip-rows, --map) do not apply.
    Reprocess {
        /// Only the failed orders of this run
        #[arg(long, value_name = "ID")]
        run: Option<i64>,
        /// Only the failed orders of this error code (repeatable): after a restock, INSUFFICIENT_STOCK
        #[arg(long = "code", value_name = "CODE", value_parser = parse_code)]
        codes: Vec<ErrorCode>,
        #[command(flatten)]
        args: RunArgs,
    },
    /// Process order files as they arrive in DIR, one run each, shared by any number of workers
    #[command(mut_arg("catalog", |a| a.hide(true)))]
    Inbox {
        /// The directory the order files arrive in (only files directly in it)
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// Where processed files go (default: DIR/done; on the same file system)
        #[arg(long, value_name = "DIR")]
        done: Option<PathBuf>,
        /// Where refused files go, each with NAME.error (default: DIR/failed; on the same file system)
        #[arg(long, value_name = "DIR")]
        failed: Option<PathBuf>,
        /// Keep watching for files until SIGTERM or SIGINT (default: take the files present, then exit)
        #[arg(long)]
        watch: bool,
        /// Seconds a file's size and modification time must stay unchanged before it is taken
        #[arg(long, default_value = "10", value_name = "SECONDS", value_parser = parse_seconds)]
        settle: Duration,
        /// Seconds a claim on a file lasts unless its worker renews it (another worker takes the file over after it)
        #[arg(long, default_value = "60", value_name = "SECONDS", value_parser = parse_lease)]
        lease: Duration,
        /// Tries of a file for temporary problems before it goes to the failed directory
        #[arg(long, default_value_t = 5, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
        max_attempts: u32,
        #[command(flatten)]
        input: InputArgs,
        #[command(flatten)]
        args: RunArgs,
    },
    /// Run history
    #[command(subcommand)]
    Runs(RunsCmd),
    /// The stored failed orders still open, and closing those that will never be fixed
    #[command(subcommand)]
    Failures(FailuresCmd),
    /// Write a run's report to standard output, from the database
    Report {
        /// Which report: the accepted (and skipped) orders, or the failed ones
        #[arg(value_enum)]
        kind: KindArg,
        /// The run whose report to write (see `runs list`)
        #[arg(long, value_name = "ID")]
        run: i64,
        /// Report format (default: the format the run wrote)
        #[arg(long, value_enum)]
        format: Option<ReportArg>,
    },
    /// Check the database's integrity and the stock ledger: exit 0 when they hold, 1 listing the faults
    Verify {
        /// Print {"ok":..,"faults":[..]} on standard output
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual (one complete roff page) to standard output, or write a page per command
    Man {
        /// Write orderbatch.1 and a page per command (orderbatch-process.1, ...) into DIR
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum InventoryCmd {
    /// Upsert products and set their stock levels from FILE (all or nothing)
    Load {
        /// Catalog file (.csv, .tsv or .jsonl, each also as .gz): sku, name, unit_price, currency, on_hand ('-' reads standard input)
        #[arg(value_name = "FILE")]
        file: String,
        #[command(flatten)]
        input: TableArgs,
    },
    /// Add delivered units to the stock on hand at commit time (all or nothing)
    Receive {
        /// Delivery file (.csv, .tsv or .jsonl, each also as .gz): sku, quantity (units delivered; a sku may appear on several lines)
        #[arg(value_name = "FILE")]
        file: String,
        #[command(flatten)]
        input: TableArgs,
    },
    /// Write the catalog and stock as CSV (loads back as is)
    Export {
        /// Output file (default: standard output)
        #[arg(short, long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum RunsCmd {
    /// The runs, newest first, with the host each ran on
    List {
        /// Only the newest N runs (of the status asked)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        limit: Option<u64>,
        /// Only runs of this status: running, completed, dry_run, aborted, failed, interrupted
        #[arg(long, value_name = "S", value_parser = parse_status)]
        status: Option<RunStatus>,
        /// Print the runs as a JSON array
        #[arg(long)]
        json: bool,
    },
    /// Forget the runs that finished before DATE: their reports, skip records and settled failures; ledger compacted, orders reduced to what a re-run needs
    Prune {
        /// Runs that finished before this: a date (2026-01-01, midnight UTC) or an RFC 3339 time with its offset
        #[arg(long, value_name = "DATE")]
        before: String,
        /// The reports directory the runs wrote into (DIR/run-ID/...)
        #[arg(long, default_value = "reports", value_name = "DIR")]
        out: PathBuf,
        /// Say what would be removed; change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// One run in detail, with what became of its failed orders
    Show {
        /// The run (see `runs list`)
        id: i64,
        /// Print the run as JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum FailuresCmd {
    /// The open failed orders (those `reprocess` retries), oldest first, a header row first
    List {
        /// Only the failures of this run
        #[arg(long, value_name = "ID")]
        run: Option<i64>,
        /// Only the failures of this error code (repeatable)
        #[arg(long = "code", value_name = "CODE", value_parser = parse_code)]
        codes: Vec<ErrorCode>,
        /// Print the failures as a JSON array (the whole detail, and the source file and line)
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// Print the failures as CSV with the table's columns (the whole detail)
        #[arg(long)]
        csv: bool,
    },
    /// Close open failures that will not be retried (kept, with the reason and who closed them): by id, by code, or by order id
    Close {
        /// Failure ids, as the failed report and `failures list` show them (F12-345)
        #[arg(
            value_name = "ID",
            required_unless_present_any = ["codes", "orders"],
            conflicts_with_all = ["codes", "orders"]
        )]
        ids: Vec<String>,
        /// Every open failure of this error code (repeatable)
        #[arg(long = "code", value_name = "CODE", value_parser = parse_code, conflicts_with = "orders")]
        codes: Vec<ErrorCode>,
        /// With --code: only the failures of this run
        #[arg(long, value_name = "ID", requires = "codes")]
        run: Option<i64>,
        /// The open failure of this order id, whichever run holds it now (repeatable)
        #[arg(long = "order", value_name = "ORDER_ID")]
        orders: Vec<String>,
        /// Why they are closed (kept in the history; `runs show` prints it)
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
}

/// How order files are read (`process`).
#[derive(Debug, Args)]
struct InputArgs {
    /// Format of every order file: csv, tsv (tab-separated), jsonl (one order a line), xlsx (the first worksheet); default: from each file name; required for '-'
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Field delimiter of CSV input (one character; 'tab' or '\t' for tab; default ',', or tab for .tsv)
    #[arg(long, value_parser = parse_delimiter)]
    delimiter: Option<u8>,
    /// Encoding of text input: utf-8 (default; a file whose header or first 1,000 rows are not is refused, naming its likely encoding), windows-1252, latin1, utf-16, ..., or auto (detected, and said in the summary); a byte-order mark is recognised by itself
    #[arg(long, value_name = "NAME|auto", value_parser = parse_encoding)]
    encoding: Option<TextEncoding>,
    /// Skip N lines (worksheet rows) before the header: the title lines of an export
    #[arg(long, value_name = "N", default_value_t = 0)]
    skip_rows: u64,
    /// Read the file's column SOURCE as the field FIELD (repeatable), e.g. --map "E-Mail=customer_email"
    #[arg(long = "map", value_name = "SOURCE=FIELD")]
    map: Vec<String>,
    /// The most bytes one CSV record, JSONL line or worksheet row may hold; a longer one is MALFORMED_RECORD
    #[arg(long, value_name = "N", default_value_t = crate::read::DEFAULT_MAX_RECORD_BYTES as u64,
          value_parser = clap::value_parser!(u64).range(1024..=1 << 30))]
    max_record_bytes: u64,
}

/// How a catalog or delivery file is read (`inventory load|receive`).
#[derive(Debug, Args)]
struct TableArgs {
    /// File format (default: from the file name; required for '-')
    #[arg(long, value_enum)]
    format: Option<TableArg>,
    /// CSV field delimiter (one character; 'tab' or '\t' for tab)
    #[arg(long, value_parser = parse_delimiter)]
    delimiter: Option<u8>,
    /// Encoding of the file: utf-8 (default; refused up front when it is not), windows-1252, latin1, utf-16, ..., or auto (detected)
    #[arg(long, value_name = "NAME|auto", value_parser = parse_encoding)]
    encoding: Option<TextEncoding>,
    /// Skip N lines before the header: the title lines of an export
    #[arg(long, value_name = "N", default_value_t = 0)]
    skip_rows: u64,
    /// Read the file's column SOURCE as the column FIELD (repeatable), e.g. --map "Artikelnummer=sku"
    #[arg(long = "map", value_name = "SOURCE=FIELD")]
    map: Vec<String>,
}

/// Options of a run, whether its orders come from files or from the database.
#[derive(Debug, Args)]
struct RunArgs {
    /// Load this catalog (as `inventory load`) in the same run, before the orders
    #[arg(long, value_name = "FILE")]
    catalog: Option<String>,
    /// Directory for the reports (DIR/run-ID/...)
    #[arg(long, default_value = "reports", value_name = "DIR")]
    out: PathBuf,
    /// Format of the accepted and failed reports (xlsx: every cell text)
    #[arg(long, value_enum, default_value = "csv")]
    report_format: ReportArg,
    /// Check everything (stock included) and write the reports, but commit nothing
    #[arg(long)]
    dry_run: bool,
    /// Abort and commit nothing when more than N orders fail
    #[arg(long, value_name = "N")]
    max_errors: Option<u64>,
    /// Validation threads, 1 to 256 (default: the number of CPUs)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    jobs: Option<u16>,
    /// Write Prometheus metrics of the run to PATH (written aside, then renamed)
    #[arg(long, value_name = "PATH")]
    metrics_file: Option<PathBuf>,
    /// Print the run summary as JSON on standard output (and nothing else)
    #[arg(long)]
    json: bool,
    /// Start CSV reports with a UTF-8 byte-order mark, so that Excel reads them as UTF-8
    #[arg(long)]
    report_bom: bool,
    /// Read placed_at values without an offset (2026-11-25 08:02:11), and xlsx date cells, as local time in ZONE (an IANA name, e.g. Europe/Berlin)
    #[arg(long, value_name = "ZONE", value_parser = parse_timezone)]
    timezone: Option<Zone>,
}

/// Formats of order input.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    Csv,
    Tsv,
    Jsonl,
    Xlsx,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Csv => Format::Csv,
            FormatArg::Tsv => Format::Tsv,
            FormatArg::Jsonl => Format::Jsonl,
            FormatArg::Xlsx => Format::Xlsx,
        }
    }
}

/// Formats of catalog and delivery files.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum TableArg {
    Csv,
    Tsv,
    Jsonl,
}

impl From<TableArg> for Format {
    fn from(f: TableArg) -> Format {
        match f {
            TableArg::Csv => Format::Csv,
            TableArg::Tsv => Format::Tsv,
            TableArg::Jsonl => Format::Jsonl,
        }
    }
}

/// Formats of reports.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ReportArg {
    Csv,
    Jsonl,
    Xlsx,
}

impl From<ReportArg> for Format {
    fn from(f: ReportArg) -> Format {
        match f {
            ReportArg::Csv => Format::Csv,
            ReportArg::Jsonl => Format::Jsonl,
            ReportArg::Xlsx => Format::Xlsx,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum KindArg {
    Accepted,
    Failed,
}

fn parse_delimiter(s: &str) -> Result<u8, String> {
    match s {
        "tab" | "\\t" | "\t" => Ok(b'\t'),
        _ if s.len() == 1 && s.is_ascii() && !matches!(s, "\"" | "\n" | "\r") => {
            Ok(s.as_bytes()[0])
        }
        _ => Err("the delimiter must be one ASCII character (or 'tab')".into()),
    }
}

fn parse_encoding(s: &str) -> Result<TextEncoding, String> {
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

fn parse_timezone(s: &str) -> Result<Zone, String> {
    Zone::parse(s).map_err(|e| e.to_string())
}

/// The `--map` arguments as a map onto `columns`, or the usage error.
fn column_map(maps: &[String], columns: &[&'static str]) -> Result<ColumnMap, clap::Error> {
    let usage = |m: String| Cli::command().error(clap::error::ErrorKind::ValueValidation, m);
    let renames = maps
        .iter()
        .map(|m| Rename::parse(m, columns).map_err(|e| usage(format!("--map {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    ColumnMap::new(renames).map_err(usage)
}

fn parse_code(s: &str) -> Result<ErrorCode, String> {
    ErrorCode::parse(&s.trim().to_ascii_uppercase().replace('-', "_")).ok_or_else(|| {
        let all: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        format!("not an error code: one of {}", all.join(", "))
    })
}

fn parse_status(s: &str) -> Result<RunStatus, String> {
    // `dry-run` as the flag is spelled, `dry_run` as the history shows it.
    RunStatus::parse(&s.trim().to_ascii_lowercase().replace('-', "_")).ok_or_else(|| {
        let all: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
        format!("not a run status: one of {}", all.join(", "))
    })
}

/// A lease: long enough for its heartbeat to renew it (a tenth of a second at least).
fn parse_lease(s: &str) -> Result<Duration, String> {
    match parse_seconds(s)? {
        d if d >= Duration::from_millis(100) => Ok(d),
        _ => Err("must be a number of seconds, 0.1 or more".into()),
    }
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0 && *v < 1e9)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| "must be a number of seconds, 0 or more".into())
}

impl InputArgs {
    /// The options of a run from files: these and the run's.
    fn into_options(self, files: Vec<String>, run: RunArgs) -> Result<RunOptions, clap::Error> {
        let fields = Field::ALL.map(Field::name);
        Ok(RunOptions {
            format: self.format.map(Into::into),
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
    /// How a catalog (`columns` its columns) or delivery file is read.
    fn into_read(self, columns: &[&'static str]) -> Result<ReadOptions, clap::Error> {
        Ok(ReadOptions {
            format: self.format.map(Into::into),
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
    fn into_options(self, files: Vec<String>) -> RunOptions {
        RunOptions {
            files,
            catalog: self.catalog,
            format: None,
            out: self.out,
            report_format: self.report_format.into(),
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

impl RunsCmd {
    fn into_command(self) -> Command {
        match self {
            RunsCmd::List {
                limit,
                status,
                json,
            } => Command::RunsList {
                json,
                status,
                limit: limit.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            },
            RunsCmd::Show { id, json } => Command::RunsShow { id, json },
            RunsCmd::Prune {
                before,
                out,
                dry_run,
            } => Command::RunsPrune {
                before,
                out,
                dry_run,
            },
        }
    }
}

impl FailuresCmd {
    fn into_command(self) -> Command {
        match self {
            FailuresCmd::List {
                run,
                codes,
                json,
                csv,
            } => Command::FailuresList {
                run,
                codes,
                format: match (json, csv) {
                    (true, _) => ListFormat::Json,
                    (_, true) => ListFormat::Csv,
                    _ => ListFormat::Table,
                },
            },
            FailuresCmd::Close {
                ids,
                codes,
                run,
                orders,
                reason,
            } => Command::FailuresClose {
                target: match (codes.is_empty(), orders.is_empty()) {
                    (false, _) => CloseTarget::Codes { codes, run },
                    (_, false) => CloseTarget::Orders(orders),
                    _ => CloseTarget::Ids(ids),
                },
                reason,
            },
        }
    }
}

/// Parse the process arguments (exits with 2 and a usage message on bad flags).
pub fn parse() -> Config {
    let parsed = command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m))
        .and_then(Cli::into_config);
    parsed.unwrap_or_else(|e| e.exit())
}

/// The command line: the global options accepted after every command but
/// shown only by `orderbatch --help` (and in the manual's own section), so
/// that a command's help holds what is its own.
pub fn command() -> clap::Command {
    let cmd = Cli::command().disable_help_subcommand(true);
    let globals: Vec<clap::Arg> = cmd
        .get_arguments()
        .filter(|a| a.is_global_set())
        .cloned()
        .collect();
    with_hidden_globals(cmd, &globals)
}

/// Every command below `cmd` given hidden copies of the global options
/// (clap gives a command a global option only when it has none of that
/// name), and a pointer to where they are documented.
fn with_hidden_globals(cmd: clap::Command, globals: &[clap::Arg]) -> clap::Command {
    cmd.mut_subcommands(|mut sub| {
        for a in globals {
            sub = sub.arg(a.clone().hide(true));
        }
        let sub = sub.after_help(
            "Global options (--db, --quiet, --verbose, --no-progress, --lock-timeout, --log-format) \
             may stand here too: see `orderbatch --help`.",
        );
        with_hidden_globals(sub, globals)
    })
}

impl Cli {
    fn into_config(self) -> Result<Config, clap::Error> {
        let command = match self.command {
            Cmd::Init => Command::Init,
            Cmd::Inventory(InventoryCmd::Load { file, input }) => Command::InventoryLoad {
                file,
                read: input.into_read(&CATALOG_COLUMNS)?,
            },
            Cmd::Inventory(InventoryCmd::Receive { file, input }) => Command::InventoryReceive {
                file,
                read: input.into_read(&DELIVERY_COLUMNS)?,
            },
            Cmd::Inventory(InventoryCmd::Export { out }) => Command::InventoryExport { out },
            Cmd::Process { files, input, run } => Command::Process(input.into_options(files, run)?),
            Cmd::Reprocess { run, codes, args } => Command::Reprocess {
                run,
                codes,
                opts: args.into_options(Vec::new()),
            },
            Cmd::Inbox {
                dir,
                done,
                failed,
                watch,
                settle,
                lease,
                max_attempts,
                input,
                args,
            } => Command::Inbox(InboxOptions {
                dir,
                done,
                failed,
                watch,
                settle,
                lease,
                max_attempts,
                run: input.into_options(Vec::new(), args)?,
            }),
            Cmd::Runs(cmd) => cmd.into_command(),
            Cmd::Report { kind, run, format } => Command::Report {
                kind: match kind {
                    KindArg::Accepted => ReportKind::Accepted,
                    KindArg::Failed => ReportKind::Failed,
                },
                run,
                format: format.map(Into::into),
            },
            Cmd::Verify { json } => Command::Verify { json },
            Cmd::Failures(cmd) => cmd.into_command(),
            Cmd::Completions { shell } => {
                let mut out = Vec::new();
                clap_complete::generate(shell, &mut Cli::command(), "orderbatch", &mut out);
                Command::Print(out)
            }
            Cmd::Man { dir: None } => Command::Print(manual::complete(command())),
            Cmd::Man { dir: Some(dir) } => Command::WritePages {
                dir,
                pages: manual::pages(command()),
            },
        };
        Ok(Config {
            db: self.db,
            quiet: self.quiet,
            verbose: self.verbose,
            // Progress bars are for people; JSON logs are for collectors.
            progress: !self.no_progress && !self.quiet && matches!(self.log_format, LogArg::Human),
            lock_timeout: self.lock_timeout,
            log_format: match self.log_format {
                LogArg::Human => crate::log::LogFormat::Human,
                LogArg::Json => crate::log::LogFormat::Json,
            },
            command,
        })
    }
}

/// The manual pages: clap's sections for every command, with the sections
/// clap does not write (the environment, the exit codes).
mod manual {
    use clap_mangen::Man;

    const ENVIRONMENT: &str = ".SH ENVIRONMENT\n.TP\n\\fBORDERBATCH_DB\\fR\nThe database when \\fB\\-\\-db\\fR is not given: a SQLite file path, or a PostgreSQL URL (postgres://user@host/db). The flag overrides it; without either, orderbatch.db in the working directory. A password in the URL is never printed.\n";

    const EXIT_STATUS: &str = ".SH \"EXIT STATUS\"\n.TP\n0\nThe run completed; every order accepted or skipped (other commands: success).\n.TP\n3\nThe run completed (and committed, unless \\-\\-dry\\-run); some orders failed: see the failed report.\n.TP\n4\nAborted by \\-\\-max\\-errors; nothing committed.\n.TP\n2\nUsage or input-file error found before any order was processed (bad flag, unreadable file, missing column, bad catalog).\n.TP\n75\nThe database stayed locked by another run past \\-\\-lock\\-timeout; nothing done; try again later.\n.TP\n1\nAny other fatal error (nothing of the run committed), or verify found faults.\n";

    const EXAMPLES: &str = r#".SH EXAMPLES
.TP
Load the catalog, then process the day's orders (exit 3 when some failed: see reports/run-ID/failed.csv)
\fBorderbatch \-\-db shop.db inventory load catalog.csv\fR
.br
\fBorderbatch \-\-db shop.db process incoming/2026\-11\-25.csv\fR
.TP
A legacy export: name its encoding, or let it be detected (the summary says which)
\fBorderbatch process legacy.csv \-\-encoding windows\-1252 \-\-delimiter \(aq;\(aq\fR
.br
\fBorderbatch process legacy.csv \-\-encoding auto\fR
.TP
A shop export: a title line above the header, columns of other names, local times
\fBorderbatch process export.xlsx \-\-skip\-rows 1 \-\-map "Order ID=order_id" \-\-map "E\-Mail=customer_email" \-\-timezone Europe/Berlin\fR
.TP
Fix the failed report and feed it back with the same flags
\fBorderbatch process reports/run\-7/failed.csv \-\-skip\-rows 1 \-\-map "Order ID=order_id" \-\-timezone Europe/Berlin\fR
.TP
Goods arrived: add them, then retry the orders that failed for stock
\fBorderbatch inventory receive delivery.csv\fR
.br
\fBorderbatch reprocess\fR
.TP
Nightly from cron, silent unless something failed
\fBorderbatch \-\-quiet \-\-db /srv/orders/orders.db process /srv/orders/incoming/today.csv \-\-metrics\-file /var/lib/node_exporter/textfile/orderbatch.prom\fR
"#;

    const GLOBAL_SEE: &str = ".SH \"GLOBAL OPTIONS\"\n\\-\\-db, \\-\\-quiet, \\-\\-verbose, \\-\\-no\\-progress, \\-\\-lock\\-timeout and \\-\\-log\\-format may stand here too: see \\fBorderbatch\\fR(1).\n";

    const GLOBAL_OPTIONS: &str = ".SH \"GLOBAL OPTIONS\"\nThey may stand before or after the command (\\fBorderbatch \\-\\-db shop.db verify\\fR is \\fBorderbatch verify \\-\\-db shop.db\\fR); every command takes them.\n";

    /// One section of a page, rendered into memory.
    type Section = fn(&Man, &mut Vec<u8>) -> std::io::Result<()>;

    fn render(man: &Man, sections: &[Section]) -> Vec<u8> {
        let mut out = Vec::new();
        for s in sections {
            // Rendering into memory cannot fail.
            let _ = s(man, &mut out);
        }
        out
    }

    /// Every command below `cmd`, with their full names (`orderbatch inventory receive`).
    fn commands(cmd: &clap::Command, prefix: &str, out: &mut Vec<(String, clap::Command)>) {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let name = format!("{prefix} {}", sub.get_name());
            if sub.has_subcommands() {
                commands(sub, &name, out);
            } else {
                out.push((name, sub.clone()));
            }
        }
    }

    fn built(mut cmd: clap::Command) -> clap::Command {
        cmd = cmd.disable_help_subcommand(true);
        cmd.build();
        cmd
    }

    /// One page: the program, then every command with its options.
    pub fn complete(cmd: clap::Command) -> Vec<u8> {
        let cmd = built(cmd);
        let top = Man::new(cmd.clone());
        let mut out = render(
            &top,
            &[
                |m, w| m.render_title(w),
                |m, w| m.render_name_section(w),
                |m, w| m.render_synopsis_section(w),
                |m, w| m.render_description_section(w),
            ],
        );
        // The global options, once, in a section of their own.
        let options = render(&top, &[|m, w| m.render_options_section(w)]);
        let options =
            String::from_utf8_lossy(&options).replacen(".SH OPTIONS\n", GLOBAL_OPTIONS, 1);
        out.extend(options.into_bytes());
        let mut all = Vec::new();
        commands(&cmd, "orderbatch", &mut all);
        for (name, sub) in all {
            out.extend(format!(".SH \"{name}\"\n").into_bytes());
            let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
            out.extend(format!("{}\n", about.replace('-', "\\-")).into_bytes());
            let man = Man::new(sub.bin_name(&name));
            let parts = render(
                &man,
                &[
                    |m, w| m.render_synopsis_section(w),
                    |m, w| m.render_options_section(w),
                ],
            );
            // Its synopsis and options as subsections of the command's section.
            let text = String::from_utf8_lossy(&parts)
                .replacen(".SH SYNOPSIS", ".SS Synopsis", 1)
                .replacen(".SH OPTIONS", ".SS Options", 1);
            out.extend(text.into_bytes());
        }
        out.extend(EXAMPLES.as_bytes());
        out.extend(ENVIRONMENT.as_bytes());
        out.extend(EXIT_STATUS.as_bytes());
        out
    }

    /// A page per command (and one for the program), by file name.
    pub fn pages(cmd: clap::Command) -> Vec<(String, Vec<u8>)> {
        let cmd = built(cmd);
        let mut all = vec![("orderbatch".to_string(), cmd.clone())];
        let mut subs = Vec::new();
        commands(&cmd, "orderbatch", &mut subs);
        all.extend(subs);
        all.into_iter()
            .map(|(name, c)| {
                let file = format!("{}.1", name.replace(' ', "-"));
                let man = Man::new(c.bin_name(&name)).title(name.replace(' ', "-"));
                let mut page = Vec::new();
                let _ = man.render(&mut page);
                if name == "orderbatch" {
                    page.extend(EXAMPLES.as_bytes());
                } else {
                    page.extend(GLOBAL_SEE.as_bytes());
                }
                page.extend(ENVIRONMENT.as_bytes());
                page.extend(EXIT_STATUS.as_bytes());
                (file, page)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_stand_before_or_after_the_command() {
        let a = Cli::try_parse_from(["orderbatch", "--db", "x.db", "-q", "verify"]).unwrap();
        let b = Cli::try_parse_from(["orderbatch", "verify", "--db", "x.db", "-q"]).unwrap();
        assert_eq!(a.into_config().unwrap().db, "x.db");
        let b = b.into_config().unwrap();
        assert_eq!(b.db, "x.db");
        assert!(b.quiet && !b.progress);
    }

    #[test]
    fn process_options_become_plain_config() {
        let cli = Cli::try_parse_from([
            "orderbatch",
            "process",
            "a.csv",
            "-",
            "--format",
            "csv",
            "--jobs",
            "3",
            "--delimiter",
            "tab",
            "--max-errors",
            "5",
            "--lock-timeout",
            "1.5",
            "--report-format",
            "jsonl",
        ])
        .unwrap()
        .into_config()
        .unwrap();
        let Command::Process(o) = &cli.command else {
            panic!()
        };
        assert_eq!(o.files, ["a.csv", "-"]);
        assert_eq!(o.jobs, 3);
        assert_eq!(o.delimiter, Some(b'\t'));
        assert_eq!(o.max_errors, Some(5));
        assert_eq!(o.report_format, Format::Jsonl);
        assert_eq!(cli.lock_timeout, Duration::from_millis(1500));
        assert!(Cli::try_parse_from(["orderbatch", "process"]).is_err());
        assert!(Cli::try_parse_from(["orderbatch", "process", "a.csv", "--jobs", "0"]).is_err());
        assert!(
            Cli::try_parse_from(["orderbatch", "process", "a.csv", "--delimiter", "ab"]).is_err()
        );
    }

    #[test]
    fn completions_and_man_page_come_from_the_definition() {
        let cfg = Cli::try_parse_from(["orderbatch", "completions", "bash"])
            .unwrap()
            .into_config()
            .unwrap();
        let Command::Print(text) = cfg.command else {
            panic!()
        };
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("reprocess") && text.contains("--lock-timeout"));
        let cfg = Cli::try_parse_from(["orderbatch", "man"])
            .unwrap()
            .into_config()
            .unwrap();
        let Command::Print(text) = cfg.command else {
            panic!()
        };
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains(".TH orderbatch") && text.contains("EXIT STATUS"));
        assert!(text.contains(".SH EXAMPLES") && text.contains("\\-\\-skip\\-rows 1"));
        // The global options once, in their own section.
        assert_eq!(text.matches(".SH \"GLOBAL OPTIONS\"").count(), 1, "{text}");
        assert_eq!(
            text.matches("\\fB\\-\\-lock\\-timeout\\fR \\fI").count(),
            1,
            "{text}"
        );
    }

    /// The help text of a command line (`... --help`).
    fn help(args: &[&str]) -> String {
        let e = command().try_get_matches_from(args).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp);
        e.render().to_string()
    }

    #[test]
    fn a_command_s_help_holds_its_own_options_and_points_at_the_global_ones() {
        let process = help(&["orderbatch", "process", "--help"]);
        for own in [
            ".tsv",
            ".ndjson",
            ".xlsx",
            ".gz",
            "--skip-rows",
            "--map",
            "--timezone",
            "auto",
        ] {
            assert!(process.contains(own), "{own}: {process}");
        }
        assert!(!process.contains("--db <"), "{process}");
        assert!(process.contains("see `orderbatch --help`"), "{process}");
        let top = help(&["orderbatch", "--help"]);
        assert!(top.contains("--db <PATH|URL>") && top.contains("--lock-timeout"));
        let reprocess = help(&["orderbatch", "reprocess", "--help"]);
        for input in [
            "--encoding <",
            "--delimiter <",
            "--format <",
            "--skip-rows <",
            "--map <",
            "--max-record-bytes",
        ] {
            assert!(!reprocess.contains(input), "{input}: {reprocess}");
        }
        assert!(reprocess.contains("--timezone <ZONE>") && reprocess.contains("--catalog <FILE>"));
        // Hidden there, still taken there.
        let cli = Cli::try_parse_from(["orderbatch", "reprocess", "--db", "r.db"]).unwrap();
        assert_eq!(cli.into_config().unwrap().db, "r.db");
    }

    fn config(args: &[&str]) -> Result<Config, clap::Error> {
        Cli::from_arg_matches(&command().try_get_matches_from(args)?)?.into_config()
    }

    #[test]
    fn map_names_a_column_of_the_command_and_each_once() {
        let cfg = config(&[
            "orderbatch",
            "process",
            "a.csv",
            "--map",
            "E-Mail=customer_email",
            "--skip-rows",
            "2",
            "--timezone",
            "europe/berlin",
            "--encoding",
            "auto",
        ])
        .unwrap();
        let Command::Process(o) = &cfg.command else {
            panic!()
        };
        let read = o.reader();
        assert_eq!(read.map.target("e-mail"), Some("customer_email"));
        assert_eq!((read.skip_rows, read.encoding), (2, TextEncoding::Auto));
        assert_eq!(read.timezone.map(|z| z.name()), Some("Europe/Berlin"));
        let cfg = config(&[
            "orderbatch",
            "inventory",
            "receive",
            "d.csv",
            "--map",
            "Menge=quantity",
        ])
        .unwrap();
        assert!(matches!(cfg.command, Command::InventoryReceive { .. }));
        for bad in [
            &["orderbatch", "process", "a.csv", "--map", "mail"][..],
            &[
                "orderbatch",
                "process",
                "a.csv",
                "--map",
                "a=order_id",
                "--map",
                "b=order_id",
            ],
            &[
                "orderbatch",
                "inventory",
                "load",
                "c.csv",
                "--map",
                "Menge=quantity",
            ],
            &[
                "orderbatch",
                "process",
                "a.csv",
                "--timezone",
                "Europe/Berln",
            ],
        ] {
            let e = config(bad).err().unwrap();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
    }
}
