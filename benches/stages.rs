//! Micro-benchmarks of the hot stages on synthetic orders held in memory:
//! reading, validation, apply (stock decisions and the database write), and
//! report writing. Run with `cargo bench`; the whole-run comparison with
//! SQLite's loader is `bench/run.sh`.

use std::hint::black_box;
use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use orderbatch::apply::{Applier, Outcome};
use orderbatch::model::clock::Timestamp;
use orderbatch::model::order::{AcceptedRow, Product, Status};
use orderbatch::model::{InputFormat, ReportFormat};
use orderbatch::read::{open_orders, InputMeter, RawOrder, ReadOptions, Source};
use orderbatch::report::AcceptedWriter;
use orderbatch::store::{self, LedgerReason, Store};
use orderbatch::validate::{validate_chunk, Catalog, Checked};

const ORDERS: usize = 20_000;
const SKUS: usize = 2_000;

fn products() -> Vec<Product> {
    (0..SKUS)
        .map(|i| Product {
            sku: format!("SKU-{i:06}"),
            name: format!("Product {i}"),
            unit_price: 100 + i as i64,
            currency: "EUR".into(),
            on_hand: 1_000_000,
        })
        .collect()
}

/// A CSV file of ORDERS orders of 1-4 lines, like the benchmark generator's.
fn csv_bytes() -> Vec<u8> {
    let mut s = String::from(
        "order_id,placed_at,customer_email,sku,quantity,unit_price,currency,payment_method,payment_ref,payment_amount\n",
    );
    for n in 0..ORDERS {
        let lines: Vec<(usize, i64)> = (0..(n % 4 + 1))
            .map(|k| ((n * 7 + k * 13) % SKUS, (k % 3 + 1) as i64))
            .collect();
        let total: i64 = lines.iter().map(|(i, q)| q * (100 + *i as i64)).sum();
        for (i, q) in &lines {
            let p = 100 + *i as i64;
            s.push_str(&format!(
                "ORD-{n:09},2026-11-{:02}T10:20:30Z,customer{n}@example.com,SKU-{i:06},{q},{}.{:02},EUR,card,pay_{n:012x},{}.{:02}\n",
                n % 28 + 1,
                p / 100,
                p % 100,
                total / 100,
                total % 100
            ));
        }
    }
    s.into_bytes()
}

fn read_all(bytes: &[u8]) -> Vec<RawOrder> {
    let src = Source {
        path: "bench.csv".into(),
        reader: Box::new(Cursor::new(bytes.to_vec())),
        meter: Arc::new(InputMeter::default()),
    };
    open_orders(src, InputFormat::Csv, &ReadOptions::default())
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn stages(c: &mut Criterion) {
    let bytes = csv_bytes();
    let catalog = Catalog::new(products());
    let raws = read_all(&bytes);
    let mut g = c.benchmark_group("stages");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(ORDERS as u64));

    g.bench_function("read_csv", |b| b.iter(|| black_box(read_all(&bytes)).len()));
    g.bench_function("validate", |b| {
        b.iter_batched(
            || raws.clone(),
            |r| black_box(validate_chunk(r, &catalog)),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("apply_and_store", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("b.db");
                let mut store =
                    store::open(path.to_str().unwrap(), Duration::from_secs(5)).unwrap();
                let mut tx = store.begin().unwrap();
                tx.load_products(&products(), None, "bench", Timestamp::now())
                    .unwrap();
                tx.commit().unwrap();
                let checked = validate_chunk(raws.clone(), &catalog);
                (dir, store, checked)
            },
            |(dir, mut store, checked): (tempfile::TempDir, Box<dyn Store>, Vec<Checked>)| {
                let mut tx = store.begin().unwrap();
                let stock = tx.stock(None).unwrap();
                let mut applier = Applier::new(1, stock, false);
                let mut accepted = 0;
                let mut rest = checked;
                while !rest.is_empty() {
                    let tail = rest.split_off(rest.len().min(1024));
                    let chunk = std::mem::replace(&mut rest, tail);
                    for d in applier.apply_chunk(&mut *tx, chunk).unwrap() {
                        if let Outcome::Accepted(_) = d.outcome {
                            accepted += 1;
                        }
                    }
                }
                applier
                    .finish(&mut *tx, LedgerReason::Order, Timestamp::now())
                    .unwrap();
                drop(tx);
                drop(dir);
                accepted
            },
            BatchSize::PerIteration,
        )
    });
    let valid: Vec<_> = validate_chunk(raws.clone(), &catalog)
        .into_iter()
        .filter_map(|c| match c.verdict {
            orderbatch::validate::Verdict::Valid(o) => Some(o),
            _ => None,
        })
        .collect();
    g.bench_function("accepted_report_csv", |b| {
        b.iter(|| {
            let mut w =
                AcceptedWriter::new(Vec::with_capacity(4 << 20), ReportFormat::Csv).unwrap();
            for (i, o) in valid.iter().enumerate() {
                w.write(&AcceptedRow::new(
                    o,
                    Status::Accepted,
                    "bench.csv",
                    i as u64 + 2,
                ))
                .unwrap();
            }
            black_box(w.finish().unwrap().len())
        })
    });
    g.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
