//! What a line parses to: one typed [`Command`] with its arguments (addresses with formats,
//! poke groups, `show` items, `set` values), inside a [`Line`].

use super::lex::Redirect;
use crate::format::{Format, Size, Value};

/// A range of virtual addresses with a format: `ADDR / [COUNT][SIZE][FORMAT]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrSpec {
    pub address: u64,
    pub format: Format,
}

impl AddrSpec {
    pub fn length(&self) -> u64 {
        self.format.byte_length()
    }
}

/// One `OFFSET [/FMT] = VALUES` group of a poke.
#[derive(Debug, Clone, PartialEq)]
pub struct PokeGroup {
    pub offset: u64,
    /// Repeats of the value list.
    pub count: u64,
    pub size: Size,
    pub values: Vec<Value>,
}

/// What `show` prints.
#[derive(Debug, Clone, PartialEq)]
pub enum ShowItem {
    All,
    Remaining,
    Head,
    Tail,
    Earliest,
    Next(u64),
    Prev(u64),
    NextSub(u64),
    PrevSub(u64),
    SubRec,
    Record {
        lsn: u64,
        count: u64,
    },
    Mods {
        spec: AddrSpec,
        values: Vec<Value>,
    },
    Monitor,
    SegDict,
    Status,
    Statistics,
    /// The commit time of the current record (classic `timestamp`).
    Timestamp,
    /// Classic `uname`: transactions carry no unique name here; says so and names the record.
    Uname,
}

/// Fields `set` can change in the in-memory status.
pub const SET_FIELDS: &[&str] = &[
    "head_offset",
    "head_lsn",
    "tail_offset",
    "tail_lsn",
    "generation",
    "generation_start_lsn",
    "flags",
    "sequence",
];

/// The right-hand side of `set FIELD = ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetValue {
    Number(u64),
    /// The value of another field.
    Field(&'static str),
}

/// One command of the language, with its arguments parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    OpenLog {
        path: Option<String>,
        no_tail: bool,
        update: Option<bool>,
    },
    CloseLog,
    InitLog {
        path: Option<String>,
        size: Option<u64>,
    },
    ReadStatus,
    WriteStatus,
    Status,
    Statistics,
    Head,
    Tail,
    Earliest,
    Next(u64),
    Prev(u64),
    NextSub(u64),
    PrevSub(u64),
    SubRec,
    Show(Vec<ShowItem>),
    FindTail,
    FindEarliest,
    AllSpec,
    SegDict,
    Monitor {
        clear: bool,
        specs: Vec<AddrSpec>,
    },
    Recover {
        update: Option<bool>,
        prefix: bool,
        /// A log to open first (classic `recover [file] NAME`).
        path: Option<String>,
    },
    /// Classic `replay`: recovery from the head (see the table for what head/tail N mean).
    Replay {
        update: Option<bool>,
        head: Option<u64>,
        tail: Option<u64>,
        path: Option<String>,
    },
    /// Look for the first hole (damaged or missing record) in the chain from the head.
    FindHole,
    Peek {
        file: Option<String>,
        offset: Option<u64>,
        format: Option<Format>,
    },
    Poke {
        file: Option<String>,
        groups: Vec<PokeGroup>,
    },
    CopyLog {
        to: Option<String>,
    },
    Set {
        field: &'static str,
        value: SetValue,
    },
    SetSegDict {
        index: u32,
        path: String,
    },
    Sizeof(Vec<String>),
    Update,
    NoUpdate,
    Check {
        data: Option<String>,
    },
    Segment {
        path: Option<String>,
    },
    Heap {
        path: Option<String>,
    },
    Help(Option<String>),
    Quit,
}

/// A parsed input line.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// Nothing on the line: the prompt repeats the last sticky command.
    Empty,
    /// A `# ...` comment.
    Comment,
    /// `< FILE`: read commands from a file.
    Source(String),
    Command {
        command: Command,
        redirect: Option<Redirect>,
    },
}
