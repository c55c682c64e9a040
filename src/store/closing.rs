//! Closing failures by hand (`failures close`): which ones (by key, by code,
//! by order id), decided in one transaction that holds them, all or
//! nothing. The backends give the locked reads and the update; the decision
//! is made here, once, for both.

use std::collections::{HashMap, HashSet};

use super::{FailureFilter, Result, StoredFailure, Tx};
use crate::model::clock::Timestamp;
use crate::model::failure::{FailureKey, FailureState};

/// Which failures to close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseSelection {
    /// These failures; each must be open.
    Keys(Vec<FailureKey>),
    /// Every failure open now of these codes (of one run, or of all); none
    /// being open is no error.
    Codes(FailureFilter),
    /// The open failure of each of these order ids, whichever run holds it
    /// now; each must have one.
    Orders(Vec<String>),
}

/// What became of a request to close one failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseResult {
    Closed,
    /// The record exists but is not open (its state says why).
    NotOpen(FailureState),
    Missing,
}

/// An order's newest failure, and its state.
pub type Newest = (FailureKey, FailureState);

/// What a close found and did: every failure closed, or none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Closing {
    /// Each failure named or found, in the order named (by key otherwise),
    /// with what became of it.
    pub results: Vec<(FailureKey, CloseResult)>,
    /// Order ids given that have no open failure, each with its newest
    /// failure and that one's state (`None`: the order never failed).
    pub without_open: Vec<(String, Option<Newest>)>,
    /// Failures found superseded, each with the newest failure of its order
    /// (the one that replaced it, or a later one) and that one's state.
    pub replaced_by: Vec<(FailureKey, FailureKey, FailureState)>,
}

impl Closing {
    /// Whether the failures were closed (all of them; it may be none).
    pub fn closed(&self) -> bool {
        self.without_open.is_empty() && self.results.iter().all(|(_, r)| *r == CloseResult::Closed)
    }
}

impl CloseResult {
    /// What closing these ids, in order, does to failures in these states
    /// (an id without a state does not exist): only an open failure is
    /// closed, once; the same id again finds it closed. All or nothing: when
    /// one id cannot be closed, none is. Returns each id's result and the
    /// ids to close.
    pub fn plan<K: Copy + Eq + std::hash::Hash>(
        ids: &[K],
        states: &HashMap<K, FailureState>,
    ) -> (Vec<(K, CloseResult)>, Vec<K>) {
        let mut closing = Vec::new();
        let results = ids
            .iter()
            .map(|id| {
                let res = match states.get(id) {
                    None => CloseResult::Missing,
                    Some(_) if closing.contains(id) => CloseResult::NotOpen(FailureState::Closed),
                    Some(FailureState::Open) => {
                        closing.push(*id);
                        CloseResult::Closed
                    }
                    Some(other) => CloseResult::NotOpen(*other),
                };
                (*id, res)
            })
            .collect::<Vec<_>>();
        if results.iter().any(|(_, r)| *r != CloseResult::Closed) {
            closing.clear();
        }
        (results, closing)
    }
}

/// Close the failures `sel` selects, all or nothing, in one transaction
/// that holds them first: a run holding one is waited for, and what it
/// settled is seen (a failure it resolved makes the close change nothing).
pub(super) fn close_in(
    mut tx: Box<dyn Tx + '_>,
    sel: &CloseSelection,
    reason: &str,
    by: &str,
    at: Timestamp,
) -> Result<Closing> {
    let held = match sel {
        CloseSelection::Keys(keys) => tx.hold_failures(keys)?,
        CloseSelection::Codes(filter) => tx.hold_open(filter, &[])?,
        CloseSelection::Orders(ids) => hold_of_orders(&mut *tx, ids)?,
    };
    let keys: Vec<FailureKey> = match sel {
        CloseSelection::Keys(keys) => keys.clone(),
        _ => held.iter().map(StoredFailure::key).collect(),
    };
    let states = held.iter().map(|f| (f.key(), f.state)).collect();
    let (results, closing) = CloseResult::plan(&keys, &states);
    let mut out = Closing {
        results,
        ..Closing::default()
    };
    if let CloseSelection::Orders(ids) = sel {
        out.without_open = without_open(&mut *tx, ids, &held)?;
    }
    out.replaced_by = replaced(&mut *tx, &held)?;
    if out.closed() {
        let ids: Vec<i64> = held
            .iter()
            .filter(|f| closing.contains(&f.key()))
            .map(|f| f.id)
            .collect();
        tx.close(&ids, reason, by, at)?;
        tx.commit()?;
    }
    Ok(out)
}

/// The order ids of `ids` that none of `held` is a failure of.
fn not_held(ids: &[String], held: &[StoredFailure]) -> Vec<String> {
    let found: HashSet<&str> = held
        .iter()
        .filter_map(|f| f.order.order_id.as_deref())
        .collect();
    ids.iter()
        .filter(|id| !found.contains(id.as_str()))
        .cloned()
        .collect()
}

/// The open failures of these order ids, held. An order whose open failure
/// a run committed while this waited for the old one (a retry that failed
/// it again) is looked for once more, and held now.
fn hold_of_orders(tx: &mut dyn Tx, ids: &[String]) -> Result<Vec<StoredFailure>> {
    let mut held = tx.hold_open(&FailureFilter::default(), ids)?;
    let later = not_held(ids, &held);
    if !later.is_empty() {
        held.extend(tx.hold_open(&FailureFilter::default(), &later)?);
    }
    held.sort_by_key(StoredFailure::key);
    Ok(held)
}

/// The order ids with no open failure, each with its newest failure.
fn without_open(
    tx: &mut dyn Tx,
    ids: &[String],
    held: &[StoredFailure],
) -> Result<Vec<(String, Option<Newest>)>> {
    let missing = not_held(ids, held);
    let newest = newest_by_order(tx, &missing)?;
    Ok(missing
        .into_iter()
        .map(|id| {
            let n = newest.get(&id).copied();
            (id, n)
        })
        .collect())
}

/// The superseded failures among `held`, each with the newest failure of
/// its order and that one's state.
fn replaced(
    tx: &mut dyn Tx,
    held: &[StoredFailure],
) -> Result<Vec<(FailureKey, FailureKey, FailureState)>> {
    let superseded: Vec<&StoredFailure> = held
        .iter()
        .filter(|f| f.state == FailureState::Superseded)
        .collect();
    let orders: Vec<String> = superseded
        .iter()
        .filter_map(|f| f.order.order_id.clone())
        .collect();
    let newest = newest_by_order(tx, &orders)?;
    Ok(superseded
        .iter()
        .filter_map(|f| {
            let (key, state) = newest.get(f.order.order_id.as_deref()?)?;
            (*key != f.key()).then_some((f.key(), *key, *state))
        })
        .collect())
}

/// The newest failure of each order id, with its state.
fn newest_by_order(
    tx: &mut dyn Tx,
    order_ids: &[String],
) -> Result<HashMap<String, (FailureKey, FailureState)>> {
    if order_ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(tx
        .newest_failures(order_ids)?
        .into_iter()
        .filter_map(|f| Some((f.order.order_id.clone()?, (f.key(), f.state))))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_open_failures_are_closed_and_each_once() {
        let states = [
            (1, FailureState::Open),
            (2, FailureState::Resolved),
            (3, FailureState::Open),
        ]
        .into_iter()
        .collect();
        let (results, closing) = CloseResult::plan(&[1, 2, 3, 1, 4], &states);
        assert_eq!(
            results,
            vec![
                (1, CloseResult::Closed),
                (2, CloseResult::NotOpen(FailureState::Resolved)),
                (3, CloseResult::Closed),
                (1, CloseResult::NotOpen(FailureState::Closed)),
                (4, CloseResult::Missing),
            ]
        );
        assert!(closing.is_empty(), "all or nothing");
        let (results, closing) = CloseResult::plan(&[3, 1], &states);
        assert!(results.iter().all(|(_, r)| *r == CloseResult::Closed));
        assert_eq!(closing, vec![3, 1]);
    }
}
