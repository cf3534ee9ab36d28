//! The RDS heap: its header and the boundary tags of its blocks (see `FORMAT.md`, "RDS heap").
//!
//! ```text
//! heap region (offsets from its first byte; every field is a little-endian u64)
//! 0        64          144        192                  192+8*nlists   blocks_offset       end
//! | fixed  | counters  | reserved | list heads 1..nlists | (padding)  | blocks ... | slack |
//! ```
//!
//! Blocks are whole multiples of `chunk_size` bytes, laid end to end from `blocks_offset` (the
//! header length rounded up to a chunk multiple). The bytes after the last whole chunk (the
//! *slack*, fewer than `chunk_size`) are never used, so a heap length that is not a multiple of
//! the chunk size cannot be overrun. Each block starts with a *head tag* and ends with a *foot
//! tag*: one u64 each holding a guard pattern (which says head or foot, free or allocated) and
//! the block's size in chunks, so both ends carry the size and the state. A free block also
//! holds the absolute addresses of its list neighbours right after its head tag:
//!
//! ```text
//! allocated: | head tag | user data ...                  | foot tag |
//! free:      | head tag | prev     | next     | (unused)  | foot tag |
//!            0          8          16         24          size-8
//! ```
//!
//! Pointers (list heads, prev, next) are absolute virtual addresses: the heap region is always
//! mapped at the address recorded in its segment header. 0 means "none".

use super::{get_u64, put_u64, DecodeError};

/// First eight bytes of every heap region.
pub const HEAP_MAGIC: [u8; 8] = *b"RVMRDSHP";
/// Bumped whenever the layout below changes; a heap of another version is refused.
/// Version 3: foot tags carry the state again (as in version 1), with the counters in
/// version 2's order (a malloc and a free each change one short run of them).
pub const HEAP_FORMAT_VERSION: u64 = 3;

/// Smallest chunk: a free block of one chunk must hold its head tag, two list links and its
/// foot tag (4 words). Coda's 64-bit build needs 40; this layout needs only 32.
pub const CHUNK_SIZE_MIN: u64 = 32;
/// Largest chunk. Bigger chunks only waste space; the limit catches mistyped values.
pub const CHUNK_SIZE_MAX: u64 = 1 << 20;
/// Every chunk size is a multiple of this, so every tag and link is 8-byte aligned.
pub const CHUNK_SIZE_ALIGN: u64 = 8;
/// Most free lists. The list heads live in the header (8 bytes each), so this bounds the
/// header at 32 KiB + 192 bytes; blocks of more chunks than any size class share the last list.
pub const NLISTS_MAX: u64 = 4096;
/// Longest block, in chunks: the size field of a tag is 40 bits wide.
pub const BLOCK_CHUNKS_MAX: u64 = (1 << TAG_SIZE_BITS) - 1;
/// Largest heap region accepted (16 TiB). With the 32-byte minimum chunk a heap this large
/// has 2^39 chunks, which the 40-bit size field holds.
pub const HEAP_LENGTH_MAX: u64 = 1 << 44;
const _: () = assert!(HEAP_LENGTH_MAX / CHUNK_SIZE_MIN <= BLOCK_CHUNKS_MAX);

// Header fields (byte offsets from the start of the heap region).
const HH_MAGIC: usize = 0;
const HH_VERSION: usize = 8;
const HH_HEAP_LENGTH: usize = 16;
const HH_CHUNK_SIZE: usize = 24;
const HH_NLISTS: usize = 32;
const HH_BLOCKS_OFFSET: usize = 40;
const HH_CHUNK_COUNT: usize = 48;
const HH_RESERVED: usize = 56;
/// Offset of the counters: the only header bytes that change after `init` besides the list
/// heads, kept contiguous so one `set_range` covers the ones an operation changes.
pub const COUNTERS_OFFSET: u64 = 64;
/// Number of u64 counters (see [`HeapCounters`]).
pub const COUNTERS_WORDS: usize = 10;
/// Bytes of the counters.
pub const COUNTERS_SIZE: u64 = 8 * COUNTERS_WORDS as u64;

/// Positions of the counters (u64 words from [`COUNTERS_OFFSET`]). The ones every malloc
/// changes and the ones every free changes overlap in the middle (generation and byte
/// accounting), so each operation changes one short contiguous run: malloc words 0..=6, free
/// words 4..=8.
pub mod counter {
    /// Allocations served by splitting a block of a larger exact-size list.
    pub const SPLITS: usize = 0;
    /// Allocations served from the list of large blocks.
    pub const LARGE_HITS: usize = 1;
    /// Allocations served by the head of their exact-size list.
    pub const EXACT_HITS: usize = 2;
    /// Successful allocations.
    pub const MALLOC_COUNT: usize = 3;
    /// Changes with every heap operation (see `HeapCounters::generation`).
    pub const GENERATION: usize = 4;
    /// Bytes in free blocks.
    pub const FREE_BYTES: usize = 5;
    /// Bytes in allocated blocks.
    pub const ALLOCATED_BYTES: usize = 6;
    /// Successful frees.
    pub const FREE_COUNT: usize = 7;
    /// Merges of a freed block with a free neighbour.
    pub const COALESCE_COUNT: usize = 8;
    /// Blocks created by `prealloc`.
    pub const PREALLOC_COUNT: usize = 9;
}
/// Offset of the generation counter.
pub const GENERATION_OFFSET: u64 = COUNTERS_OFFSET + 8 * counter::GENERATION as u64;
const HH_COUNTERS_RESERVED: usize = COUNTERS_OFFSET as usize + COUNTERS_SIZE as usize; // 144
/// Offset of the list heads: list `i` (1-based) at `LISTS_OFFSET + 8 * (i - 1)`.
pub const LISTS_OFFSET: u64 = 192;
/// The fixed part of the header, before the list heads.
pub const HEADER_FIXED_SIZE: usize = LISTS_OFFSET as usize;

const _: () = assert!(HH_RESERVED + 8 == COUNTERS_OFFSET as usize);
const _: () = assert!(HH_COUNTERS_RESERVED == 144);
const _: () = assert!(HH_COUNTERS_RESERVED <= LISTS_OFFSET as usize);
const _: () = assert!(COUNTERS_OFFSET.is_multiple_of(8) && LISTS_OFFSET.is_multiple_of(8));

/// Size of a boundary tag (one at each end of every block).
pub const TAG_SIZE: u64 = 8;
/// Bytes of an allocated block that the caller cannot use: the two tags.
pub const BLOCK_OVERHEAD_BYTES: u64 = 2 * TAG_SIZE;
/// Where the caller's data starts in an allocated block (the address `malloc` returns).
pub const USER_DATA_OFFSET: u64 = TAG_SIZE;
/// Offset of a free block's `prev` link.
pub const FREE_PREV_OFFSET: u64 = 8;
/// Offset of a free block's `next` link.
pub const FREE_NEXT_OFFSET: u64 = 16;
/// A free block needs head tag, prev, next and foot tag.
pub const FREE_BLOCK_MIN_BYTES: u64 = 32;
const _: () = assert!(FREE_NEXT_OFFSET + 8 + TAG_SIZE == FREE_BLOCK_MIN_BYTES);
const _: () = assert!(FREE_BLOCK_MIN_BYTES <= CHUNK_SIZE_MIN);
const _: () = assert!(CHUNK_SIZE_MIN.is_multiple_of(CHUNK_SIZE_ALIGN));

/// Width of the size field (in chunks) in a tag; the upper bits hold the guard pattern.
const TAG_SIZE_BITS: u32 = 40;
const TAG_SIZE_MASK: u64 = (1 << TAG_SIZE_BITS) - 1;
// Guard patterns (24 bits). Four distinct values (version 1's), far apart in Hamming distance
// (at least 11 of 24 bits pairwise), so a tag overwritten with ordinary data, a head read as a
// foot, or a free block taken for an allocated one is recognised. Version 2's stateless foot
// guard (0x6495CC) is not a tag in version 3.
const GUARD_HEAD_FREE: u64 = 0x4E_3F21;
const GUARD_HEAD_ALLOCATED: u64 = 0xB1_C07A;
const GUARD_FOOT_FREE: u64 = 0x6D_9A52;
const GUARD_FOOT_ALLOCATED: u64 = 0x93_E5C4;
const GUARDS: [u64; 4] = [
    GUARD_HEAD_FREE,
    GUARD_HEAD_ALLOCATED,
    GUARD_FOOT_FREE,
    GUARD_FOOT_ALLOCATED,
];
const _: () = {
    let mut i = 0;
    while i < GUARDS.len() {
        let mut j = i + 1;
        while j < GUARDS.len() {
            assert!((GUARDS[i] ^ GUARDS[j]).count_ones() >= 11);
            j += 1;
        }
        i += 1;
    }
};

/// Whether a block is free (on a list) or allocated (owned by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockState {
    /// On a free list.
    Free,
    /// Handed out by malloc.
    Allocated,
}

/// Which end of a block a tag sits at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagEnd {
    /// The tag at the start of a block.
    Head,
    /// The tag at the end of a block.
    Foot,
}

/// A decoded boundary tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// The tag at the start of a block: its state and its length in chunks (at least 1).
    Head {
        /// Free or allocated.
        state: BlockState,
        /// Length of the block in chunks.
        chunks: u64,
    },
    /// The tag at the end of a block: the same state and length as its head tag.
    Foot {
        /// Free or allocated.
        state: BlockState,
        /// Length of the block in chunks.
        chunks: u64,
    },
}

/// The stored head tag of a block.
#[inline]
pub fn head_word(state: BlockState, chunks: u64) -> u64 {
    Tag::Head { state, chunks }.encode()
}

/// The stored foot tag of a block.
#[inline]
pub fn foot_word(state: BlockState, chunks: u64) -> u64 {
    Tag::Foot { state, chunks }.encode()
}

/// The length in chunks that a stored tag word gives, without checking that it is a tag: for
/// a word already decoded (by [`Tag::from_word`]) and kept as stored.
#[inline]
pub fn tag_word_chunks(word: u64) -> u64 {
    word & TAG_SIZE_MASK
}

impl Tag {
    /// Which end of a block this tag is.
    pub fn end(&self) -> TagEnd {
        match self {
            Tag::Head { .. } => TagEnd::Head,
            Tag::Foot { .. } => TagEnd::Foot,
        }
    }

    /// Block length in chunks.
    pub fn chunks(&self) -> u64 {
        match *self {
            Tag::Head { chunks, .. } | Tag::Foot { chunks, .. } => chunks,
        }
    }

    /// The block's state, as this tag gives it.
    pub fn state(&self) -> BlockState {
        match *self {
            Tag::Head { state, .. } | Tag::Foot { state, .. } => state,
        }
    }

    /// The tag as stored (a little-endian u64). `chunks` is masked to the size field; callers
    /// never build a block longer than [`BLOCK_CHUNKS_MAX`].
    #[inline]
    pub fn encode(&self) -> u64 {
        let guard = match self {
            Tag::Head {
                state: BlockState::Free,
                ..
            } => GUARD_HEAD_FREE,
            Tag::Head {
                state: BlockState::Allocated,
                ..
            } => GUARD_HEAD_ALLOCATED,
            Tag::Foot {
                state: BlockState::Free,
                ..
            } => GUARD_FOOT_FREE,
            Tag::Foot {
                state: BlockState::Allocated,
                ..
            } => GUARD_FOOT_ALLOCATED,
        };
        (guard << TAG_SIZE_BITS) | (self.chunks() & TAG_SIZE_MASK)
    }

    /// Decode a stored tag word, or None if it is not a tag (wrong guard, zero size). The
    /// allocator's fast path; [`Tag::decode`] says what is wrong.
    #[inline]
    pub fn from_word(word: u64) -> Option<Tag> {
        let chunks = word & TAG_SIZE_MASK;
        if chunks == 0 {
            return None;
        }
        match word >> TAG_SIZE_BITS {
            GUARD_HEAD_FREE => Some(Tag::Head {
                state: BlockState::Free,
                chunks,
            }),
            GUARD_HEAD_ALLOCATED => Some(Tag::Head {
                state: BlockState::Allocated,
                chunks,
            }),
            GUARD_FOOT_FREE => Some(Tag::Foot {
                state: BlockState::Free,
                chunks,
            }),
            GUARD_FOOT_ALLOCATED => Some(Tag::Foot {
                state: BlockState::Allocated,
                chunks,
            }),
            _ => None,
        }
    }

    /// Decode a stored tag word. Any word that is not a tag (wrong guard, zero size) is an
    /// error; this never panics.
    pub fn decode(word: u64) -> Result<Tag, DecodeError> {
        match Tag::from_word(word) {
            Some(tag) => Ok(tag),
            None if word & TAG_SIZE_MASK == 0 && Tag::guard_is_known(word) => {
                Err(DecodeError::new("tag", "block size of zero chunks"))
            }
            None => Err(DecodeError::new(
                "tag",
                format!("{word:#018x} is not a block tag (bad guard)"),
            )),
        }
    }

    fn guard_is_known(word: u64) -> bool {
        GUARDS.contains(&(word >> TAG_SIZE_BITS))
    }
}

/// Event counters and byte accounting kept in the header, at [`COUNTERS_OFFSET`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeapCounters {
    /// Changes with every heap operation. The heap compares it with the value it expects to
    /// find after its own last change, to notice that a transaction was aborted (memory put
    /// back) and that its volatile index must be rebuilt.
    pub generation: u64,
    /// Bytes in free blocks (whole blocks, tags included).
    pub free_bytes: u64,
    /// Bytes in allocated blocks (whole blocks, tags included).
    pub allocated_bytes: u64,
    /// Successful allocations.
    pub malloc_count: u64,
    /// Successful frees.
    pub free_count: u64,
    /// Blocks created by `prealloc`.
    pub prealloc_count: u64,
    /// Merges of a freed block with a free neighbour.
    pub coalesce_count: u64,
    /// Allocations served by the head of the exact-size list.
    pub exact_hits: u64,
    /// Allocations served from the list of large blocks.
    pub large_hits: u64,
    /// Allocations served by splitting a block from a larger exact-size list.
    pub splits: u64,
}

impl HeapCounters {
    /// The counters in stored order (see [`counter`]).
    #[inline]
    pub fn to_words(&self) -> [u64; COUNTERS_WORDS] {
        let mut w = [0u64; COUNTERS_WORDS];
        w[counter::SPLITS] = self.splits;
        w[counter::LARGE_HITS] = self.large_hits;
        w[counter::EXACT_HITS] = self.exact_hits;
        w[counter::MALLOC_COUNT] = self.malloc_count;
        w[counter::GENERATION] = self.generation;
        w[counter::FREE_BYTES] = self.free_bytes;
        w[counter::ALLOCATED_BYTES] = self.allocated_bytes;
        w[counter::FREE_COUNT] = self.free_count;
        w[counter::COALESCE_COUNT] = self.coalesce_count;
        w[counter::PREALLOC_COUNT] = self.prealloc_count;
        w
    }

    /// The counters from their stored order (see [`counter`]).
    #[inline]
    pub fn from_words(w: &[u64; COUNTERS_WORDS]) -> HeapCounters {
        HeapCounters {
            generation: w[counter::GENERATION],
            free_bytes: w[counter::FREE_BYTES],
            allocated_bytes: w[counter::ALLOCATED_BYTES],
            malloc_count: w[counter::MALLOC_COUNT],
            free_count: w[counter::FREE_COUNT],
            prealloc_count: w[counter::PREALLOC_COUNT],
            coalesce_count: w[counter::COALESCE_COUNT],
            exact_hits: w[counter::EXACT_HITS],
            large_hits: w[counter::LARGE_HITS],
            splits: w[counter::SPLITS],
        }
    }

    /// The counters' on-disk bytes.
    pub fn encode(&self) -> [u8; COUNTERS_SIZE as usize] {
        let mut buf = [0u8; COUNTERS_SIZE as usize];
        for (i, w) in self.to_words().iter().enumerate() {
            put_u64(&mut buf, 8 * i, *w);
        }
        buf
    }

    /// Decode from the counters' bytes; a short buffer is an error.
    pub fn decode(buf: &[u8]) -> Result<HeapCounters, DecodeError> {
        if buf.len() < COUNTERS_SIZE as usize {
            return Err(DecodeError::new(
                "counters",
                format!("{} bytes, need {COUNTERS_SIZE}", buf.len()),
            ));
        }
        let mut words = [0u64; COUNTERS_WORDS];
        for (i, w) in words.iter_mut().enumerate() {
            *w = get_u64(buf, 8 * i);
        }
        Ok(HeapCounters::from_words(&words))
    }
}

/// Where things are in a heap of a given length, chunk size and number of lists. Everything
/// here follows from those three values; the header stores the derived ones too so a damaged
/// header is noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapGeometry {
    /// Length of the heap region in bytes.
    pub heap_length: u64,
    /// Allocation granularity in bytes.
    pub chunk_size: u64,
    /// Number of exact-size free lists.
    pub nlists: u64,
    /// Offset of the first block from the start of the heap region.
    pub blocks_offset: u64,
    /// Whole chunks between `blocks_offset` and the end of the region.
    pub chunk_count: u64,
}

impl HeapGeometry {
    /// Compute and validate. The error names the parameter and the rule it broke.
    pub fn new(
        heap_length: u64,
        chunk_size: u64,
        nlists: u64,
    ) -> Result<HeapGeometry, DecodeError> {
        if !(CHUNK_SIZE_MIN..=CHUNK_SIZE_MAX).contains(&chunk_size)
            || !chunk_size.is_multiple_of(CHUNK_SIZE_ALIGN)
        {
            return Err(DecodeError::new(
                "chunk_size",
                format!(
                    "{chunk_size} must be a multiple of {CHUNK_SIZE_ALIGN} between \
                     {CHUNK_SIZE_MIN} and {CHUNK_SIZE_MAX}"
                ),
            ));
        }
        if nlists == 0 || nlists > NLISTS_MAX {
            return Err(DecodeError::new(
                "nlists",
                format!("{nlists} must be between 1 and {NLISTS_MAX}"),
            ));
        }
        if heap_length > HEAP_LENGTH_MAX {
            return Err(DecodeError::new(
                "heap_length",
                format!("{heap_length} exceeds the limit of {HEAP_LENGTH_MAX} bytes"),
            ));
        }
        let header = header_length(nlists);
        // Cannot overflow: header <= 192 + 8 * NLISTS_MAX and chunk_size <= CHUNK_SIZE_MAX.
        let blocks_offset = header.div_ceil(chunk_size) * chunk_size;
        let chunk_count = heap_length.saturating_sub(blocks_offset) / chunk_size;
        if chunk_count == 0 {
            return Err(DecodeError::new(
                "heap_length",
                format!(
                    "{heap_length} bytes leave no room for a block after the {header}-byte \
                     header (with {nlists} lists) rounded up to the {chunk_size}-byte chunk: \
                     need at least {}",
                    blocks_offset + chunk_size
                ),
            ));
        }
        Ok(HeapGeometry {
            heap_length,
            chunk_size,
            nlists,
            blocks_offset,
            chunk_count,
        })
    }

    /// Offset just past the last whole chunk.
    pub fn blocks_end(&self) -> u64 {
        self.blocks_offset + self.chunk_count * self.chunk_size
    }

    /// Offset of the head pointer of list `list` (1-based, at most `nlists`).
    pub fn list_offset(&self, list: u64) -> u64 {
        list_offset(list)
    }

    /// The list a free block of `chunks` chunks belongs on.
    pub fn list_for(&self, chunks: u64) -> u64 {
        chunks.min(self.nlists)
    }

    /// Chunks needed for an allocation of `size` bytes, or None if no block could be that
    /// big.
    pub fn chunks_for(&self, size: u64) -> Option<u64> {
        let bytes = size.checked_add(BLOCK_OVERHEAD_BYTES)?;
        Some(bytes.div_ceil(self.chunk_size).max(1))
    }

    /// Bytes a caller can use in a block of `chunks` chunks.
    pub fn usable_bytes(&self, chunks: u64) -> u64 {
        (chunks * self.chunk_size).saturating_sub(BLOCK_OVERHEAD_BYTES)
    }
}

/// Header length (fixed part plus list heads) for `nlists` lists.
pub const fn header_length(nlists: u64) -> u64 {
    LISTS_OFFSET + 8 * nlists
}

/// Offset of list `list`'s head pointer (lists are numbered from 1; 0 is taken as 1).
pub const fn list_offset(list: u64) -> u64 {
    LISTS_OFFSET + 8 * list.saturating_sub(1)
}

/// The fixed part of a heap header, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapHeader {
    /// Heap format version.
    pub version: u64,
    /// Length, chunk size, lists and what follows from them.
    pub geometry: HeapGeometry,
    /// Operation counters and byte accounting.
    pub counters: HeapCounters,
}

impl HeapHeader {
    /// The header of a freshly initialized heap of this geometry.
    pub fn new(geometry: HeapGeometry) -> HeapHeader {
        HeapHeader {
            version: HEAP_FORMAT_VERSION,
            geometry,
            counters: HeapCounters::default(),
        }
    }

    /// The fixed part (before the list heads).
    pub fn encode(&self) -> [u8; HEADER_FIXED_SIZE] {
        let mut buf = [0u8; HEADER_FIXED_SIZE];
        buf[HH_MAGIC..HH_MAGIC + 8].copy_from_slice(&HEAP_MAGIC);
        put_u64(&mut buf, HH_VERSION, self.version);
        let g = &self.geometry;
        put_u64(&mut buf, HH_HEAP_LENGTH, g.heap_length);
        put_u64(&mut buf, HH_CHUNK_SIZE, g.chunk_size);
        put_u64(&mut buf, HH_NLISTS, g.nlists);
        put_u64(&mut buf, HH_BLOCKS_OFFSET, g.blocks_offset);
        put_u64(&mut buf, HH_CHUNK_COUNT, g.chunk_count);
        let c = self.counters.encode();
        let at = COUNTERS_OFFSET as usize;
        buf[at..at + c.len()].copy_from_slice(&c);
        buf
    }

    /// Decode and validate the fixed part: magic, version (field "version" on mismatch, so
    /// callers can report version skew), and a geometry consistent with itself.
    pub fn decode(buf: &[u8]) -> Result<HeapHeader, DecodeError> {
        if buf.len() < HEADER_FIXED_SIZE {
            return Err(DecodeError::new(
                "length",
                format!("{} bytes is shorter than a heap header", buf.len()),
            ));
        }
        if buf[HH_MAGIC..HH_MAGIC + 8] != HEAP_MAGIC {
            return Err(DecodeError::new(
                "magic",
                "no RDS heap here (the region does not start with the heap magic)",
            ));
        }
        let version = get_u64(buf, HH_VERSION);
        if version != HEAP_FORMAT_VERSION {
            return Err(DecodeError::new(
                "version",
                format!("heap format version {version}, this library reads {HEAP_FORMAT_VERSION}"),
            ));
        }
        let geometry = HeapGeometry::new(
            get_u64(buf, HH_HEAP_LENGTH),
            get_u64(buf, HH_CHUNK_SIZE),
            get_u64(buf, HH_NLISTS),
        )?;
        let stored_offset = get_u64(buf, HH_BLOCKS_OFFSET);
        let stored_count = get_u64(buf, HH_CHUNK_COUNT);
        if stored_offset != geometry.blocks_offset || stored_count != geometry.chunk_count {
            return Err(DecodeError::new(
                "geometry",
                format!(
                    "blocks at offset {stored_offset} for {stored_count} chunks, but length, \
                     chunk size and nlists give offset {} and {} chunks",
                    geometry.blocks_offset, geometry.chunk_count
                ),
            ));
        }
        let at = COUNTERS_OFFSET as usize;
        let counters = HeapCounters::decode(&buf[at..at + COUNTERS_SIZE as usize])?;
        Ok(HeapHeader {
            version,
            geometry,
            counters,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_round_trips() {
        let g = HeapGeometry::new(1 << 20, 64, 80).unwrap();
        let mut h = HeapHeader::new(g);
        h.counters.free_bytes = 12345;
        h.counters.splits = 7;
        let bytes = h.encode();
        assert_eq!(HeapHeader::decode(&bytes).unwrap(), h);
        assert_eq!(
            g.blocks_offset, 832,
            "192 + 640 = 832 is already a multiple of 64"
        );
        assert_eq!(g.chunk_count, ((1 << 20) - 832) / 64);
    }

    #[test]
    fn chunk_32_and_lengths_that_are_not_chunk_multiples_are_accepted() {
        let g = HeapGeometry::new(4096, 32, 1).unwrap();
        assert_eq!(g.blocks_offset, 224);
        let g = HeapGeometry::new(8192, 40, 80).unwrap();
        assert!(g.blocks_end() <= 8192);
        assert!(8192 - g.blocks_end() < 40, "slack is less than a chunk");
        assert_eq!(g.blocks_offset % 40, 0);
    }

    #[test]
    fn bad_parameters_name_the_parameter() {
        assert_eq!(
            HeapGeometry::new(1 << 20, 24, 8).unwrap_err().field,
            "chunk_size"
        );
        assert_eq!(
            HeapGeometry::new(1 << 20, 36, 8).unwrap_err().field,
            "chunk_size"
        );
        assert_eq!(
            HeapGeometry::new(1 << 20, 64, 0).unwrap_err().field,
            "nlists"
        );
        assert_eq!(
            HeapGeometry::new(1 << 20, 64, NLISTS_MAX + 1)
                .unwrap_err()
                .field,
            "nlists"
        );
        assert_eq!(
            HeapGeometry::new(256, 64, 8).unwrap_err().field,
            "heap_length"
        );
    }

    #[test]
    fn version_skew_is_reported_as_version() {
        let mut bytes = HeapHeader::new(HeapGeometry::new(1 << 16, 32, 4).unwrap()).encode();
        for old in [1, 2] {
            put_u64(&mut bytes, HH_VERSION, old);
            assert_eq!(HeapHeader::decode(&bytes).unwrap_err().field, "version");
        }
        let mut bytes = HeapHeader::new(HeapGeometry::new(1 << 16, 32, 4).unwrap()).encode();
        put_u64(&mut bytes, HH_CHUNK_COUNT, 3);
        assert_eq!(HeapHeader::decode(&bytes).unwrap_err().field, "geometry");
    }

    #[test]
    fn tags_round_trip_and_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for chunks in [1, 2, 1000, BLOCK_CHUNKS_MAX] {
            let tags = [
                Tag::Head {
                    state: BlockState::Free,
                    chunks,
                },
                Tag::Head {
                    state: BlockState::Allocated,
                    chunks,
                },
                Tag::Foot {
                    state: BlockState::Free,
                    chunks,
                },
                Tag::Foot {
                    state: BlockState::Allocated,
                    chunks,
                },
            ];
            for t in tags {
                let w = t.encode();
                assert_eq!(Tag::decode(w).unwrap(), t);
                assert_eq!(Tag::from_word(w), Some(t));
                assert_eq!(t.chunks(), chunks);
                assert_eq!(
                    Tag::decode(w).unwrap().state(),
                    t.state(),
                    "the state round-trips at both ends"
                );
                assert!(seen.insert(w));
            }
        }
        assert_eq!(head_word(BlockState::Allocated, 3), 0xB1C0_7A00_0000_0003);
        assert_eq!(foot_word(BlockState::Free, 3), 0x6D9A_5200_0000_0003);
        assert_eq!(foot_word(BlockState::Allocated, 3), 0x93E5_C400_0000_0003);
        assert!(Tag::decode(0).is_err());
        assert!(Tag::decode(head_word(BlockState::Free, 1) & !TAG_SIZE_MASK).is_err());
        // Version 2's stateless foot guard is not a tag.
        let v2_foot = 0x6495_CC00_0000_0003;
        assert!(Tag::decode(v2_foot).is_err());
        assert_eq!(Tag::from_word(v2_foot), None);
    }

    #[test]
    fn counters_round_trip_in_their_stored_order() {
        let c = HeapCounters {
            generation: 1,
            free_bytes: 2,
            allocated_bytes: 3,
            malloc_count: 4,
            free_count: 5,
            prealloc_count: 6,
            coalesce_count: 7,
            exact_hits: 8,
            large_hits: 9,
            splits: 10,
        };
        assert_eq!(HeapCounters::decode(&c.encode()).unwrap(), c);
        assert_eq!(HeapCounters::from_words(&c.to_words()), c);
        let bytes = c.encode();
        assert_eq!(get_u64(&bytes, 8 * counter::GENERATION), 1);
        assert_eq!(get_u64(&bytes, 0), 10, "splits come first");
        assert_eq!(GENERATION_OFFSET, 96);
    }

    #[test]
    fn chunks_for_adds_the_tags_and_rounds_up() {
        let g = HeapGeometry::new(1 << 16, 32, 4).unwrap();
        assert_eq!(g.chunks_for(0), Some(1));
        assert_eq!(g.chunks_for(16), Some(1));
        assert_eq!(g.chunks_for(17), Some(2));
        assert_eq!(g.chunks_for(u64::MAX), None);
        assert_eq!(g.usable_bytes(2), 48);
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), word in any::<u64>()) {
            let _ = HeapHeader::decode(&bytes);
            let _ = HeapCounters::decode(&bytes);
            let _ = Tag::decode(word);
        }

        #[test]
        fn geometry_never_overruns(len in 0u64..(1 << 24), chunk in 0u64..200, nlists in 0u64..300) {
            if let Ok(g) = HeapGeometry::new(len, chunk, nlists) {
                prop_assert!(g.blocks_end() <= len);
                prop_assert!(g.blocks_offset >= header_length(nlists));
                prop_assert_eq!(g.blocks_offset % g.chunk_size, 0);
            }
        }
    }
}
