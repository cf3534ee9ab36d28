//! Mapping and unmapping segments, and the slots of the log's segment table (the table's
//! entries are claimed and reclaimed in `table`).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use super::Inner;
use super::Rvm;
use crate::device::{Access, DeviceRef, FileDevice};
use crate::error::{Error, Result};
use crate::format::log::{SegmentEntry, SegmentKind};
use crate::format::segment::SegmentHeader;
use crate::format::Uuid;
use crate::mapping::{self, Backing};
use crate::segment::{
    read_header_from, MapOptions, MappedRegion, Placement, Segment, SegmentShared,
};
use crate::sync::{lock, read_lock, write_lock};

/// A segment the log knows about (an entry of its segment table).
pub(crate) struct Slot {
    pub(crate) entry: SegmentEntry,
    pub(crate) device: Option<DeviceRef>,
    pub(crate) header: Option<SegmentHeader>,
    /// The mappings of this entry: at most one for a segment; for a plain file, one per
    /// mapped range (ranges of one file never overlap).
    pub(crate) mapped: Vec<Segment>,
    /// Unmapped after changes: truncate before mapping again so the mapping sees them.
    pub(super) remap_needs_truncate: bool,
}

impl Slot {
    pub(super) fn free(&self) -> bool {
        self.entry.uuid == Uuid::NIL
    }

    /// Whether anything of this entry is mapped now.
    pub(super) fn is_mapped(&self) -> bool {
        !self.mapped.is_empty()
    }

    /// Whether this entry names the segment (or plain file) of this kind and identity.
    pub(super) fn names(&self, kind: SegmentKind, uuid: Uuid) -> bool {
        !self.free() && self.entry.kind == kind && self.entry.uuid == uuid
    }
}

/// A mapped region, as `set_range` looks it up.
#[derive(Clone)]
pub(crate) struct RegionRef {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) slot: u32,
    pub(crate) segment_offset: u64,
    /// Transactions holding ranges in this region; unmapping requires none.
    pub(crate) pin: Arc<PinWord>,
}

/// The pin count of a mapped region and whether it is retired (being or already unmapped),
/// in one atomic word, so that pinning and retiring need no lock between them: a transaction
/// pins with one `fetch_add` and gives up if the region was retired; an unmap retires only a
/// count of zero (`compare_exchange(0, RETIRED)`). Both are read-modify-writes of the same
/// word, so exactly one of two racing calls wins: either the pin comes first and the unmap
/// sees it and is refused, or the unmap comes first and the pin sees `RETIRED` and touches
/// nothing. A region may therefore be pinned again through a description kept from an
/// earlier pin (`crate::tx::RegionHandle`: a thread's recent region, the RDS heap's own
/// region) without the region table's lock: the `Arc` keeps the word alive after the region
/// is gone, and the retired bit says so for ever.
pub(crate) struct PinWord(AtomicUsize);

/// The retired bit of [`PinWord`]; the bits below count the pins.
const RETIRED: usize = 1 << (usize::BITS - 1);

impl PinWord {
    pub(crate) fn new() -> PinWord {
        PinWord(AtomicUsize::new(0))
    }

    /// Pin the region unless it is retired. `Acquire` pairs with the `Release` of the unpin
    /// that preceded an unmap's retiring: nothing of the mapping is used before the pin.
    #[inline]
    pub(crate) fn try_pin(&self) -> bool {
        let before = self.0.fetch_add(1, Ordering::Acquire);
        if before & RETIRED != 0 {
            self.0.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Drop a pin taken by [`PinWord::try_pin`]. `Release`: every access the transaction made
    /// to the region happens before an unmap that sees the count at zero.
    #[inline]
    pub(crate) fn unpin(&self) {
        self.0.fetch_sub(1, Ordering::Release);
    }

    /// The number of pins now.
    pub(super) fn count(&self) -> usize {
        self.0.load(Ordering::Acquire) & !RETIRED
    }

    /// Retire the region if nobody pins it; false if somebody does.
    fn try_retire(&self) -> bool {
        self.0
            .compare_exchange(0, RETIRED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Undo [`PinWord::try_retire`] (another region of the same unmap is pinned).
    fn unretire(&self) {
        self.0.fetch_and(!RETIRED, Ordering::AcqRel);
    }

    /// Retire whatever the count (at close: a pin left can only be a leaked transaction's,
    /// which never uses it again).
    fn retire(&self) {
        self.0.fetch_or(RETIRED, Ordering::AcqRel);
    }
}

impl Inner {
    /// Find the mapped region holding `[address, address+length)` in the region table and
    /// pin it ([`PinWord::try_pin`]); the caller owns the pin and drops it with
    /// [`PinWord::unpin`] through the returned `pin`.
    ///
    /// # Errors
    /// [`Error::NotMapped`] unless the bytes lie inside one mapped region. A region in the
    /// table is retired only while an unmap that holds the table's write lock runs, so the
    /// pin fails only for a region unmapped meanwhile.
    pub(crate) fn pin_region(&self, address: usize, length: usize) -> Result<RegionRef> {
        let regions = read_lock(&self.regions);
        let i = regions.partition_point(|r| r.start <= address);
        i.checked_sub(1)
            .map(|i| &regions[i])
            .filter(|r| address.checked_add(length).is_some_and(|e| e <= r.end))
            .filter(|r| r.pin.try_pin())
            .cloned()
            .ok_or(Error::NotMapped {
                address: address as u64,
                length: length as u64,
            })
    }
}

pub(super) fn slot_target(slots: &[Slot], index: u32) -> Option<(DeviceRef, SegmentHeader)> {
    let s = slots.get(index as usize)?;
    Some((s.device.clone()?, s.header.clone()?))
}

impl Rvm {
    /// Map a segment file: each region at the address in its header (or anywhere, per
    /// `options`). Nothing is read up front; pages fault in when touched, or are made present
    /// by a background thread with [`MapOptions::warm_up`]. With [`MapOptions::copy`] the
    /// regions' data is read into memory instead, at once.
    ///
    /// # Safety
    ///
    /// The regions are mapped from the file (`MAP_PRIVATE`), so a page of the file that is
    /// not in memory yet is read when first touched. If the file is shortened meanwhile, that
    /// touch finds no data and the kernel kills the process with SIGBUS, which no check in the
    /// library can prevent (the same hazard as `memmap2::Mmap::map` and LMDB's environments).
    /// The caller must therefore ensure that **nobody shortens (truncates) the segment file
    /// while it is mapped** by this instance, that is until [`Rvm::unmap`], [`Rvm::close`] or
    /// the instance is dropped: no other handle of this process (`std::fs::File::set_len`,
    /// ...), no other process. The library holds an exclusive `flock` on the file, which keeps
    /// other rvm instances and the rvm tools away, but not programs that ignore it. Growing
    /// the file, or writing it, is harmless for soundness. The library itself never shortens
    /// a mapped segment. (With [`MapOptions::copy`] the file is not mapped, so shortening it
    /// cannot raise SIGBUS; the contract stays the same for both modes.)
    ///
    /// Holes of a sparse segment file of 64 KiB and more are mapped as anonymous memory, so
    /// touching them never asks the file system for a page. On tmpfs (which, unlike disk file
    /// systems, allocates a page when a hole is first touched through a mapping) a smaller hole
    /// touched while the file system is full also raises SIGBUS; keep segments on tmpfs off
    /// full file systems, or allocate them (`rdsinit --fallocate`).
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be opened or read; [`Error::BadSegment`] /
    /// [`Error::SegmentVersion`] for a damaged or foreign header; [`Error::AlreadyMapped`];
    /// [`Error::InUse`] when another process or handle holds the file; [`Error::TooManySegments`];
    /// [`Error::AddressInUse`] when a region's fixed address range is occupied in this
    /// process.
    pub unsafe fn map(&self, path: impl AsRef<Path>, options: MapOptions) -> Result<Segment> {
        let path = path.as_ref();
        let name = path.display().to_string();
        // The unlocked probe only learns the UUID, to reuse a device recovery already holds
        // (a second open would find our own lock). `map_segment` reads the header again from
        // the locked device it maps, which is the copy that counts.
        let probe =
            FileDevice::open(path, Access::ReadOnly).map_err(|e| Error::io(&name, "open", e))?;
        let header = read_header_from(&probe)?;
        drop(probe);
        let existing = self.inner.held_device(SegmentKind::Segment, header.uuid);
        let device: DeviceRef = match existing {
            Some(d) => d,
            None => Arc::new(
                FileDevice::open(path, Access::ReadWrite)
                    .map_err(|e| Error::io(&name, "open", e))?,
            ),
        };
        let hint = std::fs::canonicalize(path)
            .map(|p| p.display().to_string())
            .unwrap_or(name);
        // SAFETY: forwarded from this function's contract.
        unsafe { self.inner.map_segment(device, hint, options) }
    }

    /// Map a segment file in copy mode ([`MapOptions::copy`], whatever `options` says of it):
    /// its regions' data is read into memory of the process's own now, and the file is never
    /// mapped. That takes away the one hazard that makes [`Rvm::map`] `unsafe`: whatever
    /// anyone does to the file afterwards (shortening it included), touching the regions
    /// cannot fault, so this call is safe. The cost is the read: see [`MapOptions::copy`].
    ///
    /// # Errors
    /// As for [`Rvm::map`]; a file shortened while it is being read makes the map fail
    /// ([`Error::Io`]) and leaves nothing mapped.
    pub fn map_copy(&self, path: impl AsRef<Path>, options: MapOptions) -> Result<Segment> {
        let options = MapOptions {
            copy: true,
            ..options
        };
        // SAFETY: in copy mode every region is anonymous memory filled with `pread` (the
        // file's data extents; holes stay zero memory), never a mapping of the file, so no
        // change to the file can make a touch of a region raise SIGBUS: `map`'s contract
        // (nobody shortens the mapped file) protects nothing here. Everything else `map` does
        // is safe for any file: headers and region tables are checked before use, and fixed
        // addresses are taken with MAP_FIXED_NOREPLACE, which never replaces a mapping.
        unsafe { self.map(path, options) }
    }

    /// Map a segment held on a device. A device without a mappable descriptor (such as
    /// [`crate::device::MemDevice`]) is read into anonymous memory; one with a descriptor
    /// ([`Device::mappable_fd`](crate::device::Device::mappable_fd)) is mapped from it.
    ///
    /// # Safety
    ///
    /// As for [`Rvm::map`]: if the device lends a descriptor, the file it names must not be
    /// shortened by anyone while the segment is mapped by this instance.
    ///
    /// # Errors
    /// As for [`Rvm::map`].
    pub unsafe fn map_device(&self, device: DeviceRef, options: MapOptions) -> Result<Segment> {
        let hint = device.name().to_string();
        // SAFETY: forwarded from this function's contract.
        unsafe { self.inner.map_segment(device, hint, options) }
    }

    /// Unmap a segment. Refused while a transaction holds a range in it, and with
    /// [`Error::ForeignSegment`] when another instance mapped it. Its committed changes stay
    /// in the log; mapping it again shows them. Unmapping a segment already unmapped does
    /// nothing.
    ///
    /// Waits only for reads of the segment in progress (they hold it mapped while they copy).
    ///
    /// # Errors
    /// [`Error::Uncommitted`] while a transaction holds a range in the segment;
    /// [`Error::ForeignSegment`] for a segment another instance mapped.
    pub fn unmap(&self, segment: &Segment) -> Result<()> {
        self.inner.unmap_segment(segment)
    }

    /// The mapped segments.
    pub fn segments(&self) -> Vec<Segment> {
        let slots = read_lock(&self.inner.segments);
        slots
            .iter()
            .flat_map(|s| s.mapped.iter().cloned())
            .collect()
    }

    /// Copy mapped memory at `address` into `buf` (the address may be in any mapped segment).
    /// A copy, never a reference; with isolation it waits for other threads' transactions
    /// holding the bytes, as [`Segment::read_bytes`] does.
    ///
    /// # Errors
    /// [`Error::NotMapped`] unless the whole range lies in one mapped region; with isolation,
    /// [`Error::LockTimeout`] after waiting
    /// [`Options::lock_timeout`](crate::Options::lock_timeout).
    pub fn read_bytes(&self, address: usize, buf: &mut [u8]) -> Result<()> {
        let seg = self
            .segment_at(address, buf.len())
            .ok_or(Error::NotMapped {
                address: address as u64,
                length: buf.len() as u64,
            })?;
        seg.read_bytes(address, buf)
    }

    /// Read a plain value at `address` (any alignment; see [`Rvm::read_bytes`]).
    ///
    /// # Errors
    /// As for [`Rvm::read_bytes`].
    pub fn read<T: bytemuck::Pod>(&self, address: usize) -> Result<T> {
        let mut value = T::zeroed();
        self.read_bytes(address, bytemuck::bytes_of_mut(&mut value))?;
        Ok(value)
    }

    /// The mapped segment holding `[address, address+len)`.
    pub fn segment_at(&self, address: usize, len: usize) -> Option<Segment> {
        let slots = read_lock(&self.inner.segments);
        slots
            .iter()
            .flat_map(|s| s.mapped.iter())
            .find(|s| s.region_of(address, len).is_some())
            .cloned()
    }
}

/// One region to place: where it starts in the segment (or file), its length, the address
/// wanted (None: anywhere) and where its memory comes from.
pub(super) struct PlannedRegion {
    pub(super) index: usize,
    pub(super) offset: u64,
    pub(super) length: usize,
    pub(super) address: Option<usize>,
    pub(super) backing: Backing,
}

/// Everything `map_planned` needs: the device, what the table records (kind, and the header's
/// UUID and length), the header ranges are checked against, the path, and the regions.
pub(super) struct MapPlan {
    pub(super) kind: SegmentKind,
    pub(super) device: DeviceRef,
    pub(super) header: SegmentHeader,
    pub(super) path_hint: String,
    pub(super) regions: Vec<PlannedRegion>,
    /// Start a warm-up thread over the mapped regions ([`MapOptions::warm_up`]).
    pub(super) warm_up: bool,
    /// Advise the regions' anonymous parts to use huge pages ([`MapOptions::huge_pages`]).
    pub(super) huge_pages: bool,
}

impl Inner {
    /// The open device of the table entry naming `kind` and `uuid`, if the instance holds one
    /// (recovery or an earlier mapping opened and locked it): mapping uses it again, since a
    /// second open of the file would find the instance's own lock.
    pub(super) fn held_device(&self, kind: SegmentKind, uuid: Uuid) -> Option<DeviceRef> {
        let slots = read_lock(&self.segments);
        slots
            .iter()
            .find(|s| s.names(kind, uuid))
            .and_then(|s| s.device.clone())
    }

    /// # Safety
    /// As for [`Rvm::map_device`].
    pub(super) unsafe fn map_segment(
        &self,
        device: DeviceRef,
        path_hint: String,
        options: MapOptions,
    ) -> Result<Segment> {
        self.check_failed()?;
        let header = read_header_from(&*device)?;
        let regions = header
            .regions
            .iter()
            .enumerate()
            .map(|(index, r)| PlannedRegion {
                index,
                offset: r.offset,
                length: r.length as usize,
                address: match options.placement {
                    Placement::Fixed => Some(r.address as usize),
                    Placement::Anywhere => None,
                },
                backing: if options.copy {
                    Backing::Copy
                } else {
                    Backing::File
                },
            })
            .collect();
        let plan = MapPlan {
            kind: SegmentKind::Segment,
            device,
            header,
            path_hint,
            regions,
            warm_up: options.warm_up,
            huge_pages: options.huge_pages,
        };
        // SAFETY: `read_header_from` checked the device is as long as the segment, so it
        // holds every region; the rest is this function's contract.
        unsafe { self.map_planned(plan) }
    }

    /// Claim the table entry and map the regions of `plan`.
    ///
    /// # Safety
    /// The device holds every planned region, and (for [`Backing::File`]) its file is not
    /// shortened while they are mapped: the contract of `Rvm::map`, `Rvm::map_device` and
    /// `Rvm::map_file`.
    pub(super) unsafe fn map_planned(&self, plan: MapPlan) -> Result<Segment> {
        self.check_failed()?;
        let MapPlan {
            kind,
            device,
            header,
            path_hint,
            regions: planned,
            warm_up,
            huge_pages,
        } = plan;
        let needs_truncate = {
            let slots = read_lock(&self.segments);
            slots
                .iter()
                .any(|s| s.names(kind, header.uuid) && s.remap_needs_truncate)
        };
        // Reclaiming table entries needs every record applied (see `table`).
        if needs_truncate || self.table_wants_reclaim(kind, header.uuid, &path_hint) {
            self.flush_all()?;
            self.truncate_now(false)?;
        }
        let mut slots = write_lock(&self.segments);
        if kind == SegmentKind::PlainFile {
            // Several ranges of one file may be mapped, never two that overlap.
            let mapped = slots
                .iter()
                .filter(|s| s.names(kind, header.uuid))
                .flat_map(|s| s.mapped.iter())
                .flat_map(|m| m.regions().iter());
            for m in mapped {
                let (start, end) = (m.segment_offset, m.segment_offset + m.length as u64);
                if planned
                    .iter()
                    .any(|r| r.offset < end && start < r.offset + r.length as u64)
                {
                    return Err(Error::AlreadyMapped {
                        path: format!(
                            "{} (bytes {start}..{end} of the file are mapped)",
                            device.name()
                        ),
                    });
                }
            }
        }
        let index = self.claim_entry(&mut slots, kind, &header, path_hint, device.name())?;
        let mut mapped: Vec<MappedRegion> = Vec::new();
        for r in &planned {
            // SAFETY: the device holds the region and is not shortened while it is mapped:
            // the contract of this function.
            let placed = unsafe {
                mapping::map_region(
                    &*device, r.offset, r.length, r.address, r.backing, huge_pages,
                )
            };
            match placed {
                Ok(address) => mapped.push(MappedRegion {
                    index: r.index,
                    address,
                    length: r.length,
                    segment_offset: r.offset,
                }),
                Err(e) => {
                    for m in &mapped {
                        mapping::unmap_region(m.address, m.length);
                    }
                    return Err(e);
                }
            }
        }
        let segment = Segment {
            inner: Arc::new(SegmentShared {
                kind,
                header: header.clone(),
                device: device.clone(),
                regions: mapped.clone(),
                log_index: index as u32,
                mapped: RwLock::new(true),
                instance: self.id,
                instance_name: self.log_name.clone(),
                locks: self.locks.clone(),
                lock_timeout: self.options.lock_timeout,
                warm_up: std::sync::Mutex::new(None),
            }),
        };
        if warm_up {
            let thread = crate::warm_up::start(&segment.inner);
            *lock(&segment.inner.warm_up) = thread;
        }
        let slot = &mut slots[index];
        slot.device = Some(device);
        slot.header = Some(header);
        slot.mapped.push(segment.clone());
        slot.remap_needs_truncate = false;
        let mut regions = write_lock(&self.regions);
        for m in &mapped {
            regions.push(RegionRef {
                start: m.address,
                end: m.address + m.length,
                slot: index as u32,
                segment_offset: m.segment_offset,
                pin: Arc::new(PinWord::new()),
            });
        }
        regions.sort_by_key(|r| r.start);
        Ok(segment)
    }

    pub(super) fn unmap_segment(&self, segment: &Segment) -> Result<()> {
        if segment.inner.instance != self.id {
            return Err(Error::ForeignSegment {
                path: segment.path().to_string(),
                owner: segment.inner.instance_name.clone(),
                this: self.log_name.clone(),
            });
        }
        self.unmap_own_segment(segment, false)
    }

    /// At close: unmap even if a leaked (`mem::forget`) transaction still pins a region.
    /// Sound because no transaction can be alive then (each borrows the instance), so nothing
    /// will ever use the pin.
    pub(super) fn unmap_segment_at_close(&self, segment: &Segment) {
        let _ = self.unmap_own_segment(segment, true);
    }

    fn unmap_own_segment(&self, segment: &Segment, ignore_pins: bool) -> Result<()> {
        let index = segment.inner.log_index;
        let mut slots = write_lock(&self.segments);
        let mut regions = write_lock(&self.regions);
        let current = slots.get(index as usize).is_some_and(|s| {
            s.mapped
                .iter()
                .any(|m| Arc::ptr_eq(&m.inner, &segment.inner))
        });
        if !current {
            // A stale handle (unmapped before, maybe mapped again since): nothing to do.
            return Ok(());
        }
        // This mapping's regions (a plain file's entry may have other mappings).
        let is_mine = |r: &RegionRef| {
            r.slot == index && segment.regions().iter().any(|m| m.address == r.start)
        };
        let mine: Vec<&RegionRef> = regions.iter().filter(|r| is_mine(r)).collect();
        // Retire every region of the mapping, or none: a transaction may pin one through its
        // cached description at any moment (without the lock we hold), so the count is
        // checked by the retiring itself, not by a load before it.
        if ignore_pins {
            mine.iter().for_each(|r| r.pin.retire());
        } else if let Some(busy) = mine.iter().position(|r| !r.pin.try_retire()) {
            mine[..busy].iter().for_each(|r| r.pin.unretire());
            return Err(Error::Uncommitted {
                what: format!("unmap {}", segment.path()),
                count: mine.iter().map(|r| r.pin.count()).sum::<usize>().max(1),
            });
        }
        let mut flag = write_lock(&segment.inner.mapped);
        if !*flag {
            return Ok(());
        }
        regions.retain(|r| !is_mine(r));
        for m in segment.regions() {
            mapping::unmap_region(m.address, m.length);
        }
        *flag = false;
        drop(flag);
        if let Some(slot) = slots.get_mut(index as usize) {
            slot.mapped
                .retain(|m| !Arc::ptr_eq(&m.inner, &segment.inner));
            slot.remap_needs_truncate = true;
        }
        // The warm-up thread sees the flag at its next chunk and ends; it takes no other lock.
        let warm_up = lock(&segment.inner.warm_up).take();
        if let Some(thread) = warm_up {
            let _ = thread.join();
        }
        Ok(())
    }
}
