//! Tokens of a command line: words, C-escaped `"strings"`, `=`, and the output redirection
//! (`>`, `>>`, `>&`) split off the end of a line.

use crate::format::{err, ParseError};

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

/// Take the redirection (and its file) off the end of the tokens, if there is one.
pub(super) fn take_redirect(tokens: &mut Vec<Token>) -> Result<Option<Redirect>, ParseError> {
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
