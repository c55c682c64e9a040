//! Opening a SQLite file, with a message that says what is wrong with a path
//! that cannot be a database and what to do about it; a command that only
//! reads never creates one.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::super::{Result, StoreError};

fn unavailable(path: &str, what: String) -> StoreError {
    StoreError::Unavailable {
        db: path.to_string(),
        what,
    }
}

/// Why `path` cannot hold a database, when that can be told before opening it.
fn diagnose(path: &str) -> Option<String> {
    let p = Path::new(path);
    if p.is_dir() {
        return Some(
            "it is a directory, not a database file: give --db the path of a file (it is created when missing)"
                .into(),
        );
    }
    let dir = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Some(format!(
            "the directory {} does not exist: create it, or give --db a path in an existing directory",
            dir.display()
        ));
    }
    // The WAL and its index live beside the database: the directory must be
    // writable, and so must the file. (Checked with access(2), which root passes.)
    if !writable(dir) {
        return Some(format!(
            "the directory {} is not writable by this user (SQLite keeps its write-ahead log beside the database): \
             fix its permissions or run as its owner",
            dir.display()
        ));
    }
    if p.exists() && !writable(p) {
        return Some(
            "the file is not writable by this user: fix its permissions or run as its owner".into(),
        );
    }
    None
}

fn writable(p: &Path) -> bool {
    rustix::fs::access(p, rustix::fs::Access::WRITE_OK).is_ok()
}

/// Open the database file at `path`, creating it when missing if `create`
/// says so (commands that write); else a missing file is
/// [`StoreError::Missing`] and nothing is created.
pub(super) fn connect(path: &str, create: bool) -> Result<Connection> {
    if let Some(what) = diagnose(path) {
        return Err(unavailable(path, what));
    }
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    } else if !Path::new(path).exists() {
        return Err(StoreError::Missing {
            db: path.to_string(),
        });
    }
    let conn = Connection::open_with_flags(path, flags).map_err(|e| {
        // Gone between the look and the open: still nothing created.
        if !create && e.sqlite_error_code() == Some(rusqlite::ErrorCode::CannotOpen) {
            return StoreError::Missing {
                db: path.to_string(),
            };
        }
        unavailable(path, format!("{e}: check the path and its permissions"))
    })?;
    // A file that is not a database is found on the first read.
    match conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get::<_, i64>(0)) {
        Ok(_) => Ok(conn),
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) => {
            Err(unavailable(
                path,
                "the file is not a SQLite database: check --db (orderbatch creates a new database only where no file exists)"
                    .into(),
            ))
        }
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => Ok(conn),
        Err(e) => Err(super::store_err(path, e)),
    }
}
