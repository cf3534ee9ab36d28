//! `rvm_initialize`, `rvm_terminate`, options, log creation, `rvm_query`, flush and truncate.

use std::ffi::{c_char, c_long, CStr};

use rvm::Rvm;

use crate::args::{c_path, read_options, read_region, PATH_BYTES_MAX};
use crate::codes::*;
use crate::options::apply_options;
use crate::state::{self, enter, guarded, Phase, Settings};
use crate::types::*;

/// Start RVM. The version must be `RVM_VERSION`; a second call while running succeeds and
/// changes nothing; after `rvm_terminate` it returns `RVM_EINIT`. Without `log_dev` the
/// instance runs without a log until `rvm_set_options` (or `rvm_create_log` then
/// `rvm_set_options`) supplies one.
///
/// # Safety
/// `version` and `options` are NULL or valid C objects.
#[no_mangle]
pub unsafe extern "C" fn rvm_initialize(
    version: *const c_char,
    options: *mut RvmOptions,
) -> RvmReturn {
    guarded!(RVM_EINTERNAL, {
        // SAFETY: a non-null version is a C string (the caller's contract).
        if version.is_null() || unsafe { CStr::from_ptr(version) }.to_bytes() != RVM_VERSION {
            return RVM_EVERSION_SKEW;
        }
        // SAFETY: the caller's contract.
        let o = match unsafe { read_options(options) } {
            Ok(o) => o,
            Err(code) => return code,
        };
        {
            let mut g = state::global();
            match g.phase {
                Phase::Running { .. } => return RVM_SUCCESS,
                Phase::Terminated => return RVM_EINIT,
                Phase::Uninitialized => {}
            }
            g.phase = Phase::Running {
                rvm: None,
                log_path: None,
                settings: Settings {
                    max_read_len: MAX_READ_LEN,
                    recovery_buf_len: RECOVERY_BUF_LEN,
                    ..Settings::default()
                },
            };
            state::publish(&g);
        }
        let Some(o) = o else { return RVM_SUCCESS };
        let result = (|| {
            if o.create_log_file == RVM_TRUE {
                let mut size = o.create_log_size;
                // SAFETY: `options` is the caller's valid record.
                let rc = unsafe { rvm_create_log(options, &mut size, o.create_log_mode) };
                if rc != RVM_SUCCESS {
                    return Err(rc);
                }
            }
            // SAFETY: log_dev comes from the caller's valid record.
            unsafe { apply_options(&o) }
        })();
        match result {
            Ok(()) => RVM_SUCCESS,
            Err(code) => {
                // A failed start leaves RVM uninitialized, so the caller may retry.
                let mut g = state::global();
                if let Phase::Running { rvm: None, .. } = g.phase {
                    g.phase = Phase::Uninitialized;
                    state::publish(&g);
                }
                code
            }
        }
    })
}

/// Change options (and open the first log). Same processing as `rvm_initialize`.
///
/// # Safety
/// `options` is NULL or a valid record.
#[no_mangle]
pub unsafe extern "C" fn rvm_set_options(options: *mut RvmOptions) -> RvmReturn {
    guarded!(RVM_EINTERNAL, {
        let _call = match enter() {
            Ok(c) => c,
            Err(code) => return code,
        };
        // SAFETY: the caller's contract.
        match unsafe { read_options(options) } {
            Err(code) => code,
            Ok(None) => RVM_EOPTIONS,
            // SAFETY: log_dev comes from the caller's valid record.
            Ok(Some(o)) => match unsafe { apply_options(&o) } {
                Ok(()) => RVM_SUCCESS,
                Err(code) => code,
            },
        }
    })
}

/// Shut down: refused with `RVM_EUNCOMMIT` while a transaction is open. Flushes queued
/// commits, marks the log closed and unmaps every segment. RVM cannot be started again in
/// this process.
#[no_mangle]
pub extern "C" fn rvm_terminate() -> RvmReturn {
    guarded!(RVM_EINTERNAL, {
        if !matches!(state::global().phase, Phase::Running { .. }) {
            return RVM_EINIT;
        }
        if crate::tids::open_count() > 0 {
            return RVM_EUNCOMMIT;
        }
        let taken = state::exclusive(crate::tids::any_busy, |g| {
            if !matches!(g.phase, Phase::Running { .. }) {
                return Err(RVM_EINIT);
            }
            // Checked again with every call finished: one may have begun a transaction.
            if crate::tids::open_count() > 0 {
                return Err(RVM_EUNCOMMIT);
            }
            // Free slots keep their last transaction, which borrows the instance.
            crate::tids::drop_kept();
            match std::mem::replace(&mut g.phase, Phase::Terminated) {
                Phase::Running { rvm, .. } => Ok(rvm),
                _ => Ok(None),
            }
        });
        let rvm = match taken {
            Ok(r) => r,
            Err(code) => return code,
        };
        crate::current_heap::forget();
        crate::segment::forget_all();
        crate::map::forget_all();
        match rvm {
            None => RVM_SUCCESS,
            Some(r) => {
                // SAFETY: `r` came from `Box::leak` in `apply_options`. The phase is now
                // Terminated, so no new call can obtain it; no call is running and no
                // transaction (the only other holder of a borrow) is open, so this is the
                // last reference.
                let owned = unsafe { Box::from_raw(r as *const Rvm as *mut Rvm) };
                match owned.close() {
                    Ok(()) => RVM_SUCCESS,
                    Err(e) => crate::codes::rvm_code(&e),
                }
            }
        }
    })
}

/// Create a log file (which must not exist) with a record area of `log_len` bytes: rounded
/// down to 512, and up to rvm-rs's minimum (64 KiB) when smaller. `mode` sets the file's
/// permission bits (0: 0600).
///
/// # Safety
/// `options` and `log_len` are NULL or valid records.
#[no_mangle]
pub unsafe extern "C" fn rvm_create_log(
    options: *mut RvmOptions,
    log_len: *mut RvmOffset,
    mode: c_long,
) -> RvmReturn {
    guarded!(RVM_EINTERNAL, {
        // SAFETY: the caller's contract.
        let o = match unsafe { read_options(options) } {
            Ok(Some(o)) => o,
            Ok(None) => return RVM_EOPTIONS,
            Err(code) => return code,
        };
        // SAFETY: log_dev comes from the caller's valid record.
        let path = match unsafe { c_path(o.log_dev, RVM_EOPTIONS) } {
            Ok(p) => p,
            Err(code) => return code,
        };
        if log_len.is_null() {
            return RVM_EOFFSET;
        }
        // SAFETY: non-null and valid by the caller's contract.
        let len = unsafe { std::ptr::read_unaligned(log_len) };
        if len.high != 0 {
            return RVM_ETOO_BIG;
        }
        let area = (len.low as u64 / 512 * 512).max(LOG_AREA_MIN_BYTES);
        if std::fs::symlink_metadata(&path).is_ok() {
            return RVM_ELOG;
        }
        if let Err(e) = Rvm::create_log(&path, area) {
            return crate::codes::rvm_code(&e);
        }
        if mode != 0 {
            use std::os::unix::fs::PermissionsExt;
            let perms = std::fs::Permissions::from_mode((mode as u32) & 0o7777);
            if std::fs::set_permissions(&path, perms).is_err() {
                return RVM_EIO;
            }
        }
        RVM_SUCCESS
    })
}

/// The smallest record area rvm-rs accepts; smaller requests are rounded up to it.
pub const LOG_AREA_MIN_BYTES: u64 = 64 * 1024;

/// Write every queued no_flush commit to the log and sync it.
#[no_mangle]
pub extern "C" fn rvm_flush() -> RvmReturn {
    guarded!(RVM_EINTERNAL, {
        let result = enter().and_then(|call| {
            let r = call.rvm()?;
            state::with_settings(|s| s.rvm_flushes += 1);
            r.flush().map_err(|e| crate::codes::rvm_code(&e))
        });
        result.err().unwrap_or(RVM_SUCCESS)
    })
}

/// Flush, then apply the whole log to the segments and free it.
#[no_mangle]
pub extern "C" fn rvm_truncate() -> RvmReturn {
    guarded!(RVM_EINTERNAL, {
        let result = enter().and_then(|call| {
            let r = call.rvm()?;
            state::with_settings(|s| s.rvm_truncates += 1);
            r.truncate().map_err(|e| crate::codes::rvm_code(&e))
        });
        result.err().unwrap_or(RVM_SUCCESS)
    })
}

/// Read the instance's state into an options record: `log_dev` (copied into the caller's
/// buffer if non-NULL, which must hold `MAXPATHLEN` bytes), `truncate`, `log_empty`,
/// `flags`, `max_read_len`, and the open transactions appended to `tid_array` (grown with
/// `realloc` in steps of 5) with `n_uncommit` counted up. rvm-rs does not track which region
/// a transaction touches, so with `region` given every open transaction is listed.
///
/// # Safety
/// `options` and `region` are NULL or valid records; `tid_array` is NULL or from `malloc`
/// and holds `n_uncommit` entries.
#[no_mangle]
pub unsafe extern "C" fn rvm_query(options: *mut RvmOptions, region: *mut RvmRegion) -> RvmReturn {
    guarded!(RVM_EINTERNAL, {
        let call = match enter() {
            Ok(c) => c,
            Err(code) => return code,
        };
        // SAFETY: the caller's contract.
        let mut o = match unsafe { read_options(options) } {
            Ok(Some(o)) => o,
            Ok(None) => return RVM_EOPTIONS,
            Err(code) => return code,
        };
        if !region.is_null() {
            // SAFETY: non-null and valid by the caller's contract.
            if let Err(code) = unsafe { read_region(region) } {
                return code;
            }
        }
        let settings = state::with_settings(|s| *s).unwrap_or_default();
        o.flags = settings.flags as RvmLength;
        o.max_read_len = settings.max_read_len as RvmLength;
        if let Some(r) = call.rvm {
            let q = r.query();
            if !o.log_dev.is_null() {
                let name = q.log_path.as_bytes();
                let n = name.len().min(PATH_BYTES_MAX - 1);
                // SAFETY: the caller supplies a MAXPATHLEN-byte buffer for a non-null log_dev.
                unsafe {
                    std::ptr::copy_nonoverlapping(name.as_ptr(), o.log_dev as *mut u8, n);
                    *o.log_dev.add(n) = 0;
                }
            }
            o.truncate = c_long::from(r.truncate_threshold());
            o.recovery_buf_len = settings.recovery_buf_len as RvmLength;
            o.flush_buf_len = 0;
            o.log_empty = if q.used_bytes == 0 && q.queued_no_flush_commits == 0 {
                RVM_TRUE
            } else {
                RVM_FALSE
            };
            let tids = crate::tids::open_tids();
            if !tids.is_empty() {
                // Entries already in the array (none if it is NULL, whatever the count says).
                let have = if o.tid_array.is_null() {
                    0
                } else {
                    o.n_uncommit.max(0) as usize
                };
                let want = have.saturating_add(tids.len());
                let Some(bytes) = want
                    .div_ceil(5)
                    .checked_mul(5 * std::mem::size_of::<RvmTid>())
                    .filter(|b| *b <= isize::MAX as usize)
                else {
                    return RVM_ENO_MEMORY;
                };
                // SAFETY: tid_array is NULL or a malloc'ed array (the caller's contract).
                let array = unsafe { libc::realloc(o.tid_array as *mut libc::c_void, bytes) }
                    as *mut RvmTid;
                if array.is_null() {
                    return RVM_ENO_MEMORY;
                }
                for (i, (id, (sec, usec))) in tids.into_iter().enumerate() {
                    let t = RvmTid {
                        struct_id: RVM_TID_ID,
                        from_heap: RVM_FALSE,
                        uname: libc::timeval {
                            tv_sec: sec,
                            tv_usec: usec,
                        },
                        tid: id as *mut libc::c_void,
                        reserved: 0,
                    };
                    // SAFETY: the array holds at least `want` entries (`bytes` above).
                    unsafe { std::ptr::write_unaligned(array.add(have + i), t) };
                }
                o.tid_array = array;
                o.n_uncommit = want as c_long;
            }
        }
        // SAFETY: non-null and valid by the caller's contract.
        unsafe { std::ptr::write_unaligned(options, o) };
        RVM_SUCCESS
    })
}
