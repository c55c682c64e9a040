//! Prometheus text-format metrics of the last run, for the node_exporter
//! textfile collector. Every metric is a gauge about the last run; the file
//! is written new under an unpredictable name, made durable, renamed over the
//! old one and its directory synced, so a reader never sees half of it and a
//! planted link is never followed.
//!
//! An `inbox` worker adds gauges of its own (`orderbatch_inbox_*`) to the
//! same file. The file has two sections, the last run's and the inbox's:
//! each writer replaces its own and keeps the other's as the file holds it,
//! so that no scrape ever finds one of them missing.
//!
//! Written here rather than with `prometheus-client`: that crate keeps a
//! registry of metrics declared up front and encodes OpenMetrics text (with
//! its `# EOF` and unit rules), while this file is two sections written by
//! two commands, each keeping the other's as the file holds it; the writing
//! aside, the sync and the rename stay ours either way. `promtool check
//! metrics` and a real node_exporter read what this writes (tests/monitoring.rs).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use crate::model::run::RunSummary;
use crate::model::run::Timings;
use crate::model::ErrorCode;

/// What the metrics of one run are made of.
pub struct RunMetrics<'a> {
    pub summary: &'a RunSummary,
    pub exit_code: u8,
    /// When a run last completed and committed (RFC 3339), from the history.
    pub last_success: Option<&'a str>,
    pub timings: Timings,
    pub input_bytes: u64,
}

/// The directory of `path`, which must exist (found before the run starts).
pub fn check_dir(path: &Path) -> Result<()> {
    let dir = parent(path);
    if !dir.is_dir() {
        return Err(crate::exit::UsageError(format!(
            "the directory of --metrics-file {} does not exist: create it or fix the path",
            crate::model::text::for_terminal(&path.display().to_string())
        ))
        .into());
    }
    Ok(())
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn unix_seconds(rfc3339: &str) -> Option<f64> {
    let (secs, nanos) = crate::model::rfc3339::parse(rfc3339)?;
    Some(secs as f64 + f64::from(nanos.min(999_999_999)) / 1e9)
}

struct Text(String);

impl Text {
    fn gauge(&mut self, name: &str, help: &str, samples: &[(String, String)]) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} gauge");
        for (labels, v) in samples {
            let _ = writeln!(self.0, "{name}{labels} {v}");
        }
    }

    fn one(&mut self, name: &str, help: &str, value: String) {
        self.gauge(name, help, &[(String::new(), value)]);
    }
}

/// The metrics text; `now` is the Unix time the run ended.
pub fn render(m: &RunMetrics<'_>, now: f64) -> String {
    let s = m.summary;
    let c = &s.counts;
    let mut t = Text(String::new());
    t.gauge(
        "orderbatch_last_run_orders",
        "Orders of the last run by outcome (accepted, skipped or failed).",
        &[
            ("{status=\"accepted\"}".into(), c.accepted.to_string()),
            ("{status=\"skipped\"}".into(), c.skipped.to_string()),
            ("{status=\"failed\"}".into(), c.failed.to_string()),
        ],
    );
    let by_code: Vec<(String, String)> = c
        .by_code()
        .map(|(code, n)| (format!("{{code=\"{}\"}}", code.as_str()), n.to_string()))
        .collect();
    debug_assert_eq!(by_code.len(), ErrorCode::ALL.len());
    t.gauge(
        "orderbatch_last_run_order_errors",
        "Failed orders of the last run by error code (every code, zeros included).",
        &by_code,
    );
    t.one(
        "orderbatch_last_run_duration_seconds",
        "Wall time of the last run, from start to end, in seconds.",
        format!("{:.3}", s.duration_ms as f64 / 1000.0),
    );
    t.one(
        "orderbatch_last_run_timestamp_seconds",
        "When the last run ended (Unix time).",
        format!("{now:.3}"),
    );
    t.one(
        "orderbatch_last_run_exit_code",
        "Exit code of the last run: 0 all accepted or skipped, 3 some orders failed, 4 aborted by --max-errors, 2 usage or input error, 75 database locked, 1 other error.",
        m.exit_code.to_string(),
    );
    if let Some(ts) = m.last_success.and_then(unix_seconds) {
        t.one(
            "orderbatch_last_success_timestamp_seconds",
            "When a run last completed and committed (Unix time), from the database's run history.",
            format!("{ts:.3}"),
        );
    }
    let tm = &m.timings;
    let stages: Vec<(String, String)> = tm
        .stages()
        .iter()
        .map(|(name, d)| {
            (
                format!("{{stage=\"{name}\"}}"),
                format!("{:.3}", d.as_secs_f64()),
            )
        })
        .collect();
    t.gauge(
        "orderbatch_last_run_stage_seconds",
        "Busy seconds of each stage of the last run (stages overlap, so they may sum to more than the duration); lock_wait: waiting for stock other runs held, locked: holding the run's stock until the commit.",
        &stages,
    );
    t.one(
        "orderbatch_last_run_input_bytes",
        "Bytes of input the last run read (as stored, before decompression).",
        m.input_bytes.to_string(),
    );
    let (rss, cpu) = crate::usage::usage();
    t.one(
        "orderbatch_last_run_peak_rss_bytes",
        "Peak resident memory of the last run's process, in bytes.",
        rss.to_string(),
    );
    t.one(
        "orderbatch_last_run_cpu_seconds",
        "User and system CPU seconds of the last run's process.",
        format!("{cpu:.3}"),
    );
    t.0
}

/// Temporary files of the metrics file older than this were left by a
/// killed run (a writer holds one for milliseconds): they are removed.
const STALE_SECS: u64 = 600;

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The metrics of a run written to `path` (an inbox section there is kept).
pub fn write(path: &Path, m: &RunMetrics<'_>) -> Result<()> {
    let mut text = render(m, unix_now());
    text.push_str(&section_of(path, Section::Inbox));
    write_section(path, &text)
}

/// What an inbox worker adds to the metrics file: the files it saw at its
/// last look, and what it did since it started.
#[derive(Debug, Clone, Copy, Default)]
pub struct InboxMetrics {
    pub waiting: u64,
    pub done: u64,
    pub failed: u64,
    /// Age of the oldest file waiting, by its modification time (0: none).
    pub oldest_waiting_seconds: f64,
    /// When the worker last looked at the directory (Unix time).
    pub last_pass: f64,
    pub takeovers: u64,
    pub retries: u64,
    /// Whether the worker could reach the database at its last try.
    pub database_up: bool,
}

/// The inbox section of the metrics file.
pub fn render_inbox(m: &InboxMetrics) -> String {
    let mut t = Text(String::new());
    t.gauge(
        "orderbatch_inbox_files",
        "Files in the inbox (waiting), its done directory and its failed directory at the worker's last look (.error files not counted).",
        &[
            ("{state=\"waiting\"}".into(), m.waiting.to_string()),
            ("{state=\"done\"}".into(), m.done.to_string()),
            ("{state=\"failed\"}".into(), m.failed.to_string()),
        ],
    );
    t.one(
        "orderbatch_inbox_oldest_waiting_seconds",
        "Age in seconds of the oldest file waiting in the inbox at the last look, by its modification time (0: none waiting).",
        format!("{:.3}", m.oldest_waiting_seconds),
    );
    t.one(
        "orderbatch_inbox_last_pass_timestamp_seconds",
        "When the inbox worker last looked at its directory (Unix time).",
        format!("{:.3}", m.last_pass),
    );
    t.one(
        "orderbatch_inbox_takeovers",
        "Files this worker took over from a worker whose lease ended, since it started.",
        m.takeovers.to_string(),
    );
    t.one(
        "orderbatch_inbox_retries",
        "Tries of a file that ended for a temporary problem (to be tried again later), since the worker started.",
        m.retries.to_string(),
    );
    t.one(
        "orderbatch_inbox_database_up",
        "1 when the inbox worker reached the database at its last try, 0 while it cannot.",
        u8::from(m.database_up).to_string(),
    );
    t.0
}

/// The inbox section written to `path` (the last run's section there is kept).
pub fn write_inbox(path: &Path, m: &InboxMetrics) -> Result<()> {
    let mut text = section_of(path, Section::Run);
    text.push_str(&render_inbox(m));
    write_section(path, &text)
}

/// The two sections of a metrics file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Run,
    Inbox,
}

/// The lines of one section of the file at `path` as it is now (none when
/// it cannot be read).
fn section_of(path: &Path, section: Section) -> String {
    let Ok(text) = std::fs::read_to_string(path) else {
        return String::new();
    };
    let mut out = String::new();
    for line in text.lines() {
        let name = match line.strip_prefix("# ") {
            Some(comment) => comment.split_whitespace().nth(1).unwrap_or_default(),
            None => line.split(['{', ' ']).next().unwrap_or_default(),
        };
        let inbox = name.starts_with("orderbatch_inbox_");
        if !name.is_empty() && inbox == (section == Section::Inbox) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn write_section(path: &Path, text: &str) -> Result<()> {
    let shown = crate::model::text::for_terminal(&path.display().to_string()).into_owned();
    write_file(path, text.as_bytes()).with_context(|| {
        format!("cannot write the metrics file {shown}: check its directory and the disk")
    })
}

fn temp_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.tmp")
}

fn write_file(path: &Path, text: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = parent(path);
    remove_stale(dir, &temp_prefix(path));
    // New, with an unpredictable name (O_EXCL): a planted link is never followed.
    let mut tmp = tempfile::Builder::new()
        .prefix(&temp_prefix(path))
        .tempfile_in(dir)?;
    // The exporter runs as another user: the metrics file is world-readable.
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    tmp.write_all(text)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

fn remove_stale(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().starts_with(prefix) {
            continue;
        }
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() > STALE_SECS);
        if old && e.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::run::{Counts, RunStatus};

    fn summary() -> RunSummary {
        RunSummary {
            run_id: 1,
            status: RunStatus::Aborted,
            started_at: "a".into(),
            finished_at: "b".into(),
            duration_ms: 1500,
            inputs: vec![],
            counts: Counts::default(),
        }
    }

    #[test]
    fn every_metric_is_a_gauge_named_as_the_spec_names_it() {
        let s = summary();
        let m = RunMetrics {
            summary: &s,
            exit_code: 4,
            last_success: Some("2026-11-25T22:14:03Z"),
            timings: Timings::default(),
            input_bytes: 42,
        };
        let text = render(&m, 2000.0);
        assert!(text.contains("orderbatch_last_success_timestamp_seconds 1795644843.000\n"));
        assert!(text.contains("orderbatch_last_run_timestamp_seconds 2000.000\n"));
        assert!(text.contains("orderbatch_last_run_duration_seconds 1.500\n"));
        assert!(text.contains("orderbatch_last_run_exit_code 4\n"));
        assert!(text.contains("orderbatch_last_run_input_bytes 42\n"));
        assert!(text.contains("orderbatch_last_run_stage_seconds{stage=\"commit\"} 0.000\n"));
        assert!(!text.contains("_total"));
        for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
            assert!(line.ends_with(" gauge"), "{line}");
        }
        let none = RunMetrics {
            last_success: None,
            ..m
        };
        assert!(!render(&none, 1.0).contains("last_success"));
    }

    #[test]
    fn the_run_and_the_inbox_each_replace_their_own_section_and_keep_the_other() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.prom");
        let inbox = InboxMetrics {
            waiting: 2,
            failed: 1,
            last_pass: 10.0,
            database_up: true,
            ..Default::default()
        };
        write_inbox(&path, &inbox).unwrap();
        let s = summary();
        let m = RunMetrics {
            summary: &s,
            exit_code: 0,
            last_success: None,
            timings: Timings::default(),
            input_bytes: 1,
        };
        write(&path, &m).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("\norderbatch_last_run_exit_code 0\n"),
            "{text}"
        );
        assert!(
            text.contains("orderbatch_inbox_files{state=\"failed\"} 1\n"),
            "{text}"
        );
        write_inbox(
            &path,
            &InboxMetrics {
                waiting: 0,
                ..inbox
            },
        )
        .unwrap();
        let again = std::fs::read_to_string(&path).unwrap();
        assert!(
            again.contains("\norderbatch_last_run_exit_code 0\n"),
            "{again}"
        );
        assert!(again.contains("orderbatch_inbox_files{state=\"waiting\"} 0\n"));
        assert_eq!(
            again.matches("# TYPE orderbatch_inbox_files gauge").count(),
            1
        );
        assert_eq!(
            again
                .matches("# TYPE orderbatch_last_run_orders gauge")
                .count(),
            1
        );
    }

    #[test]
    fn the_file_replaces_a_planted_link_instead_of_following_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let path = dir.path().join("m.prom");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        write_file(&path, b"x 1\n").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "x 1\n");
        assert!(!std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
    }
}
