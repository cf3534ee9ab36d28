//! Cold start: the first no_flush commits after a fresh open of a 1 GB segment, with and
//! without the warm-up ([`MapOptions::warm_up`]), against the same commits once every page of
//! the mapping is present.
//!
//! Each run builds a new sparse segment and log (so every run starts from the same state: a
//! segment file of holes, mapped as fresh memory), maps it once so the log records it, closes,
//! and then times `Rvm::open` + `map` and the first commits right after, as a server would issue
//! them. With the warm-up the commits race the warm-up thread: pages it has reached no longer
//! fault, the others still do.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rvm::{BeginMode, CommitMode, MapOptions, Options, Rvm, Segment};

use crate::scenario::{self, proc_status_bytes};
use crate::scratch::Scratch;
use crate::workload::Rng;

/// Bytes each commit writes (one range).
pub const RANGE_BYTES: usize = 64;

/// What one cold run measured.
#[derive(Debug, Clone, Copy)]
pub struct ColdRun {
    /// `Rvm::open` + `Rvm::map`.
    pub open: Duration,
    /// The first commits after open.
    pub cold: Duration,
    /// From the start of open until the warm-up thread finished (warm-up runs only).
    pub warm_up_done: Option<Duration>,
    /// Growth of the process's resident set from before open to after the first commits and,
    /// with warm-up, after the warm-up finished.
    pub rss_growth_bytes: u64,
    /// The same number of commits at other random offsets once every page is present (warm-up
    /// runs only: the warm-up made them present).
    pub warm: Option<Duration>,
}

/// One cold run on a fresh segment of `segment_bytes`: `commits` commits of [`RANGE_BYTES`]
/// at random offsets right after open, with the segment mapped anywhere with `map`'s warm-up
/// and huge pages.
pub fn cold_run(segment_bytes: u64, commits: u64, map: MapOptions, seed: u64) -> Result<ColdRun> {
    let warm_up = map.warm_up;
    let dir = Scratch::new("cold")?;
    let (log, data) = (dir.join("log"), dir.join("data"));
    scenario::create_log(&log, crate::LOG_AREA_BYTES)?;
    scenario::create_segment(&data, segment_bytes)?;
    // The first map records the segment in the log; the timed open finds it there.
    scenario::open_and_map(&log, &data, Options::default())?
        .0
        .close()?;
    let rss_before = proc_status_bytes("VmRSS")?;
    let started = Instant::now();
    let (rvm, seg) = open_and_map(&log, &data, map)?;
    let open = started.elapsed();
    let mut rng = Rng::new(seed);
    let cold = commit_loop(&rvm, &seg, commits, &mut rng)?;
    let mut warm_up_done = None;
    let mut warm = None;
    if warm_up {
        while seg.warming_up() {
            std::thread::sleep(Duration::from_millis(1));
        }
        warm_up_done = Some(started.elapsed());
    }
    let rss_growth_bytes = proc_status_bytes("VmRSS")?.saturating_sub(rss_before);
    if warm_up {
        warm = Some(commit_loop(&rvm, &seg, commits, &mut rng)?);
    }
    rvm.close()?;
    Ok(ColdRun {
        open,
        cold,
        warm_up_done,
        rss_growth_bytes,
        warm,
    })
}

fn open_and_map(log: &Path, data: &Path, map: MapOptions) -> Result<(Rvm, Segment)> {
    let rvm =
        Rvm::open(log, Options::default()).with_context(|| format!("open {}", log.display()))?;
    let options = MapOptions {
        placement: rvm::Placement::Anywhere,
        ..map
    };
    // SAFETY: the bench created the segment file in its own temporary directory; nothing
    // shortens it while it is mapped.
    let seg =
        unsafe { rvm.map(data, options) }.with_context(|| format!("map {}", data.display()))?;
    Ok((rvm, seg))
}

/// `commits` no_flush transactions, each one [`RANGE_BYTES`] range at a random aligned offset of
/// the segment's region (set_range + copy).
fn commit_loop(rvm: &Rvm, seg: &Segment, commits: u64, rng: &mut Rng) -> Result<Duration> {
    let region = seg.regions()[0];
    let slots = (region.length / RANGE_BYTES) as u64;
    let data = [0xa5u8; RANGE_BYTES];
    let started = Instant::now();
    for _ in 0..commits {
        let address = region.address + rng.below(slots) as usize * RANGE_BYTES;
        let mut tx = rvm.begin(BeginMode::NoRestore)?;
        tx.modify_bytes(address, &data)?;
        tx.end(CommitMode::NoFlush)?;
    }
    Ok(started.elapsed())
}
