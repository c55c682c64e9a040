//! Card-number (PAN) detection and masking for free-text fields.

use std::borrow::Cow;
use std::ops::Range;

const MIN_PAN_DIGITS: usize = 13;
const MAX_PAN_DIGITS: usize = 19;
const MIN_MASK_STARS: usize = 9;
const MAX_MASK_STARS: usize = 15;
const KEPT_DIGITS: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
enum PanKind {
    /// Clear digits (possibly with single separators) that must be masked.
    Clear,
    /// Already masked the way `mask_pans` masks: stars then the last four digits.
    Masked,
}

fn is_separator(b: u8) -> bool {
    b == b' ' || b == b'-'
}

/// Single left-to-right scanner shared by `find_pans`, `contains_pan` and `mask_pans`,
/// so that all three agree on what a card number is. Every range boundary sits next
/// to an ASCII byte, so ranges are always on char boundaries.
struct PanScanner<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Card numbers found in the chain of digit groups just scanned.
    pending: std::collections::VecDeque<Range<usize>>,
}

impl<'a> PanScanner<'a> {
    fn new(text: &'a str) -> Self {
        PanScanner {
            bytes: text.as_bytes(),
            pos: 0,
            pending: std::collections::VecDeque::new(),
        }
    }

    /// At a '*': consume the whole star run; report a masked form if it qualifies.
    /// A masked form also consumes its four digits, so they do not start a new digit run.
    fn scan_stars(&mut self) -> Option<Range<usize>> {
        let start = self.pos;
        let mut i = start;
        while self.bytes.get(i) == Some(&b'*') {
            i += 1;
        }
        let stars = i - start;
        self.pos = i;
        if !(MIN_MASK_STARS..=MAX_MASK_STARS).contains(&stars) {
            return None;
        }
        let tail = self.bytes.get(i..i + KEPT_DIGITS)?;
        let fifth_is_digit = self
            .bytes
            .get(i + KEPT_DIGITS)
            .is_some_and(u8::is_ascii_digit);
        if tail.iter().all(u8::is_ascii_digit) && !fifth_is_digit {
            self.pos = i + KEPT_DIGITS;
            Some(start..self.pos)
        } else {
            None
        }
    }

    /// At a digit: consume the chain of digit groups (maximal runs of digits)
    /// joined by single separators, and queue every card number in it: a run
    /// of whole consecutive groups holding 13..=19 digits that passes Luhn.
    /// The earliest such run wins, the longest from its first group (so that
    /// no digit of a card number stays in clear); the search goes on after it.
    fn scan_chain(&mut self) {
        let groups = self.groups();
        let mut s = 0;
        while s < groups.len() {
            match self.card_from(&groups, s) {
                Some(e) => {
                    self.pending.push_back(groups[s].start..groups[e].end);
                    s = e + 1;
                }
                None => s += 1,
            }
        }
    }

    /// The digit groups of the chain starting at `pos` (consumed).
    fn groups(&mut self) -> Vec<Range<usize>> {
        let mut groups = Vec::new();
        let mut i = self.pos;
        loop {
            let start = i;
            while self.bytes.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            groups.push(start..i);
            let joined = self.bytes.get(i).copied().is_some_and(is_separator)
                && self.bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
            if !joined {
                break;
            }
            i += 1;
        }
        self.pos = i;
        groups
    }

    /// The last group of the longest card number starting at group `s`.
    fn card_from(&self, groups: &[Range<usize>], s: usize) -> Option<usize> {
        let mut buf = [0u8; MAX_PAN_DIGITS];
        let mut count = 0usize;
        let mut last = None;
        for (e, g) in groups.iter().enumerate().skip(s) {
            let Some(digits) = self.bytes.get(g.clone()) else {
                break;
            };
            if count + digits.len() > MAX_PAN_DIGITS {
                break;
            }
            buf[count..count + digits.len()].copy_from_slice(digits);
            count += digits.len();
            if count >= MIN_PAN_DIGITS && luhn_valid(&buf[..count]) {
                last = Some(e);
            }
        }
        last
    }
}

impl Iterator for PanScanner<'_> {
    type Item = (Range<usize>, PanKind);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.pending.pop_front() {
                return Some((r, PanKind::Clear));
            }
            let &b = self.bytes.get(self.pos)?;
            if b == b'*' {
                if let Some(r) = self.scan_stars() {
                    return Some((r, PanKind::Masked));
                }
            } else if b.is_ascii_digit() {
                self.scan_chain();
            } else {
                self.pos += 1;
            }
        }
    }
}

/// Byte ranges (into `text`) of every card number, in order; for masked forms the range covers the stars and 4 digits.
pub fn find_pans(text: &str) -> Vec<std::ops::Range<usize>> {
    PanScanner::new(text).map(|(r, _)| r).collect()
}

pub fn contains_pan(text: &str) -> bool {
    // Cheap pre-pass: most fields have too few digits (and no stars) to hold a card number.
    let (mut digits, mut stars) = (0usize, 0usize);
    for &b in text.as_bytes() {
        if b.is_ascii_digit() {
            digits += 1;
        } else if b == b'*' {
            stars += 1;
        }
    }
    let could_be_clear = digits >= MIN_PAN_DIGITS;
    let could_be_masked = stars >= MIN_MASK_STARS && digits >= KEPT_DIGITS;
    if !could_be_clear && !could_be_masked {
        return false;
    }
    PanScanner::new(text).next().is_some()
}

/// The text with every clear card number masked (Cow::Borrowed when nothing changes).
pub fn mask_pans(text: &str) -> std::borrow::Cow<'_, str> {
    let mut out: Option<String> = None;
    let mut copied_to = 0usize;
    for (range, kind) in PanScanner::new(text) {
        if kind == PanKind::Masked {
            continue;
        }
        let Some(found) = text.get(range.clone()) else {
            continue; // Unreachable: scanner ranges are on ASCII boundaries.
        };
        let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
        o.push_str(text.get(copied_to..range.start).unwrap_or_default());
        let digits: Vec<char> = found.chars().filter(char::is_ascii_digit).collect();
        let keep_from = digits.len().saturating_sub(KEPT_DIGITS);
        o.extend(std::iter::repeat_n('*', keep_from));
        o.extend(digits.get(keep_from..).unwrap_or_default());
        copied_to = range.end;
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut o) => {
            o.push_str(text.get(copied_to..).unwrap_or_default());
            Cow::Owned(o)
        }
    }
}

/// Shortest run of digits masked in raw text that could not be parsed.
const MIN_RAW_DIGITS: usize = 12;

/// Raw text of a record that could not be parsed: every run of 12 or more
/// digits (single spaces or dashes between digits allowed) masked like a card
/// number, Luhn or not. A card number cut off in the middle fails the Luhn
/// check but is still card data.
pub fn mask_digit_runs(text: &str) -> Cow<'_, str> {
    let b = text.as_bytes();
    let mut out: Option<String> = None;
    let (mut copied_to, mut i) = (0usize, 0usize);
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        let mut digits = Vec::new();
        while i < b.len() {
            if b[i].is_ascii_digit() {
                digits.push(b[i]);
                i += 1;
            } else if is_separator(b[i]) && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                i += 1;
            } else {
                break;
            }
        }
        if digits.len() < MIN_RAW_DIGITS {
            continue;
        }
        let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
        // Run boundaries sit next to ASCII bytes, so they are char boundaries.
        o.push_str(text.get(copied_to..start).unwrap_or_default());
        let keep_from = digits.len() - KEPT_DIGITS;
        o.extend(std::iter::repeat_n('*', keep_from));
        o.extend(digits[keep_from..].iter().map(|d| char::from(*d)));
        copied_to = i;
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut o) => {
            o.push_str(text.get(copied_to..).unwrap_or_default());
            Cow::Owned(o)
        }
    }
}

/// Luhn check over ASCII digit bytes.
pub fn luhn_valid(digits: &[u8]) -> bool {
    // Empty input or any non-digit byte is not a valid number.
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let dd = d * 2;
                if dd > 9 {
                    dd - 9
                } else {
                    dd
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Append the Luhn check digit to `body` (ASCII digits).
    fn with_check_digit(body: &str) -> String {
        for d in b'0'..=b'9' {
            let mut s = body.as_bytes().to_vec();
            s.push(d);
            if luhn_valid(&s) {
                return String::from_utf8(s).unwrap();
            }
        }
        unreachable!("one check digit always works")
    }

    fn visa_19() -> String {
        with_check_digit("411111111111111111")
    }

    /// A Luhn-invalid variant of a valid number (change the last digit).
    fn break_luhn(valid: &str) -> String {
        let mut s = valid.as_bytes().to_vec();
        let last = s.last_mut().unwrap();
        *last = if *last == b'9' { b'0' } else { *last + 1 };
        String::from_utf8(s).unwrap()
    }

    const KNOWN: [&str; 4] = [
        "4111111111111111",
        "5555555555554444",
        "378282246310005",
        "4222222222222",
    ];

    #[test]
    fn raw_text_loses_every_long_digit_run() {
        // The first 13 digits of a card number cut off mid-line: not Luhn-valid, still masked.
        let raw = r#"{"order_id":"A","payment_ref":"4111111111111"#;
        assert_eq!(
            mask_digit_runs(raw),
            r#"{"order_id":"A","payment_ref":"*********1111"#
        );
        assert_eq!(mask_digit_runs("id 12345678901 ok"), "id 12345678901 ok");
        assert_eq!(mask_digit_runs("4111 1111 1111"), "********1111");
        assert_eq!(
            mask_digit_runs("x1234-5678-9012-3456-7890y"),
            "x****************7890y"
        );
        assert_eq!(
            mask_digit_runs("a ************1111 b"),
            "a ************1111 b"
        );
        assert!(matches!(
            mask_digit_runs("no digits here"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn luhn_known_values() {
        for pan in KNOWN {
            assert!(luhn_valid(pan.as_bytes()), "{pan}");
            assert!(!luhn_valid(break_luhn(pan).as_bytes()), "{pan}");
        }
        let v19 = visa_19();
        assert_eq!(v19.len(), 19);
        assert!(luhn_valid(v19.as_bytes()));
        assert!(luhn_valid(b"0"));
        assert!(!luhn_valid(b""));
        assert!(!luhn_valid(b"4111 1111 1111 1111"));
    }

    #[test]
    fn detects_and_masks_known_pans() {
        let mut all: Vec<String> = KNOWN.iter().map(|s| s.to_string()).collect();
        all.push(visa_19());
        for pan in &all {
            assert_eq!(find_pans(pan), vec![0..pan.len()], "{pan}");
            assert!(contains_pan(pan));
            let masked = mask_pans(pan);
            let expected = format!("{}{}", "*".repeat(pan.len() - 4), &pan[pan.len() - 4..]);
            assert_eq!(masked, expected);
            // The masked form is itself recognised, and left alone.
            assert_eq!(find_pans(&masked), vec![0..masked.len()]);
            assert!(matches!(mask_pans(&masked), Cow::Borrowed(_)));
        }
    }

    #[test]
    fn separators() {
        assert_eq!(mask_pans("4111 1111 1111 1111"), "************1111");
        assert_eq!(mask_pans("4111-1111-1111-1111"), "************1111");
        assert_eq!(mask_pans("4111 1111-1111 1111"), "************1111");
        assert_eq!(
            mask_pans("ref 4111-1111-1111-1111 ok"),
            "ref ************1111 ok"
        );
        assert_eq!(find_pans("ref 4111-1111-1111-1111 ok"), vec![4..23]);
        // Separators at the ends are not part of the run.
        assert_eq!(find_pans("-4111 1111 1111 1111-"), vec![1..20]);
        assert_eq!(mask_pans(" 4111111111111111 "), " ************1111 ");
        assert_eq!(mask_pans("3782 822463 10005"), "***********0005");
    }

    #[test]
    fn double_separators_split_runs() {
        for text in [
            "4111  1111 1111 1111",
            "4111--1111-1111-1111",
            "4111 -1111 1111 1111",
            "41111111  11111111",
        ] {
            assert!(find_pans(text).is_empty(), "{text}");
            assert!(matches!(mask_pans(text), Cow::Borrowed(_)));
        }
        // Each half can still be a card number on its own.
        let text = "4111111111111111  5555555555554444";
        assert_eq!(find_pans(text), vec![0..16, 18..34]);
        assert_eq!(mask_pans(text), "************1111  ************4444");
    }

    #[test]
    fn other_characters_end_runs() {
        assert!(find_pans("4111.1111.1111.1111").is_empty());
        assert!(find_pans("4111_1111_1111_1111").is_empty());
        assert!(find_pans("4111\t1111\t1111\t1111").is_empty());
        assert_eq!(find_pans("x4111111111111111y"), vec![1..17]);
    }

    #[test]
    fn luhn_invalid_left_alone() {
        for pan in KNOWN {
            let bad = break_luhn(pan);
            assert!(find_pans(&bad).is_empty(), "{bad}");
            assert!(!contains_pan(&bad));
            assert!(matches!(mask_pans(&bad), Cow::Borrowed(_)));
        }
    }

    #[test]
    fn wrong_lengths_ignored() {
        // 12 digits, Luhn-valid.
        let twelve = with_check_digit("41111111111");
        assert_eq!(twelve.len(), 12);
        assert!(find_pans(&twelve).is_empty());
        // 20 digits, Luhn-valid, containing valid 16-digit sub-runs.
        let twenty = with_check_digit(&format!("411{}", "4111111111111111"));
        assert_eq!(twenty.len(), 20);
        assert!(luhn_valid(twenty.as_bytes()));
        assert!(find_pans(&twenty).is_empty());
        // Twenty digits in groups: the whole groups of the card are one.
        let twenty_spaced = format!("0000 {}", "4111 1111 1111 1111");
        assert_eq!(find_pans(&twenty_spaced), vec![5..24]);
        // A group of more than 19 digits is never part of a card number.
        let long_group = format!("{twenty} 4111");
        assert!(find_pans(&long_group).is_empty());
        // A long run of zeros is Luhn-valid but far too long.
        assert!(find_pans(&"0".repeat(100)).is_empty());
    }

    #[test]
    fn card_numbers_beside_other_digits_are_whole_groups() {
        // Card and CVV; a phone number before a card; card and expiry date.
        assert_eq!(mask_pans("4111 1111 1111 1111 123"), "************1111 123");
        assert_eq!(
            mask_pans("tel 1234 5555555555554444"),
            "tel 1234 ************4444"
        );
        assert_eq!(
            mask_pans("4111-1111-1111-1111-12/25"),
            "************1111-12/25"
        );
        // Two card numbers side by side, joined by one separator or none at all.
        assert_eq!(
            mask_pans("4111111111111111 5555555555554444"),
            "************1111 ************4444"
        );
        assert_eq!(
            mask_pans("4111 1111 1111 1111 5555 5555 5555 4444"),
            "************1111 ************4444"
        );
        assert_eq!(
            mask_pans("378282246310005-4222222222222"),
            "***********0005-*********2222"
        );
        // A group is whole: digits inside a longer group are not a card.
        assert!(find_pans("94111111111111111").is_empty());
        // The masked form is a card number again, and stays as it is.
        for text in ["************1111 123", "tel 1234 ************4444"] {
            assert!(contains_pan(text), "{text}");
            assert!(matches!(mask_pans(text), Cow::Borrowed(_)));
        }
    }

    #[test]
    fn masked_forms() {
        let nine = format!("{}1111", "*".repeat(9));
        let fifteen = format!("{}1111", "*".repeat(15));
        assert_eq!(find_pans(&nine), vec![0..13]);
        assert_eq!(find_pans(&fifteen), vec![0..19]);
        assert!(contains_pan(&nine));
        assert!(contains_pan(&format!("card {fifteen}.")));
        assert!(matches!(mask_pans(&nine), Cow::Borrowed(_)));
        for text in [
            format!("{}1111", "*".repeat(8)),
            format!("{}1111", "*".repeat(16)),
            format!("{}111", "*".repeat(12)),
            format!("{}11111", "*".repeat(12)),
            format!("{} 1111", "*".repeat(12)),
        ] {
            assert!(find_pans(&text).is_empty(), "{text}");
            assert!(!contains_pan(&text), "{text}");
        }
        // Text after the four digits is fine when it is not a digit.
        assert_eq!(find_pans("card ************1111, exp 12/29"), vec![5..21]);
    }

    #[test]
    fn non_ascii_text() {
        let text = "Kärtchen: 4111 1111 1111 1111 — danke ✓ ５５５５";
        let ranges = find_pans(text);
        assert_eq!(ranges.len(), 1);
        for r in &ranges {
            assert!(text.is_char_boundary(r.start) && text.is_char_boundary(r.end));
            assert_eq!(&text[r.clone()], "4111 1111 1111 1111");
        }
        assert_eq!(
            mask_pans(text),
            "Kärtchen: ************1111 — danke ✓ ５５５５"
        );
        // Full-width digits are not ASCII digits.
        assert!(!contains_pan("４１１１１１１１１１１１１１１１"));
    }

    #[test]
    fn fast_path_and_empty() {
        assert!(!contains_pan(""));
        assert!(!contains_pan("order 12345 qty 3"));
        assert!(find_pans("").is_empty());
        assert!(matches!(mask_pans("plain text"), Cow::Borrowed(_)));
    }

    #[test]
    fn multiple_pans_in_order() {
        let text = "a 4111111111111111 b 5555-5555-5555-4444 c ***********0005 d";
        let ranges = find_pans(text);
        assert_eq!(ranges.len(), 3);
        assert!(ranges.windows(2).all(|w| w[0].end <= w[1].start));
        assert_eq!(
            mask_pans(text),
            "a ************1111 b ************4444 c ***********0005 d"
        );
    }

    /// Longest run of consecutive ASCII digits.
    fn longest_digit_run(s: &str) -> usize {
        s.split(|c: char| !c.is_ascii_digit())
            .map(str::len)
            .max()
            .unwrap_or(0)
    }

    fn luhn_valid_pan() -> impl Strategy<Value = String> {
        "[0-9]{12,18}".prop_map(|body| with_check_digit(&body))
    }

    proptest! {
        #[test]
        fn embedded_pans_are_found_and_masked(
            pan in luhn_valid_pan(),
            before in "[^0-9*]{0,20}",
            after in "[^0-9*]{0,20}",
            sep in prop_oneof![Just(""), Just(" "), Just("-")],
        ) {
            // Optionally group in fours with a single separator.
            let body: String = if sep.is_empty() {
                pan.clone()
            } else {
                pan.as_bytes()
                    .chunks(4)
                    .map(|c| std::str::from_utf8(c).unwrap())
                    .collect::<Vec<_>>()
                    .join(sep)
            };
            // Surrounding text has no digits or stars; a separator there cannot join the run.
            let text = format!("{before}{body}{after}");
            let ranges = find_pans(&text);
            prop_assert_eq!(ranges.len(), 1);
            let r = ranges[0].clone();
            prop_assert!(text.is_char_boundary(r.start) && text.is_char_boundary(r.end));
            prop_assert_eq!(&text[r], body.as_str());
            prop_assert!(contains_pan(&text));

            let masked = mask_pans(&text);
            prop_assert!(longest_digit_run(&masked) < 5);
            let last4 = &pan[pan.len() - 4..];
            let expected = format!("{before}{}{last4}{after}", "*".repeat(pan.len() - 4));
            prop_assert_eq!(masked.as_ref(), expected.as_str());
            let masked_part = &masked[before.len()..masked.len() - after.len()];
            prop_assert!(masked_part.ends_with(last4));
        }

        #[test]
        fn masked_output_has_no_clear_pan(s in "([0-9]{1,6}|[ \\-*]{1,3}|[a-zé✓]{1,2}){0,30}") {
            let masked = mask_pans(&s);
            let mut scanner = PanScanner::new(&masked);
            prop_assert!(scanner.all(|(_, kind)| kind == PanKind::Masked), "{:?}", masked);
        }

        #[test]
        fn masked_output_has_no_clear_pan_with_real_pans(
            parts in proptest::collection::vec(
                prop_oneof![
                    luhn_valid_pan(),
                    "[0-9]{1,5}",
                    "[ \\-*]{1,2}",
                    "\\*{9,15}",
                    "[a-z✓]{1,3}",
                ],
                0..12,
            )
        ) {
            let s = parts.concat();
            let masked = mask_pans(&s);
            let mut scanner = PanScanner::new(&masked);
            prop_assert!(scanner.all(|(_, kind)| kind == PanKind::Masked), "{:?} -> {:?}", s, masked);
            // Masking is idempotent.
            prop_assert!(matches!(mask_pans(&masked), Cow::Borrowed(_)));
        }

        #[test]
        fn raw_text_keeps_no_run_of_12_digits(s in "([0-9]{1,8}|[ \\-*]{1,2}|[a-zé\"{}:]{1,3}){0,30}") {
            let out = mask_digit_runs(&s);
            let mut run = 0usize;
            let b = out.as_bytes();
            for (i, c) in b.iter().enumerate() {
                if c.is_ascii_digit() {
                    run += 1;
                } else if !(is_separator(*c) && run > 0 && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
                    run = 0;
                }
                prop_assert!(run < MIN_RAW_DIGITS, "{s:?} -> {out:?}");
            }
        }

        #[test]
        fn never_panics_and_ranges_are_sane(s in any::<String>()) {
            let ranges = find_pans(&s);
            let mut last_end = 0;
            for r in &ranges {
                prop_assert!(r.start >= last_end && r.start < r.end && r.end <= s.len());
                prop_assert!(s.is_char_boundary(r.start) && s.is_char_boundary(r.end));
                last_end = r.end;
            }
            prop_assert_eq!(contains_pan(&s), !ranges.is_empty());
            let masked = mask_pans(&s);
            prop_assert_eq!(masked.len() <= s.len(), true);
        }

        #[test]
        fn contains_pan_agrees_with_find_pans(s in "[0-9 \\-*x]{0,60}") {
            prop_assert_eq!(contains_pan(&s), !find_pans(&s).is_empty());
        }
    }
}
