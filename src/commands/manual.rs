//! `completions SHELL` and `man [--dir DIR]`: texts generated from the
//! command-line definition, which the dispatcher hands over (this module
//! does not reach up for it). The manual pages carry the sections clap does
//! not write: the environment, the exit codes, examples.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap_mangen::Man;

use crate::config::Config;
use crate::exit::Exit;

/// Print a shell completion script (bash, zsh, fish, elvish, powershell)
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Print the manual (one complete roff page) to standard output, or write a page per command
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write orderbatch.1 and a page per command (orderbatch-process.1, ...) into DIR
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

pub fn completions(args: CompletionsArgs, definition: fn() -> clap::Command) -> Result<Exit> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut definition(), "orderbatch", &mut out);
    super::print_bytes(&out)?;
    Ok(Exit::Ok)
}

pub fn man(cfg: &Config, args: ManArgs, definition: fn() -> clap::Command) -> Result<Exit> {
    match args.dir {
        None => {
            super::print_bytes(&complete(definition()))?;
            Ok(Exit::Ok)
        }
        Some(dir) => write_pages(cfg, &dir, &pages(definition())),
    }
}

/// The manual pages, written into `dir`.
fn write_pages(cfg: &Config, dir: &std::path::Path, pages: &[(String, Vec<u8>)]) -> Result<Exit> {
    crate::report::create_dirs(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, page) in pages {
        let path = dir.join(name);
        crate::report::write_atomic(&path, page)
            .with_context(|| format!("cannot write {}: check the directory", path.display()))?;
    }
    if !cfg.quiet {
        crate::log::info(
            "man",
            &format!("wrote {} manual pages into {}", pages.len(), dir.display()),
        );
    }
    Ok(Exit::Ok)
}

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
    let options = String::from_utf8_lossy(&options).replacen(".SH OPTIONS\n", GLOBAL_OPTIONS, 1);
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
