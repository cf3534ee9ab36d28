// A transaction is used by one thread at a time: `&Transaction` cannot cross threads.
use rvm::{BeginMode, Options, Rvm};

fn main() {
    let rvm = Rvm::open("/nonexistent/log", Options::default()).unwrap();
    let tx = rvm.begin(BeginMode::Restore).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| tx.read::<u64>(0x1000));
    });
}
