//! The inbox directory as a worker sees it at each look: which files are
//! candidates (regular files directly in it, under a name no writer uses
//! while it writes), which of them are complete (their size and
//! modification time unchanged for `--settle`), oldest first.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

/// Endings of names that writers use while they write (and rename from).
const WRITING: [&str; 5] = [".part", ".tmp", ".filepart", ".crdownload", "~"];

/// Whether a file of this name may be taken (the README's rule, "The inbox").
pub(super) fn is_candidate(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !name.starts_with('.') && !WRITING.iter().any(|w| lower.ends_with(w))
}

/// What must stay the same for a file to be the one that was looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ident {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

impl Ident {
    fn of(m: &std::fs::Metadata) -> Ident {
        Ident {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        }
    }

    /// The file as it is on disk, in words (a key for a file that cannot be read).
    pub(super) fn key(&self) -> String {
        format!("{}:{}:{}:{}", self.dev, self.ino, self.len, self.mtime_ns)
    }
}

/// A candidate file at one look.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub name: String,
    pub path: PathBuf,
    pub ident: Ident,
    pub modified: SystemTime,
}

impl Entry {
    /// The path as a run takes it (names are UTF-8: see [`list`]).
    pub(super) fn path_str(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }

    /// Whether the file is still the one looked at.
    pub(super) fn unchanged(&self) -> bool {
        ident_of(&self.path).is_ok_and(|i| i == self.ident)
    }
}

pub(super) fn ident_of(path: &Path) -> std::io::Result<Ident> {
    std::fs::symlink_metadata(path).map(|m| Ident::of(&m))
}

/// The candidates in `dir`, and the names that are not UTF-8 (left alone:
/// a run takes its input by a text path).
pub(super) fn list(dir: &Path) -> std::io::Result<(Vec<Entry>, Vec<PathBuf>)> {
    let (mut entries, mut odd) = (Vec::new(), Vec::new());
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let Ok(meta) = e.metadata() else {
            continue; // gone since the listing
        };
        // Regular files only: no directory, no link, no device or pipe.
        if !meta.file_type().is_file() {
            continue;
        }
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            odd.push(e.path());
            continue;
        };
        if !is_candidate(&name) {
            continue;
        }
        entries.push(Entry {
            path: e.path(),
            ident: Ident::of(&meta),
            modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            name,
        });
    }
    entries.sort_by(|a, b| (a.modified, &a.name).cmp(&(b.modified, &b.name)));
    Ok((entries, odd))
}

/// Regular files in `dir` (those ending in `.error` not counted); 0 when
/// it cannot be read.
pub(super) fn count_files(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| !e.file_name().to_string_lossy().ends_with(".error"))
        .count() as u64
}

/// A file at one look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Look {
    /// Unchanged for `--settle`: it may be taken.
    Complete,
    /// Not yet: complete at `ready_at` if it stays as it is. `changed`: it
    /// changed since the previous look (a writer is at work).
    Settling { ready_at: Instant, changed: bool },
}

/// When each file was first seen as it is now.
#[derive(Debug, Default)]
pub(super) struct Seen {
    first: HashMap<String, (Ident, Instant)>,
}

impl Seen {
    /// Records a look at `entries` (oldest first) and says what each is. A
    /// file is complete when it has looked the same for `settle` by this
    /// worker's clock, or when its modification time is `settle` old
    /// already (a file renamed into place complete, or there before the
    /// worker started).
    pub(super) fn look(
        &mut self,
        entries: Vec<Entry>,
        settle: Duration,
        now: Instant,
        wall: SystemTime,
    ) -> Vec<(Entry, Look)> {
        let mut first = HashMap::with_capacity(entries.len());
        let looks = entries
            .into_iter()
            .map(|e| {
                let (since, changed) = match self.first.get(&e.name) {
                    Some((ident, t)) if *ident == e.ident => (*t, false),
                    Some(_) => (now, true),
                    None => (now, false),
                };
                first.insert(e.name.clone(), (e.ident, since));
                let age = wall.duration_since(e.modified).unwrap_or_default();
                let still = now.saturating_duration_since(since).max(age);
                let look = match settle.checked_sub(still) {
                    Some(left) if !left.is_zero() => Look::Settling {
                        ready_at: now + left,
                        changed,
                    },
                    _ => Look::Complete,
                };
                (e, look)
            })
            .collect();
        self.first = first;
        looks
    }
}

/// The hex SHA-256 of a file's bytes, when the file stayed as `entry` was
/// while it was read (None: it changed or went away meanwhile).
pub(super) fn digest(entry: &Entry) -> std::io::Result<Option<String>> {
    let mut f = match std::fs::File::open(&entry.path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    if !entry.unchanged() {
        return Ok(None);
    }
    Ok(Some(
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_writers_use_while_they_write_are_never_taken() {
        for name in [
            ".hidden.csv",
            "a.csv.part",
            "a.CSV.PART",
            "a.tmp",
            "a.filepart",
            "a.crdownload",
            "a.csv~",
        ] {
            assert!(!is_candidate(name), "{name}");
        }
        for name in ["a.csv", "a.csv.gz", "README", "part.csv", "tmp.jsonl"] {
            assert!(is_candidate(name), "{name}");
        }
    }

    #[test]
    fn a_file_is_complete_once_unchanged_for_the_settle_time() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.csv");
        std::fs::write(&p, "x").unwrap();
        let settle = Duration::from_secs(10);
        let now = Instant::now();
        // Written just now (by the wall clock): settling.
        let wall = SystemTime::now();
        let mut seen = Seen::default();
        let (entries, _) = list(dir.path()).unwrap();
        let looks = seen.look(entries, settle, now, wall);
        assert!(
            matches!(looks[0].1, Look::Settling { changed: false, .. }),
            "{looks:?}"
        );
        // The same file 10 s later by this worker's clock: complete.
        let (entries, _) = list(dir.path()).unwrap();
        let looks = seen.look(entries, settle, now + settle, wall);
        assert_eq!(looks[0].1, Look::Complete);
        // Changed: settling again, and said to have changed.
        std::fs::write(&p, "xy").unwrap();
        let (entries, _) = list(dir.path()).unwrap();
        let looks = seen.look(entries, settle, now + settle, wall);
        assert!(matches!(looks[0].1, Look::Settling { changed: true, .. }));
        // A modification time 10 s old already: complete at first sight.
        let mut fresh = Seen::default();
        let (entries, _) = list(dir.path()).unwrap();
        let later = SystemTime::now() + settle;
        assert_eq!(fresh.look(entries, settle, now, later)[0].1, Look::Complete);
    }

    #[test]
    fn only_regular_files_directly_in_the_directory_are_listed_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("done")).unwrap();
        std::fs::write(d.join("b.csv"), "b").unwrap();
        std::fs::write(d.join("a.csv"), "a").unwrap();
        std::fs::write(d.join("c.csv.part"), "c").unwrap();
        std::os::unix::fs::symlink(d.join("a.csv"), d.join("link.csv")).unwrap();
        let old = SystemTime::now() - Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(d.join("b.csv"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let (entries, odd) = list(d).unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["b.csv", "a.csv"]);
        assert!(odd.is_empty());
        assert_eq!(count_files(d), 3, "b.csv, a.csv, c.csv.part");
    }
}
