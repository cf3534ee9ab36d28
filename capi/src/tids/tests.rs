//! Unit tests of the tid registry (`tids.rs`): slots, the biased path and its revocation.

use super::*;
use crate::bias::Fences;

/// Serializes the tests that use slot 0 or allocate slots (one asserts which slots the
/// free lists hold afterwards).
static SLOT_TESTS: Mutex<()> = Mutex::new(());

/// Open a free slot as `begin` does, without an instance (the caller never touches the
/// slot's transaction): the bias goes to `me`, or the slot starts revoked without one.
/// Returns the slot, its index, the tid's key and the lock word's generation.
fn open_without_instance(me: Option<&'static Caller>) -> (&'static Slot, usize, TidKey, u64) {
    let index = allocate().unwrap();
    let slot = slot(index).unwrap();
    let free = slot.state.load(Ordering::Relaxed);
    let generation = free & !(OPEN | BUSY);
    let owner = me.map_or(std::ptr::null_mut(), |c| c as *const Caller as *mut Caller);
    slot.owner.store(owner, Ordering::Relaxed);
    let revoked = if me.is_some() { 0 } else { REVOKED };
    slot.lock.store(generation | revoked, Ordering::Relaxed);
    slot.state.store(free | OPEN, Ordering::Release);
    let key = TidKey {
        id: tid_value(index, free >> FLAG_BITS),
        uname: slot.uname(),
    };
    (slot, index, key, generation)
}

/// Free a slot opened by `open_without_instance`, as an end does.
fn close_without_instance(slot: &'static Slot, index: usize, generation: u64) {
    let next = ((generation >> FLAG_BITS).wrapping_add(1) & GENERATION_MASK).max(1);
    slot.lock.store(generation | REVOKED, Ordering::Release);
    slot.state.store(next << FLAG_BITS, Ordering::Release);
    release(index);
}

/// Which path a call on a tid takes is decided by the fences: with them the owner's calls
/// are on the fast path until another thread's call revokes the bias; without them every
/// call takes the lock word from the start. Asserted per path, so a process where
/// `membarrier` is refused tests the lock-word path instead of passing without saying so.
#[test]
fn an_owners_calls_take_the_path_the_fences_allow() {
    let _serial = lock(&SLOT_TESTS);
    let me = bias::register();
    let (slot, index, key, generation) = open_without_instance(me);
    let lock_word = || slot.lock.load(Ordering::Acquire);
    let from_another_thread = move || {
        std::thread::spawn(move || {
            let held = hold_counted(&key).unwrap();
            matches!(held.hold, Hold::Slow)
        })
        .join()
        .unwrap()
    };
    match bias::fences() {
        Fences::Available => {
            let me = me.expect("a record where fences exist");
            {
                let held = hold_counted(&key).unwrap();
                assert!(
                    matches!(held.hold, Hold::Fast(c) if std::ptr::eq(c, me)),
                    "the owner's call is on the fast path"
                );
                assert_eq!(
                    me.busy.load(Ordering::Relaxed),
                    key.id,
                    "its record names the tid"
                );
                assert_eq!(lock_word(), generation, "no lock word taken");
            }
            assert_eq!(me.busy.load(Ordering::Relaxed), 0);
            // Another thread's call takes the lock word and revokes the bias...
            assert!(
                from_another_thread(),
                "another thread's call takes the lock word"
            );
            assert_eq!(lock_word(), generation | REVOKED);
            // ...after which the owner's calls take the lock word too.
            let held = hold_counted(&key).unwrap();
            assert!(
                matches!(held.hold, Hold::Slow),
                "the owner's call after revocation"
            );
            assert_eq!(lock_word(), generation | LOCKED | REVOKED);
            assert_eq!(me.busy.load(Ordering::Relaxed), 0);
        }
        Fences::DisabledByEnvironment | Fences::Refused => {
            assert!(me.is_none(), "no record without fences");
            assert_eq!(lock_word(), generation | REVOKED, "begun revoked");
            {
                let held = hold_counted(&key).unwrap();
                assert!(
                    matches!(held.hold, Hold::Slow),
                    "the owner's call takes the lock word"
                );
                assert_eq!(lock_word(), generation | LOCKED | REVOKED);
            }
            assert_eq!(
                lock_word(),
                generation | REVOKED,
                "given back at the call's end"
            );
            // Another thread's call needs no heavy fence (there is none): the bias was
            // never given.
            assert!(from_another_thread());
            assert_eq!(lock_word(), generation | REVOKED);
        }
    }
    close_without_instance(slot, index, generation);
    assert_eq!(
        hold_counted(&key).err(),
        Some(RVM_ETID),
        "ended: no longer held"
    );
}

#[test]
fn slot_indexes_map_to_distinct_chunk_positions() {
    let mut seen = std::collections::HashSet::new();
    let mut previous = (0, 0);
    for index in 0..FIRST_CHUNK_SLOTS * 15 {
        let (chunk, position) = locate(index);
        assert!(position < FIRST_CHUNK_SLOTS << chunk, "{index}");
        assert!(seen.insert((chunk, position)), "{index}");
        if index > 0 {
            // Consecutive indexes fill a chunk in order, then start the next one.
            assert!(
                (chunk == previous.0 && position == previous.1 + 1)
                    || (chunk == previous.0 + 1 && position == 0),
                "{index}"
            );
        }
        previous = (chunk, position);
    }
    assert_eq!(locate(SLOTS_MAX - 1).0, CHUNKS_MAX - 1);
}

#[test]
fn a_threads_last_freed_slot_is_its_next_and_goes_back_when_it_exits() {
    // (No other test of this binary allocates slots while this one runs.)
    let _serial = lock(&SLOT_TESTS);
    let (first, other) = std::thread::spawn(|| {
        let first = allocate().unwrap();
        release(first);
        // Kept in `LAST_FREED`: the next begin of the thread takes it back.
        assert_eq!(allocate().unwrap(), first);
        let other = allocate().unwrap();
        assert_ne!(other, first);
        release(first);
        release(other); // `LAST_FREED` is taken: into the thread's list
        (first, other)
    })
    .join()
    .unwrap();
    // The thread's exit gave both back (the one in `LAST_FREED` too).
    let global = lock(&GLOBAL_FREE);
    for index in [first, other] {
        assert!(
            global.contains(&(index as u32)),
            "{index} lost at thread exit"
        );
    }
    drop(global);
    // A thread that frees a slot without ever allocating one gives it back as well.
    let index = allocate().unwrap();
    std::thread::spawn(move || release(index)).join().unwrap();
    assert!(lock(&GLOBAL_FREE).contains(&(index as u32)));
}

#[test]
fn ids_out_of_range_or_of_unallocated_chunks_are_refused() {
    // Id 0 names slot 0, which another test may open meanwhile.
    let _serial = lock(&SLOT_TESTS);
    let mut t: RvmTid = RvmTid {
        struct_id: crate::types::RVM_TID_ID,
        from_heap: 0,
        uname: timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        tid: std::ptr::null_mut(),
        reserved: 0,
    };
    for value in [0u64, u64::MAX, (SLOTS_MAX as u64) - 1, 1 << INDEX_BITS] {
        t.tid = value as *mut libc::c_void;
        // SAFETY: `t` is a readable record.
        let key = unsafe { read_tid(&t) }.unwrap();
        assert_eq!(key.id, value);
        assert_eq!(hold(&key).err(), Some(RVM_ETID), "{value:#x}");
    }
}

#[test]
fn forged_and_null_tids_are_refused_without_dereferencing() {
    // SAFETY: NULL is allowed.
    assert_eq!(unsafe { read_tid(std::ptr::null()) }.err(), Some(RVM_ETID));
    let mut t = RvmTid {
        struct_id: RVM_TID_ID,
        from_heap: 0,
        uname: timeval {
            tv_sec: 1,
            tv_usec: 2,
        },
        // Not a pointer the library follows: any value is just an unknown id.
        tid: 0xdead_beef as *mut libc::c_void,
        reserved: 0,
    };
    // SAFETY: `t` is a readable record.
    let key = unsafe { read_tid(&t) }.unwrap();
    assert_eq!((key.id, key.uname), (0xdead_beef, (1, 2)));
    assert_eq!(hold(&key).err(), Some(RVM_ETID));
    t.struct_id = 0;
    // SAFETY: `t` is a readable record.
    assert_eq!(unsafe { read_tid(&t) }.err(), Some(RVM_ETID));
}
