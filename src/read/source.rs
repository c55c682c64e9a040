//! Opening an input: a file, gzip or standard input, with a byte count for
//! progress and the SHA-256 of the bytes as stored, for the run history.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::InputError;

/// Shared counters of one input: bytes read so far, and its digest once read to the end.
#[derive(Debug, Default)]
pub struct InputMeter {
    bytes: AtomicU64,
    /// Size on disk, when known (not for standard input).
    pub size: Option<u64>,
    digest: Mutex<Option<String>>,
}

impl InputMeter {
    pub fn bytes_read(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Hex SHA-256 of the input's bytes; `None` until it was read to the end.
    pub fn sha256(&self) -> Option<String> {
        self.digest.lock().ok().and_then(|d| d.clone())
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

/// Open `path` (`-` is standard input); names ending in `.gz` are decompressed.
/// Text is read as UTF-8 unless `encoding` names another; a UTF-16 byte-order
/// mark is recognised by itself.
pub fn open_source(path: &str) -> Result<Source, InputError> {
    open_source_in(path, None)
}

/// As [`open_source`], in the given encoding.
pub fn open_source_in(
    path: &str,
    encoding: Option<&'static encoding_rs::Encoding>,
) -> Result<Source, InputError> {
    open(path, Decode::Text(encoding))
}

/// As [`open_source`], the bytes as they are (gzip aside): for a workbook,
/// which is a zip archive, not text. Its XML parts say their own encoding;
/// `--encoding` names the encoding of a text file, and transcoding the
/// archive's bytes (or taking two of them for a UTF-16 byte-order mark)
/// would only break it.
pub fn open_source_raw(path: &str) -> Result<Source, InputError> {
    open(path, Decode::Raw)
}

/// What a reader of an input gets: text in an encoding (`None`: UTF-8, or
/// UTF-16 by its byte-order mark), or the bytes.
enum Decode {
    Text(Option<&'static encoding_rs::Encoding>),
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
    let Decode::Text(encoding) = decode else {
        return Ok(Source {
            path: path.to_string(),
            reader: Box::new(BufReader::with_capacity(BUF, bytes)),
            meter,
        });
    };
    // A UTF-8 byte-order mark says what the file is, as a UTF-16 one does:
    // it wins over --encoding (read as windows-1252 it would become part of
    // the first column's name).
    let mut bytes = BufReader::with_capacity(BUF, bytes);
    let head = bytes.fill_buf().map_err(|e| InputError::Read {
        path: path.to_string(),
        line: 1,
        source: e,
    })?;
    let utf8_bom = head.starts_with(b"\xEF\xBB\xBF");
    if encoding.is_none() {
        if let Some(endian) = utf16_without_bom(head) {
            return Err(InputError::Utf16 {
                path: path.to_string(),
                endian,
            });
        }
    }
    let encoding = encoding.filter(|_| !utf8_bom);
    // Transcoded to UTF-8: the named encoding, or the one a UTF-16 BOM names;
    // otherwise the bytes pass through as they are (invalid UTF-8 is then a
    // malformed record, not a changed value). A UTF-8 BOM is left for the
    // readers, which skip it.
    let decoded = encoding_rs_io::DecodeReaderBytesBuilder::new()
        .encoding(encoding.filter(|e| *e != encoding_rs::UTF_8))
        .utf8_passthru(true)
        .strip_bom(false)
        .bom_override(true)
        .build(bytes);
    let reader: Box<dyn BufRead + Send> = Box::new(BufReader::with_capacity(BUF, decoded));
    Ok(Source {
        path: path.to_string(),
        reader,
        meter,
    })
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
        assert_ne!(
            read(open_source_in(p, Some(encoding_rs::WINDOWS_1252)).unwrap()),
            bytes,
            "text is transcoded"
        );
        let raw = open_source_raw(p).unwrap();
        let meter = Arc::clone(&raw.meter);
        assert_eq!(read(raw), bytes);
        assert_eq!(meter.sha256().map(|h| h.len()), Some(64));
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
