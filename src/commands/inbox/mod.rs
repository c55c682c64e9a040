//! `orderbatch inbox DIR`: order files taken as they arrive, each as one run
//! of `process`, by any number of workers on one or many hosts (README: "The
//! inbox").
//!
//! A worker looks at DIR (`scan`), takes each complete file oldest first
//! (`take`: claim it in the database, run it with a heartbeat renewing the
//! claim and a fence on its commit, move it), and without `--watch` ends once
//! the files present at its start are taken; with `--watch` it waits
//! (`watch`) for the next file, the next file to settle or the periodic
//! look, until a signal. While the database cannot be reached it claims
//! nothing: without `--watch` it exits 75, with `--watch` it tries again
//! with backoff. The inbox's own gauges go into the `--metrics-file` beside
//! the last run's.

mod heartbeat;
mod moves;
mod scan;
mod take;
mod watch;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};

use crate::config::Config;
use crate::exit::{Exit, UsageError};
use crate::report::metrics::{self, InboxMetrics};
use crate::run::CatalogCache;
use crate::store::{self, Backoff, Store, StoreError};
use take::Taken;

use super::args::{parse_lease, parse_seconds, InputArgs, RunArgs};

/// Process order files as they arrive in DIR, one run each, shared by any number of workers
#[derive(Debug, clap::Args)]
pub struct Args {
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
}

impl Args {
    fn options(self) -> std::result::Result<InboxOptions, String> {
        Ok(InboxOptions {
            run: self.input.into_options(Vec::new(), self.args)?,
            dir: self.dir,
            done: self.done,
            failed: self.failed,
            watch: self.watch,
            settle: self.settle,
            lease: self.lease,
            max_attempts: self.max_attempts,
        })
    }

    pub fn check(&self) -> std::result::Result<(), String> {
        self.input
            .clone()
            .into_options(Vec::new(), self.args.clone())
            .map(drop)
    }
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
    pub run: crate::run::RunOptions,
}

pub fn run(cfg: &Config, args: Args) -> Result<Exit> {
    work(cfg, &args.options().map_err(UsageError)?)
}

/// The delay between tries of a file, and between tries to reach the
/// database: 1 s at first, doubling, at most 5 min, full jitter.
const RETRY: Backoff = Backoff {
    timeout: Duration::MAX,
    base: Duration::from_secs(1),
    cap: Duration::from_secs(300),
};

/// The shortest time between two periodic looks (`--settle 0` included).
const MIN_LOOK: Duration = Duration::from_millis(200);

fn work(cfg: &Config, opts: &InboxOptions) -> Result<Exit> {
    if opts.run.catalog.is_some() {
        return Err(UsageError(
            "--catalog is not an inbox option: it would set the stock levels again with every file; \
             load the catalog with `orderbatch inventory load` (the inbox's workers see the change)"
                .into(),
        )
        .into());
    }
    if let Some(path) = &opts.run.metrics_file {
        metrics::check_dir(path)?;
    }
    let dirs = moves::Dirs::prepare(opts)?;
    crate::interrupt::stop_instead();
    Worker::new(cfg, opts, dirs).work()
}

/// What the worker counts for its metrics.
#[derive(Debug, Default)]
struct Tally {
    takeovers: u64,
    retries: u64,
    waiting: u64,
    oldest_waiting: f64,
    last_pass: f64,
    database_up: bool,
}

/// A worker and everything it keeps between files.
struct Worker<'a> {
    cfg: &'a Config,
    opts: &'a InboxOptions,
    dirs: moves::Dirs,
    /// The worker's own connection: claims, moves, releases.
    store: Option<Box<dyn Store>>,
    /// The heartbeat's connection, kept between files.
    beat_store: Option<Box<dyn Store>>,
    seen: scan::Seen,
    /// Files not to ask for again before a time (held by another worker,
    /// or waiting out a delay), by name, while they stay as they were.
    not_before: HashMap<String, (scan::Ident, Instant)>,
    /// Names that are not UTF-8, said once.
    odd_names: HashSet<PathBuf>,
    cache: CatalogCache,
    tally: Tally,
    /// The exit code so far (without `--watch`).
    worst: Exit,
    seed: u64,
    host: String,
}

/// The worse of two endings, as `inbox` ranks them: 2, then 75, then 3, then 0.
fn worse(a: Exit, b: Exit) -> Exit {
    let rank = |e: Exit| match e {
        Exit::FileFailed => 3,
        Exit::Later => 2,
        Exit::SomeFailed => 1,
        _ => 0,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

/// Whether a database error means it cannot be reached (for now), rather
/// than a fault that trying again will not mend.
fn unreachable(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<StoreError>(),
            Some(
                StoreError::Unavailable { .. }
                    | StoreError::Lost { .. }
                    | StoreError::Locked { .. }
                    | StoreError::Contention { .. }
            )
        )
    })
}

impl<'a> Worker<'a> {
    fn new(cfg: &'a Config, opts: &'a InboxOptions, dirs: moves::Dirs) -> Worker<'a> {
        Worker {
            cfg,
            opts,
            dirs,
            store: None,
            beat_store: None,
            seen: scan::Seen::default(),
            not_before: HashMap::new(),
            odd_names: HashSet::new(),
            cache: CatalogCache::default(),
            tally: Tally::default(),
            worst: Exit::Ok,
            seed: store::seed(),
            host: store::host_name(),
        }
    }

    /// Looks and takes until done (without `--watch`) or told to stop.
    fn work(mut self) -> Result<Exit> {
        let mut watcher = self
            .opts
            .watch
            .then(|| watch::Watcher::new(&self.dirs.inbox));
        // Without --watch: the files present at the first look, and only them.
        let mut present: Option<HashSet<String>> = None;
        let mut tries = 0;
        while !crate::interrupt::stop_requested() {
            if !self.connect(tries)? {
                if !self.opts.watch {
                    return Ok(Exit::Later);
                }
                watch::sleep_until(Instant::now() + RETRY.delay(tries, &mut self.seed));
                tries += 1;
                continue;
            }
            tries = 0;
            let next = match self.pass(&mut present) {
                Ok(next) => next,
                Err(e) if unreachable(&e) => {
                    self.lost_database(&e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            match (&mut watcher, next) {
                (Some(w), next) => {
                    let periodic = Instant::now() + self.opts.settle.max(MIN_LOOK);
                    w.wait(next.map_or(periodic, |n| n.min(periodic)));
                }
                (None, Some(next)) => watch::sleep_until(next),
                (None, None) => break,
            }
        }
        Ok(self.ending())
    }

    /// The exit code at the end.
    fn ending(&self) -> Exit {
        if self.opts.watch {
            return Exit::Ok; // ended by a signal, after the file at hand
        }
        if self.worst == Exit::Later {
            crate::log::warn(&format!(
                "files were left in {} for a later try (see the messages above); the next run takes them",
                moves::one_line(&self.dirs.inbox.display().to_string())
            ));
        }
        self.worst
    }

    /// The worker's connection, made when missing; false (said in the log
    /// and the metrics) when the database cannot be reached.
    fn connect(&mut self, tries: u32) -> Result<bool> {
        if self.store.is_some() {
            return Ok(true);
        }
        match store::open(&self.cfg.db, self.cfg.lock_timeout) {
            Ok(s) => {
                if !self.tally.database_up && tries > 0 {
                    self.say(
                        "inbox_database_reached",
                        "the database can be reached again",
                        None,
                    );
                }
                self.store = Some(s);
                self.tally.database_up = true;
                Ok(true)
            }
            Err(e) => {
                let e = anyhow::Error::from(e);
                if !unreachable(&e) {
                    return Err(e);
                }
                self.tally.database_up = false;
                self.write_metrics();
                let what = if self.opts.watch {
                    "nothing is claimed meanwhile; trying again with backoff"
                } else {
                    "nothing was claimed; the files stay for the next run"
                };
                let message = format!("cannot reach the database: {e:#}; {what}");
                if self.opts.watch {
                    crate::log::warn_event(
                        "inbox_database_unreachable",
                        &message,
                        serde_json::json!({ "tries": tries + 1 }),
                    );
                } else {
                    crate::log::error(&message, Exit::Later.code());
                }
                Ok(false)
            }
        }
    }

    /// The connection broke mid-pass: made again at the next turn.
    fn lost_database(&mut self, e: &anyhow::Error) {
        self.store = None;
        self.tally.database_up = false;
        self.worst = worse(self.worst, Exit::Later);
        crate::log::warn_event(
            "inbox_database_unreachable",
            &format!(
                "the database stopped answering: {e:#}; nothing is claimed until it answers again"
            ),
            serde_json::Value::Null,
        );
    }

    /// One look at DIR, and every complete file taken, oldest first.
    /// Returns when to look again (None: nothing is worth waiting for, as
    /// far as a worker without `--watch` is concerned).
    fn pass(&mut self, present: &mut Option<HashSet<String>>) -> Result<Option<Instant>> {
        let (entries, odd) = scan::list(&self.dirs.inbox).with_context(|| {
            format!(
                "cannot read the inbox {}: check that it exists and that the worker may read it",
                moves::one_line(&self.dirs.inbox.display().to_string())
            )
        })?;
        self.say_odd_names(odd);
        let (now, wall) = (Instant::now(), SystemTime::now());
        self.count_waiting(&entries, wall);
        let looks = self.seen.look(entries, self.opts.settle, now, wall);
        let first = present.is_none();
        let wanted =
            present.get_or_insert_with(|| looks.iter().map(|(e, _)| e.name.clone()).collect());
        let mut next: Option<Instant> = None;
        for (entry, look) in looks {
            if crate::interrupt::stop_requested() {
                break;
            }
            if !self.opts.watch && !wanted.contains(&entry.name) {
                continue;
            }
            if let scan::Look::Settling { ready_at, changed } = look {
                // Without --watch a file still being written is left for the next run.
                if self.opts.watch || first || !changed {
                    next = Some(next.map_or(ready_at, |n| n.min(ready_at)));
                } else {
                    wanted.remove(&entry.name);
                }
                continue;
            }
            if let Some(until) = self.waiting_out(&entry, now) {
                if self.opts.watch {
                    next = Some(next.map_or(until, |n| n.min(until)));
                }
                continue;
            }
            let taken = self.take(&entry)?;
            // A file that waits now (a retry's delay) is looked at again then.
            if let (Some(until), true) = (self.account(&entry, taken), self.opts.watch) {
                next = Some(next.map_or(until, |n| n.min(until)));
            }
            wanted.remove(&entry.name);
        }
        self.tally.last_pass = unix(SystemTime::now());
        self.write_metrics();
        Ok(next)
    }

    /// What a file's take counts for; a file that waits is remembered, and
    /// when it may be asked for again returned.
    fn account(&mut self, entry: &scan::Entry, taken: Taken) -> Option<Instant> {
        let wait = match taken {
            Taken::Done(exit) => {
                self.worst = worse(self.worst, exit);
                None
            }
            Taken::Failed => {
                self.worst = worse(self.worst, Exit::FileFailed);
                None
            }
            Taken::Retry(after) => {
                self.tally.retries += 1;
                self.worst = worse(self.worst, Exit::Later);
                Some(after)
            }
            Taken::Later(after) => {
                self.worst = worse(self.worst, Exit::Later);
                Some(after)
            }
            // Looked at again once the lease would have ended (at once
            // when its row was busy at that moment).
            Taken::Held(after) => Some(after.max(MIN_LOOK)),
            Taken::Lost => Some(self.opts.lease),
            // Put back for the next worker: without --watch, a file left.
            Taken::Stopped => {
                self.worst = worse(self.worst, Exit::Later);
                None
            }
            Taken::Duplicate | Taken::Vanished => None,
        };
        let until = Instant::now() + wait?;
        self.not_before
            .insert(entry.name.clone(), (entry.ident, until));
        Some(until)
    }

    /// When a file that waits may be asked for again (None: now).
    fn waiting_out(&mut self, entry: &scan::Entry, now: Instant) -> Option<Instant> {
        match self.not_before.get(&entry.name) {
            Some((ident, until)) if *ident == entry.ident && *until > now => Some(*until),
            Some(_) => {
                self.not_before.remove(&entry.name);
                None
            }
            None => None,
        }
    }

    fn count_waiting(&mut self, entries: &[scan::Entry], wall: SystemTime) {
        self.tally.waiting = entries.len() as u64;
        self.tally.oldest_waiting = entries
            .iter()
            .map(|e| {
                wall.duration_since(e.modified)
                    .unwrap_or_default()
                    .as_secs_f64()
            })
            .fold(0.0, f64::max);
    }

    fn say_odd_names(&mut self, odd: Vec<PathBuf>) {
        for path in odd {
            if self.odd_names.insert(path.clone()) {
                crate::log::warn(&format!(
                    "{} is left alone: its name is not UTF-8; rename it to be taken",
                    moves::one_line(&path.to_string_lossy())
                ));
            }
        }
    }

    /// The inbox's gauges into the metrics file (a problem only warns).
    fn write_metrics(&self) {
        let Some(path) = &self.opts.run.metrics_file else {
            return;
        };
        let m = InboxMetrics {
            waiting: self.tally.waiting,
            done: scan::count_files(&self.dirs.done),
            failed: scan::count_files(&self.dirs.failed),
            oldest_waiting_seconds: self.tally.oldest_waiting,
            last_pass: self.tally.last_pass,
            takeovers: self.tally.takeovers,
            retries: self.tally.retries,
            database_up: self.tally.database_up,
        };
        if let Err(e) = metrics::write_inbox(path, &m) {
            crate::log::warn(&format!("{e:#}"));
        }
    }

    /// An event for people (unless `--quiet`) and for the JSON log (always).
    fn say(&self, event: &str, message: &str, fields: Option<serde_json::Value>) {
        let json = crate::log::format() == crate::log::LogFormat::Json;
        if json || !self.cfg.quiet {
            crate::log::event(event, message, fields.unwrap_or_default());
        }
    }
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_file_outranks_a_later_try_which_outranks_failed_orders() {
        assert_eq!(worse(Exit::Ok, Exit::SomeFailed), Exit::SomeFailed);
        assert_eq!(worse(Exit::Later, Exit::SomeFailed), Exit::Later);
        assert_eq!(worse(Exit::Later, Exit::FileFailed), Exit::FileFailed);
        assert_eq!(worse(Exit::FileFailed, Exit::Ok), Exit::FileFailed);
    }

    #[test]
    fn retries_wait_1_s_at_first_and_5_min_at_most() {
        let mut seed = 7;
        for _ in 0..100 {
            assert!(RETRY.delay(0, &mut seed) <= Duration::from_secs(1));
            assert!(RETRY.delay(30, &mut seed) <= Duration::from_secs(300));
        }
    }
}
