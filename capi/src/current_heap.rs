//! The heap the C program loaded or started (`rds_load_heap`, `rds_init_heap`,
//! `rds_start_heap`): the one heap the classic RDS calls work on.

use std::sync::Mutex;

use rvm::rds::Heap;
use rvm::Segment;

use crate::state::lock;

static HEAP: Mutex<Option<Heap>> = Mutex::new(None);

/// The current heap, if one is loaded.
pub fn get() -> Option<Heap> {
    lock(&HEAP).clone()
}

/// Make `heap` the current heap.
pub fn set(heap: Heap) {
    *lock(&HEAP) = Some(heap);
}

/// Forget the current heap (`rds_stop_heap`, `rvm_terminate`).
pub fn forget() {
    *lock(&HEAP) = None;
}

/// Forget the current heap if it lives in `seg` (the segment is being released).
pub fn forget_in(seg: &Segment) {
    let mut h = lock(&HEAP);
    if h.as_ref().is_some_and(|h| h.segment().uuid() == seg.uuid()) {
        *h = None;
    }
}
