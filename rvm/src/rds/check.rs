//! The full consistency checker and the inspector. Both work on a byte image of the heap
//! region plus the address it is mapped at, or on the region in a segment file read through a
//! bounded page cache (so tools check any heap size without mapping or loading it); the mapped
//! heap runs the same code over its memory.

use crate::device::Device;
use crate::format::heap::{
    BlockState, HeapCounters, HeapGeometry, FREE_NEXT_OFFSET, FREE_PREV_OFFSET,
};
use crate::format::segment::RegionEntry;
use crate::rds::reader::{read_header, Reader};
use crate::rds::view::{DeviceImage, View};
use crate::rds::Error;

/// Problems listed in one report; further ones are only counted, so a badly damaged heap
/// does not produce an unbounded report.
pub const PROBLEMS_REPORTED_MAX: usize = 1000;

/// What kind of damage a [`Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// The heap header is missing, of another version, or inconsistent.
    Header,
    /// A block's head or foot tag is damaged, or the two disagree.
    Tag,
    /// A list link (head, prev or next) is wrong.
    Link,
    /// A free block is on the wrong list, on two lists, or on none.
    List,
    /// The header's byte counters disagree with the blocks.
    Accounting,
}

/// One problem found by the checker, with the address where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Address in the heap where the problem was found (a block, a tag or the header).
    pub address: u64,
    /// What kind of problem it is.
    pub kind: ProblemKind,
    /// What exactly is wrong.
    pub detail: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#x}: {:?}: {}", self.address, self.kind, self.detail)
    }
}

/// The result of a full check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// The problems found, at most [`PROBLEMS_REPORTED_MAX`] of them.
    pub problems: Vec<Problem>,
    /// Problems found beyond [`PROBLEMS_REPORTED_MAX`].
    pub problems_omitted: u64,
    /// Whether the block walk reached the end of the heap (it stops at a damaged tag).
    pub walk_complete: bool,
    /// Blocks found by the walk.
    pub blocks: u64,
    /// Free blocks found by the walk.
    pub free_blocks: u64,
    /// Allocated blocks found by the walk.
    pub allocated_blocks: u64,
    /// Bytes in free blocks, tags included.
    pub free_bytes: u64,
    /// Bytes in allocated blocks, tags included.
    pub allocated_bytes: u64,
    /// Pairs of neighbouring free blocks. Free merges with both neighbours, so only
    /// [`Heap::prealloc`](crate::rds::Heap::prealloc) creates them; not a problem.
    pub adjacent_free_pairs: u64,
}

impl CheckReport {
    /// True when no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty() && self.problems_omitted == 0
    }

    pub(crate) fn unreadable(address: u64, detail: String) -> CheckReport {
        let mut r = CheckReport::default();
        r.add(address, ProblemKind::Header, detail);
        r
    }

    fn add(&mut self, address: u64, kind: ProblemKind, detail: impl Into<String>) {
        if self.problems.len() < PROBLEMS_REPORTED_MAX {
            self.problems.push(Problem {
                address,
                kind,
                detail: detail.into(),
            });
        } else {
            self.problems_omitted += 1;
        }
    }
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} blocks ({} free, {} bytes; {} allocated, {} bytes){}",
            self.blocks,
            self.free_blocks,
            self.free_bytes,
            self.allocated_blocks,
            self.allocated_bytes,
            if self.walk_complete {
                ""
            } else {
                "; walk stopped at damage"
            }
        )?;
        for p in &self.problems {
            writeln!(f, "{p}")?;
        }
        if self.problems_omitted > 0 {
            writeln!(f, "... and {} more problems", self.problems_omitted)?;
        }
        Ok(())
    }
}

/// Blocks and bytes on one free list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListInfo {
    /// The list's number (1-based; the last one holds every larger block).
    pub list: u64,
    /// Blocks on the list.
    pub blocks: u64,
    /// Bytes in those blocks, tags included.
    pub bytes: u64,
}

/// One block, as found by walking the heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockInfo {
    /// Address of the block (its head tag).
    pub address: u64,
    /// Block length in chunks of [`HeapGeometry::chunk_size`] bytes, tags included.
    pub chunks: u64,
    /// Block length in bytes, tags included.
    pub bytes: u64,
    /// Whether the block is free or allocated.
    pub state: BlockState,
}

impl BlockInfo {
    /// The address `malloc` returned for this block.
    pub fn data_address(&self) -> u64 {
        self.address + crate::format::heap::USER_DATA_OFFSET
    }
}

/// What [`inspect_image`] finds in a heap image.
#[derive(Debug, Clone, PartialEq)]
pub struct HeapImageInfo {
    /// Address of the heap (its header), where the image is mapped.
    pub address: u64,
    /// The heap format version from the header.
    pub version: u64,
    /// The heap's geometry (chunk size, free lists, data area) from the header.
    pub geometry: HeapGeometry,
    /// The counters as stored in the header.
    pub counters: HeapCounters,
    /// Per-list histogram from walking the lists (list 1 first).
    pub lists: Vec<ListInfo>,
    /// The largest free block found by the block walk, in bytes (tags included).
    pub largest_free_block: u64,
    /// The largest allocation it could satisfy.
    pub largest_allocation: u64,
    /// 1 - largest free block / free bytes (0 when nothing is free).
    pub fragmentation: f64,
    /// The full check of the image (block counts and bytes, and any damage).
    pub check: CheckReport,
}

/// External fragmentation: the share of free bytes outside the largest free block.
pub fn fragmentation(largest_free_block: u64, free_bytes: u64) -> f64 {
    if free_bytes == 0 {
        0.0
    } else {
        1.0 - largest_free_block.min(free_bytes) as f64 / free_bytes as f64
    }
}

/// Check a byte image of a heap region mapped at `heap_address` (see [`CheckReport`]).
pub fn check_image(heap_region: &[u8], heap_address: u64) -> CheckReport {
    check_view(View::of_image(heap_region, heap_address))
}

/// Decode a heap image: header fields, counters, per-list histogram, largest free block,
/// fragmentation, and the full check. Fails only if there is no readable header.
pub fn inspect_image(heap_region: &[u8], heap_address: u64) -> Result<HeapImageInfo, Error> {
    inspect_view(View::of_image(heap_region, heap_address))
}

/// Every block of a heap image, in address order; stops with an error at damage.
pub fn blocks_image(heap_region: &[u8], heap_address: u64) -> Result<Vec<BlockInfo>, Error> {
    blocks_view(View::of_image(heap_region, heap_address))
}

/// Check the heap in `region` of a segment stored on `device` (see [`CheckReport`]), reading
/// only the pages that hold tags and links through a cache of a few MiB: memory does not grow
/// with the heap, and an empty heap of any size costs a few reads. A read error is reported as
/// a problem at the region's address.
pub fn check_device(device: &dyn Device, region: &RegionEntry) -> CheckReport {
    match inspect_device(device, region) {
        Ok(info) => info.check,
        Err(e) => CheckReport::unreadable(region.address, e.to_string()),
    }
}

/// [`inspect_image`] of the heap in `region` of a segment stored on `device`, read as
/// [`check_device`] reads it. Fails if there is no readable header or a read fails.
pub fn inspect_device(device: &dyn Device, region: &RegionEntry) -> Result<HeapImageInfo, Error> {
    inspect_device_counting(device, region).map(|(info, _)| info)
}

/// [`inspect_device`], also giving the bytes read from the device.
pub(crate) fn inspect_device_counting(
    device: &dyn Device,
    region: &RegionEntry,
) -> Result<(HeapImageInfo, u64), Error> {
    let io = |e| Error::Rvm(crate::Error::io(device.name(), "read the heap region", e));
    let image = DeviceImage::new(device, region.offset, region.length).map_err(io)?;
    let result = inspect_view(View::of_device(&image, region.address, region.length));
    if let Some(e) = image.take_error() {
        return Err(io(e));
    }
    result.map(|info| (info, image.bytes_read()))
}

pub(crate) fn blocks_view(view: View<'_>) -> Result<Vec<BlockInfo>, Error> {
    let header = read_header(&view)?;
    let r = Reader::new(view, header.geometry);
    let mut out = Vec::new();
    let mut at = r.area.start;
    while at < r.area.end {
        let b = r.block_at(at)?;
        let bytes = b.chunks * r.chunk();
        out.push(BlockInfo {
            address: at,
            chunks: b.chunks,
            bytes,
            state: b.state,
        });
        at += bytes;
    }
    Ok(out)
}

struct Scan {
    report: CheckReport,
    lists: Vec<ListInfo>,
    largest_free_chunks: u64,
}

fn bit(bits: &[u64], i: u64) -> bool {
    bits.get((i / 64) as usize)
        .is_some_and(|w| w >> (i % 64) & 1 == 1)
}

fn set_bit(bits: &mut [u64], i: u64) {
    if let Some(w) = bits.get_mut((i / 64) as usize) {
        *w |= 1 << (i % 64);
    }
}

/// Most memory the checker's two membership bitmaps may take (one bit per chunk each): enough
/// for a 4 GiB heap of 32-byte chunks. A larger heap is checked without them (see `scan`).
const BITMAP_BYTES_MAX: u64 = 32 << 20;

fn scan(r: &Reader<'_>, counters: &HeapCounters) -> Scan {
    scan_within(r, counters, BITMAP_BYTES_MAX)
}

/// The checker. With bitmaps (`bitmap_bytes_max` allows them), every list entry is matched
/// against the block walk and every free block on no list is named. Without (a heap too large
/// for the memory bound), list entries are judged by their tags, a cycle or a block on two lists
/// still shows as a wrong prev link or size class, and free blocks on no list are counted.
fn scan_within(r: &Reader<'_>, counters: &HeapCounters, bitmap_bytes_max: u64) -> Scan {
    let g = r.geometry;
    let ch = g.chunk_size;
    let mut rep = CheckReport::default();
    let mut lists = Vec::with_capacity(g.nlists as usize);
    let mut largest = 0;
    // One bit per chunk: set where a free block starts (from the block walk), and where a
    // block was met on a list walk. Allocated zeroed (untouched pages cost nothing), and only
    // when they fit the memory bound.
    let words = g.chunk_count.div_ceil(64);
    let exact = words.saturating_mul(16) <= bitmap_bytes_max;
    let words = if exact { words as usize } else { 0 };
    let mut free_starts = vec![0u64; words];
    let mut on_list = vec![0u64; words];
    let mut listed_blocks = 0u64;
    let index = |address: u64| (address - r.area.start) / ch;

    // 1. Walk every block by its size.
    let mut at = r.area.start;
    let mut previous_free = false;
    while at < r.area.end {
        match r.block_at(at) {
            Ok(b) => {
                let bytes = b.chunks * ch;
                rep.blocks += 1;
                match b.state {
                    BlockState::Free => {
                        rep.free_blocks += 1;
                        rep.free_bytes += bytes;
                        set_bit(&mut free_starts, index(at));
                        largest = largest.max(b.chunks);
                        if previous_free {
                            rep.adjacent_free_pairs += 1;
                        }
                    }
                    BlockState::Allocated => {
                        rep.allocated_blocks += 1;
                        rep.allocated_bytes += bytes;
                    }
                }
                previous_free = b.state == BlockState::Free;
                at += bytes;
            }
            Err(e) => {
                rep.add(at, ProblemKind::Tag, e.to_string());
                break;
            }
        }
    }
    rep.walk_complete = at >= r.area.end;
    let walked_to = at;

    // 2. Walk every list: each entry must be a free block of the list's size class, with a
    // prev link naming the entry before it, and on no other list.
    for list in 1..=g.nlists {
        let mut info = ListInfo {
            list,
            ..ListInfo::default()
        };
        let mut prev = 0u64;
        let mut cur = match r.list_head(list) {
            Ok(h) => h,
            Err(e) => {
                rep.add(r.list_address(list), ProblemKind::Header, e.to_string());
                lists.push(info);
                continue;
            }
        };
        let mut steps = 0u64;
        while cur != 0 {
            steps += 1;
            if steps > g.chunk_count {
                rep.add(
                    cur,
                    ProblemKind::List,
                    format!("list {list} is longer than the heap"),
                );
                break;
            }
            let is_free_block = r.on_chunk_boundary(cur)
                && if exact && cur < walked_to {
                    bit(&free_starts, index(cur))
                } else {
                    // Past the damage that stopped the block walk: judge by the tags alone.
                    r.block_at(cur).is_ok_and(|b| b.state == BlockState::Free)
                };
            let from = if prev == 0 {
                format!("the head of list {list}")
            } else {
                format!("{prev:#x}")
            };
            if !is_free_block {
                rep.add(
                    cur,
                    ProblemKind::Link,
                    format!("{from} links to {cur:#x}, which is not a free block"),
                );
                break;
            }
            if exact && bit(&on_list, index(cur)) {
                rep.add(
                    cur,
                    ProblemKind::List,
                    format!("reached again from {from} (a cycle, or on two lists)"),
                );
                break;
            }
            set_bit(&mut on_list, index(cur));
            let chunks = r.block_at(cur).map(|b| b.chunks).unwrap_or(0);
            if g.list_for(chunks) != list {
                rep.add(
                    cur,
                    ProblemKind::List,
                    format!(
                        "free block of {chunks} chunks is on list {list}, it belongs on list {}",
                        g.list_for(chunks)
                    ),
                );
            }
            info.blocks += 1;
            info.bytes += chunks * ch;
            listed_blocks += 1;
            largest = largest.max(chunks);
            match r.word(cur + FREE_PREV_OFFSET) {
                Ok(p) if p == prev => {}
                Ok(p) => {
                    rep.add(
                        cur,
                        ProblemKind::Link,
                        format!("prev link is {p:#x}, expected {prev:#x}"),
                    );
                    if !exact {
                        // Without the bitmap a cycle shows only as this: stop here.
                        break;
                    }
                }
                Err(e) => rep.add(cur, ProblemKind::Link, e.to_string()),
            }
            prev = cur;
            cur = match r.word(cur + FREE_NEXT_OFFSET) {
                Ok(n) => n,
                Err(e) => {
                    rep.add(cur, ProblemKind::Link, e.to_string());
                    break;
                }
            };
        }
        lists.push(info);
    }

    // 3. Every free block the walk found must be on a list.
    for (w, (free, listed)) in free_starts.iter().zip(&on_list).enumerate() {
        let mut lost = free & !listed;
        while lost != 0 {
            let i = w as u64 * 64 + lost.trailing_zeros() as u64;
            lost &= lost - 1;
            let address = r.area.start + i * ch;
            let chunks = r.block_at(address).map(|b| b.chunks).unwrap_or(0);
            rep.add(
                address,
                ProblemKind::List,
                format!("free block of {chunks} chunks is on no list (lost)"),
            );
        }
    }

    if !exact && rep.walk_complete && listed_blocks < rep.free_blocks {
        rep.add(
            r.base,
            ProblemKind::List,
            format!(
                "{} free blocks are on no list (lost); the heap is too large to name them \
                 within the checker's memory bound",
                rep.free_blocks - listed_blocks
            ),
        );
    }

    // 4. The header's byte accounting must match the blocks.
    if rep.walk_complete {
        if counters.free_bytes != rep.free_bytes {
            rep.add(
                r.base,
                ProblemKind::Accounting,
                format!(
                    "header counts {} free bytes, the blocks hold {}",
                    counters.free_bytes, rep.free_bytes
                ),
            );
        }
        if counters.allocated_bytes != rep.allocated_bytes {
            rep.add(
                r.base,
                ProblemKind::Accounting,
                format!(
                    "header counts {} allocated bytes, the blocks hold {}",
                    counters.allocated_bytes, rep.allocated_bytes
                ),
            );
        }
    }
    Scan {
        report: rep,
        lists,
        largest_free_chunks: largest,
    }
}

pub(crate) fn check_view(view: View<'_>) -> CheckReport {
    let header = match read_header(&view) {
        Ok(h) => h,
        Err(e) => return CheckReport::unreadable(view.address(), e.to_string()),
    };
    let r = Reader::new(view, header.geometry);
    scan(&r, &header.counters).report
}

pub(crate) fn inspect_view(view: View<'_>) -> Result<HeapImageInfo, Error> {
    let header = read_header(&view)?;
    let g = header.geometry;
    let r = Reader::new(view, g);
    let s = scan(&r, &header.counters);
    let largest_free_block = s.largest_free_chunks * g.chunk_size;
    Ok(HeapImageInfo {
        address: view.address(),
        version: header.version,
        geometry: g,
        counters: header.counters,
        lists: s.lists,
        largest_free_block,
        largest_allocation: g.usable_bytes(s.largest_free_chunks),
        fragmentation: fragmentation(largest_free_block, s.report.free_bytes),
        check: s.report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::device::{DeviceRef, MemDevice};
    use crate::rds::{create_heap_segment_on, Heap, HeapLayout};
    use crate::{BeginMode, CommitMode, MapOptions, Options, Rvm};

    const ADDRESS: u64 = 0x2a00_0000_0000;

    /// A heap region image with allocated and free blocks, made by the library.
    fn heap_image() -> Vec<u8> {
        let layout = HeapLayout {
            start_address: ADDRESS,
            heap_length: 64 << 10,
            static_length: 4096,
            nlists: 8,
            chunk_size: 64,
        };
        let log: DeviceRef = Arc::new(MemDevice::new("log", Vec::new()));
        let data: DeviceRef = Arc::new(MemDevice::new("data", Vec::new()));
        Rvm::init_log_on(&*log, 1 << 20).unwrap();
        let rvm = Rvm::open_device(log, Options::default().segment_device(data.clone())).unwrap();
        // SAFETY: memory devices lend no descriptor to map; their regions are read into
        // anonymous memory, which nothing can shorten.
        unsafe { create_heap_segment_on(&rvm, data.clone(), layout.segment_length_min(), &layout) }
            .unwrap();
        // SAFETY: as above.
        let segment = unsafe { rvm.map_device(data, MapOptions::default()) }.unwrap();
        let heap = Heap::load(&segment).unwrap();
        let mut tx = rvm.begin(BeginMode::Restore).unwrap();
        let blocks: Vec<usize> = (0..12)
            .map(|i| heap.malloc(&mut tx, 100 + 50 * i).unwrap())
            .collect();
        for b in blocks.iter().step_by(3) {
            heap.free(&mut tx, *b).unwrap();
        }
        tx.end(CommitMode::Flush).unwrap();
        let mut image = vec![0u8; 64 << 10];
        segment.read_bytes(ADDRESS as usize, &mut image).unwrap();
        image
    }

    /// Issue 12 item 8: the membership bitmaps grew with the heap. Without them (a heap too
    /// large for the memory bound), a sound heap still passes and a lost free block is still
    /// found.
    #[test]
    fn without_bitmaps_the_checker_still_finds_lost_blocks() {
        let mut image = heap_image();
        let check = |image: &[u8], budget: u64| {
            let view = View::of_image(image, ADDRESS);
            let header = read_header(&view).unwrap();
            scan_within(
                &Reader::new(view, header.geometry),
                &header.counters,
                budget,
            )
            .report
        };
        let exact = check(&image, BITMAP_BYTES_MAX);
        assert!(exact.is_ok(), "{exact}");
        assert_eq!(check(&image, 0), exact);
        // Empty every list: every free block is lost.
        let view = View::of_image(&image, ADDRESS);
        let g = read_header(&view).unwrap().geometry;
        for list in 1..=g.nlists {
            let at = crate::format::heap::list_offset(list) as usize;
            image[at..at + 8].fill(0);
        }
        let exact = check(&image, BITMAP_BYTES_MAX);
        let bounded = check(&image, 0);
        assert!(exact.free_blocks > 0);
        let lost = exact
            .problems
            .iter()
            .filter(|p| p.detail.contains("on no list"))
            .count() as u64;
        assert_eq!(lost, exact.free_blocks, "{exact}");
        assert!(
            bounded.problems.iter().any(|p| p
                .detail
                .contains(&format!("{} free blocks are on no list", exact.free_blocks))),
            "{bounded}"
        );
    }
}
