//! Text echoed to a terminal: control characters escaped, so that a header
//! name, a value or a file name from the input can neither move the cursor,
//! set the window title, clear the screen nor break a table's lines.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether a character must not reach a terminal raw: C0 and C1 controls,
/// DEL, and the Unicode controls that reorder or hide text (bidi overrides,
/// zero-width and line/paragraph separators).
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

/// The text with every unsafe character written as an escape (`\n`, `\t`,
/// `\r`, `\x1b`, `\u{202e}`); borrowed when there is nothing to escape. A
/// backslash is left alone: the result is for reading, not for parsing back.
pub fn for_terminal(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) && (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A value for a message: quoted, control characters escaped, cut when long,
/// and masked when it comes from a free-text field.
pub fn show(v: &str, free_text: bool) -> String {
    const MAX: usize = 80;
    let v = if free_text {
        crate::model::pan::mask_pans(v)
    } else {
        v.into()
    };
    if v.chars().count() > MAX {
        let cut: String = v.chars().take(MAX).collect();
        format!("{cut:?}...")
    } else {
        format!("{v:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_what_a_terminal_would_obey() {
        assert_eq!(for_terminal("plain é ✓"), "plain é ✓");
        assert!(matches!(for_terminal("plain"), Cow::Borrowed(_)));
        assert_eq!(for_terminal("a\nb\tc\rd"), "a\\nb\\tc\\rd");
        assert_eq!(for_terminal("\x1b]0;pwned\x07"), "\\x1b]0;pwned\\x07");
        assert_eq!(for_terminal("\x1b[2J"), "\\x1b[2J");
        assert_eq!(for_terminal("x\u{9b}y\u{7f}"), "x\\x9by\\x7f");
        assert_eq!(for_terminal("abc\u{202e}fed"), "abc\\u{202e}fed");
    }

    proptest! {
        #[test]
        fn no_control_character_survives(s in any::<String>()) {
            let out = for_terminal(&s);
            prop_assert!(!out.chars().any(is_unsafe));
            if !s.chars().any(is_unsafe) {
                prop_assert_eq!(out.as_ref(), s.as_str());
            }
        }
    }
}
