//! A pull reader of a workbook's XML parts that holds no more than its caps,
//! whatever the part holds: quick-xml reads the markup (a tag with its
//! attributes, a comment, a declaration), each event capped in length; the
//! text between tags never reaches quick-xml (which would gather a text node
//! whole, however long) but is read here in chunks into a [`Text`], which
//! keeps up to its cap and only counts the rest. quick-xml's check of end
//! names is off: it keeps the name of every open element, which a part nested
//! a hundred million deep would turn into gigabytes; the readers here keep
//! flags, not a stack.

use std::fmt;
use std::io::{self, BufRead, Read};

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// The longest markup event read whole, at the least (more with a larger
/// record limit): a worksheet's root tag with its namespaces is a few KiB.
pub(crate) const MIN_MARKUP_CAP: usize = 64 * 1024;

/// The longest entity or character reference decoded (`&#x10FFFF;` is 10).
const MAX_REF: usize = 16;

/// A part that cannot be read on: broken XML, a tag over the cap, a damaged
/// compressed stream.
#[derive(Debug)]
pub(crate) enum XmlError {
    Io(io::Error),
    Xml(quick_xml::Error),
    TagTooLong(usize),
}

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XmlError::Io(e) => write!(f, "{e}"),
            XmlError::Xml(e) => write!(f, "broken XML: {e}"),
            XmlError::TagTooLong(cap) => write!(f, "an XML tag is longer than {cap} bytes"),
        }
    }
}

impl From<io::Error> for XmlError {
    fn from(e: io::Error) -> Self {
        XmlError::Io(e)
    }
}

/// The text of an element: its bytes (references decoded) up to `cap`, and
/// the length of the whole.
#[derive(Debug, Default)]
pub(crate) struct Text {
    pub bytes: Vec<u8>,
    pub len: u64,
    cap: usize,
}

impl Text {
    /// Start over, keeping at most `cap` bytes.
    pub fn reset(&mut self, cap: usize) {
        self.bytes.clear();
        self.len = 0;
        self.cap = cap;
    }

    pub fn push(&mut self, b: &[u8]) {
        self.len += b.len() as u64;
        let room = self.cap.saturating_sub(self.bytes.len()).min(b.len());
        self.bytes.extend_from_slice(&b[..room]);
    }

    /// More was pushed than kept.
    pub fn over(&self) -> bool {
        self.len > self.bytes.len() as u64
    }
}

/// Lets through at most `left` bytes, then fails: the cap of one markup event.
struct Budget<R> {
    inner: R,
    left: u64,
}

impl<R: BufRead> Read for Budget<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let buf = self.fill_buf()?;
        let n = buf.len().min(out.len());
        out[..n].copy_from_slice(&buf[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Budget<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.left == 0 {
            return Err(io::Error::other(TAG_TOO_LONG));
        }
        let left = self.left;
        let buf = self.inner.fill_buf()?;
        let n = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
        Ok(&buf[..n])
    }

    fn consume(&mut self, n: usize) {
        self.left = self.left.saturating_sub(n as u64);
        self.inner.consume(n);
    }
}

const TAG_TOO_LONG: &str = "an XML tag over the cap";

pub(crate) struct Xml<R> {
    reader: Reader<Budget<R>>,
    buf: Vec<u8>,
    cap: usize,
}

impl<R: BufRead> Xml<R> {
    pub fn new(inner: R, markup_cap: usize) -> Self {
        let mut reader = Reader::from_reader(Budget {
            inner,
            left: u64::MAX,
        });
        let config = reader.config_mut();
        config.check_end_names = false;
        config.trim_text(false);
        Xml {
            reader,
            buf: Vec::new(),
            cap: markup_cap.max(MIN_MARKUP_CAP),
        }
    }

    /// The next markup event; the text before it goes to `sink`, or is skipped.
    pub fn next(&mut self, sink: Option<&mut Text>) -> Result<Event<'_>, XmlError> {
        self.text(sink)?;
        self.reader.get_mut().left = self.cap as u64;
        self.buf.clear();
        let cap = self.cap;
        self.reader.read_event_into(&mut self.buf).map_err(|e| {
            let over = matches!(&e, quick_xml::Error::Io(io) if io.to_string() == TAG_TOO_LONG);
            if over {
                XmlError::TagTooLong(cap)
            } else {
                XmlError::Xml(e)
            }
        })
    }

    /// Read the text up to the next `<`, in the reader's own chunks,
    /// decoding references on the way.
    fn text(&mut self, mut sink: Option<&mut Text>) -> Result<(), XmlError> {
        self.reader.get_mut().left = u64::MAX;
        let mut stream = self.reader.stream();
        // The bytes of a reference after its `&`, while one is open.
        let mut reference: Option<Vec<u8>> = None;
        loop {
            let buf = stream.fill_buf()?;
            if buf.is_empty() {
                break;
            }
            if let Some(r) = reference.as_mut() {
                let end = buf.iter().position(|b| matches!(b, b';' | b'<' | b'&'));
                match end {
                    Some(i) if buf[i] == b';' && r.len() + i <= MAX_REF => {
                        r.extend_from_slice(&buf[..i]);
                        stream.consume(i + 1);
                        if let Some(s) = sink.as_deref_mut() {
                            decode_reference(r, s);
                        }
                        reference = None;
                    }
                    Some(i) => {
                        // Not a reference: the text as it stands.
                        let take = i.min(MAX_REF);
                        r.extend_from_slice(&buf[..take]);
                        stream.consume(take);
                        if let Some(s) = sink.as_deref_mut() {
                            s.push(b"&");
                            s.push(r);
                        }
                        reference = None;
                    }
                    None => {
                        let take = buf.len().min(MAX_REF + 1 - r.len().min(MAX_REF));
                        r.extend_from_slice(&buf[..take]);
                        stream.consume(take);
                        if r.len() > MAX_REF {
                            if let Some(s) = sink.as_deref_mut() {
                                s.push(b"&");
                                s.push(r);
                            }
                            reference = None;
                        }
                    }
                }
                continue;
            }
            match memchr::memchr2(b'<', b'&', buf) {
                None => {
                    let n = buf.len();
                    if let Some(s) = sink.as_deref_mut() {
                        s.push(buf);
                    }
                    stream.consume(n);
                }
                Some(i) => {
                    let at_markup = buf[i] == b'<';
                    if let Some(s) = sink.as_deref_mut() {
                        s.push(&buf[..i]);
                    }
                    if at_markup {
                        stream.consume(i);
                        break;
                    }
                    stream.consume(i + 1);
                    reference = Some(Vec::new());
                }
            }
        }
        if let (Some(r), Some(s)) = (reference, sink) {
            s.push(b"&");
            s.push(&r);
        }
        Ok(())
    }
}

/// `amp`, `#233`, `#xE9`... as the text it stands for; one this reader does
/// not know stays as it was written.
fn decode_reference(r: &[u8], sink: &mut Text) {
    let named: Option<&[u8]> = match r {
        b"amp" => Some(b"&"),
        b"lt" => Some(b"<"),
        b"gt" => Some(b">"),
        b"quot" => Some(b"\""),
        b"apos" => Some(b"'"),
        _ => None,
    };
    if let Some(t) = named {
        sink.push(t);
        return;
    }
    let code = match r {
        [b'#', b'x' | b'X', hex @ ..] => std::str::from_utf8(hex)
            .ok()
            .and_then(|h| u32::from_str_radix(h, 16).ok()),
        [b'#', dec @ ..] => std::str::from_utf8(dec).ok().and_then(|d| d.parse().ok()),
        _ => None,
    };
    match code.and_then(char::from_u32) {
        Some(c) => sink.push(c.encode_utf8(&mut [0; 4]).as_bytes()),
        None => {
            sink.push(b"&");
            sink.push(r);
            sink.push(b";");
        }
    }
}

/// An attribute's value by its local name (`r:id` is `id`), references decoded.
pub(crate) fn attr(e: &BytesStart<'_>, local: &str) -> Option<String> {
    e.attributes().with_checks(false).flatten().find_map(|a| {
        let name = a.key.0;
        let name = name.rsplit_once(':').map_or(name, |(_, l)| l);
        (name == local).then(|| {
            quick_xml::escape::unescape(&a.value)
                .map_or_else(|_| a.value.to_string(), |v| v.into_owned())
        })
    })
}

/// An element's name without its namespace prefix.
pub(crate) fn local<'a>(e: &'a BytesStart<'_>) -> &'a str {
    let n = e.name().0;
    n.rsplit_once(':').map_or(n, |(_, l)| l)
}

/// Excel writes characters XML cannot hold as `_xHHHH_` (UTF-16 units; `_x005F_`
/// is the underscore itself): decoded, the text as the spreadsheet shows it.
pub(crate) fn unescape_ooxml(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains("_x") {
        return s.into();
    }
    let unit = |i: usize| -> Option<u16> {
        let b = s.as_bytes().get(i..i + 7)?;
        if b[0] != b'_' || b[1] != b'x' || b[6] != b'_' {
            return None;
        }
        u16::from_str_radix(std::str::from_utf8(&b[2..6]).ok()?, 16).ok()
    };
    let mut out = String::with_capacity(s.len());
    let mut units: Vec<u16> = Vec::new();
    let mut i = 0;
    while i < s.len() {
        if let Some(u) = unit(i) {
            units.push(u);
            i += 7;
            continue;
        }
        out.extend(char::decode_utf16(units.drain(..)).map(|c| c.unwrap_or('\u{FFFD}')));
        let c = s[i..].chars().next().unwrap_or('\u{FFFD}');
        out.push(c);
        i += c.len_utf8();
    }
    out.extend(char::decode_utf16(units.drain(..)).map(|c| c.unwrap_or('\u{FFFD}')));
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event name and the text before each, over a reader that hands
    /// out `chunk` bytes at a time (references and text across chunks).
    fn events(xml: &str, chunk: usize, cap: usize) -> Result<Vec<(String, String)>, XmlError> {
        let r = io::BufReader::with_capacity(chunk, xml.as_bytes());
        let mut x = Xml::new(r, 0);
        let mut out = Vec::new();
        let mut text = Text::default();
        loop {
            text.reset(cap);
            let name = match x.next(Some(&mut text))? {
                Event::Start(e) => local(&e).to_string(),
                Event::End(e) => format!("/{}", e.local_name().as_ref()),
                Event::Empty(e) => format!("{}/", local(&e)),
                Event::Eof => break,
                _ => "?".into(),
            };
            let t = String::from_utf8_lossy(&text.bytes).into_owned();
            out.push((name, format!("{t}|{}", text.len)));
        }
        Ok(out)
    }

    #[test]
    fn text_and_references_read_in_chunks() {
        let xml =
            "<?xml version=\"1.0\"?><x:a r=\"1\">a &amp; b&#233;&#x20AC;&lt;&bogus; &amp<b/></x:a>";
        for chunk in [1, 2, 3, 7, 64] {
            let ev = events(xml, chunk, 100).unwrap();
            let texts: Vec<&str> = ev.iter().map(|(_, t)| t.as_str()).collect();
            assert_eq!(
                texts,
                ["|0", "|0", "a & bé€<&bogus; &amp|23", "|0"],
                "chunk {chunk}"
            );
            assert_eq!(ev[1].0, "a");
            assert_eq!(ev[2].0, "b/");
        }
    }

    #[test]
    fn a_long_text_is_counted_not_kept() {
        let xml = format!("<a>{}</a>", "z".repeat(100_000));
        let ev = events(&xml, 8192, 10).unwrap();
        assert_eq!(ev[1].1, "zzzzzzzzzz|100000");
    }

    #[test]
    fn a_long_tag_or_a_deep_nest_is_bounded() {
        let xml = format!("<a b=\"{}\"/>", "q".repeat(200_000));
        assert!(matches!(
            events(&xml, 8192, 10),
            Err(XmlError::TagTooLong(_))
        ));
        // End names are not checked (nor kept): a mismatched end is not an error.
        let ev = events("<a><b></c></a>", 8192, 10).unwrap();
        assert_eq!(ev.len(), 4);
    }

    #[test]
    fn ooxml_escapes_are_decoded() {
        assert_eq!(unescape_ooxml("a_x000D_b"), "a\rb");
        assert_eq!(unescape_ooxml("_x005F_x000D_"), "_x000D_");
        assert_eq!(unescape_ooxml("_xD83D__xDCF7_"), "\u{1F4F7}");
        assert_eq!(unescape_ooxml("_x00"), "_x00");
        assert_eq!(unescape_ooxml("plain"), "plain");
    }
}
