//! What orderbatch says on stderr: one clear line per event for people
//! (unchanged from the start), or, with `--log-format json`, one JSON object
//! per event for journald or Loki-style collection. Either way card numbers
//! are masked and control characters cannot reach a terminal raw.
//!
//! Written here rather than with `tracing` and `tracing-subscriber`'s JSON
//! layer: that layer nests an event's fields under `fields` and adds its
//! target and spans, which would change the documented object (`event`,
//! `level`, `message`, `exit_code`, flat) that collectors already parse, and
//! the masking and escaping would still be ours to apply to every field.

use std::io::Write;
use std::sync::OnceLock;

use serde_json::{json, Map, Value};

use crate::model::pan::mask_pans;
use crate::model::text::for_terminal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Set once, from the command line.
pub fn init(format: LogFormat) {
    let _ = FORMAT.set(format);
}

pub fn format() -> LogFormat {
    *FORMAT.get().unwrap_or(&LogFormat::Human)
}

fn emit(level: &str, event: &str, message: &str, fields: Value) {
    let message = mask_pans(message);
    let mut err = std::io::stderr().lock();
    let _ = match format() {
        LogFormat::Human => writeln!(err, "{}", for_terminal(&message)),
        LogFormat::Json => {
            let mut obj = Map::new();
            obj.insert("ts".into(), crate::model::clock::now_rfc3339().into());
            obj.insert("level".into(), level.into());
            obj.insert("event".into(), event.into());
            obj.insert("message".into(), message.as_ref().into());
            if let Value::Object(extra) = fields {
                obj.extend(extra);
            }
            // serde_json escapes every control character.
            writeln!(err, "{}", Value::Object(obj))
        }
    };
}

/// Something that went well, for a person reading along.
pub fn info(event: &str, message: &str) {
    emit("info", event, message, Value::Null);
}

/// An event with fields: `message` is what a person reads.
pub fn event(event: &str, message: &str, fields: Value) {
    emit("info", event, message, fields);
}

/// Only in JSON: events a person reading along does not need.
pub fn structured(event: &str, fields: Value) {
    if format() == LogFormat::Json {
        emit("info", event, "", fields);
    }
}

pub fn warn(message: &str) {
    match format() {
        LogFormat::Human => emit(
            "warning",
            "warning",
            &format!("orderbatch: warning: {message}"),
            Value::Null,
        ),
        LogFormat::Json => emit("warning", "warning", message, Value::Null),
    }
}

/// A warning with fields of its own (beside the message, in JSON).
pub fn warn_event(event: &str, message: &str, fields: Value) {
    match format() {
        LogFormat::Human => emit(
            "warning",
            event,
            &format!("orderbatch: warning: {message}"),
            Value::Null,
        ),
        LogFormat::Json => emit("warning", event, message, fields),
    }
}

/// A fatal error, with the exit code it ends the command with.
pub fn error(message: &str, exit_code: u8) {
    match format() {
        LogFormat::Human => emit(
            "error",
            "error",
            &format!("orderbatch: error: {message}"),
            Value::Null,
        ),
        LogFormat::Json => emit("error", "error", message, json!({"exit_code": exit_code})),
    }
}

/// A fault `verify` or `init` found.
pub fn fault(message: &str) {
    emit("error", "fault", message, Value::Null);
}

/// The line of a run stopped by Ctrl-C (it starts with `orderbatch: `).
pub fn interrupted(line: &str) {
    let message = match format() {
        LogFormat::Human => line,
        LogFormat::Json => line.trim_start_matches("orderbatch: "),
    };
    emit("error", "interrupted", message, Value::Null);
}
