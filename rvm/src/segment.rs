//! Segments: creating one, reading its header, and the handle to a mapped segment.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::device::{write_zeros, Access, Device, DeviceRef, FileDevice};
use crate::error::{Error, Result};
use crate::format::log::{FileIdentity, SegmentEntry, SegmentKind};
use crate::format::segment::{RegionEntry, SegmentHeader, REGIONS_MAX, SEGMENT_HEADER_SIZE};
use crate::format::{DecodeError, Uuid};
use crate::range_lock::RangeLocks;
use crate::sync::read_lock;

/// One region to lay out: its length and the address it is mapped at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionSpec {
    /// Length of the region in bytes (a multiple of
    /// [`REGION_ALIGN`](crate::format::segment::REGION_ALIGN)).
    pub length: u64,
    /// The fixed virtual address the region is mapped at (a multiple of `REGION_ALIGN`).
    pub address: u64,
}

/// Lay out a segment of `length_bytes`: the header, then the regions one after another.
/// Validates every rule of [`SegmentHeader::validate`] and gives the new segment a fresh UUID.
pub fn layout(length_bytes: u64, regions: &[RegionSpec]) -> Result<SegmentHeader> {
    if regions.len() > REGIONS_MAX {
        return Err(Error::InvalidArgument {
            parameter: "regions",
            rule: format!("at most {REGIONS_MAX} regions"),
        });
    }
    let mut offset = SEGMENT_HEADER_SIZE;
    let mut entries = Vec::with_capacity(regions.len());
    for r in regions {
        entries.push(RegionEntry {
            offset,
            length: r.length,
            address: r.address,
        });
        offset = offset.saturating_add(r.length);
    }
    let uuid = Uuid::random().map_err(|e| Error::io("getrandom", "uuid", e))?;
    let header = SegmentHeader {
        uuid,
        length_bytes,
        created_unix_ms: crate::clock::now_ms(),
        regions: entries,
    };
    header.validate().map_err(|e| layout_error(&header, e))?;
    Ok(header)
}

fn layout_error(header: &SegmentHeader, e: DecodeError) -> Error {
    let used: u64 = SEGMENT_HEADER_SIZE + header.regions.iter().map(|r| r.length).sum::<u64>();
    let rule = if used > header.length_bytes {
        format!(
            "header ({SEGMENT_HEADER_SIZE}) + regions ({}) = {used} bytes do not fit in a segment of {} bytes",
            used - SEGMENT_HEADER_SIZE,
            header.length_bytes
        )
    } else {
        e.detail
    };
    Error::InvalidArgument {
        parameter: "segment layout",
        rule,
    }
}

/// How [`create`] treats the data file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CreateOptions {
    /// Overwrite an existing file (its old contents are discarded). Without it an existing
    /// file is refused.
    pub overwrite: bool,
    /// Reserve the blocks with fallocate instead of leaving the file sparse.
    pub fallocate: bool,
}

/// Create a segment file (mode 0600) holding `header`: the file is extended sparsely to the
/// segment length, the header written and synced, and the directory synced.
pub fn create(path: &Path, header: &SegmentHeader, options: CreateOptions) -> Result<FileDevice> {
    let name = path.display().to_string();
    header.validate().map_err(|e| layout_error(header, e))?;
    let dev = match FileDevice::create_new(path).and_then(|d| d.lock().map(|_| d)) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && options.overwrite => {
            FileDevice::open(path, Access::ReadWrite).map_err(|e| Error::io(&name, "open", e))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::InvalidArgument {
                parameter: "data file",
                rule: format!("{name} already exists (overwrite it explicitly)"),
            })
        }
        Err(e) => return Err(Error::io(&name, "create", e)),
    };
    if !dev.is_block_device() {
        dev.set_len(0)
            .map_err(|e| Error::io(&name, "truncate", e))?;
    }
    write_header(&dev, header)?;
    if options.fallocate && !dev.is_block_device() {
        // SAFETY: the descriptor is only sized here (fallocate), never mapped or closed.
        if let Some(fd) = unsafe { dev.mappable_fd() } {
            // SAFETY: fd is a valid open descriptor owned by `dev`.
            let rc = unsafe { libc::fallocate(fd, 0, 0, header.length_bytes as libc::off_t) };
            if rc != 0 {
                return Err(Error::io(
                    &name,
                    "fallocate",
                    std::io::Error::last_os_error(),
                ));
            }
            dev.sync().map_err(|e| Error::io(&name, "fsync", e))?;
        }
    }
    Ok(dev)
}

/// Write `header` to a device and size it: the device must be able to hold the segment.
pub fn write_header(device: &dyn Device, header: &SegmentHeader) -> Result<()> {
    let name = device.name().to_string();
    header.validate().map_err(|e| layout_error(header, e))?;
    if device.is_block_device() {
        let have = device.len().map_err(|e| Error::io(&name, "size", e))?;
        if have < header.length_bytes {
            return Err(Error::InvalidArgument {
                parameter: "data length",
                rule: format!(
                    "{name} holds {have} bytes, the segment needs {}",
                    header.length_bytes
                ),
            });
        }
    } else {
        device
            .set_len(header.length_bytes)
            .map_err(|e| Error::io(&name, "set length", e))?;
    }
    device
        .write_at(&header.encode(), 0)
        .map_err(|e| Error::io(&name, "write header", e))?;
    device.sync().map_err(|e| Error::io(&name, "fsync", e))
}

/// Zero `[from, to)` of a device in 1 MiB writes, reporting progress (bytes done) after each.
pub fn zero_fill(
    device: &dyn Device,
    from: u64,
    to: u64,
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    let name = device.name().to_string();
    write_zeros(device, from, to, 1 << 20, progress)
        .map_err(|e| Error::io(&name, "zero fill", e))?;
    device.sync().map_err(|e| Error::io(&name, "fsync", e))
}

/// Read and validate the header of the segment file at `path` (read-only, no lock).
pub fn read_header(path: &Path) -> Result<SegmentHeader> {
    let dev = FileDevice::open(path, Access::ReadOnly)
        .map_err(|e| Error::io(&path.display().to_string(), "open", e))?;
    read_header_from(&dev)
}

/// Read and validate a segment header from a device; also checks the device is long enough.
pub fn read_header_from(device: &dyn Device) -> Result<SegmentHeader> {
    let name = device.name().to_string();
    let len = device.len().map_err(|e| Error::io(&name, "size", e))?;
    if len < SEGMENT_HEADER_SIZE {
        return Err(Error::BadSegment {
            path: name,
            reason: format!("file is {len} bytes, shorter than a segment header"),
        });
    }
    let mut buf = vec![0u8; SEGMENT_HEADER_SIZE as usize];
    device
        .read_at(&mut buf, 0)
        .map_err(|e| Error::io(&name, "read header", e))?;
    let header = SegmentHeader::decode(&buf).map_err(|e| match e.field {
        "version" => Error::SegmentVersion {
            path: name.clone(),
            reason: e.detail.clone(),
        },
        _ => Error::BadSegment {
            path: name.clone(),
            reason: e.to_string(),
        },
    })?;
    if len < header.length_bytes {
        return Err(Error::BadSegment {
            path: name,
            reason: format!(
                "file is {len} bytes but the header says the segment is {}",
                header.length_bytes
            ),
        });
    }
    Ok(header)
}

/// The header a plain file is given in memory: its identity as UUID, its length, and one
/// region covering the whole file (the bounds of a logged range).
pub(crate) fn made_up_header(identity: FileIdentity, file_len: u64) -> SegmentHeader {
    SegmentHeader {
        uuid: identity.to_uuid(),
        length_bytes: file_len,
        created_unix_ms: 0,
        regions: vec![RegionEntry {
            offset: 0,
            length: file_len,
            address: 0,
        }],
    }
}

/// Open the plain file (a [`SegmentKind::PlainFile`] entry of a log's segment table, mapped
/// with [`crate::Rvm::map_file`]) by the path the entry records, and check it is still the
/// file that was mapped: the same device and inode, the same length. Returns the open device
/// (locked with [`Access::ReadWrite`], as recovery opens it; unlocked with
/// [`Access::ReadOnly`], for inspection) and the header it is given in memory (one region
/// covering the whole file: the bounds a logged range must stay in). `log` names the log in
/// errors.
///
/// # Errors
/// [`Error::PlainFileMismatch`] (naming the path, and what differs with the recorded and the
/// current values) when the file is missing, replaced or resized, or the entry records no
/// path; [`Error::Io`] / [`Error::InUse`] when it cannot be opened or examined;
/// [`Error::InvalidArgument`] for an entry that is not a plain file.
pub fn open_plain_file(
    log: &str,
    entry: &SegmentEntry,
    access: Access,
) -> Result<(FileDevice, SegmentHeader)> {
    let Some(recorded) = entry.file_identity() else {
        return Err(Error::InvalidArgument {
            parameter: "segment-table entry",
            rule: format!("entry for {:?} is not a plain file", entry.path_hint),
        });
    };
    let path = entry.path_hint.clone();
    let refuse = |detail: String| Error::PlainFileMismatch {
        log: log.to_string(),
        path: path.clone(),
        detail,
    };
    if path.is_empty() {
        return Err(refuse("the log records no path for it".into()));
    }
    let dev = match FileDevice::open(Path::new(&path), access) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(refuse("the file does not exist".into()))
        }
        Err(e) => return Err(Error::io(&path, "open", e)),
    };
    let now = dev.identity().map_err(|e| Error::io(&path, "stat", e))?;
    if now != recorded {
        return Err(refuse(format!(
            "it is now {now}, the log recorded {recorded} (the file was replaced)"
        )));
    }
    let len = dev.len().map_err(|e| Error::io(&path, "size", e))?;
    if len != entry.length_bytes {
        return Err(refuse(format!(
            "it is now {len} bytes long, the log recorded {} (the file was shortened or \
             extended)",
            entry.length_bytes
        )));
    }
    Ok((dev, made_up_header(now, len)))
}

/// Where regions are placed when a segment is mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Placement {
    /// At the addresses recorded in the segment header (pointers stored inside stay valid).
    #[default]
    Fixed,
    /// Wherever the kernel chooses (for programs that store offsets, not pointers).
    Anywhere,
}

/// How [`crate::Rvm::map`] maps a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MapOptions {
    /// Where the regions are mapped (default: at their fixed addresses).
    pub placement: Placement,
    /// Warm-up (off by default): when true, a background thread faults every page of the
    /// regions in, writable, right after mapping, so that the first write of a transaction to
    /// a page does not take a page fault (each first write to a page of the private mapping
    /// otherwise does). Mapping does not wait for it. It stops when the segment is unmapped
    /// (unmapping waits for at most one 2 MiB chunk of it) or the instance closes; see
    /// [`Segment::warming_up`].
    ///
    /// Cost: the whole segment becomes resident, private memory of the process (as if every
    /// page had been written), read from the file where it has data. Do not turn it on for a
    /// segment larger than the memory the process may use: as writing every page would, it
    /// can then make the kernel's OOM killer end the process. Uses
    /// `madvise(MADV_POPULATE_WRITE)` (Linux 5.14 and later; on older kernels the option does
    /// nothing). It never changes the mapped bytes and adds no SIGBUS hazard to the contract of
    /// [`crate::Rvm::map`].
    pub warm_up: bool,
    /// Huge pages (off by default): when true, the parts of the regions that are anonymous
    /// memory are advised to use transparent huge pages (`madvise(MADV_HUGEPAGE)`). Those are
    /// the large holes of a sparse segment file: a fresh segment (as `rdsinit` makes it), and
    /// any space truncation has not yet written. Each 2 MiB-aligned 2 MiB touched there is then
    /// one page, so random writes over a large segment miss the TLB far less, and the first
    /// write to such a part takes one page fault instead of 512. The parts the file holds data
    /// for stay mapped from the file, in 4 KiB pages.
    ///
    /// Cost: memory is taken in 2 MiB steps, so a segment touched sparsely becomes resident
    /// in whole 2 MiB pieces (and `khugepaged` may fill in pieces that are partly resident);
    /// a first write there zeroes 2 MiB; and where the kernel is set to compact memory for
    /// such advice (`/sys/kernel/mm/transparent_hugepage/defrag`, `madvise` by default), a
    /// first write may wait for that. With [`MapOptions::warm_up`], which makes the whole
    /// segment resident anyway, only the last applies, and the warm-up itself finishes sooner.
    /// Where the system turns transparent huge pages off (`never`) the option does nothing.
    /// It never changes the mapped bytes. With [`MapOptions::copy`] it covers the data too.
    pub huge_pages: bool,
    /// Copy mode (off by default), the classic library's default: the regions are read into
    /// memory of the process's own at map time instead of being mapped from the file. Only the
    /// parts the file holds data for are read; its holes are left as zero memory that becomes
    /// resident when touched.
    ///
    /// What it gives: the file is never mapped, so a file shortened while mapped can no longer
    /// kill the process with SIGBUS; later first touches of data pages
    /// take no page-cache fault; and with [`MapOptions::huge_pages`] the data is in huge pages
    /// too, where without copy mode it stays in 4 KiB pages (a reopened segment's data is file
    /// data). What it costs: mapping reads every byte of data the regions hold and makes it
    /// resident (a region of 1 GB of data takes a fraction of a second to read from the page
    /// cache, more from disk), which default mapping defers to each page's first touch.
    pub copy: bool,
}

impl MapOptions {
    /// Options that map the regions wherever the kernel chooses ([`Placement::Anywhere`]).
    pub fn anywhere() -> MapOptions {
        MapOptions {
            placement: Placement::Anywhere,
            ..MapOptions::default()
        }
    }

    /// Sets [`MapOptions::warm_up`].
    pub fn warm_up(mut self, yes: bool) -> MapOptions {
        self.warm_up = yes;
        self
    }

    /// Sets [`MapOptions::huge_pages`].
    pub fn huge_pages(mut self, yes: bool) -> MapOptions {
        self.huge_pages = yes;
        self
    }

    /// Sets [`MapOptions::copy`].
    pub fn copy(mut self, yes: bool) -> MapOptions {
        self.copy = yes;
        self
    }
}

/// A region as mapped in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappedRegion {
    /// Position in the segment header's region table.
    pub index: usize,
    /// Where the region is mapped now.
    pub address: usize,
    /// Length of the region in bytes.
    pub length: usize,
    /// Offset of the region's first byte in the segment.
    pub segment_offset: u64,
}

impl MappedRegion {
    /// One past the region's last mapped address.
    pub fn end(&self) -> usize {
        self.address + self.length
    }
    /// Whether `[address, address+len)` lies inside this region.
    pub fn contains(&self, address: usize, len: usize) -> bool {
        address >= self.address && address.checked_add(len).is_some_and(|e| e <= self.end())
    }
}

/// A handle to a mapped segment. Cheap to clone; reads check that the memory is still mapped.
#[derive(Clone, Debug)]
pub struct Segment {
    pub(crate) inner: Arc<SegmentShared>,
}

#[derive(Debug)]
pub(crate) struct SegmentShared {
    /// An rvm segment, or a plain file mapped with `Rvm::map_file`.
    pub(crate) kind: SegmentKind,
    pub(crate) header: SegmentHeader,
    pub(crate) device: DeviceRef,
    pub(crate) regions: Vec<MappedRegion>,
    /// Index of this segment in the log's segment table.
    pub(crate) log_index: u32,
    /// Held for reading while memory is read; unmapping takes it for writing.
    pub(crate) mapped: RwLock<bool>,
    /// The process-unique id of the instance that mapped the segment, and its log's name.
    pub(crate) instance: u64,
    pub(crate) instance_name: String,
    /// The instance's range locks, when it runs with isolation.
    pub(crate) locks: Option<Arc<RangeLocks>>,
    /// The instance's bound on waiting for a lock (`Options::lock_timeout`).
    pub(crate) lock_timeout: Duration,
    /// The warm-up thread ([`MapOptions::warm_up`]), joined when the segment is unmapped.
    pub(crate) warm_up: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Segment {
    /// Whether the warm-up thread ([`MapOptions::warm_up`]) is still faulting pages in. False
    /// once it has gone through every region, when the segment was mapped without warm-up,
    /// and after unmapping.
    pub fn warming_up(&self) -> bool {
        let handle = crate::sync::lock(&self.inner.warm_up);
        handle.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// The segment's header, as read when it was mapped. A plain file
    /// ([`crate::Rvm::map_file`]) has no header: this is one made up for it, whose UUID holds
    /// the file's identity bytes ([`crate::format::log::FileIdentity`]), whose
    /// length is the file's, and whose one region covers the whole file at address 0 (the
    /// bounds a logged range must stay in); [`Segment::regions`] says what is mapped.
    pub fn header(&self) -> &SegmentHeader {
        &self.inner.header
    }
    /// The segment's UUID (from its header; a plain file's identity bytes).
    pub fn uuid(&self) -> Uuid {
        self.inner.header.uuid
    }
    /// Whether this is an rvm segment or a plain file mapped with [`crate::Rvm::map_file`].
    pub fn kind(&self) -> SegmentKind {
        self.inner.kind
    }
    /// The device's name (its path for files).
    pub fn path(&self) -> &str {
        self.inner.device.name()
    }
    /// The regions as mapped in this process, in header order.
    pub fn regions(&self) -> &[MappedRegion] {
        &self.inner.regions
    }
    /// Whether the segment is still mapped.
    pub fn is_mapped(&self) -> bool {
        *read_lock(&self.inner.mapped)
    }
    /// The region holding `[address, address+len)`, if one does.
    pub fn region_of(&self, address: usize, len: usize) -> Option<&MappedRegion> {
        self.inner.regions.iter().find(|r| r.contains(address, len))
    }

    /// Copy mapped memory at `address` into `buf`. Returns a copy, never a reference: other
    /// threads' transactions may be writing the same bytes. Without isolation a read that
    /// races with a write may see part of each; with isolation (`Options::isolation`) it waits
    /// (at most the instance's `lock_timeout`) until no other thread's transaction holds any
    /// of the bytes. After unmap or close it fails with [`Error::NotMapped`].
    pub fn read_bytes(&self, address: usize, buf: &mut [u8]) -> Result<()> {
        let mapped = read_lock(&self.inner.mapped);
        if !*mapped || self.region_of(address, buf.len()).is_none() {
            return Err(Error::NotMapped {
                address: address as u64,
                length: buf.len() as u64,
            });
        }
        let end = address + buf.len();
        let mut copy = || {
            // SAFETY: the range lies inside a region that stays mapped while `mapped` is held;
            // transactions may be writing it, so it is copied with race-defined accesses.
            unsafe { crate::racy::load(address as *const u8, buf) }
        };
        match &self.inner.locks {
            Some(locks) => locks.read(address, end, copy),
            None => {
                copy();
                Ok(())
            }
        }
    }

    /// Read a plain value at `address` (any alignment).
    pub fn read<T: bytemuck::Pod>(&self, address: usize) -> Result<T> {
        let mut value = T::zeroed();
        self.read_bytes(address, bytemuck::bytes_of_mut(&mut value))?;
        Ok(value)
    }
}
