//! The one size parser both tools use (`rvm::units`, called by rdsinit for every value and by
//! rvmutl for sizes and numbers): never panics on any text, both tools read every word the same
//! way, and every u64 written in a documented form (decimal, `0x`/`x` hexadecimal, leading-`0`
//! octal, `_` separators, blanks around it) parses back to itself, or with a unit to its
//! multiple, or to a too-large error when that overflows.

use rvm::units::{parse_number, parse_size, NumberErrorKind};

use crate::input::Input;

/// Every unit spelling and its multiplier.
const UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("B", 1),
    ("b", 1),
    ("K", 1 << 10),
    ("k", 1 << 10),
    ("KiB", 1 << 10),
    ("KB", 1 << 10),
    ("kb", 1 << 10),
    ("M", 1 << 20),
    ("MiB", 1 << 20),
    ("MB", 1 << 20),
    ("mib", 1 << 20),
    ("G", 1 << 30),
    ("GiB", 1 << 30),
    ("GB", 1 << 30),
    ("g", 1 << 30),
    ("T", 1 << 40),
    ("TiB", 1 << 40),
    ("TB", 1 << 40),
    ("S", 512),
    ("s", 512),
    ("P", 4096),
    ("p", 4096),
];

pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    check_word(&text);
    for word in text.split_whitespace().take(8) {
        check_word(word);
    }
    let mut input = Input::new(data);
    let value = input.u64();
    let both = |t: String| {
        let n = parse_number(&t).ok();
        assert_eq!(parse_size(&t).ok(), n, "a plain number is also a size: {t:?}");
        n
    };
    assert_eq!(both(value.to_string()), Some(value), "decimal {value}");
    assert_eq!(both(format!("{value:#x}")), Some(value), "hex {value:#x}");
    assert_eq!(both(format!("{value:#X}")), Some(value), "hex {value:#X}");
    assert_eq!(both(format!("x{value:x}")), Some(value), "hex x{value:x}");
    assert_eq!(both(format!("0{value:o}")), Some(value), "octal 0{value:o}");
    assert_eq!(both(format!(" \t{value}\n")), Some(value), "blanks around {value}");
    let grouped = group(&value.to_string());
    assert_eq!(both(grouped.clone()), Some(value), "{grouped}");
    let small = value >> (input.u8() % 64);
    let unit = UNITS[input.u8() as usize % UNITS.len()];
    for (unit, multiplier) in [unit, UNITS[(small % UNITS.len() as u64) as usize]] {
        let want = small.checked_mul(multiplier);
        for text in [
            format!("{small}{unit}"),
            format!("{small:#x}{unit}"),
            format!("0{small:o}{unit}"),
        ] {
            // After hexadecimal digits a `B` is a digit, not the byte unit.
            if text.starts_with("0x") && unit.eq_ignore_ascii_case("b") {
                continue;
            }
            let got = parse_size(&text);
            match want {
                Some(w) => assert_eq!(got, Ok(w), "{text}"),
                None => assert_eq!(
                    got.map_err(|e| e.kind),
                    Err(NumberErrorKind::TooLarge),
                    "{text}"
                ),
            }
        }
    }
    if value != 0 {
        let negative = format!("-{small}{}", unit.0);
        assert_eq!(
            parse_size(&negative).map_err(|e| e.kind),
            Err(NumberErrorKind::Negative),
            "{negative}"
        );
    }
}

/// One word through every entry point: no panic, and the tools agree with the library.
fn check_word(word: &str) {
    let size = parse_size(word);
    let number = parse_number(word);
    if let Ok(n) = number {
        assert_eq!(size, Ok(n), "{word:?} is a number but not the same size");
    }
    if let Err(e) = &size {
        let message = e.to_string();
        assert!(!message.contains(" a octal"), "{message}");
    }
    assert_eq!(
        rdsinit::number::parse_size(word).ok(),
        size.as_ref().ok().copied(),
        "rdsinit reads {word:?} differently"
    );
    assert_eq!(
        rvmutl::parse::parse_size(word).ok(),
        size.as_ref().ok().copied(),
        "rvmutl reads the size {word:?} differently"
    );
    if !word.contains(',') {
        assert_eq!(
            rvmutl::parse::parse_number(word).ok(),
            number.as_ref().ok().copied(),
            "rvmutl reads the number {word:?} differently"
        );
    }
}

/// `1234567` as `1_234_567`.
fn group(digits: &str) -> String {
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('_');
        }
        out.push(c);
    }
    out
}
