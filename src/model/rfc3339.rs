//! RFC 3339 date-times (section 5.6 grammar, section 5.7 restrictions), parsed strictly. Pure, no I/O.
//!
//! Kept rather than the `time` crate's `Rfc3339` or `jiff`, tried on the 45
//! inputs of this file's tests and edge cases: `time` differs on 13, the 12
//! leap seconds, which it turns into `23:59:59.999999999` (so `:60` and
//! `:59.999999999`, or `:60` and `:60.5`, become one instant and one content
//! hash), and a space for the `T`, which it takes and the grammar does not;
//! `jiff` differs on 19 (leap seconds read as `:59` and taken on any day,
//! `+24:00`, a space and six-digit years taken; the end of 9999-12-31 and
//! ten fraction digits refused).

const SECS_PER_DAY: i64 = 86_400;
const NANOS_PER_SEC: u32 = 1_000_000_000;

/// The instant of an RFC 3339 date-time: Unix seconds and nanoseconds.
/// A leap second (`23:59:60` in UTC) is the last second of the day with nanos >= 1_000_000_000.
///
/// Returns `None` for anything that is not exactly `date-time` of RFC 3339 §5.6 or that breaks a
/// §5.7 restriction (day of month, hour, minute, second, leap-second placement).
pub fn parse(s: &str) -> Option<(i64, u32)> {
    // Work on bytes: every valid character is ASCII, so any byte of a multi-byte character
    // simply fails to match, and no `str` slicing can land inside a character.
    let mut cur = Cursor { rest: s.as_bytes() };
    let date = full_date(&mut cur)?;
    // §5.6 NOTE: "T" may be lower case. A space is only an application choice, not grammar.
    cur.byte_in(b"Tt")?;
    let time = partial_time(&mut cur)?;
    let offset = time_offset(&mut cur)?;
    if !cur.rest.is_empty() {
        return None;
    }
    instant(&date, &time, offset)
}

/// A date-time written without an offset (`2026-11-25T08:02:11`, or with a
/// space for the `T` as shops write it): a wall-clock time, whose instant
/// only a time zone can give (see `model::local_time`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalDateTime {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub nanos: u32,
}

/// A date-time of RFC 3339's grammar without its `time-offset`, the `T`
/// also written as a space; `None` for anything else. A leap second is not
/// one: where it falls depends on the offset this text does not have.
pub fn parse_local(s: &str) -> Option<LocalDateTime> {
    let mut cur = Cursor { rest: s.as_bytes() };
    let date = full_date(&mut cur)?;
    cur.byte_in(b"Tt ")?;
    let time = partial_time(&mut cur)?;
    if !cur.rest.is_empty() || time.second == 60 {
        return None;
    }
    Some(LocalDateTime {
        year: i32::try_from(date.year).ok()?,
        month: date.month,
        day: date.day,
        hour: time.hour,
        minute: time.minute,
        second: time.second,
        nanos: time.nanos,
    })
}

/// A calendar date whose fields have already been range-checked.
struct Date {
    year: i64,
    month: u32,
    day: u32,
}

/// A local time of day; `second` may be 60 until `instant` has checked the leap-second rule.
struct Time {
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
}

/// The unread tail of the input. Methods consume only on success, so the optional
/// `time-secfrac` can be probed without backtracking.
struct Cursor<'a> {
    rest: &'a [u8],
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// Consumes one byte if it is one of `allowed`.
    fn byte_in(&mut self, allowed: &[u8]) -> Option<u8> {
        let (&b, rest) = self.rest.split_first()?;
        if !allowed.contains(&b) {
            return None;
        }
        self.rest = rest;
        Some(b)
    }

    /// Consumes one ASCII digit (never a Unicode digit: ABNF `DIGIT` is %x30-39).
    fn digit(&mut self) -> Option<u32> {
        let (&b, rest) = self.rest.split_first()?;
        if !b.is_ascii_digit() {
            return None;
        }
        self.rest = rest;
        Some(u32::from(b - b'0'))
    }

    /// Exactly `count` digits as a number; `count` is at most 4 here, so no overflow.
    fn number(&mut self, count: usize) -> Option<u32> {
        (0..count).try_fold(0, |acc, _| Some(acc * 10 + self.digit()?))
    }

    /// Exactly `count` digits whose value lies in `min..=max`.
    fn ranged(&mut self, count: usize, min: u32, max: u32) -> Option<u32> {
        let value = self.number(count)?;
        (min..=max).contains(&value).then_some(value)
    }
}

/// `full-date = date-fullyear "-" date-month "-" date-mday`, with the §5.7 day limits.
fn full_date(cur: &mut Cursor<'_>) -> Option<Date> {
    let year = cur.number(4)?;
    cur.byte_in(b"-")?;
    let month = cur.ranged(2, 1, 12)?;
    cur.byte_in(b"-")?;
    let day = cur.ranged(2, 1, days_in_month(year, month))?;
    Some(Date {
        year: i64::from(year),
        month,
        day,
    })
}

/// `partial-time = time-hour ":" time-minute ":" time-second [time-secfrac]`.
fn partial_time(cur: &mut Cursor<'_>) -> Option<Time> {
    let hour = cur.ranged(2, 0, 23)?;
    cur.byte_in(b":")?;
    let minute = cur.ranged(2, 0, 59)?;
    cur.byte_in(b":")?;
    // 60 is let through here; whether it is a real leap-second slot depends on the offset.
    let second = cur.ranged(2, 0, 60)?;
    let nanos = if cur.peek() == Some(b'.') {
        time_secfrac(cur)?
    } else {
        0
    };
    Some(Time {
        hour,
        minute,
        second,
        nanos,
    })
}

/// `time-secfrac = "." 1*DIGIT`: the first nine digits give the nanoseconds; later digits
/// must still be digits but are truncated (rounding could carry into the seconds).
fn time_secfrac(cur: &mut Cursor<'_>) -> Option<u32> {
    cur.byte_in(b".")?;
    let mut nanos = 0;
    let mut scale = NANOS_PER_SEC;
    let mut count = 0_usize;
    while let Some(digit) = cur.digit() {
        if scale > 1 {
            scale /= 10;
            nanos += digit * scale;
        }
        count += 1;
    }
    (count > 0).then_some(nanos)
}

/// `time-offset = "Z" / time-numoffset`, as seconds east of UTC. `-00:00` (§4.3, unknown
/// local offset) names the same instant as `Z`, and the return type cannot carry the
/// "unknown" flag, so it is simply 0.
fn time_offset(cur: &mut Cursor<'_>) -> Option<i64> {
    let sign = match cur.byte_in(b"Zz+-")? {
        b'Z' | b'z' => return Some(0),
        b'+' => 1,
        _ => -1,
    };
    let hour = cur.ranged(2, 0, 23)?;
    cur.byte_in(b":")?;
    let minute = cur.ranged(2, 0, 59)?;
    Some(sign * (i64::from(hour) * 3_600 + i64::from(minute) * 60))
}

/// Combines the parts into Unix (seconds, nanos), enforcing the leap-second rule.
fn instant(date: &Date, time: &Time, offset: i64) -> Option<(i64, u32)> {
    let leap = time.second == 60;
    // A leap second shares the Unix second of :59 and carries nanos >= 1e9, which keeps
    // (seconds, nanos) ordered: 23:59:59.9 < 23:59:60.0 < 00:00:00.0 of the next day.
    let second = time.second.min(59);
    let local = days_from_civil(date) * SECS_PER_DAY
        + i64::from(time.hour) * 3_600
        + i64::from(time.minute) * 60
        + i64::from(second);
    let utc = local - offset;
    if !leap {
        return Some((utc, time.nanos));
    }
    is_leap_second_slot(utc).then_some((utc, time.nanos + NANOS_PER_SEC))
}

/// §5.7: a leap second happens only at the end of a month, and "in time zones other than Z
/// the leap second point is shifted by the zone offset", i.e. it is always 23:59:60 UTC on a
/// month's last day. `utc_59` is the Unix second of the 23:59:59 that it follows.
fn is_leap_second_slot(utc_59: i64) -> bool {
    let day = utc_59.div_euclid(SECS_PER_DAY);
    let last_second_of_day = utc_59.rem_euclid(SECS_PER_DAY) == SECS_PER_DAY - 1;
    // The UTC day may differ from the written one by the offset, even cross a month or year
    // (or reach year -1 from 0000-01-01), so it is recomputed rather than taken from the text.
    last_second_of_day && day_of_month(day + 1) == 1
}

/// Gregorian leap year, as in RFC 3339 Appendix C.
fn is_leap_year(year: u32) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

/// The §5.7 table of maximum `date-mday` values. `month` is already 1..=12.
fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 in the proleptic Gregorian calendar (Howard Hinnant's
/// `days_from_civil`), with Euclidean division so it is exact for any year, including 0000.
fn days_from_civil(date: &Date) -> i64 {
    // Count years from March so the leap day is the last day of the "year".
    let year = if date.month <= 2 {
        date.year - 1
    } else {
        date.year
    };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let march_based_month = (i64::from(date.month) + 9) % 12;
    let day_of_year = (153 * march_based_month + 2) / 5 + i64::from(date.day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Day of month (1..=31) of a day counted from 1970-01-01: the day part of Hinnant's
/// `civil_from_days`, valid for any `i64` day that does not overflow the shift below.
fn day_of_month(days: i64) -> i64 {
    let day_of_era = (days + 719_468).rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let march_based_month = (5 * day_of_year + 2) / 153;
    day_of_year - (153 * march_based_month + 2) / 5 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEAP: u32 = NANOS_PER_SEC;

    // Expected instants below come from outside this file: `date -u -d <text> +%s` (GNU
    // coreutils), cross-checked with Python's `datetime(...).timestamp()`, plus well-known
    // values such as 0000-01-01T00:00:00Z = -62167219200 and 9999-12-31T23:59:59Z = 253402300799.

    #[test]
    fn rfc_5_8_examples() {
        // 1985-04-12T23:20:50Z = 482196050.
        assert_eq!(
            parse("1985-04-12T23:20:50.52Z"),
            Some((482_196_050, 520_000_000))
        );
        // Given by the RFC as 1996-12-20T00:39:57Z; `date` gives 851042397 for both.
        assert_eq!(parse("1996-12-19T16:39:57-08:00"), Some((851_042_397, 0)));
        // 1990-12-31T23:59:59Z = 662687999 (1991-01-01T00:00:00Z = 662688000).
        assert_eq!(parse("1990-12-31T23:59:60Z"), Some((662_687_999, LEAP)));
        assert_eq!(
            parse("1990-12-31T15:59:60-08:00"),
            Some((662_687_999, LEAP))
        );
        // +00:20 means UTC 1937-01-01T11:40:27.87, and 1937-01-01T11:40:27Z = -1041337173.
        assert_eq!(
            parse("1937-01-01T12:00:27.87+00:20"),
            Some((-1_041_337_173, 870_000_000))
        );
    }

    #[test]
    fn rfc_5_8_equivalences() {
        assert_eq!(
            parse("1996-12-20T00:39:57Z"),
            parse("1996-12-19T16:39:57-08:00")
        );
        assert_eq!(
            parse("1990-12-31T23:59:60Z"),
            parse("1990-12-31T15:59:60-08:00")
        );
    }

    #[test]
    fn lower_case_t_and_z() {
        let upper = parse("1985-04-12T23:20:50.52Z");
        assert!(upper.is_some());
        for s in [
            "1985-04-12t23:20:50.52Z",
            "1985-04-12T23:20:50.52z",
            "1985-04-12t23:20:50.52z",
        ] {
            assert_eq!(parse(s), upper, "{s}");
        }
    }

    #[test]
    fn minus_zero_offset_is_utc() {
        assert_eq!(
            parse("1985-04-12T23:20:50.52-00:00"),
            parse("1985-04-12T23:20:50.52Z")
        );
        assert_eq!(
            parse("1985-04-12T23:20:50.52+00:00"),
            parse("1985-04-12T23:20:50.52Z")
        );
        assert_eq!(
            parse("1990-12-31T23:59:60-00:00"),
            Some((662_687_999, LEAP))
        );
    }

    #[test]
    fn february_29() {
        assert_eq!(parse("2000-02-29T00:00:00Z"), Some((951_782_400, 0)));
        assert_eq!(parse("2024-02-29T12:00:00Z"), Some((1_709_208_000, 0)));
        assert_eq!(parse("0000-02-29T00:00:00Z"), Some((-62_162_121_600, 0)));
        assert_eq!(parse("2400-02-29T00:00:00Z").map(|t| t.0 % 86_400), Some(0));
        for s in [
            "1900-02-29T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2100-02-29T00:00:00Z",
            "2000-02-30T00:00:00Z",
        ] {
            assert_eq!(parse(s), None, "{s}");
        }
        // The day after a non-leap Feb 28 is Mar 1: 1900-03-01T00:00:00Z = -2203891200.
        assert_eq!(parse("1900-02-28T00:00:00Z"), Some((-2_203_977_600, 0)));
        assert_eq!(parse("1900-03-01T00:00:00Z"), Some((-2_203_891_200, 0)));
    }

    #[test]
    fn thirty_day_months_have_no_31st() {
        for month in ["04", "06", "09", "11"] {
            assert!(parse(&format!("2021-{month}-30T00:00:00Z")).is_some());
            assert_eq!(
                parse(&format!("2021-{month}-31T00:00:00Z")),
                None,
                "{month}"
            );
        }
        for month in ["01", "03", "05", "07", "08", "10", "12"] {
            assert!(
                parse(&format!("2021-{month}-31T00:00:00Z")).is_some(),
                "{month}"
            );
        }
    }

    #[test]
    fn calendar_extremes_and_negative_times() {
        assert_eq!(parse("0000-01-01T00:00:00Z"), Some((-62_167_219_200, 0)));
        assert_eq!(parse("9999-12-31T23:59:59Z"), Some((253_402_300_799, 0)));
        assert_eq!(parse("9999-12-31T23:59:60Z"), Some((253_402_300_799, LEAP)));
        assert_eq!(parse("1970-01-01T00:00:00Z"), Some((0, 0)));
        assert_eq!(parse("1969-12-31T23:59:59.5Z"), Some((-1, 500_000_000)));
        // Offsets may move the instant outside 0000..=9999; the written fields are what count.
        assert_eq!(
            parse("0000-01-01T00:00:00+00:01"),
            Some((-62_167_219_260, 0))
        );
        assert_eq!(
            parse("9999-12-31T23:59:59-23:59"),
            Some((253_402_387_139, 0))
        );
    }

    #[test]
    fn offsets() {
        let utc = 482_196_050;
        assert_eq!(parse("1985-04-12T23:20:50+01:00"), Some((utc - 3_600, 0)));
        assert_eq!(parse("1985-04-12T23:20:50-01:30"), Some((utc + 5_400, 0)));
        assert_eq!(parse("1985-04-12T23:20:50+23:59"), Some((utc - 86_340, 0)));
        assert_eq!(parse("1985-04-12T23:20:50-23:59"), Some((utc + 86_340, 0)));
    }

    #[test]
    fn fractions() {
        let at = |frac: &str| parse(&format!("1985-04-12T23:20:50.{frac}Z")).map(|t| t.1);
        assert_eq!(at("1"), Some(100_000_000));
        assert_eq!(at("000000001"), Some(1));
        assert_eq!(at("123456789"), Some(123_456_789));
        assert_eq!(at("999999999"), Some(999_999_999));
        // Digits past the ninth are validated, then truncated (never rounded up).
        assert_eq!(at("1234567899999"), Some(123_456_789));
        assert_eq!(at(&"9".repeat(1_000)), Some(999_999_999));
        assert_eq!(at("12345678901x"), None);
        assert_eq!(at("0"), Some(0));
    }

    #[test]
    fn leap_seconds_accepted_only_at_utc_month_end() {
        // 1990-06-30T23:59:59Z = 646790399.
        assert_eq!(parse("1990-06-30T23:59:60Z"), Some((646_790_399, LEAP)));
        // Crossing into the next month and year locally is still the UTC month end.
        assert_eq!(
            parse("1991-01-01T00:59:60+01:00"),
            Some((662_687_999, LEAP))
        );
        assert_eq!(
            parse("1990-12-31T23:59:60.999999999Z"),
            Some((662_687_999, LEAP + 999_999_999))
        );
        // Any month end is accepted, not only June and December (see the module's rules).
        assert!(parse("2021-02-28T23:59:60Z").is_some());
        assert!(parse("2020-02-29T23:59:60Z").is_some());
        for s in [
            "2020-02-28T23:59:60Z",      // not the last day of a leap-year February
            "1990-12-30T23:59:60Z",      // not the last day of the month
            "1990-12-31T23:58:60Z",      // not the last minute
            "1990-12-31T22:59:60Z",      // not the last hour
            "1985-04-12T23:20:60Z",      // an ordinary time
            "1990-12-31T23:59:60+01:00", // 22:59:60 UTC
            "1990-12-31T15:59:60-07:00", // 22:59:60 UTC
            "1991-01-01T00:59:60-01:00", // 1991-01-01T01:59:60 UTC
            "1990-12-31T23:59:60+00:01", // 23:58:60 UTC
        ] {
            assert_eq!(parse(s), None, "{s}");
        }
    }

    #[test]
    fn leap_second_orders_between_neighbours() {
        let before = parse("1990-12-31T23:59:59.9Z");
        let leap = parse("1990-12-31T23:59:60.5Z");
        let after = parse("1991-01-01T00:00:00Z");
        assert!(before < leap && leap < after);
        assert_eq!(after, Some((662_688_000, 0)));
    }

    #[rustfmt::skip]
    const REJECTED: &[&str] = &[
        // empty, whitespace, extra characters
        "", " ", "T", "Z", "1985",
        " 1985-04-12T23:20:50Z", "1985-04-12T23:20:50Z ", "\t1985-04-12T23:20:50Z",
        "1985-04-12T23:20:50Z\n", "1985-04-12T23:20:50Z\0", "1985-04-12T23:20:50ZZ",
        "1985-04-12T23:20:50+01:00Z", "1985-04-12T23:20:50Z+01:00", "1985-04-12T23:20:50 Z",
        "1985-04-12T23:20:50+01:00[Europe/Paris]", "x1985-04-12T23:20:50Z",
        // separator between date and time
        "1985-04-12 23:20:50Z", "1985-04-1223:20:50Z", "1985-04-12_23:20:50Z",
        "1985-04-12TT23:20:50Z", "1985-04-12x23:20:50Z", "1985-04-12T 23:20:50Z",
        // other separators
        "1985/04/12T23:20:50Z", "1985-04-12T23.20.50Z", "1985-04-12T23-20-50Z",
        "19850412T232050Z", "1985-0412T23:20:50Z", "1985-04-12T2320:50Z",
        // missing parts
        "1985-04-12", "1985-04-12T", "1985-04-12T23:20Z", "1985-04-12T23:20:Z",
        "1985-04-12T23Z", "1985-04-12T23:20:50", "1985-04-12T23:20:50.52",
        "T23:20:50Z", "1985-04T23:20:50Z",
        // fraction
        "1985-04-12T23:20:50,52Z", "1985-04-12T23:20:50.Z", "1985-04-12T23:20:50.",
        "1985-04-12T23:20:50..5Z", "1985-04-12T23:20:50.5.5Z", "1985-04-12T23:20:50.-5Z",
        "1985-04-12T23:20:50.5e3Z", "1985-04-12T23:20:50.+01:00", "1985-04-12T23:20.5:50Z",
        "1985-04-12T23:20:50 .5Z",
        // numeric offsets
        "1985-04-12T23:20:50+0100", "1985-04-12T23:20:50+01", "1985-04-12T23:20:50+1:00",
        "1985-04-12T23:20:50+01:0", "1985-04-12T23:20:50+01:00:00", "1985-04-12T23:20:50+24:00",
        "1985-04-12T23:20:50-24:00", "1985-04-12T23:20:50+01:60", "1985-04-12T23:20:50+ 01:00",
        "1985-04-12T23:20:50\u{2212}01:00", "1985-04-12T23:20:50+01.00", "1985-04-12T23:20:50+",
        "1985-04-12T23:20:50+01:", "1985-04-12T23:20:50++01:00", "1985-04-12T23:20:50-+01:00",
        // named or military zones
        "1985-04-12T23:20:50UTC", "1985-04-12T23:20:50GMT", "1985-04-12T23:20:50A",
        "1985-04-12T23:20:50Y", "1985-04-12T23:20:50 UTC",
        // hour, minute, second ranges
        "1985-04-12T24:00:00Z", "1985-04-12T23:60:00Z", "1985-04-12T23:20:61Z",
        "1985-04-12T23:20:99Z", "1985-04-12T99:20:50Z",
        // digit counts and signs
        "985-04-12T23:20:50Z", "01985-04-12T23:20:50Z", "19850-04-12T23:20:50Z",
        "+1985-04-12T23:20:50Z", "-1985-04-12T23:20:50Z", "+01985-04-12T23:20:50Z",
        "-0001-01-01T00:00:00Z", "1985-4-12T23:20:50Z", "1985-04-2T23:20:50Z",
        "1985-004-12T23:20:50Z", "1985-04-012T23:20:50Z", "1985-04-12T3:20:50Z",
        "1985-04-12T23:2:50Z", "1985-04-12T23:20:5Z", "1985-04-12T023:20:50Z",
        "1985-04-12T23:20:050Z", "1985-+4-12T23:20:50Z", "1985-04-12T-1:20:50Z",
        // non-ASCII digits (Arabic-Indic, fullwidth)
        "\u{661}\u{669}\u{668}\u{665}-04-12T23:20:50Z", "\u{ff11}985-04-12T23:20:50Z",
        "1985-04-12T23:20:50.\u{ff15}Z", "1985-04-12T23:20:50+\u{ff10}1:00",
        // month and day ranges
        "1985-00-12T23:20:50Z", "1985-13-12T23:20:50Z", "1985-04-00T23:20:50Z",
        "1985-04-31T23:20:50Z", "1985-01-32T23:20:50Z", "1985-02-29T23:20:50Z",
        "1900-02-29T23:20:50Z", "2023-02-29T23:20:50Z", "1985-02-30T23:20:50Z",
        // lower case of anything other than t and z; other letters
        "1985-04-12T23:20:50Zulu", "1985-04-12X23:20:50Z",
    ];

    #[test]
    fn local_date_times_have_no_offset() {
        let t = parse_local("2026-11-25 08:02:11").unwrap();
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.minute, t.second, t.nanos),
            (2026, 11, 25, 8, 2, 11, 0)
        );
        assert_eq!(
            parse_local("2026-03-29T02:30:00.25").map(|t| t.nanos),
            Some(250_000_000)
        );
        for bad in [
            "2026-11-25T08:02:11Z",
            "2026-11-25 08:02:11+01:00",
            "2026-11-25",
            "2026-11-25 08:02",
            "2026-02-29 08:02:11",
            "2026-12-31 23:59:60",
            "25/11/2026 08:02:11",
            "2026-11-25  08:02:11",
        ] {
            assert_eq!(parse_local(bad), None, "{bad}");
        }
    }

    #[test]
    fn rejections() {
        for s in REJECTED {
            assert_eq!(parse(s), None, "accepted {s:?}");
        }
    }

    /// Month length by a different route from `days_in_month`: the year is a leap year when
    /// 29 February, counted via the cycle of 400 years, exists.
    fn reference_month_len(year: u32, month: u32) -> u32 {
        const LENGTHS: [u32; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        let leap = match (year % 400, year % 100, year % 4) {
            (0, _, _) => true,
            (_, 0, _) => false,
            (_, _, rem) => rem == 0,
        };
        let index = usize::try_from(month - 1).unwrap_or_default();
        LENGTHS[index] + u32::from(month == 2 && leap)
    }

    /// Walks every candidate day 01..=32 of every month of `years`, starting at the known
    /// instant `start` of January 1 and expecting exactly `end` for the following January 1.
    fn walk_years(years: std::ops::RangeInclusive<u32>, start: i64, end: i64) {
        let mut expected = start;
        for year in years {
            for month in 1..=12 {
                let len = reference_month_len(year, month);
                for day in 1..=32 {
                    let midnight = format!("{year:04}-{month:02}-{day:02}T00:00:00Z");
                    let leap = format!("{year:04}-{month:02}-{day:02}T23:59:60Z");
                    if day > len {
                        assert_eq!(parse(&midnight), None, "{midnight}");
                        continue;
                    }
                    assert_eq!(parse(&midnight), Some((expected, 0)), "{midnight}");
                    let leap_ok = parse(&leap) == Some((expected + 86_399, LEAP));
                    assert_eq!(leap_ok, day == len, "{leap}");
                    expected += 86_400;
                }
            }
        }
        assert_eq!(expected, end);
    }

    #[test]
    fn every_day_around_1970_and_2400() {
        // 1969-01-01 = -31536000, 1973-01-01 = 94694400 (GNU date).
        walk_years(1969..=1972, -31_536_000, 94_694_400);
        // 2399-01-01 = 13537929600, 2402-01-01 = 13632624000 (GNU date).
        walk_years(2399..=2401, 13_537_929_600, 13_632_624_000);
    }

    #[test]
    fn every_new_year_and_march_first_0000_to_9999() {
        let mut jan1 = -62_167_219_200; // 0000-01-01T00:00:00Z
        for year in 0..=9999_u32 {
            let text = format!("{year:04}-01-01T00:00:00Z");
            assert_eq!(parse(&text), Some((jan1, 0)), "{text}");
            let march =
                jan1 + i64::from(31 + 28 + u32::from(reference_month_len(year, 2) == 29)) * 86_400;
            let text = format!("{year:04}-03-01T00:00:00Z");
            assert_eq!(parse(&text), Some((march, 0)), "{text}");
            let year_len: u32 = (1..=12).map(|m| reference_month_len(year, m)).sum();
            jan1 += i64::from(year_len) * 86_400;
        }
        // 10000-01-01T00:00:00Z = 253402300800, one second after 9999-12-31T23:59:59Z.
        assert_eq!(jan1, 253_402_300_800);
    }

    #[test]
    fn short_ascii_strings_never_panic_and_are_rejected() {
        for a in 0..=127_u8 {
            let one = char::from(a).to_string();
            assert_eq!(parse(&one), None);
            for b in 0..=127_u8 {
                let two: String = [char::from(a), char::from(b)].iter().collect();
                assert_eq!(parse(&two), None);
            }
        }
    }

    #[test]
    fn multi_byte_characters_anywhere_never_panic_and_are_rejected() {
        let valid = "1985-04-12T23:20:50.52+01:00";
        for odd in [
            '\u{e9}',
            '\u{20ac}',
            '\u{1f600}',
            '\u{661}',
            '\u{ff10}',
            '\u{2212}',
        ] {
            for at in 0..=valid.len() {
                let mut inserted = valid.to_owned();
                inserted.insert(at, odd);
                assert_eq!(parse(&inserted), None, "{inserted}");
                if at < valid.len() {
                    let mut replaced = valid.to_owned();
                    replaced.replace_range(at..=at, &odd.to_string());
                    assert_eq!(parse(&replaced), None, "{replaced}");
                }
            }
        }
    }

    #[test]
    fn every_prefix_and_single_byte_change_never_panics() {
        let valid = "1990-12-31T23:59:60.123456789-00:00";
        for end in 0..valid.len() {
            assert_eq!(parse(&valid[..end]), None, "{}", &valid[..end]);
        }
        for at in 0..valid.len() {
            for b in 0..=127_u8 {
                let mut changed = valid.to_owned();
                changed.replace_range(at..=at, &char::from(b).to_string());
                // Only "no panic" is asserted: many changes (other digits) stay valid.
                let _ = parse(&changed);
            }
        }
    }
}
