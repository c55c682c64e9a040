//! orderbatch: batch order processing — read, validate, apply, report. The
//! crate root only names the modules; `main` parses the command line (`cli`)
//! and runs the command (`commands`).

pub mod apply;
pub mod cli;
pub mod commands;
pub mod config;
pub mod exit;
pub mod identity;
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
