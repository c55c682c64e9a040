//! Header rows: which column is which. Names are trimmed and matched in any
//! case; `--map` reads a column of another name as one of ours. A header
//! that lacks required columns names all of them at once, each with the
//! file's column most like it (`email` for `customer_email`), and when the
//! header is further down (an export's title line first) it says on which
//! line, so one try tells the whole fix.

use std::collections::HashSet;
use std::sync::Arc;

use super::{Columns, InputError, ReadOptions};
use crate::model::escape::unescape_cell;
use crate::model::order::{Field, SourceColumn, SourceLayout, REPORT_COLUMNS};
use crate::model::pan::mask_pans;

/// One cell of a header row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Name {
    /// Its position in the row.
    pub pos: usize,
    /// As the file writes it: trimmed, a card number in it masked.
    pub shown: String,
    /// What it is matched as: lower case, or the column `--map` reads it as.
    pub key: String,
}

/// The names of a header row. A column name is free text too: a card
/// number in it is masked; an empty one is `column_N`.
pub(super) fn names<'a>(cells: impl Iterator<Item = &'a str>, opts: &ReadOptions) -> Vec<Name> {
    cells
        .enumerate()
        .map(|(pos, cell)| {
            let trimmed = unescape_cell(cell.trim());
            let shown = if trimmed.is_empty() {
                format!("column_{}", pos + 1)
            } else {
                mask_pans(trimmed).into_owned()
            };
            let key = match opts.map.target(trimmed) {
                Some(target) => target.to_string(),
                None => shown.to_ascii_lowercase(),
            };
            Name { pos, shown, key }
        })
        .collect()
}

/// A required column a header lacks, and the file's column most like it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub column: &'static str,
    pub closest: Option<String>,
}

/// Where a header that lacks most columns seems to be instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderAt {
    /// The line read as the header.
    pub read: u64,
    /// The line further down that holds the columns.
    pub found: u64,
}

/// The columns of `required` the header lacks, each with the closest of
/// the file's other columns (each of those suggested once, best first).
pub(super) fn missing(required: &[&'static str], names: &[Name]) -> Vec<Missing> {
    let absent: Vec<&'static str> = required
        .iter()
        .copied()
        .filter(|c| !names.iter().any(|n| n.key == *c))
        .collect();
    let spare: Vec<&Name> = names
        .iter()
        .filter(|n| {
            !required.contains(&n.key.as_str()) && !REPORT_COLUMNS.contains(&n.key.as_str())
        })
        .collect();
    let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
    for (i, column) in absent.iter().enumerate() {
        for (j, name) in spare.iter().enumerate() {
            let score = similarity(column, &name.shown);
            if score >= 0.8 {
                pairs.push((score, i, j));
            }
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut closest: Vec<Option<String>> = vec![None; absent.len()];
    let mut taken = HashSet::new();
    for (_, i, j) in pairs {
        if closest[i].is_none() && taken.insert(j) {
            closest[i] = Some(spare[j].shown.clone());
        }
    }
    absent
        .into_iter()
        .zip(closest)
        .map(|(column, closest)| Missing { column, closest })
        .collect()
}

/// How alike a column name of ours and one of a file are, 0 to 1: names
/// compared by their letters and digits alone (`Order ID` is `order_id`),
/// one inside the other (`email` in `customer_email`) almost a match, else
/// Jaro-Winkler (typos keep the start of a word).
fn similarity(ours: &str, theirs: &str) -> f64 {
    let squash = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect()
    };
    let (a, b) = (squash(ours), squash(theirs));
    if a.is_empty() || b.is_empty() {
        0.0
    } else if a == b {
        1.0
    } else if b.len() >= 3 && (a.contains(&b) || b.contains(&a)) {
        0.9
    } else {
        strsim::jaro_winkler(&a, &b)
    }
}

/// How many of `required` a row holds as its names: telling the header
/// apart from title lines above it.
pub(super) fn covered<'a>(
    required: &[&'static str],
    cells: impl Iterator<Item = &'a str>,
    opts: &ReadOptions,
) -> usize {
    let names = names(cells, opts);
    required
        .iter()
        .filter(|c| names.iter().any(|n| n.key == **c))
        .count()
}

/// Whether a row after a header that lacks columns is the real header: it
/// holds more than half of them.
pub(super) fn looks_like_header(required: &[&'static str], covered: usize) -> bool {
    covered * 2 > required.len()
}

/// The header as an error shows it: its names joined by commas, the first
/// 512 bytes (a worksheet's header may reach column XFD, a CSV one a megabyte).
pub(super) fn shown(names: &[Name]) -> String {
    const MAX: usize = 512;
    let mut found = names
        .iter()
        .map(|n| {
            if n.shown.starts_with("column_") {
                ""
            } else {
                n.shown.as_str()
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    if found.len() > MAX {
        let cut = (0..=MAX)
            .rev()
            .find(|i| found.is_char_boundary(*i))
            .unwrap_or(0);
        found.truncate(cut);
        found.push_str("...");
    }
    found
}

/// Map header names to the ten fields, the extras, and a fed-back report's
/// `failure_id`. `None` in the error's `header_at` (the reader fills it in
/// when it finds the header further down).
pub(super) fn order_columns(
    path: &str,
    cells: &[&str],
    delimiter: u8,
    opts: &ReadOptions,
) -> Result<Columns, InputError> {
    let names = names(cells.iter().copied(), opts);
    let mut index: [Option<usize>; Field::COUNT] = [None; Field::COUNT];
    let mut extras = Vec::new();
    let mut failure = None;
    let mut seen = HashSet::new();
    for n in &names {
        if !seen.insert(n.key.clone()) {
            return Err(InputError::DuplicateColumn {
                path: path.to_string(),
                column: n.key.clone(),
            });
        }
        if let Some(f) = Field::from_name(&n.key) {
            index[f.index()] = Some(n.pos);
        } else if n.key == "failure_id" {
            failure = Some(n.pos);
        } else if !REPORT_COLUMNS.contains(&n.key.as_str()) {
            extras.push((n.pos, n.key.clone()));
        }
    }
    let required = Field::ALL.map(Field::name);
    let lacking = missing(&required, &names);
    if !lacking.is_empty() {
        if let [one] = cells {
            // One column: the file is probably separated by something else.
            if let Some(d) = [';', '\t', '|', ',']
                .into_iter()
                .find(|d| one.contains(*d) && u32::from(*d) != u32::from(delimiter))
            {
                return Err(InputError::WrongDelimiter {
                    path: path.to_string(),
                    found: d,
                });
            }
        }
        return Err(InputError::MissingColumns {
            path: path.to_string(),
            missing: lacking,
            header_at: None,
            found: shown(&names),
        });
    }
    let layout = opts.keeps_layout().then(|| {
        Arc::new(SourceLayout {
            skip_rows: opts.skip_rows,
            columns: layout_columns(&names),
        })
    });
    Ok(Columns {
        index: index.map(|i| i.unwrap_or(0)),
        extras,
        unescape: true,
        failure,
        zone: opts.timezone,
        layout,
    })
}

/// The file's columns in its order, fields under the file's own names.
fn layout_columns(names: &[Name]) -> Vec<SourceColumn> {
    names
        .iter()
        .filter(|n| n.key != "failure_id" && !REPORT_COLUMNS.contains(&n.key.as_str()))
        .map(|n| match Field::from_name(&n.key) {
            Some(field) => SourceColumn::Field {
                field,
                name: n.shown.clone(),
            },
            None => SourceColumn::Extra(n.key.clone()),
        })
        .collect()
}

/// The positions of a catalog's or delivery file's columns (`required`, in
/// that order), every missing one named at once.
pub(super) fn table_columns<const N: usize>(
    path: &str,
    cells: &[&str],
    required: &[&'static str; N],
    opts: &ReadOptions,
) -> Result<[usize; N], InputError> {
    let names = names(cells.iter().copied(), opts);
    let lacking = missing(required, &names);
    if !lacking.is_empty() {
        return Err(InputError::MissingColumns {
            path: path.to_string(),
            missing: lacking,
            header_at: None,
            found: shown(&names),
        });
    }
    let mut index = [0usize; N];
    for (i, col) in required.iter().enumerate() {
        let mut at = names.iter().filter(|n| n.key == *col);
        index[i] = at.next().map_or(0, |n| n.pos);
        if at.next().is_some() {
            return Err(InputError::DuplicateColumn {
                path: path.to_string(),
                column: col.to_string(),
            });
        }
    }
    Ok(index)
}

/// The message of a header that lacks columns (see `InputError::MissingColumns`).
pub(super) fn missing_message(
    missing: &[Missing],
    header_at: Option<HeaderAt>,
    found: &str,
) -> String {
    let quoted = |m: &Missing| format!("'{}'", m.column);
    if let Some(at) = header_at {
        let first: Vec<String> = missing.iter().take(3).map(quoted).collect();
        let more = match missing.len().saturating_sub(3) {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        return format!(
            "line {} is not the header (it lacks {}{more}); the header seems to be on line {}: pass --skip-rows {} (line {} holds: {found})",
            at.read,
            first.join(", "),
            at.found,
            at.found - 1,
            at.read
        );
    }
    let each: Vec<String> = missing
        .iter()
        .map(|m| match &m.closest {
            Some(c) => format!("{} (did you mean '{c}'?)", quoted(m)),
            None => quoted(m),
        })
        .collect();
    let noun = if missing.len() == 1 {
        "column"
    } else {
        "columns"
    };
    let maps: Vec<String> = missing
        .iter()
        .filter_map(|m| {
            m.closest
                .as_ref()
                .map(|c| format!("--map \"{}={}\"", c.replace('"', "\\\""), m.column))
        })
        .collect();
    let todo = if maps.is_empty() {
        "name each in the header, or pass --map SOURCE=FIELD for a column of another name"
            .to_string()
    } else {
        format!(
            "pass {} to read a column of another name as one",
            maps.join(" ")
        )
    };
    format!(
        "missing required {noun} {} in the header: {todo} (found: {found})",
        each.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::options::{ColumnMap, Rename};

    fn opts(maps: &[&str]) -> ReadOptions {
        let cols = Field::ALL.map(Field::name);
        let renames = maps
            .iter()
            .map(|m| Rename::parse(m, &cols).unwrap())
            .collect();
        ReadOptions {
            map: ColumnMap::new(renames).unwrap(),
            ..ReadOptions::default()
        }
    }

    const SHOP: [&str; 10] = [
        "Order ID",
        "placed_at",
        "email",
        "sku",
        "quantity",
        "unit_price",
        "currency",
        "payment_method",
        "payment_ref",
        "amount",
    ];

    #[test]
    fn every_missing_column_is_named_with_the_closest_of_the_file() {
        let e = order_columns("shop.csv", &SHOP, b',', &ReadOptions::default()).unwrap_err();
        let InputError::MissingColumns { missing, .. } = &e else {
            panic!("{e}")
        };
        let got: Vec<(&str, Option<&str>)> = missing
            .iter()
            .map(|m| (m.column, m.closest.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("order_id", Some("Order ID")),
                ("customer_email", Some("email")),
                ("payment_amount", Some("amount"))
            ]
        );
        let text = e.to_string();
        assert!(
            text.starts_with("shop.csv: missing required columns 'order_id' (did you mean 'Order ID'?), 'customer_email' (did you mean 'email'?), 'payment_amount' (did you mean 'amount'?) in the header: pass --map \"Order ID=order_id\" --map \"email=customer_email\" --map \"amount=payment_amount\""),
            "{text}"
        );
        // No far-fetched suggestion.
        let mut cells = SHOP;
        cells[0] = "Bestellnummer";
        let e = order_columns("shop.csv", &cells, b',', &ReadOptions::default()).unwrap_err();
        assert!(
            e.to_string().contains("'order_id', 'customer_email' (did"),
            "{e}"
        );
    }

    #[test]
    fn mapped_columns_are_read_as_ours_and_kept_in_the_layout() {
        let o = opts(&[
            "Order ID=order_id",
            "email=customer_email",
            "amount=payment_amount",
        ]);
        let cols = order_columns("shop.csv", &SHOP, b',', &o).unwrap();
        assert_eq!(cols.index[Field::CustomerEmail.index()], 2);
        assert_eq!(cols.index[Field::PaymentAmount.index()], 9);
        let layout = cols.layout.as_deref().unwrap();
        assert_eq!(
            layout.columns[0],
            SourceColumn::Field {
                field: Field::OrderId,
                name: "Order ID".into()
            }
        );
        // A column both present and mapped to is named twice.
        let mut cells = SHOP.to_vec();
        cells.push("customer_email");
        let e = order_columns("shop.csv", &cells, b',', &o).unwrap_err();
        assert!(matches!(e, InputError::DuplicateColumn { .. }), "{e}");
        // No layout without --map or --skip-rows: the report keeps its own.
        let plain = Field::ALL.map(Field::name);
        let cols = order_columns("a.csv", &plain, b',', &ReadOptions::default()).unwrap();
        assert!(cols.layout.is_none());
    }

    #[test]
    fn a_title_line_is_told_from_the_header() {
        let title = ["Order export 2026-11-25", "", ""];
        let required = Field::ALL.map(Field::name);
        let o = ReadOptions::default();
        assert!(!looks_like_header(
            &required,
            covered(&required, title.into_iter(), &o)
        ));
        assert!(looks_like_header(
            &required,
            covered(&required, required.into_iter(), &o)
        ));
        let m = missing_message(
            &missing(&required, &names(title.into_iter(), &o)),
            Some(HeaderAt { read: 1, found: 3 }),
            "Order export 2026-11-25,,",
        );
        assert_eq!(
            m,
            "line 1 is not the header (it lacks 'order_id', 'placed_at', 'customer_email' and 7 more); \
             the header seems to be on line 3: pass --skip-rows 2 (line 1 holds: Order export 2026-11-25,,)"
        );
    }
}
