//! The transaction mixes of the issue, generated deterministically from a seed.

/// Transactions in mix (a): Coda RVM needs 0.7-1.2 s to recover this many on a 2-core machine.
pub const MIX_A_TRANSACTIONS: u64 = 11_000;
/// Shortest and longest range of mix (a).
pub const MIX_A_RANGE_BYTES_MIN: usize = 64;
pub const MIX_A_RANGE_BYTES_MAX: usize = 4096;
/// Mix (b): ranges of this many bytes, this many per transaction, scattered over the segment.
pub const SCATTERED_RANGE_BYTES: usize = 64;
pub const SCATTERED_RANGES_PER_TRANSACTION: usize = 8;

/// A small deterministic generator (splitmix64): the same seed gives the same workload, so
/// every iteration of a benchmark touches the same pages.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        ((self.next_u64() as u128 * bound as u128) >> 64) as u64
    }
}

/// What the transactions of a recovery or truncation scenario look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// (a) one range of 64 B-4 KiB at a random offset per transaction, 11,000 transactions.
    OneRange,
    /// (b) 64-byte ranges scattered over the whole segment, until the log is full.
    Scattered,
    /// (c) mix (a) written into a log whose live part wraps around the end of the area.
    Wrapped,
}

impl Mix {
    pub const ALL: [Mix; 3] = [Mix::OneRange, Mix::Scattered, Mix::Wrapped];

    /// Short name used in benchmark ids and report keys.
    pub fn name(self) -> &'static str {
        match self {
            Mix::OneRange => "a_one_range",
            Mix::Scattered => "b_scattered_64",
            Mix::Wrapped => "c_wrapped",
        }
    }

    /// How many transactions the mix holds (`None`: until the log is full).
    pub fn transactions(self) -> Option<u64> {
        match self {
            Mix::OneRange | Mix::Wrapped => Some(MIX_A_TRANSACTIONS),
            Mix::Scattered => None,
        }
    }

    /// Fill `out` with the (offset in region, length) ranges of the next transaction.
    pub fn next_transaction(
        self,
        rng: &mut Rng,
        region_bytes: usize,
        out: &mut Vec<(usize, usize)>,
    ) {
        out.clear();
        match self {
            Mix::OneRange | Mix::Wrapped => {
                let span = (MIX_A_RANGE_BYTES_MAX - MIX_A_RANGE_BYTES_MIN + 1) as u64;
                let len = MIX_A_RANGE_BYTES_MIN + rng.below(span) as usize;
                let offset = rng.below((region_bytes - len) as u64) as usize;
                out.push((offset, len));
            }
            Mix::Scattered => {
                let slots = (region_bytes / SCATTERED_RANGE_BYTES) as u64;
                for _ in 0..SCATTERED_RANGES_PER_TRANSACTION {
                    let offset = rng.below(slots) as usize * SCATTERED_RANGE_BYTES;
                    out.push((offset, SCATTERED_RANGE_BYTES));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_stay_inside_the_region() {
        let region = 1 << 20;
        let mut out = Vec::new();
        for mix in Mix::ALL {
            let mut rng = Rng::new(7);
            for _ in 0..10_000 {
                mix.next_transaction(&mut rng, region, &mut out);
                assert!(!out.is_empty());
                for &(offset, len) in &out {
                    assert!((64..=4096).contains(&len), "{mix:?} length {len}");
                    assert!(offset + len <= region, "{mix:?} range past the region");
                }
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_workload() {
        let (mut a, mut b) = (Rng::new(3), Rng::new(3));
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for _ in 0..100 {
            Mix::OneRange.next_transaction(&mut a, 1 << 30, &mut x);
            Mix::OneRange.next_transaction(&mut b, 1 << 30, &mut y);
            assert_eq!(x, y);
        }
    }
}
