//! `recover` (apply the log through the library, or a dry run computed from the reader),
//! monitors, and `show mods`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use rvm::device::Access;
use rvm::format::log::{FileIdentity, SegmentKind};
use rvm::format::segment::SegmentHeader;
use rvm::log::{Record, ScanEnd};
use rvm::{Options, Rvm};
use serde_json::json;

use crate::format::{encode_values, Format};
use crate::parse::{AddrSpec, Value};
use crate::session::{format_values, Outcome, Session};

/// A range the recovery would write.
struct PlannedRange {
    lsn: u64,
    record_offset: u64,
    number: usize,
    segment: u32,
    offset: u64,
    address: u64,
    data: Vec<u8>,
}

/// The live records of the open log, oldest first (only those before damage).
fn live_records(session: &mut Session) -> Result<Vec<Record>> {
    let log = session.log_mut()?;
    let mut out = Vec::new();
    for r in log.live()? {
        out.push(
            log.read(r.offset)
                .map_err(|e| anyhow!("record at offset {}: {e}", r.offset))?,
        );
    }
    Ok(out)
}

fn plan(records: &[Record]) -> Result<Vec<PlannedRange>> {
    let mut ranges = Vec::new();
    for rec in records {
        for (i, r) in rec.ranges().enumerate() {
            let r = r.map_err(|e| anyhow!("record at offset {}: {e}", rec.offset))?;
            ranges.push(PlannedRange {
                lsn: rec.header.lsn,
                record_offset: rec.offset,
                number: i + 1,
                segment: r.header.segment,
                offset: r.header.offset,
                address: r.header.address,
                data: r.data.to_vec(),
            });
        }
    }
    Ok(ranges)
}

/// A segment found (its file and header) or why it was not.
type Resolved = Result<(PathBuf, SegmentHeader), String>;

/// Where recover would find each segment: explicit files first (by UUID), then the hint.
fn resolve_segments(session: &Session, used: &BTreeSet<u32>) -> Result<BTreeMap<u32, Resolved>> {
    let log = session.log_ref()?;
    let table = &log.status().segments;
    let log_name = log.path.display().to_string();
    let mut out = BTreeMap::new();
    for &index in used {
        let Some(entry) = table
            .get(index as usize)
            .filter(|e| e.uuid != rvm::Uuid::NIL)
        else {
            out.insert(
                index,
                Err(format!("segment {index} is not in the log's segment table")),
            );
            continue;
        };
        if entry.file_identity().is_some() {
            // A plain file is opened by its recorded path only, and must still be the file
            // that was mapped (the library's own check, as recovery makes it).
            let found = rvm::segment::open_plain_file(&log_name, entry, Access::ReadOnly)
                .map(|(_, header)| (PathBuf::from(&entry.path_hint), header))
                .map_err(|e| format!("segment {index}: {e}"));
            out.insert(index, found);
            continue;
        }
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(p) = session.segment_files.get(&index) {
            candidates.push(p.clone());
        }
        candidates.extend(session.extra_segment_files.iter().cloned());
        if !entry.path_hint.is_empty() {
            candidates.push(PathBuf::from(&entry.path_hint));
        }
        // Why a candidate was not it: a damaged header is named, not reported as "not found".
        let mut unusable = None;
        let found = candidates
            .into_iter()
            .find_map(|p| match rvm::segment::read_header(&p) {
                Ok(h) => (h.uuid == entry.uuid).then_some((p, h)),
                Err(rvm::Error::Io { cause, .. })
                    if cause.kind() == std::io::ErrorKind::NotFound =>
                {
                    None
                }
                Err(e) => {
                    unusable.get_or_insert(e);
                    None
                }
            });
        out.insert(
            index,
            found.ok_or_else(|| match unusable {
                Some(e) => format!(
                    "segment {index} ({}) cannot be used: {e}; repair or restore it, or use set seg_dict {index} = FILE (or --segment FILE) for a good copy",
                    entry.uuid
                ),
                None => format!(
                    "segment {index} ({}) not found at its path hint {:?}; use set seg_dict {index} = FILE (or --segment FILE)",
                    entry.uuid, entry.path_hint
                ),
            }),
        );
    }
    Ok(out)
}

/// Union of the written byte ranges per segment: (segment, start, end).
fn extents(ranges: &[PlannedRange]) -> Vec<(u32, u64, u64)> {
    let mut by_segment: BTreeMap<u32, Vec<(u64, u64)>> = BTreeMap::new();
    for r in ranges.iter().filter(|r| !r.data.is_empty()) {
        by_segment
            .entry(r.segment)
            .or_default()
            .push((r.offset, r.offset.saturating_add(r.data.len() as u64)));
    }
    let mut out = Vec::new();
    for (seg, mut spans) in by_segment {
        spans.sort_unstable();
        let mut current: Option<(u64, u64)> = None;
        for (s, e) in spans {
            match &mut current {
                Some((_, ce)) if s <= *ce => *ce = (*ce).max(e),
                _ => {
                    if let Some((cs, ce)) = current {
                        out.push((seg, cs, ce));
                    }
                    current = Some((s, e));
                }
            }
        }
        if let Some((cs, ce)) = current {
            out.push((seg, cs, ce));
        }
    }
    out
}

fn monitor_hits(monitors: &[AddrSpec], ranges: &[PlannedRange], out: &mut dyn Write) -> Result<()> {
    for r in ranges {
        let r_end = r.address.saturating_add(r.data.len() as u64);
        for m in monitors {
            let m_end = m.address.saturating_add(m.length());
            let start = r.address.max(m.address);
            let end = r_end.min(m_end);
            if start >= end {
                continue;
            }
            let data = &r.data[(start - r.address) as usize..(end - r.address) as usize];
            writeln!(
                out,
                "monitor {:#x}: LSN {} (offset {}) range {} writes {start:#x}..{end:#x}: {}",
                m.address,
                r.lsn,
                r.record_offset,
                r.number,
                format_values(data, &m.format)
            )?;
        }
    }
    Ok(())
}

/// `recover [update|no_update] [prefix]`.
pub fn recover(
    session: &mut Session,
    update: bool,
    prefix: bool,
    out: &mut dyn Write,
) -> Result<Outcome> {
    let json = session.json;
    let path = session.log_ref()?.path.clone();
    let end = session.log_mut()?.scan()?.end.clone();
    let records = live_records(session)?;
    let ranges = plan(&records)?;
    let used: BTreeSet<u32> = ranges.iter().map(|r| r.segment).collect();
    let segments = resolve_segments(session, &used)?;
    let table = session.log_ref()?.status().segments.clone();
    let kind_of = |i: u32| table.get(i as usize).map(|e| e.kind).unwrap_or_default();
    let first = records.first().map(|r| r.header.lsn);
    let last = records.last().map(|r| r.header.lsn);
    let extents = extents(&ranges);
    let bytes: u64 = extents.iter().map(|(_, s, e)| e - s).sum();
    let corrupt = matches!(end, ScanEnd::Corrupt { .. });
    if !update {
        if json {
            let v = json!({
                "log": path.display().to_string(),
                "update": false,
                "records": records.len(),
                "first_lsn": first,
                "last_lsn": last,
                "ranges": ranges.iter().map(|r| json!({
                    "lsn": r.lsn, "range": r.number, "segment": r.segment, "offset": r.offset,
                    "length": r.data.len(), "address": r.address,
                    "region": segments.get(&r.segment).and_then(|s| s.as_ref().ok())
                        .and_then(|(_, h)| h.region_containing(r.offset, r.data.len() as u64)),
                })).collect::<Vec<_>>(),
                "extents": extents.iter().map(|(s, a, b)| json!({"segment": s, "offset": a, "length": b - a})).collect::<Vec<_>>(),
                "bytes": bytes,
                "segments": segments.iter().map(|(i, s)| match s {
                    Ok((p, h)) => json!({"index": i, "kind": kind_of(*i).name(), "uuid": h.uuid.to_string(), "path": p.display().to_string()}),
                    Err(e) => json!({"index": i, "error": e}),
                }).collect::<Vec<_>>(),
                "blocked_by_corruption": corrupt,
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            return Ok(Outcome::Continue);
        }
        match (first, last) {
            (Some(a), Some(b)) => writeln!(
                out,
                "Recover (dry run, nothing is written) of {}: {} records, LSN {a}..{b}, {} ranges",
                path.display(),
                records.len(),
                ranges.len()
            )?,
            _ => {
                writeln!(
                    out,
                    "Recover (dry run) of {}: log is empty, nothing to apply",
                    path.display()
                )?;
                return Ok(Outcome::Continue);
            }
        }
        for r in &ranges {
            let target = match segments.get(&r.segment) {
                Some(Ok((_, h))) => match h.region_containing(r.offset, r.data.len() as u64) {
                    Some(i) => format!("region {i}"),
                    None => "OUTSIDE every region: recovery would refuse it".into(),
                },
                _ => "segment not found".into(),
            };
            writeln!(
                out,
                "  LSN {} range {}: segment {} offset {} ({:#x}) length {} -> {target}, address {:#x}",
                r.lsn,
                r.number,
                r.segment,
                r.offset,
                r.offset,
                r.data.len(),
                r.address
            )?;
        }
        writeln!(
            out,
            "would write {bytes} bytes in {} extent(s):",
            extents.len()
        )?;
        for (s, a, b) in &extents {
            writeln!(out, "  segment {s}: offset {a}..{b} ({} bytes)", b - a)?;
        }
        for (i, s) in &segments {
            match s {
                Ok((p, h)) if kind_of(*i) == SegmentKind::PlainFile => writeln!(
                    out,
                    "segment {i} is the plain file {} ({}, {} bytes)",
                    p.display(),
                    FileIdentity::from_uuid(&h.uuid),
                    h.length_bytes
                )?,
                Ok((p, h)) => writeln!(out, "segment {i} ({}) is {}", h.uuid, p.display())?,
                Err(e) => writeln!(out, "? {e}")?,
            }
        }
        monitor_hits(&session.monitors, &ranges, out)?;
        if corrupt {
            writeln!(
                out,
                "? the log is damaged in the middle: recover refuses it unless given `prefix` (apply only the records before the damage)"
            )?;
        }
        return Ok(Outcome::Continue);
    }
    if records.is_empty() && !corrupt {
        writeln!(out, "{}: log is empty, nothing to recover", path.display())?;
        return Ok(Outcome::Continue);
    }
    if corrupt && !prefix {
        bail!(
            "{}: the log is damaged in the middle (see find_tail); nothing was written. `recover prefix` applies only the {} records before the damage",
            path.display(),
            records.len()
        );
    }
    monitor_hits(&session.monitors, &ranges, out)?;
    let mut options = Options::default()
        .truncate_threshold(0)
        .background_recovery(false)
        .recover_prefix(prefix);
    for p in session
        .segment_files
        .values()
        .chain(session.extra_segment_files.iter())
    {
        options = options.segment_path(p.clone());
    }
    let rvm = Rvm::open(&path, options).map_err(|e| match e {
        rvm::Error::SegmentNotFound { .. } => {
            anyhow!("{e}\n  (nothing was written; tell rvmutl where it is: set seg_dict N = FILE, or --segment FILE)")
        }
        rvm::Error::SegmentUnusable { .. } => {
            anyhow!("{e}\n  (nothing was written; repair or restore that file, or tell rvmutl where a good copy is: set seg_dict N = FILE, or --segment FILE)")
        }
        e => anyhow!("{e}\n  (recovery stopped; see check)"),
    })?;
    rvm.close()?;
    let no_tail = false;
    let reopened = crate::logview::OpenLog::open(&path, no_tail)?;
    let (head_offset, head_lsn) = reopened.head();
    if json {
        let v = json!({
            "log": path.display().to_string(),
            "update": true,
            "applied_records": records.len(),
            "first_lsn": first,
            "last_lsn": last,
            "bytes": bytes,
            "segments": segments.iter().filter_map(|(i, s)| s.as_ref().ok().map(|(p, _)| json!({"index": i, "path": p.display().to_string()}))).collect::<Vec<_>>(),
            "head_offset": head_offset,
            "head_lsn": head_lsn,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        writeln!(
            out,
            "recovered {}: applied {} records (LSN {}..{}), {bytes} bytes in {} extent(s)",
            path.display(),
            records.len(),
            first.unwrap_or(0),
            last.unwrap_or(0),
            extents.len()
        )?;
        for (i, s) in &segments {
            if let Ok((p, _)) = s {
                writeln!(out, "  wrote segment {i}: {}", p.display())?;
            }
        }
        writeln!(
            out,
            "  log is now empty: head at offset {head_offset}, LSN {head_lsn}"
        )?;
    }
    session.replace_log(reopened);
    Ok(Outcome::Continue)
}

/// `show mods ADDR/FMT [= VALUES]`: newest first, the ranges that wrote the address range.
pub fn show_mods(
    session: &mut Session,
    spec: &AddrSpec,
    values: &[Value],
    out: &mut dyn Write,
) -> Result<()> {
    let expected = if values.is_empty() {
        None
    } else {
        Some(encode_values(values, spec.format.size, 1).map_err(|e| anyhow!("{e}"))?)
    };
    let want_start = spec.address;
    let want_end = spec.address.saturating_add(match &expected {
        Some(e) => e.len() as u64,
        None => spec.length(),
    });
    let records = live_records(session)?;
    let ranges = plan(&records)?;
    let mut hits = 0;
    for r in ranges.iter().rev() {
        let r_end = r.address.saturating_add(r.data.len() as u64);
        let start = r.address.max(want_start);
        let end = r_end.min(want_end);
        if start >= end {
            continue;
        }
        if let Some(e) = &expected {
            if r.address > want_start || r_end < want_end {
                continue;
            }
            let at = (want_start - r.address) as usize;
            if &r.data[at..at + e.len()] != e.as_slice() {
                continue;
            }
        }
        let data = &r.data[(start - r.address) as usize..(end - r.address) as usize];
        let fmt = Format {
            count: 1,
            ..spec.format
        };
        writeln!(
            out,
            "LSN {} (offset {}) range {}: address {:#x} length {} writes {start:#x}..{end:#x}: {}",
            r.lsn,
            r.record_offset,
            r.number,
            r.address,
            r.data.len(),
            format_values(data, &fmt)
        )?;
        hits += 1;
    }
    writeln!(
        out,
        "{hits} range{} of the live log modified {want_start:#x}..{want_end:#x}{}",
        if hits == 1 { "" } else { "s" },
        if expected.is_some() {
            " to the given values"
        } else {
            ""
        }
    )?;
    Ok(())
}
