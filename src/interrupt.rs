//! Ctrl-C: one line saying what became of the run (nothing committed, or
//! committed with the reports perhaps not in place), then the process ends by
//! the interrupt as it would have without the handler (a shell loop around it
//! stops, the exit status says SIGINT).

use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};

static RUN: AtomicI64 = AtomicI64::new(0);
static STATE: AtomicU8 = AtomicU8::new(IDLE);

const IDLE: u8 = 0;
const RUNNING: u8 = 1;
const COMMITTED: u8 = 2;

/// A run started: an interrupt now loses nothing committed.
pub fn running(run_id: i64) {
    RUN.store(run_id, Ordering::SeqCst);
    STATE.store(RUNNING, Ordering::SeqCst);
}

/// The run committed: an interrupt now only costs the reports' move into place.
pub fn committed() {
    STATE.store(COMMITTED, Ordering::SeqCst);
}

/// What an interrupt at this moment means, in one line.
pub fn message() -> String {
    let id = RUN.load(Ordering::SeqCst);
    match STATE.load(Ordering::SeqCst) {
        RUNNING => format!(
            "orderbatch: interrupted: nothing of run {id} was committed; run the same command again"
        ),
        COMMITTED => format!(
            "orderbatch: interrupted after run {id} committed: if its reports are not in place, \
             `orderbatch report accepted|failed --run {id}` prints them"
        ),
        _ => "orderbatch: interrupted: nothing was changed".into(),
    }
}

/// Install the handler (once, at start).
pub fn install() {
    let _ = ctrlc::set_handler(|| {
        crate::log::interrupted(&message());
        // End as an interrupted process does.
        // SAFETY: resetting a signal's disposition and raising it are plain libc calls.
        unsafe {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::raise(libc::SIGINT);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_what_became_of_the_run() {
        assert!(message().contains("nothing was changed"));
        running(7);
        assert!(message().contains("nothing of run 7 was committed"));
        committed();
        assert!(message().contains("after run 7 committed"));
        STATE.store(IDLE, Ordering::SeqCst);
    }
}
