//! `segment DATA` and `heap DATA`: read the file (never map it: it may be in use).

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{Context, Result};
use rvm::device::Device;
use rvm::format::log::{Status, STATUS_SLOT_SIZE};
use rvm::format::segment::{SegmentHeader, SEGMENT_FORMAT_VERSION, SEGMENT_HEADER_SIZE};
use serde_json::json;

use crate::render::time_ms;

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
    let device = crate::session::open_read_only(path)?;
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
            let device = crate::session::open_read_only(path)?;
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
