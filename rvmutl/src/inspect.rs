//! `segment DATA` and `heap DATA`: read the file (never map it: it may be in use).

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{Context, Result};
use rvm::device::Device;
use rvm::format::log::{Status, STATUS_SLOT_SIZE};
use rvm::format::segment::{
    RegionEntry, SegmentHeader, SEGMENT_FORMAT_VERSION, SEGMENT_HEADER_SIZE,
};
use serde_json::json;

use crate::logview::open_read_only;
use crate::render::time_ms;

/// Something `check` verified and found sound (or a fact worth knowing), as data: `kind`
/// says what it is about, `fields` holds its facts, `text` says it in words.
#[derive(Debug, Clone)]
pub struct Note {
    /// log, segment (the file being checked), status_slot, records, salvaged, segment_table,
    /// plain_file, segment_header, segment_not_in_log, heap.
    pub kind: &'static str,
    pub text: String,
    /// The facts, as a JSON object.
    pub fields: serde_json::Value,
}

impl Note {
    pub fn new(kind: &'static str, text: impl Into<String>, fields: serde_json::Value) -> Note {
        Note {
            kind,
            text: text.into(),
            fields,
        }
    }

    pub(crate) fn to_json(&self) -> serde_json::Value {
        let mut v = json!({"kind": self.kind, "text": self.text});
        if let (Some(o), Some(fields)) = (v.as_object_mut(), self.fields.as_object()) {
            for (k, x) in fields {
                o.insert(k.clone(), x.clone());
            }
        }
        v
    }
}

/// What status slot `index` of a log holds, decoded without verification (for a damaged
/// slot: what it says, to be taken with care).
pub fn unverified_slot(device: &dyn Device, index: u64) -> Option<Status> {
    let mut buf = vec![0u8; STATUS_SLOT_SIZE as usize];
    device.read_at(&mut buf, index * STATUS_SLOT_SIZE).ok()?;
    Status::decode_unverified(&buf)
}

/// A one-line summary of an unverified status.
pub fn unverified_summary(s: &Status) -> String {
    format!(
        "as stored (unverified): sequence {}, head offset {} LSN {}, tail offset {} LSN {}, written {}",
        s.sequence,
        s.head_offset,
        s.head_lsn,
        s.tail_offset,
        s.tail_lsn,
        time_ms(s.written_unix_ms)
    )
}

/// For a log whose status slots are both damaged: what each holds, unverified.
pub fn describe_damaged_log(path: &Path, out: &mut dyn Write) -> Result<()> {
    let device = open_read_only(path)?;
    for i in 0..2 {
        match unverified_slot(&device, i) {
            Some(s) => writeln!(out, "status slot {i}: {}", unverified_summary(&s))?,
            None => writeln!(
                out,
                "status slot {i}: no status slot magic: nothing to decode"
            )?,
        }
    }
    Ok(())
}

/// Print a segment's header, regions, and its file and on-disk sizes.
pub fn segment(path: &Path, out: &mut dyn Write, json: bool) -> Result<()> {
    let header = match rvm::segment::read_header(path) {
        Ok(h) => h,
        Err(e) => {
            // Show what the damaged header says, then fail.
            let device = open_read_only(path)?;
            let mut buf = vec![0u8; SEGMENT_HEADER_SIZE as usize];
            if device.read_at(&mut buf, 0).is_ok() {
                if let Some(h) = SegmentHeader::decode_unverified(&buf) {
                    writeln!(
                        out,
                        "Segment {} (DAMAGED header; the values below are as stored, unverified)",
                        path.display()
                    )?;
                    print_header(&h, out)?;
                }
            }
            return Err(e.into());
        }
    };
    let meta = std::fs::metadata(path).with_context(|| format!("{}: stat", path.display()))?;
    let file_size = meta.len();
    let on_disk = meta.blocks() * 512;
    if json {
        let v = json!({
            "segment": path.display().to_string(),
            "uuid": header.uuid.to_string(),
            "format_version": SEGMENT_FORMAT_VERSION,
            "created_unix_us": header.created_unix_ms.saturating_mul(1000),
            "length_bytes": header.length_bytes,
            "header_bytes": SEGMENT_HEADER_SIZE,
            "file_size_bytes": file_size,
            "on_disk_bytes": on_disk,
            "regions": header.regions.iter().enumerate().map(|(i, r)| json!({
                "index": i, "offset": r.offset, "length": r.length, "address": r.address,
                "end_offset": r.end_offset(), "end_address": r.end_address(),
            })).collect::<Vec<_>>(),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    writeln!(out, "Segment {}", path.display())?;
    print_header(&header, out)?;
    writeln!(out, "  {:<18}{file_size} bytes", "file size:")?;
    writeln!(
        out,
        "  {:<18}{on_disk} bytes{}",
        "on disk:",
        if on_disk < file_size { " (sparse)" } else { "" }
    )?;
    Ok(())
}

fn print_header(header: &SegmentHeader, out: &mut dyn Write) -> Result<()> {
    writeln!(out, "  {:<18}{}", "UUID:", header.uuid)?;
    writeln!(out, "  {:<18}{}", "format version:", SEGMENT_FORMAT_VERSION)?;
    writeln!(
        out,
        "  {:<18}{}",
        "created:",
        time_ms(header.created_unix_ms)
    )?;
    writeln!(
        out,
        "  {:<18}{} bytes ({SEGMENT_HEADER_SIZE}-byte header)",
        "length:", header.length_bytes
    )?;
    writeln!(out, "  {:<18}{}", "regions:", header.regions.len())?;
    for (i, r) in header.regions.iter().enumerate() {
        writeln!(
            out,
            "    region {i}: offset {:#x}, length {:#x} ({} bytes), address {:#x}, end address {:#x}, end offset {:#x}",
            r.offset,
            r.length,
            r.length,
            r.address,
            r.end_address(),
            r.end_offset()
        )?;
    }
    Ok(())
}

/// The heap region (region 0) of a segment and the file it is in, opened read-only.
fn heap_region(
    path: &Path,
    header: &SegmentHeader,
) -> Result<(rvm::device::FileDevice, RegionEntry)> {
    let region = *header.regions.first().ok_or_else(|| {
        anyhow::anyhow!("{}: the segment has no regions, so no heap", path.display())
    })?;
    Ok((open_read_only(path)?, region))
}

/// Print the RDS heap of region 0: header, counters, free-list histogram, largest free block,
/// fragmentation and the checker's findings. Returns whether the checker found problems.
pub fn heap(path: &Path, out: &mut dyn Write, json: bool) -> Result<bool> {
    let header = rvm::segment::read_header(path)?;
    let (device, region) = heap_region(path, &header)?;
    let (address, file_offset) = (region.address, region.offset);
    let info = rvm::rds::inspect_device(&device, &region).map_err(|e| {
        anyhow::anyhow!("{}: no readable RDS heap in region 0: {e}", path.display())
    })?;
    let g = &info.geometry;
    let c = &info.counters;
    let check = &info.check;
    let problems: Vec<(Option<u64>, String)> = check
        .problems
        .iter()
        .map(|p| {
            (
                heap_file_offset(p.address, address, region.length, file_offset),
                format!("{:?}: {}", p.kind, p.detail),
            )
        })
        .collect();
    if json {
        let v = json!({
            "segment": path.display().to_string(),
            "address": info.address,
            "file_offset": file_offset,
            "version": info.version,
            "heap_length": g.heap_length,
            "chunk_size": g.chunk_size,
            "nlists": g.nlists,
            "blocks_offset": g.blocks_offset,
            "chunk_count": g.chunk_count,
            "counters": {
                "generation": c.generation,
                "free_bytes": c.free_bytes,
                "allocated_bytes": c.allocated_bytes,
                "malloc_count": c.malloc_count,
                "free_count": c.free_count,
                "prealloc_count": c.prealloc_count,
                "coalesce_count": c.coalesce_count,
                "exact_hits": c.exact_hits,
                "large_hits": c.large_hits,
                "splits": c.splits,
            },
            "lists": info.lists.iter().map(|l| json!({"list": l.list, "blocks": l.blocks, "bytes": l.bytes})).collect::<Vec<_>>(),
            "largest_free_block": info.largest_free_block,
            "largest_allocation": info.largest_allocation,
            "fragmentation": info.fragmentation,
            "blocks": check.blocks,
            "free_blocks": check.free_blocks,
            "allocated_blocks": check.allocated_blocks,
            "free_bytes": check.free_bytes,
            "allocated_bytes": check.allocated_bytes,
            "walk_complete": check.walk_complete,
            "problems": check.problems.iter().zip(&problems).map(|(p, (offset, _))| json!({
                "address": p.address, "file_offset": offset, "kind": format!("{:?}", p.kind), "detail": p.detail,
            })).collect::<Vec<_>>(),
            "problems_omitted": check.problems_omitted,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(!check.is_ok());
    }
    writeln!(
        out,
        "RDS heap of {} (region 0: {} bytes at address {:#x}, file offset {:#x})",
        path.display(),
        g.heap_length,
        address,
        file_offset
    )?;
    writeln!(
        out,
        "  (the file as of the last truncation: records still in a log are not included)"
    )?;
    let kv =
        |out: &mut dyn Write, k: &str, v: String| writeln!(out, "  {:<22}{v}", format!("{k}:"));
    kv(out, "version", info.version.to_string())?;
    kv(out, "chunk size", format!("{} bytes", g.chunk_size))?;
    kv(
        out,
        "free lists",
        format!(
            "{} (list i < {} holds blocks of i chunks, list {} the larger ones)",
            g.nlists, g.nlists, g.nlists
        ),
    )?;
    kv(
        out,
        "blocks",
        format!(
            "from offset {} in the region, {} chunks",
            g.blocks_offset, g.chunk_count
        ),
    )?;
    kv(out, "generation", c.generation.to_string())?;
    kv(
        out,
        "free bytes",
        format!(
            "{} (header), {} (blocks walked)",
            c.free_bytes, check.free_bytes
        ),
    )?;
    kv(
        out,
        "allocated bytes",
        format!(
            "{} (header), {} (blocks walked)",
            c.allocated_bytes, check.allocated_bytes
        ),
    )?;
    kv(
        out,
        "blocks walked",
        format!(
            "{} ({} free, {} allocated){}",
            check.blocks,
            check.free_blocks,
            check.allocated_blocks,
            if check.walk_complete {
                ""
            } else {
                "; the walk stopped at damage"
            }
        ),
    )?;
    kv(
        out,
        "operations",
        format!(
            "malloc {}, free {}, prealloc {}, coalesce {}",
            c.malloc_count, c.free_count, c.prealloc_count, c.coalesce_count
        ),
    )?;
    kv(
        out,
        "allocations served",
        format!(
            "exact list {}, large list {}, split {}",
            c.exact_hits, c.large_hits, c.splits
        ),
    )?;
    // Only lists holding blocks: a fresh heap has one block and nlists - 1 empty lists, and
    // 80 rows of zeros hide the one that matters. JSON output keeps every list.
    let empty = info.lists.iter().filter(|l| l.blocks == 0).count();
    writeln!(
        out,
        "  free-list histogram ({empty} empty lists not shown):"
    )?;
    writeln!(out, "    {:>6} {:>8} {:>12}", "list", "blocks", "bytes")?;
    for l in info.lists.iter().filter(|l| l.blocks > 0) {
        writeln!(out, "    {:>6} {:>8} {:>12}", l.list, l.blocks, l.bytes)?;
    }
    kv(
        out,
        "largest free block",
        format!(
            "{} bytes (largest allocation it can serve: {} bytes)",
            info.largest_free_block, info.largest_allocation
        ),
    )?;
    kv(
        out,
        "fragmentation",
        format!("{:.1}%", info.fragmentation * 100.0),
    )?;
    for (p, (offset, text)) in check.problems.iter().zip(&problems) {
        match offset {
            Some(offset) => writeln!(
                out,
                "PROBLEM {} offset {offset} ({offset:#x}), address {:#x}: {text}",
                path.display(),
                p.address
            )?,
            None => writeln!(
                out,
                "PROBLEM {} address {:#x} (outside the heap region, no file offset): {text}",
                path.display(),
                p.address
            )?,
        }
    }
    if check.problems_omitted > 0 {
        writeln!(out, "... and {} more problems", check.problems_omitted)?;
    }
    if check.is_ok() {
        writeln!(out, "  heap check: no problems found")?;
    }
    Ok(!check.is_ok())
}

/// Whether a segment is laid out the way `rdsinit` lays out a heap segment: two regions, the
/// static one right after the heap in the file and in memory.
fn laid_out_as_heap_segment(header: &SegmentHeader) -> bool {
    match header.regions.as_slice() {
        [heap, statics] => {
            statics.offset == heap.end_offset() && statics.address == heap.end_address()
        }
        _ => false,
    }
}

/// Run the heap checker on region 0 of a segment, reporting each problem with its file offset.
/// The heap is walked from the file through the library's bounded page cache, so memory does
/// not grow with the heap. A segment laid out as a heap segment whose heap is missing is a
/// problem; any other segment without a heap is only noted.
pub fn check_heap(
    path: &Path,
    header: &SegmentHeader,
    problem: &mut dyn FnMut(Option<u64>, &'static str, String),
    notes: &mut Vec<Note>,
) -> Result<()> {
    let (device, region) = match heap_region(path, header) {
        Ok(r) => r,
        Err(e) => {
            problem(None, "heap", e.to_string());
            return Ok(());
        }
    };
    let (address, file_offset) = (region.address, region.offset);
    let report = match rvm::rds::inspect_device(&device, &region) {
        Ok(info) => info.check,
        Err(rvm::rds::Error::NoHeap { reason, .. }) if !laid_out_as_heap_segment(header) => {
            notes.push(Note::new(
                "heap",
                "heap: region 0 holds no RDS heap, and the segment is not laid out as a heap \
                 segment, so none is expected",
                json!({"present": false, "reason": reason}),
            ));
            return Ok(());
        }
        Err(rvm::rds::Error::NoHeap { reason, .. }) => {
            problem(
                Some(file_offset),
                "heap_missing",
                format!(
                    "the segment is laid out as a heap segment (a heap region and a static \
                     region right after it) but region 0 (address {address:#x}) holds no \
                     heap: {reason}"
                ),
            );
            return Ok(());
        }
        Err(e) => {
            problem(Some(file_offset), "heap_header", e.to_string());
            return Ok(());
        }
    };
    notes.push(Note::new(
        "heap",
        format!(
            "heap: {} blocks ({} free, {} bytes; {} allocated, {} bytes){}",
            report.blocks,
            report.free_blocks,
            report.free_bytes,
            report.allocated_blocks,
            report.allocated_bytes,
            if report.walk_complete {
                ""
            } else {
                "; the walk stopped at damage"
            }
        ),
        json!({
            "present": true,
            "blocks": report.blocks,
            "free_blocks": report.free_blocks,
            "free_bytes": report.free_bytes,
            "allocated_blocks": report.allocated_blocks,
            "allocated_bytes": report.allocated_bytes,
            "walk_complete": report.walk_complete,
        }),
    ));
    for p in &report.problems {
        let offset = heap_file_offset(p.address, address, region.length, file_offset);
        problem(
            offset,
            "heap",
            format!("address {:#x}: {:?}: {}", p.address, p.kind, p.detail),
        );
    }
    if report.problems_omitted > 0 {
        problem(
            None,
            "heap",
            format!("... and {} more heap problems", report.problems_omitted),
        );
    }
    Ok(())
}

/// The file offset of heap address `at` when it lies in the heap region (mapped at `base`,
/// `length` bytes, starting at `file_offset` in the segment); an address outside it (a damaged
/// pointer) has none, and must not be shown as an offset.
fn heap_file_offset(at: u64, base: u64, length: u64, file_offset: u64) -> Option<u64> {
    at.checked_sub(base)
        .filter(|d| *d < length)
        .map(|d| file_offset + d)
}
