//! The format rule of each input field (README: "Input format";
//! docs/formats.md), as pure functions that return the parsed value or the
//! rule that was broken. Readers of catalogs and of orders share them.

use crate::model::local_time::{LocalTimeError, Zone};
use crate::model::money::{self, AmountError};
use crate::model::order::PaymentMethod;
use crate::model::rfc3339;

pub const ORDER_ID_RULE: &str =
    "must be 1-64 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit";
pub const SKU_RULE: &str = "must be 1-64 characters of A-Z a-z 0-9 . _ -";
pub const PLACED_AT_RULE: &str =
    "must be an RFC 3339 date-time with offset, e.g. 2026-11-25T22:14:03Z";
pub const EMAIL_RULE: &str =
    "must be at most 254 characters, no whitespace, one @ with text on both sides and a dot in the domain";
pub const QUANTITY_RULE: &str = "must be a whole number from 1 to 1000000";
pub const CURRENCY_RULE: &str = "must be three upper-case letters (ISO 4217)";
pub const METHOD_RULE: &str =
    "must be one of card, paypal, bank_transfer, gift_card, cash_on_delivery";
pub const REF_RULE: &str = "must be 1-128 characters";
pub const CONTROL_RULE: &str =
    "holds a control character (a NUL byte, a line break or the like; only tab is allowed in a value)";
pub const ON_HAND_RULE: &str = "must be a whole number of at least 0";

pub const MAX_QUANTITY: i64 = 1_000_000;

pub fn order_id(v: &str) -> Result<(), &'static str> {
    let ok = (1..=64).contains(&v.len())
        && v.as_bytes()[0].is_ascii_alphanumeric()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    ok.then_some(()).ok_or(ORDER_ID_RULE)
}

pub fn sku(v: &str) -> Result<(), &'static str> {
    let ok = (1..=64).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    ok.then_some(()).ok_or(SKU_RULE)
}

/// A `placed_at` as parsed: its instant (Unix seconds and nanoseconds), so
/// that the same moment written with another offset counts as the same
/// content, and for a local time read in `--timezone`, the value with the
/// offset it had there (what is stored and reported).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub instant: (i64, u32),
    pub with_offset: Option<String>,
}

/// An RFC 3339 date-time with its offset; or, written without one (`T` or
/// a space between date and time), a wall-clock time in `zone`, which must
/// have happened there exactly once.
pub fn placed_at(v: &str, zone: Option<&Zone>) -> Result<Placed, String> {
    if let Some(instant) = rfc3339::parse(v) {
        return Ok(Placed {
            instant,
            with_offset: None,
        });
    }
    let Some(local) = rfc3339::parse_local(v) else {
        return Err(PLACED_AT_RULE.to_string());
    };
    let zone = zone
        .ok_or(LocalTimeError::NoZone)
        .map_err(|e| e.to_string())?;
    let at = zone.resolve(&local).map_err(|e| e.to_string())?;
    // The text as written, with a `T` and the offset: fractions kept as they were.
    let with_offset = format!("{}T{}{}", &v[..10], &v[11..], at.offset);
    Ok(Placed {
        instant: at.instant,
        with_offset: Some(with_offset),
    })
}

/// A control character other than tab: never part of a value (no database
/// stores a NUL byte in text, and a line break inside a value is a mistake).
pub fn has_control(v: &str) -> bool {
    v.chars().any(|c| c.is_control() && c != '\t')
}

/// Free text: any characters but control characters.
pub fn text(v: &str) -> Result<(), &'static str> {
    if has_control(v) {
        Err(CONTROL_RULE)
    } else {
        Ok(())
    }
}

pub fn email(v: &str) -> Result<(), &'static str> {
    text(v)?;
    let ok = v.chars().count() <= 254
        && !v.chars().any(char::is_whitespace)
        && v.bytes().filter(|b| *b == b'@').count() == 1
        && match v.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty() && !domain.is_empty() && domain.contains('.')
            }
            None => false,
        };
    ok.then_some(()).ok_or(EMAIL_RULE)
}

/// A whole number of ASCII digits in `lo..=hi`; `None` when it is not one.
pub fn whole_number(v: &str, lo: i64, hi: i64) -> Option<i64> {
    if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
        // More than 19 digits would not fit in i64; leading zeros that long are not worth allowing.
        return None;
    }
    v.parse::<i64>().ok().filter(|n| (lo..=hi).contains(n))
}

pub fn quantity(v: &str) -> Result<i64, &'static str> {
    whole_number(v, 1, MAX_QUANTITY).ok_or(QUANTITY_RULE)
}

pub fn on_hand(v: &str) -> Result<i64, &'static str> {
    whole_number(v, 0, i64::MAX).ok_or(ON_HAND_RULE)
}

pub fn currency(v: &str) -> Result<(), &'static str> {
    money::is_currency_code(v)
        .then_some(())
        .ok_or(CURRENCY_RULE)
}

pub fn payment_method(v: &str) -> Result<PaymentMethod, &'static str> {
    v.parse().map_err(|_| METHOD_RULE)
}

pub fn payment_ref(v: &str) -> Result<(), &'static str> {
    text(v)?;
    (1..=128)
        .contains(&v.chars().count())
        .then_some(())
        .ok_or(REF_RULE)
}

/// An exact decimal amount in the currency's minor units, with the rule text on failure.
pub fn amount(v: &str, exponent: u32) -> Result<i64, String> {
    money::parse_amount(v, exponent).map_err(|e| match e {
        AmountError::Syntax => format!(
            "must be an exact decimal with at most {exponent} fraction digits (no sign, exponent or thousands separator)"
        ),
        other => format!("{other}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_ids() {
        for ok in ["A", "ORD-000000001", "9.a_b:c-d", &"x".repeat(64)] {
            assert!(order_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-A", ".A", "A B", "A/1", "Ä1", &"x".repeat(65)] {
            assert!(order_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn skus() {
        for ok in ["SKU-1", "a.b_c", "_x", &"9".repeat(64)] {
            assert!(sku(ok).is_ok(), "{ok}");
        }
        for bad in ["", "A:1", "A 1", "é", &"x".repeat(65)] {
            assert!(sku(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn placed_at_needs_an_offset_and_normalises_to_utc() {
        assert_eq!(
            placed_at("2026-11-25T22:14:03Z", None).unwrap(),
            placed_at("2026-11-25T23:14:03+01:00", None).unwrap()
        );
        assert!(placed_at("2026-11-25t22:14:03.5z", None).is_ok());
        for bad in [
            "2026-11-25T22:14:03",
            "2026-11-25",
            "2026-13-45T25:61:00Z",
            "2026-11-25 22:14:03Z",
            "yesterday",
            "",
        ] {
            assert!(placed_at(bad, None).is_err(), "{bad}");
        }
        let e = placed_at("2026-11-25 08:02:11", None).unwrap_err();
        assert!(e.starts_with("has no offset: pass --timezone ZONE"), "{e}");
    }

    #[test]
    fn a_local_placed_at_is_read_in_the_zone_and_gets_its_offset() {
        let berlin = Zone::parse("Europe/Berlin").unwrap();
        let p = placed_at("2026-11-25 08:02:11.5", Some(&berlin)).unwrap();
        assert_eq!(
            p.with_offset.as_deref(),
            Some("2026-11-25T08:02:11.5+01:00")
        );
        assert_eq!(
            p.instant,
            placed_at("2026-11-25T07:02:11.5Z", None).unwrap().instant
        );
        let e = placed_at("2026-03-29T02:30:00", Some(&berlin)).unwrap_err();
        assert!(e.starts_with("does not exist in Europe/Berlin"), "{e}");
        // With an offset, the zone is not asked.
        let p = placed_at("2026-03-29T02:30:00+01:00", Some(&berlin)).unwrap();
        assert_eq!(p.with_offset, None);
        assert!(placed_at("25/11/2026 08:02", Some(&berlin)).is_err());
    }

    #[test]
    fn emails() {
        for ok in ["a@b.co", "first.last+tag@sub.example.com"] {
            assert!(email(ok).is_ok(), "{ok}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        for bad in [
            "ab.co",
            "a@@b.co",
            "a@b@c.co",
            "@b.co",
            "a@",
            "a@bco",
            "a b@c.co",
            long.as_str(),
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn quantities() {
        assert_eq!(quantity("1"), Ok(1));
        assert_eq!(quantity("1000000"), Ok(1_000_000));
        assert_eq!(quantity("007"), Ok(7));
        for bad in [
            "0",
            "-1",
            "+1",
            "1.5",
            "1e3",
            "1000001",
            "abc",
            "",
            "99999999999999999999999",
        ] {
            assert!(quantity(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn currencies_methods_and_refs() {
        assert!(currency("EUR").is_ok());
        for bad in ["eur", "EU", "EURO", "E1R"] {
            assert!(currency(bad).is_err(), "{bad}");
        }
        assert!(payment_method("gift_card").is_ok());
        assert!(payment_method("Card").is_err());
        assert_eq!(
            payment_method("bank_transfer"),
            Ok(PaymentMethod::BankTransfer)
        );
        // The rule names every method there is.
        for m in <PaymentMethod as strum::VariantArray>::VARIANTS {
            assert!(METHOD_RULE.contains(m.as_str()), "{m:?}");
        }
        assert!(payment_ref(&"r".repeat(128)).is_ok());
        assert!(payment_ref(&"r".repeat(129)).is_err());
        assert!(payment_ref("").is_err());
    }

    #[test]
    fn amounts_follow_the_currency_exponent() {
        assert_eq!(amount("12.50", 2), Ok(1250));
        assert_eq!(amount("100", 0), Ok(100));
        assert!(amount("100.5", 0).is_err());
        assert_eq!(amount("1.234", 3), Ok(1234));
        assert!(amount("1.234", 2).is_err());
        assert!(amount("-1.00", 2).unwrap_err().contains("exact decimal"));
    }

    #[test]
    fn on_hand_is_a_non_negative_whole_number() {
        assert_eq!(on_hand("0"), Ok(0));
        assert!(on_hand("-1").is_err());
        assert!(on_hand("1.0").is_err());
    }
}
