//! The one place rdsinit calls the RDS heap (`rvm::rds`): its limits, its layout check, building
//! a heap segment, and checking one and reading its statistics.
//!
//! PLACEHOLDER until `rvm::rds` lands on main: the segment is laid out with its two regions but
//! no heap is built, and no statistics are read.

use std::path::Path;

use rvm::segment::{self, CreateOptions, RegionSpec};
use rvm::Rvm;

use crate::params::{Field, ParamError, Params};

/// Most free lists a heap may have.
pub const NLISTS_MAX: u64 = 1 << 12;
/// Smallest chunk: a free block's header and end guard must fit in one chunk.
pub const CHUNK_SIZE_MIN: u64 = 32;
/// Largest chunk rdsinit accepts (a larger unit wastes most of every small allocation).
pub const CHUNK_SIZE_MAX: u64 = 1 << 20;
/// Largest heap region.
pub const HEAP_LENGTH_MAX: u64 = 1 << 44;
/// Largest static region.
pub const STATIC_LENGTH_MAX: u64 = 1 << 40;

/// The heap's own layout rules (header and at least one block fit, alignment).
pub fn check_layout(p: &Params) -> Result<(), ParamError> {
    let _ = p;
    let _ = Field::HeapLen;
    Ok(())
}

/// What building the segment produced.
#[derive(Debug, Clone)]
pub struct Built {
    pub segment_uuid: String,
}

/// Build the heap segment on `data` (created or overwritten) through an open `rvm`.
pub fn build(rvm: &Rvm, data: &Path, p: &Params, options: CreateOptions) -> anyhow::Result<Built> {
    let _ = rvm;
    let header = segment::layout(
        p.data_len,
        &[
            RegionSpec {
                length: p.heap_len,
                address: p.start_addr,
            },
            RegionSpec {
                length: p.static_len,
                address: p.static_addr(),
            },
        ],
    )?;
    segment::create(data, &header, options)?;
    Ok(Built {
        segment_uuid: header.uuid.to_string(),
    })
}

/// The result of checking a heap: its statistics as (name, value) pairs, in display order.
#[derive(Debug, Clone, Default)]
pub struct Inspection {
    pub statistics: Vec<(String, u64)>,
    /// Problems the checker found (empty: the heap is sound).
    pub problems: Vec<String>,
}

/// Load the heap of `data` through an open `rvm`, run the checker and read the statistics.
pub fn inspect(rvm: &Rvm, data: &Path) -> anyhow::Result<Inspection> {
    let _ = (rvm, data);
    Ok(Inspection::default())
}
