//! A cursor over a command's argument tokens, with the usage error of the command it parses.

use super::lex::Token;
use super::words::{is_number, parse_number};
use crate::format::{err, ParseError, COUNT_MAX};
use crate::table::{self, CommandId};

/// A cursor over a command's argument tokens.
pub(super) struct Args<'a> {
    pub(super) tokens: &'a [Token],
    pub(super) at: usize,
    id: CommandId,
}

impl<'a> Args<'a> {
    pub(super) fn new(tokens: &'a [Token], id: CommandId) -> Self {
        Args { tokens, at: 0, id }
    }
    pub(super) fn peek(&self) -> Option<&'a Token> {
        self.tokens.get(self.at)
    }
    pub(super) fn peek_word(&self) -> Option<&'a str> {
        match self.peek() {
            Some(Token::Word(w)) => Some(w),
            _ => None,
        }
    }
    pub(super) fn next(&mut self) -> Option<&'a Token> {
        let t = self.tokens.get(self.at);
        if t.is_some() {
            self.at += 1;
        }
        t
    }
    pub(super) fn done(&self) -> bool {
        self.at >= self.tokens.len()
    }
    pub(super) fn usage_error<T>(&self, what: &str) -> Result<T, ParseError> {
        let spec = table::spec(self.id);
        err(format!("{what}; usage: {} {}", spec.name, spec.usage))
    }
    pub(super) fn finish(&self) -> Result<(), ParseError> {
        match self.peek() {
            None => Ok(()),
            Some(t) => self.usage_error(&format!("unexpected {}", describe(t))),
        }
    }
    /// A word or string used as a path.
    pub(super) fn path(&mut self) -> Option<String> {
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
    pub(super) fn optional_count(&mut self) -> Result<u64, ParseError> {
        match self.peek_word() {
            Some(w) if is_number(w) => {
                self.at += 1;
                count(w)
            }
            _ => Ok(1),
        }
    }
    pub(super) fn expect_equals(&mut self) -> Result<(), ParseError> {
        match self.next() {
            Some(Token::Equals) => Ok(()),
            _ => self.usage_error("expected ="),
        }
    }
}

/// How a token is named in an error message.
pub(super) fn describe(t: &Token) -> String {
    match t {
        Token::Word(w) => format!("{w:?}"),
        Token::Str(_) => "string".into(),
        Token::Equals => "=".into(),
        Token::Redirect(_) => ">".into(),
    }
}

/// A repeat count: a number from 1 to [`COUNT_MAX`].
fn count(text: &str) -> Result<u64, ParseError> {
    let n = parse_number(text)?;
    if n == 0 || n > COUNT_MAX {
        return err(format!("count must be between 1 and {COUNT_MAX}"));
    }
    Ok(n)
}
