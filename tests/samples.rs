//! The bundled samples give the committed reports, on every backend, and
//! SQLite and PostgreSQL give the same reports and history for them. Set
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

/// summary.json without the fields that hold the clock (each must be there).
fn summary_without_times(backend: Backend, text: &str) -> serde_json::Value {
    let mut v = json(text);
    let o = v.as_object_mut().unwrap();
    for key in ["started_at", "finished_at"] {
        let t = o.remove(key);
        assert!(
            t.as_ref().is_some_and(serde_json::Value::is_string),
            "{backend:?}: {key} in {text}"
        );
    }
    let d = o.remove("duration_ms");
    assert!(
        d.as_ref().is_some_and(serde_json::Value::is_u64),
        "{backend:?}: duration_ms in {text}"
    );
    v
}

/// The run history without what depends on the clock and the machine.
fn history_without_times(text: &str) -> serde_json::Value {
    let mut v = json(text);
    let runs = match &mut v {
        serde_json::Value::Array(runs) => runs.iter_mut().collect::<Vec<_>>(),
        one => vec![one],
    };
    for r in runs {
        let o = r.as_object_mut().unwrap();
        for key in ["started_at", "finished_at", "duration_ms", "host"] {
            o.remove(key);
        }
    }
    v
}

/// Everything a user sees of the sample runs followed by a restock and a
/// reprocess, by name: reports (files and rebuilt from the database), summaries
/// without their times, the stock, the history and the open failures.
fn samples_and_a_reprocess(backend: Backend) -> Vec<(String, String)> {
    let env = sample_runs(backend);
    env.write("restock.csv", "sku,quantity\nTEAPOT-CAST-800,5\n");
    env.ok(&["inventory", "receive", "restock.csv"], 0);
    let s = json(&env.ok(&["reprocess", "--report-format", "jsonl", "--json"], 3));
    // Every open failure of runs 1 and 2 is retried (not the malformed
    // records and duplicates); the two teapot orders now fit the stock.
    assert_eq!(
        (
            s["run_id"].as_u64(),
            s["orders"].as_u64(),
            s["accepted"].as_u64()
        ),
        (Some(3), Some(14), Some(2)),
        "{backend:?}: {s}"
    );
    let accepted = env.read("reports/run-3/accepted.jsonl");
    for id in ["WEB-1016", "APP-2007"] {
        assert!(
            accepted.contains(&format!("\"order_id\":\"{id}\"")),
            "{backend:?}: {id} in {accepted}"
        );
    }
    env.ok(&["verify"], 0);

    let mut seen = Vec::new();
    for (run, ext, other) in [
        (1, "csv", "jsonl"),
        (2, "csv", "jsonl"),
        (3, "jsonl", "csv"),
    ] {
        for kind in ["accepted", "failed"] {
            let file = format!("reports/run-{run}/{kind}.{ext}");
            seen.push((file.clone(), env.read(&file)));
            let args = ["report", kind, "--run", &run.to_string(), "--format", other];
            seen.push((args.join(" "), env.ok(&args, 0)));
        }
        let file = format!("reports/run-{run}/summary.json");
        let summary = summary_without_times(backend, &env.read(&file));
        seen.push((file, summary.to_string()));
        let show = env.ok(&["runs", "show", &run.to_string(), "--json"], 0);
        seen.push((
            format!("runs show {run} --json"),
            history_without_times(&show).to_string(),
        ));
    }
    seen.push((
        "inventory export".into(),
        env.ok(&["inventory", "export"], 0),
    ));
    let list = env.ok(&["runs", "list", "--json"], 0);
    seen.push((
        "runs list --json".into(),
        history_without_times(&list).to_string(),
    ));
    seen.push((
        "failures list --json".into(),
        env.ok(&["failures", "list", "--json"], 0),
    ));
    seen
}

#[test]
fn sqlite_and_postgresql_give_the_same_reports_for_the_samples() {
    if !backends().contains(&Backend::Postgres) {
        return; // backends() said loudly that PostgreSQL is skipped
    }
    let sqlite = samples_and_a_reprocess(Backend::Sqlite);
    let postgres = samples_and_a_reprocess(Backend::Postgres);
    assert_same(&sqlite, &postgres);
}

/// What SQLite and PostgreSQL gave, by name, is the same: a failure names
/// every output that differs, and shows the first.
fn assert_same<N: AsRef<str>>(sqlite: &[(N, String)], postgres: &[(N, String)]) {
    let differ: Vec<&str> = sqlite
        .iter()
        .zip(postgres)
        .filter(|((_, s), (_, p))| s != p)
        .map(|((name, _), _)| name.as_ref())
        .collect();
    if let Some(((name, s), (_, p))) = sqlite.iter().zip(postgres).find(|((_, s), (_, p))| s != p) {
        assert_eq!(
            s,
            p,
            "SQLite (left) and PostgreSQL (right) differ in {differ:?}; this is {}",
            name.as_ref()
        );
    }
}

#[test]
fn runs_that_commit_nothing_leave_the_same_failure_ids_on_both_backends() {
    if !backends().contains(&Backend::Postgres) {
        return; // backends() said loudly that PostgreSQL is skipped
    }
    let mut seen = Vec::new();
    for b in [Backend::Sqlite, Backend::Postgres] {
        let env = sample_files(b);
        let run = [
            "process",
            "samples/orders.csv",
            "--catalog",
            "samples/catalog.csv",
        ];
        env.ok(&[&run[..], &["--dry-run"]].concat(), 3);
        env.ok(&[&run[..], &["--max-errors", "0"]].concat(), 4);
        env.ok(&run, 3);
        seen.push(vec![
            (
                "dry run: reports/run-1/failed.csv",
                env.read("reports/run-1/failed.csv"),
            ),
            (
                "run 3: reports/run-3/failed.csv",
                env.read("reports/run-3/failed.csv"),
            ),
            (
                "failures list --json",
                env.ok(&["failures", "list", "--json"], 0),
            ),
            (
                "runs list --json",
                history_without_times(&env.ok(&["runs", "list", "--json"], 0)).to_string(),
            ),
        ]);
    }
    assert_same(&seen[0], &seen[1]);
}

/// The failed report without its failure_id column (a dry run stores no
/// failures, so it has none to name) and the summary without what names the
/// run or its time.
fn comparable(
    env: &Env,
    run: u32,
) -> (
    String,
    Vec<std::collections::BTreeMap<String, String>>,
    serde_json::Value,
) {
    let accepted = env.read(&format!("reports/run-{run}/accepted.csv"));
    let mut failed = parse_csv(
        env.read(&format!("reports/run-{run}/failed.csv"))
            .as_bytes(),
    );
    for row in &mut failed {
        row.remove("failure_id");
    }
    let mut summary = json(&env.read(&format!("reports/run-{run}/summary.json")));
    let o = summary.as_object_mut().unwrap();
    for key in [
        "run_id",
        "status",
        "started_at",
        "finished_at",
        "duration_ms",
    ] {
        o.remove(key);
    }
    (accepted, failed, summary)
}

#[test]
fn a_dry_run_reports_exactly_what_the_run_then_commits() {
    for b in backends() {
        let env = sample_files(b);
        let csv = [
            "process",
            "samples/orders.csv",
            "--catalog",
            "samples/catalog.csv",
        ];
        // Dry, real, dry, real: the JSONL file's skips and conflicts need
        // the CSV run committed, and its dry run must find them the same way.
        env.ok(&[&csv[..], &["--dry-run"]].concat(), 3);
        env.ok(&csv, 3);
        env.ok(&["process", "samples/orders.jsonl", "--dry-run"], 3);
        env.ok(&["process", "samples/orders.jsonl"], 3);
        let mut codes = std::collections::BTreeSet::new();
        for (dry, real) in [(1, 2), (3, 4)] {
            let (d, r) = (comparable(&env, dry), comparable(&env, real));
            assert_eq!(
                d.0, r.0,
                "{b:?}: accepted report of dry run {dry} and run {real}"
            );
            assert_eq!(
                d.1, r.1,
                "{b:?}: failed report of dry run {dry} and run {real}"
            );
            assert_eq!(d.2, r.2, "{b:?}: summary of dry run {dry} and run {real}");
            codes.extend(r.1.iter().map(|row| row["error_code"].clone()));
        }
        // The two files between them give every error code and a skip.
        assert_eq!(codes.len(), 12, "{b:?}: {codes:?}");
        assert!(
            comparable(&env, 4).0.contains(",skipped,"),
            "{b:?}: a skip in run 4"
        );
        let (d, _, _) = comparable(&env, 3);
        assert_eq!(env.run_statuses()[&3], "dry_run", "{b:?}");
        assert!(!d.is_empty());
    }
}

/// An order (of `order_rows`' shape) with one defect: kind 0 to 8, in the
/// order of the codes validation gives them.
fn defective(kind: usize, id: &str, sku: usize) -> String {
    let good = order_rows(id, &[(sku, 1), ((sku + 1) % 20, 1)]);
    let first_line = |s: &str| s.lines().next().unwrap_or("").to_string() + "\n";
    match kind {
        0 => format!("{id},2026-11-25T22:14:03Z,buyer@example.com,SKU-{sku}\n"),
        1 => good.replace("buyer@example.com", ""),
        2 => good.replace(",card,", ",cheque,"),
        3 => {
            let mut lines = good.lines();
            let one = lines.next().unwrap_or("").to_string();
            let two = lines
                .next()
                .unwrap_or("")
                .replace("@example.com", "@example.org");
            format!("{one}\n{two}\n")
        }
        4 => good.replace(&format!("ref-{id}"), "4111 1111 1111 1111"),
        5 => first_line(&good).replace(&format!(",SKU-{sku},"), ",NOPE-1,"),
        6 => good.replace(",EUR,", ",USD,"),
        7 => first_line(&order_rows(id, &[(sku, 1)])).replacen(
            &format!(",{}.00,EUR", 10 + sku),
            &format!(",{}.01,EUR", 10 + sku),
            1,
        ),
        _ => {
            let total = (10 + sku) + (10 + (sku + 1) % 20);
            good.replace(&format!(",{total}.00\n"), &format!(",{}.00\n", total + 1))
        }
    }
}

#[test]
fn a_dry_run_decides_like_the_run_across_chunks_on_tight_stock_with_every_code() {
    for b in backends() {
        let env = env_for(b);
        env.write("catalog.csv", catalog(20, 150));
        env.ok(&["inventory", "load", "catalog.csv"], 0);
        // First night: 1,000 orders, committed.
        let first: Vec<String> = (0..1000)
            .map(|i| order_rows(&format!("A-{i}"), &[(i % 20, 1)]))
            .collect();
        env.write("first.csv", csv_file(&first));
        env.ok(&["process", "first.csv"], 0);
        // Second file, 3,000 orders over several chunks: new orders that run
        // the stock out, repeats of the first night (skipped), changed ones
        // (conflicts), and ids repeated thousands of orders later
        // (duplicates found across chunks).
        // And one order in ten with a defect of its own, each of the nine
        // that validation finds in turn.
        let second: Vec<String> = (0..3000)
            .map(|i| match i % 10 {
                0 => order_rows(&format!("A-{}", i / 10), &[(i / 10 % 20, 1)]),
                1 => order_rows(&format!("A-{}", i / 10 + 300), &[(i % 20, 2)]),
                2 if i > 2000 => order_rows(&format!("B-{}", i - 1900), &[(i % 20, 1)]),
                4 => defective(i / 10 % 9, &format!("B-{i}"), i % 20),
                _ => order_rows(&format!("B-{i}"), &[(i % 20, 1 + (i % 3) as u32)]),
            })
            .collect();
        env.write("second.csv", csv_file(&second));
        env.ok(&["process", "second.csv", "--dry-run"], 3);
        env.ok(&["process", "second.csv"], 3);
        let (d, r) = (comparable(&env, 2), comparable(&env, 3));
        assert_eq!(d.0, r.0, "{b:?}: accepted reports");
        assert_eq!(d.1, r.1, "{b:?}: failed reports");
        assert_eq!(d.2, r.2, "{b:?}: summaries");
        let codes: std::collections::BTreeSet<&str> =
            r.1.iter().map(|row| row["error_code"].as_str()).collect();
        assert_eq!(
            codes,
            [
                "CURRENCY_MISMATCH",
                "DUPLICATE_IN_INPUT",
                "INCONSISTENT_ORDER",
                "INSUFFICIENT_STOCK",
                "INVALID_FIELD",
                "MALFORMED_RECORD",
                "MISSING_FIELD",
                "ORDER_ID_CONFLICT",
                "PAN_DETECTED",
                "PAYMENT_MISMATCH",
                "PRICE_MISMATCH",
                "UNKNOWN_SKU",
            ]
            .into(),
            "{b:?}"
        );
        assert_eq!(r.0.matches(",skipped,").count(), 300, "{b:?}");
    }
}
