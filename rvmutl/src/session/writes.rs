//! The session commands that write a log: `init_log`, `write_status`, `set`, `set_seg_dict`
//! and `copy_log`. Each says what it changed.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use rvm::device::{Access, Device, FileDevice};
use rvm::format::log::{Status, STATUS_SLOT_SIZE};
use rvm::log::LogReader;
use rvm::Rvm;

use super::{ask, now_ms, same_file, yes_no, Input, Session};
use crate::logview::OpenLog;
use crate::parse::SetValue;

impl Session {
    pub(super) fn init_log(
        &mut self,
        path: Option<&str>,
        size: Option<u64>,
        out: &mut dyn Write,
        input: &mut dyn Input,
    ) -> Result<()> {
        let path = match path {
            Some(p) => p.to_string(),
            None => ask(input, "Enter name of log file: ")?
                .ok_or_else(|| anyhow!("no log name given"))?,
        };
        let p = PathBuf::from(&path);
        let exists = p.exists();
        if exists {
            match LogReader::open(&p).and_then(|r| Ok((r.scan()?, r))) {
                Ok((scan, _)) if !scan.records.is_empty() => {
                    let first = scan.records.first().map(|r| r.lsn).unwrap_or(0);
                    let last = scan.records.last().map(|r| r.lsn).unwrap_or(0);
                    writeln!(
                        out,
                        "? {path} holds {} records (LSN {first}..{last}) not yet applied to their segments",
                        scan.records.len()
                    )?;
                    if !self.force
                        && !yes_no(
                            input,
                            "Wipe them anyway (recover applies them) (y or n [n])? ",
                            false,
                        )?
                    {
                        bail!("{path}: not initialised (run recover first, or confirm)");
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    writeln!(out, "? {path} exists and is not a readable rvm log: {e}")?;
                    if !self.force && !yes_no(input, "Overwrite it (y or n [n])? ", false)? {
                        bail!("{path}: not initialised");
                    }
                }
            }
        }
        let size = match size {
            Some(s) => s,
            None => {
                let text = ask(input, "Enter size of the record area (e.g. 30M): ")?
                    .ok_or_else(|| anyhow!("no size given"))?;
                crate::parse::parse_size(&text).map_err(|e| anyhow!("{e}"))?
            }
        };
        if self.log.as_ref().is_some_and(|l| same_file(&l.path, &p)) {
            self.log = None;
            self.cursor = None;
        }
        if exists {
            let dev = FileDevice::open(&p, Access::ReadWrite)
                .with_context(|| format!("{path}: open for writing"))?;
            Rvm::init_log_on(&dev, size)?;
        } else {
            Rvm::create_log(&p, size)?;
        }
        let log = OpenLog::open(&p, false)?;
        let st = log.status();
        writeln!(
            out,
            "{} log {path}: record area {} bytes, {} bytes in all, UUID {}",
            if exists { "re-initialised" } else { "created" },
            st.area_size,
            st.log_size_bytes,
            st.log_uuid
        )?;
        self.log = Some(log);
        self.cursor = None;
        Ok(())
    }

    pub(super) fn write_status(&mut self, out: &mut dyn Write) -> Result<()> {
        let log = self.log_mut()?;
        let path = log.path.clone();
        let disk = LogReader::open(&path)?;
        let old = disk.status().clone();
        let max_seq = [disk.slot(0), disk.slot(1)]
            .iter()
            .filter_map(|s| s.as_ref().ok().map(|s| s.sequence))
            .max()
            .unwrap_or(0);
        let mut new = log.status().clone();
        new.sequence = max_seq.max(new.sequence) + 1;
        new.written_unix_ms = now_ms();
        Status::decode(&new.encode())
            .map_err(|e| anyhow!("refusing to write an invalid status: {e}"))?;
        let dev = FileDevice::open(&path, Access::ReadWrite)
            .with_context(|| format!("{}: open for writing", path.display()))?;
        rvm::log::write_status_slot(&dev, &new)?;
        writeln!(
            out,
            "wrote status slot {} of {} (offset {}, sequence {})",
            new.slot(),
            path.display(),
            new.slot() * STATUS_SLOT_SIZE,
            new.sequence
        )?;
        let mut changed = false;
        for (name, a, b) in status_fields(&old, &new) {
            if a != b && name != "sequence" {
                writeln!(out, "  {name}: {a} -> {b}")?;
                changed = true;
            }
        }
        if !changed {
            writeln!(out, "  (no field changed but the sequence)")?;
        }
        let no_tail = log.scan.is_none();
        self.log = Some(OpenLog::open(&path, no_tail)?);
        self.cursor = None;
        Ok(())
    }

    pub(super) fn set(&mut self, field: &str, value: &SetValue, out: &mut dyn Write) -> Result<()> {
        let log = self.log_mut()?;
        let mut st = log.status().clone();
        let v = match value {
            SetValue::Number(n) => *n,
            SetValue::Field(f) => get_field(&st, f),
        };
        let old = get_field(&st, field);
        set_field(&mut st, field, v);
        Status::decode(&st.encode()).map_err(|e| anyhow!("{field} = {v} is not valid: {e}"))?;
        log.reader.set_status(st);
        log.status_changed = true;
        if log.scan.is_some() {
            log.rescan()?;
        }
        self.cursor = None;
        writeln!(
            out,
            "{field}: {old} -> {v} (in memory; write_status writes it)"
        )?;
        Ok(())
    }

    pub(super) fn set_seg_dict(
        &mut self,
        index: u32,
        path: &str,
        out: &mut dyn Write,
    ) -> Result<()> {
        let log = self.log_ref()?;
        let entry = log
            .status()
            .segments
            .get(index as usize)
            .ok_or_else(|| {
                anyhow!(
                    "the log's segment table has {} entries (0..{}); no entry {index}",
                    log.status().segments.len(),
                    log.status().segments.len().saturating_sub(1)
                )
            })?
            .clone();
        if entry.file_identity().is_some() {
            bail!(
                "entry {index} is the plain file {}: recovery opens it by that recorded path, \
                 which cannot be redirected",
                entry.path_hint
            );
        }
        let header = rvm::segment::read_header(Path::new(path))?;
        if header.uuid != entry.uuid {
            bail!(
                "{path} is segment {}, but entry {index} is segment {}",
                header.uuid,
                entry.uuid
            );
        }
        self.segment_files.insert(index, PathBuf::from(path));
        writeln!(
            out,
            "recover will use {path} for segment {index} ({})",
            entry.uuid
        )?;
        Ok(())
    }

    pub(super) fn copy_log(
        &mut self,
        to: Option<&str>,
        out: &mut dyn Write,
        input: &mut dyn Input,
    ) -> Result<()> {
        let from = self.log_ref()?.path.clone();
        let to = match to {
            Some(t) => t.to_string(),
            None => ask(input, "Enter name of destination file: ")?
                .ok_or_else(|| anyhow!("no destination given"))?,
        };
        let to_path = PathBuf::from(&to);
        if same_file(&from, &to_path) {
            bail!("the destination is the log itself");
        }
        let log = self.log_ref()?;
        let source = log.reader.device().clone();
        let len = source.len().context("size of the log")?;
        let dest = if to_path.exists() {
            let d = FileDevice::open(&to_path, Access::ReadWrite)
                .with_context(|| format!("{to}: open for writing"))?;
            if !d.is_block_device() {
                d.set_len(0).with_context(|| format!("{to}: truncate"))?;
            }
            d
        } else {
            FileDevice::create_new(&to_path).with_context(|| format!("{to}: create"))?
        };
        if !dest.is_block_device() {
            dest.set_len(len)
                .with_context(|| format!("{to}: set length"))?;
        }
        let mut buf = vec![0u8; 1 << 20];
        let mut at = 0u64;
        while at < len {
            let n = ((len - at) as usize).min(buf.len());
            source
                .read_at(&mut buf[..n], at)
                .with_context(|| format!("{}: read", from.display()))?;
            dest.write_at(&buf[..n], at)
                .with_context(|| format!("{to}: write"))?;
            at += n as u64;
        }
        dest.sync().with_context(|| format!("{to}: fsync"))?;
        writeln!(out, "copied {len} bytes of {} to {to}", from.display())?;
        Ok(())
    }
}

fn status_fields(a: &Status, b: &Status) -> Vec<(&'static str, u64, u64)> {
    crate::parse::SET_FIELDS
        .iter()
        .map(|f| (*f, get_field(a, f), get_field(b, f)))
        .collect()
}

fn get_field(s: &Status, field: &str) -> u64 {
    match field {
        "head_offset" => s.head_offset,
        "head_lsn" => s.head_lsn,
        "tail_offset" => s.tail_offset,
        "tail_lsn" => s.tail_lsn,
        "generation" => s.generation,
        "generation_start_lsn" => s.generation_start_lsn,
        "flags" => s.flags as u64,
        "sequence" => s.sequence,
        _ => 0,
    }
}

fn set_field(s: &mut Status, field: &str, v: u64) {
    match field {
        "head_offset" => s.head_offset = v,
        "head_lsn" => s.head_lsn = v,
        "tail_offset" => s.tail_offset = v,
        "tail_lsn" => s.tail_lsn = v,
        "generation" => s.generation = v,
        "generation_start_lsn" => s.generation_start_lsn = v,
        "flags" => s.flags = v as u32,
        "sequence" => s.sequence = v,
        _ => {}
    }
}
