//! Writing text to a C `FILE` (the printing entry points and RDS tracing).

use std::ffi::CString;

extern "C" {
    static mut stdout: *mut libc::FILE;
}

/// Write `text` to `file` (standard output when NULL) and flush it; false on an error.
///
/// # Safety
/// `file` is NULL or an open `FILE`.
pub unsafe fn write_file(file: *mut libc::FILE, text: &str) -> bool {
    let file = if file.is_null() {
        // SAFETY: glibc's `stdout` is initialised before main and only read here.
        unsafe { *std::ptr::addr_of!(stdout) }
    } else {
        file
    };
    let Ok(c) = CString::new(text.replace('\0', "")) else {
        return false;
    };
    // SAFETY: `file` is an open FILE; `c` is a NUL-terminated string.
    unsafe { libc::fputs(c.as_ptr(), file) >= 0 && libc::fflush(file) == 0 }
}
