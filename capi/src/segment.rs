//! The segment loader (`rvm_segment.h`) over rvm-rs's own segment format: a segment is a
//! header page (4096 bytes) followed by its regions; loading maps every region at the address
//! its header records, never over an existing mapping (`RVM_EVM_OVERLAP`).

use std::ffi::c_char;
use std::sync::atomic::{AtomicI64, AtomicPtr, Ordering};
use std::sync::Mutex;

use rvm::segment::{self, CreateOptions, RegionSpec};
use rvm::{MapOptions, Rvm, Segment};

use crate::args::{c_path, read_options};
use crate::codes::*;
use crate::state::{enter, guarded, lock};
use crate::types::*;

/// Address of region 0 of the segment loaded last (classic debugging symbol).
#[no_mangle]
pub static rds_startaddr: AtomicPtr<c_char> = AtomicPtr::new(std::ptr::null_mut());
/// Sum of the region lengths of the segment loaded last (classic debugging symbol).
#[no_mangle]
pub static rds_rvmsize: AtomicI64 = AtomicI64::new(0);

/// Segments loaded through this interface (so `rvm_release_segment` can find them).
static LOADED: Mutex<Vec<Segment>> = Mutex::new(Vec::new());

/// Forget every loaded segment (`rvm_terminate`; closing the log unmaps them).
pub fn forget_all() {
    lock(&LOADED).clear();
}

/// Map the segment at `path` at its recorded addresses and remember it.
pub fn load(rvm: &Rvm, path: &std::path::Path) -> Result<Segment, RvmReturn> {
    let options = MapOptions::default().huge_pages(crate::map::huge_pages_asked());
    // SAFETY: the classic contract a C caller takes on (README, "C programs"): a loaded segment
    // file is the program's own and nothing shortens it while it is loaded.
    let seg = unsafe { rvm.map(path, options) }.map_err(|e| rvm_code(&e))?;
    let regions = seg.regions();
    rds_startaddr.store(
        regions.first().map_or(0, |r| r.address) as *mut c_char,
        Ordering::Relaxed,
    );
    rds_rvmsize.store(
        regions.iter().map(|r| r.length as i64).sum(),
        Ordering::Relaxed,
    );
    lock(&LOADED).push(seg.clone());
    Ok(seg)
}

/// A libc-allocated array describing the segment's regions (real file offsets).
pub fn defs_of(seg: &Segment) -> Result<(*mut RvmRegionDef, usize), RvmReturn> {
    let regions = seg.regions();
    let n = regions.len();
    // SAFETY: plain allocation (at least one byte so a success is never NULL).
    let defs = unsafe { libc::malloc((n * std::mem::size_of::<RvmRegionDef>()).max(1)) }
        as *mut RvmRegionDef;
    if defs.is_null() {
        return Err(RVM_ENO_MEMORY);
    }
    for (i, r) in regions.iter().enumerate() {
        let d = RvmRegionDef {
            offset: RvmOffset {
                high: 0,
                low: r.segment_offset as RvmLength,
            },
            length: r.length as RvmLength,
            vmaddr: r.address as *mut c_char,
        };
        // SAFETY: `defs` holds n entries.
        unsafe { defs.add(i).write(d) };
    }
    Ok((defs, n))
}

/// Unmap the loaded segment whose first region is mapped at `address`.
pub fn release(rvm: &Rvm, address: usize) -> Result<(), RvmReturn> {
    let seg = {
        let loaded = lock(&LOADED);
        loaded
            .iter()
            .find(|s| s.regions().first().is_some_and(|r| r.address == address))
            .cloned()
            .ok_or(RVM_ENOT_MAPPED)?
    };
    crate::current_heap::forget_in(&seg);
    rvm.unmap(&seg).map_err(|e| rvm_code(&e))?;
    lock(&LOADED).retain(|s| s.regions().first().is_none_or(|r| r.address != address));
    Ok(())
}

/// Whether a segment at this path is loaded now.
fn is_loaded(path: &std::path::Path) -> bool {
    let Ok(canonical) = std::fs::canonicalize(path) else {
        return false;
    };
    lock(&LOADED)
        .iter()
        .any(|s| std::fs::canonicalize(s.path()).is_ok_and(|p| p == canonical))
}

/// Create (or overwrite) a segment file at `dev` with `nregions` regions. The defs are sorted
/// by `vmaddr` in place; each length is rounded up to a page; the caller's offsets are
/// replaced by the real ones (regions follow the 4096-byte header in address order). A zero
/// `dev_length` means "just large enough". The log is truncated first, so no record for an
/// older segment at this path is left behind. A segment loaded now is refused
/// (`RVM_EOVERLAP`); regions overlapping in memory or with unaligned addresses give
/// `RVM_ERANGE`.
///
/// # Safety
/// `dev` is NULL or a C string; `options` NULL or a valid record; `defs` holds `nregions`
/// writable entries.
#[no_mangle]
pub unsafe extern "C" fn rvm_create_segment(
    dev: *mut c_char,
    dev_length: RvmOffset,
    options: *mut RvmOptions,
    nregions: RvmLength,
    defs: *mut RvmRegionDef,
) -> RvmReturn {
    guarded!(RVM_EINTERNAL, {
        let result = (|| {
            let call = enter()?;
            // SAFETY: the caller's contract.
            let path = unsafe { c_path(dev, RVM_EIO) }?;
            // SAFETY: the caller's contract.
            unsafe { read_options(options) }?;
            let n = nregions as usize;
            if defs.is_null() || n == 0 || n > segment_regions_max() {
                return Err(RVM_EREGION_DEF);
            }
            let rvm = call.rvm()?;
            // SAFETY: `defs` holds n entries (the caller's contract); copied out, not borrowed.
            let mut list: Vec<RvmRegionDef> = (0..n)
                .map(|i| unsafe { std::ptr::read_unaligned(defs.add(i)) })
                .collect();
            list.sort_by_key(|d| d.vmaddr as usize);
            let page = 4096u64;
            let mut specs = Vec::with_capacity(n);
            let mut end_prev = 0u64;
            for d in &list {
                let address = d.vmaddr as u64;
                let length = d.length.div_ceil(page) * page;
                if !address.is_multiple_of(page) || length == 0 || address < end_prev {
                    return Err(RVM_ERANGE);
                }
                end_prev = address.checked_add(length).ok_or(RVM_ERANGE)?;
                specs.push(RegionSpec { length, address });
            }
            if is_loaded(&path) {
                return Err(RVM_EOVERLAP);
            }
            let needed = 4096 + specs.iter().map(|s| s.length).sum::<u64>();
            let length = if dev_length.low == 0 {
                needed
            } else {
                dev_length.low
            };
            let header = segment::layout(length, &specs).map_err(|_| RVM_ERANGE)?;
            rvm.truncate().map_err(|e| rvm_code(&e))?;
            let device = segment::create(
                &path,
                &header,
                CreateOptions {
                    overwrite: true,
                    fallocate: false,
                },
            )
            .map_err(|e| rvm_code(&e))?;
            drop(device);
            for (i, (d, r)) in list.iter_mut().zip(&header.regions).enumerate() {
                d.offset = RvmOffset {
                    high: 0,
                    low: r.offset as RvmLength,
                };
                d.length = r.length as RvmLength;
                // SAFETY: `defs` holds n writable entries.
                unsafe { std::ptr::write_unaligned(defs.add(i), *d) };
            }
            Ok(())
        })();
        result.err().unwrap_or(RVM_SUCCESS)
    })
}

fn segment_regions_max() -> usize {
    rvm::format::segment::REGIONS_MAX
}

/// Map every region of the segment at `dev` at its recorded address; `*defs` gets a
/// `malloc`'ed array of the regions (real file offsets) and `*nregions` its length. An
/// address range already in use gives `RVM_EVM_OVERLAP` and maps nothing. `dev_length` is
/// not needed (the header records the segment's length) and is ignored.
///
/// # Safety
/// `dev` is NULL or a C string; `options` NULL or a valid record; `nregions` and `defs`
/// writable.
#[no_mangle]
pub unsafe extern "C" fn rvm_load_segment(
    dev: *mut c_char,
    _dev_length: RvmOffset,
    options: *mut RvmOptions,
    nregions: *mut libc::c_ulong,
    defs: *mut *mut RvmRegionDef,
) -> RvmReturn {
    guarded!(RVM_EINTERNAL, {
        let result = (|| {
            let call = enter()?;
            // SAFETY: the caller's contract.
            let path = unsafe { c_path(dev, RVM_EIO) }?;
            // SAFETY: the caller's contract.
            unsafe { read_options(options) }?;
            if nregions.is_null() || defs.is_null() {
                return Err(RVM_EREGION_DEF);
            }
            let rvm = call.rvm()?;
            let seg = load(rvm, &path)?;
            let (array, n) = match defs_of(&seg) {
                Ok(v) => v,
                Err(code) => {
                    let _ = release(rvm, seg.regions()[0].address);
                    return Err(code);
                }
            };
            // SAFETY: both checked non-null; writable by the caller's contract.
            unsafe {
                nregions.write_unaligned(n as libc::c_ulong);
                defs.write_unaligned(array);
            }
            Ok(())
        })();
        result.err().unwrap_or(RVM_SUCCESS)
    })
}

/// Unmap a segment loaded with `rvm_load_segment` (found by its first region's address) and
/// free the defs array (`*defs` becomes NULL). Refused with `RVM_EUNCOMMIT` while a
/// transaction holds a range in it.
///
/// # Safety
/// `defs` is NULL or points to a pointer from `rvm_load_segment`.
#[no_mangle]
pub unsafe extern "C" fn rvm_release_segment(
    nregions: libc::c_ulong,
    defs: *mut *mut RvmRegionDef,
) -> RvmReturn {
    guarded!(RVM_EINTERNAL, {
        let result = (|| {
            let call = enter()?;
            if defs.is_null() || nregions == 0 {
                return Err(RVM_EREGION_DEF);
            }
            // SAFETY: non-null; readable by the caller's contract.
            let array = unsafe { defs.read_unaligned() };
            if array.is_null() {
                return Err(RVM_EREGION_DEF);
            }
            // SAFETY: the array from rvm_load_segment holds at least one entry.
            let first = unsafe { array.read_unaligned() };
            release(call.rvm()?, first.vmaddr as usize)?;
            // SAFETY: the array was allocated with malloc by rvm_load_segment.
            unsafe {
                libc::free(array as *mut libc::c_void);
                defs.write_unaligned(std::ptr::null_mut());
            }
            Ok(())
        })();
        result.err().unwrap_or(RVM_SUCCESS)
    })
}
