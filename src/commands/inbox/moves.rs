//! Where an inbox's files go: the done and failed directories, made at the
//! start and checked to be on the inbox's file system (a move is a rename);
//! a file moved keeping its name, or with `.1`, `.2`, … before its
//! extension(s) when the name is taken there (never replacing a file); the
//! `NAME.error` beside a refused file.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::InboxOptions;
use crate::exit::UsageError;
use crate::model::text::for_terminal;

/// The inbox and where its files go.
#[derive(Debug, Clone)]
pub(super) struct Dirs {
    pub inbox: PathBuf,
    pub done: PathBuf,
    pub failed: PathBuf,
}

fn shown(p: &Path) -> String {
    for_terminal(&p.display().to_string()).into_owned()
}

impl Dirs {
    /// The directories of the options, the done and failed ones created
    /// when missing, all on one file system.
    pub(super) fn prepare(opts: &InboxOptions) -> Result<Dirs> {
        let inbox = opts.dir.clone();
        let meta = std::fs::metadata(&inbox).map_err(|e| {
            UsageError(format!(
                "cannot use the inbox {}: {e}: give an existing directory",
                shown(&inbox)
            ))
        })?;
        if !meta.is_dir() {
            return Err(
                UsageError(format!("the inbox {} is not a directory", shown(&inbox))).into(),
            );
        }
        let done = opts.done.clone().unwrap_or_else(|| inbox.join("done"));
        let failed = opts.failed.clone().unwrap_or_else(|| inbox.join("failed"));
        for (flag, dir) in [("--done", &done), ("--failed", &failed)] {
            crate::report::create_dirs(dir)
                .with_context(|| format!("cannot create the {flag} directory {}", shown(dir)))?;
            let dev = std::fs::metadata(dir)
                .with_context(|| format!("cannot use the {flag} directory {}", shown(dir)))?
                .dev();
            if dev != meta.dev() {
                return Err(UsageError(format!(
                    "the {flag} directory {} is on another file system than the inbox {}: files are moved \
                     by renaming, which cannot cross file systems; choose a directory on the inbox's file \
                     system (the default, {}, is)",
                    shown(dir),
                    shown(&inbox),
                    shown(&inbox.join(&flag[2..]))
                ))
                .into());
            }
        }
        Ok(Dirs {
            inbox,
            done,
            failed,
        })
    }
}

/// Endings that name a format, with an optional `.gz` after them: kept
/// together when a number is put before the extension(s).
const FORMATS: [&str; 5] = [".csv", ".tsv", ".jsonl", ".ndjson", ".xlsx"];

/// `name` with `.n` before its extension(s): `orders.csv.gz` → `orders.1.csv.gz`.
pub(super) fn numbered(name: &str, n: u32) -> String {
    if n == 0 {
        return name.to_string();
    }
    let lower = name.to_ascii_lowercase();
    let plain = lower.strip_suffix(".gz").unwrap_or(&lower);
    let ext_len = match FORMATS.iter().find(|f| plain.ends_with(*f)) {
        Some(f) => f.len() + (lower.len() - plain.len()),
        // Any other name: its last extension, if it has one (not a leading dot).
        None => name
            .rfind('.')
            .filter(|i| *i > 0)
            .map_or(0, |i| name.len() - i),
    };
    let ext_len = if ext_len >= name.len() { 0 } else { ext_len };
    let (stem, ext) = name.split_at(name.len() - ext_len);
    format!("{stem}.{n}{ext}")
}

/// Renames `from` to `to` unless `to` exists (then `AlreadyExists`).
fn rename_new(from: &Path, to: &Path) -> io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        // A file system without it (older NFS): a hard link is refused as
        // well when the name is taken, and is atomic there too.
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
            std::fs::hard_link(from, to)?;
            std::fs::remove_file(from)
        }
        Err(e) => Err(e.into()),
    }
}

/// Moves `file` into `dir` under its name, numbered when the name is
/// taken; returns where it went.
pub(super) fn move_into(file: &Path, dir: &Path) -> Result<PathBuf> {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .context("a file to move has no name")?;
    for n in 0..100_000 {
        let to = dir.join(numbered(name, n));
        match rename_new(file, &to) {
            Ok(()) => return Ok(to),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                return Err(UsageError(format!(
                    "cannot move {} into {}: it is on another file system (a move is a rename): \
                     put the done and failed directories on the inbox's file system",
                    shown(file),
                    shown(dir)
                ))
                .into())
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "cannot move {} into {}: check that the worker may write both directories",
                        shown(file),
                        shown(dir)
                    )
                })
            }
        }
    }
    anyhow::bail!(
        "cannot move {} into {}: 100,000 files of that name are there already; clear the directory",
        shown(file),
        shown(dir)
    )
}

/// `NAME.error` beside a refused file: one line, what is wrong and what to do.
pub(super) fn write_error(moved: &Path, message: &str) -> Result<PathBuf> {
    let mut name = moved.file_name().unwrap_or_default().to_os_string();
    name.push(".error");
    let path = moved.with_file_name(name);
    let line = format!("{}\n", one_line(message));
    crate::report::write_atomic(&path, line.as_bytes())
        .with_context(|| format!("cannot write {}", shown(&path)))?;
    Ok(path)
}

/// A message as one line, card numbers masked, control characters escaped.
pub(super) fn one_line(message: &str) -> String {
    let masked = crate::model::pan::mask_pans(message);
    for_terminal(&masked.replace(['\n', '\r'], " ")).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_goes_before_the_extensions() {
        assert_eq!(numbered("orders.csv", 0), "orders.csv");
        assert_eq!(numbered("orders.csv", 1), "orders.1.csv");
        assert_eq!(numbered("orders.CSV.gz", 2), "orders.2.CSV.gz");
        assert_eq!(numbered("a.b.jsonl", 3), "a.b.3.jsonl");
        assert_eq!(numbered("export.2026.txt", 1), "export.2026.1.txt");
        assert_eq!(numbered("README", 1), "README.1");
        assert_eq!(numbered("x.gz", 1), "x.1.gz");
        assert_eq!(numbered(".csv", 1), ".csv.1");
    }

    #[test]
    fn a_move_never_replaces_a_file_and_numbers_the_name_instead() {
        let dir = tempfile::tempdir().unwrap();
        let (inbox, done) = (dir.path().join("in"), dir.path().join("done"));
        std::fs::create_dir_all(&inbox).unwrap();
        std::fs::create_dir_all(&done).unwrap();
        for content in ["one", "two", "three"] {
            std::fs::write(inbox.join("a.csv.gz"), content).unwrap();
            move_into(&inbox.join("a.csv.gz"), &done).unwrap();
        }
        let read = |n: &str| std::fs::read_to_string(done.join(n)).unwrap();
        assert_eq!(
            (read("a.csv.gz"), read("a.1.csv.gz"), read("a.2.csv.gz")),
            ("one".into(), "two".into(), "three".into())
        );
        let err = write_error(&done.join("a.csv.gz"), "bad\nline 4111 1111 1111 1111").unwrap();
        assert_eq!(
            std::fs::read_to_string(err).unwrap(),
            "bad line ************1111\n"
        );
    }
}
