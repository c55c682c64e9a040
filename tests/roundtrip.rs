//! Property: any order written as CSV or as JSONL and read back is the same
//! order (same values, same content fingerprint), with card-free free text,
//! quotes, commas, formula characters and any currency exponent.

use std::io::Cursor;
use std::sync::Arc;

use orderbatch::model::escape::escape_cell;
use orderbatch::model::money::{currency_exponent, format_amount};
use orderbatch::model::order::{Field, Product, ValidOrder};
use orderbatch::model::pan::contains_pan;
use orderbatch::model::Format;
use orderbatch::read::{open_orders, InputMeter, ReadOptions, Source};
use orderbatch::validate::{validate, Catalog, Verdict};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Order {
    id: String,
    placed_at: String,
    email: String,
    currency: &'static str,
    method: &'static str,
    payment_ref: String,
    lines: Vec<(String, i64, i64)>,
}

fn order() -> impl Strategy<Value = Order> {
    (
        "[A-Za-z0-9][A-Za-z0-9._:-]{0,20}",
        (
            2000u32..2100,
            1u32..13,
            1u32..29,
            0u32..24,
            0u32..60,
            prop::sample::select(vec!["Z", "+01:00", "-05:30"]),
        ),
        "[a-z0-9.+]{1,10}@[a-z]{1,8}\\.[a-z]{2,3}",
        prop::sample::select(vec!["EUR", "JPY", "KWD"]),
        prop::sample::select(vec![
            "card",
            "paypal",
            "bank_transfer",
            "gift_card",
            "cash_on_delivery",
        ]),
        // Free text with quotes, commas, semicolons and formula characters, never blank at the edges.
        "[=+@\\-A-Za-z0-9][ -~]{0,30}[A-Za-z0-9\"',;=]",
        prop::collection::vec(("[A-Za-z0-9._-]{1,12}", 1i64..1000, 0i64..10_000_000), 1..4),
    )
        .prop_filter("no card number in free text", |(_, _, _, _, _, r, _)| {
            !contains_pan(r)
        })
        .prop_map(
            |(id, (y, mo, d, h, mi, off), email, currency, method, payment_ref, lines)| {
                // One price per sku, as the catalog has it.
                let mut seen: Vec<(String, i64)> = Vec::new();
                let lines = lines
                    .into_iter()
                    .map(|(sku, q, p)| {
                        let p = match seen.iter().find(|(s, _)| *s == sku) {
                            Some((_, p)) => *p,
                            None => {
                                seen.push((sku.clone(), p));
                                p
                            }
                        };
                        (sku, q, p)
                    })
                    .collect();
                Order {
                    id,
                    placed_at: format!("{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:07{off}"),
                    email,
                    currency,
                    method,
                    payment_ref,
                    lines,
                }
            },
        )
}

impl Order {
    fn exp(&self) -> u32 {
        currency_exponent(self.currency)
    }
    fn total(&self) -> i64 {
        self.lines.iter().map(|(_, q, p)| q * p).sum()
    }
    fn catalog(&self) -> Catalog {
        Catalog::new(self.lines.iter().map(|(sku, _, p)| Product {
            sku: sku.clone(),
            name: "x".into(),
            unit_price: *p,
            currency: self.currency.into(),
            on_hand: 0,
        }))
    }
    fn csv(&self) -> Vec<u8> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(Field::ALL.map(|f| f.name())).unwrap();
        let amount = format_amount(self.total(), self.exp());
        for (sku, q, p) in &self.lines {
            let price = format_amount(*p, self.exp());
            let q = q.to_string();
            let cells = [
                &self.id,
                &self.placed_at,
                &self.email,
                sku,
                &q,
                &price,
                self.currency,
                self.method,
                &self.payment_ref,
                &amount,
            ];
            w.write_record(cells.iter().map(|c| escape_cell(c).into_owned()))
                .unwrap();
        }
        w.into_inner().unwrap()
    }
    fn jsonl(&self, numbers: bool) -> Vec<u8> {
        let e = self.exp();
        let amount = |v: i64| -> serde_json::Value {
            let text = format_amount(v, e);
            if numbers {
                serde_json::from_str(&text).unwrap()
            } else {
                text.into()
            }
        };
        let items: Vec<_> = self
            .lines
            .iter()
            .map(|(sku, q, p)| serde_json::json!({"sku": sku, "quantity": if numbers { serde_json::json!(q) } else { serde_json::json!(q.to_string()) }, "unit_price": amount(*p)}))
            .collect();
        let v = serde_json::json!({
            "order_id": self.id, "placed_at": self.placed_at, "customer_email": self.email,
            "currency": self.currency, "payment_method": self.method, "payment_ref": self.payment_ref,
            "payment_amount": amount(self.total()), "items": items,
        });
        format!("{v}\n").into_bytes()
    }
}

fn read_back(bytes: Vec<u8>, format: Format, catalog: &Catalog) -> ValidOrder {
    let src = Source {
        path: "t".into(),
        reader: Box::new(Cursor::new(bytes)),
        meter: Arc::new(InputMeter::default()),
    };
    let orders: Vec<_> = open_orders(src, format, &ReadOptions::default())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(orders.len(), 1);
    match validate(&orders[0], catalog) {
        Verdict::Valid(o) => o,
        other => panic!("{other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn an_order_written_as_csv_or_jsonl_reads_back_the_same(o in order(), numbers in any::<bool>()) {
        let catalog = o.catalog();
        let from_csv = read_back(o.csv(), Format::Csv, &catalog);
        let from_jsonl = read_back(o.jsonl(numbers), Format::Jsonl, &catalog);
        prop_assert_eq!(&from_csv, &from_jsonl);
        prop_assert_eq!(&from_csv.order_id, &o.id);
        prop_assert_eq!(&from_csv.placed_at, &o.placed_at);
        prop_assert_eq!(&from_csv.customer_email, &o.email);
        prop_assert_eq!(&from_csv.payment_ref, &o.payment_ref);
        prop_assert_eq!(from_csv.currency.as_str(), o.currency);
        prop_assert_eq!(from_csv.payment_method.as_str(), o.method);
        prop_assert_eq!(from_csv.total, o.total());
        prop_assert_eq!(from_csv.payment_amount, o.total());
        let lines: Vec<_> = from_csv.lines.iter().map(|l| (l.sku.clone(), l.quantity, l.unit_price)).collect();
        prop_assert_eq!(lines, o.lines.clone());
    }
}
