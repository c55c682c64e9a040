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
