//! The state of an rvmutl session and the execution of each command.
//!
//! Architecture Invariant: files are opened read-only unless the command writes (init_log,
//! recover with update, poke, write_status, copy_log); every command that writes says what
//! it changed.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use rvm::device::{Access, Device, FileDevice};
use rvm::format::log::{
    Counters, Status, KIND_PAD, RECORD_HEADER_SIZE, RECORD_TRAILER_SIZE, STATUS_SLOT_SIZE,
};
use rvm::log::{LogReader, Record, ScanEnd};
use rvm::Rvm;
use serde_json::{json, Value as Json};

mod classic;
mod records;

pub(crate) use records::{end_json, end_text, record_json, record_lines};
use records::{sub_count, sub_record_lines};

use crate::format::{format_item, Format};
use crate::logview::{OpenLog, Place};
use crate::parse::{AddrSpec, Command, SetValue, ShowItem};
use crate::render::{self, hex_lines, hex_string, kind_name, percent, time_ms, time_us, tx_flags};
use crate::table::{self, CommandId, COMMANDS};

/// Where questions are asked and missing values read.
pub trait Input {
    /// Show `prompt` and read one line; `None` at the end of input.
    fn read_line(&mut self, prompt: &str) -> Option<String>;
}

/// No input: every question gets its default answer and missing values are errors.
pub struct NoInput;

impl Input for NoInput {
    fn read_line(&mut self, _prompt: &str) -> Option<String> {
        None
    }
}

/// What the caller does after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Continue,
    /// `check` found problems (exit status 1).
    Problems,
    Quit,
}

/// The current record and sub-record (0 = header, 1..=n ranges, n+1 = trailer).
#[derive(Debug, Clone, Copy)]
struct Cursor {
    offset: u64,
    sub: usize,
}

/// State of `peek`: the file and where the last peek stopped.
struct PeekState {
    file: Option<PathBuf>,
    next: Option<u64>,
    format: Format,
}

/// One session: the open log, the cursor, peek state, monitors, segment redirections.
pub struct Session {
    log: Option<OpenLog>,
    /// Whether `recover` without a keyword writes.
    update: bool,
    cursor: Option<Cursor>,
    peek: PeekState,
    pub(crate) monitors: Vec<AddrSpec>,
    /// `set seg_dict N = FILE` and `--segment`: where recover looks for segments.
    pub(crate) segment_files: BTreeMap<u32, PathBuf>,
    pub(crate) extra_segment_files: Vec<PathBuf>,
    /// Print JSON where a command supports it (one-shot subcommands with --json).
    pub json: bool,
    /// Answer yes to "are you sure" questions (`init-log --force`).
    pub force: bool,
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    pub fn new() -> Session {
        Session {
            log: None,
            update: true,
            cursor: None,
            peek: PeekState {
                file: None,
                next: None,
                format: Format::default(),
            },
            monitors: Vec::new(),
            segment_files: BTreeMap::new(),
            extra_segment_files: Vec::new(),
            json: false,
            force: false,
        }
    }

    /// Add a file `recover` may find segments in (matched by UUID).
    pub fn add_segment_file(&mut self, path: PathBuf) {
        self.extra_segment_files.push(path);
    }

    pub(crate) fn log_mut(&mut self) -> Result<&mut OpenLog> {
        self.log
            .as_mut()
            .ok_or_else(|| anyhow!("no log is open (use open_log LOG)"))
    }

    pub(crate) fn log_ref(&self) -> Result<&OpenLog> {
        self.log
            .as_ref()
            .ok_or_else(|| anyhow!("no log is open (use open_log LOG)"))
    }

    /// Make `path` the file `peek` and `poke` use when none is named (when no log is open).
    pub fn default_peek_file(&mut self, path: &Path) {
        if self.log.is_none() && self.peek.file.is_none() {
            self.peek.file = Some(path.to_path_buf());
        }
    }

    pub(crate) fn replace_log(&mut self, log: OpenLog) {
        self.log = Some(log);
        self.cursor = None;
    }

    /// Open `path` as the session's log (one-shot subcommands).
    pub fn open(&mut self, path: &Path, no_tail: bool) -> Result<()> {
        let log = OpenLog::open(path, no_tail)?;
        self.replace_log(log);
        Ok(())
    }

    /// Run one command.
    pub fn execute(
        &mut self,
        command: &Command,
        out: &mut dyn Write,
        input: &mut dyn Input,
    ) -> Result<Outcome> {
        match command {
            Command::OpenLog {
                path,
                no_tail,
                update,
            } => {
                if let Some(u) = update {
                    self.update = *u;
                }
                self.open_log(path.as_deref(), *no_tail, out, input)?;
            }
            Command::CloseLog => {
                let log = self.log.take().ok_or_else(|| anyhow!("no log is open"))?;
                self.cursor = None;
                if log.status_changed {
                    writeln!(
                        out,
                        "closed {} (status changes made with set were not written)",
                        log.path.display()
                    )?;
                } else {
                    writeln!(out, "closed {}", log.path.display())?;
                }
            }
            Command::InitLog { path, size } => {
                self.init_log(path.as_deref(), *size, out, input)?;
            }
            Command::ReadStatus => {
                let path = self.log_ref()?.path.clone();
                let no_tail = self.log_ref()?.scan.is_none();
                self.log = Some(OpenLog::open(&path, no_tail)?);
                self.cursor = None;
                writeln!(out, "re-read the status of {}", path.display())?;
            }
            Command::WriteStatus => self.write_status(out)?,
            Command::Status => self.show_status(out)?,
            Command::Statistics => self.show_statistics(out)?,
            Command::Head => self.show_items(&[ShowItem::Head], out)?,
            Command::Tail => self.show_items(&[ShowItem::Tail], out)?,
            Command::Earliest => self.show_items(&[ShowItem::Earliest], out)?,
            Command::Next(n) => self.show_items(&[ShowItem::Next(*n)], out)?,
            Command::Prev(n) => self.show_items(&[ShowItem::Prev(*n)], out)?,
            Command::NextSub(n) => self.show_items(&[ShowItem::NextSub(*n)], out)?,
            Command::PrevSub(n) => self.show_items(&[ShowItem::PrevSub(*n)], out)?,
            Command::SubRec => self.show_items(&[ShowItem::SubRec], out)?,
            Command::Show(items) => {
                if self.json && items == &[ShowItem::All] {
                    self.records_json(out)?;
                } else {
                    self.show_items(items, out)?;
                }
            }
            Command::FindTail => {
                let log = self.log_mut()?;
                log.rescan()?;
                let (offset, lsn) = log.end();
                writeln!(out, "Tail at offset {offset} (next LSN {lsn})")?;
                let text = end_text(log)?;
                for line in text {
                    writeln!(out, "{line}")?;
                }
            }
            Command::FindEarliest => {
                let log = self.log_mut()?;
                match log.earliest() {
                    Some(r) => writeln!(
                        out,
                        "Earliest record at offset {} (LSN {})",
                        r.offset, r.header.lsn
                    )?,
                    None => writeln!(out, "Log is empty and no applied record is intact")?,
                }
            }
            Command::AllSpec => self.all_spec(out)?,
            Command::SegDict => self.seg_dict(out)?,
            Command::Monitor { clear, specs } => self.monitor(*clear, specs, out, input)?,
            Command::Recover {
                update,
                prefix,
                path,
            } => return self.recover_command(*update, *prefix, path.as_deref(), out, input),
            Command::Replay {
                update,
                head,
                tail,
                path,
            } => return self.replay(*update, *head, *tail, path.as_deref(), out, input),
            Command::FindHole => self.find_hole(out)?,
            Command::Peek {
                file,
                offset,
                format,
            } => self.peek(file.as_deref(), *offset, *format, out, input)?,
            Command::Poke { file, groups } => {
                let path = self.peek_file(file.as_deref(), input)?;
                crate::peekpoke::poke(&path, groups, out)?;
            }
            Command::CopyLog { to } => self.copy_log(to.as_deref(), out, input)?,
            Command::Set { field, value } => self.set(field, value, out)?,
            Command::SetSegDict { index, path } => self.set_seg_dict(*index, path, out)?,
            Command::Sizeof(names) => crate::sizes::sizeof(names, out)?,
            Command::Update => {
                self.update = true;
                writeln!(out, "recover will apply the log (update)")?;
            }
            Command::NoUpdate => {
                self.update = false;
                writeln!(out, "recover will only show what it would do (no_update)")?;
            }
            Command::Check { data } => {
                let path = self.log_ref()?.path.clone();
                let report = crate::check::check(&path, data.as_deref().map(Path::new))?;
                report.print(out, self.json)?;
                if !report.problems.is_empty() {
                    return Ok(Outcome::Problems);
                }
            }
            Command::Segment { path } => {
                let path = path
                    .as_deref()
                    .ok_or_else(|| anyhow!("usage: segment DATA"))?;
                crate::inspect::segment(Path::new(path), out, self.json)?;
            }
            Command::Heap { path } => {
                let path = path.as_deref().ok_or_else(|| anyhow!("usage: heap DATA"))?;
                if crate::inspect::heap(Path::new(path), out, self.json)? {
                    return Ok(Outcome::Problems);
                }
            }
            Command::Help(topic) => help(topic.as_deref(), out)?,
            Command::Quit => return Ok(Outcome::Quit),
        }
        Ok(Outcome::Continue)
    }

    fn open_log(
        &mut self,
        path: Option<&str>,
        no_tail: bool,
        out: &mut dyn Write,
        input: &mut dyn Input,
    ) -> Result<()> {
        let path = match path {
            Some(p) => p.to_string(),
            None => ask(input, "Enter name of log file or device: ")?
                .ok_or_else(|| anyhow!("no log name given"))?,
        };
        let p = Path::new(&path);
        if let Some(open) = &self.log {
            if same_file(&open.path, p) {
                bail!(
                    "{path}: already open (read_status re-reads its status; close_log, then \
                     open_log, opens it afresh)"
                );
            }
        }
        if !p.exists() {
            writeln!(out, "? {path}: no such file")?;
            if yes_no(input, "Do you want to create it (y or n [n])? ", false)? {
                return self.init_log(Some(&path), None, out, input);
            }
            bail!("{path}: not opened");
        }
        let log = OpenLog::open(p, no_tail).map_err(|e| {
            anyhow!("{e}\n  (init_log re-initialises a damaged log; peek shows its bytes)")
        })?;
        self.cursor = None;
        let mut line = format!("opened {path} (read-only)");
        if let Some(scan) = &log.scan {
            match (scan.records.first(), scan.records.last()) {
                (Some(a), Some(b)) => line.push_str(&format!(
                    ": {} records, LSN {}..{}",
                    scan.records.len(),
                    a.lsn,
                    b.lsn
                )),
                _ => line.push_str(": log is empty"),
            }
        } else if let Some(e) = &log.scan_error {
            line.push_str(&format!(": the records cannot be walked: {e}"));
        } else {
            line.push_str(": tail not located (no_tail)");
        }
        writeln!(out, "{line}")?;
        if matches!(
            log.scan.as_ref().map(|s| &s.end),
            Some(ScanEnd::TornTail { .. } | ScanEnd::Corrupt { .. })
        ) {
            for l in end_text(&log)? {
                writeln!(out, "{l}")?;
            }
        }
        self.log = Some(log);
        Ok(())
    }

    fn init_log(
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

    fn write_status(&mut self, out: &mut dyn Write) -> Result<()> {
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

    fn set(&mut self, field: &str, value: &SetValue, out: &mut dyn Write) -> Result<()> {
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

    fn set_seg_dict(&mut self, index: u32, path: &str, out: &mut dyn Write) -> Result<()> {
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

    fn copy_log(
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

    fn monitor(
        &mut self,
        clear: bool,
        specs: &[AddrSpec],
        out: &mut dyn Write,
        input: &mut dyn Input,
    ) -> Result<()> {
        if clear {
            self.monitors.clear();
            writeln!(out, "monitor cleared")?;
        }
        let mut specs = specs.to_vec();
        if specs.is_empty() && !clear {
            writeln!(
                out,
                "Enter list of addresses/format, terminate with null line"
            )?;
            while let Some(line) = input.read_line(": ") {
                let line = line.trim().to_string();
                if line.is_empty() {
                    break;
                }
                match crate::parse::parse_command_line(&format!("monitor {line}")) {
                    Ok(crate::parse::Line::Command {
                        command: Command::Monitor { specs: s, .. },
                        ..
                    }) => specs.extend(s),
                    Ok(_) => writeln!(out, "? expected ADDRESS[/FORMAT]")?,
                    Err(e) => writeln!(out, "? {e}")?,
                }
            }
        }
        for s in specs {
            writeln!(
                out,
                "monitoring {:#x}..{:#x} ({} bytes)",
                s.address,
                s.address.saturating_add(s.length()),
                s.length()
            )?;
            self.monitors.push(s);
        }
        Ok(())
    }

    fn peek_file(&mut self, file: Option<&str>, input: &mut dyn Input) -> Result<PathBuf> {
        if let Some(f) = file {
            let p = PathBuf::from(f);
            if self.peek.file.as_ref() != Some(&p) {
                self.peek.next = None;
            }
            self.peek.file = Some(p.clone());
            return Ok(p);
        }
        if let Some(p) = &self.peek.file {
            return Ok(p.clone());
        }
        if let Some(l) = &self.log {
            return Ok(l.path.clone());
        }
        let name = ask(input, "Enter name of file: ")?.ok_or_else(|| anyhow!("no file given"))?;
        let p = PathBuf::from(name);
        self.peek.file = Some(p.clone());
        Ok(p)
    }

    fn peek(
        &mut self,
        file: Option<&str>,
        offset: Option<u64>,
        format: Option<Format>,
        out: &mut dyn Write,
        input: &mut dyn Input,
    ) -> Result<()> {
        let path = self.peek_file(file, input)?;
        let format = format.unwrap_or(self.peek.format);
        let offset = match offset.or(self.peek.next) {
            Some(o) => o,
            None => bail!("peek where? (usage: peek [FILE] OFFSET[/FORMAT])"),
        };
        let end = crate::peekpoke::peek(&path, offset, format, out)?;
        self.peek.format = format;
        self.peek.next = Some(end);
        Ok(())
    }

    fn all_spec(&mut self, out: &mut dyn Write) -> Result<()> {
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

    fn seg_dict(&mut self, out: &mut dyn Write) -> Result<()> {
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

    fn show_statistics(&mut self, out: &mut dyn Write) -> Result<()> {
        let log = self.log_ref()?;
        let c: Counters = log.status().counters;
        writeln!(out, "Lifetime counters of log {}", log.path.display())?;
        for (name, v) in Counters::NAMES.iter().zip(c.values()) {
            writeln!(out, "  {name:<28}{v}")?;
        }
        Ok(())
    }

    fn show_status(&mut self, out: &mut dyn Write) -> Result<()> {
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
        kv("transactions", transactions.len().to_string());
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

    fn records_json(&mut self, out: &mut dyn Write) -> Result<()> {
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

    fn show_items(&mut self, items: &[ShowItem], out: &mut dyn Write) -> Result<()> {
        for item in items {
            self.show_item(item, out)?;
        }
        Ok(())
    }

    fn print_record(&mut self, rec: &Record, out: &mut dyn Write) -> Result<()> {
        let log = self.log_ref()?;
        for l in record_lines(log, rec) {
            writeln!(out, "{l}")?;
        }
        self.cursor = Some(Cursor {
            offset: rec.offset,
            sub: 0,
        });
        Ok(())
    }

    fn current(&mut self) -> Result<Option<Record>> {
        let Some(c) = self.cursor else {
            return Ok(None);
        };
        let log = self.log_ref()?;
        Ok(Some(log.read(c.offset).map_err(|e| {
            anyhow!(
                "the current record at offset {} is no longer readable: {e}",
                c.offset
            )
        })?))
    }

    fn head_record(&mut self) -> Result<Option<Record>> {
        let log = self.log_mut()?;
        let (head, head_lsn) = log.head();
        let (_, next) = log.end();
        if next <= head_lsn {
            return Ok(None);
        }
        Ok(Some(log.read(head).map_err(|e| {
            anyhow!("Head record damaged (offset {head}): {e}")
        })?))
    }

    /// The newest live transaction (the pads that end a flush are not what `tail` means).
    fn tail_record(&mut self) -> Result<Option<Record>> {
        let log = self.log_mut()?;
        let Some(last) = log
            .scan()?
            .records
            .iter()
            .rev()
            .find(|r| r.kind != KIND_PAD)
            .copied()
        else {
            return Ok(None);
        };
        Ok(Some(log.read(last.offset).map_err(|e| {
            anyhow!("Tail record damaged (offset {}): {e}", last.offset)
        })?))
    }

    fn show_item(&mut self, item: &ShowItem, out: &mut dyn Write) -> Result<()> {
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

    /// Move to the next (or previous) sub-record and print it; false at the end.
    fn step_sub(&mut self, forward: bool, out: &mut dyn Write) -> Result<bool> {
        let (rec, sub) = match (self.current()?, self.cursor) {
            (Some(r), Some(c)) => (r, c.sub),
            _ => {
                let start = if forward {
                    self.head_record()?
                } else {
                    self.tail_record()?
                };
                let Some(r) = start else {
                    writeln!(out, "Log is empty")?;
                    return Ok(false);
                };
                let sub = if forward { 0 } else { sub_count(&r) - 1 };
                for l in sub_record_lines(self.log_ref()?, &r, sub) {
                    writeln!(out, "{l}")?;
                }
                self.cursor = Some(Cursor {
                    offset: r.offset,
                    sub,
                });
                return Ok(true);
            }
        };
        let log = self.log_ref()?;
        let (rec, sub) = if forward {
            if sub + 1 < sub_count(&rec) {
                (rec, sub + 1)
            } else if let Some((lsn, offset)) = log.end_after(&rec) {
                writeln!(
                    out,
                    "-- end of the log: no record after LSN {} (the next, LSN {lsn}, would go at \
                     offset {offset})",
                    rec.header.lsn
                )?;
                return Ok(false);
            } else {
                match log.next_of(&rec) {
                    Ok(n) => (n, 0),
                    Err(e) => {
                        writeln!(out, "-- no next sub-record: {e}")?;
                        return Ok(false);
                    }
                }
            }
        } else if sub > 0 {
            (rec, sub - 1)
        } else {
            match log.prev_of(&rec) {
                Ok(p) => {
                    let s = sub_count(&p) - 1;
                    (p, s)
                }
                Err(e) => {
                    writeln!(out, "-- no previous sub-record: {e}")?;
                    return Ok(false);
                }
            }
        };
        for l in sub_record_lines(log, &rec, sub) {
            writeln!(out, "{l}")?;
        }
        self.cursor = Some(Cursor {
            offset: rec.offset,
            sub,
        });
        Ok(true)
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Whether two paths name the same file (the second may not exist yet).
fn same_file(a: &Path, b: &Path) -> bool {
    let canon = |p: &Path| -> Option<PathBuf> {
        if let Ok(c) = std::fs::canonicalize(p) {
            return Some(c);
        }
        let parent = match p.parent() {
            Some(x) if !x.as_os_str().is_empty() => x,
            _ => Path::new("."),
        };
        Some(std::fs::canonicalize(parent).ok()?.join(p.file_name()?))
    };
    match (canon(a), canon(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Ask for a value; `None` at the end of input or on an empty answer.
pub(crate) fn ask(input: &mut dyn Input, prompt: &str) -> Result<Option<String>> {
    Ok(input
        .read_line(prompt)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty()))
}

/// Ask a yes/no question; an empty answer or the end of input gives `default`.
pub(crate) fn yes_no(input: &mut dyn Input, prompt: &str, default: bool) -> Result<bool> {
    match input.read_line(prompt) {
        None => Ok(default),
        Some(a) => {
            let a = a.trim().to_ascii_lowercase();
            Ok(if a.is_empty() {
                default
            } else {
                a.starts_with('y')
            })
        }
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

pub(crate) fn help(topic: Option<&str>, out: &mut dyn Write) -> Result<()> {
    match topic {
        None => {
            writeln!(out, "Commands (any unique prefix works; an empty line repeats next, prev, ns, ps, sr, show and peek):")?;
            for c in COMMANDS {
                let names = std::iter::once(c.name)
                    .chain(c.aliases.iter().copied())
                    .collect::<Vec<_>>()
                    .join(", ");
                writeln!(out, "  {names:<26}{}", c.summary)?;
            }
            writeln!(out, "Output of any command can be redirected: > FILE, >> FILE, >& FILE. < FILE reads commands from FILE.")?;
        }
        Some(t) => {
            let id = table::lookup(t).map_err(|e| anyhow!("{e}"))?;
            let c = table::spec(id);
            writeln!(out, "{} {}", c.name, c.usage)?;
            if !c.aliases.is_empty() {
                writeln!(out, "  also: {}", c.aliases.join(", "))?;
            }
            writeln!(out, "  {}", c.summary)?;
            for l in wrap(c.details, 76) {
                writeln!(out, "  {l}")?;
            }
            let mut notes = Vec::new();
            if c.sticky {
                notes.push("an empty line repeats it".to_string());
            }
            if c.writes {
                notes.push("it may write files".to_string());
            }
            if let Some(o) = c.one_shot {
                notes.push(format!("also `rvmutl {} ...`", o.name));
            }
            if !notes.is_empty() {
                writeln!(out, "  ({})", notes.join("; "))?;
            }
            if id == CommandId::Sizeof {
                writeln!(
                    out,
                    "  names: {}",
                    crate::sizes::SIZES
                        .iter()
                        .map(|s| s.0)
                        .collect::<Vec<_>>()
                        .join(" ")
                )?;
            }
        }
    }
    Ok(())
}

/// Greedy word wrap.
pub(crate) fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// Format the bytes of `data` per `format` (for mods and monitor output).
pub(crate) fn format_values(data: &[u8], format: &Format) -> String {
    if format.radix == crate::format::Radix::Char {
        return format!("\"{}\"", format_item(data, format.size, format.radix));
    }
    let n = format.size.bytes() as usize;
    data.chunks(n)
        .filter(|c| c.len() == n)
        .map(|c| format_item(c, format.size, format.radix))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Read from the device of `path` read-only (helper for inspect and check).
pub(crate) fn open_read_only(path: &Path) -> Result<FileDevice> {
    FileDevice::open(path, Access::ReadOnly).with_context(|| format!("{}: open", path.display()))
}
