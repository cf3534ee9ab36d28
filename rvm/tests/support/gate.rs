//! A device whose reads or syncs can be held at a gate, so that a test can act while a
//! truncation (or anything else) waits at a known point.

use std::io;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rvm::device::Device;

/// Where the gate stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Gate {
    Open,
    /// The next read stops (and the gate becomes `Holding`).
    Armed,
    /// The sync after this many more syncs stops (and the gate becomes `Holding`).
    ArmedSync(u32),
    Holding,
}

/// How long [`GatedLog::wait_holding`] waits for a read or sync to reach the gate: far
/// longer than any truncation takes to start, short of a hung test.
pub const HOLD_WAIT_MAX: Duration = Duration::from_secs(60);

/// Opens the gate if the test fails while the gate holds (see [`GatedLog::wait_holding`]).
pub struct Held<'a> {
    log: &'a GatedLog,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.log.set(Gate::Open);
        }
    }
}

/// A device whose reads or syncs can be held at a gate.
#[derive(Debug)]
pub struct GatedLog {
    dev: Arc<dyn Device>,
    gate: Mutex<Gate>,
    cond: Condvar,
}

impl GatedLog {
    pub fn set(&self, gate: Gate) {
        *self.gate.lock().unwrap() = gate;
        self.cond.notify_all();
    }

    /// Wait until a read or sync is held at the gate. Fails the test (opening the gate first,
    /// so that nothing stops at it later and the instance can close) when none is within
    /// [`HOLD_WAIT_MAX`]. The guard opens the gate if the test fails while it is held, so the
    /// held thread can finish and the instance close instead of the test hanging.
    #[must_use = "bind the guard (`let _held = ...`) for the time the gate holds"]
    pub fn wait_holding(&self) -> Held<'_> {
        if !self.wait_holding_for(HOLD_WAIT_MAX) {
            self.set(Gate::Open);
            panic!("nothing reached the gate within {HOLD_WAIT_MAX:?}");
        }
        Held { log: self }
    }

    /// Wait until a read or sync is held at the gate, for at most `limit`; returns whether
    /// one is.
    pub fn wait_holding_for(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut g = self.gate.lock().unwrap();
        while *g != Gate::Holding {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            g = self.cond.wait_timeout(g, left).unwrap().0;
        }
        true
    }

    /// Hold the caller here while the gate holds.
    fn hold(&self, mut g: std::sync::MutexGuard<'_, Gate>) {
        *g = Gate::Holding;
        self.cond.notify_all();
        while *g == Gate::Holding {
            g = self.cond.wait(g).unwrap();
        }
    }
}

impl Device for GatedLog {
    fn name(&self) -> &str {
        self.dev.name()
    }
    fn len(&self) -> io::Result<u64> {
        self.dev.len()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let g = self.gate.lock().unwrap();
        if *g == Gate::Armed {
            self.hold(g);
        } else {
            drop(g);
        }
        self.dev.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.dev.write_at(buf, offset)
    }
    fn sync(&self) -> io::Result<()> {
        let mut g = self.gate.lock().unwrap();
        match *g {
            Gate::ArmedSync(0) => self.hold(g),
            Gate::ArmedSync(n) => *g = Gate::ArmedSync(n - 1),
            _ => {}
        }
        self.dev.sync()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.dev.set_len(len)
    }
}

/// `dev` behind an open gate.
pub fn gated(dev: Arc<dyn Device>) -> Arc<GatedLog> {
    Arc::new(GatedLog {
        dev,
        gate: Mutex::new(Gate::Open),
        cond: Condvar::new(),
    })
}
