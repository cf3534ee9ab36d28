//! The six parameters of a heap segment, their rules, the rounding the dialogue proposes, and
//! the checks every mode applies before anything is written.
//!
//! Segment layout (see `FORMAT.md`):
//!
//! ```text
//! offset 0       4096                 4096+heap_len          4096+heap_len+static_len   data_len
//! | header       | heap region        | static region        | unused                   |
//!                ^ start_addr         ^ start_addr+heap_len
//! ```

use std::fmt;

use rvm::format::segment::{REGION_ALIGN, SEGMENT_HEADER_SIZE};

use crate::number::hex_dec;
use rvm::rds::{self, HeapLayout};

/// Regions start, end and are mapped on this alignment (fixed, not the runtime page size, so a
/// segment made on one machine maps on another).
pub const PAGE_BYTES: u64 = REGION_ALIGN;
/// Header + one page of heap + one page of statics.
pub const DATA_LEN_MIN: u64 = SEGMENT_HEADER_SIZE + 2 * PAGE_BYTES;
/// Keep clear of the program's text and of the low addresses the kernel will not map.
pub const START_ADDR_MIN: u64 = 0x200_0000;
/// End of the user address space on x86-64 with 4-level page tables (47-bit addresses, the
/// last page excluded). Every region must end at or below it: the segment header's own rule.
pub const USER_ADDRESS_LIMIT: u64 = rvm::format::segment::ADDRESS_END_MAX;
/// A segment longer than the whole user address space could never be useful.
pub const DATA_LEN_MAX: u64 = USER_ADDRESS_LIMIT;
/// Chunks hold pointers and sizes, so they are multiples of the word size.
pub const CHUNK_SIZE_MULTIPLE: u64 = 8;

pub const START_ADDR_DEFAULT: u64 = 0x5000_0000;
pub const STATIC_LEN_DEFAULT: u64 = 1 << 20;
pub const NLISTS_DEFAULT: u64 = 80;
pub const CHUNK_SIZE_DEFAULT: u64 = 64;

/// One of the six parameters, in the classic order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Field {
    DataLen,
    StartAddr,
    HeapLen,
    StaticLen,
    Nlists,
    ChunkSize,
}

impl Field {
    pub const ALL: [Field; 6] = [
        Field::DataLen,
        Field::StartAddr,
        Field::HeapLen,
        Field::StaticLen,
        Field::Nlists,
        Field::ChunkSize,
    ];

    /// The long flag of the modern interface.
    pub fn flag(self) -> &'static str {
        match self {
            Field::DataLen => "--data-len",
            Field::StartAddr => "--start-addr",
            Field::HeapLen => "--heap-len",
            Field::StaticLen => "--static-len",
            Field::Nlists => "--nlists",
            Field::ChunkSize => "--chunk-size",
        }
    }

    /// The name of the classic positional argument.
    pub fn classic(self) -> &'static str {
        match self {
            Field::DataLen => "DATALEN",
            Field::StartAddr => "SADDR",
            Field::HeapLen => "HLEN",
            Field::StaticLen => "SLEN",
            Field::Nlists => "NLISTS",
            Field::ChunkSize => "CHUNK",
        }
    }

    /// The name used in sentences and in the summary.
    pub fn label(self) -> &'static str {
        match self {
            Field::DataLen => "data segment length",
            Field::StartAddr => "start address",
            Field::HeapLen => "heap length",
            Field::StaticLen => "static length",
            Field::Nlists => "nlists",
            Field::ChunkSize => "chunk size",
        }
    }

    /// The JSON key.
    pub fn key(self) -> &'static str {
        match self {
            Field::DataLen => "data_len",
            Field::StartAddr => "start_addr",
            Field::HeapLen => "heap_len",
            Field::StaticLen => "static_len",
            Field::Nlists => "nlists",
            Field::ChunkSize => "chunk_size",
        }
    }

    /// What the parameter means and which values are allowed: shown before each interactive
    /// prompt and as the flag's `--help` text, so both say the same.
    pub fn explanation(self) -> String {
        match self {
            Field::DataLen => format!(
                "Length of the data segment in bytes. The segment holds a {SEGMENT_HEADER_SIZE}-byte \
                 header, then the heap region, then the static region; bytes after them stay \
                 unused. At least {DATA_LEN_MIN} bytes (3 pages). A regular file is created sparse \
                 at this length (no blocks are written for the empty parts); a block device must \
                 be at least this long."
            ),
            Field::StartAddr => format!(
                "Virtual address at which the heap region is mapped in every process that loads \
                 the segment; the static region follows it directly. The heap stores absolute \
                 pointers, so this address is fixed for the life of the segment and must be free \
                 in the programs that use it. A multiple of {PAGE_BYTES}, at least {START_ADDR_MIN:#x}, \
                 and the heap and static regions must end at or below the user address-space \
                 limit {USER_ADDRESS_LIMIT:#x}. Default {START_ADDR_DEFAULT:#x}."
            ),
            Field::HeapLen => format!(
                "Length of the heap region in bytes: the memory the allocator (rds_malloc) hands \
                 out, including the heap's own header and free-list table. A multiple of \
                 {PAGE_BYTES}, at least one page; header + heap + static must fit in the data \
                 segment length. Default: the largest heap that fits with the static region."
            ),
            Field::StaticLen => format!(
                "Length of the static region in bytes: zero-filled recoverable memory directly \
                 after the heap, for the program's fixed root structures (the Coda server keeps \
                 its volume table there). A multiple of {PAGE_BYTES}, at least one page. Default \
                 {STATIC_LEN_DEFAULT} (1 MiB)."
            ),
            Field::Nlists => format!(
                "Number of free lists in the heap. List i holds free blocks of exactly i chunks; \
                 the last list holds every larger block, so allocations up to nlists chunks are \
                 found in one step. From 1 to {}. Default {NLISTS_DEFAULT}.",
                NLISTS_MAX
            ),
            Field::ChunkSize => format!(
                "Allocation unit of the heap in bytes: every block is a whole number of chunks \
                 and carries a boundary tag at each end. A multiple of {CHUNK_SIZE_MULTIPLE}, \
                 at least {}. Default {CHUNK_SIZE_DEFAULT}.",
                CHUNK_SIZE_MIN
            ),
        }
    }

    /// The smallest allowed value.
    pub fn minimum(self) -> u64 {
        match self {
            Field::DataLen => DATA_LEN_MIN,
            Field::StartAddr => START_ADDR_MIN,
            Field::HeapLen | Field::StaticLen => PAGE_BYTES,
            Field::Nlists => 1,
            Field::ChunkSize => CHUNK_SIZE_MIN,
        }
    }

    /// The largest allowed value on its own (combinations are checked by [`check`]).
    pub fn maximum(self) -> u64 {
        match self {
            Field::DataLen => DATA_LEN_MAX,
            Field::StartAddr => USER_ADDRESS_LIMIT - PAGE_BYTES,
            Field::HeapLen => HEAP_LENGTH_MAX.min(USER_ADDRESS_LIMIT - PAGE_BYTES),
            Field::StaticLen => STATIC_LENGTH_MAX,
            Field::Nlists => NLISTS_MAX,
            Field::ChunkSize => CHUNK_SIZE_MAX,
        }
    }

    /// Values must be multiples of this (1: any value).
    pub fn multiple(self) -> u64 {
        match self {
            Field::DataLen | Field::Nlists => 1,
            Field::StartAddr | Field::HeapLen | Field::StaticLen => PAGE_BYTES,
            Field::ChunkSize => CHUNK_SIZE_MULTIPLE,
        }
    }

    fn multiple_name(self) -> String {
        match self.multiple() {
            PAGE_BYTES => format!("{PAGE_BYTES} (the page size)"),
            CHUNK_SIZE_MULTIPLE => format!("{CHUNK_SIZE_MULTIPLE} (the word size)"),
            m => m.to_string(),
        }
    }
}

/// The six parameters of a heap segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    pub data_len: u64,
    pub start_addr: u64,
    pub heap_len: u64,
    pub static_len: u64,
    pub nlists: u64,
    pub chunk_size: u64,
}

impl Params {
    pub fn get(&self, field: Field) -> u64 {
        match field {
            Field::DataLen => self.data_len,
            Field::StartAddr => self.start_addr,
            Field::HeapLen => self.heap_len,
            Field::StaticLen => self.static_len,
            Field::Nlists => self.nlists,
            Field::ChunkSize => self.chunk_size,
        }
    }

    pub fn set(&mut self, field: Field, value: u64) {
        match field {
            Field::DataLen => self.data_len = value,
            Field::StartAddr => self.start_addr = value,
            Field::HeapLen => self.heap_len = value,
            Field::StaticLen => self.static_len = value,
            Field::Nlists => self.nlists = value,
            Field::ChunkSize => self.chunk_size = value,
        }
    }

    /// Segment offset of the heap region.
    pub fn heap_offset(&self) -> u64 {
        SEGMENT_HEADER_SIZE
    }
    /// Segment offset of the static region.
    pub fn static_offset(&self) -> u64 {
        SEGMENT_HEADER_SIZE.saturating_add(self.heap_len)
    }
    /// Address of the static region.
    pub fn static_addr(&self) -> u64 {
        self.start_addr.saturating_add(self.heap_len)
    }
    /// One past the last mapped byte.
    pub fn end_addr(&self) -> u64 {
        self.static_addr().saturating_add(self.static_len)
    }
    /// Bytes of the segment after the static region.
    pub fn unused_len(&self) -> u64 {
        self.data_len.saturating_sub(self.used_len())
    }
    /// Header + heap + static.
    pub fn used_len(&self) -> u64 {
        SEGMENT_HEADER_SIZE
            .saturating_add(self.heap_len)
            .saturating_add(self.static_len)
    }

    /// The summary shown before the final confirmation.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for field in Field::ALL {
            s.push_str(&format!(
                "   {:<22}{}\n",
                format!("{}:", field.label()),
                hex_dec(self.get(field))
            ));
        }
        s
    }
}

/// A parameter that breaks a rule: names the parameter and says the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    pub field: Field,
    pub message: String,
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {} ({}, {}): {}",
            self.field.label(),
            self.field.flag(),
            self.field.classic(),
            self.message
        )
    }
}

impl std::error::Error for ParamError {}

fn round_up(value: u64, multiple: u64) -> Option<u64> {
    if multiple <= 1 {
        return Some(value);
    }
    value.checked_next_multiple_of(multiple)
}

fn round_down(value: u64, multiple: u64) -> u64 {
    if multiple <= 1 {
        return value;
    }
    value - value % multiple
}

/// Check one value on its own: minimum, maximum, multiple.
pub fn check_value(field: Field, value: u64) -> Result<(), ParamError> {
    let error = |message: String| Err(ParamError { field, message });
    if value < field.minimum() {
        return error(format!(
            "{} is below the minimum {}",
            hex_dec(value),
            hex_dec(field.minimum())
        ));
    }
    if value > field.maximum() {
        return error(format!(
            "{} is above the maximum {}",
            hex_dec(value),
            hex_dec(field.maximum())
        ));
    }
    if !value.is_multiple_of(field.multiple()) {
        let up = round_up(value, field.multiple())
            .map(|v| format!(" (round it up to {}, or pass --round)", hex_dec(v)))
            .unwrap_or_default();
        return error(format!(
            "{} is not a multiple of {}{up}",
            hex_dec(value),
            field.multiple_name()
        ));
    }
    Ok(())
}

/// What the dialogue offers for a value: the value raised to the minimum and rounded up to its
/// multiple, with a sentence for each change; or why no value can be offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub value: u64,
    pub notes: Vec<String>,
}

pub fn propose(field: Field, entered: u64) -> Result<Proposal, ParamError> {
    let mut value = entered;
    let mut notes = Vec::new();
    if value < field.minimum() {
        value = field.minimum();
        notes.push(format!(
            "{} is below the minimum {} for the {}; raised to the minimum.",
            hex_dec(entered),
            hex_dec(value),
            field.label()
        ));
    }
    if !value.is_multiple_of(field.multiple()) {
        match round_up(value, field.multiple()) {
            Some(up) => {
                notes.push(format!(
                    "{} is not a multiple of {}; rounded up to {}.",
                    hex_dec(value),
                    field.multiple_name(),
                    hex_dec(up)
                ));
                value = up;
            }
            None => {
                return Err(ParamError {
                    field,
                    message: format!("{} cannot be rounded up", hex_dec(value)),
                })
            }
        }
    }
    if value > field.maximum() {
        return Err(ParamError {
            field,
            message: format!(
                "{} is above the maximum {}",
                hex_dec(value),
                hex_dec(field.maximum())
            ),
        });
    }
    Ok(Proposal { value, notes })
}

/// Round a value up to its multiple only (the `--round` flag); minimums are not raised.
pub fn round_to_multiple(field: Field, value: u64) -> Option<(u64, Option<String>)> {
    let up = round_up(value, field.multiple())?;
    let note = (up != value).then(|| {
        format!(
            "{} {} rounded up to {} (a multiple of {})",
            field.label(),
            hex_dec(value),
            hex_dec(up),
            field.multiple_name()
        )
    });
    Some((up, note))
}

/// The largest heap length that fits in `data_len` with a static region of `static_len` and
/// the header, if one page or more does.
pub fn largest_heap(data_len: u64, static_len: u64) -> Option<u64> {
    let room = data_len
        .checked_sub(SEGMENT_HEADER_SIZE)?
        .checked_sub(static_len)?;
    let heap = round_down(room, PAGE_BYTES);
    (heap >= PAGE_BYTES).then_some(heap)
}

/// The largest static length that fits with a heap of `heap_len`.
pub fn largest_static(data_len: u64, heap_len: u64) -> Option<u64> {
    largest_heap(data_len, heap_len)
}

/// The check that header + heap + static fit in the data length, with the largest values that
/// would fit in the message.
pub fn check_fit(p: &Params) -> Result<(), ParamError> {
    let needed = SEGMENT_HEADER_SIZE
        .checked_add(p.heap_len)
        .and_then(|n| n.checked_add(p.static_len));
    if needed.is_some_and(|n| n <= p.data_len) {
        return Ok(());
    }
    let needed = needed
        .map(hex_dec)
        .unwrap_or_else(|| "more than 2^64".to_string());
    let heap_hint = match largest_heap(p.data_len, p.static_len) {
        Some(h) => format!(
            "with this static length the largest heap that fits is {}",
            hex_dec(h)
        ),
        None => "the static length alone leaves no room for a heap".to_string(),
    };
    let static_hint = match largest_static(p.data_len, p.heap_len) {
        Some(s) => format!(
            "with this heap length the largest static length that fits is {}",
            hex_dec(s)
        ),
        None => "the heap length alone leaves no room for a static region".to_string(),
    };
    Err(ParamError {
        field: Field::HeapLen,
        message: format!(
            "header ({SEGMENT_HEADER_SIZE}) + heap length {} + static length {} = {needed} \
             bytes do not fit in the data segment length {}; {heap_hint}; {static_hint}",
            hex_dec(p.heap_len),
            hex_dec(p.static_len),
            hex_dec(p.data_len)
        ),
    })
}

/// The check that the heap and static regions end below the user address-space limit.
pub fn check_address_range(p: &Params) -> Result<(), ParamError> {
    let end = p
        .start_addr
        .checked_add(p.heap_len)
        .and_then(|e| e.checked_add(p.static_len));
    if end.is_some_and(|e| e <= USER_ADDRESS_LIMIT) {
        return Ok(());
    }
    let highest = USER_ADDRESS_LIMIT
        .checked_sub(p.heap_len)
        .and_then(|a| a.checked_sub(p.static_len))
        .map(|a| {
            format!(
                "; the highest start address for these lengths is {}",
                hex_dec(a)
            )
        })
        .unwrap_or_default();
    Err(ParamError {
        field: Field::StartAddr,
        message: format!(
            "the heap and static regions ({} + {} bytes from {}) would end past the user \
             address-space limit {USER_ADDRESS_LIMIT:#x}{highest}",
            hex_dec(p.heap_len),
            hex_dec(p.static_len),
            hex_dec(p.start_addr)
        ),
    })
}

/// Every rule, in the order a user would fix them: each value alone, then the fit, the address
/// range, and finally the heap's own layout rules.
pub fn check(p: &Params) -> Result<(), ParamError> {
    for field in Field::ALL {
        check_value(field, p.get(field))?;
    }
    check_fit(p)?;
    check_address_range(p)?;
    check_layout(p)
}

/// The part of `[start_addr, end_addr)` already mapped in this process, if any (a warning: the
/// programs that use the segment must have the range free).
pub fn occupied(p: &Params) -> Option<String> {
    rvm::range_is_occupied(p.start_addr, p.end_addr())
}

// ---- the heap's own limits and layout rules (from `rvm::rds`) ----

/// Most free lists a heap may have (its list heads live in the heap header).
pub const NLISTS_MAX: u64 = rds::NLISTS_MAX;
/// Smallest chunk: a free block of one chunk must hold its two tags and two list links.
pub const CHUNK_SIZE_MIN: u64 = rds::CHUNK_SIZE_MIN;
/// Largest chunk the heap accepts.
pub const CHUNK_SIZE_MAX: u64 = rds::CHUNK_SIZE_MAX;
/// Largest heap region.
pub const HEAP_LENGTH_MAX: u64 = rds::HEAP_LENGTH_MAX;
/// Largest static region.
pub const STATIC_LENGTH_MAX: u64 = rds::STATIC_LENGTH_MAX;

/// The heap layout the parameters describe.
pub fn heap_layout(p: &Params) -> HeapLayout {
    HeapLayout {
        start_address: p.start_addr,
        heap_length: p.heap_len,
        static_length: p.static_len,
        nlists: p.nlists,
        chunk_size: p.chunk_size,
    }
}

/// The parameter a heap layout error names.
fn field_of(parameter: &str) -> Field {
    match parameter {
        "start_address" => Field::StartAddr,
        "static_length" => Field::StaticLen,
        "nlists" => Field::Nlists,
        "chunk_size" => Field::ChunkSize,
        "data_length" => Field::DataLen,
        _ => Field::HeapLen,
    }
}

/// The heap's own layout rules (header and at least one block fit, alignment, limits).
pub fn check_layout(p: &Params) -> Result<(), ParamError> {
    heap_layout(p).validate().map_err(|e| match e {
        rds::Error::BadLayout { parameter, rule } => ParamError {
            field: field_of(parameter),
            message: rule,
        },
        other => ParamError {
            field: Field::HeapLen,
            message: other.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classic_1g() -> Params {
        Params {
            data_len: 0x4000_0000,
            start_addr: 0x7000_0000,
            heap_len: 0x3fef_d000,
            static_len: 0x10_0000,
            nlists: 0x50,
            chunk_size: 0x20,
        }
    }

    #[test]
    fn required_layouts_pass() {
        check(&classic_1g()).unwrap();
        check(&Params {
            data_len: 1_073_741_824,
            start_addr: 0x5000_0000,
            heap_len: 1_072_627_712,
            static_len: 1_048_576,
            nlists: 80,
            chunk_size: 64,
        })
        .unwrap();
        check(&Params {
            data_len: 3 * 4096,
            start_addr: 0x5000_0000,
            heap_len: 4096,
            static_len: 4096,
            nlists: 80,
            chunk_size: 64,
        })
        .unwrap();
    }

    #[test]
    fn each_rule_names_its_parameter() {
        let cases: Vec<(Params, Field, &str)> = vec![
            (
                Params {
                    heap_len: 0x4000_0000,
                    ..classic_1g()
                },
                Field::HeapLen,
                "largest heap that fits is 0x3feff000",
            ),
            (
                Params {
                    heap_len: 0x3fef_d001,
                    ..classic_1g()
                },
                Field::HeapLen,
                "not a multiple of 4096",
            ),
            (
                Params {
                    start_addr: 0x7000_0010,
                    ..classic_1g()
                },
                Field::StartAddr,
                "not a multiple of 4096",
            ),
            (
                Params {
                    start_addr: 0x1000,
                    ..classic_1g()
                },
                Field::StartAddr,
                "below the minimum",
            ),
            (
                Params {
                    start_addr: 0x7fff_f000_0000,
                    ..classic_1g()
                },
                Field::StartAddr,
                "address-space limit",
            ),
            (
                Params {
                    chunk_size: 36,
                    ..classic_1g()
                },
                Field::ChunkSize,
                "multiple of 8",
            ),
            (
                Params {
                    chunk_size: 24,
                    ..classic_1g()
                },
                Field::ChunkSize,
                "below the minimum",
            ),
            (
                Params {
                    nlists: 0,
                    ..classic_1g()
                },
                Field::Nlists,
                "below the minimum",
            ),
            (
                Params {
                    nlists: NLISTS_MAX + 1,
                    ..classic_1g()
                },
                Field::Nlists,
                "above the maximum",
            ),
            (
                Params {
                    data_len: 8192,
                    heap_len: 4096,
                    static_len: 4096,
                    ..classic_1g()
                },
                Field::DataLen,
                "below the minimum",
            ),
        ];
        for (params, field, text) in cases {
            let e = check(&params).unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(e.to_string().contains(text), "{e}");
            assert!(e.to_string().contains(field.flag()), "{e}");
        }
    }

    #[test]
    fn proposals_raise_then_round() {
        assert_eq!(propose(Field::HeapLen, 5000).unwrap().value, 8192);
        assert_eq!(propose(Field::HeapLen, 0).unwrap().value, 4096);
        let p = propose(Field::StartAddr, 0x100).unwrap();
        assert_eq!(p.value, START_ADDR_MIN);
        assert_eq!(p.notes.len(), 1);
        assert_eq!(propose(Field::ChunkSize, 33).unwrap().value, 40);
        assert_eq!(propose(Field::Nlists, 0).unwrap().value, 1);
        assert_eq!(propose(Field::DataLen, 12289).unwrap().value, 12289);
        assert!(propose(Field::StartAddr, u64::MAX).is_err());
        assert!(propose(Field::Nlists, NLISTS_MAX + 1).is_err());
        // Values beyond 2 GiB survive rounding (the classic helper returned an int).
        assert_eq!(
            propose(Field::HeapLen, 0x1_0000_0001).unwrap().value,
            0x1_0000_1000
        );
    }

    #[test]
    fn auto_fit() {
        assert_eq!(
            largest_heap(1 << 30, 1 << 20),
            Some((1 << 30) - (1 << 20) - 4096)
        );
        assert_eq!(largest_heap(3 * 4096, 4096), Some(4096));
        assert_eq!(largest_heap(3 * 4096 + 100, 4096), Some(4096));
        assert_eq!(largest_heap(2 * 4096, 4096), None);
        assert_eq!(largest_heap(100, 1 << 20), None);
    }
}
