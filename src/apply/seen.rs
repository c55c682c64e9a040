//! The order ids a run has met so far, as a Bloom filter of fixed size: a
//! "no" is certain, a "maybe" is confirmed by the database, which holds every
//! order the run has decided. Memory stays the same whatever the input size.

use std::hash::Hasher;

use rustc_hash::FxHasher;

/// 2^26 bits (8 MiB), zeroed pages mapped on first touch: a small run uses
/// little of it; at 4 M ids about 0.2 % of new ids need a confirming lookup.
const BITS_LOG2: u32 = 26;
const PROBES: u64 = 4;

pub struct SeenIds {
    bits: Vec<u64>,
}

impl Default for SeenIds {
    fn default() -> Self {
        SeenIds::new()
    }
}

impl SeenIds {
    pub fn new() -> Self {
        SeenIds {
            bits: vec![0u64; 1 << (BITS_LOG2 - 6)],
        }
    }

    /// Two independent 64-bit hashes of the id; probe i is h1 + i * h2.
    fn hashes(id: &str) -> (u64, u64) {
        let mut a = FxHasher::default();
        a.write(id.as_bytes());
        a.write_u8(0xa5);
        let h1 = a.finish();
        let mut b = FxHasher::default();
        b.write_u64(0x9e37_79b9_7f4a_7c15);
        b.write(id.as_bytes());
        // An odd step visits distinct positions.
        (h1, b.finish().rotate_left(31) | 1)
    }

    fn positions(id: &str) -> impl Iterator<Item = usize> {
        let (h1, h2) = SeenIds::hashes(id);
        let mask = (1u64 << BITS_LOG2) - 1;
        (0..PROBES).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) & mask) as usize)
    }

    pub fn insert(&mut self, id: &str) {
        for p in SeenIds::positions(id) {
            self.bits[p >> 6] |= 1 << (p & 63);
        }
    }

    /// False: certainly never inserted. True: perhaps.
    pub fn may_contain(&self, id: &str) -> bool {
        SeenIds::positions(id).all(|p| self.bits[p >> 6] & (1 << (p & 63)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserted_ids_are_always_found_and_others_rarely() {
        let mut s = SeenIds::new();
        for i in 0..200_000 {
            s.insert(&format!("ORD-{i:09}"));
        }
        for i in 0..200_000 {
            assert!(s.may_contain(&format!("ORD-{i:09}")));
        }
        let false_hits = (200_000..400_000)
            .filter(|i| s.may_contain(&format!("ORD-{i:09}")))
            .count();
        assert!(false_hits < 20, "{false_hits} false positives in 200000");
    }
}
