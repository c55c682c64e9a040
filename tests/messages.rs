//! Messages that say what is true and point the right way: a connection
//! lost mid-run is not "cannot open", a full disk names the report file, a
//! full TMPDIR says so in words, a file's encoding is named, and a report
//! an xlsx workbook cannot hold is refused before anything commits.

mod common;
mod procs;

use std::process::Output;

use common::*;

/// Run with a file-size limit of `blocks` (a write past it fails with EFBIG
/// instead of killing the process), against the env's database.
fn run_limited(env: &Env, blocks: u64, args: &[&str]) -> Output {
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

fn orders(n: usize) -> String {
    let rows: Vec<String> = (0..n)
        .map(|i| order_rows(&format!("M-{i}"), &[(i % 5, 1)]))
        .collect();
    csv_file(&rows)
}

fn nothing_committed(env: &Env) {
    assert_eq!(env.count("SELECT count(*) FROM orders"), 0);
    assert!(env.stock().values().all(|n| *n == 1_000_000));
    env.verify_ok();
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
    env.write("orders.csv", orders(50));
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

/// The unit of `ulimit -f` in `sh` on this machine, in bytes (512 in dash,
/// 1024 in bash).
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
    let n = std::fs::metadata(env.path("ulimit.probe")).unwrap().len();
    assert!(n == 512 || n == 1024, "ulimit -f unit: {n} bytes");
    n
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
            orders(400).replace("buyer@example.com", &email),
        );
        let blocks = (64 << 10) / ulimit_block(&env);
        let out = run_limited(&env, blocks, args);
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

/// UTF-16 without a byte-order mark is named (exit 2, the option to pass);
/// a UTF-8 byte-order mark wins over a wrong --encoding.
#[test]
fn encodings_are_named_and_a_utf8_bom_wins() {
    let env = Env::new();
    load_catalog(&env, 1_000_000);
    let text = orders(3);
    let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
    env.write("le.csv", le);
    env.write("be.csv", be);
    for (file, option) in [("le.csv", "utf-16le"), ("be.csv", "utf-16be")] {
        let out = env.run(&["process", file]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert_one_error_line(
            &out,
            &[
                file,
                "UTF-16 without a byte-order mark",
                &format!("--encoding {option}"),
            ],
        );
        env.ok(&["process", file, "--encoding", option, "--dry-run"], 0);
    }
    env.write("bom.csv", format!("\u{feff}{text}"));
    env.ok(&["process", "bom.csv", "--encoding", "windows-1252"], 0);
    assert_eq!(env.count("SELECT count(*) FROM orders"), 3);
}

/// A report an xlsx workbook cannot hold (more than 16,384 columns, a value
/// over 32,767 characters) is refused with exit 2 before the run commits,
/// saying what to use instead; `report --format xlsx` refuses it the same way.
#[test]
fn a_report_too_large_for_xlsx_is_refused_before_the_commit() {
    let env = Env::new();
    load_catalog(&env, 1_000_000);
    let extra: Vec<String> = (0..16_400).map(|i| format!("x{i}")).collect();
    let wide = format!(
        "{HEADER},{}\n{}",
        extra.join(","),
        order_rows("W-1", &[(9, 1)]).replace('\n', &format!(",{}\n", vec!["v"; 16_400].join(",")))
    );
    env.write("wide.csv", wide);
    let out = env.run(&["process", "wide.csv", "--report-format", "xlsx"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_one_error_line(
        &out,
        &[
            "16415 columns",
            "16384 an xlsx sheet holds",
            "--report-format csv or jsonl",
            "nothing of this run was committed",
        ],
    );
    assert_eq!(env.count("SELECT count(*) FROM failed_orders"), 0);

    let long = "n".repeat(40_000);
    let text = format!(
        "{HEADER},note\n{}{}",
        order_rows("L-1", &[(0, 1)]).replace('\n', ",short\n"),
        order_rows("L-2", &[(9, 1)]).replace('\n', &format!(",{long}\n"))
    );
    env.write("long.csv", &text);
    let out = env.run(&["process", "long.csv", "--report-format", "xlsx"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_one_error_line(
        &out,
        &[
            "failed.xlsx report cannot be written",
            "40000 characters",
            "32767 at most",
        ],
    );
    nothing_committed(&env);
    env.ok(&["process", "long.csv"], 3);
    let out = env.run(&["report", "failed", "--run", "3", "--format", "xlsx"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_one_error_line(&out, &["40000 characters", "--report-format csv or jsonl"]);
}
