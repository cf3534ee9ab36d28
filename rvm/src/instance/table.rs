//! The log's segment table (kept in the log status): claiming the entry of a segment being
//! mapped, keeping its path hint current, and reclaiming entries no record needs any more.
//!
//! A record names its segment by its index in the table, so an entry must stay while a record
//! that names it is still to be applied. Once every record is applied (nothing queued, the log
//! empty, nothing waiting for a sync), the entry of a segment that is not mapped carries no
//! information recovery needs: it can be freed, and mapping that segment again simply claims a
//! new entry. Entries are reclaimed
//!
//! * when the table is full and a new segment is mapped (the log is applied first), and
//! * when a segment is mapped from the path another, unmapped, entry was last seen at: the
//!   file there was re-created (rdsinit re-initializing a data file), so the old entry is
//!   replaced instead of piling up.

use super::segments::Slot;
use super::{lock, Inner};
use crate::error::{Error, Result};
use crate::format::log::{SegmentEntry, SegmentKind, PATH_HINT_BYTES_MAX, SEGMENTS_PER_LOG_MAX};
use crate::format::segment::SegmentHeader;
use crate::format::Uuid;
use crate::sync::read_lock;

/// The path hint recorded for `path`: too long a path is not recorded.
fn recordable(path: String) -> String {
    if path.len() <= PATH_HINT_BYTES_MAX {
        path
    } else {
        String::new()
    }
}

fn free_entry() -> SegmentEntry {
    SegmentEntry {
        kind: SegmentKind::Segment,
        uuid: Uuid::NIL,
        length_bytes: 0,
        path_hint: String::new(),
    }
}

fn empty_slot() -> Slot {
    Slot {
        entry: free_entry(),
        device: None,
        header: None,
        mapped: Vec::new(),
        remap_needs_truncate: false,
    }
}

/// Whether `slot` was last seen at `hint` and belongs to a segment (or plain file) other than
/// `kind`/`uuid` that is not mapped. Only absolute paths count: device names (tests,
/// in-memory devices) need not be unique.
fn stale_at(slot: &Slot, kind: SegmentKind, uuid: Uuid, hint: &str) -> bool {
    hint.starts_with('/')
        && !slot.free()
        && !slot.names(kind, uuid)
        && !slot.is_mapped()
        && slot.entry.path_hint == hint
}

impl Inner {
    /// Whether mapping segment `uuid` from `path` would reclaim entries, so the log should be
    /// applied first (the caller flushes and truncates before it takes the table's lock): the
    /// table is full without an entry for it, or another unmapped entry was last seen there.
    pub(super) fn table_wants_reclaim(&self, kind: SegmentKind, uuid: Uuid, path: &str) -> bool {
        let hint = recordable(path.to_string());
        let slots = read_lock(&self.segments);
        let full = !slots.iter().any(|s| s.names(kind, uuid) || s.free())
            && slots.len() >= SEGMENTS_PER_LOG_MAX;
        full || slots.iter().any(|s| stale_at(s, kind, uuid, &hint))
    }

    /// Refuse, before anything is written, a new segment the table could not take: when the
    /// table is full, the log is applied first, and an entry must then be reclaimable. (A
    /// caller about to overwrite a file checks this first, so a refusal leaves the file as it
    /// was.)
    pub(crate) fn check_room_for_new_segment(&self) -> Result<()> {
        let full =
            |slots: &[Slot]| !slots.iter().any(|s| s.free()) && slots.len() >= SEGMENTS_PER_LOG_MAX;
        if !full(&read_lock(&self.segments)) {
            return Ok(());
        }
        self.flush_all()?;
        self.truncate_now(false)?;
        let slots = read_lock(&self.segments);
        if !full(&slots) || (slots.iter().any(|s| !s.is_mapped()) && self.all_records_applied()) {
            return Ok(());
        }
        Err(Error::TooManySegments {
            log: self.log_name.clone(),
            max: SEGMENTS_PER_LOG_MAX,
        })
    }

    /// Every record is applied and synced to its segment: nothing is queued or being flushed,
    /// the log is empty, and recovery has nothing waiting for a sync. Unmapped segments cannot
    /// get new records, so while the table's lock is held their entries may be freed.
    fn all_records_applied(&self) -> bool {
        let queue_done = {
            let q = lock(&self.queue);
            q.queued_seq == q.durable_seq && !q.flushing && q.records.is_empty()
        };
        let p = lock(&self.pos);
        queue_done && p.is_empty() && p.pending_sync.is_empty() && !p.truncating
    }

    /// The table index of segment `header` (of `kind`: a plain file's header is made up, its
    /// UUID being the file's identity bytes and its length the file's), mapped from `path`
    /// (its path hint), with the table lock held. A plain file's existing entry also gets the
    /// file's current length. A new segment gets a free entry, a new one, or (the table being full) a
    /// reclaimed one; an existing entry's path hint is brought up to date; entries of other
    /// unmapped segments last seen at `path` are freed when every record is applied. A changed
    /// table is written (and synced) before this returns, so it is durable before any record
    /// can name the index. Refuses a segment that is already mapped.
    pub(super) fn claim_entry(
        &self,
        slots: &mut Vec<Slot>,
        kind: SegmentKind,
        header: &SegmentHeader,
        path: String,
        device_name: &str,
    ) -> Result<usize> {
        let hint = recordable(path);
        let existing = slots.iter().position(|s| s.names(kind, header.uuid));
        // A plain file may be mapped again (another range: `map_planned` refuses overlaps).
        if kind == SegmentKind::Segment && existing.is_some_and(|i| slots[i].is_mapped()) {
            return Err(Error::AlreadyMapped {
                path: device_name.to_string(),
            });
        }
        let before: Vec<SegmentEntry> = slots.iter().map(|s| s.entry.clone()).collect();
        let mut table = before.clone();
        let mut freed: Vec<usize> = Vec::new();
        let mut applied = None;
        let mut applied = || *applied.get_or_insert_with(|| self.all_records_applied());
        if slots.iter().any(|s| stale_at(s, kind, header.uuid, &hint)) && applied() {
            for (i, s) in slots.iter().enumerate() {
                if stale_at(s, kind, header.uuid, &hint) {
                    table[i] = free_entry();
                    freed.push(i);
                }
            }
        }
        let index = match existing {
            Some(i) => {
                if !hint.is_empty() {
                    table[i].path_hint = hint;
                }
                if kind == SegmentKind::PlainFile {
                    table[i].length_bytes = header.length_bytes;
                }
                i
            }
            None => {
                let free = table.iter().position(|e| e.uuid == Uuid::NIL);
                let i = match free {
                    Some(i) => i,
                    None if table.len() < SEGMENTS_PER_LOG_MAX => {
                        table.push(free_entry());
                        table.len() - 1
                    }
                    None => {
                        let reclaimable = slots
                            .iter()
                            .position(|s| !s.free() && !s.is_mapped())
                            .filter(|_| applied());
                        match reclaimable {
                            Some(i) => {
                                freed.push(i);
                                i
                            }
                            None => {
                                return Err(Error::TooManySegments {
                                    log: self.log_name.clone(),
                                    max: SEGMENTS_PER_LOG_MAX,
                                })
                            }
                        }
                    }
                };
                table[i] = SegmentEntry {
                    kind,
                    uuid: header.uuid,
                    length_bytes: header.length_bytes,
                    path_hint: hint,
                };
                freed.push(i);
                i
            }
        };
        if table != before {
            // The table is durable before any record can name the new index.
            let written = table.clone();
            self.write_status(|s, _| s.segments = written)?;
        }
        while slots.len() < table.len() {
            slots.push(empty_slot());
        }
        for i in freed {
            slots[i] = empty_slot();
        }
        for (slot, entry) in slots.iter_mut().zip(table) {
            slot.entry = entry;
        }
        Ok(index)
    }
}
