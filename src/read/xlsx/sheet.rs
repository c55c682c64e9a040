//! A worksheet's rows, one at a time, from its XML: each row's cells as
//! text (by type, see `value`), with no more than the record limit held. A
//! row's number is its `r`; a cell's column its reference's letters; nothing
//! the sheet declares of its size (`<dimension>`, `spans`) is read, so a cell
//! at `XFD1048576` costs its own row and nothing more.

use quick_xml::events::Event;

use super::package::{PartReader, Shared, SharedStrings, PREFIX};
use super::value::{date_cell_shown, date_cell_text, number_text, DateCell, Issue, Shows};
use super::xml::{attr, local, unescape_ooxml, Text, Xml};
use crate::model::local_time::Zone;
use crate::read::InputError;

/// One non-empty cell: its column (0-based), its text, and why that text is
/// not its value, if it is not.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cell {
    pub col: u32,
    pub text: String,
    pub issue: Option<Issue>,
}

/// A row of the sheet.
#[derive(Debug, Default)]
pub(crate) struct Row {
    /// Its number in the sheet (1-based).
    pub line: u64,
    /// Its non-empty cells, in the order of the file.
    pub cells: Vec<Cell>,
    /// The row's text went over the record limit: its first bytes, and no cells.
    pub too_long: Option<String>,
    /// Bytes of text held: the cells' and a separator between each two.
    used: usize,
    next_col: u32,
}

impl Row {
    fn add(&mut self, cell: Cell, limit: usize) {
        let used = self.used + usize::from(!self.cells.is_empty()) + cell.text.len();
        if used > limit {
            self.overflow(cell);
        } else {
            self.used = used;
            self.cells.push(cell);
        }
    }

    /// The row is over the limit with `last`: keep its first bytes only.
    fn overflow(&mut self, last: Cell) {
        self.cells.push(last);
        self.too_long = Some(row_text(&self.cells, PREFIX));
        self.cells = Vec::new();
    }
}

/// The row as a CSV line would hold it (each cell in its column, commas
/// between, no quoting), cut at about `cap` bytes.
pub(crate) fn row_text(cells: &[Cell], cap: usize) -> String {
    let mut out = String::new();
    let mut prev: Option<u32> = None;
    for c in cells {
        let commas = match prev {
            None => c.col,
            Some(p) => c.col.saturating_sub(p).max(1),
        };
        let commas = (commas as usize).min(cap.saturating_sub(out.len()));
        out.extend(std::iter::repeat_n(',', commas));
        out.push_str(&c.text[..floor_boundary(&c.text, cap.saturating_sub(out.len()))]);
        if out.len() >= cap {
            break;
        }
        prev = Some(c.col);
    }
    out
}

fn floor_boundary(s: &str, at: usize) -> usize {
    if at >= s.len() {
        return s.len();
    }
    (0..=at).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0)
}

/// A cell's type (its `t`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Shared,
    Inline,
    Text,
    Bool,
    Error,
    Date,
    Number,
}

/// The cell being read.
#[derive(Debug)]
struct Open {
    col: u32,
    kind: Kind,
    style: usize,
    formula: bool,
    has_value: bool,
}

/// What one XML event means here, with the event's borrow let go.
enum Tag {
    SheetData {
        empty: bool,
    },
    SheetDataEnd,
    Row {
        line: Option<u64>,
        empty: bool,
    },
    RowEnd,
    Cell {
        open: Open,
        explicit: bool,
        empty: bool,
    },
    CellEnd,
    Start(&'static str),
    Empty(&'static str),
    End(&'static str),
    CData(String),
    Eof,
    Other,
}

/// The elements inside a cell that matter, by local name.
const INNER: [&str; 5] = ["v", "is", "t", "rPh", "f"];

fn inner(name: &str) -> Option<&'static str> {
    INNER.iter().copied().find(|n| *n == name)
}

fn tag(ev: Event<'_>) -> Tag {
    match ev {
        Event::Start(e) => open_tag(&e, false),
        Event::Empty(e) => open_tag(&e, true),
        Event::End(e) => match e.local_name().as_ref() {
            "sheetData" => Tag::SheetDataEnd,
            "row" => Tag::RowEnd,
            "c" => Tag::CellEnd,
            n => inner(n).map_or(Tag::Other, Tag::End),
        },
        Event::CData(c) => Tag::CData(c.into_inner().into_owned()),
        Event::Eof => Tag::Eof,
        _ => Tag::Other,
    }
}

fn open_tag(e: &quick_xml::events::BytesStart<'_>, empty: bool) -> Tag {
    match local(e) {
        "sheetData" => Tag::SheetData { empty },
        "row" => Tag::Row {
            line: attr(e, "r").and_then(|r| r.trim().parse().ok()),
            empty,
        },
        "c" => {
            let at = attr(e, "r").and_then(|r| column(&r));
            let kind = match attr(e, "t").as_deref() {
                Some("s") => Kind::Shared,
                Some("inlineStr") => Kind::Inline,
                Some("b") => Kind::Bool,
                Some("e") => Kind::Error,
                Some("d") => Kind::Date,
                Some("n") | None => Kind::Number,
                Some(_) => Kind::Text,
            };
            let open = Open {
                col: at.unwrap_or(0),
                kind,
                style: attr(e, "s").and_then(|s| s.parse().ok()).unwrap_or(0),
                formula: false,
                has_value: false,
            };
            Tag::Cell {
                open,
                explicit: at.is_some(),
                empty,
            }
        }
        n => match inner(n) {
            Some(n) if empty => Tag::Empty(n),
            Some(n) => Tag::Start(n),
            None => Tag::Other,
        },
    }
}

/// The column (0-based) of a cell reference: `A1` is 0, `XFD1048576` 16383.
/// Letters past any sheet's width saturate (the row is then too wide).
pub(crate) fn column(reference: &str) -> Option<u32> {
    let letters = reference.bytes().take_while(u8::is_ascii_alphabetic);
    let n = letters.fold(0u32, |n, b| {
        n.saturating_mul(26)
            .saturating_add(u32::from(b.to_ascii_uppercase() - b'A' + 1))
    });
    n.checked_sub(1)
}

/// The column's letters: 0 is `A`, 16383 `XFD`.
pub(crate) fn column_name(col: u32) -> String {
    let mut n = u64::from(col) + 1;
    let mut out = Vec::new();
    while n > 0 {
        out.push(b'A' + ((n - 1) % 26) as u8);
        n = (n - 1) / 26;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

pub(crate) struct SheetRows {
    xml: Xml<PartReader>,
    path: String,
    part: String,
    strings: SharedStrings,
    styles: Vec<Shows>,
    date1904: bool,
    /// The zone date cells are read in (`--timezone`).
    zone: Option<Zone>,
    limit: usize,
    /// The text of the value being read (`<v>`, or `<t>` of an inline string).
    value: Text,
    row: Option<Row>,
    cell: Option<Open>,
    inside: Inside,
    last_line: u64,
    done: bool,
}

impl SheetRows {
    pub fn new(
        book: super::package::Book,
        path: &str,
        limit: usize,
        zone: Option<Zone>,
    ) -> SheetRows {
        SheetRows {
            xml: book.sheet,
            path: path.to_string(),
            part: book.sheet_name,
            strings: book.strings,
            styles: book.styles,
            date1904: book.date1904,
            zone,
            limit,
            value: Text::default(),
            row: None,
            cell: None,
            inside: Inside::default(),
            last_line: 0,
            done: false,
        }
    }

    /// The next row of the sheet (blank ones too); `None` at its end.
    pub fn next_row(&mut self) -> Result<Option<Row>, InputError> {
        while !self.done {
            let sink = self.inside.sink.then_some(&mut self.value);
            let ev = self.xml.next(sink).map_err(|e| {
                let part = format!("{} (near row {})", self.part, self.last_line + 1);
                super::package::xml_error(&self.path, &part, e)
            })?;
            match tag(ev) {
                Tag::SheetData { empty } => self.done = empty,
                Tag::SheetDataEnd | Tag::Eof => self.done = true,
                Tag::Row { line, empty } => {
                    let line = line.unwrap_or(self.last_line + 1);
                    self.last_line = line;
                    if !empty {
                        self.row = Some(Row {
                            line,
                            ..Row::default()
                        });
                    }
                }
                Tag::RowEnd => {
                    if let Some(row) = self.row.take() {
                        return Ok(Some(row));
                    }
                }
                Tag::Cell {
                    open,
                    explicit,
                    empty,
                } => self.start_cell(open, explicit, empty),
                Tag::CellEnd => self.finish_cell(),
                Tag::Other => {}
                inner => self.inner(inner),
            }
        }
        // A sheet cut short of its end tags: the row read so far.
        self.finish_cell();
        Ok(self.row.take())
    }

    fn start_cell(&mut self, mut open: Open, explicit: bool, empty: bool) {
        let Some(row) = self.row.as_ref() else {
            return;
        };
        if !explicit {
            open.col = row.next_col;
        }
        // Once the row is over the limit, its text is only counted.
        let cap = if row.too_long.is_some() {
            0
        } else {
            self.limit.saturating_add(1)
        };
        self.value.reset(cap);
        self.cell = Some(open);
        self.inside = Inside::default();
        if empty {
            self.finish_cell();
        }
    }

    /// An element inside a cell: its value `<v>`, an inline string's `<t>`
    /// (not those of a phonetic reading `<rPh>`), a formula `<f>`.
    fn inner(&mut self, tag: Tag) {
        let at = &mut self.inside;
        match tag {
            Tag::Start(name) => {
                match name {
                    "is" => at.is = true,
                    "rPh" => at.phonetic += 1,
                    "f" => mark(&mut self.cell, |c| c.formula = true),
                    _ => {}
                }
                at.sink = self.cell.is_some()
                    && (name == "v" || (name == "t" && at.is && at.phonetic == 0));
            }
            Tag::Empty("f") => mark(&mut self.cell, |c| c.formula = true),
            Tag::Empty("v") => mark(&mut self.cell, |c| c.has_value = true),
            Tag::End(name) => {
                match name {
                    "is" => at.is = false,
                    "rPh" => at.phonetic = at.phonetic.saturating_sub(1),
                    "v" | "t" if at.sink => mark(&mut self.cell, |c| c.has_value = true),
                    _ => {}
                }
                at.sink = false;
            }
            Tag::CData(text) if at.sink => self.value.push(text.as_bytes()),
            _ => {}
        }
    }

    /// Add the cell just read to its row.
    fn finish_cell(&mut self) {
        self.inside = Inside::default();
        let (Some(open), Some(row)) = (self.cell.take(), self.row.as_mut()) else {
            return;
        };
        row.next_col = open.col.saturating_add(1);
        if row.too_long.is_some() {
            return;
        }
        let col = open.col;
        if self.value.over() {
            let kept = &self.value.bytes[..self.value.bytes.len().min(PREFIX)];
            let text = String::from_utf8_lossy(kept).into_owned();
            row.overflow(Cell {
                col,
                text,
                issue: None,
            });
            return;
        }
        let book = Book {
            strings: &self.strings,
            styles: &self.styles,
            date1904: self.date1904,
            zone: self.zone.as_ref(),
        };
        match resolve(&open, &self.value.bytes, &book) {
            Value::Empty => {}
            Value::Cell(text, issue) => row.add(Cell { col, text, issue }, self.limit),
            Value::TooLong(prefix) => row.overflow(Cell {
                col,
                text: prefix,
                issue: None,
            }),
        }
    }
}

fn mark(cell: &mut Option<Open>, f: impl FnOnce(&mut Open)) {
    if let Some(c) = cell.as_mut() {
        f(c);
    }
}

/// Where the reader is inside a cell.
#[derive(Debug, Default)]
struct Inside {
    /// In a `<v>`, or a `<t>` of an inline string: its text is the value's.
    sink: bool,
    /// In an inline string `<is>`.
    is: bool,
    /// Depth of phonetic readings `<rPh>`.
    phonetic: u32,
}

/// A cell's value, resolved.
enum Value {
    Empty,
    Cell(String, Option<Issue>),
    /// A shared string over the record limit: its first bytes.
    TooLong(String),
}

/// What a cell's value depends on besides its own text.
struct Book<'a> {
    strings: &'a SharedStrings,
    styles: &'a [Shows],
    date1904: bool,
    zone: Option<&'a Zone>,
}

/// What a cell's type and the workbook make of its raw text.
fn resolve(c: &Open, raw: &[u8], book: &Book<'_>) -> Value {
    if !c.has_value {
        return if c.formula {
            Value::Cell(String::new(), Some(Issue::NoValue))
        } else {
            Value::Empty
        };
    }
    let Ok(text) = std::str::from_utf8(raw) else {
        let shown = String::from_utf8_lossy(raw).into_owned();
        return Value::Cell(shown, Some(Issue::Unreadable(NOT_UTF8)));
    };
    match c.kind {
        Kind::Shared => match text.trim().parse().ok().and_then(|i| book.strings.get(i)) {
            Some(Shared::Text(s)) => value(s.to_string(), None),
            Some(Shared::TooLong { prefix, .. }) => Value::TooLong(prefix.to_string()),
            Some(Shared::NotUtf8) => value(String::new(), Some(Issue::Unreadable(NOT_UTF8))),
            None => value(text.to_string(), Some(Issue::Unreadable(NO_STRING))),
        },
        Kind::Inline | Kind::Text => value(unescape_ooxml(text).into_owned(), None),
        Kind::Bool => match text.trim() {
            "1" | "true" => value("TRUE".into(), None),
            "0" | "false" => value("FALSE".into(), None),
            _ => value(text.into(), Some(Issue::Unreadable(NOT_BOOL))),
        },
        Kind::Error => value(text.into(), Some(Issue::Error)),
        Kind::Date => date(text.trim(), &DateCell::Iso(text.trim()), book.zone),
        Kind::Number => {
            let shows = book.styles.get(c.style).copied().unwrap_or(Shows::Number);
            number(text, shows, book)
        }
    }
}

const NOT_UTF8: &str = "is not valid UTF-8 text";
const NO_STRING: &str = "refers to a shared string the workbook does not have";
const NOT_BOOL: &str = "is a TRUE/FALSE cell holding neither";

fn value(text: String, issue: Option<Issue>) -> Value {
    if text.is_empty() && issue.is_none() {
        Value::Empty
    } else {
        Value::Cell(text, issue)
    }
}

/// A number cell, through the number format of its style.
fn number(text: &str, shows: Shows, book: &Book<'_>) -> Value {
    let Some(x) = text.trim().parse::<f64>().ok().filter(|x| x.is_finite()) else {
        let why = "is a number cell that holds no number";
        return value(text.into(), Some(Issue::Unreadable(why)));
    };
    match shows {
        Shows::Number => match number_text(x) {
            Ok(t) => value(t, None),
            Err(shown) => {
                // A fraction is shown rounded: say what is held.
                let stored = (x.fract() != 0.0).then(|| format!("{x}"));
                value(shown, Some(Issue::Inexact { stored }))
            }
        },
        Shows::Date | Shows::Duration => {
            let d = DateCell::Serial {
                value: x,
                date1904: book.date1904,
                duration: shows == Shows::Duration,
            };
            date(&date_cell_shown(&d), &d, book.zone)
        }
    }
}

/// A date cell: the text `date_cell_text` makes of it, else the text shown
/// and the reason.
fn date(shown: &str, d: &DateCell<'_>, zone: Option<&Zone>) -> Value {
    match date_cell_text(d, zone) {
        Ok(t) => Value::Cell(t, None),
        Err(why) => Value::Cell(shown.to_string(), Some(Issue::Date(why))),
    }
}
