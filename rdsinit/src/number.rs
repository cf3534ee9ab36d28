//! Numbers as rdsinit reads them. Every value (flags, the six classic positional values, answers
//! in the dialogue) goes through the library's one size parser, [`rvm::units::parse_size`], the
//! same one `rvmutl` uses: decimal, `0x` hexadecimal or leading-`0` octal, with an optional unit
//! `K`/`M`/`G`/`T` (also `KiB`.. and `KB`.., all 1024-based), `S` (512-byte sectors) or `P`
//! (4096-byte pages).

pub use rvm::units::{parse_size, NumberError, NumberErrorKind};

/// A value as rdsinit shows it: hexadecimal and decimal, e.g. `0x100000 (1048576)`.
pub fn hex_dec(value: u64) -> String {
    format!("{value:#x} ({value})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_rdsinit_values_still_parse() {
        let cases: &[(&str, u64)] = &[
            ("0x3fefd000", 0x3fef_d000),
            ("010000", 4096),
            ("30M", 30 << 20),
            ("0x10M", 16 << 20),
            ("80", 80),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text), Ok(*want), "{text:?}");
        }
    }
}
