//! Nothing private leaks. A card number is never written anywhere in clear:
//! not in the database (nor its WAL), not in any report, not on stdout or
//! stderr, not in the metrics or a temporary file, whatever free-text field
//! it stands in, whatever the input format, and whatever the backend (on
//! PostgreSQL not in any table, nor in the server's files or its log). Files
//! are never readable by everyone, whatever the umask, and never written
//! through a planted link. A `--db` password appears in no output, however
//! the URL carries it, also when the connection fails; and a `--db` that
//! cannot be read one way only is refused with exit 2 before any file is
//! created.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::procs;
use common::*;

// ---------------------------------------------------------------- card numbers

#[test]
fn card_numbers_never_reach_the_reports_or_the_database_in_clear() {
    let text = csv_file(&[order_rows("P-1", &[(0, 1)]).replace("ref-P-1", "4111 1111 1111 1111")]);
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 10);
        env.write("orders.csv", &text);
        let out = env.run(&["process", "orders.csv"]);
        assert_eq!(out.status.code(), Some(3), "{b:?}: {out:?}");
        let failed = env.read("reports/run-1/failed.csv");
        let rows = parse_csv(failed.as_bytes());
        assert_eq!(rows[0]["error_code"], "PAN_DETECTED", "{b:?}: {failed}");
        assert_eq!(
            rows[0]["payment_ref"], "************1111",
            "{b:?}: {failed}"
        );
        // Every table (SQLite: the database file and its WAL), stderr, the report.
        let mut all = env.dump();
        all.extend(out.stderr);
        all.extend(failed.into_bytes());
        let hay = String::from_utf8_lossy(&all);
        assert!(
            hay.contains("************1111"),
            "{b:?}: the masked form is stored"
        );
        assert!(!hay.contains("4111 1111 1111 1111"), "{b:?}");
        assert!(!hay.contains("4111111111111111"), "{b:?}");
    }
}

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
    all.extend(contents_under(&env.path("reports")));
    for o in outputs {
        all.extend(&o.stdout);
        all.extend(&o.stderr);
    }
    all
}

/// The bytes of every file under `dir`.
fn contents_under(dir: &std::path::Path) -> Vec<u8> {
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
            all.extend(contents_under(&e.path().join(&oid[0])));
        } else if e.path().is_dir() {
            all.extend(contents_under(&e.path()));
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
        all.extend(contents_under(&env.path("reports")));
        assert_no_clear_card(&all, &cards, &format!("{b:?}: database and reports"));
    }
}

#[test]
fn a_json_line_cut_in_a_card_number_keeps_no_digits_of_it_in_clear() {
    let env = Env::new();
    load_catalog(&env, 10);
    env.write(
        "orders.jsonl",
        "{\"order_id\":\"J-1\",\"payment_ref\":\"4111111111111\n",
    );
    env.ok(&["process", "orders.jsonl"], 3);
    let text = env.read("reports/run-1/failed.csv");
    assert!(text.contains("MALFORMED_RECORD"), "{text}");
    assert!(!text.contains("411111111"), "{text}");
    assert!(text.contains("*********1111"), "{text}");
    assert!(!env.dump().windows(9).any(|w| w == b"411111111"));
}

// --------------------------------------------- private files, never written through a planted link

fn mode(env: &Env, name: &str) -> u32 {
    std::fs::metadata(env.path(name))
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn files_are_never_readable_by_everyone_whatever_the_umask() {
    for umask in [0o022, 0o000] {
        let env = Env::new();
        env.write("catalog.csv", catalog(5, 10));
        env.write(
            "orders.csv",
            csv_file(&[order_rows("P-1", &[(0, 1)]), order_rows("P-2", &[(9, 1)])]),
        );
        let out = run_with_limits(
            &env,
            None,
            umask,
            &[
                "process",
                "orders.csv",
                "--catalog",
                "catalog.csv",
                "--out",
                "new/reports",
                "--metrics-file",
                "m.prom",
            ],
        );
        assert_eq!(
            out.status.code(),
            Some(3),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Keep the WAL: open it from another process while checking.
        for f in [
            "orderbatch.db",
            "new",
            "new/reports",
            "new/reports/run-1",
            "new/reports/run-1/accepted.csv",
            "new/reports/run-1/failed.csv",
            "new/reports/run-1/summary.json",
        ] {
            let m = mode(&env, f);
            assert_eq!(m & 0o007, 0, "{f} is {m:o} with umask {umask:o}");
            assert_eq!(m & 0o600, 0o600, "{f}: the owner reads and writes");
        }
        assert_eq!(mode(&env, "m.prom"), 0o644);
    }
    // The WAL while a run holds it: as private as the database.
    let env = Env::new();
    load_catalog(&env, 10);
    let c = env.db();
    c.execute_batch("BEGIN; UPDATE products SET name = name; ")
        .unwrap();
    if env.exists("orderbatch.db-wal") {
        assert_eq!(mode(&env, "orderbatch.db-wal") & 0o007, 0);
    }
    c.execute_batch("ROLLBACK").unwrap();
}

#[test]
fn a_link_planted_at_the_metrics_file_or_its_temporary_name_is_never_followed() {
    let env = Env::new();
    load_catalog(&env, 10);
    env.write("orders.csv", csv_file(&[order_rows("M-1", &[(0, 1)])]));
    env.write("victim", "root's file\n");
    std::os::unix::fs::symlink(env.path("victim"), env.path("m.prom")).unwrap();
    // Guessable temporary names of other programs: planted links everywhere.
    for pid in [1u32, std::process::id(), 99999] {
        let _ =
            std::os::unix::fs::symlink(env.path("victim"), env.path(&format!(".m.prom.tmp-{pid}")));
    }
    env.ok(&["process", "orders.csv", "--metrics-file", "m.prom"], 0);
    assert_eq!(env.read("victim"), "root's file\n");
    let meta = std::fs::symlink_metadata(env.path("m.prom")).unwrap();
    assert!(meta.is_file(), "the link was replaced by the metrics file");
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o644,
        "world-readable for the exporter"
    );
    assert!(env
        .read("m.prom")
        .contains("orderbatch_last_run_exit_code 0"));
}

#[test]
fn the_partial_report_directory_swapped_for_a_link_mid_run_gets_no_report() {
    let env = Env::new();
    load_catalog(&env, 10);
    // The run reads from a FIFO: it waits, mid-run, until the test writes it.
    let fifo = env.path("orders.csv");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    std::fs::create_dir(env.path("attacker")).unwrap();
    let child = env
        .spawnable()
        .args(["process", "orders.csv", "--format", "csv"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Its header first: the run checks it, starts, and waits for the orders.
    let mut writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    use std::io::Write;
    writer.write_all(format!("{HEADER}\n").as_bytes()).unwrap();
    writer.flush().unwrap();
    // Wait (bounded) for the run to create its partial directory.
    let partial = env.path("reports/.run-1.partial");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !partial.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::fs::rename(&partial, env.path("reports/moved-away")).unwrap();
    std::os::unix::fs::symlink(env.path("attacker"), &partial).unwrap();
    writer
        .write_all(order_rows("S-1", &[(0, 1)]).as_bytes())
        .unwrap();
    drop(writer);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::read_dir(env.path("attacker"))
            .unwrap()
            .next()
            .is_none(),
        "nothing written into the attacker's directory"
    );
    assert!(
        env.exists("reports/moved-away/accepted.csv"),
        "the reports went into the run's own directory"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("could not be moved into place") && err.contains("replaced"),
        "{err}"
    );
    assert!(!env.exists("reports/run-1"));
    assert_eq!(
        env.ok(&["report", "accepted", "--run", "1"], 0)
            .lines()
            .count(),
        2
    );
}

// --------------------------------------------------------------- database URLs and their passwords

/// A password with every character a URL gives a meaning to.
const SECRET: &str = "Zq7/Le:ak?P#w@x%y&z=1";

/// Pieces of it that nothing else prints.
const PIECES: [&str; 3] = ["Zq7", "Le:ak", "%2FLe"];

/// Every byte but RFC 3986's unreserved ones as %XX.
fn percent_encoded(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The cluster URL `base` (`postgresql://postgres@SOCKET/DB`) with `password`
/// (as written) in its user-info.
fn with_userinfo_password(base: &str, password: &str) -> String {
    base.replacen(
        "postgresql://postgres@",
        &format!("postgresql://postgres:{password}@"),
        1,
    )
}

/// The binary in `env`'s directory, the database given by `--db`.
fn run_with(env: &Env, db: &str, args: &[&str]) -> Output {
    let mut c = std::process::Command::new(bin_path());
    c.current_dir(env.dir.path())
        .env_remove("ORDERBATCH_DB")
        .args(["--db", db])
        .args(args);
    c.output().unwrap()
}

/// The same, the database given by ORDERBATCH_DB.
fn run_with_env(env: &Env, db: &str, args: &[&str]) -> Output {
    let mut c = std::process::Command::new(bin_path());
    c.current_dir(env.dir.path())
        .env("ORDERBATCH_DB", db)
        .args(args);
    c.output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_hidden(what: &str, text: &str, pieces: &[&str]) {
    for p in pieces {
        assert!(!text.contains(p), "{what}: {p:?} shown in\n{text}");
    }
}

fn assert_code(out: &Output, code: i32, what: &str) {
    assert_eq!(out.status.code(), Some(code), "{what}: {}", text(out));
    assert_no_panic(out);
}

/// Every file under `dir`, by path relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

fn pg_available() -> bool {
    if pg::skip_requested() {
        eprintln!("!!! ORDERBATCH_SKIP_PG=1: this PostgreSQL test is SKIPPED");
        return false;
    }
    true
}

#[test]
fn a_password_is_in_no_output_whichever_way_the_url_carries_it() {
    if !pg_available() {
        return;
    }
    let base = pg::cluster().new_database();
    let secret = percent_encoded(SECRET);
    // The socket accepts every local user (trust): the password is carried
    // but not checked, which is what this test needs.
    let forms = [
        with_userinfo_password(&base, &secret),
        format!("{base}?password={secret}"),
        format!("{base}?pass%77ord={secret}&connect_timeout=5"),
    ];
    let env = Env::new();
    env.write("catalog.csv", catalog(3, 10));
    env.write(
        "orders.csv",
        csv_file(&[order_rows("U-1", &[(0, 1)]), order_rows("U-2", &[(7, 1)])]),
    );
    let mut seen = String::new();
    for (i, db) in forms.iter().enumerate() {
        let steps: [(&[&str], i32); 7] = [
            (&["inventory", "load", "catalog.csv"], 0),
            (&["--log-format", "json", "-v", "process", "orders.csv"], 3),
            (&["verify"], 0),
            (&["--log-format", "json", "verify", "--json"], 0),
            (&["runs", "list"], 0),
            (&["runs", "list", "--json"], 0),
            (&["failures", "list"], 0),
        ];
        for (args, code) in steps {
            let out = if i == 1 {
                run_with_env(&env, db, args)
            } else {
                run_with(&env, db, args)
            };
            assert_code(&out, code, &format!("form {i}: {args:?}"));
            let t = text(&out);
            assert_hidden(&format!("form {i}: {args:?}"), &t, &PIECES);
            assert_hidden(&format!("form {i}: {args:?}"), &t, &[&secret]);
            seen.push_str(&t);
        }
    }
    // The JSON log names the database as the URL without its password: for
    // this cluster's URLs, the URL the harness made.
    let started: Vec<serde_json::Value> = seen
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "run_started")
        .collect();
    let shown = [
        base.clone(),
        base.clone(),
        format!("{base}?connect_timeout=5"),
    ];
    assert_eq!(started.len(), shown.len(), "{seen}");
    for (e, want) in started.iter().zip(&shown) {
        assert_eq!(e["db"].as_str(), Some(want.as_str()), "{e}");
    }
    // Nor is it in any file written, nor in the run history.
    for f in files_under(env.dir.path()) {
        let content = String::from_utf8_lossy(&file_bytes(&env.path(&f))).into_owned();
        assert_hidden(&f, &format!("{f}\n{content}"), &PIECES);
    }
    let history = pg::cluster().psql(
        &base,
        "SELECT coalesce(string_agg(message, ' '), '') FROM runs",
    );
    assert_hidden("runs.message", &history, &PIECES);
}

#[test]
fn a_failing_connection_names_the_database_but_not_its_password() {
    if !pg_available() {
        return;
    }
    let secret = percent_encoded(SECRET);
    let env = Env::new();
    env.write("orders.csv", csv_file(&[order_rows("F-1", &[(0, 1)])]));
    let missing = with_userinfo_password(&pg::cluster().url("ob_no_such_db"), &secret);
    let out = run_with(&env, &missing, &["verify"]);
    assert_code(&out, 1, "no such database");
    let t = text(&out);
    assert_hidden("no such database", &t, &PIECES);
    assert!(
        t.contains("ob_no_such_db") && t.contains("check the database name"),
        "{t}"
    );
    let nowhere = format!("postgresql://ob:{secret}@%2Fnonexistent-orderbatch-dir/orders");
    for args in [
        &["--log-format", "json", "process", "orders.csv"][..],
        &["runs", "list"],
        &["verify"],
    ] {
        let out = run_with(&env, &nowhere, args);
        assert_code(&out, 1, &format!("{args:?}"));
        let t = text(&out);
        assert_hidden(&format!("{args:?}"), &t, &PIECES);
        assert!(
            t.contains("postgresql://ob@%2Fnonexistent-orderbatch-dir/orders"),
            "{t}"
        );
        assert!(t.contains("check that the server runs"), "{t}");
    }
    assert_eq!(files_under(env.dir.path()), ["orders.csv"]);
}

#[test]
fn a_url_that_reads_two_ways_is_refused_before_anything_is_created() {
    let env = Env::new();
    env.write("orders.csv", csv_file(&[order_rows("A-1", &[(0, 1)])]));
    for db in [
        "postgresql://ob2:ab/cdLeakZ@db.example/orders",
        "postgresql://ob2:ab?cdLeakZ@db.example/orders",
        "postgresql://ob2:ab#cdLeakZ@db.example/orders",
        "postgresql://ob2:ab@cdLeakZ@db.example/orders",
    ] {
        for args in [&["init"][..], &["process", "orders.csv"], &["verify"]] {
            let out = run_with(&env, db, args);
            assert_code(&out, 2, &format!("{db} {args:?}"));
            assert_one_error_line(&out, &["Percent-encode", "%2F", "%40", "%23", "%3F"]);
            assert_hidden(db, &text(&out), &["LeakZ", "cdL"]);
        }
    }
    // A parameter orderbatch does not know is named, and nothing more.
    let out = run_with(
        &env,
        "postgresql://ob:LeakZ@db.example/orders?sslmod=require",
        &["verify"],
    );
    assert_code(&out, 2, "unknown parameter");
    assert_one_error_line(&out, &["\"sslmod\"", "sslmode"]);
    assert_hidden("unknown parameter", &text(&out), &["LeakZ"]);
    assert_eq!(files_under(env.dir.path()), ["orders.csv"]);
}

#[test]
fn a_keyword_value_db_is_refused_and_creates_no_file() {
    let env = Env::new();
    env.write("catalog.csv", catalog(2, 5));
    env.write("orders.csv", csv_file(&[order_rows("K-1", &[(0, 1)])]));
    let before = files_under(env.dir.path());
    let kv = "host=/tmp port=5432 password=LeakZ dbname=orders";
    for args in [
        &["init"][..],
        &["inventory", "load", "catalog.csv"],
        &["process", "orders.csv"],
        &["verify"],
        &["runs", "list"],
    ] {
        for out in [run_with(&env, kv, args), run_with_env(&env, kv, args)] {
            assert_code(&out, 2, &format!("{args:?}"));
            assert_one_error_line(&out, &["keyword/value", "postgresql://USER"]);
            assert_hidden(&format!("{args:?}"), &text(&out), &["LeakZ"]);
        }
    }
    let out = run_with(&env, kv, &["--log-format", "json", "verify"]);
    assert_code(&out, 2, "json");
    let event: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(
        (event["event"].as_str(), event["exit_code"].as_u64()),
        (Some("error"), Some(2))
    );
    // A URL of another scheme, or one short of a slash, is not a file name either.
    for db in [
        "postgress://ob:LeakZ@db/orders",
        "postgresql:/ob:LeakZ@db/orders",
    ] {
        let out = run_with(&env, db, &["init"]);
        assert_code(&out, 2, db);
        assert_one_error_line(&out, &["postgresql://"]);
        assert_hidden(db, &text(&out), &["LeakZ"]);
    }
    assert_eq!(files_under(env.dir.path()), before);
    // A file name with such a word in it is still a file, given as a path.
    let out = run_with(&env, "./dbname=x.db", &["init"]);
    assert_code(&out, 0, "a path");
    assert!(env.exists("dbname=x.db"));
}

/// A server on 127.0.0.1 that answers PostgreSQL's TLS request with
/// `answer` (`S`: yes, then bytes that are no TLS; `N`: no), and closes.
fn fake_tls_server(answer: u8) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut request = [0u8; 8];
            if conn.read_exact(&mut request).is_ok() {
                let _ = conn.write_all(&[answer]);
                if answer == b'S' {
                    let _ = conn.write_all(b"HTTP/1.0 400 this is not TLS\r\n\r\n");
                }
            }
        }
    });
    port
}

#[test]
fn a_tls_failure_says_to_check_sslmode_and_sslrootcert() {
    let env = Env::new();
    let port = fake_tls_server(b'S');
    let db = format!(
        "postgresql://ob:LeakZ@127.0.0.1:{port}/orders?sslmode=verify-full&connect_timeout=5"
    );
    let out = run_with(&env, &db, &["verify"]);
    assert_code(&out, 1, "handshake");
    assert_one_error_line(
        &out,
        &[
            &format!("postgresql://ob@127.0.0.1:{port}/orders?sslmode=verify-full"),
            "TLS",
            "sslmode (here verify-full",
            "sslrootcert",
        ],
    );
    assert_hidden("handshake", &text(&out), &["LeakZ"]);
    let port = fake_tls_server(b'N');
    let db =
        format!("postgresql://ob:LeakZ@127.0.0.1:{port}/orders?sslmode=require&connect_timeout=5");
    let out = run_with(&env, &db, &["verify"]);
    assert_code(&out, 1, "no TLS");
    assert_one_error_line(&out, &["does not offer TLS", "sslmode=prefer"]);
    assert_hidden("no TLS", &text(&out), &["LeakZ"]);
    assert!(files_under(env.dir.path()).is_empty());
}
