//! All log and segment I/O goes through [`Device`]: a file or block device for real use, a
//! memory image, and a crash-injecting device for tests.
//!
//! Architecture Invariant: the library never touches a file except through a `Device` (and,
//! for mapping, the file descriptor a [`FileDevice`] lends out for `mmap`).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::os::unix::io::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

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
    /// Give up exclusive use of the device (a [`FileDevice`] drops its `flock`): called by
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
}

/// A shared handle to a device.
pub type DeviceRef = Arc<dyn Device>;

/// How a [`FileDevice`] is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read-only, no lock: inspection tools may look at a log a server has open.
    ReadOnly,
    /// Read-write with an exclusive `flock`: a second user gets [`io::ErrorKind::WouldBlock`].
    ReadWrite,
}

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
    LOCKED_HERE.lock().unwrap_or_else(|e| e.into_inner())
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
        let zeros = vec![0u8; (len as usize).min(PREALLOCATE_WRITE_BYTES)];
        let mut at = offset;
        while at < end {
            let n = ((end - at) as usize).min(zeros.len());
            self.write_at(&zeros[..n], at)?;
            at += n as u64;
        }
        Ok(())
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
        let mut no_readahead = NoReadahead {
            file: &self.file,
            advised: false,
        };
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
                i = j;
                continue;
            }
            // Not cleared: a resize zero-fills only past what an earlier run of this call
            // used, and every byte of this run is written below, by the read of the gaps or,
            // without gaps, by the pieces (whose union is then exactly `start..end`).
            buf.resize((end - start) as usize, 0);
            if gaps {
                // A long run is read with readahead (the next run is likely just after it);
                // short runs scattered over the file without (see `NoReadahead`).
                no_readahead.set(end - start < READAHEAD_RUN_BYTES_MIN);
                read_up_to(&self.file, &mut buf, start)?;
            }
            for &(at, bytes) in &pieces[i..j] {
                let from = (at - start) as usize;
                buf[from..from + bytes.len()].copy_from_slice(bytes);
            }
            self.write_at(&buf, start)?;
            i = j;
        }
        Ok(())
    }
}

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

/// A device held in memory (tests, fuzzing).
#[derive(Debug)]
pub struct MemDevice {
    name: String,
    bytes: RwLock<Vec<u8>>,
}

impl MemDevice {
    /// A device named `name` holding `bytes`.
    pub fn new(name: &str, bytes: Vec<u8>) -> MemDevice {
        MemDevice {
            name: name.to_string(),
            bytes: RwLock::new(bytes),
        }
    }
    /// A copy of the current contents.
    pub fn snapshot(&self) -> Vec<u8> {
        self.bytes.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn out_of_range(offset: u64, len: usize, size: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("access of {len} bytes at {offset} is past the end ({size} bytes)"),
    )
}

impl Device for MemDevice {
    fn name(&self) -> &str {
        &self.name
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.bytes.read().unwrap_or_else(|e| e.into_inner()).len() as u64)
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let b = self.bytes.read().unwrap_or_else(|e| e.into_inner());
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|e| *e <= b.len() as u64);
        match end {
            Some(end) => {
                buf.copy_from_slice(&b[offset as usize..end as usize]);
                Ok(())
            }
            None => Err(out_of_range(offset, buf.len(), b.len())),
        }
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut b = self.bytes.write().unwrap_or_else(|e| e.into_inner());
        let end = offset
            .checked_add(buf.len() as u64)
            .ok_or_else(|| out_of_range(offset, buf.len(), b.len()))?;
        if end > b.len() as u64 {
            b.resize(end as usize, 0);
        }
        b[offset as usize..end as usize].copy_from_slice(buf);
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.bytes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .resize(len as usize, 0);
        Ok(())
    }
}

/// Sector size at which the crash device tears unsynced writes.
pub const CRASH_SECTOR_SIZE: u64 = 512;

/// Shared crash schedule for a set of [`CrashDevice`]s (say a log and a segment): the devices
/// count their writes and syncs together, and crash together.
#[derive(Debug)]
pub struct CrashController {
    state: Mutex<CrashState>,
}

#[derive(Debug)]
struct CrashState {
    ops: u64,
    crash_at: Option<u64>,
    crashed: bool,
    rng: u64,
}

impl CrashController {
    /// `seed` drives which unsynced sectors survive a crash.
    pub fn new(seed: u64) -> Arc<CrashController> {
        Arc::new(CrashController {
            state: Mutex::new(CrashState {
                ops: 0,
                crash_at: None,
                crashed: false,
                rng: seed | 1,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, CrashState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Crash when the `n`th write or sync from now (0 = the next one) is attempted: that
    /// operation and every later one fails with an I/O error. A crashing write is torn.
    pub fn crash_after(&self, n: u64) {
        let mut s = self.lock();
        s.crash_at = Some(s.ops + n);
    }

    /// Crash now: every later operation fails until the devices are restarted.
    pub fn crash_now(&self) {
        self.lock().crashed = true;
    }

    /// True once the scheduled crash has happened.
    pub fn has_crashed(&self) -> bool {
        self.lock().crashed
    }

    /// Writes and syncs attempted so far.
    pub fn operations(&self) -> u64 {
        self.lock().ops
    }

    /// Count one operation; returns Err if the device is (now) crashed, and whether this very
    /// operation is the crashing one.
    fn tick(&self) -> io::Result<bool> {
        let mut s = self.lock();
        if s.crashed {
            return Err(crashed_error());
        }
        let now = s.ops;
        s.ops += 1;
        if s.crash_at == Some(now) {
            s.crashed = true;
            return Ok(true);
        }
        Ok(false)
    }

    fn check(&self) -> io::Result<()> {
        if self.lock().crashed {
            Err(crashed_error())
        } else {
            Ok(())
        }
    }

    fn next_random(&self) -> u64 {
        let mut s = self.lock();
        // xorshift64*: deterministic for a given seed, good enough to pick sectors.
        let mut x = s.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn restart(&self) {
        let mut s = self.lock();
        s.crashed = false;
        s.crash_at = None;
    }
}

fn crashed_error() -> io::Error {
    io::Error::other("simulated crash: device is down")
}

/// What happens to unsynced writes when a [`CrashDevice`] restarts after a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tear {
    /// Every unsynced sector is lost.
    DropAll,
    /// Every unsynced sector reached the media.
    KeepAll,
    /// Each unsynced sector independently reached the media or not (the default).
    RandomSectors,
}

/// A device with a *live* image (what reads see) and a *durable* image (what survives a crash).
/// Writes land in the live image and are remembered as pending; `sync` makes them durable;
/// [`CrashDevice::restart`] throws the live image away and rebuilds it from the durable image
/// plus some of the pending writes, torn at 512-byte sector granularity.
#[derive(Debug)]
pub struct CrashDevice {
    name: String,
    controller: Arc<CrashController>,
    images: Mutex<CrashImages>,
}

#[derive(Debug)]
struct CrashImages {
    live: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<(u64, Vec<u8>)>,
    tear: Tear,
}

impl CrashDevice {
    /// A device named `name` whose live and durable images both start as `initial`; it crashes
    /// when `controller` says so.
    pub fn new(name: &str, controller: Arc<CrashController>, initial: Vec<u8>) -> CrashDevice {
        CrashDevice {
            name: name.to_string(),
            controller,
            images: Mutex::new(CrashImages {
                live: initial.clone(),
                durable: initial,
                pending: Vec::new(),
                tear: Tear::RandomSectors,
            }),
        }
    }

    fn images(&self) -> MutexGuard<'_, CrashImages> {
        self.images.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What a crash does to writes that were not synced.
    pub fn set_tear(&self, tear: Tear) {
        self.images().tear = tear;
    }

    /// The durable image: what a restart would start from (before torn writes are added).
    pub fn durable(&self) -> Vec<u8> {
        self.images().durable.clone()
    }

    /// The live image.
    pub fn live(&self) -> Vec<u8> {
        self.images().live.clone()
    }

    /// Simulate power loss and reboot: keep the durable image plus a torn selection of the
    /// pending writes (per [`Tear`]), then bring the device back up.
    pub fn restart(&self) {
        let mut im = self.images();
        let pending = std::mem::take(&mut im.pending);
        let tear = im.tear;
        let mut durable = std::mem::take(&mut im.durable);
        for (offset, data) in pending {
            let end = offset as usize + data.len();
            if durable.len() < end {
                durable.resize(end, 0);
            }
            // Tear at absolute sector boundaries: each sector the write touches survives whole
            // or not at all.
            let mut at = offset;
            while at < offset + data.len() as u64 {
                let sector_end = ((at / CRASH_SECTOR_SIZE) + 1) * CRASH_SECTOR_SIZE;
                let piece_end = sector_end.min(offset + data.len() as u64);
                let keep = match tear {
                    Tear::DropAll => false,
                    Tear::KeepAll => true,
                    Tear::RandomSectors => self.controller.next_random() & 1 == 0,
                };
                if keep {
                    durable[at as usize..piece_end as usize].copy_from_slice(
                        &data[(at - offset) as usize..(piece_end - offset) as usize],
                    );
                }
                at = piece_end;
            }
        }
        im.live = durable.clone();
        im.durable = durable;
        drop(im);
        self.controller.restart();
    }
}

impl Device for CrashDevice {
    fn name(&self) -> &str {
        &self.name
    }
    fn len(&self) -> io::Result<u64> {
        self.controller.check()?;
        Ok(self.images().live.len() as u64)
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.controller.check()?;
        let im = self.images();
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|e| *e <= im.live.len() as u64);
        match end {
            Some(end) => {
                buf.copy_from_slice(&im.live[offset as usize..end as usize]);
                Ok(())
            }
            None => Err(out_of_range(offset, buf.len(), im.live.len())),
        }
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let crashing = self.controller.tick()?;
        let mut im = self.images();
        let end = offset as usize + buf.len();
        if im.live.len() < end {
            im.live.resize(end, 0);
        }
        im.live[offset as usize..end].copy_from_slice(buf);
        im.pending.push((offset, buf.to_vec()));
        if crashing {
            return Err(crashed_error());
        }
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        if self.controller.tick()? {
            return Err(crashed_error());
        }
        let mut im = self.images();
        im.pending.clear();
        im.durable = im.live.clone();
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.controller.check()?;
        let mut im = self.images();
        im.live.resize(len as usize, 0);
        im.durable.resize(len as usize, 0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_device_keeps_synced_and_tears_unsynced_by_sector() {
        let ctl = CrashController::new(7);
        let dev = CrashDevice::new("t", ctl.clone(), vec![0; 4096]);
        dev.write_at(&[1; 1024], 0).unwrap();
        dev.sync().unwrap();
        dev.write_at(&[2; 2048], 1024).unwrap();
        dev.restart();
        let img = dev.live();
        assert!(img[..1024].iter().all(|b| *b == 1), "synced data survives");
        for sector in img[1024..3072].chunks(512) {
            assert!(
                sector.iter().all(|b| *b == 2) || sector.iter().all(|b| *b == 0),
                "sector torn inside"
            );
        }
    }

    #[test]
    fn crash_point_fails_the_operation_and_everything_after() {
        let ctl = CrashController::new(1);
        let dev = CrashDevice::new("t", ctl.clone(), vec![0; 1024]);
        dev.set_tear(Tear::DropAll);
        ctl.crash_after(1);
        dev.write_at(&[1; 8], 0).unwrap();
        assert!(dev.sync().is_err());
        assert!(dev.write_at(&[1; 8], 8).is_err());
        assert!(ctl.has_crashed());
        dev.restart();
        assert_eq!(dev.live()[0], 0, "the unsynced write was dropped");
        dev.write_at(&[3; 8], 0).unwrap();
    }

    /// Coalesced writes (overlapping, adjacent, a page apart, past the end) give the same file
    /// as writing each piece in order, and leave the bytes between pieces unchanged.
    #[test]
    fn file_device_write_pieces_equals_writing_each_piece_in_order() {
        let dir = std::env::temp_dir().join(format!("rvm-pieces-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        let _ = std::fs::remove_file(&p);
        let dev = FileDevice::create_new(&p).unwrap();
        let initial: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        dev.write_at(&initial, 0).unwrap();
        let mut model = initial.clone();
        let bytes: Vec<Vec<u8>> = (1..=9u8).map(|n| vec![n; 700]).collect();
        // Sorted by offset, except that overlapping pieces come oldest first.
        let pieces: Vec<(u64, &[u8])> = vec![
            (100, &bytes[0][..]),
            (50, &bytes[1][..300]),
            (350, &bytes[2][..10]),
            (360, &bytes[3][..20]),
            (2000, &bytes[4][..]),
            (9000, &bytes[5][..]),
            (39_900, &bytes[6][..]),
            (45_000, &bytes[7][..]),
        ];
        dev.write_pieces(&pieces).unwrap();
        for (at, b) in &pieces {
            let end = *at as usize + b.len();
            if model.len() < end {
                model.resize(end, 0);
            }
            model[*at as usize..end].copy_from_slice(b);
        }
        let mut got = vec![0u8; dev.len().unwrap() as usize];
        dev.read_at(&mut got, 0).unwrap();
        assert_eq!(got, model);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The gather buffer is reused across the runs of one call without being cleared: a
    /// shorter run after a longer one, with and without gaps, and one past the end of the
    /// file, must carry none of the earlier run's bytes.
    #[test]
    fn write_pieces_reused_its_gather_buffer_without_stale_bytes() {
        let dir = std::env::temp_dir().join(format!("rvm-pieces-reuse-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        let _ = std::fs::remove_file(&p);
        let dev = FileDevice::create_new(&p).unwrap();
        let initial: Vec<u8> = (0..200_000u32).map(|i| (i % 239) as u8).collect();
        dev.write_at(&initial, 0).unwrap();
        let mut model = initial.clone();
        let (a, b, c) = (vec![0xaa; 3000], vec![0xbb; 100], vec![0xcc; 50]);
        let pieces: Vec<(u64, &[u8])> = vec![
            // A long run with a gap (read from the file).
            (0, &a[..]),
            (5000, &a[..]),
            // A shorter run without gaps (the pieces touch and overlap).
            (100_000, &b[..]),
            (100_100, &b[..]),
            (100_150, &c[..]),
            // A short run with a gap.
            (150_000, &c[..]),
            (150_500, &c[..]),
            // A run reaching past the end of the file (read short, zero-filled).
            (199_900, &b[..]),
            (200_300, &c[..]),
        ];
        dev.write_pieces(&pieces).unwrap();
        for (at, bytes) in &pieces {
            let end = *at as usize + bytes.len();
            if model.len() < end {
                model.resize(end, 0);
            }
            model[*at as usize..end].copy_from_slice(bytes);
        }
        let mut got = vec![0u8; dev.len().unwrap() as usize];
        dev.read_at(&mut got, 0).unwrap();
        assert_eq!(got, model);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn file_device_refuses_a_second_writer() {
        let dir = std::env::temp_dir().join(format!("rvm-dev-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("locked");
        let _ = std::fs::remove_file(&p);
        drop(FileDevice::create_new(&p).unwrap());
        let a = FileDevice::open(&p, Access::ReadWrite).unwrap();
        let err = FileDevice::open(&p, Access::ReadWrite).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(held_by_this_process(&err), "{err}");
        FileDevice::open(&p, Access::ReadOnly).unwrap();
        drop(a);
        FileDevice::open(&p, Access::ReadWrite).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
