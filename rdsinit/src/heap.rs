//! The one place rdsinit calls the RDS heap (`rvm::rds`): its limits, its layout check,
//! building a heap segment, and loading one back to check it and read its statistics.

use std::path::Path;

use rvm::rds::{self, Heap, HeapLayout};
use rvm::segment::CreateOptions;
use rvm::{MapOptions, Rvm};

use crate::params::{Field, ParamError, Params};

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

fn layout(p: &Params) -> HeapLayout {
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
    layout(p).validate().map_err(|e| match e {
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

/// What building the segment produced.
#[derive(Debug, Clone)]
pub struct Built {
    pub segment_uuid: String,
}

/// Build the heap segment on `data` (created or overwritten) through an open `rvm`: segment
/// header, heap initialised in a flushed transaction, log truncated into the segment.
pub fn build(rvm: &Rvm, data: &Path, p: &Params, options: CreateOptions) -> anyhow::Result<Built> {
    // SAFETY: rdsinit has just created (or, with --force, checked that no rvm process holds) DATA,
    // and holds its lock until the heap is written; the user runs rdsinit on a segment no other
    // program is using, so nothing shortens it meanwhile.
    let header = unsafe { rds::create_heap_segment(rvm, data, p.data_len, &layout(p), options) }?;
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

/// Map `data` through `rvm`, load its heap, run the full checker and read the statistics.
pub fn inspect(rvm: &Rvm, data: &Path) -> anyhow::Result<Inspection> {
    // SAFETY: rdsinit maps DATA only to check the heap it has just written; it holds the
    // file's lock, and the user runs rdsinit on a segment no other program is using (the
    // file checks refuse one an rvm process has open), so nothing shortens it meanwhile.
    let segment = unsafe { rvm.map(data, MapOptions::default()) }?;
    let result = (|| -> Result<Inspection, rds::Error> {
        let heap = Heap::load(&segment)?;
        let report = heap.check();
        let s = heap.statistics();
        let mut problems: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
        if report.problems_omitted > 0 {
            problems.push(format!("{} more problems", report.problems_omitted));
        }
        if let Some(damage) = &s.damage {
            problems.push(damage.clone());
        }
        let statistics = [
            ("heap_length", s.heap_length),
            ("chunk_size", s.chunk_size),
            ("nlists", s.nlists),
            ("capacity_bytes", s.capacity_bytes),
            ("free_bytes", s.free_bytes),
            ("allocated_bytes", s.allocated_bytes),
            ("blocks", report.blocks),
            ("free_blocks", s.free_blocks),
            ("largest_free_block", s.largest_free_block),
            ("largest_allocation", s.largest_allocation),
            ("malloc_count", s.malloc_count),
            ("free_count", s.free_count),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect();
        Ok(Inspection {
            statistics,
            problems,
        })
    })();
    let unmapped = rvm.unmap(&segment);
    let inspection = result?;
    unmapped?;
    Ok(inspection)
}
