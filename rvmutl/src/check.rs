//! `check LOG [DATA]`: verify everything that can be verified without writing, and report
//! every problem with the file and offset where it is.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use anyhow::Result;
use rvm::device::Access;
use rvm::format::log::{SegmentEntry, STATUS_SLOT_SIZE};
use rvm::format::segment::SegmentHeader;
use rvm::log::{current_slot, read_slots, Record, ScanEnd};
use serde_json::json;

use crate::inspect::Note;
use crate::logview::{open_read_only, OpenLog};

/// One thing found wrong.
#[derive(Debug, Clone)]
pub struct Problem {
    pub file: String,
    pub offset: Option<u64>,
    /// A short machine-readable name: status_slot, torn_tail, corruption, ...
    pub kind: &'static str,
    pub detail: String,
}

/// What `check` found.
#[derive(Debug, Default)]
pub struct Report {
    pub log: String,
    pub data: Option<String>,
    /// What was checked and found sound, for the text report.
    pub notes: Vec<Note>,
    pub problems: Vec<Problem>,
    pub records_checked: u64,
    pub ranges_checked: u64,
}

impl Report {
    fn problem(&mut self, file: &str, offset: Option<u64>, kind: &'static str, detail: String) {
        self.problems.push(Problem {
            file: file.to_string(),
            offset,
            kind,
            detail,
        });
    }

    pub fn print(&self, out: &mut dyn Write, json: bool) -> Result<()> {
        if json {
            let v = json!({
                "log": self.log,
                "data": self.data,
                "ok": self.problems.is_empty(),
                "records_checked": self.records_checked,
                "ranges_checked": self.ranges_checked,
                "notes": self.notes.iter().map(Note::to_json).collect::<Vec<_>>(),
                "problems": self.problems.iter().map(|p| json!({
                    "file": p.file, "offset": p.offset, "kind": p.kind, "detail": p.detail,
                })).collect::<Vec<_>>(),
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            return Ok(());
        }
        for n in &self.notes {
            // The file being checked heads its notes.
            let indent = if matches!(n.kind, "log" | "segment") {
                ""
            } else {
                "  "
            };
            writeln!(out, "{indent}{}", n.text)?;
        }
        for p in &self.problems {
            match p.offset {
                Some(o) => writeln!(
                    out,
                    "PROBLEM {} offset {o} ({o:#x}): {}: {}",
                    p.file, p.kind, p.detail
                )?,
                None => writeln!(out, "PROBLEM {}: {}: {}", p.file, p.kind, p.detail)?,
            }
        }
        match self.problems.len() {
            0 => writeln!(out, "no problems found")?,
            1 => writeln!(out, "1 problem found")?,
            n => writeln!(out, "{n} problems found")?,
        }
        Ok(())
    }
}

/// Check a log and optionally a data segment. `Err` only when a file cannot be read at all.
pub fn check(log_path: &Path, data: Option<&Path>) -> Result<Report> {
    let log_name = log_path.display().to_string();
    let mut report = Report {
        log: log_name.clone(),
        data: data.map(|d| d.display().to_string()),
        ..Report::default()
    };
    report.notes.push(Note::new(
        "log",
        format!("Checking log {log_name}"),
        json!({"file": log_name}),
    ));
    let device = open_read_only(log_path)?;
    let slots = read_slots(&device)?;
    let current = current_slot(&slots);
    for (i, slot) in slots.iter().enumerate() {
        let offset = i as u64 * STATUS_SLOT_SIZE;
        match slot {
            Ok(s) => report.notes.push(Note::new(
                "status_slot",
                format!(
                    "status slot {i} (offset {offset}): valid, sequence {}{}",
                    s.sequence,
                    if current == Some(i) { " (current)" } else { "" }
                ),
                json!({"slot": i, "offset": offset, "valid": true, "sequence": s.sequence,
                       "current": current == Some(i)}),
            )),
            Err(e) => {
                let stored = crate::inspect::unverified_slot(&device, i as u64)
                    .map(|s| format!("; {}", crate::inspect::unverified_summary(&s)))
                    .unwrap_or_default();
                report.problem(
                    &log_name,
                    Some(offset),
                    "status_slot",
                    format!("status slot {i} is damaged: {e}{stored}"),
                )
            }
        }
    }
    if let (Ok(a), Ok(b)) = (&slots[0], &slots[1]) {
        if a.log_uuid != b.log_uuid || a.area_offset != b.area_offset || a.area_size != b.area_size
        {
            report.problem(
                &log_name,
                Some(0),
                "status_slot",
                format!(
                    "the status slots describe different logs (UUID {} / {}, area {} / {} bytes)",
                    a.log_uuid, b.log_uuid, a.area_size, b.area_size
                ),
            );
        }
    }
    // The segment is read now (ranges are checked against it) and reported after the log.
    let mut segment_report = Report::default();
    let segment_header = match data {
        Some(d) => check_segment_header(d, &mut segment_report),
        None => None,
    };
    if current.is_none() {
        report.problem(
            &log_name,
            Some(0),
            "status",
            "no valid status slot: the log cannot be opened or its records verified".into(),
        );
        report.notes.append(&mut segment_report.notes);
        report.problems.append(&mut segment_report.problems);
        return Ok(report);
    }
    drop(device);
    let mut log = match OpenLog::open(log_path, true) {
        Ok(l) => l,
        Err(e) => {
            report.problem(&log_name, None, "log", e.to_string());
            report.notes.append(&mut segment_report.notes);
            report.problems.append(&mut segment_report.problems);
            return Ok(report);
        }
    };
    if let Some(reason) = log.reader.head_problem() {
        let head = log.status().head_offset;
        report.problem(
            &log_name,
            Some(log.reader.current_slot() as u64 * STATUS_SLOT_SIZE),
            "status_head",
            format!("{reason}; recovery refuses the log (head offset {head})"),
        );
        finish_without_records(&mut log, &log_name, &mut report);
        report.notes.append(&mut segment_report.notes);
        report.problems.append(&mut segment_report.problems);
        return Ok(report);
    }
    let scan = log.rescan()?.clone();
    let mut records: Vec<Record> = Vec::new();
    for r in &scan.records {
        match log.read(r.offset) {
            Ok(rec) => records.push(rec),
            Err(e) => report.problem(&log_name, Some(r.offset), "record", e.to_string()),
        }
    }
    match (scan.records.first(), scan.records.last()) {
        (Some(a), Some(b)) => report.notes.push(Note::new(
            "records",
            format!(
                "records: {} intact from LSN {} at offset {} to LSN {}; the chain ends at offset {} (next LSN {})",
                scan.records.len(),
                a.lsn,
                a.offset,
                b.lsn,
                scan.tail_offset,
                scan.next_lsn
            ),
            json!({"intact": scan.records.len(), "first_lsn": a.lsn, "first_offset": a.offset,
                   "last_lsn": b.lsn, "end_offset": scan.tail_offset, "next_lsn": scan.next_lsn}),
        )),
        _ => report.notes.push(Note::new(
            "records",
            format!(
                "records: none (the log is empty); the chain ends at offset {} (next LSN {})",
                scan.tail_offset, scan.next_lsn
            ),
            json!({"intact": 0, "end_offset": scan.tail_offset, "next_lsn": scan.next_lsn}),
        )),
    }
    match &scan.end {
        ScanEnd::End => {}
        ScanEnd::TornTail { offset, detail } => report.problem(
            &log_name,
            Some(*offset),
            "torn_tail",
            format!(
                "record LSN {} is torn ({detail}): a write interrupted by a crash at the end of the log; recovery discards it and nothing acknowledged is lost",
                scan.next_lsn
            ),
        ),
        ScanEnd::Corrupt {
            offset,
            lsn,
            detail,
            later_lsn,
            later_offset,
        } => report.problem(
            &log_name,
            Some(*offset),
            "corruption",
            format!(
                "record LSN {lsn} is damaged ({detail}) but committed records follow (up to LSN {later_lsn}, offset {later_offset}): mid-log corruption, recovery refuses the log"
            ),
        ),
    }
    let pieces = log.salvage();
    let torn = matches!(scan.end, ScanEnd::TornTail { .. });
    for (i, piece) in pieces.iter().enumerate() {
        if i > 0 {
            report.problem(
                &log_name,
                Some(piece.damage_offset),
                "corruption",
                format!(
                    "record LSN {} is damaged ({}) after records salvaged past earlier damage",
                    piece.expected_lsn, piece.detail
                ),
            );
        }
        if let (Some(a), Some(b)) = (piece.records.first(), piece.records.last()) {
            report.notes.push(Note::new(
                "salvaged",
                format!(
                    "after the {} at offset {}: {} intact record(s), LSN {}..{}{}",
                    if torn { "torn record" } else { "damage" },
                    piece.damage_offset,
                    piece.records.len(),
                    a.header.lsn,
                    b.header.lsn,
                    if torn {
                        " (part of the same interrupted flush; recovery discards them)"
                    } else {
                        ""
                    }
                ),
                json!({"after_offset": piece.damage_offset, "after_torn_tail": torn,
                       "intact": piece.records.len(), "first_lsn": a.header.lsn,
                       "last_lsn": b.header.lsn}),
            ));
        }
        records.extend(piece.records.iter().cloned());
    }
    let table = log.status().segments.clone();
    report.notes.push(table_note(&table));
    // Plain files: each opened (read-only) by its recorded path and checked against the
    // recorded identity and length, as recovery will check it.
    let mut plain: BTreeMap<usize, Result<SegmentHeader, String>> = BTreeMap::new();
    for (i, entry) in table.iter().enumerate() {
        if entry.uuid == rvm::Uuid::NIL || entry.file_identity().is_none() {
            continue;
        }
        let found = rvm::segment::open_plain_file(&log_name, entry, Access::ReadOnly)
            .map(|(_, h)| h)
            .map_err(|e| e.to_string());
        plain.insert(i, found);
    }
    let data_index = segment_header.as_ref().and_then(|h| {
        let i = table.iter().position(|s| s.uuid == h.uuid);
        if i.is_none() {
            segment_report.notes.push(Note::new(
                "segment_not_in_log",
                format!(
                    "note: the log does not name segment {} (its ranges cannot be checked against it)",
                    h.uuid
                ),
                json!({"uuid": h.uuid.to_string()}),
            ));
        }
        i
    });
    let mut named: BTreeSet<usize> = BTreeSet::new();
    for rec in &records {
        report.records_checked += 1;
        for (n, range) in rec.ranges().enumerate() {
            let range = match range {
                Ok(r) => r,
                Err(e) => {
                    report.problem(&log_name, Some(rec.offset), "range", e.to_string());
                    break;
                }
            };
            report.ranges_checked += 1;
            let h = range.header;
            if table
                .get(h.segment as usize)
                .is_none_or(|s| s.uuid == rvm::Uuid::NIL)
            {
                report.problem(
                    &log_name,
                    Some(rec.offset),
                    "segment_index",
                    format!(
                        "record LSN {} range {} names segment {}, which the segment table does not hold",
                        rec.header.lsn,
                        n + 1,
                        h.segment
                    ),
                );
                continue;
            }
            if let Some(Ok(header)) = plain.get(&(h.segment as usize)) {
                if header.region_containing(h.offset, h.length).is_none() {
                    report.problem(
                        &log_name,
                        Some(rec.offset),
                        "range_outside_file",
                        format!(
                            "record LSN {} range {} writes {} bytes at offset {}, past the end of the plain file {} ({} bytes)",
                            rec.header.lsn,
                            n + 1,
                            h.length,
                            h.offset,
                            table[h.segment as usize].path_hint,
                            header.length_bytes
                        ),
                    );
                }
                named.insert(h.segment as usize);
                continue;
            }
            named.insert(h.segment as usize);
            if let (Some(header), Some(di)) = (&segment_header, data_index) {
                if h.segment as usize == di
                    && header.region_containing(h.offset, h.length).is_none()
                {
                    report.problem(
                        &log_name,
                        Some(rec.offset),
                        "range_outside_segment",
                        format!(
                            "record LSN {} range {} writes {} bytes at segment offset {}, outside every region of {}",
                            rec.header.lsn,
                            n + 1,
                            h.length,
                            h.offset,
                            report.data.clone().unwrap_or_default()
                        ),
                    );
                }
            }
        }
    }
    for (i, found) in &plain {
        let entry = &table[*i];
        let path = &entry.path_hint;
        let identity = entry
            .file_identity()
            .unwrap_or(rvm::format::log::FileIdentity {
                device: 0,
                inode: 0,
            });
        match found {
            Ok(_) => report.notes.push(Note::new(
                "plain_file",
                format!(
                    "plain file {path} (segment {i}): {identity}, {} bytes, as the log records it",
                    entry.length_bytes
                ),
                json!({"index": i, "path": path, "device": identity.device, "inode": identity.inode,
                       "length_bytes": entry.length_bytes, "usable": true}),
            )),
            // Recovery needs the file only if a record names it.
            Err(e) if named.contains(i) => report.problem(path, None, "plain_file", e.clone()),
            Err(e) => report.notes.push(Note::new(
                "plain_file",
                format!("plain file {path} (segment {i}): no records to apply to it, and {e}"),
                json!({"index": i, "path": path, "device": identity.device, "inode": identity.inode,
                       "length_bytes": entry.length_bytes, "usable": false, "error": e}),
            )),
        }
    }
    report.notes.append(&mut segment_report.notes);
    report.problems.append(&mut segment_report.problems);
    if let (Some(d), Some(h)) = (data, &segment_header) {
        crate::inspect::check_heap(
            d,
            h,
            &mut |offset, kind, detail| {
                report.problems.push(Problem {
                    file: d.display().to_string(),
                    offset,
                    kind,
                    detail,
                })
            },
            &mut report.notes,
        )?;
    }
    Ok(report)
}

/// The notes that need no records (the segment table), for a log whose records cannot be
/// walked.
fn finish_without_records(log: &mut OpenLog, log_name: &str, report: &mut Report) {
    report.notes.push(Note::new(
        "records",
        format!("records: not walked ({log_name}'s current status gives no place to start)"),
        json!({"walked": false}),
    ));
    report.notes.push(table_note(&log.status().segments));
}

/// The note on the segment table: how many entries name a segment, and how many of those
/// are plain files (entries freed for reuse name nothing).
fn table_note(table: &[SegmentEntry]) -> Note {
    let live = table.iter().filter(|s| s.uuid != rvm::Uuid::NIL).count();
    let plain = table
        .iter()
        .filter(|s| s.uuid != rvm::Uuid::NIL && s.file_identity().is_some())
        .count();
    let text = match plain {
        0 => format!("segment table: {live} segment(s)"),
        n => format!("segment table: {live} segment(s), {n} of them plain file(s)"),
    };
    Note::new(
        "segment_table",
        text,
        json!({"segments": live, "plain_files": plain}),
    )
}

fn check_segment_header(data: &Path, report: &mut Report) -> Option<SegmentHeader> {
    let name = data.display().to_string();
    report.notes.push(Note::new(
        "segment",
        format!("Checking segment {name}"),
        json!({"file": name}),
    ));
    match rvm::segment::read_header(data) {
        Ok(h) => {
            report.notes.push(Note::new(
                "segment_header",
                format!(
                    "header: valid, UUID {}, {} regions, {} bytes",
                    h.uuid,
                    h.regions.len(),
                    h.length_bytes
                ),
                json!({"valid": true, "uuid": h.uuid.to_string(), "regions": h.regions.len(),
                       "length_bytes": h.length_bytes}),
            ));
            Some(h)
        }
        Err(e) => {
            report.problem(&name, Some(0), "segment_header", e.to_string());
            None
        }
    }
}
