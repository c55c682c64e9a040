//! Opening an input: a file, gzip or standard input, with a byte count for
//! progress and the SHA-256 of the bytes as stored, for the run history; and
//! its text encoding: UTF-8 checked up front (the header and the first
//! 1,000 rows), another named by `--encoding`, or detected (`auto`).
//!
//! Detection is chardetng's: Firefox's detector for legacy-encoded text that
//! came without a label, which is exactly what a shop export without
//! `--encoding` is. It guesses from the bytes' statistics (which letters
//! and pairs of letters are common in which encoding), built on encoding_rs,
//! which already decodes the input.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use sha2::{Digest, Sha256};

use super::{InputError, ReadOptions, TextEncoding};

/// Shared counters of one input: bytes read so far, its digest once read to
/// the end, and the encoding `--encoding auto` chose for it.
#[derive(Debug, Default)]
pub struct InputMeter {
    bytes: AtomicU64,
    /// Size on disk, when known (not for standard input).
    pub size: Option<u64>,
    digest: Mutex<Option<String>>,
    detected: OnceLock<&'static str>,
}

impl InputMeter {
    pub fn bytes_read(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Hex SHA-256 of the input's bytes; `None` until it was read to the end.
    pub fn sha256(&self) -> Option<String> {
        self.digest.lock().ok().and_then(|d| d.clone())
    }

    /// The encoding `--encoding auto` read the input in (`None` without it).
    pub fn detected_encoding(&self) -> Option<&'static str> {
        self.detected.get().copied()
    }
}

/// An opened input.
pub struct Source {
    /// The path as given (`-` for standard input).
    pub path: String,
    pub reader: Box<dyn BufRead + Send>,
    pub meter: Arc<InputMeter>,
}

const BUF: usize = 256 * 1024;

/// Rows checked for UTF-8 before any is read as an order (after the header
/// and the title lines before it)...
pub const CHECKED_ROWS: u64 = 1000;
/// ...and at most this many bytes of them, so that a file of long lines
/// costs no more memory than this to check.
pub const CHECKED_BYTES: usize = 8 << 20;

/// Open `path` (`-` is standard input) as UTF-8 text; names ending in `.gz`
/// are decompressed.
pub fn open_source(path: &str) -> Result<Source, InputError> {
    open_text(path, &ReadOptions::default())
}

/// Open `path` as text in the encoding `opts` say (a UTF-16 or UTF-8
/// byte-order mark is recognised by itself).
pub fn open_text(path: &str, opts: &ReadOptions) -> Result<Source, InputError> {
    open(path, Decode::Text(opts.encoding, opts.skip_rows))
}

/// As [`open_source`], the bytes as they are (gzip aside): for a workbook,
/// which is a zip archive, not text. Its XML parts say their own encoding;
/// `--encoding` names the encoding of a text file, and transcoding the
/// archive's bytes (or taking two of them for a UTF-16 byte-order mark)
/// would only break it.
pub fn open_source_raw(path: &str) -> Result<Source, InputError> {
    open(path, Decode::Raw)
}

/// What a reader of an input gets: text in an encoding (and the title lines
/// before its header, which the UTF-8 check reads past), or the bytes.
enum Decode {
    Text(TextEncoding, u64),
    Raw,
}

fn open(path: &str, decode: Decode) -> Result<Source, InputError> {
    let open_err = |source: io::Error| InputError::Open {
        path: path.to_string(),
        source,
    };
    let (raw, size): (Box<dyn Read + Send>, Option<u64>) = if path == "-" {
        (Box::new(io::stdin()), None)
    } else {
        let meta = std::fs::metadata(path).map_err(open_err)?;
        if meta.is_dir() {
            return Err(open_err(io::Error::other("it is a directory, not a file")));
        }
        let file = File::open(path).map_err(open_err)?;
        let size = meta.is_file().then_some(meta.len());
        (Box::new(file), size)
    };
    let meter = Arc::new(InputMeter {
        size,
        ..InputMeter::default()
    });
    let hashed = Hashing {
        inner: raw,
        hasher: Some(Sha256::new()),
        meter: Arc::clone(&meter),
    };
    let bytes: Box<dyn Read + Send> = if path.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            BUF, hashed,
        )))
    } else {
        Box::new(hashed)
    };
    let Decode::Text(encoding, skip_rows) = decode else {
        return Ok(Source {
            path: path.to_string(),
            reader: Box::new(BufReader::with_capacity(BUF, bytes)),
            meter,
        });
    };
    // A pipe's rows come as they are written: only a file on disk is read
    // ahead past its header (standard input or a FIFO has its header checked,
    // and a bad byte in a row is that row's MALFORMED_RECORD).
    let rows_ahead = if size.is_some() { CHECKED_ROWS } else { 0 };
    let reader = text(
        path,
        BufReader::with_capacity(BUF, bytes),
        (encoding, skip_rows, rows_ahead),
        &meter,
    )?;
    Ok(Source {
        path: path.to_string(),
        reader,
        meter,
    })
}

/// The bytes as UTF-8 text: checked, detected or transcoded as `encoding` says.
fn text(
    path: &str,
    mut bytes: BufReader<Box<dyn Read + Send>>,
    (encoding, skip_rows, rows_ahead): (TextEncoding, u64, u64),
    meter: &InputMeter,
) -> Result<Box<dyn BufRead + Send>, InputError> {
    let read_err = |line, e| InputError::Read {
        path: path.to_string(),
        line,
        source: e,
    };
    let head = bytes.fill_buf().map_err(|e| read_err(1, e))?;
    // A byte-order mark says what the file is: a UTF-8 one wins over
    // --encoding (read as windows-1252 it would become part of the first
    // column's name), a UTF-16 one is decoded by itself.
    let utf8_bom = head.starts_with(b"\xEF\xBB\xBF");
    let utf16_bom = head.starts_with(b"\xFF\xFE") || head.starts_with(b"\xFE\xFF");
    let named = match encoding {
        TextEncoding::Named(e) => Some(e),
        _ => None,
    };
    if named.is_none() {
        if let Some(endian) = utf16_without_bom(head) {
            return Err(InputError::Utf16 {
                path: path.to_string(),
                endian,
            });
        }
    }
    let mut replay = Replay::new(bytes);
    let chosen = match encoding {
        _ if utf8_bom || utf16_bom => {
            if encoding == TextEncoding::Auto {
                let _ = meter
                    .detected
                    .set(if utf8_bom { "UTF-8" } else { "UTF-16" });
            }
            None
        }
        TextEncoding::Named(e) => Some(e),
        TextEncoding::Utf8 | TextEncoding::Auto => {
            let lines = skip_rows.saturating_add(1 + rows_ahead);
            replay.read_head(lines).map_err(|e| read_err(1, e))?;
            let guess = check_utf8(path, &replay.head, encoding)?;
            if encoding == TextEncoding::Auto {
                let name = guess.unwrap_or(encoding_rs::UTF_8).name();
                let _ = meter.detected.set(name);
            }
            guess
        }
    };
    // Transcoded to UTF-8: the named or detected encoding, or the one a
    // UTF-16 BOM names; otherwise the bytes pass through as they are
    // (invalid UTF-8 further down is then a malformed record, not a changed
    // value). A UTF-8 BOM is left for the readers, which skip it.
    let decoded = encoding_rs_io::DecodeReaderBytesBuilder::new()
        .encoding(chosen.filter(|e| *e != encoding_rs::UTF_8))
        .utf8_passthru(true)
        .strip_bom(false)
        .bom_override(true)
        .build(replay);
    Ok(Box::new(BufReader::with_capacity(BUF, decoded)))
}

/// The start of a file checked for UTF-8: `None` when it is UTF-8 (a
/// character cut at the end of what was read is no fault), else, with
/// `auto`, the encoding it most likely is; without, the error that names
/// the line, the byte and that encoding.
fn check_utf8(
    path: &str,
    head: &[u8],
    encoding: TextEncoding,
) -> Result<Option<&'static encoding_rs::Encoding>, InputError> {
    let at = match std::str::from_utf8(head) {
        Ok(_) => return Ok(None),
        Err(e) if e.error_len().is_none() => return Ok(None),
        Err(e) => e.valid_up_to(),
    };
    let likely = likely_encoding(head);
    if encoding == TextEncoding::Auto {
        return Ok(Some(likely));
    }
    let before = &head[..at];
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    Err(InputError::NotUtf8 {
        path: path.to_string(),
        line: 1 + before.iter().filter(|b| **b == b'\n').count() as u64,
        column: at - line_start + 1,
        byte: head[at],
        likely: likely.name().to_ascii_lowercase(),
    })
}

/// The legacy encoding text that is not UTF-8 most likely is, by chardetng.
/// Where its guess and windows-1252 read these bytes as the same text (a few
/// accented letters that several Latin encodings share: chardetng may then
/// pick any of them), windows-1252 is named: it is what Excel and most
/// Western shop systems write, and for this file the choice changes nothing.
fn likely_encoding(head: &[u8]) -> &'static encoding_rs::Encoding {
    // ISO-2022-JP is seven-bit: text that is not UTF-8 is not it either.
    let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    detector.feed(head, false);
    let guess = detector.guess(None, chardetng::Utf8Detection::Deny);
    let western = encoding_rs::WINDOWS_1252;
    if guess != western
        && guess.decode_without_bom_handling(head).0 == western.decode_without_bom_handling(head).0
    {
        western
    } else {
        guess
    }
}

/// The input with its start read ahead (to check it) and given back first;
/// the bytes read ahead are freed once they are read again.
struct Replay {
    head: Vec<u8>,
    at: usize,
    rest: BufReader<Box<dyn Read + Send>>,
}

impl Replay {
    fn new(rest: BufReader<Box<dyn Read + Send>>) -> Replay {
        Replay {
            head: Vec::new(),
            at: 0,
            rest,
        }
    }

    /// Read ahead the first `lines` lines, at most `CHECKED_BYTES`.
    fn read_head(&mut self, lines: u64) -> io::Result<()> {
        let mut seen = 0u64;
        while seen < lines && self.head.len() < CHECKED_BYTES {
            let buf = self.rest.fill_buf()?;
            if buf.is_empty() {
                break;
            }
            let room = &buf[..buf.len().min(CHECKED_BYTES - self.head.len())];
            let mut take = room.len();
            for i in memchr::memchr_iter(b'\n', room) {
                seen += 1;
                if seen == lines {
                    take = i + 1;
                    break;
                }
            }
            self.head.extend_from_slice(&room[..take]);
            self.rest.consume(take);
        }
        Ok(())
    }
}

impl Read for Replay {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.at < self.head.len() {
            let n = (self.head.len() - self.at).min(out.len());
            out[..n].copy_from_slice(&self.head[self.at..self.at + n]);
            self.at += n;
            if self.at == self.head.len() {
                self.head = Vec::new();
                self.at = 0;
            }
            return Ok(n);
        }
        self.rest.read(out)
    }
}

/// "le" or "be" for text that is UTF-16 without a byte-order mark: its
/// ASCII characters are every other byte, the rest NUL (read as UTF-8 its
/// header would be a column of NULs). Anything else, a UTF-16 file with its
/// mark or a workbook (a zip) included, is `None`.
fn utf16_without_bom(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"\xFF\xFE") || head.starts_with(b"\xFE\xFF") {
        return None;
    }
    let head = &head[..head.len().min(1024) & !1];
    let pairs = head.len() / 2;
    if pairs < 4 {
        return None;
    }
    let zeros = |parity: usize| {
        head.iter()
            .skip(parity)
            .step_by(2)
            .filter(|b| **b == 0)
            .count()
    };
    let (even, odd) = (zeros(0), zeros(1));
    if odd * 10 >= pairs * 9 && even * 10 < pairs {
        Some("le")
    } else if even * 10 >= pairs * 9 && odd * 10 < pairs {
        Some("be")
    } else {
        None
    }
}

/// Hashes and counts the bytes as they are read; stores the digest at end of file.
struct Hashing {
    inner: Box<dyn Read + Send>,
    hasher: Option<Sha256>,
    meter: Arc<InputMeter>,
}

impl Read for Hashing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 {
            if let Some(h) = self.hasher.take() {
                let hex = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
                if let Ok(mut d) = self.meter.digest.lock() {
                    *d = Some(hex);
                }
            }
        } else {
            if let Some(h) = self.hasher.as_mut() {
                h.update(&buf[..n]);
            }
            self.meter.bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_plain_and_gzip_and_hashes_the_stored_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("a.csv");
        std::fs::write(&plain, b"abc").unwrap();
        let mut s = open_source(plain.to_str().unwrap()).unwrap();
        let mut text = String::new();
        s.reader.read_to_string(&mut text).unwrap();
        assert_eq!(text, "abc");
        assert_eq!(
            s.meter.sha256().unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(s.meter.bytes_read(), 3);

        let gz = dir.path().join("a.csv.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(b"hello\n").unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        let mut s = open_source(gz.to_str().unwrap()).unwrap();
        let mut text = String::new();
        s.reader.read_to_string(&mut text).unwrap();
        assert_eq!(text, "hello\n");
    }

    #[test]
    fn a_raw_source_is_not_transcoded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("book.xlsx");
        // Bytes a zip may hold: a UTF-16 byte-order mark, bytes past ASCII.
        let bytes = b"PK\x03\x04\xff\xfe\xe9\x80";
        std::fs::write(&p, bytes).unwrap();
        let p = p.to_str().unwrap();
        let read = |mut s: Source| {
            let mut out = Vec::new();
            s.reader.read_to_end(&mut out).unwrap();
            out
        };
        let cp1252 = ReadOptions {
            encoding: TextEncoding::Named(encoding_rs::WINDOWS_1252),
            ..ReadOptions::default()
        };
        assert_ne!(
            read(open_text(p, &cp1252).unwrap()),
            bytes,
            "text is transcoded"
        );
        let raw = open_source_raw(p).unwrap();
        let meter = Arc::clone(&raw.meter);
        assert_eq!(read(raw), bytes);
        assert_eq!(meter.sha256().map(|h| h.len()), Some(64));
    }

    /// German text in windows-1252: ä, ö, ü, ß as one byte each.
    fn cp1252_rows(n: usize) -> Vec<u8> {
        let mut text = String::from("order_id,customer_email,note\n");
        for i in 0..n {
            text.push_str(&format!(
                "A-{i},m{i}@example.de,Größe und Länge für Müller\n"
            ));
        }
        encoding_rs::WINDOWS_1252.encode(&text).0.into_owned()
    }

    fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> String {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_string()
    }

    #[test]
    fn text_that_is_not_utf8_is_refused_naming_the_line_byte_and_likely_encoding() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "win.csv", &cp1252_rows(40));
        let err = open_source(&p).err().unwrap();
        match &err {
            InputError::NotUtf8 {
                line,
                column,
                byte,
                likely,
                ..
            } => assert_eq!(
                (*line, *column, *byte, likely.as_str()),
                (2, 21, 0xF6, "windows-1252")
            ),
            other => panic!("{other}"),
        }
        let text = err.to_string();
        assert!(
            text.contains("line 2 is not UTF-8 (byte 0xF6 at position 21 of the line)")
                && text.contains("pass --encoding windows-1252 (or --encoding auto)"),
            "{text}"
        );
    }

    #[test]
    fn auto_reads_the_encoding_the_text_looks_like_and_says_which() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "win.csv", &cp1252_rows(40));
        let auto = ReadOptions {
            encoding: TextEncoding::Auto,
            ..ReadOptions::default()
        };
        let mut s = open_text(&p, &auto).unwrap();
        let mut text = String::new();
        s.reader.read_to_string(&mut text).unwrap();
        assert!(text.contains("A-39,m39@example.de,Größe und Länge für Müller\n"));
        assert_eq!(s.meter.detected_encoding(), Some("windows-1252"));
        let utf8 = write(&dir, "utf8.csv", "a,b\nä,ö\n".as_bytes());
        let s = open_text(&utf8, &auto).unwrap();
        assert_eq!(s.meter.detected_encoding(), Some("UTF-8"));
        assert_eq!(open_source(&utf8).unwrap().meter.detected_encoding(), None);
    }

    #[test]
    fn a_bad_byte_past_the_checked_rows_or_a_named_encoding_is_not_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = "h\n".repeat(CHECKED_ROWS as usize + 1).into_bytes();
        bytes.extend_from_slice(b"caf\xE9\n");
        let p = write(&dir, "late.csv", &bytes);
        let mut s = open_source(&p).unwrap();
        let mut read = Vec::new();
        s.reader.read_to_end(&mut read).unwrap();
        assert_eq!(read, bytes, "passed through, for the row to be malformed");
        // One more title line moves the checked rows down with the header.
        let titled = ReadOptions {
            skip_rows: 1,
            ..ReadOptions::default()
        };
        assert!(matches!(
            open_text(&p, &titled),
            Err(InputError::NotUtf8 { line: 1002, .. })
        ));
        let utf8 = ReadOptions {
            encoding: TextEncoding::Named(encoding_rs::UTF_8),
            ..ReadOptions::default()
        };
        let early = write(&dir, "early.csv", b"caf\xE9\n");
        assert!(
            open_text(&early, &utf8).is_ok(),
            "--encoding utf-8 reads every row"
        );
    }

    #[test]
    fn a_directory_or_missing_file_is_an_open_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = open_source(dir.path().to_str().unwrap()).err().unwrap();
        let cause = std::error::Error::source(&err).unwrap().to_string();
        assert!(cause.contains("directory"), "{cause}");
        let err = open_source("/nonexistent/x.csv").err().unwrap();
        assert!(matches!(err, InputError::Open { .. }));
    }
}
