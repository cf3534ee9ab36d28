//! The segment header: 4096 bytes at offset 0 of every segment, whatever the page size.
//!
//! ```text
//! 0      SEGMENT_HEADER_SIZE          regions[0].offset ...
//! | header | region 0 | region 1 | ...
//! ```

use super::{get_u32, get_u64, put_u32, put_u64, DecodeError, Uuid};

/// Bytes of the segment header; the first region's data starts at or after this offset.
pub const SEGMENT_HEADER_SIZE: u64 = 4096;
/// Magic at offset 0 of the segment header.
pub const SEGMENT_MAGIC: [u8; 8] = *b"RVMSEGHD";
/// Segment format version written at offset 8 of the header; other versions are refused.
pub const SEGMENT_FORMAT_VERSION: u32 = 1;
/// Regions must start, end and be mapped on this alignment. Fixed (not the runtime page size)
/// so a segment made on one machine opens on another (spec K7).
pub const REGION_ALIGN: u64 = 4096;
/// Every region must end at or below this address: the end of user address space on x86-64
/// with 4-level page tables (47-bit addresses, the last page excluded; arm64 Linux with 48-bit
/// addresses allows more). A header whose regions could never be mapped is refused when it is
/// read, so recovery, map and the tools all refuse the same headers.
pub const ADDRESS_END_MAX: u64 = 0x7fff_ffff_f000;

const SH_MAGIC: usize = 0;
const SH_VERSION: usize = 8;
const SH_HEADER_SIZE: usize = 12;
const SH_CRC: usize = 16;
const SH_REGION_COUNT: usize = 20;
const SH_UUID: usize = 24;
const SH_LENGTH: usize = 40;
const SH_CREATED_MS: usize = 48;
const SH_REGIONS: usize = 64;
const REGION_ENTRY_SIZE: usize = 32;

/// Regions one segment header can describe.
pub const REGIONS_MAX: usize = (SEGMENT_HEADER_SIZE as usize - SH_REGIONS) / REGION_ENTRY_SIZE;
const _: () = assert!(REGIONS_MAX == 126);

/// One region: a piece of the segment mapped at a fixed address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionEntry {
    /// Byte offset of the region's data in the segment file (a multiple of [`REGION_ALIGN`]).
    pub offset: u64,
    /// Length of the region in bytes (a multiple of [`REGION_ALIGN`]).
    pub length: u64,
    /// The virtual address the region is mapped at; pointers stored inside rely on it.
    pub address: u64,
}

impl RegionEntry {
    /// One past the region's last byte in the segment file (saturating).
    pub fn end_offset(&self) -> u64 {
        self.offset.saturating_add(self.length)
    }
    /// One past the region's last mapped address (saturating).
    pub fn end_address(&self) -> u64 {
        self.address.saturating_add(self.length)
    }
}

/// The decoded segment header: the segment's identity and its regions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The segment's UUID: the log's segment table names the segment by it.
    pub uuid: Uuid,
    /// Total segment length in bytes, header included.
    pub length_bytes: u64,
    /// When the segment was created, milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
    /// The regions, as listed in the header.
    pub regions: Vec<RegionEntry>,
}

impl SegmentHeader {
    /// Encode into a full header block (magic, version, CRC, regions; zeros after).
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_SIZE as usize] {
        let mut buf = [0u8; SEGMENT_HEADER_SIZE as usize];
        buf[SH_MAGIC..SH_MAGIC + 8].copy_from_slice(&SEGMENT_MAGIC);
        put_u32(&mut buf, SH_VERSION, SEGMENT_FORMAT_VERSION);
        put_u32(&mut buf, SH_HEADER_SIZE, SEGMENT_HEADER_SIZE as u32);
        put_u32(&mut buf, SH_REGION_COUNT, self.regions.len() as u32);
        buf[SH_UUID..SH_UUID + 16].copy_from_slice(&self.uuid.0);
        put_u64(&mut buf, SH_LENGTH, self.length_bytes);
        put_u64(&mut buf, SH_CREATED_MS, self.created_unix_ms);
        for (i, r) in self.regions.iter().take(REGIONS_MAX).enumerate() {
            let at = SH_REGIONS + i * REGION_ENTRY_SIZE;
            put_u64(&mut buf, at, r.offset);
            put_u64(&mut buf, at + 8, r.length);
            put_u64(&mut buf, at + 16, r.address);
        }
        let crc = crc32fast::hash(&buf);
        put_u32(&mut buf, SH_CRC, crc);
        buf
    }

    /// Decode and validate: magic, version, CRC, and a region table whose regions are aligned,
    /// lie after the header inside the segment, are mapped at a non-zero address in user
    /// address space (ending at or below [`ADDRESS_END_MAX`]), and overlap neither in the file
    /// nor in memory.
    pub fn decode(buf: &[u8]) -> Result<SegmentHeader, DecodeError> {
        if buf.len() < SEGMENT_HEADER_SIZE as usize {
            return Err(DecodeError::new(
                "length",
                format!("{} bytes is shorter than a segment header", buf.len()),
            ));
        }
        let buf = &buf[..SEGMENT_HEADER_SIZE as usize];
        if buf[SH_MAGIC..SH_MAGIC + 8] != SEGMENT_MAGIC {
            return Err(DecodeError::new(
                "magic",
                "not an rvm segment (no segment header at offset 0)",
            ));
        }
        let version = get_u32(buf, SH_VERSION);
        if version != SEGMENT_FORMAT_VERSION {
            return Err(DecodeError::new(
                "version",
                format!(
                    "segment format version {version}, this library reads {SEGMENT_FORMAT_VERSION}"
                ),
            ));
        }
        let mut check = [0u8; SEGMENT_HEADER_SIZE as usize];
        check.copy_from_slice(buf);
        put_u32(&mut check, SH_CRC, 0);
        let stored = get_u32(buf, SH_CRC);
        let computed = crc32fast::hash(&check);
        if stored != computed {
            return Err(DecodeError::new(
                "crc",
                format!("stored {stored:#010x}, computed {computed:#010x}"),
            ));
        }
        if get_u32(buf, SH_HEADER_SIZE) as u64 != SEGMENT_HEADER_SIZE {
            return Err(DecodeError::new("header_size", "is not 4096"));
        }
        let count = get_u32(buf, SH_REGION_COUNT) as usize;
        if count > REGIONS_MAX {
            return Err(DecodeError::new(
                "region_count",
                format!("{count} exceeds {REGIONS_MAX}"),
            ));
        }
        let h = Self::decode_fields(buf, count);
        h.validate()?;
        Ok(h)
    }

    /// Decode without checking the CRC, version or layout rules: for inspectors that show what
    /// a damaged header holds. Only the magic must match; the region count is capped at
    /// [`REGIONS_MAX`]. Nothing in the result is verified.
    pub fn decode_unverified(buf: &[u8]) -> Option<SegmentHeader> {
        if buf.len() < SEGMENT_HEADER_SIZE as usize || buf[SH_MAGIC..SH_MAGIC + 8] != SEGMENT_MAGIC
        {
            return None;
        }
        let count = (get_u32(buf, SH_REGION_COUNT) as usize).min(REGIONS_MAX);
        Some(Self::decode_fields(buf, count))
    }

    fn decode_fields(buf: &[u8], count: usize) -> SegmentHeader {
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&buf[SH_UUID..SH_UUID + 16]);
        let regions = (0..count)
            .map(|i| {
                let at = SH_REGIONS + i * REGION_ENTRY_SIZE;
                RegionEntry {
                    offset: get_u64(buf, at),
                    length: get_u64(buf, at + 8),
                    address: get_u64(buf, at + 16),
                }
            })
            .collect();
        SegmentHeader {
            uuid: Uuid(uuid),
            length_bytes: get_u64(buf, SH_LENGTH),
            created_unix_ms: get_u64(buf, SH_CREATED_MS),
            regions,
        }
    }

    /// The layout rules every segment obeys (also checked before one is created).
    pub fn validate(&self) -> Result<(), DecodeError> {
        if self.regions.len() > REGIONS_MAX {
            return Err(DecodeError::new(
                "region_count",
                format!("{} exceeds {REGIONS_MAX}", self.regions.len()),
            ));
        }
        if self.length_bytes < SEGMENT_HEADER_SIZE {
            return Err(DecodeError::new(
                "length",
                format!("{} is shorter than the header", self.length_bytes),
            ));
        }
        for (i, r) in self.regions.iter().enumerate() {
            let what = |rule: &str| {
                DecodeError::new(
                    "region",
                    format!(
                        "region {i} (offset {:#x}, length {:#x}, address {:#x}): {rule}",
                        r.offset, r.length, r.address
                    ),
                )
            };
            if r.length == 0 {
                return Err(what("length is zero"));
            }
            if r.offset % REGION_ALIGN != 0
                || r.length % REGION_ALIGN != 0
                || r.address % REGION_ALIGN != 0
            {
                return Err(what("offset, length and address must be multiples of 4096"));
            }
            if r.offset < SEGMENT_HEADER_SIZE {
                return Err(what("overlaps the segment header"));
            }
            if r.offset
                .checked_add(r.length)
                .is_none_or(|e| e > self.length_bytes)
            {
                return Err(what("runs past the end of the segment"));
            }
            if r.address == 0 {
                return Err(what(
                    "address is zero (a region is mapped at a fixed, non-zero address)",
                ));
            }
            if r.address
                .checked_add(r.length)
                .is_none_or(|e| e > ADDRESS_END_MAX)
            {
                return Err(what(&format!(
                    "address range {:#x}..{:#x} ends past {ADDRESS_END_MAX:#x}, the end of user \
                     address space",
                    r.address,
                    r.address as u128 + r.length as u128
                )));
            }
            for (j, o) in self.regions.iter().enumerate().take(i) {
                if r.offset < o.end_offset() && o.offset < r.end_offset() {
                    return Err(what(&format!("overlaps region {j} in the segment")));
                }
                if r.address < o.end_address() && o.address < r.end_address() {
                    return Err(what(&format!("overlaps region {j} in memory")));
                }
            }
        }
        Ok(())
    }

    /// The region containing segment bytes `[offset, offset+len)`, if one does.
    pub fn region_containing(&self, offset: u64, len: u64) -> Option<usize> {
        let end = offset.checked_add(len)?;
        self.regions
            .iter()
            .position(|r| offset >= r.offset && end <= r.end_offset())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classic_1g() -> SegmentHeader {
        SegmentHeader {
            uuid: Uuid([3; 16]),
            length_bytes: 0x4000_0000,
            created_unix_ms: 1,
            regions: vec![
                RegionEntry {
                    offset: 0x1000,
                    length: 0x3fef_d000,
                    address: 0x7000_0000,
                },
                RegionEntry {
                    offset: 0x1000 + 0x3fef_d000,
                    length: 0x10_0000,
                    address: 0x7000_0000 + 0x3fef_d000,
                },
            ],
        }
    }

    #[test]
    fn classic_one_gigabyte_layout_is_valid_and_round_trips() {
        let h = classic_1g();
        h.validate().unwrap();
        assert_eq!(SegmentHeader::decode(&h.encode()).unwrap(), h);
    }

    #[test]
    fn regions_past_the_end_or_overlapping_are_refused() {
        let mut h = classic_1g();
        h.regions[1].length += 0x3000;
        assert!(h.validate().is_err());
        let mut h = classic_1g();
        h.regions[1].address = 0x7000_0000;
        assert!(h.validate().unwrap_err().detail.contains("in memory"));
        let mut h = classic_1g();
        h.regions[0].offset = 0;
        assert!(h.validate().unwrap_err().detail.contains("header"));
    }

    /// Recovery accepted headers that map refused (issue 12, item 4): the decoder's rules
    /// now refuse them for everybody.
    #[test]
    fn region_addresses_of_zero_or_past_user_space_are_refused() {
        for (address, rule) in [
            (0, "address is zero"),
            (0xffff_8000_0000_0000, "end of user address space"),
            (ADDRESS_END_MAX - 0x1000, "end of user address space"),
            (u64::MAX - 0xfff, "end of user address space"),
            (0x7000_1000, "multiples of 4096"),
        ] {
            let mut h = classic_1g();
            h.regions[1].address = address + if address == 0x7000_1000 { 0x800 } else { 0 };
            let e = SegmentHeader::decode(&h.encode()).unwrap_err();
            assert_eq!(e.field, "region", "{address:#x}");
            assert!(
                e.detail.contains("region 1") && e.detail.contains(rule),
                "{e}"
            );
        }
        let mut h = classic_1g();
        h.regions[0].address = ADDRESS_END_MAX - h.regions[0].length - h.regions[1].length;
        h.regions[1].address = ADDRESS_END_MAX - h.regions[1].length;
        assert_eq!(
            SegmentHeader::decode(&h.encode()).unwrap(),
            h,
            "ends exactly at the limit"
        );
    }

    #[test]
    fn unverified_decode_reads_a_damaged_header() {
        let h = classic_1g();
        let mut buf = h.encode();
        buf[SH_LENGTH] ^= 1;
        assert!(SegmentHeader::decode(&buf).is_err());
        let d = SegmentHeader::decode_unverified(&buf).unwrap();
        assert_eq!(d.regions, h.regions);
        assert_eq!(d.length_bytes, h.length_bytes ^ 1);
        assert!(SegmentHeader::decode_unverified(&[0u8; 4096]).is_none());
    }

    #[test]
    fn damaged_header_is_detected() {
        let buf = classic_1g().encode();
        for i in [0usize, 9, 17, 30, 70, 4095] {
            let mut b = buf;
            b[i] ^= 0x10;
            assert!(SegmentHeader::decode(&b).is_err(), "flip at {i}");
        }
    }
}
