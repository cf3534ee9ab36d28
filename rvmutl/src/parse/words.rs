//! Single words: unsigned and signed numbers (with the classic `HIGH,LOW` form), sizes with
//! units, and keywords matched by unique prefix.

use crate::format::{err, ParseError};

/// Parse an unsigned number with the library's parser ([`rvm::units::parse_number`]: decimal,
/// `0x..`/`x..` hex, or `0..` octal, as classic rvmutl), or the classic `HIGH,LOW` offset form
/// (HIGH * 2^32 + LOW), which the C tool could not parse.
pub fn parse_number(text: &str) -> Result<u64, ParseError> {
    if let Some((high, low)) = text.split_once(',') {
        if low.contains(',') {
            return err(format!("{text:?} is not a number"));
        }
        let high = parse_number(high)?;
        let low = parse_number(low)?;
        if high > u32::MAX as u64 || low > u32::MAX as u64 {
            return err(format!("{text}: each half of HIGH,LOW must fit in 32 bits"));
        }
        return Ok(high << 32 | low);
    }
    rvm::units::parse_number(text).map_err(|e| ParseError(e.to_string()))
}

/// Whether `text` reads as a number (used to tell an offset from a file name).
pub fn is_number(text: &str) -> bool {
    parse_number(text).is_ok()
}

/// Parse a signed number (a poke value): an optional `-` before [`parse_number`].
pub fn parse_signed(text: &str) -> Result<i128, ParseError> {
    match text.strip_prefix('-') {
        Some(rest) => Ok(-(parse_number(rest)? as i128)),
        None => Ok(parse_number(text.strip_prefix('+').unwrap_or(text))? as i128),
    }
}

/// Page size used by the `P` size unit: the fixed region alignment of the format (so a size
/// means the same on every machine).
pub const PAGE_BYTES: u64 = rvm::units::PAGE_BYTES;

/// Parse a size with the library's parser, the one rdsinit uses too
/// ([`rvm::units::parse_size`]): a number with an optional unit, `K`/`KiB`/`KB` (all 1024),
/// `M`.., `G`.., `T`.., `S` 512-byte sectors, `P` 4096-byte pages, `B` or none bytes (upper or
/// lower case).
pub fn parse_size(text: &str) -> Result<u64, ParseError> {
    rvm::units::parse_size(text).map_err(|e| ParseError(e.to_string()))
}

/// Match a keyword by unique prefix (exact wins), among `(name, aliases)` sets.
pub fn keyword<'k>(word: &str, options: &'k [(&'k str, &'k [&'k str])]) -> Result<&'k str, String> {
    let lower = word.to_ascii_lowercase();
    for (name, aliases) in options {
        if *name == lower || aliases.contains(&lower.as_str()) {
            return Ok(name);
        }
    }
    let matches: Vec<&str> = options
        .iter()
        .filter(|(name, aliases)| {
            name.starts_with(&lower) || aliases.iter().any(|a| a.starts_with(&lower))
        })
        .map(|(name, _)| *name)
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(format!("{word}: unknown keyword")),
        many => Err(format!("{word}: ambiguous: {}?", many.join(" or "))),
    }
}
