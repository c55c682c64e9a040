//! `--log-format json`: one JSON object per event on stderr, for journald
//! or Loki; card numbers masked, control characters escaped. The default
//! human output is what the other tests check.

mod common;

use common::*;

/// Every stderr line as a JSON object.
fn events(out: &std::process::Output) -> Vec<serde_json::Value> {
    String::from_utf8(out.stderr.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

#[test]
fn a_run_logs_its_start_its_end_and_its_problems_as_json() {
    let env = Env::new();
    env.write("catalog.csv", catalog(3, 10));
    env.write(
        "orders.csv",
        csv_file(&[order_rows("J-1", &[(0, 1)]), order_rows("J-2", &[(9, 1)])]),
    );
    let out = env.run(&[
        "--log-format",
        "json",
        "process",
        "orders.csv",
        "--catalog",
        "catalog.csv",
    ]);
    assert_eq!(out.status.code(), Some(3));
    let ev = events(&out);
    let names: Vec<&str> = ev.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(names, ["run_started", "run_finished"]);
    assert_eq!(ev[0]["run_id"], 1);
    assert_eq!(ev[0]["inputs"], serde_json::json!(["orders.csv"]));
    let end = &ev[1];
    assert_eq!(
        (end["level"].as_str(), end["exit_code"].as_u64()),
        (Some("info"), Some(3))
    );
    assert_eq!(
        (end["accepted"].as_u64(), end["failed"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(end["errors_by_code"]["UNKNOWN_SKU"], 1);
    assert_eq!(end["reports"], "reports/run-1");
    assert!(end["stage_seconds"]["apply"].as_f64().is_some());
    assert!(end["ts"].as_str().unwrap().ends_with('Z'));
    assert!(end["message"]
        .as_str()
        .unwrap()
        .starts_with("run 1 completed"));
    // --quiet keeps the events: a collector wants them all.
    let out = env.run(&["--log-format", "json", "-q", "process", "orders.csv"]);
    assert_eq!(events(&out).len(), 2);
}

#[test]
fn errors_and_warnings_are_json_with_card_numbers_masked_and_controls_escaped() {
    let env = Env::new();
    // A file name with a control character and a card number.
    let name = "in\x1b[2J4111111111111111.csv";
    let out = env.run(&["--log-format", "json", "process", name]);
    assert_eq!(out.status.code(), Some(2));
    let raw = String::from_utf8_lossy(&out.stderr);
    assert!(!raw.contains('\x1b'), "{raw:?}");
    assert!(!raw.contains("4111111111111111"), "{raw}");
    let ev = events(&out);
    assert_eq!(ev.len(), 1);
    assert_eq!(
        (ev[0]["event"].as_str(), ev[0]["level"].as_str()),
        (Some("error"), Some("error"))
    );
    assert_eq!(ev[0]["exit_code"], 2);
    assert!(
        ev[0]["message"]
            .as_str()
            .unwrap()
            .contains("************1111"),
        "{}",
        ev[0]
    );
    // verify's faults are events too.
    env.write("catalog.csv", catalog(2, 5));
    env.ok(&["inventory", "load", "catalog.csv"], 0);
    env.db()
        .execute_batch("UPDATE products SET on_hand = 9 WHERE sku = 'SKU-0'")
        .unwrap();
    let out = env.run(&["--log-format", "json", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let ev = events(&out);
    assert_eq!(ev[0]["event"], "fault");
    assert!(ev[0]["message"].as_str().unwrap().contains("SKU-0"));
}
