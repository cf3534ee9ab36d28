//! The log: two status slots, then a circular area of records.
//!
//! ```text
//! 0        STATUS_SLOT_SIZE       2*STATUS_SLOT_SIZE = RECORD_AREA_OFFSET              end
//! | slot 0 | slot 1               | record area (circular) ...                          |
//! ```
//!
//! Status slots are written alternately (slot = sequence % 2) so a torn status write leaves the
//! other, older slot intact. Each record has a header and a trailer carrying its LSN and length,
//! and a CRC32 over the whole record seeded with the log's UUID: [`super::record`], whose items
//! are re-exported here.

pub use super::segment_table::{FileIdentity, SegmentEntry, SegmentKind};
use super::{align_up, get_u32, get_u64, put_u32, put_u64, DecodeError, Uuid};

/// Size of one status slot; the record area starts after two of them.
pub const STATUS_SLOT_SIZE: u64 = 32 * 1024;
/// File offset of the first byte of the record area.
pub const RECORD_AREA_OFFSET: u64 = 2 * STATUS_SLOT_SIZE;
/// Every flush starts on a sector boundary, so a write never rewrites a sector that already
/// holds durable records (spec K15). Pads fill the gap.
pub const SECTOR_SIZE: u64 = 512;
/// Smallest record area accepted when creating a log.
pub const RECORD_AREA_MIN_BYTES: u64 = 64 * 1024;
/// Largest record area: positions are u64 but we cap at 1 TiB so a mistyped size is refused.
pub const RECORD_AREA_MAX_BYTES: u64 = 1 << 40;
/// Segments one log can name at once.
pub const SEGMENTS_PER_LOG_MAX: usize = 16;
/// Longest path hint kept for a segment; a longer path is stored as no hint.
pub const PATH_HINT_BYTES_MAX: usize = 1024;

/// Magic at offset 0 of each status slot.
pub const STATUS_MAGIC: [u8; 8] = *b"RVMLOGST";
/// Log format version written in a status slot (offset 8) whose segment table holds only rvm
/// segments ([`SegmentKind::Segment`]): such a slot is byte for byte what every version-1
/// reader reads.
pub const LOG_FORMAT_VERSION: u32 = 1;
/// Log format version written in a status slot whose segment table holds at least one plain
/// file ([`SegmentKind::PlainFile`]), so that a version-1 reader, which would take the entry's
/// device and inode for a segment UUID, refuses the slot instead of misreading it.
pub const LOG_FORMAT_VERSION_PLAIN_FILES: u32 = 2;
/// The newest log format version this library reads (it reads every version from 1 on).
pub const LOG_FORMAT_VERSION_MAX: u32 = LOG_FORMAT_VERSION_PLAIN_FILES;

// Status slot field offsets.
const ST_MAGIC: usize = 0;
const ST_VERSION: usize = 8;
const ST_ENCODED_LEN: usize = 12;
const ST_CRC: usize = 16;
const ST_FLAGS: usize = 20;
const ST_SEQUENCE: usize = 24;
const ST_LOG_UUID: usize = 32;
const ST_LOG_SIZE: usize = 48;
const ST_AREA_OFFSET: usize = 56;
const ST_AREA_SIZE: usize = 64;
const ST_HEAD_OFFSET: usize = 72;
const ST_HEAD_LSN: usize = 80;
const ST_TAIL_OFFSET: usize = 88;
const ST_TAIL_LSN: usize = 96;
const ST_GENERATION: usize = 104;
const ST_GENERATION_START_LSN: usize = 112;
const ST_CREATED_MS: usize = 120;
const ST_WRITTEN_MS: usize = 128;
const ST_LAST_TRUNCATION_MS: usize = 136;
const ST_COUNTERS: usize = 144;
/// Cumulative counters kept in the status (see [`Counters`]).
pub const STATUS_COUNTERS: usize = 16;
/// The last word of the counter block: [`Status::zeroed_through`] (was reserved, zero).
const ST_ZEROED_THROUGH: usize = ST_COUNTERS + 8 * (STATUS_COUNTERS - 1);
const ST_SEGMENT_COUNT: usize = ST_COUNTERS + 8 * STATUS_COUNTERS; // 272
const ST_SEGMENTS: usize = ST_SEGMENT_COUNT + 8; // 280
const SEG_ENTRY_FIXED: usize = 32;

/// Size of the fixed part of a status slot (before the segment table).
pub const STATUS_FIXED_BYTES: usize = ST_SEGMENTS;

const _: () = assert!(ST_SEGMENTS == 280);
const _: () = assert!(
    (ST_SEGMENTS + SEGMENTS_PER_LOG_MAX * (SEG_ENTRY_FIXED + PATH_HINT_BYTES_MAX)) as u64
        <= STATUS_SLOT_SIZE
);

/// Status flag: the log was closed cleanly and `tail_offset`/`tail_lsn` are exact.
pub const STATUS_FLAG_CLEAN: u32 = 1;

/// Cumulative counters persisted in the status slots for the life of the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Transactions committed with `CommitMode::Flush`.
    pub flush_commits: u64,
    /// Transactions committed with `CommitMode::NoFlush`.
    pub no_flush_commits: u64,
    /// Transactions aborted (explicitly or by drop).
    pub aborts: u64,
    /// Log syncs (each covers every commit queued before it: group commit).
    pub flushes: u64,
    /// Transaction records written to the log.
    pub records_written: u64,
    /// Bytes of transaction records written to the log.
    pub bytes_logged: u64,
    /// Truncations completed (records applied to the segments and log space freed).
    pub truncations: u64,
    /// Opens that replayed at least one record.
    pub recoveries: u64,
    /// Times the log's writing position wrapped to the start of the record area.
    pub wraps: u64,
    /// Ranges merged into an overlapping or adjacent range at commit.
    pub ranges_coalesced: u64,
    /// Log bytes saved by coalescing ranges.
    pub bytes_saved_by_coalescing: u64,
}

impl Counters {
    fn to_array(self) -> [u64; STATUS_COUNTERS] {
        let mut a = [0u64; STATUS_COUNTERS];
        a[..11].copy_from_slice(&[
            self.flush_commits,
            self.no_flush_commits,
            self.aborts,
            self.flushes,
            self.records_written,
            self.bytes_logged,
            self.truncations,
            self.recoveries,
            self.wraps,
            self.ranges_coalesced,
            self.bytes_saved_by_coalescing,
        ]);
        a
    }
    fn from_array(a: &[u64; STATUS_COUNTERS]) -> Counters {
        Counters {
            flush_commits: a[0],
            no_flush_commits: a[1],
            aborts: a[2],
            flushes: a[3],
            records_written: a[4],
            bytes_logged: a[5],
            truncations: a[6],
            recoveries: a[7],
            wraps: a[8],
            ranges_coalesced: a[9],
            bytes_saved_by_coalescing: a[10],
        }
    }
    /// Field names in storage order, for tools that print them.
    pub const NAMES: [&'static str; 11] = [
        "flush_commits",
        "no_flush_commits",
        "aborts",
        "flushes",
        "records_written",
        "bytes_logged",
        "truncations",
        "recoveries",
        "wraps",
        "ranges_coalesced",
        "bytes_saved_by_coalescing",
    ];
    /// Values in the order of [`Counters::NAMES`].
    pub fn values(&self) -> [u64; 11] {
        let a = self.to_array();
        let mut v = [0u64; 11];
        v.copy_from_slice(&a[..11]);
        v
    }
}

/// The decoded content of a status slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Status flags ([`STATUS_FLAG_CLEAN`]).
    pub flags: u32,
    /// Grows by one on every status write; the valid slot with the larger sequence is current.
    pub sequence: u64,
    /// The log's UUID; also the seed of every record's CRC ([`crc_seed`]).
    pub log_uuid: Uuid,
    /// Total bytes of the log device in use (status slots + record area).
    pub log_size_bytes: u64,
    /// File offset of the record area (after the two status slots).
    pub area_offset: u64,
    /// Size of the record area in bytes.
    pub area_size: u64,
    /// File offset of the oldest live record.
    pub head_offset: u64,
    /// LSN expected at `head_offset`.
    pub head_lsn: u64,
    /// Where the next record goes, as of this status write (exact only when clean).
    pub tail_offset: u64,
    /// LSN the record at `tail_offset` gets.
    pub tail_lsn: u64,
    /// Incremented before a process writes its first record; every record carries it, so a
    /// record left over from an earlier, crashed run can never extend the chain.
    pub generation: u64,
    /// First LSN written in `generation`; records at or after it must carry `generation`.
    pub generation_start_lsn: u64,
    /// When the log was created, milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
    /// When this status was written, milliseconds since the Unix epoch.
    pub written_unix_ms: u64,
    /// When the last truncation finished, milliseconds since the Unix epoch (0: never).
    pub last_truncation_unix_ms: u64,
    /// Cumulative counters over the life of the log.
    pub counters: Counters,
    /// The record area is written (with records or zeros, so its blocks are allocated and
    /// initialized) from its start up to this file offset; the flush writer zero-fills ahead
    /// of its tail while the area is in its first pass. 0: the whole area (logs created
    /// before this field, whose record area was written in full at creation, and block
    /// devices). Only a performance hint: any value is safe, because only dead space beyond
    /// the tail is ever zero-filled.
    pub zeroed_through: u64,
    /// The segment table: a range's `segment` field is an index into it.
    pub segments: Vec<SegmentEntry>,
}

impl Status {
    /// The status of a freshly created, empty log.
    pub fn new_log(log_uuid: Uuid, area_size: u64, now_ms: u64) -> Status {
        Status {
            flags: STATUS_FLAG_CLEAN,
            sequence: 1,
            log_uuid,
            log_size_bytes: RECORD_AREA_OFFSET + area_size,
            area_offset: RECORD_AREA_OFFSET,
            area_size,
            head_offset: RECORD_AREA_OFFSET,
            head_lsn: 1,
            tail_offset: RECORD_AREA_OFFSET,
            tail_lsn: 1,
            generation: 1,
            generation_start_lsn: 1,
            created_unix_ms: now_ms,
            written_unix_ms: now_ms,
            last_truncation_unix_ms: 0,
            counters: Counters::default(),
            zeroed_through: 0,
            segments: Vec::new(),
        }
    }

    /// The slot (0 or 1) this status is written to.
    pub fn slot(&self) -> u64 {
        self.sequence % 2
    }

    /// End of the record area (exclusive file offset).
    pub fn area_end(&self) -> u64 {
        self.area_offset + self.area_size
    }

    /// [`Status::zeroed_through`] as a file offset inside the record area (0, and any value
    /// outside the area, mean the whole area).
    pub fn zeroed_through_offset(&self) -> u64 {
        match self.zeroed_through {
            z if z >= self.area_offset && z <= self.area_end() => z,
            _ => self.area_end(),
        }
    }

    /// Whether the log was closed cleanly ([`STATUS_FLAG_CLEAN`] is set).
    pub fn is_clean(&self) -> bool {
        self.flags & STATUS_FLAG_CLEAN != 0
    }

    /// The format version this status is written with: [`LOG_FORMAT_VERSION_PLAIN_FILES`]
    /// when its segment table names a plain file, else [`LOG_FORMAT_VERSION`] (the version
    /// rule: a log without plain files stays readable by every version-1 reader).
    pub fn version(&self) -> u32 {
        if self.segments.iter().any(|s| s.kind != SegmentKind::Segment) {
            LOG_FORMAT_VERSION_PLAIN_FILES
        } else {
            LOG_FORMAT_VERSION
        }
    }

    /// Encode into a buffer whose length is a multiple of [`SECTOR_SIZE`].
    pub fn encode(&self) -> Vec<u8> {
        let mut len = ST_SEGMENTS;
        for s in &self.segments {
            len += SEG_ENTRY_FIXED + align_up(s.path_hint.len() as u64, 8) as usize;
        }
        let mut buf = vec![0u8; align_up(len as u64, SECTOR_SIZE) as usize];
        buf[ST_MAGIC..ST_MAGIC + 8].copy_from_slice(&STATUS_MAGIC);
        put_u32(&mut buf, ST_VERSION, self.version());
        put_u32(&mut buf, ST_ENCODED_LEN, len as u32);
        put_u32(&mut buf, ST_FLAGS, self.flags);
        put_u64(&mut buf, ST_SEQUENCE, self.sequence);
        buf[ST_LOG_UUID..ST_LOG_UUID + 16].copy_from_slice(&self.log_uuid.0);
        put_u64(&mut buf, ST_LOG_SIZE, self.log_size_bytes);
        put_u64(&mut buf, ST_AREA_OFFSET, self.area_offset);
        put_u64(&mut buf, ST_AREA_SIZE, self.area_size);
        put_u64(&mut buf, ST_HEAD_OFFSET, self.head_offset);
        put_u64(&mut buf, ST_HEAD_LSN, self.head_lsn);
        put_u64(&mut buf, ST_TAIL_OFFSET, self.tail_offset);
        put_u64(&mut buf, ST_TAIL_LSN, self.tail_lsn);
        put_u64(&mut buf, ST_GENERATION, self.generation);
        put_u64(&mut buf, ST_GENERATION_START_LSN, self.generation_start_lsn);
        put_u64(&mut buf, ST_CREATED_MS, self.created_unix_ms);
        put_u64(&mut buf, ST_WRITTEN_MS, self.written_unix_ms);
        put_u64(
            &mut buf,
            ST_LAST_TRUNCATION_MS,
            self.last_truncation_unix_ms,
        );
        for (i, v) in self.counters.to_array().iter().enumerate() {
            put_u64(&mut buf, ST_COUNTERS + 8 * i, *v);
        }
        put_u64(&mut buf, ST_ZEROED_THROUGH, self.zeroed_through);
        put_u32(&mut buf, ST_SEGMENT_COUNT, self.segments.len() as u32);
        let mut at = ST_SEGMENTS;
        for s in &self.segments {
            buf[at..at + 16].copy_from_slice(&s.uuid.0);
            put_u64(&mut buf, at + 16, s.length_bytes);
            put_u32(&mut buf, at + 24, s.path_hint.len() as u32);
            put_u32(&mut buf, at + 28, s.kind.code());
            let p = s.path_hint.as_bytes();
            buf[at + SEG_ENTRY_FIXED..at + SEG_ENTRY_FIXED + p.len()].copy_from_slice(p);
            at += SEG_ENTRY_FIXED + align_up(p.len() as u64, 8) as usize;
        }
        let crc = crc32fast::hash(&buf[..len]);
        put_u32(&mut buf, ST_CRC, crc);
        buf
    }

    /// Decode a slot. `buf` may be longer than the encoded status (a whole slot).
    pub fn decode(buf: &[u8]) -> Result<Status, DecodeError> {
        Self::decode_up_to(buf, LOG_FORMAT_VERSION_MAX)
    }

    /// Decode a slot as a reader of format versions 1 to `newest` would (`newest` at most
    /// [`LOG_FORMAT_VERSION_MAX`]): a newer version is refused (field `version`). Shows what
    /// an older library makes of a newer log.
    pub fn decode_up_to(buf: &[u8], newest: u32) -> Result<Status, DecodeError> {
        if buf.len() < ST_SEGMENTS {
            return Err(DecodeError::new(
                "length",
                format!("{} bytes is too short", buf.len()),
            ));
        }
        if buf[ST_MAGIC..ST_MAGIC + 8] != STATUS_MAGIC {
            return Err(DecodeError::new("magic", "not an rvm log status slot"));
        }
        let len = get_u32(buf, ST_ENCODED_LEN) as usize;
        if !(ST_SEGMENTS..=STATUS_SLOT_SIZE as usize).contains(&len) || len > buf.len() {
            return Err(DecodeError::new(
                "encoded_len",
                format!("{len} is out of range"),
            ));
        }
        let mut check = buf[..len].to_vec();
        put_u32(&mut check, ST_CRC, 0);
        let stored = get_u32(buf, ST_CRC);
        let computed = crc32fast::hash(&check);
        if stored != computed {
            return Err(DecodeError::new(
                "crc",
                format!("stored {stored:#010x}, computed {computed:#010x} (torn or damaged write)"),
            ));
        }
        let version = get_u32(buf, ST_VERSION);
        let newest = newest.min(LOG_FORMAT_VERSION_MAX);
        if !(LOG_FORMAT_VERSION..=newest).contains(&version) {
            return Err(DecodeError::new(
                "version",
                format!(
                    "log format version {version}, this library reads {LOG_FORMAT_VERSION} to {newest}"
                ),
            ));
        }
        let status = Self::decode_fields(buf, len, true)?;
        if status.version() != version {
            // Version 1 has only segments; version 2 is written only with a plain file.
            return Err(DecodeError::new(
                "version",
                format!(
                    "a version-{version} status whose segment table needs version {}",
                    status.version()
                ),
            ));
        }
        status.validate_geometry()?;
        Ok(status)
    }

    /// Decode a slot without checking its CRC, version or geometry: for inspectors that show
    /// what a damaged slot holds. Only the magic must match. Never use the result to find
    /// records: nothing in it is verified.
    pub fn decode_unverified(buf: &[u8]) -> Option<Status> {
        if buf.len() < ST_SEGMENTS || buf[ST_MAGIC..ST_MAGIC + 8] != STATUS_MAGIC {
            return None;
        }
        let len = (get_u32(buf, ST_ENCODED_LEN) as usize).clamp(ST_SEGMENTS, buf.len());
        Self::decode_fields(buf, len, false).ok()
    }

    /// The fields of a slot whose first `len` bytes are the encoded status. `strict` refuses
    /// a malformed segment table; otherwise the table is cut at the first bad entry.
    fn decode_fields(buf: &[u8], len: usize, strict: bool) -> Result<Status, DecodeError> {
        let mut counters = [0u64; STATUS_COUNTERS];
        for (i, c) in counters.iter_mut().enumerate() {
            *c = get_u64(buf, ST_COUNTERS + 8 * i);
        }
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&buf[ST_LOG_UUID..ST_LOG_UUID + 16]);
        let count = get_u32(buf, ST_SEGMENT_COUNT) as usize;
        if count > SEGMENTS_PER_LOG_MAX && strict {
            return Err(DecodeError::new(
                "segment_count",
                format!("{count} exceeds the maximum {SEGMENTS_PER_LOG_MAX}"),
            ));
        }
        let mut segments = Vec::with_capacity(count.min(SEGMENTS_PER_LOG_MAX));
        let mut at = ST_SEGMENTS;
        for _ in 0..count.min(SEGMENTS_PER_LOG_MAX) {
            if at + SEG_ENTRY_FIXED > len {
                if !strict {
                    break;
                }
                return Err(DecodeError::new(
                    "segment_table",
                    "entry runs past the encoded length",
                ));
            }
            let mut su = [0u8; 16];
            su.copy_from_slice(&buf[at..at + 16]);
            let length_bytes = get_u64(buf, at + 16);
            let plen = get_u32(buf, at + 24) as usize;
            let kind_code = get_u32(buf, at + 28);
            let Some(kind) = SegmentKind::from_code(kind_code) else {
                if !strict {
                    break;
                }
                return Err(DecodeError::new(
                    "segment_table",
                    format!("entry kind {kind_code} is unknown"),
                ));
            };
            if plen > PATH_HINT_BYTES_MAX || at + SEG_ENTRY_FIXED + plen > len {
                if !strict {
                    break;
                }
                return Err(DecodeError::new(
                    "segment_table",
                    "path hint length out of range",
                ));
            }
            let path_hint =
                String::from_utf8_lossy(&buf[at + SEG_ENTRY_FIXED..at + SEG_ENTRY_FIXED + plen])
                    .into_owned();
            segments.push(SegmentEntry {
                kind,
                uuid: Uuid(su),
                length_bytes,
                path_hint,
            });
            at += SEG_ENTRY_FIXED + align_up(plen as u64, 8) as usize;
        }
        let status = Status {
            flags: get_u32(buf, ST_FLAGS),
            sequence: get_u64(buf, ST_SEQUENCE),
            log_uuid: Uuid(uuid),
            log_size_bytes: get_u64(buf, ST_LOG_SIZE),
            area_offset: get_u64(buf, ST_AREA_OFFSET),
            area_size: get_u64(buf, ST_AREA_SIZE),
            head_offset: get_u64(buf, ST_HEAD_OFFSET),
            head_lsn: get_u64(buf, ST_HEAD_LSN),
            tail_offset: get_u64(buf, ST_TAIL_OFFSET),
            tail_lsn: get_u64(buf, ST_TAIL_LSN),
            generation: get_u64(buf, ST_GENERATION),
            generation_start_lsn: get_u64(buf, ST_GENERATION_START_LSN),
            created_unix_ms: get_u64(buf, ST_CREATED_MS),
            written_unix_ms: get_u64(buf, ST_WRITTEN_MS),
            last_truncation_unix_ms: get_u64(buf, ST_LAST_TRUNCATION_MS),
            counters: Counters::from_array(&counters),
            zeroed_through: get_u64(buf, ST_ZEROED_THROUGH),
            segments,
        };
        Ok(status)
    }

    /// Check that the positions describe a sane circular area.
    fn validate_geometry(&self) -> Result<(), DecodeError> {
        let in_area = |o: u64| {
            o >= self.area_offset && o <= self.area_end() && o.is_multiple_of(RECORD_ALIGN)
        };
        if self.area_offset != RECORD_AREA_OFFSET {
            return Err(DecodeError::new(
                "area_offset",
                format!("{} is not {RECORD_AREA_OFFSET}", self.area_offset),
            ));
        }
        if !self.area_size.is_multiple_of(SECTOR_SIZE)
            || !(RECORD_AREA_MIN_BYTES..=RECORD_AREA_MAX_BYTES).contains(&self.area_size)
        {
            return Err(DecodeError::new(
                "area_size",
                format!("{} is out of range", self.area_size),
            ));
        }
        if self.log_size_bytes != self.area_offset + self.area_size {
            return Err(DecodeError::new(
                "log_size",
                "does not equal area offset + area size",
            ));
        }
        if !in_area(self.head_offset) {
            return Err(DecodeError::new(
                "head_offset",
                format!("{} is outside the record area", self.head_offset),
            ));
        }
        if !in_area(self.tail_offset) {
            return Err(DecodeError::new(
                "tail_offset",
                format!("{} is outside the record area", self.tail_offset),
            ));
        }
        if self.head_lsn == 0 || self.tail_lsn < self.head_lsn {
            return Err(DecodeError::new(
                "lsn",
                format!(
                    "head LSN {} / tail LSN {} are inconsistent",
                    self.head_lsn, self.tail_lsn
                ),
            ));
        }
        if self.generation == 0 {
            return Err(DecodeError::new("generation", "is zero"));
        }
        Ok(())
    }
}

pub use super::record::*;

/// Bytes the live records take in the record area `area_start..area_end`: none when the log
/// is `empty`, else from `head` to `tail`, wrapping past the area's end when the tail is not
/// after the head (so head and tail at one offset with records between them are the whole
/// area). Saturating: positions outside the area (a damaged status read at open) give a
/// wrong figure, never a panic.
pub fn live_bytes(empty: bool, head: u64, tail: u64, area_start: u64, area_end: u64) -> u64 {
    if empty {
        0
    } else if tail > head {
        tail - head
    } else {
        (area_end.saturating_sub(head)).saturating_add(tail.saturating_sub(area_start))
    }
}

#[cfg(test)]
#[path = "log_tests.rs"]
mod tests;
