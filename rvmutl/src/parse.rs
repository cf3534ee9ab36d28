//! The command language: tokens, numbers, sizes, and one typed [`Command`] per input line.
//!
//! Every function here is total: any input string yields a value or a [`ParseError`], never a
//! panic (the fuzz target `parse_command_line` relies on it).
//!
//! `lex` splits a line into tokens, `words` reads numbers, sizes and keywords, `command` holds
//! what a line parses to, `cursor` walks a command's arguments, `addr` reads addresses with
//! formats and poke values, and `grammar` the arguments of each command.

mod addr;
mod command;
mod cursor;
mod grammar;
mod lex;
mod words;

pub use self::command::{AddrSpec, Command, Line, PokeGroup, SetValue, ShowItem, SET_FIELDS};
pub use self::lex::{tokenize, Redirect, RedirectKind, Token, LINE_BYTES_MAX};
pub use self::words::{is_number, keyword, parse_number, parse_signed, parse_size, PAGE_BYTES};
pub use crate::format::{ParseError, Value, COUNT_MAX};

use self::cursor::Args;
use self::grammar::parse_args;
use self::lex::take_redirect;
use crate::format::err;
use crate::table::{self, CommandId};

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

#[cfg(test)]
mod tests;
