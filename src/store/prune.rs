//! What `runs prune` asks of a store and what it gets back. Each backend
//! prunes a batch of runs in one short transaction (`sqlite/prune.rs`,
//! `postgres/prune.rs`); the command batches them, removes their report
//! directories and says what went.

use crate::model::clock::Timestamp;

/// A run `runs prune --before DATE` may forget: it finished before DATE (a
/// run that never finished, interrupted: it started before DATE), and it is
/// not running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldRun {
    pub id: i64,
    /// As the history holds it: a report directory is this run's when its
    /// summary.json has the same.
    pub started_at: String,
    /// Pruned already (by an earlier prune).
    pub pruned: bool,
    /// Orders it accepted, skipped or failed: the rows pruning it touches.
    pub orders: u64,
}

/// One transaction's worth of pruning.
#[derive(Debug, Clone, Copy)]
pub struct PruneBatch<'a> {
    /// Runs not pruned yet; each is checked again under the lock.
    pub runs: &'a [i64],
    /// The date given (stored times before it compare as text, see
    /// [`Timestamp`]).
    pub before: Timestamp,
    /// Now: when these runs are marked pruned, and the carried entries' time.
    pub at: Timestamp,
    /// Also what earlier prunes left: the failure records of runs pruned
    /// before that were settled since, and the ledger entries made outside
    /// any run (`inventory load`, `inventory receive`) before `before`.
    pub sweep: bool,
    /// Count what would go, change nothing.
    pub dry: bool,
}

/// What a prune removed (or, dry, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    pub runs: u64,
    /// Skip records deleted.
    pub skips: u64,
    /// Resolved, closed, superseded and final failure records deleted.
    pub failures: u64,
    /// Open failures of the pruned runs, kept.
    pub open_kept: u64,
    /// Ledger entries compacted (an earlier carried-forward entry merged
    /// into the new one is not counted again)...
    pub ledger_entries: u64,
    /// ...of these skus, each now with one carried-forward entry (none
    /// where its entries sum to zero).
    pub ledger_skus: std::collections::BTreeSet<String>,
    /// Applied orders reduced to their id, fingerprint and run.
    pub orders: u64,
}

impl Pruned {
    pub fn add(&mut self, o: &Pruned) {
        self.runs += o.runs;
        self.skips += o.skips;
        self.failures += o.failures;
        self.open_kept += o.open_kept;
        self.ledger_entries += o.ledger_entries;
        self.ledger_skus.extend(o.ledger_skus.iter().cloned());
        self.orders += o.orders;
    }
}

/// Space given back to the file system.
#[derive(Debug, Clone, PartialEq)]
pub struct Reclaimed {
    /// The database file's size before and after (bytes, its WAL included).
    pub before: u64,
    pub after: u64,
    /// How: `VACUUM` or `incremental_vacuum`.
    pub how: &'static str,
    /// How long it held the database.
    pub secs: f64,
}

/// A ledger entry a batch compacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compacted {
    pub sku: String,
    pub delta: i64,
    /// Its time, as stored.
    pub at: String,
    /// An earlier carried-forward entry.
    pub carried: bool,
}

/// A carried-forward entry that replaces compacted ones: a sku's sum, at
/// the latest of their times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carried {
    pub sku: String,
    pub sum: i64,
    pub at: String,
}

impl Pruned {
    /// Count the entries a batch compacts, and their skus; an earlier
    /// carried-forward entry is counted once, when it was made.
    pub fn count_ledger(&mut self, entries: &[Compacted]) {
        for e in entries.iter().filter(|e| !e.carried) {
            self.ledger_entries += 1;
            self.ledger_skus.insert(e.sku.clone());
        }
    }
}

/// The carried-forward entries that replace compacted ones: each sku's
/// sum, its latest time, for the skus whose sum is not zero (an entry of
/// zero adds nothing to the ledger's sum), in sku order.
pub fn carried_sums(entries: &[Compacted]) -> Vec<Carried> {
    let mut by_sku: std::collections::BTreeMap<&str, (i64, &str)> = Default::default();
    for e in entries {
        let sum = by_sku.entry(&e.sku).or_insert((0, ""));
        sum.0 += e.delta;
        if e.at.as_str() > sum.1 {
            sum.1 = &e.at;
        }
    }
    by_sku
        .into_iter()
        .filter(|(_, (sum, _))| *sum != 0)
        .map(|(sku, (sum, at))| Carried {
            sku: sku.to_string(),
            sum,
            at: at.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compacted_entries_become_one_sum_per_sku_and_none_of_zero() {
        let e = |sku: &str, delta, at: &str| Compacted {
            sku: sku.to_string(),
            delta,
            at: at.to_string(),
            carried: false,
        };
        let entries = [
            e("B", 5, "2"),
            e("A", 10, "1"),
            e("A", -3, "3"),
            e("C", 4, "1"),
            e("C", -4, "2"),
            Compacted {
                carried: true,
                ..e("A", 1, "0")
            },
        ];
        let sums = carried_sums(&entries);
        let s = |sku: &str, sum, at: &str| Carried {
            sku: sku.to_string(),
            sum,
            at: at.to_string(),
        };
        assert_eq!(sums, [s("A", 8, "3"), s("B", 5, "2")]);
        let mut p = Pruned::default();
        p.count_ledger(&entries);
        assert_eq!(
            p.ledger_entries, 5,
            "the earlier carried entry is not counted again"
        );
        assert_eq!(p.ledger_skus.len(), 3);
    }
}
