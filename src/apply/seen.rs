//! The order ids a run has met so far, as a Bloom filter of fixed size: a
//! "no" is certain, a "maybe" is confirmed by the database, which holds every
//! order the run has decided. Memory stays the same whatever the input size.

use std::hash::Hasher;

use rustc_hash::FxHasher;

/// 2^26 bits (8 MiB), zeroed pages mapped on first touch: a small run uses
/// little of it; at 4 M ids about 0.2 % of new ids need a confirming lookup.
const BITS_LOG2: u32 = 26;
const PROBES: u32 = 6;
/// The probes of one id all fall in one block of 512 bits (a cache line), so
/// that a lookup costs one memory access, not four: blocked Bloom filter.
const BLOCK_WORDS: usize = 8;

pub struct SeenIds {
    bits: Vec<[u64; BLOCK_WORDS]>,
}

impl Default for SeenIds {
    fn default() -> Self {
        SeenIds::new()
    }
}

impl SeenIds {
    pub fn new() -> Self {
        SeenIds {
            bits: vec![[0u64; BLOCK_WORDS]; 1 << (BITS_LOG2 - 9)],
        }
    }

    /// The id's block, and the mask of its bits in each word of the block.
    fn probes(&self, id: &str) -> (usize, [u64; BLOCK_WORDS]) {
        let mut a = FxHasher::default();
        a.write(id.as_bytes());
        a.write_u8(0xa5);
        let h1 = a.finish();
        let mut b = FxHasher::default();
        b.write_u64(0x9e37_79b9_7f4a_7c15);
        b.write(id.as_bytes());
        let h2 = b.finish();
        let block = (h1 >> 17) as usize & (self.bits.len() - 1);
        let mut masks = [0u64; BLOCK_WORDS];
        for i in 0..PROBES {
            // Nine bits of the second hash per probe: a bit of the block.
            let bit = (h2 >> (9 * i)) as usize & 511;
            masks[bit >> 6] |= 1 << (bit & 63);
        }
        (block, masks)
    }

    pub fn insert(&mut self, id: &str) {
        let (block, masks) = self.probes(id);
        for (word, mask) in self.bits[block].iter_mut().zip(masks) {
            *word |= mask;
        }
    }

    /// False: certainly never inserted. True: perhaps.
    pub fn may_contain(&self, id: &str) -> bool {
        let (block, masks) = self.probes(id);
        self.bits[block]
            .iter()
            .zip(masks)
            .all(|(word, mask)| word & mask == mask)
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

    #[test]
    fn at_four_million_ids_few_new_ids_need_a_lookup() {
        let mut s = SeenIds::new();
        for i in 0..4_000_000 {
            s.insert(&format!("ORD-{i:09}"));
        }
        let false_hits = (4_000_000..4_100_000)
            .filter(|i| s.may_contain(&format!("ORD-{i:09}")))
            .count();
        // About 0.2 % expected: 200 in 100,000.
        assert!(false_hits < 400, "{false_hits} false positives in 100000");
    }
}
