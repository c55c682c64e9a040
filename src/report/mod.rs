//! Reports: accepted and failed orders as CSV or JSONL, the run summary, the
//! Prometheus metrics; files are written aside and renamed into place.

pub mod escape;
pub mod metrics;
pub mod summary;

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::model::money::{currency_exponent, format_amount};
use crate::model::order::{AcceptedRow, FailedOrder, Field};
use crate::read::Format;
use escape::escape_cell;

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

/// Streams the accepted report, one row per accepted or skipped order.
pub enum AcceptedWriter<W: Write> {
    Csv(Box<csv::Writer<W>>),
    Jsonl(W),
}

impl<W: Write> AcceptedWriter<W> {
    pub fn new(out: W, format: Format) -> io::Result<Self> {
        Ok(match format {
            Format::Csv => {
                let mut w = csv_writer(out);
                write_cells(&mut w, &ACCEPTED_COLUMNS)?;
                AcceptedWriter::Csv(Box::new(w))
            }
            Format::Jsonl => AcceptedWriter::Jsonl(out),
        })
    }

    pub fn write<S: AsRef<str>>(&mut self, r: &AcceptedRow<S>) -> io::Result<()> {
        let currency = r.currency.as_ref();
        let total = format_amount(r.total, currency_exponent(currency));
        match self {
            AcceptedWriter::Csv(w) => {
                let mut n = itoa::Buffer::new();
                let mut lines = itoa::Buffer::new();
                let mut units = itoa::Buffer::new();
                write_cells(
                    w,
                    &[
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
                    ],
                )
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
            AcceptedWriter::Csv(w) => (*w).into_inner().map_err(|e| e.into_error()),
            AcceptedWriter::Jsonl(mut w) => {
                w.flush()?;
                Ok(w)
            }
        }
    }
}

/// Extra column names of failed orders, in order of first appearance, so the
/// CSV header can hold every one of them.
#[derive(Debug, Default, Clone)]
pub struct ExtraColumns {
    names: Vec<String>,
}

impl ExtraColumns {
    pub fn add(&mut self, f: &FailedOrder) {
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

/// Writes the failed report: one row per input row (CSV) or one line per
/// order in the JSONL input layout; both are valid input again.
pub enum FailedWriter<W: Write> {
    Csv(Box<csv::Writer<W>>, Vec<String>),
    Jsonl(W),
}

impl<W: Write> FailedWriter<W> {
    pub fn new(out: W, format: Format, extras: ExtraColumns) -> io::Result<Self> {
        Ok(match format {
            Format::Csv => {
                let mut w = csv_writer(out);
                let mut header: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
                header.extend(extras.names.iter().map(String::as_str));
                header.extend(crate::model::order::REPORT_COLUMNS);
                write_cells(&mut w, &header)?;
                FailedWriter::Csv(Box::new(w), extras.names)
            }
            Format::Jsonl => FailedWriter::Jsonl(out),
        })
    }

    pub fn write(&mut self, f: &FailedOrder) -> io::Result<()> {
        let line = f.source_line.to_string();
        match self {
            FailedWriter::Csv(w, extras) => {
                let tail = [
                    f.code.as_str(),
                    f.detail.as_str(),
                    f.source_file.as_str(),
                    line.as_str(),
                ];
                if f.body.rows.is_empty() {
                    let mut cells = vec![""; 10 + extras.len()];
                    cells.extend(tail);
                    return write_cells(w, &cells);
                }
                for row in &f.body.rows {
                    let mut cells: Vec<&str> = row.values.iter().map(String::as_str).collect();
                    cells.resize(10, "");
                    for name in extras.iter() {
                        let v = row
                            .extra
                            .iter()
                            .find(|(n, _)| extra_key(n).as_ref() == Some(name))
                            .map(|(_, v)| v.as_str());
                        cells.push(v.unwrap_or(""));
                    }
                    cells.extend(tail);
                    write_cells(w, &cells)?;
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
                obj.insert("error_detail".into(), f.detail.clone().into());
                obj.insert("source_file".into(), f.source_file.clone().into());
                obj.insert("source_line".into(), f.source_line.into());
                serde_json::to_writer(&mut *w, &Value::Object(obj))?;
                w.write_all(b"\n")
            }
        }
    }

    pub fn finish(self) -> io::Result<W> {
        match self {
            FailedWriter::Csv(w, _) => (*w).into_inner().map_err(|e| e.into_error()),
            FailedWriter::Jsonl(mut w) => {
                w.flush()?;
                Ok(w)
            }
        }
    }
}

pub fn file_name(kind: &str, format: Format) -> String {
    format!("{kind}.{}", format.as_str())
}

/// A run's report directory, built aside as `DIR/.run-ID.partial` and renamed
/// to `DIR/run-ID` only after the run committed.
pub struct ReportDir {
    partial: PathBuf,
    target: PathBuf,
}

impl ReportDir {
    pub fn create(out: &Path, run_id: i64) -> io::Result<ReportDir> {
        fs::create_dir_all(out)?;
        let partial = out.join(format!(".run-{run_id}.partial"));
        if partial.exists() {
            fs::remove_dir_all(&partial)?;
        }
        fs::create_dir(&partial)?;
        Ok(ReportDir {
            partial,
            target: out.join(format!("run-{run_id}")),
        })
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    pub fn file(&self, name: &str) -> io::Result<BufWriter<fs::File>> {
        Ok(BufWriter::with_capacity(
            256 * 1024,
            fs::File::create(self.partial.join(name))?,
        ))
    }

    /// Make the reports durable, then move them into place in one rename.
    pub fn publish(self) -> io::Result<PathBuf> {
        for entry in fs::read_dir(&self.partial)? {
            fs::File::open(entry?.path())?.sync_all()?;
        }
        if self.target.exists() {
            // A directory of that name from an earlier database: keep it, aside.
            let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S");
            let stem = file_stem(&self.target);
            let aside = (0..)
                .map(|n| {
                    let suffix = if n == 0 {
                        String::new()
                    } else {
                        format!("-{n}")
                    };
                    self.target
                        .with_file_name(format!("{stem}.replaced-{stamp}{suffix}"))
                })
                .find(|p| !p.exists())
                .unwrap_or_default();
            fs::rename(&self.target, aside)?;
        }
        fs::rename(&self.partial, &self.target)?;
        if let Some(parent) = self.target.parent() {
            if let Ok(d) = fs::File::open(parent) {
                let _ = d.sync_all();
            }
        }
        Ok(self.target)
    }

    /// Remove the partial reports of a run that did not commit.
    pub fn discard(self) {
        let _ = fs::remove_dir_all(&self.partial);
    }
}

fn file_stem(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Write `contents` to `path` through a temporary file in the same directory
/// and a rename, so readers never see it half written.
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.tmp-{}", file_stem(path), std::process::id()));
    let res = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

#[cfg(test)]
mod tests;
