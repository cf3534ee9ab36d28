//! The process-wide instance the classic interface implies, the guard every entry point runs
//! in, and the registry of open transactions.
//!
//! The instance is a phase (not initialized, running, terminated) plus, once a log is open,
//! an [`Rvm`] that lives at a fixed address until `rvm_terminate` (transactions borrow it, and
//! they live in the registry between calls). Each entry point that uses it is counted while it
//! runs; `rvm_terminate` reclaims the instance only when no call is running and no
//! transaction is open, so no borrow of it survives.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use libc::timeval;
use rvm::{Rvm, Transaction};

use crate::codes::{RVM_EINIT, RVM_ELOG, RVM_ETID};
use crate::types::{RvmReturn, RvmTid, RVM_TID_ID};

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
        let mut g = global();
        while TERMINATING.load(Ordering::SeqCst) {
            g = GLOBAL_CHANGED.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }
    let mut call = Call { rvm: None };
    if PHASE.load(Ordering::SeqCst) != PHASE_RUNNING {
        return Err(RVM_EINIT); // `call` is dropped: the count goes back down
    }
    let ptr = INSTANCE.load(Ordering::SeqCst);
    // SAFETY: a non-null INSTANCE is the leaked `Rvm` of the running phase; it is reclaimed
    // only by `rvm_terminate`, after `exclusive` has seen no call running (this one is
    // counted) and has cleared INSTANCE.
    call.rvm = unsafe { ptr.as_ref() };
    Ok(call)
}

/// Change the C layer's own settings (only while running).
pub fn with_settings<R>(f: impl FnOnce(&mut Settings) -> R) -> Option<R> {
    match &mut global().phase {
        Phase::Running { settings, .. } => Some(f(settings)),
        _ => None,
    }
}

/// Wait until no other call runs, with new calls held back; `decide` then runs with the
/// global lock held. Used by `rvm_terminate`.
pub fn exclusive<R>(decide: impl FnOnce(&mut Global) -> R) -> R {
    let mut g = global();
    // Only one decision at a time: `GLOBAL` is held from here to the end, so another
    // `exclusive` cannot interleave.
    TERMINATING.store(true, Ordering::SeqCst);
    while CALLS.load(Ordering::SeqCst) > 0 {
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

/// One open transaction. Calls on it are serialized by `tx`'s lock; `None` once ended.
pub struct TidSlot {
    pub uname: (i64, i64),
    pub tx: Mutex<Option<Transaction<'static>>>,
}

/// Tid ids are a counter: hashing them is a multiplication (SipHash showed in profiles).
#[derive(Default)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Registry = HashMap<u64, Arc<TidSlot>, std::hash::BuildHasherDefault<IdHasher>>;

static TIDS: Mutex<Option<Registry>> = Mutex::new(None);
static NEXT_TID: AtomicU64 = AtomicU64::new(1);

/// Register a new transaction; returns the id and uname to store in the caller's record.
pub fn register(tx: Transaction<'static>) -> (u64, timeval) {
    let id = NEXT_TID.fetch_add(1, Ordering::Relaxed);
    let mut now = timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec. The coarse clock is enough for a uname: the id, not the
    // time, makes a tid unique.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) } == 0 {
        now.tv_sec = ts.tv_sec;
        now.tv_usec = ts.tv_nsec / 1000;
    }
    let slot = Arc::new(TidSlot {
        uname: (now.tv_sec, now.tv_usec),
        tx: Mutex::new(Some(tx)),
    });
    lock(&TIDS)
        .get_or_insert_with(Registry::default)
        .insert(id, slot);
    (id, now)
}

/// Read the caller's tid record: `RVM_ETID` for NULL or a record without the tid id.
///
/// # Safety
/// A non-null `tid` must point to readable memory of `rvm_tid_t`'s size.
pub unsafe fn read_tid(tid: *const RvmTid) -> Result<RvmTid, RvmReturn> {
    if tid.is_null() {
        return Err(RVM_ETID);
    }
    // SAFETY: the caller guarantees a readable record; it may be unaligned.
    let t = unsafe { std::ptr::read_unaligned(tid) };
    if t.struct_id != RVM_TID_ID {
        return Err(RVM_ETID);
    }
    Ok(t)
}

fn key(t: &RvmTid) -> (u64, (i64, i64)) {
    (t.tid as u64, (t.uname.tv_sec, t.uname.tv_usec))
}

/// The open transaction a tid record names (by id and uname), or `RVM_ETID`.
pub fn find(t: &RvmTid) -> Result<Arc<TidSlot>, RvmReturn> {
    let (id, uname) = key(t);
    lock(&TIDS)
        .as_ref()
        .and_then(|m| m.get(&id))
        .filter(|s| s.uname == uname)
        .cloned()
        .ok_or(RVM_ETID)
}

/// Take the open transaction a tid record names out of the registry (end or abort).
pub fn take(t: &RvmTid) -> Result<Transaction<'static>, RvmReturn> {
    let (id, uname) = key(t);
    let slot = {
        let mut tids = lock(&TIDS);
        let map = tids.as_mut().ok_or(RVM_ETID)?;
        match map.get(&id) {
            Some(s) if s.uname == uname => map.remove(&id).ok_or(RVM_ETID)?,
            _ => return Err(RVM_ETID),
        }
    };
    // Waits for a call in progress on the same tid.
    let tx = lock(&slot.tx).take();
    tx.ok_or(RVM_ETID)
}

/// The open transactions: (id, uname) each, in id order.
pub fn open_tids() -> Vec<(u64, (i64, i64))> {
    let mut v: Vec<_> = lock(&TIDS)
        .as_ref()
        .map(|m| m.iter().map(|(id, s)| (*id, s.uname)).collect())
        .unwrap_or_default();
    v.sort_unstable();
    v
}

pub fn open_tid_count() -> usize {
    lock(&TIDS).as_ref().map_or(0, |m| m.len())
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

    #[test]
    fn forged_and_null_tids_are_refused_without_dereferencing() {
        // SAFETY: NULL is allowed.
        assert_eq!(unsafe { read_tid(std::ptr::null()) }.err(), Some(RVM_ETID));
        let mut t = RvmTid {
            struct_id: RVM_TID_ID,
            from_heap: 0,
            uname: timeval {
                tv_sec: 1,
                tv_usec: 2,
            },
            // Not a pointer the library follows: any value is just an unknown id.
            tid: 0xdead_beef as *mut libc::c_void,
            reserved: 0,
        };
        assert_eq!(find(&t).err(), Some(RVM_ETID));
        assert_eq!(take(&t).err(), Some(RVM_ETID));
        t.struct_id = 0;
        // SAFETY: `t` is a readable record.
        assert_eq!(unsafe { read_tid(&t) }.err(), Some(RVM_ETID));
    }
}
