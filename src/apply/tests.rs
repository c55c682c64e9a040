//! The applier's rules, driven directly against the in-memory store
//! (`store::memory`): duplicates within a run, orders applied before
//! (skipped, or a conflict), stock decided in input order as the orders
//! come or again at the lock, and the records each decision leaves; then a
//! property that compares the applier with a one-by-one serial replay. No
//! database, no files: each test takes milliseconds.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::Arc;

use proptest::prelude::*;

use super::{Applier, Outcome};
use crate::model::clock::Timestamp;
use crate::model::failure::FailureState;
use crate::model::order::Product;
use crate::model::{ErrorCode, InputFormat};
use crate::read::{open_orders, InputMeter, RawOrder, ReadOptions, Source};
use crate::store::memory::Memory;
use crate::store::prelude::*;
use crate::store::LedgerReason;
use crate::validate::{validate_chunk, Catalog, Checked};

/// Skus `SKU-0`... of the catalog, SKU-i at (10 + i).00 EUR.
const SKUS: usize = 4;

/// An order of the input: its id and, per sku (each once, in sku order),
/// the units it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Order {
    id: String,
    lines: Vec<(usize, i64)>,
}

fn order(id: &str, lines: &[(usize, i64)]) -> Order {
    Order {
        id: id.into(),
        lines: lines.to_vec(),
    }
}

/// What became of an order, as the store records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Accepted,
    Skipped,
    Failed(ErrorCode),
}

use Fate::{Accepted, Failed, Skipped};

fn price(sku: usize) -> i64 {
    1000 + 100 * sku as i64
}

fn products(stock: &[i64]) -> Vec<Product> {
    stock
        .iter()
        .enumerate()
        .map(|(i, on_hand)| Product {
            sku: format!("SKU-{i}"),
            name: format!("P{i}"),
            unit_price: price(i),
            currency: "EUR".into(),
            on_hand: *on_hand,
        })
        .collect()
}

fn money(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

/// The orders as a JSONL file: one line each, so that an id repeated on
/// the next line is a second order (in CSV it would be a second line).
fn jsonl(orders: &[Order]) -> String {
    let mut s = String::new();
    for o in orders {
        let total: i64 = o.lines.iter().map(|(i, q)| price(*i) * q).sum();
        let items: Vec<String> = o
            .lines
            .iter()
            .map(|(i, q)| {
                let p = money(price(*i));
                format!(r#"{{"sku":"SKU-{i}","quantity":{q},"unit_price":"{p}"}}"#)
            })
            .collect();
        s.push_str(&format!(
            r#"{{"order_id":"{}","placed_at":"2026-11-25T22:14:03Z","customer_email":"buyer@example.com","currency":"EUR","payment_method":"card","payment_ref":"ref-{}","payment_amount":"{}","items":[{}]}}"#,
            o.id,
            o.id,
            money(total),
            items.join(",")
        ));
        s.push('\n');
    }
    s
}

/// The orders read and checked as a run reads and checks them.
fn checked(orders: &[Order]) -> Vec<Checked> {
    let source = Source {
        path: "in.jsonl".into(),
        reader: Box::new(Cursor::new(jsonl(orders).into_bytes())),
        meter: Arc::new(InputMeter::default()),
    };
    let raws: Vec<RawOrder> = open_orders(source, InputFormat::Jsonl, &ReadOptions::default())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let checked = validate_chunk(raws, &Catalog::new(products(&[0; SKUS])));
    let valid = |c: &Checked| matches!(c.verdict, crate::validate::Verdict::Valid(_));
    assert!(checked.iter().all(valid), "every test order is valid");
    checked
}

/// A database holding the catalog, its stock loaded (with its ledger entries).
fn memory(stock: &[i64]) -> Memory {
    let mut m = Memory::default();
    let mut tx = Box::new(m.begin());
    tx.load_products(&products(stock), None, "catalog.csv", Timestamp::now())
        .unwrap();
    tx.commit().unwrap();
    m
}

/// How a run decides stock: as the orders come (SQLite), or for now
/// against levels read without a lock, then again against the locked ones
/// (PostgreSQL); `peeked`: the levels read without a lock.
#[derive(Debug, Clone)]
enum Mode {
    AsTheyCome,
    AtTheLock { peeked: Vec<i64> },
}

/// Run `run_id` over the orders, `chunk` orders at a time, committed;
/// returns what the applier said of each order as it came.
fn run(m: &mut Memory, run_id: i64, orders: &[Order], chunk: usize, mode: &Mode) -> Vec<Outcome> {
    let mut tx = Box::new(m.begin());
    let mut rest = checked(orders);
    let mut chunks = Vec::new();
    while !rest.is_empty() {
        let tail = rest.split_off(rest.len().min(chunk));
        chunks.push(std::mem::replace(&mut rest, tail));
    }
    let raws: Vec<Vec<RawOrder>> = chunks
        .iter()
        .map(|c| c.iter().map(|c| c.raw.clone()).collect())
        .collect();
    let mut applier = match mode {
        Mode::AsTheyCome => Applier::new(run_id, tx.stock(None).unwrap(), false),
        Mode::AtTheLock { peeked } => {
            let levels = products(peeked).into_iter().map(|p| (p.sku, p.on_hand));
            let applier = Applier::new(run_id, levels.collect(), false);
            applier.deciding_stock_at_the_lock().unwrap()
        }
    };
    let mut outcomes = Vec::new();
    for c in chunks {
        let decided = applier.apply_chunk(&mut *tx, c).unwrap();
        outcomes.extend(decided.into_iter().map(|d| d.outcome));
    }
    if let Mode::AtTheLock { .. } = mode {
        let locked = tx.stock(None).unwrap();
        let mut raw_at = |chunk: u32, id: &str| {
            let chunk = &raws[chunk as usize];
            Ok(chunk
                .iter()
                .find(|r| r.order_id() == Some(id))
                .unwrap()
                .clone())
        };
        applier
            .settle_stock(&mut *tx, &locked, &mut raw_at)
            .unwrap();
    }
    let at = Timestamp::now();
    applier.finish(&mut *tx, LedgerReason::Order, at).unwrap();
    tx.commit().unwrap();
    outcomes
}

/// What the store holds of each of the run's `n` orders, in input order:
/// each order has exactly one record.
fn fates(m: &Memory, run_id: i64, n: usize) -> Vec<Fate> {
    let mut by_seq: BTreeMap<u64, Fate> = BTreeMap::new();
    let mut put = |seq: u64, fate: Fate| {
        assert!(by_seq.insert(seq, fate).is_none(), "order {seq} twice");
    };
    for o in m.orders.values().filter(|o| o.applied.run_id == run_id) {
        put(o.seq, Accepted);
    }
    for (_, seq, _) in m.skips.iter().filter(|(run, ..)| *run == run_id) {
        put(*seq, Skipped);
    }
    for f in m.failures_of(run_id) {
        put(f.stored.seq, Failed(f.stored.order.code));
    }
    assert_eq!(
        by_seq.keys().copied().collect::<Vec<_>>(),
        (1..=n as u64).collect::<Vec<_>>()
    );
    by_seq.into_values().collect()
}

fn stock(m: &Memory) -> Vec<i64> {
    (0..SKUS).map(|i| m.on_hand(&format!("SKU-{i}"))).collect()
}

fn serial(m: &mut Memory, run_id: i64, orders: &[Order], chunk: usize) -> Vec<Fate> {
    run(m, run_id, orders, chunk, &Mode::AsTheyCome);
    fates(m, run_id, orders.len())
}

#[test]
fn a_repeated_id_fails_as_a_duplicate_and_the_first_stands_in_any_chunking() {
    let orders = [
        order("O-1", &[(0, 1)]),
        order("O-2", &[(1, 1)]),
        order("O-1", &[(0, 1)]),
        order("O-1", &[(2, 3)]),
    ];
    // One order a chunk: the earlier id is in the store, not the chunk.
    for chunk in [1, 2, 8] {
        let mut m = memory(&[5, 5, 5, 5]);
        let dup = Failed(ErrorCode::DuplicateInInput);
        let fates = serial(&mut m, 1, &orders, chunk);
        assert_eq!(fates, [Accepted, Accepted, dup, dup], "chunks of {chunk}");
        assert_eq!(stock(&m), [4, 4, 5, 5], "only the first O-1 took stock");
    }
}

#[test]
fn an_order_applied_before_is_skipped_and_takes_no_stock() {
    let mut m = memory(&[5, 5, 0, 0]);
    let orders = [order("O-1", &[(0, 2)]), order("O-2", &[(1, 1)])];
    assert_eq!(serial(&mut m, 1, &orders, 8), [Accepted, Accepted]);
    let ledger = m.ledger.len();
    assert_eq!(serial(&mut m, 2, &orders, 8), [Skipped, Skipped]);
    assert_eq!(stock(&m), [3, 4, 0, 0]);
    assert_eq!(
        m.ledger.len(),
        ledger,
        "a run that takes nothing moves nothing"
    );
    let applied_by = |id: &str| m.orders[id].applied.run_id;
    assert_eq!((applied_by("O-1"), applied_by("O-2")), (1, 1));
}

#[test]
fn the_same_id_with_other_content_is_a_conflict_naming_the_run() {
    let mut m = memory(&[5, 5, 0, 0]);
    serial(&mut m, 1, &[order("O-1", &[(0, 2)])], 8);
    let outcomes = run(&mut m, 2, &[order("O-1", &[(0, 3)])], 8, &Mode::AsTheyCome);
    let Outcome::Failed(f) = &outcomes[0] else {
        panic!("{outcomes:?}")
    };
    assert_eq!(f.code, ErrorCode::OrderIdConflict);
    assert!(f.detail().contains("applied by run 1"), "{}", f.detail());
    assert_eq!(stock(&m), [3, 5, 0, 0]);
}

#[test]
fn stock_is_decided_in_input_order_and_a_short_order_leaves_a_failure() {
    let mut m = memory(&[3, 1, 0, 0]);
    let orders = [
        order("O-1", &[(0, 2)]),
        order("O-2", &[(0, 2), (1, 1)]),
        order("O-3", &[(0, 1), (1, 1)]),
        order("O-4", &[(0, 1)]),
    ];
    let short = Failed(ErrorCode::InsufficientStock);
    let fates = serial(&mut m, 1, &orders, 2);
    assert_eq!(fates, [Accepted, short, Accepted, short]);
    assert_eq!(stock(&m), [0, 0, 0, 0]);
    // The short orders hold no claim, and their failures are open.
    assert!(!m.orders.contains_key("O-2") && !m.orders.contains_key("O-4"));
    let failures = m.failures_of(1);
    assert!(failures
        .iter()
        .all(|f| f.stored.state == FailureState::Open));
    let detail = failures[0].stored.order.detail();
    assert!(detail.contains(r#""SKU-0" needs 2, 1 on hand"#), "{detail}");
    for sku in 0..SKUS {
        let sku = format!("SKU-{sku}");
        assert_eq!(
            m.ledger_sum(&sku),
            m.on_hand(&sku),
            "{sku}: ledger and stock"
        );
    }
}

#[test]
fn a_later_run_resolves_or_supersedes_the_failures_of_its_orders() {
    let mut m = memory(&[0, 0, 0, 0]);
    let orders = [order("O-1", &[(0, 1)]), order("O-2", &[(1, 1)])];
    serial(&mut m, 1, &orders, 8);
    let mut tx = Box::new(m.begin());
    tx.receive(&[("SKU-0".into(), 1)], "delivery.csv", Timestamp::now())
        .unwrap();
    tx.commit().unwrap();
    let short = Failed(ErrorCode::InsufficientStock);
    assert_eq!(serial(&mut m, 2, &orders, 8), [Accepted, short]);
    let settled: Vec<_> = m
        .failures_of(1)
        .iter()
        .map(|f| (f.stored.state, f.resolved_by, f.superseded_by))
        .collect();
    assert_eq!(
        settled,
        [
            (FailureState::Resolved, Some(2), None),
            (FailureState::Superseded, None, Some(2))
        ]
    );
}

#[test]
fn at_the_lock_each_order_is_decided_again_against_the_locked_levels() {
    // Read without a lock: plenty of SKU-0, none of SKU-1. Locked: the reverse.
    let mut m = memory(&[1, 2, 0, 0]);
    let orders = [
        order("O-1", &[(0, 1)]),
        order("O-2", &[(0, 2)]),
        order("O-3", &[(1, 2)]),
    ];
    let mode = Mode::AtTheLock {
        peeked: vec![9, 0, 0, 0],
    };
    let outcomes = run(&mut m, 1, &orders, 1, &mode);
    assert!(matches!(outcomes[2], Outcome::ShortForNow), "{outcomes:?}");
    let short = Failed(ErrorCode::InsufficientStock);
    assert_eq!(fates(&m, 1, 3), [Accepted, short, Accepted]);
    assert_eq!(stock(&m), [0, 0, 0, 0]);
    assert!(
        !m.orders.contains_key("O-2"),
        "its claim went with its stock"
    );
}

fn lines() -> impl Strategy<Value = Vec<(usize, i64)>> {
    proptest::collection::btree_map(0..SKUS, 1i64..5, 1..=3).prop_map(|l| l.into_iter().collect())
}

/// Orders drawn from `ids` ids of two contents each: (id, which content).
fn input(ids: usize, n: std::ops::Range<usize>) -> impl Strategy<Value = Vec<(usize, usize)>> {
    proptest::collection::vec((0..ids, 0..2usize), n)
}

/// The oracle: a run replayed one order at a time, the simplest way. An id
/// met earlier in the run is a duplicate; one applied by an earlier run is
/// skipped (same content) or a conflict; else the order is accepted when
/// the stock has every unit it needs. `applied` and `stock` carry over
/// from run to run.
fn replay(orders: &[Order], applied: &mut BTreeMap<String, Order>, stock: &mut [i64]) -> Vec<Fate> {
    let mut seen = std::collections::HashSet::new();
    let mut fates = Vec::new();
    for o in orders {
        let fate = if !seen.insert(o.id.clone()) {
            Failed(ErrorCode::DuplicateInInput)
        } else if let Some(before) = applied.get(&o.id) {
            if before == o {
                Skipped
            } else {
                Failed(ErrorCode::OrderIdConflict)
            }
        } else if o.lines.iter().all(|(sku, n)| *n <= stock[*sku]) {
            for (sku, n) in &o.lines {
                stock[*sku] -= n;
            }
            applied.insert(o.id.clone(), o.clone());
            Accepted
        } else {
            Failed(ErrorCode::InsufficientStock)
        };
        fates.push(fate);
    }
    fates
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Two runs over random orders and stock, applied in random chunks as
    /// the orders come or at the lock (against random unlocked levels):
    /// every order's fate is the serial replay's, stock is never negative,
    /// and the ledger sums to the stock.
    #[test]
    fn the_applier_decides_as_a_serial_replay(
        start in proptest::collection::vec(0i64..10, SKUS),
        peeked in proptest::collection::vec(0i64..10, SKUS),
        contents in proptest::collection::vec((lines(), lines()), 5),
        first in input(5, 0..10),
        second in input(5, 1..16),
        chunk in 1usize..6,
        at_the_lock in any::<bool>(),
    ) {
        let make = |picks: &[(usize, usize)]| -> Vec<Order> {
            picks.iter().map(|(id, which)| {
                let (a, b) = &contents[*id];
                Order { id: format!("O-{id}"), lines: if *which == 0 { a.clone() } else { b.clone() } }
            }).collect()
        };
        let mode = if at_the_lock { Mode::AtTheLock { peeked } } else { Mode::AsTheyCome };
        let mut m = memory(&start);
        let (mut applied, mut expected) = (BTreeMap::new(), start.clone());
        for (run_id, picks) in [(1, &first), (2, &second)] {
            let orders = make(picks);
            run(&mut m, run_id, &orders, chunk, &mode);
            let oracle = replay(&orders, &mut applied, &mut expected);
            prop_assert_eq!(fates(&m, run_id, orders.len()), oracle, "run {}", run_id);
            prop_assert_eq!(stock(&m), expected.clone());
        }
        for sku in 0..SKUS {
            let sku = format!("SKU-{sku}");
            prop_assert!(m.on_hand(&sku) >= 0);
            prop_assert_eq!(m.ledger_sum(&sku), m.on_hand(&sku));
        }
    }
}
