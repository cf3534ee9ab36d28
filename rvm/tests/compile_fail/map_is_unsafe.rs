// Mapping a segment file can raise SIGBUS if someone shortens the file: the caller must vouch.
use rvm::{MapOptions, Options, Rvm};

fn main() {
    let rvm = Rvm::open("/nonexistent/log", Options::default()).unwrap();
    let _segment = rvm.map("/nonexistent/data", MapOptions::default());
}
