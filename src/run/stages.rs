//! The stage threads of a run: a reader parses the inputs into chunks of
//! orders, a validator checks each chunk in parallel on a rayon pool (order
//! kept), and a reporter writes the accepted report and frees the decided
//! orders. Each stage hands chunks to the next through a bounded channel, so
//! memory is bounded whatever the input size.

use std::io::Write;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::apply::{Decided, Outcome};
use crate::model::order::{AcceptedRow, Status};
use crate::read::RawOrder;
use crate::report::{AcceptedWriter, FailedStream};
use crate::validate::{validate_chunk, Catalog, Checked};

/// Orders per chunk handed from stage to stage. About nine chunks are alive
/// at once (in the channels and in each stage): with 512, a run of orders
/// that all fail (the largest in memory) peaks under 64 MB; the database
/// calls per chunk are few enough that a smaller chunk costs nothing seen.
pub const CHUNK: usize = 512;
/// Chunks in flight between two stages.
const IN_FLIGHT: usize = 2;

/// The orders of a run, as a source of raw orders: input files, or stored failures.
pub type Orders = Box<dyn Iterator<Item = Result<RawOrder>> + Send>;

pub type Checks = Receiver<Result<Vec<Checked>>>;

/// The reading and checking threads, started.
pub struct Checking<'scope> {
    pub rx: Checks,
    reader: ScopedJoinHandle<'scope, Duration>,
    validator: ScopedJoinHandle<'scope, Duration>,
}

/// Busy time of the reading and checking stages.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckTimes {
    pub read: Duration,
    pub validate: Duration,
}

/// Start reading `orders` and checking them against `catalog` with `jobs` threads.
pub fn check<'scope, 'env>(
    scope: &'scope Scope<'scope, 'env>,
    orders: Vec<Orders>,
    catalog: &'env Catalog,
    jobs: usize,
) -> Result<Checking<'scope>> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .thread_name(|i| format!("validate-{i}"))
        .build()
        .context("cannot start the validation threads")?;
    let (raw_tx, raw_rx) = sync_channel::<Result<Vec<RawOrder>>>(IN_FLIGHT);
    let (chk_tx, chk_rx) = sync_channel::<Result<Vec<Checked>>>(IN_FLIGHT);
    let reader = std::thread::Builder::new()
        .name("read".into())
        .spawn_scoped(scope, move || read(orders, raw_tx))
        .context("cannot start the reading thread")?;
    let validator = std::thread::Builder::new()
        .name("validate".into())
        .spawn_scoped(scope, move || validate(raw_rx, chk_tx, catalog, &pool))
        .context("cannot start the validation thread")?;
    Ok(Checking {
        rx: chk_rx,
        reader,
        validator,
    })
}

impl Checking<'_> {
    /// Stop (dropping the receiver makes their sends fail) and wait for both
    /// threads. A stage that panicked must not pass for one that finished.
    pub fn join(self) -> Result<CheckTimes> {
        drop(self.rx);
        match (self.reader.join(), self.validator.join()) {
            (Ok(read), Ok(validate)) => Ok(CheckTimes { read, validate }),
            _ => Err(anyhow::anyhow!(
                "internal error: a worker thread stopped unexpectedly; nothing was committed"
            )),
        }
    }
}

/// Reader stage: every input in order, in chunks. Returns the time spent.
fn read(orders: Vec<Orders>, tx: SyncSender<Result<Vec<RawOrder>>>) -> Duration {
    let start = Instant::now();
    let mut waiting = Duration::ZERO;
    let mut chunk = Vec::with_capacity(CHUNK);
    for item in orders.into_iter().flatten() {
        match item {
            Ok(raw) => {
                chunk.push(raw);
                if chunk.len() == CHUNK {
                    let t = Instant::now();
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                    if tx.send(Ok(full)).is_err() {
                        return start.elapsed().saturating_sub(waiting);
                    }
                    waiting += t.elapsed();
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e));
                return start.elapsed().saturating_sub(waiting);
            }
        }
    }
    if !chunk.is_empty() {
        let _ = tx.send(Ok(chunk));
    }
    start.elapsed().saturating_sub(waiting)
}

/// Validation stage: each chunk checked in parallel, order kept. Returns the time spent.
fn validate(
    rx: Receiver<Result<Vec<RawOrder>>>,
    tx: SyncSender<Result<Vec<Checked>>>,
    catalog: &Catalog,
    pool: &rayon::ThreadPool,
) -> Duration {
    let mut busy = Duration::ZERO;
    for chunk in rx.iter() {
        let out = chunk.map(|raws| {
            let t = Instant::now();
            let checked = pool.install(|| validate_chunk(raws, catalog));
            busy += t.elapsed();
            checked
        });
        if tx.send(out).is_err() {
            break;
        }
    }
    busy
}

/// What the report thread wrote: the accepted report, and the failed one
/// where it was streamed.
pub type Written<W> = (AcceptedWriter<W>, Option<FailedStream<W>>);

/// A report the report thread could not write: the failed one (`true`) or
/// the accepted one, and why.
pub struct ReportFailure(pub bool, pub std::io::Error);

/// The report thread, started.
pub struct Reporting<'scope, W: Write + Send> {
    pub tx: SyncSender<Vec<Decided>>,
    handle: ScopedJoinHandle<'scope, (std::result::Result<Written<W>, ReportFailure>, Duration)>,
}

/// Start the report thread: the accepted report row of each accepted or
/// skipped order, the failed report's rows where it is streamed, then the
/// orders freed (all real work, kept off the applying thread).
pub fn report<'scope, W: Write + Send + 'scope>(
    scope: &'scope Scope<'scope, '_>,
    writer: AcceptedWriter<W>,
    failed: Option<FailedStream<W>>,
) -> Result<Reporting<'scope, W>> {
    let (tx, rx) = sync_channel::<Vec<Decided>>(IN_FLIGHT);
    let handle = std::thread::Builder::new()
        .name("report".into())
        .spawn_scoped(scope, move || write_accepted(rx, writer, failed))
        .context("cannot start the report thread")?;
    Ok(Reporting { tx, handle })
}

impl<W: Write + Send> Reporting<'_, W> {
    /// Wait for the report thread: the writers (or the first error, with
    /// whether it is the failed report's) and its busy time.
    pub fn join(self) -> std::result::Result<(Written<W>, Duration), (bool, anyhow::Error)> {
        drop(self.tx);
        match self.handle.join() {
            Ok((Ok(w), busy)) => Ok((w, busy)),
            Ok((Err(ReportFailure(failed, e)), _)) => Err((failed, e.into())),
            Err(_) => Err((
                false,
                anyhow::anyhow!(
                    "internal error: the report thread stopped unexpectedly; nothing was committed"
                ),
            )),
        }
    }
}

fn write_accepted<W: Write>(
    rx: Receiver<Vec<Decided>>,
    mut writer: AcceptedWriter<W>,
    mut failed: Option<FailedStream<W>>,
) -> (std::result::Result<Written<W>, ReportFailure>, Duration) {
    let mut busy = Duration::ZERO;
    for batch in rx.iter() {
        let t = Instant::now();
        for d in batch {
            let (o, status) = match d.outcome {
                Outcome::Accepted(ref o) => (o, Status::Accepted),
                Outcome::Skipped(ref o) => (o, Status::Skipped),
                Outcome::Failed(f) => {
                    if let Some(Err(e)) = failed.as_mut().map(|s| s.next(Some(f))) {
                        return (Err(ReportFailure(true, e)), busy + t.elapsed());
                    }
                    continue;
                }
                Outcome::ShortForNow => {
                    if let Some(Err(e)) = failed.as_mut().map(|s| s.next(None)) {
                        return (Err(ReportFailure(true, e)), busy + t.elapsed());
                    }
                    continue;
                }
            };
            let row = AcceptedRow::new(o, status, &d.raw.source, d.raw.line);
            if let Err(e) = writer.write(&row) {
                // Dropping the receiver stops the applying thread at its next send.
                return (Err(ReportFailure(false, e)), busy + t.elapsed());
            }
            if let Some(Err(e)) = failed.as_mut().map(|s| s.next(None)) {
                return (Err(ReportFailure(true, e)), busy + t.elapsed());
            }
        }
        busy += t.elapsed();
    }
    (Ok((writer, failed)), busy)
}
