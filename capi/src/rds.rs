//! RDS (`rds.h`) over `rvm::rds`: one current heap per process, as in the classic library.
//!
//! A heap call with a caller tid works for that transaction; with NULL it runs in its own
//! restore transaction committed no_flush. The heap's locking rule is the Rust library's
//! (`rvm::rds::Heap`): a heap call never waits for another transaction and never answers
//! "busy" (a caller's threads may be coroutines on one kernel thread); `rds_malloc` allocates
//! at once and the block is freed again if the tid aborts; `rds_free` frees inside the tid's
//! commit. Either mode of tid may change the heap.

use std::ffi::c_char;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU64, Ordering};

use rvm::rds::{self, Heap, HeapLayout, IntentionList};
use rvm::{BeginMode, CommitMode, Rvm, Transaction};

use crate::args::c_path;
use crate::codes::*;
use crate::current_heap;
use crate::state::{enter, guarded};
use crate::tids::{self, read_tid};
use crate::types::*;

/// Non-zero: trace heap calls to `rds_tracing_file` (see `RDS_LOG`).
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static rds_tracing: AtomicI32 = AtomicI32::new(0);
/// Where traces go.
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static rds_tracing_file: AtomicPtr<libc::FILE> = AtomicPtr::new(std::ptr::null_mut());
/// The regions of the heap segment `rds_load_heap` loaded (a `malloc`'ed array).
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static RegionDefs: AtomicPtr<RvmRegionDef> = AtomicPtr::new(std::ptr::null_mut());
/// The number of entries in `RegionDefs`.
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static NRegionDefs: AtomicU64 = AtomicU64::new(0);

fn heap() -> Result<Heap, i32> {
    current_heap::get().ok_or(EHEAP_INIT)
}

fn trace(text: impl FnOnce() -> String) {
    if rds_tracing.load(Ordering::Relaxed) != 0 {
        let file = rds_tracing_file.load(Ordering::Relaxed);
        if !file.is_null() {
            // SAFETY: the caller set an open FILE (rds_trace_on or the variable itself).
            unsafe { crate::cio::write_file(file, &text()) };
        }
    }
}

/// Store `code` through a non-null `err` and return it.
///
/// # Safety
/// `err` is NULL or writable.
unsafe fn report(err: *mut i32, code: i32) -> i32 {
    if !err.is_null() {
        // SAFETY: the caller's contract.
        unsafe { err.write_unaligned(code) };
    }
    code
}

fn result_code(r: Result<(), i32>) -> i32 {
    r.err().unwrap_or(RDS_SUCCESS)
}

/// Run `op` in the caller's transaction, or (NULL tid) in a new restore transaction that is
/// committed no_flush when `op` succeeds and aborted when it fails.
///
/// # Safety
/// `tid` is NULL or a readable `rvm_tid_t`.
unsafe fn in_transaction<R>(
    rvm: &'static Rvm,
    tid: *const RvmTid,
    op: impl FnOnce(&mut Transaction<'static>) -> Result<R, i32>,
) -> Result<R, i32> {
    if tid.is_null() {
        let mut tx = rvm.begin(BeginMode::Restore).map_err(|e| rvm_code(&e))?;
        let value = op(&mut tx)?;
        tx.end(CommitMode::NoFlush).map_err(|e| rvm_code(&e))?;
        return Ok(value);
    }
    // SAFETY: forwarded.
    let t = unsafe { read_tid(tid) }?;
    // The caller is counted (`enter`), so `rvm_terminate` waits for it.
    let mut held = tids::hold_counted(&t)?;
    op(held.tx())
}

fn rds_err(e: rds::Error) -> i32 {
    rds_code(&e)
}

/// Create a heap segment at `dev` (overwritten if it exists): heap region at `start_addr`,
/// static region after it; the heap is initialised and the log truncated, and the segment is
/// left unloaded. A zero `dev_length` means "just large enough".
///
/// # Safety
/// `dev` is NULL or a C string; `err` NULL or writable.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn rds_zap_heap(
    dev: *mut c_char,
    dev_length: RvmOffset,
    start_addr: *mut c_char,
    static_length: RvmLength,
    heap_length: RvmLength,
    nlists: libc::c_ulong,
    chunk_size: libc::c_ulong,
    err: *mut i32,
) -> i32 {
    guarded!(RVM_EINTERNAL, {
        let result = (|| {
            let call = enter()?;
            // SAFETY: the caller's contract.
            let path = unsafe { c_path(dev, EBAD_ARGS) }?;
            let rvm = call.rvm()?;
            let layout = HeapLayout {
                start_address: start_addr as u64,
                heap_length,
                static_length,
                nlists,
                chunk_size,
            };
            let length = if dev_length.low == 0 {
                layout.segment_length_min()
            } else {
                dev_length.low
            };
            rvm.truncate().map_err(|e| rvm_code(&e))?;
            let options = rvm::segment::CreateOptions {
                overwrite: true,
                fallocate: false,
            };
            // SAFETY: the classic contract a C caller takes on (README, "C programs"): the
            // segment file is the program's own and nothing shortens it while it is mapped.
            unsafe { rds::create_heap_segment(rvm, &path, length, &layout, options) }
                .map_err(rds_err)?;
            Ok(())
        })();
        // SAFETY: the caller's contract.
        unsafe { report(err, result_code(result)) }
    })
}

/// Initialise a heap in the mapped region `[base, base+length)` (region 0 of a loaded heap
/// segment) inside the caller's transaction, and make it the current heap.
///
/// # Safety
/// `tid` is NULL or a readable `rvm_tid_t`; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn rds_init_heap(
    base: *mut c_char,
    length: RvmLength,
    chunk_size: libc::c_ulong,
    nlists: libc::c_ulong,
    tid: *mut RvmTid,
    err: *mut i32,
) -> i32 {
    guarded!(RVM_EINTERNAL, {
        let result = (|| {
            let call = enter()?;
            let rvm = call.rvm()?;
            if tid.is_null() {
                return Err(RVM_ETID);
            }
            let seg = rvm
                .segment_at(base as usize, length as usize)
                .ok_or(EBAD_ARGS)?;
            let first = seg.regions().first().copied().ok_or(EBAD_ARGS)?;
            if first.address != base as usize || first.length != length as usize {
                return Err(EBAD_ARGS);
            }
            // SAFETY: forwarded.
            let heap = unsafe {
                in_transaction(rvm, tid, |tx| {
                    Heap::init(tx, &seg, nlists, chunk_size).map_err(rds_err)
                })
            }?;
            current_heap::set(heap);
            Ok(())
        })();
        // SAFETY: the caller's contract.
        unsafe { report(err, result_code(result)) }
    })
}

/// Load a heap segment made by `rdsinit` (or `rds_zap_heap`): map both regions at their
/// recorded addresses, set `*static_addr` to the static region, `RegionDefs` and
/// `NRegionDefs`, and start the heap.
///
/// # Safety
/// `dev` is NULL or a C string; `static_addr` and `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn rds_load_heap(
    dev: *mut c_char,
    _dev_length: RvmOffset,
    static_addr: *mut *mut c_char,
    err: *mut i32,
) -> i32 {
    guarded!(RVM_EINTERNAL, {
        let result = (|| {
            let call = enter()?;
            // SAFETY: the caller's contract.
            let path = unsafe { c_path(dev, EBAD_ARGS) }?;
            if static_addr.is_null() {
                return Err(EBAD_ARGS);
            }
            let rvm = call.rvm()?;
            let seg = crate::segment::load(rvm, &path)?;
            let started = (|| {
                if seg.regions().len() != 2 {
                    return Err(EBAD_SEGMENT_HDR);
                }
                let heap = Heap::load(&seg).map_err(rds_err)?;
                let (defs, n) = crate::segment::defs_of(&seg)?;
                let old = RegionDefs.swap(defs, Ordering::AcqRel);
                NRegionDefs.store(n as u64, Ordering::Release);
                if !old.is_null() {
                    // SAFETY: every value stored in RegionDefs came from defs_of (malloc).
                    unsafe { libc::free(old as *mut libc::c_void) };
                }
                // SAFETY: checked non-null; writable by the caller's contract.
                unsafe { static_addr.write_unaligned(heap.static_address() as *mut c_char) };
                current_heap::set(heap);
                Ok(())
            })();
            if started.is_err() {
                let _ = crate::segment::release(rvm, seg.regions()[0].address);
            }
            started
        })();
        // SAFETY: the caller's contract.
        unsafe { report(err, result_code(result)) }
    })
}

/// Make the heap at `start_addr` (region 0 of a loaded heap segment) the current heap.
///
/// # Safety
/// `err` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn rds_start_heap(start_addr: *mut c_char, err: *mut i32) -> i32 {
    guarded!(RVM_EINTERNAL, {
        let result = (|| {
            let call = enter()?;
            let rvm = call.rvm()?;
            let seg = rvm.segment_at(start_addr as usize, 1).ok_or(EBAD_ARGS)?;
            if seg.regions().first().map(|r| r.address) != Some(start_addr as usize) {
                return Err(EBAD_ARGS);
            }
            let heap = Heap::load(&seg).map_err(rds_err)?;
            current_heap::set(heap);
            Ok(())
        })();
        // SAFETY: the caller's contract.
        unsafe { report(err, result_code(result)) }
    })
}

/// Forget the current heap (its segment stays loaded).
///
/// # Safety
/// `err` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn rds_stop_heap(err: *mut i32) -> i32 {
    guarded!(RVM_EINTERNAL, {
        let result = enter().map(|_call| current_heap::forget());
        // SAFETY: the caller's contract.
        unsafe { report(err, result_code(result)) }
    })
}

/// Flush and truncate the log, release the heap's segment and forget the heap.
///
/// # Safety
/// `err` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn rds_unload_heap(err: *mut i32) -> i32 {
    guarded!(RVM_EINTERNAL, {
        let result = (|| {
            let call = enter()?;
            let rvm = call.rvm()?;
            let heap = heap()?;
            rvm.truncate().map_err(|e| rvm_code(&e))?;
            crate::segment::release(rvm, heap.address())?;
            current_heap::forget();
            let old = RegionDefs.swap(std::ptr::null_mut(), Ordering::AcqRel);
            NRegionDefs.store(0, Ordering::Release);
            if !old.is_null() {
                // SAFETY: every value stored in RegionDefs came from defs_of (malloc).
                unsafe { libc::free(old as *mut libc::c_void) };
            }
            Ok(())
        })();
        // SAFETY: the caller's contract.
        unsafe { report(err, result_code(result)) }
    })
}

/// Allocate `size` bytes from the current heap in `tid` (or, NULL, in a transaction of its
/// own committed no_flush). NULL on failure, with the code in `*err`.
///
/// # Safety
/// `tid` is NULL or a readable `rvm_tid_t`; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn rds_malloc(
    size: libc::c_ulong,
    tid: *mut RvmTid,
    err: *mut i32,
) -> *mut c_char {
    guarded!(std::ptr::null_mut(), {
        let result = (|| {
            let call = enter()?;
            let rvm = call.rvm()?;
            let heap = heap()?;
            // SAFETY: forwarded.
            unsafe {
                in_transaction(rvm, tid, |tx| {
                    heap.malloc(tx, size as usize).map_err(rds_err)
                })
            }
        })();
        trace(|| match result {
            Ok(a) => format!("rds_malloc: {size} bytes at {a:#x}\n"),
            Err(c) => format!("rds_malloc: {size} bytes failed ({c})\n"),
        });
        match result {
            Ok(address) => {
                // SAFETY: the caller's contract.
                unsafe { report(err, RDS_SUCCESS) };
                address as *mut c_char
            }
            Err(code) => {
                // SAFETY: the caller's contract.
                unsafe { report(err, code) };
                std::ptr::null_mut()
            }
        }
    })
}

/// Free the block at `addr` in `tid` (or in a transaction of its own, committed no_flush).
///
/// # Safety
/// `tid` is NULL or a readable `rvm_tid_t`; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn rds_free(addr: *mut c_char, tid: *mut RvmTid, err: *mut i32) -> i32 {
    guarded!(RVM_EINTERNAL, {
        let result = (|| {
            let call = enter()?;
            let rvm = call.rvm()?;
            let heap = heap()?;
            if addr.is_null() {
                return Err(EBAD_ARGS);
            }
            // SAFETY: forwarded.
            unsafe { in_transaction(rvm, tid, |tx| heap.free(tx, addr as usize).map_err(rds_err)) }
        })();
        trace(|| format!("rds_free: {:#x} ({})\n", addr as usize, result_code(result)));
        // SAFETY: the caller's contract.
        unsafe { report(err, result_code(result)) }
    })
}

/// Carve `nblocks` blocks for allocations of `size` bytes onto their exact-size list.
///
/// # Safety
/// `tid` is NULL or a readable `rvm_tid_t`; `err` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn rds_prealloc(
    size: libc::c_ulong,
    nblocks: libc::c_ulong,
    tid: *mut RvmTid,
    err: *mut i32,
) -> i32 {
    guarded!(RVM_EINTERNAL, {
        let result = (|| {
            let call = enter()?;
            let rvm = call.rvm()?;
            let heap = heap()?;
            // SAFETY: forwarded.
            unsafe {
                in_transaction(rvm, tid, |tx| {
                    heap.prealloc(tx, size as usize, nblocks as usize)
                        .map_err(rds_err)
                })
            }
        })();
        // SAFETY: the caller's contract.
        unsafe { report(err, result_code(result)) }
    })
}

/// 1 if an allocation of `size` bytes would succeed now, else 0.
#[no_mangle]
pub extern "C" fn rds_maxblock(size: libc::c_ulong) -> i32 {
    guarded!(0, {
        let Ok(_call) = enter() else { return 0 };
        heap().map_or(0, |h| i32::from(h.maxblock() >= size as usize))
    })
}

/// The caller's intention list as (table, count, capacity in entries), validated.
///
/// # Safety
/// `list` is non-null and readable.
unsafe fn read_list(list: *const IntentionListC) -> Result<IntentionListC, i32> {
    // SAFETY: the caller's contract.
    let l = unsafe { list.read_unaligned() };
    let entry = std::mem::size_of::<*mut c_char>() as u64;
    if l.table.is_null() {
        if l.count != 0 {
            return Err(EBAD_LIST);
        }
    } else if l.count.saturating_mul(entry) > l.size {
        return Err(EBAD_LIST);
    }
    Ok(l)
}

/// The addresses in a caller's list.
///
/// # Safety
/// `l` was validated by `read_list` and its table holds `count` entries.
unsafe fn list_entries(l: &IntentionListC) -> Vec<usize> {
    (0..l.count as usize)
        // SAFETY: the table holds `count` entries.
        .map(|i| unsafe { l.table.add(i).read_unaligned() } as usize)
        .collect()
}

/// Record a free of `addr` in `list` (checked now, performed by `rds_do_free`). The table
/// grows with `realloc` (16 entries first, then doubling). NULL `addr` is a no-op.
///
/// # Safety
/// `list` is NULL or a valid `intentionList_t` (`table` NULL or from malloc).
#[no_mangle]
pub unsafe extern "C" fn rds_fake_free(addr: *mut c_char, list: *mut IntentionListC) -> i32 {
    guarded!(RVM_EINTERNAL, {
        let result = (|| {
            let _call = enter()?;
            if list.is_null() {
                return Err(EBAD_ARGS);
            }
            if addr.is_null() {
                return Ok(());
            }
            let heap = heap()?;
            // SAFETY: non-null; the caller's contract.
            let mut l = unsafe { read_list(list) }?;
            // SAFETY: validated above.
            if unsafe { list_entries(&l) }.contains(&(addr as usize)) {
                return Err(EFREED_TWICE);
            }
            heap.fake_free(&mut IntentionList::new(), addr as usize)
                .map_err(rds_err)?;
            let entry = std::mem::size_of::<*mut c_char>();
            let capacity = l.size as usize / entry;
            if l.table.is_null() || l.count as usize >= capacity {
                let new_capacity = if l.table.is_null() {
                    16
                } else {
                    capacity.max(8) * 2
                };
                // SAFETY: table is NULL or from malloc (the caller's contract).
                let t = unsafe { libc::realloc(l.table as *mut libc::c_void, new_capacity * entry) }
                    as *mut *mut c_char;
                if t.is_null() {
                    return Err(RVM_ENO_MEMORY);
                }
                l.table = t;
                l.size = (new_capacity * entry) as libc::c_ulong;
            }
            // SAFETY: count < capacity after growing.
            unsafe { l.table.add(l.count as usize).write_unaligned(addr) };
            l.count += 1;
            // SAFETY: non-null; writable by the caller's contract.
            unsafe { list.write_unaligned(l) };
            Ok(())
        })();
        result_code(result)
    })
}

/// Perform the frees recorded in `list` in a restore transaction of its own, committed with
/// `mode` (aborted if any fails: then nothing is freed). The table is released with `free`
/// and the list emptied in either case.
///
/// # Safety
/// `list` is NULL or a valid `intentionList_t`.
#[no_mangle]
pub unsafe extern "C" fn rds_do_free(list: *mut IntentionListC, mode: CEnum) -> i32 {
    guarded!(RVM_EINTERNAL, {
        let result = (|| {
            let call = enter()?;
            if list.is_null() {
                return Err(EBAD_ARGS);
            }
            let commit = crate::tx::commit_mode(mode).ok_or(RVM_EMODE)?;
            // SAFETY: non-null; the caller's contract.
            let l = unsafe { read_list(list) }?;
            // SAFETY: validated above.
            let entries = unsafe { list_entries(&l) };
            let freed = (|| {
                let rvm = call.rvm()?;
                let heap = heap()?;
                let mut intentions = IntentionList::new();
                for a in &entries {
                    heap.fake_free(&mut intentions, *a).map_err(rds_err)?;
                }
                let mut tx = rvm.begin(BeginMode::Restore).map_err(|e| rvm_code(&e))?;
                heap.do_free(&mut tx, intentions).map_err(rds_err)?;
                tx.end(commit).map_err(|e| rvm_code(&e))
            })();
            // SAFETY: the table is NULL or from malloc/realloc (the caller's contract).
            unsafe {
                libc::free(l.table as *mut libc::c_void);
                list.write_unaligned(IntentionListC {
                    size: 0,
                    count: 0,
                    table: std::ptr::null_mut(),
                });
            }
            freed
        })();
        result_code(result)
    })
}

fn saturate(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// The heap's counters in the classic record (32-bit fields saturate instead of wrapping).
/// `misses` counts allocations that were not exact-list hits; `large_list`,
/// `large_misses`, `unmerged` have no counterpart and are 0; `merged` is the number of
/// coalescing merges.
fn stats_of(heap: &Heap) -> RdsStats {
    let s = heap.statistics();
    RdsStats {
        malloc: saturate(s.malloc_count),
        prealloc: saturate(s.prealloc_count),
        free: saturate(s.free_count),
        coalesce: saturate(s.coalesce_count),
        hits: saturate(s.exact_hits),
        misses: saturate(s.malloc_count.saturating_sub(s.exact_hits)),
        large_list: 0,
        large_hits: saturate(s.large_hits),
        large_misses: 0,
        merged: saturate(s.coalesce_count),
        unmerged: 0,
        freebytes: saturate(s.free_bytes),
        mallocbytes: saturate(s.allocated_bytes),
    }
}

/// Copy the heap's counters into `*stats`.
///
/// # Safety
/// `stats` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn rds_get_stats(stats: *mut RdsStats) -> i32 {
    guarded!(RVM_EINTERNAL, {
        let result = (|| {
            let _call = enter()?;
            if stats.is_null() {
                return Err(EBAD_ARGS);
            }
            let s = stats_of(&heap()?);
            // SAFETY: non-null; writable by the caller's contract.
            unsafe { stats.write_unaligned(s) };
            Ok(())
        })();
        result_code(result)
    })
}

/// Zero the heap's event counters (in a transaction of its own, committed no_flush).
///
/// # Safety
/// `err` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn rds_clear_stats(err: *mut i32) -> i32 {
    guarded!(RVM_EINTERNAL, {
        let result = (|| {
            let call = enter()?;
            let rvm = call.rvm()?;
            let heap = heap()?;
            // SAFETY: NULL tid: the function's own transaction.
            unsafe {
                in_transaction(rvm, std::ptr::null(), |tx| {
                    heap.clear_statistics(tx).map_err(rds_err)
                })
            }
        })();
        // SAFETY: the caller's contract.
        unsafe { report(err, result_code(result)) }
    })
}

/// Print the heap's counters to standard output.
#[no_mangle]
pub extern "C" fn rds_print_stats() -> i32 {
    guarded!(RVM_EINTERNAL, {
        let result = (|| {
            let _call = enter()?;
            let s = stats_of(&heap()?);
            let text = format!(
                "RDS statistics\n  free bytes: {:#x}\n  allocated bytes: {:#x}\n  malloc {}  \
                 prealloc {}  free {}  coalesce {}\n  hits {}  misses {}  large hits {}  \
                 merged {}\n",
                s.freebytes,
                s.mallocbytes,
                s.malloc,
                s.prealloc,
                s.free,
                s.coalesce,
                s.hits,
                s.misses,
                s.large_hits,
                s.merged
            );
            // SAFETY: NULL means standard output.
            if unsafe { crate::cio::write_file(std::ptr::null_mut(), &text) } {
                Ok(())
            } else {
                Err(RVM_EIO)
            }
        })();
        result_code(result)
    })
}

/// Trace heap calls to `file` (sets `rds_tracing` and `rds_tracing_file`).
///
/// # Safety
/// `file` is NULL or an open `FILE` that stays open while tracing.
#[no_mangle]
pub unsafe extern "C" fn rds_trace_on(file: *mut libc::FILE) -> i32 {
    rds_tracing_file.store(file, Ordering::Relaxed);
    rds_tracing.store(i32::from(!file.is_null()), Ordering::Relaxed);
    RDS_SUCCESS
}

/// Stop tracing.
#[no_mangle]
pub extern "C" fn rds_trace_off() -> i32 {
    rds_tracing.store(0, Ordering::Relaxed);
    RDS_SUCCESS
}

/// Write every block of the heap (address, size, state) to the trace file.
#[no_mangle]
pub extern "C" fn rds_trace_dump_heap() -> i32 {
    guarded!(RVM_EINTERNAL, {
        let result = (|| {
            let _call = enter()?;
            let heap = heap()?;
            let blocks = heap.blocks().map_err(rds_err)?;
            trace(|| {
                let mut t = format!(
                    "rds heap at {:#x}: {} blocks\n",
                    heap.address(),
                    blocks.len()
                );
                for b in &blocks {
                    t.push_str(&format!("  {b:?}\n"));
                }
                t
            });
            Ok(())
        })();
        result_code(result)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_saturate_instead_of_wrapping() {
        assert_eq!(saturate(5), 5);
        assert_eq!(saturate(u64::from(u32::MAX)), u32::MAX);
        assert_eq!(saturate(1 << 40), u32::MAX);
    }
}
