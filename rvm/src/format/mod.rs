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
pub mod merge;
pub mod record;
pub mod segment;
pub mod segment_table;

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

/// A 128-bit identifier (random, version 4) for logs and segments: a thin wrapper over the
/// `uuid` crate's type that keeps the 16 bytes public, because they are written to disk as they
/// are (RFC 4122 byte order, the order the canonical text shows them in).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// The all-zero UUID, never generated; used as "none".
    pub const NIL: Uuid = Uuid([0; 16]);

    /// A fresh random (version 4) UUID from the operating system's random source. An error,
    /// never a panic, if that source fails.
    pub fn random() -> std::io::Result<Uuid> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)?;
        Ok(uuid::Builder::from_random_bytes(bytes).into_uuid().into())
    }

    /// Parse the canonical 8-4-4-4-12 hex form (either case).
    pub fn parse(text: &str) -> Option<Uuid> {
        if text.len() != 36 {
            return None;
        }
        uuid::Uuid::try_parse(text).ok().map(Uuid::from)
    }

    /// The `uuid` crate's value with the same bytes.
    pub fn as_uuid(&self) -> uuid::Uuid {
        uuid::Uuid::from_bytes(self.0)
    }
}

impl From<uuid::Uuid> for Uuid {
    fn from(u: uuid::Uuid) -> Uuid {
        Uuid(u.into_bytes())
    }
}

impl From<Uuid> for uuid::Uuid {
    fn from(u: Uuid) -> uuid::Uuid {
        u.as_uuid()
    }
}

impl std::fmt::Display for Uuid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.as_uuid().hyphenated(), f)
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
    fn uuid_text_and_bytes_are_unchanged() {
        // The bytes the hand-written type produced for this text: in the order the text shows
        // them, which is the order they are written to disk.
        let text = "4fe613e7-28f2-48d3-a5ca-dcf6b364e303";
        let want = [
            0x4f, 0xe6, 0x13, 0xe7, 0x28, 0xf2, 0x48, 0xd3, 0xa5, 0xca, 0xdc, 0xf6, 0xb3, 0x64,
            0xe3, 0x03,
        ];
        let u = Uuid::parse(text).unwrap();
        assert_eq!(u.0, want);
        assert_eq!(u.to_string(), text);
        assert_eq!(Uuid::parse(&text.to_uppercase()), Some(u));
        assert_eq!(format!("{u:?}"), format!("Uuid({text})"));
        // On disk: a segment header and a log status hold the same 16 bytes, in that order
        // (offsets 24 and 32, FORMAT.md).
        let header = segment::SegmentHeader {
            uuid: u,
            length_bytes: 1 << 20,
            created_unix_ms: 0,
            regions: vec![segment::RegionEntry {
                offset: 4096,
                length: 4096,
                address: 0x5000_0000,
            }],
        };
        assert_eq!(header.encode()[24..40], want);
        let status = log::Status::new_log(u, 1 << 20, 0);
        assert_eq!(status.encode()[32..48], want);
        for bad in [
            "4fe613e728f248d3a5cadcf6b364e303",
            "{4fe613e7-28f2-48d3-a5ca-dcf6b364e303}",
            "urn:uuid:4fe613e7-28f2-48d3-a5ca-dcf6b364e303",
            "4fe613e7-28f2-48d3-a5ca-dcf6b364e30g",
        ] {
            assert_eq!(Uuid::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn uuid_random_is_version_4_rfc_variant() {
        let a = Uuid::random().unwrap();
        let b = Uuid::random().unwrap();
        assert_ne!(a, b);
        for u in [a, b] {
            assert_eq!(u.0[6] >> 4, 4, "version nibble");
            assert_eq!(u.0[8] >> 6, 0b10, "variant bits");
        }
    }

    #[test]
    fn align_up_saturates() {
        assert_eq!(align_up(0, 8), 0);
        assert_eq!(align_up(1, 8), 8);
        assert_eq!(align_up(4096, 4096), 4096);
        assert_eq!(align_up(u64::MAX, 8), !7);
    }
}
