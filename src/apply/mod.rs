//! Apply: the sequential decisions, in input order, inside the run's
//! transaction, a chunk of orders at a time: duplicates within the run,
//! skipped or conflicting order ids, stock, and the records the database
//! keeps of every order. Every database call serves a whole chunk.

mod fed_back;
mod held;
mod seen;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};

use rustc_hash::FxHashMap;

use crate::model::clock::Timestamp;
use crate::model::failure::{FailureKey, FailureState};
use crate::model::order::{AcceptedRow, FailedOrder, Problem, Status, ValidOrder};
use crate::model::run::Counts;
use crate::model::text::show;
use crate::model::ErrorCode;
use crate::read::RawOrder;
use crate::store::{self, Applied, Claim, LedgerReason, NewOrder, StoredFailure, Tx, Writes};
use crate::validate::{failed_order_of, Checked, Verdict};
pub use held::{Held, HeldLog};
pub use seen::SeenIds;

/// Why the applier stopped: the database, or its log of held orders.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Log(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, ApplyError>;

impl ApplyError {
    /// The error itself, not a wrapper: the run's error chain then holds the
    /// store's error (its exit code and its retry decision depend on it).
    pub fn into_inner(self) -> anyhow::Error {
        match self {
            ApplyError::Store(e) => e.into(),
            ApplyError::Log(e) => e.into(),
        }
    }
}

/// What became of one order.
#[derive(Debug)]
pub enum Outcome {
    Accepted(ValidOrder),
    Skipped(ValidOrder),
    Failed(FailedOrder),
    /// Short of stock for now, where stock is decided at the lock: its fate
    /// is settled once the stock rows are locked (`Applier::settle_stock`).
    ShortForNow,
}

/// An order with its outcome; the raw order comes along so that another
/// thread can free it.
#[derive(Debug)]
pub struct Decided {
    pub raw: RawOrder,
    pub outcome: Outcome,
    /// A fed-back copy of a failure that a spreadsheet changed: its record is
    /// final and the failure it names stays open, untouched.
    pub mangled_copy: bool,
    /// The database id of the stored failure the order retries or fixes.
    pub named: Option<i64>,
}

/// Stock of one sku: on hand now (as this run changed it) and taken by this run.
#[derive(Debug, Clone, Copy, Default)]
struct Level {
    on_hand: i64,
    taken: i64,
}

pub struct Applier {
    run_id: i64,
    /// A reprocess: every order is a stored failure retried, and one that is
    /// no longer open when the run holds it is not retried (withdrawn).
    retrying: bool,
    /// Retried failures found no longer open (closed by hand, or settled by
    /// another run after this one read them), with their state then.
    pub withdrawn: Vec<(FailureKey, FailureState)>,
    /// Each sku's place in `levels` (looked up once per line of an order).
    skus: FxHashMap<String, usize>,
    levels: Vec<(String, Level)>,
    seen: SeenIds,
    pub counts: Counts,
    seq: u64,
    /// Where stock is decided at the lock: the log of new valid orders, the
    /// chunks applied so far, and the levels read without a lock.
    held: Option<HeldLog>,
    chunks: u32,
    unlocked: Vec<i64>,
    /// The extra columns of every failure the run records, for the failed
    /// report's header (written without a pass over the failures first).
    pub extras: crate::report::ExtraColumns,
}

/// Where an order stands in the run, for the log of held orders.
#[derive(Debug, Clone, Copy)]
struct At {
    seq: u64,
    named: Option<i64>,
}

/// What settling the stock at the lock changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settled {
    /// Orders that failed for stock.
    pub short: u64,
    /// Orders whose fate differs from the one decided before the lock (the
    /// accepted report is then written again).
    pub flipped: u64,
}

/// What the database says about one order of a chunk before it is decided.
enum Prior {
    /// Its id already appeared in this run's input.
    Duplicate,
    /// A valid order, claimed for this run or applied before.
    Claimed(Claim),
    /// An invalid order that parsed: what was applied under its id.
    Applied(Option<Applied>),
    /// Nothing to know (an invalid order, or one without an id).
    Nothing,
}

impl Applier {
    pub fn new(run_id: i64, stock: Vec<(String, i64)>, retrying: bool) -> Self {
        Applier {
            run_id,
            retrying,
            withdrawn: Vec::new(),
            skus: stock
                .iter()
                .enumerate()
                .map(|(i, (sku, _))| (sku.clone(), i))
                .collect(),
            levels: stock
                .into_iter()
                .map(|(sku, on_hand)| (sku, Level { on_hand, taken: 0 }))
                .collect(),
            seen: SeenIds::new(),
            counts: Counts::default(),
            seq: 0,
            held: None,
            chunks: 0,
            unlocked: Vec::new(),
            extras: Default::default(),
        }
    }

    /// Decide stock for now, against levels read without a lock, and log
    /// every new valid order so that `settle_stock` decides it for good once
    /// the stock rows are locked.
    pub fn deciding_stock_at_the_lock(mut self) -> std::io::Result<Self> {
        self.held = Some(HeldLog::new()?);
        self.unlocked = self.levels.iter().map(|(_, l)| l.on_hand).collect();
        Ok(self)
    }

    /// Decide a chunk of orders, in order, and write what the database keeps
    /// of them.
    pub fn apply_chunk(&mut self, tx: &mut dyn Tx, chunk: Vec<Checked>) -> Result<Vec<Decided>> {
        let named = Applier::named_failures(tx, &chunk)?;
        let mut chunk = self.withdraw(chunk, &named);
        let first_seq = self.seq + 1;
        self.seq += chunk.len() as u64;
        self.counts.orders += chunk.len() as u64;
        let copies = Applier::check_fed_back(&mut chunk, &named);
        let dups = self.duplicates(tx, &chunk)?;
        let priors = self.priors(tx, &chunk, &dups, first_seq)?;
        let mut decided = Vec::with_capacity(chunk.len());
        let mut short: Vec<String> = Vec::new();
        let items = chunk.into_iter().zip(priors).zip(copies).enumerate();
        for (i, ((checked, prior), mangled_copy)) in items {
            let file = std::sync::Arc::clone(&checked.raw.source);
            let named_id = checked
                .raw
                .failure
                .and_then(|k| named.get(&k))
                .map(|f| f.id);
            let at = At {
                seq: first_seq + i as u64,
                named: named_id,
            };
            let outcome =
                self.decide(&checked.raw, checked.verdict, prior, &file, &mut short, at)?;
            decided.push(Decided {
                raw: checked.raw,
                outcome,
                mangled_copy,
                named: named_id,
            });
        }
        if !short.is_empty() {
            let ids: Vec<&str> = short.iter().map(String::as_str).collect();
            tx.unclaim(&ids)?;
        }
        self.record(tx, &decided, first_seq)?;
        self.chunks += 1;
        Ok(decided)
    }

    /// The stored failures the chunk's retried or fed-back orders name, by
    /// key, held until the commit (see `FailureRecords::hold_failures`).
    fn named_failures(
        tx: &mut dyn Tx,
        chunk: &[Checked],
    ) -> store::Result<HashMap<FailureKey, StoredFailure>> {
        let keys: Vec<FailureKey> = chunk.iter().filter_map(|c| c.raw.failure).collect();
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        Ok(tx
            .hold_failures(&keys)?
            .into_iter()
            .map(|f| (f.key(), f))
            .collect())
    }

    /// A reprocess retries only the failures still open now that the run
    /// holds them: one that `failures close` (or another run) settled after
    /// the retry was read is not an order of this run. Whichever commits
    /// first wins, and the other says so.
    fn withdraw(
        &mut self,
        chunk: Vec<Checked>,
        named: &HashMap<FailureKey, StoredFailure>,
    ) -> Vec<Checked> {
        if !self.retrying {
            return chunk;
        }
        let mut kept = Vec::with_capacity(chunk.len());
        for c in chunk {
            let Some(key) = c.raw.failure else {
                kept.push(c);
                continue;
            };
            match named.get(&key).map(|f| f.state) {
                Some(FailureState::Open) => kept.push(c),
                state => self
                    .withdrawn
                    .push((key, state.unwrap_or(FailureState::Final))),
            }
        }
        kept
    }

    /// Fed-back orders a spreadsheet changed become INVALID_FIELD failures;
    /// true for each such copy.
    fn check_fed_back(
        chunk: &mut [Checked],
        named: &HashMap<FailureKey, StoredFailure>,
    ) -> Vec<bool> {
        chunk
            .iter_mut()
            .map(|c| {
                let Some(stored) = c.raw.failure.and_then(|k| named.get(&k)) else {
                    return false;
                };
                let Some(p) = fed_back::problem(&c.raw, stored) else {
                    return false;
                };
                let verdict = std::mem::replace(&mut c.verdict, Verdict::invalid(Vec::new(), None));
                let mut problems = match verdict {
                    Verdict::Invalid { problems, .. } => problems,
                    Verdict::Valid(_) => Vec::new(),
                };
                problems.push(p);
                c.verdict = Verdict::invalid(problems, None);
                true
            })
            .collect()
    }

    /// The order id a record goes by, for duplicates: the parsed one, else the raw one.
    fn id_of(c: &Checked) -> Option<&str> {
        match &c.verdict {
            Verdict::Valid(o) => Some(&o.order_id),
            Verdict::Invalid {
                parsed: Some(o), ..
            } => Some(&o.order_id),
            Verdict::Invalid { .. } => c.raw.order_id(),
        }
    }

    /// Which orders of the chunk repeat an id met earlier in the run: earlier
    /// in the chunk (known here), or in an earlier chunk (a filter says
    /// maybe, the database says for certain).
    fn duplicates(&mut self, tx: &mut dyn Tx, chunk: &[Checked]) -> store::Result<Vec<bool>> {
        let mut here: HashSet<&str> = HashSet::with_capacity(chunk.len());
        let mut dup = vec![false; chunk.len()];
        let mut suspects: Vec<(usize, &str)> = Vec::new();
        for (i, c) in chunk.iter().enumerate() {
            let Some(id) = Applier::id_of(c) else {
                continue;
            };
            if !here.insert(id) {
                dup[i] = true;
            } else if self.seen.may_contain(id) {
                suspects.push((i, id));
            }
        }
        if !suspects.is_empty() {
            let ids: Vec<&str> = suspects.iter().map(|(_, id)| *id).collect();
            for ((i, _), seen) in suspects.iter().zip(tx.seen_in_run(self.run_id, &ids)?) {
                dup[*i] = seen;
            }
        }
        for id in here {
            self.seen.insert(id);
        }
        Ok(dup)
    }

    /// Claim the chunk's valid new orders, and look up what was applied under
    /// the ids of the parsed invalid ones, in two batch calls.
    fn priors<'c>(
        &self,
        tx: &mut dyn Tx,
        chunk: &'c [Checked],
        dups: &[bool],
        first_seq: u64,
    ) -> store::Result<Vec<Prior>> {
        let mut claims: Vec<(usize, NewOrder<'c>)> = Vec::new();
        let mut lookups: Vec<(usize, &str)> = Vec::new();
        for (i, c) in chunk.iter().enumerate() {
            match &c.verdict {
                _ if dups[i] => {}
                Verdict::Valid(order) => claims.push((
                    i,
                    NewOrder {
                        order,
                        seq: first_seq + i as u64,
                        source_file: &c.raw.source,
                        source_line: c.raw.line,
                    },
                )),
                Verdict::Invalid {
                    parsed: Some(o), ..
                } => lookups.push((i, &o.order_id)),
                Verdict::Invalid { .. } => {}
            }
        }
        let mut priors: Vec<Prior> = dups
            .iter()
            .map(|d| if *d { Prior::Duplicate } else { Prior::Nothing })
            .collect();
        if !claims.is_empty() {
            let orders: Vec<NewOrder<'_>> = claims.iter().map(|(_, n)| *n).collect();
            for ((i, _), claim) in claims.iter().zip(tx.claim(self.run_id, &orders)?) {
                priors[*i] = Prior::Claimed(claim);
            }
        }
        if !lookups.is_empty() {
            let ids: Vec<&str> = lookups.iter().map(|(_, id)| *id).collect();
            for ((i, _), applied) in lookups.iter().zip(tx.applied(&ids)?) {
                priors[*i] = Prior::Applied(applied);
            }
        }
        Ok(priors)
    }

    fn decide(
        &mut self,
        raw: &RawOrder,
        verdict: Verdict,
        prior: Prior,
        file: &str,
        short: &mut Vec<String>,
        at: At,
    ) -> std::io::Result<Outcome> {
        Ok(match (verdict, prior) {
            (Verdict::Valid(order), Prior::Claimed(Claim::New)) => {
                let res = self.short_stock(&order);
                self.hold(&order, raw, at, res.is_err())?;
                match res {
                    Ok(takes) => self.accept(order, takes),
                    // Decided for good at the lock; its claim stays till
                    // then. Counted as failed for now (`--max-errors` and the
                    // progress line see it), as it would be where stock is
                    // decided as the orders come.
                    Err(_) if self.held.is_some() => {
                        self.counts.count_failure(ErrorCode::InsufficientStock);
                        Outcome::ShortForNow
                    }
                    Err(m) => {
                        short.push(order.order_id.clone());
                        let p = Problem::new(ErrorCode::InsufficientStock, m);
                        self.fail(raw, vec![p], file)
                    }
                }
            }
            (Verdict::Valid(order), Prior::Claimed(Claim::Taken(a))) => {
                self.earlier(raw, order, a, file)
            }
            (Verdict::Valid(order), _) => {
                let p = duplicate(&order.order_id);
                self.fail(raw, vec![p], file)
            }
            (
                Verdict::Invalid {
                    parsed: Some(order),
                    ..
                },
                Prior::Applied(Some(a)),
            ) if a.content_hash == order.content_hash && a.run_id != self.run_id => {
                // Only catalog checks failed: an order applied before with the
                // same content is skipped, whatever the catalog says now.
                self.skip(*order)
            }
            (Verdict::Invalid { mut problems, .. }, prior) => {
                if matches!(prior, Prior::Duplicate) {
                    if let Some(id) = raw.order_id() {
                        problems.push(duplicate(id));
                    }
                }
                self.fail(raw, problems, file)
            }
        })
    }

    /// Log a new valid order, where stock is decided at the lock.
    fn hold(
        &mut self,
        order: &ValidOrder,
        raw: &RawOrder,
        at: At,
        short: bool,
    ) -> std::io::Result<()> {
        let chunk = self.chunks;
        let Some(log) = self.held.as_mut() else {
            return Ok(());
        };
        let mut needs: Vec<(Option<u32>, i64)> = Vec::with_capacity(order.lines.len());
        let mut seen: Vec<&str> = Vec::with_capacity(order.lines.len());
        for l in &order.lines {
            match seen.iter().position(|s| *s == l.sku) {
                Some(k) => needs[k].1 += l.quantity,
                None => {
                    seen.push(&l.sku);
                    let place = self.skus.get(l.sku.as_str()).map(|i| *i as u32);
                    needs.push((place, l.quantity));
                }
            }
        }
        log.push(&Held {
            seq: at.seq,
            chunk,
            order_id: order.order_id.clone(),
            needs,
            lines: order.lines.len() as u64,
            units: order.units,
            named: at.named,
            raw: short.then(|| raw.clone()),
        })
    }

    /// A valid order whose id was applied before: the same content is
    /// skipped, other content is a conflict.
    fn earlier(&mut self, raw: &RawOrder, order: ValidOrder, a: Applied, file: &str) -> Outcome {
        if a.run_id == self.run_id {
            let p = duplicate(&order.order_id);
            return self.fail(raw, vec![p], file);
        }
        if a.content_hash == order.content_hash {
            return self.skip(order);
        }
        let m = format!(
            "order_id {} was applied by run {} with different content",
            show(&order.order_id, false),
            a.run_id
        );
        self.fail(raw, vec![Problem::new(ErrorCode::OrderIdConflict, m)], file)
    }

    /// `takes`: the units of each sku's level, as `short_stock` found them.
    fn accept(&mut self, order: ValidOrder, takes: Vec<(usize, i64)>) -> Outcome {
        for (at, n) in takes {
            let level = &mut self.levels[at].1;
            level.on_hand -= n;
            level.taken += n;
        }
        self.counts.accepted += 1;
        self.counts.lines += order.lines.len() as u64;
        self.counts.units += order.units;
        Outcome::Accepted(order)
    }

    fn skip(&mut self, order: ValidOrder) -> Outcome {
        self.counts.skipped += 1;
        Outcome::Skipped(order)
    }

    fn fail(&mut self, raw: &RawOrder, problems: Vec<Problem>, file: &str) -> Outcome {
        let f = failed_order_of(raw, problems, file);
        self.extras.add(&f);
        self.counts.count_failure(f.code);
        Outcome::Failed(f)
    }

    /// INSUFFICIENT_STOCK: the order's units of a sku, all lines together,
    /// against the stock now. When there is enough: each sku's place and
    /// units, to take.
    fn short_stock(&self, order: &ValidOrder) -> std::result::Result<Vec<(usize, i64)>, String> {
        // (sku, its place if the catalog has stock of it, units)
        let mut need: Vec<(&str, Option<usize>, i64)> = Vec::with_capacity(order.lines.len());
        for l in &order.lines {
            match need.iter_mut().find(|(s, _, _)| *s == l.sku) {
                Some((_, _, n)) => *n += l.quantity,
                None => need.push((&l.sku, self.skus.get(l.sku.as_str()).copied(), l.quantity)),
            }
        }
        let short: Vec<String> = need
            .iter()
            .filter_map(|(sku, at, n)| {
                let have = at.map_or(0, |i| self.levels[i].1.on_hand);
                (*n > have).then(|| format!("sku {} needs {n}, {have} on hand", show(sku, false)))
            })
            .collect();
        if !short.is_empty() {
            return Err(short.join(", "));
        }
        Ok(need
            .into_iter()
            .filter_map(|(_, at, n)| at.map(|i| (i, n)))
            .collect())
    }

    /// The chunk's skips and failures, and the failures they settle, in one batch.
    fn record(&self, tx: &mut dyn Tx, decided: &[Decided], first_seq: u64) -> store::Result<()> {
        let mut w = Writes::default();
        let mut retried: Vec<i64> = Vec::new();
        for (i, d) in decided.iter().enumerate() {
            let seq = first_seq + i as u64;
            let file = &*d.raw.source;
            match &d.outcome {
                Outcome::Accepted(o) => {
                    w.resolved.push(&o.order_id);
                    w.resolved_failures.extend(d.named);
                }
                Outcome::Skipped(o) => {
                    w.skips
                        .push((seq, AcceptedRow::new(o, Status::Skipped, file, d.raw.line)));
                    w.resolved.push(&o.order_id);
                    w.resolved_failures.extend(d.named);
                }
                Outcome::Failed(f) if d.mangled_copy => {
                    // Not an order of its own: the failure it names is.
                    w.failures.push((seq, f, FailureState::Final));
                }
                Outcome::Failed(f) => {
                    let state = FailureState::initial(f.code, f.order_id.as_deref());
                    w.failures.push((seq, f, state));
                    if state == FailureState::Open {
                        w.superseded.extend(f.order_id.as_deref());
                    }
                    retried.extend(d.named);
                }
                // Its records are written when its stock is settled.
                Outcome::ShortForNow => {}
            }
        }
        if !w.is_empty() {
            tx.record(self.run_id, &w)?;
        }
        if !retried.is_empty() {
            tx.supersede_retried(&retried, self.run_id)?;
        }
        Ok(())
    }

    /// Where stock is decided at the lock, decide it for good: `locked` are
    /// the levels of the run's skus read under their lock. Each logged order
    /// is decided again in input order against them (in memory); the orders
    /// short of stock now get their failure records and lose their claims,
    /// and an order whose fate changed since the decision before the lock
    /// has its records put right — a handful of statements whatever the
    /// number of orders. `raw_at` gives the order of this id in this chunk
    /// of the spool, for one that had seemed to have its stock and is short
    /// now.
    pub fn settle_stock(
        &mut self,
        tx: &mut dyn Tx,
        locked: &[(String, i64)],
        raw_at: &mut dyn FnMut(u32, &str) -> std::io::Result<RawOrder>,
    ) -> Result<Settled> {
        let Some(mut log) = self.held.take() else {
            return Ok(Settled::default());
        };
        for (sku, on_hand) in locked {
            if let Some(&i) = self.skus.get(sku.as_str()) {
                self.levels[i].1 = Level {
                    on_hand: *on_hand,
                    taken: 0,
                };
            }
        }
        let mut fix = Fixes::default();
        for held in log.read()? {
            self.settle_one(held?, &mut fix, raw_at)?;
        }
        fix.write(tx, self.run_id)?;
        Ok(Settled {
            short: fix.failures.len() as u64,
            flipped: fix.flipped,
        })
    }

    /// One logged order decided against the locked levels.
    fn settle_one(
        &mut self,
        h: Held,
        fix: &mut Fixes,
        raw_at: &mut dyn FnMut(u32, &str) -> std::io::Result<RawOrder>,
    ) -> Result<()> {
        let short: Vec<String> = h
            .needs
            .iter()
            .filter_map(|(at, n)| {
                let (sku, have) = match at {
                    Some(i) => (
                        &self.levels[*i as usize].0,
                        self.levels[*i as usize].1.on_hand,
                    ),
                    None => return Some(format!("a sku needs {n}, 0 on hand")),
                };
                (*n > have).then(|| format!("sku {} needs {n}, {have} on hand", show(sku, false)))
            })
            .collect();
        let was_short = h.raw.is_some();
        if was_short {
            // Counted as failed for now before the lock: counted again below.
            self.counts.failed -= 1;
            self.counts.by_code[ErrorCode::InsufficientStock as usize] -= 1;
        }
        if short.is_empty() {
            for (at, n) in &h.needs {
                if let Some(i) = at {
                    let level = &mut self.levels[*i as usize].1;
                    level.on_hand -= n;
                    level.taken += n;
                }
            }
            if was_short {
                self.counts.accepted += 1;
                self.counts.lines += h.lines;
                self.counts.units += h.units;
                fix.flipped += 1;
                fix.resolved.push(h.order_id);
                fix.resolved_failures.extend(h.named);
            }
            return Ok(());
        }
        let raw = match h.raw {
            Some(raw) => raw,
            None => {
                // It had its stock before the lock: no longer.
                self.counts.accepted -= 1;
                self.counts.lines -= h.lines;
                self.counts.units -= h.units;
                fix.flipped += 1;
                fix.unresolved.push(h.order_id.clone());
                raw_at(h.chunk, &h.order_id)?
            }
        };
        let p = Problem::new(ErrorCode::InsufficientStock, short.join(", "));
        let f = failed_order_of(&raw, vec![p], &raw.source);
        self.extras.add(&f);
        self.counts.count_failure(f.code);
        fix.claims.push(h.order_id);
        fix.retried.extend(h.named);
        fix.failures.push((h.seq, f));
        Ok(())
    }

    /// The stock the run took: one change and one ledger entry per sku.
    pub fn finish(
        &self,
        tx: &mut dyn Tx,
        reason: LedgerReason,
        at: Timestamp,
    ) -> store::Result<()> {
        let mut deltas: Vec<(String, i64)> = self
            .levels
            .iter()
            .filter(|(_, l)| l.taken != 0)
            .map(|(s, l)| (s.clone(), -l.taken))
            .collect();
        deltas.sort();
        tx.move_stock(&deltas, self.run_id, reason, at)
    }
}

/// The records that settling the stock at the lock writes or puts right.
#[derive(Default)]
struct Fixes {
    /// Orders short of stock: their claims go, their failure records come.
    claims: Vec<String>,
    failures: Vec<(u64, FailedOrder)>,
    /// Their stored failures that a reprocess retried.
    retried: Vec<i64>,
    /// Orders short now that resolved older failures before the lock.
    unresolved: Vec<String>,
    /// Orders that have their stock now after all: what they resolve.
    resolved: Vec<String>,
    resolved_failures: Vec<i64>,
    flipped: u64,
}

impl Fixes {
    fn write(&self, tx: &mut dyn Tx, run_id: i64) -> store::Result<()> {
        if !self.claims.is_empty() {
            let ids: Vec<&str> = self.claims.iter().map(String::as_str).collect();
            tx.unclaim(&ids)?;
        }
        if !self.unresolved.is_empty() {
            let ids: Vec<&str> = self.unresolved.iter().map(String::as_str).collect();
            tx.unresolve(&ids, run_id)?;
        }
        let w = Writes {
            failures: self
                .failures
                .iter()
                .map(|(seq, f)| (*seq, f, FailureState::Open))
                .collect(),
            superseded: self.claims.iter().map(String::as_str).collect(),
            resolved: self.resolved.iter().map(String::as_str).collect(),
            resolved_failures: self.resolved_failures.clone(),
            ..Writes::default()
        };
        if !w.is_empty() {
            tx.record(run_id, &w)?;
        }
        if !self.retried.is_empty() {
            tx.supersede_retried(&self.retried, run_id)?;
        }
        Ok(())
    }
}

fn duplicate(id: &str) -> Problem {
    Problem::new(
        ErrorCode::DuplicateInInput,
        format!(
            "order_id {} already appeared earlier in this run's input",
            show(id, false)
        ),
    )
}
