//! Range locks: the isolation mode (`Options::isolation`).
//!
//! With isolation on, `Transaction::set_range` locks the declared bytes for the transaction
//! until it ends or aborts. A transaction that declares bytes another transaction holds waits
//! until they are released, at most `Options::lock_timeout` ([`Error::LockTimeout`]); if the
//! holder is itself waiting, directly or through others, for a lock the requester holds, the
//! request fails at once with [`Error::Deadlock`] instead of waiting. Readers
//! (`Segment::read_bytes`, `Rvm::read`) wait the same way until no other thread's transaction
//! holds any byte they read, then copy while holding the table's mutex, so no writer can take
//! a lock on those bytes mid-copy: a reader never sees a half-written value.
//!
//! A thread never waits for its own transactions: reading bytes a transaction of the calling
//! thread holds returns them as they are, and declaring them in a second transaction of the
//! same thread is a deadlock (reported at once).
//!
//! The table is a list: fine for the tens of ranges a transaction usually declares; the cost
//! is only paid with isolation on.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy)]
struct Held {
    start: usize,
    end: usize,
    owner: u64,
    thread: ThreadId,
}

#[derive(Debug, Default)]
struct Table {
    held: Vec<Held>,
    /// Wait-for edges: (waiting transaction, the transaction it waits for).
    waiting: Vec<(u64, u64)>,
    /// Threads blocked in `released.wait_timeout`.
    sleepers: usize,
}

/// The range-lock table of one instance.
#[derive(Debug)]
pub(crate) struct RangeLocks {
    table: Mutex<Table>,
    released: Condvar,
    timeout: Duration,
}

impl RangeLocks {
    pub(crate) fn new(timeout: Duration) -> RangeLocks {
        RangeLocks {
            table: Mutex::new(Table::default()),
            released: Condvar::new(),
            timeout,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        crate::sync::lock(&self.table)
    }

    /// Wait (bounded by the deadline) for a release; `Err` names the holder on timeout.
    fn sleep<'g>(
        &'g self,
        mut t: MutexGuard<'g, Table>,
        started: Instant,
        what: impl FnOnce() -> String,
        holder: u64,
    ) -> Result<MutexGuard<'g, Table>> {
        let waited = started.elapsed();
        if waited >= self.timeout {
            return Err(Error::LockTimeout {
                what: what(),
                holder,
                waited_ms: waited.as_millis() as u64,
            });
        }
        t.sleepers += 1;
        let (mut t, _) = self
            .released
            .wait_timeout(t, self.timeout - waited)
            .unwrap_or_else(|e| e.into_inner());
        t.sleepers -= 1;
        Ok(t)
    }

    /// Lock `[start, end)` for transaction `owner`, waiting while another transaction holds
    /// any of it.
    pub(crate) fn acquire(&self, owner: u64, start: usize, end: usize) -> Result<()> {
        let me = std::thread::current().id();
        let started = Instant::now();
        let mut t = self.lock();
        loop {
            let conflict = t
                .held
                .iter()
                .find(|h| h.owner != owner && h.start < end && start < h.end)
                .copied();
            let Some(h) = conflict else {
                t.waiting.retain(|&(w, _)| w != owner);
                t.held.push(Held {
                    start,
                    end,
                    owner,
                    thread: me,
                });
                return Ok(());
            };
            if h.thread == me || waits_for(&t.waiting, h.owner, owner) {
                t.waiting.retain(|&(w, _)| w != owner);
                return Err(Error::Deadlock {
                    address: start as u64,
                    length: (end - start) as u64,
                    holder: h.owner,
                    requester: owner,
                });
            }
            t.waiting.retain(|&(w, _)| w != owner);
            t.waiting.push((owner, h.owner));
            let what = || format!("range lock on {start:#x}..{end:#x} for transaction {owner}");
            t = match self.sleep(t, started, what, h.owner) {
                Ok(t) => t,
                Err(e) => {
                    let mut t = self.lock();
                    t.waiting.retain(|&(w, _)| w != owner);
                    return Err(e);
                }
            };
        }
    }

    /// Run `copy` once no other thread's transaction holds any byte of `[start, end)`, with
    /// the table locked (so none can take such a lock until `copy` returns).
    pub(crate) fn read<R>(&self, start: usize, end: usize, copy: impl FnOnce() -> R) -> Result<R> {
        let me = std::thread::current().id();
        let started = Instant::now();
        let mut t = self.lock();
        loop {
            let conflict = t
                .held
                .iter()
                .find(|h| h.thread != me && h.start < end && start < h.end)
                .copied();
            let Some(h) = conflict else {
                return Ok(copy());
            };
            let what = || format!("reading {start:#x}..{end:#x}");
            t = self.sleep(t, started, what, h.owner)?;
        }
    }

    /// Release every range `owner` holds.
    pub(crate) fn release(&self, owner: u64) {
        let mut t = self.lock();
        let before = t.held.len();
        t.held.retain(|h| h.owner != owner);
        let wake = t.held.len() != before && t.sleepers > 0;
        drop(t);
        if wake {
            self.released.notify_all();
        }
    }
}

/// Whether `from` waits, directly or through a chain of waiters, for `target`.
fn waits_for(edges: &[(u64, u64)], from: u64, target: u64) -> bool {
    let mut at = from;
    for _ in 0..=edges.len() {
        match edges.iter().find(|&&(w, _)| w == at) {
            Some(&(_, next)) if next == target => return true,
            Some(&(_, next)) => at = next,
            None => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cycle_of_waiters_is_found_and_a_chain_is_not_a_cycle() {
        assert!(waits_for(&[(2, 3), (3, 1)], 2, 1));
        assert!(!waits_for(&[(2, 3), (3, 4)], 2, 1));
        assert!(
            !waits_for(&[(2, 3), (3, 2)], 2, 1),
            "a loop not through 1 ends"
        );
    }

    #[test]
    fn overlapping_ranges_of_one_transaction_do_not_conflict() {
        let l = RangeLocks::new(Duration::from_millis(10));
        l.acquire(1, 0, 16).unwrap();
        l.acquire(1, 8, 24).unwrap();
        l.release(1);
        l.acquire(2, 0, 24).unwrap();
    }
}
