//! Time as the history keeps it: an instant in UTC ([`Timestamp`]), written
//! as RFC 3339 with milliseconds and `Z` (`2026-11-25T22:14:03.120Z`). Every
//! time the databases store is this text, so that times compare as text in
//! SQL (`at < before`) and read the same on every backend; the one place
//! that writes it is here.

use std::fmt;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};

/// An instant, to the millisecond (what the stored text can hold: two
/// timestamps are equal exactly when their texts are).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// The clock now.
    pub fn now() -> Timestamp {
        Timestamp::from(Utc::now())
    }

    /// An RFC 3339 date-time with any offset, as UTC; `None` for anything
    /// else. Digits past the millisecond are dropped, as the text drops them.
    pub fn parse(s: &str) -> Option<Timestamp> {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| Timestamp::from(t.with_timezone(&Utc)))
    }

    /// The text the history stores: RFC 3339, UTC, milliseconds, `Z`.
    pub fn to_rfc3339(&self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }
}

impl From<DateTime<Utc>> for Timestamp {
    /// Cut to the millisecond: formatting cuts (never rounds) too, so the
    /// text is the one the full instant would give.
    fn from(t: DateTime<Utc>) -> Timestamp {
        Timestamp(t.trunc_subsecs(3))
    }
}

/// A timestamp is its stored text.
impl PartialEq<&str> for Timestamp {
    fn eq(&self, text: &&str) -> bool {
        self.to_rfc3339() == *text
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// The clock now, as the history writes times (see [`Timestamp`]): for
/// texts that are not stored through the store's signatures (log lines, a
/// run's summary).
pub fn now_rfc3339() -> String {
    Timestamp::now().to_rfc3339()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_is_utc_with_milliseconds_and_z_as_stored_before() {
        let t = Timestamp::parse("2026-11-25T23:14:03.1209+01:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-25T22:14:03.120Z");
        assert_eq!(t.to_string(), t.to_rfc3339());
        let whole = Timestamp::parse("2026-01-01T00:00:00Z").unwrap();
        assert_eq!(whole.to_string(), "2026-01-01T00:00:00.000Z");
        assert_eq!(Timestamp::parse("2026-01-01"), None);
    }

    #[test]
    fn now_reads_as_the_old_format_and_round_trips() {
        let full = Utc::now();
        let old = full.to_rfc3339_opts(SecondsFormat::Millis, true);
        let t = Timestamp::from(full);
        assert_eq!(t.to_rfc3339(), old, "cut, never rounded");
        assert_eq!(Timestamp::parse(&old), Some(t));
        let text = now_rfc3339();
        assert!(text.ends_with('Z') && text.len() == 24, "{text}");
    }

    #[test]
    fn order_follows_the_text() {
        let a = Timestamp::parse("2026-02-01T00:00:00.000Z").unwrap();
        let b = Timestamp::parse("2026-02-01T00:00:00.001Z").unwrap();
        assert!(a < b && a.to_string() < b.to_string());
    }
}
