//! Runs at once against one database's stock, as from several hosts: no
//! oversell, every order applied at most once (exactly once when two runs
//! are given the same file), no deadlock, and a final state equal to the
//! runs replayed one after another in the order they committed, on
//! PostgreSQL and on SQLite; a locked section that does not grow with the
//! orders; and a run that cannot get its lock exits 75 having changed
//! nothing.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::procs::{Kid, PgSession, HANG};
use common::*;

#[test]
fn two_runs_at_once_never_oversell_and_the_ledger_holds() {
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 25);
        for name in ["a", "b"] {
            let orders: Vec<String> = (0..120)
                .map(|i| order_rows(&format!("{name}-{i}"), &[(i % 3, 1), ((i + 1) % 3, 1)]))
                .collect();
            env.write(&format!("{name}.csv"), csv_file(&orders));
        }
        let spawn = |name: &str| {
            env.spawnable()
                .args(["process", &format!("{name}.csv"), "--json", "--out", name])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (first, second) = (spawn("a"), spawn("b"));
        let mut units = 0;
        for child in [first, second] {
            let out = child.wait_with_output().unwrap();
            assert_eq!(
                out.status.code(),
                Some(3),
                "{b:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let s = json(&String::from_utf8_lossy(&out.stdout));
            assert!(
                s["failed"].as_u64().unwrap() > 0,
                "{b:?}: stock is tight on purpose: {s}"
            );
            units += s["units"].as_i64().unwrap();
        }
        let stock = env.stock();
        assert!(stock.values().all(|n| *n >= 0), "{b:?}: {stock:?}");
        let moved: i64 = (0..5).map(|i| 25 - stock[&format!("SKU-{i}")]).sum();
        assert_eq!(
            moved, units,
            "{b:?}: stock moved equals the units both runs report"
        );
        // Orders pair the skus (0,1), (1,2), (2,0): selling stops only when at
        // least two of the three are sold out, whatever the interleaving.
        let sold_out = (0..3).filter(|i| stock[&format!("SKU-{i}")] == 0).count();
        assert!(sold_out >= 2, "{b:?}: {stock:?}");
        env.ok(&["verify"], 0);
    }
}

/// Another session holding what a run needs until it is released: SQLite's
/// write lock, or on PostgreSQL the stock row of SKU-0, locked FOR UPDATE as
/// a concurrent run locks the stock it takes.
enum LockHolder {
    Sqlite(rusqlite::Connection),
    Postgres(Child, ChildStdin),
}

impl LockHolder {
    /// Returns once the lock is held.
    fn take(env: &Env) -> LockHolder {
        match env.backend {
            Backend::Sqlite => {
                let c = env.db();
                c.execute_batch("BEGIN IMMEDIATE").unwrap();
                LockHolder::Sqlite(c)
            }
            Backend::Postgres => {
                let mut psql = std::process::Command::new(format!("{}/psql", pg::PG_BIN));
                for (k, _) in std::env::vars_os() {
                    if k.to_string_lossy().starts_with("PG") {
                        psql.env_remove(k);
                    }
                }
                let mut child = psql
                    .args([
                        "-X",
                        "-q",
                        "-A",
                        "-t",
                        "-v",
                        "ON_ERROR_STOP=1",
                        "-d",
                        &env.db,
                    ])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap();
                let mut stdin = child.stdin.take().unwrap();
                stdin
                    .write_all(
                        b"BEGIN;\nSELECT sku FROM products WHERE sku = 'SKU-0' FOR UPDATE;\n",
                    )
                    .unwrap();
                stdin.flush().unwrap();
                // The row comes back once it is locked.
                let mut line = String::new();
                BufReader::new(child.stdout.take().unwrap())
                    .read_line(&mut line)
                    .unwrap();
                assert_eq!(line, "SKU-0\n", "the lock holder's answer");
                LockHolder::Postgres(child, stdin)
            }
        }
    }

    fn release(self) {
        match self {
            LockHolder::Sqlite(c) => c.execute_batch("ROLLBACK").unwrap(),
            LockHolder::Postgres(mut child, mut stdin) => {
                stdin.write_all(b"ROLLBACK;\n").unwrap();
                drop(stdin);
                assert!(child.wait().unwrap().success());
            }
        }
    }
}

#[test]
fn a_held_lock_makes_a_run_exit_75_having_changed_nothing() {
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 10);
        env.write("orders.csv", csv_file(&[order_rows("A-1", &[(0, 1)])]));
        let holder = LockHolder::take(&env);
        let out = env.run(&["process", "orders.csv", "--lock-timeout", "1"]);
        holder.release();
        assert_eq!(out.status.code(), Some(75), "{b:?}: {out:?}");
        assert_one_error_line(&out, &["locked", "--lock-timeout", "try again later"]);
        assert!(!env.exists("reports/run-1"), "{b:?}");
        assert_eq!(env.stock()["SKU-0"], 10, "{b:?}");
        assert_eq!(env.count("SELECT count(*) FROM orders"), 0, "{b:?}");
        // Once the lock is free, the same command does the work.
        env.ok(&["process", "orders.csv"], 0);
        assert_eq!(env.stock()["SKU-0"], 9, "{b:?}");
    }
}

/// Products SKU-0..SKU-7, this many units each: far fewer than the files ask for.
const SKUS: usize = 8;

const STOCK: i64 = 2_000;

/// One generated input file: its orders, with their lines (sku index, quantity).
struct Input {
    name: &'static str,
    text: String,
    /// order_id -> lines, for the valid orders.
    lines: BTreeMap<String, Vec<(usize, u32)>>,
}

/// `n` orders on the skus `skus`, deterministic; the first order (and every
/// 997th) has a bad e-mail address, so that every run has failed orders
/// whatever stock it finds.
fn input(name: &'static str, prefix: &str, skus: &[usize], n: usize, seed: u64) -> Input {
    let mut x = seed;
    let mut next = move |m: u64| {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (x >> 33) % m
    };
    let mut rows = Vec::with_capacity(n);
    let mut lines = BTreeMap::new();
    for i in 0..n {
        let id = format!("{prefix}-{i:05}");
        let k = 1 + next(3) as usize;
        let mut order: Vec<(usize, u32)> = Vec::new();
        for _ in 0..k {
            let sku = skus[next(skus.len() as u64) as usize];
            let q = 1 + next(3) as u32;
            order.push((sku, q));
        }
        let text = order_rows(&id, &order);
        if i % 997 == 0 {
            rows.push(text.replace("buyer@example.com", "buyer-at-example.com"));
        } else {
            rows.push(text);
            lines.insert(id, order);
        }
    }
    Input {
        name,
        text: csv_file(&rows),
        lines,
    }
}

/// What one run did, from its exit code, `--json` summary and reports.
#[derive(Debug)]
struct RunOut {
    host: String,
    file: &'static str,
    code: Option<i32>,
    run_id: i64,
    summary: serde_json::Value,
    accepted: Vec<BTreeMap<String, String>>,
    /// Failed report rows without `failure_id` (a database key, not an outcome).
    failed: Vec<BTreeMap<String, String>>,
}

impl RunOut {
    fn ids(&self, status: &str) -> BTreeSet<String> {
        self.accepted
            .iter()
            .filter(|r| r["status"] == status)
            .map(|r| r["order_id"].clone())
            .collect()
    }

    /// order_id -> error_code of the failed orders.
    fn failures(&self) -> BTreeMap<String, String> {
        self.failed
            .iter()
            .map(|r| (r["order_id"].clone(), r["error_code"].clone()))
            .collect()
    }

    /// The counts of the summary that say what the run did.
    fn counts(&self) -> serde_json::Value {
        summary_counts(&self.summary)
    }
}

fn read_run(
    dir: &Path,
    host: &str,
    file: &'static str,
    code: Option<i32>,
    stdout: &str,
    stderr: String,
) -> RunOut {
    let summary: serde_json::Value = serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("{host}: summary on stdout: {e}: {stdout:?}\nstderr: {stderr}"));
    let run_id = summary["run_id"].as_i64().expect("run_id");
    let report = |name: &str| {
        parse_csv(&file_bytes(
            &dir.join(format!("reports/run-{run_id}/{name}")),
        ))
    };
    let mut failed = report("failed.csv");
    for r in &mut failed {
        r.remove("failure_id");
    }
    RunOut {
        host: host.to_string(),
        file,
        code,
        run_id,
        summary,
        accepted: report("accepted.csv"),
        failed,
    }
}

/// (run id, wait event, statement) -> how many samples saw it.
type Waits = BTreeMap<(i64, String, String), u32>;

/// Samples, while the runs go on, which of them wait for a lock, and on
/// what statement. Measured, not asserted.
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<Waits>>,
}

/// The high half of the advisory lock key a run holds on its id.
const RUN_LOCKS: u32 = 0x6f62_7275;

impl Sampler {
    fn start(url: &str) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let mut session = PgSession::open(url);
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let sql = format!(
                "SELECT l.objid::bigint, a.wait_event,
                        CASE WHEN a.query LIKE '%FROM products%' THEN 'stock'
                             WHEN a.query LIKE '%INSERT INTO orders%' THEN 'claim'
                             ELSE left(regexp_replace(a.query, '\\s+', ' ', 'g'), 40) END
                 FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid
                 WHERE a.datname = current_database() AND a.application_name = 'orderbatch'
                   AND a.wait_event_type = 'Lock' AND l.locktype = 'advisory' AND l.granted
                   AND l.objsubid = 1 AND l.classid = {RUN_LOCKS}::oid
                   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            );
            let mut seen = Waits::new();
            while !flag.load(Ordering::Relaxed) {
                for row in session.exec(&sql) {
                    let mut cells = row.splitn(3, '|');
                    let id: i64 = cells.next().unwrap().parse().unwrap();
                    let event = cells.next().unwrap_or_default().to_string();
                    let stmt = cells.next().unwrap_or_default().to_string();
                    *seen.entry((id, event, stmt)).or_default() += 1;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            seen
        });
        Sampler {
            stop,
            handle: Some(handle),
        }
    }

    fn finish(mut self) -> Waits {
        self.stop.store(true, Ordering::Relaxed);
        let handle = self.handle.take().expect("finished once");
        handle.join().expect("sampler thread")
    }
}

impl Drop for Sampler {
    /// A test that fails before `finish` stops the sampling too.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Starts one `process` per (host, file) at once, each in its own working
/// directory with its own reports (as on separate hosts).
fn start_all(env: &Env, hosts: &[(&str, &'static Input)]) -> Vec<Kid> {
    let db = match env.backend {
        Backend::Sqlite => env.path("orderbatch.db").display().to_string(),
        Backend::Postgres => env.db.clone(),
    };
    for (host, input) in hosts {
        env.write(&format!("{host}/{}", input.name), &input.text);
    }
    hosts
        .iter()
        .map(|(host, input)| {
            let dir = env.path(host);
            let mut cmd = std::process::Command::new(bin_path());
            cmd.current_dir(&dir)
                .env_remove("ORDERBATCH_DB")
                .args(["--db", &db, "--no-progress", "--lock-timeout", "120"])
                .args(["process", input.name, "--json", "--out", "reports"])
                .stdin(Stdio::null())
                .stdout(File::create(dir.join("stdout.json")).unwrap())
                .stderr(File::create(dir.join("stderr.txt")).unwrap());
            Kid::spawn(&mut cmd, &format!("orderbatch process on {host}"))
        })
        .collect()
}

/// Waits for every run and reads what it did: each exits 0 or 3 (never 75
/// for a lock timeout or a deadlock given up on, never 1).
fn finish_all(env: &Env, hosts: &[(&str, &'static Input)], mut kids: Vec<Kid>) -> Vec<RunOut> {
    let codes: Vec<Option<i32>> = kids.iter_mut().map(|k| k.wait(HANG).code()).collect();
    hosts
        .iter()
        .zip(codes)
        .map(|((host, input), code)| {
            let dir = env.path(host);
            let stdout = std::fs::read_to_string(dir.join("stdout.json")).unwrap();
            let stderr = std::fs::read_to_string(dir.join("stderr.txt")).unwrap();
            assert!(
                matches!(code, Some(0 | 3)),
                "{host}: exit {code:?} (0 or 3 expected: no deadlock, no lock timeout, no error)\n{stderr}"
            );
            assert!(
                !stderr.contains("panicked") && !stderr.contains("internal error"),
                "{host}: {stderr}"
            );
            read_run(&dir, host, input.name, code, &stdout, stderr)
        })
        .collect()
}

/// The same files, one run after another in `order`, on a fresh database of `backend`.
fn replay(
    backend: Backend,
    order: &[&RunOut],
    inputs: &[&Input],
    start: i64,
) -> (Vec<RunOut>, Env) {
    let env = Env::with(backend);
    env.write("catalog.csv", catalog(SKUS, start));
    env.ok(&["inventory", "load", "catalog.csv"], 0);
    for i in inputs {
        env.write(i.name, &i.text);
    }
    let runs = order
        .iter()
        .map(|r| {
            let out = env.run(&[
                "--no-progress",
                "process",
                r.file,
                "--json",
                "--out",
                "reports",
            ]);
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            read_run(
                env.dir.path(),
                "replay",
                r.file,
                out.status.code(),
                &stdout,
                stderr,
            )
        })
        .collect();
    (runs, env)
}

/// The order the runs committed in, from what the database keeps: a run
/// takes its finish time and writes its stock ledger entries only once it
/// holds the stock it needs, so of two runs that share a sku, the one that
/// committed first finished first (and, within a millisecond, drew the
/// smaller ledger ids). (The order of runs that share no sku does not change
/// any outcome.)
fn commit_order<'r>(env: &Env, runs: &'r [RunOut]) -> Vec<&'r RunOut> {
    let first: BTreeMap<i64, i64> = env
        .sql("SELECT run_id, min(id) FROM stock_ledger WHERE run_id IS NOT NULL GROUP BY run_id")
        .iter()
        .map(|l| {
            let (r, id) = l.split_once('|').unwrap();
            (r.parse().unwrap(), id.parse().unwrap())
        })
        .collect();
    let finished: BTreeMap<i64, String> = env
        .sql("SELECT id, finished_at FROM runs")
        .iter()
        .map(|l| {
            let (r, at) = l.split_once('|').unwrap();
            (r.parse().unwrap(), at.to_string())
        })
        .collect();
    let mut order: Vec<&RunOut> = runs.iter().collect();
    order.sort_by_key(|r| (finished[&r.run_id].clone(), first.get(&r.run_id).copied()));
    order
}

/// Everything the README promises of runs at once ("Transactions", "Several hosts").
fn check(env: &Env, runs: &[RunOut], inputs: &[&Input], start: i64) -> Vec<(String, usize)> {
    let lines_of = |id: &str| {
        inputs
            .iter()
            .find_map(|i| i.lines.get(id))
            .unwrap_or_else(|| panic!("{id} is not a valid order of the inputs"))
    };

    // No oversell: stock never below zero, and it moved by exactly the units
    // of the orders the runs report accepted, sku by sku.
    let stock = env.stock();
    assert!(stock.values().all(|n| *n >= 0), "{stock:?}");
    let mut taken: BTreeMap<String, i64> = BTreeMap::new();
    for r in runs {
        for id in r.ids("accepted") {
            for (sku, q) in lines_of(&id) {
                *taken.entry(format!("SKU-{sku}")).or_default() += i64::from(*q);
            }
        }
    }
    for (sku, n) in &stock {
        let t = taken.get(sku).copied().unwrap_or(0);
        assert_eq!(start - n, t, "{sku}: stock taken vs units accepted");
    }
    let units: i64 = runs
        .iter()
        .map(|r| r.summary["units"].as_i64().unwrap())
        .sum();
    assert_eq!(units, taken.values().sum::<i64>(), "summaries' units");
    env.verify_ok();

    // Every order applied at most once: no id accepted by two runs, and the
    // orders table holds exactly the accepted ids.
    let mut union = BTreeSet::new();
    for r in runs {
        for id in r.ids("accepted") {
            assert!(union.insert(id.clone()), "{id} accepted by two runs");
        }
        assert_eq!(
            r.summary["accepted"].as_u64(),
            Some(r.ids("accepted").len() as u64)
        );
    }
    let applied: BTreeSet<String> = env.sql("SELECT order_id FROM orders").into_iter().collect();
    assert_eq!(applied.len(), union.len(), "orders rows vs accepted ids");
    assert_eq!(applied, union);

    // Two runs of the same file: each order accepted by one and skipped by
    // the other, or failed by both for the same reason.
    let mut pairs = Vec::new();
    for (i, a) in runs.iter().enumerate() {
        for b in &runs[i + 1..] {
            if a.file != b.file {
                continue;
            }
            let (fa, fb) = (a.failures(), b.failures());
            let (acc_a, acc_b) = (a.ids("accepted"), b.ids("accepted"));
            let (skip_a, skip_b) = (a.ids("skipped"), b.ids("skipped"));
            let all: BTreeSet<&String> = acc_a
                .iter()
                .chain(&acc_b)
                .chain(&skip_a)
                .chain(&skip_b)
                .chain(fa.keys())
                .chain(fb.keys())
                .collect();
            for id in all {
                let fate = |acc: &BTreeSet<String>,
                            skip: &BTreeSet<String>,
                            f: &BTreeMap<String, String>| {
                    if acc.contains(id) {
                        "accepted".to_string()
                    } else if skip.contains(id) {
                        "skipped".to_string()
                    } else {
                        f.get(id).cloned().unwrap_or_else(|| "absent".into())
                    }
                };
                let (x, y) = (fate(&acc_a, &skip_a, &fa), fate(&acc_b, &skip_b, &fb));
                let ok = matches!(
                    (x.as_str(), y.as_str()),
                    ("accepted", "skipped") | ("skipped", "accepted")
                ) || (x == y && x != "accepted" && x != "skipped" && x != "absent")
                    // A third run given the same order applied it first.
                    || (x == "skipped" && y == "skipped" && union.contains(id.as_str()));
                assert!(ok, "{id}: {} says {x}, {} says {y}", a.host, b.host);
            }
            pairs.push((format!("{}+{}", a.host, b.host), acc_a.len() + acc_b.len()));
        }
    }

    // Every run shows as completed in the history.
    let list: serde_json::Value =
        serde_json::from_str(&env.ok(&["runs", "list", "--json"], 0)).unwrap();
    for r in runs {
        let row = list
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"].as_i64() == Some(r.run_id))
            .unwrap_or_else(|| panic!("run {} in runs list", r.run_id));
        assert_eq!(row["status"], "completed", "run {}", r.run_id);
    }
    pairs
}

/// The final state equals the runs replayed one after another in commit
/// order, on both backends: each run's reports row for row, its summary
/// counts and exit code, and the final stock.
fn check_serial(
    env: &Env,
    runs: &[RunOut],
    inputs: &[&Input],
    on: &[Backend],
    start: i64,
) -> Vec<i64> {
    let order = commit_order(env, runs);
    for backend in on {
        let (replayed, renv) = replay(*backend, &order, inputs, start);
        for (live, serial) in order.iter().zip(&replayed) {
            let what = format!(
                "{} (run {}, {}) vs its serial replay on {backend:?}",
                live.host, live.run_id, live.file
            );
            assert_eq!(live.code, serial.code, "{what}: exit code");
            assert_eq!(live.counts(), serial.counts(), "{what}: summary");
            assert_eq!(live.accepted, serial.accepted, "{what}: accepted report");
            assert_eq!(live.failed, serial.failed, "{what}: failed report");
        }
        assert_eq!(
            env.stock(),
            renv.stock(),
            "final stock vs replay on {backend:?}"
        );
        renv.verify_ok();
    }
    order.iter().map(|r| r.run_id).collect()
}

fn inputs() -> &'static [Input; 3] {
    static INPUTS: std::sync::OnceLock<[Input; 3]> = std::sync::OnceLock::new();
    INPUTS.get_or_init(|| {
        let n = std::env::var("ORDERBATCH_CONCURRENCY_ORDERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3_000);
        [
            // Two hosts get this one.
            input("shared.csv", "S", &[0, 1, 2, 3], n, 1),
            // Shares SKU-2 and SKU-3 with it.
            input("overlap.csv", "O", &[2, 3, 4, 5], n, 2),
            // Shares nothing.
            input("disjoint.csv", "D", &[6, 7], n, 3),
        ]
    })
}

/// Runs of this database waiting for a lock: for their stock rows, or (a
/// run given the same orders as one that waits for its stock) for the order
/// ids that run claimed.
fn waiting_for_stock(probe: &mut PgSession) -> usize {
    probe.exec(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = 'orderbatch'
           AND wait_event_type = 'Lock'
           AND (query LIKE '%FROM products%' OR query LIKE '%INSERT INTO orders%')",
    )[0]
    .parse()
    .unwrap()
}

#[test]
fn four_hosts_at_once_on_postgres_equal_a_serial_replay() {
    if pg::skip_requested() {
        eprintln!("!!! ORDERBATCH_SKIP_PG=1: this PostgreSQL test is SKIPPED");
        return;
    }
    let [shared, overlap, disjoint] = inputs();
    let env = Env::with(Backend::Postgres);
    env.write("catalog.csv", catalog(SKUS, STOCK));
    env.ok(&["inventory", "load", "catalog.csv"], 0);
    let hosts = [
        ("host-a", shared),
        ("host-b", shared),
        ("host-c", overlap),
        ("host-d", disjoint),
    ];

    // Another session holds SKU-2's row (as a restock in progress would), so
    // that the three runs that need it are all inside their transactions at
    // once, whatever the speed of their validation, and contend when it goes.
    let mut gate = PgSession::open(&env.db);
    gate.exec("BEGIN; SELECT on_hand FROM products WHERE sku = 'SKU-2' FOR UPDATE;");
    let mut probe = PgSession::open(&env.db);
    let t = Instant::now();
    let sampler = Sampler::start(&env.db);
    let mut kids = start_all(&env, &hosts);
    // The run that shares no stock finishes meanwhile: it waits for no one.
    let d = kids[3].wait(HANG);
    assert!(matches!(d.code(), Some(0 | 3)), "host-d: {d:?}");
    let gated = procs::poll(
        "the three runs needing SKU-0..SKU-5 to wait for their stock",
        || (waiting_for_stock(&mut probe) == 3).then(|| t.elapsed()),
    );
    // Meanwhile the history shows the three as running (they are: each
    // holds its session), the fourth as completed; none as interrupted.
    // (Asserted last, so that the checks of the outcome run whatever it says.)
    let list: serde_json::Value =
        serde_json::from_str(&env.ok(&["runs", "list", "--json"], 0)).unwrap();
    let mut meanwhile: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_string())
        .collect();
    meanwhile.sort();
    gate.exec("ROLLBACK;");
    let runs = finish_all(&env, &hosts, kids);
    let waits = sampler.finish();
    let wall = t.elapsed();

    let all = [shared, overlap, disjoint];
    let pairs = check(&env, &runs, &all, STOCK);
    let order = check_serial(
        &env,
        &runs,
        &all,
        &[Backend::Postgres, Backend::Sqlite],
        STOCK,
    );

    eprintln!(
        "4 runs at once on PostgreSQL: {wall:?} wall, SKU-2 released after {gated:?}; \
         commit order (run ids) {order:?}; same-file pairs (accepted between them) {pairs:?}"
    );
    for r in &runs {
        let s = &r.summary;
        eprintln!(
            "  {} run {} {}: {} orders, {} accepted, {} skipped, {} failed, {} units, exit {:?}, {} ms, finished {}",
            r.host, r.run_id, r.file, s["orders"], s["accepted"], s["skipped"], s["failed"],
            s["units"], r.code, s["duration_ms"], s["finished_at"]
        );
    }
    eprintln!("  lock waits seen (run, event, statement: samples about 10 ms apart): {waits:?}");
    assert_eq!(
        meanwhile,
        ["completed", "running", "running", "running"],
        "runs list while three runs waited for SKU-2: {list}"
    );
}

#[test]
fn two_runs_of_one_file_at_once_on_sqlite_apply_each_order_once() {
    let [shared, _, _] = inputs();
    let env = Env::new();
    env.write("catalog.csv", catalog(SKUS, STOCK));
    env.ok(&["inventory", "load", "catalog.csv"], 0);
    let hosts = [("host-a", shared), ("host-b", shared)];
    let runs = finish_all(&env, &hosts, start_all(&env, &hosts));
    let pairs = check(&env, &runs, &[shared], STOCK);
    assert_eq!(env.integrity(), "ok");
    let order = check_serial(&env, &runs, &[shared], &[Backend::Sqlite], STOCK);
    // The second to commit found every order decided already.
    let second = runs.iter().find(|r| r.run_id == order[1]).unwrap();
    assert_eq!(second.summary["accepted"].as_u64(), Some(0));
    eprintln!(
        "2 runs of one file at once on SQLite: commit order {order:?}; accepted {pairs:?}; {}",
        runs.iter()
            .map(|r| format!("run {}: {} ms", r.run_id, r.summary["duration_ms"]))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// Eight inputs over tight stock for the eight-run test: two hosts given the
/// same file, a third half of it (the same ids, the same content), and five
/// more overlapping on the skus.
fn eight_inputs() -> &'static [Input; 7] {
    static INPUTS: std::sync::OnceLock<[Input; 7]> = std::sync::OnceLock::new();
    INPUTS.get_or_init(|| {
        let n = 600;
        [
            input("shared.csv", "S", &[0, 1, 2, 3], n, 1),
            input("shared-half.csv", "S", &[0, 1, 2, 3], n / 2, 1),
            input("overlap.csv", "O", &[2, 3, 4, 5], n, 2),
            input("p.csv", "P", &[0, 4, 6], n, 4),
            input("q.csv", "Q", &[1, 5, 7], n, 5),
            input("r.csv", "R", &[3, 6], n, 6),
            input("disjoint.csv", "D", &[6, 7], n, 3),
        ]
    })
}

/// Eight runs at once on PostgreSQL over stock too tight for all of them
/// (every run has orders failing INSUFFICIENT_STOCK) and with order ids
/// shared between files: no oversell, each order applied at most once, and
/// reports, summaries and stock equal to the runs replayed one after another
/// in commit order, on both backends.
#[test]
fn eight_runs_at_once_on_tight_shared_stock_equal_a_serial_replay() {
    if pg::skip_requested() {
        eprintln!("!!! ORDERBATCH_SKIP_PG=1: this PostgreSQL test is SKIPPED");
        return;
    }
    let [shared, half, overlap, p, q, r, disjoint] = eight_inputs();
    let env = Env::with(Backend::Postgres);
    env.write("catalog.csv", catalog(SKUS, 500));
    env.ok(&["inventory", "load", "catalog.csv"], 0);
    let hosts = [
        ("host-a", shared),
        ("host-b", shared),
        ("host-c", half),
        ("host-d", overlap),
        ("host-e", p),
        ("host-f", q),
        ("host-g", r),
        ("host-h", disjoint),
    ];
    // SKU-0 held meanwhile: the four runs that need it are all inside their
    // transactions at once when it goes; the others run beside them.
    let mut gate = PgSession::open(&env.db);
    gate.exec("BEGIN; SELECT on_hand FROM products WHERE sku = 'SKU-0' FOR UPDATE;");
    let mut probe = PgSession::open(&env.db);
    let kids = start_all(&env, &hosts);
    procs::poll("the four runs needing SKU-0 to wait for a lock", || {
        (waiting_for_stock(&mut probe) == 4).then_some(())
    });
    // The four others, which need no SKU-0, commit meanwhile and use up
    // SKU-1 to SKU-3: whichever of the four waiting runs goes first then
    // finds its stock tight too (shared-half's orders, all in shared.csv,
    // would otherwise all be taken or skipped when it follows host-a or
    // host-b before the others took their stock).
    procs::poll("the four runs not needing SKU-0 to commit", || {
        (probe.exec("SELECT count(*) FROM runs WHERE finished_at IS NOT NULL") == ["4"])
            .then_some(())
    });
    gate.exec("ROLLBACK;");
    let runs = finish_all(&env, &hosts, kids);
    let all = [shared, half, overlap, p, q, r, disjoint];
    check(&env, &runs, &all, 500);
    for run in &runs {
        assert!(
            run.failures().values().any(|c| c == "INSUFFICIENT_STOCK"),
            "{} (run {}): the stock is tight for every run",
            run.host,
            run.run_id
        );
    }
    let order = check_serial(
        &env,
        &runs,
        &all,
        &[Backend::Postgres, Backend::Sqlite],
        500,
    );
    eprintln!("8 runs at once on tight shared stock: commit order {order:?}");
}

/// The statements a run sends while it holds its stock rows, from its JSON
/// log (`locked_statements`).
fn locked_statements(env: &Env, file: &str) -> u64 {
    let out = env.run(&["--log-format", "json", "process", file]);
    assert!(matches!(out.status.code(), Some(0 | 3)), "{out:?}");
    let text = String::from_utf8_lossy(&out.stderr);
    let event = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["event"] == "run_finished")
        .unwrap_or_else(|| panic!("no run_finished event: {text}"));
    event["locked_statements"]
        .as_u64()
        .unwrap_or_else(|| panic!("no locked_statements: {event}"))
}

/// A run's locked section does not grow with its orders: 1,000 and 10,000
/// orders on the same skus, some of them short of stock, send the same
/// number of statements while the stock rows are held.
#[test]
fn the_locked_section_does_not_grow_with_the_orders() {
    if pg::skip_requested() {
        eprintln!("!!! ORDERBATCH_SKIP_PG=1: this PostgreSQL test is SKIPPED");
        return;
    }
    let mut counts = Vec::new();
    for n in [1_000usize, 10_000] {
        let env = Env::with(Backend::Postgres);
        // Stock for about nine orders in ten: some fail for stock at the end.
        env.write("catalog.csv", catalog(SKUS, n as i64 / 4 * 9 / 10));
        env.ok(&["inventory", "load", "catalog.csv"], 0);
        let orders: Vec<String> = (0..n)
            .map(|i| order_rows(&format!("L-{i:06}"), &[(i % 4, 1), (4 + i % 4, 1)]))
            .collect();
        env.write("orders.csv", csv_file(&orders));
        let sent = locked_statements(&env, "orders.csv");
        let short =
            env.count("SELECT count(*) FROM failed_orders WHERE error_code = 'INSUFFICIENT_STOCK'");
        assert!(short > 0, "{n} orders: some must be short of stock");
        counts.push((n, sent, short));
        env.verify_ok();
    }
    eprintln!("(orders, statements while the stock was held, orders short of stock): {counts:?}");
    assert_eq!(counts[0].1, counts[1].1, "{counts:?}");
}
