//! Merging the ranges of a record that carries several commits
//! ([`Options::coalesce_transactions`](crate::Options::coalesce_transactions)).
//!
//! Commits queued before a flush share one record, and each commit's ranges are appended as
//! they come, so bytes that every commit writes (a heap's counters and list heads) are logged
//! once per commit. A record is replayed whole or not at all, so all that matters of it is the
//! value its last range gives each byte. [`merge_ranges`] rewrites such a record with every
//! byte once: ranges that overlap or touch become one range holding those last values. The
//! classic library did the same for the commits it grouped (its `trans_elim` statistics).
//!
//! Sorting the ranges costs time, so the flush leader merges only records where ranges repeat
//! ([`worth_merging`] looks at the first ranges of a record).

use super::record::{
    ranges, transaction_record_size, unsealed_parts, RangeHeader, TransactionEncoder,
    RANGE_HEADER_SIZE,
};
use super::segment::REGION_ALIGN;

/// What a merge took out of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MergeSaving {
    /// Ranges fewer than before.
    pub ranges: u64,
    /// Bytes fewer than before.
    pub bytes: u64,
}

/// One range of the record being merged.
#[derive(Debug, Clone, Copy)]
struct Span {
    segment: u32,
    offset: u64,
    end: u64,
    address: u64,
    /// Where its data starts in the record's body.
    data: usize,
    /// A later range of the same extent writes all of its bytes ([`mark_overwritten`]).
    dead: bool,
}

/// A run of ranges that overlap or touch: the range that replaces them.
#[derive(Debug, Clone, Copy)]
struct Group {
    /// Its members: `order[first..first + count]` (their indices in `spans`).
    first: usize,
    count: usize,
    segment: u32,
    offset: u64,
    end: u64,
    address: u64,
}

/// Buffers a merge reuses from one record to the next.
#[derive(Debug, Default)]
pub struct MergeScratch {
    spans: Vec<Span>,
    /// The indices in `spans` in order of segment and offset ([`sort_by_place`]).
    order: Vec<u32>,
    /// Sort keys (see [`sort_by_place`]).
    keys: Vec<u64>,
    radix_scratch: Vec<u64>,
    wide_keys: Vec<(u32, u64, u32)>,
    /// The table of [`worth_merging`].
    recent: RecentRanges,
    /// The table of [`mark_overwritten`].
    latest: LatestExtents,
    groups: Vec<Group>,
    members: Vec<u32>,
}

/// Append to `out` the unsealed transaction record `rec` (header, ranges, room for the
/// trailer; see [`TransactionEncoder`]) with its ranges merged: every byte any range writes
/// is written by exactly one range, with the value of the last range in `rec` that writes it,
/// and ranges of a segment that overlap or touch become one. Touching ones join only if their
/// addresses continue each other too (the address of a range is informational) and they do
/// not touch on a multiple of [`REGION_ALIGN`], where two regions may meet: a merged range
/// lies in one region, as each of its ranges did. The merged
/// ranges are in the order of segment and offset; the flags are kept. Replaying the result
/// leaves every segment byte as replaying `rec` would.
///
/// Returns what the merge saved, or `None` with nothing appended when `rec` is not an unsealed
/// transaction record whose ranges decode, or when merging would save nothing.
pub fn merge_ranges(
    rec: &[u8],
    out: &mut Vec<u8>,
    scratch: &mut MergeScratch,
) -> Option<MergeSaving> {
    let (flags, count, body) = unsealed_parts(rec)?;
    let MergeScratch {
        spans,
        order,
        keys,
        radix_scratch,
        wide_keys,
        groups,
        members,
        latest,
        ..
    } = scratch;
    spans.clear();
    order.clear();
    groups.clear();
    collect_spans(body, count, spans)?;
    mark_overwritten(spans, latest);
    sort_by_place(spans, order, keys, radix_scratch, wide_keys);
    for (at, &i) in order.iter().enumerate() {
        let s = spans[i as usize];
        if let Some(g) = groups.last_mut() {
            // Ranges that share a byte lie in one region; ranges that only touch may lie in
            // two (regions start and end on REGION_ALIGN), and a replayed range must lie in
            // one, so those join only off that alignment.
            let joins = g.segment == s.segment
                && (s.offset < g.end
                    || (s.offset == g.end
                        && !g.end.is_multiple_of(REGION_ALIGN)
                        && s.address.wrapping_sub(s.offset) == g.address.wrapping_sub(g.offset)));
            if joins {
                g.end = g.end.max(s.end);
                g.count += 1;
                continue;
            }
        }
        groups.push(Group {
            first: at,
            count: 1,
            segment: s.segment,
            offset: s.offset,
            end: s.end,
            address: s.address,
        });
    }
    let size = transaction_record_size(groups.iter().map(|g| g.end - g.offset));
    if size >= rec.len() as u64 {
        return None;
    }
    let headers = groups.iter().map(|g| RangeHeader {
        segment: g.segment,
        offset: g.offset,
        length: g.end - g.offset,
        address: g.address,
    });
    TransactionEncoder::record_sized(out, flags, size, headers, |i, dst| {
        let g = groups[i];
        let group = &order[g.first..g.first + g.count];
        // Ranges of one place are sorted by their index, so where every member has the
        // group's extent (bytes every commit rewrote) the last one's data is all there is.
        let same = group.iter().all(|&m| {
            let s = &spans[m as usize];
            s.offset == g.offset && s.end == g.end
        });
        members.clear();
        if same {
            members.extend(group.last());
        } else {
            members.extend_from_slice(group);
            // In record order, so the last range to write a byte is the last to copy it.
            members.sort_unstable();
        }
        for &m in members.iter() {
            let s = spans[m as usize];
            let (from, to) = ((s.offset - g.offset) as usize, (s.end - g.offset) as usize);
            if let (Some(d), Some(src)) = (
                dst.get_mut(from..to),
                body.get(s.data..s.data + (to - from)),
            ) {
                d.copy_from_slice(src);
            }
        }
    });
    Some(MergeSaving {
        ranges: spans.len().saturating_sub(groups.len()) as u64,
        bytes: rec.len() as u64 - size,
    })
}

/// Fill `spans` with the `count` ranges of the transaction body `body`; `None` if they do not
/// decode (a range past the body, bytes left after the last range).
fn collect_spans(body: &[u8], count: u32, spans: &mut Vec<Span>) -> Option<()> {
    for r in ranges(body, count) {
        let r = r.ok()?;
        let h = r.header;
        spans.push(Span {
            segment: h.segment,
            offset: h.offset,
            end: h.offset.checked_add(h.length)?,
            address: h.address,
            data: r.body_offset + RANGE_HEADER_SIZE,
            dead: false,
        });
    }
    Some(())
}

/// A 64-bit mix of a range's place (segment and offset), for the direct-mapped tables.
#[inline]
fn place_key(segment: u32, offset: u64) -> u64 {
    (offset ^ (u64::from(segment) << 48)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Slots of [`LatestExtents`] (a power of two).
const LATEST_SLOTS: usize = 1024;

/// A direct-mapped table from an extent (segment, offset, end) to the latest range seen with
/// it (its index plus one; 0 is empty), for [`mark_overwritten`].
#[derive(Debug)]
struct LatestExtents(Box<[u32; LATEST_SLOTS]>);

impl Default for LatestExtents {
    fn default() -> Self {
        LatestExtents(Box::new([0; LATEST_SLOTS]))
    }
}

/// Mark each span that a later span of exactly its extent overwrites: every byte it writes is
/// written again later, whatever comes between, so the merge can leave it out (the bytes
/// every commit rewrites are most of a heap record's ranges; dropping them first makes the
/// sort and the copying shorter). Walks backwards with a direct-mapped table of the latest
/// span per extent: two extents in one slot only make it miss a repeat, never mark a span
/// wrongly, since the extents are compared.
fn mark_overwritten(spans: &mut [Span], latest: &mut LatestExtents) {
    let table = &mut latest.0;
    table.fill(0);
    for i in (0..spans.len()).rev() {
        let s = spans[i];
        let key = place_key(s.segment, s.offset) ^ s.end.wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
        let slot = &mut table[(key >> 54) as usize % LATEST_SLOTS];
        if let Some(later) = (*slot as usize).checked_sub(1).and_then(|j| spans.get(j)) {
            if (later.segment, later.offset, later.end) == (s.segment, s.offset, s.end) {
                spans[i].dead = true;
                continue;
            }
        }
        // Spans are fewer than 2^32 (a record holds at most RANGES_PER_RECORD_MAX).
        *slot = i as u32 + 1;
    }
}

/// Fill `order` with the indices of the live `spans` (not marked overwritten) sorted by
/// segment, then offset (ranges of one place in record order). The sort is much of the merge's
/// cost, so the usual case radix-sorts one `u64` per range that packs the segment (4 bits),
/// the offset (40 bits) and the index (20 bits), in a pass per 11 bits that differ
/// ([`crate::radix`]); other ranges take a comparison sort of wider keys. Either way the key
/// holds the index, so no step looks into `spans`.
fn sort_by_place(
    spans: &[Span],
    order: &mut Vec<u32>,
    keys: &mut Vec<u64>,
    radix_scratch: &mut Vec<u64>,
    wide_keys: &mut Vec<(u32, u64, u32)>,
) {
    order.clear();
    let narrow = spans.len() < 1 << 20
        && spans
            .iter()
            .all(|s| s.segment < 1 << 4 && s.offset < 1 << 40);
    if narrow {
        keys.clear();
        keys.extend(
            spans
                .iter()
                .enumerate()
                .filter(|(_, s)| !s.dead)
                .map(|(i, s)| (u64::from(s.segment) << 60) | (s.offset << 20) | i as u64),
        );
        // Stable by the high bits: ranges of one place stay in record order.
        crate::radix::sort_by_high_bits(keys, radix_scratch, 20);
        order.extend(keys.iter().map(|&k| (k & ((1 << 20) - 1)) as u32));
    } else {
        wide_keys.clear();
        wide_keys.extend(
            spans
                .iter()
                .enumerate()
                .filter(|(_, s)| !s.dead)
                .map(|(i, s)| (s.segment, s.offset, i as u32)),
        );
        wide_keys.sort_unstable();
        order.extend(wide_keys.iter().map(|&(_, _, i)| i));
    }
}

/// Slots of the table [`worth_merging`] notes ranges in (a power of two).
const RECENT_SLOTS: usize = 256;
/// The most ranges of a record [`worth_merging`] looks at: enough to span several commits
/// even when each commit is a large transaction (16 heap calls, tens of ranges).
const SAMPLE_RANGES: u32 = 512;

/// A direct-mapped table of recently seen places (segment and offset) of ranges: a range of
/// another place in the same slot evicts the one before. Each look starts a new epoch, mixed
/// into the keys, instead of clearing the table (a look per record per flush; with coalescing
/// off every commit is a record).
#[derive(Debug)]
struct RecentRanges {
    keys: Box<[u64; RECENT_SLOTS]>,
    epoch: u64,
}

impl Default for RecentRanges {
    fn default() -> Self {
        RecentRanges {
            keys: Box::new([0; RECENT_SLOTS]),
            epoch: 0,
        }
    }
}

impl RecentRanges {
    /// Forget the places noted so far (a new record).
    fn start(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
    }

    /// Note a range's place; true if the same place was noted shortly before in this epoch
    /// (or, rarely, a key of an earlier epoch or another place collides: a heuristic's error).
    #[inline]
    fn repeats(&mut self, segment: u32, offset: u64) -> bool {
        // Never 0, the empty slot; the top bits pick the slot.
        let key = (place_key(segment, offset) ^ self.epoch.wrapping_mul(0xc2b2_ae3d_27d4_eb4f)) | 1;
        let slot = &mut self.keys[(key >> 56) as usize % RECENT_SLOTS];
        let seen = *slot == key;
        *slot = key;
        seen
    }
}

/// Whether [`merge_ranges`] would likely save much on the unsealed record `rec`: whether, of
/// its first 512 ranges, one in eight or more has the place of a range shortly before it (a
/// record of commits that rewrite a heap's counters repeats them within a few commits). A
/// cheap look (a header's fields, a multiplication, a load and a store per range), so that
/// records of scattered writes are not sorted for nothing. False for anything that is not
/// such a record.
pub fn worth_merging(rec: &[u8], scratch: &mut MergeScratch) -> bool {
    let Some((_, count, body)) = unsealed_parts(rec) else {
        return false;
    };
    if count < 2 {
        return false;
    }
    let recent = &mut scratch.recent;
    recent.start();
    let (mut seen, mut repeats) = (0u32, 0u32);
    // Stops at the sample's end (where the walk reports bytes left) or at a bad range.
    for r in ranges(body, count.min(SAMPLE_RANGES)).map_while(Result::ok) {
        seen += 1;
        repeats += u32::from(recent.repeats(r.header.segment, r.header.offset));
    }
    repeats > 0 && u64::from(repeats) * 8 >= u64::from(seen)
}

#[cfg(test)]
#[path = "merge_tests.rs"]
mod tests;
