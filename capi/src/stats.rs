//! `rvm_statistics` and `rvm_print_statistics`: the classic record filled from the library's
//! counters. The classic "current epoch" fields count since this process opened the log; the
//! `tot_*` fields are the log's lifetime totals. Fields without a counterpart in rvm-rs stay
//! 0 (listed in README.md, "C programs").

use std::ffi::{c_char, CStr};

use crate::bias::Fences;
use crate::codes::*;
use crate::state::{self, enter, guarded};
use crate::types::*;

fn offset(v: u64) -> RvmOffset {
    RvmOffset {
        high: 0,
        low: v as RvmLength,
    }
}

fn timeval_us(us: u64) -> libc::timeval {
    libc::timeval {
        tv_sec: (us / 1_000_000) as libc::time_t,
        tv_usec: (us % 1_000_000) as libc::suseconds_t,
    }
}

fn fill(rvm: &rvm::Rvm, out: &mut RvmStatistics) {
    let s = rvm.statistics();
    let q = rvm.query();
    let settings = state::with_settings(|s| *s).unwrap_or_default();
    let l = s.lifetime;
    out.n_abort = s.aborts as RvmLength;
    out.n_flush_commit = s.flush_commits as RvmLength;
    out.n_no_flush_commit = s.no_flush_commits as RvmLength;
    out.n_uncommit = crate::tids::open_count() as RvmLength;
    out.n_no_flush = q.queued_no_flush_commits as RvmLength;
    out.no_flush_length = offset(q.queued_bytes as u64);
    out.n_truncation_wait = s.space_waits as RvmLength;
    out.n_flush = s.flushes as RvmLength;
    out.n_rvm_flush = settings.rvm_flushes as RvmLength;
    out.n_wrap = RvmLength::from(q.used_bytes > 0 && q.head_offset >= q.tail_offset);
    out.log_dev_cur = q.used_percent as RvmLength;
    out.log_written = offset(q.used_bytes);
    out.range_overlap = offset(s.bytes_saved_by_coalescing);
    out.n_range_elim = s.ranges_coalesced as RvmLength;
    out.n_trans_coalesced = s.transactions_coalesced as RvmLength;
    out.n_trans_elim = s.ranges_merged_across_commits as RvmLength;
    out.trans_overlap = offset(s.bytes_saved_across_commits);
    out.flush_time = timeval_us(s.flush_time_us);
    out.last_truncation_time = (s.last_truncation_us / 1_000_000) as RvmLength;
    out.tot_abort = l.aborts as RvmLength;
    out.tot_flush_commit = l.flush_commits as RvmLength;
    out.tot_no_flush_commit = l.no_flush_commits as RvmLength;
    out.tot_flush = l.flushes as RvmLength;
    out.tot_rvm_flush = settings.rvm_flushes as RvmLength;
    out.tot_wrap = l.wraps as RvmLength;
    out.tot_log_written = offset(l.bytes_logged);
    out.tot_range_overlap = offset(l.bytes_saved_by_coalescing);
    out.tot_range_elim = l.ranges_coalesced as RvmLength;
    // Not among the log's persisted counters: this instance's counts.
    out.tot_trans_coalesced = s.transactions_coalesced as RvmLength;
    out.tot_trans_elim = s.ranges_merged_across_commits as RvmLength;
    out.tot_trans_overlap = offset(s.bytes_saved_across_commits);
    out.tot_rvm_truncate = settings.rvm_truncates as RvmLength;
    out.tot_async_truncation = s.background_truncations as RvmLength;
    out.tot_sync_truncation = s.truncations.saturating_sub(s.background_truncations) as RvmLength;
    out.tot_truncation_wait = s.space_waits as RvmLength;
    out.tot_recovery = l.recoveries as RvmLength;
    out.tot_flush_time = timeval_us(s.flush_time_us);
    out.tot_truncation_time = timeval_us(s.truncation_time_us);
}

/// Fill a statistics record. The version must be `RVM_STATISTICS_VERSION`.
///
/// # Safety
/// `version` is NULL or a C string; `statistics` is NULL or a writable record.
#[no_mangle]
pub unsafe extern "C" fn rvm_statistics(
    version: *const c_char,
    statistics: *mut RvmStatistics,
) -> RvmReturn {
    guarded!(RVM_EINTERNAL, {
        let call = match enter() {
            Ok(c) => c,
            Err(code) => return code,
        };
        if version.is_null() {
            return RVM_ESTAT_VERSION_SKEW;
        }
        // SAFETY: a non-null version is a C string (the caller's contract).
        if unsafe { CStr::from_ptr(version) }.to_bytes() != RVM_STATISTICS_VERSION {
            return RVM_ESTAT_VERSION_SKEW;
        }
        if statistics.is_null() {
            return RVM_ESTATISTICS;
        }
        // SAFETY: non-null and valid by the caller's contract.
        let mut out = unsafe { std::ptr::read_unaligned(statistics) };
        if out.struct_id != RVM_STATISTICS_ID {
            return RVM_ESTATISTICS;
        }
        let Ok(rvm) = call.rvm() else {
            return RVM_ELOG;
        };
        let from_heap = out.from_heap;
        out = crate::records::Record::fresh();
        out.from_heap = from_heap;
        fill(rvm, &mut out);
        // SAFETY: as above.
        unsafe { std::ptr::write_unaligned(statistics, out) };
        RVM_SUCCESS
    })
}

/// The report `rvm_print_statistics` writes: the record, then which path this process's tid
/// calls take (`tid calls: biased` where `membarrier` registered, else `lock word` and why).
pub fn report(s: &RvmStatistics) -> String {
    let mut t = String::new();
    let mut line = |name: &str, now: u64, total: u64| {
        t.push_str(&format!("  {name:<28}{now:>14}{total:>16}\n"));
    };
    line("aborts", s.n_abort, s.tot_abort);
    line("flush commits", s.n_flush_commit, s.tot_flush_commit);
    line(
        "no_flush commits",
        s.n_no_flush_commit,
        s.tot_no_flush_commit,
    );
    line("log flushes", s.n_flush, s.tot_flush);
    line("rvm_flush calls", s.n_rvm_flush, s.tot_rvm_flush);
    line("log wraps", s.n_wrap, s.tot_wrap);
    line("ranges eliminated", s.n_range_elim, s.tot_range_elim);
    line(
        "bytes saved (ranges)",
        s.range_overlap.low,
        s.tot_range_overlap.low,
    );
    line("ranges merged (commits)", s.n_trans_elim, s.tot_trans_elim);
    line(
        "bytes saved (commits)",
        s.trans_overlap.low,
        s.tot_trans_overlap.low,
    );
    line("log bytes", s.log_written.low, s.tot_log_written.low);
    let mut out = String::from("RVM statistics (rvm-rs)\n");
    out.push_str(&format!(
        "  {:<28}{:>14}{:>16}\n",
        "", "this run", "log lifetime"
    ));
    out.push_str(&t);
    out.push_str(&format!(
        "  open transactions {}, queued no_flush commits {} ({} bytes), log use {}%\n",
        s.n_uncommit, s.n_no_flush, s.no_flush_length.low, s.log_dev_cur
    ));
    out.push_str(&format!(
        "  truncations: {} explicit, {} background, {} other; recoveries {}\n",
        s.tot_rvm_truncate, s.tot_async_truncation, s.tot_sync_truncation, s.tot_recovery
    ));
    out.push_str(match crate::bias::fences() {
        Fences::Available => "  tid calls: biased (membarrier registered)\n",
        Fences::DisabledByEnvironment => "  tid calls: lock word (RVM_CAPI_NO_BIAS set)\n",
        Fences::Refused => "  tid calls: lock word (membarrier refused)\n",
    });
    out
}

/// Print a statistics record as text to `out` (standard output when NULL).
///
/// # Safety
/// `statistics` is NULL or a readable record; `out` is NULL or an open `FILE`.
#[no_mangle]
pub unsafe extern "C" fn rvm_print_statistics(
    statistics: *mut RvmStatistics,
    out: *mut libc::FILE,
) -> RvmReturn {
    guarded!(RVM_EINTERNAL, {
        if statistics.is_null() {
            return RVM_ESTATISTICS;
        }
        // SAFETY: non-null and readable by the caller's contract.
        let s = unsafe { std::ptr::read_unaligned(statistics) };
        if s.struct_id != RVM_STATISTICS_ID {
            return RVM_ESTATISTICS;
        }
        // SAFETY: `out` is NULL or an open FILE (the caller's contract).
        if unsafe { crate::cio::write_file(out, &report(&s)) } {
            RVM_SUCCESS
        } else {
            RVM_EIO
        }
    })
}
