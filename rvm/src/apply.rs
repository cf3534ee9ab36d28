//! Applying logged new values to segments: used by truncation and by recovery.
//!
//! Ranges are collected (with their data) in log order, in slices of bounded size. For each
//! slice the newest value of every byte must win:
//!
//! * a range that covers exactly the bytes of a range already held (same segment, offset and
//!   length: the heap's counters and boundary tags, rewritten by every operation) overwrites
//!   that range's data in place and takes its age, so it is copied and written once per slice
//!   however often it was logged (a small direct-mapped table of recent ranges finds it: a
//!   range the table has forgotten is simply held twice, which is still correct);
//! * the ranges are then sorted by segment, offset and age; ranges that overlap form a
//!   cluster, and inside a cluster they are applied oldest first, so the newest write of every
//!   byte lands last.
//!
//! The pieces go to the segment's device in one call, in offset order; the caller syncs each
//! touched segment once at the end.
//!
//! Architecture Invariant: a range is written only if it lies entirely inside one region
//! recorded in its segment's header; anything else is an error before the slice is written.

use std::collections::BTreeSet;

use crate::device::DeviceRef;
use crate::error::{Error, Result};
use crate::format::log::{ranges, RecordHeader, RANGE_HEADER_SIZE, SEGMENTS_PER_LOG_MAX};
use crate::format::segment::SegmentHeader;

/// Range data held in memory before a slice is written out. Bounds memory for any log size.
const SLICE_BYTES_MAX: usize = 64 << 20;
/// Ranges held before a slice is written out (40 MiB of entries: tiny ranges would otherwise
/// let the entries outgrow the data many times over).
const SLICE_ENTRIES_MAX: usize = 1 << 20;
/// Slots of the table of recent ranges (a power of two; 4 bytes each).
const RECENT_SLOTS: usize = 1 << 13;
/// An empty slot of the table of recent ranges.
const NO_ENTRY: u32 = u32::MAX;
/// Bits of the filter that counts the distinct segment pages a stage writes (32 KiB: it
/// counts well up to about 100,000 pages, far more than a stage's rule ever compares).
const PAGE_FILTER_BITS: usize = 1 << 18;
/// The page size the stage's write cost is counted in.
const PAGE_BYTES: u64 = 4096;
/// A range spanning more pages than this has them counted without the filter.
const PAGES_FILTERED_MAX: u64 = 64;
/// The most memory (reserved; resident is what the largest truncation touched) an instance
/// keeps for its next truncation between truncations (see [`Applier::reusing`]): enough for
/// an applier of 15 MB of 64-byte ranges (half the report's 30 MB log).
const RETAINED_BYTES_MAX: usize = 48 << 20;
/// Low bits of a packed sort key that hold the entry's index (a slice holds at most
/// `SLICE_ENTRIES_MAX` entries).
const INDEX_BITS: u32 = SLICE_ENTRIES_MAX.trailing_zeros();
/// The index bits of a packed sort key.
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;

#[derive(Clone, Copy)]
struct Entry {
    slot: u32,
    /// Age: the position in the log of the newest range whose data this entry holds.
    seq: u64,
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
    /// Index into `entries` of a recent range, by a hash of its segment, offset and length.
    recent: Vec<u32>,
    /// Ranges added so far (the next range's age).
    seq: u64,
    /// Segments resolved so far, by log index (resolved once, not once per range).
    targets: Vec<Option<Resolved>>,
    /// Segments written since the last `write_out` (or since the applier was made).
    touched: BTreeSet<u32>,
    /// The pages written since the last `write_out` (a stage's write cost), by a hash of
    /// segment and page: one bit each (collisions undercount a little). Empty unless asked
    /// for (`count_stage_pages`): recovery and a one-stage truncation never ask.
    page_filter: Vec<u64>,
    /// Pages counted in `page_filter` (plus the pages of long ranges).
    stage_pages: u64,
    /// The entries' indices in position order, while a slice is written (packed sort keys:
    /// see `order_by_position`), and the radix sort's scratch space; kept between slices.
    order: Vec<u64>,
    scratch: Vec<u64>,
    /// Write through [`crate::device::Device::write_pieces_with_writeback`] (a truncation).
    writeback: bool,
}

type Resolved = Option<(DeviceRef, SegmentHeader)>;

/// The memory of an [`Applier`] that one truncation hands to the next (empty vectors with
/// their capacity).
pub(crate) struct ApplyBuffers {
    entries: Vec<Entry>,
    data: Vec<u8>,
    order: Vec<u64>,
    scratch: Vec<u64>,
}

impl ApplyBuffers {
    /// Bytes reserved.
    fn bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry>()
            + self.data.capacity()
            + (self.order.capacity() + self.scratch.capacity()) * 8
    }
}

/// Segment `slot`'s device and header, asking `target` only the first time. A log names at
/// most `SEGMENTS_PER_LOG_MAX` segments: a larger index (damage) resolves to nothing, through
/// one shared entry, so a damaged index never sizes the cache.
fn resolve<'a>(
    targets: &'a mut Vec<Option<Resolved>>,
    slot: u32,
    target: Target<'_>,
) -> &'a Resolved {
    let i = (slot as usize).min(SEGMENTS_PER_LOG_MAX);
    if i >= targets.len() {
        targets.resize(i + 1, None);
    }
    if i == SEGMENTS_PER_LOG_MAX {
        return targets[i].get_or_insert(None);
    }
    targets[i].get_or_insert_with(|| target(slot))
}

fn recent_slot(slot: u32, offset: u64, length: u64) -> usize {
    let x = (offset ^ (length << 40) ^ (u64::from(slot) << 56)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x >> (64 - RECENT_SLOTS.trailing_zeros())) as usize
}

impl Applier {
    /// An applier for about `log_bytes` of records: its buffers are reserved up front (within
    /// a slice's bounds; untouched reserved pages cost nothing), so they never grow by copying.
    pub(crate) fn new(log_name: &str, log_bytes: u64) -> Applier {
        Self::reusing(log_name, log_bytes, None)
    }

    /// [`Applier::new`], in the buffers an earlier applier left ([`Applier::finish_keeping`]),
    /// if any: their pages are already resident, where fresh ones would each be faulted in
    /// and zeroed by the kernel as the ranges fill them (measured: 15% of the CPU of a
    /// truncation of 64-byte ranges).
    pub(crate) fn reusing(log_name: &str, log_bytes: u64, spare: Option<ApplyBuffers>) -> Applier {
        let bytes = log_bytes.min(SLICE_BYTES_MAX as u64) as usize;
        // Every range costs at least a range header of log.
        let ranges = (bytes / RANGE_HEADER_SIZE).min(SLICE_ENTRIES_MAX);
        // Kept buffers are used as they are (cleared): reserving more in them would copy
        // (and fault in) their whole capacity wherever `realloc` cannot grow them in place,
        // for room the estimate above rarely needs; they grow by doubling if it does.
        let mut b = spare.unwrap_or_else(|| ApplyBuffers {
            entries: Vec::with_capacity(ranges),
            data: Vec::with_capacity(bytes),
            order: Vec::new(),
            scratch: Vec::new(),
        });
        b.entries.clear();
        b.data.clear();
        Applier {
            log_name: log_name.to_string(),
            entries: b.entries,
            data: b.data,
            recent: vec![NO_ENTRY; RECENT_SLOTS],
            seq: 0,
            targets: Vec::new(),
            touched: BTreeSet::new(),
            page_filter: Vec::new(),
            stage_pages: 0,
            order: b.order,
            scratch: b.scratch,
            writeback: false,
        }
    }

    /// Start the writeback of the pieces as they are written
    /// ([`crate::device::Device::write_pieces_with_writeback`]), for a truncation, which
    /// syncs the segments right after while commits sync the log.
    pub(crate) fn with_writeback(mut self) -> Applier {
        self.writeback = true;
        self
    }

    /// Count the pages each stage writes ([`Applier::stage_page_bytes`]), for a truncation
    /// that may end stages.
    pub(crate) fn count_stage_pages(mut self) -> Applier {
        self.page_filter = vec![0; PAGE_FILTER_BITS / 64];
        self
    }

    /// Bytes of segment pages the ranges added since the last [`Applier::write_out`] write
    /// (about: distinct pages counted by a filter): what ending a stage there would rewrite.
    pub(crate) fn stage_page_bytes(&self) -> u64 {
        self.stage_pages * PAGE_BYTES
    }

    /// Count the pages of a range in the stage's write cost (if counted at all).
    fn count_pages(&mut self, slot: u32, offset: u64, length: u64) {
        if self.page_filter.is_empty() {
            return;
        }
        let first = offset / PAGE_BYTES;
        let last = (offset + length - 1) / PAGE_BYTES;
        if last - first >= PAGES_FILTERED_MAX {
            self.stage_pages += last - first + 1;
            return;
        }
        for page in first..=last {
            let x = (page ^ (u64::from(slot) << 52)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let bit = (x >> (64 - PAGE_FILTER_BITS.trailing_zeros())) as usize;
            let (word, mask) = (bit / 64, 1u64 << (bit % 64));
            if self.page_filter[word] & mask == 0 {
                self.page_filter[word] |= mask;
                self.stage_pages += 1;
            }
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
            let Some((device, segment)) = resolve(&mut self.targets, h.segment, target) else {
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
            self.seq += 1;
            self.count_pages(h.segment, h.offset, h.length);
            let r = recent_slot(h.segment, h.offset, h.length);
            if let Some(e) = self.entries.get_mut(self.recent[r] as usize) {
                if e.slot == h.segment && e.offset == h.offset && e.length == h.length {
                    // The same bytes again: the newer value replaces the held one, and takes
                    // its age (every byte it covered is covered by this newer range).
                    e.seq = self.seq;
                    self.data[e.data_at..e.data_at + range.data.len()].copy_from_slice(range.data);
                    continue;
                }
            }
            if self.entries.len() >= SLICE_ENTRIES_MAX {
                self.write_slice(target)?;
            }
            self.recent[r] = self.entries.len() as u32;
            self.entries.push(Entry {
                slot: h.segment,
                seq: self.seq,
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

    /// Write what is held so far (the applier stays usable, and the next stage's page count
    /// starts from zero); returns the segment indices written to since the last `write_out`
    /// (or since it was made): what the stage must sync, and no more.
    pub(crate) fn write_out(&mut self, target: Target<'_>) -> Result<BTreeSet<u32>> {
        self.write_slice(target)?;
        self.page_filter.fill(0);
        self.stage_pages = 0;
        Ok(std::mem::take(&mut self.touched))
    }

    /// Write what is left; returns the segment indices written to since the last
    /// [`Applier::write_out`] (or since it was made), to be synced.
    pub(crate) fn finish(mut self, target: Target<'_>) -> Result<BTreeSet<u32>> {
        self.write_slice(target)?;
        Ok(self.touched)
    }

    /// [`Applier::finish`], also returning the buffers for the next applier
    /// ([`Applier::reusing`]) unless they hold more than `RETAINED_BYTES_MAX`.
    pub(crate) fn finish_keeping(
        mut self,
        target: Target<'_>,
    ) -> Result<(BTreeSet<u32>, Option<ApplyBuffers>)> {
        self.write_slice(target)?;
        let b = ApplyBuffers {
            entries: self.entries,
            data: self.data,
            order: self.order,
            scratch: self.scratch,
        };
        let kept = (b.bytes() <= RETAINED_BYTES_MAX).then_some(b);
        Ok((self.touched, kept))
    }

    /// Fill `self.order` with the entries' indices in (segment, offset) order: packed above
    /// the index as one `u64` key and radix-sorted when segment and offset fit (always, for
    /// segments under 16 TiB), else by a comparison sort.
    fn order_by_position(&mut self) {
        let entries = &self.entries;
        self.order.clear();
        let (slot_max, offset_max) = entries
            .iter()
            .fold((0u32, 0u64), |(s, o), e| (s.max(e.slot), o.max(e.offset)));
        let offset_bits = 64 - offset_max.leading_zeros();
        let slot_bits = 32 - slot_max.leading_zeros();
        if INDEX_BITS + offset_bits + slot_bits <= 64 {
            // A shift of 64 (no bits left for the segment) leaves only segment 0.
            let slot_shift = INDEX_BITS + offset_bits;
            self.order.extend(entries.iter().enumerate().map(|(i, e)| {
                u64::from(e.slot).checked_shl(slot_shift).unwrap_or(0)
                    | (e.offset << INDEX_BITS)
                    | i as u64
            }));
            crate::radix::sort_by_high_bits(&mut self.order, &mut self.scratch, INDEX_BITS);
        } else {
            self.order.extend(0..entries.len() as u64);
            self.order.sort_unstable_by_key(|&i| {
                let e = &entries[i as usize];
                (e.slot, e.offset)
            });
        }
    }

    fn write_slice(&mut self, target: Target<'_>) -> Result<()> {
        if self.entries.is_empty() {
            return Ok(());
        }
        // By position. Ranges that start at the same offset overlap, so they fall into one
        // cluster, which is put in age order below.
        self.order_by_position();
        let entries = &self.entries;
        let entry = |v: u64| &entries[(v & INDEX_MASK) as usize];
        let order = &mut self.order[..];
        let mut i = 0;
        while i < order.len() {
            let slot = entry(order[i]).slot;
            let mut writes: Vec<(u64, &[u8])> = Vec::new();
            while i < order.len() && entry(order[i]).slot == slot {
                // A cluster: ranges that overlap one another (transitively).
                let first = entry(order[i]);
                let mut cluster_end = first.offset + first.length;
                let mut j = i + 1;
                while j < order.len() {
                    let e = entry(order[j]);
                    if e.slot != slot || e.offset >= cluster_end {
                        break;
                    }
                    cluster_end = cluster_end.max(e.offset + e.length);
                    j += 1;
                }
                if j - i > 1 {
                    // Oldest first, so the newest value of every byte is written last.
                    order[i..j].sort_unstable_by_key(|&v| entry(v).seq);
                }
                for &v in &order[i..j] {
                    let e = entry(v);
                    writes.push((
                        e.offset,
                        &self.data[e.data_at..e.data_at + e.length as usize],
                    ));
                }
                i = j;
            }
            let (device, _) = resolve(&mut self.targets, slot, target)
                .as_ref()
                .ok_or_else(|| Error::DamagedRecord {
                    path: self.log_name.clone(),
                    offset: 0,
                    detail: format!("segment {slot} is not open"),
                })?;
            if self.writeback {
                device.write_pieces_with_writeback(&writes)
            } else {
                device.write_pieces(&writes)
            }
            .map_err(|e| Error::io(device.name(), "write", e))?;
            self.touched.insert(slot);
        }
        self.entries.clear();
        self.data.clear();
        self.recent.fill(NO_ENTRY);
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

    /// Log one range of segment 0 (`length` bytes of `fill` at `offset`) as record `lsn` and
    /// add it to `applier`.
    fn add_range(
        applier: &mut Applier,
        target: Target<'_>,
        lsn: u64,
        offset: u64,
        length: u64,
        fill: u8,
    ) {
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
        .fill(fill);
        TransactionEncoder::finish(&mut buf, start);
        seal_record(&mut buf, lsn, 1, 1, 0);
        let h = RecordHeader::decode(&buf, 0, buf.len() as u64).unwrap();
        let body = &buf[RECORD_HEADER_SIZE..buf.len() - RECORD_TRAILER_SIZE];
        applier.add_body(0, &h, body, target).unwrap();
    }

    /// A memory segment of one `region`-byte region after a 4 KiB header, and a target that
    /// resolves log index 0 to it.
    fn one_region(region: u64) -> (Arc<MemDevice>, impl Fn(u32) -> Resolved) {
        let len = 4096 + region;
        let dev = Arc::new(MemDevice::new("seg", vec![0; len as usize]));
        let header = SegmentHeader {
            uuid: Uuid([1; 16]),
            length_bytes: len,
            created_unix_ms: 0,
            regions: vec![RegionEntry {
                offset: 4096,
                length: region,
                address: 0,
            }],
        };
        let d: crate::device::DeviceRef = dev.clone();
        (dev, move |i: u32| {
            (i == 0).then(|| (d.clone(), header.clone()))
        })
    }

    /// Log `ranges` (offset, length, fill byte) as one record each, apply them, and compare
    /// with writing them one by one in log order.
    fn apply_and_compare(ranges: &[(u64, u64, u8)]) {
        let len = 4096 + 8192;
        let (dev, target) = one_region(8192);
        let mut model = vec![0u8; len];
        let mut applier = Applier::new("log", 1 << 16);
        for (n, &(offset, length, fill)) in ranges.iter().enumerate() {
            add_range(&mut applier, &target, n as u64 + 1, offset, length, fill);
            model[offset as usize..(offset + length) as usize].fill(fill);
        }
        let touched = applier.finish(&target).unwrap();
        assert_eq!(touched.into_iter().collect::<Vec<_>>(), vec![0]);
        let mut got = vec![0u8; len];
        dev.read_at(&mut got, 0).unwrap();
        assert_eq!(got, model);
    }

    /// A stage's write cost counts each segment page once, however many ranges land in it,
    /// and starts again after `write_out` (the rule that keeps a background truncation from
    /// rewriting a whole segment in every stage relies on it).
    #[test]
    fn the_stage_page_count_counts_each_page_once_and_restarts_at_write_out() {
        let (_dev, target) = one_region(1 << 20);
        let mut applier = Applier::new("log", 1 << 16).count_stage_pages();
        // 100 small ranges in page 2, then one range across the boundary of pages 2 and 3.
        for i in 0..100 {
            add_range(&mut applier, &target, 1, 8192 + 16 * i, 16, 7);
        }
        assert_eq!(applier.stage_page_bytes(), 4096);
        add_range(&mut applier, &target, 1, 3 * 4096 - 8, 16, 7);
        assert_eq!(applier.stage_page_bytes(), 2 * 4096);
        applier.write_out(&target).unwrap();
        assert_eq!(applier.stage_page_bytes(), 0);
        // 200 ranges in 200 distinct pages, each written twice.
        for _ in 0..2 {
            for page in 1..=200u64 {
                add_range(&mut applier, &target, 1, page * 4096 + 100, 8, 7);
            }
        }
        let counted = applier.stage_page_bytes() / 4096;
        assert!((195..=200).contains(&counted), "{counted} pages counted");
        applier.write_out(&target).unwrap();
        // A long range: every page it spans.
        add_range(&mut applier, &target, 1, 4096, 100 * 4096, 7);
        assert_eq!(applier.stage_page_bytes(), 100 * 4096);
    }

    /// The same few ranges (a heap's counters and tags) rewritten again and again, between
    /// ranges that overlap them partly: a rewritten range must not keep the age of its first
    /// write, or an older overlapping range would win over its newest value.
    #[test]
    fn a_rewritten_range_beats_older_ranges_overlapping_it() {
        // [4096, 4104) rewritten after [4100, 4112) was written over half of it.
        apply_and_compare(&[(4096, 8, 1), (4100, 12, 2), (4096, 8, 3)]);
        apply_and_compare(&[(4100, 12, 2), (4096, 8, 1), (4100, 12, 4), (4096, 8, 3)]);
        let spots = [
            (4096, 8),
            (4100, 12),
            (4096, 64),
            (4200, 8),
            (4104, 100),
            (4096, 8),
        ];
        let mut x: u64 = 99;
        let mut ranges = Vec::new();
        for n in 0..5000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (offset, length) = spots[(x % spots.len() as u64) as usize];
            ranges.push((offset, length, (n % 251) as u8 + 1));
        }
        apply_and_compare(&ranges);
    }

    /// A range naming a segment index far past any table (a damaged log) is refused with an
    /// error naming the record, and never sizes the applier's cache of segments by it.
    #[test]
    fn a_huge_segment_index_is_refused_without_allocating_for_it() {
        let dev: crate::device::DeviceRef = Arc::new(MemDevice::new("seg", vec![0; 8192]));
        let target = move |i: u32| {
            (i == 0).then(|| {
                (
                    dev.clone(),
                    SegmentHeader {
                        uuid: Uuid([1; 16]),
                        length_bytes: 8192,
                        created_unix_ms: 0,
                        regions: vec![RegionEntry {
                            offset: 4096,
                            length: 4096,
                            address: 0,
                        }],
                    },
                )
            })
        };
        let mut buf = Vec::new();
        let start = TransactionEncoder::begin(&mut buf, 0, 0, 1);
        TransactionEncoder::range(
            &mut buf,
            &RangeHeader {
                segment: u32::MAX,
                offset: 4096,
                length: 8,
                address: 0,
            },
        )
        .fill(1);
        TransactionEncoder::finish(&mut buf, start);
        seal_record(&mut buf, 1, 1, 1, 0);
        let h = RecordHeader::decode(&buf, 0, buf.len() as u64).unwrap();
        let body = &buf[RECORD_HEADER_SIZE..buf.len() - RECORD_TRAILER_SIZE];
        let mut applier = Applier::new("log", 1 << 16);
        let e = applier.add_body(4096, &h, body, &target).unwrap_err();
        assert!(
            matches!(e, Error::DamagedRecord { offset: 4096, .. }),
            "{e:?}"
        );
        assert!(applier.targets.len() <= SEGMENTS_PER_LOG_MAX + 1);
    }

    /// An applier made in the buffers of an earlier one (the next truncation of an
    /// instance) writes its own ranges and none of the earlier applier's.
    #[test]
    fn a_reused_applier_writes_none_of_the_earlier_ones_ranges() {
        let len = 4096 + 8192;
        let (dev, target) = one_region(8192);
        let mut first = Applier::new("log", 1 << 16);
        for n in 0..100u64 {
            add_range(&mut first, &target, n + 1, 4096 + n * 80, 64, 0xee);
        }
        let (_, spare) = first.finish_keeping(&target).unwrap();
        assert!(spare.is_some());
        // The segment is rewritten from elsewhere since (a stand-in for "these bytes are
        // no longer what the first applier held").
        dev.write_at(&vec![0; 8192], 4096).unwrap();
        let mut model = vec![0u8; len];
        let mut second = Applier::reusing("log", 1 << 16, spare);
        for n in 0..10u64 {
            let offset = 4096 + 1000 + n * 500;
            add_range(&mut second, &target, n + 1, offset, 16, n as u8 + 1);
            model[offset as usize..offset as usize + 16].fill(n as u8 + 1);
        }
        second.finish(&target).unwrap();
        let mut got = vec![0u8; len];
        dev.read_at(&mut got, 0).unwrap();
        assert_eq!(got[4096..], model[4096..]);
    }

    /// The position order is by segment, then offset, whether the keys are packed and
    /// radix-sorted (small offsets, several segments) or compared (offsets too large to pack
    /// with the segment index).
    #[test]
    fn position_order_is_by_segment_then_offset_packed_or_not() {
        let mut x: u64 = 4242;
        for offset_mask in [(1u64 << 26) - 1, u64::MAX >> 1] {
            let mut applier = Applier::new("log", 1 << 16);
            for n in 0..3000u64 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                applier.entries.push(Entry {
                    slot: (x >> 60) as u32 % 3,
                    seq: n,
                    offset: x & offset_mask,
                    length: 1,
                    data_at: 0,
                });
            }
            applier.order_by_position();
            let got: Vec<(u32, u64)> = applier
                .order
                .iter()
                .map(|&v| {
                    let e = &applier.entries[(v & INDEX_MASK) as usize];
                    (e.slot, e.offset)
                })
                .collect();
            let mut expected: Vec<(u32, u64)> =
                applier.entries.iter().map(|e| (e.slot, e.offset)).collect();
            expected.sort_unstable();
            assert_eq!(got, expected, "offset mask {offset_mask:#x}");
        }
    }

    /// Applying random overlapping ranges gives the same bytes as applying them one by one
    /// in log order.
    #[test]
    fn newest_value_of_every_byte_wins() {
        let mut x: u64 = 12345;
        let mut ranges = Vec::new();
        for n in 0..400u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let offset = 4096 + x % 8000;
            let length = (1 + (x >> 20) % 150).min(4096 + 8192 - offset);
            ranges.push((offset, length, n as u8));
        }
        apply_and_compare(&ranges);
    }
}
