//! The session commands that describe a log without changing it: `show` and its items
//! (status, statistics, the segment dictionary, records), and the JSON forms.

use std::io::Write;

use anyhow::{anyhow, bail, Result};
use rvm::format::log::{Counters, KIND_PAD, STATUS_SLOT_SIZE};
use rvm::log::{Record, ScanEnd};
use serde_json::{json, Value as Json};

use super::records::{end_json, end_text, record_json, record_lines, sub_record_lines};
use super::{Cursor, Session};
use crate::logview::Place;
use crate::parse::ShowItem;
use crate::render::{kind_name, percent, time_ms, time_us};

impl Session {
    pub(super) fn all_spec(&mut self, out: &mut dyn Write) -> Result<()> {
        let log = self.log_mut()?;
        let records = log.live()?;
        let mut n = 0;
        for r in records
            .iter()
            .rev()
            .filter(|r| r.kind != rvm::format::log::KIND_TRANSACTION)
        {
            match log.read(r.offset) {
                Ok(rec) => {
                    for l in record_lines(log, &rec) {
                        writeln!(out, "{l}")?;
                    }
                }
                Err(e) => writeln!(out, "? record at offset {}: {e}", r.offset)?,
            }
            n += 1;
        }
        writeln!(out, "{n} special (pad) records")?;
        Ok(())
    }

    pub(super) fn seg_dict(&mut self, out: &mut dyn Write) -> Result<()> {
        let log = self.log_ref()?;
        let segments = &log.status().segments;
        writeln!(
            out,
            "Segment table of {} ({} entr{})",
            log.path.display(),
            segments.len(),
            if segments.len() == 1 { "y" } else { "ies" }
        )?;
        for (i, s) in segments.iter().enumerate() {
            if s.uuid == rvm::Uuid::NIL {
                writeln!(out, "  {i}: (free)")?;
                continue;
            }
            match s.file_identity() {
                Some(id) => writeln!(
                    out,
                    "  {i}: plain file {:?}, {id}, length {} bytes",
                    s.path_hint, s.length_bytes
                )?,
                None => writeln!(
                    out,
                    "  {i}: UUID {}, length {} bytes, path hint {:?}",
                    s.uuid, s.length_bytes, s.path_hint
                )?,
            }
            if let Some(p) = self.segment_files.get(&(i as u32)) {
                writeln!(out, "     recover uses {}", p.display())?;
            }
        }
        Ok(())
    }

    pub(super) fn show_statistics(&mut self, out: &mut dyn Write) -> Result<()> {
        let log = self.log_ref()?;
        let c: Counters = log.status().counters;
        writeln!(out, "Lifetime counters of log {}", log.path.display())?;
        for (name, v) in Counters::NAMES.iter().zip(c.values()) {
            writeln!(out, "  {name:<28}{v}")?;
        }
        Ok(())
    }

    pub(super) fn show_status(&mut self, out: &mut dyn Write) -> Result<()> {
        let json = self.json;
        let log = self.log_mut()?;
        let scanned = log.scan.is_some();
        let st = log.status().clone();
        // Entries freed for reuse (nil UUID) name no segment.
        let live_segments = st
            .segments
            .iter()
            .filter(|s| s.uuid != rvm::Uuid::NIL)
            .count();
        let plain_files = st
            .segments
            .iter()
            .filter(|s| s.uuid != rvm::Uuid::NIL && s.file_identity().is_some())
            .count();
        let (head_offset, head_lsn) = log.head();
        let (tail_offset, next_lsn) = log.end();
        let used = log.used_bytes();
        let area = st.area_size;
        let empty = next_lsn <= head_lsn;
        let first = if empty {
            None
        } else {
            log.read(head_offset).ok()
        };
        let last = match &log.scan {
            Some(s) => s.records.last().and_then(|r| log.read(r.offset).ok()),
            None => None,
        };
        let transactions: Vec<u64> = match &log.scan {
            Some(s) => s
                .records
                .iter()
                .filter(|r| r.kind != KIND_PAD)
                .map(|r| r.offset)
                .collect(),
            None => Vec::new(),
        };
        let first_tx = transactions.first().and_then(|o| log.read(*o).ok());
        let last_tx = transactions.last().and_then(|o| log.read(*o).ok());
        let current = log.reader.current_slot();
        let slots: Vec<Json> = (0..2)
            .map(|i| match log.reader.slot(i) {
                Ok(s) => json!({
                    "slot": i, "offset": i as u64 * STATUS_SLOT_SIZE, "valid": true,
                    "current": i == current, "sequence": s.sequence,
                    "written_unix_us": s.written_unix_ms.saturating_mul(1000),
                }),
                Err(e) => json!({
                    "slot": i, "offset": i as u64 * STATUS_SLOT_SIZE, "valid": false,
                    "current": false, "error": e.to_string(),
                }),
            })
            .collect();
        if json {
            let end = log.scan.as_ref().map(|s| end_json(&s.end));
            let v = json!({
                "log": log.path.display().to_string(),
                "log_uuid": st.log_uuid.to_string(),
                "format_version": st.version(),
                "slots": slots,
                "current_slot": current,
                "sequence": st.sequence,
                "created_unix_us": st.created_unix_ms.saturating_mul(1000),
                "written_unix_us": st.written_unix_ms.saturating_mul(1000),
                "last_truncation_unix_us": st.last_truncation_unix_ms.saturating_mul(1000),
                "clean": st.is_clean(),
                "flags": st.flags,
                "generation": st.generation,
                "generation_start_lsn": st.generation_start_lsn,
                "log_size_bytes": st.log_size_bytes,
                "area_offset": st.area_offset,
                "area_size": area,
                "area_written_through": st.zeroed_through_offset(),
                "head_offset": head_offset,
                "head_lsn": head_lsn,
                "status_tail_offset": st.tail_offset,
                "status_tail_lsn": st.tail_lsn,
                "tail_offset": tail_offset,
                "next_lsn": next_lsn,
                "tail_from_scan": scanned,
                "empty": empty,
                "used_bytes": used,
                "free_bytes": area - used,
                "first_lsn": first.as_ref().map(|r| r.header.lsn),
                "last_lsn": last.as_ref().map(|r| r.header.lsn),
                "transactions": transactions.len(),
                "first_transaction_lsn": first_tx.as_ref().map(|r| r.header.lsn),
                "last_transaction_lsn": last_tx.as_ref().map(|r| r.header.lsn),
                "first_commit_unix_us": first_tx.as_ref().map(|r| r.header.time_us),
                "last_commit_unix_us": last_tx.as_ref().map(|r| r.header.time_us),
                "segments": live_segments,
                "plain_files": plain_files,
                "end": end,
                "status_changed_in_memory": log.status_changed,
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            return Ok(());
        }
        let mut lines = vec![format!("Status of log {}", log.path.display())];
        let mut kv = |k: &str, v: String| lines.push(format!("  {:<22}{v}", format!("{k}:")));
        kv("log UUID", st.log_uuid.to_string());
        kv("format version", st.version().to_string());
        for i in 0..2 {
            let text = match log.reader.slot(i) {
                Ok(s) => format!(
                    "valid, sequence {}, written {}{}",
                    s.sequence,
                    time_ms(s.written_unix_ms),
                    if i == current { " (current)" } else { "" }
                ),
                Err(e) => {
                    let stored = crate::inspect::unverified_slot(&**log.reader.device(), i as u64);
                    match stored {
                        Some(st) => format!(
                            "DAMAGED: {e}\n{:24}{}",
                            "",
                            crate::inspect::unverified_summary(&st)
                        ),
                        None => format!("DAMAGED: {e}"),
                    }
                }
            };
            kv(&format!("status slot {i}"), text);
        }
        kv("created", time_ms(st.created_unix_ms));
        kv("status written", time_ms(st.written_unix_ms));
        kv("last truncation", time_ms(st.last_truncation_unix_ms));
        kv(
            "closed cleanly",
            if st.is_clean() { "yes" } else { "no" }.into(),
        );
        kv(
            "generation",
            format!("{} (from LSN {})", st.generation, st.generation_start_lsn),
        );
        kv(
            "log size",
            format!(
                "{} bytes (status slots {}, record area {} at offset {})",
                st.log_size_bytes, st.area_offset, area, st.area_offset
            ),
        );
        if st.zeroed_through_offset() < st.area_end() {
            let written = st.zeroed_through_offset() - st.area_offset;
            kv(
                "area written",
                format!(
                    "through offset {} ({written} of {area} bytes; the rest is reserved and is \
                     written with zeros ahead of the records as the log is first used)",
                    st.zeroed_through_offset()
                ),
            );
        }
        kv("head", format!("offset {head_offset}, LSN {head_lsn}"));
        kv(
            "tail (status)",
            format!("offset {}, LSN {}", st.tail_offset, st.tail_lsn),
        );
        kv(
            "tail (scan)",
            if scanned {
                format!("offset {tail_offset}, next LSN {next_lsn}")
            } else if let Some(e) = &log.scan_error {
                format!("not located: {e}")
            } else {
                "not located (opened no_tail; find_tail locates it)".into()
            },
        );
        kv(
            "log empty",
            if log.scan_error.is_some() {
                "unknown (the records cannot be walked)"
            } else if empty {
                "yes"
            } else {
                "no"
            }
            .into(),
        );
        kv(
            "space used",
            format!("{used} bytes ({})", percent(used, area)),
        );
        kv(
            "space free",
            format!("{} bytes ({})", area - used, percent(area - used, area)),
        );
        let describe = |r: &Option<Record>| match r {
            Some(r) => format!(
                "LSN {} ({})",
                r.header.lsn,
                kind_name(r.header.kind).to_lowercase()
            ),
            None => "none".into(),
        };
        let committed = |r: &Option<Record>| match r {
            Some(r) => format!(
                "LSN {}, committed {}",
                r.header.lsn,
                time_us(r.header.time_us)
            ),
            None => "none".into(),
        };
        kv("first record", describe(&first));
        kv("last record", describe(&last));
        // A record may hold several commits (`Options::coalesce_transactions`).
        kv("transaction records", transactions.len().to_string());
        kv("first transaction", committed(&first_tx));
        kv("last transaction", committed(&last_tx));
        kv(
            "segments",
            match plain_files {
                0 => live_segments.to_string(),
                n => format!(
                    "{live_segments} ({n} plain file{})",
                    if n == 1 { "" } else { "s" }
                ),
            },
        );
        for l in lines {
            writeln!(out, "{l}")?;
        }
        if scanned {
            for l in end_text(log)? {
                writeln!(out, "{l}")?;
            }
        }
        if log.status_changed {
            writeln!(
                out,
                "  (the status was changed with set; write_status writes it)"
            )?;
        }
        Ok(())
    }

    pub(super) fn records_json(&mut self, out: &mut dyn Write) -> Result<()> {
        let log = self.log_mut()?;
        let mut records = Vec::new();
        for r in log.live()? {
            match log.read(r.offset) {
                Ok(rec) => records.push(record_json(log, &rec)),
                Err(e) => records.push(json!({"offset": r.offset, "error": e.to_string()})),
            }
        }
        let end = end_json(&log.scan()?.end);
        let pieces: Vec<Json> = log
            .salvage()
            .iter()
            .map(|p| {
                json!({
                    "damage_offset": p.damage_offset,
                    "expected_lsn": p.expected_lsn,
                    "detail": p.detail,
                    "records": p.records.iter().map(|r| record_json(log, r)).collect::<Vec<_>>(),
                })
            })
            .collect();
        let (tail, next) = log.end();
        let v = json!({
            "log": log.path.display().to_string(),
            "head_offset": log.head().0,
            "head_lsn": log.head().1,
            "tail_offset": tail,
            "next_lsn": next,
            "records": records,
            "end": end,
            "after_damage": pieces,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        Ok(())
    }

    pub(super) fn show_items(&mut self, items: &[ShowItem], out: &mut dyn Write) -> Result<()> {
        for item in items {
            self.show_item(item, out)?;
        }
        Ok(())
    }

    pub(super) fn show_item(&mut self, item: &ShowItem, out: &mut dyn Write) -> Result<()> {
        match item {
            ShowItem::All => {
                let log = self.log_mut()?;
                if let Some(e) = &log.scan_error {
                    bail!("the records cannot be walked: {e}");
                }
                let records = log.live()?;
                let mut last = None;
                for r in &records {
                    match log.read(r.offset) {
                        Ok(rec) => {
                            for l in record_lines(log, &rec) {
                                writeln!(out, "{l}")?;
                            }
                            last = Some(rec.offset);
                        }
                        Err(e) => writeln!(out, "? record at offset {}: {e}", r.offset)?,
                    }
                }
                if records.is_empty() {
                    writeln!(out, "Log is empty")?;
                }
                for l in end_text(log)? {
                    writeln!(out, "{l}")?;
                }
                let torn = matches!(log.scan()?.end, ScanEnd::TornTail { .. });
                for piece in log.salvage() {
                    if torn {
                        writeln!(
                            out,
                            "-- after the torn record at offset {} (part of the same interrupted flush; recovery discards these):",
                            piece.damage_offset
                        )?;
                    } else {
                        writeln!(
                            out,
                            "-- after the damage at offset {} (LSN {} expected):",
                            piece.damage_offset, piece.expected_lsn
                        )?;
                    }
                    for rec in &piece.records {
                        for l in record_lines(log, rec) {
                            writeln!(out, "{l}")?;
                        }
                    }
                    if let Some(r) = piece.records.last() {
                        writeln!(
                            out,
                            "-- {} record(s) decoded after the damage, LSN {}..{}",
                            piece.records.len(),
                            piece.records[0].header.lsn,
                            r.header.lsn
                        )?;
                    }
                }
                if let Some(o) = last {
                    self.cursor = Some(Cursor { offset: o, sub: 0 });
                }
            }
            ShowItem::Remaining => {
                let start = match self.current()? {
                    Some(r) => {
                        let log = self.log_ref()?;
                        log.next_of(&r).ok()
                    }
                    None => self.head_record()?,
                };
                let Some(mut rec) = start else {
                    writeln!(out, "-- no more records")?;
                    return Ok(());
                };
                loop {
                    self.print_record(&rec, out)?;
                    let log = self.log_ref()?;
                    if let Some((lsn, offset)) = log.end_after(&rec) {
                        writeln!(
                            out,
                            "-- end of the log (the next record, LSN {lsn}, would go at offset \
                             {offset})"
                        )?;
                        break;
                    }
                    if log.place(rec.header.lsn + 1) == Place::Beyond {
                        break;
                    }
                    match log.next_of(&rec) {
                        Ok(n) => rec = n,
                        Err(e) => {
                            writeln!(out, "-- {e}")?;
                            break;
                        }
                    }
                }
            }
            ShowItem::Head => match self.head_record()? {
                Some(r) => self.print_record(&r, out)?,
                None => writeln!(out, "Log is empty")?,
            },
            ShowItem::Tail => match self.tail_record()? {
                Some(r) => self.print_record(&r, out)?,
                None => writeln!(out, "Log is empty")?,
            },
            ShowItem::Earliest => {
                let log = self.log_mut()?;
                match log.earliest() {
                    Some(r) => self.print_record(&r, out)?,
                    None => writeln!(out, "Log is empty and no applied record is intact")?,
                }
            }
            ShowItem::Next(n) => {
                for i in 0..*n {
                    let next = match self.current()? {
                        Some(r) => {
                            if let Some((lsn, offset)) = self.log_ref()?.end_after(&r) {
                                writeln!(
                                    out,
                                    "-- end of the log: no record after LSN {} (the next, LSN \
                                     {lsn}, would go at offset {offset})",
                                    r.header.lsn
                                )?;
                                break;
                            }
                            self.log_ref()?.next_of(&r)
                        }
                        None if i == 0 => match self.head_record()? {
                            Some(r) => Ok(r),
                            None => Err("Log is empty".into()),
                        },
                        None => Err("no current record".into()),
                    };
                    match next {
                        Ok(r) => self.print_record(&r, out)?,
                        Err(e) => {
                            writeln!(out, "-- no next record: {e}")?;
                            break;
                        }
                    }
                }
            }
            ShowItem::Prev(n) => {
                for i in 0..*n {
                    let prev = match self.current()? {
                        Some(r) => self.log_ref()?.prev_of(&r),
                        None if i == 0 => match self.tail_record()? {
                            Some(r) => Ok(r),
                            None => Err("Log is empty".into()),
                        },
                        None => Err("no current record".into()),
                    };
                    match prev {
                        Ok(r) => self.print_record(&r, out)?,
                        Err(e) => {
                            writeln!(out, "-- no previous record: {e}")?;
                            break;
                        }
                    }
                }
            }
            ShowItem::NextSub(n) => {
                for _ in 0..*n {
                    if !self.step_sub(true, out)? {
                        break;
                    }
                }
            }
            ShowItem::PrevSub(n) => {
                for _ in 0..*n {
                    if !self.step_sub(false, out)? {
                        break;
                    }
                }
            }
            ShowItem::SubRec => {
                let Some(rec) = self.current()? else {
                    writeln!(out, "-- no current record")?;
                    return Ok(());
                };
                let sub = self.cursor.map(|c| c.sub).unwrap_or(0);
                for l in sub_record_lines(self.log_ref()?, &rec, sub) {
                    writeln!(out, "{l}")?;
                }
            }
            ShowItem::Record { lsn, count } => {
                let rec = self.log_mut()?.find_lsn(*lsn).map_err(|e| anyhow!("{e}"))?;
                self.print_record(&rec, out)?;
                if *count > 1 {
                    self.show_item(&ShowItem::Next(count - 1), out)?;
                }
            }
            ShowItem::Mods { spec, values } => {
                crate::recover::show_mods(self, spec, values, out)?;
            }
            ShowItem::Monitor => {
                if self.monitors.is_empty() {
                    writeln!(out, "no monitored ranges")?;
                }
                for (i, m) in self.monitors.iter().enumerate() {
                    writeln!(
                        out,
                        "  {}: {:#x}..{:#x} ({} x {} bytes)",
                        i + 1,
                        m.address,
                        m.address.saturating_add(m.length()),
                        m.format.count,
                        m.format.size.bytes()
                    )?;
                }
            }
            ShowItem::SegDict => self.seg_dict(out)?,
            ShowItem::Status => self.show_status(out)?,
            ShowItem::Statistics => self.show_statistics(out)?,
            ShowItem::Timestamp => self.show_timestamp(out)?,
            ShowItem::Uname => self.show_uname(out)?,
        }
        Ok(())
    }
}
