//! A card number is never written anywhere in clear: not in the database (nor
//! its WAL), not in any report, not on stdout or stderr, not in the metrics,
//! whatever free-text field it stands in, whatever the input format, and
//! whatever the backend: on PostgreSQL not in any table, nor in the server's
//! files or its log.

mod common;
mod procs;

use common::*;

/// Test card numbers (Luhn-valid), each as it appears in the input.
const CARDS: [&str; 6] = [
    "4111111111111111",
    "5555 5555 5555 4444",
    "3782-822463-10005",
    "4012888888881881",
    "6011 0009 9013 9424",
    "4222222222222",
];

/// The digits of a card number, and its groups as typed.
fn clear_forms(card: &str) -> Vec<String> {
    let digits: String = card.chars().filter(char::is_ascii_digit).collect();
    vec![digits, card.to_string()]
}

/// The runs of digits, spaces and dashes, at least 13 long, in `bytes`: a
/// card number in clear, in any of its forms, stands inside one of them.
fn digit_runs(bytes: &[u8]) -> Vec<&[u8]> {
    // A plain loop: it scans the PostgreSQL server's files in a debug build.
    let mut runs = Vec::new();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !(b.is_ascii_digit() || b == b' ' || b == b'-') {
            if i - start >= 13 {
                runs.push(&bytes[start..i]);
            }
            start = i + 1;
        }
    }
    if bytes.len() - start >= 13 {
        runs.push(&bytes[start..]);
    }
    runs
}

/// Everything a run could have written in clear, but the database.
fn outputs_and_files(env: &Env, outputs: &[std::process::Output]) -> Vec<u8> {
    let mut all = std::fs::read(env.path("m.prom")).unwrap();
    all.extend(files_under(&env.path("reports")));
    for o in outputs {
        all.extend(&o.stdout);
        all.extend(&o.stderr);
    }
    all
}

/// The bytes of every file under `dir`.
fn files_under(dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        // What the server removes meanwhile (a temporary file) holds nothing.
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                dirs.push(e.path());
            } else {
                all.extend(std::fs::read(e.path()).unwrap_or_default());
            }
        }
    }
    all
}

/// What the PostgreSQL server keeps of `env`'s database besides the rows:
/// after a checkpoint, the files of the database and of the cluster (WAL
/// included; not those of the other databases), and the server log.
fn server_files(env: &Env) -> Vec<u8> {
    let c = pg::cluster();
    c.psql(&c.superuser_url(), "CHECKPOINT");
    let oid = env.sql("SELECT oid FROM pg_database WHERE datname = current_database()");
    let mut all = std::fs::read(c.log_path()).unwrap();
    for e in std::fs::read_dir(c.data_dir()).unwrap().flatten() {
        if e.file_name() == "base" {
            all.extend(files_under(&e.path().join(&oid[0])));
        } else if e.path().is_dir() {
            all.extend(files_under(&e.path()));
        } else {
            all.extend(std::fs::read(e.path()).unwrap_or_default());
        }
    }
    all
}

#[test]
fn card_numbers_in_every_free_text_field_never_appear_in_clear() {
    let [c0, c1, c2, c3, c4, c5] = CARDS;
    let mut csv = format!("{HEADER},note\n");
    csv += &order_rows("P-1", &[(0, 1)])
        .replace("ref-P-1", c0)
        .replace('\n', ",ok\n");
    csv += &order_rows("P-2", &[(0, 1)])
        .replace(
            "buyer@example.com",
            &format!("{}@example.com", c1.replace(' ', "")),
        )
        .replace('\n', ",ok\n");
    csv += &order_rows("P-3", &[(1, 1)]).replace('\n', &format!(",call me {c2}\n"));
    csv += &format!("P-4,{c3},broken row\n");
    csv += &order_rows("P-5", &[(1, 1)])
        .replace("ref-P-5", &format!("'={c4}"))
        .replace('\n', ",x\n");
    csv += &order_rows("OK-1", &[(2, 1)]).replace('\n', ",fine\n");
    let jsonl = format!(
        "{{\"order_id\":\"J-1\",\"placed_at\":\"2026-11-25T22:14:03Z\",\"customer_email\":\"a@b.co\",\"currency\":\"EUR\",\"payment_method\":\"card\",\"payment_ref\":\"{c5}\",\"payment_amount\":\"10.00\",\"gift\":\"{c0}\",\"items\":[{{\"sku\":\"SKU-0\",\"quantity\":1,\"unit_price\":\"10.00\"}}]}}\n{{\"order_id\":\"J-2\",\"broken\":\"{c1}\"\n{{\"order_id\":\"J-3\",\"{c2}\":1,\"{c2}\":2}}\n"
    );
    let named = format!(
        "{HEADER},{c3}\n{}",
        order_rows("N-1", &[(9, 1)]).replace('\n', ",x\n")
    );
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 100);
        env.write("orders.csv", &csv);
        env.write("orders.jsonl", &jsonl);
        env.write("named.csv", &named);
        let mut outputs = Vec::new();
        for (args, code) in [
            (
                &[
                    "process",
                    "orders.csv",
                    "--json",
                    "--metrics-file",
                    "m.prom",
                ][..],
                3,
            ),
            (
                &["process", "orders.jsonl", "--report-format", "jsonl", "-v"],
                3,
            ),
            // The card numbers fail again: the masked forms count as card numbers.
            (&["reprocess", "--json"], 3),
            (&["report", "failed", "--run", "1"], 0),
            (&["report", "failed", "--run", "2", "--format", "csv"], 0),
            (&["runs", "show", "1", "--json"], 0),
            // A card number as a column name, on an order that fails (unknown sku).
            (&["process", "named.csv"], 3),
        ] {
            let out = env.run(args);
            assert_eq!(out.status.code(), Some(code), "{b:?}: {args:?}: {out:?}");
            outputs.push(out);
        }
        // Every order with a card number failed with PAN_DETECTED, or could
        // not be parsed.
        let codes = |report: &[u8]| -> std::collections::BTreeMap<String, String> {
            parse_csv(report)
                .into_iter()
                .map(|r| (r["source_line"].clone(), r["error_code"].clone()))
                .collect()
        };
        let failed = String::from_utf8_lossy(&outputs[3].stdout).to_string();
        let want: std::collections::BTreeMap<String, String> = [
            ("2", "PAN_DETECTED"),
            ("3", "PAN_DETECTED"),
            ("4", "PAN_DETECTED"),
            ("5", "MALFORMED_RECORD"),
            ("6", "PAN_DETECTED"),
        ]
        .map(|(l, c)| (l.to_string(), c.to_string()))
        .into();
        assert_eq!(codes(failed.as_bytes()), want, "{b:?}: {failed}");
        assert!(
            failed.contains(",************1111,"),
            "{b:?}: masked forms are kept: {failed}"
        );
        let failed2 = &outputs[4].stdout;
        let want: std::collections::BTreeMap<String, String> = [
            ("1", "PAN_DETECTED"),
            ("2", "MALFORMED_RECORD"),
            ("3", "MALFORMED_RECORD"),
        ]
        .map(|(l, c)| (l.to_string(), c.to_string()))
        .into();
        assert_eq!(
            codes(failed2),
            want,
            "{b:?}: {}",
            String::from_utf8_lossy(failed2)
        );
        let accepted = env.read("reports/run-1/accepted.csv");
        assert!(accepted.contains("OK-1,accepted"), "{b:?}: {accepted}");

        // Every table: on SQLite the database file and its WAL.
        let dump = env.dump();
        let dump_text = String::from_utf8_lossy(&dump);
        assert!(
            dump_text.contains("************1111") && dump_text.contains("************4444"),
            "{b:?}: the database keeps the masked forms"
        );
        let mut all = outputs_and_files(&env, &outputs);
        all.extend(dump);
        if b == Backend::Postgres {
            all.extend(server_files(&env));
        }
        let runs = digit_runs(&all);
        for card in CARDS {
            for clear in clear_forms(card) {
                let clear = clear.as_bytes();
                assert!(
                    !runs
                        .iter()
                        .any(|r| r.windows(clear.len()).any(|w| w == clear)),
                    "{b:?}: {} appears in clear",
                    String::from_utf8_lossy(clear)
                );
            }
        }
    }
}

/// The regular files a process has open, but `except`, with their bytes
/// (an unnamed temporary file included: it is read through /proc).
fn open_files_of(pid: u32, except: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        let Ok(target) = std::fs::read_link(e.path()) else {
            continue;
        };
        let shown = target.display().to_string();
        if target == except || !shown.starts_with('/') || shown.starts_with("/dev/") {
            continue;
        }
        if let Ok(bytes) = std::fs::read(e.path()) {
            out.push((shown, bytes));
        }
    }
    out
}

fn assert_no_clear_card(bytes: &[u8], cards: &[&str], what: &str) {
    let runs = digit_runs(bytes);
    for card in cards {
        let clear: String = card.chars().filter(char::is_ascii_digit).collect();
        assert!(
            !runs
                .iter()
                .any(|r| r.windows(clear.len()).any(|w| w == clear.as_bytes())),
            "{what}: {clear} appears in clear"
        );
    }
}

/// Card numbers beside other digits (a CVV, a phone number, an expiry date,
/// another card number) are found and masked; and no temporary file ever
/// holds one in clear: on PostgreSQL the spool of checked orders is read
/// through /proc while the run waits for a stock row, with every other file
/// it has open; on both backends the temporary directory is empty after.
#[test]
fn card_numbers_beside_other_digits_and_in_temporary_files_are_masked() {
    use std::io::Read;
    let placed = [
        // payment_ref, extra column
        ("4111 1111 1111 1111 123", "card and CVV"),
        ("ref-a", "tel 1234 5555555555554444"),
        ("ref-b", "4111-1111-1111-1111-12/25"),
        ("ref-c", "4111111111111111 5555555555554444"),
    ];
    let cards = ["4111111111111111", "5555555555554444"];
    let mut csv = format!("{HEADER},note\n");
    for (i, (r, note)) in placed.iter().enumerate() {
        csv += &order_rows(&format!("P-{i}"), &[(0, 1)])
            .replace(&format!("ref-P-{i}"), r)
            .replace('\n', &format!(",{note}\n"));
    }
    csv += "BROKEN,\"4111111111111111\n";
    for i in 0..3_000 {
        csv += &order_rows(&format!("G-{i}"), &[(i % 5, 1)]).replace('\n', ",fine\n");
    }
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 1_000_000);
        env.write("orders.csv", &csv);
        std::fs::create_dir(env.path("tmp")).unwrap();
        let mut cmd = env.spawnable();
        cmd.args(["process", "orders.csv", "--report-format", "xlsx"])
            .env("TMPDIR", env.path("tmp"))
            .stderr(std::process::Stdio::piped());
        let mut held = Vec::new();
        let status = if b == Backend::Postgres {
            // Another session holds a stock row: the run waits for it with its
            // spool of checked orders written.
            let mut gate = procs::PgSession::open(&env.db);
            gate.exec("BEGIN; SELECT on_hand FROM products WHERE sku = 'SKU-0' FOR UPDATE;");
            let mut probe = procs::PgSession::open(&env.db);
            let mut kid = procs::Kid::spawn(&mut cmd, "process");
            procs::poll("the run to wait for its stock", || {
                let n: i64 = probe.exec(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
                     AND application_name = 'orderbatch' AND wait_event_type = 'Lock'",
                )[0]
                .parse()
                .unwrap();
                (n > 0).then_some(())
            });
            held = open_files_of(kid.pid(), &env.path("orders.csv"));
            gate.exec("ROLLBACK;");
            let status = kid.wait(procs::HANG);
            let mut err = String::new();
            kid.take_stderr().read_to_string(&mut err).unwrap();
            assert!(!err.contains("4111"), "{err}");
            status
        } else {
            procs::Kid::spawn(&mut cmd, "process").wait(procs::HANG)
        };
        assert_eq!(status.code(), Some(3), "{b:?}");
        if b == Backend::Postgres {
            assert!(
                held.iter().any(|(_, bytes)| bytes.len() > 100_000),
                "{b:?}: the spool was among the open files: {:?}",
                held.iter().map(|(n, b)| (n, b.len())).collect::<Vec<_>>()
            );
        }
        for (name, bytes) in &held {
            assert_no_clear_card(bytes, &cards, &format!("{b:?}: open file {name}"));
        }
        assert!(
            std::fs::read_dir(env.path("tmp")).unwrap().next().is_none(),
            "{b:?}: temporary files left behind"
        );
        // Each placement failed PAN_DETECTED and is stored masked.
        let failed = env.ok(&["report", "failed", "--run", "1", "--format", "csv"], 0);
        let rows = parse_csv(failed.as_bytes());
        let codes: Vec<&str> = rows.iter().map(|r| &r["error_code"][..]).collect();
        assert_eq!(
            codes,
            [
                "PAN_DETECTED",
                "PAN_DETECTED",
                "PAN_DETECTED",
                "PAN_DETECTED",
                "MALFORMED_RECORD"
            ],
            "{b:?}: {failed}"
        );
        assert_eq!(rows[0]["payment_ref"], "************1111 123");
        assert_eq!(rows[1]["note"], "tel 1234 ************4444");
        assert_eq!(rows[2]["note"], "************1111-12/25");
        assert_eq!(rows[3]["note"], "************1111 ************4444");
        let mut all = failed.into_bytes();
        all.extend(env.dump());
        all.extend(files_under(&env.path("reports")));
        assert_no_clear_card(&all, &cards, &format!("{b:?}: database and reports"));
    }
}
