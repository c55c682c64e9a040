//! The heartbeat: while a file's run works, a thread renews its claim every
//! third of the lease, on a database connection of its own (never the
//! run's: a claim's renewal is a short transaction of its own). When the
//! claim is gone (taken over), or the lease ends without a renewal getting
//! through, the claim is lost: the heartbeat says so on the fence, and the
//! run stops at its next chunk or, at the latest, refuses to commit.

use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

use crate::run::Fence;
use crate::store::{self, Store, StoreError};

/// What a heartbeat needs to know besides its claim.
#[derive(Debug, Clone, Copy)]
pub(super) struct Beat<'a> {
    pub db: &'a str,
    pub lease: Duration,
    /// One writer holds the whole database at a time (SQLite): a renewal
    /// that finds it held (by the file's own run, most likely) is not a
    /// failure to reach it, and no other worker can take the claim over
    /// while it is held either.
    pub serial: bool,
    /// The file, for messages.
    pub file: &'a str,
}

/// A running heartbeat; stopped (and joined) by [`Heartbeat::stop`].
pub(super) struct Heartbeat<'scope> {
    stop: Sender<()>,
    handle: ScopedJoinHandle<'scope, ()>,
}

impl Heartbeat<'_> {
    pub(super) fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.handle.join();
    }
}

/// Starts renewing `fence`'s claim; `conn` is the heartbeat's connection,
/// opened when missing and kept for the next file.
pub(super) fn start<'scope, 'env>(
    scope: &'scope Scope<'scope, 'env>,
    conn: &'env mut Option<Box<dyn Store>>,
    fence: Fence,
    beat: Beat<'env>,
) -> Heartbeat<'scope> {
    let (stop, stopped) = channel::<()>();
    let handle = scope.spawn(move || {
        let mut renewed = Instant::now();
        loop {
            match stopped.recv_timeout(beat.lease / 3) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => return,
            }
            match renew(conn, &fence, beat) {
                Ok(true) => renewed = Instant::now(),
                Ok(false) => return lost(&fence, beat, "another worker took the file over"),
                Err(StoreError::Locked { .. }) if beat.serial => {}
                Err(e) => {
                    // Tried again with a new connection next time.
                    *conn = None;
                    if renewed.elapsed() >= beat.lease {
                        return lost(&fence, beat, &format!("{e}"));
                    }
                }
            }
        }
    });
    Heartbeat { stop, handle }
}

fn renew(conn: &mut Option<Box<dyn Store>>, fence: &Fence, beat: Beat<'_>) -> store::Result<bool> {
    if conn.is_none() {
        // Each try bounded well inside the lease: a renewal that waits is
        // one that did not get through.
        let wait = (beat.lease / 4).max(Duration::from_millis(10));
        *conn = Some(store::open(beat.db, wait)?);
    }
    match conn {
        Some(s) => s.renew_claim(fence.claim(), beat.lease),
        None => Ok(false),
    }
}

fn lost(fence: &Fence, beat: Beat<'_>, why: &str) {
    fence.lose();
    crate::log::warn_event(
        "inbox_claim_lost",
        &format!(
            "{}: this worker lost its claim on the file ({why}); its run will not commit and the file \
             is left to the worker that takes it over",
            beat.file
        ),
        serde_json::json!({ "file": beat.file }),
    );
}
