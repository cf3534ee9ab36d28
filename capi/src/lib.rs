//! # rvm-capi: the classic RVM/RDS C interface over rvm-rs
//!
//! A C or C++ program written for Coda's RVM includes `<rvm/rvm.h>`, `<rvm/rvm_segment.h>`,
//! `<rvm/rvm_statistics.h>` and `<rvm/rds.h>` from `capi/include/` and links with this
//! library (installed as `librvm.so` and under every classic name by `capi/install`).
//!
//! This crate is a thin shell: the process-wide instance the classic interface implies, the
//! registry that turns caller-owned tid records into transactions, the C records and the
//! classic return codes. The log, recovery, mapping, segments and heap are the `rvm` crate's.
//!
//! Every entry point runs its body under `catch_unwind` (a panic becomes `RVM_EINTERNAL` or
//! a NULL result), checks NULL pointers, record ids and tids before using them, and never
//! dereferences a pointer field of a caller's record that the interface does not define as
//! one (a tid's `tid` field is a registry id, not a pointer).

mod args;
mod bias;
mod cio;
pub mod codes;
mod current_heap;
mod lifecycle;
mod map;
mod options;
mod rds;
mod records;
mod segment;
mod state;
mod stats;
mod tids;
mod tx;
pub mod types;

use std::sync::atomic::AtomicU32;

/// `rvm_no_yield`: accepted for compatibility and ignored (rvm-rs truncates in a thread of
/// its own). A `rvm_bool_t` in the classic library; eight bytes here, so callers that declare
/// it `extern long` do not write past it.
#[repr(C, align(8))]
pub struct NoYield {
    pub value: AtomicU32,
    pub high: AtomicU32,
}

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static rvm_no_yield: NoYield = NoYield {
    value: AtomicU32::new(0),
    high: AtomicU32::new(0),
};

pub use stats::report as statistics_report;
