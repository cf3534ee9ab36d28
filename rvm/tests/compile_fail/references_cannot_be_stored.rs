// Only plain data goes into persistent memory: a reference (a volatile address with a
// lifetime) cannot be written.
use rvm::{BeginMode, Options, Rvm};

fn main() {
    let rvm = Rvm::open("/nonexistent/log", Options::default()).unwrap();
    let mut tx = rvm.begin(BeginMode::Restore).unwrap();
    let local = 5u64;
    let reference: &u64 = &local;
    tx.write(0x1000, &reference).unwrap();
}
