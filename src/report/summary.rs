//! The run summary (summary.json and `--json`) and the one-line summary for stderr.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::ErrorCode;

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
    pub by_code: [u64; 12],
}

impl Counts {
    pub fn errors_by_code(&self) -> Map<String, Value> {
        ErrorCode::ALL
            .iter()
            .zip(self.by_code)
            .map(|(c, n)| (c.as_str().to_string(), Value::from(n)))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputSummary {
    pub path: String,
    pub format: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub run_id: i64,
    pub status: String,
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: u64,
    pub inputs: Vec<InputSummary>,
    pub orders: u64,
    pub accepted: u64,
    pub skipped: u64,
    pub failed: u64,
    pub lines: u64,
    pub units: i64,
    pub errors_by_code: Map<String, Value>,
}

impl Summary {
    pub fn new(
        run_id: i64,
        status: &str,
        started_at: &str,
        finished_at: &str,
        duration_ms: u64,
        inputs: Vec<InputSummary>,
        c: &Counts,
    ) -> Self {
        Summary {
            run_id,
            status: status.to_string(),
            started_at: started_at.to_string(),
            finished_at: finished_at.to_string(),
            duration_ms,
            inputs,
            orders: c.orders,
            accepted: c.accepted,
            skipped: c.skipped,
            failed: c.failed,
            lines: c.lines,
            units: c.units,
            errors_by_code: c.errors_by_code(),
        }
    }

    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// One line for stderr: what happened and where to look.
    pub fn one_line(&self, reports: Option<&str>) -> String {
        let verb = match self.status.as_str() {
            "completed" => "completed",
            "dry_run" => "checked (dry run, nothing committed)",
            "aborted" => "aborted by --max-errors, nothing committed",
            other => other,
        };
        let mut s = format!(
            "run {} {verb}: {} orders: {} accepted, {} skipped, {} failed; {} lines, {} units taken; {:.1} s",
            self.run_id,
            self.orders,
            self.accepted,
            self.skipped,
            self.failed,
            self.lines,
            self.units,
            self.duration_ms as f64 / 1000.0
        );
        if let Some(dir) = reports {
            s.push_str(&format!("; reports in {dir}"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_has_the_spec_keys_and_every_code() {
        let mut c = Counts {
            orders: 3,
            accepted: 1,
            skipped: 1,
            failed: 1,
            lines: 2,
            units: 5,
            ..Counts::default()
        };
        c.by_code[ErrorCode::UnknownSku as usize] = 1;
        let s = Summary::new(7, "completed", "a", "b", 12, vec![], &c);
        let v: Value = serde_json::from_str(&s.to_json()).unwrap();
        for key in [
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
            "errors_by_code",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert_eq!(v["errors_by_code"]["UNKNOWN_SKU"], 1);
        assert_eq!(v["errors_by_code"].as_object().unwrap().len(), 12);
        assert!(s.one_line(Some("r/run-7")).contains("1 failed"));
    }
}
