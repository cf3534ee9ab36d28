//! How records are shown: the text of a record and of its sub-records (header, ranges,
//! trailer), its JSON, and how the chain of records ends.

use super::*;

/// Number of sub-records: header, each range, trailer.
pub(super) fn sub_count(rec: &Record) -> usize {
    if rec.header.kind == KIND_PAD {
        2
    } else {
        rec.header.range_count as usize + 2
    }
}

pub(super) fn place_note(log: &OpenLog, lsn: u64) -> &'static str {
    match log.place(lsn) {
        Place::Live => "",
        Place::Applied => "  (applied: before the head)",
        Place::Beyond => "  (beyond the end of the chain)",
    }
}

/// The text printout of a record: a summary line, then each range with a data preview.
pub(crate) fn record_lines(log: &OpenLog, rec: &Record) -> Vec<String> {
    let h = &rec.header;
    let mut lines = Vec::new();
    if h.kind == KIND_PAD {
        let what = if log.is_wrap_pad(rec.offset, h.length, h.kind) {
            "fills the end of the area; the log wraps to its start"
        } else {
            "fills to a sector boundary"
        };
        lines.push(format!(
            "Record LSN {} at offset {} ({:#x}), {} bytes: PAD ({what}){}",
            h.lsn,
            rec.offset,
            rec.offset,
            h.length,
            place_note(log, h.lsn)
        ));
        return lines;
    }
    lines.push(format!(
        "Record LSN {} at offset {} ({:#x}), {} bytes: {} {}{}",
        h.lsn,
        rec.offset,
        rec.offset,
        h.length,
        kind_name(h.kind),
        tx_flags(h.flags).join(" "),
        place_note(log, h.lsn)
    ));
    lines.push(format!(
        "  committed {}, generation {}, flush batch from LSN {}, {} range{}",
        time_us(h.time_us),
        h.generation,
        h.batch_first_lsn,
        h.range_count,
        if h.range_count == 1 { "" } else { "s" }
    ));
    for (i, r) in rec.ranges().enumerate() {
        match r {
            Ok(r) => {
                lines.push(range_line(log, i + 1, &r));
                lines.extend(preview(r.data, r.header.offset, "      "));
            }
            Err(e) => {
                lines.push(format!("  range {}: malformed: {e}", i + 1));
                break;
            }
        }
    }
    lines
}

fn segment_name(log: &OpenLog, index: u32) -> String {
    match log.status().segments.get(index as usize) {
        Some(s) if s.file_identity().is_some() => format!("plain file {}", s.path_hint),
        Some(s) if !s.path_hint.is_empty() => s.path_hint.clone(),
        Some(s) => s.uuid.to_string(),
        None => "not in the segment table".into(),
    }
}

fn range_line(log: &OpenLog, number: usize, r: &rvm::format::log::RangeRef<'_>) -> String {
    let h = &r.header;
    format!(
        "  range {number}: segment {} ({}), offset {} ({:#x}), length {}, address {:#x}",
        h.segment,
        segment_name(log, h.segment),
        h.offset,
        h.offset,
        h.length,
        h.address
    )
}

/// The first [`render::PREVIEW_BYTES`] of range data as a hex dump.
pub(crate) fn preview(data: &[u8], base: u64, indent: &str) -> Vec<String> {
    let shown = data.len().min(render::PREVIEW_BYTES);
    let mut lines = hex_lines(&data[..shown], base, indent);
    if data.len() > shown {
        lines.push(format!("{indent}... {} more bytes", data.len() - shown));
    }
    lines
}

pub(super) fn sub_record_lines(log: &OpenLog, rec: &Record, sub: usize) -> Vec<String> {
    let h = &rec.header;
    let n = sub_count(rec);
    if sub == 0 {
        let mut lines = vec![format!(
            "Record LSN {} header at offset {}: {}, {} bytes{}",
            h.lsn,
            rec.offset,
            if h.kind == KIND_PAD {
                "PAD".to_string()
            } else {
                format!("{} {}", kind_name(h.kind), tx_flags(h.flags).join(" "))
            },
            h.length,
            place_note(log, h.lsn)
        )];
        lines.push(if h.kind == KIND_PAD {
            format!(
                "  generation {}, flush batch from LSN {}",
                h.generation, h.batch_first_lsn
            )
        } else {
            format!(
                "  generation {}, flush batch from LSN {}, committed {}, {} ranges",
                h.generation,
                h.batch_first_lsn,
                time_us(h.time_us),
                h.range_count
            )
        });
        return lines;
    }
    if sub == n - 1 {
        return vec![format!(
            "Record LSN {} trailer (end marker) at offset {}: LSN {}, length {}, CRC verified",
            h.lsn,
            rec.offset + h.length - RECORD_TRAILER_SIZE as u64,
            h.lsn,
            h.length
        )];
    }
    match rec.ranges().nth(sub - 1) {
        Some(Ok(r)) => {
            let at = rec.offset + RECORD_HEADER_SIZE as u64 + r.body_offset as u64;
            let mut lines = vec![format!(
                "Record LSN {} range {} of {} at offset {at}:",
                h.lsn, sub, h.range_count
            )];
            lines.push(range_line(log, sub, &r));
            lines.extend(preview(r.data, r.header.offset, "      "));
            lines
        }
        Some(Err(e)) => vec![format!("Record LSN {} range {sub}: malformed: {e}", h.lsn)],
        None => vec![format!("Record LSN {} has no range {sub}", h.lsn)],
    }
}

pub(crate) fn record_json(log: &OpenLog, rec: &Record) -> Json {
    let h = &rec.header;
    let ranges: Vec<Json> = rec
        .ranges()
        .map(|r| match r {
            Ok(r) => json!({
                "segment": r.header.segment,
                "offset": r.header.offset,
                "length": r.header.length,
                "address": r.header.address,
                "data_hex": hex_string(r.data, render::PREVIEW_BYTES),
            }),
            Err(e) => json!({"error": e.to_string()}),
        })
        .collect();
    let place = match log.place(h.lsn) {
        Place::Live => "live",
        Place::Applied => "applied",
        Place::Beyond => "beyond",
    };
    json!({
        "lsn": h.lsn,
        "offset": rec.offset,
        "length": h.length,
        "kind": kind_name(h.kind).to_ascii_lowercase(),
        "wrap": log.is_wrap_pad(rec.offset, h.length, h.kind),
        "flags": if h.kind == KIND_PAD { Vec::new() } else { tx_flags(h.flags) },
        "committed_unix_us": h.time_us,
        "generation": h.generation,
        "batch_first_lsn": h.batch_first_lsn,
        "range_count": h.range_count,
        "place": place,
        "ranges": ranges,
    })
}

/// How the chain of records ends, in words.
pub(crate) fn end_text(log: &OpenLog) -> Result<Vec<String>> {
    let Some(scan) = &log.scan else {
        return Ok(vec!["-- tail not located (opened no_tail)".into()]);
    };
    Ok(match &scan.end {
        ScanEnd::End => vec![format!(
            "-- end of log at offset {} (next LSN {}): {} records, {} bytes",
            scan.tail_offset,
            scan.next_lsn,
            scan.records.len(),
            log.used_bytes()
        )],
        ScanEnd::TornTail { offset, detail } => vec![
            format!(
                "-- torn tail at offset {offset} (LSN {} expected): {detail}",
                scan.next_lsn
            ),
            "   a write interrupted by a crash: nothing after it was acknowledged; recovery discards it".into(),
        ],
        ScanEnd::Corrupt {
            offset,
            lsn,
            detail,
            later_lsn,
            later_offset,
        } => {
            let clean = log.status().is_clean();
            vec![
                format!("-- DAMAGE at offset {offset} (LSN {lsn} expected): {detail}"),
                if clean {
                    format!(
                        "   mid-log corruption, not a torn tail: the log was closed cleanly with its tail at offset {later_offset} (records up to LSN {later_lsn})"
                    )
                } else {
                    format!(
                        "   mid-log corruption, not a torn tail: a later flush follows (LSN {later_lsn} at offset {later_offset})"
                    )
                },
                "   recovery refuses this log; `recover prefix` applies only the records before the damage".into(),
            ]
        }
    })
}

pub(crate) fn end_json(end: &ScanEnd) -> Json {
    match end {
        ScanEnd::End => json!({"kind": "end"}),
        ScanEnd::TornTail { offset, detail } => {
            json!({"kind": "torn_tail", "offset": offset, "detail": detail})
        }
        ScanEnd::Corrupt {
            offset,
            lsn,
            detail,
            later_lsn,
            later_offset,
        } => json!({
            "kind": "corrupt", "offset": offset, "lsn": lsn, "detail": detail,
            "later_lsn": later_lsn, "later_offset": later_offset,
        }),
    }
}
