//! What an adversarial pass found, each with its fix checked: reports
//! proportional to their input, no writes through planted links, private
//! files, escaped terminal output, errors that say where, a damaged database
//! found, a failed checkpoint reported, leftovers cleaned up, strict dates,
//! no card-number prefix in clear.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};

use common::*;

fn setup(env: &Env, stock: i64) {
    env.write("catalog.csv", catalog(5, stock));
    env.ok(&["inventory", "load", "catalog.csv"], 0);
}

/// The binary with a file-size limit of `bytes` (past it, writes fail with
/// EFBIG instead of killing the process) and a umask.
fn run_limited(env: &Env, bytes: Option<u64>, umask: u32, args: &[&str]) -> Output {
    let mut c = env.spawnable();
    c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(move || {
            libc::umask(umask as libc::mode_t);
            if let Some(b) = bytes {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let lim = libc::rlimit {
                    rlim_cur: b as libc::rlim_t,
                    rlim_max: b as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    c.output().unwrap()
}

fn mode(env: &Env, name: &str) -> u32 {
    std::fs::metadata(env.path(name))
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn a_failed_order_of_4000_lines_gives_a_report_proportional_to_it() {
    let env = Env::new();
    setup(&env, 1);
    let lines: Vec<(usize, u32)> = (0..4000).map(|i| (i % 5, 1)).collect();
    let input = csv_file(&[order_rows("BIG-1", &lines)]);
    env.write("orders.csv", &input);
    env.ok(&["process", "orders.csv"], 3);
    let size = std::fs::metadata(env.path("reports/run-1/failed.csv"))
        .unwrap()
        .len();
    // Was 1.03 GB: every row repeated the whole order's detail.
    assert!(
        size < 2 * input.len() as u64,
        "{size} bytes for {} of input",
        input.len()
    );
    let rows = parse_csv(env.read("reports/run-1/failed.csv").as_bytes());
    assert_eq!(rows.len(), 4000);
    assert!(rows[0]["error_detail"].starts_with("INSUFFICIENT_STOCK: "));
    assert!(rows[1..]
        .iter()
        .all(|r| r["error_detail"].is_empty() && r["error_code"] == "INSUFFICIENT_STOCK"));
    let rebuilt = env.ok(&["report", "failed", "--run", "1"], 0);
    assert_eq!(
        rebuilt.len() as u64,
        size,
        "report failed rebuilds the same"
    );
    env.ok(&["reprocess"], 3);
    let again = std::fs::metadata(env.path("reports/run-2/failed.csv"))
        .unwrap()
        .len();
    assert!(again < 2 * input.len() as u64, "{again}");
}

#[test]
fn an_invalid_line_of_a_big_order_carries_its_problem_on_its_own_row() {
    let env = Env::new();
    setup(&env, 100);
    let mut text = csv_file(&[order_rows("BIG-2", &[(0, 1), (1, 1), (2, 1)])]);
    text = text.replacen(",SKU-1,1,11.00,", ",SKU-1,0,11.00,", 1);
    env.write("orders.csv", &text);
    env.ok(&["process", "orders.csv"], 3);
    let rows = parse_csv(env.read("reports/run-1/failed.csv").as_bytes());
    assert_eq!(rows[0]["error_detail"], "");
    // The row's own problem, without the place the row itself shows.
    assert!(
        rows[1]["error_detail"].starts_with("INVALID_FIELD: quantity \"0\" "),
        "{}",
        rows[1]["error_detail"]
    );
    assert!(!rows[1]["error_detail"].contains("(line"));
    assert!(!rows[1]["error_detail"].contains("PAYMENT"));
    assert_eq!(rows[2]["error_detail"], "");
    // The whole detail names the line once, at the end of its problem.
    let listed: serde_json::Value =
        serde_json::from_str(&env.ok(&["failures", "list", "--json"], 0)).unwrap();
    let detail = listed[0]["error_detail"].as_str().unwrap();
    assert!(
        detail.starts_with("INVALID_FIELD: quantity \"0\" ") && detail.ends_with(" (line 3)"),
        "{detail}"
    );
}

#[test]
fn a_link_planted_at_the_metrics_file_or_its_temporary_name_is_never_followed() {
    let env = Env::new();
    setup(&env, 10);
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
    setup(&env, 10);
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

#[test]
fn files_are_never_readable_by_everyone_whatever_the_umask() {
    for umask in [0o022, 0o000] {
        let env = Env::new();
        env.write("catalog.csv", catalog(5, 10));
        env.write(
            "orders.csv",
            csv_file(&[order_rows("P-1", &[(0, 1)]), order_rows("P-2", &[(9, 1)])]),
        );
        let out = run_limited(
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
    setup(&env, 10);
    let c = env.db();
    c.execute_batch("BEGIN; UPDATE products SET name = name; ")
        .unwrap();
    if env.exists("orderbatch.db-wal") {
        assert_eq!(mode(&env, "orderbatch.db-wal") & 0o007, 0);
    }
    c.execute_batch("ROLLBACK").unwrap();
}

#[test]
fn input_text_echoed_to_the_terminal_has_its_control_characters_escaped() {
    let env = Env::new();
    setup(&env, 10);
    let evil = "order_id,placed_at\x1b]0;owned\x07,\x1b[2Jcustomer_email\n";
    env.write("evil.csv", evil);
    let out = env.run(&["process", "evil.csv"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains('\x1b') && !err.contains('\x07'), "{err:?}");
    assert!(err.contains("\\x1b]0;owned\\x07"), "{err}");
    // A file name with an escape and a newline, in runs list and runs show.
    let name = "in\x1b[31m\nred.csv";
    env.write(name, csv_file(&[order_rows("T-1", &[(0, 1)])]));
    env.ok(&["process", name], 0);
    for args in [&["runs", "list"][..], &["runs", "show", "1"]] {
        let text = env.ok(args, 0);
        assert!(!text.contains('\x1b'), "{args:?}: {text:?}");
        assert!(text.contains("in\\x1b[31m\\nred.csv"), "{text}");
    }
    let list = env.ok(&["runs", "list"], 0);
    assert_eq!(
        list.lines().count(),
        2,
        "the header and one line per run: {list}"
    );
}

#[test]
fn a_report_that_cannot_be_written_names_its_file_and_commits_nothing() {
    let env = Env::new();
    setup(&env, 100_000);
    // Failed orders whose xlsx report (XML, cell by cell) outgrows a file-size
    // limit that the database's growth stays under.
    let orders: Vec<String> = (0..400)
        .map(|i| order_rows(&format!("W-{i}"), &[(9, 1)]))
        .collect();
    env.write("orders.csv", csv_file(&orders));
    // The run's WAL stays far under 128 KiB; the sheet's XML does not.
    let limit = 128 * 1024;
    let out = run_limited(
        &env,
        Some(limit),
        0o022,
        &["process", "orders.csv", "--report-format", "xlsx"],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_one_error_line(
        &out,
        &[
            "cannot write reports/.run-1.partial/failed.xlsx",
            "nothing of this run was committed",
            "File too large",
        ],
    );
    assert_eq!(env.count("SELECT count(*) FROM failed_orders"), 0);
    assert!(env.entries("reports", "").is_empty(), "no report left");
    // A name too long for the file system names itself too.
    let long = format!("{}.prom", "m".repeat(300));
    let out = env.run(&["process", "orders.csv", "--metrics-file", &long]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot write the metrics file") && err.contains(&long[..50]),
        "{err}"
    );
}

#[test]
fn verify_and_init_find_a_database_damaged_in_the_middle() {
    let env = Env::new();
    setup(&env, 10);
    let orders: Vec<String> = (0..3000)
        .map(|i| order_rows(&format!("C-{i}"), &[(i % 5, 1)]))
        .collect();
    env.write("catalog.csv", catalog(5, 100_000));
    env.ok(&["inventory", "load", "catalog.csv"], 0);
    env.write("orders.csv", csv_file(&orders));
    env.ok(&["process", "orders.csv"], 0);
    let path = env.path("orderbatch.db");
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(!env.exists("orderbatch.db-wal"), "checkpointed");
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 4096] {
        *b = 0x5a;
    }
    std::fs::write(&path, bytes).unwrap();
    let out = env.run(&["verify"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("integrity check: ") && err.contains("malformed"),
        "{err}"
    );
    let out = env.run(&["init"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("is damaged"));
}

#[test]
fn a_checkpoint_that_fails_for_room_warns_and_the_next_run_recovers() {
    let env = Env::new();
    env.write("catalog.csv", catalog(5, 1_000_000));
    env.ok(&["inventory", "load", "catalog.csv"], 0);
    // A big database, then a small run: its WAL fits the limit, the database's growth not.
    let many: Vec<String> = (0..20_000)
        .map(|i| order_rows(&format!("A-{i}"), &[(i % 5, 1)]))
        .collect();
    env.write("many.csv", csv_file(&many));
    env.ok(&["process", "many.csv"], 0);
    let size = std::fs::metadata(env.path("orderbatch.db")).unwrap().len();
    let few: Vec<String> = (0..300)
        .map(|i| order_rows(&format!("B-{i}"), &[(i % 5, 1)]))
        .collect();
    env.write("few.csv", csv_file(&few));
    let out = run_limited(&env, Some(size + 16 * 1024), 0o022, &["process", "few.csv"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "the run commits: {err}");
    assert!(
        err.contains("warning") && err.contains("is committed") && err.contains("make room"),
        "{err}"
    );
    assert_eq!(env.count("SELECT count(*) FROM orders"), 20_300);
    // With room again, the next run works and the database holds every order.
    env.write("more.csv", csv_file(&[order_rows("C-1", &[(0, 1)])]));
    env.ok(&["process", "more.csv"], 0);
    assert_eq!(env.integrity(), "ok");
    env.verify_ok();
}

#[test]
fn leftovers_of_killed_runs_are_published_or_removed() {
    let env = Env::new();
    setup(&env, 10);
    env.write("orders.csv", csv_file(&[order_rows("L-1", &[(0, 1)])]));
    env.ok(&["process", "orders.csv"], 0);
    // As a kill between the commit and the rename leaves them: complete, aside.
    std::fs::rename(
        env.path("reports/run-1"),
        env.path("reports/.run-1.partial"),
    )
    .unwrap();
    let started = env.sql("SELECT started_at FROM runs WHERE id = 1")[0].clone();
    env.write(
        "reports/.run-1.partial/.orderbatch-run",
        format!("orderbatch run 1 of orderbatch.db started at {started}\n"),
    );
    // A stale temporary metrics file of a run killed at its rename.
    env.write(".m.prom.tmpXYZ12", "half");
    assert!(Command::new("touch")
        .args(["-d", "2 hours ago"])
        .arg(env.path(".m.prom.tmpXYZ12"))
        .status()
        .unwrap()
        .success());
    env.write("more.csv", csv_file(&[order_rows("L-2", &[(1, 1)])]));
    env.ok(&["process", "more.csv", "--metrics-file", "m.prom"], 0);
    assert!(
        env.exists("reports/run-1/accepted.csv"),
        "published by the next run"
    );
    assert!(!env.exists("reports/run-1/.orderbatch-run"));
    assert!(!env.exists("reports/.run-1.partial"));
    assert!(
        !env.exists(".m.prom.tmpXYZ12"),
        "stale temporary file removed"
    );
    // Another database's partial directory of the same number is left alone.
    env.write(
        "reports/.run-7.partial/.orderbatch-run",
        "orderbatch run 7 of other.db started at x\n",
    );
    env.ok(&["process", "more.csv"], 0);
    assert!(env.exists("reports/.run-7.partial/.orderbatch-run"));
}

#[test]
fn a_database_that_cannot_be_written_says_why_and_leaves_nothing_behind() {
    let env = Env::new();
    setup(&env, 10);
    // What cannot be a database: each named, exit 1, nothing created.
    std::fs::create_dir(env.path("adir")).unwrap();
    env.write("notadb", "hello, this is not a database file, not at all............................................\n");
    for (db, words) in [
        ("adir", "is a directory"),
        ("missing/dir/x.db", "does not exist"),
        ("notadb", "not a SQLite database"),
    ] {
        let out = env.run(&["--db", db, "verify"]);
        assert_eq!(out.status.code(), Some(1), "{db}");
        assert_one_error_line(&out, &[db, words]);
    }
    assert!(!env.exists("notadb-wal") && !env.exists("notadb-shm"));
    // A read-only database, as another user sees it: no -wal or -shm left.
    env.write("orders.csv", csv_file(&[order_rows("RO-1", &[(0, 1)])]));
    if rustix::process::geteuid().is_root() {
        std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::set_permissions(
            env.path("orderbatch.db"),
            std::fs::Permissions::from_mode(0o444),
        )
        .unwrap();
        // That user must reach the binary: a link (or copy) of it beside the
        // database, as the checkout may sit in a directory only its owner enters.
        let bin = env.path("orderbatch-for-nobody");
        if std::fs::hard_link(bin_path(), &bin).is_err() {
            std::fs::copy(bin_path(), &bin).unwrap();
        }
        let out = std::process::Command::new(&bin)
            .current_dir(env.dir.path())
            .env_remove("ORDERBATCH_DB")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .args(["process", "orders.csv"])
            .uid(65534)
            .gid(65534)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("not writable"));
        assert!(!env.exists("orderbatch.db-wal") && !env.exists("orderbatch.db-shm"));
    }
}

#[test]
fn placed_at_follows_the_rfc_3339_grammar_itself() {
    let env = Env::new();
    setup(&env, 100);
    let base = order_rows("R-1", &[(0, 1)]);
    let forms = [
        ("2026-11-25T22:14:03Z", true),
        ("2026-11-25t22:14:03.123z", true),
        ("2026-11-25T23:14:03+01:00", true),
        ("2026-11-25 22:14:03Z", false),
        ("2026-11-25T22:14:03+0100", false),
        ("2026-11-25T22:14Z", false),
        ("2026-11-25T24:00:00Z", false),
        ("2026-02-29T10:00:00Z", false),
        ("+2026-11-25T22:14:03Z", false),
    ];
    let orders: Vec<String> = forms
        .iter()
        .enumerate()
        .map(|(i, (f, _))| {
            base.replace("R-1", &format!("R-{i}"))
                .replace("2026-11-25T22:14:03Z", f)
        })
        .collect();
    env.write("orders.csv", csv_file(&orders));
    env.ok(&["process", "orders.csv"], 3);
    let failed = parse_csv(env.read("reports/run-1/failed.csv").as_bytes());
    for (i, (f, ok)) in forms.iter().enumerate() {
        let id = format!("R-{i}");
        let row = failed.iter().find(|r| r["order_id"] == id);
        assert_eq!(row.is_none(), *ok, "{f}");
        if let Some(r) = row {
            assert_eq!(r["error_code"], "INVALID_FIELD", "{f}");
            assert!(r["error_detail"].contains("RFC 3339"), "{f}");
        }
    }
}

#[test]
fn a_json_line_cut_in_a_card_number_keeps_no_digits_of_it_in_clear() {
    let env = Env::new();
    setup(&env, 10);
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
