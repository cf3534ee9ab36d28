// Creating a heap segment maps it while the heap is initialised.
use rvm::rds::{self, HeapLayout};
use rvm::{Options, Rvm};

fn main() {
    let rvm = Rvm::open("/nonexistent/log", Options::default()).unwrap();
    let layout = HeapLayout {
        start_address: 0x2000_0000_0000,
        heap_length: 1 << 20,
        static_length: 4096,
        nlists: 16,
        chunk_size: 64,
    };
    let _ = rds::create_heap_segment(
        &rvm,
        "/nonexistent/data".as_ref(),
        layout.segment_length_min(),
        &layout,
        Default::default(),
    );
}
