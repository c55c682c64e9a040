//! `runs prune` on a year of nights, on both backends: what it forgets
//! (reports, skip records, settled failures, the detail of applied orders,
//! ledger entries carried forward) and what it keeps (open failures, what a
//! re-run needs, everything of the runs after the date, the ledger's sum);
//! and, on PostgreSQL, a prune beside a run, neither losing anything.

mod common;
mod procs;

use chrono::{Duration, SecondsFormat, Utc};
use common::*;
use procs::{poll, Kid, PgSession, HANG};

/// Nights of the generated year; with the reprocess, close, dry and aborted
/// runs between them, about 45 runs spread over 365 days.
const NIGHTS: usize = 30;

/// A catalog of SKU-0..SKU-5, 1,000 units each but SKU-5's 40 (the one
/// that runs out).
fn catalog_of_the_year() -> String {
    catalog(6, 1000).replace(
        "SKU-5,Product 5,15.00,EUR,1000",
        "SKU-5,Product 5,15.00,EUR,40",
    )
}

/// Night `n`'s file: six good orders (one unit each of SKU-0..SKU-3), the
/// first good order of the night before again (skipped), one order too big
/// for SKU-5 (INSUFFICIENT_STOCK), one of a sku gone (UNKNOWN_SKU), one
/// with a bad e-mail (INVALID_FIELD), a row that does not parse
/// (MALFORMED_RECORD) and a repeat of an order of the night
/// (DUPLICATE_IN_INPUT); some nights one at an old price (PRICE_MISMATCH,
/// left open). Every row carries a long note, as shop exports do.
fn night_file(n: usize) -> String {
    let note = format!(",{}", "gift wrap and leave at the door; ".repeat(20));
    let mut rows: Vec<String> = (0..6)
        .map(|k| order_rows(&format!("N{n}-OK-{k}"), &[(k % 4, 1)]))
        .collect();
    if n > 0 {
        rows.push(order_rows(&format!("N{}-OK-0", n - 1), &[(0, 1)]));
    }
    rows.push(order_rows(&format!("N{n}-BIG"), &[(5, 300)]));
    rows.push(order_rows(&format!("N{n}-GONE"), &[(0, 1)]).replace("SKU-0", "GONE-7"));
    rows.push(
        order_rows(&format!("N{n}-BAD"), &[(1, 1)])
            .replace("buyer@example.com", "buyer at example"),
    );
    rows.push("N-broken,2026-11-25T22:14:03Z,only,four fields\n".into());
    if n % 10 == 2 {
        // An old price: never retried nor closed, open for good.
        rows.push(order_rows(&format!("N{n}-PRICE"), &[(0, 1)]).replace(",10.00,EUR", ",9.00,EUR"));
    }
    rows.push(order_rows(&format!("N{n}-OK-1"), &[(1, 1)]));
    let body: String = rows
        .concat()
        .lines()
        .map(|l| {
            if l.starts_with("N-broken") {
                format!("{l}\n")
            } else {
                format!("{l}{note}\n")
            }
        })
        .collect();
    format!("{HEADER},note\n{body}")
}

/// A year of nights on a fresh database, and the times of its runs spread
/// over the last 365 days (the ledger's entries outside runs, and each
/// run's summary.json, moved with them).
fn a_year(b: Backend) -> Env {
    let env = env_for(b);
    fill_a_year(&env);
    env
}

fn fill_a_year(env: &Env) {
    env.write("catalog.csv", catalog_of_the_year());
    env.ok(&["inventory", "load", "catalog.csv"], 0);
    env.write("restock.csv", "sku,quantity\nSKU-5,300\n");
    for n in 0..NIGHTS {
        let name = format!("night-{n}.csv");
        env.write(&name, night_file(n));
        match n {
            7 => env.ok(&["process", &name, "--dry-run"], 3),
            11 => env.ok(&["process", &name, "--max-errors", "1"], 4),
            _ => env.ok(&["process", &name], 3),
        };
        if n % 4 == 3 {
            env.ok(&["inventory", "receive", "restock.csv"], 0);
            env.ok(&["reprocess", "--code", "INSUFFICIENT_STOCK"], 3);
        }
        if n % 6 == 5 {
            env.ok(&["reprocess", "--code", "INVALID_FIELD"], 3);
        }
        if n % 8 == 7 {
            env.ok(
                &[
                    "failures",
                    "close",
                    "--code",
                    "UNKNOWN_SKU",
                    "--reason",
                    "gone",
                ],
                0,
            );
        }
    }
    spread_over_a_year(env);
}

fn spread_over_a_year(env: &Env) {
    let ids: Vec<i64> = env
        .sql("SELECT id FROM runs ORDER BY id")
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let start = Utc::now() - Duration::days(365);
    let step = Duration::days(365) / ids.len() as i32;
    for (i, id) in ids.iter().enumerate() {
        let fin = start + step * (i as i32 + 1);
        let t = |d: chrono::DateTime<Utc>| d.to_rfc3339_opts(SecondsFormat::Millis, true);
        let (started, finished) = (t(fin - Duration::seconds(2)), t(fin));
        env.sql(&format!(
            "UPDATE runs SET started_at = '{started}', finished_at = '{finished}' WHERE id = {id}"
        ));
        let summary = format!("reports/run-{id}/summary.json");
        if env.exists(&summary) {
            let mut s = json(&env.read(&summary));
            s["started_at"] = started.into();
            s["finished_at"] = finished.into();
            env.write(&summary, s.to_string());
        }
    }
    // A load or receive happened after the last run that moved stock before it.
    env.sql(
        "UPDATE stock_ledger SET at = coalesce((SELECT max(r.finished_at) FROM runs r
             WHERE r.id <= (SELECT max(l.run_id) FROM stock_ledger l WHERE l.id < stock_ledger.id)),
             '2000-01-01T00:00:00.000Z')
         WHERE run_id IS NULL",
    );
}

/// Every row of the runs that finished on or after `before`, table by table.
fn rows_kept(env: &Env, before: &str) -> Vec<String> {
    let kept =
        format!("(SELECT id FROM runs WHERE coalesce(finished_at, started_at) >= '{before}')");
    let mut out = Vec::new();
    for (table, key, order) in [
        ("runs", "id", "id"),
        ("run_inputs", "run_id", "run_id, seq"),
        ("orders", "run_id", "order_id"),
        ("run_skips", "run_id", "run_id, run_seq"),
        ("failed_orders", "run_id", "run_id, run_seq"),
        ("stock_ledger", "run_id", "id"),
    ] {
        let rows = env.sql(&format!(
            "SELECT * FROM {table} WHERE {key} IN {kept} ORDER BY {order}"
        ));
        assert!(
            !rows.is_empty() || table == "run_skips",
            "{table}: some rows to compare"
        );
        out.extend(rows.into_iter().map(|r| format!("{table}: {r}")));
    }
    out
}

/// The SQLite file itself, after its WAL is copied into it.
fn sqlite_file_size(env: &Env) -> u64 {
    env.db()
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    std::fs::metadata(env.path("orderbatch.db")).unwrap().len()
}

/// The lines a prune said, `--dry-run`'s wording made the real one's, and
/// the file's size (only the real one knows it) left out.
fn said(out: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.contains("database file:"))
        .map(|l| {
            l.replace("would prune", "pruned")
                .replace("would be removed", "removed")
        })
        .collect()
}

#[test]
fn runs_prune_on_a_year_of_nights_forgets_the_old_and_keeps_what_matters() {
    for b in backends() {
        let env = a_year(b);
        let ids: Vec<String> = env.sql("SELECT finished_at FROM runs ORDER BY id");
        let before = ids[ids.len() * 2 / 3].clone();
        let pruned: Vec<i64> = env
            .sql(&format!(
                "SELECT id FROM runs WHERE finished_at < '{before}' ORDER BY id"
            ))
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        env.verify_ok();
        let open_before = env.ok(&["failures", "list", "--json"], 0);
        let night_0 = env.count("SELECT count(*) FROM orders WHERE order_id LIKE 'N0-%'");
        let stock = env.stock();
        let kept = rows_kept(&env, &before);
        let everything = env.dump();
        let size = (b == Backend::Sqlite).then(|| sqlite_file_size(&env));

        let dry = env.run(&["runs", "prune", "--before", &before, "--dry-run"]);
        assert_eq!(dry.status.code(), Some(0), "{b:?}: {dry:?}");
        assert_eq!(env.dump(), everything, "{b:?}: a dry run changes nothing");
        assert!(env.exists("reports/run-1"), "{b:?}");
        let out = env.run(&["runs", "prune", "--before", &before]);
        assert_eq!(out.status.code(), Some(0), "{b:?}: {out:?}");
        assert_eq!(
            said(&out),
            said(&dry),
            "{b:?}: the dry run said what the prune did"
        );
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        eprintln!("{text}");
        assert!(
            text.starts_with(&format!(
                "runs prune --before {before}: pruned {} runs",
                pruned.len()
            )),
            "{b:?}: {text}"
        );

        env.verify_ok();
        assert_eq!(
            rows_kept(&env, &before),
            kept,
            "{b:?}: the runs after the date untouched"
        );
        assert_eq!(
            env.ok(&["failures", "list", "--json"], 0),
            open_before,
            "{b:?}: open failures kept"
        );
        assert_eq!(env.stock(), stock, "{b:?}");
        forgotten(&env, &pruned, b);
        if let Some(size) = size {
            let after = sqlite_file_size(&env);
            assert!(
                after < size,
                "{b:?}: the file gave its space back: {size} -> {after}"
            );
            assert!(
                text.contains("(VACUUM,") || text.contains("(incremental_vacuum,"),
                "{text}"
            );
        }
        // An old file fed again is still skipped: nothing applied twice.
        let s = json(&env.ok(&["process", "night-0.csv", "--json"], 3));
        assert_eq!(s["accepted"], 0, "{b:?}: {s}");
        assert_eq!(s["skipped"].as_i64(), Some(night_0), "{b:?}: {s}");
        assert_eq!(env.stock(), stock, "{b:?}");
        the_history_still_holds(&env, b, &before, ids.len());
        env.verify_ok();
    }
}

/// After the prune: a pruned run's report says so, the history lists every
/// run (`runs` of the year and the night fed again) and shows when one was
/// pruned, and the same prune again prunes nothing.
fn the_history_still_holds(env: &Env, b: Backend, before: &str, runs: usize) {
    // A pruned run says so; the history still lists it.
    let out = env.run(&["report", "accepted", "--run", "1"]);
    assert_eq!(out.status.code(), Some(2), "{b:?}");
    assert_one_error_line(&out, &["run 1 was pruned on ", ": its reports are gone"]);
    let list = json(&env.ok(&["runs", "list", "--json"], 0));
    assert_eq!(list.as_array().unwrap().len(), runs + 1, "{b:?}");
    let show = json(&env.ok(&["runs", "show", "1", "--json"], 0));
    assert!(show["pruned_at"].is_string(), "{b:?}: {show}");
    // Again: nothing more to prune, nothing changes.
    let again = env.dump();
    let out = env.run(&["runs", "prune", "--before", before]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(": pruned 0 runs"),
        "{b:?}: {out:?}"
    );
    if b == Backend::Postgres {
        assert_eq!(env.dump(), again, "{b:?}");
    }
}

/// What the prune forgot of the pruned runs, and what it kept of them.
fn forgotten(env: &Env, pruned: &[i64], b: Backend) {
    let list = pruned
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let count = |sql: &str| env.count(&sql.replace("PRUNED", &list));
    assert_eq!(
        count("SELECT count(*) FROM run_skips WHERE run_id IN (PRUNED)"),
        0,
        "{b:?}"
    );
    assert_eq!(
        count("SELECT count(*) FROM failed_orders WHERE run_id IN (PRUNED) AND state <> 'open'"),
        0,
        "{b:?}"
    );
    assert!(
        count("SELECT count(*) FROM failed_orders WHERE run_id IN (PRUNED)") > 0,
        "{b:?}: open kept"
    );
    assert_eq!(
        count("SELECT count(*) FROM stock_ledger WHERE run_id IN (PRUNED)"),
        0,
        "{b:?}"
    );
    assert_eq!(
        count("SELECT count(*) FROM (SELECT sku FROM stock_ledger WHERE reason = 'carried' GROUP BY sku HAVING count(*) > 1) t"),
        0,
        "{b:?}: one carried-forward entry per sku"
    );
    assert!(
        count("SELECT count(*) FROM stock_ledger WHERE reason = 'carried'") > 0,
        "{b:?}"
    );
    assert_eq!(
        count("SELECT count(*) FROM orders WHERE run_id IN (PRUNED) AND (items <> '' OR customer_email <> '')"),
        0,
        "{b:?}: applied orders reduced"
    );
    assert!(
        count("SELECT count(*) FROM orders WHERE run_id IN (PRUNED)") > 0,
        "{b:?}: and kept"
    );
    assert_eq!(
        count("SELECT count(*) FROM runs WHERE id IN (PRUNED) AND pruned_at IS NULL"),
        0,
        "{b:?}"
    );
    for id in pruned {
        assert!(
            !env.exists(&format!("reports/run-{id}")),
            "{b:?}: reports of run {id} removed"
        );
    }
    let last = pruned.last().unwrap();
    assert!(
        env.exists(&format!("reports/run-{}", last + 1))
            || env.exists(&format!("reports/run-{}", last + 2))
    );
}

/// A SQLite database made with auto_vacuum=INCREMENTAL (by hand) is given
/// its space back that way, in steps; every other one by VACUUM.
#[test]
fn a_database_made_for_incremental_vacuum_is_given_its_space_back_in_steps() {
    let env = env_for(Backend::Sqlite);
    env.db()
        .execute_batch("PRAGMA page_size=16384; PRAGMA auto_vacuum=INCREMENTAL; CREATE TABLE x(a); DROP TABLE x;")
        .unwrap();
    fill_a_year(&env);
    let finished = env.sql("SELECT finished_at FROM runs ORDER BY id");
    let size = sqlite_file_size(&env);
    let out = env.run(&[
        "runs",
        "prune",
        "--before",
        &finished[finished.len() * 2 / 3],
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("(incremental_vacuum,"), "{text}");
    assert!(sqlite_file_size(&env) <= size, "{text}");
    assert_eq!(
        env.count("PRAGMA freelist_count"),
        0,
        "every free page given back"
    );
    env.verify_ok();
}

/// A prune and a run at once on PostgreSQL: a session holds the applied
/// orders so that both wait inside their transactions (the prune having
/// deleted its skips, failures and ledger entries, the run holding its stock
/// rows), then lets them go. Both commit; the run applied its new orders
/// and skipped the old ones whose records the prune was reducing; the prune
/// did what its dry run said; the ledger holds.
#[test]
fn a_prune_beside_a_run_on_postgres_loses_nothing_of_either() {
    if pg::skip_requested() {
        eprintln!("!!! ORDERBATCH_SKIP_PG=1: this PostgreSQL test is SKIPPED");
        return;
    }
    let env = a_year(Backend::Postgres);
    let finished = env.sql("SELECT finished_at FROM runs ORDER BY id");
    let before = finished[finished.len() / 2].clone();
    // Tonight: three new orders, and three of night 0 (pruned now) again.
    let mut rows: Vec<String> = (0..3)
        .map(|k| order_rows(&format!("TONIGHT-{k}"), &[(k, 2)]))
        .collect();
    rows.extend((0..3).map(|k| order_rows(&format!("N0-OK-{k}"), &[(k % 4, 1)])));
    let note = format!(",{}", "gift wrap and leave at the door; ".repeat(20));
    let body: String = rows
        .concat()
        .lines()
        .map(|l| format!("{l}{note}\n"))
        .collect();
    env.write("tonight.csv", format!("{HEADER},note\n{body}"));
    let dry = env.run(&["runs", "prune", "--before", &before, "--dry-run"]);
    let stock = env.stock();

    let mut gate = PgSession::open(&env.db);
    gate.exec("BEGIN; LOCK TABLE orders IN EXCLUSIVE MODE;");
    let mut probe = PgSession::open(&env.db);
    let mut run = spawn(&env, &["process", "tonight.csv", "--json"], "process");
    poll("the run to wait to claim its orders", || {
        (waiting(&mut probe) == 1).then_some(())
    });
    let mut prune = spawn(&env, &["runs", "prune", "--before", &before], "runs prune");
    poll("the prune to wait to reduce the orders", || {
        (waiting(&mut probe) == 2).then_some(())
    });
    gate.exec("ROLLBACK;");
    assert_eq!(prune.wait(HANG).code(), Some(0));
    assert_eq!(run.wait(HANG).code(), Some(0));
    let summary = json(&procs::drain(run.take_stdout()).join().unwrap());
    assert_eq!(
        (summary["accepted"].as_u64(), summary["skipped"].as_u64()),
        (Some(3), Some(3)),
        "{summary}"
    );
    let out = std::process::Output {
        status: prune.wait(HANG),
        stdout: Vec::new(),
        stderr: procs::drain(prune.take_stderr())
            .join()
            .unwrap()
            .into_bytes(),
    };
    assert_eq!(
        said(&out),
        said(&dry),
        "the prune did what it would have done alone"
    );
    let now = env.stock();
    for k in 0..3 {
        let sku = format!("SKU-{k}");
        assert_eq!(
            now[&sku],
            stock[&sku] - 2,
            "{sku}: only tonight's new orders took stock"
        );
    }
    env.verify_ok();
    let again = json(&env.ok(&["process", "tonight.csv", "--json"], 0));
    assert_eq!(
        again["skipped"], 6,
        "every order of tonight applied once: {again}"
    );
}

fn spawn(env: &Env, args: &[&str], what: &str) -> Kid {
    let mut cmd = env.spawnable();
    cmd.args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    Kid::spawn(&mut cmd, what)
}

/// orderbatch sessions of this database waiting for a lock.
fn waiting(probe: &mut PgSession) -> usize {
    probe.exec(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = 'orderbatch'
           AND wait_event_type = 'Lock'",
    )[0]
    .parse()
    .unwrap()
}
