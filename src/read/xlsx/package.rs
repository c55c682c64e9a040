//! The parts of an xlsx package (a zip archive): which part is the first
//! worksheet, the cell styles that are dates, the shared strings, and a
//! stream over the worksheet. The zip's central directory only says where a
//! part lies; what a part declares of itself (its uncompressed size, the
//! count of its strings) is checked or ignored, never trusted with memory.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use quick_xml::events::Event;
use zip::{CompressionMethod, ZipArchive};

use super::value::{builtin_format, custom_format, Shows};
use super::xml::{attr, local, unescape_ooxml, Text, Xml, XmlError};
use crate::read::InputError;

/// Shared strings are held in memory: a part larger than this (uncompressed)
/// is refused rather than read.
pub(crate) const MAX_SHARED_STRINGS: u64 = 512 << 20;

/// The workbook, its relationships and its styles are small; past this a
/// part is not what it claims to be.
const MAX_SMALL_PART: u64 = 64 << 20;

/// The text kept of a shared string over the record limit, for the report.
pub(crate) const PREFIX: usize = 1024;

/// A part's stream: the entry's bytes, inflated.
pub(crate) type PartReader = Box<dyn BufRead + Send>;

/// The zip archive of a workbook.
pub(crate) struct Package {
    file: Arc<File>,
    zip: ZipArchive<File>,
    path: String,
}

impl Package {
    pub fn open(file: File, path: &str) -> Result<Package, InputError> {
        let shared = file.try_clone().map_err(|e| InputError::Read {
            path: path.to_string(),
            line: 1,
            source: e,
        })?;
        let zip = ZipArchive::new(file).map_err(|e| {
            bad(
                path,
                format!("it is not a zip archive ({e}): is it an xlsx file?"),
            )
        })?;
        Ok(Package {
            file: Arc::new(shared),
            zip,
            path: path.to_string(),
        })
    }

    pub fn error(&self, what: impl Into<String>) -> InputError {
        bad(&self.path, what.into())
    }

    /// The named part's stream, if the archive has it; `max` bounds its
    /// uncompressed size, as declared and as read.
    pub fn part(&mut self, name: &str, max: Option<u64>) -> Result<Option<PartReader>, InputError> {
        let found = self.zip.index_for_name(name).or_else(|| {
            // Part names are case-insensitive (ECMA-376 part 2, 6.2.2.3).
            self.zip
                .file_names()
                .position(|n| n.is_ok_and(|n| n.eq_ignore_ascii_case(name)))
        });
        let Some(index) = found else {
            return Ok(None);
        };
        let entry = match self.zip.by_index_raw(index) {
            Ok(entry) => entry,
            Err(e) => {
                let what = format!("its part {name} cannot be read: {e}");
                return Err(bad(&self.path, what));
            }
        };
        let (start, packed, size) = (entry.data_start(), entry.compressed_size(), entry.size());
        let (method, encrypted) = (entry.compression(), entry.encrypted());
        drop(entry);
        if encrypted {
            return Err(self.error("it is encrypted: save it without a password"));
        }
        if let Some(max) = max.filter(|m| size > *m) {
            return Err(self.error(too_big(name, Some(size), max)));
        }
        let Some(start) = start else {
            return Err(self.error(format!("its part {name} cannot be found in the archive")));
        };
        let raw = At {
            file: Arc::clone(&self.file),
            pos: start,
            end: start.saturating_add(packed),
        };
        let inflated: Box<dyn Read + Send> = match method {
            CompressionMethod::Stored => Box::new(raw),
            CompressionMethod::Deflated => Box::new(flate2::read::DeflateDecoder::new(raw)),
            other => {
                return Err(self.error(format!(
                    "its part {name} is compressed with {other}, which this reader does not read: \
                     save the workbook again from the spreadsheet, or as CSV"
                )))
            }
        };
        let capped: Box<dyn Read + Send> = match max {
            Some(max) => Box::new(Capped {
                inner: inflated,
                left: max,
                what: too_big(name, None, max),
            }),
            None => inflated,
        };
        let mut reader = BufReader::with_capacity(64 * 1024, capped);
        let head = reader
            .fill_buf()
            .map_err(|e| self.error(format!("{name}: {e}")))?;
        if head.starts_with(b"\xFF\xFE") || head.starts_with(b"\xFE\xFF") {
            return Err(self.error(format!(
                "its part {name} is UTF-16 XML, which this reader does not read: \
                 save the workbook again from the spreadsheet, or as CSV"
            )));
        }
        Ok(Some(Box::new(reader)))
    }

    /// The part as XML, or an error naming it when it is missing.
    fn xml(&mut self, name: &str, max: u64, cap: usize) -> Result<Xml<PartReader>, InputError> {
        match self.part(name, Some(max))? {
            Some(r) => Ok(Xml::new(r, cap)),
            None => Err(self.error(format!("its part {name} is missing"))),
        }
    }
}

fn bad(path: &str, what: String) -> InputError {
    InputError::Workbook {
        path: path.to_string(),
        what,
    }
}

/// A part over its bound: its size as declared, or (`None`) found larger
/// than declared while reading.
fn too_big(name: &str, size: Option<u64>, max: u64) -> String {
    let what = match size {
        Some(s) => format!("is {} MiB uncompressed", s.div_ceil(1 << 20)),
        None => "is larger uncompressed than the archive says".into(),
    };
    format!(
        "its part {name} {what}, more than the {} MiB this reader holds in memory: \
         save the sheet as CSV (File > Save As > CSV UTF-8) and process that",
        max >> 20
    )
}

/// A part error: the file and the part, and what went wrong.
pub(crate) fn xml_error(path: &str, part: &str, e: XmlError) -> InputError {
    bad(path, format!("its part {part} cannot be read: {e}"))
}

/// Reads `pos..end` of the file, by offset (the zip reader keeps its own position).
struct At {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl Read for At {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        let n = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
        if n == 0 {
            return Ok(0);
        }
        let got = self.file.read_at(&mut buf[..n], self.pos)?;
        self.pos += got as u64;
        Ok(got)
    }
}

/// Fails past `left` bytes: a part larger than it declared.
struct Capped {
    inner: Box<dyn Read + Send>,
    left: u64,
    what: String,
}

impl Read for Capped {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(io::Error::other(self.what.clone()));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// The workbook's parts a reader of its first sheet needs.
pub(crate) struct Book {
    pub sheet: Xml<PartReader>,
    pub sheet_name: String,
    pub strings: SharedStrings,
    pub styles: Vec<Shows>,
    pub date1904: bool,
}

/// Find the first worksheet and read what its cells refer to.
pub(crate) fn open_book(mut pkg: Package, limit: usize) -> Result<Book, InputError> {
    let path = pkg.path.clone();
    let main = relationships(&mut pkg, "_rels/.rels", "")?
        .into_iter()
        .find(|r| r.kind.ends_with("/officeDocument"))
        .map_or_else(|| "xl/workbook.xml".to_string(), |r| r.target);
    let (sheet_id, date1904) = first_sheet(&mut pkg, &main)?;
    let dir = main.rsplit_once('/').map_or("", |(d, _)| d);
    let file = main.rsplit_once('/').map_or(main.as_str(), |(_, f)| f);
    let rels_name = match dir {
        "" => format!("_rels/{file}.rels"),
        dir => format!("{dir}/_rels/{file}.rels"),
    };
    let rels = relationships(&mut pkg, &rels_name, dir)?;
    let target =
        |pred: &dyn Fn(&Rel) -> bool| rels.iter().find(|r| pred(r)).map(|r| r.target.clone());
    let Some(sheet_name) = target(&|r| r.id == sheet_id && r.kind.ends_with("/worksheet")) else {
        return Err(pkg.error("its first sheet is not a worksheet (a chart sheet?)"));
    };
    let strings = match target(&|r| r.kind.ends_with("/sharedStrings")) {
        Some(name) => SharedStrings::read(&mut pkg, &name, limit)?,
        None => SharedStrings::default(),
    };
    let styles = match target(&|r| r.kind.ends_with("/styles")) {
        Some(name) => styles(&mut pkg, &name)?,
        None => Vec::new(),
    };
    let Some(reader) = pkg.part(&sheet_name, None)? else {
        return Err(bad(&path, format!("its part {sheet_name} is missing")));
    };
    Ok(Book {
        sheet: Xml::new(reader, limit),
        sheet_name,
        strings,
        styles,
        date1904,
    })
}

struct Rel {
    id: String,
    kind: String,
    target: String,
}

/// A relationships part: each relationship's id, type, and target as a part
/// name (relative targets resolved against `dir`). A missing part has none.
fn relationships(pkg: &mut Package, name: &str, dir: &str) -> Result<Vec<Rel>, InputError> {
    let Some(reader) = pkg.part(name, Some(MAX_SMALL_PART))? else {
        return Ok(Vec::new());
    };
    let mut xml = Xml::new(reader, 0);
    let mut out = Vec::new();
    loop {
        let e = match xml.next(None) {
            Ok(Event::Eof) => return Ok(out),
            Ok(Event::Start(e) | Event::Empty(e)) if local(&e) == "Relationship" => e,
            Ok(_) => continue,
            Err(e) => return Err(xml_error(&pkg.path, name, e)),
        };
        if attr(&e, "TargetMode").is_some_and(|m| m == "External") {
            continue;
        }
        let (Some(id), Some(kind), Some(target)) =
            (attr(&e, "Id"), attr(&e, "Type"), attr(&e, "Target"))
        else {
            continue;
        };
        out.push(Rel {
            id,
            kind,
            target: resolve(dir, &target),
        });
    }
}

/// A relationship's target as a part name: `/xl/x.xml` is absolute,
/// `worksheets/sheet1.xml` relative to `dir`, `..` goes up.
fn resolve(dir: &str, target: &str) -> String {
    let mut parts: Vec<&str> = match target.strip_prefix('/') {
        Some(_) => Vec::new(),
        None => dir.split('/').filter(|p| !p.is_empty()).collect(),
    };
    for p in target.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// The relationship id of the workbook's first sheet, and whether its dates
/// count from 1904.
fn first_sheet(pkg: &mut Package, name: &str) -> Result<(String, bool), InputError> {
    let mut xml = pkg.xml(name, MAX_SMALL_PART, 0)?;
    let mut date1904 = false;
    loop {
        let e = match xml.next(None) {
            Ok(Event::Eof) => return Err(pkg.error("it has no worksheet")),
            Ok(Event::Start(e) | Event::Empty(e)) => e,
            Ok(_) => continue,
            Err(e) => return Err(xml_error(&pkg.path, name, e)),
        };
        match local(&e) {
            "workbookPr" => {
                date1904 = attr(&e, "date1904").is_some_and(|v| v == "1" || v == "true");
            }
            "sheet" => match attr(&e, "id") {
                Some(id) => return Ok((id, date1904)),
                None => return Err(pkg.error("its first sheet has no relationship id")),
            },
            _ => {}
        }
    }
}

/// What each cell style (`s` of a cell, an index into `cellXfs`) shows a
/// number as. Custom formats come first in the part, so each is known when
/// a style names it.
fn styles(pkg: &mut Package, name: &str) -> Result<Vec<Shows>, InputError> {
    let mut xml = pkg.xml(name, MAX_SMALL_PART, 0)?;
    let mut custom: Vec<(u32, Shows)> = Vec::new();
    let mut out = Vec::new();
    let mut in_xfs = false;
    loop {
        let (e, empty) = match xml.next(None) {
            Ok(Event::Eof) => return Ok(out),
            Ok(Event::Start(e)) => (e, false),
            Ok(Event::Empty(e)) => (e, true),
            Ok(Event::End(e)) => {
                if e.local_name().as_ref() == "cellXfs" {
                    in_xfs = false;
                }
                continue;
            }
            Ok(_) => continue,
            Err(e) => return Err(xml_error(&pkg.path, name, e)),
        };
        match local(&e) {
            "numFmt" => {
                let id = attr(&e, "numFmtId").and_then(|v| v.parse().ok());
                if let (Some(id), Some(code)) = (id, attr(&e, "formatCode")) {
                    custom.push((id, custom_format(&code)));
                }
            }
            "cellXfs" => in_xfs = !empty,
            "xf" if in_xfs => {
                let id: u32 = attr(&e, "numFmtId")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let shows = custom
                    .iter()
                    .rev()
                    .find(|(c, _)| *c == id)
                    .map_or_else(|| builtin_format(id), |(_, s)| *s);
                out.push(shows);
            }
            _ => {}
        }
    }
}

/// A shared string as a cell sees it.
#[derive(Debug, PartialEq)]
pub(crate) enum Shared<'a> {
    Text(&'a str),
    /// Longer than the record limit: its first bytes and its length.
    TooLong {
        prefix: &'a str,
        len: u64,
    },
    NotUtf8,
}

/// The workbook's shared strings, compactly: their text end to end in one
/// buffer and where each ends; a string over the record limit keeps its
/// first [`PREFIX`] bytes only, and is listed in `odd` with its length.
#[derive(Debug, Default)]
pub(crate) struct SharedStrings {
    text: String,
    ends: Vec<u32>,
    /// (index, length), in index order; `u64::MAX` for text that is not UTF-8.
    odd: Vec<(u32, u64)>,
}

impl SharedStrings {
    pub fn get(&self, i: usize) -> Option<Shared<'_>> {
        let end = *self.ends.get(i)? as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        let text = self.text.get(start..end)?;
        let odd = u32::try_from(i)
            .ok()
            .and_then(|i| self.odd.binary_search_by_key(&i, |(k, _)| *k).ok());
        Some(match odd.map(|k| self.odd[k].1) {
            None => Shared::Text(text),
            Some(u64::MAX) => Shared::NotUtf8,
            Some(len) => Shared::TooLong { prefix: text, len },
        })
    }

    fn push(&mut self, t: &Text) {
        let index = self.ends.len() as u32;
        if t.over() {
            let cut = &t.bytes[..t.bytes.len().min(PREFIX)];
            self.text.push_str(&String::from_utf8_lossy(cut));
            self.odd.push((index, t.len));
        } else {
            match std::str::from_utf8(&t.bytes) {
                Ok(s) => self.text.push_str(&unescape_ooxml(s)),
                Err(_) => self.odd.push((index, u64::MAX)),
            }
        }
        // The part is at most MAX_SHARED_STRINGS, so is its text: it fits in a u32.
        self.ends.push(self.text.len() as u32);
    }

    /// Read the shared strings part: each `<si>`'s text (its runs `<r><t>`
    /// end to end, without the phonetic reading `<rPh>`), each kept up to
    /// the record limit.
    fn read(pkg: &mut Package, name: &str, limit: usize) -> Result<SharedStrings, InputError> {
        let mut xml = pkg.xml(name, MAX_SHARED_STRINGS, limit)?;
        let mut out = SharedStrings::default();
        let mut text = Text::default();
        let (mut in_t, mut phonetic) = (false, 0u32);
        loop {
            let sink = in_t.then_some(&mut text);
            match xml.next(sink) {
                Ok(Event::Eof) => break,
                Ok(Event::Start(e)) => match local(&e) {
                    "si" => text.reset(limit.saturating_add(1)),
                    "rPh" => phonetic += 1,
                    "t" => in_t = phonetic == 0,
                    _ => {}
                },
                Ok(Event::Empty(e)) if local(&e) == "si" => {
                    text.reset(0);
                    out.push(&text);
                }
                Ok(Event::End(e)) => match e.local_name().as_ref() {
                    "si" => out.push(&text),
                    "rPh" => phonetic = phonetic.saturating_sub(1),
                    "t" => in_t = false,
                    _ => {}
                },
                Ok(Event::CData(c)) if in_t => text.push(c.into_inner().as_bytes()),
                Ok(_) => {}
                Err(e) => return Err(xml_error(&pkg.path, name, e)),
            }
        }
        out.text.shrink_to_fit();
        out.ends.shrink_to_fit();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_resolve_to_part_names() {
        assert_eq!(
            resolve("xl", "worksheets/sheet1.xml"),
            "xl/worksheets/sheet1.xml"
        );
        assert_eq!(
            resolve("xl", "/xl/sharedStrings.xml"),
            "xl/sharedStrings.xml"
        );
        assert_eq!(resolve("xl/sub", "../styles.xml"), "xl/styles.xml");
        assert_eq!(resolve("", "xl/workbook.xml"), "xl/workbook.xml");
    }

    #[test]
    fn shared_strings_are_one_buffer_with_long_ones_cut() {
        let mut s = SharedStrings::default();
        let mut t = Text::default();
        for (text, cap) in [("a_x000D_b", 100), ("", 100), ("long text", 4)] {
            t.reset(cap);
            t.push(text.as_bytes());
            s.push(&t);
        }
        t.reset(100);
        t.push(b"\xff");
        s.push(&t);
        assert_eq!(s.get(0), Some(Shared::Text("a\rb")));
        assert_eq!(s.get(1), Some(Shared::Text("")));
        assert_eq!(
            s.get(2),
            Some(Shared::TooLong {
                prefix: "long",
                len: 9
            })
        );
        assert_eq!(s.get(3), Some(Shared::NotUtf8));
        assert_eq!(s.get(4), None);
    }
}
