//! `orderbatch inbox`: real worker processes on one directory and one
//! database (SQLite, and a throwaway PostgreSQL cluster). Every wait is a
//! bounded poll on something the test can see (the files, the claim rows,
//! the workers' JSON log, `pg_stat_activity`), never a sleep for ordering;
//! the only sleeps pace a writer that must write more slowly than
//! `--settle`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::procs::{poll, signal, waiting_in, Kid, PgSession, HANG};
use common::*;

/// A worker process: its JSON log (stderr) and its `--json` lines (stdout) go to files.
struct Worker {
    kid: Kid,
    log: PathBuf,
    out: PathBuf,
}

impl Worker {
    /// `orderbatch --log-format json inbox in ARGS…`, as `name`.
    fn start(env: &Env, name: &str, args: &[&str]) -> Worker {
        Worker::start_on(env, &env.db, name, args)
    }

    /// The same on another `--db`.
    fn start_on(env: &Env, db: &str, name: &str, args: &[&str]) -> Worker {
        let (log, out) = (
            env.path(&format!("{name}.log")),
            env.path(&format!("{name}.out")),
        );
        let mut cmd = std::process::Command::new(bin_path());
        cmd.current_dir(env.dir.path())
            .env_remove("ORDERBATCH_DB")
            .args(["--db", db, "--log-format", "json", "inbox", "in"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&log).unwrap());
        Worker {
            kid: Kid::spawn(&mut cmd, name),
            log,
            out,
        }
    }

    /// The events of its JSON log so far.
    fn events(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn count(&self, event: &str) -> usize {
        self.events().iter().filter(|e| e["event"] == event).count()
    }

    /// Polls until its log has `n` events of this name.
    fn wait_for(&self, event: &str, n: usize) {
        poll(
            &format!("{n} {event} events in {}", self.log.display()),
            || (self.count(event) >= n).then_some(()),
        );
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its exit code (it must end within HANG).
    fn wait(mut self) -> (Option<i32>, String) {
        let status = self.kid.wait(HANG);
        (status.code(), self.log_text())
    }

    /// SIGTERM, then its exit code.
    fn stop(self) -> (Option<i32>, String) {
        signal(&self.kid, libc::SIGTERM);
        self.wait()
    }
}

/// The `--json` lines a worker wrote.
fn json_lines(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(json)
        .collect()
}

/// An environment with the inbox `in/` and a catalog of `skus` skus.
fn inbox_env(backend: Backend, skus: usize, stock: i64) -> Env {
    let env = env_for(backend);
    std::fs::create_dir(env.path("in")).unwrap();
    env.write("catalog.csv", catalog(skus, stock));
    env.ok(&["inventory", "load", "catalog.csv"], 0);
    env
}

/// `n` orders of one or two lines, ids `PREFIX-i`, over `skus` skus.
fn orders(prefix: &str, n: usize, skus: usize) -> String {
    let rows: Vec<String> = (0..n)
        .map(|i| {
            let a = (i * 7 + prefix.len()) % skus;
            let lines: Vec<(usize, u32)> = if i % 3 == 0 {
                vec![(a, 1 + (i % 2) as u32), ((a + 1) % skus, 1)]
            } else {
                vec![(a, 1)]
            };
            order_rows(&format!("{prefix}-{i}"), &lines)
        })
        .collect();
    csv_file(&rows)
}

/// Writes a file under `NAME.part`, then renames it into place, as an
/// uploader does.
fn arrive(env: &Env, name: &str, content: &[u8]) {
    let part = env.path(&format!("in/{name}.part"));
    std::fs::write(&part, content).unwrap();
    std::fs::rename(&part, env.path(&format!("in/{name}"))).unwrap();
}

/// A file whose modification time is well past any `--settle` of these tests.
fn arrived_long_ago(env: &Env, name: &str, content: &[u8]) {
    arrive(env, name, content);
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(env.path(&format!("in/{name}")))
        .unwrap()
        .set_modified(old)
        .unwrap();
}

fn names(env: &Env, dir: &str) -> BTreeSet<String> {
    env.entries(dir, "").into_iter().collect()
}

/// The rows of `inbox_attempts` for a file name, oldest first, as
/// (attempt, outcome, started_at, ended_at, next_try_at, run_id, message).
#[derive(Debug, Clone)]
struct Attempt {
    attempt: i64,
    outcome: String,
    started_at: i64,
    ended_at: Option<i64>,
    next_try_at: Option<i64>,
    run_id: Option<i64>,
    message: String,
}

fn attempts(env: &Env, name: &str) -> Vec<Attempt> {
    env.sql(&format!(
        "SELECT attempt, coalesce(outcome, ''), started_at, ended_at, next_try_at, run_id, coalesce(message, '')
         FROM inbox_attempts WHERE name = '{name}' ORDER BY started_at, attempt"
    ))
    .iter()
    .map(|l| {
        let f: Vec<&str> = l.splitn(7, '|').collect();
        let opt = |s: &str| s.parse::<i64>().ok();
        Attempt {
            attempt: f[0].parse().unwrap(),
            outcome: f[1].to_string(),
            started_at: f[2].parse().unwrap(),
            ended_at: opt(f[3]),
            next_try_at: opt(f[4]),
            run_id: opt(f[5]),
            message: f[6].to_string(),
        }
    })
    .collect()
}

/// The samples of a metrics file, by series as written.
fn metrics(env: &Env, name: &str) -> BTreeMap<String, f64> {
    std::fs::read_to_string(env.path(name))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect()
}

// ---------------------------------------------------------------- one worker

/// A file written in place is left alone while it is written: the worker
/// looks at it (its metrics say so) and leaves it; once the rest is
/// written and it stays unchanged for --settle, it is taken, once, whole.
/// Files under a writer's name (`.part`) are never taken.
#[test]
fn a_file_still_being_written_is_left_alone_until_it_is_complete() {
    let env = inbox_env(Backend::Sqlite, 5, 1000);
    let content = orders("W", 40, 5);
    let (head, tail) = content.split_at(content.len() / 2);
    env.write("in/never.csv.part", orders("P", 3, 5));
    let w = Worker::start(
        &env,
        "w",
        &["--watch", "--settle", "3", "--metrics-file", "w.prom"],
    );
    let written = unix_now();
    env.write("in/slow.csv", head);
    // The worker looked at the directory after the first half was written
    // and left the file alone.
    poll("a look at the half-written file", || {
        let m = metrics(&env, "w.prom");
        let looked = m.get("orderbatch_inbox_last_pass_timestamp_seconds")? > &written;
        let waiting = m.get("orderbatch_inbox_files{state=\"waiting\"}") == Some(&1.0);
        (looked && waiting).then_some(())
    });
    assert!(env.exists("in/slow.csv"));
    assert!(
        attempts(&env, "slow.csv").is_empty(),
        "not claimed while written"
    );
    // The rest, well within --settle.
    use std::io::Write;
    let mut f = std::fs::File::options()
        .append(true)
        .open(env.path("in/slow.csv"))
        .unwrap();
    f.write_all(tail.as_bytes()).unwrap();
    drop(f);
    poll("the file in done", || {
        env.exists("in/done/slow.csv").then_some(())
    });
    let (code, log) = w.stop();
    assert_eq!(code, Some(0), "{log}");
    let tries = attempts(&env, "slow.csv");
    assert_eq!(tries.len(), 1, "{tries:?}");
    assert_eq!(tries[0].outcome, "done");
    assert_eq!(env.count("SELECT count(*) FROM orders"), 40, "taken whole");
    assert_eq!(env.read("in/done/slow.csv"), content);
    assert!(env.exists("in/never.csv.part"));
    assert!(attempts(&env, "never.csv.part").is_empty());
    env.verify_ok();
}

// ---------------------------------------------------------------- retries

/// Each try after a retry came no sooner than the next try its row
/// recorded, and each recorded delay stayed within its ceiling (full jitter
/// under 1 s, 2 s, 4 s, … for the first, second, third … retry).
fn assert_backoff(tries: &[Attempt]) {
    for pair in tries.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert_eq!(a.outcome, "retry", "{tries:?}");
        let (ended, next) = (a.ended_at.unwrap(), a.next_try_at.unwrap());
        let ceiling = 1000i64 << (a.attempt - 1);
        assert!(
            (ended..=ended + ceiling).contains(&next),
            "the delay after try {} is within 0..{ceiling} ms: {tries:?}",
            a.attempt
        );
        assert!(
            b.started_at >= next,
            "try {} came no sooner than the next try recorded: {tries:?}",
            b.attempt
        );
    }
}

/// What keeps every try of a file from finishing, for a while: on
/// PostgreSQL another session holds the stock rows past --lock-timeout; on
/// SQLite there is no room for the reports (--out is a file).
fn hold_every_try(env: &Env) -> (Option<PgSession>, Vec<&'static str>) {
    match env.backend {
        Backend::Postgres => {
            let mut gate = PgSession::open(&env.db);
            gate.exec("BEGIN; SELECT sku FROM products ORDER BY sku FOR UPDATE");
            (Some(gate), vec!["--lock-timeout", "0.3"])
        }
        Backend::Sqlite => {
            env.write("not-a-dir", "x");
            (None, vec!["--out", "not-a-dir"])
        }
    }
}

#[test]
fn a_file_that_cannot_finish_is_tried_again_after_its_backoff_then_failed() {
    for backend in backends() {
        let env = inbox_env(backend, 5, 1000);
        arrived_long_ago(&env, "a.csv", orders("A", 5, 5).as_bytes());
        let (gate, mut args) = hold_every_try(&env);
        args.extend(["--settle", "0", "--max-attempts", "3"]);
        // Without --watch: one try, the file left for later (75).
        let (code, log) = Worker::start(&env, "once", &args).wait();
        assert_eq!(code, Some(75), "{log}");
        assert!(log.contains("inbox_retry"), "{log}");
        assert!(env.exists("in/a.csv"));
        let first = attempts(&env, "a.csv");
        assert_eq!(first.len(), 1, "{first:?}");
        // Started again, a worker tries no sooner than the delay recorded,
        // and after --max-attempts tries the file goes to failed.
        args.push("--watch");
        let w = Worker::start(&env, "watch", &args);
        poll("the file in failed", || {
            env.exists("in/failed/a.csv.error").then_some(())
        });
        let (code, log) = w.stop();
        assert_eq!(code, Some(0), "{log}");
        let tries = attempts(&env, "a.csv");
        assert_eq!(tries.len(), 3, "{tries:?}");
        assert_backoff(&tries);
        let last = &tries[2];
        assert_eq!((last.attempt, last.outcome.as_str()), (3, "failed"));
        let why = match backend {
            Backend::Postgres => "stayed locked",
            Backend::Sqlite => "cannot write reports under not-a-dir",
        };
        let error = env.read("in/failed/a.csv.error");
        assert_eq!(error.lines().count(), 1, "{error}");
        for needle in ["tried 3 times", why, "put the file into in again"] {
            assert!(error.contains(needle), "{needle:?} in {error}");
            assert!(last.message.contains(needle), "{needle:?} in {last:?}");
        }
        assert_eq!(env.count("SELECT count(*) FROM orders"), 0);
        drop(gate);
    }
}

// ---------------------------------------------------------------- the database out of reach

/// A `--db` that cannot be reached yet, and what brings it.
fn unreachable_db(env: &Env) -> (String, Box<dyn Fn() + '_>) {
    match env.backend {
        Backend::Sqlite => (
            "later/ob.db".into(),
            Box::new(|| {
                // The database with its catalog, in a directory that was missing.
                let tmp = env.path("later.tmp");
                std::fs::create_dir(&tmp).unwrap();
                std::fs::copy(env.path("orderbatch.db"), tmp.join("ob.db")).unwrap();
                std::fs::rename(&tmp, env.path("later")).unwrap();
            }),
        ),
        Backend::Postgres => {
            let template = env.db.rsplit('/').next().unwrap().to_string();
            let name = format!("{template}_late");
            let url = pg::cluster().url(&name);
            (
                url,
                Box::new(move || {
                    let sql = format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\"");
                    pg::cluster().psql(&pg::cluster().superuser_url(), &sql);
                }),
            )
        }
    }
}

#[test]
fn while_the_database_cannot_be_reached_nothing_is_claimed() {
    for backend in backends() {
        let env = inbox_env(backend, 5, 1000);
        arrived_long_ago(&env, "a.csv", orders("U", 5, 5).as_bytes());
        let (db, bring_back) = unreachable_db(&env);
        let (code, log) = Worker::start_on(&env, &db, "once", &["--settle", "0"]).wait();
        assert_eq!(code, Some(75), "{log}");
        assert!(log.contains("cannot reach the database"), "{log}");
        assert!(env.exists("in/a.csv"));
        let args = ["--watch", "--settle", "0", "--metrics-file", "w.prom"];
        let w = Worker::start_on(&env, &db, "watch", &args);
        w.wait_for("inbox_database_unreachable", 2);
        let m = metrics(&env, "w.prom");
        assert_eq!(m["orderbatch_inbox_database_up"], 0.0, "{m:?}");
        assert!(env.exists("in/a.csv"));
        bring_back();
        poll("the file in done", || {
            env.exists("in/done/a.csv").then_some(())
        });
        poll("the metrics say the database is up", || {
            (metrics(&env, "w.prom").get("orderbatch_inbox_database_up") == Some(&1.0))
                .then_some(())
        });
        let (code, log) = w.stop();
        assert_eq!(code, Some(0), "{log}");
        let late = Env {
            dir: tempfile::tempdir().unwrap(),
            backend,
            db: match backend {
                Backend::Sqlite => env.path("later/ob.db").display().to_string(),
                Backend::Postgres => db.clone(),
            },
        };
        let orders = match backend {
            Backend::Sqlite => rusqlite::Connection::open(&late.db)
                .unwrap()
                .query_row("SELECT count(*) FROM orders", [], |r| r.get::<_, i64>(0))
                .unwrap(),
            Backend::Postgres => late.count("SELECT count(*) FROM orders"),
        };
        assert_eq!(orders, 5);
    }
}

// ---------------------------------------------------------------- stopped, killed, cut off

/// How many orders a file given to a run that must still be going when
/// the test acts: on SQLite, where nothing else can hold it up, so many
/// that a debug build takes seconds over them.
fn orders_held_up(backend: Backend) -> usize {
    match backend {
        Backend::Postgres => 50,
        Backend::Sqlite => 20_000,
    }
}

/// Holds a run of the env's database before its commit, returning the
/// gate to let it go (PostgreSQL: a session holding the stock rows, which
/// the run waits for in its transaction); on SQLite the run is long enough
/// by itself (see [`orders_held_up`]), and is seen going by its partial
/// report directory.
fn run_held_up(env: &Env, gate: Option<&mut PgSession>) {
    match gate {
        Some(_) => {
            let mut probe = PgSession::open(&env.db);
            poll("the run waiting for its stock", || {
                (waiting_in(&mut probe, "FROM products") > 0).then_some(())
            });
        }
        None => poll("the run under way", || {
            (!env.entries("reports", ".run-").is_empty()).then_some(())
        }),
    }
}

fn stock_gate(env: &Env) -> Option<PgSession> {
    (env.backend == Backend::Postgres).then(|| {
        let mut g = PgSession::open(&env.db);
        g.exec("BEGIN; SELECT sku FROM products ORDER BY sku FOR UPDATE");
        g
    })
}

#[test]
fn sigterm_mid_file_releases_the_claim_uncounted_and_the_next_worker_takes_it() {
    for backend in backends() {
        let env = inbox_env(backend, 5, 1_000_000);
        let n = orders_held_up(backend);
        arrived_long_ago(&env, "a.csv", orders("S", n, 5).as_bytes());
        let mut gate = stock_gate(&env);
        let args = ["--watch", "--settle", "0", "--lock-timeout", "60"];
        let w = Worker::start(&env, "first", &args);
        run_held_up(&env, gate.as_mut());
        signal(&w.kid, libc::SIGTERM);
        w.wait_for("interrupted", 1);
        if let Some(g) = gate.as_mut() {
            g.exec("ROLLBACK");
        }
        let (code, log) = w.wait();
        assert_eq!(code, Some(0), "{log}");
        assert!(log.contains("nothing of run 1 will be committed"), "{log}");
        assert!(env.exists("in/a.csv"), "the file stays");
        assert_eq!(env.count("SELECT count(*) FROM orders"), 0);
        let claim = env.sql("SELECT state, attempts FROM inbox_claims");
        assert_eq!(claim, ["waiting|0"], "released, the try not counted");
        let tries = attempts(&env, "a.csv");
        assert_eq!(tries[0].outcome, "stopped", "{tries:?}");
        assert_eq!(env.run_statuses()[&1], "interrupted");
        // The next worker takes it, as its first counted try.
        let (code, log) = Worker::start(&env, "next", &["--settle", "0"]).wait();
        assert_eq!(code, Some(0), "{log}");
        assert!(env.exists("in/done/a.csv"));
        let tries = attempts(&env, "a.csv");
        assert_eq!(
            tries
                .iter()
                .map(|t| (t.attempt, t.outcome.as_str()))
                .collect::<Vec<_>>(),
            [(1, "stopped"), (1, "done")]
        );
        assert_eq!(env.count("SELECT count(*) FROM orders"), n as i64);
        env.verify_ok();
    }
}

/// What a database holds after a file's run, for comparing with a clean run.
fn end_state(env: &Env) -> (BTreeMap<String, i64>, Vec<String>, i64) {
    (
        env.stock(),
        env.sql("SELECT order_id FROM orders ORDER BY order_id"),
        env.count("SELECT count(*) FROM failed_orders"),
    )
}

/// The end state of one clean run of `content` on a fresh database.
fn clean_run(
    backend: Backend,
    skus: usize,
    stock: i64,
    content: &str,
) -> (BTreeMap<String, i64>, Vec<String>, i64) {
    let env = inbox_env(backend, skus, stock);
    env.write("f.csv", content);
    let out = env.run(&["process", "f.csv"]);
    assert!(matches!(out.status.code(), Some(0 | 3)), "{out:?}");
    end_state(&env)
}

/// Once the killed worker's lease has ended by the database's clock.
fn wait_lease_lapsed(env: &Env) {
    let now = match env.backend {
        Backend::Postgres => "(extract(epoch from clock_timestamp()) * 1000)::bigint",
        Backend::Sqlite => "CAST(unixepoch('subsec') * 1000 AS INTEGER)",
    };
    poll("the claim's lease to end", || {
        let q = format!(
            "SELECT count(*) FROM inbox_claims WHERE state = 'claimed' AND lease_until < {now}"
        );
        (env.count(&q) == 1).then_some(())
    });
}

/// Where a worker is killed.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// PostgreSQL: claiming its orders, another session holding one of their ids.
    Claiming,
    /// PostgreSQL: in its locked section (its stock rows held), at the fence
    /// before its commit, another session holding the claim's row.
    Locked,
    /// SQLite: while its (long) run goes on.
    Running,
}

/// What holds a run up before the worker starts (PostgreSQL).
fn gates_before(env: &Env, point: Kill, n: usize) -> Vec<PgSession> {
    match point {
        Kill::Claiming => {
            let mut g = PgSession::open(&env.db);
            g.exec(&format!(
                "BEGIN; INSERT INTO orders (order_id, content_hash, run_id, run_seq, source_file, source_line,
                 placed_at, customer_email, currency, payment_method, payment_ref, payment_amount, total,
                 lines, units, items)
                 VALUES ('K-{}', '\\x00'::bytea, 0, 0, 'held', 0, 'x', 'x', 'EUR', 'card', 'x', 0, 0, 1, 1, '[]')",
                n / 2
            ));
            vec![g]
        }
        Kill::Locked => vec![stock_gate(env).unwrap()],
        Kill::Running => Vec::new(),
    }
}

/// Waits until the worker's run is where `point` says.
fn held_at(env: &Env, point: Kill, mut probe: Option<&mut PgSession>, gates: &mut Vec<PgSession>) {
    match point {
        Kill::Claiming => poll("the run waiting for an order id", || {
            let p = probe.as_deref_mut()?;
            (waiting_in(p, "INSERT INTO orders") > 0).then_some(())
        }),
        Kill::Locked => {
            let p = probe.unwrap();
            poll("the run waiting for its stock", || {
                (waiting_in(p, "FROM products") > 0).then_some(())
            });
            let mut claim = PgSession::open(&env.db);
            claim.exec("BEGIN; SELECT 1 FROM inbox_claims FOR SHARE");
            gates[0].exec("ROLLBACK");
            poll("the run at its fence, in its locked section", || {
                (waiting_in(p, "SELECT 1 FROM inbox_claims") > 0).then_some(())
            });
            let held = p.exec(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                 WHERE a.application_name = 'orderbatch' AND a.datname = current_database()
                   AND l.relation = 'products'::regclass AND l.mode = 'RowShareLock' AND l.granted",
            );
            assert_eq!(held, ["1"], "the run holds its stock rows while it waits");
            gates.push(claim);
        }
        Kill::Running => run_held_up(env, None),
    }
}

/// Kills a worker at `point`, then lets another take the file over once
/// the lease has ended: the end state is that of one clean run.
fn killed_and_taken_over(backend: Backend, point: Kill) {
    let (skus, stock) = (5, 1_000_000);
    let env = inbox_env(backend, skus, stock);
    let n = orders_held_up(backend);
    let content = orders("K", n, skus);
    arrived_long_ago(&env, "a.csv", content.as_bytes());
    let mut probe = (backend == Backend::Postgres).then(|| PgSession::open(&env.db));
    let mut gates = gates_before(&env, point, n);
    let args = [
        "--watch",
        "--settle",
        "0",
        "--lease",
        "1",
        "--lock-timeout",
        "60",
    ];
    let w = Worker::start(&env, "killed", &args);
    held_at(&env, point, probe.as_mut(), &mut gates);
    let mut kid = w.kid;
    kid.kill();
    for mut g in gates {
        g.exec("ROLLBACK");
    }
    if let Some(p) = probe.as_mut() {
        procs::wait_backends_gone(p);
    }
    wait_lease_lapsed(&env);
    let args = ["--settle", "0", "--metrics-file", "next.prom"];
    let next = Worker::start(&env, "next", &args);
    let (code, log) = next.wait();
    assert_eq!(code, Some(0), "{point:?}: {log}");
    assert!(log.contains("inbox_takeover"), "{log}");
    assert_eq!(
        metrics(&env, "next.prom")["orderbatch_inbox_takeovers"],
        1.0
    );
    assert!(env.exists("in/done/a.csv"), "{point:?}");
    let tries = attempts(&env, "a.csv");
    let shown: Vec<(i64, &str)> = tries
        .iter()
        .map(|t| (t.attempt, t.outcome.as_str()))
        .collect();
    assert_eq!(shown, [(1, "lapsed"), (2, "done")], "{point:?}");
    assert_eq!(env.run_statuses()[&1], "interrupted", "{point:?}");
    assert_eq!(
        end_state(&env),
        clean_run(backend, skus, stock, &content),
        "{point:?}"
    );
    env.verify_ok();
}

#[test]
fn a_worker_killed_mid_run_is_taken_over_after_its_lease() {
    killed_and_taken_over(Backend::Sqlite, Kill::Running);
    if !pg::skip_requested() {
        killed_and_taken_over(Backend::Postgres, Kill::Claiming);
    }
}

#[test]
fn a_worker_killed_in_its_locked_section_is_taken_over_after_its_lease() {
    if pg::skip_requested() {
        eprintln!("!!! ORDERBATCH_SKIP_PG=1: this PostgreSQL test is SKIPPED");
        return;
    }
    killed_and_taken_over(Backend::Postgres, Kill::Locked);
}

/// A worker whose heartbeat cannot reach the database (its session ended,
/// and its role no longer allowed to log in) loses its claim when the lease
/// ends: its run, held up meanwhile, does not commit, and it does not move
/// the file; another worker takes the file over and it is done once.
#[test]
fn a_worker_whose_heartbeat_cannot_reach_the_database_neither_commits_nor_moves() {
    if pg::skip_requested() {
        eprintln!("!!! ORDERBATCH_SKIP_PG=1: this PostgreSQL test is SKIPPED");
        return;
    }
    let env = inbox_env(Backend::Postgres, 5, 1_000_000);
    arrived_long_ago(&env, "a.csv", orders("H", 50, 5).as_bytes());
    // The worker's own role, cut off later (login is checked when a session starts).
    let role = format!("cut_{}", std::process::id());
    let cluster = pg::cluster();
    cluster.psql(
        &cluster.superuser_url(),
        &format!("CREATE ROLE {role} LOGIN SUPERUSER"),
    );
    let url = env.db.replacen(
        "postgresql://postgres@",
        &format!("postgresql://{role}@"),
        1,
    );
    let mut gate = stock_gate(&env).unwrap();
    let args = [
        "--watch",
        "--settle",
        "0",
        "--lease",
        "2",
        "--lock-timeout",
        "60",
    ];
    let w = Worker::start_on(&env, &url, "cut", &args);
    let mut probe = PgSession::open(&env.db);
    poll("the run waiting for its stock", || {
        (waiting_in(&mut probe, "FROM products") > 0).then_some(())
    });
    let heartbeat = format!(
        "usename = '{role}' AND query LIKE 'UPDATE inbox_claims SET lease_until%' AND datname = current_database()"
    );
    poll("the heartbeat's session", || {
        let n = probe.exec(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE {heartbeat}"
        ));
        (n == ["1"]).then_some(())
    });
    probe.exec(&format!(
        "ALTER ROLE {role} NOLOGIN; SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {heartbeat}"
    ));
    w.wait_for("inbox_claim_lost", 1);
    wait_lease_lapsed(&env);
    // Another worker takes it over; it waits for the stock (and the cut-off
    // worker's uncommitted orders) while the gate holds.
    let next = Worker::start(&env, "next", &["--settle", "0", "--lock-timeout", "60"]);
    next.wait_for("inbox_takeover", 1);
    gate.exec("ROLLBACK");
    let (code, log) = next.wait();
    assert_eq!(code, Some(0), "{log}");
    w.wait_for("inbox_run_rolled_back", 1);
    probe.exec(&format!("ALTER ROLE {role} LOGIN"));
    let (code, log) = w.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        !log.contains("inbox_moved"),
        "the cut-off worker moved nothing: {log}"
    );
    assert!(env.exists("in/done/a.csv") && !env.exists("in/a.csv"));
    assert_eq!(
        names(&env, "in/done"),
        BTreeSet::from(["a.csv".to_string()])
    );
    let statuses = env.run_statuses();
    assert_eq!(statuses[&1], "interrupted", "{statuses:?}");
    assert_eq!(statuses[&2], "completed", "{statuses:?}");
    assert_eq!(env.count("SELECT count(*) FROM orders"), 50, "applied once");
    let shown: Vec<(i64, String)> = attempts(&env, "a.csv")
        .into_iter()
        .map(|t| (t.attempt, t.outcome))
        .collect();
    assert_eq!(shown, [(1, "lapsed".to_string()), (2, "done".to_string())]);
    env.verify_ok();
}

// ---------------------------------------------------------------- many workers

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The catalog of the many-worker tests: 20 skus, four of them short.
fn tight_catalog() -> String {
    catalog(20, 1000)
        .lines()
        .map(|l| match l.split(',').next() {
            Some("SKU-0" | "SKU-1" | "SKU-2" | "SKU-3") => l.replace(",1000", ",12"),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// A file's name and content.
type Named = (String, Vec<u8>);

/// The files of the many-worker tests, by name: complete files, two of the
/// same content, one missing a column, one not UTF-8; and the contents of
/// the files written in place, more slowly than --settle.
fn arrivals(normal: usize, slow: usize) -> (Vec<Named>, Vec<Named>) {
    let mut whole: Vec<(String, Vec<u8>)> = (0..normal)
        .map(|i| {
            (
                format!("n{i:02}.csv"),
                orders(&format!("N{i}"), 15, 20).into_bytes(),
            )
        })
        .collect();
    let dup = orders("D", 10, 20).into_bytes();
    whole.push(("dup-a.csv".into(), dup.clone()));
    whole.push(("dup-b.csv".into(), dup));
    let missing = orders("M", 3, 20).replace(",payment_amount\n", "\n");
    whole.push(("missing.csv".into(), missing.into_bytes()));
    // A column named "Straße" in latin1: a header that is not UTF-8.
    let mut latin1 = Vec::new();
    for (i, line) in orders("L", 3, 20).lines().enumerate() {
        latin1.extend(line.as_bytes());
        latin1.extend(if i == 0 { &b",Stra\xdfe"[..] } else { b",x" });
        latin1.push(b'\n');
    }
    whole.push(("latin1.csv".into(), latin1));
    let slow = (0..slow)
        .map(|i| {
            (
                format!("slow{i}.csv"),
                orders(&format!("W{i}"), 15, 20).into_bytes(),
            )
        })
        .collect();
    (whole, slow)
}

/// Writes `content` in place in ten parts, a fifth of --settle apart: the
/// whole takes longer than --settle, and no pause comes near it.
fn write_slowly(path: PathBuf, content: Vec<u8>, settle: Duration) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        use std::io::Write;
        let mut f = std::fs::File::create(&path).unwrap();
        for part in content.chunks(content.len().div_ceil(10)) {
            f.write_all(part).unwrap();
            f.flush().unwrap();
            std::thread::sleep(settle / 5);
        }
    })
}

/// The completed runs in an order they committed in: by their first ledger
/// entry (a run holds its stock rows while it writes them); runs that took
/// no stock last (stock only fell, so they decide the same there).
fn commit_order(env: &Env) -> Vec<String> {
    let mut runs: Vec<(i64, i64, String)> = env
        .sql(
            "SELECT coalesce(min(l.id), 9223372036854775807), r.id, i.path FROM runs r
             JOIN run_inputs i ON i.run_id = r.id LEFT JOIN stock_ledger l ON l.run_id = r.id
             WHERE r.status = 'completed' GROUP BY r.id, i.path",
        )
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.splitn(3, '|').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].to_string(),
            )
        })
        .collect();
    runs.sort();
    runs.into_iter().map(|(_, _, path)| path).collect()
}

/// `workers` workers on one inbox while `normal` + 4 complete files and
/// `slow` files written in place arrive: every complete file processed by
/// exactly one worker, each order applied once, the stock as a serial
/// replay of the runs leaves it, the half-written files untouched until
/// complete, the duplicate moved without a run, the bad files in failed.
fn many_workers(backend: Backend, workers: usize, normal: usize, slow: usize) {
    let env = env_for(backend);
    std::fs::create_dir(env.path("in")).unwrap();
    env.write("catalog.csv", tight_catalog());
    env.ok(&["inventory", "load", "catalog.csv"], 0);
    let settle = Duration::from_millis(1500);
    let started = Instant::now();
    let pool: Vec<Worker> = (0..workers)
        .map(|i| {
            let mut args = vec!["--watch", "--settle", "1.5", "--lease", "30", "--json"];
            args.extend(["--lock-timeout", "60", "--out", "reports"]);
            if i == 0 {
                args.extend(["--metrics-file", "w0.prom"]);
            }
            Worker::start(&env, &format!("w{i}"), &args)
        })
        .collect();
    let (whole, slowly) = arrivals(normal, slow);
    let writers: Vec<_> = slowly
        .iter()
        .map(|(name, content)| {
            write_slowly(env.path(&format!("in/{name}")), content.clone(), settle)
        })
        .collect();
    for (name, content) in &whole {
        arrive(&env, name, content);
    }
    for w in writers {
        w.join().unwrap();
    }
    let (done_n, failed_n) = (normal + slow + 2, 4);
    poll("every file moved", || {
        (names(&env, "in/done").len() == done_n && names(&env, "in/failed").len() == failed_n)
            .then_some(())
    });
    let took = started.elapsed();
    let mut lines = Vec::new();
    for w in pool {
        let out = w.out.clone();
        let (code, log) = w.stop();
        assert_eq!(code, Some(0), "{log}");
        // Read once it ended: a line follows its file's move.
        lines.extend(json_lines(&out));
    }
    eprintln!("{workers} workers, {} files: {took:?}", whole.len() + slow);
    check_many(&env, &whole, &slowly, &lines);
}

fn check_many(env: &Env, whole: &[Named], slowly: &[Named], lines: &[serde_json::Value]) {
    let failed = BTreeSet::from(
        [
            "latin1.csv",
            "latin1.csv.error",
            "missing.csv",
            "missing.csv.error",
        ]
        .map(String::from),
    );
    assert_eq!(names(env, "in/failed"), failed);
    assert!(env
        .read("in/failed/missing.csv.error")
        .contains("payment_amount"));
    assert!(env.read("in/failed/latin1.csv.error").contains("UTF-8"));
    assert_eq!(
        names(env, "in"),
        BTreeSet::from(["done".to_string(), "failed".to_string()])
    );
    // Each complete file: one try, by one worker, one committed run (the
    // second of the same content: moved as a duplicate of the first's run).
    let mut dup_runs = Vec::new();
    for (name, content) in whole.iter().chain(slowly) {
        if name.starts_with("missing") || name.starts_with("latin1") {
            continue;
        }
        // A worker that claims a file another one moved a moment before
        // finds it gone: that try ('vanished') did nothing.
        let tries: Vec<Attempt> = attempts(env, name)
            .into_iter()
            .filter(|t| t.outcome != "vanished")
            .collect();
        assert_eq!(tries.len(), 1, "{name}: {tries:?}");
        let sha = env.sql(&format!(
            "SELECT DISTINCT sha256 FROM inbox_attempts WHERE name = '{name}'"
        ));
        assert_eq!(
            sha,
            [sha256_hex(content)],
            "{name}: claimed complete, never part-written"
        );
        let runs = env.count(&format!(
            "SELECT count(*) FROM runs r JOIN run_inputs i ON i.run_id = r.id
             WHERE r.status = 'completed' AND i.path = 'in/{name}'"
        ));
        match name.strip_prefix("dup-") {
            Some(_) => dup_runs.push((tries[0].outcome.clone(), runs, tries[0].run_id)),
            None => assert_eq!((tries[0].outcome.as_str(), runs), ("done", 1), "{name}"),
        }
    }
    dup_runs.sort();
    assert_eq!(dup_runs[0].0, "done");
    assert_eq!((dup_runs[1].0.as_str(), dup_runs[1].1), ("duplicate", 0));
    assert_eq!(
        dup_runs[0].2, dup_runs[1].2,
        "the duplicate names the run that processed it"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM inbox_attempts WHERE name LIKE '%.part'"),
        0
    );
    assert_eq!(
        lines.len(),
        whole.len() + slowly.len(),
        "one --json line per file"
    );
    assert!(lines
        .iter()
        .all(|l| l["file"].is_string() && l["moved_to"].is_string()));
    assert_as_serial_replay(env);
    env.verify_ok();
}

/// Stock and orders as the same runs one after another leave them.
fn assert_as_serial_replay(env: &Env) {
    let replay = Env::new();
    replay.write("catalog.csv", tight_catalog());
    replay.ok(&["inventory", "load", "catalog.csv"], 0);
    for path in commit_order(env) {
        let name = path.rsplit('/').next().unwrap();
        std::fs::copy(env.path(&format!("in/done/{name}")), replay.path(name)).unwrap();
        let out = replay.run(&["process", name]);
        assert!(matches!(out.status.code(), Some(0 | 3)), "{out:?}");
    }
    assert_eq!(end_state(env), end_state(&replay));
    let short = "SELECT count(*) FROM failed_orders WHERE error_code = 'INSUFFICIENT_STOCK'";
    assert!(env.count(short) > 0, "the stock was tight enough to matter");
}

#[test]
fn four_workers_on_postgres_take_forty_arriving_files_exactly_once() {
    if pg::skip_requested() {
        eprintln!("!!! ORDERBATCH_SKIP_PG=1: this PostgreSQL test is SKIPPED");
        return;
    }
    many_workers(Backend::Postgres, 4, 32, 4);
}

#[test]
fn two_workers_on_sqlite_take_arriving_files_exactly_once() {
    many_workers(Backend::Sqlite, 2, 10, 2);
}
