//! Every on-disk structure, encoded and decoded in one place.
//!
//! Architecture Invariant: this module does no I/O. It turns bytes into typed values and back,
//! with explicit little-endian byte order and fixed-width fields; nothing here is `#[repr(C)]`
//! and nothing is written to disk by casting a struct. Decoders never panic on any input: they
//! return a [`DecodeError`] that says which field was wrong.
//!
//! `FORMAT.md` at the repository root has a byte diagram of each structure; the constants here
//! are the single source of truth for its offsets.

pub mod heap;
pub mod log;
pub mod segment;

use byteorder::{ByteOrder, LittleEndian};

/// Why a structure could not be decoded. The caller adds the file and offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// The field (or check) that failed, e.g. "magic", "crc", "length".
    pub field: &'static str,
    /// A sentence for humans: what was found and what was expected.
    pub detail: String,
}

impl DecodeError {
    pub(crate) fn new(field: &'static str, detail: impl Into<String>) -> Self {
        DecodeError {
            field,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.detail)
    }
}

/// Round `value` up to a multiple of `align` (a power of two). Saturates instead of wrapping.
pub const fn align_up(value: u64, align: u64) -> u64 {
    match value.checked_add(align - 1) {
        Some(v) => v & !(align - 1),
        None => !(align - 1),
    }
}

/// Little-endian field access over a byte slice whose length the caller has checked.
pub(crate) fn get_u16(buf: &[u8], at: usize) -> u16 {
    LittleEndian::read_u16(&buf[at..at + 2])
}
pub(crate) fn get_u32(buf: &[u8], at: usize) -> u32 {
    LittleEndian::read_u32(&buf[at..at + 4])
}
pub(crate) fn get_u64(buf: &[u8], at: usize) -> u64 {
    LittleEndian::read_u64(&buf[at..at + 8])
}
pub(crate) fn put_u16(buf: &mut [u8], at: usize, v: u16) {
    LittleEndian::write_u16(&mut buf[at..at + 2], v)
}
pub(crate) fn put_u32(buf: &mut [u8], at: usize, v: u32) {
    LittleEndian::write_u32(&mut buf[at..at + 4], v)
}
pub(crate) fn put_u64(buf: &mut [u8], at: usize, v: u64) {
    LittleEndian::write_u64(&mut buf[at..at + 8], v)
}

/// A 128-bit identifier (random, version 4 layout) for logs and segments.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// The all-zero UUID, never generated; used as "none".
    pub const NIL: Uuid = Uuid([0; 16]);

    /// A fresh random UUID from the kernel's random source.
    pub fn random() -> std::io::Result<Uuid> {
        let mut bytes = [0u8; 16];
        let mut filled = 0;
        while filled < bytes.len() {
            // SAFETY: the pointer and length describe the unfilled tail of `bytes`.
            let n = unsafe {
                libc::getrandom(bytes[filled..].as_mut_ptr().cast(), bytes.len() - filled, 0)
            };
            if n < 0 {
                let err = std::io::Error::last_os_error();
                if err.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            filled += n as usize;
        }
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Ok(Uuid(bytes))
    }

    /// Parse the canonical 8-4-4-4-12 hex form.
    pub fn parse(text: &str) -> Option<Uuid> {
        let hex: Vec<u8> = text.bytes().filter(|b| *b != b'-').collect();
        if hex.len() != 32 || text.len() != 36 {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, pair) in hex.chunks(2).enumerate() {
            let s = std::str::from_utf8(pair).ok()?;
            out[i] = u8::from_str_radix(s, 16).ok()?;
        }
        Some(Uuid(out))
    }
}

impl std::fmt::Display for Uuid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Uuid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Uuid({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_round_trips_through_text() {
        let u = Uuid::random().unwrap();
        assert_ne!(u, Uuid::NIL);
        assert_eq!(Uuid::parse(&u.to_string()), Some(u));
        assert_eq!(Uuid::parse("not-a-uuid"), None);
        assert_eq!(u.0[6] >> 4, 4, "version nibble");
    }

    #[test]
    fn align_up_saturates() {
        assert_eq!(align_up(0, 8), 0);
        assert_eq!(align_up(1, 8), 8);
        assert_eq!(align_up(4096, 4096), 4096);
        assert_eq!(align_up(u64::MAX, 8), !7);
    }
}
