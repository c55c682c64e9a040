//! A run where one writer holds the database at a time (SQLite): the
//! transaction first, then the orders applied as they stream in from the
//! reading and checking threads, the reports written, the commit.

use std::time::Instant;

use anyhow::Result;

use super::{Decided, Ending, Plan, Prepared, Run, Started};
use crate::apply::Applier;
use crate::model::clock::Timestamp;
use crate::model::run::{RunKind, Timings};
use crate::store::Store;

impl Run<'_> {
    pub(super) fn serial(
        &self,
        store: &mut dyn Store,
        run: &Started,
        mut prepared: Prepared,
        plan: &Plan,
    ) -> Result<Decided> {
        let catalog_file = prepared.catalog.take();
        let (orders, retried) = self.orders(prepared.inputs, plan)?;
        let mut timings = Timings::default();
        let t = Instant::now();
        let mut tx = store.begin()?;
        // The whole database is the run's from here to its end.
        timings.lock_wait = t.elapsed();
        let locked = Instant::now();
        self.load_catalog(&mut *tx, catalog_file.as_ref(), run.run_id)?;
        let catalog = match catalog_file {
            Some(_) => std::sync::Arc::new(crate::validate::Catalog::new(tx.products()?)),
            None => self.checking_catalog(&mut *tx)?,
        };
        let stock = tx.stock(None)?;
        if self.opts.dry_run {
            tx.rehearse()?;
        }
        let retrying = self.kind == RunKind::Reprocess;
        let mut applier = Applier::new(run.run_id, stock, retrying);
        let applied = std::thread::scope(|s| -> Result<_> {
            let checking = super::stages::check(s, orders, &catalog, self.opts.jobs)?;
            // Every failure is recorded as its order is decided: the failed
            // report can be written alongside.
            let applied = self.apply_chunks(&mut *tx, &mut applier, checking.rx.iter(), run, true);
            let times = checking.join();
            let applied = applied?;
            let times = times?;
            timings.read = times.read;
            timings.validate = times.validate;
            Ok(applied)
        })?;
        timings.apply = applied.apply;
        timings.report = applied.report;
        let record = self.decided_record(run, applied.aborted, applier.counts.clone(), &retried);
        if applied.aborted {
            return Ok(Decided::aborted(record, timings));
        }
        self.progress.set_stage("committing");
        applier.finish(&mut *tx, self.ledger_reason(), Timestamp::now())?;
        timings.report += self.write_reports(
            &mut *tx,
            run,
            &record,
            false,
            Some(&applier.extras),
            applied.failed_written,
        )?;
        let t = Instant::now();
        let (ending, warning) = if self.opts.dry_run {
            drop(tx);
            (Ending::DryRun, None)
        } else {
            tx.finish_run(&record)?;
            self.fence_hold(&mut *tx, run.run_id)?;
            (Ending::Committed, Self::commit(tx)?.warning)
        };
        timings.commit = t.elapsed();
        timings.locked = locked.elapsed();
        Ok(Decided {
            ending,
            record,
            timings,
            warning,
            withdrawn: applier.withdrawn,
            reports_ready: true,
            locked_statements: None,
        })
    }
}
