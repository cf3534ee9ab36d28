//! `segment DATA` and `heap DATA`: read the file (never map it: it may be in use).

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{Context, Result};
use rvm::format::segment::{SegmentHeader, SEGMENT_FORMAT_VERSION, SEGMENT_HEADER_SIZE};
use serde_json::json;

use crate::render::time_ms;

/// Print a segment's header, regions, and its file and on-disk sizes.
pub fn segment(path: &Path, out: &mut dyn Write, json: bool) -> Result<()> {
    let header = rvm::segment::read_header(path)?;
    let meta = std::fs::metadata(path).with_context(|| format!("{}: stat", path.display()))?;
    let file_size = meta.len();
    let on_disk = meta.blocks() * 512;
    if json {
        let v = json!({
            "segment": path.display().to_string(),
            "uuid": header.uuid.to_string(),
            "format_version": SEGMENT_FORMAT_VERSION,
            "created_unix_ms": header.created_unix_ms,
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
    writeln!(out, "  {:<18}{file_size} bytes", "file size:")?;
    writeln!(
        out,
        "  {:<18}{on_disk} bytes{}",
        "on disk:",
        if on_disk < file_size { " (sparse)" } else { "" }
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

/// Print the RDS heap of region 0.
pub fn heap(path: &Path, out: &mut dyn Write, json: bool) -> Result<()> {
    let header = rvm::segment::read_header(path)?;
    let _ = (&header, out, json);
    anyhow::bail!(
        "{}: the RDS heap inspector needs rvm::rds, which this build does not include yet",
        path.display()
    )
}

/// Run the heap checker on region 0 of a segment, reporting each problem.
pub fn check_heap(
    path: &Path,
    header: &SegmentHeader,
    problem: &mut dyn FnMut(Option<u64>, &'static str, String),
    notes: &mut Vec<String>,
) -> Result<()> {
    let _ = (path, header, problem);
    notes.push("  heap: not checked (this build has no RDS heap checker yet)".into());
    Ok(())
}
