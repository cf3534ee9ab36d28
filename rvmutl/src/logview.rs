//! An open log as the inspector sees it: the reader, the scan, navigation between records,
//! the records before the head that are still intact, and salvage of the records that follow
//! damage in the middle of the log.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rvm::device::{Access, FileDevice};
use rvm::format::log::{
    RecordHeader, Status, KIND_PAD, RECORD_ALIGN, RECORD_HEADER_SIZE, RECORD_MAGIC, RECORD_MIN_SIZE,
};
use rvm::log::{LogReader, ReadError, Record, RecordSummary, Scan, ScanEnd};

/// Record magic as it appears on disk: a cheap filter before a header is decoded.
const RECORD_MAGIC_BYTES: [u8; 4] = RECORD_MAGIC.to_le_bytes();
/// Bytes read at a time when searching the area for records.
const SEARCH_WINDOW_BYTES: u64 = 1 << 20;
/// Damaged stretches salvage looks past before giving up.
const SALVAGE_PIECES_MAX: usize = 64;

/// A log opened read-only for inspection.
pub struct OpenLog {
    pub path: PathBuf,
    pub reader: LogReader,
    /// The scan from the head; `None` when opened with `no_tail` until something needs it.
    pub scan: Option<Scan>,
    /// The in-memory status differs from the disk (after `set`).
    pub status_changed: bool,
    /// Why the records could not be walked from the head (a damaged current status), when
    /// the log was opened anyway so its status can be shown.
    pub scan_error: Option<String>,
}

/// Records found beyond a damaged spot.
#[derive(Debug)]
pub struct Piece {
    /// Where the chain broke and what was expected there.
    pub damage_offset: u64,
    pub expected_lsn: u64,
    pub detail: String,
    /// The valid chain found after the damage (may be empty when nothing follows).
    pub records: Vec<Record>,
}

/// Where a record sits relative to the live log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Live,
    /// Before the head: already applied to the segments by a truncation.
    Applied,
    /// After the end of the chain from the head (past damage).
    Beyond,
}

impl OpenLog {
    pub fn open(path: &Path, no_tail: bool) -> rvm::Result<OpenLog> {
        let reader = LogReader::open(path)?;
        let mut log = OpenLog {
            path: path.to_path_buf(),
            reader,
            scan: None,
            status_changed: false,
            scan_error: None,
        };
        if !no_tail {
            if let Err(e) = log.rescan() {
                // A status whose head no record can start at: keep the log open so its
                // status and bytes can be shown, and say why the records cannot be walked.
                if log.reader.head_problem().is_none() {
                    return Err(e);
                }
                log.scan_error = Some(e.to_string());
            }
        }
        Ok(log)
    }

    pub fn status(&self) -> &Status {
        self.reader.status()
    }

    pub fn rescan(&mut self) -> rvm::Result<&Scan> {
        let scan = self.reader.scan()?;
        Ok(self.scan.insert(scan))
    }

    /// The scan, computed now if the log was opened with `no_tail`.
    pub fn scan(&mut self) -> rvm::Result<&Scan> {
        if self.scan.is_none() {
            self.rescan()?;
        }
        match &self.scan {
            Some(s) => Ok(s),
            None => unreachable!("scan was just computed"),
        }
    }

    pub fn head(&self) -> (u64, u64) {
        let s = self.status();
        (self.reader.normalize(s.head_offset), s.head_lsn)
    }

    /// Where the next record goes and its LSN: from the scan, or the status without one.
    pub fn end(&self) -> (u64, u64) {
        match &self.scan {
            Some(s) => (s.tail_offset, s.next_lsn),
            None => (self.status().tail_offset, self.status().tail_lsn),
        }
    }

    /// Bytes between head and the end of the chain.
    pub fn used_bytes(&self) -> u64 {
        let (head, head_lsn) = self.head();
        let (tail, next_lsn) = self.end();
        if next_lsn <= head_lsn {
            return 0;
        }
        let (start, end) = (self.reader.area_start(), self.reader.area_end());
        if tail > head {
            tail - head
        } else {
            (end - head) + (tail - start)
        }
    }

    pub fn place(&self, lsn: u64) -> Place {
        let (_, head_lsn) = self.head();
        let (_, next_lsn) = self.end();
        if lsn < head_lsn {
            Place::Applied
        } else if lsn >= next_lsn {
            Place::Beyond
        } else {
            Place::Live
        }
    }

    pub fn read(&self, offset: u64) -> Result<Record, ReadError> {
        self.reader.read_record(offset)
    }

    /// Whether a record of this generation may carry this LSN (the library's chain rule).
    fn generation_ok(&self, h: &RecordHeader) -> bool {
        let s = self.status();
        if h.lsn >= s.generation_start_lsn {
            h.generation == s.generation
        } else {
            h.generation < s.generation
        }
    }

    /// The record following `record` in the chain.
    pub fn next_of(&self, record: &Record) -> Result<Record, String> {
        let at = self.reader.next_offset(record.offset, record.header.length);
        self.expect_at(at, record.header.lsn + 1)
    }

    /// When `record` is the last of the live log and the log ends normally after it: the LSN
    /// and offset the next record would get.
    pub fn end_after(&self, record: &Record) -> Option<(u64, u64)> {
        let scan = self.scan.as_ref()?;
        let last = scan.records.last()?;
        (scan.end == ScanEnd::End && last.offset == record.offset && last.lsn == record.header.lsn)
            .then_some((scan.next_lsn, scan.tail_offset))
    }

    /// The record preceding `record` (found through the trailer that ends before it).
    pub fn prev_of(&self, record: &Record) -> Result<Record, String> {
        if record.header.lsn <= 1 {
            return Err("no record before LSN 1".into());
        }
        let at = self
            .reader
            .prev_offset(record.offset)
            .map_err(|e| format!("no intact record ends before offset {}: {e}", record.offset))?;
        self.expect_at(at, record.header.lsn - 1)
    }

    fn expect_at(&self, at: u64, lsn: u64) -> Result<Record, String> {
        let rec = self.read(at).map_err(|e| {
            format!("record at offset {at} (LSN {lsn} expected) is not intact: {e}")
        })?;
        if rec.header.lsn != lsn {
            return Err(format!(
                "the record at offset {at} has LSN {}, not {lsn}: the chain ends here",
                rec.header.lsn
            ));
        }
        if !self.generation_ok(&rec.header) {
            return Err(format!(
                "the record at offset {at} (LSN {lsn}) is of generation {}, left over from an earlier run",
                rec.header.generation
            ));
        }
        Ok(rec)
    }

    /// The live record with this LSN, else an intact applied one before the head, else the
    /// records salvaged after damage.
    pub fn find_lsn(&mut self, lsn: u64) -> Result<Record, String> {
        let scan = self.scan().map_err(|e| e.to_string())?;
        if let Some(r) = scan.records.iter().find(|r| r.lsn == lsn) {
            let at = r.offset;
            return self.read(at).map_err(|e| e.to_string());
        }
        let (_, head_lsn) = self.head();
        let (_, next_lsn) = self.end();
        if lsn < head_lsn {
            let mut found = None;
            self.walk_back_from_head(|r| {
                if r.header.lsn == lsn {
                    found = Some(r.clone());
                    false
                } else {
                    true
                }
            });
            return found.ok_or_else(|| {
                format!("record {lsn} was applied and is no longer intact in the log")
            });
        }
        for piece in self.salvage() {
            if let Some(r) = piece.records.iter().find(|r| r.header.lsn == lsn) {
                return Ok(r.clone());
            }
        }
        if next_lsn <= head_lsn {
            return Err(format!("no record {lsn} in the log (the log is empty)"));
        }
        Err(format!(
            "no record {lsn} in the log (live records are LSN {head_lsn}..{})",
            next_lsn.saturating_sub(1)
        ))
    }

    /// Visit intact records before the head, newest first, while `visit` returns true.
    /// Stops at the first record that does not continue the chain backward, and never walks
    /// into the live part of the area.
    pub fn walk_back_from_head(&self, mut visit: impl FnMut(&Record) -> bool) {
        let (head, head_lsn) = self.head();
        let area = self.reader.area_end() - self.reader.area_start();
        let budget = area.saturating_sub(self.used_bytes());
        let mut walked = 0u64;
        let mut at = head;
        let mut lsn = head_lsn;
        while lsn > 1 {
            let Ok(prev) = self.reader.prev_offset(at) else {
                return;
            };
            let Ok(rec) = self.read(prev) else {
                return;
            };
            if rec.header.lsn != lsn - 1 || rec.header.generation > self.status().generation {
                return;
            }
            walked += rec.header.length;
            if walked > budget {
                return;
            }
            if !visit(&rec) {
                return;
            }
            at = rec.offset;
            lsn = rec.header.lsn;
        }
    }

    /// The earliest intact record: the oldest applied one before the head, else the head.
    pub fn earliest(&mut self) -> Option<Record> {
        let mut earliest = None;
        self.walk_back_from_head(|r| {
            earliest = Some(r.clone());
            true
        });
        if earliest.is_none() {
            let (head, head_lsn) = self.head();
            let (_, next_lsn) = self.end();
            if head_lsn < next_lsn {
                earliest = self.read(head).ok();
            }
        }
        earliest
    }

    /// The pieces of valid chain found after damage in the middle of the log (empty when the
    /// scan ended normally or at a torn tail with nothing after it).
    pub fn salvage(&mut self) -> Vec<Piece> {
        let Ok(scan) = self.scan() else {
            return Vec::new();
        };
        let (offset, lsn, detail) = match &scan.end {
            ScanEnd::End => return Vec::new(),
            ScanEnd::TornTail { offset, detail } => (*offset, scan.next_lsn, detail.clone()),
            ScanEnd::Corrupt {
                offset,
                lsn,
                detail,
                ..
            } => (*offset, *lsn, detail.clone()),
        };
        self.salvage_from(offset, lsn, detail)
    }

    /// Starting at damage at `offset` where LSN `lsn` was expected: find the next valid record
    /// with a higher LSN anywhere in the area, follow the chain from it until it breaks, and
    /// repeat from the break. Each piece is a damaged spot and the valid records after it; the
    /// chain of the last piece ends where the log ends.
    fn salvage_from(&self, offset: u64, lsn: u64, detail: String) -> Vec<Piece> {
        let mut pieces = Vec::new();
        let (mut offset, mut lsn, mut detail) = (offset, lsn, detail);
        let area = self.reader.area_end() - self.reader.area_start();
        while pieces.len() < SALVAGE_PIECES_MAX {
            let Some(first) = self.find_record_after(offset, lsn) else {
                break;
            };
            let mut walked = first.header.length;
            let mut records = vec![first];
            let (break_offset, break_lsn, why) = loop {
                let (o, l, n) = match records.last() {
                    Some(r) => (r.offset, r.header.length, r.header.lsn),
                    None => break (offset, lsn, String::new()),
                };
                let at = self.reader.next_offset(o, l);
                if walked >= area {
                    break (at, n + 1, "the chain is longer than the area".into());
                }
                match self.expect_at(at, n + 1) {
                    Ok(r) => {
                        walked += r.header.length;
                        records.push(r);
                    }
                    Err(e) => break (at, n + 1, e),
                }
            };
            pieces.push(Piece {
                damage_offset: offset,
                expected_lsn: lsn,
                detail,
                records,
            });
            offset = break_offset;
            lsn = break_lsn;
            detail = why;
        }
        pieces
    }

    /// The first valid record after `from` (going forward round the area) whose LSN is above
    /// `lsn`: every aligned position is tried as a record header, then the whole record is
    /// verified. LSNs grow along the log, and stale records from earlier laps or runs carry
    /// lower LSNs or older generations, so the first one found is the next in the log.
    fn find_record_after(&self, from: u64, lsn: u64) -> Option<Record> {
        let start = self.reader.area_start();
        let end = self.reader.area_end();
        let from = from.clamp(start, end);
        [(from + RECORD_ALIGN, end), (start, from)]
            .into_iter()
            .find_map(|(a, b)| self.search(a.min(b), b, lsn))
    }

    fn search(&self, from: u64, to: u64, lsn: u64) -> Option<Record> {
        let end = self.reader.area_end();
        let device = self.reader.device();
        let seed = self.reader.seed();
        let mut buf = Vec::new();
        let mut window_start = from;
        while window_start < to {
            let window_end =
                (window_start + SEARCH_WINDOW_BYTES + RECORD_HEADER_SIZE as u64).min(end);
            buf.resize((window_end - window_start) as usize, 0);
            device.read_at(&mut buf, window_start).ok()?;
            let scan_end = (SEARCH_WINDOW_BYTES.min(to - window_start)) as usize;
            let mut pos = 0usize;
            while pos < scan_end.min(buf.len()) {
                if buf.len() - pos >= RECORD_HEADER_SIZE && buf[pos..pos + 4] == RECORD_MAGIC_BYTES
                {
                    let at = window_start + pos as u64;
                    if let Ok(h) = RecordHeader::decode(&buf[pos..], seed, end - at) {
                        if h.lsn > lsn && self.generation_ok(&h) {
                            if let Ok(r) = self.read(at) {
                                return Some(r);
                            }
                        }
                    }
                }
                pos += RECORD_ALIGN as usize;
            }
            window_start += SEARCH_WINDOW_BYTES;
        }
        None
    }

    /// Whether a record is the pad that fills the end of the area (the log wraps after it).
    pub fn is_wrap_pad(&self, offset: u64, length: u64, kind: u16) -> bool {
        kind == KIND_PAD && offset + length >= self.reader.area_end()
    }

    /// Live record summaries from the scan.
    pub fn live(&mut self) -> rvm::Result<Vec<RecordSummary>> {
        Ok(self.scan()?.records.clone())
    }
}

/// Smallest record, re-exported for callers that step through positions.
pub const MIN_RECORD: u64 = RECORD_MIN_SIZE;

/// Read from the device of `path` read-only (for `check`, `inspect` and `peek`: a log or segment another process may have open).
pub(crate) fn open_read_only(path: &Path) -> anyhow::Result<FileDevice> {
    FileDevice::open(path, Access::ReadOnly).with_context(|| format!("{}: open", path.display()))
}
