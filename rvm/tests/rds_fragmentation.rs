//! The fragmentation workload, shortened for CI (the full million operations run in
//! `examples/rds_fragmentation.rs`): random allocations of 16 B to 4 KiB and frees around a
//! live target of half the heap, then the full checker.

mod rds_support;

use rds_support::{chunks_for, layout, workload, Fixture};

#[test]
fn random_16_byte_to_4_kib_workload_keeps_the_heap_whole() {
    for (test, chunk_size, nlists) in [(90u64, 64u64, 80u64), (91, 32, 200)] {
        let heap_length = 8 << 20;
        let f = Fixture::with_log(
            layout(test, heap_length, nlists, chunk_size),
            test,
            16 << 20,
        );
        let report = workload::run(&f.rvm, &f.heap, 100_000, 500, heap_length / 2, test);
        eprintln!("chunk {chunk_size}, nlists {nlists}:\n{}", report.summary());
        assert!(report.check.is_ok(), "{}", report.check);
        assert_eq!(report.no_room, 0, "half the heap live must always fit");
        // Free merges with both neighbours at once, so no two free blocks touch.
        assert_eq!(report.check.adjacent_free_pairs, 0);
        let s = &report.statistics;
        assert_eq!(
            s.free_blocks, report.check.free_blocks,
            "every free block is listed"
        );
        assert_eq!(s.free_bytes + s.allocated_bytes, s.capacity_bytes);
        // Tags and chunk rounding cost at most a chunk and the 16 tag bytes per block.
        let worst: u64 = report.requested_bytes + report.live_blocks * (chunk_size + 16);
        assert!(s.allocated_bytes <= worst);
        assert!(
            s.fragmentation < 0.25,
            "fragmentation {} with half the heap free",
            s.fragmentation
        );
        assert!(s.largest_allocation >= 1 << 20);
        assert!(chunks_for(4096, chunk_size) < nlists || chunk_size == 32);
    }
}
