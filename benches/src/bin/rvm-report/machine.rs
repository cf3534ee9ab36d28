//! Sections `machine` (this machine's own limits) and `open` (open + map of a segment).

use std::time::{Duration, Instant};

use anyhow::Result;
use rvm::Options;
use rvm_benches::limits;
use rvm_benches::scenario::{self};
use rvm_benches::scratch::Scratch;
use rvm_benches::{ms, per_second, GIB, LOG_AREA_BYTES, MIB};

use crate::report::{median, ratio, Report, Target};
use crate::Plan;

/// Memory bandwidth, log-sized sequential read + CRC, raw flush cost, and page-fault cost.
pub(crate) fn machine(plan: &Plan, report: &mut Report) -> Result<()> {
    let copy = limits::memcpy_bytes_per_s(64 << 20, plan.pick(8, 32));
    report.add(
        "memcpy_gb_per_s",
        Some(copy / 1e9),
        "GB/s",
        "memcpy bandwidth (64 MiB buffers)",
    );
    let dir = Scratch::new("machine")?;
    let log = dir.join("log");
    scenario::create_log(&log, LOG_AREA_BYTES)?;
    // Fill the file so the read is of real data in the page cache, as a full log's would be.
    std::fs::write(&log, vec![0x11u8; (LOG_AREA_BYTES + 64 * 1024) as usize])?;
    let (elapsed, bytes) = limits::read_and_crc(&log)?;
    report.add(
        "log_read_crc_mb_per_s",
        Some(per_second(bytes, elapsed) / 1e6),
        "MB/s",
        "sequential read + CRC32 of a 30 MB file (page cache)",
    );
    let count = plan.pick(300, 1000);
    let sparse =
        limits::pwrite_fdatasync_loop(&dir.join("sync-sparse"), LOG_AREA_BYTES, 512, count)?;
    report.add(
        "fdatasync_per_s",
        Some(per_second(count, sparse)),
        "1/s",
        "pwrite 512 B + fdatasync, appending in a new sparse file",
    );
    // The same loop over blocks that are already allocated (a log after its first wrap).
    let mut dense = limits::SyncLoop::preallocated(&dir.join("sync-dense"), 4 << 20, 512)?;
    let mut dense_time = Duration::ZERO;
    for _ in 0..count {
        dense_time += dense.once()?;
    }
    report.add(
        "fdatasync_allocated_per_s",
        Some(per_second(count, dense_time)),
        "1/s",
        "the same over already allocated blocks",
    );
    let data = dir.join("data");
    scenario::create_segment(&data, GIB)?;
    let pages: Vec<u64> = (0..plan.pick(20_000u64, 100_000))
        .map(|i| (i * 37 % 262_000 + 1) * 4096)
        .collect();
    // The first pass reads the pages into the page cache (with readahead); the second is the
    // fault cost alone, as the recovery limit sees it after a first recovery.
    limits::private_mapping_faults(&data, &pages)?;
    let faults = limits::private_mapping_faults(&data, &pages)?;
    report.add(
        "page_faults_per_s",
        Some(per_second(pages.len() as u64, faults)),
        "1/s",
        "write faults on a private mapping of a 1 GB file (page cache warm)",
    );
    Ok(())
}

pub(crate) fn open(plan: &Plan, report: &mut Report) -> Result<()> {
    let sizes: [(&'static str, u64); 4] = [
        ("open_1m_ms", MIB),
        ("open_64m_ms", 64 * MIB),
        ("open_1g_ms", GIB),
        ("open_4g_ms", 4 * GIB),
    ];
    let runs = plan.pick(15, 60);
    for (key, size) in sizes {
        let dir = Scratch::new("open")?;
        let (log, data) = (dir.join("log"), dir.join("data"));
        scenario::create_log(&log, LOG_AREA_BYTES)?;
        scenario::create_segment(&data, size)?;
        // The first map records the segment in the log; every later open finds it there.
        scenario::open_and_map(&log, &data, Options::default())?
            .0
            .close()?;
        let mut samples = Vec::new();
        for _ in 0..runs {
            let started = Instant::now();
            let (rvm, seg) = scenario::open_and_map(&log, &data, Options::default())?;
            samples.push(started.elapsed());
            std::hint::black_box(seg);
            rvm.close()?;
        }
        let what = "Rvm::open (empty 30 MB log) + map, median";
        let v = Some(ms(median(samples)));
        if key == "open_1g_ms" {
            report.add_target(key, v, "ms", what, Target::AtMost(1.0));
        } else {
            report.add(key, v, "ms", what);
        }
    }
    let r = ratio(report.value("open_1g_ms"), report.value("open_1m_ms"));
    report.add_target(
        "open_1g_over_1m",
        r,
        "x",
        "open 1 GB / open 1 MB",
        Target::AtMost(1.5),
    );
    Ok(())
}
