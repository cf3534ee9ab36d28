//! Log records: a header, a body of ranges (or padding), and a trailer carrying the record's
//! LSN and length; a CRC32 over the whole record, seeded with the log's UUID. Encoding,
//! sealing and verifying, without I/O. Where records sit in the log: [`super::log`].

use super::{align_up, get_u16, get_u32, get_u64, put_u16, put_u32, put_u64, DecodeError, Uuid};

/// Every record starts and ends on this alignment.
pub const RECORD_ALIGN: u64 = 8;
/// Ranges in one transaction record.
pub const RANGES_PER_RECORD_MAX: u32 = 1 << 24;

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
    /// Generation of the process run that wrote the record (see [`Status::generation`](super::log::Status::generation)).
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
        buf[..RANGE_HEADER_SIZE].copy_from_slice(&self.to_bytes());
    }
    /// The encoded header (the segment index's upper 4 bytes are zero).
    #[inline]
    pub fn to_bytes(&self) -> [u8; RANGE_HEADER_SIZE] {
        let mut b = [0u8; RANGE_HEADER_SIZE];
        b[RG_SEGMENT..RG_SEGMENT + 4].copy_from_slice(&self.segment.to_le_bytes());
        b[RG_OFFSET..RG_OFFSET + 8].copy_from_slice(&self.offset.to_le_bytes());
        b[RG_LENGTH..RG_LENGTH + 8].copy_from_slice(&self.length.to_le_bytes());
        b[RG_ADDRESS..RG_ADDRESS + 8].copy_from_slice(&self.address.to_le_bytes());
        b
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
        fill: impl FnMut(usize, &mut [u8]),
    ) -> usize
    where
        I: ExactSizeIterator<Item = RangeHeader> + Clone,
    {
        let size = transaction_record_size(ranges.clone().map(|r| r.length));
        Self::record_sized(buf, flags, size, ranges, fill)
    }

    /// [`TransactionEncoder::record_with`] for a caller that has computed the record's size
    /// already (`size`: [`transaction_record_size`] of the ranges' lengths, for its own
    /// checks), so `ranges` is walked once. A range that does not fit `size` ends the layout
    /// early, as in `record_with`; a `size` below [`RECORD_MIN_SIZE`] is taken as that.
    pub fn record_sized(
        buf: &mut Vec<u8>,
        flags: u16,
        size: u64,
        ranges: impl ExactSizeIterator<Item = RangeHeader>,
        fill: impl FnMut(usize, &mut [u8]),
    ) -> usize {
        let size = size.max(RECORD_MIN_SIZE) as usize;
        let start = buf.len();
        // (`extend` with zeros inlines; `resize` is a call.)
        buf.extend(std::iter::repeat_n(0, size));
        let rec = &mut buf[start..];
        put_u32(rec, RH_MAGIC, RECORD_MAGIC);
        put_u16(rec, RH_KIND, KIND_TRANSACTION);
        put_u16(rec, RH_FLAGS, flags);
        put_u64(rec, RH_LENGTH, size as u64);
        put_u32(rec, RH_RANGE_COUNT, ranges.len() as u32);
        lay_out_ranges(
            &mut rec[..size - RECORD_TRAILER_SIZE],
            RECORD_HEADER_SIZE,
            ranges,
            fill,
        );
        start
    }

    /// Whether [`TransactionEncoder::extend`] takes `ranges` more ranges into the record at
    /// `start`: it is the last one in `buf`, whole, a transaction record not yet sealed (its
    /// trailer still zero), and its range count stays within [`RANGES_PER_RECORD_MAX`].
    #[inline]
    pub(crate) fn extendable(buf: &[u8], start: usize, ranges: usize) -> bool {
        let Some(rec) = buf.get(start..) else {
            return false;
        };
        rec.len() >= RECORD_MIN_SIZE as usize
            && get_u32(rec, RH_MAGIC) == RECORD_MAGIC
            && get_u16(rec, RH_KIND) == KIND_TRANSACTION
            && get_u64(rec, RH_LENGTH) == rec.len() as u64
            && get_u32(rec, rec.len() - 4) == 0
            && u32::try_from(ranges)
                .ok()
                .and_then(|n| get_u32(rec, RH_RANGE_COUNT).checked_add(n))
                .is_some_and(|count| count <= RANGES_PER_RECORD_MAX)
    }

    /// Append ranges to the unsealed record at `start`, the last one in `buf`, which the
    /// caller has just found [`TransactionEncoder::extendable`] (the commit path must know
    /// before it hands the ranges over), as [`TransactionEncoder::record_sized`] would lay them
    /// out in a record of their own (`size`: [`transaction_record_size`] of their lengths):
    /// the record grows by `size` less [`RECORD_MIN_SIZE`], its range count by their number,
    /// and its flags take `flags` too. One record then carries several transactions (see
    /// `Options::coalesce_transactions`). On a record that is not extendable the layout may
    /// misplace fields, which the record's checks then refuse; it never writes outside `buf`.
    #[inline]
    pub(crate) fn extend(
        buf: &mut Vec<u8>,
        start: usize,
        flags: u16,
        size: u64,
        ranges: impl ExactSizeIterator<Item = RangeHeader>,
        fill: impl FnMut(usize, &mut [u8]),
    ) {
        let n = ranges.len();
        let Some(old) = buf
            .len()
            .checked_sub(start)
            .filter(|&old| old >= RECORD_MIN_SIZE as usize)
        else {
            return;
        };
        let added = (size.max(RECORD_MIN_SIZE) - RECORD_MIN_SIZE) as usize;
        buf.extend(std::iter::repeat_n(0, added));
        let rec = &mut buf[start..];
        // `extendable` checked that the count stays within RANGES_PER_RECORD_MAX.
        let count = get_u32(rec, RH_RANGE_COUNT).wrapping_add(n as u32);
        let flags = get_u16(rec, RH_FLAGS) | flags;
        put_u16(rec, RH_FLAGS, flags);
        put_u64(rec, RH_LENGTH, (old + added) as u64);
        put_u32(rec, RH_RANGE_COUNT, count);
        // The old trailer's room (zero while unsealed) is where the new ranges begin; the
        // new trailer's room is the zeros at the end.
        let end = old + added - RECORD_TRAILER_SIZE;
        lay_out_ranges(&mut rec[..end], old - RECORD_TRAILER_SIZE, ranges, fill);
    }

    /// Finish the record that starts at `start`: reserve the trailer and set the length.
    pub fn finish(buf: &mut Vec<u8>, start: usize) -> u64 {
        buf.resize(buf.len() + RECORD_TRAILER_SIZE, 0);
        let len = (buf.len() - start) as u64;
        put_u64(&mut buf[start..], RH_LENGTH, len);
        len
    }
}

/// The flags, range count and body of an unsealed transaction record (header fields set, the
/// trailer's room at the end; see [`TransactionEncoder`]), or `None` if `rec` is not one: too
/// short, another kind, or a length field that disagrees with `rec`.
pub(crate) fn unsealed_parts(rec: &[u8]) -> Option<(u16, u32, &[u8])> {
    (rec.len() >= RECORD_MIN_SIZE as usize
        && get_u32(rec, RH_MAGIC) == RECORD_MAGIC
        && get_u16(rec, RH_KIND) == KIND_TRANSACTION
        && get_u64(rec, RH_LENGTH) == rec.len() as u64)
        .then(|| {
            (
                get_u16(rec, RH_FLAGS),
                get_u32(rec, RH_RANGE_COUNT),
                &rec[RECORD_HEADER_SIZE..rec.len() - RECORD_TRAILER_SIZE],
            )
        })
}

/// Lay ranges out in `body` from `at` on: each range's header, then its data (written by
/// `fill` into the slice it is given, the `i`th range's `length` bytes), zero padded to 8. A
/// range that does not fit what is left of `body` ends the layout early.
#[inline]
fn lay_out_ranges(
    body: &mut [u8],
    mut at: usize,
    ranges: impl Iterator<Item = RangeHeader>,
    mut fill: impl FnMut(usize, &mut [u8]),
) {
    for (i, range) in ranges.enumerate() {
        // The room left bounds the length first, so the sum below cannot overflow.
        let room = body.len().saturating_sub(at);
        if range.length > room as u64 {
            break;
        }
        let length = range.length as usize;
        let need = RANGE_HEADER_SIZE + length.next_multiple_of(RECORD_ALIGN as usize);
        let Some(slot) = body.get_mut(at..at + need) else {
            break;
        };
        let (header, data) = slot.split_at_mut(RANGE_HEADER_SIZE);
        header.copy_from_slice(&range.to_bytes());
        fill(i, &mut data[..length]);
        at += need;
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

    // Always inlined: every walk over a record's ranges is a hot loop (truncation, recovery,
    // the merge), and a call per range returned the item through memory.
    #[inline(always)]
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
        let Some((header, data, next)) = range_at(self.body, self.at) else {
            self.failed = true;
            return Some(Err(range_error(&self.body[self.at..])));
        };
        let item = RangeRef {
            header,
            body_offset: self.at,
            data: &self.body[data..data + header.length as usize],
        };
        self.at = next;
        self.left -= 1;
        Some(Ok(item))
    }
}

/// The range at `at` of a transaction body: its header, where its data starts, and where the
/// next range starts (after the data, padded to 8); `None` if it does not fit the body. The
/// one step of every walk over a record's ranges, kept lean (truncation, recovery and the
/// merge of coalesced commits take it for every range).
#[inline(always)]
fn range_at(body: &[u8], at: usize) -> Option<(RangeHeader, usize, usize)> {
    let h = RangeHeader::decode(body.get(at..)?).ok()?;
    let data = at + RANGE_HEADER_SIZE;
    let padded = usize::try_from(h.length)
        .ok()?
        .checked_next_multiple_of(RECORD_ALIGN as usize)?;
    let next = data.checked_add(padded).filter(|&n| n <= body.len())?;
    Some((h, data, next))
}

/// Why the range at the start of `rest` does not fit (after [`range_at`] refused it).
#[cold]
#[inline(never)]
fn range_error(rest: &[u8]) -> DecodeError {
    match RangeHeader::decode(rest) {
        Err(e) => e,
        Ok(h) => DecodeError::new("range_length", format!("{} runs past the record", h.length)),
    }
}

/// Offsets of the body inside a record of `length` bytes.
pub fn body_span(length: u64) -> std::ops::Range<usize> {
    RECORD_HEADER_SIZE..(length as usize - RECORD_TRAILER_SIZE)
}
