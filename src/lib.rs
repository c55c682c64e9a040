//! orderbatch: batch order processing — read, validate, apply, report.

pub mod apply;
pub mod cli;
pub mod commands;
pub mod config;
pub mod interrupt;
pub mod log;
pub mod model;
pub mod progress;
pub mod read;
pub mod report;
pub mod run;
pub mod store;
pub mod usage;
pub mod validate;

use config::{Command, Config};

/// How a command ended, when it ran to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Completed; every order accepted or skipped.
    Ok,
    /// Completed; some orders failed.
    SomeFailed,
    /// Stopped by --max-errors; nothing committed.
    Aborted,
    /// `verify` found faults.
    Faults,
    /// `inbox`: files were left for a later try (the database locked or
    /// out of reach, or a temporary problem with a file).
    Later,
    /// `inbox`: a file went to the failed directory.
    FileFailed,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::SomeFailed => 3,
            Exit::Aborted => 4,
            Exit::Faults => 1,
            Exit::Later => 75,
            Exit::FileFailed => 2,
        }
    }
}

/// A usage problem found after parsing (e.g. a run id that does not exist): exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The exit code for a fatal error: 2 for usage and input-file errors, 75 for
/// a database locked past the timeout, 1 for anything else.
pub fn exit_code_of(e: &anyhow::Error) -> u8 {
    if report::TooLarge::in_chain(e).is_some() {
        return 2;
    }
    for cause in e.chain() {
        if cause.is::<UsageError>()
            || matches!(
                cause.downcast_ref::<store::StoreError>(),
                Some(store::StoreError::BadUrl(_))
            )
            || cause.is::<read::InputError>()
            || cause.is::<read::catalog::CatalogError>()
        {
            return 2;
        }
        if let Some(store::StoreError::Locked { .. } | store::StoreError::Contention { .. }) =
            cause.downcast_ref::<store::StoreError>()
        {
            return 75;
        }
    }
    1
}

thread_local! {
    /// Set while a library that panics on I/O errors runs (its panics are
    /// caught and become errors): the panic hook stays quiet then.
    static PANICS_EXPECTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the current thread's panic will be caught and turned into an error.
pub fn panic_is_expected() -> bool {
    PANICS_EXPECTED.with(|p| p.get())
}

/// Run `f`, turning a panic inside it into an I/O error (for libraries that
/// panic when a write fails).
pub fn catching_panics<T>(f: impl FnOnce() -> std::io::Result<T>) -> std::io::Result<T> {
    PANICS_EXPECTED.with(|p| p.set(true));
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    PANICS_EXPECTED.with(|p| p.set(false));
    res.unwrap_or_else(|payload| {
        let what = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("a write failed");
        Err(std::io::Error::other(what.to_string()))
    })
}

/// True when the error is a closed standard output (e.g. `| head`): not a failure.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Files orderbatch creates (database, WAL, reports, temporary files) are
/// never readable by everyone: whatever the umask, the bits for others are
/// cleared. The metrics file is made world-readable on purpose, where it is written.
pub fn keep_files_private() {
    use rustix::fs::Mode;
    let old = rustix::process::umask(Mode::from_raw_mode(0o077));
    rustix::process::umask(old | Mode::from_raw_mode(0o007));
}

/// The manual pages, written into `dir`.
fn write_pages(
    cfg: &Config,
    dir: &std::path::Path,
    pages: &[(String, Vec<u8>)],
) -> anyhow::Result<Exit> {
    use anyhow::Context;
    report::create_dirs(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, page) in pages {
        let path = dir.join(name);
        report::write_atomic(&path, page)
            .with_context(|| format!("cannot write {}: check the directory", path.display()))?;
    }
    if !cfg.quiet {
        log::info(
            "man",
            &format!("wrote {} manual pages into {}", pages.len(), dir.display()),
        );
    }
    Ok(Exit::Ok)
}

pub fn run(cfg: &Config) -> anyhow::Result<Exit> {
    // A --db that cannot be used is refused before any file is read or created.
    if cfg.command.uses_db() {
        store::check(&cfg.db)?;
    }
    match &cfg.command {
        Command::Init => commands::init::run(cfg),
        Command::InventoryLoad { file, read } => commands::inventory::load(cfg, file, read),
        Command::InventoryReceive { file, read } => commands::inventory::receive(cfg, file, read),
        Command::InventoryExport { out } => commands::inventory::export(cfg, out.as_deref()),
        Command::Process(opts) => run::process(cfg, opts),
        Command::Reprocess { run, codes, opts } => run::reprocess(
            cfg,
            opts,
            store::FailureFilter {
                run: *run,
                codes: codes.clone(),
            },
        ),
        Command::Inbox(opts) => commands::inbox::run(cfg, opts),
        Command::RunsList {
            json,
            status,
            limit,
        } => commands::runs::list(
            cfg,
            &store::RunFilter {
                status: *status,
                limit: *limit,
            },
            *json,
        ),
        Command::RunsShow { id, json } => commands::runs::show(cfg, *id, *json),
        Command::RunsPrune {
            before,
            out,
            dry_run,
        } => commands::prune::run(
            cfg,
            &commands::prune::Request {
                before,
                out,
                dry_run: *dry_run,
            },
        ),
        Command::Report { kind, run, format } => commands::report::run(cfg, *kind, *run, *format),
        Command::Verify { json } => commands::verify::run(cfg, *json),
        Command::FailuresList { run, codes, format } => commands::failures::list(
            cfg,
            &store::FailureFilter {
                run: *run,
                codes: codes.clone(),
            },
            *format,
        ),
        Command::FailuresClose { target, reason } => commands::failures::close(cfg, target, reason),
        Command::WritePages { dir, pages } => write_pages(cfg, dir, pages),
        Command::Print(text) => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(text)?;
            out.flush()?;
            Ok(Exit::Ok)
        }
    }
}
