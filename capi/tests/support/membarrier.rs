//! The test oracle for the biased tid path, shared by the crate's unit tests (`bias.rs`) and
//! `c_programs.rs`: what the kernel says, asked directly (not through the code under test).

/// Whether the kernel lets this process register for `membarrier`'s private expedited
/// barriers, which the biased tid path needs (a child inherits the same kernel and sandbox).
/// Registering twice is harmless.
#[cfg(target_os = "linux")]
pub fn kernel_registers_membarrier() -> bool {
    let call = |cmd: libc::c_int| {
        // SAFETY: membarrier takes integers and touches no memory of ours.
        unsafe {
            libc::syscall(
                libc::SYS_membarrier,
                cmd,
                0 as libc::c_uint,
                0 as libc::c_int,
            )
        }
    };
    let supported = call(0);
    supported >= 0 && supported & (1 << 3) != 0 && call(1 << 4) == 0
}

/// Not Linux: no `membarrier`.
#[cfg(not(target_os = "linux"))]
pub fn kernel_registers_membarrier() -> bool {
    false
}
