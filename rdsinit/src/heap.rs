//! Where rdsinit builds a heap segment (`rvm::rds`) and loads one back to check it and read
//! its statistics. The heap's limits and layout check belong to the parameters (`params`).

use std::path::Path;

use rvm::rds::{self, Heap};
use rvm::segment::CreateOptions;
use rvm::{MapOptions, Rvm};

use crate::params::{heap_layout, Params};

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
    let header =
        unsafe { rds::create_heap_segment(rvm, data, p.data_len, &heap_layout(p), options) }?;
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
