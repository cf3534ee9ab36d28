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

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

const WORD: usize = std::mem::size_of::<usize>();

/// Copy `dst.len()` bytes from mapped memory at `src` into `dst`.
///
/// # Safety
/// `[src, src + dst.len())` must be mapped readable memory for the whole call, and every
/// concurrent access to it must be made through this module (or be another atomic access).
#[inline]
pub(crate) unsafe fn load(src: *const u8, dst: &mut [u8]) {
    let len = dst.len();
    let head = src.align_offset(WORD).min(len);
    let mut i = 0;
    while i < head {
        // SAFETY: `src + i` is inside the readable range (contract); AtomicU8 has alignment 1.
        dst[i] = unsafe { (*src.add(i).cast::<AtomicU8>()).load(Ordering::Relaxed) };
        i += 1;
    }
    while i + WORD <= len {
        // SAFETY: `src + i` is word-aligned (past `head`) and the word lies inside the range.
        let w = unsafe { (*src.add(i).cast::<AtomicUsize>()).load(Ordering::Relaxed) };
        dst[i..i + WORD].copy_from_slice(&w.to_ne_bytes());
        i += WORD;
    }
    while i < len {
        // SAFETY: as for the head bytes.
        dst[i] = unsafe { (*src.add(i).cast::<AtomicU8>()).load(Ordering::Relaxed) };
        i += 1;
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
    let head = dst.align_offset(WORD).min(len);
    let mut i = 0;
    while i < head {
        // SAFETY: `dst + i` is inside the writable range (contract); AtomicU8 has alignment 1.
        unsafe { (*dst.add(i).cast::<AtomicU8>()).store(src[i], Ordering::Relaxed) };
        i += 1;
    }
    while i + WORD <= len {
        let mut w = [0u8; WORD];
        w.copy_from_slice(&src[i..i + WORD]);
        // SAFETY: `dst + i` is word-aligned (past `head`) and the word lies inside the range.
        unsafe {
            (*dst.add(i).cast::<AtomicUsize>()).store(usize::from_ne_bytes(w), Ordering::Relaxed)
        };
        i += WORD;
    }
    while i < len {
        // SAFETY: as for the head bytes.
        unsafe { (*dst.add(i).cast::<AtomicU8>()).store(src[i], Ordering::Relaxed) };
        i += 1;
    }
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
    let at = out.len();
    out.resize(at + len, 0);
    // SAFETY: forwarded contract.
    unsafe { load(src, &mut out[at..]) };
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
}
