//! Orders whose stock is decided at the lock: where runs share a database
//! (PostgreSQL), a run claims, records and reports its orders before it locks
//! any stock row, deciding stock for now against levels read without a lock.
//! Each new valid order is logged here, in input order, with what it needs
//! of which sku; once the stock rows are locked, the log is read back and
//! stock decided again against the locked levels, so that the locked section
//! does work in proportion to the skus and the orders short of stock, never
//! to the orders. The log is an unnamed temporary file (flat memory), and
//! holds no card number: the orders in it passed validation, which masks
//! every one it finds.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use serde::{Deserialize, Serialize};

use crate::read::RawOrder;

/// One new valid order, as the stock decision needs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Held {
    /// The order's position in the run's input (1-based).
    pub seq: u64,
    /// The chunk of the spool the checked order lies in.
    pub chunk: u32,
    pub order_id: String,
    /// Units needed, per sku: its place in the applier's levels (`None`: a
    /// sku without a stock row), and the units of all the order's lines.
    pub needs: Vec<(Option<u32>, i64)>,
    pub lines: u64,
    pub units: i64,
    /// The stored failure the order retries or fixes, if any.
    pub named: Option<i64>,
    /// The order as read, when it was short of stock for now: its failure
    /// record is made from it if it stays short.
    pub raw: Option<RawOrder>,
}

fn log_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!(
        "cannot use the temporary log of orders waiting for their stock (in {}): {e}; \
         make room there or point TMPDIR at a disk with room",
        std::env::temp_dir().display()
    ))
}

/// The log being written.
pub struct HeldLog {
    out: BufWriter<File>,
    count: u64,
}

impl HeldLog {
    pub fn new() -> io::Result<HeldLog> {
        let file = tempfile::tempfile().map_err(log_err)?;
        Ok(HeldLog {
            out: BufWriter::with_capacity(1 << 20, file),
            count: 0,
        })
    }

    pub fn push(&mut self, held: &Held) -> io::Result<()> {
        let bytes = postcard::to_stdvec(held).map_err(log_err)?;
        self.out
            .write_all(&(bytes.len() as u64).to_le_bytes())
            .map_err(log_err)?;
        self.out.write_all(&bytes).map_err(log_err)?;
        self.count += 1;
        Ok(())
    }

    pub fn len(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The entries from the first, in input order.
    pub fn read(&mut self) -> io::Result<HeldReader> {
        self.out.flush().map_err(log_err)?;
        let mut file = self.out.get_ref().try_clone().map_err(log_err)?;
        file.seek(SeekFrom::Start(0)).map_err(log_err)?;
        Ok(HeldReader {
            input: BufReader::with_capacity(1 << 20, file),
            left: self.count,
        })
    }
}

pub struct HeldReader {
    input: BufReader<File>,
    left: u64,
}

impl Iterator for HeldReader {
    type Item = io::Result<Held>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let mut len = [0u8; 8];
        let frame = self.input.read_exact(&mut len).and_then(|()| {
            let n = usize::try_from(u64::from_le_bytes(len)).map_err(io::Error::other)?;
            let mut buf = vec![0u8; n];
            self.input.read_exact(&mut buf)?;
            Ok(buf)
        });
        Some(
            frame
                .map_err(log_err)
                .and_then(|f| postcard::from_bytes::<Held>(&f).map_err(log_err)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_back_in_order_as_often_as_asked() {
        let mut log = HeldLog::new().unwrap();
        for i in 0..1000u64 {
            log.push(&Held {
                seq: i + 1,
                chunk: (i / 512) as u32,
                order_id: format!("O-{i}"),
                needs: vec![(Some(1), 2), (None, 1)],
                lines: 2,
                units: 3,
                named: (i % 7 == 0).then_some(i as i64),
                raw: None,
            })
            .unwrap();
        }
        assert_eq!(log.len(), 1000);
        for _ in 0..2 {
            let back: Vec<Held> = log.read().unwrap().map(Result::unwrap).collect();
            assert_eq!(back.len(), 1000);
            assert_eq!(back[999].order_id, "O-999");
            assert_eq!(back[7].named, Some(7));
        }
    }
}
