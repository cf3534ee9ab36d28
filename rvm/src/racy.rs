//! Copies to and from mapped memory that other threads may be writing at the same time.
//!
//! Mapped segment memory is shared by every thread of the process, and the classic RVM
//! semantics let two transactions write the same bytes (and a reader read them) without any
//! lock. A plain `memcpy`, or a `&[u8]` built over that memory, would then be a data race:
//! undefined behaviour in Rust's memory model, whatever the hardware does. Every access the
//! library makes to mapped memory goes through this module instead, which copies with
//! relaxed atomic loads and stores: defined under races (a racing reader may see a mix of old
//! and new bytes, never undefined behaviour), and compiled to ordinary moves.
//!
//! The aligned middle of a copy moves a machine word per access, the unaligned ends a byte per
//! access. Two copies of the same bytes with different alignments of their ends may therefore
//! access one word with different sizes; this is the same compromise as the byte-wise atomic
//! memcpy proposal (P1478) and the crates that implement it, and no platform Rust supports
//! tears or traps on it.
//!
//! Architecture Invariant: no reference (`&[u8]`, `&mut [u8]`, `&T`) is ever created over
//! mapped segment memory; only these functions touch it.

use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};

const WORD: usize = std::mem::size_of::<usize>();

/// Copy `dst.len()` bytes from mapped memory at `src` into `dst`.
///
/// # Safety
/// `[src, src + dst.len())` must be mapped readable memory for the whole call, and every
/// concurrent access to it must be made through this module (or be another atomic access).
#[inline]
pub(crate) unsafe fn load(src: *const u8, dst: &mut [u8]) {
    let (out, len) = (dst.as_mut_ptr(), dst.len());
    if (src as usize | len).is_multiple_of(WORD) {
        // Whole aligned words (a heap record's ranges always are): no byte loops to test.
        let mut i = 0;
        while i < len {
            // SAFETY: `src + i` is word-aligned (both `src` and `i` are multiples of the word)
            // and its word lies inside the `len` readable source bytes (the contract), whose
            // concurrent accesses are all atomic; `out + i` is inside `dst`, written unaligned.
            unsafe {
                let w = (*src.add(i).cast::<AtomicUsize>()).load(Ordering::Relaxed);
                out.add(i).cast::<usize>().write_unaligned(w);
            }
            i += WORD;
        }
        return;
    }
    // SAFETY: `dst` is `len` writable bytes; the source range is the caller's contract.
    unsafe { load_raw(src, out, len) }
}

/// The little-endian `u64` at `src`: one relaxed atomic load when `src` is 8-byte aligned
/// (heap tags and links always are), else [`load`] of its 8 bytes.
///
/// # Safety
/// As for [`load`], for the 8 bytes at `src`.
#[inline]
pub(crate) unsafe fn load_u64_le(src: *const u8) -> u64 {
    let word = src.cast::<AtomicU64>();
    if word.is_aligned() {
        // SAFETY: the 8 bytes are readable and concurrent accesses atomic (the contract), and
        // `src` is aligned: the contract of `load_u64`.
        return unsafe { load_u64(src) };
    }
    let mut bytes = [0u8; 8];
    // SAFETY: the contract, for these 8 bytes.
    unsafe { load(src, &mut bytes) };
    u64::from_le_bytes(bytes)
}

/// The `N` little-endian `u64`s from `src`, each read as by [`load_u64_le`].
///
/// # Safety
/// As for [`load`], for the `8 * N` bytes at `src`.
#[inline]
pub(crate) unsafe fn load_u64s_le<const N: usize>(src: *const u8) -> [u64; N] {
    if src.cast::<AtomicU64>().is_aligned() {
        // The common case (heap headers are page-aligned): one alignment test for all words.
        return std::array::from_fn(|i| {
            // SAFETY: word `i` lies inside the `8 * N` readable bytes at `src` (the contract)
            // and is aligned, since `src` is: the contract of `load_u64`.
            unsafe { load_u64(src.add(8 * i)) }
        });
    }
    std::array::from_fn(|i| {
        // SAFETY: word `i` lies inside the `8 * N` readable bytes at `src`, whose concurrent
        // accesses are all made through this module (the contract).
        unsafe { load_u64_le(src.add(8 * i)) }
    })
}

/// [`load`] into `len` bytes at `out`, which must be writable (they may be uninitialised).
///
/// # Safety
/// As for [`load`], and `[out, out + len)` is writable memory no reference points into.
#[inline]
unsafe fn load_raw(src: *const u8, out: *mut u8, len: usize) {
    let head = src.align_offset(WORD).min(len);
    // SAFETY: for every access below, `src + i` and `out + i` stay inside the `len` bytes of
    // the source range (readable, the contract) and of the destination; word accesses to
    // `src` start past `head`, so they are word-aligned; `out` is written unaligned.
    unsafe {
        let byte = |i: usize| (*src.add(i).cast::<AtomicU8>()).load(Ordering::Relaxed);
        let word = |i: usize| (*src.add(i).cast::<AtomicUsize>()).load(Ordering::Relaxed);
        let mut i = 0;
        while i < head {
            *out.add(i) = byte(i);
            i += 1;
        }
        while i + 4 * WORD <= len {
            let w = [
                word(i),
                word(i + WORD),
                word(i + 2 * WORD),
                word(i + 3 * WORD),
            ];
            out.add(i).cast::<[usize; 4]>().write_unaligned(w);
            i += 4 * WORD;
        }
        while i + WORD <= len {
            out.add(i).cast::<usize>().write_unaligned(word(i));
            i += WORD;
        }
        while i < len {
            *out.add(i) = byte(i);
            i += 1;
        }
    }
}

/// Copy `src` into mapped memory at `dst`.
///
/// # Safety
/// `[dst, dst + src.len())` must be mapped writable memory for the whole call that no Rust
/// reference points into, and every concurrent access to it must be made through this module.
#[inline]
pub(crate) unsafe fn store(dst: *mut u8, src: &[u8]) {
    let len = src.len();
    let from = src.as_ptr();
    let head = dst.align_offset(WORD).min(len);
    // SAFETY: for every access below, `dst + i` and `from + i` stay inside the `len` bytes of
    // the destination range (writable, the contract) and of `src`; word accesses to `dst` start
    // past `head`, so they are word-aligned; `src` is read unaligned.
    unsafe {
        let byte = |i: usize, b: u8| (*dst.add(i).cast::<AtomicU8>()).store(b, Ordering::Relaxed);
        let word = |i: usize| {
            let w = from.add(i).cast::<usize>().read_unaligned();
            (*dst.add(i).cast::<AtomicUsize>()).store(w, Ordering::Relaxed)
        };
        let mut i = 0;
        while i < head {
            byte(i, *from.add(i));
            i += 1;
        }
        while i + 4 * WORD <= len {
            word(i);
            word(i + WORD);
            word(i + 2 * WORD);
            word(i + 3 * WORD);
            i += 4 * WORD;
        }
        while i + WORD <= len {
            word(i);
            i += WORD;
        }
        while i < len {
            byte(i, *from.add(i));
            i += 1;
        }
    }
}

/// Load the little-endian u64 at `src`, which must be 8-byte aligned (one access).
///
/// # Safety
/// `[src, src + 8)` must be mapped readable memory for the whole call, `src` must be 8-byte
/// aligned, and every concurrent access to it must be made through this module.
#[inline]
pub(crate) unsafe fn load_u64(src: *const u8) -> u64 {
    debug_assert!(src.cast::<AtomicU64>().is_aligned());
    // SAFETY: aligned, mapped and accessed only atomically (the contract).
    u64::from_le(unsafe { (*src.cast::<AtomicU64>()).load(Ordering::Relaxed) })
}

/// Store `value` little-endian at `dst`, which must be 8-byte aligned (one access).
///
/// # Safety
/// As for [`store`], and `dst` must be 8-byte aligned.
#[inline]
pub(crate) unsafe fn store_u64(dst: *mut u8, value: u64) {
    debug_assert!(dst.cast::<AtomicU64>().is_aligned());
    // SAFETY: aligned, mapped writable and accessed only atomically (the contract).
    unsafe { (*dst.cast::<AtomicU64>()).store(value.to_le(), Ordering::Relaxed) }
}

/// Set `len` bytes of mapped memory at `dst` to `byte`.
///
/// # Safety
/// As for [`store`].
#[inline]
pub(crate) unsafe fn fill(dst: *mut u8, len: usize, byte: u8) {
    let head = dst.align_offset(WORD).min(len);
    let word = usize::from_ne_bytes([byte; WORD]);
    let mut i = 0;
    while i < head {
        // SAFETY: `dst + i` is inside the writable range (contract).
        unsafe { (*dst.add(i).cast::<AtomicU8>()).store(byte, Ordering::Relaxed) };
        i += 1;
    }
    while i + WORD <= len {
        // SAFETY: `dst + i` is word-aligned and the word lies inside the range.
        unsafe { (*dst.add(i).cast::<AtomicUsize>()).store(word, Ordering::Relaxed) };
        i += WORD;
    }
    while i < len {
        // SAFETY: as for the head bytes.
        unsafe { (*dst.add(i).cast::<AtomicU8>()).store(byte, Ordering::Relaxed) };
        i += 1;
    }
}

/// Append `len` bytes of mapped memory at `src` to `out`.
///
/// # Safety
/// As for [`load`].
#[inline]
pub(crate) unsafe fn extend_from(out: &mut Vec<u8>, src: *const u8, len: usize) {
    out.reserve(len);
    let at = out.len();
    // SAFETY: `reserve` made room for `len` more bytes; `load_raw` writes every one of them
    // before `set_len` exposes them. The source range is the caller's contract.
    unsafe {
        load_raw(src, out.as_mut_ptr().add(at), len);
        out.set_len(at + len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_every_length_and_alignment_exactly() {
        let source: Vec<u8> = (0..64u8)
            .map(|b| b.wrapping_mul(37).wrapping_add(1))
            .collect();
        for start in 0..9 {
            for len in 0..40 {
                let mut out = vec![0u8; len];
                // SAFETY: the range lies inside `source`, which nothing else accesses.
                unsafe { load(source.as_ptr().add(start), &mut out) };
                assert_eq!(out, source[start..start + len]);
                let mut target = vec![0xeeu8; 64];
                // SAFETY: the range lies inside `target`, and no reference points into it.
                unsafe { store(target.as_mut_ptr().add(start), &source[..len]) };
                assert_eq!(target[start..start + len], source[..len]);
                assert!(target[..start].iter().all(|&b| b == 0xee));
                assert!(target[start + len..].iter().all(|&b| b == 0xee));
                // SAFETY: as above.
                unsafe { fill(target.as_mut_ptr().add(start), len, 7) };
                assert!(target[start..start + len].iter().all(|&b| b == 7));
                assert!(target[start + len..].iter().all(|&b| b == 0xee));
            }
        }
    }

    /// Two threads copy over the same words at once, as two transactions (or a transaction and
    /// a reader) may on mapped memory. Every access is a word-sized atomic, so a racing reader
    /// sees each word whole: all of one writer's bytes or all of the other's, never a mix.
    /// Under Miri (`.ci/miri`) the test also proves the copies race-free: a plain `memcpy`
    /// here, or a reference over the buffer, is reported as a data race.
    #[test]
    fn racing_copies_of_whole_words_are_defined_and_never_tear_a_word() {
        const WORDS: usize = 6;
        let rounds = if cfg!(miri) { 30 } else { 20_000 };
        let mut buffer = vec![0u64; WORDS];
        // Only the address crosses to the threads: no reference to the buffer exists while
        // they run (the `Vec` is not touched again until both have been joined).
        let at = buffer.as_mut_ptr() as usize;
        let (ones, twos) = ([0x11u8; WORDS * 8], [0x22u8; WORDS * 8]);
        std::thread::scope(|scope| {
            scope.spawn(move || {
                for round in 0..rounds {
                    let dst = at as *mut u8;
                    // SAFETY: the buffer's 48 bytes are live until the scope ends, no reference
                    // points into them, and both threads access them only through this module.
                    unsafe {
                        match round % 3 {
                            0 => store(dst, &ones),
                            1 => store(dst, &twos),
                            _ => fill(dst, WORDS * 8, 0x11),
                        }
                    }
                }
            });
            scope.spawn(move || {
                let mut seen = [0u8; WORDS * 8];
                let mut got = Vec::new();
                for round in 0..rounds {
                    let src = at as *const u8;
                    // SAFETY: as for the writer.
                    unsafe {
                        if round % 2 == 0 {
                            load(src, &mut seen);
                        } else {
                            got.clear();
                            extend_from(&mut got, src, WORDS * 8);
                            seen.copy_from_slice(&got);
                        }
                    }
                    for word in seen.chunks(8) {
                        assert!(
                            word.iter().all(|&b| b == word[0])
                                && [0, 0x11, 0x22].contains(&word[0]),
                            "a word read while it was written is torn: {word:x?}"
                        );
                    }
                }
            });
        });
        // SAFETY: both threads have been joined; the buffer is ours alone again.
        let last = unsafe { load_u64(at as *const u8) };
        assert!(last == u64::from_ne_bytes([0x11; 8]) || last == u64::from_ne_bytes([0x22; 8]));
        drop(buffer);
    }
}
