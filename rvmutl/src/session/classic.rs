//! The classic commands and keywords that rvm-rs answers with an equivalent: `find_hole`,
//! `replay`, `recover LOG`, `show timestamp` and `show uname`.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Result};
use rvm::log::ScanEnd;

use super::{same_file, Input, Outcome, Session};
use crate::render::time_us;

impl Session {
    /// `find_hole`: where the chain of records from the head is first broken, and where
    /// intact records resume; or that it is whole up to the normal end of the log.
    pub(super) fn find_hole(&mut self, out: &mut dyn Write) -> Result<()> {
        let log = self.log_mut()?;
        let (head, head_lsn) = log.head();
        let scan = log.rescan()?.clone();
        match &scan.end {
            ScanEnd::End => writeln!(
                out,
                "No hole: the chain of records from the head (offset {head}, LSN {head_lsn}) is \
                 intact up to the normal end of the log at offset {} (next LSN {})",
                scan.tail_offset, scan.next_lsn
            )?,
            ScanEnd::TornTail { offset, detail } => writeln!(
                out,
                "Hole at offset {offset}: record LSN {} is torn ({detail}); nothing written \
                 later follows it (the end of an interrupted flush, discarded by recovery)",
                scan.next_lsn
            )?,
            ScanEnd::Corrupt {
                offset,
                lsn,
                detail,
                later_lsn,
                later_offset,
            } => {
                // The first intact record after the damage (salvage), else the later flush
                // the scan found.
                let resume = log
                    .salvage()
                    .first()
                    .and_then(|p| p.records.first())
                    .map(|r| (r.offset, r.header.lsn))
                    .unwrap_or((*later_offset, *later_lsn));
                writeln!(
                    out,
                    "Hole at offset {offset}: record LSN {lsn} is damaged ({detail}); intact \
                     records resume at offset {} (LSN {}); `check` lists every damaged spot",
                    resume.0, resume.1
                )?
            }
        }
        Ok(())
    }

    /// Open `path` as the log unless it is the one already open.
    fn open_unless_open(
        &mut self,
        path: Option<&str>,
        out: &mut dyn Write,
        input: &mut dyn Input,
    ) -> Result<()> {
        let Some(path) = path else {
            return Ok(());
        };
        if self
            .log
            .as_ref()
            .is_some_and(|l| same_file(&l.path, Path::new(path)))
        {
            return Ok(());
        }
        self.open_log(Some(path), false, out, input)
    }

    /// `recover [update|no_update] [prefix] [LOG]`.
    pub(super) fn recover_command(
        &mut self,
        update: Option<bool>,
        prefix: bool,
        path: Option<&str>,
        out: &mut dyn Write,
        input: &mut dyn Input,
    ) -> Result<Outcome> {
        self.open_unless_open(path, out, input)?;
        let update = update.unwrap_or(self.update);
        crate::recover::recover(self, update, prefix, out)
    }

    /// `replay`: without head/tail, `recover`; replaying an arbitrary stretch is refused.
    pub(super) fn replay(
        &mut self,
        update: Option<bool>,
        head: Option<u64>,
        tail: Option<u64>,
        path: Option<&str>,
        out: &mut dyn Write,
        input: &mut dyn Input,
    ) -> Result<Outcome> {
        if head.is_some() || tail.is_some() {
            bail!(
                "replay head/tail: not supported: recovery always replays the whole live log \
                 from the head; the records before the head are already in the segments, and \
                 replaying part of the log could leave a segment mixing old and new values. To \
                 move the head: set head_offset and head_lsn, write_status, then recover"
            );
        }
        self.recover_command(update, false, path, out, input)
    }

    /// `show timestamp`: when the current record (else the head record) was committed.
    pub(super) fn show_timestamp(&mut self, out: &mut dyn Write) -> Result<()> {
        let rec = match self.current()? {
            Some(r) => Some(r),
            None => self.head_record()?,
        };
        match rec {
            Some(r) if r.is_pad() => writeln!(
                out,
                "Record LSN {} at offset {} is a pad: pads carry no commit time",
                r.header.lsn, r.offset
            )?,
            Some(r) => writeln!(
                out,
                "Record LSN {} at offset {}: committed {}",
                r.header.lsn,
                r.offset,
                time_us(r.header.time_us)
            )?,
            None => writeln!(out, "Log is empty: no record, no timestamp")?,
        }
        Ok(())
    }

    /// `show uname`: transactions carry no unique name here; a record is named by its LSN.
    pub(super) fn show_uname(&mut self, out: &mut dyn Write) -> Result<()> {
        let current = self.current()?.map(|r| r.header.lsn);
        write!(
            out,
            "Transactions carry no unique name (uname) in rvm-rs: a record is identified by its \
             LSN, and `show timestamp` gives its commit time"
        )?;
        match current {
            Some(lsn) => writeln!(out, "; the current record is LSN {lsn}")?,
            None => writeln!(out)?,
        }
        Ok(())
    }
}
