//! The options of a run, whether its orders come from files or from the
//! database: plain values the commands build from their arguments.

use std::path::PathBuf;

use crate::model::local_time::Zone;
use crate::model::{InputFormat, ReportFormat};
use crate::read::{ColumnMap, ReadOptions, TextEncoding};

use super::{CatalogCache, Fence};

/// Options of `process` and `reprocess`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub files: Vec<String>,
    pub catalog: Option<String>,
    pub format: Option<InputFormat>,
    pub out: PathBuf,
    pub report_format: ReportFormat,
    pub dry_run: bool,
    pub max_errors: Option<u64>,
    pub jobs: usize,
    pub delimiter: Option<u8>,
    pub metrics_file: Option<PathBuf>,
    pub json: bool,
    /// The encoding of text inputs (`--encoding`).
    pub encoding: TextEncoding,
    /// Title lines before the header (`--skip-rows`).
    pub skip_rows: u64,
    /// Columns of other names read as ours (`--map`).
    pub map: ColumnMap,
    /// The zone of date-times without an offset (`--timezone`); it applies
    /// to retried orders too.
    pub timezone: Option<Zone>,
    /// CSV reports start with a UTF-8 byte-order mark (for Excel).
    pub report_bom: bool,
    /// The most bytes one record may hold (`--max-record-bytes`).
    pub max_record_bytes: usize,
    /// Set by `inbox`: the claim on the run's file, which fences its commit.
    pub fence: Option<Fence>,
    /// Set by an `inbox` worker: the checking catalog, kept between runs.
    pub catalog_cache: Option<CatalogCache>,
}

impl RunOptions {
    /// How the run's input files are read: built here, once, from the options.
    pub fn reader(&self) -> ReadOptions {
        ReadOptions {
            delimiter: self.delimiter,
            encoding: self.encoding,
            skip_rows: self.skip_rows,
            map: self.map.clone(),
            timezone: self.timezone,
            max_record_bytes: self.max_record_bytes,
        }
    }
}
