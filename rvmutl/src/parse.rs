//! The command language: tokens, numbers, sizes, and one typed [`Command`] per input line.
//!
//! Every function here is total: any input string yields a value or a [`ParseError`], never a
//! panic (the fuzz target `parse_command_line` relies on it).

pub(crate) use crate::format::err;
use crate::format::{parse_format, Format, Size};
pub use crate::format::{ParseError, Value, COUNT_MAX};
use crate::table::{self, CommandId};

/// Longest input line accepted; longer lines are refused rather than tokenized.
pub const LINE_BYTES_MAX: usize = 64 * 1024;

/// A token of a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// An unquoted word.
    Word(String),
    /// A double-quoted string with its C escapes resolved.
    Str(Vec<u8>),
    /// `=`
    Equals,
    /// `>`, `>>` or `>&` (output redirection).
    Redirect(RedirectKind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectKind {
    /// `>`: truncate the file.
    Truncate,
    /// `>>`: append.
    Append,
    /// `>&`: standard output and errors, truncating.
    Both,
}

/// Where a command's output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub path: String,
    pub kind: RedirectKind,
}

/// Split a line into tokens. `=` is its own token (outside quotes), `>`/`>>`/`>&` start a
/// redirection, `"..."` is a string with C escapes (`\n \t \r \0 \\ \" \a \b \f \v \ooo \xHH`).
pub fn tokenize(line: &str) -> Result<Vec<Token>, ParseError> {
    if line.len() > LINE_BYTES_MAX {
        return err(format!("line longer than {LINE_BYTES_MAX} bytes"));
    }
    let mut tokens = Vec::new();
    let mut chars = line.chars().peekable();
    let mut word = String::new();
    let flush = |word: &mut String, tokens: &mut Vec<Token>| {
        if !word.is_empty() {
            tokens.push(Token::Word(std::mem::take(word)));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => flush(&mut word, &mut tokens),
            '=' => {
                flush(&mut word, &mut tokens);
                tokens.push(Token::Equals);
            }
            '>' => {
                flush(&mut word, &mut tokens);
                let kind = match chars.peek() {
                    Some('>') => {
                        chars.next();
                        RedirectKind::Append
                    }
                    Some('&') => {
                        chars.next();
                        RedirectKind::Both
                    }
                    _ => RedirectKind::Truncate,
                };
                tokens.push(Token::Redirect(kind));
            }
            '"' => {
                flush(&mut word, &mut tokens);
                tokens.push(Token::Str(read_string(&mut chars)?));
            }
            // A `#` starting a word begins a comment to the end of the line, as classic.
            '#' if word.is_empty() => break,
            c => word.push(c),
        }
    }
    flush(&mut word, &mut tokens);
    Ok(tokens)
}

fn read_string(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
) -> Result<Vec<u8>, ParseError> {
    let mut out = Vec::new();
    loop {
        let Some(c) = chars.next() else {
            return err("unterminated string (missing closing \")");
        };
        match c {
            '"' => return Ok(out),
            '\\' => {
                let Some(e) = chars.next() else {
                    return err("unterminated string (missing closing \")");
                };
                let byte = match e {
                    'n' => b'\n',
                    't' => b'\t',
                    'r' => b'\r',
                    'a' => 7,
                    'b' => 8,
                    'f' => 12,
                    'v' => 11,
                    'e' => 27,
                    '\\' => b'\\',
                    '"' => b'"',
                    '\'' => b'\'',
                    '?' => b'?',
                    'x' => {
                        let mut v: u32 = 0;
                        let mut digits = 0;
                        while digits < 2 {
                            match chars.peek().and_then(|c| c.to_digit(16)) {
                                Some(d) => {
                                    v = v * 16 + d;
                                    digits += 1;
                                    chars.next();
                                }
                                None => break,
                            }
                        }
                        if digits == 0 {
                            return err("\\x needs one or two hex digits");
                        }
                        v as u8
                    }
                    '0'..='7' => {
                        let mut v: u32 = e.to_digit(8).unwrap_or(0);
                        let mut digits = 1;
                        while digits < 3 {
                            match chars.peek().and_then(|c| c.to_digit(8)) {
                                Some(d) => {
                                    v = v * 8 + d;
                                    digits += 1;
                                    chars.next();
                                }
                                None => break,
                            }
                        }
                        if v > 255 {
                            return err(format!("octal escape \\{v:o} is larger than a byte"));
                        }
                        v as u8
                    }
                    other => return err(format!("unknown escape \\{other} in string")),
                };
                out.push(byte);
            }
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
}

/// Parse an unsigned number with the library's parser ([`rvm::units::parse_number`]: decimal,
/// `0x..`/`x..` hex, or `0..` octal, as classic rvmutl), or the classic `HIGH,LOW` offset form
/// (HIGH * 2^32 + LOW), which the C tool could not parse.
pub fn parse_number(text: &str) -> Result<u64, ParseError> {
    if let Some((high, low)) = text.split_once(',') {
        if low.contains(',') {
            return err(format!("{text:?} is not a number"));
        }
        let high = parse_number(high)?;
        let low = parse_number(low)?;
        if high > u32::MAX as u64 || low > u32::MAX as u64 {
            return err(format!("{text}: each half of HIGH,LOW must fit in 32 bits"));
        }
        return Ok(high << 32 | low);
    }
    rvm::units::parse_number(text).map_err(|e| ParseError(e.to_string()))
}

/// Whether `text` reads as a number (used to tell an offset from a file name).
pub fn is_number(text: &str) -> bool {
    parse_number(text).is_ok()
}

/// Parse a signed number (a poke value): an optional `-` before [`parse_number`].
pub fn parse_signed(text: &str) -> Result<i128, ParseError> {
    match text.strip_prefix('-') {
        Some(rest) => Ok(-(parse_number(rest)? as i128)),
        None => Ok(parse_number(text.strip_prefix('+').unwrap_or(text))? as i128),
    }
}

/// Page size used by the `P` size unit: the fixed region alignment of the format (so a size
/// means the same on every machine).
pub const PAGE_BYTES: u64 = rvm::units::PAGE_BYTES;

/// Parse a size with the library's parser, the one rdsinit uses too
/// ([`rvm::units::parse_size`]): a number with an optional unit, `K`/`KiB`/`KB` (all 1024),
/// `M`.., `G`.., `T`.., `S` 512-byte sectors, `P` 4096-byte pages, `B` or none bytes (upper or
/// lower case).
pub fn parse_size(text: &str) -> Result<u64, ParseError> {
    rvm::units::parse_size(text).map_err(|e| ParseError(e.to_string()))
}

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

/// Parse one line of the command language.
pub fn parse_command_line(line: &str) -> Result<Line, ParseError> {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Ok(Line::Empty);
    }
    if trimmed.starts_with('#') {
        return Ok(Line::Comment);
    }
    if let Some(rest) = trimmed.strip_prefix('<') {
        let tokens = tokenize(rest)?;
        return match tokens.as_slice() {
            [Token::Word(w)] => Ok(Line::Source(w.clone())),
            [Token::Str(s)] => Ok(Line::Source(String::from_utf8_lossy(s).into_owned())),
            _ => err("usage: < FILE"),
        };
    }
    let mut tokens = tokenize(trimmed)?;
    let redirect = take_redirect(&mut tokens)?;
    let Some(first) = tokens.first() else {
        return err("missing command before the redirection");
    };
    let Token::Word(name) = first else {
        return err("a line must start with a command name");
    };
    let id = table::lookup(name).map_err(ParseError)?;
    let args = Args::new(&tokens[1..], id);
    let command = parse_args(id, args)?;
    Ok(Line::Command { command, redirect })
}

/// Parse the arguments of a command already identified (used by the one-shot subcommands).
pub fn parse_command(id: CommandId, words: &[String]) -> Result<Command, ParseError> {
    let line = words.join(" ");
    let tokens = tokenize(&line)?;
    parse_args(id, Args::new(&tokens, id))
}

fn take_redirect(tokens: &mut Vec<Token>) -> Result<Option<Redirect>, ParseError> {
    let Some(at) = tokens.iter().position(|t| matches!(t, Token::Redirect(_))) else {
        return Ok(None);
    };
    let Token::Redirect(kind) = tokens[at] else {
        return Ok(None);
    };
    let path = match tokens.get(at + 1) {
        Some(Token::Word(w)) => w.clone(),
        Some(Token::Str(s)) => String::from_utf8_lossy(s).into_owned(),
        _ => return err("missing file name after the redirection"),
    };
    if tokens.len() > at + 2 {
        return err("the redirection must end the line");
    }
    tokens.truncate(at);
    Ok(Some(Redirect { path, kind }))
}

/// A cursor over a command's argument tokens.
struct Args<'a> {
    tokens: &'a [Token],
    at: usize,
    id: CommandId,
}

impl<'a> Args<'a> {
    fn new(tokens: &'a [Token], id: CommandId) -> Self {
        Args { tokens, at: 0, id }
    }
    fn peek(&self) -> Option<&'a Token> {
        self.tokens.get(self.at)
    }
    fn peek_word(&self) -> Option<&'a str> {
        match self.peek() {
            Some(Token::Word(w)) => Some(w),
            _ => None,
        }
    }
    fn next(&mut self) -> Option<&'a Token> {
        let t = self.tokens.get(self.at);
        if t.is_some() {
            self.at += 1;
        }
        t
    }
    fn done(&self) -> bool {
        self.at >= self.tokens.len()
    }
    fn usage_error<T>(&self, what: &str) -> Result<T, ParseError> {
        let spec = table::spec(self.id);
        err(format!("{what}; usage: {} {}", spec.name, spec.usage))
    }
    fn finish(&self) -> Result<(), ParseError> {
        match self.peek() {
            None => Ok(()),
            Some(t) => self.usage_error(&format!("unexpected {}", describe(t))),
        }
    }
    /// A word or string used as a path.
    fn path(&mut self) -> Option<String> {
        match self.peek() {
            Some(Token::Word(w)) => {
                self.at += 1;
                Some(w.clone())
            }
            Some(Token::Str(s)) => {
                self.at += 1;
                Some(String::from_utf8_lossy(s).into_owned())
            }
            _ => None,
        }
    }
    fn optional_count(&mut self) -> Result<u64, ParseError> {
        match self.peek_word() {
            Some(w) if is_number(w) => {
                self.at += 1;
                count(w)
            }
            _ => Ok(1),
        }
    }
    fn expect_equals(&mut self) -> Result<(), ParseError> {
        match self.next() {
            Some(Token::Equals) => Ok(()),
            _ => self.usage_error("expected ="),
        }
    }
}

fn describe(t: &Token) -> String {
    match t {
        Token::Word(w) => format!("{w:?}"),
        Token::Str(_) => "string".into(),
        Token::Equals => "=".into(),
        Token::Redirect(_) => ">".into(),
    }
}

fn count(text: &str) -> Result<u64, ParseError> {
    let n = parse_number(text)?;
    if n == 0 || n > COUNT_MAX {
        return err(format!("count must be between 1 and {COUNT_MAX}"));
    }
    Ok(n)
}

/// Match a keyword by unique prefix (exact wins), among `(name, aliases)` sets.
pub fn keyword<'k>(word: &str, options: &'k [(&'k str, &'k [&'k str])]) -> Result<&'k str, String> {
    let lower = word.to_ascii_lowercase();
    for (name, aliases) in options {
        if *name == lower || aliases.contains(&lower.as_str()) {
            return Ok(name);
        }
    }
    let matches: Vec<&str> = options
        .iter()
        .filter(|(name, aliases)| {
            name.starts_with(&lower) || aliases.iter().any(|a| a.starts_with(&lower))
        })
        .map(|(name, _)| *name)
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(format!("{word}: unknown keyword")),
        many => Err(format!("{word}: ambiguous: {}?", many.join(" or "))),
    }
}

fn parse_args(id: CommandId, mut a: Args<'_>) -> Result<Command, ParseError> {
    use CommandId as C;
    let command = match id {
        C::OpenLog => {
            let mut path = None;
            let mut no_tail = false;
            let mut update = None;
            while let Some(t) = a.peek() {
                match t {
                    Token::Word(w) if w == "no_tail" => no_tail = true,
                    Token::Word(w) if w == "tail" => no_tail = false,
                    Token::Word(w) if w == "update" => update = Some(true),
                    Token::Word(w) if w == "no_update" => update = Some(false),
                    Token::Word(w) if w == "file" => {}
                    Token::Word(_) | Token::Str(_) if path.is_none() => {
                        path = a.path();
                        continue;
                    }
                    other => return a.usage_error(&format!("unexpected {}", describe(other))),
                }
                a.at += 1;
            }
            Command::OpenLog {
                path,
                no_tail,
                update,
            }
        }
        C::CloseLog => Command::CloseLog,
        C::InitLog => {
            let path = a.path();
            let size = match a.peek_word() {
                Some(w) => {
                    a.at += 1;
                    Some(parse_size(w)?)
                }
                None => None,
            };
            Command::InitLog { path, size }
        }
        C::ReadStatus => Command::ReadStatus,
        C::WriteStatus => Command::WriteStatus,
        C::Status => Command::Status,
        C::Statistics => Command::Statistics,
        C::Head => Command::Head,
        C::Tail => Command::Tail,
        C::Earliest => Command::Earliest,
        C::Next => Command::Next(a.optional_count()?),
        C::Prev => Command::Prev(a.optional_count()?),
        C::NextSub => Command::NextSub(a.optional_count()?),
        C::PrevSub => Command::PrevSub(a.optional_count()?),
        C::SubRec => Command::SubRec,
        C::Show => Command::Show(parse_show(&mut a)?),
        C::FindTail => Command::FindTail,
        C::FindEarliest => Command::FindEarliest,
        C::AllSpec => Command::AllSpec,
        C::SegDict => {
            // Classic keywords `all` and `clear` are accepted: the table is always complete.
            while let Some(w) = a.peek_word() {
                if w == "all" || w == "clear" {
                    a.at += 1;
                } else {
                    break;
                }
            }
            Command::SegDict
        }
        C::Monitor => {
            let mut clear = false;
            let mut specs = Vec::new();
            while !a.done() {
                match a.peek_word() {
                    Some("clear") => {
                        clear = true;
                        a.at += 1;
                    }
                    Some("update") | Some("no_update") => a.at += 1,
                    Some(_) => {
                        let spec = addr_spec(&mut a)?;
                        specs.push(spec);
                    }
                    None => return a.usage_error("expected an address"),
                }
            }
            Command::Monitor { clear, specs }
        }
        C::Recover => {
            let mut update = None;
            let mut prefix = false;
            let mut path = None;
            while let Some(t) = a.peek() {
                match t {
                    Token::Word(w) if w == "update" => update = Some(true),
                    Token::Word(w) if w == "no_update" => update = Some(false),
                    Token::Word(w) if w == "prefix" => prefix = true,
                    Token::Word(w) if w == "clear" || w == "file" => {}
                    Token::Word(_) | Token::Str(_) if path.is_none() => {
                        path = a.path();
                        continue;
                    }
                    other => return a.usage_error(&format!("unexpected {}", describe(other))),
                }
                a.at += 1;
            }
            Command::Recover {
                update,
                prefix,
                path,
            }
        }
        C::Replay => {
            let mut update = None;
            let (mut head, mut tail) = (None, None);
            let mut path = None;
            while let Some(t) = a.peek() {
                match t {
                    Token::Word(w) if w == "update" => update = Some(true),
                    Token::Word(w) if w == "no_update" => update = Some(false),
                    Token::Word(w) if w == "clear" || w == "file" => {}
                    Token::Word(w) if w == "head" || w == "tail" => {
                        let which = w.clone();
                        a.at += 1;
                        let Some(n) = a.peek_word().filter(|n| is_number(n)) else {
                            return a.usage_error(&format!("{which} needs a record number (LSN)"));
                        };
                        let n = parse_number(n)?;
                        if which == "head" {
                            head = Some(n);
                        } else {
                            tail = Some(n);
                        }
                    }
                    Token::Word(_) | Token::Str(_) if path.is_none() => {
                        path = a.path();
                        continue;
                    }
                    other => return a.usage_error(&format!("unexpected {}", describe(other))),
                }
                a.at += 1;
            }
            Command::Replay {
                update,
                head,
                tail,
                path,
            }
        }
        C::FindHole => Command::FindHole,
        C::Peek => parse_peek(&mut a)?,
        C::Poke => parse_poke(&mut a)?,
        C::CopyLog => Command::CopyLog { to: a.path() },
        C::Set => parse_set(&mut a)?,
        C::Sizeof => {
            let mut names = Vec::new();
            while let Some(w) = a.path() {
                names.push(w);
            }
            Command::Sizeof(names)
        }
        C::Update => Command::Update,
        C::NoUpdate => Command::NoUpdate,
        C::Check => Command::Check { data: a.path() },
        C::Segment => Command::Segment { path: a.path() },
        C::Heap => Command::Heap { path: a.path() },
        C::Help => Command::Help(a.path()),
        C::Quit => Command::Quit,
    };
    a.finish()?;
    Ok(command)
}

const SHOW_KEYWORDS: &[(&str, &[&str])] = &[
    ("all", &["all_records"]),
    ("remaining", &[]),
    ("head", &[]),
    ("tail", &[]),
    ("earliest", &[]),
    ("next", &["n"]),
    ("prev", &["previous", "pr"]),
    ("next_sub_rec", &["ns"]),
    ("prev_sub_rec", &["ps"]),
    ("sub_rec", &["sr"]),
    ("rec_number", &["record_number"]),
    ("mods", &["modifications"]),
    ("monitor", &[]),
    ("seg_dict", &["segment_dictionary"]),
    ("status", &["log_status"]),
    ("statistics", &[]),
    ("timestamp", &[]),
    ("uname", &[]),
];

fn parse_show(a: &mut Args<'_>) -> Result<Vec<ShowItem>, ParseError> {
    let mut items = Vec::new();
    while let Some(t) = a.next() {
        let Token::Word(w) = t else {
            return a.usage_error(&format!("unexpected {}", describe(t)));
        };
        if is_number(w) {
            let lsn = parse_number(w)?;
            let count = a.optional_count()?;
            items.push(ShowItem::Record { lsn, count });
            continue;
        }
        let k = keyword(w, SHOW_KEYWORDS).map_err(ParseError)?;
        let item = match k {
            "all" => ShowItem::All,
            "remaining" => ShowItem::Remaining,
            "head" => ShowItem::Head,
            "tail" => ShowItem::Tail,
            "earliest" => ShowItem::Earliest,
            "next" => ShowItem::Next(a.optional_count()?),
            "prev" => ShowItem::Prev(a.optional_count()?),
            "next_sub_rec" => ShowItem::NextSub(a.optional_count()?),
            "prev_sub_rec" => ShowItem::PrevSub(a.optional_count()?),
            "sub_rec" => ShowItem::SubRec,
            "rec_number" => {
                let Some(n) = a.peek_word().filter(|w| is_number(w)) else {
                    return a.usage_error("rec_number needs a record number (LSN)");
                };
                a.at += 1;
                let lsn = parse_number(n)?;
                let count = a.optional_count()?;
                ShowItem::Record { lsn, count }
            }
            "mods" => {
                let spec = addr_spec(a)?;
                let mut values = Vec::new();
                if matches!(a.peek(), Some(Token::Equals)) {
                    a.at += 1;
                    values = parse_values(a, spec.format.size, false)?;
                    if values.is_empty() {
                        return a.usage_error("expected values after =");
                    }
                }
                ShowItem::Mods { spec, values }
            }
            "monitor" => ShowItem::Monitor,
            "seg_dict" => ShowItem::SegDict,
            "status" => ShowItem::Status,
            "statistics" => ShowItem::Statistics,
            "timestamp" => ShowItem::Timestamp,
            _ => ShowItem::Uname,
        };
        items.push(item);
    }
    if items.is_empty() {
        return a.usage_error("show what?");
    }
    Ok(items)
}

/// Split `WORD` into (number, format) when it has the `N/FMT`, `N/`, `/FMT` or `/` shape.
/// Returns None for anything else (a file name such as `/tmp/x`).
fn split_slash(word: &str) -> Option<(Option<&str>, Option<&str>)> {
    let (before, after) = word.split_once('/')?;
    if !before.is_empty() && !is_number(before) {
        return None;
    }
    if !after.is_empty() && parse_format(after).is_err() {
        return None;
    }
    Some((
        (!before.is_empty()).then_some(before),
        (!after.is_empty()).then_some(after),
    ))
}

/// `ADDR [/ [FMT]]` where the slash may be attached to either side or stand alone.
fn offset_and_format(a: &mut Args<'_>) -> Result<Option<(u64, Option<Format>)>, ParseError> {
    let Some(w) = a.peek_word() else {
        return Ok(None);
    };
    let (number, mut fmt_text, mut saw_slash) = match split_slash(w) {
        Some((Some(n), f)) => (n, f, true),
        Some((None, _)) => return Ok(None),
        None if is_number(w) => (w, None, false),
        None => return Ok(None),
    };
    a.at += 1;
    let offset = parse_number(number)?;
    if !saw_slash {
        if let Some(next) = a.peek_word() {
            if let Some((None, f)) = split_slash(next) {
                a.at += 1;
                saw_slash = true;
                fmt_text = f;
            }
        }
    }
    if saw_slash && fmt_text.is_none() {
        if let Some(next) = a.peek_word() {
            if let Ok(f) = parse_format(next) {
                a.at += 1;
                return Ok(Some((offset, Some(f))));
            }
        }
    }
    let format = match fmt_text {
        Some(f) => Some(parse_format(f)?),
        None => None,
    };
    Ok(Some((offset, format)))
}

fn addr_spec(a: &mut Args<'_>) -> Result<AddrSpec, ParseError> {
    match offset_and_format(a)? {
        Some((address, format)) => Ok(AddrSpec {
            address,
            format: format.unwrap_or_default(),
        }),
        None => a.usage_error("expected ADDRESS[/FORMAT]"),
    }
}

fn parse_peek(a: &mut Args<'_>) -> Result<Command, ParseError> {
    let mut file = None;
    if let Some(t) = a.peek() {
        let is_offset = match t {
            Token::Word(w) => is_number(w) || split_slash(w).is_some(),
            _ => false,
        };
        if !is_offset {
            file = a.path();
        }
    }
    let (offset, format) = match offset_and_format(a)? {
        Some((o, f)) => (Some(o), f),
        None => {
            // `peek /FMT`: continue where the last peek stopped, in a new format.
            match a.peek_word().and_then(split_slash) {
                Some((None, f)) => {
                    a.at += 1;
                    (None, f.map(parse_format).transpose()?)
                }
                _ => (None, None),
            }
        }
    };
    Ok(Command::Peek {
        file,
        offset,
        format,
    })
}

fn parse_poke(a: &mut Args<'_>) -> Result<Command, ParseError> {
    let mut file = None;
    if let Some(t) = a.peek() {
        let is_offset = match t {
            Token::Word(w) => is_number(w) || split_slash(w).is_some(),
            _ => false,
        };
        if !is_offset {
            file = a.path();
        }
    }
    let mut groups = Vec::new();
    while !a.done() {
        let Some((offset, format)) = offset_and_format(a)? else {
            return a.usage_error("expected OFFSET[/[COUNT][SIZE]] = VALUES");
        };
        a.expect_equals()?;
        let format = format.unwrap_or(Format {
            count: 1,
            ..Format::default()
        });
        let values = parse_values(a, format.size, true)?;
        if values.is_empty() {
            return a.usage_error("expected values after =");
        }
        groups.push(PokeGroup {
            offset,
            count: format.count,
            size: format.size,
            values,
        });
    }
    if groups.is_empty() {
        return a.usage_error("nothing to poke");
    }
    Ok(Command::Poke { file, groups })
}

/// Values up to the end of the line or, for poke, up to the next `OFFSET[/FMT] =` group.
fn parse_values(
    a: &mut Args<'_>,
    size: Size,
    stop_at_group: bool,
) -> Result<Vec<Value>, ParseError> {
    let mut values = Vec::new();
    while let Some(t) = a.peek() {
        match t {
            Token::Str(s) => {
                values.push(Value::Bytes(s.clone()));
                a.at += 1;
            }
            Token::Word(w) => {
                if stop_at_group {
                    let next_is_eq = matches!(a.tokens.get(a.at + 1), Some(Token::Equals));
                    let slashed = split_slash(w).is_some_and(|(n, _)| n.is_some());
                    if next_is_eq || slashed {
                        break;
                    }
                }
                values.push(parse_value(w, size)?);
                a.at += 1;
            }
            _ => break,
        }
    }
    Ok(values)
}

fn parse_value(word: &str, size: Size) -> Result<Value, ParseError> {
    if size.is_float() {
        return word
            .parse::<f64>()
            .map(Value::Float)
            .or_else(|_| parse_signed(word).map(|v| Value::Float(v as f64)))
            .map_err(|_| ParseError(format!("{word:?} is not a number")));
    }
    parse_signed(word).map(Value::Integer)
}

fn parse_set(a: &mut Args<'_>) -> Result<Command, ParseError> {
    let Some(field_word) = a.peek_word() else {
        return a.usage_error("set what?");
    };
    a.at += 1;
    if keyword(field_word, &[("seg_dict", &["segment_dictionary"])]).is_ok() {
        let Some(n) = a.peek_word() else {
            return a.usage_error("set seg_dict needs a segment index");
        };
        a.at += 1;
        let index = parse_number(n)?;
        let index = u32::try_from(index)
            .map_err(|_| ParseError(format!("segment index {index} is too large")))?;
        a.expect_equals()?;
        let Some(path) = a.path() else {
            return a.usage_error("set seg_dict N = FILE needs a file");
        };
        return Ok(Command::SetSegDict { index, path });
    }
    if let Some(why) = classic_set_field(field_word) {
        return err(why);
    }
    let field = set_field(field_word)?;
    a.expect_equals()?;
    let value = match a.next() {
        Some(Token::Word(w)) if is_number(w) => SetValue::Number(parse_number(w)?),
        Some(Token::Word(w)) => SetValue::Field(set_field(w)?),
        _ => return a.usage_error("expected a number or a field name after ="),
    };
    Ok(Command::Set { field, value })
}

/// Why a field the classic `set` knew has no counterpart here (or `None` for other words).
fn classic_set_field(word: &str) -> Option<String> {
    let lower = word.to_ascii_lowercase();
    Some(match lower.as_str() {
        "prev_head" | "prev" | "prev_tail" => format!(
            "set {word}: the status keeps no previous head or tail; the previous status is \
             the other status slot (`status` shows both, `peek` its bytes)"
        ),
        "log_start" => format!(
            "set {word}: the record area always starts at offset {} (the status's \
             area_offset, fixed by the format); to move where the live log starts, set \
             head_offset and head_lsn",
            rvm::format::log::RECORD_AREA_OFFSET
        ),
        _ if is_number(&lower) => format!(
            "set {word} = ...: set changes named status fields only; to change bytes of a \
             file at an offset use `poke FILE {word} = VALUE`"
        ),
        _ => return None,
    })
}

fn set_field(word: &str) -> Result<&'static str, ParseError> {
    const FIELDS: &[(&str, &[&str])] = &[
        ("head_offset", &["head"]),
        ("head_lsn", &[]),
        ("tail_offset", &["tail"]),
        ("tail_lsn", &[]),
        ("generation", &[]),
        ("generation_start_lsn", &[]),
        ("flags", &[]),
        ("sequence", &[]),
    ];
    let k = keyword(word, FIELDS).map_err(|e| {
        ParseError(format!(
            "{e} (fields: {}, seg_dict N)",
            SET_FIELDS.join(", ")
        ))
    })?;
    Ok(SET_FIELDS
        .iter()
        .copied()
        .find(|f| *f == k)
        .unwrap_or("head_offset"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Radix;

    #[test]
    fn numbers_in_every_base() {
        assert_eq!(parse_number("42"), Ok(42));
        assert_eq!(parse_number("0x2a"), Ok(42));
        assert_eq!(parse_number("x2A"), Ok(42));
        assert_eq!(parse_number("052"), Ok(42));
        assert_eq!(parse_number("0"), Ok(0));
        assert_eq!(parse_number("1,0x10"), Ok((1 << 32) + 16));
        assert!(parse_number("1,").is_err());
        assert!(parse_number(&"1,".repeat(30000)).is_err());
        assert!(parse_number("0x100000000,0").is_err());
        assert!(parse_number("").is_err());
        assert!(parse_number("0x").is_err());
        assert!(parse_number("-1").is_err());
        assert!(parse_number("99999999999999999999999").is_err());
        assert!(parse_number("09").is_err());
    }

    #[test]
    fn sizes_with_units() {
        assert_eq!(parse_size("30M"), Ok(30 << 20));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("4S"), Ok(2048));
        assert_eq!(parse_size("2P"), Ok(8192));
        assert_eq!(parse_size("100B"), Ok(100));
        assert_eq!(parse_size("0x1B"), Ok(0x1b));
        assert!(parse_size("3Q")
            .unwrap_err()
            .0
            .contains("unknown size unit"));
        assert!(parse_size("99999999999G").is_err());
    }

    #[test]
    fn strings_resolve_escapes() {
        let t = tokenize(r#"poke 0 = "a\n\0\x41\101\"""#).unwrap();
        assert_eq!(t.last(), Some(&Token::Str(b"a\n\0AA\"".to_vec())));
        assert!(tokenize("\"open").is_err());
        assert!(tokenize("\"\\q\"").is_err());
    }

    fn cmd(line: &str) -> Command {
        match parse_command_line(line) {
            Ok(Line::Command { command, .. }) => command,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn redirection_is_split_off() {
        let Ok(Line::Command { command, redirect }) = parse_command_line("show all >> out.txt")
        else {
            panic!()
        };
        assert_eq!(command, Command::Show(vec![ShowItem::All]));
        assert_eq!(
            redirect,
            Some(Redirect {
                path: "out.txt".into(),
                kind: RedirectKind::Append
            })
        );
        assert!(parse_command_line("show all > a b").is_err());
        assert!(parse_command_line("> a").is_err());
    }

    #[test]
    fn peek_forms() {
        let f = |count, size, radix| Some(Format { count, size, radix });
        assert_eq!(
            cmd("peek /tmp/x 100/4xl"),
            Command::Peek {
                file: Some("/tmp/x".into()),
                offset: Some(100),
                format: f(4, Size::Long, Radix::Hex)
            }
        );
        assert_eq!(
            cmd("p 0x10 / 2O"),
            Command::Peek {
                file: None,
                offset: Some(16),
                format: f(2, Size::Offset, Radix::Unsigned)
            }
        );
        assert_eq!(
            cmd("peek 8 /c"),
            Command::Peek {
                file: None,
                offset: Some(8),
                format: f(1, Size::Byte, Radix::Char)
            }
        );
        assert_eq!(
            cmd("peek log 8"),
            Command::Peek {
                file: Some("log".into()),
                offset: Some(8),
                format: None
            }
        );
        assert_eq!(
            cmd("peek"),
            Command::Peek {
                file: None,
                offset: None,
                format: None
            }
        );
    }

    #[test]
    fn poke_groups_and_values() {
        assert_eq!(
            cmd(r#"poke data 4096/2b = 1 -2 8192 = "hi""#),
            Command::Poke {
                file: Some("data".into()),
                groups: vec![
                    PokeGroup {
                        offset: 4096,
                        count: 2,
                        size: Size::Byte,
                        values: vec![Value::Integer(1), Value::Integer(-2)]
                    },
                    PokeGroup {
                        offset: 8192,
                        count: 1,
                        size: Size::Long,
                        values: vec![Value::Bytes(b"hi".to_vec())]
                    },
                ]
            }
        );
        assert!(parse_command_line("poke 10 =").is_err());
        assert!(parse_command_line("poke 10 1").is_err());
    }

    #[test]
    fn ambiguous_and_unknown_commands() {
        let e = parse_command_line("st").unwrap_err().0;
        assert!(
            e.contains("ambiguous") && e.contains("status") && e.contains("statistics"),
            "{e}"
        );
        assert!(parse_command_line("frobnicate")
            .unwrap_err()
            .0
            .contains("command not found"));
        assert_eq!(cmd("p 4"), cmd("peek 4"));
        assert_eq!(cmd("pr"), Command::Prev(1));
        assert_eq!(cmd("q"), Command::Quit);
    }

    #[test]
    fn show_keywords() {
        assert_eq!(
            cmd("s rec 7 2 head 9"),
            Command::Show(vec![
                ShowItem::Record { lsn: 7, count: 2 },
                ShowItem::Head,
                ShowItem::Record { lsn: 9, count: 1 }
            ])
        );
        assert_eq!(
            cmd("show mods 0x1000/2l = 5 6"),
            Command::Show(vec![ShowItem::Mods {
                spec: AddrSpec {
                    address: 0x1000,
                    format: Format {
                        count: 2,
                        size: Size::Long,
                        radix: Radix::Decimal
                    }
                },
                values: vec![Value::Integer(5), Value::Integer(6)]
            }])
        );
        assert!(parse_command_line("show").is_err());
        assert!(parse_command_line("show re")
            .unwrap_err()
            .0
            .contains("ambiguous"));
    }

    #[test]
    fn set_fields() {
        assert_eq!(
            cmd("set head = tail"),
            Command::Set {
                field: "head_offset",
                value: SetValue::Field("tail_offset")
            }
        );
        assert_eq!(
            cmd("set head_lsn=7"),
            Command::Set {
                field: "head_lsn",
                value: SetValue::Number(7)
            }
        );
        assert_eq!(
            cmd("set seg_dict 0 = /srv/data"),
            Command::SetSegDict {
                index: 0,
                path: "/srv/data".into()
            }
        );
        assert!(parse_command_line("set bogus = 1").is_err());
    }

    #[test]
    fn no_panic_on_odd_input() {
        for line in [
            "",
            "=",
            ">",
            ">>",
            "\"",
            "p /",
            "p //",
            "poke /=",
            "poke 1/=",
            "s 1 0",
            "set",
            "show mods",
            "show mods 1/0x",
            "monitor 5/",
            "n 0",
            "n 99999999",
            "i x 5Q",
            "peek 1/4xx",
            "< ",
            "<\"a",
            "\u{0}",
            "open_log a b",
            "log \"\" no_tail",
        ] {
            let _ = parse_command_line(line);
        }
    }
}
