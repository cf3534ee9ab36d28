//! Applying logged new values to segments: used by truncation and by recovery.
//!
//! Ranges are collected (with their data) in log order, in slices of bounded size. For each
//! slice the newest value of every byte must win. The ranges are sorted by segment and
//! offset; ranges that overlap form a cluster, and inside a cluster they are applied oldest
//! first, so the newest write of every byte lands last. The pieces go to the segment's device
//! in one call, in offset order; the caller syncs each touched segment once at the end.
//!
//! Architecture Invariant: a range is written only if it lies entirely inside one region
//! recorded in its segment's header; anything else is an error before the slice is written.

use std::collections::BTreeSet;

use crate::device::DeviceRef;
use crate::error::{Error, Result};
use crate::format::log::{ranges, RecordHeader};
use crate::format::segment::SegmentHeader;

/// Range data held in memory before a slice is written out. Bounds memory for any log size.
const SLICE_BYTES_MAX: usize = 64 << 20;
/// Ranges held before a slice is written out (32 MiB of entries: tiny ranges would otherwise
/// let the entries outgrow the data many times over).
const SLICE_ENTRIES_MAX: usize = 1 << 20;

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

    /// Add a verified transaction record's ranges (lent by `LogReader::walk_bodies`),
    /// checking each against its segment.
    pub(crate) fn add_body(
        &mut self,
        record_offset: u64,
        header: &RecordHeader,
        body: &[u8],
        target: Target<'_>,
    ) -> Result<()> {
        for range in ranges(body, header.range_count) {
            let range = range.map_err(|e| Error::DamagedRecord {
                path: self.log_name.clone(),
                offset: record_offset,
                detail: e.to_string(),
            })?;
            let h = range.header;
            let Some((device, segment)) = target(h.segment) else {
                return Err(Error::DamagedRecord {
                    path: self.log_name.clone(),
                    offset: record_offset,
                    detail: format!("range names segment {} which is not open", h.segment),
                });
            };
            if segment.region_containing(h.offset, h.length).is_none() {
                return Err(Error::RangeOutsideSegment {
                    log: self.log_name.clone(),
                    record_offset,
                    segment: device.name().to_string(),
                    segment_offset: h.offset,
                    length: h.length,
                });
            }
            if h.length == 0 {
                continue;
            }
            if self.entries.len() >= SLICE_ENTRIES_MAX {
                self.write_slice(target)?;
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
        // `entries` is in log order, so the index is the age: a stable sort by position keeps
        // older-before-newer among ranges that start at the same offset.
        let mut order: Vec<usize> = (0..self.entries.len()).collect();
        order.sort_by_key(|&i| (self.entries[i].slot, self.entries[i].offset));
        let mut i = 0;
        while i < order.len() {
            let slot = self.entries[order[i]].slot;
            let mut writes: Vec<(u64, &[u8])> = Vec::new();
            while i < order.len() && self.entries[order[i]].slot == slot {
                // A cluster: ranges that overlap one another (transitively).
                let first = &self.entries[order[i]];
                let mut cluster_end = first.offset + first.length;
                let mut j = i + 1;
                while j < order.len()
                    && self.entries[order[j]].slot == slot
                    && self.entries[order[j]].offset < cluster_end
                {
                    let e = &self.entries[order[j]];
                    cluster_end = cluster_end.max(e.offset + e.length);
                    j += 1;
                }
                if j - i > 1 {
                    // Oldest first, so the newest value of every byte is written last.
                    order[i..j].sort_unstable();
                }
                for &k in &order[i..j] {
                    let e = &self.entries[k];
                    writes.push((
                        e.offset,
                        &self.data[e.data_at..e.data_at + e.length as usize],
                    ));
                }
                i = j;
            }
            let (device, _) = target(slot).ok_or_else(|| Error::DamagedRecord {
                path: self.log_name.clone(),
                offset: 0,
                detail: format!("segment {slot} is not open"),
            })?;
            device
                .write_pieces(&writes)
                .map_err(|e| Error::io(device.name(), "write", e))?;
            self.touched.insert(slot);
        }
        self.entries.clear();
        self.data.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{Device, MemDevice};
    use crate::format::log::{seal_record, TransactionEncoder};
    use crate::format::log::{RangeHeader, RECORD_HEADER_SIZE, RECORD_TRAILER_SIZE};
    use crate::format::segment::{RegionEntry, SegmentHeader};
    use crate::format::Uuid;
    use std::sync::Arc;

    /// Applying random overlapping ranges gives the same bytes as applying them one by one
    /// in log order.
    #[test]
    fn newest_value_of_every_byte_wins() {
        let dev = Arc::new(MemDevice::new("seg", vec![0; 4096 + 8192]));
        let header = SegmentHeader {
            uuid: Uuid([1; 16]),
            length_bytes: 4096 + 8192,
            created_unix_ms: 0,
            regions: vec![RegionEntry {
                offset: 4096,
                length: 8192,
                address: 0,
            }],
        };
        let d: crate::device::DeviceRef = dev.clone();
        let target = move |i: u32| (i == 0).then(|| (d.clone(), header.clone()));
        let mut model = vec![0u8; 4096 + 8192];
        let mut applier = Applier::new("log");
        let mut x: u64 = 12345;
        for n in 0..400u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let offset = 4096 + x % 8000;
            let length = 1 + (x >> 20) % 150;
            let length = length.min(4096 + 8192 - offset);
            let mut buf = Vec::new();
            let start = TransactionEncoder::begin(&mut buf, 0, 0, 1);
            TransactionEncoder::range(
                &mut buf,
                &RangeHeader {
                    segment: 0,
                    offset,
                    length,
                    address: 0,
                },
            )
            .fill(n as u8);
            TransactionEncoder::finish(&mut buf, start);
            seal_record(&mut buf, n as u64 + 1, 1, 1, 0);
            let h = RecordHeader::decode(&buf, 0, buf.len() as u64).unwrap();
            let body = &buf[RECORD_HEADER_SIZE..buf.len() - RECORD_TRAILER_SIZE];
            applier.add_body(0, &h, body, &target).unwrap();
            model[offset as usize..(offset + length) as usize].fill(n as u8);
        }
        let touched = applier.finish(&target).unwrap();
        assert_eq!(touched.into_iter().collect::<Vec<_>>(), vec![0]);
        let mut got = vec![0u8; 4096 + 8192];
        dev.read_at(&mut got, 0).unwrap();
        assert_eq!(got, model);
    }
}
