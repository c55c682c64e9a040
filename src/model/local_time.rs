//! Wall-clock times and the zone they were written in (`--timezone`). A shop
//! that writes `placed_at` as `2026-11-25 08:02:11`, and a spreadsheet date
//! cell, give a time of day without the offset an instant needs; the zone
//! gives it, and says when that time of day never happened there (the
//! clocks went forward over it) or happened twice (they went back), which
//! no guess may paper over. The zone database is compiled in (chrono-tz),
//! so the answer is the same on every host, whatever tzdata it has.

use std::fmt;

use chrono::{LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone};
use chrono_tz::Tz;

use super::rfc3339::LocalDateTime;

/// An IANA time zone (`Europe/Berlin`), as `--timezone` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zone(Tz);

/// A zone name that is not one: what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown time zone {given:?}: {}", match .closest {
    Some(z) => format!("did you mean {z}? "),
    None => String::new(),
} + "give an IANA name such as Europe/Berlin, America/New_York or UTC")]
pub struct UnknownZone {
    pub given: String,
    pub closest: Option<&'static str>,
}

impl Zone {
    /// The zone of an IANA name, in any case (`europe/berlin` is `Europe/Berlin`).
    pub fn parse(name: &str) -> Result<Zone, UnknownZone> {
        let name = name.trim();
        if let Some(tz) = chrono_tz::TZ_VARIANTS
            .iter()
            .find(|tz| tz.name().eq_ignore_ascii_case(name))
        {
            return Ok(Zone(*tz));
        }
        let wanted = name.to_ascii_lowercase();
        let closest = chrono_tz::TZ_VARIANTS
            .iter()
            .map(|tz| {
                let score = strsim::jaro_winkler(&wanted, &tz.name().to_ascii_lowercase());
                (score, tz.name())
            })
            .filter(|(score, _)| *score >= 0.9)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, n)| n);
        Err(UnknownZone {
            given: name.to_string(),
            closest,
        })
    }

    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// The instant of a wall-clock time in this zone, and the offset it had.
    pub fn resolve(&self, t: &LocalDateTime) -> Result<Resolved, LocalTimeError> {
        let naive = naive(t).ok_or(LocalTimeError::OutOfRange)?;
        match self.0.from_local_datetime(&naive) {
            LocalResult::Single(at) => Ok(Resolved {
                instant: (at.timestamp(), t.nanos),
                offset: offset_text(at.offset().fix().local_minus_utc()),
            }),
            LocalResult::Ambiguous(first, second) => Err(LocalTimeError::Repeated {
                zone: self.name(),
                first: offset_text(first.offset().fix().local_minus_utc()),
                second: offset_text(second.offset().fix().local_minus_utc()),
            }),
            LocalResult::None => {
                let (from, to) = self.gap_around(&naive);
                Err(LocalTimeError::Skipped {
                    zone: self.name(),
                    from,
                    to,
                })
            }
        }
    }

    /// The wall-clock times the clocks jumped between over a skipped time:
    /// the offset a day before and a day after, and the first second with
    /// the later one (no zone changes its offset twice in two days).
    fn gap_around(&self, naive: &NaiveDateTime) -> (String, String) {
        let offset_at = |utc: i64| {
            self.0
                .offset_from_utc_datetime(
                    &chrono::DateTime::from_timestamp(utc, 0)
                        .unwrap_or_default()
                        .naive_utc(),
                )
                .fix()
                .local_minus_utc()
        };
        let day = 86_400;
        let mid = naive.and_utc().timestamp();
        let (mut lo, mut hi) = (mid - day, mid + day);
        let (before, after) = (offset_at(lo), offset_at(hi));
        while hi - lo > 1 {
            let m = lo + (hi - lo) / 2;
            if offset_at(m) == before {
                lo = m;
            } else {
                hi = m;
            }
        }
        let clock = |secs: i64| {
            let s = secs.rem_euclid(day);
            match s % 60 {
                0 => format!("{:02}:{:02}", s / 3600, s % 3600 / 60),
                r => format!("{:02}:{:02}:{r:02}", s / 3600, s % 3600 / 60),
            }
        };
        (clock(hi + i64::from(before)), clock(hi + i64::from(after)))
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// By name: the zone travels with the orders through the spool.
impl serde::Serialize for Zone {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Zone {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Zone, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Zone::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// A wall-clock time placed in its zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Unix seconds and nanoseconds, as `rfc3339::parse` gives them.
    pub instant: (i64, u32),
    /// The offset there and then, as RFC 3339 writes it (`+01:00`).
    pub offset: String,
}

/// Why a wall-clock time has no one instant; each says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalTimeError {
    #[error("has no offset: pass --timezone ZONE (the zone the shop writes its times in, e.g. --timezone Europe/Berlin) to read it as local time there, or write it with its offset, e.g. 2026-11-25T08:02:11+01:00")]
    NoZone,
    #[error("does not exist in {zone}: the clocks went forward from {from} to {to} there (daylight saving time); write it with the offset the shop meant")]
    Skipped {
        zone: &'static str,
        from: String,
        to: String,
    },
    #[error("happened twice in {zone}, at {first} and again at {second} when the clocks went back (daylight saving time); write it with the offset the shop meant")]
    Repeated {
        zone: &'static str,
        first: String,
        second: String,
    },
    #[error("is outside the dates a time zone knows")]
    OutOfRange,
}

fn naive(t: &LocalDateTime) -> Option<NaiveDateTime> {
    NaiveDate::from_ymd_opt(t.year, t.month, t.day)?.and_hms_opt(t.hour, t.minute, t.second)
}

/// `+01:00`, `-03:30`, `+00:00`: an offset as RFC 3339 writes it.
pub fn offset_text(seconds_east: i32) -> String {
    let sign = if seconds_east < 0 { '-' } else { '+' };
    let m = seconds_east.unsigned_abs() / 60;
    format!("{sign}{:02}:{:02}", m / 60, m % 60)
}

/// A wall-clock time written as RFC 3339 shows one, without the offset:
/// `2026-11-25T08:02:11` (and the fraction of a second, when there is one).
pub fn local_text(t: &LocalDateTime) -> String {
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    );
    if t.nanos > 0 {
        let frac = format!("{:09}", t.nanos);
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::rfc3339::{parse, parse_local};

    fn berlin() -> Zone {
        Zone::parse("Europe/Berlin").unwrap()
    }

    fn at(text: &str) -> Result<Resolved, LocalTimeError> {
        berlin().resolve(&parse_local(text).unwrap())
    }

    #[test]
    fn a_wall_clock_time_gets_the_offset_of_its_zone_then() {
        let winter = at("2026-11-25 08:02:11").unwrap();
        assert_eq!(winter.offset, "+01:00");
        assert_eq!(
            Some(winter.instant),
            parse("2026-11-25T08:02:11+01:00"),
            "the same instant"
        );
        let summer = at("2026-07-01T12:00:00.5").unwrap();
        assert_eq!(summer.offset, "+02:00");
        assert_eq!(Some(summer.instant), parse("2026-07-01T10:00:00.5Z"));
        let utc = Zone::parse("utc").unwrap();
        assert_eq!(utc.name(), "UTC");
        let t = parse_local("2026-03-29 02:30:00").unwrap();
        assert_eq!(utc.resolve(&t).unwrap().offset, "+00:00");
    }

    #[test]
    fn skipped_and_repeated_times_of_2026_are_named() {
        // 29 March 2026: 02:00 became 03:00 in Berlin.
        assert_eq!(
            at("2026-03-29 02:30:00"),
            Err(LocalTimeError::Skipped {
                zone: "Europe/Berlin",
                from: "02:00".into(),
                to: "03:00".into()
            })
        );
        assert_eq!(at("2026-03-29 01:59:59").unwrap().offset, "+01:00");
        assert_eq!(at("2026-03-29 03:00:00").unwrap().offset, "+02:00");
        // 25 October 2026: 03:00 became 02:00 again.
        let e = at("2026-10-25 02:30:00").unwrap_err();
        assert_eq!(
            e,
            LocalTimeError::Repeated {
                zone: "Europe/Berlin",
                first: "+02:00".into(),
                second: "+01:00".into()
            }
        );
        assert!(e.to_string().contains("happened twice in Europe/Berlin"));
        assert_eq!(at("2026-10-25 03:00:00").unwrap().offset, "+01:00");
    }

    #[test]
    fn zone_names_are_iana_names_and_a_typo_gets_a_suggestion() {
        assert_eq!(Zone::parse(" europe/berlin ").unwrap(), berlin());
        let e = Zone::parse("Europe/Berln").unwrap_err();
        assert_eq!(e.closest, Some("Europe/Berlin"));
        assert!(e.to_string().contains("did you mean Europe/Berlin?"), "{e}");
        let e = Zone::parse("CEST-ish").unwrap_err().to_string();
        assert!(e.contains("IANA name"), "{e}");
        let back: Zone = serde_json::from_str(&serde_json::to_string(&berlin()).unwrap()).unwrap();
        assert_eq!(back, berlin());
    }

    #[test]
    fn offsets_and_local_times_as_rfc_3339_writes_them() {
        assert_eq!(offset_text(3600), "+01:00");
        assert_eq!(offset_text(-12_600), "-03:30");
        assert_eq!(offset_text(0), "+00:00");
        let t = parse_local("2026-11-25 08:02:11.250").unwrap();
        assert_eq!(local_text(&t), "2026-11-25T08:02:11.25");
    }
}
