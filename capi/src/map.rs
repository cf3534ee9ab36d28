//! `rvm_map` and `rvm_unmap`: a region of any file or block device, over the library's
//! plain-file regions (`Rvm::map_file`). The classic geometry (offset rounded down to a page,
//! end rounded up and capped at the end of the file, length 0 meaning to the end) is the
//! library's; this file turns the C record into options, the global `RVM_MAP_PRIVATE` flag and
//! `no_copy` into a mode, and errors into classic codes.

use std::sync::Mutex;

use rvm::{Error, FileMapMode, FileMapOptions, Segment};

use crate::args::{c_path, read_options, read_region};
use crate::codes::*;
use crate::state::{enter, guarded, lock, with_settings};
use crate::types::*;

/// The classic option flag: map regions `MAP_PRIVATE` from the file instead of copying them.
const RVM_MAP_PRIVATE: RvmLength = 8;
/// An rvm-rs option flag (not in the classic library): map regions, and load segments, with
/// huge pages ([`FileMapOptions::huge_pages`], `MapOptions::huge_pages`).
const RVM_MAP_HUGE_PAGES: RvmLength = 16;

/// Whether the options in force ask for huge pages (`RVM_MAP_HUGE_PAGES`). Call it while no
/// lock of the global state is held (as inside `enter`).
pub(crate) fn huge_pages_asked() -> bool {
    with_settings(|s| s.flags & RVM_MAP_HUGE_PAGES != 0).unwrap_or(false)
}

/// Regions mapped through `rvm_map` (so `rvm_unmap` can find them by address).
static MAPPED: Mutex<Vec<Segment>> = Mutex::new(Vec::new());

/// Forget every mapped region (`rvm_terminate`; closing the log unmaps them).
pub fn forget_all() {
    lock(&MAPPED).clear();
}

/// The classic code of a refused map.
fn map_code(e: &Error) -> RvmReturn {
    match e {
        Error::InvalidArgument {
            parameter: "offset" | "length",
            ..
        } => RVM_EOFFSET,
        Error::InvalidArgument {
            parameter: "address",
            ..
        } => RVM_ERANGE,
        // A canonical path the log cannot record: too long, or not UTF-8.
        Error::InvalidArgument {
            parameter: "path", ..
        } => RVM_ENAME_TOO_LONG,
        // The file is held by a region or segment this process has mapped already.
        Error::InUse {
            by_this_process: true,
            ..
        } => RVM_EOVERLAP,
        other => rvm_code(other),
    }
}

/// Map a region of the file `region->data_dev`: from `offset` (rounded down to a page) for
/// `length` bytes (0: to the end of the file; the end is rounded up to a page and capped at the
/// end of the file), at `vmaddr` (page-aligned and not mapped yet) or, with `vmaddr` NULL, where
/// the library chooses. With the global option `RVM_MAP_PRIVATE` the region is mapped
/// copy-on-write from the file; otherwise it is read into memory, or left zero with `no_copy`.
/// On success the record gets the rounded offset, the address and the mapped length.
///
/// Codes: `RVM_EREGION` (NULL or not a region), `RVM_EPAGER`, option errors, `RVM_ELOG` (no
/// log), `RVM_EOFFSET` (offset not inside the file), `RVM_ERANGE` (`vmaddr` not page-aligned),
/// `RVM_EVM_OVERLAP` (`vmaddr` range in use), `RVM_EOVERLAP` (it overlaps a mapped range of the same file),
/// `RVM_ENAME_TOO_LONG`, `RVM_EIO`, `RVM_ENO_MEMORY` (the log's segment table is full).
///
/// # Safety
/// `region` and `options` are NULL or valid records; `data_dev` NULL or a C string.
#[no_mangle]
pub unsafe extern "C" fn rvm_map(region: *mut RvmRegion, options: *mut RvmOptions) -> RvmReturn {
    guarded!(RVM_EINTERNAL, {
        let result: Result<(), RvmReturn> = (|| {
            let first = enter()?;
            // SAFETY: the caller's contract.
            let r = unsafe { read_region(region) }?;
            // SAFETY: the caller's contract.
            let path = unsafe { c_path(r.data_dev, RVM_ENOT_MAPPED) }?;
            // SAFETY: the caller's contract.
            if let Some(o) = unsafe { read_options(options) }? {
                if !o.pager.is_null() {
                    return Err(RVM_EPAGER);
                }
                // As classic: options given to rvm_map are applied as by rvm_set_options.
                // SAFETY: `log_dev` comes from the caller's valid record.
                unsafe { crate::options::apply_options(&o) }?;
            }
            // The options may have opened the log: look at the instance again.
            drop(first);
            let call = enter()?;
            let rvm = call.rvm()?;
            if r.offset.high != 0 {
                return Err(RVM_EOFFSET);
            }
            let flags = with_settings(|s| s.flags).unwrap_or(0);
            let mode = if flags & RVM_MAP_PRIVATE != 0 {
                FileMapMode::Private
            } else if r.no_copy != RVM_FALSE {
                FileMapMode::Zeroed
            } else {
                FileMapMode::Copy
            };
            let options = FileMapOptions {
                offset: r.offset.low,
                length: r.length,
                address: (!r.vmaddr.is_null()).then_some(r.vmaddr as usize),
                mode,
                clamp_length: true,
                huge_pages: flags & RVM_MAP_HUGE_PAGES != 0,
            };
            // SAFETY: the classic contract a C caller takes on (README, "C programs"): a file
            // it maps is its own, and nothing shortens it while it is mapped (in private mode;
            // the other modes copy it and cannot fault).
            let seg = unsafe { rvm.map_file(&path, options) }.map_err(|e| map_code(&e))?;
            let m = seg.regions()[0];
            let done = RvmRegion {
                offset: RvmOffset {
                    high: 0,
                    low: m.segment_offset as RvmLength,
                },
                vmaddr: m.address as *mut std::ffi::c_char,
                length: m.length as RvmLength,
                ..r
            };
            // SAFETY: non-null and writable by the caller's contract.
            unsafe { region.write_unaligned(done) };
            lock(&MAPPED).push(seg);
            Ok(())
        })();
        result.err().unwrap_or(RVM_SUCCESS)
    })
}

/// Unmap a region mapped with `rvm_map`, found by `vmaddr`; `length` must be the mapped
/// length. The memory is released (unlike the classic library, which left it to the caller);
/// committed changes stay in the log and reach the file at the next truncation.
///
/// Codes: `RVM_EREGION`, `RVM_ENOT_MAPPED` (no region mapped there), `RVM_ERANGE` (inside a
/// region, but not its address and length), `RVM_EUNCOMMIT` (a transaction holds a range in
/// it).
///
/// # Safety
/// `region` is NULL or a valid record.
#[no_mangle]
pub unsafe extern "C" fn rvm_unmap(region: *mut RvmRegion) -> RvmReturn {
    guarded!(RVM_EINTERNAL, {
        let result: Result<(), RvmReturn> = (|| {
            let call = enter()?;
            // SAFETY: the caller's contract.
            let r = unsafe { read_region(region) }?;
            let rvm = call.rvm()?;
            let (address, length) = (r.vmaddr as usize, r.length as usize);
            let seg = {
                let mapped = lock(&MAPPED);
                let seg = mapped
                    .iter()
                    .find(|s| s.region_of(address, length.max(1)).is_some())
                    .cloned()
                    .ok_or(RVM_ENOT_MAPPED)?;
                let m = seg.regions()[0];
                if m.address != address || m.length != length {
                    return Err(RVM_ERANGE);
                }
                seg
            };
            rvm.unmap(&seg).map_err(|e| rvm_code(&e))?;
            lock(&MAPPED).retain(|s| s.regions()[0].address != address);
            Ok(())
        })();
        result.err().unwrap_or(RVM_SUCCESS)
    })
}
