//! Reading a C caller's arguments: paths, option and region records.

use std::ffi::{c_char, CStr};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::codes::*;
use crate::types::*;

/// Longest device name accepted, terminating NUL included (Linux `MAXPATHLEN`).
pub const PATH_BYTES_MAX: usize = 4096;

/// A C path argument: `Err(missing)` for NULL, `RVM_ENAME_TOO_LONG` past `PATH_BYTES_MAX`.
///
/// # Safety
/// A non-null `name` must point to a NUL-terminated string.
pub unsafe fn c_path(name: *const c_char, missing: RvmReturn) -> Result<PathBuf, RvmReturn> {
    if name.is_null() {
        return Err(missing);
    }
    // SAFETY: the caller guarantees a NUL-terminated string.
    let bytes = unsafe { CStr::from_ptr(name) }.to_bytes();
    if bytes.len() >= PATH_BYTES_MAX {
        return Err(RVM_ENAME_TOO_LONG);
    }
    if bytes.is_empty() {
        return Err(missing);
    }
    Ok(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
}

/// Read an options record: `None` for NULL, `RVM_EOPTIONS` for a record without the id.
///
/// # Safety
/// A non-null `options` must point to a readable `rvm_options_t`.
pub unsafe fn read_options(options: *const RvmOptions) -> Result<Option<RvmOptions>, RvmReturn> {
    if options.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller guarantees a readable record (possibly unaligned).
    let o = unsafe { std::ptr::read_unaligned(options) };
    if o.struct_id != RVM_OPTIONS_ID {
        return Err(RVM_EOPTIONS);
    }
    Ok(Some(o))
}

/// Read a region record: `RVM_EREGION` for NULL or a record without the id.
///
/// # Safety
/// A non-null `region` must point to a readable `rvm_region_t`.
pub unsafe fn read_region(region: *const RvmRegion) -> Result<RvmRegion, RvmReturn> {
    if region.is_null() {
        return Err(RVM_EREGION);
    }
    // SAFETY: the caller guarantees a readable record (possibly unaligned).
    let r = unsafe { std::ptr::read_unaligned(region) };
    if r.struct_id != RVM_REGION_ID {
        return Err(RVM_EREGION);
    }
    Ok(r)
}
