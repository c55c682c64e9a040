//! What spreadsheets do to text that looks like a number, so that a failed
//! report that went through one can be told from a deliberate fix: leading
//! zeros dropped (`000777` → `777`), a long number in scientific notation
//! (`1234567890123456789` → `1.23456789012346E+18`), or rounded to 15
//! significant digits (`1234567890123456789` → `1234567890123460000`).

/// How a spreadsheet turned `original` into `now`, if it looks like it did.
pub fn mangling(original: &str, now: &str) -> Option<&'static str> {
    if original == now || !is_digits(original) {
        return None;
    }
    let significant = original.trim_start_matches('0');
    if now == significant || (significant.is_empty() && now == "0") {
        return Some("its leading zeros were dropped");
    }
    if is_scientific(now) {
        return Some("it was written in scientific notation");
    }
    if is_digits(now) && rounded_to_15_digits(significant).is_some_and(|r| r == now) {
        return Some("it was rounded to 15 digits");
    }
    None
}

/// A long number as a spreadsheet keeps it: rounded to 15 significant
/// digits, the rest zeros (`None` when it has 15 digits or fewer).
fn rounded_to_15_digits(digits: &str) -> Option<String> {
    if digits.len() <= 15 || digits.len() > 38 {
        return None;
    }
    let v: u128 = digits.parse().ok()?;
    let scale = 10u128.pow(digits.len() as u32 - 15);
    Some(((v + scale / 2) / scale * scale).to_string())
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `1.23456789012346E+18`, `1E+05`, `1,23E+18` (a decimal comma), any case.
fn is_scientific(s: &str) -> bool {
    let Some((mantissa, exp)) = s.split_once(['E', 'e']) else {
        return false;
    };
    let exp = exp.strip_prefix(['+', '-']).unwrap_or(exp);
    let (int, frac) = mantissa.split_once(['.', ',']).unwrap_or((mantissa, "0"));
    is_digits(int) && is_digits(frac) && is_digits(exp)
}

/// The advice for a value a spreadsheet changed.
pub const KEEP_AS_TEXT: &str = "open the report with that column as text (in LibreOffice Calc: \
    Text Import, column type Text; in Excel: Data > From Text/CSV, data type Text), \
    or use --report-format xlsx, whose cells stay text";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_spreadsheets_do_is_recognised() {
        assert_eq!(
            mangling("000777", "777"),
            Some("its leading zeros were dropped")
        );
        assert_eq!(
            mangling("0001234", "1234"),
            Some("its leading zeros were dropped")
        );
        assert_eq!(
            mangling("1234567890123456789", "1.23456789012346E+18"),
            Some("it was written in scientific notation")
        );
        assert_eq!(
            mangling("1234567890123456789", "1,23456789012346E+18"),
            Some("it was written in scientific notation")
        );
        assert_eq!(
            mangling("1234567890123456789", "1234567890123460000"),
            Some("it was rounded to 15 digits")
        );
        assert_eq!(mangling("000", "0"), Some("its leading zeros were dropped"));
    }

    #[test]
    fn fixes_and_text_are_left_alone() {
        for (a, b) in [
            ("777", "777"),
            ("A-000777", "A-777"),
            ("000777", "000778"),
            ("12345", "12346"),
            ("ch_3QdM", "ch_3QdN"),
            ("123", "1.2E+3x"),
            ("4111111111111111", "ref-2"),
        ] {
            assert_eq!(mangling(a, b), None, "{a} -> {b}");
        }
    }
}
