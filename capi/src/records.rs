//! Record helpers (`rvm_malloc_*`, `rvm_init_*`, `rvm_copy_*`, `rvm_free_*`), print names,
//! offset arithmetic and the page size. None of these needs `rvm_initialize`.

use std::ffi::c_char;

use crate::codes::rvm_name;
use crate::state::guarded;
use crate::types::*;

/// A record type with the classic header (`struct_id`, `from_heap`) and defaults.
pub trait Record: Copy {
    const ID: CEnum;
    fn fresh() -> Self;
    fn header(&mut self) -> (&mut CEnum, &mut CEnum);
}

fn zeroed<T: Copy>() -> T {
    // SAFETY: every record here is plain integers, arrays of them and raw pointers, for all of
    // which all-zero bytes are a valid value.
    unsafe { std::mem::zeroed() }
}

impl Record for RvmTid {
    const ID: CEnum = RVM_TID_ID;
    fn fresh() -> Self {
        RvmTid {
            struct_id: RVM_TID_ID,
            ..zeroed()
        }
    }
    fn header(&mut self) -> (&mut CEnum, &mut CEnum) {
        (&mut self.struct_id, &mut self.from_heap)
    }
}

impl Record for RvmOptions {
    const ID: CEnum = RVM_OPTIONS_ID;
    fn fresh() -> Self {
        RvmOptions {
            struct_id: RVM_OPTIONS_ID,
            truncate: TRUNCATE_DEFAULT,
            recovery_buf_len: RECOVERY_BUF_LEN,
            flush_buf_len: FLUSH_BUF_LEN,
            max_read_len: MAX_READ_LEN,
            create_log_mode: 0o600,
            ..zeroed()
        }
    }
    fn header(&mut self) -> (&mut CEnum, &mut CEnum) {
        (&mut self.struct_id, &mut self.from_heap)
    }
}

impl Record for RvmRegion {
    const ID: CEnum = RVM_REGION_ID;
    fn fresh() -> Self {
        RvmRegion {
            struct_id: RVM_REGION_ID,
            ..zeroed()
        }
    }
    fn header(&mut self) -> (&mut CEnum, &mut CEnum) {
        (&mut self.struct_id, &mut self.from_heap)
    }
}

impl Record for RvmStatistics {
    const ID: CEnum = RVM_STATISTICS_ID;
    fn fresh() -> Self {
        RvmStatistics {
            struct_id: RVM_STATISTICS_ID,
            ..zeroed()
        }
    }
    fn header(&mut self) -> (&mut CEnum, &mut CEnum) {
        (&mut self.struct_id, &mut self.from_heap)
    }
}

/// A new record from libc `malloc`, initialised, marked `from_heap`; NULL if out of memory.
pub fn malloc_record<T: Record>() -> *mut T {
    guarded!(std::ptr::null_mut(), {
        // SAFETY: plain allocation of the record's size.
        let p = unsafe { libc::malloc(std::mem::size_of::<T>()) } as *mut T;
        if !p.is_null() {
            let mut r = T::fresh();
            *r.header().1 = RVM_TRUE;
            // SAFETY: p is a fresh allocation of T's size (malloc aligns for any type).
            unsafe { p.write(r) };
        }
        p
    })
}

/// Reset a caller's record to its defaults (it is not from the heap).
///
/// # Safety
/// `p` is NULL or points to a writable record.
pub unsafe fn init_record<T: Record>(p: *mut T) {
    guarded!((), {
        if !p.is_null() {
            // SAFETY: the caller's contract; unaligned-safe.
            unsafe { std::ptr::write_unaligned(p, T::fresh()) };
        }
    })
}

/// A heap copy of a record with the right id (shallow: pointers shared); NULL otherwise.
///
/// # Safety
/// `p` is NULL or points to a readable record.
pub unsafe fn copy_record<T: Record>(p: *const T) -> *mut T {
    guarded!(std::ptr::null_mut(), {
        if p.is_null() {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract.
        let mut r = unsafe { std::ptr::read_unaligned(p) };
        if *r.header().0 != T::ID {
            return std::ptr::null_mut();
        }
        *r.header().1 = RVM_TRUE;
        // SAFETY: plain allocation of the record's size.
        let q = unsafe { libc::malloc(std::mem::size_of::<T>()) } as *mut T;
        if !q.is_null() {
            // SAFETY: fresh allocation of T's size.
            unsafe { q.write(r) };
        }
        q
    })
}

/// Free a record that has the right id and came from the heap; others are left alone.
///
/// # Safety
/// `p` is NULL or points to a readable record; if it is marked `from_heap` it came from
/// `rvm_malloc_*`/`rvm_copy_*`.
pub unsafe fn free_record<T: Record>(p: *mut T) {
    guarded!((), {
        if p.is_null() {
            return;
        }
        // SAFETY: the caller's contract.
        let mut r = unsafe { std::ptr::read_unaligned(p) };
        if *r.header().0 == T::ID && *r.header().1 == RVM_TRUE {
            // Clear the id first so a second free of the same pointer is ignored if the
            // memory has not been reused.
            *r.header().0 = 0;
            // SAFETY: marked from_heap: allocated by malloc in this module.
            unsafe {
                std::ptr::write_unaligned(p, r);
                libc::free(p as *mut libc::c_void);
            }
        }
    })
}

macro_rules! record_functions {
    ($t:ty, $malloc:ident, $init:ident, $copy:ident, $free:ident) => {
        /// Allocate an initialised record (libc `malloc`).
        #[no_mangle]
        pub extern "C" fn $malloc() -> *mut $t {
            malloc_record::<$t>()
        }
        /// Initialise a caller's record.
        ///
        /// # Safety
        /// NULL or a writable record.
        #[no_mangle]
        pub unsafe extern "C" fn $init(p: *mut $t) {
            // SAFETY: forwarded.
            unsafe { init_record(p) }
        }
        /// Copy a record onto the heap.
        ///
        /// # Safety
        /// NULL or a readable record.
        #[no_mangle]
        pub unsafe extern "C" fn $copy(p: *mut $t) -> *mut $t {
            // SAFETY: forwarded.
            unsafe { copy_record(p) }
        }
        /// Free a heap record.
        ///
        /// # Safety
        /// NULL or a record from `malloc`/`copy`, or a caller's record (ignored).
        #[no_mangle]
        pub unsafe extern "C" fn $free(p: *mut $t) {
            // SAFETY: forwarded.
            unsafe { free_record(p) }
        }
    };
}

record_functions!(
    RvmTid,
    rvm_malloc_tid,
    rvm_init_tid,
    rvm_copy_tid,
    rvm_free_tid
);
record_functions!(
    RvmOptions,
    rvm_malloc_options,
    rvm_init_options,
    rvm_copy_options,
    rvm_free_options
);
record_functions!(
    RvmRegion,
    rvm_malloc_region,
    rvm_init_region,
    rvm_copy_region,
    rvm_free_region
);
record_functions!(
    RvmStatistics,
    rvm_malloc_statistics,
    rvm_init_statistics,
    rvm_copy_statistics,
    rvm_free_statistics
);

/// The name of a return code (`"RVM_SUCCESS"`, `"RVM_ETID"`, ... or
/// `"Invalid RVM return code"`). The string is static: do not free or change it.
#[no_mangle]
pub extern "C" fn rvm_return(code: RvmReturn) -> *mut c_char {
    rvm_name(code).as_ptr() as *mut c_char
}

/// The name of a transaction mode, or `"Invalid RVM transaction mode"`.
#[no_mangle]
pub extern "C" fn rvm_mode(mode: CEnum) -> *mut c_char {
    let name = match mode {
        MODE_RESTORE => c"restore",
        MODE_NO_RESTORE => c"no_restore",
        MODE_FLUSH => c"flush",
        MODE_NO_FLUSH => c"no_flush",
        _ => c"Invalid RVM transaction mode",
    };
    name.as_ptr() as *mut c_char
}

/// The name of a record type, or `"Invalid RVM structure type"`.
#[no_mangle]
pub extern "C" fn rvm_type(id: CEnum) -> *mut c_char {
    let name = match id {
        RVM_REGION_ID => c"rvm_region_t",
        RVM_OPTIONS_ID => c"rvm_options_t",
        RVM_TID_ID => c"rvm_tid_t",
        // The classic library prints the id's name for this one.
        RVM_STATISTICS_ID => c"rvm_statistics_id",
        _ => c"Invalid RVM structure type",
    };
    name.as_ptr() as *mut c_char
}

fn to_u128(o: RvmOffset) -> u128 {
    (u128::from(o.high) << 64) | u128::from(o.low)
}

fn from_u128(v: u128) -> RvmOffset {
    RvmOffset {
        high: (v >> 64) as RvmLength,
        low: v as u64 as RvmLength,
    }
}

/// # Safety
/// `p` is NULL (read as zero) or a readable offset.
unsafe fn read_offset(p: *const RvmOffset) -> u128 {
    if p.is_null() {
        0
    } else {
        // SAFETY: the caller's contract.
        to_u128(unsafe { std::ptr::read_unaligned(p) })
    }
}

/// The offset with words `high` and `low`.
#[no_mangle]
pub extern "C" fn rvm_mk_offset(high: RvmLength, low: RvmLength) -> RvmOffset {
    RvmOffset { high, low }
}

/// `a + b` (two-word arithmetic with carry, wrapping at 128 bits).
///
/// # Safety
/// Each argument is NULL (zero) or a readable offset.
#[no_mangle]
pub unsafe extern "C" fn rvm_add_offsets(a: *mut RvmOffset, b: *mut RvmOffset) -> RvmOffset {
    // SAFETY: forwarded.
    from_u128(unsafe { read_offset(a) }.wrapping_add(unsafe { read_offset(b) }))
}

/// `offset + length`.
///
/// # Safety
/// `offset` is NULL (zero) or a readable offset.
#[no_mangle]
pub unsafe extern "C" fn rvm_add_length_to_offset(
    offset: *mut RvmOffset,
    length: RvmLength,
) -> RvmOffset {
    // SAFETY: forwarded.
    from_u128(unsafe { read_offset(offset) }.wrapping_add(u128::from(length)))
}

/// `a - b` (with borrow, wrapping at 128 bits).
///
/// # Safety
/// Each argument is NULL (zero) or a readable offset.
#[no_mangle]
pub unsafe extern "C" fn rvm_sub_offsets(a: *mut RvmOffset, b: *mut RvmOffset) -> RvmOffset {
    // SAFETY: forwarded.
    from_u128(unsafe { read_offset(a) }.wrapping_sub(unsafe { read_offset(b) }))
}

/// `offset - length`.
///
/// # Safety
/// `offset` is NULL (zero) or a readable offset.
#[no_mangle]
pub unsafe extern "C" fn rvm_sub_length_from_offset(
    offset: *mut RvmOffset,
    length: RvmLength,
) -> RvmOffset {
    // SAFETY: forwarded.
    from_u128(unsafe { read_offset(offset) }.wrapping_sub(u128::from(length)))
}

/// The offset rounded up to a page multiple.
///
/// # Safety
/// `offset` is NULL (zero) or a readable offset.
#[no_mangle]
pub unsafe extern "C" fn rvm_rnd_offset_up_to_page(offset: *mut RvmOffset) -> RvmOffset {
    let page = u128::from(page_size() as u64);
    // SAFETY: forwarded.
    let v = unsafe { read_offset(offset) };
    from_u128(v.wrapping_add(page - 1) / page * page)
}

/// The offset rounded down to a page multiple.
///
/// # Safety
/// `offset` is NULL (zero) or a readable offset.
#[no_mangle]
pub unsafe extern "C" fn rvm_rnd_offset_dn_to_page(offset: *mut RvmOffset) -> RvmOffset {
    let page = u128::from(page_size() as u64);
    // SAFETY: forwarded.
    from_u128(unsafe { read_offset(offset) } / page * page)
}

fn page_size() -> RvmLength {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as RvmLength
    } else {
        4096
    }
}

/// The page size (also before `rvm_initialize`, unlike the classic library's 0).
#[no_mangle]
pub extern "C" fn rvm_page_size() -> RvmLength {
    page_size()
}

/// `~(page size - 1)`.
#[no_mangle]
pub extern "C" fn rvm_page_mask() -> RvmLength {
    !(page_size() - 1)
}
