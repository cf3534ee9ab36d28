//! The state of an rvmutl session and the execution of each command.
//!
//! Architecture Invariant: files are opened read-only unless the command writes (init_log,
//! recover with update, poke, write_status, copy_log); every command that writes says what
//! it changed.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use rvm::format::log::{KIND_PAD, RECORD_HEADER_SIZE, RECORD_TRAILER_SIZE};
use rvm::log::{Record, ScanEnd};
use serde_json::{json, Value as Json};

mod classic;
mod records;
mod show;
mod writes;

use records::{end_text, record_lines, sub_count, sub_record_lines};

use crate::format::{format_item, Format};
use crate::logview::{OpenLog, Place};
use crate::parse::{AddrSpec, Command, ShowItem};
use crate::render::{self, hex_lines, hex_string, kind_name, time_us, tx_flags};
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
