// A transaction borrows its instance: it cannot be used after the instance is gone.
use rvm::{BeginMode, CommitMode, Options, Rvm};

fn main() {
    let tx;
    {
        let rvm = Rvm::open("/nonexistent/log", Options::default()).unwrap();
        tx = rvm.begin(BeginMode::Restore).unwrap();
    }
    tx.end(CommitMode::Flush).unwrap();
}
