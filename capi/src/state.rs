//! The process-wide instance the classic interface implies, the guard every entry point runs
//! in, and the registry of open transactions.
//!
//! The instance is a phase (not initialized, running, terminated) plus, once a log is open,
//! an [`Rvm`] that lives at a fixed address until `rvm_terminate` (transactions borrow it, and
//! they live in the registry between calls). Each entry point that uses it is counted while it
//! runs, except the transaction calls, which mark their tid slot busy instead (`tids`);
//! `rvm_terminate` reclaims the instance only when no call is counted, no tid slot is busy and
//! no transaction is open, so no borrow of it survives.

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use rvm::Rvm;

use crate::codes::{RVM_EINIT, RVM_ELOG};
use crate::types::RvmReturn;

/// Run an entry point's body so that no panic crosses into C: a panic becomes `$on_panic`
/// (`RVM_EINTERNAL`, or a null pointer for functions that return one).
macro_rules! guarded {
    ($on_panic:expr, $body:block) => {
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| $body)) {
            Ok(value) => value,
            Err(_) => $on_panic,
        }
    };
}
pub(crate) use guarded;

/// Options the C layer keeps itself (the library has no use for them).
#[derive(Clone, Copy, Debug, Default)]
pub struct Settings {
    pub flags: u64,
    pub max_read_len: u64,
    pub recovery_buf_len: u64,
    /// Explicit `rvm_flush` and `rvm_truncate` calls (statistics).
    pub rvm_flushes: u64,
    pub rvm_truncates: u64,
}

pub enum Phase {
    Uninitialized,
    Running {
        rvm: Option<&'static Rvm>,
        log_path: Option<std::path::PathBuf>,
        settings: Settings,
    },
    Terminated,
}

pub struct Global {
    pub phase: Phase,
}

static GLOBAL: Mutex<Global> = Mutex::new(Global {
    phase: Phase::Uninitialized,
});
static GLOBAL_CHANGED: Condvar = Condvar::new();

// The running path reads these instead of locking `GLOBAL`: every entry point passes here, and a
// lock (and a condition-variable wake-up) per call cost more than the commit it wraps.
// `publish` keeps them equal to `GLOBAL.phase`; they change only with `GLOBAL` held.
const PHASE_UNINITIALIZED: u8 = 0;
const PHASE_RUNNING: u8 = 1;
const PHASE_TERMINATED: u8 = 2;
static PHASE: AtomicU8 = AtomicU8::new(PHASE_UNINITIALIZED);
static INSTANCE: AtomicPtr<Rvm> = AtomicPtr::new(std::ptr::null_mut());
/// Entry points running with the instance now.
static CALLS: AtomicUsize = AtomicUsize::new(0);
/// `rvm_terminate` is waiting for running calls; new ones wait for its decision.
static TERMINATING: AtomicBool = AtomicBool::new(false);

/// Make the lock-free view equal to `g.phase` (call after every change of it).
pub fn publish(g: &Global) {
    let (phase, rvm) = match &g.phase {
        Phase::Uninitialized => (PHASE_UNINITIALIZED, None),
        Phase::Running { rvm, .. } => (PHASE_RUNNING, *rvm),
        Phase::Terminated => (PHASE_TERMINATED, None),
    };
    let ptr = rvm.map_or(std::ptr::null_mut(), |r| r as *const Rvm as *mut Rvm);
    INSTANCE.store(ptr, Ordering::SeqCst);
    PHASE.store(phase, Ordering::SeqCst);
}

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn global() -> MutexGuard<'static, Global> {
    lock(&GLOBAL)
}

/// What a running call sees of the instance. Dropping it ends the call.
pub struct Call {
    pub rvm: Option<&'static Rvm>,
}

impl Call {
    /// The open log's instance, or `RVM_ELOG` when running without a log.
    pub fn rvm(&self) -> Result<&'static Rvm, RvmReturn> {
        self.rvm.ok_or(RVM_ELOG)
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        // SeqCst pairs with `exclusive`: either it sees this decrement, or this sees its flag
        // and wakes it (under the lock it waits with, so the wake-up is not lost).
        if CALLS.fetch_sub(1, Ordering::SeqCst) == 1 && TERMINATING.load(Ordering::SeqCst) {
            let _g = global();
            GLOBAL_CHANGED.notify_all();
        }
    }
}

/// Whether `rvm_terminate` is deciding (a call that made itself visible as busy, with a
/// sequentially consistent read-modify-write or a light fence paired with the heavy one in
/// `tids::any_busy`, reads this next: see `tids::hold`).
pub fn terminating() -> bool {
    TERMINATING.load(Ordering::SeqCst)
}

/// Wait until `rvm_terminate` has decided (a call that saw it deciding steps back first).
pub fn wait_while_terminating() {
    let mut g = global();
    while TERMINATING.load(Ordering::SeqCst) {
        g = GLOBAL_CHANGED.wait(g).unwrap_or_else(|e| e.into_inner());
    }
}

/// Start a call that needs the instance: `RVM_EINIT` unless it is running.
pub fn enter() -> Result<Call, RvmReturn> {
    loop {
        CALLS.fetch_add(1, Ordering::SeqCst);
        if !TERMINATING.load(Ordering::SeqCst) {
            break;
        }
        // `rvm_terminate` is deciding: step back and wait for it.
        if CALLS.fetch_sub(1, Ordering::SeqCst) == 1 {
            let _g = global();
            GLOBAL_CHANGED.notify_all();
        }
        wait_while_terminating();
    }
    let mut call = Call { rvm: None };
    // SAFETY: this call is counted in CALLS (above), and was before TERMINATING was read as
    // clear. On an error `call` is dropped: the count goes back down.
    call.rvm = unsafe { running_instance() }?;
    Ok(call)
}

/// `RVM_EINIT` unless running; else the running phase's instance (`None` without a log).
///
/// # Safety
/// The caller is visible to `exclusive` for as long as it uses the instance: counted in
/// `CALLS`, or with its tid slot marked busy (see `tids::hold`), and made so before it read
/// `TERMINATING` as clear. `rvm_terminate` reclaims the instance only after `exclusive` has
/// seen no call counted and no tid slot busy, and has cleared `INSTANCE`.
#[inline]
unsafe fn running_instance() -> Result<Option<&'static Rvm>, RvmReturn> {
    if PHASE.load(Ordering::SeqCst) != PHASE_RUNNING {
        return Err(RVM_EINIT);
    }
    let ptr = INSTANCE.load(Ordering::SeqCst);
    // SAFETY: a non-null INSTANCE is the leaked `Rvm` of the running phase, which outlives
    // the caller's use of it (the function's contract above).
    Ok(unsafe { ptr.as_ref() })
}

/// `RVM_EINIT` unless running. Calls on an open tid need nothing more: an open transaction
/// keeps the instance alive (`rvm_terminate` refuses while one is open), and their tid slot,
/// marked busy, stands for the running-call count (see `tids::hold`). Those calls
/// (`capi::tx`) ask this only after a refusal, to answer `RVM_EINIT` when not running.
pub fn running() -> Result<(), RvmReturn> {
    if PHASE.load(Ordering::Relaxed) == PHASE_RUNNING {
        Ok(())
    } else {
        Err(RVM_EINIT)
    }
}

/// The instance for a call that begins a transaction. The caller has marked its tid slot busy
/// (a sequentially consistent read-modify-write, or a store and a light fence paired with the
/// heavy fence in `tids::any_busy`), which `exclusive` waits for, and clears
/// that mark while this waits for a terminate decision (`unmark`) before marking again
/// (`mark`).
pub fn instance_for_begin(mark: impl Fn(), unmark: impl Fn()) -> Result<&'static Rvm, RvmReturn> {
    while TERMINATING.load(Ordering::SeqCst) {
        unmark();
        wait_while_terminating();
        mark();
    }
    // SAFETY: the caller's tid slot is busy, marked before TERMINATING was read as clear.
    unsafe { running_instance() }?.ok_or(RVM_ELOG)
}

/// Change the C layer's own settings (only while running).
pub fn with_settings<R>(f: impl FnOnce(&mut Settings) -> R) -> Option<R> {
    match &mut global().phase {
        Phase::Running { settings, .. } => Some(f(settings)),
        _ => None,
    }
}

/// Wait until no other call runs (none counted, and `busy` false: no tid slot busy, see
/// `tids::any_busy`), with new calls held back; `decide` then runs with the global lock held.
/// Used by `rvm_terminate`.
pub fn exclusive<R>(busy: impl Fn() -> bool, decide: impl FnOnce(&mut Global) -> R) -> R {
    let mut g = global();
    // Only one decision at a time: `GLOBAL` is held from here to the end, so another
    // `exclusive` cannot interleave.
    TERMINATING.store(true, Ordering::SeqCst);
    while CALLS.load(Ordering::SeqCst) > 0 || busy() {
        g = GLOBAL_CHANGED
            .wait_timeout(g, std::time::Duration::from_millis(10))
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    let result = decide(&mut g);
    publish(&g);
    TERMINATING.store(false, Ordering::SeqCst);
    GLOBAL_CHANGED.notify_all();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::RVM_EINTERNAL;

    #[test]
    fn a_panic_in_an_entry_point_becomes_einternal() {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let code: RvmReturn = guarded!(RVM_EINTERNAL, {
            if RVM_EINIT > 0 {
                panic!("bug");
            }
            0
        });
        std::panic::set_hook(previous);
        assert_eq!(code, RVM_EINTERNAL);
        let null: *mut u8 = guarded!(std::ptr::null_mut(), { panic!("bug") });
        assert!(null.is_null());
    }
}
