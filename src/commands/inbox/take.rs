//! One file taken: hashed, claimed in the database, checked once claimed
//! (still the file that was hashed, not tried too often already, not a
//! content a completed run processed), run as one `process` run with its
//! heartbeat and fence, and then moved (to done or failed, in a transaction
//! fenced by the claim: only the claim's holder moves the file) or released
//! for a later try.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use super::scan::Entry;
use super::{heartbeat, moves, Worker, RETRY};
use crate::exit::Exit;
use crate::run::{Fence, Stopped};
use crate::store::{AttemptOutcome, ClaimEnd, ClaimResult, Claimant, Claimed, InboxFile, Release};

/// What became of a file the worker tried to take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Taken {
    /// Its run committed (or a dry run ended), ending with this exit; moved to done.
    Done(Exit),
    /// A completed run had processed its content: moved to done without a run.
    Duplicate,
    /// Moved to the failed directory.
    Failed,
    /// A temporary problem: left in the inbox, to be tried again after this delay.
    Retry(Duration),
    /// Another worker holds it, for this long at most.
    Held(Duration),
    /// An earlier try's delay has this long to run.
    Later(Duration),
    /// This worker's claim was lost on the way: the file is left to the worker that takes it over.
    Lost,
    /// A signal stopped it; its claim was released.
    Stopped,
    /// It changed or went away once claimed.
    Vanished,
}

/// How a file's run ended, for the inbox.
enum RunEnd {
    /// Committed (or a dry run ended): the file goes to done.
    Finished(Exit),
    /// Refused before any order was processed (exit 2), or aborted by
    /// `--max-errors`: the file goes to failed, with this message.
    Refused(String),
    /// Something that may pass (the database locked or lost, no room for
    /// the reports): the file is tried again later.
    Temporary(String),
    Stopped(Stopped),
}

/// Where a file is moved.
#[derive(Debug, Clone, Copy)]
enum Dest<'m> {
    Done,
    /// With the `.error` line to write beside it.
    Failed(&'m str),
}

/// What moving a file came to.
enum Moved {
    To(PathBuf),
    /// The claim was no longer this worker's: the file was not moved.
    Lost,
    /// The file could not be moved (the claim is still held).
    Failed(anyhow::Error),
}

fn millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

impl Worker<'_> {
    fn store(&mut self) -> Result<&mut Box<dyn crate::store::Store>> {
        self.store
            .as_mut()
            .context("internal error: the inbox worker has no database connection")
    }

    /// Takes `entry`, if it can be had.
    pub(super) fn take(&mut self, entry: &Entry) -> Result<Taken> {
        let sha = match super::scan::digest(entry) {
            Ok(Some(sha)) => sha,
            Ok(None) => return Ok(Taken::Vanished),
            // It cannot be read here: claimed by what it is on disk, and
            // refused by its run, which says why.
            Err(_) => format!("unreadable:{}:{}", entry.name, entry.ident.key()),
        };
        // Moved by another worker since it was hashed: not worth a claim.
        if !entry.unchanged() {
            return Ok(Taken::Vanished);
        }
        let host = self.host.clone();
        let who = Claimant {
            host: &host,
            pid: std::process::id(),
            lease: self.opts.lease,
        };
        let file = InboxFile {
            name: &entry.name,
            sha256: &sha,
        };
        let claimed = match self.store()?.claim_file(file, who)? {
            ClaimResult::Claimed(c) => c,
            ClaimResult::Held { for_ms } => return Ok(Taken::Held(millis(for_ms))),
            ClaimResult::Later { in_ms } => return Ok(Taken::Later(millis(in_ms))),
        };
        let fence = Fence::new(claimed.claim.clone(), &entry.path_str());
        if !entry.unchanged() {
            let release = Release::Vanished { was: claimed.was };
            return self.release(&fence, release, Taken::Vanished);
        }
        self.said_taken(entry, &claimed);
        self.with_claim(entry, &fence, &claimed)
    }

    /// Everything done while holding the claim.
    fn with_claim(&mut self, entry: &Entry, fence: &Fence, claimed: &Claimed) -> Result<Taken> {
        if crate::interrupt::stop_requested() {
            return self.release(fence, Release::Stopped, Taken::Stopped);
        }
        if claimed.attempts >= self.opts.max_attempts {
            let last = claimed.message.as_deref().unwrap_or("(no message)");
            let message = format!(
                "{}: tried {} times without success, the last time: {last}; once the cause is fixed, \
                 put the file into {} again",
                entry.name,
                claimed.attempts,
                self.inbox_shown()
            );
            return self.refuse(entry, fence, &message, None, claimed.attempts);
        }
        if let Some(run) = self.store()?.processed_by(&fence.claim().sha256)? {
            return self.duplicate(entry, fence, run);
        }
        let res = self.run_file(entry, fence);
        match self.classify(res, entry, fence.run_id()) {
            RunEnd::Finished(exit) => {
                let run = fence.run_id();
                match self.move_file(entry, fence, Dest::Done, AttemptOutcome::Done, run)? {
                    Moved::To(to) => {
                        self.said_moved(entry, &to, run, None)?;
                        Ok(Taken::Done(exit))
                    }
                    Moved::Lost => Ok(Taken::Lost),
                    Moved::Failed(e) => self.move_failed(entry, fence, &e),
                }
            }
            RunEnd::Refused(message) => {
                self.refuse(entry, fence, &message, fence.run_id(), claimed.attempts)
            }
            RunEnd::Stopped(Stopped::Signal { .. }) => {
                self.release(fence, Release::Stopped, Taken::Stopped)
            }
            RunEnd::Stopped(lost @ Stopped::ClaimLost { .. }) => {
                crate::log::warn_event(
                    "inbox_run_rolled_back",
                    &lost.to_string(),
                    serde_json::json!({ "file": entry.name, "run_id": fence.run_id() }),
                );
                Ok(Taken::Lost)
            }
            RunEnd::Temporary(message) => self.retry(entry, fence, claimed.attempts, &message),
        }
    }

    /// The file's run, with the heartbeat renewing its claim meanwhile.
    fn run_file(&mut self, entry: &Entry, fence: &Fence) -> Result<Exit> {
        let mut opts = self.opts.run.clone();
        opts.files = vec![entry.path_str()];
        opts.fence = Some(fence.clone());
        opts.catalog_cache = Some(self.cache.clone());
        // One line per file comes from the inbox, with where the file went.
        opts.json = false;
        let serial = self
            .store
            .as_ref()
            .is_some_and(|s| s.concurrency() == crate::store::Concurrency::Serial);
        let cfg = self.cfg;
        let beat = heartbeat::Beat {
            db: &cfg.db,
            lease: self.opts.lease,
            serial,
            file: &entry.name,
        };
        let conn = &mut self.beat_store;
        let res = std::thread::scope(|s| {
            let heart = heartbeat::start(s, conn, fence.clone(), beat);
            let res = crate::run::process(cfg, &opts);
            heart.stop();
            res
        });
        crate::interrupt::idle();
        res
    }

    fn classify(&self, res: Result<Exit>, entry: &Entry, run_id: Option<i64>) -> RunEnd {
        let again = format!("once fixed, put the file into {} again", self.inbox_shown());
        match res {
            Ok(Exit::Aborted) => {
                let n = self.opts.run.max_errors.unwrap_or_default();
                let show = run_id
                    .map(|id| format!(" (`orderbatch runs show {id}` gives the errors by code)"))
                    .unwrap_or_default();
                RunEnd::Refused(format!(
                    "more than {n} orders failed (--max-errors {n}): nothing of the file was committed \
                     and no reports were written{show}; {again}"
                ))
            }
            Ok(exit) => RunEnd::Finished(exit),
            Err(e) => match Stopped::of(&e) {
                Some(stopped) => RunEnd::Stopped(stopped.clone()),
                // Asked to stop, and ended by something else meanwhile (a
                // lock wait that timed out): stopped all the same, not a try.
                None if crate::interrupt::stop_requested() => RunEnd::Stopped(Stopped::Signal {
                    file: entry.path_str(),
                    run: run_id.unwrap_or_default(),
                }),
                None if crate::run::exit_code_of(&e) == 2 => {
                    RunEnd::Refused(format!("{e:#}; {again}"))
                }
                None => RunEnd::Temporary(format!("{e:#}")),
            },
        }
    }

    /// A temporary problem: released with a delay, or moved to failed after
    /// `--max-attempts` tries.
    fn retry(&mut self, entry: &Entry, fence: &Fence, before: u32, message: &str) -> Result<Taken> {
        let tries = before + 1;
        if tries >= self.opts.max_attempts {
            let message = format!(
                "{}: tried {tries} times, each time stopped by a temporary problem, the last time: \
                 {message}; once the cause is fixed, put the file into {} again",
                entry.name,
                self.inbox_shown()
            );
            return self.refuse(entry, fence, &message, fence.run_id(), before);
        }
        let delay = RETRY.delay(before, &mut self.seed);
        let release = Release::Retry { delay, message };
        let taken = self.release(fence, release, Taken::Retry(delay))?;
        if taken == Taken::Retry(delay) {
            crate::log::warn_event(
                "inbox_retry",
                &format!(
                    "{}: try {tries} of {} ended for a temporary problem: {}; the file stays in the \
                     inbox and is tried again in {:.1} s at the earliest",
                    entry.name,
                    self.opts.max_attempts,
                    moves::one_line(message),
                    delay.as_secs_f64()
                ),
                serde_json::json!({
                    "file": entry.name, "attempt": tries, "retry_in_seconds": delay.as_secs_f64(),
                }),
            );
        }
        Ok(taken)
    }

    /// Moves the file to failed, with its `.error`.
    fn refuse(
        &mut self,
        entry: &Entry,
        fence: &Fence,
        message: &str,
        run: Option<i64>,
        before: u32,
    ) -> Result<Taken> {
        let dest = Dest::Failed(message);
        match self.move_file(entry, fence, dest, AttemptOutcome::Failed, run)? {
            Moved::To(to) => {
                crate::log::warn_event(
                    "inbox_failed",
                    &format!(
                        "{} went to {}: {}",
                        entry.name,
                        shown(&to),
                        moves::one_line(message)
                    ),
                    serde_json::json!({
                        "file": entry.name, "moved_to": shown(&to), "run_id": run,
                        "attempts": before + 1, "error": moves::one_line(message),
                    }),
                );
                self.print_line(entry, &to, run, None, Some(message))?;
                Ok(Taken::Failed)
            }
            Moved::Lost => Ok(Taken::Lost),
            Moved::Failed(e) => self.move_failed(entry, fence, &e),
        }
    }

    /// A content a completed run processed: to done, without a run.
    fn duplicate(&mut self, entry: &Entry, fence: &Fence, run: i64) -> Result<Taken> {
        match self.move_file(
            entry,
            fence,
            Dest::Done,
            AttemptOutcome::Duplicate,
            Some(run),
        )? {
            Moved::To(to) => {
                self.said_moved(entry, &to, None, Some(run))?;
                Ok(Taken::Duplicate)
            }
            Moved::Lost => Ok(Taken::Lost),
            Moved::Failed(e) => self.move_failed(entry, fence, &e),
        }
    }

    /// The move itself, in a transaction that holds the claim: a worker
    /// whose claim was taken over moves nothing.
    fn move_file(
        &mut self,
        entry: &Entry,
        fence: &Fence,
        dest: Dest<'_>,
        outcome: AttemptOutcome,
        run_id: Option<i64>,
    ) -> Result<Moved> {
        let dir = match dest {
            Dest::Done => self.dirs.done.clone(),
            Dest::Failed(_) => self.dirs.failed.clone(),
        };
        let mut tx = self.store()?.begin()?;
        if fence.is_lost() || !tx.fence(fence.claim(), None)? {
            return Ok(Moved::Lost);
        }
        let to = match moves::move_into(&entry.path, &dir) {
            Ok(to) => to,
            Err(e) => return Ok(Moved::Failed(e)),
        };
        let message = match dest {
            Dest::Failed(m) => {
                if let Err(e) = moves::write_error(&to, m) {
                    crate::log::warn(&format!("{e:#}"));
                }
                Some(moves::one_line(m))
            }
            Dest::Done => None,
        };
        let end = ClaimEnd {
            outcome,
            run_id,
            moved_to: &shown(&to),
            message: message.as_deref(),
        };
        tx.end_claim(fence.claim(), end)?;
        tx.commit()?;
        Ok(Moved::To(to))
    }

    /// A file that cannot be moved stays, its claim released with a delay
    /// (counted): an operator fixes the directories meanwhile.
    fn move_failed(&mut self, entry: &Entry, fence: &Fence, e: &anyhow::Error) -> Result<Taken> {
        let message = format!("{e:#}");
        crate::log::warn(&format!(
            "{}: {}; it stays in the inbox",
            entry.name,
            moves::one_line(&message)
        ));
        let delay = RETRY.delay(self.opts.max_attempts, &mut self.seed);
        let release = Release::Retry {
            delay,
            message: &message,
        };
        self.release(fence, release, Taken::Retry(delay))
    }

    /// The claim released; `taken` when it was still this worker's.
    fn release(&mut self, fence: &Fence, release: Release<'_>, taken: Taken) -> Result<Taken> {
        let held = !fence.is_lost() && self.store()?.release_claim(fence.claim(), release)?;
        Ok(if held { taken } else { Taken::Lost })
    }

    fn inbox_shown(&self) -> String {
        shown(&self.dirs.inbox)
    }

    fn said_taken(&mut self, entry: &Entry, claimed: &Claimed) {
        let attempt = claimed.attempts + 1;
        crate::log::structured(
            "inbox_take",
            serde_json::json!({
                "file": entry.name, "sha256": claimed.claim.sha256, "attempt": attempt,
                "lease_seconds": self.opts.lease.as_secs_f64(),
            }),
        );
        if let Some(from) = &claimed.took_over {
            self.tally.takeovers += 1;
            crate::log::warn_event(
                "inbox_takeover",
                &format!(
                    "{}: taken over from the worker on {} (pid {}), whose lease ended before it finished \
                     (try {attempt}); a run it left uncommitted was rolled back",
                    entry.name, from.host, from.pid
                ),
                serde_json::json!({
                    "file": entry.name, "from_host": from.host, "from_pid": from.pid, "attempt": attempt,
                }),
            );
        }
    }

    /// Said once a file went to done (its run's summary line came before).
    fn said_moved(
        &mut self,
        entry: &Entry,
        to: &Path,
        run: Option<i64>,
        duplicate_of: Option<i64>,
    ) -> Result<()> {
        let message = match duplicate_of {
            Some(first) => format!(
                "{}: the same content was processed by run {first} already; moved to {} without a run",
                entry.name,
                shown(to)
            ),
            None => format!("{} moved to {}", entry.name, shown(to)),
        };
        let event = match duplicate_of {
            Some(_) => "inbox_duplicate",
            None => "inbox_moved",
        };
        let fields = serde_json::json!({
            "file": entry.name, "moved_to": shown(to), "run_id": run, "duplicate_of": duplicate_of,
        });
        self.say(event, &message, Some(fields));
        self.print_line(entry, to, run, duplicate_of, None)
    }

    /// With `--json`, one line on standard output per file moved: its run's
    /// summary (when it had a run that did not fail), with `file` and
    /// `moved_to`; `duplicate_of` or `error` where they apply.
    fn print_line(
        &mut self,
        entry: &Entry,
        to: &Path,
        run: Option<i64>,
        duplicate_of: Option<i64>,
        error: Option<&str>,
    ) -> Result<()> {
        if !self.opts.run.json {
            return Ok(());
        }
        let summary = match run {
            Some(id) => self.store()?.run(id)?.map(|r| r.summary),
            None => None,
        };
        let mut line = summary
            .filter(|s| s.status != crate::model::run::RunStatus::Failed)
            .and_then(|s| serde_json::to_value(&s).ok())
            .unwrap_or_else(|| serde_json::json!({}));
        line["file"] = entry.path_str().into();
        line["moved_to"] = shown(to).into();
        if let Some(first) = duplicate_of {
            line["duplicate_of"] = first.into();
        }
        if let Some(e) = error {
            line["error"] = moves::one_line(e).into();
        }
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .or_else(|e| {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    Ok(())
                } else {
                    Err(e)
                }
            })?;
        Ok(())
    }
}

fn shown(p: &Path) -> String {
    moves::one_line(&p.display().to_string())
}
