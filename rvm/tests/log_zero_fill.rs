//! A new log's record area is written with zeros one chunk at a time: its first chunk at
//! creation, the rest by the flush writer ahead of its tail during the first pass (FORMAT.md,
//! "Assumptions about the underlying media"). These tests watch every write and sync the
//! library makes to the log and check that (a) every record is written only over blocks that
//! an *earlier* sync already made written (so no flush's sync has to commit an allocation or an
//! extent conversion), (b) zeros never land on a live record (everything committed reads back
//! after reopening), and (c) the status says how far the area is written.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rvm::device::{Device, MemDevice};
use rvm::format::log::{Status, RECORD_AREA_OFFSET, STATUS_SLOT_SIZE};
use rvm::{BeginMode, CommitMode, MapOptions, Options, Rvm};

mod support;

const AREA_BYTES: u64 = 1 << 20;
/// 1 MiB / 16: the chunk the library zero-fills at a time for this area.
const CHUNK_BYTES: u64 = 64 << 10;
const REGION_BYTES: usize = 64 << 10;

/// One write to the log: where, how long, whether all zeros, and how many syncs preceded it.
#[derive(Debug, Clone, Copy)]
struct Write {
    offset: u64,
    len: u64,
    zeros: bool,
    epoch: u64,
}

/// A memory device that records its writes and counts its syncs.
#[derive(Debug)]
struct Recording {
    inner: MemDevice,
    syncs: AtomicU64,
    writes: Mutex<Vec<Write>>,
}

impl Recording {
    fn new(bytes: Vec<u8>) -> Arc<Recording> {
        Arc::new(Recording {
            inner: MemDevice::new("log", bytes),
            syncs: AtomicU64::new(0),
            writes: Mutex::new(Vec::new()),
        })
    }
    fn writes(&self) -> Vec<Write> {
        self.writes.lock().unwrap().clone()
    }
}

impl Device for Recording {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.writes.lock().unwrap().push(Write {
            offset,
            len: buf.len() as u64,
            zeros: buf.iter().all(|b| *b == 0),
            epoch: self.syncs.load(Ordering::SeqCst),
        });
        self.inner.write_at(buf, offset)
    }
    fn sync(&self) -> io::Result<()> {
        self.syncs.fetch_add(1, Ordering::SeqCst);
        self.inner.sync()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    /// As a file does it: zeros written over the range.
    fn preallocate(&self, offset: u64, len: u64) -> io::Result<()> {
        self.write_at(&vec![0; len as usize], offset)
    }
}

fn current_status(log: &dyn Device) -> Status {
    let slots = rvm::log::read_slots(log).unwrap();
    let slot = rvm::log::current_slot(&slots).expect("a valid status slot");
    slots[slot].clone().unwrap()
}

fn segment_image() -> Arc<MemDevice> {
    Arc::new(support::one_region_segment(
        REGION_BYTES as u64,
        0x1000_0000_0000,
    ))
}

fn open(log: Arc<Recording>, data: &Arc<MemDevice>) -> (Rvm, usize) {
    let options = Options::default()
        .truncate_threshold(0)
        .background_recovery(false)
        .segment_device(data.clone());
    let rvm = Rvm::open_device(log, options).unwrap();
    // SAFETY: memory devices lend no descriptor to map; the region is anonymous memory.
    let seg = unsafe { rvm.map_device(data.clone(), MapOptions::anywhere()) }.unwrap();
    let base = seg.regions()[0].address;
    (rvm, base)
}

/// The byte commit `i` writes at offset `at(i)` of the region, and where.
fn value(i: u64) -> u8 {
    (i % 251) as u8 + 1
}
fn at(i: u64) -> usize {
    ((i * 977) % (REGION_BYTES as u64 - 2048)) as usize
}

#[test]
fn records_land_only_on_blocks_written_before_and_zeros_never_on_a_record() {
    let log = Recording::new(Vec::new());
    Rvm::init_log_on(&*log, AREA_BYTES).unwrap();
    let created = current_status(&*log);
    assert_eq!(
        created.zeroed_through,
        RECORD_AREA_OFFSET + CHUNK_BYTES,
        "a new log records that only its first chunk is written"
    );
    // Written at creation: exactly the first chunk of the area (and the status slots).
    let area_end = RECORD_AREA_OFFSET + AREA_BYTES;
    let zero_filled: u64 = log
        .writes()
        .iter()
        .filter(|w| w.offset >= RECORD_AREA_OFFSET && w.zeros)
        .map(|w| w.len)
        .sum();
    assert_eq!(zero_filled, CHUNK_BYTES);

    let data = segment_image();
    let (rvm, base) = open(log.clone(), &data);
    // Flush commits of about 1.5 KiB of log each, to about 80% of the area: a first pass
    // only (no truncation, no wrap).
    let commits = 520u64;
    let mut expect = vec![0u8; REGION_BYTES];
    for i in 0..commits {
        let mut tx = rvm.begin(BeginMode::NoRestore).unwrap();
        tx.fill(base + at(i), 1400, value(i)).unwrap();
        tx.end(CommitMode::Flush).unwrap();
        expect[at(i)..at(i) + 1400].fill(value(i));
    }
    let stats = rvm.statistics();
    assert_eq!(stats.wraps, 0, "the test stays in the first pass");
    rvm.close().unwrap();

    // (a) Every non-zero write into the record area lies over bytes zero-filled (or written
    // with records) in an earlier sync epoch.
    let writes = log.writes();
    let mut written: Vec<(u64, u64, u64)> = Vec::new(); // (from, to, epoch)
    let mut records = 0;
    for w in &writes {
        if w.offset < RECORD_AREA_OFFSET {
            continue; // status slots
        }
        assert!(w.offset + w.len <= area_end);
        if !w.zeros {
            records += 1;
            let mut at = w.offset;
            while at < w.offset + w.len {
                let cover = written
                    .iter()
                    .filter(|(from, to, epoch)| *from <= at && at < *to && *epoch < w.epoch)
                    .map(|(_, to, _)| *to)
                    .max();
                let Some(to) = cover else {
                    panic!(
                        "a record write at {:#x}+{} (sync epoch {}) covers byte {at:#x}, not \
                         written before an earlier sync",
                        w.offset, w.len, w.epoch
                    );
                };
                at = to;
            }
        }
        written.push((w.offset, w.offset + w.len, w.epoch));
    }
    assert!(
        records >= commits,
        "{records} record writes for {commits} commits"
    );
    let zero_writes = writes
        .iter()
        .filter(|w| w.offset >= RECORD_AREA_OFFSET + CHUNK_BYTES && w.zeros)
        .count();
    assert!(
        zero_writes > 0,
        "the writer zero-filled ahead of its tail during the first pass"
    );

    // (c) The status says how far the area is written: at least half a chunk past the tail.
    let status = current_status(&*log);
    assert!(
        status.zeroed_through == 0 || status.zeroed_through >= status.tail_offset + CHUNK_BYTES / 2,
        "zeroed_through {:#x}, tail {:#x}",
        status.zeroed_through,
        status.tail_offset
    );

    // (b) Nothing committed was zeroed: after reopening (recovery replays every record, as the
    // log was not truncated), the region holds every commit.
    let (rvm, base) = open(Recording::new(log.inner.snapshot()), &data);
    let mut got = vec![0u8; REGION_BYTES];
    rvm.read_bytes(base, &mut got).unwrap();
    assert!(
        got == expect,
        "the recovered region differs from the commits"
    );
    rvm.close().unwrap();
}

#[test]
fn a_stale_zeroed_through_makes_the_writer_start_at_its_tail_not_over_records() {
    // Records written past `zeroed_through` before a crash (no status written since): the
    // reopened writer starts zero-filling at its tail, never below it, whatever the hint.
    let log = Recording::new(Vec::new());
    Rvm::init_log_on(&*log, AREA_BYTES).unwrap();
    let pristine = segment_image().snapshot();
    let fresh_data = || Arc::new(MemDevice::new("data", pristine.clone()));
    let (rvm, base) = open(log.clone(), &fresh_data());
    let mut expect = vec![0u8; REGION_BYTES];
    for i in 0..200u64 {
        let mut tx = rvm.begin(BeginMode::NoRestore).unwrap();
        tx.fill(base + at(i), 1400, value(i)).unwrap();
        tx.end(CommitMode::Flush).unwrap();
        expect[at(i)..at(i) + 1400].fill(value(i));
    }
    // The crash: the log as it is now, without the status that closing would write, and with
    // the hint as stale as can be (only the first chunk written).
    let mut image = log.inner.snapshot();
    drop(rvm);
    let slots = rvm::log::read_slots(&MemDevice::new("log", image.clone())).unwrap();
    let slot = rvm::log::current_slot(&slots).unwrap();
    let mut status = slots[slot].clone().unwrap();
    status.zeroed_through = RECORD_AREA_OFFSET + CHUNK_BYTES;
    let bytes = status.encode();
    let at_slot = (status.sequence % 2 * STATUS_SLOT_SIZE) as usize;
    image[at_slot..at_slot + bytes.len()].copy_from_slice(&bytes);

    let reopened = Recording::new(image);
    let data = fresh_data();
    let (rvm, base) = open(reopened.clone(), &data);
    let tail_at_open = current_status(&*reopened).tail_offset;
    for i in 200..260u64 {
        let mut tx = rvm.begin(BeginMode::NoRestore).unwrap();
        tx.fill(base + at(i), 1400, value(i)).unwrap();
        tx.end(CommitMode::Flush).unwrap();
        expect[at(i)..at(i) + 1400].fill(value(i));
    }
    rvm.close().unwrap();
    let zeroed_below_tail = reopened
        .writes()
        .iter()
        .filter(|w| w.zeros && w.offset >= RECORD_AREA_OFFSET && w.offset < tail_at_open)
        .count();
    assert_eq!(
        zeroed_below_tail, 0,
        "zeros written below the recovered tail"
    );
    // Everything committed before and after the crash is there after another reopen.
    let (rvm, base) = open(Recording::new(reopened.inner.snapshot()), &data);
    let mut got = vec![0u8; REGION_BYTES];
    rvm.read_bytes(base, &mut got).unwrap();
    assert!(got == expect, "records were lost to zero-filling");
    rvm.close().unwrap();
}
