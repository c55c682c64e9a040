//! Waiting for the next look at the inbox: until something changes in the
//! directory (inotify, where the kernel offers it: a file closed after
//! writing, renamed in, changed), a deadline (the next file to settle, the
//! periodic look), or a signal asking to stop. inotify sees only what this
//! host writes, not what other hosts write to a shared (network) file
//! system, so the periodic look happens whatever inotify says.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fs::inotify;

/// How often a wait looks whether a signal asked to stop.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// The inbox directory watched, where inotify works.
pub(super) struct Watcher {
    fd: Option<OwnedFd>,
}

impl Watcher {
    pub(super) fn new(dir: &Path) -> Watcher {
        let events = inotify::WatchFlags::CLOSE_WRITE
            | inotify::WatchFlags::MOVED_TO
            | inotify::WatchFlags::CREATE
            | inotify::WatchFlags::MODIFY
            | inotify::WatchFlags::ATTRIB;
        let fd = inotify::init(inotify::CreateFlags::NONBLOCK | inotify::CreateFlags::CLOEXEC)
            .ok()
            .filter(|fd| inotify::add_watch(fd, dir, events).is_ok());
        if fd.is_none() {
            crate::log::structured(
                "inbox_no_inotify",
                serde_json::json!({ "dir": dir.display().to_string() }),
            );
        }
        Watcher { fd }
    }

    /// Waits until something happens in the directory, `until`, or a signal
    /// asks to stop, whichever comes first.
    pub(super) fn wait(&mut self, until: Instant) {
        while !crate::interrupt::stop_requested() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            let slice = left.min(STOP_CHECK);
            let Some(fd) = &self.fd else {
                std::thread::sleep(slice);
                continue;
            };
            let timeout = Timespec {
                tv_sec: 0,
                tv_nsec: i64::from(slice.subsec_nanos()),
            };
            let mut fds = [PollFd::new(fd, PollFlags::IN)];
            if matches!(poll(&mut fds, Some(&timeout)), Ok(n) if n > 0) {
                drain(fd.as_fd());
                return;
            }
        }
    }
}

/// Reads every pending event: only that something happened matters.
fn drain(fd: rustix::fd::BorrowedFd<'_>) {
    let mut buf = [std::mem::MaybeUninit::uninit(); 4096];
    let mut events = inotify::Reader::new(fd, &mut buf);
    while events.next().is_ok() {}
}

/// Sleeps until `until`, or until a signal asks to stop.
pub(super) fn sleep_until(until: Instant) {
    while !crate::interrupt::stop_requested() {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(STOP_CHECK));
    }
}
