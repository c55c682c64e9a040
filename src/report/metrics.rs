//! Prometheus text-format metrics of the last run, for the node_exporter
//! textfile collector.

use std::fmt::Write as _;
use std::path::Path;

use super::summary::Summary;
use crate::model::ErrorCode;

const LAST_SUCCESS: &str = "orderbatch_last_success_timestamp_seconds";

/// The last-success timestamp an earlier metrics file holds, if any.
pub fn previous_last_success(path: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(LAST_SUCCESS)?.trim().parse::<f64>().ok())
}

/// Render the metrics. `success` says whether this run counts as a success
/// (completed and committed); otherwise the previous success time is kept.
pub fn render(
    s: &Summary,
    exit_code: i32,
    now: f64,
    success: bool,
    previous: Option<f64>,
) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, samples: &[(String, String)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    gauge(
        "orderbatch_orders_total",
        "Orders of the last run by outcome.",
        &[
            ("{status=\"accepted\"}".into(), s.accepted.to_string()),
            ("{status=\"skipped\"}".into(), s.skipped.to_string()),
            ("{status=\"failed\"}".into(), s.failed.to_string()),
        ],
    );
    let by_code: Vec<(String, String)> = ErrorCode::ALL
        .iter()
        .map(|c| {
            let n = s
                .errors_by_code
                .get(c.as_str())
                .and_then(|v| v.as_u64())
                .unwrap_or(0);
            (format!("{{code=\"{}\"}}", c.as_str()), n.to_string())
        })
        .collect();
    gauge(
        "orderbatch_order_errors_total",
        "Failed orders of the last run by error code.",
        &by_code,
    );
    gauge(
        "orderbatch_run_duration_seconds",
        "Wall time of the last run.",
        &[(
            String::new(),
            format!("{:.3}", s.duration_ms as f64 / 1000.0),
        )],
    );
    gauge(
        "orderbatch_last_run_timestamp_seconds",
        "When the last run ended (Unix time).",
        &[(String::new(), format!("{now:.3}"))],
    );
    gauge(
        "orderbatch_last_run_exit_code",
        "Exit code of the last run.",
        &[(String::new(), exit_code.to_string())],
    );
    let last_success = if success { Some(now) } else { previous };
    if let Some(t) = last_success {
        gauge(
            LAST_SUCCESS,
            "When a run last completed and committed (Unix time).",
            &[(String::new(), format!("{t:.3}"))],
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::summary::Counts;

    #[test]
    fn a_failed_run_keeps_the_previous_success_time() {
        let s = Summary::new(1, "aborted", "a", "b", 1500, vec![], &Counts::default());
        let text = render(&s, 4, 2000.0, false, Some(1000.0));
        assert!(text.contains("orderbatch_last_success_timestamp_seconds 1000.000"));
        assert!(text.contains("orderbatch_last_run_timestamp_seconds 2000.000"));
        assert!(text.contains("orderbatch_run_duration_seconds 1.500"));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.prom");
        std::fs::write(&p, &text).unwrap();
        assert_eq!(previous_last_success(&p), Some(1000.0));
        let ok = render(&s, 0, 3000.0, true, Some(1000.0));
        assert!(ok.contains("orderbatch_last_success_timestamp_seconds 3000.000"));
    }
}
