//! Numbers and sizes as the tools read them, in one place: `rdsinit` (flags, positional values,
//! the dialogue) and `rvmutl` (prompt commands and one-shot subcommands) both call
//! [`parse_size`] and [`parse_number`], so `30M`, `30MiB`, `30MB`, `61440S` and `7680P` mean
//! the same everywhere.
//!
//! A number is decimal (`4096`), hexadecimal (`0x1000`, or `x1000` as in classic rvmutl) or
//! octal with a leading zero (`010000`); `_` may separate digits. A size is a number followed
//! by an optional unit, case-insensitive:
//!
//! | unit | bytes |
//! | --- | --- |
//! | none, `B` | 1 |
//! | `K`, `KiB`, `KB` | 1024 |
//! | `M`, `MiB`, `MB` | 1024² |
//! | `G`, `GiB`, `GB` | 1024³ |
//! | `T`, `TiB`, `TB` | 1024⁴ |
//! | `S` | 512 (a sector, as classic `init_log`) |
//! | `P` | 4096 (a page: the format's region alignment, the same on every machine) |
//!
//! `KB`, `MB`, `GB` and `TB` are binary multiples (1024-based), as in the classic tools: there
//! is no 1000-based unit. After a hexadecimal number the digit run is taken first, so `0x1B` is
//! 27 bytes and `0x10KB` is 16 KiB.
//!
//! This module does no I/O, never panics on any text (it is fuzzed), and its error says what is
//! wrong with the text.

use std::fmt;

/// Bytes in the `S` unit: a 512-byte sector.
pub const SECTOR_BYTES: u64 = 512;
/// Bytes in the `P` unit: the format's region alignment, so a size means the same on every
/// machine whatever its memory page size.
pub const PAGE_BYTES: u64 = crate::format::segment::REGION_ALIGN;

/// The units [`parse_size`] accepts (lowercase) and their multipliers.
const UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("b", 1),
    ("k", 1 << 10),
    ("kb", 1 << 10),
    ("kib", 1 << 10),
    ("m", 1 << 20),
    ("mb", 1 << 20),
    ("mib", 1 << 20),
    ("g", 1 << 30),
    ("gb", 1 << 30),
    ("gib", 1 << 30),
    ("t", 1 << 40),
    ("tb", 1 << 40),
    ("tib", 1 << 40),
    ("s", SECTOR_BYTES),
    ("p", PAGE_BYTES),
];

/// The number syntax, for messages and help texts.
pub const NUMBER_HELP: &str = "numbers are decimal, 0x hexadecimal or 0-prefixed octal";

/// The units of a size, for messages and help texts.
pub const UNITS_HELP: &str = "units are K, M, G, T (also KiB.. or KB..: all 1024-based), \
S (512-byte sectors), P (4096-byte pages) and B (bytes)";

/// What the text was meant to be: the error message says "is not a number" or "is not a size".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// A plain number, no unit ([`parse_number`]).
    Number,
    /// A number with an optional unit ([`parse_size`]).
    Size,
}

/// The base a number was read in (from its prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Radix {
    /// No prefix.
    Decimal,
    /// `0x`, `0X`, `x` or `X`.
    Hexadecimal,
    /// A leading `0` followed by more digits.
    Octal,
}

impl Radix {
    fn base(self) -> u32 {
        match self {
            Radix::Decimal => 10,
            Radix::Hexadecimal => 16,
            Radix::Octal => 8,
        }
    }
}

/// What is wrong with the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NumberErrorKind {
    /// Nothing but blanks.
    Empty,
    /// A leading `-`: sizes and numbers here are never negative.
    Negative,
    /// A prefix or unit with no digits (`0x`, `K`).
    NoDigits,
    /// A character that is not a digit of the number's base (`08`, `12x`, `0x1g`).
    BadDigit {
        /// The character.
        digit: char,
        /// The base the number is read in.
        radix: Radix,
    },
    /// Text after the digits that is not a unit (`3Q`), or any unit where a plain number is
    /// expected.
    UnknownUnit(String),
    /// The value, with its unit, does not fit in 64 bits.
    TooLarge,
}

/// Why a text is not a number or size; its `Display` is a full sentence naming the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberError {
    /// The text as given, without surrounding blanks.
    pub text: String,
    /// Whether a number or a size was expected.
    pub expected: Expected,
    /// What is wrong.
    pub kind: NumberErrorKind,
}

impl fmt::Display for NumberError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.expected {
            Expected::Number => "number",
            Expected::Size => "size",
        };
        let text = &self.text;
        match &self.kind {
            NumberErrorKind::Empty => write!(f, "no {what} given"),
            NumberErrorKind::Negative => {
                write!(f, "{text:?} is negative: a {what} here is 0 or more")
            }
            NumberErrorKind::NoDigits => write!(f, "{text:?} is not a number: it has no digits"),
            NumberErrorKind::BadDigit { digit, radix } => {
                let base = match radix {
                    Radix::Decimal => "a decimal digit",
                    Radix::Hexadecimal => "a hexadecimal digit",
                    Radix::Octal => "an octal digit (a number with a leading 0 is octal)",
                };
                write!(f, "{text:?} is not a number: {digit:?} is not {base}")?;
                match self.expected {
                    Expected::Size => write!(f, " or a unit ({NUMBER_HELP}; {UNITS_HELP})"),
                    Expected::Number => write!(f, " ({NUMBER_HELP})"),
                }
            }
            NumberErrorKind::UnknownUnit(unit) => match self.expected {
                Expected::Size => write!(
                    f,
                    "{text:?} is not a size: unknown size unit {unit:?} ({UNITS_HELP})"
                ),
                Expected::Number => write!(
                    f,
                    "{text:?} is not a number: a unit ({unit:?}) is not allowed here"
                ),
            },
            NumberErrorKind::TooLarge => {
                write!(f, "{text:?} is too large (the limit is 2^64 - 1 bytes)")
            }
        }
    }
}

impl std::error::Error for NumberError {}

/// Parse a plain number: decimal, `0x`/`x` hexadecimal or leading-`0` octal; surrounding
/// blanks are ignored. `"0x1000"` and `"010000"` are 4096.
pub fn parse_number(text: &str) -> Result<u64, NumberError> {
    parse(text, Expected::Number)
}

/// Parse a size: a number as [`parse_number`] reads it followed by an optional unit (see the
/// module documentation). `"30M"`, `"30MiB"`, `"30mb"` and `"61440S"` are 31457280.
pub fn parse_size(text: &str) -> Result<u64, NumberError> {
    parse(text, Expected::Size)
}

fn parse(text: &str, expected: Expected) -> Result<u64, NumberError> {
    let t = text.trim();
    let error = |kind| NumberError {
        text: t.to_string(),
        expected,
        kind,
    };
    if t.is_empty() {
        return Err(error(NumberErrorKind::Empty));
    }
    if t.starts_with('-') {
        return Err(error(NumberErrorKind::Negative));
    }
    let (body, radix) = if let Some(rest) = ["0x", "0X", "x", "X"]
        .iter()
        .find_map(|p| t.strip_prefix(p))
    {
        (rest, Radix::Hexadecimal)
    } else if t.len() > 1 && t.starts_with('0') && t.as_bytes()[1].is_ascii_digit() {
        (&t[1..], Radix::Octal)
    } else {
        (t, Radix::Decimal)
    };
    // The digit run: hexadecimal takes every hex digit (so `0x1B` is 27), the others every
    // decimal digit (so `08` names its bad octal digit instead of calling `8` a unit).
    let run_end = body
        .char_indices()
        .find(|&(_, c)| {
            let digit = match radix {
                Radix::Hexadecimal => c.is_ascii_hexdigit(),
                _ => c.is_ascii_digit(),
            };
            !(digit || c == '_')
        })
        .map_or(body.len(), |(i, _)| i);
    let (digits, unit) = body.split_at(run_end);
    if !digits.bytes().any(|b| b != b'_') {
        return Err(error(match unit.chars().next() {
            Some(c) if !c.is_ascii_alphabetic() => NumberErrorKind::BadDigit { digit: c, radix },
            _ => NumberErrorKind::NoDigits,
        }));
    }
    let mut value: u64 = 0;
    for c in digits.chars().filter(|&c| c != '_') {
        let digit = c
            .to_digit(radix.base())
            .ok_or_else(|| error(NumberErrorKind::BadDigit { digit: c, radix }))?;
        value = value
            .checked_mul(u64::from(radix.base()))
            .and_then(|v| v.checked_add(u64::from(digit)))
            .ok_or_else(|| error(NumberErrorKind::TooLarge))?;
    }
    let multiplier = match expected {
        Expected::Number if unit.is_empty() => 1,
        Expected::Number => return Err(error(bad_tail(unit, radix))),
        Expected::Size => UNITS
            .iter()
            .find(|(name, _)| unit.eq_ignore_ascii_case(name))
            .map(|&(_, m)| m)
            .ok_or_else(|| error(bad_tail(unit, radix)))?,
    };
    value
        .checked_mul(multiplier)
        .ok_or_else(|| error(NumberErrorKind::TooLarge))
}

/// The error for text after the digits: a word after a decimal or octal number is an unknown
/// (or forbidden) unit, anything else a bad digit.
fn bad_tail(unit: &str, radix: Radix) -> NumberErrorKind {
    let first = unit.chars().next().unwrap_or(' ');
    // After hexadecimal digits a letter is more likely a mistyped digit than a unit.
    if radix != Radix::Hexadecimal && unit.chars().all(|c| c.is_ascii_alphabetic()) {
        NumberErrorKind::UnknownUnit(unit.to_string())
    } else {
        NumberErrorKind::BadDigit {
            digit: first,
            radix,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(text: &str) -> NumberErrorKind {
        parse_size(text).unwrap_err().kind
    }

    #[test]
    fn numbers_in_every_base() {
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("00", 0),
            ("4096", 4096),
            ("0x1000", 4096),
            ("0X1000", 4096),
            ("x1000", 4096),
            ("X2a", 42),
            ("010000", 4096),
            (" 80 ", 80),
            ("1_000", 1000),
            ("18446744073709551615", u64::MAX),
            ("0xffffffffffffffff", u64::MAX),
        ];
        for &(text, want) in cases {
            assert_eq!(parse_number(text), Ok(want), "{text:?}");
            assert_eq!(parse_size(text), Ok(want), "{text:?} as a size");
        }
    }

    #[test]
    fn every_unit_of_both_tools() {
        let cases: &[(&str, u64)] = &[
            ("1K", 1 << 10),
            ("1k", 1 << 10),
            ("1KiB", 1 << 10),
            ("1kib", 1 << 10),
            ("1KB", 1 << 10),
            ("30M", 30 << 20),
            ("30MB", 30 << 20),
            ("30MiB", 30 << 20),
            ("30mb", 30 << 20),
            ("1G", 1 << 30),
            ("1GB", 1 << 30),
            ("1GiB", 1 << 30),
            ("2T", 2 << 40),
            ("2TB", 2 << 40),
            ("2048S", 2048 * 512),
            ("2048s", 2048 * 512),
            ("2P", 8192),
            ("100B", 100),
            ("0x1B", 0x1b),
            ("0x10M", 16 << 20),
            ("0x10KB", 16 << 10),
            ("010K", 8 << 10),
            ("17179869183G", 17_179_869_183 << 30),
        ];
        for &(text, want) in cases {
            assert_eq!(parse_size(text), Ok(want), "{text:?}");
        }
    }

    #[test]
    fn negative_sizes_are_refused_by_name() {
        assert_eq!(kind("-5"), NumberErrorKind::Negative);
        assert_eq!(kind(" -0x10M"), NumberErrorKind::Negative);
        let message = parse_size("-5").unwrap_err().to_string();
        assert!(message.contains("\"-5\" is negative"), "{message}");
    }

    #[test]
    fn rejects_what_is_not_a_size() {
        let bad = |digit, radix| NumberErrorKind::BadDigit { digit, radix };
        let cases: Vec<(&str, NumberErrorKind)> = vec![
            ("", NumberErrorKind::Empty),
            ("   ", NumberErrorKind::Empty),
            ("0x", NumberErrorKind::NoDigits),
            ("K", NumberErrorKind::NoDigits),
            ("MiB", NumberErrorKind::NoDigits),
            ("0xK", NumberErrorKind::NoDigits),
            ("08", bad('8', Radix::Octal)),
            ("+1", bad('+', Radix::Decimal)),
            ("12x", NumberErrorKind::UnknownUnit("x".into())),
            ("1Q", NumberErrorKind::UnknownUnit("Q".into())),
            ("1KiBB", NumberErrorKind::UnknownUnit("KiBB".into())),
            ("1.5G", bad('.', Radix::Decimal)),
            ("0x1g0", bad('g', Radix::Hexadecimal)),
            ("é", bad('é', Radix::Decimal)),
            ("18446744073709551616", NumberErrorKind::TooLarge),
            ("17179869184G", NumberErrorKind::TooLarge),
            ("16777216T", NumberErrorKind::TooLarge),
        ];
        for (text, want) in cases {
            assert_eq!(kind(text), want, "{text:?}");
        }
    }

    #[test]
    fn a_plain_number_takes_no_unit() {
        assert_eq!(
            parse_number("30M").unwrap_err().kind,
            NumberErrorKind::UnknownUnit("M".into())
        );
        let message = parse_number("30M").unwrap_err().to_string();
        assert!(message.contains("is not a number"), "{message}");
    }

    #[test]
    fn messages_use_the_right_article() {
        let octal = parse_size("08").unwrap_err().to_string();
        assert!(octal.contains("'8' is not an octal digit"), "{octal}");
        assert!(!octal.contains("a octal"), "{octal}");
        let unit = parse_size("1Q").unwrap_err().to_string();
        assert!(unit.contains("unknown size unit \"Q\""), "{unit}");
        assert!(unit.contains("KiB") && unit.contains("sectors"), "{unit}");
    }

    #[test]
    fn never_panics_on_odd_input() {
        for text in [
            "\u{0}",
            "0\u{301}",
            "0xé",
            "ék",
            "0é",
            "\u{10ffff}G",
            "0x0x1",
            "++1",
            "_",
            "0_",
            "x",
            "-",
            "0x_K",
        ] {
            let _ = parse_size(text);
            let _ = parse_number(text);
        }
    }
}
