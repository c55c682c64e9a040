//! A run commits whole or not at all, whatever comes from outside: a full
//! disk, a report directory or database that cannot be written, a damaged
//! database, a checkpoint without room, a missing metrics directory, SIGKILL
//! at any moment, SIGINT and SIGTERM, a connection lost mid-run; what a
//! killed run leaves is put in place or removed. And `failures close` racing
//! `reprocess` for one failed order: whichever commits first wins, the other
//! changes nothing and says so.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::procs::{poll, signal, spawn, waiting, waiting_in, Kid, PgSession, HANG};
use common::*;

// ------------------------------------------------ disk full, unwritable places, a damaged database

fn file_len(env: &Env, name: &str) -> u64 {
    std::fs::metadata(env.path(name))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// The unit of `ulimit -f` in `sh` on this machine, in bytes (512 in dash, 1024 in bash).
fn ulimit_block(env: &Env) -> u64 {
    let st = std::process::Command::new("sh")
        .current_dir(env.dir.path())
        .args([
            "-c",
            "ulimit -f 1; trap '' XFSZ; head -c 65536 /dev/zero > ulimit.probe 2>/dev/null",
        ])
        .status()
        .unwrap();
    assert!(!st.success(), "writing past the limit must fail");
    let n = file_len(env, "ulimit.probe");
    assert!(n == 512 || n == 1024, "ulimit -f unit: {n} bytes");
    std::fs::remove_file(env.path("ulimit.probe")).unwrap();
    n
}

/// Run the binary with a file-size limit of `blocks` (writes past it fail
/// with EFBIG instead of killing the process).
fn run_limited(env: &Env, blocks: u64, args: &[&str]) -> Output {
    std::process::Command::new("sh")
        .current_dir(env.dir.path())
        .env_remove("ORDERBATCH_DB")
        .arg("-c")
        .arg(format!(
            "ulimit -f {blocks}; trap '' XFSZ; exec \"$0\" \"$@\""
        ))
        .arg(bin_path())
        .args(args)
        .output()
        .unwrap()
}

/// Rows of a query: through the long-lived session where there is one
/// (PostgreSQL: no psql started per query), else as `Env::sql`.
fn rows(env: &Env, session: &mut Option<procs::PgSession>, sql: &str) -> Vec<String> {
    match session {
        Some(s) => s.exec(sql),
        None => env.sql(sql),
    }
}

/// A session for the probes and snapshots of a PostgreSQL env.
fn session(env: &Env) -> Option<procs::PgSession> {
    (env.backend == Backend::Postgres).then(|| procs::PgSession::open(&env.db))
}

/// A run's reports as outcomes: the accepted report as written, the failed
/// report's rows without `failure_id` (a database key), the summary's counts.
#[derive(Debug, PartialEq)]
struct Reports {
    accepted: String,
    failed: Vec<BTreeMap<String, String>>,
    counts: serde_json::Value,
}

fn reports(env: &Env, run: i64) -> Reports {
    let mut failed = parse_csv(&file_bytes(
        &env.path(&format!("reports/run-{run}/failed.csv")),
    ));
    for r in &mut failed {
        r.remove("failure_id");
    }
    let s = summary(env, run);
    Reports {
        accepted: env.read(&format!("reports/run-{run}/accepted.csv")),
        failed,
        counts: summary_counts(&s),
    }
}

#[test]
fn a_full_disk_under_the_database_changes_nothing_and_exits_1() {
    let env = Env::new();
    load_catalog(&env, 100_000);
    assert!(!env.exists("orderbatch.db-wal"), "checkpointed at close");
    let block = ulimit_block(&env);
    // Room for the database, its WAL index (32 KiB) and the run's start, not for its orders.
    let limit = file_len(&env, "orderbatch.db").max(32 * 1024) + 128 * 1024;
    let blocks = limit.div_ceil(block);
    let limit = blocks * block;
    // Orders that weigh much more in the database (10 lines, a long
    // payment_ref) than in the accepted report (one short row each).
    let lines: Vec<(usize, u32)> = (0..10).map(|i| (i % 5, 1)).collect();
    let orders: Vec<String> = (0..1000)
        .map(|i| {
            let id = format!("F-{i}");
            order_rows(&id, &lines).replace(
                &format!("ref-{id},"),
                &format!("{}-{i:06},", "r".repeat(120)),
            )
        })
        .collect();
    env.write("orders.csv", csv_file(&orders));
    let stock = env.stock();
    let count = |t: &str| env.count(&format!("SELECT count(*) FROM {t}"));
    let before = (
        count("orders"),
        count("failed_orders"),
        count("stock_ledger"),
    );

    let out = run_limited(&env, blocks, &["process", "orders.csv"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_one_error_line(&out, &["orderbatch.db"]);
    assert_eq!(env.stock(), stock);
    assert_eq!(
        (
            count("orders"),
            count("failed_orders"),
            count("stock_ledger")
        ),
        before
    );
    assert_eq!(env.integrity(), "ok");
    env.verify_ok();
    assert!(env.entries("reports", "run-").is_empty());
    assert!(
        env.entries("reports", ".run-").is_empty(),
        "partial reports removed"
    );
    assert_eq!(
        env.run_statuses().get(&1).map(String::as_str),
        Some("failed")
    );

    // With room again, the same command does the work once; and it did need
    // more than the limit in the database, while its reports fit.
    env.ok(&["process", "orders.csv"], 0);
    assert_eq!(count("orders"), 1000);
    assert!(stock.iter().all(|(sku, n)| env.stock()[sku] == n - 2000));
    assert!(file_len(&env, "orderbatch.db") > limit);
    for f in ["accepted.csv", "failed.csv", "summary.json"] {
        assert!(file_len(&env, &format!("reports/run-2/{f}")) < limit);
    }
    env.verify_ok();
}

/// Run with a file-size limit of `blocks` (a write past it fails with EFBIG
/// instead of killing the process), against the env's database.
fn run_limited_with_tmpdir(env: &Env, blocks: u64, args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new("sh");
    cmd.current_dir(env.dir.path())
        .env_remove("ORDERBATCH_DB")
        .env("TMPDIR", env.path("tmp"))
        .arg("-c")
        .arg(format!(
            "ulimit -f {blocks}; trap '' XFSZ; exec \"$0\" \"$@\""
        ))
        .arg(bin_path());
    if env.backend == Backend::Postgres {
        cmd.args(["--db", &env.db]);
    }
    std::fs::create_dir_all(env.path("tmp")).unwrap();
    cmd.args(args).output().unwrap()
}

/// A full disk under the accepted report names that file; a full TMPDIR
/// under an xlsx report's temporary file says where and what to do, in
/// words (never an `Os { code: 28, … }`). A dry run of orders with long
/// e-mail addresses: its report rows are long, what it writes to the
/// database short, so the report is what runs into the file-size limit.
#[test]
fn a_full_disk_names_the_report_file_and_a_full_tmpdir_says_so() {
    let email = format!("{}@example.com", "b".repeat(240));
    let dry = ["process", "orders.csv", "--dry-run"];
    let xlsx = [
        "process",
        "orders.csv",
        "--dry-run",
        "--report-format",
        "xlsx",
    ];
    for args in [&dry[..], &xlsx[..]] {
        let env = Env::new();
        load_catalog(&env, 1_000_000);
        env.write(
            "orders.csv",
            numbered_orders(400).replace("buyer@example.com", &email),
        );
        let blocks = (64 << 10) / ulimit_block(&env);
        let out = run_limited_with_tmpdir(&env, blocks, args);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        if args.len() == 3 {
            assert_one_error_line(&out, &["reports/.run-1.partial/accepted.csv", "make room"]);
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("the xlsx writer cannot write its temporary file in")
                    && err.contains("TMPDIR"),
                "{err}"
            );
            assert!(!err.contains("Os {"), "{err}");
        }
        nothing_committed(&env);
    }
}

#[test]
fn a_report_that_cannot_be_written_names_its_file_and_commits_nothing() {
    let env = Env::new();
    load_catalog(&env, 100_000);
    // Failed orders whose xlsx report (XML, cell by cell) outgrows a file-size
    // limit that the database's growth stays under.
    let orders: Vec<String> = (0..400)
        .map(|i| order_rows(&format!("W-{i}"), &[(9, 1)]))
        .collect();
    env.write("orders.csv", csv_file(&orders));
    // The run's WAL stays far under 128 KiB; the sheet's XML does not.
    let limit = 128 * 1024;
    let out = run_with_limits(
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
fn an_out_path_that_is_a_regular_file_exits_1_and_changes_nothing() {
    let env = Env::new();
    load_catalog(&env, 10);
    env.write("orders.csv", csv_file(&[order_rows("A-1", &[(0, 1)])]));
    env.write("afile", "I am a file\n");
    let stock = env.stock();
    for out_dir in ["afile", "afile/sub"] {
        let out = env.run(&["process", "orders.csv", "--out", out_dir]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert_one_error_line(&out, &[out_dir, "--out"]);
        assert_eq!(env.stock(), stock);
        assert_eq!(env.count("SELECT count(*) FROM orders"), 0);
        assert_eq!(
            env.count("SELECT count(*) FROM stock_ledger WHERE run_id IS NOT NULL"),
            0
        );
    }
    assert_eq!(env.read("afile"), "I am a file\n");
    assert!(env
        .run_statuses()
        .values()
        .all(|s| s != "completed" && s != "running"));
    env.verify_ok();
    // The same file with a usable --out: the work is done once.
    env.ok(&["process", "orders.csv"], 0);
    assert_eq!(env.stock()["SKU-0"], 9);
}

#[test]
fn a_database_that_cannot_be_written_says_why_and_leaves_nothing_behind() {
    let env = Env::new();
    load_catalog(&env, 10);
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
fn verify_and_init_find_a_database_damaged_in_the_middle() {
    let env = Env::new();
    load_catalog(&env, 10);
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
    let out = run_with_limits(&env, Some(size + 16 * 1024), 0o022, &["process", "few.csv"]);
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

// ---------------------------------------------------------------- metrics file

/// Every `reports/run-N` directory belongs to a completed run.
fn assert_reports_only_for_completed_runs(env: &Env) {
    let status = env.run_statuses();
    for name in env.entries("reports", "run-") {
        let id: i64 = name["run-".len()..]
            .parse()
            .unwrap_or_else(|_| panic!("unexpected report directory {name}"));
        assert_eq!(
            status.get(&id).map(String::as_str),
            Some("completed"),
            "reports/{name} exists for a run that did not complete: {status:?}"
        );
    }
}

/// A Prometheus text file: every sample line is `name{labels} number`.
fn assert_metrics_parse(text: &str) {
    let mut samples = 0;
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line:?}"));
        assert!(value.parse::<f64>().is_ok(), "value of {line:?}");
        let name = match series.split_once('{') {
            Some((name, labels)) => {
                assert!(labels.ends_with('}') && !labels[..labels.len() - 1].contains('}'));
                name
            }
            None => series,
        };
        assert!(
            !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "metric name in {line:?}"
        );
        samples += 1;
    }
    assert!(samples > 0, "no samples in {text:?}");
}

fn metrics_in_a_missing_directory(env: &Env) -> (Output, BTreeMap<String, i64>) {
    load_catalog(env, 10);
    env.write("orders.csv", csv_file(&[order_rows("A-1", &[(0, 1)])]));
    let out = env.run(&["process", "orders.csv", "--metrics-file", "nodir/m.prom"]);
    assert_no_panic(&out);
    (out, catalog_stock(10))
}

fn catalog_stock(n: i64) -> BTreeMap<String, i64> {
    (0..5).map(|i| (format!("SKU-{i}"), n)).collect()
}

/// `PRAGMA integrity_check` on SQLite (the server keeps PostgreSQL's own
/// pages), and `verify` on both.
fn sound(env: &Env, tag: &str) {
    if env.backend == Backend::Sqlite {
        assert_eq!(env.integrity(), "ok", "{tag}");
    }
    env.verify_ok();
}

/// What holds whichever way the program treats the missing directory (today:
/// exit 1 after the commit, see the ignored test below): one line naming the
/// metrics file, a sound ledger, stock and orders that agree, and a re-run
/// that does the work exactly once.
#[test]
fn a_metrics_file_in_a_missing_directory_is_named_and_a_rerun_is_exact() {
    let env = Env::new();
    let (out, start) = metrics_in_a_missing_directory(&env);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.lines()
            .filter(|l| l.contains("nodir/m.prom") && l.contains("metrics"))
            .count(),
        1,
        "one line names the metrics file: {err}"
    );
    env.verify_ok();
    let orders = env.count("SELECT count(*) FROM orders");
    let stock = env.stock();
    if orders == 0 {
        assert_eq!(stock, start);
    } else {
        assert_eq!(orders, 1);
        assert_eq!(stock["SKU-0"], 9);
    }
    assert_reports_only_for_completed_runs(&env);
    assert!(!env.exists("nodir"));

    env.ok(&["process", "orders.csv", "--metrics-file", "m.prom"], 0);
    assert_eq!(env.stock()["SKU-0"], 9, "applied exactly once");
    assert_metrics_parse(&env.read("m.prom"));
    env.verify_ok();
}

/// The metrics are written after the commit (pipeline.rs, `emit` after
/// `store.commit()`): the failure then discards the reports, marks the
/// committed run `failed` and exits 1, although the run's orders and stock
/// changes are committed. Exit 1 promises "nothing of the run committed".
#[test]
fn a_metrics_file_in_a_missing_directory_does_not_contradict_the_database() {
    let env = Env::new();
    let (out, start) = metrics_in_a_missing_directory(&env);
    let orders = env.count("SELECT count(*) FROM orders");
    let status = env.run_statuses().get(&1).cloned();
    match out.status.code() {
        // Refused up front, or stopped before the commit: nothing of the run.
        Some(1 | 2) => {
            assert_eq!(
                orders, 0,
                "exit 1/2 means nothing committed; status {status:?}"
            );
            assert_eq!(env.stock(), start);
        }
        // Committed, with the metrics problem a warning.
        Some(0) => {
            assert_eq!(orders, 1);
            assert_eq!(status.as_deref(), Some("completed"));
            assert!(env.exists("reports/run-1/accepted.csv"));
        }
        other => panic!("exit {other:?}: {out:?}"),
    }
}

// ---------------------------------------------------------------- SIGKILL

/// What the database holds, as far as a run changes it, without the keys
/// and times that differ between two runs doing the same work: each row
/// names the status of the run that wrote it instead of its id.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot {
    products: Vec<String>,
    orders: Vec<String>,
    failures: Vec<String>,
    ledger: Vec<String>,
    skips: Vec<String>,
}

fn snapshot(env: &Env, session: &mut Option<procs::PgSession>) -> Snapshot {
    let mut q = |sql: &str| rows(env, session, sql);
    Snapshot {
        products: q("SELECT sku, name, unit_price, currency, on_hand FROM products ORDER BY sku"),
        orders: q(
            "SELECT o.order_id, o.content_hash, o.run_seq, o.source_file, o.source_line, o.placed_at,
                    o.customer_email, o.currency, o.payment_method, o.payment_ref, o.payment_amount,
                    o.total, o.lines, o.units, o.items, r.status
             FROM orders o LEFT JOIN runs r ON r.id = o.run_id ORDER BY o.order_id",
        ),
        failures: q(
            "SELECT f.order_id, f.run_seq, f.error_code, f.error_detail, f.source_file, f.source_line,
                    f.body, f.state, r.status
             FROM failed_orders f LEFT JOIN runs r ON r.id = f.run_id ORDER BY f.run_id, f.run_seq, f.id",
        ),
        ledger: q(
            "SELECT l.sku, l.reason, l.delta, l.source, r.status
             FROM stock_ledger l LEFT JOIN runs r ON r.id = l.run_id ORDER BY l.sku, l.reason, l.delta",
        ),
        skips: q(
            "SELECT s.order_id, s.run_seq, s.source_file, s.source_line, r.status
             FROM run_skips s LEFT JOIN runs r ON r.id = s.run_id ORDER BY s.run_id, s.run_seq",
        ),
    }
}

/// The run's input comes on standard input, so that the test decides how
/// much of it the run has seen: a run that has not read to the end cannot
/// have committed.
const KILL_ARGS: [&str; 8] = [
    "--lock-timeout",
    "120",
    "process",
    "-",
    "--format",
    "csv",
    "--metrics-file",
    "m.prom",
];

fn kill_env(backend: Backend, stock: i64) -> Env {
    let env = Env::with(backend);
    load_catalog(&env, stock);
    env
}

fn spawn_run(env: &Env, tag: &str) -> procs::Kid {
    let mut cmd = env.spawnable();
    cmd.args(KILL_ARGS)
        .stdin(std::process::Stdio::piped())
        .stderr(std::fs::File::create(env.path(&format!("stderr-{tag}.txt"))).unwrap());
    procs::Kid::spawn(&mut cmd, &format!("orderbatch {KILL_ARGS:?} ({tag})"))
}

/// The command run to its end with the whole input; its exit code and how long it took.
fn run_fed(env: &Env, input: &Arc<Vec<u8>>, tag: &str) -> (Option<i32>, Duration) {
    let t = Instant::now();
    let mut kid = spawn_run(env, tag);
    let feeder = procs::Feeder::start(kid.take_stdin(), Arc::clone(input), input.len(), true);
    let status = kid.wait(procs::HANG);
    let took = t.elapsed();
    // A run that stopped early fails on its exit code, not on its input.
    feeder.abandon();
    let err = std::fs::read_to_string(env.path(&format!("stderr-{tag}.txt"))).unwrap_or_default();
    assert!(
        !err.contains("panicked") && !err.contains("internal error"),
        "{tag}: {err}"
    );
    (status.code(), took)
}

/// The id and `runs list --json` status of every run.
fn listed_runs(env: &Env) -> BTreeMap<i64, String> {
    let list: serde_json::Value =
        serde_json::from_str(&env.ok(&["runs", "list", "--json"], 0)).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_i64().unwrap(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The uninterrupted run, on a database of its own.
/// Only completed runs have their reports in place, and run 1's are
/// exactly those of the uninterrupted run.
fn assert_published_reports_are_whole(env: &Env, whole: &Reports, tag: &str) {
    assert_reports_only_for_completed_runs(env);
    if env.exists("reports/run-1") {
        assert_eq!(&reports(env, 1), whole, "{tag}: reports never half written");
    }
}

struct Baseline {
    duration: Duration,
    code: Option<i32>,
    after: Snapshot,
    reports: Reports,
}

/// A setting of the kill test from the environment, for bigger runs than
/// CI's (the orders of the run, and how many of the kills land at moments
/// spread over its duration):
/// `ORDERBATCH_KILL_ORDERS=200000 ORDERBATCH_KILL_POINTS=20 cargo test --release --test faults sigkill`.
fn kill_setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Where a kill lands.
#[derive(Debug, Clone, Copy)]
enum Point {
    /// The header given, the pipe left open: as soon as the run's history
    /// row is there (while it sets up its reports).
    Started,
    /// This many bytes of the input given, the pipe left open: the run is
    /// under way (its partial report directory made) and cannot have committed.
    Fed(usize),
    /// PostgreSQL: another session holds a stock row the run needs; the run
    /// waits for it inside its transaction.
    StockHeld,
    /// PostgreSQL: another session holds, uncommitted, the id of an order
    /// in the middle of the input; the run waits for it inside its
    /// transaction, its earlier orders claimed.
    ClaimHeld(usize),
    /// PostgreSQL: inside the run's locked section (its stock rows held):
    /// another session holds the run's history row, which the run completes
    /// just before its commit.
    Locked,
    /// As soon as the run's commit is visible.
    Committed,
    /// After this long, the whole input given at once: anywhere.
    After(Duration),
}

/// What a kill left: exactly the database before the run, or exactly the one after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Left {
    Before,
    After,
}

/// One kill at `point` on a fresh database; every check on what it left and
/// on the same command run again. Returns what it left, the killed run's
/// status in `runs list` (None: killed before it had a history row), and
/// how long the run again took.
fn kill_at(
    backend: Backend,
    stock: i64,
    input: &Arc<Vec<u8>>,
    base: &Baseline,
    point: Point,
    tag: &str,
) -> (Left, Option<String>, Duration) {
    let env = kill_env(backend, stock);
    let mut probe = session(&env);
    let before = snapshot(&env, &mut probe);
    let mut gate = match point {
        Point::StockHeld | Point::ClaimHeld(_) | Point::Locked => {
            Some(procs::PgSession::open(&env.db))
        }
        _ => None,
    };
    let history = |probe: &mut Option<procs::PgSession>| {
        rows(&env, probe, "SELECT id, status FROM runs ORDER BY id")
    };

    let mut kid = spawn_run(&env, tag);
    let stdin = kid.take_stdin();
    let all = input.len();
    let marker = || std::fs::read_to_string(env.path("reports/.run-1.partial/.orderbatch-run"));
    match point {
        Point::Started | Point::Fed(_) => {
            let n = match point {
                Point::Fed(n) => n,
                _ => HEADER.len() + 1,
            };
            let open = procs::Feeder::start(stdin, Arc::clone(input), n, false).finish();
            procs::poll("the run's history row", || {
                (!history(&mut probe).is_empty()).then_some(())
            });
            if let Point::Fed(_) = point {
                procs::poll("the run's partial report directory", || {
                    marker().ok().filter(|m| m.ends_with('\n'))
                });
            }
            kid.kill();
            drop(open);
        }
        Point::StockHeld | Point::ClaimHeld(_) => {
            let (sql, stmt) = match point {
                Point::ClaimHeld(i) => (
                    format!(
                        "BEGIN; INSERT INTO orders (order_id, content_hash, run_id, run_seq, source_file,
                         source_line, placed_at, customer_email, currency, payment_method, payment_ref,
                         payment_amount, total, lines, units, items)
                         VALUES ('K-{i}', '\\x00'::bytea, 0, 0, 'held', 0, 'x', 'x', 'EUR', 'card', 'x', 0, 0, 1, 1, '[]');"
                    ),
                    "INSERT INTO orders",
                ),
                _ => (
                    "BEGIN; SELECT on_hand FROM products WHERE sku = 'SKU-3' FOR UPDATE;".to_string(),
                    "FROM products",
                ),
            };
            let gate = gate.as_mut().unwrap();
            gate.exec(&sql);
            let feeder = procs::Feeder::start(stdin, Arc::clone(input), all, true);
            let p = probe.as_mut().unwrap();
            procs::poll(&format!("the run to wait in {stmt}"), || {
                (waiting_in(p, stmt) > 0).then_some(())
            });
            kid.kill();
            feeder.abandon();
            // The server ends the killed run's session only once the lock it
            // waits for is free and it answers the dead client.
            gate.exec("ROLLBACK;");
        }
        Point::Locked => {
            // All the input but its end, so that the run cannot get far
            // before its history row is held.
            let open = procs::Feeder::start(stdin, Arc::clone(input), all, false).finish();
            procs::poll("the run's history row", || {
                (!history(&mut probe).is_empty()).then_some(())
            });
            let gate = gate.as_mut().unwrap();
            // NO KEY: the run's records may still refer to the row.
            gate.exec("BEGIN; SELECT id FROM runs WHERE id = 1 FOR NO KEY UPDATE;");
            drop(open);
            let p = probe.as_mut().unwrap();
            procs::poll("the run to wait in its locked section", || {
                (waiting_in(p, "UPDATE runs") > 0).then_some(())
            });
            let held = p.exec(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                 WHERE a.application_name = 'orderbatch' AND a.datname = current_database()
                   AND l.relation = 'products'::regclass AND l.mode = 'RowShareLock' AND l.granted",
            );
            assert_eq!(held, ["1"], "the run holds its stock rows while it waits");
            kid.kill();
            gate.exec("ROLLBACK;");
        }
        Point::Committed => {
            let feeder = procs::Feeder::start(stdin, Arc::clone(input), all, true);
            procs::poll("the run's commit", || {
                history(&mut probe)
                    .iter()
                    .any(|r| r.ends_with("|completed"))
                    .then_some(())
            });
            kid.kill();
            feeder.abandon();
        }
        Point::After(d) => {
            let feeder = procs::Feeder::start(stdin, Arc::clone(input), all, true);
            std::thread::sleep(d);
            kid.kill();
            feeder.abandon();
        }
    }
    drop(gate);
    if let Some(p) = probe.as_mut() {
        procs::wait_backends_gone(p);
    }

    // Exactly before or exactly after, a sound database and ledger.
    sound(&env, tag);
    let now = snapshot(&env, &mut probe);
    let left = if now == before {
        Left::Before
    } else {
        assert_eq!(
            now, base.after,
            "{tag}: neither as before the run nor as after it"
        );
        Left::After
    };
    let expected = match point {
        Point::Started | Point::Fed(_) | Point::StockHeld | Point::ClaimHeld(_) | Point::Locked => {
            Some(Left::Before)
        }
        Point::Committed => Some(Left::After),
        Point::After(_) => None,
    };
    if let Some(e) = expected {
        assert_eq!(left, e, "{tag}");
    }
    // The killed run's history: interrupted, or completed when it committed.
    let listed = listed_runs(&env);
    assert!(listed.len() <= 1, "{tag}: {listed:?}");
    let status = listed.get(&1).cloned();
    match (left, status.as_deref()) {
        (Left::After, Some("completed")) | (Left::Before, Some("interrupted")) => {}
        // Killed before it had a history row: only a kill at a random moment.
        (Left::Before, None) if expected.is_none() => {}
        other => panic!("{tag}: left {other:?} in runs list {listed:?}"),
    }
    assert_published_reports_are_whole(&env, &base.reports, tag);
    if env.exists("m.prom") {
        assert_metrics_parse(&env.read("m.prom"));
    }
    let partial = env
        .exists("reports/.run-1.partial")
        .then(|| marker().map_err(|e| e.kind()));

    // The same command again finishes the work exactly once.
    let (code, took) = run_fed(&env, input, &format!("{tag}-again"));
    assert_eq!(code, base.code, "{tag}: re-run");
    let again = snapshot(&env, &mut probe);
    let last = *listed_runs(&env).keys().max().unwrap();
    match left {
        Left::Before => {
            assert_eq!(
                again, base.after,
                "{tag}: re-run after a kill before the commit"
            );
            assert_eq!(reports(&env, last), base.reports, "{tag}: re-run's reports");
            // The killed run's partial reports are gone with it.
            assert!(
                env.entries("reports", ".run-").is_empty(),
                "{tag}: partial reports left by the killed run and not removed by the next: {:?} \
                 (its marker right after the kill: {partial:?})",
                env.entries("reports", ".run-")
            );
        }
        Left::After => {
            // Nothing applied twice: stock, orders and ledger as after the one run...
            assert_eq!(
                (&again.products, &again.orders, &again.ledger),
                (&base.after.products, &base.after.orders, &base.after.ledger),
                "{tag}: re-run after a kill after the commit"
            );
            // ... and every order it accepted is skipped now.
            let first: BTreeMap<String, String> = parse_csv(base.reports.accepted.as_bytes())
                .into_iter()
                .map(|r| (r["order_id"].clone(), r["status"].clone()))
                .collect();
            let now = accepted_report(&env, last);
            assert_eq!(
                now.keys().collect::<Vec<_>>(),
                first.keys().collect::<Vec<_>>()
            );
            assert!(now.values().all(|s| s == "skipped"), "{tag}");
            // The killed run's reports, wherever the kill left its files.
            assert_eq!(
                env.ok(&["report", "accepted", "--run", "1"], 0),
                base.reports.accepted,
                "{tag}: the committed run's report from the database"
            );
        }
    }
    assert_published_reports_are_whole(&env, &base.reports, tag);
    assert_metrics_parse(&env.read("m.prom"));
    sound(&env, tag);
    (left, status, took)
}

/// SIGKILL at points spread over a run's life, each on a fresh database:
/// while its input is still coming (so certainly before its commit), while
/// it waits for a lock inside its transaction (PostgreSQL), just after its
/// commit, and at moments spread over the uninterrupted run's duration.
fn sigkill_at_points(backend: Backend) {
    let n = kill_setting("ORDERBATCH_KILL_ORDERS", 4_000);
    // Five skus, two units an order on average: stock for about five in eight orders.
    let stock = (n / 4) as i64;
    let orders: Vec<String> = (0..n)
        .map(|i| order_rows(&format!("K-{i}"), &[(i % 5, (i % 3 + 1) as u32)]))
        .collect();
    let input = Arc::new(csv_file(&orders).into_bytes());

    let base = {
        let env = kill_env(backend, stock);
        let mut probe = session(&env);
        let start = snapshot(&env, &mut probe);
        let (code, duration) = run_fed(&env, &input, "reference");
        assert_eq!(code, Some(3), "stock is tight on purpose");
        let b = Baseline {
            duration,
            code,
            after: snapshot(&env, &mut probe),
            reports: reports(&env, 1),
        };
        assert_ne!(b.after.products, start.products);
        let applied = b.after.orders.len();
        assert!(
            applied > 0 && applied < n,
            "{applied} of {n} orders accepted"
        );
        assert_metrics_parse(&env.read("m.prom"));
        b
    };

    let all = input.len();
    let mut points = vec![
        Point::Started,
        Point::Fed(all / 4),
        Point::Fed(all / 2),
        Point::Fed(all * 3 / 4),
        Point::Fed(all - 1),
        Point::Committed,
    ];
    if backend == Backend::Postgres {
        points.push(Point::StockHeld);
        points.push(Point::ClaimHeld(n * 3 / 5));
        points.push(Point::Locked);
    }

    let mut seen = Vec::new();
    let mut took = vec![base.duration];
    let kill = |point: Point, seen: &mut Vec<_>| {
        let tag = format!("kill {} {point:?} on {backend:?}", seen.len());
        let (left, status, t) = kill_at(backend, stock, &input, &base, point, &tag);
        seen.push((point, left, status));
        t
    };
    for point in points {
        took.push(kill(point, &mut seen));
    }
    // Moments spread over a whole run, as long as the runs take on this
    // machine now (the median of those so far).
    took.sort();
    let life = took[took.len() / 2];
    let timed = kill_setting("ORDERBATCH_KILL_POINTS", 5).max(2) as u32;
    for k in 0..timed {
        kill(Point::After(life * k / (timed - 1)), &mut seen);
    }
    // Kills landed mid-run (its history row written, nothing of it
    // committed) and after its commit, not only before it started.
    assert!(
        seen.iter()
            .any(|(_, l, s)| *l == Left::Before && s.as_deref() == Some("interrupted")),
        "{seen:?}"
    );
    assert!(seen.iter().any(|(_, l, _)| *l == Left::After), "{seen:?}");
    eprintln!(
        "{backend:?}: run of {n} orders: {:?} uninterrupted, {life:?} median; \
         kills (point, left, status): {seen:?}",
        base.duration
    );
}

#[test]
fn sigkill_at_any_moment_leaves_the_database_as_before_or_as_after() {
    sigkill_at_points(Backend::Sqlite);
}

#[test]
fn sigkill_at_any_moment_on_postgres_leaves_the_database_as_before_or_as_after() {
    if pg::skip_requested() {
        eprintln!("!!! ORDERBATCH_SKIP_PG=1: this PostgreSQL test is SKIPPED");
        return;
    }
    sigkill_at_points(Backend::Postgres);
}

// ------------------------------- after a kill: lost reports, leftovers, runs whose process is gone

#[test]
fn reports_lost_after_the_commit_come_back_from_the_database_and_a_rerun_skips_all() {
    let env = Env::new();
    load_catalog(&env, 50);
    let orders: Vec<String> = (0..40usize)
        .map(|i| order_rows(&format!("R-{i}"), &[(i % 5, 1), ((i + 1) % 5, 2)]))
        .collect();
    env.write("orders.csv", csv_file(&orders));
    env.ok(&["process", "orders.csv"], 0);
    let accepted = env.read("reports/run-1/accepted.csv");
    let failed = env.read("reports/run-1/failed.csv");
    let stock = env.stock();
    // The state a kill between the commit and the rename leaves behind.
    std::fs::remove_dir_all(env.path("reports/run-1")).unwrap();

    assert_eq!(env.ok(&["report", "accepted", "--run", "1"], 0), accepted);
    assert_eq!(env.ok(&["report", "failed", "--run", "1"], 0), failed);

    env.ok(&["process", "orders.csv"], 0);
    let s = summary(&env, 2);
    assert_eq!(
        (
            s["orders"].as_u64(),
            s["skipped"].as_u64(),
            s["accepted"].as_u64()
        ),
        (Some(40), Some(40), Some(0))
    );
    let ids = accepted_report(&env, 2);
    assert_eq!(ids.len(), 40);
    assert!(ids.values().all(|s| s == "skipped"));
    assert_eq!(env.stock(), stock);
    assert!(!env.exists("reports/run-1"));
    env.verify_ok();
}

#[test]
fn leftovers_of_killed_runs_are_published_or_removed() {
    let env = Env::new();
    load_catalog(&env, 10);
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
fn a_run_whose_process_is_gone_is_marked_interrupted_and_its_partial_reports_removed() {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 10);
        // What a run killed mid-way leaves: a 'running' row (of a process
        // that is gone, on this host) and a partial report directory.
        env.sql(&format!(
            "INSERT INTO runs (id, command, status, started_at, pid, host) VALUES (1, 'process', 'running', 'x', {}, '{}')",
            u32::MAX,
            host.trim()
        ));
        if b == Backend::Postgres {
            // On PostgreSQL the run took its id from the sequence.
            env.sql("SELECT setval('runs_id_seq', 1)");
        }
        env.write("reports/.run-1.partial/accepted.csv", "half");
        // A run names its database and start in its partial directory.
        env.write(
            "reports/.run-1.partial/.orderbatch-run",
            format!("orderbatch run 1 of {} started at x\n", env.db),
        );
        env.write("orders.csv", csv_file(&[order_rows("A-1", &[(0, 1)])]));
        env.ok(&["process", "orders.csv"], 0);
        let list = json(&env.ok(&["runs", "list", "--json"], 0));
        assert_eq!(list[1]["id"], 1, "{b:?}: {list}");
        assert_eq!(list[1]["status"], "interrupted", "{b:?}: {list}");
        assert_eq!(list[0]["id"], 2, "{b:?}: {list}");
        assert_eq!(list[0]["status"], "completed", "{b:?}: {list}");
        assert!(!env.exists("reports/.run-1.partial"), "{b:?}");
        assert!(env.exists("reports/run-2/accepted.csv"), "{b:?}");
    }
}

// ---------------------------------------------------------------- signals and a lost connection

/// SIGINT as soon as a run's commit is visible: the line says the run
/// committed (never "nothing was committed"), the process finishes what is
/// left (its reports in place, the metrics file) and then ends by SIGINT.
#[test]
fn sigint_right_after_the_commit_says_so_and_puts_the_reports_in_place() {
    use std::os::unix::process::ExitStatusExt;
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 100_000);
        let orders: Vec<String> = (0..3_000usize)
            .map(|i| order_rows(&format!("C-{i}"), &[(i % 5, 1)]))
            .collect();
        let input = Arc::new(csv_file(&orders).into_bytes());
        let mut probe = session(&env);
        let mut kid = spawn_run(&env, "sigint");
        let feeder = procs::Feeder::start(kid.take_stdin(), Arc::clone(&input), input.len(), true);
        procs::poll("the run's commit", || {
            rows(&env, &mut probe, "SELECT status FROM runs WHERE id = 1")
                .iter()
                .any(|s| s == "completed")
                .then_some(())
        });
        signal(&kid, libc::SIGINT);
        let status = kid.wait(procs::HANG);
        feeder.abandon();
        let said = env.read("stderr-sigint.txt");
        assert!(
            !said.contains("nothing of run 1 was committed"),
            "{b:?}: {said}"
        );
        if status.signal() == Some(libc::SIGINT) {
            assert!(
                said.contains("interrupted after run 1 committed: putting its reports in place"),
                "{b:?}: {said}"
            );
        } else {
            // The signal came after the process had ended on its own.
            assert_eq!(status.code(), Some(0), "{b:?}: {said}");
        }
        assert_eq!(
            env.read("reports/run-1/accepted.csv"),
            env.ok(&["report", "accepted", "--run", "1"], 0),
            "{b:?}: the reports are in place"
        );
        assert_metrics_parse(&env.read("m.prom"));
        assert!(env
            .read("m.prom")
            .contains("orderbatch_last_run_orders{status=\"accepted\"} 3000"));
    }
}

/// SIGTERM (a service manager stopping the job) mid-run: one line saying
/// nothing was committed, and the process ends by SIGTERM (exit 143 in a shell).
#[test]
fn sigterm_mid_run_says_nothing_was_committed_and_ends_by_sigterm() {
    use std::os::unix::process::ExitStatusExt;
    let env = Env::new();
    load_catalog(&env, 100);
    let input = Arc::new(csv_file(&[order_rows("T-1", &[(0, 1)])]).into_bytes());
    let mut kid = spawn_run(&env, "sigterm");
    // The header only, the pipe left open: the run has started and waits for more.
    let open = procs::Feeder::start(
        kid.take_stdin(),
        Arc::clone(&input),
        HEADER.len() + 1,
        false,
    )
    .finish();
    // Its partial report directory made: the run knows its number.
    procs::poll("the run's partial report directory", || {
        std::fs::read_to_string(env.path("reports/.run-1.partial/.orderbatch-run"))
            .ok()
            .filter(|m| m.ends_with('\n'))
    });
    signal(&kid, libc::SIGTERM);
    let status = kid.wait(procs::HANG);
    drop(open);
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    let said = env.read("stderr-sigterm.txt");
    assert!(
        said.contains("interrupted: nothing of run 1 was committed; run the same command again"),
        "{said}"
    );
}

/// The server ends the run's session while the run waits inside its
/// transaction: the message says the connection was lost (not that the
/// database cannot be opened), nothing is committed, a re-run is exact.
#[test]
fn a_connection_lost_mid_run_is_said_as_such() {
    if pg::skip_requested() {
        eprintln!("!!! ORDERBATCH_SKIP_PG=1: this PostgreSQL test is SKIPPED");
        return;
    }
    let env = env_for(Backend::Postgres);
    load_catalog(&env, 1_000_000);
    env.write("orders.csv", numbered_orders(50));
    let mut gate = procs::PgSession::open(&env.db);
    gate.exec("BEGIN; SELECT on_hand FROM products WHERE sku = 'SKU-0' FOR UPDATE;");
    let mut probe = procs::PgSession::open(&env.db);
    let mut cmd = env.spawnable();
    cmd.args(["process", "orders.csv"])
        .stderr(std::process::Stdio::piped());
    let mut kid = procs::Kid::spawn(&mut cmd, "process");
    let pid = procs::poll("the run to wait for its stock", || {
        probe
            .exec(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()
                 AND application_name = 'orderbatch' AND wait_event_type = 'Lock'",
            )
            .first()
            .cloned()
    });
    probe.exec(&format!("SELECT pg_terminate_backend({pid});"));
    let status = kid.wait(procs::HANG);
    gate.exec("ROLLBACK;");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut kid.take_stderr(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("the connection to the database") && err.contains("was lost"),
        "{err}"
    );
    assert!(!err.contains("cannot open"), "{err}");
    nothing_committed(&env);
    env.ok(&["process", "orders.csv"], 0);
    assert_eq!(env.count("SELECT count(*) FROM orders"), 50);
}

// ---------------------------------------------------------------- failures close racing reprocess

/// A database with one open INSUFFICIENT_STOCK failure, F1-1 (order R-1,
/// two units of SKU-0), and SKU-0 restocked to 10 since.
fn one_open_failure(backend: Backend) -> Env {
    let env = env_for(backend);
    env.write("catalog.csv", catalog(1, 0));
    env.ok(&["inventory", "load", "catalog.csv"], 0);
    env.write("orders.csv", csv_file(&[order_rows("R-1", &[(0, 2)])]));
    env.ok(&["process", "orders.csv"], 3);
    env.write("delivery.csv", "sku,quantity\nSKU-0,10\n");
    env.ok(&["inventory", "receive", "delivery.csv"], 0);
    assert_eq!(failure_state(&env), "open");
    env
}

fn failure_state(env: &Env) -> String {
    env.sql("SELECT state FROM failed_orders WHERE run_id = 1 AND run_seq = 1")
        .concat()
}

fn applied(env: &Env) -> i64 {
    env.count("SELECT count(*) FROM orders WHERE order_id = 'R-1'")
}

fn close_args() -> [&'static str; 5] {
    ["failures", "close", "F1-1", "--reason", "customer refunded"]
}

/// One after the other, on every backend: a reprocess after a close retries
/// nothing; a close after the reprocess that resolved the failure closes
/// nothing and exits 2, naming the failure and its state.
#[test]
fn close_then_reprocess_and_reprocess_then_close_in_turn() {
    for b in backends() {
        let env = one_open_failure(b);
        let out = env.ok(&close_args(), 0);
        assert!(out.is_empty(), "{b:?}: {out}");
        let summary = json(&env.ok(&["reprocess", "--json"], 0));
        assert_eq!(summary["orders"], 0, "{b:?}: {summary}");
        assert_eq!((failure_state(&env), applied(&env)), ("closed".into(), 0));
        assert_eq!(env.stock()["SKU-0"], 10, "{b:?}");

        let env = one_open_failure(b);
        let summary = json(&env.ok(&["reprocess", "--json"], 0));
        assert_eq!(summary["accepted"], 1, "{b:?}: {summary}");
        let out = env.run(&close_args());
        assert_eq!(out.status.code(), Some(2), "{b:?}: {out:?}");
        assert_one_error_line(&out, &["nothing was closed", "F1-1 is resolved"]);
        assert_eq!((failure_state(&env), applied(&env)), ("resolved".into(), 1));
        assert_eq!(env.stock()["SKU-0"], 8, "{b:?}");
        env.verify_ok();
    }
}

/// The stderr of a child that has ended.
fn stderr_of(kid: &mut Kid) -> String {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut kid.take_stderr(), &mut text).unwrap();
    text
}

/// The close commits while a reprocess that already read F1-1 as open waits
/// to hold it: the reprocess then sees it closed, does not retry it (no
/// order, no stock taken) and says so; the close reports success.
#[test]
fn a_close_that_commits_first_wins_over_a_waiting_reprocess_on_postgres() {
    if pg::skip_requested() {
        eprintln!("!!! ORDERBATCH_SKIP_PG=1: this PostgreSQL test is SKIPPED");
        return;
    }
    let env = one_open_failure(Backend::Postgres);
    // Another session holds F1-1, so the close waits first in line for it,
    // then the reprocess (which reads it as open) waits behind the close.
    let mut gate = PgSession::open(&env.db);
    gate.exec(
        "BEGIN; SELECT state FROM failed_orders WHERE run_id = 1 AND run_seq = 1 FOR UPDATE;",
    );
    let mut probe = PgSession::open(&env.db);
    let mut close = spawn(&env, &close_args(), "failures close");
    poll("the close to wait for F1-1", || {
        (waiting(&mut probe) == 1).then_some(())
    });
    let mut reprocess = spawn(&env, &["reprocess", "--json"], "reprocess");
    poll("the reprocess to wait for F1-1 behind the close", || {
        (waiting(&mut probe) == 2).then_some(())
    });
    gate.exec("ROLLBACK;");
    assert_eq!(close.wait(HANG).code(), Some(0));
    assert_eq!(reprocess.wait(HANG).code(), Some(0));
    let said = stderr_of(&mut reprocess);
    assert!(
        said.contains("1 failed orders were not retried: 1 closed by `failures close`")
            && said.contains("F1-1"),
        "{said}"
    );
    assert_eq!((failure_state(&env), applied(&env)), ("closed".into(), 0));
    assert_eq!(
        env.stock()["SKU-0"],
        10,
        "no unit of a closed order is shipped"
    );
    env.verify_ok();
}

/// The reprocess holds F1-1 (it will resolve it) when the close comes: the
/// close waits for its commit, then finds F1-1 resolved, closes nothing and
/// exits 2.
#[test]
fn a_reprocess_holding_the_failure_wins_over_a_close_on_postgres() {
    if pg::skip_requested() {
        eprintln!("!!! ORDERBATCH_SKIP_PG=1: this PostgreSQL test is SKIPPED");
        return;
    }
    let env = one_open_failure(Backend::Postgres);
    // Another session keeps new orders out, so the reprocess waits to store
    // R-1 after it has taken hold of F1-1.
    let mut gate = PgSession::open(&env.db);
    gate.exec("BEGIN; LOCK TABLE orders IN EXCLUSIVE MODE;");
    let mut probe = PgSession::open(&env.db);
    let mut reprocess = spawn(&env, &["reprocess", "--json"], "reprocess");
    poll("the reprocess to wait to store its order", || {
        (waiting(&mut probe) == 1).then_some(())
    });
    let mut close = spawn(&env, &close_args(), "failures close");
    poll("the close to wait for the reprocess", || {
        (waiting(&mut probe) == 2).then_some(())
    });
    gate.exec("ROLLBACK;");
    assert_eq!(reprocess.wait(HANG).code(), Some(0));
    assert_eq!(close.wait(HANG).code(), Some(2));
    let said = stderr_of(&mut close);
    assert!(
        said.contains("nothing was closed: F1-1 is resolved"),
        "{said}"
    );
    assert_eq!((failure_state(&env), applied(&env)), ("resolved".into(), 1));
    assert_eq!(env.stock()["SKU-0"], 8);
    env.verify_ok();
}

/// On SQLite a close reads the failures inside the write lock: one that a
/// run resolved while the close waited for the lock is seen resolved, and
/// the close exits 2 having closed nothing (it once warned and exited 0).
#[test]
fn a_close_waiting_for_the_sqlite_lock_sees_what_the_holder_committed() {
    let env = one_open_failure(Backend::Sqlite);
    let holder = env.db();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    holder
        .execute_batch(
            "UPDATE failed_orders SET state = 'resolved', resolved_by = 1 WHERE run_id = 1 AND run_seq = 1",
        )
        .unwrap();
    let mut close = spawn(&env, &close_args(), "failures close");
    // Whether the close reads before or after this commit, it must not close.
    holder.execute_batch("COMMIT").unwrap();
    assert_eq!(close.wait(HANG).code(), Some(2));
    let said = stderr_of(&mut close);
    assert!(
        said.contains("nothing was closed: F1-1 is resolved"),
        "{said}"
    );
    assert_eq!(failure_state(&env), "resolved");
}

/// `failures close --order R-1` comes while a reprocess holds R-1's open
/// failure F1-1 and is about to fail it again (no stock came): the close
/// waits for it, finds F1-1 superseded by the retry's F2-1, and closes that
/// one, the order's open failure now. Nothing is left open, nothing shipped.
#[test]
fn a_close_by_order_waiting_for_a_retry_closes_the_failure_the_retry_left_on_postgres() {
    if pg::skip_requested() {
        eprintln!("!!! ORDERBATCH_SKIP_PG=1: this PostgreSQL test is SKIPPED");
        return;
    }
    let env = env_for(Backend::Postgres);
    env.write("catalog.csv", catalog(1, 0));
    env.ok(&["inventory", "load", "catalog.csv"], 0);
    env.write("orders.csv", csv_file(&[order_rows("R-1", &[(0, 2)])]));
    env.ok(&["process", "orders.csv"], 3);
    // Another session keeps new orders out: the reprocess holds F1-1 and
    // waits to claim R-1 (it gives the claim back when the stock is short).
    let mut gate = PgSession::open(&env.db);
    gate.exec("BEGIN; LOCK TABLE orders IN EXCLUSIVE MODE;");
    let mut probe = PgSession::open(&env.db);
    let mut reprocess = spawn(&env, &["reprocess", "--json"], "reprocess");
    poll("the reprocess to wait to claim its order", || {
        (waiting(&mut probe) == 1).then_some(())
    });
    let args = [
        "failures", "close", "--order", "R-1", "--reason", "refunded",
    ];
    let mut close = spawn(&env, &args, "failures close --order");
    poll("the close to wait for F1-1 behind the reprocess", || {
        (waiting(&mut probe) == 2).then_some(())
    });
    gate.exec("ROLLBACK;");
    assert_eq!(reprocess.wait(HANG).code(), Some(3), "failed again");
    assert_eq!(close.wait(HANG).code(), Some(0));
    let said = stderr_of(&mut close);
    assert!(said.contains("closed 1 failed orders: F2-1"), "{said}");
    let states = env.sql("SELECT run_id, run_seq, state FROM failed_orders ORDER BY id");
    assert_eq!(states, ["1|1|superseded", "2|1|closed"]);
    assert_eq!(applied(&env), 0);
    env.verify_ok();
}
