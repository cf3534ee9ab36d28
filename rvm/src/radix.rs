//! A stable least-significant-digit radix sort of `u64` values by their high bits, for
//! orderings of many entries by a packed key (the applier sorts tens of thousands of ranges by
//! segment and offset per truncation: a comparison sort of the entries themselves was a fifth
//! of a truncation's instructions).

/// Bits per digit: 2,048 counters (8 KiB) per pass stay in the first-level cache.
const DIGIT_BITS: u32 = 11;
/// Counters per digit.
const DIGIT_VALUES: usize = 1 << DIGIT_BITS;

/// Sort `values` by `value >> low_bits`, keeping values with equal keys in their order (the
/// low bits are carried along, not compared: they usually hold an index into the sorted
/// entries). `scratch` is reused memory of any content; only the digits that differ between
/// values cost a pass, so keys that span a few bits sort in a pass or two.
pub(crate) fn sort_by_high_bits(values: &mut Vec<u64>, scratch: &mut Vec<u64>, low_bits: u32) {
    if values.len() < 2 || low_bits >= 64 {
        return;
    }
    let (mut lowest, mut highest) = (u64::MAX, 0);
    for &v in values.iter() {
        let key = v >> low_bits;
        lowest = lowest.min(key);
        highest = highest.max(key);
    }
    // Digits above the highest differing bit are equal in every value.
    let key_bits = 64 - (lowest ^ highest).leading_zeros();
    scratch.clear();
    scratch.resize(values.len(), 0);
    let mut shift = low_bits;
    while shift < low_bits + key_bits {
        let mut counts = [0usize; DIGIT_VALUES];
        for &v in values.iter() {
            counts[digit(v, shift)] += 1;
        }
        if counts.contains(&values.len()) {
            // All in one bucket: this digit is the same everywhere.
            shift += DIGIT_BITS;
            continue;
        }
        let mut next = 0;
        for c in counts.iter_mut() {
            (*c, next) = (next, next + *c);
        }
        for &v in values.iter() {
            let d = digit(v, shift);
            scratch[counts[d]] = v;
            counts[d] += 1;
        }
        std::mem::swap(values, scratch);
        shift += DIGIT_BITS;
    }
}

fn digit(v: u64, shift: u32) -> usize {
    // `shift` < 64: the loop stops before the key's bits run out, which end at bit 63.
    ((v >> shift) as usize) & (DIGIT_VALUES - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xorshift(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    /// Against the standard library's stable sort by the same key, for keys of a few bits,
    /// of many bits, of all 64 (`low_bits` 0) and with equal keys (order kept).
    #[test]
    fn radix_sort_matches_a_stable_sort_by_the_high_bits() {
        let mut x = 7;
        for (n, low_bits, key_mask) in [
            (1000, 20, 0xffu64),
            (5000, 20, (1 << 26) - 1),
            (3000, 0, u64::MAX),
            (3000, 8, 3),
            (10, 63, 1),
            (2, 4, u64::MAX >> 4),
        ] {
            let mut values: Vec<u64> = (0..n as u64)
                .map(|i| {
                    let key = (xorshift(&mut x) & key_mask) << low_bits;
                    // The low bits: the position, so stability can be checked.
                    if low_bits == 0 {
                        key
                    } else {
                        key | (i & ((1u64 << low_bits) - 1))
                    }
                })
                .collect();
            let mut expected = values.clone();
            expected.sort_by_key(|v| v.checked_shr(low_bits).unwrap_or(0));
            let mut scratch = vec![99; 3];
            sort_by_high_bits(&mut values, &mut scratch, low_bits);
            assert_eq!(values, expected, "n {n}, low bits {low_bits}");
        }
    }

    /// Keys that all share their high digits but differ in a middle one still sort (the
    /// pass for a digit that is equal everywhere is skipped, not the ones after it).
    #[test]
    fn radix_sort_skips_only_the_digits_that_are_equal_everywhere() {
        let base = 0x00ab_c000_0000_0000u64;
        let mut values: Vec<u64> = [5u64, 3, 9, 1, 3]
            .iter()
            .enumerate()
            .map(|(i, k)| base | (k << 24) | i as u64)
            .collect();
        let mut scratch = Vec::new();
        sort_by_high_bits(&mut values, &mut scratch, 20);
        let order: Vec<u64> = values.iter().map(|v| v & 0xf).collect();
        assert_eq!(order, vec![3, 1, 4, 0, 2]);
    }
}
