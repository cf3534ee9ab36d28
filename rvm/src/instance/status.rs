//! Log positions, and the status writes that persist them.

use std::collections::BTreeSet;

use super::{lock, now_ms, Inner};
use crate::error::Result;
use crate::format::log::{live_bytes, Status, STATUS_FLAG_CLEAN, STATUS_SLOT_SIZE};

/// Log positions.
pub(super) struct Pos {
    pub(super) head_offset: u64,
    pub(super) head_lsn: u64,
    pub(super) tail_offset: u64,
    pub(super) next_lsn: u64,
    /// Records below this LSN were already replayed into the segments by recovery.
    pub(super) applied_lsn: u64,
    /// Segments recovery wrote to that still need a sync before the head may move.
    pub(super) pending_sync: BTreeSet<u32>,
    /// The status write that starts this run's generation has happened.
    pub(super) generation_started: bool,
    pub(super) truncation_requested: bool,
    pub(super) truncating: bool,
    pub(super) shutdown: bool,
    /// The record area is written (records or zeros) from its start up to this offset
    /// ([`Status::zeroed_through`]; the area's end once it is written in full).
    pub(super) zeroed_through: u64,
    /// How far ahead of the threshold background truncation starts: how far the log rose
    /// above the use at which the last background truncation was asked for, until it ended, plus
    /// half as much again, or a quarter less than the lead before, if that was more (`None`
    /// until a background truncation has ended: then a guess, see
    /// [`Inner::truncation_lead`]). See [`Inner::note_overshoot`].
    pub(super) truncation_lead: Option<u64>,
    /// The most bytes in use after any flush since the running truncation started (from the
    /// use when it started).
    pub(super) truncating_peak: u64,
    /// The use at the flush that requested the next background truncation (`past_trigger`),
    /// taken when it starts: the log's rise is measured from there, so the time the
    /// truncation thread takes to start counts too.
    pub(super) triggered_at: Option<u64>,
}

impl Pos {
    pub(super) fn is_empty(&self) -> bool {
        self.head_lsn == self.next_lsn
    }
}

impl Inner {
    /// Write a new status slot built from the last one, the positions, and `change`.
    pub(super) fn write_status(&self, change: impl FnOnce(&mut Status, &Pos)) -> Result<()> {
        self.write_status_then(change, |_| {})
    }

    /// Write a status, then apply `then` to the in-memory positions *before releasing the
    /// status lock*. A status write copies the head from `pos`; if the head moved in a
    /// separate step after the write, a status written in between by another thread would
    /// record the old head, and once the space behind the new head was reused, recovery
    /// from that status would stop at the first reused record and lose everything after
    /// it. (Found by the crash-model test.)
    pub(super) fn write_status_then(
        &self,
        change: impl FnOnce(&mut Status, &Pos),
        then: impl FnOnce(&mut Pos),
    ) -> Result<()> {
        let mut last = lock(&self.status);
        let mut next = last.clone();
        {
            let p = lock(&self.pos);
            next.head_offset = p.head_offset;
            next.head_lsn = p.head_lsn;
            next.tail_offset = p.tail_offset;
            next.tail_lsn = p.next_lsn;
            next.flags &= !STATUS_FLAG_CLEAN;
            next.zeroed_through = if p.zeroed_through >= self.area_end {
                0
            } else {
                p.zeroed_through
            };
            change(&mut next, &p);
        }
        next.sequence = last.sequence + 1;
        next.written_unix_ms = now_ms();
        next.counters = self.lifetime_counters();
        let bytes = next.encode();
        let at = next.slot() * STATUS_SLOT_SIZE;
        self.log
            .write_at(&bytes, at)
            .map_err(self.log_io("write status"))?;
        self.log.sync().map_err(self.log_io("fsync status"))?;
        *last = next;
        then(&mut lock(&self.pos));
        Ok(())
    }

    /// Bytes the live records take in the record area.
    pub(super) fn used_bytes(&self, p: &Pos) -> u64 {
        live_bytes(
            p.is_empty(),
            p.head_offset,
            p.tail_offset,
            self.area_start,
            self.area_end,
        )
    }

    /// Whether the last status written already says what closing would write (the clean
    /// flag, the positions, the lifetime counters), so closing need not write it again.
    pub(super) fn clean_status_is_current(&self) -> bool {
        let counters = self.lifetime_counters();
        let s = lock(&self.status);
        let p = lock(&self.pos);
        s.flags & STATUS_FLAG_CLEAN != 0
            && (s.head_offset, s.head_lsn) == (p.head_offset, p.head_lsn)
            && (s.tail_offset, s.tail_lsn) == (p.tail_offset, p.next_lsn)
            && s.counters == counters
    }
}
