//! `--db` as a PostgreSQL URL, seen from outside: a password, however the
//! URL carries it, appears in no output (messages, JSON log, `verify`, the
//! run history, report files), also when the connection fails; and a `--db`
//! that cannot be read one way only (an unencoded separator in the
//! password, a libpq keyword/value string, an unknown parameter) is refused
//! with exit 2 before any file is created.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Output;

use common::*;

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
