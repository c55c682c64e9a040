//! How a command ends: its exit status, the errors that carry their own exit
//! code, and the guards around libraries that panic on I/O errors. It sits at
//! the bottom of the crate and imports nothing from it.

use std::error::Error;

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

// The exit codes of fatal errors: 2 for usage and input-file errors, 75 for
// a database locked past the timeout, 1 for anything else.
pub const USAGE: u8 = 2;
pub const BUSY: u8 = 75;
pub const OTHER: u8 = 1;

/// An error that knows the exit code it ends the process with. Each module's
/// error type says it of itself (`None`: no opinion, look further down the
/// chain), so the code is decided where the error is understood.
pub trait ExitStatus: Error + Send + Sync + 'static {
    fn exit_code(&self) -> Option<u8>;
}

/// A usage problem found after parsing (e.g. a run id that does not exist): exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl ExitStatus for UsageError {
    fn exit_code(&self) -> Option<u8> {
        Some(USAGE)
    }
}

/// What one error type says of one cause in a chain: its code, when the
/// cause is of type `T` and has an opinion.
pub type Says = fn(&(dyn Error + 'static)) -> Option<u8>;

/// `Says` for the error type `T` (`says::<StoreError>`).
pub fn says<T: ExitStatus>(cause: &(dyn Error + 'static)) -> Option<u8> {
    cause.downcast_ref::<T>().and_then(T::exit_code)
}

/// The exit code of a fatal error: the first cause in its chain that one of
/// `types` has an opinion on decides; none, 1.
pub fn code_of(e: &anyhow::Error, types: &[Says]) -> u8 {
    e.chain()
        .find_map(|cause| types.iter().find_map(|says| says(cause)))
        .unwrap_or(OTHER)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_usage_error_anywhere_in_the_chain_is_found_with_its_code() {
        let e = anyhow::Error::new(UsageError("no run 9".into())).context("runs show");
        assert_eq!(code_of(&e, &[says::<UsageError>]), USAGE);
        let other = anyhow::anyhow!("disk full").context("writing");
        assert_eq!(code_of(&other, &[says::<UsageError>]), OTHER);
    }

    #[test]
    fn a_caught_panic_becomes_an_io_error_and_the_flag_is_cleared() {
        let res: std::io::Result<()> = catching_panics(|| panic!("write failed: 28"));
        assert_eq!(res.unwrap_err().to_string(), "write failed: 28");
        assert!(!panic_is_expected());
    }
}
