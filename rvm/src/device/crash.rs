//! `CrashDevice`: a memory device that can crash (tests): writes after the crash point are
//! lost, unsynced writes torn by sector.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use super::interface::{out_of_range, Device};
use crate::sync::lock;

/// Sector size at which the crash device tears unsynced writes.
pub const CRASH_SECTOR_SIZE: u64 = 512;
/// Shared crash schedule for a set of [`CrashDevice`]s (say a log and a segment): the devices
/// count their writes and syncs together, and crash together.
#[derive(Debug)]
pub struct CrashController {
    state: Mutex<CrashState>,
}

#[derive(Debug)]
struct CrashState {
    ops: u64,
    crash_at: Option<u64>,
    crashed: bool,
    rng: u64,
}

impl CrashController {
    /// `seed` drives which unsynced sectors survive a crash.
    pub fn new(seed: u64) -> Arc<CrashController> {
        Arc::new(CrashController {
            state: Mutex::new(CrashState {
                ops: 0,
                crash_at: None,
                crashed: false,
                rng: seed | 1,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, CrashState> {
        lock(&self.state)
    }

    /// Crash when the `n`th write or sync from now (0 = the next one) is attempted: that
    /// operation and every later one fails with an I/O error. A crashing write is torn.
    pub fn crash_after(&self, n: u64) {
        let mut s = self.lock();
        s.crash_at = Some(s.ops + n);
    }

    /// Crash now: every later operation fails until the devices are restarted.
    pub fn crash_now(&self) {
        self.lock().crashed = true;
    }

    /// True once the scheduled crash has happened.
    pub fn has_crashed(&self) -> bool {
        self.lock().crashed
    }

    /// Writes and syncs attempted so far.
    pub fn operations(&self) -> u64 {
        self.lock().ops
    }

    /// Count one operation; returns Err if the device is (now) crashed, and whether this very
    /// operation is the crashing one.
    fn tick(&self) -> io::Result<bool> {
        let mut s = self.lock();
        if s.crashed {
            return Err(crashed_error());
        }
        let now = s.ops;
        s.ops += 1;
        if s.crash_at == Some(now) {
            s.crashed = true;
            return Ok(true);
        }
        Ok(false)
    }

    fn check(&self) -> io::Result<()> {
        if self.lock().crashed {
            Err(crashed_error())
        } else {
            Ok(())
        }
    }

    fn next_random(&self) -> u64 {
        let mut s = self.lock();
        // xorshift64*: deterministic for a given seed, good enough to pick sectors.
        let mut x = s.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn restart(&self) {
        let mut s = self.lock();
        s.crashed = false;
        s.crash_at = None;
    }
}

fn crashed_error() -> io::Error {
    io::Error::other("simulated crash: device is down")
}

/// What happens to unsynced writes when a [`CrashDevice`] restarts after a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tear {
    /// Every unsynced sector is lost.
    DropAll,
    /// Every unsynced sector reached the media.
    KeepAll,
    /// Each unsynced sector independently reached the media or not (the default).
    RandomSectors,
}

/// A device with a *live* image (what reads see) and a *durable* image (what survives a crash).
/// Writes land in the live image and are remembered as pending; `sync` makes them durable;
/// [`CrashDevice::restart`] throws the live image away and rebuilds it from the durable image
/// plus some of the pending writes, torn at 512-byte sector granularity.
#[derive(Debug)]
pub struct CrashDevice {
    name: String,
    controller: Arc<CrashController>,
    images: Mutex<CrashImages>,
}

#[derive(Debug)]
struct CrashImages {
    live: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<(u64, Vec<u8>)>,
    tear: Tear,
}

impl CrashDevice {
    /// A device named `name` whose live and durable images both start as `initial`; it crashes
    /// when `controller` says so.
    pub fn new(name: &str, controller: Arc<CrashController>, initial: Vec<u8>) -> CrashDevice {
        CrashDevice {
            name: name.to_string(),
            controller,
            images: Mutex::new(CrashImages {
                live: initial.clone(),
                durable: initial,
                pending: Vec::new(),
                tear: Tear::RandomSectors,
            }),
        }
    }

    fn images(&self) -> MutexGuard<'_, CrashImages> {
        lock(&self.images)
    }

    /// What a crash does to writes that were not synced.
    pub fn set_tear(&self, tear: Tear) {
        self.images().tear = tear;
    }

    /// The durable image: what a restart would start from (before torn writes are added).
    pub fn durable(&self) -> Vec<u8> {
        self.images().durable.clone()
    }

    /// The live image.
    pub fn live(&self) -> Vec<u8> {
        self.images().live.clone()
    }

    /// Simulate power loss and reboot: keep the durable image plus a torn selection of the
    /// pending writes (per [`Tear`]), then bring the device back up.
    pub fn restart(&self) {
        let mut im = self.images();
        let pending = std::mem::take(&mut im.pending);
        let tear = im.tear;
        let mut durable = std::mem::take(&mut im.durable);
        for (offset, data) in pending {
            let end = offset as usize + data.len();
            if durable.len() < end {
                durable.resize(end, 0);
            }
            // Tear at absolute sector boundaries: each sector the write touches survives whole
            // or not at all.
            let mut at = offset;
            while at < offset + data.len() as u64 {
                let sector_end = ((at / CRASH_SECTOR_SIZE) + 1) * CRASH_SECTOR_SIZE;
                let piece_end = sector_end.min(offset + data.len() as u64);
                let keep = match tear {
                    Tear::DropAll => false,
                    Tear::KeepAll => true,
                    Tear::RandomSectors => self.controller.next_random() & 1 == 0,
                };
                if keep {
                    durable[at as usize..piece_end as usize].copy_from_slice(
                        &data[(at - offset) as usize..(piece_end - offset) as usize],
                    );
                }
                at = piece_end;
            }
        }
        im.live = durable.clone();
        im.durable = durable;
        drop(im);
        self.controller.restart();
    }
}

impl Device for CrashDevice {
    fn name(&self) -> &str {
        &self.name
    }
    fn len(&self) -> io::Result<u64> {
        self.controller.check()?;
        Ok(self.images().live.len() as u64)
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.controller.check()?;
        let im = self.images();
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|e| *e <= im.live.len() as u64);
        match end {
            Some(end) => {
                buf.copy_from_slice(&im.live[offset as usize..end as usize]);
                Ok(())
            }
            None => Err(out_of_range(offset, buf.len(), im.live.len())),
        }
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let crashing = self.controller.tick()?;
        let mut im = self.images();
        let end = offset as usize + buf.len();
        if im.live.len() < end {
            im.live.resize(end, 0);
        }
        im.live[offset as usize..end].copy_from_slice(buf);
        im.pending.push((offset, buf.to_vec()));
        if crashing {
            return Err(crashed_error());
        }
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        if self.controller.tick()? {
            return Err(crashed_error());
        }
        let mut im = self.images();
        im.pending.clear();
        im.durable = im.live.clone();
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.controller.check()?;
        let mut im = self.images();
        im.live.resize(len as usize, 0);
        im.durable.resize(len as usize, 0);
        Ok(())
    }
}
