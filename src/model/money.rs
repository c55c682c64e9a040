//! Money: exact decimal amounts as integer minor units, and currency exponents. No I/O.

/// Number of fraction digits: 0 for JPY and KRW; 3 for BHD, KWD, OMR, TND, JOD; 2 for every other code.
pub fn currency_exponent(code: &str) -> u32 {
    match code {
        "JPY" | "KRW" => 0,
        "BHD" | "KWD" | "OMR" | "TND" | "JOD" => 3,
        _ => 2,
    }
}

/// True when `code` is exactly three ASCII upper-case letters.
pub fn is_currency_code(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("must be digits with an optional '.' (no sign, exponent or thousands separator)")]
    Syntax,
    #[error("{}", fraction_digits_message(*.max))]
    TooManyFractionDigits { max: u32 },
    #[error("is too large")]
    Overflow,
}

// One Display per variant, worded so that max = 0 and max = 1 read naturally too.
fn fraction_digits_message(max: u32) -> String {
    match max {
        0 => "must not have fraction digits".to_owned(),
        1 => "has more than 1 fraction digit".to_owned(),
        n => format!("has more than {n} fraction digits"),
    }
}

/// Parse an exact decimal: `^[0-9]+(\.[0-9]+)?$` (ASCII digits only), with at most `exponent`
/// fraction digits (for exponent 0 no '.' at all), into minor units: "12.5" with exponent 2 -> 1250,
/// "0.05" -> 5, "100" (exp 0) -> 100, "1.234" (exp 3) -> 1234. Leading zeros are fine ("007.10").
/// Rejects: empty, "-1", "+1", "1e3", "1,000", ".5", "5.", " 5", "1.2.3", non-ASCII digits.
/// Values above i64::MAX minor units -> Overflow (never wraps, never panics, any length of input).
pub fn parse_amount(text: &str, exponent: u32) -> Result<i64, AmountError> {
    let (int_part, frac_part) = match text.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (text, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    // Grammar first, so "1.2.3" is a syntax error rather than a fraction-digit complaint.
    if !all_digits(int_part) || frac_part.is_some_and(|f| !all_digits(f)) {
        return Err(AmountError::Syntax);
    }
    let frac = frac_part.unwrap_or("");
    // Compare in u64 so a huge `exponent` cannot truncate on 32-bit targets.
    if frac.len() as u64 > u64::from(exponent) {
        return Err(AmountError::TooManyFractionDigits { max: exponent });
    }

    let mut value: i64 = 0;
    for b in int_part.bytes().chain(frac.bytes()) {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(b - b'0')))
            .ok_or(AmountError::Overflow)?;
    }
    // Scale the remaining fraction positions. Zero stays zero, and any non-zero value
    // overflows within 19 steps, so this loop is short even for an absurd exponent.
    if value != 0 {
        let mut missing = u64::from(exponent) - frac.len() as u64;
        while missing > 0 {
            value = value.checked_mul(10).ok_or(AmountError::Overflow)?;
            missing -= 1;
        }
    }
    Ok(value)
}

/// Render minor units with exactly `exponent` fraction digits: (1250,2)->"12.50", (5,2)->"0.05", (100,0)->"100", (1234,3)->"1.234".
/// Negative values render with a leading '-' ( (-5,2) -> "-0.05" ) (needed for ledger deltas).
pub fn format_amount(minor: i64, exponent: u32) -> String {
    // unsigned_abs avoids the i64::MIN negation overflow.
    let digits = minor.unsigned_abs().to_string();
    let exp = exponent as usize;
    let mut out = String::new();
    if minor < 0 {
        out.push('-');
    }
    if exp == 0 {
        out.push_str(&digits);
        return out;
    }
    if digits.len() > exp {
        let (int_part, frac_part) = digits.split_at(digits.len() - exp);
        out.push_str(int_part);
        out.push('.');
        out.push_str(frac_part);
    } else {
        // Value below one major unit: "0." then left-pad the fraction with zeros.
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', exp - digits.len()));
        out.push_str(&digits);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exponents() {
        assert_eq!(currency_exponent("JPY"), 0);
        assert_eq!(currency_exponent("KRW"), 0);
        for c in ["BHD", "KWD", "OMR", "TND", "JOD"] {
            assert_eq!(currency_exponent(c), 3, "{c}");
        }
        assert_eq!(currency_exponent("EUR"), 2);
        assert_eq!(currency_exponent("USD"), 2);
        assert_eq!(currency_exponent("jpy"), 2);
        assert_eq!(currency_exponent(""), 2);
    }

    #[test]
    fn currency_codes() {
        assert!(is_currency_code("EUR"));
        assert!(is_currency_code("XXX"));
        for bad in ["", "EU", "EURO", "eur", "Eur", "E1R", "ÉUR", " EU", "EU\n"] {
            assert!(!is_currency_code(bad), "{bad:?}");
        }
    }

    #[test]
    fn parse_examples() {
        assert_eq!(parse_amount("12.5", 2), Ok(1250));
        assert_eq!(parse_amount("0.05", 2), Ok(5));
        assert_eq!(parse_amount("100", 0), Ok(100));
        assert_eq!(parse_amount("1.234", 3), Ok(1234));
        assert_eq!(parse_amount("007.10", 2), Ok(710));
        assert_eq!(parse_amount("0", 2), Ok(0));
        assert_eq!(parse_amount("0.00", 2), Ok(0));
        assert_eq!(parse_amount("12", 2), Ok(1200));
    }

    #[test]
    fn parse_rejects_bad_syntax() {
        for bad in [
            "", "-1", "+1", "1e3", "1,000", ".5", "5.", " 5", "5 ", "1.2.3", ".", "١٢", "１",
            "1_000", "0x10", "1.-2",
        ] {
            assert_eq!(parse_amount(bad, 2), Err(AmountError::Syntax), "{bad:?}");
        }
    }

    #[test]
    fn parse_rejects_too_many_fraction_digits() {
        assert_eq!(
            parse_amount("1.234", 2),
            Err(AmountError::TooManyFractionDigits { max: 2 })
        );
        assert_eq!(
            parse_amount("1.0", 0),
            Err(AmountError::TooManyFractionDigits { max: 0 })
        );
        assert_eq!(
            parse_amount("1.2345", 3),
            Err(AmountError::TooManyFractionDigits { max: 3 })
        );
    }

    #[test]
    fn parse_overflow_boundaries() {
        assert_eq!(parse_amount("9223372036854775807", 0), Ok(i64::MAX));
        assert_eq!(
            parse_amount("9223372036854775808", 0),
            Err(AmountError::Overflow)
        );
        assert_eq!(parse_amount("92233720368547758.07", 2), Ok(i64::MAX));
        assert_eq!(
            parse_amount("92233720368547758.08", 2),
            Err(AmountError::Overflow)
        );
        // Overflow only through the scaling step.
        assert_eq!(
            parse_amount("92233720368547759", 2),
            Err(AmountError::Overflow)
        );
        assert_eq!(
            parse_amount(&"9".repeat(10_000), 2),
            Err(AmountError::Overflow)
        );
        // Leading zeros never overflow on their own.
        let padded = format!("{}1.5", "0".repeat(10_000));
        assert_eq!(parse_amount(&padded, 2), Ok(150));
        // Absurd exponents neither hang nor panic.
        assert_eq!(parse_amount("1", u32::MAX), Err(AmountError::Overflow));
        assert_eq!(parse_amount("0", u32::MAX), Ok(0));
    }

    #[test]
    fn format_examples() {
        assert_eq!(format_amount(1250, 2), "12.50");
        assert_eq!(format_amount(5, 2), "0.05");
        assert_eq!(format_amount(100, 0), "100");
        assert_eq!(format_amount(1234, 3), "1.234");
        assert_eq!(format_amount(0, 2), "0.00");
        assert_eq!(format_amount(0, 0), "0");
        assert_eq!(format_amount(-5, 2), "-0.05");
        assert_eq!(format_amount(-1250, 2), "-12.50");
        assert_eq!(format_amount(i64::MAX, 2), "92233720368547758.07");
        assert_eq!(format_amount(i64::MIN, 2), "-92233720368547758.08");
    }

    #[test]
    fn error_messages_read_well() {
        assert_eq!(
            AmountError::TooManyFractionDigits { max: 0 }.to_string(),
            "must not have fraction digits"
        );
        assert_eq!(
            AmountError::TooManyFractionDigits { max: 1 }.to_string(),
            "has more than 1 fraction digit"
        );
        assert_eq!(
            AmountError::TooManyFractionDigits { max: 2 }.to_string(),
            "has more than 2 fraction digits"
        );
        assert_eq!(AmountError::Overflow.to_string(), "is too large");
    }

    /// Reference value by decimal-string arithmetic: None when above i64::MAX.
    fn reference(int_part: &str, frac: &str, exponent: u32) -> Option<i64> {
        let mut all = format!("{int_part}{frac}");
        all.extend(std::iter::repeat_n('0', exponent as usize - frac.len()));
        let significant = all.trim_start_matches('0');
        if significant.is_empty() {
            return Some(0);
        }
        if significant.len() > 19 {
            return None;
        }
        let v: u128 = significant.parse().ok()?;
        i64::try_from(v).ok()
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(v in 0i64..=i64::MAX, exp in 0u32..=3) {
            prop_assert_eq!(parse_amount(&format_amount(v, exp), exp), Ok(v));
        }

        #[test]
        fn parse_never_panics(s in any::<String>(), exp in any::<u32>()) {
            let _ = parse_amount(&s, exp);
        }

        #[test]
        fn parse_never_panics_near_grammar(s in "[0-9.+\\- e,]{0,40}", exp in 0u32..=5) {
            let _ = parse_amount(&s, exp);
        }

        #[test]
        fn parse_matches_big_arithmetic(
            int_part in "[0-9]{1,30}",
            frac in proptest::option::of("[0-9]{1,3}"),
            exp in 0u32..=3,
        ) {
            let text = match &frac {
                Some(f) => format!("{int_part}.{f}"),
                None => int_part.clone(),
            };
            let f = frac.as_deref().unwrap_or("");
            let got = parse_amount(&text, exp);
            if f.len() > exp as usize {
                prop_assert_eq!(got, Err(AmountError::TooManyFractionDigits { max: exp }));
            } else {
                match reference(&int_part, f, exp) {
                    Some(v) => prop_assert_eq!(got, Ok(v)),
                    None => prop_assert_eq!(got, Err(AmountError::Overflow)),
                }
            }
        }

        #[test]
        fn negative_format_is_positive_with_sign(v in 1i64..=i64::MAX, exp in 0u32..=3) {
            prop_assert_eq!(format_amount(-v, exp), format!("-{}", format_amount(v, exp)));
        }
    }
}
