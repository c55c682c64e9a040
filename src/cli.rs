//! The command line: the only part that knows clap. Parsed once into `Config`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::config::{Command, Config, ReportKind, RunOptions};
use crate::model::Format;

#[derive(Debug, Parser)]
#[command(
    name = "orderbatch",
    version,
    about = "Validate order files in parallel and apply their stock changes in one transaction per run (SQLite or PostgreSQL)",
    after_help = "Exit codes: 0 all orders accepted or skipped; 3 some orders failed (see the failed report); \
4 aborted by --max-errors; 2 usage or input-file error; 75 database locked past --lock-timeout; 1 other error."
)]
pub struct Cli {
    /// The database: a SQLite file (created when missing) or a PostgreSQL URL
    /// (postgres://user@host/db); created and migrated as needed
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
    #[command(subcommand)]
    command: Cmd,
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
        /// Order files (.csv, .jsonl, optionally .gz); '-' reads standard input
        #[arg(required = true, value_name = "FILE")]
        files: Vec<String>,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Retry the still-unresolved failed orders (of one run, or of all) as a new run
    Reprocess {
        /// Only the failed orders of this run
        #[arg(long, value_name = "ID")]
        run: Option<i64>,
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
        format: Option<FormatArg>,
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
    /// Print the manual page (roff) to standard output
    Man,
}

#[derive(Debug, Subcommand)]
enum InventoryCmd {
    /// Upsert products and set their stock levels from FILE (all or nothing)
    Load {
        /// Catalog file: sku, name, unit_price, currency, on_hand ('-' reads standard input)
        #[arg(value_name = "FILE")]
        file: String,
        /// File format (default: from the file name; required for '-')
        #[arg(long, value_enum)]
        format: Option<FormatArg>,
        /// CSV field delimiter (one character; 'tab' or '\t' for tab)
        #[arg(long, default_value = ",", value_parser = parse_delimiter)]
        delimiter: u8,
    },
    /// Add delivered units to the stock on hand at commit time (all or nothing)
    Receive {
        /// Delivery file: sku, quantity (units delivered; a sku may appear on several lines)
        #[arg(value_name = "FILE")]
        file: String,
        /// File format (default: from the file name; required for '-')
        #[arg(long, value_enum)]
        format: Option<FormatArg>,
        /// CSV field delimiter (one character; 'tab' or '\t' for tab)
        #[arg(long, default_value = ",", value_parser = parse_delimiter)]
        delimiter: u8,
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
    /// All runs, newest first
    List {
        /// Print the runs as a JSON array
        #[arg(long)]
        json: bool,
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
    /// The open failed orders (those `reprocess` retries), oldest first
    List {
        /// Only the failures of this run
        #[arg(long, value_name = "ID")]
        run: Option<i64>,
        /// Print the failures as a JSON array
        #[arg(long)]
        json: bool,
    },
    /// Close open failures that will not be retried (kept, with the reason and who closed them)
    Close {
        /// Failure ids, as the failed report and `failures list` show them (F42)
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
        /// Why they are closed (kept in the history; `runs show` prints it)
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Load this catalog (as `inventory load`) in the same run, before the orders
    #[arg(long, value_name = "FILE")]
    catalog: Option<String>,
    /// Input format (default: from the file name; required for '-')
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Directory for the reports (DIR/run-ID/...)
    #[arg(long, default_value = "reports", value_name = "DIR")]
    out: PathBuf,
    /// Format of the accepted and failed reports
    #[arg(long, value_enum, default_value = "csv")]
    report_format: FormatArg,
    /// Check everything (stock included) and write the reports, but commit nothing
    #[arg(long)]
    dry_run: bool,
    /// Abort and commit nothing when more than N orders fail
    #[arg(long, value_name = "N")]
    max_errors: Option<u64>,
    /// Validation threads, 1 to 256 (default: the number of CPUs)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    jobs: Option<u16>,
    /// CSV field delimiter (one character; 'tab' or '\t' for tab)
    #[arg(long, default_value = ",", value_parser = parse_delimiter)]
    delimiter: u8,
    /// Write Prometheus metrics of the run to PATH (written aside, then renamed)
    #[arg(long, value_name = "PATH")]
    metrics_file: Option<PathBuf>,
    /// Print the run summary as JSON on standard output (and nothing else)
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    Csv,
    Jsonl,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Csv => Format::Csv,
            FormatArg::Jsonl => Format::Jsonl,
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

fn parse_seconds(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0 && *v < 1e9)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| "must be a number of seconds, 0 or more".into())
}

impl RunArgs {
    fn into_options(self, files: Vec<String>) -> RunOptions {
        RunOptions {
            files,
            catalog: self.catalog,
            format: self.format.map(Into::into),
            out: self.out,
            report_format: self.report_format.into(),
            dry_run: self.dry_run,
            max_errors: self.max_errors,
            jobs: self.jobs.map(usize::from).unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
            }),
            delimiter: self.delimiter,
            metrics_file: self.metrics_file,
            json: self.json,
        }
    }
}

/// Parse the process arguments (exits with 2 and a usage message on bad flags).
pub fn parse() -> Config {
    Cli::parse().into_config()
}

impl Cli {
    fn into_config(self) -> Config {
        let command = match self.command {
            Cmd::Init => Command::Init,
            Cmd::Inventory(InventoryCmd::Load {
                file,
                format,
                delimiter,
            }) => Command::InventoryLoad {
                file,
                format: format.map(Into::into),
                delimiter,
            },
            Cmd::Inventory(InventoryCmd::Receive {
                file,
                format,
                delimiter,
            }) => Command::InventoryReceive {
                file,
                format: format.map(Into::into),
                delimiter,
            },
            Cmd::Inventory(InventoryCmd::Export { out }) => Command::InventoryExport { out },
            Cmd::Process { files, run } => Command::Process(run.into_options(files)),
            Cmd::Reprocess { run, args } => Command::Reprocess {
                run,
                opts: args.into_options(Vec::new()),
            },
            Cmd::Runs(RunsCmd::List { json }) => Command::RunsList { json },
            Cmd::Runs(RunsCmd::Show { id, json }) => Command::RunsShow { id, json },
            Cmd::Report { kind, run, format } => Command::Report {
                kind: match kind {
                    KindArg::Accepted => ReportKind::Accepted,
                    KindArg::Failed => ReportKind::Failed,
                },
                run,
                format: format.map(Into::into),
            },
            Cmd::Verify { json } => Command::Verify { json },
            Cmd::Failures(FailuresCmd::List { run, json }) => Command::FailuresList { run, json },
            Cmd::Failures(FailuresCmd::Close { ids, reason }) => {
                Command::FailuresClose { ids, reason }
            }
            Cmd::Completions { shell } => {
                let mut out = Vec::new();
                clap_complete::generate(shell, &mut Cli::command(), "orderbatch", &mut out);
                Command::Print(out)
            }
            Cmd::Man => {
                let mut out = Vec::new();
                // Rendering into memory cannot fail short of running out of memory.
                let _ = clap_mangen::Man::new(Cli::command()).render(&mut out);
                Command::Print(out)
            }
        };
        Config {
            db: self.db,
            quiet: self.quiet,
            verbose: self.verbose,
            progress: !self.no_progress && !self.quiet,
            lock_timeout: self.lock_timeout,
            command,
        }
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
        assert_eq!(a.into_config().db, "x.db");
        let b = b.into_config();
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
        .into_config();
        let Command::Process(o) = &cli.command else {
            panic!()
        };
        assert_eq!(o.files, ["a.csv", "-"]);
        assert_eq!(o.jobs, 3);
        assert_eq!(o.delimiter, b'\t');
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
            .into_config();
        let Command::Print(text) = cfg.command else {
            panic!()
        };
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("reprocess") && text.contains("--lock-timeout"));
        let cfg = Cli::try_parse_from(["orderbatch", "man"])
            .unwrap()
            .into_config();
        let Command::Print(text) = cfg.command else {
            panic!()
        };
        assert!(String::from_utf8(text).unwrap().contains(".TH orderbatch"));
    }
}
