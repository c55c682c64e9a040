//! Hostile input is data: every case ends in a failed record (exit 3) or one
//! clear error naming the file (exit 2), never a panic or a hang, and the
//! stock ledger holds afterwards.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Output;

use common::*;

const STOCK: i64 = 100;

fn setup() -> Env {
    let env = Env::new();
    env.write("catalog.csv", catalog(5, STOCK));
    env.ok(&["inventory", "load", "catalog.csv"], 0);
    env
}

/// Run, insist on the exit code and on no panic; returns the output.
fn run(env: &Env, args: &[&str], code: i32) -> Output {
    let out = env.run(args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "orderbatch {args:?}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_panic(&out);
    out
}

fn failed_report(env: &Env, run: u32) -> Vec<BTreeMap<String, String>> {
    parse_csv(&file_bytes(
        &env.path(&format!("reports/run-{run}/failed.csv")),
    ))
}

/// order_id -> status of the accepted report.
fn accepted_report(env: &Env, run: u32) -> BTreeMap<String, String> {
    parse_csv(&file_bytes(
        &env.path(&format!("reports/run-{run}/accepted.csv")),
    ))
    .into_iter()
    .map(|r| (r["order_id"].clone(), r["status"].clone()))
    .collect()
}

/// source_line -> (order_id, error_code, error_detail) of the failed report.
fn failures(env: &Env, run: u32) -> BTreeMap<u64, (String, String, String)> {
    failed_report(env, run)
        .into_iter()
        .map(|r| {
            (
                r["source_line"].parse().unwrap(),
                (
                    r["order_id"].clone(),
                    r["error_code"].clone(),
                    r["error_detail"].clone(),
                ),
            )
        })
        .collect()
}

fn summary(env: &Env, run: u32) -> serde_json::Value {
    serde_json::from_str(&env.read(&format!("reports/run-{run}/summary.json"))).unwrap()
}

/// Nothing of any run reached the database, and the stock is as loaded.
fn assert_nothing_applied(env: &Env) {
    assert_eq!(env.count("SELECT count(*) FROM orders"), 0);
    assert_eq!(env.count("SELECT count(*) FROM failed_orders"), 0);
    assert!(
        env.stock().values().all(|n| *n == STOCK),
        "{:?}",
        env.stock()
    );
    assert!(env.entries("reports", "run-").is_empty());
}

/// One JSONL order of one item of SKU-0 (10.00 EUR); the arguments are raw JSON text.
fn jline(id: &str, payment_amount: &str, quantity: &str, unit_price: &str) -> String {
    format!(
        r#"{{"order_id":{id},"placed_at":"2026-11-25T22:14:03Z","customer_email":"a@b.co","currency":"EUR","payment_method":"card","payment_ref":"r","payment_amount":{payment_amount},"items":[{{"sku":"SKU-0","quantity":{quantity},"unit_price":{unit_price}}}]}}"#
    )
}

fn good_jline(id: &str) -> String {
    jline(&format!("\"{id}\""), "10.00", "1", "\"10.00\"")
}

// ---------------------------------------------------------------- JSONL

#[test]
fn jsonl_nested_100000_deep_is_data_not_a_crash() {
    let env = setup();
    let n = 100_000;
    let deep_array = format!("{}{}", "[".repeat(n), "]".repeat(n));
    let deep_object = format!("{}1{}", r#"{"a":"#.repeat(n), "}".repeat(n));
    let with_extra = good_jline("OK-2").replacen('{', &format!(r#"{{"note":{deep_object},"#), 1);
    let lines = [
        deep_array.clone(),
        jline(&deep_array, "10.00", "1", "\"10.00\""),
        deep_object.clone(),
        with_extra,
        good_jline("OK-1"),
    ];
    env.write("deep.jsonl", lines.join("\n") + "\n");
    run(&env, &["process", "deep.jsonl"], 3);
    let f = failures(&env, 1);
    assert_eq!(f.keys().copied().collect::<Vec<_>>(), [1, 2, 3]);
    // Not an object at all: unparseable as an order.
    assert_eq!(f[&1].1, "MALFORMED_RECORD");
    // A deep value where a string belongs: that field is invalid.
    assert_eq!(f[&2].1, "INVALID_FIELD");
    // An object whose only key holds a deep value: no order fields at all.
    assert_eq!(f[&3].1, "MISSING_FIELD");
    // A deep value in an extra key is kept as data; the order itself is good.
    assert_eq!(accepted_report(&env, 1)["OK-2"], "accepted");
    assert_eq!(accepted_report(&env, 1)["OK-1"], "accepted");
    assert_eq!(env.stock()["SKU-0"], STOCK - 2);
    env.verify_ok();
}

#[test]
fn jsonl_odd_numbers_are_invalid_fields_as_numbers_and_as_strings() {
    let env = setup();
    let big = "99999999999999999999999";
    // (id, payment_amount, quantity, unit_price, the field at fault)
    let cases = [
        ("N-1", "1e400", "1", "\"10.00\"", "payment_amount"),
        ("N-2", "\"1e400\"", "1", "\"10.00\"", "payment_amount"),
        ("N-3", "\"10.00\"", "-0", "\"10.00\"", "quantity"),
        ("N-4", "\"10.00\"", "\"-0\"", "\"10.00\"", "quantity"),
        ("N-5", "\"1500.00\"", "1", "1.5e3", "unit_price"),
        ("N-6", "\"1500.00\"", "1", "\"1.5e3\"", "unit_price"),
        ("N-7", "\"10.00\"", big, "\"10.00\"", "quantity"),
        (
            "N-8",
            "\"10.00\"",
            &format!("\"{big}\""),
            "\"10.00\"",
            "quantity",
        ),
        ("N-9", "-0", "1", "\"10.00\"", "payment_amount"),
        ("N-10", "\"0.00\"", "1", "-0", "unit_price"),
        (
            "N-11",
            &format!("{big}.00"),
            "1",
            &format!("{big}.00"),
            "unit_price",
        ),
        ("N-12", "1.5e3", "1", "\"10.00\"", "payment_amount"),
    ];
    let mut lines: Vec<String> = cases
        .iter()
        .map(|(id, pa, q, up, _)| jline(&format!("\"{id}\""), pa, q, up))
        .collect();
    // Exact numbers are fine as JSON numbers.
    lines.push(jline("\"OK-1\"", "20.00", "2", "10.00"));
    lines.push(jline("\"OK-2\"", "10", "1", "\"10.00\""));
    env.write("nums.jsonl", lines.join("\n") + "\n");
    run(&env, &["process", "nums.jsonl"], 3);
    let by_id: BTreeMap<String, (String, String)> = failures(&env, 1)
        .into_values()
        .map(|(id, code, detail)| (id, (code, detail)))
        .collect();
    for (id, _, _, _, field) in &cases {
        let (code, detail) = by_id
            .get(*id)
            .unwrap_or_else(|| panic!("{id} must fail: {by_id:?}"));
        assert_eq!(code, "INVALID_FIELD", "{id}: {detail}");
        assert!(detail.contains(field), "{id}: {detail}");
    }
    assert_eq!(by_id.len(), cases.len(), "{by_id:?}");
    let acc = accepted_report(&env, 1);
    assert_eq!(acc.len(), 2, "{acc:?}");
    assert_eq!(env.stock()["SKU-0"], STOCK - 3);
    env.verify_ok();
}

#[test]
fn jsonl_nul_bytes_escaped_and_raw_are_data() {
    let env = setup();
    let mut text = Vec::new();
    // 1: an escaped NUL in a free-text field.
    text.extend(good_jline("U-1").replace(r#""r""#, r#""r\u0000x""#).bytes());
    text.push(b'\n');
    // 2: an escaped NUL in the order_id breaks the order_id rule.
    text.extend(jline(r#""U-2\u0000""#, "10.00", "1", "\"10.00\"").bytes());
    text.push(b'\n');
    // 3: a raw NUL inside a string is invalid JSON.
    text.extend(good_jline("U-3").replace(r#""r""#, "\"r\0x\"").bytes());
    text.push(b'\n');
    // 4: a raw NUL after the object.
    text.extend(good_jline("U-4").bytes());
    text.extend(b"\0\n");
    // 5: nothing but NULs.
    text.extend(b"\0\0\0\n");
    // 6: an escaped NUL in an extra key.
    text.extend(
        good_jline("U-6")
            .replace(r#""items""#, r#""note":"a\u0000b","items""#)
            .bytes(),
    );
    text.push(b'\n');
    env.write("nul.jsonl", &text);
    run(&env, &["process", "nul.jsonl"], 3);
    let f = failures(&env, 1);
    assert_eq!(f[&2].0, "U-2\0");
    assert_eq!(f[&2].1, "INVALID_FIELD");
    for line in [3, 4, 5] {
        assert_eq!(f[&line].1, "MALFORMED_RECORD", "line {line}: {f:?}");
    }
    // A NUL (a control character) in a value, free text included, is INVALID_FIELD.
    for line in [1, 6] {
        assert_eq!(f[&line].1, "INVALID_FIELD", "line {line}: {f:?}");
        assert!(f[&line].2.contains("control character"), "{f:?}");
    }
    // The database gives the same report back, NUL bytes included.
    assert_eq!(
        env.ok(&["report", "failed", "--run", "1"], 0),
        env.read("reports/run-1/failed.csv")
    );
    env.verify_ok();
}

#[test]
fn jsonl_duplicate_keys_get_one_clear_outcome() {
    let env = setup();
    let lines = [
        good_jline("D-1").replace(
            r#""order_id":"D-1","#,
            r#""order_id":"D-1","order_id":"D-2","#,
        ),
        good_jline("D-3").replace(r#""quantity":1,"#, r#""quantity":1,"quantity":2,"#),
        good_jline("D-4").replace(
            r#""items":["#,
            r#""items":[{"sku":"SKU-1","quantity":1,"unit_price":"11.00"}],"items":["#,
        ),
    ];
    env.write("dup.jsonl", lines.join("\n") + "\n");
    run(&env, &["process", "dup.jsonl"], 3);
    // Each line is one failed record: a key given twice is ambiguous, at the
    // top level and inside an item alike.
    let f = failures(&env, 1);
    assert_eq!(f.len(), 3, "{f:?}");
    for (line, (_, code, detail)) in &f {
        assert_eq!(code, "MALFORMED_RECORD", "line {line}: {detail}");
        assert!(detail.contains("duplicate key"), "line {line}: {detail}");
    }
    assert!(accepted_report(&env, 1).is_empty());
    assert_eq!(summary(&env, 1)["orders"], 3);
    env.verify_ok();
}

#[test]
fn jsonl_duplicate_keys_are_not_accepted() {
    let env = setup();
    // Last-key-wins reads quantity 1 and a consistent payment; first-key-wins reads 5.
    let line = good_jline("D-1").replace(r#""quantity":1,"#, r#""quantity":5,"quantity":1,"#);
    env.write("dup.jsonl", format!("{line}\n"));
    run(&env, &["process", "dup.jsonl"], 3);
    let f = failures(&env, 1);
    assert_eq!(f[&1].1, "MALFORMED_RECORD", "{f:?}");
    assert_eq!(env.stock()["SKU-0"], STOCK);
}

// ---------------------------------------------------------------- CSV

#[test]
fn csv_100_mb_line_without_newline_is_one_failed_record() {
    let env = setup();
    let p = env.path("long.csv");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&p).unwrap());
        writeln!(f, "{HEADER}").unwrap();
        let block = vec![b'A'; 1 << 20];
        for _ in 0..100 {
            f.write_all(&block).unwrap();
        }
        f.flush().unwrap();
    }
    run(&env, &["process", "long.csv"], 3);
    let s = summary(&env, 1);
    assert_eq!(
        (s["orders"].as_u64(), s["failed"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(s["errors_by_code"]["MALFORMED_RECORD"], 1);
    let f = failures(&env, 1);
    assert_eq!(f.len(), 1);
    assert_eq!(f[&2].1, "MALFORMED_RECORD");
    assert!(f[&2].2.contains("AAAA"), "raw text kept (maybe shortened)");
    assert_eq!(env.count("SELECT count(*) FROM orders"), 0);
    env.verify_ok();
}

#[test]
fn csv_10_mb_field_is_accepted_under_a_raised_limit_and_a_failed_one_is_reported_as_valid_csv() {
    let env = setup();
    let big_ok = "n".repeat(10 << 20);
    let big_bad = "m".repeat(10 << 20);
    let text = format!(
        "{HEADER},note\n{}{}",
        order_rows("B-1", &[(0, 1)]).replace('\n', &format!(",{big_ok}\n")),
        order_rows("B-2", &[(9, 1)]).replace('\n', &format!(",\"{big_bad}\"\n")),
    );
    env.write("bignote.csv", text);
    // Under the default limit (1 MiB a record) both are MALFORMED_RECORD.
    run(&env, &["process", "bignote.csv", "--dry-run"], 3);
    let s = summary(&env, 1);
    assert_eq!(s["errors_by_code"]["MALFORMED_RECORD"], 2, "{s}");
    run(
        &env,
        &["process", "bignote.csv", "--max-record-bytes", "33554432"],
        3,
    );
    assert_eq!(accepted_report(&env, 2)["B-1"], "accepted");
    let failed = failed_report(&env, 2);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["order_id"], "B-2");
    assert_eq!(failed[0]["error_code"], "UNKNOWN_SKU");
    assert_eq!(
        failed[0]["note"], big_bad,
        "the 10 MB cell comes back whole"
    );
    assert_eq!(env.stock()["SKU-0"], STOCK - 1);
    env.verify_ok();
}

#[test]
fn csv_nul_bytes_inside_fields_are_data() {
    let env = setup();
    let row = |id: &str| order_rows(id, &[(0, 1)]).replace('\n', ",x\n");
    let mut text = format!("{HEADER},note\n");
    text += &row("C-1")
        .replace("ref-C-1", "ref\0C-1")
        .replace(",x\n", ",a\0b\n");
    text += &row("C-2").replacen("C-2", "C-2\0", 1);
    text += &row("C-3").replace(",1,10.00,", ",1\0,10.00,");
    text += "\0\0\0\n";
    text += &row("C-5").replace(",x\n", ",\"q\0\"\n");
    env.write("nul.csv", text);
    run(&env, &["process", "nul.csv"], 3);
    let f = failures(&env, 1);
    assert_eq!(
        f[&3],
        ("C-2\0".into(), "INVALID_FIELD".into(), f[&3].2.clone())
    );
    assert_eq!(f[&4].1, "INVALID_FIELD");
    assert!(f[&4].2.contains("quantity"), "{}", f[&4].2);
    assert_eq!(f[&5].1, "MALFORMED_RECORD");
    for line in [2, 6] {
        assert_eq!(f[&line].1, "INVALID_FIELD", "line {line}: {f:?}");
        assert!(f[&line].2.contains("control character"), "{f:?}");
    }
    assert_eq!(
        env.ok(&["report", "failed", "--run", "1"], 0),
        env.read("reports/run-1/failed.csv")
    );
    // The failed report goes back in, NUL bytes and all.
    std::fs::copy(env.path("reports/run-1/failed.csv"), env.path("again.csv")).unwrap();
    run(&env, &["process", "again.csv"], 3);
    assert_eq!(
        failures(&env, 2)
            .values()
            .filter(|(id, code, _)| id == "C-2\0" && code == "INVALID_FIELD")
            .count(),
        1
    );
    env.verify_ok();
}

#[test]
fn csv_header_only_is_zero_orders_and_exit_0() {
    let env = setup();
    env.write("ho.csv", format!("{HEADER}\n"));
    run(&env, &["process", "ho.csv"], 0);
    assert_eq!(summary(&env, 1)["orders"], 0);
    env.verify_ok();
}

#[test]
fn csv_empty_file_is_exit_2_no_header() {
    let env = setup();
    env.write("empty.csv", "");
    let out = run(&env, &["process", "empty.csv"], 2);
    assert_one_error_line(&out, &["empty.csv", "no header"]);
    assert_nothing_applied(&env);
    env.verify_ok();
}

#[test]
fn csv_duplicate_header_names_are_exit_2_naming_the_column() {
    let env = setup();
    env.write(
        "dup.csv",
        format!("{HEADER}, SKU \n") + &order_rows("A-1", &[(0, 1)]).replace('\n', ",x\n"),
    );
    let out = run(&env, &["process", "dup.csv"], 2);
    assert_one_error_line(&out, &["dup.csv", "'sku'"]);
    assert_nothing_applied(&env);
    env.verify_ok();
}

#[test]
fn csv_invalid_utf8_in_the_header_is_exit_2() {
    let env = setup();
    let mut text = format!("{HEADER},n").into_bytes();
    text.extend(b"\xff\xfeote\n");
    text.extend(order_rows("A-1", &[(0, 1)]).replace('\n', ",x\n").bytes());
    env.write("badhead.csv", text);
    let out = run(&env, &["process", "badhead.csv"], 2);
    assert_one_error_line(&out, &["badhead.csv", "UTF-8"]);
    assert_nothing_applied(&env);
    env.verify_ok();
}

// ---------------------------------------------------------------- Files

#[test]
fn a_directory_is_exit_2() {
    let env = setup();
    std::fs::create_dir(env.path("dir.csv")).unwrap();
    let out = run(&env, &["process", "dir.csv"], 2);
    assert_one_error_line(&out, &["dir.csv", "directory"]);
    assert_nothing_applied(&env);
    env.verify_ok();
}

#[test]
fn a_fifo_is_read_like_a_file() {
    let env = setup();
    let fifo = env.path("fifo.csv");
    let st = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(st.success());
    let text = csv_file(&[order_rows("F-1", &[(0, 2)]), order_rows("F-2", &[(1, 1)])]);
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            // Blocks until orderbatch opens the FIFO for reading.
            let mut f = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
            // A reader that stops early shows in the exit code, not here.
            let _ = f.write_all(text.as_bytes());
        })
    };
    let out = env.run(&["process", "fifo.csv"]);
    // Should orderbatch never open the FIFO, this open (read and write, which
    // never blocks on Linux) lets the writer through instead of hanging.
    let unblock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    writer.join().unwrap();
    drop(unblock);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_panic(&out);
    let acc = accepted_report(&env, 1);
    assert_eq!(acc.len(), 2);
    assert_eq!(env.stock()["SKU-0"], STOCK - 2);
    assert_eq!(
        summary(&env, 1)["inputs"][0]["sha256"]
            .as_str()
            .map(str::len),
        Some(64)
    );
    env.verify_ok();
}

#[test]
fn a_missing_file_is_exit_2() {
    let env = setup();
    let out = run(&env, &["process", "missing.csv"], 2);
    assert_one_error_line(&out, &["missing.csv"]);
    assert_nothing_applied(&env);
    assert_eq!(env.count("SELECT count(*) FROM runs"), 0);
    env.verify_ok();
}

#[test]
fn a_gzip_file_truncated_in_the_middle_is_exit_2_with_nothing_committed() {
    let env = setup();
    let orders: Vec<String> = (0..20_000)
        .map(|i| order_rows(&format!("G-{i}-{}", i * 7919 % 10007), &[(i % 5, 1)]))
        .collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(csv_file(&orders).as_bytes()).unwrap();
    let bytes = gz.finish().unwrap();
    env.write("cut.csv.gz", &bytes[..bytes.len() / 2]);
    let out = run(&env, &["process", "cut.csv.gz"], 2);
    assert_one_error_line(&out, &["cut.csv.gz"]);
    assert_nothing_applied(&env);
    assert_eq!(
        env.count(
            "SELECT count(*) FROM runs WHERE status IN ('completed', 'dry_run') OR orders > 0"
        ),
        0
    );
    env.verify_ok();
}

#[test]
fn a_gz_name_that_is_not_gzip_is_exit_2() {
    let env = setup();
    env.write("plain.csv.gz", csv_file(&[order_rows("A-1", &[(0, 1)])]));
    let out = run(&env, &["process", "plain.csv.gz"], 2);
    assert_one_error_line(&out, &["plain.csv.gz"]);
    assert_nothing_applied(&env);
    // Too short for a gzip header at all.
    env.write("tiny.csv.gz", "x\n");
    let out = run(&env, &["process", "tiny.csv.gz"], 2);
    assert_one_error_line(&out, &["tiny.csv.gz"]);
    assert_nothing_applied(&env);
    env.verify_ok();
}

#[test]
fn a_second_input_missing_a_column_stops_everything_before_a_run() {
    let env = setup();
    env.write("good.csv", csv_file(&[order_rows("A-1", &[(0, 1)])]));
    env.write(
        "bad.csv",
        csv_file(&[order_rows("B-1", &[(0, 1)])]).replace(",currency,", ",curr,"),
    );
    let out = run(&env, &["process", "good.csv", "bad.csv"], 2);
    assert_one_error_line(&out, &["bad.csv", "'currency'"]);
    assert_nothing_applied(&env);
    assert_eq!(
        env.count("SELECT count(*) FROM runs"),
        0,
        "no run rows at all"
    );
    env.verify_ok();
}

// ---------------------------------------------------------------- bounds

/// Memory is bounded whatever the input: one unclosed quote before 40,000
/// good rows (it once took memory quadratic in the rows after it), a line
/// of 20 MB without a line feed, endless input; each far under 100 MB.
#[test]
fn one_stray_quote_a_huge_line_and_endless_input_stay_in_bounded_memory() {
    let env = setup();
    let mut text = format!("{HEADER}\nBROKEN,\"4111111111111111,x\n");
    for i in 0..40_000 {
        text += &order_rows(&format!("Q-{i}"), &[(i % 5, 1)]);
    }
    env.write("quote.csv", &text);
    let (out, rss) = env.run_with_peak(&["process", "quote.csv", "--dry-run"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let s = summary(&env, 1);
    assert_eq!(s["orders"], 40_001, "{s}");
    assert_eq!(s["errors_by_code"]["MALFORMED_RECORD"], 1, "{s}");
    let f = failed_report(&env, 1);
    assert!(
        f[0]["error_detail"].starts_with("MALFORMED_RECORD: broken quoting"),
        "{f:?}"
    );
    assert!(!f[0]["error_detail"].contains("4111111111111111"));
    assert!(rss < 100 << 20, "stray quote: peak {rss} bytes");

    // A 20 MB line of JSONL, then a good one: the long one fails alone.
    let mut jsonl = vec![b'x'; 20 << 20];
    jsonl.push(b'\n');
    jsonl.extend(good_jline("J-1").bytes());
    jsonl.push(b'\n');
    env.write("long.jsonl", &jsonl);
    let (out, rss) = env.run_with_peak(&["process", "long.jsonl", "--dry-run"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let s = summary(&env, 2);
    assert_eq!(
        (s["accepted"].as_u64(), s["failed"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(rss < 100 << 20, "long JSONL line: peak {rss} bytes");

    // Endless input: refused (exit 2) once a line runs far past any record.
    for args in [
        &["process", "/dev/zero", "--format", "csv"][..],
        // A small limit: a line is skipped up to 1,024 times the limit.
        &[
            "process",
            "/dev/zero",
            "--format",
            "jsonl",
            "--max-record-bytes",
            "1024",
        ],
        &["inventory", "load", "/dev/zero", "--format", "csv"],
        &["inventory", "receive", "/dev/zero", "--format", "jsonl"],
    ] {
        let (out, rss) = env.run_with_peak(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert_one_error_line(&out, &["/dev/zero", "line 1 is longer than"]);
        assert!(rss < 100 << 20, "{args:?}: peak {rss} bytes");
    }
    // A workbook is read from its end: endless input is no workbook.
    let (out, rss) = env.run_with_peak(&["process", "/dev/zero", "--format", "xlsx"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_one_error_line(&out, &["/dev/zero", "not a regular file"]);
    assert!(rss < 100 << 20, "xlsx /dev/zero: peak {rss} bytes");
    env.verify_ok();
}

/// A NUL byte (or another control character) in a value is INVALID_FIELD on
/// every backend, never a stopped run; in the raw text of a record that
/// could not be parsed it is kept as U+FFFD; in a catalog it is exit 2
/// naming the line. Both backends give the same reports.
#[test]
fn nul_bytes_are_invalid_fields_on_every_backend() {
    let mut reports = Vec::new();
    for b in backends() {
        let env = env_for(b);
        env.write("catalog.csv", catalog(5, STOCK));
        env.ok(&["inventory", "load", "catalog.csv"], 0);
        let row = |id: &str| order_rows(id, &[(0, 1)]).replace('\n', ",x\n");
        let mut text = format!("{HEADER},note\n");
        text += &row("N-1").replace("ref-N-1", "ref\0N-1");
        text += &row("N-2").replace(",x\n", ",a\0b\n");
        text += &row("N-3").replace("buyer@", "bu\u{7}yer@");
        text += "N-4,\"broken\0\n";
        text += &row("N-5");
        env.write("nul.csv", &text);
        let out = env.run(&["process", "nul.csv"]);
        assert_eq!(out.status.code(), Some(3), "{b:?}: {out:?}");
        let failed = env.read("reports/run-1/failed.csv");
        let rows = parse_csv(failed.as_bytes());
        let codes: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r["source_line"].as_str(), &r["error_code"][..]))
            .collect();
        assert_eq!(
            codes,
            [
                ("2", "INVALID_FIELD"),
                ("3", "INVALID_FIELD"),
                ("4", "INVALID_FIELD"),
                ("5", "MALFORMED_RECORD")
            ],
            "{b:?}"
        );
        assert!(rows[3]["error_detail"].contains("broken\u{fffd}"), "{b:?}");
        assert_eq!(
            env.ok(&["report", "failed", "--run", "1"], 0),
            failed,
            "{b:?}"
        );
        reports.push(failed);

        env.write(
            "badcat.csv",
            "sku,name,unit_price,currency,on_hand\nSKU-9,Mu\0g,1.00,EUR,1\n",
        );
        let out = env.run(&["inventory", "load", "badcat.csv"]);
        assert_eq!(out.status.code(), Some(2), "{b:?}: {out:?}");
        assert_one_error_line(&out, &["badcat.csv", "line 2: name", "control character"]);
        env.verify_ok();
    }
    assert!(reports.windows(2).all(|w| w[0] == w[1]));
}

// ---------------------------------------------------------------- xlsx

/// Part of a zip entry's content: text, or one byte repeated (whole MiBs).
enum Seg {
    Text(String),
    Repeat(u8, u64),
}

fn text(s: impl Into<String>) -> Seg {
    Seg::Text(s.into())
}

/// Raw deflate of the segments end to end, with the CRC and the length they
/// expand to. A repeated byte is one compressed MiB written again and again
/// (each sync-flushed piece decodes on its own), so a gigabyte of it costs a
/// megabyte and no time.
fn deflate(segments: &[Seg]) -> (Vec<u8>, u32, u64) {
    fn piece(data: &[u8]) -> Vec<u8> {
        let mut c = flate2::Compress::new(flate2::Compression::best(), false);
        let mut out = Vec::with_capacity(data.len() + data.len() / 8 + 1024);
        c.compress_vec(data, &mut out, flate2::FlushCompress::Sync)
            .unwrap();
        assert_eq!(c.total_in(), data.len() as u64);
        out
    }
    let (mut out, mut crc, mut len) = (Vec::new(), flate2::Crc::new(), 0u64);
    for s in segments {
        match s {
            Seg::Text(t) => {
                out.extend(piece(t.as_bytes()));
                crc.update(t.as_bytes());
                len += t.len() as u64;
            }
            Seg::Repeat(b, n) => {
                let block = vec![*b; 1 << 20];
                let packed = piece(&block);
                let mut one = flate2::Crc::new();
                one.update(&block);
                for _ in 0..n >> 20 {
                    out.extend_from_slice(&packed);
                    crc.combine(&one);
                }
                len += n >> 20 << 20;
            }
        }
    }
    // The final block: empty, fixed Huffman codes.
    out.extend([0x03, 0x00]);
    (out, crc.sum(), len)
}

/// A zip archive of the entries, deflated; `declared` replaces an entry's
/// uncompressed size in the archive's directories (a lie, for a hostile file).
fn zip_of(entries: &[(&str, Vec<Seg>, Option<u32>)]) -> Vec<u8> {
    let (mut out, mut central) = (Vec::new(), Vec::new());
    for (name, segments, declared) in entries {
        let (data, crc, len) = deflate(segments);
        let size = declared.unwrap_or(u32::try_from(len).unwrap());
        let offset = u32::try_from(out.len()).unwrap();
        let mut common = Vec::new();
        for v in [20u16, 0, 8, 0, 0x21] {
            common.extend(v.to_le_bytes());
        }
        for v in [crc, u32::try_from(data.len()).unwrap(), size] {
            common.extend(v.to_le_bytes());
        }
        common.extend((name.len() as u16).to_le_bytes());
        common.extend(0u16.to_le_bytes());
        out.extend(0x04034b50u32.to_le_bytes());
        out.extend(&common);
        out.extend(name.as_bytes());
        out.extend(&data);
        central.extend(0x02014b50u32.to_le_bytes());
        central.extend(20u16.to_le_bytes());
        central.extend(&common);
        // Comment length, disk, internal and external attributes.
        central.extend([0u8; 10]);
        central.extend(offset.to_le_bytes());
        central.extend(name.as_bytes());
    }
    let (at, n) = (out.len() as u32, entries.len() as u16);
    out.extend(&central);
    out.extend(0x06054b50u32.to_le_bytes());
    out.extend([0u8; 4]);
    out.extend(n.to_le_bytes());
    out.extend(n.to_le_bytes());
    out.extend((central.len() as u32).to_le_bytes());
    out.extend(at.to_le_bytes());
    out.extend([0u8; 2]);
    out
}

/// A workbook of one sheet (its XML, in segments) and, if given, shared strings.
fn workbook_of(sheet: Vec<Seg>, strings: Option<(Vec<Seg>, Option<u32>)>) -> Vec<u8> {
    const NS: &str = "http://schemas.openxmlformats.org";
    let rel = |id: &str, kind: &str, target: &str| {
        format!(
            r#"<Relationship Id="{id}" Type="{NS}/officeDocument/2006/relationships/{kind}" Target="{target}"/>"#
        )
    };
    let rels = |r: String| {
        text(format!(
            r#"<Relationships xmlns="{NS}/package/2006/relationships">{r}</Relationships>"#
        ))
    };
    let mut book_rels = rel("rId1", "worksheet", "worksheets/sheet1.xml");
    if strings.is_some() {
        book_rels += &rel("rId2", "sharedStrings", "sharedStrings.xml");
    }
    let mut entries = vec![
        (
            "_rels/.rels",
            vec![rels(rel("rId1", "officeDocument", "xl/workbook.xml"))],
            None,
        ),
        ("xl/_rels/workbook.xml.rels", vec![rels(book_rels)], None),
        (
            "xl/workbook.xml",
            vec![text(format!(
                r#"<workbook xmlns:r="{NS}/officeDocument/2006/relationships"><sheets><sheet name="S" sheetId="1" r:id="rId1"/></sheets></workbook>"#
            ))],
            None,
        ),
        ("xl/worksheets/sheet1.xml", sheet, None),
    ];
    if let Some((segments, declared)) = strings {
        entries.push(("xl/sharedStrings.xml", segments, declared));
    }
    zip_of(&entries)
}

/// The start of a sheet: its root, a dimension as absurd as a hostile file
/// may declare, and the header row.
fn sheet_start() -> String {
    let header: String = HEADER
        .split(',')
        .enumerate()
        .map(|(i, h)| {
            format!(
                r#"<c r="{}1" t="inlineStr"><is><t>{h}</t></is></c>"#,
                (b'A' + i as u8) as char
            )
        })
        .collect();
    format!(
        r#"<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><dimension ref="A1:XFD1048576"/><sheetData><row r="1">{header}</row>"#
    )
}

/// Row `r`: a good order of one SKU-0 (10.00 EUR), amounts as number cells.
fn good_row(r: u32, id: &str) -> String {
    let values = [
        id,
        "2026-11-25T22:14:03Z",
        "a@b.co",
        "SKU-0",
        "1",
        "10",
        "EUR",
        "card",
        "r",
        "10",
    ];
    let cells: String = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let at = format!("{}{r}", (b'A' + i as u8) as char);
            match v.parse::<u32>() {
                Ok(n) => format!(r#"<c r="{at}"><v>{n}</v></c>"#),
                Err(_) => format!(r#"<c r="{at}" t="inlineStr"><is><t>{v}</t></is></c>"#),
            }
        })
        .collect();
    format!(r#"<row r="{r}">{cells}</row>"#)
}

const SHEET_END: &str = "</sheetData></worksheet>";

/// Run orderbatch to its end: its exit code, its stderr, and its peak
/// resident memory in bytes (see `Env::run_with_peak`).
fn run_peak(env: &Env, args: &[&str]) -> (Option<i32>, String, u64) {
    let (out, peak) = env.run_with_peak(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (out.status.code(), stderr, peak)
}

const MAX_RSS: u64 = 100 << 20;

#[test]
fn xlsx_a_cell_at_xfd1048576_costs_its_own_row() {
    let env = setup();
    let far = r#"<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>far</t></is></c></row>"#;
    let sheet = format!("{}{}{far}{}", sheet_start(), good_row(2, "X-1"), SHEET_END);
    env.write("far.xlsx", workbook_of(vec![text(sheet)], None));
    let (code, stderr, peak) = run_peak(&env, &["process", "far.xlsx"]);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(peak < MAX_RSS, "peak RSS {peak}");
    let f = failures(&env, 1);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[&1_048_576].1, "MALFORMED_RECORD");
    assert!(
        f[&1_048_576].2.contains("16384 where the header has 10"),
        "{:?}",
        f[&1_048_576]
    );
    assert_eq!(accepted_report(&env, 1)["X-1"], "accepted");
    // A sheet whose only cell is that one: no header to read, one clear error.
    let only = format!(r#"<worksheet><dimension ref="XFD1048576"/><sheetData>{far}{SHEET_END}"#);
    env.write("only.xlsx", workbook_of(vec![text(only)], None));
    let (code, stderr, peak) = run_peak(&env, &["process", "only.xlsx"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(peak < MAX_RSS, "peak RSS {peak}");
    assert!(
        stderr.contains("only.xlsx") && stderr.contains("'order_id'"),
        "{stderr}"
    );
    assert!(stderr.len() < 2000, "{stderr}");
    env.verify_ok();
}

#[test]
fn xlsx_a_1_gb_cell_in_a_1_mb_file_is_one_failed_row_in_bounded_memory() {
    let env = setup();
    let sheet = vec![
        text(sheet_start() + r#"<row r="2"><c r="A2" t="inlineStr"><is><t>"#),
        Seg::Repeat(b'A', 1 << 30),
        text(format!(
            "</t></is></c></row>{}{SHEET_END}",
            good_row(3, "B-1")
        )),
    ];
    let book = workbook_of(sheet, None);
    assert!(book.len() < 2 << 20, "{} bytes", book.len());
    env.write("bomb.xlsx", book);
    let (code, stderr, peak) = run_peak(&env, &["process", "bomb.xlsx"]);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(peak < MAX_RSS, "peak RSS {peak}");
    let f = failures(&env, 1);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[&2].1, "MALFORMED_RECORD");
    assert!(
        f[&2]
            .2
            .contains("longer than 1048576 bytes (--max-record-bytes)")
            && f[&2].2.contains("AAAA"),
        "{}",
        &f[&2].2[..200]
    );
    assert_eq!(accepted_report(&env, 1)["B-1"], "accepted");
    env.verify_ok();
}

#[test]
fn xlsx_shared_strings_past_the_bound_stop_the_file_in_bounded_memory() {
    let env = setup();
    let sheet = format!(
        r#"{}<row r="2"><c r="A2" t="s"><v>0</v></c></row>{SHEET_END}"#,
        sheet_start()
    );
    let strings = || {
        vec![
            text("<sst><si><t>"),
            Seg::Repeat(b'A', 1 << 30),
            text("</t></si></sst>"),
        ]
    };
    // As declared (refused before reading), and declared small (refused on the way).
    for (name, declared) in [("bomb.xlsx", None), ("liar.xlsx", Some(1000))] {
        env.write(
            name,
            workbook_of(vec![text(sheet.clone())], Some((strings(), declared))),
        );
        let (code, stderr, peak) = run_peak(&env, &["process", name]);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(peak < MAX_RSS, "{name}: peak RSS {peak}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        for needle in [
            name,
            "xl/sharedStrings.xml",
            "512 MiB",
            "save the sheet as CSV",
        ] {
            assert!(lines[0].contains(needle), "{needle:?} in {stderr}");
        }
    }
    assert_nothing_applied(&env);
    env.verify_ok();
}
