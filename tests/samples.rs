//! The bundled samples give the committed reports, on every backend. Set
//! UPDATE_SAMPLES=1 to rewrite samples/reports/ after an intended change of
//! behaviour.

mod common;

use std::path::Path;

use common::*;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh database of `backend` with the sample files under `samples/`.
fn sample_files(backend: Backend) -> Env {
    let env = env_for(backend);
    for name in ["catalog.csv", "orders.csv", "orders.jsonl"] {
        env.write(
            &format!("samples/{name}"),
            std::fs::read(root().join("samples").join(name)).unwrap(),
        );
    }
    env
}

/// The README's two sample runs on a fresh database: run 1 the CSV orders
/// with the catalog, run 2 the JSONL orders into the same database.
fn sample_runs(backend: Backend) -> Env {
    let env = sample_files(backend);
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
    env
}

#[test]
fn the_samples_give_the_committed_reports() {
    let update = std::env::var_os("UPDATE_SAMPLES").is_some();
    for b in backends() {
        let env = sample_runs(b);
        for (run, input) in [(1, "orders.csv"), (2, "orders.jsonl")] {
            for kind in ["accepted", "failed"] {
                let got = env.read(&format!("reports/run-{run}/{kind}.csv"));
                let want_path = root().join(format!("samples/reports/{input}/{kind}.csv"));
                if update && b == Backend::Sqlite {
                    std::fs::write(&want_path, &got).unwrap();
                    continue;
                }
                let want = std::fs::read_to_string(&want_path).unwrap();
                assert_eq!(
                    got,
                    want,
                    "{b:?}: {} differs from this run's report",
                    want_path.display()
                );
            }
        }
        // The counts the README gives, and together the two sample files
        // show every error code.
        let mut seen = std::collections::BTreeSet::new();
        for (run, counts) in [(1, [27, 16, 0, 11, 21, 38]), (2, [14, 6, 1, 7, 7, 14])] {
            let s = json(&env.read(&format!("reports/run-{run}/summary.json")));
            let got = ["orders", "accepted", "skipped", "failed", "lines", "units"]
                .map(|k| s[k].as_u64().unwrap_or_else(|| panic!("{b:?}: {k} in {s}")));
            assert_eq!(got, counts, "{b:?}: run {run}: {s}");
            for (code, n) in s["errors_by_code"].as_object().unwrap() {
                if n.as_u64().unwrap() > 0 {
                    seen.insert(code.clone());
                }
            }
        }
        assert_eq!(seen.len(), 12, "{b:?}: {seen:?}");
        env.ok(&["verify"], 0);
    }
}
