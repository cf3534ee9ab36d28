//! The heap's read-only calls: statistics, the checker, the inspector, the block walk, block
//! sizes. Each holds the heap's lock for its own length (never waits for a transaction), so it
//! sees a consistent heap: every block allocated by committed or open transactions, none freed
//! by an open one. Block sizes ([`Heap::usable_size`]) are checked without the lock first and
//! under it only when that check fails (`block_read.rs`), with the same answers.

use crate::rds::check::{self, BlockInfo, CheckReport, HeapImageInfo, ListInfo};
use crate::rds::view::View;
use crate::rds::Error;

use super::Heap;

/// Counters and list shape of a heap (see [`Heap::statistics`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeapStatistics {
    /// Length of the heap region in bytes.
    pub heap_length: u64,
    /// Allocation granularity in bytes.
    pub chunk_size: u64,
    /// Number of exact-size free lists (the last holds every larger block).
    pub nlists: u64,
    /// Bytes available to blocks (whole chunks after the header).
    pub capacity_bytes: u64,
    /// Bytes in free blocks (tags included).
    pub free_bytes: u64,
    /// Bytes in allocated blocks (tags included).
    pub allocated_bytes: u64,
    /// Successful `malloc` calls.
    pub malloc_count: u64,
    /// Successful `free` calls.
    pub free_count: u64,
    /// Blocks created by `prealloc`.
    pub prealloc_count: u64,
    /// Merges of a freed block with a free neighbour.
    pub coalesce_count: u64,
    /// Allocations served by the head of their exact-size list.
    pub exact_hits: u64,
    /// Allocations served from the list of large blocks.
    pub large_hits: u64,
    /// Allocations served by splitting a block of a larger exact-size list.
    pub splits: u64,
    /// One entry per list (list 1 first): blocks and bytes on it.
    pub lists: Vec<ListInfo>,
    /// Number of free blocks.
    pub free_blocks: u64,
    /// The largest free block in bytes (tags included).
    pub largest_free_block: u64,
    /// The largest allocation that would succeed now ([`Heap::maxblock`]).
    pub largest_allocation: u64,
    /// External fragmentation: 1 - largest free block / free bytes (0 when nothing is free).
    pub fragmentation: f64,
    /// Set when damage stopped the list walk early; the figures above are then partial.
    pub damage: Option<String>,
    /// Blocks allocated by transactions still open (freed again if they abort; leaked if
    /// the process crashes before they commit).
    pub open_allocations: u64,
    /// Blocks that open transactions will free when they commit (allocated until then).
    pub open_frees: u64,
}

impl Heap {
    /// The largest allocation that would succeed now, in bytes (0 if none, or if the heap is
    /// damaged or unmapped).
    pub fn maxblock(&self) -> usize {
        self.read_indexed(|c| {
            let largest = c.largest_free_chunks()?;
            Ok(c.geometry().usable_bytes(largest) as usize)
        })
        .unwrap_or(0)
    }

    /// Counters from the header plus the shape of the free lists (walked, O(free blocks)).
    pub fn statistics(&self) -> HeapStatistics {
        let mut st = self.lock_state();
        let open_allocations = st.pending.allocations_open() as u64;
        let open_frees = st.pending.frees_open() as u64;
        let result = self.locked_ctx(&mut st, true, |c| {
            let g = c.geometry();
            let counters = c.counters;
            let mut s = HeapStatistics {
                heap_length: g.heap_length,
                chunk_size: g.chunk_size,
                nlists: g.nlists,
                capacity_bytes: g.chunk_count * g.chunk_size,
                free_bytes: counters.free_bytes,
                allocated_bytes: counters.allocated_bytes,
                malloc_count: counters.malloc_count,
                free_count: counters.free_count,
                prealloc_count: counters.prealloc_count,
                coalesce_count: counters.coalesce_count,
                exact_hits: counters.exact_hits,
                large_hits: counters.large_hits,
                splits: counters.splits,
                open_allocations,
                open_frees,
                ..HeapStatistics::default()
            };
            let mut largest = 0;
            for list in 1..=g.nlists {
                let mut info = ListInfo {
                    list,
                    blocks: 0,
                    bytes: 0,
                };
                let walked = c.r.walk_list(list, |b| {
                    info.blocks += 1;
                    info.bytes += b.chunks * g.chunk_size;
                    largest = largest.max(b.chunks);
                    true
                });
                s.free_blocks += info.blocks;
                s.lists.push(info);
                if let Err(e) = walked {
                    s.damage.get_or_insert(e.to_string());
                }
            }
            s.largest_free_block = largest * g.chunk_size;
            s.largest_allocation = g.usable_bytes(largest);
            s.fragmentation = check::fragmentation(s.largest_free_block, s.free_bytes);
            Ok(s)
        });
        result.unwrap_or_else(|e| HeapStatistics {
            damage: Some(e.to_string()),
            ..HeapStatistics::default()
        })
    }

    /// Full consistency check: every block's tags, every list's links and membership, and the
    /// byte accounting. Each problem is reported with its address.
    pub fn check(&self) -> CheckReport {
        let st = self.lock_state();
        let mapped = match self.mapped() {
            Ok(m) => m,
            Err(e) => return CheckReport::unreadable(self.shared.base, e.to_string()),
        };
        // SAFETY: the region stays mapped while `mapped` is held.
        let view = unsafe { View::of_mapped(self.shared.base, self.shared.length) };
        let report = check::check_view(view);
        drop(mapped);
        drop(st);
        report
    }

    /// Header, counters, per-list histogram and largest free block (a full walk, like
    /// [`inspect_image`](crate::rds::inspect_image) on the mapped region).
    ///
    /// # Errors
    /// [`Error::Corrupt`] for a damaged header; `NotMapped` (in [`Error::Rvm`]).
    pub fn inspect(&self) -> Result<HeapImageInfo, Error> {
        let _st = self.lock_state();
        let _mapped = self.mapped()?;
        // SAFETY: the region stays mapped while `_mapped` is held.
        let view = unsafe { View::of_mapped(self.shared.base, self.shared.length) };
        check::inspect_view(view)
    }

    /// Every block in address order (a full walk; stops with an error at damage).
    ///
    /// # Errors
    /// [`Error::Corrupt`] at the first damaged block; `NotMapped` (in [`Error::Rvm`]).
    pub fn blocks(&self) -> Result<Vec<BlockInfo>, Error> {
        let _st = self.lock_state();
        let _mapped = self.mapped()?;
        // SAFETY: the region stays mapped while `_mapped` is held.
        let view = unsafe { View::of_mapped(self.shared.base, self.shared.length) };
        check::blocks_view(view)
    }

    /// Bytes the caller may use in the allocated block whose data starts at `address`.
    ///
    /// # Errors
    /// [`Error::NotFromHeap`] or [`Error::DoubleFree`] unless `address` is the data of an
    /// allocated block; `NotMapped` (in [`Error::Rvm`]).
    pub fn usable_size(&self, address: usize) -> Result<usize, Error> {
        self.read_block(address, 0, &mut [])
    }
}
