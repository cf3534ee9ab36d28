//! What the RDS heap refuses: bad arguments (changing nothing), corrupted tags and links
//! (reported with their address, never followed), feet that disagree with their heads, other
//! heap versions, and segments that are not heap segments.

mod rds_support;
mod support;

use rds_support::{layout, Fixture};
use rvm::format::heap::{foot_word, head_word, BlockState, HeapGeometry};
use rvm::rds::{Error, Heap, ProblemKind};
use rvm::{BeginMode, CommitMode};

#[test]
fn refused_calls_change_nothing() {
    let f = Fixture::new(layout(41, 64 << 10, 8, 48));
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let a = f.heap.malloc(&mut tx, 100).unwrap();
    let b = f.heap.malloc(&mut tx, 100).unwrap();
    f.heap.free(&mut tx, a).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    let before = f.heap_bytes();

    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let base = f.heap.address();
    let cases: Vec<(usize, &str)> = vec![
        (a, "EFREED_TWICE"),
        (b + 8, "EBAD_ARGS"),
        (b + 48, "EBAD_ARGS"),
        (0, "EBAD_ARGS"),
        (base, "EBAD_ARGS"),
        (base + f.heap.length(), "EBAD_ARGS"),
        (usize::MAX, "EBAD_ARGS"),
        (f.heap.static_address() + 8, "EBAD_ARGS"),
    ];
    for (address, code) in cases {
        let e = f.heap.free(&mut tx, address).unwrap_err();
        assert_eq!(e.code_name(), code, "free({address:#x}): {e}");
    }
    assert!(matches!(
        f.heap.malloc(&mut tx, 1 << 30).unwrap_err(),
        Error::NoRoom { requested, .. } if requested == 1 << 30
    ));
    assert!(f.heap.malloc(&mut tx, usize::MAX).is_err());
    assert!(f.heap.prealloc(&mut tx, 100_000, 1).is_err());
    tx.end(CommitMode::Flush).unwrap();
    assert!(f.heap_bytes() == before);
    f.assert_consistent();
}

#[test]
fn corruption_is_detected_and_not_followed() {
    let f = Fixture::new(layout(42, 64 << 10, 8, 64));
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let a = f.heap.malloc(&mut tx, 100).unwrap();
    let b = f.heap.malloc(&mut tx, 100).unwrap();
    let c = f.heap.malloc(&mut tx, 100).unwrap();
    f.heap.free(&mut tx, b).unwrap();
    tx.end(CommitMode::Flush).unwrap();

    // Blocks are carved from the high end, so c < b < a. A buffer overrun from `c` smashes
    // the head tag of `b`, the free block after it.
    let smashed = c - 8 + 2 * 64;
    assert_eq!(smashed, b - 8);
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    tx.write(smashed, &0x4141_4141_4141_4141u64).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    let before = f.heap_bytes();
    let report = f.heap.check();
    assert!(!report.is_ok());
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.address == smashed as u64 && p.kind == ProblemKind::Tag),
        "{report}"
    );

    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let e = f.heap.free(&mut tx, c).unwrap_err();
    assert_eq!(e.code_name(), "ECORRUPT", "{e}");
    let e = f.heap.free(&mut tx, a).unwrap_err();
    assert_eq!(e.code_name(), "ECORRUPT", "{e}");
    tx.end(CommitMode::Flush).unwrap();
    assert!(f.heap_bytes() == before, "refused frees changed the heap");

    // A list head pointing outside the heap is reported, not followed.
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let offset = smashed - f.heap.address();
    tx.modify_bytes(smashed, &before[offset..offset + 8])
        .unwrap();
    let list_2 = f.heap.address() + 192 + 8;
    tx.write(list_2, &0xdead_beef_u64).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let e = f.heap.malloc(&mut tx, 100).unwrap_err();
    assert_eq!(e.code_name(), "ECORRUPT", "{e}");
    tx.abort().unwrap();
    let report = f.heap.check();
    assert!(
        report.problems.iter().any(|p| p.kind == ProblemKind::Link),
        "{report}"
    );
}

/// Both tags carry the state: a foot that disagrees with its head (same size, other state)
/// is reported by the checker and refused by the calls that meet it, and a forged "free" foot
/// before a block being freed is not followed into an allocated neighbour.
#[test]
fn foot_state_must_agree_with_the_head() {
    const FOOT_FREE: u64 = 0x6D9A_5200_0000_0000;
    const FOOT_ALLOCATED: u64 = 0x93E5_C400_0000_0000;
    let f = Fixture::new(layout(45, 64 << 10, 8, 64));
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    // Carved from the high end: z < y < x, 2 chunks (128 bytes) each.
    let x = f.heap.malloc(&mut tx, 100).unwrap();
    let y = f.heap.malloc(&mut tx, 100).unwrap();
    let _z = f.heap.malloc(&mut tx, 100).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    let y_foot = y - 8 + 128 - 8;
    assert_eq!(y_foot, x - 16);
    let intact = f.heap_bytes();

    // Allocated y with a free foot (the checker reports it at y's block).
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    tx.write(y_foot, &(FOOT_FREE | 2)).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    let report = f.heap.check();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.address == (y - 8) as u64 && p.kind == ProblemKind::Tag),
        "{report}"
    );
    let before = f.heap_bytes();
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let e = f.heap.free(&mut tx, y).unwrap_err();
    assert_eq!(e.code_name(), "ECORRUPT", "{e}");
    // x's left neighbour claims to be free: its head says otherwise, so nothing is merged.
    let e = f.heap.free(&mut tx, x).unwrap_err();
    assert_eq!(e.code_name(), "ECORRUPT", "{e}");
    tx.end(CommitMode::Flush).unwrap();
    assert!(f.heap_bytes() == before, "refused frees changed the heap");

    // Repair it; then free y and give it an allocated foot.
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let offset = y_foot - f.heap.address();
    tx.modify_bytes(y_foot, &intact[offset..offset + 8])
        .unwrap();
    tx.end(CommitMode::Flush).unwrap();
    f.assert_consistent();
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    f.heap.free(&mut tx, y).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    f.assert_consistent();
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    tx.write(y_foot, &(FOOT_ALLOCATED | 2)).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    let report = f.heap.check();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.address == (y - 8) as u64 && p.kind == ProblemKind::Tag),
        "{report}"
    );
    let before = f.heap_bytes();
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let e = f.heap.malloc(&mut tx, 100).unwrap_err();
    assert_eq!(e.code_name(), "ECORRUPT", "{e}");
    tx.end(CommitMode::Flush).unwrap();
    assert!(
        f.heap_bytes() == before,
        "a refused malloc changed the heap"
    );
}

#[test]
fn version_skew_and_missing_heap_are_refused_at_load() {
    let f = Fixture::new(layout(43, 64 << 10, 8, 64));
    // A version-1 heap (other counter order) and a version-2 heap (foot tags without the
    // state) are refused.
    for old in [1u64, 2] {
        let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
        tx.write(f.heap.address() + 8, &old).unwrap();
        tx.end(CommitMode::Flush).unwrap();
        let e = Heap::load(&f.segment).unwrap_err();
        assert!(
            matches!(
                e,
                Error::VersionSkew {
                    found,
                    expected: 3,
                    ..
                } if found == old
            ),
            "{e}"
        );
        assert_eq!(e.code_name(), "EHEAP_VERSION_SKEW");
    }
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    assert_eq!(
        f.heap.malloc(&mut tx, 8).unwrap_err().code_name(),
        "EHEAP_VERSION_SKEW"
    );
    tx.fill(f.heap.address(), 8, 0).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    assert_eq!(
        Heap::load(&f.segment).unwrap_err().code_name(),
        "EHEAP_INIT"
    );
}

#[test]
fn segments_that_are_not_heap_segments_are_refused() {
    use rvm::device::DeviceRef;
    use rvm::MapOptions;
    use std::sync::Arc;
    let f = Fixture::new(layout(51, 64 << 10, 8, 64));
    // One region only.
    let one: DeviceRef = Arc::new(support::one_region_segment(
        8192,
        rds_support::address_for(52),
    ));
    // SAFETY: the test's devices lend no descriptor to map (memory and crash devices are read into
    // anonymous memory), or name a file in the test's private temporary directory that nothing
    // shortens.
    let seg = unsafe { f.rvm.map_device(one, MapOptions::default()) }.unwrap();
    assert_eq!(
        Heap::load(&seg).unwrap_err().code_name(),
        "EBAD_SEGMENT_HDR"
    );
    // A heap segment mapped anywhere: its pointers would be wrong.
    f.rvm.unmap(&f.segment).unwrap();
    // SAFETY: the test's devices lend no descriptor to map (memory and crash devices are read into
    // anonymous memory), or name a file in the test's private temporary directory that nothing
    // shortens.
    let anywhere = unsafe { f.rvm.map_device(f.data.clone(), MapOptions::anywhere()) }.unwrap();
    let e = Heap::load(&anywhere).unwrap_err();
    assert_eq!(e.code_name(), "EBAD_SEGMENT_HDR", "{e}");
    // The old handle's segment is unmapped: calls fail cleanly.
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    assert_eq!(
        f.heap.malloc(&mut tx, 8).unwrap_err().code_name(),
        "RVM_ENOT_MAPPED"
    );
    tx.abort().unwrap();
    assert!(!f.heap.check().is_ok());
    assert_eq!(f.heap.maxblock(), 0);
    assert!(f.heap.statistics().damage.is_some());
}

/// Four 100-byte blocks, carved from the high end (x[0] > x[1] > x[2] > x[3], 2 chunks of
/// 64 bytes each), then x[1] freed: alone on list 2, between two allocated blocks.
fn four_blocks_the_second_free(f: &Fixture) -> [usize; 4] {
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let x: [usize; 4] = std::array::from_fn(|_| f.heap.malloc(&mut tx, 100).unwrap());
    tx.end(CommitMode::Flush).unwrap();
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    f.heap.free(&mut tx, x[1]).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    x
}

/// Damage written through the freeing transaction between `free` and its commit: `damage`
/// gives the address of a word the free's plan relies on (a neighbour's tag or link, the
/// head of the list the freed block goes on) and the value written there. The block freed is
/// `x[freed]` of [`four_blocks_the_second_free`]. The commit must be refused with heap
/// corruption naming that word, and leave the heap as it was.
fn damage_between_free_and_commit(
    test: u64,
    freed: usize,
    damage: impl Fn(&[usize; 4]) -> (usize, u64),
) {
    let layout = layout(test, 64 << 10, 8, 64);
    let f = Fixture::new(layout);
    let x = four_blocks_the_second_free(&f);
    f.assert_consistent();
    let before = f.heap_bytes();
    let stats = f.heap.statistics();

    // x[2]'s free merges with x[1] (its right neighbour, free, alone on list 2) and puts
    // the 4-chunk block on list 4 (empty); x[3]'s merges with the large free block before it
    // and keeps it on the large list.
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    f.heap.free(&mut tx, x[freed]).unwrap();
    let (at, value) = damage(&x);
    tx.write(at, &value).unwrap();
    let err = tx.end(CommitMode::Flush).unwrap_err();
    match Error::from(err) {
        Error::Corrupt { address, .. } => {
            assert_eq!(address, at as u64, "the error names the damaged word")
        }
        other => panic!("expected heap corruption at {at:#x}, got {other}"),
    }

    // Refused and rolled back: the damage is gone, nothing was freed.
    f.assert_consistent();
    assert!(
        f.heap_bytes() == before,
        "the refused commit changed the heap"
    );
    assert_eq!(f.heap.statistics(), stats);
    assert!(
        f.heap.usable_size(x[freed]).is_ok(),
        "x[{freed}] is still allocated"
    );
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    f.heap.free(&mut tx, x[freed]).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    f.assert_consistent();
    assert!(f.heap.usable_size(x[freed]).is_err());
}

/// Regression: a lone free checked at the call was made at the commit by the call's plan
/// without looking at the heap again; a neighbour's tag overwritten in between went unseen
/// (the commit merged as planned and logged the damage with it).
#[test]
fn damage_to_a_neighbours_tag_between_free_and_commit_was_not_refused() {
    // Still a free head tag, of another length.
    let tag = head_word(BlockState::Free, 3);
    damage_between_free_and_commit(46, 2, |x| (x[1] - 8, tag));
}

/// Regression: as above, for the free neighbour's next link, which the commit followed to
/// unlink it (writing into the allocated block it was made to point at).
#[test]
fn damage_to_a_neighbours_link_between_free_and_commit_was_followed() {
    damage_between_free_and_commit(47, 2, |x| (x[1] + 8, (x[0] - 8) as u64));
}

/// Regression: as above, for the head of the list the freed block goes on, which the commit
/// followed to link the block in front of the "first block" (writing into the allocated
/// block it was made to point at).
#[test]
fn damage_to_a_list_head_between_free_and_commit_was_followed() {
    let l = layout(48, 64 << 10, 8, 64);
    let g = HeapGeometry::new(l.heap_length, l.chunk_size, l.nlists).unwrap();
    let list_4 = l.start_address as usize + g.list_offset(4) as usize;
    damage_between_free_and_commit(48, 2, |x| (list_4, (x[0] - 8) as u64));
}

/// With a heap call between the free and the commit (another transaction's malloc), the
/// commit plans the free again in full: list-head damage written in between is refused too,
/// and leaves the heap as it was.
#[test]
fn damage_between_free_and_commit_is_refused_when_the_free_is_planned_again() {
    let l = layout(49, 64 << 10, 8, 64);
    let g = HeapGeometry::new(l.heap_length, l.chunk_size, l.nlists).unwrap();
    let f = Fixture::new(l);
    let x = four_blocks_the_second_free(&f);

    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    f.heap.free(&mut tx, x[2]).unwrap();
    let list_4 = f.heap.address() + g.list_offset(4) as usize;
    tx.write(list_4, &((x[0] - 8) as u64)).unwrap();
    // From the large block (list 8): neither the freed block's neighbours nor list 4.
    let mut other = f.rvm.begin(BeginMode::Restore).unwrap();
    let big = f.heap.malloc(&mut other, 1000).unwrap();
    other.end(CommitMode::Flush).unwrap();
    let before = f.heap_bytes();
    let err = Error::from(tx.end(CommitMode::Flush).unwrap_err());
    assert_eq!(err.code_name(), "ECORRUPT", "{err}");
    f.assert_consistent();
    let offset = list_4 - f.heap.address();
    let mut expected = before.clone();
    expected[offset..offset + 8].copy_from_slice(&0u64.to_le_bytes());
    assert!(
        f.heap_bytes() == expected,
        "only the damage is rolled back; nothing is freed"
    );
    assert!(f.heap.usable_size(x[2]).is_ok() && f.heap.usable_size(big).is_ok());
}

/// Four blocks carved from the high end (x[0] > x[1] > x[2] > x[3]): x[1] of 4 chunks of 64
/// bytes, the others of 2, then x[1] freed: alone on list 4, between two allocated blocks,
/// with list 2 (where a freed x[0], x[2] or x[3] goes) empty.
fn four_blocks_the_second_free_and_longer(f: &Fixture) -> [usize; 4] {
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    let x: [usize; 4] = std::array::from_fn(|i| {
        f.heap
            .malloc(&mut tx, if i == 1 { 200 } else { 100 })
            .unwrap()
    });
    tx.end(CommitMode::Flush).unwrap();
    assert_eq!(x[0] - x[1], 4 * 64);
    assert_eq!(x[1] - x[2], 2 * 64);
    assert_eq!(x[2] - x[3], 2 * 64);
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    f.heap.free(&mut tx, x[1]).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    f.assert_consistent();
    x
}

/// Each damage (address, value) written in turn, the free of `freed` must be refused with
/// heap corruption naming `named` (the neighbour's tag next to the freed block), and change
/// nothing; the damage is repaired after each.
fn neighbour_damage_refuses_the_free(f: &Fixture, freed: usize, cases: &[(usize, u64, usize)]) {
    let intact = f.heap_bytes();
    for &(at, value, named) in cases {
        let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
        tx.write(at, &value).unwrap();
        tx.end(CommitMode::Flush).unwrap();
        let damaged = f.heap_bytes();
        let stats = f.heap.statistics();

        let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
        match f.heap.free(&mut tx, freed) {
            Err(Error::Corrupt { address, detail }) => assert_eq!(
                address, named as u64,
                "damage {value:#x} at {at:#x}: the error names the neighbour's tag ({detail})"
            ),
            other => {
                panic!("damage {value:#x} at {at:#x}: expected heap corruption, got {other:?}")
            }
        }
        tx.end(CommitMode::Flush).unwrap();
        assert!(
            f.heap_bytes() == damaged,
            "damage {value:#x} at {at:#x}: the refused free changed the heap"
        );
        assert_eq!(f.heap.statistics(), stats);
        assert!(
            f.heap.usable_size(freed).is_ok(),
            "the block is still allocated"
        );

        let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
        let offset = at - f.heap.address();
        tx.modify_bytes(at, &intact[offset..offset + 8]).unwrap();
        tx.end(CommitMode::Flush).unwrap();
        f.assert_consistent();
    }
}

/// Regression: a foot tag before the freed block saying "allocated" was taken at its word and
/// the left neighbour not looked at: a free neighbour whose foot was damaged into
/// "allocated" was left beside the freed block (two adjacent free blocks), and a length that
/// ran into the middle of a block, or before the first block, went unnoticed. Its head must
/// now agree (allocated, the same length, inside the block area).
#[test]
fn a_left_neighbour_whose_tags_disagree_was_not_refused() {
    let f = Fixture::new(layout(53, 64 << 10, 8, 64));
    let x = four_blocks_the_second_free_and_longer(&f);
    // x[1]'s foot, before x[0] (free, 4 chunks); x[3]'s foot, before x[2] (allocated, 2).
    let (x1_foot, x3_foot) = (x[0] - 16, x[2] - 16);
    neighbour_damage_refuses_the_free(
        &f,
        x[0],
        &[
            // A free neighbour's foot says allocated: its head says free.
            (x1_foot, foot_word(BlockState::Allocated, 4), x1_foot),
            // ... and a length that ends inside it (no head tag there).
            (x1_foot, foot_word(BlockState::Allocated, 3), x1_foot),
            // ... and one that runs before the first block.
            (x1_foot, foot_word(BlockState::Allocated, 1023), x1_foot),
        ],
    );
    // An allocated neighbour's foot gives a wrong length (its head is elsewhere).
    neighbour_damage_refuses_the_free(
        &f,
        x[2],
        &[(x3_foot, foot_word(BlockState::Allocated, 1), x3_foot)],
    );
}

/// Regression: as above, on the right: a head tag after the freed block saying "allocated"
/// was taken at its word; its foot must now agree (allocated, the same length, inside the
/// block area).
#[test]
fn a_right_neighbour_whose_tags_disagree_was_not_refused() {
    let f = Fixture::new(layout(54, 64 << 10, 8, 64));
    let x = four_blocks_the_second_free_and_longer(&f);
    // x[1]'s head, after x[2] (free, 4 chunks); x[2]'s head, after x[3] (allocated, 2).
    let (x1_head, x2_head) = (x[1] - 8, x[2] - 8);
    neighbour_damage_refuses_the_free(
        &f,
        x[2],
        &[
            // A free neighbour's head says allocated: its foot says free.
            (x1_head, head_word(BlockState::Allocated, 4), x1_head),
            // ... and a length that runs past the end of the heap.
            (x1_head, head_word(BlockState::Allocated, 1023), x1_head),
        ],
    );
    // An allocated neighbour's head gives a wrong length (its foot is elsewhere).
    neighbour_damage_refuses_the_free(
        &f,
        x[3],
        &[(x2_head, head_word(BlockState::Allocated, 3), x2_head)],
    );
}

/// A block between two intact allocated neighbours of other lengths frees on its own: both
/// neighbours' far tags agree, nothing is merged, and the neighbours stay allocated.
#[test]
fn a_block_between_intact_allocated_neighbours_frees() {
    let f = Fixture::new(layout(55, 64 << 10, 8, 64));
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    // Carved from the high end: c < b < a, of 3, 2 and 5 chunks.
    let a = f.heap.malloc(&mut tx, 300).unwrap();
    let b = f.heap.malloc(&mut tx, 100).unwrap();
    let c = f.heap.malloc(&mut tx, 150).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    assert_eq!((a - b, b - c), (2 * 64, 3 * 64));
    let stats = f.heap.statistics();

    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    f.heap.free(&mut tx, b).unwrap();
    tx.end(CommitMode::Flush).unwrap();
    f.assert_consistent();
    assert!(f.heap.usable_size(b).is_err(), "b is free");
    assert!(f.heap.usable_size(a).is_ok() && f.heap.usable_size(c).is_ok());
    let after = f.heap.statistics();
    assert_eq!(after.free_count, stats.free_count + 1);
    assert_eq!(after.coalesce_count, stats.coalesce_count, "nothing merged");
    // Its block is on list 2 on its own: the next 2-chunk malloc takes it.
    let mut tx = f.rvm.begin(BeginMode::Restore).unwrap();
    assert_eq!(f.heap.malloc(&mut tx, 100).unwrap(), b);
    tx.end(CommitMode::Flush).unwrap();
    f.assert_consistent();
}

/// Regression: the free-at-commit path (the call's plan re-checked at the commit) did not
/// re-check an allocated left neighbour's head, which the plan now checks against its foot:
/// damage written there between the free and its commit went unseen.
#[test]
fn damage_to_an_allocated_left_neighbours_head_between_free_and_commit_was_not_refused() {
    // x[2]'s left neighbour is x[3] (allocated, 2 chunks).
    let tag = head_word(BlockState::Allocated, 3);
    damage_between_free_and_commit(56, 2, |x| (x[3] - 8, tag));
}

/// Regression: as above, for an allocated right neighbour's foot.
#[test]
fn damage_to_an_allocated_right_neighbours_foot_between_free_and_commit_was_not_refused() {
    // x[3]'s right neighbour is x[2] (allocated, 2 chunks); its foot is just before x[1]'s
    // block.
    let tag = foot_word(BlockState::Allocated, 3);
    damage_between_free_and_commit(57, 3, |x| (x[1] - 16, tag));
}
