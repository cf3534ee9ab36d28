//! rvmutl's command-line parser and peek/poke format parser, with its number and size
//! parsers: never panic on any line, numbers written in a documented form parse back, and a
//! trailing `# comment` changes nothing (the classic commands of issue 12 are in the seeds).

use crate::input::Input;

pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for line in text.split('\n').take(16) {
        let _ = rvmutl::parse::tokenize(line);
        let parsed = rvmutl::parse::parse_command_line(line);
        if let Some(before) = before_comment(line) {
            if !before.trim().is_empty() && line.len() < rvmutl::parse::LINE_BYTES_MAX {
                assert_eq!(
                    parsed,
                    rvmutl::parse::parse_command_line(before),
                    "a trailing comment changed how {line:?} parses"
                );
            }
        }
        if let Ok(format) = rvmutl::parse_format(line) {
            let _ = format.byte_length();
        }
        for word in line.split_whitespace().take(8) {
            let _ = rvmutl::parse::parse_number(word);
            let _ = rvmutl::parse::parse_signed(word);
            let _ = rvmutl::parse::parse_size(word);
            if let Ok(format) = rvmutl::parse_format(word) {
                let _ = format.byte_length();
            }
        }
    }
    let mut input = Input::new(data);
    let value = input.u64();
    let parse = |t: String| rvmutl::parse::parse_number(&t).ok();
    assert_eq!(parse(value.to_string()), Some(value), "decimal {value}");
    assert_eq!(parse(format!("{value:#x}")), Some(value), "hex {value:#x}");
    assert_eq!(
        parse(format!("0{value:o}")),
        Some(value),
        "octal 0{value:o}"
    );
    assert_eq!(
        parse(format!("{},{}", value >> 32, value & 0xffff_ffff)),
        Some(value),
        "HIGH,LOW form of {value}"
    );
    let small = value >> (input.u8() % 64);
    for (unit, multiplier) in [
        ("K", 1u64 << 10),
        ("m", 1 << 20),
        ("G", 1 << 30),
        ("s", 512),
        ("P", 4096),
        ("b", 1),
    ] {
        assert_eq!(
            rvmutl::parse::parse_size(&format!("{small}{unit}")).ok(),
            small.checked_mul(multiplier),
            "{small}{unit}"
        );
    }
}

/// The text before a `#` that starts a word outside a string, if the line has one.
fn before_comment(line: &str) -> Option<&str> {
    let mut in_string = false;
    let mut escaped = false;
    let mut word_start = true;
    for (i, c) in line.char_indices() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                word_start = true;
            }
            '#' if word_start => return Some(&line[..i]),
            '=' | '>' => word_start = true,
            c => word_start = c.is_whitespace(),
        }
    }
    None
}
