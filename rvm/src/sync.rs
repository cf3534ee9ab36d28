//! Poison-tolerant locking: a thread that panicked while holding a lock leaves the data it
//! guards consistent (every critical section of the library either completes its update or
//! makes none), so the next holder takes the lock as it is rather than panicking in turn.

use std::sync::{Mutex, MutexGuard};

/// Lock `m`, taking over the guard if a panicking thread poisoned it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
