//! The one command table. It drives the prompt (names, aliases, unique prefixes, sticky
//! commands), `help`, the one-shot subcommands and their `--help`, the man page and the shell
//! completions (see `cli.rs`).

/// Every command of the language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandId {
    OpenLog,
    CloseLog,
    InitLog,
    ReadStatus,
    WriteStatus,
    Status,
    Statistics,
    Head,
    Tail,
    Earliest,
    Next,
    Prev,
    NextSub,
    PrevSub,
    SubRec,
    Show,
    FindTail,
    FindEarliest,
    AllSpec,
    SegDict,
    Monitor,
    Recover,
    Replay,
    FindHole,
    Peek,
    Poke,
    CopyLog,
    Set,
    Sizeof,
    Update,
    NoUpdate,
    Check,
    Segment,
    Heap,
    Help,
    Quit,
}

/// An argument of a one-shot subcommand.
#[derive(Debug, Clone, Copy)]
pub enum ArgSpec {
    /// A positional argument: name, help, required, is a file path.
    Positional(&'static str, &'static str, bool, bool),
    /// A `--long` switch.
    Flag(&'static str, &'static str),
    /// A `--long VALUE` option that may repeat: name, value name, help, is a file path.
    Repeated(&'static str, &'static str, &'static str, bool),
}

/// How a command is offered as `rvmutl NAME ...`.
#[derive(Debug, Clone, Copy)]
pub struct OneShot {
    pub name: &'static str,
    /// One line for `--help` when it differs from the prompt command's summary.
    pub about: Option<&'static str>,
    pub args: &'static [ArgSpec],
    /// Whether `--json` is offered.
    pub json: bool,
    /// `--help` text when the prompt command's details do not describe the subcommand.
    pub details: Option<&'static str>,
}

/// One command: everything every front end needs to know about it.
#[derive(Debug, Clone, Copy)]
pub struct CommandSpec {
    pub id: CommandId,
    pub name: &'static str,
    /// Other names; an exact alias wins over a prefix of another command.
    pub aliases: &'static [&'static str],
    pub usage: &'static str,
    pub summary: &'static str,
    /// Longer help (shown by `help NAME`, `--help` and the man page).
    pub details: &'static str,
    /// An empty line repeats it.
    pub sticky: bool,
    /// It may write a file (everything else opens files read-only).
    pub writes: bool,
    /// Lines that must parse as this command (checked by a unit test).
    pub examples: &'static [&'static str],
    pub one_shot: Option<OneShot>,
}

const LOG_ARG: ArgSpec = ArgSpec::Positional("LOG", "the log file", true, true);
const JSON_FLAG: ArgSpec = ArgSpec::Flag("json", "print JSON instead of text");

macro_rules! spec {
    ($id:ident, $name:expr, [$($alias:expr),*], $usage:expr, $summary:expr, $details:expr,
     sticky: $sticky:expr, writes: $writes:expr, examples: [$($ex:expr),*], one_shot: $one:expr) => {
        CommandSpec {
            id: CommandId::$id,
            name: $name,
            aliases: &[$($alias),*],
            usage: $usage,
            summary: $summary,
            details: $details,
            sticky: $sticky,
            writes: $writes,
            examples: &[$($ex),*],
            one_shot: $one,
        }
    };
}

pub const COMMANDS: &[CommandSpec] = &[
    spec!(OpenLog, "open_log", ["log"], "[LOG] [no_tail|tail] [update|no_update]",
        "open a log for inspection (read-only)",
        "Opens LOG read-only (asks for the name if missing; offers to create a missing file). \
         The chain of records is scanned from the head to find the tail unless no_tail is given \
         (for a damaged log). update/no_update sets whether a later `recover` writes.",
        sticky: false, writes: false, examples: ["open_log /srv/log", "log log no_tail no_update"], one_shot: None),
    spec!(CloseLog, "close_log", [], "", "close the open log",
        "Forgets the open log and any unwritten status changes made with `set`.",
        sticky: false, writes: false, examples: ["close_log"], one_shot: None),
    spec!(InitLog, "init_log", ["i"], "[LOG [SIZE]]", "create or re-initialise a log",
    "Writes an empty log with a record area of SIZE bytes (units K, M, G, T, also written \
     KiB.. or KB..: all 1024-based; S = 512-byte sectors, P = 4096-byte pages, B = bytes; \
     rounded down to a sector; rdsinit --log-size reads the same) and opens it. \
     Asks for what is missing. Refuses to wipe a log that still holds records not yet \
     applied to their segments unless you confirm (or pass --force to the subcommand).",
    sticky: false, writes: true, examples: ["init_log log 30M", "i", "i x 64K"],
    one_shot: Some(OneShot { details: None, name: "init-log", about: None, json: false, args: &[
        LOG_ARG,
        ArgSpec::Positional("SIZE", "record area size, e.g. 30M", true, false),
        ArgSpec::Flag("force", "wipe an existing log even if it holds unapplied records"),
    ]})),
    spec!(ReadStatus, "read_status", [], "", "re-read the status slots from the log",
        "Discards in-memory status changes and reads both status slots again.",
        sticky: false, writes: false, examples: ["read_status"], one_shot: None),
    spec!(WriteStatus, "write_status", [], "", "write the in-memory status to the log",
        "Writes the status (as changed by `set`) with the next sequence number into the slot it \
         belongs to, syncs, and says what changed. Opens the log read-write for that write only.",
        sticky: false, writes: true, examples: ["write_status"], one_shot: None),
    spec!(Status, "status", ["log_status"], "", "show the log status",
        "Both status slots (which is current, sequence, when written), log UUID, geometry, \
         head, tail (from the status and from the scan), used and free space, first and last \
         LSN, creation and last truncation time, generation, clean-shutdown flag, and how the \
         chain of records ends (end of log, torn tail, or mid-log corruption).",
        sticky: false, writes: false, examples: ["status", "log_status"],
        one_shot: Some(OneShot { details: None, name: "status", about: None, json: true, args: &[LOG_ARG, JSON_FLAG] })),
    spec!(Statistics, "statistics", [], "", "show the lifetime counters kept in the log",
        "The cumulative counters persisted in the status (commits, flushes, records and bytes \
         logged, truncations, recoveries, wraps, coalescing).",
        sticky: false, writes: false, examples: ["statistics"], one_shot: None),
    spec!(Head, "head", ["h", "he"], "", "show the record at the head",
        "Shows the oldest live record and makes it the current record.",
        sticky: false, writes: false, examples: ["head"], one_shot: None),
    spec!(Tail, "tail", [], "", "show the last transaction before the tail",
        "Shows the newest live transaction record (the pads a flush ends with are skipped) and \
         makes it the current record.",
        sticky: false, writes: false, examples: ["tail"], one_shot: None),
    spec!(Earliest, "earliest", [], "", "show the earliest intact record",
        "Walks backward from the head over records already applied (truncated) but still \
         intact, and shows the oldest one.",
        sticky: false, writes: false, examples: ["earliest"], one_shot: None),
    spec!(Next, "next", ["n"], "[N]", "show the next N records",
        "Moves forward N records from the current one (from the head if none).",
        sticky: true, writes: false, examples: ["next", "n 3"], one_shot: None),
    spec!(Prev, "prev", ["pr"], "[N]", "show the previous N records",
        "Moves backward N records from the current one (from the tail if none); may go before \
         the head into records already applied.",
        sticky: true, writes: false, examples: ["prev", "pr 2"], one_shot: None),
    spec!(NextSub, "next_sub_rec", ["ns"], "[N]", "show the next N sub-records",
        "Sub-records are a record's header, each of its ranges, and its trailer (end marker).",
        sticky: true, writes: false, examples: ["ns", "next_sub_rec 2"], one_shot: None),
    spec!(PrevSub, "prev_sub_rec", ["ps"], "[N]", "show the previous N sub-records",
        "Moves backward over sub-records (trailer, ranges, header).",
        sticky: true, writes: false, examples: ["ps", "prev_sub_rec 4"], one_shot: None),
    spec!(SubRec, "sub_rec", ["sr"], "", "show the current sub-record",
        "Shows the current sub-record again.",
        sticky: true, writes: false, examples: ["sr"], one_shot: None),
    spec!(Show, "show", ["s"],
        "all|remaining|head|tail|earliest|next [K]|prev [K]|ns [K]|ps [K]|sr|rec_number N [K]|N [K]|mods ADDR[/FMT] [= VALUES]|monitor|seg_dict|status|statistics ...",
        "show records and structures",
        "all: every live record, then how the log ends (and the records after mid-log damage); \
         remaining: from the current record on; rec_number N (or just N): the record with LSN N; \
         mods ADDR/FMT [= VALUES]: newest first, the records whose ranges wrote the address range \
         (optionally only those writing the given values); monitor: the monitored ranges.",
        sticky: true, writes: false, examples: ["show all", "s 7 2", "show mods 0x1000/4x = 1", "show head tail"],
        one_shot: Some(OneShot { details: Some("Shows every live record from the head, in order (header, commit time, each range with a preview of its data), then how the chain of records ends: the normal end of the log, a torn tail, or mid-log corruption; after damage, the intact records found beyond it are shown too, marked as such. With --json: the records and the end as JSON. Never writes."), name: "records", about: Some("show every record: the live log, how it ends, and what follows any damage (show all)"), json: true, args: &[LOG_ARG, JSON_FLAG] })),
    spec!(FindTail, "find_tail", [], "", "scan for the tail",
        "Scans the chain of records from the head and prints where it ends and why.",
        sticky: false, writes: false, examples: ["find_tail"], one_shot: None),
    spec!(FindEarliest, "find_earliest", [], "", "find the earliest intact record",
        "Prints the offset and LSN of the earliest intact record (see `earliest`).",
        sticky: false, writes: false, examples: ["find_earliest"], one_shot: None),
    spec!(AllSpec, "all_spec", [], "", "show every non-transaction record",
        "Shows the pad records of the live log: sector pads (a flush always ends on a sector \
         boundary) and wrap pads (the end of the area before the log wraps to its start).",
        sticky: false, writes: false, examples: ["all_spec"], one_shot: None),
    spec!(SegDict, "seg_dict", ["build_seg_dict"], "[all] [clear]", "show the log's segment table",
        "The segments the log names (index, UUID, length, path hint), as stored in the status; \
         it replaces the classic segment-dictionary records. A plain file (mapped with \
         `rvm_map` or `Rvm::map_file`) shows its path, device, inode and length; recovery opens \
         it by that path. `set seg_dict N = FILE` redirects segment N (not a plain file) for \
         `recover`.",
        sticky: false, writes: false, examples: ["seg_dict", "seg_dict all"], one_shot: None),
    spec!(Monitor, "monitor", [], "[clear] [ADDR[/FMT] ...]", "watch address ranges during recover",
        "Adds address ranges (by the virtual address recorded in each range) that `recover` \
         reports when it applies data to them; without arguments asks for them, one per line, \
         ending with an empty line. `clear` removes all.",
        sticky: false, writes: false, examples: ["monitor 0x1000/4x", "monitor clear"], one_shot: None),
    spec!(Recover, "recover", [], "[update|no_update] [prefix] [LOG]", "apply the log to its segments",
    "update (the default unless the log was opened no_update): replays every committed \
     record into its segment, syncs, and empties the log, exactly as the library's recovery \
     does. no_update: a dry run that lists what would be written where. prefix: on mid-log \
     corruption, apply only the records before the damage. LOG: open that log first.",
    sticky: false, writes: true, examples: ["recover", "recover no_update", "recover update prefix", "recover no_update log"],
    one_shot: Some(OneShot { details: None, name: "recover", about: None, json: true, args: &[
        LOG_ARG,
        ArgSpec::Flag("dry-run", "show what would be written where, write nothing"),
        ArgSpec::Flag("prefix", "on mid-log corruption, apply only the records before the damage"),
        ArgSpec::Repeated("segment", "DATA", "where to find a segment (matched by UUID)", true),
        JSON_FLAG,
    ]})),
    spec!(Replay, "replay", [], "[update|no_update] [head N] [tail N] [LOG]",
        "recover (the classic experimental replay)",
        "Without head or tail: the same as `recover` (opening LOG first if given). The classic \
         head N / tail N replayed an arbitrary stretch of records; rvm-rs refuses that, \
         because records before the head are already in the segments and a partial replay \
         could leave a segment mixing old and new values. To move the head, use `set \
         head_offset`/`head_lsn` and `write_status`, then `recover`.",
        sticky: false, writes: true, examples: ["replay", "replay no_update", "replay head 3 tail 5"], one_shot: None),
    spec!(FindHole, "find_hole", [], "", "find the first hole in the log",
        "Walks the chain of records from the head and says where it is broken (a damaged or \
         missing record) and where intact records resume after it, or that there is no hole \
         before the normal end of the log.",
        sticky: false, writes: false, examples: ["find_hole"], one_shot: None),
    spec!(Peek, "peek", ["p"], "[FILE] [OFFSET] [/ [COUNT][SIZE][FORMAT]]", "dump bytes of a file",
        "Reads COUNT items of SIZE (b byte, s short, l long=4, O offset=8, f float, D double, \
         t time) at OFFSET and prints them in FORMAT (c char, d decimal, o octal, x hex, u \
         unsigned, * all of these). Classic shorthands: h short decimal, i and w long \
         decimal, L long unsigned. FILE defaults to the last one peeked, then the open log. An empty line \
         continues where the last peek stopped.",
        sticky: true, writes: false, examples: ["peek log 65536/4xl", "p 0/8c", "peek", "p 0/2h", "p 0/4*b"], one_shot: None),
    spec!(Poke, "poke", [], "[FILE] OFFSET [/ [COUNT][SIZE]] = VALUE ... [OFFSET ... = ...]",
        "write values into a file",
        "Writes integers, floats or \"strings\" (C escapes, with their NUL) of SIZE at OFFSET, \
         the value list repeated COUNT times; OFFSET must be a multiple of SIZE. Opens FILE \
         read-write (locked), syncs, and says what it wrote.",
        sticky: false, writes: true, examples: ["poke data 4096/2b = 1 2", "poke 8 = \"hi\""], one_shot: None),
    spec!(CopyLog, "copy_log", [], "[TO]", "copy the open log to another file",
        "Copies the open log (status slots and record area) to TO, which must be another file; \
         it is created or overwritten, then synced.",
        sticky: false, writes: true, examples: ["copy_log /tmp/copy"], one_shot: None),
    spec!(Set, "set", [], "FIELD = VALUE|FIELD | seg_dict N = FILE", "change the in-memory status",
        "Fields: head_offset (head), head_lsn, tail_offset (tail), tail_lsn, generation, \
         generation_start_lsn, flags, sequence; the value is a number or another field. Nothing \
         is written until `write_status`. `seg_dict N = FILE` makes `recover` look for segment N \
         (as numbered by seg_dict) in FILE.",
        sticky: false, writes: false, examples: ["set head = tail", "set seg_dict 0 = data"], one_shot: None),
    spec!(Sizeof, "sizeof", [], "NAME ...|all", "sizes of on-disk structures and limits",
        "Prints the size in bytes of the named structures or limits, or of all of them. The \
         classic names (page_size, rec_hdr_t, log_status_t, all_sizes, ...) print their \
         equivalent here, or say why there is none.",
        sticky: false, writes: false, examples: ["sizeof all", "sizeof record_header range_header", "sizeof rec_hdr_t page_size"], one_shot: None),
    spec!(Update, "update", [], "", "let recover write (the default)",
        "After this, `recover` without a keyword applies the log.",
        sticky: false, writes: false, examples: ["update"], one_shot: None),
    spec!(NoUpdate, "no_update", [], "", "make recover a dry run",
        "After this, `recover` without a keyword only shows what it would write.",
        sticky: false, writes: false, examples: ["no_update"], one_shot: None),
    spec!(Check, "check", [], "[DATA]", "verify the log (and a segment)",
    "Verifies both status slots, every record's CRC and the LSN chain, the ranges against \
     the segment table, and with DATA the segment header, the ranges against its regions \
     and the RDS heap. Reports every problem with its offset; the subcommand exits 1 if \
     anything is wrong. Never writes.",
    sticky: false, writes: false, examples: ["check", "check data"],
    one_shot: Some(OneShot { details: None, name: "check", about: None, json: true, args: &[
        LOG_ARG,
        ArgSpec::Positional("DATA", "a data segment to check too", false, true),
        JSON_FLAG,
    ]})),
    spec!(Segment, "segment", [], "DATA", "show a data segment's header",
    "UUID, format version, creation time, length, file size and space used on disk, and \
     each region's offset, length, address and end address.",
    sticky: false, writes: false, examples: ["segment data"],
    one_shot: Some(OneShot { details: None, name: "segment", about: None, json: true, args: &[
        ArgSpec::Positional("DATA", "the data segment", true, true),
        JSON_FLAG,
    ]})),
    spec!(Heap, "heap", [], "DATA", "show the RDS heap of a data segment",
    "The RDS heap header of region 0, statistics, a histogram of the free lists (blocks \
     and bytes per list), the largest free block and the fragmentation. Reads the file; \
     nothing is mapped.",
    sticky: false, writes: false, examples: ["heap data"],
    one_shot: Some(OneShot { details: None, name: "heap", about: None, json: true, args: &[
        ArgSpec::Positional("DATA", "the data segment", true, true),
        JSON_FLAG,
    ]})),
    spec!(Help, "help", ["?"], "[COMMAND]", "list the commands or describe one",
        "Without an argument lists every command; with one shows its usage and details.",
        sticky: false, writes: false, examples: ["help", "help peek"], one_shot: None),
    spec!(Quit, "quit", ["q", "exit"], "", "leave rvmutl",
        "Closes everything and exits with status 0, as classic. (Piped commands that end \
         without quit exit with the worst status of the commands: 1 problems found, 2 an \
         error.)",
        sticky: false, writes: false, examples: ["quit", "q"], one_shot: None),
];

/// The table entry of a command.
pub fn spec(id: CommandId) -> &'static CommandSpec {
    COMMANDS.iter().find(|c| c.id == id).unwrap_or(&COMMANDS[0])
}

/// Find a command by name: an exact name or alias wins; otherwise a unique prefix of a name
/// or alias. The error says "command not found" or lists the ambiguous candidates.
pub fn lookup(word: &str) -> Result<CommandId, String> {
    if let Some(c) = COMMANDS
        .iter()
        .find(|c| c.name == word || c.aliases.contains(&word))
    {
        return Ok(c.id);
    }
    let matches: Vec<&CommandSpec> = COMMANDS
        .iter()
        .filter(|c| c.name.starts_with(word) || c.aliases.iter().any(|a| a.starts_with(word)))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one.id),
        [] => Err(format!("{word}: command not found (try help)")),
        many => Err(format!(
            "{word}: ambiguous command: {}?",
            many.iter().map(|c| c.name).collect::<Vec<_>>().join(" or ")
        )),
    }
}

/// The entry whose one-shot subcommand is `name`.
pub fn one_shot(name: &str) -> Option<&'static CommandSpec> {
    COMMANDS
        .iter()
        .find(|c| c.one_shot.is_some_and(|o| o.name == name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{parse_command_line, Line};

    /// The parse test beside each command: every example of every entry parses, and parses
    /// as that entry's command.
    #[test]
    fn every_command_has_examples_that_parse_as_itself() {
        for c in COMMANDS {
            assert!(!c.examples.is_empty(), "{} has no example", c.name);
            for ex in c.examples {
                let first = ex.split_whitespace().next().unwrap_or("");
                assert_eq!(lookup(first), Ok(c.id), "{ex}");
                match parse_command_line(ex) {
                    Ok(Line::Command { .. }) => {}
                    other => panic!("{ex:?} does not parse: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn names_and_aliases_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for c in COMMANDS {
            for n in std::iter::once(&c.name).chain(c.aliases.iter()) {
                assert!(seen.insert(*n), "{n} is used twice");
            }
        }
    }

    #[test]
    fn classic_abbreviations() {
        for (word, id) in [
            ("p", CommandId::Peek),
            ("pr", CommandId::Prev),
            ("i", CommandId::InitLog),
            ("q", CommandId::Quit),
            ("n", CommandId::Next),
            ("ns", CommandId::NextSub),
            ("ps", CommandId::PrevSub),
            ("s", CommandId::Show),
            ("sr", CommandId::SubRec),
            ("log", CommandId::OpenLog),
            ("open", CommandId::OpenLog),
            ("statu", CommandId::Status),
            ("stati", CommandId::Statistics),
            ("write", CommandId::WriteStatus),
            ("find_t", CommandId::FindTail),
            ("h", CommandId::Head),
            ("he", CommandId::Head),
            ("find_h", CommandId::FindHole),
            ("rep", CommandId::Replay),
        ] {
            assert_eq!(lookup(word), Ok(id), "{word}");
        }
        assert!(lookup("find")
            .unwrap_err()
            .contains("find_tail or find_earliest"));
        assert!(lookup("zzz").unwrap_err().contains("command not found"));
    }
}
