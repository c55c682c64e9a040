//! A card number is never written anywhere in clear: not in the database (nor
//! its WAL), not in any report, not on stdout or stderr, not in the metrics,
//! whatever free-text field it stands in and whatever the input format.

mod common;

use common::*;

/// Test card numbers (Luhn-valid), each as it appears in the input.
const CARDS: [&str; 6] = [
    "4111111111111111",
    "5555 5555 5555 4444",
    "3782-822463-10005",
    "4012888888881881",
    "6011 0009 9013 9424",
    "4222222222222",
];

/// The digits of a card number, and its groups as typed.
fn clear_forms(card: &str) -> Vec<String> {
    let digits: String = card.chars().filter(char::is_ascii_digit).collect();
    vec![digits, card.to_string()]
}

fn haystack(env: &Env, outputs: &[std::process::Output]) -> Vec<u8> {
    let mut all = Vec::new();
    for name in ["orderbatch.db", "orderbatch.db-wal", "m.prom"] {
        if let Ok(bytes) = std::fs::read(env.path(name)) {
            all.extend(bytes);
        }
    }
    let mut dirs = vec![env.path("reports")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                dirs.push(e.path());
            } else {
                all.extend(std::fs::read(e.path()).unwrap());
            }
        }
    }
    for o in outputs {
        all.extend(&o.stdout);
        all.extend(&o.stderr);
    }
    all
}

#[test]
fn card_numbers_in_every_free_text_field_never_appear_in_clear() {
    let env = Env::new();
    env.write("catalog.csv", catalog(5, 100));
    env.ok(&["inventory", "load", "catalog.csv"], 0);
    let [c0, c1, c2, c3, c4, c5] = CARDS;
    let mut csv = format!("{HEADER},note\n");
    csv += &order_rows("P-1", &[(0, 1)])
        .replace("ref-P-1", c0)
        .replace('\n', ",ok\n");
    csv += &order_rows("P-2", &[(0, 1)])
        .replace(
            "buyer@example.com",
            &format!("{}@example.com", c1.replace(' ', "")),
        )
        .replace('\n', ",ok\n");
    csv += &order_rows("P-3", &[(1, 1)]).replace('\n', &format!(",call me {c2}\n"));
    csv += &format!("P-4,{c3},broken row\n");
    csv += &order_rows("P-5", &[(1, 1)])
        .replace("ref-P-5", &format!("'={c4}"))
        .replace('\n', ",x\n");
    csv += &order_rows("OK-1", &[(2, 1)]).replace('\n', ",fine\n");
    env.write("orders.csv", csv);
    let jsonl = format!(
        "{{\"order_id\":\"J-1\",\"placed_at\":\"2026-11-25T22:14:03Z\",\"customer_email\":\"a@b.co\",\"currency\":\"EUR\",\"payment_method\":\"card\",\"payment_ref\":\"{c5}\",\"payment_amount\":\"10.00\",\"gift\":\"{c0}\",\"items\":[{{\"sku\":\"SKU-0\",\"quantity\":1,\"unit_price\":\"10.00\"}}]}}\n{{\"order_id\":\"J-2\",\"broken\":\"{c1}\"\n{{\"order_id\":\"J-3\",\"{c2}\":1,\"{c2}\":2}}\n"
    );
    env.write("orders.jsonl", jsonl);

    env.write(
        "named.csv",
        format!(
            "{HEADER},{c3}\n{}",
            order_rows("N-1", &[(9, 1)]).replace('\n', ",x\n")
        ),
    );
    let mut outputs = Vec::new();
    for args in [
        &[
            "process",
            "orders.csv",
            "--json",
            "--metrics-file",
            "m.prom",
        ][..],
        &["process", "orders.jsonl", "--report-format", "jsonl", "-v"],
        &["reprocess", "--json"],
        &["report", "failed", "--run", "1"],
        &["report", "failed", "--run", "2", "--format", "csv"],
        &["runs", "show", "1", "--json"],
        &["process", "named.csv"],
    ] {
        let out = env.run(args);
        assert!(
            matches!(out.status.code(), Some(0 | 3)),
            "{args:?}: {out:?}"
        );
        outputs.push(out);
    }
    // Every order with a card number failed with PAN_DETECTED (or could not be parsed).
    let failed = String::from_utf8_lossy(&outputs[3].stdout).to_string();
    for id in ["P-1", "P-2", "P-3", "P-5"] {
        let line = failed
            .lines()
            .find(|l| l.starts_with(&format!("{id},")))
            .unwrap();
        assert!(line.contains("PAN_DETECTED"), "{line}");
    }
    assert!(
        failed.contains("************1111"),
        "masked forms are kept: {failed}"
    );
    assert!(env
        .read("reports/run-1/accepted.csv")
        .contains("OK-1,accepted"));

    drop(env.db());
    let hay = String::from_utf8_lossy(&haystack(&env, &outputs)).to_string();
    for card in CARDS {
        for clear in clear_forms(card) {
            assert!(!hay.contains(&clear), "{clear} appears in clear");
        }
    }
}
