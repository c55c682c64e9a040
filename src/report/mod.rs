//! Reports: accepted and failed orders as CSV, JSONL or xlsx, the Prometheus
//! metrics; files are written aside and renamed into place.

pub mod dir;
pub mod metrics;
mod xlsx;

pub use dir::{create_dirs, ReportDir, MARKER};
pub use xlsx::TooLarge;

use std::io::{self, Write};
use std::path::Path;

use serde_json::{Map, Value};

use crate::model::escape::escape_cell;
use crate::model::failure::failure_label;
use crate::model::money::{currency_exponent, format_amount};
use crate::model::order::{AcceptedRow, FailedOrder, Field, SourceColumn, SourceLayout};
use crate::model::ReportFormat;
use crate::store::{Queries, StoredFailure};

pub const ACCEPTED_COLUMNS: [&str; 11] = [
    "order_id",
    "status",
    "source_file",
    "source_line",
    "placed_at",
    "customer_email",
    "currency",
    "lines",
    "units",
    "total",
    "payment_method",
];

fn csv_writer<W: Write>(out: W) -> csv::Writer<W> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(out)
}

fn csv_err(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

/// Writes CSV cells with formula escaping (no copy unless a cell needs the quote).
fn write_cells<W: Write>(w: &mut csv::Writer<W>, cells: &[&str]) -> io::Result<()> {
    for c in cells {
        w.write_field(escape_cell(c).as_bytes()).map_err(csv_err)?;
    }
    w.write_record(None::<&[u8]>).map_err(csv_err)
}

/// The UTF-8 byte-order mark some spreadsheets need to read a CSV file as UTF-8.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A report with a header row and rows of cells: CSV (formula-escaped) or an
/// xlsx sheet (text cells, no escaping needed).
pub enum Table<W: Write> {
    Csv(Box<csv::Writer<W>>),
    Xlsx(Box<xlsx::XlsxSheet>, W),
}

impl<W: Write> Table<W> {
    /// `bom`: start a CSV file with the UTF-8 byte-order mark (for Excel).
    fn new(out: W, format: ReportFormat, header: &[&str], bom: bool) -> io::Result<Self> {
        Table::with_title(out, format, &[], header, bom)
    }

    /// A table whose header stands below `title`, a line (a row) each.
    fn with_title(
        mut out: W,
        format: ReportFormat,
        title: &[&str],
        header: &[&str],
        bom: bool,
    ) -> io::Result<Self> {
        Ok(match format {
            ReportFormat::Xlsx => {
                Table::Xlsx(Box::new(xlsx::XlsxSheet::with_title(title, header)?), out)
            }
            _ => {
                if bom {
                    out.write_all(BOM)?;
                }
                for line in title {
                    out.write_all(line.as_bytes())?;
                    out.write_all(b"\n")?;
                }
                let mut w = csv_writer(out);
                write_cells(&mut w, header)?;
                Table::Csv(Box::new(w))
            }
        })
    }

    fn row(&mut self, cells: &[&str]) -> io::Result<()> {
        match self {
            Table::Csv(w) => write_cells(w, cells),
            Table::Xlsx(sheet, _) => sheet.row(cells),
        }
    }

    fn finish(self) -> io::Result<W> {
        match self {
            Table::Csv(w) => (*w).into_inner().map_err(|e| e.into_error()),
            Table::Xlsx(sheet, out) => sheet.finish(out),
        }
    }
}

/// Streams the accepted report, one row per accepted or skipped order.
pub enum AcceptedWriter<W: Write> {
    Table(Table<W>),
    Jsonl(W),
}

impl<W: Write> AcceptedWriter<W> {
    pub fn new(out: W, format: ReportFormat) -> io::Result<Self> {
        AcceptedWriter::with_bom(out, format, false)
    }

    pub fn with_bom(out: W, format: ReportFormat, bom: bool) -> io::Result<Self> {
        Ok(match format {
            ReportFormat::Jsonl => AcceptedWriter::Jsonl(out),
            _ => AcceptedWriter::Table(Table::new(out, format, &ACCEPTED_COLUMNS, bom)?),
        })
    }

    pub fn write<S: AsRef<str>>(&mut self, r: &AcceptedRow<S>) -> io::Result<()> {
        let currency = r.currency.as_ref();
        let total = format_amount(r.total, currency_exponent(currency));
        match self {
            AcceptedWriter::Table(t) => {
                let mut n = itoa::Buffer::new();
                let mut lines = itoa::Buffer::new();
                let mut units = itoa::Buffer::new();
                t.row(&[
                    r.order_id.as_ref(),
                    r.status.as_str(),
                    r.source_file.as_ref(),
                    n.format(r.source_line),
                    r.placed_at.as_ref(),
                    r.customer_email.as_ref(),
                    currency,
                    lines.format(r.lines),
                    units.format(r.units),
                    &total,
                    r.payment_method.as_ref(),
                ])
            }
            AcceptedWriter::Jsonl(w) => {
                let v = serde_json::json!({
                    "order_id": r.order_id.as_ref(),
                    "status": r.status.as_str(),
                    "source_file": r.source_file.as_ref(),
                    "source_line": r.source_line,
                    "placed_at": r.placed_at.as_ref(),
                    "customer_email": r.customer_email.as_ref(),
                    "currency": currency,
                    "lines": r.lines,
                    "units": r.units,
                    "total": total,
                    "payment_method": r.payment_method.as_ref(),
                });
                serde_json::to_writer(&mut *w, &v)?;
                w.write_all(b"\n")
            }
        }
    }

    pub fn finish(self) -> io::Result<W> {
        match self {
            AcceptedWriter::Table(t) => t.finish(),
            AcceptedWriter::Jsonl(mut w) => {
                w.flush()?;
                Ok(w)
            }
        }
    }
}

/// Extra column names of failed orders, in order of first appearance, so the
/// CSV header can hold every one of them; and the first input layout a
/// failed order kept (`--skip-rows`, `--map`), which the header follows.
#[derive(Debug, Default, Clone)]
pub struct ExtraColumns {
    names: Vec<String>,
    layout: Option<SourceLayout>,
}

impl ExtraColumns {
    pub fn add(&mut self, f: &FailedOrder) {
        if self.layout.is_none() {
            self.layout = f.body.layout.clone();
        }
        for row in &f.body.rows {
            for (name, _) in &row.extra {
                if let Some(key) = extra_key(name) {
                    if !self.names.contains(&key) {
                        self.names.push(key);
                    }
                }
            }
        }
    }
}

/// The report name of an extra column: as the CSV reader names columns
/// (trimmed, lower case), and `None` for a name of ours, which would clash
/// with a real column when the report is read back.
fn extra_key(name: &str) -> Option<String> {
    let key = name.trim().to_ascii_lowercase();
    let ours = Field::from_name(&key).is_some()
        || crate::model::order::REPORT_COLUMNS.contains(&key.as_str());
    (!ours).then_some(key)
}

/// What a column of the failed report's table holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    Field(Field),
    Extra(String),
}

/// The first line above a failed report's header when its input had title
/// lines (`--skip-rows`): the report goes back in with the same flags.
pub const LAYOUT_TITLE: &str =
    "Failed orders: correct them, then process this file with the same --skip-rows and --map";

/// The failed report's title lines, header and columns: the ten fields and
/// the extra columns, in the input's own layout when a failed order kept it
/// (its names and order, then whatever it lacks), else the fields in
/// section 2's order, then the extras.
fn failed_table(extras: &ExtraColumns) -> (Vec<&str>, Vec<String>, Vec<Slot>) {
    let mut header: Vec<String> = Vec::new();
    let mut slots: Vec<Slot> = Vec::new();
    let mut title = Vec::new();
    if let Some(layout) = &extras.layout {
        let lines = usize::try_from(layout.skip_rows).unwrap_or(0);
        if lines > 0 {
            title = vec![""; lines];
            title[0] = LAYOUT_TITLE;
        }
        for c in &layout.columns {
            match c {
                SourceColumn::Field { field, name } => {
                    header.push(name.clone());
                    slots.push(Slot::Field(*field));
                }
                SourceColumn::Extra(name) => {
                    if let Some(key) = extra_key(name) {
                        header.push(key.clone());
                        slots.push(Slot::Extra(key));
                    }
                }
            }
        }
    }
    for f in Field::ALL {
        if !slots.contains(&Slot::Field(f)) {
            header.push(f.name().to_string());
            slots.push(Slot::Field(f));
        }
    }
    for name in &extras.names {
        if !slots.contains(&Slot::Extra(name.clone())) {
            header.push(name.clone());
            slots.push(Slot::Extra(name.clone()));
        }
    }
    (title, header, slots)
}

/// Writes the failed report: one row per input row (CSV) or one line per
/// order in the JSONL input layout; both are valid input again.
pub enum FailedWriter<W: Write> {
    Table(Table<W>, Vec<Slot>),
    Jsonl(W),
}

impl<W: Write> FailedWriter<W> {
    pub fn new(out: W, format: ReportFormat, extras: ExtraColumns) -> io::Result<Self> {
        FailedWriter::with_bom(out, format, extras, false)
    }

    pub fn with_bom(
        out: W,
        format: ReportFormat,
        extras: ExtraColumns,
        bom: bool,
    ) -> io::Result<Self> {
        Ok(match format {
            ReportFormat::Jsonl => FailedWriter::Jsonl(out),
            _ => {
                let (title, names, slots) = failed_table(&extras);
                let mut header: Vec<&str> = names.iter().map(String::as_str).collect();
                header.extend(crate::model::order::REPORT_COLUMNS);
                let t = Table::with_title(out, format, &title, &header, bom)?;
                FailedWriter::Table(t, slots)
            }
        })
    }

    pub fn write(&mut self, stored: &StoredFailure) -> io::Result<()> {
        self.write_as(stored, &failure_label(stored.key()))
    }

    /// A failed order named `id` in the report (empty for a failure that
    /// will not be stored: a dry run's).
    pub fn write_as(&mut self, stored: &StoredFailure, id: &str) -> io::Result<()> {
        let f = &stored.order;
        let line = f.source_line.to_string();
        match self {
            FailedWriter::Table(w, slots) => {
                if f.body.rows.is_empty() {
                    let mut cells = vec![""; slots.len()];
                    let detail = f.detail();
                    cells.extend([f.code.as_str(), &detail, &f.source_file, &line, id]);
                    return w.row(&cells);
                }
                // Each row carries its own problems (the first also the order's):
                // a report stays proportional to its input.
                for (i, row) in f.body.rows.iter().enumerate() {
                    let detail = f.row_detail(i);
                    let tail = [f.code.as_str(), &detail, &f.source_file, &line, id];
                    let mut cells: Vec<&str> = slots
                        .iter()
                        .map(|slot| match slot {
                            Slot::Field(field) => {
                                row.values.get(field.index()).map_or("", String::as_str)
                            }
                            Slot::Extra(name) => row
                                .extra
                                .iter()
                                .find(|(n, _)| extra_key(n).as_ref() == Some(name))
                                .map_or("", |(_, v)| v.as_str()),
                        })
                        .collect();
                    cells.extend(tail);
                    w.row(&cells)?;
                }
                Ok(())
            }
            FailedWriter::Jsonl(w) => {
                let mut obj = Map::new();
                if let Some(first) = f.body.rows.first() {
                    let get = |row: &crate::model::order::FailedRow, field: Field| {
                        Value::String(row.values.get(field.index()).cloned().unwrap_or_default())
                    };
                    for field in Field::ALL.into_iter().filter(|f| !f.is_item()) {
                        obj.insert(field.name().into(), get(first, field));
                    }
                    let items: Vec<Value> = if f.body.no_items {
                        Vec::new()
                    } else {
                        f.body
                            .rows
                            .iter()
                            .map(|row| {
                                let mut item = Map::new();
                                for field in [Field::Sku, Field::Quantity, Field::UnitPrice] {
                                    item.insert(field.name().into(), get(row, field));
                                }
                                Value::Object(item)
                            })
                            .collect()
                    };
                    obj.insert("items".into(), Value::Array(items));
                    for (name, v) in &first.extra {
                        // A CSV column named `items` has no place beside the items array.
                        if let Some(key) = extra_key(name).filter(|k| k != "items") {
                            obj.entry(key).or_insert_with(|| Value::String(v.clone()));
                        }
                    }
                }
                obj.insert("error_code".into(), f.code.as_str().into());
                obj.insert("error_detail".into(), f.detail().into_owned().into());
                obj.insert("source_file".into(), f.source_file.clone().into());
                obj.insert("source_line".into(), f.source_line.into());
                obj.insert("failure_id".into(), id.into());
                serde_json::to_writer(&mut *w, &Value::Object(obj))?;
                w.write_all(b"\n")
            }
        }
    }

    pub fn finish(self) -> io::Result<W> {
        match self {
            FailedWriter::Table(t, _) => t.finish(),
            FailedWriter::Jsonl(mut w) => {
                w.flush()?;
                Ok(w)
            }
        }
    }
}

pub fn file_name(kind: &str, format: ReportFormat) -> String {
    format!("{kind}.{}", format.as_str())
}

/// How a failed report is written.
#[derive(Debug, Clone, Copy)]
pub struct FailedStyle {
    /// CSV starts with a UTF-8 byte-order mark.
    pub bom: bool,
    /// Rows name their stored failures (not in a dry run: nothing is stored).
    pub ids: bool,
}

/// The failed report of a run written as its orders are decided, on the
/// report thread, instead of read back from the database after them: while
/// no failed order has an extra column or a layout of its own, the header
/// of ten fields is the one the report would have. Once one has, the stream
/// gives up (`complete` is false) and the report is rendered from the
/// database as before.
pub struct FailedStream<W: Write> {
    writer: FailedWriter<W>,
    run_id: i64,
    /// Rows name their stored failures (not in a dry run).
    ids: bool,
    /// The position in the run of the last order seen.
    seq: u64,
    complete: bool,
}

impl<W: Write> FailedStream<W> {
    pub fn new(out: W, format: ReportFormat, style: FailedStyle, run_id: i64) -> io::Result<Self> {
        Ok(FailedStream {
            writer: FailedWriter::with_bom(out, format, ExtraColumns::default(), style.bom)?,
            run_id,
            ids: style.ids,
            seq: 0,
            complete: true,
        })
    }

    /// The next order of the run, in input order; `failed` when it failed.
    pub fn next(&mut self, failed: Option<FailedOrder>) -> io::Result<()> {
        self.seq += 1;
        let Some(order) = failed else {
            return Ok(());
        };
        if !self.complete {
            return Ok(());
        }
        let own_columns =
            order.body.layout.is_some() || order.body.rows.iter().any(|r| !r.extra.is_empty());
        if own_columns {
            self.complete = false;
            return Ok(());
        }
        let stored = StoredFailure {
            id: 0,
            run_id: self.run_id,
            seq: self.seq,
            state: crate::model::failure::FailureState::Open,
            order,
        };
        let id = if self.ids {
            failure_label(stored.key())
        } else {
            String::new()
        };
        self.writer.write_as(&stored, &id)
    }

    /// The writer, finished, when the stream holds the whole report.
    pub fn finish(self) -> io::Result<Option<W>> {
        if !self.complete {
            return Ok(None);
        }
        self.writer.finish().map(Some)
    }
}

/// Write a run's failed orders to `out`, from the database (two passes: the
/// CSV header needs every extra column of the run).
/// A run's accepted report (accepted and skipped orders in input order),
/// from the database.
pub fn render_accepted<W: Write>(
    store: &mut dyn Queries,
    run_id: i64,
    format: ReportFormat,
    bom: bool,
    out: W,
) -> anyhow::Result<W> {
    let mut w = AcceptedWriter::with_bom(out, format, bom)?;
    let mut io_err = None;
    store.accepted_of_run(run_id, &mut |row: AcceptedRow| {
        if io_err.is_none() {
            io_err = w.write(&row).err();
        }
        Ok(())
    })?;
    if let Some(e) = io_err {
        return Err(e.into());
    }
    Ok(w.finish()?)
}

pub fn render_failed<W: Write>(
    store: &mut dyn Queries,
    run_id: i64,
    format: ReportFormat,
    style: FailedStyle,
    out: W,
) -> anyhow::Result<W> {
    render_failed_with(store, run_id, format, style, None, out)
}

/// As [`render_failed`]; `known`: the run's extra columns where the caller
/// saw every failure it stored (the run itself), which spares a first pass
/// over the failures.
pub fn render_failed_with<W: Write>(
    store: &mut dyn Queries,
    run_id: i64,
    format: ReportFormat,
    style: FailedStyle,
    known: Option<&ExtraColumns>,
    out: W,
) -> anyhow::Result<W> {
    let mut extras = known.cloned().unwrap_or_default();
    if format != ReportFormat::Jsonl && known.is_none() {
        store.failed_of_run(run_id, &mut |f: StoredFailure| {
            extras.add(&f.order);
            Ok(())
        })?;
    }
    let mut w = FailedWriter::with_bom(out, format, extras, style.bom)?;
    let mut io_err = None;
    store.failed_of_run(run_id, &mut |f: StoredFailure| {
        if io_err.is_none() {
            let id = if style.ids {
                failure_label(f.key())
            } else {
                String::new()
            };
            io_err = w.write_as(&f, &id).err();
        }
        Ok(())
    })?;
    if let Some(e) = io_err {
        return Err(e.into());
    }
    Ok(w.finish()?)
}

/// Write `contents` to `path` through a new temporary file in the same
/// directory (never an existing name, never through a link), made durable,
/// then renamed into place and the directory synced.
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".orderbatch-")
        .tempfile_in(dir)?;
    tmp.write_all(contents)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests;
