//! The configuration every command runs on: the global options, derived
//! once from the command line (the database, how much to say, how long to
//! wait for a lock, how messages look).

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    pub db: String,
    pub quiet: bool,
    pub verbose: bool,
    /// Progress bars allowed (they still appear only on a terminal).
    pub progress: bool,
    pub lock_timeout: Duration,
    /// How stderr speaks: lines for people, or JSON objects.
    pub log_format: crate::log::LogFormat,
}
