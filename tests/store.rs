//! The store's behaviour, tested once and run against every backend: every
//! Store and Tx operation, the transaction promises, liveness, migrations.
//! Each test runs on SQLite and on a fresh database of a throwaway
//! PostgreSQL cluster (see tests/common/pg.rs).

mod common;

use std::time::Duration;

use common::{backends, pg, Backend};
use orderbatch::model::clock::Timestamp;
use orderbatch::model::failure::{FailureKey, FailureState};
use orderbatch::model::order::{
    AcceptedRow, FailedBody, FailedOrder, FailedRow, Line, Problem, Product, Status, ValidOrder,
};
use orderbatch::model::run::{Counts, RunKind, RunRecord, RunStatus, RunSummary};
use orderbatch::model::{ErrorCode, ReportFormat};
use orderbatch::store::{
    self, Applied, AttemptOutcome, Claim, ClaimEnd, ClaimResult, ClaimToken, Claimant, Claimed,
    CloseResult, CloseSelection, ClosedBy, FailureFilter, Failures, Fault, InboxFile, LedgerReason,
    NewOrder, PruneBatch, Pruned, Release, RunFilter, Store, StoreError, Writes,
};

/// A fresh database of each backend: (backend, --db, the temp dir that holds it).
fn databases() -> Vec<(Backend, String, tempfile::TempDir)> {
    backends()
        .into_iter()
        .map(|b| {
            let dir = tempfile::tempdir().unwrap();
            let db = match b {
                Backend::Sqlite => dir.path().join("t.db").to_str().unwrap().to_string(),
                Backend::Postgres => pg::cluster().new_database(),
            };
            (b, db, dir)
        })
        .collect()
}

fn open(db: &str) -> Box<dyn Store> {
    store::open(db, Duration::from_secs(5)).unwrap()
}

fn product(sku: &str, price: i64, on_hand: i64) -> Product {
    Product {
        sku: sku.into(),
        name: format!("{sku} name"),
        unit_price: price,
        currency: "EUR".into(),
        on_hand,
    }
}

fn order(id: &str, sku: &str, quantity: i64, hash: u8) -> ValidOrder {
    ValidOrder {
        order_id: id.into(),
        placed_at: "2026-11-25T22:14:03Z".into(),
        customer_email: "a@b.co".into(),
        currency: "EUR".into(),
        payment_method: orderbatch::model::PaymentMethod::Card,
        payment_ref: "ref".into(),
        payment_amount: 100 * quantity,
        lines: vec![Line {
            sku: sku.into(),
            quantity,
            unit_price: 100,
        }],
        total: 100 * quantity,
        units: quantity,
        content_hash: [hash; 16],
    }
}

fn failure(id: Option<&str>, code: ErrorCode) -> FailedOrder {
    FailedOrder {
        order_id: id.map(str::to_string),
        code,
        stored_detail: String::new(),
        source_file: "in.csv".into(),
        source_line: 7,
        body: FailedBody {
            rows: vec![FailedRow {
                values: vec![id.unwrap_or("").to_string(); 10],
                line: 7,
                extra: vec![("note".into(), "n".into())],
                detail: String::new(),
            }],
            problems: vec![Problem::on_row(code, 0, "because")],
            ..FailedBody::default()
        },
    }
}

fn record(run_id: i64, status: RunStatus) -> RunRecord {
    RunRecord {
        summary: RunSummary {
            run_id,
            status,
            started_at: "2026-11-25T22:00:00.000Z".into(),
            finished_at: "2026-11-25T22:00:01.500Z".into(),
            duration_ms: 1500,
            inputs: vec![orderbatch::model::run::RunInput {
                path: "in.csv".into(),
                format: "csv".into(),
                sha256: "ab".repeat(32),
                encoding: None,
            }],
            counts: Counts {
                orders: 3,
                accepted: 1,
                skipped: 1,
                failed: 1,
                lines: 1,
                units: 2,
                by_code: [0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
            },
        },
        kind: RunKind::Process,
        report_format: ReportFormat::Csv,
        retried_runs: vec![],
        message: None,
        host: "h".into(),
    }
}

/// A time the database stores as given.
fn ts(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap()
}

/// A time for records whose time a test does not look at: later than every
/// date the tests give.
fn t() -> Timestamp {
    ts("2099-01-01T00:00:00.000Z")
}

fn all_open() -> FailureFilter {
    FailureFilter::default()
}

fn of_run(run: i64) -> FailureFilter {
    FailureFilter {
        run: Some(run),
        codes: Vec::new(),
    }
}

fn closed_by(by: &str, reason: &str, orders: i64) -> ClosedBy {
    ClosedBy {
        by: by.into(),
        reason: reason.into(),
        orders,
    }
}

fn keys(k: &[FailureKey]) -> CloseSelection {
    CloseSelection::Keys(k.to_vec())
}

fn stock_of(s: &mut dyn Store) -> Vec<(String, i64)> {
    s.products()
        .unwrap()
        .into_iter()
        .map(|p| (p.sku, p.on_hand))
        .collect()
}

#[test]
fn opening_migrates_once_and_again_changes_nothing() {
    for (b, db, _dir) in databases() {
        let mut s = open(&db);
        assert!(s.products().unwrap().is_empty(), "{b:?}");
        drop(s);
        // Opened again: the schema is there; nothing is lost.
        let mut s = open(&db);
        let mut tx = s.begin().unwrap();
        tx.load_products(&[product("A", 100, 5)], None, "cat.csv", t())
            .unwrap();
        tx.commit().unwrap();
        drop(s);
        assert_eq!(stock_of(&mut *open(&db)), [("A".to_string(), 5)], "{b:?}");
    }
}

/// A database of schema version 2 (before `runs prune`) opens as the newest version
/// with everything it held, and takes a carried-forward ledger entry.
#[test]
fn a_version_2_database_is_migrated_keeping_its_data() {
    let root = env!("CARGO_MANIFEST_DIR");
    let read = |p: &str| std::fs::read_to_string(format!("{root}/schema/{p}")).unwrap();
    let data = "INSERT INTO products VALUES ('A', 'a', 100, 'EUR', 5);
                INSERT INTO stock_ledger (sku, run_id, reason, delta, at) VALUES ('A', NULL, 'load', 7, 't'),
                    ('A', 1, 'order', -2, 't');
                INSERT INTO runs (id, command, status, started_at) VALUES (1, 'process', 'completed', 't');";
    for (b, db, _dir) in databases() {
        match b {
            Backend::Sqlite => {
                let c = rusqlite::Connection::open(&db).unwrap();
                c.execute_batch(&read("sqlite/v1.sql")).unwrap();
                c.execute_batch(&read("sqlite/v2.sql")).unwrap();
                c.execute_batch("PRAGMA user_version = 2").unwrap();
                c.execute_batch(data).unwrap();
            }
            Backend::Postgres => {
                let sql = format!(
                    "{} INSERT INTO schema_version VALUES (2); {data}",
                    read("postgres/v2.sql")
                );
                pg::cluster().psql(&db, &sql);
            }
        }
        let mut s = open(&db);
        assert_eq!(stock_of(&mut *s), [("A".to_string(), 5)], "{b:?}");
        assert!(
            s.check().unwrap().is_empty(),
            "{b:?}: the ledger still holds"
        );
        assert_eq!(
            s.run(1).unwrap().unwrap().summary.status,
            RunStatus::Completed
        );
        let mut tx = s.begin().unwrap();
        tx.move_stock(&[("A".into(), 1)], 2, LedgerReason::Carried, t())
            .unwrap();
        tx.commit().unwrap();
        drop(s);
        let version = match b {
            Backend::Sqlite => rusqlite::Connection::open(&db)
                .unwrap()
                .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
                .unwrap()
                .to_string(),
            Backend::Postgres => pg::cluster().psql(&db, "SELECT version FROM schema_version"),
        };
        assert_eq!(version, "5", "{b:?}");
    }
}

#[test]
fn a_newer_schema_is_refused() {
    for (b, db, _dir) in databases() {
        drop(open(&db));
        match b {
            Backend::Sqlite => {
                let c = rusqlite::Connection::open(&db).unwrap();
                c.execute_batch("PRAGMA user_version = 99").unwrap();
            }
            Backend::Postgres => {
                pg::cluster().psql(&db, "UPDATE schema_version SET version = 99");
            }
        }
        let err = store::open(&db, Duration::from_secs(1)).err().unwrap();
        assert!(
            matches!(err, StoreError::TooNew { found: 99, .. }),
            "{b:?}: {err}"
        );
        assert!(err.to_string().contains("newer orderbatch"), "{err}");
    }
}

#[test]
fn a_transaction_dropped_without_commit_leaves_nothing() {
    for (b, db, _dir) in databases() {
        let mut s = open(&db);
        {
            let mut tx = s.begin().unwrap();
            tx.load_products(&[product("A", 100, 5)], None, "cat.csv", t())
                .unwrap();
            assert_eq!(tx.products().unwrap().len(), 1, "{b:?}: seen inside");
        }
        assert!(s.products().unwrap().is_empty(), "{b:?}: rolled back");
        assert!(s.check().unwrap().is_empty(), "{b:?}");
    }
}

#[test]
fn loads_set_stock_receives_add_and_the_ledger_follows() {
    for (b, db, _dir) in databases() {
        let mut s = open(&db);
        let mut tx = s.begin().unwrap();
        tx.load_products(
            &[product("A", 100, 5), product("B", 200, 0)],
            None,
            "c",
            t(),
        )
        .unwrap();
        tx.commit().unwrap();
        let mut tx = s.begin().unwrap();
        // A second load sets the level (one ledger entry for the change only).
        tx.load_products(&[product("A", 150, 7)], None, "c2", t())
            .unwrap();
        let levels = tx
            .receive(
                &[("B".into(), 3), ("A".into(), 1), ("B".into(), 2)],
                "d",
                t(),
            )
            .unwrap();
        assert_eq!(
            levels,
            [("A".to_string(), 8), ("B".to_string(), 5)],
            "{b:?}"
        );
        tx.commit().unwrap();
        let products = s.products().unwrap();
        assert_eq!(products[0].unit_price, 150, "{b:?}: price updated");
        assert_eq!(
            stock_of(&mut *s),
            [("A".to_string(), 8), ("B".to_string(), 5)]
        );
        assert!(s.check().unwrap().is_empty(), "{b:?}: ledger matches stock");
        // An unknown sku changes nothing.
        let mut tx = s.begin().unwrap();
        assert!(tx.receive(&[("Z".into(), 1)], "d", t()).is_err(), "{b:?}");
        drop(tx);
        assert_eq!(stock_of(&mut *s)[0].1, 8);
    }
}

#[test]
fn stock_is_read_for_the_skus_asked_or_all() {
    for (b, db, _dir) in databases() {
        let mut s = open(&db);
        let mut tx = s.begin().unwrap();
        tx.load_products(
            &[product("C", 1, 3), product("A", 1, 1), product("B", 1, 2)],
            None,
            "c",
            t(),
        )
        .unwrap();
        let mut all = tx.stock(None).unwrap();
        all.sort();
        assert_eq!(all.len(), 3, "{b:?}");
        let some = tx.stock(Some(&["B".to_string(), "C".to_string()])).unwrap();
        assert_eq!(some, [("B".to_string(), 2), ("C".to_string(), 3)], "{b:?}");
        tx.move_stock(
            &[("A".into(), -1), ("C".into(), 2)],
            1,
            LedgerReason::Order,
            t(),
        )
        .unwrap();
        tx.commit().unwrap();
        assert_eq!(
            stock_of(&mut *s),
            [
                ("A".to_string(), 0),
                ("B".to_string(), 2),
                ("C".to_string(), 5)
            ]
        );
        assert!(s.check().unwrap().is_empty(), "{b:?}");
    }
}

#[test]
fn claims_store_new_orders_and_report_what_was_applied_before() {
    for (b, db, _dir) in databases() {
        let mut s = open(&db);
        let (o1, o2) = (order("O-1", "A", 1, 1), order("O-2", "A", 2, 2));
        let n = |o: &'static ValidOrder, seq| NewOrder {
            order: o,
            seq,
            source_file: "in.csv",
            source_line: seq + 1,
        };
        let (o1, o2): (&'static ValidOrder, &'static ValidOrder) =
            (Box::leak(Box::new(o1)), Box::leak(Box::new(o2)));
        let mut tx = s.begin().unwrap();
        assert_eq!(
            tx.claim(5, &[n(o1, 1), n(o2, 2)]).unwrap(),
            [Claim::New, Claim::New]
        );
        tx.unclaim(&["O-2"]).unwrap();
        tx.commit().unwrap();
        let mut tx = s.begin().unwrap();
        let again = tx.claim(6, &[n(o1, 1), n(o2, 2)]).unwrap();
        assert_eq!(
            again,
            [
                Claim::Taken(Applied {
                    content_hash: [1; 16],
                    run_id: 5
                }),
                Claim::New
            ],
            "{b:?}"
        );
        assert_eq!(
            tx.applied(&["O-1", "O-9"]).unwrap(),
            [
                Some(Applied {
                    content_hash: [1; 16],
                    run_id: 5
                }),
                None
            ]
        );
        tx.commit().unwrap();
        let mut rows = Vec::new();
        s.accepted_of_run(6, &mut |r| {
            rows.push(r);
            Ok(())
        })
        .unwrap();
        assert_eq!(rows.len(), 1, "{b:?}");
        assert_eq!((rows[0].order_id.as_str(), rows[0].source_line), ("O-2", 3));
        assert_eq!((rows[0].units, rows[0].total), (2, 200));
    }
}

#[test]
fn a_rehearsal_claims_like_a_run_leaves_nothing_and_cannot_commit() {
    for (b, db, _dir) in databases() {
        let mut s = open(&db);
        let n = |o: &'static ValidOrder, seq| NewOrder {
            order: o,
            seq,
            source_file: "in.csv",
            source_line: seq + 1,
        };
        let leak = |o: ValidOrder| -> &'static ValidOrder { Box::leak(Box::new(o)) };
        let (o1, o2, o3) = (
            leak(order("O-1", "A", 1, 1)),
            leak(order("O-2", "A", 2, 2)),
            leak(order("O-3", "A", 3, 3)),
        );
        let mut tx = s.begin().unwrap();
        tx.claim(5, &[n(o1, 1)]).unwrap();
        tx.commit().unwrap();

        let mut tx = s.begin().unwrap();
        tx.rehearse().unwrap();
        let first = tx.claim(6, &[n(o1, 1), n(o2, 2), n(o3, 3)]).unwrap();
        let applied_5 = Claim::Taken(Applied {
            content_hash: [1; 16],
            run_id: 5,
        });
        assert_eq!(first, [applied_5, Claim::New, Claim::New], "{b:?}");
        // What this rehearsal claimed counts as applied by it, as in a run...
        assert_eq!(
            tx.claim(6, &[n(o2, 4)]).unwrap(),
            [Claim::Taken(Applied {
                content_hash: [2; 16],
                run_id: 6
            })],
            "{b:?}"
        );
        assert_eq!(
            tx.seen_in_run(6, &["O-1", "O-2", "O-3", "O-9"]).unwrap(),
            [false, true, true, false],
            "{b:?}"
        );
        // ...until it gives the order back.
        tx.unclaim(&["O-3"]).unwrap();
        assert_eq!(tx.seen_in_run(6, &["O-3"]).unwrap(), [false], "{b:?}");
        assert_eq!(tx.claim(6, &[n(o3, 5)]).unwrap(), [Claim::New], "{b:?}");
        let refused = tx.commit().unwrap_err().to_string();
        assert!(
            refused.contains("a dry run's transaction was about to be committed"),
            "{b:?}: {refused}"
        );

        // Nothing of it stays, and a second rehearsal starts afresh.
        let mut tx = s.begin().unwrap();
        assert_eq!(tx.applied(&["O-2", "O-3"]).unwrap(), [None, None], "{b:?}");
        tx.rehearse().unwrap();
        assert_eq!(tx.claim(7, &[n(o2, 1)]).unwrap(), [Claim::New], "{b:?}");
    }
}

#[test]
fn records_keep_skips_and_failures_and_settle_older_failures() {
    for (b, db, _dir) in databases() {
        let mut s = open(&db);
        // Run 1: three failures (one open, one duplicate, one unparseable).
        let f_open = failure(Some("O-1"), ErrorCode::InsufficientStock);
        let f_dup = failure(Some("O-1"), ErrorCode::DuplicateInInput);
        let f_raw = failure(None, ErrorCode::MalformedRecord);
        let f_other = failure(Some("O-3"), ErrorCode::UnknownSku);
        let mut tx = s.begin().unwrap();
        let w = Writes {
            failures: vec![
                (1, &f_open, FailureState::Open),
                (2, &f_dup, FailureState::Final),
                (3, &f_raw, FailureState::Final),
                (4, &f_other, FailureState::Open),
            ],
            ..Writes::default()
        };
        tx.record(1, &w).unwrap();
        assert_eq!(
            tx.seen_in_run(1, &["O-1", "O-2"]).unwrap(),
            [true, false],
            "{b:?}"
        );
        tx.commit().unwrap();
        let mut states = Vec::new();
        s.failed_of_run(1, &mut |f| {
            states.push((f.order.order_id.clone(), f.state));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            states,
            [
                (Some("O-1".into()), FailureState::Open),
                (Some("O-1".into()), FailureState::Final),
                (None, FailureState::Final),
                (Some("O-3".into()), FailureState::Open),
            ],
            "{b:?}"
        );
        let open = s.open_failures(&all_open(), None, 10).unwrap();
        assert_eq!(open.len(), 2);
        // Run 2 skips O-1 (resolving it) and fails O-3 again (superseding it).
        let o1 = order("O-1", "A", 1, 1);
        let f_again = failure(Some("O-3"), ErrorCode::UnknownSku);
        let mut tx = s.begin().unwrap();
        let w = Writes {
            skips: vec![(1, AcceptedRow::new(&o1, Status::Skipped, "b.csv", 2))],
            failures: vec![(2, &f_again, FailureState::Open)],
            resolved: vec!["O-1"],
            resolved_failures: vec![],
            superseded: vec!["O-3"],
        };
        tx.record(2, &w).unwrap();
        assert_eq!(
            tx.seen_in_run(2, &["O-1", "O-3", "O-2"]).unwrap(),
            [true, true, false]
        );
        tx.commit().unwrap();
        let r1 = s.resolutions(1).unwrap();
        assert_eq!(r1.open, 0, "{b:?}");
        assert_eq!(r1.resolved_by, [(2, 1)]);
        assert_eq!(r1.superseded_by, [(2, 1)]);
        assert_eq!(s.resolutions(2).unwrap().resolved_here, [(1, 1)]);
        let open = s.open_failures(&all_open(), None, 10).unwrap();
        assert_eq!(open.len(), 1, "{b:?}: only run 2's O-3");
        assert_eq!(
            (open[0].run_id, open[0].order.order_id.as_deref()),
            (2, Some("O-3"))
        );
        let mut skipped = Vec::new();
        s.accepted_of_run(2, &mut |r| {
            skipped.push((r.order_id, r.status));
            Ok(())
        })
        .unwrap();
        assert_eq!(skipped, [("O-1".to_string(), Status::Skipped)]);
    }
}

#[test]
fn open_failures_come_in_pages_of_one_run_or_all_and_can_be_closed() {
    for (b, db, _dir) in databases() {
        let mut s = open(&db);
        let fs: Vec<FailedOrder> = (0..5)
            .map(|i| failure(Some(&format!("O-{i}")), ErrorCode::UnknownSku))
            .collect();
        let mut tx = s.begin().unwrap();
        let w = Writes {
            failures: fs
                .iter()
                .enumerate()
                .map(|(i, f)| (i as u64 + 1, f, FailureState::Open))
                .collect(),
            ..Writes::default()
        };
        tx.record(1, &w).unwrap();
        tx.record(
            2,
            &Writes {
                failures: vec![(1, &fs[0], FailureState::Open)],
                ..Writes::default()
            },
        )
        .unwrap();
        tx.commit().unwrap();
        let page1 = s.open_failures(&all_open(), None, 4).unwrap();
        let page2 = s
            .open_failures(&all_open(), Some(page1[3].key()), 4)
            .unwrap();
        assert_eq!((page1.len(), page2.len()), (4, 2), "{b:?}");
        assert!(page1.iter().chain(&page2).map(|f| f.id).is_sorted());
        assert_eq!(s.open_failures(&of_run(2), None, 10).unwrap().len(), 1);
        let ids = [page1[0].key(), page1[1].key()];
        let res = s
            .close_failures(&keys(&ids), "never coming", "ops@h", t())
            .unwrap()
            .results;
        assert_eq!(
            res,
            [(ids[0], CloseResult::Closed), (ids[1], CloseResult::Closed)]
        );
        let missing = FailureKey { run: 99, seq: 9 };
        let again = s
            .close_failures(&keys(&[ids[0], missing]), "x", "ops@h", t())
            .unwrap()
            .results;
        assert_eq!(
            again,
            [
                (ids[0], CloseResult::NotOpen(FailureState::Closed)),
                (missing, CloseResult::Missing)
            ],
            "{b:?}"
        );
        // All or nothing: an open one beside one that cannot be closed stays open.
        let open = page1[2].key();
        let mixed = s
            .close_failures(&keys(&[open, ids[0]]), "x", "ops@h", t())
            .unwrap()
            .results;
        assert_eq!(mixed[0], (open, CloseResult::Closed), "{b:?}");
        assert_eq!(
            mixed[1],
            (ids[0], CloseResult::NotOpen(FailureState::Closed))
        );
        assert_eq!(s.open_failures(&all_open(), None, 10).unwrap().len(), 4);
        let r = s.resolutions(1).unwrap();
        assert_eq!(r.closed, [closed_by("ops@h", "never coming", 2)]);
        assert_eq!(r.open, 3);
        let keys = [page1[1].key(), page1[0].key()];
        let by_id = s.failures_by_key(&keys).unwrap();
        assert_eq!(
            by_id.iter().map(|f| f.id).collect::<Vec<_>>(),
            [page1[0].id, page1[1].id]
        );
        assert!(by_id.iter().all(|f| f.state == FailureState::Closed));
    }
}

#[test]
fn open_failures_are_read_by_code_and_run() {
    for (b, db, _dir) in databases() {
        let mut s = open(&db);
        let codes = [
            ErrorCode::InsufficientStock,
            ErrorCode::UnknownSku,
            ErrorCode::InvalidField,
            ErrorCode::InsufficientStock,
        ];
        let fs: Vec<FailedOrder> = codes
            .iter()
            .enumerate()
            .map(|(i, c)| failure(Some(&format!("O-{i}")), *c))
            .collect();
        let mut tx = s.begin().unwrap();
        for run in [1, 2] {
            let w = Writes {
                failures: fs
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % 2 + 1 == run as usize)
                    .map(|(i, f)| (i as u64 + 1, f, FailureState::Open))
                    .collect(),
                ..Writes::default()
            };
            tx.record(run, &w).unwrap();
        }
        tx.commit().unwrap();
        let ids = |s: &mut Box<dyn Store>, run: Option<i64>, codes: &[ErrorCode]| -> Vec<String> {
            let filter = FailureFilter {
                run,
                codes: codes.to_vec(),
            };
            s.open_failures(&filter, None, 10)
                .unwrap()
                .into_iter()
                .map(|f| f.order.order_id.unwrap())
                .collect()
        };
        assert_eq!(ids(&mut s, None, &[]).len(), 4, "{b:?}");
        assert_eq!(
            ids(&mut s, None, &[ErrorCode::InsufficientStock]),
            ["O-0", "O-3"],
            "{b:?}"
        );
        assert_eq!(
            ids(
                &mut s,
                None,
                &[ErrorCode::UnknownSku, ErrorCode::InvalidField]
            ),
            ["O-2", "O-1"],
            "{b:?}"
        );
        assert_eq!(
            ids(&mut s, Some(2), &[ErrorCode::InsufficientStock]),
            ["O-3"],
            "{b:?}"
        );
        assert!(ids(&mut s, None, &[ErrorCode::PriceMismatch]).is_empty());
        // Pages of a filtered read go on from the last key.
        let filter = FailureFilter {
            run: None,
            codes: vec![ErrorCode::InsufficientStock],
        };
        let first = s.open_failures(&filter, None, 1).unwrap();
        let next = s.open_failures(&filter, Some(first[0].key()), 1).unwrap();
        assert_eq!(next[0].order.order_id.as_deref(), Some("O-3"), "{b:?}");
    }
}

/// Open failures of O-1, O-2 and O-3 in run 1 (UNKNOWN_SKU but O-1's);
/// run 2 fails O-1 again, its record superseding run 1's, and holds a
/// duplicate of O-3 (final), which replaces nothing.
fn failures_to_close(s: &mut Box<dyn Store>) {
    let f1 = failure(Some("O-1"), ErrorCode::InsufficientStock);
    let f2 = failure(Some("O-2"), ErrorCode::UnknownSku);
    let f3 = failure(Some("O-3"), ErrorCode::UnknownSku);
    let f4 = failure(Some("O-3"), ErrorCode::DuplicateInInput);
    let mut tx = s.begin().unwrap();
    tx.record(
        1,
        &Writes {
            failures: vec![
                (1, &f1, FailureState::Open),
                (2, &f2, FailureState::Open),
                (3, &f3, FailureState::Open),
            ],
            ..Writes::default()
        },
    )
    .unwrap();
    tx.commit().unwrap();
    // Run 2 fails O-1 again (its record supersedes run 1's) and holds a
    // duplicate of O-3, which is no replacement of anything.
    let mut tx = s.begin().unwrap();
    tx.record(
        2,
        &Writes {
            failures: vec![(1, &f1, FailureState::Open), (2, &f4, FailureState::Final)],
            superseded: vec!["O-1"],
            ..Writes::default()
        },
    )
    .unwrap();
    tx.commit().unwrap();
}

#[test]
fn failures_close_by_code_and_by_order_and_name_what_superseded_them() {
    for (b, db, _dir) in databases() {
        let mut s = open(&db);
        failures_to_close(&mut s);
        let (f1_1, f2_1) = (FailureKey { run: 1, seq: 1 }, FailureKey { run: 2, seq: 1 });
        let c = s.close_failures(&keys(&[f1_1]), "x", "ops@h", t()).unwrap();
        assert!(!c.closed(), "{b:?}");
        assert_eq!(
            c.results,
            [(f1_1, CloseResult::NotOpen(FailureState::Superseded))]
        );
        assert_eq!(c.replaced_by, [(f1_1, f2_1, FailureState::Open)], "{b:?}");
        // By order: all or nothing; an order that never failed is named.
        let by_order =
            |ids: &[&str]| CloseSelection::Orders(ids.iter().map(|i| i.to_string()).collect());
        let c = s
            .close_failures(&by_order(&["O-1", "O-9"]), "x", "ops@h", t())
            .unwrap();
        assert_eq!(c.without_open, [("O-9".to_string(), None)], "{b:?}");
        assert!(!c.closed());
        assert_eq!(
            s.failures_by_key(&[f2_1]).unwrap()[0].state,
            FailureState::Open
        );
        let c = s
            .close_failures(&by_order(&["O-1"]), "refunded", "ops@h", t())
            .unwrap();
        assert!(c.closed(), "{b:?}: {c:?}");
        assert_eq!(
            c.results,
            [(f2_1, CloseResult::Closed)],
            "{b:?}: the open one"
        );
        let c = s
            .close_failures(&by_order(&["O-1"]), "x", "ops@h", t())
            .unwrap();
        assert_eq!(
            c.without_open,
            [("O-1".to_string(), Some((f2_1, FailureState::Closed)))],
            "{b:?}"
        );
        // By code, of one run: every one open now.
        let unknown = |run| {
            CloseSelection::Codes(FailureFilter {
                run,
                codes: vec![ErrorCode::UnknownSku],
            })
        };
        let c = s
            .close_failures(&unknown(Some(1)), "gone", "ops@h", t())
            .unwrap();
        assert!(c.closed(), "{b:?}");
        assert_eq!(
            c.results.iter().map(|(k, _)| k.seq).collect::<Vec<_>>(),
            [2, 3],
            "{b:?}"
        );
        let c = s
            .close_failures(&unknown(None), "gone", "ops@h", t())
            .unwrap();
        assert!(
            c.closed() && c.results.is_empty(),
            "{b:?}: none left is no error"
        );
        assert!(
            s.open_failures(&all_open(), None, 10).unwrap().is_empty(),
            "{b:?}"
        );
        assert_eq!(
            s.resolutions(1).unwrap().closed,
            [closed_by("ops@h", "gone", 2)],
            "{b:?}"
        );
    }
}

/// Two runs to prune or keep, on a product A loaded with 10 units on
/// 1 January: run 1 (finished 1 February) applied O-1 (2 units), skipped
/// O-9 and failed O-3 (open), O-4 (resolved later by run 2) and a record
/// that did not parse (final); run 2 (finished 1 March) resolved O-4 and
/// took one unit more. Returns their ids.
fn two_runs(s: &mut Box<dyn Store>) -> (i64, i64) {
    let mut tx = s.begin().unwrap();
    tx.load_products(
        &[product("A", 100, 10)],
        None,
        "c",
        ts("2026-01-01T00:00:00.000Z"),
    )
    .unwrap();
    tx.commit().unwrap();
    let (o1, o9) = (order("O-1", "A", 2, 1), order("O-9", "A", 1, 9));
    let (f3, f4, f5) = (
        failure(Some("O-3"), ErrorCode::UnknownSku),
        failure(Some("O-4"), ErrorCode::InsufficientStock),
        failure(None, ErrorCode::MalformedRecord),
    );
    // Run 1: O-1 applied, O-9 skipped, three failures; finished on 1 February.
    let r1 = s
        .start_run(RunKind::Process, t(), ReportFormat::Csv)
        .unwrap();
    let mut tx = s.begin().unwrap();
    let n1 = NewOrder {
        order: &o1,
        seq: 1,
        source_file: "in.csv",
        source_line: 2,
    };
    assert_eq!(tx.claim(r1, &[n1]).unwrap(), [Claim::New]);
    let w = Writes {
        skips: vec![(2, AcceptedRow::new(&o9, Status::Skipped, "in.csv", 3))],
        failures: vec![
            (3, &f3, FailureState::Open),
            (4, &f4, FailureState::Open),
            (5, &f5, FailureState::Final),
        ],
        ..Writes::default()
    };
    tx.record(r1, &w).unwrap();
    tx.move_stock(&[("A".into(), -2)], r1, LedgerReason::Order, t())
        .unwrap();
    let mut done = record(r1, RunStatus::Completed);
    done.summary.finished_at = "2026-02-01T00:00:00.000Z".into();
    tx.finish_run(&done).unwrap();
    tx.commit().unwrap();
    // Run 2 resolves O-4 and takes one more unit; finished on 1 March.
    let r2 = s
        .start_run(RunKind::Reprocess, t(), ReportFormat::Csv)
        .unwrap();
    let mut tx = s.begin().unwrap();
    tx.record(
        r2,
        &Writes {
            resolved: vec!["O-4"],
            ..Writes::default()
        },
    )
    .unwrap();
    tx.move_stock(&[("A".into(), -1)], r2, LedgerReason::Reprocess, t())
        .unwrap();
    let mut done = record(r2, RunStatus::Completed);
    done.summary.finished_at = "2026-03-01T00:00:00.000Z".into();
    tx.finish_run(&done).unwrap();
    tx.commit().unwrap();
    (r1, r2)
}

#[test]
fn a_prune_forgets_a_batch_keeps_open_failures_and_what_a_rerun_needs() {
    for (b, db, _dir) in databases() {
        let mut s = open(&db);
        let (r1, r2) = two_runs(&mut s);

        let before = ts("2026-02-15T00:00:00.000Z");
        // A run still running, started long before the date, is never one.
        s.start_run(
            RunKind::Process,
            ts("2026-01-02T00:00:00.000Z"),
            ReportFormat::Csv,
        )
        .unwrap();
        let old = s.old_runs(before).unwrap();
        assert_eq!(
            old.iter().map(|r| (r.id, r.pruned)).collect::<Vec<_>>(),
            [(r1, false)],
            "{b:?}: run 2 finished after the date, the third is running"
        );
        let runs = [r1];
        let batch = |dry| PruneBatch {
            runs: &runs,
            before,
            at: ts("2026-04-01T00:00:00.000Z"),
            sweep: true,
            dry,
        };
        let would = s.prune(&batch(true)).unwrap();
        assert!(
            s.pruned_at(r1).unwrap().is_none(),
            "{b:?}: a dry prune changes nothing"
        );
        let did = s.prune(&batch(false)).unwrap();
        assert_eq!(would, did, "{b:?}");
        let expect = Pruned {
            runs: 1,
            skips: 1,
            failures: 2,
            open_kept: 1,
            // Run 1's entry and the load before the date; A's sum is 8.
            ledger_entries: 2,
            ledger_skus: ["A".to_string()].into(),
            orders: 1,
        };
        assert_eq!(did, expect, "{b:?}");
        assert_eq!(
            s.pruned_at(r1).unwrap().as_deref(),
            Some("2026-04-01T00:00:00.000Z")
        );
        assert!(s.pruned_at(r2).unwrap().is_none(), "{b:?}");
        assert!(
            s.check().unwrap().is_empty(),
            "{b:?}: the ledger still sums to the stock"
        );
        assert_eq!(stock_of(&mut *s), [("A".to_string(), 7)]);
        // What a re-run needs: the id, its fingerprint and run.
        let mut tx = s.begin().unwrap();
        assert_eq!(
            tx.applied(&["O-1"]).unwrap(),
            [Some(Applied {
                content_hash: [1; 16],
                run_id: r1
            })],
            "{b:?}"
        );
        drop(tx);
        let mut rows = 0;
        s.accepted_of_run(r1, &mut |_| {
            rows += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(rows, 0, "{b:?}: its accepted report is gone");
        let open = s.open_failures(&all_open(), None, 10).unwrap();
        assert_eq!(open.len(), 1, "{b:?}");
        assert_eq!(open[0].order.order_id.as_deref(), Some("O-3"));
        // Pruned once: a second prune of it does nothing; the sweep takes
        // what was settled since.
        s.close_failures(&keys(&[open[0].key()]), "gone", "ops@h", t())
            .unwrap();
        let again = s.prune(&batch(false)).unwrap();
        assert_eq!(
            again,
            Pruned {
                failures: 1,
                ..Pruned::default()
            },
            "{b:?}"
        );
        assert!(s.old_runs(before).unwrap()[0].pruned);
    }
}

#[test]
fn retried_failures_are_superseded_by_the_retrying_run() {
    for (b, db, _dir) in databases() {
        let mut s = open(&db);
        let f = failure(Some("O-1"), ErrorCode::InsufficientStock);
        let mut tx = s.begin().unwrap();
        tx.record(
            1,
            &Writes {
                failures: vec![(1, &f, FailureState::Open)],
                ..Writes::default()
            },
        )
        .unwrap();
        tx.commit().unwrap();
        let open = s.open_failures(&all_open(), None, 1).unwrap();
        let (id, key) = (open[0].id, open[0].key());
        assert_eq!(key.seq, 1, "{b:?}: its position in run 1");
        let mut tx = s.begin().unwrap();
        tx.supersede_retried(&[id], 2).unwrap();
        tx.commit().unwrap();
        assert_eq!(
            s.failures_by_key(&[key]).unwrap()[0].state,
            FailureState::Superseded,
            "{b:?}"
        );
        assert_eq!(s.resolutions(1).unwrap().superseded_by, [(2, 1)]);
    }
}

#[test]
fn the_history_records_runs_and_the_last_success() {
    for (b, db, _dir) in databases() {
        let mut s = open(&db);
        assert_eq!(s.last_success().unwrap(), None, "{b:?}");
        let id = s
            .start_run(
                RunKind::Process,
                ts("2026-11-25T22:00:00.000Z"),
                ReportFormat::Jsonl,
            )
            .unwrap();
        let run = s.run(id).unwrap().unwrap();
        assert_eq!(
            run.summary.status,
            RunStatus::Running,
            "{b:?}: alive while its store is open"
        );
        assert_eq!(run.report_format, ReportFormat::Jsonl);
        let mut tx = s.begin().unwrap();
        tx.finish_run(&record(id, RunStatus::Completed)).unwrap();
        tx.commit().unwrap();
        let run = s.run(id).unwrap().unwrap();
        assert_eq!(
            run.summary,
            record(id, RunStatus::Completed).summary,
            "{b:?}"
        );
        assert_eq!(
            s.last_success().unwrap().as_deref(),
            Some("2026-11-25T22:00:01.500Z")
        );
        let id2 = s
            .start_run(
                RunKind::Reprocess,
                ts("2026-11-25T23:00:00.000Z"),
                ReportFormat::Csv,
            )
            .unwrap();
        let mut failed = record(id2, RunStatus::Failed);
        failed.message = Some("why".into());
        failed.kind = RunKind::Reprocess;
        s.end_run(&failed).unwrap();
        let runs = s.runs(&RunFilter::default()).unwrap();
        assert_eq!(
            runs.iter().map(|r| r.summary.run_id).collect::<Vec<_>>(),
            [id2, id]
        );
        assert_eq!(runs[0].message.as_deref(), Some("why"));
        assert_eq!(runs[0].kind, RunKind::Reprocess);
        assert_eq!(
            s.last_success().unwrap().as_deref(),
            Some("2026-11-25T22:00:01.500Z"),
            "{b:?}: a failed run is no success"
        );
        assert!(s.run(9999).unwrap().is_none());
    }
}

#[test]
fn the_history_is_read_by_status_as_shown_and_cut_to_the_newest() {
    for (b, db, _dir) in databases() {
        let mut s = open(&db);
        let mut ids = Vec::new();
        for status in [
            RunStatus::Completed,
            RunStatus::Failed,
            RunStatus::Completed,
        ] {
            let id = s
                .start_run(RunKind::Process, t(), ReportFormat::Csv)
                .unwrap();
            s.end_run(&record(id, status)).unwrap();
            ids.push(id);
        }
        // A run left running by a session that is gone, and one alive.
        let mut other = open(&db);
        let dead = other
            .start_run(RunKind::Process, t(), ReportFormat::Csv)
            .unwrap();
        if b == Backend::Sqlite {
            // Its process is gone from this host.
            let c = rusqlite::Connection::open(&db).unwrap();
            c.execute(
                "UPDATE runs SET pid = ?1 WHERE id = ?2",
                rusqlite::params![i64::from(u32::MAX), dead],
            )
            .unwrap();
        }
        drop(other);
        wait_until_not_running(&mut s, dead);
        let alive = s
            .start_run(RunKind::Process, t(), ReportFormat::Csv)
            .unwrap();
        let ids_of = |s: &mut Box<dyn Store>, status, limit| -> Vec<i64> {
            s.runs(&RunFilter { status, limit })
                .unwrap()
                .iter()
                .map(|r| r.summary.run_id)
                .collect()
        };
        assert_eq!(
            ids_of(&mut s, None, None),
            [alive, dead, ids[2], ids[1], ids[0]],
            "{b:?}"
        );
        assert_eq!(ids_of(&mut s, None, Some(2)), [alive, dead], "{b:?}");
        assert_eq!(
            ids_of(&mut s, Some(RunStatus::Completed), None),
            [ids[2], ids[0]],
            "{b:?}"
        );
        assert_eq!(
            ids_of(&mut s, Some(RunStatus::Completed), Some(1)),
            [ids[2]],
            "{b:?}"
        );
        assert_eq!(ids_of(&mut s, Some(RunStatus::Failed), None), [ids[1]]);
        // Stored as running, shown by what its liveness says.
        assert_eq!(
            ids_of(&mut s, Some(RunStatus::Running), Some(1)),
            [alive],
            "{b:?}"
        );
        assert_eq!(
            ids_of(&mut s, Some(RunStatus::Interrupted), None),
            [dead],
            "{b:?}"
        );
        assert!(ids_of(&mut s, Some(RunStatus::Aborted), None).is_empty());
    }
}

/// A closed PostgreSQL session is ended by the server on its own schedule, so
/// its run's liveness lock goes a moment after the client lets go: wait
/// (bounded) for that before judging what the run reads as.
fn wait_until_not_running(s: &mut Box<dyn Store>, id: i64) {
    for _ in 0..400 {
        if s.run(id).unwrap().unwrap().summary.status != RunStatus::Running {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn a_run_whose_process_is_gone_reads_as_interrupted_and_is_reaped() {
    for (b, db, _dir) in databases() {
        let mut s = open(&db);
        let dead = match b {
            Backend::Sqlite => {
                // A row left by a process that no longer exists on this host.
                let c = rusqlite::Connection::open(&db).unwrap();
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
                c.execute(
                    "INSERT INTO runs (id, command, status, started_at, pid, host) VALUES (7, 'process', 'running', 'x', ?1, ?2)",
                    rusqlite::params![i64::from(u32::MAX), host.trim()],
                )
                .unwrap();
                7
            }
            Backend::Postgres => {
                // A run whose session ended (as when its process is killed):
                // the server released its liveness lock.
                let mut other = open(&db);
                let id = other
                    .start_run(RunKind::Process, t(), ReportFormat::Csv)
                    .unwrap();
                assert_eq!(
                    s.run(id).unwrap().unwrap().summary.status,
                    RunStatus::Running
                );
                drop(other);
                wait_until_not_running(&mut s, id);
                id
            }
        };
        assert_eq!(
            s.run(dead).unwrap().unwrap().summary.status,
            RunStatus::Interrupted,
            "{b:?}"
        );
        let alive = s
            .start_run(RunKind::Process, t(), ReportFormat::Csv)
            .unwrap();
        let reaped = s.reap_interrupted().unwrap();
        if b == Backend::Postgres {
            assert_eq!(reaped, [dead], "{b:?}: the live run is left alone");
            assert_eq!(
                s.run(alive).unwrap().unwrap().summary.status,
                RunStatus::Running
            );
        } else {
            assert!(reaped.contains(&dead), "{b:?}");
        }
        let stored = match b {
            Backend::Sqlite => rusqlite::Connection::open(&db)
                .unwrap()
                .query_row("SELECT status FROM runs WHERE id = ?1", [dead], |r| {
                    r.get::<_, String>(0)
                })
                .unwrap(),
            Backend::Postgres => {
                pg::cluster().psql(&db, &format!("SELECT status FROM runs WHERE id = {dead}"))
            }
        };
        assert_eq!(stored, "interrupted", "{b:?}");
    }
}

#[test]
fn verify_finds_a_ledger_that_does_not_match_the_stock() {
    for (b, db, _dir) in databases() {
        let mut s = open(&db);
        let mut tx = s.begin().unwrap();
        tx.load_products(&[product("A", 1, 5), product("B", 1, 2)], None, "c", t())
            .unwrap();
        tx.commit().unwrap();
        assert!(s.check().unwrap().is_empty(), "{b:?}");
        let tamper = "UPDATE products SET on_hand = 9 WHERE sku = 'A'";
        match b {
            Backend::Sqlite => {
                rusqlite::Connection::open(&db)
                    .unwrap()
                    .execute_batch(tamper)
                    .unwrap();
            }
            Backend::Postgres => {
                pg::cluster().psql(&db, tamper);
            }
        }
        assert_eq!(
            s.check().unwrap(),
            [Fault::Ledger {
                sku: "A".into(),
                on_hand: Some(9),
                ledger_sum: 5
            }],
            "{b:?}"
        );
    }
}

#[test]
fn a_writer_waits_for_another_up_to_the_lock_timeout() {
    for (b, db, _dir) in databases() {
        let mut s = open(&db);
        let mut tx = s.begin().unwrap();
        tx.load_products(&[product("A", 1, 5)], None, "c", t())
            .unwrap();
        tx.commit().unwrap();
        let mut holder = open(&db);
        let mut held = holder.begin().unwrap();
        held.stock(Some(&["A".to_string()])).unwrap();
        let mut waiter = store::open(&db, Duration::from_millis(300)).unwrap();
        let t = std::time::Instant::now();
        let res = waiter
            .begin()
            .and_then(|mut tx| tx.stock(Some(&["A".to_string()])).map(|_| ()));
        assert!(
            matches!(res, Err(StoreError::Locked { .. })),
            "{b:?}: {res:?}"
        );
        assert!(t.elapsed() >= Duration::from_millis(250), "{b:?} waited");
        drop(held);
        drop(holder);
        let mut tx = waiter.begin().unwrap();
        assert_eq!(
            tx.stock(Some(&["A".to_string()])).unwrap(),
            [("A".to_string(), 5)]
        );
    }
}

#[test]
fn on_postgres_disjoint_stock_does_not_wait_and_a_catalog_load_waits_for_runs() {
    if !backends().contains(&Backend::Postgres) {
        return;
    }
    let db = pg::cluster().new_database();
    let mut s = open(&db);
    let mut tx = s.begin().unwrap();
    tx.load_products(&[product("A", 1, 5), product("B", 1, 5)], None, "c", t())
        .unwrap();
    tx.commit().unwrap();
    let mut one = open(&db);
    let mut t1 = one.begin().unwrap();
    t1.stock(Some(&["A".to_string()])).unwrap();
    let mut two = store::open(&db, Duration::from_millis(300)).unwrap();
    let mut t2 = two.begin().unwrap();
    assert_eq!(
        t2.stock(Some(&["B".to_string()])).unwrap(),
        [("B".to_string(), 5)],
        "no wait on another sku"
    );
    drop(t2);
    drop(t1);
    // A run holds the catalog shared; a load needs it alone.
    one.hold_catalog(false).unwrap();
    two.hold_catalog(false).unwrap();
    let mut loader = store::open(&db, Duration::from_millis(300)).unwrap();
    assert!(matches!(
        loader.hold_catalog(true),
        Err(StoreError::Locked { .. })
    ));
    drop(one);
    drop(two);
    loader.hold_catalog(true).unwrap();
}

#[test]
fn on_postgres_verify_runs_amcheck_where_it_is_installed() {
    if !backends().contains(&Backend::Postgres) {
        return;
    }
    let db = pg::cluster().new_database();
    let mut s = open(&db);
    let mut tx = s.begin().unwrap();
    tx.load_products(&[product("A", 1, 5)], None, "c", t())
        .unwrap();
    tx.commit().unwrap();
    pg::cluster().psql(&db, "CREATE EXTENSION amcheck");
    assert!(
        s.check().unwrap().is_empty(),
        "every index passes bt_index_check"
    );
    // A role that may not run the check gets the ledger check alone, not a
    // damaged database.
    pg::cluster().psql(
        &db,
        "REVOKE EXECUTE ON FUNCTION bt_index_check(regclass, boolean) FROM PUBLIC",
    );
    pg::cluster().psql(&db, "CREATE ROLE checker LOGIN; GRANT ALL ON ALL TABLES IN SCHEMA public TO checker; GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO checker");
    let as_checker = db.replacen("postgres@", "checker@", 1);
    assert!(open(&as_checker).check().unwrap().is_empty());
}

// ---------------------------------------------------------------- inbox claims

fn inbox_file<'a>(name: &'a str, sha256: &'a str) -> InboxFile<'a> {
    InboxFile { name, sha256 }
}

fn worker(host: &str, lease: Duration) -> Claimant<'_> {
    Claimant {
        host,
        pid: 4242,
        lease,
    }
}

fn granted(r: ClaimResult) -> Claimed {
    match r {
        ClaimResult::Claimed(c) => c,
        other => panic!("expected a claim, got {other:?}"),
    }
}

/// Ends a claim held, as the inbox does once its file is moved.
fn end(s: &mut dyn Store, c: &ClaimToken, outcome: AttemptOutcome, run: Option<i64>) -> bool {
    let mut tx = s.begin().unwrap();
    if !tx.fence(c, run).unwrap() {
        return false;
    }
    let end = ClaimEnd {
        outcome,
        run_id: run,
        moved_to: "done/a.csv",
        message: None,
    };
    tx.end_claim(c, end).unwrap();
    tx.commit().unwrap();
    true
}

#[test]
fn a_file_s_claim_is_granted_once_renewed_fenced_and_ended() {
    let long = Duration::from_secs(600);
    for (b, db, _dir) in databases() {
        let (mut a, mut other) = (open(&db), open(&db));
        let x = "ab".repeat(32);
        let mine = granted(
            a.claim_file(inbox_file("a.csv", &x), worker("h1", long))
                .unwrap(),
        );
        assert_eq!((mine.attempts, &mine.took_over), (0, &None), "{b:?}");
        // The same content under another name is the same claim: held.
        match other
            .claim_file(inbox_file("copy.csv", &x), worker("h2", long))
            .unwrap()
        {
            ClaimResult::Held { for_ms } => assert!(for_ms > 500_000, "{b:?}: {for_ms}"),
            r => panic!("{b:?}: {r:?}"),
        }
        assert!(a.renew_claim(&mine.claim, long).unwrap(), "{b:?}");
        assert!(
            end(&mut *a, &mine.claim, AttemptOutcome::Done, None),
            "{b:?}"
        );
        // Ended: no longer held, and its token fences nothing.
        assert!(!a.renew_claim(&mine.claim, long).unwrap(), "{b:?}");
        assert!(!end(&mut *a, &mine.claim, AttemptOutcome::Done, None));
        // A file of that content that came since starts afresh.
        let again = granted(
            other
                .claim_file(inbox_file("copy.csv", &x), worker("h2", long))
                .unwrap(),
        );
        assert_eq!(again.attempts, 0, "{b:?}");
        assert_ne!(again.claim.token, mine.claim.token);
    }
}

#[test]
fn a_lapsed_claim_is_taken_over_counted_and_its_old_holder_fenced_out() {
    for (b, db, _dir) in databases() {
        let (mut a, mut other) = (open(&db), open(&db));
        let x = "cd".repeat(32);
        let first = granted(
            a.claim_file(inbox_file("a.csv", &x), worker("h1", Duration::ZERO))
                .unwrap(),
        );
        let long = Duration::from_secs(600);
        let taken = granted(
            other
                .claim_file(inbox_file("a.csv", &x), worker("h2", long))
                .unwrap(),
        );
        assert_eq!(taken.attempts, 1, "{b:?}: the lapsed attempt counts");
        let lapsed = taken.took_over.clone().expect("a takeover");
        assert_eq!((lapsed.host.as_str(), lapsed.pid), ("h1", 4242), "{b:?}");
        assert!(taken.message.unwrap().contains("lease ended"), "{b:?}");
        // The old holder can neither renew, commit, move nor release.
        assert!(!a.renew_claim(&first.claim, long).unwrap(), "{b:?}");
        assert!(!end(&mut *a, &first.claim, AttemptOutcome::Done, None));
        assert!(!a.release_claim(&first.claim, Release::Stopped).unwrap());
        assert!(end(&mut *other, &taken.claim, AttemptOutcome::Done, None));
    }
}

#[test]
fn a_released_claim_waits_out_its_delay_and_only_retries_count() {
    let long = Duration::from_secs(600);
    for (b, db, _dir) in databases() {
        let mut s = open(&db);
        let x = "ef".repeat(32);
        let c = granted(
            s.claim_file(inbox_file("a.csv", &x), worker("h", long))
                .unwrap(),
        );
        let retry = Release::Retry {
            delay: Duration::from_secs(60),
            message: "locked",
        };
        assert!(s.release_claim(&c.claim, retry).unwrap(), "{b:?}");
        match s
            .claim_file(inbox_file("a.csv", &x), worker("h", long))
            .unwrap()
        {
            ClaimResult::Later { in_ms } => {
                assert!((50_000..=60_000).contains(&in_ms), "{b:?}: {in_ms}")
            }
            r => panic!("{b:?}: {r:?}"),
        }
        // Stopped by the operator: free at once, not counted.
        let y = "01".repeat(32);
        let c = granted(
            s.claim_file(inbox_file("b.csv", &y), worker("h", long))
                .unwrap(),
        );
        assert!(s.release_claim(&c.claim, Release::Stopped).unwrap());
        let c = granted(
            s.claim_file(inbox_file("b.csv", &y), worker("h", long))
                .unwrap(),
        );
        assert_eq!(c.attempts, 0, "{b:?}");
        let retry = Release::Retry {
            delay: Duration::ZERO,
            message: "connection lost",
        };
        assert!(s.release_claim(&c.claim, retry).unwrap());
        let c = granted(
            s.claim_file(inbox_file("b.csv", &y), worker("h", long))
                .unwrap(),
        );
        assert_eq!(c.attempts, 1, "{b:?}");
        assert_eq!(c.message.as_deref(), Some("connection lost"), "{b:?}");
    }
}

#[test]
fn a_content_is_processed_by_the_first_completed_run_that_read_it() {
    let long = Duration::from_secs(600);
    for (b, db, _dir) in databases() {
        let mut s = open(&db);
        let digest = "ab".repeat(32); // the digest of `record`'s input
        assert_eq!(s.processed_by(&digest).unwrap(), None, "{b:?}");
        let failed = s
            .start_run(RunKind::Process, t(), ReportFormat::Csv)
            .unwrap();
        s.end_run(&record(failed, RunStatus::Failed)).unwrap();
        assert_eq!(s.processed_by(&digest).unwrap(), None, "{b:?}");
        let id = s
            .start_run(RunKind::Process, t(), ReportFormat::Csv)
            .unwrap();
        let mut tx = s.begin().unwrap();
        tx.finish_run(&record(id, RunStatus::Completed)).unwrap();
        tx.commit().unwrap();
        assert_eq!(s.processed_by(&digest).unwrap(), Some(id), "{b:?}");
        // A run fenced by a claim is recorded on its attempt, with its commit
        // (an xlsx input may have no digest of its own in the history).
        let x = "9f".repeat(32);
        let c = granted(
            s.claim_file(inbox_file("w.xlsx", &x), worker("h", long))
                .unwrap(),
        );
        let run = s
            .start_run(RunKind::Process, t(), ReportFormat::Csv)
            .unwrap();
        let mut rec = record(run, RunStatus::Completed);
        rec.summary.inputs[0].sha256 = String::new();
        let mut tx = s.begin().unwrap();
        assert!(tx.fence(&c.claim, Some(run)).unwrap(), "{b:?}");
        tx.finish_run(&rec).unwrap();
        tx.commit().unwrap();
        assert_eq!(s.processed_by(&x).unwrap(), Some(run), "{b:?}");
    }
}

#[test]
fn the_catalog_version_changes_with_every_load_and_with_nothing_else() {
    for (b, db, _dir) in databases() {
        let mut s = open(&db);
        let v0 = s.catalog_version().unwrap();
        let mut tx = s.begin().unwrap();
        tx.load_products(&[product("A", 100, 5)], None, "c", t())
            .unwrap();
        assert_eq!(tx.catalog_version().unwrap(), v0 + 1, "{b:?}");
        tx.commit().unwrap();
        let mut tx = s.begin().unwrap();
        tx.receive(&[("A".into(), 3)], "d", t()).unwrap();
        tx.move_stock(&[("A".into(), -1)], 0, LedgerReason::Order, t())
            .unwrap();
        tx.commit().unwrap();
        assert_eq!(
            s.catalog_version().unwrap(),
            v0 + 1,
            "{b:?}: stock is not the catalog"
        );
    }
}
