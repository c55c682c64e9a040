//! `verify`: the database's own integrity check and the stock ledger.

use anyhow::Result;
use serde_json::json;

use crate::config::Config;
use crate::exit::Exit;
use crate::model::text::for_terminal;
use crate::store::Fault;

fn describe(f: &Fault) -> String {
    match f {
        Fault::Ledger {
            sku,
            on_hand: Some(n),
            ..
        } if *n < 0 => format!("sku {}: stock on hand is negative ({n})", for_terminal(sku)),
        Fault::Ledger {
            sku,
            on_hand: Some(n),
            ledger_sum,
        } => format!(
            "sku {}: stock on hand is {n} but its ledger sums to {ledger_sum}",
            for_terminal(sku)
        ),
        Fault::Ledger {
            sku, ledger_sum, ..
        } => format!(
            "sku {}: ledger entries (sum {ledger_sum}) for a product that does not exist",
            for_terminal(sku)
        ),
        Fault::Integrity(what) => format!("integrity check: {}", for_terminal(what)),
    }
}

/// Check the database's integrity and the stock ledger: exit 0 when they hold, 1 listing the faults
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print {"ok":..,"faults":[..]} on standard output
    #[arg(long)]
    json: bool,
}

pub fn run(cfg: &Config, args: Args) -> Result<Exit> {
    let json_out = args.json;
    let mut store = super::open_existing(cfg)?;
    let faults = store.check()?;
    if json_out {
        let v: Vec<serde_json::Value> = faults
            .iter()
            .map(|f| match f {
                Fault::Ledger {
                    sku,
                    on_hand,
                    ledger_sum,
                } => json!({"kind": "ledger", "sku": sku, "on_hand": on_hand, "ledger_sum": ledger_sum}),
                Fault::Integrity(what) => json!({"kind": "integrity", "detail": what}),
            })
            .collect();
        super::print(&format!(
            "{}\n",
            json!({"ok": faults.is_empty(), "faults": v})
        ))?;
    } else {
        for f in &faults {
            crate::log::fault(&describe(f));
        }
        if faults.is_empty() && !cfg.quiet {
            crate::log::info(
                "verified",
                &format!(
                    "{} holds: the database passes its integrity check, and every sku's stock equals the sum of its ledger, none negative",
                    store.name()
                ),
            );
        }
    }
    Ok(if faults.is_empty() {
        Exit::Ok
    } else {
        Exit::Faults
    })
}
