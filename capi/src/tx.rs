//! Transactions: `rvm_begin_transaction`, `rvm_set_range`, `rvm_modify_bytes`,
//! `rvm_end_transaction`, `rvm_abort_transaction`.
//!
//! A tid record carries a registry id (in its `tid` field, never dereferenced) and the uname
//! the registry holds for that id; every call looks both up, so a stale, forged or ended tid
//! gets `RVM_ETID`, and a byte copy of a begun tid is as good as the original.

use libc::c_void;
use rvm::{BeginMode, CommitMode};

use crate::codes::*;
use crate::state::{self, guarded};
use crate::tids::{self, read_tid};
use crate::types::*;

fn begin_mode(mode: CEnum) -> Option<BeginMode> {
    match mode {
        MODE_RESTORE => Some(BeginMode::Restore),
        MODE_NO_RESTORE => Some(BeginMode::NoRestore),
        _ => None,
    }
}

pub fn commit_mode(mode: CEnum) -> Option<CommitMode> {
    match mode {
        MODE_FLUSH => Some(CommitMode::Flush),
        MODE_NO_FLUSH => Some(CommitMode::NoFlush),
        _ => None,
    }
}

fn code(result: Result<(), RvmReturn>) -> RvmReturn {
    result.err().unwrap_or(RVM_SUCCESS)
}

/// The code of a transaction call that checked its tid before the phase: any refusal is
/// `RVM_EINIT` when RVM is not running (as if the phase had been checked first). Only a held
/// open transaction lets a call go on, and one exists only while RVM runs (`rvm_terminate`
/// refuses while one is open), so the phase needs no check on the way to success.
#[inline]
fn tid_code(result: Result<(), RvmReturn>) -> RvmReturn {
    match result {
        Ok(()) => RVM_SUCCESS,
        Err(code) => not_running_or(code),
    }
}

#[cold]
#[inline(never)]
fn not_running_or(code: RvmReturn) -> RvmReturn {
    state::running().err().unwrap_or(code)
}

/// Begin a transaction in `restore` or `no_restore` mode; the tid record gets a fresh uname
/// and id. Several transactions may be open per thread, and a tid may be used from any thread.
///
/// # Safety
/// `tid` is NULL or points to a writable `rvm_tid_t`.
#[no_mangle]
pub unsafe extern "C" fn rvm_begin_transaction(tid: *mut RvmTid, mode: CEnum) -> RvmReturn {
    guarded!(RVM_EINTERNAL, {
        code((|| {
            state::running()?;
            // SAFETY: the caller's contract.
            unsafe { read_tid(tid) }?;
            let mode = begin_mode(mode).ok_or(RVM_EMODE)?;
            let (id, uname) = tids::begin(mode)?;
            // SAFETY: checked non-null above; writable by the caller's contract.
            unsafe { tids::write_tid(tid, id, uname) };
            Ok(())
        })())
    })
}

/// Declare that `[dest, dest+length)` will be changed; it must lie inside one mapped region.
/// The caller then writes the bytes in place; their new values are captured at commit. In
/// restore mode the old values are saved now, so call it before writing.
///
/// # Safety
/// `tid` is NULL or a readable `rvm_tid_t`.
#[no_mangle]
pub unsafe extern "C" fn rvm_set_range(
    tid: *mut RvmTid,
    dest: *mut c_void,
    length: RvmLength,
) -> RvmReturn {
    guarded!(RVM_EINTERNAL, {
        tid_code((|| {
            // SAFETY: the caller's contract.
            let t = unsafe { read_tid(tid) }?;
            tids::hold(&t)?
                .tx()
                .set_range(dest as usize, length as usize)
                .map_err(|e| rvm_code(&e))
        })())
    })
}

/// `rvm_set_range` on `[dest, dest+length)`, then copy `length` bytes from `src` there
/// (overlap-safe). A NULL `src` with a non-zero length gives `RVM_ESRC`.
///
/// # Safety
/// `tid` is NULL or a readable `rvm_tid_t`; `src` is readable for `length` bytes.
#[no_mangle]
pub unsafe extern "C" fn rvm_modify_bytes(
    tid: *mut RvmTid,
    dest: *mut c_void,
    src: *const c_void,
    length: RvmLength,
) -> RvmReturn {
    guarded!(RVM_EINTERNAL, {
        tid_code((|| {
            // SAFETY: the caller's contract.
            let t = unsafe { read_tid(tid) }?;
            if src.is_null() && length != 0 {
                return Err(RVM_ESRC);
            }
            let mut held = tids::hold(&t)?;
            held.tx()
                .set_range(dest as usize, length as usize)
                .map_err(|e| rvm_code(&e))?;
            // SAFETY: set_range checked that the destination lies in a mapped region and
            // pinned it for this transaction; `src` is readable by the caller's contract.
            // Raw copy (memmove): no Rust reference to memory other threads may write.
            unsafe { std::ptr::copy(src as *const u8, dest as *mut u8, length as usize) };
            Ok(())
        })())
    })
}

/// Commit in `flush` (durable on return) or `no_flush` (durable after the next flush) mode.
/// A bad mode gives `RVM_EMODE` and leaves the transaction open. A transaction too large for
/// the log gives `RVM_ETOO_BIG`; it is then aborted (restore mode: old values back).
///
/// # Safety
/// `tid` is NULL or a readable `rvm_tid_t`.
#[no_mangle]
pub unsafe extern "C" fn rvm_end_transaction(tid: *mut RvmTid, mode: CEnum) -> RvmReturn {
    guarded!(RVM_EINTERNAL, {
        tid_code((|| {
            // SAFETY: the caller's contract.
            let t = unsafe { read_tid(tid) }?;
            let held = tids::hold(&t)?;
            let Some(mode) = commit_mode(mode) else {
                // A bad tid wins over a bad mode; a bad mode leaves the tid open.
                return Err(RVM_EMODE);
            };
            held.finish(|tx| tx.end_in_place(mode).map_err(|e| rvm_code(&e)))
        })())
    })
}

/// Abort: in restore mode every declared byte gets its old value back, in reverse order of
/// declaration; in no_restore mode memory stays as written.
///
/// # Safety
/// `tid` is NULL or a readable `rvm_tid_t`.
#[no_mangle]
pub unsafe extern "C" fn rvm_abort_transaction(tid: *mut RvmTid) -> RvmReturn {
    guarded!(RVM_EINTERNAL, {
        tid_code((|| {
            // SAFETY: the caller's contract.
            let t = unsafe { read_tid(tid) }?;
            tids::hold(&t)?.finish(|tx| tx.abort_in_place().map_err(|e| rvm_code(&e)))
        })())
    })
}
