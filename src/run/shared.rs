//! A run where many writers share the database (PostgreSQL): lock late,
//! hold briefly.
//!
//! 1. Every order is read and checked into a spool, holding nothing.
//! 2. In the run's transaction, holding no stock row: each chunk's orders
//!    are claimed (a concurrent run holding an id makes the claim wait for
//!    its commit), skips and failures recorded, the accepted report written;
//!    stock is decided for now against levels read without a lock, and every
//!    new valid order logged with what it needs.
//! 3. The locked section: the stock rows of the run's skus locked in sku
//!    order, stock decided again against them in input order (in memory,
//!    from the log), the orders short of stock settled, one stock change and
//!    ledger entry per sku, the history row, the commit. Its statements do
//!    not grow with the number of orders.
//! 4. After the commit, the failed report (and the accepted one again, when
//!    an order's fate changed at the lock) from the database, then
//!    summary.json; a run stopped before that has them made by the next.
//!
//! A deadlock or serialization failure rolls the attempt back; it is tried
//! again (from step 2) with backoff, up to `--lock-timeout`.

use std::time::Instant;

use anyhow::Result;

use super::spool::{Spool, SpoolWriter};
use super::{stages, Decided, Ending, Plan, Prepared, RetriedRuns, Run, Started};
use crate::apply::Applier;
use crate::model::clock::Timestamp;
use crate::model::order::Product;
use crate::model::run::{RunKind, RunStatus, Timings};
use crate::store::{self, Store};

impl Run<'_> {
    pub(super) fn shared(
        &self,
        store: &mut dyn Store,
        run: &Started,
        mut prepared: Prepared,
        plan: &Plan,
    ) -> Result<Decided> {
        let catalog_file = prepared.catalog.take();
        let catalog = match catalog_file.as_ref() {
            Some((_, loaded)) => {
                std::sync::Arc::new(super::inputs::catalog(store.products()?, Some(loaded)))
            }
            None => self.checking_catalog(store)?,
        };
        let (orders, retried) = self.orders(prepared.inputs, plan)?;
        let (spool, mut timings) = self.fill_spool(orders, &catalog, run)?;
        let backoff = store::Backoff::new(self.cfg.lock_timeout);
        let deadline = Instant::now() + self.cfg.lock_timeout;
        let mut seed = store::seed();
        for attempt in 0.. {
            match self.attempt(store, run, &spool, catalog_file.as_ref(), &retried) {
                Err(e) if super::is_contention(&e) => {
                    if Instant::now() >= deadline {
                        return Err(store::StoreError::Locked {
                            db: store.name().to_string(),
                            secs: self.cfg.lock_timeout.as_secs_f64(),
                        }
                        .into());
                    }
                    run.reports.reset()?;
                    let left = deadline.saturating_duration_since(Instant::now());
                    std::thread::sleep(backoff.delay(attempt, &mut seed).min(left));
                }
                Err(e) => return Err(e),
                Ok(mut decided) => {
                    timings.apply += decided.timings.apply;
                    timings.report += decided.timings.report;
                    timings.commit = decided.timings.commit;
                    timings.lock_wait = decided.timings.lock_wait;
                    timings.locked = decided.timings.locked;
                    decided.timings = timings;
                    return Ok(decided);
                }
            }
        }
        unreachable!("the attempts above return")
    }

    /// Read and check every order into the spool, holding nothing.
    fn fill_spool(
        &self,
        orders: Vec<stages::Orders>,
        catalog: &crate::validate::Catalog,
        run: &Started,
    ) -> Result<(Spool, Timings)> {
        self.progress.set_stage("checking");
        std::thread::scope(|s| {
            let checking = stages::check(s, orders, catalog, self.opts.jobs)?;
            let mut w = SpoolWriter::new()?;
            let mut n = 0u64;
            let filled = (|| -> Result<()> {
                for chunk in checking.rx.iter() {
                    let chunk = chunk?;
                    self.fence_check()?;
                    n += chunk.len() as u64;
                    w.push(&chunk)?;
                    self.progress.update(
                        super::bytes_read(&run.inputs),
                        crate::progress::Tally {
                            orders: n,
                            ..Default::default()
                        },
                    );
                }
                Ok(())
            })();
            let times = checking.join();
            filled?;
            let times = times?;
            let timings = Timings {
                read: times.read,
                validate: times.validate,
                ..Timings::default()
            };
            Ok((w.finish()?, timings))
        })
    }

    /// One attempt at the transaction: steps 2 to 4.
    fn attempt(
        &self,
        store: &mut dyn Store,
        run: &Started,
        spool: &Spool,
        catalog_file: Option<&(String, Vec<Product>)>,
        retried: &RetriedRuns,
    ) -> Result<Decided> {
        let mut timings = Timings::default();
        let skus = spool.skus();
        let mut tx = store.begin()?;
        self.load_catalog(&mut *tx, catalog_file, run.run_id)?;
        if self.opts.dry_run {
            tx.rehearse()?;
        }
        let retrying = self.kind == RunKind::Reprocess;
        let levels = tx.peek_stock(&skus)?;
        let mut applier =
            Applier::new(run.run_id, levels, retrying).deciding_stock_at_the_lock()?;
        let applied =
            self.apply_chunks(&mut *tx, &mut applier, spool.chunks()?.ahead()?, run, false)?;
        timings.apply = applied.apply;
        timings.report = applied.report;
        if applied.aborted {
            let counts = applier.counts.clone();
            let record = self.record(run.run_id, &run.inputs, RunStatus::Aborted, counts, retried);
            return Ok(Decided::aborted(record, timings));
        }
        // The locked section.
        self.progress.set_stage("committing");
        let t = Instant::now();
        let locked = tx.stock(Some(&skus))?;
        timings.lock_wait = t.elapsed();
        let holding = Instant::now();
        let sent = tx.statements();
        let settled = applier
            .settle_stock(&mut *tx, &locked, &mut |chunk, id| {
                spool.order_at(chunk, id)
            })
            .map_err(crate::apply::ApplyError::into_inner)?;
        timings.apply += holding.elapsed();
        let too_many = self.too_many_failures(&applier);
        let record = self.decided_record(run, too_many, applier.counts.clone(), retried);
        if record.summary.status == RunStatus::Aborted {
            return Ok(Decided::aborted(record, timings));
        }
        applier.finish(&mut *tx, self.ledger_reason(), Timestamp::now())?;
        let again = settled.flipped > 0;
        let mut decided = Decided {
            ending: Ending::DryRun,
            record,
            timings,
            warning: None,
            withdrawn: std::mem::take(&mut applier.withdrawn),
            reports_ready: true,
            locked_statements: None,
        };
        if self.opts.dry_run {
            // Nothing is committed: the reports come from the transaction.
            decided.timings.report +=
                self.write_reports(&mut *tx, run, &decided.record, again, None, false)?;
            drop(tx);
            decided.timings.locked = holding.elapsed();
            return Ok(decided);
        }
        tx.finish_run(&decided.record)?;
        self.fence_hold(&mut *tx, run.run_id)?;
        // The statements sent while the stock was held, the commit included.
        decided.locked_statements = Some(tx.statements() - sent + 1);
        let t = Instant::now();
        let committed = Self::commit(tx)?;
        decided.timings.commit = t.elapsed();
        decided.timings.locked = holding.elapsed();
        decided.ending = Ending::Committed;
        self.reports_after_commit(store, run, again, committed.warning, &mut decided);
        Ok(decided)
    }

    /// Step 4: the reports from the database. The commit stands whatever
    /// happens here; a failure is a warning, and the next run writes them.
    fn reports_after_commit(
        &self,
        store: &mut dyn Store,
        run: &Started,
        again: bool,
        warning: Option<String>,
        decided: &mut Decided,
    ) {
        let t = Instant::now();
        let written = self.write_reports(store, run, &decided.record, again, None, false);
        decided.timings.report += t.elapsed();
        (decided.warning, decided.reports_ready) = match written {
            Ok(_) => (warning, true),
            Err(e) => (
                Some(format!(
                    "its reports could not be written: {e:#}; the next run writes them, \
                     and `orderbatch report accepted|failed --run {}` prints them",
                    run.run_id
                )),
                false,
            ),
        };
    }
}
