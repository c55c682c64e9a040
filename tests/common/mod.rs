//! Helpers for the integration tests: a temp directory with its own database,
//! and the real binary run inside it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;

pub const HEADER: &str = "order_id,placed_at,customer_email,sku,quantity,unit_price,currency,payment_method,payment_ref,payment_amount";

pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, content).unwrap();
        p
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    pub fn exists(&self, name: &str) -> bool {
        self.path(name).exists()
    }

    /// The binary, run in the temp dir, with no ORDERBATCH_DB from outside.
    pub fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("orderbatch").unwrap();
        c.current_dir(self.dir.path()).env_remove("ORDERBATCH_DB");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Run and insist on an exit code; returns stdout.
    pub fn ok(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "orderbatch {args:?}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.path("orderbatch.db")).unwrap()
    }

    /// sku -> on_hand.
    pub fn stock(&self) -> BTreeMap<String, i64> {
        let c = self.db();
        let mut st = c.prepare("SELECT sku, on_hand FROM products").unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.db().query_row(sql, [], |r| r.get(0)).unwrap()
    }
}

/// A catalog of `n` EUR products SKU-0..SKU-n priced 10.00 + i, with `stock` each.
pub fn catalog(n: usize, stock: i64) -> String {
    let mut s = String::from("sku,name,unit_price,currency,on_hand\n");
    for i in 0..n {
        s.push_str(&format!("SKU-{i},Product {i},{}.00,EUR,{stock}\n", 10 + i));
    }
    s
}

/// One CSV order: lines of (sku index, quantity) priced as `catalog` prices them.
pub fn order_rows(id: &str, lines: &[(usize, u32)]) -> String {
    let total: u64 = lines
        .iter()
        .map(|(i, q)| (10 + *i as u64) * 100 * u64::from(*q))
        .sum();
    let amount = format!("{}.{:02}", total / 100, total % 100);
    lines
        .iter()
        .map(|(i, q)| {
            format!(
                "{id},2026-11-25T22:14:03Z,buyer@example.com,SKU-{i},{q},{}.00,EUR,card,ref-{id},{amount}\n",
                10 + i
            )
        })
        .collect()
}

pub fn csv_file(orders: &[String]) -> String {
    let mut s = format!("{HEADER}\n");
    for o in orders {
        s.push_str(o);
    }
    s
}

pub fn file_bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

// Helpers added for tests/hostile.rs and tests/faults.rs.

/// The built binary, for running it through a shell or spawning it.
pub fn bin_path() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_orderbatch"))
}

impl Env {
    /// The binary as a spawnable std Command, in the temp dir, with no
    /// ORDERBATCH_DB from outside and no output captured.
    pub fn spawnable(&self) -> std::process::Command {
        let mut c = std::process::Command::new(bin_path());
        c.current_dir(self.dir.path())
            .env_remove("ORDERBATCH_DB")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        c
    }

    /// `PRAGMA integrity_check` of the database ("ok" when sound).
    pub fn integrity(&self) -> String {
        let c = self.db();
        let mut st = c.prepare("PRAGMA integrity_check").unwrap();
        let rows: Vec<String> = st
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rows.join("\n")
    }

    /// run id -> status, from the run history.
    pub fn run_statuses(&self) -> BTreeMap<i64, String> {
        let c = self.db();
        let mut st = c.prepare("SELECT id, status FROM runs").unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// Names of the entries of `dir` (relative to the temp dir) that start
    /// with `prefix`, sorted; empty when `dir` does not exist.
    pub fn entries(&self, dir: &str, prefix: &str) -> Vec<String> {
        let mut names: Vec<String> = match std::fs::read_dir(self.path(dir)) {
            Ok(rd) => rd
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
    }

    /// `orderbatch verify` exits 0.
    pub fn verify_ok(&self) {
        self.ok(&["verify"], 0);
    }
}

/// Stderr of a run holds no panic and no internal error.
pub fn assert_no_panic(out: &Output) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("panicked") && !err.contains("internal error"),
        "stderr: {err}"
    );
}

/// A fatal error: exactly one line on stderr, `orderbatch: error: ...`,
/// holding every one of `needles`.
pub fn assert_one_error_line(out: &Output, needles: &[&str]) {
    assert_no_panic(out);
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {err}");
    assert!(lines[0].starts_with("orderbatch: error: "), "{err}");
    for n in needles {
        assert!(lines[0].contains(n), "{n:?} in {err}");
    }
}

/// A CSV report parsed strictly (every row as wide as the header), as maps
/// from column name to value.
pub fn parse_csv(text: &[u8]) -> Vec<BTreeMap<String, String>> {
    let mut rdr = csv::ReaderBuilder::new().flexible(false).from_reader(text);
    let header = rdr.headers().expect("a header row").clone();
    rdr.records()
        .map(|r| {
            let r = r.unwrap_or_else(|e| panic!("not valid CSV: {e}"));
            header
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}
