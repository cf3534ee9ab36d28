//! The heap checker and inspector reading a heap region from a file (a device) through the
//! bounded page cache, as `rvmutl heap` and `check` do, against the same checker over the
//! whole region in memory.
//!
//! The input patches the real heap (as `heap_check` does), then chooses where the region lies
//! in the file and how much of it lies past the end of the file (such bytes read as zeros, like
//! a hole). Property: the device walk finds exactly what the in-memory walk finds over the
//! region with its missing tail zero-filled; neither may panic or hang.

use rvm::device::MemDevice;
use rvm::format::segment::RegionEntry;
use rvm::rds;

use crate::heap_check::{base, patched, HEAP_ADDRESS};
use crate::input::Input;

/// Largest file offset of the region the input may choose.
const OFFSET_MAX: u64 = 1 << 20;

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let offset = u64::from(input.u32()) % OFFSET_MAX;
    // Bytes of the region beyond the end of the file.
    let beyond = u64::from(input.u32()) % (256 << 10);
    let image = patched(base().clone(), &mut input);
    let length = image.len() as u64 + beyond;
    let mut file = vec![0xa5u8; offset as usize];
    file.extend_from_slice(&image);
    let device = MemDevice::new("data", file);
    let region = RegionEntry {
        offset,
        length,
        address: HEAP_ADDRESS,
    };
    let mut whole = image;
    whole.resize(length as usize, 0);
    let from_file = rds::check_device(&device, &region);
    let in_memory = rds::check_image(&whole, HEAP_ADDRESS);
    assert_eq!(
        from_file, in_memory,
        "the walk from the file differs from the walk in memory"
    );
    match (
        rds::inspect_device(&device, &region),
        rds::inspect_image(&whole, HEAP_ADDRESS),
    ) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("inspect differs: from the file {a:?}, in memory {b:?}"),
    }
}
