//! Writing zeros over a range of a device: the log's zero-fill ahead of its tail, a file's
//! preallocation, and a segment's `--zero` fill share this one loop and one zero buffer.

use std::io;

use super::interface::Device;

/// The longest single write of [`write_zeros`].
pub(crate) const ZERO_WRITE_BYTES_MAX: usize = 1 << 20;

/// The zeros every write copies from (zero-initialised, so it takes no space in the binary).
static ZEROS: [u8; ZERO_WRITE_BYTES_MAX] = [0; ZERO_WRITE_BYTES_MAX];

/// Write zeros over `from..to` of `device` in writes of at most `write_bytes` (itself at most
/// [`ZERO_WRITE_BYTES_MAX`]), calling `written` with the bytes done so far after each write.
/// Not synced.
pub(crate) fn write_zeros(
    device: &dyn Device,
    from: u64,
    to: u64,
    write_bytes: usize,
    written: &mut dyn FnMut(u64),
) -> io::Result<()> {
    let zeros = &ZEROS[..write_bytes.clamp(1, ZERO_WRITE_BYTES_MAX)];
    let mut at = from;
    while at < to {
        let n = ((to - at) as usize).min(zeros.len());
        device.write_at(&zeros[..n], at)?;
        at += n as u64;
        written(at - from);
    }
    Ok(())
}
