//! The command line: the only part that knows clap. Parsed once into `Config`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::config::{Command, Config, InboxOptions, ReportKind, RunOptions};
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
        /// Catalog file: sku, name, unit_price, currency, on_hand ('-' reads standard input)
        #[arg(value_name = "FILE")]
        file: String,
        /// File format (default: from the file name; required for '-')
        #[arg(long, value_enum)]
        format: Option<TableArg>,
        /// CSV field delimiter (one character; 'tab' or '\t' for tab)
        #[arg(long, value_parser = parse_delimiter)]
        delimiter: Option<u8>,
    },
    /// Add delivered units to the stock on hand at commit time (all or nothing)
    Receive {
        /// Delivery file: sku, quantity (units delivered; a sku may appear on several lines)
        #[arg(value_name = "FILE")]
        file: String,
        /// File format (default: from the file name; required for '-')
        #[arg(long, value_enum)]
        format: Option<TableArg>,
        /// CSV field delimiter (one character; 'tab' or '\t' for tab)
        #[arg(long, value_parser = parse_delimiter)]
        delimiter: Option<u8>,
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
    /// Input format (default: from the file name: .csv, .tsv, .jsonl, .ndjson, .xlsx; required for '-')
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
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
    /// Field delimiter of CSV input (one character; 'tab' or '\t' for tab; default ',', or tab for .tsv)
    #[arg(long, value_parser = parse_delimiter)]
    delimiter: Option<u8>,
    /// Write Prometheus metrics of the run to PATH (written aside, then renamed)
    #[arg(long, value_name = "PATH")]
    metrics_file: Option<PathBuf>,
    /// Print the run summary as JSON on standard output (and nothing else)
    #[arg(long)]
    json: bool,
    /// Encoding of text inputs, e.g. windows-1252, latin1, utf-16 (default UTF-8; a UTF-16 byte-order mark is recognised by itself)
    #[arg(long, value_name = "NAME", value_parser = parse_encoding)]
    encoding: Option<&'static encoding_rs::Encoding>,
    /// Start CSV reports with a UTF-8 byte-order mark, so that Excel reads them as UTF-8
    #[arg(long)]
    report_bom: bool,
    /// The most bytes one CSV record, JSONL line or worksheet row may hold; a longer one is MALFORMED_RECORD
    #[arg(long, value_name = "N", default_value_t = crate::read::DEFAULT_MAX_RECORD_BYTES as u64,
          value_parser = clap::value_parser!(u64).range(1024..=1 << 30))]
    max_record_bytes: u64,
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

fn parse_encoding(s: &str) -> Result<&'static encoding_rs::Encoding, String> {
    encoding_rs::Encoding::for_label(s.trim().as_bytes()).ok_or_else(|| {
        "not an encoding this program knows: try utf-8, windows-1252, latin1, iso-8859-15, utf-16, utf-16be"
            .into()
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
            encoding: self.encoding,
            report_bom: self.report_bom,
            max_record_bytes: usize::try_from(self.max_record_bytes).unwrap_or(usize::MAX),
            fence: None,
            catalog_cache: None,
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
            Cmd::Inbox {
                dir,
                done,
                failed,
                watch,
                settle,
                lease,
                max_attempts,
                args,
            } => Command::Inbox(InboxOptions {
                dir,
                done,
                failed,
                watch,
                settle,
                lease,
                max_attempts,
                run: args.into_options(Vec::new()),
            }),
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
            Cmd::Man { dir: None } => Command::Print(manual::complete(Cli::command())),
            Cmd::Man { dir: Some(dir) } => Command::WritePages {
                dir,
                pages: manual::pages(Cli::command()),
            },
        };
        Config {
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
        }
    }
}

/// The manual pages: clap's sections for every command, with the sections
/// clap does not write (the environment, the exit codes).
mod manual {
    use clap_mangen::Man;

    const ENVIRONMENT: &str = ".SH ENVIRONMENT\n.TP\n\\fBORDERBATCH_DB\\fR\nThe database when \\fB\\-\\-db\\fR is not given: a SQLite file path, or a PostgreSQL URL (postgres://user@host/db). The flag overrides it; without either, orderbatch.db in the working directory. A password in the URL is never printed.\n";

    const EXIT_STATUS: &str = ".SH \"EXIT STATUS\"\n.TP\n0\nThe run completed; every order accepted or skipped (other commands: success).\n.TP\n3\nThe run completed (and committed, unless \\-\\-dry\\-run); some orders failed: see the failed report.\n.TP\n4\nAborted by \\-\\-max\\-errors; nothing committed.\n.TP\n2\nUsage or input-file error found before any order was processed (bad flag, unreadable file, missing column, bad catalog).\n.TP\n75\nThe database stayed locked by another run past \\-\\-lock\\-timeout; nothing done; try again later.\n.TP\n1\nAny other fatal error (nothing of the run committed), or verify found faults.\n";

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
                |m, w| m.render_options_section(w),
            ],
        );
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
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains(".TH orderbatch") && text.contains("EXIT STATUS"));
    }
}
