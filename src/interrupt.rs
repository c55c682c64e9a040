//! Ctrl-C, SIGTERM and SIGHUP: one line saying what became of the run, then
//! the process ends by that signal as it would have without the handler (a
//! shell loop around it stops, the exit status names the signal). A signal
//! that comes once the run has committed lets the run finish what is left
//! (its reports moved into place, the metrics file) before it ends the
//! process: that takes moments, and the line it prints is then true. A
//! second signal ends it at once.
//!
//! A worker that processes many runs (`inbox`) asks for signals to stop its
//! work instead ([`stop_instead`]): the first signal then only sets
//! [`stop_requested`], which a fenced run checks between chunks and before
//! its commit; the worker puts back what it holds and ends by itself. A
//! second signal still ends the process at once.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

static RUN: AtomicI64 = AtomicI64::new(0);
static STATE: AtomicU8 = AtomicU8::new(IDLE);
/// The signal that came after the commit, to end the process with once the
/// run is done (0: none).
static DEFERRED: AtomicI32 = AtomicI32::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);
/// Signals stop the work, not the process (see the module doc).
static STOP_INSTEAD: AtomicBool = AtomicBool::new(false);
/// A signal asked the work to stop.
static STOP: AtomicBool = AtomicBool::new(false);

const IDLE: u8 = 0;
const RUNNING: u8 = 1;
/// The commit was asked for and has not answered yet: whether it happened
/// is known only when it answers.
const COMMITTING: u8 = 2;
const COMMITTED: u8 = 3;

/// How long a signal that comes during a commit waits for its answer.
const COMMIT_WAIT: Duration = Duration::from_secs(10);

/// A run is about to start (its history row not yet written, or written
/// and its number not yet known here): an interrupt loses nothing committed.
pub fn starting() {
    RUN.store(0, Ordering::SeqCst);
    STATE.store(RUNNING, Ordering::SeqCst);
}

/// A run started: an interrupt now loses nothing committed.
pub fn running(run_id: i64) {
    RUN.store(run_id, Ordering::SeqCst);
    STATE.store(RUNNING, Ordering::SeqCst);
}

/// The run asks the database to commit.
pub fn committing() {
    STATE.store(COMMITTING, Ordering::SeqCst);
}

/// The commit answered that it committed (called at once, before anything
/// else the store does after it, such as a checkpoint).
pub fn committed() {
    STATE.store(COMMITTED, Ordering::SeqCst);
}

/// The commit answered with an error: nothing of the run was committed.
pub fn commit_failed() {
    STATE.store(RUNNING, Ordering::SeqCst);
}

/// The run is done with everything after its commit: a signal that came
/// meanwhile ends the process now.
pub fn finish() {
    let sig = DEFERRED.load(Ordering::SeqCst);
    if sig != 0 {
        die(sig);
    }
}

/// From now on the first signal stops the work instead of the process.
pub fn stop_instead() {
    STOP_INSTEAD.store(true, Ordering::SeqCst);
}

/// Whether a signal asked the work to stop (only with [`stop_instead`]).
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Between runs: a signal now interrupts no run.
pub fn idle() {
    RUN.store(0, Ordering::SeqCst);
    STATE.store(IDLE, Ordering::SeqCst);
}

/// What the first signal means where it stops the work, in one line.
pub fn stop_message() -> String {
    let id = RUN.load(Ordering::SeqCst);
    match STATE.load(Ordering::SeqCst) {
        RUNNING if id > 0 => format!(
            "orderbatch: stopping: nothing of run {id} will be committed; its file stays for the next worker"
        ),
        COMMITTED => format!(
            "orderbatch: stopping once run {id}, which committed, has its reports in place and its file moved"
        ),
        _ => "orderbatch: stopping after the file at hand".into(),
    }
}

/// What a signal at this moment means, in one line.
pub fn message() -> String {
    let id = RUN.load(Ordering::SeqCst);
    match STATE.load(Ordering::SeqCst) {
        RUNNING if id == 0 => {
            "orderbatch: interrupted: nothing of this run was committed; run the same command again"
                .into()
        }
        RUNNING => format!(
            "orderbatch: interrupted: nothing of run {id} was committed; run the same command again"
        ),
        COMMITTING => format!(
            "orderbatch: interrupted while run {id} was committing: `orderbatch runs show {id}` says whether it did \
             (completed: its reports are printed by `orderbatch report accepted|failed --run {id}`; \
             otherwise run the same command again)"
        ),
        COMMITTED if DEFERRED.load(Ordering::SeqCst) == 0 => format!(
            "orderbatch: interrupted after run {id} committed: putting its reports in place, then stopping"
        ),
        COMMITTED => format!(
            "orderbatch: interrupted again after run {id} committed: the next run moves its reports into place \
             (`orderbatch report accepted|failed --run {id}` prints them meanwhile)"
        ),
        _ => "orderbatch: interrupted: nothing was changed".into(),
    }
}

/// Install the handler thread (once, at start).
pub fn install() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return;
    }
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return; // the default dispositions stay: the process still ends
    };
    let _ = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                on_signal(sig);
            }
        });
}

fn on_signal(sig: i32) {
    // A commit under way answers soon: wait for it, so that the line is true.
    let deadline = Instant::now() + COMMIT_WAIT;
    while STATE.load(Ordering::SeqCst) == COMMITTING && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    if STOP_INSTEAD.load(Ordering::SeqCst) && !STOP.swap(true, Ordering::SeqCst) {
        crate::log::interrupted(&stop_message());
        return;
    }
    let first_after_commit =
        STATE.load(Ordering::SeqCst) == COMMITTED && DEFERRED.load(Ordering::SeqCst) == 0;
    crate::log::interrupted(&message());
    if first_after_commit {
        DEFERRED.store(sig, Ordering::SeqCst);
        return;
    }
    die(sig);
}

/// End the process by `sig`, as its default disposition does.
fn die(sig: i32) -> ! {
    // SAFETY: resetting a signal's disposition and raising it are plain libc calls.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
    // A signal whose default is to be ignored cannot reach here (only
    // SIGINT, SIGTERM and SIGHUP are handled); exit as a shell would say.
    std::process::exit(128 + sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_what_became_of_the_run_or_its_file() {
        assert!(message().contains("nothing was changed"));
        starting();
        assert!(message().contains("nothing of this run was committed"));
        running(7);
        assert!(message().contains("nothing of run 7 was committed"));
        committing();
        assert!(message().contains("while run 7 was committing"));
        commit_failed();
        assert!(message().contains("nothing of run 7 was committed"));
        committing();
        committed();
        assert!(message().contains("after run 7 committed: putting its reports in place"));
        DEFERRED.store(2, Ordering::SeqCst);
        assert!(message().contains("interrupted again after run 7 committed"));
        DEFERRED.store(0, Ordering::SeqCst);
        STATE.store(IDLE, Ordering::SeqCst);
        // Where a signal stops the work (the inbox): what becomes of the file.
        // (One test: the state is the process's.)
        running(9);
        assert!(stop_message().contains("nothing of run 9 will be committed"));
        committing();
        committed();
        assert!(stop_message().contains("run 9, which committed"));
        idle();
        assert_eq!(
            stop_message(),
            "orderbatch: stopping after the file at hand"
        );
        assert!(!stop_requested());
    }
}
