//! Benchmark scenarios: files set up once, then an operation timed many times.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use rvm::format::log::transaction_record_size;
use rvm::segment::{self, CreateOptions, RegionSpec};
use rvm::{BeginMode, CommitMode, MapOptions, Options, Rvm, Segment, Statistics};

use crate::limits::{self, PAGE_BYTES};
use crate::scratch::Scratch;
use crate::workload::{Mix, Rng, MIX_A_TRANSACTIONS};

/// Log bytes kept free when filling a log "full": room for a flush's sector pad and the
/// largest mix record, so that filling never makes the library truncate on its own.
const FILL_MARGIN_BYTES: u64 = 64 * 1024;
/// The filler flushes whenever this many no_flush bytes are queued.
const FILL_FLUSH_BYTES: u64 = 1 << 20;

/// Create a log file with a record area of `area_bytes`.
pub fn create_log(path: &Path, area_bytes: u64) -> Result<()> {
    Rvm::create_log(path, area_bytes).with_context(|| format!("create log {}", path.display()))
}

/// Create a sparse segment file of `length_bytes` with one region covering everything after
/// the header. It is mapped wherever the kernel chooses (`MapOptions::anywhere`), so the
/// address its header records does not matter.
pub fn create_segment(path: &Path, length_bytes: u64) -> Result<()> {
    let region =
        (length_bytes - rvm::format::segment::SEGMENT_HEADER_SIZE) / PAGE_BYTES * PAGE_BYTES;
    let header = segment::layout(
        length_bytes,
        &[RegionSpec {
            length: region,
            address: 0x1000_0000_0000,
        }],
    )?;
    segment::create(path, &header, CreateOptions::default())?;
    Ok(())
}

/// Open a log and map a segment with it.
pub fn open_and_map(log: &Path, data: &Path, options: Options) -> Result<(Rvm, Segment)> {
    open_and_map_with(log, data, options, MapOptions::anywhere())
}

/// [`open_and_map`] with the segment mapped as `map` says.
pub fn open_and_map_with(
    log: &Path,
    data: &Path,
    options: Options,
    map: MapOptions,
) -> Result<(Rvm, Segment)> {
    let rvm = Rvm::open(log, options).with_context(|| format!("open {}", log.display()))?;
    // SAFETY: the bench created the segment file in its own temporary directory; nothing shortens
    // it while it is mapped.
    let seg = unsafe { rvm.map(data, map) }.with_context(|| format!("map {}", data.display()))?;
    Ok((rvm, seg))
}

/// What a fill committed.
#[derive(Debug, Clone, Default)]
pub struct Filled {
    pub transactions: u64,
    pub ranges: u64,
    pub range_bytes: u64,
    /// Log bytes in use afterwards.
    pub log_used_bytes: u64,
    /// File offsets (in the segment) of every page a range touched, sorted, without duplicates.
    pub touched_pages: Vec<u64>,
}

/// Commit transactions of `mix` (no_flush, flushed every [`FILL_FLUSH_BYTES`]) until
/// `limit` transactions are committed or the log is full; everything is flushed at the end.
/// Needs an instance opened with truncation disabled (`truncate_threshold(0)`).
pub fn fill(
    rvm: &Rvm,
    seg: &Segment,
    mix: Mix,
    rng: &mut Rng,
    limit: Option<u64>,
) -> Result<Filled> {
    let region = seg.regions()[0];
    let area = rvm.query().area_size;
    let mut used = rvm.query().used_bytes;
    let mut queued = 0u64;
    let mut filled = Filled::default();
    let mut ranges = Vec::new();
    let mut pages = Vec::new();
    while limit.is_none_or(|l| filled.transactions < l) {
        mix.next_transaction(rng, region.length, &mut ranges);
        let size = transaction_record_size(ranges.iter().map(|r| r.1 as u64));
        if used + queued + size + FILL_MARGIN_BYTES > area {
            break;
        }
        let mut tx = rvm.begin(BeginMode::NoRestore)?;
        let byte = (filled.transactions as u8) | 1;
        for &(offset, length) in &ranges {
            tx.fill(region.address + offset, length, byte)?;
            let file_offset = region.segment_offset + offset as u64;
            let first = file_offset / PAGE_BYTES;
            let last = (file_offset + length as u64 - 1) / PAGE_BYTES;
            pages.extend((first..=last).map(|p| p * PAGE_BYTES));
            filled.ranges += 1;
            filled.range_bytes += length as u64;
        }
        tx.end(CommitMode::NoFlush)?;
        filled.transactions += 1;
        queued += size;
        if queued >= FILL_FLUSH_BYTES {
            rvm.flush()?;
            used = rvm.query().used_bytes;
            queued = 0;
        }
    }
    rvm.flush()?;
    pages.sort_unstable();
    pages.dedup();
    filled.touched_pages = pages;
    filled.log_used_bytes = rvm.query().used_bytes;
    Ok(filled)
}

/// Write every page of every region once, outside any transaction and without changing a
/// byte, so that the copy-on-write fault of each page's first write (the application's cost,
/// whatever library it uses) is not counted in a steady-state commit rate.
pub fn touch_every_page(seg: &Segment) {
    for r in seg.regions() {
        for at in (r.address..r.address + r.length).step_by(PAGE_BYTES as usize) {
            // SAFETY: `at` lies inside a region of `seg`, which stays mapped while the caller
            // holds it; the byte is written back with the value it has, and no transaction is
            // running on this page.
            unsafe {
                let p = at as *mut u8;
                std::ptr::write_volatile(p, std::ptr::read_volatile(p));
            }
        }
    }
}

/// Times of one recovery.
#[derive(Debug, Clone)]
pub struct RecoveryTimes {
    /// `Rvm::open` + `map` returned: the application can use the segment.
    pub ready: Duration,
    /// Also the log truncated and the segment synced (`wait_for_truncation` returned).
    pub durable: Duration,
    pub statistics: Statistics,
}

/// A 30 MB log full of committed, untruncated transactions (as a crash leaves it) and the
/// segment they belong to. The log's bytes are kept in memory and written back before each
/// recovery, so every recovery starts from the same crashed state. Recovery writes the same
/// values each time, so the segment needs no restoring.
pub struct RecoveryScenario {
    _dir: Scratch,
    pub mix: Mix,
    pub log: PathBuf,
    pub data: PathBuf,
    image: Vec<u8>,
    pub filled: Filled,
}

impl RecoveryScenario {
    pub fn build(mix: Mix, segment_bytes: u64, log_area_bytes: u64, seed: u64) -> Result<Self> {
        let dir = Scratch::new(&format!("recovery-{}", mix.name()))?;
        let log = dir.join("log");
        let data = dir.join("data");
        create_log(&log, log_area_bytes)?;
        create_segment(&data, segment_bytes)?;
        let (rvm, seg) = open_and_map(&log, &data, Options::default().truncate_threshold(0))?;
        let mut rng = Rng::new(seed);
        let filled = match mix {
            Mix::Wrapped => {
                // Move the head past the middle of the area, so that mix (a) written after it
                // runs into the end of the area and continues at its start.
                fill(
                    &rvm,
                    &seg,
                    Mix::OneRange,
                    &mut Rng::new(!seed),
                    Some(MIX_A_TRANSACTIONS / 2),
                )?;
                rvm.truncate()?;
                let filled = fill(&rvm, &seg, mix, &mut rng, mix.transactions())?;
                let state = rvm.query();
                ensure!(
                    state.tail_offset < state.head_offset,
                    "the wrapped mix did not wrap (head {}, tail {})",
                    state.head_offset,
                    state.tail_offset
                );
                filled
            }
            _ => fill(&rvm, &seg, mix, &mut rng, mix.transactions())?,
        };
        // The log as a crash right now would leave it: every record flushed, none truncated,
        // the status not marked clean.
        let image = std::fs::read(&log)?;
        rvm.close()?;
        Ok(RecoveryScenario {
            _dir: dir,
            mix,
            log,
            data,
            image,
            filled,
        })
    }

    /// Put the crashed log back.
    pub fn restore(&self) -> Result<()> {
        let file = std::fs::OpenOptions::new().write(true).open(&self.log)?;
        file.write_all_at(&self.image, 0)?;
        file.set_len(self.image.len() as u64)?;
        Ok(())
    }

    /// Restore the crashed log (untimed), then open it and map the segment (ready), then wait
    /// until recovery is durable.
    pub fn recover(&self) -> Result<RecoveryTimes> {
        self.restore()?;
        let started = Instant::now();
        let (rvm, seg) = open_and_map(&self.log, &self.data, Options::default())?;
        let ready = started.elapsed();
        rvm.wait_for_truncation()?;
        let durable = started.elapsed();
        let statistics = rvm.statistics();
        std::hint::black_box(seg.regions()[0].address);
        rvm.close()?;
        Ok(RecoveryTimes {
            ready,
            durable,
            statistics,
        })
    }

    /// This machine's least cost for "ready": read and CRC the whole log file, plus one
    /// private-mapping fault on every page the log's ranges touch.
    pub fn limit(&self) -> Result<RecoveryLimit> {
        self.restore()?;
        let (read_crc, log_bytes) = limits::read_and_crc(&self.log)?;
        let faults = limits::private_mapping_faults(&self.data, &self.filled.touched_pages)?;
        Ok(RecoveryLimit {
            read_crc,
            log_bytes,
            faults,
        })
    }
}

/// The parts of the recovery limit.
#[derive(Debug, Clone)]
pub struct RecoveryLimit {
    pub read_crc: Duration,
    pub log_bytes: u64,
    pub faults: Duration,
}

impl RecoveryLimit {
    pub fn total(&self) -> Duration {
        self.read_crc + self.faults
    }
}

/// An open instance with truncation disabled, so a benchmark decides when the log is
/// truncated.
pub struct TruncationScenario {
    _dir: Scratch,
    pub log: PathBuf,
    pub data: PathBuf,
    pub rvm: Rvm,
    pub seg: Segment,
}

impl TruncationScenario {
    pub fn new(segment_bytes: u64, log_area_bytes: u64) -> Result<Self> {
        let dir = Scratch::new("truncation")?;
        let log = dir.join("log");
        let data = dir.join("data");
        create_log(&log, log_area_bytes)?;
        create_segment(&data, segment_bytes)?;
        let (rvm, seg) = open_and_map(&log, &data, Options::default().truncate_threshold(0))?;
        Ok(TruncationScenario {
            _dir: dir,
            log,
            data,
            rvm,
            seg,
        })
    }

    /// Fill the log with mix (a) transactions until it is full (untimed).
    pub fn fill_full(&self, seed: u64) -> Result<Filled> {
        fill(
            &self.rvm,
            &self.seg,
            Mix::OneRange,
            &mut Rng::new(seed),
            None,
        )
    }

    /// Truncate the whole log: apply it to the segment, sync the segment, free the log.
    pub fn truncate(&self) -> Result<Duration> {
        let started = Instant::now();
        self.rvm.truncate()?;
        Ok(started.elapsed())
    }

    /// This machine's least cost for truncating `filled`: read and CRC the log file, and
    /// write back and sync every page its ranges touch.
    pub fn limit(&self, filled: &Filled) -> Result<TruncationLimit> {
        let (read_crc, _) = limits::read_and_crc(&self.log)?;
        let write_sync = limits::rewrite_and_sync_pages(&self.data, &filled.touched_pages)?;
        Ok(TruncationLimit {
            read_crc,
            write_sync,
        })
    }
}

/// The parts of the truncation limit.
#[derive(Debug, Clone)]
pub struct TruncationLimit {
    pub read_crc: Duration,
    pub write_sync: Duration,
}

impl TruncationLimit {
    pub fn total(&self) -> Duration {
        self.read_crc + self.write_sync
    }
}

/// An open instance with one mapped segment for transaction benchmarks.
pub struct TxScenario {
    _dir: Scratch,
    pub log: PathBuf,
    pub rvm: Rvm,
    pub seg: Segment,
}

impl TxScenario {
    pub fn new(segment_bytes: u64, log_area_bytes: u64, options: Options) -> Result<Self> {
        Self::with_map(
            segment_bytes,
            log_area_bytes,
            options,
            MapOptions::anywhere(),
        )
    }

    /// [`TxScenario::new`] with the (fresh, sparse) segment mapped as `map` says.
    pub fn with_map(
        segment_bytes: u64,
        log_area_bytes: u64,
        options: Options,
        map: MapOptions,
    ) -> Result<Self> {
        let dir = Scratch::new("tx")?;
        let log = dir.join("log");
        let data = dir.join("data");
        create_log(&log, log_area_bytes)?;
        create_segment(&data, segment_bytes)?;
        let (rvm, seg) = open_and_map_with(&log, &data, options, map)?;
        touch_every_page(&seg);
        Ok(TxScenario {
            _dir: dir,
            log,
            rvm,
            seg,
        })
    }

    /// `commits` transactions, each one `range_bytes` range at a random aligned offset
    /// (set_range + copy) ended with `mode`; `rvm.flush()` after every `flush_every` commits
    /// (0: never). With `time_flushes` false the flushes are left out of the returned time.
    pub fn commit_loop(
        &self,
        range_bytes: usize,
        commits: u64,
        mode: CommitMode,
        flush_every: u64,
        time_flushes: bool,
        rng: &mut Rng,
    ) -> Result<Duration> {
        let region = self.seg.regions()[0];
        let slots = (region.length / range_bytes) as u64;
        let data = vec![0xa5u8; range_bytes];
        let mut elapsed = Duration::ZERO;
        let mut started = Instant::now();
        for i in 1..=commits {
            let address = region.address + rng.below(slots) as usize * range_bytes;
            let mut tx = self.rvm.begin(BeginMode::NoRestore)?;
            tx.modify_bytes(address, &data)?;
            tx.end(mode)?;
            if flush_every > 0 && i % flush_every == 0 {
                if time_flushes {
                    self.rvm.flush()?;
                } else {
                    elapsed += started.elapsed();
                    self.rvm.flush()?;
                    started = Instant::now();
                }
            }
        }
        Ok(elapsed + started.elapsed())
    }

    /// `threads` threads each commit `commits_per_thread` flush-mode transactions of one
    /// 64-byte range; concurrent flushes share log syncs (group commit). Returns the wall time.
    pub fn flush_commits(&self, threads: usize, commits_per_thread: u64) -> Result<Duration> {
        let started = Instant::now();
        std::thread::scope(|scope| -> Result<()> {
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    scope.spawn(move || {
                        let mut rng = Rng::new(0x5eed + t as u64);
                        self.commit_loop(
                            64,
                            commits_per_thread,
                            CommitMode::Flush,
                            0,
                            true,
                            &mut rng,
                        )
                    })
                })
                .collect();
            for w in workers {
                w.join()
                    .map_err(|_| anyhow::anyhow!("a committing thread panicked"))??;
            }
            Ok(())
        })?;
        Ok(started.elapsed())
    }
}

/// One whole `rdsinit` process creating a 30 MB log and a 1 GB segment with an RDS heap in a
/// fresh directory: the wall time from spawn to exit, and the disk blocks of the data file.
pub struct RdsinitRun {
    pub elapsed: Duration,
    pub data_disk_bytes: u64,
    pub log_disk_bytes: u64,
}

/// Run `rdsinit --log-size 30M LOG DATA --data-len 1G --yes` once (non-interactive).
pub fn rdsinit_whole_process(binary: &Path) -> Result<RdsinitRun> {
    let dir = Scratch::new("rdsinit")?;
    let (log, data) = (dir.join("log"), dir.join("data"));
    let started = Instant::now();
    let output = std::process::Command::new(binary)
        .arg("--log-size")
        .arg("30M")
        .arg(&log)
        .arg(&data)
        .args(["--data-len", "1G", "--yes"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .with_context(|| format!("run {}", binary.display()))?;
    let elapsed = started.elapsed();
    ensure!(
        output.status.success() && data.exists(),
        "rdsinit failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(RdsinitRun {
        elapsed,
        data_disk_bytes: limits::disk_bytes(&data)?,
        log_disk_bytes: limits::disk_bytes(&log)?,
    })
}

/// Where the benchmark heap is mapped (fixed: the heap stores absolute addresses).
pub const RDS_HEAP_ADDRESS: u64 = 0x2200_0000_0000;
/// Where a second benchmark heap in the same process is mapped (runs that alternate two).
pub const RDS_SECOND_HEAP_ADDRESS: u64 = 0x2300_0000_0000;
/// Heap size of the RDS benchmark: room for the live set with little pressure.
pub const RDS_HEAP_BYTES: u64 = 64 << 20;
/// Live blocks the RDS workload keeps around: it frees when it holds more, allocates when it
/// holds fewer, and picks at random in between.
const RDS_LIVE_BLOCKS: usize = 8192;

/// An RDS heap in a file segment with a 30 MB log, for malloc/free benchmarks.
pub struct RdsScenario {
    _dir: Scratch,
    pub rvm: Rvm,
    pub heap: rvm::rds::Heap,
    live: std::cell::RefCell<Vec<usize>>,
}

impl RdsScenario {
    pub fn new(options: Options) -> Result<Self> {
        Self::with_map(options, MapOptions::default(), RDS_HEAP_ADDRESS)
    }

    /// [`RdsScenario::new`] with the heap at `start_address` and its (fresh, sparse) segment
    /// mapped as `map` says (at fixed addresses: `map.placement` is ignored).
    pub fn with_map(options: Options, map: MapOptions, start_address: u64) -> Result<Self> {
        use rvm::rds::{self, HeapLayout};
        let dir = Scratch::new("rds")?;
        let (log, data) = (dir.join("log"), dir.join("data"));
        create_log(&log, crate::LOG_AREA_BYTES)?;
        let rvm = Rvm::open(&log, options)?;
        let layout = HeapLayout {
            start_address,
            heap_length: RDS_HEAP_BYTES,
            static_length: PAGE_BYTES,
            nlists: 80,
            chunk_size: 64,
        };
        // SAFETY: the bench created the segment file in its own temporary directory; nothing
        // shortens it while it is mapped.
        unsafe {
            rds::create_heap_segment(
                &rvm,
                &data,
                layout.segment_length_min(),
                &layout,
                CreateOptions::default(),
            )
        }?;
        let map = MapOptions {
            placement: rvm::Placement::Fixed,
            ..map
        };
        // SAFETY: the bench created the segment file in its own temporary directory; nothing
        // shortens it while it is mapped.
        let seg = unsafe { rvm.map(&data, map) }?;
        touch_every_page(&seg);
        let heap = rvm::rds::Heap::load(&seg)?;
        Ok(RdsScenario {
            _dir: dir,
            rvm,
            heap,
            live: std::cell::RefCell::new(Vec::with_capacity(2 * RDS_LIVE_BLOCKS)),
        })
    }

    /// `operations` mallocs (16 B-4 KiB) and frees, `per_transaction` of them in each
    /// restore-mode transaction ended no_flush, `rvm.flush()` after every `flush_every`
    /// transactions (0: never). With `time_flushes` false the flushes are left out of the time.
    pub fn malloc_free_loop(
        &self,
        operations: u64,
        per_transaction: u64,
        flush_every: u64,
        time_flushes: bool,
        rng: &mut Rng,
    ) -> Result<Duration> {
        let mut live = self.live.borrow_mut();
        let mut elapsed = Duration::ZERO;
        let mut started = Instant::now();
        let mut done = 0u64;
        let mut transactions = 0u64;
        while done < operations {
            let mut tx = self.rvm.begin(BeginMode::Restore)?;
            for _ in 0..per_transaction.min(operations - done) {
                let allocate = match live.len() {
                    0 => true,
                    n if n >= 2 * RDS_LIVE_BLOCKS => false,
                    n if n < RDS_LIVE_BLOCKS / 2 => true,
                    _ => rng.next_u64() & 1 == 0,
                };
                if allocate {
                    let size = 16 + rng.below(4096 - 16 + 1) as usize;
                    live.push(self.heap.malloc(&mut tx, size)?);
                } else {
                    let i = rng.below(live.len() as u64) as usize;
                    let address = live.swap_remove(i);
                    self.heap.free(&mut tx, address)?;
                }
                done += 1;
            }
            tx.end(CommitMode::NoFlush)?;
            transactions += 1;
            if flush_every > 0 && transactions.is_multiple_of(flush_every) {
                if time_flushes {
                    self.rvm.flush()?;
                } else {
                    elapsed += started.elapsed();
                    self.rvm.flush()?;
                    started = Instant::now();
                }
            }
        }
        Ok(elapsed + started.elapsed())
    }

    /// [`RdsScenario::malloc_free_loop`] with one operation per transaction and a flush
    /// every 1,000, paced at `per_second` operations: after each flush it sleeps until the
    /// schedule catches up (a producer slower than the machine, such as a server's).
    pub fn malloc_free_paced(&self, operations: u64, per_second: f64, rng: &mut Rng) -> Result<()> {
        let started = Instant::now();
        let mut done = 0;
        while done < operations {
            let n = 1000.min(operations - done);
            self.malloc_free_loop(n, 1, 1000, true, rng)?;
            done += n;
            let due = Duration::from_secs_f64(done as f64 / per_second);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        Ok(())
    }
}

/// Resident-set figures of one truncation, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct TruncationRss {
    /// The process's resident set just before the truncation (the application's own pages,
    /// such as those it wrote through its private mapping while filling the log).
    pub before: u64,
    /// The process's peak resident set while truncating (`VmHWM`, reset just before).
    pub peak: u64,
}

/// Fill a 30 MB log into a 1 GB segment (as [`TruncationScenario`] does), then truncate it
/// and measure the process's peak resident set meanwhile. Meant to run in a process of its
/// own (`rvm-report` starts itself as a child), so nothing else the process did counts.
pub fn truncation_peak_rss() -> Result<TruncationRss> {
    let s = TruncationScenario::new(crate::GIB, crate::LOG_AREA_BYTES)?;
    s.fill_full(0x7a)?;
    // Writing 5 resets the peak (VmHWM) to the current resident set.
    std::fs::write("/proc/self/clear_refs", "5").context("reset VmHWM")?;
    let before = proc_status_bytes("VmRSS")?;
    s.truncate()?;
    let peak = proc_status_bytes("VmHWM")?;
    s.rvm.close()?;
    Ok(TruncationRss { before, peak })
}

/// A `kB` field of /proc/self/status, in bytes.
pub fn proc_status_bytes(field: &str) -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .with_context(|| format!("no {field} in /proc/self/status"))?;
    let kb: u64 = line[field.len() + 1..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .with_context(|| format!("parse {line:?}"))?;
    Ok(kb * 1024)
}
