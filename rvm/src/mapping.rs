//! Placing regions in the address space.
//!
//! A region of a file-backed segment is mapped `MAP_PRIVATE` from the segment file: nothing is
//! read up front (pages fault in on first touch) and changes made in memory never reach the
//! file, which only truncation and recovery write. Fixed addresses use `MAP_FIXED_NOREPLACE`,
//! so an occupied range is reported, never clobbered. A device with no file descriptor (the
//! test devices), or a region whose file offset is not aligned to the runtime page size, gets
//! anonymous memory filled by reading the device. Large holes of a sparse segment file are
//! mapped as anonymous zero memory instead of from the file (see `map_holes_anonymous`).
//! With huge pages asked for, the anonymous parts are advised `MADV_HUGEPAGE` (see
//! [`advise_huge_pages`]).

use std::num::NonZeroUsize;
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;

use nix::sys::mman::{mmap, mmap_anonymous, munmap, MapFlags, ProtFlags};

use crate::device::Device;
use crate::error::{Error, Result};

pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n <= 0 {
        4096
    } else {
        n as usize
    }
}

/// Where a region's memory comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backing {
    /// Mapped `MAP_PRIVATE` from the device's descriptor when it lends one and the offset is
    /// page-aligned; otherwise anonymous memory filled by reading the device.
    File,
    /// Anonymous memory filled by reading the device's data (a plain file's copy mode, and a
    /// segment's with `MapOptions::copy`).
    Copy,
    /// Anonymous zero memory; the device is not read (the classic `no_copy`).
    Zero,
}

/// Map `length` bytes of `device` starting at `offset`, at `address` (fixed) or anywhere,
/// backed as `backing` says; with `huge_pages`, its anonymous parts are advised to use
/// transparent huge pages. Returns the address.
///
/// # Safety
/// If the device has a mappable descriptor and `backing` is [`Backing::File`], its file must
/// hold `[offset, offset + length)` and must not be shortened while the region is mapped (a
/// page past the end of the file raises SIGBUS when touched): the contract of `Rvm::map` /
/// `Rvm::map_device` / `Rvm::map_file`.
pub(crate) unsafe fn map_region(
    device: &dyn Device,
    offset: u64,
    length: usize,
    address: Option<usize>,
    backing: Backing,
    huge_pages: bool,
) -> Result<usize> {
    let path = device.name().to_string();
    let len = NonZeroUsize::new(length).ok_or_else(|| Error::InvalidArgument {
        parameter: "region length",
        rule: "must not be zero".into(),
    })?;
    let prot = ProtFlags::PROT_READ | ProtFlags::PROT_WRITE;
    let fixed = |flags: MapFlags| match address {
        Some(_) => flags | MapFlags::MAP_FIXED_NOREPLACE,
        None => flags,
    };
    let hint = address.and_then(NonZeroUsize::new);
    if let Some(a) = address {
        if a == 0 || a % page_size() != 0 {
            return Err(Error::InvalidArgument {
                parameter: "region address",
                rule: format!(
                    "{a:#x} is not a non-zero multiple of the page size {}",
                    page_size()
                ),
            });
        }
    }
    // SAFETY: the descriptor is only mapped; its length is this function's caller's contract.
    let file_backed = unsafe { device.mappable_fd() }
        .filter(|_| backing == Backing::File && offset.is_multiple_of(page_size() as u64));
    if let Some(fd) = file_backed {
        // A descriptor naming a regular file too short for the region would fault (SIGBUS)
        // at the first touch past its end: refuse it now. (Later shortening is the caller's
        // contract; block devices report no size here and are checked by the header read.)
        // SAFETY: fstat writes only into the zeroed struct it is given.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `fd` is open (the device's contract) and `st` is a valid out-pointer.
        let rc = unsafe { libc::fstat(fd, &mut st) };
        let need = offset.saturating_add(length as u64);
        if rc == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFREG && (st.st_size as u64) < need {
            return Err(Error::BadSegment {
                path,
                reason: format!(
                    "the file it maps is {} bytes, the region needs {need}",
                    st.st_size
                ),
            });
        }
    }
    let result = match file_backed {
        Some(fd) => {
            // SAFETY: `fd` is open for the lifetime of the device, which outlives this call;
            // the kernel duplicates its reference for the mapping.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            // SAFETY: with MAP_FIXED_NOREPLACE (or no fixed address) the kernel never replaces
            // an existing mapping, so no Rust object's memory is affected.
            unsafe {
                mmap(
                    hint,
                    len,
                    prot,
                    fixed(MapFlags::MAP_PRIVATE),
                    fd,
                    offset as libc::off_t,
                )
            }
        }
        // SAFETY: as above, an anonymous mapping never replaces an existing one.
        None => unsafe { mmap_anonymous(hint, len, prot, fixed(MapFlags::MAP_PRIVATE)) },
    };
    let ptr = match result {
        Ok(p) => p,
        Err(nix::errno::Errno::EEXIST) => {
            let start = address.unwrap_or(0) as u64;
            return Err(Error::AddressInUse {
                path,
                start,
                end: start + length as u64,
                occupant: occupant(start, start + length as u64),
            });
        }
        Err(e) => {
            return Err(Error::io(
                &path,
                "mmap",
                std::io::Error::from_raw_os_error(e as i32),
            ));
        }
    };
    let got = ptr.as_ptr() as usize;
    if let Some(want) = address {
        if got != want {
            // A kernel older than 4.17 treats MAP_FIXED_NOREPLACE as a hint.
            unmap_region(got, length);
            let (start, end) = (want as u64, (want + length) as u64);
            return Err(Error::AddressInUse {
                path,
                start,
                end,
                occupant: occupant(start, end),
            });
        }
    }
    if let Some(fd) = file_backed {
        if let Err(e) = map_holes_anonymous(fd, got, offset, length, huge_pages) {
            unmap_region(got, length);
            return Err(Error::io(&path, "mmap", e));
        }
    }
    if file_backed.is_none() && huge_pages {
        // Before the fill below, so that the pages it writes are huge ones.
        advise_huge_pages(got, length);
    }
    if file_backed.is_none() && backing != Backing::Zero {
        // SAFETY: the mapping just created is `length` bytes of writable memory at `got`.
        let mem = unsafe { std::slice::from_raw_parts_mut(got as *mut u8, length) };
        if let Err(e) = fill_from_device(device, mem, offset) {
            unmap_region(got, length);
            return Err(Error::io(&path, "read region", e));
        }
    }
    Ok(got)
}

/// Fill `mem`, fresh anonymous memory (all zeros), with the device's bytes from `offset`. The
/// holes of a file ([`Holes`]) are skipped: they read as zeros, which `mem` already holds, so
/// their pages are neither read nor made resident. A device without a descriptor, or a file
/// system without `SEEK_HOLE`, is read whole.
fn fill_from_device(device: &dyn Device, mem: &mut [u8], offset: u64) -> std::io::Result<()> {
    // SAFETY: the descriptor is only asked where the file has data (lseek); it is never read
    // through, mapped or closed here.
    let Some(fd) = (unsafe { device.mappable_fd() }) else {
        return device.read_at(mem, offset);
    };
    let end = offset + mem.len() as u64;
    if device.len()? < end {
        // As a whole read would: the region runs past the end of the file.
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("the file ends before byte {end} of the region"),
        ));
    }
    let mut at = offset;
    for hole in Holes::new(fd, offset, end) {
        if hole.start > at {
            device.read_at(
                &mut mem[(at - offset) as usize..(hole.start - offset) as usize],
                at,
            )?;
        }
        at = hole.end;
    }
    if at < end {
        device.read_at(&mut mem[(at - offset) as usize..], at)?;
    }
    Ok(())
}

/// The holes of the file behind `fd` in `[at, end)`, in order, each clipped to that range
/// (`SEEK_HOLE`/`SEEK_DATA`, which count dirty page cache as data). A file system that
/// cannot tell (no `SEEK_HOLE`) yields none: all of it then counts as data.
struct Holes {
    fd: std::os::fd::RawFd,
    at: u64,
    end: u64,
}

impl Holes {
    fn new(fd: std::os::fd::RawFd, at: u64, end: u64) -> Holes {
        Holes { fd, at, end }
    }
}

impl Iterator for Holes {
    type Item = std::ops::Range<u64>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.end {
            return None;
        }
        // SAFETY: lseek has no memory-safety preconditions; the descriptor is open (the
        // device's contract), and its file position is used by nobody (all device I/O is
        // positional).
        let hole = unsafe { libc::lseek(self.fd, self.at as libc::off_t, libc::SEEK_HOLE) };
        if hole < 0 || hole as u64 >= self.end {
            // No hole before `end`, or no SEEK_HOLE.
            self.at = self.end;
            return None;
        }
        let hole = (hole as u64).max(self.at);
        // SAFETY: as above.
        let data = unsafe { libc::lseek(self.fd, hole as libc::off_t, libc::SEEK_DATA) };
        let hole_end = if data < 0 {
            // ENXIO: no data after the hole (it runs to the end of the file).
            self.end
        } else {
            (data as u64).min(self.end)
        };
        if hole_end <= hole {
            // A file changing under the lookups: stop rather than loop.
            self.at = self.end;
            return None;
        }
        self.at = hole_end;
        Some(hole..hole_end)
    }
}

/// Holes of at least this many bytes are mapped as anonymous memory (see
/// [`map_holes_anonymous`]); smaller ones stay file-backed.
const HOLE_BYTES_MIN: u64 = 64 << 10;
/// At most this many holes per region get their own anonymous mapping, so a fragmented file
/// cannot use up the process's mapping count (each one splits the region's mapping).
const HOLE_MAPPINGS_PER_REGION_MAX: usize = 256;

/// Map the large holes ([`Holes`]) of a sparse segment file's region as anonymous memory
/// instead of from the file. A hole holds zeros, and so does fresh anonymous memory, so the region reads the
/// same; but a page touched there is then ordinary process memory: the file system is not
/// asked for a page for the hole (tmpfs allocates one at the first touch of a hole through a
/// private mapping, and on a full tmpfs that touch raises SIGBUS), and the first write costs one
/// page instead of a page-cache page plus its private copy. Nothing is lost: the file is
/// written only by truncation and recovery, recovery runs before a segment is mapped, and a
/// segment is truncated before it is mapped again (so every committed byte is in the file, or
/// in its dirty page cache, which `SEEK_DATA` reports as data, before its holes are looked up).
/// A file system without `SEEK_HOLE` simply keeps the whole region file-backed. With
/// `huge_pages`, each hole mapped this way is advised to use huge pages.
fn map_holes_anonymous(
    fd: std::os::fd::RawFd,
    address: usize,
    offset: u64,
    length: usize,
    huge_pages: bool,
) -> std::io::Result<()> {
    let page = page_size() as u64;
    let mut mapped = 0;
    for hole in Holes::new(fd, offset, offset + length as u64) {
        if mapped == HOLE_MAPPINGS_PER_REGION_MAX {
            break;
        }
        let start = hole.start.div_ceil(page) * page;
        let stop = hole.end / page * page;
        if stop > start && stop - start >= HOLE_BYTES_MIN {
            let at_address = address + (start - offset) as usize;
            let Some(len) = NonZeroUsize::new((stop - start) as usize) else {
                break;
            };
            // SAFETY: `[at_address, at_address + len)` lies inside the mapping `map_region`
            // has just created for this region and not yet handed out, so replacing that part
            // (MAP_FIXED) affects no memory anything else refers to.
            unsafe {
                mmap_anonymous(
                    NonZeroUsize::new(at_address),
                    len,
                    ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                    MapFlags::MAP_PRIVATE | MapFlags::MAP_FIXED,
                )
            }
            .map_err(|e| std::io::Error::from_raw_os_error(e as i32))?;
            if huge_pages {
                advise_huge_pages(at_address, len.get());
            }
            mapped += 1;
        }
    }
    Ok(())
}

/// Advise the kernel to back `[address, address + length)` with transparent huge pages
/// (`MADV_HUGEPAGE`): each 2 MiB-aligned 2 MiB of it that gets touched is then one huge page
/// (one page fault and one TLB entry instead of 512), and `khugepaged` may later collapse
/// pages already present. Only anonymous memory is advised: the private copies of a
/// file-backed mapping are always small pages. It is advice: a kernel without transparent
/// huge pages, or one that has them turned off (`never`), refuses or ignores it, and the memory
/// works as before.
fn advise_huge_pages(address: usize, length: usize) {
    // SAFETY: madvise(MADV_HUGEPAGE) changes only how the kernel backs pages of a range this
    // module has just mapped; it never changes their contents or the mapping's extent, and an
    // error (EINVAL without transparent huge pages) leaves everything as it was.
    unsafe {
        libc::madvise(address as *mut libc::c_void, length, libc::MADV_HUGEPAGE);
    }
}

pub(crate) fn unmap_region(address: usize, length: usize) {
    if let Some(p) = NonNull::new(address as *mut libc::c_void) {
        // SAFETY: callers pass a mapping this module created and that nothing refers to any more.
        let _ = unsafe { munmap(p, length) };
    }
}

/// The mappings of this process that overlap `[start, end)`, from /proc/self/maps, each as
/// "start-end name".
fn occupants(start: u64, end: u64) -> Vec<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mut found = Vec::new();
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let Some(range) = fields.next() else { continue };
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
            continue;
        };
        if a < end && start < b {
            let name = fields.nth(4).unwrap_or("");
            let name = if name.is_empty() { "[anonymous]" } else { name };
            found.push(format!("{a:#x}-{b:#x} {name}"));
        }
    }
    found
}

/// Describe what occupies `[start, end)`, for an error message.
pub(crate) fn occupant(start: u64, end: u64) -> String {
    let found = occupants(start, end);
    if found.is_empty() {
        // The kernel refused the range but /proc/self/maps shows nothing (it changed since).
        "an existing mapping".to_string()
    } else {
        found.join(", ")
    }
}

/// What occupies any part of `[start, end)` in this process, if anything (for tools that warn).
pub fn range_is_occupied(start: u64, end: u64) -> Option<String> {
    let found = occupants(start, end);
    (!found.is_empty()).then(|| found.join(", "))
}
