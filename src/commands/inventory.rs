//! `inventory load`, `inventory receive`, `inventory export`: the catalog and
//! its stock, each change all-or-nothing with its ledger entries.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::config::Config;
use crate::exit::{Exit, UsageError};
use crate::model::escape::escape_cell;
use crate::model::money::{currency_exponent, format_amount};
use crate::model::text::for_terminal;
use crate::model::CatalogFormat;
use crate::read::catalog::{read_catalog, read_deliveries, CATALOG_COLUMNS, DELIVERY_COLUMNS};
use crate::read::ReadOptions;

use super::args::TableArgs;

/// Load, receive or export the catalog and stock levels
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Upsert products and set their stock levels from FILE (all or nothing)
    Load {
        /// Catalog file (.csv, .tsv or .jsonl, each also as .gz): sku, name, unit_price, currency, on_hand ('-' reads standard input)
        #[arg(value_name = "FILE")]
        file: String,
        #[command(flatten)]
        input: TableArgs,
    },
    /// Add delivered units to the stock on hand at commit time (all or nothing)
    Receive {
        /// Delivery file (.csv, .tsv or .jsonl, each also as .gz): sku, quantity (units delivered; a sku may appear on several lines)
        #[arg(value_name = "FILE")]
        file: String,
        #[command(flatten)]
        input: TableArgs,
    },
    /// Write the catalog and stock as CSV (loads back as is)
    Export {
        /// Output file (default: standard output)
        #[arg(short, long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

impl Command {
    /// What is wrong with `--map`, checked against the columns of the file's kind.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Command::Load { input, .. } => input.clone().into_read(&CATALOG_COLUMNS).map(drop),
            Command::Receive { input, .. } => input.clone().into_read(&DELIVERY_COLUMNS).map(drop),
            Command::Export { .. } => Ok(()),
        }
    }
}

pub fn run(cfg: &Config, cmd: Command) -> Result<Exit> {
    match cmd {
        Command::Load { file, input } => {
            let format = input.format;
            let read = input.into_read(&CATALOG_COLUMNS).map_err(UsageError)?;
            load(cfg, &file, format, &read)
        }
        Command::Receive { file, input } => {
            let format = input.format;
            let read = input.into_read(&DELIVERY_COLUMNS).map_err(UsageError)?;
            receive(cfg, &file, format, &read)
        }
        Command::Export { out } => export(cfg, out.as_deref()),
    }
}

fn load(
    cfg: &Config,
    file: &str,
    format: Option<CatalogFormat>,
    read: &ReadOptions,
) -> Result<Exit> {
    let products = read_catalog(file, format, read)?;
    let mut store = super::open(cfg)?;
    // Prices change: runs that validated against the old ones finish first.
    store.hold_catalog(true)?;
    let name = store.name().to_string();
    let mut tx = store.begin()?;
    tx.load_products(&products, None, file, crate::model::clock::Timestamp::now())?;
    if let Some(w) = tx.commit()?.warning {
        crate::log::warn(&w);
    }
    if !cfg.quiet {
        crate::log::info(
            "inventory_loaded",
            &format!("loaded {} products from {file} into {name}", products.len()),
        );
    }
    Ok(Exit::Ok)
}

fn receive(
    cfg: &Config,
    file: &str,
    format: Option<CatalogFormat>,
    read: &ReadOptions,
) -> Result<Exit> {
    // The file is read and checked before the database is opened; its skus
    // are then checked against the catalog, and every problem named at once.
    let deliveries = read_deliveries(file, format, read)?;
    let mut store = super::open(cfg)?;
    let name = store.name().to_string();
    let known: std::collections::HashSet<String> =
        store.products()?.into_iter().map(|p| p.sku).collect();
    let deliveries = deliveries.checked(|sku| known.contains(sku))?;
    let lines: Vec<(String, i64)> = deliveries.into_iter().map(|(_, s, n)| (s, n)).collect();
    let mut tx = store.begin()?;
    let levels = tx.receive(&lines, file, crate::model::clock::Timestamp::now())?;
    if let Some(w) = tx.commit()?.warning {
        crate::log::warn(&w);
    }
    if !cfg.quiet {
        let units: i64 = lines.iter().map(|(_, n)| n).sum();
        crate::log::info(
            "inventory_received",
            &format!(
                "received {units} units of {} skus from {file} into {name}",
                levels.len()
            ),
        );
    }
    Ok(Exit::Ok)
}

fn export(cfg: &Config, out: Option<&Path>) -> Result<Exit> {
    let products = super::open_existing(cfg)?.products()?;
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    w.write_record(CATALOG_COLUMNS)?;
    for p in &products {
        let price = format_amount(p.unit_price, currency_exponent(&p.currency));
        let stock = p.on_hand.to_string();
        let cells = [p.sku.as_str(), &p.name, &price, &p.currency, &stock];
        w.write_record(cells.iter().map(|c| escape_cell(c).into_owned()))?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    match out {
        Some(path) => crate::report::write_atomic(path, &bytes).with_context(|| {
            format!(
                "cannot write {}: check the directory and the disk",
                for_terminal(&path.display().to_string())
            )
        })?,
        None => {
            let mut o = io::stdout().lock();
            o.write_all(&bytes)?;
            o.flush()?;
        }
    }
    Ok(Exit::Ok)
}
