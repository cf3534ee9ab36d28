//! rdsinit's number and size parser (`4096`, `0x1000`, `010000`, `30M`): never panics on any
//! text, and every u64 written in a documented form parses back to itself (or, with a size
//! suffix, to its multiple, or a too-large error when that overflows).

use crate::input::Input;

pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = rdsinit::parse_number(&text);
    for word in text.split_whitespace().take(8) {
        let _ = rdsinit::parse_number(word);
    }
    let mut input = Input::new(data);
    let value = input.u64();
    let parse = |t: String| rdsinit::parse_number(&t).ok();
    assert_eq!(parse(value.to_string()), Some(value), "decimal {value}");
    assert_eq!(parse(format!("{value:#x}")), Some(value), "hex {value:#x}");
    assert_eq!(
        parse(format!("{value:#X}").replacen("0X", "0x", 1)),
        Some(value)
    );
    assert_eq!(
        parse(format!("0{value:o}")),
        Some(value),
        "octal 0{value:o}"
    );
    assert_eq!(
        parse(format!(" \t{value}\n")),
        Some(value),
        "blanks around {value}"
    );
    let small = value >> (input.u8() % 64);
    for (suffix, shift) in [
        ("K", 10),
        ("k", 10),
        ("M", 20),
        ("m", 20),
        ("G", 30),
        ("g", 30),
    ] {
        assert_eq!(
            parse(format!("{small}{suffix}")),
            small.checked_mul(1 << shift),
            "{small}{suffix}"
        );
    }
}
