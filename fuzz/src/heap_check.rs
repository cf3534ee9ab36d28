//! The RDS heap checker, inspector and block walk over arbitrary heap-region bytes.
//!
//! The first input byte picks the image: even, a real heap (built by the library, with
//! allocated and free blocks) with fuzzer patches and a changed length; odd, the input itself.
//! Bit 1 also takes the heap address from the input instead of the real one. None of the three
//! may panic or hang; a heap the checker passes must also be walkable block by block.

use std::sync::{Arc, OnceLock};

use rvm::device::{DeviceRef, MemDevice};
use rvm::rds::{self, Heap, HeapLayout};
use rvm::{BeginMode, CommitMode, MapOptions, Options, Rvm};

use crate::input::Input;

/// Where the base heap is mapped while it is built (fixed: a heap stores absolute addresses).
pub const HEAP_ADDRESS: u64 = 0x2300_0000_0000;
const HEAP_BYTES: u64 = 64 * 1024;
const PATCHES_MAX: usize = 32;

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.u8();
    let image = if mode & 1 == 0 {
        patched(base().clone(), &mut input)
    } else {
        data.get(1..).unwrap_or(&[]).to_vec()
    };
    let address = if mode & 2 != 0 {
        input.u64() & !7
    } else {
        HEAP_ADDRESS
    };
    let report = rds::check_image(&image, address);
    let _ = rds::inspect_image(&image, address);
    let blocks = rds::blocks_image(&image, address);
    if report.is_ok() {
        assert!(
            blocks.is_ok(),
            "the checker passed a heap whose block walk fails: {:?}",
            blocks.err()
        );
    }
}

/// A heap region image with allocated and free blocks of several sizes. Built once.
pub fn base() -> &'static Vec<u8> {
    static BASE: OnceLock<Vec<u8>> = OnceLock::new();
    BASE.get_or_init(|| {
        let layout = HeapLayout {
            start_address: HEAP_ADDRESS,
            heap_length: HEAP_BYTES,
            static_length: 4096,
            nlists: 16,
            chunk_size: 64,
        };
        let log: DeviceRef = Arc::new(MemDevice::new("log", Vec::new()));
        let data: DeviceRef = Arc::new(MemDevice::new("data", Vec::new()));
        Rvm::init_log_on(&*log, 1 << 20).expect("log");
        let rvm =
            Rvm::open_device(log, Options::default().segment_device(data.clone())).expect("open");
        // SAFETY: memory and crash devices lend no descriptor: the segment is read into anonymous
        // memory, which nothing can shorten.
        unsafe {
            rds::create_heap_segment_on(&rvm, data.clone(), layout.segment_length_min(), &layout)
        }
        .expect("create heap");
        // SAFETY: memory and crash devices lend no descriptor: the segment is read into anonymous
        // memory, which nothing can shorten.
        let segment = unsafe { rvm.map_device(data, MapOptions::default()) }.expect("map heap");
        let heap = Heap::load(&segment).expect("load heap");
        let mut tx = rvm.begin(BeginMode::Restore).expect("begin");
        let mut blocks = Vec::new();
        for i in 0..40usize {
            blocks.push(heap.malloc(&mut tx, 16 + i * 97 % 900).expect("malloc"));
        }
        for (i, b) in blocks.into_iter().enumerate() {
            if i % 3 == 1 {
                heap.free(&mut tx, b).expect("free");
            }
        }
        tx.end(CommitMode::Flush).expect("commit");
        let mut image = vec![0u8; HEAP_BYTES as usize];
        segment
            .read_bytes(HEAP_ADDRESS as usize, &mut image)
            .expect("read heap");
        assert!(
            rds::check_image(&image, HEAP_ADDRESS).is_ok(),
            "base heap is sound"
        );
        drop(heap);
        drop(segment);
        drop(rvm);
        image
    })
}

/// `image` with up to `PATCHES_MAX` fuzzer patches (bytes, 64-bit words, a new length).
pub fn patched(mut image: Vec<u8>, input: &mut Input<'_>) -> Vec<u8> {
    for _ in 0..PATCHES_MAX {
        if input.is_empty() || image.is_empty() {
            break;
        }
        match input.u8() % 4 {
            0 | 1 => {
                let at = input.u32() as usize % image.len();
                let n = input.u8() as usize % 16 + 1;
                let bytes = input.bytes(n);
                let end = (at + bytes.len()).min(image.len());
                image[at..end].copy_from_slice(&bytes[..end - at]);
            }
            2 => {
                // A 64-bit word: sizes, tags and links are all 8-byte fields.
                let at = (input.u16() as usize * 8) % image.len();
                let value = input.u64().to_le_bytes();
                let end = (at + 8).min(image.len());
                image[at..end].copy_from_slice(&value[..end - at]);
            }
            _ => {
                let len = input.u32() as usize % (2 * HEAP_BYTES as usize);
                image.resize(len, 0);
            }
        }
    }
    image
}
