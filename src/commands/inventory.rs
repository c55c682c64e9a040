//! `inventory load`, `inventory receive`, `inventory export`: the catalog and
//! its stock, each change all-or-nothing with its ledger entries.

use std::io::{self, Write};
use std::path::Path;

use anyhow::{Context, Result};

use crate::config::Config;
use crate::model::escape::escape_cell;
use crate::model::money::{currency_exponent, format_amount};
use crate::model::text::for_terminal;
use crate::read::catalog::{read_catalog, read_deliveries, CATALOG_COLUMNS};
use crate::read::ReadOptions;
use crate::Exit;

pub fn load(cfg: &Config, file: &str, read: &ReadOptions) -> Result<Exit> {
    let products = read_catalog(file, read)?;
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

pub fn receive(cfg: &Config, file: &str, read: &ReadOptions) -> Result<Exit> {
    // The file is read and checked before the database is opened; its skus
    // are then checked against the catalog, and every problem named at once.
    let deliveries = read_deliveries(file, read)?;
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

pub fn export(cfg: &Config, out: Option<&Path>) -> Result<Exit> {
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
