//! The spool of checked orders: a run that validates before it locks writes
//! its checked orders to an unnamed temporary file (readable only by this
//! process, removed by the system when closed), then reads them back in input
//! order inside its transaction, as often as the transaction is retried.
//! Memory stays flat whatever the input size.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use anyhow::{Context, Result};

use crate::validate::{Checked, Verdict};

pub struct Spool {
    file: File,
    /// Where each chunk's frame starts.
    offsets: Vec<u64>,
    /// The skus the valid orders need: the stock rows the run will lock, in order.
    pub skus: BTreeSet<String>,
    pub chunks: u64,
}

pub struct SpoolWriter {
    out: BufWriter<File>,
    offsets: Vec<u64>,
    at: u64,
    skus: BTreeSet<String>,
    chunks: u64,
}

fn spool_err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot use the temporary spool file of checked orders (in {}): {e}; \
         make room there or point TMPDIR at a disk with room",
        std::env::temp_dir().display()
    )
}

impl SpoolWriter {
    pub fn new() -> Result<SpoolWriter> {
        let file = tempfile::tempfile().map_err(spool_err)?;
        Ok(SpoolWriter {
            out: BufWriter::with_capacity(1 << 20, file),
            offsets: Vec::new(),
            at: 0,
            skus: BTreeSet::new(),
            chunks: 0,
        })
    }

    /// One chunk, as a length-prefixed frame.
    pub fn push(&mut self, chunk: &[Checked]) -> Result<()> {
        for c in chunk {
            if let Verdict::Valid(o) = &c.verdict {
                for l in &o.lines {
                    if !self.skus.contains(&l.sku) {
                        self.skus.insert(l.sku.clone());
                    }
                }
            }
        }
        let bytes = postcard::to_stdvec(chunk).map_err(spool_err)?;
        let len = u64::try_from(bytes.len()).map_err(spool_err)?;
        self.out.write_all(&len.to_le_bytes()).map_err(spool_err)?;
        self.out.write_all(&bytes).map_err(spool_err)?;
        self.offsets.push(self.at);
        self.at += 8 + len;
        self.chunks += 1;
        Ok(())
    }

    pub fn finish(self) -> Result<Spool> {
        let file = self.out.into_inner().map_err(|e| spool_err(e.error()))?;
        Ok(Spool {
            file,
            offsets: self.offsets,
            skus: self.skus,
            chunks: self.chunks,
        })
    }
}

impl Spool {
    /// The chunks from the first, in input order.
    pub fn chunks(&self) -> Result<SpoolReader> {
        let mut file = self.file.try_clone().map_err(spool_err)?;
        file.seek(SeekFrom::Start(0)).map_err(spool_err)?;
        Ok(SpoolReader {
            input: BufReader::with_capacity(1 << 20, file),
            left: self.chunks,
        })
    }

    /// The valid order of this id in chunk `chunk` (0-based), as read.
    pub fn order_at(&self, chunk: u32, order_id: &str) -> io::Result<crate::read::RawOrder> {
        let not_there = || io::Error::other("the spool of checked orders is damaged");
        let at = *self.offsets.get(chunk as usize).ok_or_else(not_there)?;
        let mut file = self.file.try_clone()?;
        file.seek(SeekFrom::Start(at))?;
        let mut reader = SpoolReader {
            input: BufReader::new(file),
            left: 1,
        };
        let frame = reader.read_frame()?;
        let checked: Vec<Checked> = postcard::from_bytes(&frame).map_err(io::Error::other)?;
        checked
            .into_iter()
            .find(|c| matches!(&c.verdict, Verdict::Valid(o) if o.order_id == order_id))
            .map(|c| c.raw)
            .ok_or_else(not_there)
    }

    pub fn skus(&self) -> Vec<String> {
        self.skus.iter().cloned().collect()
    }
}

pub struct SpoolReader {
    input: BufReader<File>,
    left: u64,
}

impl SpoolReader {
    fn read_frame(&mut self) -> io::Result<Vec<u8>> {
        let mut len = [0u8; 8];
        self.input.read_exact(&mut len)?;
        let len = usize::try_from(u64::from_le_bytes(len)).map_err(io::Error::other)?;
        let mut buf = vec![0u8; len];
        self.input.read_exact(&mut buf)?;
        Ok(buf)
    }
}

impl SpoolReader {
    /// The same chunks, decoded on a thread of their own a couple of chunks
    /// ahead: decoding then overlaps the waits on the database. The thread
    /// stops when the iterator is dropped.
    pub fn ahead(self) -> Result<Ahead> {
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        let left = self.left;
        std::thread::Builder::new()
            .name("spool".into())
            .spawn(move || {
                for chunk in self {
                    if tx.send(chunk).is_err() {
                        return;
                    }
                }
            })
            .map_err(spool_err)?;
        Ok(Ahead { rx, left })
    }
}

pub struct Ahead {
    rx: std::sync::mpsc::Receiver<Result<Vec<Checked>>>,
    /// Chunks still to come: a decoding thread that stopped early (it
    /// panicked) must end the run in an error, never look like the end.
    left: u64,
}

impl Iterator for Ahead {
    type Item = Result<Vec<Checked>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        match self.rx.recv() {
            Ok(chunk) => Some(chunk),
            Err(_) => {
                self.left = 0;
                Some(Err(spool_err("the thread reading it back stopped")))
            }
        }
    }
}

impl Iterator for SpoolReader {
    type Item = Result<Vec<Checked>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let frame = match self.read_frame() {
            Ok(f) => f,
            Err(e) => return Some(Err(spool_err(e))),
        };
        Some(
            postcard::from_bytes::<Vec<Checked>>(&frame)
                .map_err(spool_err)
                .context("the spool of checked orders is damaged"),
        )
    }
}
