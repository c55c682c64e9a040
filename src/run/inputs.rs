//! Where a run's orders come from: input files (opened and their headers
//! checked before the database is touched), or the stored open failures that
//! `reprocess` retries, read a page at a time.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use anyhow::Result;

use super::stages::Orders;
use super::RunOptions;
use crate::model::local_time::Zone;
use crate::model::order::{Field, Product};
use crate::model::run::RunInput;
use crate::model::InputFormat;
use crate::read::{
    open_orders_deferred, open_source_raw, open_text, resolve_format, Columns, InputError,
    InputMeter, RawBody, RawOrder, RawRow,
};
use crate::store::{FailureFilter, Store, StoredFailure};
use crate::validate::Catalog;

/// An input file opened and its header checked.
pub struct Opened {
    pub path: String,
    pub format: InputFormat,
    pub meter: Arc<InputMeter>,
    pub orders: Orders,
}

pub fn open_files(files: &[String], opts: &RunOptions) -> Result<Vec<Opened>> {
    if files.iter().filter(|f| *f == "-").count() > 1 {
        return Err(InputError::StdinTwice.into());
    }
    let read = opts.reader();
    let mut out = Vec::with_capacity(files.len());
    for path in files {
        let format = resolve_format(path, opts.format)?;
        let source = match format {
            // A workbook is a zip archive: --encoding is for text files.
            InputFormat::Xlsx => open_source_raw(path)?,
            _ => open_text(path, &read)?,
        };
        let meter = Arc::clone(&source.meter);
        // JSONL lines are parsed on the validation threads, not the reader's.
        let orders = open_orders_deferred(source, format, &read)?;
        out.push(Opened {
            path: path.clone(),
            format,
            meter,
            orders: Box::new(orders.map(|r| r.map_err(anyhow::Error::from))),
        });
    }
    Ok(out)
}

/// An input as the summary and the progress line know it.
#[derive(Debug, Clone)]
pub struct InputMeta {
    pub path: String,
    pub format: InputFormat,
    pub meter: Arc<InputMeter>,
}

impl Opened {
    pub fn meta(&self) -> InputMeta {
        InputMeta {
            path: self.path.clone(),
            format: self.format,
            meter: Arc::clone(&self.meter),
        }
    }
}

/// The run's inputs with their digests, as far as they were read.
pub fn summaries(inputs: &[InputMeta]) -> Vec<RunInput> {
    inputs
        .iter()
        .map(|m| RunInput {
            path: m.path.clone(),
            format: m.format.as_str().into(),
            sha256: m.meter.sha256().unwrap_or_default(),
            encoding: m.meter.detected_encoding().map(str::to_string),
        })
        .collect()
}

/// The catalog validation checks against: the stored products, with those of
/// a `--catalog` file in their place (as loading the file first would make them).
pub fn catalog(stored: Vec<Product>, file: Option<&[Product]>) -> Catalog {
    match file {
        None => Catalog::new(stored),
        Some(loaded) => {
            let names: std::collections::HashSet<&str> =
                loaded.iter().map(|p| p.sku.as_str()).collect();
            let kept = stored
                .into_iter()
                .filter(|p| !names.contains(p.sku.as_str()));
            Catalog::new(kept.chain(loaded.iter().cloned()))
        }
    }
}

/// Failures per page read.
const PAGE: usize = 1024;

/// The open failures to retry (of one run or all, of some codes or all),
/// oldest first, a page at a time from a store of their own (the run's
/// transaction holds the other).
pub struct Retries {
    store: Box<dyn Store>,
    filter: FailureFilter,
    /// `--timezone`: the zone a retried order's local times are read in.
    zone: Option<Zone>,
    after: Option<crate::model::failure::FailureKey>,
    page: VecDeque<StoredFailure>,
    done: bool,
    /// The runs whose failures were retried.
    pub runs: Arc<Mutex<BTreeSet<i64>>>,
}

impl Retries {
    pub fn new(store: Box<dyn Store>, filter: FailureFilter, zone: Option<Zone>) -> Retries {
        Retries {
            store,
            filter,
            zone,
            after: None,
            page: VecDeque::new(),
            done: false,
            runs: Arc::default(),
        }
    }
}

impl Iterator for Retries {
    type Item = Result<RawOrder>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.page.is_empty() && !self.done {
            match self.store.open_failures(&self.filter, self.after, PAGE) {
                Ok(page) => {
                    self.done = page.len() < PAGE;
                    self.page = page.into();
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e.into()));
                }
            }
        }
        let f = self.page.pop_front()?;
        self.after = Some(f.key());
        if let Ok(mut runs) = self.runs.lock() {
            runs.insert(f.run_id);
        }
        Some(Ok(retry_order(&f, self.zone)))
    }
}

/// A stored failure as an order to check again, with its original file and
/// line, its local times read in `zone`, and its file's layout kept.
pub fn retry_order(f: &StoredFailure, zone: Option<Zone>) -> RawOrder {
    let o = &f.order;
    let body = match &o.body.raw {
        Some(raw) => RawBody::Malformed {
            raw: raw.clone(),
            reason: format!("could not be parsed (as reported by run {})", f.run_id),
        },
        None => {
            let extra_names: Vec<String> = o
                .body
                .rows
                .first()
                .map(|r| r.extra.iter().map(|(n, _)| n.clone()).collect())
                .unwrap_or_default();
            let columns = Arc::new(Columns {
                zone,
                layout: o.body.layout.clone().map(Arc::new),
                ..Columns::positional(extra_names, false)
            });
            let rows = o
                .body
                .rows
                .iter()
                .map(|r| {
                    let mut record = csv::StringRecord::new();
                    for i in 0..Field::COUNT {
                        record.push_field(r.values.get(i).map(String::as_str).unwrap_or(""));
                    }
                    for (_, v) in &r.extra {
                        record.push_field(v);
                    }
                    RawRow {
                        line: if r.line > 0 { r.line } else { o.source_line },
                        record,
                    }
                })
                .collect();
            RawBody::Rows {
                columns,
                rows,
                no_items: o.body.no_items,
            }
        }
    };
    RawOrder {
        source: Arc::from(o.source_file.as_str()),
        failure: Some(f.key()),
        line: o.source_line,
        body,
        notes: Vec::new(),
    }
}
