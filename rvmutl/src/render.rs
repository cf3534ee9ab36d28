//! Small text helpers: times, hex dumps, flags.

use rvm::format::log::{KIND_PAD, KIND_TRANSACTION, TX_FLAG_FLUSH, TX_FLAG_RESTORE};

/// Bytes of range data shown in a record printout before "... N more bytes".
pub const PREVIEW_BYTES: usize = 64;

/// A unix time in milliseconds as `YYYY-MM-DD HH:MM:SS.mmm UTC`; 0 is "never". A time past
/// the year 9999 (only a damaged or crafted file holds one) is shown as its raw number.
pub fn time_ms(ms: u64) -> String {
    if ms == 0 {
        return "never".into();
    }
    let secs = ms / 1000;
    let date = i64::try_from(secs / 86_400)
        .ok()
        .and_then(|days| jiff::Span::new().try_days(days).ok())
        .and_then(|days| jiff::civil::date(1970, 1, 1).checked_add(days).ok());
    let Some(date) = date else {
        return format!("{ms} ms after 1970-01-01 (past the year 9999)");
    };
    let rem = secs % 86_400;
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03} UTC",
        date.year(),
        date.month(),
        date.day(),
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
        // 2100 is not a leap year: the day after 28 February is 1 March.
        assert_eq!(time_ms(4_107_542_400_000), "2100-03-01 00:00:00.000 UTC");
        assert_eq!(time_ms(253_402_300_799_999), "9999-12-31 23:59:59.999 UTC");
        assert_eq!(
            time_ms(253_402_300_800_000),
            "253402300800000 ms after 1970-01-01 (past the year 9999)"
        );
        assert!(time_ms(u64::MAX).contains("past the year 9999"));
        assert_eq!(
            time_us(1_700_000_000_123_456),
            "2023-11-14 22:13:20.123 UTC"
        );
    }

    #[test]
    fn hex() {
        let l = hex_lines(b"0123456789abcdefXY\n", 0x10, "  ");
        assert_eq!(l.len(), 2);
        assert!(l[0].starts_with("  000010  30 31"));
        assert!(l[1].ends_with("|XY.|"));
    }
}
