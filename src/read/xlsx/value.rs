//! A cell's value as text, by its type, never silently changed: numbers as
//! the spreadsheet shows them in the General format, or an [`Issue`] where
//! that would change the value (a spreadsheet keeps 15 significant digits),
//! and date cells as RFC 3339 text in the `--timezone` zone (a spreadsheet
//! date has no zone: without one, what to do).

use chrono::Datelike;

use crate::model::local_time::{local_text, Zone};
use crate::model::rfc3339::{self, LocalDateTime};

/// Why a cell's value is not taken as its text; the record holds the text
/// the spreadsheet shows, and the order fails `INVALID_FIELD` naming the cell.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Issue {
    /// A number with more than 15 significant digits: what was typed is lost.
    /// `stored` is the number held, when it is not the number shown.
    Inexact { stored: Option<String> },
    /// An error value (`#DIV/0!`, `#N/A`...).
    Error,
    /// A date or time cell; the text says what to do.
    Date(String),
    /// A formula whose value was never saved in the file.
    NoValue,
    /// A cell this reader cannot take as text (the text says why).
    Unreadable(&'static str),
}

/// The text of a number as the General format shows it: a whole number of up
/// to 15 digits as its digits, a fraction as the shortest decimal that reads
/// back as the same number. A number that needs more than 15 significant
/// digits is `Err` with what the spreadsheet shows (15 digits, rounded).
pub(crate) fn number_text(x: f64) -> Result<String, String> {
    if x == 0.0 {
        return Ok("0".into());
    }
    if x.fract() == 0.0 {
        if x.abs() < 1e15 {
            return Ok(format!("{}", x as i64));
        }
    } else if significant_digits(x) <= 15 {
        // Display is the shortest decimal that reads back as `x`, never an exponent.
        return Ok(format!("{x}"));
    }
    Err(shown_15(x))
}

/// Significant digits of the shortest decimal that reads back as `x`.
fn significant_digits(x: f64) -> usize {
    let e = format!("{x:e}");
    let mantissa = e.split('e').next().unwrap_or("");
    mantissa.bytes().filter(u8::is_ascii_digit).count()
}

/// `x` rounded to 15 significant digits, as a spreadsheet shows it: plain
/// when that fits in 15 digits, else `1.23456789012346E+18`.
pub(crate) fn shown_15(x: f64) -> String {
    let e = format!("{:.14e}", x.abs());
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let sign = if x < 0.0 { "-" } else { "" };
    if (0..15).contains(&exp) {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            format!("{sign}{digits}{}", "0".repeat(int_len - digits.len()))
        } else {
            format!("{sign}{}.{}", &digits[..int_len], &digits[int_len..])
        }
    } else if (-9..0).contains(&exp) {
        format!("{sign}0.{}{digits}", "0".repeat((-exp - 1) as usize))
    } else {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { "" } else { "." };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}{dot}{rest}E{esign}{:02}", exp.abs())
    }
}

/// A date or time cell's value, as the workbook holds it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum DateCell<'a> {
    /// A number shown through a date, time or duration format: days since
    /// the workbook's epoch (1900, or 1904 for `date1904` workbooks).
    Serial {
        value: f64,
        date1904: bool,
        duration: bool,
    },
    /// An ISO 8601 date cell (`t="d"`), as written.
    Iso(&'a str),
}

/// What is wrong with a date cell where a field's text belongs, without `--timezone`.
pub(crate) const DATE_CELL: &str = "a spreadsheet date cell, which has no time zone: pass --timezone ZONE \
     (the zone the shop's times are in, e.g. --timezone Europe/Berlin) to read it as local time there, \
     or store it as text in RFC 3339 with its offset, e.g. 2026-11-25T22:14:03+01:00";

/// The text a date cell is read as: RFC 3339 with the offset its wall-clock
/// time had in `zone` (a date alone is its midnight). A spreadsheet date has
/// no zone, so without one it is the error saying what to do; a time that
/// never happened there, or happened twice, is the error saying so. An
/// ISO 8601 cell (`t="d"`) that carries its offset is its own text.
pub(crate) fn date_cell_text(cell: &DateCell<'_>, zone: Option<&Zone>) -> Result<String, String> {
    let local = match *cell {
        DateCell::Serial { duration: true, .. } => {
            return Err("a duration cell (hours, minutes), not a date and time".into())
        }
        DateCell::Serial {
            value, date1904, ..
        } => match serial_time(value, date1904) {
            SerialTime::At(t) => t,
            SerialTime::TimeOnly => {
                return Err("a time of day without a date: store the date and time".into())
            }
            SerialTime::Outside => {
                return Err("a date cell outside the dates a spreadsheet shows".into())
            }
        },
        DateCell::Iso(text) if rfc3339::parse(text).is_some() => return Ok(text.to_string()),
        DateCell::Iso(text) => match rfc3339::parse_local(text).or_else(|| midnight(text)) {
            Some(t) => t,
            None => return Err("a date cell whose text is no ISO 8601 date and time".into()),
        },
    };
    let Some(zone) = zone else {
        return Err(DATE_CELL.to_string());
    };
    match zone.resolve(&local) {
        Ok(r) => Ok(format!("{}{}", local_text(&local), r.offset)),
        Err(e) => Err(format!("a spreadsheet date cell whose time {e}")),
    }
}

/// What a date serial holds.
enum SerialTime {
    At(LocalDateTime),
    /// Less than a day in the 1900 system: a time of day alone.
    TimeOnly,
    /// Before the epoch, past 9999, or the 29 February 1900 that never was.
    Outside,
}

/// The wall-clock time of a date serial: days since the workbook's epoch,
/// the time of day in its fraction (to the second, as a spreadsheet shows it).
fn serial_time(value: f64, date1904: bool) -> SerialTime {
    if !(0.0..2_958_466.0).contains(&value) {
        return SerialTime::Outside;
    }
    let total = (value * 86_400.0).round() as i64;
    let (days, secs) = (total / 86_400, total % 86_400);
    if days == 0 && !date1904 {
        return SerialTime::TimeOnly;
    }
    let date = if date1904 {
        day_after(1904, 1, 1, days)
    } else if days == 60 {
        None
    } else {
        day_after(1899, 12, if days < 60 { 31 } else { 30 }, days)
    };
    let Some(date) = date else {
        return SerialTime::Outside;
    };
    SerialTime::At(LocalDateTime {
        year: date.year(),
        month: date.month(),
        day: date.day(),
        hour: (secs / 3600) as u32,
        minute: (secs % 3600 / 60) as u32,
        second: (secs % 60) as u32,
        nanos: 0,
    })
}

/// An ISO 8601 date alone (`2026-11-25`), as its midnight.
fn midnight(text: &str) -> Option<LocalDateTime> {
    rfc3339::parse_local(&format!(
        "{}T00:00:00",
        text.get(..10).filter(|_| text.len() == 10)?
    ))
}

fn day_after(y: i32, m: u32, d: u32, plus_days: i64) -> Option<chrono::NaiveDate> {
    let base = chrono::NaiveDate::from_ymd_opt(y, m, d)?;
    base.checked_add_days(chrono::Days::new(u64::try_from(plus_days).ok()?))
}

/// How the spreadsheet shows a date cell: `2026-11-25 22:14:03`, `2026-11-25`
/// (no time of day), `22:14:03` (a time alone), `26:30:00` (a duration);
/// never the bare serial number, unless no date has it.
pub(crate) fn date_cell_shown(cell: &DateCell<'_>) -> String {
    let (value, date1904, duration) = match *cell {
        DateCell::Iso(text) => return text.to_string(),
        DateCell::Serial {
            value,
            date1904,
            duration,
        } => (value, date1904, duration),
    };
    // Up to 9999-12-31, the last day a spreadsheet shows.
    if !(0.0..2_958_466.0).contains(&value) {
        return number_text(value).unwrap_or_else(|shown| shown);
    }
    let total = (value * 86_400.0).round() as i64;
    let (days, secs) = (total / 86_400, total % 86_400);
    let clock = format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    );
    if duration {
        return format!(
            "{}:{:02}:{:02}",
            total / 3600,
            total % 3600 / 60,
            total % 60
        );
    }
    if days == 0 && !date1904 {
        return clock;
    }
    let date = if date1904 {
        ymd(1904, 1, 1, days)
    } else if days == 60 {
        // 1900-02-29: the day Lotus 1-2-3 invented and spreadsheets kept.
        Some("1900-02-29".to_string())
    } else {
        ymd(1899, 12, if days < 60 { 31 } else { 30 }, days)
    };
    match (date, secs) {
        (Some(d), 0) => d,
        (Some(d), _) => format!("{d} {clock}"),
        (None, _) => number_text(value).unwrap_or_else(|shown| shown),
    }
}

fn ymd(y: i32, m: u32, d: u32, plus_days: i64) -> Option<String> {
    Some(
        day_after(y, m, d, plus_days)?
            .format("%Y-%m-%d")
            .to_string(),
    )
}

/// How a number format shows a number: as a date (or time), as a duration,
/// or as a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shows {
    Number,
    Date,
    Duration,
}

/// The built-in formats (ECMA-376 18.8.30) that show dates and times; the
/// East Asian ones (27-36, 50-58) show dates in every locale that has them.
pub(crate) fn builtin_format(id: u32) -> Shows {
    match id {
        14..=22 | 27..=36 | 45 | 47 | 50..=58 => Shows::Date,
        46 => Shows::Duration,
        _ => Shows::Number,
    }
}

/// What a custom format code shows, by its first section: a date or time
/// token (`d m y h s`, `AM/PM`) outside quotes, escapes and brackets is a
/// date; `[h]`, `[mm]`, `[ss]` a duration. The rules follow calamine's
/// `detect_custom_number_format` (MIT), itself after openpyxl.
pub(crate) fn custom_format(code: &str) -> Shows {
    let mut escaped = false;
    let mut quoted = false;
    let mut brackets = 0u8;
    let mut prev = ' ';
    let mut hms = false;
    let mut ap = false;
    for c in code.chars() {
        match (c, escaped, quoted, ap, brackets) {
            (_, true, ..) => escaped = false,
            ('_' | '\\' | '*', ..) => escaped = true,
            ('"', _, true, _, _) => quoted = false,
            (_, _, true, _, _) => (),
            ('"', ..) => quoted = true,
            (';', ..) => return Shows::Number,
            ('[', ..) => brackets += 1,
            (']', .., 1) if hms => return Shows::Duration,
            (']', ..) => brackets = brackets.saturating_sub(1),
            ('a' | 'A', _, _, false, 0) => ap = true,
            ('p' | 'm' | '/' | 'P' | 'M', _, _, true, 0) => return Shows::Date,
            ('d' | 'm' | 'h' | 'y' | 's' | 'D' | 'M' | 'H' | 'Y' | 'S', _, _, false, 0) => {
                return Shows::Date
            }
            _ => {
                if !(hms && c.eq_ignore_ascii_case(&prev)) {
                    hms = prev == '[' && matches!(c, 'm' | 'h' | 's' | 'M' | 'H' | 'S');
                }
            }
        }
        prev = c;
    }
    Shows::Number
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_the_general_format_shows_them() {
        for (x, text) in [
            (5.0, "5"),
            (-0.0, "0"),
            (12.3, "12.3"),
            (31.0, "31"),
            (0.1, "0.1"),
            (1e-7, "0.0000001"),
            (999_999_999_999_999.0, "999999999999999"),
            (1234567890123.45, "1234567890123.45"),
            (-2.5, "-2.5"),
        ] {
            assert_eq!(number_text(x), Ok(text.to_string()), "{x:?}");
        }
    }

    #[test]
    fn a_number_a_spreadsheet_cannot_hold_exactly_is_refused() {
        // A long id typed into a number cell: the digits past the 15th are gone.
        assert_eq!(
            number_text(1234567890123456789.0),
            Err("1.23456789012346E+18".into())
        );
        assert_eq!(
            number_text(4111111111111111.0),
            Err("4.11111111111111E+15".into())
        );
        assert_eq!(number_text(1e15), Err("1E+15".into()));
        // A fraction that does not round-trip in 15 digits: shown rounded.
        assert_eq!(number_text(0.1 + 0.2), Err("0.3".into()));
        assert_eq!(number_text(1.0 / 3.0), Err("0.333333333333333".into()));
        assert_eq!(number_text(-12.300000000000002), Err("-12.3".into()));
        assert_eq!(shown_15(1e-12 / 3.0), "3.33333333333333E-13");
    }

    #[test]
    fn date_cells_are_shown_as_dates_and_refused_as_text() {
        let serial = |value, date1904| DateCell::Serial {
            value,
            date1904,
            duration: false,
        };
        // 2026-11-25 22:14:03 in both epochs.
        assert_eq!(
            date_cell_shown(&serial(46_351.0 + 80_043.0 / 86_400.0, false)),
            "2026-11-25 22:14:03"
        );
        assert_eq!(
            date_cell_shown(&serial(46351.0 - 1462.0, true)),
            "2026-11-25"
        );
        assert_eq!(date_cell_shown(&serial(1.0, false)), "1900-01-01");
        assert_eq!(date_cell_shown(&serial(60.0, false)), "1900-02-29");
        assert_eq!(date_cell_shown(&serial(61.0, false)), "1900-03-01");
        assert_eq!(date_cell_shown(&serial(0.5, false)), "12:00:00");
        let long = DateCell::Serial {
            value: 1.1041666666666667,
            date1904: false,
            duration: true,
        };
        assert_eq!(date_cell_shown(&long), "26:30:00");
        assert_eq!(date_cell_shown(&DateCell::Iso("2026-11-25")), "2026-11-25");
        let err = date_cell_text(&serial(46351.5, false), None).unwrap_err();
        assert!(
            err.contains("RFC 3339") && err.contains("--timezone"),
            "{err}"
        );
    }

    #[test]
    fn with_a_zone_date_cells_are_rfc_3339_text_with_their_offset() {
        let berlin = Zone::parse("Europe/Berlin").unwrap();
        let serial = |value, date1904| DateCell::Serial {
            value,
            date1904,
            duration: false,
        };
        let text = |c: DateCell<'_>| date_cell_text(&c, Some(&berlin));
        assert_eq!(
            text(serial(46_351.0 + 80_043.0 / 86_400.0, false)),
            Ok("2026-11-25T22:14:03+01:00".into())
        );
        assert_eq!(
            text(serial(46351.0 - 1462.0, true)),
            Ok("2026-11-25T00:00:00+01:00".into())
        );
        assert_eq!(
            text(DateCell::Iso("2026-07-01T12:00:00")),
            Ok("2026-07-01T12:00:00+02:00".into())
        );
        assert_eq!(
            text(DateCell::Iso("2026-07-01T12:00:00Z")),
            Ok("2026-07-01T12:00:00Z".into())
        );
        // 2026-03-29 02:30 never happened in Berlin; 2026-10-25 02:30 twice.
        let skipped = text(serial(46_110.0 + 0.5 / 24.0 * 5.0, false)).unwrap_err();
        assert!(
            skipped.contains("does not exist in Europe/Berlin"),
            "{skipped}"
        );
        let twice = text(serial(46_320.0 + 2.5 / 24.0, false)).unwrap_err();
        assert!(twice.contains("happened twice in Europe/Berlin"), "{twice}");
        assert!(text(serial(0.5, false))
            .unwrap_err()
            .contains("time of day"));
        let long = DateCell::Serial {
            value: 1.1,
            date1904: false,
            duration: true,
        };
        assert!(text(long).unwrap_err().contains("duration"));
    }

    #[test]
    fn date_formats_are_told_from_number_formats() {
        assert_eq!(builtin_format(14), Shows::Date);
        assert_eq!(builtin_format(22), Shows::Date);
        assert_eq!(builtin_format(46), Shows::Duration);
        assert_eq!(builtin_format(2), Shows::Number);
        assert_eq!(builtin_format(49), Shows::Number);
        for date in ["yyyy-mm-dd", "DD/MM/YY", "h:mm AM/PM", "[$-409]d-mmm-yy;@"] {
            assert_eq!(custom_format(date), Shows::Date, "{date}");
        }
        assert_eq!(custom_format("[h]:mm:ss"), Shows::Duration);
        for number in ["0.00", "#,##0 \"days\"", "0.00_);[Red](0.00)", "\\d0"] {
            assert_eq!(custom_format(number), Shows::Number, "{number}");
        }
    }
}
