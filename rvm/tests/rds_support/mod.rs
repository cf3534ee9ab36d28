//! Shared set-up for the rds tests: a log and a heap segment on crash devices (so any test
//! can crash them), mapped at a fixed address unique to the test.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use rvm::device::{CrashController, CrashDevice, DeviceRef, Tear};
use rvm::rds::{self, BlockState, Heap, HeapLayout};
use rvm::{MapOptions, Options, Rvm, Segment};

pub const LOG_AREA_BYTES: u64 = 4 << 20;

/// A distinct fixed address per test (tests in one binary run in parallel threads of one
/// process, and fixed mappings must not collide).
pub fn address_for(test: u64) -> u64 {
    0x3000_0000_0000 + test * 0x10_0000_0000
}

pub fn layout(test: u64, heap_length: u64, nlists: u64, chunk_size: u64) -> HeapLayout {
    HeapLayout {
        start_address: address_for(test),
        heap_length,
        static_length: 4096,
        nlists,
        chunk_size,
    }
}

pub struct Fixture {
    pub controller: Arc<CrashController>,
    pub log: Arc<CrashDevice>,
    pub data: Arc<CrashDevice>,
    pub layout: HeapLayout,
    /// Declared before `rvm` so the segment handle and heap go first.
    pub heap: Heap,
    pub segment: Segment,
    pub rvm: Rvm,
}

pub fn options(data: &Arc<CrashDevice>) -> Options {
    // No background truncation: a test decides when the log is applied.
    Options::default()
        .truncate_threshold(0)
        .segment_device(data.clone() as DeviceRef)
}

impl Fixture {
    pub fn new(layout: HeapLayout) -> Fixture {
        Self::with_seed(layout, 1)
    }

    pub fn with_seed(layout: HeapLayout, seed: u64) -> Fixture {
        Self::with_log(layout, seed, LOG_AREA_BYTES)
    }

    pub fn with_log(layout: HeapLayout, seed: u64, log_area_bytes: u64) -> Fixture {
        Self::with_options(layout, seed, log_area_bytes, |o| o)
    }

    /// As `with_log`, the instance opened with `options(&data)` changed by `change`.
    pub fn with_options(
        layout: HeapLayout,
        seed: u64,
        log_area_bytes: u64,
        change: impl FnOnce(Options) -> Options,
    ) -> Fixture {
        let controller = CrashController::new(seed);
        let log = Arc::new(CrashDevice::new("log", controller.clone(), Vec::new()));
        let data = Arc::new(CrashDevice::new("data", controller.clone(), Vec::new()));
        Rvm::init_log_on(&*log, log_area_bytes).unwrap();
        let rvm = Rvm::open_device(log.clone(), change(options(&data))).unwrap();
        // SAFETY: the test's devices lend no descriptor to map (memory and crash devices are read
        // into anonymous memory), or name a file in the test's private temporary directory that
        // nothing shortens.
        unsafe {
            rds::create_heap_segment_on(
                &rvm,
                data.clone() as DeviceRef,
                layout.segment_length_min(),
                &layout,
            )
        }
        .unwrap();
        // SAFETY: the test's devices lend no descriptor to map (memory and crash devices are read
        // into anonymous memory), or name a file in the test's private temporary directory that
        // nothing shortens.
        let segment = unsafe { rvm.map_device(data.clone(), MapOptions::default()) }.unwrap();
        let heap = Heap::load(&segment).unwrap();
        Fixture {
            controller,
            log,
            data,
            layout,
            heap,
            segment,
            rvm,
        }
    }

    /// Simulate power loss: drop the instance (its writes fail), restart the devices with
    /// unsynced writes torn per `tear`, and recover.
    pub fn crash_and_recover(self, tear: Tear) -> Fixture {
        let Fixture {
            controller,
            log,
            data,
            layout,
            heap,
            segment,
            rvm,
        } = self;
        controller.crash_now();
        drop(heap);
        drop(segment);
        drop(rvm);
        log.set_tear(tear);
        data.set_tear(tear);
        log.restart();
        data.restart();
        Self::reopen(controller, log, data, layout)
    }

    /// Close cleanly and open again.
    pub fn reopen_clean(self) -> Fixture {
        let Fixture {
            controller,
            log,
            data,
            layout,
            heap,
            segment,
            rvm,
        } = self;
        drop(heap);
        drop(segment);
        rvm.close().unwrap();
        Self::reopen(controller, log, data, layout)
    }

    fn reopen(
        controller: Arc<CrashController>,
        log: Arc<CrashDevice>,
        data: Arc<CrashDevice>,
        layout: HeapLayout,
    ) -> Fixture {
        let rvm = Rvm::open_device(log.clone(), options(&data)).unwrap();
        // SAFETY: the test's devices lend no descriptor to map (memory and crash devices are read
        // into anonymous memory), or name a file in the test's private temporary directory that
        // nothing shortens.
        let segment = unsafe { rvm.map_device(data.clone(), MapOptions::default()) }.unwrap();
        let heap = Heap::load(&segment).unwrap();
        Fixture {
            controller,
            log,
            data,
            layout,
            heap,
            segment,
            rvm,
        }
    }

    /// A copy of the heap region as mapped now.
    pub fn heap_bytes(&self) -> Vec<u8> {
        let mut buf = vec![0u8; self.layout.heap_length as usize];
        self.segment
            .read_bytes(self.layout.start_address as usize, &mut buf)
            .unwrap();
        buf
    }

    pub fn assert_consistent(&self) {
        let report = self.heap.check();
        assert!(report.is_ok(), "heap check failed:\n{report}");
    }
}

/// Chunks a block for `size` bytes takes, computed independently of the heap.
pub fn chunks_for(size: usize, chunk_size: u64) -> u64 {
    ((size as u64 + 16).div_ceil(chunk_size)).max(1)
}

/// The byte a test writes into every byte of the block at `address`.
pub fn pattern(address: usize) -> u8 {
    ((address >> 3) as u8) ^ 0x5a
}

pub mod workload;

/// Allocated blocks as a model keeps them: data address -> requested size.
pub type Blocks = BTreeMap<usize, usize>;

impl Fixture {
    /// The heap's allocated blocks: data address -> chunks.
    pub fn allocated_chunks(&self) -> BTreeMap<usize, u64> {
        self.heap
            .blocks()
            .unwrap()
            .into_iter()
            .filter(|b| b.state == BlockState::Allocated)
            .map(|b| (b.data_address() as usize, b.chunks))
            .collect()
    }
}

/// The blocks of both (`b` wins for an address in both).
pub fn union(a: &Blocks, b: &Blocks) -> Blocks {
    let mut all = a.clone();
    all.extend(b.iter().map(|(k, v)| (*k, *v)));
    all
}

/// The blocks `held` (data address -> chunks) has beyond `base`, if it holds all of `base` and
/// its other blocks are all among `leakable` (allocations whose commit a crash may have lost).
pub fn leaked_beyond(
    base: &Blocks,
    held: &BTreeMap<usize, u64>,
    leakable: &Blocks,
    chunk_size: u64,
) -> Option<Blocks> {
    if base
        .iter()
        .any(|(a, s)| held.get(a) != Some(&chunks_for(*s, chunk_size)))
    {
        return None;
    }
    let mut extra = Blocks::new();
    for (a, c) in held {
        if base.contains_key(a) {
            continue;
        }
        match leakable.get(a) {
            Some(s) if chunks_for(*s, chunk_size) == *c => {
                extra.insert(*a, *s);
            }
            _ => return None,
        }
    }
    Some(extra)
}
