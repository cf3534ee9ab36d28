//! Offsets and addresses with a format (`ADDR [/ [FMT]]`, the slash on either side or alone),
//! and the values of `peek`, `poke` and `show mods`.

use super::command::{AddrSpec, Command, PokeGroup};
use super::cursor::Args;
use super::lex::Token;
use super::words::{is_number, parse_number, parse_signed};
use crate::format::{parse_format, Format, ParseError, Size, Value};

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

pub(super) fn addr_spec(a: &mut Args<'_>) -> Result<AddrSpec, ParseError> {
    match offset_and_format(a)? {
        Some((address, format)) => Ok(AddrSpec {
            address,
            format: format.unwrap_or_default(),
        }),
        None => a.usage_error("expected ADDRESS[/FORMAT]"),
    }
}

/// The file `peek` and `poke` name before the offset, if the next token is not an offset.
fn leading_file(a: &mut Args<'_>) -> Option<String> {
    let is_offset = match a.peek()? {
        Token::Word(w) => is_number(w) || split_slash(w).is_some(),
        _ => false,
    };
    if is_offset {
        None
    } else {
        a.path()
    }
}

pub(super) fn parse_peek(a: &mut Args<'_>) -> Result<Command, ParseError> {
    let file = leading_file(a);
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

pub(super) fn parse_poke(a: &mut Args<'_>) -> Result<Command, ParseError> {
    let file = leading_file(a);
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
pub(super) fn parse_values(
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
