//! The heap keeps the description of its region from one record of its own to the next, to
//! pin it again without the region table (`RegionPin::again`). Once the segment is unmapped
//! that description must not be used: the next call answers `NotMapped`, and a heap loaded
//! from the segment mapped again works.

mod rds_support;

use rds_support::{layout, Fixture};
use rvm::rds::Heap;
use rvm::{BeginMode, CommitMode, MapOptions};

#[test]
fn the_region_kept_for_the_heaps_own_records_is_not_used_after_an_unmap() {
    let f = Fixture::new(layout(1, 1 << 20, 80, 64));
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let a = f.heap.malloc(&mut tx, 100).unwrap();
    let b = f.heap.malloc(&mut tx, 200).unwrap();
    tx.end(CommitMode::Flush).unwrap();

    f.rvm.unmap(&f.segment).unwrap();
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let e = f.heap.malloc(&mut tx, 100).unwrap_err();
    assert_eq!(e.code_name(), "RVM_ENOT_MAPPED", "{e}");
    let e = f.heap.prealloc(&mut tx, 100, 2).unwrap_err();
    assert_eq!(e.code_name(), "RVM_ENOT_MAPPED", "{e}");
    tx.abort().unwrap();

    // SAFETY: crash devices lend no descriptor to map (they are read into anonymous memory).
    let again = unsafe { f.rvm.map_device(f.data.clone(), MapOptions::default()) }.unwrap();
    let heap = Heap::load(&again).unwrap();
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let c = heap.malloc(&mut tx, 100).unwrap();
    heap.free(&mut tx, a).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    assert!(heap.usable_size(b).unwrap() >= 200);
    assert!(heap.usable_size(c).unwrap() >= 100);
    assert!(heap.usable_size(a).is_err());
    let report = heap.check();
    assert!(report.is_ok(), "{report}");
}
