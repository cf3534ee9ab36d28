//! `#[repr(C)]` mirrors of the classic records, with their LP64 sizes and offsets checked at
//! compile time against the interface reference (the C headers are checked the same way by
//! the `layout` test, compiled as C and as C++).

use std::mem::{offset_of, size_of};

use libc::{c_char, c_long, c_ulong, c_void, timeval};

pub type RvmLength = c_ulong;
pub type RvmReturn = i32;
/// `rvm_bool_t`, `rvm_struct_id_t` and `rvm_mode_t` are C enums: 4-byte ints. They are kept
/// as plain integers here because a caller may store any value in them.
pub type CEnum = u32;

pub const RVM_FALSE: CEnum = 0;
pub const RVM_TRUE: CEnum = 1;

pub const RVM_REGION_ID: CEnum = 40;
pub const RVM_OPTIONS_ID: CEnum = 41;
pub const RVM_TID_ID: CEnum = 42;
pub const RVM_STATISTICS_ID: CEnum = 43;

pub const MODE_RESTORE: CEnum = 140;
pub const MODE_NO_RESTORE: CEnum = 141;
pub const MODE_FLUSH: CEnum = 142;
pub const MODE_NO_FLUSH: CEnum = 143;

pub const RVM_VERSION: &[u8] = b"RVM Interface Version 1.3  7 Mar 1994";
pub const RVM_STATISTICS_VERSION: &[u8] = b"RVM Statistics Version 1.1 8 Dec 1992";

/// Option defaults (`rvm_init_options`).
pub const TRUNCATE_DEFAULT: c_long = 50;
pub const RECOVERY_BUF_LEN: RvmLength = 256 * 1024;
pub const FLUSH_BUF_LEN: RvmLength = 256 * 1024;
pub const MAX_READ_LEN: RvmLength = 512 * 1024;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RvmOffset {
    pub high: RvmLength,
    pub low: RvmLength,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct RvmTid {
    pub struct_id: CEnum,
    pub from_heap: CEnum,
    pub uname: timeval,
    /// rvm-rs stores the registry id here as a number; it is never dereferenced.
    pub tid: *mut c_void,
    pub reserved: RvmLength,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct RvmOptions {
    pub struct_id: CEnum,
    pub from_heap: CEnum,
    pub log_dev: *mut c_char,
    pub truncate: c_long,
    pub recovery_buf_len: RvmLength,
    pub flush_buf_len: RvmLength,
    pub max_read_len: RvmLength,
    pub log_empty: CEnum,
    pub pager: *mut c_char,
    pub n_uncommit: c_long,
    pub tid_array: *mut RvmTid,
    pub flags: RvmLength,
    pub create_log_file: CEnum,
    pub create_log_size: RvmOffset,
    pub create_log_mode: c_long,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct RvmRegion {
    pub struct_id: CEnum,
    pub from_heap: CEnum,
    pub data_dev: *mut c_char,
    pub dev_length: RvmOffset,
    pub offset: RvmOffset,
    pub vmaddr: *mut c_char,
    pub length: RvmLength,
    pub no_copy: CEnum,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct RvmRegionDef {
    pub offset: RvmOffset,
    pub length: RvmLength,
    pub vmaddr: *mut c_char,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct RvmStatistics {
    pub struct_id: CEnum,
    pub from_heap: CEnum,
    pub n_abort: RvmLength,
    pub n_flush_commit: RvmLength,
    pub n_no_flush_commit: RvmLength,
    pub n_uncommit: RvmLength,
    pub n_no_flush: RvmLength,
    pub n_truncation_wait: RvmLength,
    pub no_flush_length: RvmOffset,
    pub n_split: RvmLength,
    pub n_flush: RvmLength,
    pub n_rvm_flush: RvmLength,
    pub n_special: RvmLength,
    pub n_wrap: RvmLength,
    pub log_dev_cur: RvmLength,
    pub log_written: RvmOffset,
    pub range_overlap: RvmOffset,
    pub trans_overlap: RvmOffset,
    pub n_range_elim: RvmLength,
    pub n_trans_elim: RvmLength,
    pub n_trans_coalesced: RvmLength,
    pub flush_time: timeval,
    pub last_flush_time: RvmLength,
    pub last_truncation_time: RvmLength,
    pub last_tree_build_time: RvmLength,
    pub last_tree_apply_time: RvmLength,
    pub flush_times: [RvmLength; 10],
    pub range_lengths: [RvmLength; 13],
    pub range_elims: [RvmLength; 6],
    pub trans_elims: [RvmLength; 6],
    pub range_overlaps: [RvmLength; 13],
    pub trans_overlaps: [RvmLength; 13],
    pub tot_abort: RvmLength,
    pub tot_flush_commit: RvmLength,
    pub tot_no_flush_commit: RvmLength,
    pub tot_split: RvmLength,
    pub tot_flush: RvmLength,
    pub tot_rvm_flush: RvmLength,
    pub tot_special: RvmLength,
    pub tot_wrap: RvmLength,
    pub log_dev_max: RvmLength,
    pub tot_log_written: RvmOffset,
    pub tot_range_overlap: RvmOffset,
    pub tot_trans_overlap: RvmOffset,
    pub tot_range_elim: RvmLength,
    pub tot_trans_elim: RvmLength,
    pub tot_trans_coalesced: RvmLength,
    pub tot_rvm_truncate: RvmLength,
    pub tot_async_truncation: RvmLength,
    pub tot_sync_truncation: RvmLength,
    pub tot_truncation_wait: RvmLength,
    pub tot_recovery: RvmLength,
    pub tot_flush_time: timeval,
    pub tot_truncation_time: timeval,
    pub tot_tree_build_times: [RvmLength; 5],
    pub tot_tree_apply_times: [RvmLength; 5],
    pub tot_truncation_times: [RvmLength; 5],
    pub tot_flush_times: [RvmLength; 10],
    pub tot_range_lengths: [RvmLength; 13],
    pub tot_range_elims: [RvmLength; 6],
    pub tot_trans_elims: [RvmLength; 6],
    pub tot_range_overlaps: [RvmLength; 13],
    pub tot_trans_overlaps: [RvmLength; 13],
    pub tot_trans_coalesces: [RvmLength; 6],
}

#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct RdsStats {
    pub malloc: u32,
    pub prealloc: u32,
    pub free: u32,
    pub coalesce: u32,
    pub hits: u32,
    pub misses: u32,
    pub large_list: u32,
    pub large_hits: u32,
    pub large_misses: u32,
    pub merged: u32,
    pub unmerged: u32,
    pub freebytes: u32,
    pub mallocbytes: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct IntentionListC {
    pub size: c_ulong,
    pub count: c_ulong,
    pub table: *mut *mut c_char,
}

macro_rules! layout {
    ($t:ty, $size:expr, $($field:ident @ $off:expr),* $(,)?) => {
        const _: () = assert!(size_of::<$t>() == $size);
        $(const _: () = assert!(offset_of!($t, $field) == $off);)*
    };
}

layout!(RvmOffset, 16, high @ 0, low @ 8);
layout!(RvmTid, 40, struct_id @ 0, from_heap @ 4, uname @ 8, tid @ 24, reserved @ 32);
layout!(RvmOptions, 120, struct_id @ 0, from_heap @ 4, log_dev @ 8, truncate @ 16,
    recovery_buf_len @ 24, flush_buf_len @ 32, max_read_len @ 40, log_empty @ 48, pager @ 56,
    n_uncommit @ 64, tid_array @ 72, flags @ 80, create_log_file @ 88, create_log_size @ 96,
    create_log_mode @ 112);
layout!(RvmRegion, 72, struct_id @ 0, from_heap @ 4, data_dev @ 8, dev_length @ 16,
    offset @ 32, vmaddr @ 48, length @ 56, no_copy @ 64);
layout!(RvmRegionDef, 32, offset @ 0, length @ 16, vmaddr @ 24);
layout!(RvmStatistics, 1600, struct_id @ 0, from_heap @ 4, n_abort @ 8, n_flush_commit @ 16,
    n_no_flush_commit @ 24, n_uncommit @ 32, n_no_flush @ 40, n_truncation_wait @ 48,
    no_flush_length @ 56, n_split @ 72, n_flush @ 80, n_rvm_flush @ 88, n_special @ 96,
    n_wrap @ 104, log_dev_cur @ 112, log_written @ 120, range_overlap @ 136,
    trans_overlap @ 152, n_range_elim @ 168, n_trans_elim @ 176, n_trans_coalesced @ 184,
    flush_time @ 192, last_flush_time @ 208, last_truncation_time @ 216,
    last_tree_build_time @ 224, last_tree_apply_time @ 232, flush_times @ 240,
    range_lengths @ 320, range_elims @ 424, trans_elims @ 472, range_overlaps @ 520,
    trans_overlaps @ 624, tot_abort @ 728, tot_flush_commit @ 736, tot_no_flush_commit @ 744,
    tot_split @ 752, tot_flush @ 760, tot_rvm_flush @ 768, tot_special @ 776, tot_wrap @ 784,
    log_dev_max @ 792, tot_log_written @ 800, tot_range_overlap @ 816,
    tot_trans_overlap @ 832, tot_range_elim @ 848, tot_trans_elim @ 856,
    tot_trans_coalesced @ 864, tot_rvm_truncate @ 872, tot_async_truncation @ 880,
    tot_sync_truncation @ 888, tot_truncation_wait @ 896, tot_recovery @ 904,
    tot_flush_time @ 912, tot_truncation_time @ 928, tot_tree_build_times @ 944,
    tot_tree_apply_times @ 984, tot_truncation_times @ 1024, tot_flush_times @ 1064,
    tot_range_lengths @ 1144, tot_range_elims @ 1248, tot_trans_elims @ 1296,
    tot_range_overlaps @ 1344, tot_trans_overlaps @ 1448, tot_trans_coalesces @ 1552);
layout!(RdsStats, 52, malloc @ 0, prealloc @ 4, free @ 8, coalesce @ 12, hits @ 16,
    misses @ 20, large_list @ 24, large_hits @ 28, large_misses @ 32, merged @ 36,
    unmerged @ 40, freebytes @ 44, mallocbytes @ 48);
layout!(IntentionListC, 24, size @ 0, count @ 8, table @ 16);
const _: () = assert!(size_of::<timeval>() == 16);
