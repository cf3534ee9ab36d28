//! The `Device` trait and what every device shares.

use std::fmt;
use std::io;
use std::os::unix::io::RawFd;
use std::sync::Arc;

/// Byte-addressed storage with an explicit durability barrier.
#[allow(
    clippy::len_without_is_empty,
    reason = "a device's length is a size, never tested for emptiness"
)]
pub trait Device: Send + Sync + fmt::Debug {
    /// A name for messages: the path, or a description.
    fn name(&self) -> &str;
    /// Current length in bytes (for block devices, the device size).
    fn len(&self) -> io::Result<u64>;
    /// Read exactly `buf.len()` bytes at `offset`.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Write all of `buf` at `offset`. Not durable until [`Device::sync`].
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Make every completed write durable (fdatasync).
    fn sync(&self) -> io::Result<()>;
    /// Set the length (regular files: sparse extension). Durable after `sync`.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// A file descriptor that can be memory-mapped, if the device has one.
    ///
    /// Segments on a device that returns `None` (the default) are read into anonymous memory
    /// when mapped, which is always safe.
    ///
    /// # Safety
    ///
    /// Implementing this method is a promise the library relies on to stay sound: a returned
    /// descriptor is open for as long as the device lives, and names a file whose contents
    /// are this device's bytes (`read_at(buf, o)` reads the file's bytes at `o`) and which
    /// is at least [`Device::len`] bytes long. A mapped page past the end of the file kills
    /// the process with SIGBUS when it is touched, so a descriptor naming a shorter file, or
    /// a file that someone may shorten, must not be returned. Callers may only use the
    /// descriptor to map or size the device (never to close it).
    unsafe fn mappable_fd(&self) -> Option<RawFd> {
        None
    }
    /// Give up exclusive use of the device (a [`FileDevice`](super::FileDevice) drops its `flock`): called by
    /// [`crate::Rvm::close`] for the devices the instance opened, so the files can be opened
    /// again at once even while stale handles keep the device object alive. The device is not
    /// written after this. The default does nothing.
    fn unlock(&self) {}
    /// Whether this is a block device (no set_len; size fixed).
    fn is_block_device(&self) -> bool {
        false
    }
    /// Give `offset..offset + len` allocated, written blocks (zeros), so that later writes
    /// there neither allocate blocks (which every `fdatasync` would then have to commit) nor
    /// fail for want of space. Not durable until [`Device::sync`]. The default does nothing:
    /// memory images and block devices have no holes.
    fn preallocate(&self, offset: u64, len: u64) -> io::Result<()> {
        let _ = (offset, len);
        Ok(())
    }
    /// Reserve blocks for `offset..offset + len` without writing them (`fallocate`), so a
    /// full disk is found now and later writes there cannot fail for want of space. The
    /// blocks may stay *unwritten* extents (see [`Device::preallocate`]). The default does
    /// nothing.
    fn reserve(&self, offset: u64, len: u64) -> io::Result<()> {
        let _ = (offset, len);
        Ok(())
    }
    /// Write many pieces, each `(offset, bytes)`, sorted by offset. Not durable until
    /// [`Device::sync`]. The default writes each piece with [`Device::write_at`].
    fn write_pieces(&self, pieces: &[(u64, &[u8])]) -> io::Result<()> {
        for (offset, bytes) in pieces {
            self.write_at(bytes, *offset)?;
        }
        Ok(())
    }
    /// [`Device::write_pieces`] for a caller that syncs right after while other writers
    /// sync the same disk (a truncation, while commits are flushed): the device may start
    /// writing the pieces back as it goes, so that they do not reach the disk in one burst at
    /// that sync (a [`FileDevice`](super::FileDevice) does; not for recovery, whose caller
    /// waits for the writes, not the sync). The default is [`Device::write_pieces`].
    fn write_pieces_with_writeback(&self, pieces: &[(u64, &[u8])]) -> io::Result<()> {
        self.write_pieces(pieces)
    }
}

/// A shared handle to a device.
pub type DeviceRef = Arc<dyn Device>;

/// How a [`FileDevice`](super::FileDevice) is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read-only, no lock: inspection tools may look at a log a server has open.
    ReadOnly,
    /// Read-write with an exclusive `flock`: a second user gets [`io::ErrorKind::WouldBlock`].
    ReadWrite,
}

/// The error of an access past the end of a memory device.
pub(super) fn out_of_range(offset: u64, len: usize, size: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("access of {len} bytes at {offset} is past the end ({size} bytes)"),
    )
}
