//! Applying logged new values to segments: used by truncation and by recovery.
//!
//! Ranges are collected (with their data) in log order, in slices of bounded size. For each
//! slice the newest value of every byte wins: ranges are visited newest first and only the
//! bytes no newer range covers are kept. The surviving pieces are sorted by segment and
//! offset, adjacent pieces are merged, and each run is written with one positional write.
//! The caller syncs each touched segment once at the end.
//!
//! Architecture Invariant: a range is written only if it lies entirely inside one region
//! recorded in its segment's header; anything else is an error before the slice is written.

use std::collections::{BTreeMap, BTreeSet};

use crate::device::DeviceRef;
use crate::error::{Error, Result};
use crate::format::segment::SegmentHeader;
use crate::log::Record;

/// Range data held in memory before a slice is written out. Bounds memory for any log size.
const SLICE_BYTES_MAX: usize = 64 << 20;

struct Entry {
    slot: u32,
    offset: u64,
    length: u64,
    data_at: usize,
}

/// Resolves a log segment index to its open device and header.
pub(crate) type Target<'a> = &'a dyn Fn(u32) -> Option<(DeviceRef, SegmentHeader)>;

pub(crate) struct Applier {
    log_name: String,
    entries: Vec<Entry>,
    data: Vec<u8>,
    touched: BTreeSet<u32>,
}

impl Applier {
    pub(crate) fn new(log_name: &str) -> Applier {
        Applier {
            log_name: log_name.to_string(),
            entries: Vec::new(),
            data: Vec::new(),
            touched: BTreeSet::new(),
        }
    }

    /// Add a verified transaction record's ranges, checking each against its segment.
    pub(crate) fn add_record(&mut self, record: &Record, target: Target<'_>) -> Result<()> {
        for range in record.ranges() {
            let range = range.map_err(|e| Error::DamagedRecord {
                path: self.log_name.clone(),
                offset: record.offset,
                detail: e.to_string(),
            })?;
            let h = range.header;
            let Some((device, header)) = target(h.segment) else {
                return Err(Error::DamagedRecord {
                    path: self.log_name.clone(),
                    offset: record.offset,
                    detail: format!("range names segment {} which is not open", h.segment),
                });
            };
            if header.region_containing(h.offset, h.length).is_none() {
                return Err(Error::RangeOutsideSegment {
                    log: self.log_name.clone(),
                    record_offset: record.offset,
                    segment: device.name().to_string(),
                    segment_offset: h.offset,
                    length: h.length,
                });
            }
            if h.length == 0 {
                continue;
            }
            self.entries.push(Entry {
                slot: h.segment,
                offset: h.offset,
                length: h.length,
                data_at: self.data.len(),
            });
            self.data.extend_from_slice(range.data);
        }
        if self.data.len() >= SLICE_BYTES_MAX {
            self.write_slice(target)?;
        }
        Ok(())
    }

    /// Write what is left; returns the segment indices written to (to be synced).
    pub(crate) fn finish(mut self, target: Target<'_>) -> Result<BTreeSet<u32>> {
        self.write_slice(target)?;
        Ok(self.touched)
    }

    fn write_slice(&mut self, target: Target<'_>) -> Result<()> {
        if self.entries.is_empty() {
            return Ok(());
        }
        // Newest first: keep only bytes no newer range has claimed.
        let mut covered: BTreeMap<u32, BTreeMap<u64, u64>> = BTreeMap::new();
        let mut pieces: Vec<(u32, u64, u64, usize)> = Vec::with_capacity(self.entries.len());
        for e in self.entries.iter().rev() {
            let set = covered.entry(e.slot).or_default();
            let end = e.offset + e.length;
            for (s, t) in uncovered(set, e.offset, end) {
                pieces.push((e.slot, s, t, e.data_at + (s - e.offset) as usize));
            }
            insert(set, e.offset, end);
        }
        pieces.sort_unstable_by_key(|p| (p.0, p.1));
        let mut run: Vec<u8> = Vec::new();
        let mut i = 0;
        while i < pieces.len() {
            let (slot, start, _, _) = pieces[i];
            run.clear();
            let mut end = start;
            while i < pieces.len() && pieces[i].0 == slot && pieces[i].1 == end {
                let (_, s, t, at) = pieces[i];
                run.extend_from_slice(&self.data[at..at + (t - s) as usize]);
                end = t;
                i += 1;
            }
            let (device, _) = target(slot).ok_or_else(|| Error::DamagedRecord {
                path: self.log_name.clone(),
                offset: 0,
                detail: format!("segment {slot} is not open"),
            })?;
            device
                .write_at(&run, start)
                .map_err(|e| Error::io(device.name(), "write", e))?;
            self.touched.insert(slot);
        }
        self.entries.clear();
        self.data.clear();
        Ok(())
    }
}

/// The parts of `[start, end)` not covered by the disjoint intervals in `set`.
fn uncovered(set: &BTreeMap<u64, u64>, start: u64, end: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut cursor = start;
    if let Some((_, &e)) = set.range(..=start).next_back() {
        cursor = cursor.max(e);
    }
    for (&s, &e) in set.range(start..end) {
        if s > cursor {
            out.push((cursor, s));
        }
        cursor = cursor.max(e);
        if cursor >= end {
            break;
        }
    }
    if cursor < end {
        out.push((cursor, end));
    }
    out
}

/// Add `[start, end)` to `set`, merging with overlapping or adjacent intervals.
fn insert(set: &mut BTreeMap<u64, u64>, mut start: u64, mut end: u64) {
    let overlapping: Vec<(u64, u64)> = set
        .range(..=end)
        .rev()
        .take_while(|(_, &e)| e >= start)
        .map(|(&s, &e)| (s, e))
        .collect();
    for (s, e) in overlapping {
        set.remove(&s);
        start = start.min(s);
        end = end.max(e);
    }
    set.insert(start, end);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncovered_and_insert_agree_with_a_byte_model() {
        let mut set = BTreeMap::new();
        let mut model = [false; 64];
        let spans = [
            (10, 20),
            (15, 30),
            (0, 5),
            (40, 50),
            (5, 10),
            (2, 60),
            (60, 64),
        ];
        for (s, t) in spans {
            let got: Vec<u64> = uncovered(&set, s, t)
                .into_iter()
                .flat_map(|(a, b)| a..b)
                .collect();
            let want: Vec<u64> = (s..t).filter(|b| !model[*b as usize]).collect();
            assert_eq!(got, want, "uncovered({s},{t})");
            insert(&mut set, s, t);
            for b in s..t {
                model[b as usize] = true;
            }
            let mut last_end = None;
            for (&a, &b) in &set {
                assert!(a < b);
                if let Some(le) = last_end {
                    assert!(a > le, "intervals must be disjoint and non-adjacent");
                }
                last_end = Some(b);
            }
        }
    }
}
