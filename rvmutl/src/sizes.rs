//! `sizeof`: the sizes of the on-disk structures and the format's limits, and what each name
//! the classic tool knew means here.

use std::io::Write;

use anyhow::{anyhow, Result};

/// Sizes of the on-disk structures and the format's limits.
pub const SIZES: &[(&str, u64, &str)] = &[
    (
        "status_slot",
        rvm::format::log::STATUS_SLOT_SIZE,
        "one log status slot (two at the start of a log)",
    ),
    (
        "status_fixed",
        rvm::format::log::STATUS_FIXED_BYTES as u64,
        "fixed part of a status slot, before the segment table",
    ),
    (
        "record_area_offset",
        rvm::format::log::RECORD_AREA_OFFSET,
        "file offset of the record area",
    ),
    (
        "record_header",
        rvm::format::log::RECORD_HEADER_SIZE as u64,
        "record header",
    ),
    (
        "record_trailer",
        rvm::format::log::RECORD_TRAILER_SIZE as u64,
        "record trailer (end marker)",
    ),
    (
        "range_header",
        rvm::format::log::RANGE_HEADER_SIZE as u64,
        "range header inside a transaction record",
    ),
    (
        "record_min",
        rvm::format::log::RECORD_MIN_SIZE,
        "smallest record (an empty pad)",
    ),
    (
        "record_align",
        rvm::format::log::RECORD_ALIGN,
        "alignment of every record",
    ),
    (
        "sector",
        rvm::format::log::SECTOR_SIZE,
        "every flush starts on a sector",
    ),
    (
        "record_area_min",
        rvm::format::log::RECORD_AREA_MIN_BYTES,
        "smallest record area",
    ),
    (
        "record_area_max",
        rvm::format::log::RECORD_AREA_MAX_BYTES,
        "largest record area",
    ),
    (
        "segments_per_log_max",
        rvm::format::log::SEGMENTS_PER_LOG_MAX as u64,
        "segments one log can name",
    ),
    (
        "path_hint_max",
        rvm::format::log::PATH_HINT_BYTES_MAX as u64,
        "longest segment path hint",
    ),
    (
        "ranges_per_record_max",
        rvm::format::log::RANGES_PER_RECORD_MAX as u64,
        "ranges in one transaction record",
    ),
    (
        "status_counters",
        rvm::format::log::STATUS_COUNTERS as u64,
        "lifetime counters kept in the status",
    ),
    (
        "segment_header",
        rvm::format::segment::SEGMENT_HEADER_SIZE,
        "segment header at offset 0 of a segment",
    ),
    (
        "region_align",
        rvm::format::segment::REGION_ALIGN,
        "alignment of region offsets, lengths and addresses",
    ),
    (
        "regions_max",
        rvm::format::segment::REGIONS_MAX as u64,
        "regions in one segment",
    ),
    (
        "heap_header_fixed",
        rvm::format::heap::HEADER_FIXED_SIZE as u64,
        "RDS heap header before its list heads",
    ),
    (
        "heap_tag",
        rvm::format::heap::TAG_SIZE,
        "RDS block tag (one at each end of a block)",
    ),
    (
        "heap_block_overhead",
        rvm::format::heap::BLOCK_OVERHEAD_BYTES,
        "RDS bytes per block beyond the caller's",
    ),
    (
        "heap_free_block_min",
        rvm::format::heap::FREE_BLOCK_MIN_BYTES,
        "smallest RDS free block",
    ),
    (
        "heap_chunk_min",
        rvm::format::heap::CHUNK_SIZE_MIN,
        "smallest RDS chunk size",
    ),
    (
        "heap_chunk_max",
        rvm::format::heap::CHUNK_SIZE_MAX,
        "largest RDS chunk size",
    ),
    (
        "heap_nlists_max",
        rvm::format::heap::NLISTS_MAX,
        "most RDS free lists",
    ),
    (
        "heap_length_max",
        rvm::format::heap::HEAP_LENGTH_MAX,
        "largest RDS heap region",
    ),
];

/// Names the classic tool's `sizeof` knew, each with our equivalent (names in [`SIZES`]) or,
/// when there is none, why.
pub const CLASSIC: &[(&str, Classic)] = &[
    ("all_sizes", Classic::Same(&[])),
    ("page_size", Classic::Explain("4096: regions are aligned to 4096-byte pages (region_align); the runtime page size matters only when a segment is mapped")),
    ("rec_hdr_t", Classic::Same(&["record_header"])),
    ("trans_hdr_t", Classic::Same(&["record_header"])),
    ("rec_end_t", Classic::Same(&["record_trailer"])),
    ("nv_range_t", Classic::Same(&["range_header"])),
    ("log_status_t", Classic::Same(&["status_fixed", "status_slot"])),
    ("log_dev_status_t", Classic::Same(&["status_slot"])),
    ("log_wrap_t", Classic::Same(&["record_min"])),
    ("log_seg_t", Classic::Explain("no segment-dictionary records: the segment table is part of each status slot (see segments_per_log_max, path_hint_max)")),
    ("log_special_t", Classic::Explain("no special records: a wrap or sector pad is an ordinary record of kind pad (see record_min)")),
    ("seg_dict_t", Classic::Same(&["segments_per_log_max", "path_hint_max"])),
    ("rvm_length_t", Classic::Explain("8: lengths are 64-bit little-endian integers on disk")),
    ("rvm_offset_t", Classic::Explain("8: offsets are 64-bit little-endian integers on disk")),
    ("timeval", Classic::Explain("8: times are stored as 64-bit milliseconds since 1970")),
    ("struct_timeval", Classic::Explain("8: times are stored as 64-bit milliseconds since 1970")),
    ("rvm_region_t", Classic::Same(&["segment_header", "regions_max"])),
    ("region_t", Classic::Explain("an in-memory structure of the C library; on disk a region is an entry of the segment header (see segment_header, regions_max)")),
    ("seg_t", Classic::Same(&["segment_header"])),
    ("log_t", Classic::Explain("an in-memory structure of the C library: rvm-rs has no fixed-size equivalent")),
    ("int_tid_t", Classic::Explain("an in-memory structure of the C library: rvm-rs has no fixed-size equivalent")),
    ("rvm_tid_t", Classic::Explain("an in-memory structure of the C library: rvm-rs has no fixed-size equivalent")),
    ("rvm_options_t", Classic::Explain("an in-memory structure of the C library: rvm-rs has no fixed-size equivalent")),
    ("range_t", Classic::Explain("an in-memory structure of the C library; on disk each range has a range_header")),
    ("tree_node_t", Classic::Explain("an in-memory structure of the C library: rvm-rs has no fixed-size equivalent")),
    ("dev_region_t", Classic::Explain("an in-memory structure of the C library: rvm-rs has no fixed-size equivalent")),
    ("mem_region_t", Classic::Explain("an in-memory structure of the C library: rvm-rs has no fixed-size equivalent")),
    ("device_t", Classic::Explain("an in-memory structure of the C library: rvm-rs has no fixed-size equivalent")),
    ("list_entry_t", Classic::Explain("an in-memory structure of the C library: rvm-rs has no fixed-size equivalent")),
    ("free_page_t", Classic::Explain("an in-memory structure of the C library: rvm-rs has no fixed-size equivalent")),
    ("log_buf_t", Classic::Explain("an in-memory structure of the C library: rvm-rs has no fixed-size equivalent")),
    ("log_daemon_t", Classic::Explain("an in-memory structure of the C library: rvm-rs has no fixed-size equivalent")),
    ("change_tree_node_t", Classic::Explain("an in-memory structure of the C library: rvm-rs has no fixed-size equivalent")),
    ("mutex", Classic::Explain("a lock of the C library's threads package: nothing on disk")),
    ("condition", Classic::Explain("a lock of the C library's threads package: nothing on disk")),
    ("rw_lock_t", Classic::Explain("a lock of the C library's threads package: nothing on disk")),
];

/// What a classic `sizeof` name means here.
#[derive(Debug, Clone, Copy)]
pub enum Classic {
    /// Our names for it (none: all of them).
    Same(&'static [&'static str]),
    /// No equivalent: why (starting with the size when there is one).
    Explain(&'static str),
}

/// `sizeof NAME ... | all`: our names by unique prefix; a classic name prints our equivalent
/// or says why there is none.
pub fn sizeof(names: &[String], out: &mut dyn Write) -> Result<()> {
    let all_names: Vec<&str> = SIZES.iter().map(|(n, _, _)| *n).collect();
    let print = |out: &mut dyn Write, name: &str| -> Result<()> {
        if let Some((n, v, what)) = SIZES.iter().find(|(n, _, _)| *n == name) {
            writeln!(out, "  {n:<24}{v:>14}  {what}")?;
        }
        Ok(())
    };
    if names.is_empty() {
        for n in &all_names {
            print(out, n)?;
        }
        return Ok(());
    }
    let options: Vec<(&str, &[&str])> = SIZES.iter().map(|(n, _, _)| (*n, &[][..])).collect();
    // Check every name before printing anything.
    let mut chosen: Vec<Result<&str, (&str, &str)>> = Vec::new();
    for n in names {
        if n == "all" {
            chosen.extend(all_names.iter().map(|n| Ok(*n)));
        } else if let Some((classic, meaning)) = CLASSIC.iter().find(|(c, _)| c == n) {
            match meaning {
                Classic::Same([]) => chosen.extend(all_names.iter().map(|n| Ok(*n))),
                Classic::Same(ours) => chosen.extend(ours.iter().map(|n| Ok(*n))),
                Classic::Explain(why) => chosen.push(Err((classic, why))),
            }
        } else {
            let name = crate::parse::keyword(n, &options).map_err(|e| {
                if e.contains("ambiguous") {
                    anyhow!("{e}")
                } else {
                    anyhow!("{n}: no such structure or limit (`sizeof all` lists them)")
                }
            })?;
            chosen.push(Ok(name));
        }
    }
    for c in chosen {
        match c {
            Ok(name) => print(out, name)?,
            Err((classic, why)) => writeln!(out, "  {classic:<24}{why}")?,
        }
    }
    Ok(())
}
