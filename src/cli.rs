//! The command line: the global options, derived once into `Config`, and
//! the command, whose options its own module in `commands/` defines.

use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, ValueEnum};

use crate::commands::args::parse_seconds;
use crate::commands::Command;
use crate::config::Config;

#[derive(Debug, Parser)]
#[command(
    name = "orderbatch",
    version,
    about = "Validate order files in parallel and apply their stock changes in one transaction per run (SQLite or PostgreSQL)",
    after_help = "Exit codes: 0 all orders accepted or skipped; 3 some orders failed (see the failed report); \
4 aborted by --max-errors; 2 usage or input-file error; 75 database locked past --lock-timeout; 1 other error."
)]
pub struct Cli {
    #[command(flatten)]
    globals: Globals,
    #[command(subcommand)]
    command: Command,
}

/// The options every command takes, before or after its name.
#[derive(Debug, Args)]
struct Globals {
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
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogArg {
    Human,
    Json,
}

impl Globals {
    fn config(self) -> Config {
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
        }
    }
}

impl Cli {
    /// The configuration and the command, once the command's options agree
    /// with each other (a usage error otherwise, as clap's own).
    fn into_parts(self) -> Result<(Config, Command), clap::Error> {
        self.command
            .check()
            .map_err(|m| Cli::command().error(clap::error::ErrorKind::ValueValidation, m))?;
        Ok((self.globals.config(), self.command))
    }
}

/// Parse the process arguments (exits with 2 and a usage message on bad flags).
pub fn parse() -> (Config, Command) {
    let parsed = command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m))
        .and_then(Cli::into_parts);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ReportFormat;
    use crate::read::TextEncoding;

    fn parts(args: &[&str]) -> Result<(Config, Command), clap::Error> {
        Cli::from_arg_matches(&command().try_get_matches_from(args)?)?.into_parts()
    }

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_stand_before_or_after_the_command() {
        let (a, _) = parts(&["orderbatch", "--db", "x.db", "-q", "verify"]).unwrap();
        let (b, _) = parts(&["orderbatch", "verify", "--db", "x.db", "-q"]).unwrap();
        assert_eq!(a.db, "x.db");
        assert_eq!(b.db, "x.db");
        assert!(b.quiet && !b.progress);
    }

    #[test]
    fn process_options_become_plain_config() {
        let (cfg, cmd) = parts(&[
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
        .unwrap();
        let Command::Process(args) = cmd else {
            panic!()
        };
        let o = args.options().unwrap();
        assert_eq!(o.files, ["a.csv", "-"]);
        assert_eq!(o.jobs, 3);
        assert_eq!(o.delimiter, Some(b'\t'));
        assert_eq!(o.max_errors, Some(5));
        assert_eq!(o.report_format, ReportFormat::Jsonl);
        assert_eq!(cfg.lock_timeout, Duration::from_millis(1500));
        assert!(parts(&["orderbatch", "process"]).is_err());
        assert!(parts(&["orderbatch", "process", "a.csv", "--jobs", "0"]).is_err());
        assert!(parts(&["orderbatch", "process", "a.csv", "--delimiter", "ab"]).is_err());
    }

    #[test]
    fn completions_and_man_page_come_from_the_definition() {
        let mut out = Vec::new();
        clap_complete::generate(
            clap_complete::Shell::Bash,
            &mut command(),
            "orderbatch",
            &mut out,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("reprocess") && text.contains("--lock-timeout"));
        let text = String::from_utf8(crate::commands::manual::complete(command())).unwrap();
        assert!(text.contains(".TH orderbatch") && text.contains("EXIT STATUS"));
        assert!(text.contains(".SH EXAMPLES") && text.contains("\\-\\-skip\\-rows 1"));
        // The global options once, in their own section.
        assert_eq!(text.matches(".SH \"GLOBAL OPTIONS\"").count(), 1, "{text}");
        assert_eq!(
            text.matches("\\fB\\-\\-lock\\-timeout\\fR \\fI").count(),
            1,
            "{text}"
        );
        let pages = crate::commands::manual::pages(command());
        assert!(pages
            .iter()
            .any(|(name, _)| name == "orderbatch-runs-prune.1"));
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
        let (cfg, _) = parts(&["orderbatch", "reprocess", "--db", "r.db"]).unwrap();
        assert_eq!(cfg.db, "r.db");
    }

    #[test]
    fn map_names_a_column_of_the_command_and_each_once() {
        let (_, cmd) = parts(&[
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
        let Command::Process(args) = cmd else {
            panic!()
        };
        let read = args.options().unwrap().reader();
        assert_eq!(read.map.target("e-mail"), Some("customer_email"));
        assert_eq!((read.skip_rows, read.encoding), (2, TextEncoding::Auto));
        assert_eq!(read.timezone.map(|z| z.name()), Some("Europe/Berlin"));
        let (_, cmd) = parts(&[
            "orderbatch",
            "inventory",
            "receive",
            "d.csv",
            "--map",
            "Menge=quantity",
        ])
        .unwrap();
        assert!(matches!(cmd, Command::Inventory(_)));
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
            let e = parts(bad).err().unwrap();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
    }
}
