//! `FileDevice`: files and block devices (positional I/O, locks, preallocation, gathered
//! writes).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::os::unix::io::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::interface::{Access, Device};
use super::zeros::write_zeros;
use crate::sync::lock;

/// A regular file or a block device.
pub struct FileDevice {
    file: File,
    path: PathBuf,
    name: String,
    block: bool,
    /// (device, inode) of the file, the key of the process-wide lock registry.
    key: (u64, u64),
    /// Whether this handle holds the file's `flock` (and its entry in the registry).
    locked: AtomicBool,
}

impl Drop for FileDevice {
    fn drop(&mut self) {
        if *self.locked.get_mut() {
            forget_lock(self.key);
        }
    }
}

/// The files (by device and inode) this process holds an exclusive lock on, so that a second
/// attempt from this same process is reported as such ([`held_by_this_process`]) instead of
/// as "another process".
static LOCKED_HERE: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());

fn locked_here() -> MutexGuard<'static, Vec<(u64, u64)>> {
    lock(&LOCKED_HERE)
}

fn forget_lock(key: (u64, u64)) {
    let mut held = locked_here();
    if let Some(i) = held.iter().position(|k| *k == key) {
        held.swap_remove(i);
    }
}

/// The error inside an [`io::ErrorKind::WouldBlock`] error when the lock is held by another
/// handle of this same process.
#[derive(Debug)]
struct HeldByThisProcess;

impl fmt::Display for HeldByThisProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("in use by this process (another open handle of it holds the lock)")
    }
}

impl std::error::Error for HeldByThisProcess {}

/// Whether a lock failure (as returned by [`FileDevice::open`] or [`FileDevice::lock`]) means
/// that the lock is held by this same process (another open handle), not by another process.
pub fn held_by_this_process(error: &io::Error) -> bool {
    error.get_ref().is_some_and(|e| e.is::<HeldByThisProcess>())
}

impl fmt::Debug for FileDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileDevice({})", self.name)
    }
}

/// The error returned when another process holds the lock.
pub fn in_use_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::WouldBlock,
        "in use by another process (locked)",
    )
}

impl FileDevice {
    /// Open an existing file or block device.
    pub fn open(path: &Path, access: Access) -> io::Result<FileDevice> {
        let file = OpenOptions::new()
            .read(true)
            .write(access == Access::ReadWrite)
            .open(path)?;
        Self::adopt(file, path, access == Access::ReadWrite)
    }

    /// Create a new regular file with mode 0600 (refuses an existing one) and fsync its
    /// directory so the name survives a crash. The file is not locked: `O_EXCL` already makes
    /// the creation exclusive, and an unlocked descriptor cannot leave a stale lock behind in
    /// a child process forked meanwhile (see `adopt`).
    pub fn create_new(path: &Path) -> io::Result<FileDevice> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        let dev = Self::adopt(file, path, false)?;
        sync_parent_dir(path)?;
        Ok(dev)
    }

    fn adopt(file: File, path: &Path, lock: bool) -> io::Result<FileDevice> {
        let meta = file.metadata()?;
        let ft = meta.file_type();
        let block = ft.is_block_device();
        if !ft.is_file() && !block {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file or block device",
            ));
        }
        let dev = FileDevice {
            file,
            name: path.display().to_string(),
            path: path.to_path_buf(),
            block,
            key: (meta.dev(), meta.ino()),
            locked: AtomicBool::new(false),
        };
        if lock {
            dev.lock()?;
        }
        Ok(dev)
    }

    /// Take the exclusive lock on an open device (as `open` with `Access::ReadWrite` does).
    /// A lock held by another handle of this process fails at once, and
    /// [`held_by_this_process`] says so; one held by another process is retried briefly.
    pub fn lock(&self) -> io::Result<()> {
        if self.locked.load(Ordering::Acquire) {
            return Ok(());
        }
        if locked_here().contains(&self.key) {
            return Err(io::Error::new(io::ErrorKind::WouldBlock, HeldByThisProcess));
        }
        lock_exclusive(&self.file)?;
        let mut held = locked_here();
        if !held.contains(&self.key) {
            held.push(self.key);
        }
        self.locked.store(true, Ordering::Release);
        Ok(())
    }

    /// The path this device was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What identifies the open file as a plain file in a log's segment table: the file
    /// system's device number and the inode of a regular file, or the device number a block
    /// device names (`st_rdev`) and inode 0.
    pub fn identity(&self) -> io::Result<crate::format::log::FileIdentity> {
        Ok(file_identity(&self.file.metadata()?))
    }
}

/// The identity a log's segment table records for a plain file with this metadata (see
/// [`FileDevice::identity`]).
pub fn file_identity(meta: &std::fs::Metadata) -> crate::format::log::FileIdentity {
    if meta.file_type().is_block_device() {
        crate::format::log::FileIdentity {
            device: meta.rdev(),
            inode: 0,
        }
    } else {
        crate::format::log::FileIdentity {
            device: meta.dev(),
            inode: meta.ino(),
        }
    }
}

/// How long to keep trying a lock held by someone else before reporting "in use".
const LOCK_RETRY_MS_MAX: u64 = 200;

/// Take an exclusive `flock`. A lock belongs to the open file description, which a child
/// process forked by another thread shares until it calls exec (descriptors are close-on-exec);
/// so a file this process has just closed can look locked for a moment. A holder that is still
/// there after `LOCK_RETRY_MS_MAX` is a real second user.
fn lock_exclusive(file: &File) -> io::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(LOCK_RETRY_MS_MAX);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(std::fs::TryLockError::WouldBlock) => return Err(in_use_error()),
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

/// fsync the directory holding `path`, so a newly created name is durable.
pub fn sync_parent_dir(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()
}

impl Device for FileDevice {
    fn name(&self) -> &str {
        &self.name
    }
    fn len(&self) -> io::Result<u64> {
        if self.block {
            // Seeking to the end of a block device yields its size; the position is unused
            // because every transfer is positional (pread/pwrite).
            (&self.file).seek(SeekFrom::End(0))
        } else {
            Ok(self.file.metadata()?.len())
        }
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        // read_exact_at loops over short reads and EINTR.
        self.file.read_exact_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }
    fn sync(&self) -> io::Result<()> {
        if self.block {
            self.file.sync_all()
        } else {
            self.file.sync_data()
        }
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        if self.block {
            let have = self.len()?;
            if len > have {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("block device holds {have} bytes, {len} needed"),
                ));
            }
            return Ok(());
        }
        self.file.set_len(len)
    }
    // SAFETY (implementation): the descriptor is the device's own file, open for the
    // device's lifetime, and its bytes are the device's bytes. Its length is whatever the
    // file's is; the callers that map it (`Rvm::map`, `Rvm::map_device`) are `unsafe fn`s
    // whose contract makes the caller vouch that nobody shortens the file while it is mapped.
    unsafe fn mappable_fd(&self) -> Option<RawFd> {
        Some(self.file.as_raw_fd())
    }
    fn unlock(&self) {
        if self.locked.swap(false, Ordering::AcqRel) {
            let _ = self.file.unlock();
            forget_lock(self.key);
        }
    }
    /// [`Device::reserve`] first (a full disk fails here at once, and the blocks are
    /// contiguous), then zeros written over the range: on ext4 and XFS `fallocate` alone
    /// leaves *unwritten* extents, and the first write to each still converts it, a metadata
    /// change that `fdatasync` must commit as it would an allocation.
    fn preallocate(&self, offset: u64, len: u64) -> io::Result<()> {
        if self.block || len == 0 {
            return Ok(());
        }
        self.reserve(offset, len)?;
        let end = offset + len; // checked by `reserve`
        write_zeros(self, offset, end, PREALLOCATE_WRITE_BYTES, &mut |_| {})
    }
    fn reserve(&self, offset: u64, len: u64) -> io::Result<()> {
        if self.block || len == 0 {
            return Ok(());
        }
        if offset
            .checked_add(len)
            .filter(|e| *e <= i64::MAX as u64)
            .is_none()
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot allocate {len} bytes at {offset}"),
            ));
        }
        // SAFETY: the descriptor is owned by `self.file` and open for the call's duration;
        // fallocate only changes the file's allocation.
        let rc = unsafe {
            libc::fallocate(
                self.file.as_raw_fd(),
                0,
                offset as libc::off_t,
                len as libc::off_t,
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            // File systems without fallocate (some network ones): writes allocate later.
            if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
                return Err(e);
            }
        }
        Ok(())
    }
    fn is_block_device(&self) -> bool {
        self.block
    }
    /// Truncation and recovery apply thousands of small pieces. Pieces that overlap, touch,
    /// or lie less than `GAP_MERGE_BYTES_MAX` (4095 bytes) apart are gathered into one buffer
    /// (the bytes between them read from the file first) and written with one `pwrite`, up to
    /// `COALESCED_WRITE_BYTES_MAX` (1 MiB) at a time; a piece alone is written straight from
    /// its slice. Positional writes report a full disk as `ENOSPC` (a write through a shared
    /// mapping would raise SIGBUS instead), and they leave no file pages in this process's
    /// resident set. The gaps of short runs are read without readahead (see `NoReadahead`).
    fn write_pieces(&self, pieces: &[(u64, &[u8])]) -> io::Result<()> {
        self.gather_pieces(pieces, false)
    }
    /// [`FileDevice::write_pieces`], starting the writeback of every 4 MiB written (see
    /// `Writeback`).
    fn write_pieces_with_writeback(&self, pieces: &[(u64, &[u8])]) -> io::Result<()> {
        self.gather_pieces(pieces, true)
    }
}

impl FileDevice {
    /// [`Device::write_pieces`], and with `writeback` its writeback started as it goes.
    fn gather_pieces(&self, pieces: &[(u64, &[u8])], writeback: bool) -> io::Result<()> {
        let mut no_readahead = NoReadahead {
            file: &self.file,
            advised: false,
        };
        let mut writeback = Writeback::new(&self.file, writeback);
        let mut buf = Vec::new();
        let mut i = 0;
        while i < pieces.len() {
            let (first_at, first) = pieces[i];
            let mut start = first_at;
            let mut end = piece_end(first_at, first)?;
            let mut gaps = false;
            let mut j = i + 1;
            while j < pieces.len() {
                let (at, bytes) = pieces[j];
                let e = piece_end(at, bytes)?;
                let (s2, e2) = (start.min(at), end.max(e));
                if at > end.saturating_add(GAP_MERGE_BYTES_MAX)
                    || e2 - s2 > COALESCED_WRITE_BYTES_MAX as u64
                {
                    break;
                }
                gaps |= at > end || e < start;
                (start, end) = (s2, e2);
                j += 1;
            }
            if j == i + 1 {
                self.write_at(first, first_at)?;
                writeback.wrote(first_at, end);
                i = j;
                continue;
            }
            // The buffer only grows (zero-filled once, as it grows) and each run uses its
            // first `end - start` bytes. Not cleared: every byte of the run is written below,
            // by the read of the gaps or, without gaps, by the pieces (whose union is then
            // exactly `start..end`).
            let len = (end - start) as usize;
            if buf.len() < len {
                buf.resize(len, 0);
            }
            let run = &mut buf[..len];
            if gaps {
                // A long run is read with readahead (the next run is likely just after it);
                // short runs scattered over the file without (see `NoReadahead`).
                no_readahead.set(end - start < READAHEAD_RUN_BYTES_MIN);
                read_up_to(&self.file, run, start)?;
            }
            for &(at, bytes) in &pieces[i..j] {
                let from = (at - start) as usize;
                run[from..from + bytes.len()].copy_from_slice(bytes);
            }
            self.write_at(run, start)?;
            writeback.wrote(start, end);
            i = j;
        }
        writeback.start();
        Ok(())
    }
}

/// Starts the writeback of what [`FileDevice::write_pieces`] wrote, every
/// `WRITEBACK_START_BYTES` and at the end of the call (`sync_file_range` with
/// `SYNC_FILE_RANGE_WRITE`: the pages go to the disk now, and the caller's `fdatasync` then
/// waits for them). Without it a truncation's pages (most of a segment, for small scattered
/// ranges) reached the disk in one burst at that `fdatasync`, and the log's syncs of the
/// commits flushed meanwhile queued behind the burst (measured: the no_flush sustained run's
/// flushes took 1.2-1.3x as long). It only moves when pages are written, never what is
/// durable or what a read returns, so its result is not needed (a failure shows at the
/// `fdatasync`).
struct Writeback<'a> {
    file: &'a File,
    /// Whether to start any writeback at all.
    on: bool,
    /// The span written since the last start, and the bytes written in it.
    from: u64,
    to: u64,
    bytes: u64,
}

impl<'a> Writeback<'a> {
    fn new(file: &'a File, on: bool) -> Self {
        Writeback {
            file,
            on,
            from: u64::MAX,
            to: 0,
            bytes: 0,
        }
    }

    /// `from..to` was written.
    fn wrote(&mut self, from: u64, to: u64) {
        self.from = self.from.min(from);
        self.to = self.to.max(to);
        self.bytes += to - from;
        if self.bytes >= WRITEBACK_START_BYTES {
            self.start();
        }
    }

    /// Start the writeback of what was written since the last start.
    fn start(&mut self) {
        if self.on && self.from < self.to && self.to <= i64::MAX as u64 {
            // SAFETY: plain system call on a descriptor `self.file` keeps open; it only
            // starts writing dirty pages of the range, and a failure is seen by the sync
            // that follows, so its result is not needed.
            unsafe {
                libc::sync_file_range(
                    self.file.as_raw_fd(),
                    self.from as libc::off64_t,
                    (self.to - self.from) as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                )
            };
        }
        (self.from, self.to, self.bytes) = (u64::MAX, 0, 0);
    }
}

/// Bytes [`FileDevice::write_pieces`] writes before it starts their writeback (see
/// `Writeback`).
const WRITEBACK_START_BYTES: u64 = 4 << 20;

/// Random-access advice on a file while [`FileDevice::write_pieces`] reads the gaps between
/// pieces, and normal advice again when dropped. The gaps are read in increasing offset order,
/// which the kernel takes for a sequential reader: without the advice each read pulled in (or,
/// over the holes of a sparse segment, zero-filled) a readahead window of pages no piece
/// touches, over a third of the CPU of a recovery of scattered 64-byte ranges. The advice only
/// changes how much is read ahead, never what a read returns, so a mapping of the same file
/// faulting meanwhile sees the same bytes.
struct NoReadahead<'a> {
    file: &'a File,
    advised: bool,
}

impl NoReadahead<'_> {
    /// Random-access advice on (`true`) or off; a system call only when that changes.
    fn set(&mut self, random: bool) {
        if self.advised != random {
            self.advised = random;
            let advice = if random {
                libc::POSIX_FADV_RANDOM
            } else {
                libc::POSIX_FADV_NORMAL
            };
            // SAFETY: plain system call on a descriptor `self.file` keeps open; a failure only
            // leaves the readahead as it was, so its result is not needed.
            unsafe { libc::posix_fadvise(self.file.as_raw_fd(), 0, 0, advice) };
        }
    }
}

impl Drop for NoReadahead<'_> {
    fn drop(&mut self) {
        self.set(false);
    }
}

/// Runs of [`FileDevice::write_pieces`] at least this long have their gaps read with the
/// kernel's readahead: dense pieces (small ranges covering most pages of a segment) form runs
/// of up to 1 MiB that follow one another, and reading them without readahead measured 0.65-0.9x
/// the no_flush sustained rate; short runs scattered over a large sparse segment are read
/// without (readahead there zero-filled pages no piece touches: 1.4x the recovery time).
const READAHEAD_RUN_BYTES_MIN: u64 = 64 << 10;

/// Pieces of one [`Device::write_pieces`] call closer than this are written together, the
/// bytes between them read from the file: one `pread` and one `pwrite` instead of a `pwrite`
/// per piece.
const GAP_MERGE_BYTES_MAX: u64 = 4095;
/// Size of each zero write of [`FileDevice::preallocate`].
const PREALLOCATE_WRITE_BYTES: usize = 1 << 20;
/// Longest buffer [`FileDevice::write_pieces`] gathers pieces into.
const COALESCED_WRITE_BYTES_MAX: usize = 1 << 20;

fn piece_end(offset: u64, bytes: &[u8]) -> io::Result<u64> {
    offset.checked_add(bytes.len() as u64).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a write of {} bytes at {offset} ends past 2^64",
                bytes.len()
            ),
        )
    })
}

/// Fill `buf` from `offset`, leaving zeros where the file ends (reads loop over short reads
/// and EINTR).
fn read_up_to(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf[done..].fill(0);
    Ok(())
}
