//! A run's report directory, built aside as `DIR/.run-ID.partial` and renamed
//! to `DIR/run-ID` only after the run committed. Everything happens relative
//! to directory handles opened once: another user who can write `DIR` may
//! swap names under it, but the reports are only ever written into the
//! directory this run created, never through a link, and nothing is written
//! outside `DIR`.

use std::fs::File;
use std::io::{self, BufWriter};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};

/// Files and directories holding reports: the owner and the group (where the
/// umask allows) may read them, never everyone.
const FILE_MODE: u32 = 0o660;
const DIR_MODE: u32 = 0o770;

/// The marker naming the database and run a partial directory belongs to,
/// so that a later run can tell its own leftovers from another database's.
pub const MARKER: &str = ".orderbatch-run";

pub struct ReportDir {
    out: OwnedFd,
    out_path: PathBuf,
    partial_name: String,
    partial: OwnedFd,
    target_name: String,
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC
}

/// Remove `name` under `out`: a directory with what it holds, anything else
/// (a link too) itself; never follows a link.
fn remove_entry(out_fd: &OwnedFd, out: &Path, name: &str) -> io::Result<()> {
    match rfs::statat(out_fd, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Directory => {
            std::fs::remove_dir_all(out.join(name))
        }
        Ok(_) => Ok(rfs::unlinkat(out_fd, name, AtFlags::empty())?),
        Err(_) => Ok(()),
    }
}

/// Create `dir` and its missing parents, each made durable in its parent.
pub fn create_dirs(dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.as_os_str().is_empty() && !at.exists() {
        missing.push(at.to_path_buf());
        match at.parent() {
            Some(p) => at = p,
            None => break,
        }
    }
    for d in missing.iter().rev() {
        use std::os::unix::fs::DirBuilderExt;
        match std::fs::DirBuilder::new().mode(DIR_MODE).create(d) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let parent = d
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        File::open(parent)?.sync_all()?;
    }
    Ok(())
}

impl ReportDir {
    /// Create `out` when missing and a fresh partial directory for run `run_id`.
    pub fn create(out: &Path, run_id: i64, marker: &str) -> io::Result<ReportDir> {
        create_dirs(out)?;
        let out_fd = rfs::open(out, dir_flags(), Mode::empty())?;
        let partial_name = format!(".run-{run_id}.partial");
        // Built under a name of its own with its marker, then renamed: a
        // partial directory always says whose it is, even after a kill. A
        // leftover of an earlier attempt with this id (another database, a
        // crash) is removed; a link is removed itself, never followed.
        let new_name = format!("{partial_name}.new");
        for name in [&partial_name, &new_name] {
            remove_entry(&out_fd, out, name)?;
        }
        rfs::mkdirat(&out_fd, new_name.as_str(), Mode::from_raw_mode(DIR_MODE))?;
        let partial = rfs::openat(
            &out_fd,
            new_name.as_str(),
            dir_flags() | OFlags::NOFOLLOW,
            Mode::empty(),
        )?;
        let dir = ReportDir {
            out: out_fd,
            out_path: out.to_path_buf(),
            partial_name,
            partial,
            target_name: format!("run-{run_id}"),
        };
        use io::Write;
        let mut m = dir.file(MARKER)?;
        m.write_all(marker.as_bytes())?;
        m.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        rfs::fsync(&dir.partial)?;
        rfs::renameat(
            &dir.out,
            new_name.as_str(),
            &dir.out,
            dir.partial_name.as_str(),
        )?;
        rfs::fsync(&dir.out)?;
        Ok(dir)
    }

    /// The partial directory a stopped run left for run `run_id`, opened to
    /// write its reports again (never through a link).
    pub fn reopen(out: &Path, run_id: i64) -> io::Result<ReportDir> {
        let out_fd = rfs::open(out, dir_flags(), Mode::empty())?;
        let partial_name = format!(".run-{run_id}.partial");
        let partial = rfs::openat(
            &out_fd,
            partial_name.as_str(),
            dir_flags() | OFlags::NOFOLLOW,
            Mode::empty(),
        )?;
        Ok(ReportDir {
            out: out_fd,
            out_path: out.to_path_buf(),
            partial_name,
            partial,
            target_name: format!("run-{run_id}"),
        })
    }

    pub fn target(&self) -> PathBuf {
        self.out_path.join(&self.target_name)
    }

    /// Where a report file is being written, for messages.
    pub fn path_of(&self, name: &str) -> PathBuf {
        self.out_path.join(&self.partial_name).join(name)
    }

    /// A new file in the partial directory (never an existing one, never through a link).
    pub fn file(&self, name: &str) -> io::Result<BufWriter<File>> {
        let fd = rfs::openat(
            &self.partial,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(FILE_MODE),
        )?;
        Ok(BufWriter::with_capacity(256 * 1024, File::from(fd)))
    }

    /// A file written again from its start: the old one goes first.
    pub fn replace(&self, name: &str) -> io::Result<BufWriter<File>> {
        match rfs::unlinkat(&self.partial, name, AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
        self.file(name)
    }

    /// Remove what an attempt wrote, for a fresh attempt (the marker stays).
    pub fn reset(&self) -> io::Result<()> {
        let names: Vec<std::ffi::CString> = rfs::Dir::read_from(&self.partial)?
            .flatten()
            .map(|e| e.file_name().to_owned())
            .filter(|n| ![&b"."[..], b"..", MARKER.as_bytes()].contains(&n.as_bytes()))
            .collect();
        for name in names {
            rfs::unlinkat(&self.partial, name.as_c_str(), AtFlags::empty())?;
        }
        Ok(())
    }

    /// Make the reports durable, then move them into place in one rename
    /// (the marker goes after: a kill in between leaves it in `run-ID`,
    /// harmless, never complete reports that no run would publish).
    pub fn publish(self) -> io::Result<PathBuf> {
        rfs::fsync(&self.partial)?;
        // The name must still be the directory this run made: had someone
        // swapped it, their object would be published instead.
        let ours = rfs::fstat(&self.partial)?;
        let now = rfs::statat(
            &self.out,
            self.partial_name.as_str(),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
        if (ours.st_dev, ours.st_ino) != (now.st_dev, now.st_ino) {
            return Err(io::Error::other(format!(
                "{} was replaced by something else during the run (is {} writable by others?)",
                self.partial_name,
                self.out_path.display()
            )));
        }
        if rfs::statat(
            &self.out,
            self.target_name.as_str(),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .is_ok()
        {
            // A directory of that name from another database: kept, aside.
            let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S");
            let aside = (0..)
                .map(|n| match n {
                    0 => format!("{}.replaced-{stamp}", self.target_name),
                    n => format!("{}.replaced-{stamp}-{n}", self.target_name),
                })
                .find(|a| rfs::statat(&self.out, a.as_str(), AtFlags::SYMLINK_NOFOLLOW).is_err())
                .unwrap_or_default();
            rfs::renameat(
                &self.out,
                self.target_name.as_str(),
                &self.out,
                aside.as_str(),
            )?;
        }
        rfs::renameat(
            &self.out,
            self.partial_name.as_str(),
            &self.out,
            self.target_name.as_str(),
        )?;
        rfs::fsync(&self.out)?;
        let _ = rfs::unlinkat(&self.partial, MARKER, AtFlags::empty());
        Ok(self.target())
    }

    /// Remove the partial reports of a run that did not commit.
    pub fn discard(self) {
        let _ = std::fs::remove_dir_all(self.out_path.join(&self.partial_name));
    }

    /// Remove the partial reports a run left behind (it is gone).
    pub fn remove_partial(out: &Path, run_id: i64) {
        for name in [
            format!(".run-{run_id}.partial"),
            format!(".run-{run_id}.partial.new"),
        ] {
            let p = out.join(name);
            if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
                let _ = std::fs::remove_dir_all(p);
            }
        }
    }
}

/// A partial report directory a run left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    pub run_id: i64,
    /// Its marker (whose it is); `None` when it has none.
    pub marker: Option<String>,
    /// Still under the name it is made with: it holds no report, only
    /// perhaps its marker (the run was killed while making it).
    pub unfinished: bool,
}

/// The partial report directories under `out`.
pub fn leftovers(out: &Path) -> Vec<Leftover> {
    let Ok(entries) = std::fs::read_dir(out) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(".run-") else {
            continue;
        };
        let (id, unfinished) = match (
            rest.strip_suffix(".partial"),
            rest.strip_suffix(".partial.new"),
        ) {
            (Some(id), _) => (id, false),
            (None, Some(id)) => (id, true),
            _ => continue,
        };
        let Ok(run_id) = id.parse::<i64>() else {
            continue;
        };
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        found.push(Leftover {
            run_id,
            marker: std::fs::read_to_string(e.path().join(MARKER)).ok(),
            unfinished,
        });
    }
    found.sort_by_key(|l| (l.run_id, l.unfinished));
    found
}

/// Remove a directory a run was killed while making (it holds no report).
pub fn remove_unfinished(out: &Path, run_id: i64) {
    let _ = std::fs::remove_dir_all(out.join(format!(".run-{run_id}.partial.new")));
}

/// Move the complete reports a committed run left aside into place (it was
/// stopped between its commit and the rename); kept aside when `run-ID` exists.
pub fn publish_leftover(out: &Path, run_id: i64) -> io::Result<()> {
    let out_fd = rfs::open(out, dir_flags(), Mode::empty())?;
    let partial = format!(".run-{run_id}.partial");
    let target = format!("run-{run_id}");
    if rfs::statat(&out_fd, target.as_str(), AtFlags::SYMLINK_NOFOLLOW).is_ok() {
        return Ok(());
    }
    let dir = rfs::openat(
        &out_fd,
        partial.as_str(),
        dir_flags() | OFlags::NOFOLLOW,
        Mode::empty(),
    )?;
    rfs::fsync(&dir)?;
    rfs::renameat(&out_fd, partial.as_str(), &out_fd, target.as_str())?;
    rfs::fsync(&out_fd)?;
    let _ = rfs::unlinkat(&dir, MARKER, AtFlags::empty());
    Ok(())
}

/// What became of a pruned run's report directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrunedDir {
    /// Removed (or, in a dry run, would be).
    Removed,
    /// There is none under this `--out`.
    Absent,
    /// Something is there under its name, but not this run's reports: left alone.
    Kept(String),
}

/// Remove `out/run-ID`, the reports of a pruned run, when its summary.json
/// says it is that run of this database (the same id and start time): the
/// directory of another database's run of that number, a link, or anything
/// else under the name is left alone. `dry` only tells.
pub fn remove_pruned(
    out: &Path,
    run_id: i64,
    started_at: &str,
    dry: bool,
) -> io::Result<PrunedDir> {
    let name = format!("run-{run_id}");
    let dir = out.join(&name);
    match std::fs::symlink_metadata(&dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(PrunedDir::Absent),
        Err(e) => return Err(e),
        Ok(m) if !m.is_dir() => {
            return Ok(PrunedDir::Kept(format!(
                "{} is not a directory",
                dir.display()
            )))
        }
        Ok(_) => {}
    }
    let dir_fd = rfs::open(&dir, dir_flags() | OFlags::NOFOLLOW, Mode::empty())?;
    let summary = rfs::openat(
        &dir_fd,
        "summary.json",
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()
    .and_then(|fd| serde_json::from_reader::<_, serde_json::Value>(File::from(fd)).ok());
    let ours = summary.as_ref().is_some_and(|s| {
        s["run_id"].as_i64() == Some(run_id) && s["started_at"].as_str() == Some(started_at)
    });
    if !ours {
        return Ok(PrunedDir::Kept(format!(
            "{} was left: its summary.json is not that of run {run_id} of this database",
            dir.display()
        )));
    }
    if !dry {
        std::fs::remove_dir_all(&dir)?;
        File::open(out)?.sync_all()?;
    }
    Ok(PrunedDir::Removed)
}
