//! The life of a stored failed order: which records are open (retried by
//! `reprocess`, listed by `failures list`) and how they stop being open.
//! This is the one definition of the rule; the stores only store the state.

use super::ErrorCode;

/// Where a stored failure stands.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[strum(serialize_all = "snake_case")]
pub enum FailureState {
    /// Waiting to be fixed or retried.
    Open,
    /// A later run accepted (or skipped) the order.
    Resolved,
    /// The order failed again in a later run (whose record is the open one),
    /// or a reprocess retried this record.
    Superseded,
    /// Closed by hand (`failures close`): it will not be retried.
    Closed,
    /// Never open: nothing can come of retrying it.
    Final,
}

impl FailureState {
    pub const ALL: [FailureState; 5] = [
        FailureState::Open,
        FailureState::Resolved,
        FailureState::Superseded,
        FailureState::Closed,
        FailureState::Final,
    ];

    /// A new record is open unless a retry cannot help: a record that could
    /// not be parsed has no order_id (the same text fails the same way: fix
    /// the file), and a duplicate is not an order of its own (its earlier
    /// appearance is, and that one is retried if it failed).
    pub fn initial(code: ErrorCode, order_id: Option<&str>) -> FailureState {
        if order_id.is_none() || code == ErrorCode::DuplicateInInput {
            FailureState::Final
        } else {
            FailureState::Open
        }
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn parse(s: &str) -> Option<FailureState> {
        s.parse().ok()
    }
}

/// A stored failure as reports name it: the run that failed the order and
/// the order's position in that run. The same on every backend (database ids
/// are not: PostgreSQL never hands out a rolled-back id again).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct FailureKey {
    pub run: i64,
    pub seq: u64,
}

/// `F<run>-<seq>` (`F12-345`): a form no spreadsheet turns into a number or a date.
pub fn failure_label(key: FailureKey) -> String {
    format!("F{}-{}", key.run, key.seq)
}

/// The key of a `failure_id` cell (`F12-345`); `None` for anything else.
pub fn parse_failure_label(s: &str) -> Option<FailureKey> {
    let rest = s.strip_prefix(['F', 'f'])?;
    let (run, seq) = rest.split_once('-')?;
    let number = |d: &str| {
        (!d.is_empty() && d.len() <= 18 && d.bytes().all(|b| b.is_ascii_digit()))
            .then(|| d.parse::<i64>().ok())
            .flatten()
            .filter(|n| *n > 0)
    };
    Some(FailureKey {
        run: number(run)?,
        seq: u64::try_from(number(seq)?).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_orders_with_an_id_that_are_not_duplicates_start_open() {
        for code in ErrorCode::ALL {
            let s = FailureState::initial(code, Some("A-1"));
            let expect = if code == ErrorCode::DuplicateInInput {
                FailureState::Final
            } else {
                FailureState::Open
            };
            assert_eq!(s, expect, "{code}");
            assert_eq!(FailureState::initial(code, None), FailureState::Final);
        }
        for s in FailureState::ALL {
            assert_eq!(FailureState::parse(s.as_str()), Some(s));
        }
        assert_eq!(
            &FailureState::ALL[..],
            <FailureState as strum::VariantArray>::VARIANTS
        );
        assert_eq!(FailureState::Superseded.as_str(), "superseded");
    }

    #[test]
    fn labels_round_trip_and_reject_what_is_not_one() {
        let key = FailureKey { run: 12, seq: 345 };
        assert_eq!(failure_label(key), "F12-345");
        assert_eq!(parse_failure_label("F12-345"), Some(key));
        assert_eq!(parse_failure_label("f12-345"), Some(key));
        for bad in [
            "", "F", "42", "F42", "F-1", "F0-1", "F1-0", "F1-", "F1.0-2", "F 1-2", "F1-2-3",
            "G1-2", "F1e3-1",
        ] {
            assert_eq!(parse_failure_label(bad), None, "{bad}");
        }
    }
}
