//! Property: for random orders and stock, the final stock equals the start
//! minus the units of the accepted orders, is never negative, and the outcome
//! is the same for every --jobs.

mod common;

use std::collections::BTreeMap;

use common::*;
use proptest::prelude::*;

const SKUS: usize = 4;

fn run(
    orders: &[Vec<(usize, u32)>],
    stock: &[i64],
    jobs: &str,
) -> (BTreeMap<String, i64>, String, String) {
    let env = Env::new();
    let mut cat = String::from("sku,name,unit_price,currency,on_hand\n");
    for (i, s) in stock.iter().enumerate() {
        cat.push_str(&format!("SKU-{i},P{i},{}.00,EUR,{s}\n", 10 + i));
    }
    env.write("catalog.csv", cat);
    let rows: Vec<String> = orders
        .iter()
        .enumerate()
        .map(|(n, lines)| order_rows(&format!("O-{n}"), lines))
        .collect();
    env.write("orders.csv", csv_file(&rows));
    let out = env.run(&[
        "process",
        "orders.csv",
        "--catalog",
        "catalog.csv",
        "--jobs",
        jobs,
    ]);
    assert!(matches!(out.status.code(), Some(0 | 3)), "{out:?}");
    env.ok(&["verify"], 0);
    (
        env.stock(),
        env.read("reports/run-1/accepted.csv"),
        env.read("reports/run-1/failed.csv"),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn stock_moves_exactly_by_the_accepted_units(
        stock in proptest::collection::vec(0i64..12, SKUS),
        orders in proptest::collection::vec(
            proptest::collection::vec((0..SKUS, 1u32..5), 1..4), 1..40),
    ) {
        let (final_stock, accepted, failed) = run(&orders, &stock, "1");
        // Units the accepted orders took, from the accepted report's order ids.
        let mut taken = [0i64; SKUS];
        for line in accepted.lines().skip(1) {
            let id = line.split(',').next().unwrap();
            let n: usize = id.trim_start_matches("O-").parse().unwrap();
            for (sku, q) in &orders[n] {
                taken[*sku] += i64::from(*q);
            }
        }
        for i in 0..SKUS {
            let now = final_stock[&format!("SKU-{i}")];
            prop_assert!(now >= 0);
            prop_assert_eq!(now, stock[i] - taken[i]);
        }
        // Every failure here is for stock: all orders are otherwise valid.
        for line in failed.lines().skip(1) {
            prop_assert!(line.contains("INSUFFICIENT_STOCK"), "{}", line);
        }
        let other = run(&orders, &stock, "3");
        prop_assert_eq!(&other.0, &final_stock);
        prop_assert_eq!(&other.1, &accepted);
        prop_assert_eq!(&other.2, &failed);
    }
}
