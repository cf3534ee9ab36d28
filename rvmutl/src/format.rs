//! The peek/poke/mods format language: `[COUNT][SIZE][FORMAT]`, e.g. `4xl`, `16c`, `2D`, `O`.
//!
//! Sizes: `b` byte, `s` short (2), `l` long (4), `O` offset (8, unsigned 64-bit, the width of
//! every offset and LSN in the format), `f` float (4), `D` double (8), `t` time (8: unix
//! milliseconds, as in the log status). Formats: `c` character, `d` signed decimal, `o` octal,
//! `x` hex, `u` unsigned decimal, `*` all of them at once; `f`, `D`, `O` and `t` imply their own.
//! The classic shorthands are accepted: `h` short decimal, `i` and `w` long decimal, `L` long
//! unsigned decimal. Default `1dl`.
//!
//! It also holds what the command parser (`parse`) shares with it: [`ParseError`] and the
//! [`Value`]s a poke or a match carries. `parse` imports this module, never the reverse.

/// Why a line could not be parsed. The text is shown after "? ".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

pub(crate) fn err<T>(text: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(text.into()))
}

/// Largest count accepted in `next N`, `peek .../N` and friends.
pub const COUNT_MAX: u64 = 1 << 20;

/// A value to poke or to match.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Integer(i128),
    Float(f64),
    /// String bytes; the terminating NUL is added when the value is encoded.
    Bytes(Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Byte,
    Short,
    Long,
    Offset,
    Float,
    Double,
    Time,
}

impl Size {
    pub fn bytes(self) -> u64 {
        match self {
            Size::Byte => 1,
            Size::Short => 2,
            Size::Long | Size::Float => 4,
            Size::Offset | Size::Double | Size::Time => 8,
        }
    }
    pub fn is_float(self) -> bool {
        matches!(self, Size::Float | Size::Double)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Radix {
    Char,
    Decimal,
    Octal,
    Hex,
    Unsigned,
    Float,
    Time,
    /// Hex, unsigned and signed decimal, octal and characters at once (`*`).
    All,
}

/// `[COUNT][SIZE][FORMAT]`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    pub count: u64,
    pub size: Size,
    pub radix: Radix,
}

impl Default for Format {
    fn default() -> Self {
        Format {
            count: 1,
            size: Size::Long,
            radix: Radix::Decimal,
        }
    }
}

impl Format {
    /// Bytes covered by the whole format.
    pub fn byte_length(&self) -> u64 {
        self.count.saturating_mul(self.size.bytes())
    }
}

/// Parse a format such as `4xl`. Letters may come in any order after the count.
pub fn parse_format(text: &str) -> Result<Format, ParseError> {
    let digits: String = text.chars().take_while(|c| c.is_ascii_digit()).collect();
    let letters = &text[digits.len()..];
    let count = if digits.is_empty() {
        1
    } else {
        let n: u64 = digits
            .parse()
            .map_err(|_| ParseError(format!("count {digits} is too large")))?;
        if n == 0 || n > COUNT_MAX {
            return err(format!("count must be between 1 and {COUNT_MAX}"));
        }
        n
    };
    let mut size: Option<Size> = None;
    let mut radix: Option<Radix> = None;
    let set_size = |s: Size, size: &mut Option<Size>| -> Result<(), ParseError> {
        if size.is_some_and(|old| old != s) {
            return err(format!("format {text:?} names two sizes"));
        }
        *size = Some(s);
        Ok(())
    };
    for c in letters.chars() {
        let (s, r) = match c {
            'b' => (Some(Size::Byte), None),
            's' => (Some(Size::Short), None),
            'l' => (Some(Size::Long), None),
            'O' => (Some(Size::Offset), None),
            'f' => (Some(Size::Float), Some(Radix::Float)),
            'D' => (Some(Size::Double), Some(Radix::Float)),
            't' => (Some(Size::Time), Some(Radix::Time)),
            'c' => (None, Some(Radix::Char)),
            'd' => (None, Some(Radix::Decimal)),
            'o' => (None, Some(Radix::Octal)),
            'x' => (None, Some(Radix::Hex)),
            'u' => (None, Some(Radix::Unsigned)),
            '*' => (None, Some(Radix::All)),
            // Classic shorthands: a size with a format.
            'h' => (Some(Size::Short), Some(Radix::Decimal)),
            'i' | 'w' => (Some(Size::Long), Some(Radix::Decimal)),
            'L' => (Some(Size::Long), Some(Radix::Unsigned)),
            other => {
                return err(format!(
                    "unknown format letter {other:?} (sizes b s l O f D t, formats c d o x u *, \
                     h i w L)"
                ))
            }
        };
        if let Some(s) = s {
            set_size(s, &mut size)?;
        }
        if let Some(r) = r {
            if radix.is_some_and(|old| old != r) {
                return err(format!("format {text:?} names two formats"));
            }
            radix = Some(r);
        }
    }
    let size = match (size, radix) {
        (Some(s), _) => s,
        (None, Some(Radix::Char)) => Size::Byte,
        (None, _) => Size::Long,
    };
    let radix = match radix {
        Some(r) => r,
        None if size == Size::Offset => Radix::Unsigned,
        None => Radix::Decimal,
    };
    if size.is_float() != (radix == Radix::Float) || (size == Size::Time) != (radix == Radix::Time)
    {
        return err(format!(
            "format {text:?}: f, D and t cannot take another format"
        ));
    }
    Ok(Format { count, size, radix })
}

fn read_uint(bytes: &[u8]) -> u64 {
    let mut v = 0u64;
    for (i, b) in bytes.iter().take(8).enumerate() {
        v |= (*b as u64) << (8 * i);
    }
    v
}

fn sign_extend(v: u64, bytes: u64) -> i64 {
    let bits = bytes * 8;
    if bits >= 64 {
        v as i64
    } else {
        let shift = 64 - bits;
        ((v << shift) as i64) >> shift
    }
}

/// Format one item of `size` bytes (little-endian) in `radix`.
pub fn format_item(bytes: &[u8], size: Size, radix: Radix) -> String {
    let n = size.bytes();
    let v = read_uint(bytes);
    match radix {
        Radix::Char => bytes.iter().map(|b| char_escape(*b)).collect(),
        Radix::Decimal => sign_extend(v, n).to_string(),
        Radix::Unsigned => v.to_string(),
        Radix::Octal => format!("0{v:o}"),
        Radix::Hex => format!("0x{v:0width$x}", width = (n * 2) as usize),
        Radix::Float => {
            let f = if size == Size::Float {
                f32::from_bits(v as u32) as f64
            } else {
                f64::from_bits(v)
            };
            let a = f.abs();
            if a != 0.0 && a.is_finite() && !(1e-4..1e16).contains(&a) {
                format!("{f:e}")
            } else {
                f.to_string()
            }
        }
        Radix::Time => crate::render::time_ms(v),
        Radix::All => {
            let chars: String = bytes.iter().map(|b| char_escape(*b)).collect();
            format!(
                "{} (unsigned {}, signed {}, octal {}, chars \"{chars}\")",
                format_item(bytes, size, Radix::Hex),
                v,
                sign_extend(v, n),
                format_item(bytes, size, Radix::Octal)
            )
        }
    }
}

/// A byte as classic rvmutl shows characters: printable as is, others as C escapes.
pub fn char_escape(b: u8) -> String {
    match b {
        b'\n' => "\\n".into(),
        b'\t' => "\\t".into(),
        b'\r' => "\\r".into(),
        0 => "\\0".into(),
        b'\\' => "\\\\".into(),
        0x20..=0x7e => (b as char).to_string(),
        other => format!("\\{other:03o}"),
    }
}

/// Encode values for a poke or a mods match: `count` repetitions of the values, each as
/// `size` bytes (strings as their bytes plus a NUL, as classic).
pub fn encode_values(values: &[Value], size: Size, count: u64) -> Result<Vec<u8>, ParseError> {
    let mut one = Vec::new();
    let n = size.bytes();
    for v in values {
        match v {
            Value::Bytes(b) => {
                one.extend_from_slice(b);
                one.push(0);
            }
            Value::Float(f) => match size {
                Size::Float => one.extend_from_slice(&(*f as f32).to_le_bytes()),
                _ => one.extend_from_slice(&f.to_le_bytes()),
            },
            Value::Integer(i) => {
                let bits = n * 8;
                let (min, max) = if bits >= 64 {
                    (i64::MIN as i128, u64::MAX as i128)
                } else {
                    (-(1i128 << (bits - 1)), (1i128 << bits) - 1)
                };
                if *i < min || *i > max {
                    return err(format!("value {i} does not fit in {n} byte(s)"));
                }
                let bytes = (*i as i64 as u64).to_le_bytes();
                let bytes = if *i > i64::MAX as i128 {
                    (*i as u64).to_le_bytes()
                } else {
                    bytes
                };
                one.extend_from_slice(&bytes[..n as usize]);
            }
        }
    }
    let total = (one.len() as u64).saturating_mul(count);
    if total > COUNT_MAX * 8 {
        return err("too many bytes to write at once");
    }
    Ok(one.repeat(count as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(parse_format("").unwrap(), Format::default());
        let f = parse_format("4xl").unwrap();
        assert_eq!((f.count, f.size, f.radix), (4, Size::Long, Radix::Hex));
        assert_eq!(parse_format("16c").unwrap().size, Size::Byte);
        assert_eq!(parse_format("O").unwrap().radix, Radix::Unsigned);
        assert_eq!(parse_format("Ox").unwrap().radix, Radix::Hex);
        assert_eq!(parse_format("2D").unwrap().size, Size::Double);
        assert!(parse_format("bs").is_err());
        assert!(parse_format("xd").is_err());
        assert!(parse_format("fx").is_err());
        assert!(parse_format("0x").is_err());
        assert!(parse_format("q").is_err());
        assert!(parse_format("99999999999999999999999").is_err());
    }

    /// Issue 12 item 9: the classic peek codes h, i, L, w and * were unknown format letters.
    #[test]
    fn classic_format_codes() {
        let f = |t: &str| {
            let f = parse_format(t).unwrap();
            (f.count, f.size, f.radix)
        };
        assert_eq!(f("2h"), (2, Size::Short, Radix::Decimal));
        assert_eq!(f("i"), (1, Size::Long, Radix::Decimal));
        assert_eq!(f("w"), (1, Size::Long, Radix::Decimal));
        assert_eq!(f("3L"), (3, Size::Long, Radix::Unsigned));
        assert_eq!(f("*"), (1, Size::Long, Radix::All));
        assert_eq!(f("4*b"), (4, Size::Byte, Radix::All));
        assert!(parse_format("*f").is_err());
        assert!(parse_format("hb").is_err());
        assert_eq!(
            format_item(&[0xff, 0xff], Size::Short, Radix::All),
            "0xffff (unsigned 65535, signed -1, octal 0177777, chars \"\\377\\377\")"
        );
    }

    #[test]
    fn items() {
        assert_eq!(format_item(&[0xff], Size::Byte, Radix::Decimal), "-1");
        assert_eq!(format_item(&[0xff], Size::Byte, Radix::Unsigned), "255");
        assert_eq!(format_item(&[0x2a, 0], Size::Short, Radix::Hex), "0x002a");
        assert_eq!(format_item(&[8, 0, 0, 0], Size::Long, Radix::Octal), "010");
        assert_eq!(format_item(b"A\n", Size::Byte, Radix::Char), "A\\n");
        assert_eq!(
            format_item(&1.5f64.to_le_bytes(), Size::Double, Radix::Float),
            "1.5"
        );
    }

    #[test]
    fn encoding() {
        use Value::*;
        assert_eq!(
            encode_values(&[Integer(1), Integer(-1)], Size::Short, 2).unwrap(),
            vec![1, 0, 0xff, 0xff, 1, 0, 0xff, 0xff]
        );
        assert_eq!(
            encode_values(&[Bytes(b"hi".to_vec())], Size::Long, 1).unwrap(),
            b"hi\0"
        );
        assert!(encode_values(&[Integer(256)], Size::Byte, 1).is_err());
        assert_eq!(
            encode_values(&[Integer(u64::MAX as i128)], Size::Offset, 1).unwrap(),
            vec![0xff; 8]
        );
    }
}
