//! Reading a log: status slots, records forward and backward, and the scan that finds the end
//! of the log and tells a torn tail from corruption in the middle.
//!
//! The library's recovery and truncation and the `rvmutl` inspector all read through
//! [`LogReader`], so what the tool shows is what recovery will do.

use std::path::Path;
use std::sync::Arc;

use crate::device::{Access, Device, DeviceRef, FileDevice};
use crate::error::{Error, Result};
use crate::format::log::{
    body_span, crc_seed, live_bytes, ranges, verify_record, CrcSeed, RangeIter, RecordHeader,
    Status, KIND_PAD, RECORD_ALIGN, RECORD_HEADER_SIZE, RECORD_MIN_SIZE, RECORD_TRAILER_SIZE,
    SECTOR_SIZE, STATUS_SLOT_SIZE,
};
use crate::format::DecodeError;

/// Bytes read at a time when walking the log sequentially: the window starts small (opening
/// an empty log reads one small block) and doubles up to the maximum as the walk goes on.
const READ_WINDOW_BYTES_MIN: usize = 16 << 10;
const READ_WINDOW_BYTES_MAX: usize = 1 << 20;

/// A record read from the log. `body` is empty for pads.
#[derive(Debug, Clone)]
pub struct Record {
    /// File offset of the record's first byte.
    pub offset: u64,
    /// The decoded record header.
    pub header: RecordHeader,
    /// The body (ranges and their data) of a transaction record; empty for a pad.
    pub body: Vec<u8>,
}

impl Record {
    /// The ranges of a transaction record (none for a pad).
    pub fn ranges(&self) -> RangeIter<'_> {
        ranges(
            &self.body,
            if self.header.kind == KIND_PAD {
                0
            } else {
                self.header.range_count
            },
        )
    }
    /// Whether the record is a pad ([`KIND_PAD`]).
    pub fn is_pad(&self) -> bool {
        self.header.kind == KIND_PAD
    }
}

/// Why a record could not be read at an offset.
#[derive(Debug)]
pub enum ReadError {
    /// Reading the log device failed.
    Io(Error),
    /// The bytes at the offset are not a valid record (the error names the field).
    Invalid(DecodeError),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::Invalid(e) => write!(f, "{e}"),
        }
    }
}

/// Where and how the chain of records from the head ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanEnd {
    /// The next LSN is simply absent: the normal end of the log.
    End,
    /// A record with the expected LSN is present but damaged, and nothing written later
    /// follows it: a write torn by a crash. Nothing acknowledged is lost.
    TornTail {
        /// File offset of the damaged record.
        offset: u64,
        /// What is wrong with it.
        detail: String,
    },
    /// A damaged record followed by valid records from a later flush: committed data lies
    /// beyond the damage.
    Corrupt {
        /// File offset of the damaged record.
        offset: u64,
        /// The LSN expected there.
        lsn: u64,
        /// What is wrong with it.
        detail: String,
        /// The highest LSN of the valid records found after the damage.
        later_lsn: u64,
        /// File offset of the record with `later_lsn`.
        later_offset: u64,
    },
}

/// A summary of one valid record met by [`LogReader::scan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordSummary {
    /// File offset of the record's first byte.
    pub offset: u64,
    /// The record's LSN.
    pub lsn: u64,
    /// The record's total length in bytes (header, body and trailer).
    pub length: u64,
    /// The record's kind (`KIND_TRANSACTION` or `KIND_PAD`).
    pub kind: u16,
    /// Number of ranges in the record (0 for a pad).
    pub range_count: u32,
}

/// The result of walking the log from its head.
#[derive(Debug, Clone)]
pub struct Scan {
    /// The valid records from the head, in LSN order.
    pub records: Vec<RecordSummary>,
    /// Where the next record would go.
    pub tail_offset: u64,
    /// The LSN the next record would get.
    pub next_lsn: u64,
    /// How the chain ended.
    pub end: ScanEnd,
    /// Indices (in the log's segment table) of the segments the valid records write to.
    pub segments_used: std::collections::BTreeSet<u32>,
}

impl Scan {
    /// Whether no valid record follows the head.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// Read access to a log.
pub struct LogReader {
    device: DeviceRef,
    slots: [std::result::Result<Status, DecodeError>; 2],
    current: usize,
    status: Status,
    seed: u32,
    /// `seed` as a ready hasher (no CPU-feature check per record).
    crc: CrcSeed,
}

impl std::fmt::Debug for LogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader")
            .field("device", &self.device.name())
            .field("current", &self.current)
            .finish()
    }
}

/// Read both status slots of a log device.
pub fn read_slots(device: &dyn Device) -> Result<[std::result::Result<Status, DecodeError>; 2]> {
    let name = device.name().to_string();
    let len = device.len().map_err(|e| Error::io(&name, "size", e))?;
    let read_slot = |i: u64| -> Result<std::result::Result<Status, DecodeError>> {
        let at = i * STATUS_SLOT_SIZE;
        if len < at + STATUS_SLOT_SIZE {
            return Ok(Err(DecodeError::new(
                "length",
                format!("file is {len} bytes, too short for status slot {i}"),
            )));
        }
        let mut buf = vec![0u8; STATUS_SLOT_SIZE as usize];
        device
            .read_at(&mut buf, at)
            .map_err(|e| Error::io(&name, "read status", e))?;
        Ok(Status::decode(&buf))
    };
    Ok([read_slot(0)?, read_slot(1)?])
}

/// Pick the current slot: the valid one with the larger sequence.
pub fn current_slot(slots: &[std::result::Result<Status, DecodeError>; 2]) -> Option<usize> {
    match (&slots[0], &slots[1]) {
        (Ok(a), Ok(b)) => Some(if b.sequence > a.sequence { 1 } else { 0 }),
        (Ok(_), Err(_)) => Some(0),
        (Err(_), Ok(_)) => Some(1),
        (Err(_), Err(_)) => None,
    }
}

impl LogReader {
    /// Open a log read-only, without locking it.
    pub fn open(path: &Path) -> Result<LogReader> {
        let name = path.display().to_string();
        let dev =
            FileDevice::open(path, Access::ReadOnly).map_err(|e| Error::io(&name, "open", e))?;
        Self::from_device(Arc::new(dev))
    }

    /// Read the status slots of a device and choose the current one.
    pub fn from_device(device: DeviceRef) -> Result<LogReader> {
        let name = device.name().to_string();
        let slots = read_slots(&*device)?;
        let Some(current) = current_slot(&slots) else {
            let reason = match (&slots[0], &slots[1]) {
                (Err(a), Err(b)) if a.field == "version" || b.field == "version" => {
                    let e = if a.field == "version" { a } else { b };
                    return Err(Error::LogVersion {
                        path: name,
                        reason: e.detail.clone(),
                    });
                }
                (Err(a), Err(b)) => format!("status slot 0: {a}; status slot 1: {b}"),
                _ => unreachable!("current_slot returns Some when a slot is valid"),
            };
            return Err(Error::BadLog { path: name, reason });
        };
        let status = match &slots[current] {
            Ok(s) => s.clone(),
            Err(_) => unreachable!("current slot is valid"),
        };
        let len = device.len().map_err(|e| Error::io(&name, "size", e))?;
        if len < status.log_size_bytes {
            return Err(Error::BadLog {
                path: name,
                reason: format!(
                    "file is {len} bytes but the status says the log is {}",
                    status.log_size_bytes
                ),
            });
        }
        let seed = crc_seed(&status.log_uuid);
        Ok(LogReader {
            device,
            slots,
            current,
            status,
            seed,
            crc: CrcSeed::new(seed),
        })
    }

    /// The log device.
    pub fn device(&self) -> &DeviceRef {
        &self.device
    }
    /// The log's name (its path), as used in error messages.
    pub fn name(&self) -> &str {
        self.device.name()
    }
    /// The current status (from the current slot).
    pub fn status(&self) -> &Status {
        &self.status
    }
    /// Replace the in-memory status (rvmutl `set`); nothing is written.
    pub fn set_status(&mut self, status: Status) {
        self.seed = crc_seed(&status.log_uuid);
        self.crc = CrcSeed::new(self.seed);
        self.status = status;
    }
    /// Index (0 or 1) of the status slot the current status was read from.
    pub fn current_slot(&self) -> usize {
        self.current
    }
    /// The decoded status slot `index` (taken modulo 2), or why it could not be decoded.
    pub fn slot(&self, index: usize) -> &std::result::Result<Status, DecodeError> {
        &self.slots[index & 1]
    }
    /// The CRC seed of this log's records ([`crc_seed`] of the log UUID).
    pub fn seed(&self) -> u32 {
        self.seed
    }
    /// File offset of the start of the record area.
    pub fn area_start(&self) -> u64 {
        self.status.area_offset
    }
    /// File offset of the end (exclusive) of the record area.
    pub fn area_end(&self) -> u64 {
        self.status.area_end()
    }

    /// Map `area_end` to `area_start`: a record ending exactly at the end wraps.
    pub fn normalize(&self, offset: u64) -> u64 {
        if offset >= self.area_end() {
            self.area_start()
        } else {
            offset
        }
    }

    fn read(&self, buf: &mut [u8], offset: u64) -> std::result::Result<(), ReadError> {
        self.device
            .read_at(buf, offset)
            .map_err(|e| ReadError::Io(Error::io(self.name(), "read", e)))
    }

    /// Decode the record header at `offset` (checks the header's own CRC only).
    pub fn read_header(&self, offset: u64) -> std::result::Result<RecordHeader, ReadError> {
        let offset = self.normalize(offset);
        self.check_offset(offset)?;
        let mut buf = [0u8; RECORD_HEADER_SIZE];
        self.read(&mut buf, offset)?;
        RecordHeader::decode_checked(&buf, &self.crc, self.area_end() - offset)
            .map(|(h, _)| h)
            .map_err(ReadError::Invalid)
    }

    fn check_offset(&self, offset: u64) -> std::result::Result<(), ReadError> {
        if offset < self.area_start()
            || !offset.is_multiple_of(RECORD_ALIGN)
            || offset + RECORD_MIN_SIZE > self.area_end()
        {
            return Err(ReadError::Invalid(DecodeError::new(
                "offset",
                format!(
                    "{offset} is not a record position in the area {}..{}",
                    self.area_start(),
                    self.area_end()
                ),
            )));
        }
        Ok(())
    }

    /// Read and fully verify the record at `offset`.
    pub fn read_record(&self, offset: u64) -> std::result::Result<Record, ReadError> {
        let offset = self.normalize(offset);
        let header = self.read_header(offset)?;
        self.read_record_body(offset, header)
    }

    fn read_record_body(
        &self,
        offset: u64,
        header: RecordHeader,
    ) -> std::result::Result<Record, ReadError> {
        let mut head = [0u8; RECORD_HEADER_SIZE];
        self.read(&mut head, offset)?;
        let mut trailer = [0u8; RECORD_TRAILER_SIZE];
        self.read(
            &mut trailer,
            offset + header.length - RECORD_TRAILER_SIZE as u64,
        )?;
        let body = if header.kind == KIND_PAD {
            Vec::new()
        } else {
            let span = body_span(header.length);
            let mut body = vec![0u8; span.len()];
            self.read(&mut body, offset + span.start as u64)?;
            body
        };
        verify_record(&header, &head, &body, &trailer, self.seed).map_err(ReadError::Invalid)?;
        Ok(Record {
            offset,
            header,
            body,
        })
    }

    /// Where the record after `record` starts.
    pub fn next_offset(&self, record_offset: u64, record_length: u64) -> u64 {
        self.normalize(record_offset + record_length)
    }

    /// The start of the record that ends just before `offset` (at the area start: the record
    /// that ends at the area end). Uses the trailer, so it works on any intact record.
    pub fn prev_offset(&self, offset: u64) -> std::result::Result<u64, ReadError> {
        let end = if offset <= self.area_start() {
            self.area_end()
        } else {
            offset
        };
        if end < self.area_start() + RECORD_MIN_SIZE {
            return Err(ReadError::Invalid(DecodeError::new(
                "offset",
                "no record before this position",
            )));
        }
        let mut trailer = [0u8; RECORD_TRAILER_SIZE];
        self.read(&mut trailer, end - RECORD_TRAILER_SIZE as u64)?;
        let t = crate::format::log::RecordTrailer::decode(&trailer).map_err(ReadError::Invalid)?;
        if t.length < RECORD_MIN_SIZE
            || t.length > end - self.area_start()
            || t.length % RECORD_ALIGN != 0
        {
            return Err(ReadError::Invalid(DecodeError::new(
                "trailer",
                format!("length {} is impossible here", t.length),
            )));
        }
        Ok(end - t.length)
    }

    /// Why the current status's head is not a place where a record can start, or `None` when
    /// it is. The status decoder already checks that the head lies in the area on a record
    /// boundary; this catches a head too close to the end of the area for any record (a
    /// damaged or hand-edited status), which would otherwise fail as a short read.
    pub fn head_problem(&self) -> Option<String> {
        let s = &self.status;
        let head = self.normalize(s.head_offset);
        let room = self.area_end().saturating_sub(head);
        if head < self.area_start() || room < RECORD_MIN_SIZE {
            return Some(format!(
                "the current status (slot {}, sequence {}) is damaged: {}",
                self.current,
                s.sequence,
                no_room(head, room, self.area_end())
            ));
        }
        None
    }

    /// Whether a record with this header may follow in the chain at `expected_lsn`.
    fn chain_accepts(
        &self,
        h: &RecordHeader,
        expected_lsn: u64,
    ) -> std::result::Result<(), DecodeError> {
        if h.lsn != expected_lsn {
            return Err(DecodeError::new(
                "lsn",
                format!("found LSN {}, expected {expected_lsn}", h.lsn),
            ));
        }
        let s = &self.status;
        let generation_ok = if h.lsn >= s.generation_start_lsn {
            h.generation == s.generation
        } else {
            h.generation < s.generation
        };
        if !generation_ok {
            return Err(DecodeError::new(
                "generation",
                format!(
                    "record of generation {} is left over from an earlier run (log generation {})",
                    h.generation, s.generation
                ),
            ));
        }
        Ok(())
    }

    /// Walk the records from the head with LSN continuity, verifying every CRC, and classify
    /// how the chain ended. Reads the whole live log once (and, after an unclean shutdown,
    /// the sector starts of the space the chain leaves, to look for later flushes).
    pub fn scan(&self) -> Result<Scan> {
        if let Some(reason) = self.head_problem() {
            return Err(Error::BadLog {
                path: self.name().to_string(),
                reason,
            });
        }
        let mut window = Window::new(self);
        let mut records = Vec::new();
        let mut segments_used = std::collections::BTreeSet::new();
        let mut offset = self.normalize(self.status.head_offset);
        let mut lsn = self.status.head_lsn;
        let mut walked: u64 = 0;
        let stop: (u64, std::result::Result<(), (bool, String)>) = loop {
            if walked >= self.status.area_size {
                break (
                    offset,
                    Err((false, "the chain of records is longer than the area".into())),
                );
            }
            let room = self.area_end() - offset;
            if room < RECORD_MIN_SIZE {
                break (offset, Err((false, no_room(offset, room, self.area_end()))));
            }
            let hbytes = window.get(offset, RECORD_HEADER_SIZE as u64)?;
            let (header, crc) = match RecordHeader::decode_checked(hbytes, &self.crc, room) {
                Ok(h) => h,
                Err(e) => break (offset, Err((false, e.to_string()))),
            };
            if let Err(e) = self.chain_accepts(&header, lsn) {
                break (offset, Err((false, e.to_string())));
            }
            // Verify in place in the read window (no copy of the record).
            let problem: Option<(bool, String)> = if header.kind == KIND_PAD {
                let mut head = [0u8; RECORD_HEADER_SIZE];
                head.copy_from_slice(window.get(offset, RECORD_HEADER_SIZE as u64)?);
                let trailer = window.get(
                    offset + header.length - RECORD_TRAILER_SIZE as u64,
                    RECORD_TRAILER_SIZE as u64,
                )?;
                crc.verify(&header, &head, &[], trailer)
                    .err()
                    .map(|e| (true, e.to_string()))
            } else {
                let rec = window.get(offset, header.length)?;
                let span = body_span(header.length);
                match crc.verify(&header, rec, &rec[span.clone()], &rec[span.end..]) {
                    Err(e) => Some((true, e.to_string())),
                    Ok(()) => {
                        let mut bad = None;
                        for r in ranges(&rec[span], header.range_count) {
                            match r {
                                Ok(r) => {
                                    segments_used.insert(r.header.segment);
                                }
                                Err(e) => {
                                    bad = Some((true, format!("malformed range: {e}")));
                                    break;
                                }
                            }
                        }
                        bad
                    }
                }
            };
            if let Some(p) = problem {
                break (offset, Err(p));
            }
            records.push(RecordSummary {
                offset,
                lsn,
                length: header.length,
                kind: header.kind,
                range_count: header.range_count,
            });
            walked += header.length;
            offset = self.next_offset(offset, header.length);
            lsn += 1;
        };
        let (end_offset, why) = stop;
        let end = match why {
            Ok(()) => ScanEnd::End,
            Err((torn, detail)) => {
                // A later flush can only lie in the space the chain does not cover: from where
                // it stopped round to the head. The chain's bytes are verified records with
                // smaller LSNs, written over nothing later. An empty chain, or one that ran the
                // whole area (damage), leaves the whole area to search.
                let free = if lsn == self.status.head_lsn || walked >= self.status.area_size {
                    self.status.area_size
                } else {
                    self.free_after(end_offset)
                };
                self.classify_end(&mut window, end_offset, lsn, torn, detail, free)?
            }
        };
        Ok(Scan {
            records,
            tail_offset: end_offset,
            next_lsn: lsn,
            end,
            segments_used,
        })
    }

    /// The chain stopped at `offset` where LSN `lsn` was expected. Decide whether that is the
    /// end of the log, a torn write, or corruption with committed records beyond it.
    ///
    /// `free` bounds the search for a later flush: the bytes from `offset` (rounded up to a
    /// sector) onwards, wrapping at the area's end, that the chain does not cover.
    fn classify_end(
        &self,
        window: &mut Window<'_>,
        offset: u64,
        lsn: u64,
        torn: bool,
        detail: String,
        free: u64,
    ) -> Result<ScanEnd> {
        let s = &self.status;
        if s.is_clean() {
            // A clean close recorded the exact tail; stopping anywhere else is damage.
            let tail = self.normalize(s.tail_offset);
            if tail == offset && s.tail_lsn == lsn {
                return Ok(ScanEnd::End);
            }
            return Ok(ScanEnd::Corrupt {
                offset,
                lsn,
                detail,
                later_lsn: s.tail_lsn.saturating_sub(1),
                later_offset: tail,
            });
        }
        if let Some((later_lsn, later_offset)) = self.find_later_flush(window, offset, lsn, free)? {
            return Ok(ScanEnd::Corrupt {
                offset,
                lsn,
                detail,
                later_lsn,
                later_offset,
            });
        }
        Ok(if torn {
            ScanEnd::TornTail { offset, detail }
        } else {
            ScanEnd::End
        })
    }

    /// The bytes from `offset` (rounded up to a sector) round to the head, wrapping at the
    /// area's end: the space a non-empty chain that starts at the head and stops at `offset`
    /// leaves (none when it stops at the head itself: the chain fills the area).
    fn free_after(&self, offset: u64) -> u64 {
        let start = crate::format::align_up(offset, SECTOR_SIZE);
        let head = self.normalize(self.status.head_offset);
        let chain = live_bytes(false, head, start, self.area_start(), self.area_end());
        self.status.area_size.saturating_sub(chain)
    }

    /// Look for the first record of a flush that started after the one holding LSN `lsn`:
    /// such a flush was only written after `lsn`'s flush was synced, so `lsn` was durable.
    /// Every flush starts on a sector boundary, so only sector starts need checking, in the
    /// `free` bytes from `from` (rounded up to a sector) onwards.
    fn find_later_flush(
        &self,
        window: &mut Window<'_>,
        from: u64,
        lsn: u64,
        free: u64,
    ) -> Result<Option<(u64, u64)>> {
        let s = &self.status;
        let start = crate::format::align_up(from, SECTOR_SIZE);
        let span = free.min(s.area_size);
        let mut best: Option<(u64, u64)> = None;
        let mut walked = 0u64;
        let mut at = start;
        while walked < span {
            if at >= self.area_end() {
                at = self.area_start();
            }
            if at + RECORD_MIN_SIZE <= self.area_end() {
                let room = self.area_end() - at;
                let h = window.get(at, RECORD_HEADER_SIZE as u64)?;
                if let Ok((header, _)) = RecordHeader::decode_checked(h, &self.crc, room) {
                    if header.generation == s.generation
                        && header.lsn > lsn
                        && header.batch_first_lsn > lsn
                        && header.lsn == header.batch_first_lsn
                        && best.is_none_or(|(l, _)| header.lsn < l)
                        && self.read_record_body(at, header).is_ok()
                    {
                        best = Some((header.lsn, at));
                    }
                }
            }
            at += SECTOR_SIZE;
            walked += SECTOR_SIZE;
        }
        Ok(best)
    }

    /// Build a reader from a status already in hand (the library's own, while it runs).
    pub(crate) fn with_status(device: DeviceRef, status: Status) -> LogReader {
        let seed = crc_seed(&status.log_uuid);
        let slots = [
            Ok(status.clone()),
            Err(DecodeError::new("slot", "not read")),
        ];
        LogReader {
            device,
            slots,
            current: 0,
            status,
            seed,
            crc: CrcSeed::new(seed),
        }
    }

    /// Visit the transaction records from `from_offset` (LSN `from_lsn`) up to, not
    /// including, `until_lsn`, verifying each. Any damage is an error naming its offset.
    pub fn walk(
        &self,
        from_offset: u64,
        from_lsn: u64,
        until_lsn: u64,
        mut visit: impl FnMut(&Record) -> Result<()>,
    ) -> Result<()> {
        self.walk_bodies(from_offset, from_lsn, until_lsn, |offset, header, body| {
            visit(&Record {
                offset,
                header: *header,
                body: body.to_vec(),
            })
        })
    }

    /// Like [`LogReader::walk`], lending each record's body instead of copying it.
    pub fn walk_bodies(
        &self,
        from_offset: u64,
        from_lsn: u64,
        until_lsn: u64,
        visit: impl FnMut(u64, &RecordHeader, &[u8]) -> Result<()>,
    ) -> Result<()> {
        self.walk_records(from_offset, from_lsn, until_lsn, true, visit)
    }

    /// Walk records a [`LogReader::scan`] of this same device has just verified, without
    /// checking their CRCs again (headers and LSNs are still checked). Recovery holds the
    /// log's lock between the two passes, so the bytes cannot have changed.
    pub(crate) fn walk_scanned(
        &self,
        from_offset: u64,
        from_lsn: u64,
        until_lsn: u64,
        visit: impl FnMut(u64, &RecordHeader, &[u8]) -> Result<()>,
    ) -> Result<()> {
        self.walk_records(from_offset, from_lsn, until_lsn, false, visit)
    }

    fn walk_records(
        &self,
        from_offset: u64,
        from_lsn: u64,
        until_lsn: u64,
        verify: bool,
        mut visit: impl FnMut(u64, &RecordHeader, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let mut window = Window::new(self);
        let mut offset = self.normalize(from_offset);
        let mut lsn = from_lsn;
        while lsn < until_lsn {
            let room = self.area_end().saturating_sub(offset);
            if offset < self.area_start() || room < RECORD_MIN_SIZE {
                return Err(damaged(
                    self,
                    offset,
                    DecodeError::new("offset", no_room(offset, room, self.area_end())),
                ));
            }
            let h = window.get(offset, RECORD_HEADER_SIZE as u64)?;
            let (header, crc) = RecordHeader::decode_checked(h, &self.crc, room)
                .map_err(|e| damaged(self, offset, e))?;
            if header.lsn != lsn {
                return Err(damaged(
                    self,
                    offset,
                    DecodeError::new("lsn", format!("found {}, expected {lsn}", header.lsn)),
                ));
            }
            if header.kind != KIND_PAD {
                let bytes = window.get(offset, header.length)?;
                let span = body_span(header.length);
                if verify {
                    crc.verify(&header, bytes, &bytes[span.clone()], &bytes[span.end..])
                        .map_err(|e| damaged(self, offset, e))?;
                }
                visit(offset, &header, &bytes[span])?;
            }
            offset = self.next_offset(offset, header.length);
            lsn += 1;
        }
        Ok(())
    }
}

/// The message for a record position with only `room` bytes left before the area end.
fn no_room(offset: u64, room: u64, area_end: u64) -> String {
    format!(
        "offset {offset} is {room} bytes before the end of the record area at {area_end}, \
         too close for a record (at least {RECORD_MIN_SIZE} bytes)"
    )
}

fn damaged(reader: &LogReader, offset: u64, e: DecodeError) -> Error {
    Error::DamagedRecord {
        path: reader.name().to_string(),
        offset,
        detail: e.to_string(),
    }
}

/// A read-ahead buffer over the record area.
struct Window<'a> {
    reader: &'a LogReader,
    start: u64,
    buf: Vec<u8>,
    next_read: usize,
}

impl<'a> Window<'a> {
    fn new(reader: &'a LogReader) -> Self {
        Window {
            reader,
            start: 0,
            buf: Vec::new(),
            next_read: READ_WINDOW_BYTES_MIN,
        }
    }

    /// `len` bytes at `offset` (which must lie inside the area with the bytes).
    fn get(&mut self, offset: u64, len: u64) -> Result<&[u8]> {
        let end = offset + len;
        if end > self.reader.area_end() {
            // Callers check the room first; a read past the area would fail as a bare short
            // read, so name the place instead.
            return Err(Error::DamagedRecord {
                path: self.reader.name().to_string(),
                offset,
                detail: format!(
                    "{len} bytes at offset {offset} would run past the end of the record area at {}",
                    self.reader.area_end()
                ),
            });
        }
        if offset < self.start || end > self.start + self.buf.len() as u64 {
            let want_end = (offset + (self.next_read as u64).max(len)).min(self.reader.area_end());
            self.next_read = (self.next_read * 2).min(READ_WINDOW_BYTES_MAX);
            let want_end = want_end.max(end);
            self.buf.resize((want_end - offset) as usize, 0);
            self.reader
                .device
                .read_at(&mut self.buf, offset)
                .map_err(|e| Error::io(self.reader.name(), "read", e))?;
            self.start = offset;
        }
        let at = (offset - self.start) as usize;
        Ok(&self.buf[at..at + len as usize])
    }
}

/// Write `status` into its slot (`sequence % 2`) and sync. For tools that edit a log's
/// status (rvmutl `write_status`); the library writes its own status internally.
pub fn write_status_slot(device: &dyn Device, status: &Status) -> Result<()> {
    let bytes = status.encode();
    let at = status.slot() * STATUS_SLOT_SIZE;
    device
        .write_at(&bytes, at)
        .map_err(|e| Error::io(device.name(), "write status", e))?;
    device
        .sync()
        .map_err(|e| Error::io(device.name(), "fsync", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::MemDevice;

    /// A fresh log whose current status has its head `room` bytes before the area end.
    fn log_with_head_room(room: u64) -> LogReader {
        let device = Arc::new(MemDevice::new("log", Vec::new()));
        crate::Rvm::init_log_on(&*device, 1 << 16).unwrap();
        let reader = LogReader::from_device(device.clone()).unwrap();
        let mut status = reader.status().clone();
        status.head_offset = status.area_end() - room;
        status.sequence += 1;
        write_status_slot(&*device, &status).unwrap();
        LogReader::from_device(device).unwrap()
    }

    #[test]
    fn head_without_room_for_a_record_is_named_not_a_short_read() {
        let reader = log_with_head_room(40);
        let end = reader.area_end();
        let problem = reader.head_problem().expect("the head has no room");
        assert!(
            problem.contains(&format!("offset {}", end - 40)),
            "{problem}"
        );
        assert!(problem.contains("40 bytes before the end"), "{problem}");
        let err = reader.scan().unwrap_err().to_string();
        assert!(err.contains("40 bytes before the end"), "{err}");
        assert!(!err.contains("fill whole buffer"), "{err}");
        let err = reader
            .walk(end - 40, 1, 2, |_| Ok(()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("40 bytes before the end"), "{err}");
        // A head with room for a record is fine.
        assert!(log_with_head_room(RECORD_MIN_SIZE).head_problem().is_none());
    }
}
