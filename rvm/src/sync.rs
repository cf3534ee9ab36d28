//! Poison-tolerant locking: when a thread panicked while holding one of the library's locks,
//! the next holder takes the lock and its data as they are, rather than panicking in turn
//! (one panicking caller must not make every later call of the instance panic).

use std::sync::{Mutex, MutexGuard};

/// Lock `m`, taking over the guard if a panicking thread poisoned it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
