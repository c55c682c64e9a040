//! The bundled samples give the committed reports. Set UPDATE_SAMPLES=1 to
//! rewrite samples/reports/ after an intended change of behaviour.

mod common;

use std::path::Path;

use common::*;

#[test]
fn the_samples_give_the_committed_reports() {
    let env = Env::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for name in ["catalog.csv", "orders.csv", "orders.jsonl"] {
        env.write(
            &format!("samples/{name}"),
            std::fs::read(root.join("samples").join(name)).unwrap(),
        );
    }
    // The README's first command, then the JSONL file into the same database.
    env.ok(
        &[
            "process",
            "samples/orders.csv",
            "--catalog",
            "samples/catalog.csv",
        ],
        3,
    );
    env.ok(&["process", "samples/orders.jsonl"], 3);
    let update = std::env::var_os("UPDATE_SAMPLES").is_some();
    for (run, input) in [(1, "orders.csv"), (2, "orders.jsonl")] {
        for kind in ["accepted", "failed"] {
            let got = env.read(&format!("reports/run-{run}/{kind}.csv"));
            let want_path = root.join(format!("samples/reports/{input}/{kind}.csv"));
            if update {
                std::fs::write(&want_path, &got).unwrap();
                continue;
            }
            let want = std::fs::read_to_string(&want_path).unwrap();
            assert_eq!(
                got,
                want,
                "{} differs from this run's report",
                want_path.display()
            );
        }
    }
    // Together the two sample files show every error code.
    let mut seen = std::collections::BTreeSet::new();
    for run in [1, 2] {
        let s: serde_json::Value =
            serde_json::from_str(&env.read(&format!("reports/run-{run}/summary.json"))).unwrap();
        for (code, n) in s["errors_by_code"].as_object().unwrap() {
            if n.as_u64().unwrap() > 0 {
                seen.insert(code.clone());
            }
        }
        assert!(s["accepted"].as_u64().unwrap() > 0);
    }
    assert_eq!(seen.len(), 12, "{seen:?}");
    let s2: serde_json::Value =
        serde_json::from_str(&env.read("reports/run-2/summary.json")).unwrap();
    assert!(s2["skipped"].as_u64().unwrap() > 0);
    env.ok(&["verify"], 0);
}
