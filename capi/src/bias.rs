//! Biased tid locking: the per-thread call records and the asymmetric fence that let the
//! thread that began a transaction use its tid without a locked instruction.
//!
//! A tid may be used from any thread, so each call locks its tid slot (`tids`). Almost always
//! the caller is the thread that began the transaction (its *owner*); for it, the lock is a
//! plain store into its own call record ([`Caller::busy`]: "I am in a call on tid X"), a
//! compiler fence, and plain loads of the slot's words. Any other caller first takes the
//! slot's lock word with a compare-and-swap, then runs a [`heavy_fence`] and waits until the
//! owner's record no longer names the tid, and marks the slot *revoked*: from then on every
//! call on that transaction (the owner's too) takes the lock word.
//!
//! This is the asymmetric form of Dekker's mutual exclusion: the fast side's store and load
//! may be reordered by the processor, but `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`,
//! called by the slow side between its own store and load, makes every running thread of the
//! process execute a full memory barrier. So either the owner's store is visible to the slow
//! side after the fence (and the slow side waits for the call to finish), or the owner's load
//! comes after its barrier and sees the slow side's store (and the owner takes the slow path).
//! `rvm_terminate` uses the same fence between raising its terminating flag and looking for
//! calls in progress.
//!
//! Where `membarrier` is unavailable (not Linux, or refused by the kernel or a sandbox), or
//! `RVM_CAPI_NO_BIAS` is set, no record is handed out and every call takes the lock word
//! ([`fences_available`] is false).
//!
//! Records are allocated once and never freed: a thread's record goes back to a pool when the
//! thread exits and is handed to a later thread (one thread at a time owns a record, and the
//! pool's mutex orders the hand-over), so a slot's owner pointer always points to a record.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::state::lock;

/// A thread's call record.
#[repr(align(64))]
pub struct Caller {
    /// The tid value (slot index and generation, never 0) of the call this thread is making on
    /// the fast path, or 0. Written only by the thread that owns the record.
    pub busy: AtomicU64,
}

/// Every record ever allocated (scanned by `rvm_terminate`).
static ALL: Mutex<Vec<&'static Caller>> = Mutex::new(Vec::new());
/// Records of exited threads, for the next threads.
static SPARE: Mutex<Vec<&'static Caller>> = Mutex::new(Vec::new());

thread_local! {
    /// This thread's record (a const thread-local without a destructor: reading it is one
    /// load). Set by `register`, cleared by `Release` at thread exit.
    static ME: Cell<Option<&'static Caller>> = const { Cell::new(None) };
    /// Gives the record back when the thread exits.
    static RELEASE: Release = const { Release };
}

struct Release;

impl Drop for Release {
    fn drop(&mut self) {
        if let Ok(Some(me)) = ME.try_with(|m| m.take()) {
            // Not in a call: a thread cannot exit during one (and a panic in one clears it).
            me.busy.store(0, Ordering::Relaxed);
            lock(&SPARE).push(me);
        }
    }
}

/// This thread's record, if it has one (the fast path's check).
#[inline]
pub fn current() -> Option<&'static Caller> {
    ME.try_with(Cell::get).ok().flatten()
}

/// This thread's record, allocated (or taken from the pool) on first use; `None` when
/// [`fences_available`] is false or the thread is exiting.
pub fn register() -> Option<&'static Caller> {
    if let Some(me) = current() {
        return Some(me);
    }
    register_slow()
}

#[cold]
fn register_slow() -> Option<&'static Caller> {
    if !fences_available() {
        return None;
    }
    // Arm the destructor first: a thread that could not give its record back must not get
    // one (it would be lost, and its slots would keep an owner no thread can clear).
    RELEASE.try_with(|_| ()).ok()?;
    let me = lock(&SPARE).pop().unwrap_or_else(|| {
        let me: &'static Caller = Box::leak(Box::new(Caller {
            busy: AtomicU64::new(0),
        }));
        lock(&ALL).push(me);
        me
    });
    ME.try_with(|m| m.set(Some(me))).ok()?;
    Some(me)
}

/// Whether any thread is in a fast-path call now. Call it after [`heavy_fence`].
pub fn any_busy() -> bool {
    lock(&ALL)
        .iter()
        .any(|c| c.busy.load(Ordering::SeqCst) != 0)
}

#[cfg(target_os = "linux")]
mod membarrier {
    const QUERY: libc::c_int = 0;
    const PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
    const REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

    fn call(cmd: libc::c_int) -> libc::c_long {
        // SAFETY: membarrier takes two integers and touches no memory of ours.
        unsafe {
            libc::syscall(
                libc::SYS_membarrier,
                cmd,
                0 as libc::c_uint,
                0 as libc::c_int,
            )
        }
    }

    /// Register this process for private expedited barriers; false if not supported.
    pub fn register() -> bool {
        let supported = call(QUERY);
        supported >= 0
            && supported & libc::c_long::from(PRIVATE_EXPEDITED) != 0
            && call(REGISTER_PRIVATE_EXPEDITED) == 0
    }

    /// Make every running thread of the process execute a full memory barrier. (Registers
    /// again if the kernel says the process is not registered: a child of `fork` may not
    /// inherit the registration.)
    pub fn fence() -> bool {
        call(PRIVATE_EXPEDITED) == 0
            || (call(REGISTER_PRIVATE_EXPEDITED) == 0 && call(PRIVATE_EXPEDITED) == 0)
    }
}

#[cfg(not(target_os = "linux"))]
mod membarrier {
    pub fn register() -> bool {
        false
    }

    pub fn fence() -> bool {
        false
    }
}

/// Which path tid calls take in this process, and why ([`fences`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fences {
    /// `membarrier` registered: the thread that began a transaction calls on its biased fast
    /// path, other threads revoke the bias with a heavy fence.
    Available,
    /// `RVM_CAPI_NO_BIAS` is set: every call takes the lock word.
    DisabledByEnvironment,
    /// `membarrier` is missing or its registration was refused (not Linux, an old kernel, a
    /// sandbox): every call takes the lock word.
    Refused,
}

/// Which path tid calls take in this process (decided on the first call, registering for
/// heavy fences then). `RVM_CAPI_NO_BIAS` in the environment (any value) says no fences, as
/// where `membarrier` is missing: every call then takes the lock word (for tests of that path,
/// and for comparison).
pub fn fences() -> Fences {
    static FENCES: OnceLock<Fences> = OnceLock::new();
    *FENCES.get_or_init(|| {
        if std::env::var_os("RVM_CAPI_NO_BIAS").is_some() {
            Fences::DisabledByEnvironment
        } else if membarrier::register() {
            Fences::Available
        } else {
            Fences::Refused
        }
    })
}

/// Whether the process can use heavy fences ([`fences`] is [`Fences::Available`]). Fast paths
/// exist only if so.
pub fn fences_available() -> bool {
    fences() == Fences::Available
}

/// The slow side of the asymmetric fence: when it returns, every thread of the process has
/// executed a full memory barrier since it was called. False if that cannot be guaranteed
/// (no fences: then no fast path exists either, see [`fences_available`]; or the kernel
/// refused, which it does not once registered).
pub fn heavy_fence() -> bool {
    fences_available() && membarrier::fence()
}

/// The fast side of the asymmetric fence: orders this thread's earlier store before its later
/// loads against a concurrent [`heavy_fence`] (the processor may still reorder them; the heavy
/// fence covers that).
#[inline(always)]
pub fn light_fence() {
    std::sync::atomic::compiler_fence(Ordering::SeqCst);
}

/// The tests' oracle, shared with `tests/c_programs.rs`.
#[cfg(test)]
#[path = "../tests/support/membarrier.rs"]
mod membarrier_oracle;

#[cfg(test)]
mod tests {
    use super::*;

    use super::membarrier_oracle::kernel_registers_membarrier;

    /// The path the library chose is the one this environment allows: a registration that
    /// the library failed where the kernel allows it would send every "biased" test down the
    /// lock-word path unnoticed.
    #[test]
    fn fences_are_available_exactly_where_the_kernel_registers_membarrier() {
        let expected = if std::env::var_os("RVM_CAPI_NO_BIAS").is_some() {
            Fences::DisabledByEnvironment
        } else if kernel_registers_membarrier() {
            Fences::Available
        } else {
            Fences::Refused
        };
        assert_eq!(fences(), expected);
        assert_eq!(fences_available(), expected == Fences::Available);
        // Once registered, the heavy fence works; without fences it reports that it cannot.
        assert_eq!(heavy_fence(), expected == Fences::Available);
    }

    #[test]
    fn a_record_is_the_threads_own_and_goes_back_to_the_pool_at_exit() {
        if fences() != Fences::Available {
            // The lock-word path (no fences here): no thread gets a record, so no call can be
            // on a fast path, and no heavy fence is claimed.
            let records = lock(&ALL).len();
            assert!(register().is_none());
            assert!(current().is_none());
            let other = std::thread::spawn(|| (register().is_none(), current().is_none()))
                .join()
                .unwrap();
            assert_eq!(other, (true, true));
            assert_eq!(lock(&ALL).len(), records, "no record was handed out");
            assert!(!heavy_fence());
            assert!(!any_busy());
            return;
        }
        // The biased path: each thread gets a record of its own.
        let mine = register().unwrap();
        assert!(std::ptr::eq(current().unwrap(), mine));
        assert!(heavy_fence());
        let other = std::thread::spawn(|| register().unwrap() as *const Caller as usize)
            .join()
            .unwrap();
        assert_ne!(other, mine as *const Caller as usize);
        // The exited thread's record is in the pool (or already taken by another test's
        // thread), and never this thread's.
        assert!(lock(&SPARE).iter().all(|c| !std::ptr::eq(*c, mine)));
        assert!(lock(&ALL)
            .iter()
            .any(|c| *c as *const Caller as usize == other));
    }
}
