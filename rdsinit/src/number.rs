//! Numbers as rdsinit reads them: the classic forms (decimal, `0x` hexadecimal, octal with a
//! leading `0`) plus an optional binary size suffix `K`, `M` or `G`.
//!
//! The parser is fuzzed: it must return an error, never panic, for any input.

use std::fmt;

/// Why a string is not a number rdsinit accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberError {
    /// The text as given (trimmed).
    pub text: String,
    /// What is wrong with it.
    pub reason: NumberErrorReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberErrorReason {
    Empty,
    /// A character that is not a digit of the number's base.
    BadDigit {
        digit: char,
        base: u32,
    },
    /// `0x` with no digits after it.
    NoDigits,
    /// The value does not fit in 64 bits.
    TooLarge,
}

impl fmt::Display for NumberError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            NumberErrorReason::Empty => write!(f, "no number given"),
            NumberErrorReason::BadDigit { digit, base } => {
                let base_name = match base {
                    16 => "hexadecimal",
                    8 => "octal (it starts with 0)",
                    _ => "decimal",
                };
                write!(
                    f,
                    "{:?} is not a number: {digit:?} is not a {base_name} digit \
                     (numbers are decimal, 0x hexadecimal or 0 octal, optionally followed by K, M or G)",
                    self.text
                )
            }
            NumberErrorReason::NoDigits => {
                write!(f, "{:?} is not a number: no digits after 0x", self.text)
            }
            NumberErrorReason::TooLarge => {
                write!(f, "{:?} is too large (the limit is 2^64 - 1)", self.text)
            }
        }
    }
}

impl std::error::Error for NumberError {}

/// Parse a number: `4096`, `0x1000`, `010000` (octal), each optionally followed by `K`, `M` or
/// `G` (binary multiples, case-insensitive): `30M` is 31457280. Surrounding blanks are ignored.
pub fn parse_number(text: &str) -> Result<u64, NumberError> {
    let trimmed = text.trim();
    let error = |reason| NumberError {
        text: trimmed.to_string(),
        reason,
    };
    if trimmed.is_empty() {
        return Err(error(NumberErrorReason::Empty));
    }
    let (digits_and_prefix, multiplier) = match trimmed.as_bytes()[trimmed.len() - 1] {
        b'k' | b'K' => (&trimmed[..trimmed.len() - 1], 1u64 << 10),
        b'm' | b'M' => (&trimmed[..trimmed.len() - 1], 1u64 << 20),
        b'g' | b'G' => (&trimmed[..trimmed.len() - 1], 1u64 << 30),
        _ => (trimmed, 1),
    };
    if digits_and_prefix.is_empty() {
        return Err(error(NumberErrorReason::NoDigits));
    }
    let (digits, base) = if let Some(hex) = digits_and_prefix
        .strip_prefix("0x")
        .or_else(|| digits_and_prefix.strip_prefix("0X"))
    {
        if hex.is_empty() {
            return Err(error(NumberErrorReason::NoDigits));
        }
        (hex, 16)
    } else if digits_and_prefix.len() > 1 && digits_and_prefix.starts_with('0') {
        (&digits_and_prefix[1..], 8)
    } else {
        (digits_and_prefix, 10)
    };
    let mut value: u64 = 0;
    for c in digits.chars() {
        let digit = c
            .to_digit(base)
            .ok_or(error(NumberErrorReason::BadDigit { digit: c, base }))?;
        value = value
            .checked_mul(base as u64)
            .and_then(|v| v.checked_add(digit as u64))
            .ok_or(error(NumberErrorReason::TooLarge))?;
    }
    value
        .checked_mul(multiplier)
        .ok_or(error(NumberErrorReason::TooLarge))
}

/// A value as rdsinit shows it: hexadecimal and decimal, e.g. `0x100000 (1048576)`.
pub fn hex_dec(value: u64) -> String {
    format!("{value:#x} ({value})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_bases_and_suffixes() {
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("4096", 4096),
            ("0x1000", 4096),
            ("0X1000", 4096),
            ("0x3fefd000", 0x3fef_d000),
            ("010000", 4096),
            ("00", 0),
            (" 80 ", 80),
            ("1K", 1024),
            ("1k", 1024),
            ("30M", 30 << 20),
            ("1G", 1 << 30),
            ("0x10M", 16 << 20),
            ("010K", 8 << 10),
            ("18446744073709551615", u64::MAX),
            ("0xffffffffffffffff", u64::MAX),
            ("17179869183G", 17_179_869_183 << 30),
        ];
        for (text, want) in cases {
            assert_eq!(parse_number(text), Ok(*want), "{text:?}");
        }
    }

    #[test]
    fn rejects_what_is_not_a_number() {
        let cases: &[(&str, NumberErrorReason)] = &[
            ("", NumberErrorReason::Empty),
            ("   ", NumberErrorReason::Empty),
            ("0x", NumberErrorReason::NoDigits),
            ("K", NumberErrorReason::NoDigits),
            ("0xK", NumberErrorReason::NoDigits),
            (
                "08",
                NumberErrorReason::BadDigit {
                    digit: '8',
                    base: 8,
                },
            ),
            (
                "-1",
                NumberErrorReason::BadDigit {
                    digit: '-',
                    base: 10,
                },
            ),
            (
                "12x",
                NumberErrorReason::BadDigit {
                    digit: 'x',
                    base: 10,
                },
            ),
            (
                "1T",
                NumberErrorReason::BadDigit {
                    digit: 'T',
                    base: 10,
                },
            ),
            (
                "0x1g0",
                NumberErrorReason::BadDigit {
                    digit: 'g',
                    base: 16,
                },
            ),
            (
                "é",
                NumberErrorReason::BadDigit {
                    digit: 'é',
                    base: 10,
                },
            ),
            ("18446744073709551616", NumberErrorReason::TooLarge),
            ("17179869184G", NumberErrorReason::TooLarge),
        ];
        for (text, reason) in cases {
            assert_eq!(
                parse_number(text).map_err(|e| e.reason),
                Err(*reason),
                "{text:?}"
            );
        }
    }

    #[test]
    fn messages_say_what_is_accepted() {
        let e = parse_number("08").unwrap_err().to_string();
        assert!(e.contains("octal") && e.contains("'8'"), "{e}");
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
        ] {
            let _ = parse_number(text);
        }
    }
}
