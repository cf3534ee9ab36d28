//! Writing queued records to the log: planning where they go, sealing, writing, syncing.

use super::stats::add;
use super::status::Pos;
use std::sync::atomic::Ordering;

use super::{lock, now_us, Inner};
use crate::device::write_zeros;
use crate::error::{Error, Result};
use crate::format::align_up;
use crate::format::log::{encode_pad, seal_record_with, stamp_time, RECORD_MIN_SIZE, SECTOR_SIZE};

/// How much of the record area is zero-filled at a time: at creation (the first chunk) and by
/// the flush writer ahead of its tail during the log's first pass ([`Inner::zero_ahead`]).
/// 1 MiB, or a sixteenth of a small area (so that small test logs exercise the path).
pub(super) fn zero_chunk_bytes(area_bytes: u64) -> u64 {
    (1 << 20)
        .min(area_bytes / 16 / SECTOR_SIZE * SECTOR_SIZE)
        .max(SECTOR_SIZE)
}

/// Room kept after every record when planning a flush, so the sector pad that ends the
/// flush always fits (a pad is at least [`RECORD_MIN_SIZE`] and at most a sector more).
pub(super) const PAD_RESERVE_BYTES: u64 = SECTOR_SIZE + RECORD_MIN_SIZE;

/// Append a whole pad record (header, zero body, trailer) of `length` bytes to `buf`.
pub(super) fn append_pad(
    buf: &mut Vec<u8>,
    length: u64,
    lsn: u64,
    generation: u64,
    batch_first_lsn: u64,
    seed: u32,
) {
    let (h, t) = encode_pad(length, lsn, generation, batch_first_lsn, seed);
    buf.extend_from_slice(&h);
    buf.resize(buf.len() + (length as usize - h.len() - t.len()), 0);
    buf.extend_from_slice(&t);
}

/// One item of a planned flush.
pub(super) enum Item {
    Record { index: usize, offset: u64, lsn: u64 },
    Pad { offset: u64, length: u64, lsn: u64 },
}

impl Inner {
    /// Write queued records (unsealed, back to back in `buf`) to the log: as many per batch
    /// as fit, one write and one sync per batch, truncating when the log is full.
    pub(super) fn write_batches(
        &self,
        buf: &mut Vec<u8>,
        records: &[(usize, usize)],
    ) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        self.start_generation()?;
        let mut done = 0;
        while done < records.len() {
            let (items, tail, next_lsn, zero) = {
                let p = lock(&self.pos);
                let (items, tail, next_lsn) = self.plan(&p, records, done);
                (items, tail, next_lsn, self.zero_ahead(&p, tail))
            };
            let placed = items
                .iter()
                .filter(|i| matches!(i, Item::Record { .. }))
                .count();
            if placed == 0 {
                self.make_space(records[done].1 as u64)?;
                continue;
            }
            self.write_items(buf, records, &items)?;
            if let Some((from, to)) = zero {
                self.write_zeros(from, to)?;
            }
            self.log.sync().map_err(self.log_io("fsync"))?;
            add(&self.stats.flushes, 1);
            {
                let mut p = lock(&self.pos);
                p.tail_offset = tail;
                p.next_lsn = next_lsn;
                if let Some((_, to)) = zero {
                    p.zeroed_through = to;
                }
                let used = self.used_bytes(&p);
                self.stats
                    .log_used_peak_bytes
                    .fetch_max(used, Ordering::Relaxed);
                if self.past_trigger(&mut p, used) {
                    p.truncation_requested = true;
                    p.triggered_at = Some(used);
                    self.pos_cond.notify_all();
                }
            }
            done += placed;
        }
        Ok(())
    }

    /// The range to zero-fill after a batch that moves the tail to `tail`, if any (chosen with
    /// the batch's plan, under the same lock of the positions): while the
    /// record area is in its first pass (not yet written in full since the log was created
    /// with only its first chunk written), the writer keeps at least half a chunk
    /// ([`zero_chunk_bytes`]) of written blocks ahead of its tail, so that its `fdatasync`s
    /// never commit block allocations or extent conversions.
    ///
    /// Only dead space is ever zeroed: the range starts at or after the new tail and ends at
    /// the area's end at most, and it is chosen only when the live records lie in
    /// `head..tail` without wrapping (so nothing live is after the tail) and this batch did
    /// not wrap. The truncation thread only moves the head towards the tail, and only this
    /// flush leader writes the record area, so the range stays dead until it is written.
    fn zero_ahead(&self, p: &Pos, tail: u64) -> Option<(u64, u64)> {
        let unwrapped = p.is_empty() || p.head_offset < p.tail_offset;
        if p.zeroed_through >= self.area_end || !unwrapped || tail < p.tail_offset {
            return None;
        }
        let chunk = zero_chunk_bytes(self.area_end - self.area_start);
        if tail + chunk / 2 <= p.zeroed_through {
            return None;
        }
        let from = p.zeroed_through.max(tail);
        let to = (from + chunk).min(self.area_end);
        (from < to).then_some((from, to))
    }

    /// Write zeros over `from..to` of the log (not synced), in 64 KiB writes.
    fn write_zeros(&self, from: u64, to: u64) -> Result<()> {
        write_zeros(&*self.log, from, to, 64 << 10, &mut |_| {}).map_err(self.log_io("zero-fill"))
    }

    /// Before this run writes its first record, bump the generation, so records left over
    /// from a crashed run can never continue the chain.
    pub(super) fn start_generation(&self) -> Result<()> {
        if lock(&self.pos).generation_started {
            return Ok(());
        }
        self.write_status_then(
            |s, p| {
                s.generation += 1;
                s.generation_start_lsn = p.next_lsn;
            },
            |p| p.generation_started = true,
        )
    }

    /// Place records `records[from..]` after the tail: returns the items (records and pads)
    /// that fit, the new tail, and the next LSN.
    pub(super) fn plan(
        &self,
        p: &Pos,
        records: &[(usize, usize)],
        from: usize,
    ) -> (Vec<Item>, u64, u64) {
        let (start, end) = (self.area_start, self.area_end);
        let mut items = Vec::new();
        let mut at = p.tail_offset;
        let mut lsn = p.next_lsn;
        // While `limit == end` the area may still wrap once; after that the head bounds us.
        let mut limit = if p.is_empty() || p.tail_offset > p.head_offset {
            end
        } else {
            p.head_offset
        };
        if !p.is_empty() && p.tail_offset == p.head_offset {
            limit = at; // full
        }
        let wrap_limit = p.head_offset;
        for (index, &(_, len)) in records.iter().enumerate().skip(from) {
            let len = len as u64;
            if at + len + PAD_RESERVE_BYTES > limit {
                if limit == end
                    && end - at >= RECORD_MIN_SIZE
                    && start + len + PAD_RESERVE_BYTES <= wrap_limit
                {
                    items.push(Item::Pad {
                        offset: at,
                        length: end - at,
                        lsn,
                    });
                    lsn += 1;
                    at = start;
                    limit = wrap_limit;
                } else {
                    break;
                }
            }
            items.push(Item::Record {
                index,
                offset: at,
                lsn,
            });
            lsn += 1;
            at += len;
        }
        if items.is_empty() {
            return (items, p.tail_offset, p.next_lsn);
        }
        let gap = align_up(at, SECTOR_SIZE) - at;
        if gap > 0 {
            let pad = if gap >= RECORD_MIN_SIZE {
                gap
            } else {
                gap + SECTOR_SIZE
            };
            items.push(Item::Pad {
                offset: at,
                length: pad,
                lsn,
            });
            lsn += 1;
            at += pad;
        }
        let tail = if at >= end { start } else { at };
        (items, tail, lsn)
    }

    /// Seal and write planned items. The common case (no wrap inside the batch, records back
    /// to back in the queue buffer) is one write straight from the buffer; otherwise
    /// contiguous runs are gathered and written one by one.
    pub(super) fn write_items(
        &self,
        buf: &mut Vec<u8>,
        records: &[(usize, usize)],
        items: &[Item],
    ) -> Result<()> {
        let batch_first_lsn = match &items[0] {
            Item::Record { lsn, .. } | Item::Pad { lsn, .. } => *lsn,
        };
        let generation = lock(&self.status).generation;
        let time_us = now_us();
        let (mut count, mut bytes) = (0u64, 0u64);
        for item in items {
            if let Item::Record { index, lsn, .. } = *item {
                let (s, l) = records[index];
                let rec = &mut buf[s..s + l];
                stamp_time(rec, time_us);
                seal_record_with(rec, lsn, generation, batch_first_lsn, &self.crc);
                count += 1;
                bytes += l as u64;
            }
        }
        // Counted once per batch (two atomic additions, not two per record).
        add(&self.stats.records_written, count);
        add(&self.stats.bytes_logged, bytes);
        if let Some((file_offset, from)) = self.contiguous(records, items) {
            // Records are adjacent in the file and in `buf`; only a final pad may follow.
            let mut end = from;
            for item in items {
                match *item {
                    Item::Record { index, .. } => end = records[index].0 + records[index].1,
                    Item::Pad { length, lsn, .. } => {
                        buf.truncate(end);
                        append_pad(buf, length, lsn, generation, batch_first_lsn, self.seed);
                        end = buf.len();
                    }
                }
            }
            return self.write_log(&buf[from..end], file_offset);
        }
        let mut run: Vec<u8> = Vec::new();
        let mut run_start = 0u64;
        for item in items {
            let (Item::Record { offset, .. } | Item::Pad { offset, .. }) = *item;
            if !run.is_empty() && offset != run_start + run.len() as u64 {
                // Discontinuity (the area wrapped): write what is contiguous so far.
                self.write_log(&run, run_start)?;
                run.clear();
            }
            if run.is_empty() {
                run_start = offset;
            }
            match *item {
                Item::Record { index, .. } => {
                    let (s, l) = records[index];
                    run.extend_from_slice(&buf[s..s + l]);
                }
                Item::Pad {
                    offset,
                    length,
                    lsn,
                } => {
                    if offset + length >= self.area_end {
                        add(&self.stats.wraps, 1);
                    }
                    if length <= 2 * SECTOR_SIZE {
                        append_pad(
                            &mut run,
                            length,
                            lsn,
                            generation,
                            batch_first_lsn,
                            self.seed,
                        );
                    } else {
                        let (h, t) =
                            encode_pad(length, lsn, generation, batch_first_lsn, self.seed);
                        // A wrap pad: only its header and trailer are written.
                        if !run.is_empty() {
                            self.write_log(&run, run_start)?;
                            run.clear();
                        }
                        self.write_log(&h, offset)?;
                        self.write_log(&t, offset + length - t.len() as u64)?;
                    }
                }
            }
        }
        if !run.is_empty() {
            self.write_log(&run, run_start)?;
        }
        Ok(())
    }

    /// If the batch's records are back to back both in the file and in the queue buffer
    /// (records in order, only a final pad), the file offset and buffer offset of the first.
    pub(super) fn contiguous(
        &self,
        records: &[(usize, usize)],
        items: &[Item],
    ) -> Option<(u64, usize)> {
        let mut expect: Option<(u64, usize)> = None;
        let mut first = None;
        for (n, item) in items.iter().enumerate() {
            match *item {
                Item::Record { index, offset, .. } => {
                    let (s, l) = records[index];
                    if let Some((o, b)) = expect {
                        if o != offset || b != s {
                            return None;
                        }
                    } else {
                        first = Some((offset, s));
                    }
                    expect = Some((offset + l as u64, s + l));
                }
                Item::Pad { offset, length, .. } => {
                    let last = n + 1 == items.len();
                    if !last || length > 2 * SECTOR_SIZE || expect.map(|(o, _)| o) != Some(offset) {
                        return None;
                    }
                }
            }
        }
        // The pad is appended after the last record, so nothing may follow it in `buf`.
        let last_record_end = expect?.1;
        let after_last = records.iter().all(|(s, l)| s + l <= last_record_end);
        if after_last {
            first
        } else {
            None
        }
    }

    /// Write into the record area.
    ///
    /// Architecture Invariant: the log is only written inside its record area (a planning
    /// error becomes an error here, never a write elsewhere).
    pub(super) fn write_log(&self, bytes: &[u8], offset: u64) -> Result<()> {
        if offset < self.area_start || offset + bytes.len() as u64 > self.area_end {
            return Err(Error::Failed {
                path: self.log_name.clone(),
                cause: format!(
                    "internal error: planned write {offset}+{} leaves the record area",
                    bytes.len()
                ),
            });
        }
        self.log
            .write_at(bytes, offset)
            .map_err(self.log_io("write"))
    }

    /// The flush leader found no room: wait for a background truncation if one runs (and
    /// return as soon as one of its stages, or its end, made room), else truncate, and if the
    /// log is then empty, restart it at the beginning of the area.
    pub(super) fn make_space(&self, need: u64) -> Result<()> {
        add(&self.stats.space_waits, 1);
        if self.wait_for_running_truncation(need)? {
            return Ok(());
        }
        self.truncate_now(false)?;
        let (empty, at_start) = {
            let p = lock(&self.pos);
            (p.is_empty(), p.tail_offset == self.area_start)
        };
        if empty && !at_start {
            let start = self.area_start;
            self.write_status_then(
                |s, _| {
                    s.head_offset = start;
                    s.tail_offset = start;
                },
                |p| {
                    p.head_offset = start;
                    p.tail_offset = start;
                },
            )?;
        } else if empty && need + 2 * PAD_RESERVE_BYTES > self.area_end - self.area_start {
            return Err(Error::TooBig {
                size: need,
                max: self.record_bytes_max,
            });
        }
        Ok(())
    }
}
