//! The morning after a night with failures, as ops work through it: the
//! open failures listed by code, retried by code after a restock, closed by
//! code or order id; the summary line that says why; the run history by
//! host, status and count; reports of runs that stored none; and read-only
//! commands that never create a database a typo named.

mod common;

use common::*;

/// A read-only command given a SQLite path where no file is says so, exits
/// 1 and creates nothing; a command that writes still creates the database.
/// On PostgreSQL a database that does not exist is named the same way by
/// reads and writes (orderbatch never creates one there).
#[test]
fn read_only_commands_on_a_missing_database_create_nothing() {
    let env = Env::new();
    let reads: [&[&str]; 8] = [
        &["runs", "list"],
        &["runs", "show", "1"],
        &["failures", "list"],
        &["report", "accepted", "--run", "1"],
        &["report", "failed", "--run", "1"],
        &["verify"],
        &["inventory", "export"],
        &["inventory", "export", "-o", "stock.csv"],
    ];
    for args in reads {
        let out = env
            .cmd()
            .args(["--db", "typo.db"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert_one_error_line(
            &out,
            &["no database at typo.db: check --db (commands that write create it)"],
        );
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
        assert_eq!(
            env.entries(".", ""),
            Vec::<String>::new(),
            "{args:?}: nothing created"
        );
    }
    // The variable names it the same way.
    let out = env
        .cmd()
        .env("ORDERBATCH_DB", "typo.db")
        .args(["runs", "list"])
        .output()
        .unwrap();
    assert_one_error_line(&out, &["no database at typo.db"]);
    assert!(!env.exists("typo.db"));
    // A command that writes creates it; then the reads work.
    env.ok(&["--db", "typo.db", "init"], 0);
    assert!(env.exists("typo.db"));
    assert_eq!(
        env.ok(&["--db", "typo.db", "runs", "list"], 0)
            .lines()
            .count(),
        1,
        "the header only"
    );
    env.ok(&["--db", "typo.db", "verify"], 0);

    if backends().contains(&Backend::Postgres) {
        let url = pg::cluster().url("no_such_database");
        for args in [&["runs", "list"][..], &["init"]] {
            let out = env.cmd().args(["--db", &url]).args(args).output().unwrap();
            assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
            assert_one_error_line(&out, &["no_such_database", "does not exist"]);
        }
    }
}
