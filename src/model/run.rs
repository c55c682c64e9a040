//! Runs: what kind, how they ended, what they counted, and the one summary
//! type that summary.json, `--json`, the history and the metrics all use.

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use super::{ErrorCode, ReportFormat};

/// Which command a run was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::EnumString)]
#[strum(serialize_all = "snake_case")]
pub enum RunKind {
    Process,
    Reprocess,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn parse(s: &str) -> Option<RunKind> {
        s.parse().ok()
    }
}

/// How a run stands or ended.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::EnumString, strum::VariantArray,
)]
#[strum(serialize_all = "snake_case")]
pub enum RunStatus {
    /// Started and still going (its process is alive).
    Running,
    /// Committed.
    Completed,
    /// Checked everything, committed nothing (`--dry-run`).
    DryRun,
    /// Stopped by `--max-errors`; nothing committed.
    Aborted,
    /// Stopped by an error; nothing committed.
    Failed,
    /// Its process or host died before the commit; nothing committed.
    Interrupted,
}

impl RunStatus {
    pub const ALL: [RunStatus; 6] = [
        RunStatus::Running,
        RunStatus::Completed,
        RunStatus::DryRun,
        RunStatus::Aborted,
        RunStatus::Failed,
        RunStatus::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn parse(s: &str) -> Option<RunStatus> {
        s.parse().ok()
    }

    /// Whether the run committed its work.
    pub fn committed(self) -> bool {
        self == RunStatus::Completed
    }
}

impl Serialize for RunStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Orders counted by outcome; `lines` and `units` are those taken from stock
/// by the accepted orders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub orders: u64,
    pub accepted: u64,
    pub skipped: u64,
    pub failed: u64,
    pub lines: u64,
    pub units: i64,
    /// Failed orders by error code, indexed by `ErrorCode as usize`.
    pub by_code: [u64; 12],
}

impl Counts {
    /// Every code with its count, zeros included, in precedence order.
    pub fn by_code(&self) -> impl Iterator<Item = (ErrorCode, u64)> + '_ {
        ErrorCode::ALL.into_iter().zip(self.by_code)
    }

    pub fn count_failure(&mut self, code: ErrorCode) {
        self.failed += 1;
        self.by_code[code as usize] += 1;
    }

    /// The failed orders' most frequent codes for the summary line, so that
    /// a cron mail says why without opening a report:
    /// ` (INSUFFICIENT_STOCK 60, INVALID_FIELD 20, 2 more codes)`. Up to
    /// three codes are named (three names are shorter than two and "1 more
    /// code"); past that the two most frequent, then how many more. Ties go
    /// by precedence. Empty when nothing failed.
    pub fn most_frequent_codes(&self) -> String {
        const NAMED: usize = 2;
        let mut codes: Vec<(ErrorCode, u64)> = self.by_code().filter(|(_, n)| *n > 0).collect();
        if codes.is_empty() {
            return String::new();
        }
        // Stable: equal counts stay in precedence order.
        codes.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        let shown = if codes.len() <= NAMED + 1 {
            codes.len()
        } else {
            NAMED
        };
        let mut parts: Vec<String> = codes[..shown]
            .iter()
            .map(|(code, n)| format!("{} {n}", code.as_str()))
            .collect();
        if codes.len() > shown {
            parts.push(format!("{} more codes", codes.len() - shown));
        }
        format!(" ({})", parts.join(", "))
    }
}

/// One input file of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunInput {
    pub path: String,
    pub format: String,
    pub sha256: String,
    /// The encoding `--encoding auto` read the file in (summary.json,
    /// `--json` and the log say it; the history does not keep it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
}

/// What a run did: the content of summary.json and of `--json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    pub run_id: i64,
    pub status: RunStatus,
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: u64,
    pub inputs: Vec<RunInput>,
    pub counts: Counts,
}

impl Serialize for RunSummary {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct ByCode<'a>(&'a Counts);
        impl Serialize for ByCode<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(12))?;
                for (code, n) in self.0.by_code() {
                    m.serialize_entry(code.as_str(), &n)?;
                }
                m.end()
            }
        }
        let c = &self.counts;
        let mut m = s.serialize_map(Some(13))?;
        m.serialize_entry("run_id", &self.run_id)?;
        m.serialize_entry("status", &self.status)?;
        m.serialize_entry("started_at", &self.started_at)?;
        m.serialize_entry("finished_at", &self.finished_at)?;
        m.serialize_entry("duration_ms", &self.duration_ms)?;
        m.serialize_entry("inputs", &self.inputs)?;
        m.serialize_entry("orders", &c.orders)?;
        m.serialize_entry("accepted", &c.accepted)?;
        m.serialize_entry("skipped", &c.skipped)?;
        m.serialize_entry("failed", &c.failed)?;
        m.serialize_entry("lines", &c.lines)?;
        m.serialize_entry("units", &c.units)?;
        m.serialize_entry("errors_by_code", &ByCode(c))?;
        m.end()
    }
}

impl RunSummary {
    /// summary.json: pretty JSON ending with a newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// One line for stderr: what happened and where to look.
    pub fn one_line(&self, reports: Option<&str>) -> String {
        let verb = match self.status {
            RunStatus::DryRun => "checked (dry run, nothing committed)",
            RunStatus::Aborted => "aborted by --max-errors, nothing committed",
            other => other.as_str(),
        };
        let c = &self.counts;
        let mut s = format!(
            "run {} {verb}: {} orders: {} accepted, {} skipped, {} failed{}; {} lines, {} units taken; {:.1} s",
            self.run_id,
            c.orders,
            c.accepted,
            c.skipped,
            c.failed,
            c.most_frequent_codes(),
            c.lines,
            c.units,
            self.duration_ms as f64 / 1000.0
        );
        if let Some(dir) = reports {
            s.push_str(&format!("; reports in {dir}"));
        }
        for input in &self.inputs {
            if let Some(e) = &input.encoding {
                s.push_str(&format!("; {} read as {e} (--encoding auto)", input.path));
            }
        }
        s
    }
}

/// Busy time of each stage of a run. The stages overlap (reading, checking
/// and applying run on threads of their own), so they may add up to more
/// than the run's duration. `lock_wait` is how long the run waited for the
/// stock it needs (other runs held it), `locked` how long it held that stock
/// (from taking it to its commit): where many runs share a database, these
/// say whether they queue for each other.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timings {
    pub read: std::time::Duration,
    pub validate: std::time::Duration,
    pub apply: std::time::Duration,
    pub report: std::time::Duration,
    pub commit: std::time::Duration,
    pub lock_wait: std::time::Duration,
    pub locked: std::time::Duration,
}

impl Timings {
    /// Every stage with its name, as `-v` and the metrics name them.
    pub fn stages(&self) -> [(&'static str, std::time::Duration); 7] {
        [
            ("read", self.read),
            ("validate", self.validate),
            ("apply", self.apply),
            ("report", self.report),
            ("commit", self.commit),
            ("lock_wait", self.lock_wait),
            ("locked", self.locked),
        ]
    }
}

/// A run as the history holds it: its summary and what else a run records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub summary: RunSummary,
    pub kind: RunKind,
    pub report_format: ReportFormat,
    /// For a reprocess: the runs whose failures it retried.
    pub retried_runs: Vec<i64>,
    /// Why a failed run stopped (the error message).
    pub message: Option<String>,
    /// Where the run ran.
    pub host: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_json_has_the_spec_keys_in_order_and_every_code() {
        let mut counts = Counts {
            orders: 3,
            accepted: 1,
            skipped: 1,
            lines: 2,
            units: 5,
            ..Counts::default()
        };
        counts.count_failure(ErrorCode::UnknownSku);
        let s = RunSummary {
            run_id: 7,
            status: RunStatus::Completed,
            started_at: "a".into(),
            finished_at: "b".into(),
            duration_ms: 12,
            inputs: vec![],
            counts,
        };
        let text = s.to_json();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "run_id",
                "status",
                "started_at",
                "finished_at",
                "duration_ms",
                "inputs",
                "orders",
                "accepted",
                "skipped",
                "failed",
                "lines",
                "units",
                "errors_by_code"
            ]
        );
        assert_eq!(v["status"], "completed");
        assert_eq!(v["errors_by_code"]["UNKNOWN_SKU"], 1);
        assert_eq!(v["errors_by_code"].as_object().unwrap().len(), 12);
        assert!(s
            .one_line(Some("r/run-7"))
            .contains("1 failed (UNKNOWN_SKU 1); 2 lines"));
    }

    #[test]
    fn the_summary_line_names_the_most_frequent_codes() {
        fn fail(c: &mut Counts, code: ErrorCode, n: u64) {
            for _ in 0..n {
                c.count_failure(code);
            }
        }
        let mut c = Counts::default();
        assert_eq!(c.most_frequent_codes(), "");
        fail(&mut c, ErrorCode::InvalidField, 20);
        fail(&mut c, ErrorCode::InsufficientStock, 60);
        assert_eq!(
            c.most_frequent_codes(),
            " (INSUFFICIENT_STOCK 60, INVALID_FIELD 20)"
        );
        fail(&mut c, ErrorCode::UnknownSku, 10);
        assert_eq!(
            c.most_frequent_codes(),
            " (INSUFFICIENT_STOCK 60, INVALID_FIELD 20, UNKNOWN_SKU 10)",
            "three are named rather than two and one more"
        );
        fail(&mut c, ErrorCode::PriceMismatch, 4);
        assert_eq!(c.failed, 94);
        assert_eq!(
            c.most_frequent_codes(),
            " (INSUFFICIENT_STOCK 60, INVALID_FIELD 20, 2 more codes)"
        );
        // Equal counts go by precedence.
        let mut t = Counts::default();
        t.count_failure(ErrorCode::InsufficientStock);
        t.count_failure(ErrorCode::MissingField);
        t.count_failure(ErrorCode::UnknownSku);
        t.count_failure(ErrorCode::PanDetected);
        assert_eq!(
            t.most_frequent_codes(),
            " (MISSING_FIELD 1, PAN_DETECTED 1, 2 more codes)"
        );
    }

    #[test]
    fn statuses_and_kinds_round_trip() {
        for s in RunStatus::ALL {
            assert_eq!(RunStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(
            &RunStatus::ALL[..],
            <RunStatus as strum::VariantArray>::VARIANTS
        );
        assert_eq!(RunStatus::DryRun.as_str(), "dry_run");
        assert_eq!(RunKind::parse("reprocess"), Some(RunKind::Reprocess));
        assert_eq!(RunKind::Process.as_str(), "process");
        assert_eq!(RunStatus::parse("unfinished"), None);
    }
}
