//! The arguments of each command of the table (`show` and `set` with their keywords), once the
//! command is identified.

use super::addr::{addr_spec, parse_peek, parse_poke, parse_values};
use super::command::{Command, SetValue, ShowItem, SET_FIELDS};
use super::cursor::{describe, Args};
use super::lex::Token;
use super::words::{is_number, keyword, parse_number, parse_size};
use crate::format::{err, ParseError};
use crate::table::CommandId;

/// The arguments of command `id`, to the end of `a`.
pub(super) fn parse_args(id: CommandId, mut a: Args<'_>) -> Result<Command, ParseError> {
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
