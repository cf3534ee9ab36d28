//! Validated reads of heap structures: blocks, list links, list heads. Every pointer read
//! from the heap is checked (inside the block area, on a chunk boundary, tags at both ends
//! agreeing) before anything is read through it, so damage is reported, never followed.

use crate::format::heap::HEAP_FORMAT_VERSION;
use crate::format::heap::{
    foot_word, head_word, list_offset, BlockState, HeapGeometry, HeapHeader, Tag, TagEnd,
    COUNTERS_OFFSET, COUNTERS_WORDS, FREE_NEXT_OFFSET, FREE_PREV_OFFSET, HEADER_FIXED_SIZE,
    TAG_SIZE, USER_DATA_OFFSET,
};
use crate::rds::view::View;
use crate::rds::Error;

/// A block whose tags have been checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Block {
    pub address: u64,
    pub chunks: u64,
    pub state: BlockState,
}

/// A free block whose tags have been checked, with its list links (not yet checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FreeBlock {
    pub address: u64,
    pub chunks: u64,
    pub prev: u64,
    pub next: u64,
}

pub(crate) fn corrupt(address: u64, detail: impl Into<String>) -> Error {
    Error::Corrupt {
        address,
        detail: detail.into(),
    }
}

/// Decode and validate the fixed header at the start of `view`, mapping each failure to the
/// error a user expects (no heap, version skew, damage).
pub(crate) fn read_header(view: &View<'_>) -> Result<HeapHeader, Error> {
    let address = view.address();
    let mut fixed = [0u8; HEADER_FIXED_SIZE];
    if view.read(address, &mut fixed).is_none() {
        return Err(Error::NoHeap {
            address,
            reason: format!(
                "the region is {} bytes, shorter than a heap header",
                view.length()
            ),
        });
    }
    let header = HeapHeader::decode(&fixed).map_err(|e| match e.field {
        "magic" => Error::NoHeap {
            address,
            reason: e.detail.clone(),
        },
        "version" => Error::VersionSkew {
            address,
            found: u64::from_le_bytes(fixed[8..16].try_into().unwrap_or_default()),
            expected: HEAP_FORMAT_VERSION,
        },
        _ => corrupt(address, format!("heap header: {e}")),
    })?;
    if header.geometry.heap_length > view.length() {
        return Err(corrupt(
            address,
            format!(
                "the header says the heap is {} bytes but its region is {} bytes",
                header.geometry.heap_length,
                view.length()
            ),
        ));
    }
    Ok(header)
}

/// Where a heap's blocks lie: what checking a block needs besides the memory. Plain numbers
/// (no view), so a heap can keep one to check blocks without its lock (`heap/block_read.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockArea {
    /// Absolute address of the first block.
    pub start: u64,
    /// Absolute address just past the last whole chunk.
    pub end: u64,
    chunk_size: u64,
    /// `chunk_size - 1` when the chunk size is a power of two (the usual case), so chunk
    /// boundaries are checked with a mask instead of a division; 0 otherwise.
    chunk_mask: u64,
}

impl BlockArea {
    /// The block area of a heap of `geometry` whose region starts at `base`.
    pub(crate) fn new(base: u64, geometry: &HeapGeometry) -> BlockArea {
        BlockArea {
            start: base + geometry.blocks_offset,
            end: base + geometry.blocks_end(),
            chunk_size: geometry.chunk_size,
            chunk_mask: if geometry.chunk_size.is_power_of_two() {
                geometry.chunk_size - 1
            } else {
                0
            },
        }
    }

    /// The length in chunks of the allocated block whose user data starts at `address`, if
    /// [`Reader::allocated_block`] would accept it; `None` for anything else, without saying
    /// why (the caller asks that function when this one refuses). The same checks: inside the
    /// block area, on a chunk boundary, a head tag saying allocated, a size that ends inside
    /// the block area, and the foot tag that goes with it.
    #[inline]
    pub(crate) fn allocated_chunks(&self, view: &View<'_>, address: u64) -> Option<u64> {
        let block = address.checked_sub(USER_DATA_OFFSET)?;
        if !self.on_chunk_boundary(block) {
            return None;
        }
        let Some(Tag::Head {
            state: BlockState::Allocated,
            chunks,
        }) = Tag::from_word(view.word(block)?)
        else {
            return None;
        };
        let block_end = chunks
            .checked_mul(self.chunk_size)
            .and_then(|bytes| block.checked_add(bytes))
            .filter(|e| *e <= self.end)?;
        if view.word(block_end - TAG_SIZE)? != foot_word(BlockState::Allocated, chunks) {
            return None;
        }
        Some(chunks)
    }

    /// Whether `offset` (from the first block) is a multiple of the chunk size.
    #[inline]
    fn is_chunk_multiple(&self, offset: u64) -> bool {
        if self.chunk_mask != 0 {
            offset & self.chunk_mask == 0
        } else {
            offset.is_multiple_of(self.chunk_size)
        }
    }

    /// Whether `address` is a chunk boundary inside the block area.
    #[inline]
    fn on_chunk_boundary(&self, address: u64) -> bool {
        address >= self.start && address < self.end && self.is_chunk_multiple(address - self.start)
    }
}

/// Read-only access to one heap's structures.
#[derive(Clone, Copy)]
pub(crate) struct Reader<'v> {
    pub view: View<'v>,
    pub geometry: HeapGeometry,
    /// Absolute address of the heap region.
    pub base: u64,
    /// Where the blocks lie (`start`, `end`, chunk boundaries).
    pub area: BlockArea,
}

impl<'v> Reader<'v> {
    pub(crate) fn new(view: View<'v>, geometry: HeapGeometry) -> Reader<'v> {
        let base = view.address();
        Reader {
            view,
            geometry,
            base,
            area: BlockArea::new(base, &geometry),
        }
    }

    pub(crate) fn chunk(&self) -> u64 {
        self.geometry.chunk_size
    }

    #[inline]
    pub(crate) fn word(&self, at: u64) -> Result<u64, Error> {
        match self.view.word(at) {
            Some(w) => Ok(w),
            None => Err(outside(at)),
        }
    }

    /// The counters as stored (see [`crate::format::heap::counter`] for their order).
    #[inline]
    pub(crate) fn counter_words(&self) -> Result<[u64; COUNTERS_WORDS], Error> {
        self.view
            .words::<COUNTERS_WORDS>(self.base + COUNTERS_OFFSET)
            .ok_or_else(|| corrupt(self.base, "heap header is cut short"))
    }

    /// Absolute address of list `list`'s head pointer.
    #[inline]
    pub(crate) fn list_address(&self, list: u64) -> u64 {
        self.base + list_offset(list)
    }

    #[inline]
    pub(crate) fn list_head(&self, list: u64) -> Result<u64, Error> {
        self.word(self.list_address(list))
    }

    /// Whether `address` is a chunk boundary inside the block area.
    #[inline]
    pub(crate) fn on_chunk_boundary(&self, address: u64) -> bool {
        self.area.on_chunk_boundary(address)
    }

    /// The head tag at `at`: the block's state and length in chunks.
    #[inline]
    pub(crate) fn head(&self, at: u64) -> Result<(BlockState, u64), Error> {
        match self.view.word(at).and_then(Tag::from_word) {
            Some(Tag::Head { state, chunks }) => Ok((state, chunks)),
            _ => Err(self.tag_error(at, TagEnd::Head)),
        }
    }

    /// The foot tag at `at`: the block's state and length in chunks.
    #[inline]
    pub(crate) fn foot(&self, at: u64) -> Result<(BlockState, u64), Error> {
        match self.view.word(at).and_then(Tag::from_word) {
            Some(Tag::Foot { state, chunks }) => Ok((state, chunks)),
            _ => Err(self.tag_error(at, TagEnd::Foot)),
        }
    }

    /// Why [`Reader::tag`] refused the word at `at`.
    #[cold]
    #[inline(never)]
    fn tag_error(&self, at: u64, end: TagEnd) -> Error {
        let word = match self.word(at) {
            Ok(w) => w,
            Err(e) => return e,
        };
        match Tag::decode(word) {
            Err(e) => corrupt(at, e.detail),
            Ok(tag) => corrupt(
                at,
                format!("found a {:?} tag where a {end:?} tag belongs", tag.end()),
            ),
        }
    }

    /// Where a block of `chunks` chunks starting at `address` ends, if it ends inside the
    /// block area.
    #[inline]
    fn block_end(&self, address: u64, chunks: u64) -> Option<u64> {
        chunks
            .checked_mul(self.chunk())
            .and_then(|bytes| address.checked_add(bytes))
            .filter(|e| *e <= self.area.end)
    }

    /// The block starting at `address`: head tag, size inside the heap, matching foot tag.
    #[inline(always)]
    pub(crate) fn block_at(&self, address: u64) -> Result<Block, Error> {
        if !self.on_chunk_boundary(address) {
            return Err(self.not_a_boundary(address));
        }
        let (state, chunks) = self.head(address)?;
        let Some(block_end) = self.block_end(address, chunks) else {
            return Err(runs_past_the_end(address, chunks));
        };
        self.check_foot(address, block_end, state, chunks)?;
        Ok(Block {
            address,
            chunks,
            state,
        })
    }

    /// The foot tag of the block at `address` (ending at `block_end`) must give the state and
    /// the length its head gives.
    #[inline]
    fn check_foot(
        &self,
        address: u64,
        block_end: u64,
        state: BlockState,
        chunks: u64,
    ) -> Result<(), Error> {
        let foot_at = block_end - TAG_SIZE;
        let foot = self.foot(foot_at)?;
        if foot != (state, chunks) {
            return Err(foot_mismatch(address, foot_at, foot, (state, chunks)));
        }
        Ok(())
    }

    /// The head tag at `address` of the allocated block whose foot tag, at `foot_at`, gives
    /// its length `chunks` (the caller checked that the block starts inside the block area)
    /// must agree: allocated, the same length. The error names the foot, the tag that made
    /// the caller look here.
    #[inline]
    pub(crate) fn check_allocated_head(
        &self,
        address: u64,
        chunks: u64,
        foot_at: u64,
    ) -> Result<(), Error> {
        if self.view.word(address) == Some(head_word(BlockState::Allocated, chunks)) {
            return Ok(());
        }
        Err(self.tags_disagree(foot_at, TagEnd::Foot, chunks, address))
    }

    /// The allocated block at `address` whose head tag gives its length `chunks` must end
    /// inside the block area, with a foot tag that agrees: allocated, the same length. The
    /// error names the head, the tag that made the caller look there.
    #[inline]
    pub(crate) fn check_allocated_foot(&self, address: u64, chunks: u64) -> Result<(), Error> {
        let Some(block_end) = self.block_end(address, chunks) else {
            return Err(runs_past_the_end(address, chunks));
        };
        let foot_at = block_end - TAG_SIZE;
        if self.view.word(foot_at) == Some(foot_word(BlockState::Allocated, chunks)) {
            return Ok(());
        }
        Err(self.tags_disagree(address, TagEnd::Head, chunks, foot_at))
    }

    /// The tag at `near` (its `near_end`) says its block is allocated and `chunks` long, but
    /// the block's other tag, at `other`, does not say so.
    #[cold]
    #[inline(never)]
    fn tags_disagree(&self, near: u64, near_end: TagEnd, chunks: u64, other: u64) -> Error {
        let (near_name, other_name) = match near_end {
            TagEnd::Head => ("head", "foot"),
            TagEnd::Foot => ("foot", "head"),
        };
        let found = match self.view.word(other).map(Tag::decode) {
            None => "outside the heap region".to_string(),
            Some(Ok(tag)) => format!(
                "a {:?} tag ({:?}, {} chunks)",
                tag.end(),
                tag.state(),
                tag.chunks()
            ),
            Some(Err(e)) => format!("not a tag: {}", e.detail),
        };
        corrupt(
            near,
            format!(
                "{near_name} tag of an allocated block of {chunks} chunks, but where its \
                 {other_name} tag belongs, at {other:#x}, is {found}"
            ),
        )
    }

    #[cold]
    #[inline(never)]
    fn not_a_boundary(&self, address: u64) -> Error {
        corrupt(
            address,
            format!(
                "not a chunk boundary inside the block area {:#x}..{:#x}",
                self.area.start, self.area.end
            ),
        )
    }

    /// A free block on list `list` that is only linked to, not resized: its head tag must
    /// say free with a size of that list's class that fits in the heap, which makes its link
    /// words (in the same cache line as the tag) safe to read and write. The foot is not read.
    #[inline(always)]
    pub(crate) fn linked_block(&self, address: u64, list: u64) -> Result<FreeBlock, Error> {
        if !self.on_chunk_boundary(address) {
            return Err(self.bad_link(address, list));
        }
        // The head tag and both links are the block's first three words: one read (one
        // bounds check) when they lie in the region; the links are used only once the head
        // is found to be a free block's.
        const _: () = assert!(FREE_PREV_OFFSET == TAG_SIZE && FREE_NEXT_OFFSET == 2 * TAG_SIZE);
        let Some([head, prev, next]) = self.view.words::<3>(address) else {
            return self.linked_block_word_by_word(address, list);
        };
        let chunks = match Tag::from_word(head) {
            Some(Tag::Head {
                state: BlockState::Free,
                chunks,
            }) => chunks,
            Some(Tag::Head { .. }) => return Err(links_to_allocated(address, list)),
            _ => return Err(self.tag_error(address, TagEnd::Head)),
        };
        self.check_linked_free(address, chunks, list)?;
        Ok(FreeBlock {
            address,
            chunks,
            prev,
            next,
        })
    }

    /// A free block of `chunks` chunks at `address`, found on list `list`: it must end inside
    /// the heap and belong on that list.
    #[inline(always)]
    fn check_linked_free(&self, address: u64, chunks: u64, list: u64) -> Result<(), Error> {
        if self.block_end(address, chunks).is_none() {
            return Err(runs_past_the_end(address, chunks));
        }
        let belongs = self.geometry.list_for(chunks);
        if belongs != list {
            return Err(wrong_list(address, chunks, list, belongs));
        }
        Ok(())
    }

    /// [`Reader::linked_block`] when its three words do not all lie in the region: each
    /// word read and checked in turn, for the error of the first that fails.
    #[cold]
    #[inline(never)]
    fn linked_block_word_by_word(&self, address: u64, list: u64) -> Result<FreeBlock, Error> {
        let (state, chunks) = self.head(address)?;
        if state != BlockState::Free {
            return Err(links_to_allocated(address, list));
        }
        self.check_linked_free(address, chunks, list)?;
        Ok(FreeBlock {
            address,
            chunks,
            prev: self.word(address + FREE_PREV_OFFSET)?,
            next: self.word(address + FREE_NEXT_OFFSET)?,
        })
    }

    #[cold]
    #[inline(never)]
    fn bad_link(&self, address: u64, list: u64) -> Error {
        corrupt(
            address,
            format!(
                "list {list} links to {address:#x}, not a chunk boundary inside the block area \
                 {:#x}..{:#x}",
                self.area.start, self.area.end
            ),
        )
    }

    /// The free block at `address`, which must belong on list `list`, with its foot tag
    /// checked too: for blocks whose size the caller relies on (to split, merge or take).
    #[inline]
    pub(crate) fn free_block(&self, address: u64, list: u64) -> Result<FreeBlock, Error> {
        let b = self.linked_block(address, list)?;
        self.check_free_foot(&b)?;
        Ok(b)
    }

    /// The foot of free block `b` (whose head [`Reader::linked_block`] checked) must match.
    #[inline]
    fn check_free_foot(&self, b: &FreeBlock) -> Result<(), Error> {
        // linked_block checked that the block ends inside the block area.
        let block_end = b.address + b.chunks * self.chunk();
        self.check_foot(b.address, block_end, BlockState::Free, b.chunks)
    }

    /// Check that `b`'s neighbours on list `list` link back to it.
    pub(crate) fn check_links(&self, b: &FreeBlock, list: u64) -> Result<(), Error> {
        if b.prev == 0 {
            let head = self.list_head(list)?;
            if head != b.address {
                return Err(corrupt(
                    b.address,
                    format!("free block has no prev link but list {list} starts at {head:#x}"),
                ));
            }
        } else {
            let p = self.linked_block(b.prev, list)?;
            if p.next != b.address {
                return Err(corrupt(
                    p.address,
                    format!("next link is {:#x}, expected {:#x}", p.next, b.address),
                ));
            }
        }
        self.check_next_link(b, list)
    }

    /// Check that `b`'s successor on list `list` (if any) links back to it.
    #[inline]
    fn check_next_link(&self, b: &FreeBlock, list: u64) -> Result<(), Error> {
        if b.next != 0 {
            let n = self.linked_block(b.next, list)?;
            if n.prev != b.address {
                return Err(corrupt(
                    n.address,
                    format!("prev link is {:#x}, expected {:#x}", n.prev, b.address),
                ));
            }
        }
        Ok(())
    }

    /// The first block of list `list`, fully checked with its links: for taking it.
    #[inline]
    pub(crate) fn checked_head(&self, list: u64) -> Result<Option<FreeBlock>, Error> {
        match self.head_for_push(list)? {
            Some(b) => {
                self.check_free_foot(&b)?;
                // head_for_push found it at the head of the list with no prev link.
                self.check_next_link(&b, list)?;
                Ok(Some(b))
            }
            None => Ok(None),
        }
    }

    /// The first block of list `list`, checked enough to link a new block in front of it.
    #[inline(always)]
    pub(crate) fn head_for_push(&self, list: u64) -> Result<Option<FreeBlock>, Error> {
        let head = self.list_head(list)?;
        if head == 0 {
            return Ok(None);
        }
        let b = self.linked_block(head, list)?;
        if b.prev != 0 {
            return Err(corrupt(
                head,
                format!("first block of list {list} has prev link {:#x}", b.prev),
            ));
        }
        Ok(Some(b))
    }

    /// Walk list `list` from its head, checking every block and back link, calling `visit` for
    /// each; stops early when `visit` returns false. Cycles cannot go unnoticed: every block's
    /// prev link must name the block the walk came from, and a cycle would reach some block
    /// from a second predecessor.
    pub(crate) fn walk_list(
        &self,
        list: u64,
        mut visit: impl FnMut(&FreeBlock) -> bool,
    ) -> Result<(), Error> {
        let mut prev = 0;
        let mut cur = self.list_head(list)?;
        let mut steps = 0u64;
        while cur != 0 {
            let b = self.linked_block(cur, list)?;
            if b.prev != prev {
                return Err(corrupt(
                    cur,
                    format!("prev link is {:#x}, expected {prev:#x}", b.prev),
                ));
            }
            steps += 1;
            if steps > self.geometry.chunk_count {
                return Err(corrupt(cur, format!("list {list} is longer than the heap")));
            }
            if !visit(&b) {
                return Ok(());
            }
            prev = cur;
            cur = b.next;
        }
        Ok(())
    }

    /// The allocated block whose user data starts at `address`. Distinguishes addresses that
    /// cannot be from this heap, blocks already free, and damaged blocks.
    pub(crate) fn allocated_block(&self, address: u64) -> Result<Block, Error> {
        let not_from_heap = |reason: String| Error::NotFromHeap { address, reason };
        if address < self.area.start + USER_DATA_OFFSET || address >= self.area.end {
            return Err(not_from_heap(format!(
                "outside the heap's blocks {:#x}..{:#x}",
                self.area.start, self.area.end
            )));
        }
        let block = address - USER_DATA_OFFSET;
        if !self.area.is_chunk_multiple(block - self.area.start) {
            return Err(not_from_heap(format!(
                "no block starts there (blocks are {}-byte chunks from {:#x}, and data starts \
                 {USER_DATA_OFFSET} bytes into a block)",
                self.chunk(),
                self.area.start
            )));
        }
        let Some(Tag::Head { state, .. }) = Tag::from_word(self.word(block)?) else {
            return Err(not_from_heap(format!("no block header at {block:#x}")));
        };
        if state == BlockState::Free {
            return Err(Error::DoubleFree { address });
        }
        self.block_at(block)
    }
}

#[cold]
#[inline(never)]
fn outside(at: u64) -> Error {
    corrupt(at, "pointer leads outside the heap region")
}

#[cold]
#[inline(never)]
fn runs_past_the_end(address: u64, chunks: u64) -> Error {
    corrupt(
        address,
        format!("block of {chunks} chunks runs past the end of the heap"),
    )
}

#[cold]
#[inline(never)]
fn foot_mismatch(
    address: u64,
    foot_at: u64,
    foot: (BlockState, u64),
    head: (BlockState, u64),
) -> Error {
    corrupt(
        foot_at,
        format!(
            "foot tag ({:?}, {} chunks) does not match the head tag at {address:#x} \
             ({:?}, {} chunks)",
            foot.0, foot.1, head.0, head.1
        ),
    )
}

#[cold]
#[inline(never)]
fn links_to_allocated(address: u64, list: u64) -> Error {
    corrupt(address, format!("list {list} links to an allocated block"))
}

#[cold]
#[inline(never)]
fn wrong_list(address: u64, chunks: u64, list: u64, belongs: u64) -> Error {
    corrupt(
        address,
        format!("free block of {chunks} chunks is on list {list}, it belongs on list {belongs}"),
    )
}
