//! `peek` and `poke`: bytes of any file, through the library's file device.

use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use rvm::device::{Access, Device, FileDevice};

use crate::format::{encode_values, format_item, Format, Radix};
use crate::logview::open_read_only;
use crate::parse::{PokeGroup, Value};
use crate::render::hex_string;

/// Print `format` at `offset` of `path`; returns the offset after the last byte shown.
pub fn peek(path: &Path, offset: u64, format: Format, out: &mut dyn Write) -> Result<u64> {
    let dev = open_read_only(path)?;
    let len = dev
        .len()
        .with_context(|| format!("{}: size", path.display()))?;
    if offset >= len {
        bail!(
            "offset {offset} is past the end of {} ({len} bytes)",
            path.display()
        );
    }
    let want = format.byte_length();
    let have = want.min(len - offset);
    let size = format.size.bytes();
    let usable = have / size * size;
    if usable == 0 {
        bail!(
            "only {have} bytes left at offset {offset} of {}, less than one item",
            path.display()
        );
    }
    let mut buf = vec![0u8; usable as usize];
    dev.read_at(&mut buf, offset)
        .with_context(|| format!("{}: read", path.display()))?;
    if format.radix == Radix::Char {
        for (i, chunk) in buf.chunks(16).enumerate() {
            let text = format_item(chunk, format.size, Radix::Char);
            writeln!(out, "{:#010x}  \"{text}\"", offset + (i * 16) as u64)?;
        }
    } else {
        let per_line = (16 / size).max(1) as usize;
        for (i, line) in buf.chunks(per_line * size as usize).enumerate() {
            let items: Vec<String> = line
                .chunks(size as usize)
                .map(|c| format_item(c, format.size, format.radix))
                .collect();
            writeln!(
                out,
                "{:#010x}  {}",
                offset + (i * per_line) as u64 * size,
                items.join(" ")
            )?;
        }
    }
    if usable < want {
        writeln!(out, "-- end of file at offset {}", offset + usable)?;
    }
    Ok(offset + usable)
}

/// Write each group's values into `path` (opened read-write and locked), then sync.
pub fn poke(path: &Path, groups: &[PokeGroup], out: &mut dyn Write) -> Result<()> {
    let name = path.display().to_string();
    let dev = FileDevice::open(path, Access::ReadWrite).map_err(|e| {
        if e.kind() == std::io::ErrorKind::WouldBlock {
            anyhow!("{name}: in use by another process (it is locked); not written")
        } else {
            anyhow!("{name}: open for writing: {e}")
        }
    })?;
    let len = dev.len().with_context(|| format!("{name}: size"))?;
    let mut planned = Vec::new();
    for g in groups {
        let bytes = encode_values(&g.values, g.size, g.count).map_err(|e| anyhow!("{e}"))?;
        let numeric = g.values.iter().any(|v| !matches!(v, Value::Bytes(_)));
        if numeric && g.offset % g.size.bytes() != 0 {
            bail!(
                "offset {} is not a multiple of the item size {}",
                g.offset,
                g.size.bytes()
            );
        }
        let end = g.offset.checked_add(bytes.len() as u64);
        if end.is_none_or(|e| e > len) {
            bail!(
                "writing {} bytes at offset {} would run past the end of {name} ({len} bytes)",
                bytes.len(),
                g.offset
            );
        }
        planned.push((g.offset, bytes));
    }
    for (offset, bytes) in &planned {
        let mut old = vec![0u8; bytes.len()];
        dev.read_at(&mut old, *offset)
            .with_context(|| format!("{name}: read"))?;
        dev.write_at(bytes, *offset)
            .with_context(|| format!("{name}: write"))?;
        writeln!(
            out,
            "wrote {} bytes at offset {offset} ({offset:#x}) of {name}: {} -> {}{}",
            bytes.len(),
            hex_string(&old, 32),
            hex_string(bytes, 32),
            if bytes.len() > 32 { " ..." } else { "" }
        )?;
    }
    dev.sync().with_context(|| format!("{name}: fsync"))?;
    Ok(())
}
