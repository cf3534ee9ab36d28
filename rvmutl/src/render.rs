//! Small text helpers: times, hex dumps, flags.

use rvm::format::log::{KIND_PAD, KIND_TRANSACTION, TX_FLAG_FLUSH, TX_FLAG_RESTORE};

/// Bytes of range data shown in a record printout before "... N more bytes".
pub const PREVIEW_BYTES: usize = 64;

/// A unix time in milliseconds as `YYYY-MM-DD HH:MM:SS.mmm UTC`; 0 is "never".
pub fn time_ms(ms: u64) -> String {
    if ms == 0 {
        return "never".into();
    }
    let secs = ms / 1000;
    let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}.{:03} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ms % 1000
    )
}

/// A unix time in microseconds, shown to the millisecond.
pub fn time_us(us: u64) -> String {
    time_ms(us / 1000)
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Classic hex dump lines: `OFFSET: hex bytes |ascii|`, 16 bytes a line.
pub fn hex_lines(data: &[u8], base: u64, indent: &str) -> Vec<String> {
    data.chunks(16)
        .enumerate()
        .map(|(i, chunk)| {
            let mut hex = String::new();
            for (j, b) in chunk.iter().enumerate() {
                if j == 8 {
                    hex.push(' ');
                }
                hex.push_str(&format!("{b:02x} "));
            }
            let ascii: String = chunk
                .iter()
                .map(|b| {
                    if (0x20..0x7f).contains(b) {
                        *b as char
                    } else {
                        '.'
                    }
                })
                .collect();
            format!(
                "{indent}{:06x}  {hex:<49} |{ascii}|",
                base + (i * 16) as u64
            )
        })
        .collect()
}

/// Hex of the first `max` bytes (for JSON).
pub fn hex_string(data: &[u8], max: usize) -> String {
    data.iter().take(max).map(|b| format!("{b:02x}")).collect()
}

pub fn kind_name(kind: u16) -> &'static str {
    match kind {
        KIND_TRANSACTION => "TRANSACTION",
        KIND_PAD => "PAD",
        _ => "UNKNOWN",
    }
}

/// Transaction flags as words: flush/no_flush, restore/no_restore.
pub fn tx_flags(flags: u16) -> Vec<&'static str> {
    let mut out = vec![
        if flags & TX_FLAG_FLUSH != 0 {
            "flush"
        } else {
            "no_flush"
        },
        if flags & TX_FLAG_RESTORE != 0 {
            "restore"
        } else {
            "no_restore"
        },
    ];
    if flags & !(TX_FLAG_FLUSH | TX_FLAG_RESTORE) != 0 {
        out.push("unknown-bits");
    }
    out
}

/// `part` of `whole` as a percentage with one decimal.
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0.0%".into();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(time_ms(0), "never");
        assert_eq!(time_ms(1), "1970-01-01 00:00:00.001 UTC");
        assert_eq!(time_ms(951_782_400_000), "2000-02-29 00:00:00.000 UTC");
        assert_eq!(time_ms(1_700_000_000_123), "2023-11-14 22:13:20.123 UTC");
    }

    #[test]
    fn hex() {
        let l = hex_lines(b"0123456789abcdefXY\n", 0x10, "  ");
        assert_eq!(l.len(), 2);
        assert!(l[0].starts_with("  000010  30 31"));
        assert!(l[1].ends_with("|XY.|"));
    }
}
