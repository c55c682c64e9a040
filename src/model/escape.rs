//! Spreadsheet formula escaping for CSV report cells, and its inverse for CSV input.

use std::borrow::Cow;

/// Leading characters that make spreadsheets evaluate (or reinterpret) a cell.
const TRIGGERS: [char; 7] = ['=', '+', '-', '@', '\t', '\r', '\n'];

fn starts_with_trigger(v: &str) -> bool {
    // Every trigger is one ASCII byte.
    v.as_bytes()
        .first()
        .is_some_and(|b| TRIGGERS.contains(&char::from(*b)))
}

/// Quotes then a trigger: such a value would lose a quote on the way back in,
/// so it gets one more, like a bare trigger does.
fn quotes_then_trigger(v: &str) -> bool {
    starts_with_trigger(v.trim_start_matches('\''))
}

/// A cell starting with '=', '+', '-', '@', '\t', '\r' or '\n' gets a leading '\''
/// (and so does one starting with quotes before such a character, so that
/// [`unescape_cell`] gives back exactly the value). Cow::Borrowed otherwise.
pub fn escape_cell(v: &str) -> std::borrow::Cow<'_, str> {
    if quotes_then_trigger(v) {
        Cow::Owned(format!("'{v}"))
    } else {
        Cow::Borrowed(v)
    }
}

/// Inverse on input: a leading '\'' followed by one of those characters (or by
/// more quotes and then one) is dropped; anything else unchanged.
pub fn unescape_cell(v: &str) -> &str {
    match v.strip_prefix('\'') {
        Some(rest) if quotes_then_trigger(rest) => rest,
        _ => v,
    }
}

/// True when a cell would be evaluated as a formula by a spreadsheet (starts with one of those characters).
pub fn is_live_formula(v: &str) -> bool {
    starts_with_trigger(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_each_trigger() {
        for t in TRIGGERS {
            let v = format!("{t}SUM(A1:A2)");
            assert!(is_live_formula(&v));
            let e = escape_cell(&v);
            assert_eq!(e, format!("'{v}"));
            assert!(!is_live_formula(&e));
            assert_eq!(unescape_cell(&e), v);
        }
        assert_eq!(escape_cell("-5"), "'-5");
        assert_eq!(escape_cell("="), "'=");
    }

    #[test]
    fn leaves_safe_cells_borrowed() {
        for v in ["", "abc", "12.50", " =1", "'", "'a=", "é=", "SUM(1)"] {
            assert!(matches!(escape_cell(v), Cow::Borrowed(_)), "{v:?}");
            assert!(!is_live_formula(v));
        }
    }

    #[test]
    fn unescape_only_drops_quote_before_trigger() {
        assert_eq!(unescape_cell("'=1"), "=1");
        assert_eq!(unescape_cell("'\n"), "\n");
        assert_eq!(unescape_cell("'abc"), "'abc");
        assert_eq!(unescape_cell("'"), "'");
        // A quote before quotes and a trigger is ours too: escape_cell adds it.
        assert_eq!(unescape_cell("''=1"), "'=1");
        assert_eq!(escape_cell("'=1"), "''=1");
        assert_eq!(unescape_cell("=1"), "=1");
        assert_eq!(unescape_cell(""), "");
    }

    fn trigger_prefixed() -> impl Strategy<Value = String> {
        (proptest::sample::select(TRIGGERS.to_vec()), any::<String>())
            .prop_map(|(t, rest)| format!("{t}{rest}"))
    }

    proptest! {
        #[test]
        fn unescape_inverts_escape(v in prop_oneof![any::<String>(), trigger_prefixed()]) {
            let ambiguous = v.strip_prefix('\'').is_some_and(starts_with_trigger);
            prop_assume!(!ambiguous);
            let escaped = escape_cell(&v);
            prop_assert_eq!(unescape_cell(&escaped), v.as_str());
        }

        #[test]
        fn escaped_is_never_live(v in prop_oneof![any::<String>(), trigger_prefixed()]) {
            prop_assert!(!is_live_formula(&escape_cell(&v)));
        }

        #[test]
        fn unescape_never_panics(v in any::<String>()) {
            let u = unescape_cell(&v);
            prop_assert!(v.ends_with(u));
        }
    }
}
