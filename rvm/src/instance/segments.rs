//! Mapping and unmapping segments, and the slots of the log's segment table (the table's
//! entries are claimed and reclaimed in `table`).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use super::Inner;
use super::Rvm;
use crate::device::{Access, DeviceRef, FileDevice};
use crate::error::{Error, Result};
use crate::format::log::SegmentEntry;
use crate::format::segment::SegmentHeader;
use crate::format::Uuid;
use crate::mapping;
use crate::segment::{
    read_header_from, MapOptions, MappedRegion, Placement, Segment, SegmentShared,
};

/// A segment the log knows about (an entry of its segment table).
pub(crate) struct Slot {
    pub(crate) entry: SegmentEntry,
    pub(crate) device: Option<DeviceRef>,
    pub(crate) header: Option<SegmentHeader>,
    pub(crate) mapped: Option<Segment>,
    /// Unmapped after changes: truncate before mapping again so the mapping sees them.
    pub(super) remap_needs_truncate: bool,
}

impl Slot {
    pub(super) fn free(&self) -> bool {
        self.entry.uuid == Uuid::NIL
    }
}

/// A mapped region, as `set_range` looks it up.
#[derive(Clone)]
pub(crate) struct RegionRef {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) slot: u32,
    pub(crate) segment_offset: u64,
    /// Transactions holding ranges in this region; unmapping requires zero.
    pub(crate) pins: Arc<AtomicUsize>,
}

pub(super) fn slot_target(slots: &[Slot], index: u32) -> Option<(DeviceRef, SegmentHeader)> {
    let s = slots.get(index as usize)?;
    Some((s.device.clone()?, s.header.clone()?))
}

impl Rvm {
    /// Map a segment file: each region at the address in its header (or anywhere, per
    /// `options`). Nothing is read up front; pages fault in when touched.
    pub fn map(&self, path: impl AsRef<Path>, options: MapOptions) -> Result<Segment> {
        let path = path.as_ref();
        let name = path.display().to_string();
        // The unlocked probe only learns the UUID, to reuse a device recovery already holds
        // (a second open would find our own lock). `map_segment` reads the header again from
        // the locked device it maps, which is the copy that counts.
        let probe =
            FileDevice::open(path, Access::ReadOnly).map_err(|e| Error::io(&name, "open", e))?;
        let header = read_header_from(&probe)?;
        drop(probe);
        let existing = {
            let slots = self
                .inner
                .segments
                .read()
                .unwrap_or_else(|e| e.into_inner());
            slots
                .iter()
                .find(|s| s.entry.uuid == header.uuid)
                .and_then(|s| s.device.clone())
        };
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
        self.inner.map_segment(device, hint, options)
    }

    /// Map a segment held on a device.
    pub fn map_device(&self, device: DeviceRef, options: MapOptions) -> Result<Segment> {
        let hint = device.name().to_string();
        self.inner.map_segment(device, hint, options)
    }

    /// Unmap a segment. Refused while a transaction holds a range in it. Its committed changes
    /// stay in the log; mapping it again shows them.
    pub fn unmap(&self, segment: &Segment) -> Result<()> {
        self.inner.unmap_segment(segment)
    }

    /// The mapped segments.
    pub fn segments(&self) -> Vec<Segment> {
        let slots = self
            .inner
            .segments
            .read()
            .unwrap_or_else(|e| e.into_inner());
        slots.iter().filter_map(|s| s.mapped.clone()).collect()
    }

    /// Copy mapped memory at `address` into `buf` (the address may be in any mapped segment).
    pub fn read_bytes(&self, address: usize, buf: &mut [u8]) -> Result<()> {
        let seg = self
            .segment_at(address, buf.len())
            .ok_or(Error::NotMapped {
                address: address as u64,
                length: buf.len() as u64,
            })?;
        seg.read_bytes(address, buf)
    }

    /// Read a plain value at `address`.
    pub fn read<T: bytemuck::Pod>(&self, address: usize) -> Result<T> {
        let mut value = T::zeroed();
        self.read_bytes(address, bytemuck::bytes_of_mut(&mut value))?;
        Ok(value)
    }

    /// The mapped segment holding `[address, address+len)`.
    pub fn segment_at(&self, address: usize, len: usize) -> Option<Segment> {
        let slots = self
            .inner
            .segments
            .read()
            .unwrap_or_else(|e| e.into_inner());
        slots
            .iter()
            .filter_map(|s| s.mapped.as_ref())
            .find(|s| s.region_of(address, len).is_some())
            .cloned()
    }
}

impl Inner {
    pub(super) fn map_segment(
        &self,
        device: DeviceRef,
        path_hint: String,
        options: MapOptions,
    ) -> Result<Segment> {
        self.check_failed()?;
        let header = read_header_from(&*device)?;
        let needs_truncate = {
            let slots = self.segments.read().unwrap_or_else(|e| e.into_inner());
            slots
                .iter()
                .any(|s| s.entry.uuid == header.uuid && s.remap_needs_truncate)
        };
        // Reclaiming table entries needs every record applied (see `table`).
        if needs_truncate || self.table_wants_reclaim(header.uuid, &path_hint) {
            self.flush_all()?;
            self.truncate_now(false)?;
        }
        let mut slots = self.segments.write().unwrap_or_else(|e| e.into_inner());
        let index = self.claim_entry(&mut slots, &header, path_hint, device.name())?;
        let mut mapped: Vec<MappedRegion> = Vec::new();
        for (ri, r) in header.regions.iter().enumerate() {
            let want = match options.placement {
                Placement::Fixed => Some(r.address as usize),
                Placement::Anywhere => None,
            };
            match mapping::map_region(&*device, r.offset, r.length as usize, want) {
                Ok(address) => mapped.push(MappedRegion {
                    index: ri,
                    address,
                    length: r.length as usize,
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
                header: header.clone(),
                device: device.clone(),
                regions: mapped.clone(),
                log_index: index as u32,
                mapped: RwLock::new(true),
            }),
        };
        let slot = &mut slots[index];
        slot.device = Some(device);
        slot.header = Some(header);
        slot.mapped = Some(segment.clone());
        slot.remap_needs_truncate = false;
        let mut regions = self.regions.write().unwrap_or_else(|e| e.into_inner());
        for m in &mapped {
            regions.push(RegionRef {
                start: m.address,
                end: m.address + m.length,
                slot: index as u32,
                segment_offset: m.segment_offset,
                pins: Arc::new(AtomicUsize::new(0)),
            });
        }
        regions.sort_by_key(|r| r.start);
        Ok(segment)
    }

    pub(super) fn unmap_segment(&self, segment: &Segment) -> Result<()> {
        let index = segment.inner.log_index;
        let mut slots = self.segments.write().unwrap_or_else(|e| e.into_inner());
        let mut regions = self.regions.write().unwrap_or_else(|e| e.into_inner());
        let mine: Vec<&RegionRef> = regions.iter().filter(|r| r.slot == index).collect();
        let pinned: usize = mine.iter().map(|r| r.pins.load(Ordering::Acquire)).sum();
        if pinned > 0 {
            return Err(Error::Uncommitted {
                what: format!("unmap {}", segment.path()),
                count: pinned,
            });
        }
        let mut flag = segment
            .inner
            .mapped
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if !*flag {
            return Ok(());
        }
        regions.retain(|r| r.slot != index);
        for m in segment.regions() {
            mapping::unmap_region(m.address, m.length);
        }
        *flag = false;
        if let Some(slot) = slots.get_mut(index as usize) {
            slot.mapped = None;
            slot.remap_needs_truncate = true;
        }
        Ok(())
    }
}
