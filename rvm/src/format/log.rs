//! The log: two status slots, then a circular area of records.
//!
//! ```text
//! 0        STATUS_SLOT_SIZE       2*STATUS_SLOT_SIZE = RECORD_AREA_OFFSET              end
//! | slot 0 | slot 1               | record area (circular) ...                          |
//! ```
//!
//! Status slots are written alternately (slot = sequence % 2) so a torn status write leaves the
//! other, older slot intact. Each record has a header and a trailer carrying its LSN and length,
//! and a CRC32 over the whole record seeded with the log's UUID.

pub use super::segment_table::{FileIdentity, SegmentEntry, SegmentKind};
use super::{align_up, get_u16, get_u32, get_u64, put_u16, put_u32, put_u64, DecodeError, Uuid};

/// Size of one status slot; the record area starts after two of them.
pub const STATUS_SLOT_SIZE: u64 = 32 * 1024;
/// File offset of the first byte of the record area.
pub const RECORD_AREA_OFFSET: u64 = 2 * STATUS_SLOT_SIZE;
/// Every record starts and ends on this alignment.
pub const RECORD_ALIGN: u64 = 8;
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
/// Ranges in one transaction record.
pub const RANGES_PER_RECORD_MAX: u32 = 1 << 24;

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

/// Magic at offset 0 of every record header (`RVMR`, little-endian).
pub const RECORD_MAGIC: u32 = u32::from_le_bytes(*b"RVMR");
/// Magic at the end of every record trailer (`RVMT`, little-endian).
pub const TRAILER_MAGIC: u32 = u32::from_le_bytes(*b"RVMT");
/// Record kind: a committed transaction (its body is its ranges and their new values).
pub const KIND_TRANSACTION: u16 = 1;
/// Filler: the body is not written and not covered by the CRC. Used to align a flush to a
/// sector and to fill the end of the area before wrapping to its start.
pub const KIND_PAD: u16 = 2;

/// Transaction flag: committed with `CommitMode::Flush`.
pub const TX_FLAG_FLUSH: u16 = 1;
/// Transaction flag: begun in `BeginMode::Restore`.
pub const TX_FLAG_RESTORE: u16 = 2;

/// Bytes of a record header.
pub const RECORD_HEADER_SIZE: usize = 56;
/// Bytes of a record trailer.
pub const RECORD_TRAILER_SIZE: usize = 24;
/// Bytes of a range header inside a transaction record body (its data follows).
pub const RANGE_HEADER_SIZE: usize = 32;
/// Smallest record (a pad with no body).
pub const RECORD_MIN_SIZE: u64 = (RECORD_HEADER_SIZE + RECORD_TRAILER_SIZE) as u64;

const RH_MAGIC: usize = 0;
const RH_KIND: usize = 4;
const RH_FLAGS: usize = 6;
const RH_LSN: usize = 8;
const RH_LENGTH: usize = 16;
const RH_GENERATION: usize = 24;
const RH_BATCH_FIRST_LSN: usize = 32;
const RH_TIME_US: usize = 40;
const RH_RANGE_COUNT: usize = 48;
const RH_HEADER_CRC: usize = 52;

const RT_LSN: usize = 0;
const RT_LENGTH: usize = 8;
const RT_CRC: usize = 16;
const RT_MAGIC: usize = 20;

const RG_SEGMENT: usize = 0;
const RG_OFFSET: usize = 8;
const RG_LENGTH: usize = 16;
const RG_ADDRESS: usize = 24;

const _: () = assert!(RH_HEADER_CRC + 4 == RECORD_HEADER_SIZE);
const _: () = assert!(RT_MAGIC + 4 == RECORD_TRAILER_SIZE);
const _: () = assert!(RG_ADDRESS + 8 == RANGE_HEADER_SIZE);
const _: () = assert!(RECORD_MIN_SIZE.is_multiple_of(RECORD_ALIGN));

/// The CRC seed of a log: records from another log never validate here.
pub fn crc_seed(log_uuid: &Uuid) -> u32 {
    crc32fast::hash(&log_uuid.0)
}

/// A decoded record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// Record kind ([`KIND_TRANSACTION`] or [`KIND_PAD`]).
    pub kind: u16,
    /// Transaction flags ([`TX_FLAG_FLUSH`], [`TX_FLAG_RESTORE`]); 0 for a pad.
    pub flags: u16,
    /// Log sequence number: one more than the previous record's.
    pub lsn: u64,
    /// Total length: header + body + trailer, a multiple of [`RECORD_ALIGN`].
    pub length: u64,
    /// Generation of the process run that wrote the record (see [`Status::generation`]).
    pub generation: u64,
    /// LSN of the first record written by the same flush (same write + sync).
    pub batch_first_lsn: u64,
    /// Time of the flush that wrote the record, microseconds since the epoch; informational.
    pub time_us: u64,
    /// Number of ranges in the body (0 for a pad).
    pub range_count: u32,
}

impl RecordHeader {
    /// Encode into the first [`RECORD_HEADER_SIZE`] bytes of `buf`, with the header CRC computed
    /// from `seed` (the log's [`crc_seed`]).
    pub fn encode_into(&self, buf: &mut [u8], seed: u32) {
        put_u32(buf, RH_MAGIC, RECORD_MAGIC);
        put_u16(buf, RH_KIND, self.kind);
        put_u16(buf, RH_FLAGS, self.flags);
        put_u64(buf, RH_LSN, self.lsn);
        put_u64(buf, RH_LENGTH, self.length);
        put_u64(buf, RH_GENERATION, self.generation);
        put_u64(buf, RH_BATCH_FIRST_LSN, self.batch_first_lsn);
        put_u64(buf, RH_TIME_US, self.time_us);
        put_u32(buf, RH_RANGE_COUNT, self.range_count);
        let crc = header_crc(&buf[..RH_HEADER_CRC], seed);
        put_u32(buf, RH_HEADER_CRC, crc);
    }

    /// Decode and check the header's own CRC and basic sanity. `room` is how many bytes the
    /// record may occupy from its start (to the end of the area).
    pub fn decode(buf: &[u8], seed: u32, room: u64) -> Result<RecordHeader, DecodeError> {
        Self::decode_checked(buf, &CrcSeed::new(seed), room).map(|(h, _)| h)
    }

    /// [`RecordHeader::decode`] with a ready hasher, also returning the running record CRC
    /// after the header's first bytes (which the record CRC covers first, exactly as the
    /// header CRC does): [`RecordCrc::verify`] finishes the record's check from there, so
    /// a reader hashes each byte once.
    pub fn decode_checked(
        buf: &[u8],
        seed: &CrcSeed,
        room: u64,
    ) -> Result<(RecordHeader, RecordCrc), DecodeError> {
        if buf.len() < RECORD_HEADER_SIZE {
            return Err(DecodeError::new("header", "truncated record header"));
        }
        if get_u32(buf, RH_MAGIC) != RECORD_MAGIC {
            return Err(DecodeError::new("magic", "no record header here"));
        }
        let stored = get_u32(buf, RH_HEADER_CRC);
        let mut running = seed.start();
        running.update(&buf[..RH_HEADER_CRC]);
        let computed = running.clone().finalize();
        if stored != computed {
            return Err(DecodeError::new(
                "header_crc",
                format!("stored {stored:#010x}, computed {computed:#010x}"),
            ));
        }
        let h = RecordHeader {
            kind: get_u16(buf, RH_KIND),
            flags: get_u16(buf, RH_FLAGS),
            lsn: get_u64(buf, RH_LSN),
            length: get_u64(buf, RH_LENGTH),
            generation: get_u64(buf, RH_GENERATION),
            batch_first_lsn: get_u64(buf, RH_BATCH_FIRST_LSN),
            time_us: get_u64(buf, RH_TIME_US),
            range_count: get_u32(buf, RH_RANGE_COUNT),
        };
        if h.kind != KIND_TRANSACTION && h.kind != KIND_PAD {
            return Err(DecodeError::new(
                "kind",
                format!("unknown record kind {}", h.kind),
            ));
        }
        if h.length < RECORD_MIN_SIZE || !h.length.is_multiple_of(RECORD_ALIGN) || h.length > room {
            return Err(DecodeError::new(
                "length",
                format!(
                    "{} is not a valid record length here (room {room})",
                    h.length
                ),
            ));
        }
        if h.kind == KIND_PAD && h.range_count != 0 {
            return Err(DecodeError::new("range_count", "a pad has ranges"));
        }
        if h.range_count > RANGES_PER_RECORD_MAX {
            return Err(DecodeError::new(
                "range_count",
                format!("{} is too many", h.range_count),
            ));
        }
        if h.batch_first_lsn > h.lsn {
            return Err(DecodeError::new(
                "batch_first_lsn",
                "is after the record's own LSN",
            ));
        }
        Ok((h, RecordCrc(running)))
    }
}

/// The record CRC of a record whose header [`RecordHeader::decode_checked`] decoded, run over
/// the header's first [`RECORD_HEADER_SIZE`]` - 4` bytes.
#[derive(Clone)]
pub struct RecordCrc(crc32fast::Hasher);

impl RecordCrc {
    /// Check the record against its trailer and CRC, as [`verify_record`] does, from the
    /// header bytes on: `head` is at least the header, `body` the body (ignored for a pad),
    /// `trailer` the trailer. A record that is whole in memory is best passed as `head` with
    /// `body` and `trailer` cut from it: one pass then covers header end, body and trailer.
    pub fn verify(
        self,
        header: &RecordHeader,
        head: &[u8],
        body: &[u8],
        trailer: &[u8],
    ) -> Result<(), DecodeError> {
        let t = check_trailer(header, trailer)?;
        if head.len() < RECORD_HEADER_SIZE {
            return Err(DecodeError::new("header", "truncated record header"));
        }
        let mut h = self.0;
        let contiguous = header.kind != KIND_PAD
            && head.len() >= RECORD_HEADER_SIZE + RECORD_TRAILER_SIZE
            && head.len() == header.length as usize
            && body.as_ptr_range().start == head[RECORD_HEADER_SIZE..].as_ptr()
            && body.len() + RECORD_HEADER_SIZE + RECORD_TRAILER_SIZE == head.len()
            && trailer.as_ptr() == head[head.len() - RECORD_TRAILER_SIZE..].as_ptr();
        if contiguous {
            h.update(&head[RH_HEADER_CRC..head.len() - RECORD_TRAILER_SIZE + RT_CRC]);
        } else {
            h.update(&head[RH_HEADER_CRC..RECORD_HEADER_SIZE]);
            if header.kind != KIND_PAD {
                h.update(body);
            }
            h.update(&trailer[..RT_CRC]);
        }
        let computed = h.finalize();
        if computed != t.crc {
            return Err(DecodeError::new(
                "crc",
                format!("stored {:#010x}, computed {computed:#010x}", t.crc),
            ));
        }
        Ok(())
    }
}

/// Decode `trailer` and check it names the same LSN and length as `header`.
fn check_trailer(header: &RecordHeader, trailer: &[u8]) -> Result<RecordTrailer, DecodeError> {
    let t = RecordTrailer::decode(trailer)?;
    if t.lsn != header.lsn || t.length != header.length {
        return Err(DecodeError::new(
            "trailer",
            format!(
                "trailer says LSN {} length {}, header says LSN {} length {}",
                t.lsn, t.length, header.lsn, header.length
            ),
        ));
    }
    Ok(t)
}

fn header_crc(bytes: &[u8], seed: u32) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(seed);
    h.update(bytes);
    h.finalize()
}

/// A decoded record trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordTrailer {
    /// The record's LSN (must equal the header's).
    pub lsn: u64,
    /// The record's total length (must equal the header's).
    pub length: u64,
    /// CRC of the record ([`record_crc`]).
    pub crc: u32,
}

impl RecordTrailer {
    /// Decode the first [`RECORD_TRAILER_SIZE`] bytes of `buf`; fails if short or the magic is
    /// wrong.
    pub fn decode(buf: &[u8]) -> Result<RecordTrailer, DecodeError> {
        if buf.len() < RECORD_TRAILER_SIZE {
            return Err(DecodeError::new("trailer", "truncated record trailer"));
        }
        if get_u32(buf, RT_MAGIC) != TRAILER_MAGIC {
            return Err(DecodeError::new("trailer_magic", "no record trailer here"));
        }
        Ok(RecordTrailer {
            lsn: get_u64(buf, RT_LSN),
            length: get_u64(buf, RT_LENGTH),
            crc: get_u32(buf, RT_CRC),
        })
    }
}

/// The CRC of a whole record. For a pad only the header and the trailer's LSN and length are
/// covered (its body is never written); for a transaction every byte before the CRC field.
pub fn record_crc(header: &[u8], body: &[u8], trailer_prefix: &[u8], seed: u32) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(seed);
    h.update(header);
    h.update(body);
    h.update(trailer_prefix);
    h.finalize()
}

/// One range as stored in a transaction record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeHeader {
    /// Index into the log's segment table.
    pub segment: u32,
    /// Byte offset of the range in the segment file.
    pub offset: u64,
    /// Length of the range in bytes (its data follows the header, padded to 8).
    pub length: u64,
    /// Virtual address at commit time (informational; rvmutl searches by it).
    pub address: u64,
}

impl RangeHeader {
    /// Encode into the first [`RANGE_HEADER_SIZE`] bytes of `buf`.
    pub fn encode_into(&self, buf: &mut [u8]) {
        put_u32(buf, RG_SEGMENT, self.segment);
        put_u32(buf, RG_SEGMENT + 4, 0);
        put_u64(buf, RG_OFFSET, self.offset);
        put_u64(buf, RG_LENGTH, self.length);
        put_u64(buf, RG_ADDRESS, self.address);
    }
    /// Decode the first [`RANGE_HEADER_SIZE`] bytes of `buf`; fails if short.
    pub fn decode(buf: &[u8]) -> Result<RangeHeader, DecodeError> {
        if buf.len() < RANGE_HEADER_SIZE {
            return Err(DecodeError::new("range", "truncated range header"));
        }
        Ok(RangeHeader {
            segment: get_u32(buf, RG_SEGMENT),
            offset: get_u64(buf, RG_OFFSET),
            length: get_u64(buf, RG_LENGTH),
            address: get_u64(buf, RG_ADDRESS),
        })
    }
    /// Bytes this range occupies in a record (header + data padded to 8).
    pub fn encoded_size(length: u64) -> u64 {
        (RANGE_HEADER_SIZE as u64).saturating_add(align_up(length, RECORD_ALIGN))
    }
}

/// Size of a transaction record holding ranges of the given data lengths.
pub fn transaction_record_size(range_lengths: impl IntoIterator<Item = u64>) -> u64 {
    let mut size = RECORD_MIN_SIZE;
    for l in range_lengths {
        size = size.saturating_add(RangeHeader::encoded_size(l));
    }
    size
}

/// A log's CRC seed ([`crc_seed`]) as a ready hasher: `crc32fast` checks the CPU's features
/// each time a hasher is made, and cloning this one skips that (the flush writer seals every
/// record with it).
#[derive(Clone)]
pub struct CrcSeed {
    hasher: crc32fast::Hasher,
}

impl CrcSeed {
    /// The hasher of a log whose seed is `seed`.
    pub fn new(seed: u32) -> CrcSeed {
        CrcSeed {
            hasher: crc32fast::Hasher::new_with_initial(seed),
        }
    }

    /// A fresh hasher started with the seed.
    #[inline]
    fn start(&self) -> crc32fast::Hasher {
        self.hasher.clone()
    }
}

impl std::fmt::Debug for CrcSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrcSeed")
            .field("seed", &self.hasher.clone().finalize())
            .finish()
    }
}

/// Fill in the LSN-dependent fields of an encoded transaction record (built by
/// [`TransactionEncoder`]) and compute its CRCs. `rec` is the whole record.
pub fn seal_record(rec: &mut [u8], lsn: u64, generation: u64, batch_first_lsn: u64, seed: u32) {
    seal_record_with(rec, lsn, generation, batch_first_lsn, &CrcSeed::new(seed));
}

/// [`seal_record`] with a ready hasher. Both CRCs come from one pass over the record: the
/// record CRC covers the header's first [`RECORD_HEADER_SIZE`]` - 4` bytes first, exactly what
/// the header CRC covers, so the header CRC is the running CRC at that point; the pass then
/// goes on over the header CRC just stored, the body and the trailer's LSN and length.
#[inline]
pub fn seal_record_with(
    rec: &mut [u8],
    lsn: u64,
    generation: u64,
    batch_first_lsn: u64,
    seed: &CrcSeed,
) {
    let len = rec.len();
    put_u64(rec, RH_LSN, lsn);
    put_u64(rec, RH_GENERATION, generation);
    put_u64(rec, RH_BATCH_FIRST_LSN, batch_first_lsn);
    let t = len - RECORD_TRAILER_SIZE;
    put_u64(rec, t + RT_LSN, lsn);
    put_u64(rec, t + RT_LENGTH, len as u64);
    put_u32(rec, t + RT_MAGIC, TRAILER_MAGIC);
    let mut h = seed.start();
    h.update(&rec[..RH_HEADER_CRC]);
    put_u32(rec, RH_HEADER_CRC, h.clone().finalize());
    h.update(&rec[RH_HEADER_CRC..t + RT_CRC]);
    put_u32(rec, t + RT_CRC, h.finalize());
}

/// Set the (informational) commit time of an unsealed record; done once per flush so the
/// commit path needs no clock read.
pub fn stamp_time(rec: &mut [u8], time_us: u64) {
    put_u64(rec, RH_TIME_US, time_us);
}

/// Appends an unsealed transaction record to a buffer: header fields that do not depend on the
/// LSN, then ranges. Call [`seal_record`] on the finished bytes before writing them.
pub struct TransactionEncoder;

impl TransactionEncoder {
    /// Start a record at the end of `buf`; returns its start offset in `buf`.
    pub fn begin(buf: &mut Vec<u8>, flags: u16, time_us: u64, range_count: u32) -> usize {
        let start = buf.len();
        buf.resize(start + RECORD_HEADER_SIZE, 0);
        let h = &mut buf[start..];
        put_u32(h, RH_MAGIC, RECORD_MAGIC);
        put_u16(h, RH_KIND, KIND_TRANSACTION);
        put_u16(h, RH_FLAGS, flags);
        put_u64(h, RH_TIME_US, time_us);
        put_u32(h, RH_RANGE_COUNT, range_count);
        start
    }

    /// Append one range header and reserve its data; returns the data slice to fill.
    pub fn range<'a>(buf: &'a mut Vec<u8>, range: &RangeHeader) -> &'a mut [u8] {
        let at = buf.len();
        let padded = align_up(range.length, RECORD_ALIGN) as usize;
        buf.resize(at + RANGE_HEADER_SIZE + padded, 0);
        range.encode_into(&mut buf[at..at + RANGE_HEADER_SIZE]);
        let data = at + RANGE_HEADER_SIZE;
        &mut buf[data..data + range.length as usize]
    }

    /// Append one range header, then let `append` append exactly `range.length` bytes of data
    /// to `buf` (checked), then pad with zeros to 8. For data that is not in a Rust slice
    /// (mapped memory is copied with race-defined accesses, never borrowed).
    pub fn range_with(buf: &mut Vec<u8>, range: &RangeHeader, append: impl FnOnce(&mut Vec<u8>)) {
        let padded = align_up(range.length, RECORD_ALIGN) as usize;
        buf.reserve(RANGE_HEADER_SIZE + padded);
        let mut header = [0u8; RANGE_HEADER_SIZE];
        range.encode_into(&mut header);
        buf.extend_from_slice(&header);
        let data = buf.len();
        append(buf);
        if buf.len() != data + padded {
            // A short or long append would misplace every later field: keep the layout
            // exact; then pad the data to 8 bytes with zeros.
            buf.resize(data + range.length as usize, 0);
            buf.resize(data + padded, 0);
        }
    }

    /// Append one range header and its data, copied from `data` (padded with zeros to 8).
    pub fn range_from(buf: &mut Vec<u8>, range: &RangeHeader, data: &[u8]) {
        Self::range_with(buf, range, |b| b.extend_from_slice(data));
    }

    /// Append a whole unsealed transaction record in one step (one resize of `buf`, where
    /// [`TransactionEncoder::begin`], `range_with` and `finish` grow it once per field): the
    /// header, then each range's header followed by its data, which `fill` writes into the
    /// slice it is given (the `i`th range's `length` bytes; the padding stays zero), then
    /// room for the trailer. Returns the record's start in `buf`; [`seal_record`] it before
    /// writing it. `ranges` is walked twice (size, then layout) and must yield the same
    /// ranges both times; a range that would not fit the size of the first walk ends the
    /// layout early (the record then fails its checks: it is never silently misplaced).
    pub fn record_with<I>(
        buf: &mut Vec<u8>,
        flags: u16,
        ranges: I,
        mut fill: impl FnMut(usize, &mut [u8]),
    ) -> usize
    where
        I: ExactSizeIterator<Item = RangeHeader> + Clone,
    {
        let size = transaction_record_size(ranges.clone().map(|r| r.length)) as usize;
        let start = buf.len();
        buf.resize(start + size, 0);
        let rec = &mut buf[start..];
        put_u32(rec, RH_MAGIC, RECORD_MAGIC);
        put_u16(rec, RH_KIND, KIND_TRANSACTION);
        put_u16(rec, RH_FLAGS, flags);
        put_u64(rec, RH_LENGTH, size as u64);
        put_u32(rec, RH_RANGE_COUNT, ranges.len() as u32);
        let body_end = size - RECORD_TRAILER_SIZE;
        let mut at = RECORD_HEADER_SIZE;
        for (i, range) in ranges.enumerate() {
            let need = RangeHeader::encoded_size(range.length) as usize;
            let Some(slot) = rec.get_mut(at..(at + need).min(body_end)) else {
                break;
            };
            if slot.len() < need {
                break;
            }
            range.encode_into(&mut slot[..RANGE_HEADER_SIZE]);
            fill(
                i,
                &mut slot[RANGE_HEADER_SIZE..RANGE_HEADER_SIZE + range.length as usize],
            );
            at += need;
        }
        start
    }

    /// Finish the record that starts at `start`: reserve the trailer and set the length.
    pub fn finish(buf: &mut Vec<u8>, start: usize) -> u64 {
        buf.resize(buf.len() + RECORD_TRAILER_SIZE, 0);
        let len = (buf.len() - start) as u64;
        put_u64(&mut buf[start..], RH_LENGTH, len);
        len
    }
}

/// Encode a pad record of `length` bytes: returns (header bytes, trailer bytes). The header
/// goes at the pad's start, the trailer in its last [`RECORD_TRAILER_SIZE`] bytes.
pub fn encode_pad(
    length: u64,
    lsn: u64,
    generation: u64,
    batch_first_lsn: u64,
    seed: u32,
) -> ([u8; RECORD_HEADER_SIZE], [u8; RECORD_TRAILER_SIZE]) {
    let mut h = [0u8; RECORD_HEADER_SIZE];
    RecordHeader {
        kind: KIND_PAD,
        flags: 0,
        lsn,
        length,
        generation,
        batch_first_lsn,
        time_us: 0,
        range_count: 0,
    }
    .encode_into(&mut h, seed);
    let mut t = [0u8; RECORD_TRAILER_SIZE];
    put_u64(&mut t, RT_LSN, lsn);
    put_u64(&mut t, RT_LENGTH, length);
    put_u32(&mut t, RT_MAGIC, TRAILER_MAGIC);
    let crc = record_crc(&h, &[], &t[..RT_CRC], seed);
    put_u32(&mut t, RT_CRC, crc);
    (h, t)
}

/// Check a whole record (header already decoded) against its trailer and CRC.
/// For a pad, `bytes` may be just header + trailer (its body is ignored).
pub fn verify_record(
    header: &RecordHeader,
    head: &[u8],
    body: &[u8],
    trailer: &[u8],
    seed: u32,
) -> Result<(), DecodeError> {
    let t = check_trailer(header, trailer)?;
    let body_for_crc: &[u8] = if header.kind == KIND_PAD { &[] } else { body };
    let computed = record_crc(
        &head[..RECORD_HEADER_SIZE],
        body_for_crc,
        &trailer[..RT_CRC],
        seed,
    );
    if computed != t.crc {
        return Err(DecodeError::new(
            "crc",
            format!("stored {:#010x}, computed {computed:#010x}", t.crc),
        ));
    }
    Ok(())
}

/// Walk the ranges of a verified transaction body. Never panics: a malformed body yields an
/// error item and stops.
pub fn ranges(body: &[u8], range_count: u32) -> RangeIter<'_> {
    RangeIter {
        body,
        at: 0,
        left: range_count,
        failed: false,
    }
}

/// Iterator over the ranges of a transaction body, from [`ranges`].
pub struct RangeIter<'a> {
    body: &'a [u8],
    at: usize,
    left: u32,
    failed: bool,
}

/// A range and its new-value bytes, borrowed from a record body.
#[derive(Debug, Clone, Copy)]
pub struct RangeRef<'a> {
    /// The range header.
    pub header: RangeHeader,
    /// Offset of the range header inside the record body.
    pub body_offset: usize,
    /// The range's new-value bytes (`header.length` of them).
    pub data: &'a [u8],
}

impl<'a> Iterator for RangeIter<'a> {
    type Item = Result<RangeRef<'a>, DecodeError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.left == 0 {
            if self.at != self.body.len() {
                self.failed = true;
                return Some(Err(DecodeError::new(
                    "body",
                    "bytes left after the last range",
                )));
            }
            return None;
        }
        let rest = &self.body[self.at..];
        let h = match RangeHeader::decode(rest) {
            Ok(h) => h,
            Err(e) => {
                self.failed = true;
                return Some(Err(e));
            }
        };
        let need = RangeHeader::encoded_size(h.length);
        if h.length > rest.len() as u64 || need > rest.len() as u64 {
            self.failed = true;
            return Some(Err(DecodeError::new(
                "range_length",
                format!("{} runs past the record", h.length),
            )));
        }
        let data = &rest[RANGE_HEADER_SIZE..RANGE_HEADER_SIZE + h.length as usize];
        let item = RangeRef {
            header: h,
            body_offset: self.at,
            data,
        };
        self.at += need as usize;
        self.left -= 1;
        Some(Ok(item))
    }
}

/// Offsets of the body inside a record of `length` bytes.
pub fn body_span(length: u64) -> std::ops::Range<usize> {
    RECORD_HEADER_SIZE..(length as usize - RECORD_TRAILER_SIZE)
}

#[cfg(test)]
#[path = "log_tests.rs"]
mod tests;
